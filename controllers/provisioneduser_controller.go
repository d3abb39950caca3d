package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// ProvisionedUserReconciler copies ProvisionedUsers into the helpdesk
// database: idempotent upserts while the user lives, the deletion policy
// once it is deleted (the finalizer guarantees the database hears of every
// deletion), and a periodic resync that repairs rows edited by hand.
type ProvisionedUserReconciler struct {
	client.Client
	Store    helpdesk.Store
	Repo     *repository.Repository // membership clean-up on deletion
	Recorder events.EventRecorder
	Metrics  *SyncMetrics
	// DeletionPolicy applies to deleted users; retain by default.
	DeletionPolicy helpdesk.DeletionPolicy
	// ResyncPeriod is how often a synced user is checked again for drift.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds parallel database writes.
	MaxConcurrentReconciles int
	Now                     func() time.Time
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers/finalizers,verbs=update

// SetupWithManager registers the controller.
func (r *ProvisionedUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("provisioneduser-controller")
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("provisioneduser").
		For(&scimv1.ProvisionedUser{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		Complete(r)
}

// Reconcile brings one user's row in line with its spec.
func (r *ProvisionedUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	log := logf.FromContext(ctx)
	u := &scimv1.ProvisionedUser{}
	if err := r.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, u)
	}
	// The SCIM server sets the finalizer at creation; objects made with
	// kubectl get it here, before anything reaches the database.
	if controllerutil.AddFinalizer(u, scimv1.FinalizerHelpdesk) {
		return ctrl.Result{}, r.Update(ctx, u)
	}

	before := u.Status.DeepCopy()
	defer func() {
		// Status is written only when it changed: one write per sync at
		// most, none for a resync that found nothing to do.
		if equality.Semantic.DeepEqual(before, &u.Status) {
			return
		}
		base := u.DeepCopy()
		base.Status = *before
		if err := r.Status().Patch(ctx, u, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("writing status: %w", err))
		}
	}()

	changed, err := r.Store.UpsertUser(ctx, helpdeskUser(u))
	if err != nil {
		reason := ReasonDatabaseUnavailable
		switch {
		case errors.Is(err, helpdesk.ErrConflict):
			reason = ReasonConflict
		case errors.Is(err, helpdesk.ErrInvalid):
			reason = ReasonInvalid
		}
		setSynced(&u.Status.Conditions, u.Generation, metav1.ConditionFalse, reason, err.Error())
		r.Recorder.Eventf(u, nil, "Warning", EventSyncFailed, "Sync", "writing user %s to the helpdesk database: %s", u.Name, reason)
		return ctrl.Result{}, fmt.Errorf("upserting user %s/%s: %w", u.Namespace, u.Name, err)
	}
	now := r.Now()
	if changed {
		if u.Status.ObservedGeneration == u.Generation && meta.IsStatusConditionTrue(u.Status.Conditions, scimv1.ConditionSynced) {
			// Nothing new in the spec, yet the row differed: someone edited
			// or deleted it in the database.
			log.Info("repaired a helpdesk row that had drifted", "user", u.Name)
			r.Recorder.Eventf(u, nil, "Normal", EventDriftRepaired, "Sync", "the helpdesk row of user %s differed from the spec and was rewritten", u.Name)
		} else {
			r.Metrics.observe("user", &u.ObjectMeta, now)
		}
		u.Status.LastSyncTime = &metav1.Time{Time: now}
	}
	setSynced(&u.Status.Conditions, u.Generation, metav1.ConditionTrue, ReasonSynced, "the helpdesk database holds this generation")
	u.Status.ObservedGeneration = u.Generation
	return ctrl.Result{RequeueAfter: r.ResyncPeriod}, nil
}

func (r *ProvisionedUserReconciler) reconcileDelete(ctx context.Context, u *scimv1.ProvisionedUser) error {
	if !controllerutil.ContainsFinalizer(u, scimv1.FinalizerHelpdesk) {
		return nil
	}
	if r.Repo != nil {
		if err := r.Repo.RemoveFromAllGroups(ctx, u.Namespace, u.Name); err != nil {
			return fmt.Errorf("removing deleted user %s from its groups: %w", u.Name, err)
		}
	}
	if err := r.Store.DeleteUser(ctx, u.Namespace, u.Name, r.DeletionPolicy); err != nil {
		r.Recorder.Eventf(u, nil, "Warning", EventSyncFailed, "Delete", "deleting user %s from the helpdesk database failed; retrying", u.Name)
		return fmt.Errorf("deleting user %s/%s from the helpdesk: %w", u.Namespace, u.Name, err)
	}
	r.Metrics.observe("user", &u.ObjectMeta, r.Now())
	r.Recorder.Eventf(u, nil, "Normal", EventDeleted, "Delete", "user %s deleted from the helpdesk database (policy %s)", u.Name, policyName(r.DeletionPolicy))
	base := u.DeepCopy()
	controllerutil.RemoveFinalizer(u, scimv1.FinalizerHelpdesk)
	return client.IgnoreNotFound(r.Patch(ctx, u, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}

func policyName(p helpdesk.DeletionPolicy) string {
	if p == "" {
		return string(helpdesk.DeletionPolicyRetain)
	}
	return string(p)
}

func setSynced(conds *[]metav1.Condition, gen int64, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: scimv1.ConditionSynced, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// helpdeskUser maps the SCIM user onto the helpdesk's row.
func helpdeskUser(u *scimv1.ProvisionedUser) helpdesk.User {
	s := &u.Spec
	row := helpdesk.User{
		Tenant: u.Namespace, SCIMID: u.Name, UserName: s.UserName, ExternalID: s.ExternalID,
		DisplayName: s.DisplayName, Title: s.Title, PreferredLanguage: s.PreferredLanguage, Active: u.IsActive(),
		PrimaryEmail: primary(s.Emails), Phone: primary(s.PhoneNumbers),
	}
	if s.Name != nil {
		row.GivenName, row.FamilyName = s.Name.GivenName, s.Name.FamilyName
	}
	if e := s.Enterprise; e != nil {
		row.Department, row.EmployeeNumber, row.ManagerSCIMID = e.Department, e.EmployeeNumber, e.Manager
		if len(e.CustomFields) > 0 {
			row.CustomFields = map[string]any{}
			for k, raw := range e.CustomFields {
				var v any
				if err := jsonUnmarshal(raw.Raw, &v); err == nil {
					row.CustomFields[k] = v
				}
			}
		}
	}
	return row
}

// primary picks the primary value, else the first work one, else the first.
func primary(list []scimv1.MultiValuedAttribute) string {
	for _, v := range list {
		if v.Primary && v.Value != "" {
			return v.Value
		}
	}
	for _, v := range list {
		if v.Type == "work" && v.Value != "" {
			return v.Value
		}
	}
	for _, v := range list {
		if v.Value != "" {
			return v.Value
		}
	}
	return ""
}
