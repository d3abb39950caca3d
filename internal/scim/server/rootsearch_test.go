package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// Issue 15, item 1: POST /.search at the root (RFC 7644 §3.4.3) searches
// the Users and Groups of the caller's tenant.

const searchRequestURN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// rootSearch sends a root SearchRequest with the given members.
func rootSearch(t *testing.T, r *replica, tok string, members map[string]any) response {
	t.Helper()
	body := map[string]any{"schemas": []any{searchRequestURN}}
	for k, v := range members {
		body[k] = v
	}
	return r.do(t, tok, "POST", "/.search", body)
}

// typed lists the page as "User:<name>" / "Group:<name>" (userName or
// displayName), checking that each resource names its schema and type.
func typed(t *testing.T, res response) []string {
	t.Helper()
	var out []string
	for _, doc := range res.resources() {
		m, _ := doc["meta"].(map[string]any)
		rtype, _ := m["resourceType"].(string)
		schemas, _ := json.Marshal(doc["schemas"])
		switch rtype {
		case "User":
			if !strings.Contains(string(schemas), "urn:ietf:params:scim:schemas:core:2.0:User") {
				t.Errorf("a user without its schema: %v", doc)
			}
			name, _ := doc["userName"].(string)
			if name == "" {
				name, _ = doc["displayName"].(string)
			}
			out = append(out, "User:"+name)
		case "Group":
			if !strings.Contains(string(schemas), "urn:ietf:params:scim:schemas:core:2.0:Group") {
				t.Errorf("a group without its schema: %v", doc)
			}
			name, _ := doc["displayName"].(string)
			out = append(out, "Group:"+name)
		default:
			t.Errorf("a resource without meta.resourceType: %v", doc)
		}
		if doc["id"] == nil {
			t.Errorf("a resource without id: %v", doc)
		}
	}
	return out
}

func wantPage(t *testing.T, what string, res response, total int, want ...string) {
	t.Helper()
	got := typed(t, res)
	if res.total() != total || !slices.Equal(got, want) {
		t.Errorf("%s: want %d results, page %q; got %d, page %q\n%s", what, total, want, res.total(), got, res.raw)
	}
	if n, _ := res.body["itemsPerPage"].(float64); int(n) != len(want) {
		t.Errorf("%s: itemsPerPage %v, want %d", what, res.body["itemsPerPage"], len(want))
	}
}

// inOrder orders names as they appear in all.
func inOrder(all, names []string) []string {
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return out
}

// rootSearchKit is TestRootSearch's two tenants: A with alice and bob and
// the groups Admins (alice in it) and Builders; B with look-alikes that
// would match A's searches. all is A's resources in root search order:
// users first, then groups, each in the order their endpoint lists them
// (oldest first, then id: same-second creations order by id).
type rootSearchKit struct {
	t          *testing.T
	r          *replica
	tokA, tokB string
	alice      string
	all        []string
}

// TestRootSearch: mixed results with their types, filters on attributes of
// one type or both, sorting and paging across types, attributes and
// excludedAttributes, tenancy, and client mistakes as 400s.
func TestRootSearch(t *testing.T) {
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	r := startReplica(t, nsA, nsB)
	k := &rootSearchKit{t: t, r: r, tokA: issueToken(t, nsA, "tenant-a", r), tokB: issueToken(t, nsB, "tenant-b", r)}
	k.populate()
	k.noFilter()
	k.filters()
	k.sorting()
	k.paging()
	k.attributes()
	k.tenantB()
	// Client mistakes.
	for _, c := range rootSearchMistakes {
		res := r.do(t, k.tokA, "POST", "/.search", c.body)
		if res.status != 400 || c.scimType != "" && res.str("scimType") != c.scimType {
			t.Errorf("%s: want 400 %s, got %s", c.body, c.scimType, res)
		}
	}
	expect(t, r.do(t, "", "POST", "/.search", `{}`), 401)
}

