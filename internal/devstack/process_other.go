//go:build !linux

package devstack

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Elsewhere than Linux there is no parent-death signal: envtest starts the
// binaries directly, and a dev process killed outright leaves them running.

// ChildArg is the Linux launcher's argument; see process_linux.go.
const ChildArg = "--control-plane-child"

// RunChild exists on Linux only.
func RunChild([]string) error { return errors.New(ChildArg + " works on Linux only") }

func launchers(_, assets string) (etcd, apiserver string, err error) {
	return filepath.Join(assets, "etcd"), filepath.Join(assets, "kube-apiserver"), nil
}

type stateLock struct{}

func (*stateLock) release() {}

func lockState(string) (*stateLock, error) { return &stateLock{}, nil }

type leftover struct {
	name string
	pid  int
}

func (l leftover) String() string { return fmt.Sprintf("%s (pid %d)", l.name, l.pid) }

func findLeftovers(string) []leftover { return nil }

func stopLeftovers([]leftover, time.Duration) error { return nil }

// TakeTerminal does nothing here.
func TakeTerminal() (restore func()) { return func() {} }
