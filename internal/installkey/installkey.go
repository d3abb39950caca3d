// Package installkey keeps the installation's secret key: 32 random bytes
// in a Secret the operator creates once, in its own namespace. Keyed
// identifiers are derived from it (first user ids, token fingerprints), so
// every replica derives the same value and nobody without the key can
// recompute one from a guessed input: a userName from a user id in a log
// line, a token from its fingerprint in a status.
//
// The Secret is immutable; deleting it makes the next start create a new
// key (see docs/security.md for what that changes).
package installkey

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// DefaultSecretName is the Secret that holds the key, in the operator's
	// namespace.
	DefaultSecretName = "scim-operator-installation-key"
	// DataKey is the Secret's data key holding the key bytes.
	DataKey = "key"
	// size is how many random bytes a new key has (HMAC-SHA-256's block
	// of security).
	size = 32
)

// Purposes of derived subkeys: each use gets its own, so that a value
// derived for one can never be mistaken for a value of another.
const (
	PurposeFirstID     = "scim-operator/first-user-id/v1"
	PurposeFingerprint = "scim-operator/token-fingerprint/v1"
)

// Key is an installation key.
type Key struct{ secret []byte }

// New wraps key bytes; shorter than 32 bytes is refused.
func New(secret []byte) (Key, error) {
	if len(secret) < size {
		return Key{}, fmt.Errorf("an installation key needs at least %d bytes, this one has %d", size, len(secret))
	}
	return Key{secret: append([]byte(nil), secret...)}, nil
}

// Derive returns the subkey for purpose: HMAC-SHA-256 of the purpose under
// the key.
func (k Key) Derive(purpose string) []byte {
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// Ensure reads the key from the Secret at key, creating the Secret with a
// new random key when there is none. Replicas starting together agree: the
// API server keeps the first create and the others read it. c must read
// live (not from a cache that may not have started).
func Ensure(ctx context.Context, c client.Client, key client.ObjectKey) (Key, bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		var s corev1.Secret
		err := c.Get(ctx, key, &s)
		if err == nil {
			k, err := New(s.Data[DataKey])
			if err != nil {
				return Key{}, false, fmt.Errorf("the Secret %s holds no usable installation key in %q: %w; "+
					"delete it to have a new one made (ids of users created after that change form)", key, DataKey, err)
			}
			return k, false, nil
		}
		if !apierrors.IsNotFound(err) {
			return Key{}, false, fmt.Errorf("reading the installation key Secret %s (the operator needs get on it): %w", key, err)
		}
		secret := make([]byte, size)
		if _, err := rand.Read(secret); err != nil {
			return Key{}, false, fmt.Errorf("generating an installation key: %w", err)
		}
		immutable := true
		err = c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: key.Name, Namespace: key.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "scim-operator"},
				Annotations: map[string]string{"scim.helpdesk.dev/purpose": "Keys the ids of new users and the fingerprints of tokens. " +
					"Every replica reads it; keep it with the cluster's backups and do not delete it."},
			},
			Immutable: &immutable,
			Type:      corev1.SecretTypeOpaque,
			Data:      map[string][]byte{DataKey: secret},
		})
		if err == nil {
			k, _ := New(secret)
			return k, true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return Key{}, false, fmt.Errorf("creating the installation key Secret %s (the operator needs create on Secrets in its namespace): %w", key, err)
		}
		// Another replica created it first: read theirs.
	}
	return Key{}, false, fmt.Errorf("the installation key Secret %s kept appearing and disappearing; check what deletes it", key)
}

// Await reads the key from the Secret at key, waiting while it does not
// exist yet (another process creates it: SCIM replicas may not create
// Secrets). It gives up when ctx ends.
func Await(ctx context.Context, c client.Client, key client.ObjectKey, log logr.Logger) (Key, error) {
	for waited := time.Duration(0); ; waited += time.Second {
		var s corev1.Secret
		err := c.Get(ctx, key, &s)
		switch {
		case err == nil:
			k, err := New(s.Data[DataKey])
			if err != nil {
				return Key{}, fmt.Errorf("the Secret %s holds no usable installation key in %q: %w", key, DataKey, err)
			}
			return k, nil
		case !apierrors.IsNotFound(err):
			return Key{}, fmt.Errorf("reading the installation key Secret %s (this process needs get on it): %w", key, err)
		}
		if waited%(15*time.Second) == 0 {
			log.Info("waiting for the controllers to create the installation key", "secret", key, "waited", waited.String())
		}
		select {
		case <-ctx.Done():
			return Key{}, fmt.Errorf("the installation key Secret %s does not exist; the controllers' Deployment creates it on its first start: is it running? (%w)", key, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
