// Package controllers holds the operator's reconcilers.
package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// Keys and annotations of a generated Secret.
//
// Status, which only the operator writes (the status subresource), is the
// one record of which tokens are valid: the Authenticator reads status, and
// the controller never takes token state from a Secret. The generated Secret
// holds the current token's plaintext and mirrors its state in annotations
// for people; annotations that disagree with status are reported and
// rewritten from status, and a token in the Secret that status does not name
// (a hand edit, a restored backup) is never accepted. The previous token
// itself is not kept anywhere: replicas authenticate against fingerprints,
// so no second plaintext copy of a credential being retired exists.
//
// Writing a new token takes three steps so that an interrupted write is told
// apart from a token somebody else wrote: status.pending names the new token,
// the Secret is written, then status makes it current. A failed status patch
// after the Secret write is completed by the next reconcile, never rotated
// again.
const (
	SecretKeyToken    = "token"
	SecretKeyEndpoint = "endpoint"

	annFingerprint         = "scim.helpdesk.dev/fingerprint"
	annIssuedAt            = "scim.helpdesk.dev/issued-at"
	annPreviousFingerprint = "scim.helpdesk.dev/previous-fingerprint"
	annPreviousValidUntil  = "scim.helpdesk.dev/previous-valid-until"
	// annLegacyRotationRequest was written by earlier versions; rotation
	// requests are kept in status only, and it is removed on the next write.
	annLegacyRotationRequest = "scim.helpdesk.dev/rotation-request"

	generatedSecretSuffix = "-token"
	indexSecretRefName    = "spec.secretRef.name" //nolint:gosec // a field path, not a credential
	controllerName        = "scimtoken-controller"

	// defaultOverlap applies to on-demand rotations of a ScimToken without
	// spec.rotation (the CRD defaults spec.rotation.overlap to the same).
	defaultOverlap = 24 * time.Hour
	// problemRequeue re-checks a token that cannot be accepted; watches
	// usually notice the fix sooner.
	problemRequeue = time.Minute
	// maxEarlierRequests bounds status.earlierRotationRequests.
	maxEarlierRequests = 10
	// maxRequestLength is the longest rotation request kept as it is;
	// longer ones are kept as their SHA-256.
	maxRequestLength = 63
)

// tokenStateAnnotations are the annotations that mirror status on a
// generated Secret.
var tokenStateAnnotations = []string{annFingerprint, annIssuedAt, annPreviousFingerprint, annPreviousValidUntil}

// errCacheBehind stops a reconcile that would judge or write from a cached
// ScimToken or Secret older than the API server's: the two caches lag
// independently behind the operator's own writes.
var errCacheBehind = errors.New("the cache is behind the API server")

// Reasons of the conditions, and of events.
const (
	ReasonIssued             = "Issued"
	ReasonAdopted            = "Adopted"
	ReasonInactive           = "Inactive"
	ReasonSecretMissing      = "SecretMissing"
	ReasonTokenMissing       = "TokenMissing"
	ReasonTokenTooShort      = "TokenTooShort"
	ReasonSecretConflict     = "SecretConflict"
	ReasonSecretNotAdoptable = "SecretNotAdoptable"
	ReasonUnexpectedToken    = "UnexpectedToken"
	ReasonForgedTokenState   = "ForgedTokenState"
	ReasonSecretMatches      = "SecretMatchesStatus"
	ReasonNoPreviousToken    = "NoPreviousToken"
	ReasonPreviousIdle       = "PreviousTokenNotInUse"
	ReasonPreviousInUse      = "PreviousTokenInUse"
	ReasonOverlapRunning     = "OverlapRunning"
	ReasonNoRotationWaiting  = "NoRotationWaiting"

	EventRotated          = "Rotated"
	EventRevoked          = "Revoked"
	EventPreviousRevoked  = "PreviousTokenRevoked"
	EventSecretReissued   = "SecretReissued"
	EventSecretRepaired   = "SecretRepaired"
	EventWriteCompleted   = "InterruptedWriteCompleted"
	EventAdoptedChanged   = "AdoptedTokenChanged"
	EventRotationIgnored  = "RotationNotSupported"
	EventRotationRepeated = "RotationRequestRepeated"
	EventRotationDeferred = "RotationDeferred"
	EventActivated        = "Activated"
	EventDeactivated      = "Deactivated"
	EventReconcileFailed  = "ReconcileFailed"
	EventPreviousInUseMsg = "PreviousTokenInUse"
)

// ScimTokenReconciler issues, rotates, adopts and revokes the bearer tokens
// of ScimTokens. It runs on the leader only; authentication itself
// (tokens.Authenticator) runs on every replica from the cache.
type ScimTokenReconciler struct {
	client.Client
	// APIReader reads around the cache to confirm a mismatch between a
	// generated Secret and status before acting on it. It defaults to
	// mgr.GetAPIReader().
	APIReader client.Reader
	Scheme    *runtime.Scheme
	// Recorder defaults to mgr.GetEventRecorder("scimtoken-controller").
	Recorder events.EventRecorder
	// Clock defaults to the real clock; tests inject a fake one.
	Clock clock.PassiveClock
	// EndpointBaseURL is the public SCIM base URL, the same for every
	// tenant (the token identifies the tenant).
	EndpointBaseURL string
	// Namespaces are the tenant namespaces whose Secrets this controller
	// may manage (--token-namespaces); a ScimToken elsewhere is not Ready
	// with reason NamespaceNotServed and its Secrets are never touched.
	// Empty: every namespace.
	Namespaces []string
	// EntraAllowed enables spec.entraIssued (--allow-entra-issued-tokens);
	// without it such a ScimToken accepts nothing.
	EntraAllowed bool
	// Fingerprints keys the fingerprints written to status (required: the
	// installation key's fingerprint subkey, the same on every replica).
	Fingerprints tokens.Fingerprinter
	// AdoptableSecrets reads the Secrets labelled adoptable, through a
	// cache of its own (the manager's cache holds only the Secrets this
	// controller generated). SetupWithManager makes it.
	AdoptableSecrets client.Reader
	// EntraKeys reports the signing keys of the directories named by
	// spec.entraIssued (condition KeysUnavailable); normally the
	// *tokens.EntraKeys the Authenticator checks tokens with. Defaults to
	// one of its own.
	EntraKeys EntraKeyChecker
}

