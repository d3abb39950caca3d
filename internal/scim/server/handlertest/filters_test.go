package handlertest_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// people seeds tenant A with four users, created in this order.
func people(h *harness) (alice, bob, carol, dave string) {
	h.t.Helper()
	alice = h.createUser(map[string]any{
		"userName": "Alice.Smith@example.com", "displayName": "Alice Smith", "title": "Engineer",
		"externalId": "ext-alice", "active": true, "name": map[string]any{"familyName": "Smith", "givenName": "Alice"},
		"emails": []any{map[string]any{"value": "alice@work.example", "type": "work", "primary": true}},
	})
	bob = h.createUser(map[string]any{
		"userName": "bob@example.com", "displayName": "Bob Jones", "externalId": "ext-bob", "active": false,
		"emails": []any{
			map[string]any{"value": "bob@work.example", "type": "work"},
			map[string]any{"value": "bob@home.example", "type": "home"},
		},
	})
	carol = h.createUser(map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User", enterpriseURN},
		"userName": "carol@example.com", "displayName": "Carol King", "title": "Manager",
		enterpriseURN: map[string]any{"department": "Sales", "employeeNumber": "42"},
	})
	dave = h.createUser(map[string]any{"userName": "dave@example.org"})
	return alice, bob, carol, dave
}

func TestUserFilters(t *testing.T) {
	h := start(t, server.Config{})
	people(h)
	const (
		alice = "Alice.Smith@example.com"
		bob   = "bob@example.com"
		carol = "carol@example.com"
		dave  = "dave@example.org"
	)
	for _, tc := range []struct {
		filter string
		want   []string // userNames, in list order
	}{
		{`userName eq "Alice.Smith@example.com"`, []string{alice}},
		{`userName eq "ALICE.SMITH@EXAMPLE.COM"`, []string{alice}}, // userName is caseExact=false
		{`USERNAME Eq "alice.smith@example.com"`, []string{alice}}, // attribute names and operators too
		{`userName co "example.com"`, []string{alice, bob, carol}},
		{`userName sw "B"`, []string{bob}},
		{`userName ew ".ORG"`, []string{dave}},
		{`userName ne "bob@example.com"`, []string{alice, carol, dave}},
		{`title pr`, []string{alice, carol}},
		{`not (title pr)`, []string{bob, dave}},
		{`active eq false`, []string{bob}},
		{`title eq "Engineer" and active eq true`, []string{alice}},
		{`title eq "Manager" or userName sw "dave"`, []string{carol, dave}},
		{`not (userName sw "a" or userName sw "b")`, []string{carol, dave}},
		{`emails[type eq "home" and value co "HOME"]`, []string{bob}},
		{`emails.value eq "BOB@WORK.EXAMPLE"`, []string{bob}},
		{`emails[type eq "work"] and not (emails[type eq "home"])`, []string{alice}},
		{`externalId eq "ext-bob"`, []string{bob}},
		{`externalId eq "EXT-BOB"`, []string{}}, // externalId is caseExact
		{`name.familyName eq "smith"`, []string{alice}},
		{enterpriseURN + `:department eq "Sales"`, []string{carol}},
		{`id eq "no-such-id"`, []string{}}, // a query never answers 404
		{`userName gt "c"`, []string{carol, dave}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			res := must(t, h.do("GET", "/Users"+query("filter", tc.filter), nil), http.StatusOK)
			if got := res.column("userName"); !slices.Equal(got, tc.want) {
				t.Errorf("GET filter=%s: got %q, want %q", tc.filter, got, tc.want)
			}
			if res.num("totalResults") != len(tc.want) {
				t.Errorf("totalResults %d, want %d", res.num("totalResults"), len(tc.want))
			}
			// POST /.search answers the same.
			res = must(t, h.do("POST", "/Users/.search", map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": tc.filter,
			}), http.StatusOK)
			if got := res.column("userName"); !slices.Equal(got, tc.want) {
				t.Errorf("POST /.search filter=%s: got %q, want %q", tc.filter, got, tc.want)
			}
		})
	}
}

func TestUserFilterByID(t *testing.T) {
	h := start(t, server.Config{})
	_, bob, _, _ := people(h)
	res := must(t, h.do("GET", "/Users"+query("filter", `id eq "`+bob+`"`), nil), http.StatusOK)
	if got := res.column("id"); !slices.Equal(got, []string{bob}) {
		t.Errorf("id eq: got %q, want bob's id", got)
	}
}

