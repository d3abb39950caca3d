package server

import "testing"

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
