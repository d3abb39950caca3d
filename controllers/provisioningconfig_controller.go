package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/tenancy"
)

// ProvisioningConfigReconciler applies each tenant's ProvisioningConfig:
// it reads the database URL from the referenced Secret (live, `get` only,
// again at every check so that rotated credentials are picked up), records
// the tenant's database in the Directory the sync controllers ask, pings
// it, reads the custom fields it declares, and reports the tenant's sync
// in status.
type ProvisioningConfigReconciler struct {
	client.Client
	// SecretReader reads the database Secrets (mgr.GetAPIReader()): they
	// are not cached, so the operator needs only `get` on them.
	SecretReader client.Reader
	Directory    *tenancy.Directory
	// Allowed lists where tenant databases may be; a config naming another
	// place is refused (DatabaseReachable=False, DatabaseNotAllowed).
	Allowed tenancy.AllowedDatabases
	// CheckInterval is how often a config is checked again: the Secret
	// re-read, the database pinged, status recounted (default 10 s).
	CheckInterval time.Duration
	// Clock defaults to the real clock; tests inject a fake one.
	Clock clock.PassiveClock
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisioningconfigs,verbs=get;list;watch;update;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisioningconfigs/finalizers,verbs=update,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisioningconfigs/status,verbs=get;update;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisioningconfigs,verbs=get;list;watch,roleName=scim-role

// ReasonDatabaseNotAllowed is the reason when spec.database names a place
// outside the operator's --tenant-database-prefixes.
const ReasonDatabaseNotAllowed = "DatabaseNotAllowed"

const (
	defaultConfigCheck = 10 * time.Second
	pingTimeout        = 5 * time.Second
	openTimeout        = 30 * time.Second
)

// SetupWithManager registers the controller.
func (r *ProvisioningConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.CheckInterval <= 0 {
		r.CheckInterval = defaultConfigCheck
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("provisioningconfig").
		For(&scimv1.ProvisioningConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Several: a tenant database that hangs while it opens must not
		// hold back the other tenants' configs.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, ReconciliationTimeout: time.Minute,
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, 2*time.Minute)}).
		Complete(r)
}

// Reconcile applies one tenant's config and reports on it.
func (r *ProvisioningConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	cfg := &scimv1.ProvisioningConfig{}
	if err := r.Get(ctx, req.NamespacedName, cfg); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: the tenant goes back to the operator's database.
			r.Directory.Forget(req.Namespace)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !cfg.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, cfg)
	}
	// Finalizer first; the reconcile goes on (the patch is no new
	// generation, so no event would bring it back).
	if _, err := addFinalizer(ctx, r.Client, cfg, scimv1.FinalizerTenantSync); err != nil {
		return ctrl.Result{}, err
	}
	snapshot := snapshotStatus(cfg)
	defer func() { retErr = errors.Join(retErr, snapshot.patch(ctx, r.Client, cfg)) }()
	return r.reconcileNormal(ctx, cfg)
}

// reconcileNormal applies the database, checks it, and counts the
// tenant's sync into status.
func (r *ProvisioningConfigReconciler) reconcileNormal(ctx context.Context, cfg *scimv1.ProvisioningConfig) (ctrl.Result, error) {
	store, openErr := r.applyDatabase(ctx, cfg)
	r.checkDatabase(ctx, cfg, store)
	if err := r.countSync(ctx, cfg); err != nil {
		return ctrl.Result{}, err
	}
	setConfigReady(cfg)
	cfg.Status.ObservedGeneration = cfg.Generation
	if openErr != nil {
		// Opening may take the whole open timeout (a database that does
		// not answer): back off rather than try again every check, so
		// that a few such tenants cannot keep every worker of this
		// controller busy.
		return ctrl.Result{}, openErr
	}
	return ctrl.Result{RequeueAfter: r.CheckInterval}, nil
}

// tenantDeletionRecheck is how often a deleted config looks again for
// deletions of its tenant still to be written.
const tenantDeletionRecheck = 2 * time.Second

