package uniqueness

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
)

// Collector removes NameClaims that no live object holds: leftovers of
// requests that crashed between their claim and their write, and claims
// whose release failed after a rename or deletion. Without it they stay
// forever, cached on every replica.
//
// Retired claims are tombstones, not leftovers: they keep a first id from
// being given to a second user (RFC 7643 §3.1), so a retired claim only
// loses an owner that no longer holds it and is never deleted.
//
// Deleting a claim is safe against a writer still using it for the same
// reason a takeover is (see the package doc): a writer reads its claim
// again after its write and undoes the write when the claim is gone. The
// collector deletes with the claim's UID and resourceVersion as
// preconditions, so a claim taken over or renewed since it was read is
// left alone.
type Collector struct {
	// Guards are the unique attributes by claim kind.
	Guards map[scimv1.ClaimKind]Guard
	// Every is the time between passes (default 10 minutes).
	Every time.Duration
	// Grace is how long after its claimedAt a claim is left alone whatever
	// its owner says (default 10 minutes, far above claimGrace: a request
	// in flight is never disturbed, fencing or not).
	Grace time.Duration
	// Namespace limits a pass to one namespace; "" is every namespace the
	// cache sees.
	Namespace string
	Log       logr.Logger
}

// NeedLeaderElection is true: one collector per installation is enough.
func (c *Collector) NeedLeaderElection() bool { return true }

// Start runs passes until ctx ends.
func (c *Collector) Start(ctx context.Context) error {
	every := c.Every
	if every <= 0 {
		every = 10 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := c.Collect(ctx); err != nil {
			c.Log.Error(err, "collecting unused name claims", "collected", n)
		} else if n > 0 {
			c.Log.Info("collected unused name claims", "collected", n)
		}
	}
}

// Collect makes one pass and returns how many claims it deleted or
// released.
func (c *Collector) Collect(ctx context.Context) (int, error) {
	grace := c.Grace
	if grace <= 0 {
		grace = 10 * time.Minute
	}
	users := c.Guards[scimv1.ClaimUserName]
	var list scimv1.NameClaimList
	if err := users.Claims.Cache.List(ctx, &list, client.InNamespace(c.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, apierror.ForClient(err, "name claims")
	}
	now := users.Claims.now()
	collected := 0
	for i := range list.Items {
		cl := &list.Items[i]
		if !collectable(cl, now, grace) {
			continue
		}
		g, ok := c.Guards[cl.Spec.Kind]
		if !ok {
			g = users
		}
		done, err := c.collect(ctx, g, cl.DeepCopy())
		if err != nil {
			return collected, err
		}
		if done {
			collected++
		}
	}
	return collected, nil
}

// collectable: a claim with an owner, past the grace. An ownerless claim is
// either retired (a tombstone, kept) or an ownerless leftover; both wait
// for the grace like any other.
func collectable(c *scimv1.NameClaim, now time.Time, grace time.Duration) bool {
	if c.Spec.Owner == "" && c.Spec.Retired {
		return false
	}
	since := c.CreationTimestamp.Time
	if c.Spec.ClaimedAt != nil {
		since = c.Spec.ClaimedAt.Time
	}
	return now.Sub(since) >= grace
}

// collectorOwner marks a claim the collector has taken to collect it. It
// is no object name (a colon), so it never names a real owner.
const collectorOwner = "collector:"

// collect deletes (or, retired, releases) one claim if its owner does not
// hold it: first by the cache, which answers for nearly every claim
// without an API call, then confirmed by a live read. It is fenced like a
// takeover: the claim is first taken (a write carrying the resourceVersion
// read), then the owner is read again, and the claim given back if the
// owner holds the value by then. A writer still using the claim reads it
// again after its write and undoes the write when the claim is no longer
// its own; of the two, at least one sees the other.
func (c *Collector) collect(ctx context.Context, g Guard, cl *scimv1.NameClaim) (bool, error) {
	if cl.Spec.Owner != "" {
		if taken, err := c.take(ctx, g, cl); !taken || err != nil {
			return false, err
		}
	}
	var err error
	if cl.Spec.Retired {
		cl.Spec.Owner, cl.Spec.ClaimedAt = "", nil
		err = g.Claims.Client.Update(ctx, cl) // carries the resourceVersion of our own write
	} else {
		err = g.Claims.Client.Delete(ctx, cl, client.Preconditions{UID: &cl.UID, ResourceVersion: &cl.ResourceVersion})
	}
	if err != nil {
		return false, ignoreRace(err)
	}
	c.Log.V(1).Info("collected a name claim no live object holds", "namespace", cl.Namespace, "retired", cl.Spec.Retired)
	return true, nil
}

// take takes cl from an owner that does not hold it, fenced: false when
// the owner holds it (by the cache, live, or again after the take).
func (c *Collector) take(ctx context.Context, g Guard, cl *scimv1.NameClaim) (bool, error) {
	prev := cl.Spec
	cached, err := g.Holders.CachedHolds(ctx, cl.Namespace, prev.Owner, cl.Name)
	if err != nil || cached {
		return false, err
	}
	state, err := g.Holders.Holds(ctx, cl.Namespace, prev.Owner, cl.Name)
	if err != nil || state == Holding {
		return false, err
	}
	now := metav1.NewTime(g.Claims.now())
	cl.Spec.Owner, cl.Spec.ClaimedAt = collectorOwner, &now
	if err := g.Claims.Client.Update(ctx, cl); err != nil {
		return false, ignoreRace(err)
	}
	if state, err := g.Holders.Holds(ctx, cl.Namespace, prev.Owner, cl.Name); err != nil || state == Holding {
		// The owner's write landed meanwhile: the claim goes back.
		cl.Spec = prev
		if uerr := g.Claims.Client.Update(ctx, cl); uerr != nil && err == nil {
			err = ignoreRace(uerr)
		}
		return false, err
	}
	return true, nil
}

// ignoreRace: a claim changed or removed meanwhile is someone's, and left
// alone.
func ignoreRace(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return apierror.ForClient(err, "name claim")
}
