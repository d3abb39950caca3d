package server_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// etagKit is TestETags' tenant and the versions seen so far (version ->
// the write that made it): a version must never come back.
type etagKit struct {
	t    *testing.T
	r    *replica
	tok  string
	seen map[string]string
}

// TestETags: meta.version equals the ETag header, and both change on every
// write, membership changes included, and on nothing else (point 5).
func TestETags(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	k := &etagKit{t: t, r: r, tok: issueToken(t, ns, "entra", r), seen: map[string]string{}}
	k.users()
	k.groups()
}

// check fails unless res carries a weak version equal to its ETag, one not
// seen before; it returns the version.
func (k *etagKit) check(what string, res response) string {
	k.t.Helper()
	v := res.str("meta.version")
	if v == "" || res.header.Get("ETag") != v || !strings.HasPrefix(v, `W/"`) {
		k.t.Fatalf("%s: meta.version %q, ETag %q", what, v, res.header.Get("ETag"))
	}
	if prev, ok := k.seen[v]; ok {
		k.t.Errorf("%s: version %s already seen after %s", what, v, prev)
	}
	k.seen[v] = what
	return v
}

// get reads path, whose ETag must be its meta.version.
func (k *etagKit) get(path string) response {
	k.t.Helper()
	res := expect(k.t, k.r.do(k.t, k.tok, "GET", path, nil), 200)
	if res.header.Get("ETag") != res.str("meta.version") {
		k.t.Fatalf("GET %s: ETag %q, meta.version %q", path, res.header.Get("ETag"), res.str("meta.version"))
	}
	return res
}

// users: create, PATCH, PUT and deactivation move the version (and
// lastModified), no-op writes keep it, and DELETE honours If-Match.
func (k *etagKit) users() {
	t, r, tok, check, get := k.t, k.r, k.tok, k.check, k.get
	created := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"etag@contoso.test"}`), 201)
	uid := created.str("id")
	v := check("user create", created)
	if get("/Users/"+uid).str("meta.version") != v {
		t.Errorf("GET after create: other version")
	}
	tag := expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"replace","path":"title","value":"A"}`)))
	v = check("user PATCH", get("/Users/"+uid))
	if tag != v {
		t.Errorf("PATCH answered ETag %s, GET has %s", tag, v)
	}
	v = check("user PUT", expect(t, r.do(t, tok, "PUT", "/Users/"+uid, `{"userName":"etag@contoso.test","title":"B"}`, "If-Match", v), 200))
	// A no-op PATCH and a no-op PUT keep the version.
	if tag := expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"replace","path":"title","value":"B"}`))); tag != v {
		t.Errorf("no-op PATCH changed the version")
	}
	if res := expect(t, r.do(t, tok, "PUT", "/Users/"+uid, `{"userName":"etag@contoso.test","title":"B"}`), 200); res.str("meta.version") != v {
		t.Errorf("no-op PUT changed the version")
	}
	lm := get("/Users/" + uid).str("meta.lastModified")
	time.Sleep(5 * time.Millisecond)
	tag = expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+uid, patchOp(`{"op":"Replace","path":"active","value":"False"}`), "If-Match", v))
	v = check("user deactivate", get("/Users/"+uid))
	if tag != v {
		t.Errorf("PATCH answered ETag %s, GET has %s", tag, v)
	}
	if lm2 := get("/Users/" + uid).str("meta.lastModified"); lm2 <= lm {
		t.Errorf("lastModified did not advance: %s -> %s", lm, lm2)
	}
	expect(t, r.do(t, tok, "DELETE", "/Users/"+uid, nil, "If-Match", `W/"1"`), 412, "")
	expect(t, r.do(t, tok, "DELETE", "/Users/"+uid, nil, "If-Match", v), 204)
}

// groups: every write, including membership, moves the version; no-ops
// keep it; an old version fails If-Match after a change.
func (k *etagKit) groups() {
	t, r, tok, check, get := k.t, k.r, k.tok, k.check, k.get
	m1 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"m1@contoso.test"}`), 201).str("id")
	m2 := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"m2@contoso.test"}`), 201).str("id")
	g := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"ETag group","members":[{"value":"`+m1+`"}]}`), 201)
	gid := g.str("id")
	v := check("group create with a member", g)
	if get("/Groups/"+gid).str("meta.version") != v {
		t.Errorf("GET after group create: other version")
	}
	steps := []struct {
		name, body string
		changes    bool
	}{
		{"rename", patchOp(`{"op":"Replace","path":"displayName","value":"ETag group 2"}`), true},
		{"add member", patchOp(`{"op":"Add","path":"members","value":` + memberValues(m2) + `}`), true},
		{"re-add member", patchOp(`{"op":"Add","path":"members","value":` + memberValues(m2) + `}`), false},
		{"remove member", patchOp(`{"op":"Remove","path":"members","value":` + memberValues(m1) + `}`), true},
		{"remove a non-member", patchOp(`{"op":"Remove","path":"members","value":` + memberValues(m1) + `}`), false},
		{"replace members", patchOp(`{"op":"replace","path":"members","value":` + memberValues(m1, m2) + `}`), true},
		{"same displayName", patchOp(`{"op":"Replace","path":"displayName","value":"ETag group 2"}`), false},
	}
	for _, st := range steps {
		// If-Match with the current version passes, and the old one fails after.
		expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, st.body, "If-Match", v), 204)
		res := get("/Groups/" + gid + "?excludedAttributes=members")
		if st.changes {
			old := v
			v = check("group "+st.name, res)
			expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, st.body, "If-Match", old), 412, "")
		} else if res.str("meta.version") != v {
			t.Errorf("group %s: a no-op changed the version", st.name)
		}
	}
	v = check("group PUT", expect(t, r.do(t, tok, "PUT", "/Groups/"+gid, `{"displayName":"ETag group 3","members":[{"value":"`+m1+`"}]}`, "If-Match", v), 200))
	if members := r.members(t, tok, gid); !sameIDs(members, []string{m1}) {
		t.Errorf("PUT members: %v", members)
	}
	if get("/Groups/"+gid).str("meta.version") != v {
		t.Errorf("the PUT answer's version is not the stored one")
	}
	expect(t, r.do(t, tok, "DELETE", "/Groups/"+gid, nil, "If-Match", `W/"1"`), 412, "")
	expect(t, r.do(t, tok, "DELETE", "/Groups/"+gid, nil, "If-Match", v), 204)
}

