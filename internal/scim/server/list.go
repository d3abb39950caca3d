package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/filter"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/strictjson"
)

const (
	listResponseURN  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	searchRequestURN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
)

// query is a parsed list or search request (RFC 7644 §3.4.2, §3.4.3).
type query struct {
	filter     filter.Expr // bound; nil for all
	startIndex int         // 1-based
	count      int
	sortBy     *schema.Path
	descending bool
	attributes []string
	excluded   []string
	// slot takes the scan slot a whole-tenant read holds; nil is
	// Server.scanSlot. A root search shares one slot between its types.
	slot func(ctx context.Context, w http.ResponseWriter, tenant string) (func(), error)
}

func (s *Server) parseQuery(rt *schema.ResourceType, v url.Values) (*query, error) {
	return s.buildQuery(rt, v.Get("filter"), v.Get("startIndex"), v.Get("count"), v.Get("sortBy"), v.Get("sortOrder"),
		splitList(v["attributes"]), splitList(v["excludedAttributes"]))
}

// parseSearch reads a POST /.search body.
func (s *Server) parseSearch(rt *schema.ResourceType, r *http.Request) (*query, error) {
	sr, err := s.readSearch(r)
	if err != nil {
		return nil, err
	}
	return s.buildQuery(rt, sr.filter, sr.startIndex, sr.count, sr.sortBy, sr.sortOrder, sr.attributes, sr.excluded)
}

// searchRequest is a SearchRequest body (RFC 7644 §3.4.3), not yet bound
// to a resource type.
type searchRequest struct {
	filter, startIndex, count, sortBy, sortOrder string
	attributes, excluded                         []string
}

