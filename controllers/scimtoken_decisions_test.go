package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// The ScimToken controller's decisions, without a cluster.

var (
	tCurrent  = "current-" + strings.Repeat("c", 40)
	tPrevious = "previous-" + strings.Repeat("p", 40)
	tPending  = "pending-" + strings.Repeat("n", 40)
	tOther    = "other-" + strings.Repeat("o", 40)
	t0        = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
)

func TestScimTokenJudgeToken(t *testing.T) {
	status := scimv1.ScimTokenStatus{
		Fingerprint:         testFingerprints.Of(tCurrent),
		PreviousFingerprint: testFingerprints.Of(tPrevious),
		Pending:             &scimv1.PendingToken{Fingerprint: testFingerprints.Of(tPending)},
	}
	for _, c := range []struct {
		name   string
		token  string
		status scimv1.ScimTokenStatus
		want   secretToken
	}{
		{"the current token", tCurrent, status, tokenCurrent},
		{"the pending token: an interrupted write", tPending, status, tokenPending},
		{"the previous token: a restored backup", tPrevious, status, tokenUnexpected},
		{"any other token", tOther, status, tokenUnexpected},
		{"a token while status names none", tOther, scimv1.ScimTokenStatus{}, tokenUnexpected},
		{"empty", "", status, tokenUnusable},
		{"too short", "short", status, tokenUnusable},
		{"two words", tCurrent + " x", status, tokenUnusable},
	} {
		if got := judgeToken(testFingerprints, c.token, &c.status); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func TestScimTokenAnnotationMismatch(t *testing.T) {
	st := &tokenState{fingerprint: testFingerprints.Of(tCurrent), issuedAt: t0,
		previousFingerprint: testFingerprints.Of(tPrevious), previousValidUntil: t0.Add(time.Hour)}
	want := tokenAnnotations(st)
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range want {
			m[k] = v
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name    string
		have    map[string]string
		want    map[string]string
		forged  []string
		missing bool
	}{
		{"as status says", want, want, nil, false},
		{"all absent", nil, want, nil, true},
		{"previous absent", with(annPreviousFingerprint, ""), want, nil, true},
		{"overlap stretched", with(annPreviousValidUntil, "2036-01-01T00:00:00Z"), want, []string{annPreviousValidUntil}, false},
		{"another previous token", with(annPreviousFingerprint, testFingerprints.Of(tOther)), want, []string{annPreviousFingerprint}, false},
		{"another current token", with(annFingerprint, testFingerprints.Of(tOther)), want, []string{annFingerprint}, false},
		{"a previous token status does not have", want, tokenAnnotations(&tokenState{fingerprint: st.fingerprint, issuedAt: t0}),
			[]string{annPreviousFingerprint, annPreviousValidUntil}, false},
	} {
		forged, missing := annotationMismatch(c.have, c.want)
		if !slices.Equal(forged, c.forged) || missing != c.missing {
			t.Errorf("%s: forged %v missing %v, want %v %v", c.name, forged, missing, c.forged, c.missing)
		}
	}
}

func TestScimTokenDecideRotation(t *testing.T) {
	long := strings.Repeat("x", 100)
	withAnnotation := func(v string, rotation bool) *scimv1.ScimToken {
		tok := &scimv1.ScimToken{}
		if v != "-" {
			tok.Annotations = map[string]string{scimv1.AnnotationRotate: v}
		}
		if rotation {
			tok.Spec.Rotation = &scimv1.TokenRotation{Interval: metav1.Duration{Duration: time.Hour}}
		}
		return tok
	}
	st := &tokenState{issuedAt: t0, rotationRequest: "B", earlierRequests: []string{"A", requestKey(long + "old")}}
	for _, c := range []struct {
		name string
		tok  *scimv1.ScimToken
		st   *tokenState
		now  time.Time
		want rotationDecision
	}{
		{"no annotation", withAnnotation("-", false), st, t0, rotationDecision{}},
		{"the value last handled", withAnnotation("B", false), st, t0, rotationDecision{}},
		{"a new value", withAnnotation("C", false), st, t0, rotationDecision{why: "on demand", request: "C"}},
		{"a value handled before: A→B→A", withAnnotation("A", false), st, t0, rotationDecision{request: "A", repeated: true}},
		{"a long value handled before", withAnnotation(long+"old", false), st, t0, rotationDecision{request: requestKey(long + "old"), repeated: true}},
		{"a long value kept as it was by earlier versions", withAnnotation(long, false),
			&tokenState{issuedAt: t0, rotationRequest: long}, t0, rotationDecision{}},
		{"schedule not due", withAnnotation("-", true), st, t0.Add(time.Hour - time.Second), rotationDecision{}},
		{"schedule due", withAnnotation("-", true), st, t0.Add(time.Hour), rotationDecision{why: "on schedule"}},
		{"schedule due and a repeated value", withAnnotation("A", true), st, t0.Add(time.Hour),
			rotationDecision{why: "on schedule", request: "A", repeated: true}},
	} {
		if got := decideRotation(c.tok, c.st, c.now); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if k := requestKey(long); len(k) > 71 || !strings.HasPrefix(k, "sha256:") {
		t.Errorf("requestKey of a long value: %q", k)
	}
}

func TestScimTokenRemember(t *testing.T) {
	st := &tokenState{}
	for _, v := range []string{"1", "2", "3", "1"} {
		remember(st, v)
	}
	if st.rotationRequest != "1" || !slices.Equal(st.earlierRequests, []string{"3", "2"}) {
		t.Errorf("after 1 2 3 1: %q %v", st.rotationRequest, st.earlierRequests)
	}
	remember(st, "")
	remember(st, "1")
	if st.rotationRequest != "1" || len(st.earlierRequests) != 2 {
		t.Errorf("an empty or the same request changed the record: %q %v", st.rotationRequest, st.earlierRequests)
	}
	for i := range 30 {
		remember(st, strings.Repeat("r", i+2))
	}
	if len(st.earlierRequests) != maxEarlierRequests {
		t.Errorf("%d earlier requests kept, want %d", len(st.earlierRequests), maxEarlierRequests)
	}
}

func TestScimTokenEndOverlap(t *testing.T) {
	tokWith := func(overlap time.Duration) *scimv1.ScimToken {
		return &scimv1.ScimToken{Spec: scimv1.ScimTokenSpec{Rotation: &scimv1.TokenRotation{
			Interval: metav1.Duration{Duration: 10 * time.Hour}, Overlap: &metav1.Duration{Duration: overlap}}}}
	}
	prev := testFingerprints.Of(tPrevious)
	for _, c := range []struct {
		name      string
		tok       *scimv1.ScimToken
		until     time.Time
		now       time.Time
		wantUntil time.Time // zero: the previous token is gone
	}{
		{"running", tokWith(time.Hour), t0.Add(time.Hour), t0.Add(time.Minute), t0.Add(time.Hour)},
		{"ended", tokWith(time.Hour), t0.Add(time.Hour), t0.Add(time.Hour), time.Time{}},
		{"overlap shortened in spec", tokWith(10 * time.Minute), t0.Add(time.Hour), t0.Add(time.Minute), t0.Add(10 * time.Minute)},
		{"overlap set to 0s", tokWith(0), t0.Add(time.Hour), t0.Add(time.Minute), time.Time{}},
		{"longer than any overlap", tokWith(time.Hour), t0.Add(24 * 365 * time.Hour), t0.Add(time.Minute), t0.Add(time.Hour)},
		{"no spec.rotation: the default overlap", &scimv1.ScimToken{}, t0.Add(48 * time.Hour), t0.Add(time.Minute), t0.Add(defaultOverlap)},
	} {
		st := &tokenState{fingerprint: testFingerprints.Of(tCurrent), issuedAt: t0, previousFingerprint: prev, previousValidUntil: c.until}
		endOverlap(c.tok, st, c.now)
		gone := c.wantUntil.IsZero()
		if gone != (st.previousFingerprint == "") || !st.previousValidUntil.Equal(c.wantUntil) {
			t.Errorf("%s: previous %q until %v, want until %v", c.name, tokens.ShortFingerprint(st.previousFingerprint), st.previousValidUntil, c.wantUntil)
		}
	}
}

func TestScimTokenCompletePending(t *testing.T) {
	cur, next := testFingerprints.Of(tCurrent), testFingerprints.Of(tPending)
	until := metav1.NewTime(t0.Add(time.Hour))
	st := &tokenState{secretName: "s", fingerprint: cur, issuedAt: t0.Add(-time.Hour), rotationRequest: "A",
		previousFingerprint: testFingerprints.Of(tPrevious), previousValidUntil: t0.Add(time.Minute)}

	got := completePending(st, &scimv1.PendingToken{Fingerprint: next, IssuedAt: metav1.NewTime(t0), PreviousValidUntil: &until, RotationRequest: "B"})
	if got.fingerprint != next || !got.issuedAt.Equal(t0) || got.previousFingerprint != cur || !got.previousValidUntil.Equal(until.Time) ||
		got.rotationRequest != "B" || !slices.Equal(got.earlierRequests, []string{"A"}) || got.secretName != "s" {
		t.Errorf("a rotation with an overlap: %+v", got)
	}
	got = completePending(st, &scimv1.PendingToken{Fingerprint: next, IssuedAt: metav1.NewTime(t0)})
	if got.previousFingerprint != "" || got.rotationRequest != "A" {
		t.Errorf("a re-issue keeps no earlier token: %+v", got)
	}
	got = completePending(&tokenState{}, &scimv1.PendingToken{Fingerprint: next, IssuedAt: metav1.NewTime(t0), PreviousValidUntil: &until})
	if got.previousFingerprint != "" {
		t.Errorf("a previous token from nothing: %+v", got)
	}
}

// TestScimTokenSecretChecks: which check decides what is done about a
// generated Secret, first failure first.
func TestScimTokenSecretChecks(t *testing.T) {
	right := secretFacts{exists: true, controlled: true, token: tokenCurrent}
	with := func(change func(*secretFacts)) secretFacts {
		f := right
		change(&f)
		return f
	}
	for _, c := range []struct {
		name      string
		facts     secretFacts
		wantCheck string
		want      secretAction
	}{
		{"the current token, annotations as status says", right, "", secretRight},
		{"the pending token, annotations as status says", with(func(f *secretFacts) { f.token = tokenPending }), "", secretRight},
		{"no Secret", secretFacts{}, "SecretExists", issueToken},
		{"a Secret someone else made", with(func(f *secretFacts) { f.controlled = false }), "ControlledByScimToken", refuseSecret},
		{"someone else's Secret wins over its unusable token",
			with(func(f *secretFacts) { f.controlled, f.token = false, tokenUnusable }), "ControlledByScimToken", refuseSecret},
		{"an empty token", with(func(f *secretFacts) { f.token = tokenUnusable }), "TokenUsable", reissueToken},
		{"a token the operator never issued", with(func(f *secretFacts) { f.token = tokenUnexpected }), "TokenIssuedByOperator", refuseToken},
		{"an unknown token wins over forged annotations",
			with(func(f *secretFacts) { f.token, f.forged = tokenUnexpected, []string{annFingerprint} }), "TokenIssuedByOperator", refuseToken},
		{"annotations that claim another token", with(func(f *secretFacts) { f.forged = []string{annFingerprint} }), "AnnotationsMatchStatus", rewriteForged},
		{"forged wins over missing",
			with(func(f *secretFacts) { f.forged, f.missing = []string{annPreviousValidUntil}, true }), "AnnotationsMatchStatus", rewriteForged},
		{"annotations removed", with(func(f *secretFacts) { f.missing = true }), "AnnotationsPresent", repairMissing},
		{"the pending token with annotations removed",
			with(func(f *secretFacts) { f.token, f.missing = tokenPending, true }), "AnnotationsPresent", repairMissing},
	} {
		check, action := judgeSecret(c.facts)
		if check != c.wantCheck || action != c.want {
			t.Errorf("%s: check %q action %d, want %q %d", c.name, check, action, c.wantCheck, c.want)
		}
	}
}
