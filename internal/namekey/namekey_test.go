package namekey

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestKeyJoinsOneFamily(t *testing.T) {
	same := [][]string{
		{"ik-team", "IK-team", "İK-team", "Ik-TEAM"},
		{"kelvin", "\u212Aelvin", "KELVIN"},
		{"class", "cla\u017Fs", "CLASS", "cla\u017F\u017F"},
		{"σοφία", "ΣΟΦΊΑ", "σοφία", "\u03c2οφία"},
		{"ὀδυσσεύς", "ὈΔΥΣΣΕΎΣ", "ὀδυσσεύς"},
		{"josé", "jose\u0301", "JOSÉ", "JOSE\u0301"},
		{"fi", "\ufb01", "FI"},
		{"abc", "ＡＢＣ"},
	}
	for _, family := range same {
		want := Key(family[0])
		for _, v := range family[1:] {
			if got := Key(v); got != want {
				t.Errorf("Key(%q) = %q, Key(%q) = %q: want the same key", v, got, family[0], want)
			}
			if !Equal(v, family[0]) {
				t.Errorf("Equal(%q, %q) = false", v, family[0])
			}
		}
	}
}

func TestKeyKeepsDistinctLettersApart(t *testing.T) {
	apart := [][2]string{
		{"ik-team", "\u0131k-team"}, // Turkish dotless ı is its own letter
		{"strasse", "straße"},       // simple folding: ß is not ss
		{"alice", "alice2"},
		{"e", "é"},
	}
	for _, p := range apart {
		if Key(p[0]) == Key(p[1]) {
			t.Errorf("Key(%q) == Key(%q) = %q: want different keys", p[0], p[1], Key(p[0]))
		}
	}
}

// FuzzKey checks the properties every caller relies on: the key is a fixed
// point, agrees with strings.EqualFold (what EqualFold joins, Key joins) and
// ignores normalization form.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"İK-team", "\u212A", "ſ", "ς", "é", "e\u0301", "ǅ", "ﬃ", "ΐ"} {
		f.Add(s, strings.ToUpper(s))
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		ka := Key(a)
		if slow := slowKey(a); ka != slow {
			t.Fatalf("Key(%q) = %q, but the general path gives %q", a, ka, slow)
		}
		if Key(ka) != ka {
			t.Fatalf("Key(Key(%q)) = %q, want %q", a, Key(ka), ka)
		}
		if strings.EqualFold(a, b) && Key(a) != Key(b) {
			t.Fatalf("EqualFold(%q, %q) but keys %q and %q differ", a, b, Key(a), Key(b))
		}
		if Key(strings.ToLower(a)) != ka && Key(strings.ToUpper(a)) != ka {
			// Upper- or lower-casing may leave the class only for runes
			// whose case mappings are not in one fold orbit; one of the two
			// must agree.
			t.Fatalf("Key(%q) = %q disagrees with both its lower and upper case", a, ka)
		}
	})
}

// slowKey is Key without its ASCII shortcut, to check the shortcut against.
func slowKey(s string) string {
	s = norm.NFKC.String(s)
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return norm.NFKC.String(b.String())
}

func TestASCIIShortcutAgrees(t *testing.T) {
	var all strings.Builder
	for c := 0; c < utf8.RuneSelf; c++ {
		all.WriteByte(byte(c))
	}
	for _, s := range []string{all.String(), "Kelvin", "SAMS", "Alice@Example.TEST"} {
		if Key(s) != slowKey(s) {
			t.Errorf("Key(%q) = %q, general path %q", s, Key(s), slowKey(s))
		}
	}
}
