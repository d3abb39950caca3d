// Package kscheme builds the runtime.Scheme the operator and its tests use:
// Kubernetes' built-in kinds plus scim.helpdesk.dev/v1alpha1.
package kscheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// New returns a new scheme with every kind the operator reads or writes.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(scimv1.AddToScheme(s))
	return s
}
