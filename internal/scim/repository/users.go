package repository

import (
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Principal identifies who is writing: the tenant and the token used.
type Principal struct {
	Namespace string
	TokenName string
}

// CreateUser stores a new user. The userName is claimed first, so that two
// replicas creating the same user at once produce one user and one 409.
func (r *Repository) CreateUser(ctx context.Context, p Principal, spec scimv1.ProvisionedUserSpec) (*scimv1.ProvisionedUser, error) {
	id := uuid.NewString()
	if err := r.claim(ctx, p.Namespace, scimv1.ClaimUserName, spec.UserName, id, holds(r, r.userKind())); err != nil {
		return nil, err
	}
	u := &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{
			Name: id, Namespace: p.Namespace,
			Labels: userLabels(p, &spec),
			// Set here rather than by the controller: one write instead of two.
			Finalizers: []string{scimv1.FinalizerHelpdesk},
		},
		Spec: spec,
	}
	r.touch(u)
	if err := r.Client.Create(ctx, u); err != nil {
		r.release(ctx, p.Namespace, scimv1.ClaimUserName, spec.UserName, id)
		return nil, apiError(err, "user")
	}
	r.awaitCache(ctx, u, false)
	r.event(u, EventCreated, "Create", "user %s created through SCIM%s", u.Name, byToken(p))
	return u, nil
}

func userLabels(p Principal, spec *scimv1.ProvisionedUserSpec) map[string]string {
	l := map[string]string{scimv1.LabelActive: "true"}
	if spec.Active != nil && !*spec.Active {
		l[scimv1.LabelActive] = "false"
	}
	if p.TokenName != "" {
		l[scimv1.LabelToken] = p.TokenName
	}
	return l
}

// GetUser reads a user from the API server, so that a GET right after a
// write on any replica sees that write. A terminating user counts as gone.
func (r *Repository) GetUser(ctx context.Context, namespace, id string) (*scimv1.ProvisionedUser, error) {
	return read[scimv1.ProvisionedUser](ctx, r, "user", namespace, id, false)
}

// LookupUser reads a user from the cache, falling back to the API server
// when the cache has not seen it yet; for existence checks, where a
// slightly old copy is as good as a fresh one.
func (r *Repository) LookupUser(ctx context.Context, namespace, id string) (*scimv1.ProvisionedUser, error) {
	return read[scimv1.ProvisionedUser](ctx, r, "user", namespace, id, true)
}

// get reads one object; a terminating object counts as gone (its deletion
// was accepted; only the helpdesk sync is pending).
func (r *Repository) get(ctx context.Context, from client.Reader, namespace, name string, obj client.Object) error {
	if err := from.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return apiError(err, "object")
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return scimerr.NotFound("not found")
	}
	return nil
}

func notFoundAs(err error, format string, args ...any) error {
	if e, ok := scimerr.As(err); ok && e.Status == 404 {
		return scimerr.NotFound(format, args...)
	}
	return err
}

// UpdateUser reads the live user, lets mutate change it, and writes it
// (see update).
func (r *Repository) UpdateUser(ctx context.Context, p Principal, id, ifMatch string,
	mutate func(*scimv1.ProvisionedUser) (changed bool, err error)) (*scimv1.ProvisionedUser, error) {
	return update(ctx, r, r.userKind(), p, id, ifMatch, mutate)
}

// DeleteUser deletes a user (see remove).
func (r *Repository) DeleteUser(ctx context.Context, p Principal, id, ifMatch string) error {
	return remove(ctx, r, r.userKind(), p, id, ifMatch)
}

// UsersBy returns the tenant's live users whose index field equals value.
func (r *Repository) UsersBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error) {
	var list scimv1.ProvisionedUserList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{index: value}); err != nil {
		return nil, apiError(err, "users")
	}
	return live(list.Items), nil
}

// AllUsers returns every live user of the tenant, oldest first (then by id),
// the stable order SCIM paging needs.
func (r *Repository) AllUsers(ctx context.Context, namespace string) ([]scimv1.ProvisionedUser, error) {
	var list scimv1.ProvisionedUserList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, apiError(err, "users")
	}
	items := live(list.Items)
	slices.SortFunc(items, func(a, b scimv1.ProvisionedUser) int { return compareAge(&a.ObjectMeta, &b.ObjectMeta) })
	return items, nil
}

func compareAge(a, b *metav1.ObjectMeta) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// live drops terminating objects: their deletion was accepted already.
func live[T any, PT interface {
	*T
	GetDeletionTimestamp() *metav1.Time
}](items []T) []T {
	out := items[:0]
	for i := range items {
		if PT(&items[i]).GetDeletionTimestamp().IsZero() {
			out = append(out, items[i])
		}
	}
	return out
}
