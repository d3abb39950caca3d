package repository_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// writeCounter counts the writes of membership shards and groups.
type writeCounter struct {
	client.Client
	shards, groups atomic.Int64
	// gate, when set, holds each shard update until that many are held
	// at once (or 10 s passed: serial).
	gate *shardGate
}

type shardGate struct {
	want   int
	mu     sync.Mutex
	held   int
	all    chan struct{}
	serial atomic.Bool
}

func (g *shardGate) pass() {
	g.mu.Lock()
	if g.held++; g.held == g.want {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(10 * time.Second):
		g.serial.Store(true)
	}
}

func (c *writeCounter) count(o client.Object) {
	switch o.(type) {
	case *scimv1.GroupMembership:
		c.shards.Add(1)
	case *scimv1.ProvisionedGroup:
		c.groups.Add(1)
	}
}

func (c *writeCounter) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	c.count(o)
	return c.Client.Create(ctx, o, opts...)
}

func (c *writeCounter) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	c.count(o)
	if _, shard := o.(*scimv1.GroupMembership); shard && c.gate != nil {
		c.gate.pass()
	}
	return c.Client.Update(ctx, o, opts...)
}

func (c *writeCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	c.count(o)
	return c.Client.Patch(ctx, o, p, opts...)
}

// cachedRepository is a repository over an informer cache of namespace ns,
// as a replica has, writing through a writeCounter.
func cachedRepository(t *testing.T, e *testenv.Env, ns string) (*repository.Repository, *writeCounter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := cache.New(e.Config, cache.Options{Scheme: e.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	w := &writeCounter{Client: e.Client}
	repo, synced, err := repository.New(ctx, c, repository.Options{Live: e.Client, Client: w, IDKey: testenv.IDKey()})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, s := range synced {
			if !s() {
				return fmt.Errorf("the repository's handlers have not synced")
			}
		}
		return nil
	})
	return repo, w
}

// groupOnReplica creates an empty group in a new tenant, through a
// repository over an informer cache (cachedRepository).
func groupOnReplica(t *testing.T, name string) (string, repository.Principal, *repository.Repository, *writeCounter, *scimv1.ProvisionedGroup) {
	t.Helper()
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	p := repository.Principal{Namespace: ns}
	repo, writes := cachedRepository(t, e, ns)
	g, err := repo.CreateGroup(context.Background(), p, scimv1.ProvisionedGroupSpec{DisplayName: name}, false)
	if err != nil {
		t.Fatal(err)
	}
	return ns, p, repo, writes, g
}

// TestMemberChangesWaitingForTheirTurnAreWrittenTogether: changes of a
// group that arrive while another holds its turn are written as one batch
// (one shard write and one stamp of the group), and each is answered only
// once the batch is written. Without batches, six changes cost six shard
// writes and six stamps, one after the other.
func TestMemberChangesWaitingForTheirTurnAreWrittenTogether(t *testing.T) {
	ctx := context.Background()
	ns, p, repo, writes, g := groupOnReplica(t, "Batch")
	release, err := repo.HoldMemberTurn(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	const changes, each = 6, 5
	var want []string
	answers := make(chan error, changes)
	for c := range changes {
		ids := make([]string, each)
		for i := range ids {
			ids[i] = fmt.Sprintf("member-%d-%d", c, i)
		}
		want = append(want, ids...)
		ops := []patch.MemberOp{{Kind: patch.MemberAdd, IDs: ids}}
		// One member all of them change, in turn: the batch must apply
		// the changes in the order they came (removed, added with display
		// "1", removed, ...; the last adds it with "5").
		if c%2 == 1 {
			ops = append(ops, patch.MemberOp{Kind: patch.MemberAdd, IDs: []string{"shared"}, Displays: map[string]string{"shared": fmt.Sprint(c)}})
		} else {
			ops = append(ops, patch.MemberOp{Kind: patch.MemberRemove, IDs: []string{"shared"}})
		}
		go func() {
			_, err := repo.ApplyMembers(ctx, p, g, ops)
			answers <- err
		}()
		waitForBatch(t, repo, p, g, c+1) // they join in this order
	}
	select {
	case err := <-answers:
		t.Fatalf("a change was answered (%v) before the group's turn came", err)
	default:
	}
	shardsBefore, groupsBefore := writes.shards.Load(), writes.groups.Load()
	release()
	for range changes {
		if err := <-answers; err != nil {
			t.Fatal(err)
		}
	}
	if s, gr := writes.shards.Load()-shardsBefore, writes.groups.Load()-groupsBefore; s != 1 || gr != 1 {
		t.Errorf("%d changes waiting together: want 1 shard write and 1 group stamp, got %d and %d", changes, s, gr)
	}
	members, displays, err := repo.LiveMembersWithDisplays(ctx, ns, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "shared") // the last change added it
	slices.Sort(members)
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Errorf("members: want %v, got %v", want, members)
	}
	if d := displays["shared"]; d != "5" {
		t.Errorf("the member every change touched: want the display of the last change (5), got %q", d)
	}
}

