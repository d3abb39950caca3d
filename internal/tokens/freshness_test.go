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
// decides, one comparison per second against a bound of 5 s.
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
	if err := f.Stale(); err != nil {
		t.Fatalf("not started: %v", err)
	}
	step(1)
	if err := f.Stale(); err != nil {
		t.Fatalf("in step: %v", err)
	}

	// A token whose status is stamped every second, the cache always one
	// step behind at the moment of comparison: following, not stale.
	for range 10 {
		live.rv["a"]++
		step(1)
		cache.rv["a"] = live.rv["a"]
	}
	if err := f.Stale(); err != nil {
		t.Fatalf("a cache that follows a busy token is not stale: %v", err)
	}

	// A change the cache never receives (a stalled watch).
	live.rv["a"] = 100
	step(6) // first seen at the first of these comparisons: 5 s behind now
	if err := f.Stale(); err != nil {
		t.Fatalf("within the bound: %v", err)
	}
	step(1)
	if err := f.Stale(); !errors.Is(err, ErrStale) {
		t.Fatalf("a change missing past the bound: got %v", err)
	}
	cache.rv["a"] = 100
	step(1)
	if err := f.Stale(); err != nil {
		t.Fatalf("caught up: %v", err)
	}

	// Deleted on the API server, still in the cache.
	delete(live.rv, "a")
	step(7)
	if err := f.Stale(); !errors.Is(err, ErrStale) {
		t.Fatalf("a deletion missing past the bound: got %v", err)
	}
	delete(cache.rv, "a")
	step(1)
	if err := f.Stale(); err != nil {
		t.Fatalf("deletion caught up: %v", err)
	}

	// The API server unreachable: nothing can be confirmed.
	live.err = errors.New("connection refused")
	step(5)
	if err := f.Stale(); err != nil {
		t.Fatalf("within the bound of the last comparison: %v", err)
	}
	step(1)
	if err := f.Stale(); !errors.Is(err, ErrStale) {
		t.Fatalf("no comparison past the bound: got %v", err)
	}
	live.err = nil
	step(1)
	if err := f.Stale(); err != nil {
		t.Fatalf("reachable again: %v", err)
	}
	if FailureReason(fmt.Errorf("%w: behind", ErrStale)) != ReasonStale {
		t.Error("a stale refusal is not counted as stale")
	}
}
