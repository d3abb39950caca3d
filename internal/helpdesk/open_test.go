package helpdesk

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestOpenBadURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, raw := range []string{
		"",
		"helpdesk.db",
		"oracle://scott:tiger@db/orcl",
		"sqlite://",
		"sqlite://x.db?_pragma=foo",
		"sqlite://:memory:",
		"mysql://root:secret@/helpdesk",
		"mysql://root:secret@db:3306",
		"mysql://root:secret@db:3306/a/b",
		"postgres://u:secret@db:notaport/x",
	} {
		st, err := Open(ctx, raw)
		if err == nil {
			_ = st.Close()
			t.Errorf("Open(%q) succeeded", raw)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "sqlite://") || !strings.Contains(msg, "postgres://") || !strings.Contains(msg, "mysql://") {
			t.Errorf("Open(%q) error does not list the accepted schemes: %v", raw, err)
		}
		if strings.Contains(msg, "secret") || strings.Contains(msg, "tiger") {
			t.Errorf("Open(%q) error leaks the password: %v", raw, err)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	for raw, want := range map[string]string{
		"sqlite:///var/lib/x.db":       "/var/lib/x.db",
		"sqlite://.dev/helpdesk.db":    ".dev/helpdesk.db",
		"sqlite://helpdesk.db":         "helpdesk.db",
		"sqlite://../data/helpdesk.db": "../data/helpdesk.db",
	} {
		got, err := sqlitePath(raw)
		if err != nil || got != want {
			t.Errorf("sqlitePath(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

func TestSQLiteRelativeURL(t *testing.T) {
	t.Chdir(t.TempDir())
	st, err := Open(context.Background(), "sqlite://.dev/helpdesk.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Dialect() != DialectSQLite {
		t.Fatalf("Dialect() = %q", st.Dialect())
	}
}

func TestMySQLConfig(t *testing.T) {
	cfg, err := mysqlConfig("mysql://app:p%40ss:w@db.example/helpdesk?timeout=5s&parseTime=false&multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "app" || cfg.Passwd != "p@ss:w" || cfg.Net != "tcp" || cfg.Addr != "db.example:3306" || cfg.DBName != "helpdesk" {
		t.Fatalf("config = %+v", cfg)
	}
	if !cfg.ParseTime || cfg.MultiStatements || cfg.Loc != time.UTC || cfg.Timeout != 5*time.Second {
		t.Fatalf("forced/extra options not applied: %+v", cfg)
	}
	dsn := cfg.FormatDSN()
	if !strings.HasPrefix(dsn, "app:p@ss:w@tcp(db.example:3306)/helpdesk?") || !strings.Contains(dsn, "parseTime=true") {
		t.Fatalf("DSN = %s", dsn)
	}
	if _, err := mysqlConfig("mysql://root@[::1]:3307/x"); err != nil {
		t.Fatalf("IPv6 host: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://app:s3cret@db:5432/helpdesk?sslmode=disable": "postgres://app:xxxxx@db:5432/helpdesk?sslmode=disable",
		"mysql://root:p%40ss@127.0.0.1:3306/test":                "mysql://root:xxxxx@127.0.0.1:3306/test",
		"mysql://root@127.0.0.1:3306/test":                       "mysql://root@127.0.0.1:3306/test",
		"postgres://db/helpdesk?password=s3cret&sslmode=require": "postgres://db/helpdesk?password=xxxxx&sslmode=require",
		"sqlite:///var/lib/x.db":                                 "sqlite:///var/lib/x.db",
		"mysql://root:pa%ss#w@host/db":                           "mysql://root:xxxxx@host/db",
		"user:secret@tcp(host)/db":                               "xxxxx",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
