package installkey_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/scim-operator/scim-operator/internal/installkey"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestEnsureAgreesAcrossReplicas: replicas starting together all get the
// key the API server kept; later starts read the same key.
func TestEnsureAgreesAcrossReplicas(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	at := client.ObjectKey{Namespace: ns, Name: installkey.DefaultSecretName}

	const replicas = 8
	keys := make([][]byte, replicas)
	created := make([]bool, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			k, c, err := installkey.Ensure(ctx, e.Client, at)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], created[i] = k.Derive(installkey.PurposeFirstID), c
		})
	}
	wg.Wait()
	creators := 0
	for i := range replicas {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("replica %d derived another first-id key than replica 0", i)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d replicas say they created the key, want exactly 1", creators)
	}
	again, c, err := installkey.Ensure(ctx, e.Client, at)
	if err != nil || c || !bytes.Equal(again.Derive(installkey.PurposeFirstID), keys[0]) {
		t.Fatalf("a later start: created=%v err=%v, or another key", c, err)
	}
	var s corev1.Secret
	if err := e.Client.Get(ctx, at, &s); err != nil {
		t.Fatal(err)
	}
	if s.Immutable == nil || !*s.Immutable || len(s.Data[installkey.DataKey]) != 32 {
		t.Errorf("the key Secret is not an immutable 32-byte key: immutable=%v, %d bytes", s.Immutable, len(s.Data[installkey.DataKey]))
	}
	if bytes.Equal(again.Derive(installkey.PurposeFirstID), again.Derive(installkey.PurposeFingerprint)) {
		t.Error("two purposes derived the same subkey")
	}
}

// TestEnsureRefusesAWeakKey: a Secret someone wrote by hand with a short
// value is an error that says what to do, never a weak key.
func TestEnsureRefusesAWeakKey(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	at := client.ObjectKey{Namespace: ns, Name: installkey.DefaultSecretName}
	if err := e.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: at.Name},
		Data:       map[string][]byte{installkey.DataKey: []byte("password")},
	}); err != nil {
		t.Fatal(err)
	}
	_, _, err := installkey.Ensure(ctx, e.Client, at)
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("want an error saying what to do, got %v", err)
	}
}

func TestNewRefusesShortKeys(t *testing.T) {
	if _, err := installkey.New(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	a, err := installkey.New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := installkey.New(bytes.Repeat([]byte{2}, 32))
	if bytes.Equal(a.Derive(installkey.PurposeFirstID), b.Derive(installkey.PurposeFirstID)) {
		t.Error("two keys derived the same subkey")
	}
}
