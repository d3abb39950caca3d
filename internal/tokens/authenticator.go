package tokens

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// IndexFingerprint is the field index over the fingerprints a ScimToken may
// accept: status.fingerprint and, while set, status.previousFingerprint.
// An index value cannot depend on the time, so an expired previous
// fingerprint stays indexed until the controller clears it; Authenticate
// re-checks status.previousValidUntil on every request.
const IndexFingerprint = "scim.helpdesk.dev/fingerprint"

// Authentication failures. They are distinct for metrics and logs; the HTTP
// layer answers all of them with one generic 401 so that a caller learns
// nothing about which tokens exist.
var (
	ErrMissing   = errors.New("no Authorization header")
	ErrMalformed = errors.New("authorization header is not a bearer token")
	ErrUnknown   = errors.New("unknown token")
	ErrInactive  = errors.New("token is inactive or being deleted")
	ErrExpired   = errors.New("token was rotated and its overlap has ended")
	ErrAmbiguous = errors.New("token is claimed by ScimTokens in more than one namespace")
)

// maxTokenLength bounds what is hashed; real tokens are under 100 bytes.
const maxTokenLength = 4096

// Principal is who a request authenticated as. The namespace is the tenant.
type Principal struct {
	Namespace   string
	TokenName   string
	Fingerprint string
	// Previous is true when the request used the token replaced by the last
	// rotation, still valid during its overlap.
	Previous bool
}

// RegisterIndexes registers IndexFingerprint with the manager's field
// indexer. Call it before the manager starts, on every replica.
func RegisterIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &scimv1.ScimToken{}, IndexFingerprint, indexFingerprints); err != nil {
		return fmt.Errorf("indexing ScimTokens by %s: %w", IndexFingerprint, err)
	}
	if err := indexer.IndexField(ctx, &scimv1.ScimToken{}, IndexEntraTenant, indexEntraTenant); err != nil {
		return fmt.Errorf("indexing ScimTokens by %s: %w", IndexEntraTenant, err)
	}
	return nil
}

func indexFingerprints(obj client.Object) []string {
	t, ok := obj.(*scimv1.ScimToken)
	if !ok {
		return nil
	}
	var fps []string
	if t.Status.Fingerprint != "" {
		fps = append(fps, t.Status.Fingerprint)
	}
	if t.Status.PreviousFingerprint != "" {
		fps = append(fps, t.Status.PreviousFingerprint)
	}
	return fps
}

// Authenticator maps a bearer token to its ScimToken through the informer
// cache: no API call per request, and every replica answers the same way
// within the watch latency.
type Authenticator struct {
	reader       client.Reader
	clock        clock.PassiveClock
	fingerprints Fingerprinter
	// Entra, when set, checks the JWTs Entra ID issues itself for
	// ScimTokens with spec.entraIssued (see authenticateEntra); nil
	// refuses them.
	Entra *EntraKeys
}

// NewAuthenticator returns an Authenticator reading from reader, normally
// mgr.GetCache() after RegisterIndexes.
func NewAuthenticator(reader client.Reader, clk clock.PassiveClock, fingerprints Fingerprinter) *Authenticator {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Authenticator{reader: reader, clock: clk, fingerprints: fingerprints}
}

// ParseBearer extracts the token from an Authorization header value.
func ParseBearer(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", ErrMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformed
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > maxTokenLength || strings.ContainsAny(token, " \t\r\n") {
		return "", ErrMalformed
	}
	return token, nil
}

// Authenticate checks an Authorization header value. The returned error is
// one of the Err values above (or a cache error, wrapped); it never contains
// the token.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	token, err := ParseBearer(authorization)
	if err != nil {
		return Principal{}, err
	}
	if !a.fingerprints.Keyed() {
		return Principal{}, ErrUnknown // a wiring mistake fails closed, for both forms
	}
	// The keyed fingerprint first; status written before fingerprints
	// were keyed holds the unkeyed one until the controller rewrites it
	// (a previous token until its overlap ends).
	var list scimv1.ScimTokenList
	var fp string
	for _, candidate := range []string{a.fingerprints.Of(token), LegacyFingerprint(token)} {
		if candidate == "" {
			continue
		}
		if err := a.reader.List(ctx, &list, client.MatchingFields{IndexFingerprint: candidate}); err != nil {
			return Principal{}, fmt.Errorf("looking up the token fingerprint in the cache: %w", err)
		}
		if fp = candidate; len(list.Items) > 0 {
			break
		}
	}
	if len(list.Items) == 0 {
		if a.Entra != nil && LooksLikeJWT(token) {
			return a.authenticateEntra(ctx, token)
		}
		return Principal{}, ErrUnknown
	}
	// Two tenants adopting the same token value would make the tenant
	// ambiguous: refuse rather than guess.
	for i := range list.Items[1:] {
		if list.Items[i+1].Namespace != list.Items[0].Namespace {
			return Principal{}, ErrAmbiguous
		}
	}

	now := a.clock.Now()
	failure := ErrUnknown
	for i := range list.Items {
		t := &list.Items[i]
		p := Principal{Namespace: t.Namespace, TokenName: t.Name, Fingerprint: fp}
		switch {
		case constantTimeEqual(fp, t.Status.Fingerprint):
		case constantTimeEqual(fp, t.Status.PreviousFingerprint):
			p.Previous = true
			if t.Status.PreviousValidUntil == nil || !now.Before(t.Status.PreviousValidUntil.Time) {
				failure = ErrExpired
				continue
			}
		default:
			continue // index and object disagree: a stale entry
		}
		if !t.IsActive() || t.DeletionTimestamp != nil {
			failure = ErrInactive
			continue
		}
		return p, nil
	}
	return Principal{}, failure
}

// constantTimeEqual compares fingerprints without leaking, through timing,
// how many leading characters matched.
func constantTimeEqual(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
