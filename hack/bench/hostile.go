package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Section 5 (issue 13, item 2): worst-case queries against the cycle's
// tenant while another tenant provisions. Queries no index narrows read a
// whole tenant; the server bounds them (a ceiling, a few at once per tenant
// and per replica). What matters is what they cost everybody else: the
// operator's peak heap and the other tenant's latency, both as ratios to
// the same provisioning without them, in alternating rounds.

const (
	victimNS      = "bench-victim"
	victimToken   = "okta"
	hostileRounds = 2
	// heapEvery is how often the operator's heap is sampled (/metrics).
	heapEvery = 100 * time.Millisecond
)

// hostileQueries are the worst cases, as a client writes them: an
// unindexed filter with a sort and the largest count, and a group filter
// that reads every member's display name. The server caps count at its
// page size (1,000).
var hostileQueries = []string{
	`/Users?filter=title pr&sortBy=displayName&count=10000`,
	`/Groups?filter=members.display co "a"&count=10000`,
}

// escapeQuery encodes the query part of one of hostileQueries.
func escapeQuery(q string) string {
	path, raw, _ := strings.Cut(q, "?")
	v := url.Values{}
	for _, kv := range strings.Split(raw, "&") {
		k, val, _ := strings.Cut(kv, "=")
		v.Set(k, val)
	}
	return path + "?" + v.Encode()
}

// HostileResult is section 5.
type HostileResult struct {
	Tenant            string   `json:"tenant"`
	Users             int      `json:"users"`
	Groups            int      `json:"groups"`
	Memberships       int      `json:"memberships"`
	Victim            string   `json:"victimTenant"`
	VictimConcurrency int      `json:"victimConcurrency"`
	VictimUsers       int      `json:"victimUsersPerPhase"`
	Concurrency       int      `json:"hostileConcurrency"`
	Queries           []string `json:"hostileQueries"`
	Rounds            int      `json:"rounds"`
	// Baseline is the victim's provisioning alone, Hostile the same with
	// the queries running; both pooled over the rounds.
	Baseline HostilePhase `json:"baseline"`
	Hostile  HostilePhase `json:"hostile"`
	// Ratios hostile / baseline, overall and per round.
	HeapRatio      float64                   `json:"peakHeapRatio"`
	RSSRatio       float64                   `json:"peakRSSRatio"`
	P99Ratio       float64                   `json:"victimP99Ratio"`
	HeapPerRound   []float64                 `json:"peakHeapRatioPerRound"`
	P99PerRound    []float64                 `json:"victimP99RatioPerRound"`
	QueryLatency   []OpResult                `json:"hostileQueryLatency"`
	Answers        map[string]int            `json:"hostileAnswers"` // by query, then status (and scimType)
	AnswersByQuery map[string]map[string]int `json:"hostileAnswersByQuery"`
}

// HostilePhase is the victim's provisioning in one kind of phase.
type HostilePhase struct {
	Victim   OpResult   `json:"victim"` // every victim request, match GETs and creates
	ByOp     []OpResult `json:"victimByOperation"`
	PeakHeap float64    `json:"peakHeapAllocBytes"` // go_memstats_heap_alloc_bytes, sampled
	PeakRSS  int64      `json:"peakRSSBytes"`
	Samples  int        `json:"heapSamples"`
}

// heapPeak samples the operator's heap and RSS until stop is closed.
func (b *bench) heapPeak(ctx context.Context, stop <-chan struct{}) (heap float64, rss int64, n int) {
	t := time.NewTicker(heapEvery)
	defer t.Stop()
	for {
		if m, err := b.opMetrics(ctx); err == nil {
			heap = max(heap, m.sum("go_memstats_heap_alloc_bytes", nil))
			n++
		}
		if r, err := rssBytes(b.st.pid()); err == nil {
			rss = max(rss, r)
		}
		select {
		case <-stop:
			return heap, rss, n
		case <-ctx.Done():
			return heap, rss, n
		case <-t.C:
		}
	}
}

// hostileAnswer is one hostile request's outcome.
type hostileAnswer struct {
	query   int
	status  string
	latency time.Duration
}

