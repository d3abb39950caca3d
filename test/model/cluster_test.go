package model

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// replica is one operator (manager, controllers behind leader election,
// SCIM server). Requests are counted so that a replica is stopped only
// once the requests already sent to it have their answers: the model
// needs an answer for every request.
type replica struct {
	name string
	op   *operator.Operator
	base string
	stop func()

	mu       sync.Mutex
	inflight int
	draining bool
	idle     chan struct{} // closed when draining and inflight reaches 0
}

// cluster is what one subtest runs against: a tenant namespace, its
// token, the helpdesk database shared by every replica, and the replicas.
type cluster struct {
	t      *testing.T
	ns     string
	token  string
	dbKind string
	// store is what the operators use; direct reads the same database
	// without the outage, for the final checks.
	store, direct helpdesk.Store
	down, up      func()
	dbDown        atomic.Bool
	http          *http.Client

	mu       sync.Mutex
	replicas []*replica // serving and not draining
	started  int
}

func newCluster(t *testing.T, dbKind string) *cluster {
	t.Helper()
	e := testenv.Require(t, env)
	c := &cluster{t: t, ns: e.Namespace(t), dbKind: dbKind,
		// Longer than the SCIM server's own write timeout (60 s): a request
		// the server gives up on still gets its answer, or its cut, seen.
		http: &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	t.Cleanup(c.http.CloseIdleConnections)
	switch dbKind {
	case "sqlite":
		c.sqlite(t)
	case "postgres":
		u := testenv.PostgresDatabase(t)
		c.proxied(t, u, "sslmode=disable&connect_timeout=5")
	case "mysql":
		u := mysqlDatabase(t)
		c.proxied(t, u, "timeout=5s&readTimeout=30s&writeTimeout=30s")
	default:
		t.Fatalf("SCIM_MODEL_DBS: unknown database %q (sqlite, postgres, mysql)", dbKind)
	}
	return c
}

func openStore(t *testing.T, rawURL string) helpdesk.Store {
	t.Helper()
	st, err := helpdesk.Open(context.Background(), rawURL)
	if err != nil {
		t.Fatalf("opening the helpdesk database %s: %v", helpdesk.Redact(rawURL), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// sqlite: SQLite is a file inside this process, so there is no connection
// to cut. The database is "made unreachable" by pausableStore instead.
func (c *cluster) sqlite(t *testing.T) {
	inner := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "helpdesk.db"))
	p := &pausableStore{Store: inner}
	c.store, c.direct = p, inner
	c.down = func() { p.paused.Store(true) }
	c.up = func() { p.paused.Store(false) }
}

// proxied: the operators reach PostgreSQL or MariaDB through a
// testenv.FaultProxy, which cuts every connection and refuses new ones
// while down.
func (c *cluster) proxied(t *testing.T, u *url.URL, query string) {
	proxy := testenv.NewFaultProxy(t, u.Host)
	via := *u
	via.Host = proxy.Addr()
	via.RawQuery = query
	c.store = openStore(t, via.String())
	c.direct = openStore(t, u.String())
	c.down, c.up = proxy.Down, proxy.Up
}

// pausableStore is how the SQLite database is paused: while paused is set
// every call fails with the error a refused connection gives (a
// *net.OpError wrapping ECONNREFUSED), which is what the PostgreSQL and
// MariaDB stores return while their FaultProxy is down; calls already
// running finish. Methods the Store interface may gain later pass through
// the embedded Store unpaused.
type pausableStore struct {
	helpdesk.Store
	paused atomic.Bool
}

func (p *pausableStore) check(op string) error {
	if !p.paused.Load() {
		return nil
	}
	return fmt.Errorf("helpdesk: %s: %w", op, &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Err: syscall.ECONNREFUSED})
}

func (p *pausableStore) UpsertUser(ctx context.Context, u helpdesk.User) (bool, error) {
	if err := p.check("upsert user"); err != nil {
		return false, err
	}
	return p.Store.UpsertUser(ctx, u)
}

func (p *pausableStore) DeactivateUser(ctx context.Context, tenant, id string) (bool, error) {
	if err := p.check("deactivate user"); err != nil {
		return false, err
	}
	return p.Store.DeactivateUser(ctx, tenant, id)
}

func (p *pausableStore) ReleaseUserName(ctx context.Context, tenant, holder, key string) (bool, error) {
	if err := p.check("release userName"); err != nil {
		return false, err
	}
	return p.Store.ReleaseUserName(ctx, tenant, holder, key)
}

func (p *pausableStore) GetUser(ctx context.Context, tenant, id string) (helpdesk.User, error) {
	if err := p.check("get user"); err != nil {
		return helpdesk.User{}, err
	}
	return p.Store.GetUser(ctx, tenant, id)
}

func (p *pausableStore) DeleteUser(ctx context.Context, tenant, id string, policy helpdesk.DeletionPolicy) error {
	if err := p.check("delete user"); err != nil {
		return err
	}
	return p.Store.DeleteUser(ctx, tenant, id, policy)
}

func (p *pausableStore) UpsertGroup(ctx context.Context, g helpdesk.Group) (bool, error) {
	if err := p.check("upsert group"); err != nil {
		return false, err
	}
	return p.Store.UpsertGroup(ctx, g)
}

func (p *pausableStore) GetGroup(ctx context.Context, tenant, id string) (helpdesk.Group, error) {
	if err := p.check("get group"); err != nil {
		return helpdesk.Group{}, err
	}
	return p.Store.GetGroup(ctx, tenant, id)
}

func (p *pausableStore) DeleteGroup(ctx context.Context, tenant, id string, policy helpdesk.DeletionPolicy) error {
	if err := p.check("delete group"); err != nil {
		return err
	}
	return p.Store.DeleteGroup(ctx, tenant, id, policy)
}

func (p *pausableStore) SyncMembers(ctx context.Context, tenant, group string, desired []string) (int, int, error) {
	if err := p.check("sync members"); err != nil {
		return 0, 0, err
	}
	return p.Store.SyncMembers(ctx, tenant, group, desired)
}

func (p *pausableStore) GroupMembers(ctx context.Context, tenant, group string) ([]string, error) {
	if err := p.check("group members"); err != nil {
		return nil, err
	}
	return p.Store.GroupMembers(ctx, tenant, group)
}

func (p *pausableStore) CustomFields(ctx context.Context, tenant string) ([]helpdesk.CustomField, error) {
	if err := p.check("custom fields"); err != nil {
		return nil, err
	}
	return p.Store.CustomFields(ctx, tenant)
}

func (p *pausableStore) Ping(ctx context.Context) error {
	if err := p.check("ping"); err != nil {
		return err
	}
	return p.Store.Ping(ctx)
}

// mysqlDatabase creates a fresh MariaDB/MySQL database for one test,
// dropped when it ends, as the helpdesk package's tests do; the server is
// $SCIMOP_TEST_MYSQL_URL, by default root on 127.0.0.1:3306. An
// unreachable server fails the test; it never skips.
func mysqlDatabase(t *testing.T) *url.URL {
	t.Helper()
	// The driver logs every connection the outage cuts; the test knows.
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	admin := os.Getenv("SCIMOP_TEST_MYSQL_URL")
	if admin == "" {
		admin = "mysql://root@127.0.0.1:3306/test"
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("SCIMOP_TEST_MYSQL_URL: %v", err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB/MySQL at %s does not answer (%v): run hack/ensure-databases.sh, or set SCIMOP_TEST_MYSQL_URL",
			helpdesk.Redact(admin), err)
	}
	name := fmt.Sprintf("scimop_model_%d", rand.Uint32())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name) })
	out := *u
	out.Path = "/" + name
	out.RawQuery = ""
	return &out
}

