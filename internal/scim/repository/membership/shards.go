package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Membership shards (see ProvisionedGroupSpec for the design).
//
// Why a change stays correct when this replica's cache lags: members are
// only ever appended to the group's highest-numbered shard, and never move.
// So a member this cache does not know about yet can only be in a shard the
// cache shows for it, or in the shard the cache believes is the last one,
// or in a newer one. Each change reads exactly those shards live, which
// makes the decision authoritative while its cost stays in proportion to
// the request, not to the group.

// ShardName is the name of a group's n-th membership shard.
func ShardName(group string, n int) string { return group + "-" + strconv.Itoa(n) }

func shardIndex(group, name string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, group+"-"))
	return n, err == nil && strings.HasPrefix(name, group+"-")
}

// netMembers folds a request's member operations, in order, into the final
// outcome: which ids must be members, which must not, whether everyone
// else must go (replace or clear), and the displays the request decides.
type netMembers struct {
	want       map[string]bool // id -> member afterwards?
	replaceAll bool
	// display holds the display of the members whose display the request
	// decides: those it adds with a display, and every member of a
	// replace ("" = none). Members it adds without one keep theirs.
	display map[string]string
}

func foldMemberOps(ops []patch.MemberOp) netMembers {
	n := netMembers{want: map[string]bool{}, display: map[string]string{}}
	for _, op := range ops {
		switch op.Kind {
		case patch.MemberAdd:
			for _, id := range op.IDs {
				n.want[id] = true
				if d, ok := op.Displays[id]; ok {
					n.display[id] = d
				}
			}
		case patch.MemberRemove:
			for _, id := range op.IDs {
				n.want[id] = false
				delete(n.display, id)
			}
		case patch.MemberClear:
			n.replaceAll, n.want, n.display = true, map[string]bool{}, map[string]string{}
		case patch.MemberReplace:
			n.replaceAll, n.want, n.display = true, map[string]bool{}, map[string]string{}
			for _, id := range op.IDs {
				n.want[id] = true
				n.display[id] = op.Displays[id]
			}
		}
	}
	return n
}

// setDisplay records d as member id's display in shard s ("" removes it)
// and reports whether that changed the shard.
func setDisplay(s *scimv1.GroupMembership, id, d string) bool {
	old, had := s.Spec.Displays[id]
	switch {
	case d == "" && !had, d != "" && had && string(old) == d:
		return false
	case d == "":
		delete(s.Spec.Displays, id)
		if len(s.Spec.Displays) == 0 {
			s.Spec.Displays = nil
		}
	default:
		if s.Spec.Displays == nil {
			s.Spec.Displays = map[string]scimv1.MemberDisplay{}
		}
		s.Spec.Displays[id] = scimv1.MemberDisplay(d)
	}
	return true
}

// appendMembers appends ids to shard s with the displays net decides.
func appendMembers(s *scimv1.GroupMembership, ids []string, net netMembers) {
	s.Spec.Members = append(s.Spec.Members, ids...)
	for _, id := range ids {
		setDisplay(s, id, net.display[id])
	}
}

// memberStats counts what a membership change wrote.
type memberStats struct{ added, removed int }

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
func (r *Repository) ApplyMembers(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (*scimv1.ProvisionedGroup, error) {
	net := foldMemberOps(ops)
	if len(net.want) == 0 && !net.replaceAll && !pending(g) {
		return g, nil
	}
	var stats memberStats
	var written []client.Object
	for retry := newRetrier(); ; {
		var err error
		before := len(written)
		if net.replaceAll {
			err = r.replaceMembers(ctx, g, net, &written, &stats)
		} else {
			err = r.changeMembers(ctx, g, net, &written, &stats)
		}
		for _, obj := range written[before:] {
			r.awaitCache(ctx, obj, false)
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			if !retry.wait(ctx) {
				return nil, fmt.Errorf("%w: group %s membership kept changing under concurrent updates", ErrUnavailable, g.Name)
			}
			continue
		}
		if err != nil {
			return nil, apiError(err, "group membership")
		}
		if len(written) == 0 && !pending(g) {
			return g, nil
		}
		touched, err := r.touchGroup(ctx, g)
		if err != nil {
			return nil, err
		}
		if pending(g) {
			// Completing the create is the write under the displayName's
			// claim: fence it like any other (claims.go). The caller
			// abandons the group on this error.
			ok, err := r.stillClaimed(ctx, g.Namespace, r.groupKind().uniq, g.Spec.DisplayName, g.Name)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, scimerr.Uniqueness("displayName %q is already in use", g.Spec.DisplayName)
			}
		}
		r.Activity.add(p, "group members added", stats.added)
		r.Activity.add(p, "group members removed", stats.removed)
		return touched, nil
	}
}

