package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	_ "modernc.org/sqlite"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/kscheme"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

const (
	baselineNS = "bench-baseline"
	cycleNS    = "bench-cycle"
	cycleToken = "entra"
)

type bench struct {
	pg      *sql.DB // the PostgreSQL section's database (--postgres), or nil
	o       *options
	st      *stack
	cfg     *rest.Config // no client-side rate limit
	kube    client.Client
	apiHTTP *http.Client // authenticated to kube-apiserver, for /metrics
	apiHost string
	hc      *http.Client // operator metrics
	demo    *scimClient
	large   *scimClient // the cycle's tenant, for section 5
	db      *sql.DB
}

func newBench(ctx context.Context, o *options, st *stack) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.kubeconfig)
	if err != nil {
		return nil, err
	}
	// No client-side rate limit: the baseline must show the API server's
	// limit, not client-go's default 5 QPS.
	cfg.QPS, cfg.Burst = -1, -1
	kube, err := client.New(cfg, client.Options{Scheme: kscheme.New()})
	if err != nil {
		return nil, err
	}
	apiHTTP, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	// Read-only, so the benchmark never takes SQLite's write lock from the
	// operator.
	db, err := sql.Open("sqlite", "file:"+st.stateDir+"/helpdesk.db?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	hc := newHTTPClient()
	b := &bench{o: o, st: st, cfg: cfg, kube: kube, apiHTTP: apiHTTP, apiHost: cfg.Host, hc: hc, db: db,
		demo: &scimClient{base: st.endpoint, token: st.token, hc: hc}}
	for _, ns := range []string{baselineNS, cycleNS} {
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	if _, err := b.opMetrics(ctx); err != nil {
		return nil, fmt.Errorf("operator metrics endpoint: %w", err)
	}
	return b, nil
}

func (b *bench) close() { _ = b.db.Close() }

func (b *bench) opMetrics(ctx context.Context) (metrics, error) {
	return scrape(ctx, b.hc, b.st.metricsURL)
}

func (b *bench) apiMetrics(ctx context.Context) (metrics, error) {
	return scrape(ctx, b.apiHTTP, strings.TrimSuffix(b.apiHost, "/")+"/metrics")
}

// settle waits until the operator's work queues are empty and no
// reconcile runs (twice in a row), so that the next measurement does not
// pay for the previous one's controller work.
func (b *bench) settle(ctx context.Context, limit time.Duration) time.Duration {
	start := time.Now()
	idle := 0
	for time.Since(start) < limit && ctx.Err() == nil {
		m, err := b.opMetrics(ctx)
		if err == nil && m.sum("workqueue_depth", nil) == 0 && m.sum("controller_runtime_active_workers", nil) == 0 {
			idle++
			if idle >= 3 {
				break
			}
		} else {
			idle = 0
		}
		sleep(ctx, 300*time.Millisecond)
	}
	return time.Since(start)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// apiCalls is what the API server served between two scrapes, per SCIM or
// baseline request: writes and reads by resource, from
// apiserver_request_total.
type APICalls struct {
	Op           string             `json:"op"`
	Concurrency  int                `json:"concurrency"`
	Requests     int                `json:"requests"`
	WritesPerReq float64            `json:"writesPerRequest"`
	ReadsPerReq  float64            `json:"readsPerRequest"`
	Writes       map[string]float64 `json:"writesByResource"` // per request
	Reads        map[string]float64 `json:"readsByResource"`  // per request
	// ServerMs is the API server's mean latency by verb and resource
	// (apiserver_request_duration_seconds), for the calls counted above.
	ServerMs map[string]float64 `json:"serverMsByResource,omitempty"`
}

func apiDelta(before, after metrics, op string, c, n int) APICalls {
	out := APICalls{Op: op, Concurrency: c, Requests: n, Writes: map[string]float64{}, Reads: map[string]float64{}}
	key := func(s sample) string {
		r := s.Labels["resource"]
		if sub := s.Labels["subresource"]; sub != "" {
			r += "/" + sub
		}
		return strings.ToLower(s.Labels["verb"]) + " " + r
	}
	tally := func(m metrics, sign float64) {
		for _, s := range m {
			if s.Name != "apiserver_request_total" {
				continue
			}
			switch s.Labels["verb"] {
			case "POST", "PUT", "PATCH", "DELETE", "APPLY":
				out.Writes[key(s)] += sign * s.Value / float64(n)
			case "GET", "LIST":
				out.Reads[key(s)] += sign * s.Value / float64(n)
			}
		}
	}
	tally(after, 1)
	tally(before, -1)
	secs, count := map[string]float64{}, map[string]float64{}
	for sign, m := range map[float64]metrics{1: after, -1: before} {
		for _, s := range m {
			switch s.Name {
			case "apiserver_request_duration_seconds_sum":
				secs[key(s)] += sign * s.Value
			case "apiserver_request_duration_seconds_count":
				count[key(s)] += sign * s.Value
			}
		}
	}
	out.ServerMs = map[string]float64{}
	for k, n := range count {
		if n > 0 {
			out.ServerMs[k] = 1000 * secs[k] / n
		}
	}
	for _, m := range []map[string]float64{out.Writes, out.Reads} {
		for k, v := range m {
			if math.Abs(v) < 0.02 { // leases, token usage, discovery: background noise
				delete(m, k)
			}
		}
	}
	for k := range out.ServerMs {
		if _, ok := out.Writes[k]; !ok {
			if _, ok := out.Reads[k]; !ok {
				delete(out.ServerMs, k)
			}
		}
	}
	for _, v := range out.Writes {
		out.WritesPerReq += v
	}
	for _, v := range out.Reads {
		out.ReadsPerReq += v
	}
	return out
}

// measured runs one phase, waits for the controllers to finish its work,
// and records the API calls it caused (the controller's included).
func (b *bench) measured(ctx context.Context, res *Results, op string, c, n int, fn func(context.Context, int) error) OpResult {
	r, _ := b.measuredRaw(ctx, res, op, c, n, fn)
	return r
}

func (b *bench) measuredRaw(ctx context.Context, res *Results, op string, c, n int, fn func(context.Context, int) error) (OpResult, []time.Duration) {
	before, _ := b.apiMetrics(ctx)
	r, lat := runConcurrent(ctx, op, n, c, fn)
	b.settle(ctx, 3*time.Minute)
	after, err := b.apiMetrics(ctx)
	if err == nil && before != nil {
		res.addAPICalls(apiDelta(before, after, op, c, n))
	}
	line := fmt.Sprintf("  %-28s c=%-3d n=%-5d %8.1f/s  p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms",
		op, c, r.Count, r.PerSecond, r.P50ms, r.P95ms, r.P99ms)
	if r.Errors > 0 {
		line += fmt.Sprintf("  ERRORS %d (first: %s)", r.Errors, r.FirstError)
	}
	progress("%s", line)
	return r, lat
}

// addAPICalls merges rounds of the same operation, weighted by requests.
func (r *Results) addAPICalls(a APICalls) {
	cur := r.apiCalls(a.Op, a.Concurrency)
	if cur == nil {
		r.APICalls = append(r.APICalls, a)
		return
	}
	n := float64(cur.Requests + a.Requests)
	mix := func(x, y map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range x {
			out[k] += v * float64(cur.Requests) / n
		}
		for k, v := range y {
			out[k] += v * float64(a.Requests) / n
		}
		return out
	}
	cur.Writes, cur.Reads, cur.ServerMs = mix(cur.Writes, a.Writes), mix(cur.Reads, a.Reads), mix(cur.ServerMs, a.ServerMs)
	cur.WritesPerReq = (cur.WritesPerReq*float64(cur.Requests) + a.WritesPerReq*float64(a.Requests)) / n
	cur.ReadsPerReq = (cur.ReadsPerReq*float64(cur.Requests) + a.ReadsPerReq*float64(a.Requests)) / n
	cur.Requests += a.Requests
}

// baselineUser is the object a SCIM POST /Users stores, built by hand:
// same spec, labels, finalizer and annotation, so the baseline pays for the
// same bytes and the same controller work.
func baselineUser(i int) *scimv1.ProvisionedUser {
	userName := fmt.Sprintf("base-%d@bench.test", i)
	return &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{
			Name: uuid.NewString(), Namespace: baselineNS,
			Labels:      map[string]string{scimv1.LabelActive: "true", scimv1.LabelToken: "bench"},
			Annotations: map[string]string{repository.AnnotationLastModified: time.Now().UTC().Format(time.RFC3339Nano)},
			Finalizers:  []string{scimv1.FinalizerHelpdesk},
		},
		Spec: scimv1.ProvisionedUserSpec{
			UserName: userName, ExternalID: fmt.Sprintf("ext-%d", i), Active: ptr.To(true),
			DisplayName: fmt.Sprintf("Bench User %d", i), Title: "Engineer",
			Name:       &scimv1.PersonName{GivenName: "Bench", FamilyName: fmt.Sprintf("User%d", i)},
			Emails:     []scimv1.MultiValuedAttribute{{Value: userName, Type: "work", Primary: true}},
			Enterprise: &scimv1.EnterpriseUser{Department: fmt.Sprintf("Dept %d", i%20), EmployeeNumber: fmt.Sprintf("%d", 100000+i)},
		},
	}
}

const createRounds = 3

func fmtRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.0f%%", r*100)
	}
	return strings.Join(parts, ", ")
}

