package server_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

func claimOn(t *testing.T, ns, userName string) *scimv1.NameClaim {
	t.Helper()
	var c scimv1.NameClaim
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: repository.ClaimName(scimv1.ClaimUserName, userName)}, &c)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestFirstIDs: a new userName costs one object (no claim) and gets its
// first id; a first id is never given to a second user, whether the first
// was deleted or renamed (RFC 7643 §3.1, ids are not reassignable).
func TestFirstIDs(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)

	ann := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"ann@example.test"}`), 201).str("id")
	if ann != repository.FirstUserID(r.op.Repo.IDKey, ns, "ANN@example.test") {
		t.Errorf("a new userName gets its first id: got %s", ann)
	}
	// The id is keyed: whoever holds it (a log line) cannot confirm a
	// guessed userName without the installation key. Before issue 13 it
	// was an unkeyed name-based UUID anybody could recompute.
	checkNotNameBased(t, ann, "ann@example.test", ns+"/ann@example.test")
	if other := repository.FirstUserID(testenv.IDKey(), ns, "ann@example.test"); other == ann {
		t.Error("another installation key derives the same first id")
	}
	if c := claimOn(t, ns, "ann@example.test"); c != nil {
		t.Errorf("a first-id user needs no claim, found %+v", c.Spec)
	}
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"Ann@Example.test"}`), 409, "uniqueness")

	// Deleted, then created again: a new id; the old one stays gone.
	expect(t, r.do(t, tok, "DELETE", "/Users/"+ann, nil), 204)
	if c := claimOn(t, ns, "ann@example.test"); c == nil || !c.Spec.Retired || c.Spec.Owner != "" {
		t.Fatalf("deletion retires the first id: claim %+v", c)
	}
	ann2 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"ann@example.test"}`), 201).str("id")
	if ann2 == ann {
		t.Fatalf("id %s given to a second user", ann)
	}
	if c := claimOn(t, ns, "ann@example.test"); c == nil || !c.Spec.Retired || c.Spec.Owner != ann2 {
		t.Errorf("the second ann holds the retired claim: %+v", c)
	}
	expect(t, r.do(t, tok, "GET", "/Users/"+ann, nil), 404)
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"ann@example.test"}`), 409, "uniqueness")
	// Deleting the second ann keeps the claim retired, with no owner.
	expect(t, r.do(t, tok, "DELETE", "/Users/"+ann2, nil), 204)
	if c := claimOn(t, ns, "ann@example.test"); c == nil || !c.Spec.Retired || c.Spec.Owner != "" {
		t.Errorf("release keeps a retired claim: %+v", c)
	}
	ann3 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"ann@example.test"}`), 201).str("id")
	if ann3 == ann || ann3 == ann2 {
		t.Errorf("id reused: %s", ann3)
	}

	// Renamed: the old userName is free for someone else, under a new id.
	bob := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"bob@example.test"}`), 201).str("id")
	rename := func(id, to string) response {
		return r.do(t, tok, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"`+to+`"}]}`)
	}
	expect(t, rename(bob, "carol@example.test"), 204)
	bob2 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"bob@example.test"}`), 201).str("id")
	if bob2 == bob {
		t.Fatalf("renamed user's id %s given to a new bob", bob)
	}
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"CAROL@example.test"}`), 409, "uniqueness")
	// Back to bob: taken by bob2 now.
	expect(t, rename(bob, "bob@example.test"), 409, "uniqueness")
	// A first-id user renamed to its first name and away again.
	expect(t, r.do(t, tok, "DELETE", "/Users/"+bob2, nil), 204)
	expect(t, rename(bob, "bob@example.test"), 204)
	expect(t, rename(bob, "dave@example.test"), 204)
	if c := claimOn(t, ns, "bob@example.test"); c == nil || !c.Spec.Retired || c.Spec.Owner != "" {
		t.Errorf("bob's claim after the first id left it again: %+v", c)
	}
	bob3 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"bob@example.test"}`), 201).str("id")
	if bob3 == bob || bob3 == bob2 {
		t.Errorf("id reused: %s", bob3)
	}
	// A rename onto a first-id user's name is refused.
	eve := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"eve@example.test"}`), 201).str("id")
	expect(t, rename(bob, "EVE@example.test"), 409, "uniqueness")
	if got := expect(t, r.do(t, tok, "GET", "/Users/"+eve, nil), 200).str("userName"); got != "eve@example.test" {
		t.Errorf("eve: %s", got)
	}
}

// checkNotNameBased fails if id is a name-based (SHA-1 or MD5) UUID of one
// of guesses in a well-known or a made-up namespace.
func checkNotNameBased(t *testing.T, id string, guesses ...string) {
	t.Helper()
	for _, guess := range guesses {
		for _, space := range []uuid.UUID{uuid.NameSpaceDNS, uuid.NameSpaceURL, uuid.NameSpaceOID, uuid.NameSpaceX500,
			uuid.MustParse("5f0d6a52-3a8e-4c8e-9b0e-2f6f1d6c9a41")} {
			if uuid.NewSHA1(space, []byte(guess)).String() == id || uuid.NewMD5(space, []byte(guess)).String() == id {
				t.Fatalf("the first id %s is a name-based UUID of %q: a guessed userName can be confirmed from it", id, guess)
			}
		}
	}
}

// TestReplicasRenameRacesCreate: a rename onto a userName on one replica
// and a create of that userName on another, at the same moment: never both.
// The create writes its first-id object and then looks for a claim; the
// rename writes its claim and then looks for the first-id object.
func TestReplicasRenameRacesCreate(t *testing.T) {
	ns := env.Namespace(t)
	a, b := startReplica(t, ns), startReplica(t, ns)
	tok := issueToken(t, ns, "entra", a, b)
	const rounds = 20
	bothFailed := 0
	for round := range rounds {
		name := fmt.Sprintf("race%02d@example.test", round)
		mover := expect(t, a.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":"mover%02d@example.test"}`, round)), 201).str("id")
		var wg sync.WaitGroup
		var renamed, created response
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			renamed = a.do(t, tok, "PATCH", "/Users/"+mover, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"`+name+`"}]}`)
		}()
		go func() {
			defer wg.Done()
			<-start
			created = b.do(t, tok, "POST", "/Users", `{"userName":"`+name+`"}`)
		}()
		close(start)
		wg.Wait()
		ok := 0
		for _, res := range []response{renamed, created} {
			switch res.status {
			case 200, 201, 204:
				ok++
			case 409:
				expect(t, res, 409, "uniqueness")
			default:
				t.Errorf("round %d: unexpected answer %s", round, res)
			}
		}
		if ok == 2 {
			t.Errorf("round %d: both the rename (%s) and the create (%s) got %s", round, renamed, created, name)
		}
		if ok == 0 {
			bothFailed++
		}
		// Whatever the replicas answered, the API server holds at most one.
		var users scimv1.ProvisionedUserList
		if err := env.Client.List(context.Background(), &users, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		holders := 0
		for _, u := range users.Items {
			if u.DeletionTimestamp.IsZero() && u.Spec.UserName == name {
				holders++
			}
		}
		if holders != ok {
			t.Errorf("round %d: %d users named %s, %d successful answers", round, holders, name, ok)
		}
	}
	// Both backing off is allowed (each saw the other) but must stay rare:
	// the claimer gives a racing create time to undo itself.
	if bothFailed > rounds/4 {
		t.Errorf("both writers backed off in %d of %d rounds", bothFailed, rounds)
	}
	t.Logf("%d rounds; both writers backed off in %d", rounds, bothFailed)
}

// TestUsersFromBeforeTheKeyKeepTheirNames: users created before first ids
// were keyed (an unkeyed name-based id and no claim, as every user of an
// installation before issue 13 has) keep their userNames: a create or a
// rename onto one, in any spelling, is 409, and once renamed away the name
// is free again. Before knownHolder, the create under the keyed first id
// succeeded next to the old user: two users with one userName.
func TestUsersFromBeforeTheKeyKeepTheirNames(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra", r)
	ctx := context.Background()

	oldSpace := uuid.MustParse("5f0d6a52-3a8e-4c8e-9b0e-2f6f1d6c9a41")
	old := &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uuid.NewSHA1(oldSpace, []byte(ns+"/old@example.test")).String(),
			Labels: map[string]string{scimv1.LabelActive: "true"}},
		Spec: scimv1.ProvisionedUserSpec{UserName: "old@example.test"},
	}
	if err := env.Client.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if res := r.do(t, tok, "GET", "/Users?filter="+url.QueryEscape(`userName eq "old@example.test"`), nil); res.total() != 1 {
			return fmt.Errorf("the old user is not listed yet: %s", res)
		}
		return nil
	})
	for _, spelling := range []string{"old@example.test", "OLD@Example.TEST"} {
		expect(t, r.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"userName":%q}`, spelling)), 409, "uniqueness")
	}
	rename := func(id, to string) response {
		return r.do(t, tok, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"`+to+`"}]}`)
	}
	eve := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"eve@example.test"}`), 201).str("id")
	expect(t, rename(eve, "Old@example.test"), 409, "uniqueness")

	// The old user renamed away frees its name.
	expect(t, rename(old.Name, "older@example.test"), 204)
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"old@example.test"}`), 201)
	res := r.do(t, tok, "GET", "/Users?filter="+url.QueryEscape(`userName eq "old@example.test"`), nil)
	if res.total() != 1 {
		t.Errorf("one user holds old@example.test: %s", res)
	}
}