// query sends a GET and reads the whole answer; it returns the status with
// the scimType of an error, such as "400 tooMany".
func (c *scimClient) query(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	st := strconv.Itoa(res.StatusCode)
	if res.StatusCode >= 400 {
		var e struct {
			ScimType string `json:"scimType"`
		}
		if json.Unmarshal(raw, &e) == nil && e.ScimType != "" {
			st += " " + e.ScimType
		}
	}
	return st, nil
}

// hostile is section 5.
func (b *bench) hostile(ctx context.Context, res *Results) error {
	o := b.o
	if b.large == nil {
		return fmt.Errorf("section 5 needs the cycle's tenant")
	}
	h := &HostileResult{Tenant: cycleNS, Users: res.Cycle.Users, Groups: res.Cycle.Groups, Memberships: res.Cycle.Memberships,
		Victim: victimNS, VictimConcurrency: 4, VictimUsers: o.VictimUsers, Concurrency: o.HostileAtOnce,
		Queries: hostileQueries, Rounds: hostileRounds,
		Answers: map[string]int{}, AnswersByQuery: map[string]map[string]int{}}
	res.Hostile = h
	if err := b.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: victimNS}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", victimNS, err)
	}
	victim, err := b.newTenantIn(ctx, victimNS, victimToken, "make bench: the tenant provisioning beside hostile queries")
	if err != nil {
		return err
	}
	progress("section 5: %d hostile queries at once against %s (%d users) while %s provisions %d users per phase at concurrency %d, %d alternating rounds",
		h.Concurrency, cycleNS, h.Users, victimNS, h.VictimUsers, h.VictimConcurrency, hostileRounds)

	var lat [2][][]time.Duration       // by phase (0 baseline, 1 hostile), per round
	var opRes [2][]map[string]OpResult // by phase, per round, by operation
	var opLat [2]map[string][]time.Duration
	var rounds [2][]OpResult
	var heap [2][]float64
	var rss [2][]int64
	samples := [2]int{}
	opLat[0], opLat[1] = map[string][]time.Duration{}, map[string][]time.Duration{}
	queryLat := make([][]time.Duration, len(hostileQueries))
	var qmu sync.Mutex
	next := 0
	for round := range hostileRounds {
		for phase := range 2 {
			b.settle(ctx, 3*time.Minute)
			b.forceGC(ctx)
			stopHeap := make(chan struct{})
			type peak struct {
				heap float64
				rss  int64
				n    int
			}
			peakc := make(chan peak, 1)
			go func() {
				hp, rp, n := b.heapPeak(ctx, stopHeap)
				peakc <- peak{hp, rp, n}
			}()
			stopHostile := make(chan struct{})
			var hw sync.WaitGroup
			if phase == 1 {
				for w := range h.Concurrency {
					hw.Add(1)
					go func() {
						defer hw.Done()
						q := w % len(hostileQueries)
						for ctx.Err() == nil {
							select {
							case <-stopHostile:
								return
							default:
							}
							t := time.Now()
							st, err := b.large.query(ctx, escapeQuery(hostileQueries[q]))
							if err != nil {
								st = "error"
							}
							a := hostileAnswer{query: q, status: st, latency: time.Since(t)}
							qmu.Lock()
							queryLat[a.query] = append(queryLat[a.query], a.latency)
							h.Answers[a.status]++
							by := h.AnswersByQuery[hostileQueries[a.query]]
							if by == nil {
								by = map[string]int{}
								h.AnswersByQuery[hostileQueries[a.query]] = by
							}
							by[a.status]++
							qmu.Unlock()
						}
					}()
				}
			}
			// The victim: Entra's match-then-create, as in the cycle.
			var match, create recorder
			from := next
			next += h.VictimUsers / hostileRounds
			wall := pool(ctx, next-from, h.VictimConcurrency, func(i int) {
				name := fmt.Sprintf("victim%07d@victim.test", from+i)
				if match.time(func() error {
					got, err := victim.findUser(ctx, name)
					if err == nil && got != 0 {
						err = fmt.Errorf("filter for new user %s found %d", name, got)
					}
					return err
				}) != nil {
					return
				}
				_ = create.time(func() error {
					_, _, err := victim.createUser(ctx, name, from+i)
					return err
				})
			})
			close(stopHostile)
			hw.Wait()
			close(stopHeap)
			p := <-peakc
			all := recorder{lat: append(append([]time.Duration(nil), match.lat...), create.lat...), errs: match.errs + create.errs, first: cmp.Or(match.first, create.first)}
			r := all.result("victim requests", h.VictimConcurrency, wall)
			rounds[phase] = append(rounds[phase], r)
			lat[phase] = append(lat[phase], all.lat)
			heap[phase] = append(heap[phase], p.heap)
			rss[phase] = append(rss[phase], p.rss)
			samples[phase] += p.n
			ops := map[string]OpResult{}
			for _, x := range []struct {
				op  string
				rec *recorder
			}{{"GET /Users?filter (match)", &match}, {"POST /Users", &create}} {
				ops[x.op] = x.rec.result(x.op, h.VictimConcurrency, wall)
				opLat[phase][x.op] = append(opLat[phase][x.op], x.rec.lat...)
			}
			opRes[phase] = append(opRes[phase], ops)
			kind := [2]string{"baseline", "hostile"}[phase]
			progress("  round %d %-8s victim n=%-5d p50 %6.1f ms  p99 %7.1f ms  errors %d; operator peak heap %s, peak RSS %s (%d samples)",
				round+1, kind, r.Count, r.P50ms, r.P99ms, r.Errors, mib(p.heap), mib(float64(p.rss)), p.n)
		}
	}
	for phase, ph := range []*HostilePhase{&h.Baseline, &h.Hostile} {
		ph.Victim = combine(rounds[phase], lat[phase])
		for _, op := range sortedKeys(opLat[phase]) {
			var parts []OpResult
			for _, m := range opRes[phase] {
				parts = append(parts, m[op])
			}
			ph.ByOp = append(ph.ByOp, combineWith(parts, opLat[phase][op]))
		}
		for i := range heap[phase] {
			ph.PeakHeap = max(ph.PeakHeap, heap[phase][i])
			ph.PeakRSS = max(ph.PeakRSS, rss[phase][i])
		}
		ph.Samples = samples[phase]
	}
	h.HeapRatio = ratio(h.Hostile.PeakHeap, h.Baseline.PeakHeap)
	h.RSSRatio = ratio(float64(h.Hostile.PeakRSS), float64(h.Baseline.PeakRSS))
	h.P99Ratio = ratio(h.Hostile.Victim.P99ms, h.Baseline.Victim.P99ms)
	for i := range hostileRounds {
		h.HeapPerRound = append(h.HeapPerRound, ratio(heap[1][i], heap[0][i]))
		h.P99PerRound = append(h.P99PerRound, ratio(rounds[1][i].P99ms, rounds[0][i].P99ms))
	}
	for q, l := range queryLat {
		h.QueryLatency = append(h.QueryLatency, summarize(hostileQueries[q], h.Concurrency/len(hostileQueries), l, 0))
	}
	progress("hostile / baseline: peak heap %.2f× (rounds %s), peak RSS %.2f×, victim p99 %.2f× (rounds %s); hostile answers %s",
		h.HeapRatio, fmtTimes(h.HeapPerRound), h.RSSRatio, h.P99Ratio, fmtTimes(h.P99PerRound), fmtAnswers(h.Answers))
	return nil
}

