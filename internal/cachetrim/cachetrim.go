// Package cachetrim makes the objects the informer cache keeps smaller.
//
// At 100,000 users the cache is most of the operator's memory, and much of
// it is the same few strings and label sets repeated on every object: the
// namespace, the finalizer, the labels, the annotation key, the Synced
// condition's words, an email's "work". Transform drops managedFields (never
// read) and makes equal values share one copy, through two bounded pools:
// short strings, and users' and groups' label sets. Every other value is
// DeepEqual to what the API server sent.
//
// The pools are filled first come, first served, and never emptied: what
// repeats (the operator's own words, a directory's departments) arrives
// early and often; once a pool is full, values not in it are kept as they
// are, as without the pools. So the pools hold at most about 2 MiB,
// whatever the tenants send; a tenant that sends thousands of distinct
// titles costs others only the sharing. (The unique package does not fit: it forgets a value at the next
// collection unless its handle is kept.)
//
// Sharing relies on what the cache already requires: cached objects are
// read-only. Get and List hand out deep copies; code that reads with
// client.UnsafeDisableDeepCopy must not write to what it gets, shared or
// not. make test runs every suite with client-go's cache mutation detector
// (KUBE_CACHE_MUTATION_DETECTOR), which panics the test binary when a
// cached object was written to (seen with a write after a List with
// UnsafeDisableDeepCopy).
package cachetrim

import (
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// The pools' bounds. The operator's own labels make a handful of sets per
// tenant; labels someone adds by hand could make one per object, so such
// objects keep their own map once the pool is full. Strings longer than
// maxSharedLen (a message, a long address) seldom repeat.
const (
	maxSharedLabelSets = 512
	maxSharedLabels    = 8
	maxSharedStrings   = 8192
	maxSharedLen       = 128
)

// Transform returns the cache's transform function. Each call returns a
// function with pools of its own.
func Transform() toolscache.TransformFunc {
	t := &trimmer{labelSets: map[string]map[string]string{}, strs: map[string]string{}}
	return t.trim
}

// trimmer is one transform's pools. Informers call it concurrently.
type trimmer struct {
	mu        sync.Mutex
	labelSets map[string]map[string]string
	strs      map[string]string
}

func (t *trimmer) trim(in any) (any, error) {
	obj, ok := in.(metav1.Object)
	if !ok {
		return in, nil // DeletedFinalStateUnknown and the like: as they are
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Users' and groups' label sets repeat (the operator's own labels);
	// another kind's seldom do (a shard's group): only its keys are pooled.
	labels := t.internKeys
	switch o := in.(type) {
	case *scimv1.ProvisionedUser:
		labels = t.sharedLabels
		t.user(o)
	case *scimv1.ProvisionedGroup:
		labels = t.sharedLabels
		t.conditions(o.Status.Conditions)
	}
	t.meta(obj, labels)
	return in, nil
}

// meta trims what every object has; labels trims its labels.
func (t *trimmer) meta(obj metav1.Object, labels func(map[string]string) map[string]string) {
	if obj.GetManagedFields() != nil {
		obj.SetManagedFields(nil)
	}
	obj.SetNamespace(t.intern(obj.GetNamespace()))
	t.internAll(obj.GetFinalizers())
	if refs := obj.GetOwnerReferences(); len(refs) > 0 {
		for i := range refs {
			refs[i].APIVersion, refs[i].Kind = t.intern(refs[i].APIVersion), t.intern(refs[i].Kind)
		}
	}
	if l := obj.GetLabels(); len(l) > 0 {
		obj.SetLabels(labels(l))
	}
	// Keys repeat on every object, values seldom do (the last-modified
	// stamp).
	if a := obj.GetAnnotations(); len(a) > 0 {
		obj.SetAnnotations(t.internKeys(a))
	}
}

// sharedLabels returns the pool's map equal to l, adding a pooled copy
// of l when there is room; a copy of its own when the pool is full or l
// is large.
func (t *trimmer) sharedLabels(l map[string]string) map[string]string {
	if len(l) > maxSharedLabels {
		return t.internKeys(l)
	}
	key := setKey(l)
	if shared, ok := t.labelSets[key]; ok {
		return shared
	}
	own := make(map[string]string, len(l))
	for k, v := range l {
		own[t.intern(k)] = t.intern(v)
	}
	if len(t.labelSets) < maxSharedLabelSets {
		t.labelSets[key] = own
	}
	return own
}

// setKey encodes a label set unambiguously: sorted keys, and NUL, which
// neither a label key nor a label value may hold, between the parts.
func setKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

// internKeys returns m with its keys from the string pool, in a new map
// of m's exact size.
func (t *trimmer) internKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[t.intern(k)] = v
	}
	return out
}

// user interns the values that repeat across a directory: the condition's
// words, the kinds of emails and phone numbers, department and title.
func (t *trimmer) user(u *scimv1.ProvisionedUser) {
	t.conditions(u.Status.Conditions)
	s := &u.Spec
	s.Title, s.UserType = t.intern(s.Title), t.intern(s.UserType)
	s.PreferredLanguage, s.Locale, s.Timezone = t.intern(s.PreferredLanguage), t.intern(s.Locale), t.intern(s.Timezone)
	for _, list := range [][]scimv1.MultiValuedAttribute{s.Emails, s.PhoneNumbers, s.Ims, s.Photos, s.Roles, s.Entitlements} {
		for i := range list {
			list[i].Type = t.intern(list[i].Type)
		}
	}
	for i := range s.Addresses {
		a := &s.Addresses[i]
		a.Type, a.Country, a.Region, a.Locality = t.intern(a.Type), t.intern(a.Country), t.intern(a.Region), t.intern(a.Locality)
	}
	if e := s.Enterprise; e != nil {
		e.Department, e.Division = t.intern(e.Department), t.intern(e.Division)
		e.Organization, e.CostCenter = t.intern(e.Organization), t.intern(e.CostCenter)
	}
}

func (t *trimmer) conditions(cs []metav1.Condition) {
	for i := range cs {
		c := &cs[i]
		c.Type, c.Reason, c.Message = t.intern(c.Type), t.intern(c.Reason), t.intern(c.Message)
		c.Status = metav1.ConditionStatus(t.intern(string(c.Status)))
	}
}

func (t *trimmer) internAll(ss []string) {
	for i := range ss {
		ss[i] = t.intern(ss[i])
	}
}

// intern returns the pool's copy of s, adding s while there is room.
func (t *trimmer) intern(s string) string {
	if s == "" || len(s) > maxSharedLen {
		return s
	}
	if v, ok := t.strs[s]; ok {
		return v
	}
	if len(t.strs) < maxSharedStrings {
		t.strs[s] = s
	}
	return s
}
