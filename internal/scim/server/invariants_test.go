package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestOneCanonicalName: userName and displayName are unique under one key
// (namekey.Key) everywhere: claims, first ids, the indexes, filters and
// rename detection (issue 12, finding 2). Each family below is one name.
func TestOneCanonicalName(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)

	// The reported case: a rename within the family must keep the claim.
	id := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"İK-team"}`), 201).str("id")
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","path":"displayName","value":"ik-team"}]}`), 204)
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"IK-team"}`), 409, "uniqueness")
	if n := expect(t, r.do(t, tok, "GET", `/Groups?filter=displayName+eq+%22ik-team%22`, nil), 200).total(); n != 1 {
		t.Errorf("filter displayName eq ik-team: %d groups, want 1", n)
	}
	// Dotless ı is another letter (Turkish): a different name.
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"ık-team"}`), 201)

	families := [][]string{
		{"kelvin@contoso.test", "\u212Aelvin@contoso.test", "KELVIN@contoso.test"},
		{"sam@contoso.test", "\u017Fam@contoso.test", "SAM@contoso.test"},
		{"σοφία@contoso.test", "\u03c2οφία@contoso.test", "ΣΟΦΊΑ@contoso.test"},
		{"josé@contoso.test", "jose\u0301@contoso.test", "JOSÉ@contoso.test"},
	}
	for _, f := range families {
		// First ids: a userName never used before.
		first := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": f[0]}), 201).str("id")
		for _, v := range f[1:] {
			expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": v}), 409, "uniqueness")
		}
		// Claims: rename it away and back in another spelling of the family;
		// then the name is held through a claim, not the first id.
		patchUserName := func(id, v string, status int) {
			t.Helper()
			expect(t, r.do(t, tok, "PATCH", "/Users/"+id, map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []map[string]any{{"op": "replace", "path": "userName", "value": v}},
			}), status)
		}
		patchUserName(first, "away-"+f[0], 204)
		other := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": f[1]}), 201).str("id")
		patchUserName(other, f[2], 204) // within the family: not a rename of the claim
		for _, v := range f {
			expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": v}), 409, "uniqueness")
		}
		patchUserName(first, f[0], 409)
		q := fmt.Sprintf("/Users?filter=userName+eq+%%22%s%%22", f[0])
		if n := expect(t, r.do(t, tok, "GET", q, nil), 200).total(); n != 1 {
			t.Errorf("filter userName eq %q: %d users, want 1", f[0], n)
		}
	}
}

// TestMalformedIDsAre4xx: an id that cannot be an object name is a client
// mistake: 404 for the resource, never a 5xx with Retry-After that an
// identity provider would retry forever (issue 12, finding 4). As a member
// value it is no user of the tenant: skipped with a Warning event while the
// rest of the request applies (issue 15, item 4), never recorded.
func TestMalformedIDsAre4xx(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	patchBody := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`
	for _, id := range []string{"a%25b", "UPPER", "a..b", "-x", "%E2%82%AC", "a%2Fb", "x%20y"} {
		for _, res := range []string{"/Users/", "/Groups/"} {
			expect(t, r.do(t, tok, "GET", res+id, nil), 404, "")
			expect(t, r.do(t, tok, "PATCH", res+id, patchBody), 404, "")
			expect(t, r.do(t, tok, "DELETE", res+id, nil), 404, "")
		}
		expect(t, r.do(t, tok, "PUT", "/Users/"+id, `{"userName":"put@contoso.test"}`), 404, "")
	}
	gid := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Members"}`), 201).str("id")
	for _, v := range []string{"a%b", "UPPER", "a/b", "x y"} {
		g := expect(t, r.do(t, tok, "POST", "/Groups", map[string]any{
			"displayName": "With " + v, "members": []map[string]any{{"value": v}},
		}), 201)
		if g.body["members"] != nil {
			t.Errorf("member %q recorded: %s", v, g.raw)
		}
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
			"Operations": []map[string]any{{"op": "add", "path": "members", "value": []map[string]any{{"value": v}}}},
		}), 204)
	}
	if got := r.members(t, tok, gid); len(got) != 0 {
		t.Errorf("malformed member ids recorded: %v", got)
	}
}

// TestIfMatchGuardsMembers: If-Match guards the whole group, members
// included. Member changes sent at once with the same ETag: exactly one
// succeeds, the others get 412 (issue 12, finding 6).
func TestIfMatchGuardsMembers(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	const n = 6
	users := make([]string, n)
	for i := range users {
		users[i] = expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": fmt.Sprintf("m%d@contoso.test", i)}), 201).str("id")
	}
	created := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Guarded"}`), 201)
	gid, etag := created.str("id"), created.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on create")
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = r.do(t, tok, "PATCH", "/Groups/"+gid, map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []map[string]any{{"op": "add", "path": "members", "value": []map[string]any{{"value": users[i]}}}},
			}, "If-Match", etag).status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 204:
			ok++
		case 412:
		default:
			t.Errorf("status %d, want 204 or 412", s)
		}
	}
	if ok != 1 {
		t.Errorf("%d member PATCHes with the same ETag succeeded (%v), want exactly 1", ok, statuses)
	}
	got := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).body["members"]
	list, _ := got.([]any)
	if len(list) != ok {
		t.Errorf("the group has %d members, want %d (one per acknowledged PATCH)", len(list), ok)
	}
	// The same ETag after that success: 412, for a rename as for members.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","path":"displayName","value":"Renamed"}]}`, "If-Match", etag), 412)
}

// TestUserNameKeyFitsTheHelpdesk: NFKC lengthens some characters (U+FDFA
// becomes 18 letters), so a userName within the API's 191 characters can
// have a canonical key the helpdesk's unique column cannot hold. It is
// refused at the door instead of never reaching the database.
func TestUserNameKeyFitsTheHelpdesk(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	long := strings.Repeat("\uFDFA", 11) // 11 characters, 198 once normalized
	res := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{"userName": long}), 400, "invalidValue")
	if !strings.Contains(res.str("detail"), "normalized") {
		t.Errorf("the detail should say why: %s", res.raw)
	}
	id := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"short@contoso.test"}`), 201).str("id")
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "userName", "value": long}},
	}), 400, "invalidValue")
}
