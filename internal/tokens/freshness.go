package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/settings"
)

// ErrStale means this replica cannot confirm that its view of the ScimTokens is
// current, so it accepts no token (a deleted or deactivated one could be
// among them). The HTTP layer answers 503 with Retry-After, not 401: the
// token may well be valid, and the identity provider should retry.
var ErrStale = errors.New("this replica's view of the tokens is not confirmed current")

// Freshness bounds how stale a replica's token cache may be while it
// accepts tokens. Revocation reaches a replica through its watch, and a
// watch can stall or break without the cache saying so: the replica would
// keep answering from what it last saw. Every Interval, Freshness lists the
// ScimTokens' metadata live and compares each resourceVersion with the
// cache's: a change the cache has not caught up with within Bound, or no
// successful comparison within Bound (the API server unreachable), makes
// the replica refuse tokens (and go unready) until it has caught up.
type Freshness struct {
	Cache client.Reader // the informer cache the Authenticator reads
	Live  client.Reader // the API server
	// Namespaces limits the comparison to the cache's namespaces; empty:
	// all.
	Namespaces []string
	Interval   time.Duration // default 5 s (settings.Default)
	Bound      time.Duration // default 30 s (settings.Default)
	Clock      clock.PassiveClock
	Log        logr.Logger

	mu        sync.Mutex
	confirmed time.Time            // the last comparison that succeeded
	behind    map[string]lagRecord // tokens the cache was behind on
}

// lagRecord is a live resourceVersion the cache had not reached ("": the
// token is deleted live but still cached), and since when.
type lagRecord struct {
	rv    string
	since time.Time
}

func (f *Freshness) defaults() {
	if f.Interval <= 0 {
		f.Interval = settings.Default().TokenFreshnessInterval
	}
	if f.Bound <= 0 {
		f.Bound = settings.Default().TokenFreshnessBound
	}
	if f.Clock == nil {
		f.Clock = clock.RealClock{}
	}
}

// NeedLeaderElection is false: every replica checks its own cache.
func (f *Freshness) NeedLeaderElection() bool { return false }

