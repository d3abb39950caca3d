package controllers

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// A finalizer patch from a copy that a status write has overtaken (the
// usual case: the sync's own status, a token's usage stamp) lands after
// one re-read instead of failing the reconcile and repeating its side
// effects; another writer's finalizer is kept.
func TestFinalizerPatchOutlivesAStatusWrite(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "u", Namespace: ns,
		Finalizers: []string{scimv1.FinalizerHelpdesk, "example.test/other"}},
		Spec: scimv1.ProvisionedUserSpec{UserName: "u@example.test"}}
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	stale := u.DeepCopy()
	u.Status.ObservedGeneration = 7
	if err := env.Client.Status().Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	if stale.ResourceVersion == u.ResourceVersion {
		t.Fatal("the status write did not move the resourceVersion")
	}
	if err := removeFinalizer(ctx, env.Client, stale, scimv1.FinalizerHelpdesk); err != nil {
		t.Fatalf("removing the finalizer from an overtaken copy: %v", err)
	}
	var got scimv1.ProvisionedUser
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Finalizers) != 1 || got.Finalizers[0] != "example.test/other" {
		t.Errorf("finalizers %v, want only the other writer's", got.Finalizers)
	}
	if got.Status.ObservedGeneration != 7 {
		t.Errorf("the status write was lost: observedGeneration %d", got.Status.ObservedGeneration)
	}
}
