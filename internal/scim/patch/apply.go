package patch

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Options tune Apply for the resource being patched.
type Options struct {
	// ExternalMembers routes every operation on the group "members"
	// attribute (path ops, value-filter removes `members[value eq "x"]`,
	// no-path values that carry "members") into Result.Members instead of
	// the document: the server keeps membership outside the group object
	// because groups reach 100,000 members.
	ExternalMembers bool
}

// Result reports what Apply did.
type Result struct {
	// Changed is true when the document differs from what was passed in;
	// callers skip the write when it is false. Membership changes do not
	// count: they are in Members.
	Changed bool
	// Members lists the group membership changes in request order (only
	// with Options.ExternalMembers). They are requests, not a diff: adding
	// a current member still appears here, and the caller's store makes it
	// a no-op.
	Members []MemberOp
}

// Apply applies ops (RFC 7644 §3.5.2) to doc, a canonical document of
// resource type rt.
//
// Apply is atomic: it works on a deep copy and replaces the contents of doc
// (the same map, so callers holding it see the result) only when every
// operation succeeded and the result differs. On error doc is untouched
// and the error is a *scimerr.Error naming the failing operation.
//
// Choices where clients and the RFC disagree, all for Entra ID (see
// docs/entra-interop.md §2):
//   - add and replace on a value path (emails[type eq "work"].value) that
//     matches nothing create the element from the filter's eq comparisons,
//     where RFC 7644 §3.5.2.3 would answer noTarget for replace;
//   - remove of an absent attribute, element or member is a no-op, not
//     noTarget, so that a retried PATCH succeeds;
//   - null or "" in add or replace clears the target (RFC 7643 §2.5);
//   - unknown attributes and readOnly attributes inside a no-path value are
//     ignored, as in POST bodies; in a path they are errors (invalidPath,
//     or mutability unless the value is unchanged).
func Apply(rt *schema.ResourceType, doc map[string]any, ops []Operation, opt Options) (Result, error) {
	before := cloneMap(doc)
	a := &applier{rt: rt, doc: cloneMap(doc), opt: opt, touched: map[*schema.Attribute]schema.Path{}}
	if a.doc == nil {
		before, a.doc = map[string]any{}, map[string]any{}
	}
	for i, op := range ops {
		if err := a.apply(op); err != nil {
			return Result{}, annotate(err, i, op)
		}
	}
	a.dropLabelOnlyElements()
	res := Result{Members: a.members}
	if !reflect.DeepEqual(before, a.doc) {
		// The result must be a document a POST could have produced: this
		// catches what single operations cannot see, such as the limits on
		// values and undeclared extensions reached over many operations.
		if _, err := rt.Canonicalize(cloneMap(a.doc), schema.ModeReplace); err != nil {
			return Result{}, err
		}
		res.Changed = true
		clear(doc)
		for k, v := range a.doc {
			doc[k] = v
		}
	}
	return res, nil
}

// annotate prefixes the error detail with the operation it came from.
func annotate(err error, i int, op Operation) error {
	se, ok := scimerr.As(err)
	if !ok {
		se = scimerr.InvalidValue("%v", err)
	}
	where := fmt.Sprintf("Operations[%d] (%s", i, op.Op)
	if op.Path != "" {
		where += " " + truncate(op.Path)
	}
	return &scimerr.Error{Status: se.Status, ScimType: se.ScimType, Detail: where + "): " + se.Detail}
}

// applier holds the working copy of one Apply call.
type applier struct {
	rt      *schema.ResourceType
	doc     map[string]any
	opt     Options
	members []MemberOp
	// touched records the multi-valued complex attributes written by this
	// request, whose label-only elements are dropped at the end.
	touched map[*schema.Attribute]schema.Path
}

func (a *applier) apply(op Operation) error {
	kind := strings.ToLower(op.Op)
	switch kind {
	case OpAdd, OpReplace, OpRemove:
	default:
		return scimerr.InvalidSyntax("unknown op %q; expected add, replace or remove", truncate(op.Op))
	}
	// A remove with "value": null carries no value.
	hasValue := op.HasValue && (op.Value != nil || kind != OpRemove)
	if op.Path == "" {
		if kind == OpRemove {
			return scimerr.NoTarget("remove requires a path (RFC 7644 §3.5.2.2)")
		}
		return a.applyNoPath(kind, op.Value)
	}
	if urn, undeclared, ok := a.schemaPath(kind, op.Path, op.Value); ok {
		return a.applySchemaPath(kind, urn, op.Value, undeclared)
	}
	t, err := a.resolve(op.Path)
	if err != nil {
		return err
	}
	return a.applyTarget(kind, t, op.Value, hasValue, false)
}

