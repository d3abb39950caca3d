package controllers

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/testenv"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

const (
	testEndpoint = "https://helpdesk.example.com/scim/v2"
	wait         = 20 * time.Second
)

// fixture is one test's namespace with a manager running the ScimToken
// controller, an Authenticator and a UsageRecorder, all on a fake clock.
type fixture struct {
	t     *testing.T
	ns    string
	c     client.Client // direct, uncached
	clock *clocktesting.FakeClock
	auth  *tokens.Authenticator
	usage *tokens.UsageRecorder
	logs  *logBuffer
	// usagePatches counts the UsageRecorder's status patches.
	usagePatches atomic.Int32
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the reconciler's client wrapped (nil:
// as it is), to inject failures.
func newFixtureWith(t *testing.T, wrap func(client.Client) client.Client) *fixture {
	t.Helper()
	e := testenv.Require(t, env)
	t.Parallel()
	f := &fixture{t: t, ns: e.Namespace(t), c: e.Client, clock: clocktesting.NewFakeClock(time.Now().Truncate(time.Second))}
	direct, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	counting := interceptor.NewClient(direct, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			f.usagePatches.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	_, f.logs = startManager(t, f.ns, func(mgr ctrl.Manager) error {
		c := mgr.GetClient()
		if wrap != nil {
			c = wrap(c)
		}
		r := &ScimTokenReconciler{Client: c, Scheme: mgr.GetScheme(), Clock: f.clock, EndpointBaseURL: testEndpoint, Fingerprints: testFingerprints}
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := tokens.RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
			return err
		}
		f.auth = tokens.NewAuthenticator(mgr.GetCache(), f.clock, testFingerprints)
		f.usage = tokens.NewUsageRecorder(counting, mgr.GetCache(), tokens.UsageOptions{
			Clock: f.clock, FlushInterval: 50 * time.Millisecond, Logger: mgr.GetLogger().WithName("usage"),
		})
		return mgr.Add(f.usage)
	})
	return f
}

func (f *fixture) create(name string, mutate func(*scimv1.ScimToken)) {
	f.t.Helper()
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}}
	if mutate != nil {
		mutate(tok)
	}
	if err := f.c.Create(context.Background(), tok); err != nil {
		f.t.Fatalf("creating ScimToken %s: %v", name, err)
	}
}

func (f *fixture) get(name string) *scimv1.ScimToken {
	f.t.Helper()
	tok := &scimv1.ScimToken{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, tok); err != nil {
		f.t.Fatalf("reading ScimToken %s: %v", name, err)
	}
	return tok
}

// waitFor waits until the ScimToken, its status up to date, satisfies ok.
func (f *fixture) waitFor(name string, ok func(*scimv1.ScimToken) error) *scimv1.ScimToken {
	f.t.Helper()
	var tok *scimv1.ScimToken
	eventually(f.t, wait, func() error {
		tok = &scimv1.ScimToken{}
		if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, tok); err != nil {
			return err
		}
		if tok.Status.ObservedGeneration != tok.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", tok.Status.ObservedGeneration, tok.Generation)
		}
		return ok(tok)
	})
	return tok
}

func (f *fixture) waitReady(name string, status metav1.ConditionStatus, reason string) *scimv1.ScimToken {
	f.t.Helper()
	return f.waitFor(name, func(tok *scimv1.ScimToken) error {
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("Ready is %+v, want %s/%s", c, status, reason)
		}
		return nil
	})
}

func (f *fixture) secret(name string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name}, s); err != nil {
		f.t.Fatalf("reading Secret %s: %v", name, err)
	}
	return s
}

// token reads the token of a ScimToken's generated Secret once the status
// reports it.
func (f *fixture) token(name string) string {
	f.t.Helper()
	var token string
	eventually(f.t, wait, func() error {
		s := &corev1.Secret{}
		if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: name + "-token"}, s); err != nil {
			return err
		}
		token = string(s.Data[SecretKeyToken])
		if fp := f.get(name).Status.Fingerprint; fp != testFingerprints.Of(token) {
			return fmt.Errorf("status fingerprint %s does not match the Secret's token yet", fp)
		}
		return nil
	})
	return token
}

// accepted waits until the Authenticator (on the manager's cache) accepts
// token, and returns the principal.
func (f *fixture) accepted(name, token string) tokens.Principal {
	f.t.Helper()
	var p tokens.Principal
	eventually(f.t, wait, func() error {
		var err error
		p, err = f.auth.Authenticate(context.Background(), "Bearer "+token)
		if err != nil {
			return err
		}
		if p.Namespace != f.ns || p.TokenName != name || p.Fingerprint != testFingerprints.Of(token) {
			return fmt.Errorf("principal %+v", p)
		}
		return nil
	})
	return p
}

// refused waits until the Authenticator refuses token with want.
func (f *fixture) refused(token string, want error) {
	f.t.Helper()
	eventually(f.t, wait, func() error {
		_, err := f.auth.Authenticate(context.Background(), "Bearer "+token)
		if !errors.Is(err, want) {
			return fmt.Errorf("Authenticate returned %v, want %v", err, want)
		}
		return nil
	})
}

// patch applies a JSON merge patch to a ScimToken.
func (f *fixture) patch(name, body string) {
	f.t.Helper()
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}}
	if err := f.c.Patch(context.Background(), tok, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		f.t.Fatalf("patching ScimToken %s with %s: %v", name, body, err)
	}
}

// poke changes a label so that the controller reconciles now, after the
// fake clock moved (its own requeue would wait for wall-clock time).
func (f *fixture) poke(name string) {
	f.t.Helper()
	f.patch(name, fmt.Sprintf(`{"metadata":{"labels":{"test/poke":"%d"}}}`, time.Now().UnixNano()))
}

// events returns the events recorded in the test's namespace.
func (f *fixture) events() []eventsv1.Event {
	f.t.Helper()
	var list eventsv1.EventList
	if err := f.c.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		f.t.Fatalf("listing events: %v", err)
	}
	return list.Items
}

