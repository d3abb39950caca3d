// Package helpdesk keeps every SQL statement the operator runs against the
// helpdesk application's database. Controllers talk to it only through Store,
// so the three supported databases (SQLite, PostgreSQL, MySQL/MariaDB) differ
// only inside this package.
package helpdesk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DeletionPolicy says what DeleteUser and DeleteGroup do with the row.
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the row, sets deleted_at (and active=false for
	// users) so tickets keep their author. It is the default.
	DeletionPolicyRetain DeletionPolicy = "retain"
	// DeletionPolicyDelete removes the row; for groups also their member rows.
	DeletionPolicyDelete DeletionPolicy = "delete"
)

// Custom field types the helpdesk may declare in helpdesk_custom_fields.
const (
	CustomFieldString   = "string"
	CustomFieldBoolean  = "boolean"
	CustomFieldDateTime = "dateTime"
	CustomFieldInteger  = "integer"
)

// AllTenants is the tenant value of a custom field that applies to every tenant.
const AllTenants = "*"

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
	DialectMySQL    = "mysql"
)

var (
	// ErrNotFound is returned by reads when the row does not exist.
	ErrNotFound = errors.New("helpdesk: not found")
	// ErrConflict is returned when a write would break a uniqueness rule, e.g.
	// two live users of one tenant with the same userName key. When the
	// other row is known the error is a *ConflictError (use errors.As).
	ErrConflict = errors.New("helpdesk: conflict")
	// ErrInvalid is returned when a value cannot be stored as given (empty key,
	// a key too long for its column, unknown policy).
	ErrInvalid = errors.New("helpdesk: invalid value")
)

