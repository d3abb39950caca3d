package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// TestTokenActivity: requests, among them refused ones, show in the
// ScimToken's status.activity and in `kubectl get scimtokens` (the Table
// the API server renders from the CRD's printer columns), without the
// user names, emails or ids the requests carried.
func TestTokenActivity(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplicaOpts(t, server.Config{}, func(o *operator.Options) {
		o.TokenActivity = tokens.ActivityOptions{MinInterval: time.Second, FlushInterval: 100 * time.Millisecond}
	}, ns)
	tok := issueToken(t, ns, "entra", r)
	const ua = "Azure Active Directory SCIM Client"
	const missing = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

	created := expect(t, r.do(t, tok, "POST", "/Users", entraCreate, "User-Agent", ua), 201)
	id := created.str("id")
	expect(t, r.do(t, tok, "GET", "/Users/"+missing, nil, "User-Agent", ua), 404)
	expect(t, r.do(t, tok, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","path":"displayName","value":"Alice L."}]}`, "User-Agent", ua), 204)
	// Not attributed: no token.
	expect(t, r.do(t, "", "GET", "/Users", nil, "User-Agent", ua), 401)
	expect(t, r.do(t, "not-a-token", "GET", "/Users", nil, "User-Agent", ua), 401)
	// The last refusal: a userName taken, whose detail names it.
	dup := expect(t, r.do(t, tok, "POST", "/Users", entraCreate, "User-Agent", ua), 409, "uniqueness")
	if !strings.Contains(strings.ToLower(dup.str("detail")), "alice@contoso.test") {
		t.Fatalf("the client's answer names the userName (the test relies on it): %s", dup.raw)
	}

	ctx := context.Background()
	var got *scimv1.TokenActivity
	eventually(t, 30*time.Second, func() error {
		var st scimv1.ScimToken
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "entra"}, &st); err != nil {
			return err
		}
		got = st.Status.Activity
		if got == nil || got.Requests["createUser"] != 2 || got.Requests["patchUser"] != 1 || got.RefusedTotal != 2 {
			return fmt.Errorf("activity %+v", got)
		}
		return nil
	})
	if got.Writes["createUser"] != 1 || got.Writes["patchUser"] != 1 || got.Requests["getUser"] != 1 || got.Requests["discovery"] < 1 {
		t.Errorf("requests %v, writes %v", got.Requests, got.Writes)
	}
	if got.Refused["409 uniqueness"] != 1 || got.Refused["404"] != 1 || len(got.Refused) != 2 {
		t.Errorf("refused %v (the 401s carry no token and are not attributed)", got.Refused)
	}
	if got.LastClient != ua || got.LastRequestAt == nil {
		t.Errorf("last request %v from %q", got.LastRequestAt, got.LastClient)
	}
	lr := got.LastRefusal
	if lr == nil || lr.Method != "POST" || lr.Path != "/Users" || lr.Status != 409 || lr.ScimType != "uniqueness" ||
		!strings.Contains(lr.Detail, "is already in use") {
		t.Errorf("last refusal %+v", lr)
	}
	raw, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, personal := range []string{"alice", "contoso", "liddell", missing, id} {
		if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(personal)) {
			t.Errorf("status.activity holds %q: %s", personal, raw)
		}
	}

	// kubectl get scimtokens: the columns and the row, as the API server
	// renders them from the CRD's additionalPrinterColumns.
	names, cells := tokenTable(t, ns, "entra")
	last, refused := slices.Index(names, "Last Request"), slices.Index(names, "Refused (1h)")
	if last < 0 || refused < 0 {
		t.Fatalf("columns %v lack Last Request and Refused (1h)", names)
	}
	if fmt.Sprint(cells[refused]) != "2" || fmt.Sprint(cells[last]) == "<nil>" || fmt.Sprint(cells[last]) == "" {
		t.Errorf("row %v: want Refused (1h) 2 and a Last Request", cells)
	}
}

// tokenTable gets the ScimToken ns/name as `kubectl get` does, as a Table
// the API server renders from the CRD's additionalPrinterColumns, and
// returns the column names and the one row's cells.
func tokenTable(t *testing.T, ns, name string) (columns []string, cells []any) {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", strings.TrimRight(env.Config.Host, "/")+
		"/apis/scim.helpdesk.dev/v1alpha1/namespaces/"+ns+"/scimtokens/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var table struct {
		Columns []struct{ Name string } `json:"columnDefinitions"`
		Rows    []struct{ Cells []any } `json:"rows"`
	}
	if err := json.Unmarshal(body, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("the Table of the ScimToken: %v: %s", err, body)
	}
	for _, c := range table.Columns {
		columns = append(columns, c.Name)
	}
	return columns, table.Rows[0].Cells
}
