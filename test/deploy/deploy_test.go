// Package deploy_test checks the deployment manifests against a real API
// server: the kustomize tree in config/default, the samples in
// config/samples, and the Helm chart in charts/scim-operator.
//
// It renders with the tools a platform team uses (kubectl kustomize, helm
// template) and submits the result with `kubectl apply --dry-run=server`, so
// the API server's own validation (schemas, field names, RBAC objects,
// admission) judges every object. On top of that it checks the wiring the
// API server cannot see (a Service selecting the Pods, a binding naming a
// role that exists, the Ingress pointing at the public URL), and that the
// chart renders the same objects as config/default.
//
// kubectl must be installed. helm is built from the Go module proxy with
// the version pinned in hack/tools/helm/go.mod; the first build takes a few
// minutes, later runs use the Go build cache.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	// The namespace and release name config/default and the chart's
	// defaults agree on.
	systemNamespace = "scim-operator-system"
	releaseName     = "scim-operator"
)

var root = testenv.RepoRoot()

// TestKustomizeDefault renders config/default and has the API server accept
// every object, with and without the optional components.
func TestKustomizeDefault(t *testing.T) {
	k := newDeployKit(t)

	rendered := run(t, nil, k.kubectl, "kustomize", filepath.Join(root, "config", "default"))
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	for _, name := range []string{"scim-operator-scim", "scim-operator-controllers"} {
		checkSizedFor100k(t, find(t, objs, "Deployment", systemNamespace, name))
	}

	// The Namespace is created for real (dry-run would leave the namespaced
	// objects nowhere to go), with its Pod Security label, so that the
	// Deployment's Pod template is judged against the restricted profile.
	var ns []byte
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ns = mustYAML(t, o)
		}
	}
	if ns == nil {
		t.Fatalf("config/default renders no Namespace")
	}
	run(t, ns, k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "-f", "-")
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))

	t.Run("pod security is checked", func(t *testing.T) { kustomizePodSecurityControl(t, k, objs) })
	t.Run("scim-tls component", func(t *testing.T) { kustomizeSCIMTLS(t, k) })
	t.Run("sqlite component", func(t *testing.T) { kustomizeSQLite(t, k) })
	t.Run("tenant namespaces overlay as documented", func(t *testing.T) { kustomizeTenantOverlay(t, k) })
}

// A control: the same Deployment without its security contexts draws a
// Pod Security warning, so the absence of warnings above means something.
func kustomizePodSecurityControl(t *testing.T, k *deployKit, objs []*unstructured.Unstructured) {
	dep := find(t, objs, "Deployment", systemNamespace, "scim-operator-scim").DeepCopy()
	unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "securityContext")
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		delete(c.(map[string]any), "securityContext")
	}
	if err := unstructured.SetNestedSlice(dep.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runFull(t, mustYAML(t, dep), k.kubectl, "--kubeconfig", k.kubeconfig, "apply", "--dry-run=server", "-f", "-")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	if !bytes.Contains(stderr, []byte("PodSecurity")) {
		t.Errorf("an unconfined Deployment drew no Pod Security warning (is the PodSecurity admission plugin off?): %q", stderr)
	}
}

