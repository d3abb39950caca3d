package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scim-operator/scim-operator/internal/namekey"
)

const never = int64(math.MaxInt64)

// request is one SCIM call.
type request struct {
	method, path string
	body         any // nil, a string sent verbatim, or a value sent as JSON
	ifMatch      string
}

// response is its answer; err is set when there was none.
type response struct {
	status int
	etag   string
	raw    []byte
	doc    map[string]any
	err    error
}

func (r response) str(key string) string {
	s, _ := r.doc[key].(string)
	return s
}

// do sends req to r (already counted by acquire).
func (c *cluster) do(r *replica, req request) response {
	var rd io.Reader
	switch b := req.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return response{err: err}
		}
		rd = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(context.Background(), req.method, r.base+req.path, rd)
	if err != nil {
		return response{err: err}
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		hr.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	if req.ifMatch != "" {
		hr.Header.Set("If-Match", req.ifMatch)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return response{err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{status: res.StatusCode, err: err}
	}
	out := response{status: res.StatusCode, etag: res.Header.Get("ETag"), raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.doc)
	}
	return out
}

// event is one line of the history: a request and its answer, or a fault
// injected. s and e are ticks of the model's clock taken before the
// request was sent and after its answer arrived.
type event struct {
	n       int
	worker  int
	rep     *replica
	replica string
	s, e    int64
	what    string // the model's reading: "create user #3 w1-sam2@example.test"
	req     request
	res     response
	refs    []string // resource ids and name keys the event concerns
}

func (ev *event) String() string {
	if ev.req.method == "" {
		return fmt.Sprintf("#%d [%d] -- %s", ev.n, ev.s, ev.what)
	}
	body := ""
	switch b := ev.req.body.(type) {
	case nil:
	case string:
		body = " " + b
	default:
		raw, _ := json.Marshal(b)
		body = " " + string(raw)
	}
	ifm := ""
	if ev.req.ifMatch != "" {
		ifm = " If-Match:" + ev.req.ifMatch
	}
	answer := fmt.Sprintf("%d", ev.res.status)
	if ev.res.err != nil {
		answer = "no answer: " + ev.res.err.Error()
	} else if ev.res.status >= 300 || ev.res.status == 0 {
		answer += " " + strings.TrimSpace(string(ev.res.raw))
	}
	return fmt.Sprintf("#%d [%d-%d] w%d %s %s | %s %s%s%s -> %s", ev.n, ev.s, ev.e, ev.worker, ev.replica, ascii(ev.what),
		ev.req.method, ascii(ev.req.path), ifm, shorten(ascii(runs(body)), 400), shorten(ascii(answer), 300))
}

// hold is the model's knowledge of one resource having one unique name
// (under namekey.Key). Between pStart and pEnd the resource possibly held
// the name: from the start of the request that may have given it to the
// end of the request that took it away. Between dStart and dEnd it
// certainly did: from the 2xx that acknowledged it to the start of the
// request that took it away. never stands for "not (yet)".
type hold struct {
	key   string
	owner string // resource id, or "create#N" while a create is in flight
	name  string

	pStart, dStart, dEnd, pEnd int64
}

// mUser is what the client was told about one user.
type mUser struct {
	id       string
	worker   int
	nameID   ident // what userName is a spelling of
	userName string
	active   bool
	deleted  bool
	// tainted: a request on it got no clear answer (5xx, no answer, a 2xx
	// to a mistake), so the model no longer knows its state.
	tainted bool
	hold    *hold
	etag    string // its current version, as the last answer gave it
	stale   string // a version it had before, if any
	last    *replica
}

// mGroup is what the client was told about one group.
type mGroup struct {
	id          string
	worker      int
	nameID      ident
	displayName string
	members     map[string]bool
	created     []string // the members of the acknowledged create
	deleted     bool
	tainted     bool
	hold        *hold
	last        *replica // that made its last write
}

// failure is one broken invariant or model expectation.
type failure struct {
	inv string
	msg string
}

// model records every request and answer, what the answers mean, and the
// failures; it is shared by the workers.
type model struct {
	t    *testing.T
	seed uint64
	db   string

	clock atomic.Int64
	ops   atomic.Int64

	mu       sync.Mutex
	history  []*event
	holds    map[string][]*hold
	users    map[string]*mUser
	groups   map[string]*mGroup
	maybe    map[string]bool // name keys of creates without a clear answer
	codes    map[string]int
	failures []failure
	reported map[string]bool
}

