package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAuthErrors: a missing, wrong or malformed credential is 401 with
// WWW-Authenticate: Bearer and a detail (Okta checks it), the same answer
// for every cause; nothing else ever answers 401.
func TestAuthErrors(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	rows := []struct {
		name   string
		token  string
		header []string
		method string
		path   string
	}{
		{name: "no Authorization header", method: "GET", path: "/Users"},
		{name: "wrong token", token: "not-a-token-" + strings.Repeat("x", 40), method: "GET", path: "/Users?filter=" + urlq(`userName eq "a"`)},
		{name: "Basic instead of Bearer", header: []string{"Authorization", "Basic dXNlcjpwYXNz"}, method: "GET", path: "/Groups"},
		{name: "Bearer without a token", header: []string{"Authorization", "Bearer "}, method: "POST", path: "/Users"},
		{name: "token without scheme", header: []string{"Authorization", tok}, method: "GET", path: "/ServiceProviderConfig"},
		{name: "unauthenticated write", token: tok + "x", method: "DELETE", path: "/Users/whatever"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			res := expect(t, r.do(t, row.token, row.method, row.path, nil, row.header...), 401, "")
			if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: %q", res.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(res.raw), tok) {
				t.Errorf("the answer echoes the token: %s", res.raw)
			}
		})
	}
	// The right token still works (the failure limit is per address and
	// the rows above stay below it).
	expect(t, r.do(t, tok, "GET", "/Users", nil), 200)
}

