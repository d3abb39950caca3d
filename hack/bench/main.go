// Command bench measures scim-operator on this machine against the limit
// of its own control plane: raw API server creates and informer-cached
// updates (the baselines), SCIM
// operations at several concurrencies, an Entra-like initial provisioning
// cycle with the lag to the helpdesk database, the operator's memory, and
// worst-case queries against that tenant while another one provisions.
// It starts `scim-operator dev` as a child process and prints a table; the
// results go to JSON and to Markdown (docs/benchmarks.md).
//
//	go run ./hack/bench [--users 10000] [--concurrency 8] [--json FILE] [--markdown FILE]
//
// It is a program rather than a Go benchmark because it measures a whole
// stack over minutes, and it never fails on a number: it reports it.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scim-operator/scim-operator/internal/settings"
)

type options struct {
	Users          int           `json:"users"`
	Concurrency    int           `json:"concurrency"`
	Levels         []int         `json:"levels"`
	Ops            int           `json:"opsPerLevel"`
	BaselineN      int           `json:"baselineObjectsPerLevel"`
	GroupPatches   int           `json:"groupPatchesPerLevel"`
	Groups         int           `json:"cycleGroups"`
	FilterGets     int           `json:"filterGets"`
	Quiet          time.Duration `json:"quiet"`
	SyncTimeout    time.Duration `json:"syncTimeout"`
	VictimUsers    int           `json:"hostileVictimUsersPerPhase"`
	HostileAtOnce  int           `json:"hostileConcurrency"`
	Postgres       string        `json:"postgres,omitempty"`
	PostgresUsers  int           `json:"postgresUsers,omitempty"`
	ResyncPeriod   time.Duration `json:"resyncPeriod,omitempty"`
	JSONPath       string        `json:"-"`
	MarkdownPath   string        `json:"-"`
	KeepState      bool          `json:"-"`
	HeapProfile    string        `json:"-"`
	ControlPlane   string        `json:"-"`
	Args           []string      `json:"args"`
	levelsFlag     string
	skipMicrobench bool
	skipHostile    bool
}

