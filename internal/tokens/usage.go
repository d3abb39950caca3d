package tokens

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// UsageOptions configure a UsageRecorder. Zero values take the defaults.
type UsageOptions struct {
	// MinInterval is the least time between two writes of the same
	// token's lastUsedAt. Default 1m.
	MinInterval time.Duration
	// FlushInterval is how often pending uses are written. Default 10s.
	FlushInterval time.Duration
	// MaxPending bounds memory; uses beyond it are dropped until the next
	// flush (lastUsedAt is advisory). Default 10000.
	MaxPending int
	// Clock dates the uses; flushes run on wall-clock time.
	Clock  clock.PassiveClock
	Logger logr.Logger
}

// The SCIM server's permissions (ClusterRole scim-role): reading tokens,
// and stamping their usage.
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens,verbs=get;list;watch,roleName=scim-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens/status,verbs=patch,roleName=scim-role

// UsageRecorder writes status.lastUsedAt and status.previousLastUsedAt,
// at most once per MinInterval per token and fingerprint, never once per
// request. It runs on every replica (each serves requests); reading the
// cached status first keeps N replicas from writing N times a minute.
type UsageRecorder struct {
	client client.Client // writes status
	reader client.Reader // the cache
	opts   UsageOptions

	mu      sync.Mutex
	pending map[usageKey]time.Time // last use not yet written
	written map[usageKey]time.Time // when each key was last written
}

type usageKey struct {
	namespace, name, fingerprint string
}

var _ manager.Runnable = (*UsageRecorder)(nil)
var _ manager.LeaderElectionRunnable = (*UsageRecorder)(nil)

// NewUsageRecorder returns a recorder that reads ScimTokens from reader
// (mgr.GetCache()) and patches their status with c. Add it to the manager
// with mgr.Add.
func NewUsageRecorder(c client.Client, reader client.Reader, opts UsageOptions) *UsageRecorder {
	recorderDefaults(&opts.MinInterval, &opts.FlushInterval, &opts.MaxPending, &opts.Clock, &opts.Logger)
	return &UsageRecorder{
		client: c, reader: reader, opts: opts,
		pending: map[usageKey]time.Time{},
		written: map[usageKey]time.Time{},
	}
}

// Record notes that p authenticated a request now. It is cheap and never
// blocks on the API server.
func (r *UsageRecorder) Record(p Principal) {
	now := r.opts.Clock.Now()
	k := usageKey{p.Namespace, p.TokenName, p.Fingerprint}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.written[k]; ok && now.Sub(w) < r.opts.MinInterval {
		return
	}
	if _, ok := r.pending[k]; !ok && len(r.pending) >= r.opts.MaxPending {
		return
	}
	r.pending[k] = now
}

// NeedLeaderElection is false: every replica serves requests and records
// their use.
func (r *UsageRecorder) NeedLeaderElection() bool { return false }

// Start flushes every FlushInterval until ctx ends, then once more.
func (r *UsageRecorder) Start(ctx context.Context) error {
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Best effort on shutdown, with a fresh short deadline.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			r.Flush(fctx)
			return nil
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// Flush writes the pending uses. Failures are logged and the use retried at
// the next flush.
func (r *UsageRecorder) Flush(ctx context.Context) {
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[usageKey]time.Time, len(batch))
	now := r.opts.Clock.Now()
	for k, w := range r.written {
		if now.Sub(w) >= r.opts.MinInterval {
			delete(r.written, k) // bounded: only keys written in the last MinInterval stay
		}
	}
	// Mark the batch written before writing, so that requests arriving
	// meanwhile are not queued for a second write.
	for k := range batch {
		r.written[k] = now
	}
	r.mu.Unlock()

	for k, usedAt := range batch {
		err := r.write(ctx, k, usedAt)
		if err != nil {
			r.mu.Lock()
			delete(r.written, k)
			if _, newer := r.pending[k]; !newer {
				r.pending[k] = usedAt
			}
			r.mu.Unlock()
			r.opts.Logger.Error(err, "recording token use", "namespace", k.namespace, "scimToken", k.name,
				"fingerprint", ShortFingerprint(k.fingerprint))
		}
	}
}

// write stamps one use. The patch carries the resourceVersion the field
// was decided from, so that a rotation written in between (which moves the
// current token to previous) makes it conflict and decide again, instead of
// stamping the previous token's use on the new one.
func (r *UsageRecorder) write(ctx context.Context, k usageKey, usedAt time.Time) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = r.writeOnce(ctx, k, usedAt); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

func (r *UsageRecorder) writeOnce(ctx context.Context, k usageKey, usedAt time.Time) error {
	var t scimv1.ScimToken
	if err := r.reader.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading ScimToken %s/%s: %w", k.namespace, k.name, err)
	}
	// Decide the field from the current status: a rotation since the
	// request may have turned the current token into the previous one.
	var field string
	var last *metav1.Time
	switch k.fingerprint {
	case t.Status.Fingerprint:
		field, last = "lastUsedAt", t.Status.LastUsedAt
	case t.Status.PreviousFingerprint:
		field, last = "previousLastUsedAt", t.Status.PreviousLastUsedAt
	default:
		return nil // revoked meanwhile
	}
	// Another replica (or an earlier write) recorded a use recently enough.
	if last != nil && usedAt.Sub(last.Time) < r.opts.MinInterval {
		return nil
	}
	body, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": t.ResourceVersion},
		"status":   map[string]any{field: metav1.NewTime(usedAt.UTC().Truncate(time.Second))},
	})
	if err != nil {
		return fmt.Errorf("encoding the status patch: %w", err)
	}
	if err := r.client.Status().Patch(ctx, &t, client.RawPatch(types.MergePatchType, body)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsConflict(err) {
			return err // decided from an older status: decide again
		}
		return fmt.Errorf("patching %s of ScimToken %s/%s: %w", field, k.namespace, k.name, err)
	}
	return nil
}

// recorderDefaults fills the zero options of the status recorders (usage
// stamps, activity): at most one write a minute per token, a flush every
// 10 s, 10,000 tokens pending at most.
func recorderDefaults(minInterval, flushInterval *time.Duration, maxPending *int, clk *clock.PassiveClock, log *logr.Logger) {
	if *minInterval <= 0 {
		*minInterval = time.Minute
	}
	if *flushInterval <= 0 {
		*flushInterval = 10 * time.Second
	}
	if *maxPending <= 0 {
		*maxPending = 10000
	}
	if *clk == nil {
		*clk = clock.RealClock{}
	}
	if log.GetSink() == nil {
		*log = logr.Discard()
	}
}