// TestClientErrors: one row per client mistake, each with its status and
// scimType; none gives a 500 or a partial write.
func TestClientErrors(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	uid := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"keep@contoso.test","displayName":"Keep","active":true}`), 201).str("id")
	gid := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Keep"}`), 201).str("id")

	for _, row := range clientErrorRows(uid, gid) {
		t.Run(row.name, func(t *testing.T) {
			expect(t, r.do(t, tok, row.method, row.path, row.body, row.headers...), row.status, row.scimType)
		})
	}

	// Nothing was written by any of the refused requests.
	u := expect(t, r.do(t, tok, "GET", "/Users/"+uid, nil), 200)
	if u.str("displayName") != "Keep" || u.body["active"] != true {
		t.Errorf("a refused request changed the user: %s", u.raw)
	}
	if g := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200); g.str("displayName") != "Keep" {
		t.Errorf("a refused request changed the group: %s", g.raw)
	}
	if res := expect(t, r.do(t, tok, "GET", "/Users", nil), 200); res.total() != 1 {
		t.Errorf("a refused create stored a user: %s", res)
	}

	// application/json is accepted, with and without parameters, and so is
	// a request without Content-Type; answers are always application/scim+json.
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"json@contoso.test"}`, "Content-Type", "application/json"), 201)
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"charset@contoso.test"}`, "Content-Type", "application/scim+json; charset=utf-8"), 201)
	expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"replace","path":"title","value":"Boss"}`), "Content-Type", "Application/JSON; charset=UTF-8"))
	req, _ := http.NewRequest("POST", r.url+"/Users", bytes.NewReader([]byte(`{"userName":"noct@contoso.test"}`)))
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Errorf("POST without Content-Type: %d", res.StatusCode)
	}

	// 204 answers have no body; everything else is scim+json (do checks it).
	if strings.Contains(r.log.String(), "internal error") || strings.Contains(r.log.String(), "panicked") {
		t.Errorf("a client mistake produced a 500:\n%s", r.log.String())
	}
}

type clientErrorRow struct {
	name         string
	method, path string
	body         any
	headers      []string
	status       int
	scimType     string
}

// clientErrorRows is TestClientErrors' table: one row per client mistake
// on the tenant's user uid and group gid (which must stay as they are),
// with the status and scimType ("" for none checked) it gets.
func clientErrorRows(uid, gid string) []clientErrorRow {
	const missing = "2819c223-7f76-453a-919d-413861904646"
	big := `{"userName":"big@contoso.test","displayName":"` + strings.Repeat("x", 1<<20+10) + `"}`
	replace := patchOp(`{"op":"replace","path":"displayName","value":"Changed"}`)
	return []clientErrorRow{
		// Bodies.
		{"malformed JSON", "POST", "/Users", `{"userName":`, nil, 400, "invalidSyntax"},
		{"JSON array body", "POST", "/Users", `[{"userName":"x"}]`, nil, 400, "invalidSyntax"},
		{"null body", "POST", "/Groups", `null`, nil, 400, "invalidSyntax"},
		{"trailing data", "POST", "/Users", `{"userName":"a@contoso.test"} {}`, nil, 400, "invalidSyntax"},
		{"empty body", "POST", "/Users", ``, nil, 400, "invalidSyntax"},
		{"invalid UTF-8", "POST", "/Users", []byte("{\"userName\":\"\xff\xfe@contoso.test\"}"), nil, 400, "invalidSyntax"},
		{"body over 1 MiB", "POST", "/Users", big, nil, 413, ""},
		{"PATCH body over 1 MiB", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"displayName","value":"` + strings.Repeat("y", 1<<20) + `"}`), nil, 413, ""},
		{"wrong Content-Type", "POST", "/Users", `{"userName":"ct@contoso.test"}`, []string{"Content-Type", "text/plain"}, 415, ""},
		{"form Content-Type on PATCH", "PATCH", "/Users/" + uid, replace, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, ""},
		// Values.
		{"missing userName", "POST", "/Users", `{"displayName":"Nobody"}`, nil, 400, "invalidValue"},
		{"empty userName", "POST", "/Users", `{"userName":""}`, nil, 400, "invalidValue"},
		{"userName of the wrong type", "POST", "/Users", `{"userName":42}`, nil, 400, "invalidValue"},
		{"bad boolean string on POST", "POST", "/Users", `{"userName":"b@contoso.test","active":"yes"}`, nil, 400, "invalidValue"},
		{"bad boolean string on PATCH", "PATCH", "/Users/" + uid, patchOp(`{"op":"Replace","path":"active","value":"maybe"}`), nil, 400, "invalidValue"},
		{"missing displayName on a group", "POST", "/Groups", `{"externalId":"x"}`, nil, 400, "invalidValue"},
		{"PUT without userName", "PUT", "/Users/" + uid, `{"displayName":"x"}`, nil, 400, "invalidValue"},
		// PATCH envelopes.
		{"unknown op", "PATCH", "/Users/" + uid, patchOp(`{"op":"Merge","path":"displayName","value":"x"}`), nil, 400, "invalidSyntax"},
		{"missing op", "PATCH", "/Users/" + uid, patchOp(`{"path":"displayName","value":"x"}`), nil, 400, "invalidSyntax"},
		{"Operations not an array", "PATCH", "/Users/" + uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{}}`, nil, 400, "invalidSyntax"},
		{"group PATCH unknown op", "PATCH", "/Groups/" + gid, patchOp(`{"op":"Append","path":"members","value":[]}`), nil, 400, "invalidSyntax"},
		{"remove without path", "PATCH", "/Users/" + uid, patchOp(`{"op":"remove"}`), nil, 400, "noTarget"},
		{"malformed path", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"name..givenName","value":"x"}`), nil, 400, "invalidPath"},
		{"unknown attribute path", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"shoeSize","value":"x"}`), nil, 400, "invalidPath"},
		{"malformed value-path filter", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"emails[type eq","value":"x"}`), nil, 400, "invalidFilter"},
		{"second op fails: nothing written", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"displayName","value":"Half"}`, `{"op":"Replace","path":"active","value":"nope"}`), nil, 400, "invalidValue"},
		// Filters: never an empty or a full list.
		{"unparsable filter", "GET", "/Users?filter=" + urlq(`userName eq`), nil, nil, 400, "invalidFilter"},
		{"unknown operator", "GET", "/Users?filter=" + urlq(`userName like "a"`), nil, nil, 400, "invalidFilter"},
		{"unbalanced parentheses", "GET", "/Users?filter=" + urlq(`(userName eq "a"`), nil, nil, 400, "invalidFilter"},
		{"unknown attribute", "GET", "/Users?filter=" + urlq(`shoeSize eq "42"`), nil, nil, 400, "invalidFilter"},
		{"group filter garbage", "GET", "/Groups?filter=" + urlq(`displayName eq "a" and`), nil, nil, 400, "invalidFilter"},
		{"bad filter in .search", "POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName zz \"a\""}`, nil, 400, "invalidFilter"},
		{"non-numeric count", "GET", "/Users?count=ten", nil, nil, 400, "invalidValue"},
		{"bad sortOrder", "GET", "/Users?sortOrder=sideways", nil, nil, 400, "invalidValue"},
		// Unknown ids: 404 on every verb.
		{"GET unknown user", "GET", "/Users/" + missing, nil, nil, 404, ""},
		{"PUT unknown user", "PUT", "/Users/" + missing, `{"userName":"ghost@contoso.test"}`, nil, 404, ""},
		{"PATCH unknown user", "PATCH", "/Users/" + missing, replace, nil, 404, ""},
		{"DELETE unknown user", "DELETE", "/Users/" + missing, nil, nil, 404, ""},
		{"GET unknown group", "GET", "/Groups/" + missing, nil, nil, 404, ""},
		{"PUT unknown group", "PUT", "/Groups/" + missing, `{"displayName":"Ghost"}`, nil, 404, ""},
		{"PATCH unknown group", "PATCH", "/Groups/" + missing, replace, nil, 404, ""},
		{"DELETE unknown group", "DELETE", "/Groups/" + missing, nil, nil, 404, ""},
		{"a group id on /Users", "GET", "/Users/" + gid, nil, nil, 404, ""},
		{"unknown endpoint", "GET", "/Devices", nil, nil, 404, ""},
		{"unknown schema", "GET", "/Schemas/urn:example:nothing", nil, nil, 404, ""},
		{"unknown resource type", "GET", "/ResourceTypes/Device", nil, nil, 404, ""},
		// ETags.
		{"If-Match mismatch on PATCH", "PATCH", "/Users/" + uid, replace, []string{"If-Match", `W/"1"`}, 412, ""},
		{"If-Match mismatch on PUT", "PUT", "/Users/" + uid, `{"userName":"keep@contoso.test"}`, []string{"If-Match", `W/"1"`}, 412, ""},
		{"If-Match mismatch on DELETE", "DELETE", "/Users/" + uid, nil, []string{"If-Match", `W/"1"`}, 412, ""},
		{"If-Match mismatch on group PATCH", "PATCH", "/Groups/" + gid, replace, []string{"If-Match", `"1"`}, 412, ""},
		{"If-Match mismatch on group DELETE", "DELETE", "/Groups/" + gid, nil, []string{"If-Match", `W/"1"`}, 412, ""},
		// Not offered.
		{"Bulk", "POST", "/Bulk", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[]}`, nil, 501, ""},
		{"Me", "GET", "/Me", nil, nil, 501, ""},
		{"Me subpath", "PATCH", "/Me/x", replace, nil, 501, ""},
	}
}

// TestDiscovery: the discovery endpoints describe what the server does.
func TestDiscovery(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "validator", r)

	spc := expect(t, r.do(t, tok, "GET", "/ServiceProviderConfig", nil), 200)
	for _, feature := range []struct {
		name string
		want bool
	}{{"patch", true}, {"bulk", false}, {"filter", true}, {"changePassword", false}, {"sort", true}, {"etag", true}} {
		m, _ := spc.body[feature.name].(map[string]any)
		if m["supported"] != feature.want {
			t.Errorf("ServiceProviderConfig %s.supported = %v, want %v", feature.name, m["supported"], feature.want)
		}
	}
	if s, _ := spc.body["authenticationSchemes"].([]any); len(s) == 0 || s[0].(map[string]any)["type"] != "oauthbearertoken" {
		t.Errorf("authenticationSchemes: %s", spc.raw)
	}
	if !hasSchema(spc.body, "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig") {
		t.Errorf("ServiceProviderConfig schemas: %s", spc.raw)
	}

	rts := expect(t, r.do(t, tok, "GET", "/ResourceTypes", nil), 200)
	names := map[string]map[string]any{}
	for _, rt := range rts.resources() {
		names[rt["name"].(string)] = rt
	}
	if rts.total() != 2 || names["User"] == nil || names["Group"] == nil {
		t.Fatalf("ResourceTypes: %s", rts.raw)
	}
	if names["User"]["endpoint"] != "/Users" || names["User"]["schema"] != "urn:ietf:params:scim:schemas:core:2.0:User" ||
		names["Group"]["endpoint"] != "/Groups" || names["Group"]["schema"] != "urn:ietf:params:scim:schemas:core:2.0:Group" {
		t.Errorf("ResourceTypes content: %s", rts.raw)
	}
	if ext, _ := names["User"]["schemaExtensions"].([]any); len(ext) == 0 ||
		ext[0].(map[string]any)["schema"] != "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" {
		t.Errorf("User resource type must list the enterprise extension: %s", rts.raw)
	}
	for _, id := range []string{"User", "Group", "user"} {
		rt := expect(t, r.do(t, tok, "GET", "/ResourceTypes/"+id, nil), 200)
		if !strings.EqualFold(rt.str("name"), id) || rt.str("endpoint") == "" {
			t.Errorf("ResourceTypes/%s: %s", id, rt.raw)
		}
	}

	checkSchemas(t, r, tok)
}

// schemaAttributes are the attributes /Schemas must define, by schema URN.
var schemaAttributes = map[string][]string{
	"urn:ietf:params:scim:schemas:core:2.0:User":                 {"userName", "name", "emails", "active", "groups", "addresses"},
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber", "department", "manager"},
	"urn:ietf:params:scim:schemas:core:2.0:Group":                {"displayName", "members"},
}

// checkSchemas: /Schemas lists every schema of schemaAttributes, and
// /Schemas/{urn} defines its attributes (and userName and groups as the
// clients rely on).
func checkSchemas(t *testing.T, r *replica, tok string) {
	all := expect(t, r.do(t, tok, "GET", "/Schemas", nil), 200)
	ids := map[string]bool{}
	for _, s := range all.resources() {
		ids[s["id"].(string)] = true
	}
	for urn, attrs := range schemaAttributes {
		if !ids[urn] {
			t.Errorf("/Schemas lacks %s: %s", urn, all.raw)
		}
		s := expect(t, r.do(t, tok, "GET", "/Schemas/"+urn, nil), 200)
		if s.str("id") != urn {
			t.Errorf("/Schemas/%s: %s", urn, s.raw)
		}
		have := map[string]map[string]any{}
		list, _ := s.body["attributes"].([]any)
		for _, a := range list {
			m := a.(map[string]any)
			have[m["name"].(string)] = m
		}
		for _, a := range attrs {
			if have[a] == nil {
				t.Errorf("schema %s lacks attribute %s", urn, a)
			}
		}
		if urn == "urn:ietf:params:scim:schemas:core:2.0:User" {
			if have["userName"]["uniqueness"] != "server" || have["userName"]["caseExact"] != false || have["userName"]["required"] != true {
				t.Errorf("userName definition: %v", have["userName"])
			}
			if have["groups"]["mutability"] != "readOnly" {
				t.Errorf("groups must be readOnly: %v", have["groups"])
			}
		}
	}
	var decoded any
	if err := json.Unmarshal(all.raw, &decoded); err != nil {
		t.Fatal(err)
	}
}

func hasSchema(body map[string]any, urn string) bool {
	list, _ := body["schemas"].([]any)
	for _, s := range list {
		if s == urn {
			return true
		}
	}
	return false
}
