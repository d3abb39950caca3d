// Package repository stores SCIM resources as custom resources: users as
// ProvisionedUsers, groups as ProvisionedGroups with their members in
// GroupMembership shards, and unique names as NameClaims. The SCIM HTTP
// layer calls it; it knows Kubernetes, the HTTP layer knows SCIM.
//
// Names say where a read goes: Live… reads the API server; Cached… and
// every list, scan and count read the informer cache through field indexes
// (see indexes.go). CachedUser and CachedGroup fall back to a live read when
// the cache has not seen an object yet, so that a GET right after a write on
// another replica still finds it. Writes send the cached object's
// resourceVersion; a conflict costs one live read and a retry.
package repository

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// The SCIM server's permissions (ClusterRole scim-role, generated from
// these markers): the resources it stores, and the activity events. No
// Secrets: the process that parses requests from the internet can neither
// read nor mint credentials.
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers;provisionedgroups,verbs=get;list;watch;create;update;patch;delete,roleName=scim-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=groupmemberships,verbs=get;list;watch;create;update;patch;delete,roleName=scim-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=nameclaims,verbs=get;list;watch;create;update;delete,roleName=scim-role
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch,roleName=scim-role

// Repository reads and writes SCIM resources in the API server.
type Repository struct {
	// Cache reads from the manager's informer cache.
	Cache client.Reader
	// Live reads straight from the API server (mgr.GetAPIReader()).
	Live client.Reader
	// Client writes to the API server.
	Client client.Client
	// IDKey keys first ids (FirstUserID): the installation key's first-id
	// subkey, the same on every replica (operator.New always sets it).
	// Without it every user is created under a random id and a NameClaim:
	// only for tests, since next to replicas that have a key it would
	// neither see their first-id holders nor retire their first ids.
	IDKey []byte
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// Users finds users by userName, externalId and email (install its
	// Handler on the ProvisionedUser informer).
	Users *UserIndex
	// Signals, when set, wakes writes waiting for their own cache as soon
	// as the informer has their object (install Signals.Handler()).
	Signals *CacheSignals
	// Activity, when set, counts SCIM writes per token for the summary
	// events on ScimTokens. Notes carry counts only, never personal data.
	Activity *Activity
}

// AnnotationLastModified records when a SCIM write last changed an object,
// for meta.lastModified (Kubernetes keeps no such time once managedFields
// are stripped from the cache).
const AnnotationLastModified = "scim.helpdesk.dev/last-modified"

// Version is a resource's SCIM meta.version (RFC 7644 §3.14). It follows
// the SCIM writes only: the last-modified stamp every SCIM write sets,
// not the resourceVersion, which also moves when the controller writes
// status or a finalizer and would make ETags change behind a client's back.
// Objects never written through SCIM (kubectl) use their resourceVersion.
func Version(om metav1.Object) string {
	if v, ok := om.GetAnnotations()[AnnotationLastModified]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return strconv.FormatInt(t.UnixNano(), 36)
		}
	}
	return "rv" + om.GetResourceVersion()
}

func (r *Repository) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Repository) touch(obj interface {
	GetAnnotations() map[string]string
	SetAnnotations(map[string]string)
}) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationLastModified] = r.now().UTC().Format(time.RFC3339Nano)
	obj.SetAnnotations(a)
}

// maxConflictRetries bounds how often a claim is retried after another
// writer changed it in between.
const maxConflictRetries = 8

// conflictBudget bounds how long an update keeps retrying after optimistic
// concurrency conflicts. A count alone is not enough: n writers racing on
// one object (member PATCHes of one group all append to its newest shard)
// let one win per round, so the last needs n attempts.
const conflictBudget = 5 * time.Second

// retrier paces retries after conflicts: jittered exponential back-off
// (so that racing writers spread out) within conflictBudget.
type retrier struct {
	deadline time.Time
	attempt  int
}

func newRetrier() *retrier { return &retrier{deadline: time.Now().Add(conflictBudget)} }

// wait sleeps before the next attempt; false means give up.
func (b *retrier) wait(ctx context.Context) bool {
	b.attempt++
	if ctx.Err() != nil || time.Now().After(b.deadline) {
		return false
	}
	ceiling := min(time.Millisecond<<min(b.attempt, 7), 100*time.Millisecond)
	d := time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond //nolint:gosec // jitter, not a secret
	return sleepCtx(ctx, d)
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ErrUnavailable marks failures of the API server itself. The HTTP layer
// answers them with 503 and Retry-After, so that the identity provider
// retries instead of counting a permanent failure.
var ErrUnavailable = errors.New("the Kubernetes API server is unavailable")

// apiError turns an API server error into what a SCIM client should see.
// Anything that is not the client's fault and not a plain "not found"
// becomes ErrUnavailable (503): the write may be retried safely.
// isObjectName reports whether id can name an object at all. Every id this
// server hands out does (a UUID); any other value names no resource and is
// answered 404 here, before it reaches the API server, whose refusal of a
// malformed name would otherwise read as an outage (I4 in docs/invariants.md).
func isObjectName(id string) bool { return len(validation.IsDNS1123Subdomain(id)) == 0 }

func apiError(err error, what string) error {
	if err == nil {
		return nil
	}
	if e, ok := scimerr.As(err); ok {
		return e
	}
	switch {
	case apierrors.IsNotFound(err):
		return scimerr.NotFound("%s not found", what)
	case apierrors.IsInvalid(err):
		// The CRD's validation refused the object: the client sent a value
		// our schema allowed but the resource does not (too long, not an
		// email address, ...). Its message names the field.
		return scimerr.InvalidValue("%s: %s", what, validationMessage(err))
	case apierrors.IsRequestEntityTooLargeError(err):
		return scimerr.New(413, "", "%s is too large", what)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) ||
		errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

func validationMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && len(d.Causes) > 0 {
			msg := ""
			for i, c := range d.Causes {
				if i > 0 {
					msg += "; "
				}
				msg += c.Field + ": " + c.Message
			}
			return msg
		}
		return status.Status().Message
	}
	return err.Error()
}
