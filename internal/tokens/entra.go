package tokens

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// Entra-issued tokens. When the Secret Token field of an Entra ID
// provisioning configuration is left blank, Entra sends with every request
// a JWT it signed itself. It is accepted for the namespace of the ScimToken
// whose spec.entraIssued names the token's directory, and whose status has
// taken that directory up (status.entraTenantID), after checking its
// signature against the directory's published keys, its issuer, audience,
// expiry and not-before (with EntraOptions.Leeway), and, when pinned, the
// application.
const (
	// EntraAudience is the audience of the tokens Entra issues to SCIM
	// endpoints of custom (non-gallery) applications.
	EntraAudience = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
	// entraIssuerPrefix and the lower-case directory id and "/" make the
	// issuer.
	entraIssuerPrefix = "https://sts.windows.net/"
	// entraMetadataURL is the default key endpoint (%s: the directory id),
	// an OpenID Connect metadata document whose jwks_uri holds the keys.
	entraMetadataURL = "https://login.microsoftonline.com/%s/.well-known/openid-configuration"

	// IndexEntraTenant indexes ScimTokens by the directory whose tokens
	// they accept: spec.entraIssued.tenantID, lower case, while
	// status.entraTenantID agrees with it.
	IndexEntraTenant = "scim.helpdesk.dev/entra-tenant"

	// EntraFingerprintPrefix starts the Principal.Fingerprint of a request
	// authenticated by an Entra-issued token ("entra:" and the directory
	// id): it keys the per-token rate limit and names the tenant in logs.
	// No ScimToken's status holds it.
	EntraFingerprintPrefix = "entra:"

	// maxKeyDocument bounds a metadata document or key set.
	maxKeyDocument = 1 << 20
)

// errUnknownKey: the token names a key that the directory's key set does
// not hold, while that set is healthy (its last fetch succeeded).
var errUnknownKey = errors.New("the token's signing key is not among the directory's keys")

// ErrKeysUnavailable means the token cannot be checked now because the
// directory's signing keys could not be fetched (none yet, the last fetch
// failed and the token names a key not held, or the keys held are older
// than EntraOptions.MaxKeyAge), or a fetch was started in the background
// for this request. Not the client's doing: the HTTP layer answers 503
// with Retry-After, which Entra retries, never a 401, which makes Entra
// quarantine the provisioning job.
var ErrKeysUnavailable = errors.New("the Entra directory's signing keys are not available right now")

// EntraOptions configure EntraKeys. Zero values take the defaults.
type EntraOptions struct {
	// Client fetches the keys. Default: a client with a 10 s timeout that
	// honours HTTPS_PROXY and NO_PROXY.
	Client *http.Client
	// RefreshInterval is how old a key set may get before it is fetched
	// again (in the background, the current keys still in use). Default 1h.
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches of the same
	// key set: an unknown key id fetches again at most this often, and so
	// does a key endpoint that failed. Default 1m.
	MinRefreshInterval time.Duration
	// MaxKeyAge is how long keys are used after their last successful
	// fetch: older keys are not trusted (tokens are answered with
	// ErrKeysUnavailable until a fetch succeeds). Default 48h.
	MaxKeyAge time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 1m.
	Leeway time.Duration
	// Clock is the time tokens are checked at and key sets age by.
	Clock clock.PassiveClock
	Log   logr.Logger
	// AllowedURLPrefixes are where keys may be fetched from besides Entra's
	// own endpoint (https://login.microsoftonline.com/): a ScimToken's
	// keysURL, a jwks_uri its metadata names, and every redirect must start
	// with one. spec.keysURL is written by whoever may edit ScimTokens in a
	// namespace; without this list they could make the operator's Pods send
	// requests to any address the Pods reach (cloud metadata, in-cluster
	// services) and read the answers' errors in status.
	AllowedURLPrefixes []string
}

// entraKeysPrefix is where Entra publishes its keys.
const entraKeysPrefix = "https://login.microsoftonline.com/"

