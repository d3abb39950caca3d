package server_test

import (
	"strings"
	"testing"
)

// TestHostileInput sends what an attacker (or a broken client) might: each
// request gets a 4xx SCIM error, and the server keeps answering. The body
// limit bounds memory; the parsers' own limits bound time.
func TestHostileInput(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "hostile", r)
	uid := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"target@example.test"}`), 201).str("id")

	var ops strings.Builder
	ops.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`)
	for i := range 10000 {
		if i > 0 {
			ops.WriteByte(',')
		}
		ops.WriteString(`{"op":"replace","path":"title","value":"t"}`)
	}
	ops.WriteString(`]}`)

	cases := []struct {
		name, method, path string
		body               string
		status             int
		scimType           string
	}{
		{"deeply nested JSON", "POST", "/Users", strings.Repeat(`{"a":`, 200000) + `1` + strings.Repeat(`}`, 200000), 413, ""},
		{"nested JSON under the limit", "POST", "/Users", `{"userName":"n@example.test","name":` + strings.Repeat(`[`, 50000) + strings.Repeat(`]`, 50000) + `}`, 400, "invalidSyntax"},
		{"10,000 PATCH operations", "PATCH", "/Users/" + uid, ops.String(), 400, "tooMany"},
		{"huge filter", "GET", "/Users?filter=" + urlq(strings.Repeat(`userName eq "x" or `, 2000)+`userName eq "y"`), "", 400, "invalidFilter"},
		{"deeply nested filter", "GET", "/Users?filter=" + urlq(strings.Repeat("(", 500)+`userName eq "x"`+strings.Repeat(")", 500)), "", 400, "invalidFilter"},
		{"invalid UTF-8 in a filter", "GET", "/Users?filter=userName+eq+%22%FF%22", "", 400, "invalidFilter"},
		{"control characters in a path", "PATCH", "/Users/" + uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title\u0000","value":"x"}]}`, 400, "invalidPath"},
		{"a JSON array instead of an object", "POST", "/Users", `[` + strings.Repeat(`1,`, 10000) + `1]`, 400, "invalidSyntax"},
		{"huge startIndex", "GET", "/Users?startIndex=99999999999999999999", "", 400, "invalidValue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			expect(t, r.do(t, tok, tc.method, tc.path, body), tc.status, tc.scimType)
		})
	}
	// Still serving, and the target is untouched.
	got := expect(t, r.do(t, tok, "GET", "/Users/"+uid, nil), 200)
	if _, ok := got.body["title"]; ok {
		t.Fatalf("a refused PATCH changed the user: %s", got.raw)
	}
}