// ReasonNamespaceNotServed is the reason when the ScimToken's namespace is
// not one of the controller's tenant namespaces.
const ReasonNamespaceNotServed = "NamespaceNotServed"

// GeneratedSecretSelector selects the Secrets this controller generates;
// the manager's Secret cache should be limited to it (operator.New does),
// so that the leader holds no other Secret of the cluster in memory.
func GeneratedSecretSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{scimv1.LabelManagedBy: scimv1.ManagerName})
}

// serves reports whether namespace is one of the tenant namespaces.
func (r *ScimTokenReconciler) serves(namespace string) bool {
	return len(r.Namespaces) == 0 || slices.Contains(r.Namespaces, namespace)
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens,verbs=get;list;watch;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens/status,verbs=get;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens/finalizers,verbs=update,roleName=controller-role
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete,roleName=token-secrets
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch,roleName=controller-role
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get,roleName=controller-role

// SetupWithManager registers the controller and its Secret index.
func (r *ScimTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if !r.Fingerprints.Keyed() {
		return errors.New("the ScimToken controller needs a keyed Fingerprinter (the installation key's fingerprint subkey)")
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(controllerName)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.EntraKeys == nil {
		r.EntraKeys = tokens.NewEntraKeys(tokens.EntraOptions{Log: mgr.GetLogger().WithName("entra-keys")})
	}
	// Adopted Secrets carry no owner reference or label of ours: find the
	// ScimTokens that reference a changed Secret through this index.
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &scimv1.ScimToken{}, indexSecretRefName,
		func(obj client.Object) []string {
			t, ok := obj.(*scimv1.ScimToken)
			if !ok || t.Spec.SecretRef == nil {
				return nil
			}
			return []string{t.Spec.SecretRef.Name}
		}); err != nil {
		return fmt.Errorf("indexing ScimTokens by %s: %w", indexSecretRefName, err)
	}
	// Adopted Secrets are watched through a cache of their own that holds
	// only Secrets labelled adoptable: one selector cannot say "generated
	// or adoptable", and no other Secret of a namespace is ever held.
	adoptOpts := cache.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Label: labels.SelectorFromSet(labels.Set{scimv1.LabelAdoptable: "true"})}}}
	if len(r.Namespaces) > 0 {
		adoptOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range r.Namespaces {
			adoptOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	adoptCache, err := cache.New(mgr.GetConfig(), adoptOpts)
	if err != nil {
		return fmt.Errorf("creating the cache of adoptable Secrets: %w", err)
	}
	if err := mgr.Add(adoptCache); err != nil {
		return err
	}
	if r.AdoptableSecrets == nil {
		r.AdoptableSecrets = adoptCache
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("scimtoken").
		For(&scimv1.ScimToken{}).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.scimTokensForSecret)).
		WatchesRawSource(source.Kind(adoptCache, &corev1.Secret{},
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *corev1.Secret) []reconcile.Request {
				return r.scimTokensForSecret(ctx, s)
			}))).
		Complete(r)
	if err != nil {
		return fmt.Errorf("creating the ScimToken controller: %w", err)
	}
	return nil
}

// scimTokensForSecret maps a Secret to the ScimTokens that adopt it, and to
// the ScimToken named by its label (a generated Secret whose owner
// reference was removed by hand).
func (r *ScimTokenReconciler) scimTokensForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	if l := obj.GetLabels(); l[scimv1.LabelManagedBy] == scimv1.ManagerName && l[scimv1.LabelToken] != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: l[scimv1.LabelToken]}})
	}
	var list scimv1.ScimTokenList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexSecretRefName: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ScimTokens that reference a Secret", "secret", obj.GetName())
		return reqs
	}
	for _, t := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&t)})
	}
	return reqs
}

// tokenState is what a reconcile decided about the token; computeStatus
// turns it into status. It holds fingerprints only, never a token.
type tokenState struct {
	secretName          string
	adopted             bool
	fingerprint         string
	issuedAt            time.Time
	previousFingerprint string
	previousValidUntil  time.Time
	rotationRequest     string
	earlierRequests     []string

	// problemReason is set when the token in the Secret is not accepted
	// (the tokens status names may still be).
	problemReason, problemMessage string
	// entraTenantID is set in the mode spec.entraIssued, and entraMessage
	// says what Ready does.
	entraTenantID, entraMessage string
	// tamperReason is set when the generated Secret was found edited
	// outside the operator.
	tamperReason, tamperMessage string
	// deferredUntil is set when a due rotation waits for the overlap to end.
	deferredUntil time.Time
	deferredWhy   string
	// afterStatus are events to record once status is written.
	afterStatus []note
	// recheckAfter, when set, is when to look again (a key fetch runs).
	recheckAfter time.Duration
}

// note is an event to record once the write it describes succeeded.
type note struct {
	eventType, reason, action, message string
}

