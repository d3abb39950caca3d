package operator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestLeastPrivilege runs the operator as a user bound to exactly the
// ClusterRole in config/rbac/role.yaml (generated from the code's RBAC
// markers) instead of cluster-admin, and drives a whole provisioning flow:
// token issue, SCIM user and group writes, membership, the helpdesk sync and
// deletion. Any verb the code uses but the role lacks fails the flow.
func TestLeastPrivilege(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.Namespace(t)

	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		t.Fatal(err)
	}
	user := "scim-operator-" + strings.ToLower(ns)
	role.Name = user
	if err := e.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if err := e.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(ctx, binding); _ = e.Client.Delete(ctx, role) })
	cfg, err := e.ConfigFor(user)
	if err != nil {
		t.Fatal(err)
	}

	store, err := helpdesk.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "helpdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	base := startOperator(t, cfg, operator.Options{Helpdesk: store})
	token := issueToken(t, ns, base)
	mustCall := func(want int, method, path, body string) string {
		t.Helper()
		code, out := call(t, base, token, method, path, body)
		if code != want {
			t.Fatalf("%s %s: want %d, got %d %s", method, path, want, code, out)
		}
		return out
	}
	idOf := func(body string) string {
		i := strings.Index(body, `"id":"`)
		return body[i+6 : i+6+36]
	}
	uid := idOf(mustCall(201, "POST", "/Users", `{"userName":"rbac@example.test"}`))
	gid := idOf(mustCall(201, "POST", "/Groups", `{"displayName":"RBAC"}`))
	mustCall(204, "PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]}`)
	mustCall(204, "PATCH", "/Users/"+uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	waitFor(t, func() error {
		members, err := store.GroupMembers(ctx, ns, gid)
		if err != nil || len(members) != 1 {
			return fmt.Errorf("members %v, %v", members, err)
		}
		row, err := store.GetUser(ctx, ns, uid)
		if err != nil || row.Active {
			return fmt.Errorf("user row %+v, %v", row, err)
		}
		return nil
	})
	mustCall(204, "DELETE", "/Users/"+uid, "")
	mustCall(204, "DELETE", "/Groups/"+gid, "")
	waitFor(t, func() error {
		row, err := store.GetUser(ctx, ns, uid)
		if err != nil || row.DeletedAt == nil {
			return fmt.Errorf("deleted user row %+v, %v", row, err)
		}
		g, err := store.GetGroup(ctx, ns, gid)
		if err != nil || g.DeletedAt == nil {
			return fmt.Errorf("deleted group row %+v, %v", g, err)
		}
		return nil
	})
}
