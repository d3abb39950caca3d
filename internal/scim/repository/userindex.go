package repository

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// UserIndex finds users by userName, externalId and email: the lookups
// Entra and Okta make before every write. It holds one map entry per value
// (the object's name, usually the only one with that value) where
// client-go's indexer holds a set per value, several times the size; at
// 100,000 users the difference is most of the operator's per-user memory
// (docs/benchmarks.md). It is kept by an event handler on the
// ProvisionedUser informer.
type UserIndex struct {
	mu   sync.RWMutex
	one  map[string]string              // key -> the object holding the value
	more map[string]map[string]struct{} // keys held by several objects (rare)
	// users counts each tenant's users, so that a query that would read
	// them all can be refused without reading any (CountUsers).
	users map[string]int

	// seenRV is the highest resourceVersion the handler has indexed.
	// Informers deliver events in order, so the index holds every change
	// up to it: what awaitCache waits for before a filter may run.
	seenRV  atomic.Uint64
	signals *CacheSignals
}

// NewUserIndex returns an empty index that wakes signals after each change.
func NewUserIndex(signals *CacheSignals) *UserIndex {
	return &UserIndex{one: map[string]string{}, more: map[string]map[string]struct{}{}, users: map[string]int{}, signals: signals}
}

// indexKey is "<index>\x00<namespace>\x00<value>": one map for all indexes,
// and a lookup never crosses tenants.
func indexKey(index, namespace, value string) string {
	return index + "\x00" + namespace + "\x00" + value
}

// userKeys are the index keys of u, with the values IndexUserName,
// IndexExternalID and IndexEmail stand for.
func userKeys(u *scimv1.ProvisionedUser) []string {
	keys := make([]string, 0, 2+len(u.Spec.Emails))
	keys = append(keys, indexKey(IndexUserName, u.Namespace, namekey.Key(u.Spec.UserName)))
	if u.Spec.ExternalID != "" {
		keys = append(keys, indexKey(IndexExternalID, u.Namespace, u.Spec.ExternalID))
	}
	for _, e := range u.Spec.Emails {
		if e.Value != "" {
			keys = append(keys, indexKey(IndexEmail, u.Namespace, namekey.Key(e.Value)))
		}
	}
	return keys
}

// Handler keeps the index; install it on the ProvisionedUser informer.
func (x *UserIndex) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { x.change(nil, obj) },
		UpdateFunc: func(old, obj any) {
			x.change(old, obj)
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			x.change(obj, nil)
		},
	}
}

func (x *UserIndex) change(oldObj, newObj any) {
	oldU, _ := oldObj.(*scimv1.ProvisionedUser)
	newU, _ := newObj.(*scimv1.ProvisionedUser)
	x.mu.Lock()
	if oldU != nil {
		for _, k := range userKeys(oldU) {
			x.remove(k, oldU.Name)
		}
	}
	if newU != nil {
		for _, k := range userKeys(newU) {
			x.add(k, newU.Name)
		}
	}
	switch {
	case oldU == nil && newU != nil:
		x.users[newU.Namespace]++
	case oldU != nil && newU == nil:
		if x.users[oldU.Namespace]--; x.users[oldU.Namespace] <= 0 {
			delete(x.users, oldU.Namespace)
		}
	}
	x.mu.Unlock()
	latest := newU
	if latest == nil {
		latest = oldU
	}
	if latest == nil {
		return
	}
	if rv, err := strconv.ParseUint(latest.ResourceVersion, 10, 64); err == nil {
		for cur := x.seenRV.Load(); rv > cur && !x.seenRV.CompareAndSwap(cur, rv); cur = x.seenRV.Load() {
		}
	}
	x.signals.signal(latest)
}

func (x *UserIndex) add(key, name string) {
	if set, ok := x.more[key]; ok {
		set[name] = struct{}{}
		return
	}
	cur, ok := x.one[key]
	switch {
	case !ok:
		x.one[key] = name
	case cur != name:
		delete(x.one, key)
		x.more[key] = map[string]struct{}{cur: {}, name: {}}
	}
}

func (x *UserIndex) remove(key, name string) {
	if set, ok := x.more[key]; ok {
		delete(set, name)
		if len(set) == 1 {
			delete(x.more, key)
			for n := range set {
				x.one[key] = n
			}
		}
		return
	}
	if x.one[key] == name {
		delete(x.one, key)
	}
}

// Names returns the names of the users of namespace whose index field
// equals value (lower-cased already for case-insensitive fields).
func (x *UserIndex) Names(index, namespace, value string) []string {
	key := indexKey(index, namespace, value)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n, ok := x.one[key]; ok {
		return []string{n}
	}
	names := make([]string, 0, len(x.more[key]))
	for n := range x.more[key] {
		names = append(names, n)
	}
	return names
}

// knownUsers looks userNames up in the index; nil without one (tests that
// build a Repository by hand).
func (r *Repository) knownUsers() func(namespace, value string) []string {
	if r.Users == nil {
		return nil
	}
	return func(namespace, value string) []string {
		return r.Users.Names(IndexUserName, namespace, namekey.Key(value))
	}
}

// Count returns how many users of namespace the index holds, terminating
// ones included.
func (x *UserIndex) Count(namespace string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.users[namespace]
}

// Seen reports whether the index holds every change up to resourceVersion
// rv.
func (x *UserIndex) Seen(rv uint64) bool { return x.seenRV.Load() >= rv }

// InstallHandlers adds the repository's informer event handlers (the user
// index, the signals that wake waiting writes) to the cache, creating Users
// and Signals when unset. Call it before the manager starts; the returned
// functions report when the handlers have seen every object.
func (r *Repository) InstallHandlers(ctx context.Context, informers Informers) ([]toolscache.InformerSynced, error) {
	if r.Signals == nil {
		r.Signals = NewCacheSignals()
	}
	if r.Users == nil {
		r.Users = NewUserIndex(r.Signals)
	}
	var synced []toolscache.InformerSynced
	for _, h := range []struct {
		obj     client.Object
		handler toolscache.ResourceEventHandler
	}{
		{&scimv1.ProvisionedUser{}, r.Users.Handler()},
		{&scimv1.ProvisionedGroup{}, r.Signals.Handler()},
		{&scimv1.GroupMembership{}, r.Signals.Handler()},
	} {
		inf, err := informers.GetInformer(ctx, h.obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("watching %T: %w", h.obj, err)
		}
		reg, err := inf.AddEventHandler(h.handler)
		if err != nil {
			return nil, fmt.Errorf("watching %T: %w", h.obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return synced, nil
}

// usersByIndex looks users up through the UserIndex and reads each from
// the cache (a copy, like a List would return).
func (r *Repository) usersByIndex(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error) {
	var out []scimv1.ProvisionedUser
	for _, name := range r.Users.Names(index, namespace, value) {
		var u scimv1.ProvisionedUser
		if err := r.get(ctx, r.Cache, namespace, name, &u); err != nil {
			if e, ok := scimerr.As(err); ok && e.Status == 404 {
				continue // deleted or terminating since the index saw it
			}
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
