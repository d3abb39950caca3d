package tokens

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

func activityFixture(t *testing.T) (client.WithWatch, *scimv1.ScimToken) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "entra"}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tok).WithStatusSubresource(tok).Build()
	return c, tok
}

func activityOf(t *testing.T, c client.Client, tok *scimv1.ScimToken) *scimv1.TokenActivity {
	t.Helper()
	var got scimv1.ScimToken
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(tok), &got); err != nil {
		t.Fatal(err)
	}
	return got.Status.Activity
}

var entraPrincipal = Principal{Namespace: "tenant", TokenName: "entra", Fingerprint: "hmac-sha256:f"}

// TestActivityAcrossReplicas: two replicas count requests of one token;
// status holds the sum, written at most once a minute, and the hour rolls
// in 10-minute buckets.
func TestActivityAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	c, tok := activityFixture(t)
	t0 := time.Date(2026, 3, 1, 12, 3, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(t0)
	a := NewActivityRecorder(c, c, ActivityOptions{Clock: clk})
	b := NewActivityRecorder(c, c, ActivityOptions{Clock: clk})

	a.Record(Request{Principal: entraPrincipal, Operation: "createUser", Write: true, Method: "POST", Path: "/Users", Status: 201, UserAgent: "Azure Active Directory SCIM Client"})
	a.Record(Request{Principal: entraPrincipal, Operation: "patchUser", Method: "PATCH", Path: "/Users/{id}", Status: 409, ScimType: "uniqueness", Detail: "userName … is taken"})
	a.Record(Request{Principal: Principal{}, Operation: "listUsers", Status: 401}) // before authentication: not attributed
	a.Flush(ctx)
	got := activityOf(t, c, tok)
	if got == nil || got.Requests["createUser"] != 1 || got.Requests["patchUser"] != 1 || got.Writes["createUser"] != 1 ||
		got.Writes["patchUser"] != 0 || got.Refused["409 uniqueness"] != 1 || got.RefusedTotal != 1 {
		t.Fatalf("after the first write: %+v", got)
	}
	if r := got.LastRefusal; r == nil || r.Path != "/Users/{id}" || r.Status != 409 || r.ScimType != "uniqueness" || r.Method != "PATCH" {
		t.Errorf("last refusal: %+v", r)
	}
	if got.LastRequestAt == nil || !got.LastRequestAt.Equal(&metav1.Time{Time: t0}) {
		t.Errorf("lastRequestAt %v, want %v", got.LastRequestAt, t0)
	}

	// The other replica, 20 s later: not its turn yet (written a minute
	// ago at most once, by any replica).
	clk.SetTime(t0.Add(20 * time.Second))
	b.Record(Request{Principal: entraPrincipal, Operation: "listUsers", Status: 200, UserAgent: "Okta"})
	b.Record(Request{Principal: entraPrincipal, Operation: "getUser", Status: 404, UserAgent: "Okta"})
	b.Flush(ctx)
	if got := activityOf(t, c, tok); got.Requests["listUsers"] != 0 || !got.UpdatedAt.Equal(&metav1.Time{Time: t0}) {
		t.Fatalf("a second write within the minute: %+v", got)
	}
	clk.SetTime(t0.Add(61 * time.Second))
	b.Flush(ctx)
	got = activityOf(t, c, tok)
	if got.Requests["createUser"] != 1 || got.Requests["listUsers"] != 1 || got.Refused["404"] != 1 || got.RefusedTotal != 2 || len(got.Buckets) != 1 {
		t.Fatalf("the sum of both replicas: %+v", got)
	}
	if got.LastClient != "Okta" || got.LastRefusal.Status != 404 {
		t.Errorf("the later request's client and refusal: %q, %+v", got.LastClient, got.LastRefusal)
	}

	// 55 minutes on, a request lands in a new bucket; the first one still
	// counts (its bucket, 12:00, is within the six).
	clk.SetTime(t0.Add(55 * time.Minute)) // 12:58
	a.Record(Request{Principal: entraPrincipal, Operation: "listUsers", Status: 200})
	a.Flush(ctx)
	got = activityOf(t, c, tok)
	if got.Requests["listUsers"] != 2 || got.Requests["createUser"] != 1 || len(got.Buckets) != 2 {
		t.Fatalf("within the hour: %+v", got)
	}
	// At 13:05 the 12:00 bucket is out of the hour.
	clk.SetTime(time.Date(2026, 3, 1, 13, 5, 0, 0, time.UTC))
	b.Record(Request{Principal: entraPrincipal, Operation: "listUsers", Status: 200})
	b.Flush(ctx)
	got = activityOf(t, c, tok)
	if got.Requests["listUsers"] != 2 || got.Requests["createUser"] != 0 || got.RefusedTotal != 0 || got.Refused != nil || len(got.Buckets) != 2 {
		t.Fatalf("after the hour: %+v", got)
	}
	if got.LastRefusal == nil || got.LastRefusal.Status != 404 {
		t.Errorf("the last refusal is kept after its hour: %+v", got.LastRefusal)
	}
}

