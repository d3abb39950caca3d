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
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
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
// every object, with and without the optional scim-tls component.
func TestKustomizeDefault(t *testing.T) {
	e := testenv.Require(t, env)
	kubectl := kubectlPath(t)
	kubeconfig := writeKubeconfig(t, e.Config)

	rendered := run(t, nil, kubectl, "kustomize", filepath.Join(root, "config", "default"))
	objs := decode(t, rendered)
	checkDeployment(t, objs, systemNamespace, "scim-operator")

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
	run(t, ns, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))

	// A control: the same Deployment without its security contexts draws a
	// Pod Security warning, so the absence of warnings above means something.
	t.Run("pod security is checked", func(t *testing.T) {
		dep := find(t, objs, "Deployment", systemNamespace, "scim-operator-controller-manager").DeepCopy()
		unstructured.RemoveNestedField(dep.Object, "spec", "template", "spec", "securityContext")
		containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			delete(c.(map[string]any), "securityContext")
		}
		if err := unstructured.SetNestedSlice(dep.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := runFull(t, mustYAML(t, dep), kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			t.Fatalf("dry run: %v\n%s", err, stderr)
		}
		if !bytes.Contains(stderr, []byte("PodSecurity")) {
			t.Errorf("an unconfined Deployment drew no Pod Security warning (is the PodSecurity admission plugin off?): %q", stderr)
		}
	})

	t.Run("scim-tls component", func(t *testing.T) {
		// An overlay outside the repository: kustomize wants relative paths.
		dir := t.TempDir()
		rel, err := filepath.Rel(dir, filepath.Join(root, "config", "default"))
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("resources:\n- %s\ncomponents:\n- %s\n", rel, filepath.Join(rel, "scim-tls"))
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		rendered := run(t, nil, kubectl, "kustomize", dir)
		objs := decode(t, rendered)
		checkDeployment(t, objs, systemNamespace, "scim-operator")
		dep := find(t, objs, "Deployment", systemNamespace, "scim-operator-controller-manager")
		args := containerArgs(t, dep)
		for _, want := range []string{"--scim-tls-cert-file=/etc/scim-operator/tls/tls.crt", "--scim-tls-key-file=/etc/scim-operator/tls/tls.key"} {
			if !slices.Contains(args, want) {
				t.Errorf("with scim-tls the manager lacks %s; args: %v", want, args)
			}
		}
		ing := find(t, objs, "Ingress", systemNamespace, "scim-operator-scim")
		if got := ing.GetAnnotations()["nginx.ingress.kubernetes.io/backend-protocol"]; got != "HTTPS" {
			t.Errorf("with scim-tls the Ingress backend protocol is %q, want HTTPS", got)
		}
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))
	})
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
			if n := bytes.Count(out, []byte(" created")); n != 6 {
				t.Errorf("kubectl apply %s config/samples created %d objects, want 6 (2 ScimTokens, their Secret, a user, a group and its membership shard):\n%s", mode, n, out)
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
// CRDs and manager role unchanged. It needs no tools and runs with -short.
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
	sameFile(t, filepath.Join(root, "config", "rbac", "role.yaml"), filepath.Join(chart, "files", "manager-role.yaml"))
}

