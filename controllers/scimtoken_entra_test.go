package controllers

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// stalledKeys is a key endpoint that never answers: Check returns only
// when its context ends, with the fetch still running.
type stalledKeys struct{}

func (stalledKeys) Check(ctx context.Context, spec *scimv1.EntraIssuedTokens) tokens.KeyStatus {
	<-ctx.Done()
	return tokens.KeyStatus{URL: tokens.EntraKeysURL(spec), Fetching: true}
}

// TestEntraReconcileDoesNotWaitForKeys (review findings on issue 19): the
// single worker does not wait for a stalled key endpoint (a bounded wait,
// then a recheck soon), and the event saying the generated Secret was
// deleted is recorded only once status is written.
func TestEntraReconcileDoesNotWaitForKeys(t *testing.T) {
	f := newStalledEntraFixture(t)

	f.failStatus.Store(true)
	if _, err := f.reconcile(t); err == nil {
		t.Fatal("the status write failed, the reconcile did not")
	}
	for _, e := range f.drain() {
		if strings.Contains(e, EventRevoked) {
			t.Errorf("Revoked recorded though status was not written: %s", e)
		}
	}

	f.failStatus.Store(false)
	if err := f.c.Create(context.Background(), generatedEntraSecret()); err != nil {
		t.Fatal(err)
	}
	res, err := f.reconcile(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != entraFetchRecheck {
		t.Errorf("requeue after %s while a key fetch runs, want %s", res.RequeueAfter, entraFetchRecheck)
	}
	revoked := 0
	for _, e := range f.drain() {
		if strings.Contains(e, EventRevoked) {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("%d Revoked events after status was written, want 1", revoked)
	}
	var tok scimv1.ScimToken
	if err := f.c.Get(context.Background(), f.req.NamespacedName, &tok); err != nil {
		t.Fatal(err)
	}
	ready := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
	if ready == nil || ready.Reason != ReasonKeysUnavailable || !strings.Contains(ready.Message, "fetching") {
		t.Errorf("Ready while the first fetch runs: %+v", ready)
	}
}

// stalledEntraFixture is a reconciler of one Entra-issued ScimToken (with
// a generated Secret left from before) on a fake client whose status
// writes fail while failStatus is set, and a key endpoint that never
// answers.
type stalledEntraFixture struct {
	c          client.Client
	r          *ScimTokenReconciler
	rec        *events.FakeRecorder
	req        ctrl.Request
	failStatus *atomic.Bool
}

const stalledEntraTenant = "0b7c9f3e-1d2a-4e5f-8a9b-0c1d2e3f4a5b"

// generatedEntraSecret is the Secret a generated token had before the
// ScimToken switched to Entra-issued tokens.
func generatedEntraSecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "entra-token", UID: "secret-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: scimv1.GroupVersion.String(), Kind: "ScimToken",
			Name: "entra", UID: "tok-uid", Controller: ptr.To(true)}}}}
}

func newStalledEntraFixture(t *testing.T) *stalledEntraFixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-a",
		Annotations: map[string]string{scimv1.AnnotationEntraTenantIDs: stalledEntraTenant}}}
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "entra", UID: "tok-uid",
		Finalizers: []string{scimv1.FinalizerToken}}}
	tok.Spec.Active = ptr.To(true)
	tok.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: stalledEntraTenant, ApplicationObjectID: "11111111-2222-4333-8444-555555555555"}
	f := &stalledEntraFixture{failStatus: &atomic.Bool{}, rec: events.NewFakeRecorder(20),
		req: ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "tenant-a", Name: "entra"}}}
	f.c = fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns, tok, generatedEntraSecret()).
		WithStatusSubresource(&scimv1.ScimToken{}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if f.failStatus.Load() {
				return errors.New("injected: status not written")
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		}}).Build()
	f.r = &ScimTokenReconciler{Client: f.c, APIReader: f.c, Scheme: scheme, Recorder: f.rec,
		Clock: clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)), EndpointBaseURL: testEndpoint,
		EntraAllowed: true, Fingerprints: testFingerprints, EntraKeys: stalledKeys{}}
	return f
}

// reconcile runs one reconcile and fails the test if it waits for the
// stalled endpoint (over 4 s: an error; over 10 s: fatal).
func (f *stalledEntraFixture) reconcile(t *testing.T) (ctrl.Result, error) {
	t.Helper()
	type result struct {
		res ctrl.Result
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		res, err := f.r.Reconcile(context.Background(), f.req)
		done <- result{res, err}
	}()
	select {
	case got := <-done:
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("a reconcile took %s", d)
		}
		return got.res, got.err
	case <-time.After(10 * time.Second):
		t.Fatal("the reconcile waits for the stalled key endpoint")
		return ctrl.Result{}, nil
	}
}

// drain is the events recorded since the last drain.
func (f *stalledEntraFixture) drain() []string {
	var got []string
	for {
		select {
		case e := <-f.rec.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}
