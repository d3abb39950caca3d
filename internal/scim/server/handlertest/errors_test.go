package handlertest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// Every client mistake is an RFC 7644 §3.12 error with the right status
// and scimType.
func TestClientErrors(t *testing.T) {
	h := start(t, server.Config{MaxBodyBytes: 4096, MaxOperations: 3})
	alice, _, _, _ := people(h)
	eng := h.group("Engineering", alice)
	user := "/Users/" + alice
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		scimType           string
	}{
		// Filters.
		{"filter without a value", "GET", "/Users" + query("filter", `userName eq`), nil, 400, scimerr.TypeInvalidFilter},
		{"filter with an unknown operator", "GET", "/Users" + query("filter", `userName xx "a"`), nil, 400, scimerr.TypeInvalidFilter},
		{"filter on an unknown attribute", "GET", "/Users" + query("filter", `shoeSize eq "9"`), nil, 400, scimerr.TypeInvalidFilter},
		{"unbalanced parentheses", "GET", "/Groups" + query("filter", `(displayName eq "a"`), nil, 400, scimerr.TypeInvalidFilter},
		{"a search's filter", "POST", "/Users/.search", map[string]any{"filter": `userName eq`}, 400, scimerr.TypeInvalidFilter},
		{"a value path missing its bracket", "PATCH", user, patchOp(op("replace", `emails[type eq "work"`, "x")), 400, scimerr.TypeInvalidFilter},

		// Paging and sorting parameters.
		{"startIndex not a number", "GET", "/Users" + query("startIndex", "one"), nil, 400, scimerr.TypeInvalidValue},
		{"count not a number", "GET", "/Users" + query("count", "ten"), nil, 400, scimerr.TypeInvalidValue},
		{"sortOrder unknown", "GET", "/Users" + query("sortOrder", "sideways"), nil, 400, scimerr.TypeInvalidValue},
		{"sortBy unknown", "GET", "/Users" + query("sortBy", "shoeSize"), nil, 400, scimerr.TypeInvalidValue},

		// Bodies.
		{"not JSON", "POST", "/Users", `{"userName": `, 400, scimerr.TypeInvalidSyntax},
		{"not an object", "POST", "/Users", `["a"]`, 400, scimerr.TypeInvalidSyntax},
		{"a key twice", "POST", "/Users", `{"userName":"a@x","USERNAME":"b@x"}`, 400, scimerr.TypeInvalidSyntax},
		{"a PatchOp that is not JSON", "PATCH", user, `{"Operations":[}`, 400, scimerr.TypeInvalidSyntax},
		{"an unknown PATCH op", "PATCH", user, patchOp(op("frob", "userName", "x")), 400, scimerr.TypeInvalidSyntax},
		{"a search without its schema", "POST", "/Users/.search", map[string]any{"schemas": []string{"urn:x"}}, 400, scimerr.TypeInvalidSyntax},

		// Values.
		{"userName missing", "POST", "/Users", map[string]any{"displayName": "x"}, 400, scimerr.TypeInvalidValue},
		{"active not a boolean", "POST", "/Users", map[string]any{"userName": "x@y", "active": "maybe"}, 400, scimerr.TypeInvalidValue},
		{"PATCH active not a boolean", "PATCH", user, patchOp(op("replace", "active", "maybe")), 400, scimerr.TypeInvalidValue},
		{"displayName missing", "POST", "/Groups", map[string]any{"members": []any{}}, 400, scimerr.TypeInvalidValue},
		{"a member display too long", "PATCH", "/Groups/" + eng, patchOp(op("add", "members", []any{
			map[string]any{"value": alice, "display": strings.Repeat("d", scimv1.MaxMemberDisplayBytes+1)},
		})), 400, scimerr.TypeInvalidValue},

		// Targets and mutability.
		{"remove without a path", "PATCH", user, patchOp(op("remove", "", nil)), 400, scimerr.TypeNoTarget},
		{"a path filter that cannot create", "PATCH", user, patchOp(op("replace", `emails[type co "x"].value`, "a@b")), 400, scimerr.TypeNoTarget},
		{"replace id", "PATCH", user, patchOp(op("replace", "id", "x")), 400, scimerr.TypeMutability},
		{"replace the computed groups", "PATCH", user, patchOp(op("replace", "groups", "x")), 400, scimerr.TypeMutability},
		{"replace meta.created", "PATCH", user, patchOp(op("replace", "meta.created", "2020-01-01T00:00:00Z")), 400, scimerr.TypeMutability},
		{"too many operations", "PATCH", user, patchOp(op("add", "title", "a"), op("add", "title", "b"), op("add", "title", "c"), op("add", "title", "d")), 400, scimerr.TypeTooMany},

		// Not found.
		{"GET an unknown user", "GET", "/Users/no-such-user", nil, 404, ""},
		{"GET a user id that is no object name", "GET", "/Users/" + strings.Repeat("X", 300), nil, 404, ""},
		{"PATCH an unknown user", "PATCH", "/Users/no-such-user", patchOp(op("replace", "active", false)), 404, ""},
		{"PUT an unknown group", "PUT", "/Groups/no-such-group", map[string]any{"displayName": "x"}, 404, ""},
		{"DELETE an unknown group", "DELETE", "/Groups/no-such-group", nil, 404, ""},
		{"a group id as a user", "GET", "/Users/" + eng, nil, 404, ""},
		{"an unknown endpoint", "GET", "/Devices", nil, 404, ""},

		// Size, media type, unsupported endpoints.
		{"a body over MaxBodyBytes", "POST", "/Users", map[string]any{"userName": "big@x", "title": strings.Repeat("t", 5000)}, 413, ""},
		{"bulk", "POST", "/Bulk", map[string]any{}, 501, ""},
		{"me", "GET", "/Me", nil, 501, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustError(t, h.do(tc.method, tc.path, tc.body), tc.status, tc.scimType)
		})
	}
	// Nothing above changed alice.
	if res := must(t, h.do("GET", user, nil), http.StatusOK); res.str("title") != "Engineer" || res.get("active") != true {
		t.Errorf("a refused request changed the user: %s", res)
	}
}

