package operator_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	_ "modernc.org/sqlite"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestCustomFields: a field the helpdesk defines in helpdesk_custom_fields
// appears in /Schemas as an enterprise attribute, is accepted in POST and
// PATCH, kept on the ProvisionedUser, written to custom_fields, and a value
// of the wrong type gets 400 invalidValue.
func TestCustomFields(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	store := sqliteStore(t, `(?, 'Shoe Size (EU)', 'integer'), ('*', 'On Call', 'boolean')`, ns)

	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: store})
	token := issueToken(t, ns, base)

	code, body := call(t, base, token, "GET", "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "")
	if code != 200 || !strings.Contains(body, `"name":"shoe-size-eu"`) || !strings.Contains(body, `"name":"on-call"`) {
		t.Fatalf("custom fields missing from the enterprise schema: %d %s", code, body)
	}
	const ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	code, body = call(t, base, token, "POST", "/Users", `{"userName":"feet@example.test","`+ext+`":{"shoe-size-eu":"44"}}`)
	if code != 400 || !strings.Contains(body, `"invalidValue"`) {
		t.Fatalf("a string for an integer field: want 400 invalidValue, got %d %s", code, body)
	}
	code, body = call(t, base, token, "POST", "/Users", `{"userName":"feet@example.test","`+ext+`":{"Shoe-Size-EU":44,"department":"Ops"}}`)
	if code != 201 {
		t.Fatalf("POST with a custom field: %d %s", code, body)
	}
	var created map[string]any
	_ = json.Unmarshal([]byte(body), &created)
	id := created["id"].(string)
	code, body, hdr := callH(t, base, token, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"`+ext+`:on-call","value":"True"}]}`)
	if code != 204 {
		t.Fatalf("PATCH a custom field: %d %s", code, body)
	}
	patchedETag := hdr.Get("ETag")
	var u scimv1.ProvisionedUser
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &u); err != nil {
		t.Fatal(err)
	}
	if u.Spec.Enterprise == nil || string(u.Spec.Enterprise.CustomFields["shoe-size-eu"].Raw) != "44" || string(u.Spec.Enterprise.CustomFields["on-call"].Raw) != "true" {
		t.Fatalf("custom fields not kept on the ProvisionedUser: %+v", u.Spec.Enterprise)
	}
	waitFor(t, func() error {
		row, err := store.GetUser(ctx, ns, id)
		if err != nil {
			return err
		}
		if row.CustomFields["shoe-size-eu"] != float64(44) || row.CustomFields["on-call"] != true || row.Department != "Ops" {
			return fmt.Errorf("row custom fields %v", row.CustomFields)
		}
		return nil
	})
	// The controller's status write after the sync is no SCIM change: the
	// ETag a client holds stays valid.
	waitFor(t, func() error {
		var cur scimv1.ProvisionedUser
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &cur); err != nil {
			return err
		}
		if cur.Status.ObservedGeneration != cur.Generation || cur.Status.LastSyncTime == nil {
			return fmt.Errorf("status not written yet: %+v", cur.Status)
		}
		return nil
	})
	if _, _, hdr := callH(t, base, token, "GET", "/Users/"+id, ""); hdr.Get("ETag") != patchedETag || patchedETag == "" {
		t.Fatalf("ETag moved with a status write: after PATCH %q, now %q", patchedETag, hdr.Get("ETag"))
	}
}

// startOperator runs an operator with a SCIM listener on a free port until
// the test ends and returns its SCIM base URL.
func startOperator(t *testing.T, cfg *rest.Config, o operator.Options) string {
	t.Helper()
	addr := make(chan string, 1)
	o.Scheme, o.Log = env.Scheme, zap.New(zap.UseDevMode(true))
	o.SCIMAddr, o.SCIMBound, o.SkipControllerNameValidation = "127.0.0.1:0", func(a string) { addr <- a }, true
	op, err := operator.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if o.Component == operator.ComponentControllers {
		return "" // serves no SCIM
	}
	select {
	case a := <-addr:
		return "http://" + a + "/scim/v2"
	case err := <-done:
		t.Fatalf("the operator stopped before serving SCIM: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the operator did not start serving SCIM within 60s (a missing list/watch permission stops the caches from syncing)")
	}
	return ""
}

// issueToken creates ScimToken "t" in ns and returns its token once the
// SCIM server at base accepts it.
func issueToken(t *testing.T, ns, base string) string {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	var token string
	waitFor(t, func() error {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "t-token"}, &s); err != nil {
			return err
		}
		token = string(s.Data["token"])
		if code, _ := call(t, base, token, "GET", "/ServiceProviderConfig", ""); code != 200 {
			return fmt.Errorf("token not accepted yet (%d)", code)
		}
		return nil
	})
	return token
}

func waitFor(t *testing.T, f func() error) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, f)
}

func call(t *testing.T, base, token, method, path, body string) (int, string) {
	t.Helper()
	code, out, _ := callH(t, base, token, method, path, body)
	return code, out
}

func callH(t *testing.T, base, token, method, path, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// sqliteStore opens a helpdesk database in SQLite for the test and, when
// fields is not empty, declares custom fields: the VALUES rows of
// helpdesk_custom_fields (tenant, name, type), with args for their "?".
func sqliteStore(t *testing.T, fields string, args ...any) helpdesk.Store {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "helpdesk.db")
	store, err := helpdesk.Open(context.Background(), "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if fields == "" {
		return store
	}
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO helpdesk_custom_fields (tenant, name, type) VALUES `+fields, args...); err != nil {
		t.Fatal(err)
	}
	return store
}
