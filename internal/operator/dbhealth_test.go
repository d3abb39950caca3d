package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// unpingable is a helpdesk database whose ping fails, as an unreachable
// one's does; nothing else is needed of it here.
type unpingable struct{ helpdesk.Store }

func (unpingable) Ping(context.Context) error {
	return errors.New("dial tcp 127.0.0.1:5432: connection refused")
}

// TestReadinessIgnoresTheDatabase: a replica whose helpdesk database does
// not answer stays ready and keeps serving SCIM; the database is reported
// by scim_helpdesk_database_up instead (issue 14, finding 4: /readyz used
// to answer 500, taking every replica out of its Service).
func TestReadinessIgnoresTheDatabase(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	st := sqliteStore(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probe := ln.Addr().String()
	_ = ln.Close()
	metricsAddr := freeAddr(t)

	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: unpingable{st}, ProbeAddr: probe,
		MetricsAddr: metricsAddr})
	waitFor(t, func() error {
		res, err := http.Get("http://" + probe + "/readyz")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answers %d while the database is down", res.StatusCode)
		}
		return nil
	})
	token := issueToken(t, ns, base)
	if code, body := call(t, base, token, "POST", "/Users", `{"userName":"ready@example.test"}`); code != 201 {
		t.Fatalf("SCIM while the database is down: %d %s", code, body)
	}
	waitFor(t, func() error {
		families, err := metrics.Registry.Gather()
		if err != nil {
			return err
		}
		for _, f := range families {
			if f.GetName() == "scim_helpdesk_database_up" && len(f.GetMetric()) == 1 && f.GetMetric()[0].GetGauge().GetValue() == 0 {
				return nil
			}
		}
		return errors.New("scim_helpdesk_database_up is not 0 yet")
	})
	// The separate endpoint says so too, with no error text.
	waitFor(t, func() error { return databaseHealth(metricsAddr, http.StatusServiceUnavailable, false) })
}

// TestDatabaseHealthEndpoint: with the database answering, the metrics
// listener's /helpdesk-database says up with 200.
func TestDatabaseHealthEndpoint(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	metricsAddr := freeAddr(t)
	startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: sqliteStore(t, ""), MetricsAddr: metricsAddr})
	waitFor(t, func() error { return databaseHealth(metricsAddr, http.StatusOK, true) })
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

func databaseHealth(addr string, wantCode int, wantUp bool) error {
	res, err := http.Get("http://" + addr + operator.DatabaseHealthPath)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	var body struct {
		Up        *bool      `json:"up"`
		CheckedAt *time.Time `json:"checkedAt"`
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		return fmt.Errorf("%s: %w", raw, err)
	}
	if res.StatusCode != wantCode || body.Up == nil || *body.Up != wantUp || body.CheckedAt == nil {
		return fmt.Errorf("%s answers %d %s, want %d with up=%v", operator.DatabaseHealthPath, res.StatusCode, raw, wantCode, wantUp)
	}
	if strings.Contains(string(raw), "5432") || strings.Contains(string(raw), "refused") {
		return fmt.Errorf("the database health body carries the driver's error: %s", raw)
	}
	return nil
}
