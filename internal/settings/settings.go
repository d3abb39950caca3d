// Package settings is the one place for the manager's defaults: the flags
// of cmd/main.go, server.Config, operator.Options and tokens.Freshness take
// their default values from Default, and tests check that the flag
// defaults, the Flags table of docs/operations.md and the chart's values
// agree with it.
//
// It imports nothing of this module, so every layer may use it.
package settings

import "time"

// Manager holds the in-cluster manager's tunables.
type Manager struct {
	// Addresses; "0" disables an endpoint.
	MetricsAddr, ProbeAddr, PprofAddr string
	// SCIMAddr is where the SCIM server listens.
	SCIMAddr string
	// Component is what one process runs: all, scim or controllers.
	Component string
	// HelpdeskDatabase is the helpdesk database URL when neither the flag
	// nor $HELPDESK_DATABASE_URL names one.
	HelpdeskDatabase string
	// DeletionPolicy is what a deleted user or group does to its helpdesk
	// row: retain or delete (helpdesk.DeletionPolicy).
	DeletionPolicy string
	// ResyncPeriod is how often synced rows are checked and repaired;
	// SyncWorkers bounds parallel database writes per kind.
	ResyncPeriod time.Duration
	SyncWorkers  int

	// SCIMBasePath is where the SCIM API is mounted.
	SCIMBasePath string
	// MaxBodyBytes bounds SCIM request bodies (413 above); MaxOperations
	// the operations of one PATCH.
	MaxBodyBytes  int64
	MaxOperations int
	// DefaultPageSize applies when a list request names no count;
	// MaxPageSize caps count.
	DefaultPageSize, MaxPageSize int
	// RetryAfter is sent with 503 answers.
	RetryAfter time.Duration
	// RateLimit is the requests per second one token may sustain, RateBurst
	// how many it may make at once (0 disables the limit; a zero
	// server.Config has none).
	RateLimit float64
	RateBurst int
	// ScanCeiling is the most resources an unindexed filter or a sortBy may
	// examine (negative: no ceiling); ScansPerTenant and ScansTotal the
	// whole-tenant list requests running at once per tenant and per
	// replica; ScanWait how long one waits for a slot.
	ScanCeiling                int
	ScansPerTenant, ScansTotal int
	ScanWait                   time.Duration
	// ReadHeaderTimeout and ReadTimeout cut off slow SCIM clients
	// (server.Listener): a SCIM request is small and quick.
	ReadHeaderTimeout, ReadTimeout time.Duration

	// TokenFreshnessInterval is how often the token cache is compared with
	// the API server; TokenFreshnessBound how long it may stay behind while
	// tokens are accepted.
	TokenFreshnessInterval, TokenFreshnessBound time.Duration
}

// Default returns the manager's defaults.
func Default() Manager {
	return Manager{
		MetricsAddr:      ":8080",
		ProbeAddr:        ":8081",
		PprofAddr:        "0",
		SCIMAddr:         ":8443",
		Component:        "all",
		HelpdeskDatabase: "sqlite://helpdesk.db",
		DeletionPolicy:   "retain",
		ResyncPeriod:     10 * time.Minute,
		SyncWorkers:      4,

		SCIMBasePath:    "/scim/v2",
		MaxBodyBytes:    1 << 20,
		MaxOperations:   1000,
		DefaultPageSize: 100,
		MaxPageSize:     1000,
		RetryAfter:      10 * time.Second,
		RateLimit:       200,
		RateBurst:       400,
		ScanCeiling:     10000,
		ScansPerTenant:  2,
		ScansTotal:      4,
		ScanWait:        time.Second,

		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,

		TokenFreshnessInterval: 5 * time.Second,
		TokenFreshnessBound:    30 * time.Second,
	}
}
