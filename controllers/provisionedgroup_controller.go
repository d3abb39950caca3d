package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// ProvisionedGroupReconciler copies ProvisionedGroups and their members
// (the GroupMembership shards) into the helpdesk database. Membership is
// written as a diff: only rows that changed are inserted or deleted.
//
// A group carrying the pending-members annotation is a create the SCIM
// server has not acknowledged yet: it is not written, and one left behind
// by a failed create is deleted once it is older than abandonedCreateAge.
type ProvisionedGroupReconciler struct {
	client.Client
	Store helpdesk.Store
	// Repo reads the members from the cache's shard index; without it the
	// controller lists the group's shards by label.
	Repo           *repository.Repository
	Recorder       events.EventRecorder
	Metrics        *SyncMetrics
	DeletionPolicy helpdesk.DeletionPolicy
	// Targets, when set, picks each tenant's database and deletion policy
	// (its ProvisioningConfig) instead of Store and DeletionPolicy.
	Targets                 Targets
	ResyncPeriod            time.Duration
	MaxConcurrentReconciles int
	// Clock defaults to the real clock; tests inject a fake one.
	Clock clock.PassiveClock
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedgroups,verbs=get;list;watch;create;update;patch;delete,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedgroups/status,verbs=get;update;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedgroups/finalizers,verbs=update,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=groupmemberships,verbs=get;list;watch;create;update;patch;delete;deletecollection,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=nameclaims,verbs=get;list;watch;create;update;delete,roleName=controller-role

const (
	// pendingRecheck is how soon a pending group is looked at again (its
	// acknowledgement, an annotation change, also queues it at once).
	pendingRecheck = 5 * time.Second
	// abandonedCreateAge is how old a pending group must be before it is
	// taken for a failed create and deleted: a SCIM create takes seconds,
	// so ten minutes is generous also against clock skew between the API
	// server (creationTimestamp) and this replica.
	abandonedCreateAge = 10 * time.Minute
)

// SetupWithManager registers the controller; a change to any shard
// reconciles its group.
func (r *ProvisionedGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("provisionedgroup-controller")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("provisionedgroup").
		For(&scimv1.ProvisionedGroup{}, builder.WithPredicates(specOrMetadataChanged())).
		Watches(&scimv1.GroupMembership{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				s, ok := o.(*scimv1.GroupMembership)
				if !ok {
					return nil
				}
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Group}}}
			}))
	if r.Targets != nil {
		// A tenant resumed or moved to another database: write it all.
		b = b.WatchesRawSource(source.Channel(r.Targets.Subscribe(), handler.EnqueueRequestsFromMapFunc(
			everyObjectOf(mgr.GetClient(), func() client.ObjectList { return &scimv1.ProvisionedGroupList{} }))))
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1), RateLimiter: syncRateLimiter(),
		ReconciliationTimeout: syncTimeout}).
		Complete(r)
}

// Reconcile brings one group's rows in line with its spec and shards.
func (r *ProvisionedGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	g := &scimv1.ProvisionedGroup{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !g.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, g)
	}
	// Not acknowledged to the identity provider yet: neither written nor
	// given the finalizer.
	if _, pending := g.Annotations[scimv1.AnnotationPendingMembers]; pending {
		return r.reconcilePending(ctx, g)
	}
	if added, err := addFinalizer(ctx, r.Client, g, scimv1.FinalizerHelpdesk); added || err != nil {
		return ctrl.Result{}, err
	}
	snapshot := snapshotStatus(g)
	defer func() { retErr = errors.Join(retErr, snapshot.patch(ctx, r.Client, g)) }()
	return r.reconcileNormal(ctx, g)
}

