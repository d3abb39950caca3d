package schema

import "strings"

// Representation renders the schema as served on /Schemas (RFC 7643 §7).
func (s *Schema) Representation(baseURL string) map[string]any {
	return map[string]any{
		"schemas":     []any{SchemaURN},
		"id":          s.ID,
		"name":        s.Name,
		"description": s.Description,
		"attributes":  attrsRepresentation(s.Attributes),
		"meta": map[string]any{
			"resourceType": "Schema",
			"location":     strings.TrimRight(baseURL, "/") + "/Schemas/" + s.ID,
		},
	}
}

func attrsRepresentation(attrs []*Attribute) []any {
	out := make([]any, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a.representation())
	}
	return out
}

func (a *Attribute) representation() map[string]any {
	m := map[string]any{
		"name":        a.Name,
		"type":        string(a.Type),
		"multiValued": a.MultiValued,
		"description": a.Description,
		"required":    a.Required,
		"caseExact":   a.CaseExact,
		"mutability":  a.Mutability,
		"returned":    a.Returned,
		"uniqueness":  a.Uniqueness,
	}
	if len(a.CanonicalValues) > 0 {
		m["canonicalValues"] = stringsToAny(a.CanonicalValues)
	}
	if a.Type == Reference {
		m["referenceTypes"] = stringsToAny(a.ReferenceTypes)
	}
	if a.Type == Complex {
		m["subAttributes"] = attrsRepresentation(a.SubAttributes)
	}
	return m
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Representation renders the resource type as served on /ResourceTypes
// (RFC 7643 §6).
func (rt *ResourceType) Representation(baseURL string) map[string]any {
	exts := make([]any, 0, len(rt.Extensions))
	for _, e := range rt.Extensions {
		exts = append(exts, map[string]any{"schema": e.Schema.ID, "required": e.Required})
	}
	m := map[string]any{
		"schemas":     []any{ResourceTypeURN},
		"id":          rt.ID,
		"name":        rt.Name,
		"endpoint":    rt.Endpoint,
		"description": rt.Description,
		"schema":      rt.Schema.ID,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     strings.TrimRight(baseURL, "/") + "/ResourceTypes/" + rt.ID,
		},
	}
	if len(exts) > 0 {
		m["schemaExtensions"] = exts
	}
	return m
}
