package repository_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

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

func isConflict(err error) bool {
	e, ok := scimerr.As(err)
	return ok && e.Status == 409 && e.ScimType == "uniqueness"
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
