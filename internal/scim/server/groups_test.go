package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// patchOp wraps operations (JSON text each) in a PatchOp envelope.
func patchOp(ops ...string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

// expectPatched accepts either answer RFC 7644 §3.5.2 allows for a user
// PATCH (200 with the resource or 204) and returns the ETag it carries.
func expectPatched(t *testing.T, res response) string {
	t.Helper()
	if res.status != 200 && res.status != 204 {
		t.Fatalf("PATCH: want 200 or 204, got %s", res)
	}
	tag := res.header.Get("ETag")
	if tag == "" || (res.status == 200 && res.str("meta.version") != tag) {
		t.Fatalf("PATCH answer: ETag %q, meta.version %q", tag, res.str("meta.version"))
	}
	return tag
}

// memberValues renders ids as Entra's members value array.
func memberValues(ids ...string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf(`{"$ref":null,"value":%q}`, id)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// entraGroup is Entra's group POST: unknown ADSCIM URN, a client id and an
// empty member list (entra-interop.md §2 items 9 and 10).
func entraGroup(name, externalID string) string {
	return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
	  "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
	  "id":"client-chosen-id","externalId":%q,"displayName":%q,"meta":{"resourceType":"Group"},"members":[]}`, externalID, name)
}

// members reads a group's member ids through GET /Groups/{id}.
func (r *replica) members(t *testing.T, tok, gid string) []string {
	t.Helper()
	res := expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 200)
	list, _ := res.body["members"].([]any)
	ids := make([]string, 0, len(list))
	for _, m := range list {
		ids = append(ids, m.(map[string]any)["value"].(string))
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func sameIDs(a, b []string) bool {
	return slices.Equal(sorted(a...), sorted(b...))
}

func createUsers(t *testing.T, r *replica, tok string, names ...string) []string {
	t.Helper()
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = expect(t, r.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":%q}`, n)), 201).str("id")
	}
	return ids
}

// groupLife is TestGroupLifecycle's state: one tenant, four users (u), the
// group under test (gid, named Sales at first) and Entra's match probe for
// it. The steps run in order, each starting from where the last one left
// the group.
type groupLife struct {
	t     *testing.T
	r     *replica
	tok   string
	u     []string
	probe string // Entra's match probe for "Sales", members excluded
	gid   string
	other string // a second group, holding u[3]; set by memberFilters
}

func TestGroupLifecycle(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	g := &groupLife{t: t, r: r, tok: tok,
		u:     createUsers(t, r, tok, "u0@contoso.test", "u1@contoso.test", "u2@contoso.test", "u3@contoso.test"),
		probe: "/Groups?excludedAttributes=members&filter=" + urlq(`displayName eq "Sales"`)}
	g.create()
	g.patchMembers()
	g.readsExcludingMembers()
	g.userGroups()
	g.memberFilters()
	g.renames()
	g.refusedMemberPatches()
	g.put()
	g.delete()
}

// wantMembers checks the group's members against want (ids), failing at
// once with fatal set, because the following steps assume them.
func (g *groupLife) wantMembers(fatal bool, what string, want ...string) {
	g.t.Helper()
	if got := g.r.members(g.t, g.tok, g.gid); !sameIDs(got, want) {
		if fatal {
			g.t.Fatalf("%s: %v", what, got)
		}
		g.t.Errorf("%s: %v", what, got)
	}
}