// Reconcile brings one ScimToken's Secret and status in line with its spec.
func (r *ScimTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	tok := &scimv1.ScimToken{}
	if err := r.Get(ctx, req.NamespacedName, tok); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !r.serves(tok.Namespace) {
		return ctrl.Result{}, r.notServed(ctx, tok)
	}
	if !tok.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, tok)
	}

	// The finalizer comes first so that no token exists that a deletion
	// could miss; the patch triggers the next reconcile.
	if added, err := addFinalizer(ctx, r.Client, tok, scimv1.FinalizerToken); added || err != nil {
		return ctrl.Result{}, err
	}

	snapshot := snapshotStatus(tok)
	// base follows what status holds on the server (announcePending
	// updates it), so the final patch carries only what is new.
	base := snapshot.before.(*scimv1.ScimToken)
	now := r.Clock.Now().UTC().Truncate(time.Second)
	var st *tokenState
	defer func() {
		r.computeStatus(tok, st, now, retErr)
		r.recordTransitions(base, tok)
		if retErr != nil {
			r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, EventReconcileFailed, "Reconcile", "%s", retErr.Error())
		}
		if err := snapshot.patch(ctx, r.Client, tok); err != nil {
			retErr = errors.Join(retErr, err)
		} else if st != nil {
			r.emit(ctx, tok, st.afterStatus)
		}
	}()

	var err error
	if tok.Spec.EntraIssued != nil {
		st, err = r.reconcileEntra(ctx, tok)
	} else if tok.Spec.SecretRef != nil {
		st, err = r.reconcileAdopted(ctx, tok, now)
	} else {
		st, err = r.reconcileGenerated(ctx, base, tok, now)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || errors.Is(err, errCacheBehind) {
			// The cache lags behind our own write; try again shortly.
			log.V(1).Info("the cache is behind, retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: soonest(requeueAfter(tok, st, now), silenceRequeue(tok, st, now))}, nil
}

// notServed handles a ScimToken outside the tenant namespaces: no token is
// accepted (status names none) and its Secrets are never touched, since
// this controller may not (the token-secrets role is not bound there).
func (r *ScimTokenReconciler) notServed(ctx context.Context, tok *scimv1.ScimToken) error {
	if !tok.DeletionTimestamp.IsZero() {
		return removeFinalizer(ctx, r.Client, tok, scimv1.FinalizerToken)
	}
	snapshot := snapshotStatus(tok)
	s := &tok.Status
	s.Fingerprint, s.PreviousFingerprint, s.IssuedAt, s.PreviousValidUntil, s.NextRotationAt = "", "", nil, nil, nil
	s.Pending, s.Endpoint, s.EntraTenantID = nil, r.EndpointBaseURL, ""
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: scimv1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: ReasonNamespaceNotServed, ObservedGeneration: tok.Generation,
		Message: fmt.Sprintf("the operator manages token Secrets only in the namespaces %s (--token-namespaces, the chart's tenantNamespaces): "+
			"no token is accepted here; add %s to that list", strings.Join(r.Namespaces, ", "), tok.Namespace)})
	s.ObservedGeneration = tok.Generation
	return snapshot.patch(ctx, r.Client, tok)
}

// reconcileDelete revokes the tokens: the Authenticator already refuses a
// ScimToken being deleted; deleting the generated Secret removes the
// plaintext too (garbage collection would, but later and silently).
func (r *ScimTokenReconciler) reconcileDelete(ctx context.Context, tok *scimv1.ScimToken) error {
	if !controllerutil.ContainsFinalizer(tok, scimv1.FinalizerToken) {
		return nil
	}
	msg := fmt.Sprintf("Revoked: the adopted token is no longer accepted; Secret %s is left untouched", secretRefName(tok))
	if tok.Spec.SecretRef == nil {
		deleted, err := r.deleteGeneratedSecret(ctx, tok)
		if err != nil {
			return err
		}
		msg = "Revoked: the token is no longer accepted"
		if deleted != "" {
			msg += "; deleted Secret " + deleted
		}
	}
	ctrl.LoggerFrom(ctx).Info("revoked token", "fingerprint", tokens.ShortFingerprint(tok.Status.Fingerprint))
	r.Recorder.Eventf(tok, nil, corev1.EventTypeNormal, EventRevoked, "Revoke", "%s", msg)

	return removeFinalizer(ctx, r.Client, tok, scimv1.FinalizerToken)
}

// deleteGeneratedSecret deletes <name>-token if this ScimToken controls it
// and returns its name ("" if there was none).
func (r *ScimTokenReconciler) deleteGeneratedSecret(ctx context.Context, tok *scimv1.ScimToken) (string, error) {
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: tok.Namespace, Name: generatedSecretName(tok)}
	if err := r.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("reading Secret %s: %w", key.Name, err)
	}
	if !metav1.IsControlledBy(secret, tok) {
		return "", nil
	}
	err := r.Delete(ctx, secret, client.Preconditions{UID: &secret.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("deleting Secret %s: %w", key.Name, err)
	}
	return key.Name, nil
}

// issue creates the generated Secret: the first token, or a new one after
// the Secret was deleted by hand (then the old tokens are revoked: deleting
// a credential is read as wanting it gone).
func (r *ScimTokenReconciler) issue(ctx context.Context, base, tok *scimv1.ScimToken, now time.Time) (*tokenState, error) {
	token, err := tokens.Generate()
	if err != nil {
		return nil, fmt.Errorf("generating a token: %w", err)
	}
	name := generatedSecretName(tok)
	p := &scimv1.PendingToken{Fingerprint: r.Fingerprints.Of(token), IssuedAt: metav1.NewTime(now)}
	// A request already present when the token is issued is satisfied.
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok {
		p.RotationRequest = requestKey(v)
	}
	if err := r.announcePending(ctx, base, tok, p); err != nil {
		return nil, err
	}
	prior := stateFromStatus(tok)
	prior.secretName = name
	st := completePending(prior, p)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
	}
	if err := r.applySecret(tok, secret, st, token); err != nil {
		return nil, err
	}
	if err := r.Create(ctx, secret); err != nil {
		return nil, fmt.Errorf("creating Secret %s: %w", name, err)
	}
	n := note{corev1.EventTypeNormal, ReasonIssued, "Issue", fmt.Sprintf(
		"issued a token (%s) in Secret %s", tokens.ShortFingerprint(st.fingerprint), name)}
	if tok.Status.Fingerprint != "" {
		n = note{corev1.EventTypeWarning, EventSecretReissued, "Reissue", fmt.Sprintf(
			"Secret %s was deleted: issued a new token (%s); the earlier ones are no longer accepted, "+
				"give the new one to the identity provider", name, tokens.ShortFingerprint(st.fingerprint))}
	}
	r.emit(ctx, tok, []note{n})
	return st, nil
}

