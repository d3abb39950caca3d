package tokens

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// LimiterOptions configure a FailureLimiter. Zero values take the defaults.
type LimiterOptions struct {
	// Burst is how many failures an address may have before it is limited.
	// Default 10.
	Burst int
	// Refill is how often one more failure is allowed after the burst.
	// Default 6s (10 a minute).
	Refill time.Duration
	// MaxAddresses bounds memory: beyond it the least recently failing
	// address is forgotten. Default 10000 (about 1 MiB).
	MaxAddresses int
	Clock        clock.PassiveClock
}

// FailureLimiter limits failed authentications per client address with a
// token bucket. Only failures consult it: a valid token is checked first
// and never limited, whatever other requests from its address did (behind
// an ingress every identity provider shares one address unless trusted
// proxies name the real one). Each failure takes one token; a failure from
// an address whose bucket is empty is refused with 429 instead of 401, and
// resets the refill, so that a client failing without pause stays limited.
// Safe for concurrent use.
type FailureLimiter struct {
	opts LimiterOptions

	mu    sync.Mutex
	byKey map[string]*list.Element // of *bucket
	lru   list.List                // front = most recently touched
}

type bucket struct {
	addr   string
	tokens float64
	at     time.Time
}

// NewFailureLimiter returns a limiter with opts' zero values defaulted.
func NewFailureLimiter(opts LimiterOptions) *FailureLimiter {
	if opts.Burst <= 0 {
		opts.Burst = 10
	}
	if opts.Refill <= 0 {
		opts.Refill = 6 * time.Second
	}
	if opts.MaxAddresses <= 0 {
		opts.MaxAddresses = 10000
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &FailureLimiter{opts: opts, byKey: map[string]*list.Element{}}
}

// Allow says whether a failure from addr would be within its budget now,
// without recording anything.
func (l *FailureLimiter) Allow(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byKey[addr]
	if !ok {
		return true
	}
	return l.refill(e.Value.(*bucket)) >= 1
}

// Fail records a failed authentication from addr. It returns true when
// the failure was within addr's budget (answer 401); false when addr is
// limited (answer 429), with the time until the next failure would be
// within it again. Deciding and recording are one step, so concurrent
// failures never exceed the budget.
func (l *FailureLimiter) Fail(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byKey[addr]
	if !ok {
		// An address never seen (or forgotten) starts with a full bucket;
		// forgetting one therefore only ever errs towards allowing.
		if l.lru.Len() >= l.opts.MaxAddresses {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.byKey, oldest.Value.(*bucket).addr)
		}
		e = l.lru.PushFront(&bucket{addr: addr, tokens: float64(l.opts.Burst), at: l.opts.Clock.Now()})
		l.byKey[addr] = e
	}
	l.lru.MoveToFront(e)
	b := e.Value.(*bucket)
	if l.refill(b) >= 1 {
		b.tokens--
		return true, 0
	}
	b.tokens = 0
	return false, l.opts.Refill
}

// Len is the number of addresses remembered.
func (l *FailureLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func (l *FailureLimiter) refill(b *bucket) float64 {
	now := l.opts.Clock.Now()
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens += float64(elapsed) / float64(l.opts.Refill)
		if limit := float64(l.opts.Burst); b.tokens > limit {
			b.tokens = limit
		}
	}
	b.at = now
	return b.tokens
}

// Failure reasons, the values of the reason label of
// scim_auth_failures_total.
const (
	ReasonMissing     = "missing"
	ReasonMalformed   = "malformed"
	ReasonUnknown     = "unknown"
	ReasonInactive    = "inactive"
	ReasonExpired     = "expired"
	ReasonAmbiguous   = "ambiguous"
	ReasonRateLimited = "rate_limited"
	ReasonError       = "error"
	ReasonStale       = "stale"
	// ReasonKeysUnavailable: an Entra-issued token could not be checked,
	// its directory's signing keys being unavailable (answered like stale).
	ReasonKeysUnavailable = "keys_unavailable"
)

// FailureReason maps an Authenticate error to a metric label value.
func FailureReason(err error) string {
	switch {
	case errors.Is(err, ErrMissing):
		return ReasonMissing
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrUnknown):
		return ReasonUnknown
	case errors.Is(err, ErrInactive):
		return ReasonInactive
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, ErrAmbiguous):
		return ReasonAmbiguous
	case errors.Is(err, ErrStale):
		return ReasonStale
	case errors.Is(err, ErrKeysUnavailable):
		return ReasonKeysUnavailable
	default:
		return ReasonError
	}
}

// Metrics counts authentication failures. Labels carry only the reason,
// never a token or fingerprint.
type Metrics struct {
	failures *prometheus.CounterVec
}

// NewMetrics registers scim_auth_failures_total on reg, normally
// sigs.k8s.io/controller-runtime/pkg/metrics.Registry.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scim_auth_failures_total",
		Help: "Failed SCIM bearer-token authentications, by reason.",
	}, []string{"reason"})}
	if err := reg.Register(m.failures); err != nil {
		// Several operators in one process (tests of replicas) share the
		// collector registered first.
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return &Metrics{failures: existing}, nil
			}
		}
		return nil, fmt.Errorf("registering scim_auth_failures_total: %w", err)
	}
	return m, nil
}

// Failed counts one failure with reason (a Reason constant); use
// FailureReason(err) for Authenticate errors and ReasonRateLimited for
// requests the FailureLimiter refused.
func (m *Metrics) Failed(reason string) { m.failures.WithLabelValues(reason).Inc() }
