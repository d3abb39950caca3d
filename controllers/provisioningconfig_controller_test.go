package controllers

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/tenancy"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// tenantStack runs the ProvisioningConfig controller and the sync
// controllers over several tenant namespaces, as the operator wires them.
type tenantStack struct {
	dir   *tenancy.Directory
	pools *tenancy.Pools
	repo  *repository.Repository
	log   *logBuffer
}

// startTenants starts the controllers with def as the operator's database,
// allowing tenant databases under allowed.
func startTenants(t *testing.T, def helpdesk.Store, allowed []string, namespaces ...string) *tenantStack {
	t.Helper()
	a, err := tenancy.ParseAllowedDatabases(allowed)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewSyncMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	s := &tenantStack{pools: tenancy.NewPools(nil)}
	_, s.log = startManagerIn(t, namespaces, func(mgr ctrl.Manager) error {
		if err := repository.RegisterIndexes(context.Background(), mgr.GetCache()); err != nil {
			return err
		}
		s.repo = &repository.Repository{Cache: mgr.GetCache(), Live: mgr.GetAPIReader(), Client: mgr.GetClient(), IDKey: testenv.IDKey()}
		if _, err := s.repo.InstallHandlers(context.Background(), mgr.GetCache()); err != nil {
			return err
		}
		s.dir = &tenancy.Directory{Configs: mgr.GetCache(), Default: def, DefaultPolicy: helpdesk.DeletionPolicyRetain,
			Pools: s.pools, PerDatabase: workers}
		if err := (&ProvisioningConfigReconciler{Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), Directory: s.dir,
			Allowed: a, CheckInterval: 500 * time.Millisecond}).SetupWithManager(mgr); err != nil {
			return err
		}
		if err := (&ProvisionedUserReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Targets: s.dir, Repo: s.repo,
			ResyncPeriod: time.Minute, MaxConcurrentReconciles: workers + 1, Metrics: m}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&ProvisionedGroupReconciler{Client: mgr.GetClient(), Targets: s.dir, Repo: s.repo,
			ResyncPeriod: time.Minute, MaxConcurrentReconciles: workers + 1, Metrics: m}).SetupWithManager(mgr)
	})
	return s
}

// tenantConfig creates the Secret holding dbURL (when not empty) and the
// tenant's ProvisioningConfig naming it.
func tenantConfig(t *testing.T, ns, dbURL string, spec scimv1.ProvisioningConfigSpec) {
	t.Helper()
	ctx := context.Background()
	if dbURL != "" {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "helpdesk-db", Namespace: ns}, StringData: map[string]string{"url": dbURL}}
		if err := env.Client.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
		spec.Database = &scimv1.TenantDatabase{SecretRef: scimv1.DatabaseSecretReference{Name: "helpdesk-db", Key: "url"}}
	}
	cfg := &scimv1.ProvisioningConfig{ObjectMeta: metav1.ObjectMeta{Name: scimv1.ProvisioningConfigName, Namespace: ns}, Spec: spec}
	if err := env.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

func getConfig(t *testing.T, ns string) *scimv1.ProvisioningConfig {
	t.Helper()
	cfg := &scimv1.ProvisioningConfig{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: scimv1.ProvisioningConfigName}, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func updateConfig(t *testing.T, ns string, change func(*scimv1.ProvisioningConfigSpec)) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		cfg := getConfig(t, ns)
		change(&cfg.Spec)
		return env.Client.Update(context.Background(), cfg)
	})
}

// waitConfigCondition waits for the config's condition to have status and
// reason at the config's current generation.
func waitConfigCondition(t *testing.T, ns, typ string, status metav1.ConditionStatus, reason string) *scimv1.ProvisioningConfig {
	t.Helper()
	var cfg *scimv1.ProvisioningConfig
	eventually(t, 30*time.Second, func() error {
		cfg = getConfig(t, ns)
		c := meta.FindStatusCondition(cfg.Status.Conditions, typ)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != cfg.Generation {
			return fmt.Errorf("want %s=%s/%s at generation %d, got %+v", typ, status, reason, cfg.Generation, c)
		}
		return nil
	})
	return cfg
}