// confirmFresh returns errCacheBehind unless the API server holds exactly
// the ScimToken and the Secret (nil: none) this reconcile read from the
// cache. A mismatch between the two is judged only on current copies: the
// caches of ScimTokens and Secrets lag independently behind the operator's
// own writes, and a stale pair looks like a tampered Secret.
func (r *ScimTokenReconciler) confirmFresh(ctx context.Context, tok *scimv1.ScimToken, secretName string, secret *corev1.Secret) error {
	live := &scimv1.ScimToken{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(tok), live); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("ScimToken %s is gone: %w", tok.Name, errCacheBehind)
		}
		return fmt.Errorf("reading ScimToken %s from the API server: %w", tok.Name, err)
	}
	if live.ResourceVersion != tok.ResourceVersion {
		return fmt.Errorf("ScimToken %s: %w", tok.Name, errCacheBehind)
	}
	liveSecret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: secretName}, liveSecret)
	switch {
	case apierrors.IsNotFound(err):
		if secret != nil {
			return fmt.Errorf("secret %s: %w", secretName, errCacheBehind)
		}
	case err != nil:
		return fmt.Errorf("reading Secret %s from the API server: %w", secretName, err)
	case secret == nil || liveSecret.ResourceVersion != secret.ResourceVersion:
		return fmt.Errorf("secret %s: %w", secretName, errCacheBehind)
	}
	return nil
}

// announcePending records in status the token about to be written into the
// Secret, so that the next reconcile recognises it if the write lands and
// the status update after it does not. base and tok follow, so the final
// status patch clears it.
func (r *ScimTokenReconciler) announcePending(ctx context.Context, base, tok *scimv1.ScimToken, p *scimv1.PendingToken) error {
	var request any
	if p.RotationRequest != "" {
		request = p.RotationRequest
	}
	// A merge patch merges into an older pending: name every field, null
	// for the absent ones.
	body, err := json.Marshal(map[string]any{"status": map[string]any{"pending": map[string]any{
		"fingerprint":        p.Fingerprint,
		"issuedAt":           p.IssuedAt,
		"previousValidUntil": p.PreviousValidUntil,
		"rotationRequest":    request,
	}}})
	if err != nil {
		return fmt.Errorf("encoding the pending token: %w", err)
	}
	obj := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: tok.Name}}
	if err := r.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("recording the pending token in status: %w", err)
	}
	base.Status.Pending = p.DeepCopy()
	tok.Status.Pending = p.DeepCopy()
	return nil
}

// applySecret writes st and token into secret, with our labels, owner
// reference and the endpoint.
func (r *ScimTokenReconciler) applySecret(tok *scimv1.ScimToken, secret *corev1.Secret, st *tokenState, token string) error {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[scimv1.LabelManagedBy] = scimv1.ManagerName
	secret.Labels[scimv1.LabelToken] = tok.Name
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	want := tokenAnnotations(st)
	for _, k := range tokenStateAnnotations {
		setOrDelete(secret.Annotations, k, want[k])
	}
	delete(secret.Annotations, annLegacyRotationRequest)
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	if string(secret.Data[SecretKeyToken]) != token {
		secret.Data[SecretKeyToken] = []byte(token)
	}
	secret.Data[SecretKeyEndpoint] = []byte(r.EndpointBaseURL)
	if err := controllerutil.SetControllerReference(tok, secret, r.Scheme); err != nil {
		return fmt.Errorf("setting the owner of Secret %s: %w", secret.Name, err)
	}
	return nil
}

// reconcileAdopted reads the token from spec.secretRef, which it never
// writes or deletes, and only from a Secret that opts in to adoption.
func (r *ScimTokenReconciler) reconcileAdopted(ctx context.Context, tok *scimv1.ScimToken, now time.Time) (*tokenState, error) {
	ref := tok.Spec.SecretRef
	key := ref.Key
	if key == "" {
		key = SecretKeyToken
	}
	st := &tokenState{secretName: ref.Name, adopted: true, rotationRequest: tok.Status.RotationRequest,
		earlierRequests: slices.Clone(tok.Status.EarlierRotationRequests)}
	var notes []note

	// A token switched from generated to adopted leaves no generated
	// Secret behind.
	deleted, err := r.deleteGeneratedSecret(ctx, tok)
	if err != nil {
		return nil, err
	}
	if deleted != "" && deleted != ref.Name {
		notes = append(notes, note{corev1.EventTypeNormal, EventRevoked, "Revoke", fmt.Sprintf(
			"deleted the generated Secret %s: the token now comes from Secret %s", deleted, ref.Name)})
	}
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok && !requestHandled(st, v) {
		remember(st, requestKey(v))
		notes = append(notes, note{corev1.EventTypeWarning, EventRotationIgnored, "Rotate", fmt.Sprintf(
			"an adopted token is rotated where Secret %s is managed, not by the operator", ref.Name)})
	}
	defer func() { r.emit(ctx, tok, notes) }()

	secret, err := r.readAdoptedSecret(ctx, tok, st)
	if err != nil {
		return nil, err
	}
	if secret == nil {
		return st, nil // refused: st says why
	}
	raw, ok := secret.Data[key]
	if !ok {
		st.problemReason = ReasonTokenMissing
		st.problemMessage = fmt.Sprintf("Secret %s has no key %q: no token is accepted until it does", ref.Name, key)
		return st, nil
	}
	if n := r.adoptToken(tok, st, tokens.Normalize(string(raw)), key, now); n != nil {
		notes = append(notes, *n)
	}
	return st, nil
}

