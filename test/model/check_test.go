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
		members: map[string]map[string]bool{}}
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
	var out []problem
	add := func(inv string, converging bool, refs []string, format string, args ...any) {
		out = append(out, problem{inv: inv, refs: refs, msg: fmt.Sprintf(format, args...), converging: converging})
	}
	m.mu.Lock()
	users := make([]mUser, 0, len(m.users))
	for _, u := range m.users {
		users = append(users, *u)
	}
	groups := make([]mGroup, 0, len(m.groups))
	for _, g := range m.groups {
		cp := *g
		cp.members = maps.Clone(g.members)
		groups = append(groups, cp)
	}
	maybe := maps.Clone(m.maybe)
	m.mu.Unlock()
	known := map[string]bool{}

	// Users the client was told about.
	for _, u := range users {
		known[u.id] = true
		obj := s.users[u.id]
		live := obj != nil && obj.DeletionTimestamp.IsZero()
		row, rowErr := c.direct.GetUser(ctx, c.ns, u.id)
		if rowErr != nil && !errors.Is(rowErr, helpdesk.ErrNotFound) {
			return nil, rowErr
		}
		hasRow := rowErr == nil
		refs := []string{u.id, userKey(u.userName)}
		switch {
		case u.tainted:
			// State unknown to the model; only the database is compared below.
		case u.deleted:
			if live {
				add("I5", false, refs, "user %s was deleted (204) but is still live in the API server as %+q", u.id, obj.Spec.UserName)
			}
			if hasRow && (row.DeletedAt == nil || row.Active) {
				add("I1", true, refs, "user %s was deleted (204) but its database row is live (active=%v, deleted_at=%v)", u.id, row.Active, row.DeletedAt)
			}
			continue
		case !live:
			add("I5", false, refs, "user %s (%+q) was acknowledged and never deleted, but the API server has no live object", u.id, u.userName)
			continue
		default:
			if obj.Spec.UserName != u.userName {
				add("I5", false, refs, "user %s: the last acknowledged write set userName %+q, the API server holds %+q", u.id, u.userName, obj.Spec.UserName)
			}
			if obj.IsActive() != u.active {
				add("I5", false, refs, "user %s: the last acknowledged write set active=%v, the API server holds %v", u.id, u.active, obj.IsActive())
			}
			// A user that never reached the database cannot sign in: no row
			// is fine for I1 (I3 below still wants one).
			if !u.active && hasRow && row.Active {
				add("I1", true, refs, "user %s was deactivated (2xx) but its database row is %s", u.id, describeRow(hasRow, row))
				continue // the same row fails I3 too; once is enough
			}
		}
		if live {
			out = append(out, rowProblems(obj, hasRow, row)...)
		}
	}

	// Objects nobody was told about, and uniqueness among the live ones.
	byKey := map[string][]string{}
	for _, obj := range s.users {
		if !obj.DeletionTimestamp.IsZero() {
			continue
		}
		key := userKey(obj.Spec.UserName)
		byKey[key] = append(byKey[key], obj.Name)
		if known[obj.Name] {
			continue
		}
		if !maybe[key] {
			add("4xx", false, []string{obj.Name, key}, "user %s (%+q) exists, but no request creating it was acknowledged", obj.Name, obj.Spec.UserName)
		}
		row, err := c.direct.GetUser(ctx, c.ns, obj.Name)
		if err != nil && !errors.Is(err, helpdesk.ErrNotFound) {
			return nil, err
		}
		out = append(out, rowProblems(obj, err == nil, row)...)
	}
	for key, ids := range byKey {
		if len(ids) > 1 {
			slices.Sort(ids)
			var names []string
			for _, id := range ids {
				names = append(names, fmt.Sprintf("%s %+q", id, s.users[id].Spec.UserName))
			}
			add("I2", false, append(ids, key), "%d live users share the name key %+q: %s", len(ids), strings.TrimPrefix(key, "user:"), strings.Join(names, ", "))
			out[len(out)-1].dedup = pairKey(key, ids...)
		}
	}

	// Groups.
	clear(known)
	deleted := map[string]bool{}
	for _, u := range users {
		if u.deleted {
			deleted[u.id] = true
		}
	}
	for _, g := range groups {
		known[g.id] = true
		obj := s.groups[g.id]
		live := obj != nil && obj.DeletionTimestamp.IsZero()
		row, rowErr := c.direct.GetGroup(ctx, c.ns, g.id)
		if rowErr != nil && !errors.Is(rowErr, helpdesk.ErrNotFound) {
			return nil, rowErr
		}
		hasRow := rowErr == nil
		refs := []string{g.id, groupKey(g.displayName)}
		switch {
		case g.tainted:
		case g.deleted:
			if live {
				add("I5", false, refs, "group %s was deleted (204) but is still live in the API server", g.id)
			}
			if hasRow && row.DeletedAt == nil {
				add("I1", true, refs, "group %s was deleted (204) but its database row is live", g.id)
			}
			continue
		case !live:
			add("I5", false, refs, "group %s (%+q) was acknowledged and never deleted, but the API server has no live object", g.id, g.displayName)
			continue
		default:
			if pending(obj) {
				add("I5", false, refs, "group %s was created (201) but is still marked %s", g.id, scimv1.AnnotationPendingMembers)
			}
			if obj.Spec.DisplayName != g.displayName {
				add("I5", false, refs, "group %s: the last acknowledged write set displayName %+q, the API server holds %+q", g.id, g.displayName, obj.Spec.DisplayName)
			}
			got := s.members[g.id]
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
			if len(missing) > 0 || len(extra) > 0 {
				slices.Sort(missing)
				slices.Sort(extra)
				// Members of deleted users go when the user controller
				// gets to them; anything else is final.
				converging := len(missing) == 0
				for _, id := range extra {
					converging = converging && deleted[id]
				}
				add("I5", converging, append(append(refs, missing...), extra...),
					"group %s: acknowledged members differ from the API server's: missing %v, extra %v (created with %v)", g.id, missing, extra, g.created)
			}
		}
		if live && !pending(obj) {
			p, err := m.groupRowProblems(ctx, c, obj, hasRow, row, sortedKeys(s.members[g.id]))
			if err != nil {
				return nil, err
			}
			out = append(out, p...)
		}
	}
	byKey = map[string][]string{}
	for _, obj := range s.groups {
		if !obj.DeletionTimestamp.IsZero() {
			continue
		}
		key := groupKey(obj.Spec.DisplayName)
		if pending(obj) {
			if !known[obj.Name] {
				add("I5", true, []string{obj.Name, key}, "group %s (%+q) of a create that was not acknowledged is left behind (%s)",
					obj.Name, obj.Spec.DisplayName, scimv1.AnnotationPendingMembers)
			}
			continue
		}
		byKey[key] = append(byKey[key], obj.Name)
		if known[obj.Name] {
			continue
		}
		if !maybe[key] {
			add("4xx", false, []string{obj.Name, key}, "group %s (%+q) exists, but no request creating it was acknowledged", obj.Name, obj.Spec.DisplayName)
		}
		row, err := c.direct.GetGroup(ctx, c.ns, obj.Name)
		if err != nil && !errors.Is(err, helpdesk.ErrNotFound) {
			return nil, err
		}
		p, err := m.groupRowProblems(ctx, c, obj, err == nil, row, sortedKeys(s.members[obj.Name]))
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
	}
	for key, ids := range byKey {
		if len(ids) > 1 {
			slices.Sort(ids)
			var names []string
			for _, id := range ids {
				names = append(names, fmt.Sprintf("%s %+q", id, s.groups[id].Spec.DisplayName))
			}
			add("I2", false, append(ids, key), "%d live groups share the name key %+q: %s", len(ids), strings.TrimPrefix(key, "group:"), strings.Join(names, ", "))
			out[len(out)-1].dedup = pairKey(key, ids...)
		}
	}
	return out, nil
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