// allowed reports whether keys may be fetched from u. URLs are compared
// parsed, not as strings: no user info ("https://allowed@elsewhere/"), no
// "." or ".." segment, and a prefix always ends at a "/" so that a host
// prefix does not admit a longer host name.
func (o *EntraOptions) allowed(u string) bool {
	canonical, ok := canonicalURL(u)
	if !ok {
		return false
	}
	for _, p := range append([]string{entraKeysPrefix}, o.AllowedURLPrefixes...) {
		cp, ok := canonicalURL(p)
		if !ok || p == "" {
			continue
		}
		if !strings.HasSuffix(cp, "/") {
			cp += "/"
		}
		if strings.HasPrefix(canonical, cp) {
			return true
		}
	}
	return false
}

// redactURL is u for conditions, logs and errors: a password in its user
// info replaced (url.URL.Redacted), and an unparsable URL not shown.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(an unparsable URL)"
	}
	if pu.User != nil {
		// Not even the user name: it may be a token.
		pu.User = url.User("xxxxx")
	}
	return pu.Redacted()
}

// canonicalURL is u as scheme://host/escaped-path, refusing what could
// make a prefix comparison lie.
func canonicalURL(u string) (string, bool) {
	pu, err := url.Parse(u)
	if err != nil || pu.User != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http") {
		return "", false
	}
	for _, seg := range strings.Split(pu.Path, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	path := pu.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.ToLower(pu.Scheme) + "://" + strings.ToLower(pu.Host) + path, true
}

// EntraKeys holds the signing keys of the Entra directories that ScimTokens
// accept tokens of, one key set per key endpoint, and checks tokens with
// them. Every replica has its own; the controller reads the one of the
// leader for the KeysUnavailable condition. Keys are fetched on first use
// (a request waits for at most one such fetch), again in the background
// when a token names a key id the set lacks (at most once per
// MinRefreshInterval) and when the set is older than RefreshInterval. A
// failed fetch keeps the last good set, for at most MaxKeyAge. A set
// neither used by a request nor checked by the controller for
// 2×RefreshInterval is dropped.
type EntraKeys struct {
	opts EntraOptions

	mu    sync.Mutex
	sets  map[string]*keySet // by key endpoint URL
	swept time.Time          // the last sweep of unused sets
}

// NewEntraKeys returns an empty EntraKeys.
func NewEntraKeys(opts EntraOptions) *EntraKeys {
	if opts.Client == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		opts.Client = &http.Client{Timeout: 10 * time.Second, Transport: transport}
	}
	// Redirects are followed only to where keys may be fetched from.
	client := *opts.Client
	allowed := opts.allowed
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if !allowed(req.URL.String()) {
			return fmt.Errorf("a redirect to %s, where the operator does not fetch keys from", redactURL(req.URL.String()))
		}
		return nil
	}
	opts.Client = &client
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Hour
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = time.Minute
	}
	if opts.Leeway <= 0 {
		opts.Leeway = time.Minute
	}
	if opts.MaxKeyAge <= 0 {
		opts.MaxKeyAge = 48 * time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	return &EntraKeys{opts: opts, sets: map[string]*keySet{}}
}

// EntraKeysURL is where the keys of spec are fetched: spec.keysURL or the
// directory's OpenID Connect metadata.
func EntraKeysURL(spec *scimv1.EntraIssuedTokens) string {
	if spec.KeysURL != "" {
		return spec.KeysURL
	}
	return fmt.Sprintf(entraMetadataURL, url.PathEscape(strings.ToLower(spec.TenantID)))
}

// EntraIssuer is the issuer of the tokens of directory tenantID.
func EntraIssuer(tenantID string) string {
	return entraIssuerPrefix + strings.ToLower(tenantID) + "/"
}

