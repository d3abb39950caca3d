package membership

import (
	"maps"
	"slices"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
)

// Index finds the shards that hold a member. An event handler on the
// GroupMembership informer keeps it.
//
// It replaces a client-go field index over members, which kept a set and a
// "namespace/id" string per member (about 350 bytes; docs/benchmarks.md):
// here a member is one map entry keyed by the shard's own string, with the
// shards holding it (a user is in few groups).
//
// Unlike the informer's store, the index is not one moment of the event
// history: its handler runs after the store changed, and after a relist
// it is handed the objects one by one, in name order ("g-10" before
// "g-9"). So it records the resourceVersion it holds of each shard, and a
// reader that needs a consistent view compares those with the store
// (Shards.relevant): a shard whose version matches is exactly what the
// store holds; any other is read live.
type Index struct {
	mu      sync.RWMutex
	members map[string]map[string][]shardRef // namespace -> member id -> shards holding it
	// versions holds the resourceVersion recorded of each shard, by group.
	versions map[groupKey]map[string]string
	signals  *consistency.Signals
}

type shardRef struct{ group, name string }

type groupKey struct{ namespace, group string }

// NewIndex returns an empty index that wakes signals after each change.
func NewIndex(signals *consistency.Signals) *Index {
	return &Index{members: map[string]map[string][]shardRef{}, versions: map[groupKey]map[string]string{}, signals: signals}
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
	if newS != nil {
		x.signals.Signal(newS)
	} else if oldS != nil {
		x.signals.Signal(oldS)
	}
}

// forget drops what old recorded and next (nil: deleted) no longer holds.
func (x *Index) forget(old, next *scimv1.GroupMembership) {
	ref := shardRef{old.Spec.Group, old.Name}
	var kept map[string]bool // next's members, when they may not include old's
	switch {
	case next == nil || next.Spec.Group != old.Spec.Group:
		x.dropVersion(old)
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
	k := groupKey{s.Namespace, s.Spec.Group}
	if x.versions[k] == nil {
		x.versions[k] = map[string]string{}
	}
	x.versions[k][s.Name] = s.ResourceVersion
}

func (x *Index) dropVersion(s *scimv1.GroupMembership) {
	k := groupKey{s.Namespace, s.Spec.Group}
	delete(x.versions[k], s.Name)
	if len(x.versions[k]) == 0 {
		delete(x.versions, k)
	}
}

func isPrefix(prefix, s []string) bool {
	return len(prefix) <= len(s) && slices.Equal(prefix, s[:len(prefix)])
}

// Holding returns the names of group's shards that hold any of ids, and
// the resourceVersion the index holds of each of the group's shards: what
// it says of a shard is true of that version. A nil index has seen no
// event: it names no shard.
func (x *Index) Holding(namespace, group string, ids map[string]bool) (shards map[string]bool, versions map[string]string) {
	shards = map[string]bool{}
	if x == nil {
		return shards, nil
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
	return shards, maps.Clone(x.versions[groupKey{namespace, group}])
}

// GroupsOf returns the names of the groups member is in, sorted. Right
// after a relist it may miss a group for a moment: for reads only.
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

// Holds reports whether the index holds shard s at (at least)
// resourceVersion rv, so that GroupsOf answers with it: what a write of a
// shard waits for.
func (x *Index) Holds(s *scimv1.GroupMembership, rv string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	have, ok := x.versions[groupKey{s.Namespace, s.Spec.Group}][s.Name]
	return ok && consistency.Reached(have, rv)
}
