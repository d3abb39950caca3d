package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one run measured; it is the JSON file.
type Results struct {
	Options        *options                    `json:"options"`
	Machine        Machine                     `json:"machine"`
	StartedAt      time.Time                   `json:"startedAt"`
	FinishedAt     time.Time                   `json:"finishedAt"`
	Baseline       []OpResult                  `json:"baseline"`
	SCIM           []OpResult                  `json:"scim"`
	Ratios         []Ratio                     `json:"scimCreateToBaseline"`
	UpdateRatios   []UpdateRatio               `json:"scimUpdateToCachedBaseline,omitempty"`
	APICalls       []APICalls                  `json:"apiCallsPerRequest"`
	Cycle          CycleResult                 `json:"cycle"`
	PostgresCycle  *CycleResult                `json:"postgresCycle,omitempty"`
	GroupScale     []GroupScaleRow             `json:"memberPatchByGroupSize,omitempty"`
	DBRates        []DBRate                    `json:"databaseWriteRates,omitempty"`
	UserObject     *ObjectSize                 `json:"userObjectSize,omitempty"`
	Memory         MemoryResult                `json:"memory"`
	Objects        map[string]map[string]int64 `json:"objects"`
	StorageObjects map[string]float64          `json:"apiserverStorageObjects,omitempty"`
	FilterGet      OpResult                    `json:"filterGetAtEnd"`
	Hostile        *HostileResult              `json:"hostile,omitempty"`
	Targets        []Target                    `json:"targets"`
	Causes         []string                    `json:"causes,omitempty"`
	// HeapTop is `go tool pprof -top` of the heap profile (--heap-profile).
	HeapTop string `json:"heapProfileTop,omitempty"`
}

type Ratio struct {
	Concurrency       int       `json:"concurrency"`
	SCIMPerSecond     float64   `json:"scimPerSecond"`
	BaselinePerSecond float64   `json:"baselinePerSecond"`
	Ratio             float64   `json:"ratio"`
	Rounds            []float64 `json:"ratioPerRound"`
}

// UpdateRatio is a SCIM user update's throughput against the baseline
// cached update (issue 20) at one level.
type UpdateRatio struct {
	Op                string    `json:"op"`
	Concurrency       int       `json:"concurrency"`
	SCIMPerSecond     float64   `json:"scimPerSecond"`
	BaselinePerSecond float64   `json:"baselinePerSecond"`
	Ratio             float64   `json:"ratio"`
	Rounds            []float64 `json:"ratioPerRound"`
	// BaselineConflicts is how often the baseline's Update with the cached
	// resourceVersion got a Conflict at this level (it then read live and
	// retried).
	BaselineConflicts int `json:"baselineConflicts"`
}

type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memoryBytes"`
	GoVersion   string `json:"goVersion"`
	Kernel      string `json:"kernel"`
	Date        string `json:"date"`
	LoadAtStart string `json:"loadAverageAtStart"`
	LoadAtEnd   string `json:"loadAverageAtEnd"`
}

type MemSnap struct {
	RSSBytes       int64            `json:"rssBytes"`
	HeapInuseBytes float64          `json:"goHeapInuseBytes"`
	HeapAllocBytes float64          `json:"goHeapAllocBytes"`
	NextGCBytes    float64          `json:"goNextGCBytes"`
	LiveHeapBytes  float64          `json:"goLiveHeapBytes"` // heap alloc right after a forced GC
	ChildrenRSS    map[string]int64 `json:"controlPlaneRSSBytes"`
}

type MemoryResult struct {
	Base                 MemSnap `json:"base"`
	After                MemSnap `json:"after"`
	Users                int     `json:"users"`
	PerUserRSSBytes      float64 `json:"perUserRSSBytes"`
	PerUserHeapBytes     float64 `json:"perUserHeapInuseBytes"`
	PerUserLiveHeapBytes float64 `json:"perUserLiveHeapBytes"`
}

type Target struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Status   string `json:"status"` // met, MISSED, not measured
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST"),
		LoadAtStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				_, _ = fmt.Sscan(strings.TrimSpace(v), &kb)
				m.MemoryBytes = kb * 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memory reads the operator's memory after the controllers went idle and
// a quiet period. The live heap is the heap allocated right after a
// collection, which the operator's /debug/pprof/heap?gc=1 forces.
func (b *bench) memory(ctx context.Context) MemSnap {
	b.settle(ctx, 3*time.Minute)
	sleep(ctx, b.o.Quiet)
	b.forceGC(ctx)
	var s MemSnap
	s.RSSBytes, _ = rssBytes(b.st.pid())
	s.ChildrenRSS = childRSS(b.st.pid())
	if m, err := b.opMetrics(ctx); err == nil {
		s.HeapInuseBytes = m.sum("go_memstats_heap_inuse_bytes", nil)
		s.HeapAllocBytes = m.sum("go_memstats_heap_alloc_bytes", nil)
		s.NextGCBytes = m.sum("go_memstats_next_gc_bytes", nil)
		s.LiveHeapBytes = s.HeapAllocBytes
	}
	progress("  RSS %s, heap in use %s, live heap %s; control plane %v", mib(float64(s.RSSBytes)), mib(s.HeapInuseBytes), mib(s.LiveHeapBytes), fmtChildren(s.ChildrenRSS))
	return s
}

