package controllers

import (
	"bytes"
	"context"
	"errors"
	"github.com/scim-operator/scim-operator/internal/tokens"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/scim-operator/scim-operator/internal/testenv"
)

// env is the control plane shared by the package's tests; each test gets
// its own namespace and, through startManager, its own manager.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// logBuffer collects log lines of one manager; it is printed only when the
// test fails, and tests can search it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) write(prefix, args string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(prefix)
	b.buf.WriteString(" ")
	b.buf.WriteString(args)
	b.buf.WriteString("\n")
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logVerbosity is the most verbose level captured: everything controller-
// runtime and our code log (reconciles are at 5). From 6 on client-go dumps
// HTTP request and response bodies, Secrets included, like kubectl -v=8.
const logVerbosity = 5

// newLogger returns a logger that writes every line up to logVerbosity
// into a buffer.
func newLogger() (logr.Logger, *logBuffer) {
	b := &logBuffer{}
	return funcr.New(b.write, funcr.Options{Verbosity: logVerbosity, LogCaller: funcr.None}), b
}

// startManager starts, in the background, a manager whose cache sees only
// namespace ns, after running setup (SetupWithManager of reconcilers, index
// registration, mgr.Add of runnables). It returns once the cache synced and
// stops the manager when the test ends. Every log line goes to the returned
// buffer, printed if the test fails.
func startManager(t *testing.T, ns string, setup ...func(ctrl.Manager) error) (ctrl.Manager, *logBuffer) {
	t.Helper()
	return startManagerIn(t, []string{ns}, setup...)
}

// startManagerIn is startManager for a cache that sees several namespaces
// (tenants).
func startManagerIn(t *testing.T, namespaces []string, setup ...func(ctrl.Manager) error) (ctrl.Manager, *logBuffer) {
	t.Helper()
	log, buf := newLogger()
	seen := map[string]cache.Config{}
	for _, ns := range namespaces {
		seen[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: seen},
		// Every test starts the same controllers in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("creating manager: %v", err)
	}
	for _, s := range setup {
		if err := s(mgr); err != nil {
			t.Fatalf("setting up manager: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("manager stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", buf.String())
		}
	})
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatalf("manager cache did not sync")
	}
	return mgr, buf
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, f)
}

// testFingerprints keys the fingerprints of the tests' ScimToken controllers
// and authenticators, as the installation key does for the operator.
var testFingerprints = func() tokens.Fingerprinter {
	f, err := tokens.NewFingerprinter([]byte("scim-operator controllers test fingerprint key"))
	if err != nil {
		panic(err)
	}
	return f
}()
