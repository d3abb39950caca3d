package server

import (
	"net/http"
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Discovery endpoints (RFC 7644 §4): they say exactly what is supported,
// since generic clients decide what to send from them.

func (s *Server) serviceProviderConfig(w http.ResponseWriter, _ *http.Request, rq *request) error {
	return writeJSON(w, rq, http.StatusOK, map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/scim-operator/scim-operator/blob/main/docs/entra.md",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": s.cfg.MaxPageSize},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": true},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type":        "oauthbearertoken",
			"name":        "Bearer token",
			"description": "The token from a ScimToken's Secret, sent as Authorization: Bearer <token>.",
			"primary":     true,
		}},
		"meta": map[string]any{
			"resourceType": "ServiceProviderConfig",
			"location":     rq.baseURL + "/ServiceProviderConfig",
		},
	})
}

func (s *Server) typesFor(r *http.Request, rq *request) []*schema.ResourceType {
	return []*schema.ResourceType{s.users(r.Context(), rq.tenant()), s.groups}
}

func (s *Server) resourceTypes(w http.ResponseWriter, r *http.Request, rq *request) error {
	var out []any
	for _, rt := range s.typesFor(r, rq) {
		out = append(out, rt.Representation(rq.baseURL))
	}
	return writeJSON(w, rq, http.StatusOK, listOf(out))
}

func (s *Server) resourceType(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	for _, rt := range s.typesFor(r, rq) {
		if strings.EqualFold(rt.ID, id) {
			return writeJSON(w, rq, http.StatusOK, rt.Representation(rq.baseURL))
		}
	}
	return scimerr.NotFound("no resource type %q; this server has User and Group", id)
}

func (s *Server) allSchemas(r *http.Request, rq *request) []*schema.Schema {
	var out []*schema.Schema
	for _, rt := range s.typesFor(r, rq) {
		out = append(out, rt.Schemas()...)
	}
	return out
}

func (s *Server) schemas(w http.ResponseWriter, r *http.Request, rq *request) error {
	var out []any
	for _, sc := range s.allSchemas(r, rq) {
		out = append(out, sc.Representation(rq.baseURL))
	}
	return writeJSON(w, rq, http.StatusOK, listOf(out))
}

func (s *Server) schemaByID(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	for _, sc := range s.allSchemas(r, rq) {
		if strings.EqualFold(sc.ID, id) {
			return writeJSON(w, rq, http.StatusOK, sc.Representation(rq.baseURL))
		}
	}
	return scimerr.NotFound("no schema %q", id)
}

func listOf(items []any) map[string]any {
	return map[string]any{
		"schemas":      []string{listResponseURN},
		"totalResults": len(items),
		"startIndex":   1,
		"itemsPerPage": len(items),
		"Resources":    items,
	}
}