// logger: the operators' logs are noise in a passing run (every reconcile
// fails while the database is down); SCIM_MODEL_LOG=1 shows warnings.
func logger() logr.Logger {
	if os.Getenv("SCIM_MODEL_LOG") == "" {
		return logr.Discard()
	}
	return zap.New(zap.UseDevMode(false), zap.Level(zapcore.WarnLevel))
}

// startReplica starts one more operator with leader election and waits
// until its SCIM server listens. It may run outside the test's goroutine.
func (c *cluster) startReplica() (*replica, error) {
	c.mu.Lock()
	name := fmt.Sprintf("r%d", c.started)
	c.started++
	c.mu.Unlock()
	addr := make(chan string, 1)
	op, err := operator.New(env.Config, operator.Options{
		Scheme: env.Scheme, Log: logger(),
		SCIMAddr: "127.0.0.1:0", SCIMBound: func(a string) { addr <- a }, SkipControllerNameValidation: true,
		Namespaces: []string{c.ns}, Helpdesk: c.store, ResyncPeriod: time.Minute,
		LeaderElection: true, LeaderElectionNamespace: c.ns, LeaderElectionID: "model-" + c.ns,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	var once sync.Once
	r := &replica{name: name, op: op, idle: make(chan struct{})}
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(r.stop)
	select {
	case a := <-addr:
		r.base = "http://" + a + "/scim/v2"
		return r, nil
	case err := <-done:
		return nil, fmt.Errorf("operator %s stopped: %w", name, err)
	case <-time.After(90 * time.Second):
		return nil, fmt.Errorf("the SCIM server of %s did not start within 90s", name)
	}
}

// serve adds r to the replicas requests go to, once it accepts the token.
func (c *cluster) serve(r *replica) error {
	var res response
	for range 600 { // a minute
		res = c.do(r, request{method: "GET", path: "/ServiceProviderConfig"})
		if res.status == 200 {
			c.mu.Lock()
			c.replicas = append(c.replicas, r)
			c.mu.Unlock()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s does not accept the token: %s", r.name, statusText(res))
}

// issueToken creates the tenant's ScimToken and reads its bearer token.
func (c *cluster) issueToken(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "entra", Namespace: c.ns}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: "entra-token"}, &s); err != nil {
			return err
		}
		c.token = string(s.Data["token"])
		if c.token == "" {
			return errors.New("the token Secret is empty")
		}
		return nil
	})
}

