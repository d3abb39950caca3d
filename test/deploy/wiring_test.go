package deploy_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// installationKeySecret is the one Secret the SCIM server may read
// (internal/installkey.DefaultSecretName).
const installationKeySecret = "scim-operator-installation-key"

// part is one Deployment of the operator and what its Pods run.
type part struct {
	u      *unstructured.Unstructured
	dep    *deployment
	c      corev1.Container
	args   map[string]string
	ports  map[string]int32
	run    string // --component: all (also when the flag is missing), scim or controllers
	sqlite bool   // its database is a SQLite file in the Pod
}

func (p *part) String() string        { return p.u.GetName() }
func (p *part) servesSCIM() bool      { return p.run != "controllers" }
func (p *part) runsControllers() bool { return p.run != "scim" }
func (p *part) replicas() int32       { return *p.dep.Spec.Replicas }

func (p *part) podLabels() map[string]string { return p.dep.Spec.Template.Labels }

func (p *part) serviceAccount() string { return p.dep.Spec.Template.Spec.ServiceAccountName }

// operatorParts reads every Deployment of the rendering.
func operatorParts(t *testing.T, objs []*unstructured.Unstructured) []*part {
	t.Helper()
	var out []*part
	for _, u := range ofKind(objs, "Deployment") {
		p := &part{u: u, dep: typed[deployment](t, u), c: manager(t, u), args: map[string]string{}, ports: map[string]int32{}}
		if p.dep.Spec.Replicas == nil {
			t.Errorf("%s has no replica count", key(u))
			one := int32(1)
			p.dep.Spec.Replicas = &one
		}
		for _, a := range p.c.Args {
			k, v, _ := strings.Cut(a, "=")
			p.args[k] = v
		}
		for _, port := range p.c.Ports {
			p.ports[port.Name] = port.ContainerPort
		}
		p.run = p.args["--component"]
		if _, given := p.args["--component"]; !given {
			p.run = "all"
		}
		if e := envVar(t, u, "HELPDESK_DATABASE_URL"); e != nil && strings.HasPrefix(e.Value, "sqlite://") {
			p.sqlite = true
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.Fatalf("no Deployment among the rendered objects: %v", keys(objs))
	}
	return out
}

// selected returns the parts whose Pods sel selects; an empty or invalid
// selector fails the test.
func selected(t *testing.T, what string, sel *metav1.LabelSelector, parts []*part) []*part {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		t.Errorf("%s: empty or bad selector %v (%v)", what, sel, err)
		return nil
	}
	var out []*part
	for _, p := range parts {
		if s.Matches(labels.Set(p.podLabels())) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Errorf("%s selects %v, which matches no Pod of the operator", what, s)
	}
	return out
}

// checkDeployment checks what the API server cannot: that the objects are
// wired to each other, that each part of the operator runs the way it is
// meant to, and that each holds only the permissions its part needs. prefix
// is the name every object starts with.
//
// With a database (production) there are two Deployments: prefix-scim runs
// the SCIM server alone (--component=scim), prefix-controllers the
// controllers (--component=controllers). With SQLite, a file in one Pod that
// both parts open, prefix-scim alone runs both (--component=all).
func checkDeployment(t *testing.T, objs []*unstructured.Unstructured, ns, prefix string) {
	t.Helper()
	t.Logf("rendered: %s", strings.Join(keys(objs), ", "))
	parts := operatorParts(t, objs)
	sqlite := slices.ContainsFunc(parts, func(p *part) bool { return p.sqlite })

	got := map[string]string{}
	for _, p := range parts {
		got[p.String()] = p.run
	}
	if want := map[string]string{prefix + "-scim": "scim", prefix + "-controllers": "controllers"}; !sqlite && !maps.Equal(got, want) {
		t.Errorf("Deployments and their --component: %v, want %v: with a database the SCIM server, which parses internet input, runs apart from the controllers, which hold the token Secrets", got, want)
	}
	if want := map[string]string{prefix + "-scim": "all"}; sqlite && !maps.Equal(got, want) {
		t.Errorf("Deployments and their --component: %v, want %v: SQLite is a file in one Pod, which both parts open", got, want)
	}
	for i, p := range parts {
		checkPart(t, p)
		if p.u.GetNamespace() != ns {
			t.Errorf("%s is not in the namespace %s", key(p.u), ns)
		}
		if a, b := p.args["--public-url"], parts[0].args["--public-url"]; a != b {
			t.Errorf("%s has --public-url=%s, %s has %s", p, a, parts[0], b)
		}
		// Two Deployments selecting each other's Pods would fight over them.
		for _, q := range parts[i+1:] {
			for _, a := range [][2]*part{{p, q}, {q, p}} {
				if s, err := metav1.LabelSelectorAsSelector(a[0].dep.Spec.Selector); err == nil && s.Matches(labels.Set(a[1].podLabels())) {
					t.Errorf("the selector of %s matches the Pods of %s", a[0], a[1])
				}
			}
		}
	}
	checkRBAC(t, objs, parts, sqlite)
	scimServicePorts := checkServices(t, objs, parts, sqlite)
	checkIngresses(t, objs, parts, scimServicePorts)
	checkBudgets(t, objs, parts)
	checkNetworkPolicies(t, objs, parts)
}

