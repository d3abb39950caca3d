package testenv

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for PostgresDatabase
)

// Eventually retries f every 50 ms until it returns nil; past timeout it
// fails the test with f's last error. Tests wait on conditions, never on
// durations.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not met within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PostgresAdminURL is the PostgreSQL server the tests use:
// $SCIMOP_TEST_POSTGRES_URL, by default the machine's server on 127.0.0.1.
func PostgresAdminURL() string {
	if u := os.Getenv("SCIMOP_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresDatabase creates a fresh database for one test, dropped when the
// test ends, and returns its URL. An unreachable server fails the test with
// what to do; it never skips.
func PostgresDatabase(t testing.TB) *url.URL {
	t.Helper()
	admin := PostgresAdminURL()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("PostgreSQL at %s does not answer (%v): run hack/ensure-databases.sh, or set SCIMOP_TEST_POSTGRES_URL", redact(admin), err)
	}
	name := fmt.Sprintf("scimop_test_%d", rand.Uint32()) //nolint:gosec // a unique name, not a secret
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP DATABASE " + name + " WITH (FORCE)") })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.TrimSpace(u.String())
}

// IDKey is a first-id key for tests that build a repository.Repository
// without an operator (the operator reads the installation key instead).
func IDKey() []byte { return []byte("scim-operator test first-id key!") }
