package model

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

// problem is one way the end state differs from what the client was
// told. converging problems may still go away while the controllers catch
// up (the database rows, members of deleted users, left-over objects);
// the others cannot change any more once the requests stopped.
type problem struct {
	inv        string
	refs       []string
	msg        string
	converging bool
	dedup      string // reported once per key; "" for once per message
}

// state is the API server's view of the tenant.
type state struct {
	users   map[string]*scimv1.ProvisionedUser
	groups  map[string]*scimv1.ProvisionedGroup
	members map[string]map[string]bool // group -> member ids, from the shards
	// twice lists, per group, the member ids its shards hold more than
	// once: a member held twice is removed from one shard only.
	twice map[string][]string
}

func readState(ctx context.Context, ns string) (*state, error) {
	var users scimv1.ProvisionedUserList
	var groups scimv1.ProvisionedGroupList
	var shards scimv1.GroupMembershipList
	for _, l := range []client.ObjectList{&users, &groups, &shards} {
		if err := env.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
	}
	s := &state{users: map[string]*scimv1.ProvisionedUser{}, groups: map[string]*scimv1.ProvisionedGroup{},
		members: map[string]map[string]bool{}, twice: map[string][]string{}}
	for i := range users.Items {
		s.users[users.Items[i].Name] = &users.Items[i]
	}
	for i := range groups.Items {
		s.groups[groups.Items[i].Name] = &groups.Items[i]
	}
	for _, sh := range shards.Items {
		if s.members[sh.Spec.Group] == nil {
			s.members[sh.Spec.Group] = map[string]bool{}
		}
		for _, id := range sh.Spec.Members {
			if s.members[sh.Spec.Group][id] {
				s.twice[sh.Spec.Group] = append(s.twice[sh.Spec.Group], id)
			}
			s.members[sh.Spec.Group][id] = true
		}
	}
	return s, nil
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

func pending(g *scimv1.ProvisionedGroup) bool {
	_, ok := g.Annotations[scimv1.AnnotationPendingMembers]
	return ok
}

// problems compares the model, the API server and the database.
func (m *model) problems(ctx context.Context, c *cluster) ([]problem, error) {
	s, err := readState(ctx, c.ns)
	if err != nil {
		return nil, err
	}
	k := &checker{ctx: ctx, c: c, m: m, s: s}
	k.snapshot()
	for _, step := range []func() error{k.toldUsers, k.untoldUsers, k.toldGroups, k.untoldGroups, k.heldOnce} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return k.out, nil
}

// checker holds one comparison: a copy of the model taken under its lock,
// the API server's state, and the problems found so far.
type checker struct {
	ctx    context.Context
	c      *cluster
	m      *model
	s      *state
	users  []mUser
	groups []mGroup
	maybe  map[string]bool
	out    []problem
}

func (k *checker) add(inv string, converging bool, refs []string, format string, args ...any) {
	k.out = append(k.out, problem{inv: inv, refs: refs, msg: fmt.Sprintf(format, args...), converging: converging})
}

// snapshot copies what the model holds, so that the checks run unlocked.
func (k *checker) snapshot() {
	m := k.m
	m.mu.Lock()
	defer m.mu.Unlock()
	k.users = make([]mUser, 0, len(m.users))
	for _, u := range m.users {
		k.users = append(k.users, *u)
	}
	k.groups = make([]mGroup, 0, len(m.groups))
	for _, g := range m.groups {
		cp := *g
		cp.members = maps.Clone(g.members)
		k.groups = append(k.groups, cp)
	}
	k.maybe = maps.Clone(m.maybe)
}

// heldOnce: a group's shards hold each member once (I5: a removal
// answered 204 takes a member out of one shard).
func (k *checker) heldOnce() error {
	for g, ids := range k.s.twice {
		k.add("I5", false, []string{g}, "group %s: its shards hold members %v more than once", g, ids)
	}
	return nil
}

// toldUsers: users the client was told about.
func (k *checker) toldUsers() error {
	for _, u := range k.users {
		obj := k.s.users[u.id]
		live := obj != nil && obj.DeletionTimestamp.IsZero()
		row, rowErr := k.c.direct.GetUser(k.ctx, k.c.ns, u.id)
		if rowErr != nil && !errors.Is(rowErr, helpdesk.ErrNotFound) {
			return rowErr
		}
		if k.toldUser(u, obj, live, rowErr == nil, row) && live {
			k.out = append(k.out, rowProblems(obj, rowErr == nil, row)...)
		}
	}
	return nil
}

// toldUser compares one user the client was told about with the API
// server (I5) and its database row (I1). It reports whether the row is
// still to be compared with the spec (I3).
func (k *checker) toldUser(u mUser, obj *scimv1.ProvisionedUser, live, hasRow bool, row helpdesk.User) bool {
	refs := []string{u.id, userKey(u.userName)}
	switch {
	case u.tainted:
		// State unknown to the model; only the database is compared below.
	case u.deleted:
		if live {
			k.add("I5", false, refs, "user %s was deleted (204) but is still live in the API server as %+q", u.id, obj.Spec.UserName)
		}
		if hasRow && (row.DeletedAt == nil || row.Active) {
			k.add("I1", true, refs, "user %s was deleted (204) but its database row is live (active=%v, deleted_at=%v)", u.id, row.Active, row.DeletedAt)
		}
		return false
	case !live:
		k.add("I5", false, refs, "user %s (%+q) was acknowledged and never deleted, but the API server has no live object", u.id, u.userName)
		return false
	default:
		if obj.Spec.UserName != u.userName {
			k.add("I5", false, refs, "user %s: the last acknowledged write set userName %+q, the API server holds %+q", u.id, u.userName, obj.Spec.UserName)
		}
		if obj.IsActive() != u.active {
			k.add("I5", false, refs, "user %s: the last acknowledged write set active=%v, the API server holds %v", u.id, u.active, obj.IsActive())
		}
		// A user that never reached the database cannot sign in: no row
		// is fine for I1 (I3 below still wants one).
		if !u.active && hasRow && row.Active {
			k.add("I1", true, refs, "user %s was deactivated (2xx) but its database row is %s", u.id, describeRow(hasRow, row))
			return false // the same row fails I3 too; once is enough
		}
	}
	return true
}

// untoldUsers: objects nobody was told about, and uniqueness among the
// live ones.
func (k *checker) untoldUsers() error {
	known := map[string]bool{}
	for _, u := range k.users {
		known[u.id] = true
	}
	byKey := map[string][]string{}
	for _, obj := range k.s.users {
		if !obj.DeletionTimestamp.IsZero() {
			continue
		}
		key := userKey(obj.Spec.UserName)
		byKey[key] = append(byKey[key], obj.Name)
		if known[obj.Name] {
			continue
		}
		if !k.maybe[key] {
			k.add("4xx", false, []string{obj.Name, key}, "user %s (%+q) exists, but no request creating it was acknowledged", obj.Name, obj.Spec.UserName)
		}
		row, err := k.c.direct.GetUser(k.ctx, k.c.ns, obj.Name)
		if err != nil && !errors.Is(err, helpdesk.ErrNotFound) {
			return err
		}
		k.out = append(k.out, rowProblems(obj, err == nil, row)...)
	}
	k.sharedNames("users", "user:", byKey, func(id string) string { return k.s.users[id].Spec.UserName })
	return nil
}

// sharedNames: I2, no two live objects of a kind share a name key.
func (k *checker) sharedNames(kind, prefix string, byKey map[string][]string, nameOf func(id string) string) {
	for key, ids := range byKey {
		if len(ids) > 1 {
			slices.Sort(ids)
			var names []string
			for _, id := range ids {
				names = append(names, fmt.Sprintf("%s %+q", id, nameOf(id)))
			}
			k.add("I2", false, append(ids, key), "%d live %s share the name key %+q: %s", len(ids), kind, strings.TrimPrefix(key, prefix), strings.Join(names, ", "))
			k.out[len(k.out)-1].dedup = pairKey(key, ids...)
		}
	}
}

// toldGroups: groups the client was told about.
func (k *checker) toldGroups() error {
	for _, g := range k.groups {
		obj := k.s.groups[g.id]
		live := obj != nil && obj.DeletionTimestamp.IsZero()
		row, rowErr := k.c.direct.GetGroup(k.ctx, k.c.ns, g.id)
		if rowErr != nil && !errors.Is(rowErr, helpdesk.ErrNotFound) {
			return rowErr
		}
		if !k.toldGroup(g, obj, live, rowErr == nil, row) || !live || pending(obj) {
			continue
		}
		p, err := k.m.groupRowProblems(k.ctx, k.c, obj, rowErr == nil, row, sortedKeys(k.s.members[g.id]))
		if err != nil {
			return err
		}
		k.out = append(k.out, p...)
	}
	return nil
}

// toldGroup compares one group the client was told about with the API
// server (I5) and its database row (I1). It reports whether the row is
// still to be compared with the object.
func (k *checker) toldGroup(g mGroup, obj *scimv1.ProvisionedGroup, live, hasRow bool, row helpdesk.Group) bool {
	refs := []string{g.id, groupKey(g.displayName)}
	switch {
	case g.tainted:
	case g.deleted:
		if live {
			k.add("I5", false, refs, "group %s was deleted (204) but is still live in the API server", g.id)
		}
		if hasRow && row.DeletedAt == nil {
			k.add("I1", true, refs, "group %s was deleted (204) but its database row is live", g.id)
		}
		return false
	case !live:
		k.add("I5", false, refs, "group %s (%+q) was acknowledged and never deleted, but the API server has no live object", g.id, g.displayName)
		return false
	default:
		if pending(obj) {
			k.add("I5", false, refs, "group %s was created (201) but is still marked %s", g.id, scimv1.AnnotationPendingMembers)
		}
		if obj.Spec.DisplayName != g.displayName {
			k.add("I5", false, refs, "group %s: the last acknowledged write set displayName %+q, the API server holds %+q", g.id, g.displayName, obj.Spec.DisplayName)
		}
		k.groupMembers(g, refs)
	}
	return true
}

// groupMembers: I5, the members the client was told about are the API
// server's.
func (k *checker) groupMembers(g mGroup, refs []string) {
	got := k.s.members[g.id]
	var missing, extra []string
	for id := range g.members {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !g.members[id] {
			extra = append(extra, id)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	slices.Sort(missing)
	slices.Sort(extra)
	deleted := map[string]bool{}
	for _, u := range k.users {
		if u.deleted {
			deleted[u.id] = true
		}
	}
	// Members of deleted users go when the user controller gets to them;
	// anything else is final.
	converging := len(missing) == 0
	for _, id := range extra {
		converging = converging && deleted[id]
	}
	k.add("I5", converging, append(append(refs, missing...), extra...),
		"group %s: acknowledged members differ from the API server's: missing %v, extra %v (created with %v)", g.id, missing, extra, g.created)
}

// untoldGroups: group objects nobody was told about (a pending one of an
// unacknowledged create is left behind), and uniqueness among the live ones.
func (k *checker) untoldGroups() error {
	known := map[string]bool{}
	for _, g := range k.groups {
		known[g.id] = true
	}
	byKey := map[string][]string{}
	for _, obj := range k.s.groups {
		if !obj.DeletionTimestamp.IsZero() {
			continue
		}
		key := groupKey(obj.Spec.DisplayName)
		if pending(obj) {
			if !known[obj.Name] {
				k.add("I5", true, []string{obj.Name, key}, "group %s (%+q) of a create that was not acknowledged is left behind (%s)",
					obj.Name, obj.Spec.DisplayName, scimv1.AnnotationPendingMembers)
			}
			continue
		}
		byKey[key] = append(byKey[key], obj.Name)
		if known[obj.Name] {
			continue
		}
		if !k.maybe[key] {
			k.add("4xx", false, []string{obj.Name, key}, "group %s (%+q) exists, but no request creating it was acknowledged", obj.Name, obj.Spec.DisplayName)
		}
		row, err := k.c.direct.GetGroup(k.ctx, k.c.ns, obj.Name)
		if err != nil && !errors.Is(err, helpdesk.ErrNotFound) {
			return err
		}
		p, err := k.m.groupRowProblems(k.ctx, k.c, obj, err == nil, row, sortedKeys(k.s.members[obj.Name]))
		if err != nil {
			return err
		}
		k.out = append(k.out, p...)
	}
	k.sharedNames("groups", "group:", byKey, func(id string) string { return k.s.groups[id].Spec.DisplayName })
	return nil
}

func describeRow(has bool, row helpdesk.User) string {
	if !has {
		return "missing"
	}
	return fmt.Sprintf("{userName %+q, active %v, deleted_at %v}", row.UserName, row.Active, row.DeletedAt)
}

// rowProblems: I3, the row of a live user matches its spec. A row that
// stays behind is what two rows blocking each other look like.
func rowProblems(obj *scimv1.ProvisionedUser, has bool, row helpdesk.User) []problem {
	refs := []string{obj.Name, userKey(obj.Spec.UserName)}
	if !has || row.UserName != obj.Spec.UserName || row.Active != obj.IsActive() || row.DeletedAt != nil {
		return []problem{{inv: "I3", refs: refs, converging: true, msg: fmt.Sprintf(
			"user %s {userName %+q, active %v} has database row %s", obj.Name, obj.Spec.UserName, obj.IsActive(), describeRow(has, row))}}
	}
	return nil
}

// groupRowProblems: I3 for a live group: its row and its member rows.
func (m *model) groupRowProblems(ctx context.Context, c *cluster, obj *scimv1.ProvisionedGroup, has bool, row helpdesk.Group, members []string) ([]problem, error) {
	refs := []string{obj.Name, groupKey(obj.Spec.DisplayName)}
	if !has || row.DisplayName != obj.Spec.DisplayName || row.DeletedAt != nil {
		desc := "missing"
		if has {
			desc = fmt.Sprintf("{displayName %+q, deleted_at %v}", row.DisplayName, row.DeletedAt)
		}
		return []problem{{inv: "I3", refs: refs, converging: true, msg: fmt.Sprintf(
			"group %s {displayName %+q} has database row %s", obj.Name, obj.Spec.DisplayName, desc)}}, nil
	}
	rows, err := c.direct.GroupMembers(ctx, c.ns, obj.Name)
	if err != nil {
		return nil, err
	}
	slices.Sort(rows)
	if !slices.Equal(rows, members) {
		return []problem{{inv: "I3", refs: append(refs, members...), converging: true, msg: fmt.Sprintf(
			"group %s has members %v in the API server but %v in the database", obj.Name, members, rows)}}, nil
	}
	return nil, nil
}

// final waits, bounded, for the converging problems to go away, then
// reports every problem left.
func (m *model) final(c *cluster, bound time.Duration) {
	ctx := context.Background()
	start := time.Now()
	var probs []problem
	var lastErr error
	for attempt := 1; ; attempt++ {
		p, err := m.problems(ctx, c)
		if err == nil {
			probs, lastErr = p, nil
			i := slices.IndexFunc(p, func(x problem) bool { return x.converging })
			if i < 0 {
				break
			}
			if attempt%20 == 0 {
				m.t.Logf("after %s still converging, e.g. [%s] %s", time.Since(start).Round(time.Second), p[i].inv, p[i].msg)
			}
		} else {
			lastErr = err
		}
		if time.Since(start) > bound {
			break
		}
		time.Sleep(time.Second)
	}
	waited := time.Since(start).Round(time.Second)
	m.t.Logf("end state checked after waiting %s for the controllers (bound %s)", waited, bound)
	if lastErr != nil {
		m.t.Errorf("reading the end state: %v (rerun with SCIM_MODEL_SEED=%d)", lastErr, m.seed)
	}
	slices.SortStableFunc(probs, func(a, b problem) int { return strings.Compare(a.inv, b.inv) })
	for _, p := range probs {
		msg := p.msg
		if p.converging {
			msg += fmt.Sprintf(" (still so %s after the last request, with the database reachable)", waited)
		}
		m.failOnce(p.dedup, p.inv, p.refs, "%s", msg)
	}
}
