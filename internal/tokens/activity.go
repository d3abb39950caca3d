package tokens

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// Activity buckets: status.activity keeps six 10-minute buckets, so "the
// last hour" is the current bucket and the five before it (50 to 60
// minutes).
const (
	ActivityBucket  = 10 * time.Minute
	activityBuckets = 6
	maxClientLen    = 128
)

// Request is what the SCIM server tells an ActivityRecorder about one
// authenticated request. It must carry no personal data: Path is the
// route's pattern (/Users/{id}), Detail the error's wording without the
// values it quoted.
type Request struct {
	Principal Principal
	At        time.Time
	// Operation is a bounded name such as createUser.
	Operation string
	// Write is true for a create, replace, patch or delete that succeeded.
	Write     bool
	Method    string
	Path      string
	Status    int
	ScimType  string
	Detail    string
	UserAgent string
}

// Refused says whether the request counts as refused.
func (q Request) Refused() bool { return q.Status >= 400 }

// ActivityOptions configure an ActivityRecorder. Zero values take the
// defaults.
type ActivityOptions struct {
	// MinInterval is the least time between two writes of one token's
	// activity, by any replica. Default 1m.
	MinInterval time.Duration
	// FlushInterval is how often pending activity is considered for
	// writing. Default 10s.
	FlushInterval time.Duration
	// MaxTokens bounds memory: requests of tokens beyond it are not
	// counted until the next write (activity is advisory). Default 10000.
	MaxTokens int
	Clock     clock.PassiveClock
	Logger    logr.Logger
}

// ActivityRecorder writes status.activity of ScimTokens: counts of the
// last hour, the last refusal, the last request's time and client.
//
// Design. Every replica serves requests, so every replica counts. Each
// keeps, per token, the counts it has not written yet, keyed by the
// 10-minute bucket they fall in. A write reads the token (from the API
// server), adds these counts into the matching buckets of
// status.activity, drops buckets older than the hour, recomputes the
// totals from the buckets and sends the result as a merge patch carrying
// the resourceVersion it was computed from: two replicas writing at once
// conflict, and the loser reads again and adds its counts to the winner's,
// so no count is lost or added twice. A replica writes a token's activity
// only when status.activity.updatedAt is at least MinInterval old, so the
// token is written at most once a minute whatever the number of replicas;
// the others keep counting and write at a later turn (with N replicas a
// replica's counts reach status within about N minutes). Counts of a
// replica that stops between its turns are lost, as are counts older than
// the hour when they are written. The totals describe the hour before
// updatedAt; the controller's IdentityProviderSilent condition, not these
// totals, says when requests stop.
type ActivityRecorder struct {
	client client.Client
	reader client.Reader
	opts   ActivityOptions

	mu      sync.Mutex
	pending map[tokenKey]*tokenActivity
}

type tokenKey struct{ namespace, name string }

// tokenActivity is what one replica has not written yet for one token.
type tokenActivity struct {
	buckets     map[time.Time]*counts
	lastAt      time.Time
	lastClient  string
	lastRefusal *scimv1.Refusal
}

type counts struct{ requests, writes, refused map[string]int64 }

func newCounts() *counts {
	return &counts{requests: map[string]int64{}, writes: map[string]int64{}, refused: map[string]int64{}}
}

var _ manager.Runnable = (*ActivityRecorder)(nil)
var _ manager.LeaderElectionRunnable = (*ActivityRecorder)(nil)

// NewActivityRecorder returns a recorder that reads ScimTokens with reader
// (the API reader: a write decided from a stale cache only conflicts) and
// patches their status with c. Add it to the manager with mgr.Add.
func NewActivityRecorder(c client.Client, reader client.Reader, opts ActivityOptions) *ActivityRecorder {
	recorderDefaults(&opts.MinInterval, &opts.FlushInterval, &opts.MaxTokens, &opts.Clock, &opts.Logger)
	return &ActivityRecorder{client: c, reader: reader, opts: opts, pending: map[tokenKey]*tokenActivity{}}
}

