// Package controllers holds the operator's reconcilers.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// Keys and annotations of a generated Secret.
//
// The generated Secret is the source of truth for its token's state: the
// token, its fingerprint, when it was issued, the previous fingerprint and
// when it stops working, and the rotation request acted on are written in
// one Update, so a rotation is atomic and a failed status patch cannot make
// the controller rotate twice. Status mirrors these annotations. The
// previous token itself is not kept anywhere: replicas authenticate
// against fingerprints (status, via the informer), so a restarted replica
// accepts the previous token again as soon as it has listed ScimTokens, and
// no second plaintext copy of a credential that is being retired exists.
const (
	SecretKeyToken    = "token"
	SecretKeyEndpoint = "endpoint"

	annFingerprint         = "scim.helpdesk.dev/fingerprint"
	annIssuedAt            = "scim.helpdesk.dev/issued-at"
	annPreviousFingerprint = "scim.helpdesk.dev/previous-fingerprint"
	annPreviousValidUntil  = "scim.helpdesk.dev/previous-valid-until"
	annRotationRequest     = "scim.helpdesk.dev/rotation-request"

	generatedSecretSuffix = "-token"
	indexSecretRefName    = "spec.secretRef.name" //nolint:gosec // a field path, not a credential
	controllerName        = "scimtoken-controller"

	// defaultOverlap applies to on-demand rotations of a ScimToken without
	// spec.rotation (the CRD defaults spec.rotation.overlap to the same).
	defaultOverlap = 24 * time.Hour
	// problemRequeue re-checks a token that cannot be accepted; watches
	// usually notice the fix sooner.
	problemRequeue = time.Minute
)

// Reasons of the Ready and PreviousTokenInUse conditions, and of events.
const (
	ReasonIssued             = "Issued"
	ReasonAdopted            = "Adopted"
	ReasonInactive           = "Inactive"
	ReasonSecretMissing      = "SecretMissing"
	ReasonTokenMissing       = "TokenMissing"
	ReasonTokenTooShort      = "TokenTooShort"
	ReasonSecretConflict     = "SecretConflict"
	ReasonSecretNotAdoptable = "SecretNotAdoptable"
	ReasonNoPreviousToken    = "NoPreviousToken"
	ReasonPreviousIdle       = "PreviousTokenNotInUse"
	ReasonPreviousInUse      = "PreviousTokenInUse"

	EventRotated          = "Rotated"
	EventRevoked          = "Revoked"
	EventPreviousRevoked  = "PreviousTokenRevoked"
	EventSecretReissued   = "SecretReissued"
	EventSecretReread     = "SecretReread"
	EventSecretRepaired   = "SecretRepaired"
	EventAdoptedChanged   = "AdoptedTokenChanged"
	EventRotationIgnored  = "RotationNotSupported"
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
	Scheme *runtime.Scheme
	// Recorder defaults to mgr.GetEventRecorder("scimtoken-controller").
	Recorder events.EventRecorder
	// Clock defaults to the real clock; tests inject a fake one.
	Clock clock.PassiveClock
	// EndpointBaseURL is the public SCIM base URL, the same for every
	// tenant (the token identifies the tenant).
	EndpointBaseURL string
}

// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens,verbs=get;list;watch;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens/status,verbs=get;patch,roleName=controller-role
// +kubebuilder:rbac:groups=scim.helpdesk.dev,resources=scimtokens/finalizers,verbs=update,roleName=controller-role
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete,roleName=token-secrets
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch,roleName=controller-role

// SetupWithManager registers the controller and its Secret index.
func (r *ScimTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(controllerName)
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
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
	err := ctrl.NewControllerManagedBy(mgr).
		Named("scimtoken").
		For(&scimv1.ScimToken{}).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.scimTokensForSecret)).
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