// readAdoptedSecret reads spec.secretRef, only if it opts in to adoption;
// otherwise it records the problem in st and returns nil. Nothing about
// the value is looked at before the Secret opts in: its fingerprint in
// status would be a hash oracle for any Secret in the namespace, and its
// value a token.
func (r *ScimTokenReconciler) readAdoptedSecret(ctx context.Context, tok *scimv1.ScimToken, st *tokenState) (*corev1.Secret, error) {
	ref := tok.Spec.SecretRef
	secret := &corev1.Secret{}
	if err := r.adoptableReader().Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
		}
		// Not labelled adoptable, or missing: only metadata is needed to
		// tell which, and the value is never read.
		md := &metav1.PartialObjectMetadata{}
		md.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		switch lerr := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}, md); {
		case lerr == nil:
			secret.ObjectMeta = md.ObjectMeta // labels only; adoptable() refuses it below
		case apierrors.IsNotFound(lerr):
			st.problemReason = ReasonSecretMissing
			st.problemMessage = fmt.Sprintf("Secret %s does not exist: no token is accepted until it does", ref.Name)
			return nil, nil
		default:
			return nil, fmt.Errorf("reading Secret %s from the API server: %w", ref.Name, lerr)
		}
	}
	if !adoptable(secret) {
		st.problemReason = ReasonSecretNotAdoptable
		st.problemMessage = fmt.Sprintf("Secret %s does not allow adoption: no token is accepted and nothing of it is read; "+
			"if it is meant for this ScimToken, add the label %s=\"true\" to it "+
			"(kubectl label secret %s -n %s %s=true)",
			ref.Name, scimv1.LabelAdoptable, ref.Name, tok.Namespace, scimv1.LabelAdoptable)
		return nil, nil
	}
	return secret, nil
}

// adoptToken accepts token from the adopted Secret's key into st, and
// says what changed.
func (r *ScimTokenReconciler) adoptToken(tok *scimv1.ScimToken, st *tokenState, token, key string, now time.Time) *note {
	ref := tok.Spec.SecretRef
	if !tokens.Usable(token) {
		st.problemReason = ReasonTokenTooShort
		st.problemMessage = fmt.Sprintf("the token in Secret %s key %q is shorter than %d characters or contains whitespace: "+
			"it is refused; store a longer random token", ref.Name, key, tokens.MinAdoptedLength)
		return nil
	}
	st.fingerprint = r.Fingerprints.Of(token)
	switch {
	case r.Fingerprints.Matches(token, tok.Status.Fingerprint) && tok.Status.IssuedAt != nil:
		// The same token (its status perhaps still in the unkeyed form).
		st.issuedAt = tok.Status.IssuedAt.Time
		return nil
	case tok.Status.Fingerprint == "":
		st.issuedAt = now
		return &note{corev1.EventTypeNormal, ReasonAdopted, "Adopt", fmt.Sprintf(
			"adopted the token (%s) from Secret %s key %q", tokens.ShortFingerprint(st.fingerprint), ref.Name, key)}
	default:
		// Whoever manages the Secret rotated it; the old value stops at
		// once because only they know whether it leaked.
		st.issuedAt = now
		return &note{corev1.EventTypeNormal, EventAdoptedChanged, "Reread", fmt.Sprintf(
			"Secret %s changed: now accepting its token (%s); the previous one (%s) is no longer accepted",
			ref.Name, tokens.ShortFingerprint(st.fingerprint), tokens.ShortFingerprint(tok.Status.Fingerprint))}
	}
}

// secretToken is what the token in a generated Secret is, judged against
// status.
type secretToken int

const (
	// tokenCurrent is the token status names as current.
	tokenCurrent secretToken = iota
	// tokenPending is the token status.pending announced: the operator's
	// own write whose status update did not follow.
	tokenPending
	// tokenUnusable is empty, too short or not a single word.
	tokenUnusable
	// tokenUnexpected is any other value: a hand edit, a restored backup,
	// a copy of another Secret. It is never accepted.
	tokenUnexpected
)

// judgeToken is the check every generated Secret passes: only a token
// status names is ever taken from it.
func judgeToken(f tokens.Fingerprinter, token string, s *scimv1.ScimTokenStatus) secretToken {
	if !tokens.Usable(token) {
		return tokenUnusable
	}
	switch {
	case f.Matches(token, s.Fingerprint):
		return tokenCurrent
	case s.Pending != nil && f.Matches(token, s.Pending.Fingerprint):
		return tokenPending
	}
	return tokenUnexpected
}

// tokenAnnotations are the annotations that mirror st on the Secret.
func tokenAnnotations(st *tokenState) map[string]string {
	a := map[string]string{annFingerprint: st.fingerprint, annIssuedAt: formatTime(st.issuedAt)}
	if st.previousFingerprint != "" {
		a[annPreviousFingerprint] = st.previousFingerprint
		a[annPreviousValidUntil] = formatTime(st.previousValidUntil)
	}
	return a
}

// annotationMismatch compares a Secret's token-state annotations with the
// ones status implies: forged lists those that claim something else
// (another fingerprint, a later expiry, a previous token status does not
// have); missing says some are absent, which claims nothing.
func annotationMismatch(have, want map[string]string) (forged []string, missing bool) {
	for _, k := range tokenStateAnnotations {
		h, ok := have[k]
		switch w := want[k]; {
		case h == w:
		case !ok:
			missing = true
		default:
			forged = append(forged, k)
		}
	}
	return forged, missing
}

// rotationDecision is what rotationDue found.
type rotationDecision struct {
	// why is "on demand" or "on schedule"; "" when no rotation is due.
	why string
	// request is the rotation request to record as handled.
	request string
	// repeated says request was handled before: it does not rotate again.
	repeated bool
}

// decideRotation says whether the token is due for a rotation. A request
// value handled before (A→B→A, a GitOps tool undoing a change) is not a
// new request.
func decideRotation(tok *scimv1.ScimToken, st *tokenState, now time.Time) rotationDecision {
	var d rotationDecision
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok && !requestHandled(st, v) {
		d.request = requestKey(v)
		if slices.Contains(st.earlierRequests, d.request) {
			d.repeated = true
		} else {
			d.why = "on demand"
		}
	}
	if d.why == "" && tok.Spec.Rotation != nil && !now.Before(st.issuedAt.Add(tok.Spec.Rotation.Interval.Duration)) {
		d.why = "on schedule"
	}
	return d
}

// requestHandled says whether v is the rotation request last handled
// (earlier versions kept long values as they were).
func requestHandled(st *tokenState, v string) bool {
	return st.rotationRequest == requestKey(v) || st.rotationRequest == v
}

