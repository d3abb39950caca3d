// Package userindex finds users by userName, externalId and email: the
// lookups Entra and Okta make before every write. It holds one map entry
// per value (the object's name, usually the only one with that value)
// where client-go's indexer holds a set per value, several times the size;
// at 100,000 users the difference is most of the operator's per-user
// memory (docs/benchmarks.md). Each tenant and field has a map of its own,
// keyed by the value itself: a value already in its canonical form (an
// externalId, a lower-case userName) is the cached object's own string, not
// a copy. An event handler on the ProvisionedUser informer keeps it.
package userindex

import (
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
)

// The fields the index finds users by. Values of case-insensitive
// attributes are looked up under namekey.Key.
const (
	UserName   = "scim.userName"   // namekey.Key(userName)
	ExternalID = "scim.externalId" // exact externalId
	Email      = "scim.email"      // namekey.Key(emails[].value)
)

// Index is the user index.
type Index struct {
	mu   sync.RWMutex
	one  map[scope]map[string]string              // value -> the object holding it
	more map[scope]map[string]map[string]struct{} // values held by several objects (rare)
	// users counts each tenant's users, so that a query that would read
	// them all can be refused without reading any (Count).
	users map[string]int

	// seen is the highest resourceVersion the handler has indexed: what a
	// write waits for before a filter may run.
	seen    consistency.HighWater
	signals *consistency.Signals
}

// New returns an empty index that wakes signals after each change.
func New(signals *consistency.Signals) *Index {
	return &Index{one: map[scope]map[string]string{}, more: map[scope]map[string]map[string]struct{}{}, users: map[string]int{}, signals: signals}
}

// scope is one field of one tenant: a lookup never crosses tenants.
type scope struct{ index, namespace string }

// key is one value of a user in one scope.
type key struct {
	scope
	value string
}

// userKeys are the index keys of u.
func userKeys(u *scimv1.ProvisionedUser) []key {
	keys := make([]key, 0, 2+len(u.Spec.Emails))
	keys = append(keys, key{scope{UserName, u.Namespace}, namekey.Key(u.Spec.UserName)})
	if u.Spec.ExternalID != "" {
		keys = append(keys, key{scope{ExternalID, u.Namespace}, u.Spec.ExternalID})
	}
	for _, e := range u.Spec.Emails {
		if e.Value != "" {
			keys = append(keys, key{scope{Email, u.Namespace}, namekey.Key(e.Value)})
		}
	}
	return keys
}

// Handler keeps the index; install it on the ProvisionedUser informer.
func (x *Index) Handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { x.change(nil, obj) },
		UpdateFunc: func(old, obj any) { x.change(old, obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			x.change(obj, nil)
		},
	}
}

func (x *Index) change(oldObj, newObj any) {
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
	x.seen.Observe(latest.ResourceVersion)
	x.signals.Signal(latest)
}

func (x *Index) add(k key, name string) {
	if set, ok := x.more[k.scope][k.value]; ok {
		set[name] = struct{}{}
		return
	}
	one := x.one[k.scope]
	if one == nil {
		one = map[string]string{}
		x.one[k.scope] = one
	}
	cur, ok := one[k.value]
	switch {
	case !ok:
		one[k.value] = name
	case cur != name:
		delete(one, k.value)
		more := x.more[k.scope]
		if more == nil {
			more = map[string]map[string]struct{}{}
			x.more[k.scope] = more
		}
		more[k.value] = map[string]struct{}{cur: {}, name: {}}
	}
}

func (x *Index) remove(k key, name string) {
	if set, ok := x.more[k.scope][k.value]; ok {
		delete(set, name)
		if len(set) == 1 {
			delete(x.more[k.scope], k.value)
			if len(x.more[k.scope]) == 0 {
				delete(x.more, k.scope)
			}
			for n := range set {
				x.add(k, n)
			}
		}
		return
	}
	if one := x.one[k.scope]; one[k.value] == name {
		delete(one, k.value)
		if len(one) == 0 {
			delete(x.one, k.scope) // a tenant that left keeps no map
		}
	}
}

// Names returns the names of the users of namespace whose index field
// equals value (namekey.Key already for case-insensitive fields).
func (x *Index) Names(index, namespace, value string) []string {
	sc := scope{index, namespace}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if n, ok := x.one[sc][value]; ok {
		return []string{n}
	}
	set := x.more[sc][value]
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	return names
}

// Count returns how many users of namespace the index holds, terminating
// ones included.
func (x *Index) Count(namespace string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.users[namespace]
}

// Seen reports whether the index holds every change up to resourceVersion
// rv (a malformed rv counts as seen: it cannot be waited for).
func (x *Index) Seen(rv string) bool { return x.seen.Seen(rv) }
