package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Names are drawn from a small space so that they recur: a name is a
// prefix (a worker's own "w1", or "shared" for names every worker uses), a
// base and a small number. Each base comes in spellings that
// namekey.Key treats as the same name, so the workers send the same name
// in the case and Unicode variants an identity provider may produce.
// The model itself never relies on this table: it compares names with
// namekey.Key only.
var nameBases = [][]string{
	{"anna", "ANNA", "Anna"},
	{"sam", "SAM", "Sam", "\u017fam", "\u017fAM"}, // long s: ſam
	{"kim", "KIM", "\u212aim", "\u212aIM"},        // Kelvin sign: Kim
	{"ida", "IDA", "\u0130da", "\u0130DA"},        // Turkish dotted capital I: İda
	{"\u0131da"},                                  // dotless ı: its own name, not ida
	{"\u03b6\u03b5\u03c5\u03c2", "\u03b6\u03b5\u03c5\u03c3", "\u0396\u0395\u03a5\u03a3"}, // ζευς, ζευσ, ΖΕΥΣ
	{"\u00e9lise", "e\u0301lise", "\u00c9LISE", "E\u0301LISE"},                           // composed and decomposed é
}

// ident is a name in the abstract: which prefix, base and number.
type ident struct {
	prefix string
	base   int
	n      int
}

// render spells the name at random among its variants.
func (id ident) render(r *rand.Rand, domain string) string {
	spellings := nameBases[id.base]
	prefix := id.prefix
	if r.IntN(4) == 0 {
		prefix = strings.ToUpper(prefix)
	}
	if domain == "" {
		return fmt.Sprintf("%s-team-%s%d", prefix, spellings[r.IntN(len(spellings))], id.n)
	}
	if r.IntN(4) == 0 {
		domain = strings.ToUpper(domain)
	}
	return fmt.Sprintf("%s-%s%d@%s", prefix, spellings[r.IntN(len(spellings))], id.n, domain)
}

// ascii shows a string with every non-ASCII rune escaped, so that a
// report tells a long s or a decomposed é from its look-alike.
func ascii(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < 0x80:
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	return b.String()
}

// shorten cuts long text for the history, keeping its length visible.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("…(%d bytes)", len(s))
}

// runs shortens runs of one character longer than 12 (the "aaaa…" of an
// over-long field) to "<390 x a>".
func runs(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j] == rs[i] {
			j++
		}
		if j-i > 12 {
			fmt.Fprintf(&b, "<%d x %c>", j-i, rs[i])
		} else {
			b.WriteString(string(rs[i:j]))
		}
		i = j
	}
	return b.String()
}
