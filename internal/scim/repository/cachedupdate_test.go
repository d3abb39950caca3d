package repository_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// countingReader counts the users read through it.
type countingReader struct {
	client.Reader
	users atomic.Int64
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*scimv1.ProvisionedUser); ok {
		c.users.Add(1)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// staleCache answers users from snapshots taken earlier (a replica whose
// watch is behind); everything else is read live.
type staleCache struct {
	client.Reader
	mu    sync.Mutex
	users map[string]*scimv1.ProvisionedUser
}

func (c *staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if u, ok := obj.(*scimv1.ProvisionedUser); ok {
		c.mu.Lock()
		snap := c.users[key.Name]
		c.mu.Unlock()
		if snap != nil {
			snap.DeepCopyInto(u)
			return nil
		}
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A PATCH or PUT writes with the cached object's resourceVersion: no live
// read on the request path when the cache is current.
func TestUpdateWritesWithTheCachedVersion(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	live := &countingReader{Reader: e.Client}
	repo := &repository.Repository{Cache: e.Client, Live: live, Client: e.Client, IDKey: testenv.IDKey()}
	p := repository.Principal{Namespace: ns}
	u, err := repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "cached@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	live.users.Store(0)
	if _, err := repo.UpdateUser(ctx, p, u.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
		u.Spec.DisplayName = "Cached"
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := live.users.Load(); n != 0 {
		t.Errorf("an update against a current cache read the user live %d times, want 0", n)
	}
}

// behindCache is a tenant whose users another replica changed after this
// replica's cache last saw them (staleCache).
type behindCache struct {
	e     *testenv.Env
	ns    string
	stale *staleCache
	repo  *repository.Repository
}

// newStale creates a user, remembers it as the cache's copy, then changes
// it live (another replica's write the cache has not seen).
func (b behindCache) newStale(t *testing.T, name string, elsewhere func(*scimv1.ProvisionedUser)) *scimv1.ProvisionedUser {
	t.Helper()
	ctx := context.Background()
	u, err := b.repo.CreateUser(ctx, repository.Principal{Namespace: b.ns}, scimv1.ProvisionedUserSpec{UserName: name})
	if err != nil {
		t.Fatal(err)
	}
	b.stale.mu.Lock()
	b.stale.users[u.Name] = u.DeepCopy()
	b.stale.mu.Unlock()
	cur := &scimv1.ProvisionedUser{}
	if err := b.e.Client.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
		t.Fatal(err)
	}
	elsewhere(cur)
	if err := b.e.Client.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	return cur
}

func (b behindCache) liveUser(t *testing.T, name string) *scimv1.ProvisionedUser {
	t.Helper()
	u := &scimv1.ProvisionedUser{}
	if err := b.e.Client.Get(context.Background(), client.ObjectKey{Namespace: b.ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (b behindCache) update(id, ifMatch string, mutate func(*scimv1.ProvisionedUser) (bool, error)) error {
	_, err := b.repo.UpdateUser(context.Background(), repository.Principal{Namespace: b.ns}, id, ifMatch, mutate)
	return err
}

// A cache that is behind never decides an answer: every answer is the one
// a live read would have given.
func TestUpdateFromAStaleCache(t *testing.T) {
	e := testenv.Require(t, env)
	stale := &staleCache{Reader: e.Client, users: map[string]*scimv1.ProvisionedUser{}}
	b := behindCache{e: e, ns: e.Namespace(t), stale: stale,
		repo: &repository.Repository{Cache: stale, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}}

	// 1. A change made elsewhere is kept, and this one applied on top.
	u := b.newStale(t, "merge@example.test", func(u *scimv1.ProvisionedUser) { u.Spec.Title = "set elsewhere" })
	if err := b.update(u.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
		u.Spec.DisplayName = "set here"
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := b.liveUser(t, u.Name).Spec; got.Title != "set elsewhere" || got.DisplayName != "set here" {
		t.Errorf("want both changes, got title %q and displayName %q", got.Title, got.DisplayName)
	}

	// 2. If-Match with the live version: no 412 because the cache is behind.
	u = b.newStale(t, "ifmatch@example.test", func(u *scimv1.ProvisionedUser) { u.Spec.Title = "v2" })
	if err := b.update(u.Name, repository.Version(u), func(u *scimv1.ProvisionedUser) (bool, error) {
		u.Spec.DisplayName = "matched"
		return true, nil
	}); err != nil {
		t.Errorf("If-Match with the current version, stale cache: %v", err)
	}

	// 3. No change against the cache, a change against the live object:
	// the change is written (deactivated elsewhere, activated here).
	inactive, active := false, true
	u = b.newStale(t, "noop@example.test", func(u *scimv1.ProvisionedUser) { u.Spec.Active = &inactive })
	if err := b.update(u.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
		if u.IsActive() {
			return false, nil
		}
		u.Spec.Active = &active
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !b.liveUser(t, u.Name).IsActive() {
		t.Error("activating a user deactivated elsewhere answered success against the stale cache and wrote nothing")
	}

	// 4. Deleted elsewhere: 404, not a write to a user being deleted.
	u = b.newStale(t, "deleted@example.test", func(*scimv1.ProvisionedUser) {})
	if err := e.Client.Delete(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	err := b.update(u.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
		u.Spec.DisplayName = "too late"
		return true, nil
	})
	var se *scimerr.Error
	if !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("PATCH of a user deleted elsewhere: want 404, got %v", err)
	}
}