// requestKey is how a rotation request is kept in status: as it is, or
// hashed when long, so that status stays small whatever the annotation
// holds. (It is not a token: tokens.Fingerprint is for tokens.)
func requestKey(v string) string {
	if len(v) <= maxRequestLength {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// remember records key as the rotation request last handled, keeping the
// earlier ones (newest first, bounded).
func remember(st *tokenState, key string) {
	if key == "" || key == st.rotationRequest {
		return
	}
	earlier := make([]string, 0, maxEarlierRequests+1)
	if st.rotationRequest != "" {
		earlier = append(earlier, st.rotationRequest)
	}
	for _, e := range st.earlierRequests {
		if e != key && e != st.rotationRequest {
			earlier = append(earlier, e)
		}
	}
	if len(earlier) > maxEarlierRequests {
		earlier = earlier[:maxEarlierRequests]
	}
	st.rotationRequest, st.earlierRequests = key, earlier
}

// overlapOf is how long a replaced token keeps working.
func overlapOf(tok *scimv1.ScimToken) time.Duration {
	if tok.Spec.Rotation != nil && tok.Spec.Rotation.Overlap != nil {
		return tok.Spec.Rotation.Overlap.Duration
	}
	return defaultOverlap
}

// endOverlap caps the previous token's lifetime at its rotation time (the
// current token's issuedAt) plus the overlap spec gives now, and forgets it
// once that has passed. Shortening the overlap, to 0s after a leak, ends a
// running one.
func endOverlap(tok *scimv1.ScimToken, st *tokenState, now time.Time) []note {
	if st.previousFingerprint == "" {
		return nil
	}
	short := tokens.ShortFingerprint(st.previousFingerprint)
	limit := st.issuedAt.Add(overlapOf(tok))
	capped := st.previousValidUntil.After(limit)
	if capped {
		st.previousValidUntil = limit
	}
	if now.Before(st.previousValidUntil) {
		if !capped {
			return nil
		}
		return []note{{corev1.EventTypeNormal, EventPreviousRevoked, "Shorten", fmt.Sprintf(
			"the previous token (%s) now stops working at %s: the overlap was shortened to %s",
			short, limit.Format(time.RFC3339), overlapOf(tok))}}
	}
	st.previousFingerprint, st.previousValidUntil = "", time.Time{}
	msg := fmt.Sprintf("the previous token (%s) stopped working: its overlap ended", short)
	if capped {
		msg = fmt.Sprintf("the previous token (%s) stopped working: the overlap was shortened to %s", short, overlapOf(tok))
	}
	return []note{{corev1.EventTypeNormal, EventPreviousRevoked, "Revoke", msg}}
}

// rotationPending is the pending token of a rotation: the current token
// stays valid for the overlap (none with an overlap of 0).
func rotationPending(tok *scimv1.ScimToken, st *tokenState, fp, request string, now time.Time) *scimv1.PendingToken {
	p := &scimv1.PendingToken{Fingerprint: fp, IssuedAt: metav1.NewTime(now), RotationRequest: request}
	if overlap := overlapOf(tok); overlap > 0 && st.fingerprint != "" {
		until := metav1.NewTime(now.Add(overlap))
		p.PreviousValidUntil = &until
	}
	return p
}

// completePending is the state once p is current, st the state before.
// The same function serves a write that completes at once and one the
// next reconcile finds interrupted, so both end in the same status.
func completePending(st *tokenState, p *scimv1.PendingToken) *tokenState {
	next := &tokenState{
		secretName:      st.secretName,
		fingerprint:     p.Fingerprint,
		issuedAt:        p.IssuedAt.UTC(),
		rotationRequest: st.rotationRequest,
		earlierRequests: st.earlierRequests,
	}
	if p.PreviousValidUntil != nil && st.fingerprint != "" && st.fingerprint != p.Fingerprint {
		next.previousFingerprint, next.previousValidUntil = st.fingerprint, p.PreviousValidUntil.UTC()
	}
	remember(next, p.RotationRequest)
	return next
}

// rotationNote describes a rotation from st to p.
func rotationNote(st *tokenState, p *scimv1.PendingToken, why string) note {
	newFP, old := tokens.ShortFingerprint(p.Fingerprint), tokens.ShortFingerprint(st.fingerprint)
	var msg string
	switch {
	case st.fingerprint == "":
		msg = fmt.Sprintf("rotated the token %s: new token %s; no earlier token was valid", why, newFP)
	case p.PreviousValidUntil == nil:
		msg = fmt.Sprintf("rotated the token %s: new token %s; the previous one (%s) was revoked at once", why, newFP, old)
	default:
		msg = fmt.Sprintf("rotated the token %s: new token %s; the previous one (%s) keeps working until %s",
			why, newFP, old, p.PreviousValidUntil.UTC().Format(time.RFC3339))
	}
	return note{corev1.EventTypeNormal, EventRotated, "Rotate", msg}
}

// adoptable says whether a Secret opted in to adoption.
func adoptable(s *corev1.Secret) bool { return s.Labels[scimv1.LabelAdoptable] == "true" }

// adoptableReader reads adoptable Secrets: their own cache, else (a
// reconciler built without SetupWithManager) the client.
func (r *ScimTokenReconciler) adoptableReader() client.Reader {
	if r.AdoptableSecrets != nil {
		return r.AdoptableSecrets
	}
	return r.Client
}

// stillAccepted says which of status's tokens still work, for messages.
func stillAccepted(st *tokenState) string {
	switch {
	case st.fingerprint == "":
		return "No token is accepted."
	case st.previousFingerprint == "":
		return fmt.Sprintf("The current token (%s) is still accepted.", tokens.ShortFingerprint(st.fingerprint))
	}
	return fmt.Sprintf("The current token (%s) is still accepted, and the previous one (%s) until %s.",
		tokens.ShortFingerprint(st.fingerprint), tokens.ShortFingerprint(st.previousFingerprint),
		st.previousValidUntil.UTC().Format(time.RFC3339))
}

func notControlledMessage(name string, st *tokenState) string {
	return fmt.Sprintf("Secret %s exists but is not controlled by this ScimToken (no controller owner reference with its UID): "+
		"the operator neither uses nor changes it and does not accept its token. %s "+
		"Delete it to have a new token issued in it (the earlier ones then stop working), or adopt it with spec.secretRef.",
		name, stillAccepted(st))
}

func unexpectedMessage(name string, st *tokenState) string {
	return fmt.Sprintf("Secret %s holds a token the operator did not issue (a hand edit or a restored backup?): "+
		"it is not accepted. %s Rotate (annotate with %s) to write a new token into the Secret and keep the current one "+
		"for the overlap, or delete the Secret to issue a new one and revoke the earlier ones at once.",
		name, stillAccepted(st), scimv1.AnnotationRotate)
}

// computeStatus is the one place status is derived, from what this
// reconcile observed. With nothing observed (an early error) the status
// stays as it was, apart from observedGeneration not advancing.
func (r *ScimTokenReconciler) computeStatus(tok *scimv1.ScimToken, st *tokenState, now time.Time, reconcileErr error) {
	if st == nil {
		return
	}
	s := &tok.Status
	replaced := st.fingerprint != "" && st.fingerprint != s.Fingerprint
	s.Endpoint = r.EndpointBaseURL
	s.SecretName = st.secretName

	// Usage times follow their token through a rotation.
	if st.fingerprint != s.Fingerprint {
		if s.Fingerprint != "" && st.previousFingerprint == s.Fingerprint {
			s.PreviousLastUsedAt = s.LastUsedAt
		} else if st.previousFingerprint != s.PreviousFingerprint {
			s.PreviousLastUsedAt = nil
		}
		s.LastUsedAt = nil
	}
	if st.previousFingerprint == "" {
		s.PreviousLastUsedAt = nil
	}
	s.Fingerprint = st.fingerprint
	s.IssuedAt = timeOrNil(st.issuedAt)
	s.PreviousFingerprint = st.previousFingerprint
	s.PreviousValidUntil = timeOrNil(st.previousValidUntil)
	s.NextRotationAt = nil
	if tok.Spec.Rotation != nil && !st.adopted && st.fingerprint != "" {
		s.NextRotationAt = timeOrNil(st.issuedAt.Add(tok.Spec.Rotation.Interval.Duration))
	}
	s.RotationRequest = st.rotationRequest
	s.EarlierRotationRequests = slices.Clone(st.earlierRequests)
	s.Pending = nil
	s.EntraTenantID = st.entraTenantID

	ready := metav1.Condition{Type: scimv1.ConditionReady, ObservedGeneration: tok.Generation}
	switch {
	case st.problemReason != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, st.problemReason, st.problemMessage
	case !tok.IsActive():
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonInactive
		ready.Message = "spec.active is false: the token is refused; set it to true to accept it again"
	case st.entraTenantID != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, ReasonEntraIssued, st.entraMessage
	case st.adopted:
		ready.Status, ready.Reason = metav1.ConditionTrue, ReasonAdopted
		ready.Message = fmt.Sprintf("the token from Secret %s (%s) is accepted at %s",
			st.secretName, tokens.ShortFingerprint(st.fingerprint), r.EndpointBaseURL)
	default:
		ready.Status, ready.Reason = metav1.ConditionTrue, ReasonIssued
		ready.Message = fmt.Sprintf("the token in Secret %s (%s) is accepted at %s",
			st.secretName, tokens.ShortFingerprint(st.fingerprint), r.EndpointBaseURL)
	}
	meta.SetStatusCondition(&s.Conditions, ready)
	meta.SetStatusCondition(&s.Conditions, previousInUse(tok, st))
	meta.SetStatusCondition(&s.Conditions, rotationDeferred(tok, st, now))
	silent, _ := identityProviderSilent(tok, st, now)
	meta.SetStatusCondition(&s.Conditions, silent)
	if st.adopted || st.entraTenantID != "" {
		meta.RemoveStatusCondition(&s.Conditions, scimv1.ConditionSecretTampered)
	} else if c, ok := secretTampered(tok, st, replaced, now); ok {
		meta.SetStatusCondition(&s.Conditions, c)
	}

	if reconcileErr == nil {
		s.ObservedGeneration = tok.Generation
	}
}

// secretTampered is the SecretTampered condition: True from a finding
// until a new token is current (whoever edited the Secret could read the
// token in it). ok is false when the condition stays as it is.
func secretTampered(tok *scimv1.ScimToken, st *tokenState, replaced bool, now time.Time) (metav1.Condition, bool) {
	c := metav1.Condition{Type: scimv1.ConditionSecretTampered, ObservedGeneration: tok.Generation,
		LastTransitionTime: metav1.NewTime(now)}
	old := meta.FindStatusCondition(tok.Status.Conditions, scimv1.ConditionSecretTampered)
	switch {
	case st.tamperReason != "" && !replaced:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, st.tamperReason, st.tamperMessage
	case replaced || old == nil || old.Status != metav1.ConditionTrue:
		c.Status, c.Reason = metav1.ConditionFalse, ReasonSecretMatches
		c.Message = "the generated Secret agrees with status since the current token was issued"
	default:
		return c, false
	}
	return c, true
}

// rotationDeferred is the RotationDeferred condition.
func rotationDeferred(tok *scimv1.ScimToken, st *tokenState, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: scimv1.ConditionRotationDeferred, ObservedGeneration: tok.Generation,
		LastTransitionTime: metav1.NewTime(now)}
	if st.deferredUntil.IsZero() {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonNoRotationWaiting, "no rotation is waiting"
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, ReasonOverlapRunning
	c.Message = fmt.Sprintf("a rotation %s waits until the previous token (%s) stops working at %s: rotating now would revoke "+
		"a token the identity provider may still use; to rotate at once, end the overlap with spec.rotation.overlap: 0s",
		st.deferredWhy, tokens.ShortFingerprint(st.previousFingerprint), st.deferredUntil.UTC().Format(time.RFC3339))
	return c
}

// previousInUse warns when the previous token was used in the final
// quarter of its overlap: the identity provider still holds it and will
// fail once it stops working.
func previousInUse(tok *scimv1.ScimToken, st *tokenState) metav1.Condition {
	c := metav1.Condition{Type: scimv1.ConditionPreviousTokenInUse, ObservedGeneration: tok.Generation}
	if st.previousFingerprint == "" {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonNoPreviousToken, "no rotation overlap is running"
		return c
	}
	until := st.previousValidUntil
	windowStart := until.Add(-until.Sub(st.issuedAt) / 4)
	used := tok.Status.PreviousLastUsedAt
	if used != nil && !used.Time.Before(windowStart) {
		c.Status, c.Reason = metav1.ConditionTrue, ReasonPreviousInUse
		c.Message = fmt.Sprintf("the previous token (%s) was used at %s and stops working at %s: "+
			"give the identity provider the token from Secret %s",
			tokens.ShortFingerprint(st.previousFingerprint), used.UTC().Format(time.RFC3339),
			until.UTC().Format(time.RFC3339), st.secretName)
		return c
	}
	c.Status, c.Reason = metav1.ConditionFalse, ReasonPreviousIdle
	c.Message = fmt.Sprintf("the previous token (%s) works until %s and was not used in the final quarter of its overlap",
		tokens.ShortFingerprint(st.previousFingerprint), until.UTC().Format(time.RFC3339))
	return c
}

// recordTransitions records an event when a condition changes in a way a
// person should hear about: a problem, (de)activation, the previous token
// still in use, a rotation that waits.
func (r *ScimTokenReconciler) recordTransitions(before, after *scimv1.ScimToken) {
	oldReady := meta.FindStatusCondition(before.Status.Conditions, scimv1.ConditionReady)
	newReady := meta.FindStatusCondition(after.Status.Conditions, scimv1.ConditionReady)
	if newReady != nil && (oldReady == nil || oldReady.Reason != newReady.Reason) {
		switch {
		case newReady.Reason == ReasonInactive:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, EventDeactivated, "Deactivate", "%s", newReady.Message)
		case newReady.Status == metav1.ConditionFalse:
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, newReady.Reason, "Check", "%s", newReady.Message)
		case oldReady != nil && oldReady.Reason == ReasonInactive:
			r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, EventActivated, "Activate", "spec.active is true: the token is accepted again")
		}
	}
	if becameTrue(before, after, scimv1.ConditionPreviousTokenInUse) {
		c := meta.FindStatusCondition(after.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventPreviousInUseMsg, "Check", "%s", c.Message)
	}
	if becameTrue(before, after, scimv1.ConditionIdentityProviderSilent) {
		c := meta.FindStatusCondition(after.Status.Conditions, scimv1.ConditionIdentityProviderSilent)
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, scimv1.ConditionIdentityProviderSilent, "Check", "%s", c.Message)
	}
	if becameTrue(before, after, scimv1.ConditionRotationDeferred) {
		c := meta.FindStatusCondition(after.Status.Conditions, scimv1.ConditionRotationDeferred)
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, EventRotationDeferred, "Rotate", "%s", c.Message)
	}
}

