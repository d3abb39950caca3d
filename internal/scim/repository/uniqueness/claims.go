package repository

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Uniqueness of userName and group displayName across replicas.
//
// Kubernetes refuses a second object with the same name, and that is the
// only uniqueness it offers. Two ways use it:
//
//   - First ids (users only). A user whose userName was never used in the
//     tenant is created under FirstUserID(key, namespace, userName). Two racing
//     creates of one userName then collide on the object name, and a create
//     costs one API write: the common case of a provisioning cycle.
//   - NameClaims. Everything else (a rename, a userName used before, every
//     group) first creates a NameClaim named after the value.
//
// The two meet when a claimed value is also some user's first id. Each side
// writes first and then reads the other with a linearizable GET: a create
// under a first id looks for a claim, a claim looks for the first-id user.
// Of two racing writers at least one sees the other and backs off with 409.
//
// The same handshake fences NameClaims themselves. A claim whose owner does
// not hold the value yet is judged stale by the clock (claimGrace), and
// clocks and requests can be slow, so the clock alone decides nothing:
// whoever writes an object under a claim reads the claim again afterwards
// and undoes its write if the claim changed hands (stillClaimed), and
// whoever takes a claim over reads the previous owner again afterwards and
// gives the claim back if that owner holds the value by then. Of a slow
// writer and a taker at least one sees the other; clock skew between
// replicas can cost a 409, never a duplicate.
//
// Values are compared under namekey.Key, the one canonical form of a name.
//
// A first id is never given to a second user (RFC 7643 §3.1: ids are not
// reassignable): before its user is renamed or deleted, the claim on the
// value is marked retired, and a retired claim sends later creates of the
// value to a random id.

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

// firstID names the object that holds a userName without a claim; nil
// without a key, when every user is created under a claim.
func (r *Repository) firstID() func(namespace, value string) string {
	if len(r.IDKey) == 0 {
		return nil
	}
	return func(namespace, value string) string { return FirstUserID(r.IDKey, namespace, value) }
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

// ownerState is what a claim's owner says about the claim.
type ownerState int

const (
	// ownerHolding: the owner exists, is not terminating, and has the value.
	ownerHolding ownerState = iota
	// ownerReleased: the owner is terminating or renamed: the claim is stale.
	ownerReleased
	// ownerMissing: no owner object. Either its creator crashed between
	// claim and create (stale), or the creator is between those two steps
	// right now (live): see claimGrace.
	ownerMissing
)

// ownerHolds looks up whether the object named owner has a value whose
// claim is named claim (ClaimName of its canonical key).
type ownerHolds func(ctx context.Context, namespace, owner, claim string) (ownerState, error)

// uniqueness describes one unique attribute.
type uniqueness struct {
	kind  scimv1.ClaimKind
	holds ownerHolds
	// firstID, when set, names the object that holds a value without a
	// claim (users); nil: values are held through claims only (groups).
	firstID func(namespace, value string) string
	// known, when set, names the objects this replica's index says hold
	// a value (see knownHolder).
	known func(namespace, value string) []string
}

// knownHolder answers 409 when this replica's index knows another object
// holding value and a live read confirms it. First ids and claims catch
// racing writers; this catches the holders they cannot see: users created
// before the installation key (or the name key) changed, whose first ids
// are derived another way and who have no claim. Such a user is older
// than this replica's cache, so no handshake is needed to see it.
func (r *Repository) knownHolder(ctx context.Context, namespace string, u uniqueness, value, self string) error {
	if u.known == nil {
		return nil
	}
	for _, name := range u.known(namespace, value) {
		if name == self {
			continue
		}
		state, err := u.holds(ctx, namespace, name, ClaimName(u.kind, value))
		if err != nil {
			return err
		}
		if state == ownerHolding {
			return scimerr.Uniqueness("%s %q is already in use", u.kind, value)
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

func (r *Repository) newClaim(key client.ObjectKey, kind scimv1.ClaimKind, lower, owner string) *scimv1.NameClaim {
	now := metav1.NewTime(r.now())
	return &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: key.Name, Namespace: key.Namespace,
			Labels: map[string]string{scimv1.LabelClaimKind: string(kind)},
		},
		Spec: scimv1.NameClaimSpec{Kind: kind, Value: lower, Owner: owner, ClaimedAt: &now},
	}
}

// claimOf reads the claim on value live; nil when there is none.
func (r *Repository) claimOf(ctx context.Context, key client.ObjectKey) (*scimv1.NameClaim, error) {
	var cur scimv1.NameClaim
	if err := r.Live.Get(ctx, key, &cur); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, apiError(err, "name claim")
	}
	return &cur, nil
}

// heldBy reports whether a claim's owner (other than self) holds it, or may
// be about to (claimed within the grace period).
func (r *Repository) heldBy(ctx context.Context, u uniqueness, c *scimv1.NameClaim, self string) (bool, error) {
	if c.Spec.Owner == "" || c.Spec.Owner == self {
		return false, nil
	}
	state, err := u.holds(ctx, c.Namespace, c.Spec.Owner, c.Name)
	if err != nil {
		return false, err
	}
	since := c.CreationTimestamp.Time
	if c.Spec.ClaimedAt != nil {
		since = c.Spec.ClaimedAt.Time
	}
	return state == ownerHolding || r.now().Sub(since) < claimGrace, nil
}

// claim reserves value for owner in namespace. A claim held by a live owner
// gives 409 uniqueness; a stale claim (crash between steps, a deletion or a
// rename whose release did not run) is taken over in place, so that a
// retired claim stays retired.
func (r *Repository) claim(ctx context.Context, namespace string, u uniqueness, value, owner string) error {
	lower := claimValue(value)
	key := client.ObjectKey{Namespace: namespace, Name: ClaimName(u.kind, value)}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		err := r.Client.Create(ctx, r.newClaim(key, u.kind, lower, owner))
		if err == nil {
			return r.checkFirstHolder(ctx, namespace, u, value, owner)
		}
		if !apierrors.IsAlreadyExists(err) {
			return apiError(err, "name claim")
		}
		cur, err := r.claimOf(ctx, key)
		if err != nil {
			return err
		}
		if cur == nil {
			continue // released in between: try again
		}
		if cur.Spec.Owner == owner {
			// Our own claim, left from an earlier request: renewed, so that
			// the collector (which judges by claimedAt) does not take it
			// from under this write.
			now := metav1.NewTime(r.now())
			cur.Spec.ClaimedAt = &now
			if err := r.Client.Update(ctx, cur); err != nil {
				if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
					continue
				}
				return apiError(err, "name claim")
			}
			return r.checkFirstHolder(ctx, namespace, u, value, owner)
		}
		switch held, err := r.heldBy(ctx, u, cur, owner); {
		case err != nil:
			return err
		case held:
			return scimerr.Uniqueness("%s %q is already in use", u.kind, value)
		}
		// Stale: take over exactly the claim we looked at (the update
		// carries its resourceVersion), then check as after a create.
		prev := cur.Spec
		now := metav1.NewTime(r.now())
		cur.Spec.Owner, cur.Spec.Value, cur.Spec.ClaimedAt = owner, lower, &now
		switch err := r.Client.Update(ctx, cur); {
		case err == nil:
			if err := r.fenceTakeover(ctx, u, cur, prev); err != nil {
				return err
			}
			return r.checkFirstHolder(ctx, namespace, u, value, owner)
		case !apierrors.IsConflict(err) && !apierrors.IsNotFound(err):
			return apiError(err, "name claim")
		}
	}
	return scimerr.Uniqueness("%s %q is being claimed concurrently; retry", u.kind, value)
}