// rootSearchMistakes are client mistakes in a root SearchRequest body: 400
// with the scimType ("" for any).
var rootSearchMistakes = []struct {
	body     string
	scimType string
}{
	{`{`, "invalidSyntax"},
	{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, "invalidSyntax"},
	{`{"filter":"userName eq"}`, "invalidFilter"},
	{`{"filter":"userName eq \"a\" and ("}`, "invalidFilter"},
	{`{"filter":"nosuch eq \"x\""}`, "invalidFilter"},
	{`{"filter":"userName eq \"a\" or nosuch pr"}`, "invalidFilter"},
	{`{"filter":"emails[nosuch eq \"x\"]"}`, "invalidFilter"},
	{`{"filter":42}`, "invalidSyntax"},
	{`{"filter":"displayName pr","filter":"id pr"}`, ""},
	{`{"sortBy":"nosuch"}`, "invalidValue"},
	{`{"sortOrder":"sideways"}`, "invalidValue"},
	{`{"count":"many"}`, "invalidSyntax"},
	{`{"attributes":{"a":1}}`, "invalidSyntax"},
}

// populate creates both tenants' resources and reads A's order into all.
func (k *rootSearchKit) populate() {
	t, r, tokA, tokB := k.t, k.r, k.tokA, k.tokB
	k.alice = expect(t, r.do(t, tokA, "POST", "/Users", `{"userName":"alice@example.test","displayName":"Alice Archer"}`), 201).str("id")
	expect(t, r.do(t, tokA, "POST", "/Users", `{"userName":"bob@example.test","displayName":"Bob Baker"}`), 201)
	expect(t, r.do(t, tokA, "POST", "/Groups", `{"displayName":"Admins","members":[{"value":"`+k.alice+`"}]}`), 201)
	expect(t, r.do(t, tokA, "POST", "/Groups", `{"displayName":"Builders"}`), 201)
	expect(t, r.do(t, tokB, "POST", "/Users", `{"userName":"alice@example.test","displayName":"Alice Archer"}`), 201)
	expect(t, r.do(t, tokB, "POST", "/Users", `{"userName":"anna@b.example.test","displayName":"Anna B"}`), 201)
	expect(t, r.do(t, tokB, "POST", "/Groups", `{"displayName":"Admins"}`), 201)

	k.all = append(typed(t, expect(t, r.do(t, tokA, "GET", "/Users", nil), 200)),
		typed(t, expect(t, r.do(t, tokA, "GET", "/Groups", nil), 200))...)
	if len(k.all) != 4 {
		t.Fatalf("tenant A lists %q", k.all)
	}
}

// search is a root search as tenant A, expected to succeed.
func (k *rootSearchKit) search(members map[string]any) response {
	k.t.Helper()
	return expect(k.t, rootSearch(k.t, k.r, k.tokA, members), 200)
}

// noFilter: everything of A's, as a ListResponse, with members and groups.
func (k *rootSearchKit) noFilter() {
	t, all := k.t, k.all
	aliceAt := slices.Index(all, "User:alice@example.test")
	res := k.search(nil)
	wantPage(t, "no filter", res, 4, all...)
	if rs := res.resources(); len(rs) == 4 {
		admins := rs[slices.Index(all, "Group:Admins")]
		if ms, _ := admins["members"].([]any); len(ms) != 1 {
			t.Errorf("Admins without its member: %v", admins)
		}
		if gs, _ := rs[aliceAt]["groups"].([]any); len(gs) != 1 {
			t.Errorf("alice without her group: %v", rs[aliceAt])
		}
	}
	if !strings.Contains(string(res.raw), "urn:ietf:params:scim:api:messages:2.0:ListResponse") {
		t.Errorf("not a ListResponse: %s", res.raw)
	}
}