// microbench is sections 1 and 2: at each level, the baseline and then
// the SCIM operations, back to back so that both see the same machine.
func (b *bench) microbench(ctx context.Context, res *Results) error {
	baseIdx := 0
	for _, c := range b.o.Levels {
		n := b.o.Ops
		ids := make([]string, n)
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("c%d-u%d@bench.test", c, i)
		}
		// The baseline and SCIM creates alternate in rounds, so that a
		// burst of load from elsewhere on the machine hits both alike.
		progress("level c=%d: %d baseline creates and %d SCIM POST /Users in %d alternating rounds", c, b.o.BaselineN, n, createRounds)
		var bRes, sRes []OpResult
		var bLat, sLat [][]time.Duration
		var perRound []float64
		baseNames := make([]string, b.o.BaselineN) // this level's baseline objects, for the cached updates
		for round := range createRounds {
			bFrom, bTo := b.o.BaselineN*round/createRounds, b.o.BaselineN*(round+1)/createRounds
			off := baseIdx + bFrom
			br, bl := b.measuredRaw(ctx, res, "baseline create", c, bTo-bFrom, func(ctx context.Context, i int) error {
				u := baselineUser(off + i)
				err := b.kube.Create(ctx, u)
				if err == nil {
					baseNames[bFrom+i] = u.Name
				}
				return err
			})
			sFrom, sTo := n*round/createRounds, n*(round+1)/createRounds
			sr, sl := b.measuredRaw(ctx, res, "POST /Users", c, sTo-sFrom, func(ctx context.Context, i int) error {
				id, _, err := b.demo.createUser(ctx, names[sFrom+i], sFrom+i)
				ids[sFrom+i] = id
				return err
			})
			bRes, bLat, sRes, sLat = append(bRes, br), append(bLat, bl), append(sRes, sr), append(sLat, sl)
			if br.PerSecond > 0 {
				perRound = append(perRound, sr.PerSecond/br.PerSecond)
			}
		}
		baseIdx += b.o.BaselineN
		r := combine(bRes, bLat)
		res.Baseline = append(res.Baseline, r)
		sc := combine(sRes, sLat)
		res.SCIM = append(res.SCIM, sc)
		if r.PerSecond > 0 {
			res.Ratios = append(res.Ratios, Ratio{Concurrency: c, SCIMPerSecond: sc.PerSecond,
				BaselinePerSecond: r.PerSecond, Ratio: sc.PerSecond / r.PerSecond, Rounds: perRound})
		}
		progress("level c=%d: SCIM create / baseline = %.0f%% (rounds %s)", c, 100*sc.PerSecond/r.PerSecond, fmtRatios(perRound))

		if err := b.updates(ctx, res, c, ids, names, baseNames, baseIdx-b.o.BaselineN); err != nil {
			return err
		}
		res.SCIM = append(res.SCIM, b.measured(ctx, res, "GET /Users?filter=userName eq", c, n, func(ctx context.Context, i int) error {
			got, err := b.demo.findUser(ctx, names[(i*7919)%n])
			if err == nil && got != 1 {
				err = fmt.Errorf("filter for %s found %d users", names[(i*7919)%n], got)
			}
			return err
		}))
		// Each group takes at most n/100 patches, so that every patch adds
		// 100 users it does not hold yet; with at least c groups, concurrent
		// patches seldom touch the same group.
		perGroup := n / 100
		groups := max(c, (b.o.GroupPatches+perGroup-1)/perGroup)
		gids := make([]string, groups)
		res.SCIM = append(res.SCIM, b.measured(ctx, res, "POST /Groups", c, groups, func(ctx context.Context, i int) error {
			id, err := b.demo.createGroup(ctx, fmt.Sprintf("c%d-g%d", c, i))
			gids[i] = id
			return err
		}))
		res.SCIM = append(res.SCIM, b.measured(ctx, res, "PATCH /Groups (+100 members)", c, b.o.GroupPatches, func(ctx context.Context, i int) error {
			g, slot := i%groups, i/groups
			if gids[g] == "" {
				return fmt.Errorf("group %d was not created", g)
			}
			members := make([]string, 0, 100)
			for k := range 100 {
				members = append(members, ids[(slot*100+k)%n])
			}
			return b.demo.addMembers(ctx, gids[g], members)
		}))
	}
	return nil
}

