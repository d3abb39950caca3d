// Package namekey holds the one canonical form under which userName and
// group displayName are unique in a tenant (invariant I2 in
// docs/invariants.md). Claims, first ids, the user and group indexes,
// filter comparisons, rename detection and the helpdesk database key all
// use Key, so two values are "the same name" in exactly one sense.
//
// It imports nothing of ours, so every layer may use it.
package namekey

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Key is the canonical, case-insensitive form of a name:
//
//  1. NFKC normalization, so composed and decomposed accents, full-width
//     letters and ligatures meet (é = e + U+0301, Ａ = A, ﬁ = fi);
//  2. each rune lower-cased and then replaced by the lower case of the
//     smallest rune of its simple case-folding orbit, so that every rune
//     strings.EqualFold treats as equal maps to one rune (K, k and the
//     Kelvin sign U+212A; s, S and long s U+017F; σ, ς and Σ), and so that
//     lower-casing first joins what Go's strings.ToLower joins (İ U+0130
//     lower-cases to i);
//  3. NFKC again, so that Key(Key(x)) == Key(x).
//
// Dotless ı (U+0131) stays its own letter, as in Turkish; ß and ss stay
// apart (simple folding, like strings.EqualFold). The choice is made once,
// here; changing it changes which names collide, so it needs a migration of
// the claims and the database key.
func Key(s string) string {
	if isASCII(s) {
		// The common case, on every filter and index lookup: NFKC leaves
		// ASCII alone and every ASCII letter's fold orbit lower-cases to
		// itself (k and s included), so Key is strings.ToLower here.
		return strings.ToLower(s)
	}
	s = norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return norm.NFKC.String(b.String())
}

// Equal reports whether a and b are the same name.
func Equal(a, b string) bool { return a == b || Key(a) == Key(b) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldRune maps r to one representative of its case class.
func foldRune(r rune) rune {
	r = unicode.ToLower(r)
	lowest := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		lowest = min(lowest, f)
	}
	return unicode.ToLower(lowest)
}
