package scimerr

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"filter", InvalidFilter("bad %q", "x"), `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"bad \"x\""}`},
		{"not found omits scimType", NotFound("user %s not found", "42"), `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"user 42 not found"}`},
		{"uniqueness", Uniqueness("userName taken"), `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"userName taken"}`},
		{"empty detail filled", &Error{Status: 401}, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"Unauthorized"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.err.Body()); got != tt.want {
				t.Errorf("Body() = %s, want %s", got, tt.want)
			}
			var m map[string]any
			if err := json.Unmarshal(tt.err.Body(), &m); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		err      *Error
		status   int
		scimType string
	}{
		{InvalidFilter("x"), 400, "invalidFilter"},
		{InvalidValue("x"), 400, "invalidValue"},
		{InvalidSyntax("x"), 400, "invalidSyntax"},
		{InvalidPath("x"), 400, "invalidPath"},
		{NoTarget("x"), 400, "noTarget"},
		{Mutability("x"), 400, "mutability"},
		{Uniqueness("x"), 409, "uniqueness"},
		{TooMany("x"), 400, "tooMany"},
		{NotFound("x"), 404, ""},
	}
	for _, tt := range tests {
		if tt.err.Status != tt.status || tt.err.ScimType != tt.scimType {
			t.Errorf("%v: got %d %q, want %d %q", tt.err, tt.err.Status, tt.err.ScimType, tt.status, tt.scimType)
		}
	}
}

func TestAs(t *testing.T) {
	wrapped := fmt.Errorf("storing: %w", InvalidValue("bad"))
	e, ok := As(wrapped)
	if !ok || e.ScimType != "invalidValue" {
		t.Fatalf("As(wrapped) = %v, %v", e, ok)
	}
	if _, ok := As(fmt.Errorf("plain")); ok {
		t.Fatal("As(plain) reported a SCIM error")
	}
	if got := InvalidPath("p").Error(); got != "scim 400 invalidPath: p" {
		t.Errorf("Error() = %q", got)
	}
}

// TestSafeDetail: the values put into a detail (what a client sent) are
// left out.
func TestSafeDetail(t *testing.T) {
	e := Uniqueness("userName %q is already taken by %s (100%% sure, %5.2f)", "alice@example.com", "bob", 1.5)
	if got, want := e.SafeDetail(), "userName … is already taken by … (100% sure, …)"; got != want {
		t.Errorf("SafeDetail = %q, want %q", got, want)
	}
	if got := (&Error{Status: 404, Detail: "alice"}).SafeDetail(); got != "Not Found" {
		t.Errorf("without a template: %q", got)
	}
}
