// Package membership keeps a group's members in GroupMembership shards
// (see ProvisionedGroupSpec for the design): it folds a request's member
// operations into their net effect, decides which shards change, and reads
// members from the cache or live. The writes themselves go through a
// Writer, the repository's write path.
//
// Why a change stays correct when this replica's cache lags: members are
// only ever appended to the group's highest-numbered shard, and never move.
// A full shard is sealed (spec.sealed) before the next one is created, so
// no replica appends to it once a newer one exists.
// So a member the cache does not show yet can only be in the shard the
// cache believes is the last one, or in a newer one. The cache's store is
// one moment of the event history; the Index, which finds a member's
// shards without walking them, speaks only for shards it holds at the
// store's version (relevant). Each change reads those shards live, which
// makes the decision authoritative while its cost stays in proportion to
// the request, not to the group.
package membership

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
)

// IndexShardGroup is the cache's field index of shards by group name
// (registered by the repository).
const IndexShardGroup = "scim.shardGroup"

// parallelShardIO bounds the shards one change reads or rewrites at once.
const parallelShardIO = 8

// ShardName is the name of a group's n-th membership shard.
func ShardName(group string, n int) string { return group + "-" + strconv.Itoa(n) }

func shardIndex(group, name string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, group+"-"))
	return n, err == nil && strings.HasPrefix(name, group+"-")
}

// Writer writes shards: the repository's write path (stamp, write, wait
// for this replica's cache). Errors are the API server's, unchanged: a
// conflict or AlreadyExists means another writer was first.
type Writer interface {
	Create(ctx context.Context, s *scimv1.GroupMembership) error
	Update(ctx context.Context, s *scimv1.GroupMembership) error
}

// Shards reads a tenant's shards.
type Shards struct {
	Cache client.Reader
	Live  client.Reader
	// Index finds the shards holding a member; nil only in repositories
	// built by hand without event handlers (changes then read every shard).
	Index *Index
}

// Stats counts what a membership change wrote.
type Stats struct{ Added, Removed int }

// Net is a request's member operations folded into their outcome
// (patch.FoldMembers).
type Net = patch.MemberNet

// Fold folds ops into their net effect.
func Fold(ops []patch.MemberOp) Net { return patch.FoldMembers(ops) }

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
func appendMembers(s *scimv1.GroupMembership, ids []string, net Net) {
	s.Spec.Members = append(s.Spec.Members, ids...)
	for _, id := range ids {
		setDisplay(s, id, net.Display[id])
	}
}

// Apply carries out net on group g's shards, writing through w and
// counting into stats.
func (sh Shards) Apply(ctx context.Context, g *scimv1.ProvisionedGroup, net Net, w Writer, stats *Stats) error {
	if net.ReplaceAll {
		return sh.replace(ctx, g, net, w, stats)
	}
	return sh.change(ctx, g, net, w, stats)
}

// change adds and removes the ids net names and sets the displays it
// decides, touching only the shards that hold them plus the group's
// newest shard(s).
func (sh Shards) change(ctx context.Context, g *scimv1.ProvisionedGroup, net Net, w Writer, stats *Stats) error {
	shards, tail, err := sh.relevant(ctx, g, net)
	if err != nil {
		return err
	}
	add, removeFrom := plan(shards, net)
	// The shards to rewrite are distinct objects: written at once, a batch
	// that removes members from several shards waits for the slowest
	// write, not for their sum.
	var mu sync.Mutex
	writes, wctx := errgroup.WithContext(ctx)
	writes.SetLimit(parallelShardIO)
	for name, ids := range removeFrom {
		s := shards[name]
		s.Spec.Members = slices.DeleteFunc(s.Spec.Members, func(m string) bool { return ids[m] })
		for id := range ids {
			setDisplay(s, id, "") // a display goes with its member
		}
		writes.Go(func() error {
			if err := w.Update(wctx, s); err != nil {
				return err
			}
			mu.Lock()
			stats.Removed += len(ids)
			mu.Unlock()
			return nil
		})
	}
	if err := writes.Wait(); err != nil {
		return err
	}
	if len(add) == 0 {
		return nil
	}
	next := 0
	if tail != nil {
		if _, ok := removeFrom[tail.Name]; ok {
			// Updated above; re-read for its new resourceVersion.
			if tail, err = sh.liveShard(ctx, g.Namespace, tail.Name); err != nil {
				return err
			}
		}
		if add, err = appendToTail(ctx, tail, add, net, w, stats); err != nil {
			return err
		}
		n, _ := shardIndex(g.Name, tail.Name)
		next = n + 1
	}
	return createShards(ctx, g, next, add, net, w, stats)
}