// reconcileDelete keeps the config (and so the tenant's database) while
// deletions of its tenant remain to be written there: in a namespace being
// deleted, until no user or group is left; otherwise until none is being
// deleted. Only then does the tenant go back to the operator's database,
// so a deletion never lands in a database the tenant's rows are not in.
func (r *ProvisioningConfigReconciler) reconcileDelete(ctx context.Context, cfg *scimv1.ProvisioningConfig) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(cfg, scimv1.FinalizerTenantSync) {
		return ctrl.Result{}, nil
	}
	// The deletion bumped the generation: record it, or every reconcile
	// of the tenant would wait for a resolution that never comes. The
	// database stays the one resolved before (its Secret may be gone).
	if !r.Directory.Keep(cfg) {
		_, _ = r.applyDatabase(ctx, cfg) // a failed open is in the Directory: deletions wait
	}
	var ns corev1.Namespace
	if err := r.SecretReader.Get(ctx, client.ObjectKey{Name: cfg.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("reading namespace %s: %w", cfg.Namespace, err)
	}
	terminating := !ns.DeletionTimestamp.IsZero()
	waiting, err := r.deletionsPending(ctx, cfg.Namespace, terminating)
	if err != nil {
		return ctrl.Result{}, err
	}
	if waiting > 0 {
		ctrl.LoggerFrom(ctx).V(1).Info("ProvisioningConfig deleted; waiting for the tenant's deletions to reach its database", "objects", waiting)
		return ctrl.Result{RequeueAfter: tenantDeletionRecheck}, nil
	}
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, cfg, scimv1.FinalizerTenantSync)
}

// deletionsPending counts the tenant's users and groups whose deletion is
// still to be written (all of them when the namespace is going away).
func (r *ProvisioningConfigReconciler) deletionsPending(ctx context.Context, namespace string, all bool) (int, error) {
	var users scimv1.ProvisionedUserList
	if err := r.List(ctx, &users, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("listing users: %w", err)
	}
	var groups scimv1.ProvisionedGroupList
	if err := r.List(ctx, &groups, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("listing groups: %w", err)
	}
	pending := func(m *metav1.ObjectMeta) bool {
		return all || (!m.DeletionTimestamp.IsZero() && slices.Contains(m.Finalizers, scimv1.FinalizerHelpdesk))
	}
	n := 0
	for i := range users.Items {
		if pending(&users.Items[i].ObjectMeta) {
			n++
		}
	}
	for i := range groups.Items {
		if pending(&groups.Items[i].ObjectMeta) {
			n++
		}
	}
	return n, nil
}

// applyDatabase resolves spec.database into the Directory and returns the
// store the tenant writes to (nil when it cannot be had; the reason is in
// the DatabaseReachable condition).
//
// The error is a failed open of the database, which the caller backs off.
func (r *ProvisioningConfigReconciler) applyDatabase(ctx context.Context, cfg *scimv1.ProvisioningConfig) (helpdesk.Store, error) {
	if cfg.Spec.Database == nil {
		cfg.Status.Database = "default"
		cfg.Status.HelpdeskCustomFields, cfg.Status.HelpdeskCustomFieldsReadAt = nil, nil
		_ = r.Directory.Resolve(ctx, cfg, "", nil)
		return r.Directory.Default, nil
	}
	url, reason, problem := r.databaseURL(ctx, cfg)
	if problem != nil {
		cfg.Status.Database = ""
		r.setReachable(cfg, metav1.ConditionFalse, reason, problem.Error())
		_ = r.Directory.Resolve(ctx, cfg, "", fmt.Errorf("%w: %w", tenancy.ErrDatabaseUnavailable, problem))
		return nil, nil
	}
	// Where it points, never who with: status is read by those who may
	// not read the Secret.
	where, _ := tenancy.Where(url)
	if cfg.Status.Database != where {
		// Another database: its custom fields are still to be read.
		cfg.Status.HelpdeskCustomFields, cfg.Status.HelpdeskCustomFieldsReadAt = nil, nil
	}
	cfg.Status.Database = where
	openCtx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	if err := r.Directory.Resolve(openCtx, cfg, url, nil); err != nil {
		r.databaseFailed(cfg, err)
		return nil, fmt.Errorf("opening the database of tenant %s: %w", cfg.Namespace, err)
	}
	if h := r.Directory.Handle(cfg.Namespace); h != nil {
		return h.Store, nil
	}
	return nil, nil
}