// KeyStatus is what is known of one key set, for the ScimToken's conditions.
type KeyStatus struct {
	// URL is the key endpoint, its user info redacted.
	URL string
	// Keys is the number of usable signing keys held (0: none could be
	// fetched yet, or those held are older than MaxKeyAge).
	Keys int
	// Held is the number of keys held, usable or too old.
	Held int
	// Fetching is true while a fetch runs (the caller's context ended
	// before it did).
	Fetching bool
	// FetchedAt is the last successful fetch.
	FetchedAt time.Time
	// LastError is the last fetch's failure, "" when it succeeded.
	LastError string
	// FailedAt is when that failure happened.
	FailedAt time.Time
}

// Check fetches the key set of spec if it has no usable keys, or is due
// for a refresh (within MinRefreshInterval of the last attempt it does
// not), waits for that fetch until ctx ends (a controller passes a short
// deadline), and reports the set.
func (k *EntraKeys) Check(ctx context.Context, spec *scimv1.EntraIssuedTokens) KeyStatus {
	s := k.set(EntraKeysURL(spec))
	s.mu.Lock()
	now := k.opts.Clock.Now()
	var wait <-chan struct{}
	if (!k.usableLocked(s, now) || now.Sub(s.fetchedAt) >= k.opts.RefreshInterval) && (s.fetching != nil || k.mayFetch(s, now)) {
		wait = k.fetchLocked(s)
	}
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := KeyStatus{URL: redactURL(s.url), Held: len(s.keys), FetchedAt: s.fetchedAt, FailedAt: s.failedAt,
		Fetching: s.fetching != nil}
	if k.usableLocked(s, k.opts.Clock.Now()) {
		st.Keys = len(s.keys)
	}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st
}

// keySet is the keys fetched from one endpoint.
type keySet struct {
	url string

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey // by key id
	fetchedAt time.Time                 // the last successful fetch
	attempted time.Time                 // the last fetch started
	failedAt  time.Time
	lastErr   error         // the last fetch's failure; nil after a success
	fetching  chan struct{} // closed when the running fetch ends; nil when none runs

	lastUsed time.Time // guarded by EntraKeys.mu, not mu
}

// set returns the key set of u, made on first use, and records the use.
// Once per RefreshInterval it drops the sets unused for 2×RefreshInterval
// (a ScimToken deleted, or its keysURL changed): the controller checks
// every ScimToken's set far more often, so only orphans go.
func (k *EntraKeys) set(u string) *keySet {
	now := k.opts.Clock.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.swept) >= k.opts.RefreshInterval {
		for key, s := range k.sets {
			if now.Sub(s.lastUsed) > 2*k.opts.RefreshInterval {
				delete(k.sets, key)
			}
		}
		k.swept = now
	}
	s := k.sets[u]
	if s == nil {
		s = &keySet{url: u}
		k.sets[u] = s
	}
	s.lastUsed = now
	return s
}

// usableLocked reports whether s holds keys fetched within MaxKeyAge.
// s.mu is held.
func (k *EntraKeys) usableLocked(s *keySet, now time.Time) bool {
	return len(s.keys) > 0 && now.Sub(s.fetchedAt) < k.opts.MaxKeyAge
}

func (k *EntraKeys) mayFetch(s *keySet, now time.Time) bool {
	return s.attempted.IsZero() || now.Sub(s.attempted) >= k.opts.MinRefreshInterval
}

// fetchLocked starts a fetch of s unless one runs, and returns the channel
// closed when it ends. s.mu is held.
func (k *EntraKeys) fetchLocked(s *keySet) <-chan struct{} {
	if s.fetching != nil {
		return s.fetching
	}
	done := make(chan struct{})
	s.fetching, s.attempted = done, k.opts.Clock.Now()
	go func() {
		// Not the request's context: one caller giving up must not fail
		// the fetch for everyone waiting on it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		keys, err := k.fetch(ctx, s.url)
		s.mu.Lock()
		defer s.mu.Unlock()
		now := k.opts.Clock.Now()
		if err != nil {
			s.lastErr, s.failedAt = err, now
			log := k.opts.Log.WithValues("url", redactURL(s.url), "error", err.Error())
			if k.usableLocked(s, now) {
				log.Info("could not refresh the Entra signing keys; the last good keys stay in use", "fetchedAt", s.fetchedAt.UTC().Format(time.RFC3339))
			} else {
				log.Info("could not fetch the Entra signing keys; Entra-issued tokens of this directory are answered 503 until they can be")
			}
		} else {
			if len(s.keys) == 0 || s.lastErr != nil {
				k.opts.Log.Info("fetched the Entra signing keys", "url", redactURL(s.url), "keys", len(keys))
			}
			s.keys, s.fetchedAt, s.lastErr = keys, now, nil
		}
		close(done)
		s.fetching = nil
	}()
	return done
}

