package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// ProvisionedUserReconciler copies ProvisionedUsers into the helpdesk
// database: idempotent upserts while the user lives, the deletion policy
// once it is deleted (the finalizer guarantees the database hears of every
// deletion), and a periodic resync that repairs rows edited by hand.
//
// A deactivation always reaches the database (invariant I1): values too
// long for their column are stored cut, and when the row still cannot be
// written (a conflict, an invalid key) an inactive user's row is
// deactivated on its own. Rows converge to the custom resources
// (invariant I3): a row that holds a userName key its user no longer has,
// left behind by renames the controller never saw one by one, gives the
// key up to the user that has the name now.
type ProvisionedUserReconciler struct {
	client.Client
	// APIReader reads straight from the API server (mgr.GetAPIReader()):
	// before a userName key is taken from another user's row, that user is
	// re-read live when the cache says it still has the name. Optional;
	// without it the cache is trusted.
	APIReader client.Reader
	Store     helpdesk.Store
	Repo      *repository.Repository // membership clean-up on deletion
	Recorder  events.EventRecorder
	Metrics   *SyncMetrics
	// DeletionPolicy applies to deleted users; retain by default.
	DeletionPolicy helpdesk.DeletionPolicy
	// Targets, when set, picks each tenant's database and deletion policy
	// (its ProvisioningConfig) instead of Store and DeletionPolicy.
	Targets Targets
	// ResyncPeriod is how often a synced user is checked again for drift.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds parallel database writes.
	MaxConcurrentReconciles int
	// Clock defaults to the real clock; tests inject a fake one.
	Clock clock.PassiveClock

	// wake queues other users now: one whose stale key was released.
	wake chan event.GenericEvent
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers,verbs=get;list;watch;create;update;patch;delete,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers/status,verbs=get;update;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers/finalizers,verbs=update,roleName=controller-role

// maxKeyReleases bounds how many stale holders one reconcile clears before
// it gives up and retries later.
const maxKeyReleases = 3

// SetupWithManager registers the controller.
func (r *ProvisionedUserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("provisioneduser-controller")
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.wake = make(chan event.GenericEvent, 1024)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("provisioneduser").
		For(&scimv1.ProvisionedUser{}, builder.WithPredicates(specOrMetadataChanged())).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{}))
	if r.Targets != nil {
		// A tenant resumed or moved to another database: write it all.
		b = b.WatchesRawSource(source.Channel(r.Targets.Subscribe(), handler.EnqueueRequestsFromMapFunc(
			everyObjectOf(mgr.GetClient(), func() client.ObjectList { return &scimv1.ProvisionedUserList{} }))))
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1), RateLimiter: syncRateLimiter(),
		ReconciliationTimeout: syncTimeout}).
		Complete(r)
}

// Reconcile brings one user's row in line with its spec.
func (r *ProvisionedUserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	u := &scimv1.ProvisionedUser{}
	if err := r.Get(ctx, req.NamespacedName, u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, u)
	}
	// The SCIM server sets the finalizer at creation; objects made with
	// kubectl get it here, before anything reaches the database.
	if added, err := addFinalizer(ctx, r.Client, u, scimv1.FinalizerHelpdesk); added || err != nil {
		return ctrl.Result{}, err
	}
	snapshot := snapshotStatus(u)
	defer func() { retErr = errors.Join(retErr, snapshot.patch(ctx, r.Client, u)) }()
	return r.reconcileNormal(ctx, u)
}

// reconcileNormal writes the user's row and records the outcome in
// status.
func (r *ProvisionedUserReconciler) reconcileNormal(ctx context.Context, u *scimv1.ProvisionedUser) (ctrl.Result, error) {
	t, err := target(ctx, r.Targets, r.Store, r.DeletionPolicy, u.Namespace, u.Name, "user")
	if wait, ok := waitForTarget(err); ok {
		return wait, nil
	}
	if err != nil {
		setSynced(&u.Status.Conditions, u.Generation, metav1.ConditionFalse, ReasonDatabaseUnavailable, err.Error())
		return ctrl.Result{}, fmt.Errorf("upserting user %s/%s: %w", u.Namespace, u.Name, err)
	}
	defer t.Release()
	if t.Suspended {
		setSuspended(&u.Status.Conditions, u.Generation, "user")
		// The resume event queues it; the resync is the safety net.
		return resync(r.ResyncPeriod), nil
	}
	row, err := helpdeskUser(u)
	changed := false
	if err == nil {
		changed, err = r.upsert(ctx, t.Store, u, row)
	}
	if err != nil {
		return ctrl.Result{}, r.syncFailed(ctx, t.Store, u, err)
	}
	r.synced(ctx, u, row, changed)
	return resync(r.ResyncPeriod), nil
}

