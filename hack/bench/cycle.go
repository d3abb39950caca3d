package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// CycleResult is section 3 (and the filter GETs of section 4).
type CycleResult struct {
	Tenant            string      `json:"tenant"`
	Database          string      `json:"database,omitempty"` // sqlite or postgres
	Users             int         `json:"users"`
	Managers          int         `json:"managers"`
	Groups            int         `json:"groups"`
	LargestGroups     []int       `json:"largestGroupSizes"`
	Memberships       int         `json:"memberships"`
	Concurrency       int         `json:"concurrency"`
	Requests          int         `json:"requests"`
	Errors            int         `json:"errors"`
	UnexpectedMatches int         `json:"unexpectedMatches"`
	WallSeconds       float64     `json:"wallSeconds"`
	RequestsPerSecond float64     `json:"requestsPerSecond"`
	Phases            []OpResult  `json:"phases"`
	Lag               []LagResult `json:"syncLag"`
	// Database completeness, from the cycle's first request.
	DBCompleteSeconds float64 `json:"dbCompleteSeconds"` // -1: not within --sync-timeout
	DBAfterLastReq    float64 `json:"dbCompleteAfterLastRequestSeconds"`
	DBUsers           int     `json:"dbUsers"`
	DBMemberships     int     `json:"dbMemberships"`
	DBManagers        int     `json:"dbUsersWithManager"`
	// Lag computed from the database's own timestamps, exact rather than
	// bucketed: see userLag.
	DBLag []ExactLag `json:"syncLagFromDatabaseTimestamps"`
	// UserRows compares the rate the SCIM client created users at with
	// the rate their rows were committed at (database timestamps): a sync
	// that keeps up commits as fast as it is offered.
	UserRows *RowRate `json:"userRowsPerSecond,omitempty"`
}

// RowRate is rows per second over the span from a kind's first to its last.
type RowRate struct {
	Rows      int     `json:"rows"`
	Offered   float64 `json:"offeredPerSecond"`   // SCIM creates, by meta.lastModified
	Committed float64 `json:"committedPerSecond"` // helpdesk_users.created_at
}

// ExactLag is a lag distribution computed per object.
type ExactLag struct {
	What     string  `json:"what"`
	Samples  int     `json:"samples"`
	P50ms    float64 `json:"p50Ms"`
	P95ms    float64 `json:"p95Ms"`
	P99ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
	Negative int     `json:"negative"` // committed before the reference time: counted as 0
}

// LagResult is the sync lag histogram of the cycle's writes, by kind.
type LagResult struct {
	Kind         string             `json:"kind"`
	Buckets      map[string]float64 `json:"bucketsOfThisCycle"`
	Observations int                `json:"observations"`
	P50Seconds   float64            `json:"p50Seconds"`
	P99Seconds   float64            `json:"p99Seconds"`
}

// recorder collects latencies from many goroutines.
type recorder struct {
	mu    sync.Mutex
	lat   []time.Duration
	errs  int
	first string
}

func (r *recorder) time(fn func() error) error {
	t := time.Now()
	err := fn()
	d := time.Since(t)
	r.mu.Lock()
	r.lat = append(r.lat, d)
	if err != nil {
		r.errs++
		if r.first == "" {
			r.first = truncate(err.Error(), 300)
		}
	}
	r.mu.Unlock()
	return err
}

func (r *recorder) result(op string, c int, wall time.Duration) OpResult {
	res := summarize(op, c, r.lat, wall)
	res.Errors, res.FirstError = r.errs, r.first
	return res
}

// pool runs fn(i) for i in [0,n) on c goroutines.
func pool(ctx context.Context, n, c int, fn func(i int)) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// groupSizes is a long tail: group k (1-based) holds about 0.4·N/k^1.1
// users (at least one), plus one group of every user, as in a tenant
// with an "All employees" group, a few departments and many small teams.
func groupSizes(n, groups int) []int {
	sizes := []int{n}
	for k := 1; k < groups; k++ {
		s := int(math.Round(0.4 * float64(n) / math.Pow(float64(k), 1.1)))
		sizes = append(sizes, max(1, min(n, s)))
	}
	return sizes
}

