package repository

import (
	"context"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
)

// Whole-tenant reads, for the list and search requests no index narrows.
// CachedUsers deep-copies every user of the tenant: at 100,000 users that is
// hundreds of megabytes per request. These read the cache's own objects
// instead, and the counts let the SCIM server refuse a query that is too
// large before it reads anything.

// ScanUsers returns every live user of the tenant, oldest first (then by
// id), as the cache holds them. Nothing is deep-copied: the objects share
// their maps and slices with the cache, so callers must not modify them
// (copy one before a write). The list costs one struct copy per user,
// which controller-runtime makes to fill Items.
func (r *Repository) ScanUsers(ctx context.Context, namespace string) ([]*scimv1.ProvisionedUser, error) {
	var list scimv1.ProvisionedUserList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, apierror.ForClient(err, "users")
	}
	return liveOldestFirst(list.Items), nil
}

// ScanGroups is ScanUsers for groups.
func (r *Repository) ScanGroups(ctx context.Context, namespace string) ([]*scimv1.ProvisionedGroup, error) {
	var list scimv1.ProvisionedGroupList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, apierror.ForClient(err, "groups")
	}
	return liveOldestFirst(list.Items), nil
}

// liveOldestFirst points at the live items (see live) in the order of
// compareAge.
func liveOldestFirst[T any, PT interface {
	*T
	metav1.Object
}](items []T) []PT {
	out := make([]PT, 0, len(items))
	for i := range items {
		if o := PT(&items[i]); o.GetDeletionTimestamp().IsZero() && !pending(o) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b PT) int {
		if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	return out
}

// CountUsers returns how many users the tenant has in the cache,
// terminating ones included: from the user index, so it reads no object.
func (r *Repository) CountUsers(ctx context.Context, namespace string) (int, error) {
	if r.Users != nil {
		return r.Users.Count(namespace), nil
	}
	var list scimv1.ProvisionedUserList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, apierror.ForClient(err, "users")
	}
	return len(list.Items), nil
}

// CountGroups returns how many groups the tenant has in the cache, but at
// most limit+1: enough to tell whether there are more than limit, while
// copying no more than that many structs.
func (r *Repository) CountGroups(ctx context.Context, namespace string, limit int) (int, error) {
	var list scimv1.ProvisionedGroupList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.Limit(int64(limit)+1),
		client.UnsafeDisableDeepCopy); err != nil {
		return 0, apierror.ForClient(err, "groups")
	}
	return len(list.Items), nil
}

// CountMembers returns how many member entries the tenant's groups hold
// together, from the GroupMembership shards (one per 2,000 members).
func (r *Repository) CountMembers(ctx context.Context, namespace string) (int, error) {
	var list scimv1.GroupMembershipList
	if err := r.Cache.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return 0, apierror.ForClient(err, "group membership")
	}
	n := 0
	for i := range list.Items {
		n += len(list.Items[i].Spec.Members)
	}
	return n, nil
}
