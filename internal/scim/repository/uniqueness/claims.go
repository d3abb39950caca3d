package uniqueness

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/retry"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// firstIDSpace is the UUID namespace of first ids (a fixed random UUID).
var firstIDSpace = uuid.MustParse("5f0d6a52-3a8e-4c8e-9b0e-2f6f1d6c9a41")

// FirstUserID is the id of the first user with userName in namespace: a
// UUID (version 8) of both, case-insensitive like userName, keyed with the
// installation's first-id key. Every replica derives the same id, and
// nobody without the key can confirm a guessed userName from an id in a log
// line (an unkeyed name-based UUID would let them, offline).
func FirstUserID(key []byte, namespace, userName string) string {
	return uuid.NewHash(hmac.New(sha256.New, key), firstIDSpace, []byte(namespace+"/"+namekey.Key(userName)), 8).String()
}

// ClaimName is the NameClaim object name for a unique value: the API server
// refuses a second object with the same name, which is what makes the claim
// safe when two replicas create the same user at once.
func ClaimName(kind scimv1.ClaimKind, value string) string {
	sum := sha256.Sum256([]byte(namekey.Key(value)))
	prefix := "user-"
	if kind == scimv1.ClaimDisplayName {
		prefix = "group-"
	}
	return prefix + hex.EncodeToString(sum[:20])
}

// OwnerState is what a claim's owner says about the claim.
type OwnerState int

const (
	// Holding means the owner exists, is not terminating, and has the value.
	Holding OwnerState = iota
	// Released means the owner is terminating or renamed: the claim is stale.
	Released
	// Missing means there is no owner object. Either its creator crashed between claim
	// and create (stale), or the creator is between those two steps right
	// now (live): see claimGrace.
	Missing
)

// Holders answers for the objects (users, groups) that hold unique
// values: all this package needs to know about them.
type Holders interface {
	// Holds reads owner from the API server: does it (alive, not
	// terminating) have a value whose claim is named claim?
	Holds(ctx context.Context, namespace, owner, claim string) (OwnerState, error)
	// CachedHolds answers Holding or not from the cache, without an API
	// call; false when the cache does not know.
	CachedHolds(ctx context.Context, namespace, owner, claim string) (bool, error)
}

// Claims reads and writes the NameClaims.
type Claims struct {
	Client client.Client // writes claims
	Live   client.Reader // reads claims (linearizable)
	Cache  client.Reader // the first look before a create (UsedBefore)
	Now    func() time.Time
}

func (c *Claims) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Guard keeps one attribute unique; see the package doc for the handshake
// its methods take part in.
type Guard struct {
	Claims  *Claims
	Kind    scimv1.ClaimKind
	Holders Holders
	// FirstID, when set, names the object that holds a value without a
	// claim (users); nil: values are held through claims only (groups, and
	// users without an installation key).
	FirstID func(namespace, value string) string
	// Known, when set, names the objects this replica's index says hold a
	// value (see KnownHolder).
	Known func(namespace, value string) []string
}

// inUse is the 409 for a value someone else holds.
func (g Guard) inUse(value string) error {
	return scimerr.Uniqueness("%s %q is already in use", g.Kind, value)
}

// KnownHolder answers 409 when this replica's index knows another object
// holding value and a live read confirms it. First ids and claims catch
// racing writers; this catches the holders they cannot see: users created
// before the installation key (or the name key) changed, whose first ids
// are derived another way and who have no claim. Such a user is older
// than this replica's cache, so no handshake is needed to see it.
func (g Guard) KnownHolder(ctx context.Context, namespace, value, self string) error {
	if g.Known == nil {
		return nil
	}
	for _, name := range g.Known(namespace, value) {
		if name == self {
			continue
		}
		state, err := g.Holders.Holds(ctx, namespace, name, ClaimName(g.Kind, value))
		if err != nil {
			return err
		}
		if state == Holding {
			return g.inUse(value)
		}
	}
	return nil
}

// claimGrace is how long a claim counts as held whatever its owner says:
// the owner may be between its claim and its write (a user not created yet,
// a rename not written yet). Taking such a claim over at once lets two
// replicas racing on the same userName both succeed: the loser would find
// the winner's claim before the winner's write, take it over as stale and
// write too. It is measured from spec.claimedAt (else the
// creationTimestamp) and is generous against clock skew between replicas;
// an orphan from a crash blocks its value for this long at most, answering
// 409.
const claimGrace = 30 * time.Second

