package repository

import (
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// CreateGroup stores a new group after claiming its displayName. Members
// given at creation are added like a PATCH would add them.
func (r *Repository) CreateGroup(ctx context.Context, p Principal, spec scimv1.ProvisionedGroupSpec) (*scimv1.ProvisionedGroup, error) {
	id := uuid.NewString()
	if err := r.claim(ctx, p.Namespace, scimv1.ClaimDisplayName, spec.DisplayName, id, r.groupHolds); err != nil {
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
		r.release(ctx, p.Namespace, scimv1.ClaimDisplayName, spec.DisplayName, id)
		return nil, apiError(err, "group")
	}
	r.awaitCache(ctx, g, false)
	r.event(g, EventCreated, "Create", "group %s created through SCIM%s", g.Name, byToken(p))
	return g, nil
}

func (r *Repository) groupHolds(ctx context.Context, namespace, owner, lower string) (ownerState, error) {
	var g scimv1.ProvisionedGroup
	if err := r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner}, &g); err != nil {
		if apierrors.IsNotFound(err) {
			return ownerMissing, nil
		}
		return ownerReleased, apiError(err, "group")
	}
	if g.DeletionTimestamp.IsZero() && strings.ToLower(g.Spec.DisplayName) == lower {
		return ownerHolding, nil
	}
	return ownerReleased, nil
}

// GetGroup reads a group from the API server (see GetUser).
func (r *Repository) GetGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	g := &scimv1.ProvisionedGroup{}
	if err := r.get(ctx, r.Live, namespace, id, g); err != nil {
		return nil, notFoundAs(err, "group %q not found", id)
	}
	return g, nil
}

// LookupGroup reads a group from the cache, then the API server (see
// LookupUser).
func (r *Repository) LookupGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	g := &scimv1.ProvisionedGroup{}
	err := r.get(ctx, r.Cache, namespace, id, g)
	if e, ok := scimerr.As(err); ok && e.Status == 404 {
		err = r.get(ctx, r.Live, namespace, id, g)
	}
	if err != nil {
		return nil, notFoundAs(err, "group %q not found", id)
	}
	return g, nil
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
