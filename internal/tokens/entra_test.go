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

func entraScimToken(ns, name string, spec scimv1.EntraIssuedTokens, takenUp bool) *scimv1.ScimToken {
	t := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	t.Spec.Active = ptr.To(true)
	t.Spec.EntraIssued = &spec
	if takenUp {
		t.Status.EntraTenantID = strings.ToLower(spec.TenantID)
	}
	return t
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

// TestEntraIssuedTokens is the table of issue 19, item 2: each token
// against a directory whose keys a local endpoint serves.
func TestEntraIssuedTokens(t *testing.T) {
	k1, k2, attacker := entratest.NewKey(t, "k1"), entratest.NewKey(t, "k2"), entratest.NewKey(t, "k1")
	ks := entratest.NewKeyServer(t, k1.Public())
	f := newEntraFixture(t,
		entraScimToken("tenant-a", "entra", scimv1.EntraIssuedTokens{TenantID: strings.ToUpper(testTenant), KeysURL: ks.MetadataURL()}, true))
	now := f.clk.Now()
	pubDER, err := x509.MarshalPKIXPublicKey(&k1.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(change func(*entratest.Claims)) entratest.Claims {
		c := validClaims(now)
		change(&c)
		return c
	}
	var issued []string // every token made, none may reach the logs
	mk := func(s string) string { issued = append(issued, s); return s }

	cases := []struct {
		name  string
		token string
		want  error // nil: accepted into tenant-a
	}{
		{"valid", mk(sign(t, jose.RS256, k1.Private, "k1", validClaims(now))), nil},
		{"within the clock skew after expiry", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Expiry = jwt.NewNumericDate(now.Add(-30 * time.Second))
		}))), nil},
		{"wrong issuer", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Issuer = "https://login.microsoftonline.com/" + testTenant + "/v2.0"
		}))), ErrUnknown},
		{"issuer of another directory", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Issuer, c.TenantID = EntraIssuer(otherTenant), otherTenant
		}))), ErrUnknown},
		{"tid of another directory", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) { c.TenantID = otherTenant }))), ErrUnknown},
		{"wrong audience", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Audience = jwt.Audience{"https://graph.microsoft.com"}
		}))), ErrUnknown},
		{"wrong signature (another key, same kid)", mk(sign(t, jose.RS256, attacker.Private, "k1", validClaims(now))), ErrUnknown},
		{"expired", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute))
		}))), ErrUnknown},
		{"no expiry", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) { c.Expiry = nil }))), ErrUnknown},
		{"not yet valid", mk(sign(t, jose.RS256, k1.Private, "k1", with(func(c *entratest.Claims) {
			c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute))
		}))), ErrUnknown},
		{"alg none", mk(unsigned(t, "k1", validClaims(now))), ErrUnknown},
		{"HMAC signed with the public key (PEM)", mk(sign(t, jose.HS256, pubPEM, "k1", validClaims(now))), ErrUnknown},
		{"HMAC signed with the public key (DER)", mk(sign(t, jose.HS256, pubDER, "k1", validClaims(now))), ErrUnknown},
		{"RS512", mk(sign(t, jose.RS512, k1.Private, "k1", validClaims(now))), ErrUnknown},
		{"no kid", mk(sign(t, jose.RS256, k1.Private, "", validClaims(now))), ErrUnknown},
		{"not a JWT", "a.b.c", ErrUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.auth.Authenticate(context.Background(), "Bearer "+tc.token)
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
	if n := ks.Fetches(); n != 1 {
		t.Errorf("the keys were fetched %d times for the table; want once, then cached", n)
	}

	t.Run("unknown key id: one refresh, then 401 without fetching", func(t *testing.T) {
		f.clk.Step(2 * time.Minute) // past MinRefreshInterval since the first fetch
		before := ks.Fetches()
		tok := mk(sign(t, jose.RS256, k2.Private, "k2", validClaims(f.clk.Now())))
		if _, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrUnknown) {
			t.Fatalf("unknown kid: %v", err)
		}
		if n := ks.Fetches() - before; n != 1 {
			t.Fatalf("unknown kid fetched %d times, want 1", n)
		}
		for range 3 {
			if _, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrUnknown) {
				t.Fatalf("unknown kid again: %v", err)
			}
		}
		if n := ks.Fetches() - before; n != 1 {
			t.Fatalf("repeated unknown kids fetched %d times within MinRefreshInterval, want 1 in all", n)
		}
	})

	t.Run("key rotation at the endpoint", func(t *testing.T) {
		ks.SetKeys(k2.Public())
		f.clk.Step(2 * time.Minute)
		tok := mk(sign(t, jose.RS256, k2.Private, "k2", validClaims(f.clk.Now())))
		if _, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
			t.Fatalf("a token of the new key: %v", err)
		}
		old := mk(sign(t, jose.RS256, k1.Private, "k1", validClaims(f.clk.Now())))
		if _, err := f.auth.Authenticate(context.Background(), "Bearer "+old); !errors.Is(err, ErrUnknown) {
			t.Fatalf("a token of the key no longer published: %v", err)
		}
	})

	t.Run("endpoint down with keys cached", func(t *testing.T) {
		ks.SetDown(true)
		f.clk.Step(2 * time.Hour) // the set is due for its scheduled refresh
		before := ks.Fetches()
		tok := mk(sign(t, jose.RS256, k2.Private, "k2", validClaims(f.clk.Now())))
		if _, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
			t.Fatalf("cached key during the outage: %v", err)
		}
		spec := &scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: ks.MetadataURL()}
		st := f.keys.Check(context.Background(), spec) // waits for the background refresh
		if st.Keys != 1 || st.LastError == "" || ks.Fetches() != before {
			// The metadata document is down too: the key set is not reached.
			t.Fatalf("status during the outage: %+v (fetches %d→%d)", st, before, ks.Fetches())
		}
		if _, err := f.auth.Authenticate(context.Background(), "Bearer "+tok); err != nil {
			t.Fatalf("cached key after the failed refresh: %v", err)
		}
		ks.SetDown(false)
		f.clk.Step(2 * time.Minute)
		if st := f.keys.Check(context.Background(), spec); st.LastError != "" || st.Keys != 1 {
			t.Fatalf("status after the outage: %+v", st)
		}
	})

	for _, tok := range issued {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(f.logs.String(), tok) || (len(sig) > 8 && strings.Contains(f.logs.String(), sig)) {
			t.Fatalf("token material in the logs:\n%s", f.logs.String())
		}
	}
	if !strings.Contains(f.logs.String(), "fetched the Entra signing keys") {
		t.Errorf("expected the key fetches to be logged:\n%s", f.logs.String())
	}
}