// fetchBudget is what one request may still wait for: at most one fetch
// of a key set, so that a request naming a directory that several
// ScimTokens (with distinct keysURLs) accept cannot hold its handler, or
// the fetches, for one timeout per ScimToken.
type fetchBudget struct{ spent bool }

// key returns the key kid of s.
//
// With usable keys (fetched within MaxKeyAge), a held kid is returned at
// once (a refresh due starts in the background); an unknown kid starts a
// refetch in the background (at most once per MinRefreshInterval) and is
// errUnknownKey (401) while the set is healthy, ErrKeysUnavailable (503)
// when its last fetch failed.
//
// Without usable keys, the request waits for a fetch if budget allows
// (and spends it), otherwise the fetch runs in the background; either way
// a set that still has no usable keys is ErrKeysUnavailable.
func (k *EntraKeys) key(ctx context.Context, s *keySet, kid string, budget *fetchBudget) (*rsa.PublicKey, error) {
	s.mu.Lock()
	now := k.opts.Clock.Now()
	if k.usableLocked(s, now) {
		key := s.keys[kid]
		if (key == nil || now.Sub(s.fetchedAt) >= k.opts.RefreshInterval) && s.fetching == nil && k.mayFetch(s, now) {
			k.fetchLocked(s)
		}
		failed := s.lastErr != nil
		s.mu.Unlock()
		switch {
		case key != nil:
			return key, nil
		case failed:
			return nil, fmt.Errorf("%w: the token names a key the directory's set lacks, and the last fetch failed", ErrKeysUnavailable)
		default:
			return nil, errUnknownKey
		}
	}
	var wait <-chan struct{}
	if s.fetching != nil || k.mayFetch(s, now) {
		wait = k.fetchLocked(s)
	}
	s.mu.Unlock()
	if wait == nil || budget.spent {
		return nil, fmt.Errorf("%w: no usable key held, a fetch is running or was tried less than %s ago", ErrKeysUnavailable, k.opts.MinRefreshInterval)
	}
	budget.spent = true
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !k.usableLocked(s, k.opts.Clock.Now()):
		return nil, fmt.Errorf("%w: the keys could not be fetched", ErrKeysUnavailable)
	case s.keys[kid] != nil:
		return s.keys[kid], nil
	default:
		return nil, errUnknownKey
	}
}

// fetch reads a key set from u: a JSON Web Key Set, or an OpenID Connect
// metadata document whose jwks_uri is one.
func (k *EntraKeys) fetch(ctx context.Context, u string) (map[string]*rsa.PublicKey, error) {
	var doc struct {
		JWKSURI string            `json:"jwks_uri"`
		Keys    []json.RawMessage `json:"keys"`
	}
	if err := k.getJSON(ctx, u, &doc); err != nil {
		return nil, err
	}
	if doc.Keys == nil && doc.JWKSURI != "" {
		jwks, err := url.Parse(doc.JWKSURI)
		switch {
		case err != nil || !jwks.IsAbs() || (jwks.Scheme != "https" && jwks.Scheme != "http"):
			return nil, fmt.Errorf("the metadata at %s has an unusable jwks_uri", redactURL(u))
		case strings.HasPrefix(u, "https:") && jwks.Scheme != "https":
			return nil, fmt.Errorf("the metadata at %s, fetched over https, points to keys over http", redactURL(u))
		}
		if err := k.getJSON(ctx, jwks.String(), &doc); err != nil {
			return nil, err
		}
	}
	keys := map[string]*rsa.PublicKey{}
	for _, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue // one key go-jose cannot read does not spoil the others
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok || jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") ||
			(jwk.Algorithm != "" && jwk.Algorithm != string(jose.RS256)) || pub.N.BitLen() < 2048 {
			continue
		}
		keys[jwk.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no RSA signing key with a key id", redactURL(u))
	}
	return keys, nil
}