func becameTrue(before, after *scimv1.ScimToken, conditionType string) bool {
	oldC := meta.FindStatusCondition(before.Status.Conditions, conditionType)
	newC := meta.FindStatusCondition(after.Status.Conditions, conditionType)
	return newC != nil && newC.Status == metav1.ConditionTrue && (oldC == nil || oldC.Status != metav1.ConditionTrue)
}

func (r *ScimTokenReconciler) emit(ctx context.Context, tok *scimv1.ScimToken, notes []note) {
	log := ctrl.LoggerFrom(ctx)
	for _, n := range notes {
		log.Info(n.message, "reason", n.reason)
		r.Recorder.Eventf(tok, nil, n.eventType, n.reason, n.action, "%s", n.message)
	}
}

// requeueAfter wakes the controller for the next rotation or the end of an
// overlap; watches cover everything else.
func requeueAfter(tok *scimv1.ScimToken, st *tokenState, now time.Time) time.Duration {
	// Times are kept to the second: wake just after, not just before.
	until := func(t time.Time) time.Duration { return max(t.Sub(now), 0) + time.Second }
	if st.recheckAfter > 0 {
		return st.recheckAfter
	}
	if st.problemReason != "" {
		// No rotation happens while the Secret is refused; an overlap
		// still ends on time.
		if st.previousFingerprint != "" {
			return min(problemRequeue, until(st.previousValidUntil))
		}
		return problemRequeue
	}
	if st.entraTenantID != "" {
		return entraRecheck
	}
	var next time.Time
	if tok.Spec.Rotation != nil && !st.adopted {
		next = st.issuedAt.Add(tok.Spec.Rotation.Interval.Duration)
	}
	if st.previousFingerprint != "" && (next.IsZero() || st.previousValidUntil.Before(next)) {
		next = st.previousValidUntil
	}
	if next.IsZero() {
		return 0
	}
	return until(next)
}

// stateFromStatus is the token state status records: the only record the
// controller trusts.
func stateFromStatus(tok *scimv1.ScimToken) *tokenState {
	s := tok.Status
	st := &tokenState{
		secretName:          s.SecretName,
		fingerprint:         s.Fingerprint,
		previousFingerprint: s.PreviousFingerprint,
		rotationRequest:     s.RotationRequest,
		earlierRequests:     slices.Clone(s.EarlierRotationRequests),
	}
	if s.IssuedAt != nil {
		st.issuedAt = s.IssuedAt.UTC()
	}
	if s.PreviousValidUntil != nil {
		st.previousValidUntil = s.PreviousValidUntil.UTC()
	} else {
		st.previousFingerprint = ""
	}
	return st
}

func generatedSecretName(tok *scimv1.ScimToken) string { return tok.Name + generatedSecretSuffix }

func secretRefName(tok *scimv1.ScimToken) string {
	if tok.Spec.SecretRef == nil {
		return ""
	}
	return tok.Spec.SecretRef.Name
}

func setOrDelete(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC())
	return &mt
}
