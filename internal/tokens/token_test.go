package tokens

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, Prefix) {
			t.Fatalf("no %s prefix", Prefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, Prefix))
		if err != nil || len(raw) != 32 {
			t.Fatalf("not 32 bytes of base64url: %d bytes, %v", len(raw), err)
		}
		if !Usable(tok) {
			t.Fatalf("a generated token is not Usable")
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2: the unkeyed form of older status.
	const legacy = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := LegacyFingerprint("abc"); got != legacy {
		t.Errorf("LegacyFingerprint(abc) = %s", got)
	}
	key := []byte("scim-operator test fingerprint key")
	a, _ := NewFingerprinter(key)
	b, _ := NewFingerprinter(append([]byte("another"), key...))
	fp := a.Of("abc")
	if !strings.HasPrefix(fp, "hmac-sha256:") || len(fp) != len("hmac-sha256:")+64 {
		t.Errorf("Of(abc) = %s", fp)
	}
	if fp == b.Of("abc") || strings.HasSuffix(fp, legacy[len("sha256:"):]) {
		t.Error("the fingerprint does not depend on the key")
	}
	if !a.Matches("abc", fp) || !a.Matches("abc", legacy) || a.Matches("abd", fp) || a.Matches("abc", b.Of("abc")) || a.Matches("abc", "") {
		t.Error("Matches")
	}
	if _, err := NewFingerprinter(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if (Fingerprinter{}).Of("abc") != "" {
		t.Error("a Fingerprinter without a key must match nothing")
	}
	if got := ShortFingerprint(legacy); got != "sha256:ba7816bf8f01" {
		t.Errorf("ShortFingerprint = %s", got)
	}
	if got := ShortFingerprint(fp); got != fp[:len("hmac-sha256:")+12] {
		t.Errorf("ShortFingerprint = %s", got)
	}
	if ShortFingerprint("") != "" {
		t.Error("ShortFingerprint of nothing")
	}
}

func TestUsable(t *testing.T) {
	for tok, want := range map[string]bool{
		"":                      false,
		strings.Repeat("a", 31): false,
		strings.Repeat("a", 32): true,
		strings.Repeat("a", 20) + " " + strings.Repeat("b", 20): false,
		strings.Repeat("a", 40) + "\x7f":                        false,
	} {
		if got := Usable(tok); got != want {
			t.Errorf("Usable(%q) = %v", tok, got)
		}
	}
	if got := Normalize("  tok\n"); got != "tok" {
		t.Errorf("Normalize = %q", got)
	}
}

func TestParseBearer(t *testing.T) {
	for header, want := range map[string]error{
		"":                   ErrMissing,
		"   ":                ErrMissing,
		"Bearer":             ErrMalformed,
		"Bearer ":            ErrMalformed,
		"Basic dXNlcjpwdw==": ErrMalformed,
		"Bearer a b":         ErrMalformed,
		"Bearer a\tb":        ErrMalformed,
		"Bearer " + strings.Repeat("x", maxTokenLength+1): ErrMalformed,
		"Bearer abc":  nil,
		"bearer abc":  nil,
		"BEARER  abc": nil,
	} {
		tok, err := ParseBearer(header)
		if !errors.Is(err, want) && (err != nil || want != nil) {
			t.Errorf("ParseBearer(%.20q) error %v, want %v", header, err, want)
		}
		if want == nil && tok != "abc" {
			t.Errorf("ParseBearer(%q) = %q", header, tok)
		}
	}
}