// applyNoPath applies an add or replace whose value is an object of
// attribute names and values (RFC 7644 §3.5.2.1, §3.5.2.3). Keys are
// applied like Canonicalize reads a POST body: plain names and whole
// schema objects first, URN-qualified attribute keys second, each in key
// order, so the more specific key wins and the result does not depend on
// map iteration order.
func (a *applier) applyNoPath(kind string, v any) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return scimerr.InvalidValue("an operation without a path needs an object value, got %s", kindOf(v))
	}
	var plain, qualified []string
	for k, v := range obj {
		if _, isObj := v.(map[string]any); hasPrefixFold(k, "urn:") && !isObj && v != nil {
			qualified = append(qualified, k)
		} else {
			plain = append(plain, k)
		}
	}
	slices.Sort(plain)
	slices.Sort(qualified)
	for _, k := range append(plain, qualified...) {
		if err := a.applyKey(kind, k, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// applyKey applies one key of a no-path value. Unknown keys are ignored,
// as unknown attributes of a POST body are.
func (a *applier) applyKey(kind, key string, v any) error {
	if strings.EqualFold(key, "schemas") {
		return nil
	}
	if hasPrefixFold(key, "urn:") {
		if urn, ok := a.schemaURN(key); ok {
			return a.applySchemaObject(kind, urn, v, false)
		}
		if urn, _, _, err := schema.SplitPath(key); err == nil {
			if _, declared := a.schemaURN(urn); declared {
				return a.applyResolved(kind, key, v)
			}
		}
		if a.isUndeclaredExtension(key, v) {
			return a.applySchemaObject(kind, key, v, true)
		}
	}
	return a.applyResolved(kind, key, v)
}

// applyResolved applies a no-path key that names an attribute path.
func (a *applier) applyResolved(kind, key string, v any) error {
	t, err := a.resolve(key)
	if err != nil {
		// Not an attribute we know: ignored, like unknown attributes in a
		// POST body (RFC 7644 §3.3).
		return nil //nolint:nilerr // deliberate, see above
	}
	return a.applyTarget(kind, t, v, true, true)
}

// applySchemaObject applies {"<schema URN>": {...}}: the core schema or an
// extension addressed as a whole, merging into what is stored.
func (a *applier) applySchemaObject(kind, urn string, v any, undeclared bool) error {
	if v == nil {
		if strings.EqualFold(urn, a.rt.Schema.ID) {
			return nil
		}
		// null clears the whole extension (RFC 7643 §2.5).
		if key, ok := schema.FindKey(a.doc, urn); ok {
			delete(a.doc, key)
		}
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return scimerr.InvalidValue("schema %s must hold a JSON object, got %s", truncate(urn), kindOf(v))
	}
	for _, k := range sortedKeys(obj) {
		var t target
		if undeclared {
			if !schema.ValidName(k) {
				return scimerr.InvalidValue("invalid attribute name %q in schema %s", truncate(k), truncate(urn))
			}
			p, err := a.rt.Resolve(urn, k, "")
			if err != nil {
				return err
			}
			t = target{path: p}
		} else {
			var err error
			if t, err = a.resolve(urn + ":" + k); err != nil {
				continue // unknown attribute of a known schema: ignored
			}
		}
		if err := a.applyTarget(kind, t, obj[k], true, true); err != nil {
			return err
		}
	}
	return nil
}

// schemaPath reports whether path names a whole schema rather than an
// attribute: the core schema, a declared extension, or (on a resource type
// that accepts them) an undeclared extension. An undeclared extension URN
// and an attribute of one look alike ("urn:...:extension:Acme:2.0:User"
// could be attribute "User" of "urn:...:Acme:2.0"); an object or null
// value, or for remove a stored extension of that name, decides.
func (a *applier) schemaPath(kind, path string, v any) (urn string, undeclared, ok bool) {
	if urn, ok := a.schemaURN(path); ok {
		return urn, false, true
	}
	if !a.rt.AnyExtension || !schema.IsExtensionURN(path) {
		return "", false, false
	}
	if urn, _, _, err := schema.SplitPath(path); err == nil {
		if _, declared := a.schemaURN(urn); declared {
			return "", false, false // an attribute of a declared schema
		}
	}
	if kind == OpRemove {
		k, found := schema.FindKey(a.doc, path)
		_, isObj := a.doc[k].(map[string]any)
		return path, true, found && isObj
	}
	return path, true, a.isUndeclaredExtension(path, v)
}

// applySchemaPath applies an operation whose path is a schema URN, as
// several clients send for extensions: add and replace with an object
// merge its attributes into the extension (RFC 7644 §3.5.2.1, §3.5.2.3:
// attributes not named stay), replace or add with null and remove clear
// the extension (RFC 7643 §2.5). The core schema cannot be removed.
func (a *applier) applySchemaPath(kind, urn string, v any, undeclared bool) error {
	core := strings.EqualFold(urn, a.rt.Schema.ID)
	if kind == OpRemove || v == nil {
		if core {
			return scimerr.InvalidPath("%s is the core schema of %s and cannot be removed or cleared; name its attributes instead", a.rt.Schema.ID, a.rt.Name)
		}
		if key, ok := schema.FindKey(a.doc, urn); ok {
			delete(a.doc, key)
		}
		return nil
	}
	if _, isObj := v.(map[string]any); !isObj {
		return scimerr.InvalidValue("the value of path %s must be an object of its attributes, got %s", truncate(urn), kindOf(v))
	}
	if core {
		return a.applyNoPath(kind, v)
	}
	return a.applySchemaObject(kind, urn, v, undeclared)
}

// schemaURN finds the core or a declared extension schema named key.
func (a *applier) schemaURN(key string) (string, bool) {
	for _, urn := range a.rt.SchemaURNs() {
		if strings.EqualFold(urn, key) {
			return urn, true
		}
	}
	return "", false
}

// isUndeclaredExtension reports whether key with value v is a whole
// undeclared extension object ("urn:...:extension:Acme:2.0:User": {...})
// rather than one attribute of it ("urn:...:Acme:2.0:User:badge": "7").
// Undeclared attributes are simple, so an object (or null) value decides.
func (a *applier) isUndeclaredExtension(key string, v any) bool {
	if !a.rt.AnyExtension || !schema.IsExtensionURN(key) {
		return false
	}
	_, isObj := v.(map[string]any)
	return isObj || v == nil
}

// applyTarget applies one operation to a resolved target. fromNoPath marks
// keys of a no-path value, where readOnly attributes are skipped.
func (a *applier) applyTarget(kind string, t target, v any, hasValue, fromNoPath bool) error {
	p := t.path
	if a.opt.ExternalMembers && a.isMembers(p) {
		return a.memberOp(kind, t, v, hasValue)
	}
	if p.Attr.Mutability == schema.WriteOnly || p.Sub != nil && p.Sub.Mutability == schema.WriteOnly {
		return nil // the password: accepted, never stored
	}
	readOnly := p.Attr.Mutability == schema.ReadOnly || p.Sub != nil && p.Sub.Mutability == schema.ReadOnly
	if readOnly {
		if fromNoPath {
			return nil // Okta sends id in no-path group replaces
		}
		return a.checkReadOnly(kind, t, v)
	}
	immutable := p.Attr.Mutability == schema.Immutable
	old, had := a.get(p)
	if immutable {
		old = cloneValue(old)
	}

	var err error
	switch {
	case t.filter != nil:
		err = a.applyFiltered(kind, t, v)
	case p.Sub != nil:
		err = a.applySub(kind, p, v)
	default:
		err = a.applyAttr(kind, p, v, hasValue)
	}
	if err != nil || !immutable || !had {
		return err
	}
	// An immutable attribute may be set once, and "set" again to the value
	// it holds.
	if now, has := a.get(p); has && reflect.DeepEqual(old, now) {
		return nil
	}
	return scimerr.Mutability("attribute %q is immutable and already has a value", p.String())
}

// checkReadOnly accepts an operation on a readOnly attribute (id, meta,
// groups, manager.displayName) only when it would change nothing: Okta
// sends id and meta back unchanged. The operation is never applied, since
// a readOnly value cannot be written by clients at all.
func (a *applier) checkReadOnly(kind string, t target, v any) error {
	p := t.path
	cur, has := a.get(t.attrPath())
	attr := p.Attr
	if p.Sub != nil && !p.Attr.MultiValued {
		attr = p.Sub
		m, _ := cur.(map[string]any)
		cur, has = m[p.Sub.Name]
	}
	var unchanged bool
	switch {
	case t.filter != nil || p.Sub != nil && p.Attr.MultiValued:
		unchanged = false
	case kind == OpRemove || isEmptyValue(v):
		unchanged = !has
	default:
		unchanged = has && holds(attr, cur, v)
	}
	if unchanged {
		return nil
	}
	return scimerr.Mutability("attribute %q is readOnly and cannot be changed", p.String())
}

// holds reports whether the stored value cur already holds everything the
// request value v states. v is compared raw because coercion drops
// readOnly sub-attributes.
func holds(attr *schema.Attribute, cur, v any) bool {
	switch x := v.(type) {
	case map[string]any:
		if attr.MultiValued {
			return holds(attr, cur, []any{x})
		}
		cm, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		for k, sv := range x {
			sub := attr.Sub(k)
			if sub == nil {
				continue // unknown sub-attributes are ignored everywhere
			}
			stored, has := cm[sub.Name]
			if isEmptyValue(sv) {
				if has {
					return false
				}
				continue
			}
			if !has || !holds(sub, stored, sv) {
				return false
			}
		}
		return true
	case []any:
		list, ok := cur.([]any)
		if !ok || !attr.MultiValued {
			return false
		}
		elem := *attr
		elem.MultiValued = false
		for _, e := range x {
			if !slices.ContainsFunc(list, func(c any) bool { return holds(&elem, c, e) }) {
				return false
			}
		}
		return true
	case string:
		if b, ok := cur.(bool); ok {
			return strings.EqualFold(x, strconv.FormatBool(b))
		}
	}
	return simpleEqual(attr, cur, v)
}

// applyAttr applies an operation to a whole attribute.
func (a *applier) applyAttr(kind string, p schema.Path, v any, hasValue bool) error {
	attr := p.Attr
	if kind == OpRemove {
		if hasValue {
			return a.removeValues(p, v)
		}
		return a.clearAttr(p, kind)
	}
	if isEmptyValue(v) {
		return a.clearAttr(p, kind)
	}
	cv, err := a.rt.CoerceValue(p, v)
	if err != nil {
		return err
	}
	switch {
	case attr.MultiValued:
		list, _ := cv.([]any)
		if kind == OpReplace {
			if len(list) == 0 {
				return a.clearAttr(p, kind)
			}
			return a.setList(p, nil, list)
		}
		if len(list) == 0 {
			return nil // adding nothing
		}
		cur, _ := a.get(p)
		curList, _ := cur.([]any)
		return a.setList(p, curList, list)
	case attr.Type == schema.Complex && attr.Sub("value") == nil:
		// name, or any complex attribute without a "value": sub-attributes
		// merge, unmentioned ones stay (RFC 7644 §3.5.2.3).
		raw, _ := v.(map[string]any)
		cur, _ := a.get(p)
		merged, err := a.mergeElement(p, asMap(cur), raw)
		if err != nil {
			return err
		}
		return a.setOrClear(p, kind, merged)
	default:
		// Simple attributes, and references such as manager whose "value"
		// is the whole point: the new value replaces the old one, so a new
		// manager never inherits the old one's sub-attributes.
		return a.setOrClear(p, kind, cv)
	}
}

// setOrClear stores v at p, or clears p when v is nil or an empty object.
func (a *applier) setOrClear(p schema.Path, kind string, v any) error {
	if m, ok := v.(map[string]any); v == nil || ok && len(m) == 0 {
		return a.clearAttr(p, kind)
	}
	a.set(p, v)
	return nil
}

// clearAttr removes an attribute; removing an absent one is a no-op so
// that retries succeed. Required attributes cannot be cleared.
func (a *applier) clearAttr(p schema.Path, kind string) error {
	if _, ok := a.get(schema.Path{URN: p.URN, Attr: p.Attr}); !ok {
		return nil
	}
	if p.Attr.Required {
		if kind == OpRemove {
			return scimerr.Mutability("attribute %q is required and cannot be removed; replace it with a new value instead", p.String())
		}
		return scimerr.InvalidValue("attribute %q is required and cannot be set to null or \"\"", p.String())
	}
	a.del(p)
	return nil
}

// removeValues implements remove with a value: on a multi-valued attribute
// exactly the listed elements go (the same "value", or for elements
// without one, equal in every sub-attribute) (Entra removes members and proxy
// addresses this way); on a single-valued one the attribute is cleared if
// it holds that value.
func (a *applier) removeValues(p schema.Path, v any) error {
	cur, ok := a.get(p)
	if !ok {
		return nil
	}
	if isEmptyValue(v) {
		return a.clearAttr(p, OpRemove)
	}
	cv, err := a.rt.CoerceValue(p, v)
	if err != nil {
		return err
	}
	if !p.Attr.MultiValued {
		if cv == nil {
			return a.clearAttr(p, OpRemove)
		}
		if a.sameSingle(p.Attr, cur, cv) {
			return a.clearAttr(p, OpRemove)
		}
		return nil
	}
	// Elements are identified as for add (elementKey), through a hash set:
	// Entra removes members in batches and the list may be long.
	specs, _ := cv.([]any)
	drop := make(map[string]bool, len(specs))
	for _, s := range specs {
		drop[elementKey(p.Attr, s)] = true
	}
	list, _ := cur.([]any)
	kept := list[:0:0]
	for _, e := range list {
		if !drop[elementKey(p.Attr, e)] {
			kept = append(kept, e)
		}
	}
	if len(kept) == len(list) {
		return nil
	}
	if len(kept) == 0 {
		return a.clearAttr(p, OpRemove)
	}
	a.set(p, kept)
	return nil
}

// sameSingle compares a stored single value with a coerced one: by "value"
// for references (manager), by sub-attributes for other complex values.
func (a *applier) sameSingle(attr *schema.Attribute, cur, v any) bool {
	cm, cok := cur.(map[string]any)
	vm, vok := v.(map[string]any)
	if !cok || !vok {
		return !cok && !vok && simpleEqual(attr, cur, v)
	}
	if vs := attr.Sub("value"); vs != nil {
		return simpleEqual(vs, cm["value"], vm["value"])
	}
	return elementMatches(attr, vm, cm)
}

// setList stores cur with the elements of add merged in (an element equal
// to an existing one updates it instead of duplicating it), or add alone
// when cur is nil. The last element that add marks primary stays the only
// primary one (RFC 7643 §2.4).
func (a *applier) setList(p schema.Path, cur, add []any) error {
	out := make([]any, len(cur), len(cur)+len(add))
	copy(out, cur)
	index := make(map[string]int, len(out)+len(add))
	for i, e := range out {
		if _, dup := index[elementKey(p.Attr, e)]; !dup {
			index[elementKey(p.Attr, e)] = i
		}
	}
	primary := -1
	for _, e := range add {
		key := elementKey(p.Attr, e)
		i, found := index[key]
		if found {
			out[i] = mergeCoerced(p.Attr, out[i], e)
		} else {
			i = len(out)
			index[key] = i
			out = append(out, e)
		}
		if isPrimary(e) {
			primary = i
		}
	}
	if err := a.checkSize(p, out); err != nil {
		return err
	}
	a.setElements(p, out, primary)
	return nil
}

// mergeCoerced merges coerced element e into stored element cur. A value
// equal under the attribute's case rules keeps its stored spelling.
func mergeCoerced(attr *schema.Attribute, cur, e any) any {
	cm, cok := cur.(map[string]any)
	em, eok := e.(map[string]any)
	if !cok || !eok {
		return cur
	}
	out := cloneMap(cm)
	for k, v := range em {
		if old, ok := out[k]; ok && simpleEqual(attr.Sub(k), old, v) {
			continue
		}
		out[k] = v
	}
	return out
}

// setElements stores a multi-valued attribute after enforcing a single
// primary element: primary is the index of the element this operation
// made primary, or -1.
func (a *applier) setElements(p schema.Path, list []any, primary int) {
	if primary >= 0 {
		for i, e := range list {
			if m, ok := e.(map[string]any); ok && i != primary && isPrimary(m) {
				m = cloneMap(m)
				delete(m, "primary")
				list[i] = m
			}
		}
	}
	if len(list) == 0 {
		a.del(p)
		return
	}
	if p.Attr.Type == schema.Complex {
		a.touched[p.Attr] = schema.Path{URN: p.URN, Attr: p.Attr}
	}
	a.set(p, list)
}

func isPrimary(e any) bool {
	m, ok := e.(map[string]any)
	return ok && m["primary"] == true
}

// mergeElement merges raw sub-attribute values into cur: each key is
// coerced on its own so that null or "" clears that sub-attribute and
// unmentioned ones stay. readOnly and unknown keys are ignored.
func (a *applier) mergeElement(p schema.Path, cur, raw map[string]any) (map[string]any, error) {
	out := cloneMap(cur)
	if out == nil {
		out = map[string]any{}
	}
	for _, k := range sortedKeys(raw) {
		sub := p.Attr.Sub(k)
		if sub == nil || !writable(sub) {
			continue
		}
		cv, err := a.rt.CoerceValue(schema.Path{URN: p.URN, Attr: p.Attr, Sub: sub}, raw[k])
		if err != nil {
			return nil, err
		}
		if cv == nil {
			delete(out, sub.Name)
		} else {
			out[sub.Name] = cv
		}
	}
	return out, nil
}

// applySub applies an operation to a sub-attribute without a filter:
// name.givenName, or emails.type, which applies to every element.
func (a *applier) applySub(kind string, p schema.Path, v any) error {
	var cv any
	if kind != OpRemove {
		var err error
		if cv, err = a.rt.CoerceValue(p, v); err != nil {
			return err
		}
	}
	attrPath := schema.Path{URN: p.URN, Attr: p.Attr}
	cur, present := a.get(attrPath)
	if !p.Attr.MultiValued {
		if !present && cv == nil {
			return nil
		}
		obj := setSub(asMap(cur), p.Sub.Name, cv)
		if len(obj) == 0 {
			return a.clearAttr(attrPath, kind)
		}
		a.set(attrPath, obj)
		return nil
	}
	list, _ := cur.([]any)
	if len(list) == 0 {
		if cv == nil {
			return nil
		}
		a.setElements(attrPath, []any{map[string]any{p.Sub.Name: cv}}, primaryIndex(p.Sub, cv, 0))
		return nil
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		if err := checkImmutableSub(p, asMap(e), cv); err != nil {
			return err
		}
		if m := setSub(asMap(e), p.Sub.Name, cv); len(m) > 0 {
			out = append(out, m)
		}
	}
	a.setElements(attrPath, out, primaryIndex(p.Sub, cv, len(out)-1))
	return nil
}

// primaryIndex returns i when the operation sets "primary" to true.
func primaryIndex(sub *schema.Attribute, v any, i int) int {
	if sub != nil && sub.Name == "primary" && v == true {
		return i
	}
	return -1
}

// setSub returns a copy of m with sub set to v, or removed when v is nil.
func setSub(m map[string]any, sub string, v any) map[string]any {
	out := cloneMap(m)
	if out == nil {
		out = map[string]any{}
	}
	if v == nil {
		delete(out, sub)
	} else {
		out[sub] = v
	}
	return out
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// dropLabelOnlyElements removes elements left with nothing but "type" and
// "primary" from the attributes this request wrote. It runs at the end so
// that emails[type eq "work"].primary followed by .value in one request
// still lands on one element.
func (a *applier) dropLabelOnlyElements() {
	for _, p := range a.touched {
		cur, ok := a.get(p)
		if !ok {
			continue
		}
		list, _ := cur.([]any)
		kept := list[:0:0]
		for _, e := range list {
			if meaningful(e) {
				kept = append(kept, e)
			}
		}
		if len(kept) == len(list) {
			continue
		}
		if len(kept) == 0 {
			a.del(p)
		} else {
			a.set(p, kept)
		}
	}
}

// get returns the value of p's attribute (not the sub-attribute).
func (a *applier) get(p schema.Path) (any, bool) {
	c := p.Container(a.doc)
	if c == nil {
		return nil, false
	}
	v, ok := c[a.key(c, p)]
	return v, ok
}

// set stores the value of p's attribute, creating the extension object.
func (a *applier) set(p schema.Path, v any) {
	c := p.Container(a.doc)
	if c == nil {
		c = map[string]any{}
		a.doc[p.URN] = c
	}
	c[a.key(c, p)] = v
}

// del removes p's attribute, and the extension object once it is empty.
func (a *applier) del(p schema.Path) {
	c := p.Container(a.doc)
	if c == nil {
		return
	}
	delete(c, a.key(c, p))
	if len(c) == 0 && !p.IsCore() {
		if k, ok := schema.FindKey(a.doc, p.URN); ok {
			delete(a.doc, k)
		}
	}
}

// key is the map key of p's attribute in container c: the canonical name,
// or for an undeclared extension attribute the spelling first stored.
func (a *applier) key(c map[string]any, p schema.Path) string {
	if p.Attr.FreeForm() {
		if k, ok := schema.FindKey(c, p.Attr.Name); ok {
			return k
		}
	}
	return p.Attr.Name
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}
