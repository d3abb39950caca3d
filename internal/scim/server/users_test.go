package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// entraCreate is the body Entra sends to create a user (entra-interop.md).
const entraCreate = `{
  "schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId":"alice","userName":"Alice@Contoso.test","active":"True","displayName":"Alice Liddell",
  "emails":[{"primary":true,"type":"work","value":"alice@contoso.test"}],
  "meta":{"resourceType":"User"},
  "name":{"formatted":"Alice Liddell","familyName":"Liddell","givenName":"Alice"},
  "title":null,
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","employeeNumber":"1042"}
}`

// entraUserPatches are Entra's default-dialect PATCHes of the user
// entraCreate made: deactivation, value-path adds and the manager, and a
// no-path replace with dotted and URN keys.
var entraUserPatches = []string{
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
	  {"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
	  {"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"},
	  {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"7d3e9a10"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{
	  "displayName":"Alice L.","name.givenName":"Alicia",
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"2042"}}]}`,
}

func TestUserLifecycle(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)

	// Test Connection: a user that cannot exist -> 200 with an empty list.
	res := expect(t, r.do(t, tok, "GET", `/Users?filter=userName+eq+%22d2f4c6a8-0b1e-4c3d-9e8f-7a6b5c4d3e2f%22`, nil), 200)
	if res.total() != 0 || len(res.resources()) != 0 || res.body["startIndex"] != float64(1) {
		t.Fatalf("empty query: %s", res)
	}

	id := createEntraUser(t, r, tok)
	checkUserFilters(t, r, tok, id)

	// Duplicate userName in another case -> 409 uniqueness.
	dup := strings.Replace(entraCreate, "Alice@Contoso.test", "alice@CONTOSO.test", 1)
	expect(t, r.do(t, tok, "POST", "/Users", dup), 409, "uniqueness")

	v1 := applyEntraPatches(t, r, tok, id)

	// Re-applying a PATCH changes nothing, not even the version.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, entraUserPatches[0]), 204)
	if again := expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200); again.str("meta.version") != v1 {
		t.Errorf("idempotent PATCH wrote anyway: version %s -> %s", v1, again.str("meta.version"))
	}

	// If-Match: a stale version gets 412; the current one works.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, entraUserPatches[2], "If-Match", `W/"1"`), 412)
	expect(t, r.do(t, tok, "PUT", "/Users/"+id, `{"userName":"alice@contoso.test","active":true}`, "If-Match", v1), 200)
	put := expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	if _, ok := put.body["displayName"]; ok || put.body["active"] != true {
		t.Errorf("PUT replaces the whole resource: %s", put.raw)
	}

	// Rename frees the old userName and claims the new one.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"alice.new@contoso.test"}]}`), 204)
	bob := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"alice@contoso.test"}`), 201)
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"ALICE.NEW@contoso.test"}`), 409, "uniqueness")

	// DELETE -> 204, then 404 everywhere, and zero results from filters.
	expect(t, r.do(t, tok, "DELETE", "/Users/"+id, nil), 204)
	expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 404)
	expect(t, r.do(t, tok, "DELETE", "/Users/"+id, nil), 404)
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, entraUserPatches[0]), 404)
	if res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(`userName eq "alice.new@contoso.test"`), nil), 200); res.total() != 0 {
		t.Errorf("deleted user still found: %s", res)
	}
	// Its userName is free again.
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"alice.new@contoso.test"}`), 201)
	expect(t, r.do(t, tok, "DELETE", "/Users/"+bob.str("id"), nil), 204)
}

// createEntraUser POSTs entraCreate and checks the answer: Location, a
// JSON boolean for "True", meta and ETag, no null title, and the
// enterprise extension. It returns the id.
func createEntraUser(t *testing.T, r *replica, tok string) string {
	created := expect(t, r.do(t, tok, "POST", "/Users", entraCreate), 201)
	id := created.str("id")
	if id == "" || created.header.Get("Location") != "https://scim.example.test/scim/v2/Users/"+id {
		t.Fatalf("created: id %q Location %q", id, created.header.Get("Location"))
	}
	if created.body["active"] != true {
		t.Errorf(`"active":"True" must come back as JSON true, got %#v`, created.body["active"])
	}
	if created.str("meta.resourceType") != "User" || created.str("meta.version") == "" ||
		created.header.Get("ETag") != created.str("meta.version") {
		t.Errorf("meta/ETag: %s (ETag %q)", created.raw, created.header.Get("ETag"))
	}
	if _, ok := created.body["title"]; ok {
		t.Errorf("null title must be absent, got %s", created.raw)
	}
	ent, _ := created.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	if ent["department"] != "Sales" {
		t.Errorf("enterprise extension lost: %s", created.raw)
	}
	return id
}

