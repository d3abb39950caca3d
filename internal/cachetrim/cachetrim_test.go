package cachetrim

import (
	"fmt"
	"reflect"
	"runtime"
	"runtime/metrics"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/kscheme"
)

// userJSON is a ProvisionedUser as the API server sends it to the
// informer (managedFields included), numbered i.
func userJSON(i int) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"scim.helpdesk.dev/v1alpha1","kind":"ProvisionedUser",
	"metadata":{"name":"%08d-f8aa-8295-b1ec-ea324d8f4510","namespace":"tenant-a","uid":"%08d-7516-41e9-961b-f7c244416c04",
	"resourceVersion":"%d","generation":2,"creationTimestamp":"2026-12-01T05:59:53Z",
	"annotations":{"scim.helpdesk.dev/last-modified":"2026-12-01T06:13:08.%09dZ"},
	"finalizers":["scim.helpdesk.dev/helpdesk-sync"],
	"labels":{"scim.helpdesk.dev/active":"true","scim.helpdesk.dev/token":"entra"},
	"managedFields":[{"manager":"scim-operator","operation":"Update","apiVersion":"scim.helpdesk.dev/v1alpha1","time":"2026-12-01T05:59:53Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{".":{},"f:userName":{}}}}]},
	"spec":{"active":true,"displayName":"User %d","userName":"user%06d@example.test","externalId":"ext-%d","title":"Engineer",
	"emails":[{"primary":true,"type":"work","value":"user%06d@example.test"}],
	"phoneNumbers":[{"type":"mobile","value":"+1 555 %07d"}],
	"addresses":[{"type":"work","country":"NL","locality":"Utrecht","streetAddress":"Street %d"}],
	"enterprise":{"department":"Dept %d","employeeNumber":"%d","manager":"00000001-f8aa-8295-b1ec-ea324d8f4510"},
	"name":{"familyName":"User%d","givenName":"Given"}},
	"status":{"conditions":[{"lastTransitionTime":"2026-12-01T05:59:53Z","message":"the helpdesk database holds this generation",
	"observedGeneration":2,"reason":"Synced","status":"True","type":"Synced"}],"lastSyncTime":"2026-12-01T06:13:08Z","observedGeneration":2}}`,
		i, i, i+1, i, i, i, i, i, i, i, i%10, i, i)
}

func decodeUser(t testing.TB, i int) *scimv1.ProvisionedUser {
	t.Helper()
	dec := serializer.NewCodecFactory(kscheme.New()).UniversalDeserializer()
	obj, _, err := dec.Decode(userJSON(i), nil, &scimv1.ProvisionedUser{})
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*scimv1.ProvisionedUser)
}

func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// The transform changes no value: only managedFields go.
func TestTransformKeepsEveryValue(t *testing.T) {
	trim := Transform()
	for i := range 50 {
		u := decodeUser(t, i)
		want := u.DeepCopy()
		want.ManagedFields = nil
		out, err := trim(u)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("user %d changed:\n got %+v\nwant %+v", i, out, want)
		}
	}
}

// Equal values decoded separately end up as one copy.
func TestTransformShares(t *testing.T) {
	trim := Transform()
	a, b := decodeUser(t, 1), decodeUser(t, 2)
	if sameMap(a.Labels, b.Labels) || sameString(a.Namespace, b.Namespace) {
		t.Fatal("decoded objects already share; the test proves nothing")
	}
	for _, u := range []*scimv1.ProvisionedUser{a, b} {
		if _, err := trim(u); err != nil {
			t.Fatal(err)
		}
	}
	if !sameMap(a.Labels, b.Labels) {
		t.Error("equal label sets are two maps")
	}
	for what, pair := range map[string][2]string{
		"namespace":         {a.Namespace, b.Namespace},
		"finalizer":         {a.Finalizers[0], b.Finalizers[0]},
		"condition message": {a.Status.Conditions[0].Message, b.Status.Conditions[0].Message},
		"condition reason":  {a.Status.Conditions[0].Reason, b.Status.Conditions[0].Reason},
		"email type":        {a.Spec.Emails[0].Type, b.Spec.Emails[0].Type},
		"title":             {a.Spec.Title, b.Spec.Title},
		"country":           {a.Spec.Addresses[0].Country, b.Spec.Addresses[0].Country},
	} {
		if !sameString(pair[0], pair[1]) {
			t.Errorf("%s %q is two copies", what, pair[0])
		}
	}
	var ka, kb string
	for k := range a.Annotations {
		ka = k
	}
	for k := range b.Annotations {
		kb = k
	}
	if !sameString(ka, kb) {
		t.Errorf("annotation key %q is two copies", ka)
	}
	if sameMap(a.Annotations, b.Annotations) {
		t.Error("annotation maps, whose values differ, are shared")
	}
}

// The pool of label sets is bounded: past it, an object keeps a map of its
// own, with the right labels.
func TestLabelPoolIsBounded(t *testing.T) {
	trim := Transform()
	var last *scimv1.ProvisionedUser
	for i := range maxSharedLabelSets + 10 {
		u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "u", Labels: map[string]string{"n": fmt.Sprint(i)}}}
		if _, err := trim(u); err != nil {
			t.Fatal(err)
		}
		if u.Labels["n"] != fmt.Sprint(i) {
			t.Fatalf("object %d got labels %v", i, u.Labels)
		}
		last = u
	}
	again := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"n": fmt.Sprint(maxSharedLabelSets + 9)}}}
	if _, err := trim(again); err != nil {
		t.Fatal(err)
	}
	if sameMap(again.Labels, last.Labels) {
		t.Error("a label set beyond the pool's bound was pooled")
	}
	first := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"n": "0"}}}
	big := map[string]string{}
	for i := range maxSharedLabels + 1 {
		big[fmt.Sprint("k", i)] = "v"
	}
	large := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Labels: big}}
	for _, u := range []*scimv1.ProvisionedUser{first, large} {
		if _, err := trim(u); err != nil {
			t.Fatal(err)
		}
	}
	if first.Labels["n"] != "0" || len(large.Labels) != maxSharedLabels+1 {
		t.Errorf("labels changed: %v, %v", first.Labels, large.Labels)
	}
}

// What is not an object (a tombstone) passes through untouched.
func TestTransformPassesTombstones(t *testing.T) {
	d := toolscache.DeletedFinalStateUnknown{Key: "ns/name", Obj: &scimv1.ProvisionedGroup{}}
	out, err := Transform()(d)
	if err != nil || !reflect.DeepEqual(out, d) {
		t.Errorf("tombstone became %v, %v", out, err)
	}
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "t",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: "x", Controller: ptr.To(true)}}},
		Status: scimv1.ProvisionedGroupStatus{Conditions: []metav1.Condition{{Type: "Synced", Status: metav1.ConditionTrue}}}}
	want := g.DeepCopy()
	if _, err := Transform()(g); err != nil || !reflect.DeepEqual(g, want) {
		t.Errorf("group changed: %+v, %v", g, err)
	}
}

// What the cache keeps per user shrinks: the reason the transform exists
// (docs/benchmarks-100k.md measures it in the running operator).
func TestTransformSavesMemory(t *testing.T) {
	stripOnly := func(in any) (any, error) {
		in.(metav1.Object).SetManagedFields(nil)
		return in, nil
	}
	bytesPerUser(t, stripOnly) // the decoder's one-time allocations, not counted
	plain, trimmed := bytesPerUser(t, stripOnly), bytesPerUser(t, Transform())
	t.Logf("bytes per cached user: managedFields stripped %.0f, trimmed %.0f", plain, trimmed)
	// About 560 bytes when written: ~340 from the shared label map, the
	// rest from pooled strings. Either alone broken fails this.
	if saved := plain - trimmed; saved < 450 {
		t.Errorf("the transform saves %.0f bytes per user, want at least 450", saved)
	}
}

// bytesPerUser decodes users as the informer does, passes them through
// transform and keeps them: the heap they hold, per user.
func bytesPerUser(t *testing.T, transform func(any) (any, error)) float64 {
	const n = 3000
	dec := serializer.NewCodecFactory(kscheme.New()).UniversalDeserializer()
	before := heapAfterGC() // the last call's objects are gone: it let go of kept
	kept = make([]any, n)
	for i := range n {
		obj, _, err := dec.Decode(userJSON(i), nil, &scimv1.ProvisionedUser{})
		if err != nil {
			t.Fatal(err)
		}
		if kept[i], err = transform(obj); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAfterGC()
	kept = nil
	return (float64(after) - float64(before)) / n
}

// kept holds the objects being measured (a global: nothing the compiler
// does with locals can shorten their lives).
var kept []any

// heapAfterGC is the heap a full collection found live.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkTransform: what the transform adds to each informer event, next
// to the decoding the informer does anyway.
func BenchmarkTransform(b *testing.B) {
	dec := serializer.NewCodecFactory(kscheme.New()).UniversalDeserializer()
	raw := userJSON(1)
	for _, bc := range []struct {
		name string
		fn   func(any) (any, error)
	}{
		{"decode+strip", func(in any) (any, error) { in.(metav1.Object).SetManagedFields(nil); return in, nil }},
		{"decode+trim", Transform()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				obj, _, err := dec.Decode(raw, nil, &scimv1.ProvisionedUser{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bc.fn(obj); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
