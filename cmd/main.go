// Command scim-operator is the operator's binary. Without a subcommand it is
// the in-cluster manager; `scim-operator dev` runs the whole stack locally.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/scim-operator/scim-operator/internal/clientaddr"
	"github.com/scim-operator/scim-operator/internal/devstack"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/kscheme"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/settings"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dev" {
		os.Exit(devMain(os.Args[2:]))
	}
	os.Exit(managerMain(os.Args[1:]))
}

// managerFlags are the in-cluster manager's settings.
type managerFlags struct {
	metricsAddr, probeAddr      string
	pprofAddr                   string
	leaderElect                 bool
	leaderElectionNamespace     string
	scimAddr, scimCert, scimKey string
	publicURL                   string
	database                    string
	deletionPolicy              string
	resync                      time.Duration
	maxBody                     int64
	rateLimit                   float64
	rateBurst                   int
	trustedProxies              []netip.Prefix
	scanCeiling                 int
	scansPerTenant, scansTotal  int
	component                   string
	tokenNamespaces             []string
	entraKeysURLPrefixes        []string
	tenantDatabasePrefixes      []string
	allowEntraIssued            bool
	zap                         zap.Options
}

// register defines the flags; their defaults come from settings.Default.
func (f *managerFlags) register(fs *flag.FlagSet) {
	d := settings.Default()
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", d.MetricsAddr, "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", d.ProbeAddr, "Address of /healthz and /readyz.")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", d.PprofAddr, "Address serving Go profiles at /debug/pprof (for memory and CPU analysis); \"0\" disables it.")
	fs.StringVar(&f.component, "component", d.Component, "What this process runs: all, scim (the SCIM server, on every replica; needs no access to Secrets but the installation key) "+
		"or controllers (tokens, their Secrets and the helpdesk sync, on the elected leader).")
	fs.Func("token-namespaces", "Comma-separated tenant `namespaces` whose token Secrets the controllers manage (where ClusterRole token-secrets is bound); "+
		"empty (the default): every namespace, which needs token-secrets bound cluster-wide. A ScimToken elsewhere reports NamespaceNotServed.",
		appendList(&f.tokenNamespaces))
	fs.BoolVar(&f.allowEntraIssued, "allow-entra-issued-tokens", false, "Accept the tokens Entra ID issues itself for ScimTokens with spec.entraIssued "+
		"(experimental; each namespace also needs the annotation scim.helpdesk.dev/entra-tenant-ids listing the directory, set by a cluster administrator).")
	fs.Func("entra-keys-url-prefixes", "Comma-separated URL `prefixes` a ScimToken's spec.entraIssued.keysURL may point to (a proxy or mirror of Entra's keys), besides https://login.microsoftonline.com/; "+
		"anything else is never fetched (keysURL is written by namespace editors).",
		appendList(&f.entraKeysURLPrefixes))
	fs.Func("tenant-database-prefixes", "Comma-separated URL `prefixes` where a ProvisioningConfig's spec.database may point, such as postgres://db.internal:5432/ or "+
		"sqlite:///var/lib/scim-operator/tenants/ (scheme, host and port equal, path under the prefix's; credentials and options not compared); "+
		"empty (the default): tenants use the operator's database and a spec.database is refused (DatabaseNotAllowed).",
		appendList(&f.tenantDatabasePrefixes))
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "Elect a leader among replicas; controllers run on the leader, SCIM on every replica.")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	fs.StringVar(&f.scimAddr, "scim-bind-address", d.SCIMAddr, "Address the SCIM server listens on.")
	fs.StringVar(&f.scimCert, "scim-tls-cert-file", "", "TLS certificate for the SCIM server; plain HTTP when empty (TLS terminated by the ingress).")
	fs.StringVar(&f.scimKey, "scim-tls-key-file", "", "TLS key for the SCIM server.")
	fs.StringVar(&f.publicURL, "public-url", "", "SCIM base URL identity providers use, e.g. https://helpdesk.example.com/scim/v2 (shown in ScimToken status).")
	fs.StringVar(&f.database, "helpdesk-database", envOr("HELPDESK_DATABASE_URL", d.HelpdeskDatabase),
		"Helpdesk database URL: sqlite://PATH, postgres://USER@HOST:PORT/DB, or mysql://USER:PASS@HOST:PORT/DB (env HELPDESK_DATABASE_URL).")
	fs.StringVar(&f.deletionPolicy, "deletion-policy", d.DeletionPolicy, "What a deleted user or group does to its helpdesk row: retain (mark deleted) or delete; a tenant's ProvisioningConfig spec.deletionPolicy overrides it.")
	fs.DurationVar(&f.resync, "resync-period", d.ResyncPeriod, "How often synced rows are checked and repaired.")
	fs.Int64Var(&f.maxBody, "scim-max-body-bytes", d.MaxBodyBytes, "Largest SCIM request body accepted (413 above).")
	fs.Float64Var(&f.rateLimit, "scim-rate-limit", d.RateLimit, "Requests per second one token may sustain (429 with Retry-After above); 0 disables. Entra needs 25 per tenant.")
	fs.IntVar(&f.rateBurst, "scim-rate-burst", d.RateBurst, "Requests one token may make at once before --scim-rate-limit applies.")
	fs.Func("trusted-proxies", "Comma-separated `CIDRs` of the proxies in front of the SCIM server (the ingress controller's Pods, e.g. the pod CIDR 10.244.0.0/16). "+
		"From them X-Forwarded-For and Forwarded name the client for the failed-authentication limit and the logs; empty (the default) trusts nobody and uses the peer address.",
		func(s string) (err error) {
			f.trustedProxies, err = clientaddr.ParsePrefixes(s)
			return err
		})
	fs.IntVar(&f.scanCeiling, "scim-scan-ceiling", d.ScanCeiling, "Most users or groups (or group member entries) a SCIM filter without an indexed equality, or a sortBy, may examine; "+
		"above it the query answers 400 tooMany naming the indexed filters (userName eq, externalId eq, ...). Negative disables the ceiling.")
	fs.IntVar(&f.scansPerTenant, "scim-scans-per-tenant", d.ScansPerTenant, "SCIM list requests that read a whole tenant (no indexed filter) one tenant may run at once; more wait briefly, then get 429 with Retry-After.")
	fs.IntVar(&f.scansTotal, "scim-scans-total", d.ScansTotal, "SCIM list requests that read a whole tenant all tenants together may run at once on a replica; more wait briefly, then get 503 with Retry-After.")
	f.zap.BindFlags(fs)
}

