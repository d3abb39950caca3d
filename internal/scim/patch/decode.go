package patch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
	"github.com/scim-operator/scim-operator/internal/scim/strictjson"
)

// PatchOpURN is the schema of a PATCH request body (RFC 7644 §3.5.2).
const PatchOpURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// DefaultMaxOperations is used when Limits.MaxOperations is not positive.
const DefaultMaxOperations = 1000

// Operation op values after normalisation.
const (
	OpAdd     = "add"
	OpReplace = "replace"
	OpRemove  = "remove"
)

// Operation is one entry of a PatchOp "Operations" array.
type Operation struct {
	// Op is "add", "replace" or "remove", lower-cased: Entra's default dialect
	// sends "Add", "Replace", "Remove".
	Op string
	// Path is the raw attribute path; "" when the client sent none.
	Path string
	// Value is the decoded JSON value (nil for JSON null).
	Value any
	// HasValue tells an absent "value" from an explicit null, which clears.
	HasValue bool
}

// Request is a decoded PatchOp message.
type Request struct {
	Operations []Operation
}

// Limits bounds the work a single request may ask for.
type Limits struct {
	// MaxOperations caps len(Operations); DefaultMaxOperations when <= 0.
	MaxOperations int
}

func (l Limits) maxOperations() int {
	if l.MaxOperations <= 0 {
		return DefaultMaxOperations
	}
	return l.MaxOperations
}

// Decode parses a PatchOp body. Member names ("schemas", "Operations", "op",
// "path", "value") are matched case-insensitively because clients disagree
// on "Operations" versus "operations"; unknown members (Microsoft's
// collection sends "name") are ignored. Syntax problems are 400
// invalidSyntax, and more than Limits.MaxOperations operations is 400 tooMany,
// checked before any operation is decoded. A member named twice at any
// depth ("value" and "Value" in one operation, "title" twice inside a
// value) is 400 invalidSyntax (strictjson.Check), so that no two readers
// of the body can take different values from it.
func Decode(body []byte, lim Limits) (*Request, error) {
	if err := strictjson.Check(body); err != nil {
		return nil, err
	}
	top, err := decodeObject(body, "request body")
	if err != nil {
		return nil, err
	}
	rawSchemas, ok, err := member(top, "schemas", "request body")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, scimerr.InvalidSyntax("request body has no schemas; expected %q", PatchOpURN)
	}
	var schemas []string
	if err := json.Unmarshal(rawSchemas, &schemas); err != nil {
		return nil, scimerr.InvalidSyntax("schemas must be an array of strings")
	}
	if !containsFold(schemas, PatchOpURN) {
		return nil, scimerr.InvalidSyntax("schemas must contain %q", PatchOpURN)
	}

	rawOps, ok, err := member(top, "operations", "request body")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, scimerr.InvalidSyntax("request body has no Operations")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rawOps, &items); err != nil || items == nil {
		return nil, scimerr.InvalidSyntax("Operations must be an array of operations")
	}
	if len(items) == 0 {
		return nil, scimerr.InvalidSyntax("Operations must not be empty")
	}
	if most := lim.maxOperations(); len(items) > most {
		return nil, scimerr.TooMany("request has %d operations; at most %d are allowed", len(items), most)
	}

	req := &Request{Operations: make([]Operation, 0, len(items))}
	for i, item := range items {
		op, err := decodeOperation(item, i)
		if err != nil {
			return nil, err
		}
		req.Operations = append(req.Operations, op)
	}
	return req, nil
}

func decodeOperation(raw json.RawMessage, i int) (Operation, error) {
	where := "Operations[" + strconv.Itoa(i) + "]"
	obj, err := decodeObject(raw, where)
	if err != nil {
		return Operation{}, err
	}
	var op Operation

	rawOp, ok, err := member(obj, "op", where)
	if err != nil {
		return op, err
	}
	if !ok {
		return op, scimerr.InvalidSyntax("%s has no op", where)
	}
	var name string
	if err := json.Unmarshal(rawOp, &name); err != nil {
		return op, scimerr.InvalidSyntax("%s: op must be a string", where)
	}
	op.Op = strings.ToLower(name)
	switch op.Op {
	case OpAdd, OpReplace, OpRemove:
	default:
		return op, scimerr.InvalidSyntax("%s: unknown op %q; expected add, replace or remove", where, truncate(name))
	}

	if rawPath, ok, err := member(obj, "path", where); err != nil {
		return op, err
	} else if ok && !isNull(rawPath) {
		if err := json.Unmarshal(rawPath, &op.Path); err != nil {
			return op, scimerr.InvalidSyntax("%s: path must be a string", where)
		}
		op.Path = strings.TrimSpace(op.Path)
	}

	rawValue, ok, err := member(obj, "value", where)
	if err != nil {
		return op, err
	}
	if ok {
		if op.Value, err = decodeValue(rawValue); err != nil {
			return op, scimerr.InvalidSyntax("%s: value is not valid JSON", where)
		}
		op.HasValue = true
	}
	// RFC 7644 §3.5.2.1 and §3.5.2.3: add and replace carry a value. An
	// explicit null is allowed and clears the target (RFC 7643 §2.5).
	if op.Op != OpRemove && !op.HasValue {
		return op, scimerr.InvalidSyntax("%s: %s requires a value", where, op.Op)
	}
	return op, nil
}

// decodeObject decodes a JSON object into its raw members.
func decodeObject(raw []byte, where string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, scimerr.InvalidSyntax("%s must be a JSON object", where)
	}
	return obj, nil
}

// member looks a name up case-insensitively. Two spellings of one name
// ("operations" and "Operations") are ambiguous and rejected.
func member(obj map[string]json.RawMessage, name, where string) (json.RawMessage, bool, error) {
	var found json.RawMessage
	n := 0
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			found = v
			n++
		}
	}
	if n > 1 {
		return nil, false, scimerr.InvalidSyntax("%s has %q more than once", where, name)
	}
	return found, n == 1, nil
}

// decodeValue keeps numbers as json.Number so integers keep every digit until
// the schema decides what they are.
func decodeValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// truncate keeps client text in error details short.
func truncate(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "…"
}