func newUser(t *testing.T, ns, name string) {
	t.Helper()
	u := &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{
			repository.AnnotationLastModified: time.Now().UTC().Format(time.RFC3339Nano)}},
		Spec: scimv1.ProvisionedUserSpec{UserName: name + "@example.test", DisplayName: "User " + name},
	}
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// tenantRows returns the scim_ids of tenant's user rows in db (deleted
// ones included), sorted.
func tenantRows(t *testing.T, store helpdesk.Store, tenant string, ids []string) []string {
	t.Helper()
	var found []string
	for _, id := range ids {
		if _, err := store.GetUser(context.Background(), tenant, id); err == nil {
			found = append(found, id)
		} else if !errors.Is(err, helpdesk.ErrNotFound) {
			t.Fatal(err)
		}
	}
	sort.Strings(found)
	return found
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func openStore(t *testing.T, raw string) helpdesk.Store {
	t.Helper()
	st, err := helpdesk.Open(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func waitUsersIn(t *testing.T, store helpdesk.Store, tenant string, ids []string) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		if got := tenantRows(t, store, tenant, ids); len(got) != len(ids) {
			return fmt.Errorf("%d of %d users of %s in the database", len(got), len(ids), tenant)
		}
		return nil
	})
}

// startSQLiteTenant starts the controllers for one new tenant whose
// ProvisioningConfig (spec) names an SQLite file of its own, and returns
// the tenant, the operator's database, the tenant's, and the stack.
func startSQLiteTenant(t *testing.T, spec scimv1.ProvisioningConfigSpec) (string, helpdesk.Store, helpdesk.Store, *tenantStack) {
	t.Helper()
	e := testenv.Require(t, env)
	def, _ := sqliteStore(t)
	dir := filepath.Join(t.TempDir(), "tenants")
	ns := e.Namespace(t)
	st := startTenants(t, def, []string{"sqlite://" + dir + "/"}, ns)
	dbURL := "sqlite://" + filepath.Join(dir, ns+".db")
	tenantConfig(t, ns, dbURL, spec)
	return ns, def, openStore(t, dbURL), st
}

// Two tenants with databases of their own (SQLite and PostgreSQL) and one
// without a config are written at once, each only into its database.
func TestTenantsWriteToTheirOwnDatabases(t *testing.T) {
	e := testenv.Require(t, env)
	def, _ := sqliteStore(t)
	dir := filepath.Join(t.TempDir(), "tenants")
	pg := testenv.PostgresDatabase(t)
	nsA, nsB, nsC := e.Namespace(t), e.Namespace(t), e.Namespace(t)
	startTenants(t, def, []string{"sqlite://" + dir + "/", "postgres://" + pg.Host + "/"}, nsA, nsB, nsC)

	sqliteURL := "sqlite://" + filepath.Join(dir, nsA+".db")
	tenantConfig(t, nsA, sqliteURL, scimv1.ProvisioningConfigSpec{})
	tenantConfig(t, nsB, pg.String(), scimv1.ProvisioningConfigSpec{})
	users := names("u", 15)
	var wg sync.WaitGroup
	for _, ns := range []string{nsA, nsB, nsC} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, u := range users {
				newUser(t, ns, u)
			}
		}()
	}
	wg.Wait()

	storeA, storeB := openStore(t, sqliteURL), openStore(t, pg.String())
	waitUsersIn(t, storeA, nsA, users)
	waitUsersIn(t, storeB, nsB, users)
	waitUsersIn(t, def, nsC, users)
	for _, ns := range []string{nsA, nsB} {
		if got := tenantRows(t, def, ns, users); len(got) > 0 {
			t.Errorf("tenant %s has its own database, yet the operator's holds %d of its users", ns, len(got))
		}
	}
	if got := tenantRows(t, storeA, nsB, users); len(got) > 0 {
		t.Errorf("tenant A's database holds %d users of tenant B", len(got))
	}
	for _, ns := range []string{nsA, nsB} {
		var cfg *scimv1.ProvisioningConfig
		eventually(t, 30*time.Second, func() error {
			cfg = getConfig(t, ns)
			if c := meta.FindStatusCondition(cfg.Status.Conditions, scimv1.ConditionSynced); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != cfg.Generation {
				return fmt.Errorf("%s: want Synced=True, got %+v", ns, c)
			}
			if cfg.Status.Users != 15 || cfg.Status.UsersSynced != 15 || cfg.Status.OldestUnsyncedChange != nil {
				return fmt.Errorf("%s: want 15 of 15 users synced and no unsynced change, got %d of %d (oldest %v)",
					ns, cfg.Status.UsersSynced, cfg.Status.Users, cfg.Status.OldestUnsyncedChange)
			}
			return nil
		})
		if c := meta.FindStatusCondition(cfg.Status.Conditions, scimv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s: want Ready=True, got %+v", ns, c)
		}
	}
	if got := getConfig(t, nsA).Status.Database; got != sqliteURL {
		t.Errorf("status.database: want %s, got %s", sqliteURL, got)
	}
}

