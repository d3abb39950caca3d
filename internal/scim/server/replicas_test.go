package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// TestReplicasConcurrentDuplicates: the same create raced on two replicas
// gives exactly one 201, 409 uniqueness for the rest, and one object
// (points 4 and 6).
func TestReplicasConcurrentDuplicates(t *testing.T) {
	ns := env.Namespace(t)
	a, b := startReplica(t, ns), startReplica(t, ns)
	tok := issueToken(t, ns, "entra", a, b)
	const rounds, perReplica = 20, 4

	// Each round sends the same create perReplica times to each replica
	// at once.
	race := func(t *testing.T, path string, body func(round int) string) {
		raceCreates(t, []*replica{a, b}, tok, path, rounds, perReplica, body)
	}

	t.Run("users", func(t *testing.T) {
		race(t, "/Users", func(round int) string {
			return fmt.Sprintf(`{"userName":"dup%02d@contoso.test","externalId":"x%02d"}`, round, round)
		})
		var list scimv1.ProvisionedUserList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, u := range list.Items {
			per[strings.ToLower(u.Spec.UserName)]++
		}
		for round := 0; round < rounds; round++ {
			if n := per[fmt.Sprintf("dup%02d@contoso.test", round)]; n != 1 {
				t.Errorf("userName dup%02d: %d ProvisionedUsers, want 1", round, n)
			}
		}
		if len(list.Items) != rounds {
			t.Errorf("%d ProvisionedUsers, want %d", len(list.Items), rounds)
		}
	})
	t.Run("groups", func(t *testing.T) {
		race(t, "/Groups", func(round int) string {
			return fmt.Sprintf(`{"displayName":"dup group %02d","members":[]}`, round)
		})
		var list scimv1.ProvisionedGroupList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, g := range list.Items {
			per[strings.ToLower(g.Spec.DisplayName)]++
		}
		for round := 0; round < rounds; round++ {
			if n := per[fmt.Sprintf("dup group %02d", round)]; n != 1 {
				t.Errorf("displayName dup group %02d: %d ProvisionedGroups, want 1", round, n)
			}
		}
		if len(list.Items) != rounds {
			t.Errorf("%d ProvisionedGroups, want %d", len(list.Items), rounds)
		}
	})
}

// raceCreates runs rounds of a race: each round, perReplica goroutines per
// replica POST body(round) to path at the same moment (every other one
// with "dup" upper-cased), and exactly one must get 201, the others 409
// uniqueness.
func raceCreates(t *testing.T, replicas []*replica, tok, path string, rounds, perReplica int, body func(round int) string) {
	want := len(replicas)*perReplica - 1
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		results := make(chan response, len(replicas)*perReplica)
		start := make(chan struct{})
		for _, r := range replicas {
			for i := 0; i < perReplica; i++ {
				wg.Add(1)
				go func(r *replica, i int) {
					defer wg.Done()
					<-start
					// Vary the case: uniqueness ignores it.
					text := body(round)
					if i%2 == 1 {
						text = strings.Replace(text, "dup", "DUP", 1)
					}
					results <- r.do(t, tok, "POST", path, text)
				}(r, i)
			}
		}
		close(start)
		wg.Wait()
		close(results)
		created, conflicts := 0, 0
		for res := range results {
			switch res.status {
			case 201:
				created++
			case 409:
				conflicts++
				expect(t, res, 409, "uniqueness")
			default:
				t.Errorf("round %d: unexpected answer %s", round, res)
			}
		}
		if created != 1 || conflicts != want {
			t.Errorf("round %d: %d created, %d conflicts; want 1 and %d", round, created, conflicts, want)
		}
	}
}

