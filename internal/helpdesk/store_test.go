package helpdesk

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scim-operator/scim-operator/internal/namekey"
)

// storeSuite is the one behavioural suite every dialect must pass. newDB
// returns the URL of a new, empty database that is dropped after the test.
func storeSuite(t *testing.T, newDB func(t *testing.T) string) {
	ctx := context.Background()
	dbURL := newDB(t)
	st := mustOpen(t, dbURL)
	s := st.(*sqlStore)
	s.now = newFakeClock().now

	t.Run("Migrations", func(t *testing.T) { testMigrations(t, s, dbURL, newDB) })
	t.Run("UpsertUser", func(t *testing.T) { testUpsertUser(ctx, t, s) })
	t.Run("EachColumnIsAChange", func(t *testing.T) { testEachColumnIsAChange(ctx, t, s) })
	t.Run("NoOpWaitsForNoWriter", func(t *testing.T) { testNoOpWaitsForNoWriter(ctx, t, s) })
	t.Run("ConcurrentWritersOfOneRow", func(t *testing.T) { testConcurrentWritersOfOneRow(ctx, t, s) })
	t.Run("CustomFieldsJSON", func(t *testing.T) { testCustomFieldsJSON(ctx, t, s) })
	t.Run("ConcurrentUpsert", func(t *testing.T) { testConcurrentUpsert(ctx, t, s) })
	t.Run("ConcurrentRenames", func(t *testing.T) { testConcurrentRenames(ctx, t, s) })
	t.Run("WriteRaces", func(t *testing.T) { testWriteRaces(ctx, t, s) })
	t.Run("PoolKeepsConnections", func(t *testing.T) { testPoolKeepsConnections(ctx, t, s) })
	t.Run("UserNameConflict", func(t *testing.T) { testUserNameConflict(ctx, t, s) })
	t.Run("DeleteUser", func(t *testing.T) { testDeleteUser(ctx, t, s) })
	t.Run("Truncation", func(t *testing.T) { testTruncation(ctx, t, s) })
	t.Run("UserNameKey", func(t *testing.T) { testUserNameKey(ctx, t, s) })
	t.Run("DeactivateUser", func(t *testing.T) { testDeactivateUser(ctx, t, s) })
	t.Run("ReleaseUserName", func(t *testing.T) { testReleaseUserName(ctx, t, s) })
	t.Run("Groups", func(t *testing.T) { testGroups(ctx, t, s) })
	t.Run("SyncMembers", func(t *testing.T) { testSyncMembers(ctx, t, s) })
	t.Run("SyncMembersLarge", func(t *testing.T) { testSyncMembersLarge(ctx, t, s) })
	t.Run("CustomFieldDefinitions", func(t *testing.T) { testCustomFieldDefinitions(ctx, t, s) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(ctx, t, s) })
}

