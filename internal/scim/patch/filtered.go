package patch

import (
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// applyFiltered applies an operation on a value path:
// emails[type eq "work"], emails[type eq "work"].value,
// manager[value eq "id"].
func (a *applier) applyFiltered(kind string, t target, v any) error {
	ap := t.attrPath()
	cur, _ := a.get(ap)
	if !ap.Attr.MultiValued {
		return a.applyFilteredSingle(kind, t, cur, v)
	}
	list, _ := cur.([]any)
	var matched []int
	match := t.matcher()
	for i, e := range list {
		if match(e) {
			matched = append(matched, i)
		}
	}
	// The operation works on a copy: a failure half-way leaves the
	// document as it was.
	out := make([]any, len(list))
	copy(out, list)
	switch {
	case kind == OpRemove:
		return a.removeFiltered(t, out, matched)
	case t.path.Sub != nil:
		return a.setFilteredSub(t, out, matched, v)
	default:
		return a.setFilteredElements(kind, t, out, matched, v)
	}
}

// removeFiltered removes the matching elements, or only their
// sub-attribute (emails[type eq "work"].display).
func (a *applier) removeFiltered(t target, out []any, matched []int) error {
	if len(matched) == 0 {
		return nil // idempotent: nothing to remove
	}
	ap, sub := t.attrPath(), t.path.Sub
	if sub == nil {
		return a.removeElements(ap, out, matched)
	}
	for _, i := range matched {
		out[i] = setSub(asMap(out[i]), sub.Name, nil)
	}
	a.setElements(ap, out, -1)
	return nil
}

// setFilteredSub sets a sub-attribute of the matching elements
// (emails[type eq "work"].value); when none matches, it creates the element
// the filter describes.
func (a *applier) setFilteredSub(t target, out []any, matched []int, v any) error {
	ap, sub := t.attrPath(), t.path.Sub
	cv, err := a.rt.CoerceValue(t.path, v)
	if err != nil {
		return err
	}
	if len(matched) == 0 {
		if cv == nil {
			return nil // clearing what is not there
		}
		elem, err := a.seed(t)
		if err != nil {
			return err
		}
		elem[sub.Name] = cv
		if err := t.mustMatch(elem); err != nil {
			return err
		}
		out = append(out, elem)
		matched = []int{len(out) - 1}
	} else {
		for _, i := range matched {
			old := asMap(out[i])
			if err := checkImmutableSub(t.path, old, cv); err != nil {
				return err
			}
			out[i] = setSub(old, sub.Name, cv)
		}
	}
	a.setElements(ap, out, primaryIndex(sub, cv, matched[len(matched)-1]))
	return a.checkSize(ap, out)
}

// setFilteredElements adds or replaces whole matching elements
// (emails[type eq "work"] with an object); null or "" clears them.
func (a *applier) setFilteredElements(kind string, t target, out []any, matched []int, v any) error {
	ap := t.attrPath()
	if isEmptyValue(v) {
		return a.removeElements(ap, out, matched)
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return scimerr.InvalidValue("%q selects elements, so the value must be an object, got %s", t.attrPath().String(), kindOf(v))
	}
	if _, err := a.rt.CoerceValue(ap, raw); err != nil {
		return err
	}
	var err error
	if len(matched) == 0 {
		out, matched, err = a.appendFilteredElement(t, out, raw)
	} else {
		err = a.mergeMatched(kind, t, out, matched, raw)
	}
	if err != nil {
		return err
	}
	primary := -1
	for _, i := range matched {
		if isPrimary(out[i]) {
			primary = i
		}
	}
	a.setElements(ap, out, primary)
	return a.checkSize(ap, out)
}

// appendFilteredElement creates the element the filter describes, merged
// with raw, when no element matches; matched becomes its index.
func (a *applier) appendFilteredElement(t target, out []any, raw map[string]any) ([]any, []int, error) {
	elem, err := a.seed(t)
	if err != nil {
		return nil, nil, err
	}
	if elem, err = a.mergeElement(t.attrPath(), elem, raw); err != nil {
		return nil, nil, err
	}
	if err := t.mustMatch(elem); err != nil {
		return nil, nil, err
	}
	out = append(out, elem)
	return out, []int{len(out) - 1}, nil
}

// mergeMatched merges raw into each matching element in place (add), or
// replaces each with raw (replace).
func (a *applier) mergeMatched(kind string, t target, out []any, matched []int, raw map[string]any) error {
	for _, i := range matched {
		base := asMap(out[i])
		if kind == OpReplace {
			// RFC 7644 §3.5.2.3 replaces matching elements whole. The
			// filter's eq values are kept so the same path still finds
			// the element.
			var err error
			if base, err = a.seed(t); err != nil {
				base = map[string]any{}
			}
		}
		elem, err := a.mergeElement(t.attrPath(), base, raw)
		if err != nil {
			return err
		}
		out[i] = elem
	}
	return nil
}

// applyFilteredSingle applies a value path on a single-valued complex
// attribute, which Entra reportedly sends as manager[value eq "id"]: the
// filter decides whether the operation applies at all.
func (a *applier) applyFilteredSingle(kind string, t target, cur, v any) error {
	if cur == nil || !t.matches(cur) {
		if kind == OpRemove {
			return nil
		}
		return scimerr.NoTarget("%q does not match %s", t.attrPath().String(), t.filter.String())
	}
	if t.path.Sub != nil {
		return a.applySub(kind, t.path, v)
	}
	return a.applyAttr(kind, t.path, v, kind != OpRemove)
}

// checkImmutableSub refuses to change an immutable sub-attribute that
// already has a value (members.value: a member is removed and added, not
// renamed).
func checkImmutableSub(p schema.Path, elem map[string]any, v any) error {
	if p.Sub == nil || p.Sub.Mutability != schema.Immutable {
		return nil
	}
	if prev, ok := elem[p.Sub.Name]; ok && (v == nil || !simpleEqual(p.Sub, prev, v)) {
		return scimerr.Mutability("sub-attribute %q is immutable and already has a value", p.String())
	}
	return nil
}

// mustMatch refuses to create an element that its own filter would not
// find (emails[value eq "a"].value set to "b"): a retry would create
// another one.
func (t target) mustMatch(elem map[string]any) error {
	if t.matches(elem) {
		return nil
	}
	return scimerr.NoTarget("no element of %q matches %s, and the value would create one that does not match it either",
		t.attrPath().String(), t.filter.String())
}

// removeElements removes the elements at the sorted indices idx.
func (a *applier) removeElements(p schema.Path, list []any, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	kept := list[:0:0]
	next := 0
	for i, e := range list {
		if next < len(idx) && idx[next] == i {
			next++
			continue
		}
		kept = append(kept, e)
	}
	a.setElements(p, kept, -1)
	return nil
}

// checkSize keeps repeated adds from growing an attribute past what a
// create body may hold.
func (a *applier) checkSize(p schema.Path, list []any) error {
	if len(list) > schema.MaxValues {
		return scimerr.InvalidValue("attribute %q would have %d values; at most %d are accepted", p.String(), len(list), schema.MaxValues)
	}
	return nil
}
