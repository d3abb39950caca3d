package repository

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Principal identifies who is writing: the tenant and the token used.
type Principal struct {
	Namespace string
	TokenName string
}

// CreateUser stores a new user: under its first id when the userName was
// never used in the tenant (one API write), otherwise under a random id
// after claiming the userName (see package uniqueness). Either way two
// replicas creating the same user at once produce one user and one 409.
func (r *Repository) CreateUser(ctx context.Context, p Principal, spec scimv1.ProvisionedUserSpec) (*scimv1.ProvisionedUser, error) {
	u := &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace,
			Labels:    userLabels(p, &spec),
			// Set here rather than by the controller: one write instead of two.
			Finalizers: []string{scimv1.FinalizerHelpdesk},
		},
		Spec: spec,
	}
	k := r.userKind()
	if k.guard.FirstID != nil && !k.guard.UsedBefore(ctx, p.Namespace, spec.UserName) {
		created, err := r.createUser(ctx, p, k, u, k.guard.FirstID(p.Namespace, spec.UserName), byFirstID)
		if !errors.Is(err, uniqueness.ErrFirstIDContested) {
			return created, err
		}
	}
	return r.createUser(ctx, p, k, u, uuid.NewString(), byClaim)
}

// createUser creates a copy of u named id, holding its userName as hold
// says. Under a first id, ErrFirstIDContested means: the id is taken by a
// user with another userName now, or retired, and the caller uses a random
// id and a claim.
func (r *Repository) createUser(ctx context.Context, p Principal, k kind[scimv1.ProvisionedUser], u *scimv1.ProvisionedUser,
	id string, hold hold) (*scimv1.ProvisionedUser, error) {
	u = u.DeepCopy()
	u.Name = id
	sent, err := r.commit(ctx, change{p: p, obj: u,
		send:   func(ctx context.Context, o client.Object) error { return r.Client.Create(ctx, o) },
		name:   &nameChange{guard: k.guard, to: u.Spec.UserName, hold: hold, undo: r.undoCreate(u, k.name)},
		counts: []count{{"users created", 1}}})
	switch {
	case sent && err != nil:
		return nil, err
	case sent:
		return u, nil
	case hold == byFirstID && apierrors.IsAlreadyExists(err):
		// The first id is some user's: this userName's (409), or, renamed
		// since, another's (a random id then).
		state, err := k.guard.Holders.Holds(ctx, u.Namespace, id, ClaimName(k.guard.Kind, u.Spec.UserName))
		if err != nil {
			return nil, err
		}
		if state == uniqueness.Holding {
			return nil, scimerr.Uniqueness("userName %q is already in use", u.Spec.UserName)
		}
		return nil, uniqueness.ErrFirstIDContested
	}
	return nil, apierror.ForClient(err, k.name)
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

// LiveUser reads a user from the API server, so that a GET right after a
// write on any replica sees that write. A terminating user counts as gone.
func (r *Repository) LiveUser(ctx context.Context, namespace, id string) (*scimv1.ProvisionedUser, error) {
	return read[scimv1.ProvisionedUser](ctx, r, "user", namespace, id, false)
}

// CachedUser reads a user from the cache, falling back to the API server
// when the cache has not seen it yet; for existence checks, where a
// slightly old copy is as good as a fresh one.
func (r *Repository) CachedUser(ctx context.Context, namespace, id string) (*scimv1.ProvisionedUser, error) {
	return read[scimv1.ProvisionedUser](ctx, r, "user", namespace, id, true)
}

// get reads one object; a terminating object counts as gone (its deletion
// was accepted; only the helpdesk sync is pending).
func (r *Repository) get(ctx context.Context, from client.Reader, namespace, name string, obj client.Object) error {
	if !isObjectName(name) {
		return scimerr.NotFound("not found")
	}
	if err := from.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return apierror.ForClient(err, "object")
	}
	if !obj.GetDeletionTimestamp().IsZero() || pending(obj) {
		return scimerr.NotFound("not found")
	}
	return nil
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

// CachedUsers returns, from the cache, every user of the tenant not being deleted, oldest first (then by id),
// the stable order SCIM paging needs.
func (r *Repository) CachedUsers(ctx context.Context, namespace string) ([]scimv1.ProvisionedUser, error) {
	var list scimv1.ProvisionedUserList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, apierror.ForClient(err, "users")
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

// live drops terminating objects (their deletion was accepted already) and
// pending ones (their creation was not acknowledged yet).
func live[T any, PT interface {
	*T
	metav1.Object
}](items []T) []T {
	out := items[:0]
	for i := range items {
		if o := PT(&items[i]); o.GetDeletionTimestamp().IsZero() && !pending(o) {
			out = append(out, items[i])
		}
	}
	return out
}
