package helpdesk

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds what differs between the databases. Queries are written once
// with '?' placeholders and passed through rebind.
type dialect interface {
	name() string
	// rebind turns '?' placeholders into the dialect's own.
	rebind(query string) string
	// ignoreDuplicates is appended to a multi-row INSERT so rows that already
	// exist are skipped and not counted in RowsAffected; keyCol is any key column.
	ignoreDuplicates(keyCol string) string
	// timeArg converts a UTC timestamp into the value the column stores.
	timeArg(t time.Time) any
	isUniqueViolation(err error) bool
	// isDeadlock reports a transaction the server aborted to break a lock
	// cycle; running it again is safe.
	isDeadlock(err error) bool
	// versionTableDDL creates scim_operator_schema_migrations.
	versionTableDDL() string
	// lockMigrations serialises migrations across replicas on conn. The
	// returned func releases the lock.
	lockMigrations(ctx context.Context, conn *sql.Conn) (release func(), err error)
	// txOptions are the options of the store's write transactions.
	txOptions() *sql.TxOptions
	// transactionalDDL tells whether a migration can run in one transaction.
	transactionalDDL() bool
}

// sqliteTimeLayout is RFC 3339 with fixed-width microseconds: unlike
// RFC3339Nano it sorts correctly as text.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

type sqliteDialect struct{}

func (sqliteDialect) name() string                   { return DialectSQLite }
func (sqliteDialect) rebind(q string) string         { return q }
func (sqliteDialect) ignoreDuplicates(string) string { return " ON CONFLICT DO NOTHING" }
func (sqliteDialect) timeArg(t time.Time) any        { return t.UTC().Format(sqliteTimeLayout) }
func (sqliteDialect) txOptions() *sql.TxOptions      { return nil }
func (sqliteDialect) transactionalDDL() bool         { return true }

func (sqliteDialect) isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isSQLiteBusy matches SQLITE_BUSY and its extended codes.
func isSQLiteBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// BEGIN IMMEDIATE plus busy_timeout means SQLite writers queue rather
// than deadlock.
func (sqliteDialect) isDeadlock(error) bool { return false }

func (sqliteDialect) versionTableDDL() string {
	return `CREATE TABLE IF NOT EXISTS scim_operator_schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		applied_at TEXT    NOT NULL)`
}

// lockMigrations is a no-op: every migration transaction starts with
// BEGIN IMMEDIATE (the _txlock DSN option), which takes the database write
// lock before the applied versions are read, and busy_timeout makes a
// second replica wait for it.
func (sqliteDialect) lockMigrations(context.Context, *sql.Conn) (func(), error) {
	return func() {}, nil
}

type postgresDialect struct{}

func (postgresDialect) name() string                   { return DialectPostgres }
func (postgresDialect) ignoreDuplicates(string) string { return " ON CONFLICT DO NOTHING" }
func (postgresDialect) timeArg(t time.Time) any        { return t.UTC() }
func (postgresDialect) txOptions() *sql.TxOptions      { return nil } // READ COMMITTED by default
func (postgresDialect) transactionalDDL() bool         { return true }

func (postgresDialect) rebind(q string) string {
	n := strings.Count(q, "?")
	if n == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + n*4)
	i := 0
	for _, r := range q {
		if r == '?' {
			i++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(i))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (postgresDialect) isUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func (postgresDialect) isDeadlock(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && (e.Code == "40P01" || e.Code == "40001") // deadlock, serialization failure
}

func (postgresDialect) versionTableDDL() string {
	return `CREATE TABLE IF NOT EXISTS scim_operator_schema_migrations (
		version    BIGINT         NOT NULL PRIMARY KEY,
		applied_at TIMESTAMPTZ(6) NOT NULL)`
}

// migrationLockKey is the pg_advisory_lock key ("scimop01" in ASCII).
// Advisory locks are scoped to the current database, so one key serves every
// database on a server.
const migrationLockKey int64 = 0x7363696d6f703031

func (postgresDialect) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("pg_advisory_lock: %w", err)
	}
	return func() {
		// Closing the session would release it too; unlock so a pooled
		// connection does not keep it.
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}, nil
}

type mysqlDialect struct{}

func (mysqlDialect) name() string            { return DialectMySQL }
func (mysqlDialect) rebind(q string) string  { return q }
func (mysqlDialect) timeArg(t time.Time) any { return t.UTC() }

// READ COMMITTED instead of InnoDB's REPEATABLE READ for the store's
// transactions (SyncMembers): fewer gap locks, so concurrent syncs of one
// group deadlock less. Upserts are single autocommit statements; a deadlock
// among them is retried (isDeadlock).
func (mysqlDialect) txOptions() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}
func (mysqlDialect) transactionalDDL() bool { return false } // DDL commits implicitly

// INSERT IGNORE would also swallow truncation and other errors; a no-op
// ON DUPLICATE KEY UPDATE skips only duplicates and reports 0 rows for them.
func (mysqlDialect) ignoreDuplicates(keyCol string) string {
	return " ON DUPLICATE KEY UPDATE " + keyCol + " = " + keyCol
}

func (mysqlDialect) isUniqueViolation(err error) bool {
	var e *mysql.MySQLError
	return errors.As(err, &e) && e.Number == 1062 // ER_DUP_ENTRY
}

// InnoDB gap locks make two transactions inserting the same new key
// deadlock; the loser is rolled back and can simply run again.
func (mysqlDialect) isDeadlock(err error) bool {
	var e *mysql.MySQLError
	return errors.As(err, &e) && e.Number == 1213 // ER_LOCK_DEADLOCK
}

func (mysqlDialect) versionTableDDL() string {
	return `CREATE TABLE IF NOT EXISTS scim_operator_schema_migrations (
		version    BIGINT      NOT NULL PRIMARY KEY,
		applied_at DATETIME(6) NOT NULL
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
}

// lockMigrations uses GET_LOCK, which is server-wide, so the name carries a
// hash of the database name (lock names are limited to 64 characters).
func (mysqlDialect) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	var db sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		return nil, fmt.Errorf("read current database: %w", err)
	}
	sum := sha256.Sum256([]byte(db.String))
	lock := "scimop_migrate_" + hex.EncodeToString(sum[:16])
	for {
		var got sql.NullInt64
		// Short waits so a cancelled ctx is noticed between attempts.
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 5)", lock).Scan(&got); err != nil {
			return nil, fmt.Errorf("GET_LOCK(%s): %w", lock, err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for migration lock %s: %w", lock, err)
		}
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT RELEASE_LOCK(?)", lock)
	}, nil
}
