// Package server is the SCIM 2.0 HTTP service provider (RFC 7644) for Users
// and Groups. It authenticates the bearer token, maps the token's namespace
// to the tenant, speaks SCIM (filters, PATCH, paging, ETags, errors) and
// leaves storage to a Store (store.go), package repository in the operator.
//
// It runs on every operator replica (it is a manager Runnable that needs no
// leader election) and reads from the informer cache, so a replica answers
// reads without calling the API server.
//
// Filters run against candidates from a cache index when their top-level
// "and" chain holds an equality on id, userName, externalId, emails.value,
// displayName or members.value: every filter Entra and Okta send. Other
// filters (title pr, userName sw "a", ...) are evaluated on every object
// of the tenant in the cache: correct, but in proportion to the tenant, so
// they are bounded (querybudget.go): a ceiling on the objects examined and
// a few such requests at once per tenant and per replica.
package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/scim-operator/scim-operator/internal/clientaddr"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/settings"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// ContentType is the media type of every SCIM response (RFC 7644 §3.1).
const ContentType = "application/scim+json"

// Config holds the server's tunables. A zero field takes its default from
// settings.Default.
type Config struct {
	// BasePath is where the SCIM API is mounted, "/scim/v2" by default.
	BasePath string
	// PublicURL is the base URL clients use (for meta.location and the
	// Location header), such as https://helpdesk.example.com/scim/v2. When
	// empty it is derived from the request.
	PublicURL string
	// MaxBodyBytes bounds request bodies (413 above). Default 1 MiB.
	MaxBodyBytes int64
	// MaxOperations bounds the operations of one PATCH. Default 1000.
	MaxOperations int
	// DefaultPageSize applies when a list request names no count; MaxPageSize
	// caps count. Defaults 100 and 1000.
	DefaultPageSize, MaxPageSize int
	// RetryAfter is sent with 503 answers. Default 10s.
	RetryAfter time.Duration
	// RateLimit is the sustained requests per second one token may make;
	// RateBurst how many it may make at once. 0 disables the limit: the
	// zero Config (tests) has none; the manager's flags default to
	// settings.Default's 200/s and 400. It is a last-resort brake: Entra
	// needs 25 requests/s per tenant and a 429 counts towards quarantine,
	// so set it well above that.
	RateLimit float64
	RateBurst int
	// ReadHeaderTimeout and ReadTimeout cut off slow clients (defaults in
	// settings.Default; see Listener).
	ReadHeaderTimeout, ReadTimeout time.Duration
	// TrustedProxies are the address ranges of the proxies (the ingress
	// controller's Pods) whose X-Forwarded-For and Forwarded headers name
	// the client, for the failed-authentication limit and the logs. Empty
	// trusts nobody: the client is the peer address.
	TrustedProxies []netip.Prefix
	// ScanCeiling is the most resources a filter without an indexed
	// equality, or a sortBy, may examine; above it the query answers 400
	// tooMany naming the indexed filters (see querybudget.go). Default
	// 10,000; negative disables the ceiling.
	ScanCeiling int
	// ScansPerTenant and ScansTotal bound the list requests that read a
	// whole tenant (no indexed filter) running at once, per tenant and on
	// this replica; ScanWait is how long one waits for a slot before it is
	// answered 429 (its tenant's limit) or 503 (the replica's). Defaults
	// 2, 4 and 1s.
	ScansPerTenant, ScansTotal int
	ScanWait                   time.Duration
}

func (c *Config) defaults() {
	d := settings.Default()
	if c.BasePath == "" {
		c.BasePath = d.SCIMBasePath
	}
	c.BasePath = "/" + strings.Trim(c.BasePath, "/")
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxOperations <= 0 {
		c.MaxOperations = d.MaxOperations
	}
	if c.DefaultPageSize <= 0 {
		c.DefaultPageSize = d.DefaultPageSize
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = d.MaxPageSize
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = d.RetryAfter
	}
	switch {
	case c.ScanCeiling == 0:
		c.ScanCeiling = d.ScanCeiling
	case c.ScanCeiling < 0:
		c.ScanCeiling = math.MaxInt
	}
	if c.ScansPerTenant <= 0 {
		c.ScansPerTenant = d.ScansPerTenant
	}
	if c.ScansTotal <= 0 {
		c.ScansTotal = d.ScansTotal
	}
	if c.ScanWait <= 0 {
		c.ScanWait = d.ScanWait
	}
}