func fmtChildren(c map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(c) {
		parts = append(parts, k+" "+mib(float64(c[k])))
	}
	return strings.Join(parts, ", ")
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func (r *Results) headline() int { return r.Options.Concurrency }

func (r *Results) apiCalls(op string, c int) *APICalls {
	for i := range r.APICalls {
		if r.APICalls[i].Op == op && r.APICalls[i].Concurrency == c {
			return &r.APICalls[i]
		}
	}
	return nil
}

func (r *Results) ratioAt(c int) *Ratio {
	for i := range r.Ratios {
		if r.Ratios[i].Concurrency == c {
			return &r.Ratios[i]
		}
	}
	return nil
}

func (r *Results) updateRatioAt(op string, c int) *UpdateRatio {
	for i := range r.UpdateRatios {
		if r.UpdateRatios[i].Op == op && r.UpdateRatios[i].Concurrency == c {
			return &r.UpdateRatios[i]
		}
	}
	return nil
}

func (r *Results) lag(kind string) *LagResult { return r.Cycle.lag(kind) }

// lag is the cycle's sync lag of kind ("all", "user", "group"), or nil.
func (c *CycleResult) lag(kind string) *LagResult {
	for i := range c.Lag {
		if c.Lag[i].Kind == kind {
			return &c.Lag[i]
		}
	}
	return nil
}

// perKindP99 is ", user p99 …, group p99 …" for a target's wording.
func (c *CycleResult) perKindP99() string {
	per := ""
	for _, k := range c.Lag {
		if k.Kind != "all" {
			per += fmt.Sprintf(", %s p99 %s", k.Kind, secs(k.P99Seconds))
		}
	}
	return per
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// evaluate derives per-user memory, compares with the targets of issue 8,
// and explains each miss from what was measured.
func (r *Results) evaluate() {
	m := &r.Memory
	if m.Users > 0 {
		n := float64(m.Users)
		m.PerUserRSSBytes = float64(m.After.RSSBytes-m.Base.RSSBytes) / n
		m.PerUserHeapBytes = (m.After.HeapInuseBytes - m.Base.HeapInuseBytes) / n
		m.PerUserLiveHeapBytes = (m.After.LiveHeapBytes - m.Base.LiveHeapBytes) / n
	}
	// 1. SCIM create vs baseline at concurrency 8.
	if rt := r.ratioAt(8); rt != nil {
		r.Targets = append(r.Targets, Target{"SCIM create throughput ≥ 80% of the client-go baseline at concurrency 8",
			fmt.Sprintf("%.0f%% (%.0f/s vs %.0f/s; rounds %s)", rt.Ratio*100, rt.SCIMPerSecond, rt.BaselinePerSecond, fmtRatios(rt.Rounds)), status(rt.Ratio >= .8)})
		if rt.Ratio < .8 {
			r.Causes = append(r.Causes, r.createCause(8))
		}
	} else {
		r.Targets = append(r.Targets, Target{"SCIM create throughput ≥ 80% of the client-go baseline at concurrency 8", "level 8 not run", "not measured"})
	}
	// 1b. SCIM PATCH and PUT vs the cached-update baseline at concurrency 8
	// (issue 20).
	for _, x := range []struct{ op, what string }{{opSCIMPatch, "PATCH"}, {opSCIMPut, "PUT"}} {
		name := "SCIM user " + x.what + " throughput ≥ 90% of the client-go cached-update baseline at concurrency 8 (issue 20)"
		rt := r.updateRatioAt(x.op, 8)
		switch {
		case rt != nil:
			r.Targets = append(r.Targets, Target{name,
				fmt.Sprintf("%.0f%% (%.0f/s vs %.0f/s; rounds %s; baseline conflicts %d)", rt.Ratio*100, rt.SCIMPerSecond, rt.BaselinePerSecond, fmtRatios(rt.Rounds), rt.BaselineConflicts),
				status(rt.Ratio >= .9)})
			if rt.Ratio < .9 {
				r.Causes = append(r.Causes, r.updateCause(x.op, 8))
			}
		case len(r.Baseline)+len(r.SCIM) == 0 || r.ratioAt(8) == nil:
			r.Targets = append(r.Targets, Target{name, "level 8 not run", "not measured"})
		default:
			r.Targets = append(r.Targets, Target{name, "no cached-update baseline in this run", "not measured"})
		}
	}
	// 2. Filter GET p99 at 100,000 users.
	fg := r.FilterGet
	t := Target{Target: "filter GET p99 < 5 ms at 100,000 users",
		Measured: fmt.Sprintf("p99 %.2f ms at %d users", fg.P99ms, r.Cycle.Users)}
	switch {
	case fg.Count == 0:
		t.Status = "not measured"
	case r.Cycle.Users >= 100000:
		t.Status = status(fg.P99ms < 5 && fg.Errors == 0)
	case fg.P99ms >= 5:
		t.Status = "MISSED (already at this size)"
	default:
		t.Status = "met at this size; for 100,000 users see docs/benchmarks-100k.md (make bench-100k)"
	}
	r.Targets = append(r.Targets, t)
	if strings.HasPrefix(t.Status, "MISSED") {
		r.Causes = append(r.Causes, fmt.Sprintf("Filter GET: p50 %.2f ms, p99 %.2f ms at concurrency 1 with nothing else running. "+
			"The lookup itself is a cache index hit; the tail is the HTTP round trip, authentication and JSON encoding "+
			"on a 2-core machine shared with etcd and kube-apiserver (and other processes: load %s).", fg.P50ms, fg.P99ms, r.Machine.LoadAtEnd))
	}
	// 3. Cycle rate and sync lag.
	c := r.Cycle
	scale := ""
	if c.Users < 10000 {
		scale = fmt.Sprintf(" (run had %d users, not 10,000)", c.Users)
	}
	// A smaller run only indicates: the targets are stated at 10,000 users.
	atSize := func(ok bool) string {
		switch {
		case c.Users < 10000 && ok:
			return "met at this size; not measured at 10,000"
		case c.Users > 10000 && ok:
			return "met, at " + strconv.Itoa(c.Users) + " users (target stated at 10,000)"
		case c.Users > 10000:
			return "not met at " + strconv.Itoa(c.Users) + " users (target stated at 10,000; see docs/benchmarks.md for that size)"
		}
		return status(ok)
	}
	r.Targets = append(r.Targets, Target{"10,000-user initial cycle at ≥ 25 requests/s per tenant",
		fmt.Sprintf("%.1f requests/s over %.0f s%s", c.RequestsPerSecond, c.WallSeconds, scale), atSize(c.RequestsPerSecond >= 25 && c.Errors == 0)})
	if c.RequestsPerSecond < 25 {
		r.Causes = append(r.Causes, fmt.Sprintf("Cycle rate: %.1f requests/s. Every create, manager PATCH and member PATCH costs 3 to 5 API writes "+
			"(see the API calls table) plus the controller's SQLite write, on the same 2 cores as etcd and kube-apiserver.", c.RequestsPerSecond))
	}
	if l := r.lag("all"); l != nil && l.Observations > 0 {
		exact := ""
		for _, e := range c.DBLag {
			if strings.HasPrefix(e.What, "user create") && e.Samples > 0 {
				exact = fmt.Sprintf("; user creates from database timestamps: p50 %.0f ms, p99 %.0f ms", e.P50ms, e.P99ms)
			}
		}
		r.Targets = append(r.Targets, Target{"database sync lag p99 < 2 s during the cycle",
			fmt.Sprintf("histogram p99 %s, p50 %s (bucket resolution, %d syncs%s)%s%s", secs(l.P99Seconds), secs(l.P50Seconds), l.Observations, c.perKindP99(), exact, scale), atSize(l.P99Seconds < 2)})
		if l.P99Seconds >= 2 || u(r.lag("group")) >= 2 {
			r.Causes = append(r.Causes, r.lagCause())
		}
	} else {
		r.Targets = append(r.Targets, Target{"database sync lag p99 < 2 s during the cycle", "no lag observations", "not measured"})
	}
	// 4. Memory per user.
	r.Targets = append(r.Targets, Target{"operator memory < 4 KiB per cached user beyond a fixed base",
		fmt.Sprintf("%.2f KiB live heap per user (heap in use %.2f KiB, RSS %.2f KiB) at %d users",
			m.PerUserLiveHeapBytes/1024, m.PerUserHeapBytes/1024, m.PerUserRSSBytes/1024, m.Users), status(m.PerUserLiveHeapBytes < 4096)})
	if m.PerUserLiveHeapBytes >= 4096 {
		r.Causes = append(r.Causes, fmt.Sprintf("Memory: each cycle user brings more than the user into the operator's caches: "+
			"its share of GroupMembership shards (%d memberships for %d users), the field index entries "+
			"(userName, externalId, email, membership; one set each per value in client-go's indexer) and the informer's copy of the object "+
			"with its labels, annotation, finalizer and status conditions. Run with --heap-profile for the split.", c.Memberships, c.Users))
	}
	live := m.PerUserLiveHeapBytes
	target := status(live <= 2048)
	if m.Users < 100000 {
		target += fmt.Sprintf(" at %d users (target stated at 100,000: make bench-100k)", m.Users)
	}
	r.Targets = append(r.Targets, Target{"operator memory ≤ 2 KiB live heap per cached user at 100,000 users (issue 20)",
		fmt.Sprintf("%.2f KiB live heap per user at %d users", live/1024, m.Users), target})
	if live > 2048 {
		r.Causes = append(r.Causes, fmt.Sprintf("Memory per user (issue 20): %.2f KiB live heap. The heap profile after the cycle (section 4) names what remains. "+
			"Most is the informer's decoded ProvisionedUser (about 1.8 KB for a bench user decoded alone: its Go struct is 704 bytes, with room for every optional SCIM attribute, "+
			"after internal/cachetrim shares its repeated strings and label set), with its one-entry annotation map (last-modified); then "+
			"the work queue's entry for the user's next resync, the informer's key, the user index and the member index.", live/1024))
	}
	r.evaluateScale()
}

func secs(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}

func describeMs(m map[string]float64) string { return describe(m, "%s %.1f ms", "n/a") }

func describeCalls(m map[string]float64) string { return describe(m, "%s %.2f", "none") }

// describe lists m by key with format ("%s %.2f"), or says none.
func describe(m map[string]float64, format, none string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf(format, k, m[k]))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

func (r *Results) createCause(c int) string {
	s := r.apiCalls("POST /Users", c)
	b := r.apiCalls("baseline create", c)
	var w strings.Builder
	fmt.Fprintf(&w, "SCIM create vs baseline at concurrency %d: ", c)
	if s != nil && b != nil {
		fmt.Fprintf(&w, "each SCIM POST /Users caused %.2f API writes (%s) and %.2f reads (%s), the controller's included; "+
			"each baseline create caused %.2f writes (%s) and %.2f reads. ",
			s.WritesPerReq, describeCalls(s.Writes), s.ReadsPerReq, describeCalls(s.Reads), b.WritesPerReq, describeCalls(b.Writes), b.ReadsPerReq)
	}
	if s != nil {
		if st := s.Writes["patch provisionedusers/status"]; st > 0 {
			fmt.Fprintf(&w, "The controller's status write (%.2f) is paid by the baseline too. ", st)
		}
	}
	w.WriteString("A SCIM create of a new userName writes the ProvisionedUser under its first id (one write, the uniqueness check included), " +
		"then reads the userName's NameClaim live (the other half of the cross-replica handshake in internal/scim/repository/claims.go) while it waits for its own informer cache " +
		"(read-your-writes for Entra's next request). ")
	if s != nil && s.ServerMs["post provisionedusers"] > 0 && s.ServerMs["get nameclaims"] > 0 {
		fmt.Fprintf(&w, "The API server took %.1f ms per create and %.1f ms per claim read on average (a quorum read waits for etcd to apply the writes before it), ",
			s.ServerMs["post provisionedusers"], s.ServerMs["get nameclaims"])
	}
	w.WriteString("so at a fixed number of clients (a closed loop, where throughput = clients ÷ latency) a SCIM create takes two sequential API round trips where the baseline takes one. " +
		"At concurrency 32 the API server, not the round trips, is the limit and the two are close. " +
		"Reading the claim from the API server's watch cache instead (resourceVersion of the create) was tried and is slower: that cache only learns of a revision written to another resource through etcd's progress notifications, every 100 ms.")
	return w.String()
}

// updateCause states what a SCIM update and a baseline cached update cost
// the API server, from the counts measured; it does not guess beyond them.
func (r *Results) updateCause(op string, c int) string {
	s := r.apiCalls(op, c)
	b := r.apiCalls(opCachedUpdate, c)
	var w strings.Builder
	fmt.Fprintf(&w, "SCIM %s vs the cached-update baseline at concurrency %d: ", op, c)
	if s == nil || b == nil {
		w.WriteString("no API request counts for this level.")
		return w.String()
	}
	fmt.Fprintf(&w, "each SCIM request caused %.2f API writes (%s) and %.2f reads (%s), the controller's included; "+
		"each baseline cached update caused %.2f writes (%s) and %.2f reads (%s). ",
		s.WritesPerReq, describeCalls(s.Writes), s.ReadsPerReq, describeCalls(s.Reads),
		b.WritesPerReq, describeCalls(b.Writes), b.ReadsPerReq, describeCalls(b.Reads))
	users := func(m map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range m {
			if strings.Contains(k, "provisionedusers") {
				out[k] = v
			}
		}
		return out
	}
	fmt.Fprintf(&w, "API server mean latency on ProvisionedUsers: SCIM %s; baseline %s. ", describeMs(users(s.ServerMs)), describeMs(users(b.ServerMs)))
	if g := s.Reads["get provisionedusers"]; g >= .5 && b.Reads["get provisionedusers"] < .5 {
		fmt.Fprintf(&w, "The SCIM update reads the user live from the API server (%.2f GETs per request) where the baseline reads its informer cache: "+
			"at a fixed number of clients (throughput = clients ÷ latency) that is a second sequential round trip.", g)
	}
	return strings.TrimSpace(w.String())
}

// u is a lag's p99, or 0 when absent.
func u(l *LagResult) float64 {
	if l == nil {
		return 0
	}
	return l.P99Seconds
}

func (r *Results) lagCause() string {
	c := r.Cycle
	var w strings.Builder
	fmt.Fprintf(&w, "Sync lag: the cycle sent %.0f requests/s (%d requests in %.0f s); ", c.RequestsPerSecond, c.Requests, c.WallSeconds)
	if c.DBCompleteSeconds >= 0 {
		fmt.Fprintf(&w, "the database held everything %.0f s after the first request, %.0f s after the last. ", c.DBCompleteSeconds, c.DBAfterLastReq)
	}
	for _, l := range c.Lag {
		if l.Kind != "all" {
			fmt.Fprintf(&w, "Kind %s: p50 %s, p99 %s over %d syncs. ", l.Kind, secs(l.P50Seconds), secs(l.P99Seconds), l.Observations)
		}
	}
	if g := r.lag("group"); g != nil && u(r.lag("user")) < 2 && g.P99Seconds >= 2 {
		w.WriteString("The tail is in groups, and it is at least partly how the lag is measured: for a member PATCH the SCIM server writes the membership shards first " +
			"and stamps the group's last-modified annotation afterwards (internal/scim/repository/members.go, ApplyMembers then touchGroup), while the group controller " +
			"reconciles as soon as it sees the shard change. That commit then carries the previous annotation, so the histogram records the time since the group's previous " +
			"change (for the first PATCH, since the group was created), not since this write. The database completion time above is the bound that does not depend on it. ")
	}
	if l := r.lag("all"); l != nil && l.P99Seconds < 2 {
		return w.String()
	}
	w.WriteString("The lag grows when the controllers' queues grow: every write (user create, manager PATCH, group PATCH) is a reconcile " +
		"that writes SQLite (one writer) and then the object's status (another API write), while the same 2 cores serve the SCIM requests; " +
		"group reconciles rewrite the membership diff of the whole group, so the large groups' many PATCHes queue behind each other.")
	return w.String()
}

// --- output

func printTable(out io.Writer, r *Results) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "== 1-2. Baseline and SCIM operations")
	fmt.Fprintln(tw, "operation\tc\tn\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\t")
	for _, o := range append(append([]OpResult(nil), r.Baseline...), r.SCIM...) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", o.Op, o.Concurrency, o.Count, o.PerSecond, o.P50ms, o.P95ms, o.P99ms, o.Errors)
	}
	tw.Flush()
	for _, rt := range r.Ratios {
		fmt.Fprintf(out, "SCIM create / baseline at c=%d: %.0f%% (%.1f/s vs %.1f/s; rounds %s)\n", rt.Concurrency, rt.Ratio*100, rt.SCIMPerSecond, rt.BaselinePerSecond, fmtRatios(rt.Rounds))
	}
	for _, rt := range r.UpdateRatios {
		fmt.Fprintf(out, "%s / cached-update baseline at c=%d: %.0f%% (%.1f/s vs %.1f/s; rounds %s; baseline conflicts %d)\n",
			updateLabel(rt.Op), rt.Concurrency, rt.Ratio*100, rt.SCIMPerSecond, rt.BaselinePerSecond, fmtRatios(rt.Rounds), rt.BaselineConflicts)
	}
	for _, a := range r.APICalls {
		if a.Concurrency == r.headline() {
			fmt.Fprintf(out, "API calls per %s (c=%d): writes %.2f [%s]; reads %.2f\n", a.Op, a.Concurrency, a.WritesPerReq, describeCalls(a.Writes), a.ReadsPerReq)
		}
	}
	c := r.Cycle
	fmt.Fprintf(out, "\n== 3. Entra-like initial cycle: %d users, %d managers, %d groups, %d memberships, concurrency %d\n",
		c.Users, c.Managers, c.Groups, c.Memberships, c.Concurrency)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "phase\tn\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\t")
	for _, p := range c.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", p.Op, p.Count, float64(p.Count)/p.WallSeconds, p.P50ms, p.P95ms, p.P99ms, p.Errors)
	}
	tw.Flush()
	fmt.Fprintf(out, "wall %.1f s, %d requests, %.1f requests/s, errors %d, unexpected matches %d\n", c.WallSeconds, c.Requests, c.RequestsPerSecond, c.Errors, c.UnexpectedMatches)
	for _, l := range c.Lag {
		fmt.Fprintf(out, "sync lag (%s, %d syncs, bucket resolution): p50 %s, p99 %s\n", l.Kind, l.Observations, secs(l.P50Seconds), secs(l.P99Seconds))
	}
	for _, e := range c.DBLag {
		fmt.Fprintf(out, "sync lag from database timestamps, %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d)\n", e.What, e.P50ms, e.P99ms, e.MaxMs, e.Samples)
	}
	if r := c.UserRows; r != nil {
		fmt.Fprintf(out, "user rows: %d created at %.1f/s, committed at %.1f/s\n", r.Rows, r.Offered, r.Committed)
	}
	if c.DBCompleteSeconds >= 0 {
		fmt.Fprintf(out, "helpdesk database complete %.1f s after the first request (%.1f s after the last)\n", c.DBCompleteSeconds, c.DBAfterLastReq)
	} else {
		fmt.Fprintf(out, "helpdesk database NOT complete: users %d/%d, memberships %d/%d, managers %d\n", c.DBUsers, c.Users, c.DBMemberships, c.Memberships, c.DBManagers)
	}
	m := r.Memory
	fmt.Fprintf(out, "\n== 4. Memory and objects\n")
	fmt.Fprintf(out, "operator RSS %s -> %s, heap in use %s -> %s, live heap ≈ %s -> %s\n",
		mib(float64(m.Base.RSSBytes)), mib(float64(m.After.RSSBytes)), mib(m.Base.HeapInuseBytes), mib(m.After.HeapInuseBytes), mib(m.Base.LiveHeapBytes), mib(m.After.LiveHeapBytes))
	fmt.Fprintf(out, "per cycle user: live heap %.2f KiB, heap in use %.2f KiB, RSS %.2f KiB\n", m.PerUserLiveHeapBytes/1024, m.PerUserHeapBytes/1024, m.PerUserRSSBytes/1024)
	fmt.Fprintf(out, "control plane RSS after: %s\n", fmtChildren(m.After.ChildrenRSS))
	for _, ns := range sortedKeys(r.Objects) {
		fmt.Fprintf(out, "objects (%s): %s\n", ns, fmtCounts(r.Objects[ns]))
	}
	fg := r.FilterGet
	fmt.Fprintf(out, "filter GET at %d users (n=%d, c=1): p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, errors %d\n", c.Users, fg.Count, fg.P50ms, fg.P95ms, fg.P99ms, fg.Errors)
	for _, g := range r.GroupScale {
		fmt.Fprintf(out, "member PATCH into %d members (c=%d): +100 p50 %.1f ms p99 %.1f ms, -100 p50 %.1f ms p99 %.1f ms; %.2f writes, %.2f reads per PATCH\n",
			g.Members, g.Concurrency, g.Add.P50ms, g.Add.P99ms, g.Remove.P50ms, g.Remove.P99ms, g.WritesPerReq, g.ReadsPerReq)
	}
	for _, d := range r.DBRates {
		fmt.Fprintf(out, "%s store alone (c=%d): %.0f user upserts/s, %.0f member rows/s\n", d.Database, d.Concurrency, d.UserUpserts, d.MemberRows)
	}
	if pg := r.PostgresCycle; pg != nil {
		fmt.Fprintf(out, "PostgreSQL cycle: %d users, %.1f requests/s, database complete %.1f s after the last request\n", pg.Users, pg.RequestsPerSecond, pg.DBAfterLastReq)
		for _, l := range pg.Lag {
			fmt.Fprintf(out, "  sync lag (%s, %d syncs): p50 %s, p99 %s\n", l.Kind, l.Observations, secs(l.P50Seconds), secs(l.P99Seconds))
		}
	}
	if r.Hostile != nil {
		printHostile(out, r.Hostile)
	}
	fmt.Fprintf(out, "\n== Targets (issues 8 and 20)\n")
	for _, t := range r.Targets {
		fmt.Fprintf(out, "- %s: %s -> %s\n", t.Target, t.Measured, t.Status)
	}
}

