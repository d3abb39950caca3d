package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// definitionsDown is a helpdesk store whose custom field definitions cannot
// be read while down is set; everything else reaches the real database.
type definitionsDown struct {
	helpdesk.Store
	down atomic.Bool
}

func (d *definitionsDown) CustomFields(ctx context.Context, tenant string) ([]helpdesk.CustomField, error) {
	if d.down.Load() {
		return nil, errors.New("helpdesk database down")
	}
	return d.Store.CustomFields(ctx, tenant)
}

// TestCustomFieldsSurviveDefinitionOutage: a replica that never could read
// the custom field definitions keeps the stored custom fields on PUT (and
// the helpdesk row keeps them), and answers 503 with Retry-After to a write
// naming a custom field instead of dropping it or refusing it with 400.
func TestCustomFieldsSurviveDefinitionOutage(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	store := sqliteStore(t, `(?, 'Shoe Size (EU)', 'integer')`, ns)
	const ext = enterpriseURN

	// Replica A reads the definitions; the user gets a custom field.
	token, id := userWithCustomFieldOnReplicaA(t, e, ns, store)
	// Replica B starts while the definitions cannot be read.
	baseB, down := startReplicaWithoutDefinitions(t, e, ns, store, token)

	code, body := call(t, baseB, token, "PUT", "/Users/"+id, `{"userName":"feet@example.test","`+ext+`":{"department":"Sales"}}`)
	if code != 200 {
		t.Fatalf("PUT without the custom field: %d %s", code, body)
	}
	var u scimv1.ProvisionedUser
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &u); err != nil {
		t.Fatal(err)
	}
	if u.Spec.Enterprise == nil || u.Spec.Enterprise.Department != "Sales" || string(u.Spec.Enterprise.CustomFields["shoe-size-eu"].Raw) != "44" {
		t.Fatalf("PUT on a replica without the definitions: want department Sales and shoe-size-eu 44, got %+v", u.Spec.Enterprise)
	}
	waitFor(t, func() error {
		row, err := store.GetUser(ctx, ns, id)
		if err != nil {
			return err
		}
		if row.Department != "Sales" || row.CustomFields["shoe-size-eu"] != float64(44) {
			return fmt.Errorf("row department %q, custom fields %v", row.Department, row.CustomFields)
		}
		return nil
	})

	// A PATCH not naming a custom field goes through and keeps it.
	code, body = call(t, baseB, token, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"`+ext+`:department","value":"Ops"}]}`)
	if code != 204 {
		t.Fatalf("PATCH without a custom field: %d %s", code, body)
	}

	// Writes naming a custom field wait for the definitions.
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/Users", `{"userName":"boots@example.test","` + ext + `":{"shoe-size-eu":45}}`},
		{"POST", "/Users", `{"userName":"boots@example.test","` + ext + `:shoe-size-eu":45}`},
		{"PUT", "/Users/" + id, `{"userName":"feet@example.test","` + ext + `":{"shoe-size-eu":46}}`},
		{"PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"` + ext + `:shoe-size-eu","value":46}]}`},
		{"PATCH", "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"` + ext + `":{"shoe-size-eu":46}}}]}`},
	} {
		code, body, hdr := callH(t, baseB, token, w.method, w.path, w.body)
		if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "custom field definitions are not available yet") {
			t.Errorf("%s %s %s: want 503 with Retry-After, got %d %q %s", w.method, w.path, w.body, code, hdr.Get("Retry-After"), body)
		}
	}
	code, body = call(t, baseB, token, "GET", "/Users?filter="+url.QueryEscape(`userName eq "boots@example.test"`), "")
	if code != 200 || !strings.Contains(body, `"totalResults":0`) {
		t.Fatalf("a refused POST created a user: %d %s", code, body)
	}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &u); err != nil {
		t.Fatal(err)
	}
	if u.Spec.Enterprise == nil || u.Spec.Enterprise.Department != "Ops" || string(u.Spec.Enterprise.CustomFields["shoe-size-eu"].Raw) != "44" {
		t.Fatalf("after the refused writes: want department Ops and shoe-size-eu 44, got %+v", u.Spec.Enterprise)
	}

	// Once the definitions are readable, the same POST is accepted.
	down.down.Store(false)
	code, body = call(t, baseB, token, "POST", "/Users", `{"userName":"boots@example.test","`+ext+`":{"shoe-size-eu":45}}`)
	if code != 201 || !strings.Contains(body, `"shoe-size-eu":45`) {
		t.Fatalf("POST after the outage: %d %s", code, body)
	}
}

const enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// userWithCustomFieldOnReplicaA starts a replica that reads the definitions
// and creates a user with shoe-size-eu 44 through it; it returns the
// tenant's token and the user's id.
func userWithCustomFieldOnReplicaA(t *testing.T, e *testenv.Env, ns string, store helpdesk.Store) (token, id string) {
	t.Helper()
	baseA := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: &definitionsDown{Store: store}})
	token = issueToken(t, ns, baseA)
	code, body := call(t, baseA, token, "POST", "/Users", `{"userName":"feet@example.test","`+enterpriseURN+`":{"shoe-size-eu":44,"department":"Ops"}}`)
	if code != 201 {
		t.Fatalf("POST with a custom field: %d %s", code, body)
	}
	var created map[string]any
	_ = json.Unmarshal([]byte(body), &created)
	return token, created["id"].(string)
}

// startReplicaWithoutDefinitions starts a replica whose custom field
// definitions cannot be read until down is cleared, and waits until it
// accepts token.
func startReplicaWithoutDefinitions(t *testing.T, e *testenv.Env, ns string, store helpdesk.Store, token string) (string, *definitionsDown) {
	t.Helper()
	down := &definitionsDown{Store: store}
	down.down.Store(true)
	baseB := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: down})
	waitFor(t, func() error {
		if code, _ := call(t, baseB, token, "GET", "/ServiceProviderConfig", ""); code != 200 {
			return fmt.Errorf("token not accepted yet (%d)", code)
		}
		return nil
	})
	return baseB, down
}
