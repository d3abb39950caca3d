package server

import (
	"fmt"
	"testing"
	"time"
)

func TestTokenRates(t *testing.T) {
	if _, ok := (*tokenRates)(nil).allow("x"); !ok {
		t.Fatal("a disabled limit must allow everything")
	}
	r := newTokenRates(1, 3)
	for i := range 3 {
		if _, ok := r.allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	wait, ok := r.allow("a")
	if ok || wait <= 0 {
		t.Fatalf("the 4th request in a burst of 3 must wait, got ok=%v wait=%v", ok, wait)
	}
	if _, ok := r.allow("b"); !ok {
		t.Fatal("another token has its own bucket")
	}
}

// TestTokenRatesPruned (issue 13): buckets of tokens no longer used are
// dropped once full and idle for their refill time, lazily every
// pruneEvery calls, so the map stays bounded however many tokens come and
// go; a bucket in use, or not yet full, is kept. Times are explicit.
func TestTokenRatesPruned(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	r := newTokenRates(1, 3) // refills from empty in 3 s
	if r.idle != 3*time.Second {
		t.Fatalf("idle = %v, want 3s", r.idle)
	}
	// "a" empties its bucket at t0.
	for range 3 {
		r.allowAt("a", t0)
	}
	if _, ok := r.allowAt("a", t0); ok {
		t.Fatal("the 4th request at once was allowed")
	}
	// A sweep 2 s later keeps "a": not full, not idle long enough.
	for i := range pruneEvery {
		r.allowAt(fmt.Sprintf("busy-%d", i%10), t0.Add(2*time.Second))
	}
	if !r.has("a") {
		t.Fatal("a bucket used 2 s ago (refill 3 s) was dropped")
	}
	if _, ok := r.allowAt("a", t0.Add(2*time.Second)); !ok {
		t.Fatal("a bucket refilled for 2 s allows a request")
	}
	// 10 s later "a" is idle and full: the next sweep drops it, and the
	// ten busy tokens too, and keeps the one calling.
	for range pruneEvery {
		r.allowAt("caller", t0.Add(10*time.Second))
	}
	if r.has("a") || r.size() != 1 {
		t.Fatalf("after the sweep %d buckets remain (a kept: %v), want only the caller's", r.size(), r.has("a"))
	}
	// A token seen again starts with the full burst, as it would have had.
	for i := range 3 {
		if _, ok := r.allowAt("a", t0.Add(11*time.Second)); !ok {
			t.Fatalf("request %d of a returning token refused", i)
		}
	}

	// Bounded: 20 sweeps' worth of one-off tokens, each used once, one
	// refill time after the previous one.
	r = newTokenRates(1, 3)
	at := t0
	for i := range 20 * pruneEvery {
		at = at.Add(r.idle + time.Millisecond)
		r.allowAt(fmt.Sprintf("rotated-%d", i), at)
		if n := r.size(); n > pruneEvery {
			t.Fatalf("%d buckets after %d one-off tokens, want at most %d", n, i+1, pruneEvery)
		}
	}
}

func (t *tokenRates) has(fp string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.limiters[fp]
	return ok
}
