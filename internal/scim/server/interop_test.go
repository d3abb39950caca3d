package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	acmeURN       = "urn:ietf:params:scim:schemas:extension:Acme:2.0:User"
	patchOpURN    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// patchOps builds a PatchOp body from operations.
func patchOps(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, op := range ops {
		list[i] = op
	}
	return map[string]any{"schemas": []any{patchOpURN}, "Operations": list}
}

func op(kind, path string, value any) map[string]any {
	m := map[string]any{"op": kind}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// obj reads an object attribute of a response body.
func obj(body map[string]any, key string) map[string]any {
	m, _ := body[key].(map[string]any)
	return m
}

// jsonEq compares a decoded value with JSON text.
func jsonEq(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("%s:\n got %s\nwant %s", what, g, want)
	}
}

// A base64 DER certificate longer than the 2,048 characters other
// multi-valued values may hold.
var certificate = func() string {
	b := make([]byte, 3000)
	for i := range b {
		b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i%64]
	}
	return "MIIC" + string(b)
}()

// TestRoundTripFidelity: every declared attribute comes back as the client
// last set it (issue 15, item 2): an explicit "primary": false stays
// false, an attribute removed is absent, x509Certificates survive, and the
// read-only manager.$ref and members[].$ref are computed on every read.
func TestRoundTripFidelity(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "okta", r)

	boss := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{
		"userName": "boss@example.test", "displayName": "The Boss"}), 201).str("id")
	created := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{
		"schemas":  []any{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		"userName": "carol@example.test", "active": true,
		"emails": []any{
			map[string]any{"value": "carol@example.test", "type": "work", "primary": true},
			map[string]any{"value": "carol@home.test", "type": "home", "primary": false},
		},
		"addresses":        []any{map[string]any{"locality": "Lyon", "type": "work", "primary": false}},
		"x509Certificates": []any{map[string]any{"value": certificate, "display": "signing"}},
		enterpriseURN: map[string]any{"manager": map[string]any{
			"value": boss, "$ref": "https://elsewhere.test/Users/" + boss}},
	}), 201)
	id := created.str("id")

	got := expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	jsonEq(t, "emails", got.body["emails"], `[
		{"value":"carol@example.test","type":"work","primary":true},
		{"value":"carol@home.test","type":"home","primary":false}]`)
	jsonEq(t, "addresses", got.body["addresses"], `[{"locality":"Lyon","type":"work","primary":false}]`)
	jsonEq(t, "x509Certificates", got.body["x509Certificates"], `[{"value":"`+certificate+`","display":"signing"}]`)
	jsonEq(t, "manager", obj(obj(got.body, enterpriseURN), "manager"), `{"value":"`+boss+`",
		"$ref":"https://scim.example.test/scim/v2/Users/`+boss+`","displayName":"The Boss"}`)
	if got.body["active"] != true {
		t.Errorf("active: %s", got.raw)
	}

	// remove active: absent afterwards, not back to true.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(op("remove", "active", nil))), 204)
	got = expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	if _, ok := got.body["active"]; ok {
		t.Errorf("active removed, still returned: %s", got.raw)
	}
	// x509Certificates added by PATCH are stored; primary false set by PATCH stays.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("add", "x509Certificates", []any{map[string]any{"value": "MIIBsecond", "primary": true}}),
		op("replace", `emails[type eq "work"].primary`, false),
	)), 204)
	got = expect(t, r.do(t, tok, "GET", "/Users/"+id+"?attributes=x509Certificates,emails", nil), 200)
	jsonEq(t, "x509Certificates after add", got.body["x509Certificates"], `[
		{"value":"`+certificate+`","display":"signing"},{"value":"MIIBsecond","primary":true}]`)
	jsonEq(t, "emails after primary false", got.body["emails"], `[
		{"value":"carol@example.test","type":"work","primary":false},
		{"value":"carol@home.test","type":"home","primary":false}]`)

	// A PUT restating the user is no change (the round trip is exact).
	before := expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200)
	put := map[string]any{}
	for k, v := range before.body {
		put[k] = v
	}
	after := expect(t, r.do(t, tok, "PUT", "/Users/"+id, put), 200)
	if after.str("meta.version") != before.str("meta.version") {
		t.Errorf("PUT of what GET returned changed the user: %s -> %s", before.raw, after.raw)
	}

	// members[].$ref from the id and the base URL.
	g := expect(t, r.do(t, tok, "POST", "/Groups", map[string]any{
		"displayName": "Readers", "members": []any{map[string]any{"value": id}}}), 201)
	jsonEq(t, "members", g.body["members"], `[{"value":"`+id+`","$ref":"https://scim.example.test/scim/v2/Users/`+id+`",
		"type":"User","display":"carol@example.test"}]`)
}

