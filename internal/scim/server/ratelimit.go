package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// tokenRates holds one token bucket per bearer token (by fingerprint). The
// number of tokens is the number of ScimTokens, so the map stays small.
type tokenRates struct {
	limit rate.Limit
	burst int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

func newTokenRates(perSecond float64, burst int) *tokenRates {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(2 * perSecond)
	}
	return &tokenRates{limit: rate.Limit(perSecond), burst: max(burst, 1), limiters: map[string]*rate.Limiter{}}
}

// allow takes one request from the token's bucket; when it is empty it
// says how long until the next request would be allowed.
func (t *tokenRates) allow(fingerprint string) (time.Duration, bool) {
	if t == nil {
		return 0, true
	}
	t.mu.Lock()
	l, ok := t.limiters[fingerprint]
	if !ok {
		l = rate.NewLimiter(t.limit, t.burst)
		t.limiters[fingerprint] = l
	}
	t.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel() // a refused request must not use up the next one's slot
		return d, false
	}
	return 0, true
}