// reconcileNormal writes the group's row and its members, then records
// the outcome in status.
func (r *ProvisionedGroupReconciler) reconcileNormal(ctx context.Context, g *scimv1.ProvisionedGroup) (ctrl.Result, error) {
	t, err := target(ctx, r.Targets, r.Store, r.DeletionPolicy, g.Namespace, g.Name, "group")
	if wait, ok := waitForTarget(err); ok {
		return wait, nil
	}
	if err != nil {
		return r.failed(g, err, "writing", ReasonDatabaseUnavailable)
	}
	defer t.Release()
	if t.Suspended {
		setSuspended(&g.Status.Conditions, g.Generation, "group")
		// The resume event queues it; the resync is the safety net.
		return resync(r.ResyncPeriod), nil
	}
	changed, err := t.Store.UpsertGroup(ctx, helpdesk.Group{Tenant: g.Namespace, SCIMID: g.Name,
		DisplayName: g.Spec.DisplayName, ExternalID: g.Spec.ExternalID})
	if err != nil {
		return r.failed(g, err, "writing", syncFailureReason(err))
	}
	members, lastMemberChange, err := r.members(ctx, g)
	if err != nil {
		return r.failed(g, err, "reading members", ReasonMembersUnavailable)
	}
	added, removed, err := t.Store.SyncMembers(ctx, g.Namespace, g.Name, members)
	if err != nil {
		return r.failed(g, err, "syncing members", syncFailureReason(err))
	}
	if changed || added > 0 || removed > 0 {
		r.wrote(g, lastMemberChange, added, removed)
	}
	g.Status.Members = int32(min(len(members), math.MaxInt32)) //nolint:gosec // clamped
	setSynced(&g.Status.Conditions, g.Generation, metav1.ConditionTrue, ReasonSynced, "the helpdesk database holds this generation and its members")
	g.Status.ObservedGeneration = g.Generation
	return resync(r.ResyncPeriod), nil
}

// failed records a failed step in the Synced condition and returns the
// error, so the request is retried with exponential backoff.
func (r *ProvisionedGroupReconciler) failed(g *scimv1.ProvisionedGroup, err error, what, reason string) (ctrl.Result, error) {
	setSynced(&g.Status.Conditions, g.Generation, metav1.ConditionFalse, reason, err.Error())
	r.Recorder.Eventf(g, nil, corev1.EventTypeWarning, EventSyncFailed, "Sync", "%s of group %s failed: %s", what, g.Name, reason)
	return ctrl.Result{}, fmt.Errorf("%s of group %s/%s: %w", what, g.Namespace, g.Name, err)
}

// wrote records a write of the group's rows: the sync lag of the newest
// SCIM write, or a drift repaired when nothing was written through SCIM
// since the last sync.
func (r *ProvisionedGroupReconciler) wrote(g *scimv1.ProvisionedGroup, lastMemberChange time.Time, added, removed int) {
	now := r.Clock.Now()
	// The newest SCIM write: the group's own (a rename) or its shards'
	// (a membership change, which does not bump the generation).
	since, _ := time.Parse(time.RFC3339Nano, g.Annotations[repository.AnnotationLastModified])
	if lastMemberChange.After(since) {
		since = lastMemberChange
	}
	last := g.Status.LastSyncTime
	fromSCIM := g.Status.ObservedGeneration != g.Generation || !meta.IsStatusConditionTrue(g.Status.Conditions, scimv1.ConditionSynced) ||
		last == nil || !since.Before(last.Time)
	if fromSCIM {
		r.Metrics.observeSince("group", since, now)
	} else {
		// Nothing was written through SCIM since the last sync, yet the
		// rows differed: someone edited the database.
		r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, EventDriftRepaired, "Sync", "the helpdesk rows of group %s differed and were rewritten (%d added, %d removed)", g.Name, added, removed)
	}
	g.Status.LastSyncTime = &metav1.Time{Time: now}
}

