package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
	"github.com/scim-operator/scim-operator/internal/tokens/entratest"
)

const (
	entraTenant = "4f1c2a7e-8b3d-4e6f-9a0b-1c2d3e4f5a6b"
	entraApp    = "11111111-2222-4333-8444-555555555555"
)

// TestEntraIssuedTokensThroughHTTP (issue 19): a ScimToken with
// spec.entraIssued needs no Secret; a SCIM request carrying a JWT that
// "Entra" (a key endpoint of the test) signed lands in that ScimToken's
// namespace, next to a tenant that keeps its bearer token; expired and
// deactivated tokens get 401, a directory claimed by two namespaces too,
// and a key endpoint that cannot be reached shows as KeysUnavailable.
func TestEntraIssuedTokensThroughHTTP(t *testing.T) {
	x := newEntraHTTP(t)
	x.refusesInvalidSpecs(t)
	tok := x.takesUpDirectory(t)
	jwt := x.provisionsIntoItsNamespace(t)
	x.refusesExpiredAndForeignTokens(t)
	x.refusesDirectoryClaimedTwice(t, jwt)
	x.switchFromGeneratedToken(t)
	x.refusesDeactivated(t, tok, jwt)
	x.keysUnavailable(t)
}

// entraHTTP is an operator serving two namespaces: nsA takes its directory
// up in takesUpDirectory, nsB keeps a bearer token. The steps of
// TestEntraIssuedTokensThroughHTTP run in order on it.
type entraHTTP struct {
	e        *testenv.Env
	ctx      context.Context
	nsA, nsB string
	key      entratest.Key
	keys     *entratest.KeyServer
	base     string
	bearer   string
}

func newEntraHTTP(t *testing.T) *entraHTTP {
	t.Helper()
	e := testenv.Require(t, env)
	x := &entraHTTP{e: e, ctx: context.Background(), nsA: e.Namespace(t), nsB: e.Namespace(t), key: entratest.NewKey(t, "k1")}
	x.keys = entratest.NewKeyServer(t, x.key.Public())
	x.allow(t, x.nsA, strings.ToUpper(entraTenant))
	x.allow(t, x.nsB, entraTenant, "6b6b6b6b-1b1b-4c2c-8d3d-4e4e4e4e4e4e", "5a5a5a5a-1b1b-4c2c-8d3d-4e4e4e4e4e4e")
	x.base = startOperator(t, e.Config, operator.Options{AllowEntraIssuedTokens: true,
		EntraKeysURLPrefixes: []string{origin(t, x.keys.MetadataURL()), "http://127.0.0.1:1/"}, Namespaces: []string{x.nsA, x.nsB}})
	x.bearer = issueToken(t, x.nsB, x.base)
	return x
}

// allow: a cluster administrator allows the directories per namespace.
func (x *entraHTTP) allow(t *testing.T, ns string, ids ...string) {
	t.Helper()
	var n corev1.Namespace
	if err := x.e.Client.Get(x.ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		t.Fatal(err)
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[scimv1.AnnotationEntraTenantIDs] = strings.Join(ids, ",")
	if err := x.e.Client.Update(x.ctx, &n); err != nil {
		t.Fatal(err)
	}
}

// Mutually exclusive with an adopted Secret, said in words.
// An application must be pinned, and a keys URL holds no credentials.
func (x *entraHTTP) refusesInvalidSpecs(t *testing.T) {
	unpinned := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "unpinned", Namespace: x.nsA}}
	unpinned.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: entraTenant}
	if err := x.e.Client.Create(x.ctx, unpinned); err == nil || !strings.Contains(err.Error(), "applicationObjectID is required") {
		t.Fatalf("entraIssued without applicationObjectID: %v", err)
	}
	unpinned.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: entraTenant, ApplicationObjectID: entraApp,
		KeysURL: "https://user:secret@login.microsoftonline.com/x/keys"}
	if err := x.e.Client.Create(x.ctx, unpinned); err == nil || !strings.Contains(err.Error(), "keysURL") {
		t.Fatalf("a keysURL with user info: %v", err)
	}

	both := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "both", Namespace: x.nsA}}
	both.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: entraTenant, ApplicationObjectID: entraApp}
	both.Spec.SecretRef = &scimv1.TokenSecretReference{Name: "elsewhere"}
	if err := x.e.Client.Create(x.ctx, both); err == nil || !strings.Contains(err.Error(), "entraIssued and secretRef cannot be combined") {
		t.Fatalf("entraIssued with secretRef: %v", err)
	}
	both.Spec.SecretRef, both.Spec.Rotation = nil, &scimv1.TokenRotation{Interval: metav1.Duration{Duration: time.Hour}}
	if err := x.e.Client.Create(x.ctx, both); err == nil || !strings.Contains(err.Error(), "entraIssued and rotation cannot be combined") {
		t.Fatalf("entraIssued with rotation: %v", err)
	}
}