// TestHelmChart renders the chart with helm and has the API server accept
// it; with default values it must render what config/default renders.
func TestHelmChart(t *testing.T) {
	e := testenv.Require(t, env)
	kubectl := kubectlPath(t)
	kubeconfig := writeKubeconfig(t, e.Config)
	helm := helmTool(t)
	chart := filepath.Join(root, "charts", "scim-operator")

	out := run(t, nil, helm("lint", chart)...)
	t.Logf("helm lint:\n%s", out)

	t.Run("defaults match config/default", func(t *testing.T) {
		ensureNamespace(t, e, systemNamespace)
		rendered := run(t, nil, helm("template", releaseName, chart, "--namespace", systemNamespace, "--include-crds")...)
		objs := decode(t, rendered)
		checkDeployment(t, objs, systemNamespace, "scim-operator")
		kustomized := decode(t, run(t, nil, kubectl, "kustomize", filepath.Join(root, "config", "default")))
		compareRenderings(t, kustomized, objs)
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))

		// The notes helm prints after an install tell where the Tenant URL
		// and the Secret Token are.
		notes := string(run(t, nil, helm("install", releaseName, chart, "--namespace", systemNamespace, "--dry-run=client")...))
		for _, want := range []string{
			"https://helpdesk.example.com/scim/v2",
			"kubectl -n helpdesk get scimtoken entra -o jsonpath='{.status.endpoint}'",
			"kubectl -n helpdesk get secret entra-token -o jsonpath='{.data.token}' | base64 -d",
			"WARNING: no helpdesk database is configured",
		} {
			if !strings.Contains(notes, want) {
				t.Errorf("helm's notes lack %q", want)
			}
		}
	})

	t.Run("production values", func(t *testing.T) {
		ns := "helpdesk-sso"
		ensureNamespace(t, e, ns)
		rendered := run(t, nil, helm("template", "helpdesk", chart, "--namespace", ns,
			"--set", "replicaCount=3",
			"--set", "database.existingSecret=helpdesk-db",
			"--set", "database.existingSecretKey=dsn",
			"--set", "scim.tls.enabled=true",
			"--set", "scim.tls.secretName=scim-serving-cert",
			"--set", "ingress.host=sso.example.org",
			"--set", "deletionPolicy=delete",
			"--set", "networkPolicy.egress.database.cidrs={10.20.0.0/16}",
			"--set", "networkPolicy.egress.apiServer.cidrs={192.0.2.10/32}",
		)...)
		objs := decode(t, rendered)
		checkDeployment(t, objs, ns, "helpdesk-scim-operator")
		dep := find(t, objs, "Deployment", ns, "helpdesk-scim-operator-controller-manager")
		args := containerArgs(t, dep)
		for _, want := range []string{"--public-url=https://sso.example.org/scim/v2", "--deletion-policy=delete", "--scim-tls-cert-file=/etc/scim-operator/tls/tls.crt"} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args lack %s: %v", want, args)
			}
		}
		ref := databaseSecretRef(t, dep)
		if ref.Name != "helpdesk-db" || ref.Key != "dsn" || (ref.Optional != nil && *ref.Optional) {
			t.Errorf("HELPDESK_DATABASE_URL comes from %+v, want the required key dsn of Secret helpdesk-db", ref)
		}
		np := find(t, objs, "NetworkPolicy", ns, "helpdesk-scim-operator-controller-manager")
		if s := string(mustYAML(t, np)); !strings.Contains(s, "10.20.0.0/16") || !strings.Contains(s, "192.0.2.10/32") {
			t.Errorf("the NetworkPolicy ignores the egress cidrs:\n%s", s)
		}
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))
	})

	t.Run("database url and SQLite on a volume", func(t *testing.T) {
		ns := "helpdesk-small"
		ensureNamespace(t, e, ns)
		rendered := run(t, nil, helm("template", "scim-operator", chart, "--namespace", ns,
			"--set", "database.url=postgres://scim:secret@db:5432/helpdesk",
		)...)
		objs := decode(t, rendered)
		find(t, objs, "Secret", ns, "scim-operator-helpdesk-db")
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))

		rendered = run(t, nil, helm("template", "scim-operator", chart, "--namespace", ns,
			"--set", "replicaCount=1", "--set", "database.sqlite.persistence.enabled=true", "--set", "ingress.enabled=false",
			"--set", "publicURL=https://internal.example.com/scim/v2",
		)...)
		objs = decode(t, rendered)
		find(t, objs, "PersistentVolumeClaim", ns, "scim-operator-data")
		for _, o := range objs {
			if k := o.GetKind(); k == "PodDisruptionBudget" || k == "Ingress" {
				t.Errorf("one replica without Ingress still renders a %s", k)
			}
		}
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))
	})

	t.Run("bad values are refused", func(t *testing.T) {
		for _, c := range []struct {
			set  []string
			want string
		}{
			{[]string{"deletionPolicy=purge"}, "deletionPolicy must be retain or delete"},
			{[]string{"database.sqlite.persistence.enabled=true"}, "needs replicaCount: 1"},
			{[]string{"leaderElection=false"}, "leaderElection must be true"},
			{[]string{"ingress.enabled=false"}, "set publicURL"},
			{[]string{"scim.tls.enabled=true"}, "scim.tls.secretName is required"},
			{[]string{"database.url=postgres://x", "database.existingSecret=y"}, "not both"},
		} {
			args := []string{"template", releaseName, chart}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			out, err := runErr(t, nil, helm(args...)...)
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("helm template --set %v: err=%v, want a failure saying %q; output:\n%s", c.set, err, c.want, out)
			}
		}
	})
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
	for _, e := range manager(t, dep).Env {
		if e.Name == "HELPDESK_DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	t.Fatalf("%s: the manager does not read HELPDESK_DATABASE_URL from a Secret", key(dep))
	return nil
}

func selects(t *testing.T, what string, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: bad selector: %v", what, err)
		return
	}
	if s.Empty() || !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s selects %v, which does not match the manager Pods' labels %v", what, s, podLabels)
	}
}