// newTenantIn creates a ScimToken in namespace ns and returns a client once
// the SCIM server accepts its token.
func (b *bench) newTenantIn(ctx context.Context, ns, token, description string) (*scimClient, error) {
	tk := &scimv1.ScimToken{
		ObjectMeta: metav1.ObjectMeta{Name: token, Namespace: ns},
		Spec:       scimv1.ScimTokenSpec{Description: description},
	}
	if err := b.kube.Create(ctx, tk); err != nil {
		return nil, fmt.Errorf("creating ScimToken %s/%s: %w", ns, token, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var s corev1.Secret
		err := b.kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: token + "-token"}, &s)
		if err == nil && len(s.Data["token"]) > 0 {
			c := &scimClient{base: b.st.endpoint, token: string(s.Data["token"]), hc: b.hc}
			if c.accepted(ctx) {
				return c, nil
			}
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return nil, fmt.Errorf("the token of ScimToken %s/%s was not accepted within 2 minutes", ns, token)
}

type dbCounts struct{ users, members, managers int }

// cycleTarget is where a cycle runs: a tenant namespace, its token, and the
// helpdesk database its users reach (the dev stack's SQLite, or the
// PostgreSQL database of --postgres).
type cycleTarget struct {
	ns, token, description string
	dialect                string // "sqlite" or "postgres"
	db                     *sql.DB
}

// rebind turns '?' placeholders into the target's own.
func (t cycleTarget) rebind(q string) string {
	if t.dialect != "postgres" {
		return q
	}
	var out strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&out, "$%d", n)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

func (b *bench) dbCounts(ctx context.Context, t cycleTarget) (dbCounts, error) {
	var c dbCounts
	err := t.db.QueryRowContext(ctx, t.rebind(`SELECT
		(SELECT COUNT(*) FROM helpdesk_users WHERE tenant = ? AND deleted_at IS NULL),
		(SELECT COUNT(*) FROM helpdesk_group_members WHERE tenant = ?),
		(SELECT COUNT(*) FROM helpdesk_users WHERE tenant = ? AND manager_scim_id IS NOT NULL)`),
		t.ns, t.ns, t.ns).Scan(&c.users, &c.members, &c.managers)
	return c, err
}

// cycleRun is what a cycle leaves for the sections after it.
type cycleRun struct {
	sc   *scimClient
	ids  []string // user ids by index
	gids []string // group ids; gids[0] is "All users"
}

// cycleUserName is the userName of the cycle's i-th user.
func cycleUserName(i int) string { return fmt.Sprintf("user%06d@cycle.test", i) }

// cycle is sections 3 and 4 on the dev stack's SQLite, then the member
// PATCH cost by group size (3b).
func (b *bench) cycle(ctx context.Context, res *Results) error {
	t := cycleTarget{ns: cycleNS, token: cycleToken, description: "make bench: Entra-like initial cycle", dialect: "sqlite", db: b.db}
	run, err := b.runCycle(ctx, t, &res.Cycle, func() {
		progress("memory before the cycle (quiet %s)", b.o.Quiet)
		res.Memory.Base = b.memory(ctx)
	})
	if err != nil {
		return err
	}
	b.large = run.sc
	b.afterCycle(ctx, res, run)
	return b.groupScale(ctx, res, run)
}

// runCycle is section 3 in one tenant: Entra's initial cycle, then the
// wait for its database and the sync lag. beforeStart runs once the tenant
// exists, before the first request.
func (b *bench) runCycle(ctx context.Context, t cycleTarget, cr *CycleResult, beforeStart func()) (cycleRun, error) {
	o := b.o
	n, c := o.Users, o.Concurrency
	if t.dialect == "postgres" && o.PostgresUsers > 0 {
		n = o.PostgresUsers
	}
	cr.Tenant, cr.Users, cr.Concurrency, cr.Groups, cr.Database = t.ns, n, c, o.Groups, t.dialect
	cr.Managers = max(1, n/100)
	sizes := groupSizes(n, o.Groups)
	for _, s := range sizes {
		cr.Memberships += s
	}
	cr.LargestGroups = append([]int(nil), sizes[:min(5, len(sizes))]...)

	progress("section 3: new tenant %q (database: %s)", t.ns, t.dialect)
	sc, err := b.newTenantIn(ctx, t.ns, t.token, t.description)
	if err != nil {
		return cycleRun{}, err
	}
	if beforeStart != nil {
		beforeStart()
	}
	lagBefore, err := b.opMetrics(ctx)
	if err != nil {
		return cycleRun{}, err
	}

	progress("cycle: %d users (%d managers), %d groups, %d memberships, concurrency %d",
		n, cr.Managers, len(sizes), cr.Memberships, c)
	start := time.Now()
	// Watch the database from the first request on.
	type dbDone struct {
		at     time.Time
		counts dbCounts
		ok     bool
	}
	lastReq := make(chan time.Time, 1)
	dbResult := make(chan dbDone, 1)
	go func() {
		var last time.Time
		var cnt dbCounts
		timeout := time.Time{}
		for {
			select {
			case t := <-lastReq:
				last, timeout = t, t.Add(o.SyncTimeout)
			case <-ctx.Done():
				dbResult <- dbDone{counts: cnt}
				return
			case <-time.After(500 * time.Millisecond):
			}
			got, err := b.dbCounts(ctx, t)
			if err == nil {
				cnt = got
			}
			if !last.IsZero() && cnt.users >= n && cnt.members >= cr.Memberships && cnt.managers >= n-cr.Managers {
				dbResult <- dbDone{at: time.Now(), counts: cnt, ok: true}
				return
			}
			if !timeout.IsZero() && time.Now().After(timeout) {
				dbResult <- dbDone{counts: cnt}
				return
			}
		}
	}()

	// Users: Entra matches on userName, finds nothing, and creates.
	ids := make([]string, n)
	written := make([]time.Time, n) // meta.lastModified of each create
	mgrSent := make([]time.Time, n) // when each manager PATCH was sent
	name := cycleUserName
	var match, create recorder
	var unexpected atomic.Int64
	wall := pool(ctx, n, c, func(i int) {
		err := match.time(func() error {
			got, err := sc.findUser(ctx, name(i))
			if err == nil && got != 0 {
				unexpected.Add(1)
			}
			return err
		})
		if err != nil {
			return
		}
		_ = create.time(func() error {
			id, at, err := sc.createUser(ctx, name(i), i)
			ids[i], written[i] = id, at
			return err
		})
		if i%max(1, n/10) == 0 {
			progress("  users: %d/%d", i, n)
		}
	})
	cr.Phases = append(cr.Phases, match.result("GET /Users?filter (match)", c, wall), create.result("POST /Users", c, wall))
	progress("  users done in %.1fs", wall.Seconds())

	// Managers: 1 % of users; every other user gets one in a PATCH.
	var mgr recorder
	wall = pool(ctx, n-cr.Managers, c, func(j int) {
		i := j + cr.Managers
		if ids[i] == "" || ids[i%cr.Managers] == "" {
			return
		}
		_ = mgr.time(func() error {
			mgrSent[i] = time.Now()
			return sc.setManager(ctx, ids[i], ids[i%cr.Managers])
		})
		if j%max(1, n/10) == 0 {
			progress("  manager PATCHes: %d/%d", j, n-cr.Managers)
		}
	})
	cr.Phases = append(cr.Phases, mgr.result("PATCH /Users (manager)", c, wall))
	progress("  manager PATCHes done in %.1fs", wall.Seconds())

	// Groups: matched by displayName, created, then filled.
	gids := make([]string, len(sizes))
	var gmatch, gcreate recorder
	wall = pool(ctx, len(sizes), c, func(g int) {
		dn := fmt.Sprintf("cycle-group-%03d", g)
		if g == 0 {
			dn = "All users"
		}
		if gmatch.time(func() error {
			got, err := sc.find(ctx, "/Groups", "displayName", dn)
			if err == nil && got != 0 {
				unexpected.Add(1)
			}
			return err
		}) != nil {
			return
		}
		_ = gcreate.time(func() error {
			id, err := sc.createGroup(ctx, dn)
			gids[g] = id
			return err
		})
	})
	cr.Phases = append(cr.Phases, gmatch.result("GET /Groups?filter (match)", c, wall), gcreate.result("POST /Groups", c, wall))

	// Members: each group's PATCHes in order, as Entra sends one group's
	// changes one after another; the largest groups start first.
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	rng := rand.New(rand.NewPCG(42, 8))
	perms := make([][]int, len(sizes))
	for g, s := range sizes {
		if s == n {
			perms[g] = nil // every user, in order
		} else {
			perms[g] = rng.Perm(n)[:s]
		}
	}
	var members recorder
	var groupsDone atomic.Int64
	wall = pool(ctx, len(order), c, func(k int) {
		g := order[k]
		if gids[g] == "" {
			return
		}
		for off := 0; off < sizes[g] && ctx.Err() == nil; off += 100 {
			batch := make([]string, 0, 100)
			for j := off; j < min(off+100, sizes[g]); j++ {
				u := j
				if perms[g] != nil {
					u = perms[g][j]
				}
				if ids[u] != "" {
					batch = append(batch, ids[u])
				}
			}
			if len(batch) > 0 {
				_ = members.time(func() error { return sc.addMembers(ctx, gids[g], batch) })
			}
		}
		if d := groupsDone.Add(1); d%int64(max(1, len(order)/10)) == 0 {
			progress("  groups filled: %d/%d", d, len(order))
		}
	})
	cr.Phases = append(cr.Phases, members.result("PATCH /Groups (+≤100 members)", c, wall))
	end := time.Now()
	lastReq <- end
	for _, p := range cr.Phases {
		cr.Requests += p.Count
		cr.Errors += p.Errors
		progress("  %-30s n=%-6d %8.1f/s  p50 %7.1f ms  p99 %7.1f ms  errors %d", p.Op, p.Count, float64(p.Count)/p.WallSeconds, p.P50ms, p.P99ms, p.Errors)
	}
	cr.UnexpectedMatches = int(unexpected.Load())
	cr.WallSeconds = end.Sub(start).Seconds()
	cr.RequestsPerSecond = float64(cr.Requests) / cr.WallSeconds
	progress("cycle: %d requests in %.1fs = %.1f requests/s; waiting for the helpdesk database", cr.Requests, cr.WallSeconds, cr.RequestsPerSecond)

	d := <-dbResult
	cr.DBUsers, cr.DBMemberships, cr.DBManagers = d.counts.users, d.counts.members, d.counts.managers
	cr.DBCompleteSeconds, cr.DBAfterLastReq = -1, -1
	if d.ok {
		cr.DBCompleteSeconds = d.at.Sub(start).Seconds()
		cr.DBAfterLastReq = max(0, d.at.Sub(end).Seconds())
		progress("database complete %.1fs after the first request (%.1fs after the last)", cr.DBCompleteSeconds, cr.DBAfterLastReq)
	} else {
		progress("database NOT complete within %s: users %d/%d, memberships %d/%d, managers %d/%d",
			o.SyncTimeout, d.counts.users, n, d.counts.members, cr.Memberships, d.counts.managers, n-cr.Managers)
	}
	if lags, rate, err := b.userLag(ctx, t, ids, written, mgrSent); err != nil {
		progress("reading the database timestamps: %v", err)
	} else {
		cr.DBLag, cr.UserRows = lags, rate
		if rate != nil {
			progress("  user rows: %d, created at %.1f/s, committed at %.1f/s", rate.Rows, rate.Offered, rate.Committed)
		}
		for _, l := range lags {
			progress("  %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d samples)", l.What, l.P50ms, l.P99ms, l.MaxMs, l.Samples)
		}
	}
	b.settle(ctx, 3*time.Minute)
	lagAfter, err := b.opMetrics(ctx)
	if err != nil {
		return cycleRun{}, err
	}
	kinds := map[string]bool{}
	for _, s := range lagAfter {
		if s.Name == "scim_helpdesk_sync_lag_seconds_bucket" {
			kinds[s.Labels["kind"]] = true
		}
	}
	addLag := func(kind string, want map[string]string) {
		h := lagAfter.hist("scim_helpdesk_sync_lag_seconds", want).minus(lagBefore.hist("scim_helpdesk_sync_lag_seconds", want))
		bk := map[string]float64{}
		for le, v := range h {
			bk[strconv.FormatFloat(le, 'g', -1, 64)] = v
		}
		cr.Lag = append(cr.Lag, LagResult{Kind: kind, Buckets: bk, Observations: int(h.count()), P50Seconds: h.quantile(.5), P99Seconds: h.quantile(.99)})
	}
	addLag("all", nil)
	for _, k := range sortedKeys(kinds) {
		addLag(k, map[string]string{"kind": k})
	}

	return cycleRun{sc: sc, ids: ids, gids: gids}, nil
}

// afterCycle is section 4: memory with every user cached, object counts,
// filter GETs.
func (b *bench) afterCycle(ctx context.Context, res *Results, run cycleRun) {
	n := res.Cycle.Users
	progress("memory after the cycle (quiet %s)", b.o.Quiet)
	res.Memory.After = b.memory(ctx)
	if b.o.HeapProfile != "" && b.saveHeapProfile(ctx) {
		res.HeapTop = heapTop(ctx, b.o.HeapProfile)
	}
	res.Memory.Users = n
	res.Objects = map[string]map[string]int64{"all namespaces": b.objectCounts(ctx, ""), cycleNS: b.objectCounts(ctx, cycleNS)}
	if len(run.ids) > 1 && run.ids[1] != "" {
		// User 1 has a manager, like 99% of the cycle's users.
		if sz, err := b.objectSize(ctx, cycleNS, run.ids[1]); err != nil {
			progress("object size: %v", err)
		} else {
			res.UserObject = sz
			progress("one ProvisionedUser: %d bytes (metadata %d, of which managedFields %d; spec %d; status %d)",
				sz.Bytes, sz.MetadataBytes, sz.ManagedFieldsBytes, sz.SpecBytes, sz.StatusBytes)
		}
	}
	if am, err := b.apiMetrics(ctx); err == nil {
		res.StorageObjects = map[string]float64{}
		for _, s := range am {
			// apiserver_storage_objects is the API server's own periodic
			// estimate (resource label "kind.group"); the Lists above are exact.
			if s.Name == "apiserver_storage_objects" && strings.HasSuffix(s.Labels["resource"], ".scim.helpdesk.dev") {
				res.StorageObjects[s.Labels["resource"]] = s.Value
			}
		}
	}
	progress("filter GET latency with %d users in the tenant (%d requests, concurrency 1)", n, b.o.FilterGets)
	var fg recorder
	wall := pool(ctx, b.o.FilterGets, 1, func(i int) {
		u := (i * 7919) % n
		_ = fg.time(func() error {
			got, err := run.sc.findUser(ctx, cycleUserName(u))
			if err == nil && got != 1 {
				return fmt.Errorf("filter for %s found %d users", cycleUserName(u), got)
			}
			return err
		})
	})
	res.FilterGet = fg.result("GET /Users?filter=userName eq", 1, wall)
	progress("  p50 %.2f ms  p95 %.2f ms  p99 %.2f ms", res.FilterGet.P50ms, res.FilterGet.P95ms, res.FilterGet.P99ms)
}

// dbTime reads a timestamp column of either dialect.
func dbTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v, nil
	case string:
		return time.Parse(time.RFC3339Nano, v)
	case []byte:
		return time.Parse(time.RFC3339Nano, string(v))
	}
	return time.Time{}, fmt.Errorf("unexpected timestamp type %T", v)
}