// takesUpDirectory: nsA's ScimToken accepts the directory; no Secret, no
// token in its status.
func (x *entraHTTP) takesUpDirectory(t *testing.T) *scimv1.ScimToken {
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "entra", Namespace: x.nsA}}
	tok.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: strings.ToUpper(entraTenant), KeysURL: x.keys.MetadataURL(), ApplicationObjectID: entraApp}
	if err := x.e.Client.Create(x.ctx, tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if err := x.e.Client.Get(x.ctx, client.ObjectKeyFromObject(tok), tok); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != "EntraIssuedTokens" || tok.Status.EntraTenantID != entraTenant {
			return fmt.Errorf("not taken up yet: %+v", tok.Status)
		}
		return nil
	})
	if s := tok.Status; s.Fingerprint != "" || s.SecretName != "" || s.IssuedAt != nil || s.PreviousFingerprint != "" {
		t.Fatalf("status names a token in the Entra mode: %+v", s)
	}
	if err := x.e.Client.Get(x.ctx, client.ObjectKey{Namespace: x.nsA, Name: "entra-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Secret was generated in the Entra mode: %v", err)
	}
	return tok
}

// provisionsIntoItsNamespace: a user POSTed with a JWT of the directory
// lands in nsA, apart from the bearer-token tenant. It returns the JWT.
func (x *entraHTTP) provisionsIntoItsNamespace(t *testing.T) string {
	jwt := x.key.Token(t, entratest.ValidClaims(entraTenant, entraApp, time.Now()))
	code, body := call(t, x.base, jwt, "POST", "/Users", `{"userName":"jwt@example.test"}`)
	if code != 201 {
		t.Fatalf("POST /Users with an Entra-issued token: %d %s", code, body)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	var u scimv1.ProvisionedUser
	if err := x.e.Client.Get(x.ctx, client.ObjectKey{Namespace: x.nsA, Name: created.ID}, &u); err != nil {
		t.Fatalf("the user is not in the Entra tenant's namespace %s: %v", x.nsA, err)
	}
	if code, body := call(t, x.base, x.bearer, "GET", "/Users", ""); code != 200 || strings.Contains(body, "jwt@example.test") {
		t.Fatalf("the bearer-token tenant: %d %s", code, body)
	}
	if code, body := call(t, x.base, jwt, "GET", "/Users", ""); code != 200 || !strings.Contains(body, "jwt@example.test") {
		t.Fatalf("the Entra tenant lists its user: %d %s", code, body)
	}
	return jwt
}

// refusesExpiredAndForeignTokens: an expired token and one signed with a
// key that is not the directory's get 401.
func (x *entraHTTP) refusesExpiredAndForeignTokens(t *testing.T) {
	expired := entratest.ValidClaims(entraTenant, entraApp, time.Now())
	expired.Expiry = expired.NotBefore
	if code, _ := call(t, x.base, x.key.Token(t, expired), "GET", "/Users", ""); code != 401 {
		t.Fatalf("an expired token: %d", code)
	}
	other := entratest.NewKey(t, "k1")
	if code, _ := call(t, x.base, other.Token(t, entratest.ValidClaims(entraTenant, entraApp, time.Now())), "GET", "/Users", ""); code != 401 {
		t.Fatalf("a token signed with a key that is not the directory's: %d", code)
	}
}

// The same directory claimed from another namespace: refused, not guessed.
func (x *entraHTTP) refusesDirectoryClaimedTwice(t *testing.T, jwt string) {
	twin := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "twin", Namespace: x.nsB}}
	twin.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: entraTenant, KeysURL: x.keys.MetadataURL(), ApplicationObjectID: entraApp}
	if err := x.e.Client.Create(x.ctx, twin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if code, _ := call(t, x.base, jwt, "GET", "/Users", ""); code != 401 {
			return fmt.Errorf("a directory claimed by two namespaces: %d", code)
		}
		return nil
	})
	if err := x.e.Client.Delete(x.ctx, twin); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if code, _ := call(t, x.base, jwt, "GET", "/Users", ""); code != 200 {
			return fmt.Errorf("after the twin's deletion: %d", code)
		}
		return nil
	})
}