// acquire picks a serving replica at random and counts the request on it.
func (c *cluster) acquire(rng *rand.Rand) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replicas[rng.IntN(len(c.replicas))]
	r.mu.Lock()
	r.inflight++
	r.mu.Unlock()
	return r
}

// acquireThis counts a request on r if it still serves.
func (c *cluster) acquireThis(r *replica) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.replicas {
		if s == r {
			r.mu.Lock()
			r.inflight++
			r.mu.Unlock()
			return true
		}
	}
	return false
}

func (c *cluster) release(r *replica) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	if r.draining && r.inflight == 0 {
		close(r.idle)
	}
}

// leader returns the serving replica that holds the lease.
func (c *cluster) leader() (*replica, error) {
	for range 1200 { // a minute
		c.mu.Lock()
		rs := append([]*replica(nil), c.replicas...)
		c.mu.Unlock()
		for _, r := range rs {
			select {
			case <-r.op.Manager.Elected():
				return r, nil
			default:
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("no serving replica became leader within a minute")
}

// changeLeader stops the leader (after the answers of the requests sent to
// it) and starts a fresh replica; meanwhile requests go to the others.
func (c *cluster) changeLeader(m *model) error {
	old, err := c.leader()
	if err != nil {
		return err
	}
	m.note("stopping the leader %s; requests go to the other replicas", old.name)
	c.drain(old)
	m.note("leader %s stopped", old.name)
	r, err := c.startReplica()
	if err != nil {
		return err
	}
	if err := c.serve(r); err != nil {
		return err
	}
	m.note("fresh replica %s serving", r.name)
	return nil
}

// drain stops sending requests to r, waits for the answers of those sent,
// and stops it.
func (c *cluster) drain(r *replica) {
	c.mu.Lock()
	for i, s := range c.replicas {
		if s == r {
			c.replicas = append(c.replicas[:i:i], c.replicas[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	r.mu.Lock()
	r.draining = true
	if r.inflight == 0 {
		close(r.idle)
	}
	r.mu.Unlock()
	<-r.idle
	r.stop()
}
