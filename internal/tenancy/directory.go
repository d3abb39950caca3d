package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

var (
	// ErrPending means the tenant's ProvisioningConfig names a database the
	// operator has not opened yet (just created or changed). Try again in
	// a moment; nothing may go to the operator's database meanwhile.
	ErrPending = errors.New("the tenant's ProvisioningConfig is being applied")
	// ErrBusy means the tenant's database already runs as many writes as it may
	// (Directory.PerDatabase); the others wait without holding a worker.
	ErrBusy = errors.New("the tenant's database is busy")
)

// Target is where one tenant's rows go, for one reconcile. Release it when
// the reconcile is done with Store.
type Target struct {
	Store          helpdesk.Store
	DeletionPolicy helpdesk.DeletionPolicy
	// Suspended: write nothing; the tenant is caught up when it resumes.
	Suspended bool
	release   func()
}

// Release frees the target's write slot and its hold on the pool; called
// again, it does nothing.
func (t Target) Release() {
	if t.release != nil {
		t.release()
	}
}

// Directory resolves a tenant (namespace) to its Target. The
// ProvisioningConfig controller records each config's database in it
// (Resolve, Forget); the helpdesk sync controllers ask it (For) on every
// reconcile and are told (Subscribe) when a tenant's target changed, so
// they write the whole tenant again: after a suspension, into a new
// database, or with new credentials.
type Directory struct {
	// Configs reads ProvisioningConfigs (the manager's cache).
	Configs client.Reader
	// Default is the operator's database, for tenants without a config or
	// whose config names none.
	Default       helpdesk.Store
	DefaultPolicy helpdesk.DeletionPolicy
	// Pools opens the tenants' own databases.
	Pools *Pools
	// PerDatabase bounds the writes in flight on one database, so that a
	// database that hangs holds at most that many of the sync workers and
	// the others keep serving the other tenants (default 1).
	PerDatabase int
	// SlotWait is how long a reconcile waits for a slot of a busy database
	// (default slotWait; tests lengthen it).
	SlotWait time.Duration

	mu       sync.Mutex
	resolved map[string]*resolution // by namespace
	slots    map[slotKey]*writeSlots
	// waiters is, per kind, the budget of reconciles that may wait for a
	// slot at once, whatever their databases: PerDatabase of them.
	waiters map[string]*waiters
	// turnedAway remembers when each object was first turned away from a
	// busy database, so that the longest turned away waits first.
	turnedAway turnedAway
	subs       []chan event.GenericEvent
}

type slotKey struct {
	store helpdesk.Store
	kind  string
}

// writeSlots are one database's write slots for one kind.
type writeSlots struct {
	ch chan struct{}
	// born and ended (nanoseconds since born, plus one; 0: never) tell
	// when a write last gave its slot back, on the monotonic clock:
	// whether the database is moving.
	born  time.Time
	ended atomic.Int64
}

// moving reports whether a write ended within movingWithin: a database
// that is busy, not hung.
func (s *writeSlots) moving() bool {
	e := s.ended.Load()
	return e > 0 && time.Since(s.born)-time.Duration(e-1) < movingWithin
}

// free gives a slot back.
func (s *writeSlots) free() {
	s.ended.Store(int64(time.Since(s.born)) + 1)
	<-s.ch
}