// kustomizeSCIMTLS: subtest "scim-tls component" of TestKustomizeDefault.
func kustomizeSCIMTLS(t *testing.T, k *deployKit) {
	rendered := kustomizeWith(t, k.kubectl, "scim-tls")
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	dep := find(t, objs, "Deployment", systemNamespace, "scim-operator-scim")
	args := containerArgs(t, dep)
	for _, want := range []string{"--scim-tls-cert-file=/etc/scim-operator/tls/tls.crt", "--scim-tls-key-file=/etc/scim-operator/tls/tls.key"} {
		if !slices.Contains(args, want) {
			t.Errorf("with scim-tls the SCIM server lacks %s; args: %v", want, args)
		}
	}
	ing := find(t, objs, "Ingress", systemNamespace, "scim-operator-scim")
	if got := ing.GetAnnotations()["nginx.ingress.kubernetes.io/backend-protocol"]; got != "HTTPS" {
		t.Errorf("with scim-tls the Ingress backend protocol is %q, want HTTPS", got)
	}
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

// The default needs the database Secret; the sqlite component is the
// way to try the operator out without one, and must then run one Pod
// with both parts (--component=all), no PodDisruptionBudget
// (checkDeployment checks these) and no route to a database.
func kustomizeSQLite(t *testing.T, k *deployKit) {
	rendered := kustomizeWith(t, k.kubectl, "sqlite")
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	dep := find(t, objs, "Deployment", systemNamespace, "scim-operator-scim")
	if e := envVar(t, dep, "HELPDESK_DATABASE_URL"); e == nil || e.Value != "sqlite:///var/lib/scim-operator/helpdesk.db" {
		t.Errorf("with the sqlite component HELPDESK_DATABASE_URL is %+v, want the SQLite file on the data volume", e)
	}
	// The controllers' flags come along, with the values of
	// config/manager/controllers.yaml.
	controllers := containerArgs(t, find(t, decode(t, run(t, nil, k.kubectl, "kustomize", filepath.Join(root, "config", "default"))), "Deployment", systemNamespace, "scim-operator-controllers"))
	for _, a := range controllers {
		if f, _, _ := strings.Cut(a, "="); f != "--component" && !slices.Contains(containerArgs(t, dep), a) {
			t.Errorf("with the sqlite component the one Pod lacks the controllers' %s", a)
		}
	}
	np := find(t, objs, "NetworkPolicy", systemNamespace, "scim-operator-pods")
	if r := egressRuleFor(t, np, 5432); r != nil {
		t.Errorf("with the sqlite component the NetworkPolicy still lets the Pods reach a database: %+v", r)
	}
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

// config/default/kustomization.yaml shows, in a comment, the overlay
// that binds the token Secrets in the tenant namespaces only; built as
// written, it must do that.
func kustomizeTenantOverlay(t *testing.T, k *deployKit) {
	dir := documentedTenantOverlay(t)
	rendered := run(t, nil, k.kubectl, "kustomize", dir)
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	checkTenantNamespaces(t, objs, []string{"tenant-a", "tenant-b"})
	for _, ns := range []string{"tenant-a", "tenant-b"} {
		ensureNamespace(t, k.e, ns)
	}
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

// documentedTenantOverlay writes the overlay that the comment in
// config/default/kustomization.yaml shows into a directory next to (a link
// to) this repository's config, and returns the directory.
func documentedTenantOverlay(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "config", "default", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's files start at "#   # NAME" and end at the next file or
	// the first line that is not indented inside the comment.
	files := map[string]string{}
	var name string
	for _, line := range strings.Split(string(b), "\n") {
		body, inExample := strings.CutPrefix(line, "#   ")
		if line == "#" && name != "" {
			files[name] += "\n"
			continue
		}
		if !inExample {
			name = ""
			continue
		}
		if f, ok := strings.CutPrefix(body, "# "); ok {
			name, _, _ = strings.Cut(f, ":")
			continue
		}
		if name != "" {
			files[name] += body + "\n"
		}
	}
	bindings, ok := files["tenant-secrets.yaml"]
	if !ok || files["kustomization.yaml"] == "" {
		t.Fatalf("config/default/kustomization.yaml has no example kustomization.yaml and tenant-secrets.yaml: found %v", slices.Collect(maps.Keys(files)))
	}
	// "(the same with namespace: tenant-b)"
	first, _, _ := strings.Cut(bindings, "---")
	files["tenant-secrets.yaml"] = first + "---\n" + strings.ReplaceAll(first, "namespace: tenant-a", "namespace: tenant-b")
	dir := t.TempDir()
	for n, content := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "config"), filepath.Join(dir, "config")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kustomizeWith renders config/default with the named components of it.
func kustomizeWith(t *testing.T, kubectl string, components ...string) []byte {
	t.Helper()
	// An overlay outside the repository: kustomize wants relative paths.
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("resources:\n- %s\ncomponents:\n", rel)
	for _, c := range components {
		k += fmt.Sprintf("- %s\n", filepath.Join(rel, c))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return run(t, nil, kubectl, "kustomize", dir)
}

// TestSamples applies config/samples for real, both ways a person would
// (kubectl apply -f DIR and -k DIR), and reads the objects back.
func TestSamples(t *testing.T) {
	e := testenv.Require(t, env)
	kubectl := kubectlPath(t)
	kubeconfig := writeKubeconfig(t, e.Config)
	samples := filepath.Join(root, "config", "samples")

	for _, mode := range []string{"-f", "-k"} {
		t.Run("apply "+mode, func(t *testing.T) {
			ns := e.Namespace(t)
			out := run(t, nil, kubectl, "--kubeconfig", kubeconfig, "apply", "-n", ns, mode, samples)
			t.Logf("%s", out)
			if n := bytes.Count(out, []byte(" created")); n != 7 {
				t.Errorf("kubectl apply %s config/samples created %d objects, want 7 (2 ScimTokens, their Secret, a ProvisioningConfig, a user, a group and its membership shard):\n%s", mode, n, out)
			}

			ctx := context.Background()
			var tok scimv1.ScimToken
			get(t, e.Client, ns, "entra-production", &tok)
			if tok.Spec.Rotation == nil || tok.Spec.Rotation.Interval.Duration != 720*time.Hour || tok.Spec.Rotation.Overlap == nil || tok.Spec.Rotation.Overlap.Duration != 168*time.Hour {
				t.Errorf("ScimToken entra-production rotation = %+v, want interval 720h, overlap 168h", tok.Spec.Rotation)
			}
			var adopted scimv1.ScimToken
			get(t, e.Client, ns, "okta", &adopted)
			if adopted.Spec.SecretRef == nil {
				t.Fatalf("ScimToken okta has no secretRef")
			}
			var secret corev1.Secret
			get(t, e.Client, ns, adopted.Spec.SecretRef.Name, &secret)
			if tokenValue := secret.Data[adopted.Spec.SecretRef.Key]; len(tokenValue) < 32 || bytes.ContainsAny(tokenValue, " \t\r\n") {
				t.Errorf("the adopted Secret's key %q holds %q: the operator refuses tokens shorter than 32 characters or with whitespace", adopted.Spec.SecretRef.Key, tokenValue)
			}
			var u scimv1.ProvisionedUser
			get(t, e.Client, ns, "5b0f6f2e-3c1d-4d8e-9a4b-7e2f1c6d8a90", &u)
			if !u.IsActive() || u.Spec.Enterprise == nil || u.Spec.Enterprise.Manager == "" || len(u.Spec.Extensions) == 0 {
				t.Errorf("ProvisionedUser sample lost fields: %+v", u.Spec)
			}
			var g scimv1.ProvisionedGroup
			get(t, e.Client, ns, "9c7e4b1a-6d2f-4e8b-a3c5-2f1d0e9b8a76", &g)
			var shards scimv1.GroupMembershipList
			if err := e.Client.List(ctx, &shards, client.InNamespace(ns), client.MatchingLabels{scimv1.LabelGroup: g.Name}); err != nil {
				t.Fatal(err)
			}
			if len(shards.Items) != 1 || shards.Items[0].Spec.Group != g.Name || !slices.Contains(shards.Items[0].Spec.Members, u.Name) {
				t.Errorf("the group's membership shards = %+v, want one holding the sample user", shards.Items)
			}

			// What `kubectl get` shows a person: the printer columns.
			table := string(run(t, nil, kubectl, "--kubeconfig", kubeconfig, "get", "-n", ns, "provisionedusers,provisionedgroups,scimtokens"))
			t.Logf("kubectl get provisionedusers,provisionedgroups,scimtokens:\n%s", table)
			for _, want := range []string{"USERNAME", "ada.lovelace@example.com", "DISPLAY NAME", "Helpdesk Agents", "MEMBERS", "DESCRIPTION", "Entra ID production tenant", "NEXT ROTATION", "ENDPOINT"} {
				if !strings.Contains(table, want) {
					t.Errorf("kubectl get lacks %q", want)
				}
			}
		})
	}
}

// TestHelmChartCopiesAreCurrent checks that the chart ships the generated
// CRDs and ClusterRoles unchanged. It needs no tools and runs with -short.
func TestHelmChartCopiesAreCurrent(t *testing.T) {
	chart := filepath.Join(root, "charts", "scim-operator")
	want, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v): run make manifests", err)
	}
	got, _ := filepath.Glob(filepath.Join(chart, "crds", "*.yaml"))
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(names(got), names(want)) {
		t.Errorf("charts/scim-operator/crds holds %v, config/crd/bases holds %v: copy them (make manifests)", names(got), names(want))
	}
	for _, p := range want {
		sameFile(t, p, filepath.Join(chart, "crds", filepath.Base(p)))
	}
	sameFile(t, filepath.Join(root, "config", "rbac", "role.yaml"), filepath.Join(chart, "files", "roles.yaml"))
}

// TestHelmChart renders the chart with helm and has the API server accept
// it; with default values it must render what config/default renders.
func TestHelmChart(t *testing.T) {
	k := newDeployKit(t)
	k.helm = helmTool(t)
	k.chart = filepath.Join(root, "charts", "scim-operator")

	out := run(t, nil, k.helm("lint", k.chart)...)
	t.Logf("helm lint:\n%s", out)

	t.Run("defaults match config/default", func(t *testing.T) { helmDefaults(t, k) })
	t.Run("SQLite matches config/default with the sqlite component", func(t *testing.T) { helmSQLite(t, k) })
	t.Run("production values", func(t *testing.T) { helmProductionValues(t, k) })
	t.Run("two replicas on PostgreSQL", func(t *testing.T) { helmTwoReplicasOnPostgreSQL(t, k) })
	t.Run("tenant namespaces", func(t *testing.T) { helmTenantNamespaces(t, k) })
	t.Run("one replica", func(t *testing.T) { helmOneReplica(t, k) })
	t.Run("GOMEMLIMIT follows the memory limit", func(t *testing.T) { helmGoMemLimit(t, k) })
	t.Run("bad values are refused", func(t *testing.T) { helmBadValues(t, k) })
}

// deployKit is what the deployment tests render and apply with: kubectl
// and a kubeconfig for the test's API server, and for the chart tests helm
// and the chart's directory.
type deployKit struct {
	e                   *testenv.Env
	kubectl, kubeconfig string
	helm                func(args ...string) []string
	chart               string
}

func newDeployKit(t *testing.T) *deployKit {
	t.Helper()
	e := testenv.Require(t, env)
	return &deployKit{e: e, kubectl: kubectlPath(t), kubeconfig: writeKubeconfig(t, e.Config)}
}

// template renders the chart as release name in namespace ns, with values
// to --set and flags (--include-crds).
func (k *deployKit) template(t *testing.T, name, ns string, set ...string) []byte {
	t.Helper()
	args := []string{"template", name, k.chart, "--namespace", ns}
	for _, s := range set {
		if strings.HasPrefix(s, "--") {
			args = append(args, s)
		} else {
			args = append(args, "--set", s)
		}
	}
	return run(t, nil, k.helm(args...)...)
}

func helmDefaults(t *testing.T, k *deployKit) {
	ensureNamespace(t, k.e, systemNamespace)
	rendered := run(t, nil, k.helm("template", releaseName, k.chart, "--namespace", systemNamespace, "--include-crds")...)
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	for _, name := range []string{"scim-operator-scim", "scim-operator-controllers"} {
		dep := find(t, objs, "Deployment", systemNamespace, name)
		checkSizedFor100k(t, dep)
		if ref := databaseSecretRef(t, dep); ref.Name != "scim-operator-helpdesk-db" || ref.Key != "url" {
			t.Errorf("by default %s reads HELPDESK_DATABASE_URL from %+v, want the key url of Secret scim-operator-helpdesk-db", name, ref)
		}
	}
	kustomized := decode(t, run(t, nil, k.kubectl, "kustomize", filepath.Join(root, "config", "default")))
	compareRenderings(t, kustomized, objs)
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))

	// The notes helm prints after an install tell where the Tenant URL
	// and the Secret Token are, how to create the database Secret the
	// Pods wait for, and that the controllers reach every Secret until
	// tenantNamespaces is set.
	notes := string(run(t, nil, k.helm("install", releaseName, k.chart, "--namespace", systemNamespace, "--dry-run=client")...))
	for _, want := range []string{
		"https://helpdesk.example.com/scim/v2",
		"kubectl -n helpdesk get scimtoken entra -o jsonpath='{.status.endpoint}'",
		"kubectl -n helpdesk get secret entra-token -o jsonpath='{.data.token}' | base64 -d",
		"kubectl -n scim-operator-system create secret generic scim-operator-helpdesk-db",
		"--set database.sqlite.enabled=true --set replicaCount=1",
		"tenantNamespaces is empty",
		"--set 'tenantNamespaces={helpdesk}'",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm's notes lack %q", want)
		}
	}
}