// A tenant whose database hangs (a paused proxy: connections open, nothing
// answered) holds at most its share of the workers: another tenant's users
// all reach their database while every one of the first tenant's waits.
func TestHungTenantDatabaseDoesNotDelayOthers(t *testing.T) {
	e := testenv.Require(t, env)
	def, _ := sqliteStore(t)
	dir := filepath.Join(t.TempDir(), "tenants")
	pg := testenv.PostgresDatabase(t)
	proxy := testenv.NewFaultProxy(t, pg.Host)
	viaProxy := *pg
	viaProxy.Host = proxy.Addr()
	nsA, nsB := e.Namespace(t), e.Namespace(t)
	startTenants(t, def, []string{"sqlite://" + dir + "/", "postgres://" + proxy.Addr() + "/"}, nsA, nsB)
	sqliteURL := "sqlite://" + filepath.Join(dir, nsB+".db")
	tenantConfig(t, nsA, viaProxy.String(), scimv1.ProvisioningConfigSpec{})
	tenantConfig(t, nsB, sqliteURL, scimv1.ProvisioningConfigSpec{})
	waitConfigCondition(t, nsA, scimv1.ConditionDatabaseReachable, metav1.ConditionTrue, scimv1.ReasonDatabaseReachable)
	waitConfigCondition(t, nsB, scimv1.ConditionDatabaseReachable, metav1.ConditionTrue, scimv1.ReasonDatabaseReachable)

	proxy.Pause()
	// More of A's users than there are workers: without the per-database
	// slots every worker would hang on A.
	hung := names("a", 20)
	for _, u := range hung {
		newUser(t, nsA, u)
	}
	storeB := openStore(t, sqliteURL)
	var worst time.Duration
	for _, u := range names("b", 10) {
		start := time.Now()
		newUser(t, nsB, u)
		waitUsersIn(t, storeB, nsB, []string{u})
		worst = max(worst, time.Since(start))
	}
	t.Logf("tenant B's slowest user reached its database %s after its create, while tenant A's database hung", worst)
	// The ping notices: A's config says so, and A's users fail at once.
	cfg := waitConfigCondition(t, nsA, scimv1.ConditionDatabaseReachable, metav1.ConditionFalse, scimv1.ReasonDatabaseUnreachable)
	if cfg.Status.LastDatabaseError == "" || cfg.Status.LastDatabaseErrorTime == nil {
		t.Errorf("want the last database error in status, got %q", cfg.Status.LastDatabaseError)
	}
	proxy.Resume()
	waitUsersIn(t, openStore(t, pg.String()), nsA, hung)
	waitConfigCondition(t, nsA, scimv1.ConditionSynced, metav1.ConditionTrue, ReasonSynced)
}

