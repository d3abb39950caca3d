package server_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Issue 15, item 7: one table per client family. Each row is a request
// shape a client is documented to send and what the server must answer
// and keep, so that a change breaking one client's habit fails by name
// ("okta/PUT without active keeps active").

// clientShape is one request shape. Before the request a fresh user
// ("{n}" is a per-row number) is created from user, and a group holding it
// when group is set; "{uid}", "{gid}" and "{n}" are replaced in path, body
// and read. read (default: the request's own answer) is then fetched, and
// every member of want must be in it with that value ("a/b" reaches into
// objects); absent members must not be.
type clientShape struct {
	name         string
	user         string
	group        bool
	method, path string
	body         string
	status       int
	read         string
	want         string
	absent       []string
	check        func(t *testing.T, got response, ids shapeIDs)
}

type shapeIDs struct{ uid, gid string }

func runShapes(t *testing.T, family string, shapes []clientShape) {
	t.Helper()
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, family, r)
	for i, sh := range shapes {
		t.Run(family+"/"+sh.name, func(t *testing.T) {
			n := fmt.Sprint(i)
			var ids shapeIDs
			subst := func(s string) string {
				return strings.NewReplacer("{n}", n, "{uid}", ids.uid, "{gid}", ids.gid).Replace(s)
			}
			if sh.user != "" {
				ids.uid = expect(t, r.do(t, tok, "POST", "/Users", subst(sh.user)), 201).str("id")
			}
			if sh.group {
				ids.gid = expect(t, r.do(t, tok, "POST", "/Groups", subst(`{"displayName":"Group {n}","members":[{"value":"{uid}"}]}`)), 201).str("id")
			}
			var body any
			if sh.body != "" {
				body = subst(sh.body)
			}
			got := r.do(t, tok, sh.method, subst(sh.path), body)
			if sh.status >= 400 {
				expect(t, got, sh.status)
			} else if got.status != sh.status {
				t.Fatalf("%s %s: want %d, got %s", sh.method, sh.path, sh.status, got)
			}
			if sh.read != "" {
				got = expect(t, r.do(t, tok, "GET", subst(sh.read), nil), 200)
			}
			if sh.want != "" {
				var want map[string]any
				if err := json.Unmarshal([]byte(subst(sh.want)), &want); err != nil {
					t.Fatal(err)
				}
				for k, w := range want {
					if v := dig(got.body, k); !reflect.DeepEqual(v, w) {
						t.Errorf("%s: want %v, got %v\n%s", k, w, v, got.raw)
					}
				}
			}
			for _, k := range sh.absent {
				if v := dig(got.body, k); v != nil {
					t.Errorf("%s must be absent, got %v\n%s", k, v, got.raw)
				}
			}
			if sh.check != nil {
				sh.check(t, got, ids)
			}
		})
	}
}

