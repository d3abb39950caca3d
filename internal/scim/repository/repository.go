// Package repository stores SCIM resources as custom resources: users as
// ProvisionedUsers, groups as ProvisionedGroups with their members in
// GroupMembership shards, and unique names as NameClaims. The SCIM HTTP
// layer calls it; it knows Kubernetes, the HTTP layer knows SCIM.
//
// Repository is the facade. What it is made of lives in subpackages named
// after what they hold:
//
//   - uniqueness: NameClaims and first ids, the handshake between them,
//     and the collector of unused claims;
//   - membership: a group's members in shards;
//   - consistency: read-your-writes (waiting for this replica's cache) and
//     resourceVersion comparison;
//   - userindex: users by userName, externalId and email;
//   - convert: SCIM documents to specs and back;
//   - activity: the per-token summary events;
//   - apierror, retry: API server errors as SCIM errors, and the pacing of
//     retries after conflicts.
//
// Every create, update and delete goes through one write path, commit
// (write.go), which performs the ordered steps itself: claim, stamp,
// write, fence, wait for the cache, release, count.
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
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// The SCIM server's permissions (ClusterRole scim-role, generated from
// these markers): the resources it stores, and the activity events. No
// Secrets: the process that parses requests from the internet can neither
// read nor mint credentials.
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=provisionedusers;provisionedgroups,verbs=get;list;watch;create;update;patch;delete,roleName=scim-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=groupmemberships,verbs=get;list;watch;create;update;patch;delete,roleName=scim-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=nameclaims,verbs=get;list;watch;create;update;delete,roleName=scim-role
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch,roleName=scim-role

// Repository reads and writes SCIM resources in the API server. Build it
// with New; tests may fill the fields by hand.
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
	// Members finds the groups of a member (install its Handler on the
	// GroupMembership informer).
	Members *MemberIndex
	// Signals, when set, wakes writes waiting for their own cache as soon
	// as the informer has their object (install Signals.Handler()).
	Signals *CacheSignals
	// Activity, when set, counts SCIM writes per token for the summary
	// events on ScimTokens. Notes carry counts only, never personal data.
	Activity *Activity

	// memberTurns queues this replica's membership changes of one group.
	memberTurns turns
	// memberBatches gathers this replica's waiting membership changes of a
	// group into one write.
	memberBatches memberBatches
}

// InformerCache is the manager's informer cache: the repository reads it,
// and New adds its indexes and event handlers to it.
type InformerCache interface {
	client.Reader
	Informers
}

// Options are the collaborators of a Repository besides its cache.
type Options struct {
	Live     client.Reader // the API server (mgr.GetAPIReader())
	Client   client.Client // writes
	IDKey    []byte        // see Repository.IDKey
	Activity *Activity     // optional
}

// New returns a repository reading the informer cache c, with everything
// it needs from c wired in the one order that works: its field indexes,
// the NameClaim informer (read before every create of a user), the user
// index and the signals that wake waiting writes. Call it before the
// manager starts. The returned functions report when the event handlers
// have seen every object: until then UsersBy may miss users, so a replica
// must not answer SCIM before they do.
func New(ctx context.Context, c InformerCache, o Options) (*Repository, []toolscache.InformerSynced, error) {
	if err := RegisterIndexes(ctx, c); err != nil {
		return nil, nil, err
	}
	// Started now, so that the first create does not wait for it
	// (uniqueness.Guard.UsedBefore reads it).
	if _, err := c.GetInformer(ctx, &scimv1.NameClaim{}, cache.BlockUntilSynced(false)); err != nil {
		return nil, nil, fmt.Errorf("watching NameClaims: %w", err)
	}
	r := &Repository{Cache: c, Live: o.Live, Client: o.Client, IDKey: o.IDKey, Activity: o.Activity}
	synced, err := r.InstallHandlers(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return r, synced, nil
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

// isObjectName reports whether id can name an object at all. Every id this
// server hands out does (a UUID); any other value names no resource and is
// answered 404 here, before it reaches the API server, whose refusal of a
// malformed name would otherwise read as an outage (I4 in docs/invariants.md).
func isObjectName(id string) bool { return len(validation.IsDNS1123Subdomain(id)) == 0 }