// create: the match probe finds nothing, POST mints the id and answers
// with meta, Location and ETag, a name taken in another case is 409, and
// the probe then finds the group.
func (g *groupLife) create() {
	t, r, tok := g.t, g.r, g.tok
	if res := expect(t, r.do(t, tok, "GET", g.probe, nil), 200); res.total() != 0 {
		t.Fatalf("probe before create: %s", res)
	}
	created := expect(t, r.do(t, tok, "POST", "/Groups", entraGroup("Sales", "ext-sales")), 201)
	g.gid = created.str("id")
	if g.gid == "" || g.gid == "client-chosen-id" {
		t.Fatalf("the server mints the id: %s", created)
	}
	if created.header.Get("Location") != "https://scim.example.test/scim/v2/Groups/"+g.gid ||
		created.str("meta.resourceType") != "Group" || created.header.Get("ETag") != created.str("meta.version") {
		t.Errorf("created group meta/Location/ETag: %s (Location %q, ETag %q)", created.raw, created.header.Get("Location"), created.header.Get("ETag"))
	}
	if s, _ := json.Marshal(created.body["schemas"]); string(s) != `["urn:ietf:params:scim:schemas:core:2.0:Group"]` {
		t.Errorf("only served URNs come back, got %s", s)
	}
	if _, ok := created.body["members"]; ok {
		t.Errorf("an empty group has no members key: %s", created.raw)
	}
	expect(t, r.do(t, tok, "POST", "/Groups", entraGroup("SALES", "other")), 409, "uniqueness")

	// Entra's reads exclude members.
	res := expect(t, r.do(t, tok, "GET", g.probe, nil), 200)
	if res.total() != 1 || res.resources()[0]["id"] != g.gid {
		t.Fatalf("probe after create: %s", res)
	}
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "sales"`), nil), 200); res.total() != 1 {
		t.Errorf("displayName filter is case-insensitive: %s", res)
	}
}

// patchMembers: membership PATCHes, one row per client habit, applied in
// order. want is the member list afterwards (indices into u).
func (g *groupLife) patchMembers() {
	t, r, tok, u := g.t, g.r, g.tok, g.u
	rows := []struct {
		name string
		body string
		want []int
	}{
		{"add several members in one op", patchOp(`{"op":"Add","path":"members","value":` + memberValues(u[0], u[1], u[2]) + `}`), []int{0, 1, 2}},
		{"re-add is a no-op", patchOp(`{"op":"Add","path":"members","value":` + memberValues(u[0]) + `}`), []int{0, 1, 2}},
		{"remove by value array keeps the others", patchOp(`{"op":"Remove","path":"members","value":` + memberValues(u[0]) + `}`), []int{1, 2}},
		{"remove by value filter", patchOp(`{"op":"Remove","path":"members[value eq \"` + u[1] + `\"]"}`), []int{2}},
		{"remove of a non-member is a no-op", patchOp(`{"op":"remove","path":"members","value":` + memberValues(u[0]) + `}`), []int{2}},
		{"add then remove of one member in one request", patchOp(
			`{"op":"Add","path":"members","value":`+memberValues(u[3])+`}`,
			`{"op":"Remove","path":"members","value":`+memberValues(u[3])+`}`), []int{2}},
		{"remove then add in one request", patchOp(
			`{"op":"remove","path":"members[value eq \"`+u[2]+`\"]"}`,
			`{"op":"add","path":"members","value":`+memberValues(u[2])+`}`), []int{2}},
		{"replace members (validator's add)", patchOp(`{"op":"replace","path":"members","value":` + memberValues(u[0], u[3]) + `}`), []int{0, 3}},
		{"Okta: remove by filter plus add", patchOp(
			`{"op":"remove","path":"members[value eq \"`+u[0]+`\"]"}`,
			`{"op":"add","path":"members","value":[{"value":"`+u[1]+`","display":"u1"}]}`), []int{1, 3}},
		{"remove without value clears", patchOp(`{"op":"remove","path":"members"}`), nil},
		{"add a single object", patchOp(`{"op":"add","path":"members","value":{"value":"` + u[2] + `"}}`), []int{2}},
	}
	for _, row := range rows {
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+g.gid, row.body), 204)
		want := make([]string, len(row.want))
		for i, k := range row.want {
			want[i] = u[k]
		}
		if got := r.members(t, tok, g.gid); !sameIDs(got, want) {
			t.Errorf("%s: members %v, want %v", row.name, got, want)
		}
	}
}

// readsExcludingMembers: with members u0-u2, reads that exclude members
// never carry the key, by id, by filter or in a list.
func (g *groupLife) readsExcludingMembers() {
	t, r, tok, u := g.t, g.r, g.tok, g.u
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+g.gid, patchOp(`{"op":"add","path":"members","value":`+memberValues(u[0], u[1])+`}`)), 204)
	for _, path := range []string{"/Groups/" + g.gid + "?excludedAttributes=members", g.probe, "/Groups?excludedAttributes=members"} {
		res := expect(t, r.do(t, tok, "GET", path, nil), 200)
		docs := []map[string]any{res.body}
		if _, isList := res.body["Resources"]; isList {
			docs = res.resources()
		}
		for _, d := range docs {
			if _, ok := d["members"]; ok {
				t.Errorf("GET %s: members must be excluded: %s", path, res.raw)
			}
			if d["displayName"] != "Sales" {
				t.Errorf("GET %s: displayName missing: %s", path, res.raw)
			}
		}
	}
	g.wantMembers(true, "members", u[0], u[1], u[2])
}

// userGroups: a user's read-only groups attribute comes from memberships;
// clients sending groups in a user PUT or POST do not change membership.
func (g *groupLife) userGroups() {
	t, r, tok, u := g.t, g.r, g.tok, g.u
	ures := expect(t, r.do(t, tok, "GET", "/Users/"+u[0], nil), 200)
	groups, _ := ures.body["groups"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["value"] != g.gid || groups[0].(map[string]any)["display"] != "Sales" {
		t.Errorf("groups attribute of a member: %s", ures.raw)
	}
	if ures := expect(t, r.do(t, tok, "GET", "/Users/"+u[3], nil), 200); ures.body["groups"] != nil {
		t.Errorf("a non-member has no groups: %s", ures.raw)
	}
	expect(t, r.do(t, tok, "PUT", "/Users/"+u[3], `{"userName":"u3@contoso.test","groups":[{"value":"`+g.gid+`"}]}`), 200)
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"okta@contoso.test","password":"secret","groups":[]}`), 201)
	g.wantMembers(false, "groups sent on a user changed membership", u[0], u[1], u[2])
}

