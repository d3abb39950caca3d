package schema

import "strings"

// Project applies attributes= or excludedAttributes= (RFC 7644 §3.4.2.5)
// to an output document and returns a new document; doc is not modified.
// Names resolve case-insensitively and unknown names are ignored. "always"
// attributes and "schemas" stay, "never" attributes go, and "request"
// attributes appear only when named in attributes. When attributes is
// non-empty, excluded is ignored: the RFC allows only one of them.
func (rt *ResourceType) Project(doc map[string]any, attributes, excluded []string) map[string]any {
	pr := projection{include: len(attributes) > 0}
	names := excluded
	if pr.include {
		names = attributes
	}
	pr.sel = rt.selection(names)
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		if strings.EqualFold(k, "schemas") {
			out[k] = v
			continue
		}
		if a := rt.Schema.Attr(k); a != nil {
			if pv, ok := pr.attr(rt.Schema.ID, a, v, false); ok {
				out[k] = pv
			}
			continue
		}
		ext, isObj := v.(map[string]any)
		if !isObj {
			continue
		}
		urn := k
		s := rt.extension(k)
		if s != nil {
			urn = s.ID
		} else if !rt.AnyExtension || !hasPrefixFold(k, ExtensionPrefix) {
			continue
		}
		whole := pr.sel.schemas[strings.ToLower(urn)]
		po := map[string]any{}
		for ak, av := range ext {
			var a *Attribute
			if s != nil {
				a = s.Attr(ak)
			} else {
				a = freeFormAttr(ak)
			}
			if a == nil {
				continue
			}
			if pv, ok := pr.attr(urn, a, av, whole); ok {
				po[ak] = pv
			}
		}
		if len(po) > 0 {
			out[k] = po
		}
	}
	return out
}

type projection struct {
	include bool
	sel     selection
}

type selection struct {
	schemas map[string]bool            // lower-cased URNs named whole
	attrs   map[string]map[string]bool // attr key -> lower-cased subs; "" = whole attribute
}

func attrKey(urn, name string) string {
	return strings.ToLower(urn) + "\x00" + strings.ToLower(name)
}

func (rt *ResourceType) selection(names []string) selection {
	sel := selection{schemas: map[string]bool{}, attrs: map[string]map[string]bool{}}
	for _, n := range names {
		n = stripValueFilter(strings.TrimSpace(n))
		if s := rt.schemaByURN(n); s != nil {
			sel.schemas[strings.ToLower(s.ID)] = true
			continue
		}
		if rt.AnyExtension && hasPrefixFold(n, ExtensionPrefix) {
			// Could be a whole undeclared extension or one of its
			// attributes; record both readings, only one can match.
			sel.schemas[strings.ToLower(n)] = true
		}
		p, err := rt.ResolveText(n)
		if err != nil {
			continue
		}
		k := attrKey(p.URN, p.Attr.Name)
		if sel.attrs[k] == nil {
			sel.attrs[k] = map[string]bool{}
		}
		if p.Sub == nil {
			sel.attrs[k][""] = true
		} else {
			sel.attrs[k][strings.ToLower(p.Sub.Name)] = true
		}
	}
	return sel
}

// attr projects one top-level attribute; wholeSchema says its schema was
// named as a whole.
func (pr projection) attr(urn string, a *Attribute, v any, wholeSchema bool) (any, bool) {
	subs := pr.sel.attrs[attrKey(urn, a.Name)]
	whole := wholeSchema || subs[""]
	var pv any
	switch {
	case !whole && len(subs) > 0 && a.Type == Complex:
		// Only some sub-attributes were named: the attribute stays (unless
		// never returned) and the decision moves down to its sub-attributes.
		if a.Returned == ReturnedNever || !pr.include && !pr.keep(a, false) {
			return nil, false
		}
		pv = pr.dropSubs(a, v, subs)
	case pr.keep(a, whole):
		pv = pr.dropSubs(a, v, nil)
	default:
		return nil, false
	}
	if isEmpty(pv) {
		return nil, false
	}
	return pv, true
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// keep decides for an attribute or sub-attribute; named says the request
// listed it (in attributes or excludedAttributes, depending on mode).
func (pr projection) keep(a *Attribute, named bool) bool {
	switch a.Returned {
	case ReturnedAlways:
		return true
	case ReturnedNever:
		return false
	case ReturnedRequest:
		return pr.include && named
	}
	return named == pr.include
}

// dropSubs filters the sub-attributes of a complex value (or of every
// element of a multi-valued one). subs holds the sub-attributes named in
// the request, nil when the attribute as a whole was decided.
func (pr projection) dropSubs(a *Attribute, v any, subs map[string]bool) any {
	if a.Type != Complex {
		return v
	}
	filter := func(m map[string]any) map[string]any {
		out := make(map[string]any, len(m))
		for k, sv := range m {
			sa := a.Sub(k)
			if sa == nil {
				continue
			}
			keep := sa.Returned != ReturnedNever
			if subs != nil {
				keep = pr.keep(sa, subs[strings.ToLower(sa.Name)])
			}
			if keep {
				out[k] = sv
			}
		}
		return out
	}
	switch x := v.(type) {
	case map[string]any:
		return filter(x)
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if fm := filter(m); len(fm) > 0 {
					out = append(out, fm)
				}
			} else {
				out = append(out, e)
			}
		}
		return out
	}
	return v
}

// stripValueFilter reads a value filter in an attribute name
// (`emails[type eq "work"]`, as Microsoft's validator sends in attributes=)
// as the attribute it filters (`emails`): RFC 7644 §3.4.2.5 names
// attributes, not elements, so the whole attribute is returned rather than
// the name ignored.
func stripValueFilter(n string) string {
	open := strings.IndexByte(n, '[')
	if open <= 0 {
		return n
	}
	end := strings.LastIndexByte(n, ']')
	if end < open {
		return n
	}
	return n[:open] + n[end+1:]
}
