package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

const (
	schemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaPatch      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// scimClient speaks SCIM over one keep-alive pool, as an identity
// provider's HTTP client does.
type scimClient struct {
	base, token string
	hc          *http.Client
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 128, // >= the highest concurrency, so no connection is re-dialled
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// do sends body as JSON and decodes a 2xx answer into out; any other status
// is an error carrying the start of the body.
func (c *scimClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode/100 != 2 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, truncate(string(raw), 200))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: decoding: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

type idOnly struct {
	ID   string `json:"id"`
	Meta struct {
		LastModified time.Time `json:"lastModified"`
	} `json:"meta"`
}

type listResponse struct {
	TotalResults int      `json:"totalResults"`
	Resources    []idOnly `json:"Resources"`
}

// userDoc is the user Entra sends with its default attribute mappings
// (mailNickname as externalId, the enterprise extension's department and
// employeeNumber).
func userDoc(userName string, i int) map[string]any {
	return map[string]any{
		"schemas":     []string{schemaUser, schemaEnterprise},
		"userName":    userName,
		"externalId":  fmt.Sprintf("ext-%d", i),
		"active":      true,
		"displayName": fmt.Sprintf("Bench User %d", i),
		"title":       "Engineer",
		"name":        map[string]string{"givenName": "Bench", "familyName": fmt.Sprintf("User%d", i)},
		"emails":      []map[string]any{{"value": userName, "type": "work", "primary": true}},
		schemaEnterprise: map[string]string{
			"department": fmt.Sprintf("Dept %d", i%20), "employeeNumber": fmt.Sprintf("%d", 100000+i),
		},
	}
}

// createUser returns the new id and meta.lastModified, which is the
// operator's own start of the sync lag (its last-modified annotation).
func (c *scimClient) createUser(ctx context.Context, userName string, i int) (string, time.Time, error) {
	var u idOnly
	if _, err := c.do(ctx, http.MethodPost, "/Users", userDoc(userName, i), &u); err != nil {
		return "", time.Time{}, err
	}
	if u.ID == "" {
		return "", time.Time{}, fmt.Errorf("POST /Users answered without an id")
	}
	return u.ID, u.Meta.LastModified, nil
}

// findUser is Entra's matching query; it returns the number of results.
func (c *scimClient) findUser(ctx context.Context, userName string) (int, error) {
	return c.find(ctx, "/Users", "userName", userName)
}

func (c *scimClient) find(ctx context.Context, path, attr, value string) (int, error) {
	var l listResponse
	q := url.Values{"filter": {fmt.Sprintf("%s eq %q", attr, value)}}
	if _, err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &l); err != nil {
		return 0, err
	}
	return l.TotalResults, nil
}

// patchUserEntra is the multi-operation PATCH Entra sends when several
// attributes change at once: a string boolean, a filtered path, and a
// no-path replace of several attributes.
func (c *scimClient) patchUserEntra(ctx context.Context, id string, i int) error {
	body := map[string]any{
		"schemas": []string{schemaPatch},
		"Operations": []map[string]any{
			{"op": "Replace", "path": "active", "value": "False"},
			{"op": "Add", "path": `addresses[type eq "work"].locality`, "value": fmt.Sprintf("City %d", i)},
			{"op": "replace", "value": map[string]any{
				"displayName": fmt.Sprintf("Patched User %d", i), "name.givenName": fmt.Sprintf("Given%d", i)}},
		},
	}
	_, err := c.do(ctx, http.MethodPatch, "/Users/"+id, body, nil)
	return err
}

// replaceUser is a PUT of the whole user, as Okta sends it: the document
// of the create with another displayName (and, after patchUserEntra,
// active again and no address).
func (c *scimClient) replaceUser(ctx context.Context, id, userName string, i int) error {
	doc := userDoc(userName, i)
	doc["displayName"] = fmt.Sprintf("Replaced User %d", i)
	_, err := c.do(ctx, http.MethodPut, "/Users/"+id, doc, nil)
	return err
}

func (c *scimClient) setManager(ctx context.Context, id, manager string) error {
	body := map[string]any{
		"schemas": []string{schemaPatch},
		"Operations": []map[string]any{
			{"op": "Add", "path": schemaEnterprise + ":manager", "value": manager},
		},
	}
	_, err := c.do(ctx, http.MethodPatch, "/Users/"+id, body, nil)
	return err
}

func (c *scimClient) createGroup(ctx context.Context, name string) (string, error) {
	var g idOnly
	body := map[string]any{"schemas": []string{schemaGroup}, "displayName": name, "externalId": "ext-" + name}
	if _, err := c.do(ctx, http.MethodPost, "/Groups", body, &g); err != nil {
		return "", err
	}
	if g.ID == "" {
		return "", fmt.Errorf("POST /Groups answered without an id")
	}
	return g.ID, nil
}

// addMembers is Entra's member PATCH: one Add of up to 100 members.
func (c *scimClient) addMembers(ctx context.Context, group string, ids []string) error {
	return c.memberPatch(ctx, group, "Add", ids)
}

// removeMembers is Entra's member removal: one Remove listing the members.
func (c *scimClient) removeMembers(ctx context.Context, group string, ids []string) error {
	return c.memberPatch(ctx, group, "Remove", ids)
}

func (c *scimClient) memberPatch(ctx context.Context, group, op string, ids []string) error {
	vals := make([]map[string]string, len(ids))
	for i, id := range ids {
		vals[i] = map[string]string{"value": id}
	}
	body := map[string]any{
		"schemas":    []string{schemaPatch},
		"Operations": []map[string]any{{"op": op, "path": "members", "value": vals}},
	}
	_, err := c.do(ctx, http.MethodPatch, "/Groups/"+group, body, nil)
	return err
}

// accepted reports whether the server takes the token (the Secret is
// written a moment before the authenticator sees the token).
func (c *scimClient) accepted(ctx context.Context) bool {
	_, err := c.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil)
	return err == nil
}