// checkPart checks one Deployment: flags, ports, probes, resources, the
// locked-down Pod, the database.
func checkPart(t *testing.T, p *part) {
	t.Helper()
	if len(selected(t, key(p.u), p.dep.Spec.Selector, []*part{p})) == 0 {
		return
	}
	checkPartRole(t, p)
	checkPartFlags(t, p)
	checkPartPorts(t, p)
	checkPartLockedDown(t, p)
	checkPartDatabase(t, p)
	checkPartSpread(t, p)
}

// mountPaths are the paths the part's container mounts volumes at.
func mountPaths(p *part) map[string]bool {
	mounts := map[string]bool{}
	for _, m := range p.c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	return mounts
}

// checkPartRole: replicas, its own ServiceAccount, a known component, and
// leader election exactly where controllers run on several replicas.
func checkPartRole(t *testing.T, p *part) {
	t.Helper()
	if p.replicas() < 1 {
		t.Errorf("%s: replicas = %d", p, p.replicas())
	}
	if sa := p.serviceAccount(); sa == "" {
		t.Errorf("%s: the Pods run as the default ServiceAccount", p)
	}
	if !slices.Contains([]string{"all", "scim", "controllers"}, p.run) {
		t.Errorf("%s: --component=%s", p, p.run)
	}
	_, leader := p.args["--leader-elect"]
	if p.runsControllers() && !leader && p.replicas() > 1 {
		t.Errorf("%s: %d replicas run the controllers without --leader-elect", p, p.replicas())
	}
	if p.run == "scim" && leader {
		t.Errorf("%s: the SCIM server alone needs no leader, and its ServiceAccount holds no Lease: drop --leader-elect", p)
	}
}

// checkPartFlags: the flags every part needs, and a plain image name.
func checkPartFlags(t *testing.T, p *part) {
	t.Helper()
	flags := []string{"--metrics-bind-address", "--health-probe-bind-address", "--public-url"}
	if p.servesSCIM() {
		flags = append(flags, "--scim-bind-address")
	}
	if p.runsControllers() {
		flags = append(flags, "--deletion-policy", "--resync-period")
	}
	for _, flag := range flags {
		if p.args[flag] == "" {
			t.Errorf("%s is started without %s: %v", p, flag, p.c.Args)
		}
	}
	if p.c.Image == "" || strings.Contains(p.c.Image, "gcr.io") || strings.Contains(p.c.Image, "docker.io") {
		t.Errorf("%s: image %q: want a plain image name", p, p.c.Image)
	}
}

// checkPartPorts: each named port matches its flag (a scim port only on a
// SCIM server), and the probes use the health port.
func checkPartPorts(t *testing.T, p *part) {
	t.Helper()
	named := map[string]string{"metrics": "--metrics-bind-address", "health": "--health-probe-bind-address"}
	if p.servesSCIM() {
		named["scim"] = "--scim-bind-address"
	} else if p.ports["scim"] != 0 || p.args["--scim-bind-address"] != "" {
		t.Errorf("%s runs no SCIM server but has a scim port (%d) or --scim-bind-address (%q): a Service or policy could reach it", p, p.ports["scim"], p.args["--scim-bind-address"])
	}
	for name, flag := range named {
		if p.ports[name] == 0 || p.args[flag] != fmt.Sprintf(":%d", p.ports[name]) {
			t.Errorf("%s: container port %q (%d) does not match %s=%s", p, name, p.ports[name], flag, p.args[flag])
		}
	}
	for probe, path := range map[*corev1.Probe]string{p.c.LivenessProbe: "/healthz", p.c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("%s: want an HTTP probe of %s on the health port, got %+v", p, path, probe)
		}
	}
}