// databaseURL reads the URL from the referenced Secret and checks it is
// allowed. The reason names the problem for the condition.
func (r *ProvisioningConfigReconciler) databaseURL(ctx context.Context, cfg *scimv1.ProvisioningConfig) (string, string, error) {
	ref := cfg.Spec.Database.SecretRef
	key := ref.Key
	if key == "" {
		key = "url"
	}
	var sec corev1.Secret
	if err := r.SecretReader.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: ref.Name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return "", scimv1.ReasonDatabaseSecretNotFound, fmt.Errorf("the Secret %s is not in namespace %s; create it with the database URL under key %q", ref.Name, cfg.Namespace, key)
		}
		return "", scimv1.ReasonDatabaseSecretNotFound, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
	}
	raw := strings.TrimSpace(string(sec.Data[key]))
	if raw == "" {
		return "", scimv1.ReasonDatabaseSecretNotFound, fmt.Errorf("the Secret %s has no key %q (or it is empty); put the database URL there", ref.Name, key)
	}
	// Status is readable by those who may not read the Secret: never
	// repeat its value, only where a URL points.
	where, ok := tenancy.Where(raw)
	if !ok {
		return "", scimv1.ReasonDatabaseURLInvalid, fmt.Errorf("key %q of Secret %s does not hold a database URL the operator accepts "+
			"(sqlite:///path, postgres://user:password@host:port/db or mysql://user:password@host:port/db, without host= or file options)", key, ref.Name)
	}
	if !r.Allowed.Allows(raw, cfg.Namespace) {
		return "", ReasonDatabaseNotAllowed, fmt.Errorf("the database %s is not among the places the operator's administrator allows for tenant databases "+
			"(--tenant-database-prefixes; an SQLite file must be <prefix>%s.db or inside <prefix>%s/); ask them to allow it or remove spec.database", where, cfg.Namespace, cfg.Namespace)
	}
	return raw, "", nil
}

// checkDatabase pings the tenant's database, marks it down or up in the
// Directory, and reads the custom fields it declares.
func (r *ProvisioningConfigReconciler) checkDatabase(ctx context.Context, cfg *scimv1.ProvisioningConfig, store helpdesk.Store) {
	declared := cfg.Spec.CustomFields
	if store == nil {
		r.setClashes(cfg, declared, cfg.Status.HelpdeskCustomFields)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := store.Ping(pctx); err != nil {
		r.Directory.SetDown(cfg.Namespace, err)
		r.databaseFailed(cfg, err)
		r.setClashes(cfg, declared, cfg.Status.HelpdeskCustomFields)
		return
	}
	r.Directory.SetDown(cfg.Namespace, nil)
	r.setReachable(cfg, metav1.ConditionTrue, scimv1.ReasonDatabaseReachable, "the tenant's helpdesk database answered")
	rows, err := store.CustomFields(pctx, cfg.Namespace)
	if err != nil {
		r.databaseFailed(cfg, err)
		r.setClashes(cfg, declared, cfg.Status.HelpdeskCustomFields)
		return
	}
	fromDB := tenancy.HelpdeskFields(rows, cfg.Namespace)
	if cfg.Spec.Database != nil {
		if !equality.Semantic.DeepEqual(cfg.Status.HelpdeskCustomFields, fromDB) || cfg.Status.HelpdeskCustomFieldsReadAt == nil {
			cfg.Status.HelpdeskCustomFieldsReadAt = &metav1.Time{Time: r.Clock.Now()}
		}
		cfg.Status.HelpdeskCustomFields = fromDB
	}
	r.setClashes(cfg, declared, fromDB)
}

func (r *ProvisioningConfigReconciler) databaseFailed(cfg *scimv1.ProvisioningConfig, err error) {
	msg := truncate(err.Error(), 1024)
	r.setReachable(cfg, metav1.ConditionFalse, scimv1.ReasonDatabaseUnreachable, msg)
	if cfg.Status.LastDatabaseError != msg {
		cfg.Status.LastDatabaseError = msg
		cfg.Status.LastDatabaseErrorTime = &metav1.Time{Time: r.Clock.Now()}
	}
}

func (r *ProvisioningConfigReconciler) setReachable(cfg *scimv1.ProvisioningConfig, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&cfg.Status.Conditions, metav1.Condition{Type: scimv1.ConditionDatabaseReachable,
		Status: status, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: cfg.Generation})
}

func (r *ProvisioningConfigReconciler) setClashes(cfg *scimv1.ProvisioningConfig, declared, fromDB []scimv1.CustomFieldDefinition) {
	_, clashes := tenancy.MergeFields(declared, fromDB)
	c := metav1.Condition{Type: scimv1.ConditionCustomFieldsConsistent, Status: metav1.ConditionTrue,
		Reason: scimv1.ReasonConsistent, Message: "spec.customFields and the helpdesk database agree", ObservedGeneration: cfg.Generation}
	if len(clashes) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, scimv1.ReasonCustomFieldClash
		c.Message = truncate(strings.Join(clashes, "; "), 1024)
	}
	meta.SetStatusCondition(&cfg.Status.Conditions, c)
}

