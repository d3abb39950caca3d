package repository

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/uniqueness"
)

// The write path. Every create, update and delete of a user, group or
// membership shard is a change handed to commit, which performs the steps
// in their one correct order, so that no caller can skip or reorder one:
//
//  1. reserve the unique value the write takes (a claim, unless the object
//     holds it through its first id) and retire the first id of the value
//     it gives up (uniqueness.Guard);
//  2. stamp the last-modified annotation (meta.lastModified and the SCIM
//     version);
//  3. send the write; a write the API server certainly refused gives its
//     claim back;
//  4. fence: check the claim (or, for a first id, the absence of one) is
//     still ours, undoing the write otherwise, while waiting for this
//     replica's cache to hold the write (read-your-writes);
//  5. release the claim on the value given up;
//  6. count the write for its token's activity event.

// change is one write of one object.
type change struct {
	p   Principal
	obj client.Object
	// send performs the write of obj (Create, Update, Patch or Delete).
	send func(context.Context, client.Object) error
	// gone marks a deletion: no stamp, and the wait is for the cache to
	// drop obj.
	gone bool
	// name is the unique value the write takes or gives up, if any.
	name *nameChange
	// counts are what the write counts for the activity event. Shard
	// writes count nothing (the group's stamp that ends a membership
	// change counts its members), nor do undos.
	counts []count
}

// hold is how an object holds the unique value it takes.
type hold int

const (
	// byClaim: a NameClaim taken before the write and fenced after it.
	byClaim hold = iota
	// byEarlierClaim: a claim taken by an earlier write (a pending
	// group's create), fenced after this write, which completes it.
	byEarlierClaim
	// byFirstID: the object's name is the value's first id; after the
	// write, no claim on the value may exist (uniqueness.Guard.CheckFirst).
	byFirstID
)

// uniqueNames is all the write path asks of package uniqueness (a
// uniqueness.Guard); the handshake behind it is documented there.
type uniqueNames interface {
	KnownHolder(ctx context.Context, namespace, value, self string) error
	Claim(ctx context.Context, namespace, value, owner string) error
	RetireFirst(ctx context.Context, obj client.Object, value string) error
	Fence(ctx context.Context, namespace, value, owner string) error
	CheckFirst(ctx context.Context, namespace, value, owner string) error
	Release(ctx context.Context, namespace, value, owner string)
}

// nameChange is the unique value a write takes (to) or gives up (from).
type nameChange struct {
	guard uniqueNames
	from  string // "" none: retired (if a first id holds it) before, released after
	to    string // "" none: reserved before (as hold says), fenced after
	hold  hold
	// undo undoes the write when the fence finds the value lost; nil
	// leaves that to the caller (a pending group is abandoned).
	undo func(context.Context) error
}

type count struct {
	what string // "users created"
	n    int
}

// commit performs c. sent reports whether the API server accepted the
// write: when not, err is what stopped it (a failed reservation, or the
// API server's answer unchanged, for the caller to judge: a conflict may
// be retried); when it did, err means the write could not stand and was
// undone (or is the caller's to undo).
func (r *Repository) commit(ctx context.Context, c change) (sent bool, err error) {
	if err := r.reserve(ctx, c); err != nil {
		return false, err
	}
	if !c.gone {
		r.touch(c.obj)
	}
	if err := c.send(ctx, c.obj); err != nil {
		if n := c.name; n != nil && n.to != "" && n.hold == byClaim && apierror.DefiniteRefusal(err) {
			n.guard.Release(ctx, c.obj.GetNamespace(), n.to, c.obj.GetName())
		}
		return false, err
	}
	if err := r.settle(ctx, c); err != nil {
		return true, err
	}
	if n := c.name; n != nil && n.from != "" {
		n.guard.Release(ctx, c.obj.GetNamespace(), n.from, c.obj.GetName())
	}
	for _, k := range c.counts {
		r.Activity.Add(c.p.Namespace, c.p.TokenName, k.what, k.n)
	}
	return true, nil
}

// reserve takes the value c takes and retires the first id of the value it
// gives up, before the write.
func (r *Repository) reserve(ctx context.Context, c change) error {
	n := c.name
	if n == nil {
		return nil
	}
	ns, owner := c.obj.GetNamespace(), c.obj.GetName()
	if n.to != "" && n.hold != byEarlierClaim {
		if err := n.guard.KnownHolder(ctx, ns, n.to, owner); err != nil {
			return err
		}
	}
	if n.to != "" && n.hold == byClaim {
		if err := n.guard.Claim(ctx, ns, n.to, owner); err != nil {
			return err
		}
	}
	if n.from != "" {
		if err := n.guard.RetireFirst(ctx, c.obj, n.from); err != nil {
			if n.to != "" && n.hold == byClaim {
				n.guard.Release(ctx, ns, n.to, owner)
			}
			return err
		}
	}
	return nil
}

// settle fences the write while waiting for this replica's cache to hold
// it. A lost fence undoes the write and stops the wait.
func (r *Repository) settle(ctx context.Context, c change) error {
	fence := c.fence()
	if fence == nil {
		r.waiter().Await(ctx, c.obj, c.gone)
		return nil
	}
	waitCtx, stop := context.WithCancel(ctx)
	defer stop()
	waited := make(chan struct{})
	written := c.obj.DeepCopyObject().(client.Object)
	go func() {
		defer close(waited)
		r.waiter().Await(waitCtx, written, c.gone)
	}()
	err := fence(ctx)
	if err != nil {
		stop() // the write does not stand: nothing to wait for
		if undo := c.name.undo; undo != nil {
			if uerr := undo(ctx); uerr != nil {
				err = uerr
			}
		}
	}
	<-waited
	return err
}

// fence is the check after the write that the value it took is still its
// own; nil when there is nothing to check.
func (c change) fence() func(context.Context) error {
	n := c.name
	if n == nil || n.to == "" || c.gone {
		return nil
	}
	ns, owner := c.obj.GetNamespace(), c.obj.GetName()
	if n.hold == byFirstID {
		return func(ctx context.Context) error { return n.guard.CheckFirst(ctx, ns, n.to, owner) }
	}
	return func(ctx context.Context) error { return n.guard.Fence(ctx, ns, n.to, owner) }
}

// touch stamps the last-modified annotation (see Version).
func (r *Repository) touch(obj client.Object) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationLastModified] = r.now().UTC().Format(time.RFC3339Nano)
	obj.SetAnnotations(a)
}

// undoCreate deletes obj again after its create lost its value; it runs
// even when the client has gone away.
func (r *Repository) undoCreate(obj client.Object, what string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uniqueness.FenceTimeout)
		defer cancel()
		uid := obj.GetUID()
		if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return apierror.ForClient(err, what)
		}
		return nil
	}
}
