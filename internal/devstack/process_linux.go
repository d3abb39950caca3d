package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The control plane must not outlive the dev process: killed with SIGKILL
// or crashed, it used to leave etcd and kube-apiserver running, and etcd
// kept the state folder locked, so the next start failed after a long wait.
// envtest starts the binaries itself and offers no hook to set a
// parent-death signal, so the path it starts is a small script in
// <state>/run that re-enters this binary (ChildArg), which sets the signal
// with prctl, records its pid and start time, and execs the real binary:
// prctl's setting survives exec, and the pid stays the same.
//
// A start that finds such a record of a process still running (or an etcd
// on this state folder started by an older version) stops it first.

// ChildArg is the argument that, right after `dev`, makes the binary the
// control plane's launcher: `scim-operator dev ChildArg PARENT-PID PID-FILE SIGNAL BINARY ARGS...`.
const ChildArg = "--control-plane-child"

// childSignals are what each binary gets when the dev process dies: etcd
// may close its database; kube-apiserver holds nothing worth waiting for.
var childSignals = map[string]syscall.Signal{"etcd": syscall.SIGTERM, "kube-apiserver": syscall.SIGKILL}

// RunChild is the launcher ChildArg selects; it returns only on failure.
func RunChild(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("%s wants PARENT-PID PID-FILE SIGNAL BINARY [ARGS...], got %q", ChildArg, args)
	}
	parent, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	sig, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	pidFile, bin := args[1], args[3]
	// The signal belongs to this thread, and exec must happen on it.
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(sig), 0); errno != 0 {
		return fmt.Errorf("setting the parent-death signal: %w", errno)
	}
	// The dev process may have died before the signal was set.
	if os.Getppid() != parent {
		return fmt.Errorf("the dev process (pid %d) is gone; not starting %s", parent, filepath.Base(bin))
	}
	self := os.Getpid()
	start, err := startTime(self)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(pidFile, fmt.Sprintf("%d %d\n", self, start), 0o600); err != nil {
		return err
	}
	return syscall.Exec(bin, append([]string{bin}, args[4:]...), os.Environ()) //nolint:gosec // the binary the dev process's own launcher script names
}

// launchers writes <state>/run/etcd and kube-apiserver, scripts that start
// the binaries in assets through RunChild, and returns their paths.
func launchers(state, assets string) (etcd, apiserver string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("finding this binary to launch the control plane: %w", err)
	}
	run := filepath.Join(state, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		return "", "", err
	}
	paths := map[string]string{}
	for name, sig := range childSignals {
		script := fmt.Sprintf("#!/bin/sh\n# Written by scim-operator dev: starts %s so that it dies with the dev process.\nexec %s dev %s %d %s %d %s \"$@\"\n",
			name, shellQuote(self), ChildArg, os.Getpid(), shellQuote(filepath.Join(run, name+".pid")), int(sig), shellQuote(filepath.Join(assets, name)))
		p := filepath.Join(run, name)
		if err := writeFileAtomic(p, script, 0o700); err != nil {
			return "", "", err
		}
		paths[name] = p
	}
	return paths["etcd"], paths["kube-apiserver"], nil
}

// stateLock is held while a dev process uses a state folder.
type stateLock struct{ f *os.File }

func (l *stateLock) release() { _ = l.f.Close() }

// lockState takes <state>/run/lock, or says which dev process holds it.
// The file is opened close-on-exec: the control plane does not inherit it,
// so a dev process that died releases the folder even when its children
// live on.
func lockState(state string) (*stateLock, error) {
	run := filepath.Join(state, "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(run, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, err := os.ReadFile(filepath.Join(run, "dev.pid")); err == nil {
				holder = "scim-operator dev (pid " + strings.TrimSpace(string(b)) + ")"
			}
			return nil, fmt.Errorf("%s is already running with the state folder %s; stop it first (Ctrl-C in its terminal), or choose another --state-dir", holder, state)
		}
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	if err := writeFileAtomic(filepath.Join(run, "dev.pid"), strconv.Itoa(os.Getpid())+"\n", 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return &stateLock{f: f}, nil
}

// leftover is a control plane process an earlier dev process left running.
type leftover struct {
	name string
	pid  int
}

func (l leftover) String() string { return fmt.Sprintf("%s (pid %d)", l.name, l.pid) }

// findLeftovers lists the processes the pid files in <state>/run name that
// still run (the same pid and start time), and any etcd whose data folder
// is <state>/etcd (started by a version that wrote no pid files).
func findLeftovers(state string) []leftover {
	var out []leftover
	for _, name := range []string{"kube-apiserver", "etcd"} {
		b, err := os.ReadFile(filepath.Join(state, "run", name+".pid"))
		if err != nil {
			continue
		}
		var pid int
		var start uint64
		if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || pid <= 0 {
			continue
		}
		if s, err := startTime(pid); err == nil && s == start && running(pid) {
			out = append(out, leftover{name, pid})
		}
	}
	dataDir := filepath.Join(state, "etcd")
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "etcd" {
			continue
		}
		for i, a := range args {
			if a == "--data-dir="+dataDir || (a == "--data-dir" && i+1 < len(args) && args[i+1] == dataDir) {
				if running(pid) && !slices.ContainsFunc(out, func(l leftover) bool { return l.pid == pid }) {
					out = append(out, leftover{"etcd", pid})
				}
				break
			}
		}
	}
	return out
}

// stopLeftovers sends each the signal it would have got from the dev
// process's death (SIGTERM to etcd, SIGKILL to kube-apiserver), waits up to
// grace, then sends SIGKILL and waits a little more.
func stopLeftovers(list []leftover, grace time.Duration) error {
	signal := func(sig syscall.Signal) {
		for _, l := range list {
			if running(l.pid) {
				if s, ok := childSignals[l.name]; ok && sig == syscall.SIGTERM {
					_ = syscall.Kill(l.pid, s)
				} else {
					_ = syscall.Kill(l.pid, sig)
				}
			}
		}
	}
	gone := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for {
			if !slices.ContainsFunc(list, func(l leftover) bool { return running(l.pid) }) {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	signal(syscall.SIGTERM)
	if gone(grace) {
		return nil
	}
	signal(syscall.SIGKILL)
	if gone(5 * time.Second) {
		return nil
	}
	var still []string
	for _, l := range list {
		if running(l.pid) {
			still = append(still, l.String())
		}
	}
	return fmt.Errorf("could not stop %s, left running by an earlier scim-operator dev; stop it by hand", strings.Join(still, ", "))
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := statFields(string(stat))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// startTime is the process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat), which tells a process from a later one that
// reused its pid.
func startTime(pid int) (uint64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := statFields(string(stat))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// statFields are /proc/PID/stat's fields after the command name (which may
// hold spaces and parentheses): the state is the first.
func statFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

func writeFileAtomic(path, content string, mode os.FileMode) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
