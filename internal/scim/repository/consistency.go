package repository

import (
	"context"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// Read-your-writes. A GET by id reads the API server (see LiveUser), so it
// sees every write made on any replica. Filters read this replica's cache;
// after each write the request waits, briefly, until the cache has caught
// up with it, so that a filter right after a write on the same replica
// finds it (the validators PATCH and then filter). A write on another
// replica shows in filters once the watch delivers it, typically within
// milliseconds; the uniqueness claims keep even a stale "not found" from
// producing a duplicate.

// cacheWait bounds how long a write waits for its own cache.
const cacheWait = 2 * time.Second

// CacheSignals wakes writes waiting for their own cache (awaitCache) as
// soon as the informer stored their object, instead of at the next poll:
// a request that waits shorter holds its client's connection shorter, and
// Entra sends a tenant's requests over a few connections.
type CacheSignals struct {
	mu      sync.Mutex
	waiting map[client.ObjectKey]map[chan struct{}]struct{}
}

// NewCacheSignals returns signals to install with Handler on the informers
// of the kinds the repository writes.
func NewCacheSignals() *CacheSignals {
	return &CacheSignals{waiting: map[client.ObjectKey]map[chan struct{}]struct{}{}}
}

// Handler is the informer event handler that sends the signals. Informers
// call it after their store holds the change.
func (c *CacheSignals) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.signal(obj) },
		UpdateFunc: func(_, obj any) { c.signal(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			c.signal(obj)
		},
	}
}

func (c *CacheSignals) signal(obj any) {
	o, ok := obj.(client.Object)
	if !ok {
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
func (c *CacheSignals) wait(key client.ObjectKey) (<-chan struct{}, func()) {
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

// indexed reports whether the UserIndex has caught up with a user's write
// too (filters read it, not the cache).
func (r *Repository) indexed(obj client.Object, rv uint64) bool {
	if _, ok := obj.(*scimv1.ProvisionedUser); !ok || r.Users == nil || rv == 0 {
		return true
	}
	return r.Users.Seen(rv)
}

// awaitCache waits until the cache holds obj at (at least) its
// resourceVersion, or, with gone set, no longer holds it live. It looks
// again whenever the informer signals a change of obj, and polls as well,
// so it works without signals (then up to 20 ms late).
func (r *Repository) awaitCache(ctx context.Context, obj client.Object, gone bool) {
	want, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	key := client.ObjectKeyFromObject(obj)
	cur := obj.DeepCopyObject().(client.Object)
	signalled, done := r.Signals.wait(key) // before the first look: no change is missed
	defer done()
	ctx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(delay*2, 20*time.Millisecond) {
		err := r.Cache.Get(ctx, key, cur)
		switch {
		case gone && (apierrors.IsNotFound(err) || (err == nil && !cur.GetDeletionTimestamp().IsZero())):
			return
		case !gone && err == nil:
			have, _ := strconv.ParseUint(cur.GetResourceVersion(), 10, 64)
			if (cur.GetResourceVersion() == obj.GetResourceVersion() || (want > 0 && have >= want)) && r.indexed(obj, want) {
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