// checkPartLockedDown: memory request and limit, GOMEMLIMIT below the
// limit, and the restricted Pod Security profile with a writable /tmp.
func checkPartLockedDown(t *testing.T, p *part) {
	t.Helper()
	if p.c.Resources.Requests.Memory().IsZero() || p.c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s has no memory request or limit: %+v", p, p.c.Resources)
	}
	sc, psc := p.c.SecurityContext, p.dep.Spec.Template.Spec.SecurityContext
	if sc == nil || psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s is not locked down (non-root, read-only root, no capabilities, RuntimeDefault seccomp): pod %+v, container %+v", p, psc, sc)
	}
	if !mountPaths(p)["/tmp"] {
		t.Errorf("%s: read-only root filesystem without a writable /tmp", p)
	}
	// GOMEMLIMIT leaves 10 to 20 % of the limit to memory the Go runtime
	// does not count (values.yaml has the formula).
	if _, _, ratio, ok := goMemLimitRatio(t, p.u); ok && (ratio < 0.80 || ratio > 0.90) {
		t.Errorf("%s: GOMEMLIMIT is %.1f %% of the memory limit, want 80 to 90 %%", p, 100*ratio)
	}
}

// checkPartDatabase: the database the part is given, and how.
func checkPartDatabase(t *testing.T, p *part) {
	t.Helper()
	mounts := mountPaths(p)
	// The database comes from HELPDESK_DATABASE_URL, which is only the
	// default of --helpdesk-database: the flag must not be given.
	if db, ok := p.args["--helpdesk-database"]; ok {
		t.Errorf("%s is given --helpdesk-database=%s, which would win over HELPDESK_DATABASE_URL", p, db)
	}
	// Either a required Secret (an optional one, missing or misnamed, left
	// the operator on its built-in SQLite default), or a SQLite file named
	// outright, on a volume, with one replica (two would each write their
	// own file).
	switch dbURL := envVar(t, p.u, "HELPDESK_DATABASE_URL"); {
	case dbURL == nil:
		t.Errorf("%s has no HELPDESK_DATABASE_URL: it would run on its built-in SQLite default", p)
	case dbURL.ValueFrom != nil && dbURL.ValueFrom.SecretKeyRef != nil:
		if ref := dbURL.ValueFrom.SecretKeyRef; ref.Optional != nil && *ref.Optional {
			t.Errorf("%s: HELPDESK_DATABASE_URL comes from an optional Secret key (%s/%s): without the Secret the operator would quietly run on SQLite", p, ref.Name, ref.Key)
		}
	case strings.HasPrefix(dbURL.Value, "sqlite://"):
		if p.replicas() != 1 {
			t.Errorf("%s: %d replicas on SQLite (%s): each would write its own file", p, p.replicas(), dbURL.Value)
		}
		file := strings.TrimPrefix(dbURL.Value, "sqlite://")
		if !strings.HasPrefix(file, "/") || !mounts[filepath.Dir(file)] {
			t.Errorf("%s: the SQLite file %s is not on a volume (mounts: %v)", p, file, mounts)
		}
	default:
		t.Errorf("%s: HELPDESK_DATABASE_URL is neither from a Secret nor a SQLite file: %+v", p, dbURL)
	}
}

// checkPartSpread: several replicas are spread over nodes, by constraints
// that select the part's own Pods.
func checkPartSpread(t *testing.T, p *part) {
	t.Helper()
	pod := p.dep.Spec.Template
	if p.replicas() > 1 && len(pod.Spec.TopologySpreadConstraints) == 0 && (pod.Spec.Affinity == nil || pod.Spec.Affinity.PodAntiAffinity == nil) {
		t.Errorf("%s: %d replicas and nothing spreads them over nodes", p, p.replicas())
	}
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if s := selected(t, "a topology spread constraint of "+p.String(), tsc.LabelSelector, []*part{p}); len(s) == 0 {
			t.Errorf("%s: a topology spread constraint does not select its own Pods", p)
		}
	}
}