// errWouldWrite ends a dry run (MembersWouldChange) at its first write.
var errWouldWrite = errors.New("a membership change would write")

// dryRun is a client whose writes do nothing but report errWouldWrite.
type dryRun struct{ client.Client }

func (dryRun) Create(context.Context, client.Object, ...client.CreateOption) error {
	return errWouldWrite
}

func (dryRun) Update(context.Context, client.Object, ...client.UpdateOption) error {
	return errWouldWrite
}

func (dryRun) Patch(context.Context, client.Object, client.Patch, ...client.PatchOption) error {
	return errWouldWrite
}

func (dryRun) Delete(context.Context, client.Object, ...client.DeleteOption) error {
	return errWouldWrite
}

// MembersWouldChange reports whether ApplyMembers(g, ops) would change the
// membership now: it reads what ApplyMembers reads and writes nothing. A
// request whose If-Match must guard its member changes (the server's
// guardsMembers) uses it so that a no-op keeps the group's version.
func (r *Repository) MembersWouldChange(ctx context.Context, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (bool, error) {
	net := foldMemberOps(ops)
	if len(net.want) == 0 && !net.replaceAll {
		return false, nil
	}
	dry := *r
	dry.Client = dryRun{r.Client}
	var written []client.Object
	var stats memberStats
	var err error
	if net.replaceAll {
		err = dry.replaceMembers(ctx, g, net, &written, &stats)
	} else {
		err = dry.changeMembers(ctx, g, net, &written, &stats)
	}
	if errors.Is(err, errWouldWrite) {
		return true, nil
	}
	return false, apiError(err, "group membership")
}

// touchGroup stamps the group's last-modified annotation, giving it a new
// resourceVersion. A group deleted in between is returned unchanged.
func (r *Repository) touchGroup(ctx context.Context, g *scimv1.ProvisionedGroup) (*scimv1.ProvisionedGroup, error) {
	cur := g.DeepCopy()
	annotations := map[string]any{AnnotationLastModified: r.now().UTC().Format(time.RFC3339Nano)}
	if pending(g) {
		// The members are written: the create is complete, in this one write.
		annotations[scimv1.AnnotationPendingMembers] = nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return nil, err
	}
	err = r.Client.Patch(ctx, cur, client.RawPatch(types.MergePatchType, body))
	if pending(g) && (apierrors.IsNotFound(err) || (err == nil && !cur.DeletionTimestamp.IsZero())) {
		// A pending group deleted meanwhile was abandoned: its create
		// must not be acknowledged.
		return nil, fmt.Errorf("%w: group %s was removed before its members were complete", ErrUnavailable, g.Name)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return g, nil
		}
		return nil, apiError(err, "group")
	}
	r.awaitCache(ctx, cur, false)
	return cur, nil
}

