// Package filter parses, binds and evaluates SCIM filters (RFC 7644
// §3.4.2.2) and PATCH paths (RFC 7644 §3.5.2).
package filter

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
)

// Expr is a filter expression: *Compare, *And, *Or, *Not or *ValuePath.
type Expr interface {
	String() string
	expr()
}

// Op is a comparison operator.
type Op string

// The comparison operators of RFC 7644 §3.4.2.2.
const (
	Eq Op = "eq"
	Ne Op = "ne"
	Co Op = "co"
	Sw Op = "sw"
	Ew Op = "ew"
	Gt Op = "gt"
	Lt Op = "lt"
	Ge Op = "ge"
	Le Op = "le"
	Pr Op = "pr"
)

var ops = []Op{Eq, Ne, Co, Sw, Ew, Gt, Lt, Ge, Le, Pr}

// AttrPath is an attribute reference as written. Inside a ValuePath
// filter, Attr names a sub-attribute of the enclosing attribute.
type AttrPath struct {
	URN, Attr, Sub string
	// Resolved is filled by Bind. For a comparison on a complex attribute
	// with a "value" sub-attribute it designates that sub-attribute.
	Resolved schema.Path
}

func (a AttrPath) String() string {
	var b strings.Builder
	if a.URN != "" {
		b.WriteString(a.URN)
		b.WriteByte(':')
	}
	b.WriteString(a.Attr)
	if a.Sub != "" {
		b.WriteByte('.')
		b.WriteString(a.Sub)
	}
	return b.String()
}

// Compare is an attribute expression: a comparison, or "pr" with a nil
// Value.
type Compare struct {
	Path AttrPath
	Op   Op
	// Value is a string, bool, int64, float64 or nil (JSON null); after
	// Bind it has the attribute's type.
	Value any

	raw  string    // the literal as written, to reinterpret bare tokens
	when time.Time // Value as a time, for dateTime attributes
}

// And is a conjunction.
type And struct{ Left, Right Expr }

// Or is a disjunction.
type Or struct{ Left, Right Expr }

// Not negates X.
type Not struct{ X Expr }

// ValuePath selects the elements of a (usually multi-valued) complex
// attribute that match Filter: emails[type eq "work"].
type ValuePath struct {
	Path   AttrPath
	Filter Expr
}

func (*Compare) expr()   {}
func (*And) expr()       {}
func (*Or) expr()        {}
func (*Not) expr()       {}
func (*ValuePath) expr() {}

func (c *Compare) String() string {
	if c.Op == Pr {
		return c.Path.String() + " pr"
	}
	return c.Path.String() + " " + string(c.Op) + " " + literal(c.Value)
}

func literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == 0 {
			return "0" // not "-0", which would read back as the integer 0
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if enc.Encode(x) == nil {
			return strings.TrimSuffix(b.String(), "\n")
		}
		return strconv.Quote(x)
	}
	return "null"
}

// String methods add parentheses only where precedence needs them.

func (e *And) String() string { return group(e.Left) + " and " + group(e.Right) }
func (e *Or) String() string  { return e.Left.String() + " or " + e.Right.String() }
func (e *Not) String() string { return "not (" + e.X.String() + ")" }
func (e *ValuePath) String() string {
	return e.Path.String() + "[" + e.Filter.String() + "]"
}

func group(e Expr) string {
	if _, ok := e.(*Or); ok {
		return "(" + e.String() + ")"
	}
	return e.String()
}

// Walk calls fn for e and, while fn returns true, for its children in
// order, depth first. The filter of a ValuePath is a child.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch x := e.(type) {
	case *And:
		Walk(x.Left, fn)
		Walk(x.Right, fn)
	case *Or:
		Walk(x.Left, fn)
		Walk(x.Right, fn)
	case *Not:
		Walk(x.X, fn)
	case *ValuePath:
		Walk(x.Filter, fn)
	}
}