// waitEvent waits for an event with reason (and type) about ScimToken name.
func (f *fixture) waitEvent(name, eventType, reason string) eventsv1.Event {
	f.t.Helper()
	var found eventsv1.Event
	eventually(f.t, wait, func() error {
		for _, e := range f.events() {
			if e.Regarding.Name == name && e.Reason == reason && e.Type == eventType {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event %s", eventType, reason)
	})
	return found
}

func withRotation(interval, overlap time.Duration) func(*scimv1.ScimToken) {
	return func(tok *scimv1.ScimToken) {
		tok.Spec.Rotation = &scimv1.TokenRotation{
			Interval: metav1.Duration{Duration: interval},
			Overlap:  &metav1.Duration{Duration: overlap},
		}
	}
}

// 1: a generated token, its Secret and status; 2: authentication.
func TestIssueAndAuthenticate(t *testing.T) {
	f := newFixture(t)
	f.create("entra", func(tok *scimv1.ScimToken) { tok.Spec.Description = "Entra ID production" })
	tok := f.waitReady("entra", metav1.ConditionTrue, ReasonIssued)
	token := f.token("entra")

	s := f.secret("entra-token")
	if !strings.HasPrefix(token, tokens.Prefix) || len(token) != len(tokens.Prefix)+43 {
		t.Errorf("token has the wrong shape (length %d)", len(token))
	}
	if got := string(s.Data[SecretKeyEndpoint]); got != testEndpoint {
		t.Errorf("endpoint key = %q", got)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type %q", s.Type)
	}
	if s.Labels[scimv1.LabelManagedBy] != scimv1.ManagerName || s.Labels[scimv1.LabelToken] != "entra" {
		t.Errorf("Secret labels %v", s.Labels)
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != tok.UID || ref.Kind != "ScimToken" {
		t.Errorf("Secret controller reference %+v", ref)
	}
	st := tok.Status
	if st.Endpoint != testEndpoint || st.SecretName != "entra-token" || st.Fingerprint != testFingerprints.Of(token) ||
		!strings.HasPrefix(st.Fingerprint, "hmac-sha256:") || st.IssuedAt == nil || st.NextRotationAt != nil ||
		st.PreviousFingerprint != "" || st.PreviousValidUntil != nil {
		t.Errorf("status %+v", st)
	}
	if !ptr.Deref(tok.Spec.Active, false) {
		t.Errorf("spec.active did not default to true")
	}
	if !containsString(tok.Finalizers, scimv1.FinalizerToken) {
		t.Errorf("finalizers %v", tok.Finalizers)
	}
	f.waitEvent("entra", corev1.EventTypeNormal, ReasonIssued)

	p := f.accepted("entra", token)
	if p.Previous {
		t.Errorf("current token reported as previous")
	}
	if _, err := f.auth.Authenticate(context.Background(), "bEaReR "+token); err != nil {
		t.Errorf("scheme should be case-insensitive: %v", err)
	}
	for header, want := range map[string]error{
		"":                                 tokens.ErrMissing,
		"Bearer":                           tokens.ErrMalformed,
		"Bearer ":                          tokens.ErrMalformed,
		"Basic " + token:                   tokens.ErrMalformed,
		"Bearer " + token + " x":           tokens.ErrMalformed,
		"Bearer " + token + "x":            tokens.ErrUnknown,
		"Bearer scimop_not-a-real-one":     tokens.ErrUnknown,
		"Bearer " + strings.ToUpper(token): tokens.ErrUnknown,
	} {
		if _, err := f.auth.Authenticate(context.Background(), header); !errors.Is(err, want) {
			t.Errorf("Authenticate(%.20q...) = %v, want %v", header, err, want)
		}
	}
}

// 4: on-demand rotation; the previous token works for the overlap, then not.
func TestRotateOnDemandWithOverlap(t *testing.T) {
	f := newFixture(t)
	f.create("rot", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("rot", metav1.ConditionTrue, ReasonIssued)
	old := f.token("rot")
	f.accepted("rot", old)

	f.patch("rot", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"1"}}}`)
	tok := f.waitFor("rot", func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != "1" || tok.Status.Fingerprint == testFingerprints.Of(old) {
			return fmt.Errorf("not rotated yet")
		}
		return nil
	})
	current := f.token("rot")
	if current == old {
		t.Fatal("the Secret still holds the old token")
	}
	st := tok.Status
	if st.PreviousFingerprint != testFingerprints.Of(old) || st.PreviousValidUntil == nil ||
		!st.PreviousValidUntil.Time.Equal(st.IssuedAt.Add(10*time.Minute)) ||
		!st.NextRotationAt.Time.Equal(st.IssuedAt.Add(time.Hour)) {
		t.Errorf("status after rotation %+v", st)
	}
	f.waitEvent("rot", corev1.EventTypeNormal, EventRotated)

	f.accepted("rot", current)
	if p := f.accepted("rot", old); !p.Previous {
		t.Errorf("old token not reported as previous")
	}

	// Setting the same value again is not a new request.
	f.poke("rot")
	time.Sleep(time.Second)
	if got := f.get("rot").Status.Fingerprint; got != testFingerprints.Of(current) {
		t.Errorf("rotated again without a new request")
	}

	// The overlap ends: the Authenticator refuses at once on its own clock,
	// and the controller then forgets the previous fingerprint.
	f.clock.Step(10*time.Minute + time.Second)
	if _, err := f.auth.Authenticate(context.Background(), "Bearer "+old); !errors.Is(err, tokens.ErrExpired) {
		t.Errorf("old token after the overlap: %v, want ErrExpired", err)
	}
	f.poke("rot")
	f.waitFor("rot", func(tok *scimv1.ScimToken) error {
		if tok.Status.PreviousFingerprint != "" || tok.Status.PreviousValidUntil != nil {
			return fmt.Errorf("previous still in status")
		}
		return nil
	})
	f.waitEvent("rot", corev1.EventTypeNormal, EventPreviousRevoked)
	f.refused(old, tokens.ErrUnknown)
	f.accepted("rot", current)
	f.noAlarms("rot")
}

// 4: overlap 0 revokes the previous token at once (after a leak).
func TestRotateOverlapZero(t *testing.T) {
	f := newFixture(t)
	f.create("leak", withRotation(time.Hour, 0))
	f.waitReady("leak", metav1.ConditionTrue, ReasonIssued)
	old := f.token("leak")
	f.accepted("leak", old)

	f.patch("leak", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"leaked"}}}`)
	tok := f.waitFor("leak", func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != "leaked" {
			return fmt.Errorf("not rotated yet")
		}
		return nil
	})
	if tok.Status.PreviousFingerprint != "" || tok.Status.PreviousValidUntil != nil {
		t.Errorf("overlap 0 kept a previous token: %+v", tok.Status)
	}
	f.refused(old, tokens.ErrUnknown)
	f.accepted("leak", f.token("leak"))
}

// 4: rotation on spec.rotation.interval, driven by the fake clock.
func TestScheduledRotation(t *testing.T) {
	f := newFixture(t)
	f.create("sched", withRotation(time.Minute, 30*time.Second))
	tok := f.waitReady("sched", metav1.ConditionTrue, ReasonIssued)
	old := f.token("sched")
	if tok.Status.NextRotationAt == nil || !tok.Status.NextRotationAt.Time.Equal(tok.Status.IssuedAt.Add(time.Minute)) {
		t.Fatalf("nextRotationAt %v, issuedAt %v", tok.Status.NextRotationAt, tok.Status.IssuedAt)
	}

	// Not yet due: nothing happens.
	f.clock.Step(59 * time.Second)
	f.poke("sched")
	time.Sleep(time.Second)
	if f.get("sched").Status.Fingerprint != testFingerprints.Of(old) {
		t.Fatal("rotated before nextRotationAt")
	}

	f.clock.Step(2 * time.Second)
	f.poke("sched")
	tok = f.waitFor("sched", func(tok *scimv1.ScimToken) error {
		if tok.Status.Fingerprint == testFingerprints.Of(old) {
			return fmt.Errorf("not rotated yet")
		}
		return nil
	})
	if tok.Status.PreviousFingerprint != testFingerprints.Of(old) ||
		!tok.Status.NextRotationAt.Time.Equal(tok.Status.IssuedAt.Add(time.Minute)) ||
		!tok.Status.IssuedAt.Time.Equal(f.clock.Now().UTC().Truncate(time.Second)) {
		t.Errorf("status after scheduled rotation %+v", tok.Status)
	}
	f.accepted("sched", f.token("sched"))
	f.accepted("sched", old)
}

// 3: spec.active false refuses the token; true accepts it again.
func TestInactiveAndReactivated(t *testing.T) {
	f := newFixture(t)
	f.create("onoff", nil)
	f.waitReady("onoff", metav1.ConditionTrue, ReasonIssued)
	token := f.token("onoff")
	f.accepted("onoff", token)

	f.patch("onoff", `{"spec":{"active":false}}`)
	f.waitReady("onoff", metav1.ConditionFalse, ReasonInactive)
	f.refused(token, tokens.ErrInactive)
	f.waitEvent("onoff", corev1.EventTypeNormal, EventDeactivated)

	f.patch("onoff", `{"spec":{"active":true}}`)
	f.waitReady("onoff", metav1.ConditionTrue, ReasonIssued)
	f.accepted("onoff", token)
	f.waitEvent("onoff", corev1.EventTypeNormal, EventActivated)
	if f.token("onoff") != token {
		t.Error("deactivation replaced the token")
	}
}

