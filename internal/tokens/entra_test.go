package tokens

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens/entratest"
)

const (
	testTenant  = "0b7c9f3e-1d2a-4e5f-8a9b-0c1d2e3f4a5b"
	otherTenant = "9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f"
	testAppOID  = "11111111-2222-4333-8444-555555555555"
)

func validClaims(now time.Time) entratest.Claims {
	return entratest.ValidClaims(testTenant, testAppOID, now)
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims entratest.Claims) string {
	t.Helper()
	return entratest.Sign(t, alg, key, kid, claims)
}

// unsigned builds an "alg": "none" token by hand: no library makes one.
func unsigned(t *testing.T, kid string, claims entratest.Claims) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// entraScimToken is a ScimToken accepting spec's directory; an spec without
// applicationObjectID pins testAppOID (the field is required).
func entraScimToken(ns, name string, spec scimv1.EntraIssuedTokens, takenUp bool) *scimv1.ScimToken {
	if spec.ApplicationObjectID == "" {
		spec.ApplicationObjectID = testAppOID
	}
	t := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	t.Spec.Active = ptr.To(true)
	t.Spec.EntraIssued = &spec
	if takenUp {
		t.Status.EntraTenantID = strings.ToLower(spec.TenantID)
	}
	return t
}

// waitFetches waits for the key fetches running in k (those started in
// the background).
func waitFetches(k *EntraKeys) {
	k.mu.Lock()
	var sets []*keySet
	for _, s := range k.sets {
		sets = append(sets, s)
	}
	k.mu.Unlock()
	for _, s := range sets {
		s.mu.Lock()
		ch := s.fetching
		s.mu.Unlock()
		if ch != nil {
			<-ch
		}
	}
}

type entraFixture struct {
	clk  *clocktesting.FakeClock
	keys *EntraKeys
	auth *Authenticator
	logs *bytes.Buffer
}

func newEntraFixture(t *testing.T, objs ...client.Object) *entraFixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	f := &entraFixture{clk: clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0)), logs: &bytes.Buffer{}}
	var logMu sync.Mutex
	log := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		f.logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
	// The local key endpoints the ScimTokens name are allowed, as an
	// operator lists its mirror.
	var allowed []string
	for _, o := range objs {
		if tok, ok := o.(*scimv1.ScimToken); ok && tok.Spec.EntraIssued != nil && tok.Spec.EntraIssued.KeysURL != "" {
			u, err := url.Parse(tok.Spec.EntraIssued.KeysURL)
			if err != nil {
				t.Fatal(err)
			}
			allowed = append(allowed, u.Scheme+"://"+u.Host+"/")
		}
	}
	f.keys = NewEntraKeys(EntraOptions{Clock: f.clk, Log: log,
		RefreshInterval: time.Hour, MinRefreshInterval: time.Minute, Leeway: time.Minute,
		AllowedURLPrefixes: allowed})
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&scimv1.ScimToken{}, IndexFingerprint, indexFingerprints).
		WithIndex(&scimv1.ScimToken{}, IndexEntraTenant, indexEntraTenant).
		WithObjects(objs...).Build()
	f.auth = NewAuthenticator(c, f.clk, testFingerprints(t))
	f.auth.Entra = f.keys
	return f
}

// entraScenario is one directory whose keys a local endpoint serves, with a
// ScimToken accepting it in tenant-a; the steps of TestEntraIssuedTokens
// share it (the key server's fetch count and the fake clock carry over).
type entraScenario struct {
	f                *entraFixture
	ks               *entratest.KeyServer
	k1, k2, attacker entratest.Key
	issued           []string // every token made, none may reach the logs
}

func newEntraScenario(t *testing.T) *entraScenario {
	t.Helper()
	s := &entraScenario{k1: entratest.NewKey(t, "k1"), k2: entratest.NewKey(t, "k2"), attacker: entratest.NewKey(t, "k1")}
	s.ks = entratest.NewKeyServer(t, s.k1.Public())
	s.f = newEntraFixture(t,
		entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: strings.ToUpper(testTenant), KeysURL: s.ks.MetadataURL()}, true))
	return s
}

// mk records a token so that the logs can be searched for it at the end.
func (s *entraScenario) mk(tok string) string { s.issued = append(s.issued, tok); return tok }

type entraCase struct {
	name  string
	token string
	want  error // nil: accepted into tenant-a
}

