package filter

import (
	"strings"
	"unicode/utf8"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// PatchPath is a PATCH operation path (RFC 7644 §3.5.2):
// attrPath / valuePath [subAttr], as in "name.givenName",
// "emails[type eq \"work\"].value" or "urn:...:User:manager".
type PatchPath struct {
	Attr   AttrPath
	Filter Expr   // nil without a [...] filter
	Sub    string // sub-attribute after "]", or ""
}

// ParsePatchPath parses a PATCH path. A malformed attribute path is an
// invalidPath error; a malformed [...] filter is invalidFilter, which is
// what RFC 7644 Table 9 prescribes for PATCH path filters.
func ParsePatchPath(s string) (PatchPath, error) {
	if len(s) > MaxLength {
		return PatchPath{}, scimerr.InvalidPath("path is %d bytes long; at most %d are accepted", len(s), MaxLength)
	}
	if !utf8.ValidString(s) {
		return PatchPath{}, scimerr.InvalidPath("path is not valid UTF-8")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return PatchPath{}, scimerr.InvalidPath("empty path")
	}
	p := &parser{s: s, fail: scimerr.InvalidPath, kind: "path"}
	attr, err := p.parseAttrPath()
	if err != nil {
		return PatchPath{}, err
	}
	out := PatchPath{Attr: attr}
	if p.eof() {
		return out, nil
	}
	if p.peek() != '[' {
		return PatchPath{}, p.errorf(`"[" or the end of the path`)
	}
	if attr.Sub != "" {
		return PatchPath{}, p.errorf(`the end of the path; "[" must follow an attribute, not a sub-attribute`)
	}
	p.pos++
	p.fail, p.kind = scimerr.InvalidFilter, "filter"
	if err := p.enter(); err != nil {
		return PatchPath{}, err
	}
	if out.Filter, err = p.parseOr(true); err != nil {
		return PatchPath{}, err
	}
	p.skipSpace()
	if p.peek() != ']' {
		return PatchPath{}, p.errorf(`"and", "or" or "]"`)
	}
	p.pos++
	p.fail, p.kind = scimerr.InvalidPath, "path"
	if p.eof() {
		return out, nil
	}
	if p.peek() != '.' {
		return PatchPath{}, p.errorf(`"." followed by a sub-attribute, or the end of the path`)
	}
	p.pos++
	start := p.pos
	for !p.eof() && isNameChar(p.s[p.pos]) {
		p.pos++
	}
	out.Sub = p.s[start:p.pos]
	if !schema.ValidName(out.Sub) {
		return PatchPath{}, p.errorAt(start, "a sub-attribute name")
	}
	if !p.eof() {
		return PatchPath{}, p.errorf("the end of the path")
	}
	return out, nil
}

// BindPatchPath resolves p against rt. Unknown attributes are invalidPath;
// problems inside the filter are invalidFilter. Unlike in filters, a
// complex attribute is not replaced by its "value" sub-attribute: PATCH
// addresses the attribute itself.
func BindPatchPath(p PatchPath, rt *schema.ResourceType) (PatchPath, error) {
	r, err := rt.Resolve(p.Attr.URN, p.Attr.Attr, p.Attr.Sub)
	if err != nil {
		return PatchPath{}, err
	}
	out := PatchPath{Attr: AttrPath{Attr: r.Attr.Name, Resolved: r}}
	if !r.IsCore() {
		out.Attr.URN = r.URN
	}
	if r.Sub != nil {
		out.Attr.Sub = r.Sub.Name
	}
	if p.Filter == nil {
		if p.Sub != "" {
			return PatchPath{}, scimerr.InvalidPath("sub-attribute %q must follow a [...] filter", p.Sub)
		}
		return out, nil
	}
	if r.Sub != nil || r.Attr.Type != schema.Complex {
		return PatchPath{}, scimerr.InvalidPath("%q is not a complex attribute, so it cannot take a [...] filter", out.Attr.String())
	}
	if out.Filter, err = bind(p.Filter, rt, &r); err != nil {
		return PatchPath{}, err
	}
	if p.Sub != "" {
		sub := r.Attr.Sub(p.Sub)
		if sub == nil {
			return PatchPath{}, scimerr.InvalidPath("unknown sub-attribute %q of %q; known sub-attributes are %s",
				p.Sub, r.String(), subNames(r.Attr))
		}
		out.Sub = sub.Name
	}
	return out, nil
}

// Target is the attribute a bound path finally designates: for
// emails[type eq "work"].value it is emails.value.
func (p PatchPath) Target() schema.Path {
	t := p.Attr.Resolved
	if p.Sub != "" && t.Attr != nil {
		t.Sub = t.Attr.Sub(p.Sub)
	}
	return t
}

func (p PatchPath) String() string {
	s := p.Attr.String()
	if p.Filter != nil {
		s += "[" + p.Filter.String() + "]"
	}
	if p.Sub != "" {
		s += "." + p.Sub
	}
	return s
}