// Authenticator maps a request's Authorization header to a token principal.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization string) (tokens.Principal, error)
}

// UsageRecorder notes that a token was used (written rarely, not per call).
type UsageRecorder interface {
	Record(p tokens.Principal)
}

// ActivityRecorder counts a token's requests for its status (written
// rarely, not per call).
type ActivityRecorder interface {
	Record(q tokens.Request)
}

// SchemaSource returns the User resource type for a tenant: the RFC schema
// plus the helpdesk's custom fields, which may differ per tenant.
type SchemaSource func(ctx context.Context, tenant string) *schema.ResourceType

// Server serves SCIM over HTTP.
type Server struct {
	cfg     Config
	rates   *tokenRates
	scans   *scanBudget
	auth    Authenticator
	usage   UsageRecorder
	active  ActivityRecorder
	limiter *tokens.FailureLimiter
	clients *clientaddr.Resolver
	metrics *tokens.Metrics
	answers *Metrics
	repo    Store
	users   SchemaSource
	groups  *schema.ResourceType
	log     logr.Logger
}

// Options are the collaborators of a Server; Auth and Repo are required.
type Options struct {
	Auth    Authenticator
	Usage   UsageRecorder          // optional
	Limiter *tokens.FailureLimiter // optional: per-address failed-auth limit
	Metrics *tokens.Metrics        // optional
	// Activity counts each authenticated request for the token's
	// status.activity (activity.go); optional.
	Activity ActivityRecorder
	// Answers counts responses (metrics.go); default: collectors on
	// controller-runtime's metrics registry.
	Answers *Metrics
	// Repo stores the resources (store.go): a *repository.Repository.
	Repo  Store
	Users SchemaSource // optional: the RFC User schema when nil
	Log   logr.Logger
}

// New returns a Server.
func New(cfg Config, o Options) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, rates: newTokenRates(cfg.RateLimit, cfg.RateBurst), scans: newScanBudget(cfg),
		auth: o.Auth, usage: o.Usage, active: o.Activity, limiter: o.Limiter,
		clients: clientaddr.New(cfg.TrustedProxies), metrics: o.Metrics,
		repo: o.Repo, users: o.Users, groups: schema.GroupResourceType(), log: o.Log, answers: o.Answers}
	if s.answers == nil {
		s.answers = defaultMetrics()
	}
	if s.users == nil {
		rt := schema.UserResourceType()
		s.users = func(context.Context, string) *schema.ResourceType { return rt }
	}
	return s
}

