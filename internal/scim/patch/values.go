package patch

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
)

// cloneValue deep-copies a decoded JSON value. Lists of maps or strings
// built by Go code rather than encoding/json are normalised to []any, the
// shape the rest of the package works on.
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneMap(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

// isEmptyValue reports the values RFC 7643 §2.5 treats as unassigned in a
// request: null and the empty string (Entra's gallery tests clear optional
// attributes with "").
func isEmptyValue(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}

// writable reports whether clients may set the attribute. writeOnly
// attributes (password) are accepted and dropped, as on create.
func writable(a *schema.Attribute) bool {
	return a.Mutability != schema.ReadOnly && a.Mutability != schema.WriteOnly
}

// simpleEqual compares two canonical simple values of attribute a, ignoring
// case for strings unless a is caseExact (RFC 7643 §2.3.1).
func simpleEqual(a *schema.Attribute, x, y any) bool {
	xs, xok := x.(string)
	ys, yok := y.(string)
	if xok && yok {
		if a != nil && a.CaseExact {
			return xs == ys
		}
		return strings.EqualFold(xs, ys)
	}
	return numberEqual(x, y) || reflect.DeepEqual(x, y)
}

// numberEqual treats int64 and float64 holding the same number as equal.
func numberEqual(x, y any) bool {
	xf, xok := asFloat(x)
	yf, yok := asFloat(y)
	return xok && yok && xf == yf
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case int:
		return float64(n), true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	}
	return 0, false
}

// fold is the hashing counterpart of simpleEqual: values equal under
// simpleEqual fold to the same key (up to Unicode special cases of
// strings.EqualFold, where a duplicate is at worst kept).
func fold(a *schema.Attribute, v any) string {
	switch x := v.(type) {
	case string:
		if a != nil && a.CaseExact {
			return "s" + x
		}
		return "s" + strings.ToLower(x)
	case bool:
		return "b" + strconv.FormatBool(x)
	}
	if f, ok := asFloat(v); ok {
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	b, _ := json.Marshal(v)
	return "j" + string(b)
}

// elementKey identifies an element of multi-valued attribute a for
// duplicate detection. Elements with a "value" are the same element when
// their values are equal (RFC 7643 §2.4 makes "value" the element's
// primary value), so re-adding an email with another type updates it
// rather than duplicating it; other elements (addresses) are the same only
// when every sub-attribute is equal.
func elementKey(a *schema.Attribute, e any) string {
	m, ok := e.(map[string]any)
	if !ok {
		return "v" + fold(a, e)
	}
	if vs := a.Sub("value"); vs != nil {
		if v, ok := m["value"]; ok {
			return "v" + fold(vs, v)
		}
	}
	var b strings.Builder
	b.WriteString("f")
	for _, k := range sortedKeys(m) {
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(fold(a.Sub(k), m[k])))
		b.WriteByte(';')
	}
	return b.String()
}

// elementMatches reports whether existing element e is one that a remove
// with value spec names: the same "value" when spec has one, otherwise
// every sub-attribute of spec equal in e.
func elementMatches(a *schema.Attribute, spec, e any) bool {
	sm, sok := spec.(map[string]any)
	em, eok := e.(map[string]any)
	if !sok || !eok {
		return sok == eok && fold(a, spec) == fold(a, e)
	}
	if vs := a.Sub("value"); vs != nil {
		if v, ok := sm["value"]; ok {
			return simpleEqual(vs, v, em["value"])
		}
	}
	if len(sm) == 0 {
		return false
	}
	for k, v := range sm {
		ev, ok := em[k]
		if !ok || !simpleEqual(a.Sub(k), v, ev) {
			return false
		}
	}
	return true
}

// meaningful reports whether an element carries data beyond the labels
// "type" and "primary". Label-only elements are what remains when a
// client clears emails[type eq "work"].value; they are dropped.
func meaningful(e any) bool {
	m, ok := e.(map[string]any)
	if !ok {
		return true
	}
	for k := range m {
		if k != "type" && k != "primary" {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
