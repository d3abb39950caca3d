package schema

import (
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Path is a resolved attribute reference.
type Path struct {
	// URN is the schema the attribute lives in: the core URN for core and
	// common attributes, the canonical extension URN otherwise (as first
	// written for undeclared extensions).
	URN string
	// Attr is the top-level attribute; synthetic for undeclared extensions.
	Attr *Attribute
	// Sub is the sub-attribute, or nil.
	Sub *Attribute
}

// IsCore reports whether the attribute lives at the top level of a document.
func (p Path) IsCore() bool { return p.URN == "" || hasPrefixFold(p.URN, corePrefix) }

// Target is the attribute the path designates: Sub if set, else Attr.
func (p Path) Target() *Attribute {
	if p.Sub != nil {
		return p.Sub
	}
	return p.Attr
}

// String renders the canonical text of the path; core attributes go
// without their URN.
func (p Path) String() string {
	if p.Attr == nil {
		return ""
	}
	var b strings.Builder
	if !p.IsCore() {
		b.WriteString(p.URN)
		b.WriteByte(':')
	}
	b.WriteString(p.Attr.Name)
	if p.Sub != nil {
		b.WriteByte('.')
		b.WriteString(p.Sub.Name)
	}
	return b.String()
}

// ValidName reports whether s is an ATTRNAME of RFC 7643 §2.1 (ALPHA
// followed by letters, digits, '-' or '_'), or "$ref".
func ValidName(s string) bool {
	if s == "$ref" {
		return true
	}
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || (c < '0' || c > '9') && c != '-' && c != '_') {
			return false
		}
	}
	return true
}

// Resolve finds the attribute urn:attr.sub, ignoring case everywhere. An
// empty urn means the core schema; failing that, a declared extension
// that has the attribute (Entra filters on "manager" without its URN).
func (rt *ResourceType) Resolve(urn, attr, sub string) (Path, error) {
	p, err := rt.resolveAttr(urn, attr)
	if err != nil {
		return Path{}, err
	}
	if sub == "" {
		return p, nil
	}
	if p.Attr.Type != Complex {
		return Path{}, scimerr.InvalidPath("attribute %q of %s has no sub-attributes, so %q cannot be addressed",
			p.String(), rt.Name, truncate(sub))
	}
	p.Sub = p.Attr.Sub(sub)
	if p.Sub == nil {
		return Path{}, scimerr.InvalidPath("unknown sub-attribute %q of %q; known sub-attributes are %s",
			truncate(sub), p.String(), attrNames(p.Attr.SubAttributes))
	}
	return p, nil
}

func (rt *ResourceType) resolveAttr(urn, name string) (Path, error) {
	if urn == "" || strings.EqualFold(urn, rt.Schema.ID) {
		if a := rt.Schema.Attr(name); a != nil {
			return Path{URN: rt.Schema.ID, Attr: a}, nil
		}
		if urn == "" {
			for _, e := range rt.Extensions {
				if a := e.Schema.Attr(name); a != nil {
					return Path{URN: e.Schema.ID, Attr: a}, nil
				}
			}
		}
		return Path{}, scimerr.InvalidPath("unknown attribute %q on %s; known attributes are %s",
			truncate(name), rt.Name, attrNames(rt.Schema.Attributes))
	}
	if s := rt.extension(urn); s != nil {
		if a := s.Attr(name); a != nil {
			return Path{URN: s.ID, Attr: a}, nil
		}
		return Path{}, scimerr.InvalidPath("unknown attribute %q in schema %s; known attributes are %s",
			truncate(name), s.ID, attrNames(s.Attributes))
	}
	if rt.AnyExtension && IsExtensionURN(urn) {
		if !ValidName(name) {
			return Path{}, scimerr.InvalidPath("invalid attribute name %q in schema %s", truncate(name), truncate(urn))
		}
		if s := rt.schemaByURN(urn + ":" + name); s != nil {
			return Path{}, scimerr.InvalidPath("%s is a schema, not an attribute", s.ID)
		}
		return Path{URN: CanonicalExtensionURN(urn), Attr: freeFormAttr(name)}, nil
	}
	return Path{}, scimerr.InvalidPath("unknown schema %q on %s; known schemas are %s",
		truncate(urn), rt.Name, strings.Join(rt.SchemaURNs(), ", "))
}

func freeFormAttr(name string) *Attribute {
	a := newAttr(name, String, "Attribute of an undeclared extension.")
	a.freeForm = true
	return a
}

func attrNames(attrs []*Attribute) string {
	names := make([]string, len(attrs))
	for i, a := range attrs {
		names[i] = a.Name
	}
	return strings.Join(names, ", ")
}

// ResolveText resolves a path written as text: "emails", "name.givenName",
// "urn:...:enterprise:2.0:User:manager.value". A text beginning with "urn:"
// splits at its last ':' into schema URN and attribute.
func (rt *ResourceType) ResolveText(path string) (Path, error) {
	urn, attr, sub, err := SplitPath(path)
	if err != nil {
		return Path{}, err
	}
	return rt.Resolve(urn, attr, sub)
}

// SplitPath splits a textual attribute path into URN, attribute and
// sub-attribute without consulting any schema.
func SplitPath(path string) (urn, attr, sub string, err error) {
	rest := path
	if hasPrefixFold(path, "urn:") {
		i := strings.LastIndexByte(path, ':')
		urn, rest = path[:i], path[i+1:]
	}
	attr, sub, _ = strings.Cut(rest, ".")
	if !ValidName(attr) || (sub != "" || strings.HasSuffix(rest, ".")) && !ValidName(sub) {
		return "", "", "", scimerr.InvalidPath("invalid attribute path %q", truncate(path))
	}
	return urn, attr, sub, nil
}

// truncate keeps hostile input out of error messages and logs.
func truncate(s string) string {
	const maxLen = 200
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}

// Value returns the values at p in doc: one element for a single-valued
// attribute, every element for a multi-valued one, and for a sub-attribute
// of a multi-valued attribute the sub-attribute of every element that has
// it. Absent values yield nil.
func (rt *ResourceType) Value(doc map[string]any, p Path) []any { return p.Values(doc) }

// Values is Value without the resource type, which the lookup does not need.
func (p Path) Values(doc map[string]any) []any {
	container := p.Container(doc)
	if container == nil || p.Attr == nil {
		return nil
	}
	key := p.Attr.Name
	if p.Attr.freeForm {
		var ok bool
		if key, ok = FindKey(container, key); !ok {
			return nil
		}
	}
	v, ok := container[key]
	if !ok || v == nil {
		return nil
	}
	var elems []any
	if list, isList := v.([]any); isList {
		elems = list
	} else {
		elems = []any{v}
	}
	if p.Sub == nil {
		return elems
	}
	var out []any
	for _, e := range elems {
		if m, ok := e.(map[string]any); ok {
			if sv, ok := m[p.Sub.Name]; ok && sv != nil {
				out = append(out, sv)
			}
		}
	}
	return out
}

// Container returns the map holding p's attribute in doc: doc itself for
// core attributes, the extension object otherwise (nil if absent).
func (p Path) Container(doc map[string]any) map[string]any {
	if p.IsCore() {
		return doc
	}
	key := p.URN
	if _, ok := doc[key]; !ok {
		if key, ok = FindKey(doc, key); !ok {
			return nil
		}
	}
	m, _ := doc[key].(map[string]any)
	return m
}
