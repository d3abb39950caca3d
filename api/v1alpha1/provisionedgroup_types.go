package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProvisionedGroupSpec is a SCIM Group (RFC 7643 §4.2) without its members.
//
// Membership lives in GroupMembership objects, not here: a group may have
// 100,000 members, which would not fit in one object (etcd refuses requests
// over 1.5 MiB) and would have to be rewritten whole to add one member.
// Each GroupMembership shard holds up to MaxMembersPerShard member ids of one
// group. New members are appended to the group's newest shard (when it is
// full it is sealed and a new shard created), and removals edit only the
// shards that hold the removed ids, found through a cache index. A membership change therefore
// costs work in proportion to the members in the request, usually one write.
type ProvisionedGroupSpec struct {
	// DisplayName is the group's name, unique in the namespace without regard
	// to case (Entra matches groups on it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.trim() != ''",message="displayName must not be blank"
	// +required
	DisplayName string `json:"displayName"`

	// ExternalID is the identity provider's own id for the group (Entra
	// sends the group's objectId). Compared case-sensitively. At most 191
	// characters: helpdesk_groups.external_id is a VARCHAR(191) key column,
	// and an id cannot be stored cut. (displayName's 256 fit the 512 of
	// helpdesk_groups.display_name.)
	// +kubebuilder:validation:MaxLength=191
	// +optional
	ExternalID string `json:"externalId,omitempty"`
}

// ProvisionedGroupStatus reports how far the group reached the helpdesk.
type ProvisionedGroupStatus struct {
	// Conditions: Synced is true when the helpdesk database holds this
	// generation of the group and its current members.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation last written to the database.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Members is the number of members written to the database at the last
	// sync.
	// +optional
	Members int32 `json:"members,omitempty"`
	// LastSyncTime is when the database was last written or checked.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// ProvisionedGroup is a group that an identity provider provisioned over
// SCIM. Its name is the SCIM id; its members are in GroupMembership shards
// labelled scim.helpdesk.dev/group=<name>.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pg,categories=scim
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProvisionedGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProvisionedGroupSpec `json:"spec"`
	// +optional
	Status ProvisionedGroupStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ProvisionedGroupList is a list of ProvisionedGroups.
type ProvisionedGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProvisionedGroup `json:"items"`
}