// fenceTakeover is the taker's half of the fencing handshake: with the claim
// now ours, the previous owner is read again. If it holds the value by now
// (its write was slower than claimGrace, or our clock runs ahead), the
// claim goes back to it and the answer is 409.
func (r *Repository) fenceTakeover(ctx context.Context, u uniqueness, c *scimv1.NameClaim, prev scimv1.NameClaimSpec) error {
	if prev.Owner == "" {
		return nil
	}
	state, err := u.holds(ctx, c.Namespace, prev.Owner, c.Name)
	if err == nil && state != ownerHolding {
		return nil
	}
	if gerr := r.giveBack(ctx, c, prev); gerr != nil && err == nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	return scimerr.Uniqueness("%s %q is already in use", u.kind, prev.Value)
}

// giveBack returns a claim we took over to its previous owner. It must
// not be lost to a cancelled request or a passing error: a claim left
// with us, who hold nothing, would later be judged stale while its real
// holder holds the value. A claim that changed hands meanwhile belongs to
// a third writer, who fences itself.
func (r *Repository) giveBack(ctx context.Context, c *scimv1.NameClaim, prev scimv1.NameClaimSpec) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(c)
	mine := c.Spec.Owner
	for retry := newRetrier(); ; {
		cur, err := r.claimOf(ctx, key)
		if err == nil && (cur == nil || cur.Spec.Owner != mine) {
			return nil
		}
		if err == nil {
			cur.Spec = prev
			if err = r.Client.Update(ctx, cur); err == nil || apierrors.IsNotFound(err) {
				return nil
			}
			err = apiError(err, "name claim")
		}
		if !retry.wait(ctx) {
			return err
		}
	}
}