// TestLabelsAndEvents: objects carry labels that make kubectl selections
// useful, and SCIM writes are counted in summary events on the ScimToken,
// which carry counts only (point 10).
func TestLabelsAndEvents(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "entra-prod", r)
	ctx := context.Background()

	active := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"active@contoso.test","displayName":"Alice Secret","emails":[{"value":"alice.secret@contoso.test"}]}`), 201).str("id")
	off := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"off@contoso.test","active":"False"}`), 201).str("id")
	later := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"later@contoso.test","active":true}`), 201).str("id")
	expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+later, patchOp(`{"op":"Replace","path":"active","value":"False"}`)))
	put := expect(t, r.do(t, tok, "PUT", "/Users/"+off, `{"userName":"off@contoso.test","title":"still off"}`), 200)
	if put.body["active"] != false {
		t.Errorf("PUT without active keeps it: %s", put.raw)
	}

	if got := selectedUsers(t, ns, map[string]string{scimv1.LabelActive: "false"}); !sameIDs(got, []string{off, later}) {
		t.Errorf("-l %s=false: %v, want %v", scimv1.LabelActive, got, []string{off, later})
	}
	if got := selectedUsers(t, ns, map[string]string{scimv1.LabelActive: "true"}); !sameIDs(got, []string{active}) {
		t.Errorf("-l %s=true: %v", scimv1.LabelActive, got)
	}
	if got := selectedUsers(t, ns, map[string]string{scimv1.LabelToken: "entra-prod"}); len(got) != 3 {
		t.Errorf("-l %s=entra-prod: %v", scimv1.LabelToken, got)
	}
	expectPatched(t, r.do(t, tok, "PATCH", "/Users/"+later, patchOp(`{"op":"Replace","path":"active","value":"True"}`)))
	if got := selectedUsers(t, ns, map[string]string{scimv1.LabelActive: "false"}); !sameIDs(got, []string{off}) {
		t.Errorf("reactivation must flip the label: %v", got)
	}

	gid := expect(t, r.do(t, tok, "POST", "/Groups", `{"displayName":"Secret Project"}`), 201).str("id")
	var g scimv1.ProvisionedGroup
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: gid}, &g); err != nil {
		t.Fatal(err)
	}
	if g.Labels[scimv1.LabelToken] != "entra-prod" {
		t.Errorf("group labels: %v", g.Labels)
	}
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Add","path":"members","value":`+memberValues(active, off)+`}`)), 204)
	for name, s := range shards(t, ns, gid) {
		if s.Labels[scimv1.LabelGroup] != gid {
			t.Errorf("shard %s labels: %v", name, s.Labels)
		}
	}
	expect(t, r.do(t, tok, "PATCH", "/Groups/"+gid, patchOp(`{"op":"Replace","path":"displayName","value":"Secret Project 2"}`)), 204)
	expect(t, r.do(t, tok, "DELETE", "/Groups/"+gid, nil), 204)
	expect(t, r.do(t, tok, "DELETE", "/Users/"+active, nil), 204)

	// One summary event per token and interval counts the writes, without
	// names, addresses or ids.
	checkActivityEvents(t, ns, "entra-prod", []string{"users? created", "users? updated", "users? deleted", "groups? created",
		"group members? added", "groups? updated", "groups? deleted"},
		"@contoso.test", "Alice", "Secret", "alice", active, gid)
}

// selectedUsers lists the ProvisionedUsers of ns that a label selector
// (kubectl get -l) selects.
func selectedUsers(t *testing.T, ns string, sel map[string]string) []string {
	t.Helper()
	var list scimv1.ProvisionedUserList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range list.Items {
		out = append(out, u.Name)
	}
	return out
}

// checkActivityEvents waits until the activity events on the ScimToken
// token count each of want (regular expressions after the count), then
// checks that no activity event carries any of personal and that each is
// a complete Normal event.
func checkActivityEvents(t *testing.T, ns, token string, want []string, personal ...string) {
	ctx := context.Background()
	var events eventsv1.EventList
	eventually(t, 20*time.Second, func() error {
		if err := env.Client.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		var notes []string
		for _, e := range events.Items {
			if e.Reason == repository.EventActivity && e.Regarding.Kind == "ScimToken" && e.Regarding.Name == token {
				notes = append(notes, e.Note)
			}
		}
		all := strings.Join(notes, "\n")
		for _, w := range want {
			if !regexp.MustCompile(`\b[1-9][0-9]* ` + w + `\b`).MatchString(all) {
				return fmt.Errorf("no count of %q in the activity events: %q", w, notes)
			}
		}
		return nil
	})
	for _, e := range events.Items {
		if e.Reason != repository.EventActivity {
			continue
		}
		for _, p := range personal {
			if strings.Contains(e.Note, p) {
				t.Errorf("event note carries personal data or ids (%q): %s", p, e.Note)
			}
		}
		if e.Type != "Normal" || e.ReportingController == "" || e.Action == "" {
			t.Errorf("event %s: type %q controller %q action %q note %q", e.Reason, e.Type, e.ReportingController, e.Action, e.Note)
		}
	}
}
