package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// A generated Secret is reconciled in four phases: judge the Secret
// against status (the checks below), end an overlap that is over, rotate
// when asked or due, write. Status decides which tokens are valid; the
// Secret is checked against it and never the other way round.

// secretFacts is what a reconcile found in the generated Secret, judged
// against status.
type secretFacts struct {
	exists     bool
	controlled bool // by this ScimToken (labels can be copied; owners cannot)
	token      secretToken
	// forged lists the token-state annotations that claim another state
	// than status; missing says some are absent (which claims nothing).
	forged  []string
	missing bool
}

// secretAction is what the reconcile does about the Secret.
type secretAction int

const (
	// secretRight: nothing to repair.
	secretRight secretAction = iota
	// issueToken: there is no Secret: issue a token (after a deletion by
	// hand, the earlier ones are revoked).
	issueToken
	// refuseSecret: someone else's Secret of that name: nothing of it is
	// accepted and nothing written to it.
	refuseSecret
	// reissueToken: no usable token: issue a new one.
	reissueToken
	// refuseToken: a token the operator never issued: not accepted; a
	// rotation that is due replaces it.
	refuseToken
	// rewriteForged: the annotations claim another state: rewritten from
	// status, with a warning (whoever edited them could read the token).
	rewriteForged
	// repairMissing: annotations missing: restored from status.
	repairMissing
)

// secretCheck is one question about the generated Secret.
type secretCheck struct {
	name   string
	fails  func(secretFacts) bool
	action secretAction
}

// secretChecks are asked in order; the first that fails decides what the
// reconcile does. A Secret that passes them all is right.
var secretChecks = []secretCheck{
	{"SecretExists", func(f secretFacts) bool { return !f.exists }, issueToken},
	{"ControlledByScimToken", func(f secretFacts) bool { return !f.controlled }, refuseSecret},
	{"TokenUsable", func(f secretFacts) bool { return f.token == tokenUnusable }, reissueToken},
	{"TokenIssuedByOperator", func(f secretFacts) bool { return f.token == tokenUnexpected }, refuseToken},
	{"AnnotationsMatchStatus", func(f secretFacts) bool { return len(f.forged) > 0 }, rewriteForged},
	{"AnnotationsPresent", func(f secretFacts) bool { return f.missing }, repairMissing},
}

// judgeSecret runs secretChecks: the name of the first that failed ("" if
// none did) and the action it asks for.
func judgeSecret(f secretFacts) (string, secretAction) {
	for _, c := range secretChecks {
		if c.fails(f) {
			return c.name, c.action
		}
	}
	return "", secretRight
}

// generatedRun is one reconcile of a generated Secret.
type generatedRun struct {
	r         *ScimTokenReconciler
	base, tok *scimv1.ScimToken
	now       time.Time
	name      string
	secret    *corev1.Secret
	token     string // the value in the Secret
	facts     secretFacts
	st        *tokenState
	notes     []note
	// pending and newToken are set when a new token is to be written.
	pending   *scimv1.PendingToken
	newToken  string
	confirmed bool
}

// reconcileGenerated issues, checks, repairs and rotates the token in the
// generated Secret.
func (r *ScimTokenReconciler) reconcileGenerated(ctx context.Context, base, tok *scimv1.ScimToken, now time.Time) (*tokenState, error) {
	name := generatedSecretName(tok)
	secret, err := r.readGeneratedSecret(ctx, tok, name)
	if err != nil {
		return nil, err
	}
	run := &generatedRun{r: r, base: base, tok: tok, now: now, name: name, secret: secret, st: stateFromStatus(tok)}
	run.st.secretName = name
	run.inspect()
	_, action := judgeSecret(run.facts)
	// Judge a mismatch, and write a new token, only from what the API
	// server holds.
	if action != secretRight || tok.Status.Pending != nil {
		if err := run.confirm(ctx); err != nil {
			return nil, err
		}
	}
	switch action {
	case issueToken:
		return r.issue(ctx, base, tok, now)
	case refuseSecret:
		notes := endOverlap(tok, run.st, now)
		run.st.problemReason, run.st.problemMessage = ReasonSecretConflict, notControlledMessage(name, run.st)
		r.emit(ctx, tok, notes)
		return run.st, nil
	}
	if err := run.judged(action); err != nil {
		return nil, err
	}
	if run.pending == nil {
		run.notes = append(run.notes, endOverlap(tok, run.st, now)...)
	}
	if err := run.rotate(); err != nil {
		return nil, err
	}
	return run.write(ctx)
}

