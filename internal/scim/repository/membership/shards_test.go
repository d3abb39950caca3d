package membership_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/kscheme"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
)

// newFake is an API server and cache in one, with the cache's index of
// shards by group.
func newFake() client.Client {
	return fake.NewClientBuilder().WithScheme(kscheme.New()).
		WithIndex(&scimv1.GroupMembership{}, membership.IndexShardGroup, func(o client.Object) []string {
			return []string{o.(*scimv1.GroupMembership).Spec.Group}
		}).Build()
}

// writer writes shards straight to the API (here a fake one).
type writer struct{ c client.Client }

func (w writer) Create(ctx context.Context, s *scimv1.GroupMembership) error {
	return w.c.Create(ctx, s)
}
func (w writer) Update(ctx context.Context, s *scimv1.GroupMembership) error {
	return w.c.Update(ctx, s)
}

// meanwhile is a live reader that runs between once, after the first
// read of shard name has been answered: what other replicas do while
// this one reads.
type meanwhile struct {
	client.Reader
	name    string
	between func()
}

func (m *meanwhile) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := m.Reader.Get(ctx, key, obj, opts...)
	if key.Name == m.name && m.between != nil {
		m.between()
		m.between = nil
	}
	return err
}

// TestAMemberAppendedWhileTheTailMovesIsNotAddedTwice: this replica's
// index knows shard 0 as the newest, with one place left. Right after
// this replica reads shard 0, another replica appends "dup" to it (filling
// it) and a third starts shard 1. An add of "dup" here must find it in
// shard 0, not put it into shard 1 as well: a member held twice is
// removed from one shard only, and stays a member after a 2xx removal.
func TestAMemberAppendedWhileTheTailMovesIsNotAddedTwice(t *testing.T) {
	ctx := context.Background()
	c := newFake()
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "t1", Name: "g", UID: "uid-g"}}
	var members []string
	for i := range scimv1.MaxMembersPerShard - 1 {
		members = append(members, fmt.Sprintf("m%04d", i))
	}
	first := shard("t1", "g", 0, 0, members...)
	first.ResourceVersion = ""
	if err := c.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	x := membership.NewIndex(nil)
	x.Handler().OnAdd(first, false)

	live := &meanwhile{Reader: c, name: "g-0", between: func() {
		var s scimv1.GroupMembership
		if err := c.Get(ctx, client.ObjectKey{Namespace: "t1", Name: "g-0"}, &s); err != nil {
			t.Fatal(err)
		}
		s.Spec.Members = append(s.Spec.Members, "dup")
		if err := c.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
		next := shard("t1", "g", 1, 0, "other")
		next.ResourceVersion = ""
		if err := c.Create(ctx, next); err != nil {
			t.Fatal(err)
		}
	}}
	sh := membership.Shards{Cache: c, Live: live, Index: x}
	var stats membership.Stats
	net := membership.Fold([]patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{"dup"}}})
	if err := sh.Apply(ctx, g, net, writer{c}, &stats); err != nil {
		t.Fatal(err)
	}
	if held := heldBy(t, c, "dup"); len(held) != 1 || stats.Added != 0 {
		t.Errorf("dup is held by %v (added %d here), want once, by the other replica's append", held, stats.Added)
	}
}

