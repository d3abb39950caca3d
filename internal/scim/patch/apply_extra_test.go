package patch

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// TestApplyAtomic checks that a failing operation after successful ones
// leaves the caller's document, and every map inside it, untouched.
func TestApplyAtomic(t *testing.T) {
	rt := schema.UserResourceType()
	doc := mustJSON(t, userDoc)
	name := doc["name"].(map[string]any)
	emails := doc["emails"].([]any)
	orig := cloneMap(doc)
	ops := decodeOps(t, `[
	  {"op":"replace","path":"name.givenName","value":"Changed"},
	  {"op":"add","path":"emails[type eq \"work\"].value","value":"changed@contoso.test"},
	  {"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Changed"},
	  {"op":"remove","path":"userName"}]`)
	res, err := Apply(rt, doc, ops, Options{})
	_ = assertSCIMError(t, err, scimerr.TypeMutability)
	if res.Changed {
		t.Error("Changed reported for a failed PATCH")
	}
	if !reflect.DeepEqual(doc, orig) {
		t.Errorf("document changed:\n got %s\nwant %s", toJSON(t, doc), toJSON(t, orig))
	}
	if name["givenName"] != "Alice" || emails[0].(map[string]any)["value"] != "Alice@Contoso.test" {
		t.Error("a nested map of the document was modified")
	}
}

// TestApplyReplacesContents checks the success path: doc is the same map
// afterwards, with new contents, and maps the caller held are not edited.
func TestApplyReplacesContents(t *testing.T) {
	rt := schema.UserResourceType()
	doc := mustJSON(t, userDoc)
	name := doc["name"].(map[string]any)
	ops := decodeOps(t, `[{"op":"replace","path":"name.givenName","value":"Alicia"}]`)
	res, err := Apply(rt, doc, ops, Options{})
	if err != nil || !res.Changed {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if got := doc["name"].(map[string]any)["givenName"]; got != "Alicia" {
		t.Errorf("givenName = %v", got)
	}
	if name["givenName"] != "Alice" {
		t.Error("the old nested map was edited in place")
	}
}

// TestApplyNilDocument checks that a nil document is treated as empty.
func TestApplyNilDocument(t *testing.T) {
	rt := schema.GroupResourceType()
	ops := decodeOps(t, `[{"op":"add","path":"members","value":[{"value":"u1"}]}]`)
	res, err := Apply(rt, nil, ops, Options{ExternalMembers: true})
	if err != nil || res.Changed || len(res.Members) != 1 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
}

// TestApplyDirectOperations covers callers that build operations without
// Decode: op case is normalised and unknown ops are refused.
func TestApplyDirectOperations(t *testing.T) {
	rt := schema.UserResourceType()
	doc := mustJSON(t, userDoc)
	res, err := Apply(rt, doc, []Operation{{Op: "Replace", Path: "title", Value: "CTO", HasValue: true}}, Options{})
	if err != nil || !res.Changed || doc["title"] != "CTO" {
		t.Fatalf("Apply = %+v, %v, title %v", res, err, doc["title"])
	}
	_, err = Apply(rt, doc, []Operation{{Op: "copy", Path: "title"}}, Options{})
	_ = assertSCIMError(t, err, scimerr.TypeInvalidSyntax)
}

// TestApplyLargeInput checks that big but legal requests stay fast (the
// duplicate check is hashed, not quadratic) and that growth past the
// per-attribute limit is refused.
func TestApplyLargeInput(t *testing.T) {
	rt := schema.GroupResourceType()
	const n = 20000
	values := func(prefix string, n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"value":"%s-%d"}`, prefix, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	doc := mustJSON(t, `{"id":"g","displayName":"Big"}`)
	ops := decodeOps(t, `[{"op":"add","path":"members","value":`+values("a", n)+`},
	  {"op":"add","path":"members","value":`+values("a", n)+`},
	  {"op":"add","path":"members","value":`+values("b", n)+`},
	  {"op":"remove","path":"members","value":`+values("b", n/2)+`}]`)
	res, err := Apply(rt, doc, ops, Options{})
	if err != nil || !res.Changed {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if got := len(doc["members"].([]any)); got != n+n/2 {
		t.Errorf("%d members, want %d", got, n+n/2)
	}

	over := decodeOps(t, `[{"op":"add","path":"members","value":`+values("c", schema.MaxValues-n-n/2+1)+`}]`)
	_, err = Apply(rt, doc, over, Options{})
	_ = assertSCIMError(t, err, scimerr.TypeInvalidValue)
}

// TestApplyUndeclaredExtensionLimit checks that many operations cannot
// build a document that a POST would refuse.
func TestApplyUndeclaredExtensionLimit(t *testing.T) {
	rt := schema.UserResourceType()
	var ops []string
	for i := 0; i <= schema.MaxFreeFormExtensions; i++ {
		ops = append(ops, fmt.Sprintf(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:X%d:2.0:User:a","value":"v"}`, i))
	}
	doc := mustJSON(t, userDoc)
	_, err := Apply(rt, doc, decodeOps(t, "["+strings.Join(ops, ",")+"]"), Options{})
	_ = assertSCIMError(t, err, scimerr.TypeInvalidValue)
}
