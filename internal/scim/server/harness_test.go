package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// replica is one running operator with its SCIM server.
type replica struct {
	op  *operator.Operator
	url string // SCIM base URL
	log *logSink
}

type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// startReplica starts an operator whose cache sees the given namespaces and
// whose SCIM server listens on a free loopback port.
func startReplica(t *testing.T, namespaces ...string) *replica {
	t.Helper()
	return startReplicaWith(t, server.Config{}, namespaces...)
}

// startReplicaWith is startReplica with SCIM server settings.
func startReplicaWith(t *testing.T, cfg server.Config, namespaces ...string) *replica {
	t.Helper()
	return startReplicaOpts(t, cfg, nil, namespaces...)
}

// startReplicaOpts is startReplicaWith with a change to the operator's
// options.
func startReplicaOpts(t *testing.T, cfg server.Config, change func(*operator.Options), namespaces ...string) *replica {
	t.Helper()
	return startReplicaHooks(t, cfg, change, nil, namespaces...)
}

// startReplicaHooks is startReplicaOpts with built, when set, called on the
// operator after it is built and before its manager starts.
func startReplicaHooks(t *testing.T, cfg server.Config, change func(*operator.Options), built func(*operator.Operator),
	namespaces ...string) *replica {
	t.Helper()
	e := testenv.Require(t, env)
	sink := &logSink{}
	log := funcr.New(sink.write, funcr.Options{Verbosity: 1})
	addrc := make(chan string, 1)
	opts := operator.Options{
		Scheme: e.Scheme, Log: log,
		SCIMAddr: "127.0.0.1:0", SCIMBound: func(a string) { addrc <- a },
		Namespaces: namespaces, SkipControllerNameValidation: true,
		PublicURL: "https://scim.example.test/scim/v2",
		SCIM:      cfg,
		// Short, so that tests see the activity events soon.
		ActivityInterval: 200 * time.Millisecond,
	}
	if change != nil {
		change(&opts)
	}
	op, err := operator.New(e.Config, opts)
	if err != nil {
		t.Fatalf("building the operator: %v", err)
	}
	if built != nil {
		built(op)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with: %v", err)
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", sink.String())
		}
	})
	select {
	case addr := <-addrc:
		return &replica{op: op, url: "http://" + addr + "/scim/v2", log: sink}
	case err := <-done:
		t.Fatalf("manager stopped before serving: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("SCIM server did not start within 60s")
	}
	return nil
}

// issueToken creates a ScimToken and returns its bearer token once the
// given replicas accept it.
func issueToken(t *testing.T, ns, name string, replicas ...*replica) string {
	t.Helper()
	ctx := context.Background()
	tk := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: scimv1.ScimTokenSpec{Description: "test"}}
	if err := env.Client.Create(ctx, tk); err != nil {
		t.Fatalf("creating ScimToken: %v", err)
	}
	var token string
	eventually(t, 30*time.Second, func() error {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-token"}, &s); err != nil {
			return err
		}
		token = string(s.Data["token"])
		if token == "" {
			return fmt.Errorf("secret has no token yet")
		}
		return nil
	})
	for _, r := range replicas {
		eventually(t, 30*time.Second, func() error {
			res := r.do(t, token, "GET", "/ServiceProviderConfig", nil)
			if res.status != 200 {
				return fmt.Errorf("token not accepted yet: %d", res.status)
			}
			return nil
		})
	}
	return token
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, f)
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.raw) }

// str reads a dotted path from the body ("meta.version").
func (r response) str(path string) string {
	var cur any = r.body
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func (r response) total() int {
	f, _ := r.body["totalResults"].(float64)
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

// do sends one SCIM request; body may be a string (sent verbatim) or any
// value (JSON-encoded).
func (r *replica) do(t *testing.T, token, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		t.Fatal(err)
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
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON (%v): %s", method, path, err, raw)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
			t.Errorf("%s %s: Content-Type %q, want application/scim+json", method, path, ct)
		}
	}
	return out
}

// expect fails the test unless the status matches; for errors it also
// checks the RFC 7644 §3.12 body and the scimType.
func expect(t *testing.T, res response, status int, scimType ...string) response {
	t.Helper()
	if res.status != status {
		t.Fatalf("want status %d, got %s", status, res)
	}
	if status >= 400 {
		if res.str("status") != fmt.Sprint(status) {
			t.Fatalf("error body must carry status %q as a string: %s", fmt.Sprint(status), res.raw)
		}
		if res.str("detail") == "" {
			t.Fatalf("error body must carry a detail: %s", res.raw)
		}
		if len(scimType) > 0 && res.str("scimType") != scimType[0] {
			t.Fatalf("want scimType %q, got %s", scimType[0], res.raw)
		}
	}
	return res
}
