package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// members is a group's member list: ids in stored order and the displays
// clients sent (only for members that have one).
type members struct {
	ids      []string
	displays map[string]string
}

func removal(id string) []patch.MemberOp {
	return []patch.MemberOp{{Kind: patch.MemberRemove, IDs: []string{id}}}
}

// apply returns the member list o leaves and whether it differs from m.
// Members stay in their order; new ones are appended in id order, as the
// repository appends them to its newest shard.
func (m members) apply(o patch.MemberNet) (members, bool) {
	next := members{displays: map[string]string{}}
	present := map[string]bool{}
	for _, id := range m.ids {
		if w, asked := o.Want[id]; (o.ReplaceAll && !w) || (asked && !w) || present[id] {
			continue
		}
		present[id] = true
		next.ids = append(next.ids, id)
		next.displays[id] = m.displays[id]
		if d, decided := o.Display[id]; decided {
			next.displays[id] = d
		}
	}
	var add []string
	for id, w := range o.Want {
		if w && !present[id] {
			add = append(add, id)
		}
	}
	slices.Sort(add)
	for _, id := range add {
		next.ids = append(next.ids, id)
		next.displays[id] = o.Display[id]
	}
	maps.DeleteFunc(next.displays, func(_, d string) bool { return d == "" })
	changed := !slices.Equal(m.ids, next.ids) || !maps.Equal(m.displays, next.displays)
	return next, changed
}

// setMembers stores a group's member list. Expects s.mu held.
func (s *Store) setMembers(g key, m members) {
	if len(m.ids) == 0 {
		delete(s.members, g)
		return
	}
	s.members[g] = m
}

// KnownMembers keeps, of the ids that operations add, those that are users
// of the tenant (see server.Store).
func (s *Store) KnownMembers(_ context.Context, namespace string, ops []patch.MemberOp) (known []patch.MemberOp, skipped []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, op := range ops {
		if op.Kind != patch.MemberAdd && op.Kind != patch.MemberReplace {
			known = append(known, op)
			continue
		}
		kept := patch.MemberOp{Kind: op.Kind}
		for _, id := range op.IDs {
			if _, isUser := s.users.objs[key{namespace, id}]; !isUser {
				if !seen[id] {
					skipped = append(skipped, id)
				}
				seen[id] = true
				continue
			}
			kept.IDs = append(kept.IDs, id)
			if d := op.Displays[id]; d != "" {
				if len(d) > scimv1.MaxMemberDisplayBytes {
					return nil, nil, scimerr.InvalidValue("the display of member %q is %d bytes long; at most %d are stored",
						id, len(d), scimv1.MaxMemberDisplayBytes)
				}
				if kept.Displays == nil {
					kept.Displays = map[string]string{}
				}
				kept.Displays[id] = d
			}
		}
		switch {
		case len(kept.IDs) > 0:
			known = append(known, kept)
		case op.Kind == patch.MemberReplace:
			known = append(known, patch.MemberOp{Kind: patch.MemberClear})
		}
	}
	return known, skipped, nil
}

// ApplyMembers changes g's members (see server.Store).
func (s *Store) ApplyMembers(_ context.Context, _ repository.Principal, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (*scimv1.ProvisionedGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{g.Namespace, g.Name}
	stored, ok := s.groups.objs[k]
	if !ok {
		if pending(g) {
			return nil, fmt.Errorf("%w: group %s was removed before its members were complete", repository.ErrUnavailable, g.Name)
		}
		return g, nil // deleted meanwhile: its members went with it
	}
	next, changed := s.members[k].apply(patch.FoldMembers(ops))
	if !changed && !pending(stored) {
		return g, nil
	}
	s.setMembers(k, next)
	delete(stored.Annotations, scimv1.AnnotationPendingMembers) // complete now, if it was not
	s.stamp(stored)
	return stored.DeepCopy(), nil
}

// MembersWouldChange reports whether ApplyMembers(g, ops) would change the
// members.
func (s *Store) MembersWouldChange(_ context.Context, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, changed := s.members[key{g.Namespace, g.Name}].apply(patch.FoldMembers(ops))
	return changed, nil
}

// CachedMembersWithDisplays returns a group's members and their displays.
func (s *Store) CachedMembersWithDisplays(_ context.Context, namespace, group string) ([]string, map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[key{namespace, group}]
	var displays map[string]string
	if len(m.displays) > 0 {
		displays = maps.Clone(m.displays)
	}
	return slices.Clone(m.ids), displays, nil
}

// LiveMembersWithDisplays is CachedMembersWithDisplays: this store has no
// cache to lag.
func (s *Store) LiveMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error) {
	return s.CachedMembersWithDisplays(ctx, namespace, group)
}

// GroupsOf returns the sorted ids of the groups member is in.
func (s *Store) GroupsOf(_ context.Context, namespace, member string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for g, m := range s.members {
		if g.namespace == namespace && slices.Contains(m.ids, member) {
			out = append(out, g.name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CountMembers counts the member entries of the tenant's groups.
func (s *Store) CountMembers(_ context.Context, namespace string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for g, m := range s.members {
		if g.namespace == namespace {
			n += len(m.ids)
		}
	}
	return n, nil
}