// Operation names of the update comparison (issue 20).
const (
	opCachedUpdate = "baseline cached update"
	opSCIMPatch    = "PATCH /Users (Entra multi-op)"
	opSCIMPut      = "PUT /Users (full replace)"
)

// updates compares SCIM user updates with what a client-go controller
// pays for one: read the object from an informer cache, change it, Update
// with the cached resourceVersion. At level c, the level's baseline
// objects (created above, straight through the API server) get one cached
// update each, the level's SCIM users one PATCH and then one PUT each; the
// three alternate in rounds like the creates, so that a burst of load from
// elsewhere on the machine hits all of them alike.
func (b *bench) updates(ctx context.Context, res *Results, c int, ids, names, baseNames []string, baseFirst int) error {
	uc, stop, err := b.baselineCache(ctx)
	if err != nil {
		return err
	}
	defer stop()
	n := len(ids)
	progress("level c=%d: %d baseline cached updates, %d SCIM PATCH and %d PUT /Users in %d alternating rounds", c, len(baseNames), n, n, createRounds)
	var bRes, pRes, uRes []OpResult
	var bLat, pLat, uLat [][]time.Duration
	var pRounds, uRounds []float64
	var conflicts atomic.Int64
	for round := range createRounds {
		bFrom, bTo := len(baseNames)*round/createRounds, len(baseNames)*(round+1)/createRounds
		br, bl := b.measuredRaw(ctx, res, opCachedUpdate, c, bTo-bFrom, func(ctx context.Context, i int) error {
			name := baseNames[bFrom+i]
			if name == "" {
				return fmt.Errorf("baseline object %d was not created", bFrom+i)
			}
			return b.cachedUpdate(ctx, uc, name, baseFirst+bFrom+i, &conflicts)
		})
		sFrom, sTo := n*round/createRounds, n*(round+1)/createRounds
		pr, pl := b.measuredRaw(ctx, res, opSCIMPatch, c, sTo-sFrom, func(ctx context.Context, i int) error {
			if ids[sFrom+i] == "" {
				return fmt.Errorf("user %d was not created", sFrom+i)
			}
			return b.demo.patchUserEntra(ctx, ids[sFrom+i], sFrom+i)
		})
		ur, ul := b.measuredRaw(ctx, res, opSCIMPut, c, sTo-sFrom, func(ctx context.Context, i int) error {
			if ids[sFrom+i] == "" {
				return fmt.Errorf("user %d was not created", sFrom+i)
			}
			return b.demo.replaceUser(ctx, ids[sFrom+i], names[sFrom+i], sFrom+i)
		})
		bRes, bLat = append(bRes, br), append(bLat, bl)
		pRes, pLat = append(pRes, pr), append(pLat, pl)
		uRes, uLat = append(uRes, ur), append(uLat, ul)
		if br.PerSecond > 0 {
			pRounds = append(pRounds, pr.PerSecond/br.PerSecond)
			uRounds = append(uRounds, ur.PerSecond/br.PerSecond)
		}
	}
	base := combine(bRes, bLat)
	res.Baseline = append(res.Baseline, base)
	pt, put := combine(pRes, pLat), combine(uRes, uLat)
	res.SCIM = append(res.SCIM, pt, put)
	if base.PerSecond <= 0 {
		return nil
	}
	for _, x := range []struct {
		r      OpResult
		rounds []float64
		label  string
	}{{pt, pRounds, "SCIM PATCH"}, {put, uRounds, "SCIM PUT"}} {
		ur := UpdateRatio{Op: x.r.Op, Concurrency: c, SCIMPerSecond: x.r.PerSecond, BaselinePerSecond: base.PerSecond,
			Ratio: x.r.PerSecond / base.PerSecond, Rounds: x.rounds, BaselineConflicts: int(conflicts.Load())}
		res.UpdateRatios = append(res.UpdateRatios, ur)
		progress("level c=%d: %s / cached-update baseline = %.0f%% (%.1f/s vs %.1f/s; rounds %s; baseline conflicts %d)",
			c, x.label, 100*ur.Ratio, ur.SCIMPerSecond, ur.BaselinePerSecond, fmtRatios(ur.Rounds), ur.BaselineConflicts)
	}
	return nil
}

