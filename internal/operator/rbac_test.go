package operator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/controllers"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/installkey"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// rbacObjects reads the RBAC objects of a file in config/rbac by name.
func rbacObjects(t *testing.T, file string) map[string]*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out[u.GetName()] = u
		}
	}
}

// grant creates a copy of a role from config/rbac under a per-test name and
// binds user to it: cluster-wide (ns "") or in ns.
func grant(t *testing.T, role *unstructured.Unstructured, user, ns string) {
	t.Helper()
	e, ctx := env, context.Background()
	var rules []rbacv1.PolicyRule
	raw, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range raw {
		var rule rbacv1.PolicyRule
		if err := runtimeConvert(r, &rule); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rule)
	}
	name := user + "-" + role.GetName()
	ref := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Name: name}
	subjects := []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}
	var objs []client.Object
	switch {
	case role.GetKind() == "Role":
		ref.Kind = "Role"
		objs = append(objs, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, RoleRef: ref, Subjects: subjects})
	case ns == "":
		ref.Kind = "ClusterRole"
		objs = append(objs, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subjects})
	default: // a ClusterRole bound in one namespace
		ref.Kind = "ClusterRole"
		objs = append(objs, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, RoleRef: ref, Subjects: subjects})
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(ctx, o) })
	}
}

func runtimeConvert(in any, out any) error {
	m, ok := in.(map[string]any)
	if !ok {
		return fmt.Errorf("a rule is not an object: %v", in)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, out)
}

// TestLeastPrivilege runs the operator split as the chart and config/default
// deploy it, each part as a user bound to exactly its roles from
// config/rbac (role.yaml is generated from the code's RBAC markers):
//
//   - the controllers: controller-role cluster-wide, token-secrets only in
//     the tenant namespace, installation-key-creator in the operator's;
//   - the SCIM server: scim-role cluster-wide and installation-key-reader,
//     which reads one Secret; nothing else about Secrets.
//
// It drives a whole flow (token issue, SCIM user and group writes,
// membership, the helpdesk sync, deletion): a verb the code uses but a role
// lacks fails it. And it checks what the roles must not allow: the SCIM
// server reads, lists and creates no Secret of the tenant; the controllers
// list no Secret outside the tenant namespaces.
func TestLeastPrivilege(t *testing.T) {
	x := newLeastPrivilege(t)
	x.flowPassesTheRoles(t)
	x.scimWritesOnlyUsageToStatus(t)
	x.noTokenOutsideTenantNamespaces(t)
	x.rolesForbid(t)
}

// leastPrivilege is the split operator of TestLeastPrivilege: the
// controllers and the SCIM server each run as a user bound to its roles,
// serving the tenant namespace ns; other is not served; system is the
// operator's own namespace (the installation key).
type leastPrivilege struct {
	e                  *testenv.Env
	ctx                context.Context
	ns, other, system  string
	ctrlUser, scimUser string
	ctrlCfg, scimCfg   *rest.Config
	store              helpdesk.Store
	base, token        string
}

// newLeastPrivilege binds each part to its roles from config/rbac.
func newLeastPrivilege(t *testing.T) *leastPrivilege {
	t.Helper()
	e := testenv.Require(t, env)
	x := &leastPrivilege{e: e, ctx: context.Background(), ns: e.Namespace(t), other: e.Namespace(t), system: e.Namespace(t)}
	var err error
	cluster := rbacObjects(t, "role.yaml")
	keyRoles := rbacObjects(t, "installation_key_role.yaml")
	for _, name := range []string{"controller-role", "scim-role", "token-secrets"} {
		if cluster[name] == nil {
			t.Fatalf("config/rbac/role.yaml has no ClusterRole %s", name)
		}
	}
	if cluster["manager-role"] != nil {
		t.Error("config/rbac/role.yaml still has the one-for-all manager-role")
	}
	x.ctrlUser, x.scimUser = "ctrl-"+strings.ToLower(x.ns), "scim-"+strings.ToLower(x.ns)
	grant(t, cluster["controller-role"], x.ctrlUser, "")
	grant(t, cluster["token-secrets"], x.ctrlUser, x.ns)
	grant(t, keyRoles["installation-key-creator"], x.ctrlUser, x.system)
	grant(t, cluster["scim-role"], x.scimUser, "")
	grant(t, keyRoles["installation-key-reader"], x.scimUser, x.system)
	x.ctrlCfg, err = e.ConfigFor(x.ctrlUser)
	if err != nil {
		t.Fatal(err)
	}
	x.scimCfg, err = e.ConfigFor(x.scimUser)
	if err != nil {
		t.Fatal(err)
	}
	x.startOperators(t)
	return x
}

