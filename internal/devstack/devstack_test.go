package devstack

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = checkPort(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "--scim-bind-address") {
		t.Fatalf("a port in use must say how to choose another, got %v", err)
	}
}

func TestCheckState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := checkState(dir); err != nil {
		t.Fatalf("a new folder: %v", err)
	}
	if err := checkState(dir); err != nil {
		t.Fatalf("the same folder again: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("scim-operator-dev/v0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkState(dir)
	if err == nil || !strings.Contains(err.Error(), "incompatible version") || !strings.Contains(err.Error(), "rm -rf") {
		t.Fatalf("an old state folder must be refused with what to do, got %v", err)
	}
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkState(foreign); err == nil || !strings.Contains(err.Error(), "another --state-dir") {
		t.Fatalf("a folder of something else must be refused, got %v", err)
	}
}
