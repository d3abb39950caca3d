package filter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
)

// Match evaluates a bound expression (see Bind) on a canonical document.
// Strings compare per the attribute's caseExact; a multi-valued attribute
// matches when any of its values does; absent attributes match nothing
// except "ne" and "eq null". Unbound comparisons never match.
func Match(e Expr, doc map[string]any) bool {
	return match(e, doc, nil)
}

// MatchElement evaluates the bound filter of a value path (the part inside
// [...], as bound by Bind or BindPatchPath) on one element of the
// attribute, for callers that walk the elements themselves.
func MatchElement(filter Expr, elem map[string]any) bool {
	return elem != nil && match(filter, nil, elem)
}

// match evaluates e; elem is the element under test inside a value filter.
func match(e Expr, doc, elem map[string]any) bool {
	switch x := e.(type) {
	case *And:
		return match(x.Left, doc, elem) && match(x.Right, doc, elem)
	case *Or:
		return match(x.Left, doc, elem) || match(x.Right, doc, elem)
	case *Not:
		return !match(x.X, doc, elem)
	case *ValuePath:
		for _, v := range x.Path.Resolved.Values(doc) {
			if m, ok := v.(map[string]any); ok && match(x.Filter, doc, m) {
				return true
			}
		}
		return false
	case *Compare:
		p := x.Path.Resolved
		if p.Attr == nil {
			return false
		}
		var values []any
		if elem != nil {
			if p.Sub == nil {
				return false
			}
			if v, ok := elem[p.Sub.Name]; ok && v != nil {
				values = []any{v}
			}
		} else {
			values = p.Values(doc)
		}
		return x.matchValues(p.Target(), values)
	}
	return false
}

func (c *Compare) matchValues(attr *schema.Attribute, values []any) bool {
	switch {
	case c.Op == Pr:
		for _, v := range values {
			if present(v) {
				return true
			}
		}
		return false
	case c.Value == nil: // eq null / ne null
		absent := true
		for _, v := range values {
			if present(v) {
				absent = false
			}
		}
		return absent == (c.Op == Eq)
	case c.Op == Ne:
		// "ne" is the negation of "eq": true when the attribute is absent
		// and, for a multi-valued one, when no value equals the operand.
		eq := *c
		eq.Op = Eq
		return !eq.matchValues(attr, values)
	}
	for _, v := range values {
		if c.matchOne(attr, v) {
			return true
		}
	}
	return false
}

func present(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

func (c *Compare) matchOne(attr *schema.Attribute, v any) bool {
	if attr.FreeForm() {
		return c.matchFreeForm(v)
	}
	switch attr.Type {
	case schema.String, schema.Reference, schema.Binary:
		s, ok := v.(string)
		want, _ := c.Value.(string)
		return ok && compareStrings(c.Op, s, want, attr.CaseExact)
	case schema.Boolean:
		b, ok := v.(bool)
		return ok && c.Op == Eq && b == c.Value
	case schema.Integer, schema.Decimal:
		return compareNumbers(c.Op, v, c.Value)
	case schema.DateTime:
		s, ok := v.(string)
		if !ok {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return err == nil && ordered(c.Op, t.Compare(c.when))
	}
	return false
}

// matchFreeForm compares values of undeclared extension attributes, whose
// type is only known from the stored value.
func (c *Compare) matchFreeForm(v any) bool {
	text := c.raw
	if s, ok := c.Value.(string); ok {
		text = s
	}
	switch x := v.(type) {
	case string:
		return compareStrings(c.Op, x, text, false)
	case bool:
		return c.Op == Eq && strings.EqualFold(text, strconv.FormatBool(x))
	}
	want := c.Value
	if _, ok := want.(string); ok {
		n, err := parseNumber(text)
		if err != nil {
			return false
		}
		want = n
	}
	return c.Op != Co && c.Op != Sw && c.Op != Ew && compareNumbers(c.Op, v, want)
}

func compareStrings(op Op, got, want string, caseExact bool) bool {
	if !caseExact {
		// The one canonical form of names (docs/invariants.md, I2), so
		// that a filter finds exactly what uniqueness calls the same.
		got, want = namekey.Key(got), namekey.Key(want)
	}
	switch op {
	case Eq:
		return got == want
	case Co:
		return strings.Contains(got, want)
	case Sw:
		return strings.HasPrefix(got, want)
	case Ew:
		return strings.HasSuffix(got, want)
	}
	return ordered(op, strings.Compare(got, want))
}

// ordered applies eq and the ordering operators to a three-way comparison.
func ordered(op Op, cmp int) bool {
	switch op {
	case Eq:
		return cmp == 0
	case Gt:
		return cmp > 0
	case Ge:
		return cmp >= 0
	case Lt:
		return cmp < 0
	case Le:
		return cmp <= 0
	}
	return false
}

func compareNumbers(op Op, got, want any) bool {
	gi, gInt := toInt(got)
	wi, wInt := toInt(want)
	if gInt && wInt {
		return ordered(op, cmpInt(gi, wi))
	}
	gf, ok1 := toFloat(got)
	wf, ok2 := toFloat(want)
	if !ok1 || !ok2 {
		return false
	}
	switch {
	case gf < wf:
		return ordered(op, -1)
	case gf > wf:
		return ordered(op, 1)
	}
	return ordered(op, 0)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// toInt and toFloat also take the types encoding/json produces, so that
// documents read back from storage compare like canonical ones.
func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
