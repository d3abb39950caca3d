// Package memstore is an in-memory server.Store: users, groups and group
// members in maps behind one mutex. It keeps the contract written on
// server.Store (scimerr errors, unique names under namekey.Key, versions
// that move on every change, If-Match, members, oldest-first scans) as one
// process sees it, so that the SCIM handlers can be tested in milliseconds
// without a control plane. It is a test double: it has no cache that lags,
// no replicas and no persistence; those are tested against the real
// repository in the envtest suite.
package memstore

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Options configure a Store.
type Options struct {
	// Now is the clock; time.Now when nil. Creation times are cut to whole
	// seconds, as the API server keeps them, so resources created within
	// one second list by id: a test that needs a known order advances Now.
	Now func() time.Time
}

// Event is a Warning event recorded by Warn.
type Event struct {
	Namespace, Name, Kind, Reason, Note string
}

// Store is an in-memory server.Store. The zero value is not usable; call
// New.
type Store struct {
	mu       sync.Mutex
	now      func() time.Time
	stamped  time.Time // the newest last-modified stamp: versions never repeat
	revision uint64    // the last resourceVersion handed out
	users    table[scimv1.ProvisionedUser, *scimv1.ProvisionedUser]
	groups   table[scimv1.ProvisionedGroup, *scimv1.ProvisionedGroup]
	members  map[key]members // by group
	events   []Event
}

// New returns an empty Store.
func New(o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{
		now: o.Now,
		users: table[scimv1.ProvisionedUser, *scimv1.ProvisionedUser]{
			kind: "user", attr: "userName", objs: map[key]*scimv1.ProvisionedUser{},
			unique: func(u *scimv1.ProvisionedUser) string { return u.Spec.UserName },
		},
		groups: table[scimv1.ProvisionedGroup, *scimv1.ProvisionedGroup]{
			kind: "group", attr: "displayName", objs: map[key]*scimv1.ProvisionedGroup{},
			unique: func(g *scimv1.ProvisionedGroup) string { return g.Spec.DisplayName },
		},
		members: map[key]members{},
	}
}

// Events returns the Warning events recorded so far, oldest first.
func (s *Store) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// key names a resource of a tenant.
type key struct{ namespace, name string }

// object is a pointer to a ProvisionedUser or ProvisionedGroup.
type object[T any] interface {
	*T
	metav1.Object
	DeepCopy() *T
}

// table holds the users or the groups; its methods expect s.mu held.
type table[T any, PT object[T]] struct {
	kind, attr string          // "user", "userName"
	unique     func(PT) string // the value of attr
	objs       map[key]PT
}

// get returns a copy of a visible (not pending) object, else 404.
func (t *table[T, PT]) get(namespace, id string) (PT, error) {
	o, ok := t.objs[key{namespace, id}]
	if !ok || pending(o) {
		return nil, scimerr.NotFound("%s %q not found", t.kind, id)
	}
	return o.DeepCopy(), nil
}

// taken answers 409 when an object of the tenant other than self holds
// value under namekey.Key; pending groups hold their names too.
func (t *table[T, PT]) taken(namespace, value, self string) error {
	k := namekey.Key(value)
	for id, o := range t.objs {
		if id.namespace == namespace && id.name != self && namekey.Key(t.unique(o)) == k {
			return scimerr.Uniqueness("%s %q is already in use", t.attr, value)
		}
	}
	return nil
}

// scan returns copies of the tenant's visible objects that match, oldest
// first and then by id, as the repository orders them.
func (t *table[T, PT]) scan(namespace string, match func(PT) bool) []PT {
	var out []PT
	for id, o := range t.objs {
		if id.namespace == namespace && !pending(o) && (match == nil || match(o)) {
			out = append(out, o.DeepCopy())
		}
	}
	slices.SortFunc(out, func(a, b PT) int {
		if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	return out
}

// count counts the tenant's objects, pending ones included (the
// repository's counts do not look inside objects either).
func (t *table[T, PT]) count(namespace string) int {
	n := 0
	for id := range t.objs {
		if id.namespace == namespace {
			n++
		}
	}
	return n
}

// pending reports whether o is a group whose create is not complete yet.
func pending(o metav1.Object) bool {
	_, ok := o.GetAnnotations()[scimv1.AnnotationPendingMembers]
	return ok
}

// stamp marks o as written now: a new resourceVersion and a new
// last-modified annotation, from which repository.Version derives the
// SCIM version. Stamps strictly increase, so two writes within one clock
// tick still get two versions. Expects s.mu held.
func (s *Store) stamp(o metav1.Object) {
	t := s.now().UTC()
	if !t.After(s.stamped) {
		t = s.stamped.Add(time.Nanosecond)
	}
	s.stamped = t
	s.revision++
	o.SetResourceVersion(strconv.FormatUint(s.revision, 10))
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[repository.AnnotationLastModified] = t.Format(time.RFC3339Nano)
	o.SetAnnotations(a)
}

// newMeta is the metadata of an object created now. Expects s.mu held.
func (s *Store) newMeta(p repository.Principal) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: uuid.NewString(), Namespace: p.Namespace,
		// Whole seconds, as the API server stores them.
		CreationTimestamp: metav1.NewTime(s.now().Truncate(time.Second)),
	}
}

// ifMatch answers 412 unless want ("" and "*" match anything) is o's
// SCIM version.
func ifMatch(kind string, o metav1.Object, want string) error {
	if v := repository.Version(o); want != "" && want != "*" && want != v {
		return scimerr.New(412, "", "%s %q has version %s, not %s", kind, o.GetName(), v, want)
	}
	return nil
}

// update is UpdateUser and UpdateGroup: read a copy, check If-Match, let
// mutate change it without the lock held (it may call the store's reads),
// and write it unless the object changed meanwhile, in which case all of
// it runs again on the newer object (optimistic concurrency, as the API
// server does it).
func update[T any, PT object[T]](s *Store, t *table[T, PT], namespace, id, want string,
	mutate func(PT) (bool, error)) (PT, error) {
	for {
		s.mu.Lock()
		cur, err := t.get(namespace, id)
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if err := ifMatch(t.kind, cur, want); err != nil {
			return nil, err
		}
		read := cur.GetResourceVersion()
		changed, err := mutate(cur)
		if err != nil || !changed {
			return cur, err
		}
		s.mu.Lock()
		stored, ok := t.objs[key{namespace, id}]
		if !ok || stored.GetResourceVersion() != read {
			s.mu.Unlock()
			continue // written or deleted meanwhile: decide again on what is there now
		}
		if err := t.taken(namespace, t.unique(cur), id); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.stamp(cur)
		t.objs[key{namespace, id}] = cur.DeepCopy()
		s.mu.Unlock()
		return cur, nil
	}
}

// remove deletes a visible object after the If-Match check. Expects s.mu
// held.
func remove[T any, PT object[T]](t *table[T, PT], namespace, id, want string) error {
	cur, err := t.get(namespace, id)
	if err != nil {
		return err
	}
	if err := ifMatch(t.kind, cur, want); err != nil {
		return err
	}
	delete(t.objs, key{namespace, id})
	return nil
}