// Start compares until ctx ends. The first comparison runs at once, so a
// replica is confirmed as soon as its cache has synced.
func (f *Freshness) Start(ctx context.Context) error {
	f.defaults()
	f.mu.Lock()
	if f.confirmed.IsZero() {
		f.confirmed = f.Clock.Now() // the bound starts with the process
	}
	f.mu.Unlock()
	t := time.NewTicker(f.Interval)
	defer t.Stop()
	wasStale := false
	for {
		if err := f.Check(ctx); err != nil && ctx.Err() == nil {
			f.Log.V(1).Info("could not compare the token cache with the API server", "error", err.Error())
		}
		stale := f.Stale() != nil
		switch {
		case stale && !wasStale:
			f.Log.Info("refusing tokens: this replica cannot confirm its token cache is current", "bound", f.Bound.String())
		case !stale && wasStale:
			f.Log.Info("the token cache is current again; accepting tokens")
		}
		wasStale = stale
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check makes one comparison. The cache is listed before the API server,
// so that what the cache lacks is what changed since, never the reverse.
func (f *Freshness) Check(ctx context.Context) error {
	f.defaults()
	now := f.Clock.Now()
	var cached scimv1.ScimTokenList
	if err := f.Cache.List(ctx, &cached, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing ScimTokens in the cache: %w", err)
	}
	have := make(map[string]string, len(cached.Items))
	for i := range cached.Items {
		have[client.ObjectKeyFromObject(&cached.Items[i]).String()] = cached.Items[i].ResourceVersion
	}
	live, err := f.liveVersions(ctx)
	if err != nil {
		return err
	}
	behindNow := behind(have, live)

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.behind == nil {
		f.behind = map[string]lagRecord{}
	}
	// A record ends when its token is not behind any more, or when the
	// cache has reached the version that was missing (a token stamped at
	// every comparison is judged by whether the cache follows it, not by
	// whether a comparison happens to fall between two stamps).
	for key, rec := range f.behind {
		_, still := behindNow[key]
		got, cachedNow := have[key]
		if !still || rec.rv != "" && cachedNow && reached(got, rec.rv) || rec.rv == "" && !cachedNow {
			delete(f.behind, key)
		}
	}
	for key, rv := range behindNow {
		if _, ok := f.behind[key]; !ok {
			f.behind[key] = lagRecord{rv: rv, since: now}
		}
	}
	f.confirmed = now
	return nil
}

// behind returns the tokens the cache is behind on: live at a version the
// cache has not reached (or not at all), and cached but deleted live
// (version "").
func behind(have, live map[string]string) map[string]string {
	out := map[string]string{}
	for key, rv := range live {
		if got, ok := have[key]; !ok || !reached(got, rv) {
			out[key] = rv
		}
	}
	for key := range have {
		if _, ok := live[key]; !ok {
			out[key] = ""
		}
	}
	return out
}

// reached reports whether the cache's resourceVersion have is at least the
// live want, compared as apimachinery compares them. A live version that
// cannot be compared cannot be waited for and counts as reached; a cached
// one that cannot be compared counts as behind.
func reached(have, want string) bool {
	if have == want {
		return true
	}
	if _, err := resourceversion.CompareResourceVersion(want, want); err != nil {
		return true
	}
	c, err := resourceversion.CompareResourceVersion(have, want)
	return err == nil && c >= 0
}

// liveVersions lists the ScimTokens' resourceVersions from the API server
// (metadata only).
func (f *Freshness) liveVersions(ctx context.Context) (map[string]string, error) {
	namespaces := f.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	out := map[string]string{}
	for _, ns := range namespaces {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(scimv1.GroupVersion.WithKind("ScimTokenList"))
		if err := f.Live.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing ScimTokens from the API server: %w", err)
		}
		for i := range list.Items {
			out[client.ObjectKeyFromObject(&list.Items[i]).String()] = list.Items[i].ResourceVersion
		}
	}
	return out, nil
}

// Stale returns ErrStale (wrapped with the reason) when no token may be
// accepted: no comparison with the API server succeeded within the bound.
// It is what readiness reports.
func (f *Freshness) Stale() error {
	f.defaults()
	now := f.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.staleLocked(now)
}

func (f *Freshness) staleLocked(now time.Time) error {
	if f.confirmed.IsZero() {
		return nil // not started: the cache has not synced either, and readiness waits for it
	}
	if d := now.Sub(f.confirmed); d > f.Bound {
		return fmt.Errorf("%w: no comparison with the API server succeeded for %s", ErrStale, d.Round(time.Second))
	}
	return nil
}

// StaleIn is Stale, and also ErrStale when a ScimToken change of namespace
// has not reached the cache within the bound: the tokens of that tenant
// are refused, every other tenant's are not.
func (f *Freshness) StaleIn(namespace string) error {
	f.defaults()
	now := f.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.staleLocked(now); err != nil {
		return err
	}
	prefix := namespace + "/"
	for key, rec := range f.behind {
		if strings.HasPrefix(key, prefix) {
			if d := now.Sub(rec.since); d > f.Bound {
				return fmt.Errorf("%w: a ScimToken change in %s has not reached this replica's cache for %s", ErrStale, namespace, d.Round(time.Second))
			}
		}
	}
	return nil
}

// FreshAuthenticator refuses every token with ErrStale while Freshness says
// so, and otherwise asks the Authenticator.
type FreshAuthenticator struct {
	*Authenticator
	Freshness *Freshness
}

// Authenticate is Authenticator.Authenticate behind the freshness check of
// the token's tenant (a revoked token is still in a stale cache, so it is
// found, and then refused here).
func (a FreshAuthenticator) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	if err := a.Freshness.Stale(); err != nil {
		return Principal{}, err
	}
	p, err := a.Authenticator.Authenticate(ctx, authorization)
	if err != nil {
		return p, err
	}
	if err := a.Freshness.StaleIn(p.Namespace); err != nil {
		return Principal{}, err
	}
	return p, nil
}
