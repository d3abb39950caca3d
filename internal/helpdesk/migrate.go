package helpdesk

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrationFS holds migrations/<dialect>/NNNN_description.sql. A file is a
// list of statements separated by ';' at the end of a line; lines starting
// with "--" are comments. Statements must not contain ';' elsewhere, because
// MySQL is used without multiStatements and gets one statement at a time.
//
// Migrations are append-only: never edit one that has shipped. Schema changes
// must stay readable by the previous operator version, which keeps running
// during a rolling upgrade and ignores versions it does not know.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version    int64
	name       string
	statements []string
}

// loadMigrations returns the dialect's migrations in version order.
func loadMigrations(dialectName string) ([]migration, error) {
	dir := path.Join("migrations", dialectName)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations %s: %w", dir, err)
	}
	var out []migration
	seen := map[int64]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, e.Name())
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, e.Name(), version)
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), statements: splitStatements(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func splitStatements(body string) []string {
	var (
		stmts []string
		cur   strings.Builder
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(trimmed, ";"))
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return stmts
}

// migrate applies pending migrations. It is safe to run from several
// replicas at once: the dialect's lock (advisory lock, GET_LOCK, or
// BEGIN IMMEDIATE) serialises them, and applied versions are re-read under
// the lock, so each migration runs exactly once.
func (s *sqlStore) migrate(ctx context.Context) error {
	migrations, err := loadMigrations(s.d.name())
	if err != nil {
		return err
	}
	// Session locks belong to a connection, so keep one for the whole run.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: get connection: %w", err)
	}
	defer conn.Close()

	release, err := s.d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	defer release()

	if _, err := conn.ExecContext(ctx, s.d.versionTableDDL()); err != nil {
		return fmt.Errorf("migrations: create scim_operator_schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := s.applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// execer is what both *sql.Conn and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) applyMigration(ctx context.Context, conn *sql.Conn, m migration) error {
	if !s.d.transactionalDDL() {
		return s.runMigration(ctx, conn, m)
	}
	// On SQLite this is BEGIN IMMEDIATE, which is the cross-process lock.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := s.runMigration(ctx, tx, m); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *sqlStore) runMigration(ctx context.Context, ex execer, m migration) error {
	var n int
	err := ex.QueryRowContext(ctx,
		s.d.rebind("SELECT COUNT(*) FROM scim_operator_schema_migrations WHERE version = ?"), m.version).Scan(&n)
	if err != nil {
		return fmt.Errorf("check applied: %w", err)
	}
	if n > 0 {
		return nil
	}
	for i, stmt := range m.statements {
		if _, err := ex.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	_, err = ex.ExecContext(ctx,
		s.d.rebind("INSERT INTO scim_operator_schema_migrations (version, applied_at) VALUES (?, ?)"),
		m.version, s.d.timeArg(s.timestamp()))
	if err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return nil
}