// synced records in status that the row holds this generation: the sync
// lag, or a drift repaired when the spec had not changed, and the fields
// stored cut.
func (r *ProvisionedUserReconciler) synced(ctx context.Context, u *scimv1.ProvisionedUser, row helpdesk.User, changed bool) {
	log := ctrl.LoggerFrom(ctx)
	now := r.Clock.Now()
	if changed {
		if u.Status.ObservedGeneration == u.Generation && meta.IsStatusConditionTrue(u.Status.Conditions, scimv1.ConditionSynced) {
			// Nothing new in the spec, yet the row differed: someone edited
			// or deleted it in the database.
			log.Info("repaired a helpdesk row that had drifted", "user", u.Name)
			r.Recorder.Eventf(u, nil, corev1.EventTypeNormal, EventDriftRepaired, "Sync", "the helpdesk row of user %s differed from the spec and was rewritten", u.Name)
		} else {
			r.Metrics.observe("user", &u.ObjectMeta, now)
		}
		u.Status.LastSyncTime = &metav1.Time{Time: now}
	}
	reason, msg := ReasonSynced, "the helpdesk database holds this generation"
	if _, cut := helpdesk.FitUser(row); len(cut) > 0 {
		// Field names only: the values are personal data.
		reason = ReasonTruncated
		msg = fmt.Sprintf("the helpdesk database holds this generation, with %s cut to the length of their columns", strings.Join(cut, ", "))
		if changed {
			log.Info("stored values cut to fit their helpdesk columns", "user", u.Name, "columns", cut)
			r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, EventTruncated, "Sync",
				"user %s: %s longer than the helpdesk's columns; stored cut to fit", u.Name, strings.Join(cut, ", "))
		}
	}
	setSynced(&u.Status.Conditions, u.Generation, metav1.ConditionTrue, reason, msg)
	u.Status.ObservedGeneration = u.Generation
}

// syncFailed records a failed upsert in the Synced condition and returns
// the error, so the request is retried with exponential backoff. When the
// database is reachable but refused the row and the user is inactive, the
// deactivation is written on its own: a user the identity provider
// disabled must not keep signing in to the helpdesk because, say, another
// row holds its new name.
func (r *ProvisionedUserReconciler) syncFailed(ctx context.Context, store helpdesk.Store, u *scimv1.ProvisionedUser, err error) error {
	reason := syncFailureReason(err)
	msg := err.Error()
	if reason != ReasonDatabaseUnavailable && !u.IsActive() {
		found, derr := store.DeactivateUser(ctx, u.Namespace, u.Name)
		switch {
		case derr != nil:
			msg += "; writing the deactivation alone failed too: " + derr.Error()
			err = errors.Join(err, derr)
		case found:
			msg += "; the deactivation was applied: the helpdesk row is inactive"
		default:
			msg += "; the helpdesk has no row for this user, so there is no sign-in to deactivate"
		}
	}
	setSynced(&u.Status.Conditions, u.Generation, metav1.ConditionFalse, reason, msg)
	r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, EventSyncFailed, "Sync", "writing user %s to the helpdesk database: %s", u.Name, reason)
	return fmt.Errorf("upserting user %s/%s: %w", u.Namespace, u.Name, err)
}

// upsert writes row. When another row holds the userName key, and that
// row's user no longer has the name (renamed or deleted while the
// controller was not looking, e.g. two users swapping names during a
// database outage), the stale key is released, its user queued to write
// its own row again, and the write retried at once.
func (r *ProvisionedUserReconciler) upsert(ctx context.Context, store helpdesk.Store, u *scimv1.ProvisionedUser, row helpdesk.User) (bool, error) {
	log := ctrl.LoggerFrom(ctx)
	for attempt := 0; ; attempt++ {
		changed, err := store.UpsertUser(ctx, row)
		var conflict *helpdesk.ConflictError
		if err == nil || !errors.As(err, &conflict) || conflict.Holder == "" || conflict.Holder == u.Name || attempt == maxKeyReleases {
			return changed, err
		}
		stale, why, herr := r.staleHolder(ctx, u.Namespace, conflict.Holder, conflict.Key)
		if herr != nil {
			return false, fmt.Errorf("%w; checking whether user %q still has the name: %w", err, conflict.Holder, herr)
		}
		if !stale {
			return false, fmt.Errorf("%w: user %q has the same userName (ignoring case); rename or delete one of the two", err, conflict.Holder)
		}
		released, rerr := store.ReleaseUserName(ctx, u.Namespace, conflict.Holder, conflict.Key)
		if rerr != nil {
			return false, rerr
		}
		if released {
			log.Info("released a stale userName key held by another user's row", "user", u.Name, "holder", conflict.Holder, "why", why)
		}
		r.wakeUser(u.Namespace, conflict.Holder)
	}
}