// baselineCache starts a controller-runtime cache (one informer) on the
// ProvisionedUsers of the baseline namespace and waits until it has synced.
// stop ends its watch.
func (b *bench) baselineCache(ctx context.Context) (cache.Cache, func(), error) {
	uc, err := cache.New(b.cfg, cache.Options{
		Scheme:                      b.kube.Scheme(),
		DefaultNamespaces:           map[string]cache.Config{baselineNS: {}},
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, nil, err
	}
	if _, err := uc.GetInformer(ctx, &scimv1.ProvisionedUser{}); err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := uc.Start(cctx); err != nil && cctx.Err() == nil {
			progress("baseline cache stopped: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	if !uc.WaitForCacheSync(sctx) {
		stop()
		return nil, nil, fmt.Errorf("the baseline namespace's ProvisionedUser cache did not sync")
	}
	return uc, stop, nil
}

// cachedUpdate is the baseline's update: the object from the informer
// cache (a deep copy), the attributes the SCIM PATCH changes, and an
// Update with the cached resourceVersion. On a conflict it reads the
// object live and tries again, as a controller's retry.RetryOnConflict
// with a live read would; conflicts are counted.
func (b *bench) cachedUpdate(ctx context.Context, uc cache.Cache, name string, i int, conflicts *atomic.Int64) error {
	key := client.ObjectKey{Namespace: baselineNS, Name: name}
	u := &scimv1.ProvisionedUser{}
	if err := uc.Get(ctx, key, u); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		patchLikeSCIM(u, i)
		err := b.kube.Update(ctx, u)
		if err == nil || !apierrors.IsConflict(err) || attempt >= 10 {
			return err
		}
		conflicts.Add(1)
		u = &scimv1.ProvisionedUser{}
		if err := b.kube.Get(ctx, key, u); err != nil {
			return err
		}
	}
}

// patchLikeSCIM makes the change patchUserEntra asks for (active false, a
// work address's locality, displayName, name.givenName), with the label
// and last-modified annotation the SCIM server keeps in step with it.
func patchLikeSCIM(u *scimv1.ProvisionedUser, i int) {
	u.Spec.Active = ptr.To(false)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	u.Labels[scimv1.LabelActive] = "false"
	if u.Annotations == nil {
		u.Annotations = map[string]string{}
	}
	u.Annotations[repository.AnnotationLastModified] = time.Now().UTC().Format(time.RFC3339Nano)
	city := fmt.Sprintf("City %d", i)
	found := false
	for k := range u.Spec.Addresses {
		if u.Spec.Addresses[k].Type == "work" {
			u.Spec.Addresses[k].Locality, found = city, true
		}
	}
	if !found {
		u.Spec.Addresses = append(u.Spec.Addresses, scimv1.Address{Type: "work", Locality: city})
	}
	u.Spec.DisplayName = fmt.Sprintf("Patched User %d", i)
	if u.Spec.Name == nil {
		u.Spec.Name = &scimv1.PersonName{}
	}
	u.Spec.Name.GivenName = fmt.Sprintf("Given%d", i)
}

// objectCounts lists each kind with Limit 1: the API server reports how
// many items remain, so nothing large is transferred.
func (b *bench) objectCounts(ctx context.Context, namespace string) map[string]int64 {
	out := map[string]int64{}
	lists := map[string]client.ObjectList{
		"ProvisionedUser":  &scimv1.ProvisionedUserList{},
		"ProvisionedGroup": &scimv1.ProvisionedGroupList{},
		"GroupMembership":  &scimv1.GroupMembershipList{},
		"NameClaim":        &scimv1.NameClaimList{},
	}
	for kind, l := range lists {
		opts := []client.ListOption{client.Limit(1)}
		if namespace != "" {
			opts = append(opts, client.InNamespace(namespace))
		}
		if err := b.kube.List(ctx, l, opts...); err != nil {
			out[kind] = -1
			continue
		}
		n := int64(meta.LenList(l))
		if rem := l.GetRemainingItemCount(); rem != nil {
			n += *rem
		}
		out[kind] = n
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
