package memstore_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/server/memstore"
)

var tenant = repository.Principal{Namespace: "tenant", TokenName: "t"}

// Concurrent updates each see the others' writes: none is lost, and a
// mutate that reads the store meanwhile does not deadlock.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	u, err := s.CreateUser(ctx, tenant, scimv1.ProvisionedUserSpec{UserName: "counter", Title: "0"})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			_, err := s.UpdateUser(ctx, tenant, u.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
				if _, err := s.LiveUser(ctx, tenant.Namespace, u.Name); err != nil {
					return false, err
				}
				n, err := strconv.Atoi(u.Spec.Title)
				u.Spec.Title = strconv.Itoa(n + 1)
				return true, err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := s.LiveUser(ctx, tenant.Namespace, u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Title != strconv.Itoa(writers) {
		t.Errorf("after %d increments the counter is %s", writers, got.Spec.Title)
	}
}

// Versions move on every write and never repeat, even within one clock
// tick; a no-op keeps the version.
func TestVersions(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	u, err := s.CreateUser(ctx, tenant, scimv1.ProvisionedUserSpec{UserName: "v"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{repository.Version(u): true}
	for i := range 50 {
		u, err = s.UpdateUser(ctx, tenant, u.Name, repository.Version(u), func(u *scimv1.ProvisionedUser) (bool, error) {
			u.Spec.Title = strconv.Itoa(i)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v := repository.Version(u); seen[v] {
			t.Fatalf("write %d repeated the version %s", i, v)
		}
		seen[repository.Version(u)] = true
	}
	same, err := s.UpdateUser(ctx, tenant, u.Name, "", func(*scimv1.ProvisionedUser) (bool, error) { return false, nil })
	if err != nil || repository.Version(same) != repository.Version(u) {
		t.Errorf("a no-op moved the version from %s to %s (%v)", repository.Version(u), repository.Version(same), err)
	}
	_, err = s.UpdateUser(ctx, tenant, u.Name, "stale", func(*scimv1.ProvisionedUser) (bool, error) { return true, nil })
	if e, ok := scimerr.As(err); !ok || e.Status != 412 {
		t.Errorf("a stale If-Match: want 412, got %v", err)
	}
}

// A pending group is invisible and holds its displayName until its
// members are applied; abandoned, it frees the name.
func TestPendingGroup(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	g, err := s.CreateGroup(ctx, tenant, scimv1.ProvisionedGroupSpec{DisplayName: "Ops"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LiveGroup(ctx, tenant.Namespace, g.Name); err == nil {
		t.Error("a pending group is visible")
	}
	if _, err := s.CreateGroup(ctx, tenant, scimv1.ProvisionedGroupSpec{DisplayName: "OPS"}, false); err == nil {
		t.Error("a pending group's displayName was given twice")
	}
	s.AbandonGroup(ctx, tenant, g)
	if _, err := s.CreateGroup(ctx, tenant, scimv1.ProvisionedGroupSpec{DisplayName: "ops"}, false); err != nil {
		t.Errorf("an abandoned group kept its displayName: %v", err)
	}
}
