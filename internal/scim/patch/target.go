package patch

import (
	"github.com/scim-operator/scim-operator/internal/scim/filter"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// target is a resolved PATCH path.
type target struct {
	// path is the attribute, with Sub set for name.givenName and for the
	// sub-attribute after a filter (emails[type eq "work"].value).
	path schema.Path
	// filter is the bound value filter, or nil.
	filter filter.Expr
}

// resolve parses and binds a PATCH path. Unknown attributes are
// invalidPath, malformed filters invalidFilter (RFC 7644 Table 9).
func (a *applier) resolve(text string) (target, error) {
	pp, err := filter.ParsePatchPath(text)
	if err != nil {
		return target{}, err
	}
	bp, err := filter.BindPatchPath(pp, a.rt)
	if err != nil {
		return target{}, err
	}
	return target{path: bp.Target(), filter: bp.Filter}, nil
}

// attrPath is t's attribute without the sub-attribute.
func (t target) attrPath() schema.Path {
	return schema.Path{URN: t.path.URN, Attr: t.path.Attr}
}

// matches evaluates t's value filter on one element.
func (t target) matches(elem any) bool { return t.matcher()(elem) }

// matcher returns a function that evaluates t's value filter on elements.
// filter.Match reads paths from the top of a document, so each element is
// placed alone in a small document under its attribute and tested through
// a value path; the document is reused to keep long lists cheap.
func (t target) matcher() func(elem any) bool {
	p := t.attrPath()
	slot := []any{nil}
	doc := map[string]any{p.Attr.Name: slot}
	if !p.IsCore() {
		doc = map[string]any{p.URN: doc}
	}
	vp := &filter.ValuePath{Path: filter.AttrPath{Attr: p.Attr.Name, Resolved: p}, Filter: t.filter}
	return func(elem any) bool {
		m, ok := elem.(map[string]any)
		if !ok {
			return false
		}
		slot[0] = m
		return filter.Match(vp, doc)
	}
}

// seed builds the element a value path creates when nothing matches: the
// values of the filter's eq comparisons, joined by "and"
// (emails[type eq "work"] gives {"type":"work"}). Entra expects this for
// add and replace alike (docs/entra-interop.md §2 item 4).
func (a *applier) seed(t target) (map[string]any, error) {
	out := map[string]any{}
	if !collectEqs(t.filter, out) || len(out) == 0 {
		return nil, scimerr.NoTarget("no element of %q matches %s, and one cannot be created from that filter (only eq comparisons joined by and can)",
			t.attrPath().String(), t.filter.String())
	}
	for k, v := range out {
		sub := t.path.Attr.Sub(k)
		cv, err := a.rt.CoerceValue(schema.Path{URN: t.path.URN, Attr: t.path.Attr, Sub: sub}, v)
		if err != nil {
			return nil, err
		}
		if cv == nil {
			delete(out, k)
		} else {
			out[k] = cv
		}
	}
	return out, nil
}

// collectEqs gathers sub-attribute eq values of a conjunction into out.
// It fails on anything else, and on two different values for one name.
func collectEqs(e filter.Expr, out map[string]any) bool {
	switch x := e.(type) {
	case *filter.And:
		return collectEqs(x.Left, out) && collectEqs(x.Right, out)
	case *filter.Compare:
		sub := x.Path.Resolved.Sub
		if x.Op != filter.Eq || x.Value == nil || sub == nil || !writable(sub) {
			return false
		}
		if old, ok := out[sub.Name]; ok && !simpleEqual(sub, old, x.Value) {
			return false
		}
		out[sub.Name] = x.Value
		return true
	}
	return false
}

// memberFilterIDs reads the ids out of members[value eq "a" or value eq
// "b"], the only member filters that can be applied without the member
// list.
func memberFilterIDs(e filter.Expr, ids []string) ([]string, bool) {
	switch x := e.(type) {
	case *filter.Or:
		ids, ok := memberFilterIDs(x.Left, ids)
		if !ok {
			return nil, false
		}
		return memberFilterIDs(x.Right, ids)
	case *filter.Compare:
		id, ok := x.Value.(string)
		if x.Op != filter.Eq || !ok || id == "" || x.Path.Resolved.Sub == nil || x.Path.Resolved.Sub.Name != "value" {
			return nil, false
		}
		return append(ids, id), true
	}
	return nil, false
}
