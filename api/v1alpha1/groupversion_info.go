// Package v1alpha1 holds the scim.helpdesk.dev/v1alpha1 API: the ScimToken an
// identity provider authenticates with, and the ProvisionedUser and
// ProvisionedGroup records that the SCIM server writes and the controllers
// reconcile into the helpdesk database.
//
// +kubebuilder:object:generate=true
// +groupName=scim.helpdesk.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "scim.helpdesk.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
