package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pruneEvery is how many calls pass between two sweeps of idle buckets.
const pruneEvery = 1024

// tokenRates holds one token bucket per bearer token (by fingerprint).
// Tokens come and go (rotation gives every token a new fingerprint), so
// buckets are swept lazily, every pruneEvery calls, by the calls
// themselves: no goroutine of its own. A bucket unused for longer than it
// takes to refill from empty is full, the state a new bucket starts in, so
// dropping it changes no answer. The map holds at most the tokens used in
// the last refill time plus pruneEvery.
type tokenRates struct {
	limit rate.Limit
	burst int
	// idle is the time an empty bucket takes to fill up: burst/limit.
	idle time.Duration
	now  func() time.Time

	mu       sync.Mutex
	limiters map[string]*tokenRate
	calls    int
}

type tokenRate struct {
	*rate.Limiter
	last time.Time // the last call, guarded by tokenRates.mu
}

func newTokenRates(perSecond float64, burst int) *tokenRates {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(2 * perSecond)
	}
	burst = max(burst, 1)
	return &tokenRates{limit: rate.Limit(perSecond), burst: burst,
		idle: time.Duration(float64(burst) / perSecond * float64(time.Second)),
		now:  time.Now, limiters: map[string]*tokenRate{}}
}

// allow takes one request from the token's bucket; when it is empty it
// says how long until the next request would be allowed.
func (t *tokenRates) allow(fingerprint string) (time.Duration, bool) {
	if t == nil {
		return 0, true
	}
	return t.allowAt(fingerprint, t.now())
}

// allowAt is allow at the given time (tests pass a fake one).
func (t *tokenRates) allowAt(fingerprint string, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	if t.calls++; t.calls >= pruneEvery {
		t.calls = 0
		t.pruneLocked(now)
	}
	l, ok := t.limiters[fingerprint]
	if !ok {
		l = &tokenRate{Limiter: rate.NewLimiter(t.limit, t.burst)}
		t.limiters[fingerprint] = l
	}
	l.last = now
	t.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request must not use up the next one's slot
		return d, false
	}
	return 0, true
}

// pruneLocked drops the buckets that are full and were not used for
// longer than their refill time.
func (t *tokenRates) pruneLocked(now time.Time) {
	for fp, l := range t.limiters {
		if now.Sub(l.last) > t.idle && l.TokensAt(now) >= float64(t.burst) {
			delete(t.limiters, fp)
		}
	}
}

// size is the number of buckets held.
func (t *tokenRates) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.limiters)
}
