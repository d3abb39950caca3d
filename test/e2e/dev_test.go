// Package e2e runs the real binary the way a person would.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestDevStack starts `scim-operator dev` in a temporary folder, provisions
// a user over SCIM, finds its row in SQLite, stops it with SIGTERM, checks
// that no child process survived, restarts it and finds the user again.
func TestDevStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; run without -short")
	}
	bin := buildDev(t)
	state := filepath.Join(t.TempDir(), "state")
	addr := freeAddr(t)

	run := func() func() {
		stop, banner := runDev(t, bin, state, addr)
		for _, want := range []string{"http://" + addr + "/scim/v2", "curl ", "kubectl --kubeconfig"} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner lacks %q:\n%s", want, banner)
			}
		}
		return stop
	}

	stop := run()
	token := strings.TrimSpace(readFile(t, filepath.Join(state, "token")))
	endpoint := strings.TrimSpace(readFile(t, filepath.Join(state, "endpoint")))
	// cost-center is declared in the demo tenant's ProvisioningConfig, whose
	// database is tenants/demo.db.
	status, body := scim(t, "POST", endpoint+"/Users", token, `{"userName":"dev.user@example.test","active":true,`+
		`"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"cost-center":"CC-42"}}`)
	if status != 201 {
		t.Fatalf("POST /Users: %d %s", status, body)
	}
	var created map[string]any
	_ = json.Unmarshal(body, &created)
	id, _ := created["id"].(string)

	db, err := sql.Open("sqlite", filepath.Join(state, "tenants", "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var name, fields string
		err := db.QueryRow(`SELECT user_name, COALESCE(custom_fields, '') FROM helpdesk_users WHERE scim_id = ?`, id).Scan(&name, &fields)
		if err == nil && name == "dev.user@example.test" && strings.Contains(fields, `"cost-center":"CC-42"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user never reached SQLite: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	if left := processesMentioning(state); len(left) > 0 {
		t.Fatalf("processes survived the stop: %v", left)
	}

	stop = run()
	defer stop()
	if token2 := strings.TrimSpace(readFile(t, filepath.Join(state, "token"))); token2 != token {
		t.Errorf("the demo token changed across a restart")
	}
	status, body = scim(t, "GET", endpoint+"/Users/"+id, token, "")
	if status != 200 || !strings.Contains(string(body), "dev.user@example.test") {
		t.Fatalf("after restart GET /Users/%s: %d %s", id, status, body)
	}
}

// TestDevStackSurvivesCrash kills `scim-operator dev` with SIGKILL: etcd
// and kube-apiserver must die with it. Then, as after a crash of a version
// without that, an etcd is left holding the state folder; the next start
// must stop it, say so, be ready within a minute, and still have the user
// acknowledged before the crash.
func TestDevStackSurvivesCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; run without -short")
	}
	bin := buildDev(t)
	state := filepath.Join(t.TempDir(), "state")
	addr := freeAddr(t)

	first := startDevWithin(t, bin, state, addr, 3*time.Minute)
	token := strings.TrimSpace(readFile(t, filepath.Join(state, "token")))
	endpoint := strings.TrimSpace(readFile(t, filepath.Join(state, "endpoint")))
	status, body := scim(t, "POST", endpoint+"/Users", token, `{"userName":"before.crash@example.test","active":true}`)
	if status != 201 {
		t.Fatalf("POST /Users: %d %s", status, body)
	}
	var created map[string]any
	_ = json.Unmarshal(body, &created)
	id, _ := created["id"].(string)

	children := controlPlanePids(t, first.cmd.Process.Pid)
	first.crash(t)
	testenv.Eventually(t, 20*time.Second, func() error {
		for name, pid := range children {
			if alive(pid) {
				return fmt.Errorf("%s (pid %d) outlived the dev process killed with SIGKILL", name, pid)
			}
		}
		return nil
	})

	orphan := startOrphanEtcd(t, state)
	second := startDevWithin(t, bin, state, addr, time.Minute)
	if want := fmt.Sprintf("==> stopped etcd (pid %d)", orphan); !strings.Contains(second.banner, want) {
		t.Errorf("the start does not say it stopped the leftover etcd (want %q):\n%s", want, second.banner)
	}
	status, body = scim(t, "GET", endpoint+"/Users/"+id, token, "")
	if status != 200 || !strings.Contains(string(body), "before.crash@example.test") {
		t.Fatalf("after the crash GET /Users/%s: %d %s", id, status, body)
	}
	second.stop()
}

// controlPlanePids finds etcd and kube-apiserver among the children of the
// dev process, checking both run.
func controlPlanePids(t *testing.T, dev int) map[string]int {
	t.Helper()
	pids := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[closing+1:])
		if open < 0 || len(fields) < 2 || fields[1] != strconv.Itoa(dev) {
			continue
		}
		if name := s[open+1 : closing]; name == "etcd" || name == "kube-apiserver" {
			pids[name], _ = strconv.Atoi(e.Name())
		}
	}
	if len(pids) != 2 {
		t.Fatalf("want etcd and kube-apiserver among the children of dev (pid %d), found %v", dev, pids)
	}
	return pids
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// startOrphanEtcd starts an etcd on <state>/etcd in a process group of its
// own, the way a dev process of an earlier version left one behind, and
// waits until it serves (and so holds the data folder). It returns its pid.
func startOrphanEtcd(t *testing.T, state string) int {
	t.Helper()
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
	cmd := exec.Command(filepath.Join(assets, "etcd"), "--data-dir="+filepath.Join(state, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client, "--listen-peer-urls="+peer)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testenv.Eventually(t, 30*time.Second, func() error {
		res, err := http.Get(client + "/health")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("etcd /health: %s", res.Status)
		}
		return nil
	})
	return cmd.Process.Pid
}

// TestDevStackDeactivationWithLongPhone goes through `make run`'s stack:
// a user created over SCIM gets a work phone longer than the helpdesk's
// phone column, then Entra's deactivation ({"op":"Replace","path":"active",
// "value":"False"}, a string). The SQLite row must end inactive, with the
// phone cut to the column's 64 characters (invariant I1).
func TestDevStackDeactivationWithLongPhone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; run without -short")
	}
	state, endpoint, token := startDev(t)
	status, body := scim(t, "POST", endpoint+"/Users", token,
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"long.phone@example.test","active":true}`)
	if status != 201 {
		t.Fatalf("POST /Users: %d %s", status, body)
	}
	var created map[string]any
	_ = json.Unmarshal(body, &created)
	id, _ := created["id"].(string)

	phone := strings.Repeat("0123456789", 7)[:65]
	patch := func(op string) {
		t.Helper()
		status, body := scim(t, "PATCH", endpoint+"/Users/"+id, token,
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`)
		if status != 200 && status != 204 {
			t.Fatalf("PATCH /Users/%s %s: %d %s", id, op, status, body)
		}
	}
	patch(`{"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"` + phone + `"}`)
	patch(`{"op":"Replace","path":"active","value":"False"}`)

	db, err := sql.Open("sqlite", filepath.Join(state, "tenants", "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var (
			active int
			stored sql.NullString
		)
		err := db.QueryRow(`SELECT active, phone FROM helpdesk_users WHERE scim_id = ?`, id).Scan(&active, &stored)
		if err == nil && active == 0 && stored.String == phone[:64] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the row inactive with the phone cut to 64 characters; got active=%d phone=%q (%v)", active, stored.String, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDev builds the binary and runs `scim-operator dev` in a temporary
// state folder until the test ends; it returns the folder, the SCIM
// endpoint and the bearer token.
func startDev(t *testing.T) (state, endpoint, token string) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "state")
	runDev(t, buildDev(t), state, freeAddr(t))
	token = strings.TrimSpace(readFile(t, filepath.Join(state, "token")))
	endpoint = strings.TrimSpace(readFile(t, filepath.Join(state, "endpoint")))
	return state, endpoint, token
}

// buildDev builds the operator binary into the test's temporary folder.
func buildDev(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scim-operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runDev starts `bin dev` on state and addr and waits for its ready line.
// It returns a stop function (also run when the test ends, so no dev
// process outlives a test that fails half-way) and what dev printed.
func runDev(t *testing.T, bin, state, addr string) (stop func(), banner string) {
	t.Helper()
	d := startDevWithin(t, bin, state, addr, 3*time.Minute)
	return d.stop, d.banner
}

// devProcess is a running `scim-operator dev`.
type devProcess struct {
	cmd    *exec.Cmd
	banner string // stdout up to the ready line
	once   *sync.Once
	stop   func() // SIGTERM, and a clean exit expected
}

// crash kills the dev process with SIGKILL, as an OOM killer or a closed
// laptop would, and waits for it; it leaves its children alone.
func (d *devProcess) crash(t *testing.T) {
	t.Helper()
	d.once.Do(func() {
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = d.cmd.Wait()
	})
}

// startDevWithin starts `bin dev` and fails the test unless it prints its
// ready line within timeout.
func startDevWithin(t *testing.T, bin, state, addr string, timeout time.Duration) *devProcess {
	t.Helper()
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--state-dir", state, "--scim-bind-address", addr, "--control-plane-dir", assets)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.HasPrefix(sc.Text(), "ready:") {
				close(ready)
			}
		}
	}()
	printed := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	select {
	case <-ready:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		t.Fatalf("dev did not print its ready line within %s\nstdout:\n%s\nstderr:\n%s", timeout, printed(), logs.String())
	}
	once := new(sync.Once)
	stop := func() { once.Do(func() { stopDev(t, cmd, &logs) }) }
	t.Cleanup(stop)
	return &devProcess{cmd: cmd, banner: printed(), once: once, stop: stop}
}

// processesMentioning lists running processes whose command line contains
// s (the state folder appears in etcd's --data-dir).
func processesMentioning(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, s) {
			out = append(out, e.Name()+": "+line)
		}
	}
	return out
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func scim(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// stopDev sends SIGTERM and waits for the process to exit cleanly.
func stopDev(t *testing.T, cmd *exec.Cmd, logs *bytes.Buffer) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signalling dev: %v", err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dev exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Errorf("dev did not stop within a minute of SIGTERM")
	}
}