// appendList parses a comma-separated flag value into dst (empty items
// dropped; the flag may be given several times).
func appendList(dst *[]string) func(string) error {
	return func(s string) error {
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*dst = append(*dst, item)
			}
		}
		return nil
	}
}

// envOr returns the variable when it is set, even when it is empty: an empty
// HELPDESK_DATABASE_URL (an empty key in the database Secret) must stop the
// manager, not quietly open the SQLite default.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func (f *managerFlags) policy() (helpdesk.DeletionPolicy, error) {
	switch p := helpdesk.DeletionPolicy(f.deletionPolicy); p {
	case helpdesk.DeletionPolicyRetain, helpdesk.DeletionPolicyDelete:
		return p, nil
	}
	return "", fmt.Errorf("--deletion-policy must be retain or delete, not %q", f.deletionPolicy)
}

func managerMain(args []string) int {
	var f managerFlags
	fs := flag.NewFlagSet("scim-operator", flag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := zap.New(zap.UseFlagOptions(&f.zap))
	ctrl.SetLogger(log)
	if err := runManager(ctrl.SetupSignalHandler(), log, &f); err != nil {
		log.Error(err, "scim-operator stopped")
		return 1
	}
	return 0
}

func runManager(ctx context.Context, log logr.Logger, f *managerFlags) error {
	if f.database == "" {
		return errors.New("the helpdesk database URL is empty: HELPDESK_DATABASE_URL is set but empty (check the key in the database Secret), or --helpdesk-database was given empty")
	}
	policy, err := f.policy()
	if err != nil {
		return err
	}
	component, err := operator.ParseComponent(f.component)
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding a kubeconfig (in cluster, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	store, err := helpdesk.Open(openCtx, f.database)
	cancel()
	if err != nil {
		return fmt.Errorf("opening the helpdesk database %s: %w", helpdesk.Redact(f.database), err)
	}
	defer store.Close()
	log.Info("helpdesk database ready", "url", helpdesk.Redact(f.database), "dialect", store.Dialect())
	op, err := operator.New(cfg, operator.Options{
		Scheme: kscheme.New(), Log: log, Component: component, TokenNamespaces: f.tokenNamespaces, EntraKeysURLPrefixes: f.entraKeysURLPrefixes,
		TenantDatabasePrefixes: f.tenantDatabasePrefixes,
		AllowEntraIssuedTokens: f.allowEntraIssued,
		MetricsAddr:            f.metricsAddr, ProbeAddr: f.probeAddr, PprofAddr: f.pprofAddr,
		LeaderElection: f.leaderElect, LeaderElectionNamespace: f.leaderElectionNamespace,
		SCIMAddr: f.scimAddr, SCIMCertFile: f.scimCert, SCIMKeyFile: f.scimKey,
		SCIM: server.Config{MaxBodyBytes: f.maxBody, RateLimit: f.rateLimit, RateBurst: f.rateBurst,
			TrustedProxies: f.trustedProxies, ScanCeiling: f.scanCeiling, ScansPerTenant: f.scansPerTenant, ScansTotal: f.scansTotal},
		PublicURL: f.publicURL,
		Helpdesk:  store, DeletionPolicy: policy, ResyncPeriod: f.resync,
	})
	if err != nil {
		return err
	}
	log.Info("starting", "scim", f.scimAddr, "publicURL", f.publicURL, "leaderElection", f.leaderElect, "trustedProxies", f.trustedProxies)
	return op.Manager.Start(ctx)
}

func devMain(args []string) int {
	if len(args) > 0 && args[0] == devstack.ChildArg {
		// The control plane's launcher; it returns only when it failed.
		fmt.Fprintln(os.Stderr, "scim-operator dev:", devstack.RunChild(args[1:]))
		return 1
	}
	fs := flag.NewFlagSet("scim-operator dev", flag.ContinueOnError)
	var o devstack.Options
	fs.StringVar(&o.StateDir, "state-dir", ".dev", "Folder for the control plane's data, the SQLite database, kubeconfig, endpoint and token.")
	fs.StringVar(&o.SCIMAddr, "scim-bind-address", "127.0.0.1:18443", "Address the SCIM server listens on.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0", "Address serving the operator's Go profiles at /debug/pprof; \"0\" disables it.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", "0", "Address of the operator's Prometheus metrics endpoint, such as 127.0.0.1:18080; \"0\" disables it.")
	fs.Func("tenant-database-prefixes", "Comma-separated URL `prefixes` where a ProvisioningConfig's spec.database may point besides STATE/tenants/, such as postgres://root@127.0.0.1:5432/ (make bench's PostgreSQL tenant).",
		appendList(&o.TenantDatabasePrefixes))
	fs.DurationVar(&o.ResyncPeriod, "resync-period", time.Minute, "How often synced rows are checked and repaired (the operator's default is "+settings.Default().ResyncPeriod.String()+"; a minute shows a repair soon).")
	fs.StringVar(&o.AssetsDir, "control-plane-dir", os.Getenv("KUBEBUILDER_ASSETS"), "Folder with kube-apiserver and etcd (make envtest-bins builds them; `make run` passes it).")
	zo := zap.Options{Development: true, Level: zapcore.InfoLevel}
	zo.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := zap.New(zap.UseFlagOptions(&zo))
	ctrl.SetLogger(log)
	// Ctrl-C stops this process alone, cleanly: make and go run then exit 0.
	restoreTerminal := devstack.TakeTerminal()
	defer restoreTerminal()
	if err := devstack.Run(devSignalContext(), log, os.Stdout, o); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "scim-operator dev:", err)
		return 1
	}
	return 0
}

// devSignalContext is cancelled by the first SIGINT, SIGTERM or SIGHUP (the
// terminal closed). Unlike controller-runtime's handler, a second signal
// does not exit at once: the control plane is stopped in order (it would
// die with this process anyway, by its parent-death signal).
func devSignalContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// With stdout gone (a closed terminal, a dead pipe) the shutdown
	// messages must not kill the process before it stops its children.
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		<-sigs
		cancel()
		for range sigs {
			fmt.Fprintln(os.Stderr, "scim-operator dev: still stopping the control plane; it takes a few seconds")
		}
	}()
	return ctx
}