// Which ScimToken a valid Entra token authenticates as, and when none.
func TestEntraIssuedTokenSelection(t *testing.T) {
	k1 := entratest.NewKey(t, "k1")
	ks := entratest.NewKeyServer(t, k1.Public())
	jwks := ks.JWKSURL() // a JWKS, not metadata, works too
	spec := scimv1.EntraIssuedTokens{TenantID: testTenant, KeysURL: jwks}
	pinned := spec
	pinned.ApplicationObjectID = testAppOID
	otherApp := spec
	otherApp.ApplicationObjectID = "99999999-2222-4333-8444-555555555555"
	deleting := entraScimToken("tenant-a", "deleting", spec, true)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1_699_000_000, 0)}
	deleting.Finalizers = []string{scimv1.FinalizerToken}
	inactive := entraScimToken("tenant-a", "off", spec, true)
	inactive.Spec.Active = ptr.To(false)
	notTakenUp := entraScimToken("tenant-a", "new", spec, false)
	otherDir := scimv1.EntraIssuedTokens{TenantID: otherTenant, KeysURL: jwks}

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
	// The key endpoint cannot be reached: the token is refused as unknown
	// (401), not as an error of the replica (503).
	k1 := entratest.NewKey(t, "k1")
	_, err = f.auth.Authenticate(context.Background(), "Bearer "+sign(t, jose.RS256, k1.Private, "k1", validClaims(f.clk.Now())))
	if FailureReason(err) != ReasonUnknown {
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
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
