package uniqueness_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// claimlessCache is a replica's cache that has not seen any NameClaim yet:
// everything else is read from the API server. It forces CreateUser past
// its cache check, to the live read that must catch what the cache missed.
type claimlessCache struct{ client.Reader }

func (c claimlessCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*scimv1.NameClaim); ok {
		return apierrors.NewNotFound(scimv1.GroupVersion.WithResource("nameclaims").GroupResource(), key.Name)
	}
	return c.Reader.Get(ctx, key, obj, opts...)
}

// replicaAhead is a tenant where another replica wrote claims this
// replica's cache has not seen (claimlessCache).
type replicaAhead struct {
	e    *testenv.Env
	ns   string
	repo *repository.Repository
}

func (r replicaAhead) putClaim(t *testing.T, value, owner string, retired bool, claimedAt time.Time) {
	t.Helper()
	c := &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, value)},
		Spec:       scimv1.NameClaimSpec{Kind: scimv1.ClaimUserName, Value: value, Owner: owner, Retired: retired},
	}
	if !claimedAt.IsZero() {
		c.Spec.ClaimedAt = &metav1.Time{Time: claimedAt}
	}
	if err := r.e.Client.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func (r replicaAhead) putUser(t *testing.T, name, userName string) {
	t.Helper()
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: name},
		Spec: scimv1.ProvisionedUserSpec{UserName: userName}}
	if err := r.e.Client.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

func (r replicaAhead) firstIDGone(t *testing.T, value string) {
	t.Helper()
	var u scimv1.ProvisionedUser
	err := r.e.Client.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: uniqueness.FirstUserID(testenv.IDKey(), r.ns, value)}, &u)
	if err == nil && u.DeletionTimestamp.IsZero() {
		t.Errorf("%s: the create under the first id was not undone", value)
	}
}

func (r replicaAhead) create(value string) (*scimv1.ProvisionedUser, error) {
	return r.repo.CreateUser(context.Background(), repository.Principal{Namespace: r.ns}, scimv1.ProvisionedUserSpec{UserName: value})
}

// conflicts creates value and wants 409 uniqueness, the first id undone.
func (r replicaAhead) conflicts(t *testing.T, value string) {
	t.Helper()
	_, err := r.create(value)
	if e, ok := scimerr.As(err); !ok || e.Status != 409 || e.ScimType != "uniqueness" {
		t.Errorf("%s: want 409 uniqueness, got %v", value, err)
	}
	r.firstIDGone(t, value)
}

// takesClaim creates value and wants a random id that holds the value's
// claim.
func (r replicaAhead) takesClaim(t *testing.T, value string) scimv1.NameClaimSpec {
	t.Helper()
	u, err := r.create(value)
	if err != nil {
		t.Fatal(err)
	}
	if u.Name == uniqueness.FirstUserID(testenv.IDKey(), r.ns, value) {
		t.Errorf("%s: the first id was given out although a claim exists", value)
	}
	r.firstIDGone(t, value)
	var c scimv1.NameClaim
	if err := r.e.Client.Get(context.Background(), client.ObjectKey{Namespace: r.ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, value)}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Owner != u.Name {
		t.Errorf("%s: claim owner %q, want the new user %s (a slow creator's fence must see the change)", value, c.Spec.Owner, u.Name)
	}
	return c.Spec
}

// TestCreateAfterClaimOnAnotherReplica: a claim written on another replica
// that this replica's cache has not seen yet. The create under the first id
// succeeds at the API server, and then the live claim read decides.
func TestCreateAfterClaimOnAnotherReplica(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	r := replicaAhead{e: e, ns: ns,
		repo: &repository.Repository{Cache: claimlessCache{e.Client}, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}}

	// A rename on another replica claimed the value a moment ago; its user
	// (not written yet, or about to be) wins.
	r.putClaim(t, "inflight", "some-user-being-renamed", false, time.Now())
	r.conflicts(t, "inflight")

	// The claim's owner exists and holds the value.
	r.putUser(t, "holder", "held")
	r.putClaim(t, "held", "holder", false, time.Now().Add(-time.Hour))
	r.conflicts(t, "held")

	// A rename in flight: its user exists but does not have the value yet.
	r.putUser(t, "renaming", "old-name")
	r.putClaim(t, "new-name", "renaming", false, time.Now())
	r.conflicts(t, "new-name")

	// Retired: the first id belonged to a user before; a new id instead,
	// and the claim stays retired.
	r.putClaim(t, "retired", "", true, time.Time{})
	if c := r.takesClaim(t, "retired"); !c.Retired {
		t.Errorf("the new user holds the claim, but it is no longer retired: %+v", c)
	}

	// Stale: the owner is gone and the grace is over. The claim is taken
	// over with a write (its owner may still be about to create, and
	// fences by reading the claim again: only a takeover tells it), so
	// the user gets a random id and the claim.
	r.putClaim(t, "stale", "crashed-before-create", false, time.Now().Add(-time.Hour))
	r.takesClaim(t, "stale")
}