// claimValue is what a claim shows in spec.value: the canonical key, cut to
// the field's 256 characters (NFKC may lengthen a value). It is for people
// reading the claim; the claim's name is what identifies the value.
func claimValue(value string) string {
	key := namekey.Key(value)
	if utf8.RuneCountInString(key) <= 256 {
		return key
	}
	return string([]rune(key)[:256])
}

func (g Guard) key(namespace, value string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: ClaimName(g.Kind, value)}
}

func (g Guard) newClaim(key client.ObjectKey, lower, owner string) *scimv1.NameClaim {
	now := metav1.NewTime(g.Claims.now())
	return &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: key.Name, Namespace: key.Namespace,
			Labels: map[string]string{scimv1.LabelClaimKind: string(g.Kind)},
		},
		Spec: scimv1.NameClaimSpec{Kind: g.Kind, Value: lower, Owner: owner, ClaimedAt: &now},
	}
}

// claimOf reads a claim live; nil when there is none.
func (c *Claims) claimOf(ctx context.Context, key client.ObjectKey) (*scimv1.NameClaim, error) {
	var cur scimv1.NameClaim
	if err := c.Live.Get(ctx, key, &cur); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, apierror.ForClient(err, "name claim")
	}
	return &cur, nil
}

// heldBy reports whether a claim's owner (other than self) holds it, or may
// be about to (claimed within the grace period).
func (g Guard) heldBy(ctx context.Context, c *scimv1.NameClaim, self string) (bool, error) {
	if c.Spec.Owner == "" || c.Spec.Owner == self {
		return false, nil
	}
	state, err := g.Holders.Holds(ctx, c.Namespace, c.Spec.Owner, c.Name)
	if err != nil {
		return false, err
	}
	since := c.CreationTimestamp.Time
	if c.Spec.ClaimedAt != nil {
		since = c.Spec.ClaimedAt.Time
	}
	return state == Holding || g.Claims.now().Sub(since) < claimGrace, nil
}

// Claim reserves value for owner in namespace. A claim held by a live owner
// gives 409 uniqueness; a stale claim (crash between steps, a deletion or a
// rename whose release did not run) is taken over in place, so that a
// retired claim stays retired.
func (g Guard) Claim(ctx context.Context, namespace, value, owner string) error {
	lower := claimValue(value)
	key := g.key(namespace, value)
	for attempt := 0; attempt < retry.MaxConflicts; attempt++ {
		err := g.Claims.Client.Create(ctx, g.newClaim(key, lower, owner))
		if err == nil {
			return g.checkFirstHolder(ctx, namespace, value, owner)
		}
		if !apierrors.IsAlreadyExists(err) {
			return apierror.ForClient(err, "name claim")
		}
		cur, err := g.Claims.claimOf(ctx, key)
		if err != nil {
			return err
		}
		if cur == nil {
			continue // released in between: try again
		}
		done, err := g.claimExisting(ctx, cur, value, lower, owner)
		if done || err != nil {
			return err
		}
	}
	return scimerr.Uniqueness("%s %q is being claimed concurrently; retry", g.Kind, value)
}

// claimExisting claims value through the existing claim cur: renewed when
// it is owner's, taken over when stale. done is false when cur changed in
// between and the claim must be tried again.
func (g Guard) claimExisting(ctx context.Context, cur *scimv1.NameClaim, value, lower, owner string) (done bool, err error) {
	if cur.Spec.Owner == owner {
		// Our own claim, left from an earlier request: renewed, so that
		// the collector (which judges by claimedAt) does not take it from
		// under this write.
		now := metav1.NewTime(g.Claims.now())
		cur.Spec.ClaimedAt = &now
		if err := g.Claims.Client.Update(ctx, cur); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return false, nil
			}
			return true, apierror.ForClient(err, "name claim")
		}
		return true, g.checkFirstHolder(ctx, cur.Namespace, value, owner)
	}
	switch held, err := g.heldBy(ctx, cur, owner); {
	case err != nil:
		return true, err
	case held:
		return true, g.inUse(value)
	}
	// Stale: take over exactly the claim we looked at (the update carries
	// its resourceVersion), then check as after a create.
	prev := cur.Spec
	now := metav1.NewTime(g.Claims.now())
	cur.Spec.Owner, cur.Spec.Value, cur.Spec.ClaimedAt = owner, lower, &now
	switch err := g.Claims.Client.Update(ctx, cur); {
	case err == nil:
		if err := g.fenceTakeover(ctx, cur, prev); err != nil {
			return true, err
		}
		return true, g.checkFirstHolder(ctx, cur.Namespace, value, owner)
	case !apierrors.IsConflict(err) && !apierrors.IsNotFound(err):
		return true, apierror.ForClient(err, "name claim")
	}
	return false, nil
}

