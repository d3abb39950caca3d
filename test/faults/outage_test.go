package faults

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// burst sends new users from workers, one every pace per worker, for
// duration, calling during(elapsed) between requests; it returns the names
// sent.
func burst(t *testing.T, l *ledger, bases []string, token, prefix string, workers int, pace, duration time.Duration) []string {
	var (
		mu    sync.Mutex
		names []string
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	end := time.Now().Add(duration)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				n := fmt.Sprintf("%s%04d@example.test", prefix, next.Add(1))
				mu.Lock()
				names = append(names, n)
				mu.Unlock()
				l.create(t, bases[(w+int(next.Load()))%len(bases)], token, n)
				time.Sleep(pace)
			}
		}()
	}
	wg.Wait()
	return names
}

// TestAPIServerOutage cuts the operator off the Kubernetes API server for
// 10 s during a provisioning burst. Meanwhile SCIM answers 503 with
// Retry-After (never a 500, never a 201 for a write that did not happen);
// afterwards the client's retries land, and every user it was told exists
// exists exactly once, in the API server and in the database.
func TestAPIServerOutage(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	host, err := url.Parse(e.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, host.Host)
	cfg := rest.CopyConfig(e.Config)
	cfg.Host = "https://" + proxy.Addr()
	store := sqliteStore(t)
	s := startStack(t, stackOptions{config: cfg, store: store, ns: []string{ns}})
	token := issueToken(t, ns, s.base)

	l := newLedger()
	go func() {
		time.Sleep(4 * time.Second)
		proxy.Down()
		time.Sleep(10 * time.Second)
		proxy.Up()
	}()
	names := burst(t, l, []string{s.base}, token, "api", 3, 150*time.Millisecond, 18*time.Second)
	t.Logf("burst of %d users; answers %v", len(names), l.codes)
	if l.codes[503] == 0 {
		t.Fatalf("no 503 during a 10 s API server outage: answers %v", l.codes)
	}
	l.settle(t, s.base, token, names)
	l.verify(t, ns, store, names)
}

// TestDatabaseOutageDuringBurst stops the helpdesk database (PostgreSQL,
// cut behind a proxy) in the middle of a burst: SCIM keeps answering 201,
// since requests never touch the database, and once the database is back
// every user reaches it exactly once.
func TestDatabaseOutageDuringBurst(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	dbURL := testenv.PostgresDatabase(t)
	proxy := testenv.NewFaultProxy(t, dbURL.Host)
	viaProxy := *dbURL
	viaProxy.Host = proxy.Addr()
	viaProxy.RawQuery = "sslmode=disable&connect_timeout=10"
	store, err := helpdesk.Open(context.Background(), viaProxy.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := startStack(t, stackOptions{config: e.Config, store: store, ns: []string{ns}})
	token := issueToken(t, ns, s.base)

	l := newLedger()
	go func() {
		time.Sleep(3 * time.Second)
		proxy.Down()
		time.Sleep(8 * time.Second)
		proxy.Up()
	}()
	names := burst(t, l, []string{s.base}, token, "db", 3, 100*time.Millisecond, 14*time.Second)
	t.Logf("burst of %d users; answers %v", len(names), l.codes)
	if l.codes[201] != len(names) {
		t.Fatalf("SCIM must not depend on the database: answers %v for %d users", l.codes, len(names))
	}
	l.verify(t, ns, store, names)
}

// TestLeaderKilledMidBurst runs two replicas with leader election; both
// serve SCIM, the leader alone syncs the database. The leader is stopped in
// the middle of a burst; the other takes over the sync, and nothing is lost.
func TestLeaderKilledMidBurst(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	store := sqliteStore(t)
	a := startStack(t, stackOptions{config: e.Config, store: store, ns: []string{ns}, leader: true, leaseNS: ns})
	b := startStack(t, stackOptions{config: e.Config, store: store, ns: []string{ns}, leader: true, leaseNS: ns})
	token := issueToken(t, ns, a.base, b.base)
	leader, follower := a, b
	select {
	case <-a.op.Manager.Elected():
	case <-b.op.Manager.Elected():
		leader, follower = b, a
	case <-time.After(time.Minute):
		t.Fatal("no replica became leader")
	}

	l := newLedger()
	var names []string
	names = append(names, burst(t, l, []string{leader.base, follower.base}, token, "before", 2, 50*time.Millisecond, 3*time.Second)...)
	leader.stop()
	names = append(names, burst(t, l, []string{follower.base}, token, "after", 2, 50*time.Millisecond, 3*time.Second)...)
	t.Logf("%d users; answers %v", len(names), l.codes)
	select {
	case <-follower.op.Manager.Elected():
	case <-time.After(time.Minute):
		t.Fatal("the surviving replica did not take over leadership")
	}
	l.settle(t, follower.base, token, names)
	l.verify(t, ns, store, names)
}

// TestRestartWithBacklog starts the operator with 2,000 users waiting to be
// synced (created while it was down); all reach the database.
func TestRestartWithBacklog(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	const n = 2000
	names := make([]string, n)
	l := newLedger()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		names[i] = fmt.Sprintf("backlog%04d@example.test", i)
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		l.created[names[i]] = id
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- env.Client.Create(context.Background(), &scimv1.ProvisionedUser{
				ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: ns, Finalizers: []string{scimv1.FinalizerHelpdesk}},
				Spec:       scimv1.ProvisionedUserSpec{UserName: names[i]},
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	store := sqliteStore(t)
	start := time.Now()
	startStack(t, stackOptions{config: e.Config, store: store, ns: []string{ns}})
	l.verify(t, ns, store, names)
	t.Logf("%d waiting users synced %s after the start", n, time.Since(start).Round(time.Second))
}
