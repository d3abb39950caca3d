package uniqueness_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestClaimCollector: claims no live object holds are collected after the
// grace; claims held, claims within the grace and retired tombstones stay.
func TestClaimCollector(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	long := time.Now().Add(-time.Hour)

	putClaim := func(kind scimv1.ClaimKind, value, owner string, retired bool, at time.Time) string {
		t.Helper()
		c := &scimv1.NameClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueness.ClaimName(kind, value)},
			Spec:       scimv1.NameClaimSpec{Kind: kind, Value: value, Owner: owner, Retired: retired},
		}
		if owner != "" {
			c.Spec.ClaimedAt = &metav1.Time{Time: at}
		}
		if err := e.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c.Name
	}
	putUser := func(name, userName string) {
		t.Helper()
		if err := e.Client.Create(ctx, &scimv1.ProvisionedUser{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       scimv1.ProvisionedUserSpec{UserName: userName},
		}); err != nil {
			t.Fatal(err)
		}
	}
	putUser("holder", "kept@contoso.test")
	putUser("mover", "elsewhere@contoso.test")

	ghost := putClaim(scimv1.ClaimUserName, "ghost@contoso.test", "crashed-before-create", false, long)
	kept := putClaim(scimv1.ClaimUserName, "kept@contoso.test", "holder", false, long)
	moved := putClaim(scimv1.ClaimUserName, "moved@contoso.test", "mover", false, long)
	tomb := putClaim(scimv1.ClaimUserName, "tomb@contoso.test", "", true, long)
	tomb2 := putClaim(scimv1.ClaimUserName, "tomb2@contoso.test", "deleted-user", true, long)
	fresh := putClaim(scimv1.ClaimUserName, "fresh@contoso.test", "in-flight", false, time.Now())
	team := putClaim(scimv1.ClaimDisplayName, "Team", "crashed-group", false, long)

	repo := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: testenv.IDKey()}
	gc := &repository.ClaimCollector{Repo: repo, Namespace: ns, Log: logr.Discard()}
	n, err := gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("collected %d claims, want 4 (ghost, moved, tomb2's owner, Team)", n)
	}
	get := func(name string) *scimv1.NameClaim {
		var c scimv1.NameClaim
		err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &c)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return &c
	}
	for name, what := range map[string]string{ghost: "a crash leftover", moved: "a claim its owner renamed away from", team: "a group crash leftover"} {
		if get(name) != nil {
			t.Errorf("%s was not collected", what)
		}
	}
	for name, what := range map[string]string{kept: "a held claim", tomb: "a retired tombstone", fresh: "a claim within the grace"} {
		if get(name) == nil {
			t.Errorf("%s was collected", what)
		}
	}
	if c := get(tomb2); c == nil || !c.Spec.Retired || c.Spec.Owner != "" {
		t.Errorf("a retired claim whose owner is gone keeps the tombstone without the owner: %+v", c)
	}
	if n, err := gc.Collect(ctx); err != nil || n != 0 {
		t.Errorf("a second pass collected %d (err %v), want 0", n, err)
	}
}

// TestClaimCollectorRacesASlowCreate: the collector (on the leader, its
// clock far ahead) collects the claim of a create stalled between its claim
// and its write, and another replica creates the same userName meanwhile.
// Exactly one of the two creates succeeds: the stalled writer reads its
// claim again after writing and undoes itself.
func TestClaimCollectorRacesASlowCreate(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		idKey []byte
		// before prepares the value so that creates go through a claim.
		before func(t *testing.T, repo *repository.Repository, p repository.Principal, value string)
	}{
		{"retired claim", testenv.IDKey(), func(t *testing.T, repo *repository.Repository, p repository.Principal, value string) {
			old, err := repo.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := repo.UpdateUser(ctx, p, old.Name, "", func(u *scimv1.ProvisionedUser) (bool, error) {
				u.Spec.UserName = "gone-" + value
				return true, nil
			}); err != nil {
				t.Fatal(err)
			}
		}},
		// Without a first-id key every create takes a fresh claim.
		{"fresh claim", nil, func(*testing.T, *repository.Repository, repository.Principal, string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := e.Namespace(t)
			p := repository.Principal{Namespace: ns}
			value := "collected@contoso.test"
			plain := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: tc.idKey}
			tc.before(t, plain, p, value)

			stalled := newStalled(e.Client)
			slow := &repository.Repository{Cache: e.Client, Live: e.Client, Client: stalled, IDKey: tc.idKey}
			exactlyOneWins(t, e, ns, value, stalled,
				func() error {
					_, err := slow.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: value})
					return err
				},
				func() error {
					// The leader, its clock far ahead, collects the stalled
					// create's claim; then another replica creates the name.
					ahead := &repository.Repository{Cache: e.Client, Live: e.Client, Client: e.Client, IDKey: tc.idKey,
						Now: func() time.Time { return time.Now().Add(time.Hour) }}
					if n, err := (&repository.ClaimCollector{Repo: ahead, Namespace: ns, Log: logr.Discard()}).Collect(ctx); err != nil || n != 1 {
						t.Errorf("the collector took %d claims (err %v), want the stalled create's one", n, err)
					}
					_, err := plain.CreateUser(ctx, p, scimv1.ProvisionedUserSpec{UserName: "Collected@contoso.test"})
					return err
				})
		})
	}
}

// lateOwner is a live reader that answers the first read of one user
// NotFound and creates it right after: the owner's write lands between the
// collector's read of the owner and its take of the claim.
type lateOwner struct {
	client.Client
	user *scimv1.ProvisionedUser
	done bool
}

func (l *lateOwner) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*scimv1.ProvisionedUser); ok && !l.done && key.Name == l.user.Name {
		l.done = true
		if err := l.Create(ctx, l.user.DeepCopy()); err != nil {
			return err
		}
		return apierrors.NewNotFound(scimv1.GroupVersion.WithResource("provisionedusers").GroupResource(), key.Name)
	}
	return l.Client.Get(ctx, key, obj, opts...)
}

// TestClaimCollectorIsFenced: an owner whose write lands after the
// collector judged its claim unused, but before the collector acted, keeps
// its claim: the collector takes the claim, reads the owner again and gives
// the claim back (review finding: it deleted the claim, leaving the user
// holding its name with no claim, so a second user could take it).
func TestClaimCollectorIsFenced(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	value := "late@contoso.test"
	owner := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late-owner"},
		Spec: scimv1.ProvisionedUserSpec{UserName: value}}
	c := &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueness.ClaimName(scimv1.ClaimUserName, value)},
		Spec: scimv1.NameClaimSpec{Kind: scimv1.ClaimUserName, Value: value, Owner: owner.Name,
			ClaimedAt: &metav1.Time{Time: time.Now().Add(-time.Hour)}},
	}
	if err := e.Client.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	repo := &repository.Repository{Cache: e.Client, Live: &lateOwner{Client: e.Client, user: owner}, Client: e.Client, IDKey: testenv.IDKey()}
	n, err := (&repository.ClaimCollector{Repo: repo, Namespace: ns, Log: logr.Discard()}).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var after scimv1.NameClaim
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(c), &after); err != nil {
		t.Fatalf("the claim of an owner that holds its value was collected (%d collected): %v", n, err)
	}
	if after.Spec.Owner != owner.Name {
		t.Errorf("the claim went to %q, not back to its owner", after.Spec.Owner)
	}
}
