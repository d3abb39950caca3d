package repository

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// object is a pointer to a ProvisionedUser or ProvisionedGroup.
type object[T any] interface {
	*T
	client.Object
}

// kind describes what updates and deletions of users and groups differ in:
// the unique attribute they claim and how the claim's owner is checked.
type kind[T any] struct {
	name   string // "user", "group"
	uniq   uniqueness
	unique func(*T) string // the claimed value (userName, displayName)
	// prepare adjusts the object before it is written (labels).
	prepare func(*T)
	// restore copies src's spec onto dst (undoing a write).
	restore func(dst, src *T)
	// setUnique sets the unique value.
	setUnique func(*T, string)
}

func (r *Repository) userKind() kind[scimv1.ProvisionedUser] {
	userName := func(u *scimv1.ProvisionedUser) string { return u.Spec.UserName }
	return kind[scimv1.ProvisionedUser]{
		name: "user", unique: userName,
		uniq: uniqueness{
			kind: scimv1.ClaimUserName, firstID: r.firstID(), known: r.knownUsers(),
			holds: holds[scimv1.ProvisionedUser](r, "user", scimv1.ClaimUserName, userName),
		},
		restore:   func(dst, src *scimv1.ProvisionedUser) { dst.Spec = *src.Spec.DeepCopy() },
		setUnique: func(u *scimv1.ProvisionedUser, v string) { u.Spec.UserName = v },
		prepare: func(u *scimv1.ProvisionedUser) {
			if u.Labels == nil {
				u.Labels = map[string]string{}
			}
			u.Labels[scimv1.LabelActive] = "true"
			if !u.IsActive() {
				u.Labels[scimv1.LabelActive] = "false"
			}
		},
	}
}

func (r *Repository) groupKind() kind[scimv1.ProvisionedGroup] {
	displayName := func(g *scimv1.ProvisionedGroup) string { return g.Spec.DisplayName }
	return kind[scimv1.ProvisionedGroup]{
		name: "group", unique: displayName,
		uniq: uniqueness{
			kind:  scimv1.ClaimDisplayName,
			holds: holds[scimv1.ProvisionedGroup](r, "group", scimv1.ClaimDisplayName, displayName),
		},
		restore:   func(dst, src *scimv1.ProvisionedGroup) { dst.Spec = src.Spec },
		setUnique: func(g *scimv1.ProvisionedGroup, v string) { g.Spec.DisplayName = v },
		prepare:   func(*scimv1.ProvisionedGroup) {},
	}
}