// grant is one rule a binding gives a ServiceAccount.
type grant struct {
	binding, role string // keys of the binding and the role
	ns            string // where it applies; "" cluster-wide
	rule          rbacv1.PolicyRule
}

func (g grant) String() string {
	where := "cluster-wide"
	if g.ns != "" {
		where = "in " + g.ns
	}
	return fmt.Sprintf("%v on %v%s %s (%s through %s)", g.rule.Verbs, g.rule.Resources, names(g.rule.ResourceNames), where, g.role, g.binding)
}

func names(n []string) string {
	if len(n) == 0 {
		return ""
	}
	return fmt.Sprintf(" named %v", n)
}

type rbacBinding struct {
	metav1.ObjectMeta `json:"metadata"`
	RoleRef           rbacv1.RoleRef   `json:"roleRef"`
	Subjects          []rbacv1.Subject `json:"subjects"`
}

// grantsTo returns every rule the rendered bindings give the ServiceAccount
// ns/name.
func grantsTo(t *testing.T, objs []*unstructured.Unstructured, ns, name string) []grant {
	t.Helper()
	var out []grant
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range ofKind(objs, kind) {
			b := typed[rbacBinding](t, u)
			if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Name == name && s.Namespace == ns
			}) {
				continue
			}
			roleNs := ""
			if b.RoleRef.Kind == "Role" {
				roleNs = u.GetNamespace()
			}
			role := find(t, objs, b.RoleRef.Kind, roleNs, b.RoleRef.Name)
			for _, r := range typed[struct {
				Rules []rbacv1.PolicyRule `json:"rules"`
			}](t, role).Rules {
				out = append(out, grant{binding: key(u), role: key(role), ns: u.GetNamespace(), rule: r})
			}
		}
	}
	return out
}

