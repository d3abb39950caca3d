package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/scim-operator/scim-operator/internal/settings"
)

// Listener serves the SCIM handler as a controller-runtime Runnable that
// needs no leader election: every replica serves SCIM, and it starts only
// after the informer caches synced, so no request sees an empty cache.
type Listener struct {
	Addr     string // host:port
	Handler  http.Handler
	CertFile string // TLS when both are set
	KeyFile  string
	// Ready, when set, is closed once the listener accepts connections.
	Ready chan struct{}
	// Bound receives the listening address (useful with port 0).
	Bound func(addr string)
	// Synced, when set, is waited for before listening: a replica serves
	// SCIM only once its caches and indexes hold every object.
	Synced func(context.Context) bool
	// ReadHeaderTimeout and ReadTimeout cut off slow clients (defaults in
	// settings.Default): a SCIM request is small and quick.
	ReadHeaderTimeout, ReadTimeout time.Duration
}

// NeedLeaderElection is false: all replicas serve.
func (l *Listener) NeedLeaderElection() bool { return false }

// Start listens until ctx ends, then drains for up to 10 seconds.
func (l *Listener) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           l.Handler,
		ReadHeaderTimeout: cmp.Or(l.ReadHeaderTimeout, settings.Default().ReadHeaderTimeout),
		ReadTimeout:       cmp.Or(l.ReadTimeout, settings.Default().ReadTimeout),
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// In-flight requests finish during Shutdown instead of being cancelled.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if l.Synced != nil && !l.Synced(ctx) {
		return ctx.Err()
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("SCIM server cannot listen on %s: %w (is another process using the port? change --scim-bind-address)", l.Addr, err)
	}
	if l.Bound != nil {
		l.Bound(ln.Addr().String())
	}
	if l.Ready != nil {
		close(l.Ready)
	}
	errc := make(chan error, 1)
	go func() {
		if l.CertFile != "" && l.KeyFile != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			errc <- srv.ServeTLS(ln, l.CertFile, l.KeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("SCIM server: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