func helmSQLite(t *testing.T, k *deployKit) {
	rendered := k.template(t, releaseName, systemNamespace, "--include-crds", "database.sqlite.enabled=true", "replicaCount=1")
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")
	compareRenderings(t, decode(t, kustomizeWith(t, k.kubectl, "sqlite")), objs)
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

func helmProductionValues(t *testing.T, k *deployKit) {
	ns := "helpdesk-sso"
	ensureNamespace(t, k.e, ns)
	rendered := k.template(t, "helpdesk", ns,
		"replicaCount=3",
		"database.existingSecret=helpdesk-db",
		"database.existingSecretKey=dsn",
		"scim.tls.enabled=true",
		"scim.tls.secretName=scim-serving-cert",
		"ingress.host=sso.example.org",
		"deletionPolicy=delete",
		"networkPolicy.egress.database.cidrs={10.20.0.0/16,fd12:3456::/48}",
		"networkPolicy.egress.apiServer.cidrs={192.0.2.10/32}",
		"resources.limits.memory=4Gi",
		"controllers.replicaCount=3",
	)
	objs := decode(t, rendered)
	checkDeployment(t, objs, ns, "helpdesk-scim-operator")
	for name, wants := range map[string][]string{
		"helpdesk-scim-operator-scim":        {"--public-url=https://sso.example.org/scim/v2", "--scim-tls-cert-file=/etc/scim-operator/tls/tls.crt"},
		"helpdesk-scim-operator-controllers": {"--public-url=https://sso.example.org/scim/v2", "--deletion-policy=delete"},
	} {
		dep := find(t, objs, "Deployment", ns, name)
		args := containerArgs(t, dep)
		for _, want := range wants {
			if !slices.Contains(args, want) {
				t.Errorf("%s: args lack %s: %v", name, want, args)
			}
		}
		ref := databaseSecretRef(t, dep)
		if ref.Name != "helpdesk-db" || ref.Key != "dsn" || (ref.Optional != nil && *ref.Optional) {
			t.Errorf("%s: HELPDESK_DATABASE_URL comes from %+v, want the required key dsn of Secret helpdesk-db", name, ref)
		}
		// 85 % of 4Gi, in whole MiB.
		if e := envVar(t, dep, "GOMEMLIMIT"); e == nil || e.Value != "3481MiB" {
			t.Errorf("%s: with a 4Gi limit GOMEMLIMIT is %+v, want 3481MiB", name, e)
		}
	}
	if n := *typed[deployment](t, find(t, objs, "Deployment", ns, "helpdesk-scim-operator-controllers")).Spec.Replicas; n != 3 {
		t.Errorf("controllers.replicaCount=3 gave %d replicas", n)
	}
	// Each egress rule goes to exactly the configured CIDRs.
	np := find(t, objs, "NetworkPolicy", ns, "helpdesk-scim-operator-pods")
	for port, want := range map[int32][]string{5432: {"10.20.0.0/16", "fd12:3456::/48"}, 3306: {"10.20.0.0/16", "fd12:3456::/48"}, 443: {"192.0.2.10/32"}, 6443: {"192.0.2.10/32"}} {
		if r := egressRuleFor(t, np, port); r == nil || !slices.Equal(r.To, want) {
			t.Errorf("egress on port %d goes to %+v, want %v", port, r, want)
		}
	}
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

func helmTwoReplicasOnPostgreSQL(t *testing.T, k *deployKit) {
	ns := "helpdesk-small"
	ensureNamespace(t, k.e, ns)
	rendered := k.template(t, "scim-operator", ns, "replicaCount=2", "database.url=postgres://scim:secret@db:5432/helpdesk")
	objs := decode(t, rendered)
	checkDeployment(t, objs, ns, "scim-operator")
	find(t, objs, "Secret", ns, "scim-operator-helpdesk-db")
	find(t, objs, "PodDisruptionBudget", ns, "scim-operator-scim")
	find(t, objs, "PodDisruptionBudget", ns, "scim-operator-controllers")
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

// The tenants' token Secrets: RoleBindings in the listed namespaces and
// --token-namespaces for the controllers, no ClusterRoleBinding on
// Secrets (checkTenantNamespaces), with a database and with SQLite.
func helmTenantNamespaces(t *testing.T, k *deployKit) {
	ns := "helpdesk-tenants"
	tenants := []string{"tenant-a", "tenant-b"}
	for _, n := range append([]string{ns}, tenants...) {
		ensureNamespace(t, k.e, n)
	}
	for _, set := range [][]string{
		{"database.existingSecret=helpdesk-db"},
		{"database.sqlite.enabled=true", "replicaCount=1"},
	} {
		rendered := k.template(t, "scim-operator", ns, append(set, "tenantNamespaces={"+strings.Join(tenants, ",")+"}")...)
		objs := decode(t, rendered)
		checkDeployment(t, objs, ns, "scim-operator")
		checkTenantNamespaces(t, objs, tenants)
		for _, n := range tenants {
			find(t, objs, "RoleBinding", n, "scim-operator-token-secrets-rolebinding")
		}
		dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
	}
	notes := string(run(t, nil, k.helm("install", "scim-operator", k.chart, "--namespace", ns, "--dry-run=client", "--set", "tenantNamespaces={tenant-a,tenant-b}", "--set", "database.existingSecret=db")...))
	for _, want := range []string{"kubectl apply -n tenant-a -f scimtoken.yaml", "token Secrets in tenant-a, tenant-b only"} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm's notes lack %q", want)
		}
	}
}

func helmOneReplica(t *testing.T, k *deployKit) {
	ns := "helpdesk-small"
	ensureNamespace(t, k.e, ns)
	// On a database: no PodDisruptionBudget, which would block drains
	// (checkDeployment).
	rendered := k.template(t, "scim-operator", ns, "replicaCount=1", "database.existingSecret=helpdesk-db")
	objs := decode(t, rendered)
	checkDeployment(t, objs, ns, "scim-operator")
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))

	// On SQLite on a volume, without Ingress.
	rendered = k.template(t, "scim-operator", ns,
		"replicaCount=1", "database.sqlite.enabled=true", "database.sqlite.persistence.enabled=true", "ingress.enabled=false",
		"publicURL=https://internal.example.com/scim/v2",
	)
	objs = decode(t, rendered)
	checkDeployment(t, objs, ns, "scim-operator")
	find(t, objs, "PersistentVolumeClaim", ns, "scim-operator-data")
	for _, o := range objs {
		if k := o.GetKind(); k == "Ingress" || k == "Secret" {
			t.Errorf("SQLite without Ingress still renders a %s", k)
		}
	}
	dryRunApply(t, k.kubectl, k.kubeconfig, rendered, len(objs))
}