// markdownCycleFigures is a cycle's phases, sync lag and database
// completion (section 3, and the PostgreSQL section).
func markdownCycleFigures(p func(string, ...any), c *CycleResult, db string, timeout time.Duration) {
	p("| phase | requests | per second | p50 ms | p95 ms | p99 ms | errors |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range c.Phases {
		p("| %s | %d | %.1f | %.1f | %.1f | %.1f | %d |\n", x.Op, x.Count, float64(x.Count)/x.WallSeconds, x.P50ms, x.P95ms, x.P99ms, x.Errors)
	}
	p("| **whole cycle** | **%d** | **%.1f** | | | | %d |\n\n", c.Requests, c.RequestsPerSecond, c.Errors)
	p("Wall time %.1f s. Matches that unexpectedly found something: %d.\n\n", c.WallSeconds, c.UnexpectedMatches)
	p("Sync lag from the SCIM write (the object's last-modified annotation) to the helpdesk database commit, from the operator's ")
	p("`scim_helpdesk_sync_lag_seconds` histogram (observations of this cycle only). **Bucket resolution**: quantiles are interpolated linearly inside the buckets ")
	p("5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250 ms, 500 ms, 1 s, 2 s, 5 s, 10 s, 30 s, 60 s, 300 s, so a p99 of 1.5 s means \"between 1 and 2 s\".\n\n")
	p("| kind | syncs | p50 | p99 |\n|---|--:|--:|--:|\n")
	for _, l := range c.Lag {
		p("| %s | %d | %s | %s |\n", l.Kind, l.Observations, secs(l.P50Seconds), secs(l.P99Seconds))
	}
	if len(c.DBLag) > 0 {
		p("\nThe same lag computed per user from the database's own timestamps (exact, not bucketed): ")
		p("a create from its `meta.lastModified` (the operator's start of the lag) to `helpdesk_users.created_at` (the commit); ")
		p("a manager PATCH from the moment it was sent to `updated_at` (an upper bound: PATCH answers 204 without `meta`, so it includes the request).\n\n")
		p("| what | samples | p50 ms | p95 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|--:|\n")
		for _, e := range c.DBLag {
			p("| %s | %d | %.0f | %.0f | %.0f | %.0f |\n", e.What, e.Samples, e.P50ms, e.P95ms, e.P99ms, e.MaxMs)
		}
	}
	if r := c.UserRows; r != nil {
		p("\nRows per second, from each user's first to its last: the SCIM client created %d users at **%.1f/s** (`meta.lastModified`); the %s database committed their rows at **%.1f/s** (`created_at`). ", r.Rows, r.Offered, db, r.Committed)
		p("A sync that keeps up commits at the rate it is offered; one that falls behind commits over a longer span, so at a lower rate.\n")
	}
	if c.DBCompleteSeconds >= 0 {
		p("\nThe %s database (polled every 0.5 s) held all %d users, their managers and all %d memberships **%.1f s after the first request**, %.1f s after the last one.\n",
			db, c.Users, c.Memberships, c.DBCompleteSeconds, c.DBAfterLastReq)
	} else {
		p("\nThe %s database was **not complete** within %s after the last request: %d/%d users, %d/%d memberships, %d users with a manager.\n",
			db, timeout, c.DBUsers, c.Users, c.DBMemberships, c.Memberships, c.DBManagers)
	}
}

