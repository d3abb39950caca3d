package server_test

import (
	"testing"
)

// tenancyKit is TestTenancy's two tenants on one replica: B's user ub (a
// member of B's group gb), and A's user ua and group ga with the same
// userName and displayName in other cases.
type tenancyKit struct {
	t                      *testing.T
	r                      *replica
	tokA, tokB             string
	ubID, gbID, uaID, gaID string
}

// TestTenancy: the token's namespace is the tenant. One replica's cache
// sees both namespaces; tenant A reaches nothing of tenant B (point 7).
func TestTenancy(t *testing.T) {
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	r := startReplica(t, nsA, nsB)
	k := &tenancyKit{t: t, r: r, tokA: issueToken(t, nsA, "tenant-a", r), tokB: issueToken(t, nsB, "tenant-b", r)}
	tokA, tokB := k.tokA, k.tokB

	// B's objects. A has a user with the same userName and a group with the
	// same displayName: uniqueness is per tenant.
	ub := expect(t, r.do(t, tokB, "POST", "/Users", `{"userName":"shared@contoso.test","externalId":"ext-b","displayName":"B user"}`), 201)
	k.ubID = ub.str("id")
	gb := expect(t, r.do(t, tokB, "POST", "/Groups", `{"displayName":"Shared","externalId":"gext-b","members":[{"value":"`+k.ubID+`"}]}`), 201)
	k.gbID = gb.str("id")
	k.uaID = expect(t, r.do(t, tokA, "POST", "/Users", `{"userName":"SHARED@contoso.test","externalId":"ext-a"}`), 201).str("id")
	k.gaID = expect(t, r.do(t, tokA, "POST", "/Groups", `{"displayName":"shared"}`), 201).str("id")
	ubBefore := expect(t, r.do(t, tokB, "GET", "/Users/"+k.ubID, nil), 200)
	gbBefore := expect(t, r.do(t, tokB, "GET", "/Groups/"+k.gbID, nil), 200)

	k.readsByA()
	k.writesByA()
	k.membersFromB()

	// B's objects are unchanged.
	ubAfter := expect(t, r.do(t, tokB, "GET", "/Users/"+k.ubID, nil), 200)
	gbAfter := expect(t, r.do(t, tokB, "GET", "/Groups/"+k.gbID, nil), 200)
	if ubAfter.str("meta.version") != ubBefore.str("meta.version") || string(ubAfter.raw) != string(ubBefore.raw) {
		t.Errorf("B's user changed:\n%s\n%s", ubBefore.raw, ubAfter.raw)
	}
	if gbAfter.str("meta.version") != gbBefore.str("meta.version") || string(gbAfter.raw) != string(gbBefore.raw) {
		t.Errorf("B's group changed:\n%s\n%s", gbBefore.raw, gbAfter.raw)
	}
	// And B sees only its own, with its user's groups computed in B.
	if res := expect(t, r.do(t, tokB, "GET", "/Users", nil), 200); res.total() != 1 || res.resources()[0]["id"] != k.ubID {
		t.Errorf("B's list: %s", res)
	}
	if g := groupsOf(ubAfter); len(g) != 1 || !g[k.gbID] {
		t.Errorf("B's user groups: %s", ubAfter.raw)
	}
}

