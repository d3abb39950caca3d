package handlertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/scim/server/memstore"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// Both stores keep the contract the handlers are written against.
var (
	_ server.Store = (*repository.Repository)(nil)
	_ server.Store = (*memstore.Store)(nil)
)

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
	tokenA  = "token-of-tenant-a"
	tokenB  = "token-of-tenant-b"

	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// fixedAuth accepts two fixed bearer tokens, one per tenant.
type fixedAuth map[string]tokens.Principal

func (a fixedAuth) Authenticate(_ context.Context, authorization string) (tokens.Principal, error) {
	if authorization == "" {
		return tokens.Principal{}, tokens.ErrMissing
	}
	p, ok := a[strings.TrimPrefix(authorization, "Bearer ")]
	if !ok {
		return tokens.Principal{}, tokens.ErrUnknown
	}
	return p, nil
}

// stepClock advances one second per reading, so that resources list in
// the order they were created (creation times are whole seconds).
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// harness is one SCIM server over an in-memory store.
type harness struct {
	t     *testing.T
	store *memstore.Store
	url   string // the SCIM base URL
}

// start serves the SCIM handler with cfg over a fresh memstore.
func start(t *testing.T, cfg server.Config) *harness {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with the store wrapped (nil: as is), to inject
// failures.
func startWith(t *testing.T, cfg server.Config, wrap func(server.Store) server.Store) *harness {
	t.Helper()
	clock := &stepClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := memstore.New(memstore.Options{Now: clock.Now})
	var repo server.Store = store
	if wrap != nil {
		repo = wrap(store)
	}
	answers, err := server.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	cfg.PublicURL = "https://scim.example.test/scim/v2"
	srv := server.New(cfg, server.Options{
		Auth: fixedAuth{
			tokenA: {Namespace: tenantA, TokenName: "entra", Fingerprint: "fp-a"},
			tokenB: {Namespace: tenantB, TokenName: "okta", Fingerprint: "fp-b"},
		},
		Repo: repo, Answers: answers, Log: logr.Discard(),
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &harness{t: t, store: store, url: ts.URL + "/scim/v2"}
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.raw) }

// get reads a dotted path of the body ("meta.version"); nil when absent.
func (r response) get(path string) any {
	var cur any = r.body
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (r response) str(path string) string {
	s, _ := r.get(path).(string)
	return s
}

func (r response) num(path string) int {
	f, _ := r.get(path).(float64)
	return int(f)
}

func (r response) resources() []map[string]any {
	list, _ := r.body["Resources"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		out = append(out, x.(map[string]any))
	}
	return out
}

// column is one string attribute of every resource of a list.
func (r response) column(attr string) []string {
	out := []string{}
	for _, res := range r.resources() {
		s, _ := res[attr].(string)
		out = append(out, s)
	}
	return out
}

// do sends a request as tenant A. body is sent verbatim when a string,
// JSON-encoded otherwise; headers are name, value pairs.
func (h *harness) do(method, path string, body any, headers ...string) response {
	h.t.Helper()
	return h.doAs(tokenA, method, path, body, headers...)
}

func (h *harness) doAs(token, method, path string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			h.t.Fatalf("%s %s: the answer is not a JSON object (%v): %s", method, path, err, raw)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, server.ContentType) {
			h.t.Errorf("%s %s: Content-Type %q, want %s", method, path, ct, server.ContentType)
		}
	}
	return out
}

// must fails the test unless the answer has status.
func must(t *testing.T, res response, status int) response {
	t.Helper()
	if res.status != status {
		t.Fatalf("want status %d, got %s", status, res)
	}
	return res
}

// mustError fails the test unless the answer is an RFC 7644 §3.12 error
// with status and scimType ("" for none).
func mustError(t *testing.T, res response, status int, scimType string) {
	t.Helper()
	if res.status != status {
		t.Fatalf("want status %d, got %s", status, res)
	}
	schemas, _ := res.body["schemas"].([]any)
	if !slices.Contains(schemas, any(scimerr.ErrorURN)) {
		t.Errorf("error body without the schema %s: %s", scimerr.ErrorURN, res.raw)
	}
	if res.str("status") != fmt.Sprint(status) {
		t.Errorf("error body must carry status %q as a string: %s", fmt.Sprint(status), res.raw)
	}
	if res.str("detail") == "" {
		t.Errorf("error body without a detail: %s", res.raw)
	}
	if got := res.str("scimType"); got != scimType {
		t.Errorf("want scimType %q, got %q: %s", scimType, got, res.raw)
	}
}

// createUser creates a user and returns its id.
func (h *harness) createUser(doc map[string]any) string {
	h.t.Helper()
	if _, ok := doc["schemas"]; !ok {
		doc["schemas"] = []string{"urn:ietf:params:scim:schemas:core:2.0:User"}
	}
	res := must(h.t, h.do("POST", "/Users", doc), http.StatusCreated)
	return res.str("id")
}

// user creates a user with just a userName.
func (h *harness) user(userName string) string {
	h.t.Helper()
	return h.createUser(map[string]any{"userName": userName})
}

// group creates a group with the given members and returns its id.
func (h *harness) group(displayName string, members ...string) string {
	h.t.Helper()
	doc := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": displayName}
	if len(members) > 0 {
		list := make([]map[string]any, len(members))
		for i, m := range members {
			list[i] = map[string]any{"value": m}
		}
		doc["members"] = list
	}
	return must(h.t, h.do("POST", "/Groups", doc), http.StatusCreated).str("id")
}

// members reads a group's member ids with a GET.
func (h *harness) members(id string) []string {
	h.t.Helper()
	res := must(h.t, h.do("GET", "/Groups/"+id, nil), http.StatusOK)
	out := []string{}
	list, _ := res.body["members"].([]any)
	for _, m := range list {
		v, _ := m.(map[string]any)["value"].(string)
		out = append(out, v)
	}
	return out
}

// patchOp is a PatchOp body with the given operations.
func patchOp(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

func op(kind, path string, value any) map[string]any {
	m := map[string]any{"op": kind}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// query renders a list request's query string.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}
