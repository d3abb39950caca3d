package tokens

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestFailureLimiterBurstAndRefill(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	l := NewFailureLimiter(LimiterOptions{Clock: clk})
	const addr = "192.0.2.1"
	for i := range 10 {
		if !l.Allow(addr) {
			t.Fatalf("refused after %d failures, want 10 allowed", i)
		}
		l.Fail(addr)
	}
	if l.Allow(addr) {
		t.Fatal("allowed after 10 failures")
	}
	if !l.Allow("192.0.2.2") {
		t.Fatal("another address is limited too")
	}
	// Asking does not cost: still limited, not more so.
	clk.SetTime(clk.Now().Add(5 * time.Second))
	if l.Allow(addr) {
		t.Fatal("allowed before a refill")
	}
	clk.SetTime(clk.Now().Add(time.Second))
	if !l.Allow(addr) {
		t.Fatal("not allowed after 6s")
	}
	l.Fail(addr)
	if l.Allow(addr) {
		t.Fatal("allowed twice after one refill")
	}
	// Failing while limited does not dig deeper than empty.
	l.Fail(addr)
	clk.SetTime(clk.Now().Add(6 * time.Second))
	if !l.Allow(addr) {
		t.Fatal("not allowed after the next refill")
	}
	// A long pause refills to the burst, no further.
	clk.SetTime(clk.Now().Add(time.Hour))
	for range 10 {
		l.Fail(addr)
	}
	if l.Allow(addr) {
		t.Fatal("burst grew beyond 10")
	}
}

// TestFailureLimiterFailDecides: Fail decides and records in one step, so
// concurrent failures get exactly the burst of 401s, and a refused one says
// when to retry.
func TestFailureLimiterFailDecides(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1_700_000_000, 0))
	l := NewFailureLimiter(LimiterOptions{Clock: clk})
	const addr = "192.0.2.1"
	var (
		wg      sync.WaitGroup
		allowed atomic.Int32
	)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, wait := l.Fail(addr); ok {
				if wait != 0 {
					t.Errorf("an allowed failure says wait %v", wait)
				}
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("%d of 200 concurrent failures within the budget, want the burst of 10", n)
	}
	ok, wait := l.Fail(addr)
	if ok || wait != 6*time.Second {
		t.Fatalf("limited failure: ok=%v wait=%v, want false and the 6s refill", ok, wait)
	}
	// Failing without pause keeps the address limited: every refused
	// failure restarts the refill.
	for range 10 {
		clk.SetTime(clk.Now().Add(5 * time.Second))
		if ok, _ := l.Fail(addr); ok {
			t.Fatal("a failure every 5s got through a 6s refill")
		}
	}
	clk.SetTime(clk.Now().Add(6 * time.Second))
	if ok, _ := l.Fail(addr); !ok {
		t.Fatal("after a 6s pause one failure is within the budget again")
	}
	if ok, _ := l.Fail("192.0.2.2"); !ok {
		t.Fatal("another address shares the budget")
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	l := NewFailureLimiter(LimiterOptions{Burst: 1, MaxAddresses: 3, Clock: clocktesting.NewFakePassiveClock(time.Unix(0, 0))})
	for i := range 10 {
		l.Fail(fmt.Sprintf("198.51.100.%d", i))
	}
	if l.Len() != 3 {
		t.Fatalf("remembers %d addresses, want 3", l.Len())
	}
	if l.Allow("198.51.100.9") {
		t.Error("the most recent address was forgotten")
	}
	if !l.Allow("198.51.100.0") {
		t.Error("the oldest address was not forgotten")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{ErrMissing, ErrMalformed, ErrUnknown, ErrUnknown, ErrInactive, ErrExpired, ErrAmbiguous, errors.New("cache down")} {
		m.Failed(FailureReason(err))
	}
	m.Failed(ReasonRateLimited)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != "scim_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	for reason, want := range map[string]float64{
		ReasonMissing: 1, ReasonMalformed: 1, ReasonUnknown: 2, ReasonInactive: 1, ReasonExpired: 1,
		ReasonAmbiguous: 1, ReasonError: 1, ReasonRateLimited: 1,
	} {
		if got[reason] != want {
			t.Errorf("%s: %v, want %v", reason, got[reason], want)
		}
	}
	// Nothing lands on the global registry.
	global, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range global {
		if mf.GetName() == "scim_auth_failures_total" {
			t.Error("scim_auth_failures_total registered globally")
		}
	}
}