func (k *EntraKeys) getJSON(ctx context.Context, u string, into any) error {
	shown := redactURL(u) // errors reach status conditions and logs
	if !k.opts.allowed(u) {
		return fmt.Errorf("keys are fetched only from %s and the operator's --entra-keys-url-prefixes; %s is neither", entraKeysPrefix, shown)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", shown, withoutURL(err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", shown, withoutURL(err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: HTTP %d", shown, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyDocument+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", shown, err)
	}
	if len(body) > maxKeyDocument {
		return fmt.Errorf("%s is larger than %d bytes", shown, maxKeyDocument)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("decoding %s: %w", shown, err)
	}
	return nil
}

// withoutURL is err without the *url.Error around it, which repeats the
// URL unredacted (a redirect's, too).
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// entraClaims are the claims checked besides the registered ones.
type entraClaims struct {
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AppID    string `json:"appid"`
	// Scope (scp) is present in delegated tokens, issued to an
	// application acting for a signed-in user; the provisioning service's
	// tokens are application tokens and carry none.
	Scope json.RawMessage `json:"scp"`
}

// LooksLikeJWT reports whether token has the shape of a compact JWS: three
// parts separated by dots. Generated tokens never do.
func LooksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2
}

// parsedJWT is a token parsed but not verified, and the directory it
// claims to come from.
type parsedJWT struct {
	tok      *jwt.JSONWebToken
	kid      string
	tenantID string // lower case
}

// parseEntra parses token (RS256 only: "none", HMAC and every other
// algorithm are refused here) and reads, unverified, the directory its
// issuer names. The directory only chooses the ScimTokens and keys to
// verify with; nothing is believed before the signature is checked.
func parseEntra(token string) (parsedJWT, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return parsedJWT{}, fmt.Errorf("not an RS256-signed JWT")
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return parsedJWT{}, fmt.Errorf("the JWT names no signing key")
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return parsedJWT{}, fmt.Errorf("the JWT's claims are not readable")
	}
	tenant, prefixed := strings.CutPrefix(claims.Issuer, entraIssuerPrefix)
	tenant, suffixed := strings.CutSuffix(tenant, "/")
	if !prefixed || !suffixed || tenant == "" || strings.ContainsAny(tenant, "/?#") {
		return parsedJWT{}, fmt.Errorf("the JWT's issuer is not an Entra directory")
	}
	return parsedJWT{tok: tok, kid: tok.Headers[0].KeyID, tenantID: strings.ToLower(tenant)}, nil
}