// 5: adoption follows the external Secret, never modifies it, and reports
// a missing Secret or a short token as a condition.
func TestAdoption(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := "vault-made-" + strings.Repeat("a1", 20)
	ext := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "from-vault", Labels: adoptableLabels()},
		Data:       map[string][]byte{"scim": []byte(first + "\n")}, // trailing newline, as echo leaves it
	}
	if err := f.c.Create(ctx, ext); err != nil {
		t.Fatal(err)
	}
	f.create("adopt", func(tok *scimv1.ScimToken) {
		tok.Spec.SecretRef = &scimv1.TokenSecretReference{Name: "from-vault", Key: "scim"}
	})
	tok := f.waitReady("adopt", metav1.ConditionTrue, ReasonAdopted)
	if tok.Status.Fingerprint != testFingerprints.Of(first) || tok.Status.SecretName != "from-vault" ||
		tok.Status.NextRotationAt != nil || tok.Status.Endpoint != testEndpoint {
		t.Errorf("status %+v", tok.Status)
	}
	f.accepted("adopt", first)
	f.waitEvent("adopt", corev1.EventTypeNormal, ReasonAdopted)
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "adopt-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a generated Secret exists next to the adopted one: %v", err)
	}

	ext = adoptedSecretChanges(t, f, first)

	// The operator never wrote the adopted Secret: the version is ours.
	written := ext.ResourceVersion
	time.Sleep(500 * time.Millisecond)
	got := f.secret("from-vault")
	if got.ResourceVersion != written || len(got.OwnerReferences) != 0 || len(got.Finalizers) != 0 || len(got.Labels) != 1 {
		t.Errorf("the operator modified the adopted Secret: %+v", got.ObjectMeta)
	}

	// Missing: refused, with a condition; back: accepted.
	if err := f.c.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	f.waitReady("adopt", metav1.ConditionFalse, ReasonSecretMissing)
	third := "eso-made-" + strings.Repeat("c3", 20)
	if err := f.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "from-vault", Labels: adoptableLabels()},
		Data:       map[string][]byte{"scim": []byte(third)},
	}); err != nil {
		t.Fatal(err)
	}
	f.waitReady("adopt", metav1.ConditionTrue, ReasonAdopted)
	f.accepted("adopt", third)

	// Deleting the ScimToken leaves the adopted Secret alone.
	if err := f.c.Delete(ctx, f.get("adopt")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		err := f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "adopt"}, &scimv1.ScimToken{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("ScimToken still there: %v", err)
		}
		return nil
	})
	f.refused(third, tokens.ErrUnknown)
	f.secret("from-vault")
}

// adoptedSecretChanges: whoever manages the adopted Secret rotates it and
// the operator follows; then a too short token is refused. It returns the
// Secret as last written by the test.
func adoptedSecretChanges(t *testing.T, f *fixture, first string) *corev1.Secret {
	ctx := context.Background()
	// Whoever manages the Secret rotates it: the operator follows.
	second := "vault-made-" + strings.Repeat("b2", 20)
	ext := f.secret("from-vault")
	ext.Data["scim"] = []byte(second)
	if err := f.c.Update(ctx, ext); err != nil {
		t.Fatal(err)
	}
	f.waitFor("adopt", func(tok *scimv1.ScimToken) error {
		if tok.Status.Fingerprint != testFingerprints.Of(second) {
			return fmt.Errorf("still the first token")
		}
		return nil
	})
	f.accepted("adopt", second)
	f.refused(first, tokens.ErrUnknown)
	f.waitEvent("adopt", corev1.EventTypeNormal, EventAdoptedChanged)

	// Too short: refused, with a condition.
	ext = f.secret("from-vault")
	ext.Data["scim"] = []byte("short")
	if err := f.c.Update(ctx, ext); err != nil {
		t.Fatal(err)
	}
	tok := f.waitReady("adopt", metav1.ConditionFalse, ReasonTokenTooShort)
	if tok.Status.Fingerprint != "" {
		t.Errorf("a refused token kept its fingerprint")
	}
	f.refused(second, tokens.ErrUnknown)
	f.waitEvent("adopt", corev1.EventTypeWarning, ReasonTokenTooShort)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); !strings.Contains(c.Message, "from-vault") {
		t.Errorf("message does not name the Secret: %q", c.Message)
	}
	return ext
}

// 5: a ScimToken created before its Secret waits for it.
func TestAdoptionSecretMissingAtFirst(t *testing.T) {
	f := newFixture(t)
	f.create("early", func(tok *scimv1.ScimToken) {
		tok.Spec.SecretRef = &scimv1.TokenSecretReference{Name: "later"}
	})
	tok := f.waitReady("early", metav1.ConditionFalse, ReasonSecretMissing)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); !strings.Contains(c.Message, "later") {
		t.Errorf("message %q", c.Message)
	}
	f.waitEvent("early", corev1.EventTypeWarning, ReasonSecretMissing)
	token := "sealed-" + strings.Repeat("d4", 20)
	if err := f.c.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "later", Labels: adoptableLabels()},
		Data:       map[string][]byte{"token": []byte(token)}, // the default key
	}); err != nil {
		t.Fatal(err)
	}
	f.waitReady("early", metav1.ConditionTrue, ReasonAdopted)
	f.accepted("early", token)
}

// 6: deleting a ScimToken revokes its token and deletes its Secret (envtest
// runs no garbage collector, so this proves the explicit deletion).
func TestDeletionRevokes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create("bye", nil)
	f.waitReady("bye", metav1.ConditionTrue, ReasonIssued)
	token := f.token("bye")
	f.accepted("bye", token)

	if err := f.c.Delete(ctx, f.get("bye")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "bye"}, &scimv1.ScimToken{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ScimToken still there: %v", err)
		}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "bye-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Secret still there: %v", err)
		}
		return nil
	})
	f.refused(token, tokens.ErrUnknown)
	f.waitEvent("bye", corev1.EventTypeNormal, EventRevoked)
}