// memberFilters: membership filters (Entra's reference checks), against
// the group and a second one holding u3.
func (g *groupLife) memberFilters() {
	t, r, tok, u, gid := g.t, g.r, g.tok, g.u, g.gid
	g.other = expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Other","members":[{"value":"`+u[3]+`"}]}`), 201).str("id")
	other := g.other
	filters := []struct {
		f    string
		want []string
	}{
		{`members eq "` + u[0] + `"`, []string{gid}},
		{`members.value eq "` + u[3] + `"`, []string{other}},
		{`id eq "` + gid + `" and members eq "` + u[0] + `"`, []string{gid}},
		{`id eq "` + gid + `" and members eq "` + u[3] + `"`, nil},
		{`id eq "` + other + `" and members eq "` + u[3] + `"`, []string{other}},
		{`members eq "nobody"`, nil},
		{`displayName eq "Sales" and members eq "` + u[1] + `"`, []string{gid}},
		{`externalId eq "ext-sales"`, []string{gid}},
	}
	for _, f := range filters {
		res := expect(t, r.do(t, tok, "GET", "/Groups?excludedAttributes=members&filter="+urlq(f.f), nil), 200)
		var got []string
		for _, d := range res.resources() {
			got = append(got, d["id"].(string))
			if _, ok := d["members"]; ok {
				t.Errorf("filter %s: members must be excluded: %s", f.f, res.raw)
			}
		}
		if !sameIDs(got, f.want) || res.total() != len(f.want) {
			t.Errorf("filter %s: got %v (total %d), want %v", f.f, got, res.total(), f.want)
		}
	}
}