// userLag measures the sync lag of users without the histogram's buckets:
// helpdesk_users.created_at (the operator's commit time) minus the create's
// meta.lastModified, which is the same start the operator's histogram
// uses; and updated_at minus the moment the manager PATCH was sent, an
// upper bound since it includes the request itself. PATCH answers 204
// without meta, so there is no exact start for it.
func (b *bench) userLag(ctx context.Context, t cycleTarget, ids []string, written, mgrSent []time.Time) ([]ExactLag, *RowRate, error) {
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		if id != "" {
			index[id] = i
		}
	}
	rows, err := t.db.QueryContext(ctx, t.rebind(`SELECT scim_id, created_at, updated_at FROM helpdesk_users WHERE tenant = ?`), t.ns)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var create, manager []time.Duration
	var negC, negM int
	var sent, committed span
	for rows.Next() {
		var id string
		var c, u any // text in SQLite, timestamptz in PostgreSQL
		if err := rows.Scan(&id, &c, &u); err != nil {
			return nil, nil, err
		}
		i, ok := index[id]
		if !ok {
			continue
		}
		ct, err1 := dbTime(c)
		ut, err2 := dbTime(u)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("parsing timestamps %v %v", c, u)
		}
		if !written[i].IsZero() {
			sent.add(written[i])
			committed.add(ct)
			d := ct.Sub(written[i])
			if d < 0 {
				negC, d = negC+1, 0
			}
			create = append(create, d)
		}
		if !mgrSent[i].IsZero() {
			d := ut.Sub(mgrSent[i])
			if d < 0 {
				negM, d = negM+1, 0
			}
			manager = append(manager, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	mk := func(what string, s []time.Duration, neg int) ExactLag {
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		l := ExactLag{What: what, Samples: len(s), P50ms: pct(s, .5), P95ms: pct(s, .95), P99ms: pct(s, .99), Negative: neg}
		if len(s) > 0 {
			l.MaxMs = float64(s[len(s)-1].Microseconds()) / 1000
		}
		return l
	}
	var rate *RowRate
	if sent.n > 1 && committed.last.After(committed.first) && sent.last.After(sent.first) {
		rate = &RowRate{Rows: sent.n, Offered: sent.perSecond(), Committed: committed.perSecond()}
	}
	return []ExactLag{
		mk("user create: meta.lastModified → created_at", create, negC),
		mk("manager PATCH: request sent → updated_at (upper bound)", manager, negM),
	}, rate, nil
}

// span is the first and last of n moments.
type span struct {
	first, last time.Time
	n           int
}

func (s *span) add(t time.Time) {
	if s.n == 0 || t.Before(s.first) {
		s.first = t
	}
	if s.n == 0 || t.After(s.last) {
		s.last = t
	}
	s.n++
}

// perSecond is (n-1) intervals over the span: n moments a second apart are 1/s.
func (s *span) perSecond() float64 { return float64(s.n-1) / s.last.Sub(s.first).Seconds() }