// TestDevStackActivityColumns (issue 19, item 3): after a provisioning
// burst through `scim-operator dev`, `kubectl get scimtokens` shows when the
// identity provider last called and how many of its requests were refused
// in the last hour.
func TestDevStackActivityColumns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; run without -short")
	}
	state, endpoint, token := startDev(t)
	for i := range 5 {
		if status, body := scim(t, "POST", endpoint+"/Users", token, fmt.Sprintf(`{"userName":"burst%d@example.test"}`, i)); status != 201 {
			t.Fatalf("POST /Users: %d %s", status, body)
		}
	}
	for _, bad := range []struct{ method, path, body string }{
		{"POST", "/Users", `{"userName":"burst0@example.test"}`},       // 409 uniqueness
		{"GET", "/Users/00000000-0000-4000-8000-000000000000", ""},     // 404
		{"GET", "/Users?filter=" + url.QueryEscape(`userName eq`), ""}, // 400 invalidFilter
	} {
		if status, _ := scim(t, bad.method, endpoint+bad.path, token, bad.body); status < 400 || status >= 500 {
			t.Fatalf("%s %s: %d, want a 4xx", bad.method, bad.path, status)
		}
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		if kubectl, err = exec.LookPath("kubectl"); err != nil {
			t.Fatalf("no kubectl in KUBEBUILDER_ASSETS or on PATH: %v", err)
		}
	}
	var out []byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		out, err = exec.Command(kubectl, "--kubeconfig", filepath.Join(state, "kubeconfig"), "get", "scimtokens", "-A").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err == nil && len(lines) == 2 {
			last, refused := column(lines[0], lines[1], "LAST REQUEST"), column(lines[0], lines[1], "REFUSED (1H)")
			if last != "" && last != "<none>" && refused == "3" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get scimtokens never showed the burst (3 refused, a last request):\n%s", out)
		}
		time.Sleep(time.Second)
	}
	t.Logf("$ kubectl get scimtokens -A\n%s", out)
}

// column is the value under header name in a kubectl table row (columns are
// aligned to their header's start).
func column(header, row, name string) string {
	start := strings.Index(header, name)
	if start < 0 || start >= len(row) {
		return ""
	}
	end := len(row)
	if rest := header[start+len(name):]; strings.TrimSpace(rest) != "" {
		end = start + len(name) + len(rest) - len(strings.TrimLeft(rest, " "))
		if end > len(row) {
			end = len(row)
		}
	}
	return strings.TrimSpace(row[start:end])
}
