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