// TestPatchExtensionURNPath: a PATCH path that is an extension schema URN
// (issue 15, item 3): add and replace with an object merge into the
// extension, replace with null and remove clear it, for the enterprise
// extension and for undeclared (custom attribute) extensions alike.
func TestPatchExtensionURNPath(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "onelogin", r)
	id := expect(t, r.do(t, tok, "POST", "/Users", map[string]any{
		"userName":    "dave@example.test",
		enterpriseURN: map[string]any{"employeeNumber": "7", "department": "Ops"},
	}), 201).str("id")
	read := func() map[string]any {
		return expect(t, r.do(t, tok, "GET", "/Users/"+id, nil), 200).body
	}

	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("add", enterpriseURN, map[string]any{"department": "Sales", "costCenter": "42"}))), 204)
	jsonEq(t, "enterprise after add", read()[enterpriseURN], `{"employeeNumber":"7","department":"Sales","costCenter":"42"}`)

	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("replace", enterpriseURN, map[string]any{"costCenter": "43", "division": "EMEA"}))), 204)
	jsonEq(t, "enterprise after replace", read()[enterpriseURN],
		`{"employeeNumber":"7","department":"Sales","costCenter":"43","division":"EMEA"}`)

	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("add", acmeURN, map[string]any{"badge": "B-7"}),
		op("replace", acmeURN, map[string]any{"floor": 3}))), 204)
	doc := read()
	jsonEq(t, "custom extension", doc[acmeURN], `{"badge":"B-7","floor":3}`)
	jsonEq(t, "schemas", doc["schemas"], `["urn:ietf:params:scim:schemas:core:2.0:User",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","`+acmeURN+`"]`)

	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(op("remove", acmeURN, nil))), 204)
	if _, ok := read()[acmeURN]; ok {
		t.Errorf("custom extension removed, still returned")
	}
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, map[string]any{"schemas": []any{patchOpURN},
		"Operations": []any{map[string]any{"op": "replace", "path": enterpriseURN, "value": nil}}}), 204)
	if v, ok := read()[enterpriseURN]; ok {
		t.Errorf("enterprise extension replaced with null, still returned: %v", v)
	}
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("add", enterpriseURN, map[string]any{"department": "Legal"}))), 204)
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(op("remove", enterpriseURN, nil))), 204)
	if v, ok := read()[enterpriseURN]; ok {
		t.Errorf("enterprise extension removed, still returned: %v", v)
	}

	// Client mistakes are 400s naming the problem.
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(op("add", enterpriseURN, "Sales"))), 400, "invalidValue")
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, patchOps(
		op("remove", "urn:ietf:params:scim:schemas:core:2.0:User", nil))), 400, "invalidPath")
}

// warnings lists the notes of Warning events with reason on the object
// named name in ns.
func warnings(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, ev := range list.Items {
		if ev.Regarding.Name == name && ev.Reason == reason && ev.Type == corev1.EventTypeWarning {
			notes = append(notes, ev.Note)
		}
	}
	return notes
}

// TestLeniency: what RFC 7643/7644 leave to the client is accepted and
// kept (issue 15, item 4; docs/conformance.md): an e-mail value that is not
// an RFC 5321 address is stored as sent and flagged with a Warning event;
// members sent as bare strings are ids; member ids that are no user of the
// tenant are skipped with a Warning event naming them while the other
// members of the request are applied.
func TestLeniency(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "validator", r)

	// Microsoft's collection: "emailName357" (RFC 7643 §4.1.2: SHOULD).
	u := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"UserName111","emails":[
		{"Primary":true,"type":"work","value":"emailName357"},
		{"Primary":false,"type":"home","value":"testinghome@bob.com"}]}`), 201)
	uid := u.str("id")
	jsonEq(t, "emails", expect(t, r.do(t, tok, "GET", "/Users/"+uid, nil), 200).body["emails"], `[
		{"primary":true,"type":"work","value":"emailName357"},
		{"primary":false,"type":"home","value":"testinghome@bob.com"}]`)
	if res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(`emails.value eq "emailName357"`), nil), 200); res.total() != 1 {
		t.Errorf("the e-mail value stored as sent must be found: %s", res)
	}
	// attributes= with a value filter (Microsoft's validator): see
	// TestClientsValidator.
	eventually(t, 10*time.Second, func() error {
		if n := warnings(t, ns, uid, "EmailNotAnAddress"); len(n) != 1 || !strings.Contains(n[0], "emails[0]") {
			return fmt.Errorf("want one EmailNotAnAddress warning naming emails[0], got %q", n)
		}
		return nil
	})

	u1 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"u1@example.test"}`), 201).str("id")
	u2 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"u2@example.test"}`), 201).str("id")
	gid := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Group 1"}`), 201).str("id")

	// Microsoft's "Group tests with garbage": a bare string that is no user.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":"string id 1"}`)), 204)
	if got := r.members(t, tok, gid); len(got) != 0 {
		t.Errorf("an id that is no user was recorded: %v", got)
	}
	// A batch with a bare id, a stale id and an object: the stale one is
	// skipped, the others applied.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(
		`{"op":"add","path":"members","value":["`+u1+`",{"value":"stale-id"},{"value":"`+u2+`"}]}`)), 204)
	if got := r.members(t, tok, gid); !sameIDs(got, []string{u1, u2}) {
		t.Errorf("members: want %v, got %v", []string{u1, u2}, got)
	}
	eventually(t, 10*time.Second, func() error {
		notes := strings.Join(warnings(t, ns, gid, "MemberSkipped"), "\n")
		if !strings.Contains(notes, `"string id 1"`) || !strings.Contains(notes, `"stale-id"`) {
			return fmt.Errorf("want MemberSkipped warnings naming both ids, got %q", notes)
		}
		return nil
	})
	// POST and PUT alike.
	g2 := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Group 2","members":[{"value":"`+u1+`"},{"value":"gone"}]}`), 201)
	if got := r.members(t, tok, g2.str("id")); !sameIDs(got, []string{u1}) {
		t.Errorf("POST members: %v", got)
	}
	expect(t, r.do(t, tok, "PUT", "/Groups/"+gid, `{"displayName":"Group 1","members":["`+u2+`","gone"]}`), 200)
	if got := r.members(t, tok, gid); !sameIDs(got, []string{u2}) {
		t.Errorf("PUT members: %v", got)
	}
	expect(t, r.do(t, tok, "PUT", "/Groups/"+gid, `{"displayName":"Group 1","members":[{"value":"gone"}]}`), 200)
	if got := r.members(t, tok, gid); len(got) != 0 {
		t.Errorf("PUT with only unknown members must leave none: %v", got)
	}
}
