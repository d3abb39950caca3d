package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// Issue 13 item 2: queries no index narrows read a whole tenant, so they
// are bounded (a ceiling, slots per tenant and per replica) and read the
// cache without copying it.

// expectTooMany checks a 400 tooMany whose detail names what to filter on.
func expectTooMany(t *testing.T, res response, mentions ...string) {
	t.Helper()
	expect(t, res, 400, "tooMany")
	for _, m := range mentions {
		if !strings.Contains(res.str("detail"), m) {
			t.Errorf("tooMany detail must mention %q: %s", m, res.raw)
		}
	}
}

// TestScanCeilingUsers: above the ceiling, a user filter without an indexed
// equality and a sortBy answer 400 tooMany naming the indexed filters;
// indexed filters, plain paging and count=0 are served at any size.
func TestScanCeilingUsers(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplicaWith(t, server.Config{ScanCeiling: 5}, ns)
	tok := issueToken(t, ns, "okta", r)
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = expect(t, r.do(t, tok, "POST", "/Users", fmt.Sprintf(
			`{"userName":"ceiling%d@example.test","externalId":"ext-%d","title":"Engineer","emails":[{"value":"mail%d@example.test"}]}`, i, i, i)), 201).str("id")
	}

	for _, f := range []string{`title pr`, `userName sw "ceiling"`, `not (userName eq "x")`, `userName eq "a" or userName eq "b"`} {
		expectTooMany(t, r.do(t, tok, "GET", "/Users?filter="+urlq(f), nil), `userName eq "…"`, `externalId eq "…"`, "6 users", "5")
	}
	expectTooMany(t, r.do(t, tok, "POST", "/Users/.search",
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"title pr","sortBy":"displayName","count":10000}`), `userName eq "…"`)
	expectTooMany(t, r.do(t, tok, "GET", "/Users?sortBy=userName", nil), `userName eq "…"`)

	// Indexed filters, alone or and-ed with anything, sorted or not.
	for _, f := range []string{
		`userName eq "ceiling3@example.test"`, `userName eq "CEILING3@example.test" and title pr`,
		`externalId eq "ext-3"`, `emails.value eq "mail3@example.test"`, `emails[value eq "mail3@example.test"]`,
		`id eq "` + ids[3] + `"`, `title co "eng" and externalId eq "ext-3"`,
	} {
		for _, extra := range []string{"", "&sortBy=displayName&count=10000"} {
			res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(f)+extra, nil), 200)
			if rs := res.resources(); res.total() != 1 || len(rs) != 1 || rs[0]["id"] != ids[3] {
				t.Errorf("indexed filter %s%s: want user 3, got %s", f, extra, res)
			}
		}
	}
	// Paging without filter and sortBy (Okta's import) and count=0.
	var paged []string
	for _, start := range []int{1, 5} {
		page := expect(t, r.do(t, tok, "GET", fmt.Sprintf("/Users?startIndex=%d&count=4", start), nil), 200)
		if page.total() != 6 {
			t.Errorf("page at %d: %s", start, page)
		}
		for _, u := range page.resources() {
			paged = append(paged, u["id"].(string))
		}
	}
	if !sameIDs(paged, ids) || len(paged) != len(ids) {
		t.Errorf("two pages hold %v, want each of %v once", paged, ids)
	}
	if c0 := expect(t, r.do(t, tok, "GET", "/Users?count=0", nil), 200); c0.total() != 6 || len(c0.resources()) != 0 {
		t.Errorf("count=0: %s", c0)
	}
}

// TestScanCeilingGroups: the ceiling counts groups for an unindexed group
// filter or sortBy, and member entries for a filter that reads whole
// member lists (members.display co), also when an index narrows the
// groups; members.value eq stays indexed.
func TestScanCeilingGroups(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplicaWith(t, server.Config{ScanCeiling: 3}, ns)
	tok := issueToken(t, ns, "okta", r)
	users := createUsers(t, r, tok, "anna@example.test", "bert@example.test", "carl@example.test", "dana@example.test")
	teamA := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Team A","members":`+memberValues(users...)+`}`), 201).str("id")
	teamB := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Team B","members":`+memberValues(users[0])+`}`), 201).str("id")

	// 5 member entries in the tenant, 4 of them in Team A.
	expectTooMany(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`members.display co "a"`), nil), `members.value eq`, "member entries")
	expectTooMany(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "Team A" and members.display co "a"`), nil), `members.value eq`)
	expectTooMany(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`members[display co "a"]`), nil), `members.value eq`)

	for _, c := range []struct {
		filter string
		want   []string
	}{
		{`displayName co "Team"`, []string{teamA, teamB}},
		{`displayName eq "Team B" and members.display co "anna"`, []string{teamB}},
		{`members.value eq "` + users[1] + `"`, []string{teamA}},
		{`members eq "` + users[0] + `" and displayName sw "team"`, []string{teamA, teamB}},
		{`members eq "` + users[2] + `" or members eq "` + users[3] + `"`, []string{teamA}},
	} {
		res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(c.filter)+"&excludedAttributes=members", nil), 200)
		var got []string
		for _, g := range res.resources() {
			got = append(got, g["id"].(string))
		}
		if res.total() != len(c.want) || !sameIDs(got, c.want) {
			t.Errorf("filter %s: want %v, got %s", c.filter, c.want, res)
		}
	}

	// Two more groups: 4 in the tenant.
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Team C"}`), 201)
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Team D"}`), 201)
	expectTooMany(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName co "Team"`), nil), `displayName eq "…"`, "groups")
	expectTooMany(t, r.do(t, tok, "GET", "/Groups?sortBy=displayName", nil), `displayName eq "…"`)
	if res := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "team b"`), nil), 200); res.total() != 1 {
		t.Errorf("displayName eq: %s", res)
	}
	if res := expect(t, r.do(t, tok, "GET", "/Groups?count=10&excludedAttributes=members", nil), 200); res.total() != 4 || len(res.resources()) != 4 {
		t.Errorf("paging groups: %s", res)
	}
	// The page's members are rendered in full, as before.
	full := expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`displayName eq "Team A"`), nil), 200)
	ms, _ := full.resources()[0]["members"].([]any)
	displays := map[any]any{}
	for _, m := range ms {
		displays[m.(map[string]any)["value"]] = m.(map[string]any)["display"]
	}
	if len(ms) != 4 || displays[users[0]] != "anna@example.test" || displays[users[3]] != "dana@example.test" {
		t.Errorf("Team A with members: %s", full)
	}
}