// dig reads a path ("meta/resourceType"; URNs hold dots) from a decoded body.
func dig(body map[string]any, path string) any {
	var cur any = body
	for _, p := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// memberIDsOf lists the member values of a group body.
func memberIDsOf(body map[string]any) []string {
	list, _ := body["members"].([]any)
	ids := []string{}
	for _, m := range list {
		if v, ok := m.(map[string]any)["value"].(string); ok {
			ids = append(ids, v)
		}
	}
	return ids
}

const plainUser = `{"userName":"user{n}@example.test","active":true,"name":{"givenName":"Ann","familyName":"Lee"}}`

// TestClientsOkta: Okta's SCIM 2.0 protocol reference
// (https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20/)
// and its SCIM 2.0 spec test, as summarised in
// ../shared/docs/entra-interop.md §6 [okta-scim20][okta-spec].
func TestClientsOkta(t *testing.T) {
	runShapes(t, "okta", []clientShape{
		{name: "connection check GET /Users?startIndex=1&count=2", user: plainUser,
			method: "GET", path: "/Users?startIndex=1&count=2", status: 200,
			want: `{"startIndex":1,"totalResults":1,"itemsPerPage":1}`},
		{name: "match by filter userName eq with startIndex and count=100", user: plainUser,
			method: "GET", path: "/Users?filter=" + urlq(`userName eq "USER{n}@example.test"`) + "&startIndex=1&count=100", status: 200,
			want: `{"totalResults":1,"startIndex":1}`},
		{name: "match by filter userName eq, no match is 200 empty",
			method: "GET", path: "/Users?filter=" + urlq(`userName eq "nobody@example.test"`) + "&startIndex=1&count=100", status: 200,
			want: `{"totalResults":0}`},
		{name: "POST with password and groups:[] stores neither",
			method: "POST", path: "/Users", status: 201,
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"new{n}@example.test",
				"name":{"givenName":"New","familyName":"User"},"emails":[{"primary":true,"value":"new{n}@example.test","type":"work"}],
				"displayName":"New User","locale":"en-US","externalId":"00u{n}","groups":[],"password":"1mz050nq","active":true}`,
			want: `{"userName":"new{n}@example.test","active":true,"externalId":"00u{n}"}`, absent: []string{"password", "groups"}},
		{name: "PUT without active keeps active", user: plainUser,
			method: "PUT", path: "/Users/{uid}", status: 200,
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"{uid}","userName":"user{n}@example.test",
				"name":{"givenName":"Anna","familyName":"Lee"}}`,
			read: "/Users/{uid}", want: `{"active":true,"name":{"givenName":"Anna","familyName":"Lee"}}`},
		{name: "PUT with active false deactivates", user: plainUser,
			method: "PUT", path: "/Users/{uid}", status: 200,
			body: `{"id":"{uid}","userName":"user{n}@example.test","active":false}`,
			read: "/Users/{uid}", want: `{"active":false}`},
		{name: "PATCH replace without path value {active:false} deactivates", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"replace","value":{"active":false}}`),
			read: "/Users/{uid}", want: `{"active":false,"userName":"user{n}@example.test"}`},
		{name: "deactivated user is still found by filter", user: `{"userName":"gone{n}@example.test","active":false}`,
			method: "GET", path: "/Users?filter=" + urlq(`userName eq "gone{n}@example.test"`), status: 200,
			want: `{"totalResults":1}`},
		{name: "group push with members:[]", method: "POST", path: "/Groups", status: 201,
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Pushed {n}","members":[]}`,
			want: `{"displayName":"Pushed {n}"}`, absent: []string{"members"}},
		{name: "group PATCH removes by members[value eq] and adds", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"remove","path":"members[value eq \"{uid}\"]"}`, `{"op":"add","path":"members","value":[{"value":"{uid}","display":"user{n}@example.test"}]}`),
			read: "/Groups/{gid}",
			check: func(t *testing.T, got response, ids shapeIDs) {
				if m := memberIDsOf(got.body); len(m) != 1 || m[0] != ids.uid {
					t.Errorf("members after remove then add: %v", m)
				}
			}},
		{name: "group rename without path carrying id", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"replace","value":{"id":"{gid}","displayName":"Renamed {n}"}}`),
			read: "/Groups/{gid}", want: `{"displayName":"Renamed {n}","id":"{gid}"}`},
		{name: "GET of an unknown id is 404 with detail", method: "GET", path: "/Users/00000000-0000-0000-0000-000000000000", status: 404},
	})
}

