package repository

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// CreateUser stores a new user: under its first id when the userName was
// never used in the tenant (one API write), otherwise under a random id
// after claiming the userName (see claims.go). Either way two replicas
// creating the same user at once produce one user and one 409.
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
	r.touch(u)
	if err := r.knownHolder(ctx, p.Namespace, r.userKind().uniq, spec.UserName, ""); err != nil {
		return nil, err
	}
	created, err := r.createFirst(ctx, u)
	if err != nil {
		return nil, err
	}
	if created == nil {
		if created, err = r.createClaimed(ctx, u); err != nil {
			return nil, err
		}
	}
	r.Activity.add(p, "users created", 1)
	return created, nil
}

// createFirst creates u under the first id of its userName. It returns nil
// and no error when that id is taken by a user with another userName now,
// or retired: the caller then uses a random id and a claim.
func (r *Repository) createFirst(ctx context.Context, u *scimv1.ProvisionedUser) (*scimv1.ProvisionedUser, error) {
	uniq, ns, userName := r.userKind().uniq, u.Namespace, u.Spec.UserName
	if uniq.firstID == nil || r.usedBefore(ctx, ns, uniq.kind, userName) {
		return nil, nil
	}
	first := u.DeepCopy()
	first.Name = uniq.firstID(ns, userName)
	err := r.Client.Create(ctx, first)
	if apierrors.IsAlreadyExists(err) {
		state, err := uniq.holds(ctx, ns, first.Name, ClaimName(uniq.kind, userName))
		if err != nil {
			return nil, err
		}
		if state == ownerHolding {
			return nil, scimerr.Uniqueness("userName %q is already in use", userName)
		}
		return nil, nil
	}
	if err != nil {
		return nil, apiError(err, "user")
	}
	// The other half of the handshake in claims.go: a claim taken on
	// another replica before this create wins; a retired one means this
	// id belonged to someone before. Read-your-writes is awaited meanwhile.
	cached := make(chan struct{})
	go func() {
		defer close(cached)
		r.awaitCache(ctx, first, false)
	}()
	defer func() { <-cached }()
	c, err := r.claimOf(ctx, client.ObjectKey{Namespace: ns, Name: ClaimName(uniq.kind, userName)})
	held := false
	if err == nil && c != nil {
		held, err = r.heldBy(ctx, uniq, c, first.Name)
	}
	if err == nil && c == nil {
		return first, nil
	}
	// A claim exists: the value is contested, retired, or its claim is
	// stale. A stale claim is never judged so here without a write: its
	// writer fences by reading the claim again (stillClaimed), which only
	// a takeover changes. The first id is given back, and the claim path
	// takes the claim over with a write and fences (claim, fenceTakeover).
	uid := first.UID
	if derr := r.Client.Delete(ctx, first, client.Preconditions{UID: &uid}); derr != nil && !apierrors.IsNotFound(derr) {
		// Still there: it holds the userName through its first id, so a
		// second create must not follow. The client's retry finds it (409).
		return nil, apiError(derr, "user")
	}
	switch {
	case err != nil:
		return nil, err
	case held:
		return nil, scimerr.Uniqueness("userName %q is already in use", userName)
	}
	return nil, nil
}

// createClaimed creates u under a random id after claiming its userName.
func (r *Repository) createClaimed(ctx context.Context, u *scimv1.ProvisionedUser) (*scimv1.ProvisionedUser, error) {
	uniq := r.userKind().uniq
	u = u.DeepCopy()
	u.Name = uuid.NewString()
	if err := r.claim(ctx, u.Namespace, uniq, u.Spec.UserName, u.Name); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, u); err != nil {
		if definiteRefusal(err) {
			r.release(ctx, u.Namespace, uniq, u.Spec.UserName, u.Name)
		}
		return nil, apiError(err, "user")
	}
	if err := r.fenceCreate(ctx, uniq, u, u.Spec.UserName); err != nil {
		return nil, err
	}
	r.awaitCache(ctx, u, false)
	return u, nil
}

// fenceCreate checks, after obj was created under its claim on value, that
// the claim is still obj's (see claims.go); if another replica took it over
// meanwhile, obj is deleted again and the answer is 409.
func (r *Repository) fenceCreate(ctx context.Context, u uniqueness, obj client.Object, value string) error {
	ok, err := r.stillClaimed(ctx, obj.GetNamespace(), u, value, obj.GetName())
	if err == nil && ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceTimeout)
	defer cancel()
	uid := obj.GetUID()
	if derr := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); derr != nil && !apierrors.IsNotFound(derr) {
		return apiError(derr, string(u.kind))
	}
	if err != nil {
		return err
	}
	return scimerr.Uniqueness("%s %q is already in use", u.kind, value)
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
		return apiError(err, "object")
	}
	if !obj.GetDeletionTimestamp().IsZero() || pending(obj) {
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

// UsersBy returns the tenant's live users whose index field (IndexUserName,
// IndexExternalID, IndexEmail) equals value, through the UserIndex.
func (r *Repository) UsersBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error) {
	if r.Users == nil {
		return nil, fmt.Errorf("%w: the user index is not installed", ErrUnavailable)
	}
	return r.usersByIndex(ctx, namespace, index, value)
}

// CachedUsers returns, from the cache, every user of the tenant not being deleted, oldest first (then by id),
// the stable order SCIM paging needs.
func (r *Repository) CachedUsers(ctx context.Context, namespace string) ([]scimv1.ProvisionedUser, error) {
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

// pending reports whether obj is a group whose create was not acknowledged
// yet (scimv1.AnnotationPendingMembers).
func pending(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[scimv1.AnnotationPendingMembers]
	return ok
}
