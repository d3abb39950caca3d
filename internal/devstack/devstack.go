// Package devstack runs the whole product on one machine for a first look:
// a local control plane (etcd and kube-apiserver built by hack/), the
// operator with an embedded SQLite helpdesk database, and a demo tenant
// with a ScimToken. Its state lives in one folder, so a restart keeps every
// user, group and token.
package devstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/config/crd"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/kscheme"
	"github.com/scim-operator/scim-operator/internal/operator"
)

// stateVersion names the layout of the state folder; a folder written by an
// incompatible version is refused instead of half-read.
const stateVersion = "scim-operator-dev/v1alpha1 etcd-v3.6"

// Demo tenant created on first start.
const (
	DemoNamespace = "demo"
	DemoToken     = "entra"
	// DemoDatabaseSecret holds the URL of the demo tenant's database.
	DemoDatabaseSecret = "helpdesk-database"
)

// Options configure Run.
type Options struct {
	StateDir  string
	SCIMAddr  string
	AssetsDir string // kube-apiserver and etcd
	// MetricsAddr is the operator's Prometheus endpoint; "" or "0" disables
	// it (make bench turns it on to read heap and sync lag).
	MetricsAddr string
	// PprofAddr serves Go profiles of the operator; "" or "0" disables.
	PprofAddr string
	// TenantDatabasePrefixes are where a ProvisioningConfig may point
	// besides the state folder's tenants/ (make bench's PostgreSQL tenant).
	TenantDatabasePrefixes []string
	// ResyncPeriod is how often synced rows are checked for drift; 0 means
	// one minute, short so that a demo shows a repaired row soon.
	ResyncPeriod time.Duration
}

// Run starts everything, prints how to use it, and blocks until ctx ends;
// then it stops what it started, children included.
func Run(ctx context.Context, log logr.Logger, out io.Writer, o Options) (retErr error) {
	state, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}
	if err := checkState(state); err != nil {
		return err
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	// One dev process per state folder; what an earlier one that died left
	// running (etcd holding the data folder) is stopped first.
	lock, err := lockState(state)
	if err != nil {
		return err
	}
	defer lock.release()
	crds, err := prepareStart(state, o, step)
	if err != nil {
		return err
	}

	step("starting etcd and kube-apiserver (data in %s)", filepath.Join(state, "etcd"))
	env, cfg, err := startControlPlane(state, o.AssetsDir, crds)
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the control plane")
		if err := env.Stop(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("stopping the control plane: %w", err))
		}
	}()
	kubeconfig := filepath.Join(state, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", kubeconfig, err)
	}

	dbURL := "sqlite://" + filepath.Join(state, "helpdesk.db")
	step("opening the helpdesk database %s", dbURL)
	store, err := helpdesk.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer store.Close()

	publicURL := "http://" + o.SCIMAddr + "/scim/v2"
	listening := make(chan string, 1)
	op, err := newOperator(cfg, log, o, state, store, publicURL, listening)
	if err != nil {
		return err
	}
	step("starting the operator (SCIM on %s)", o.SCIMAddr)
	done, stop := startManager(ctx, op)
	defer func() {
		if err := stop(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("operator: %w", err))
		}
	}()

	token, ready, err := startDemoTenant(ctx, cfg, state, done, listening, publicURL, step)
	if err != nil || !ready {
		return err
	}
	if err := writeEndpoint(state, publicURL, token); err != nil {
		return err
	}
	printBanner(out, state, publicURL, token, kubeconfig, kubectlFor(o.AssetsDir))
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "==> shutting down")
		return nil
	case err := <-done:
		done <- err // for the deferred stop
		return fmt.Errorf("the operator stopped: %w", err)
	}
}

