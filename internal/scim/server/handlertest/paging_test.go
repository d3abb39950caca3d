package handlertest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

func TestPaging(t *testing.T) {
	h := start(t, server.Config{DefaultPageSize: 4, MaxPageSize: 5})
	var names []string // in creation order: the order lists use
	for i := range 7 {
		names = append(names, fmt.Sprintf("user%d@example.com", 7-i)) // not alphabetical
		h.user(names[i])
	}
	for _, tc := range []struct {
		name, query  string
		total, start int
		want         []string
	}{
		{"the default page size", "", 7, 1, names[:4]},
		{"a window", query("startIndex", "3", "count", "2"), 7, 3, names[2:4]},
		{"the last page is short", query("startIndex", "6", "count", "5"), 7, 6, names[5:]},
		{"count=0 only counts", query("count", "0"), 7, 1, []string{}},
		{"a negative count is 0", query("count", "-3"), 7, 1, []string{}},
		{"count above the maximum is capped", query("count", "50"), 7, 1, names[:5]},
		{"startIndex below 1 is 1", query("startIndex", "0", "count", "2"), 7, 1, names[:2]},
		{"startIndex past the end", query("startIndex", "100"), 7, 100, []string{}},
		{"startIndex right after the end", query("startIndex", "8"), 7, 8, []string{}},
		{"a filter pages its matches", query("filter", `userName le "user4@example.com"`, "startIndex", "2", "count", "2"),
			4, 2, []string{names[4], names[5]}},
		{"sortBy", query("sortBy", "userName", "count", "3"), 7, 1,
			[]string{"user1@example.com", "user2@example.com", "user3@example.com"}},
		{"sortBy descending, second page", query("sortBy", "userName", "sortOrder", "descending", "startIndex", "3", "count", "2"), 7, 3,
			[]string{"user5@example.com", "user4@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, res := range []response{
				h.do("GET", "/Users"+tc.query, nil),
				h.do("POST", "/Users/.search", searchBody(tc.query)),
			} {
				must(t, res, http.StatusOK)
				if got := res.column("userName"); !slices.Equal(got, tc.want) {
					t.Errorf("userNames %q, want %q", got, tc.want)
				}
				if res.num("totalResults") != tc.total || res.num("startIndex") != tc.start || res.num("itemsPerPage") != len(tc.want) {
					t.Errorf("totalResults %d, startIndex %d, itemsPerPage %d; want %d, %d, %d",
						res.num("totalResults"), res.num("startIndex"), res.num("itemsPerPage"), tc.total, tc.start, len(tc.want))
				}
				if schemas, _ := res.body["schemas"].([]any); len(schemas) != 1 || schemas[0] != "urn:ietf:params:scim:api:messages:2.0:ListResponse" {
					t.Errorf("schemas %v", res.body["schemas"])
				}
			}
		})
	}
}

// searchBody turns a list query string into the SearchRequest that asks
// the same.
func searchBody(q string) map[string]any {
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}}
	if q == "" {
		return body
	}
	v, err := url.ParseQuery(q[1:])
	if err != nil {
		panic(err) // the tests' own query strings
	}
	for k, vals := range v {
		body[k] = vals[0]
		if n, err := strconv.Atoi(vals[0]); err == nil {
			body[k] = n
		}
	}
	return body
}

// Pages read one after another cover every resource once, in creation
// order, while deletions in between only shift later pages.
func TestPagingWalk(t *testing.T) {
	h := start(t, server.Config{})
	var ids []string
	for i := range 9 {
		ids = append(ids, h.user(fmt.Sprintf("walk%d@example.com", i)))
	}
	var seen []string
	for start := 1; ; start += 4 {
		res := must(t, h.do("GET", "/Users"+query("startIndex", fmt.Sprint(start), "count", "4", "attributes", "id"), nil), http.StatusOK)
		if res.num("totalResults") != 9 {
			t.Fatalf("totalResults %d, want 9", res.num("totalResults"))
		}
		if len(res.resources()) == 0 {
			break
		}
		seen = append(seen, res.column("id")...)
	}
	if !slices.Equal(seen, ids) {
		t.Errorf("pages returned %q, want every user once in creation order %q", seen, ids)
	}
}

// Groups page like users; their members are left out on request.
func TestGroupPaging(t *testing.T) {
	h := start(t, server.Config{})
	alice := h.user("alice@example.com")
	var names []string
	for i := range 5 {
		names = append(names, fmt.Sprintf("Group %c", 'E'-i))
		h.group(names[i], alice)
	}
	res := must(t, h.do("GET", "/Groups"+query("startIndex", "2", "count", "2", "excludedAttributes", "members"), nil), http.StatusOK)
	if got := res.column("displayName"); !slices.Equal(got, names[1:3]) || res.num("totalResults") != 5 {
		t.Errorf("got %q of %d, want %q of 5", got, res.num("totalResults"), names[1:3])
	}
	for _, g := range res.resources() {
		if _, ok := g["members"]; ok {
			t.Errorf("members were excluded: %v", g)
		}
	}
	res = must(t, h.do("GET", "/Groups"+query("count", "1"), nil), http.StatusOK)
	if list, _ := res.resources()[0]["members"].([]any); len(list) != 1 {
		t.Errorf("a listed group without its member: %s", res)
	}
}

func TestRootSearch(t *testing.T) {
	h := start(t, server.Config{})
	alice, bob, carol, dave := people(h)
	eng := h.group("Engineering", alice, bob)
	sales := h.group("Sales", carol)
	search := func(body map[string]any) response {
		t.Helper()
		body["schemas"] = []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}
		return must(t, h.do("POST", "/.search", body), http.StatusOK)
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		total int
		want  []string // ids, in answer order
	}{
		{"everything: users then groups", map[string]any{}, 6, []string{alice, bob, carol, dave, eng, sales}},
		{"a page across the boundary", map[string]any{"startIndex": 4, "count": 2}, 6, []string{dave, eng}},
		{"count=0", map[string]any{"count": 0}, 6, []string{}},
		{"a user attribute reads no group", map[string]any{"filter": `userName sw "b"`}, 1, []string{bob}},
		{"a group attribute reads no user", map[string]any{"filter": `members eq "` + carol + `"`}, 1, []string{sales}},
		{"either type", map[string]any{"filter": `userName sw "d" or displayName eq "sales"`}, 2, []string{dave, sales}},
		{"not of an attribute one type lacks", map[string]any{"filter": `not (title pr)`}, 4, []string{bob, dave, eng, sales}},
		{"both types sorted together", map[string]any{"sortBy": "displayName", "count": 4}, 6, []string{alice, bob, carol, eng}},
		{"sorted, filtered and paged", map[string]any{"filter": `displayName co "e"`, "sortBy": "displayName", "sortOrder": "descending", "startIndex": 2},
			4, []string{eng, bob, alice}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := search(tc.body)
			if got := res.column("id"); !slices.Equal(got, tc.want) || res.num("totalResults") != tc.total {
				t.Errorf("got %q of %d, want %q of %d", got, res.num("totalResults"), tc.want, tc.total)
			}
			for _, r := range res.resources() {
				m, _ := r["meta"].(map[string]any)
				if rt, _ := m["resourceType"].(string); rt != "User" && rt != "Group" {
					t.Errorf("a resource without its type: %v", r)
				}
			}
		})
	}
	mustError(t, h.do("POST", "/.search", map[string]any{"filter": `shoeSize eq "9"`}), http.StatusBadRequest, "invalidFilter")
	mustError(t, h.do("POST", "/.search", map[string]any{"sortBy": "shoeSize"}), http.StatusBadRequest, "invalidValue")
}
