// Package model is a randomized, model-based test of the whole operator
// (issue 12). Workers send random sequences of Microsoft Entra-shaped SCIM
// requests, concurrently, to two replicas that share one helpdesk
// database; meanwhile the database becomes unreachable and reachable
// again, and the leader is replaced. A model records what every answer
// told the client; at the end the API server and the database are
// compared with it. The invariants checked are those of
// docs/invariants.md:
//
//   - I1: deactivations and deletions acknowledged to the client reach the
//     database as soon as it is reachable, whatever the other fields hold;
//   - I2: userName and group displayName are unique per tenant under
//     namekey.Key, across replicas (and a filter finds a user by any
//     spelling of its name);
//   - I3: the database converges to the custom resources;
//   - I4: no client mistake, and no database outage, gives a 5xx;
//   - I5: a 2xx means the whole write happened (a created group holds its
//     members) and If-Match guards the whole resource, members included.
//
// Besides, a 4xx must change nothing ("4xx" in reports) and every answer
// must be one the model can read ("unexpected").
//
// Environment:
//
//	SCIM_MODEL_SEED=N     the random seed (default: the time); every failure prints it
//	SCIM_MODEL_OPS=N      operations per database (default 150)
//	SCIM_MODEL_DBS=list   sqlite,postgres,mysql (default sqlite)
//	SCIM_MODEL_LOG=1      the operators' warnings on stderr
//	SCIM_MODEL_HISTORY_DIR  where a failed run writes its whole history (default $TMPDIR)
//
// A seed fixes what each worker chooses to do; the interleaving of the
// workers and the replicas, and so the exact answers, still vary a little
// from run to run.
package model

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	logf.SetLogger(logger()) // env.Client logs through it
	testenv.Main(m, &env)
}

const workers = 3

type config struct {
	seed uint64
	ops  int64
	dbs  []string
}

func readConfig(t *testing.T) config {
	t.Helper()
	cfg := config{seed: uint64(time.Now().UnixNano()), ops: 150, dbs: []string{"sqlite"}}
	if v := os.Getenv("SCIM_MODEL_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SCIM_MODEL_SEED=%q: %v", v, err)
		}
		cfg.seed = s
	}
	if v := os.Getenv("SCIM_MODEL_OPS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 10 {
			t.Fatalf("SCIM_MODEL_OPS=%q: want a number of operations, at least 10", v)
		}
		cfg.ops = n
	}
	if v := os.Getenv("SCIM_MODEL_DBS"); v != "" {
		cfg.dbs = nil
		for _, db := range strings.Split(v, ",") {
			switch db = strings.TrimSpace(db); db {
			case "sqlite", "postgres", "mysql":
				cfg.dbs = append(cfg.dbs, db)
			case "":
			default:
				t.Fatalf("SCIM_MODEL_DBS: unknown database %q (sqlite, postgres, mysql)", db)
			}
		}
	}
	return cfg
}

func TestModel(t *testing.T) {
	testenv.Require(t, env)
	cfg := readConfig(t)
	t.Logf("SCIM_MODEL_SEED=%d SCIM_MODEL_OPS=%d SCIM_MODEL_DBS=%s (rerun with SCIM_MODEL_SEED=%d)",
		cfg.seed, cfg.ops, strings.Join(cfg.dbs, ","), cfg.seed)
	for _, db := range cfg.dbs {
		t.Run(db, func(t *testing.T) { runModel(t, cfg, db) })
	}
}

func runModel(t *testing.T, cfg config, db string) {
	t.Logf("seed %d, %d operations, %d workers, database %s", cfg.seed, cfg.ops, workers, db)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rerun with SCIM_MODEL_SEED=%d SCIM_MODEL_OPS=%d SCIM_MODEL_DBS=%s", cfg.seed, cfg.ops, db)
		}
	})
	c := newCluster(t, db)
	leader := serveTwoReplicas(t, c)
	m := newModel(t, cfg.seed, db)
	m.note("replicas r0 and r1 serving, %s leads; database %s reachable", leader.name, db)

	done := startWorkers(m, c, cfg)
	// The faults, in this goroutine: the database goes down at 15% of the
	// operations, the leader is replaced at 35% (with the database still
	// down), and the database comes back at 55%, or once the new replica
	// serves.
	reached := func(share int64) bool {
		for m.ops.Load() < cfg.ops*share/100 {
			select {
			case <-done:
				return false
			case <-time.After(10 * time.Millisecond):
			}
		}
		return true
	}
	var downAt time.Time
	var outage time.Duration
	if reached(15) {
		c.down()
		c.dbDown.Store(true)
		downAt = time.Now()
		m.note("database %s unreachable", db)
	}
	if reached(35) {
		if err := c.changeLeader(m); err != nil {
			t.Errorf("replacing the leader: %v (rerun with SCIM_MODEL_SEED=%d)", err, cfg.seed)
		}
	}
	reached(55)
	if c.dbDown.Load() {
		c.up()
		c.dbDown.Store(false)
		outage = time.Since(downAt)
		m.note("database %s reachable again", db)
	}
	<-done
	m.note("all %d operations answered", cfg.ops)

	// The controllers retry with a backoff that grew during the outage;
	// give them two minutes plus twice the outage before judging.
	m.final(c, 2*time.Minute+2*outage)
	t.Log(m.summary())
	if t.Failed() {
		m.writeHistory()
	}
}

// serveTwoReplicas starts replicas r0 and r1, issues the token, has both
// serve, and returns the leader.
func serveTwoReplicas(t *testing.T, c *cluster) *replica {
	t.Helper()
	var rs []*replica
	for range 2 {
		r, err := c.startReplica()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	c.issueToken(t)
	for _, r := range rs {
		if err := c.serve(r); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := c.leader()
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

// startWorkers runs the workers until cfg.ops operations are drawn; the
// channel closes when all of them are answered.
func startWorkers(m *model, c *cluster, cfg config) <-chan struct{} {
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{id: i + 1, m: m, c: c, rng: rand.New(rand.NewPCG(cfg.seed, uint64(i+1)))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m.ops.Add(1) <= cfg.ops {
				w.step()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}
