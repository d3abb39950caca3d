package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestFieldOwner: everything the operator writes names it as the field
// manager, whatever the binary is called (under `go run` it was "cmd", in
// this test binary "operator.test").
func TestFieldOwner(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: sqliteStore(t, "")})
	token := issueToken(t, ns, base)
	code, body := call(t, base, token, "POST", "/Users", `{"userName":"owner@example.test"}`)
	if code != 201 {
		t.Fatalf("POST /Users: %d %s", code, body)
	}
	id := body[strings.Index(body, `"id":"`)+6:][:36]

	managers := func(obj client.Object, subresource string) []string {
		var out []string
		for _, m := range obj.GetManagedFields() {
			if m.Subresource == subresource {
				out = append(out, m.Manager)
			}
		}
		return out
	}
	waitFor(t, func() error {
		var u scimv1.ProvisionedUser
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: id}, &u); err != nil {
			return err
		}
		var s corev1.Secret
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "t-token"}, &s); err != nil {
			return err
		}
		var tok scimv1.ScimToken
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "t"}, &tok); err != nil {
			return err
		}
		for what, got := range map[string][]string{
			"the user":          managers(&u, ""),
			"the user's status": managers(&u, "status"),
			"the token Secret":  managers(&s, ""),
			"the token status":  managers(&tok, "status"),
		} {
			if len(got) == 0 {
				return fmt.Errorf("%s has no managed fields yet", what)
			}
			for _, m := range got {
				if m != operator.FieldOwner {
					return fmt.Errorf("%s is managed by %q, want %q", what, m, operator.FieldOwner)
				}
			}
		}
		return nil
	})
}