// changeMembers adds and removes the given ids and sets the displays net
// decides, touching only the shards that hold them plus the group's newest
// shard(s).
func (r *Repository) changeMembers(ctx context.Context, g *scimv1.ProvisionedGroup, net netMembers, written *[]client.Object, stats *memberStats) error {
	want := net.want
	candidates := map[string]bool{}
	for id := range want {
		var list scimv1.GroupMembershipList
		// The shards of every group holding id; a user is in few groups,
		// and one index over members (not one per group and member) keeps
		// the cache small: informer index entries dominate its memory.
		if err := r.Cache.List(ctx, &list, client.InNamespace(g.Namespace),
			client.MatchingFields{IndexMemberGroups: id}, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		for i := range list.Items {
			if list.Items[i].Spec.Group == g.Name {
				candidates[list.Items[i].Name] = true
			}
		}
	}
	last, err := r.cachedLastShard(ctx, g)
	if err != nil {
		return err
	}
	shards := map[string]*scimv1.GroupMembership{}
	for name := range candidates {
		s, err := r.liveShard(ctx, g.Namespace, name)
		if err != nil {
			return err
		}
		if s != nil {
			shards[name] = s
		}
	}
	// The tail: the last shard the cache knows and any newer ones.
	var tail *scimv1.GroupMembership
	for n := last; ; n++ {
		s, err := r.liveShard(ctx, g.Namespace, ShardName(g.Name, n))
		if err != nil {
			return err
		}
		if s == nil {
			break
		}
		shards[s.Name], tail = s, s
	}

	where := map[string]string{} // member id -> shard holding it
	for _, s := range shards {
		for _, m := range s.Spec.Members {
			if _, asked := want[m]; asked {
				where[m] = s.Name
			}
		}
	}
	removeFrom := map[string]map[string]bool{}
	redisplayed := map[string]bool{} // shards whose displays changed
	var add []string
	for id, member := range want {
		shard, present := where[id]
		switch {
		case member && !present:
			add = append(add, id)
		case member && present:
			if d, decided := net.display[id]; decided && setDisplay(shards[shard], id, d) {
				redisplayed[shard] = true
			}
		case !member && present:
			if removeFrom[shard] == nil {
				removeFrom[shard] = map[string]bool{}
			}
			removeFrom[shard][id] = true
		}
	}
	slices.Sort(add) // deterministic shard contents, easier to reason about
	for name := range redisplayed {
		if _, both := removeFrom[name]; !both {
			removeFrom[name] = map[string]bool{}
		}
	}
	for name, ids := range removeFrom {
		s := shards[name]
		s.Spec.Members = slices.DeleteFunc(s.Spec.Members, func(m string) bool { return ids[m] })
		for id := range ids {
			setDisplay(s, id, "") // a display goes with its member
		}
		r.touch(s)
		if err := r.Client.Update(ctx, s); err != nil {
			return err
		}
		*written = append(*written, s)
		stats.removed += len(ids)
	}
	if len(add) == 0 {
		return nil
	}
	next := 0
	if tail != nil {
		if _, ok := removeFrom[tail.Name]; ok {
			// Updated above; re-read for its new resourceVersion.
			if tail, err = r.liveShard(ctx, g.Namespace, tail.Name); err != nil {
				return err
			}
		}
		room := scimv1.MaxMembersPerShard - len(tail.Spec.Members)
		if room > 0 {
			take := min(room, len(add))
			appendMembers(tail, add[:take], net)
			r.touch(tail)
			if err := r.Client.Update(ctx, tail); err != nil {
				return err
			}
			*written = append(*written, tail)
			stats.added += take
			add = add[take:]
		}
		n, _ := shardIndex(g.Name, tail.Name)
		next = n + 1
	}
	return r.createShards(ctx, g, next, add, net, written, stats)
}

// createShards writes ids, with the displays net decides, into new shards
// numbered from next on.
func (r *Repository) createShards(ctx context.Context, g *scimv1.ProvisionedGroup, next int, ids []string, net netMembers, written *[]client.Object, stats *memberStats) error {
	for len(ids) > 0 {
		take := min(scimv1.MaxMembersPerShard, len(ids))
		s := &scimv1.GroupMembership{
			ObjectMeta: metav1.ObjectMeta{
				Name: ShardName(g.Name, next), Namespace: g.Namespace,
				Labels: map[string]string{scimv1.LabelGroup: g.Name},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: scimv1.GroupVersion.String(), Kind: "ProvisionedGroup",
					Name: g.Name, UID: g.UID, BlockOwnerDeletion: ptr.To(false),
				}},
			},
			Spec: scimv1.GroupMembershipSpec{Group: g.Name},
		}
		appendMembers(s, ids[:take], net)
		r.touch(s)
		if err := r.Client.Create(ctx, s); err != nil {
			return err // AlreadyExists: another replica appended first; the caller retries
		}
		*written = append(*written, s)
		stats.added += take
		ids, next = ids[take:], next+1
	}
	return nil
}

// replaceMembers makes the member list exactly net.want (ids mapped to
// true), with the displays net decides: it reads every shard, since the
// request names the whole list anyway.
func (r *Repository) replaceMembers(ctx context.Context, g *scimv1.ProvisionedGroup, net netMembers, written *[]client.Object, stats *memberStats) error {
	want := net.want
	var list scimv1.GroupMembershipList
	if err := r.Live.List(ctx, &list, client.InNamespace(g.Namespace), client.MatchingLabels{scimv1.LabelGroup: g.Name}); err != nil {
		return err
	}
	present := map[string]bool{}
	next := 0
	var tail *scimv1.GroupMembership
	for i := range list.Items {
		s := &list.Items[i]
		kept := slices.DeleteFunc(slices.Clone(s.Spec.Members), func(m string) bool { return !want[m] || present[m] })
		changed := false
		if len(s.Spec.Displays) > 0 {
			// A display goes with its member (and one without a member
			// here, which no write leaves, goes too).
			inKept := make(map[string]bool, len(kept))
			for _, m := range kept {
				inKept[m] = true
			}
			for m := range s.Spec.Displays {
				if !inKept[m] {
					changed = setDisplay(s, m, "") || changed
				}
			}
		}
		for _, m := range kept {
			present[m] = true
			if d, decided := net.display[m]; decided && setDisplay(s, m, d) {
				changed = true
			}
		}
		if len(kept) != len(s.Spec.Members) || changed {
			stats.removed += len(s.Spec.Members) - len(kept)
			s.Spec.Members = kept
			r.touch(s)
			if err := r.Client.Update(ctx, s); err != nil {
				return err
			}
			*written = append(*written, s)
		}
		if n, ok := shardIndex(g.Name, s.Name); ok && n >= next {
			next, tail = n+1, s
		}
	}
	var add []string
	for id, member := range want {
		if member && !present[id] {
			add = append(add, id)
		}
	}
	slices.Sort(add)
	if tail != nil && len(add) > 0 {
		if room := scimv1.MaxMembersPerShard - len(tail.Spec.Members); room > 0 {
			take := min(room, len(add))
			appendMembers(tail, add[:take], net)
			r.touch(tail)
			if err := r.Client.Update(ctx, tail); err != nil {
				return err
			}
			*written = append(*written, tail)
			stats.added += take
			add = add[take:]
		}
	}
	return r.createShards(ctx, g, next, add, net, written, stats)
}