// TestReplicasReadYourWrites: a write on one replica is seen at once by a
// GET by id on the other (point 6), and the other's filters see it right
// after its own cache catches up.
func TestReplicasReadYourWrites(t *testing.T) {
	ns := env.Namespace(t)
	a, b := startReplica(t, ns), startReplica(t, ns)
	tok := issueToken(t, ns, "entra", a, b)
	for i := 0; i < 20; i++ {
		w, rd := a, b
		if i%2 == 1 {
			w, rd = b, a
		}
		created := expect(t, w.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":"ryw%02d@contoso.test","active":"True"}`, i)), 201)
		id := created.str("id")
		got := expect(t, rd.do(t, tok, "GET", "/Users/"+id, nil), 200)
		if got.str("userName") != fmt.Sprintf("ryw%02d@contoso.test", i) || got.str("meta.version") != created.str("meta.version") {
			t.Errorf("round %d: GET on the other replica: %s", i, got)
		}
		tag := expectPatched(t, w.do(t, tok, "PATCH", "/Users/"+id, patchOp(`{"op":"Replace","path":"active","value":"False"}`,
			`{"op":"replace","path":"displayName","value":"Round `+fmt.Sprint(i)+`"}`)))
		got = expect(t, rd.do(t, tok, "GET", "/Users/"+id, nil), 200)
		if got.body["active"] != false || got.str("displayName") != fmt.Sprintf("Round %d", i) ||
			got.str("meta.version") != tag || got.header.Get("ETag") != tag {
			t.Errorf("round %d: PATCH on one replica not seen by the other: %s", i, got)
		}
		// A duplicate on the other replica right after the create: 409,
		// even when that replica's cache has not seen the user yet.
		expect(t, rd.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":"RYW%02d@contoso.test"}`, i)), 409, "uniqueness")
	}

	// Groups: create on A, read and patch on B, members seen on A.
	uid := expect(t, a.do(t, tok, "POST", "/Users", `{"userName":"member@contoso.test"}`), 201).str("id")
	gid := expect(t, a.do(t, tok, "POST", "/Groups", `{"displayName":"RYW"}`), 201).str("id")
	expect(t, b.do(t, tok, "GET", "/Groups/"+gid+"?excludedAttributes=members", nil), 200)
	for i := 0; i < 10; i++ {
		expect(t, b.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(uid)+`}`)), 204)
		if got := a.members(t, tok, gid); !sameIDs(got, []string{uid}) {
			t.Errorf("round %d: member added on B not seen by GET on A: %v", i, got)
		}
		if u := expect(t, a.do(t, tok, "GET", "/Users/"+uid, nil), 200); !groupsOf(u)[gid] {
			t.Errorf("round %d: groups of a user added on B not seen by GET on A: %s", i, u.raw)
		}
		expect(t, b.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Remove","path":"members","value":`+memberValues(uid)+`}`)), 204)
		if got := a.members(t, tok, gid); len(got) != 0 {
			t.Errorf("round %d: member removed on B still seen by GET on A: %v", i, got)
		}
		if u := expect(t, a.do(t, tok, "GET", "/Users/"+uid, nil), 200); groupsOf(u)[gid] {
			t.Errorf("round %d: groups of a user removed on B still seen by GET on A: %s", i, u.raw)
		}
	}
	expect(t, b.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(uid)+`}`)), 204)
	expect(t, b.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Replace","path":"displayName","value":"RYW 2"}`)), 204)
	if g := expect(t, a.do(t, tok, "GET", "/Groups/"+gid+"?excludedAttributes=members", nil), 200); g.str("displayName") != "RYW 2" {
		t.Errorf("rename on B not seen by GET on A: %s", g)
	}
	// Deleted on B: 404 on A at once.
	expect(t, b.do(t, tok, "DELETE", "/Groups/"+gid, nil), 204)
	expect(t, a.do(t, tok, "GET", "/Groups/"+gid, nil), 404, "")
	expect(t, a.do(t, tok, "DELETE", "/Users/"+uid, nil), 204)
	expect(t, b.do(t, tok, "GET", "/Users/"+uid, nil), 404, "")
	expect(t, b.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"replace","path":"title","value":"x"}`)), 404, "")
}

// TestReplicasConcurrentMemberPatches: member PATCHes racing on one group
// from two replicas conflict on the newest shard and retry; no member is
// lost or stored twice.
func TestReplicasConcurrentMemberPatches(t *testing.T) {
	ns := env.Namespace(t)
	a, b := startReplica(t, ns), startReplica(t, ns)
	tok := issueToken(t, ns, "entra", a, b)
	const writers, each = 10, 20
	ids := bulkUsers(t, ns, writers*each, "m")
	gid := expect(t, a.do(t, tok, "POST", "/Groups", `{"displayName":"Race"}`), 201).str("id")
	start := time.Now()
	defer func() { t.Logf("concurrent member PATCHes took %s", time.Since(start)) }()
	var wg sync.WaitGroup
	results := make(chan response, writers)
	for w := 0; w < writers; w++ {
		r := a
		if w%2 == 1 {
			r = b
		}
		wg.Add(1)
		go func(r *replica, batch []string) {
			defer wg.Done()
			results <- r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(batch...)+`}`))
		}(r, ids[w*each:(w+1)*each])
	}
	wg.Wait()
	close(results)
	for res := range results {
		expect(t, res, 204)
	}
	seen := map[string]int{}
	for _, s := range shards(t, ns, gid) {
		for _, m := range s.Spec.Members {
			seen[m]++
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("member %s stored %d times", id, seen[id])
		}
	}
	if got := b.members(t, tok, gid); len(got) != len(ids) {
		t.Errorf("GET on B: %d members, want %d", len(got), len(ids))
	}
}

// TestNameClaimTakeover pins down when a NameClaim blocks a name: a claim
// whose owner does not exist yet belongs to a create in flight on another
// replica (409), while a claim whose owner moved on to another name is
// stale and taken over (201).
func TestNameClaimTakeover(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	ctx := context.Background()

	// In flight: the claim exists, its user not yet.
	inflight := &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: repository.ClaimName(scimv1.ClaimUserName, "inflight@contoso.test")},
		Spec:       scimv1.NameClaimSpec{Kind: scimv1.ClaimUserName, Value: "inflight@contoso.test", Owner: uuid.NewString()},
	}
	if err := env.Client.Create(ctx, inflight); err != nil {
		t.Fatal(err)
	}
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"InFlight@contoso.test"}`), 409, "uniqueness")
	gclaim := &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: repository.ClaimName(scimv1.ClaimDisplayName, "in flight")},
		Spec:       scimv1.NameClaimSpec{Kind: scimv1.ClaimDisplayName, Value: "in flight", Owner: uuid.NewString()},
	}
	if err := env.Client.Create(ctx, gclaim); err != nil {
		t.Fatal(err)
	}
	expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"In Flight"}`), 409, "uniqueness")

	// Stale: the owner was renamed behind the claim's back (a release that
	// failed after a rename).
	id := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"old@contoso.test"}`), 201).str("id")
	var u scimv1.ProvisionedUser
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &u); err != nil {
		t.Fatal(err)
	}
	u.Spec.UserName = "new@contoso.test"
	if err := env.Client.Update(ctx, &u); err != nil {
		t.Fatal(err)
	}
	taker := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"OLD@contoso.test"}`), 201).str("id")
	var c scimv1.NameClaim
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: repository.ClaimName(scimv1.ClaimUserName, "old@contoso.test")}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Owner != taker {
		t.Errorf("the stale claim was not taken over: owner %s, want %s", c.Spec.Owner, taker)
	}
}