// 6: a generated Secret deleted or edited by hand is noticed and said so.
func TestHandEditedSecret(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create("hand", nil)
	f.waitReady("hand", metav1.ConditionTrue, ReasonIssued)
	old := f.token("hand")

	// Deleted: a new token is issued, the old one refused.
	if err := f.c.Delete(ctx, f.secret("hand-token")); err != nil {
		t.Fatal(err)
	}
	f.waitEvent("hand", corev1.EventTypeWarning, EventSecretReissued)
	reissued := f.token("hand")
	if reissued == old {
		t.Fatal("the re-issued token is the old one")
	}
	f.accepted("hand", reissued)
	f.refused(old, tokens.ErrUnknown)

	// Edited to another usable token: refused, the issued one stays.
	chosen := "hand-picked-" + strings.Repeat("e5", 20)
	s := f.secret("hand-token")
	s.Data[SecretKeyToken] = []byte(chosen)
	if err := f.c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	f.waitReady("hand", metav1.ConditionFalse, ReasonUnexpectedToken)
	f.waitEvent("hand", corev1.EventTypeWarning, ReasonUnexpectedToken)
	f.refused(chosen, tokens.ErrUnknown)
	f.accepted("hand", reissued)

	// A rotation writes a new token over it.
	f.patch("hand", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"after-edit"}}}`)
	f.waitReady("hand", metav1.ConditionTrue, ReasonIssued)
	f.accepted("hand", f.token("hand"))
	f.refused(chosen, tokens.ErrUnknown)

	// Endpoint key broken: restored.
	s = f.secret("hand-token")
	s.Data[SecretKeyEndpoint] = []byte("https://wrong.example")
	if err := f.c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	f.waitEvent("hand", corev1.EventTypeNormal, EventSecretRepaired)
	eventually(t, wait, func() error {
		if got := string(f.secret("hand-token").Data[SecretKeyEndpoint]); got != testEndpoint {
			return fmt.Errorf("endpoint %q", got)
		}
		return nil
	})

	// Emptied: a new token is issued.
	s = f.secret("hand-token")
	delete(s.Data, SecretKeyToken)
	if err := f.c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, func() error {
		got := string(f.secret("hand-token").Data[SecretKeyToken])
		if !strings.HasPrefix(got, tokens.Prefix) {
			return fmt.Errorf("no new token yet")
		}
		return nil
	})
	f.accepted("hand", f.token("hand"))
	f.refused(chosen, tokens.ErrUnknown)
}

// 7: lastUsedAt is written at most once a minute, not once per request.
func TestLastUsedAtMostOncePerMinute(t *testing.T) {
	f := newFixture(t)
	f.create("busy", nil)
	f.waitReady("busy", metav1.ConditionTrue, ReasonIssued)
	token := f.token("busy")
	f.accepted("busy", token)

	use := func(n int) {
		for range n {
			p, err := f.auth.Authenticate(context.Background(), "Bearer "+token)
			if err != nil {
				t.Fatal(err)
			}
			f.usage.Record(p)
		}
	}
	use(200)
	start := f.clock.Now().UTC()
	f.waitFor("busy", func(tok *scimv1.ScimToken) error {
		if tok.Status.LastUsedAt == nil || !tok.Status.LastUsedAt.Time.Equal(start) {
			return fmt.Errorf("lastUsedAt %v", tok.Status.LastUsedAt)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // several flushes
	if n := f.usagePatches.Load(); n != 1 {
		t.Fatalf("%d status patches for 200 requests, want 1", n)
	}

	f.clock.Step(30 * time.Second)
	use(100)
	time.Sleep(300 * time.Millisecond)
	if n := f.usagePatches.Load(); n != 1 {
		t.Fatalf("%d status patches within the minute, want 1", n)
	}

	f.clock.Step(31 * time.Second)
	use(100)
	later := f.clock.Now().UTC()
	f.waitFor("busy", func(tok *scimv1.ScimToken) error {
		if tok.Status.LastUsedAt == nil || !tok.Status.LastUsedAt.Time.Equal(later) {
			return fmt.Errorf("lastUsedAt %v, want %v", tok.Status.LastUsedAt, later)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if n := f.usagePatches.Load(); n != 2 {
		t.Fatalf("%d status patches after a minute, want 2", n)
	}
}

// 4: a warning when the previous token is still used in the final quarter
// of its overlap.
func TestPreviousTokenInUseWarning(t *testing.T) {
	f := newFixture(t)
	f.create("late", withRotation(time.Hour, 4*time.Minute))
	f.waitReady("late", metav1.ConditionTrue, ReasonIssued)
	old := f.token("late")

	f.patch("late", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"now"}}}`)
	f.waitFor("late", func(tok *scimv1.ScimToken) error {
		if tok.Status.PreviousFingerprint != testFingerprints.Of(old) {
			return fmt.Errorf("not rotated yet")
		}
		return nil
	})
	useOld := func() {
		// The status can show the rotation before the authenticator's
		// Secret cache does: wait until the old token counts as previous.
		var p tokens.Principal
		eventually(t, wait, func() error {
			if p = f.accepted("late", old); !p.Previous {
				return fmt.Errorf("old token not reported as previous")
			}
			return nil
		})
		f.usage.Record(p)
	}

	// Used early in the overlap: no warning.
	useOld()
	tok := f.waitFor("late", func(tok *scimv1.ScimToken) error {
		if tok.Status.PreviousLastUsedAt == nil {
			return fmt.Errorf("previousLastUsedAt not written yet")
		}
		return nil
	})
	if tok.Status.LastUsedAt != nil {
		t.Errorf("the current token's lastUsedAt was written for a use of the previous one")
	}
	f.waitFor("late", func(tok *scimv1.ScimToken) error {
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonPreviousIdle {
			return fmt.Errorf("PreviousTokenInUse %+v", c)
		}
		return nil
	})

	// Used in the final minute of four: warning.
	f.clock.Step(3*time.Minute + 30*time.Second)
	useOld()
	tok = f.waitFor("late", func(tok *scimv1.ScimToken) error {
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonPreviousInUse {
			return fmt.Errorf("PreviousTokenInUse %+v", c)
		}
		return nil
	})
	f.waitEvent("late", corev1.EventTypeWarning, EventPreviousInUseMsg)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("the warning made the token not Ready: %+v", c)
	}

	// The overlap ends: no previous token, no warning.
	f.clock.Step(time.Minute)
	f.poke("late")
	f.waitFor("late", func(tok *scimv1.ScimToken) error {
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonNoPreviousToken || tok.Status.PreviousLastUsedAt != nil {
			return fmt.Errorf("PreviousTokenInUse %+v, previousLastUsedAt %v", c, tok.Status.PreviousLastUsedAt)
		}
		return nil
	})
}

