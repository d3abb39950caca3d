package filter

import (
	"strconv"
	"strings"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Bind resolves the attribute paths of e against rt (case-insensitively)
// and returns a new expression with canonical names, Resolved paths and
// values converted to the attributes' types. e is not modified. Unknown
// attributes and operators that make no sense for an attribute's type are
// invalidFilter errors.
func Bind(e Expr, rt *schema.ResourceType) (Expr, error) {
	return bind(e, rt, nil)
}

// bind binds e; parent is the attribute of the enclosing value filter.
func bind(e Expr, rt *schema.ResourceType, parent *schema.Path) (Expr, error) {
	switch x := e.(type) {
	case *And:
		l, r, err := bindPair(x.Left, x.Right, rt, parent)
		if err != nil {
			return nil, err
		}
		return &And{Left: l, Right: r}, nil
	case *Or:
		l, r, err := bindPair(x.Left, x.Right, rt, parent)
		if err != nil {
			return nil, err
		}
		return &Or{Left: l, Right: r}, nil
	case *Not:
		inner, err := bind(x.X, rt, parent)
		if err != nil {
			return nil, err
		}
		return &Not{X: inner}, nil
	case *ValuePath:
		if parent != nil {
			return nil, scimerr.InvalidFilter("value filters cannot be nested: %s", x)
		}
		path, err := resolve(x.Path, rt, nil)
		if err != nil {
			return nil, err
		}
		if path.Resolved.Sub != nil || path.Resolved.Attr.Type != schema.Complex {
			return nil, scimerr.InvalidFilter("%q is not a complex attribute, so it cannot take a [...] filter", path.String())
		}
		inner, err := bind(x.Filter, rt, &path.Resolved)
		if err != nil {
			return nil, err
		}
		return &ValuePath{Path: path, Filter: inner}, nil
	case *Compare:
		return bindCompare(x, rt, parent)
	}
	return nil, scimerr.InvalidFilter("empty filter expression")
}

func bindPair(l, r Expr, rt *schema.ResourceType, parent *schema.Path) (Expr, Expr, error) {
	bl, err := bind(l, rt, parent)
	if err != nil {
		return nil, nil, err
	}
	br, err := bind(r, rt, parent)
	if err != nil {
		return nil, nil, err
	}
	return bl, br, nil
}

// resolve resolves a path, relative to parent inside a value filter, and
// returns it with canonical names.
func resolve(a AttrPath, rt *schema.ResourceType, parent *schema.Path) (AttrPath, error) {
	if parent != nil {
		if a.URN != "" || a.Sub != "" {
			return AttrPath{}, scimerr.InvalidFilter("inside %s[...], name a sub-attribute of %s, not %q",
				parent, parent, a.String())
		}
		sub := parent.Attr.Sub(a.Attr)
		if sub == nil {
			return AttrPath{}, scimerr.InvalidFilter("unknown sub-attribute %q of %q", a.Attr, parent.String())
		}
		return AttrPath{Attr: sub.Name, Resolved: schema.Path{URN: parent.URN, Attr: parent.Attr, Sub: sub}}, nil
	}
	p, err := rt.Resolve(a.URN, a.Attr, a.Sub)
	if err != nil {
		if se, ok := scimerr.As(err); ok {
			return AttrPath{}, scimerr.InvalidFilter("%s", se.Detail)
		}
		return AttrPath{}, scimerr.InvalidFilter("%v", err)
	}
	out := AttrPath{Attr: p.Attr.Name, Resolved: p}
	if !p.IsCore() {
		out.URN = p.URN
	}
	if p.Sub != nil {
		out.Sub = p.Sub.Name
	}
	return out, nil
}

func bindCompare(c *Compare, rt *schema.ResourceType, parent *schema.Path) (Expr, error) {
	path, err := resolve(c.Path, rt, parent)
	if err != nil {
		return nil, err
	}
	out := &Compare{Path: path, Op: c.Op, Value: c.Value, raw: c.raw}
	if !validOp(c.Op) {
		return nil, scimerr.InvalidFilter("unknown operator %q", string(c.Op))
	}
	if c.Op == Pr {
		out.Value = nil
		return out, nil
	}
	attr := path.Resolved.Target()
	if attr.Type == schema.Complex {
		// Entra filters "manager eq <id>" and "members eq <id>": a complex
		// attribute compares by its value.
		v := attr.Sub("value")
		if v == nil {
			return nil, scimerr.InvalidFilter("%q is a complex attribute; compare one of its sub-attributes (%s) or use pr",
				path.String(), subNames(attr))
		}
		out.Path.Resolved.Sub = v
		attr = v
	}
	if out.Value == nil {
		if c.Op != Eq && c.Op != Ne {
			return nil, scimerr.InvalidFilter("%s: null can only be compared with eq or ne", c)
		}
		return out, nil
	}
	if attr.FreeForm() {
		return out, nil
	}
	if err := coerce(out, attr); err != nil {
		return nil, err
	}
	return out, nil
}

func validOp(op Op) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func subNames(a *schema.Attribute) string {
	names := make([]string, len(a.SubAttributes))
	for i, s := range a.SubAttributes {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// coerce converts c.Value to attr's type and rejects operators the type
// does not support (RFC 7644 §3.4.2.2).
func coerce(c *Compare, attr *schema.Attribute) error {
	reject := func(what string) error {
		return scimerr.InvalidFilter("%s: %q is of type %s; %s", c, c.Path.String(), attr.Type, what)
	}
	text := c.raw
	if s, ok := c.Value.(string); ok {
		text = s
	}
	switch attr.Type {
	case schema.String, schema.Reference:
		// A bare or numeric literal compared with a string attribute is
		// read as text: externalId eq 12345.
		c.Value = text
	case schema.Binary:
		if c.Op != Eq && c.Op != Ne {
			return reject("only eq, ne and pr apply")
		}
		c.Value = text
	case schema.Boolean:
		if c.Op != Eq && c.Op != Ne {
			return reject("only eq, ne and pr apply")
		}
		switch {
		case strings.EqualFold(text, "true"):
			c.Value = true
		case strings.EqualFold(text, "false"):
			c.Value = false
		default:
			return reject("the value must be true or false")
		}
	case schema.Integer, schema.Decimal:
		if c.Op == Co || c.Op == Sw || c.Op == Ew {
			return reject("co, sw and ew apply to strings only")
		}
		switch c.Value.(type) {
		case int64, float64:
		default:
			n, err := parseNumber(text)
			if err != nil {
				return reject("the value must be a number")
			}
			c.Value = n
		}
	case schema.DateTime:
		if c.Op == Co || c.Op == Sw || c.Op == Ew {
			return reject("co, sw and ew apply to strings only")
		}
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return reject("the value must be an RFC 3339 dateTime such as \"2026-01-01T00:00:00Z\"")
		}
		c.Value = text
		c.when = t
	default:
		return reject("it cannot be compared")
	}
	return nil
}

func parseNumber(s string) (any, error) {
	if !isNumber(s) {
		return nil, strconv.ErrSyntax
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	return strconv.ParseFloat(s, 64)
}