// writeEndpoint leaves the endpoint and the token in the state folder, for
// scripts (make bench, the e2e test) to read.
func writeEndpoint(state, publicURL, token string) error {
	for name, content := range map[string]string{"endpoint": publicURL + "\n", "token": token + "\n"} {
		if err := os.WriteFile(filepath.Join(state, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// prepareStart stops what an earlier dev process left running and checks,
// before anything starts, what would make the start fail half-way: the
// SCIM port, the control plane binaries, the CRDs.
func prepareStart(state string, o Options, step func(string, ...any)) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	if left := findLeftovers(state); len(left) > 0 {
		if err := stopLeftovers(left, 10*time.Second); err != nil {
			return nil, err
		}
		step("stopped %s, left running by an earlier scim-operator dev on %s that did not stop cleanly", joinLeftovers(left), state)
	}
	if err := checkPort(o.SCIMAddr); err != nil {
		return nil, err
	}
	if o.AssetsDir == "" {
		return nil, errors.New("no control plane binaries: run `make run`, or pass --control-plane-dir (the folder hack/controlplane/build.sh prints)")
	}
	return loadCRDs()
}

// startControlPlane starts etcd (its data in the state folder, so a
// restart keeps everything) and kube-apiserver, with the CRDs installed.
func startControlPlane(state, assets string, crds []*apiextensionsv1.CustomResourceDefinition) (*envtest.Environment, *rest.Config, error) {
	etcdPath, apiserverPath, err := launchers(state, assets)
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds},
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(state, "etcd"), Path: etcdPath}
	env.ControlPlane.APIServer = &envtest.APIServer{Path: apiserverPath}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	// A local API server of our own: no client-side throttling.
	cfg.QPS, cfg.Burst = -1, -1
	return env, cfg, nil
}

// newOperator builds the operator as the binary would, with the SQLite
// helpdesk store, a short resync (unless o says otherwise) and room for
// the demo tenant's database.
func newOperator(cfg *rest.Config, log logr.Logger, o Options, state string, store helpdesk.Store, publicURL string, listening chan<- string) (*operator.Operator, error) {
	return operator.New(cfg, operator.Options{
		Scheme: kscheme.New(), Log: log, SCIMAddr: o.SCIMAddr, PublicURL: publicURL,
		MetricsAddr: o.MetricsAddr, PprofAddr: o.PprofAddr,
		SCIMBound: func(addr string) { listening <- addr },
		Helpdesk:  store, ResyncPeriod: cmp.Or(o.ResyncPeriod, time.Minute),
		// The demo tenant has a database of its own (its ProvisioningConfig).
		TenantDatabasePrefixes: append([]string{"sqlite://" + filepath.Join(state, "tenants") + "/"}, o.TenantDatabasePrefixes...),
	})
}

// startManager runs the operator's manager until ctx ends or stop is
// called; done receives its result (and whoever reads it early puts it
// back for stop).
func startManager(ctx context.Context, op *operator.Operator) (done chan error, stop func() error) {
	mgrCtx, stopMgr := context.WithCancel(ctx)
	done = make(chan error, 1)
	go func() { done <- op.Manager.Start(mgrCtx) }()
	return done, func() error {
		stopMgr()
		return <-done
	}
}

// startDemoTenant creates the demo tenant and waits until the SCIM server
// serves and accepts its token. ready is false when ctx ended first.
func startDemoTenant(ctx context.Context, cfg *rest.Config, state string, done chan error, listening <-chan string, publicURL string,
	step func(string, ...any)) (token string, ready bool, err error) {
	step("creating the demo tenant: namespace %q with ScimToken %q and a ProvisioningConfig (database %s)",
		DemoNamespace, DemoToken, filepath.Join(rel(state), "tenants", DemoNamespace+".db"))
	c, err := client.New(cfg, client.Options{Scheme: kscheme.New()})
	if err != nil {
		return "", false, err
	}
	token, err = ensureDemoTenant(ctx, c, done, "sqlite://"+filepath.Join(state, "tenants", DemoNamespace+".db"))
	if err != nil {
		return "", false, err
	}
	// The SCIM server starts once the caches synced; say ready only then.
	select {
	case <-listening:
	case err := <-done:
		done <- err
		return "", false, fmt.Errorf("the operator stopped before serving SCIM: %w", err)
	case <-ctx.Done():
		return "", false, nil
	}
	if err := waitAccepted(ctx, publicURL, token); err != nil {
		return "", false, err
	}
	return token, true, nil
}

// joinLeftovers is "etcd (pid 1)", "etcd (pid 1) and kube-apiserver (pid 2)", ...
func joinLeftovers(list []leftover) string {
	names := make([]string, len(list))
	for i, l := range list {
		names[i] = l.String()
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// kubectlFor is "kubectl" when one is on PATH, else the one hack/ built.
func kubectlFor(assets string) string {
	if _, err := exec.LookPath("kubectl"); err == nil {
		return "kubectl"
	}
	if p := filepath.Join(assets, "kubectl"); fileExists(p) {
		return p
	}
	return "kubectl"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// rel is p relative to the working directory when it lies inside it.
func rel(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

func printBanner(out io.Writer, state, endpoint, token, kubeconfig, kubectl string) {
	fmt.Fprintf(out, `
SCIM endpoint (Entra "Tenant URL"):   %s
Bearer token  (Entra "Secret Token"): %s  (also in %s)

Try it:
  curl -s -H "Authorization: Bearer $(cat %s)" '%s/Users?filter=userName+eq+%%22alice%%40example.test%%22'
  curl -s -H "Authorization: Bearer $(cat %s)" -H 'Content-Type: application/scim+json' \
    -d '{"userName":"alice@example.test","name":{"givenName":"Alice","familyName":"Liddell"}}' %s/Users
  %s --kubeconfig %s get scimtokens,provisioningconfigs,provisionedusers,provisionedgroups -n %s
  sqlite3 %s 'select user_name, active from helpdesk_users'

ready: scim-operator dev is running; Ctrl-C stops it (state kept in %s)
`, endpoint, token, rel(filepath.Join(state, "token")), rel(filepath.Join(state, "token")), endpoint,
		rel(filepath.Join(state, "token")), endpoint, kubectl, rel(kubeconfig), DemoNamespace,
		rel(filepath.Join(state, "tenants", DemoNamespace+".db")), rel(state))
}

// checkState creates the state folder or checks that an existing one was
// written by this version.
func checkState(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the state folder %s: %w", dir, err)
	}
	marker := filepath.Join(dir, "VERSION")
	b, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			return fmt.Errorf("%s is not empty and was not written by scim-operator dev; choose another --state-dir", dir)
		}
		return os.WriteFile(marker, []byte(stateVersion+"\n"), 0o600)
	case err != nil:
		return err
	case strings.TrimSpace(string(b)) != stateVersion:
		return fmt.Errorf("%s was written by an incompatible version (%q, this is %q); remove it (rm -rf %s) or choose another --state-dir",
			dir, strings.TrimSpace(string(b)), stateVersion, dir)
	}
	return nil
}

func checkPort(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (%w): another process uses it; stop it or pass --scim-bind-address HOST:PORT", addr, err)
	}
	return ln.Close()
}

func loadCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(crd.Bases, "bases/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		raw, err := crd.Bases.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(raw, c); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ensureDemoTenant creates the demo namespace and token unless a previous
// run did, and returns the token once the operator issued it.
func ensureDemoTenant(ctx context.Context, c client.Client, done <-chan error, dbURL string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DemoNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating namespace %s: %w", DemoNamespace, err)
	}
	// The tenant's database, as a GitOps repository would hold it: a Secret
	// with the URL and the ProvisioningConfig naming it (docs/gitops.md).
	dbSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: DemoDatabaseSecret, Namespace: DemoNamespace},
		StringData: map[string]string{"url": dbURL}}
	if err := c.Create(ctx, dbSecret); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating Secret %s/%s: %w", DemoNamespace, DemoDatabaseSecret, err)
	}
	cfg := &scimv1.ProvisioningConfig{
		ObjectMeta: metav1.ObjectMeta{Name: scimv1.ProvisioningConfigName, Namespace: DemoNamespace},
		Spec: scimv1.ProvisioningConfigSpec{
			Database:       &scimv1.TenantDatabase{SecretRef: scimv1.DatabaseSecretReference{Name: DemoDatabaseSecret, Key: "url"}},
			DeletionPolicy: string(helpdesk.DeletionPolicyRetain),
			CustomFields: []scimv1.CustomFieldDefinition{{Name: "cost-center", Type: "string",
				Description: "Cost center, declared in the demo tenant's ProvisioningConfig."}},
		},
	}
	if err := c.Create(ctx, cfg); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ProvisioningConfig %s/%s: %w", DemoNamespace, cfg.Name, err)
	}
	tk := &scimv1.ScimToken{
		ObjectMeta: metav1.ObjectMeta{Name: DemoToken, Namespace: DemoNamespace},
		Spec:       scimv1.ScimTokenSpec{Description: "demo tenant for scim-operator dev"},
	}
	if err := c.Create(ctx, tk); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ScimToken %s/%s: %w", DemoNamespace, DemoToken, err)
	}
	deadline := time.After(2 * time.Minute)
	for {
		var s corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: DemoNamespace, Name: DemoToken + "-token"}, &s)
		if err == nil && len(s.Data["token"]) > 0 {
			return string(s.Data["token"]), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case err := <-done:
			return "", fmt.Errorf("the operator stopped before issuing the demo token: %w", err)
		case <-deadline:
			return "", errors.New("the operator did not issue the demo token within 2 minutes; see the log above")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitAccepted waits until the SCIM server accepts the token: the Secret is
// written a moment before the status that the authenticator reads.
func waitAccepted(ctx context.Context, endpoint, token string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/ServiceProviderConfig", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answer %s", res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the SCIM server did not accept the demo token within a minute (last: %w)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