// staleHolder tells whether user holderID's row holds key only because the
// database has not caught up: the user is gone, being deleted, or has
// another userName now. The cache answers first; when it says the user
// still has the name (or does not know it) the API server is asked.
func (r *ProvisionedUserReconciler) staleHolder(ctx context.Context, namespace, holderID, key string) (bool, string, error) {
	verdict := func(h *scimv1.ProvisionedUser) (bool, string) {
		switch {
		case !h.DeletionTimestamp.IsZero():
			return true, "its ProvisionedUser is being deleted"
		case namekey.Key(h.Spec.UserName) != key:
			return true, "its ProvisionedUser has another userName now"
		default:
			return false, ""
		}
	}
	id := client.ObjectKey{Namespace: namespace, Name: holderID}
	var h scimv1.ProvisionedUser
	err := r.Get(ctx, id, &h)
	inCache := err == nil
	switch {
	case inCache:
		if stale, why := verdict(&h); stale {
			return true, why, nil
		}
	case !apierrors.IsNotFound(err):
		return false, "", fmt.Errorf("reading user %s from the cache: %w", holderID, err)
	}
	if r.APIReader == nil {
		if !inCache {
			return true, "its ProvisionedUser does not exist", nil
		}
		return false, "", nil
	}
	if err := r.APIReader.Get(ctx, id, &h); err != nil {
		if apierrors.IsNotFound(err) {
			return true, "its ProvisionedUser does not exist", nil
		}
		return false, "", fmt.Errorf("reading user %s: %w", holderID, err)
	}
	stale, why := verdict(&h)
	return stale, why, nil
}

// wakeUser queues user name now rather than when its backoff ends. A full
// queue is fine: the user's own retry comes anyway.
func (r *ProvisionedUserReconciler) wakeUser(namespace, name string) {
	if r.wake == nil {
		return
	}
	select {
	case r.wake <- event.GenericEvent{Object: &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}:
	default:
	}
}

// reconcileDelete applies the deletion policy to the user's row, takes
// the user out of its groups, and only then lets the object go.
func (r *ProvisionedUserReconciler) reconcileDelete(ctx context.Context, u *scimv1.ProvisionedUser) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(u, scimv1.FinalizerHelpdesk) {
		return ctrl.Result{}, nil
	}
	t, err := target(ctx, r.Targets, r.Store, r.DeletionPolicy, u.Namespace, u.Name, "user")
	if wait, ok := waitForTarget(err); ok {
		return wait, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deleting user %s/%s from the helpdesk: %w", u.Namespace, u.Name, err)
	}
	defer t.Release()
	if t.Suspended {
		return resync(r.ResyncPeriod), nil // written when the tenant resumes
	}
	// The database first: the helpdesk must hear of the deletion even
	// while the group clean-up below keeps failing.
	if err := t.Store.DeleteUser(ctx, u.Namespace, u.Name, t.DeletionPolicy); err != nil {
		r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, EventSyncFailed, "Delete", "deleting user %s from the helpdesk database failed; retrying", u.Name)
		return ctrl.Result{}, fmt.Errorf("deleting user %s/%s from the helpdesk: %w", u.Namespace, u.Name, err)
	}
	r.Metrics.observe("user", &u.ObjectMeta, r.Clock.Now())
	// The database is done with: its write slot goes to the next row while
	// the groups are cleaned up through the API server (each group's
	// change waits for its turn there).
	t.Release()
	if r.Repo != nil {
		if err := r.Repo.RemoveFromAllGroups(ctx, u.Namespace, u.Name); err != nil {
			return ctrl.Result{}, fmt.Errorf("removing deleted user %s from its groups: %w", u.Name, err)
		}
	}
	r.Recorder.Eventf(u, nil, corev1.EventTypeNormal, EventDeleted, "Delete", "user %s deleted from the helpdesk database (policy %s)", u.Name, policyName(t.DeletionPolicy))
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, u, scimv1.FinalizerHelpdesk)
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

// helpdeskUser maps the SCIM user onto the helpdesk's row. Custom fields
// that do not decode as JSON are an error wrapping helpdesk.ErrInvalid
// (naming the fields), never silently left out.
func helpdeskUser(u *scimv1.ProvisionedUser) (helpdesk.User, error) {
	s := &u.Spec
	row := helpdesk.User{
		Tenant: u.Namespace, SCIMID: u.Name, UserName: s.UserName, UserNameKey: namekey.Key(s.UserName),
		ExternalID: s.ExternalID, DisplayName: s.DisplayName, Title: s.Title, PreferredLanguage: s.PreferredLanguage,
		Active: u.IsActive(), PrimaryEmail: primary(s.Emails), Phone: primary(s.PhoneNumbers),
	}
	if s.Name != nil {
		row.GivenName, row.FamilyName = s.Name.GivenName, s.Name.FamilyName
	}
	e := s.Enterprise
	if e == nil {
		return row, nil
	}
	row.Department, row.EmployeeNumber, row.ManagerSCIMID = e.Department, e.EmployeeNumber, e.Manager
	if len(e.CustomFields) == 0 {
		return row, nil
	}
	row.CustomFields = map[string]any{}
	var bad []string
	for k, raw := range e.CustomFields {
		var v any
		if err := json.Unmarshal(raw.Raw, &v); err != nil {
			bad = append(bad, k)
			continue
		}
		row.CustomFields[k] = v
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return row, fmt.Errorf("%w: custom fields %s do not hold JSON values", helpdesk.ErrInvalid, strings.Join(bad, ", "))
	}
	return row, nil
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