// fenceTakeover is the taker's half of the fencing handshake: with the claim
// now ours, the previous owner is read again. If it holds the value by now
// (its write was slower than claimGrace, or our clock runs ahead), the
// claim goes back to it and the answer is 409.
func (g Guard) fenceTakeover(ctx context.Context, c *scimv1.NameClaim, prev scimv1.NameClaimSpec) error {
	if prev.Owner == "" {
		return nil
	}
	state, err := g.Holders.Holds(ctx, c.Namespace, prev.Owner, c.Name)
	if err == nil && state != Holding {
		return nil
	}
	if gerr := g.Claims.giveBack(ctx, c, prev); gerr != nil && err == nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	return g.inUse(prev.Value)
}

// giveBack returns a claim we took over to its previous owner. It must
// not be lost to a cancelled request or a passing error: a claim left
// with us, who hold nothing, would later be judged stale while its real
// holder holds the value. A claim that changed hands meanwhile belongs to
// a third writer, who fences itself.
func (c *Claims) giveBack(ctx context.Context, claim *scimv1.NameClaim, prev scimv1.NameClaimSpec) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FenceTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(claim)
	mine := claim.Spec.Owner
	for backoff := retry.New(); ; {
		cur, err := c.claimOf(ctx, key)
		if err == nil && (cur == nil || cur.Spec.Owner != mine) {
			return nil
		}
		if err == nil {
			cur.Spec = prev
			if err = c.Client.Update(ctx, cur); err == nil || apierrors.IsNotFound(err) {
				return nil
			}
			err = apierror.ForClient(err, "name claim")
		}
		if !backoff.Wait(ctx) {
			return err
		}
	}
}

// FenceTimeout bounds the writes that undo or give back after a lost
// handshake; they run even when the client has gone away.
const FenceTimeout = 30 * time.Second

// StillClaimed is the writer's half of the fencing handshake: after an
// object was written under owner's claim on value, the claim is read
// again. False means another replica took it over meanwhile, and the
// write must be undone.
func (g Guard) StillClaimed(ctx context.Context, namespace, value, owner string) (bool, error) {
	c, err := g.Claims.claimOf(ctx, g.key(namespace, value))
	if err != nil {
		return false, err
	}
	return c != nil && c.Spec.Owner == owner, nil
}

// Fence is StillClaimed as an error: nil when the claim is still owner's,
// 409 when another replica took it over (the write must be undone).
func (g Guard) Fence(ctx context.Context, namespace, value, owner string) error {
	ok, err := g.StillClaimed(ctx, namespace, value, owner)
	if err == nil && !ok {
		err = g.inUse(value)
	}
	return err
}

// checkFirstHolder runs after a claim was taken: if a user holds the value
// through its first id (created on another replica meanwhile), the claim is
// given back and the answer is 409.
func (g Guard) checkFirstHolder(ctx context.Context, namespace, value, owner string) error {
	if g.FirstID == nil {
		return nil
	}
	first := g.FirstID(namespace, value)
	if first == owner {
		return nil
	}
	// A create racing this claim on another replica also sees the claim
	// and undoes itself within a round trip (CheckFirst); give it that
	// time before answering 409, or both writers would fail.
	var state OwnerState
	var err error
	for attempt := 0; attempt < firstHolderChecks; attempt++ {
		if attempt > 0 && !retry.Sleep(ctx, firstHolderPause) {
			break
		}
		state, err = g.Holders.Holds(ctx, namespace, first, ClaimName(g.Kind, value))
		if err != nil || state != Holding {
			break
		}
	}
	if err == nil && state != Holding {
		return nil
	}
	g.Release(ctx, namespace, value, owner)
	if err != nil {
		return err
	}
	return g.inUse(value)
}