// renames: no-path replaces (validator: externalId, displayName; Okta:
// with id) keep the members; after Entra's rename form the old name is
// free and the new one taken. The group ends as "Marketing EU", ext-2.
func (g *groupLife) renames() {
	t, r, tok, u, gid := g.t, g.r, g.tok, g.u, g.gid
	v0 := expect(t, r.do(t, tok, "GET", "/Groups/"+gid+"?excludedAttributes=members", nil), 200).str("meta.version")
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"replace","value":{"externalId":"ext-2"}}`)), 204)
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"replace","value":{"id":"`+gid+`","displayName":"Marketing"}}`)), 204)
	got := expect(t, r.do(t, tok, "GET", "/Groups/"+gid+"?excludedAttributes=members", nil), 200)
	if got.str("displayName") != "Marketing" || got.str("externalId") != "ext-2" || got.str("meta.version") == v0 {
		t.Errorf("after no-path replaces: %s (version before %s)", got.raw, v0)
	}
	g.wantMembers(false, "a rename must keep members", u[0], u[1], u[2])
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Replace","path":"displayName","value":"Marketing EU"}`)), 204)
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"marketing eu"}`), 409, "uniqueness")
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+g.other, patchOp(`{"op":"Replace","path":"displayName","value":"MARKETING EU"}`)), 409, "uniqueness")
	freed := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Sales"}`), 201).str("id")
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Marketing"}`), 201)
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "Sales"`), nil), 200); res.total() != 1 || res.resources()[0]["id"] != freed {
		t.Errorf("old name must point at the new group only: %s", res)
	}
}

// refusedMemberPatches: client mistakes on members answer 400 and write
// nothing.
func (g *groupLife) refusedMemberPatches() {
	t, r, tok, u := g.t, g.r, g.tok, g.u
	for _, bad := range []struct{ body, scimType string }{
		// (Ids that are no user of the tenant are skipped, not refused:
		// TestMemberLeniency.)
		{patchOp(`{"op":"add","path":"members","value":[{"display":"x"}]}`), "invalidValue"},
		{patchOp(`{"op":"remove","path":"members[display eq \"x\"]"}`), "invalidFilter"},
	} {
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+g.gid, bad.body), 400, bad.scimType)
	}
	g.wantMembers(false, "a refused PATCH changed members", u[0], u[1], u[2])
}

// put: PUT replaces members when it lists them, and keeps them otherwise;
// it clears omitted attributes.
func (g *groupLife) put() {
	t, r, tok, u := g.t, g.r, g.tok, g.u
	expect(t, r.do(t, tok, "PUT", "/Groups/"+g.gid, `{"displayName":"Marketing EU","externalId":"ext-2"}`), 200)
	g.wantMembers(false, "PUT without members", u[0], u[1], u[2])
	put := expect(t, r.do(t, tok, "PUT", "/Groups/"+g.gid, `{"displayName":"Marketing EU","members":[{"value":"`+u[3]+`"}]}`), 200)
	if _, ok := put.body["externalId"]; ok {
		t.Errorf("PUT clears omitted attributes: %s", put.raw)
	}
	g.wantMembers(false, "PUT with members", u[3])
}

// delete: DELETE -> 204, then 404 everywhere, zero results, no trace in
// the former member's groups, and the name is free again.
func (g *groupLife) delete() {
	t, r, tok, gid := g.t, g.r, g.tok, g.gid
	expect(t, r.do(t, tok, "DELETE", "/Groups/"+gid, nil), 204)
	expect(t, r.do(t, tok, "GET", "/Groups/"+gid, nil), 404)
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"replace","path":"displayName","value":"x"}`)), 404)
	expect(t, r.do(t, tok, "PUT", "/Groups/"+gid, `{"displayName":"x"}`), 404)
	expect(t, r.do(t, tok, "DELETE", "/Groups/"+gid, nil), 404)
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "Marketing EU"`), nil), 200); res.total() != 0 {
		t.Errorf("deleted group still found: %s", res)
	}
	if ures := expect(t, r.do(t, tok, "GET", "/Users/"+g.u[3], nil), 200); groupsOf(ures)[gid] {
		t.Errorf("a deleted group stays in a user's groups: %s", ures.raw)
	}
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Marketing EU"}`), 201)
}

func groupsOf(res response) map[string]bool {
	out := map[string]bool{}
	list, _ := res.body["groups"].([]any)
	for _, g := range list {
		out[g.(map[string]any)["value"].(string)] = true
	}
	return out
}

