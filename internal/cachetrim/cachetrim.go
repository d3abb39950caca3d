// Package cachetrim makes the objects the informer cache keeps smaller.
//
// At 100,000 users the cache is most of the operator's memory, and much of
// it is the same few strings and label sets repeated on every object: the
// namespace, the finalizer, the labels, the annotation key, the Synced
// condition's words, an email's "work". Transform drops managedFields (never
// read) and makes equal values share one copy: strings through the unique
// package (weakly held: a value no object uses any more is collected), and
// whole label maps through a small bounded pool. The decoded object is
// otherwise unchanged; DeepEqual to what the API server sent.
//
// Sharing relies on what the cache already requires: cached objects are
// read-only. Get and List hand out deep copies; code that reads with
// client.UnsafeDisableDeepCopy must not write to what it gets, shared or
// not.
package cachetrim

import (
	"slices"
	"strings"
	"sync"
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// Label sets shared between objects: at most maxSharedLabelSets distinct
// sets of at most maxSharedLabels labels each. The operator's own labels
// make a handful of sets; the bound keeps labels someone adds by hand from
// growing the pool without limit (such objects keep their own map).
const (
	maxSharedLabelSets = 512
	maxSharedLabels    = 8
)

// Transform returns the cache's transform function. Each call returns a
// function with a pool of its own.
func Transform() toolscache.TransformFunc {
	t := &trimmer{labelSets: map[string]map[string]string{}}
	return t.trim
}

type trimmer struct {
	mu        sync.Mutex
	labelSets map[string]map[string]string
}

func (t *trimmer) trim(in any) (any, error) {
	obj, ok := in.(metav1.Object)
	if !ok {
		return in, nil // DeletedFinalStateUnknown and the like: as they are
	}
	t.meta(obj)
	switch o := in.(type) {
	case *scimv1.ProvisionedUser:
		user(o)
	case *scimv1.ProvisionedGroup:
		conditions(o.Status.Conditions)
	}
	return in, nil
}

func (t *trimmer) meta(obj metav1.Object) {
	if obj.GetManagedFields() != nil {
		obj.SetManagedFields(nil)
	}
	obj.SetNamespace(intern(obj.GetNamespace()))
	internAll(obj.GetFinalizers())
	if refs := obj.GetOwnerReferences(); len(refs) > 0 {
		for i := range refs {
			refs[i].APIVersion, refs[i].Kind = intern(refs[i].APIVersion), intern(refs[i].Kind)
		}
	}
	if l := obj.GetLabels(); len(l) > 0 {
		obj.SetLabels(t.labels(l))
	}
	if a := obj.GetAnnotations(); len(a) > 0 {
		// Keys repeat on every object, values seldom do.
		out := make(map[string]string, len(a))
		for k, v := range a {
			out[intern(k)] = v
		}
		obj.SetAnnotations(out)
	}
}

// labels returns the pool's map equal to l, adding l when there is room;
// l itself, its strings interned, when the pool is full or l is large.
func (t *trimmer) labels(l map[string]string) map[string]string {
	if len(l) > maxSharedLabels {
		return internMap(l)
	}
	key := setKey(l)
	t.mu.Lock()
	defer t.mu.Unlock()
	if shared, ok := t.labelSets[key]; ok {
		return shared
	}
	own := internMap(l)
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

func internMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[intern(k)] = intern(v)
	}
	return out
}

// user interns the values that repeat across a directory: the condition's
// words, the kinds of emails and phone numbers, department and title.
func user(u *scimv1.ProvisionedUser) {
	conditions(u.Status.Conditions)
	s := &u.Spec
	s.Title, s.UserType = intern(s.Title), intern(s.UserType)
	s.PreferredLanguage, s.Locale, s.Timezone = intern(s.PreferredLanguage), intern(s.Locale), intern(s.Timezone)
	for _, list := range [][]scimv1.MultiValuedAttribute{s.Emails, s.PhoneNumbers, s.Ims, s.Photos, s.Roles, s.Entitlements} {
		for i := range list {
			list[i].Type = intern(list[i].Type)
		}
	}
	for i := range s.Addresses {
		a := &s.Addresses[i]
		a.Type, a.Country, a.Region, a.Locality = intern(a.Type), intern(a.Country), intern(a.Region), intern(a.Locality)
	}
	if e := s.Enterprise; e != nil {
		e.Department, e.Division, e.Organization, e.CostCenter = intern(e.Department), intern(e.Division), intern(e.Organization), intern(e.CostCenter)
	}
}

func conditions(cs []metav1.Condition) {
	for i := range cs {
		c := &cs[i]
		c.Type, c.Reason, c.Message = intern(c.Type), intern(c.Reason), intern(c.Message)
		c.Status = metav1.ConditionStatus(intern(string(c.Status)))
	}
}

func internAll(ss []string) {
	for i := range ss {
		ss[i] = intern(ss[i])
	}
}

func intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}