func mustOpen(t *testing.T, dbURL string) Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open(%s): %v", Redact(dbURL), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// fakeClock ticks one second (plus some nanoseconds, to check they are cut
// to microseconds) on every read, so updated_at changes are visible.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func countVersions(t *testing.T, s *sqlStore) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM scim_operator_schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testMigrations(t *testing.T, s *sqlStore, dbURL string, newDB func(t *testing.T) string) {
	ms, err := loadMigrations(s.Dialect())
	if err != nil || len(ms) == 0 {
		t.Fatalf("loadMigrations: %d, %v", len(ms), err)
	}
	if got := countVersions(t, s); got != len(ms) {
		t.Fatalf("versions after first Open = %d, want %d", got, len(ms))
	}
	// A second Open finds everything applied.
	again := mustOpen(t, dbURL).(*sqlStore)
	if got := countVersions(t, again); got != len(ms) {
		t.Fatalf("versions after second Open = %d, want %d", got, len(ms))
	}

	// Two replicas starting at once on an empty database.
	fresh := newDB(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	stores := make([]Store, 2)
	for i := range 2 {
		wg.Go(func() {
			stores[i], errs[i] = Open(context.Background(), fresh)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if got := countVersions(t, stores[0].(*sqlStore)); got != len(ms) {
		t.Fatalf("versions after concurrent Opens = %d, want %d", got, len(ms))
	}
	if _, err := stores[1].UpsertUser(context.Background(), newUser("m", "1", "m")); err != nil {
		t.Fatalf("schema unusable after concurrent migration: %v", err)
	}
}

// newUser is a minimal live user; its key is the operator's canonical one.
func newUser(tenant, id, name string) User {
	return User{Tenant: tenant, SCIMID: id, UserName: name, UserNameKey: namekey.Key(name), Active: true}
}

func fullUser(tenant, id, name string) User {
	return User{
		Tenant: tenant, SCIMID: id, UserName: name, UserNameKey: namekey.Key(name), ExternalID: "ext-" + id,
		DisplayName: "Display " + name, GivenName: "Given", FamilyName: "Family",
		PrimaryEmail: name + "@example.com", Phone: "+1 555 0100", Title: "Engineer",
		Department: "R&D", EmployeeNumber: "E-" + id, ManagerSCIMID: "mgr-1",
		PreferredLanguage: "de-CH", Active: true,
		CustomFields: map[string]any{"costCenter": "CC-1", "vip": true},
	}
}

func mustUpsertUser(ctx context.Context, t *testing.T, s Store, u User, wantChanged bool) {
	t.Helper()
	changed, err := s.UpsertUser(ctx, u)
	if err != nil {
		t.Fatalf("UpsertUser(%s): %v", u.SCIMID, err)
	}
	if changed != wantChanged {
		t.Fatalf("UpsertUser(%s) changed = %v, want %v", u.SCIMID, changed, wantChanged)
	}
}

func mustGetUser(ctx context.Context, t *testing.T, s Store, tenant, id string) User {
	t.Helper()
	u, err := s.GetUser(ctx, tenant, id)
	if err != nil {
		t.Fatalf("GetUser(%s/%s): %v", tenant, id, err)
	}
	return u
}

// withoutTimes drops the fields the store fills, for comparing with input.
func withoutTimes(u User) User {
	u.CreatedAt, u.UpdatedAt, u.DeletedAt = time.Time{}, time.Time{}, nil
	return u
}

func testUpsertUser(ctx context.Context, t *testing.T, s *sqlStore) {
	in := fullUser("upsert", "u1", "Alice")
	mustUpsertUser(ctx, t, s, in, true)
	got := mustGetUser(ctx, t, s, "upsert", "u1")
	if !reflect.DeepEqual(withoutTimes(got), in) {
		t.Fatalf("read back:\n got %#v\nwant %#v", withoutTimes(got), in)
	}
	if got.CreatedAt.IsZero() || !got.CreatedAt.Equal(got.UpdatedAt) || got.DeletedAt != nil {
		t.Fatalf("timestamps after insert: created %v updated %v deleted %v", got.CreatedAt, got.UpdatedAt, got.DeletedAt)
	}
	if got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond()%1000 != 0 || got.CreatedAt.Nanosecond() == 0 {
		t.Fatalf("created_at %v: want UTC with microseconds kept", got.CreatedAt)
	}

	// No-op: nothing written, updated_at untouched.
	mustUpsertUser(ctx, t, s, in, false)
	if again := mustGetUser(ctx, t, s, "upsert", "u1"); !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("no-op upsert moved updated_at %v -> %v", got.UpdatedAt, again.UpdatedAt)
	}

	// Update: every column can change, and optional ones can be cleared.
	up := in
	up.DisplayName, up.Phone, up.ManagerSCIMID, up.Active = "Alice B.", "", "", false
	mustUpsertUser(ctx, t, s, up, true)
	after := mustGetUser(ctx, t, s, "upsert", "u1")
	if !reflect.DeepEqual(withoutTimes(after), up) {
		t.Fatalf("after update:\n got %#v\nwant %#v", withoutTimes(after), up)
	}
	if !after.UpdatedAt.After(got.UpdatedAt) || !after.CreatedAt.Equal(got.CreatedAt) {
		t.Fatalf("after update: created %v -> %v, updated %v -> %v", got.CreatedAt, after.CreatedAt, got.UpdatedAt, after.UpdatedAt)
	}
	var nulls int
	if err := s.db.QueryRow(s.d.rebind(`SELECT COUNT(*) FROM helpdesk_users
		WHERE tenant = ? AND scim_id = ? AND phone IS NULL AND manager_scim_id IS NULL`), "upsert", "u1").Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("empty optional columns should be NULL: %d, %v", nulls, err)
	}

	// Changing only the case of userName is an update of the same user.
	up.UserName = "ALICE"
	mustUpsertUser(ctx, t, s, up, true)

	if _, err := s.GetUser(ctx, "upsert", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUser(missing) err = %v, want ErrNotFound", err)
	}
}

// testEachColumnIsAChange: a change of any one column, or a deleted_at
// someone else set, is written and reported as a change; storing the same
// values again is not. An upsert that compares the row it holds with the
// row it is given must compare every column.
func testEachColumnIsAChange(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "columns"
	u := fullUser(tenant, "u1", "Column")
	mustUpsertUser(ctx, t, s, u, true)
	for _, c := range []struct {
		column string
		change func(*User)
	}{
		{"user_name", func(u *User) { u.UserName = "column" }},
		{"user_name_lower", func(u *User) { u.UserNameKey = "column-2"; u.UserName = "Column-2" }},
		{"external_id", func(u *User) { u.ExternalID = "" }},
		{"display_name", func(u *User) { u.DisplayName = "Other" }},
		{"given_name", func(u *User) { u.GivenName = "Other" }},
		{"family_name", func(u *User) { u.FamilyName = "" }},
		{"primary_email", func(u *User) { u.PrimaryEmail = "other@example.com" }},
		{"phone", func(u *User) { u.Phone = "+1 555 0199" }},
		{"title", func(u *User) { u.Title = "" }},
		{"department", func(u *User) { u.Department = "Ops" }},
		{"employee_number", func(u *User) { u.EmployeeNumber = "E-2" }},
		{"manager_scim_id", func(u *User) { u.ManagerSCIMID = "mgr-2" }},
		{"preferred_language", func(u *User) { u.PreferredLanguage = "fr" }},
		{"active", func(u *User) { u.Active = !u.Active }},
		{"custom_fields", func(u *User) { u.CustomFields = map[string]any{"costCenter": "CC-2", "vip": true} }},
	} {
		c.change(&u)
		if changed, err := s.UpsertUser(ctx, u); err != nil || !changed {
			t.Fatalf("a change of %s alone: changed %v, %v; want a change", c.column, changed, err)
		}
		if got := mustGetUser(ctx, t, s, tenant, u.SCIMID); !reflect.DeepEqual(withoutTimes(got), u) {
			t.Fatalf("after a change of %s:\n got %#v\nwant %#v", c.column, withoutTimes(got), u)
		}
		mustUpsertUser(ctx, t, s, u, false)
	}

	g := Group{Tenant: tenant, SCIMID: "g1", DisplayName: "Column", ExternalID: "ad-1"}
	mustUpsertGroup(ctx, t, s, g, true)
	for _, change := range []func(*Group){
		func(g *Group) { g.DisplayName = "column" },
		func(g *Group) { g.ExternalID = "ad-2" },
		func(g *Group) { g.ExternalID = "" },
	} {
		change(&g)
		mustUpsertGroup(ctx, t, s, g, true)
		if got, err := s.GetGroup(ctx, tenant, g.SCIMID); err != nil || got.DisplayName != g.DisplayName || got.ExternalID != g.ExternalID {
			t.Fatalf("group read back %+v, %v; want %+v", got, err, g)
		}
		mustUpsertGroup(ctx, t, s, g, false)
	}

	// The helpdesk may mark a row deleted and leave the rest: the upsert
	// of the same values revives it.
	for _, table := range []string{"helpdesk_users", "helpdesk_groups"} {
		if _, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE `+table+` SET deleted_at = updated_at WHERE tenant = ?`), tenant); err != nil {
			t.Fatal(err)
		}
	}
	mustUpsertUser(ctx, t, s, u, true)
	mustUpsertGroup(ctx, t, s, g, true)
	if got := mustGetUser(ctx, t, s, tenant, u.SCIMID); got.DeletedAt != nil {
		t.Fatalf("user marked deleted by the helpdesk is still deleted after an upsert")
	}
	if got, err := s.GetGroup(ctx, tenant, g.SCIMID); err != nil || got.DeletedAt != nil {
		t.Fatalf("group marked deleted by the helpdesk: %+v, %v after an upsert", got, err)
	}
}

// testNoOpWaitsForNoWriter: an upsert that changes nothing neither takes
// nor waits for a lock. A resync of an unchanged row must not queue behind
// the row's writers (or, on SQLite, behind the database's writer), nor
// write a lock of its own. The test holds a write transaction on both
// rows, which a no-op that locks would wait for until its deadline.
func testNoOpWaitsForNoWriter(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "noop"
	u := fullUser(tenant, "u1", "Noop")
	g := Group{Tenant: tenant, SCIMID: "g1", DisplayName: "Noop", ExternalID: "ad-1"}
	mustUpsertUser(ctx, t, s, u, true)
	mustUpsertGroup(ctx, t, s, g, true)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, table := range []string{"helpdesk_users", "helpdesk_groups"} {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE `+table+` SET updated_at = updated_at WHERE tenant = ?`), tenant); err != nil {
			t.Fatal(err)
		}
	}
	// The deadline only bounds the failure: a no-op that waits for the
	// open transaction waits until it ends, which is after this.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if changed, err := s.UpsertUser(wctx, u); err != nil || changed {
		t.Errorf("no-op user upsert beside a writer of its row: changed %v, %v; want unchanged at once", changed, err)
	}
	if changed, err := s.UpsertGroup(wctx, g); err != nil || changed {
		t.Errorf("no-op group upsert beside a writer of its row: changed %v, %v; want unchanged at once", changed, err)
	}
}