// TestGroupMembershipShards grows a group past one shard and checks that a
// removal writes only the shard holding the member.
func TestGroupMembershipShards(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)

	const total, batch = 2500, 500
	ids := bulkUsers(t, ns, total, "bulk")
	gid := expect(t, r.do(t, tok, "POST", "/Groups", entraGroup("All Staff", "ext-all")), 201).str("id")
	for i := 0; i < total; i += batch {
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(ids[i:i+batch]...)+`}`)), 204)
	}
	// Re-adding a whole batch writes nothing.
	before := shards(t, ns, gid)
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(ids[:batch]...)+`}`)), 204)
	if after := shards(t, ns, gid); !sameVersions(before, after) {
		t.Errorf("re-adding members wrote shards")
	}

	if got := r.members(t, tok, gid); len(got) != total {
		t.Fatalf("members: %d, want %d", len(got), total)
	}
	before = shards(t, ns, gid)
	if len(before) < 2 {
		t.Fatalf("%d members must need more than one shard, got %d", total, len(before))
	}
	newest := repository.ShardName(gid, len(before)-1)
	for name, s := range before {
		if len(s.Spec.Members) > scimv1.MaxMembersPerShard {
			t.Errorf("shard %s holds %d members, max %d", name, len(s.Spec.Members), scimv1.MaxMembersPerShard)
		}
		// Only the newest takes new members: the API server kept the seals.
		if s.Spec.Sealed == (name == newest) {
			t.Errorf("shard %s: sealed=%v; every shard but the newest (%s) is sealed", name, s.Spec.Sealed, newest)
		}
	}
	// Remove one member: only its shard is written.
	victim := ids[7]
	var home string
	for name, s := range before {
		if slices.Contains(s.Spec.Members, victim) {
			home = name
		}
	}
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Remove","path":"members","value":`+memberValues(victim)+`}`)), 204)
	after := shards(t, ns, gid)
	for name, s := range after {
		changed := s.ResourceVersion != before[name].ResourceVersion
		if changed != (name == home) {
			t.Errorf("shard %s changed=%v; only %s should have been written", name, changed, home)
		}
		if slices.Contains(s.Spec.Members, victim) {
			t.Errorf("removed member still in shard %s", name)
		}
	}
	// Remove a batch spanning shards and filter by a member.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Remove","path":"members","value":`+memberValues(ids[1990:2010]...)+`}`)), 204)
	if got := r.members(t, tok, gid); len(got) != total-21 || slices.Contains(got, ids[2000]) || slices.Contains(got, victim) {
		t.Errorf("after removals: %d members, want %d", len(got), total-21)
	}
	res := expect(t, r.do(t, tok, "GET", "/Groups?excludedAttributes=members&filter="+urlq(`id eq "`+gid+`" and members eq "`+ids[2400]+`"`), nil), 200)
	if res.total() != 1 {
		t.Errorf("member filter on a large group: %s", res)
	}
	res = expect(t, r.do(t, tok, "GET", "/Groups?excludedAttributes=members&filter="+urlq(`id eq "`+gid+`" and members eq "`+victim+`"`), nil), 200)
	if res.total() != 0 {
		t.Errorf("member filter for a removed member: %s", res)
	}
	// Adding again fills the existing shards' room before creating new ones.
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"add","path":"members","value":`+memberValues(victim)+`}`)), 204)
	for name, s := range shards(t, ns, gid) {
		if len(s.Spec.Members) > scimv1.MaxMembersPerShard {
			t.Errorf("shard %s holds %d members", name, len(s.Spec.Members))
		}
	}
	if got := r.members(t, tok, gid); len(got) != total-20 {
		t.Errorf("after re-add: %d members", len(got))
	}
}

// bulkUsers creates n users straight through the API server (faster than
// SCIM when a test only needs ids to add as members).
func bulkUsers(t *testing.T, ns string, n int, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range ids {
		ids[i] = uuid.NewString()
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem }()
			errs <- env.Client.Create(ctx, &scimv1.ProvisionedUser{
				ObjectMeta: metav1.ObjectMeta{Name: ids[i], Namespace: ns},
				Spec:       scimv1.ProvisionedUserSpec{UserName: fmt.Sprintf("%s%04d@contoso.test", prefix, i)},
			})
		}(i)
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatalf("creating users: %v", err)
		}
	}
	return ids
}

func shards(t *testing.T, ns, gid string) map[string]scimv1.GroupMembership {
	t.Helper()
	var list scimv1.GroupMembershipList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{scimv1.LabelGroup: gid}); err != nil {
		t.Fatal(err)
	}
	out := map[string]scimv1.GroupMembership{}
	for _, s := range list.Items {
		out[s.Name] = s
	}
	return out
}

func sameVersions(a, b map[string]scimv1.GroupMembership) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k].ResourceVersion != v.ResourceVersion {
			return false
		}
	}
	return true
}
