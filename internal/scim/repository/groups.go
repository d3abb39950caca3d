package repository

import (
	"context"
	"slices"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
)

// CreateGroup stores a new group after claiming its displayName. Members
// given at creation are added like a PATCH would add them, by ApplyMembers
// afterwards: with withMembers set, the group is created pending
// (scimv1.AnnotationPendingMembers), invisible to SCIM and to the helpdesk
// sync until ApplyMembers completes it, so that no client ever sees a group
// without the members its 201 promised. If the members cannot be written,
// AbandonGroup deletes it again; one left behind by a crash is deleted by
// the group controller.
func (r *Repository) CreateGroup(ctx context.Context, p Principal, spec scimv1.ProvisionedGroupSpec, withMembers bool) (*scimv1.ProvisionedGroup, error) {
	k := r.groupKind()
	g := &scimv1.ProvisionedGroup{
		ObjectMeta: metav1.ObjectMeta{
			Name: uuid.NewString(), Namespace: p.Namespace,
			Labels:     map[string]string{},
			Finalizers: []string{scimv1.FinalizerHelpdesk},
		},
		Spec: spec,
	}
	if p.TokenName != "" {
		g.Labels[scimv1.LabelToken] = p.TokenName
	}
	if withMembers {
		g.Annotations = map[string]string{scimv1.AnnotationPendingMembers: "true"}
	}
	sent, err := r.commit(ctx, change{p: p, obj: g,
		send:   func(ctx context.Context, o client.Object) error { return r.Client.Create(ctx, o) },
		name:   &nameChange{guard: k.guard, to: spec.DisplayName, hold: byClaim, undo: r.undoCreate(g, k.name)},
		counts: []count{{"groups created", 1}}})
	if err != nil {
		if sent {
			return nil, err
		}
		return nil, apierror.ForClient(err, k.name)
	}
	return g, nil
}

// AbandonGroup undoes a pending create whose members could not be written:
// the group is deleted and its displayName released. Best effort: what
// fails here is left to the group controller, and the group stays
// invisible meanwhile.
func (r *Repository) AbandonGroup(ctx context.Context, p Principal, g *scimv1.ProvisionedGroup) {
	if !pending(g) {
		return
	}
	uid := g.UID
	// No count: the client's create failed.
	_, _ = r.commit(ctx, change{p: p, obj: g, gone: true,
		send: func(ctx context.Context, o client.Object) error {
			if err := r.Client.Delete(ctx, o, client.Preconditions{UID: &uid}); !apierrors.IsNotFound(err) {
				return err
			}
			return nil
		},
		name: &nameChange{guard: r.groupKind().guard, from: g.Spec.DisplayName}})
}

// LiveGroup reads a group from the API server (see LiveUser).
func (r *Repository) LiveGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
	return read[scimv1.ProvisionedGroup](ctx, r, "group", namespace, id, false)
}

// CachedGroup reads a group from the cache, then the API server (see
// CachedUser).
func (r *Repository) CachedGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error) {
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
		return nil, apierror.ForClient(err, "groups")
	}
	return live(list.Items), nil
}

// CachedGroups returns, from the cache, every group of the tenant not being deleted, oldest first.
func (r *Repository) CachedGroups(ctx context.Context, namespace string) ([]scimv1.ProvisionedGroup, error) {
	var list scimv1.ProvisionedGroupList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, apierror.ForClient(err, "groups")
	}
	items := live(list.Items)
	slices.SortFunc(items, func(a, b scimv1.ProvisionedGroup) int { return compareAge(&a.ObjectMeta, &b.ObjectMeta) })
	return items, nil
}
