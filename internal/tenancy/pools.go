// Package tenancy says where each tenant's helpdesk rows go: the database
// its ProvisioningConfig names or the operator's own, what a deletion does
// there, and whether the sync is suspended. It holds one connection pool
// per distinct database, shared by the tenants that name it.
package tenancy

import (
	"context"
	"fmt"
	"sync"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

// OpenFunc opens a database and applies its migrations (helpdesk.Open).
type OpenFunc func(ctx context.Context, url string) (helpdesk.Store, error)

// Pools hands out one helpdesk.Store per distinct database URL: opened (and
// migrated) on first use, shared by every holder, closed when the last
// holder releases it. A URL whose credentials changed is another key, so a
// rotated Secret opens a new pool and the old one closes once its last
// in-flight write is done.
type Pools struct {
	open OpenFunc

	mu    sync.Mutex
	byURL map[string]*pool
}

type pool struct {
	url   string
	refs  int
	ready chan struct{} // closed once store or err is set
	store helpdesk.Store
	err   error
}

// NewPools returns an empty set of pools that opens databases with open
// (nil: helpdesk.Open).
func NewPools(open OpenFunc) *Pools {
	if open == nil {
		open = helpdesk.Open
	}
	return &Pools{open: open, byURL: map[string]*pool{}}
}

// Handle is one holder's reference to a pool. Release it exactly once.
type Handle struct {
	p     *Pools
	pool  *pool
	once  sync.Once
	Store helpdesk.Store
}

// Release drops the reference; the pool closes with its last one.
func (h *Handle) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() { h.p.release(h.pool) })
}

// Acquire returns a handle on url's pool, opening it when nobody holds one.
// Opening connects and migrates, outside the lock: a database that hangs
// delays only the holders of that URL. A failed open is not cached; the
// next Acquire tries again.
func (p *Pools) Acquire(ctx context.Context, url string) (*Handle, error) {
	p.mu.Lock()
	pl, ok := p.byURL[url]
	if !ok {
		pl = &pool{url: url, ready: make(chan struct{})}
		p.byURL[url] = pl
	}
	pl.refs++
	p.mu.Unlock()
	if !ok {
		st, err := p.open(ctx, url)
		p.mu.Lock()
		pl.store, pl.err = st, err
		if err != nil && p.byURL[url] == pl {
			delete(p.byURL, url) // the next Acquire opens afresh
		}
		p.mu.Unlock()
		close(pl.ready)
	}
	select {
	case <-pl.ready:
	case <-ctx.Done():
		p.release(pl)
		return nil, fmt.Errorf("waiting for the database to open: %w", ctx.Err())
	}
	if pl.err != nil {
		p.release(pl)
		return nil, pl.err
	}
	return &Handle{p: p, pool: pl, Store: pl.store}, nil
}

func (p *Pools) release(pl *pool) {
	p.mu.Lock()
	pl.refs--
	last := pl.refs == 0
	if last && p.byURL[pl.url] == pl {
		delete(p.byURL, pl.url)
	}
	p.mu.Unlock()
	if last {
		<-pl.ready
		if pl.store != nil {
			_ = pl.store.Close()
		}
	}
}

// Open is how many pools are open (tests and metrics).
func (p *Pools) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byURL)
}