// relevant reads live the shards that may hold the ids net names: those
// the index shows holding them, those the index holds at another version
// than the cache, the newest shard the cache knows and any newer ones (the
// tail, the newest of them).
//
// The cache (the informer's store) is one moment of the event history,
// the index not always (see Index), so the index speaks only for the
// shards it holds at the cache's version: together they say which shards
// held an id at that moment, and any later append went to the newest
// shard of that moment or a newer one.
func (sh Shards) relevant(ctx context.Context, g *scimv1.ProvisionedGroup, net Net) (map[string]*scimv1.GroupMembership, *scimv1.GroupMembership, error) {
	candidates, indexed := sh.Index.Holding(g.Namespace, g.Name, net.Want)
	var cached scimv1.GroupMembershipList
	if err := sh.Cache.List(ctx, &cached, client.InNamespace(g.Namespace),
		client.MatchingFields{IndexShardGroup: g.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	last := 0
	for i := range cached.Items {
		s := &cached.Items[i]
		if n, ok := shardIndex(g.Name, s.Name); ok && n > last {
			last = n
		}
		if indexed[s.Name] != s.ResourceVersion {
			candidates[s.Name] = true
		}
	}
	shards, err := sh.readLive(ctx, g.Namespace, candidates)
	if err != nil {
		return nil, nil, err
	}
	var tail *scimv1.GroupMembership
	passed := map[string]bool{} // shards read before a newer one was found
	for n := last; ; n++ {
		s, err := sh.liveShard(ctx, g.Namespace, ShardName(g.Name, n))
		if err != nil {
			return nil, nil, err
		}
		if s == nil {
			break
		}
		if tail != nil {
			passed[tail.Name] = true
		}
		shards[s.Name], tail = s, s
	}
	if len(passed) == 0 {
		return shards, tail, nil
	}
	// A shard read before the next one was found may have taken members
	// between that read and the next shard's create (it was the newest
	// then). Read again now, it is complete: nothing is appended to a
	// shard once a newer one exists. Without this, an id appended there by
	// another replica in that moment looked absent and was added to the
	// tail again: one member in two shards, and a removal that took it
	// out of only one of them.
	again, err := sh.readLive(ctx, g.Namespace, passed)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(shards, again)
	return shards, tail, nil
}

// readLive reads the named shards live, up to parallelShardIO at once;
// shards that do not exist are left out.
func (sh Shards) readLive(ctx context.Context, namespace string, names map[string]bool) (map[string]*scimv1.GroupMembership, error) {
	shards := map[string]*scimv1.GroupMembership{}
	var mu sync.Mutex
	reads, rctx := errgroup.WithContext(ctx)
	reads.SetLimit(parallelShardIO)
	for name := range names {
		reads.Go(func() error {
			s, err := sh.liveShard(rctx, namespace, name)
			if s != nil {
				mu.Lock()
				shards[name] = s
				mu.Unlock()
			}
			return err
		})
	}
	if err := reads.Wait(); err != nil {
		return nil, err
	}
	return shards, nil
}

// plan decides, from the shards that may hold them, which ids to add and
// which shards to rewrite: to remove members (the ids to remove, by
// shard), or because a member's display changed (set here already, with
// an empty set of ids).
func plan(shards map[string]*scimv1.GroupMembership, net Net) (add []string, removeFrom map[string]map[string]bool) {
	where := map[string]string{} // member id -> shard holding it
	for _, s := range shards {
		for _, m := range s.Spec.Members {
			if _, asked := net.Want[m]; asked {
				where[m] = s.Name
			}
		}
	}
	removeFrom = map[string]map[string]bool{}
	for id, member := range net.Want {
		shard, present := where[id]
		switch {
		case member && !present:
			add = append(add, id)
		case member && present:
			if d, decided := net.Display[id]; decided && setDisplay(shards[shard], id, d) && removeFrom[shard] == nil {
				removeFrom[shard] = map[string]bool{}
			}
		case !member && present:
			if removeFrom[shard] == nil {
				removeFrom[shard] = map[string]bool{}
			}
			removeFrom[shard][id] = true
		}
	}
	slices.Sort(add) // deterministic shard contents, easier to reason about
	return add, removeFrom
}

// appendToTail appends as many of add as fit to the tail shard and returns
// the rest. When some do not fit, the tail is sealed in the same write (or
// in a write of its own, when none fit): the rest starts the next shard,
// and no replica may append to this one any more. That seal is what makes
// "absent from the tail" safe to act on when the rest goes elsewhere: a
// replica that appended to the tail after this one read it (room made by
// a removal) changed it, and the seal's write conflicts.
func appendToTail(ctx context.Context, tail *scimv1.GroupMembership, add []string, net Net, w Writer, stats *Stats) ([]string, error) {
	if len(add) == 0 || tail.Spec.Sealed {
		return add, nil
	}
	take := min(max(scimv1.MaxMembersPerShard-len(tail.Spec.Members), 0), len(add))
	appendMembers(tail, add[:take], net)
	tail.Spec.Sealed = take < len(add)
	if err := w.Update(ctx, tail); err != nil {
		return nil, err
	}
	stats.Added += take
	return add[take:], nil
}

// createShards writes ids, with the displays net decides, into new shards
// numbered from next on; each but the last is full and created sealed.
// Call it only after the shard before next is sealed (appendToTail).
func createShards(ctx context.Context, g *scimv1.ProvisionedGroup, next int, ids []string, net Net, w Writer, stats *Stats) error {
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
			Spec: scimv1.GroupMembershipSpec{Group: g.Name, Sealed: take < len(ids)},
		}
		appendMembers(s, ids[:take], net)
		if err := w.Create(ctx, s); err != nil {
			return err // AlreadyExists: another replica appended first; the caller retries
		}
		stats.Added += take
		ids, next = ids[take:], next+1
	}
	return nil
}

