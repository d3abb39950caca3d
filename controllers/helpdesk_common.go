package controllers

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// Reasons of the Synced condition on users and groups.
const (
	ReasonSynced = "Synced"
	// ReasonTruncated goes with Synced=True: the row holds this generation,
	// but some optional values were longer than their column and are
	// stored cut (the message names the fields).
	ReasonTruncated           = "Truncated"
	ReasonDatabaseUnavailable = "DatabaseUnavailable"
	ReasonConflict            = "Conflict"
	ReasonInvalid             = "Invalid"
	// ReasonMembersUnavailable: a group's member list could not be read
	// from its GroupMembership shards.
	ReasonMembersUnavailable = "MembersUnavailable"

	EventDriftRepaired = "DriftRepaired"
	EventSyncFailed    = "SyncFailed"
	EventDeleted       = "DeletedFromHelpdesk"
	// EventTruncated names (never with their values) the fields stored cut.
	EventTruncated = "Truncated"
	// EventAbandonedDeleted: a group whose create was never acknowledged
	// was deleted.
	EventAbandonedDeleted = "AbandonedCreateDeleted"
)

// syncFailureReason classifies a store error for the Synced condition.
// Anything that is neither a conflict nor an invalid value is taken for the
// database being unavailable, the one failure that a retry can cure alone.
func syncFailureReason(err error) string {
	switch {
	case errors.Is(err, helpdesk.ErrConflict):
		return ReasonConflict
	case errors.Is(err, helpdesk.ErrInvalid):
		return ReasonInvalid
	default:
		return ReasonDatabaseUnavailable
	}
}

// specOrMetadataChanged filters the updates of the synced kinds down to
// those a reconcile has to see: a new generation (spec), the deletion
// timestamp, finalizers, labels and annotations. Status-only updates, the
// controllers' own status writes among them, are dropped: otherwise a
// reconcile that fails and writes its status would be queued again at once
// by the watch, bypassing its exponential backoff. Creates, deletes and
// generic events all pass.
func specOrMetadataChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		if o == nil || n == nil {
			return true
		}
		return o.GetGeneration() != n.GetGeneration() ||
			!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
			!slices.Equal(o.GetFinalizers(), n.GetFinalizers()) ||
			!maps.Equal(o.GetLabels(), n.GetLabels()) ||
			!maps.Equal(o.GetAnnotations(), n.GetAnnotations())
	}}
}

// SyncMetrics measure how long provisioning takes to reach the helpdesk.
type SyncMetrics struct {
	// Lag is the time from the SCIM write (the object's last-modified
	// annotation) to the database commit that carried it.
	Lag *prometheus.HistogramVec
}

// NewSyncMetrics registers the helpdesk sync metrics on reg; a second
// operator in the same process (tests) reuses the first's collector.
func NewSyncMetrics(reg prometheus.Registerer) (*SyncMetrics, error) {
	lag := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scim_helpdesk_sync_lag_seconds",
		Help:    "Time from a SCIM write to the helpdesk database commit that carried it, by kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300},
	}, []string{"kind"})
	if err := reg.Register(lag); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		lag = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	return &SyncMetrics{Lag: lag}, nil
}

func (m *SyncMetrics) observe(kind string, meta *metav1.ObjectMeta, now time.Time) {
	t, err := time.Parse(time.RFC3339Nano, meta.Annotations[repository.AnnotationLastModified])
	if err == nil {
		m.observeSince(kind, t, now)
	}
}

// observeSince records the lag of a write made at t and committed at now.
func (m *SyncMetrics) observeSince(kind string, t, now time.Time) {
	if m == nil || t.IsZero() || now.Before(t) {
		return
	}
	m.Lag.WithLabelValues(kind).Observe(now.Sub(t).Seconds())
}

// Retry pacing of the helpdesk sync after a failed reconcile: exponential
// per object, from syncRetryBase up to syncRetryCap.
const (
	syncRetryBase = 100 * time.Millisecond
	syncRetryCap  = 30 * time.Second
)

// syncRateLimiter paces the retries of failed syncs. controller-runtime's
// default caps each object at 1,000 s and adds a global 10-per-second
// bucket: after a database outage that failed 100,000 rows, the last ones
// would be retried hours later. Here every object is retried at least every
// syncRetryCap, so a deactivation lands within that much of the database
// coming back (I1 in docs/invariants.md), and a row that keeps failing
// still backs off instead of spinning.
func syncRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](syncRetryBase, syncRetryCap)
}
