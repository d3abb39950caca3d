package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/filter"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// userDoc renders a ProvisionedUser as a full SCIM resource.
func (s *Server) userDoc(ctx context.Context, rq *request, rt *schema.ResourceType, u *scimv1.ProvisionedUser, withGroups bool) (map[string]any, error) {
	doc := repository.UserDoc(&u.Spec)
	s.addManagerRef(ctx, rq, u.Namespace, doc)
	doc["id"] = u.Name
	doc["schemas"] = rt.SchemasOf(doc)
	doc["meta"] = meta("User", rq.baseURL+"/Users/"+u.Name, &u.ObjectMeta)
	if withGroups {
		groups, err := s.groupsAttr(ctx, rq, u.Namespace, u.Name)
		if err != nil {
			return nil, err
		}
		if len(groups) > 0 {
			doc["groups"] = groups
		}
	}
	return doc, nil
}

// addManagerRef computes the read-only sub-attributes of the enterprise
// manager (RFC 7643 §4.3): $ref from the id and the request's base URL, and
// displayName from the manager's user when it is in the cache (Entra may
// link a manager before creating it).
func (s *Server) addManagerRef(ctx context.Context, rq *request, tenant string, doc map[string]any) {
	ext, _ := doc[repository.EnterpriseURN].(map[string]any)
	m, _ := ext["manager"].(map[string]any)
	id, _ := m["value"].(string)
	if id == "" {
		return
	}
	m["$ref"] = rq.baseURL + "/Users/" + id
	if d := s.repo.DisplayNames(ctx, tenant, []string{id})[id]; d != "" {
		m["displayName"] = d
	}
}

// groupsAttr computes a user's read-only groups attribute from the
// membership index.
func (s *Server) groupsAttr(ctx context.Context, rq *request, tenant, userID string) ([]any, error) {
	names, err := s.repo.GroupsOf(ctx, tenant, userID)
	if err != nil {
		return nil, err
	}
	groups := make([]any, 0, len(names))
	for _, name := range names {
		grp, err := s.repo.CachedGroup(ctx, tenant, name)
		if err != nil {
			if e, ok := scimerr.As(err); ok && e.Status == http.StatusNotFound {
				// Deleted (or terminating) group whose shards are not
				// collected yet: no longer a membership.
				continue
			}
			return nil, err
		}
		groups = append(groups, map[string]any{"value": name, "$ref": rq.baseURL + "/Groups/" + name,
			"type": "direct", "display": grp.Spec.DisplayName})
	}
	return groups, nil
}

