package repository

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/retry"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
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
	guard  uniqueness.Guard
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
		guard: uniqueness.Guard{
			Claims: r.claims(), Kind: scimv1.ClaimUserName, FirstID: r.firstID(), Known: r.knownUsers(),
			Holders: holders[scimv1.ProvisionedUser, *scimv1.ProvisionedUser]{r: r, kind: "user", claimKind: scimv1.ClaimUserName, unique: userName},
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
		guard: uniqueness.Guard{
			Claims: r.claims(), Kind: scimv1.ClaimDisplayName,
			Holders: holders[scimv1.ProvisionedGroup, *scimv1.ProvisionedGroup]{r: r, kind: "group", claimKind: scimv1.ClaimDisplayName, unique: displayName},
		},
		restore:   func(dst, src *scimv1.ProvisionedGroup) { dst.Spec = src.Spec },
		setUnique: func(g *scimv1.ProvisionedGroup, v string) { g.Spec.DisplayName = v },
		prepare:   func(*scimv1.ProvisionedGroup) {},
	}
}

func (r *Repository) claims() *uniqueness.Claims {
	return &uniqueness.Claims{Client: r.Client, Live: r.Live, Cache: r.Cache, Now: r.now}
}

// firstID names the object that holds a userName without a claim; nil
// without a key, when every user is created under a claim.
func (r *Repository) firstID() func(namespace, value string) string {
	if len(r.IDKey) == 0 {
		return nil
	}
	return func(namespace, value string) string { return FirstUserID(r.IDKey, namespace, value) }
}

// errReadLive: the cached copy cannot decide; the attempt is made again
// from a live read, at once.
var errReadLive = errors.New("read live")

// updating is one update of one object (see update).
type updating[T any, PT object[T]] struct {
	r           *Repository
	k           kind[T]
	p           Principal
	id, ifMatch string
	mutate      func(PT) (changed bool, err error)
	cached      bool // the next read goes to the cache
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
	u := &updating[T, PT]{r: r, k: k, p: p, id: id, ifMatch: ifMatch, mutate: mutate, cached: r.Cache != nil}
	for backoff := retry.New(); ; {
		c, obj, err := u.prepare(ctx)
		if errors.Is(err, errReadLive) {
			u.cached = false
			continue
		}
		if err != nil || c == nil {
			return obj, err
		}
		sent, err := r.commit(ctx, *c)
		switch {
		case sent && err != nil:
			return nil, err
		case sent:
			return obj, nil
		case u.cached && apierrors.IsConflict(err):
			u.cached = false // the cache was behind: read live, at once
			continue
		case apierrors.IsConflict(err) && backoff.Wait(ctx):
			continue
		case apierrors.IsConflict(err) && ifMatch != "":
			return nil, scimerr.New(412, "", "%s %q kept changing while it was being updated", k.name, id)
		}
		return nil, apierror.ForClient(err, k.name)
	}
}

// prepare reads the object, checks it, and applies the mutation: the
// change to commit, or nil with the answer (obj, err) when nothing is to
// be written. errReadLive asks for a live read.
func (u *updating[T, PT]) prepare(ctx context.Context) (*change, PT, error) {
	obj := PT(new(T))
	from := u.r.Live
	if u.cached {
		from = u.r.Cache
	}
	if err := from.Get(ctx, client.ObjectKey{Namespace: u.p.Namespace, Name: u.id}, obj); err != nil {
		if u.cached {
			return nil, nil, errReadLive
		}
		return nil, nil, apierror.NotFoundAs(apierror.ForClient(err, u.k.name), "%s %q not found", u.k.name, u.id)
	}
	if err := u.check(obj); err != nil {
		return nil, nil, err
	}
	oldName, before := u.k.unique(obj), obj.DeepCopyObject().(PT)
	changed, err := u.mutate(obj)
	if u.cached && (err != nil || !changed) {
		return nil, nil, errReadLive
	}
	if err != nil || !changed {
		return nil, obj, err
	}
	u.k.prepare(obj)
	c := &change{p: u.p, obj: obj, send: func(ctx context.Context, o client.Object) error { return u.r.Client.Update(ctx, o) },
		counts: []count{{u.k.name + "s updated", 1}}}
	if newName := u.k.unique(obj); namekey.Key(oldName) != namekey.Key(newName) {
		if u.cached {
			return nil, nil, errReadLive // a rename claims: decided live only
		}
		c.name = &nameChange{guard: u.k.guard, from: oldName, to: newName, hold: byClaim,
			undo: func(ctx context.Context) error { return undoRename(ctx, u.r, u.k, obj, before) }}
	}
	return c, obj, nil
}

