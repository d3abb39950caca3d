// Package consistency gives read-your-writes on one replica. A GET by id
// reads the API server, so it sees every write made on any replica.
// Filters read this replica's cache; after each write the request waits,
// briefly, until the cache has caught up with it (Await), so that a filter
// right after a write on the same replica finds it (the validators PATCH
// and then filter). A write on another replica shows in filters once the
// watch delivers it, typically within milliseconds; the uniqueness claims
// keep even a stale "not found" from producing a duplicate.
//
// resourceVersions are compared with apimachinery's
// resourceversion.CompareResourceVersion, never parsed here: they are
// opaque strings that only promise an order among objects of one resource.
package consistency

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MaxWait bounds how long a write waits for its own cache.
const MaxWait = 2 * time.Second

// Reached reports whether resourceVersion have is at least want: equal, or
// later by apimachinery's comparison. Versions that are not comparable
// (empty, malformed) count as reached only when equal.
func Reached(have, want string) bool {
	if have == want {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(have, want)
	return err == nil && c >= 0
}

// Signals wakes writes waiting for their own cache (Await) as soon as the
// informer stored their object, instead of at the next poll: a request
// that waits shorter holds its client's connection shorter, and Entra
// sends a tenant's requests over a few connections.
type Signals struct {
	mu      sync.Mutex
	waiting map[client.ObjectKey]map[chan struct{}]struct{}
}

// NewSignals returns signals to install with Handler on the informers of
// the kinds the repository writes.
func NewSignals() *Signals {
	return &Signals{waiting: map[client.ObjectKey]map[chan struct{}]struct{}{}}
}

// Handler is the informer event handler that sends the signals. Informers
// call it after their store holds the change.
func (c *Signals) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.Signal(obj) },
		UpdateFunc: func(_, obj any) { c.Signal(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			c.Signal(obj)
		},
	}
}

// Signal wakes the writes waiting for obj (a client.Object; anything else
// is ignored). Handlers other than Handler's (the user index) call it once
// their own state holds the change.
func (c *Signals) Signal(obj any) {
	o, ok := obj.(client.Object)
	if !ok || c == nil {
		return
	}
	key := client.ObjectKeyFromObject(o)
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.waiting[key] {
		select {
		case ch <- struct{}{}:
		default: // already signalled; the waiter looks at the cache anyway
		}
	}
}

// wait registers a waiter for key; call the returned function when done.
func (c *Signals) wait(key client.ObjectKey) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	if c == nil {
		return ch, func() {}
	}
	c.mu.Lock()
	if c.waiting[key] == nil {
		c.waiting[key] = map[chan struct{}]struct{}{}
	}
	c.waiting[key][ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.waiting[key], ch)
		if len(c.waiting[key]) == 0 {
			delete(c.waiting, key)
		}
		c.mu.Unlock()
	}
}

// Waiter waits for this replica's cache to hold a write.
type Waiter struct {
	Cache client.Reader
	// Signals, when set, wakes the wait as soon as the informer has the
	// object; without it the wait polls (then up to 20 ms late).
	Signals *Signals
	// Indexed, when set, must also report an object written at
	// resourceVersion rv as seen (state kept beside the cache, such as
	// the user index, which filters read instead of the cache).
	Indexed func(obj client.Object, rv string) bool
}

// Await waits until the cache holds obj at (at least) its resourceVersion,
// or, with gone set, no longer holds it live, for at most MaxWait. It
// looks again whenever the informer signals a change of obj, and polls as
// well.
func (w Waiter) Await(ctx context.Context, obj client.Object, gone bool) {
	want := obj.GetResourceVersion()
	key := client.ObjectKeyFromObject(obj)
	cur := obj.DeepCopyObject().(client.Object)
	signalled, done := w.Signals.wait(key) // before the first look: no change is missed
	defer done()
	ctx, cancel := context.WithTimeout(ctx, MaxWait)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(delay*2, 20*time.Millisecond) {
		err := w.Cache.Get(ctx, key, cur)
		switch {
		case gone && (apierrors.IsNotFound(err) || (err == nil && !cur.GetDeletionTimestamp().IsZero())):
			return
		case !gone && err == nil:
			if Reached(cur.GetResourceVersion(), want) && (w.Indexed == nil || w.Indexed(obj, want)) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-signalled:
		case <-time.After(delay):
		}
	}
}

// HighWater is the highest resourceVersion an event handler has seen of
// one resource. Informers deliver events in order, so a handler that has
// seen version v holds every change up to v.
type HighWater struct {
	mu sync.RWMutex
	rv string
}

// Observe records rv if it is later than any seen; malformed versions are
// ignored.
func (h *HighWater) Observe(rv string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rv == "" {
		if _, err := resourceversion.CompareResourceVersion(rv, rv); err == nil {
			h.rv = rv
		}
		return
	}
	if c, err := resourceversion.CompareResourceVersion(rv, h.rv); err == nil && c > 0 {
		h.rv = rv
	}
}

// Seen reports whether every change up to rv has been seen. A malformed rv
// cannot be waited for and counts as seen.
func (h *HighWater) Seen(rv string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	c, err := resourceversion.CompareResourceVersion(h.rv, rv)
	if err == nil {
		return c >= 0
	}
	_, bad := resourceversion.CompareResourceVersion(rv, rv)
	return bad != nil
}