// tokenState is what a reconcile observed about the token; computeStatus
// turns it into status. It holds fingerprints only, never a token.
type tokenState struct {
	secretName          string
	adopted             bool
	fingerprint         string
	issuedAt            time.Time
	previousFingerprint string
	previousValidUntil  time.Time
	rotationRequest     string

	// problemReason is set when the token cannot be accepted.
	problemReason, problemMessage string
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

	if !tok.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, tok)
	}

	// The finalizer comes first so that no token exists that a deletion
	// could miss.
	if !controllerutil.ContainsFinalizer(tok, scimv1.FinalizerToken) {
		patch := client.MergeFrom(tok.DeepCopy())
		controllerutil.AddFinalizer(tok, scimv1.FinalizerToken)
		if err := r.Patch(ctx, tok, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer %s: %w", scimv1.FinalizerToken, err)
		}
		return ctrl.Result{}, nil // the patch triggers the next reconcile
	}

	base := tok.DeepCopy()
	now := r.Clock.Now().UTC().Truncate(time.Second)
	var st *tokenState
	defer func() {
		r.computeStatus(tok, st, now, retErr)
		r.recordTransitions(base, tok)
		if retErr != nil {
			r.Recorder.Eventf(tok, nil, corev1.EventTypeWarning, EventReconcileFailed, "Reconcile", "%s", retErr.Error())
		}
		if err := r.patchStatus(ctx, base, tok); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	var err error
	if tok.Spec.SecretRef != nil {
		st, err = r.reconcileAdopted(ctx, tok, now)
	} else {
		st, err = r.reconcileGenerated(ctx, tok, now)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// The cache lags behind our own write; try again shortly.
			log.V(1).Info("conflict writing the Secret, retrying", "error", err.Error())
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeueAfter(tok, st, now)}, nil
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

	patch := client.MergeFrom(tok.DeepCopy())
	controllerutil.RemoveFinalizer(tok, scimv1.FinalizerToken)
	if err := r.Patch(ctx, tok, patch); err != nil {
		return fmt.Errorf("removing finalizer %s: %w", scimv1.FinalizerToken, err)
	}
	return nil
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

// reconcileGenerated issues, repairs and rotates the token in the generated
// Secret.
func (r *ScimTokenReconciler) reconcileGenerated(ctx context.Context, tok *scimv1.ScimToken, now time.Time) (*tokenState, error) {
	name := generatedSecretName(tok)
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		return r.issue(ctx, tok, now)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	if !metav1.IsControlledBy(secret, tok) && !labelledForToken(secret, tok) {
		return &tokenState{
			secretName:    name,
			problemReason: ReasonSecretConflict,
			problemMessage: fmt.Sprintf("Secret %s exists and does not belong to this ScimToken: "+
				"delete it, or adopt it with spec.secretRef", name),
		}, nil
	}

	desired := secret.DeepCopy()
	st := stateFromSecret(secret)
	token := tokens.Normalize(string(secret.Data[SecretKeyToken]))
	var notes []note

	// Phase 1: notice hand edits.
	switch fp := tokens.Fingerprint(token); {
	case !tokens.Usable(token):
		if token, err = tokens.Generate(); err != nil {
			return nil, fmt.Errorf("generating a token: %w", err)
		}
		st = &tokenState{secretName: name, fingerprint: tokens.Fingerprint(token), issuedAt: now, rotationRequest: st.rotationRequest}
		notes = append(notes, note{corev1.EventTypeWarning, EventSecretReissued, "Reissue", fmt.Sprintf(
			"Secret %s held no usable token (edited by hand?): issued a new one (%s); the old one is no longer accepted, "+
				"give the new one to the identity provider", name, tokens.ShortFingerprint(st.fingerprint))})
	case fp == st.fingerprint:
	case st.fingerprint == "" && fp == tok.Status.Fingerprint:
		// Our annotations were removed but the token is the one we issued:
		// recover the state from status.
		st = stateFromStatus(tok)
		notes = append(notes, note{corev1.EventTypeNormal, EventSecretRepaired, "Repair", fmt.Sprintf(
			"restored the operator's annotations on Secret %s", name)})
	default:
		st = &tokenState{secretName: name, fingerprint: fp, issuedAt: now, rotationRequest: st.rotationRequest}
		notes = append(notes, note{corev1.EventTypeWarning, EventSecretReread, "Reread", fmt.Sprintf(
			"the token in Secret %s was changed outside the operator: now accepting it (%s); the earlier tokens are no longer accepted",
			name, tokens.ShortFingerprint(fp))})
	}
	st.secretName = name

	// Phase 2: end an overlap that is over.
	if st.previousFingerprint != "" && !now.Before(st.previousValidUntil) {
		notes = append(notes, note{corev1.EventTypeNormal, EventPreviousRevoked, "Revoke", fmt.Sprintf(
			"the previous token (%s) stopped working: its overlap ended", tokens.ShortFingerprint(st.previousFingerprint))})
		st.previousFingerprint, st.previousValidUntil = "", time.Time{}
	}

	// Phase 3: rotate when asked or due.
	if why := rotationDue(tok, st, now); why != "" {
		if token, err = tokens.Generate(); err != nil {
			return nil, fmt.Errorf("generating a token: %w", err)
		}
		notes = append(notes, rotate(tok, st, tokens.Fingerprint(token), why, now))
	}

	// Phase 4: write the Secret when anything differs (including labels,
	// owner reference or the endpoint key edited by hand).
	if err := r.applySecret(tok, desired, st, token); err != nil {
		return nil, err
	}
	if !equality.Semantic.DeepEqual(desired, secret) {
		if len(notes) == 0 {
			notes = append(notes, note{corev1.EventTypeNormal, EventSecretRepaired, "Repair", fmt.Sprintf(
				"restored the endpoint, labels or owner reference of Secret %s", name)})
		}
		if err := r.Update(ctx, desired); err != nil {
			return nil, fmt.Errorf("updating Secret %s: %w", name, err)
		}
	}
	r.emit(ctx, tok, notes)
	return st, nil
}

// issue creates the generated Secret: the first token, or a new one after
// the Secret was deleted by hand (then the old token is revoked: deleting a
// credential is read as wanting it gone).
func (r *ScimTokenReconciler) issue(ctx context.Context, tok *scimv1.ScimToken, now time.Time) (*tokenState, error) {
	token, err := tokens.Generate()
	if err != nil {
		return nil, fmt.Errorf("generating a token: %w", err)
	}
	name := generatedSecretName(tok)
	st := &tokenState{
		secretName:  name,
		fingerprint: tokens.Fingerprint(token),
		issuedAt:    now,
		// A request already present when the token is issued is satisfied.
		rotationRequest: tok.Annotations[scimv1.AnnotationRotate],
	}
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
			"Secret %s was deleted: issued a new token (%s); the old one is no longer accepted, "+
				"give the new one to the identity provider", name, tokens.ShortFingerprint(st.fingerprint))}
	}
	r.emit(ctx, tok, []note{n})
	return st, nil
}

