package helpdesk

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The suite runs against real servers. They are required: an unreachable
// server fails the test (with how to start it) instead of skipping, so a
// green run always means all three databases were exercised.
const (
	defaultPostgresAdminURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultMySQLAdminURL    = "mysql://root@127.0.0.1:3306/test"
)

func TestSQLite(t *testing.T) {
	dir := t.TempDir()
	n := 0
	storeSuite(t, func(_ *testing.T) string {
		n++
		return "sqlite://" + filepath.Join(dir, fmt.Sprintf("db%d", n), "helpdesk.db")
	})
}

func TestPostgres(t *testing.T) {
	admin := os.Getenv("SCIMOP_TEST_POSTGRES_URL")
	if admin == "" {
		admin = defaultPostgresAdminURL
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("SCIMOP_TEST_POSTGRES_URL %s: %v", Redact(admin), err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	requireServer(t, db, "PostgreSQL", admin, "SCIMOP_TEST_POSTGRES_URL",
		"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")

	storeSuite(t, func(t *testing.T) string {
		name := randomDBName(t)
		exec(t, db, "CREATE DATABASE "+name)
		t.Cleanup(func() { exec(t, db, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
		return withDatabase(t, admin, name)
	})
}

func TestMySQL(t *testing.T) {
	admin := os.Getenv("SCIMOP_TEST_MYSQL_URL")
	if admin == "" {
		admin = defaultMySQLAdminURL
	}
	cfg, err := mysqlConfig(admin)
	if err != nil {
		t.Fatalf("SCIMOP_TEST_MYSQL_URL: %v", err)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	requireServer(t, db, "MySQL/MariaDB", admin, "SCIMOP_TEST_MYSQL_URL",
		"start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")

	storeSuite(t, func(t *testing.T) string {
		name := randomDBName(t)
		exec(t, db, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
		t.Cleanup(func() { exec(t, db, "DROP DATABASE IF EXISTS "+name) })
		return withDatabase(t, admin, name)
	})
}

func requireServer(t *testing.T, db *sql.DB, what, url, env, start string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("%s is not reachable at %s: %v\nStart it with:\n\t%s\nor point %s at a server's admin URL.",
			what, Redact(url), err, start, env)
	}
}

func randomDBName(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "scimop_test_" + hex.EncodeToString(b)
}

func exec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// withDatabase returns adminURL pointing at database name instead.
func withDatabase(t *testing.T, adminURL, name string) string {
	t.Helper()
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
