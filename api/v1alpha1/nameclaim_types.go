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
type NameClaimSpec struct {
	// Kind is the attribute the claim reserves.
	// +required
	Kind ClaimKind `json:"kind"`
	// Value is the reserved value, lower-cased.
	// +kubebuilder:validation:MaxLength=256
	// +required
	Value string `json:"value"`
	// Owner is the name (SCIM id) of the ProvisionedUser or ProvisionedGroup
	// holding the name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Owner string `json:"owner"`
}

// NameClaim reserves a userName or group displayName in its namespace.
//
// Kubernetes has no unique secondary index, and every operator replica serves
// SCIM, so "look in the cache, then create" would let two replicas create the
// same user at once. A claim's name is derived from the lower-cased value, so
// the API server lets only one of two racing creates succeed; the loser
// answers 409 uniqueness. Claims whose owner is gone or holds another name are
// collected by the operator.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=scim
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Value",type=string,JSONPath=`.spec.value`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`
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
