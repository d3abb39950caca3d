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

// TestFreshness walks one replica through the cases the freshness check
// decides, one comparison per second against a bound of 5 s. Records are
// per token; StaleIn refuses only the namespace whose change is missing.
func TestFreshness(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	cache, live := &versions{rv: map[string]int{"a": 10}}, &versions{rv: map[string]int{"a": 10}}
	f := &Freshness{Cache: cache, Live: live, Bound: 5 * time.Second, Clock: clk}
	ctx := context.Background()
	step := func(n int) {
		for range n {
			clk.Step(time.Second)
			_ = f.Check(ctx)
		}
	}
	fresh := func(what string) {
		t.Helper()
		if err := f.StaleIn("t"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	stale := func(what string) {
		t.Helper()
		if err := f.StaleIn("t"); !errors.Is(err, ErrStale) {
			t.Fatalf("%s: got %v, want ErrStale", what, err)
		}
	}
	fresh("not started")
	step(1)
	fresh("in step")

	// A token whose status is stamped every second, the cache always one
	// step behind at the moment of comparison: following, not stale.
	for range 10 {
		live.rv["a"]++
		step(1)
		cache.rv["a"] = live.rv["a"]
	}
	fresh("a cache that follows a busy token")

	// A change the cache never receives (a stalled watch).
	live.rv["a"] = 100
	step(6) // first seen at the first of these comparisons: 5 s behind now
	fresh("within the bound")
	step(1)
	stale("a change missing past the bound")
	if err := f.StaleIn("other-tenant"); err != nil {
		t.Fatalf("another tenant is refused for this one's lag: %v", err)
	}
	if err := f.Stale(); err != nil {
		t.Fatalf("the replica is unready for one tenant's lag: %v", err)
	}
	cache.rv["a"] = 100
	step(1)
	fresh("caught up")

	// Deleted on the API server, still in the cache.
	delete(live.rv, "a")
	step(7)
	stale("a deletion missing past the bound")
	delete(cache.rv, "a")
	step(1)
	fresh("deletion caught up")

	// Races between the two lists (review finding): a record made when a
	// token was created, or changed and then deleted, between them ends as
	// soon as cache and API server agree, whatever the record said.
	live.rv["b"] = 5 // created after the cache was listed
	step(1)
	cache.rv["b"] = 5
	live.rv["c"], cache.rv["c"] = 7, 6 // changed, not cached yet
	step(1)
	delete(live.rv, "c") // then deleted on both sides
	delete(cache.rv, "c")
	cache.rv["d"] = 3 // seen by the cache before the API server list (old order)
	step(1)
	live.rv["d"] = 3
	step(10)
	fresh("records of tokens that caught up through a create or a delete")

	// The API server unreachable: nothing can be confirmed.
	live.err = errors.New("connection refused")
	step(5)
	fresh("within the bound of the last comparison")
	step(1)
	stale("no comparison past the bound")
	if err := f.Stale(); !errors.Is(err, ErrStale) {
		t.Fatalf("readiness with no comparison past the bound: %v", err)
	}
	live.err = nil
	step(1)
	fresh("reachable again")
	if FailureReason(fmt.Errorf("%w: behind", ErrStale)) != ReasonStale {
		t.Error("a stale refusal is not counted as stale")
	}
}