// replace makes the member list exactly the ids net makes members, with
// the displays net decides: it reads every shard, since the request names
// the whole list anyway.
func (sh Shards) replace(ctx context.Context, g *scimv1.ProvisionedGroup, net Net, w Writer, stats *Stats) error {
	var list scimv1.GroupMembershipList
	if err := sh.Live.List(ctx, &list, client.InNamespace(g.Namespace), client.MatchingLabels{scimv1.LabelGroup: g.Name}); err != nil {
		return err
	}
	present := map[string]bool{}
	next := 0
	var tail *scimv1.GroupMembership
	for i := range list.Items {
		s := &list.Items[i]
		if err := keepOnly(ctx, s, net, present, w, stats); err != nil {
			return err
		}
		if n, ok := shardIndex(g.Name, s.Name); ok && n >= next {
			next, tail = n+1, s
		}
	}
	var add []string
	for id, member := range net.Want {
		if member && !present[id] {
			add = append(add, id)
		}
	}
	slices.Sort(add)
	if tail != nil {
		var err error
		if add, err = appendToTail(ctx, tail, add, net, w, stats); err != nil {
			return err
		}
	}
	return createShards(ctx, g, next, add, net, w, stats)
}

// keepOnly rewrites shard s to hold only the members net wants that no
// earlier shard holds (present, which it extends), with the displays net
// decides.
func keepOnly(ctx context.Context, s *scimv1.GroupMembership, net Net, present map[string]bool, w Writer, stats *Stats) error {
	kept := slices.DeleteFunc(slices.Clone(s.Spec.Members), func(m string) bool { return !net.Want[m] || present[m] })
	changed := false
	if len(s.Spec.Displays) > 0 {
		// A display goes with its member (and one without a member here,
		// which no write leaves, goes too).
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
		if d, decided := net.Display[m]; decided && setDisplay(s, m, d) {
			changed = true
		}
	}
	if len(kept) == len(s.Spec.Members) && !changed {
		return nil
	}
	stats.Removed += len(s.Spec.Members) - len(kept)
	s.Spec.Members = kept
	return w.Update(ctx, s)
}

func (sh Shards) liveShard(ctx context.Context, namespace, name string) (*scimv1.GroupMembership, error) {
	s := &scimv1.GroupMembership{}
	if err := sh.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return s, nil
}

// CachedMembers returns a group's member ids from the cache, with the displays
// clients sent for members (id -> display, only for members that have
// one; nil when none has).
func (sh Shards) CachedMembers(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	var list scimv1.GroupMembershipList
	if err := sh.Cache.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{IndexShardGroup: group}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
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

// LiveMembers is CachedMembers from the API server. Shards are numbered from 0 without
// gaps (members are only appended to the newest shard, and shards go only
// with their group), so reading them by name until the first missing one
// costs one GET per 2,000 members and never lists the namespace.
func (sh Shards) LiveMembers(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	var out []string
	var displays map[string]string
	for n := 0; ; n++ {
		s, err := sh.liveShard(ctx, namespace, ShardName(group, n))
		if err != nil {
			return nil, nil, err
		}
		if s == nil {
			return out, displays, nil
		}
		out = append(out, s.Spec.Members...)
		displays = addDisplays(displays, s)
	}
}

// GroupsOf returns the names of the groups member belongs to, from the
// index: for reads, which may lag a moment.
func (sh Shards) GroupsOf(namespace, member string) ([]string, error) {
	if sh.Index == nil {
		return nil, errNoIndex
	}
	return sh.Index.GroupsOf(namespace, member), nil
}

// GroupsHolding returns the names of the groups whose shards in the cache
// hold member, sorted. It reads every shard of the tenant, with no index,
// so that no moment of an index's catching up (after a relist, or before
// its first list is through) can hide a group: for the removal of a
// deleted user from all its groups, which must not miss one.
func (sh Shards) GroupsHolding(ctx context.Context, namespace, member string) ([]string, error) {
	var list scimv1.GroupMembershipList
	if err := sh.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var out []string
	for i := range list.Items {
		s := &list.Items[i]
		if !slices.Contains(out, s.Spec.Group) && slices.Contains(s.Spec.Members, member) {
			out = append(out, s.Spec.Group)
		}
	}
	slices.Sort(out)
	return out, nil
}

// errNoIndex: a repository built without its event handlers.
var errNoIndex = errors.New("the member index is not installed")