// TestAFullTailIsSealedBeforeTheNextShard: this replica reads the group's
// only shard full and is about to start shard 1 with "dup". Right after
// its read, another replica removes a member from shard 0 and appends
// "dup" in the place that made. Starting shard 1 without looking at shard
// 0 again would hold "dup" twice; sealing shard 0 first conflicts, and the
// change is decided again from what is there now.
func TestAFullTailIsSealedBeforeTheNextShard(t *testing.T) {
	ctx := context.Background()
	c := newFake()
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "t1", Name: "g", UID: "uid-g"}}
	var members []string
	for i := range scimv1.MaxMembersPerShard {
		members = append(members, fmt.Sprintf("m%04d", i))
	}
	full := shard("t1", "g", 0, 0, members...)
	full.ResourceVersion = ""
	if err := c.Create(ctx, full); err != nil {
		t.Fatal(err)
	}
	x := membership.NewIndex(nil)
	x.Handler().OnAdd(full, false)
	live := &meanwhile{Reader: c, name: "g-0", between: func() {
		var s scimv1.GroupMembership
		if err := c.Get(ctx, client.ObjectKey{Namespace: "t1", Name: "g-0"}, &s); err != nil {
			t.Fatal(err)
		}
		s.Spec.Members = append(s.Spec.Members[1:], "dup")
		if err := c.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
	}}
	sh := membership.Shards{Cache: c, Live: live, Index: x}
	net := membership.Fold([]patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{"dup"}}})
	var stats membership.Stats
	err := sh.Apply(ctx, g, net, writer{c}, &stats)
	if err != nil && !apierrors.IsConflict(err) {
		t.Fatal(err)
	}
	if err != nil { // decided again, as the repository's writeShards does
		stats = membership.Stats{}
		if err := sh.Apply(ctx, g, net, writer{c}, &stats); err != nil {
			t.Fatal(err)
		}
	}
	if held := heldBy(t, c, "dup"); len(held) != 1 || stats.Added != 0 {
		t.Errorf("dup is held by %v (added %d here), want once, by the other replica's append", held, stats.Added)
	}
}

// heldBy returns the shards that hold id.
func heldBy(t *testing.T, c client.Client, id string) []string {
	t.Helper()
	var list scimv1.GroupMembershipList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		if slices.Contains(s.Spec.Members, id) {
			out = append(out, s.Name)
		}
	}
	return out
}

// TestAnIndexBehindTheCacheIsNotTrusted: after a relist the index is
// handed the shards in name order, so it may hold "g-10" (new) while it
// still holds "g-9" as it was before a member was appended to it. The
// cache holds both as they are. Removing that member must find it in g-9:
// the index's word on g-9 is for an older version than the cache's.
func TestAnIndexBehindTheCacheIsNotTrusted(t *testing.T) {
	ctx := context.Background()
	c := newFake()
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "t1", Name: "g", UID: "uid-g"}}
	x := membership.NewIndex(nil)
	var before *scimv1.GroupMembership
	for n := range 11 {
		s := shard("t1", "g", n, 0, fmt.Sprintf("m%d", n))
		s.ResourceVersion = ""
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		if n == 9 {
			before = s.DeepCopy()
		}
	}
	var s9 scimv1.GroupMembership
	if err := c.Get(ctx, client.ObjectKey{Namespace: "t1", Name: "g-9"}, &s9); err != nil {
		t.Fatal(err)
	}
	s9.Spec.Members = append(s9.Spec.Members, "late")
	if err := c.Update(ctx, &s9); err != nil {
		t.Fatal(err)
	}
	// What the index was handed so far: every shard, g-9 as it was.
	var all scimv1.GroupMembershipList
	if err := c.List(ctx, &all); err != nil {
		t.Fatal(err)
	}
	for i := range all.Items {
		if all.Items[i].Name == "g-9" {
			x.Handler().OnAdd(before, true)
		} else {
			x.Handler().OnAdd(&all.Items[i], true)
		}
	}
	sh := membership.Shards{Cache: c, Live: c, Index: x}
	var stats membership.Stats
	net := membership.Fold([]patch.MemberOp{{Kind: patch.MemberRemove, IDs: []string{"late"}}})
	if err := sh.Apply(ctx, g, net, writer{c}, &stats); err != nil {
		t.Fatal(err)
	}
	if held := heldBy(t, c, "late"); len(held) != 0 || stats.Removed != 1 {
		t.Errorf("after its removal, late is held by %v (removed %d), want by none", held, stats.Removed)
	}
}

// TestGroupsHoldingReadsTheCache: a deleted user is taken out of the
// groups the cache shows, not only those the index has caught up with.
func TestGroupsHoldingReadsTheCache(t *testing.T) {
	ctx := context.Background()
	c := newFake()
	for _, s := range []*scimv1.GroupMembership{shard("t1", "a", 0, 0, "u1"), shard("t1", "b", 0, 0, "u2", "u1"), shard("t2", "c", 0, 0, "u1")} {
		s.ResourceVersion = ""
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	sh := membership.Shards{Cache: c, Live: c, Index: membership.NewIndex(nil)} // an index that has seen nothing
	got, err := sh.GroupsHolding(ctx, "t1", "u1")
	if err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("GroupsHolding(t1, u1) = %v, %v; want [a b]", got, err)
	}
}
