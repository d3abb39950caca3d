package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestMakeRunCtrlC runs `make run` in a terminal of its own (a pty, the
// test as its user), waits for the ready line and types Ctrl-C: make must
// exit with status 0, print no "Error", and leave no process behind.
func TestMakeRunCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; run without -short")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on PATH")
	}
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()

	state := filepath.Join(t.TempDir(), "state")
	cmd := makeRunInTerminal(t, assets, state, slave)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()

	printed, ready := readTerminal(master)

	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("make run ended before it was ready (%v):\n%s", err, printed())
	case <-time.After(4 * time.Minute):
		t.Fatalf("make run was not ready within 4 minutes:\n%s", printed())
	}
	if _, err := master.Write([]byte{3}); err != nil { // Ctrl-C, as typed
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("make run exited with %v after Ctrl-C, want status 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("make run did not stop within a minute of Ctrl-C:\n%s", printed())
	}
	// Let the reader drain what was written before the exit.
	time.Sleep(100 * time.Millisecond)
	text := printed()
	if strings.Contains(text, "make: ***") || strings.Contains(text, "] Error") || !strings.Contains(text, "==> stopping the control plane") {
		t.Errorf("want a clean stop without \"Error\":\n%s", text)
	}
	if left := processesMentioning(state); len(left) > 0 {
		t.Errorf("processes survived Ctrl-C: %v", left)
	}
}

// makeRunInTerminal is `make run` on the control plane in assets, with its
// state in state and the pty's slave end as its terminal.
func makeRunInTerminal(t *testing.T, assets, state string, slave *os.File) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "run", "DIR="+state, "DEV_FLAGS=--scim-bind-address="+freeAddr(t))
	cmd.Dir = testenv.RepoRoot()
	for _, kv := range os.Environ() {
		// An outer make (make test) must not hand its jobserver down.
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KUBEBUILDER_ASSETS="+assets)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own with the pty as controlling terminal: what a
	// shell gives the command typed into it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd
}

// readTerminal reads the master end of the pty until it closes: printed is
// everything read so far, and ready closes once the ready line is seen.
func readTerminal(master *os.File) (printed func() string, ready <-chan struct{}) {
	var mu sync.Mutex
	var out strings.Builder
	readyc := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		seen := false
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			if !seen && strings.Contains(out.String(), "\nready: ") {
				seen = true
				close(readyc)
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	printed = func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	return printed, readyc
}

// openPTY opens a pseudo-terminal pair with the kernel's default settings
// (Ctrl-C sends SIGINT to the foreground process group).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 { //nolint:gosec // the ioctl's documented argument
		master.Close()
		return nil, nil, errno
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 { //nolint:gosec // the ioctl's documented argument
		master.Close()
		return nil, nil, errno
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}