// countSync counts the tenant's users and groups, those synced, and the
// oldest change not synced yet, from the cache (no copies), and sets the
// Synced condition.
func (r *ProvisioningConfigReconciler) countSync(ctx context.Context, cfg *scimv1.ProvisioningConfig) error {
	var users scimv1.ProvisionedUserList
	if err := r.List(ctx, &users, client.InNamespace(cfg.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("counting users: %w", err)
	}
	var groups scimv1.ProvisionedGroupList
	if err := r.List(ctx, &groups, client.InNamespace(cfg.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("counting groups: %w", err)
	}
	var oldest time.Time
	unsynced := func(m *metav1.ObjectMeta, gen int64, conds []metav1.Condition) bool {
		c := meta.FindStatusCondition(conds, scimv1.ConditionSynced)
		if c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen && m.DeletionTimestamp.IsZero() {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, m.Annotations[repository.AnnotationLastModified])
		if err != nil {
			t = m.CreationTimestamp.Time
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
		return true
	}
	var usersBehind, groupsBehind int
	for i := range users.Items {
		u := &users.Items[i]
		if unsynced(&u.ObjectMeta, u.Generation, u.Status.Conditions) {
			usersBehind++
		}
	}
	for i := range groups.Items {
		g := &groups.Items[i]
		if _, pending := g.Annotations[scimv1.AnnotationPendingMembers]; pending {
			continue // not acknowledged: not the helpdesk's yet
		}
		if unsynced(&g.ObjectMeta, g.Generation, g.Status.Conditions) {
			groupsBehind++
		}
	}
	st := &cfg.Status
	st.Users, st.UsersSynced = clamp(len(users.Items)), clamp(len(users.Items)-usersBehind)
	st.Groups, st.GroupsSynced = clamp(len(groups.Items)), clamp(len(groups.Items)-groupsBehind)
	st.OldestUnsyncedChange = nil
	if !oldest.IsZero() {
		st.OldestUnsyncedChange = &metav1.Time{Time: oldest}
	}
	c := metav1.Condition{Type: scimv1.ConditionSynced, Status: metav1.ConditionTrue, Reason: ReasonSynced,
		Message: "every user and group of the tenant is in the helpdesk database", ObservedGeneration: cfg.Generation}
	switch {
	case cfg.Spec.Suspend:
		c.Status, c.Reason = metav1.ConditionFalse, scimv1.ReasonSuspended
		c.Message = fmt.Sprintf("spec.suspend: nothing is written to the helpdesk database; %d users and %d groups wait", usersBehind, groupsBehind)
	case usersBehind+groupsBehind > 0:
		c.Status, c.Reason = metav1.ConditionFalse, scimv1.ReasonBehind
		c.Message = fmt.Sprintf("%d users and %d groups are not in the helpdesk database yet; the oldest change was made %s ago",
			usersBehind, groupsBehind, r.Clock.Now().Sub(oldest).Round(time.Second))
	}
	meta.SetStatusCondition(&st.Conditions, c)
	return nil
}

// setConfigReady sums the config up for GitOps tools (Flux's kstatus and
// Argo CD read Ready): the tenant's database can be written and the custom
// fields agree. A sync that is behind or suspended is not unready: it
// catches up by itself, and suspension is what the config asks for.
func setConfigReady(cfg *scimv1.ProvisioningConfig) {
	c := metav1.Condition{Type: scimv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Applied",
		Message: "the tenant's database is reachable and its custom fields agree", ObservedGeneration: cfg.Generation}
	for _, t := range []string{scimv1.ConditionDatabaseReachable, scimv1.ConditionCustomFieldsConsistent} {
		if sub := meta.FindStatusCondition(cfg.Status.Conditions, t); sub != nil && sub.Status != metav1.ConditionTrue {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, sub.Reason, sub.Message
			break
		}
	}
	meta.SetStatusCondition(&cfg.Status.Conditions, c)
}

func clamp(n int) int32 { return int32(min(max(n, 0), math.MaxInt32)) } //nolint:gosec // clamped

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
