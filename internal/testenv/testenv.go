// Package testenv starts a real control plane (etcd and kube-apiserver built
// by hack/controlplane) with this project's CRDs installed, for tests. Each
// test package calls Main from its TestMain; each test gets its own
// namespace from Namespace, so tests can run in parallel without seeing each
// other's objects.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/scim-operator/scim-operator/internal/kscheme"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Scheme *k8sruntime.Scheme
	// Client talks to the API server directly (no cache).
	Client client.Client

	env *envtest.Environment
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// NewScheme returns a scheme with the Kubernetes built-in kinds and ours.
func NewScheme() *k8sruntime.Scheme { return kscheme.New() }

// Assets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS when set (make
// test sets it), otherwise the folder hack/controlplane/build.sh prints,
// building the binaries first if this machine has none yet.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "controlplane", "build.sh")) //nolint:gosec // the repository's own script
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane with hack/controlplane/build.sh: %w (run `make envtest-bins` to see why)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// Start starts a control plane with the CRDs from config/crd/bases.
func Start() (*Env, error) {
	dir, err := Assets()
	if err != nil {
		return nil, err
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", dir, err)
	}
	// Tests create thousands of objects; the default client-side limits
	// would make them measure the limiter instead of the server.
	cfg.QPS, cfg.Burst = -1, -1
	s := NewScheme()
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return &Env{Config: cfg, Scheme: s, Client: c, env: e}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Main runs a test package against one control plane and stops it at the
// end; tests read it from *env. With -short it runs the tests without one
// (they call Require and skip).
func Main(m *testing.M, env **Env) {
	os.Exit(run(m, env))
}

func run(m *testing.M, env **Env) int {
	flag.Parse() // testing.Short reads the flags m.Run would parse later
	if testing.Short() {
		return m.Run()
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	*env = e
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stopping the control plane:", err)
		}
	}()
	return m.Run()
}

// Require skips a test under -short (no control plane) and returns the env.
func Require(t testing.TB, e *Env) *Env {
	t.Helper()
	if e == nil {
		if testing.Short() {
			t.Skip("needs the control plane; run without -short")
		}
		t.Fatal("testenv.Main was not called from TestMain")
	}
	return e
}

// Namespace creates a namespace for one test and deletes it when the test
// ends. Its name is derived from the test name so that failures are easy to
// trace with kubectl.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	e = Require(t, e) // skips under -short, where there is no control plane
	base := strings.ToLower(t.Name())
	base = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, base)
	if len(base) > 40 {
		base = base[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(base, "-") + "-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating test namespace: %v", err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller, so objects stay; deleting
		// the namespace still marks the test's end for anyone watching.
		_ = e.Client.Delete(context.Background(), ns)
	})
	return ns.Name
}

// ConfigFor returns a client config for a new user of the test API server,
// authenticated by a client certificate and authorised only by what RBAC
// grants it (for least-privilege tests).
func (e *Env) ConfigFor(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	cfg := u.Config()
	cfg.QPS, cfg.Burst = -1, -1
	return cfg, nil
}
