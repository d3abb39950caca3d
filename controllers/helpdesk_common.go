package controllers

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// Reasons of the Synced condition on users and groups.
const (
	ReasonSynced              = "Synced"
	ReasonDatabaseUnavailable = "DatabaseUnavailable"
	ReasonConflict            = "Conflict"
	ReasonInvalid             = "Invalid"

	EventDriftRepaired = "DriftRepaired"
	EventSyncFailed    = "SyncFailed"
	EventDeleted       = "DeletedFromHelpdesk"
)

// SyncMetrics measure how long provisioning takes to reach the helpdesk.
type SyncMetrics struct {
	// Lag is the time from the SCIM write (the object's last-modified
	// annotation) to the database commit that carried it.
	Lag *prometheus.HistogramVec
}

// NewSyncMetrics registers the helpdesk sync metrics on reg; a second
// operator in the same process (tests) reuses the first's collector.
func NewSyncMetrics(reg prometheus.Registerer) (*SyncMetrics, error) {
	lag := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scim_helpdesk_sync_lag_seconds",
		Help:    "Time from a SCIM write to the helpdesk database commit that carried it, by kind.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300},
	}, []string{"kind"})
	if err := reg.Register(lag); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		lag = are.ExistingCollector.(*prometheus.HistogramVec)
	}
	return &SyncMetrics{Lag: lag}, nil
}

func (m *SyncMetrics) observe(kind string, meta *metav1.ObjectMeta, now time.Time) {
	t, err := time.Parse(time.RFC3339Nano, meta.Annotations[repository.AnnotationLastModified])
	if err == nil {
		m.observeSince(kind, t, now)
	}
}

// observeSince records the lag of a write made at t and committed at now.
func (m *SyncMetrics) observeSince(kind string, t, now time.Time) {
	if m == nil || t.IsZero() || now.Before(t) {
		return
	}
	m.Lag.WithLabelValues(kind).Observe(now.Sub(t).Seconds())
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
