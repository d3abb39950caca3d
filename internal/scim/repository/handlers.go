package repository

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
	"github.com/scim-operator/scim-operator/internal/scim/repository/apierror"
	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
)

// InstallHandlers adds the repository's informer event handlers (the user
// index, the signals that wake waiting writes) to the cache, creating Users
// and Signals when unset. New calls it; call it yourself only for a
// Repository built by hand, before the manager starts. The returned
// functions report when the handlers have seen every object.
func (r *Repository) InstallHandlers(ctx context.Context, informers Informers) ([]toolscache.InformerSynced, error) {
	if r.Signals == nil {
		r.Signals = NewCacheSignals()
	}
	if r.Users == nil {
		r.Users = NewUserIndex(r.Signals)
	}
	var synced []toolscache.InformerSynced
	for _, h := range []struct {
		obj     client.Object
		handler toolscache.ResourceEventHandler
	}{
		{&scimv1.ProvisionedUser{}, r.Users.Handler()},
		{&scimv1.ProvisionedGroup{}, r.Signals.Handler()},
		{&scimv1.GroupMembership{}, r.Signals.Handler()},
	} {
		inf, err := informers.GetInformer(ctx, h.obj, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, fmt.Errorf("watching %T: %w", h.obj, err)
		}
		reg, err := inf.AddEventHandler(h.handler)
		if err != nil {
			return nil, fmt.Errorf("watching %T: %w", h.obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return synced, nil
}

// waiter waits for this replica's cache (and, for users, the user index)
// to hold a write.
func (r *Repository) waiter() consistency.Waiter {
	return consistency.Waiter{Cache: r.Cache, Signals: r.Signals, Indexed: r.indexed}
}

// indexed reports whether the user index has caught up with a user's write
// at resourceVersion rv too (filters read it, not the cache).
func (r *Repository) indexed(obj client.Object, rv string) bool {
	if _, ok := obj.(*scimv1.ProvisionedUser); !ok || r.Users == nil {
		return true
	}
	return r.Users.Seen(rv)
}

// knownUsers looks userNames up in the index; nil without one (tests that
// build a Repository by hand).
func (r *Repository) knownUsers() func(namespace, value string) []string {
	if r.Users == nil {
		return nil
	}
	return func(namespace, value string) []string {
		return r.Users.Names(IndexUserName, namespace, namekey.Key(value))
	}
}

// UsersBy returns the tenant's live users whose index field (IndexUserName,
// IndexExternalID, IndexEmail) equals value, through the UserIndex.
func (r *Repository) UsersBy(ctx context.Context, namespace, index, value string) ([]scimv1.ProvisionedUser, error) {
	if r.Users == nil {
		return nil, fmt.Errorf("%w: the user index is not installed", ErrUnavailable)
	}
	var out []scimv1.ProvisionedUser
	for _, name := range r.Users.Names(index, namespace, value) {
		var u scimv1.ProvisionedUser
		if err := r.get(ctx, r.Cache, namespace, name, &u); err != nil {
			if apierror.IsNotFound(err) {
				continue // deleted or terminating since the index saw it
			}
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}
