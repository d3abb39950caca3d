package consistency_test

import (
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/repository/consistency"
)

// TestReached: resourceVersions compare as numbers (apimachinery's rule),
// not as strings; versions that are not comparable count only when equal.
func TestReached(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		reached    bool
	}{
		{"10", "9", true}, {"9", "10", false}, {"10", "10", true},
		{"", "10", false}, {"x", "x", true}, {"x", "10", false}, {"10", "", false},
	} {
		if got := consistency.Reached(tc.have, tc.want); got != tc.reached {
			t.Errorf("Reached(%q, %q) = %v, want %v", tc.have, tc.want, got, tc.reached)
		}
	}
}

// TestHighWater: the highest version observed, numerically; a malformed
// one is ignored, and waiting for a malformed one never blocks.
func TestHighWater(t *testing.T) {
	var h consistency.HighWater
	if h.Seen("1") {
		t.Error("nothing observed yet, but 1 counts as seen")
	}
	for _, rv := range []string{"9", "10", "bogus", "2"} {
		h.Observe(rv)
	}
	if !h.Seen("10") || h.Seen("11") || !h.Seen("9") {
		t.Error("Seen does not follow the highest version observed (10)")
	}
	if !h.Seen("bogus") {
		t.Error("a malformed version cannot be waited for and must count as seen")
	}
}