// wait waits up to patience for a slot of a moving database, as w, one
// of the kind's waiters; false when it got none, or when an object turned
// away longer ago took w's place.
func (s *writeSlots) wait(ctx context.Context, w *waiter, patience time.Duration) bool {
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case s.ch <- struct{}{}:
		return true
	case <-w.displaced:
		return false
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// resolution is what the ProvisioningConfig controller made of one config.
type resolution struct {
	uid        types.UID
	generation int64
	handle     *Handle // nil when the database could not be opened
	err        error   // why it could not
	down       error   // the last ping failed
	key        string  // identifies the target, to notice changes
}

// For returns the tenant's target. Without a ProvisioningConfig it is the
// operator's database and deletion policy.
//
// kind ("user", "group") keeps separate write slots per controller, so
// that one controller's writes never wait for the other's.
func (d *Directory) For(ctx context.Context, obj client.ObjectKey, kind string) (Target, error) {
	namespace := obj.Namespace
	cfg := &scimv1.ProvisioningConfig{}
	err := d.Configs.Get(ctx, client.ObjectKey{Namespace: namespace, Name: scimv1.ProvisioningConfigName}, cfg)
	switch {
	case apierrors.IsNotFound(err):
		d.mu.Lock()
		r := d.resolved[namespace]
		d.mu.Unlock()
		if r != nil && r.handle != nil {
			// Gone from the cache, not yet forgotten: the controller has
			// not seen the deletion. Never write to the operator's
			// database before it has.
			return Target{}, ErrPending
		}
		return d.take(ctx, Target{Store: d.Default, DeletionPolicy: d.DefaultPolicy}, kind, obj.String())
	case err != nil:
		return Target{}, fmt.Errorf("reading the tenant's ProvisioningConfig: %w", err)
	}
	t := Target{DeletionPolicy: d.DefaultPolicy, Suspended: suspended(cfg)}
	if cfg.Spec.DeletionPolicy != "" {
		t.DeletionPolicy = helpdesk.DeletionPolicy(cfg.Spec.DeletionPolicy)
	}
	if t.Suspended {
		return t, nil
	}
	if cfg.Spec.Database == nil {
		t.Store = d.Default
		return d.take(ctx, t, kind, obj.String())
	}
	d.mu.Lock()
	r := d.resolved[namespace]
	if r == nil || r.uid != cfg.UID || r.generation != cfg.Generation {
		d.mu.Unlock()
		return Target{}, ErrPending
	}
	if r.err != nil || r.down != nil {
		err := r.err
		if err == nil {
			err = fmt.Errorf("%w: %w", ErrDatabaseUnavailable, r.down)
		}
		d.mu.Unlock()
		return Target{}, err
	}
	// Hold the pool for this reconcile: a rotation may replace it meanwhile
	// (lock order: Directory, then Pools).
	h := r.handle
	h.p.mu.Lock()
	h.pool.refs++
	h.p.mu.Unlock()
	d.mu.Unlock()
	t.Store = h.Store
	t, err = d.take(ctx, t, kind, obj.String())
	if err != nil {
		h.p.release(h.pool)
		return Target{}, err
	}
	free := t.release
	t.release = sync.OnceFunc(func() { free(); h.p.release(h.pool) })
	return t, nil
}

// suspended: a config being deleted writes what its tenant still has to
// delete, suspended or not; its finalizer waits for exactly that.
func suspended(cfg *scimv1.ProvisioningConfig) bool {
	return cfg.Spec.Suspend && cfg.DeletionTimestamp.IsZero()
}

// take claims a write slot on t.Store for the object obj. When all are
// taken it waits up to SlotWait for one, but only on a database whose
// writes are ending (moving) and only as one of the kind's waiters:
// otherwise it answers ErrBusy at once, and the reconcile is retried
// shortly, its worker free for another tenant meanwhile. The returned
// target's release may be called more than once.
func (d *Directory) take(ctx context.Context, t Target, kind, obj string) (Target, error) {
	if t.Store == nil {
		return Target{}, errors.New("no helpdesk database is configured")
	}
	d.mu.Lock()
	if d.slots == nil {
		d.slots, d.waiters = map[slotKey]*writeSlots{}, map[string]*waiters{}
	}
	k := slotKey{t.Store, kind}
	s, ok := d.slots[k]
	if !ok {
		s = &writeSlots{ch: make(chan struct{}, max(d.PerDatabase, 1)), born: time.Now()}
		d.slots[k] = s
	}
	ws, ok := d.waiters[kind]
	if !ok {
		ws = &waiters{budget: max(d.PerDatabase, 1)}
		d.waiters[kind] = ws
	}
	patience := d.SlotWait
	d.mu.Unlock()
	if patience <= 0 {
		patience = slotWait
	}
	who := kind + "/" + obj
	select {
	case s.ch <- struct{}{}:
	default:
		if !s.moving() || !d.waitFor(ctx, s, ws, who, patience) {
			d.mu.Lock()
			d.turnedAway.note(who, time.Now())
			d.mu.Unlock()
			return Target{}, ErrBusy
		}
	}
	d.mu.Lock()
	d.turnedAway.forget(who)
	d.mu.Unlock()
	t.release = sync.OnceFunc(s.free)
	return t, nil
}

// waitFor waits for a slot of s as one of the waiters ws, if it may: there
// is room among them, or it was turned away before the youngest of those
// waiting for s, who then gives it its place.
func (d *Directory) waitFor(ctx context.Context, s *writeSlots, ws *waiters, who string, patience time.Duration) bool {
	d.mu.Lock()
	w := ws.enlist(s, d.turnedAway.since(who))
	d.mu.Unlock()
	if w == nil {
		return false // enough workers wait already, none of s's for longer than who
	}
	defer func() {
		d.mu.Lock()
		ws.leave(w)
		d.mu.Unlock()
	}()
	return s.wait(ctx, w, patience)
}

// Waiting for a slot: writers that wait get slots in the order they came
// (a channel's queue), so a saturated database drains in order. Without
// the wait every reconcile that found it full was retried 250 ms later and
// took its chance against newer ones: a PostgreSQL tenant's sync lag p99
// was 8.3 s in make bench at 2,000 users, 0.9 s with it. Only a moving
// database is waited for, and briefly, so that a hung one costs the other
// tenants no more workers than its slots, and a slow one with a backlog
// no more than twice its slots (the waiters are capped): the rest of its
// backlog is turned away at once, so other tenants' rows do not wait it
// out. The objects turned away longest get the waiters' places (see
// waiters), so the backlog still drains oldest first.
const (
	slotWait     = 100 * time.Millisecond
	movingWithin = time.Second
)

// Resolve records cfg for its tenant: with spec.database, the pool of url
// (kept when the tenant already holds it, else opened; a failed open is
// recorded and returned), or problem, when the URL could not be had (its
// Secret is missing, it is not allowed), which the tenant's writes then
// fail with. Subscribers are told when the tenant's target changed: it
// was suspended or resumed, or its database or credentials changed.
func (d *Directory) Resolve(ctx context.Context, cfg *scimv1.ProvisioningConfig, url string, problem error) error {
	d.mu.Lock()
	old := d.resolved[cfg.Namespace]
	d.mu.Unlock()
	var h *Handle
	err := problem
	if err == nil && url != "" {
		if old != nil && old.handle != nil && old.handle.pool.url == url {
			h = old.handle
		} else if h, err = d.Pools.Acquire(ctx, url); err != nil {
			err = fmt.Errorf("%w: %w", ErrDatabaseUnavailable, err)
		}
	}
	key := resolutionKey(cfg, h, err)
	r := &resolution{uid: cfg.UID, generation: cfg.Generation, handle: h, err: err, key: key}
	d.mu.Lock()
	if d.resolved == nil {
		d.resolved = map[string]*resolution{}
	}
	d.resolved[cfg.Namespace] = r
	if old != nil && old.handle != h {
		d.dropSlots(old)
	}
	d.mu.Unlock()
	if old != nil && old.handle != nil && old.handle != h {
		old.handle.Release()
	}
	if old == nil || old.key != key {
		d.notify(cfg.Namespace)
	}
	return err
}

// Keep records cfg's new generation (its deletion bumped it) on the
// tenant's resolution without opening or closing anything: while a config
// is being deleted its database stays as it was, even when the namespace
// controller already deleted the Secret naming it. False when there is no
// resolution to keep.
func (d *Directory) Keep(cfg *scimv1.ProvisioningConfig) bool {
	d.mu.Lock()
	r := d.resolved[cfg.Namespace]
	if r == nil || r.uid != cfg.UID {
		d.mu.Unlock()
		return false
	}
	r.generation = cfg.Generation
	// A deleted config is no longer suspended (see suspended): its
	// tenant's waiting deletions must be queued now.
	key := resolutionKey(cfg, r.handle, r.err)
	changed := key != r.key
	r.key = key
	d.mu.Unlock()
	if changed {
		d.notify(cfg.Namespace)
	}
	return true
}

// resolutionKey is what the sync controllers must hear of when it
// changes: suspension, whether the database can be had, and which pool.
// Not the generation or the deletion policy (they change nothing already
// written).
func resolutionKey(cfg *scimv1.ProvisioningConfig, h *Handle, err error) string {
	key := fmt.Sprintf("%s/%t/%t", cfg.UID, suspended(cfg), err == nil)
	if h != nil {
		key += fmt.Sprintf("/%p", h.pool)
	}
	return key
}

// ErrDatabaseUnavailable wraps why a tenant's database could not be used.
var ErrDatabaseUnavailable = errors.New("the tenant's helpdesk database is unavailable")

// SetDown marks the tenant's database down (err) or up again (nil), from
// the ProvisioningConfig controller's pings: while down, the tenant's
// reconciles fail at once instead of each waiting on the database.
func (d *Directory) SetDown(namespace string, err error) {
	d.mu.Lock()
	r := d.resolved[namespace]
	wasDown := r != nil && r.down != nil
	if r != nil {
		r.down = err
	}
	d.mu.Unlock()
	if wasDown && err == nil {
		d.notify(namespace) // back: write the tenant now, not at its backoff
	}
}

// Forget drops the tenant's resolution (its ProvisioningConfig is gone):
// the tenant goes back to the operator's database, written afresh.
func (d *Directory) Forget(namespace string) {
	d.mu.Lock()
	old := d.resolved[namespace]
	delete(d.resolved, namespace)
	d.dropSlots(old)
	d.mu.Unlock()
	if old != nil {
		old.handle.Release()
		d.notify(namespace)
	}
}

// dropSlots forgets the write slots of a pool no other tenant holds (the
// map would otherwise keep every closed pool). Called with d.mu held.
func (d *Directory) dropSlots(old *resolution) {
	if old == nil || old.handle == nil {
		return
	}
	for _, r := range d.resolved {
		if r.handle != nil && r.handle.pool == old.handle.pool {
			return
		}
	}
	for k := range d.slots {
		if k.store == old.handle.Store {
			delete(d.slots, k)
		}
	}
}

// Handle returns the pool handle the tenant's config resolved to, if any
// (the ProvisioningConfig controller pings it).
func (d *Directory) Handle(namespace string) *Handle {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.resolved[namespace]; r != nil {
		return r.handle
	}
	return nil
}

// Subscribe returns a channel that receives an event naming the tenant's
// ProvisioningConfig whenever the tenant's target changes; the sync
// controllers watch it (source.Channel) and queue every object of the
// namespace. Call before the manager starts.
func (d *Directory) Subscribe() <-chan event.GenericEvent {
	ch := make(chan event.GenericEvent, 1024)
	d.mu.Lock()
	d.subs = append(d.subs, ch)
	d.mu.Unlock()
	return ch
}

func (d *Directory) notify(namespace string) {
	d.mu.Lock()
	subs := d.subs
	d.mu.Unlock()
	ev := event.GenericEvent{Object: &scimv1.ProvisioningConfig{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: scimv1.ProvisioningConfigName}}}
	for _, ch := range subs {
		// Never dropped: a lost event would leave a resumed tenant
		// unsynced until the next resync. The controllers drain the
		// channel quickly (one list of the namespace per event).
		select {
		case ch <- ev:
		case <-time.After(time.Minute):
		}
	}
}
