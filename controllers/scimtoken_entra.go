package controllers

import (
	corev1 "k8s.io/api/core/v1"

	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// Reasons of the Ready condition of a ScimToken with spec.entraIssued.
const (
	// ReasonEntraIssued: Entra-issued tokens of the directory are accepted.
	ReasonEntraIssued = "EntraIssuedTokens"
	// ReasonKeysUnavailable: no signing key of the directory could be
	// fetched, so none of its tokens can be checked.
	ReasonKeysUnavailable = "KeysUnavailable"
	// ReasonEntraDisabled: the operator was started without
	// --allow-entra-issued-tokens.
	ReasonEntraDisabled = "EntraIssuedTokensDisabled"
	// ReasonDirectoryNotAllowed: the namespace's annotation
	// scim.helpdesk.dev/entra-tenant-ids does not list the directory.
	ReasonDirectoryNotAllowed = "DirectoryNotAllowed"
	// ReasonApplicationNotPinned: spec.entraIssued.applicationObjectID is
	// empty (stored before it was required); no token is accepted.
	ReasonApplicationNotPinned = "ApplicationNotPinned"
)

// entraGate says why spec.entraIssued may not be taken up, "" when it may:
// the operator must allow the mode, and a cluster administrator must have
// allowed the directory for the namespace (a namespace editor may not
// claim a directory id, which anyone can look up).
func (r *ScimTokenReconciler) entraGate(ctx context.Context, tok *scimv1.ScimToken) (reason, message string, err error) {
	if !r.EntraAllowed {
		return ReasonEntraDisabled, "the operator was started without --allow-entra-issued-tokens (chart: entraIssuedTokens.enabled): " +
			"no Entra-issued token is accepted", nil
	}
	var ns corev1.Namespace
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: tok.Namespace}, &ns); err != nil {
		return "", "", fmt.Errorf("reading namespace %s: %w", tok.Namespace, err)
	}
	want := strings.ToLower(tok.Spec.EntraIssued.TenantID)
	for _, id := range strings.Split(ns.Annotations[scimv1.AnnotationEntraTenantIDs], ",") {
		if strings.ToLower(strings.TrimSpace(id)) == want {
			return "", "", nil
		}
	}
	return ReasonDirectoryNotAllowed, fmt.Sprintf("namespace %s may not accept tokens of Entra directory %s: "+
		"a cluster administrator allows it with kubectl annotate namespace %s %s=%s (comma-separated for several)",
		tok.Namespace, want, tok.Namespace, scimv1.AnnotationEntraTenantIDs, want), nil
}

// entraRecheck is how often the key status of a ScimToken with
// spec.entraIssued is looked at again (a fetch happens only when the keys
// are due for a refresh).
const entraRecheck = 10 * time.Minute

// entraKeyWait bounds how long a reconcile waits for a key fetch (the
// controller has one worker; a fetch may take 2×10 s); entraFetchRecheck
// is when it looks again while that fetch runs.
const (
	entraKeyWait      = 2 * time.Second
	entraFetchRecheck = 15 * time.Second
)

// EntraKeyChecker reports (fetching when due) the signing keys of an Entra
// directory: *tokens.EntraKeys.
type EntraKeyChecker interface {
	Check(ctx context.Context, spec *scimv1.EntraIssuedTokens) tokens.KeyStatus
}

// reconcileEntra takes spec.entraIssued up: no token of the operator's
// exists in this mode, so a Secret generated before the ScimToken switched
// to it is deleted (its token is no longer accepted), and status names the
// directory instead of fingerprints.
func (r *ScimTokenReconciler) reconcileEntra(ctx context.Context, tok *scimv1.ScimToken) (*tokenState, error) {
	spec := tok.Spec.EntraIssued
	deleted, err := r.deleteGeneratedSecret(ctx, tok)
	if err != nil {
		return nil, err
	}
	// Recorded once status is written (the Secret is gone either way).
	var revoked []note
	if deleted != "" {
		revoked = []note{{corev1.EventTypeNormal, EventRevoked, "Revoke", fmt.Sprintf(
			"spec.entraIssued is set: deleted Secret %s, whose token is no longer accepted", deleted)}}
	}
	reason, message, err := r.entraGate(ctx, tok)
	if err != nil {
		return nil, err
	}
	if reason == "" && spec.ApplicationObjectID == "" {
		reason, message = ReasonApplicationNotPinned, "spec.entraIssued.applicationObjectID is empty, so that tokens Entra issued "+
			"for any application of the directory would be accepted: no token is; set it to the enterprise application's object id"
	}
	if reason != "" {
		return &tokenState{problemReason: reason, problemMessage: message, afterStatus: revoked}, nil
	}
	st := &tokenState{entraTenantID: strings.ToLower(spec.TenantID), afterStatus: revoked}
	// The single worker does not wait for a slow key endpoint: the fetch
	// goes on in the background and the next look is soon.
	checkCtx, cancel := context.WithTimeout(ctx, entraKeyWait)
	keys := r.EntraKeys.Check(checkCtx, spec)
	cancel()
	if keys.Fetching {
		st.recheckAfter = entraFetchRecheck
	}
	accepted := fmt.Sprintf("tokens that Entra ID issues for directory %s (Secret Token left blank) are accepted at %s from application %s",
		st.entraTenantID, r.EndpointBaseURL, strings.ToLower(spec.ApplicationObjectID))
	switch {
	case keys.Keys == 0 && keys.Fetching && keys.LastError == "":
		st.problemReason = ReasonKeysUnavailable
		st.problemMessage = fmt.Sprintf("fetching the signing keys of the directory from %s; its tokens are answered 503 (retry) until then", keys.URL)
	case keys.Keys == 0 && keys.Held > 0:
		st.problemReason = ReasonKeysUnavailable
		st.problemMessage = fmt.Sprintf("the signing keys fetched from %s at %s are too old to be trusted and no fetch has succeeded since, "+
			"so the directory's tokens are answered 503 (retry): %s", keys.URL, keys.FetchedAt.UTC().Format(time.RFC3339), keys.LastError)
	case keys.Keys == 0:
		st.problemReason = ReasonKeysUnavailable
		st.problemMessage = fmt.Sprintf("no signing key of the directory could be fetched from %s, so its tokens are answered 503 (retry): %s",
			keys.URL, keys.LastError)
	case keys.LastError != "":
		st.entraMessage = fmt.Sprintf("%s; the last refresh of the signing keys failed at %s (%s), the %d keys fetched at %s stay in use",
			accepted, keys.FailedAt.UTC().Format(time.RFC3339), keys.LastError, keys.Keys, keys.FetchedAt.UTC().Format(time.RFC3339))
	default:
		st.entraMessage = fmt.Sprintf("%s; %d signing keys from %s", accepted, keys.Keys, keys.URL)
	}
	return st, nil
}
