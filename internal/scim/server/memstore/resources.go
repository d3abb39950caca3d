package memstore

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// CreateUser stores a new user under a random id.
func (s *Store) CreateUser(_ context.Context, p repository.Principal, spec scimv1.ProvisionedUserSpec) (*scimv1.ProvisionedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.users.taken(p.Namespace, spec.UserName, ""); err != nil {
		return nil, err
	}
	u := &scimv1.ProvisionedUser{ObjectMeta: s.newMeta(p), Spec: *spec.DeepCopy()}
	s.stamp(u)
	s.users.objs[key{p.Namespace, u.Name}] = u
	return u.DeepCopy(), nil
}

// LiveUser returns a copy of the user.
func (s *Store) LiveUser(_ context.Context, namespace, id string) (*scimv1.ProvisionedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users.get(namespace, id)
}

// UpdateUser changes a user through mutate (see server.Store).
func (s *Store) UpdateUser(_ context.Context, p repository.Principal, id, ifMatch string,
	mutate func(*scimv1.ProvisionedUser) (bool, error)) (*scimv1.ProvisionedUser, error) {
	return update(s, &s.users, p.Namespace, id, ifMatch, mutate)
}

// DeleteUser deletes a user and takes it out of every group at once,
// which the user controller does soon after in the operator.
func (s *Store) DeleteUser(_ context.Context, p repository.Principal, id, ifMatch string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := remove(&s.users, p.Namespace, id, ifMatch); err != nil {
		return err
	}
	for g, m := range s.members {
		if g.namespace != p.Namespace {
			continue
		}
		if next, changed := m.apply(patch.FoldMembers(removal(id))); changed {
			s.setMembers(g, next)
			if grp, ok := s.groups.objs[g]; ok {
				s.stamp(grp)
			}
		}
	}
	return nil
}

// UsersBy finds users through the indexes the repository keeps.
func (s *Store) UsersBy(_ context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error) {
	var match func(*scimv1.ProvisionedUser) bool
	switch index {
	case repository.IndexUserName:
		match = func(u *scimv1.ProvisionedUser) bool { return namekey.Key(u.Spec.UserName) == value }
	case repository.IndexExternalID:
		match = func(u *scimv1.ProvisionedUser) bool { return u.Spec.ExternalID != "" && u.Spec.ExternalID == value }
	case repository.IndexEmail:
		match = func(u *scimv1.ProvisionedUser) bool {
			for _, e := range u.Spec.Emails {
				if e.Value != "" && namekey.Key(e.Value) == value {
					return true
				}
			}
			return false
		}
	default:
		return nil, fmt.Errorf("memstore: users have no index %q", index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.users.scan(namespace, match)), nil
}

// ScanUsers returns copies of the tenant's users, oldest first.
func (s *Store) ScanUsers(_ context.Context, namespace string) ([]*scimv1.ProvisionedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users.scan(namespace, nil), nil
}

// CountUsers counts the tenant's users.
func (s *Store) CountUsers(_ context.Context, namespace string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users.count(namespace), nil
}

// DisplayNames returns each user's displayName, else userName.
func (s *Store) DisplayNames(_ context.Context, namespace string, ids []string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		if u, ok := s.users.objs[key{namespace, id}]; ok {
			out[id] = u.Spec.DisplayName
			if out[id] == "" {
				out[id] = u.Spec.UserName
			}
		}
	}
	return out
}

// CreateGroup stores a new group under a random id, pending when members
// follow.
func (s *Store) CreateGroup(_ context.Context, p repository.Principal, spec scimv1.ProvisionedGroupSpec, withMembers bool) (*scimv1.ProvisionedGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.groups.taken(p.Namespace, spec.DisplayName, ""); err != nil {
		return nil, err
	}
	g := &scimv1.ProvisionedGroup{ObjectMeta: s.newMeta(p), Spec: spec}
	s.stamp(g)
	if withMembers {
		g.Annotations[scimv1.AnnotationPendingMembers] = "true"
	}
	s.groups.objs[key{p.Namespace, g.Name}] = g
	return g.DeepCopy(), nil
}

// AbandonGroup removes a pending group.
func (s *Store) AbandonGroup(_ context.Context, p repository.Principal, g *scimv1.ProvisionedGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{p.Namespace, g.Name}
	if cur, ok := s.groups.objs[k]; ok && pending(cur) {
		delete(s.groups.objs, k)
		delete(s.members, k)
	}
}

// LiveGroup returns a copy of the group.
func (s *Store) LiveGroup(_ context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups.get(namespace, id)
}

// CachedGroup is LiveGroup: this store has no cache to lag.
func (s *Store) CachedGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	return s.LiveGroup(ctx, namespace, id)
}

// UpdateGroup changes a group through mutate (see server.Store).
func (s *Store) UpdateGroup(_ context.Context, p repository.Principal, id, ifMatch string,
	mutate func(*scimv1.ProvisionedGroup) (bool, error)) (*scimv1.ProvisionedGroup, error) {
	return update(s, &s.groups, p.Namespace, id, ifMatch, mutate)
}

// DeleteGroup deletes a group and its members.
func (s *Store) DeleteGroup(_ context.Context, p repository.Principal, id, ifMatch string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := remove(&s.groups, p.Namespace, id, ifMatch); err != nil {
		return err
	}
	delete(s.members, key{p.Namespace, id})
	return nil
}

// GroupsBy finds groups through the indexes the repository keeps.
func (s *Store) GroupsBy(_ context.Context, namespace, index, value string) ([]scimv1.ProvisionedGroup, error) {
	var match func(*scimv1.ProvisionedGroup) bool
	switch index {
	case repository.IndexDisplayName:
		match = func(g *scimv1.ProvisionedGroup) bool { return namekey.Key(g.Spec.DisplayName) == value }
	case repository.IndexExternalID:
		match = func(g *scimv1.ProvisionedGroup) bool { return g.Spec.ExternalID != "" && g.Spec.ExternalID == value }
	default:
		return nil, fmt.Errorf("memstore: groups have no index %q", index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.groups.scan(namespace, match)), nil
}

// ScanGroups returns copies of the tenant's groups, oldest first.
func (s *Store) ScanGroups(_ context.Context, namespace string) ([]*scimv1.ProvisionedGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups.scan(namespace, nil), nil
}

// CountGroups counts the tenant's groups, up to limit+1.
func (s *Store) CountGroups(_ context.Context, namespace string, limit int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.groups.count(namespace)
	if limit >= 0 && n > limit {
		n = limit + 1
	}
	return n, nil
}

// Warn records the event (see Events).
func (s *Store) Warn(_ context.Context, obj client.Object, kind, reason, note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, Event{Namespace: obj.GetNamespace(), Name: obj.GetName(), Kind: kind, Reason: reason, Note: note})
}

func values[T any](ptrs []*T) []T {
	out := make([]T, len(ptrs))
	for i, p := range ptrs {
		out[i] = *p
	}
	return out
}
