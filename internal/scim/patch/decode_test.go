package patch

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// decodeCases are PATCH bodies and the operations (or the scimType of the error) each must decode to.
var decodeCases = []struct {
	name string
	body string
	want []Operation
	// scimType is the expected error type; "" means success.
	scimType string
}{
	{
		name: "Entra default dialect capitalised op and string boolean",
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		want: []Operation{{Op: "replace", Path: "active", Value: "False", HasValue: true}},
	},
	{
		name: "lower-case operations key and upper-case schema URN",
		body: `{"schemas":["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
				"operations":[{"op":"remove","path":"members[value eq \"u-42\"]"}]}`,
		want: []Operation{{Op: "remove", Path: `members[value eq "u-42"]`}},
	},
	{
		name: "member names in any case, unknown member name ignored",
		body: `{"Schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"OPERATIONS":[{"name":"addMember","OP":"ADD","Path":"members","Value":[{"value":"u1"}]}]}`,
		want: []Operation{{Op: "add", Path: "members", Value: []any{map[string]any{"value": "u1"}}, HasValue: true}},
	},
	{
		name: "explicit null value is kept apart from a missing one",
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"replace","path":"title","value":null},{"op":"remove","path":"title"}]}`,
		want: []Operation{
			{Op: "replace", Path: "title", Value: nil, HasValue: true},
			{Op: "remove", Path: "title"},
		},
	},
	{
		name: "numbers keep their digits",
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"add","value":{"x":12345678901234567890}}]}`,
		want: []Operation{{Op: "add", Value: map[string]any{"x": json.Number("12345678901234567890")}, HasValue: true}},
	},
	{
		name: "null and blank path mean no path",
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations":[{"op":"replace","path":null,"value":{"active":false}},{"op":"add","path":" ","value":{}}]}`,
		want: []Operation{
			{Op: "replace", Value: map[string]any{"active": false}, HasValue: true},
			{Op: "add", Value: map[string]any{}, HasValue: true},
		},
	},
	{name: "not JSON", body: `{"schemas":`, scimType: scimerr.TypeInvalidSyntax},
	{name: "array body", body: `[]`, scimType: scimerr.TypeInvalidSyntax},
	{name: "null body", body: `null`, scimType: scimerr.TypeInvalidSyntax},
	{name: "no schemas", body: `{"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "wrong schema", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "schemas not an array", body: `{"schemas":"urn:ietf:params:scim:api:messages:2.0:PatchOp","Operations":[{"op":"add","path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "missing Operations", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "null Operations", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":null}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "empty Operations", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "Operations not an array", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":{"op":"add"}}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "two spellings of Operations", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"title"}],"operations":[{"op":"remove","path":"title"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "operation not an object", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":["add"]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "missing op", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "unknown op", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"move","path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "op not a string", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":1,"path":"title","value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "path not a string", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":["title"],"value":"x"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "add without value", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "replace without value", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title"}]}`, scimType: scimerr.TypeInvalidSyntax},
	{name: "too many operations", body: patchBody(DefaultMaxOperations + 1), scimType: scimerr.TypeTooMany},
	{name: "hostile 10000 operations", body: patchBody(10000), scimType: scimerr.TypeTooMany},
	{name: "deep nesting in value", body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}]}`, scimType: scimerr.TypeInvalidSyntax},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode([]byte(tt.body), Limits{})
			if tt.scimType != "" {
				assertSCIMError(t, err, tt.scimType)
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(req.Operations, tt.want) {
				t.Errorf("Operations\n got %#v\nwant %#v", req.Operations, tt.want)
			}
		})
	}
}

func TestDecodeLimit(t *testing.T) {
	if _, err := Decode([]byte(patchBody(DefaultMaxOperations)), Limits{}); err != nil {
		t.Fatalf("exactly the default maximum must pass: %v", err)
	}
	if _, err := Decode([]byte(patchBody(3)), Limits{MaxOperations: 2}); err == nil {
		t.Fatal("a custom limit of 2 must refuse 3 operations")
	}
}

// patchBody builds a PatchOp with n small operations.
func patchBody(n int) string {
	ops := make([]string, n)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op":"replace","path":"title","value":"t%d"}`, i)
	}
	return `{"schemas":["` + PatchOpURN + `"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

func assertSCIMError(t *testing.T, err error, scimType string) *scimerr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want 400 %s, got no error", scimType)
	}
	se, ok := scimerr.As(err)
	if !ok {
		t.Fatalf("want *scimerr.Error, got %T: %v", err, err)
	}
	if se.Status != http.StatusBadRequest || se.ScimType != scimType {
		t.Fatalf("want 400 %s, got %d %s: %s", scimType, se.Status, se.ScimType, se.Detail)
	}
	if se.Detail == "" {
		t.Error("error detail is empty")
	}
	return se
}
