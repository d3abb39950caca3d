package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Mode says which request a body comes from. Create and replace bodies are
// canonicalised the same way today; the mode exists so that callers state
// their intent and rules can diverge without changing call sites.
type Mode int

// The request a body comes from: POST or PUT.
const (
	ModeCreate Mode = iota
	ModeReplace
)

// Limits on hostile input. Canonicalisation only descends along the schema
// (at most resource → extension → attribute → element → sub-attribute) and
// never into unknown attributes, so nesting depth is bounded by the schema
// itself; what remains to bound is width and size.
const (
	MaxStringLen = 64 << 10 // bytes in one string value
	// MaxValues bounds the elements of one multi-valued attribute; large
	// groups are expected to be managed with PATCH, not one huge body.
	MaxValues = 50000
	// MaxFreeFormAttrs bounds the attributes of one undeclared extension.
	MaxFreeFormAttrs = 256
	// MaxFreeFormExtensions bounds the undeclared extensions of one resource.
	MaxFreeFormExtensions = 32
	maxNameLen            = 128
)

// Canonicalize turns a decoded JSON body (from encoding/json, with or
// without UseNumber) into a canonical document: names canonical, extension
// data nested under the canonical URN, booleans bool, integers int64,
// decimals float64, cleared values absent. Read-only attributes and the
// password are dropped; unknown attributes and schemas are ignored.
func (rt *ResourceType) Canonicalize(body map[string]any, _ Mode) (map[string]any, error) {
	c := canonicalizer{rt: rt, out: map[string]any{}}
	// Plain names and whole extension objects first, URN-qualified
	// attribute keys second, each pass in key order: the more specific form
	// wins and the result does not depend on map iteration order.
	var plain, qualified []string
	for k, v := range body {
		if _, isObj := v.(map[string]any); hasPrefixFold(k, "urn:") && !isObj {
			qualified = append(qualified, k)
		} else {
			plain = append(plain, k)
		}
	}
	slices.Sort(plain)
	slices.Sort(qualified)
	for _, k := range append(plain, qualified...) {
		if err := c.key(k, body[k]); err != nil {
			return nil, err
		}
	}
	if err := rt.checkRequired(c.out); err != nil {
		return nil, err
	}
	return c.out, nil
}

type canonicalizer struct {
	rt  *ResourceType
	out map[string]any
}

