package handlertest_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// emailsOf returns a user's emails as type -> value.
func emailsOf(t *testing.T, res response) map[string]string {
	t.Helper()
	out := map[string]string{}
	list, _ := res.body["emails"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		typ, _ := m["type"].(string)
		v, _ := m["value"].(string)
		out[typ] = v
	}
	return out
}

// patchUserCases are PATCHes of TestPatchUser's bob (active, "Bob Jones",
// a work and a home email), each with a check of bob afterwards.
var patchUserCases = []struct {
	name  string
	ops   []map[string]any
	check func(t *testing.T, after response)
}{{
	// Entra's deactivation: the op capitalised, the boolean a string.
	name: `Entra Replace active "False"`,
	ops:  []map[string]any{op("Replace", "active", "False")},
	check: func(t *testing.T, after response) {
		if after.get("active") != false {
			t.Errorf("active = %v, want false", after.get("active"))
		}
	},
}, {
	name: "replace without a path",
	ops:  []map[string]any{op("replace", "", map[string]any{"displayName": "Bobby", "title": "Lead"})},
	check: func(t *testing.T, after response) {
		if after.str("displayName") != "Bobby" || after.str("title") != "Lead" {
			t.Errorf("got displayName %q, title %q", after.str("displayName"), after.str("title"))
		}
	},
}, {
	name: "a value path selects one email",
	ops:  []map[string]any{op("replace", `emails[type eq "work"].value`, "robert@work.example")},
	check: func(t *testing.T, after response) {
		want := map[string]string{"work": "robert@work.example", "home": "bob@home.example"}
		if got := emailsOf(t, after); !mapsEqual(got, want) {
			t.Errorf("emails %v, want %v", got, want)
		}
	},
}, {
	name: "a value path that matches nothing creates the element",
	ops:  []map[string]any{op("add", `emails[type eq "other"].value`, "bob@other.example")},
	check: func(t *testing.T, after response) {
		if got := emailsOf(t, after)["other"]; got != "bob@other.example" {
			t.Errorf("other email %q, want bob@other.example; %s", got, after)
		}
	},
}, {
	name: "remove by filter",
	ops:  []map[string]any{op("remove", `emails[type eq "home"]`, nil)},
	check: func(t *testing.T, after response) {
		want := map[string]string{"work": "bob@work.example"}
		if got := emailsOf(t, after); !mapsEqual(got, want) {
			t.Errorf("emails %v, want %v", got, want)
		}
	},
}, {
	name: "an enterprise attribute by its URN path",
	ops:  []map[string]any{op("add", enterpriseURN+":department", "Support")},
	check: func(t *testing.T, after response) {
		ext, _ := after.body[enterpriseURN].(map[string]any)
		if got := ext["department"]; got != "Support" {
			t.Errorf("department %v, want Support; %s", got, after)
		}
	},
}, {
	name: "operations apply in order",
	ops: []map[string]any{
		op("replace", "title", "First"), op("remove", "title", nil), op("add", "nickName", "Bo"),
	},
	check: func(t *testing.T, after response) {
		if after.get("title") != nil || after.str("nickName") != "Bo" {
			t.Errorf("title %v, nickName %q", after.get("title"), after.str("nickName"))
		}
	},
}}

