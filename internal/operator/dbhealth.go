package operator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
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
//
// The last answer is also served as JSON on the metrics listener at
// DatabaseHealthPath, for checks that do not read Prometheus: 200 when the
// last ping succeeded, 503 otherwise. It is no probe of this replica.
type databaseReporter struct {
	store helpdesk.Store
	log   logr.Logger
	up    prometheus.Gauge

	mu   sync.Mutex
	last databaseState
}

// DatabaseHealthPath is where every replica reports the helpdesk database
// on its metrics listener.
const DatabaseHealthPath = "/helpdesk-database"

// databaseState is the body of DatabaseHealthPath. It carries no error
// text: a driver's error can name hosts and users.
type databaseState struct {
	Up        bool       `json:"up"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"` // nil: not pinged yet
	Since     *time.Time `json:"since,omitempty"`     // when Up last changed
}

func (d *databaseReporter) record(up bool, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last.CheckedAt == nil || d.last.Up != up {
		d.last.Since = &at
	}
	d.last.Up, d.last.CheckedAt = up, &at
}

// ServeHTTP answers DatabaseHealthPath.
func (d *databaseReporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	st := d.last
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !st.Up {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
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
			d.record(true, time.Now())
			if !wasUp {
				d.log.Info("the helpdesk database answers again; the sync catches up")
			}
		case ctx.Err() == nil:
			d.up.Set(0)
			d.record(false, time.Now())
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