// checkDeployment checks what the API server cannot: that the objects are
// wired to each other, and that the manager runs the way the operator is
// meant to be run. prefix is the name every object starts with.
func checkDeployment(t *testing.T, objs []*unstructured.Unstructured, ns, prefix string) {
	t.Helper()
	t.Logf("rendered: %s", strings.Join(keys(objs), ", "))
	depU := find(t, objs, "Deployment", ns, prefix+"-controller-manager")
	dep := typed[deployment](t, depU)
	pod := dep.Spec.Template
	podLabels := pod.Labels
	selects(t, "the Deployment", dep.Spec.Selector, podLabels)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 1 {
		t.Errorf("replicas = %v", dep.Spec.Replicas)
	}
	if sa := pod.Spec.ServiceAccountName; sa == "" {
		t.Errorf("the Pods run as the default ServiceAccount")
	} else {
		find(t, objs, "ServiceAccount", ns, sa)
	}

	c := manager(t, depU)
	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	if _, ok := args["--leader-elect"]; !ok && *dep.Spec.Replicas > 1 {
		t.Errorf("%d replicas without --leader-elect", *dep.Spec.Replicas)
	}
	for _, flag := range []string{"--metrics-bind-address", "--health-probe-bind-address", "--scim-bind-address", "--public-url", "--deletion-policy", "--resync-period"} {
		if args[flag] == "" {
			t.Errorf("the manager is started without %s: %v", flag, c.Args)
		}
	}
	if c.Image == "" || strings.Contains(c.Image, "gcr.io") || strings.Contains(c.Image, "docker.io") {
		t.Errorf("image %q: want a plain image name", c.Image)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, flag := range map[string]string{"scim": "--scim-bind-address", "metrics": "--metrics-bind-address", "health": "--health-probe-bind-address"} {
		if ports[name] == 0 || args[flag] != fmt.Sprintf(":%d", ports[name]) {
			t.Errorf("container port %q (%d) does not match %s=%s", name, ports[name], flag, args[flag])
		}
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("want an HTTP probe of %s on the health port, got %+v", path, probe)
		}
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("the manager has no memory request or limit: %+v", c.Resources)
	}
	sc, psc := c.SecurityContext, pod.Spec.SecurityContext
	if sc == nil || psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the manager is not locked down (non-root, read-only root, no capabilities, RuntimeDefault seccomp): pod %+v, container %+v", psc, sc)
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if !mounts["/tmp"] {
		t.Errorf("read-only root filesystem without a writable /tmp")
	}
	// The database comes from HELPDESK_DATABASE_URL, which is only the
	// default of --helpdesk-database: the flag must not be given.
	databaseSecretRef(t, depU)
	if db, ok := args["--helpdesk-database"]; ok {
		t.Errorf("the manager is given --helpdesk-database=%s, which would win over HELPDESK_DATABASE_URL from the Secret", db)
	}
	// Without the Secret the SQLite fallback is written in the working
	// directory, which must be a volume (the root filesystem is read-only).
	if c.WorkingDir == "" || !mounts[c.WorkingDir] {
		t.Errorf("the working directory %q, where the SQLite fallback is written, is not a volume (mounts: %v)", c.WorkingDir, mounts)
	}
	if *dep.Spec.Replicas > 1 && len(pod.Spec.TopologySpreadConstraints) == 0 && (pod.Spec.Affinity == nil || pod.Spec.Affinity.PodAntiAffinity == nil) {
		t.Errorf("%d replicas and nothing spreads them over nodes", *dep.Spec.Replicas)
	}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		selects(t, "a topology spread constraint", tsc.LabelSelector, podLabels)
	}

	// Bindings name roles and ServiceAccounts that exist.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range ofKind(objs, kind) {
			ref := b.Object["roleRef"].(map[string]any)
			roleNs := ""
			if ref["kind"] == "Role" {
				roleNs = b.GetNamespace()
			}
			find(t, objs, ref["kind"].(string), roleNs, ref["name"].(string))
			for _, s := range b.Object["subjects"].([]any) {
				s := s.(map[string]any)
				if s["kind"] == "ServiceAccount" {
					find(t, objs, "ServiceAccount", s["namespace"].(string), s["name"].(string))
					if s["name"] != pod.Spec.ServiceAccountName {
						t.Errorf("%s binds %v, not the manager's ServiceAccount", key(b), s["name"])
					}
				}
			}
		}
	}
	if len(ofKind(objs, "ClusterRoleBinding")) == 0 {
		t.Errorf("nothing binds the manager's ClusterRole")
	}
	var leaseRule bool
	for _, r := range ofKind(objs, "Role") {
		leaseRule = leaseRule || strings.Contains(string(mustYAML(t, r)), "leases")
	}
	if !leaseRule {
		t.Errorf("no Role lets the manager hold a leader-election Lease")
	}

	// Services select the Pods and target named container ports.
	svcPorts := map[string][]corev1.ServicePort{}
	for _, s := range ofKind(objs, "Service") {
		svc := typed[corev1.Service](t, s)
		selects(t, key(s), &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels)
		for _, p := range svc.Spec.Ports {
			if ports[p.TargetPort.String()] == 0 {
				t.Errorf("%s targets port %s, which the manager does not have", key(s), p.TargetPort.String())
			}
		}
		svcPorts[svc.Name] = svc.Spec.Ports
	}
	if len(svcPorts) < 2 {
		t.Errorf("want a SCIM and a metrics Service, got %v", svcPorts)
	}

	// The Ingress reaches a Service port that targets SCIM, at the public URL.
	for _, i := range ofKind(objs, "Ingress") {
		ing := typed[struct {
			Spec struct {
				IngressClassName *string `json:"ingressClassName"`
				TLS              []struct {
					Hosts      []string `json:"hosts"`
					SecretName string   `json:"secretName"`
				} `json:"tls"`
				Rules []struct {
					Host string `json:"host"`
					HTTP struct {
						Paths []struct {
							Path     string `json:"path"`
							PathType string `json:"pathType"`
							Backend  struct {
								Service struct {
									Name string `json:"name"`
									Port struct {
										Name   string `json:"name"`
										Number int32  `json:"number"`
									} `json:"port"`
								} `json:"service"`
							} `json:"backend"`
						} `json:"paths"`
					} `json:"http"`
				} `json:"rules"`
			} `json:"spec"`
		}](t, i)
		if len(ing.Spec.TLS) == 0 || len(ing.Spec.Rules) != 1 || len(ing.Spec.Rules[0].HTTP.Paths) != 1 {
			t.Errorf("%s: want TLS and one rule with one path", key(i))
			continue
		}
		rule := ing.Spec.Rules[0]
		path := rule.HTTP.Paths[0]
		if !slices.Contains(ing.Spec.TLS[0].Hosts, rule.Host) {
			t.Errorf("%s: TLS hosts %v do not cover %s", key(i), ing.Spec.TLS[0].Hosts, rule.Host)
		}
		if want := "https://" + rule.Host + path.Path; args["--public-url"] != want {
			t.Errorf("--public-url=%s, but the Ingress publishes %s", args["--public-url"], want)
		}
		backend := path.Backend.Service
		var ok bool
		for _, p := range svcPorts[backend.Name] {
			ok = ok || (p.Name == backend.Port.Name && p.TargetPort.String() == "scim")
		}
		if !ok {
			t.Errorf("%s: backend %s port %q is not a Service port targeting SCIM", key(i), backend.Name, backend.Port.Name)
		}
	}

	for _, p := range ofKind(objs, "PodDisruptionBudget") {
		pdb := typed[struct {
			Spec struct {
				MinAvailable any                   `json:"minAvailable"`
				Selector     *metav1.LabelSelector `json:"selector"`
			} `json:"spec"`
		}](t, p)
		selects(t, key(p), pdb.Spec.Selector, podLabels)
	}
	for _, n := range ofKind(objs, "NetworkPolicy") {
		np := typed[struct {
			Spec struct {
				PodSelector metav1.LabelSelector `json:"podSelector"`
				Ingress     []struct {
					Ports []struct {
						Port any `json:"port"`
					} `json:"ports"`
				} `json:"ingress"`
			} `json:"spec"`
		}](t, n)
		selects(t, key(n), &np.Spec.PodSelector, podLabels)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if name, ok := p.Port.(string); ok && ports[name] == 0 {
					t.Errorf("%s allows port %q, which the manager does not have", key(n), name)
				}
			}
		}
	}
	if *dep.Spec.Replicas > 1 && len(ofKind(objs, "PodDisruptionBudget")) == 0 {
		t.Errorf("%d replicas without a PodDisruptionBudget", *dep.Spec.Replicas)
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
			a, b := comparable(k.Object), comparable(h.Object)
			if !reflect.DeepEqual(a, b) {
				ya, _ := yaml.Marshal(a)
				yb, _ := yaml.Marshal(b)
				t.Errorf("%s differs between config/default and the chart:\n--- kustomize\n%s\n--- helm\n%s", key(k), ya, yb)
			}
		}
	}
}

// comparable drops what legitimately differs between kustomize and Helm
// output: metadata (labels, annotations), label selectors and the image.
func comparable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			switch k {
			case "metadata", "selector", "labelSelector", "podSelector", "image":
				continue
			}
			out[k] = comparable(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = comparable(e)
		}
		return out
	default:
		return v
	}
}
