package operator

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

// dbPingInterval is how often every replica pings the helpdesk database
// to report it (scim_helpdesk_database_up).
const dbPingInterval = 10 * time.Second

// databaseReporter pings the helpdesk database and reports the answer as a
// metric and in the log, never as readiness: SCIM needs no database (the
// controllers catch up when it returns), so a database outage must not
// take every replica out of its Service (issue 14). Alert on the metric.
type databaseReporter struct {
	store helpdesk.Store
	log   logr.Logger
	up    prometheus.Gauge
}

func newDatabaseReporter(store helpdesk.Store, log logr.Logger) (*databaseReporter, error) {
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "scim_helpdesk_database_up",
		Help: "1 when the last ping of the helpdesk database succeeded, 0 when it failed. SCIM keeps serving either way.",
	})
	if err := metrics.Registry.Register(up); err != nil {
		// Several operators in one process (tests) share the first one's gauge.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		up = are.ExistingCollector.(prometheus.Gauge)
	}
	return &databaseReporter{store: store, log: log, up: up}, nil
}

// Start pings until ctx ends; it is a manager Runnable on every replica.
func (d *databaseReporter) Start(ctx context.Context) error {
	t := time.NewTicker(dbPingInterval)
	defer t.Stop()
	wasUp := true
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.store.Ping(pctx)
		cancel()
		switch {
		case err == nil:
			d.up.Set(1)
			if !wasUp {
				d.log.Info("the helpdesk database answers again; the sync catches up")
			}
		case ctx.Err() == nil:
			d.up.Set(0)
			if wasUp {
				d.log.Info("the helpdesk database does not answer; SCIM keeps serving and the sync retries", "error", err.Error())
			}
		}
		wasUp = err == nil
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection is false: every replica reports what it sees.
func (d *databaseReporter) NeedLeaderElection() bool { return false }