// TestPatchUser applies each of patchUserCases to a new bob, and checks
// the ETag moved and is the PATCH answer's and meta.version.
func TestPatchUser(t *testing.T) {
	for _, tc := range patchUserCases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, server.Config{})
			bob := h.createUser(map[string]any{
				"userName": "bob@example.com", "displayName": "Bob Jones", "active": true,
				"emails": []any{
					map[string]any{"value": "bob@work.example", "type": "work"},
					map[string]any{"value": "bob@home.example", "type": "home"},
				},
			})
			before := must(t, h.do("GET", "/Users/"+bob, nil), http.StatusOK)
			res := must(t, h.do("PATCH", "/Users/"+bob, patchOp(tc.ops...)), http.StatusNoContent)
			after := must(t, h.do("GET", "/Users/"+bob, nil), http.StatusOK)
			tc.check(t, after)
			if res.header.Get("ETag") != after.header.Get("ETag") {
				t.Errorf("the PATCH answered ETag %s, a GET after it %s", res.header.Get("ETag"), after.header.Get("ETag"))
			}
			if before.header.Get("ETag") == after.header.Get("ETag") {
				t.Errorf("a change kept the ETag %s", after.header.Get("ETag"))
			}
			if after.str("meta.version") != after.header.Get("ETag") {
				t.Errorf("meta.version %s differs from the ETag %s", after.str("meta.version"), after.header.Get("ETag"))
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A PATCH that restates what is stored writes nothing: the version stays.
func TestPatchNoOp(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, _, _ := people(h)
	eng := h.group("Engineering", alice)
	for _, tc := range []struct {
		name, path string
		ops        []map[string]any
	}{
		{"same active", "/Users/" + bob, []map[string]any{op("replace", "active", false)}},
		{"same displayName", "/Users/" + bob, []map[string]any{op("replace", "displayName", "Bob Jones")}},
		{"remove what is absent", "/Users/" + bob, []map[string]any{op("remove", "title", nil)}},
		{"add an existing member", "/Groups/" + eng, []map[string]any{op("add", "members", []any{map[string]any{"value": alice}})}},
		{"remove a non-member", "/Groups/" + eng, []map[string]any{op("remove", `members[value eq "`+bob+`"]`, nil)}},
		{"same group displayName", "/Groups/" + eng, []map[string]any{op("replace", "displayName", "Engineering")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := must(t, h.do("GET", tc.path, nil), http.StatusOK).header.Get("ETag")
			res := must(t, h.do("PATCH", tc.path, patchOp(tc.ops...), "If-Match", before), http.StatusNoContent)
			after := must(t, h.do("GET", tc.path, nil), http.StatusOK).header.Get("ETag")
			if before != after {
				t.Errorf("a no-op PATCH moved the version from %s to %s", before, after)
			}
			if tag := res.header.Get("ETag"); tag != "" && tag != before {
				t.Errorf("a no-op PATCH answered ETag %s, want %s", tag, before)
			}
		})
	}
}

// PATCH answers 200 with the user when the client asks for attributes.
func TestPatchWithAttributes(t *testing.T) {
	h := start(t, server.Config{})
	_, bob, _, _ := people(h)
	res := must(t, h.do("PATCH", "/Users/"+bob+"?attributes=active", patchOp(op("replace", "active", true))), http.StatusOK)
	if res.get("active") != true || res.get("userName") != nil {
		t.Errorf("want only id, schemas and active=true, got %s", res)
	}
}

func TestPatchGroupMembers(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, carol, dave := people(h)
	eng := h.group("Engineering", alice)
	patch := func(ops ...map[string]any) {
		t.Helper()
		must(t, h.do("PATCH", "/Groups/"+eng, patchOp(ops...)), http.StatusNoContent)
	}
	member := func(ids ...string) []any {
		out := make([]any, len(ids))
		for i, id := range ids {
			out[i] = map[string]any{"value": id}
		}
		return out
	}
	// New members are appended, each request's in id order.
	sorted := func(ids ...string) []string { s := slices.Clone(ids); slices.Sort(s); return s }
	steps := []struct {
		name string
		ops  []map[string]any
		want []string
	}{
		{"add two", []map[string]any{op("Add", "members", member(carol, bob))}, append([]string{alice}, sorted(bob, carol)...)},
		{"remove by value filter", []map[string]any{op("Remove", `members[value eq "`+alice+`"]`, nil)}, sorted(bob, carol)},
		{"remove with a value list", []map[string]any{op("remove", "members", member(bob))}, []string{carol}},
		{"add and remove in one request", []map[string]any{
			op("add", "members", member(dave, alice)), op("remove", `members[value eq "`+carol+`"]`, nil),
		}, sorted(alice, dave)},
		{"replace the list", []map[string]any{op("replace", "members", member(bob))}, []string{bob}},
		{"remove all", []map[string]any{op("remove", "members", nil)}, []string{}},
	}
	for _, st := range steps {
		before := h.do("GET", "/Groups/"+eng, nil).header.Get("ETag")
		patch(st.ops...)
		if got := h.members(eng); !slices.Equal(got, st.want) {
			t.Fatalf("%s: members %q, want %q", st.name, got, st.want)
		}
		if after := h.do("GET", "/Groups/"+eng, nil).header.Get("ETag"); after == before {
			t.Errorf("%s: a member change kept the group's ETag %s", st.name, after)
		}
	}

	// The user's groups attribute follows the membership.
	patch(op("add", "members", member(carol)))
	res := must(t, h.do("GET", "/Users/"+carol+"?attributes=groups", nil), http.StatusOK)
	groups, _ := res.body["groups"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["value"] != eng || groups[0].(map[string]any)["display"] != "Engineering" {
		t.Errorf("carol's groups: %s", res)
	}
}

// Member ids that are not users of the tenant are skipped with a warning;
// the rest of the request applies.
func TestPatchGroupUnknownMember(t *testing.T) {
	h := start(t, server.Config{})
	alice, _, _, _ := people(h)
	other := h.doAs(tokenB, "POST", "/Users", map[string]any{"userName": "mallory@example.com"})
	must(t, other, http.StatusCreated)
	eng := h.group("Engineering")
	must(t, h.do("PATCH", "/Groups/"+eng, patchOp(op("add", "members", []any{
		map[string]any{"value": alice}, map[string]any{"value": "no-such-user"}, map[string]any{"value": other.str("id")},
	}))), http.StatusNoContent)
	if got := h.members(eng); !slices.Equal(got, []string{alice}) {
		t.Errorf("members %q, want only alice", got)
	}
	events := h.store.Events()
	if len(events) != 1 || events[0].Reason != repository.EventMemberSkipped || events[0].Name != eng {
		t.Fatalf("want one %s event on the group, got %+v", repository.EventMemberSkipped, events)
	}
}

// Displays a client sends for members are kept and shown; a member without
// one shows the user's displayName.
func TestMemberDisplays(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, _, _ := people(h)
	eng := h.group("Engineering")
	must(t, h.do("PATCH", "/Groups/"+eng, patchOp(op("add", "members", []any{
		map[string]any{"value": alice, "display": "Ally"}, map[string]any{"value": bob},
	}))), http.StatusNoContent)
	res := must(t, h.do("GET", "/Groups/"+eng, nil), http.StatusOK)
	displays := map[string]string{}
	for _, m := range res.body["members"].([]any) {
		el := m.(map[string]any)
		displays[el["value"].(string)], _ = el["display"].(string)
	}
	if want := map[string]string{alice: "Ally", bob: "Bob Jones"}; !mapsEqual(displays, want) {
		t.Errorf("displays %v, want %v", displays, want)
	}
}