// startOperators runs both parts on one helpdesk database and issues the
// tenant's token.
func (x *leastPrivilege) startOperators(t *testing.T) {
	t.Helper()
	store, err := helpdesk.Open(x.ctx, "sqlite://"+filepath.Join(t.TempDir(), "helpdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	x.store = store
	key := client.ObjectKey{Namespace: x.system, Name: installkey.DefaultSecretName}
	startOperator(t, x.ctrlCfg, operator.Options{Component: operator.ComponentControllers, Helpdesk: x.store,
		InstallationKeySecret: key, TokenNamespaces: []string{x.ns}})
	x.base = startOperator(t, x.scimCfg, operator.Options{Component: operator.ComponentSCIM, Helpdesk: x.store,
		InstallationKeySecret: key})
	x.token = issueToken(t, x.ns, x.base)
}

// mustCall makes a SCIM request with the tenant's token and wants the code.
func (x *leastPrivilege) mustCall(t *testing.T, want int, method, path, body string) string {
	t.Helper()
	code, out := call(t, x.base, x.token, method, path, body)
	if code != want {
		t.Fatalf("%s %s: want %d, got %d %s", method, path, want, code, out)
	}
	return out
}

// idOf is the id of the resource in a SCIM response body.
func idOf(body string) string {
	i := strings.Index(body, `"id":"`)
	return body[i+6 : i+6+36]
}

// flowPassesTheRoles drives a whole flow (SCIM user and group writes,
// membership, the helpdesk sync, deletion): a verb the code uses but a role
// lacks fails it.
func (x *leastPrivilege) flowPassesTheRoles(t *testing.T) {
	uid := idOf(x.mustCall(t, 201, "POST", "/Users", `{"userName":"rbac@example.test"}`))
	gid := idOf(x.mustCall(t, 201, "POST", "/Groups", `{"displayName":"RBAC"}`))
	x.mustCall(t, 204, "PATCH", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]}`)
	x.mustCall(t, 204, "PATCH", "/Users/"+uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	waitFor(t, func() error {
		members, err := x.store.GroupMembers(x.ctx, x.ns, gid)
		if err != nil || len(members) != 1 {
			return fmt.Errorf("members %v, %v", members, err)
		}
		row, err := x.store.GetUser(x.ctx, x.ns, uid)
		if err != nil || row.Active {
			return fmt.Errorf("user row %+v, %v", row, err)
		}
		return nil
	})
	x.mustCall(t, 204, "DELETE", "/Users/"+uid, "")
	x.mustCall(t, 204, "DELETE", "/Groups/"+gid, "")
	waitFor(t, func() error {
		row, err := x.store.GetUser(x.ctx, x.ns, uid)
		if err != nil || row.DeletedAt == nil {
			return fmt.Errorf("deleted user row %+v, %v", row, err)
		}
		g, err := x.store.GetGroup(x.ctx, x.ns, gid)
		if err != nil || g.DeletedAt == nil {
			return fmt.Errorf("deleted group row %+v, %v", g, err)
		}
		return nil
	})
}

// The SCIM server may stamp token usage in status, and nothing else
// there: config/rbac/scim_status_policy.yaml, bound to this test's SCIM
// user. Without it the SCIM process could write a fingerprint and mint
// a token (review finding).
func (x *leastPrivilege) scimWritesOnlyUsageToStatus(t *testing.T) {
	statusPolicy(t, x.scimUser)
	scimClient, err := client.New(x.scimCfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Dry runs: admission judges them, nothing is stored (a write let
	// through before the policy is active must not stick).
	patchStatus := func(body string, opts ...client.SubResourcePatchOption) error {
		tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: x.ns, Name: "t"}}
		return scimClient.Status().Patch(x.ctx, tok, client.RawPatch(types.MergePatchType, []byte(body)), opts...)
	}
	dryRun := client.DryRunAll
	waitFor(t, func() error {
		if err := patchStatus(`{"status":{"fingerprint":"hmac-sha256:minted"}}`, dryRun); !apierrors.IsForbidden(err) {
			return fmt.Errorf("the SCIM user writing status.fingerprint: want Forbidden, got %v", err)
		}
		return nil
	})
	for _, body := range []string{`{"status":{"previousFingerprint":"sha256:minted","previousValidUntil":"2099-01-01T00:00:00Z"}}`,
		`{"status":{"pending":{"fingerprint":"hmac-sha256:minted","issuedAt":"2026-01-01T00:00:00Z"}}}`,
		`{"status":{"conditions":[]}}`} {
		if err := patchStatus(body, dryRun); !apierrors.IsForbidden(err) {
			t.Errorf("the SCIM user writing %s: want Forbidden, got %v", body, err)
		}
	}
	if err := patchStatus(`{"status":{"lastUsedAt":"2026-11-30T12:00:00Z"}}`); err != nil {
		t.Errorf("the SCIM user stamping usage: %v", err)
	}
	if err := patchStatus(`{"status":{"activity":{"updatedAt":"2026-11-30T12:00:00Z","refusedTotal":1}}}`, dryRun); err != nil {
		t.Errorf("the SCIM user writing activity: %v", err)
	}
	if err := patchStatus(`{"status":{"activity":{"refusedTotal":2},"fingerprint":"hmac-sha256:minted"}}`, dryRun); !apierrors.IsForbidden(err) {
		t.Errorf("the SCIM user writing activity and a fingerprint: want Forbidden, got %v", err)
	}
	if code, _ := call(t, x.base, x.token, "GET", "/ServiceProviderConfig", ""); code != 200 {
		t.Errorf("the token stopped working after the refused status writes: %d", code)
	}
}

// A ScimToken outside the tenant namespaces gets no token and says why;
// the controllers touch no Secret there.
func (x *leastPrivilege) noTokenOutsideTenantNamespaces(t *testing.T) {
	if err := env.Client.Create(x.ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: x.other, Name: "elsewhere"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		var tok scimv1.ScimToken
		if err := env.Client.Get(x.ctx, client.ObjectKey{Namespace: x.other, Name: "elsewhere"}, &tok); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
		if c == nil || c.Reason != controllers.ReasonNamespaceNotServed || tok.Status.Fingerprint != "" {
			return fmt.Errorf("a ScimToken outside the tenant namespaces: Ready %+v, fingerprint %q", c, tok.Status.Fingerprint)
		}
		return nil
	})
	var secrets corev1.SecretList
	if err := env.Client.List(x.ctx, &secrets, client.InNamespace(x.other)); err != nil || len(secrets.Items) != 0 {
		t.Errorf("Secrets in a namespace the controllers do not serve: %d, %v", len(secrets.Items), err)
	}
}

// forbidden wants the API server to refuse do, run as cfg's user.
func (x *leastPrivilege) forbidden(t *testing.T, what string, cfg *rest.Config, do func(c client.Client) error) {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := do(c); !apierrors.IsForbidden(err) {
		t.Errorf("%s: want Forbidden, got %v", what, err)
	}
}

// rolesForbid: what the roles must not allow.
func (x *leastPrivilege) rolesForbid(t *testing.T) {
	x.forbidden(t, "the SCIM server reads the tenant's token Secret", x.scimCfg, func(c client.Client) error {
		return c.Get(x.ctx, client.ObjectKey{Namespace: x.ns, Name: "t-token"}, &corev1.Secret{})
	})
	x.forbidden(t, "the SCIM server lists the tenant's Secrets", x.scimCfg, func(c client.Client) error {
		return c.List(x.ctx, &corev1.SecretList{}, client.InNamespace(x.ns))
	})
	x.forbidden(t, "the SCIM server creates a Secret in its own namespace", x.scimCfg, func(c client.Client) error {
		return c.Create(x.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: x.system, Name: "minted"}})
	})
	x.forbidden(t, "the controllers list Secrets outside the tenant namespaces", x.ctrlCfg, func(c client.Client) error {
		return c.List(x.ctx, &corev1.SecretList{}, client.InNamespace(x.other))
	})
	x.forbidden(t, "the controllers list Secrets cluster-wide", x.ctrlCfg, func(c client.Client) error {
		return c.List(x.ctx, &corev1.SecretList{})
	})
	x.forbidden(t, "the controllers create a Secret outside the tenant namespaces", x.ctrlCfg, func(c client.Client) error {
		return c.Create(x.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: x.other, Name: "minted"}})
	})
}

// scimStatusFields are the ScimToken status fields the SCIM server writes:
// usage stamps and provisioning activity. Every other field must be
// protected by scim_status_policy.yaml.
var scimStatusFields = map[string]bool{"lastUsedAt": true, "previousLastUsedAt": true, "activity": true}

// statusPolicy installs config/rbac/scim_status_policy.yaml for user (the
// policy matches the SCIM ServiceAccount's name; here it is a test user),
// and checks it names every ScimToken status field but the usage stamps.
func statusPolicy(t *testing.T, user string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "scim_status_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[scimv1.ScimTokenStatus]()) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || scimStatusFields[name] {
			continue
		}
		if !strings.Contains(string(raw), "object.status."+name+" ==") {
			t.Errorf("scim_status_policy.yaml does not protect status.%s from the SCIM server", name)
		}
	}
	var policy, binding *unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		switch u.GetKind() {
		case "ValidatingAdmissionPolicy":
			policy = u
		case "ValidatingAdmissionPolicyBinding":
			binding = u
		}
	}
	if policy == nil || binding == nil {
		t.Fatal("scim_status_policy.yaml lacks the policy or its binding")
	}
	name := "scim-status-writes-" + strings.ToLower(user)
	policy.SetName(name)
	conditions, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConditions")
	for i := range conditions {
		conditions[i].(map[string]any)["expression"] = fmt.Sprintf("request.userInfo.username == %q", user)
	}
	if err := unstructured.SetNestedSlice(policy.Object, conditions, "spec", "matchConditions"); err != nil {
		t.Fatal(err)
	}
	binding.SetName(name)
	if err := unstructured.SetNestedField(binding.Object, name, "spec", "policyName"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*unstructured.Unstructured{policy, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
}
