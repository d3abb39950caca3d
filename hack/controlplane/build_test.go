// Package controlplane tests build.sh's choice of control plane binaries
// without the internet: a local index served by the test stands for
// setup-envtest's, and SCIM_OPERATOR_NO_BUILD stops it before compiling.
package controlplane

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fixture is one run's environment: its own cache, setup-envtest store and
// index, so nothing on the machine (or the network) takes part.
type fixture struct {
	t       *testing.T
	cache   string
	store   string
	env     []string
	minor   string // "37"
	index   *httptest.Server
	hits    atomic.Int32
	release string // the archive the index lists; "" lists nothing
	hang    chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, cache: t.TempDir(), store: t.TempDir(), minor: kubeMinor(t)}
	f.release = "1." + f.minor + ".0"
	if err := os.MkdirAll(filepath.Join(f.cache, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	senv := setupEnvtest(t)
	if err := os.Symlink(senv, filepath.Join(f.cache, "tools", filepath.Base(senv))); err != nil {
		t.Fatal(err)
	}
	f.index = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		if f.hang != nil {
			close(f.hang)
		}
		f.index.Close()
	})
	f.env = []string{
		"SCIM_OPERATOR_BIN_CACHE=" + f.cache,
		"SCIM_OPERATOR_ENVTEST_DIR=" + f.store,
		"SCIM_OPERATOR_ENVTEST_INDEX=" + f.index.URL + "/index.yaml",
		"SCIM_OPERATOR_NO_BUILD=1",
		"KUBEBUILDER_ASSETS=",
		"ENVTEST_INSTALLED_ONLY=",
	}
	return f
}

// archive is a tar.gz laid out like the prebuilt envtest releases, with
// scripts standing for the binaries.
func archive(t *testing.T) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		body := []byte("#!/bin/sh\necho " + name + "\n")
		if err := tw.WriteHeader(&tar.Header{Name: "controller-tools/envtest/" + name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) archiveName() string {
	return fmt.Sprintf("envtest-v%s-%s-%s.tar.gz", f.release, runtime.GOOS, runtime.GOARCH)
}

func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if f.hang != nil {
		<-f.hang
		return
	}
	data := archive(f.t)
	switch r.URL.Path {
	case "/index.yaml":
		if f.release == "" {
			fmt.Fprintln(w, "releases: {}")
			return
		}
		sum := sha512.Sum512(data)
		fmt.Fprintf(w, "releases:\n  v%s:\n    %s:\n      hash: %s\n      selfLink: %s/%s\n",
			f.release, f.archiveName(), hex.EncodeToString(sum[:]), f.index.URL, f.archiveName())
	case "/" + f.archiveName():
		_, _ = w.Write(data)
	default:
		http.NotFound(w, r)
	}
}

// run runs build.sh with extra environment and returns the folder it
// printed last, what it logged, and its exit status.
func (f *fixture) run(extra ...string) (dir, logged string, status int) {
	f.t.Helper()
	cmd := exec.Command("./build.sh")
	cmd.Env = append(append(os.Environ(), f.env...), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], stderr.String(), status
}