// TestScanSlotsPerTenant: a tenant whose whole-tenant queries hold all its
// slots gets 429 with Retry-After for another one, and its indexed queries
// and other tenants' queries are served; when all tenants together hold
// the replica's slots, 503 with Retry-After.
func TestScanSlotsPerTenant(t *testing.T) {
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	r := startReplicaWith(t, server.Config{ScansPerTenant: 2, ScansTotal: 3, ScanWait: 10 * time.Millisecond}, nsA, nsB)
	tokA := issueToken(t, nsA, "tenant-a", r)
	tokB := issueToken(t, nsB, "tenant-b", r)
	createUsers(t, r, tokA, "a1@example.test")
	createUsers(t, r, tokB, "b1@example.test")
	scan := "/Users?filter=" + urlq(`userName sw "a"`) + "&sortBy=userName"
	scanB := "/Users?filter=" + urlq(`userName sw "b"`) + "&sortBy=userName"

	ctx := context.Background()
	releaseA, err := r.op.SCIM.HoldScans(ctx, nsA, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{scan, "/Users", "/Users?count=0", "/Groups?filter=" + urlq(`displayName co "x"`)} {
		res := expect(t, r.do(t, tokA, "GET", path, nil), 429)
		if res.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %s", res)
		}
	}
	if res := expect(t, r.do(t, tokA, "GET", "/Users?filter="+urlq(`userName eq "a1@example.test"`), nil), 200); res.total() != 1 {
		t.Errorf("indexed query of a busy tenant: %s", res)
	}
	if res := expect(t, r.do(t, tokB, "GET", scanB, nil), 200); res.total() != 1 {
		t.Errorf("another tenant's scan: %s", res)
	}

	// A third tenant takes the replica's last slot.
	releaseC, err := r.op.SCIM.HoldScans(ctx, "some-other-tenant", 1)
	if err != nil {
		t.Fatal(err)
	}
	res := expect(t, r.do(t, tokB, "GET", scanB, nil), 503)
	if res.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %s", res)
	}
	expect(t, r.do(t, tokB, "GET", "/Users?filter="+urlq(`userName eq "b1@example.test"`), nil), 200)

	releaseA()
	releaseC()
	if res := expect(t, r.do(t, tokA, "GET", scan, nil), 200); res.total() != 1 {
		t.Errorf("after the slots were freed: %s", res)
	}
}

