package server

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/patch"
	"github.com/scim-operator/scim-operator/internal/scim/repository"
)

// Store is what the handlers need from storage: *repository.Repository in
// the operator, an in-memory double (package memstore) in the handler
// tests. Every method is scoped to one tenant (a namespace, or the
// Principal's namespace for writes) and never sees another's resources.
//
// The contract the handlers rely on, common to every method:
//
//   - A client's mistake is a *scimerr.Error: a missing (or deleted, or
//     not yet complete) user or group is 404, a taken name 409 uniqueness,
//     an If-Match that is not the resource's version 412. Any other error
//     is the store's own; one wrapping repository.ErrUnavailable is
//     answered 503 with Retry-After.
//   - userName and group displayName are unique per tenant under
//     namekey.Key (case and Unicode folding): a create or rename onto a
//     name another resource holds is 409, whichever replica races.
//   - Versions: repository.Version of a resource's ObjectMeta is its SCIM
//     meta.version (the ETag). Every write that changes a resource moves
//     it; a write that changes nothing keeps it. An ifMatch of "" or "*"
//     matches any version.
//   - Read-your-writes: once a write has returned, this replica's reads
//     (Live…, Cached…, lists, scans and counts) show it. Live… reads also
//     show what other replicas wrote; Cached… reads may lag behind them.
//   - Objects returned are the caller's, except those of ScanUsers and
//     ScanGroups, which may be shared with a cache and must not be changed.
type Store interface {
	// CreateUser stores a new user under a fresh id: 409 when the tenant
	// has a user with the same userName.
	CreateUser(ctx context.Context, p repository.Principal, spec scimv1.ProvisionedUserSpec) (*scimv1.ProvisionedUser, error)
	// LiveUser returns a user as the API server has it now (404 if none).
	LiveUser(ctx context.Context, namespace, id string) (*scimv1.ProvisionedUser, error)
	// UpdateUser reads the user (404), checks ifMatch against its version
	// (412), and calls mutate on a copy. mutate may change the spec only;
	// it may be called again on a fresher copy after a concurrent write,
	// so it must set its results, not accumulate them, and it may call the
	// store's reads but none of its writes. When mutate reports no change
	// (or fails) nothing is written and the user is returned as read (with
	// mutate's error). Otherwise the user is written: a changed userName
	// must be free (409), and the version moves.
	UpdateUser(ctx context.Context, p repository.Principal, id, ifMatch string,
		mutate func(*scimv1.ProvisionedUser) (changed bool, err error)) (*scimv1.ProvisionedUser, error)
	// DeleteUser deletes a user (404, 412 as UpdateUser); its userName is
	// free again at once.
	DeleteUser(ctx context.Context, p repository.Principal, id, ifMatch string) error
	// UsersBy returns the tenant's users whose index field equals value:
	// repository.IndexUserName and IndexEmail take namekey.Key of the
	// value, IndexExternalID the exact value.
	UsersBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error)
	// ScanUsers returns every user of the tenant, oldest first, then by
	// id: the stable order paging relies on. Read-only (see above).
	ScanUsers(ctx context.Context, namespace string) ([]*scimv1.ProvisionedUser, error)
	// CountUsers returns about how many users the tenant has (it may count
	// users being deleted), for the scan ceiling; it reads no user.
	CountUsers(ctx context.Context, namespace string) (int, error)
	// DisplayNames returns, for each id that is a user of the tenant, its
	// displayName, else its userName; other ids are left out.
	DisplayNames(ctx context.Context, namespace string, ids []string) map[string]string

	// CreateGroup stores a new group under a fresh id: 409 when the tenant
	// has a group with the same displayName. With withMembers the group is
	// pending (404 to every read) until ApplyMembers completes it or
	// AbandonGroup removes it.
	CreateGroup(ctx context.Context, p repository.Principal, spec scimv1.ProvisionedGroupSpec, withMembers bool) (*scimv1.ProvisionedGroup, error)
	// AbandonGroup removes a pending group and frees its displayName; best
	// effort, and nothing for a group that is not pending.
	AbandonGroup(ctx context.Context, p repository.Principal, g *scimv1.ProvisionedGroup)
	// LiveGroup returns a group as the API server has it now (404 if none).
	LiveGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error)
	// CachedGroup returns a group from this replica's cache (404 if none).
	CachedGroup(ctx context.Context, namespace, id string) (*scimv1.ProvisionedGroup, error)
	// UpdateGroup is UpdateUser for groups; the unique name is
	// displayName. Members are not part of the group object: mutate
	// decides the spec, ApplyMembers the members.
	UpdateGroup(ctx context.Context, p repository.Principal, id, ifMatch string,
		mutate func(*scimv1.ProvisionedGroup) (changed bool, err error)) (*scimv1.ProvisionedGroup, error)
	// DeleteGroup deletes a group (see DeleteUser).
	DeleteGroup(ctx context.Context, p repository.Principal, id, ifMatch string) error
	// GroupsBy returns the tenant's groups whose index field equals value:
	// repository.IndexDisplayName takes namekey.Key of the value,
	// IndexExternalID the exact value.
	GroupsBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedGroup, error)
	// ScanGroups is ScanUsers for groups.
	ScanGroups(ctx context.Context, namespace string) ([]*scimv1.ProvisionedGroup, error)
	// CountGroups returns how many groups the tenant has, but at most
	// limit+1 (enough to tell whether there are more than limit).
	CountGroups(ctx context.Context, namespace string, limit int) (int, error)

	// KnownMembers drops from the adding operations (add, replace) the ids
	// that are not users of the tenant, returning them as skipped; a
	// replace none of whose ids is a user becomes a clear. Removals pass
	// as sent. A member display longer than scimv1.MaxMemberDisplayBytes
	// is 400 invalidValue. ApplyMembers then cannot fail for a client's
	// mistake.
	KnownMembers(ctx context.Context, namespace string, ops []patch.MemberOp) (known []patch.MemberOp, skipped []string, err error)
	// ApplyMembers carries out ops, in order, on g's members and returns
	// the group afterwards. New members are appended (each operation's in
	// id order); adding a member with a display sets it, without one keeps
	// the member's; a member's display goes with it. A change moves the
	// group's version; no change writes nothing and returns g. A pending
	// g is completed.
	ApplyMembers(ctx context.Context, p repository.Principal, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (*scimv1.ProvisionedGroup, error)
	// MembersWouldChange reports whether ApplyMembers(g, ops) would change
	// the members now; it writes nothing.
	MembersWouldChange(ctx context.Context, g *scimv1.ProvisionedGroup, ops []patch.MemberOp) (bool, error)
	// CachedMembersWithDisplays returns a group's member ids in their
	// stored order, from the cache, and the displays clients sent (id ->
	// display; nil when no member has one).
	CachedMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error)
	// LiveMembersWithDisplays is CachedMembersWithDisplays read live.
	LiveMembersWithDisplays(ctx context.Context, namespace, group string) ([]string, map[string]string, error)
	// GroupsOf returns the ids of the groups member belongs to, sorted.
	// It may still name a group being deleted, which then reads as 404.
	GroupsOf(ctx context.Context, namespace, member string) ([]string, error)
	// CountMembers returns how many member entries the tenant's groups
	// hold together.
	CountMembers(ctx context.Context, namespace string) (int, error)

	// Warn records a Warning event on a user or group just written (kind
	// "ProvisionedUser" or "ProvisionedGroup"; reason one of
	// repository.Event…). Best effort: it never fails the request.
	Warn(ctx context.Context, obj client.Object, kind, reason, note string)
}