// readSearch reads and checks a SearchRequest body.
func (s *Server) readSearch(r *http.Request) (*searchRequest, error) {
	body, err := s.readBody(r)
	if err != nil {
		return nil, err
	}
	// A search is refused for a duplicate member name like any other body
	// (a "filter" twice could let a proxy see another filter than we run).
	if err := strictjson.Check(body); err != nil {
		return nil, err
	}
	var req struct {
		Schemas            []string        `json:"schemas"`
		Filter             string          `json:"filter"`
		StartIndex         json.Number     `json:"startIndex"`
		Count              json.Number     `json:"count"`
		SortBy             string          `json:"sortBy"`
		SortOrder          string          `json:"sortOrder"`
		Attributes         json.RawMessage `json:"attributes"`
		ExcludedAttributes json.RawMessage `json:"excludedAttributes"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, scimerr.InvalidSyntax("the search request is not valid: %v", err)
	}
	if len(req.Schemas) > 0 && !slices.ContainsFunc(req.Schemas, func(s string) bool { return strings.EqualFold(s, searchRequestURN) }) {
		return nil, scimerr.InvalidSyntax("a search request must list the schema %s", searchRequestURN)
	}
	attrs, err := stringList(req.Attributes, "attributes")
	if err != nil {
		return nil, err
	}
	excl, err := stringList(req.ExcludedAttributes, "excludedAttributes")
	if err != nil {
		return nil, err
	}
	return &searchRequest{filter: req.Filter, startIndex: req.StartIndex.String(), count: req.Count.String(),
		sortBy: req.SortBy, sortOrder: req.SortOrder, attributes: attrs, excluded: excl}, nil
}

// stringList accepts a JSON array of strings or one comma-separated string.
func stringList(raw json.RawMessage, name string) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return splitList(list), nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return splitList([]string{one}), nil
	}
	return nil, scimerr.InvalidSyntax("%s must be an array of attribute names", name)
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Server) buildQuery(rt *schema.ResourceType, filterText, start, count, sortBy, sortOrder string, attrs, excl []string) (*query, error) {
	q := &query{startIndex: 1, count: s.cfg.DefaultPageSize, attributes: attrs, excluded: excl}
	if strings.TrimSpace(filterText) != "" {
		e, err := filter.Parse(filterText)
		if err != nil {
			return nil, err
		}
		if q.filter, err = filter.Bind(e, rt); err != nil {
			return nil, err
		}
	}
	// RFC 7644 §3.4.2.4: startIndex below 1 counts as 1; a negative count
	// as 0. Non-numbers are the client's mistake.
	if start != "" {
		n, err := strconv.Atoi(start)
		if err != nil {
			return nil, scimerr.InvalidValue("startIndex must be an integer, got %q", start)
		}
		q.startIndex = max(n, 1)
	}
	if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil {
			return nil, scimerr.InvalidValue("count must be an integer, got %q", count)
		}
		q.count = min(max(n, 0), s.cfg.MaxPageSize)
	}
	if sortBy != "" {
		p, err := rt.ResolveText(sortBy)
		if err != nil {
			return nil, scimerr.InvalidValue("sortBy: %v", errDetail(err))
		}
		q.sortBy = &p
	}
	switch strings.ToLower(sortOrder) {
	case "", "ascending":
	case "descending":
		q.descending = true
	default:
		return nil, scimerr.InvalidValue("sortOrder must be \"ascending\" or \"descending\", got %q", sortOrder)
	}
	return q, nil
}

func errDetail(err error) string {
	if e, ok := scimerr.As(err); ok {
		return e.Detail
	}
	return err.Error()
}

// hit is a candidate that matched the filter, with its sort key.
type hit[T any] struct {
	obj T
	key any
}

// selectPage filters candidates (in the default stable order: oldest
// first, then id), sorts them when asked and returns how many matched and
// the page's candidates, which the caller renders. probe renders a
// candidate for the filter and the sort key; its document is dropped right
// away, so a query keeps a pointer and a key per match, never a document.
// Without filter and sortBy nothing is rendered: count=0 costs a count.
func selectPage[T any](q *query, candidates []T, probe func(T) (map[string]any, error)) (int, []T, error) {
	if q.filter == nil && q.sortBy == nil {
		from, to := q.window(len(candidates))
		return len(candidates), candidates[from:to], nil
	}
	hits, err := matchAll(q, candidates, probe)
	if err != nil {
		return 0, nil, err
	}
	if q.sortBy != nil {
		sortHits(hits, q.descending)
	}
	from, to := q.window(len(hits))
	page := make([]T, 0, to-from)
	for _, h := range hits[from:to] {
		page = append(page, h.obj)
	}
	return len(hits), page, nil
}

// matchAll returns the candidates that match q's filter, in their order,
// with their sort keys when q sorts. Without filter and sortBy nothing is
// rendered.
func matchAll[T any](q *query, candidates []T, probe func(T) (map[string]any, error)) ([]hit[T], error) {
	hits := make([]hit[T], 0, min(len(candidates), 1024))
	for _, c := range candidates {
		if q.filter == nil && q.sortBy == nil {
			hits = append(hits, hit[T]{obj: c})
			continue
		}
		doc, err := probe(c)
		if err != nil {
			return nil, err
		}
		if q.filter != nil && !filter.Match(q.filter, doc) {
			continue
		}
		h := hit[T]{obj: c}
		if q.sortBy != nil {
			h.key = sortKey(*q.sortBy, doc)
		}
		hits = append(hits, h)
	}
	return hits, nil
}

// sortHits sorts stably by key (RFC 7644 §3.4.2.3): resources without a
// value come last when ascending, first when descending.
func sortHits[T any](hits []hit[T], descending bool) {
	slices.SortStableFunc(hits, func(a, b hit[T]) int {
		c := compareSortKeys(a.key, b.key)
		if descending {
			c = -c
		}
		return c
	})
}

// window is the slice of total matches the page holds.
func (q *query) window(total int) (from, to int) {
	from = min(q.startIndex-1, total)
	return from, min(from+q.count, total)
}

// listResponse wraps a page of rendered resources (RFC 7644 §3.4.2).
func (q *query) listResponse(total int, resources []any) map[string]any {
	return map[string]any{
		"schemas":      []string{listResponseURN},
		"totalResults": total,
		"startIndex":   q.startIndex,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
}

// sortKey is the value sorting uses (RFC 7644 §3.4.2.3): for multi-valued
// attributes the primary value, else the first; strings fold case unless
// the attribute is caseExact; resources without a value sort last.
func sortKey(p schema.Path, doc map[string]any) any {
	vals := p.Values(doc)
	if len(vals) == 0 {
		return nil
	}
	v := vals[0]
	if s, ok := v.(string); ok && !p.Target().CaseExact {
		return strings.ToLower(s)
	}
	return v
}

func compareSortKeys(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok && x != y {
			if !x {
				return -1
			}
			return 1
		}
		return 0
	case int64:
		if y, ok := b.(int64); ok {
			return cmpNum(float64(x), float64(y))
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmpNum(x, y)
		}
	}
	return 0
}

func cmpNum(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// indexHint is an equality the cache can answer through an index, found in
// the filter's top-level "and" chain. The full filter still runs on the
// candidates, so a hint only narrows, it never decides.
type indexHint struct {
	attr  string // canonical attribute path: "id", "userName", "externalId", "emails.value", "displayName", "members.value"
	value string
}

func findHint(e filter.Expr, wanted ...string) *indexHint {
	switch x := e.(type) {
	case *filter.And:
		if h := findHint(x.Left, wanted...); h != nil {
			return h
		}
		return findHint(x.Right, wanted...)
	case *filter.Compare:
		if x.Op != filter.Eq {
			return nil
		}
		v, ok := x.Value.(string)
		if !ok {
			return nil
		}
		name := x.Path.Resolved.String()
		if slices.Contains(wanted, name) {
			return &indexHint{attr: name, value: v}
		}
	case *filter.ValuePath:
		// Inside emails[value eq "x"] paths resolve to the full
		// "emails.value", so the element filter narrows like a plain one.
		return findHint(x.Filter, wanted...)
	}
	return nil
}
