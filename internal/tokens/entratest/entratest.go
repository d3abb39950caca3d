// Package entratest stands in for Microsoft Entra ID in tests: a local key
// endpoint (OpenID Connect metadata and a JSON Web Key Set) and tokens
// signed with keys made in the test, as Entra issues them to a SCIM
// endpoint when the Secret Token field is left blank.
package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Audience is the audience of Entra's tokens for custom applications.
const Audience = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"

// Issuer is the issuer of the tokens of directory tenantID.
func Issuer(tenantID string) string {
	return "https://sts.windows.net/" + strings.ToLower(tenantID) + "/"
}

// KeyServer serves OpenID Connect metadata at MetadataURL whose jwks_uri,
// JWKSURL, holds the keys given (SetKeys replaces them); SetDown makes
// both answer 503; Hold makes them wait until Release.
type KeyServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	down    bool
	held    chan struct{} // closed by Release; nil when not held
	arrived chan struct{} // one value per request that waits
	fetches atomic.Int32
}

// NewKeyServer starts a KeyServer, closed when the test ends.
func NewKeyServer(t testing.TB, keys ...jose.JSONWebKey) *KeyServer {
	t.Helper()
	ks := &KeyServer{keys: keys, arrived: make(chan struct{}, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		ks.wait()
		if ks.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"jwks_uri": ks.JWKSURL()})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		ks.fetches.Add(1)
		ks.wait()
		if ks.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: ks.keys})
	})
	ks.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ks.Release() // Close waits for the requests being served
		ks.Close()
	})
	return ks
}

// Hold makes every request wait, until Release; Arrived receives once per
// request that waits.
func (ks *KeyServer) Hold() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.held == nil {
		ks.held = make(chan struct{})
	}
}

// Release lets the held requests, and the later ones, through.
func (ks *KeyServer) Release() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.held != nil {
		close(ks.held)
		ks.held = nil
	}
}

// Arrived receives a value for each request that started waiting.
func (ks *KeyServer) Arrived() <-chan struct{} { return ks.arrived }

func (ks *KeyServer) wait() {
	ks.mu.Lock()
	held := ks.held
	ks.mu.Unlock()
	if held != nil {
		select {
		case ks.arrived <- struct{}{}:
		default:
		}
		<-held
	}
}

// MetadataURL is the OpenID Connect metadata document.
func (ks *KeyServer) MetadataURL() string { return ks.URL + "/.well-known/openid-configuration" }

// JWKSURL is the key set.
func (ks *KeyServer) JWKSURL() string { return ks.URL + "/keys" }

// Fetches counts the requests for the key set.
func (ks *KeyServer) Fetches() int { return int(ks.fetches.Load()) }

// SetKeys replaces the published keys (a rotation).
func (ks *KeyServer) SetKeys(keys ...jose.JSONWebKey) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = keys
}

// SetDown makes the endpoint fail (true) or serve again.
func (ks *KeyServer) SetDown(down bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.down = down
}

func (ks *KeyServer) isDown() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.down
}

// Key is an RSA signing key made in the test.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// NewKey makes a 2048-bit key with key id kid.
func NewKey(t testing.TB, kid string) Key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: kid, Private: priv}
}

// Public is the key as a key endpoint publishes it.
func (k Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: string(jose.RS256), Use: "sig"}
}

// Claims are those of a token Entra issues to a SCIM endpoint.
type Claims struct {
	jwt.Claims
	TenantID string `json:"tid,omitempty"`
	ObjectID string `json:"oid,omitempty"`
	AppID    string `json:"appid,omitempty"`
	// Scope is set in delegated (user) tokens only.
	Scope string `json:"scp,omitempty"`
}

// ValidClaims are the claims of a token of directory tenantID, valid from
// five minutes before now for an hour, issued to application object id oid.
func ValidClaims(tenantID, oid string, now time.Time) Claims {
	return Claims{
		Claims: jwt.Claims{
			Issuer:    Issuer(tenantID),
			Audience:  jwt.Audience{Audience},
			IssuedAt:  jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Minute)),
			Expiry:    jwt.NewNumericDate(now.Add(time.Hour)),
		},
		TenantID: tenantID, ObjectID: oid, AppID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
	}
}

// Sign serializes claims as a compact JWS signed with alg and key (an RSA
// private key, or bytes for HMAC), with key id kid ("" for none).
func Sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims Claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Token is a valid RS256 token of k.
func (k Key) Token(t testing.TB, claims Claims) string {
	t.Helper()
	return Sign(t, jose.RS256, k.Private, k.ID, claims)
}
