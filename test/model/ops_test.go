package model

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
)

const (
	userURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	groupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	entraGroupURN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
	patchOpURN    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// worker sends one stream of operations. It alone operates on the users
// and groups it created, so the model knows their exact state; names are
// shared with the other workers (the "shared" prefix), and the model
// judges name conflicts from the time intervals of the requests.
type worker struct {
	id  int
	m   *model
	c   *cluster
	rng *rand.Rand

	users  []*mUser // live, with a known state
	gone   []*mUser // deleted: their names may come back
	groups []*mGroup
	seq    int
}

func (w *worker) next() int { w.seq++; return w.seq }

func is2xx(ev *event) bool { return ev.res.err == nil && ev.res.status >= 200 && ev.res.status < 300 }
func is4xx(ev *event) bool { return ev.res.err == nil && ev.res.status >= 400 && ev.res.status < 500 }

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// unexpected records an answer the model has no reading for. 5xx and
// missing answers were reported by send already.
func (w *worker) unexpected(ev *event, want string) {
	if ev.res.err != nil || ev.res.status >= 500 {
		return
	}
	w.m.fail("unexpected", w.m.refsOf(ev), "%s %s: want %s, got %s (%s)", ev.req.method, ascii(ev.req.path), want,
		statusText(ev.res), ascii(ev.what))
}

// taint drops a user whose state the model no longer knows.
func (w *worker) taintUser(u *mUser) {
	w.m.mu.Lock()
	u.tainted = true
	w.m.mu.Unlock()
	w.users = slices.DeleteFunc(w.users, func(x *mUser) bool { return x == u })
}

func (w *worker) taintGroup(g *mGroup) {
	w.m.mu.Lock()
	g.tainted = true
	w.m.mu.Unlock()
	w.groups = slices.DeleteFunc(w.groups, func(x *mGroup) bool { return x == g })
}

// check409 fails I2 when a 409 had no other resource to blame.
func (w *worker) check409(ev *event, key string, self *hold) {
	if !strings.Contains(string(ev.res.raw), "uniqueness") {
		w.unexpected(ev, "a 409 with scimType uniqueness")
	}
	if ok, _ := w.m.justified(key, self, ev.s, ev.e); !ok {
		w.m.fail("I2", w.m.refsOf(ev, key), "409 for name key %+q, which no other resource held during the request (%s)",
			strings.SplitN(key, ":", 2)[1], ascii(ev.what))
	}
}

// ---- names

func (w *worker) ident(shared int) ident {
	prefix := fmt.Sprintf("w%d", w.id)
	if w.rng.IntN(shared) == 0 {
		prefix = "shared"
	}
	return ident{prefix: prefix, base: w.rng.IntN(len(nameBases)), n: w.rng.IntN(4)}
}

// freshIdent is a name no other worker uses and this one has not used.
func (w *worker) freshIdent() ident {
	return ident{prefix: fmt.Sprintf("w%d", w.id), base: w.rng.IntN(len(nameBases)), n: 100 + w.next()}
}

// userIdent: a new name, or another spelling of a name of one of this
// worker's users (live or gone).
func (w *worker) userIdent() ident {
	if len(w.users) > 0 && w.rng.IntN(4) == 0 {
		return w.users[w.rng.IntN(len(w.users))].nameID
	}
	if len(w.gone) > 0 && w.rng.IntN(4) == 0 {
		return w.gone[w.rng.IntN(len(w.gone))].nameID
	}
	return w.ident(5)
}

// ---- users

// overlong picks, now and then, an optional attribute longer than the
// helpdesk database's column: a phone of 73 characters, an email of 403,
// a title of 600 (longer than the ProvisionedUser schema allows too).
func (w *worker) overlong() string {
	if w.rng.IntN(8) != 0 {
		return ""
	}
	return []string{"phone", "email", "title"}[w.rng.IntN(3)]
}

var (
	longPhone = "+1 " + strings.Repeat("4255550123", 7)
	longEmail = strings.Repeat("a", 390) + "@example.test"
	longTitle = strings.Repeat("T", 600)
)

func boolValue(r *rand.Rand, b bool) any {
	if r.IntN(2) == 0 {
		return b
	}
	if b {
		return "True"
	}
	return "False"
}

// userBody is a user as Entra POSTs it.
func (w *worker) userBody(name string, active any, long string) map[string]any {
	n := w.next()
	email := map[string]any{"primary": true, "type": "work", "value": fmt.Sprintf("w%d.%d@mail.example.test", w.id, n)}
	b := map[string]any{
		"schemas":     []string{userURN, enterpriseURN},
		"externalId":  fmt.Sprintf("w%dn%d", w.id, n),
		"userName":    name,
		"displayName": fmt.Sprintf("Model User %d-%d", w.id, n),
		"emails":      []any{email},
		"meta":        map[string]any{"resourceType": "User"},
		"name":        map[string]any{"formatted": "Model User", "familyName": "User", "givenName": "Model"},
		"title":       "Agent",
		enterpriseURN: map[string]any{"department": "Support", "employeeNumber": fmt.Sprint(1000 + n)},
	}
	if active != nil {
		b["active"] = active
	}
	switch long {
	case "phone":
		b["phoneNumbers"] = []any{map[string]any{"type": "work", "value": longPhone}}
	case "email":
		email["value"] = longEmail
	case "title":
		b["title"] = longTitle
	}
	return b
}

// userCreate is one POST /Users, split so that two can race: prepare uses
// the worker's random source, exec may run concurrently, finish updates
// the worker.
type userCreate struct {
	w      *worker
	nameID ident
	name   string
	active bool
	long   string
	body   any
	rep    *replica
	h      *hold
	ev     *event
	what   string
}

func (w *worker) prepareCreate(id ident, what string) *userCreate {
	uc := &userCreate{w: w, nameID: id, name: id.render(w.rng, "example.test"), active: w.rng.IntN(10) != 0,
		long: w.overlong(), what: what}
	uc.body = w.userBody(uc.name, boolValue(w.rng, uc.active), uc.long)
	uc.rep = w.c.acquire(w.rng)
	return uc
}

func (uc *userCreate) exec() {
	m := uc.w.m
	key := userKey(uc.name)
	uc.h = m.claim(key, fmt.Sprintf("create#%d", m.tick()), uc.name, m.tick())
	uc.ev = m.send(uc.w.c, uc.w, uc.rep, fmt.Sprintf("%s %q%s", uc.what, uc.name, map[bool]string{true: " (long " + uc.long + ")"}[uc.long != ""]),
		request{method: "POST", path: "/Users", body: uc.body}, key)
}

func (uc *userCreate) finish() *mUser {
	w, m, ev := uc.w, uc.w.m, uc.ev
	switch {
	case ev.res.status == 201 && ev.res.err == nil:
		id := ev.res.str("id")
		u := &mUser{id: id, worker: w.id, nameID: uc.nameID, userName: uc.name, active: uc.active, hold: uc.h,
			etag: ev.res.etag, last: uc.rep}
		w.m.addRefs(ev, id)
		m.mu.Lock()
		m.users[id] = u
		m.mu.Unlock()
		m.claimed(uc.h, id, m.tick())
		if got := ev.res.str("userName"); got != uc.name {
			m.fail("I5", w.m.refsOf(ev), "201 for user %s answers userName %+q, sent %+q", id, got, uc.name)
		}
		if got, _ := ev.res.doc["active"].(bool); got != uc.active {
			m.fail("I5", w.m.refsOf(ev), "201 for user %s answers active %v, sent %v", id, got, uc.active)
		}
		w.users = append(w.users, u)
		return u
	case ev.res.status == 409:
		m.claimFailed(uc.h, ev.e)
		w.check409(ev, uc.h.key, uc.h)
	case is4xx(ev) && uc.long != "":
		m.claimFailed(uc.h, ev.e) // an over-long value refused: fine
	default:
		m.claimUnknown(uc.h)
		w.unexpected(ev, "201 or 409")
	}
	return nil
}

func (w *worker) createUser() {
	uc := w.prepareCreate(w.userIdent(), "create user")
	uc.exec()
	uc.finish()
}

// recreateUser creates a user under the name of one this worker deleted.
func (w *worker) recreateUser() {
	gone := w.gone[w.rng.IntN(len(w.gone))]
	uc := w.prepareCreate(gone.nameID, "re-create deleted "+short(gone.id)+" as")
	uc.exec()
	uc.finish()
}

// raceCreate sends two spellings of one new shared name at once, to both
// replicas when there are two: at most one may get a 201.
func (w *worker) raceCreate() {
	id := ident{prefix: "shared", base: w.rng.IntN(len(nameBases)), n: 10 + w.rng.IntN(6)}
	a, b := w.prepareCreate(id, "race create"), w.prepareCreate(id, "race create")
	var wg sync.WaitGroup
	for _, uc := range []*userCreate{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); uc.exec() }()
	}
	wg.Wait()
	a.finish()
	b.finish()
}

