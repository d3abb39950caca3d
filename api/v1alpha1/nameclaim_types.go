package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaimKind says which unique attribute a NameClaim reserves.
// +kubebuilder:validation:Enum=userName;displayName
type ClaimKind string

const (
	// ClaimUserName reserves a user's userName.
	ClaimUserName ClaimKind = "userName"
	// ClaimDisplayName reserves a group's displayName.
	ClaimDisplayName ClaimKind = "displayName"
)

// NameClaimSpec says who holds a unique name.
// +kubebuilder:validation:XValidation:rule="(has(self.retired) && self.retired) || (has(self.owner) && size(self.owner) > 0)",message="spec.owner is required unless the claim is retired"
type NameClaimSpec struct {
	// Kind is the attribute the claim reserves.
	// +required
	Kind ClaimKind `json:"kind"`
	// Value is the reserved value, lower-cased.
	// +kubebuilder:validation:MaxLength=256
	// +required
	Value string `json:"value"`
	// Owner is the name (SCIM id) of the ProvisionedUser or ProvisionedGroup
	// holding the name. Empty only on a retired claim that nobody holds.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Owner string `json:"owner,omitempty"`
	// ClaimedAt is when Owner took the claim (by the claiming replica's
	// clock). A claim whose owner does not exist yet counts as a create in
	// flight for a short grace period after this time.
	// +optional
	ClaimedAt *metav1.Time `json:"claimedAt,omitempty"`
	// Retired says that a user once held this userName through its first
	// id (see FirstUserID in the repository), so that id must never be
	// given to another user: a later create of the same userName gets a
	// random id and this claim. Retired claims are kept when released.
	// +optional
	Retired bool `json:"retired,omitempty"`
}

// NameClaim reserves a userName or group displayName in its namespace.
//
// Kubernetes has no unique secondary index, and every operator replica serves
// SCIM, so "look in the cache, then create" would let two replicas create the
// same user at once. A claim's name is derived from the lower-cased value, so
// the API server lets only one of two racing creates succeed; the loser
// answers 409 uniqueness. Most users need no claim: a user created with a
// userName never used before is named after it, which makes the create
// itself the uniqueness check. Claims cover renames, re-used userNames and
// all group displayNames. A claim whose owner is gone or holds another name
// is stale and taken over by the next claimer.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=scim
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Value",type=string,JSONPath=`.spec.value`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Retired",type=boolean,JSONPath=`.spec.retired`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NameClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec NameClaimSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// NameClaimList is a list of NameClaims.
type NameClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NameClaim `json:"items"`
}
