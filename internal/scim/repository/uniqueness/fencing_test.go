package uniqueness_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
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
		{"create of a re-used userName", func(_ *testing.T, repo *repository.Repository, p repository.Principal, value string) error {
			_, err := repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
			return err
		}},
		{"rename", func(_ *testing.T, repo *repository.Repository, p repository.Principal, value string) error {
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