// TestMemberBatchOutlivesItsLeadersClient: the change that opened a batch
// runs it; when its client goes away while others wait in the batch, the
// batch is still written and the others get their answer.
func TestMemberBatchOutlivesItsLeadersClient(t *testing.T) {
	ctx := context.Background()
	ns, p, repo, _, g := groupOnReplica(t, "Leader")
	release, err := repo.HoldMemberTurn(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	leaderCtx, leaderGone := context.WithCancel(ctx)
	leader, follower := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := repo.ApplyMembers(leaderCtx, p, g, []patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{"by-leader"}}})
		leader <- err
	}()
	waitForBatch(t, repo, p, g, 1)
	go func() {
		_, err := repo.ApplyMembers(ctx, p, g, []patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{"by-follower"}}})
		follower <- err
	}()
	waitForBatch(t, repo, p, g, 2)
	leaderGone()
	if err := <-leader; err == nil {
		t.Error("the leader's client went away: want an error, got an acknowledgement")
	}
	release()
	if err := <-follower; err != nil {
		t.Fatalf("the follower: want its change written, got %v", err)
	}
	members, err := repo.LiveMembers(ctx, ns, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(members, "by-follower") {
		t.Errorf("the follower's member is missing: %v", members)
	}
}

// waitForBatch waits until g's open batch holds n changes.
func waitForBatch(t *testing.T, repo *repository.Repository, p repository.Principal, g *scimv1.ProvisionedGroup, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := repo.MemberChangesWaiting(p, g); got != n {
			return fmt.Errorf("%d changes wait in the batch, want %d", got, n)
		}
		return nil
	})
}

// TestOneChangeRewritesItsShardsAtOnce: a change that removes members
// from several shards writes them at once, so it waits for the slowest
// write, not for their sum (a batch into a large group touches several).
func TestOneChangeRewritesItsShardsAtOnce(t *testing.T) {
	ctx := context.Background()
	ns, p, repo, writes, g := groupOnReplica(t, "Shards")
	const n = 2*scimv1.MaxMembersPerShard + 100 // three shards
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%05d", i)
	}
	if _, err := repo.ApplyMembers(ctx, p, g, []patch.MemberOp{{Kind: patch.MemberAdd, IDs: ids}}); err != nil {
		t.Fatal(err)
	}
	gone := []string{ids[0], ids[scimv1.MaxMembersPerShard], ids[n-1]} // one in each
	writes.gate = &shardGate{want: len(gone), all: make(chan struct{})}
	if _, err := repo.ApplyMembers(ctx, p, g, []patch.MemberOp{{Kind: patch.MemberRemove, IDs: gone}}); err != nil {
		t.Fatal(err)
	}
	if writes.gate.serial.Load() {
		t.Error("the three shards were rewritten one after another")
	}
	members, err := repo.LiveMembers(ctx, ns, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != n-len(gone) || slices.Contains(members, gone[0]) || slices.Contains(members, gone[1]) || slices.Contains(members, gone[2]) {
		t.Errorf("want %d members without %v, got %d", n-len(gone), gone, len(members))
	}
}

// TestConcurrentMemberChangesMatchTheModel: writers change the members of
// one group at once, each a random sequence of adds and removes (with and
// without displays) of members of its own; when every change has been
// answered, the group holds exactly what each writer's answered changes
// left, displays included. Batches may merge any writers' changes, never
// one writer's changes out of order. SCIM_MEMBERS_SEED=N repeats a run.
func TestConcurrentMemberChangesMatchTheModel(t *testing.T) {
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("SCIM_MEMBERS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("SCIM_MEMBERS_SEED=%d", seed)
	ns, p, repo, _, g := groupOnReplica(t, "Model")
	const writers, rounds, pool = 8, 6, 6
	models := make([]memberModel, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		model := memberModel{}
		models[w] = model
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				ops := randomMemberOps(rng, w, round, pool)
				if _, err := repo.ApplyMembers(ctx, p, g, ops); err != nil {
					errs <- fmt.Errorf("writer %d, round %d: %w", w, round, err)
					return
				}
				model.apply(ops) // answered: the model follows
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%v (SCIM_MEMBERS_SEED=%d)", err, seed)
	}
	want := map[string]member{}
	for _, m := range models {
		maps.Copy(want, m)
	}
	ids, displays, err := repo.LiveMembersWithDisplays(ctx, ns, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]member{}
	for _, id := range ids {
		got[id] = member{true, displays[id]}
	}
	if !maps.Equal(got, want) {
		t.Errorf("members (SCIM_MEMBERS_SEED=%d):\n want %v\n  got %v", seed, want, got)
	}
}

type member struct {
	in      bool
	display string
}

// memberModel is what a writer's answered member changes left.
type memberModel map[string]member

func (m memberModel) apply(ops []patch.MemberOp) {
	for _, op := range ops {
		for _, id := range op.IDs {
			switch d, ok := op.Displays[id]; {
			case op.Kind == patch.MemberRemove:
				delete(m, id)
			case ok:
				m[id] = member{true, d}
			default:
				m[id] = member{true, m[id].display}
			}
		}
	}
}

// randomMemberOps is one member change of writer w: one to three adds
// (some with displays) or removes of its own pool of members.
func randomMemberOps(rng *rand.Rand, w, round, pool int) []patch.MemberOp {
	var ops []patch.MemberOp
	for range 1 + rng.IntN(3) {
		var ids []string
		for i := range pool {
			if rng.IntN(3) == 0 {
				ids = append(ids, fmt.Sprintf("w%d-m%d", w, i))
			}
		}
		if len(ids) == 0 {
			continue
		}
		if rng.IntN(2) == 0 {
			ops = append(ops, patch.MemberOp{Kind: patch.MemberRemove, IDs: ids})
			continue
		}
		displays := map[string]string{}
		for _, id := range ids {
			if rng.IntN(2) == 0 {
				displays[id] = fmt.Sprintf("%s round %d", id, round)
			}
		}
		ops = append(ops, patch.MemberOp{Kind: patch.MemberAdd, IDs: ids, Displays: displays})
	}
	return ops
}
