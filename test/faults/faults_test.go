// Package faults provisions through the real operator while parts of the
// system fail: the Kubernetes API server, the helpdesk database, the
// leader, the operator itself. Each test ends by comparing everything the
// client was told succeeded with what the API server and the database hold.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// stack is one operator replica serving SCIM.
type stack struct {
	op    *operator.Operator
	base  string
	stop  func()
	store helpdesk.Store
}

type stackOptions struct {
	config  *rest.Config
	store   helpdesk.Store
	ns      []string
	leader  bool
	leaseNS string
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	addr := make(chan string, 1)
	op, err := operator.New(o.config, operator.Options{
		Scheme: env.Scheme, Log: zap.New(zap.UseDevMode(false), zap.Level(zapcore.WarnLevel)),
		SCIMAddr: "127.0.0.1:0", SCIMBound: func(a string) { addr <- a }, SkipControllerNameValidation: true,
		Namespaces: o.ns, Helpdesk: o.store, ResyncPeriod: time.Minute,
		LeaderElection: o.leader, LeaderElectionNamespace: o.leaseNS, LeaderElectionID: "faults-" + o.leaseNS,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	var once sync.Once
	s := &stack{op: op, store: o.store}
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(s.stop)
	select {
	case a := <-addr:
		s.base = "http://" + a + "/scim/v2"
	case err := <-done:
		t.Fatalf("operator stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("SCIM server did not start")
	}
	return s
}

func sqliteStore(t *testing.T) helpdesk.Store {
	t.Helper()
	st, err := helpdesk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "helpdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// issueToken creates a ScimToken and waits until base accepts it.
func issueToken(t *testing.T, ns string, bases ...string) string {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "idp", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	var token string
	eventually(t, time.Minute, func() error {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "idp-token"}, &s); err != nil {
			return err
		}
		token = string(s.Data["token"])
		for _, b := range bases {
			if r := send(b, token, "GET", "/ServiceProviderConfig", ""); r.status != 200 {
				return fmt.Errorf("token not accepted yet by %s: %d", b, r.status)
			}
		}
		return nil
	})
	return token
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, f)
}

type answer struct {
	status     int
	body       string
	retryAfter string
	err        error
}

func send(base, token, method, path, body string) answer {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: string(b), retryAfter: res.Header.Get("Retry-After")}
}

// ledger records what the client was told, per userName.
type ledger struct {
	mu      sync.Mutex
	created map[string]string // userName -> id from a 201
	codes   map[int]int
}

func newLedger() *ledger { return &ledger{created: map[string]string{}, codes: map[int]int{}} }

// create POSTs one user and records the answer; it fails the test on any
// answer a fault must never produce.
func (l *ledger) create(t *testing.T, base, token, userName string) answer {
	a := send(base, token, "POST", "/Users", `{"userName":"`+userName+`","active":true}`)
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.err != nil {
		l.codes[-1]++
		return a
	}
	l.codes[a.status]++
	switch a.status {
	case 201:
		var doc map[string]any
		_ = json.Unmarshal([]byte(a.body), &doc)
		l.created[userName], _ = doc["id"].(string)
	case 409:
	case 503:
		if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
			t.Errorf("503 without Retry-After seconds: %q", a.retryAfter)
		}
		if !strings.Contains(a.body, `"status":"503"`) {
			t.Errorf("503 without a SCIM error body: %s", a.body)
		}
	default:
		t.Errorf("POST %s: unexpected %d %s", userName, a.status, a.body)
	}
	return a
}

// settle retries every user that did not get a 201 or 409 until each has
// one, as an identity provider does in its next cycle.
func (l *ledger) settle(t *testing.T, base, token string, names []string) {
	t.Helper()
	eventually(t, 2*time.Minute, func() error {
		var missing []string
		for _, n := range names {
			l.mu.Lock()
			_, ok := l.created[n]
			l.mu.Unlock()
			if ok {
				continue
			}
			a := l.create(t, base, token, n)
			if a.status == 409 {
				// Created by an earlier attempt whose answer was lost, or
				// still held by a claim in progress: read it back.
				r := send(base, token, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+n+`"`), "")
				var list struct {
					Resources []struct{ ID string } `json:"Resources"`
				}
				_ = json.Unmarshal([]byte(r.body), &list)
				if len(list.Resources) == 1 {
					l.mu.Lock()
					l.created[n] = list.Resources[0].ID
					l.mu.Unlock()
					continue
				}
			}
			if a.status != 201 {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d users not created yet (e.g. %s)", len(missing), missing[0])
		}
		return nil
	})
}

// verify compares the ledger with the API server and the database:
// exactly one user per name, with the id the client was given, and one
// database row each.
func (l *ledger) verify(t *testing.T, ns string, store helpdesk.Store, names []string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 2*time.Minute, func() error {
		var list scimv1.ProvisionedUserList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		byName := map[string][]string{}
		for _, u := range list.Items {
			if u.DeletionTimestamp.IsZero() {
				byName[u.Spec.UserName] = append(byName[u.Spec.UserName], u.Name)
			}
		}
		for _, n := range names {
			ids := byName[n]
			if len(ids) != 1 {
				return fmt.Errorf("user %s: %d objects %v (want exactly 1)", n, len(ids), ids)
			}
			if want := l.created[n]; ids[0] != want {
				return fmt.Errorf("user %s: object %s, but the client was told %s", n, ids[0], want)
			}
			row, err := store.GetUser(ctx, ns, ids[0])
			if err != nil {
				return fmt.Errorf("user %s not in the database yet: %w", n, err)
			}
			if row.UserName != n {
				return fmt.Errorf("row of %s holds %q", n, row.UserName)
			}
		}
		if len(byName) != len(names) {
			return fmt.Errorf("%d distinct users in the API server, want %d", len(byName), len(names))
		}
		return nil
	})
}