// testConcurrentWritersOfOneRow: writers store different values in one
// existing row at once, each its own values in turn, each twice. Every
// upsert succeeds, and the row ends holding the last value of one of the
// writers: the write acknowledged last is the one that stays.
func testConcurrentWritersOfOneRow(ctx context.Context, t *testing.T, s *sqlStore) {
	const (
		tenant  = "onerow"
		writers = 6
		rounds  = 15
	)
	base := fullUser(tenant, "u1", "OneRow")
	mustUpsertUser(ctx, t, s, base, true)
	g := Group{Tenant: tenant, SCIMID: "g1", DisplayName: "OneRow"}
	mustUpsertGroup(ctx, t, s, g, true)
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*4)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				u, g := base, g
				u.Title = fmt.Sprintf("w%d-%d", w, r)
				u.Active = r%2 == 0
				g.DisplayName, g.ExternalID = u.Title, fmt.Sprint(w)
				for range 2 {
					if _, err := s.UpsertUser(ctx, u); err != nil {
						errs <- err
					}
					if _, err := s.UpsertGroup(ctx, g); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent upsert of one row: %v", err)
	}
	last := map[string]bool{}
	for w := range writers {
		last[fmt.Sprintf("w%d-%d", w, rounds-1)] = true
	}
	got := mustGetUser(ctx, t, s, tenant, base.SCIMID)
	want := base
	want.Title, want.Active = got.Title, (rounds-1)%2 == 0
	if !last[got.Title] || !reflect.DeepEqual(withoutTimes(got), want) {
		t.Errorf("row after concurrent writers: %+v; want one writer's last value, a title of %v", withoutTimes(got), last)
	}
	gg, err := s.GetGroup(ctx, tenant, g.SCIMID)
	if err != nil || !last[gg.DisplayName] || gg.DisplayName != fmt.Sprintf("w%s-%d", gg.ExternalID, rounds-1) {
		t.Errorf("group after concurrent writers: %+v, %v; want one writer's last value %v", gg, err, last)
	}
}

func testCustomFieldsJSON(ctx context.Context, t *testing.T, s *sqlStore) {
	cf := map[string]any{
		"zeta": "last", "alpha": 1.5, "count": 42, "flag": false, "none": nil,
		"list":   []any{"a", 2, true},
		"nested": map[string]any{"b": "x", "a": []string{"y"}},
		"uni":    "Zoë – 東京",
	}
	u := newUser("json", "j1", "json")
	u.CustomFields = cf
	mustUpsertUser(ctx, t, s, u, true)
	got := mustGetUser(ctx, t, s, "json", "j1")
	want := map[string]any{
		"zeta": "last", "alpha": 1.5, "count": float64(42), "flag": false, "none": nil,
		"list":   []any{"a", float64(2), true},
		"nested": map[string]any{"b": "x", "a": []any{"y"}},
		"uni":    "Zoë – 東京",
	}
	if !reflect.DeepEqual(got.CustomFields, want) {
		t.Fatalf("custom fields:\n got %#v\nwant %#v", got.CustomFields, want)
	}
	// Same content (the database may have reordered keys): no-op.
	mustUpsertUser(ctx, t, s, u, false)
	// nil and empty maps are the same, stored as {}.
	u2 := newUser("json", "j2", "json2")
	u2.Active = false
	mustUpsertUser(ctx, t, s, u2, true)
	u2.CustomFields = map[string]any{}
	mustUpsertUser(ctx, t, s, u2, false)
	if got := mustGetUser(ctx, t, s, "json", "j2"); got.CustomFields == nil || len(got.CustomFields) != 0 {
		t.Fatalf("empty custom fields read back as %#v", got.CustomFields)
	}
	u.CustomFields = map[string]any{"count": 43}
	mustUpsertUser(ctx, t, s, u, true)
}

