package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
	"github.com/scim-operator/scim-operator/internal/scim/repository/retry"
)

func (r *Repository) shards() membership.Shards {
	return membership.Shards{Cache: r.Cache, Live: r.Live, Index: r.Members}
}

// shardWriter writes shards through the write path, counting the writes.
type shardWriter struct {
	r       *Repository
	p       Principal
	written atomic.Int64 // one change writes several shards at once
}

func (w *shardWriter) Create(ctx context.Context, s *scimv1.GroupMembership) error {
	return w.write(ctx, s, func(ctx context.Context, o client.Object) error { return w.r.Client.Create(ctx, o) })
}

func (w *shardWriter) Update(ctx context.Context, s *scimv1.GroupMembership) error {
	return w.write(ctx, s, func(ctx context.Context, o client.Object) error { return w.r.Client.Update(ctx, o) })
}

func (w *shardWriter) write(ctx context.Context, s *scimv1.GroupMembership, send func(context.Context, client.Object) error) error {
	// No count here: the group's stamp that ends the change counts the
	// members added and removed.
	if _, err := w.r.commit(ctx, change{p: w.p, obj: s, send: send}); err != nil {
		return err
	}
	w.written.Add(1)
	return nil
}

// ApplyMembers carries out a request's member operations on group g and
// returns the group as it is afterwards. Pass ops through KnownMembers
// first: then no client mistake can fail half-way.
//
// When members changed, the group object itself is touched too (its
// last-modified annotation, by a merge patch that cannot conflict): that
// one extra write is what moves the group's meta.version, ETag and
// meta.lastModified on a membership change (RFC 7644 §3.14), so a client's
// If-Match against an old member list fails as it must. A request that
// changes nothing writes nothing.
//
// Changes of a group that arrive while another runs on this replica are
// written together, as one batch (memberBatches); a pending group's
// members (its create) are written alone, under its displayName's claim.
func (r *Repository) ApplyMembers(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (*scimv1.ProvisionedGroup, error) {
	if pending(g) {
		stats, _, err := r.applyShards(ctx, p, g, membership.Fold(ops))
		if err != nil {
			return nil, err
		}
		return r.touchGroup(ctx, p, g, stats)
	}
	if membership.Fold(ops).Empty() {
		return g, nil
	}
	k := batchKey{p: p, group: types.NamespacedName{Namespace: g.Namespace, Name: g.Name}, uid: g.UID}
	b, lead := r.memberBatches.join(k, ops)
	if lead {
		// On its own goroutine: the batch may outlive this request.
		go r.runBatch(ctx, k, b, g)
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		// Its operations may still be written with the batch: a request
		// whose client went away is not acknowledged, either way.
		return nil, apierror.ForClient(ctx.Err(), "group membership")
	}
	if b.err != nil {
		return nil, b.err
	}
	if b.group == nil {
		return g, nil // nothing changed
	}
	return b.group.DeepCopy(), nil
}

// runBatch waits for the group's turn, then writes b, all its changes as
// one, and stamps the group once. When the client of the change that
// opened b goes away while it waits, it gives up if b is that change
// alone; otherwise it goes on for the others, within batchTimeout, as it
// does once writing.
func (r *Repository) runBatch(ctx context.Context, k batchKey, b *memberBatch, g *scimv1.ProvisionedGroup) {
	defer close(b.done)
	release, err := r.memberTurns.take(ctx, turnOf(g))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	if err != nil && !r.memberBatches.abandon(k, b) {
		release, err = r.memberTurns.take(ctx, turnOf(g))
	}
	ops := r.memberBatches.seal(k, b)
	if err != nil {
		b.err = apierror.ForClient(err, "group membership")
		return
	}
	stats, written, err := r.writeShards(ctx, k.p, g, membership.Fold(ops))
	release()
	switch {
	case err != nil:
		b.err = err
	case written > 0:
		b.group, b.err = r.touchGroup(ctx, k.p, g, stats)
	}
}

// batchTimeout bounds a batch's run: the turn, the shard writes and their
// retries, and the group's stamp. As long as the SCIM server lets a
// request write its answer (its WriteTimeout).
const batchTimeout = 60 * time.Second

// applyShards writes net into g's shards in g's turn (memberTurns).
func (r *Repository) applyShards(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup, net membership.Net) (membership.Stats, int, error) {
	release, err := r.memberTurns.take(ctx, turnOf(g))
	if err != nil {
		return membership.Stats{}, 0, apierror.ForClient(err, "group membership")
	}
	defer release()
	return r.writeShards(ctx, p, g, net)
}

// writeShards writes net into g's shards, retrying conflicts with changes
// from other replicas: it reports how many shard writes it made. Call it
// in g's turn.
func (r *Repository) writeShards(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup, net membership.Net) (membership.Stats, int, error) {
	var stats membership.Stats
	w := &shardWriter{r: r, p: p}
	for backoff := retry.New(); ; {
		err := r.shards().Apply(ctx, g, net, w, &stats)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			if !backoff.Wait(ctx) {
				return stats, 0, fmt.Errorf("%w: group %s membership kept changing under concurrent updates", ErrUnavailable, g.Name)
			}
			continue
		}
		if err != nil {
			return stats, 0, apierror.ForClient(err, "group membership")
		}
		return stats, int(w.written.Load()), nil
	}
}

