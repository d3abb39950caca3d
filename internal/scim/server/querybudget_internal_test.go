package server

import (
	"context"
	"errors"
	"testing"
)

// TestScanBudget: a tenant gets at most its slots, other tenants share the
// replica's, released slots are free again and idle tenants leave nothing
// behind.
func TestScanBudget(t *testing.T) {
	cfg := Config{ScansPerTenant: 2, ScansTotal: 3, ScanWait: 1}
	cfg.defaults()
	b := newScanBudget(cfg)
	ctx := context.Background()

	a1, err := b.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquire(ctx, "a"); !errors.Is(err, errTenantScans) {
		t.Fatalf("third slot of tenant a: want errTenantScans, got %v", err)
	}
	b1, err := b.acquire(ctx, "b")
	if err != nil {
		t.Fatalf("tenant b refused while a holds its own slots: %v", err)
	}
	if _, err := b.acquire(ctx, "c"); !errors.Is(err, errAllScans) {
		t.Fatalf("fourth slot of the replica: want errAllScans, got %v", err)
	}
	a1()
	a1() // a second release gives nothing back twice
	c1, err := b.acquire(ctx, "c")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := b.acquire(ctx, "a"); !errors.Is(err, errAllScans) {
		t.Fatalf("replica full again: want errAllScans, got %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.acquire(cancelled, "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: want context.Canceled, got %v", err)
	}
	for _, release := range []func(){a2, b1, c1} {
		release()
	}
	if n := len(b.tenants); n != 0 {
		t.Errorf("%d tenants left behind after every slot was released", n)
	}
	if n := len(b.global); n != 0 {
		t.Errorf("%d replica slots still taken", n)
	}
}