// cases are tokens made now: the valid one and each way to break it.
func (s *entraScenario) cases(t *testing.T) []entraCase {
	t.Helper()
	now := s.f.clk.Now()
	pubDER, err := x509.MarshalPKIXPublicKey(&s.k1.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(change func(*entratest.Claims)) entratest.Claims {
		c := validClaims(now)
		change(&c)
		return c
	}
	return []entraCase{
		{"valid", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", validClaims(now))), nil},
		{"within the clock skew after expiry", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Expiry = jwt.NewNumericDate(now.Add(-30 * time.Second))
		}))), nil},
		{"wrong issuer", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Issuer = "https://login.microsoftonline.com/" + testTenant + "/v2.0"
		}))), ErrUnknown},
		{"issuer of another directory", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Issuer, c.TenantID = EntraIssuer(otherTenant), otherTenant
		}))), ErrUnknown},
		{"tid of another directory", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) { c.TenantID = otherTenant }))), ErrUnknown},
		{"wrong audience", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Audience = jwt.Audience{"https://graph.microsoft.com"}
		}))), ErrUnknown},
		{"wrong signature (another key, same kid)", s.mk(sign(t, jose.RS256, s.attacker.Private, "k1", validClaims(now))), ErrUnknown},
		{"expired", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute))
		}))), ErrUnknown},
		{"no expiry", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) { c.Expiry = nil }))), ErrUnknown},
		{"not yet valid", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute))
		}))), ErrUnknown},
		{"alg none", s.mk(unsigned(t, "k1", validClaims(now))), ErrUnknown},
		{"HMAC signed with the public key (PEM)", s.mk(sign(t, jose.HS256, pubPEM, "k1", validClaims(now))), ErrUnknown},
		{"HMAC signed with the public key (DER)", s.mk(sign(t, jose.HS256, pubDER, "k1", validClaims(now))), ErrUnknown},
		{"RS512", s.mk(sign(t, jose.RS512, s.k1.Private, "k1", validClaims(now))), ErrUnknown},
		{"no kid", s.mk(sign(t, jose.RS256, s.k1.Private, "", validClaims(now))), ErrUnknown},
		{"not a JWT", "a.b.c", ErrUnknown},
		{"delegated (user) token: scp", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) { c.Scope = "User.Read" }))), ErrUnknown},
		{"another application of the directory", s.mk(sign(t, jose.RS256, s.k1.Private, "k1", with(func(c *entratest.Claims) {
			c.ObjectID = "99999999-2222-4333-8444-555555555555"
		}))), ErrUnknown},
	}
}

// TestEntraIssuedTokens is the table of issue 19, item 2: each token
// against a directory whose keys a local endpoint serves.
func TestEntraIssuedTokens(t *testing.T) {
	s := newEntraScenario(t)
	for _, tc := range s.cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tc.token)
			if tc.want == nil {
				want := Principal{Namespace: "tenant-a", TokenName: "entra", Fingerprint: EntraFingerprintPrefix + testTenant}
				if err != nil || p != want {
					t.Fatalf("got %+v, %v; want %+v", p, err, want)
				}
				return
			}
			if !errors.Is(err, tc.want) || FailureReason(err) != ReasonUnknown {
				t.Fatalf("got %+v, %v; want %v", p, err, tc.want)
			}
		})
	}
	if n := s.ks.Fetches(); n != 1 {
		t.Errorf("the keys were fetched %d times for the table; want once, then cached", n)
	}

	t.Run("unknown key id: one refresh in the background, then 401 without fetching", s.unknownKeyID)
	t.Run("key rotation at the endpoint", s.keyRotation)
	t.Run("endpoint down with keys cached", s.endpointDown)

	for _, tok := range s.issued {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(s.f.logs.String(), tok) || (len(sig) > 8 && strings.Contains(s.f.logs.String(), sig)) {
			t.Fatalf("token material in the logs:\n%s", s.f.logs.String())
		}
	}
	if !strings.Contains(s.f.logs.String(), "fetched the Entra signing keys") {
		t.Errorf("expected the key fetches to be logged:\n%s", s.f.logs.String())
	}
}