// TestActivityRacingReplicas: two replicas write at once; the one whose
// patch conflicts reads again, sees the other's write and keeps its counts
// for its next turn. Nothing is lost or counted twice.
func TestActivityRacingReplicas(t *testing.T) {
	ctx := context.Background()
	base, tok := activityFixture(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(t0)
	b := NewActivityRecorder(base, base, ActivityOptions{Clock: clk})
	raced := false
	c := interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if !raced {
				raced = true
				b.Flush(ctx) // the other replica writes between this one's read and patch
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	a := NewActivityRecorder(c, c, ActivityOptions{Clock: clk})
	for range 3 {
		a.Record(Request{Principal: entraPrincipal, Operation: "patchUser", Write: true, Status: 200})
	}
	b.Record(Request{Principal: entraPrincipal, Operation: "patchUser", Write: true, Status: 200})
	a.Flush(ctx)
	if got := activityOf(t, base, tok); got.Writes["patchUser"] != 1 {
		t.Fatalf("the racing write: %+v (want only the other replica's 1)", got)
	}
	clk.SetTime(t0.Add(time.Minute))
	a.Flush(ctx)
	if got := activityOf(t, base, tok); got.Writes["patchUser"] != 4 || got.Requests["patchUser"] != 4 {
		t.Fatalf("after the next turn: %+v (want 4)", got)
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := truncate("ééééé", 6)
	if s != "é…" {
		t.Errorf("truncate: %q", s)
	}
	if got := truncate("short", 10); got != "short" {
		t.Errorf("truncate: %q", got)
	}
}

// TestActivityLastRefusalWithinOneSecond: a refusal written, then another
// in the same second (times are kept to the second) written by the next
// flush: the later one is the last refusal (CI found the first one kept).
func TestActivityLastRefusalWithinOneSecond(t *testing.T) {
	ctx := context.Background()
	c, tok := activityFixture(t)
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 1, 12, 3, 0, 100e6, time.UTC))
	a := NewActivityRecorder(c, c, ActivityOptions{Clock: clk, MinInterval: time.Nanosecond})
	a.Record(Request{Principal: entraPrincipal, Operation: "getUser", Method: "GET", Path: "/Users/{id}", Status: 404})
	a.Flush(ctx)
	clk.SetTime(clk.Now().Add(500 * time.Millisecond))
	a.Record(Request{Principal: entraPrincipal, Operation: "createUser", Method: "POST", Path: "/Users", Status: 409, ScimType: "uniqueness"})
	a.Flush(ctx)
	if r := activityOf(t, c, tok).LastRefusal; r == nil || r.Status != 409 {
		t.Errorf("the last refusal is %+v, want the 409 made after the 404", r)
	}
}
