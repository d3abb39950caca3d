package tokens

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// The Authenticator's rules without a control plane; the controllers
// package tests it on a real informer cache.
func TestAuthenticateRules(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clk := clocktesting.NewFakePassiveClock(now)
	scheme := runtime.NewScheme()
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	fps := testFingerprints(t)
	tok := func(ns, name, current, previous string, validUntil time.Time, active bool) client.Object {
		t := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		t.Spec.Active = ptr.To(active)
		t.Status.Fingerprint = fps.Of(current)
		if previous != "" {
			t.Status.PreviousFingerprint = fps.Of(previous)
			t.Status.PreviousValidUntil = &metav1.Time{Time: validUntil}
		}
		return t
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&scimv1.ScimToken{}, IndexFingerprint, indexFingerprints).
		WithObjects(
			tok("tenant-a", "entra", "current-a", "previous-a", now.Add(time.Minute), true),
			tok("tenant-b", "okta", "current-b", "expired-b", now.Add(-time.Second), true),
			tok("tenant-c", "off", "current-c", "previous-c", now.Add(time.Minute), false),
			tok("tenant-d", "x", "shared", "", time.Time{}, true),
			tok("tenant-e", "y", "shared", "", time.Time{}, true),
		).Build()
	a := NewAuthenticator(c, clk, fps)
	ctx := context.Background()

	p, err := a.Authenticate(ctx, "Bearer current-a")
	if err != nil || p != (Principal{Namespace: "tenant-a", TokenName: "entra", Fingerprint: fps.Of("current-a")}) {
		t.Errorf("current: %+v, %v", p, err)
	}
	p, err = a.Authenticate(ctx, "Bearer previous-a")
	if err != nil || !p.Previous || p.Namespace != "tenant-a" {
		t.Errorf("previous in its overlap: %+v, %v", p, err)
	}
	for header, want := range map[string]error{
		"Bearer expired-b":  ErrExpired,
		"Bearer current-c":  ErrInactive,
		"Bearer previous-c": ErrInactive,
		"Bearer nobody":     ErrUnknown,
		"Bearer shared":     ErrAmbiguous,
		"":                  ErrMissing,
		"Token current-a":   ErrMalformed,
	} {
		if _, err := a.Authenticate(ctx, header); !errors.Is(err, want) {
			t.Errorf("Authenticate(%q) = %v, want %v", header, err, want)
		}
	}
	if _, err := a.Authenticate(ctx, "Bearer current-b"); err != nil {
		t.Errorf("the current token of a ScimToken whose previous expired: %v", err)
	}
}

func testFingerprints(t *testing.T) Fingerprinter {
	t.Helper()
	f, err := NewFingerprinter([]byte("scim-operator test fingerprint key"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAuthenticateLegacyFingerprints: status written before fingerprints
// were keyed (the unkeyed SHA-256) still authenticates its token, through
// a second lookup; a token whose status is keyed is found by the keyed one.
func TestAuthenticateLegacyFingerprints(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	fps := testFingerprints(t)
	old := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "old"}}
	old.Status.Fingerprint = LegacyFingerprint("from-before-the-upgrade")
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&scimv1.ScimToken{}, IndexFingerprint, indexFingerprints).WithObjects(old).Build()
	p, err := NewAuthenticator(c, nil, fps).Authenticate(context.Background(), "Bearer from-before-the-upgrade")
	if err != nil || p.TokenName != "old" || p.Fingerprint != old.Status.Fingerprint {
		t.Fatalf("a legacy status: %+v, %v", p, err)
	}
}