// TestClientsEntra: Microsoft Entra ID's provisioning service, from
// Microsoft Learn "Tutorial: Develop and plan provisioning for a SCIM
// endpoint" and "Known issues and resolutions with SCIM 2.0 protocol
// compliance", as summarised in ../shared/docs/entra-interop.md §1-§2
// [ms-scim][ms-compat].
func TestClientsEntra(t *testing.T) {
	runShapes(t, "entra", []clientShape{
		{name: "Test Connection probe with a random GUID is 200 empty",
			method: "GET", path: "/Users?filter=userName+eq+%22d2f4c6a8-0b1e-4c3d-9e8f-7a6b5c4d3e2f%22", status: 200,
			want: `{"totalResults":0,"itemsPerPage":0,"startIndex":1}`},
		{name: "filter with + and %22 encoding", user: `{"userName":"alice+ops{n}@contoso.test"}`,
			method: "GET", path: "/Users?filter=userName+eq+%22alice%2Bops{n}%40contoso.test%22", status: 200,
			want: `{"totalResults":1}`},
		{name: "POST with meta.resourceType, active as \"True\" and explicit nulls", method: "POST", path: "/Users", status: 201,
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
				"externalId":"ext{n}","userName":"Test_User_{n}@contoso.test","active":"True","title":null,"addresses":null,
				"emails":[{"primary":true,"type":"work","value":"Test_User_{n}@contoso.test"}],"meta":{"resourceType":"User"},
				"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"}}`,
			want: `{"active":true,"userName":"Test_User_{n}@contoso.test"}`, absent: []string{"title", "addresses"}},
		{name: "PATCH Replace active \"False\"", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"Replace","path":"active","value":"False"}`), read: "/Users/{uid}", want: `{"active":false}`},
		{name: "PATCH Add addresses[type eq work] sub-attributes land on one element", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"}`,
				`{"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"}`),
			read: "/Users/{uid}",
			check: func(t *testing.T, got response, _ shapeIDs) {
				jsonEq(t, "addresses", got.body["addresses"], `[{"type":"work","locality":"Redmond","region":"WA"}]`)
			}},
		{name: "PATCH replace without path keyed by paths and extension URNs", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"replace","value":{"displayName":"Alice Liddell","name.givenName":"Alice",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"1042"}}`),
			read: "/Users/{uid}", want: `{"displayName":"Alice Liddell","name/givenName":"Alice","name/familyName":"Lee",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/employeeNumber":"1042"}`},
		{name: "PATCH manager as a bare id", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"7d3e9a10"}`),
			read: "/Users/{uid}", want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager/value":"7d3e9a10"}`},
		{name: "group match with excludedAttributes=members", user: plainUser, group: true,
			method: "GET", path: "/Groups?excludedAttributes=members&filter=displayName+eq+%22Group+{n}%22", status: 200,
			want: `{"totalResults":1}`,
			check: func(t *testing.T, got response, _ shapeIDs) {
				if rs := got.resources(); len(rs) != 1 || rs[0]["members"] != nil {
					t.Errorf("members must be excluded: %s", got.raw)
				}
			}},
		{name: "PATCH Remove members with a value array removes only those", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"Remove","path":"members","value":[{"$ref":null,"value":"{uid}"}]}`),
			read: "/Groups/{gid}", want: `{"displayName":"Group {n}"}`, absent: []string{"members"}},
	})
}

// TestClientsValidator: Microsoft's SCIM Validator and its Postman
// collection (AzureAD/SCIMReferenceCode), as summarised in
// ../shared/docs/entra-interop.md §5 [ms-validator][validator-writeup].
func TestClientsValidator(t *testing.T) {
	runShapes(t, "validator", []clientShape{
		{name: "filter userName in another case finds the user", user: `{"userName":"Mixed{n}@Contoso.test"}`,
			method: "GET", path: "/Users?filter=" + urlq(`userName eq "MIXED{n}@CONTOSO.TEST"`), status: 200,
			want: `{"totalResults":1}`},
		{name: "POST with capitalised Primary and an e-mail without @", method: "POST", path: "/Users", status: 201,
			body: `{"userName":"UserName{n}","emails":[{"Primary":true,"type":"work","value":"emailName{n}"}]}`,
			check: func(t *testing.T, got response, _ shapeIDs) {
				jsonEq(t, "emails", got.body["emails"], fmt.Sprintf(`[{"primary":true,"type":"work","value":"emailName%s"}]`,
					strings.TrimPrefix(got.str("userName"), "UserName")))
			}},
		{name: "attributes= with a value filter returns the attribute",
			user:   `{"userName":"attr{n}@example.test","emails":[{"type":"work","value":"attr{n}@example.test"}]}`,
			method: "GET", path: "/Users/{uid}?attributes=" + urlq(`emails[type eq "work"]`), status: 200,
			want: `{"id":"{uid}"}`, absent: []string{"userName"},
			check: func(t *testing.T, got response, _ shapeIDs) {
				if got.body["emails"] == nil {
					t.Errorf("emails missing: %s", got.raw)
				}
			}},
		{name: "PATCH replace without path of userName", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"replace","value":{"userName":"renamed{n}@example.test"}}`),
			read: "/Users/{uid}", want: `{"userName":"renamed{n}@example.test"}`},
		{name: "manager as an object value", user: plainUser,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"m-{n}"}}`),
			read: "/Users/{uid}", want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager/value":"m-{n}"}`},
		{name: "members added with replace then removed by filter in one request", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"replace","path":"members","value":[{"value":"{uid}"}]}`, `{"op":"remove","path":"members[value eq \"{uid}\"]"}`),
			read: "/Groups/{gid}", absent: []string{"members"}},
		{name: "a member's displayName is returned as its display", user: `{"userName":"user{n}@example.test","displayName":"lennay"}`, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"name":"addMember","op":"add","path":"members","value":[{"displayName":"new User","value":"{uid}"}]}`),
			read: "/Groups/{gid}",
			check: func(t *testing.T, got response, ids shapeIDs) {
				jsonEq(t, "members", got.body["members"], `[{"value":"`+ids.uid+`","display":"new User","type":"User",
					"$ref":"https://scim.example.test/scim/v2/Users/`+ids.uid+`"}]`)
			}},
		{name: "a member bare string that is no user is skipped", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"add","path":"members","value":"string id 1"}`),
			read: "/Groups/{gid}",
			check: func(t *testing.T, got response, ids shapeIDs) {
				if m := memberIDsOf(got.body); len(m) != 1 || m[0] != ids.uid {
					t.Errorf("members: %v", m)
				}
			}},
	})
}

// TestClientsOneLogin: the request shapes OneLogin documents. Its
// developer guide "Step 2. Implement RESTful SCIM APIs for Your App"
// (https://developers.onelogin.com/scim/implement-scim-api, "Example API
// Flow") says the initial connection is a Get User with a userName filter
// for a name it knows does not exist, answered by an empty list. The user
// body is the connector's "SCIM JSON Template" with OneLogin's values
// filled in; the templates below are the published ones for the "SCIM
// Provisioner with SAML (SCIM v2 Enterprise)" connector
// (https://doc.keepnetlabs.com/next-generation-product/platform/company/company-settings/scim-settings/onelogin-scim-integration)
// and the "(Core Schema)" connector
// (https://scim.dev/guide/applications/onelogin). The bodies of OneLogin's
// group requests are not in what was found, so no group row is here.
func TestClientsOneLogin(t *testing.T) {
	runShapes(t, "onelogin", []clientShape{
		{name: "initial connection: a userName filter for a name that does not exist is 200 empty",
			method: "GET", path: "/Users?filter=userName+eq+%22onelogin-connection-check-{n}%22", status: 200,
			want: `{"totalResults":0}`},
		{name: "POST from the SCIM v2 Enterprise template: id null, meta, active as a string, manager with managerId",
			method: "POST", path: "/Users", status: 201,
			body: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales",
				"manager":{"managerId":"","displayName":" "}},
				"active":"true","emails":[{"value":"ann{n}@example.test","type":"work","primary":true}],
				"meta":{"resourceType":"User"},"name":{"familyName":"Lee","givenName":"Ann","formatted":"Ann Lee"},
				"userName":"ann{n}@example.test","id":null,"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}`,
			want: `{"active":true,"userName":"ann{n}@example.test","name/formatted":"Ann Lee",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/department":"Sales"}`,
			// managerId is no sub-attribute of manager (RFC 7643 §4.3) and
			// displayName is read-only: no manager is recorded.
			absent: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/manager"}},
		{name: "POST from the Core Schema template with the SCIM 1.0 schema URN",
			method: "POST", path: "/Users", status: 201,
			body: `{"schemas":["urn:scim:schemas:core:1.0"],"userName":"bo{n}@example.test",
				"name":{"givenName":"Bo","familyName":"Ek","formatted":"Bo Ek"}}`,
			want: `{"userName":"bo{n}@example.test","name/givenName":"Bo","name/formatted":"Bo Ek"}`},
	})
}