// wantsGroups says whether a response must carry the computed groups
// attribute; computing it costs an index read per user.
func wantsGroups(attributes, excluded []string) bool {
	has := func(list []string) bool {
		for _, a := range list {
			if strings.EqualFold(a, "groups") || strings.HasPrefix(strings.ToLower(a), "groups.") ||
				strings.EqualFold(a, repository.UserURN+":groups") {
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

func filterMentions(e filter.Expr, attr string) bool {
	found := false
	filter.Walk(e, func(x filter.Expr) bool {
		switch n := x.(type) {
		case *filter.Compare:
			found = found || strings.EqualFold(n.Path.Resolved.Attr.Name, attr)
		case *filter.ValuePath:
			found = found || strings.EqualFold(n.Path.Resolved.Attr.Name, attr)
		}
		return !found
	})
	return found
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt := s.users(r.Context(), rq.tenant())
	q, err := s.parseQuery(rt, r.URL.Query())
	if err != nil {
		return err
	}
	return s.answerUsers(w, r, rq, rt, q)
}

func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt := s.users(r.Context(), rq.tenant())
	q, err := s.parseSearch(rt, r)
	if err != nil {
		return err
	}
	return s.answerUsers(w, r, rq, rt, q)
}

func (s *Server) answerUsers(w http.ResponseWriter, r *http.Request, rq *request, rt *schema.ResourceType, q *query) error {
	ctx := r.Context()
	candidates, release, err := s.userCandidates(ctx, w, rq.tenant(), q)
	if err != nil {
		return err
	}
	defer release()
	groupsInFilter := q.filter != nil && filterMentions(q.filter, "groups")
	render := func(u *scimv1.ProvisionedUser) (map[string]any, error) {
		return s.userDoc(ctx, rq, rt, u, groupsInFilter)
	}
	total, page, err := selectPage(q, candidates, render)
	if err != nil {
		return err
	}
	resources := make([]any, 0, len(page))
	for _, u := range page {
		doc, err := render(u)
		if err != nil {
			return err
		}
		resources = append(resources, rt.Project(doc, q.attributes, q.excluded))
	}
	list := q.listResponse(total, resources)
	if !groupsInFilter && wantsGroups(q.attributes, q.excluded) {
		// Only the page's users get their groups computed.
		if err := s.addGroups(ctx, rq, list); err != nil {
			return err
		}
	}
	return writeJSON(w, rq, http.StatusOK, list)
}

func (s *Server) addGroups(ctx context.Context, rq *request, list map[string]any) error {
	for _, res := range list["Resources"].([]any) {
		doc := res.(map[string]any)
		id, _ := doc["id"].(string)
		groups, err := s.groupsAttr(ctx, rq, rq.tenant(), id)
		if err != nil {
			return err
		}
		if len(groups) > 0 {
			doc["groups"] = groups
		}
	}
	return nil
}

// userIndexes are the attributes findHint may narrow users by.
var userIndexes = []string{"id", "userName", "externalId", "emails.value"}

// userCandidates narrows the tenant's users through an index when the
// filter allows it. Otherwise every user of the tenant is a candidate,
// read from the cache without copies, and the request must fit under the
// scan ceiling and hold a scan slot until release (see querybudget.go).
// The objects are the cache's: they are read, never modified.
func (s *Server) userCandidates(ctx context.Context, w http.ResponseWriter, tenant string, q *query) ([]*scimv1.ProvisionedUser, func(), error) {
	h := findHint(q.filter, userIndexes...)
	if h == nil {
		release, err := s.startScan(ctx, w, tenant, q, userScan, func() (int, error) { return s.repo.CountUsers(ctx, tenant) })
		if err != nil {
			return nil, nil, err
		}
		users, err := s.repo.ScanUsers(ctx, tenant)
		if err != nil {
			release()
			return nil, nil, err
		}
		return users, release, nil
	}
	var users []scimv1.ProvisionedUser
	var err error
	switch h.attr {
	case "id":
		u, err := s.repo.LiveUser(ctx, tenant, h.value)
		if err != nil {
			if e, ok := scimerr.As(err); ok && e.Status == http.StatusNotFound {
				return nil, noRelease, nil // a query never answers 404
			}
			return nil, nil, err
		}
		users = []scimv1.ProvisionedUser{*u}
	case "userName":
		users, err = s.repo.UsersBy(ctx, tenant, repository.IndexUserName, namekey.Key(h.value))
	case "externalId":
		users, err = s.repo.UsersBy(ctx, tenant, repository.IndexExternalID, h.value)
	case "emails.value":
		users, err = s.repo.UsersBy(ctx, tenant, repository.IndexEmail, namekey.Key(h.value))
	}
	if err != nil {
		return nil, nil, err
	}
	if q.sortBy != nil && len(users) > s.scans.ceiling {
		return nil, nil, s.scans.tooMany(userScan, len(users))
	}
	out := make([]*scimv1.ProvisionedUser, len(users))
	for i := range users {
		out[i] = &users[i]
	}
	return out, noRelease, nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt := s.users(r.Context(), rq.tenant())
	u, err := s.repo.LiveUser(r.Context(), rq.tenant(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.respondUser(w, r, rq, rt, u, http.StatusOK)
}

func (s *Server) respondUser(w http.ResponseWriter, r *http.Request, rq *request, rt *schema.ResourceType, u *scimv1.ProvisionedUser, status int) error {
	q := r.URL.Query()
	attrs, excl := splitList(q["attributes"]), splitList(q["excludedAttributes"])
	doc, err := s.userDoc(r.Context(), rq, rt, u, wantsGroups(attrs, excl))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(repository.Version(&u.ObjectMeta)))
	if status == http.StatusCreated {
		w.Header().Set("Location", rq.baseURL+"/Users/"+u.Name)
	}
	return writeJSON(w, rq, status, rt.Project(doc, attrs, excl))
}

// provisionalSchemaKey carries, into the SchemaSource call of a write, the
// flag a source sets through ProvisionalSchema.
type provisionalSchemaKey struct{}

// ProvisionalSchema is called by a SchemaSource whose answer is not
// authoritative: the tenant's custom field definitions were never read (the
// helpdesk database is down), so custom fields the tenant has are missing
// from it. Writes then keep what they cannot see (see writeUserType).
func ProvisionalSchema(ctx context.Context) {
	if p, ok := ctx.Value(provisionalSchemaKey{}).(*bool); ok {
		*p = true
	}
}

// writeUserType returns the tenant's User type for a write and whether it is
// authoritative. A non-authoritative type lacks the custom fields: a write
// naming one answers 503 (not 400, not a silent drop), and PUT keeps the
// stored custom fields, which the request cannot know about.
func (s *Server) writeUserType(ctx context.Context, tenant string) (*schema.ResourceType, bool) {
	provisional := false
	rt := s.users(context.WithValue(ctx, provisionalSchemaKey{}, &provisional), tenant)
	return rt, !provisional
}

// customFieldsUnavailable answers a write naming a custom field while the
// definitions cannot be read: 503 with Retry-After, as for an unavailable
// repository, since it is not the client's mistake.
func (s *Server) customFieldsUnavailable(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", retryAfter(s.cfg.RetryAfter))
	return scimerr.New(http.StatusServiceUnavailable, "",
		"the custom field definitions are not available yet; retry after %s", s.cfg.RetryAfter)
}

// namesUnknownEnterpriseAttr reports whether obj (a resource body or a
// PATCH value without a path) names an attribute of the enterprise
// extension that rt does not know: on a non-authoritative type that may be
// a custom field whose definition could not be read.
func namesUnknownEnterpriseAttr(rt *schema.ResourceType, obj map[string]any) bool {
	for k, v := range obj {
		if strings.EqualFold(k, repository.EnterpriseURN) {
			ext, _ := v.(map[string]any)
			for name := range ext {
				if _, err := rt.Resolve(repository.EnterpriseURN, name, ""); err != nil {
					return true
				}
			}
		} else if namesUnknownEnterprisePath(rt, k) {
			return true
		}
	}
	return false
}

// namesUnknownEnterprisePath is namesUnknownEnterpriseAttr for one path.
func namesUnknownEnterprisePath(rt *schema.ResourceType, path string) bool {
	urn, attr, _, err := schema.SplitPath(path)
	if err != nil || !strings.EqualFold(urn, repository.EnterpriseURN) {
		return false
	}
	_, err = rt.Resolve(urn, attr, "")
	return err != nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt, authoritative := s.writeUserType(r.Context(), rq.tenant())
	body, _, err := s.readJSON(r)
	if err != nil {
		return err
	}
	if !authoritative && namesUnknownEnterpriseAttr(rt, body) {
		return s.customFieldsUnavailable(w)
	}
	doc, err := rt.Canonicalize(body, schema.ModeCreate)
	if err != nil {
		return err
	}
	spec, err := repository.UserSpec(doc)
	if err != nil {
		return scimerr.InvalidValue("%v", err)
	}
	u, err := s.repo.CreateUser(r.Context(), rq.writer(), spec)
	if err != nil {
		return err
	}
	s.warnEmails(r.Context(), u, nil)
	s.audit(rq, "create", "User", u.Name)
	return s.respondUser(w, r, rq, rt, u, http.StatusCreated)
}

// replaceUser is PUT (RFC 7644 §3.5.1): the body replaces every writable
// attribute. Okta PUTs without "active" when it changes something else, so
// an omitted active keeps its value instead of reverting to true.
func (s *Server) replaceUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt, authoritative := s.writeUserType(r.Context(), rq.tenant())
	body, _, err := s.readJSON(r)
	if err != nil {
		return err
	}
	if !authoritative && namesUnknownEnterpriseAttr(rt, body) {
		return s.customFieldsUnavailable(w)
	}
	doc, err := rt.Canonicalize(body, schema.ModeReplace)
	if err != nil {
		return err
	}
	_, hasActive := doc["active"]
	spec, err := repository.UserSpec(doc)
	if err != nil {
		return scimerr.InvalidValue("%v", err)
	}
	id := r.PathValue("id")
	var before []string
	u, err := s.repo.UpdateUser(r.Context(), rq.writer(), id, ifMatch(r), func(u *scimv1.ProvisionedUser) (bool, error) {
		before = repository.NotAddresses(&u.Spec)
		next := spec.DeepCopy()
		if !hasActive {
			next.Active = u.Spec.Active
		}
		if !authoritative && u.Spec.Enterprise != nil && len(u.Spec.Enterprise.CustomFields) > 0 {
			// The request could not name the custom fields; keep them.
			if next.Enterprise == nil {
				next.Enterprise = &scimv1.EnterpriseUser{}
			}
			next.Enterprise.CustomFields = u.Spec.Enterprise.DeepCopy().CustomFields
		}
		if equalUser(&u.Spec, next) {
			return false, nil
		}
		u.Spec = *next
		return true, nil
	})
	if err != nil {
		return err
	}
	s.warnEmails(r.Context(), u, before)
	s.audit(rq, "replace", "User", id)
	return s.respondUser(w, r, rq, rt, u, http.StatusOK)
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	rt, authoritative := s.writeUserType(r.Context(), rq.tenant())
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	req, err := patch.Decode(body, patch.Limits{MaxOperations: s.cfg.MaxOperations})
	if err != nil {
		return err
	}
	if !authoritative {
		// Stored custom fields survive a PATCH (the document keeps what the
		// schema does not know); only operations naming one must wait.
		for _, op := range req.Operations {
			value, _ := op.Value.(map[string]any)
			if op.Path == "" && namesUnknownEnterpriseAttr(rt, value) ||
				strings.EqualFold(op.Path, repository.EnterpriseURN) &&
					namesUnknownEnterpriseAttr(rt, map[string]any{repository.EnterpriseURN: value}) ||
				namesUnknownEnterprisePath(rt, op.Path) {
				return s.customFieldsUnavailable(w)
			}
		}
	}
	id := r.PathValue("id")
	var before []string
	u, err := s.repo.UpdateUser(r.Context(), rq.writer(), id, ifMatch(r), func(u *scimv1.ProvisionedUser) (bool, error) {
		before = repository.NotAddresses(&u.Spec)
		doc := repository.UserDoc(&u.Spec)
		res, err := patch.Apply(rt, doc, req.Operations, patch.Options{})
		if err != nil || !res.Changed {
			return false, err
		}
		spec, err := repository.UserSpec(doc)
		if err != nil {
			return false, scimerr.InvalidValue("%v", err)
		}
		if equalUser(&u.Spec, &spec) {
			return false, nil
		}
		u.Spec = spec
		return true, nil
	})
	if err != nil {
		return err
	}
	s.warnEmails(r.Context(), u, before)
	s.audit(rq, "patch", "User", id)
	// RFC 7644 §3.5.2: 200 with the resource, or 204. The resource is sent
	// when the client asks for attributes; otherwise 204 saves rendering
	// (Entra and the validators read the user back with a GET).
	q := r.URL.Query()
	if q.Has("attributes") || q.Has("excludedAttributes") {
		return s.respondUser(w, r, rq, rt, u, http.StatusOK)
	}
	w.Header().Set("ETag", etag(repository.Version(&u.ObjectMeta)))
	return noContent(w, rq)
}

// warnEmails leaves a Warning event on u for emails[].value that are not
// RFC 5321 addresses and were not stored before this request (before):
// they are stored as sent (RFC 7643 §4.1.2 says SHOULD), and an operator
// may want to know. Values are not logged; the event names the positions.
func (s *Server) warnEmails(ctx context.Context, u *scimv1.ProvisionedUser, before []string) {
	var fresh []string
	for _, v := range repository.NotAddresses(&u.Spec) {
		if !slices.Contains(before, v) {
			fresh = append(fresh, v)
		}
	}
	if len(fresh) == 0 {
		return
	}
	var at []string
	for i, e := range u.Spec.Emails {
		if slices.Contains(fresh, e.Value) {
			at = append(at, fmt.Sprintf("emails[%d]", i))
		}
	}
	s.repo.Warn(ctx, u, "ProvisionedUser", repository.EventEmailNotAnAddress,
		fmt.Sprintf("%s: not an RFC 5321 address (name@domain); stored as sent", strings.Join(at, ", ")))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := s.repo.DeleteUser(r.Context(), rq.writer(), id, ifMatch(r)); err != nil {
		return err
	}
	s.audit(rq, "delete", "User", id)
	return noContent(w, rq)
}

// equalUser compares two specs as SCIM documents, so that a PATCH or PUT
// restating what is stored costs no write.
func equalUser(a, b *scimv1.ProvisionedUserSpec) bool {
	return docEqual(repository.UserDoc(a), repository.UserDoc(b))
}

// meta renders the SCIM meta attribute. version is the resourceVersion, so
// ETags follow every write (RFC 7644 §3.14).
func meta(resourceType, location string, om *metav1.ObjectMeta) map[string]any {
	created := om.CreationTimestamp.UTC()
	modified := created
	if v, ok := om.Annotations[repository.AnnotationLastModified]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			modified = t.UTC()
		}
	}
	return map[string]any{
		"resourceType": resourceType,
		"created":      created.Format(time.RFC3339),
		"lastModified": modified.Format(time.RFC3339Nano),
		"location":     location,
		"version":      etag(repository.Version(om)),
	}
}

func (s *Server) audit(rq *request, op, resourceType, id string) {
	// Ids only: names and emails stay out of the log unless debug is on.
	rq.log.Info("scim write", "operation", op, "resourceType", resourceType, "resourceId", id)
}
