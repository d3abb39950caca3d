package operator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

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

	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: unpingable{st}, ProbeAddr: probe})
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
}