// firstHolderChecks and firstHolderPause bound the wait in checkFirstHolder
// (only paid when a first-id user holds the value).
const (
	firstHolderChecks = 6
	firstHolderPause  = 50 * time.Millisecond
)

// ErrFirstIDContested means a claim on the value exists, so the first id may
// not hold it (contested, retired, or a stale claim whose takeover must be
// fenced). The create is undone and goes to a random id under a claim.
var ErrFirstIDContested = errors.New("the value is claimed: its first id may not hold it")

// CheckFirst is the first-id side of the handshake, after owner was
// created under the first id of value: nil when no claim exists; else the
// create must be undone, and the error says why: 409 when the claim's
// owner holds the value (or may be about to), ErrFirstIDContested when the
// claim path should take over. A stale claim is never judged so here
// without a write: its writer fences by reading the claim again
// (StillClaimed), which only a takeover changes.
func (g Guard) CheckFirst(ctx context.Context, namespace, value, owner string) error {
	c, err := g.Claims.claimOf(ctx, g.key(namespace, value))
	if err != nil || c == nil {
		return err
	}
	switch held, err := g.heldBy(ctx, c, owner); {
	case err != nil:
		return err
	case held:
		return g.inUse(value)
	}
	return ErrFirstIDContested
}

// Release gives up owner's claim on value: deletes it, or, when it is
// retired, keeps it with no owner. Failures are left alone: a stale claim
// never blocks anyone for long, since Claim takes stale claims over.
func (g Guard) Release(ctx context.Context, namespace, value, owner string) {
	cur, err := g.Claims.claimOf(ctx, g.key(namespace, value))
	if err != nil || cur == nil || cur.Spec.Owner != owner {
		return
	}
	if cur.Spec.Retired {
		cur.Spec.Owner, cur.Spec.ClaimedAt = "", nil
		_ = g.Claims.Client.Update(ctx, cur)
		return
	}
	_ = g.Claims.Client.Delete(ctx, cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
}

// RetireFirst retires value before obj gives it up (rename, deletion) if
// obj holds it through its first id.
func (g Guard) RetireFirst(ctx context.Context, obj client.Object, value string) error {
	if g.FirstID == nil || g.FirstID(obj.GetNamespace(), value) != obj.GetName() {
		return nil
	}
	return g.retire(ctx, obj.GetNamespace(), value, obj.GetName())
}

// retire marks value as once held by its first id, so that the id goes to
// nobody else. A claim someone else holds meanwhile keeps its owner.
func (g Guard) retire(ctx context.Context, namespace, value, owner string) error {
	key := g.key(namespace, value)
	for attempt := 0; attempt < retry.MaxConflicts; attempt++ {
		cur, err := g.Claims.claimOf(ctx, key)
		if err != nil {
			return err
		}
		if cur == nil {
			c := g.newClaim(key, claimValue(value), "")
			c.Spec.ClaimedAt, c.Spec.Retired = nil, true
			err = g.Claims.Client.Create(ctx, c)
		} else {
			if cur.Spec.Retired && cur.Spec.Owner != owner {
				return nil
			}
			cur.Spec.Retired = true
			if cur.Spec.Owner == owner {
				cur.Spec.Owner, cur.Spec.ClaimedAt = "", nil
			}
			err = g.Claims.Client.Update(ctx, cur)
		}
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return apierror.ForClient(err, "name claim")
		}
	}
	return scimerr.New(503, "", "%s %q is being claimed concurrently; retry", g.Kind, value)
}

// UsedBefore reports whether this replica's cache knows a claim on value:
// then its first id is retired or contested, and a create goes straight to
// a random id and a claim. A stale cache is safe: the create under the
// first id reads the claim live afterwards (CheckFirst).
func (g Guard) UsedBefore(ctx context.Context, namespace, value string) bool {
	var c scimv1.NameClaim
	return g.Claims.Cache.Get(ctx, g.key(namespace, value), &c) == nil
}
