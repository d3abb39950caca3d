package membership_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/kscheme"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
)

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
	c := fake.NewClientBuilder().WithScheme(kscheme.New()).Build()
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
	var list scimv1.GroupMembershipList
	if err := c.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, s := range list.Items {
		for _, m := range s.Spec.Members {
			if m == "dup" {
				held++
				t.Logf("dup in %s", s.Name)
			}
		}
	}
	if held != 1 || stats.Added != 0 {
		t.Errorf("dup is held %d times (added %d here), want once, by the other replica's append", held, stats.Added)
	}
}
