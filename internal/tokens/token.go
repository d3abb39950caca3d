// Package tokens issues, fingerprints and checks the bearer tokens that
// identity providers send to the SCIM endpoint. A token's plaintext lives
// only in its Secret and in the Authorization header; everything else (status,
// index, logs, events, metrics) sees its fingerprint.
package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
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

	fingerprintPrefix = "hmac-sha256:"
	legacyPrefix      = "sha256:"
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

// Fingerprinter computes the fingerprints that stand for tokens everywhere
// but their Secret: status, the authentication index, logs and events
// (shortened). A fingerprint is "hmac-sha256:" and the hex HMAC-SHA-256 of
// the token under the installation key's fingerprint subkey: every replica
// computes the same one, and nobody without the key can test a guess
// against it. An unkeyed hash in a status the viewer role reads would let
// them test guesses of an adopted (human-chosen) token offline.
type Fingerprinter struct{ key []byte }

// NewFingerprinter returns a Fingerprinter keyed with key (at least 32
// bytes: installkey.Key.Derive(installkey.PurposeFingerprint)).
func NewFingerprinter(key []byte) (Fingerprinter, error) {
	if len(key) < 32 {
		return Fingerprinter{}, fmt.Errorf("a fingerprint key needs at least 32 bytes, this one has %d", len(key))
	}
	return Fingerprinter{key: append([]byte(nil), key...)}, nil
}

// Keyed reports whether f has a key (the zero Fingerprinter has none and
// must not be used).
func (f Fingerprinter) Keyed() bool { return len(f.key) > 0 }

// Of returns token's fingerprint; "" (which matches nothing) without a
// key, so that a wiring mistake fails closed.
func (f Fingerprinter) Of(token string) string {
	if !f.Keyed() {
		return ""
	}
	mac := hmac.New(sha256.New, f.key)
	mac.Write([]byte(token))
	return fingerprintPrefix + hex.EncodeToString(mac.Sum(nil))
}

// Matches reports whether fp is token's fingerprint, keyed or, for status
// written before fingerprints were keyed, unkeyed. Constant time.
func (f Fingerprinter) Matches(token, fp string) bool {
	if strings.HasPrefix(fp, legacyPrefix) {
		return subtle.ConstantTimeCompare([]byte(LegacyFingerprint(token)), []byte(fp)) == 1
	}
	return fp != "" && subtle.ConstantTimeCompare([]byte(f.Of(token)), []byte(fp)) == 1
}

// LegacyFingerprint is the unkeyed form ("sha256:" and the hex SHA-256)
// that status held before fingerprints were keyed. It is still accepted
// where status holds it (a previous token whose overlap runs), and the
// controller replaces a current one with the keyed form on its next
// reconcile; nothing new is written in it.
func LegacyFingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return legacyPrefix + hex.EncodeToString(sum[:])
}

// ShortFingerprint shortens a fingerprint for events and logs
// ("hmac-sha256:0123456789ab"), like a short git hash.
func ShortFingerprint(fp string) string {
	i := strings.IndexByte(fp, ':')
	if n := i + 1 + 12; i >= 0 && len(fp) > n {
		return fp[:n]
	}
	return fp
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
