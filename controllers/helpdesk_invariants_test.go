package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// errGateDown is what gateStore answers while the database is "down".
var errGateDown = errors.New("test gate: the helpdesk database is unreachable")

// gateStore makes a SQLite store unreachable for the controllers' writes
// while down is set, like a network outage in front of a server.
type gateStore struct {
	helpdesk.Store
	down atomic.Bool
}

func (g *gateStore) UpsertUser(ctx context.Context, u helpdesk.User) (bool, error) {
	if g.down.Load() {
		return false, errGateDown
	}
	return g.Store.UpsertUser(ctx, u)
}

func (g *gateStore) DeactivateUser(ctx context.Context, tenant, id string) (bool, error) {
	if g.down.Load() {
		return false, errGateDown
	}
	return g.Store.DeactivateUser(ctx, tenant, id)
}

func (g *gateStore) ReleaseUserName(ctx context.Context, tenant, holder, key string) (bool, error) {
	if g.down.Load() {
		return false, errGateDown
	}
	return g.Store.ReleaseUserName(ctx, tenant, holder, key)
}

func (g *gateStore) DeleteUser(ctx context.Context, tenant, id string, p helpdesk.DeletionPolicy) error {
	if g.down.Load() {
		return errGateDown
	}
	return g.Store.DeleteUser(ctx, tenant, id, p)
}

// updateUser applies mut to the current user and writes it, retrying on
// write conflicts (the controller writes the same object).
func (s *syncStack) updateUser(t *testing.T, name string, mut func(*scimv1.ProvisionedUser)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var u scimv1.ProvisionedUser
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &u); err != nil {
			return err
		}
		mut(&u)
		return env.Client.Update(ctx, &u)
	})
	if err != nil {
		t.Fatalf("updating user %s: %v", name, err)
	}
}

// waitSynced waits until the object's Synced condition passes check.
func (s *syncStack) waitSynced(t *testing.T, obj client.Object, check func(*metav1.Condition) error) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 30*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: obj.GetName()}, obj); err != nil {
			return err
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *scimv1.ProvisionedUser:
			conds = o.Status.Conditions
		case *scimv1.ProvisionedGroup:
			conds = o.Status.Conditions
		}
		return check(meta.FindStatusCondition(conds, scimv1.ConditionSynced))
	})
}

// events lists the events of the stack's namespace.
func (s *syncStack) events(t *testing.T) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(s.ns)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	return list.Items
}

func (s *syncStack) waitEvent(t *testing.T, name, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, 30*time.Second, func() error {
		for _, e := range s.events(t) {
			if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no %s event %s about %s", eventType, reason, name)
	})
	return found
}

// TestDeactivationLandsDespiteLongPhone is invariant I1: a work phone
// longer than the phone column (the API allows 2,048 characters, the
// column 64) must not keep a deactivation out of the database. The phone is
// stored cut to the column, Synced stays true, and the object says which
// field was cut, without its value.
func TestDeactivationLandsDespiteLongPhone(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	s.createUser(t, "u1", "long.phone@example.test")
	s.waitRow(t, "u1", func(r helpdesk.User) error {
		if !r.Active {
			return errors.New("not active yet")
		}
		return nil
	})

	phone := strings.Repeat("0123456789", 7)[:65]
	s.updateUser(t, "u1", func(u *scimv1.ProvisionedUser) {
		u.Spec.PhoneNumbers = []scimv1.MultiValuedAttribute{{Value: phone, Type: "work"}}
		u.Spec.Active = ptr.To(false)
	})
	s.waitRow(t, "u1", func(r helpdesk.User) error {
		if r.Active || r.Phone != phone[:64] {
			return fmt.Errorf("want active=false and the phone cut to 64 characters, row has active=%v phone %q", r.Active, r.Phone)
		}
		return nil
	})
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "u1"}}
	s.waitSynced(t, u, func(c *metav1.Condition) error {
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != u.Generation || !strings.Contains(c.Message, "phone") {
			return fmt.Errorf("want Synced=True naming the truncated phone, got %+v", c)
		}
		return nil
	})
	ev := s.waitEvent(t, "u1", "Warning", EventTruncated)
	if !strings.Contains(ev.Note, "phone") || strings.Contains(ev.Note, phone[:20]) {
		t.Fatalf("the Truncated event must name the field and not carry its value: %q", ev.Note)
	}
}