// readGeneratedSecret reads <name>-token from the cache, then live: the
// cache holds only Secrets labelled as generated, so one of this name made
// by someone else (or stripped of the label) is invisible to it, and the
// checks must see it. nil: there is none.
func (r *ScimTokenReconciler) readGeneratedSecret(ctx context.Context, tok *scimv1.ScimToken, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: tok.Namespace, Name: name}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if err == nil {
		return secret, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	switch err := r.APIReader.Get(ctx, key, secret); {
	case err == nil:
		return secret, nil
	case apierrors.IsNotFound(err):
		return nil, nil
	default:
		return nil, fmt.Errorf("reading Secret %s from the API server: %w", name, err)
	}
}

// inspect gathers the facts the checks judge. Status written before
// fingerprints were keyed names the current token by its unkeyed hash:
// from now on it is named by the keyed one, and the Secret's mirror of the
// old form counts as missing (repaired), not as forged.
func (g *generatedRun) inspect() {
	g.facts.exists = g.secret != nil
	if g.secret == nil {
		return
	}
	g.facts.controlled = metav1.IsControlledBy(g.secret, g.tok)
	if !g.facts.controlled {
		return
	}
	g.token = tokens.Normalize(string(g.secret.Data[SecretKeyToken]))
	g.facts.token = judgeToken(g.r.Fingerprints, g.token, &g.tok.Status)
	annotations := g.secret.Annotations
	if legacy := tokens.LegacyFingerprint(g.token); g.facts.token == tokenCurrent {
		if g.tok.Status.Fingerprint == legacy {
			g.st.fingerprint = g.r.Fingerprints.Of(g.token)
			g.tok.Status.Fingerprint = g.st.fingerprint // the same token: its usage times stay
		}
		if annotations[annFingerprint] == legacy {
			annotations = maps.Clone(annotations)
			delete(annotations, annFingerprint)
		}
	}
	if g.facts.token == tokenPending {
		// The operator's own write whose status update did not follow:
		// the annotations are judged against the state it completes.
		g.st = completePending(g.st, g.tok.Status.Pending)
	}
	if g.facts.token == tokenCurrent || g.facts.token == tokenPending {
		g.facts.forged, g.facts.missing = annotationMismatch(annotations, tokenAnnotations(g.st))
	}
}

// confirm checks, once per reconcile, that the cache's ScimToken and
// Secret are the API server's.
func (g *generatedRun) confirm(ctx context.Context) error {
	if g.confirmed {
		return nil
	}
	g.confirmed = true
	return g.r.confirmFresh(ctx, g.tok, g.name, g.secret)
}