// Handler returns the HTTP handler with every SCIM route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	b := s.cfg.BasePath
	route := func(pattern string, h func(http.ResponseWriter, *http.Request, *request) error) {
		inner := s.wrap(func(w http.ResponseWriter, r *http.Request, rq *request) error {
			notePrincipal(w, rq.principal)
			return h(w, r, rq)
		})
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ow, ok := w.(*observedWriter); ok {
				ow.pattern = pattern
			}
			inner.ServeHTTP(w, r)
		}))
	}
	route("GET "+b+"/Users", s.listUsers)
	route("POST "+b+"/Users/.search", s.searchUsers)
	route("POST "+b+"/Users", s.createUser)
	route("GET "+b+"/Users/{id}", s.getUser)
	route("PUT "+b+"/Users/{id}", s.replaceUser)
	route("PATCH "+b+"/Users/{id}", s.patchUser)
	route("DELETE "+b+"/Users/{id}", s.deleteUser)

	route("GET "+b+"/Groups", s.listGroups)
	route("POST "+b+"/Groups/.search", s.searchGroups)
	route("POST "+b+"/Groups", s.createGroup)
	route("GET "+b+"/Groups/{id}", s.getGroup)
	route("PUT "+b+"/Groups/{id}", s.replaceGroup)
	route("PATCH "+b+"/Groups/{id}", s.patchGroup)
	route("DELETE "+b+"/Groups/{id}", s.deleteGroup)

	route("POST "+b+"/.search", s.searchRoot)

	route("GET "+b+"/ServiceProviderConfig", s.serviceProviderConfig)
	route("GET "+b+"/ResourceTypes", s.resourceTypes)
	route("GET "+b+"/ResourceTypes/{id}", s.resourceType)
	route("GET "+b+"/Schemas", s.schemas)
	route("GET "+b+"/Schemas/{id}", s.schemaByID)

	notImpl := func(_ http.ResponseWriter, _ *http.Request, _ *request) error {
		return scimerr.New(http.StatusNotImplemented, "", "this service provider does not support this endpoint (see /ServiceProviderConfig)")
	}
	route(b+"/Bulk", notImpl)
	route(b+"/Me", notImpl)
	route(b+"/Me/{rest...}", notImpl)
	route(b+"/", func(_ http.ResponseWriter, r *http.Request, _ *request) error {
		return scimerr.NotFound("no SCIM endpoint at %s %s; this server serves %s/Users and %s/Groups", r.Method, r.URL.Path, b, b)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ow := &observedWriter{ResponseWriter: w}
		r.URL.Path = s.canonicalPath(r.URL.Path)
		r.URL.RawPath = ""
		mux.ServeHTTP(ow, r)
		s.answers.observe(ow, time.Since(start))
		s.recordActivity(r, ow, start)
	})
}

// endpointNames maps endpoint names, lower-cased, to their RFC spelling.
// Clients differ in case ("/users" in Microsoft's own test collection)
// and SCIM 1.1 called the configuration endpoint /ServiceConfiguration.
var endpointNames = map[string]string{
	"users": "Users", "groups": "Groups", "serviceproviderconfig": "ServiceProviderConfig",
	"serviceproviderconfigs": "ServiceProviderConfig", "serviceconfiguration": "ServiceProviderConfig",
	"resourcetypes": "ResourceTypes", "schemas": "Schemas", "bulk": "Bulk", "me": "Me",
}

// canonicalPath spells the endpoint segment the RFC way and drops a
// trailing slash, so "/scim/v2/users/" routes like "/scim/v2/Users".
func (s *Server) canonicalPath(p string) string {
	rest, ok := strings.CutPrefix(p, s.cfg.BasePath+"/")
	if !ok {
		return p
	}
	rest = strings.TrimSuffix(rest, "/")
	name, tail, _ := strings.Cut(rest, "/")
	if canon, ok := endpointNames[strings.ToLower(name)]; ok {
		name = canon
	}
	if tail != "" {
		return s.cfg.BasePath + "/" + name + "/" + tail
	}
	return s.cfg.BasePath + "/" + name
}

// errorResponse writes err as an RFC 7644 §3.12 body. Client mistakes carry
// a *scimerr.Error; an unavailable API server gives 503 with Retry-After;
// anything else is a 500 whose detail says nothing internal (it is logged).
func (s *Server) errorResponse(w http.ResponseWriter, rq *request, err error) {
	e, ok := scimerr.As(err)
	switch {
	case ok:
	case errors.Is(err, repository.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		rq.log.Info("storage unavailable", "error", err.Error())
		w.Header().Set("Retry-After", retryAfter(s.cfg.RetryAfter))
		e = scimerr.New(http.StatusServiceUnavailable, "", "the service is temporarily unavailable; retry after %s", s.cfg.RetryAfter)
	default:
		rq.log.Error(err, "internal error")
		e = scimerr.New(http.StatusInternalServerError, "", "internal error (request id %s)", rq.id)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
	}
	if e.Status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfter(s.cfg.RetryAfter))
	}
	noteError(w, rq.principal, e)
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.Body())
	rq.status = e.Status
}

func retryAfter(d time.Duration) string {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return itoa(secs)
}