// filters on attributes of one type or both.
func (k *rootSearchKit) filters() {
	for _, c := range []struct {
		filter string
		want   []string
	}{
		{`userName eq "alice@example.test"`, []string{"User:alice@example.test"}},
		{`displayName sw "a"`, []string{"User:alice@example.test", "Group:Admins"}},
		{`displayName eq "builders"`, []string{"Group:Builders"}},
		{`members pr`, []string{"Group:Admins"}},
		{`not (userName pr)`, []string{"Group:Admins", "Group:Builders"}},
		{`userName eq "bob@example.test" or displayName eq "Builders"`, []string{"User:bob@example.test", "Group:Builders"}},
		{`members.value eq "` + k.alice + `"`, []string{"Group:Admins"}},
		{`userName eq "alice@example.test" and members pr`, nil},
		{`meta.resourceType eq "Group"`, []string{"Group:Admins", "Group:Builders"}},
	} {
		res := k.search(map[string]any{"filter": c.filter})
		wantPage(k.t, "filter "+c.filter, res, len(c.want), inOrder(k.all, c.want)...)
	}
}

// rootSearchByName is tenant A's resources sorted by displayName.
var rootSearchByName = []string{"Group:Admins", "User:alice@example.test", "User:bob@example.test", "Group:Builders"}

// sorting across types; no value sorts last ascending, first descending.
func (k *rootSearchKit) sorting() {
	t, all := k.t, k.all
	wantPage(t, "sortBy displayName", k.search(map[string]any{"sortBy": "displayName"}), 4, rootSearchByName...)
	rev := slices.Clone(rootSearchByName)
	slices.Reverse(rev)
	wantPage(t, "sortBy displayName descending", k.search(map[string]any{"sortBy": "displayName", "sortOrder": "descending"}), 4, rev...)
	wantPage(t, "sortBy userName", k.search(map[string]any{"sortBy": "userName"}), 4,
		"User:alice@example.test", "User:bob@example.test", all[2], all[3])
	wantPage(t, "sortBy userName descending", k.search(map[string]any{"sortBy": "userName", "sortOrder": "descending"}), 4,
		all[2], all[3], "User:bob@example.test", "User:alice@example.test")
}

// paging across types, with and without sorting.
func (k *rootSearchKit) paging() {
	t, all := k.t, k.all
	page := k.search(map[string]any{"startIndex": 2, "count": 2})
	wantPage(t, "page 2-3", page, 4, all[1:3]...)
	if page.body["startIndex"] != float64(2) {
		t.Errorf("startIndex not echoed: %s", page.raw)
	}
	wantPage(t, "sorted page 3-4", k.search(map[string]any{"sortBy": "displayName", "startIndex": 3, "count": 5}), 4, rootSearchByName[2:]...)
	wantPage(t, "filtered page", k.search(map[string]any{"filter": `displayName pr`, "startIndex": 4, "count": 1}), 4, all[3])
	wantPage(t, "count 0", k.search(map[string]any{"count": 0}), 4)
	wantPage(t, "past the end", k.search(map[string]any{"startIndex": 9}), 4)
}

// attributes and excludedAttributes; the type is named regardless.
func (k *rootSearchKit) attributes() {
	t, all := k.t, k.all
	display := map[string]string{"User:alice@example.test": "User:Alice Archer", "User:bob@example.test": "User:Bob Baker",
		"Group:Admins": "Group:Admins", "Group:Builders": "Group:Builders"}
	res := k.search(map[string]any{"attributes": []string{"displayName"}})
	var shown []string
	for _, a := range all {
		shown = append(shown, display[a])
	}
	wantPage(t, "attributes displayName", res, 4, shown...)
	for _, doc := range res.resources() {
		for _, key := range []string{"userName", "members", "groups"} {
			if _, ok := doc[key]; ok {
				t.Errorf("attributes=displayName returned %s: %v", key, doc)
			}
		}
	}
	res = k.search(map[string]any{"excludedAttributes": "members,groups,meta"})
	wantPage(t, "excludedAttributes", res, 4, all...)
	for _, doc := range res.resources() {
		if _, ok := doc["members"]; ok {
			t.Errorf("excludedAttributes=members returned members: %v", doc)
		}
	}
}

