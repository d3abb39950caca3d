package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// displays reads a group's members as id -> display from a group body.
func displays(body map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := body["members"].([]any)
	for _, m := range list {
		el := m.(map[string]any)
		d, _ := el["display"].(string)
		out[el["value"].(string)] = d
	}
	return out
}

// checkDisplays compares a group's members and their displays, as GET
// /Groups/{id} returns them, with want, and checks that the shards hold a
// display only for a member of the same shard.
func checkDisplays(t *testing.T, r *replica, tok, ns, gid string, want map[string]string) {
	t.Helper()
	got := displays(expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).body)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members of %s:\n got %v\nwant %v", gid, got, want)
	}
	for name, s := range shards(t, ns, gid) {
		for id := range s.Spec.Displays {
			if !strings.Contains(" "+strings.Join(s.Spec.Members, " ")+" ", " "+id+" ") {
				t.Errorf("shard %s keeps the display of %s, which is not a member in it: %v", name, id, s.Spec.Displays)
			}
		}
	}
}

// memberDisplayKit is TestMemberDisplay's tenant: users a (displayName
// "lennay"), b ("Bee") and c (none), and the group gid the steps work on.
type memberDisplayKit struct {
	t       *testing.T
	r       *replica
	tok, ns string
	a, b, c string
	gid     string
}

// patch sends a PATCH of the group with the given operations (and
// headers), expecting status.
func (k *memberDisplayKit) patch(status int, ops string, headers ...string) {
	k.t.Helper()
	expect(k.t, k.r.do(k.t, k.tok, "PATCH", "/Groups/"+k.gid, patchOp(ops), headers...), status)
}

// TestMemberDisplay: a member's display is the one the client last sent
// for it, else the user's displayName (issue 15, item 4;
// docs/conformance.md), through POST, PUT and PATCH add, replace and
// remove; a removed member's display goes with it.
func TestMemberDisplay(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "validator", r)
	k := &memberDisplayKit{t: t, r: r, tok: tok, ns: ns}
	k.a = expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"a@example.test","displayName":"lennay"}`), 201).str("id")
	k.b = expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"b@example.test","displayName":"Bee"}`), 201).str("id")
	k.c = expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"c@example.test"}`), 201).str("id")
	a, b, c := k.a, k.b, k.c

	k.addNewUser()
	k.lastDisplayWins()
	k.storedDisplayRead()

	// PATCH replace: the displays become exactly the ones sent.
	k.patch(204, `{"op":"replace","path":"members","value":[{"value":"`+a+`"},{"value":"`+b+`","display":"B"}]}`)
	checkDisplays(t, r, tok, ns, k.gid, map[string]string{a: "lennay", b: "B"})
	// Remove without a filter clears members and displays.
	k.patch(204, `{"op":"remove","path":"members"}`)
	checkDisplays(t, r, tok, ns, k.gid, map[string]string{})

	k.postAndPut()
	k.longDisplay()

	// Entra's remove with a value array takes the display out too.
	k.patch(204, `{"op":"Remove","path":"members","value":`+memberValues(c)+`}`)
	for name, s := range shards(t, ns, k.gid) {
		if len(s.Spec.Members) > 0 || len(s.Spec.Displays) > 0 {
			t.Errorf("shard %s after the last member's removal: %+v", name, s.Spec)
		}
	}
}

// addNewUser: Microsoft's collection: "Patch add user4 to group1" sends
// the member's name as "displayName" (members have none), and "Get group
// by id" looks for it although the user has its own displayName. Removed,
// and added again without a display, the member shows its own.
func (k *memberDisplayKit) addNewUser() {
	t, r, tok, ns, a := k.t, k.r, k.tok, k.ns, k.a
	k.gid = expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Group1DisplayName","members":[]}`), 201).str("id")
	gid := k.gid
	k.patch(204, `{"name":"addMember","op":"add","path":"members","value":[{"displayName":"new User","value":"`+a+`"}]}`)
	if res := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200); !strings.Contains(string(res.raw), "new User") {
		t.Errorf("the display sent for a member is not returned: %s", res.raw)
	}
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "new User"})
	k.patch(204, `{"op":"remove","path":"members[value eq \"`+a+`\"]"}`)
	if s := shards(t, ns, gid); len(s) != 1 || len(s[gid+"-0"].Spec.Displays) != 0 {
		t.Errorf("a removed member's display stays in its shard: %+v", s)
	}
	k.patch(204, `{"op":"add","path":"members","value":[{"value":"`+a+`"}]}`)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "lennay"})
}

// lastDisplayWins: the last display sent wins; an add without one keeps
// it, and writes nothing (the version stays). A new display for a current
// member is a change: the version moves, so an If-Match with the old ETag
// fails afterwards.
func (k *memberDisplayKit) lastDisplayWins() {
	t, r, tok, ns, a, c, gid := k.t, k.r, k.tok, k.ns, k.a, k.c, k.gid
	k.patch(204, `{"op":"add","path":"members","value":[{"value":"`+a+`","display":"VP"},{"value":"`+c+`"}]}`)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "VP", c: "c@example.test"})
	tag := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).header.Get("ETag")
	k.patch(204, `{"op":"add","path":"members","value":["`+a+`",{"value":"`+c+`"}]}`)
	if now := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).header.Get("ETag"); now != tag {
		t.Errorf("re-adding members without displays changed the version: %s -> %s", tag, now)
	}
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "VP", c: "c@example.test"})
	k.patch(204, `{"op":"add","path":"members","value":[{"value":"`+a+`","display":"Chief"}]}`, "If-Match", tag)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "Chief", c: "c@example.test"})
	k.patch(412, `{"op":"add","path":"members","value":[{"value":"`+a+`","display":"Boss"}]}`, "If-Match", tag)
}