// combineWith is combine for rounds whose latencies are already pooled.
func combineWith(rounds []OpResult, lat []time.Duration) OpResult {
	var wall float64
	out := OpResult{}
	for _, r := range rounds {
		wall += r.WallSeconds
		out.Errors += r.Errors
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
	}
	s := summarize(rounds[0].Op, rounds[0].Concurrency, lat, time.Duration(wall*float64(time.Second)))
	s.Errors, s.FirstError = out.Errors, out.FirstError
	return s
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func fmtTimes(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f×", r)
	}
	return strings.Join(parts, ", ")
}

func fmtAnswers(m map[string]int) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printHostile is section 5 of the console table.
func printHostile(out io.Writer, h *HostileResult) {
	fmt.Fprintf(out, "\n== 5. Hostile queries: %d at once against %s (%d users, %d memberships) while %s provisions (concurrency %d, %d users per phase, %d rounds)\n",
		h.Concurrency, h.Tenant, h.Users, h.Memberships, h.Victim, h.VictimConcurrency, h.VictimUsers, h.Rounds)
	for _, ph := range []struct {
		name string
		p    HostilePhase
	}{{"alone", h.Baseline}, {"beside hostile queries", h.Hostile}} {
		fmt.Fprintf(out, "victim %-23s n=%-5d p50 %6.1f ms  p99 %7.1f ms  errors %d; operator peak heap %s, peak RSS %s\n",
			ph.name, ph.p.Victim.Count, ph.p.Victim.P50ms, ph.p.Victim.P99ms, ph.p.Victim.Errors, mib(ph.p.PeakHeap), mib(float64(ph.p.PeakRSS)))
	}
	fmt.Fprintf(out, "hostile / alone: peak heap %.2f× (rounds %s), peak RSS %.2f×, victim p99 %.2f× (rounds %s)\n",
		h.HeapRatio, fmtTimes(h.HeapPerRound), h.RSSRatio, h.P99Ratio, fmtTimes(h.P99PerRound))
	for _, q := range h.QueryLatency {
		fmt.Fprintf(out, "hostile %s: n=%d p50 %.1f ms p99 %.1f ms; answers %s\n", q.Op, q.Count, q.P50ms, q.P99ms, fmtAnswers(h.AnswersByQuery[q.Op]))
	}
}

