package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stack is a running `scim-operator dev` child process.
type stack struct {
	cmd        *exec.Cmd
	stateDir   string
	endpoint   string
	token      string
	kubeconfig string
	metricsURL string
	pprofURL   string
	logPath    string
	exited     chan struct{}
	exitErr    error
}

func buildOperator(ctx context.Context, out string) error {
	progress("building the operator binary (go build -o %s ./cmd)", out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// controlPlaneDir runs hack/controlplane/build.sh, which builds etcd and
// kube-apiserver once per machine and prints their folder last.
func controlPlaneDir(ctx context.Context) (string, error) {
	progress("finding the control plane binaries (hack/controlplane/build.sh)")
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "hack/controlplane/build.sh")
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/controlplane/build.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("build.sh printed %q, which holds no kube-apiserver", dir)
	}
	return dir, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startStack(ctx context.Context, bin, assets, stateDir string, extra ...string) (*stack, error) {
	scimPort, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	pprofPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &stack{stateDir: stateDir, logPath: filepath.Join(filepath.Dir(stateDir), "dev.log"),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		pprofURL:   fmt.Sprintf("http://127.0.0.1:%d/debug/pprof", pprofPort), exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"dev", "--state-dir", stateDir,
		"--scim-bind-address", fmt.Sprintf("127.0.0.1:%d", scimPort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", pprofPort),
		"--control-plane-dir", assets, "--zap-log-level", "error"}, extra...)
	s.cmd = exec.Command(bin, args...)
	// If this program dies without stopping it, the kernel sends SIGTERM,
	// which `dev` handles by stopping etcd and kube-apiserver too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.cmd.Stderr = logf
	pr, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	progress("starting %s dev (state in %s, log in %s)", filepath.Base(bin), stateDir, s.logPath)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		said := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !said && strings.HasPrefix(line, "ready:") {
				said = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
		logf.Close()
	}()
	select {
	case <-ready:
	case <-s.exited:
		return nil, fmt.Errorf("scim-operator dev exited before ready (%w); see %s", s.exitErr, s.logPath)
	case <-time.After(5 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("scim-operator dev not ready within 5 minutes; see %s", s.logPath)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(stateDir, name))
		return strings.TrimSpace(string(b)), err
	}
	if s.endpoint, err = read("endpoint"); err != nil {
		s.stop()
		return nil, err
	}
	if s.token, err = read("token"); err != nil {
		s.stop()
		return nil, err
	}
	s.kubeconfig = filepath.Join(stateDir, "kubeconfig")
	return s, nil
}

// stop sends SIGTERM and waits; dev then stops the control plane. A second
// SIGTERM does not hurry it, so after two minutes the process is killed.
func (s *stack) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	progress("stopping scim-operator dev (pid %d)", s.cmd.Process.Pid)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *stack) pid() int { return s.cmd.Process.Pid }

// rssBytes reads VmRSS from /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// childRSS is the RSS of each direct child of pid by command name
// (kube-apiserver, etcd), to show where the rest of the memory goes.
func childRSS(pid int) map[string]int64 {
	out := map[string]int64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid ...
		st := string(b)
		open, closeP := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || closeP < 0 {
			continue
		}
		f := strings.Fields(st[closeP+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if rss, err := rssBytes(child); err == nil {
			out[st[open+1:closeP]] += rss
		}
	}
	return out
}

// forceGC makes the operator collect garbage (/debug/pprof/heap?gc=1), so
// that its heap metrics read right after show what is live.
func (b *bench) forceGC(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.st.pprofURL+"/heap?gc=1", nil)
	if err != nil {
		return
	}
	res, err := b.hc.Do(req)
	if err != nil {
		progress("forcing a GC in the operator: %v (live heap will include garbage)", err)
		return
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
}

// saveHeapProfile writes the operator's heap profile (after a GC, which
// /debug/pprof/heap?gc=1 forces) to --heap-profile.
func (b *bench) saveHeapProfile(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.st.pprofURL+"/heap?gc=1", nil)
	if err != nil {
		progress("heap profile: %v", err)
		return false
	}
	res, err := b.hc.Do(req)
	if err != nil {
		progress("heap profile: %v", err)
		return false
	}
	defer res.Body.Close()
	f, err := os.Create(b.o.HeapProfile)
	if err != nil {
		progress("heap profile: %v", err)
		return false
	}
	defer f.Close()
	if _, err := io.Copy(f, res.Body); err != nil {
		progress("heap profile: %v", err)
		return false
	}
	progress("heap profile written to %s (go tool pprof -top -sample_index=inuse_space %s)", b.o.HeapProfile, b.o.HeapProfile)
	return true
}

// heapTop renders the profile's largest entries for the report.
func heapTop(ctx context.Context, path string) string {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=18", "-sample_index=inuse_space", path).Output()
	if err != nil {
		progress("heap profile summary: %v", err)
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var keep []string
	for _, l := range lines {
		// File, Build ID and Time name this run's binary, not the code.
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