// TestDeactivationLandsDespiteConflict: when the full row cannot be written
// for a reason other than the database being down (here two objects made
// with kubectl claim one userName), the deactivation still reaches the row.
func TestDeactivationLandsDespiteConflict(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	s.createUser(t, "a", "alice@example.test")
	s.createUser(t, "b", "bob@example.test")
	for _, id := range []string{"a", "b"} {
		s.waitRow(t, id, func(r helpdesk.User) error {
			if !r.Active {
				return errors.New("not active yet")
			}
			return nil
		})
	}
	// Bypassing the SCIM server's uniqueness: a now claims b's name.
	s.updateUser(t, "a", func(u *scimv1.ProvisionedUser) {
		u.Spec.UserName = "BOB@example.test"
		u.Spec.Active = ptr.To(false)
	})
	s.waitRow(t, "a", func(r helpdesk.User) error {
		if r.Active {
			return errors.New("the deactivation of a did not reach its row")
		}
		return nil
	})
	s.waitSynced(t, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, func(c *metav1.Condition) error {
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonConflict ||
			!strings.Contains(c.Message, `"b"`) || !strings.Contains(c.Message, "deactivation was applied") {
			return fmt.Errorf("want Synced=False/Conflict naming b and the applied deactivation, got %+v", c)
		}
		return nil
	})
	// b keeps its row and name.
	if row := mustRow(t, store, s.ns, "b"); row.UserName != "bob@example.test" || !row.Active {
		t.Fatalf("b's row changed: %+v", row)
	}
}

// TestDeactivationLandsDespiteOverlongNameKey: a userName within the API's
// 191 characters whose canonical key is longer (NFKC turns the ligature ﬃ
// into "ffi") cannot be written; the deactivation still lands.
func TestDeactivationLandsDespiteOverlongNameKey(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	s.createUser(t, "lig", "ligature@example.test")
	s.waitRow(t, "lig", func(r helpdesk.User) error {
		if !r.Active {
			return errors.New("not active yet")
		}
		return nil
	})
	s.updateUser(t, "lig", func(u *scimv1.ProvisionedUser) {
		u.Spec.UserName = strings.Repeat("\ufb03", 64) // 64 characters, key of 192
		u.Spec.Active = ptr.To(false)
	})
	s.waitRow(t, "lig", func(r helpdesk.User) error {
		if r.Active || r.UserName != "ligature@example.test" {
			return fmt.Errorf("want the old row deactivated, got userName %q active %v", r.UserName, r.Active)
		}
		return nil
	})
	s.waitSynced(t, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "lig"}}, func(c *metav1.Condition) error {
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalid ||
			!strings.Contains(c.Message, "user_name_lower") || !strings.Contains(c.Message, "deactivation was applied") {
			return fmt.Errorf("want Synced=False/%s naming the key and the applied deactivation, got %+v", ReasonInvalid, c)
		}
		return nil
	})
}

func mustRow(t *testing.T, store helpdesk.Store, ns, id string) helpdesk.User {
	t.Helper()
	row, err := store.GetUser(context.Background(), ns, id)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// swapWhileDown is invariant I3's scenario: with the database unreachable,
// user a renames x -> tmp, b renames y -> x, a renames tmp -> y and is
// deactivated. The controllers only ever see the final state, where each
// row holds the name the other one wants. When the database returns both
// rows converge and a's deactivation lands.
func swapWhileDown(t *testing.T, s *syncStack, down, up func()) {
	t.Helper()
	s.createUser(t, "a", "x@example.test")
	s.createUser(t, "b", "y@example.test")
	for _, id := range []string{"a", "b"} {
		s.waitRow(t, id, func(helpdesk.User) error { return nil })
	}
	down()
	rename := func(id, name string) {
		s.updateUser(t, id, func(u *scimv1.ProvisionedUser) { u.Spec.UserName = name })
	}
	rename("a", "tmp@example.test")
	rename("b", "X@example.test") // another case of x: the same name key
	rename("a", "y@example.test")
	s.updateUser(t, "a", func(u *scimv1.ProvisionedUser) { u.Spec.Active = ptr.To(false) })
	// Let the controllers fail on the final state at least once.
	s.waitSynced(t, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, func(c *metav1.Condition) error {
		if c == nil || c.Reason != ReasonDatabaseUnavailable {
			return fmt.Errorf("want Synced=False/%s while down, got %+v", ReasonDatabaseUnavailable, c)
		}
		return nil
	})
	up()
	s.waitRow(t, "a", func(r helpdesk.User) error {
		if r.UserName != "y@example.test" || r.Active {
			return fmt.Errorf("a's row: userName %q active %v", r.UserName, r.Active)
		}
		return nil
	})
	s.waitRow(t, "b", func(r helpdesk.User) error {
		if r.UserName != "X@example.test" || !r.Active {
			return fmt.Errorf("b's row: userName %q active %v", r.UserName, r.Active)
		}
		return nil
	})
	for _, id := range []string{"a", "b"} {
		s.waitSynced(t, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: id}}, func(c *metav1.Condition) error {
			if c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("want Synced=True, got %+v", c)
			}
			return nil
		})
	}
	// The rows could only converge through a released key.
	if !strings.Contains(s.log.String(), "released a stale userName key") {
		t.Fatalf("no stale userName key was released")
	}
}