func helmGoMemLimit(t *testing.T, k *deployKit) {
	for _, c := range []struct {
		set  []string
		want string // "" for no GOMEMLIMIT
	}{
		{[]string{"resources.limits.memory=1500M"}, "1215MiB"},
		{[]string{"resources.limits.memory=1.5Gi", "goMemLimitPercent=80"}, "1228MiB"},
		{[]string{"goMemLimitPercent=0"}, ""},
		{[]string{"resources.limits.memory=null"}, ""},
	} {
		dep := find(t, decode(t, k.template(t, releaseName, systemNamespace, c.set...)), "Deployment", systemNamespace, "scim-operator-scim")
		got := ""
		if e := envVar(t, dep, "GOMEMLIMIT"); e != nil {
			got = e.Value
			if e.ValueFrom != nil {
				got = fmt.Sprintf("%+v", e.ValueFrom)
			}
		}
		if got != c.want {
			t.Errorf("--set %v: GOMEMLIMIT %q, want %q", c.set, got, c.want)
		}
	}
}

func helmBadValues(t *testing.T, k *deployKit) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"deletionPolicy=purge"}, "deletionPolicy must be retain or delete"},
		{[]string{"leaderElection=false"}, "leaderElection must be true"},
		{[]string{"controllers.replicaCount=0"}, "controllers.replicaCount must be 1 or more"},
		{[]string{"serviceAccount.name=x"}, "serviceAccount.name was replaced"},
		{[]string{"tenantNamespaces={Tenant_A}"}, `"Tenant_A" is not a namespace name`},
		{[]string{"tenantNamespaces={a,a}"}, "tenantNamespaces lists a namespace twice"},
		{[]string{"ingress.enabled=false"}, "set publicURL"},
		{[]string{"scim.tls.enabled=true"}, "scim.tls.secretName is required"},
		{[]string{"database.url=postgres://x", "database.existingSecret=y"}, "not both"},
		// SQLite is one file in one Pod: two replicas would each write
		// their own.
		{[]string{"database.sqlite.enabled=true", "replicaCount=2"}, "database.sqlite.enabled with replicaCount 2"},
		{[]string{"database.sqlite.enabled=true", "replicaCount=2"}, "set replicaCount: 1"},
		{[]string{"database.sqlite.enabled=true", "replicaCount=2"}, "set database.existingSecret"},
		{[]string{"database.sqlite.enabled=true", "replicaCount=1", "database.existingSecret=y"}, "not both"},
		{[]string{"database.sqlite.persistence.enabled=true", "replicaCount=1"}, "needs database.sqlite.enabled"},
		{[]string{"podDisruptionBudget.minAvailable=2"}, "would block every node drain"},
		{[]string{"networkPolicy.egress.apiServer.cidrs=null"}, "networkPolicy.egress.apiServer.cidrs is empty"},
		{[]string{"networkPolicy.egress.database.cidrs=null"}, "networkPolicy.egress.database.cidrs is empty"},
		{[]string{"networkPolicy.egress.database.cidrs={10.20.0.5}"}, `"10.20.0.5" is not a CIDR`},
		{[]string{"goMemLimitPercent=150"}, "goMemLimitPercent must be a number from 0 to 100"},
		{[]string{"resources.limits.memory=2e9"}, "reads only plain quantities"},
	} {
		args := []string{"template", releaseName, k.chart}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		out, err := runErr(t, nil, k.helm(args...)...)
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("helm template --set %v: err=%v, want a failure saying %q; output:\n%s", c.set, err, c.want, out)
		}
	}
}