func newModel(t *testing.T, seed uint64, db string) *model {
	return &model{t: t, seed: seed, db: db, holds: map[string][]*hold{}, users: map[string]*mUser{},
		groups: map[string]*mGroup{}, maybe: map[string]bool{}, codes: map[string]int{}, reported: map[string]bool{}}
}

func (m *model) tick() int64 { return m.clock.Add(1) }

// send makes one request and records it. The caller gives the replica
// (counted) or nil for a random serving one.
func (m *model) send(c *cluster, w *worker, r *replica, what string, req request, refs ...string) *event {
	if r == nil {
		r = c.acquire(w.rng)
	}
	ev := &event{worker: w.id, rep: r, replica: r.name, what: what, req: req, refs: refs}
	ev.s = m.tick()
	ev.res = c.do(r, req)
	ev.e = m.tick()
	c.release(r)
	m.mu.Lock()
	ev.n = len(m.history)
	m.history = append(m.history, ev)
	key := fmt.Sprintf("%s %d", req.method, ev.res.status)
	if ev.res.err != nil {
		key = req.method + " no answer"
	}
	m.codes[key]++
	m.mu.Unlock()
	if ev.res.err != nil || ev.res.status >= 500 {
		m.fail("I4", ev.refs, "%s %s answered %s: no request may get a 5xx or no answer while the API server is up (this one: %s)",
			req.method, ascii(req.path), statusText(ev.res), ascii(what))
	}
	return ev
}

func statusText(r response) string {
	if r.err != nil {
		return "nothing (" + r.err.Error() + ")"
	}
	return fmt.Sprintf("%d %s", r.status, shorten(strings.TrimSpace(string(r.raw)), 300))
}

// addRefs adds what an event concerns once the answer told it (the id of
// a created resource).
func (m *model) addRefs(ev *event, refs ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev.refs = append(ev.refs, refs...)
}

// refsOf is a copy of what an event concerns, plus extra.
func (m *model) refsOf(ev *event, extra ...string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append(slices.Clone(ev.refs), extra...)
}

// note records a fault injection or phase change in the history.
func (m *model) note(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.history = append(m.history, &event{n: len(m.history), s: m.tick(), what: fmt.Sprintf(format, args...)})
}

// fail records a failure and reports it with the seed and the history of
// the resources and names involved.
func (m *model) fail(inv string, refs []string, format string, args ...any) {
	m.failOnce("", inv, refs, format, args...)
}

// failOnce is fail, reported once per dedup key (default: the message).
func (m *model) failOnce(dedup, inv string, refs []string, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.mu.Lock()
	if dedup == "" {
		dedup = inv + "|" + msg
	}
	if m.reported[dedup] {
		m.mu.Unlock()
		return
	}
	m.reported[dedup] = true
	m.failures = append(m.failures, failure{inv: inv, msg: msg})
	n := len(m.failures)
	hist := m.historyOf(refs, 30)
	m.mu.Unlock()
	if n > 60 {
		return // counted; the summary says how many
	}
	m.t.Errorf("[%s] %s\n  database %s; rerun with SCIM_MODEL_SEED=%d\n  history of %s:\n%s",
		inv, msg, m.db, m.seed, ascii(strings.Join(refs, ", ")), hist)
}

// historyOf lists the last n events that concern any of refs (m.mu held).
func (m *model) historyOf(refs []string, n int) string {
	want := map[string]bool{}
	for _, r := range refs {
		want[r] = true
	}
	var lines []string
	for _, ev := range m.history {
		hit := ev.req.method == "" // faults and phases always
		for _, r := range ev.refs {
			hit = hit || want[r]
		}
		if hit {
			lines = append(lines, "    "+ev.String())
		}
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("    … %d earlier events", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// writeHistory saves the whole history next to the test's temp files and
// says where, for a failed run.
func (m *model) writeHistory() {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir := os.Getenv("SCIM_MODEL_HISTORY_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("scim-model-%d-%s.log", m.seed, m.db))
	var b strings.Builder
	for _, ev := range m.history {
		b.WriteString(ev.String())
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		m.t.Logf("writing the history: %v", err)
		return
	}
	m.t.Logf("full history (%d events): %s", len(m.history), path)
}

// summary counts answers and failures per invariant.
func (m *model) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.codes))
	for k := range m.codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m.codes[k]))
	}
	per := map[string]int{}
	for _, f := range m.failures {
		per[f.inv]++
	}
	invs := make([]string, 0, len(per))
	for k, n := range per {
		invs = append(invs, fmt.Sprintf("%s:%d", k, n))
	}
	sort.Strings(invs)
	live, inactive, deleted, groups := 0, 0, 0, 0
	for _, u := range m.users {
		switch {
		case u.deleted:
			deleted++
		case !u.active:
			inactive++
		default:
			live++
		}
	}
	for _, g := range m.groups {
		if !g.deleted {
			groups++
		}
	}
	return fmt.Sprintf("%d requests [%s]; users active %d, inactive %d, deleted %d; live groups %d; failures %d %v",
		len(m.history), strings.Join(parts, " "), live, inactive, deleted, groups, len(m.failures), invs)
}