func TestSwappedUserNamesConvergeSQLite(t *testing.T) {
	store, _ := sqliteStore(t)
	gate := &gateStore{Store: store}
	s := startSync(t, gate, helpdesk.DeletionPolicyRetain, time.Minute)
	swapWhileDown(t, s, func() { gate.down.Store(true) }, func() { gate.down.Store(false) })
}

func TestSwappedUserNamesConvergePostgres(t *testing.T) {
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
	swapWhileDown(t, s, proxy.Down, proxy.Up)
}

// failingStore fails every user upsert as invalid and counts the calls.
type failingStore struct {
	helpdesk.Store
	calls atomic.Int64
}

func (f *failingStore) UpsertUser(context.Context, helpdesk.User) (bool, error) {
	n := f.calls.Add(1)
	// The message differs between attempts, as a driver's would.
	return false, fmt.Errorf("%w: rejected by the test store (attempt %d)", helpdesk.ErrInvalid, n)
}

// TestPermanentSyncFailureBacksOff: a user that can never be written is
// retried with exponential backoff, not in a loop fed by its own status
// writes.
func TestPermanentSyncFailureBacksOff(t *testing.T) {
	store, _ := sqliteStore(t)
	fs := &failingStore{Store: store}
	s := startSync(t, fs, helpdesk.DeletionPolicyRetain, time.Minute)
	s.createUser(t, "stuck", "stuck@example.test")
	s.waitSynced(t, &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "stuck"}}, func(c *metav1.Condition) error {
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalid {
			return fmt.Errorf("want Synced=False/%s, got %+v", ReasonInvalid, c)
		}
		return nil
	})
	start := fs.calls.Load()
	// Six seconds of backoff from 5 ms doubling: about ten attempts.
	time.Sleep(6 * time.Second)
	if n := fs.calls.Load() - start; n > 15 {
		t.Fatalf("%d upsert attempts in 6 s: the reconcile does not back off", n)
	}
}

// TestPendingGroupIsNotSynced: a group whose create the SCIM server has not
// acknowledged (it carries the pending-members annotation) is not written to
// the database; once the annotation goes, it is.
func TestPendingGroupIsNotSynced(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSync(t, store, helpdesk.DeletionPolicyRetain, time.Minute)
	ctx := context.Background()
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: s.ns,
		Annotations: map[string]string{scimv1.AnnotationPendingMembers: "true"}},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Not yet"}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if _, err := store.GetGroup(ctx, s.ns, "pending"); err == nil {
			t.Fatalf("a group whose create is not acknowledged was written to the database")
		}
		if !strings.Contains(s.log.String(), "not acknowledged yet") {
			return errors.New("the controller has not looked at the pending group yet")
		}
		return nil
	})
	// The SCIM server completes the create.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur scimv1.ProvisionedGroup
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(g), &cur); err != nil {
			return err
		}
		delete(cur.Annotations, scimv1.AnnotationPendingMembers)
		return env.Client.Update(ctx, &cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := store.GetGroup(ctx, s.ns, "pending")
		return err
	})
}

// TestAbandonedPendingGroupIsDeleted: a pending group older than ten
// minutes is a create that failed half-way; the controller deletes it (and
// leaves other groups alone).
func TestAbandonedPendingGroupIsDeleted(t *testing.T) {
	store, _ := sqliteStore(t)
	var mu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	s := startSyncWith(t, store, syncOptions{policy: helpdesk.DeletionPolicyRetain, resync: time.Minute, clock: funcClock(now)})
	ctx := context.Background()
	pending := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "abandoned", Namespace: s.ns,
		Annotations: map[string]string{scimv1.AnnotationPendingMembers: "true"}},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Half-created"}}
	normal := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: s.ns},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Kept"}}
	for _, g := range []*scimv1.ProvisionedGroup{pending, normal} {
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, func() error {
		_, err := store.GetGroup(ctx, s.ns, "kept")
		return err
	})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pending), pending); err != nil {
		t.Fatalf("a young pending group was deleted: %v", err)
	}
	// Eleven minutes later (by the controller's clock).
	mu.Lock()
	offset = 11 * time.Minute
	mu.Unlock()
	eventually(t, 30*time.Second, func() error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(pending), &scimv1.ProvisionedGroup{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("the abandoned pending group still exists (%v)", err)
	})
	s.waitEvent(t, "abandoned", "Normal", EventAbandonedDeleted)
	if _, err := store.GetGroup(ctx, s.ns, "abandoned"); !errors.Is(err, helpdesk.ErrNotFound) {
		t.Fatalf("the abandoned group reached the database: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(normal), normal); err != nil || !normal.DeletionTimestamp.IsZero() {
		t.Fatalf("a normal group was deleted: %v", err)
	}
}

