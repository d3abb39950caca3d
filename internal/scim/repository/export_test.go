package repository

import (
	"context"

	"k8s.io/apimachinery/pkg/types"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// HoldMemberTurn takes g's membership turn, as a running change would.
func (r *Repository) HoldMemberTurn(ctx context.Context, g *scimv1.ProvisionedGroup) (release func(), err error) {
	return r.memberTurns.take(ctx, turnOf(g))
}

// MemberChangesWaiting is how many changes of g by p wait in its open batch.
func (r *Repository) MemberChangesWaiting(p Principal, g *scimv1.ProvisionedGroup) int {
	return r.memberBatches.joined(batchKey{p: p, group: types.NamespacedName{Namespace: g.Namespace, Name: g.Name}, uid: g.UID})
}