// update reads the object, lets mutate change it, and writes it back,
// retrying when another writer got there first. A changed unique value is
// claimed before the write and the old claim released after it. ifMatch,
// when set, must equal the object's SCIM version, otherwise 412; it is
// checked again on every retry, so a controller's status write in between
// is no reason for a 412.
//
// The first attempt reads the cache and writes with the cached
// resourceVersion: the API server refuses the write (409) unless the
// object is still exactly what was read, so the write is as safe as after
// a live read, and costs one round trip instead of two. Every decision a
// stale cache could get wrong is confirmed live before it is answered: a
// conflict, not found or being deleted, an If-Match that differs, a
// mutation that changes nothing or fails, and a rename (its claims are
// made before the write).
func update[T any, PT object[T]](ctx context.Context, r *Repository, k kind[T], p Principal, id, ifMatch string,
	mutate func(PT) (changed bool, err error)) (PT, error) {
	if !isObjectName(id) {
		return nil, scimerr.NotFound("%s %q not found", k.name, id)
	}
	cached := r.Cache != nil
	for retry := newRetrier(); ; {
		obj := PT(new(T))
		from := r.Live
		if cached {
			from = r.Cache
		}
		if err := from.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: id}, obj); err != nil {
			if cached {
				cached = false
				continue
			}
			return nil, notFoundAs(apiError(err, k.name), "%s %q not found", k.name, id)
		}
		gone := !obj.GetDeletionTimestamp().IsZero() || pending(obj)
		v := versionOf(obj)
		mismatch := ifMatch != "" && ifMatch != "*" && ifMatch != v
		if cached && (gone || mismatch) {
			cached = false
			continue
		}
		if gone {
			return nil, scimerr.NotFound("%s %q not found", k.name, id)
		}
		if mismatch {
			return nil, scimerr.New(412, "", "%s %q has version %s, not %s", k.name, id, v, ifMatch)
		}
		oldName, before := k.unique(obj), obj.DeepCopyObject().(PT)
		changed, err := mutate(obj)
		if cached && (err != nil || !changed) {
			cached = false
			continue
		}
		if err != nil || !changed {
			return obj, err
		}
		newName := k.unique(obj)
		renamed := namekey.Key(oldName) != namekey.Key(newName)
		if cached && renamed {
			cached = false
			continue
		}
		if renamed {
			if err := r.knownHolder(ctx, p.Namespace, k.uniq, newName, id); err != nil {
				return nil, err
			}
			if err := r.claim(ctx, p.Namespace, k.uniq, newName, id); err != nil {
				return nil, err
			}
			if err := r.retireFirst(ctx, k.uniq, obj, oldName); err != nil {
				r.release(ctx, p.Namespace, k.uniq, newName, id)
				return nil, err
			}
		}
		k.prepare(obj)
		r.touch(obj)
		err = r.Client.Update(ctx, obj)
		if err == nil && renamed {
			if err := fenceRename(ctx, r, k, obj, before, newName); err != nil {
				return nil, err
			}
		}
		if err == nil {
			r.awaitCache(ctx, obj, false)
			if renamed {
				r.release(ctx, p.Namespace, k.uniq, oldName, id)
			}
			r.Activity.add(p, k.name+"s updated", 1)
			return obj, nil
		}
		if renamed && definiteRefusal(err) {
			r.release(ctx, p.Namespace, k.uniq, newName, id)
		}
		if cached && apierrors.IsConflict(err) {
			// The cache was behind: read live, at once.
			cached = false
			continue
		}
		if !apierrors.IsConflict(err) || !retry.wait(ctx) {
			if apierrors.IsConflict(err) && ifMatch != "" {
				return nil, scimerr.New(412, "", "%s %q kept changing while it was being updated", k.name, id)
			}
			return nil, apiError(err, k.name)
		}
	}
}

// fenceRename checks, after obj was renamed to value under its claim, that
// the claim is still obj's (see claims.go). If another replica took it
// over meanwhile, the rename is undone (the whole write: before's spec
// comes back) and the answer is 409.
func fenceRename[T any, PT object[T]](ctx context.Context, r *Repository, k kind[T], obj, before PT, value string) error {
	ok, err := r.stillClaimed(ctx, obj.GetNamespace(), k.uniq, value, obj.GetName())
	if err == nil && ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceTimeout)
	defer cancel()
	if uerr := undo(ctx, r, k, obj, before); uerr != nil {
		return uerr
	}
	if err != nil {
		return err
	}
	return scimerr.Uniqueness("%s %q is already in use", k.uniq.kind, value)
}

// undo writes before's spec back over written, unless a later SCIM write
// (another last-modified stamp) has replaced written meanwhile.
func undo[T any, PT object[T]](ctx context.Context, r *Repository, k kind[T], written, before PT) error {
	key := client.ObjectKeyFromObject(written)
	for retry := newRetrier(); ; {
		cur := PT(new(T))
		if err := r.Live.Get(ctx, key, cur); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return apiError(err, k.name)
		}
		switch {
		case cur.GetAnnotations()[AnnotationLastModified] == written.GetAnnotations()[AnnotationLastModified]:
			k.restore(cur, before) // the whole write is undone
		case namekey.Key(k.unique(cur)) == namekey.Key(k.unique(written)):
			// A later write kept the name it may not hold: only the name
			// goes back, the later write's other changes stay.
			k.setUnique(cur, k.unique(before))
		default:
			return nil // renamed again since: it no longer holds the value
		}
		k.prepare(cur)
		r.touch(cur)
		err := r.Client.Update(ctx, cur)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || !retry.wait(ctx) {
			return apiError(err, k.name)
		}
	}
}

