package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// versions is a reader that lists ScimTokens named by key with the given
// resourceVersions, as the cache (full objects) or the API server
// (metadata) would; err fails the list.
type versions struct {
	client.Reader
	rv  map[string]int
	err error
}

func (v *versions) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	if v.err != nil {
		return v.err
	}
	switch l := list.(type) {
	case *scimv1.ScimTokenList:
		for name, rv := range v.rv {
			l.Items = append(l.Items, scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name, ResourceVersion: strconv.Itoa(rv)}})
		}
	case *metav1.PartialObjectMetadataList:
		for name, rv := range v.rv {
			l.Items = append(l.Items, metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name, ResourceVersion: strconv.Itoa(rv)}})
		}
	}
	return nil
}

// freshnessFixture is one replica's Freshness over a cache and an API server
// whose resourceVersions a test moves by hand, with a fake clock.
type freshnessFixture struct {
	clk         *clocktesting.FakeClock
	cache, live *versions
	f           *Freshness
}

func newFreshnessFixture() *freshnessFixture {
	x := &freshnessFixture{clk: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)),
		cache: &versions{rv: map[string]int{"a": 10}}, live: &versions{rv: map[string]int{"a": 10}}}
	x.f = &Freshness{Cache: x.cache, Live: x.live, Bound: 5 * time.Second, Clock: x.clk}
	return x
}

// step makes n comparisons, one a second.
func (x *freshnessFixture) step(n int) {
	for range n {
		x.clk.Step(time.Second)
		_ = x.f.Check(context.Background())
	}
}

func (x *freshnessFixture) fresh(t *testing.T, what string) {
	t.Helper()
	if err := x.f.StaleIn("t"); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (x *freshnessFixture) stale(t *testing.T, what string) {
	t.Helper()
	if err := x.f.StaleIn("t"); !errors.Is(err, ErrStale) {
		t.Fatalf("%s: got %v, want ErrStale", what, err)
	}
}

// TestFreshness walks one replica through the cases the freshness check
// decides, one comparison per second against a bound of 5 s. Records are
// per token; StaleIn refuses only the namespace whose change is missing.
// The phases run in order on one fixture: each starts where the last ended.
func TestFreshness(t *testing.T) {
	x := newFreshnessFixture()
	x.fresh(t, "not started")
	x.step(1)
	x.fresh(t, "in step")

	freshnessBusyToken(t, x)
	freshnessStalledWatch(t, x)
	freshnessDeletion(t, x)
	freshnessListRaces(t, x)
	freshnessUnreachable(t, x)
	if FailureReason(fmt.Errorf("%w: behind", ErrStale)) != ReasonStale {
		t.Error("a stale refusal is not counted as stale")
	}
}

// A token whose status is stamped every second, the cache always one step
// behind at the moment of comparison: following, not stale.
func freshnessBusyToken(t *testing.T, x *freshnessFixture) {
	for range 10 {
		x.live.rv["a"]++
		x.step(1)
		x.cache.rv["a"] = x.live.rv["a"]
	}
	x.fresh(t, "a cache that follows a busy token")
}

// A change the cache never receives (a stalled watch).
func freshnessStalledWatch(t *testing.T, x *freshnessFixture) {
	x.live.rv["a"] = 100
	x.step(6) // first seen at the first of these comparisons: 5 s behind now
	x.fresh(t, "within the bound")
	x.step(1)
	x.stale(t, "a change missing past the bound")
	if err := x.f.StaleIn("other-tenant"); err != nil {
		t.Fatalf("another tenant is refused for this one's lag: %v", err)
	}
	if err := x.f.Stale(); err != nil {
		t.Fatalf("the replica is unready for one tenant's lag: %v", err)
	}
	x.cache.rv["a"] = 100
	x.step(1)
	x.fresh(t, "caught up")
}

// Deleted on the API server, still in the cache.
func freshnessDeletion(t *testing.T, x *freshnessFixture) {
	delete(x.live.rv, "a")
	x.step(7)
	x.stale(t, "a deletion missing past the bound")
	delete(x.cache.rv, "a")
	x.step(1)
	x.fresh(t, "deletion caught up")
}

// Races between the two lists (review finding): a record made when a token
// was created, or changed and then deleted, between them ends as soon as
// cache and API server agree, whatever the record said.
func freshnessListRaces(t *testing.T, x *freshnessFixture) {
	x.live.rv["b"] = 5 // created after the cache was listed
	x.step(1)
	x.cache.rv["b"] = 5
	x.live.rv["c"], x.cache.rv["c"] = 7, 6 // changed, not cached yet
	x.step(1)
	delete(x.live.rv, "c") // then deleted on both sides
	delete(x.cache.rv, "c")
	x.cache.rv["d"] = 3 // seen by the cache before the API server list (old order)
	x.step(1)
	x.live.rv["d"] = 3
	x.step(10)
	x.fresh(t, "records of tokens that caught up through a create or a delete")
}

// The API server unreachable: nothing can be confirmed.
func freshnessUnreachable(t *testing.T, x *freshnessFixture) {
	x.live.err = errors.New("connection refused")
	x.step(5)
	x.fresh(t, "within the bound of the last comparison")
	x.step(1)
	x.stale(t, "no comparison past the bound")
	if err := x.f.Stale(); !errors.Is(err, ErrStale) {
		t.Fatalf("readiness with no comparison past the bound: %v", err)
	}
	x.live.err = nil
	x.step(1)
	x.fresh(t, "reachable again")
}