// updateLabel is "SCIM PATCH" or "SCIM PUT" for an update ratio's op.
func updateLabel(op string) string {
	switch op {
	case opSCIMPatch:
		return "SCIM PATCH"
	case opSCIMPut:
		return "SCIM PUT"
	}
	return op
}

func fmtCounts(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func writeJSON(path string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func writeMarkdown(path string, r *Results) error {
	var w bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	o := r.Options
	c := r.Cycle
	m := r.Memory
	if len(r.Baseline)+len(r.SCIM) == 0 {
		p("# Benchmarks at %d users\n\n", r.Cycle.Users)
		p("Written by `make bench-100k` (`go run ./hack/bench --skip-microbench`, issue 8) from a real run: the initial cycle, memory and filter GET at this size; ")
		p("the operations and their ratio to the baseline are in docs/benchmarks.md. ")
	} else {
		p("# Benchmarks\n\n")
		p("Written by `make bench` (`go run ./hack/bench`, issue 8) from a real run; run it again to compare. ")
	}
	p("The program starts `scim-operator dev` (etcd, kube-apiserver, the operator and SQLite on this machine), ")
	p("measures, and stops it. Numbers are from one run on a shared machine: compare runs on the same machine, not across machines.\n\n")
	p("## Machine and run\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s |\n| cores | %d |\n| memory | %.1f GiB |\n| OS | %s |\n| Go | %s |\n| date | %s |\n",
		r.Machine.CPU, r.Machine.Cores, float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.Kernel, r.Machine.GoVersion, r.Machine.Date)
	p("| load average (1, 5, 15 min) | %s at start, %s at end |\n", r.Machine.LoadAtStart, r.Machine.LoadAtEnd)
	p("| duration | %.1f min |\n", r.FinishedAt.Sub(r.StartedAt).Minutes())
	cmdline := "make bench` (defaults)"
	if len(o.Args) > 0 {
		cmdline = "go run ./hack/bench " + strings.Join(o.Args, " ") + "`"
	}
	p("| command | `%s |\n", cmdline)
	hostile := ""
	if r.Hostile != nil {
		hostile = fmt.Sprintf(", %d hostile queries at once beside %d victim users per phase", o.HostileAtOnce, o.VictimUsers)
	}
	resync := "1m0s (the dev stack's, runs before --resync-period)"
	if o.ResyncPeriod > 0 {
		resync = o.ResyncPeriod.String()
	}
	p("| flags | users %d, concurrency %d, levels %v, %d SCIM requests per operation and level, %d baseline objects per level, %d group PATCHes per level, %d groups, %d filter GETs, quiet %s%s, operator resync period %s |\n\n",
		o.Users, o.Concurrency, o.Levels, o.Ops, o.BaselineN, o.GroupPatches, o.Groups, o.FilterGets, o.Quiet, hostile, resync)

	p("## Targets (issues 8 and 20)\n\n| target | measured | result |\n|---|---|---|\n")
	for _, t := range r.Targets {
		p("| %s | %s | %s |\n", t.Target, t.Measured, t.Status)
	}
	if len(r.Causes) > 0 {
		p("\n### Why targets were missed, and other findings\n\n")
		for _, cs := range r.Causes {
			p("- %s\n", cs)
		}
	}

	p("\n## 1–2. Baseline and SCIM operations\n\n")
	if len(r.Baseline)+len(r.SCIM) == 0 {
		p("Not run in this run (`--skip-microbench`): the operations and the ratio to the baseline are in docs/benchmarks.md.\n")
	} else {
		p("The baseline creates ProvisionedUser objects equal to what `POST /Users` stores (spec, labels, finalizer, annotation) with a controller-runtime client ")
		p("without client-side rate limit, one API write per object. At each level, baseline creates and SCIM creates alternate in %d rounds, then the other SCIM operations follow; ", createRounds)
		if len(r.UpdateRatios) > 0 {
			p("the user updates too alternate in %d rounds: a *baseline cached update* of each of the level's baseline objects (a controller-runtime informer cache on the baseline namespace, started and synced before; ", createRounds)
			p("the object read from the cache as a deep copy, the attributes the SCIM PATCH changes set, and an Update with the cached resourceVersion; on a conflict a live read and another try), ")
			p("then a SCIM PATCH and a SCIM PUT of each of the level's SCIM users; ")
		}
		p("after every phase the program waits until the operator's work queues are empty, so a phase does not pay for the previous one's controller work. ")
		p("Group PATCHes go to at least as many groups as there are concurrent clients, each adding 100 users the group does not hold yet.\n\n")
		p("| operation | concurrency | requests | per second | p50 ms | p95 ms | p99 ms | errors |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, x := range append(append([]OpResult(nil), r.Baseline...), r.SCIM...) {
			p("| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %d |\n", x.Op, x.Concurrency, x.Count, x.PerSecond, x.P50ms, x.P95ms, x.P99ms, x.Errors)
		}
		if len(r.Ratios) > 0 {
			p("\nSCIM create throughput relative to the baseline at the same concurrency. Baseline creates and SCIM creates alternate in %d rounds per level ", createRounds)
			p("(each round settles the controllers before the next), so that load from elsewhere on the machine hits both alike; the ratio is over all rounds, the spread between rounds shows how noisy the machine was.\n\n")
			p("| concurrency | SCIM POST /Users per s | baseline creates per s | ratio | per round |\n|--:|--:|--:|--:|---|\n")
			for _, rt := range r.Ratios {
				p("| %d | %.1f | %.1f | **%.0f%%** | %s |\n", rt.Concurrency, rt.SCIMPerSecond, rt.BaselinePerSecond, rt.Ratio*100, fmtRatios(rt.Rounds))
			}
		}
		if len(r.UpdateRatios) > 0 {
			p("\nSCIM user update throughput relative to the client-go cached-update baseline at the same concurrency (issue 20: at least 90%% at concurrency 8). ")
			p("Baseline cached updates, SCIM PATCHes (`%s`) and SCIM PUTs (`%s`) alternate in %d rounds per level, each round settling the controllers before the next; ", opSCIMPatch, opSCIMPut, createRounds)
			p("conflicts are the baseline's Updates refused for a stale cached resourceVersion (each then read live and retried).\n\n")
			p("| concurrency | comparison | SCIM per s | baseline cached updates per s | ratio | per round | baseline conflicts |\n|--:|---|--:|--:|--:|---|--:|\n")
			for _, rt := range r.UpdateRatios {
				p("| %d | %s / cached-update baseline | %.1f | %.1f | **%.0f%%** | %s | %d |\n", rt.Concurrency, updateLabel(rt.Op), rt.SCIMPerSecond, rt.BaselinePerSecond, rt.Ratio*100, fmtRatios(rt.Rounds), rt.BaselineConflicts)
			}
		}
		if len(r.APICalls) > 0 {
			p("\nAPI server requests per operation at concurrency %d (from `apiserver_request_total`, the controllers' requests included, background below 0.02 per request left out):\n\n", r.headline())
			p("| operation | writes per request | writes by verb and resource | reads per request | reads by verb and resource | API server mean latency |\n|---|--:|---|--:|---|---|\n")
			for _, a := range r.APICalls {
				if a.Concurrency == r.headline() {
					p("| %s | %.2f | %s | %.2f | %s | %s |\n", a.Op, a.WritesPerReq, describeCalls(a.Writes), a.ReadsPerReq, describeCalls(a.Reads), describeMs(a.ServerMs))
				}
			}
		}
	}

	p("\n## 3. Entra-like initial cycle\n\n")
	p("A fresh tenant (namespace `%s` with its own ScimToken). %d users, each matched first (`GET /Users?filter=userName eq`, 0 results) and then created; ", c.Tenant, c.Users)
	p("%d of them (1%%) are managers and every other user gets a manager PATCH; %d groups, matched and created, with a long-tailed size distribution ", c.Managers, c.Groups)
	p("(group k of the others holds about 0.4·N/k^1.1 users; largest sizes %v) including one group of every user, filled by `Add members` PATCHes of up to 100 members, ", c.LargestGroups)
	p("each group's PATCHes in order and the largest groups first; %d memberships in all. Concurrency %d.\n\n", c.Memberships, c.Concurrency)
	markdownCycleFigures(p, &c, "SQLite", o.SyncTimeout)

	p("\n## 4. Memory, objects and filter GET\n\n")
	p("The operator process (`scim-operator dev`: manager, SCIM server, SQLite) before the cycle and after its %d users, each reading after the work queues emptied and %s of quiet. ", m.Users, o.Quiet)
	p("*Live heap* is `go_memstats_heap_alloc_bytes` right after a collection forced through the operator's `/debug/pprof/heap?gc=1`: what the caches keep. *Heap in use* counts whole spans, free space included.\n\n")
	p("| | base | after %d users | per user |\n|---|--:|--:|--:|\n", m.Users)
	p("| RSS (VmRSS) | %s | %s | %.2f KiB |\n", mib(float64(m.Base.RSSBytes)), mib(float64(m.After.RSSBytes)), m.PerUserRSSBytes/1024)
	p("| Go heap in use | %s | %s | %.2f KiB |\n", mib(m.Base.HeapInuseBytes), mib(m.After.HeapInuseBytes), m.PerUserHeapBytes/1024)
	p("| Go live heap | %s | %s | %.2f KiB |\n", mib(m.Base.LiveHeapBytes), mib(m.After.LiveHeapBytes), m.PerUserLiveHeapBytes/1024)
	p("| control plane RSS | %s | %s | |\n\n", fmtChildren(m.Base.ChildrenRSS), fmtChildren(m.After.ChildrenRSS))
	p("The base already caches the earlier sections' objects (baseline namespace and demo tenant); the per-user figure is the cycle's increase divided by its users, ")
	p("so it includes each user's share of GroupMembership shards (and a NameClaim for the few users that need one).\n\n")
	p("API server objects after the cycle (List with limit 1 and the remaining count):\n\n| kind | all namespaces | %s |\n|---|--:|--:|\n", cycleNS)
	for _, k := range sortedKeys(r.Objects["all namespaces"]) {
		p("| %s | %d | %d |\n", k, r.Objects["all namespaces"][k], r.Objects[cycleNS][k])
	}
	if u := r.UserObject; u != nil {
		p("\nOne cycle user (with a manager) as the API server returns it, which is what etcd holds of a custom resource (JSON): **%d bytes**: metadata %d ", u.Bytes, u.MetadataBytes)
		p("(of which managedFields %d, which the operator's cache strips), spec %d, status %d.\n", u.ManagedFieldsBytes, u.SpecBytes, u.StatusBytes)
	}
	fg := r.FilterGet
	p("\nFilter GET (`GET /Users?filter=userName eq \"…\"`, existing users) with %d users in the tenant, %d requests at concurrency 1: ", c.Users, fg.Count)
	p("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, errors %d.\n", fg.P50ms, fg.P95ms, fg.P99ms, fg.Errors)

	markdownGroupScale(p, r)
	markdownPostgres(p, r)
	markdownDBRates(p, r)
	if r.Hostile != nil {
		markdownHostile(p, r.Hostile)
	}

	if r.HeapTop != "" {
		p("\n## Heap profile after the cycle\n\n")
		p("The operator's live heap after a forced collection (`--heap-profile`; `go tool pprof -top -sample_index=inuse_space`), the largest entries:\n\n```text\n%s\n```\n", r.HeapTop)
	}

	p("\n## Caveats\n\n")
	var load1 float64
	_, _ = fmt.Sscan(r.Machine.LoadAtStart, &load1)
	if load1 > float64(r.Machine.Cores) {
		p("- The machine was busy with other work when this ran (load average %s on %d cores at the start, %s at the end): ", r.Machine.LoadAtStart, r.Machine.Cores, r.Machine.LoadAtEnd)
		p("absolute throughputs are lower and tails longer than on an idle machine (on an idle machine of this kind ~1 KB custom resources were measured at ~390 creates/s sequentially and ~1,250/s at concurrency 8). ")
		p("The ratios to the baseline, measured back to back, are the fairer comparison.\n")
	}
	p("- The baseline and SCIM numbers include the helpdesk controllers working in the background on the objects just written (status writes, SQLite), as in production; the work queues are drained between phases.\n")
	p("- In the cycle, the match GET and the create of a user (and of a group) run in the same loop, so their rows share one wall time: their per-second figure is pairs per second.\n")
	p("- Sync lag quantiles are bucket-resolution (see above); the database completion time is exact to the 0.5 s poll.\n")

	p("\n## Not measured in this run\n\n")
	if c.Users < 100000 {
		p("- Memory, object count and filter GET latency at 100,000 users: `make bench-100k` measures them (about an hour on this machine) and writes docs/benchmarks-100k.md; the latest such run is there.\n")
	}
	if r.Hostile == nil {
		p("- Hostile queries beside another tenant (section 5): not run (`--skip-hostile`, or a run from before the section existed).\n")
	}
	p("- CPU profiles: not taken by this program (the operator serves /debug/pprof/profile while it runs); the explanations above come from the API request counts measured here.\n")
	switch {
	case r.PostgresCycle == nil && o.Postgres != "":
		p("- The PostgreSQL cycle (section 3c): started but not finished; the run was stopped and this report is rendered from its last checkpoint (`--from-json`).\n")
	case r.PostgresCycle == nil:
		p("- PostgreSQL as the helpdesk database: not run (`--postgres` empty).\n")
	}
	p("- MySQL/MariaDB as the helpdesk database: not measured by this program.\n")
	return os.WriteFile(path, w.Bytes(), 0o644)
}