// 8: a full lifecycle, then every log line, event, status and metric is
// searched for every token that existed.
func TestNoTokenInLogsEventsStatusOrMetrics(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	metrics, err := tokens.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tokenTrail{f: f, metrics: metrics}

	f.create("life", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("life", metav1.ConditionTrue, ReasonIssued)
	first := tr.remember()
	f.usage.Record(f.accepted("life", first))
	tr.authFail("Bearer " + first + "typo")
	tr.authFail("Basic " + first)

	f.patch("life", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"a"}}}`)
	f.waitEvent("life", corev1.EventTypeNormal, EventRotated)
	second := tr.remember()
	f.usage.Record(f.accepted("life", first))
	f.usage.Record(f.accepted("life", second))

	if err := f.c.Delete(ctx, f.secret("life-token")); err != nil {
		t.Fatal(err)
	}
	f.waitEvent("life", corev1.EventTypeWarning, EventSecretReissued)
	third := tr.remember()
	tr.authFail("Bearer " + second)

	edited := "hand-" + strings.Repeat("f6", 20)
	s := f.secret("life-token")
	s.Data[SecretKeyToken] = []byte(edited)
	if err := f.c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	f.waitReady("life", metav1.ConditionFalse, ReasonUnexpectedToken)
	tr.seen = append(tr.seen, edited)
	tr.authFail("Bearer " + edited)

	// The scheduled rotation writes a new token over the edited one.
	f.clock.Step(time.Hour + time.Second)
	f.poke("life")
	f.waitReady("life", metav1.ConditionTrue, ReasonIssued)
	tr.remember()
	tr.authFail("Bearer " + edited)

	f.patch("life", `{"spec":{"active":false}}`)
	f.waitReady("life", metav1.ConditionFalse, ReasonInactive)
	tr.authFail("Bearer " + third)
	f.patch("life", `{"spec":{"active":true}}`)
	f.waitReady("life", metav1.ConditionTrue, ReasonIssued)

	if err := f.c.Delete(ctx, f.get("life")); err != nil {
		t.Fatal(err)
	}
	f.waitEvent("life", corev1.EventTypeNormal, EventRevoked)
	time.Sleep(500 * time.Millisecond) // let the last log lines land

	text, events := leakCorpus(t, f, reg, tr.statuses)
	if events < 6 || !strings.Contains(text, "scim_auth_failures_total") || !strings.Contains(f.logs.String(), "rotated") {
		t.Fatalf("the corpus is too thin to prove anything (%d events):\n%s", events, text)
	}
	for _, token := range tr.seen {
		// A distinctive part, plain and encoded as it would be in a
		// dumped object, so that a shortened or quoted token is caught too.
		part := strings.TrimPrefix(token, tokens.Prefix)[:24]
		for _, form := range []string{part, base64.StdEncoding.EncodeToString([]byte(token))[:24], hex.EncodeToString([]byte(part))} {
			if strings.Contains(text, form) {
				t.Errorf("a token appears in the logs, events, status or metrics")
			}
		}
	}
	t.Logf("searched %d log bytes, %d events, %d statuses for %d tokens", len(f.logs.String()), events, len(tr.statuses), len(tr.seen))
}

// tokenTrail keeps every token of the ScimToken "life" that existed and
// every status and refusal seen, for TestNoTokenInLogsEventsStatusOrMetrics.
type tokenTrail struct {
	f        *fixture
	metrics  *tokens.Metrics
	seen     []string
	statuses []string
}

// remember records the current token and status, and returns the token.
func (tr *tokenTrail) remember() string {
	token := tr.f.token("life")
	tr.seen = append(tr.seen, token)
	b, _ := json.Marshal(tr.f.get("life"))
	tr.statuses = append(tr.statuses, string(b))
	return token
}

// authFail presents header; a refusal is counted and its error kept.
func (tr *tokenTrail) authFail(header string) {
	if _, err := tr.f.auth.Authenticate(context.Background(), header); err != nil {
		tr.metrics.Failed(tokens.FailureReason(err))
		tr.statuses = append(tr.statuses, err.Error())
	}
}

// leakCorpus is every log line, event (new and legacy API), status and
// metric of the fixture as one text, and the number of events.
func leakCorpus(t *testing.T, f *fixture, reg *prometheus.Registry, statuses []string) (string, int) {
	t.Helper()
	var corpus strings.Builder
	corpus.WriteString(f.logs.String())
	events := f.events()
	for _, e := range events {
		fmt.Fprintf(&corpus, "%s %s %s %s\n", e.Type, e.Reason, e.Action, e.Note)
	}
	var legacy corev1.EventList
	if err := f.c.List(context.Background(), &legacy, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range legacy.Items {
		fmt.Fprintf(&corpus, "%s %s %s\n", e.Type, e.Reason, e.Message)
	}
	for _, s := range statuses {
		corpus.WriteString(s)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		_, _ = expfmt.MetricFamilyToText(&corpus, mf)
	}
	return corpus.String(), len(events)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// noWatch lets interceptor wrap a manager's client, which has no Watch.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported")
}

func adoptableLabels() map[string]string { return map[string]string{scimv1.LabelAdoptable: "true"} }

// countEvents counts the events with reason (and type) about ScimToken name.
func (f *fixture) countEvents(name, eventType, reason string) int {
	f.t.Helper()
	n := 0
	for _, e := range f.events() {
		if e.Regarding.Name == name && e.Reason == reason && e.Type == eventType {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

// waitEvents waits until at least n events with reason are recorded.
func (f *fixture) waitEvents(name, eventType, reason string, n int) {
	f.t.Helper()
	eventually(f.t, wait, func() error {
		if got := f.countEvents(name, eventType, reason); got < n {
			return fmt.Errorf("%d %s events %s, want %d", got, eventType, reason, n)
		}
		return nil
	})
}

// noAlarms fails the test when the controller reported a tampered Secret
// or a failed reconcile for name: its own writes must never look like one,
// whatever order the caches see them in.
func (f *fixture) noAlarms(name string) {
	f.t.Helper()
	for _, reason := range []string{ReasonForgedTokenState, ReasonUnexpectedToken, EventReconcileFailed, ReasonSecretConflict} {
		if n := f.countEvents(name, corev1.EventTypeWarning, reason); n != 0 {
			f.t.Errorf("%d Warning events %s about %s", n, reason, name)
		}
	}
}

// waitCondition waits until condition type of ScimToken name has status and reason.
func (f *fixture) waitCondition(name, conditionType string, status metav1.ConditionStatus, reason string) *scimv1.ScimToken {
	f.t.Helper()
	return f.waitFor(name, func(tok *scimv1.ScimToken) error {
		c := meta.FindStatusCondition(tok.Status.Conditions, conditionType)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s is %+v, want %s/%s", conditionType, c, status, reason)
		}
		return nil
	})
}

// handled waits until the controller reacted to an edit of ScimToken
// name's Secret: SecretTampered turned True, or status changed as done
// tells (what the code before issue 14 did).
func (f *fixture) handled(name string, done func(*scimv1.ScimToken) bool) *scimv1.ScimToken {
	f.t.Helper()
	return f.waitFor(name, func(tok *scimv1.ScimToken) error {
		if meta.IsStatusConditionTrue(tok.Status.Conditions, scimv1.ConditionSecretTampered) || done(tok) {
			return nil
		}
		return fmt.Errorf("the edit is not handled yet")
	})
}

// editSecret reads a Secret, applies edit and writes it back.
func (f *fixture) editSecret(name string, edit func(*corev1.Secret)) {
	f.t.Helper()
	s := f.secret(name)
	edit(s)
	if err := f.c.Update(context.Background(), s); err != nil {
		f.t.Fatalf("updating Secret %s: %v", name, err)
	}
}

// rotated waits until ScimToken name handled rotation request req and
// its Secret holds a token other than before; it returns that token.
func (f *fixture) rotated(name, req, before string) string {
	f.t.Helper()
	f.patch(name, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, scimv1.AnnotationRotate, req))
	f.waitFor(name, func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != req || tok.Status.Fingerprint == testFingerprints.Of(before) {
			return fmt.Errorf("not rotated for %q yet", req)
		}
		return nil
	})
	return f.token(name)
}

// otherTenant starts the ScimToken controller in a second namespace, on
// the same fake clock, and returns the namespace.
func (f *fixture) otherTenant() string {
	f.t.Helper()
	ns := env.Namespace(f.t)
	startManager(f.t, ns, func(mgr ctrl.Manager) error {
		r := &ScimTokenReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Clock: f.clock, EndpointBaseURL: testEndpoint, Fingerprints: testFingerprints}
		return r.SetupWithManager(mgr)
	})
	return ns
}

// authAcross returns an Authenticator over a cache of every given
// namespace, as a replica serving all tenants has.
func (f *fixture) authAcross(namespaces ...string) *tokens.Authenticator {
	f.t.Helper()
	nss := map[string]cache.Config{}
	for _, ns := range namespaces {
		nss[ns] = cache.Config{}
	}
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: nss})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	if err := tokens.RegisterIndexes(ctx, c); err != nil {
		f.t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		f.t.Fatal("the cross-tenant cache did not sync")
	}
	return tokens.NewAuthenticator(c, f.clock, testFingerprints)
}

// 14.3: a previous token forged into the Secret's annotations is never
// accepted, nor is an overlap stretched there: status alone says which
// tokens are valid. Fails before issue 14: the annotations became status.
func TestScimTokenForgedAnnotationsNotAccepted(t *testing.T) {
	f := newFixture(t)
	f.create("forge", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("forge", metav1.ConditionTrue, ReasonIssued)
	first := f.token("forge")
	second := f.rotated("forge", "r1", first)
	tok := f.get("forge")
	until := tok.Status.PreviousValidUntil.Time
	if !until.Equal(tok.Status.IssuedAt.Add(10 * time.Minute)) {
		t.Fatalf("previousValidUntil %v, issuedAt %v", until, tok.Status.IssuedAt)
	}

	// The previous token's overlap stretched by ten years.
	years := f.clock.Now().Add(10 * 365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	f.editSecret("forge-token", func(s *corev1.Secret) { s.Annotations[annPreviousValidUntil] = years })
	tok = f.handled("forge", func(tok *scimv1.ScimToken) bool { return !tok.Status.PreviousValidUntil.Time.Equal(until) })
	if !tok.Status.PreviousValidUntil.Time.Equal(until) || tok.Status.Fingerprint != testFingerprints.Of(second) {
		t.Fatalf("the forged annotation reached status: %+v", tok.Status)
	}
	f.waitEvent("forge", corev1.EventTypeWarning, ReasonForgedTokenState)
	tok = f.waitCondition("forge", scimv1.ConditionSecretTampered, metav1.ConditionTrue, ReasonForgedTokenState)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v: the valid tokens are still valid", c)
	}
	eventually(t, wait, func() error {
		if got := f.secret("forge-token").Annotations[annPreviousValidUntil]; got != until.UTC().Format(time.RFC3339) {
			return fmt.Errorf("annotation not rewritten from status: %s", got)
		}
		return nil
	})
	f.clock.Step(10*time.Minute + time.Second)
	f.poke("forge")
	f.refused(first, tokens.ErrUnknown)

	// A previous token of the editor's choosing.
	chosen := "attacker-chosen-" + strings.Repeat("9z", 20)
	f.editSecret("forge-token", func(s *corev1.Secret) {
		s.Annotations[annPreviousFingerprint] = testFingerprints.Of(chosen)
		s.Annotations[annPreviousValidUntil] = years
	})
	f.waitEvents("forge", corev1.EventTypeWarning, ReasonForgedTokenState, 2)
	eventually(t, wait, func() error {
		if _, ok := f.secret("forge-token").Annotations[annPreviousFingerprint]; ok {
			return fmt.Errorf("forged previous-fingerprint not removed")
		}
		return nil
	})
	tok = f.get("forge")
	if tok.Status.PreviousFingerprint != "" || tok.Status.PreviousValidUntil != nil {
		t.Errorf("the forged previous token reached status: %+v", tok.Status)
	}
	if _, err := f.auth.Authenticate(context.Background(), "Bearer "+chosen); !errors.Is(err, tokens.ErrUnknown) {
		t.Errorf("the forged previous token: %v, want ErrUnknown", err)
	}
	f.accepted("forge", second)

	// Whoever edited the Secret could read the token: the condition stays
	// until a new one is current.
	f.poke("forge")
	time.Sleep(500 * time.Millisecond)
	f.waitCondition("forge", scimv1.ConditionSecretTampered, metav1.ConditionTrue, ReasonForgedTokenState)
	f.rotated("forge", "r2", second)
	f.waitCondition("forge", scimv1.ConditionSecretTampered, metav1.ConditionFalse, ReasonSecretMatches)
}

// 14.3: another tenant's fingerprint copied into this tenant's Secret
// leaves the other tenant authenticating. Fails before issue 14: both
// ScimTokens claimed it, and every request of the other tenant's identity
// provider failed as ambiguous.
func TestScimTokenOtherTenantsFingerprintCopied(t *testing.T) {
	f := newFixture(t)
	other := f.otherTenant()
	auth := f.authAcross(f.ns, other)
	ctx := context.Background()

	if err := f.c.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "victim"}}); err != nil {
		t.Fatal(err)
	}
	var theirs string
	eventually(t, wait, func() error {
		s := &corev1.Secret{}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: other, Name: "victim-token"}, s); err != nil {
			return err
		}
		theirs = string(s.Data[SecretKeyToken])
		p, err := auth.Authenticate(ctx, "Bearer "+theirs)
		if err != nil || p.Namespace != other {
			return fmt.Errorf("the other tenant's token: %+v, %v", p, err)
		}
		return nil
	})

	f.create("mine", nil)
	f.waitReady("mine", metav1.ConditionTrue, ReasonIssued)
	mine := f.token("mine")
	f.editSecret("mine-token", func(s *corev1.Secret) {
		s.Annotations[annPreviousFingerprint] = testFingerprints.Of(theirs)
		s.Annotations[annPreviousValidUntil] = f.clock.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
	})
	tok := f.handled("mine", func(tok *scimv1.ScimToken) bool { return tok.Status.PreviousFingerprint != "" })
	if tok.Status.PreviousFingerprint != "" {
		t.Errorf("the other tenant's fingerprint reached status: %+v", tok.Status)
	}
	for _, c := range []struct{ token, ns string }{{theirs, other}, {mine, f.ns}} {
		eventually(t, wait, func() error {
			p, err := auth.Authenticate(ctx, "Bearer "+c.token)
			if err != nil || p.Namespace != c.ns {
				return fmt.Errorf("principal %+v, %v; want namespace %s", p, err, c.ns)
			}
			return nil
		})
	}
	f.waitEvent("mine", corev1.EventTypeWarning, ReasonForgedTokenState)
	f.waitCondition("mine", scimv1.ConditionSecretTampered, metav1.ConditionTrue, ReasonForgedTokenState)
}

// 14.3: a Secret made in advance with the generated Secret's name and
// labels, but no controller reference to this ScimToken, is not taken.
// Fails before issue 14: the labels sufficed, and the planted token was
// accepted.
func TestScimTokenPrecreatedSecretNotTaken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	planted := "planted-" + strings.Repeat("p1", 20)
	if err := f.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "pre-token",
			Labels:      map[string]string{scimv1.LabelManagedBy: scimv1.ManagerName, scimv1.LabelToken: "pre"},
			Annotations: map[string]string{annFingerprint: testFingerprints.Of(planted)}},
		Data: map[string][]byte{SecretKeyToken: []byte(planted)},
	}); err != nil {
		t.Fatal(err)
	}
	f.create("pre", nil)
	tok := f.waitFor("pre", func(tok *scimv1.ScimToken) error {
		if meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady) == nil {
			return fmt.Errorf("not reconciled yet")
		}
		return nil
	})
	if tok.Status.Fingerprint != "" {
		t.Fatalf("the planted Secret was taken and its token accepted: %+v", tok.Status)
	}
	tok = f.waitReady("pre", metav1.ConditionFalse, ReasonSecretConflict)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); !strings.Contains(c.Message, "pre-token") ||
		!strings.Contains(c.Message, "owner reference") {
		t.Errorf("message %q", c.Message)
	}
	f.waitEvent("pre", corev1.EventTypeWarning, ReasonSecretConflict)
	if _, err := f.auth.Authenticate(ctx, "Bearer "+planted); !errors.Is(err, tokens.ErrUnknown) {
		t.Errorf("the planted token: %v, want ErrUnknown", err)
	}
	if s := f.secret("pre-token"); len(s.OwnerReferences) != 0 {
		t.Errorf("the operator took the planted Secret: %+v", s.OwnerReferences)
	}

	// Deleting it lets the operator issue its own.
	if err := f.c.Delete(ctx, f.secret("pre-token")); err != nil {
		t.Fatal(err)
	}
	f.waitReady("pre", metav1.ConditionTrue, ReasonIssued)
	token := f.token("pre")
	if token == planted {
		t.Fatal("the planted token was kept")
	}
	f.accepted("pre", token)
	f.refused(planted, tokens.ErrUnknown)
}

// 14.3: restoring a backup of the Secret from before a rotation (old
// value, old annotations) does not bring back the revoked token; the
// current one keeps working; a rotation writes a new token over it. Fails
// before issue 14: the restored annotations matched the restored value,
// and the revoked token became current again.
func TestScimTokenRestoredBackupStaysRevoked(t *testing.T) {
	f := newFixture(t)
	f.create("bak", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("bak", metav1.ConditionTrue, ReasonIssued)
	first := f.token("bak")
	backup := f.secret("bak-token")
	second := f.rotated("bak", "r1", first)
	f.clock.Step(10*time.Minute + time.Second)
	f.poke("bak")
	f.refused(first, tokens.ErrUnknown)

	f.editSecret("bak-token", func(s *corev1.Secret) {
		s.Data, s.Annotations = backup.Data, backup.Annotations
	})
	tok := f.handled("bak", func(tok *scimv1.ScimToken) bool { return tok.Status.Fingerprint != testFingerprints.Of(second) })
	if tok.Status.Fingerprint != testFingerprints.Of(second) {
		t.Fatalf("the restored token became current again: %+v", tok.Status)
	}
	tok = f.waitReady("bak", metav1.ConditionFalse, ReasonUnexpectedToken)
	f.waitEvent("bak", corev1.EventTypeWarning, ReasonUnexpectedToken)
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionSecretTampered); c == nil ||
		c.Status != metav1.ConditionTrue || c.Reason != ReasonUnexpectedToken {
		t.Errorf("SecretTampered %+v", c)
	}
	if tok.Status.Fingerprint != testFingerprints.Of(second) || tok.Status.PreviousFingerprint != "" {
		t.Errorf("status after the restore %+v", tok.Status)
	}
	if c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady); !strings.Contains(c.Message, tokens.ShortFingerprint(testFingerprints.Of(second))) {
		t.Errorf("the message does not say which token still works: %q", c.Message)
	}
	if _, err := f.auth.Authenticate(context.Background(), "Bearer "+first); !errors.Is(err, tokens.ErrUnknown) {
		t.Errorf("the revoked token after the restore: %v, want ErrUnknown", err)
	}
	f.accepted("bak", second)

	// A rotation writes a new token over the restored one and keeps the
	// one the identity provider holds for the overlap.
	third := f.rotated("bak", "after-restore", second)
	tok = f.waitReady("bak", metav1.ConditionTrue, ReasonIssued)
	if third == first || tok.Status.PreviousFingerprint != testFingerprints.Of(second) {
		t.Errorf("status after the rotation %+v", tok.Status)
	}
	f.accepted("bak", third)
	if p := f.accepted("bak", second); !p.Previous {
		t.Errorf("the token before the restore is not the previous one")
	}
	f.refused(first, tokens.ErrUnknown)
	f.waitCondition("bak", scimv1.ConditionSecretTampered, metav1.ConditionFalse, ReasonSecretMatches)
}

// 14.5: a rotation request changed and changed back (A→B→A, a GitOps tool
// undoing a change) rotates once; the token from before the rotation keeps
// working through its overlap. Fails before issue 14: A rotated again and
// revoked it at once.
func TestScimTokenRotationRequestChangedBack(t *testing.T) {
	f := newFixture(t)
	f.create("gitops", func(tok *scimv1.ScimToken) {
		withRotation(time.Hour, 10*time.Minute)(tok)
		tok.Annotations = map[string]string{scimv1.AnnotationRotate: "A"}
	})
	tok := f.waitReady("gitops", metav1.ConditionTrue, ReasonIssued)
	if tok.Status.RotationRequest != "A" {
		t.Fatalf("rotationRequest %q: a request present at issue is satisfied", tok.Status.RotationRequest)
	}
	first := f.token("gitops")
	second := f.rotated("gitops", "B", first)

	f.patch("gitops", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"A"}}}`)
	tok = f.waitFor("gitops", func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != "A" {
			return fmt.Errorf("A not handled yet")
		}
		return nil
	})
	if tok.Status.Fingerprint != testFingerprints.Of(second) || tok.Status.PreviousFingerprint != testFingerprints.Of(first) {
		t.Fatalf("rotated again, revoking the token from before: %+v", tok.Status)
	}
	f.waitEvent("gitops", corev1.EventTypeNormal, EventRotationRepeated)
	if n := f.countEvents("gitops", corev1.EventTypeNormal, EventRotated); n != 1 {
		t.Errorf("%d rotations, want 1", n)
	}
	f.accepted("gitops", second)

	// B again is handled too.
	f.patch("gitops", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"B"}}}`)
	f.waitFor("gitops", func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != "B" || tok.Status.Fingerprint != testFingerprints.Of(second) {
			return fmt.Errorf("status %+v", tok.Status)
		}
		return nil
	})

	f.clock.Step(10*time.Minute - time.Second)
	f.poke("gitops")
	if p := f.accepted("gitops", first); !p.Previous {
		t.Errorf("the token from before is not the previous one")
	}
	f.clock.Step(2 * time.Second)
	if _, err := f.auth.Authenticate(context.Background(), "Bearer "+first); !errors.Is(err, tokens.ErrExpired) {
		t.Errorf("after the overlap: %v, want ErrExpired", err)
	}
	f.noAlarms("gitops")
}

// 14.5: a second rotation requested while an overlap runs waits for it to
// end, so that the token the identity provider may still use is not
// revoked; then it happens. Fails before issue 14: the second rotation
// revoked the first token at once.
func TestScimTokenSecondRotationWaitsForOverlap(t *testing.T) {
	f := newFixture(t)
	f.create("twice", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("twice", metav1.ConditionTrue, ReasonIssued)
	first := f.token("twice")
	second := f.rotated("twice", "1", first)

	f.patch("twice", `{"metadata":{"annotations":{"scim.helpdesk.dev/rotate":"2"}}}`)
	tok := f.waitFor("twice", func(tok *scimv1.ScimToken) error {
		if meta.IsStatusConditionTrue(tok.Status.Conditions, scimv1.ConditionRotationDeferred) || tok.Status.RotationRequest == "2" {
			return nil
		}
		return fmt.Errorf("request 2 not handled yet")
	})
	if tok.Status.Fingerprint != testFingerprints.Of(second) || tok.Status.PreviousFingerprint != testFingerprints.Of(first) ||
		tok.Status.RotationRequest != "1" {
		t.Fatalf("the second rotation did not wait for the overlap: %+v", tok.Status)
	}
	f.waitCondition("twice", scimv1.ConditionRotationDeferred, metav1.ConditionTrue, ReasonOverlapRunning)
	f.waitEvent("twice", corev1.EventTypeNormal, EventRotationDeferred)
	if p := f.accepted("twice", first); !p.Previous {
		t.Errorf("the first token is not the previous one")
	}
	f.accepted("twice", second)

	// The overlap ends: the waiting rotation happens.
	f.clock.Step(10*time.Minute + time.Second)
	f.poke("twice")
	tok = f.waitFor("twice", func(tok *scimv1.ScimToken) error {
		if tok.Status.RotationRequest != "2" || tok.Status.Fingerprint == testFingerprints.Of(second) {
			return fmt.Errorf("the waiting rotation did not happen: %+v", tok.Status)
		}
		return nil
	})
	if tok.Status.PreviousFingerprint != testFingerprints.Of(second) {
		t.Errorf("status after the waiting rotation %+v", tok.Status)
	}
	f.waitCondition("twice", scimv1.ConditionRotationDeferred, metav1.ConditionFalse, ReasonNoRotationWaiting)
	f.accepted("twice", f.token("twice"))
	f.accepted("twice", second)
	f.refused(first, tokens.ErrUnknown)
	f.noAlarms("twice")
}

// 14.5: spec.rotation.overlap caps a running overlap: set to 0s after a
// leak, it revokes the previous token at once and lets a rotation through.
// Fails before issue 14: the overlap ran on as written at the rotation.
func TestScimTokenOverlapShortenedEndsRunningOverlap(t *testing.T) {
	f := newFixture(t)
	f.create("cap", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("cap", metav1.ConditionTrue, ReasonIssued)
	first := f.token("cap")
	second := f.rotated("cap", "1", first)
	f.accepted("cap", first)

	f.patch("cap", `{"spec":{"rotation":{"overlap":"0s"}}}`)
	f.waitFor("cap", func(tok *scimv1.ScimToken) error {
		if tok.Status.PreviousFingerprint != "" {
			return fmt.Errorf("the previous token still works")
		}
		return nil
	})
	f.refused(first, tokens.ErrUnknown)
	third := f.rotated("cap", "leak", second)
	f.accepted("cap", third)
	f.refused(second, tokens.ErrUnknown)
}

// 13.3: a Secret is adopted only when it opts in with the adoptable label;
// before that nothing of its value is published. Fails before issue 13:
// any Secret was adopted and its SHA-256 shown in status.
func TestScimTokenAdoptionNeedsLabel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	value := "someone-elses-" + strings.Repeat("k7", 20)
	if err := f.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "db-password"},
		Data:       map[string][]byte{"password": []byte(value)},
	}); err != nil {
		t.Fatal(err)
	}
	f.create("oracle", func(tok *scimv1.ScimToken) {
		tok.Spec.SecretRef = &scimv1.TokenSecretReference{Name: "db-password", Key: "password"}
	})
	tok := f.waitReady("oracle", metav1.ConditionFalse, ReasonSecretNotAdoptable)
	f.waitEvent("oracle", corev1.EventTypeWarning, ReasonSecretNotAdoptable)
	c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
	if !strings.Contains(c.Message, `scim.helpdesk.dev/adoptable="true"`) || !strings.Contains(c.Message, "db-password") {
		t.Errorf("the message does not say which label to add to which Secret: %q", c.Message)
	}
	if tok.Status.Fingerprint != "" {
		t.Errorf("status has a fingerprint of a Secret that did not opt in: %+v", tok.Status)
	}
	if _, err := f.auth.Authenticate(ctx, "Bearer "+value); !errors.Is(err, tokens.ErrUnknown) {
		t.Errorf("the value of a Secret that did not opt in: %v, want ErrUnknown", err)
	}
	time.Sleep(500 * time.Millisecond) // let the last log lines land
	var corpus strings.Builder
	b, _ := json.Marshal(f.get("oracle"))
	corpus.Write(b)
	corpus.WriteString(f.logs.String())
	for _, e := range f.events() {
		corpus.WriteString(e.Note)
	}
	for _, fp := range []string{tokens.LegacyFingerprint(value), testFingerprints.Of(value)} {
		hash := fp[strings.IndexByte(fp, ':')+1:]
		if strings.Contains(corpus.String(), hash[:12]) {
			t.Errorf("a fingerprint (%s) of a Secret that did not opt in was published", fp[:strings.IndexByte(fp, ':')])
		}
	}

	// Opting in: adopted.
	f.editSecret("db-password", func(s *corev1.Secret) { s.Labels = adoptableLabels() })
	f.waitReady("oracle", metav1.ConditionTrue, ReasonAdopted)
	f.accepted("oracle", value)

	// Opting out again ends the adoption.
	f.editSecret("db-password", func(s *corev1.Secret) { s.Labels = nil })
	tok = f.waitReady("oracle", metav1.ConditionFalse, ReasonSecretNotAdoptable)
	if tok.Status.Fingerprint != "" {
		t.Errorf("the fingerprint stayed after the label was removed")
	}
	f.refused(value, tokens.ErrUnknown)
}

// A rotation whose status update fails after the Secret was written is
// completed by the next reconcile, not rotated again and not taken for a
// tampered Secret. (This passed before issue 14 too, when the Secret's
// annotations carried the state; it guards the pending token that
// replaced them.)
func TestScimTokenInterruptedRotationCompletes(t *testing.T) {
	var failNext atomic.Bool
	f := newFixtureWith(t, func(c client.Client) client.Client {
		return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				if _, ok := obj.(*scimv1.ScimToken); ok && sub == "status" {
					if data, err := p.Data(obj); err == nil && strings.Contains(string(data), `"rotationRequest":"cut"`) &&
						!strings.Contains(string(data), `"pending":{`) && failNext.CompareAndSwap(true, false) {
						return errors.New("injected: the status update after the Secret write failed")
					}
				}
				return c.SubResource(sub).Patch(ctx, obj, p, opts...)
			},
		})
	})
	f.create("cut", withRotation(time.Hour, 10*time.Minute))
	f.waitReady("cut", metav1.ConditionTrue, ReasonIssued)
	first := f.token("cut")

	failNext.Store(true)
	second := f.rotated("cut", "cut", first)
	if failNext.Load() {
		t.Fatal("no status update failed")
	}
	tok := f.waitReady("cut", metav1.ConditionTrue, ReasonIssued)
	if tok.Status.PreviousFingerprint != testFingerprints.Of(first) || tok.Status.Pending != nil {
		t.Errorf("status after the completed rotation %+v", tok.Status)
	}
	if n := f.countEvents("cut", corev1.EventTypeNormal, EventRotated); n != 1 {
		t.Errorf("%d rotations, want 1", n)
	}
	f.accepted("cut", second)
	f.accepted("cut", first)
	for _, reason := range []string{ReasonForgedTokenState, ReasonUnexpectedToken} {
		if n := f.countEvents("cut", corev1.EventTypeWarning, reason); n != 0 {
			t.Errorf("%d Warning events %s", n, reason)
		}
	}
}

// TestScimTokenLegacyFingerprintUpgraded: a ScimToken whose status (and
// Secret annotation) still names its token by the unkeyed SHA-256, as every
// token issued before fingerprints were keyed does, keeps its token
// accepted, gets the keyed fingerprint on the next reconcile, and raises no
// alarm: the old form is the same token, not a forgery.
func TestScimTokenLegacyFingerprintUpgraded(t *testing.T) {
	f := newFixture(t)
	f.create("old", nil)
	token := f.token("old")
	legacy := tokens.LegacyFingerprint(token)

	tok := f.get("old")
	base := tok.DeepCopy()
	tok.Status.Fingerprint = legacy
	if err := f.c.Status().Patch(context.Background(), tok, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	f.editSecret("old-token", func(s *corev1.Secret) { s.Annotations[annFingerprint] = legacy })
	f.waitFor("old", func(tok *scimv1.ScimToken) error {
		if tok.Status.Fingerprint != testFingerprints.Of(token) {
			return fmt.Errorf("status fingerprint %s, want the keyed one", tok.Status.Fingerprint)
		}
		return nil
	})
	f.waitReady("old", metav1.ConditionTrue, ReasonIssued)
	f.accepted("old", token)
	eventually(t, wait, func() error {
		if got := f.secret("old-token").Annotations[annFingerprint]; got != testFingerprints.Of(token) {
			return fmt.Errorf("the Secret's fingerprint annotation is %s", got)
		}
		return nil
	})
	f.noAlarms("old")
}
