package operator_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/controllers"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestSecretCacheHoldsOnlyTokenSecrets: the manager caches the Secrets the
// token controller generated and no other (issue 14, finding 2: it cached
// every Secret of the cluster, data included). A Secret of the generated
// name that the operator did not make, invisible to that cache, is still
// found and refused, never taken over or silently retried forever.
func TestSecretCacheHoldsOnlyTokenSecrets(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()

	unrelated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "database-password"},
		StringData: map[string]string{"password": "hunter2"}}
	const chosen = "a-token-somebody-else-chose-0123456789abcdef"
	planted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "planted-token"},
		StringData: map[string]string{"token": chosen}}
	for _, s := range []*corev1.Secret{unrelated, planted} {
		if err := e.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	op, err := operator.New(e.Config, operator.Options{Scheme: env.Scheme, Log: zap.New(zap.UseDevMode(true)),
		Namespaces: []string{ns}, SkipControllerNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := e.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "planted"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		var s corev1.Secret
		return op.Manager.GetCache().Get(ctx, client.ObjectKey{Namespace: ns, Name: "t-token"}, &s)
	})
	// The cache has synced and holds the generated Secret: the other two
	// are not in it.
	for _, name := range []string{unrelated.Name, planted.Name} {
		var s corev1.Secret
		if err := op.Manager.GetCache().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); !apierrors.IsNotFound(err) {
			t.Errorf("the manager's cache holds Secret %s (err %v); it should hold only generated token Secrets", name, err)
		}
	}

	waitFor(t, func() error {
		var tok scimv1.ScimToken
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "planted"}, &tok); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonSecretConflict || tok.Status.Fingerprint != "" {
			return fmt.Errorf("the ScimToken whose Secret name is taken: Ready %+v, fingerprint %q", c, tok.Status.Fingerprint)
		}
		return nil
	})
	var after corev1.Secret
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(planted), &after); err != nil {
		t.Fatal(err)
	}
	if string(after.Data["token"]) != chosen || len(after.OwnerReferences) != 0 {
		t.Errorf("the planted Secret was changed: %v owners %v", string(after.Data["token"]), after.OwnerReferences)
	}
}