// copyCounter counts the objects a reader deep-copies, by Go type.
type copyCounter struct {
	client.Reader
	mu     sync.Mutex
	copies map[string]int
}

func unsafeRead(v *bool) bool { return v != nil && *v }

func (c *copyCounter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Reader.Get(ctx, key, obj, opts...)
	o := &client.GetOptions{}
	o.ApplyOptions(opts)
	if err == nil && !unsafeRead(o.UnsafeDisableDeepCopy) {
		c.add(fmt.Sprintf("%T", obj), 1)
	}
	return err
}

func (c *copyCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := c.Reader.List(ctx, list, opts...)
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	if err == nil && !unsafeRead(o.UnsafeDisableDeepCopy) {
		c.add(strings.TrimSuffix(fmt.Sprintf("%T", list), "List"), meta.LenList(list))
	}
	return err
}

func (c *copyCounter) add(kind string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.copies[kind] += n
}

// take returns the counts since the last call and starts again.
func (c *copyCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.copies
	c.copies = map[string]int{}
	return out
}

// startCountingReplica is startReplica with the SCIM repository's cache
// reads counted.
func startCountingReplica(t *testing.T, cfg server.Config, namespaces ...string) (*replica, *copyCounter) {
	t.Helper()
	var counter *copyCounter
	r := startReplicaHooks(t, cfg, nil, func(op *operator.Operator) {
		counter = &copyCounter{Reader: op.Repo.Cache, copies: map[string]int{}}
		op.Repo.Cache = counter // before the manager starts: nothing reads it yet
	}, namespaces...)
	return r, counter
}

// TestScanReadsNoCopies: a whole-tenant query deep-copies no user of the
// tenant (the page is rendered from the cache's objects), count=0 copies
// nothing, and a members.display filter copies no member.
func TestScanReadsNoCopies(t *testing.T) {
	ns := env.Namespace(t)
	r, counter := startCountingReplica(t, server.Config{}, ns)
	tok := issueToken(t, ns, "okta", r)
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("copy%02d@example.test", i))
	}
	users := createUsers(t, r, tok, names...)
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Copiers","members":`+memberValues(users[:6]...)+`}`), 201)

	counter.take()
	res := expect(t, r.do(t, tok, "GET", "/Users?filter="+urlq(`userName sw "copy"`)+"&sortBy=userName&sortOrder=descending&count=3", nil), 200)
	if rs := res.resources(); res.total() != 12 || len(rs) != 3 || rs[0]["userName"] != names[11] || rs[2]["userName"] != names[9] {
		t.Errorf("sorted scan: %s", res)
	}
	if n := counter.take()["*v1alpha1.ProvisionedUser"]; n != 0 {
		t.Errorf("a filtered, sorted page of 3 deep-copied %d users of the tenant's 12", n)
	}

	res = expect(t, r.do(t, tok, "GET", "/Users?count=0", nil), 200)
	if res.total() != 12 || len(res.resources()) != 0 {
		t.Errorf("count=0: %s", res)
	}
	if got := counter.take(); len(got) != 0 {
		t.Errorf("count=0 deep-copied %v", got)
	}

	res = expect(t, r.do(t, tok, "GET", "/Groups?filter="+urlq(`members.display co "copy0"`)+"&excludedAttributes=members", nil), 200)
	if res.total() != 1 {
		t.Errorf("members.display co: %s", res)
	}
	if n := counter.take()["*v1alpha1.ProvisionedUser"]; n != 0 {
		t.Errorf("a members.display filter deep-copied %d members", n)
	}
}
