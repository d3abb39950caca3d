package controllers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// syncStack is a manager running the helpdesk sync controllers for one
// namespace against store.
type syncStack struct {
	ns      string
	store   helpdesk.Store
	repo    *repository.Repository
	metrics *SyncMetrics
	log     *logBuffer
}

// syncOptions configure startSyncWith; zero values are the defaults.
type syncOptions struct {
	policy helpdesk.DeletionPolicy
	resync time.Duration
	// clock replaces the reconcilers' clock.
	clock clock.PassiveClock
	// noRepo starts the controllers without a repository.
	noRepo bool
	// brokenMembers gives the group controller a repository whose member
	// reads fail.
	brokenMembers bool
}

func startSync(t *testing.T, store helpdesk.Store, policy helpdesk.DeletionPolicy, resync time.Duration) *syncStack {
	t.Helper()
	return startSyncWith(t, store, syncOptions{policy: policy, resync: resync})
}

func startSyncWith(t *testing.T, store helpdesk.Store, o syncOptions) *syncStack {
	t.Helper()
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	m, err := NewSyncMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &syncStack{ns: ns, store: store, metrics: m}
	_, s.log = startManager(t, ns, func(mgr ctrl.Manager) error {
		if err := repository.RegisterIndexes(context.Background(), mgr.GetCache()); err != nil {
			return err
		}
		s.repo = &repository.Repository{Cache: mgr.GetCache(), Live: mgr.GetAPIReader(), Client: mgr.GetClient(), IDKey: testenv.IDKey()}
		if _, err := s.repo.InstallHandlers(context.Background(), mgr.GetCache()); err != nil {
			return err
		}
		repo, groupRepo := s.repo, s.repo
		if o.noRepo {
			repo, groupRepo = nil, nil
		}
		if o.brokenMembers {
			groupRepo = &repository.Repository{Cache: failingShardReader{mgr.GetCache()}, Live: s.repo.Live, Client: s.repo.Client,
				IDKey: s.repo.IDKey, Now: s.repo.Now, Users: s.repo.Users, Signals: s.repo.Signals, Activity: s.repo.Activity}
		}
		if err := (&ProvisionedUserReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: store, Repo: repo,
			DeletionPolicy: o.policy, ResyncPeriod: o.resync, MaxConcurrentReconciles: 4, Metrics: m, Clock: o.clock}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&ProvisionedGroupReconciler{Client: mgr.GetClient(), Store: store, Repo: groupRepo,
			DeletionPolicy: o.policy, ResyncPeriod: o.resync, MaxConcurrentReconciles: 4, Metrics: m, Clock: o.clock}).SetupWithManager(mgr)
	})
	return s
}

func sqliteStore(t *testing.T) (helpdesk.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "helpdesk.db")
	st, err := helpdesk.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, path
}

func (s *syncStack) createUser(t *testing.T, name, userName string) *scimv1.ProvisionedUser {
	t.Helper()
	u := &scimv1.ProvisionedUser{
		// The SCIM server stamps every write; the sync lag is measured from it.
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Annotations: map[string]string{
			repository.AnnotationLastModified: time.Now().UTC().Format(time.RFC3339Nano)}},
		Spec: scimv1.ProvisionedUserSpec{UserName: userName, DisplayName: "User " + name,
			Name:       &scimv1.PersonName{GivenName: "Given", FamilyName: "Family"},
			Emails:     []scimv1.MultiValuedAttribute{{Value: "home@example.test", Type: "home"}, {Value: userName, Type: "work", Primary: true}},
			Enterprise: &scimv1.EnterpriseUser{Department: "Support", Manager: "boss"}},
	}
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (s *syncStack) waitRow(t *testing.T, id string, check func(helpdesk.User) error) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		row, err := s.store.GetUser(context.Background(), s.ns, id)
		if err != nil {
			return err
		}
		return check(row)
	})
}