func TestGroupFilters(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, carol, _ := people(h)
	eng := h.group("Engineering", alice, bob)
	sales := h.group("Sales", carol)
	h.group("Empty")
	must(t, h.do("PATCH", "/Groups/"+sales, patchOp(op("replace", "externalId", "g-sales"))), http.StatusNoContent)
	for _, tc := range []struct {
		filter string
		want   []string // displayNames, in list order
	}{
		{`displayName eq "engineering"`, []string{"Engineering"}},
		{`displayName sw "E"`, []string{"Engineering", "Empty"}},
		{`displayName co "a"`, []string{"Sales"}},
		{`members.value eq "` + bob + `"`, []string{"Engineering"}},
		{`members eq "` + carol + `"`, []string{"Sales"}},
		{`members[value eq "` + carol + `"]`, []string{"Sales"}},
		{`members pr`, []string{"Engineering", "Sales"}},
		{`not (members pr)`, []string{"Empty"}},
		{`displayName eq "Engineering" and members.value eq "` + carol + `"`, []string{}},
		{`members.value eq "` + alice + `" or displayName eq "Empty"`, []string{"Engineering", "Empty"}},
		{`externalId eq "g-sales"`, []string{"Sales"}},
		{`id eq "` + eng + `"`, []string{"Engineering"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			res := must(t, h.do("GET", "/Groups"+query("filter", tc.filter, "excludedAttributes", "members"), nil), http.StatusOK)
			if got := res.column("displayName"); !slices.Equal(got, tc.want) {
				t.Errorf("filter=%s: got %q, want %q", tc.filter, got, tc.want)
			}
			for _, g := range res.resources() {
				if _, ok := g["members"]; ok {
					t.Errorf("excludedAttributes=members, yet %v has members", g["displayName"])
				}
			}
		})
	}
}

func TestAttributesAndExcludedAttributes(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, _, _ := people(h)
	eng := h.group("Engineering", alice, bob)
	bobOnly := query("filter", `userName eq "bob@example.com"`)

	for _, tc := range []struct {
		name, path    string
		present, gone []string
	}{
		{"attributes keeps id and schemas", "/Users" + bobOnly + "&attributes=userName",
			[]string{"id", "schemas", "userName"}, []string{"emails", "displayName", "meta", "groups", "active"}},
		{"attributes is case-insensitive", "/Users" + bobOnly + "&attributes=DISPLAYNAME",
			[]string{"id", "displayName"}, []string{"userName", "emails"}},
		{"excludedAttributes", "/Users" + bobOnly + "&excludedAttributes=emails,groups",
			[]string{"id", "userName", "displayName", "meta"}, []string{"emails", "groups"}},
		{"the computed groups attribute", "/Users" + bobOnly,
			[]string{"groups"}, nil},
		{"excludedAttributes on a GET of one user", "/Users/" + bob + "?excludedAttributes=emails",
			[]string{"userName"}, []string{"emails"}},
		{"attributes on a GET of one group", "/Groups/" + eng + "?attributes=displayName",
			[]string{"id", "displayName"}, []string{"members", "meta"}},
		{"members on a GET of one group", "/Groups/" + eng,
			[]string{"members", "meta"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := must(t, h.do("GET", tc.path, nil), http.StatusOK)
			doc := res.body
			if list := res.resources(); strings.Contains(tc.path, "filter=") {
				if len(list) != 1 {
					t.Fatalf("want one resource, got %s", res)
				}
				doc = list[0]
			}
			for _, a := range tc.present {
				if _, ok := doc[a]; !ok {
					t.Errorf("%s is missing: %v", a, doc)
				}
			}
			for _, a := range tc.gone {
				if _, ok := doc[a]; ok {
					t.Errorf("%s should be left out: %v", a, doc)
				}
			}
		})
	}

	// A sub-attribute: only emails[].value is returned.
	res := must(t, h.do("GET", "/Users"+bobOnly+"&attributes=emails.value", nil), http.StatusOK)
	emails, _ := res.resources()[0]["emails"].([]any)
	if len(emails) != 2 {
		t.Fatalf("attributes=emails.value: want bob's two emails, got %s", res)
	}
	for _, e := range emails {
		if m := e.(map[string]any); len(m) != 1 || m["value"] == nil {
			t.Errorf("attributes=emails.value: want only value, got %v", m)
		}
	}
}
