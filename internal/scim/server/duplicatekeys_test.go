package server_test

import (
	"strings"
	"testing"
)

// TestDuplicateKeysRefused (issue 13): a body naming one attribute twice,
// in any case and at any depth, is refused with 400 invalidSyntax whose
// detail names the attribute, for every write of users and groups; nothing
// is written. (A filter in front of the operator could otherwise read one
// value while the operator stores the other.) The same member name in two
// sibling objects is no duplicate.
func TestDuplicateKeysRefused(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	user := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"dup-target@example.test","title":"Keep"}`), 201)
	uid, uver := user.str("id"), user.str("meta.version")
	group := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Dup Target"}`), 201)
	gid, gver := group.str("id"), group.str("meta.version")
	const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

	rows := []struct {
		name, method, path, body string
		key                      string // the duplicated name the detail must mention
	}{
		{"POST user userName twice", "POST", "/Users", `{"userName":"dup-a@example.test","userName":"dup-b@example.test"}`, "userName"},
		{"POST user userName and USERNAME", "POST", "/Users", `{"userName":"dup-a@example.test","USERNAME":"dup-b@example.test"}`, "userName"},
		{"POST user inside name", "POST", "/Users", `{"userName":"dup-c@example.test","name":{"givenName":"A","GIVENNAME":"B"}}`, "givenName"},
		{"POST user inside an email", "POST", "/Users", `{"userName":"dup-d@example.test","emails":[{"value":"a@example.test","Value":"b@example.test"}]}`, "value"},
		{"POST user inside the enterprise extension", "POST", "/Users", `{"userName":"dup-e@example.test","` + ent + `":{"department":"A","Department":"B"}}`, "department"},
		{"POST user the extension twice", "POST", "/Users", `{"userName":"dup-f@example.test","` + ent + `":{"department":"A"},"` + strings.ToUpper(ent) + `":{"department":"B"}}`, ent},
		{"POST user schemas twice", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Schemas":[],"userName":"dup-g@example.test"}`, "schemas"},
		{"PUT user active twice", "PUT", "/Users/" + uid, `{"userName":"dup-target@example.test","active":true,"Active":false}`, "active"},
		{"PUT user userName twice", "PUT", "/Users/" + uid, `{"userName":"dup-target@example.test","username":"dup-other@example.test"}`, "userName"},
		{"PATCH user value twice", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"title","value":"A","value":"B"}`), "value"},
		{"PATCH user inside an operation's value", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","value":{"title":"A","TITLE":"B"}}`), "title"},
		{"PATCH user deep in an operation's value", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","value":{"name":{"familyName":"A","familyname":"B"}}}`), "familyName"},
		{"PATCH user op twice", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","OP":"remove","path":"title","value":"A"}`), "op"},
		{"PATCH user path twice", "PATCH", "/Users/" + uid, patchOp(`{"op":"replace","path":"title","Path":"displayName","value":"A"}`), "path"},
		{"POST group displayName twice", "POST", "/Groups", `{"displayName":"Dup A","displayname":"Dup B"}`, "displayName"},
		{"POST group inside a member", "POST", "/Groups", `{"displayName":"Dup C","members":[{"value":"` + uid + `","VALUE":"someone-else"}]}`, "value"},
		{"PUT group externalId twice", "PUT", "/Groups/" + gid, `{"displayName":"Dup Target","externalId":"a","externalID":"b"}`, "externalId"},
		{"PATCH group inside a member value", "PATCH", "/Groups/" + gid, patchOp(`{"op":"add","path":"members","value":[{"value":"` + uid + `","Value":"someone-else"}]}`), "value"},
		{"search filter twice", "POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName eq \"a\"","FILTER":"userName pr"}`, "filter"},
		{"PATCH group Operations twice", "PATCH", "/Groups/" + gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}],"operations":[{"op":"replace","path":"displayName","value":"X"}]}`, "Operations"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			res := expect(t, r.do(t, tok, row.method, row.path, row.body), 400, "invalidSyntax")
			if d := res.str("detail"); !strings.Contains(strings.ToLower(d), strings.ToLower(row.key)) {
				t.Errorf("the detail does not name %q: %s", row.key, d)
			}
		})
	}

	// Nothing was written.
	if res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(`userName sw "dup-"`), nil), 200); res.total() != 1 {
		t.Errorf("refused creates left users behind: %s", res)
	}
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName sw "Dup"`), nil), 200); res.total() != 1 {
		t.Errorf("refused creates left groups behind: %s", res)
	}
	if got := expect(t, r.do(t, tok, "GET", "/Users/"+uid, nil), 200); got.str("meta.version") != uver || got.str("title") != "Keep" {
		t.Errorf("a refused write changed the user: %s", got)
	}
	if got := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200); got.str("meta.version") != gver {
		t.Errorf("a refused write changed the group: %s", got)
	}

	// The same name in sibling objects, and in an object and its child,
	// is fine.
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"dup-ok@example.test","emails":[{"value":"a@example.test","type":"work"},{"value":"b@example.test","type":"home"}],
		"`+ent+`":{"manager":{"value":"`+uid+`"}}}`), 201)
	expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"replace","path":"title","value":"A"}`, `{"op":"replace","path":"title","value":"B"}`)))
}
