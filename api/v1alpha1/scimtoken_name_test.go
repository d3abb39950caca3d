package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestScimTokenNameFitsALabel: the token name becomes a label value on
// every user and group its bearer creates, and on its Secret; a name over
// 63 characters used to be accepted and then make every create answer 400
// (issue 12, finding 7). It is refused up front with a message saying why.
func TestScimTokenNameFitsALabel(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	ok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 63), Namespace: ns}}
	if err := e.Client.Create(ctx, ok); err != nil {
		t.Errorf("a 63-character name must be accepted: %v", err)
	}
	long := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 64), Namespace: ns}}
	err := e.Client.Create(ctx, long)
	if err == nil || !strings.Contains(err.Error(), "at most 63 characters") {
		t.Errorf("a 64-character name: want a refusal naming the limit, got %v", err)
	}
}

// TestScimTokenCannotAdoptItsOwnSecret: a secretRef naming the token's own
// generated Secret (<name>-token) used to make the operator delete that
// Secret and leave no valid token (issue 14, finding 6). It is refused.
func TestScimTokenCannotAdoptItsOwnSecret(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	self := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "entra", Namespace: ns},
		Spec: scimv1.ScimTokenSpec{SecretRef: &scimv1.TokenSecretReference{Name: "entra-token", Key: "token"}}}
	err := e.Client.Create(ctx, self)
	if err == nil || !strings.Contains(err.Error(), "must not name the Secret this ScimToken generates") {
		t.Errorf("secretRef naming the generated Secret: want a refusal saying why, got %v", err)
	}
	other := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "okta", Namespace: ns},
		Spec: scimv1.ScimTokenSpec{SecretRef: &scimv1.TokenSecretReference{Name: "entra-token", Key: "token"}}}
	if err := e.Client.Create(ctx, other); err != nil {
		t.Errorf("another token's Secret name is allowed by validation: %v", err)
	}
	// Switching a generating token to its own Secret is refused as well.
	gen := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "gen", Namespace: ns}}
	if err := e.Client.Create(ctx, gen); err != nil {
		t.Fatal(err)
	}
	gen.Spec.SecretRef = &scimv1.TokenSecretReference{Name: "gen-token", Key: "token"}
	if err := e.Client.Update(ctx, gen); err == nil {
		t.Error("an update to adopt its own generated Secret was accepted")
	}
}
