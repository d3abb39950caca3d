package repository

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
)

// holders answers uniqueness's questions about users or groups
// (uniqueness.Holders): does an owner, alive and not terminating, still
// have a value under that claim (the same canonical key)?
type holders[T any, PT object[T]] struct {
	r         *Repository
	kind      string // "user", "group"
	claimKind scimv1.ClaimKind
	unique    func(*T) string
}

func (h holders[T, PT]) Holds(ctx context.Context, namespace, owner, claim string) (uniqueness.OwnerState, error) {
	obj := PT(new(T))
	if err := h.r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return uniqueness.Missing, nil
		}
		return uniqueness.Released, apierror.ForClient(err, h.kind)
	}
	if pending(obj) {
		return uniqueness.Missing, nil // a create not acknowledged yet: in flight or abandoned
	}
	if obj.GetDeletionTimestamp().IsZero() && ClaimName(h.claimKind, h.unique(obj)) == claim {
		return uniqueness.Holding, nil
	}
	return uniqueness.Released, nil
}

func (h holders[T, PT]) CachedHolds(ctx context.Context, namespace, owner, claim string) (bool, error) {
	obj := PT(new(T))
	if err := h.r.Cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner}, obj, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, apierror.ForClient(err, "name claim owner")
	}
	if !obj.GetDeletionTimestamp().IsZero() || pending(obj) {
		return false, nil
	}
	return ClaimName(h.claimKind, h.unique(obj)) == claim, nil
}

// pending reports whether obj is a group whose create was not acknowledged
// yet (scimv1.AnnotationPendingMembers).
func pending(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[scimv1.AnnotationPendingMembers]
	return ok
}