// errAbandoned: a pending group was deleted before its members were
// complete (AbandonGroup or the group controller gave it up).
var errAbandoned = errors.New("the group was removed before its members were complete")

// touchGroup stamps the group's last-modified annotation, giving it a new
// resourceVersion, and counts the membership change stats. A pending
// group's create is complete with this write, which is the write under its
// displayName's claim: it is fenced like any other (the caller abandons
// the group on the error). A group deleted in between is returned
// unchanged.
func (r *Repository) touchGroup(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup, stats membership.Stats) (*scimv1.ProvisionedGroup, error) {
	cur := g.DeepCopy()
	c := change{p: p, obj: cur,
		send: func(ctx context.Context, o client.Object) error {
			annotations := map[string]any{AnnotationLastModified: o.GetAnnotations()[AnnotationLastModified]}
			if pending(g) {
				// The members are written: the create is complete, in this one write.
				annotations[scimv1.AnnotationPendingMembers] = nil
			}
			body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
			if err != nil {
				return err
			}
			err = r.Client.Patch(ctx, o, client.RawPatch(types.MergePatchType, body))
			if pending(g) && (apierrors.IsNotFound(err) || (err == nil && !o.GetDeletionTimestamp().IsZero())) {
				return errAbandoned // its create must not be acknowledged
			}
			return err
		},
		counts: []count{{"group members added", stats.Added}, {"group members removed", stats.Removed}}}
	if pending(g) {
		c.name = &nameChange{guard: r.groupKind().guard, to: g.Spec.DisplayName, hold: byEarlierClaim}
	}
	sent, err := r.commit(ctx, c)
	switch {
	case sent && err != nil:
		return nil, err
	case sent:
		return cur, nil
	case errors.Is(err, errAbandoned):
		return nil, fmt.Errorf("%w: group %s was removed before its members were complete", ErrUnavailable, g.Name)
	case apierrors.IsNotFound(err):
		return g, nil
	}
	return nil, apierror.ForClient(err, "group")
}

// errWouldWrite ends a dry run (MembersWouldChange) at its first write.
var errWouldWrite = errors.New("a membership change would write")

// dryRun is a shard writer whose writes do nothing but report
// errWouldWrite.
type dryRun struct{}

func (dryRun) Create(context.Context, *scimv1.GroupMembership) error { return errWouldWrite }
func (dryRun) Update(context.Context, *scimv1.GroupMembership) error { return errWouldWrite }