func fakeBinaries(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKubebuilderAssetsFirst(t *testing.T) {
	f := newFixture(t)
	assets := t.TempDir()
	fakeBinaries(t, assets)
	fakeBinaries(t, filepath.Join(f.store, "k8s", f.release+"-"+runtime.GOOS+"-"+runtime.GOARCH))
	dir, logged, status := f.run("KUBEBUILDER_ASSETS=" + assets)
	if status != 0 || dir != assets {
		t.Fatalf("want KUBEBUILDER_ASSETS %s, got %q (status %d)\n%s", assets, dir, status, logged)
	}
	if f.hits.Load() != 0 {
		t.Errorf("the index was asked although KUBEBUILDER_ASSETS was set")
	}
}

func TestInstalledBySetupEnvtestBeforeTheIndex(t *testing.T) {
	f := newFixture(t)
	installed := filepath.Join(f.store, "k8s", f.release+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	fakeBinaries(t, installed)
	dir, logged, status := f.run()
	if status != 0 || dir != installed {
		t.Fatalf("want the installed %s, got %q (status %d)\n%s", installed, dir, status, logged)
	}
	if f.hits.Load() != 0 {
		t.Errorf("the index was asked although binaries were installed")
	}
	if !strings.Contains(logged, "installed by setup-envtest") {
		t.Errorf("the log does not say where the binaries come from:\n%s", logged)
	}
}

func TestCompiledEarlierBeforeTheIndex(t *testing.T) {
	f := newFixture(t)
	compiled := filepath.Join(f.cache, "controlplane-"+kubeVersion(t)+"-etcd-"+etcdVersion(t))
	fakeBinaries(t, compiled)
	dir, logged, status := f.run()
	if status != 0 || dir != compiled {
		t.Fatalf("want the folder compiled earlier %s, got %q (status %d)\n%s", compiled, dir, status, logged)
	}
	if f.hits.Load() != 0 {
		t.Errorf("the index was asked although a compiled folder was there")
	}
}

func TestDownloadedFromTheIndex(t *testing.T) {
	f := newFixture(t)
	dir, logged, status := f.run()
	want := filepath.Join(f.store, "k8s", f.release+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	if status != 0 || dir != want {
		t.Fatalf("want the download in %s, got %q (status %d)\n%s", want, dir, status, logged)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("the download lacks %s: %v", name, err)
		}
	}
	if !strings.Contains(logged, "downloaded by setup-envtest") {
		t.Errorf("the log does not say the binaries were downloaded:\n%s", logged)
	}
	// The next run finds them installed and asks no index.
	before := f.hits.Load()
	if again, _, _ := f.run(); again != want || f.hits.Load() != before {
		t.Errorf("the second run did not reuse the download: %q, %d index requests", again, f.hits.Load()-before)
	}
}

// fallbackLine is the one line that says why it builds and how long it takes.
var fallbackLine = regexp.MustCompile(`(?m)^\[controlplane\] no prebuilt envtest binaries reachable \((.+)\); building from Go modules, ~\d+ min (.+)$`)

func TestFallsBackToBuildingWithOneLine(t *testing.T) {
	cases := map[string]struct {
		prepare func(f *fixture) []string
		reason  string
	}{
		"index unreachable": {
			prepare: func(_ *fixture) []string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close()
				return []string{"SCIM_OPERATOR_ENVTEST_INDEX=http://" + addr + "/index.yaml"}
			},
			reason: "the envtest index could not be read: connection refused",
		},
		"index hangs": {
			prepare: func(f *fixture) []string {
				f.hang = make(chan struct{})
				return []string{"SCIM_OPERATOR_ENVTEST_TIMEOUT=1"}
			},
			reason: "the envtest index did not answer within 1s",
		},
		"index without this release": {
			prepare: func(f *fixture) []string { f.release = ""; return nil },
			reason:  "the envtest index lists no Kubernetes 1.",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			dir, logged, status := f.run(c.prepare(f)...)
			if status != 3 || dir != "" {
				t.Fatalf("want no folder and status 3 (SCIM_OPERATOR_NO_BUILD), got %q, status %d\n%s", dir, status, logged)
			}
			m := fallbackLine.FindStringSubmatch(logged)
			if m == nil {
				t.Fatalf("no one-line reason for building:\n%s", logged)
			}
			if !strings.HasPrefix(m[1], c.reason) {
				t.Errorf("reason %q, want %q", m[1], c.reason)
			}
			if !strings.Contains(m[2], "measured") {
				t.Errorf("the estimate does not say it was measured: %q", m[2])
			}
		})
	}
}

func TestEstimateFromTheLastBuild(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.cache, "last-build"), []byte("421 2 2026-11-29 v1.37.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.release = ""
	_, logged, _ := f.run()
	m := fallbackLine.FindStringSubmatch(logged)
	if m == nil || !strings.Contains(m[0], "~8 min (the last build here, on 2026-11-29, took 421s on 2 cores)") {
		t.Fatalf("the estimate must come from the recorded build:\n%s", logged)
	}
}

var (
	senvOnce sync.Once
	senvDir  string
	senvPath string
	senvErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if senvDir != "" {
		_ = os.RemoveAll(senvDir)
	}
	os.Exit(code)
}

// setupEnvtest compiles the pinned setup-envtest once for all tests, under
// the name build.sh looks for.
func setupEnvtest(t *testing.T) string {
	t.Helper()
	senvOnce.Do(func() {
		version := field(t, filepath.Join("..", "tools", "go.mod"), "sigs.k8s.io/controller-runtime/tools/setup-envtest")
		senvDir, senvErr = os.MkdirTemp("", "setup-envtest-")
		if senvErr != nil {
			return
		}
		senvPath = filepath.Join(senvDir, "setup-envtest-"+version)
		cmd := exec.Command("go", "build", "-o", senvPath, "sigs.k8s.io/controller-runtime/tools/setup-envtest")
		cmd.Dir = filepath.Join("..", "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			senvErr = fmt.Errorf("compiling setup-envtest: %w\n%s", err, out)
		}
	})
	if senvErr != nil {
		t.Fatal(senvErr)
	}
	return senvPath
}

// field returns the word after key on the first line of file that has one
// starting with "v" (a module version).
func field(t *testing.T, file, key string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		w := strings.Fields(line)
		for i := 0; i+1 < len(w); i++ {
			if w[i] == key && strings.HasPrefix(w[i+1], "v") {
				return w[i+1]
			}
		}
	}
	t.Fatalf("%s names no version of %s", file, key)
	return ""
}

func kubeVersion(t *testing.T) string {
	return field(t, filepath.Join("kube-apiserver", "go.mod"), "k8s.io/kubernetes")
}

func etcdVersion(t *testing.T) string {
	return field(t, filepath.Join("etcd", "go.mod"), "go.etcd.io/etcd/server/v3")
}

func kubeMinor(t *testing.T) string {
	v := strings.TrimPrefix(kubeVersion(t), "v1.")
	return v[:strings.Index(v, ".")]
}
