package server_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/tokens"
)

// fixedTokens accepts "current" and "previous" for namespace tenant-a.
type fixedTokens struct{}

func (fixedTokens) Authenticate(_ context.Context, authorization string) (tokens.Principal, error) {
	switch authorization {
	case "Bearer current":
		return tokens.Principal{Namespace: "tenant-a", TokenName: "t", Fingerprint: "fp1"}, nil
	case "Bearer previous":
		return tokens.Principal{Namespace: "tenant-a", TokenName: "t", Fingerprint: "fp0", Previous: true}, nil
	}
	return tokens.Principal{}, tokens.ErrUnknown
}

// TestResponseMetrics: every answer is counted by tenant, credential,
// status and scimType, and nothing of the token reaches the labels. It
// needs no control plane: none of these requests reaches the repository.
func TestResponseMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := server.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Config{}, server.Options{Auth: fixedTokens{}, Answers: m, Log: logr.Discard()})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	get := func(token, path string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+"/scim/v2"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
	}
	get("current", "/ServiceProviderConfig")
	get("current", "/ServiceProviderConfig")
	get("previous", "/ServiceProviderConfig")
	get("wrong", "/ServiceProviderConfig")
	get("current", "/Users?filter="+strings.ReplaceAll(`userName zz "x"`, " ", "%20"))
	get("current", "/Bulk")

	got := map[string]float64{}
	durations := 0
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mm := range f.GetMetric() {
			switch f.GetName() {
			case "scim_responses_total":
				var l []string
				for _, p := range mm.GetLabel() {
					l = append(l, p.GetName()+"="+p.GetValue())
				}
				got[strings.Join(l, ",")] = mm.GetCounter().GetValue()
			case "scim_request_duration_seconds":
				durations += int(mm.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"code=200,credential=current,scim_type=,tenant=tenant-a":              2,
		"code=200,credential=previous,scim_type=,tenant=tenant-a":             1,
		"code=401,credential=,scim_type=,tenant=":                             1,
		"code=400,credential=current,scim_type=invalidFilter,tenant=tenant-a": 1,
		"code=501,credential=current,scim_type=,tenant=tenant-a":              1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("scim_responses_total:\n got %v\nwant %v", got, want)
	}
	if durations != 6 {
		t.Errorf("scim_request_duration_seconds observed %d requests, want 6", durations)
	}
	for _, f := range families {
		for _, mm := range f.GetMetric() {
			for _, l := range mm.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "fp") || v == "t" || strings.Contains(v, "wrong") {
					t.Errorf("%s carries token data: %s=%q", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}

// TestResponseMetricsShared: a second server in one process (replicas in
// tests) shares the first's collectors instead of failing to register.
func TestResponseMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := server.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewMetrics(reg); err != nil {
		t.Errorf("registering again: %v", err)
	}
}