func (s *entraScenario) unknownKeyID(t *testing.T) {
	s.f.clk.Step(2 * time.Minute) // past MinRefreshInterval since the first fetch
	before := s.ks.Fetches()
	tok := s.mk(sign(t, jose.RS256, s.k2.Private, "k2", validClaims(s.f.clk.Now())))
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown kid: %v", err)
	}
	waitFetches(s.f.keys)
	if n := s.ks.Fetches() - before; n != 1 {
		t.Fatalf("unknown kid fetched %d times, want 1", n)
	}
	for range 3 {
		if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrUnknown) {
			t.Fatalf("unknown kid again: %v", err)
		}
	}
	if n := s.ks.Fetches() - before; n != 1 {
		t.Fatalf("repeated unknown kids fetched %d times within MinRefreshInterval, want 1 in all", n)
	}
}

func (s *entraScenario) keyRotation(t *testing.T) {
	s.ks.SetKeys(s.k2.Public())
	s.f.clk.Step(2 * time.Minute)
	tok := s.mk(sign(t, jose.RS256, s.k2.Private, "k2", validClaims(s.f.clk.Now())))
	// The first token of a key not held yet starts a refetch in the
	// background (Entra publishes keys before signing with them, and
	// the hourly refresh normally has them already).
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil && !errors.Is(err, ErrUnknown) {
		t.Fatalf("a token of the new key, first: %v", err)
	}
	waitFetches(s.f.keys)
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
		t.Fatalf("a token of the new key: %v", err)
	}
	old := s.mk(sign(t, jose.RS256, s.k1.Private, "k1", validClaims(s.f.clk.Now())))
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+old); !errors.Is(err, ErrUnknown) {
		t.Fatalf("a token of the key no longer published: %v", err)
	}
}

func (s *entraScenario) endpointDown(t *testing.T) {
	s.ks.SetDown(true)
	s.f.clk.Step(2 * time.Hour) // the set is due for its scheduled refresh
	before := s.ks.Fetches()
	tok := s.mk(sign(t, jose.RS256, s.k2.Private, "k2", validClaims(s.f.clk.Now())))
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
		t.Fatalf("cached key during the outage: %v", err)
	}
	spec := &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: s.ks.MetadataURL()}
	st := s.f.keys.Check(context.Background(), spec) // waits for the background refresh
	if st.Keys != 1 || st.LastError == "" || s.ks.Fetches() != before {
		// The metadata document is down too: the key set is not reached.
		t.Fatalf("status during the outage: %+v (fetches %d→%d)", st, before, s.ks.Fetches())
	}
	if _, err := s.f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
		t.Fatalf("cached key after the failed refresh: %v", err)
	}
	s.ks.SetDown(false)
	s.f.clk.Step(2 * time.Minute)
	if st := s.f.keys.Check(context.Background(), spec); st.LastError != "" || st.Keys != 1 {
		t.Fatalf("status after the outage: %+v", st)
	}
}

// Which ScimToken a valid Entra token authenticates as, and when none.
func TestEntraIssuedTokenSelection(t *testing.T) {
	k1 := entratest.NewKey(t, "k1")
	ks := entratest.NewKeyServer(t, k1.Public())
	jwks := ks.JWKSURL() // a JWKS, not metadata, works too
	spec := scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: jwks, ApplicationObjectID: testAppOID}
	pinned := spec
	otherApp := spec
	otherApp.ApplicationObjectID = "99999999-2222-4333-8444-555555555555"
	deleting := entraScimToken("tenant-a", "deleting", spec, true)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1_699_000_000, 0)}
	deleting.Finalizers = []string{scimv1.FinalizerToken}
	inactive := entraScimToken("tenant-a", "off", spec, true)
	inactive.Spec.Active = ptr.To(false)
	notTakenUp := entraScimToken("tenant-a", "new", spec, false)
	otherDir := scimv1.EntraIssuedTokens{TenantID: otherTenant, KeysURL: jwks}
	unpinned := entraScimToken("tenant-a", "unpinned", spec, true)
	unpinned.Spec.EntraIssued.ApplicationObjectID = ""

	for _, tc := range []struct {
		name    string
		objs    []client.Object
		want    string // the ScimToken, "" for a refusal
		wantErr error
		fetches int
	}{
		{"no ScimToken accepts Entra tokens: no key fetched", nil, "", ErrUnknown, 0},
		{"another directory only", []client.Object{entraScimToken("tenant-a", "x", otherDir, true)}, "", ErrUnknown, 0},
		{"not taken up by the controller yet", []client.Object{notTakenUp}, "", ErrUnknown, 0},
		{"inactive", []client.Object{inactive}, "", ErrInactive, 1},
		{"being deleted", []client.Object{deleting}, "", ErrInactive, 1},
		{"pinned application matches oid", []client.Object{entraScimToken("tenant-a", "pinned", pinned, true)}, "pinned", nil, 1},
		{"pinned to another application", []client.Object{entraScimToken("tenant-a", "other", otherApp, true)}, "", ErrUnknown, 1},
		{"pinned to no application (stored before it was required): refused, nothing fetched", []client.Object{unpinned}, "", ErrUnknown, 0},
		{"same namespace: the one that accepts", []client.Object{inactive, entraScimToken("tenant-a", "other", otherApp, true),
			entraScimToken("tenant-a", "pinned", pinned, true)}, "pinned", nil, 1},
		{"same directory in two namespaces: ambiguous", []client.Object{entraScimToken("tenant-a", "x", spec, true),
			entraScimToken("tenant-b", "y", spec, true)}, "", ErrAmbiguous, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ks.Fetches()
			f := newEntraFixture(t, tc.objs...)
			tok := sign(t, jose.RS256, k1.Private, "k1", validClaims(f.clk.Now()))
			p, err := f.auth.Authenticate(context.Background(), "Bearer "+tok)
			if tc.want != "" {
				if err != nil || p.TokenName != tc.want || p.Namespace != "tenant-a" {
					t.Fatalf("got %+v, %v; want %s", p, err, tc.want)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %+v, %v; want %v", p, err, tc.wantErr)
			}
			if n := ks.Fetches() - before; n != tc.fetches {
				t.Errorf("%d fetches of the keys, want %d", n, tc.fetches)
			}
			if err != nil && strings.Contains(err.Error(), tok[strings.LastIndexByte(tok, '.')+1:]) {
				t.Errorf("the error holds token material: %v", err)
			}
		})
	}
}