// A ScimToken that had a generated token switches to Entra-issued
// tokens: its Secret is deleted, its token refused, status names none.
func (x *entraHTTP) switchFromGeneratedToken(t *testing.T) {
	var switched scimv1.ScimToken
	if err := x.e.Client.Get(x.ctx, client.ObjectKey{Namespace: x.nsB, Name: "t"}, &switched); err != nil {
		t.Fatal(err)
	}
	switched.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: "6b6b6b6b-1b1b-4c2c-8d3d-4e4e4e4e4e4e", KeysURL: x.keys.JWKSURL(), ApplicationObjectID: entraApp}
	if err := x.e.Client.Update(x.ctx, &switched); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if err := x.e.Client.Get(x.ctx, client.ObjectKeyFromObject(&switched), &switched); err != nil {
			return err
		}
		if s := switched.Status; s.Fingerprint != "" || s.SecretName != "" || s.EntraTenantID == "" {
			return fmt.Errorf("status after the switch: %+v", s)
		}
		if err := x.e.Client.Get(x.ctx, client.ObjectKey{Namespace: x.nsB, Name: "t-token"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the generated Secret after the switch: %v", err)
		}
		if code, _ := call(t, x.base, x.bearer, "GET", "/Users", ""); code != 401 {
			return fmt.Errorf("the generated token after the switch: %d", code)
		}
		return nil
	})
}

// Deactivated: refused within the watch latency.
func (x *entraHTTP) refusesDeactivated(t *testing.T, tok *scimv1.ScimToken, jwt string) {
	if err := x.e.Client.Get(x.ctx, client.ObjectKeyFromObject(tok), tok); err != nil {
		t.Fatal(err)
	}
	inactive := false
	tok.Spec.Active = &inactive
	if err := x.e.Client.Update(x.ctx, tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if code, _ := call(t, x.base, jwt, "GET", "/Users", ""); code != 401 {
			return fmt.Errorf("a deactivated ScimToken's directory: %d", code)
		}
		return nil
	})
}