type egressRule struct {
	Ports []int32  // port numbers
	To    []string // ipBlock CIDRs ("selector" for a selector peer)
}

func egressRules(t *testing.T, np *unstructured.Unstructured) []egressRule {
	t.Helper()
	p := typed[networkingv1.NetworkPolicy](t, np)
	var out []egressRule
	for _, r := range p.Spec.Egress {
		var e egressRule
		for _, port := range r.Ports {
			if port.Port != nil {
				e.Ports = append(e.Ports, port.Port.IntVal)
			}
		}
		for _, peer := range r.To {
			if peer.IPBlock != nil {
				e.To = append(e.To, peer.IPBlock.CIDR)
			} else {
				e.To = append(e.To, "selector")
			}
		}
		out = append(out, e)
	}
	return out
}

// egressRuleFor returns the egress rule that allows the port, or nil.
func egressRuleFor(t *testing.T, np *unstructured.Unstructured, port int32) *egressRule {
	t.Helper()
	for _, r := range egressRules(t, np) {
		if slices.Contains(r.Ports, port) {
			return &r
		}
	}
	return nil
}

// TestEmptyDatabaseURLRefused runs the binary the way a Pod whose database
// Secret holds an empty url would: HELPDESK_DATABASE_URL set, but empty.
// It must stop and say so, not fall back to its SQLite default. It needs no
// cluster: the check comes before the manager looks for one.
func TestEmptyDatabaseURLRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "scim-operator")
	run(t, nil, gobin, "build", "-o", bin, "./cmd")
	home := t.TempDir()
	for _, c := range []struct {
		name string
		env  []string
		want string
	}{
		{"empty", []string{"HELPDESK_DATABASE_URL="}, "HELPDESK_DATABASE_URL is set but empty"},
		// The control: unset, the default applies and the manager goes on
		// to look for a cluster, which there is none of here.
		{"unset", nil, "finding a kubeconfig"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--health-probe-bind-address=0", "--metrics-bind-address=0")
			cmd.Dir = home
			cmd.Env = append([]string{"HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "none")}, c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("scim-operator with %v: err=%v, want a failure saying %q; output:\n%s", c.env, err, c.want, out)
			}
		})
	}
}

