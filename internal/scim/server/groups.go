package server

import (
	"context"
	"math"
	"net/http"
	"strings"
	"time"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/filter"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// groupDoc renders a group. Members are loaded only when asked for: Entra
// excludes them on every read, and a group may have 100,000 of them.
// displays are the client-sent displays of members that have one.
func (s *Server) groupDoc(ctx context.Context, rq *request, g *scimv1.ProvisionedGroup, members []string, displays map[string]string) map[string]any {
	doc := repository.GroupDoc(&g.Spec)
	doc["id"] = g.Name
	doc["schemas"] = []string{repository.GroupURN}
	doc["meta"] = meta("Group", rq.baseURL+"/Groups/"+g.Name, &g.ObjectMeta)
	if len(members) > 0 {
		doc["members"] = s.memberList(ctx, rq, g.Namespace, members, displays)
	}
	return doc
}

// memberList renders members with their displays: the one a client last
// sent for the member, else the user's displayName (else userName), read
// from the cache (only done when a client asks for members).
func (s *Server) memberList(ctx context.Context, rq *request, tenant string, members []string, displays map[string]string) []any {
	lookup := members
	if len(displays) > 0 {
		lookup = make([]string, 0, len(members))
		for _, m := range members {
			if displays[m] == "" {
				lookup = append(lookup, m)
			}
		}
	}
	names := s.repo.DisplayNames(ctx, tenant, lookup)
	list := make([]any, len(members))
	for i, m := range members {
		el := map[string]any{"value": m, "$ref": rq.baseURL + "/Users/" + m, "type": "User"}
		if d := displays[m]; d != "" {
			el["display"] = d
		} else if d := names[m]; d != "" {
			el["display"] = d
		}
		list[i] = el
	}
	return list
}

func wantsMembers(attributes, excluded []string) bool {
	has := func(list []string) bool {
		for _, a := range list {
			l := strings.ToLower(a)
			if l == "members" || strings.HasPrefix(l, "members.") || l == strings.ToLower(repository.GroupURN)+":members" {
				return true
			}
		}
		return false
	}
	if len(attributes) > 0 {
		return has(attributes)
	}
	return !has(excluded)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, rq *request) error {
	q, err := s.parseQuery(s.groups, r.URL.Query())
	if err != nil {
		return err
	}
	return s.answerGroups(w, r, rq, q)
}

func (s *Server) searchGroups(w http.ResponseWriter, r *http.Request, rq *request) error {
	q, err := s.parseSearch(s.groups, r)
	if err != nil {
		return err
	}
	return s.answerGroups(w, r, rq, q)
}

func (s *Server) answerGroups(w http.ResponseWriter, r *http.Request, rq *request, q *query) error {
	ctx := r.Context()
	tenant := rq.tenant()
	mf := newMemberFilter(q.filter)
	candidates, release, err := s.groupCandidates(ctx, w, tenant, q, mf)
	if err != nil {
		return err
	}
	defer release()
	probe := s.groupProbe(ctx, rq, mf)
	total, page, err := selectPage(q, candidates, probe)
	if err != nil {
		return err
	}
	resources := make([]any, 0, len(page))
	for _, g := range page {
		resources = append(resources, s.groups.Project(s.groupDoc(ctx, rq, g, nil, nil), q.attributes, q.excluded))
	}
	list := q.listResponse(total, resources)
	if wantsMembers(q.attributes, q.excluded) {
		for _, res := range list["Resources"].([]any) {
			doc := res.(map[string]any)
			id, _ := doc["id"].(string)
			members, displays, err := s.repo.CachedMembersWithDisplays(ctx, tenant, id)
			if err != nil {
				return err
			}
			if len(members) > 0 {
				doc["members"] = s.memberList(ctx, rq, tenant, members, displays)
			}
		}
	}
	return writeJSON(w, rq, http.StatusOK, list)
}

// groupProbe renders a group for filter and sort, with the members the
// filter compares. Member lists read for the filter count against the
// ceiling too: a comparison other than members.value eq reads every member
// of every candidate, and an indexed candidate may have 100,000 of them.
func (s *Server) groupProbe(ctx context.Context, rq *request, mf memberFilter) func(*scimv1.ProvisionedGroup) (map[string]any, error) {
	memberBudget := s.scans.ceiling
	return func(g *scimv1.ProvisionedGroup) (map[string]any, error) {
		var members []string
		var displays map[string]string
		if mf.mentioned {
			var err error
			if members, displays, err = s.membersForFilter(ctx, g, mf); err != nil {
				return nil, err
			}
			if mf.whole {
				if memberBudget -= len(members); memberBudget < 0 {
					return nil, s.scans.tooManyMembers(s.scans.ceiling - memberBudget)
				}
			}
		}
		return s.groupDoc(ctx, rq, g, members, displays), nil
	}
}

// memberFilter is what a group filter needs of the members.
type memberFilter struct {
	mentioned bool     // the filter compares members at all
	whole     bool     // it needs every member (not only members.value eq)
	ids       []string // else: the member ids it compares with
}

func newMemberFilter(f filter.Expr) memberFilter {
	mf := memberFilter{mentioned: f != nil && filterMentions(f, "members")}
	if !mf.mentioned {
		return mf
	}
	filter.Walk(f, func(x filter.Expr) bool {
		if c, ok := x.(*filter.Compare); ok && strings.EqualFold(c.Path.Resolved.Attr.Name, "members") {
			v, isStr := c.Value.(string)
			if c.Op == filter.Eq && isStr && c.Path.Resolved.Sub != nil && c.Path.Resolved.Sub.Name == "value" {
				mf.ids = append(mf.ids, v)
			} else {
				mf.whole = true
			}
		}
		if vp, ok := x.(*filter.ValuePath); ok && strings.EqualFold(vp.Path.Resolved.Attr.Name, "members") {
			mf.whole = true
		}
		return true
	})
	return mf
}

// membersForFilter returns the members a filter on a group needs to see,
// with their client-sent displays. For equality on a member id ("members
// eq" / "members.value eq", what Entra sends) that is only the ids the
// filter names, looked up through the index; any other member comparison
// needs the whole list.
func (s *Server) membersForFilter(ctx context.Context, g *scimv1.ProvisionedGroup, mf memberFilter) ([]string, map[string]string, error) {
	if mf.whole {
		return s.repo.CachedMembersWithDisplays(ctx, g.Namespace, g.Name)
	}
	var out []string
	for _, id := range mf.ids {
		groups, err := s.repo.GroupsOf(ctx, g.Namespace, id)
		if err != nil {
			return nil, nil, err
		}
		for _, name := range groups {
			if name == g.Name {
				out = append(out, id)
				break
			}
		}
	}
	return out, nil, nil // the filter compares ids only
}

// groupIndexes are the attributes findHint may narrow groups by.
var groupIndexes = []string{"id", "displayName", "externalId", "members.value"}

// groupCandidates is userCandidates for groups. A filter that needs whole
// member lists holds a scan slot even when an index narrows the groups.
func (s *Server) groupCandidates(ctx context.Context, w http.ResponseWriter, tenant string, q *query, mf memberFilter) ([]*scimv1.ProvisionedGroup, func(), error) {
	h := findHint(q.filter, groupIndexes...)
	if h == nil {
		if mf.whole && s.scans.ceiling < math.MaxInt {
			// Refused before any list is read, when the tenant's members
			// alone are too many.
			n, err := s.repo.CountMembers(ctx, tenant)
			if err != nil {
				return nil, nil, err
			}
			if n > s.scans.ceiling {
				return nil, nil, s.scans.tooManyMembers(n)
			}
		}
		release, err := s.startScan(ctx, w, tenant, q, groupScan, func() (int, error) {
			return s.repo.CountGroups(ctx, tenant, s.scans.ceiling)
		})
		if err != nil {
			return nil, nil, err
		}
		groups, err := s.repo.ScanGroups(ctx, tenant)
		if err != nil {
			release()
			return nil, nil, err
		}
		return groups, release, nil
	}
	var groups []scimv1.ProvisionedGroup
	var err error
	switch h.attr {
	case "id":
		g, err := s.repo.LiveGroup(ctx, tenant, h.value)
		if err != nil {
			if e, ok := scimerr.As(err); ok && e.Status == http.StatusNotFound {
				return nil, noRelease, nil
			}
			return nil, nil, err
		}
		groups = []scimv1.ProvisionedGroup{*g}
	case "displayName":
		groups, err = s.repo.GroupsBy(ctx, tenant, repository.IndexDisplayName, namekey.Key(h.value))
	case "externalId":
		groups, err = s.repo.GroupsBy(ctx, tenant, repository.IndexExternalID, h.value)
	case "members.value":
		var names []string
		if names, err = s.repo.GroupsOf(ctx, tenant, h.value); err == nil {
			groups = make([]scimv1.ProvisionedGroup, 0, len(names))
			for _, name := range names {
				if g, err := s.repo.CachedGroup(ctx, tenant, name); err == nil {
					groups = append(groups, *g)
				}
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if q.sortBy != nil && len(groups) > s.scans.ceiling {
		return nil, nil, s.scans.tooMany(groupScan, len(groups))
	}
	release := noRelease
	if mf.whole {
		if release, err = s.takeSlot(ctx, w, tenant, q); err != nil {
			return nil, nil, err
		}
	}
	out := make([]*scimv1.ProvisionedGroup, len(groups))
	for i := range groups {
		out[i] = &groups[i]
	}
	return out, release, nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, rq *request) error {
	g, err := s.repo.LiveGroup(r.Context(), rq.tenant(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.respondGroup(w, r, rq, g, http.StatusOK)
}

func (s *Server) respondGroup(w http.ResponseWriter, r *http.Request, rq *request, g *scimv1.ProvisionedGroup, status int) error {
	q := r.URL.Query()
	attrs, excl := splitList(q["attributes"]), splitList(q["excludedAttributes"])
	var members []string
	var displays map[string]string
	if wantsMembers(attrs, excl) {
		// Live, so that a GET right after a member PATCH on another replica
		// sees it; lists (answerGroups) read the cache.
		var err error
		if members, displays, err = s.repo.LiveMembersWithDisplays(r.Context(), g.Namespace, g.Name); err != nil {
			return err
		}
	}
	w.Header().Set("ETag", etag(repository.Version(&g.ObjectMeta)))
	if status == http.StatusCreated {
		w.Header().Set("Location", rq.baseURL+"/Groups/"+g.Name)
	}
	return writeJSON(w, rq, status, s.groups.Project(s.groupDoc(r.Context(), rq, g, members, displays), attrs, excl))
}

// memberIDs reads the ids of a canonical document's members attribute,
// and the displays sent for them (nil when none was; for an id listed
// twice, the later display).
func memberIDs(doc map[string]any) ([]string, map[string]string, bool) {
	raw, ok := doc["members"]
	if !ok {
		return nil, nil, false
	}
	list, _ := raw.([]any)
	ids := make([]string, 0, len(list))
	var displays map[string]string
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			if v, ok := m["value"].(string); ok && v != "" {
				ids = append(ids, v)
				if d, _ := m["display"].(string); d != "" {
					if displays == nil {
						displays = map[string]string{}
					}
					displays[v] = d
				}
			}
		}
	}
	return ids, displays, true
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, rq *request) error {
	body, _, err := s.readJSON(r)
	if err != nil {
		return err
	}
	doc, err := s.groups.Canonicalize(body, schema.ModeCreate)
	if err != nil {
		return err
	}
	spec, err := repository.GroupSpec(doc)
	if err != nil {
		return scimerr.InvalidValue("%v", err)
	}
	var ops []patch.MemberOp
	var skipped []string
	if ids, displays, ok := memberIDs(doc); ok && len(ids) > 0 {
		ops, skipped, err = s.repo.KnownMembers(r.Context(), rq.tenant(), []patch.MemberOp{{Kind: patch.MemberAdd, IDs: ids, Displays: displays}})
		if err != nil {
			return err
		}
	}
	g, err := s.repo.CreateGroup(r.Context(), rq.writer(), spec, len(ops) > 0)
	if err != nil {
		return err
	}
	created := g
	if g, err = s.repo.ApplyMembers(r.Context(), rq.writer(), g, ops); err != nil {
		// Not acknowledged, so not kept: the client's retry must find the
		// displayName free (I5 in docs/invariants.md).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		s.repo.AbandonGroup(ctx, rq.writer(), created)
		return err
	}
	s.warnSkipped(r.Context(), g, skipped)
	s.audit(rq, "create", "Group", g.Name)
	return s.respondGroup(w, r, rq, g, http.StatusCreated)
}

// replaceGroup is PUT. A body with "members" replaces the member list; a
// body without it leaves members alone (a rename must not empty a group of
// 100,000 people because a client left the list out).
func (s *Server) replaceGroup(w http.ResponseWriter, r *http.Request, rq *request) error {
	body, _, err := s.readJSON(r)
	if err != nil {
		return err
	}
	doc, err := s.groups.Canonicalize(body, schema.ModeReplace)
	if err != nil {
		return err
	}
	spec, err := repository.GroupSpec(doc)
	if err != nil {
		return scimerr.InvalidValue("%v", err)
	}
	var ops []patch.MemberOp
	var skipped []string
	if ids, displays, ok := memberIDs(doc); ok {
		ops = []patch.MemberOp{{Kind: patch.MemberReplace, IDs: ids, Displays: displays}}
		if len(ids) == 0 {
			ops = []patch.MemberOp{{Kind: patch.MemberClear}}
		}
		if ops, skipped, err = s.repo.KnownMembers(r.Context(), rq.tenant(), ops); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	skipMembers := false
	g, err := s.repo.UpdateGroup(r.Context(), rq.writer(), id, ifMatch(r), func(g *scimv1.ProvisionedGroup) (bool, error) {
		skipMembers = false
		if g.Spec == spec {
			return s.guardsMembers(r, g, ops, &skipMembers)
		}
		g.Spec = spec
		return true, nil
	})
	if err != nil {
		return err
	}
	if skipMembers {
		ops = nil
	}
	if g, err = s.repo.ApplyMembers(r.Context(), rq.writer(), g, ops); err != nil {
		return err
	}
	s.warnSkipped(r.Context(), g, skipped)
	s.audit(rq, "replace", "Group", id)
	return s.respondGroup(w, r, rq, g, http.StatusOK)
}

// warnSkipped leaves a Warning event on g naming the member ids a request
// skipped because they are not users of the tenant (docs/conformance.md).
func (s *Server) warnSkipped(ctx context.Context, g *scimv1.ProvisionedGroup, skipped []string) {
	if len(skipped) > 0 {
		s.repo.Warn(ctx, g, "ProvisionedGroup", repository.EventMemberSkipped, repository.SkippedNote(skipped))
	}
}

// guardsMembers reports whether the group must be written because the
// request's If-Match has to guard member changes. The members live outside
// the group object, so the group is written (its version moved) under the
// If-Match check, with the resourceVersion it was checked at, before any
// member changes: of two requests sent with the same ETag only one passes
// (I5 in docs/invariants.md). Member operations that change nothing keep
// the version, as every no-op does; *skip is then set, and the request
// takes effect at its If-Match check: its member operations are not
// applied later, when another request may have changed the members.
func (s *Server) guardsMembers(r *http.Request, g *scimv1.ProvisionedGroup, ops []patch.MemberOp, skip *bool) (bool, error) {
	if m := ifMatch(r); m == "" || m == "*" || len(ops) == 0 {
		return false, nil
	}
	changes, err := s.repo.MembersWouldChange(r.Context(), g, ops)
	*skip = err == nil && !changes
	return changes, err
}

// patchGroup answers 204 without the member list, as Microsoft advises.
func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request, rq *request) error {
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	req, err := patch.Decode(body, patch.Limits{MaxOperations: s.cfg.MaxOperations})
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var memberOps []patch.MemberOp
	var skipped []string
	skipMembers := false
	g, err := s.repo.UpdateGroup(r.Context(), rq.writer(), id, ifMatch(r), func(g *scimv1.ProvisionedGroup) (bool, error) {
		doc := repository.GroupDoc(&g.Spec)
		res, err := patch.Apply(s.groups, doc, req.Operations, patch.Options{ExternalMembers: true})
		if err != nil {
			return false, err
		}
		// Checked before any write: ids that are not users of the tenant
		// are left out (and reported), the others are applied.
		known, unknown, err := s.repo.KnownMembers(r.Context(), rq.tenant(), res.Members)
		if err != nil {
			return false, err
		}
		memberOps, skipped, skipMembers = known, unknown, false
		if !res.Changed {
			return s.guardsMembers(r, g, memberOps, &skipMembers)
		}
		spec, err := repository.GroupSpec(doc)
		if err != nil {
			return false, scimerr.InvalidValue("%v", err)
		}
		if spec == g.Spec {
			return s.guardsMembers(r, g, memberOps, &skipMembers)
		}
		g.Spec = spec
		return true, nil
	})
	if err != nil {
		return err
	}
	if skipMembers {
		memberOps = nil
	}
	if _, err := s.repo.ApplyMembers(r.Context(), rq.writer(), g, memberOps); err != nil {
		return err
	}
	s.warnSkipped(r.Context(), g, skipped)
	s.audit(rq, "patch", "Group", id)
	return noContent(w, rq)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := s.repo.DeleteGroup(r.Context(), rq.writer(), id, ifMatch(r)); err != nil {
		return err
	}
	s.audit(rq, "delete", "Group", id)
	return noContent(w, rq)
}