func (r *Repository) cachedLastShard(ctx context.Context, g *scimv1.ProvisionedGroup) (int, error) {
	var list scimv1.GroupMembershipList
	if err := r.Cache.List(ctx, &list, client.InNamespace(g.Namespace),
		client.MatchingFields{IndexShardGroup: g.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	last := 0
	for i := range list.Items {
		if n, ok := shardIndex(g.Name, list.Items[i].Name); ok && n > last {
			last = n
		}
	}
	return last, nil
}

func (r *Repository) liveShard(ctx context.Context, namespace, name string) (*scimv1.GroupMembership, error) {
	s := &scimv1.GroupMembership{}
	if err := r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return s, nil
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
	var list scimv1.GroupMembershipList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{IndexShardGroup: group}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, apiError(err, "group membership")
	}
	slices.SortFunc(list.Items, func(a, b scimv1.GroupMembership) int {
		x, _ := shardIndex(group, a.Name)
		y, _ := shardIndex(group, b.Name)
		return x - y
	})
	var out []string
	var displays map[string]string
	for i := range list.Items {
		out = append(out, list.Items[i].Spec.Members...)
		displays = addDisplays(displays, &list.Items[i])
	}
	return out, displays, nil
}

// addDisplays adds the displays of shard s to displays.
func addDisplays(displays map[string]string, s *scimv1.GroupMembership) map[string]string {
	for id, d := range s.Spec.Displays {
		if displays == nil {
			displays = map[string]string{}
		}
		displays[id] = string(d)
	}
	return displays
}

// LiveMembers returns a group's member ids from the API server, for a GET
// of one group: it must show a membership change made on another replica
// a moment ago (read-your-writes), which the cache may not have yet.
// Shards are numbered from 0 without gaps (members are only appended to
// the newest shard, and shards go only with their group), so reading them
// by name until the first missing one costs one GET per 2,000 members and
// never lists the namespace.
func (r *Repository) LiveMembers(ctx context.Context, namespace, group string) ([]string, error) {
	ids, _, err := r.LiveMembersWithDisplays(ctx, namespace, group)
	return ids, err
}

// LiveMembersWithDisplays is LiveMembers with the displays clients sent
// (see MembersWithDisplays).
func (r *Repository) LiveMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	var out []string
	var displays map[string]string
	for n := 0; ; n++ {
		s, err := r.liveShard(ctx, namespace, ShardName(group, n))
		if err != nil {
			return nil, nil, apiError(err, "group membership")
		}
		if s == nil {
			return out, displays, nil
		}
		out = append(out, s.Spec.Members...)
		displays = addDisplays(displays, s)
	}
}

// GroupsOf returns the names of the groups member belongs to, from the cache.
func (r *Repository) GroupsOf(ctx context.Context, namespace, member string) ([]string, error) {
	var list scimv1.GroupMembershipList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{IndexMemberGroups: member}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, apiError(err, "group membership")
	}
	var out []string
	for i := range list.Items {
		if g := list.Items[i].Spec.Group; !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RemoveFromAllGroups takes a deleted user out of every group (the user
// controller calls it before releasing the user).
func (r *Repository) RemoveFromAllGroups(ctx context.Context, namespace, member string) error {
	groups, err := r.GroupsOf(ctx, namespace, member)
	if err != nil {
		return err
	}
	for _, name := range groups {
		var g scimv1.ProvisionedGroup
		if err := r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &g); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return apiError(err, "group")
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
