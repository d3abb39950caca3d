package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// TestIdentityProviderSilent: the condition turns True once no request
// arrived for spec.silenceWarningAfter (default 2h), with a Warning
// event, and False again with the next request; on a fake clock.
func TestIdentityProviderSilent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "too-short"},
		Spec: scimv1.ScimTokenSpec{SilenceWarningAfter: &metav1.Duration{Duration: 30 * time.Second}}}
	if err := f.c.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("silenceWarningAfter 30s: want Invalid, got %v", err)
	}
	f.create("quiet", func(tok *scimv1.ScimToken) {
		tok.Spec.SilenceWarningAfter = &metav1.Duration{Duration: 30 * time.Minute}
	})
	f.create("default", nil)
	f.waitCondition("quiet", scimv1.ConditionIdentityProviderSilent, metav1.ConditionFalse, ReasonRequestsArrive)
	f.waitCondition("default", scimv1.ConditionIdentityProviderSilent, metav1.ConditionFalse, ReasonRequestsArrive)

	// A request 20 minutes in, as the SCIM server records it.
	f.clock.Step(20 * time.Minute)
	heard := f.clock.Now().UTC().Truncate(time.Second)
	f.requestAt("quiet", heard)

	// 31 minutes after it: silent for longer than 30m.
	f.clock.Step(31 * time.Minute)
	f.poke("quiet")
	tok := f.waitCondition("quiet", scimv1.ConditionIdentityProviderSilent, metav1.ConditionTrue, ReasonNoRequests)
	if msg := condMessage(tok, scimv1.ConditionIdentityProviderSilent); !strings.Contains(msg, heard.Format(time.RFC3339)) {
		t.Errorf("the message names no last request time: %q", msg)
	}
	f.waitEvent("quiet", corev1.EventTypeWarning, scimv1.ConditionIdentityProviderSilent)
	// 51 minutes since its creation is within the default two hours.
	f.poke("default")
	time.Sleep(time.Second)
	f.waitCondition("default", scimv1.ConditionIdentityProviderSilent, metav1.ConditionFalse, ReasonRequestsArrive)

	// The identity provider is back.
	f.requestAt("quiet", f.clock.Now())
	f.waitCondition("quiet", scimv1.ConditionIdentityProviderSilent, metav1.ConditionFalse, ReasonRequestsArrive)

	// Two hours without any request since creation: the default warns.
	f.clock.Step(70 * time.Minute)
	f.poke("default")
	tok = f.waitCondition("default", scimv1.ConditionIdentityProviderSilent, metav1.ConditionTrue, ReasonNoRequests)
	if msg := condMessage(tok, scimv1.ConditionIdentityProviderSilent); !strings.Contains(msg, "created") || !strings.Contains(msg, "2h0m0s") {
		t.Errorf("message %q", msg)
	}

	// An inactive token is expected to be silent.
	f.patch("default", `{"spec":{"active":false}}`)
	f.waitCondition("default", scimv1.ConditionIdentityProviderSilent, metav1.ConditionFalse, ReasonTokenNotInUse)
	f.noAlarms("quiet")
}

// requestAt writes status.activity.lastRequestAt as the SCIM server does.
func (f *fixture) requestAt(name string, at time.Time) {
	f.t.Helper()
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}}
	body := fmt.Sprintf(`{"status":{"activity":{"lastRequestAt":%q}}}`, at.UTC().Format(time.RFC3339))
	if err := f.c.Status().Patch(context.Background(), tok, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		f.t.Fatalf("writing the activity of %s: %v", name, err)
	}
}

func condMessage(tok *scimv1.ScimToken, conditionType string) string {
	for _, c := range tok.Status.Conditions {
		if c.Type == conditionType {
			return c.Message
		}
	}
	return ""
}
