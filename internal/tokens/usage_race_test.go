package tokens

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// TestUsageStampRacingARotation: a rotation written between the recorder's
// read of status and its stamp moves the current token to previous. The
// stamp must land on previousLastUsedAt, the token that was used (review
// finding: without the resourceVersion in the patch it landed on the new
// token's lastUsedAt, so PreviousTokenInUse could miss the last use).
func TestUsageStampRacingARotation(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := scimv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	tok := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "entra"}}
	tok.Status.Fingerprint = "hmac-sha256:old"
	base := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tok).WithStatusSubresource(tok).Build()
	rotated := false
	c := interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if !rotated {
				rotated = true // the controller rotates right before the stamp lands
				var cur scimv1.ScimToken
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err != nil {
					return err
				}
				cur.Status.PreviousFingerprint, cur.Status.Fingerprint = cur.Status.Fingerprint, "hmac-sha256:new"
				if err := c.Status().Update(ctx, &cur); err != nil {
					return err
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	r := NewUsageRecorder(c, c, UsageOptions{})
	r.Record(Principal{Namespace: "tenant", TokenName: "entra", Fingerprint: "hmac-sha256:old"})
	r.Flush(context.Background())

	var got scimv1.ScimToken
	if err := base.Get(context.Background(), client.ObjectKeyFromObject(tok), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.LastUsedAt != nil {
		t.Errorf("the use of the old token was stamped on the new one (lastUsedAt %v)", got.Status.LastUsedAt)
	}
	if got.Status.PreviousLastUsedAt == nil {
		t.Error("the use of the old token is not on previousLastUsedAt")
	}
}