// Bearer tokens keep working beside Entra tokens, and a JWT-shaped bearer
// token adopted from a Secret is still matched by its fingerprint first.
func TestEntraKeepsBearerTokens(t *testing.T) {
	fps := testFingerprints(t)
	adopted := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQtb2YtYW4tYWRvcHRlZA"
	bearer := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-b", Name: "adopted"}}
	bearer.Status.Fingerprint = fps.Of(adopted)
	f := newEntraFixture(t, bearer,
		entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: "http://127.0.0.1:1/keys"}, true))
	p, err := f.auth.Authenticate(context.Background(), "Bearer "+adopted)
	if err != nil || p.Namespace != "tenant-b" || p.Fingerprint != fps.Of(adopted) {
		t.Fatalf("a JWT-shaped adopted token: %+v, %v", p, err)
	}
	if _, err := f.auth.Authenticate(context.Background(), "Bearer scimop_unknown"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown bearer token: %v", err)
	}
	// The key endpoint cannot be reached: the token cannot be checked,
	// which is the replica's problem (503, retried), not the token's
	// (a 401 makes Entra quarantine the job).
	k1 := entratest.NewKey(t, "k1")
	_, err = f.auth.Authenticate(context.Background(), "Bearer "+sign(t, jose.RS256, k1.Private, "k1", validClaims(f.clk.Now())))
	if !errors.Is(err, ErrKeysUnavailable) || FailureReason(err) != ReasonKeysUnavailable {
		t.Fatalf("keys unavailable: %v (reason %s)", err, FailureReason(err))
	}
	st := f.keys.Check(context.Background(), &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: "http://127.0.0.1:1/keys"})
	if st.Keys != 0 || st.LastError == "" {
		t.Fatalf("key status: %+v", st)
	}
}

// TestEntraKeysOnlyFromAllowedURLs: spec.keysURL is written by whoever may
// edit ScimTokens in a namespace. Keys are fetched only from Entra and the
// operator's allowed prefixes: any other URL gets no request at all (no
// probing of cloud metadata or in-cluster services from the operator's
// Pods), and a redirect out of the allowed prefixes is not followed.
func TestEntraKeysOnlyFromAllowedURLs(t *testing.T) {
	hits := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits++
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1)+"/keys", http.StatusFound)
	}))
	defer redirect.Close()
	keys := NewEntraKeys(EntraOptions{AllowedURLPrefixes: []string{redirect.URL + "/"}})
	for _, u := range []string{strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1) + "/keys", "http://169.254.169.254/metadata/identity", redirect.URL + "/keys"} {
		st := keys.Check(context.Background(), &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: u})
		if st.Keys != 0 || st.LastError == "" {
			t.Errorf("keys from %s: %+v", u, st)
		}
	}
	if hits != 0 {
		t.Errorf("the operator sent %d requests to a URL it must not fetch keys from", hits)
	}
}

