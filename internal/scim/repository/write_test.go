package repository_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// stalledWrites holds the next write of a ProvisionedUser or
// ProvisionedGroup until released: a request slower than the claim grace,
// as during etcd trouble (the API server allows 60 s).
type stalledWrites struct {
	client.Client
	reached chan struct{} // closed when the write is held
	release chan struct{} // close to let it go
	armed   bool
}

func newStalled(c client.Client) *stalledWrites {
	return &stalledWrites{Client: c, reached: make(chan struct{}), release: make(chan struct{}), armed: true}
}

func (s *stalledWrites) hold(obj client.Object) {
	switch obj.(type) {
	case *scimv1.ProvisionedUser, *scimv1.ProvisionedGroup:
		if s.armed {
			s.armed = false
			close(s.reached)
			<-s.release
		}
	}
}

func (s *stalledWrites) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	s.hold(obj)
	return s.Client.Create(ctx, obj, opts...)
}

func (s *stalledWrites) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	s.hold(obj)
	return s.Client.Update(ctx, obj, opts...)
}

// exactlyOneWins runs slow until its write is held by stalled, then fast,
// then lets slow's write go, and checks that exactly one of the two
// succeeded (the other a 409 uniqueness) and that as many live users hold
// value as succeeded.
func exactlyOneWins(t *testing.T, e *testenv.Env, ns, value string, stalled *stalledWrites, slow, fast func() error) {
	t.Helper()
	slowErr := make(chan error, 1)
	go func() { slowErr <- slow() }()
	select {
	case <-stalled.reached:
	case err := <-slowErr:
		t.Fatalf("the slow request ended before its write: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request never reached its write")
	}
	fastErr := fast()
	close(stalled.release)
	var err2 error
	select {
	case err2 = <-slowErr:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow request did not finish")
	}
	ok := 0
	for _, err := range []error{fastErr, err2} {
		switch {
		case err == nil:
			ok++
		case !isConflict(err):
			t.Errorf("want success or 409 uniqueness, got %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of the two requests succeeded (fast: %v, slow: %v); want exactly one", ok, fastErr, err2)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := liveUsersNamed(t, e, ns, value); n != ok {
			return errors.New("live users holding the userName differ from the successes")
		}
		return nil
	})
}

func isConflict(err error) bool {
	e, ok := scimerr.As(err)
	return ok && e.Status == 409 && e.ScimType == "uniqueness"
}

// liveUsersNamed counts the tenant's live users whose userName is value
// under the canonical key.
func liveUsersNamed(t *testing.T, e *testenv.Env, ns, value string) int {
	t.Helper()
	var list scimv1.ProvisionedUserList
	if err := e.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range list.Items {
		if u.DeletionTimestamp.IsZero() && namekey.Equal(u.Spec.UserName, value) {
			n++
		}
	}
	return n
}

// TestClaimFencing: a write held longer than the claim grace (or a replica
// whose clock runs ahead, which is the same to the claim) lets another
// replica take the claim over as stale. Without fencing both writes land
// and two users share a userName (issue 12, finding 5). With it, exactly
// one of the two requests succeeds, whichever order the writes land in.
func TestClaimFencing(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	skewed := func() time.Time { return time.Now().Add(time.Minute) }

	for _, tc := range []struct {
		name string
		// slow starts the slow request on repo and returns its outcome.
		slow func(t *testing.T, repo *repository.Repository, p repository.Principal, value string) error
	}{
		{"create of a re-used userName", func(t *testing.T, repo *repository.Repository, p repository.Principal, value string) error {
			_, err := repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
			return err
		}},
		{"rename", func(t *testing.T, repo *repository.Repository, p repository.Principal, value string) error {
			// Created before the stall is armed by the caller (see below).
			id := p.TokenName
			_, err := repo.UpdateUser(ctx, repository.Principal{Namespace: p.Namespace}, id, "", func(u *scimv1.ProvisionedUser) (bool, error) {
				u.Spec.UserName = value
				return true, nil
			})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := e.Namespace(t)
			plain := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
			p := repository.Principal{Namespace: ns}
			value := "fenced@contoso.test"
			// The value was used before, so creates go through a claim.
			old, err := plain.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plain.UpdateUser(ctx, p, old.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
				u.Spec.UserName = "moved-away@contoso.test"
				return true, nil
			}); err != nil {
				t.Fatal(err)
			}
			slowP := p
			if tc.name == "rename" {
				mover, err := plain.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "mover@contoso.test"})
				if err != nil {
					t.Fatal(err)
				}
				slowP.TokenName = mover.Name
			}

			stalled := newStalled(e.Client)
			slowRepo := &repository.Repository{Cache: e.Client, Live: e.Client, Client: stalled, IDKey: testenv.IDKey()}
			fastRepo := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey(), Now: skewed}

			exactlyOneWins(t, e, ns, value, stalled,
				func() error { return tc.slow(t, slowRepo, slowP, value) },
				func() error {
					// The other replica's clock says the claim is past its grace.
					_, err := fastRepo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "FENCED@contoso.test"})
					return err
				})
		})
	}
}

// failingShards refuses every membership shard write, as an API server in
// trouble would, after the group itself was written.
type failingShards struct{ client.Client }

func (f failingShards) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*scimv1.GroupMembership); ok {
		return apierrors.NewServiceUnavailable("etcd is having a moment")
	}
	return f.Client.Create(ctx, obj, opts...)
}

// newGroupCache reads from the API server, as a cache that is up to date
// would, and knows no membership shards: true for the new groups below,
// and it spares the test a field-indexed informer.
type newGroupCache struct{ client.Reader }

func (c newGroupCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*scimv1.GroupMembershipList); ok {
		return nil
	}
	return c.Reader.List(ctx, list, opts...)
}

