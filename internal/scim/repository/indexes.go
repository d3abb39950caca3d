package repository

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository/membership"
	"github.com/scim-operator/scim-operator/internal/scim/repository/userindex"
)

// Field indexes over the informer cache. Every SCIM lookup that Entra and
// Okta make on their hot path (match by userName, externalId, email,
// displayName; a group's members; a user's groups) is one index read, so no
// request walks every object of a tenant. Values of case-insensitive
// attributes are lower-cased. Keys are per namespace, so a lookup never
// sees another tenant's objects.
const (
	IndexUserName    = userindex.UserName         // lower-cased userName
	IndexExternalID  = userindex.ExternalID       // exact externalId (users and groups)
	IndexEmail       = userindex.Email            // lower-cased emails[].value
	IndexDisplayName = "scim.displayName"         // lower-cased group displayName
	IndexShardGroup  = membership.IndexShardGroup // group name of a shard
)

// Informers is the part of the manager's cache that indexes are added to.
type Informers interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// RegisterIndexes adds the field indexes of groups and memberships. Call it
// before the manager starts. Users and members have their own, smaller
// indexes (UserIndex, MemberIndex).
//
// controller-runtime's FieldIndexer stores every value twice, under the
// object's namespace and under "all namespaces"; every lookup here names
// its tenant, so these indexes keep the namespaced key only, in the format
// the cache's List(InNamespace, MatchingFields) looks up. Index entries are
// a large part of the operator's memory per user (docs/benchmarks.md).
func RegisterIndexes(ctx context.Context, informers Informers) error {
	reg := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&scimv1.ProvisionedGroup{}, IndexDisplayName, func(o client.Object) []string {
			return []string{namekey.Key(o.(*scimv1.ProvisionedGroup).Spec.DisplayName)}
		}},
		{&scimv1.ProvisionedGroup{}, IndexExternalID, func(o client.Object) []string {
			return nonEmpty(o.(*scimv1.ProvisionedGroup).Spec.ExternalID)
		}},
		{&scimv1.GroupMembership{}, IndexShardGroup, func(o client.Object) []string {
			return []string{o.(*scimv1.GroupMembership).Spec.Group}
		}},
	}
	for _, r := range reg {
		inf, err := informers.GetInformer(ctx, r.obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("registering index %s: %w", r.field, err)
		}
		if err := inf.AddIndexers(toolscache.Indexers{"field:" + r.field: namespaced(r.fn)}); err != nil {
			return fmt.Errorf("registering index %s: %w", r.field, err)
		}
	}
	return nil
}

// namespaced turns fn's values into "namespace/value" index keys.
func namespaced(fn client.IndexerFunc) toolscache.IndexFunc {
	return func(raw any) ([]string, error) {
		obj, ok := raw.(client.Object)
		if !ok {
			return nil, fmt.Errorf("index: %T is not an object", raw)
		}
		vals := fn(obj) // may be the object's own slice: not written to
		keys := make([]string, len(vals))
		for i, v := range vals {
			keys[i] = obj.GetNamespace() + "/" + v
		}
		return keys, nil
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