// The deletion policy is the config's, changed at runtime.
func TestDeletionPolicyFollowsTheConfig(t *testing.T) {
	ns, _, store, _ := startSQLiteTenant(t, scimv1.ProvisioningConfigSpec{DeletionPolicy: "retain"})
	for _, u := range []string{"kept", "purged"} {
		newUser(t, ns, u)
	}
	waitUsersIn(t, store, ns, []string{"kept", "purged"})
	deleteUser := func(name string) {
		t.Helper()
		if err := env.Client.Delete(context.Background(), &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	deleteUser("kept")
	eventually(t, 30*time.Second, func() error {
		row, err := store.GetUser(context.Background(), ns, "kept")
		if err != nil {
			return err
		}
		if row.DeletedAt == nil {
			return errors.New("not marked deleted yet")
		}
		return nil
	})
	// The deletion is complete once the finalizer is gone; until then a
	// retry (say, a finalizer patch that met a late status write) applies
	// the policy in force at that moment.
	eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "kept"}, &scimv1.ProvisionedUser{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("ProvisionedUser kept still there (%v)", err)
	})
	updateConfig(t, ns, func(s *scimv1.ProvisioningConfigSpec) { s.DeletionPolicy = "delete" })
	deleteUser("purged")
	eventually(t, 30*time.Second, func() error {
		if _, err := store.GetUser(context.Background(), ns, "purged"); !errors.Is(err, helpdesk.ErrNotFound) {
			return fmt.Errorf("want the row removed (policy delete), got %v", err)
		}
		return nil
	})
	if row, err := store.GetUser(context.Background(), ns, "kept"); err != nil || row.DeletedAt == nil {
		t.Errorf("the row retained before the change must stay: %+v, %v", row, err)
	}
}

// Suspended, nothing is written; resumed, every change made meanwhile
// arrives: creates, an update, a deletion, a group with its members.
func TestSuspendThenResume(t *testing.T) {
	ns, _, store, st := startSQLiteTenant(t, scimv1.ProvisioningConfigSpec{})
	before := names("before", 3)
	for _, u := range before {
		newUser(t, ns, u)
	}
	waitUsersIn(t, store, ns, before)

	updateConfig(t, ns, func(s *scimv1.ProvisioningConfigSpec) { s.Suspend = true })
	waitConfigCondition(t, ns, scimv1.ConditionSynced, metav1.ConditionFalse, scimv1.ReasonSuspended)
	during := names("during", 8)
	for _, u := range during {
		newUser(t, ns, u)
	}
	// Meanwhile: a rename, a deletion, a group with two of the new users.
	g := changeWhileSuspended(t, st, ns, before, during)
	ctx := context.Background()
	// Every user changed meanwhile says it waits; none of it is written.
	for _, u := range append([]string{before[0]}, during...) {
		eventually(t, 30*time.Second, func() error {
			var pu scimv1.ProvisionedUser
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: u}, &pu); err != nil {
				return err
			}
			c := meta.FindStatusCondition(pu.Status.Conditions, scimv1.ConditionSynced)
			if c == nil || c.Reason != ReasonSuspended || c.ObservedGeneration != pu.Generation {
				return fmt.Errorf("user %s: want Synced=False/Suspended, got %+v", u, c)
			}
			return nil
		})
	}
	if got := tenantRows(t, store, ns, during); len(got) > 0 {
		t.Fatalf("suspended, yet %d users were written: %v", len(got), got)
	}
	if row, _ := store.GetUser(ctx, ns, before[0]); row.DisplayName == "changed while suspended" {
		t.Fatal("suspended, yet the update was written")
	}
	if row, _ := store.GetUser(ctx, ns, before[1]); row.DeletedAt != nil {
		t.Fatal("suspended, yet the deletion was written")
	}
	eventually(t, 30*time.Second, func() error {
		if st := getConfig(t, ns).Status; st.OldestUnsyncedChange == nil || st.UsersSynced >= st.Users {
			return fmt.Errorf("suspended with changes waiting: want status.oldestUnsyncedChange and fewer users synced than %d, got %v and %d",
				st.Users, st.OldestUnsyncedChange, st.UsersSynced)
		}
		return nil
	})

	updateConfig(t, ns, func(s *scimv1.ProvisioningConfigSpec) { s.Suspend = false })
	waitUsersIn(t, store, ns, during)
	eventually(t, 30*time.Second, func() error {
		if row, _ := store.GetUser(ctx, ns, before[0]); row.DisplayName != "changed while suspended" {
			return fmt.Errorf("update not written yet: %q", row.DisplayName)
		}
		if row, _ := store.GetUser(ctx, ns, before[1]); row.DeletedAt == nil {
			return errors.New("deletion not written yet")
		}
		members, err := store.GroupMembers(ctx, ns, g.Name)
		if err != nil || len(members) != 2 {
			return fmt.Errorf("group members: %v, %v", members, err)
		}
		return nil
	})
	waitConfigCondition(t, ns, scimv1.ConditionSynced, metav1.ConditionTrue, ReasonSynced)
}