func TestAuthenticationErrors(t *testing.T) {
	h := start(t, server.Config{})
	for _, token := range []string{"", "not-a-token"} {
		res := h.doAs(token, "GET", "/Users", nil)
		mustError(t, res, http.StatusUnauthorized, "")
		if res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("token %q: 401 without WWW-Authenticate", token)
		}
	}
	mustError(t, h.do("POST", "/Users", "userName=x", "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "")
}

// userName and displayName are unique per tenant under the canonical name
// key: case and Unicode folding included, another tenant not.
func TestUniqueness(t *testing.T) {
	h := start(t, server.Config{})
	h.user("Alice@Example.com")
	h.user("kelvin")
	h.user("e\u0301mile") // e and a combining acute accent
	bob := h.user("bob@example.com")
	h.group("Engineering")
	sales := h.group("Sales")
	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"another case", "POST", "/Users", map[string]any{"userName": "alice@EXAMPLE.COM"}},
		{"the Kelvin sign folds to k", "POST", "/Users", map[string]any{"userName": "\u212Aelvin"}},
		{"composed and decomposed accents meet", "POST", "/Users", map[string]any{"userName": "\u00c9MILE"}},
		{"a rename by PATCH", "PATCH", "/Users/" + bob, patchOp(op("replace", "userName", "ALICE@example.com"))},
		{"a rename by PUT", "PUT", "/Users/" + bob, map[string]any{"userName": "KELVIN"}},
		{"a group displayName", "POST", "/Groups", map[string]any{"displayName": "ENGINEERING"}},
		{"a group rename", "PATCH", "/Groups/" + sales, patchOp(op("replace", "displayName", "engineering"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustError(t, h.do(tc.method, tc.path, tc.body), http.StatusConflict, scimerr.TypeUniqueness)
		})
	}
	// Renaming to another case of one's own name is no conflict.
	must(t, h.do("PATCH", "/Users/"+bob, patchOp(op("replace", "userName", "Bob@Example.com"))), http.StatusNoContent)
	// ß and ss stay apart; another tenant has its own names.
	must(t, h.do("POST", "/Users", map[string]any{"userName": "stra\u00dfe"}), http.StatusCreated)
	must(t, h.do("POST", "/Users", map[string]any{"userName": "strasse"}), http.StatusCreated)
	must(t, h.doAs(tokenB, "POST", "/Users", map[string]any{"userName": "alice@example.com"}), http.StatusCreated)
}

func TestIfMatch(t *testing.T) {
	h := start(t, server.Config{})
	id := h.user("alice@example.com")
	etag := must(t, h.do("GET", "/Users/"+id, nil), http.StatusOK).header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) {
		t.Fatalf("ETag %q is not a weak tag", etag)
	}
	stale := `W/"not-the-version"`
	mustError(t, h.do("PATCH", "/Users/"+id, patchOp(op("replace", "title", "x")), "If-Match", stale), http.StatusPreconditionFailed, "")
	mustError(t, h.do("PUT", "/Users/"+id, map[string]any{"userName": "alice@example.com"}, "If-Match", stale), http.StatusPreconditionFailed, "")
	mustError(t, h.do("DELETE", "/Users/"+id, nil, "If-Match", stale), http.StatusPreconditionFailed, "")

	// The current version passes, and the write moves it: the old one is
	// stale from then on.
	res := must(t, h.do("PATCH", "/Users/"+id, patchOp(op("replace", "title", "x")), "If-Match", etag), http.StatusNoContent)
	next := res.header.Get("ETag")
	if next == etag || next == "" {
		t.Fatalf("the write answered ETag %q after %q", next, etag)
	}
	mustError(t, h.do("PATCH", "/Users/"+id, patchOp(op("replace", "title", "y")), "If-Match", etag), http.StatusPreconditionFailed, "")
	must(t, h.do("PATCH", "/Users/"+id, patchOp(op("replace", "title", "y")), "If-Match", "*"), http.StatusNoContent)

	// Groups: a member change moves the version too.
	g := h.group("Engineering")
	getag := must(t, h.do("GET", "/Groups/"+g, nil), http.StatusOK).header.Get("ETag")
	must(t, h.do("PATCH", "/Groups/"+g, patchOp(op("add", "members", []any{map[string]any{"value": id}})), "If-Match", getag), http.StatusNoContent)
	mustError(t, h.do("PATCH", "/Groups/"+g, patchOp(op("remove", "members", nil)), "If-Match", getag), http.StatusPreconditionFailed, "")
	if got := h.members(g); len(got) != 1 {
		t.Errorf("a refused PATCH changed the members: %q", got)
	}
	cur := must(t, h.do("GET", "/Groups/"+g, nil), http.StatusOK).header.Get("ETag")
	must(t, h.do("DELETE", "/Groups/"+g, nil, "If-Match", cur), http.StatusNoContent)
	mustError(t, h.do("GET", "/Groups/"+g, nil), http.StatusNotFound, "")
}

