package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// A list or search request that no index narrows (a filter without an
// indexed equality, a sortBy, a list without filter) reads the whole tenant
// from the cache, and one such request is enough to read 100,000 users: the
// per-token rate limit cannot bound it. Two bounds do:
//
//   - A ceiling (Config.ScanCeiling): a filter or sortBy that would
//     examine more resources answers 400 tooMany (RFC 7644 §3.4.2.2,
//     §3.12) naming the filters that are indexed, before anything is read.
//     A list without filter and sortBy has no ceiling: it is how Okta
//     imports, page by page, and it renders only the page.
//   - Slots: at most ScansPerTenant such requests run at once per tenant,
//     and ScansTotal on the replica, so that many tenants together are
//     bounded too. A request waits up to ScanWait for a slot: scans take
//     milliseconds to a second, so a client paging through its tenant one
//     request at a time never notices. Then it is answered 429 when its own
//     tenant holds the slots (that client's doing, like the rate limit) or
//     503 when all tenants together do, both with Retry-After (§3.12).
//
// Requests an index narrows (every query Entra and Okta make while
// provisioning) take no slot and have no ceiling.

// scanBudget holds the slots.
type scanBudget struct {
	ceiling   int
	perTenant int
	wait      time.Duration
	global    chan struct{}

	mu      sync.Mutex
	tenants map[string]*tenantScans
}

// tenantScans are one tenant's slots; the entry lives while a request
// holds or waits for one, so idle tenants cost nothing.
type tenantScans struct {
	slots chan struct{}
	refs  int // guarded by scanBudget.mu
}

var (
	errTenantScans = errors.New("the tenant's scan slots are taken")
	errAllScans    = errors.New("the replica's scan slots are taken")
)

func newScanBudget(cfg Config) *scanBudget {
	return &scanBudget{ceiling: cfg.ScanCeiling, perTenant: cfg.ScansPerTenant, wait: cfg.ScanWait,
		global: make(chan struct{}, cfg.ScansTotal), tenants: map[string]*tenantScans{}}
}

func (b *scanBudget) join(tenant string) *tenantScans {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tenants[tenant]
	if t == nil {
		t = &tenantScans{slots: make(chan struct{}, b.perTenant)}
		b.tenants[tenant] = t
	}
	t.refs++
	return t
}

func (b *scanBudget) leave(tenant string, t *tenantScans) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.refs--; t.refs == 0 {
		delete(b.tenants, tenant)
	}
}

// acquire takes one of the tenant's slots and one of the replica's, waiting
// up to the budget's wait for both; release gives them back.
func (b *scanBudget) acquire(ctx context.Context, tenant string) (release func(), err error) {
	t := b.join(tenant)
	deadline := time.Now().Add(b.wait)
	if err := take(ctx, t.slots, deadline, errTenantScans); err != nil {
		b.leave(tenant, t)
		return nil, err
	}
	if err := take(ctx, b.global, deadline, errAllScans); err != nil {
		<-t.slots
		b.leave(tenant, t)
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-b.global
			<-t.slots
			b.leave(tenant, t)
		})
	}, nil
}

// take puts a token into slots, waiting until deadline; busy is returned
// when it passes first. A free slot is taken even after the deadline.
func take(ctx context.Context, slots chan struct{}, deadline time.Time, busy error) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for a scan slot: %w", err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-timer.C:
		return busy
	case <-ctx.Done():
		return fmt.Errorf("waiting for a scan slot: %w", ctx.Err())
	}
}

// scanKind names what a scan reads, for the error messages.
type scanKind struct {
	plural  string // "users"
	indexed string // the indexed filters, as a client would write them
}

var (
	userScan = scanKind{"users",
		`userName eq "…", externalId eq "…", emails.value eq "…" or id eq "…"`}
	groupScan = scanKind{"groups",
		`displayName eq "…", externalId eq "…", members.value eq "…" or id eq "…"`}
)

// tooMany is the ceiling's answer for a query that would examine n of a
// tenant's resources.
func (b *scanBudget) tooMany(k scanKind, n int) error {
	return scimerr.TooMany("this filter or sortBy would examine %d %s, more than the %d this server filters or sorts "+
		"without an index; filter on an indexed attribute: %s (alone or and-ed with other conditions), "+
		"or list without filter and sortBy, page by page", n, k.plural, b.ceiling, k.indexed)
}

// startScan checks a whole-tenant query against the ceiling (n is the
// tenant's size; checked only when the query filters or sorts, since a
// plain list renders just its page) and takes a slot. Refusals carry
// Retry-After, set on w.
func (s *Server) startScan(ctx context.Context, w http.ResponseWriter, tenant string, q *query, k scanKind, n func() (int, error)) (func(), error) {
	if (q.filter != nil || q.sortBy != nil) && s.scans.ceiling < math.MaxInt {
		size, err := n()
		if err != nil {
			return nil, err
		}
		if size > s.scans.ceiling {
			return nil, s.scans.tooMany(k, size)
		}
	}
	return s.takeSlot(ctx, w, tenant, q)
}

// takeSlot takes the scan slot for q: its own, or the one its root search
// shares.
func (s *Server) takeSlot(ctx context.Context, w http.ResponseWriter, tenant string, q *query) (func(), error) {
	if q.slot != nil {
		return q.slot(ctx, w, tenant)
	}
	return s.scanSlot(ctx, w, tenant)
}

// scanSlot takes a slot, answering 429 or 503 with Retry-After when none
// frees up in time.
func (s *Server) scanSlot(ctx context.Context, w http.ResponseWriter, tenant string) (func(), error) {
	release, err := s.scans.acquire(ctx, tenant)
	switch {
	case err == nil:
		return release, nil
	case errors.Is(err, errTenantScans):
		w.Header().Set("Retry-After", retryAfter(s.cfg.ScanWait))
		return nil, scimerr.New(http.StatusTooManyRequests, "",
			"this tenant already runs %d list requests that read all its resources (a filter without an indexed equality, a sortBy, "+
				"or a list without filter); retry after the Retry-After seconds, or filter on an indexed attribute", s.cfg.ScansPerTenant)
	case errors.Is(err, errAllScans):
		w.Header().Set("Retry-After", retryAfter(s.cfg.ScanWait))
		return nil, scimerr.New(http.StatusServiceUnavailable, "",
			"the server is busy with list requests that read whole tenants; retry after the Retry-After seconds")
	default:
		// The client went away or its deadline passed while waiting.
		w.Header().Set("Retry-After", retryAfter(s.cfg.ScanWait))
		return nil, scimerr.New(http.StatusServiceUnavailable, "", "%v", err)
	}
}

func noRelease() {}

// tooManyMembers is the ceiling's answer for a group filter that would read
// n member entries.
func (b *scanBudget) tooManyMembers(n int) error {
	return scimerr.TooMany("this filter compares group members other than by members.value eq, which reads %d member entries, "+
		"more than the %d this server filters without an index; filter on members.value eq \"<user id>\" (indexed), "+
		"or on displayName eq \"…\" or externalId eq \"…\" of groups with fewer members", n, b.ceiling)
}
