package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

// orderStore records the order in which users reach the database and, while
// held, keeps each upsert waiting until it is let go.
type orderStore struct {
	helpdesk.Store
	mu      sync.Mutex
	order   []string
	release chan struct{} // nil: not held
}

func (o *orderStore) UpsertUser(ctx context.Context, u helpdesk.User) (bool, error) {
	o.mu.Lock()
	o.order = append(o.order, u.SCIMID)
	release := o.release
	o.mu.Unlock()
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return o.Store.UpsertUser(ctx, u)
}

func (o *orderStore) hold() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.release = make(chan struct{})
}

func (o *orderStore) letGo() {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.release)
	o.release = nil
}

// count is how many upserts have reached the store.
func (o *orderStore) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order)
}

// since returns the users that reached the store after the first n.
func (o *orderStore) since(n int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.order[n:])
}

// TestChangesGoBeforeResyncs: a user that changed is written before the
// resyncs already waiting in the queue. A resync only repairs drift; with
// many users, the due resyncs would otherwise hold up every change. The
// database is held while the users' resyncs fall due, so they wait in the
// queue, ahead of the change in arrival order.
func TestChangesGoBeforeResyncs(t *testing.T) {
	base, _ := sqliteStore(t)
	st := &orderStore{Store: base}
	const (
		resyncEvery = 200 * time.Millisecond
		users       = 24
		workers     = 4 // startSyncWith's MaxConcurrentReconciles
	)
	s := startSync(t, st, helpdesk.DeletionPolicyRetain, resyncEvery)
	for i := range users {
		s.createUser(t, fmt.Sprintf("u%d", i), fmt.Sprintf("u%d@example.test", i))
	}
	for i := range users {
		s.waitRow(t, fmt.Sprintf("u%d", i), func(helpdesk.User) error { return nil })
	}

	st.hold()
	mark := st.count()
	// Every worker waits on a resync, and the other resyncs fall due.
	eventually(t, 30*time.Second, func() error {
		if n := len(st.since(mark)); n < workers {
			return fmt.Errorf("%d of %d workers wait on the database", n, workers)
		}
		return nil
	})
	time.Sleep(3 * resyncEvery)
	// Change a user no worker holds: its resync is queued with the others.
	busy := st.since(mark)
	changed := ""
	for i := range users {
		if id := fmt.Sprintf("u%d", i); !slices.Contains(busy, id) {
			changed = id
			break
		}
	}
	s.updateUser(t, changed, func(u *scimv1.ProvisionedUser) { u.Spec.Title = "Changed" })
	// Let the watch event reach the queue (the test fails the same way,
	// never falsely passes, when it takes longer).
	time.Sleep(time.Second)
	mark = st.count()
	st.letGo()
	s.waitRow(t, changed, func(r helpdesk.User) error {
		if r.Title != "Changed" {
			return fmt.Errorf("title %q", r.Title)
		}
		return nil
	})

	after := st.since(mark)
	pos := slices.Index(after, changed)
	// The workers freed by letGo each take the next request at once; the
	// change is one of those, whichever reaches the store first.
	if pos < 0 || pos >= workers {
		t.Fatalf("the changed user %s reached the database after %d resyncs (order %v); want it among the first %d",
			changed, pos, after[:min(len(after), users)], workers)
	}
}