// --- tools -----------------------------------------------------------------

func kubectlPath(t *testing.T) string {
	t.Helper()
	// hack/controlplane builds a kubectl of the API server's own release.
	if assets, err := testenv.Assets(); err == nil {
		if p := filepath.Join(assets, "kubectl"); isExecutable(p) {
			return p
		}
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("no kubectl: run `make envtest-bins` (hack/controlplane/build.sh builds one), or put kubectl 1.27 or newer on PATH. (%v)", err)
	}
	return p
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// helmTool builds helm with the version pinned in hack/tools/helm/go.mod
// (the first time it downloads and compiles helm; afterwards `go tool` finds
// the binary in the Go build cache) and returns a function making a helm
// command line.
func helmTool(t *testing.T) func(args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: it builds helm from hack/tools/helm (%v)", err)
	}
	dir := filepath.Join(root, "hack", "tools", "helm")
	t.Logf("building helm from hack/tools/helm/go.mod (the first time this downloads and compiles helm: several minutes; afterwards it comes from the Go build cache)")
	start := time.Now()
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, gobin, "tool", "helm", "version", "--short")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			t.Fatalf("building helm did not finish before the test's deadline (%s spent). Build it once with "+
				"`go -C hack/tools/helm tool helm version`, or run go test with a longer -timeout.", time.Since(start).Round(time.Second))
		}
		t.Fatalf("building helm from hack/tools/helm failed: %v\n%s\nhelm comes from the Go module proxy (GOPROXY); without network access it must already be in the module cache.", err, out)
	}
	t.Logf("helm %s ready in %s", bytes.TrimSpace(out), time.Since(start).Round(100*time.Millisecond))
	// -n prints where the cached binary is instead of running it, which
	// saves the Go command's start-up on every helm call below.
	cmd = exec.Command(gobin, "tool", "-n", "helm")
	cmd.Dir = dir
	path, err := cmd.Output()
	bin := string(bytes.TrimSpace(path))
	if err != nil || bin == "" {
		t.Fatalf("go tool -n helm: %v %s", err, path)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("go tool -n helm names %s: %v", bin, err)
	}
	return func(args ...string) []string { return append([]string{bin}, args...) }
}

