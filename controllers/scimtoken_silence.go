package controllers

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
)

// DefaultSilenceWarningAfter is spec.silenceWarningAfter's default: Entra
// ID provisions about every 40 minutes, so two hours are three missed
// cycles.
const DefaultSilenceWarningAfter = 2 * time.Hour

// Reasons of the IdentityProviderSilent condition.
const (
	ReasonNoRequests      = "NoRequests"
	ReasonRequestsArrive  = "RequestsArrive"
	ReasonTokenNotInUse   = "TokenNotAccepted"
	silenceMessageWhatNow = "check the identity provider's provisioning job (Entra ID: the enterprise application's Provisioning logs and cycle status) and that it holds the token from this ScimToken's Secret"
)

func silenceWarningAfter(tok *scimv1.ScimToken) time.Duration {
	if d := tok.Spec.SilenceWarningAfter; d != nil && d.Duration >= time.Minute {
		return d.Duration
	}
	return DefaultSilenceWarningAfter
}

// lastHeard is when a request last authenticated with the ScimToken: the
// newest of status.activity.lastRequestAt and the usage stamps, or, when
// none was ever written, when the ScimToken was created (heard = false).
func lastHeard(tok *scimv1.ScimToken) (at time.Time, heard bool) {
	s := tok.Status
	for _, t := range []*metav1.Time{s.LastUsedAt, s.PreviousLastUsedAt} {
		if t != nil && t.After(at) {
			at = t.Time
		}
	}
	if s.Activity != nil && s.Activity.LastRequestAt != nil && s.Activity.LastRequestAt.After(at) {
		at = s.Activity.LastRequestAt.Time
	}
	if at.IsZero() {
		return tok.CreationTimestamp.Time, false
	}
	return at, true
}

// identityProviderSilent is the IdentityProviderSilent condition at now,
// and when it would turn True (zero when it is True already or cannot).
// A token that is not accepted (inactive, or refused for a problem) is
// expected to be silent and does not warn.
func identityProviderSilent(tok *scimv1.ScimToken, st *tokenState, now time.Time) (metav1.Condition, time.Time) {
	c := metav1.Condition{Type: scimv1.ConditionIdentityProviderSilent, ObservedGeneration: tok.Generation}
	if !tok.IsActive() || st.problemReason != "" {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonTokenNotInUse
		c.Message = "the token is not accepted (see Ready), so no request is expected"
		return c, time.Time{}
	}
	after := silenceWarningAfter(tok)
	at, heard := lastHeard(tok)
	at = at.UTC().Truncate(time.Second)
	if now.Sub(at) > after {
		c.Status, c.Reason = metav1.ConditionTrue, ReasonNoRequests
		if heard {
			c.Message = fmt.Sprintf("no request since %s, longer than silenceWarningAfter (%s): %s",
				at.Format(time.RFC3339), after, silenceMessageWhatNow)
		} else {
			c.Message = fmt.Sprintf("no request since the ScimToken was created at %s, longer than silenceWarningAfter (%s): %s",
				at.Format(time.RFC3339), after, silenceMessageWhatNow)
		}
		return c, time.Time{}
	}
	// The message names no time: status.activity.lastRequestAt moves every
	// minute, and the condition must not make the controller write as often.
	c.Status, c.Reason = metav1.ConditionFalse, ReasonRequestsArrive
	if heard {
		c.Message = fmt.Sprintf("the identity provider sends requests (status.activity.lastRequestAt); a warning follows after %s without one", after)
	} else {
		c.Message = fmt.Sprintf("no request yet; a warning follows %s after the ScimToken's creation", after)
	}
	return c, at.Add(after)
}

// silenceRequeue is when to reconcile so that the condition turns True on
// time: zero when nothing is due.
func silenceRequeue(tok *scimv1.ScimToken, st *tokenState, now time.Time) time.Duration {
	if st == nil {
		return 0
	}
	_, turns := identityProviderSilent(tok, st, now)
	if turns.IsZero() {
		return 0
	}
	return max(turns.Sub(now), 0) + time.Second
}

// soonest is the nearer of two requeue delays, zero meaning none.
func soonest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