// members returns the group's member ids and the newest SCIM write to its
// shards (for the sync lag), from the repository's index when there is
// one, else by listing the shards labelled with the group.
func (r *ProvisionedGroupReconciler) members(ctx context.Context, g *scimv1.ProvisionedGroup) ([]string, time.Time, error) {
	if r.Repo != nil {
		members, err := r.Repo.CachedMembers(ctx, g.Namespace, g.Name)
		if err != nil {
			return nil, time.Time{}, err
		}
		return members, r.Repo.LastMemberChange(ctx, g.Namespace, g.Name), nil
	}
	var list scimv1.GroupMembershipList
	if err := r.List(ctx, &list, client.InNamespace(g.Namespace), client.MatchingLabels{scimv1.LabelGroup: g.Name}); err != nil {
		return nil, time.Time{}, fmt.Errorf("listing the membership shards: %w", err)
	}
	var (
		members []string
		last    time.Time
	)
	for i := range list.Items {
		s := &list.Items[i]
		if s.Spec.Group != g.Name { // the spec, not the label, says whose shard it is
			continue
		}
		members = append(members, s.Spec.Members...)
		if t, err := time.Parse(time.RFC3339Nano, s.Annotations[repository.AnnotationLastModified]); err == nil && t.After(last) {
			last = t
		}
	}
	return members, last, nil
}

// reconcilePending handles a group whose create is not acknowledged yet:
// it is not written to the database (the identity provider has not been
// told it exists), and once it is older than abandonedCreateAge it is taken
// for a create that failed half-way and deleted.
func (r *ProvisionedGroupReconciler) reconcilePending(ctx context.Context, g *scimv1.ProvisionedGroup) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	age := r.Clock.Since(g.CreationTimestamp.Time)
	if age < abandonedCreateAge {
		log.V(1).Info("group create not acknowledged yet; not written to the helpdesk database", "group", g.Name, "age", age.String())
		return ctrl.Result{RequeueAfter: min(pendingRecheck, abandonedCreateAge-age)}, nil
	}
	// The preconditions keep a group acknowledged since the cache read.
	uid, rv := g.UID, g.ResourceVersion
	err := r.Delete(ctx, g, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case apierrors.IsConflict(err):
		return ctrl.Result{RequeueAfter: pendingRecheck}, nil // it changed: look again
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("deleting abandoned group %s/%s: %w", g.Namespace, g.Name, err)
	}
	log.Info("deleted a group whose create was never acknowledged", "group", g.Name, "age", age.String())
	r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, EventAbandonedDeleted, "Delete",
		"group %s was created %s ago and its create never completed; deleted", g.Name, age.Round(time.Second))
	return ctrl.Result{}, nil
}

// reconcileDelete applies the deletion policy to the group's rows,
// deletes its shards, and only then lets the object go.
func (r *ProvisionedGroupReconciler) reconcileDelete(ctx context.Context, g *scimv1.ProvisionedGroup) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(g, scimv1.FinalizerHelpdesk) {
		return ctrl.Result{}, nil
	}
	t, err := target(ctx, r.Targets, r.Store, r.DeletionPolicy, g.Namespace, g.Name, "group")
	if wait, ok := waitForTarget(err); ok {
		return wait, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deleting group %s/%s from the helpdesk: %w", g.Namespace, g.Name, err)
	}
	defer t.Release()
	if t.Suspended {
		return resync(r.ResyncPeriod), nil // written when the tenant resumes
	}
	if err := t.Store.DeleteGroup(ctx, g.Namespace, g.Name, t.DeletionPolicy); err != nil {
		r.Recorder.Eventf(g, nil, corev1.EventTypeWarning, EventSyncFailed, "Delete", "deleting group %s from the helpdesk database failed; retrying", g.Name)
		return ctrl.Result{}, fmt.Errorf("deleting group %s/%s from the helpdesk: %w", g.Namespace, g.Name, err)
	}
	// Shards are owned by the group, but a cluster without a garbage
	// collector (or a slow one) would keep them: delete them explicitly.
	if err := r.DeleteAllOf(ctx, &scimv1.GroupMembership{}, client.InNamespace(g.Namespace),
		client.MatchingLabels{scimv1.LabelGroup: g.Name}); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("deleting membership shards of group %s: %w", g.Name, err)
	}
	r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, EventDeleted, "Delete", "group %s deleted from the helpdesk database (policy %s)", g.Name, policyName(t.DeletionPolicy))
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, g, scimv1.FinalizerHelpdesk)
}