// checkUserFilters: the user entraCreate made (id) is readable at once,
// and filters match it case-insensitively where RFC 7643 says so
// (externalId is case-exact).
func checkUserFilters(t *testing.T, r *replica, tok, id string) {
	expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	for _, f := range []string{
		`userName eq "alice@contoso.test"`, `userName eq "ALICE@CONTOSO.TEST"`, `externalId eq "alice"`,
		`emails[type eq "work"].value eq "ALICE@contoso.test"`, `id eq "` + id + `"`,
		`userName sw "alice" and active eq true`, `not (userName eq "bob") and title pr or displayName co "Liddell"`,
	} {
		res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(f), nil), 200)
		if res.total() != 1 {
			t.Errorf("filter %s: want 1 result, got %s", f, res)
		}
	}
	for _, f := range []string{`externalId eq "ALICE"`, `userName eq "bob"`, `id eq "nope"`} {
		if res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(f), nil), 200); res.total() != 0 {
			t.Errorf("filter %s: want 0 results, got %s", f, res)
		}
	}
}

// applyEntraPatches sends entraUserPatches to the user id, checks that
// each landed and that the now inactive user stays filterable, and returns
// the version afterwards.
func applyEntraPatches(t *testing.T, r *replica, tok, id string) string {
	for _, p := range entraUserPatches {
		expect(t, r.do(t, tok, "PATCH", "/Users/"+id, p), 204)
	}
	got := expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	if got.body["active"] != false || got.str("displayName") != "Alice L." || got.str("name.givenName") != "Alicia" {
		t.Errorf("after PATCH: %s", got.raw)
	}
	addrs, _ := got.body["addresses"].([]any)
	if len(addrs) != 1 || addrs[0].(map[string]any)["locality"] != "Redmond" || addrs[0].(map[string]any)["region"] != "WA" {
		t.Errorf("two value-path adds must land on one work address: %s", got.raw)
	}
	ent, _ := got.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	if m, _ := ent["manager"].(map[string]any); m["value"] != "7d3e9a10" || ent["employeeNumber"] != "2042" {
		t.Errorf("manager/employeeNumber: %s", got.raw)
	}
	// Inactive users stay readable and filterable.
	if res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(`active eq false`), nil), 200); res.total() != 1 {
		t.Errorf("inactive user must stay filterable: %s", res)
	}
	return got.str("meta.version")
}

func TestListPagingAndSorting(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "okta", r)
	for i := 0; i < 12; i++ {
		expect(t, r.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":"user%02d@example.test","displayName":"U %02d"}`, 11-i, i)), 201)
	}
	// Okta's connection check and import pages.
	res := expect(t, r.do(t, tok, "GET", "/Users?startIndex=1&count=2", nil), 200)
	if res.total() != 12 || len(res.resources()) != 2 || res.body["itemsPerPage"] != float64(2) {
		t.Fatalf("page 1: %s", res)
	}
	seen := map[string]bool{}
	for start := 1; start <= 12; start += 5 {
		page := expect(t, r.do(t, tok, "GET", fmt.Sprintf("/Users?startIndex=%d&count=5", start), nil), 200)
		if page.body["startIndex"] != float64(start) {
			t.Errorf("startIndex not echoed: %s", page)
		}
		for _, u := range page.resources() {
			if seen[u["id"].(string)] {
				t.Errorf("user %s on two pages", u["id"])
			}
			seen[u["id"].(string)] = true
		}
	}
	if len(seen) != 12 {
		t.Errorf("paging saw %d users, want 12", len(seen))
	}
	sorted := expect(t, r.do(t, tok, "GET", "/Users?sortBy=userName&sortOrder=descending&count=3&attributes=userName", nil), 200)
	rs := sorted.resources()
	if len(rs) != 3 || rs[0]["userName"] != "user11@example.test" || rs[2]["userName"] != "user09@example.test" {
		t.Errorf("sortBy userName descending: %s", sorted)
	}
	if _, ok := rs[0]["displayName"]; ok {
		t.Errorf("attributes=userName must leave displayName out: %v", rs[0])
	}
	if c0 := expect(t, r.do(t, tok, "GET", "/Users?count=0", nil), 200); c0.total() != 12 || len(c0.resources()) != 0 {
		t.Errorf("count=0: %s", c0)
	}
	search := expect(t, r.do(t, tok, "POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName sw \"user0\"","count":100}`), 200)
	if search.total() != 10 {
		t.Errorf(".search: %s", search)
	}
}

func urlq(s string) string {
	r := strings.NewReplacer(" ", "+", `"`, "%22", "&", "%26", "#", "%23", "[", "%5B", "]", "%5D")
	return r.Replace(s)
}