// check answers 404 for an object being deleted or not acknowledged yet
// and 412 for one whose version differs from If-Match; from the cache,
// either is confirmed live first.
func (u *updating[T, PT]) check(obj PT) error {
	gone := !obj.GetDeletionTimestamp().IsZero() || pending(obj)
	v := Version(obj)
	mismatch := u.ifMatch != "" && u.ifMatch != "*" && u.ifMatch != v
	switch {
	case u.cached && (gone || mismatch):
		return errReadLive
	case gone:
		return scimerr.NotFound("%s %q not found", u.k.name, u.id)
	case mismatch:
		return scimerr.New(412, "", "%s %q has version %s, not %s", u.k.name, u.id, v, u.ifMatch)
	}
	return nil
}

// undoRename writes before's spec back over written, whose rename lost its
// claim, unless a later SCIM write (another last-modified stamp) has
// replaced written meanwhile. It runs even when the client has gone away.
func undoRename[T any, PT object[T]](ctx context.Context, r *Repository, k kind[T], written, before PT) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uniqueness.FenceTimeout)
	defer cancel()
	key := client.ObjectKeyFromObject(written)
	for backoff := retry.New(); ; {
		cur := PT(new(T))
		if err := r.Live.Get(ctx, key, cur); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return apierror.ForClient(err, k.name)
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
		// An undo counts for no activity: the client's write failed.
		sent, err := r.commit(ctx, change{obj: cur, send: func(ctx context.Context, o client.Object) error { return r.Client.Update(ctx, o) }})
		if sent || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || !backoff.Wait(ctx) {
			return apierror.ForClient(err, k.name)
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
	for backoff := retry.New(); ; {
		obj := PT(new(T))
		if err := r.Live.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: id}, obj); err != nil {
			return apierror.NotFoundAs(apierror.ForClient(err, k.name), "%s %q not found", k.name, id)
		}
		if !obj.GetDeletionTimestamp().IsZero() || pending(obj) {
			return scimerr.NotFound("%s %q not found", k.name, id)
		}
		uid, rv := obj.GetUID(), obj.GetResourceVersion()
		pre := client.Preconditions{UID: &uid}
		if ifMatch != "" && ifMatch != "*" {
			if v := Version(obj); ifMatch != v {
				return scimerr.New(412, "", "%s %q has version %s, not %s", k.name, id, v, ifMatch)
			}
			// The version was checked at rv: delete exactly that.
			pre.ResourceVersion = &rv
		}
		sent, err := r.commit(ctx, change{p: p, obj: obj, gone: true,
			send:   func(ctx context.Context, o client.Object) error { return r.Client.Delete(ctx, o, pre) },
			name:   &nameChange{guard: k.guard, from: k.unique(obj)},
			counts: []count{{k.name + "s deleted", 1}}})
		if sent || err == nil {
			return err
		}
		// A conflict is the resourceVersion moving, which the controller's
		// status writes also do: read again and check the SCIM version
		// again, as update does, instead of answering 412 for a change
		// the client never made.
		if !apierrors.IsConflict(err) {
			return apierror.NotFoundAs(apierror.ForClient(err, k.name), "%s %q not found", k.name, id)
		}
		if !backoff.Wait(ctx) {
			return scimerr.New(412, "", "%s %q kept changing while it was being deleted", k.name, id)
		}
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
	if !cached || apierror.IsNotFound(err) {
		err = r.get(ctx, r.Live, namespace, id, obj)
	}
	if err != nil {
		return nil, apierror.NotFoundAs(err, "%s %q not found", kind, id)
	}
	return obj, nil
}
