package server_test

import (
	"strconv"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// TestRateLimitPerToken: past its burst a token gets 429 with Retry-After
// and a SCIM error body, while another tenant's token is unaffected.
func TestRateLimitPerToken(t *testing.T) {
	nsA, nsB := env.Namespace(t), env.Namespace(t)
	r := startReplicaWith(t, server.Config{RateLimit: 0.5, RateBurst: 5}, nsA, nsB)
	// issueToken itself makes one accepted request per token.
	tokA := issueToken(t, nsA, "a", r)
	tokB := issueToken(t, nsB, "b", r)
	var limited response
	for range 10 {
		res := r.do(t, tokA, "GET", "/Users?count=1", nil)
		if res.status == 429 {
			limited = res
			break
		}
		expect(t, res, 200)
	}
	if limited.status != 429 {
		t.Fatal("10 requests in a burst of 5 were all accepted")
	}
	expect(t, limited, 429, "")
	if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("429 needs Retry-After in seconds, got %q", limited.header.Get("Retry-After"))
	}
	expect(t, r.do(t, tokB, "GET", "/Users?count=1", nil), 200)
}