// storedDisplayRead: a filter sees the stored display ("Chief" for a);
// lists and the root search (read from the cache) show it too.
func (k *memberDisplayKit) storedDisplayRead() {
	t, r, tok, a, c, gid := k.t, k.r, k.tok, k.a, k.c, k.gid
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`members.display eq "Chief"`), nil), 200); res.total() != 1 {
		t.Errorf("filter on a stored member display: %s", res)
	}
	eventually(t, 10*time.Second, func() error {
		res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`id eq "`+gid+`"`), nil), 200)
		if got := displays(res.resources()[0]); got[a] != "Chief" || got[c] != "c@example.test" {
			return fmt.Errorf("list: %v", got)
		}
		res = expect(t, r.do(t, tok, "POST", "/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"id eq \"`+gid+`\""}`), 200)
		if got := displays(res.resources()[0]); got[a] != "Chief" {
			return fmt.Errorf("root search: %v", got)
		}
		return nil
	})
}

// postAndPut: Microsoft's collection: POST and PUT of a second group with
// "display"; a member without one shows its displayName.
func (k *memberDisplayKit) postAndPut() {
	t, r, tok, ns, a, b := k.t, k.r, k.tok, k.ns, k.a, k.b
	g2 := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"GroupDisplayName2","members":[{"value":"`+a+`","display":"VP"},{"value":"`+b+`"}]}`), 201)
	if got := displays(g2.body); got[a] != "VP" || got[b] != "Bee" {
		t.Errorf("POST answer: %v", got)
	}
	checkDisplays(t, r, tok, ns, g2.str("id"), map[string]string{a: "VP", b: "Bee"})
	put := expect(t, r.do(t, tok, "PUT", "/Groups/"+g2.str("id"), `{"displayName":"putName","members":[{"value":"`+a+`"},{"value":"`+b+`","display":"SenorVP"},{"value":"gone","display":"x"}]}`), 200)
	if got := displays(put.body); got[a] != "lennay" || got[b] != "SenorVP" {
		t.Errorf("PUT answer: %v", got)
	}
	checkDisplays(t, r, tok, ns, g2.str("id"), map[string]string{a: "lennay", b: "SenorVP"})
}

// longDisplay: a display is at most 256 bytes: a longer one is refused,
// not cut, and the stored one stays.
func (k *memberDisplayKit) longDisplay() {
	t, r, tok, ns, c, gid := k.t, k.r, k.tok, k.ns, k.c, k.gid
	long := strings.Repeat("é", 128) // 256 bytes
	k.patch(204, `{"op":"add","path":"members","value":[{"value":"`+c+`","display":"`+long+`"}]}`)
	checkDisplays(t, r, tok, ns, gid, map[string]string{c: long})
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+c+`","display":"`+long+`x"}]}`)), 400, "invalidValue")
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"G3","members":[{"value":"`+c+`","display":"`+long+`x"}]}`), 400, "invalidValue")
	checkDisplays(t, r, tok, ns, gid, map[string]string{c: long})
}

// TestMemberDisplayShards: a display lives in the shard of its member; a
// display change writes that shard only, and a replace across shards
// keeps each shard's displays to its own members.
func TestMemberDisplayShards(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)

	const total = scimv1.MaxMembersPerShard + 100
	ids := bulkUsers(t, ns, total, "disp")
	gid := expect(t, r.do(t, tok, "POST", "/Groups", entraGroup("Everyone", "ext-everyone")), 201).str("id")
	for i := 0; i < total; i += 700 {
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(ids[i:min(i+700, total)]...)+`}`)), 204)
	}
	before := shards(t, ns, gid)
	if len(before) != 2 {
		t.Fatalf("%d members: want 2 shards, got %d", total, len(before))
	}
	first, tail := gid+"-0", gid+"-1"
	inFirst := before[first].Spec.Members[5]
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+inFirst+`","display":"Five"}]}`)), 204)
	after := shards(t, ns, gid)
	if after[tail].ResourceVersion != before[tail].ResourceVersion {
		t.Errorf("a display change in %s wrote %s too", first, tail)
	}
	if d := after[first].Spec.Displays; len(d) != 1 || d[inFirst] != "Five" {
		t.Errorf("displays of %s: %v", first, d)
	}

	// A replace naming every member, with a display for one in the tail.
	inTail := before[tail].Spec.Members[3]
	values := make([]map[string]any, len(ids))
	for i, id := range ids {
		values[i] = map[string]any{"value": id}
		if id == inTail {
			values[i]["display"] = "Tail"
		}
	}
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOps(op("replace", "members", values))), 204)
	after = shards(t, ns, gid)
	if d := after[first].Spec.Displays; len(d) != 0 {
		t.Errorf("a replace without a display kept %v in %s", d, first)
	}
	if d := after[tail].Spec.Displays; len(d) != 1 || d[inTail] != "Tail" {
		t.Errorf("displays of %s: %v", tail, d)
	}
	if got := displays(expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).body); len(got) != total || got[inTail] != "Tail" || got[inFirst] == "Five" {
		t.Errorf("GET: %d members, %s shown as %q, %s as %q", len(got), inTail, got[inTail], inFirst, got[inFirst])
	}
}