// TestEntraAllowedURLs: the allow-list compares parsed URLs (review
// finding: a string prefix admitted user info and longer host names).
func TestEntraAllowedURLs(t *testing.T) {
	o := EntraOptions{AllowedURLPrefixes: []string{"http://entra-keys.proxy.internal", "https://mirror.example/keys/"}}
	for u, want := range map[string]bool{
		"https://login.microsoftonline.com/tenant/.well-known/openid-configuration": true,
		"https://LOGIN.microsoftonline.com/tenant/keys":                             true,
		"http://entra-keys.proxy.internal/tenant/keys":                              true,
		"https://mirror.example/keys/tenant":                                        true,
		"http://entra-keys.proxy.internal@127.0.0.1:8080/keys":                      false,
		"http://entra-keys.proxy.internal.evil.example/keys":                        false,
		"https://mirror.example/keys/../admin":                                      false,
		"https://mirror.example/keysX/tenant":                                       false,
		"https://login.microsoftonline.com.evil.example/keys":                       false,
		"http://169.254.169.254/metadata":                                           false,
		"file:///etc/passwd":                                                        false,
	} {
		if got := o.allowed(u); got != want {
			t.Errorf("allowed(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestEntraKeysUnavailableIsNotTheClients (review finding on issue 19): a
// valid token that cannot be checked because the directory's keys cannot
// be fetched is ErrKeysUnavailable (503, retried by Entra), never a 401
// (which quarantines the provisioning job); an unknown key id against a
// healthy set stays a 401.
func TestEntraKeysUnavailableIsNotTheClients(t *testing.T) {
	k1, k2 := entratest.NewKey(t, "k1"), entratest.NewKey(t, "k2")
	ks := entratest.NewKeyServer(t, k1.Public())
	ks.SetDown(true)
	f := newEntraFixture(t, entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.JWKSURL()}, true))
	auth := func(k entratest.Key) error {
		t.Helper()
		_, err := f.auth.Authenticate(context.Background(), "Bearer "+k.Token(t, validClaims(f.clk.Now())))
		return err
	}
	if err := auth(k1); !errors.Is(err, ErrKeysUnavailable) || FailureReason(err) != ReasonKeysUnavailable {
		t.Fatalf("no key fetched yet: %v (%s)", err, FailureReason(err))
	}
	ks.SetDown(false)
	f.clk.Step(2 * time.Minute)
	if err := auth(k1); err != nil {
		t.Fatalf("after the endpoint came back: %v", err)
	}
	if err := auth(k2); !errors.Is(err, ErrUnknown) {
		t.Fatalf("an unknown kid against a healthy set: %v", err)
	}
	waitFetches(f.keys)
	// The endpoint fails; the last refresh failed, so an unknown kid may
	// be a key published meanwhile.
	ks.SetDown(true)
	f.clk.Step(2 * time.Minute)
	if err := auth(k2); !errors.Is(err, ErrUnknown) {
		t.Fatalf("an unknown kid, the refresh not failed yet: %v", err)
	}
	waitFetches(f.keys)
	if err := auth(k2); !errors.Is(err, ErrKeysUnavailable) || FailureReason(err) != ReasonKeysUnavailable {
		t.Fatalf("an unknown kid after a failed fetch: %v (%s)", err, FailureReason(err))
	}
	if err := auth(k1); err != nil {
		t.Fatalf("a held key after a failed fetch: %v", err)
	}
}

// TestEntraKeysExpire (review finding): keys whose last successful fetch
// is older than MaxKeyAge are not used; tokens are answered as keys
// unavailable until a fetch succeeds again.
func TestEntraKeysExpire(t *testing.T) {
	k1 := entratest.NewKey(t, "k1")
	ks := entratest.NewKeyServer(t, k1.Public())
	f := newEntraFixture(t, entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.JWKSURL()}, true))
	auth := func() error {
		t.Helper()
		_, err := f.auth.Authenticate(context.Background(), "Bearer "+k1.Token(t, validClaims(f.clk.Now())))
		return err
	}
	if err := auth(); err != nil {
		t.Fatal(err)
	}
	ks.SetDown(true)
	spec := &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.JWKSURL(), ApplicationObjectID: testAppOID}
	for range 47 { // the controller checks the set, which keeps it
		f.clk.Step(time.Hour)
		f.keys.Check(context.Background(), spec)
	}
	if err := auth(); err != nil {
		t.Fatalf("keys 47h old: %v", err)
	}
	f.clk.Step(time.Hour)
	f.keys.Check(context.Background(), spec)
	f.clk.Step(time.Hour)
	if err := auth(); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("keys 49h old, the endpoint down: %v", err)
	}
	if st := f.keys.Check(context.Background(), spec); st.Keys != 0 || st.Held != 1 || st.LastError == "" {
		t.Fatalf("status of expired keys: %+v", st)
	}
	ks.SetDown(false)
	f.clk.Step(2 * time.Minute)
	if err := auth(); err != nil {
		t.Fatalf("after a successful fetch: %v", err)
	}
}