func (w *worker) patch(kind, id, what string, ifMatch string, rep *replica, ops ...any) *event {
	body := map[string]any{"schemas": []string{patchOpURN}, "Operations": ops}
	return w.m.send(w.c, w, rep, what, request{method: "PATCH", path: "/" + kind + "/" + id, body: body, ifMatch: ifMatch}, id)
}

func op(name, path string, value any) map[string]any {
	o := map[string]any{"op": name}
	if path != "" {
		o["path"] = path
	}
	if value != nil {
		o["value"] = value
	}
	return o
}

// setVersion records a user's new version from an answer.
func (u *mUser) setVersion(ev *event) {
	if ev.res.etag != "" && ev.res.etag != u.etag {
		u.stale, u.etag = u.etag, ev.res.etag
	}
	u.last = ev.rep
}

func (w *worker) pickUser(f func(*mUser) bool) *mUser {
	var c []*mUser
	for _, u := range w.users {
		if f == nil || f(u) {
			c = append(c, u)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[w.rng.IntN(len(c))]
}

// setActive sends Entra's deactivation (or re-activation) PATCH.
func (w *worker) setActive(u *mUser, active bool) {
	value := map[bool]string{true: "True", false: "False"}[active]
	ev := w.patch("Users", u.id, fmt.Sprintf("set active=%s on %s %q", value, short(u.id), u.userName), "", nil,
		op("Replace", "active", value))
	if is2xx(ev) {
		u.active = active
		u.setVersion(ev)
		return
	}
	w.unexpected(ev, "204")
	w.taintUser(u)
}

// patchAttr replaces the work email or adds a phone number, now and then
// longer than the database column.
func (w *worker) patchAttr(u *mUser) {
	long := w.rng.IntN(4) == 0
	var o map[string]any
	what := ""
	switch w.rng.IntN(4) {
	case 0:
		v := fmt.Sprintf("w%d.%d@mail.example.test", w.id, w.next())
		if long {
			v = longEmail
		}
		o, what = op("Replace", `emails[type eq "work"].value`, v), "replace work email"
	case 1:
		v := fmt.Sprintf("+1 425 555 %04d", w.next())
		if long {
			v = longPhone
		}
		o, what = op("Add", "phoneNumbers", []any{map[string]any{"type": "mobile", "value": v}}), "add mobile phone"
	case 2:
		v := fmt.Sprintf("+1 425 556 %04d", w.next())
		if long {
			v = longPhone
		}
		o, what = op("Add", `phoneNumbers[type eq "work"].value`, v), "add work phone"
	default:
		v := fmt.Sprintf("Agent %d", w.next())
		if long {
			v = longTitle
		}
		o, what = op("Replace", "title", v), "replace title"
	}
	if long {
		what += " (long)"
	}
	ev := w.patch("Users", u.id, fmt.Sprintf("%s of %s", what, short(u.id)), "", nil, o)
	switch {
	case is2xx(ev):
		u.setVersion(ev)
	case is4xx(ev) && long:
	default:
		w.unexpected(ev, "204")
		w.taintUser(u)
	}
}

// rename gives u the name id (PATCH userName in Entra's or the no-path
// form, or a PUT); it reports whether it was acknowledged.
func (w *worker) rename(u *mUser, id ident, what string) bool {
	m := w.m
	name := id.render(w.rng, "example.test")
	key := userKey(name)
	same := key == u.hold.key
	h := u.hold
	if !same {
		h = m.claim(key, u.id, name, m.tick())
		m.releasing(u.hold, m.tick())
	}
	var ev *event
	label := fmt.Sprintf("%s: %s %q -> %q", what, short(u.id), u.userName, name)
	active := u.active
	switch w.rng.IntN(3) {
	case 0:
		ev = w.patch("Users", u.id, label, "", nil, op("Replace", "userName", name))
	case 1:
		ev = w.patch("Users", u.id, label+" (no path)", "", nil, op("replace", "", map[string]any{"userName": name}))
	default:
		var act any
		if w.rng.IntN(3) > 0 {
			active = w.rng.IntN(4) > 0
			act = boolValue(w.rng, active)
		}
		ifMatch := ""
		if w.rng.IntN(2) == 0 {
			ifMatch = u.etag
		}
		ev = w.m.send(w.c, w, nil, label+" (PUT)", request{method: "PUT", path: "/Users/" + u.id,
			body: w.userBody(name, act, ""), ifMatch: ifMatch}, u.id)
	}
	w.m.addRefs(ev, key, u.hold.key)
	switch {
	case is2xx(ev):
		if !same {
			m.claimed(h, u.id, m.tick())
			m.released(u.hold, m.tick())
			u.hold = h
		}
		m.mu.Lock()
		h.name, u.userName, u.nameID, u.active = name, name, id, active
		m.mu.Unlock()
		u.setVersion(ev)
		return true
	case ev.res.status == 409:
		if !same {
			m.claimFailed(h, ev.e)
			m.releaseFailed(u.hold)
		}
		w.check409(ev, key, u.hold)
	default:
		if !same {
			m.claimUnknown(h)
		}
		w.unexpected(ev, "2xx or 409")
		w.taintUser(u)
	}
	return false
}

func (w *worker) renameUser() {
	u := w.pickUser(nil)
	id := w.userIdent()
	if w.rng.IntN(4) == 0 {
		id = u.nameID // another spelling of its own name: always allowed
	}
	w.rename(u, id, "rename")
}

// swap exchanges the names of two users as an identity provider does:
// A x->tmp, B y->x, A tmp->y.
func (w *worker) swap() {
	a := w.pickUser(nil)
	b := w.pickUser(func(u *mUser) bool { return u != a })
	if b == nil {
		w.createUser()
		return
	}
	x, y := a.nameID, b.nameID
	if w.rename(a, w.freshIdent(), "swap 1/3") && w.rename(b, x, "swap 2/3") {
		w.rename(a, y, "swap 3/3")
	}
}

// putUser replaces a user with the same name spelled differently, maybe
// a new active, maybe an over-long field, maybe If-Match.
func (w *worker) putUser(u *mUser) {
	name := u.nameID.render(w.rng, "example.test")
	long := ""
	if w.rng.IntN(4) == 0 {
		long = []string{"phone", "email", "title"}[w.rng.IntN(3)]
	}
	active := u.active
	var act any
	if w.rng.IntN(3) > 0 {
		active = w.rng.IntN(3) > 0
		act = boolValue(w.rng, active)
	}
	ifMatch := ""
	if w.rng.IntN(2) == 0 {
		ifMatch = u.etag
	}
	ev := w.m.send(w.c, w, nil, fmt.Sprintf("PUT %s as %q active=%v long=%q", short(u.id), name, act, long),
		request{method: "PUT", path: "/Users/" + u.id, body: w.userBody(name, act, long), ifMatch: ifMatch}, u.id, u.hold.key)
	switch {
	case is2xx(ev):
		w.m.mu.Lock()
		u.userName, u.active, u.hold.name = name, active, name
		w.m.mu.Unlock()
		u.setVersion(ev)
	case is4xx(ev) && long != "":
	case ev.res.status == 409:
		w.check409(ev, u.hold.key, u.hold)
	default:
		w.unexpected(ev, "200")
		w.taintUser(u)
	}
}

// staleIfMatch sends a write with a version the user had before: 412.
func (w *worker) staleIfMatch(u *mUser) {
	var ev *event
	if w.rng.IntN(2) == 0 {
		ev = w.patch("Users", u.id, fmt.Sprintf("deactivate %s with its old version", short(u.id)), u.stale, nil,
			op("Replace", "active", "False"))
	} else {
		ev = w.m.send(w.c, w, nil, fmt.Sprintf("DELETE %s with its old version", short(u.id)),
			request{method: "DELETE", path: "/Users/" + u.id, ifMatch: u.stale}, u.id)
	}
	switch {
	case ev.res.status == 412:
	case is2xx(ev):
		w.m.fail("I5", w.m.refsOf(ev), "a write with If-Match %s, an old version of user %s (now %s), succeeded: %s",
			u.stale, u.id, u.etag, ascii(ev.what))
		w.taintUser(u)
	default:
		w.unexpected(ev, "412")
		w.taintUser(u)
	}
}

// raceUser sends two PATCHes that both change the user, with the same,
// current If-Match, at once: at most one may succeed.
func (w *worker) raceUser(u *mUser) {
	if u.etag == "" {
		w.putUser(u)
		return
	}
	r1, r2 := w.c.acquire(w.rng), w.c.acquire(w.rng)
	etag := u.etag
	email := fmt.Sprintf("w%d.%d@mail.example.test", w.id, w.next())
	flip := map[bool]string{true: "True", false: "False"}[!u.active]
	var e1, e2 *event
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e1 = w.patch("Users", u.id, fmt.Sprintf("race: set active=%s on %s with If-Match", flip, short(u.id)), etag, r1,
			op("Replace", "active", flip))
	}()
	go func() {
		defer wg.Done()
		e2 = w.patch("Users", u.id, fmt.Sprintf("race: replace email of %s with If-Match", short(u.id)), etag, r2,
			op("Replace", `emails[type eq "work"].value`, email))
	}()
	wg.Wait()
	for _, ev := range []*event{e1, e2} {
		if !is2xx(ev) && ev.res.status != 412 {
			w.unexpected(ev, "204 or 412")
			w.taintUser(u)
			return
		}
	}
	if is2xx(e1) && is2xx(e2) {
		w.m.fail("I5", w.m.refsOf(e1, w.m.refsOf(e2)...), "two PATCHes of user %s with the same If-Match %s both succeeded (#%d, #%d)", u.id, etag, e1.n, e2.n)
	}
	if is2xx(e1) {
		u.active = !u.active
		u.setVersion(e1)
	}
	if is2xx(e2) {
		u.setVersion(e2)
	}
	if is2xx(e1) && is2xx(e2) {
		u.etag = "" // which version is last is unknown
	}
}

func (w *worker) deleteUser(u *mUser) {
	m := w.m
	m.releasing(u.hold, m.tick())
	ifMatch := ""
	if w.rng.IntN(3) == 0 {
		ifMatch = u.etag
	}
	ev := m.send(w.c, w, nil, fmt.Sprintf("DELETE %s %q", short(u.id), u.userName),
		request{method: "DELETE", path: "/Users/" + u.id, ifMatch: ifMatch}, u.id, u.hold.key)
	if !is2xx(ev) {
		w.unexpected(ev, "204")
		w.taintUser(u)
		return
	}
	m.released(u.hold, m.tick())
	m.mu.Lock()
	u.deleted = true
	// The user controller takes a deleted user out of its groups.
	for _, g := range w.groups {
		delete(g.members, u.id)
	}
	m.mu.Unlock()
	w.users = slices.DeleteFunc(w.users, func(x *mUser) bool { return x == u })
	w.gone = append(w.gone, u)
}

// lookup filters on another spelling of a user's name on the replica that
// made its last write (which answers only once its cache holds the write):
// that user must come back. Others may come too: this replica's cache may
// not have seen yet a rename made on the other one (two users really
// sharing the name are caught as I2 elsewhere).
func (w *worker) lookup(u *mUser) {
	if u.last == nil || !w.c.acquireThis(u.last) {
		w.createUser()
		return
	}
	spelling := u.nameID.render(w.rng, "example.test")
	path := "/Users?filter=" + url.QueryEscape(`userName eq "`+spelling+`"`)
	ev := w.m.send(w.c, w, u.last, fmt.Sprintf("lookup %s %q as %q", short(u.id), u.userName, spelling),
		request{method: "GET", path: path}, u.id, u.hold.key)
	if ev.res.status != 200 {
		w.unexpected(ev, "200")
		return
	}
	ids := resourceIDs(ev.res.doc)
	if !slices.Contains(ids, u.id) {
		w.m.fail("I2", w.m.refsOf(ev), "filter userName eq %+q finds %v, not user %s (%+q) whose name it spells differently",
			spelling, ids, u.id, u.userName)
	}
}

// resourceIDs lists the ids of a list response's Resources.
func resourceIDs(doc map[string]any) []string {
	list, _ := doc["Resources"].([]any)
	var ids []string
	for _, r := range list {
		if d, ok := r.(map[string]any); ok {
			id, _ := d["id"].(string)
			ids = append(ids, id)
		}
	}
	return ids
}

// lookupGroup is lookup for a group, as Entra matches groups:
// displayName eq, members excluded.
func (w *worker) lookupGroup(g *mGroup) {
	if g.last == nil || !w.c.acquireThis(g.last) {
		w.createGroup()
		return
	}
	spelling := g.nameID.render(w.rng, "")
	path := "/Groups?excludedAttributes=members&filter=" + url.QueryEscape(`displayName eq "`+spelling+`"`)
	ev := w.m.send(w.c, w, g.last, fmt.Sprintf("lookup group %s %q as %q", short(g.id), g.displayName, spelling),
		request{method: "GET", path: path}, g.id, g.hold.key)
	if ev.res.status != 200 {
		w.unexpected(ev, "200")
		return
	}
	ids := resourceIDs(ev.res.doc)
	if !slices.Contains(ids, g.id) {
		w.m.fail("I2", w.m.refsOf(ev), "filter displayName eq %+q finds %v, not group %s (%+q) whose name it spells differently",
			spelling, ids, g.id, g.displayName)
	}
}

// ---- groups

func (w *worker) groupIdent() ident {
	if len(w.groups) > 0 && w.rng.IntN(4) == 0 {
		return w.groups[w.rng.IntN(len(w.groups))].nameID
	}
	return w.ident(4)
}

func (w *worker) someUsers(n int, not map[string]bool) []string {
	var ids []string
	for _, i := range w.rng.Perm(len(w.users)) {
		if len(ids) == n {
			break
		}
		if id := w.users[i].id; !not[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

func memberValues(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"value": id}
	}
	return out
}

// createGroup POSTs a group with members; a 201 must hold all of them
// (checked at once with a GET on either replica).
func (w *worker) createGroup() {
	m := w.m
	id := w.groupIdent()
	name := id.render(w.rng, "")
	members := w.someUsers(w.rng.IntN(5), nil)
	key := groupKey(name)
	h := m.claim(key, fmt.Sprintf("create#%d", m.tick()), name, m.tick())
	body := map[string]any{"schemas": []string{groupURN, entraGroupURN}, "displayName": name,
		"externalId": uuid.NewString(), "members": memberValues(members)}
	ev := m.send(w.c, w, nil, fmt.Sprintf("create group %q with %d members", name, len(members)),
		request{method: "POST", path: "/Groups", body: body}, append([]string{key}, members...)...)
	switch {
	case ev.res.status == 201 && ev.res.err == nil:
		gid := ev.res.str("id")
		w.m.addRefs(ev, gid)
		g := &mGroup{id: gid, worker: w.id, nameID: id, displayName: name, members: map[string]bool{}, created: members, hold: h, last: ev.rep}
		for _, u := range members {
			g.members[u] = true
		}
		m.mu.Lock()
		m.groups[gid] = g
		m.mu.Unlock()
		m.claimed(h, gid, m.tick())
		w.groups = append(w.groups, g)
		w.checkCreated(g)
	case ev.res.status == 409:
		m.claimFailed(h, ev.e)
		w.check409(ev, key, h)
	default:
		m.claimUnknown(h)
		w.unexpected(ev, "201 or 409")
	}
}

// checkCreated reads an acknowledged group back: I5, a 201 means every
// member is there.
func (w *worker) checkCreated(g *mGroup) {
	ev := w.m.send(w.c, w, nil, "read back created group "+short(g.id), request{method: "GET", path: "/Groups/" + g.id}, g.id)
	if ev.res.status != 200 {
		w.m.fail("I5", w.m.refsOf(ev), "group %s was created (201) but reading it answers %s", g.id, statusText(ev.res))
		return
	}
	got := map[string]bool{}
	list, _ := ev.res.doc["members"].([]any)
	for _, el := range list {
		if d, ok := el.(map[string]any); ok {
			id, _ := d["value"].(string)
			got[id] = true
		}
	}
	var missing []string
	for _, u := range g.created {
		if !got[u] {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 || len(got) != len(g.created) {
		w.m.fail("I5", w.m.refsOf(ev), "group %s was created (201) with members %v, but reads back with %d members (missing %v)",
			g.id, g.created, len(got), missing)
	}
	if dn, _ := ev.res.doc["displayName"].(string); dn != g.displayName {
		w.m.fail("I5", w.m.refsOf(ev), "group %s was created as %+q, reads back as %+q", g.id, g.displayName, dn)
	}
}

func (w *worker) pickGroup() *mGroup { return w.groups[w.rng.IntN(len(w.groups))] }

func (w *worker) addMembers(g *mGroup) {
	ids := w.someUsers(1+w.rng.IntN(3), g.members)
	if len(ids) == 0 {
		w.createUser()
		return
	}
	name := []string{"Add", "add"}[w.rng.IntN(2)]
	ev := w.patch("Groups", g.id, fmt.Sprintf("add %d members to %s", len(ids), short(g.id)), "", nil,
		op(name, "members", memberValues(ids)))
	w.m.addRefs(ev, ids...)
	if !is2xx(ev) {
		w.unexpected(ev, "204")
		w.taintGroup(g)
		return
	}
	w.m.mu.Lock()
	for _, id := range ids {
		g.members[id] = true
	}
	w.m.mu.Unlock()
}

func (w *worker) removeMember(g *mGroup) {
	var ids []string
	for id := range g.members {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		w.addMembers(g)
		return
	}
	slices.Sort(ids)
	id := ids[w.rng.IntN(len(ids))]
	var ev *event
	if w.rng.IntN(2) == 0 {
		ev = w.patch("Groups", g.id, fmt.Sprintf("remove member %s from %s (Entra)", short(id), short(g.id)), "", nil,
			op("Remove", "members", []any{map[string]any{"$ref": nil, "value": id}}))
	} else {
		ev = w.patch("Groups", g.id, fmt.Sprintf("remove member %s from %s (filter)", short(id), short(g.id)), "", nil,
			op("remove", `members[value eq "`+id+`"]`, nil))
	}
	w.m.addRefs(ev, id)
	if !is2xx(ev) {
		w.unexpected(ev, "204")
		w.taintGroup(g)
		return
	}
	w.m.mu.Lock()
	delete(g.members, id)
	w.m.mu.Unlock()
}

func (w *worker) renameGroup(g *mGroup) {
	m := w.m
	id := w.groupIdent()
	if w.rng.IntN(3) == 0 {
		id = g.nameID
	}
	name := id.render(w.rng, "")
	key := groupKey(name)
	same := key == g.hold.key
	h := g.hold
	if !same {
		h = m.claim(key, g.id, name, m.tick())
		m.releasing(g.hold, m.tick())
	}
	ev := w.patch("Groups", g.id, fmt.Sprintf("rename group %s %q -> %q", short(g.id), g.displayName, name), "", nil,
		op("Replace", "displayName", name))
	w.m.addRefs(ev, key, g.hold.key)
	switch {
	case is2xx(ev):
		if !same {
			m.claimed(h, g.id, m.tick())
			m.released(g.hold, m.tick())
			g.hold = h
		}
		m.mu.Lock()
		h.name, g.displayName, g.nameID = name, name, id
		m.mu.Unlock()
		g.last = ev.rep
	case ev.res.status == 409:
		if !same {
			m.claimFailed(h, ev.e)
			m.releaseFailed(g.hold)
		}
		w.check409(ev, key, g.hold)
	default:
		if !same {
			m.claimUnknown(h)
		}
		w.unexpected(ev, "204 or 409")
		w.taintGroup(g)
	}
}

func (w *worker) deleteGroup(g *mGroup) {
	m := w.m
	m.releasing(g.hold, m.tick())
	ev := m.send(w.c, w, nil, fmt.Sprintf("DELETE group %s %q", short(g.id), g.displayName),
		request{method: "DELETE", path: "/Groups/" + g.id}, g.id, g.hold.key)
	if !is2xx(ev) {
		w.unexpected(ev, "204")
		w.taintGroup(g)
		return
	}
	m.released(g.hold, m.tick())
	m.mu.Lock()
	g.deleted = true
	m.mu.Unlock()
	w.groups = slices.DeleteFunc(w.groups, func(x *mGroup) bool { return x == g })
}

// groupVersion reads a group's current ETag.
func (w *worker) groupVersion(g *mGroup) (string, bool) {
	ev := w.m.send(w.c, w, nil, "read version of group "+short(g.id),
		request{method: "GET", path: "/Groups/" + g.id + "?excludedAttributes=members"}, g.id)
	if ev.res.status != 200 || ev.res.etag == "" {
		w.unexpected(ev, "200 with an ETag")
		return "", false
	}
	return ev.res.etag, true
}

// raceMembers sends two member PATCHes with the same, current If-Match at
// once: at most one may succeed.
func (w *worker) raceMembers(g *mGroup) {
	ids := w.someUsers(2, g.members)
	if len(ids) < 2 {
		w.createUser()
		return
	}
	etag, ok := w.groupVersion(g)
	if !ok {
		return
	}
	reps := []*replica{w.c.acquire(w.rng), w.c.acquire(w.rng)}
	evs := make([]*event, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs[i] = w.patch("Groups", g.id, fmt.Sprintf("race: add %s to %s with If-Match", short(ids[i]), short(g.id)),
				etag, reps[i], op("Add", "members", memberValues(ids[i:i+1])))
			w.m.addRefs(evs[i], ids[i])
		}()
	}
	wg.Wait()
	won := 0
	for i, ev := range evs {
		switch {
		case is2xx(ev):
			won++
			w.m.mu.Lock()
			g.members[ids[i]] = true
			w.m.mu.Unlock()
		case ev.res.status == 412:
		default:
			w.unexpected(ev, "204 or 412")
			w.taintGroup(g)
			return
		}
	}
	if won > 1 {
		w.m.fail("I5", w.m.refsOf(evs[0], ids[1]), "two member PATCHes of group %s with the same If-Match %s both succeeded (#%d, #%d)",
			g.id, etag, evs[0].n, evs[1].n)
	}
}

// staleMembers changes the members, then sends a PATCH with the version
// read before: 412, members included in what If-Match guards.
func (w *worker) staleMembers(g *mGroup) {
	ids := w.someUsers(1, g.members)
	if len(ids) == 0 {
		w.createUser()
		return
	}
	etag, ok := w.groupVersion(g)
	if !ok {
		return
	}
	ev := w.patch("Groups", g.id, fmt.Sprintf("add %s to %s", short(ids[0]), short(g.id)), "", nil,
		op("Add", "members", memberValues(ids)))
	w.m.addRefs(ev, ids[0])
	if !is2xx(ev) {
		w.unexpected(ev, "204")
		w.taintGroup(g)
		return
	}
	w.m.mu.Lock()
	g.members[ids[0]] = true
	w.m.mu.Unlock()
	ev = w.patch("Groups", g.id, fmt.Sprintf("remove %s from %s with the version before the add", short(ids[0]), short(g.id)),
		etag, nil, op("Remove", "members", memberValues(ids)))
	w.m.addRefs(ev, ids[0])
	switch {
	case ev.res.status == 412:
	case is2xx(ev):
		w.m.fail("I5", w.m.refsOf(ev), "group %s: a member PATCH with If-Match %s, read before a member change, succeeded", g.id, etag)
		w.m.mu.Lock()
		delete(g.members, ids[0])
		w.m.mu.Unlock()
	default:
		w.unexpected(ev, "412")
		w.taintGroup(g)
	}
}

// ---- client mistakes: each must get a 4xx and change nothing.

// mistakeTry is one client mistake to send.
type mistakeTry struct {
	what string
	req  request
	refs []string
	// skipped: not a mistake any more. A member id that is no user of
	// the tenant is skipped with a Warning event and the rest of the
	// request applies (issue 15, RFC 7644 leniency): a 2xx is right,
	// and the group keeps the members it had.
	skipped bool
}

func (w *worker) mistake() {
	n := w.next()
	name := fmt.Sprintf("w%d-mistake%d@example.test", w.id, n)
	tries := w.mistakes(name, n)
	tr := tries[w.rng.IntN(len(tries))]
	ev := w.m.send(w.c, w, nil, "mistake: "+tr.what, tr.req, tr.refs...)
	w.judgeMistake(tr, ev)
}

// mistakes are the mistakes that can be made now: some need a user, a
// deleted user or a group of the worker's.
func (w *worker) mistakes(name string, n int) []mistakeTry {
	tries := []mistakeTry{
		{"POST truncated JSON", request{method: "POST", path: "/Users", body: `{"userName":"` + name + `",`}, nil, false},
		{"POST without userName", request{method: "POST", path: "/Users", body: map[string]any{"schemas": []string{userURN}, "active": true}}, nil, false},
		{"POST active \"maybe\"", request{method: "POST", path: "/Users", body: map[string]any{"schemas": []string{userURN}, "userName": name, "active": "maybe"}}, []string{userKey(name)}, false},
		{"malformed filter", request{method: "GET", path: "/Users?filter=" + url.QueryEscape(`userName eq`)}, nil, false},
		{"group with a member that does not exist", request{method: "POST", path: "/Groups", body: map[string]any{"schemas": []string{groupURN},
			"displayName": fmt.Sprintf("w%d-mistake-team%d", w.id, n), "members": memberValues([]string{uuid.NewString()})}}, []string{groupKey(fmt.Sprintf("w%d-mistake-team%d", w.id, n))}, true},
	}
	if u := w.pickUser(nil); u != nil {
		tries = append(tries,
			mistakeTry{"PATCH op Frobnicate on " + short(u.id), request{method: "PATCH", path: "/Users/" + u.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Frobnicate", "active", "False")}}}, []string{u.id}, false},
			mistakeTry{"PATCH active \"maybe\" on " + short(u.id), request{method: "PATCH", path: "/Users/" + u.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Replace", "active", "maybe")}}}, []string{u.id}, false},
			mistakeTry{"PUT without userName on " + short(u.id), request{method: "PUT", path: "/Users/" + u.id,
				body: map[string]any{"schemas": []string{userURN}, "active": false}}, []string{u.id}, false})
	}
	if len(w.gone) > 0 {
		u := w.gone[w.rng.IntN(len(w.gone))]
		tries = append(tries,
			mistakeTry{"PATCH deleted user " + short(u.id), request{method: "PATCH", path: "/Users/" + u.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Replace", "active", "True")}}}, []string{u.id}, false},
			mistakeTry{"DELETE deleted user " + short(u.id), request{method: "DELETE", path: "/Users/" + u.id}, []string{u.id}, false})
		if len(w.groups) > 0 {
			g := w.pickGroup()
			tries = append(tries, mistakeTry{"add deleted user " + short(u.id) + " to " + short(g.id), request{method: "PATCH", path: "/Groups/" + g.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Add", "members", memberValues([]string{u.id}))}}}, []string{g.id, u.id}, true})
		}
	}
	if len(w.groups) > 0 {
		g := w.pickGroup()
		other := w.pickGroup()
		tries = append(tries,
			mistakeTry{"add unknown member to " + short(g.id), request{method: "PATCH", path: "/Groups/" + g.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Add", "members", memberValues([]string{uuid.NewString()}))}}}, []string{g.id}, true},
			mistakeTry{"add group " + short(other.id) + " as a member of " + short(g.id), request{method: "PATCH", path: "/Groups/" + g.id,
				body: map[string]any{"schemas": []string{patchOpURN}, "Operations": []any{op("Add", "members", memberValues([]string{other.id}))}}}, []string{g.id, other.id}, true})
	}
	return tries
}

// judgeMistake: a mistake gets a 4xx and changes nothing; a skipped member
// gets a 2xx. Whatever an accepted mistake changed is no longer known.
func (w *worker) judgeMistake(tr mistakeTry, ev *event) {
	if tr.skipped && is4xx(ev) {
		w.m.fail("unexpected", w.m.refsOf(ev), "a member the server skips was refused: %s -> %s", ascii(tr.what), statusText(ev.res))
	}
	if is2xx(ev) && tr.skipped {
		// The group keeps the members it had, which the end state checks;
		// a group created this way (with no member) is not the model's.
		for _, ref := range tr.refs {
			if strings.Contains(ref, ":") {
				w.m.mu.Lock()
				w.m.maybe[ref] = true
				w.m.mu.Unlock()
			}
		}
		return
	}
	if is2xx(ev) {
		w.m.fail("unexpected", w.m.refsOf(ev), "a client mistake was accepted: %s -> %s", ascii(tr.what), statusText(ev.res))
		// Whatever it changed is no longer known.
		for _, ref := range tr.refs {
			for _, u := range w.users {
				if u.id == ref {
					w.taintUser(u)
				}
			}
			for _, g := range w.groups {
				if g.id == ref {
					w.taintGroup(g)
				}
			}
			if strings.Contains(ref, ":") {
				w.m.mu.Lock()
				w.m.maybe[ref] = true
				w.m.mu.Unlock()
			}
		}
	}
	// 4xx: fine; 5xx was reported by send.
}

// ---- the mix

// step runs one operation, drawn with weights that keep a few users and
// groups around; renames and swaps weigh more while the database is down,
// when the controllers will only see where they ended.
func (w *worker) step() {
	down := w.c.dbDown.Load()
	type choice struct {
		weight int
		run    func()
	}
	nu, ng := len(w.users), len(w.groups)
	swapWeight := 4
	if down {
		swapWeight = 16
	}
	choices := []choice{
		{12, w.createUser},
		{3, w.raceCreate},
		{5, w.mistake},
		{map[bool]int{true: 8, false: 0}[nu >= 2], w.createGroup},
	}
	if nu < 3 {
		choices[0].weight = 40
	}
	if len(w.gone) > 0 {
		choices = append(choices, choice{4, w.recreateUser})
	}
	if nu > 0 {
		u := w.pickUser(nil)
		choices = append(choices,
			choice{8, func() { w.setActive(u, false) }},
			choice{3, func() { w.setActive(u, true) }},
			choice{8, func() { w.patchAttr(u) }},
			choice{8, w.renameUser},
			choice{4, func() { w.putUser(u) }},
			choice{4, func() { w.deleteUser(u) }},
			choice{4, func() { w.lookup(u) }},
			choice{2, func() { w.raceUser(u) }},
		)
		if u.stale != "" {
			choices = append(choices, choice{2, func() { w.staleIfMatch(u) }})
		}
	}
	if nu > 1 {
		choices = append(choices, choice{swapWeight, w.swap})
	}
	if ng > 0 {
		g := w.pickGroup()
		choices = append(choices,
			choice{6, func() { w.addMembers(g) }},
			choice{4, func() { w.removeMember(g) }},
			choice{4, func() { w.renameGroup(g) }},
			choice{2, func() { w.deleteGroup(g) }},
			choice{3, func() { w.lookupGroup(g) }},
			choice{3, func() { w.raceMembers(g) }},
			choice{2, func() { w.staleMembers(g) }},
		)
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	pick := w.rng.IntN(total)
	for _, c := range choices {
		if pick < c.weight {
			c.run()
			return
		}
		pick -= c.weight
	}
}
