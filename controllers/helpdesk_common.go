package controllers

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/tenancy"
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
	// ReasonSuspended: the tenant's ProvisioningConfig suspends the sync;
	// the object is written when it resumes.
	ReasonSuspended = "Suspended"
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

// setSuspended marks an object of kind that waits for its tenant's sync to
// resume.
func setSuspended(conds *[]metav1.Condition, gen int64, kind string) {
	setSynced(conds, gen, metav1.ConditionFalse, ReasonSuspended,
		"the tenant's ProvisioningConfig suspends the helpdesk sync; this "+kind+" is written when it resumes")
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

// syncTimeout bounds one reconcile of a user or group: a database that
// stops answering (a network that drops packets) would otherwise hold the
// worker for ever. Generous, for the first sync of a 100,000-member group
// on a slow database; the per-database write slots (tenancy.Directory)
// keep the other tenants going meanwhile.
const syncTimeout = 2 * time.Minute

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

// Targets says where each tenant's rows go (a tenancy.Directory): the
// database of its ProvisioningConfig or the operator's, the deletion
// policy, suspension. Without it every tenant goes to the reconciler's
// Store with its DeletionPolicy.
type Targets interface {
	For(ctx context.Context, obj client.ObjectKey, kind string) (tenancy.Target, error)
	// Subscribe tells of tenants whose target changed: the controller
	// writes every object of the namespace again.
	Subscribe() <-chan event.GenericEvent
}

// target resolves the tenant of namespace for one reconcile of kind.
func target(ctx context.Context, targets Targets, store helpdesk.Store, policy helpdesk.DeletionPolicy, namespace, name, kind string) (tenancy.Target, error) {
	if targets == nil {
		return tenancy.Target{Store: store, DeletionPolicy: policy}, nil
	}
	return targets.For(ctx, client.ObjectKey{Namespace: namespace, Name: name}, kind)
}

// Retry delays of a reconcile whose target is not ready: the tenant's
// config is being applied, or its database runs as many writes as it may.
// Neither is a failure, so neither counts towards the object's backoff.
const (
	pendingTargetRetry = time.Second
	busyTargetRetry    = 250 * time.Millisecond
)

// resync is the result of a reconcile that is done: look again after
// period, behind every object that changed meanwhile. A resync only
// repairs drift, and at 100,000 objects the due resyncs fill the queue:
// at the queue's default priority each new user waited behind them
// (69,267 queued at once during make bench-100k, 1-minute resync). A
// watch event raises the object's priority again.
func resync(period time.Duration) ctrl.Result {
	return ctrl.Result{RequeueAfter: period, Priority: ptr.To(handler.LowPriority)}
}

// waitForTarget tells whether err only asks to come back shortly, and when.
func waitForTarget(err error) (ctrl.Result, bool) {
	switch {
	case errors.Is(err, tenancy.ErrPending):
		return ctrl.Result{RequeueAfter: pendingTargetRetry}, true
	case errors.Is(err, tenancy.ErrBusy):
		return ctrl.Result{RequeueAfter: busyTargetRetry}, true
	}
	return ctrl.Result{}, false
}

// everyObjectOf maps a tenant-changed event (naming the namespace) to a
// request for every object of list's kind in that namespace.
func everyObjectOf(c client.Reader, newList func() client.ObjectList) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.UnsafeDisableDeepCopy); err != nil {
			// A cache list fails only while the cache stops; the periodic
			// resync writes the tenant then.
			ctrl.LoggerFrom(ctx).Error(err, "listing a tenant's objects to write them again", "namespace", o.GetNamespace())
			return nil
		}
		var reqs []reconcile.Request
		_ = meta.EachListItem(list, func(obj runtime.Object) error {
			if m, ok := obj.(client.Object); ok {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(m)})
			}
			return nil
		})
		return reqs
	}
}