var started = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	var o options
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.IntVar(&o.Users, "users", 10000, "Users in the Entra-like initial cycle (100000 works; it takes several times longer than the default).")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "Concurrent SCIM requests in the initial cycle; also the headline level of the microbenchmarks.")
	fs.StringVar(&o.levelsFlag, "levels", "1,8,32", "Concurrency levels of the baseline and SCIM microbenchmarks.")
	fs.IntVar(&o.Ops, "ops", 600, "Requests per SCIM operation and level (POST, PATCH, PUT and filter GET); at least 100.")
	fs.IntVar(&o.BaselineN, "baseline-objects", 1500, "ProvisionedUsers created straight through the API server per level (then updated once each from an informer cache: the update baseline).")
	fs.IntVar(&o.GroupPatches, "group-patches", 60, "Group member PATCHes (100 members each) per level.")
	fs.IntVar(&o.Groups, "groups", 200, "Groups in the initial cycle (one of them holds every user).")
	fs.IntVar(&o.FilterGets, "filter-gets", 1000, "Filter GETs timed at the end, with every cycle user present.")
	fs.DurationVar(&o.Quiet, "quiet", 10*time.Second, "Idle time before each memory reading.")
	fs.DurationVar(&o.SyncTimeout, "sync-timeout", 10*time.Minute, "How long to wait for the helpdesk database to catch up after the cycle.")
	fs.StringVar(&o.JSONPath, "json", "", "Write results as JSON here (default: bench-results.json in the temporary folder).")
	fs.StringVar(&o.MarkdownPath, "markdown", "docs/benchmarks.md", "Write the Markdown report here; empty to skip.")
	fs.BoolVar(&o.KeepState, "keep-state", false, "Keep the stack's state folder (etcd data, SQLite) after the run.")
	fs.StringVar(&o.HeapProfile, "heap-profile", "", "Write the operator's heap profile after the cycle to this file (default: operator-heap.pprof in the temporary folder; read it with go tool pprof -top FILE).")
	fs.StringVar(&o.ControlPlane, "control-plane-dir", "", "Folder with kube-apiserver and etcd (default: what hack/controlplane/build.sh prints).")
	fs.BoolVar(&o.skipMicrobench, "skip-microbench", false, "Skip sections 1 and 2 (baseline and SCIM operations).")
	fs.IntVar(&o.VictimUsers, "hostile-victim-users", 1000, "Section 5: users another tenant provisions in each kind of phase (alone, then beside the hostile queries).")
	fs.IntVar(&o.HostileAtOnce, "hostile-concurrency", 8, "Section 5: worst-case queries running at once against the cycle's tenant.")
	fs.BoolVar(&o.skipHostile, "skip-hostile", false, "Skip section 5 (hostile queries beside another tenant's provisioning).")
	fs.StringVar(&o.Postgres, "postgres", "", "Run the cycle again in a tenant whose helpdesk database is this PostgreSQL database, such as postgres://root@127.0.0.1:5432/scim_bench (dropped and created afresh); empty skips that section.")
	fs.IntVar(&o.PostgresUsers, "postgres-users", 0, "Users in the PostgreSQL cycle (default: --users).")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", settings.Default().ResyncPeriod,
		"How often the operator checks synced rows for drift: the production default, so that the background load is a deployment's, not the dev stack's one minute.")
	fromJSON := fs.String("from-json", "", "Measure nothing: render --markdown again from a results file of an earlier run.")
	_ = fs.Parse(os.Args[1:])
	o.Args = os.Args[1:]
	for _, f := range strings.Split(o.levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: bad --levels %q\n", o.levelsFlag)
			os.Exit(2)
		}
		o.Levels = append(o.Levels, n)
	}
	if o.Ops < 100 || o.Users < 100 || o.Concurrency < 1 || o.Groups < 2 || o.VictimUsers < 2*hostileRounds || o.HostileAtOnce < 1 {
		fmt.Fprintln(os.Stderr, "bench: --ops and --users must be at least 100, --groups at least 2, --hostile-victim-users at least 4, --hostile-concurrency at least 1")
		os.Exit(2)
	}
	if *fromJSON != "" {
		if err := rerender(*fromJSON, o.MarkdownPath); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) (retErr error) {
	tmp, err := os.MkdirTemp("", "scim-bench-")
	if err != nil {
		return err
	}
	if o.JSONPath == "" {
		o.JSONPath = filepath.Join(tmp, "bench-results.json")
	}
	if o.HeapProfile == "" {
		// The report names what the heap holds (issue 20), so it is always taken.
		o.HeapProfile = filepath.Join(tmp, "operator-heap.pprof")
	}
	res := &Results{Options: o, Machine: describeMachine(), StartedAt: time.Now().UTC()}
	progress("machine: %s, %d cores, %.1f GiB, load %s", res.Machine.CPU, res.Machine.Cores,
		float64(res.Machine.MemoryBytes)/(1<<30), res.Machine.LoadAtStart)

	bin := filepath.Join(tmp, "scim-operator")
	defer os.Remove(bin) // 70+ MB; the JSON and the log stay
	if err := buildOperator(ctx, bin); err != nil {
		return fmt.Errorf("building the operator: %w", err)
	}
	assets := o.ControlPlane
	if assets == "" {
		if assets, err = controlPlaneDir(ctx); err != nil {
			return err
		}
	}
	// PostgreSQL first: a server that is not there fails the run now, not
	// after the other sections.
	extra := []string{"--resync-period", o.ResyncPeriod.String()}
	var pg *sql.DB
	if o.Postgres != "" {
		prefix, err := postgresPrefix(o.Postgres)
		if err != nil {
			return err
		}
		if pg, err = freshPostgres(ctx, o.Postgres); err != nil {
			return err
		}
		defer pg.Close()
		extra = append(extra, "--tenant-database-prefixes", prefix)
	}
	progress("helpdesk database write rates (the store alone, before the stack starts)")
	res.DBRates = dbRates(ctx, o, tmp)
	st, err := startStack(ctx, bin, assets, filepath.Join(tmp, "state"), extra...)
	if err != nil {
		return err
	}
	defer func() {
		st.stop()
		if !o.KeepState {
			_ = os.RemoveAll(st.stateDir)
		} else {
			progress("state kept in %s", st.stateDir)
		}
	}()
	b, err := newBench(ctx, o, st)
	if err != nil {
		return err
	}
	b.pg = pg
	defer b.close()
	progress("stack ready: SCIM %s, operator metrics %s", st.endpoint, st.metricsURL)

	if !o.skipMicrobench {
		if err := b.microbench(ctx, res); err != nil {
			return err
		}
	}
	if err := b.cycle(ctx, res); err != nil {
		return err
	}
	checkpoint(o, res)
	if !o.skipHostile {
		if err := b.hostile(ctx, res); err != nil {
			return err
		}
		checkpoint(o, res)
	}
	if err := b.postgresCycle(ctx, res); err != nil {
		return err
	}
	res.FinishedAt = time.Now().UTC()
	res.Machine.LoadAtEnd = loadAvg()
	res.evaluate()
	printTable(os.Stdout, res)
	if err := writeJSON(o.JSONPath, res); err != nil {
		return err
	}
	fmt.Printf("\nresults (JSON): %s\n", o.JSONPath)
	if o.MarkdownPath != "" {
		if err := writeMarkdown(o.MarkdownPath, res); err != nil {
			return err
		}
		fmt.Printf("report (Markdown): %s\n", o.MarkdownPath)
	}
	fmt.Printf("operator log: %s\n", st.logPath)
	return nil
}

// checkpoint writes the results so far as JSON (--from-json renders
// them), so that a long run stopped later still leaves what it measured.
func checkpoint(o *options, res *Results) {
	snap := *res
	snap.Targets, snap.Causes = nil, nil
	snap.FinishedAt = time.Now().UTC()
	snap.Machine.LoadAtEnd = loadAvg()
	snap.evaluate()
	if err := writeJSON(o.JSONPath, &snap); err != nil {
		progress("checkpoint: %v", err)
		return
	}
	progress("checkpoint: results so far in %s", o.JSONPath)
}

// rerender writes the Markdown of an earlier run, with this program's
// current wording and target evaluation, from its JSON results.
func rerender(jsonPath, mdPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	if r.Options == nil {
		return fmt.Errorf("%s holds no options; is it a bench result?", jsonPath)
	}
	r.Targets, r.Causes = nil, nil
	r.evaluate()
	if err := writeMarkdown(mdPath, &r); err != nil {
		return err
	}
	fmt.Printf("report (Markdown): %s, from %s\n", mdPath, jsonPath)
	return nil
}