func (c *canonicalizer) key(k string, v any) error {
	rt := c.rt
	if strings.EqualFold(k, "schemas") {
		return nil
	}
	if !hasPrefixFold(k, "urn:") {
		if a := rt.Schema.Attr(k); a != nil {
			return c.set(Path{URN: rt.Schema.ID, Attr: a}, v)
		}
		return nil
	}
	obj, isObj := v.(map[string]any)
	if s := rt.schemaByURN(k); s != nil {
		if !isObj && v != nil {
			return scimerr.InvalidValue("schema %s must hold a JSON object, got %s", s.ID, jsonKind(v))
		}
		for _, sk := range sortedKeys(obj) {
			if a := s.Attr(sk); a != nil {
				if err := c.set(Path{URN: s.ID, Attr: a}, obj[sk]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// A full attribute URN such as "urn:...:enterprise:2.0:User:department".
	urn, attr, sub, splitErr := SplitPath(k)
	if splitErr == nil && rt.schemaByURN(urn) != nil {
		if p, err := rt.Resolve(urn, attr, sub); err == nil {
			return c.set(p, v)
		}
		return nil // unknown attribute of a known schema: ignored
	}
	if !rt.AnyExtension || !hasPrefixFold(k, ExtensionPrefix) {
		return nil // a schema we do not serve
	}
	if isObj || v == nil {
		if !IsExtensionURN(k) {
			return nil // not a schema URN at all: ignored like unknown schemas
		}
	} else if splitErr == nil && !IsExtensionURN(urn) {
		return nil
	}
	if isObj || v == nil {
		// An undeclared extension object; its attributes are free-form.
		for _, sk := range sortedKeys(obj) {
			if !ValidName(sk) {
				return scimerr.InvalidValue("invalid attribute name %q in schema %s", truncate(sk), truncate(k))
			}
			if err := c.set(Path{URN: CanonicalExtensionURN(k), Attr: freeFormAttr(sk)}, obj[sk]); err != nil {
				return err
			}
		}
		return nil
	}
	if splitErr != nil || sub != "" || len(urn) <= len(ExtensionPrefix) {
		return scimerr.InvalidValue("invalid extension attribute %q: expected <schema URN>:<attribute> with a simple value", truncate(k))
	}
	return c.set(Path{URN: CanonicalExtensionURN(urn), Attr: freeFormAttr(attr)}, v)
}

func (rt *ResourceType) schemaByURN(urn string) *Schema {
	if strings.EqualFold(urn, rt.Schema.ID) {
		return rt.Schema
	}
	return rt.extension(urn)
}

// set stores the canonical form of v at p, merging into what is there.
func (c *canonicalizer) set(p Path, v any) error {
	if !writable(p.Attr) || p.Sub != nil && !writable(p.Sub) {
		return nil
	}
	val, err := c.rt.CoerceValue(p, v)
	if err != nil {
		return err
	}
	container := c.out
	urnKey := ""
	if !p.IsCore() {
		urnKey = p.URN
		if k, ok := FindKey(c.out, p.URN); ok {
			urnKey = k
		}
		m, ok := c.out[urnKey].(map[string]any)
		if !ok {
			if p.Attr.freeForm && c.freeFormExtensions() >= MaxFreeFormExtensions {
				return scimerr.InvalidValue("too many extension schemas; at most %d are accepted", MaxFreeFormExtensions)
			}
			m = map[string]any{}
		}
		container = m
	}
	name := p.Attr.Name
	if p.Attr.freeForm {
		if k, ok := FindKey(container, name); ok {
			name = k
		} else if len(container) >= MaxFreeFormAttrs {
			return scimerr.InvalidValue("too many attributes in schema %s; at most %d are accepted", truncate(p.URN), MaxFreeFormAttrs)
		}
	}
	switch {
	case p.Sub != nil:
		// "urn:...:User:name.givenName" fills one sub-attribute of a
		// single-valued complex attribute.
		if p.Attr.MultiValued {
			return nil
		}
		m, _ := container[name].(map[string]any)
		m = mergeSub(m, p.Sub.Name, val)
		if m == nil {
			delete(container, name)
		} else {
			container[name] = m
		}
	case val == nil:
		delete(container, name)
	default:
		container[name] = val
	}
	if urnKey != "" {
		if len(container) == 0 {
			delete(c.out, urnKey)
		} else {
			c.out[urnKey] = container
		}
	}
	return nil
}

func (c *canonicalizer) freeFormExtensions() int {
	n := 0
	for k := range c.out {
		if hasPrefixFold(k, "urn:") && c.rt.extension(k) == nil {
			n++
		}
	}
	return n
}

func mergeSub(m map[string]any, sub string, val any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	if val == nil {
		delete(out, sub)
	} else {
		out[sub] = val
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// writable reports whether clients may supply a value. Read-only values
// (id, meta, groups) are ignored silently because every client echoes
// them back; the password is accepted and dropped.
func writable(a *Attribute) bool {
	return a.Mutability != ReadOnly && a.Mutability != WriteOnly
}

func (rt *ResourceType) checkRequired(doc map[string]any) error {
	for _, a := range rt.Schema.Attributes {
		if a.Required && writable(a) {
			if _, ok := doc[a.Name]; !ok {
				return scimerr.InvalidValue("attribute %q is required on %s", a.Name, rt.Name)
			}
		}
	}
	for _, e := range rt.Extensions {
		ext, ok := doc[e.Schema.ID].(map[string]any)
		if !ok {
			if e.Required {
				return scimerr.InvalidValue("schema %s is required on %s", e.Schema.ID, rt.Name)
			}
			continue
		}
		for _, a := range e.Schema.Attributes {
			if _, ok := ext[a.Name]; a.Required && writable(a) && !ok {
				return scimerr.InvalidValue("attribute %q is required on %s", Path{URN: e.Schema.ID, Attr: a}.String(), rt.Name)
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CoerceValue canonicalises one value for the attribute at p with the
// rules of Canonicalize; a nil result means "absent". For a path with a
// sub-attribute, v is the value of that sub-attribute.
func (rt *ResourceType) CoerceValue(p Path, v any) (any, error) {
	if p.Attr == nil {
		return nil, scimerr.InvalidPath("empty attribute path")
	}
	name := p.String()
	if p.Sub != nil {
		return coerceSingle(p.Sub, name, v)
	}
	return coerceAttr(p.Attr, name, v)
}

func coerceAttr(a *Attribute, name string, v any) (any, error) {
	switch {
	case v == nil:
		return nil, nil
	case a.freeForm:
		return coerceFreeForm(name, v)
	case a.singleRef:
		return coerceRef(name, v)
	case !a.MultiValued:
		return coerceSingle(a, name, v)
	}
	list, ok := v.([]any)
	if !ok {
		// A lone element where a list is expected is read as a list of one.
		list = []any{v}
	}
	if len(list) > MaxValues {
		return nil, scimerr.InvalidValue("attribute %q has %d values; at most %d are accepted", name, len(list), MaxValues)
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		c, err := coerceSingle(a, name, e)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// coerceSingle canonicalises one value, or one element of a multi-valued
// attribute.
func coerceSingle(a *Attribute, name string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if a.freeForm {
		return coerceFreeForm(name, v)
	}
	if a.Type != Complex {
		return coerceSimple(a, name, v)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if _, isList := v.([]any); !isList && a.MultiValued && a.Sub("value") != nil {
			// Bare values in a multi-valued complex attribute
			// (["admin"] for roles, ["id"] for members) mean their "value".
			m = map[string]any{"value": v}
		} else {
			return nil, scimerr.InvalidValue("attribute %q must be a JSON object, got %s", name, jsonKind(v))
		}
	}
	out := map[string]any{}
	for _, k := range sortedKeys(m) {
		sub := a.Sub(k)
		if sub == nil {
			// A sub-attribute sent under its alias counts when it is not
			// sent under its name too.
			if sub = a.subByAlias(k); sub != nil && hasKeyFold(m, sub.Name) {
				continue
			}
		}
		if sub == nil || !writable(sub) {
			continue
		}
		sv, err := coerceSimple(sub, name+"."+sub.Name, m[k])
		if err != nil {
			return nil, err
		}
		if sv != nil {
			out[sub.Name] = sv
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func coerceSimple(a *Attribute, name string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case String, Reference, Binary:
		s, ok := v.(string)
		if !ok {
			return nil, scimerr.InvalidValue("attribute %q must be a string, got %s", name, jsonKind(v))
		}
		return checkString(name, s)
	case Boolean:
		return coerceBool(name, v)
	case Integer:
		return coerceInt(name, v)
	case Decimal:
		f, ok := toFloat(v)
		if !ok {
			return nil, scimerr.InvalidValue("attribute %q must be a decimal number, got %s", name, describe(v))
		}
		return f, nil
	case DateTime:
		s, ok := v.(string)
		if !ok {
			return nil, scimerr.InvalidValue("attribute %q must be a dateTime string, got %s", name, jsonKind(v))
		}
		if s == "" {
			return nil, nil
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, scimerr.InvalidValue("attribute %q must be an RFC 3339 dateTime such as 2026-01-02T15:04:05Z, got %q", name, truncate(s))
		}
		return s, nil
	}
	return nil, scimerr.InvalidValue("attribute %q must be a JSON object, got %s", name, jsonKind(v))
}

func checkString(name, s string) (any, error) {
	if len(s) > MaxStringLen {
		return nil, scimerr.InvalidValue("attribute %q is %d bytes long; at most %d are accepted", name, len(s), MaxStringLen)
	}
	if s == "" {
		return nil, nil
	}
	return s, nil
}

// coerceBool accepts JSON booleans and, because Entra sends "True" and
// "False", the strings true and false in any case.
func coerceBool(name string, v any) (any, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch {
		case b == "":
			return nil, nil
		case strings.EqualFold(b, "true"):
			return true, nil
		case strings.EqualFold(b, "false"):
			return false, nil
		}
		return nil, scimerr.InvalidValue("attribute %q must be a boolean (true or false), got %q", name, truncate(b))
	}
	return nil, scimerr.InvalidValue("attribute %q must be a boolean (true or false), got %s", name, jsonKind(v))
}

func coerceInt(name string, v any) (any, error) {
	switch n := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, nil
		}
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	}
	if f, ok := toFloat(v); ok && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return int64(f), nil
	}
	return nil, scimerr.InvalidValue("attribute %q must be an integer, got %s", name, describe(v))
}

func toFloat(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(n), 64); err != nil {
			return 0, false
		}
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// coerceFreeForm keeps a simple value of an undeclared extension attribute
// in its JSON type: we do not know which type it should have.
func coerceFreeForm(name string, v any) (any, error) {
	switch x := v.(type) {
	case string:
		return checkString(name, x)
	case bool, int64:
		return x, nil
	case int:
		return int64(x), nil
	case json.Number, float64:
		f, ok := toFloat(x)
		if !ok {
			return nil, scimerr.InvalidValue("attribute %q must be a finite number, got %s", name, describe(v))
		}
		if i, err := strconv.ParseInt(fmt.Sprint(x), 10, 64); err == nil {
			return i, nil
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	}
	return nil, scimerr.InvalidValue("attribute %q of an undeclared extension must be a string, boolean or number, got %s", name, jsonKind(v))
}

// coerceRef normalises the manager reference, which arrives as "id",
// {"value":"id"} or [{"value":"id","$ref":"..."}], to {"value":"id"}. The
// $ref and displayName are the server's to compute.
func coerceRef(name string, v any) (any, error) {
	switch x := v.(type) {
	case string:
		s, err := checkString(name, x)
		if s == nil || err != nil {
			return nil, err
		}
		return map[string]any{"value": s}, nil
	case map[string]any:
		k, ok := FindKey(x, "value")
		if !ok {
			return nil, nil
		}
		if id, isStr := x[k].(string); isStr || x[k] == nil {
			return coerceRef(name, id)
		}
		return nil, scimerr.InvalidValue("attribute %q must hold a string \"value\", got %s", name+".value", jsonKind(x[k]))
	case []any:
		for _, e := range x {
			if _, isList := e.([]any); isList {
				return nil, scimerr.InvalidValue("attribute %q must be an object, got a nested array", name)
			}
			r, err := coerceRef(name, e)
			if r != nil || err != nil {
				return r, err
			}
		}
		return nil, nil
	}
	return nil, scimerr.InvalidValue("attribute %q must be an object such as {\"value\":\"<id>\"}, got %s", name, jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(truncate(x))
	case json.Number:
		return truncate(string(x))
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return jsonKind(v)
}

// subByAlias finds the sub-attribute whose alias is name, ignoring case.
func (a *Attribute) subByAlias(name string) *Attribute {
	for _, s := range a.SubAttributes {
		if s.alias != "" && strings.EqualFold(s.alias, name) {
			return s
		}
	}
	return nil
}

// hasKeyFold reports whether m has the key name, ignoring case.
func hasKeyFold(m map[string]any, name string) bool {
	_, ok := FindKey(m, name)
	return ok
}