// judged acts on the checks' verdict about the token and its
// annotations (phase 1).
func (g *generatedRun) judged(action secretAction) error {
	if g.facts.token == tokenPending {
		g.notes = append(g.notes, note{corev1.EventTypeNormal, EventWriteCompleted, "Complete", fmt.Sprintf(
			"Secret %s holds the token (%s) the operator wrote before its status update failed: it is current now",
			g.name, tokens.ShortFingerprint(g.st.fingerprint))})
	}
	switch action {
	case rewriteForged:
		g.st.tamperReason = ReasonForgedTokenState
		g.st.tamperMessage = fmt.Sprintf("Secret %s carried token-state annotations that disagree with status (%s): "+
			"they were ignored and rewritten from status, which alone says which tokens are valid; "+
			"whoever edited the Secret could read its token: rotate it", g.name, strings.Join(g.facts.forged, ", "))
		g.notes = append(g.notes, note{corev1.EventTypeWarning, ReasonForgedTokenState, "Check", g.st.tamperMessage})
	case repairMissing:
		g.notes = append(g.notes, note{corev1.EventTypeNormal, EventSecretRepaired, "Repair", fmt.Sprintf(
			"restored the operator's annotations on Secret %s from status", g.name)})
	case reissueToken:
		token, err := tokens.Generate()
		if err != nil {
			return fmt.Errorf("generating a token: %w", err)
		}
		g.newToken = token
		g.pending = &scimv1.PendingToken{Fingerprint: g.r.Fingerprints.Of(token), IssuedAt: metav1.NewTime(g.now)}
		g.notes = append(g.notes, note{corev1.EventTypeWarning, EventSecretReissued, "Reissue", fmt.Sprintf(
			"Secret %s held no usable token (edited by hand?): issued a new one (%s); the earlier ones are no longer accepted, "+
				"give the new one to the identity provider", g.name, tokens.ShortFingerprint(g.pending.Fingerprint))})
	case refuseToken:
		g.st.tamperReason, g.st.problemReason = ReasonUnexpectedToken, ReasonUnexpectedToken
		g.st.tamperMessage = fmt.Sprintf("Secret %s holds a token the operator did not issue: it is not accepted", g.name)
		g.st.problemMessage = unexpectedMessage(g.name, g.st)
	}
	return nil
}

// rotate rotates when asked or due, unless an overlap is running (phase 3).
func (g *generatedRun) rotate() error {
	d := decideRotation(g.tok, g.st, g.now)
	switch {
	case g.pending != nil:
		// A re-issue satisfies a waiting request too.
		if !d.repeated {
			g.pending.RotationRequest = d.request
		}
	case d.why == "":
	case g.st.previousFingerprint != "":
		g.st.deferredUntil, g.st.deferredWhy = g.st.previousValidUntil, d.why
		d.request = "" // still waiting, not handled
	default:
		token, err := tokens.Generate()
		if err != nil {
			return fmt.Errorf("generating a token: %w", err)
		}
		g.newToken = token
		g.pending = rotationPending(g.tok, g.st, g.r.Fingerprints.Of(token), d.request, g.now)
		if g.st.problemReason == ReasonUnexpectedToken {
			g.notes = append(g.notes, note{corev1.EventTypeWarning, ReasonUnexpectedToken, "Check", g.st.tamperMessage +
				"; the rotation replaced it"})
		}
		g.notes = append(g.notes, rotationNote(g.st, g.pending, d.why))
	}
	if d.repeated {
		remember(g.st, d.request)
		g.notes = append(g.notes, note{corev1.EventTypeNormal, EventRotationRepeated, "Rotate", fmt.Sprintf(
			"%s=%q was handled before: not rotating again (set a value it never had, such as the current time, to rotate)",
			scimv1.AnnotationRotate, d.request)})
	}
	return nil
}

// write announces a new token in status, then writes the Secret; a
// refused Secret is left as found (phase 4).
func (g *generatedRun) write(ctx context.Context) (*tokenState, error) {
	if g.pending != nil {
		if err := g.confirm(ctx); err != nil {
			return nil, err
		}
		if err := g.r.announcePending(ctx, g.base, g.tok, g.pending); err != nil {
			return nil, err
		}
		g.st = completePending(g.st, g.pending)
	} else if g.st.problemReason != "" {
		g.r.emit(ctx, g.tok, g.notes)
		return g.st, nil
	}
	token := g.newToken
	if token == "" {
		token = g.token
	}
	desired := g.secret.DeepCopy()
	if err := g.r.applySecret(g.tok, desired, g.st, token); err != nil {
		return nil, err
	}
	if !equality.Semantic.DeepEqual(desired, g.secret) {
		if len(g.notes) == 0 {
			g.notes = append(g.notes, note{corev1.EventTypeNormal, EventSecretRepaired, "Repair", fmt.Sprintf(
				"rewrote the operator's labels, annotations, owner reference or endpoint on Secret %s", g.name)})
		}
		if err := g.r.Update(ctx, desired); err != nil {
			return nil, fmt.Errorf("updating Secret %s: %w", g.name, err)
		}
	}
	g.r.emit(ctx, g.tok, g.notes)
	return g.st, nil
}