// MembersWouldChange reports whether ApplyMembers(g, ops) would change the
// membership now: it reads what ApplyMembers reads and writes nothing. A
// request whose If-Match must guard its member changes (the server's
// guardsMembers) uses it so that a no-op keeps the group's version.
func (r *Repository) MembersWouldChange(ctx context.Context, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (bool, error) {
	net := membership.Fold(ops)
	if net.Empty() {
		return false, nil
	}
	var stats membership.Stats
	err := r.shards().Apply(ctx, g, net, dryRun{}, &stats)
	if errors.Is(err, errWouldWrite) {
		return true, nil
	}
	return false, apierror.ForClient(err, "group membership")
}

// CachedMembers returns a group's member ids from the cache. Entra never reads
// members (it excludes them on every group read), so a moment of cache lag
// here costs nothing; a large group is never loaded for Entra.
func (r *Repository) CachedMembers(ctx context.Context, namespace, group string) ([]string, error) {
	ids, _, err := r.CachedMembersWithDisplays(ctx, namespace, group)
	return ids, err
}

// CachedMembersWithDisplays is CachedMembers with the displays clients sent for members
// (id -> display, only for members that have one; nil when none has).
func (r *Repository) CachedMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	ids, displays, err := r.shards().CachedMembers(ctx, namespace, group)
	if err != nil {
		return nil, nil, apierror.ForClient(err, "group membership")
	}
	return ids, displays, nil
}

// LiveMembers returns a group's member ids from the API server, for a GET
// of one group: it must show a membership change made on another replica
// a moment ago (read-your-writes), which the cache may not have yet. It
// costs one GET per 2,000 members and never lists the namespace.
func (r *Repository) LiveMembers(ctx context.Context, namespace, group string) ([]string, error) {
	ids, _, err := r.LiveMembersWithDisplays(ctx, namespace, group)
	return ids, err
}

// LiveMembersWithDisplays is LiveMembers with the displays clients sent
// (see CachedMembersWithDisplays).
func (r *Repository) LiveMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	ids, displays, err := r.shards().LiveMembers(ctx, namespace, group)
	if err != nil {
		return nil, nil, apierror.ForClient(err, "group membership")
	}
	return ids, displays, nil
}

// GroupsOf returns the names of the groups member belongs to, from the
// member index.
func (r *Repository) GroupsOf(_ context.Context, namespace, member string) ([]string, error) {
	groups, err := r.shards().GroupsOf(namespace, member)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return groups, nil
}

// RemoveFromAllGroups takes a deleted user out of every group (the user
// controller calls it before releasing the user). It finds the groups in
// the cache itself, not through the member index (GroupsHolding).
func (r *Repository) RemoveFromAllGroups(ctx context.Context, namespace, member string) error {
	groups, err := r.shards().GroupsHolding(ctx, namespace, member)
	if err != nil {
		return apierror.ForClient(err, "group membership")
	}
	for _, name := range groups {
		var g scimv1.ProvisionedGroup
		if err := r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &g); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return apierror.ForClient(err, "group")
		}
		// A pending group is completed by its creator only: this removal
		// must not complete it (ApplyMembers completes pending groups).
		delete(g.Annotations, scimv1.AnnotationPendingMembers)
		if _, err := r.ApplyMembers(ctx, Principal{Namespace: namespace}, &g, []patch.MemberOp{{Kind: patch.MemberRemove, IDs: []string{member}}}); err != nil {
			return err
		}
	}
	return nil
}

// DisplayNames returns the displayName (else userName) of each member found
// in the cache; missing users are left out. Two strings are read from each
// user, so none is deep-copied (a group may have 100,000 members).
func (r *Repository) DisplayNames(ctx context.Context, namespace string, ids []string) map[string]string {
	out := make(map[string]string, len(ids))
	var u scimv1.ProvisionedUser
	for _, id := range ids {
		if err := r.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: id}, &u, client.UnsafeDisableDeepCopy); err != nil {
			continue
		}
		if u.Spec.DisplayName != "" {
			out[id] = u.Spec.DisplayName
		} else {
			out[id] = u.Spec.UserName
		}
	}
	return out
}

// LastMemberChange is the newest last-modified stamp of the group's shards:
// when the membership last changed through SCIM (for the sync lag).
func (r *Repository) LastMemberChange(ctx context.Context, namespace, group string) time.Time {
	var list scimv1.GroupMembershipList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{IndexShardGroup: group}, client.UnsafeDisableDeepCopy); err != nil {
		return time.Time{}
	}
	var last time.Time
	for i := range list.Items {
		if t, err := time.Parse(time.RFC3339Nano, list.Items[i].Annotations[AnnotationLastModified]); err == nil && t.After(last) {
			last = t
		}
	}
	return last
}