// rotationDue says why the token must be rotated now, or "".
func rotationDue(tok *scimv1.ScimToken, st *tokenState, now time.Time) string {
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok && v != st.rotationRequest {
		return "on demand"
	}
	if tok.Spec.Rotation != nil && !now.Before(st.issuedAt.Add(tok.Spec.Rotation.Interval.Duration)) {
		return "on schedule"
	}
	return ""
}

// rotate makes newFP current in st and keeps the replaced token for the
// overlap (none with an overlap of 0).
func rotate(tok *scimv1.ScimToken, st *tokenState, newFP, why string, now time.Time) note {
	overlap := defaultOverlap
	if tok.Spec.Rotation != nil && tok.Spec.Rotation.Overlap != nil {
		overlap = tok.Spec.Rotation.Overlap.Duration
	}
	old := st.fingerprint
	st.previousFingerprint, st.previousValidUntil = "", time.Time{}
	msg := fmt.Sprintf("rotated the token %s: new token %s; the previous one (%s) was revoked at once",
		why, tokens.ShortFingerprint(newFP), tokens.ShortFingerprint(old))
	if overlap > 0 {
		st.previousFingerprint, st.previousValidUntil = old, now.Add(overlap)
		msg = fmt.Sprintf("rotated the token %s: new token %s; the previous one (%s) keeps working until %s",
			why, tokens.ShortFingerprint(newFP), tokens.ShortFingerprint(old), st.previousValidUntil.Format(time.RFC3339))
	}
	st.fingerprint, st.issuedAt = newFP, now
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok {
		st.rotationRequest = v
	}
	return note{corev1.EventTypeNormal, EventRotated, "Rotate", msg}
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
	a := secret.Annotations
	a[annFingerprint] = st.fingerprint
	a[annIssuedAt] = st.issuedAt.UTC().Format(time.RFC3339)
	setOrDelete(a, annRotationRequest, st.rotationRequest)
	setOrDelete(a, annPreviousFingerprint, st.previousFingerprint)
	validUntil := ""
	if st.previousFingerprint != "" {
		validUntil = st.previousValidUntil.UTC().Format(time.RFC3339)
	}
	setOrDelete(a, annPreviousValidUntil, validUntil)
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
	st := &tokenState{secretName: ref.Name, adopted: true, rotationRequest: tok.Status.RotationRequest}
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
	if v, ok := tok.Annotations[scimv1.AnnotationRotate]; ok && v != st.rotationRequest {
		st.rotationRequest = v
		notes = append(notes, note{corev1.EventTypeWarning, EventRotationIgnored, "Rotate", fmt.Sprintf(
			"an adopted token is rotated where Secret %s is managed, not by the operator", ref.Name)})
	}
	defer func() { r.emit(ctx, tok, notes) }()

	secret := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
		}
		st.problemReason = ReasonSecretMissing
		st.problemMessage = fmt.Sprintf("Secret %s does not exist: no token is accepted until it does", ref.Name)
		return st, nil
	}
	// Nothing about the value is looked at before the Secret opts in: its
	// fingerprint in status would be a hash oracle for any Secret in the
	// namespace, and its value a token.
	if !adoptable(secret) {
		st.problemReason = ReasonSecretNotAdoptable
		st.problemMessage = fmt.Sprintf("Secret %s does not allow adoption: no token is accepted and nothing of it is read; "+
			"if it is meant for this ScimToken, add the label %s=\"true\" to it "+
			"(kubectl label secret %s -n %s %s=true)",
			ref.Name, scimv1.LabelAdoptable, ref.Name, tok.Namespace, scimv1.LabelAdoptable)
		return st, nil
	}
	raw, ok := secret.Data[key]
	if !ok {
		st.problemReason = ReasonTokenMissing
		st.problemMessage = fmt.Sprintf("Secret %s has no key %q: no token is accepted until it does", ref.Name, key)
		return st, nil
	}
	token := tokens.Normalize(string(raw))
	if !tokens.Usable(token) {
		st.problemReason = ReasonTokenTooShort
		st.problemMessage = fmt.Sprintf("the token in Secret %s key %q is shorter than %d characters or contains whitespace: "+
			"it is refused; store a longer random token", ref.Name, key, tokens.MinAdoptedLength)
		return st, nil
	}

	st.fingerprint = tokens.Fingerprint(token)
	switch {
	case st.fingerprint == tok.Status.Fingerprint && tok.Status.IssuedAt != nil:
		st.issuedAt = tok.Status.IssuedAt.Time
	case tok.Status.Fingerprint == "":
		st.issuedAt = now
		notes = append(notes, note{corev1.EventTypeNormal, ReasonAdopted, "Adopt", fmt.Sprintf(
			"adopted the token (%s) from Secret %s key %q", tokens.ShortFingerprint(st.fingerprint), ref.Name, key)})
	default:
		// Whoever manages the Secret rotated it; the old value stops at
		// once because only they know whether it leaked.
		st.issuedAt = now
		notes = append(notes, note{corev1.EventTypeNormal, EventAdoptedChanged, "Reread", fmt.Sprintf(
			"Secret %s changed: now accepting its token (%s); the previous one (%s) is no longer accepted",
			ref.Name, tokens.ShortFingerprint(st.fingerprint), tokens.ShortFingerprint(tok.Status.Fingerprint))})
	}
	return st, nil
}

