package membership

import (
	"slices"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
)

// Index finds the shards that hold a member, and each group's newest
// shard. An event handler on the GroupMembership informer keeps it.
//
// It replaces a client-go field index over members, which kept a set and a
// "namespace/id" string per member (about 350 bytes; docs/benchmarks.md):
// here a member is one map entry keyed by the shard's own string, with the
// shards holding it (a user is in few groups).
//
// Both answers come from one moment of the informer's event history, read
// under one lock. That is what change needs from the cache (see the
// package comment): a member the index does not show can only be in the
// newest shard it shows, or a newer one. Two separate cache reads, one
// for the members and one for the newest shard, would not give that.
type Index struct {
	mu      sync.RWMutex
	members map[string]map[string][]shardRef // namespace -> member id -> shards holding it
	shards  map[groupKey][]int               // a group's shard numbers

	// seen is the highest resourceVersion the handler has indexed: what a
	// write of a shard waits for, so that a user's groups read right after
	// it on this replica include the change.
	seen    consistency.HighWater
	signals *consistency.Signals
}

type shardRef struct{ group, name string }

type groupKey struct{ namespace, group string }

// NewIndex returns an empty index that wakes signals after each change.
func NewIndex(signals *consistency.Signals) *Index {
	return &Index{members: map[string]map[string][]shardRef{}, shards: map[groupKey][]int{}, signals: signals}
}

// Handler keeps the index; install it on the GroupMembership informer.
func (x *Index) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.change(nil, obj) },
		UpdateFunc: func(old, obj any) { x.change(old, obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			x.change(obj, nil)
		},
	}
}

func (x *Index) change(oldObj, newObj any) {
	oldS, _ := oldObj.(*scimv1.GroupMembership)
	newS, _ := newObj.(*scimv1.GroupMembership)
	x.mu.Lock()
	if oldS != nil {
		x.forget(oldS, newS)
	}
	if newS != nil {
		x.record(newS)
	}
	x.mu.Unlock()
	latest := newS
	if latest == nil {
		latest = oldS
	}
	if latest == nil {
		return
	}
	x.seen.Observe(latest.ResourceVersion)
	x.signals.Signal(latest)
}

// forget drops what old recorded and next (nil: deleted) no longer holds.
func (x *Index) forget(old, next *scimv1.GroupMembership) {
	ref := shardRef{old.Spec.Group, old.Name}
	var kept map[string]bool // next's members, when they may not include old's
	switch {
	case next == nil || next.Spec.Group != old.Spec.Group:
		x.dropShard(old)
	case isPrefix(old.Spec.Members, next.Spec.Members):
		return // members are appended: nothing to forget (the common case)
	default:
		kept = make(map[string]bool, len(next.Spec.Members))
		for _, m := range next.Spec.Members {
			kept[m] = true
		}
	}
	byMember := x.members[old.Namespace]
	for _, m := range old.Spec.Members {
		if kept[m] {
			continue
		}
		refs := slices.DeleteFunc(byMember[m], func(r shardRef) bool { return r == ref })
		if len(refs) == 0 {
			delete(byMember, m)
		} else {
			byMember[m] = refs
		}
	}
	if len(byMember) == 0 {
		delete(x.members, old.Namespace) // a tenant that left keeps no map
	}
}

// record adds s's members and its number. Each entry is (re)keyed by the
// newest object's strings, so the index keeps no older copy of them alive.
func (x *Index) record(s *scimv1.GroupMembership) {
	ref := shardRef{s.Spec.Group, s.Name}
	byMember := x.members[s.Namespace]
	if byMember == nil && len(s.Spec.Members) > 0 {
		byMember = map[string][]shardRef{}
		x.members[s.Namespace] = byMember
	}
	for _, m := range s.Spec.Members {
		refs := byMember[m]
		if i := slices.Index(refs, ref); i >= 0 {
			refs[i] = ref
		} else {
			refs = append(refs, ref)
		}
		byMember[m] = refs
	}
	if n, ok := shardIndex(s.Spec.Group, s.Name); ok {
		k := groupKey{s.Namespace, s.Spec.Group}
		if !slices.Contains(x.shards[k], n) {
			x.shards[k] = append(x.shards[k], n)
		}
	}
}

func (x *Index) dropShard(s *scimv1.GroupMembership) {
	n, ok := shardIndex(s.Spec.Group, s.Name)
	if !ok {
		return
	}
	k := groupKey{s.Namespace, s.Spec.Group}
	if rest := slices.DeleteFunc(x.shards[k], func(i int) bool { return i == n }); len(rest) > 0 {
		x.shards[k] = rest
	} else {
		delete(x.shards, k)
	}
}

func isPrefix(prefix, s []string) bool {
	return len(prefix) <= len(s) && slices.Equal(prefix, s[:len(prefix)])
}

// Holding returns the names of group's shards that hold any of ids, and
// the number of the group's newest shard (0 when it has none), both as
// of the same event. A nil index has seen no event: it names no shard.
func (x *Index) Holding(namespace, group string, ids map[string]bool) (shards map[string]bool, last int) {
	shards = map[string]bool{}
	if x == nil {
		return shards, 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	byMember := x.members[namespace]
	for id := range ids {
		for _, r := range byMember[id] {
			if r.group == group {
				shards[r.name] = true
			}
		}
	}
	for _, n := range x.shards[groupKey{namespace, group}] {
		last = max(last, n)
	}
	return shards, last
}

// GroupsOf returns the names of the groups member is in, sorted.
func (x *Index) GroupsOf(namespace, member string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for _, r := range x.members[namespace][member] {
		if !slices.Contains(out, r.group) {
			out = append(out, r.group)
		}
	}
	slices.Sort(out)
	return out
}

// Seen reports whether the index holds every change up to resourceVersion
// rv (a malformed rv counts as seen: it cannot be waited for).
func (x *Index) Seen(rv string) bool { return x.seen.Seen(rv) }
