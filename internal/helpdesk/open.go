package helpdesk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// urlHelp is appended to every URL error so the user sees what is accepted.
const urlHelp = "accepted schemes are sqlite://, postgres:// (or postgresql://) and mysql:// (or mariadb://), " +
	"e.g. sqlite:///var/lib/scim-operator/helpdesk.db, " +
	"postgres://helpdesk@db.example:5432/helpdesk?sslmode=disable or " +
	"mysql://helpdesk:PASSWORD@db.example:3306/helpdesk"

// sqliteBusyTimeout is how long a writer waits for another one (another
// replica migrating, or a long SyncMembers) before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 30 * time.Second

// Open parses rawURL, connects, and applies the embedded migrations.
func Open(ctx context.Context, rawURL string) (Store, error) {
	db, d, err := openDB(rawURL)
	if err != nil {
		return nil, err
	}
	s := &sqlStore{db: db, d: d, now: time.Now}
	if err := ping(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("helpdesk: connect to %s: %w", Redact(rawURL), err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("helpdesk: migrate %s: %w", Redact(rawURL), err)
	}
	return s, nil
}

// ping opens the first connection. On SQLite that connection switches a new
// file to WAL, which needs an exclusive lock and can fail with SQLITE_BUSY
// without waiting on busy_timeout when another replica opens the file at the
// same moment, so it is retried for a while.
func ping(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := db.PingContext(ctx)
		if err == nil || !isSQLiteBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// poolConnections is how many connections a store holds, open and idle
// alike. database/sql keeps only 2 idle by default: with the 4 user and 4
// group writes a database takes at once (plus reads), every transaction
// beyond the second opened a new connection, which costs PostgreSQL a
// backend process and a handshake and drops pgx's statement cache. That
// made a PostgreSQL tenant's sync lag p99 26 s where SQLite's was 0.3 s
// (make bench, 2,000 users).
//
// Many tenants may share one database server, so an idle pool closes its
// connections after idleConnTimeout: a tenant at rest holds none.
const (
	poolConnections = 10
	idleConnTimeout = time.Minute
)

func openDB(rawURL string) (*sql.DB, dialect, error) {
	db, d, err := openDialect(rawURL)
	if err == nil {
		db.SetMaxIdleConns(poolConnections)
		db.SetConnMaxIdleTime(idleConnTimeout)
	}
	return db, d, err
}

func openDialect(rawURL string) (*sql.DB, dialect, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, nil, fmt.Errorf("helpdesk: database URL %q has no scheme: %s", Redact(rawURL), urlHelp)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		db, err := openSQLite(rawURL)
		return db, sqliteDialect{}, err
	case "postgres", "postgresql":
		db, err := openPostgres(rawURL)
		return db, postgresDialect{}, err
	case "mysql", "mariadb":
		db, err := openMySQL(rawURL)
		return db, mysqlDialect{}, err
	default:
		return nil, nil, fmt.Errorf("helpdesk: unsupported database URL scheme %q: %s", scheme, urlHelp)
	}
}

// sqlitePath extracts the file path. It does not use url.Parse because in
// sqlite://.dev/helpdesk.db the first segment is a directory, not a host.
func sqlitePath(rawURL string) (string, error) {
	_, p, _ := strings.Cut(rawURL, "://")
	if strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("helpdesk: sqlite URL %q: query parameters are not supported; %s", rawURL, urlHelp)
	}
	if p == "" || p == "/" {
		return "", fmt.Errorf("helpdesk: sqlite URL %q has no file path; %s", rawURL, urlHelp)
	}
	if strings.Contains(p, ":memory:") || strings.HasPrefix(p, "file:") {
		// Each pooled connection would get its own empty in-memory database.
		return "", fmt.Errorf("helpdesk: sqlite URL %q must name a file; %s", rawURL, urlHelp)
	}
	return p, nil
}

func openSQLite(rawURL string) (*sql.DB, error) {
	p, err := sqlitePath(rawURL)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(p); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("helpdesk: create directory for %s: %w", p, err)
		}
	}
	// _txlock=immediate: every transaction takes the write lock at BEGIN, so a
	// read-then-write transaction never fails to upgrade with SQLITE_BUSY.
	dsn := p + "?" + url.Values{
		"_busy_timeout": {fmt.Sprint(sqliteBusyTimeout.Milliseconds())},
		"_journal_mode": {"WAL"},
		"_foreign_keys": {"1"},
		"_synchronous":  {"NORMAL"}, // durable enough with WAL, much faster commits
		"_txlock":       {"immediate"},
	}.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("helpdesk: open sqlite %s: %w", p, err)
	}
	return db, nil
}

func openPostgres(rawURL string) (*sql.DB, error) {
	if _, err := url.Parse(rawURL); err != nil {
		return nil, fmt.Errorf("helpdesk: invalid postgres URL %s: cannot parse; %s", Redact(rawURL), urlHelp)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// Only the inner cause: pgx's own message quotes the URL, and its
		// password redaction is best effort.
		detail := "rejected by the driver"
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			var ue *url.Error
			if !errors.As(pe.Unwrap(), &ue) {
				detail = pe.Unwrap().Error()
			}
		}
		return nil, fmt.Errorf("helpdesk: invalid postgres URL %s: %s; %s", Redact(rawURL), detail, urlHelp)
	}
	// Unnamed statements are planned with the actual values every time. With
	// cached prepared statements PostgreSQL switches to a generic plan after
	// five runs, which cannot hash a DELETE ... IN (1000 parameters) list
	// and compares every member row against every id: minutes for a large
	// SyncMembers instead of seconds. Describe results are still cached, so
	// it stays one round trip per statement.
	if !strings.Contains(rawURL, "default_query_exec_mode=") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(poolConnections)
	return db, nil
}

// mysqlConfig converts mysql://user:pass@host:port/db?param=value into the
// driver's config. Extra query parameters use the driver's DSN names (tls,
// timeout, ...); parseTime, loc and multiStatements are always forced.
func mysqlConfig(rawURL string) (*mysql.Config, error) {
	bad := func(why string) error {
		return fmt.Errorf("helpdesk: invalid mysql URL %s: %s; %s", Redact(rawURL), why, urlHelp)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, bad("cannot parse")
	}
	if u.Host == "" {
		return nil, bad("missing host")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, bad("the path must be the database name")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3306")
	}

	// Let the driver parse the extra parameters, then override ours.
	base := mysql.NewConfig()
	base.Net = "tcp"
	base.Addr = addr
	base.DBName = dbName
	dsn := base.FormatDSN()
	if q := u.Query(); len(q) > 0 {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + q.Encode()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, bad(err.Error())
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.MultiStatements = false
	return cfg, nil
}

func openMySQL(rawURL string) (*sql.DB, error) {
	cfg, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("helpdesk: mysql config for %s: %w", Redact(rawURL), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(poolConnections)
	// Below the server's default wait_timeout so idle connections are not
	// closed under us.
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, nil
}

// Redact returns rawURL with any password replaced by "xxxxx", for logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		return redactUnparsed(rawURL)
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	// libpq-style URLs may carry the password as a query parameter.
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactUnparsed handles URLs url.Parse rejects (e.g. a password with a raw
// '#' or '%'): everything between "user:" and the last '@' is the password.
func redactUnparsed(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		if strings.Contains(rawURL, "@") {
			return "xxxxx" // unknown shape: do not risk printing a secret
		}
		return rawURL
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return rawURL
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return rawURL
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
