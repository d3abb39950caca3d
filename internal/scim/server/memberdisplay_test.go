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

// TestMemberDisplay: a member's display is the one the client last sent
// for it, else the user's displayName (issue 15, item 4;
// docs/conformance.md), through POST, PUT and PATCH add, replace and
// remove; a removed member's display goes with it.
func TestMemberDisplay(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "validator", r)

	a := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"a@example.test","displayName":"lennay"}`), 201).str("id")
	b := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"b@example.test","displayName":"Bee"}`), 201).str("id")
	c := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"c@example.test"}`), 201).str("id")

	// Microsoft's collection: "Patch add user4 to group1" sends the
	// member's name as "displayName" (members have none), and "Get group
	// by id" looks for it although the user has its own displayName.
	gid := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Group1DisplayName","members":[]}`), 201).str("id")
	addNewUser := patchOp(`{"name":"addMember","op":"add","path":"members","value":[{"displayName":"new User","value":"` + a + `"}]}`)
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, addNewUser), 204)
	if res := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200); !strings.Contains(string(res.raw), "new User") {
		t.Errorf("the display sent for a member is not returned: %s", res.raw)
	}
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "new User"})
	// Removed, and added again without a display: the old display went.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"remove","path":"members[value eq \"`+a+`\"]"}`)), 204)
	if s := shards(t, ns, gid); len(s) != 1 || len(s[gid+"-0"].Spec.Displays) != 0 {
		t.Errorf("a removed member's display stays in its shard: %+v", s)
	}
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+a+`"}]}`)), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "lennay"})

	// The last display sent wins; an add without one keeps it, and writes
	// nothing (the version stays).
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+a+`","display":"VP"},{"value":"`+c+`"}]}`)), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "VP", c: "c@example.test"})
	tag := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).header.Get("ETag")
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":["`+a+`",{"value":"`+c+`"}]}`)), 204)
	if now := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200).header.Get("ETag"); now != tag {
		t.Errorf("re-adding members without displays changed the version: %s -> %s", tag, now)
	}
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "VP", c: "c@example.test"})
	// A new display for a current member is a change: the version moves,
	// so an If-Match with the old ETag fails afterwards.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+a+`","display":"Chief"}]}`), "If-Match", tag), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "Chief", c: "c@example.test"})
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+a+`","display":"Boss"}]}`), "If-Match", tag), 412)

	// A filter sees the stored display.
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`members.display eq "Chief"`), nil), 200); res.total() != 1 {
		t.Errorf("filter on a stored member display: %s", res)
	}
	// Lists and the root search (read from the cache) show it too.
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

	// PATCH replace: the displays become exactly the ones sent.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"replace","path":"members","value":[{"value":"`+a+`"},{"value":"`+b+`","display":"B"}]}`)), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{a: "lennay", b: "B"})
	// Remove without a filter clears members and displays.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"remove","path":"members"}`)), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{})

	// Microsoft's collection: POST and PUT with "display".
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

	// A display is at most 256 bytes: a longer one is refused, not cut.
	long := strings.Repeat("é", 128) // 256 bytes
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+c+`","display":"`+long+`"}]}`)), 204)
	checkDisplays(t, r, tok, ns, gid, map[string]string{c: long})
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":[{"value":"`+c+`","display":"`+long+`x"}]}`)), 400, "invalidValue")
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"G3","members":[{"value":"`+c+`","display":"`+long+`x"}]}`), 400, "invalidValue")
	checkDisplays(t, r, tok, ns, gid, map[string]string{c: long})

	// Entra's remove with a value array takes the display out too.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Remove","path":"members","value":`+memberValues(c)+`}`)), 204)
	for name, s := range shards(t, ns, gid) {
		if len(s.Spec.Members) > 0 || len(s.Spec.Displays) > 0 {
			t.Errorf("shard %s after the last member's removal: %+v", name, s.Spec)
		}
	}
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
