package server

import (
	"context"
	"net/http"
	"strings"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/filter"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Root search (RFC 7644 §3.4.3): POST <base>/.search searches the Users
// and the Groups of the caller's tenant at once. Each type is searched as
// its own /.search would be, with the same indexes and bounds (a type over
// the ceiling refuses the whole search with 400 tooMany; a whole-tenant
// read holds one scan slot, shared by both types), and the results are
// merged:
//
//   - A comparison on an attribute a type does not have (userName on a
//     group, members on a user) is false for that type's resources; "not"
//     inverts it as any other. A type whose filter is false whatever its
//     resources hold is not read at all, so `userName eq "x"` reads no
//     group. An attribute neither type has is 400 invalidFilter.
//   - Without sortBy, users come first (oldest first, as /Users lists
//     them), then groups (likewise). With sortBy, both types sort together
//     by that attribute; resources without a value for it (a group for
//     sortBy=userName) come last when ascending and first when descending
//     (RFC 7644 §3.4.2.3); ties keep users before groups. A sortBy neither
//     type has is 400 invalidValue.
//   - Every resource carries its "schemas" and "meta.resourceType", also
//     when attributes= would leave meta out, so clients tell them apart.

// rootItem is a user or a group of a root search.
type rootItem struct {
	user  *scimv1.ProvisionedUser
	group *scimv1.ProvisionedGroup
}

func (s *Server) searchRoot(w http.ResponseWriter, r *http.Request, rq *request) error {
	ctx := r.Context()
	tenant := rq.tenant()
	sr, err := s.readSearch(r)
	if err != nil {
		return err
	}
	urt := s.users(ctx, tenant)
	qu, qg, err := s.rootQueries(urt, sr)
	if err != nil {
		return err
	}
	q := qu
	if q == nil {
		q = qg
	}
	if q == nil {
		// The filter can match no resource of either type.
		q, _ = s.buildQuery(urt, "", sr.startIndex, sr.count, "", sr.sortOrder, nil, nil)
		return writeJSON(w, rq, http.StatusOK, q.listResponse(0, []any{}))
	}
	slot := &sharedSlot{s: s}
	defer slot.release()
	c, release, err := s.rootCandidates(ctx, w, tenant, qu, qg, slot)
	if err != nil {
		return err
	}
	defer release()
	total, items, err := s.rootPage(ctx, rq, urt, qu, qg, c)
	if err != nil {
		return err
	}
	resources := make([]any, 0, len(items))
	for _, it := range items {
		doc, err := s.rootDoc(ctx, rq, urt, it, q.attributes, q.excluded)
		if err != nil {
			return err
		}
		resources = append(resources, doc)
	}
	return writeJSON(w, rq, http.StatusOK, q.listResponse(total, resources))
}

// sharedSlot is the one scan slot of a root search: taken by the first
// type that reads its whole tenant, released when the search ends.
type sharedSlot struct {
	s    *Server
	held func()
}

// take is a query's slot function (query.slot); the slot is released by
// release, not by what take returns.
func (sl *sharedSlot) take(ctx context.Context, w http.ResponseWriter, tenant string) (func(), error) {
	if sl.held == nil {
		release, err := sl.s.scanSlot(ctx, w, tenant)
		if err != nil {
			return nil, err
		}
		sl.held = release
	}
	return noRelease, nil
}

func (sl *sharedSlot) release() {
	if sl.held != nil {
		sl.held()
	}
}

// rootCandidates are the candidates of both types of a root search; a
// type left out (nil query) has none.
type rootCandidates struct {
	users  []*scimv1.ProvisionedUser
	groups []*scimv1.ProvisionedGroup
	mf     memberFilter // of the groups' filter
}

// rootCandidates reads the candidates of both types before anything is
// rendered, so that a type over the ceiling refuses the search first.
// release gives back what the reads hold.
func (s *Server) rootCandidates(ctx context.Context, w http.ResponseWriter, tenant string, qu, qg *query,
	slot *sharedSlot) (c rootCandidates, release func(), err error) {
	releaseUsers, releaseGroups := noRelease, noRelease
	if qu != nil {
		qu.slot = slot.take
		if c.users, releaseUsers, err = s.userCandidates(ctx, w, tenant, qu); err != nil {
			return c, nil, err
		}
	}
	if qg != nil {
		qg.slot = slot.take
		c.mf = newMemberFilter(qg.filter)
		if c.groups, releaseGroups, err = s.groupCandidates(ctx, w, tenant, qg, c.mf); err != nil {
			releaseUsers()
			return c, nil, err
		}
	}
	return c, func() { releaseGroups(); releaseUsers() }, nil
}

// rootPage returns how many resources match and the page's. A plain
// listing renders nothing but the page; a filter or sortBy matches (and
// sorts) both types first.
func (s *Server) rootPage(ctx context.Context, rq *request, urt *schema.ResourceType, qu, qg *query,
	c rootCandidates) (int, []rootItem, error) {
	q := qu
	if q == nil {
		q = qg
	}
	if !filters(qu) && !filters(qg) {
		total := len(c.users) + len(c.groups)
		from, to := q.window(total)
		items := make([]rootItem, 0, to-from)
		for i := from; i < to; i++ {
			if i < len(c.users) {
				items = append(items, rootItem{user: c.users[i]})
			} else {
				items = append(items, rootItem{group: c.groups[i-len(c.users)]})
			}
		}
		return total, items, nil
	}
	merged, err := s.rootMatches(ctx, rq, urt, qu, qg, c)
	if err != nil {
		return 0, nil, err
	}
	if (qu != nil && qu.sortBy != nil) || (qg != nil && qg.sortBy != nil) {
		sortHits(merged, q.descending)
	}
	from, to := q.window(len(merged))
	items := make([]rootItem, 0, to-from)
	for _, h := range merged[from:to] {
		items = append(items, h.obj)
	}
	return len(merged), items, nil
}

// rootMatches returns the matching users, then the matching groups, each
// with its sort key.
func (s *Server) rootMatches(ctx context.Context, rq *request, urt *schema.ResourceType, qu, qg *query,
	c rootCandidates) ([]hit[rootItem], error) {
	var merged []hit[rootItem]
	if qu != nil {
		groupsInFilter := qu.filter != nil && filterMentions(qu.filter, "groups")
		uhits, err := matchAll(qu, c.users, func(u *scimv1.ProvisionedUser) (map[string]any, error) {
			return s.userDoc(ctx, rq, urt, u, groupsInFilter)
		})
		if err != nil {
			return nil, err
		}
		for _, h := range uhits {
			merged = append(merged, hit[rootItem]{obj: rootItem{user: h.obj}, key: h.key})
		}
	}
	if qg != nil {
		ghits, err := matchAll(qg, c.groups, s.groupProbe(ctx, rq, c.mf))
		if err != nil {
			return nil, err
		}
		for _, h := range ghits {
			merged = append(merged, hit[rootItem]{obj: rootItem{group: h.obj}, key: h.key})
		}
	}
	return merged, nil
}

// filters says whether q (nil for a type left out) filters or sorts.
func filters(q *query) bool { return q != nil && (q.filter != nil || q.sortBy != nil) }

// rootDoc renders one resource of a root search's page, as /Users or
// /Groups would, with its type always named.
func (s *Server) rootDoc(ctx context.Context, rq *request, urt *schema.ResourceType, it rootItem, attributes, excluded []string) (map[string]any, error) {
	var doc map[string]any
	var resourceType, urn string
	if it.user != nil {
		full, err := s.userDoc(ctx, rq, urt, it.user, false)
		if err != nil {
			return nil, err
		}
		doc, resourceType, urn = urt.Project(full, attributes, excluded), "User", urt.Schema.ID
		if wantsGroups(attributes, excluded) {
			groups, err := s.groupsAttr(ctx, rq, it.user.Namespace, it.user.Name)
			if err != nil {
				return nil, err
			}
			if len(groups) > 0 {
				doc["groups"] = groups
			}
		}
	} else {
		g := it.group
		doc, resourceType, urn = s.groups.Project(s.groupDoc(ctx, rq, g, nil, nil), attributes, excluded), "Group", s.groups.Schema.ID
		if wantsMembers(attributes, excluded) {
			members, displays, err := s.repo.CachedMembersWithDisplays(ctx, g.Namespace, g.Name)
			if err != nil {
				return nil, err
			}
			if len(members) > 0 {
				doc["members"] = s.memberList(ctx, rq, g.Namespace, members, displays)
			}
		}
	}
	if _, ok := doc["schemas"]; !ok {
		doc["schemas"] = []string{urn}
	}
	m, _ := doc["meta"].(map[string]any)
	if m == nil {
		m = map[string]any{}
		doc["meta"] = m
	}
	m["resourceType"] = resourceType
	return doc, nil
}

// rootQueries builds the query of each type from a root SearchRequest; a
// nil query leaves its type out (its filter can match none of it).
func (s *Server) rootQueries(urt *schema.ResourceType, sr *searchRequest) (qu, qg *query, err error) {
	// Paging, sortOrder and attributes as for one type.
	qu, err = s.buildQuery(urt, "", sr.startIndex, sr.count, "", sr.sortOrder, sr.attributes, sr.excluded)
	if err != nil {
		return nil, nil, err
	}
	qg = &query{}
	*qg = *qu
	if strings.TrimSpace(sr.filter) != "" {
		e, err := filter.Parse(sr.filter)
		if err != nil {
			return nil, nil, err
		}
		unknownU, unknownG := map[string]string{}, map[string]string{}
		fu, constU, valU := prune(e, urt, unknownU)
		fg, constG, valG := prune(e, s.groups, unknownG)
		for key, name := range unknownU {
			if _, ok := unknownG[key]; ok {
				return nil, nil, scimerr.InvalidFilter("unknown attribute %q: neither Users nor Groups have it", name)
			}
		}
		if qu.filter, err = bindRoot(fu, constU, urt); err != nil {
			return nil, nil, err
		}
		if qg.filter, err = bindRoot(fg, constG, s.groups); err != nil {
			return nil, nil, err
		}
		if constU && !valU {
			qu = nil
		}
		if constG && !valG {
			qg = nil
		}
	}
	if sr.sortBy != "" {
		pu, errU := urt.ResolveText(sr.sortBy)
		pg, errG := s.groups.ResolveText(sr.sortBy)
		if errU != nil && errG != nil {
			return nil, nil, scimerr.InvalidValue("sortBy: %q is an attribute of neither Users nor Groups", sr.sortBy)
		}
		if qu != nil && errU == nil {
			qu.sortBy = &pu
		}
		if qg != nil && errG == nil {
			qg.sortBy = &pg
		}
	}
	return qu, qg, nil
}

func bindRoot(e filter.Expr, constant bool, rt *schema.ResourceType) (filter.Expr, error) {
	if constant || e == nil {
		return nil, nil
	}
	return filter.Bind(e, rt)
}

// prune replaces the comparisons on attributes rt does not have (noted in
// unknown) with false and folds the constants. It returns what is left of
// e, or constant=true with the filter's value when nothing is.
func prune(e filter.Expr, rt *schema.ResourceType, unknown map[string]string) (out filter.Expr, constant, value bool) {
	switch x := e.(type) {
	case *filter.And:
		l, lc, lv := prune(x.Left, rt, unknown)
		r, rc, rv := prune(x.Right, rt, unknown)
		switch {
		case lc && !lv, rc && !rv:
			return nil, true, false
		case lc:
			return r, rc, rv
		case rc:
			return l, false, false
		}
		return &filter.And{Left: l, Right: r}, false, false
	case *filter.Or:
		l, lc, lv := prune(x.Left, rt, unknown)
		r, rc, rv := prune(x.Right, rt, unknown)
		switch {
		case lc && lv, rc && rv:
			return nil, true, true
		case lc:
			return r, rc, rv
		case rc:
			return l, false, false
		}
		return &filter.Or{Left: l, Right: r}, false, false
	case *filter.Not:
		inner, c, v := prune(x.X, rt, unknown)
		if c {
			return nil, true, !v
		}
		return &filter.Not{X: inner}, false, false
	case *filter.ValuePath:
		if !hasAttr(rt, x.Path, unknown) {
			return nil, true, false
		}
	case *filter.Compare:
		if !hasAttr(rt, x.Path, unknown) {
			return nil, true, false
		}
	}
	return e, false, false
}

// hasAttr says whether rt has the top-level attribute of p; its
// sub-attribute is left to filter.Bind, whose errors are the client's.
func hasAttr(rt *schema.ResourceType, p filter.AttrPath, unknown map[string]string) bool {
	if _, err := rt.Resolve(p.URN, p.Attr, ""); err != nil {
		name := p.Attr
		if p.URN != "" {
			name = p.URN + ":" + p.Attr
		}
		unknown[strings.ToLower(name)] = name
		return false
	}
	return true
}