// changeWhileSuspended renames before[0], deletes before[1] and creates a
// group holding during[0] and during[1], which it returns.
func changeWhileSuspended(t *testing.T, st *tenantStack, ns string, before, during []string) *scimv1.ProvisionedGroup {
	t.Helper()
	ctx := context.Background()
	var renamed scimv1.ProvisionedUser
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: before[0]}, &renamed); err != nil {
		t.Fatal(err)
	}
	renamed.Spec.DisplayName = "changed while suspended"
	if err := env.Client.Update(ctx, &renamed); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: before[1], Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "support", Namespace: ns},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Support"}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := st.repo.ApplyMembers(ctx, repository.Principal{Namespace: ns}, g,
		[]patch.MemberOp{{Kind: patch.MemberAdd, IDs: []string{during[0], during[1]}}}); err != nil {
		t.Fatal(err)
	}
	return g
}

// A new value in the database Secret (rotated credentials) is picked up
// without a restart: writes go through the new pool and the old one closes.
func TestDatabaseSecretRotation(t *testing.T) {
	e := testenv.Require(t, env)
	def, _ := sqliteStore(t)
	pg := testenv.PostgresDatabase(t)
	// Two ways to the same database: the rotation moves from one to the
	// other, and cutting the first proves the new one is in use.
	first, second := testenv.NewFaultProxy(t, pg.Host), testenv.NewFaultProxy(t, pg.Host)
	via := func(p *testenv.FaultProxy) string { u := *pg; u.Host = p.Addr(); return u.String() }
	ns := e.Namespace(t)
	st := startTenants(t, def, []string{"postgres://" + first.Addr() + "/", "postgres://" + second.Addr() + "/"}, ns)
	tenantConfig(t, ns, via(first), scimv1.ProvisioningConfigSpec{})
	store := openStore(t, pg.String())
	newUser(t, ns, "before")
	waitUsersIn(t, store, ns, []string{"before"})

	ctx := context.Background()
	var sec corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "helpdesk-db"}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["url"] = []byte(via(second))
	if err := env.Client.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if want, _ := tenancy.Where(via(second)); getConfig(t, ns).Status.Database != want {
			got := getConfig(t, ns).Status.Database
			return fmt.Errorf("status.database still %s", got)
		}
		if n := st.pools.Open(); n != 1 {
			return fmt.Errorf("want the old pool closed, %d open", n)
		}
		return nil
	})
	first.Down()
	newUser(t, ns, "after")
	waitUsersIn(t, store, ns, []string{"after"})
}

