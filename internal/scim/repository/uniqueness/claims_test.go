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

// TestCreateAfterClaimOnAnotherReplica: a claim written on another replica
// that this replica's cache has not seen yet. The create under the first id
// succeeds at the API server, and then the live claim read decides.
func TestCreateAfterClaimOnAnotherReplica(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	repo := &repository.Repository{Cache: claimlessCache{e.Client}, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	p := repository.Principal{Namespace: ns}

	putClaim := func(value, owner string, retired bool, claimedAt time.Time) {
		t.Helper()
		c := &scimv1.NameClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, value)},
			Spec:       scimv1.NameClaimSpec{Kind: scimv1.ClaimUserName, Value: value, Owner: owner, Retired: retired},
		}
		if !claimedAt.IsZero() {
			c.Spec.ClaimedAt = &metav1.Time{Time: claimedAt}
		}
		if err := e.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	firstIDGone := func(value string) {
		t.Helper()
		var u scimv1.ProvisionedUser
		err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: uniqueness.FirstUserID(testenv.IDKey(), ns, value)}, &u)
		if err == nil && u.DeletionTimestamp.IsZero() {
			t.Errorf("%s: the create under the first id was not undone", value)
		}
	}
	create := func(value string) (*scimv1.ProvisionedUser, error) {
		return repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
	}
	expectConflict := func(value string, err error) {
		t.Helper()
		if e, ok := scimerr.As(err); !ok || e.Status != 409 || e.ScimType != "uniqueness" {
			t.Errorf("%s: want 409 uniqueness, got %v", value, err)
		}
	}

	// A rename on another replica claimed the value a moment ago; its user
	// (not written yet, or about to be) wins.
	putClaim("inflight", "some-user-being-renamed", false, time.Now())
	_, err := create("inflight")
	expectConflict("inflight", err)
	firstIDGone("inflight")

	// The claim's owner exists and holds the value.
	holder := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "holder"},
		Spec: scimv1.ProvisionedUserSpec{UserName: "held"}}
	if err := e.Client.Create(ctx, holder); err != nil {
		t.Fatal(err)
	}
	putClaim("held", "holder", false, time.Now().Add(-time.Hour))
	_, err = create("held")
	expectConflict("held", err)
	firstIDGone("held")

	// A rename in flight: its user exists but does not have the value yet.
	renaming := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "renaming"},
		Spec: scimv1.ProvisionedUserSpec{UserName: "old-name"}}
	if err := e.Client.Create(ctx, renaming); err != nil {
		t.Fatal(err)
	}
	putClaim("new-name", "renaming", false, time.Now())
	_, err = create("new-name")
	expectConflict("new-name", err)
	firstIDGone("new-name")

	// Retired: the first id belonged to a user before; a new id instead.
	putClaim("retired", "", true, time.Time{})
	u, err := create("retired")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name == uniqueness.FirstUserID(testenv.IDKey(), ns, "retired") {
		t.Errorf("retired first id given out again")
	}
	firstIDGone("retired")
	var c scimv1.NameClaim
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, "retired")}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Owner != u.Name || !c.Spec.Retired {
		t.Errorf("the new user holds the claim, still retired: %+v", c.Spec)
	}

	// Stale: the owner is gone and the grace is over. The claim is taken
	// over with a write (its owner may still be about to create, and
	// fences by reading the claim again: only a takeover tells it), so
	// the user gets a random id and the claim.
	putClaim("stale", "crashed-before-create", false, time.Now().Add(-time.Hour))
	u, err = create("stale")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name == uniqueness.FirstUserID(testenv.IDKey(), ns, "stale") {
		t.Errorf("stale claim: the first id was used without taking the claim over")
	}
	firstIDGone("stale")
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, "stale")}, &c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Owner != u.Name {
		t.Errorf("stale claim: owner %q, want the new user %s (the slow creator's fence must see the change)", c.Spec.Owner, u.Name)
	}
}