// fenceTimeout bounds the writes that undo or give back after a lost
// handshake; they run even when the client has gone away.
const fenceTimeout = 30 * time.Second

// definiteRefusal reports whether a failed write certainly did not happen.
// After any other failure (a timeout, a reset connection, a 5xx) the write
// may have been applied, so a claim taken for it must not be released: a
// stale claim is taken over after claimGrace, a released one that an
// object holds lets a duplicate in.
func definiteRefusal(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsInvalid(err) ||
		apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsUnauthorized(err)
}

// stillClaimed is the writer's half of the fencing handshake: after an
// object was written under owner's claim on value, the claim is read
// again. False means another replica took it over meanwhile, and the
// write must be undone.
func (r *Repository) stillClaimed(ctx context.Context, namespace string, u uniqueness, value, owner string) (bool, error) {
	c, err := r.claimOf(ctx, client.ObjectKey{Namespace: namespace, Name: ClaimName(u.kind, value)})
	if err != nil {
		return false, err
	}
	return c != nil && c.Spec.Owner == owner, nil
}

// checkFirstHolder runs after a claim was taken: if a user holds the value
// through its first id (created on another replica meanwhile), the claim is
// given back and the answer is 409.
func (r *Repository) checkFirstHolder(ctx context.Context, namespace string, u uniqueness, value, owner string) error {
	if u.firstID == nil {
		return nil
	}
	first := u.firstID(namespace, value)
	if first == owner {
		return nil
	}
	// A create racing this claim on another replica also sees the claim
	// and undoes itself within a round trip (createFirst); give it that
	// time before answering 409, or both writers would fail.
	var state ownerState
	var err error
	for attempt := 0; attempt < firstHolderChecks; attempt++ {
		if attempt > 0 && !sleepCtx(ctx, firstHolderPause) {
			break
		}
		state, err = u.holds(ctx, namespace, first, ClaimName(u.kind, value))
		if err != nil || state != ownerHolding {
			break
		}
	}
	if err == nil && state != ownerHolding {
		return nil
	}
	r.release(ctx, namespace, u, value, owner)
	if err != nil {
		return err
	}
	return scimerr.Uniqueness("%s %q is already in use", u.kind, value)
}

// firstHolderChecks and firstHolderPause bound the wait in checkFirstHolder
// (only paid when a first-id user holds the value).
const (
	firstHolderChecks = 6
	firstHolderPause  = 50 * time.Millisecond
)

// release gives up owner's claim on value: deletes it, or, when it is
// retired, keeps it with no owner. Failures are left alone: a stale claim
// never blocks anyone for long, since claim() takes stale claims over.
func (r *Repository) release(ctx context.Context, namespace string, u uniqueness, value, owner string) {
	key := client.ObjectKey{Namespace: namespace, Name: ClaimName(u.kind, value)}
	cur, err := r.claimOf(ctx, key)
	if err != nil || cur == nil || cur.Spec.Owner != owner {
		return
	}
	if cur.Spec.Retired {
		cur.Spec.Owner, cur.Spec.ClaimedAt = "", nil
		_ = r.Client.Update(ctx, cur)
		return
	}
	_ = r.Client.Delete(ctx, cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
}

// retire marks value as once held by its first id, before that user is
// renamed or deleted, so that the id goes to nobody else. A claim someone
// else holds meanwhile keeps its owner.
func (r *Repository) retire(ctx context.Context, namespace string, u uniqueness, value, owner string) error {
	key := client.ObjectKey{Namespace: namespace, Name: ClaimName(u.kind, value)}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		cur, err := r.claimOf(ctx, key)
		if err != nil {
			return err
		}
		if cur == nil {
			c := r.newClaim(key, u.kind, claimValue(value), "")
			c.Spec.ClaimedAt, c.Spec.Retired = nil, true
			err = r.Client.Create(ctx, c)
		} else {
			if cur.Spec.Retired && cur.Spec.Owner != owner {
				return nil
			}
			cur.Spec.Retired = true
			if cur.Spec.Owner == owner {
				cur.Spec.Owner, cur.Spec.ClaimedAt = "", nil
			}
			err = r.Client.Update(ctx, cur)
		}
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return apiError(err, "name claim")
		}
	}
	return scimerr.New(503, "", "%s %q is being claimed concurrently; retry", u.kind, value)
}

// usedBefore reports whether this replica's cache knows a claim on value:
// then its first id is retired or contested, and a create goes straight to
// a random id and a claim. A stale cache is safe: the create under the
// first id reads the claim live afterwards (createFirst).
func (r *Repository) usedBefore(ctx context.Context, namespace string, kind scimv1.ClaimKind, value string) bool {
	var c scimv1.NameClaim
	err := r.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ClaimName(kind, value)}, &c)
	return err == nil
}