// writeKubeconfig writes a kubeconfig for the test control plane, so that
// kubectl talks to it. envtest authenticates with a client certificate.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		CertificateAuthority:     cfg.CAFile,
	}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		ClientCertificate:     cfg.CertFile,
		ClientKey:             cfg.KeyFile,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	return path
}

// run runs a command and returns its standard output; it fails the test,
// showing standard error, when the command fails.
func run(t *testing.T, stdin []byte, argv ...string) []byte {
	t.Helper()
	out, err := runErr(t, stdin, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(shortArgv(argv), " "), err, out)
	}
	return out
}

// runErr runs a command; on failure the output holds standard error too.
func runErr(t *testing.T, stdin []byte, argv ...string) ([]byte, error) {
	t.Helper()
	stdout, stderr, err := runFull(t, stdin, argv...)
	if err != nil {
		return append(stdout, stderr...), err
	}
	return stdout, nil
}

// runFull runs a command in the repository and logs it with its duration
// and standard error.
func runFull(t *testing.T, stdin []byte, argv ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err = cmd.Run()
	t.Logf("$ %s  (%s)", strings.Join(shortArgv(argv), " "), time.Since(start).Round(time.Millisecond))
	if e.Len() > 0 {
		t.Logf("stderr: %s", e.Bytes())
	}
	return o.Bytes(), e.Bytes(), err
}

// shortArgv shows paths relative to the repository, for readable logs.
func shortArgv(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if i == 0 {
			a = filepath.Base(a)
		}
		out[i] = strings.ReplaceAll(a, root+string(filepath.Separator), "")
	}
	return out
}

// dryRunApply submits manifests with a server-side dry run: the API server
// validates and admits every object (schema, unknown fields, defaults,
// admission) without storing it. Any warning fails the test, since the API
// server warns about, for instance, Pod templates that break the
// namespace's Pod Security profile.
func dryRunApply(t *testing.T, kubectl, kubeconfig string, manifests []byte, objects int) {
	t.Helper()
	start := time.Now()
	stdout, stderr, err := runFull(t, manifests, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server refused the manifests: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("kubectl apply --dry-run=server accepted %d objects (%s):\n%s", objects, time.Since(start).Round(time.Millisecond), stdout)
	if n := bytes.Count(stdout, []byte("(server dry run)")); n != objects {
		t.Errorf("kubectl reported %d objects, the manifests hold %d", n, objects)
	}
	if w := warnings(string(stderr)); len(w) > 0 {
		t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
	}
}

// warnings returns kubectl's warnings but one: envtest installs the CRDs
// without kubectl, so client-side apply notes that they lack its
// last-applied annotation. That says nothing about the manifests.
func warnings(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "Warning:") && !strings.Contains(line, "kubectl.kubernetes.io/last-applied-configuration") {
			out = append(out, line)
		}
	}
	return out
}

func ensureNamespace(t *testing.T, e *testenv.Env, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := e.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func get(t *testing.T, c client.Client, ns, name string, obj client.Object) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("reading %T %s/%s: %v", obj, ns, name, err)
	}
}

func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("%s is missing: copy %s there (make manifests)", rel(got), rel(want))
		return
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s: copy it again (make manifests)", rel(got), rel(want))
	}
}

func rel(p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

// --- manifests ---------------------------------------------------------------

func decode(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if len(objs) == 0 {
		t.Fatalf("nothing was rendered")
	}
	return objs
}

func mustYAML(t *testing.T, o *unstructured.Unstructured) []byte {
	t.Helper()
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s among the rendered objects: %v", kind, ns, name, keys(objs))
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/")
}

func keys(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, key(o))
	}
	sort.Strings(out)
	return out
}

func containerArgs(t *testing.T, dep *unstructured.Unstructured) []string {
	t.Helper()
	return manager(t, dep).Args
}

// typed converts an unstructured object into a typed one.
func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s does not decode as %T: %v", key(o), v, err)
	}
	return &v
}