// A config whose database is missing or not allowed keeps the tenant's
// users out of every database, the operator's included, and says why;
// once the Secret exists they arrive.
func TestTenantDatabaseRefused(t *testing.T) {
	e := testenv.Require(t, env)
	def, _ := sqliteStore(t)
	dir := filepath.Join(t.TempDir(), "tenants")
	nsMissing, nsElsewhere := e.Namespace(t), e.Namespace(t)
	startTenants(t, def, []string{"sqlite://" + dir + "/"}, nsMissing, nsElsewhere)
	ctx := context.Background()

	cfg := &scimv1.ProvisioningConfig{ObjectMeta: metav1.ObjectMeta{Name: scimv1.ProvisioningConfigName, Namespace: nsMissing},
		Spec: scimv1.ProvisioningConfigSpec{Database: &scimv1.TenantDatabase{SecretRef: scimv1.DatabaseSecretReference{Name: "helpdesk-db"}}}}
	if err := env.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// The path climbs out of the allowed directory.
	tenantConfig(t, nsElsewhere, "sqlite://"+dir+"/../outside.db", scimv1.ProvisioningConfigSpec{})
	waitConfigCondition(t, nsMissing, scimv1.ConditionReady, metav1.ConditionFalse, scimv1.ReasonDatabaseSecretNotFound)
	waitConfigCondition(t, nsElsewhere, scimv1.ConditionReady, metav1.ConditionFalse, ReasonDatabaseNotAllowed)
	for _, ns := range []string{nsMissing, nsElsewhere} {
		newUser(t, ns, "waiting")
		eventually(t, 30*time.Second, func() error {
			var pu scimv1.ProvisionedUser
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waiting"}, &pu); err != nil {
				return err
			}
			c := meta.FindStatusCondition(pu.Status.Conditions, scimv1.ConditionSynced)
			if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "unavailable") {
				return fmt.Errorf("want Synced=False naming the database, got %+v", c)
			}
			return nil
		})
		if got := tenantRows(t, def, ns, []string{"waiting"}); len(got) > 0 {
			t.Errorf("%s: the tenant's database is refused, yet its user went to the operator's", ns)
		}
	}
	// The Secret arrives (GitOps order is not guaranteed): the user follows.
	dbURL := "sqlite://" + filepath.Join(dir, nsMissing+".db")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "helpdesk-db", Namespace: nsMissing}, StringData: map[string]string{"url": dbURL}}
	if err := env.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitUsersIn(t, openStore(t, dbURL), nsMissing, []string{"waiting"})
}

// A deleted config stays until the deletions its tenant still has to write
// reached its database (even while suspended); only then does the tenant
// go back to the operator's database.
func TestConfigDeletionWaitsForTenantDeletions(t *testing.T) {
	ns, def, store, _ := startSQLiteTenant(t, scimv1.ProvisioningConfigSpec{})
	newUser(t, ns, "leaving")
	waitUsersIn(t, store, ns, []string{"leaving"})
	eventually(t, 30*time.Second, func() error {
		if !slices.Contains(getConfig(t, ns).Finalizers, scimv1.FinalizerTenantSync) {
			return errors.New("no finalizer on the config yet")
		}
		return nil
	})
	updateConfig(t, ns, func(s *scimv1.ProvisioningConfigSpec) { s.Suspend = true })
	waitConfigCondition(t, ns, scimv1.ConditionSynced, metav1.ConditionFalse, scimv1.ReasonSuspended)
	ctx := context.Background()
	if err := env.Client.Delete(ctx, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "leaving", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, getConfig(t, ns)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		row, err := store.GetUser(ctx, ns, "leaving")
		if err != nil || row.DeletedAt == nil {
			return fmt.Errorf("the deletion has not reached the tenant's database: %+v, %v", row.DeletedAt, err)
		}
		var cfg scimv1.ProvisioningConfig
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: scimv1.ProvisioningConfigName}, &cfg); err == nil {
			return errors.New("the config is still there")
		}
		return nil
	})
	if got := tenantRows(t, def, ns, []string{"leaving"}); len(got) > 0 {
		t.Error("the deletion went to the operator's database")
	}
	newUser(t, ns, "after")
	waitUsersIn(t, def, ns, []string{"after"})
}
