// Package v1alpha1 holds the scim.helpdesk.dev/v1alpha1 API: the ScimToken an
// identity provider authenticates with, and the ProvisionedUser and
// ProvisionedGroup records that the SCIM server writes and the controllers
// reconcile into the helpdesk database, and the ProvisioningConfig that
// says where a tenant's helpdesk database is.
//
// +kubebuilder:object:generate=true
// +groupName=scim.helpdesk.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "scim.helpdesk.dev", Version: "v1alpha1"}

// AddToScheme adds the kinds of this package to a runtime.Scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ScimToken{}, &ScimTokenList{},
		&ProvisionedUser{}, &ProvisionedUserList{},
		&ProvisionedGroup{}, &ProvisionedGroupList{},
		&GroupMembership{}, &GroupMembershipList{},
		&NameClaim{}, &NameClaimList{},
		&ProvisioningConfig{}, &ProvisioningConfigList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