// unavailable is a store whose API server is down.
type unavailable struct{ server.Store }

func (unavailable) LiveUser(context.Context, string, string) (*scimv1.ProvisionedUser, error) {
	return nil, fmt.Errorf("reading user: %w", repository.ErrUnavailable)
}

func (unavailable) ScanUsers(context.Context, string) ([]*scimv1.ProvisionedUser, error) {
	return nil, fmt.Errorf("listing users: %w", repository.ErrUnavailable)
}

func (unavailable) CountGroups(context.Context, string, int) (int, error) {
	return 0, errors.New("a bug, not an outage")
}

// A storage outage is 503 with Retry-After, which Entra retries; any other
// storage error is a 500 that says nothing internal.
func TestStorageErrors(t *testing.T) {
	h := startWith(t, server.Config{}, func(s server.Store) server.Store { return unavailable{s} })
	for _, path := range []string{"/Users/some-id", "/Users"} {
		res := h.do("GET", path, nil)
		mustError(t, res, http.StatusServiceUnavailable, "")
		if res.header.Get("Retry-After") == "" {
			t.Errorf("GET %s: 503 without Retry-After", path)
		}
	}
	res := h.do("GET", "/Groups"+query("filter", `displayName sw "E"`), nil)
	mustError(t, res, http.StatusInternalServerError, "")
	if strings.Contains(string(res.raw), "bug") {
		t.Errorf("a 500 shows the internal error: %s", res.raw)
	}
}

// A tenant sees nothing of another tenant's resources.
func TestTenantIsolation(t *testing.T) {
	h := start(t, server.Config{})
	alice, _, _, _ := people(h)
	eng := h.group("Engineering", alice)
	for _, path := range []string{"/Users/" + alice, "/Groups/" + eng} {
		mustError(t, h.doAs(tokenB, "GET", path, nil), http.StatusNotFound, "")
		mustError(t, h.doAs(tokenB, "PATCH", path, patchOp(op("replace", "displayName", "x"))), http.StatusNotFound, "")
		mustError(t, h.doAs(tokenB, "DELETE", path, nil), http.StatusNotFound, "")
	}
	for _, path := range []string{"/Users", "/Groups", "/Users" + query("filter", `userName eq "bob@example.com"`)} {
		if res := must(t, h.doAs(tokenB, "GET", path, nil), http.StatusOK); res.num("totalResults") != 0 {
			t.Errorf("tenant B lists tenant A's resources at %s: %s", path, res)
		}
	}
	// Tenant B cannot add tenant A's user to its group.
	g := must(t, h.doAs(tokenB, "POST", "/Groups", map[string]any{"displayName": "Engineering",
		"members": []any{map[string]any{"value": alice}}}), http.StatusCreated)
	if list, _ := g.body["members"].([]any); len(list) != 0 {
		t.Errorf("tenant B's group holds tenant A's user: %s", g)
	}
}

// A filter no index answers reads the whole tenant: above the scan ceiling
// it is refused with 400 tooMany, while indexed filters still answer.
func TestScanCeiling(t *testing.T) {
	h := start(t, server.Config{ScanCeiling: 3})
	people(h)
	mustError(t, h.do("GET", "/Users"+query("filter", `userName sw "a"`), nil), http.StatusBadRequest, scimerr.TypeTooMany)
	mustError(t, h.do("GET", "/Users"+query("sortBy", "userName"), nil), http.StatusBadRequest, scimerr.TypeTooMany)
	res := must(t, h.do("GET", "/Users"+query("filter", `userName eq "bob@example.com"`), nil), http.StatusOK)
	if res.num("totalResults") != 1 {
		t.Errorf("an indexed filter: %s", res)
	}
	// A plain listing is paged, not refused.
	if res := must(t, h.do("GET", "/Users", nil), http.StatusOK); res.num("totalResults") != 4 {
		t.Errorf("a listing: %s", res)
	}
}