// adoptable says whether a Secret opted in to adoption.
func adoptable(s *corev1.Secret) bool { return s.Labels[scimv1.LabelAdoptable] == "true" }

// computeStatus is the one place status is derived, from what this
// reconcile observed. With nothing observed (an early error) the status
// stays as it was, apart from observedGeneration not advancing.
func (r *ScimTokenReconciler) computeStatus(tok *scimv1.ScimToken, st *tokenState, now time.Time, reconcileErr error) {
	if st == nil {
		return
	}
	s := &tok.Status
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

	ready := metav1.Condition{Type: scimv1.ConditionReady, ObservedGeneration: tok.Generation}
	switch {
	case st.problemReason != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, st.problemReason, st.problemMessage
	case !tok.IsActive():
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonInactive
		ready.Message = "spec.active is false: the token is refused; set it to true to accept it again"
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

	if reconcileErr == nil {
		s.ObservedGeneration = tok.Generation
	}
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
// still in use.
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
	oldUse := meta.FindStatusCondition(before.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
	newUse := meta.FindStatusCondition(after.Status.Conditions, scimv1.ConditionPreviousTokenInUse)
	if newUse != nil && newUse.Status == metav1.ConditionTrue && (oldUse == nil || oldUse.Status != metav1.ConditionTrue) {
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, EventPreviousInUseMsg, "Check", "%s", newUse.Message)
	}
}

// patchStatus sends a merge patch with what changed, if anything. A merge
// patch leaves lastUsedAt alone, which the UsageRecorders write
// concurrently.
func (r *ScimTokenReconciler) patchStatus(ctx context.Context, before, after *scimv1.ScimToken) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, after, client.MergeFrom(before)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patching status: %w", err)
	}
	return nil
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
	if st.problemReason != "" {
		return problemRequeue
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
	// Times are kept to the second: wake just after, not just before.
	return max(next.Sub(now), 0) + time.Second
}