// remove deletes an object. The helpdesk finalizer keeps it until the
// database has seen the deletion, but SCIM treats it as gone at once, and
// its unique name is free again.
func remove[T any, PT object[T]](ctx context.Context, r *Repository, k kind[T], p Principal, id, ifMatch string) error {
	if !isObjectName(id) {
		return scimerr.NotFound("%s %q not found", k.name, id)
	}
	for retry := newRetrier(); ; {
		obj := PT(new(T))
		if err := r.Live.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: id}, obj); err != nil {
			return notFoundAs(apiError(err, k.name), "%s %q not found", k.name, id)
		}
		if !obj.GetDeletionTimestamp().IsZero() || pending(obj) {
			return scimerr.NotFound("%s %q not found", k.name, id)
		}
		uid, rv := obj.GetUID(), obj.GetResourceVersion()
		pre := client.Preconditions{UID: &uid}
		if ifMatch != "" && ifMatch != "*" {
			if v := versionOf(obj); ifMatch != v {
				return scimerr.New(412, "", "%s %q has version %s, not %s", k.name, id, v, ifMatch)
			}
			// The version was checked at rv: delete exactly that.
			pre.ResourceVersion = &rv
		}
		if err := r.retireFirst(ctx, k.uniq, obj, k.unique(obj)); err != nil {
			return err
		}
		err := r.Client.Delete(ctx, obj, pre)
		if err == nil {
			r.awaitCache(ctx, obj, true)
			r.release(ctx, p.Namespace, k.uniq, k.unique(obj), id)
			r.Activity.add(p, k.name+"s deleted", 1)
			return nil
		}
		// A conflict is the resourceVersion moving, which the controller's
		// status writes also do: read again and check the SCIM version
		// again, as update does, instead of answering 412 for a change
		// the client never made.
		if !apierrors.IsConflict(err) {
			return notFoundAs(apiError(err, k.name), "%s %q not found", k.name, id)
		}
		if !retry.wait(ctx) {
			return scimerr.New(412, "", "%s %q kept changing while it was being deleted", k.name, id)
		}
	}
}

func versionOf(obj client.Object) string { return Version(obj) }

// retireFirst retires value before obj gives it up (rename, deletion) if
// obj holds it through its first id (see claims.go).
func (r *Repository) retireFirst(ctx context.Context, u uniqueness, obj client.Object, value string) error {
	if u.firstID == nil || u.firstID(obj.GetNamespace(), value) != obj.GetName() {
		return nil
	}
	return r.retire(ctx, obj.GetNamespace(), u, value, obj.GetName())
}

// holds reports whether the owner of a claim (alive, not terminating) still
// has a value under that claim (the same canonical key).
func holds[T any, PT object[T]](r *Repository, kindName string, claimKind scimv1.ClaimKind, unique func(*T) string) ownerHolds {
	return func(ctx context.Context, namespace, owner, claim string) (ownerState, error) {
		obj := PT(new(T))
		if err := r.Live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: owner}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return ownerMissing, nil
			}
			return ownerReleased, apiError(err, kindName)
		}
		if pending(obj) {
			return ownerMissing, nil // a create not acknowledged yet: in flight or abandoned
		}
		if obj.GetDeletionTimestamp().IsZero() && ClaimName(claimKind, unique(obj)) == claim {
			return ownerHolding, nil
		}
		return ownerReleased, nil
	}
}

// read returns a live (not terminating) object of the tenant: from the API
// server, or, with cached set, from the cache first.
func read[T any, PT object[T]](ctx context.Context, r *Repository, kind, namespace, id string, cached bool) (PT, error) {
	obj := PT(new(T))
	var err error
	if cached {
		err = r.get(ctx, r.Cache, namespace, id, obj)
	}
	if e, ok := scimerr.As(err); !cached || (ok && e.Status == 404) {
		err = r.get(ctx, r.Live, namespace, id, obj)
	}
	if err != nil {
		return nil, notFoundAs(err, "%s %q not found", kind, id)
	}
	return obj, nil
}
