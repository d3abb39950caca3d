package membership_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
)

func shard(ns, group string, n, rv int, members ...string) *scimv1.GroupMembership {
	return &scimv1.GroupMembership{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: membership.ShardName(group, n), ResourceVersion: fmt.Sprint(rv)},
		Spec:       scimv1.GroupMembershipSpec{Group: group, Members: members},
	}
}

// TestIndexFollowsEvents drives the index with random informer events
// (creates, appends, removals, deletes, deletes seen only after a relist)
// and after each compares both of its answers with the shards themselves.
func TestIndexFollowsEvents(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	x := membership.NewIndex(consistency.NewSignals())
	h := x.Handler()
	// Group names that are prefixes of each other ("g" and "g-1") and two
	// tenants with the same names: none may be mistaken for the other.
	namespaces, groups := []string{"t1", "t2"}, []string{"g", "g-1", "h"}
	live := map[string]*scimv1.GroupMembership{} // namespace/name -> shard
	next := map[string]int{}                     // namespace/group -> next shard number
	rv := 1
	member := func() string { return fmt.Sprintf("u%d", rng.IntN(12)) }
	for step := range 2000 {
		ns, g := namespaces[rng.IntN(2)], groups[rng.IntN(3)]
		var mine []*scimv1.GroupMembership
		for _, s := range live {
			if s.Namespace == ns && s.Spec.Group == g {
				mine = append(mine, s)
			}
		}
		rv++
		switch op := rng.IntN(10); {
		case op < 3 || len(mine) == 0: // a new shard
			n := next[ns+"/"+g]
			next[ns+"/"+g] = n + 1
			s := shard(ns, g, n, rv, member(), member())
			live[ns+"/"+s.Name] = s
			h.OnAdd(s, false)
		case op < 6: // members appended
			old := mine[rng.IntN(len(mine))]
			s := old.DeepCopy()
			s.ResourceVersion = fmt.Sprint(rv)
			s.Spec.Members = append(s.Spec.Members, member(), member())
			live[ns+"/"+s.Name] = s
			h.OnUpdate(old, s)
		case op < 9: // members removed
			old := mine[rng.IntN(len(mine))]
			s := old.DeepCopy()
			s.ResourceVersion = fmt.Sprint(rv)
			gone := member()
			s.Spec.Members = slices.DeleteFunc(s.Spec.Members, func(m string) bool { return m == gone || rng.IntN(4) == 0 })
			live[ns+"/"+s.Name] = s
			h.OnUpdate(old, s)
		default: // deleted, sometimes seen only after a relist
			old := mine[rng.IntN(len(mine))].DeepCopy()
			old.ResourceVersion = fmt.Sprint(rv) // a deletion's event carries its own version
			delete(live, ns+"/"+old.Name)
			if rng.IntN(2) == 0 {
				h.OnDelete(old)
			} else {
				h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: ns + "/" + old.Name, Obj: old})
			}
		}
		for _, sh := range live {
			if !x.Holds(sh, sh.ResourceVersion) {
				t.Fatalf("step %d: the index does not hold %s/%s at %s", step, sh.Namespace, sh.Name, sh.ResourceVersion)
			}
		}
		checkIndex(t, step, x, live, namespaces, groups, member)
	}
}

// checkIndex compares the index's answers with the shards in live.
func checkIndex(t *testing.T, step int, x *membership.Index, live map[string]*scimv1.GroupMembership,
	namespaces, groups []string, member func() string) {
	t.Helper()
	for _, ns := range namespaces {
		for i := range 12 {
			m := fmt.Sprintf("u%d", i)
			var want []string
			for _, s := range live {
				if s.Namespace == ns && slices.Contains(s.Spec.Members, m) && !slices.Contains(want, s.Spec.Group) {
					want = append(want, s.Spec.Group)
				}
			}
			slices.Sort(want)
			if got := x.GroupsOf(ns, m); !slices.Equal(got, want) {
				t.Fatalf("step %d: GroupsOf(%s, %s) = %v, want %v", step, ns, m, got, want)
			}
		}
		for _, g := range groups {
			ids := map[string]bool{member(): true, member(): false}
			wantShards, wantVersions := map[string]bool{}, map[string]string{}
			for _, s := range live {
				if s.Namespace != ns || s.Spec.Group != g {
					continue
				}
				wantVersions[s.Name] = s.ResourceVersion
				for id := range ids {
					if slices.Contains(s.Spec.Members, id) {
						wantShards[s.Name] = true
					}
				}
			}
			gotShards, gotVersions := x.Holding(ns, g, ids)
			if !maps.Equal(gotShards, wantShards) || !maps.Equal(gotVersions, wantVersions) {
				t.Fatalf("step %d: Holding(%s, %s, %v) = %v, %v; want %v, %v", step, ns, g, ids, gotShards, gotVersions, wantShards, wantVersions)
			}
		}
	}
}

// TestNilIndexHasSeenNothing: a repository built without handlers has a
// nil index, which names no shard and holds no version, so a change reads
// every shard live.
func TestNilIndexHasSeenNothing(t *testing.T) {
	var x *membership.Index
	shards, versions := x.Holding("t1", "g", map[string]bool{"u1": true})
	if len(shards) != 0 || len(versions) != 0 {
		t.Errorf("nil index: %v, %v; want nothing", shards, versions)
	}
}

var keptShards []*scimv1.GroupMembership

// TestIndexHoldsLittlePerMember fills one group of 100,000 members the way
// Entra does, 100 members per PATCH, each update a newly decoded shard, and
// measures what the index adds to the shards the cache holds anyway.
// Measured when written: 95 bytes per member; client-go's field index over
// members, measured the same way, held about 340. Keyed by the first
// decoded copy of each id instead of the newest, it held 141: the old
// copies stay alive.
func TestIndexHoldsLittlePerMember(t *testing.T) {
	const members, perPatch = 100000, 100
	x := membership.NewIndex(consistency.NewSignals())
	h := x.Handler()
	keptShards = nil
	var cur *scimv1.GroupMembership
	for i := 0; i < members; i += perPatch {
		n := i / scimv1.MaxMembersPerShard
		var ids []string
		if cur != nil && cur.Name == membership.ShardName("ffe0c1a2-9b6e-4d1c-8a51-5d2f0e7a3b41", n) {
			for _, m := range cur.Spec.Members {
				ids = append(ids, strings.Clone(m)) // a decode makes new strings
			}
		}
		for j := i; j < i+perPatch; j++ {
			ids = append(ids, fmt.Sprintf("%08d-f8aa-8295-b1ec-ea324d8f4510", j))
		}
		next := shard("bench-cycle", "ffe0c1a2-9b6e-4d1c-8a51-5d2f0e7a3b41", n, i+2, ids...)
		if cur != nil && cur.Name == next.Name {
			h.OnUpdate(cur, next)
		} else {
			if cur != nil {
				keptShards = append(keptShards, cur)
			}
			h.OnAdd(next, false)
		}
		cur = next
	}
	keptShards = append(keptShards, cur)
	if got := x.GroupsOf("bench-cycle", "00000007-f8aa-8295-b1ec-ea324d8f4510"); len(got) != 1 {
		t.Fatalf("GroupsOf: %v", got)
	}
	withIndex := heapAfterGC()
	runtime.KeepAlive(x)
	x, h = nil, nil
	perMember := float64(withIndex-heapAfterGC()) / members
	t.Logf("%.0f bytes per member", perMember)
	if perMember > 120 {
		t.Errorf("the index holds %.0f bytes per member, want at most 120", perMember)
	}
	runtime.KeepAlive(keptShards)
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
