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
// and member indexes, the signals that wake waiting writes) to the cache,
// creating Users, Members and Signals when unset. New calls it; call it yourself only for a
// Repository built by hand, before the manager starts. The returned
// functions report when the handlers have seen every object.
func (r *Repository) InstallHandlers(ctx context.Context, informers Informers) ([]toolscache.InformerSynced, error) {
	if r.Signals == nil {
		r.Signals = NewCacheSignals()
	}
	if r.Users == nil {
		r.Users = NewUserIndex(r.Signals)
	}
	if r.Members == nil {
		r.Members = NewMemberIndex(r.Signals)
	}
	var synced []toolscache.InformerSynced
	for _, h := range []struct {
		obj     client.Object
		handler toolscache.ResourceEventHandler
	}{
		{&scimv1.ProvisionedUser{}, r.Users.Handler()},
		{&scimv1.ProvisionedGroup{}, r.Signals.Handler()},
		{&scimv1.GroupMembership{}, r.Members.Handler()},
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

// waiter waits for this replica's cache (and, for users and shards, their
// index) to hold a write.
func (r *Repository) waiter() consistency.Waiter {
	return consistency.Waiter{Cache: r.Cache, Signals: r.Signals, Indexed: r.indexed}
}

// indexed reports whether the index a write's kind is read through has
// caught up with the write at resourceVersion rv too: filters read the user
// index, a user's groups the member index, not the cache.
func (r *Repository) indexed(obj client.Object, rv string) bool {
	switch o := obj.(type) {
	case *scimv1.ProvisionedUser:
		return r.Users == nil || r.Users.Seen(rv)
	case *scimv1.GroupMembership:
		return r.Members == nil || r.Members.Holds(o, rv)
	}
	return true
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