// RefusalKey is the key of Refused: the status, and the scimType if any.
func RefusalKey(status int, scimType string) string {
	if scimType == "" {
		return fmt.Sprint(status)
	}
	return fmt.Sprintf("%d %s", status, scimType)
}

// Record counts one request. It is cheap and never blocks on the API
// server. Requests without a token (refused before authentication) are
// ignored.
func (r *ActivityRecorder) Record(q Request) {
	if q.Principal.Namespace == "" || q.Principal.TokenName == "" {
		return
	}
	if q.At.IsZero() {
		q.At = r.opts.Clock.Now()
	}
	k := tokenKey{q.Principal.Namespace, q.Principal.TokenName}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.pending[k]
	if a == nil {
		if len(r.pending) >= r.opts.MaxTokens {
			return
		}
		a = &tokenActivity{buckets: map[time.Time]*counts{}}
		r.pending[k] = a
	}
	start := q.At.UTC().Truncate(ActivityBucket)
	c := a.buckets[start]
	if c == nil {
		c = newCounts()
		a.buckets[start] = c
	}
	c.requests[q.Operation]++
	if q.Write {
		c.writes[q.Operation]++
	}
	if q.Refused() {
		c.refused[RefusalKey(q.Status, q.ScimType)]++
		if a.lastRefusal == nil || !q.At.Before(a.lastRefusal.Time.Time) {
			a.lastRefusal = &scimv1.Refusal{Time: metav1.NewTime(q.At.UTC().Truncate(time.Second)),
				Method: q.Method, Path: q.Path, Status: int32(q.Status), ScimType: q.ScimType, //nolint:gosec // an HTTP status
				Detail: truncate(q.Detail, 256)}
		}
	}
	if !q.At.Before(a.lastAt) {
		a.lastAt, a.lastClient = q.At, truncate(q.UserAgent, maxClientLen)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// NeedLeaderElection is false: every replica serves requests and counts
// them.
func (r *ActivityRecorder) NeedLeaderElection() bool { return false }

// Start flushes every FlushInterval until ctx ends.
func (r *ActivityRecorder) Start(ctx context.Context) error {
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// Flush writes the pending activity of every token whose turn it is.
// Counts not written (not this replica's turn, a failure) stay pending.
func (r *ActivityRecorder) Flush(ctx context.Context) {
	r.mu.Lock()
	keys := slices.Collect(maps.Keys(r.pending))
	r.mu.Unlock()
	for _, k := range keys {
		if err := r.flushToken(ctx, k); err != nil {
			r.opts.Logger.Error(err, "recording token activity", "namespace", k.namespace, "scimToken", k.name)
		}
	}
}

func (r *ActivityRecorder) flushToken(ctx context.Context, k tokenKey) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var t scimv1.ScimToken
		if err = r.reader.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, &t); err != nil {
			if apierrors.IsNotFound(err) {
				r.mu.Lock()
				delete(r.pending, k)
				r.mu.Unlock()
				return nil
			}
			return fmt.Errorf("reading ScimToken %s/%s: %w", k.namespace, k.name, err)
		}
		now := r.opts.Clock.Now()
		if u := t.Status.Activity; u != nil && u.UpdatedAt != nil && now.Sub(u.UpdatedAt.Time) < r.opts.MinInterval {
			return nil // written recently, by this replica or another: a later turn
		}
		r.mu.Lock()
		a := r.pending[k]
		delete(r.pending, k)
		r.mu.Unlock()
		if a == nil {
			return nil
		}
		after := t.DeepCopy()
		after.Status.Activity = mergeActivity(t.Status.Activity, a, now)
		patch := client.MergeFromWithOptions(&t, client.MergeFromWithOptimisticLock{})
		err = r.client.Status().Patch(ctx, after, patch)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		r.restore(k, a) // counted again at the next attempt or flush
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("patching the activity of ScimToken %s/%s: %w", k.namespace, k.name, err)
		}
	}
	return nil // still conflicting: the counts stay pending
}