// TestClientsRFC: the examples of RFC 7644 (§3.4.2, §3.5.2) as generic
// clients send them.
func TestClientsRFC(t *testing.T) {
	runShapes(t, "rfc", []clientShape{
		{name: "§3.5.2.1 add members with display and $ref", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"add","path":"members","value":[{"display":"Babs Jensen",
				"$ref":"https://example.com/v2/Users/{uid}","value":"{uid}"}]}`),
			read: "/Groups/{gid}",
			check: func(t *testing.T, got response, ids shapeIDs) {
				// $ref is computed from the id and the server's URL; the
				// display is kept as sent.
				jsonEq(t, "members", got.body["members"], `[{"value":"`+ids.uid+`","display":"Babs Jensen","type":"User",
					"$ref":"https://scim.example.test/scim/v2/Users/`+ids.uid+`"}]`)
			}},
		{name: "§3.5.2.2 remove members without filter clears the group", user: plainUser, group: true,
			method: "PATCH", path: "/Groups/{gid}", status: 204,
			body: patchOp(`{"op":"remove","path":"members"}`), read: "/Groups/{gid}", absent: []string{"members"}},
		{name: "§3.5.2.3 replace a value path leaves other elements",
			user:   `{"userName":"mv{n}@example.test","emails":[{"type":"work","value":"w{n}@example.test"},{"type":"home","value":"h{n}@example.test"}]}`,
			method: "PATCH", path: "/Users/{uid}", status: 204,
			body: patchOp(`{"op":"replace","path":"emails[type eq \"work\"].value","value":"new{n}@example.test"}`),
			read: "/Users/{uid}",
			check: func(t *testing.T, got response, _ shapeIDs) {
				raw := string(got.raw)
				if !strings.Contains(raw, `"home"`) || !strings.Contains(raw, "new") {
					t.Errorf("emails: %v", got.body["emails"])
				}
			}},
		{name: "§3.4.2.4 count=0 returns only totalResults", user: plainUser,
			method: "GET", path: "/Users?count=0", status: 200, want: `{"itemsPerPage":0}`},
		{name: "§3.4.2.4 startIndex below 1 counts as 1", user: plainUser,
			method: "GET", path: "/Users?startIndex=0&count=1", status: 200, want: `{"startIndex":1,"itemsPerPage":1}`},
		{name: "§3.4.2.2 unknown filter attribute is 400 invalidFilter",
			method: "GET", path: "/Users?filter=" + urlq(`nosuch eq "x"`), status: 400},
		{name: "§3.4.3 root .search", user: plainUser, group: true,
			method: "POST", path: "/.search", status: 200,
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"displayName eq \"Group {n}\" or userName eq \"user{n}@example.test\""}`,
			want: `{"totalResults":2}`},
	})
}