// TestEntraKeySetsPruned (review finding): a key set neither used nor
// checked for 2×RefreshInterval is dropped; one in use stays.
func TestEntraKeySetsPruned(t *testing.T) {
	k1 := entratest.NewKey(t, "k1")
	ks := entratest.NewKeyServer(t, k1.Public())
	f := newEntraFixture(t, entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.JWKSURL()}, true))
	gone := &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.MetadataURL(), ApplicationObjectID: testAppOID}
	used := &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.JWKSURL(), ApplicationObjectID: testAppOID}
	f.keys.Check(context.Background(), gone)
	for range 7 {
		f.clk.Step(30 * time.Minute)
		f.keys.Check(context.Background(), used)
	}
	f.keys.mu.Lock()
	_, stillGone := f.keys.sets[ks.MetadataURL()]
	_, stillUsed := f.keys.sets[ks.JWKSURL()]
	n := len(f.keys.sets)
	f.keys.mu.Unlock()
	if stillGone || !stillUsed || n != 1 {
		t.Fatalf("after 3.5h: unused set kept %v, used set kept %v, %d sets", stillGone, stillUsed, n)
	}
}

// TestEntraOneBlockingFetchPerRequest (review finding): a directory that
// several ScimTokens with distinct keysURLs accept costs a request at most
// one wait for a key fetch; the other sets are fetched in the background
// and the request is answered "keys unavailable" (503) meanwhile.
func TestEntraOneBlockingFetchPerRequest(t *testing.T) {
	k1 := entratest.NewKey(t, "k1")
	a, b := entratest.NewKeyServer(t, k1.Public()), entratest.NewKeyServer(t, k1.Public())
	a.Hold()
	b.Hold()
	other := scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: a.JWKSURL(), ApplicationObjectID: "99999999-2222-4333-8444-555555555555"}
	f := newEntraFixture(t,
		entraScimToken("tenant-a", "a", other, true),
		entraScimToken("tenant-a", "b", scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: b.JWKSURL()}, true))
	tok := k1.Token(t, validClaims(f.clk.Now()))
	done := make(chan error, 1)
	go func() {
		_, err := f.auth.Authenticate(context.Background(), "Bearer "+tok)
		done <- err
	}()
	// Release whichever endpoint the request waits for first; the other
	// stays held.
	select {
	case <-a.Arrived():
		a.Release()
	case <-b.Arrived():
		b.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("no key fetch started")
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("with one endpoint held: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request waits for a second key fetch")
	}
	a.Release()
	b.Release()
	waitFetches(f.keys)
	if p, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil || p.TokenName != "b" {
		t.Fatalf("once both sets are fetched: %+v, %v", p, err)
	}
}

// TestEntraURLCredentialsRedacted (review finding): user info in a keys
// URL never reaches status (KeyStatus), errors or logs.
func TestEntraURLCredentialsRedacted(t *testing.T) {
	f := newEntraFixture(t)
	for _, u := range []string{"http://alice:s3cr3t-pw@127.0.0.1:1/keys", "https://s3cr3t-tok@login.microsoftonline.com/x/keys"} {
		st := f.keys.Check(context.Background(), &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: u, ApplicationObjectID: testAppOID})
		for _, s := range []string{st.URL, st.LastError, f.logs.String()} {
			if strings.Contains(s, "s3cr3t") || strings.Contains(s, "alice") {
				t.Fatalf("credentials of %s shown: %q", u, s)
			}
		}
		if st.LastError == "" || !strings.Contains(st.URL, "127.0.0.1:1/keys") && !strings.Contains(st.URL, "login.microsoftonline.com") {
			t.Fatalf("status of %s: %+v", u, st)
		}
	}
}