// restore puts counts that were not written back into pending, merged with
// what arrived meanwhile.
func (r *ActivityRecorder) restore(k tokenKey, a *tokenActivity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.pending[k]
	if cur == nil {
		r.pending[k] = a
		return
	}
	for start, c := range a.buckets {
		dst := cur.buckets[start]
		if dst == nil {
			cur.buckets[start] = c
			continue
		}
		addTo(dst.requests, c.requests)
		addTo(dst.writes, c.writes)
		addTo(dst.refused, c.refused)
	}
	if a.lastAt.After(cur.lastAt) {
		cur.lastAt, cur.lastClient = a.lastAt, a.lastClient
	}
	if a.lastRefusal != nil && (cur.lastRefusal == nil || !a.lastRefusal.Time.Before(&cur.lastRefusal.Time)) {
		cur.lastRefusal = a.lastRefusal
	}
}

func addTo(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

// MergeActivity adds one replica's unwritten activity a to the activity in
// status (nil when none) at now: counts into their 10-minute buckets,
// buckets older than the hour dropped, totals summed anew.
func mergeActivity(status *scimv1.TokenActivity, a *tokenActivity, now time.Time) *scimv1.TokenActivity {
	out := &scimv1.TokenActivity{}
	if status != nil {
		out = status.DeepCopy()
	}
	oldest := now.UTC().Truncate(ActivityBucket).Add(-(activityBuckets - 1) * ActivityBucket)
	byStart := map[time.Time]*counts{}
	for _, b := range out.Buckets {
		c := newCounts()
		addTo(c.requests, b.Requests)
		addTo(c.writes, b.Writes)
		addTo(c.refused, b.Refused)
		byStart[b.Start.UTC()] = c
	}
	for start, c := range a.buckets {
		dst := byStart[start]
		if dst == nil {
			dst = newCounts()
			byStart[start] = dst
		}
		addTo(dst.requests, c.requests)
		addTo(dst.writes, c.writes)
		addTo(dst.refused, c.refused)
	}
	out.Buckets = nil
	out.Requests, out.Writes, out.Refused, out.RefusedTotal = nil, nil, nil, 0
	total := newCounts()
	for _, start := range slices.SortedFunc(maps.Keys(byStart), time.Time.Compare) {
		if start.Before(oldest) {
			continue
		}
		c := byStart[start]
		out.Buckets = append(out.Buckets, scimv1.ActivityBucket{Start: metav1.NewTime(start),
			Requests: orNil(c.requests), Writes: orNil(c.writes), Refused: orNil(c.refused)})
		addTo(total.requests, c.requests)
		addTo(total.writes, c.writes)
		addTo(total.refused, c.refused)
	}
	out.Requests, out.Writes, out.Refused = orNil(total.requests), orNil(total.writes), orNil(total.refused)
	for _, n := range total.refused {
		out.RefusedTotal += n
	}
	if !a.lastAt.IsZero() && (out.LastRequestAt == nil || a.lastAt.After(out.LastRequestAt.Time)) {
		t := metav1.NewTime(a.lastAt.UTC().Truncate(time.Second))
		out.LastRequestAt, out.LastClient = &t, a.lastClient
	}
	// Times are kept to the second: within one second the pending one
	// (recorded after what status holds was read) is the later.
	if a.lastRefusal != nil && (out.LastRefusal == nil || !a.lastRefusal.Time.Before(&out.LastRefusal.Time)) {
		out.LastRefusal = a.lastRefusal.DeepCopy()
	}
	u := metav1.NewTime(now.UTC().Truncate(time.Second))
	out.UpdatedAt = &u
	return out
}

func orNil(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
