package tenancy

import "time"

// waiters is one kind's budget of reconciles waiting for a write slot, in
// every database. A free place goes to whoever asks first. With the budget
// full, a newcomer turned away before the youngest waiter of its own
// database takes that waiter's place (the waiter is turned away, and comes
// back older): within a database, the longest turned away wait first.
// Never across databases: a tenant with an old backlog would otherwise
// take every place from a tenant whose database filled later.
//
// Without that, the objects a full budget turned away came back every
// 250 ms and won a place only by luck, against newer ones: a backlog
// drained in random order, and a PostgreSQL tenant's sync lag p99 was
// 20.6 s where the database itself finished 0.5 s after the last request
// (make bench, 10,000 users). Oldest first, the backlog drains in order.
// Called with the Directory's lock held.
type waiters struct {
	budget int
	list   []*waiter
}

type waiter struct {
	slots     *writeSlots   // the database it waits for
	since     uint64        // when it was first turned away (turnedAway order)
	displaced chan struct{} // closed when an older one took its place
}

// enlist returns a waiter for slots, for an object turned away since since
// (0: never), or nil when it may not wait.
func (ws *waiters) enlist(slots *writeSlots, since uint64) *waiter {
	w := &waiter{slots: slots, since: since, displaced: make(chan struct{})}
	if len(ws.list) < ws.budget {
		ws.list = append(ws.list, w)
		return w
	}
	youngest := -1
	for i, o := range ws.list {
		if o.slots == slots && younger(o.since, w.since) && (youngest < 0 || younger(o.since, ws.list[youngest].since)) {
			youngest = i
		}
	}
	if youngest < 0 {
		return nil
	}
	close(ws.list[youngest].displaced)
	ws.list[youngest] = w
	return w
}

// younger: turned away after b, or never (0) where b was.
func younger(a, b uint64) bool {
	switch {
	case b == 0:
		return false
	case a == 0:
		return true
	}
	return a > b
}

// leave gives w's place back, unless an older one took it already.
func (ws *waiters) leave(w *waiter) {
	for i, o := range ws.list {
		if o == w {
			ws.list = append(ws.list[:i], ws.list[i+1:]...)
			return
		}
	}
}

// turnedAway remembers, per kind and object, when it was first turned
// away from a busy database, as an order (a counter: no two alike), and
// when it was last (to forget objects that stopped coming back: deleted,
// or written by another replica). Called with the Directory's lock held.
type turnedAway struct {
	next  uint64
	seen  map[string]turnedAwayAt
	swept time.Time
}

type turnedAwayAt struct {
	order uint64
	last  time.Time
}

// forgetTurnedAwayAfter: an object not turned away again for this long is
// forgotten. A turned-away reconcile comes back within a second.
const forgetTurnedAwayAfter = 10 * time.Minute

func (t *turnedAway) note(who string, now time.Time) {
	if t.seen == nil {
		t.seen = map[string]turnedAwayAt{}
	}
	a, ok := t.seen[who]
	if !ok {
		t.next++
		a.order = t.next
	}
	a.last = now // the order stays: how long it has been turned away
	t.seen[who] = a
	if now.Sub(t.swept) > forgetTurnedAwayAfter {
		for k, v := range t.seen {
			if now.Sub(v.last) > forgetTurnedAwayAfter {
				delete(t.seen, k)
			}
		}
		t.swept = now
	}
}

// since is who's order, 0 when it was not turned away.
func (t *turnedAway) since(who string) uint64 { return t.seen[who].order }

func (t *turnedAway) forget(who string) { delete(t.seen, who) }

// remembered is how many objects are remembered (tests).
func (t *turnedAway) remembered() int { return len(t.seen) }
