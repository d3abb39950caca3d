// Package apierror turns what the Kubernetes API server answers into what a
// SCIM client should see: the client's own mistakes as SCIM errors (404,
// 400, 413), everything else as ErrUnavailable (503), which tells the
// identity provider to retry rather than count a permanent failure.
package apierror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// ErrUnavailable marks failures of the API server itself. The HTTP layer
// answers them with 503 and Retry-After, so that the identity provider
// retries instead of counting a permanent failure.
var ErrUnavailable = errors.New("the Kubernetes API server is unavailable")

// ForClient turns an API server error about what (a "user", a "name
// claim") into what a SCIM client should see. Anything that is not the
// client's fault and not a plain "not found" becomes ErrUnavailable (503):
// the write may be retried safely.
func ForClient(err error, what string) error {
	if err == nil {
		return nil
	}
	if e, ok := scimerr.As(err); ok {
		return e
	}
	if errors.Is(err, ErrUnavailable) {
		return err // told already
	}
	switch {
	case apierrors.IsNotFound(err):
		return scimerr.NotFound("%s not found", what)
	case apierrors.IsInvalid(err):
		// The CRD's validation refused the object: the client sent a value
		// our schema allowed but the resource does not (too long, not an
		// email address, ...). Its message names the field.
		return scimerr.InvalidValue("%s: %s", what, validationMessage(err))
	case apierrors.IsRequestEntityTooLargeError(err):
		return scimerr.New(413, "", "%s is too large", what)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err) ||
		errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

func validationMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && len(d.Causes) > 0 {
			causes := make([]string, len(d.Causes))
			for i, c := range d.Causes {
				causes[i] = c.Field + ": " + c.Message
			}
			return strings.Join(causes, "; ")
		}
		return status.Status().Message
	}
	return err.Error()
}

// NotFoundAs rewords a 404 (format, args) and passes anything else on.
func NotFoundAs(err error, format string, args ...any) error {
	if e, ok := scimerr.As(err); ok && e.Status == 404 {
		return scimerr.NotFound(format, args...)
	}
	return err
}

// IsNotFound reports whether err is a SCIM 404.
func IsNotFound(err error) bool {
	e, ok := scimerr.As(err)
	return ok && e.Status == 404
}

// DefiniteRefusal reports whether a failed write certainly did not happen.
// After any other failure (a timeout, a reset connection, a 5xx) the write
// may have been applied, so a claim taken for it must not be released: a
// stale claim is taken over after the claim grace, a released one that an
// object holds lets a duplicate in.
func DefiniteRefusal(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsInvalid(err) ||
		apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) ||
		apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsUnauthorized(err)
}
