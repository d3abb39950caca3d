package repository

import (
	"context"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Read-your-writes. A GET by id reads the API server (see GetUser), so it
// sees every write made on any replica. Filters read this replica's cache;
// after each write the request waits, briefly, until the cache has caught
// up with it, so that a filter right after a write on the same replica
// finds it (the validators PATCH and then filter). A write on another
// replica shows in filters once the watch delivers it, typically within
// milliseconds; the uniqueness claims keep even a stale "not found" from
// producing a duplicate.

// cacheWait bounds how long a write waits for its own cache.
const cacheWait = 2 * time.Second

// awaitCache waits until the cache holds obj at (at least) its
// resourceVersion, or, with gone set, no longer holds it live.
func (r *Repository) awaitCache(ctx context.Context, obj client.Object, gone bool) {
	want, _ := strconv.ParseUint(obj.GetResourceVersion(), 10, 64)
	key := client.ObjectKeyFromObject(obj)
	cur := obj.DeepCopyObject().(client.Object)
	ctx, cancel := context.WithTimeout(ctx, cacheWait)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(delay*2, 20*time.Millisecond) {
		err := r.Cache.Get(ctx, key, cur)
		switch {
		case gone && (apierrors.IsNotFound(err) || (err == nil && !cur.GetDeletionTimestamp().IsZero())):
			return
		case !gone && err == nil:
			have, _ := strconv.ParseUint(cur.GetResourceVersion(), 10, 64)
			if cur.GetResourceVersion() == obj.GetResourceVersion() || (want > 0 && have >= want) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
