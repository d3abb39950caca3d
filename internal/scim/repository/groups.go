package repository

import (
	"context"
	"slices"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// CreateGroup stores a new group after claiming its displayName. Members
// given at creation are added like a PATCH would add them.
func (r *Repository) CreateGroup(ctx context.Context, p Principal, spec scimv1.ProvisionedGroupSpec) (*scimv1.ProvisionedGroup, error) {
	id := uuid.NewString()
	uniq := r.groupKind().uniq
	if err := r.claim(ctx, p.Namespace, uniq, spec.DisplayName, id); err != nil {
		return nil, err
	}
	g := &scimv1.ProvisionedGroup{
		ObjectMeta: metav1.ObjectMeta{
			Name: id, Namespace: p.Namespace,
			Labels:     map[string]string{},
			Finalizers: []string{scimv1.FinalizerHelpdesk},
		},
		Spec: spec,
	}
	if p.TokenName != "" {
		g.Labels[scimv1.LabelToken] = p.TokenName
	}
	r.touch(g)
	if err := r.Client.Create(ctx, g); err != nil {
		r.release(ctx, p.Namespace, uniq, spec.DisplayName, id)
		return nil, apiError(err, "group")
	}
	r.awaitCache(ctx, g, false)
	r.Activity.add(p, "groups created", 1)
	return g, nil
}

// GetGroup reads a group from the API server (see GetUser).
func (r *Repository) GetGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	return read[scimv1.ProvisionedGroup](ctx, r, "group", namespace, id, false)
}

// LookupGroup reads a group from the cache, then the API server (see
// LookupUser).
func (r *Repository) LookupGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	return read[scimv1.ProvisionedGroup](ctx, r, "group", namespace, id, true)
}

// UpdateGroup reads the live group, lets mutate change it, and writes it
// (see update).
func (r *Repository) UpdateGroup(ctx context.Context, p Principal, id, ifMatch string,
	mutate func(*scimv1.ProvisionedGroup) (changed bool, err error)) (*scimv1.ProvisionedGroup, error) {
	return update(ctx, r, r.groupKind(), p, id, ifMatch, mutate)
}

// DeleteGroup deletes a group (see remove).
func (r *Repository) DeleteGroup(ctx context.Context, p Principal, id, ifMatch string) error {
	return remove(ctx, r, r.groupKind(), p, id, ifMatch)
}

// GroupsBy returns the tenant's live groups whose index field equals value.
func (r *Repository) GroupsBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedGroup, error) {
	var list scimv1.ProvisionedGroupList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{index: value}); err != nil {
		return nil, apiError(err, "groups")
	}
	return live(list.Items), nil
}

// AllGroups returns every live group of the tenant, oldest first.
func (r *Repository) AllGroups(ctx context.Context, namespace string) ([]scimv1.ProvisionedGroup, error) {
	var list scimv1.ProvisionedGroupList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, apiError(err, "groups")
	}
	items := live(list.Items)
	slices.SortFunc(items, func(a, b scimv1.ProvisionedGroup) int { return compareAge(&a.ObjectMeta, &b.ObjectMeta) })
	return items, nil
}