// A directory whose keys cannot be fetched.
func (x *entraHTTP) keysUnavailable(t *testing.T) {
	dead := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "dead", Namespace: x.nsB}}
	dead.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: "5a5a5a5a-1b1b-4c2c-8d3d-4e4e4e4e4e4e", KeysURL: "http://127.0.0.1:1/keys", ApplicationObjectID: entraApp}
	if err := x.e.Client.Create(x.ctx, dead); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if err := x.e.Client.Get(x.ctx, client.ObjectKeyFromObject(dead), dead); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(dead.Status.Conditions, scimv1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "KeysUnavailable" {
			return fmt.Errorf("keys unavailable not reported: %+v", dead.Status.Conditions)
		}
		return nil
	})
	// Its tokens cannot be checked: 503, which Entra retries, not a 401,
	// which quarantines the provisioning job.
	deadJWT := x.key.Token(t, entratest.ValidClaims("5a5a5a5a-1b1b-4c2c-8d3d-4e4e4e4e4e4e", entraApp, time.Now()))
	if code, body := call(t, x.base, deadJWT, "GET", "/Users", ""); code != 503 {
		t.Fatalf("a token of a directory whose keys cannot be fetched: %d %s", code, body)
	}
}

// TestEntraDirectoryNeedsAnAllowance: directory ids are public, so a
// namespace editor must not be able to claim another tenant's directory
// (review finding: a ScimToken in any namespace naming it made every token
// of the real tenant ambiguous, a 401, or received its traffic). A
// namespace takes a directory up only when a cluster administrator listed
// it in the namespace's annotation, and only when the operator allows the
// mode at all.
func TestEntraDirectoryNeedsAnAllowance(t *testing.T) {
	e := testenv.Require(t, env)
	nsA, squatter, off := e.Namespace(t), e.Namespace(t), e.Namespace(t)
	ctx := context.Background()
	key := entratest.NewKey(t, "k1")
	keys := entratest.NewKeyServer(t, key.Public())
	var n corev1.Namespace
	if err := e.Client.Get(ctx, client.ObjectKey{Name: nsA}, &n); err != nil {
		t.Fatal(err)
	}
	n.Annotations = map[string]string{scimv1.AnnotationEntraTenantIDs: entraTenant}
	if err := e.Client.Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
	base := startOperator(t, e.Config, operator.Options{AllowEntraIssuedTokens: true,
		EntraKeysURLPrefixes: []string{origin(t, keys.MetadataURL())}, Namespaces: []string{nsA, squatter}})
	disabled := startOperator(t, e.Config, operator.Options{EntraKeysURLPrefixes: []string{origin(t, keys.MetadataURL())}, Namespaces: []string{off}})

	create := func(ns string) {
		t.Helper()
		tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "entra", Namespace: ns}}
		tok.Spec.EntraIssued = &scimv1.EntraIssuedTokens{TenantID: entraTenant, KeysURL: keys.MetadataURL(), ApplicationObjectID: entraApp}
		if err := e.Client.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	readyReason := func(ns, want string) {
		t.Helper()
		waitFor(t, func() error {
			var tok scimv1.ScimToken
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "entra"}, &tok); err != nil {
				return err
			}
			c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
			if c == nil || c.Reason != want {
				return fmt.Errorf("Ready in %s is %+v, want reason %s", ns, c, want)
			}
			if want != "EntraIssuedTokens" && tok.Status.EntraTenantID != "" {
				return fmt.Errorf("status of a refused ScimToken names the directory: %+v", tok.Status)
			}
			return nil
		})
	}
	create(nsA)
	readyReason(nsA, "EntraIssuedTokens")
	create(squatter)
	readyReason(squatter, "DirectoryNotAllowed")
	create(off)
	readyReason(off, "EntraIssuedTokensDisabled")

	jwt := key.Token(t, entratest.ValidClaims(entraTenant, entraApp, time.Now()))
	code, body := call(t, base, jwt, "POST", "/Users", `{"userName":"real@example.test"}`)
	if code != 201 {
		t.Fatalf("the allowed tenant's token with a squatter present: %d %s", code, body)
	}
	if code, _ := call(t, disabled, jwt, "GET", "/Users", ""); code != 401 {
		t.Errorf("an operator without --allow-entra-issued-tokens answered %d to an Entra token", code)
	}
}

// origin is the scheme://host/ of u, the prefix an operator would allow.
func origin(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Scheme + "://" + pu.Host + "/"
}