// tenantB sees only its own, and nothing by tenant A's id.
func (k *rootSearchKit) tenantB() {
	t, r, tokB := k.t, k.r, k.tokB
	allB := typed(t, expect(t, r.do(t, tokB, "GET", "/Users", nil), 200))
	wantPage(t, "tenant B", expect(t, rootSearch(t, r, tokB, map[string]any{"filter": `displayName sw "a"`}), 200), 3,
		append(allB, "Group:Admins")...)
	wantPage(t, "tenant B, tenant A's id", expect(t, rootSearch(t, r, tokB,
		map[string]any{"filter": `id eq "` + k.alice + `" or members.value eq "` + k.alice + `"`}), 200), 0)
}

// TestRootSearchBounds: the root search reads no more than the per-type
// searches would: a type over the ceiling refuses it with 400 tooMany, a
// filter only one type can match reads only that type, indexed filters are
// served at any size, and both types share one scan slot.
func TestRootSearchBounds(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplicaWith(t, server.Config{ScanCeiling: 3, ScansPerTenant: 2, ScanWait: 10 * time.Millisecond}, ns)
	tok := issueToken(t, ns, "okta", r)
	createUsers(t, r, tok, "solo@example.test")
	for i := range 4 {
		expect(t, r.do(t, tok, "POST", "/Groups", fmt.Sprintf(`{"displayName":"G%d"}`, i)), 201)
	}
	firstGroup := typed(t, expect(t, r.do(t, tok, "GET", "/Groups?count=1", nil), 200))[0]

	expectTooMany(t, rootSearch(t, r, tok, map[string]any{"filter": `displayName co "G"`}), "4 groups", `displayName eq "…"`)
	expectTooMany(t, rootSearch(t, r, tok, map[string]any{"sortBy": "displayName"}), "4 groups")
	expectTooMany(t, rootSearch(t, r, tok, map[string]any{"filter": `userName pr or displayName co "G"`}), "4 groups")
	// Only users can match: the groups are not read, so not counted.
	wantPage(t, "userName sw", expect(t, rootSearch(t, r, tok, map[string]any{"filter": `userName sw "solo"`}), 200), 1,
		"User:solo@example.test")
	// Indexed in both types.
	wantPage(t, "displayName eq", expect(t, rootSearch(t, r, tok, map[string]any{"filter": `displayName eq "G2"`}), 200), 1,
		"Group:G2")
	// A plain listing has no ceiling, as /Users and /Groups.
	wantPage(t, "plain", expect(t, rootSearch(t, r, tok, map[string]any{"count": 2}), 200), 5, "User:solo@example.test", firstGroup)

	// One slot for both types: with one of the tenant's two slots taken
	// the root search runs; with both, 429 with Retry-After.
	ctx := context.Background()
	release1, err := r.op.SCIM.HoldScans(ctx, ns, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, "one slot free", expect(t, rootSearch(t, r, tok, map[string]any{"count": 1}), 200), 5, "User:solo@example.test")
	release2, err := r.op.SCIM.HoldScans(ctx, ns, 1)
	if err != nil {
		t.Fatal(err)
	}
	res := expect(t, rootSearch(t, r, tok, nil), 429)
	if res.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %s", res)
	}
	// An indexed search needs no slot.
	wantPage(t, "indexed while busy", expect(t, rootSearch(t, r, tok, map[string]any{"filter": `userName eq "SOLO@example.test"`}), 200), 1,
		"User:solo@example.test")
	release1()
	release2()
	// The slot was given back.
	for range 3 {
		expect(t, rootSearch(t, r, tok, map[string]any{"filter": `userName sw "s"`}), 200)
	}
}