// TestGroupSyncWithoutRepository: the group controller works without a
// repository (it reads the shards itself), as the user controller does.
func TestGroupSyncWithoutRepository(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSyncWith(t, store, syncOptions{policy: helpdesk.DeletionPolicyRetain, resync: time.Minute, noRepo: true})
	ctx := context.Background()
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "norepo", Namespace: s.ns},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "No repo"}}
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	shard := &scimv1.GroupMembership{ObjectMeta: metav1.ObjectMeta{Name: "norepo-0", Namespace: s.ns,
		Labels: map[string]string{scimv1.LabelGroup: "norepo"}},
		Spec: scimv1.GroupMembershipSpec{Group: "norepo", Members: []string{"m1", "m2"}}}
	if err := env.Client.Create(ctx, shard); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		got, err := store.GroupMembers(ctx, s.ns, "norepo")
		if err != nil {
			return err
		}
		if len(got) != 2 {
			return fmt.Errorf("members %v", got)
		}
		return nil
	})
}

// failingShardReader is a cache whose GroupMembership lists fail.
type failingShardReader struct{ client.Reader }

func (f failingShardReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*scimv1.GroupMembershipList); ok {
		return errors.New("test: the membership shards cannot be read")
	}
	return f.Reader.List(ctx, list, opts...)
}

// TestGroupMembersReadFailureShows: when the member list cannot be read the
// group says so in its Synced condition instead of staying silent.
func TestGroupMembersReadFailureShows(t *testing.T) {
	store, _ := sqliteStore(t)
	s := startSyncWith(t, store, syncOptions{policy: helpdesk.DeletionPolicyRetain, resync: time.Minute, brokenMembers: true})
	g := &scimv1.ProvisionedGroup{ObjectMeta: metav1.ObjectMeta{Name: "unreadable", Namespace: s.ns},
		Spec: scimv1.ProvisionedGroupSpec{DisplayName: "Unreadable"}}
	if err := env.Client.Create(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	s.waitSynced(t, g, func(c *metav1.Condition) error {
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonMembersUnavailable {
			return fmt.Errorf("want Synced=False/%s, got %+v", ReasonMembersUnavailable, c)
		}
		return nil
	})
}

// TestHelpdeskUserRefusesUndecodableCustomFields: a custom field that does
// not decode is an invalid row naming the field, never silently dropped;
// the row's userName key is the canonical one.
func TestHelpdeskUserRefusesUndecodableCustomFields(t *testing.T) {
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "cf", Namespace: "t"},
		Spec: scimv1.ProvisionedUserSpec{UserName: "\u212Aelvin@example.test", Enterprise: &scimv1.EnterpriseUser{
			CustomFields: map[string]apiextensionsv1.JSON{"good": {Raw: []byte(`1`)}, "bad": {Raw: []byte(`{"secret`)}}}}}
	row, err := helpdeskUser(u)
	if !errors.Is(err, helpdesk.ErrInvalid) || !strings.Contains(err.Error(), "bad") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("want an invalid-value error naming the field (not its value), got %v", err)
	}
	if row.UserNameKey != namekey.Key(u.Spec.UserName) || row.UserNameKey != "kelvin@example.test" {
		t.Fatalf("UserNameKey = %q", row.UserNameKey)
	}
	delete(u.Spec.Enterprise.CustomFields, "bad")
	row, err = helpdeskUser(u)
	if err != nil || row.CustomFields["good"] != float64(1) {
		t.Fatalf("good custom fields: %v, %v", row.CustomFields, err)
	}
}

// funcClock is a clock that reads now.
type funcClock func() time.Time

func (f funcClock) Now() time.Time                  { return f() }
func (f funcClock) Since(t time.Time) time.Duration { return f().Sub(t) }
