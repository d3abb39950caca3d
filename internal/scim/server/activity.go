package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/scim-operator/scim-operator/internal/tokens"
)

// operations name the routes for status.activity: a bounded set of keys,
// from the route's method and pattern (below the base path).
var operations = map[string]string{
	"GET /Users": "listUsers", "POST /Users/.search": "searchUsers", "POST /Users": "createUser",
	"GET /Users/{id}": "getUser", "PUT /Users/{id}": "replaceUser", "PATCH /Users/{id}": "patchUser",
	"DELETE /Users/{id}": "deleteUser",
	"GET /Groups":        "listGroups", "POST /Groups/.search": "searchGroups", "POST /Groups": "createGroup",
	"GET /Groups/{id}": "getGroup", "PUT /Groups/{id}": "replaceGroup", "PATCH /Groups/{id}": "patchGroup",
	"DELETE /Groups/{id}":        "deleteGroup",
	"POST /.search":              "search",
	"GET /ServiceProviderConfig": "discovery", "GET /ResourceTypes": "discovery", "GET /ResourceTypes/{id}": "discovery",
	"GET /Schemas": "discovery", "GET /Schemas/{id}": "discovery",
}

// writeOperations change users or groups.
var writeOperations = map[string]bool{
	"createUser": true, "replaceUser": true, "patchUser": true, "deleteUser": true,
	"createGroup": true, "replaceGroup": true, "patchGroup": true, "deleteGroup": true,
}

// recordActivity counts an authenticated request for its token's
// status.activity. It gives the recorder the route's pattern, never the
// path sent (which holds ids), and the error's detail without the values
// it quoted (which may be user names or emails).
func (s *Server) recordActivity(r *http.Request, ow *observedWriter, start time.Time) {
	if s.active == nil || ow.principal.TokenName == "" {
		return // refused before authentication: no token to attribute it to
	}
	_, path, ok := strings.Cut(ow.pattern, " ") // "GET /scim/v2/Users/{id}", or no method
	if !ok {
		path = ow.pattern
	}
	path = strings.TrimPrefix(path, s.cfg.BasePath)
	if path == "" || path == "/" {
		path = "/{unknown}"
	}
	op := operations[r.Method+" "+path]
	if op == "" {
		op = "other"
	}
	status := ow.status
	if status == 0 {
		status = http.StatusOK
	}
	s.active.Record(tokens.Request{
		Principal: ow.principal, At: start, Operation: op,
		Write:  writeOperations[op] && status < 300,
		Method: r.Method, Path: path, Status: status, ScimType: ow.scimType, Detail: ow.detail,
		UserAgent: r.Header.Get("User-Agent"),
	})
}
