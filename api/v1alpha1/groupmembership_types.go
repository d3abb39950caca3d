package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxMembersPerShard bounds a GroupMembership shard: 2,000 ids of at most 64
// bytes stay far below etcd's 1.5 MiB request limit, and rewriting one shard
// stays cheap whatever the size of the group.
const MaxMembersPerShard = 2000

// MaxMemberDisplayBytes bounds a member's client-sent display (its
// "display" sub-attribute, docs/conformance.md). With it a full shard of
// ids and displays stays under 1 MiB, managed fields included.
const MaxMemberDisplayBytes = 256

// GroupMembershipSpec holds part of one group's member list.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.sealed) || !oldSelf.sealed || (has(self.sealed) && self.sealed)",message="a sealed shard stays sealed: members are only appended to the group's newest shard"
type GroupMembershipSpec struct {
	// Group is the name (SCIM id) of the ProvisionedGroup these members
	// belong to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="group is immutable: a shard belongs to one group for life"
	// +required
	Group string `json:"group"`

	// Members are the SCIM ids (ProvisionedUser names) of members, each at
	// most once across all shards of the group.
	// +kubebuilder:validation:MaxItems=2000
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=atomic
	// +optional
	Members []string `json:"members,omitempty"`

	// Displays holds, for the members of this shard that have one, the
	// "display" a SCIM client last sent for them (member id -> display).
	// A member without an entry is shown with its user's displayName. An
	// entry goes with its member.
	// +kubebuilder:validation:MaxProperties=2000
	// +optional
	Displays map[string]MemberDisplay `json:"displays,omitempty"`

	// Sealed shards take no new members: the SCIM server seals a shard
	// before it starts the next one, so that a member is never appended
	// to two shards by two replicas at once. Members can still be removed.
	// +optional
	Sealed bool `json:"sealed,omitempty"`
}

// MemberDisplay is a member's client-sent display, at most
// MaxMemberDisplayBytes bytes (the server refuses longer ones).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=256
type MemberDisplay string

// GroupMembership is one shard of a ProvisionedGroup's member list, named
// <group>-<n>. The SCIM server writes shards; read a group's members with
// `kubectl get groupmemberships -l scim.helpdesk.dev/group=<group>`.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=gm,categories=scim
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.group`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GroupMembership struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec GroupMembershipSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// GroupMembershipList is a list of GroupMemberships.
type GroupMembershipList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GroupMembership `json:"items"`
}