type deployment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas *int32                 `json:"replicas"`
		Selector *metav1.LabelSelector  `json:"selector"`
		Strategy map[string]any         `json:"strategy"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
}

func manager(t *testing.T, dep *unstructured.Unstructured) corev1.Container {
	t.Helper()
	d := typed[deployment](t, dep)
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("%s has no container named manager", key(dep))
	return corev1.Container{}
}

func databaseSecretRef(t *testing.T, dep *unstructured.Unstructured) *corev1.SecretKeySelector {
	t.Helper()
	if e := envVar(t, dep, "HELPDESK_DATABASE_URL"); e != nil && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		return e.ValueFrom.SecretKeyRef
	}
	t.Fatalf("%s: the manager does not read HELPDESK_DATABASE_URL from a Secret", key(dep))
	return nil
}

// envVar returns the manager's environment variable name, or nil.
func envVar(t *testing.T, dep *unstructured.Unstructured, name string) *corev1.EnvVar {
	t.Helper()
	for _, e := range manager(t, dep).Env {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a whole number of
// bytes, optionally with the suffix B, KiB, MiB, GiB or TiB. (Kubernetes
// quantities such as 2Gi are not understood by the runtime.)
func parseGoMemLimit(s string) (int64, error) {
	num, unit := s, int64(1)
	for _, u := range []struct {
		suffix string
		bytes  int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, unit = n, u.bytes
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num || n <= 0 {
		return 0, fmt.Errorf("GOMEMLIMIT %q is not a byte count the Go runtime reads (such as 1740MiB)", s)
	}
	return n * unit, nil
}

// goMemLimitRatio returns GOMEMLIMIT over the memory limit; ok is false,
// and the test failed, when either is missing or GOMEMLIMIT is not a
// literal byte count.
func goMemLimitRatio(t *testing.T, dep *unstructured.Unstructured) (goMemLimit, limit int64, ratio float64, ok bool) {
	t.Helper()
	c := manager(t, dep)
	e := envVar(t, dep, "GOMEMLIMIT")
	if e == nil || e.Value == "" {
		// A resourceFieldRef of limits.memory would put GOMEMLIMIT at 100 %
		// of the limit, with no room for what the Go runtime does not count.
		t.Errorf("%s: GOMEMLIMIT is not a literal value below the memory limit: %+v", key(dep), e)
		return 0, 0, 0, false
	}
	goMemLimit, err := parseGoMemLimit(e.Value)
	if err != nil {
		t.Errorf("%s: %v", key(dep), err)
		return 0, 0, 0, false
	}
	limit = c.Resources.Limits.Memory().Value()
	if limit == 0 {
		t.Errorf("%s: GOMEMLIMIT without a memory limit", key(dep))
		return 0, 0, 0, false
	}
	return goMemLimit, limit, float64(goMemLimit) / float64(limit), true
}

// benchmarkRSS100k is the operator's RSS after the 100,000-user cycle, read
// from docs/benchmarks-100k.md (written by make bench-100k), so that a new
// measurement above the defaults fails this test.
func benchmarkRSS100k(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "benchmarks-100k.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\| RSS \(VmRSS\) \| [0-9.]+ MiB \| ([0-9.]+) MiB \|`).FindSubmatch(b)
	if !bytes.Contains(b, []byte("after 100000 users")) || m == nil {
		t.Fatalf("docs/benchmarks-100k.md has no RSS row after 100000 users")
	}
	mib, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(mib * (1 << 20))
}

// checkSizedFor100k checks the default memory settings against the
// benchmark: the Go runtime may use at least what the 100,000-user process
// used, and the limit leaves headroom above that (see values.yaml).
func checkSizedFor100k(t *testing.T, dep *unstructured.Unstructured) {
	t.Helper()
	rss := benchmarkRSS100k(t)
	c := manager(t, dep)
	if limit := c.Resources.Limits.Memory().Value(); float64(limit) < 1.5*float64(rss) {
		t.Errorf("%s: the memory limit %d MiB leaves less than 50 %% headroom over the %d MiB RSS measured at 100,000 users (docs/benchmarks-100k.md)", key(dep), limit>>20, rss>>20)
	}
	if goMemLimit, _, _, ok := goMemLimitRatio(t, dep); ok && goMemLimit < rss {
		t.Errorf("%s: GOMEMLIMIT %d MiB is below the %d MiB RSS measured at 100,000 users (docs/benchmarks-100k.md)", key(dep), goMemLimit>>20, rss>>20)
	}
}

// compareRenderings checks that the chart with default values renders the
// objects config/default renders (but the Namespace, which Helm leaves to
// --create-namespace), alike in everything except labels, selectors and the
// image tag.
func compareRenderings(t *testing.T, kustomized, helm []*unstructured.Unstructured) {
	t.Helper()
	var want []*unstructured.Unstructured
	for _, o := range kustomized {
		if o.GetKind() != "Namespace" {
			want = append(want, o)
		}
	}
	if a, b := keys(want), keys(helm); !slices.Equal(a, b) {
		t.Errorf("the chart renders other objects than config/default:\n  kustomize: %v\n  helm:      %v", a, b)
	}
	for _, k := range want {
		for _, h := range helm {
			if key(h) != key(k) {
				continue
			}
			a, b := comparableParts(k.Object), comparableParts(h.Object)
			if !reflect.DeepEqual(a, b) {
				ya, _ := yaml.Marshal(a)
				yb, _ := yaml.Marshal(b)
				t.Errorf("%s differs between config/default and the chart:\n--- kustomize\n%s\n--- helm\n%s", key(k), ya, yb)
			}
		}
	}
}

// comparableParts drops what legitimately differs between kustomize and Helm
// output: metadata (labels, annotations), label selectors and the image.
func comparableParts(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			switch k {
			case "metadata", "selector", "labelSelector", "podSelector", "image":
				continue
			}
			out[k] = comparableParts(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = comparableParts(e)
		}
		return out
	default:
		return v
	}
}
