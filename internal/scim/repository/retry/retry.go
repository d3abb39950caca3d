// Package retry paces the retries of writes that lost an optimistic
// concurrency race (a 409 Conflict from the API server): jittered
// exponential back-off, so that racing writers spread out, within a time
// budget rather than a count.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// MaxConflicts bounds how often a NameClaim write is retried after another
// writer changed the claim in between.
const MaxConflicts = 8

// Budget bounds how long an update keeps retrying after conflicts. A count
// alone is not enough: n writers racing on one object (member PATCHes of
// one group all append to its newest shard) let one win per round, so the
// last needs n attempts.
const Budget = 5 * time.Second

// Backoff paces the attempts of one write.
type Backoff struct {
	deadline time.Time
	attempt  int
}

// New starts the budget of one write now.
func New() *Backoff { return &Backoff{deadline: time.Now().Add(Budget)} }

// Wait sleeps before the next attempt; false means give up.
func (b *Backoff) Wait(ctx context.Context) bool {
	b.attempt++
	if ctx.Err() != nil || time.Now().After(b.deadline) {
		return false
	}
	ceiling := min(time.Millisecond<<min(b.attempt, 7), 100*time.Millisecond)
	d := time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond //nolint:gosec // jitter, not a secret
	return Sleep(ctx, d)
}

// Sleep sleeps for d; false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