// readsByA: A's reads by B's ids are 404; filters, lists and .search see
// only A's objects.
func (k *tenancyKit) readsByA() {
	t, r, tokA, ubID, gbID := k.t, k.r, k.tokA, k.ubID, k.gbID
	for _, path := range []string{"/Users/" + ubID, "/Groups/" + gbID, "/Users/" + ubID + "?attributes=userName"} {
		expect(t, r.do(t, tokA, "GET", path, nil), 404, "")
	}
	for _, f := range []struct{ path, want string }{
		{"/Users?filter=" + urlq(`userName eq "shared@contoso.test"`), k.uaID},
		{"/Users?filter=" + urlq(`id eq "`+ubID+`"`), ""},
		{"/Users?filter=" + urlq(`externalId eq "ext-b"`), ""},
		{"/Users?filter=" + urlq(`displayName eq "B user"`), ""},
		{"/Users?filter=" + urlq(`userName sw "shared"`), k.uaID},
		{"/Users", k.uaID},
		{"/Groups", k.gaID},
		{"/Groups?filter=" + urlq(`displayName eq "Shared"`), k.gaID},
		{"/Groups?filter=" + urlq(`externalId eq "gext-b"`), ""},
		{"/Groups?filter=" + urlq(`id eq "`+gbID+`"`), ""},
		{"/Groups?filter=" + urlq(`members eq "`+ubID+`"`), ""},
		{"/Groups?filter=" + urlq(`id eq "`+gbID+`" and members eq "`+ubID+`"`), ""},
	} {
		res := expect(t, r.do(t, tokA, "GET", f.path, nil), 200)
		rs := res.resources()
		switch {
		case f.want == "" && res.total() != 0:
			t.Errorf("GET %s as A: want nothing, got %s", f.path, res)
		case f.want != "" && (res.total() != 1 || len(rs) != 1 || rs[0]["id"] != f.want):
			t.Errorf("GET %s as A: want only %s, got %s", f.path, f.want, res)
		}
	}
	search := expect(t, r.do(t, tokA, "POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"externalId eq \"ext-b\""}`), 200)
	if search.total() != 0 {
		t.Errorf(".search as A found B's user: %s", search)
	}
}

// writesByA: every write by A on B's ids is 404.
func (k *tenancyKit) writesByA() {
	t, r, ubID, gbID := k.t, k.r, k.ubID, k.gbID
	replace := patchOp(`{"op":"replace","path":"displayName","value":"hijacked"}`)
	for _, w := range []struct{ method, path, body string }{
		{"PUT", "/Users/" + ubID, `{"userName":"hijacked@contoso.test"}`},
		{"PATCH", "/Users/" + ubID, replace},
		{"DELETE", "/Users/" + ubID, ""},
		{"PUT", "/Groups/" + gbID, `{"displayName":"hijacked"}`},
		{"PATCH", "/Groups/" + gbID, replace},
		{"PATCH", "/Groups/" + gbID, patchOp(`{"op":"remove","path":"members"}`)},
		{"DELETE", "/Groups/" + gbID, ""},
	} {
		var body any
		if w.body != "" {
			body = w.body
		}
		expect(t, r.do(t, k.tokA, w.method, w.path, body), 404, "")
	}
}

// membersFromB: B's user as a member of A's group is never recorded, for
// every way of adding. The id is skipped (a Warning event names it) and
// the rest of the request applies, so that one stale id cannot block a
// batch (docs/conformance.md, issue 15 item 4). Nor is B's group.
func (k *tenancyKit) membersFromB() {
	t, r, tokA, ubID, gaID := k.t, k.r, k.tokA, k.ubID, k.gaID
	for _, body := range []string{
		patchOp(`{"op":"add","path":"members","value":` + memberValues(ubID) + `}`),
		patchOp(`{"op":"replace","path":"members","value":` + memberValues(k.uaID, ubID) + `}`),
		patchOp(`{"op":"add","value":{"members":` + memberValues(ubID) + `}}`),
	} {
		expect(t, r.do(t, tokA, "PATCH", "/Groups/"+gaID, body), 204)
	}
	if got := r.members(t, tokA, gaID); !sameIDs(got, []string{k.uaID}) {
		t.Errorf("A's group: want only A's user, got %v", got)
	}
	expect(t, r.do(t, tokA, "PUT", "/Groups/"+gaID, `{"displayName":"shared","members":[{"value":"`+ubID+`"}]}`), 200)
	sneaky := expect(t, r.do(t, tokA, "POST", "/Groups", `{"displayName":"Sneaky","members":[{"value":"`+ubID+`"}]}`), 201)
	// Nor B's group as a member (nested or not).
	expect(t, r.do(t, tokA, "PATCH", "/Groups/"+gaID, patchOp(`{"op":"add","path":"members","value":`+memberValues(k.gbID)+`}`)), 204)
	if res := expect(t, r.do(t, tokA, "GET", "/Groups/"+gaID, nil), 200); res.body["members"] != nil {
		t.Errorf("A's group got B's member: %s", res.raw)
	}
	if sneaky.body["members"] != nil {
		t.Errorf("a group created with B's member recorded it: %s", sneaky.raw)
	}
}
