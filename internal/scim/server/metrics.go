package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// Metrics count the SCIM server's answers for the alerts and the dashboard
// the chart ships (charts/scim-operator, monitoring). Labels carry the
// tenant's namespace, whether the token was the current or the previous
// one (during a rotation's overlap), the status code and the RFC 7644
// scimType; never a token, a fingerprint, a path or anything a client sent.
type Metrics struct {
	responses *prometheus.CounterVec
	duration  prometheus.Histogram
}

// NewMetrics registers scim_responses_total and
// scim_request_duration_seconds on reg; a second server in the same
// process (tests, replicas in one process) shares the first's collectors.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scim_responses_total",
		Help: "SCIM responses by tenant (the token's namespace), credential (current or previous token; both empty before authentication), HTTP status code and scimType (empty when none).",
	}, []string{"tenant", "credential", "code", "scim_type"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "scim_request_duration_seconds",
		Help:    "Time from receiving a SCIM request to the end of its response.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	var err error
	if responses, err = register(reg, responses); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	return &Metrics{responses: responses, duration: duration}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// defaultMetrics are registered on controller-runtime's registry, which
// the operator's metrics endpoint serves, for servers given none.
var defaultMetrics = sync.OnceValue(func() *Metrics {
	m, err := NewMetrics(metrics.Registry)
	if err != nil {
		return nil // observe is a no-op on nil
	}
	return m
})

// scimTypes are the scimType label values; anything else is "other", so
// that the label stays bounded whatever an error carries.
var scimTypes = map[string]bool{
	"": true, scimerr.TypeInvalidFilter: true, scimerr.TypeTooMany: true, scimerr.TypeUniqueness: true,
	scimerr.TypeMutability: true, scimerr.TypeInvalidSyntax: true, scimerr.TypeInvalidPath: true,
	scimerr.TypeNoTarget: true, scimerr.TypeInvalidValue: true, "invalidVers": true, "sensitive": true,
}

// observedWriter remembers what the metrics need of one response: its
// status, and the principal and scimType the handlers note on it.
type observedWriter struct {
	http.ResponseWriter
	status     int
	tenant     string
	credential string
	scimType   string
	// For the token's activity (activity.go): who, which route, and the
	// error's detail without the values it quoted.
	principal tokens.Principal
	pattern   string
	detail    string
}

func (w *observedWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *observedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *observedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notePrincipal and noteError record on w (when it is the observedWriter
// of Handler) what only the handlers know. p is the zero Principal before
// authentication.
func notePrincipal(w http.ResponseWriter, p tokens.Principal) {
	ow, ok := w.(*observedWriter)
	if !ok || p.Namespace == "" {
		return
	}
	ow.principal = p
	ow.tenant, ow.credential = p.Namespace, "current"
	if p.Previous {
		ow.credential = "previous"
	}
}

func noteError(w http.ResponseWriter, p tokens.Principal, e *scimerr.Error) {
	notePrincipal(w, p)
	if ow, ok := w.(*observedWriter); ok {
		ow.scimType, ow.detail = e.ScimType, e.SafeDetail()
	}
}

func (m *Metrics) observe(w *observedWriter, d time.Duration) {
	if m == nil {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	st := w.scimType
	if !scimTypes[st] {
		st = "other"
	}
	m.responses.WithLabelValues(w.tenant, w.credential, strconv.Itoa(status), st).Inc()
	m.duration.Observe(d.Seconds())
}