// markdownHostile is section 5 of the report.
func markdownHostile(p func(string, ...any), h *HostileResult) {
	p("\n## 5. Hostile queries beside another tenant (issue 13)\n\n")
	p("%d clients of tenant `%s` (%d users, %d groups, %d memberships) send worst-case queries without pause, half of them each: ", h.Concurrency, h.Tenant, h.Users, h.Groups, h.Memberships)
	for i, q := range h.Queries {
		if i > 0 {
			p(" and ")
		}
		p("`GET %s`", q)
	}
	p(", while tenant `%s` provisions (Entra's match-then-create at concurrency %d). ", h.Victim, h.VictimConcurrency)
	p("The same provisioning alone is the baseline: %d rounds alternate alone and beside the queries, %d users per kind of phase in all, the work queues drained and a collection forced before each phase. ", h.Rounds, h.VictimUsers)
	p("*Peak heap* is the largest `go_memstats_heap_alloc_bytes` sampled every %s from the operator's metrics during a phase (garbage included: what the replica must hold); *peak RSS* likewise from /proc. ", heapEvery)
	p("The server's defaults apply (`--scim-scan-ceiling` 10,000, `--scim-scans-per-tenant` 2, `--scim-scans-total` 4): a tenant no larger than the ceiling has its unindexed queries served, two at a time; a larger one gets `400 tooMany` without anything read.\n\n")
	p("| victim | requests | p50 ms | p95 ms | p99 ms | errors | operator peak heap | operator peak RSS |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, ph := range []struct {
		name string
		p    HostilePhase
	}{{"alone", h.Baseline}, {"beside the hostile queries", h.Hostile}} {
		v := ph.p.Victim
		p("| %s | %d | %.1f | %.1f | %.1f | %d | %s | %s |\n", ph.name, v.Count, v.P50ms, v.P95ms, v.P99ms, v.Errors, mib(ph.p.PeakHeap), mib(float64(ph.p.PeakRSS)))
	}
	p("\n| hostile / alone | overall | per round |\n|---|--:|---|\n")
	p("| operator peak heap | **%.2f×** | %s |\n", h.HeapRatio, fmtTimes(h.HeapPerRound))
	p("| operator peak RSS | %.2f× | |\n", h.RSSRatio)
	p("| victim p99 latency | **%.2f×** | %s |\n", h.P99Ratio, fmtTimes(h.P99PerRound))
	p("\nThe hostile queries' own answers:\n\n| query | requests | p50 ms | p99 ms | answers |\n|---|--:|--:|--:|---|\n")
	for _, q := range h.QueryLatency {
		p("| `GET %s` | %d | %.1f | %.1f | %s |\n", q.Op, q.Count, q.P50ms, q.P99ms, fmtAnswers(h.AnswersByQuery[q.Op]))
	}
}