// testConcurrentUpsert has several controllers (or replicas) write the same
// new user at once: all succeed and exactly one reports a change.
func testConcurrentUpsert(ctx context.Context, t *testing.T, s *sqlStore) {
	const workers = 6
	u := fullUser("race", "r1", "Racer")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		changes int
		errs    []error
	)
	for range workers {
		wg.Go(func() {
			changed, err := s.UpsertUser(ctx, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if changed {
				changes++
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || changes != 1 {
		t.Fatalf("concurrent upserts: %d changed, errors %v", changes, errs)
	}
}

func testUserNameConflict(ctx context.Context, t *testing.T, s *sqlStore) {
	mustUpsertUser(ctx, t, s, newUser("conf", "a", "Bob@Example.com"), true)
	for _, name := range []string{"bob@example.com", "BOB@EXAMPLE.COM"} {
		_, err := s.UpsertUser(ctx, newUser("conf", "b", name))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("UpsertUser(%q) err = %v, want ErrConflict", name, err)
		}
	}
	// Non-ASCII names fold too (SQLite's lower() would not).
	mustUpsertUser(ctx, t, s, newUser("conf", "c", "ÅSA"), true)
	if _, err := s.UpsertUser(ctx, newUser("conf", "d", "åsa")); !errors.Is(err, ErrConflict) {
		t.Fatalf("UpsertUser(åsa) err = %v, want ErrConflict", err)
	}
	// Another tenant may use the name.
	mustUpsertUser(ctx, t, s, newUser("conf-other", "b", "bob@example.com"), true)
	if _, err := s.GetUser(ctx, "conf", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("conflicting user was written: %v", err)
	}
}

func testDeleteUser(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "del"
	old := fullUser(tenant, "old", "Carol")
	mustUpsertUser(ctx, t, s, old, true)

	// Retain (the default): row stays, inactive, deleted_at set.
	if err := s.DeleteUser(ctx, tenant, "old", ""); err != nil {
		t.Fatal(err)
	}
	got := mustGetUser(ctx, t, s, tenant, "old")
	if got.DeletedAt == nil || got.Active || got.UserName != "Carol" {
		t.Fatalf("retained user: deleted_at %v active %v userName %q", got.DeletedAt, got.Active, got.UserName)
	}
	// Idempotent: deleting again keeps the first deletion time.
	if err := s.DeleteUser(ctx, tenant, "old", DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}
	if again := mustGetUser(ctx, t, s, tenant, "old"); !again.DeletedAt.Equal(*got.DeletedAt) {
		t.Fatalf("second retain moved deleted_at %v -> %v", got.DeletedAt, again.DeletedAt)
	}

	// The retained row does not block a new live user with the same name.
	mustUpsertUser(ctx, t, s, newUser(tenant, "new", "carol"), true)
	// Reviving the old user now clashes with the live one.
	if _, err := s.UpsertUser(ctx, old); !errors.Is(err, ErrConflict) {
		t.Fatalf("revive with taken name err = %v, want ErrConflict", err)
	}
	// Two retained users may share a name.
	if err := s.DeleteUser(ctx, tenant, "new", DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}
	// Now the old one can come back: deleted_at cleared.
	mustUpsertUser(ctx, t, s, old, true)
	if back := mustGetUser(ctx, t, s, tenant, "old"); back.DeletedAt != nil || !back.Active {
		t.Fatalf("revived user: deleted_at %v active %v", back.DeletedAt, back.Active)
	}

	// Delete removes the row; missing rows are fine.
	if err := s.DeleteUser(ctx, tenant, "old", DeletionPolicyDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, tenant, "old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete err = %v, want ErrNotFound", err)
	}
	for _, p := range []DeletionPolicy{DeletionPolicyDelete, DeletionPolicyRetain} {
		if err := s.DeleteUser(ctx, tenant, "never-existed", p); err != nil {
			t.Fatalf("DeleteUser(missing, %s): %v", p, err)
		}
	}
	if err := s.DeleteUser(ctx, tenant, "new", "purge"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown policy err = %v, want ErrInvalid", err)
	}
}

func mustUpsertGroup(ctx context.Context, t *testing.T, s Store, g Group, wantChanged bool) {
	t.Helper()
	changed, err := s.UpsertGroup(ctx, g)
	if err != nil {
		t.Fatalf("UpsertGroup(%s): %v", g.SCIMID, err)
	}
	if changed != wantChanged {
		t.Fatalf("UpsertGroup(%s) changed = %v, want %v", g.SCIMID, changed, wantChanged)
	}
}

func mustSync(ctx context.Context, t *testing.T, s Store, tenant, group string, desired []string, wantAdded, wantRemoved int) {
	t.Helper()
	added, removed, err := s.SyncMembers(ctx, tenant, group, desired)
	if err != nil {
		t.Fatalf("SyncMembers(%s, %d ids): %v", group, len(desired), err)
	}
	if added != wantAdded || removed != wantRemoved {
		t.Fatalf("SyncMembers(%s) = +%d -%d, want +%d -%d", group, added, removed, wantAdded, wantRemoved)
	}
}

func mustMembers(ctx context.Context, t *testing.T, s Store, tenant, group string) []string {
	t.Helper()
	m, err := s.GroupMembers(ctx, tenant, group)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testGroups(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "grp"
	g := Group{Tenant: tenant, SCIMID: "g1", DisplayName: "Support", ExternalID: "ad-1"}
	mustUpsertGroup(ctx, t, s, g, true)
	got, err := s.GetGroup(ctx, tenant, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if got.DisplayName != "Support" || got.ExternalID != "ad-1" || got.DeletedAt != nil || !got.CreatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("group read back: %#v", got)
	}
	mustUpsertGroup(ctx, t, s, g, false)
	if again, _ := s.GetGroup(ctx, tenant, "g1"); !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("no-op group upsert moved updated_at")
	}
	g.DisplayName, g.ExternalID = "Support L2", ""
	mustUpsertGroup(ctx, t, s, g, true)
	if again, _ := s.GetGroup(ctx, tenant, "g1"); again.DisplayName != "Support L2" || again.ExternalID != "" || !again.UpdatedAt.After(got.UpdatedAt) {
		t.Fatalf("group after update: %#v", again)
	}

	// Retain keeps the row and its members; upsert revives it.
	mustSync(ctx, t, s, tenant, "g1", []string{"u1", "u2"}, 2, 0)
	if err := s.DeleteGroup(ctx, tenant, "g1", DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}
	if del, _ := s.GetGroup(ctx, tenant, "g1"); del.DeletedAt == nil {
		t.Fatalf("retained group has no deleted_at")
	}
	if m := mustMembers(ctx, t, s, tenant, "g1"); len(m) != 2 {
		t.Fatalf("retained group members = %v", m)
	}
	if err := s.DeleteGroup(ctx, tenant, "g1", ""); err != nil {
		t.Fatal(err)
	}
	mustUpsertGroup(ctx, t, s, g, true)
	if back, _ := s.GetGroup(ctx, tenant, "g1"); back.DeletedAt != nil {
		t.Fatalf("revived group still deleted")
	}

	// Delete removes the row and its member rows, but not other groups'.
	mustUpsertGroup(ctx, t, s, Group{Tenant: tenant, SCIMID: "g2", DisplayName: "Other"}, true)
	mustSync(ctx, t, s, tenant, "g2", []string{"u1"}, 1, 0)
	if err := s.DeleteGroup(ctx, tenant, "g1", DeletionPolicyDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGroup(ctx, tenant, "g1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted group err = %v, want ErrNotFound", err)
	}
	if m := mustMembers(ctx, t, s, tenant, "g1"); len(m) != 0 {
		t.Fatalf("deleted group still has members %v", m)
	}
	if m := mustMembers(ctx, t, s, tenant, "g2"); !reflect.DeepEqual(m, []string{"u1"}) {
		t.Fatalf("other group's members = %v", m)
	}
	if err := s.DeleteGroup(ctx, tenant, "g1", DeletionPolicyDelete); err != nil {
		t.Fatalf("deleting a missing group: %v", err)
	}
}

func testSyncMembers(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "mem"
	mustSync(ctx, t, s, tenant, "g", []string{"c", "a", "b"}, 3, 0)
	if m := mustMembers(ctx, t, s, tenant, "g"); !reflect.DeepEqual(m, []string{"a", "b", "c"}) {
		t.Fatalf("members = %v", m)
	}
	mustSync(ctx, t, s, tenant, "g", []string{"b", "c", "d", "d", "e"}, 2, 1) // duplicates ignored
	mustSync(ctx, t, s, tenant, "g", []string{"e", "d", "c", "b"}, 0, 0)
	if m := mustMembers(ctx, t, s, tenant, "g"); !reflect.DeepEqual(m, []string{"b", "c", "d", "e"}) {
		t.Fatalf("members = %v", m)
	}
	// Same ids in another tenant or group are independent rows.
	mustSync(ctx, t, s, "mem-other", "g", []string{"b"}, 1, 0)
	mustSync(ctx, t, s, tenant, "g2", []string{"b"}, 1, 0)
	mustSync(ctx, t, s, tenant, "g", nil, 0, 4)
	if m := mustMembers(ctx, t, s, tenant, "g"); len(m) != 0 {
		t.Fatalf("members after clearing = %v", m)
	}
	if m := mustMembers(ctx, t, s, tenant, "g2"); !reflect.DeepEqual(m, []string{"b"}) {
		t.Fatalf("g2 members = %v", m)
	}
	if _, _, err := s.SyncMembers(ctx, tenant, "g", []string{"ok", ""}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty member id err = %v, want ErrInvalid", err)
	}
}

func testSyncMembersLarge(ctx context.Context, t *testing.T, s *sqlStore) {
	const (
		tenant = "big"
		n      = 100_000
	)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%08d-2819c223-7f76-453a-919d-413861904646", i)
	}
	start := time.Now()
	mustSync(ctx, t, s, tenant, "all", ids, n, 0)
	t.Logf("%s: initial sync of %d members: %v", s.Dialect(), n, time.Since(start))

	start = time.Now()
	mustSync(ctx, t, s, tenant, "all", ids, 0, 0)
	t.Logf("%s: no-op sync of %d members: %v", s.Dialect(), n, time.Since(start))

	// Swap one member: exactly one row in, one row out.
	changed := append([]string{"user-new"}, ids[1:]...)
	start = time.Now()
	mustSync(ctx, t, s, tenant, "all", changed, 1, 1)
	t.Logf("%s: one-member change in %d: %v", s.Dialect(), n, time.Since(start))

	m := mustMembers(ctx, t, s, tenant, "all")
	if len(m) != n || m[len(m)-1] != "user-new" || m[0] != ids[1] {
		t.Fatalf("members after swap: len %d first %q last %q", len(m), m[0], m[len(m)-1])
	}
	// Large removal uses DELETE ... IN chunks.
	start = time.Now()
	mustSync(ctx, t, s, tenant, "all", changed[:n/2], 0, n/2)
	t.Logf("%s: removing %d members: %v", s.Dialect(), n/2, time.Since(start))
}

func testCustomFieldDefinitions(ctx context.Context, t *testing.T, s *sqlStore) {
	// The helpdesk owns these rows; write them the way it would.
	for _, f := range []CustomField{
		{AllTenants, "costCenter", CustomFieldString},
		{"acme", "vip", CustomFieldBoolean},
		{"acme", "badgeNumber", CustomFieldInteger},
		{"globex", "hiredAt", CustomFieldDateTime},
	} {
		if _, err := s.db.Exec(s.d.rebind(`INSERT INTO helpdesk_custom_fields (tenant, name, type) VALUES (?, ?, ?)`),
			f.Tenant, f.Name, f.Type); err != nil {
			t.Fatalf("insert custom field %v: %v", f, err)
		}
	}
	if _, err := s.db.Exec(s.d.rebind(`INSERT INTO helpdesk_custom_fields (tenant, name, type) VALUES (?, ?, ?)`),
		"acme", "bad", "float"); err == nil {
		t.Fatalf("type CHECK constraint accepted %q", "float")
	}
	got, err := s.CustomFields(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := []CustomField{
		{AllTenants, "costCenter", CustomFieldString},
		{"acme", "badgeNumber", CustomFieldInteger},
		{"acme", "vip", CustomFieldBoolean},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CustomFields(acme) = %v, want %v", got, want)
	}
	if got, err := s.CustomFields(ctx, "initech"); err != nil || !reflect.DeepEqual(got, want[:1]) {
		t.Fatalf("CustomFields(initech) = %v, %v", got, err)
	}
}

func testInvalid(ctx context.Context, t *testing.T, s *sqlStore) {
	long := strings.Repeat("x", maxKeyLen+1)
	valid := newUser("inv", "1", "a")
	with := func(mut func(*User)) User {
		u := valid
		mut(&u)
		return u
	}
	for name, u := range map[string]User{
		"no tenant":           with(func(u *User) { u.Tenant = "" }),
		"star tenant":         with(func(u *User) { u.Tenant = AllTenants }),
		"no id":               with(func(u *User) { u.SCIMID = "" }),
		"no userName":         with(func(u *User) { u.UserName = "" }),
		"no userName key":     with(func(u *User) { u.UserNameKey = "" }),
		"long userName":       with(func(u *User) { u.UserName, u.UserNameKey = long, long }),
		"long userName key":   with(func(u *User) { u.UserNameKey = long }),
		"long externalId":     with(func(u *User) { u.ExternalID = long }),
		"long employeeNumber": with(func(u *User) { u.EmployeeNumber = long }),
		"long manager":        with(func(u *User) { u.ManagerSCIMID = long }),
		"bad utf8":            with(func(u *User) { u.UserName = "a\xff" }),
		"nul":                 with(func(u *User) { u.UserName = "a\x00b" }),
		"nul in phone":        with(func(u *User) { u.Phone = "1\x002" }),
	} {
		if _, err := s.UpsertUser(ctx, u); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	// The limit is in characters, as in VARCHAR(191): 191 multi-byte runes fit.
	mustUpsertUser(ctx, t, s, newUser("inv", "wide", strings.Repeat("é", maxKeyLen)), true)
	if _, err := s.UpsertUser(ctx, with(func(u *User) { u.CustomFields = map[string]any{"ch": make(chan int)} })); !errors.Is(err, ErrInvalid) {
		t.Errorf("unencodable custom field: err = %v, want ErrInvalid", err)
	}
	if _, err := s.UpsertGroup(ctx, Group{Tenant: "inv", SCIMID: "g"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("group without displayName: err = %v, want ErrInvalid", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// testTruncation: optional text columns narrower than the API are written
// as far as they fit, cut at a character boundary, and reported; key
// columns are not (see testInvalid).
func testTruncation(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "trunc"
	u := fullUser(tenant, "t1", "long@example.com")
	phone := strings.Repeat("0123456789", 7)[:maxShortLen+1]
	u.Phone = phone
	u.DisplayName = strings.Repeat("é", maxTextLen) + "tail" // multi-byte: the cut counts characters
	u.PrimaryEmail = strings.Repeat("m", maxEmailLen) + "@example.com"
	u.PreferredLanguage = strings.Repeat("日", maxShortLen) // exactly fits
	u.Active = false
	fitted, cut := FitUser(u)
	want := []string{"display_name", "primary_email", "phone"}
	if !reflect.DeepEqual(cut, want) || fitted.Phone != phone[:maxShortLen] {
		t.Fatalf("FitUser cut %v (phone %q), want %v", cut, fitted.Phone, want)
	}
	if _, cut := FitUser(fullUser(tenant, "t2", "short")); cut != nil {
		t.Fatalf("FitUser cut %v of a user that fits", cut)
	}
	mustUpsertUser(ctx, t, s, u, true)
	got := mustGetUser(ctx, t, s, tenant, "t1")
	if got.Phone != phone[:maxShortLen] || got.DisplayName != strings.Repeat("é", maxTextLen) ||
		got.PrimaryEmail != strings.Repeat("m", maxEmailLen) || got.PreferredLanguage != u.PreferredLanguage || got.Active {
		t.Fatalf("row after truncation: phone %q display %d chars email %d chars language %q active %v",
			got.Phone, len([]rune(got.DisplayName)), len([]rune(got.PrimaryEmail)), got.PreferredLanguage, got.Active)
	}
	if !reflect.DeepEqual(withoutTimes(got), fitted) {
		t.Fatalf("row after truncation:\n got %#v\nwant %#v", withoutTimes(got), fitted)
	}
	// Writing the same (long) user again is a no-op.
	mustUpsertUser(ctx, t, s, u, false)
	if again := mustGetUser(ctx, t, s, tenant, "t1"); !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("re-applying a truncated user moved updated_at")
	}
}

// testUserNameKey: the store keeps the key it is given (the operator's
// canonical key), not a folding of its own, so names that Unicode case
// folding joins collide and rows written under an older key are rewritten.
func testUserNameKey(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "key"
	for i, pair := range [][2]string{
		{"\u017Fam", "SAM"},                    // long s
		{"\u212Aelvin", "kelvin"},              // Kelvin sign
		{"İK-team", "ik-TEAM"},                 // dotted capital I
		{"jose\u0301", "JOSÉ"},                 // decomposed and composed accent
		{"ＡＢＣ@example.com", "abc@EXAMPLE.com"}, // full-width letters
	} {
		first, second := fmt.Sprintf("first-%d", i), fmt.Sprintf("second-%d", i)
		mustUpsertUser(ctx, t, s, newUser(tenant, first, pair[0]), true)
		_, err := s.UpsertUser(ctx, newUser(tenant, second, pair[1]))
		var ce *ConflictError
		if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Holder != first || ce.Key != namekey.Key(pair[1]) {
			t.Errorf("%q after %q: err = %v, want a ConflictError held by %s", pair[1], pair[0], err, first)
		}
	}
	// Dotless ı is its own letter: no conflict.
	mustUpsertUser(ctx, t, s, newUser(tenant, "dotless", "\u0131k-team"), true)

	// A row written by an older operator (user_name_lower = strings.ToLower)
	// is rewritten with the canonical key on the next upsert.
	old := newUser(tenant, "old", "Stra\u017Fe")
	mustUpsertUser(ctx, t, s, old, true)
	if _, err := s.db.Exec(s.d.rebind(`UPDATE helpdesk_users SET user_name_lower = ? WHERE tenant = ? AND scim_id = ?`),
		strings.ToLower(old.UserName), tenant, "old"); err != nil {
		t.Fatal(err)
	}
	if got := mustGetUser(ctx, t, s, tenant, "old"); got.UserNameKey != "stra\u017Fe" {
		t.Fatalf("old key read back as %q", got.UserNameKey)
	}
	mustUpsertUser(ctx, t, s, old, true)
	if got := mustGetUser(ctx, t, s, tenant, "old"); got.UserNameKey != namekey.Key(old.UserName) {
		t.Fatalf("key after resync = %q, want %q", got.UserNameKey, namekey.Key(old.UserName))
	}
	// Retained deleted rows hold no key.
	if err := s.DeleteUser(ctx, tenant, "old", DeletionPolicyRetain); err != nil {
		t.Fatal(err)
	}
	if got := mustGetUser(ctx, t, s, tenant, "old"); got.UserNameKey != "" {
		t.Fatalf("deleted row still holds key %q", got.UserNameKey)
	}
}

func testDeactivateUser(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "deact"
	u := fullUser(tenant, "d1", "dave")
	mustUpsertUser(ctx, t, s, u, true)
	before := mustGetUser(ctx, t, s, tenant, "d1")

	found, err := s.DeactivateUser(ctx, tenant, "d1")
	if err != nil || !found {
		t.Fatalf("DeactivateUser = %v, %v; want found", found, err)
	}
	after := mustGetUser(ctx, t, s, tenant, "d1")
	want := u
	want.Active = false
	if !reflect.DeepEqual(withoutTimes(after), want) || !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("after DeactivateUser:\n got %#v\nwant %#v (updated_at %v -> %v)", withoutTimes(after), want, before.UpdatedAt, after.UpdatedAt)
	}
	// Already inactive: found, nothing written.
	if found, err := s.DeactivateUser(ctx, tenant, "d1"); err != nil || !found {
		t.Fatalf("second DeactivateUser = %v, %v", found, err)
	}
	if again := mustGetUser(ctx, t, s, tenant, "d1"); !again.UpdatedAt.Equal(after.UpdatedAt) {
		t.Fatalf("deactivating an inactive row moved updated_at")
	}
	// No row: nothing is inserted.
	if found, err := s.DeactivateUser(ctx, tenant, "missing"); err != nil || found {
		t.Fatalf("DeactivateUser(missing) = %v, %v; want not found", found, err)
	}
	if _, err := s.GetUser(ctx, tenant, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeactivateUser inserted a row: %v", err)
	}
}

// testReleaseUserName is the store's half of invariant I3: two rows that
// want each other's names (a swap the controller saw only at its end) can
// both be written once the stale holder's key is released.
func testReleaseUserName(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "release"
	a, b := newUser(tenant, "a", "x"), newUser(tenant, "b", "y")
	mustUpsertUser(ctx, t, s, a, true)
	mustUpsertUser(ctx, t, s, b, true)
	// The swap: a wants y, b wants x.
	a2, b2 := newUser(tenant, "a", "y"), newUser(tenant, "b", "x")
	a2.Active = false
	_, err := s.UpsertUser(ctx, a2)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Holder != "b" || ce.Key != "y" {
		t.Fatalf("a -> y: err = %v, want a ConflictError held by b", err)
	}
	// Only the key the holder really holds is released.
	if released, err := s.ReleaseUserName(ctx, tenant, "b", "x"); err != nil || released {
		t.Fatalf("ReleaseUserName(b, x) = %v, %v; want nothing released", released, err)
	}
	before := mustGetUser(ctx, t, s, tenant, "b")
	if released, err := s.ReleaseUserName(ctx, tenant, "b", "y"); err != nil || !released {
		t.Fatalf("ReleaseUserName(b, y) = %v, %v; want released", released, err)
	}
	got := mustGetUser(ctx, t, s, tenant, "b")
	if got.UserNameKey != "" || got.UserName != "y" || !got.Active || !got.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("b after release: %+v", got)
	}
	mustUpsertUser(ctx, t, s, a2, true)
	mustUpsertUser(ctx, t, s, b2, true)
	if got := mustGetUser(ctx, t, s, tenant, "a"); got.UserName != "y" || got.UserNameKey != "y" || got.Active {
		t.Fatalf("a after the swap: %+v", got)
	}
	if got := mustGetUser(ctx, t, s, tenant, "b"); got.UserName != "x" || got.UserNameKey != "x" || !got.Active {
		t.Fatalf("b after the swap: %+v", got)
	}
	if _, err := s.ReleaseUserName(ctx, tenant, "b", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ReleaseUserName with an empty key: err = %v, want ErrInvalid", err)
	}
}

// testPoolKeepsConnections: as many writes at once as the operator runs
// against one database (4 user and 4 group slots) reuse their connections
// instead of closing and opening one per transaction.
func testPoolKeepsConnections(ctx context.Context, t *testing.T, s *sqlStore) {
	const writers, rounds = 8, 5
	before := s.db.Stats()
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("pool-%d-%d", w, r)
				_, err := s.UpsertUser(ctx, newUser("pool", id, id+"@example.com"))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	after := s.db.Stats()
	if closed := after.MaxIdleClosed - before.MaxIdleClosed; closed > 0 {
		t.Errorf("%d connections were closed for want of idle room after %d rounds of %d concurrent writes (open %d, idle %d): each costs a new connection next time",
			closed, rounds, writers, after.OpenConnections, after.Idle)
	}
}

// testConcurrentRenames runs one writer per user, as the controller does,
// all renaming their users among a few names, deleting and reviving them
// at once. Every acknowledged write must be what the row holds until its
// writer writes again, changed must say whether it differed, and a refused
// write must name a holder that wanted the key. A write that lost a race
// with another row and still answered nil, or that reported no change
// while writing one, fails here. SCIM_STORE_SEED replays a run.
func testConcurrentRenames(ctx context.Context, t *testing.T, s *sqlStore) {
	const writers = 6
	r := &renames{t: t, s: s, seed: storeSeed(t), tried: map[string]map[string]bool{}}
	final := make([]renamed, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { final[w] = r.write(ctx, fmt.Sprintf("u%d", w), uint64(w)) })
	}
	wg.Wait()
	// Seven names folding to four keys among six users: most runs refuse
	// dozens of writes; without any the test would prove nothing.
	if r.conflicts.Load() == 0 {
		t.Errorf("seed %d: no write was refused", r.seed)
	}
	live := map[string]string{}
	for w, st := range final {
		if !st.exists {
			continue
		}
		id := fmt.Sprintf("u%d", w)
		got := mustGetUser(ctx, t, s, renamesTenant, id)
		want := st.row
		if st.deleted {
			want.Active, want.UserNameKey = false, ""
		}
		if (got.DeletedAt != nil) != st.deleted || !reflect.DeepEqual(withoutTimes(got), want) {
			t.Errorf("seed %d: %s holds %+v (deleted %v), want the last acknowledged %+v (deleted %v)",
				r.seed, id, withoutTimes(got), got.DeletedAt != nil, want, st.deleted)
		}
		if k := got.UserNameKey; k != "" {
			if other, dup := live[k]; dup {
				t.Errorf("seed %d: %s and %s both hold the key %q", r.seed, other, id, k)
			}
			live[k] = id
		}
	}
}

const renamesTenant = "renames"

// renames is the shared state of testConcurrentRenames's writers.
type renames struct {
	t         *testing.T
	s         *sqlStore
	seed      uint64
	mu        sync.Mutex
	tried     map[string]map[string]bool // user -> keys it asked for
	conflicts atomic.Int64
}

// renamed is what one writer last had acknowledged.
type renamed struct {
	row     User
	exists  bool
	deleted bool
}

func (r *renames) asked(id, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tried[id] == nil {
		r.tried[id] = map[string]bool{}
	}
	r.tried[id][key] = true
}

func (r *renames) askedBy(id, key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tried[id][key]
}

// write is user id's writer: random renames, deletions and revivals.
func (r *renames) write(ctx context.Context, id string, stream uint64) (st renamed) {
	names := []string{"Ann", "ann", "Bo", "BO", "Cé", "cÉ", "Dag"}
	rng := rand.New(rand.NewPCG(r.seed, stream))
	for step := range 40 {
		if st.exists && rng.IntN(6) == 0 {
			if err := r.s.DeleteUser(ctx, renamesTenant, id, DeletionPolicyRetain); err != nil {
				r.t.Errorf("seed %d: %s step %d: delete: %v", r.seed, id, step, err)
				return st
			}
			st.deleted = true
			continue
		}
		u := newUser(renamesTenant, id, names[rng.IntN(len(names))])
		u.Title = fmt.Sprintf("t%d", rng.IntN(2))
		u.Active = rng.IntN(4) != 0
		u.CustomFields = map[string]any{"n": float64(rng.IntN(2))}
		r.asked(id, u.UserNameKey)
		changed, err := r.s.UpsertUser(ctx, u)
		var ce *ConflictError
		switch {
		case err == nil:
			want := !st.exists || st.deleted || !reflect.DeepEqual(st.row, u)
			if changed != want {
				r.t.Errorf("seed %d: %s step %d: changed = %v, want %v", r.seed, id, step, changed, want)
			}
			st = renamed{row: u, exists: true}
		case errors.As(err, &ce):
			r.conflicts.Add(1)
			if ce.Holder == id || ce.Key != u.UserNameKey || !r.askedBy(ce.Holder, ce.Key) {
				r.t.Errorf("seed %d: %s step %d: %v names a holder that never wanted %q", r.seed, id, step, err, u.UserNameKey)
			}
		case errors.Is(err, ErrConflict):
			// Refused without a holder: the key was taken at the write and
			// free again at the read after it, three times in a row (this
			// churn, on MySQL). A refusal promises nothing; the controller
			// retries it.
			r.conflicts.Add(1)
		default:
			r.t.Errorf("seed %d: %s step %d: %v", r.seed, id, step, err)
			return st
		}
	}
	return st
}

// storeSeed is SCIM_STORE_SEED, else a new seed; it is logged to replay.
func storeSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("SCIM_STORE_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("SCIM_STORE_SEED=%d", seed)
	return seed
}

// testWriteRaces makes a row vanish or appear between an upsert's read
// and its write, as a concurrent writer or the helpdesk's own clean-up
// would: the store reads its clock in between, and the test's clock runs
// the interloper there once. The upsert must read again and leave the row
// as asked, reporting the change.
func testWriteRaces(ctx context.Context, t *testing.T, s *sqlStore) {
	const tenant = "races"
	orig := s.now
	t.Cleanup(func() { s.now = orig })
	var (
		between func()
		ran     int
	)
	s.now = func() time.Time {
		if f := between; f != nil {
			between = nil
			ran++
			f()
		}
		return orig()
	}
	exec := func(q string, args ...any) func() {
		return func() {
			if _, err := s.db.ExecContext(ctx, s.d.rebind(q), args...); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}

	// A user's row vanishes: the UPDATE finds nothing, the upsert inserts.
	u := fullUser(tenant, "vanishes", "Vanishes")
	mustUpsertUser(ctx, t, s, u, true)
	u.Title = "Changed"
	between = exec(`DELETE FROM helpdesk_users WHERE tenant = ? AND scim_id = ?`, tenant, u.SCIMID)
	mustUpsertUser(ctx, t, s, u, true)
	if got := mustGetUser(ctx, t, s, tenant, u.SCIMID); !reflect.DeepEqual(withoutTimes(got), u) {
		t.Errorf("after its row vanished mid-upsert: %+v, want %+v", withoutTimes(got), u)
	}
	// A user's row appears: the INSERT hits the primary key, the upsert updates.
	v := fullUser(tenant, "appears", "Appears")
	between = func() {
		theirs := v
		theirs.Title = "Theirs"
		if _, err := s.UpsertUser(ctx, theirs); err != nil {
			t.Errorf("interloper: %v", err)
		}
	}
	mustUpsertUser(ctx, t, s, v, true)
	if got := mustGetUser(ctx, t, s, tenant, v.SCIMID); !reflect.DeepEqual(withoutTimes(got), v) {
		t.Errorf("after its row appeared mid-upsert: %+v, want %+v", withoutTimes(got), v)
	}

	// The same for a group.
	g := Group{Tenant: tenant, SCIMID: "g-vanishes", DisplayName: "Vanishes"}
	mustUpsertGroup(ctx, t, s, g, true)
	g.DisplayName = "Changed"
	between = exec(`DELETE FROM helpdesk_groups WHERE tenant = ? AND scim_id = ?`, tenant, g.SCIMID)
	mustUpsertGroup(ctx, t, s, g, true)
	h := Group{Tenant: tenant, SCIMID: "g-appears", DisplayName: "Appears"}
	between = func() {
		if _, err := s.UpsertGroup(ctx, Group{Tenant: tenant, SCIMID: h.SCIMID, DisplayName: "Theirs"}); err != nil {
			t.Errorf("interloper: %v", err)
		}
	}
	mustUpsertGroup(ctx, t, s, h, true)
	for _, want := range []Group{g, h} {
		got, err := s.GetGroup(ctx, tenant, want.SCIMID)
		if err != nil || got.DisplayName != want.DisplayName || got.DeletedAt != nil {
			t.Errorf("group %s after a race: %+v, %v; want display name %q", want.SCIMID, got, err, want.DisplayName)
		}
	}
	if ran != 4 {
		t.Errorf("%d of 4 interlopers ran: the store no longer reads its clock between read and write", ran)
	}
}
