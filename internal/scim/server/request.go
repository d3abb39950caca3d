package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"

	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/strictjson"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// request carries what every handler needs about one call.
type request struct {
	id        string
	log       logr.Logger
	principal tokens.Principal
	status    int
	baseURL   string
}

// tenant is the namespace the token belongs to: the only one this request
// may read or write.
func (rq *request) tenant() string { return rq.principal.Namespace }

func (rq *request) writer() repository.Principal {
	return repository.Principal{Namespace: rq.principal.Namespace, TokenName: rq.principal.TokenName}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// wrap adds to a handler what every SCIM call needs: a request id, a
// panic guard (a bug answers 500 without a stack trace to the client),
// authentication and the access log.
func (s *Server) wrap(h func(http.ResponseWriter, *http.Request, *request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rq := &request{id: r.Header.Get("X-Request-Id")}
		if rq.id == "" || len(rq.id) > 64 {
			rq.id = newRequestID()
		}
		w.Header().Set("X-Request-Id", rq.id)
		rq.log = s.log.WithValues("requestId", rq.id, "method", r.Method, "path", r.URL.Path)
		rq.baseURL = s.baseURL(r)
		defer func() {
			if p := recover(); p != nil {
				rq.log.Error(fmt.Errorf("panic: %v", p), "handler panicked")
				s.errorResponse(w, rq, fmt.Errorf("panic"))
			}
			rq.log.V(1).Info("request", "status", rq.status, "durationMs", time.Since(start).Milliseconds())
		}()
		if err := s.authenticate(w, r, rq); err != nil {
			s.errorResponse(w, rq, err)
			return
		}
		rq.log = rq.log.WithValues("tenant", rq.tenant(), "token", tokens.ShortFingerprint(rq.principal.Fingerprint))
		if wait, ok := s.rates.allow(rq.principal.Fingerprint); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			s.errorResponse(w, rq, scimerr.New(http.StatusTooManyRequests, "", "this token made more than %g requests per second; retry after the Retry-After seconds", s.cfg.RateLimit))
			return
		}
		if err := h(w, r, rq); err != nil {
			s.errorResponse(w, rq, err)
		}
	})
}

// authenticate checks the bearer token first (one hash and one cache
// lookup), so a valid token is never refused for what other requests from
// its address did: behind an ingress every identity provider may share one
// address. Only failures are counted against the client address, and only
// failing requests are refused with 429 once it is limited (instead of
// 401): a token guesser is slowed down, nobody else.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rq *request) error {
	p, err := s.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err == nil {
		rq.principal = p
		if s.usage != nil {
			s.usage.Record(p)
		}
		return nil
	}
	reason := tokens.FailureReason(err)
	addr := s.clients.Addr(r)
	if reason == tokens.ReasonStale || reason == tokens.ReasonError || reason == tokens.ReasonKeysUnavailable {
		// Not the client's doing, and the token may be valid: not counted,
		// and a 503 the identity provider retries, never a 401 that
		// quarantines its job.
		if s.metrics != nil {
			s.metrics.Failed(reason)
		}
		rq.log.Info("cannot authenticate now", "reason", reason, "error", err.Error())
		w.Header().Set("Retry-After", "5")
		return scimerr.New(http.StatusServiceUnavailable, "", "this replica cannot check tokens right now; retry after the Retry-After seconds")
	}
	if s.limiter != nil {
		if ok, wait := s.limiter.Fail(addr); !ok {
			if s.metrics != nil {
				s.metrics.Failed(tokens.ReasonRateLimited)
			}
			rq.log.V(1).Info("authentication failed from a limited address", "reason", reason, "client", addr)
			w.Header().Set("Retry-After", retryAfter(wait))
			return scimerr.New(http.StatusTooManyRequests, "", "too many failed authentication attempts from this address; retry after the Retry-After seconds with a valid token")
		}
	}
	if s.metrics != nil {
		s.metrics.Failed(reason)
	}
	rq.log.Info("authentication failed", "reason", reason, "client", addr)
	// One answer for every failure: a caller learns nothing about which
	// tokens exist.
	return scimerr.New(http.StatusUnauthorized, "", "a valid bearer token is required (Authorization: Bearer <token> from the ScimToken's Secret)")
}

func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.cfg.BasePath
}

// readJSON reads a JSON object body: too large is 413; not JSON, not
// UTF-8, an attribute named twice (in any case, at any depth) or nesting
// deeper than strictjson.MaxDepth is 400 invalidSyntax. One streaming pass
// checks and decodes. Numbers stay json.Number so that integers survive
// exactly.
func (s *Server) readJSON(r *http.Request) (map[string]any, []byte, error) {
	body, err := s.readBody(r)
	if err != nil {
		return nil, nil, err
	}
	v, err := strictjson.Decode(body)
	if err != nil {
		return nil, nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, nil, scimerr.InvalidSyntax("the request body must be a JSON object, not null")
		}
		return nil, nil, scimerr.InvalidSyntax("the request body is not a JSON object")
	}
	return m, body, nil
}

func (s *Server) readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt := strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
		if mt != "application/scim+json" && mt != "application/json" {
			return nil, scimerr.New(http.StatusUnsupportedMediaType, "", "content type %q is not accepted; send application/scim+json or application/json", mt)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, tooLarge(s.cfg.MaxBodyBytes)
		}
		return nil, scimerr.InvalidSyntax("reading the request body: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	if !utf8.Valid(body) {
		return nil, scimerr.InvalidSyntax("the request body is not valid UTF-8")
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return scimerr.New(http.StatusRequestEntityTooLarge, "", "the request body is larger than %d bytes; split the change into smaller requests", limit)
}

// writeJSON writes a SCIM resource or message.
func writeJSON(w http.ResponseWriter, rq *request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
	rq.status = status
	return nil
}

func noContent(w http.ResponseWriter, rq *request) error {
	w.WriteHeader(http.StatusNoContent)
	rq.status = http.StatusNoContent
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// etag renders a resourceVersion as a weak entity tag (RFC 7644 §3.14).
func etag(rv string) string { return `W/"` + rv + `"` }

// ifMatch returns the resourceVersion an If-Match header asks for, "" when
// absent and "*" for any.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return v
	}
	v = strings.TrimPrefix(v, "W/")
	return strings.Trim(v, `"`)
}
