package devstack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockStateRefusesASecondDevProcess(t *testing.T) {
	state := t.TempDir()
	lock, err := lockState(state)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockState(state)
	want := fmt.Sprintf("scim-operator dev (pid %d) is already running with the state folder %s", os.Getpid(), state)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a second dev process on the folder: want %q, got %v", want, err)
	}
	lock.release()
	again, err := lockState(state)
	if err != nil {
		t.Fatalf("after the first released the folder: %v", err)
	}
	again.release()
}

// sleeper starts a process that runs until the test ends, reaped when it
// exits (a zombie would still have a /proc entry).
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd
}

func TestLeftoversAreFoundByPidFileAndStopped(t *testing.T) {
	state := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	apiserver := sleeper(t)
	start, err := startTime(apiserver.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, pid int, start uint64) {
		if err := os.WriteFile(filepath.Join(state, "run", name+".pid"), fmt.Appendf(nil, "%d %d\n", pid, start), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("kube-apiserver", apiserver.Process.Pid, start)
	// A pid reused by another process: same pid, another start time.
	other := sleeper(t)
	write("etcd", other.Process.Pid, start-1)

	left := findLeftovers(state)
	if len(left) != 1 || left[0].name != "kube-apiserver" || left[0].pid != apiserver.Process.Pid {
		t.Fatalf("want kube-apiserver (pid %d) alone, got %v", apiserver.Process.Pid, left)
	}
	if err := stopLeftovers(left, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if running(apiserver.Process.Pid) {
		t.Errorf("the leftover still runs")
	}
	if !running(other.Process.Pid) {
		t.Errorf("a process that only reused a recorded pid was stopped")
	}
	if got := joinLeftovers([]leftover{{"etcd", 1}, {"kube-apiserver", 2}}); got != "etcd (pid 1) and kube-apiserver (pid 2)" {
		t.Errorf("joinLeftovers: %q", got)
	}
}

func TestLauncherScripts(t *testing.T) {
	state := t.TempDir()
	assets := t.TempDir()
	etcd, apiserver, err := launchers(state, assets)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{etcd, apiserver} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "#!/bin/sh\n") || !strings.Contains(string(b), ChildArg) || !strings.Contains(string(b), assets) {
			t.Errorf("%s:\n%s", p, b)
		}
	}
}