// ConflictError says which row holds the userName key a write wanted. It
// matches errors.Is(err, ErrConflict).
type ConflictError struct {
	// Key is the user_name_lower value both rows want.
	Key string
	// Holder is the scim_id of the live row of the tenant that holds Key.
	Holder string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: the userName key %q is held by live user %q", ErrConflict, e.Key, e.Holder)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// User is one row of helpdesk_users. Empty strings are stored as NULL.
//
// Key columns (the ids, UserName, UserNameKey, ExternalID, EmployeeNumber,
// ManagerSCIMID) are stored exactly or refused with ErrInvalid. The other
// text columns are written as far as they fit: a value longer than its
// column is cut at the column's limit (in characters, never inside one);
// FitUser tells which columns a user would have cut.
type User struct {
	Tenant   string
	SCIMID   string
	UserName string
	// UserNameKey is the canonical case-insensitive form of UserName, stored
	// in user_name_lower: two live users of a tenant may not share it. The
	// caller computes it (the operator uses internal/namekey), so the rule
	// is the same everywhere names are compared. Required.
	UserNameKey       string
	ExternalID        string
	DisplayName       string
	GivenName         string
	FamilyName        string
	PrimaryEmail      string
	Phone             string
	Title             string
	Department        string
	EmployeeNumber    string
	ManagerSCIMID     string
	PreferredLanguage string
	Active            bool
	// CustomFields is stored as a JSON object. Reads decode it with
	// encoding/json, so numbers come back as float64.
	CustomFields map[string]any

	// Filled on reads; ignored by UpsertUser. UserNameKey reads back empty
	// when the row holds no key (deleted, or released by ReleaseUserName).
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time
}

// Group is one row of helpdesk_groups.
type Group struct {
	Tenant      string
	SCIMID      string
	DisplayName string
	ExternalID  string

	// Filled on reads; ignored by UpsertGroup.
	CreatedAt time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time
}

// CustomField is one row of helpdesk_custom_fields, which the helpdesk owns.
type CustomField struct {
	Tenant string // AllTenants ("*") for fields of every tenant
	Name   string
	Type   string // one of the CustomField* constants
}

// Store is everything the controllers may do to the helpdesk database.
type Store interface {
	// UpsertUser inserts or updates by (tenant, scim_id) and clears deleted_at.
	// When nothing differs it writes nothing and returns changed=false,
	// leaving updated_at untouched. Optional text columns are stored cut to
	// fit (see User and FitUser). A UserNameKey that another live user of
	// the tenant holds returns a *ConflictError naming it
	// (errors.Is(err, ErrConflict)).
	UpsertUser(ctx context.Context, u User) (changed bool, err error)
	// GetUser returns the row, retained deleted rows included, or ErrNotFound.
	GetUser(ctx context.Context, tenant, scimID string) (User, error)
	// DeleteUser applies policy ("" means retain). A missing row is not an error.
	DeleteUser(ctx context.Context, tenant, scimID string, policy DeletionPolicy) error
	// DeactivateUser sets active=false on the user's row and nothing else,
	// for when the whole row cannot be written: a deactivation must reach
	// the helpdesk whatever the other fields hold. It inserts nothing when
	// there is no row (found=false): such a user cannot sign in anyway. An
	// already inactive row is left untouched.
	DeactivateUser(ctx context.Context, tenant, scimID string) (found bool, err error)
	// ReleaseUserName clears user_name_lower of the row holderID when it
	// still holds key, so another user can take the key. The caller decides
	// the holder's claim is stale (its custom resource no longer has that
	// name); the holder takes its own key again on its next upsert.
	ReleaseUserName(ctx context.Context, tenant, holderID, key string) (released bool, err error)

	UpsertGroup(ctx context.Context, g Group) (changed bool, err error)
	GetGroup(ctx context.Context, tenant, scimID string) (Group, error)
	DeleteGroup(ctx context.Context, tenant, scimID string, policy DeletionPolicy) error

	// SyncMembers makes the member rows of the group equal to desired
	// (duplicates ignored) in one transaction, touching only rows that differ.
	SyncMembers(ctx context.Context, tenant, groupID string, desired []string) (added, removed int, err error)
	// GroupMembers returns the group's member user ids, sorted.
	GroupMembers(ctx context.Context, tenant, groupID string) ([]string, error)

	// CustomFields returns the fields of tenant plus those of every tenant ("*").
	CustomFields(ctx context.Context, tenant string) ([]CustomField, error)

	Ping(ctx context.Context) error
	Close() error
	// Dialect is "sqlite", "postgres" or "mysql".
	Dialect() string
}

// sqlStore implements Store on database/sql; d hides the dialect differences.
type sqlStore struct {
	db  *sql.DB
	d   dialect
	now func() time.Time
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("helpdesk: ping %s: %w", s.d.name(), err)
	}
	return nil
}

func (s *sqlStore) Close() error { return s.db.Close() }

func (s *sqlStore) Dialect() string { return s.d.name() }

// timestamp is the store's clock: UTC, cut to the microseconds every
// database keeps, so what we write is exactly what we read back.
func (s *sqlStore) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// maxAttempts bounds how often a write transaction is re-run after losing a
// race with a concurrent writer.
const maxAttempts = 3

// withRetry runs fn, a whole transaction, again when a concurrent writer
// made it fail (duplicate key inserted meanwhile, deadlock). The next run
// re-reads the rows and decides afresh.
func (s *sqlStore) withRetry(fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxAttempts || (!s.d.isUniqueViolation(err) && !s.d.isDeadlock(err)) {
			return err
		}
	}
}

// readThenWrite runs once (a read, then a write when the row differs) up
// to maxAttempts times while it asks to be retried: the row appeared,
// vanished or lost its key between the read and the write.
func readThenWrite(once func() (changed, retry bool, err error)) (bool, error) {
	for attempt := 1; ; attempt++ {
		changed, retry, err := once()
		if retry && attempt < maxAttempts {
			continue
		}
		if retry && err == nil {
			err = fmt.Errorf("the row changed between its read and its write %d times in a row", attempt)
		}
		return changed && err == nil, err
	}
}

// inTx runs fn in a transaction and commits unless fn fails.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, s.d.txOptions())
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
