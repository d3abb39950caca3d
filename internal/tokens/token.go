// Package tokens issues, fingerprints and checks the bearer tokens that
// identity providers send to the SCIM endpoint. A token's plaintext lives
// only in its Secret and in the Authorization header; everything else (status,
// index, logs, events, metrics) sees its fingerprint.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

const (
	// Prefix starts every generated token so that secret scanners (GitHub,
	// GitLab, trufflehog) can be taught to recognise a leaked one.
	Prefix = "scimop_"

	// MinAdoptedLength is the shortest token accepted from an adopted
	// Secret or a hand-edited generated Secret: 32 characters of a random
	// alphabet is still well over 128 bits.
	MinAdoptedLength = 32

	// entropyBytes is 256 bits from crypto/rand.
	entropyBytes = 32

	fingerprintPrefix = "sha256:"
)

// Generate returns a new token: Prefix and 32 random bytes, base64url
// without padding (43 characters), so it is safe in headers and YAML.
func Generate() (string, error) {
	b := make([]byte, entropyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading %d random bytes: %w", entropyBytes, err)
	}
	return Prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Fingerprint is "sha256:" and the hex SHA-256 of the token. A plain hash
// (no salt, no KDF) is enough: tokens carry 256 bits of entropy, so there
// is nothing to brute-force, and a deterministic hash can be indexed.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ShortFingerprint shortens a fingerprint for events and logs
// ("sha256:0123456789ab"), like a short git hash.
func ShortFingerprint(fp string) string {
	const n = len(fingerprintPrefix) + 12
	if len(fp) <= n {
		return fp
	}
	return fp[:n]
}

// Normalize trims the surrounding whitespace that editors and `echo` leave
// in hand-made Secrets; an Authorization header never carries it.
func Normalize(token string) string { return strings.TrimSpace(token) }

// Usable says whether a token read from a Secret is safe to accept: long
// enough and a single header-safe word.
func Usable(token string) bool {
	if len(token) < MinAdoptedLength {
		return false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
