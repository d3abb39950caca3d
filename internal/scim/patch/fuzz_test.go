package patch

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// fuzzSeeds are the request bodies of the table tests: Entra, Okta,
// Microsoft's Postman collection and RFC-style requests.
func fuzzSeeds() []applyCase {
	var all []applyCase
	for _, group := range [][]applyCase{entraCases, memberCases, rfcCases, errorCases} {
		all = append(all, group...)
	}
	return all
}

func seedBody(body string) []byte {
	if strings.HasPrefix(strings.TrimSpace(body), "[") {
		body = `{"schemas":["` + PatchOpURN + `"],"Operations":` + body + `}`
	}
	return []byte(body)
}

func FuzzDecode(f *testing.F) {
	for _, tt := range fuzzSeeds() {
		f.Add(seedBody(tt.body))
	}
	f.Add([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":[[[[{}]]]]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := Decode(body, Limits{MaxOperations: 50})
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		if len(req.Operations) == 0 || len(req.Operations) > 50 {
			t.Fatalf("%d operations accepted", len(req.Operations))
		}
		for _, op := range req.Operations {
			if op.Op != OpAdd && op.Op != OpReplace && op.Op != OpRemove {
				t.Fatalf("op %q accepted", op.Op)
			}
		}
	})
}

func FuzzApply(f *testing.F) {
	for _, tt := range fuzzSeeds() {
		f.Add(seedBody(tt.body), tt.group, tt.external)
	}
	f.Fuzz(func(t *testing.T, body []byte, group, external bool) {
		req, err := Decode(body, Limits{MaxOperations: 50})
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		rt, fixture := schema.UserResourceType(), userDoc
		if group {
			rt, fixture = schema.GroupResourceType(), groupWithMembers
		}
		doc := mustJSON(t, fixture)
		orig := cloneMap(doc)
		res, err := Apply(rt, doc, req.Operations, Options{ExternalMembers: external})
		if err != nil {
			checkFuzzError(t, err)
			if !reflect.DeepEqual(doc, orig) {
				t.Fatalf("failed PATCH changed the document: %s", toJSON(t, doc))
			}
			return
		}
		if res.Changed == reflect.DeepEqual(doc, orig) {
			t.Fatalf("Changed = %v, but the document %s", res.Changed, map[bool]string{true: "did not change", false: "changed"}[res.Changed])
		}
		checkCanonical(t, "", doc)
		for _, m := range res.Members {
			if m.Kind != MemberClear && len(m.IDs) == 0 {
				t.Fatalf("member op without ids: %+v", m)
			}
		}
	})
}

func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	se, ok := scimerr.As(err)
	if !ok {
		t.Fatalf("error is %T, not *scimerr.Error: %v", err, err)
	}
	if se.Status != http.StatusBadRequest || se.ScimType == "" || se.Detail == "" {
		t.Fatalf("unexpected error %+v", se)
	}
}

// checkCanonical fails on values a canonical document never holds: null,
// "", empty objects or lists, and keys that are path text.
func checkCanonical(t *testing.T, where string, v any) {
	t.Helper()
	switch x := v.(type) {
	case nil:
		t.Fatalf("%s is null", where)
	case string:
		if x == "" {
			t.Fatalf("%s is an empty string", where)
		}
	case map[string]any:
		if len(x) == 0 {
			t.Fatalf("%s is an empty object", where)
		}
		for k, e := range x {
			if strings.ContainsAny(k, "[] ") || !strings.HasPrefix(k, "urn:") && strings.Contains(k, ".") {
				t.Fatalf("%s has the key %q", where, k)
			}
			checkCanonical(t, where+"/"+k, e)
		}
	case []any:
		if len(x) == 0 {
			t.Fatalf("%s is an empty list", where)
		}
		for _, e := range x {
			checkCanonical(t, where+"[]", e)
		}
	}
}