// covers reports whether the rule applies to the resource of the API group.
func covers(r rbacv1.PolicyRule, group, resource string) bool {
	return (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
		(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*"))
}

// hasVerbs reports whether the rule allows all the verbs.
func hasVerbs(r rbacv1.PolicyRule, verbs ...string) bool {
	for _, v := range verbs {
		if !slices.Contains(r.Verbs, v) && !slices.Contains(r.Verbs, "*") {
			return false
		}
	}
	return true
}

// readsInstallationKeyOnly reports whether the rule reads the installation
// key and nothing else: installation-key-reader.
func readsInstallationKeyOnly(r rbacv1.PolicyRule) bool {
	return slices.Equal(r.Verbs, []string{"get"}) && slices.Equal(r.ResourceNames, []string{installationKeySecret})
}

// tokenSecretVerbs are what the controllers do with token Secrets
// (ClusterRole token-secrets).
var tokenSecretVerbs = []string{"get", "list", "watch", "create", "update", "delete"}

// checkRBAC checks that bindings name what exists, and that each part holds
// what it needs and, for the SCIM server in production, nothing of Secrets
// but the installation key.
func checkRBAC(t *testing.T, objs []*unstructured.Unstructured, parts []*part, sqlite bool) {
	t.Helper()
	accounts := map[string]bool{}
	for _, p := range parts {
		find(t, objs, "ServiceAccount", p.u.GetNamespace(), p.serviceAccount())
		accounts[p.u.GetNamespace()+"/"+p.serviceAccount()] = true
	}
	// Bindings name roles and ServiceAccounts that exist, and no
	// ServiceAccount but the operator's.
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range ofKind(objs, kind) {
			b := typed[rbacBinding](t, u)
			roleNs := ""
			if b.RoleRef.Kind == "Role" {
				roleNs = u.GetNamespace()
			}
			find(t, objs, b.RoleRef.Kind, roleNs, b.RoleRef.Name)
			for _, s := range b.Subjects {
				if s.Kind != "ServiceAccount" {
					t.Errorf("%s binds the %s %s: only the operator's ServiceAccounts are bound", key(u), s.Kind, s.Name)
					continue
				}
				find(t, objs, "ServiceAccount", s.Namespace, s.Name)
				if !accounts[s.Namespace+"/"+s.Name] {
					t.Errorf("%s binds %s/%s, which no Deployment runs as", key(u), s.Namespace, s.Name)
				}
			}
		}
	}
	for _, p := range parts {
		grants := grantsTo(t, objs, p.u.GetNamespace(), p.serviceAccount())
		if !slices.ContainsFunc(grants, func(g grant) bool { return g.ns == "" && covers(g.rule, "scim.helpdesk.dev", "provisionedusers") }) {
			t.Errorf("%s: no ClusterRoleBinding lets its ServiceAccount %s reach the users of every tenant", p, p.serviceAccount())
		}
		if _, leader := p.args["--leader-elect"]; leader && !slices.ContainsFunc(grants, func(g grant) bool {
			return g.ns == p.u.GetNamespace() && covers(g.rule, "coordination.k8s.io", "leases") && hasVerbs(g.rule, "get", "create", "update")
		}) {
			t.Errorf("%s elects a leader, but nothing lets its ServiceAccount %s hold a Lease in %s", p, p.serviceAccount(), p.u.GetNamespace())
		}
		// The Pods that parse what the internet sends hold no Secret
		// but the installation key, and no Lease: only with SQLite does
		// one Pod run the controllers too, and need both.
		if !p.servesSCIM() || sqlite {
			continue
		}
		for _, g := range grants {
			if covers(g.rule, "", "secrets") && !readsInstallationKeyOnly(g.rule) {
				t.Errorf("%s serves SCIM, and its ServiceAccount %s may %s: the Pods that parse internet input may read no Secret but %s", p, p.serviceAccount(), g, installationKeySecret)
			}
			if covers(g.rule, "coordination.k8s.io", "leases") {
				t.Errorf("%s serves SCIM, and its ServiceAccount %s may %s: only the controllers elect a leader", p, p.serviceAccount(), g)
			}
		}
		if !slices.ContainsFunc(grants, func(g grant) bool {
			return g.ns == p.u.GetNamespace() && covers(g.rule, "", "secrets") && readsInstallationKeyOnly(g.rule)
		}) {
			t.Errorf("%s serves SCIM, but nothing lets its ServiceAccount %s read the installation key %s/%s", p, p.serviceAccount(), p.u.GetNamespace(), installationKeySecret)
		}
	}
	for _, p := range parts {
		if p.runsControllers() {
			checkTokenSecrets(t, objs, p, splitList(p.args["--token-namespaces"]))
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// checkTokenSecrets checks that the controllers p get the token Secrets
// where they serve tenants and nowhere else: with tenants, in each of those
// namespaces and no ClusterRoleBinding grants anything on Secrets; without,
// cluster-wide.
func checkTokenSecrets(t *testing.T, objs []*unstructured.Unstructured, p *part, tenants []string) {
	t.Helper()
	var tokenGrants []grant // rules on Secrets beyond the installation key's create and get
	for _, g := range grantsTo(t, objs, p.u.GetNamespace(), p.serviceAccount()) {
		if covers(g.rule, "", "secrets") && len(g.rule.ResourceNames) == 0 && !slices.Equal(g.rule.Verbs, []string{"create"}) {
			tokenGrants = append(tokenGrants, g)
		}
	}
	where := func(ns string) bool {
		return slices.ContainsFunc(tokenGrants, func(g grant) bool { return g.ns == ns && hasVerbs(g.rule, tokenSecretVerbs...) })
	}
	if len(tenants) == 0 {
		if !where("") {
			t.Errorf("%s serves every namespace (no --token-namespaces), but no ClusterRoleBinding gives its ServiceAccount %s %v on Secrets", p, p.serviceAccount(), tokenSecretVerbs)
		}
		return
	}
	for _, u := range ofKind(objs, "ClusterRoleBinding") {
		b := typed[rbacBinding](t, u)
		for _, r := range typed[struct {
			Rules []rbacv1.PolicyRule `json:"rules"`
		}](t, find(t, objs, "ClusterRole", "", b.RoleRef.Name)).Rules {
			if covers(r, "", "secrets") {
				t.Errorf("%s grants %v on secrets%s cluster-wide (%s), although the controllers serve only %v: bind the token Secrets with a RoleBinding in each", key(u), r.Verbs, names(r.ResourceNames), b.RoleRef.Name, tenants)
			}
		}
	}
	for _, ns := range tenants {
		if !where(ns) {
			t.Errorf("no RoleBinding in the tenant namespace %s gives %s (ServiceAccount %s) %v on Secrets", ns, p, p.serviceAccount(), tokenSecretVerbs)
		}
	}
	for _, g := range tokenGrants {
		if g.ns != "" && !slices.Contains(tenants, g.ns) {
			t.Errorf("%s (ServiceAccount %s) may %s, a namespace --token-namespaces=%s does not name", p, p.serviceAccount(), g, strings.Join(tenants, ","))
		}
	}
}

// checkTenantNamespaces checks a rendering given tenant namespaces: the
// controllers are told them, and get the token Secrets there only.
func checkTenantNamespaces(t *testing.T, objs []*unstructured.Unstructured, tenants []string) {
	t.Helper()
	var ctrl []*part
	for _, p := range operatorParts(t, objs) {
		if p.runsControllers() {
			ctrl = append(ctrl, p)
		}
	}
	if len(ctrl) != 1 {
		t.Fatalf("want one Deployment running the controllers, got %v", ctrl)
	}
	if want := strings.Join(tenants, ","); ctrl[0].args["--token-namespaces"] != want {
		t.Errorf("%s has --token-namespaces=%q, want %q (args %v)", ctrl[0], ctrl[0].args["--token-namespaces"], want, ctrl[0].c.Args)
	}
	checkTokenSecrets(t, objs, ctrl[0], tenants)
}

// checkServices checks that every Service reaches Pods that have its target
// ports, that the SCIM Service reaches exactly the Pods serving SCIM (in
// production: the SCIM server alone, never the controllers), and the
// metrics Service every Pod. It returns the ports of the SCIM Services by
// name.
func checkServices(t *testing.T, objs []*unstructured.Unstructured, parts []*part, sqlite bool) map[string][]corev1.ServicePort {
	t.Helper()
	scimPorts := map[string][]corev1.ServicePort{}
	var metrics bool
	for _, s := range ofKind(objs, "Service") {
		svc := typed[corev1.Service](t, s)
		reached := selected(t, key(s), &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, parts)
		var servesSCIM, servesMetrics bool
		for _, port := range svc.Spec.Ports {
			target := port.TargetPort.String()
			servesSCIM = servesSCIM || target == "scim"
			servesMetrics = servesMetrics || target == "metrics"
			for _, p := range reached {
				if p.ports[target] == 0 {
					t.Errorf("%s targets port %s, which the Pods of %s do not have", key(s), target, p)
				}
			}
		}
		if servesSCIM {
			scimPorts[svc.Name] = svc.Spec.Ports
			for _, p := range parts {
				if in := slices.Contains(reached, p); in != p.servesSCIM() {
					t.Errorf("%s reaches the Pods of %s: %v, but they serve SCIM: %v", key(s), p, in, p.servesSCIM())
				}
			}
			for _, p := range reached {
				if !sqlite && p.run != "scim" {
					t.Errorf("the SCIM %s reaches the Pods of %s, which run --component=%s: in production the Service behind the Ingress reaches the SCIM server alone, never Pods holding the token Secrets", key(s), p, p.run)
				}
			}
		}
		if servesMetrics {
			metrics = true
			for _, p := range parts {
				if !slices.Contains(reached, p) {
					t.Errorf("%s does not reach the metrics of %s", key(s), p)
				}
			}
		}
	}
	if len(scimPorts) == 0 || !metrics {
		t.Errorf("want a SCIM and a metrics Service, got SCIM Services %v, a metrics Service: %v", slices.Collect(maps.Keys(scimPorts)), metrics)
	}
	return scimPorts
}

// checkIngresses checks that the Ingress reaches a Service port that targets
// SCIM, at the public URL.
func checkIngresses(t *testing.T, objs []*unstructured.Unstructured, parts []*part, scimServicePorts map[string][]corev1.ServicePort) {
	t.Helper()
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
		for _, p := range parts {
			if want := "https://" + rule.Host + path.Path; p.args["--public-url"] != want {
				t.Errorf("%s has --public-url=%s, but the Ingress publishes %s", p, p.args["--public-url"], want)
			}
		}
		// The SCIM Services reach only the SCIM Pods (checkServices).
		backend := path.Backend.Service
		var ok bool
		for _, p := range scimServicePorts[backend.Name] {
			ok = ok || (p.Name == backend.Port.Name && p.TargetPort.String() == "scim")
		}
		if !ok {
			t.Errorf("%s: backend %s port %q is not a Service port targeting SCIM", key(i), backend.Name, backend.Port.Name)
		}
	}
}

// checkBudgets checks one PodDisruptionBudget per Deployment of two
// replicas or more, none for one (it would block every node drain), and
// room for a drain in each.
func checkBudgets(t *testing.T, objs []*unstructured.Unstructured, parts []*part) {
	t.Helper()
	budgets := map[*part]int{}
	for _, u := range ofKind(objs, "PodDisruptionBudget") {
		pdb := typed[struct {
			Spec struct {
				MinAvailable any                   `json:"minAvailable"`
				Selector     *metav1.LabelSelector `json:"selector"`
			} `json:"spec"`
		}](t, u)
		reached := selected(t, key(u), pdb.Spec.Selector, parts)
		if len(reached) > 1 {
			t.Errorf("%s selects the Pods of %v: one budget per Deployment", key(u), reached)
		}
		for _, p := range reached {
			budgets[p]++
			// A budget as large as the replica count lets no node drain.
			if n, ok := pdb.Spec.MinAvailable.(float64); ok && int32(n) >= p.replicas() {
				t.Errorf("%s: minAvailable %v with %d replicas of %s blocks every node drain", key(u), n, p.replicas(), p)
			}
		}
	}
	for _, p := range parts {
		if p.replicas() < 2 && budgets[p] > 0 {
			t.Errorf("%s has %d replica and a PodDisruptionBudget: it would block every node drain", p, p.replicas())
		}
		if p.replicas() > 1 && budgets[p] != 1 {
			t.Errorf("%s has %d replicas and %d PodDisruptionBudgets, want 1", p, p.replicas(), budgets[p])
		}
	}
}

// checkNetworkPolicies checks that each policy opens only ports its Pods
// have (so the SCIM port only on the SCIM Pods), that every Pod's egress
// is limited, and that out only DNS goes to any address.
func checkNetworkPolicies(t *testing.T, objs []*unstructured.Unstructured, parts []*part) {
	t.Helper()
	policies := ofKind(objs, "NetworkPolicy")
	if len(policies) == 0 {
		return
	}
	egress, opened := map[*part]bool{}, map[*part][]string{}
	for _, n := range policies {
		np := typed[struct {
			Spec struct {
				PodSelector metav1.LabelSelector `json:"podSelector"`
				PolicyTypes []string             `json:"policyTypes"`
				Ingress     []struct {
					Ports []struct {
						Port any `json:"port"`
					} `json:"ports"`
				} `json:"ingress"`
			} `json:"spec"`
		}](t, n)
		reached := selected(t, key(n), &np.Spec.PodSelector, parts)
		for _, r := range np.Spec.Ingress {
			for _, port := range r.Ports {
				name, ok := port.Port.(string)
				if !ok {
					t.Errorf("%s opens port %v by number: name it, so that it follows the container", key(n), port.Port)
					continue
				}
				for _, p := range reached {
					if p.ports[name] == 0 {
						t.Errorf("%s opens port %q on the Pods of %s, which do not have it", key(n), name, p)
					}
					opened[p] = append(opened[p], name)
				}
			}
		}
		if slices.Contains(np.Spec.PolicyTypes, "Egress") {
			for _, p := range reached {
				egress[p] = true
			}
		}
		// Out, only DNS may go to any address; everything else goes to
		// named CIDRs.
		for _, r := range egressRules(t, n) {
			if len(r.To) == 0 && !slices.Equal(r.Ports, []int32{53, 53}) {
				t.Errorf("%s lets the Pods connect to any address on ports %v", key(n), r.Ports)
			}
		}
	}
	for _, p := range parts {
		if !egress[p] {
			t.Errorf("no NetworkPolicy limits where the Pods of %s connect", p)
		}
		want := []string{"metrics"}
		if p.servesSCIM() {
			want = append(want, "scim")
		}
		for _, port := range want {
			if !slices.Contains(opened[p], port) {
				t.Errorf("no NetworkPolicy opens the %s port of %s", port, p)
			}
		}
	}
}