func TestUserSyncUpsertAndDriftRepair(t *testing.T) {
	store, path := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Second)
	ctx := context.Background()
	u := s.createUser(t, "u1", "alice@example.test")
	s.waitRow(t, "u1", func(r helpdesk.User) error {
		if r.UserName != "alice@example.test" || r.PrimaryEmail != "alice@example.test" || r.Department != "Support" ||
			r.ManagerSCIMID != "boss" || r.GivenName != "Given" || !r.Active {
			return fmt.Errorf("row %+v", r)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		var cur scimv1.ProvisionedUser
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), &cur); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(cur.Status.Conditions, scimv1.ConditionSynced) || cur.Status.ObservedGeneration != cur.Generation ||
			cur.Status.LastSyncTime == nil || !slices.Contains(cur.Finalizers, scimv1.FinalizerHelpdesk) {
			return fmt.Errorf("status %+v finalizers %v", cur.Status, cur.Finalizers)
		}
		return nil
	})

	// The sync lag from the SCIM write to the commit was measured.
	var lag dto.Metric
	if err := s.metrics.Lag.WithLabelValues("user").(prometheus.Histogram).Write(&lag); err != nil {
		t.Fatal(err)
	}
	if n := lag.GetHistogram().GetSampleCount(); n < 1 {
		t.Fatalf("scim_helpdesk_sync_lag_seconds{kind=user} has %d samples after a sync", n)
	}

	// An update reaches the row.
	var cur scimv1.ProvisionedUser
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Active = ptr.To(false)
	cur.Spec.Title = "Agent"
	if err := env.Client.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	s.waitRow(t, "u1", func(r helpdesk.User) error {
		if r.Active || r.Title != "Agent" {
			return fmt.Errorf("update not applied: %+v", r)
		}
		return nil
	})

	// Someone edits and then deletes the row by hand: the resync repairs it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE helpdesk_users SET title = 'tampered' WHERE scim_id = 'u1'`); err != nil {
		t.Fatal(err)
	}
	s.waitRow(t, "u1", func(r helpdesk.User) error {
		if r.Title != "Agent" {
			return fmt.Errorf("drift not repaired yet: title %q", r.Title)
		}
		return nil
	})
	if _, err := db.Exec(`DELETE FROM helpdesk_users WHERE scim_id = 'u1'`); err != nil {
		t.Fatal(err)
	}
	s.waitRow(t, "u1", func(helpdesk.User) error { return nil })
}

func TestDeletionPolicies(t *testing.T) {
	for _, policy := range []helpdesk.DeletionPolicy{helpdesk.DeletionPolicyRetain, helpdesk.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			store, _ := sqliteStore(t)
			s := startSync(t, store, policy, time.Minute)
			ctx := context.Background()
			u := s.createUser(t, "gone", "gone@example.test")
			s.waitRow(t, "gone", func(helpdesk.User) error { return nil })
			if err := env.Client.Delete(ctx, u); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() error {
				var cur scimv1.ProvisionedUser
				if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), &cur); err == nil {
					return errors.New("the user still exists (finalizer not removed)")
				}
				return nil
			})
			row, err := store.GetUser(ctx, s.ns, "gone")
			switch policy {
			case helpdesk.DeletionPolicyRetain:
				if err != nil || row.DeletedAt == nil || row.Active {
					t.Fatalf("retain: want the row kept, inactive, with deleted_at; got %+v, %v", row, err)
				}
			case helpdesk.DeletionPolicyDelete:
				if !errors.Is(err, helpdesk.ErrNotFound) {
					t.Fatalf("delete: want the row gone, got %+v, %v", row, err)
				}
			}
		})
	}
}