// TestGroupCreateIsAtomic: a group created with members is invisible until
// its members are written, and a create whose members failed leaves the
// displayName free for the client's retry (issue 12, finding 6: the retry
// used to get 409 and the group stayed empty).
func TestGroupCreateIsAtomic(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)
	p := repository.Principal{Namespace: ns}
	cache := newGroupCache{e.Client}
	repo := &repository.Repository{Cache: cache, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	member, err := repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "member@contoso.test"})
	if err != nil {
		t.Fatal(err)
	}
	ops := []patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{member.Name}}}
	spec := scimv1.ProvisionedGroupSpec{DisplayName: "Atomic"}

	broken := &repository.Repository{Cache: cache, Live: e.Client, Client: failingShards{e.Client}, IDKey: testenv.IDKey()}
	g, err := broken.CreateGroup(ctx, p, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broken.LiveGroup(ctx, ns, g.Name); !isNotFound(err) {
		t.Errorf("a pending group must be invisible to SCIM reads, got %v", err)
	}
	if list, err := broken.CachedGroups(ctx, ns); err != nil || len(list) != 0 {
		t.Errorf("a pending group must not be listed: %d groups, %v", len(list), err)
	}
	if _, err := broken.ApplyMembers(ctx, p, g, ops); err == nil {
		t.Fatal("the member write was meant to fail")
	}
	broken.AbandonGroup(ctx, p, g)

	// The client's retry.
	g2, err := repo.CreateGroup(ctx, p, spec, true)
	if err != nil {
		t.Fatalf("the retry of a create that was not acknowledged: %v", err)
	}
	if g2, err = repo.ApplyMembers(ctx, p, g2, ops); err != nil {
		t.Fatal(err)
	}
	got, err := repo.LiveGroup(ctx, ns, g2.Name)
	if err != nil {
		t.Fatalf("the completed group must be visible: %v", err)
	}
	if _, ok := got.Annotations[scimv1.AnnotationPendingMembers]; ok {
		t.Error("the completed group is still marked pending")
	}
	members, err := repo.LiveMembers(ctx, ns, g2.Name)
	if err != nil || len(members) != 1 || members[0] != member.Name {
		t.Errorf("members %v (%v), want [%s]", members, err, member.Name)
	}
}

func isNotFound(err error) bool {
	e, ok := scimerr.As(err)
	return ok && e.Status == 404
}

// statusWriteBeforeDelete writes the object's status (as the helpdesk
// controller does at any moment) right before the first Delete reaches the
// API server, moving its resourceVersion but not its SCIM version.
type statusWriteBeforeDelete struct {
	client.Client
	done bool
}

func (s *statusWriteBeforeDelete) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if u, ok := obj.(*scimv1.ProvisionedUser); ok && !s.done {
		s.done = true
		cur := &scimv1.ProvisionedUser{}
		if err := s.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
			return err
		}
		cur.Status.ObservedGeneration = cur.Generation
		if err := s.Client.Status().Update(ctx, cur); err != nil {
			return err
		}
	}
	return s.Client.Delete(ctx, obj, opts...)
}

// TestDeleteIfMatchIgnoresStatusWrites: a DELETE with the user's current
// ETag succeeds although the controller wrote the status in between; the
// model test found the 412 it used to get.
func TestDeleteIfMatchIgnoresStatusWrites(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)
	p := repository.Principal{Namespace: ns}
	plain := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	u, err := plain.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "ifmatch-delete@contoso.test"})
	if err != nil {
		t.Fatal(err)
	}
	racing := &repository.Repository{Cache: e.Client, Live: e.Client, Client: &statusWriteBeforeDelete{Client: e.Client}, IDKey: testenv.IDKey()}
	if err := racing.DeleteUser(ctx, p, u.Name, repository.Version(u)); err != nil {
		t.Fatalf("DELETE with the current If-Match: %v", err)
	}
	if err := racing.DeleteUser(ctx, p, u.Name, repository.Version(u)); !isNotFound(err) {
		t.Errorf("the user must be gone: %v", err)
	}
}

// TestPendingGroupCompletionIsFenced: completing a group's create (the
// write that clears its pending mark) is a write under its displayName's
// claim. A replica whose clock runs ahead takes the claim over while the
// members are written; the completion must then answer 409, not a second
// group of that name (found by a review of the fencing).
func TestPendingGroupCompletionIsFenced(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)
	p := repository.Principal{Namespace: ns}
	cache := newGroupCache{e.Client}
	slow := &repository.Repository{Cache: cache, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	ahead := &repository.Repository{Cache: cache, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey(),
		Now: func() time.Time { return time.Now().Add(time.Minute) }}
	member, err := slow.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "pending-member@contoso.test"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := slow.CreateGroup(ctx, p, scimv1.ProvisionedGroupSpec{DisplayName: "Fenced Team"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile, on the replica whose clock is ahead: the pending group
	// looks like a create that never finished.
	if _, err := ahead.CreateGroup(ctx, p, scimv1.ProvisionedGroupSpec{DisplayName: "FENCED TEAM"}, false); err != nil {
		t.Fatalf("the takeover on the replica ahead: %v", err)
	}
	_, err = slow.ApplyMembers(ctx, p, g, []patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{member.Name}}})
	if !isConflict(err) {
		t.Fatalf("completing the pending group after losing its claim: want 409 uniqueness, got %v", err)
	}
	slow.AbandonGroup(ctx, p, g)
	testenv.Eventually(t, 10*time.Second, func() error {
		list, err := slow.CachedGroups(ctx, ns)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("%d visible groups named Fenced Team, want 1", len(list))
		}
		return nil
	})
}