// Unique names.
//
// I2 is checked as requests complete: two different resources must never
// both certainly hold one name key at the same moment (their [dStart,
// dEnd) intervals must not overlap), and a 409 uniqueness is justified
// only when another resource possibly held the key at some moment of the
// request ([pStart, pEnd) overlaps the request).

func userKey(name string) string  { return "user:" + namekey.Key(name) }
func groupKey(name string) string { return "group:" + namekey.Key(name) }

// claim starts a request that may give key to owner.
func (m *model) claim(key, owner, name string, s int64) *hold {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := &hold{key: key, owner: owner, name: name, pStart: s, dStart: never, dEnd: never, pEnd: never}
	m.holds[key] = append(m.holds[key], h)
	return h
}

// claimed: the request got a 2xx at e; owner is now the resource's id.
func (m *model) claimed(h *hold, owner string, e int64) {
	m.mu.Lock()
	h.owner, h.dStart = owner, e
	m.mu.Unlock()
	m.overlaps(h)
}

// claimFailed: the request got a 4xx: it never held the name.
func (m *model) claimFailed(h *hold, e int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.pEnd = e
}

// claimUnknown: no clear answer: the name may be held from now on (pEnd
// stays never), and an object of that name found at the end is no surprise.
func (m *model) claimUnknown(h *hold) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maybe[h.key] = true
}

// releasing: a request that takes the name away starts at s.
func (m *model) releasing(h *hold, s int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.dEnd = s
}

// released: it got a 2xx at e.
func (m *model) released(h *hold, e int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.pEnd = e
}

// releaseFailed: it got a 4xx, so the name was held all along.
func (m *model) releaseFailed(h *hold) {
	m.mu.Lock()
	h.dEnd = never
	m.mu.Unlock()
	m.overlaps(h)
}

// overlaps reports any other resource that certainly held h's key while
// h's owner certainly did too.
func (m *model) overlaps(h *hold) {
	m.mu.Lock()
	var clash []*hold
	for _, o := range m.holds[h.key] {
		if o == h || o.owner == h.owner || o.dStart == never || h.dStart == never {
			continue
		}
		if max(o.dStart, h.dStart) < min(o.dEnd, h.dEnd) {
			clash = append(clash, o)
		}
	}
	m.mu.Unlock()
	for _, o := range clash {
		kind := strings.SplitN(h.key, ":", 2)[0]
		m.failOnce(pairKey(h.key, o.owner, h.owner), "I2", []string{o.owner, h.owner, h.key},
			"%ss %s (%+q, acknowledged at %d) and %s (%+q, acknowledged at %d) both hold the name key %+q at once",
			kind, o.owner, o.name, o.dStart, h.owner, h.name, h.dStart, strings.SplitN(h.key, ":", 2)[1])
	}
}

// pairKey identifies two resources clashing on a name key, so that the
// clash is reported once, however often it recurs.
func pairKey(key string, ids ...string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return "I2|" + key + "|" + strings.Join(ids, "|")
}

// justified reports whether a 409 on key during [s, e] for self is
// explained by another resource possibly holding it (a resource whose
// create got no clear answer counts as holding forever).
func (m *model) justified(key string, self *hold, s, e int64) (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.holds[key] {
		if o == self || (self != nil && o.owner == self.owner) {
			continue
		}
		if o.pStart < e && o.pEnd > s {
			return true, o.owner
		}
	}
	return false, ""
}
