package repository_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// Member changes of one group sent at once to one replica all land, each
// with its own members, and none fails (they take turns: see turns.go).
func TestConcurrentMemberChangesAllLand(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)
	p := repository.Principal{Namespace: ns}
	repo := &repository.Repository{Cache: newGroupCache{e.Client}, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	g, err := repo.CreateGroup(ctx, p, scimv1.ProvisionedGroupSpec{DisplayName: "Turns"}, false)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		ids := make([]string, each)
		for i := range ids {
			ids[i] = fmt.Sprintf("member-%d-%d", w, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := repo.ApplyMembers(ctx, p, g, []patch.MemberOp{{Kind: patch.MemberAdd, IDs: ids}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	members, err := repo.LiveMembers(ctx, ns, g.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != writers*each {
		t.Errorf("want %d members, got %d", writers*each, len(members))
	}
}