// stateFromSecret reads the annotations of a generated Secret.
func stateFromSecret(s *corev1.Secret) *tokenState {
	a := s.Annotations
	st := &tokenState{
		secretName:          s.Name,
		fingerprint:         a[annFingerprint],
		previousFingerprint: a[annPreviousFingerprint],
		rotationRequest:     a[annRotationRequest],
	}
	st.issuedAt, _ = time.Parse(time.RFC3339, a[annIssuedAt])
	if st.previousFingerprint != "" {
		var err error
		// An unreadable expiry ends the overlap: err towards refusing.
		if st.previousValidUntil, err = time.Parse(time.RFC3339, a[annPreviousValidUntil]); err != nil {
			st.previousFingerprint = ""
		}
	}
	return st
}

func stateFromStatus(tok *scimv1.ScimToken) *tokenState {
	s := tok.Status
	st := &tokenState{
		secretName:          s.SecretName,
		fingerprint:         s.Fingerprint,
		previousFingerprint: s.PreviousFingerprint,
		rotationRequest:     s.RotationRequest,
	}
	if s.IssuedAt != nil {
		st.issuedAt = s.IssuedAt.Time
	}
	if s.PreviousValidUntil != nil {
		st.previousValidUntil = s.PreviousValidUntil.Time
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

// labelledForToken recognises a generated Secret whose owner reference was
// removed by hand.
func labelledForToken(s *corev1.Secret, tok *scimv1.ScimToken) bool {
	return s.Labels[scimv1.LabelManagedBy] == scimv1.ManagerName && s.Labels[scimv1.LabelToken] == tok.Name &&
		!controllerutil.HasControllerReference(s)
}

func setOrDelete(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC())
	return &mt
}