func TestGroupMembershipDiff(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("m%d", i)
		s.createUser(t, id, id+"@example.test")
		ids = append(ids, id)
	}
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "g1", Namespace: s.ns},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Support"}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	waitMembers := func(want []string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			got, err := store.GroupMembers(ctx, s.ns, "g1")
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("members %v, want %v", got, want)
			}
			return nil
		})
	}
	apply := func(ops ...patch.MemberOp) {
		t.Helper()
		var cur scimv1.ProvisionedGroup
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), &cur); err != nil {
			t.Fatal(err)
		}
		if _, err := s.repo.ApplyMembers(ctx, repository.Principal{Namespace: s.ns}, &cur, ops); err != nil {
			t.Fatal(err)
		}
	}
	apply(patch.MemberOp{Kind: patch.MemberAdd, IDs: ids[:4]})
	waitMembers(ids[:4])
	apply(patch.MemberOp{Kind: patch.MemberRemove, IDs: []string{"m1"}}, patch.MemberOp{Kind: patch.MemberAdd, IDs: []string{"m4"}})
	waitMembers([]string{"m0", "m2", "m3", "m4"})
	eventually(t, 30*time.Second, func() error {
		var cur scimv1.ProvisionedGroup
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), &cur); err != nil {
			return err
		}
		if cur.Status.Members != 4 || !meta.IsStatusConditionTrue(cur.Status.Conditions, scimv1.ConditionSynced) {
			return fmt.Errorf("group status %+v", cur.Status)
		}
		return nil
	})
	// A deleted user leaves its groups, in Kubernetes and in the database.
	if err := env.Client.Delete(ctx, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "m2", Namespace: s.ns}}); err != nil {
		t.Fatal(err)
	}
	waitMembers([]string{"m0", "m3", "m4"})
	// Deleting the group removes its shards and marks the row deleted.
	if err := env.Client.Delete(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		row, err := store.GetGroup(ctx, s.ns, "g1")
		if err != nil || row.DeletedAt == nil {
			return fmt.Errorf("group row %+v, %v", row, err)
		}
		var shards scimv1.GroupMembershipList
		if err := env.Client.List(ctx, &shards, client.InNamespace(s.ns)); err != nil {
			return err
		}
		if len(shards.Items) != 0 {
			return fmt.Errorf("%d shards left", len(shards.Items))
		}
		return nil
	})
}

// TestDatabaseOutage cuts the connection to a real PostgreSQL in the
// middle of provisioning: reconciles fail and back off, the users say so in
// their Synced condition, and when the database returns every change made
// meanwhile reaches it, exactly once.
func TestDatabaseOutage(t *testing.T) {
	dbURL := testenv.PostgresDatabase(t)
	proxy := testenv.NewFaultProxy(t, dbURL.Host)
	viaProxy := *dbURL
	viaProxy.Host = proxy.Addr()
	viaProxy.RawQuery = "sslmode=disable&connect_timeout=10"
	store, err := helpdesk.Open(context.Background(), viaProxy.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	ctx := context.Background()

	for i := range 5 {
		s.createUser(t, fmt.Sprintf("before%d", i), fmt.Sprintf("before%d@example.test", i))
	}
	for i := range 5 {
		s.waitRow(t, fmt.Sprintf("before%d", i), func(helpdesk.User) error { return nil })
	}
	proxy.Down()
	for i := range 10 {
		s.createUser(t, fmt.Sprintf("during%d", i), fmt.Sprintf("during%d@example.test", i))
	}
	var renamed scimv1.ProvisionedUser
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "before0"}, &renamed); err != nil {
		t.Fatal(err)
	}
	renamed.Spec.DisplayName = "changed during the outage"
	if err := env.Client.Update(ctx, &renamed); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "before1", Namespace: s.ns}}); err != nil {
		t.Fatal(err)
	}
	// The outage shows in the users' conditions.
	eventually(t, 30*time.Second, func() error {
		var u scimv1.ProvisionedUser
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "during0"}, &u); err != nil {
			return err
		}
		c := meta.FindStatusCondition(u.Status.Conditions, scimv1.ConditionSynced)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonDatabaseUnavailable {
			return fmt.Errorf("want Synced=False/%s, got %+v", ReasonDatabaseUnavailable, c)
		}
		return nil
	})
	proxy.Up()
	for i := range 10 {
		s.waitRow(t, fmt.Sprintf("during%d", i), func(helpdesk.User) error { return nil })
	}
	s.waitRow(t, "before0", func(r helpdesk.User) error {
		if r.DisplayName != "changed during the outage" {
			return fmt.Errorf("update lost: %q", r.DisplayName)
		}
		return nil
	})
	s.waitRow(t, "before1", func(r helpdesk.User) error {
		if r.DeletedAt == nil {
			return errors.New("deletion lost")
		}
		return nil
	})
	// Nothing duplicated: exactly one row per user.
	direct, err := sql.Open("pgx", dbURL.String())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	var rows, distinct int
	if err := direct.QueryRow(`SELECT count(*), count(DISTINCT scim_id) FROM helpdesk_users WHERE tenant = $1`, s.ns).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != 15 || distinct != 15 {
		t.Fatalf("want 15 rows for 15 users, got %d rows (%d distinct)", rows, distinct)
	}
}