// verify checks p against spec: signature, issuer, audience, times, the
// pinned application and that it is an application token. The error never
// holds token material; it is ErrKeysUnavailable (wrapped) when the keys
// are, and budget limits the request to one blocking key fetch.
func (k *EntraKeys) verify(ctx context.Context, p parsedJWT, spec *scimv1.EntraIssuedTokens, budget *fetchBudget) error {
	if spec.ApplicationObjectID == "" {
		// Stored before the field was required: every custom application
		// of the directory would get in. Fail closed, before any fetch.
		return errors.New("the ScimToken pins no applicationObjectID")
	}
	key, err := k.key(ctx, k.set(EntraKeysURL(spec)), p.kid, budget)
	if err != nil {
		return err
	}
	var claims jwt.Claims
	var extra entraClaims
	if err := p.tok.Claims(key, &claims, &extra); err != nil {
		return errors.New("the signature does not verify")
	}
	if claims.Expiry == nil {
		return errors.New("the token has no expiry")
	}
	expected := jwt.Expected{Issuer: EntraIssuer(spec.TenantID), AnyAudience: jwt.Audience{EntraAudience},
		Time: k.opts.Clock.Now()}
	if err := claims.ValidateWithLeeway(expected, k.opts.Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrInvalidIssuer):
			return errors.New("wrong issuer")
		case errors.Is(err, jwt.ErrInvalidAudience):
			return errors.New("wrong audience")
		case errors.Is(err, jwt.ErrExpired):
			return errors.New("the token has expired")
		case errors.Is(err, jwt.ErrNotValidYet):
			return errors.New("the token is not valid yet")
		case errors.Is(err, jwt.ErrIssuedInTheFuture):
			return errors.New("the token was issued in the future")
		default:
			return errors.New("the token's claims are invalid")
		}
	}
	if extra.TenantID != "" && !strings.EqualFold(extra.TenantID, spec.TenantID) {
		return errors.New("the token's tid is another directory")
	}
	if len(extra.Scope) > 0 {
		return errors.New("the token is a delegated (user) token: it carries scp")
	}
	if app := spec.ApplicationObjectID; !strings.EqualFold(extra.ObjectID, app) && !strings.EqualFold(extra.AppID, app) {
		return errors.New("the token was issued to another application")
	}
	return nil
}

// indexEntraTenant is the IndexEntraTenant of obj.
func indexEntraTenant(obj client.Object) []string {
	t, ok := obj.(*scimv1.ScimToken)
	if !ok || t.Spec.EntraIssued == nil || t.Status.EntraTenantID == "" ||
		!strings.EqualFold(t.Spec.EntraIssued.TenantID, t.Status.EntraTenantID) {
		return nil
	}
	return []string{strings.ToLower(t.Spec.EntraIssued.TenantID)}
}

// authenticateEntra authenticates token as an Entra-issued JWT. Every
// failure is ErrUnknown (wrapped, with why), ErrInactive or ErrAmbiguous,
// so that the HTTP layer answers all of them with the same 401, except
// ErrKeysUnavailable (wrapped; 503, retried): the token could not be
// checked against some ScimToken's keys and no other accepted it. A
// request waits for at most one key fetch.
func (a *Authenticator) authenticateEntra(ctx context.Context, token string) (Principal, error) {
	p, err := parseEntra(token)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %s", ErrUnknown, err.Error())
	}
	var list scimv1.ScimTokenList
	if err := a.reader.List(ctx, &list, client.MatchingFields{IndexEntraTenant: p.tenantID}); err != nil {
		return Principal{}, fmt.Errorf("looking up the Entra directory in the cache: %w", err)
	}
	if len(list.Items) == 0 {
		return Principal{}, fmt.Errorf("%w: no ScimToken accepts tokens of this Entra directory", ErrUnknown)
	}
	for i := range list.Items[1:] {
		if list.Items[i+1].Namespace != list.Items[0].Namespace {
			return Principal{}, ErrAmbiguous
		}
	}
	failure := ErrUnknown
	var budget fetchBudget
	for i := range list.Items {
		t := &list.Items[i]
		spec := t.Spec.EntraIssued
		if spec == nil {
			continue
		}
		if err := a.Entra.verify(ctx, p, spec, &budget); err != nil {
			switch {
			case errors.Is(err, ErrKeysUnavailable) || ctx.Err() != nil:
				// Another ScimToken may still accept the token; if none
				// does, the answer is "retry", never "invalid".
				failure = err
			case errors.Is(failure, ErrUnknown):
				failure = fmt.Errorf("%w: Entra-issued token: %s", ErrUnknown, err.Error())
			}
			continue
		}
		if !t.IsActive() || t.DeletionTimestamp != nil {
			if !errors.Is(failure, ErrKeysUnavailable) {
				failure = ErrInactive
			}
			continue
		}
		return Principal{Namespace: t.Namespace, TokenName: t.Name, Fingerprint: EntraFingerprintPrefix + p.tenantID}, nil
	}
	return Principal{}, failure
}
