package controllers

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// The four reconcilers share one shape (Cluster API's):
//
//	get the object (gone: nothing to do)
//	deleting → reconcileDelete, which removes the finalizer last
//	addFinalizer, before anything reaches a database or a Secret
//	snapshot := snapshotStatus(obj); defer snapshot.patch(...)
//	reconcileNormal: small phase functions that only change obj.Status
//
// Status is computed in memory during the reconcile and written once, in
// the deferred patch, and only when it changed. Events use corev1's
// EventType constants, logs ctrl.LoggerFrom(ctx), time a clock.PassiveClock.

// addFinalizer adds name to obj. It reports whether it wrote: the
// caller's reconcile starts again from the update.
func addFinalizer(ctx context.Context, c client.Client, obj client.Object, name string) (bool, error) {
	if controllerutil.ContainsFinalizer(obj, name) {
		return false, nil
	}
	if err := patchFinalizers(ctx, c, obj, func(o client.Object) bool { return controllerutil.AddFinalizer(o, name) }); err != nil {
		return true, fmt.Errorf("adding finalizer %s: %w", name, err)
	}
	return true, nil
}

// removeFinalizer removes name from obj, the last step of a deletion; an
// object already gone is fine.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object, name string) error {
	err := patchFinalizers(ctx, c, obj, func(o client.Object) bool { return controllerutil.RemoveFinalizer(o, name) })
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer %s: %w", name, err)
	}
	return nil
}

// patchFinalizers applies change to obj's finalizers with a patch that
// fails on a concurrent change (a merge patch replaces the whole list, so
// without the lock another writer's finalizer could be lost). A conflict
// is mostly a status write that landed after the cache read (the
// ScimToken's usage stamps, a sync's own status): the object is read
// again and the change retried, instead of failing the reconcile and
// repeating its side effects.
func patchFinalizers(ctx context.Context, c client.Client, obj client.Object, change func(client.Object) bool) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		base := obj.DeepCopyObject().(client.Object)
		if !change(obj) {
			return nil
		}
		err := c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			if gerr := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); gerr != nil {
				return gerr
			}
		}
		return err
	})
}

// statusSnapshot is an object as the reconcile read it; patch writes the
// status the reconcile computed since.
type statusSnapshot struct {
	before client.Object
}

func snapshotStatus(obj client.Object) statusSnapshot {
	return statusSnapshot{before: obj.DeepCopyObject().(client.Object)}
}

// patch sends a merge patch of obj's status when it differs from the
// snapshot's: one write per reconcile at most, none for a resync that
// found nothing to do. A merge patch leaves alone the fields other writers
// own (a ScimToken's lastUsedAt). An object deleted meanwhile, or a
// manager stopping (Ctrl-C: the next start reconciles everything again),
// is not an error.
func (s statusSnapshot) patch(ctx context.Context, c client.Client, obj client.Object) error {
	if equality.Semantic.DeepEqual(statusOf(s.before), statusOf(obj)) {
		return nil
	}
	err := c.Status().Patch(ctx, obj, client.MergeFrom(s.before))
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return nil //nolint:nilerr // the manager is stopping; see above
	}
	return fmt.Errorf("writing status: %w", err)
}

// statusOf is the status of one of the kinds the reconcilers write.
func statusOf(obj client.Object) any {
	switch o := obj.(type) {
	case *scimv1.ProvisionedUser:
		return &o.Status
	case *scimv1.ProvisionedGroup:
		return &o.Status
	case *scimv1.ProvisioningConfig:
		return &o.Status
	case *scimv1.ScimToken:
		return &o.Status
	}
	return obj // another kind: compared whole
}
