package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// ClaimName is the NameClaim object name for a unique value: the API server
// refuses a second object with the same name, which is what makes the claim
// safe when two replicas create the same user at once.
func ClaimName(kind scimv1.ClaimKind, value string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(value)))
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

// ownerHolds looks up the claim's owner.
type ownerHolds func(ctx context.Context, namespace, owner, lowerValue string) (ownerState, error)

// claimGrace is how long a claim whose owner does not exist yet is
// presumed to belong to a create in flight. Taking such a claim over at
// once lets two replicas racing on the same userName both succeed: the
// loser would find the winner's claim before the winner's user exists,
// delete it as stale and create a second user. The grace is measured from
// the claim's creationTimestamp (set by the API server) and is generous
// against clock skew between replicas; an orphan from a crash blocks its
// value for this long at most, answering 409.
const claimGrace = 30 * time.Second

// claim reserves value for owner in namespace. A claim held by a live owner
// gives 409 uniqueness; a stale claim (crash between steps, or a deletion
// whose clean-up did not run yet) is taken over.
func (r *Repository) claim(ctx context.Context, namespace string, kind scimv1.ClaimKind, value, owner string, holds ownerHolds) error {
	lower := strings.ToLower(value)
	c := &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: ClaimName(kind, value), Namespace: namespace,
			Labels: map[string]string{scimv1.LabelClaimKind: string(kind)},
		},
		Spec: scimv1.NameClaimSpec{Kind: kind, Value: lower, Owner: owner},
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		err := r.Client.Create(ctx, c.DeepCopy())
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return apiError(err, "name claim")
		}
		var cur scimv1.NameClaim
		if err := r.Live.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
			if apierrors.IsNotFound(err) {
				continue // released in between: try again
			}
			return apiError(err, "name claim")
		}
		if cur.Spec.Owner == owner {
			return nil
		}
		state, err := holds(ctx, namespace, cur.Spec.Owner, lower)
		if err != nil {
			return err
		}
		if state == ownerHolding {
			return scimerr.Uniqueness("%s %q is already in use", kind, value)
		}
		if state == ownerMissing && r.now().Sub(cur.CreationTimestamp.Time) < claimGrace {
			return scimerr.Uniqueness("%s %q is already in use (being created by a concurrent request)", kind, value)
		}
		// Stale: delete exactly the claim we looked at, then retry.
		err = r.Client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return apiError(err, "name claim")
		}
	}
	return scimerr.Uniqueness("%s %q is being claimed concurrently; retry", kind, value)
}

// release deletes the claim on value if owner holds it. Failures are left
// to the claim collector: a stale claim never blocks anyone for long, since
// claim() takes stale claims over.
func (r *Repository) release(ctx context.Context, namespace string, kind scimv1.ClaimKind, value, owner string) {
	var cur scimv1.NameClaim
	key := client.ObjectKey{Namespace: namespace, Name: ClaimName(kind, value)}
	if err := r.Live.Get(ctx, key, &cur); err != nil || cur.Spec.Owner != owner {
		return
	}
	_ = r.Client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
}
