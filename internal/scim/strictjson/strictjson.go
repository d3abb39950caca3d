// Package strictjson reads SCIM request bodies in one streaming pass
// (encoding/json's Decoder tokens) that refuses what encoding/json lets
// through silently:
//
//   - a member name twice in one object, compared case-insensitively as
//     SCIM attribute names are (RFC 7643 §2.1): {"userName":"a",
//     "USERNAME":"b"} at any depth. encoding/json keeps one of them, so a
//     filter in front of the operator could read one value while the
//     operator stores the other;
//   - nesting deeper than MaxDepth, long before encoding/json's own limit.
//
// Every error is a 400 invalidSyntax *scimerr.Error whose detail names the
// member and where it is.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// MaxDepth is how deeply objects and arrays may nest. The deepest SCIM body
// (a PATCH setting an extension's complex attribute) needs 6.
const MaxDepth = 32

// Decode decodes data, which must hold exactly one JSON value, into what
// encoding/json would give with UseNumber: map[string]any, []any, string,
// json.Number, bool or nil.
func Decode(data []byte) (any, error) { return run(data, true) }

// Check is Decode without building the value, for callers that decode the
// body their own way.
func Check(data []byte) error {
	_, err := run(data, false)
	return err
}

func run(data []byte, build bool) (any, error) {
	d := &decoder{dec: json.NewDecoder(bytes.NewReader(data)), build: build}
	d.dec.UseNumber()
	v, err := d.value(0)
	if err != nil {
		if errors.Is(err, io.EOF) && len(bytes.TrimSpace(data)) == 0 {
			return nil, scimerr.InvalidSyntax("the request body is empty; send a JSON object")
		}
		return nil, toSCIM(err)
	}
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		return nil, scimerr.InvalidSyntax("the request body has data after the JSON value")
	}
	return v, nil
}

type decoder struct {
	dec   *json.Decoder
	build bool
}

// value reads one value whose container is depth deep (0 at the top).
func (d *decoder) value(depth int) (any, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		if !d.build {
			return nil, nil
		}
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= MaxDepth {
		return nil, &pathError{kind: tooDeep}
	}
	switch delim {
	case '{':
		return d.object(depth + 1)
	case '[':
		return d.array(depth + 1)
	}
	return nil, fmt.Errorf("unexpected %q", delim) // the Decoder reports these itself
}

func (d *decoder) object(depth int) (any, error) {
	var m map[string]any
	if d.build {
		m = map[string]any{}
	}
	var seen names
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("an object member name is not a string")
		}
		if prev, dup := seen.add(key); dup {
			return nil, &pathError{kind: duplicate, first: prev, second: key}
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, within(err, key)
		}
		if d.build {
			m[key] = v
		}
	}
	if _, err := d.dec.Token(); err != nil { // '}'
		return nil, err
	}
	if !d.build {
		return nil, nil
	}
	return m, nil
}

func (d *decoder) array(depth int) (any, error) {
	var list []any
	if d.build {
		list = []any{}
	}
	for i := 0; d.dec.More(); i++ {
		v, err := d.value(depth)
		if err != nil {
			return nil, within(err, "["+strconv.Itoa(i)+"]")
		}
		if d.build {
			list = append(list, v)
		}
	}
	if _, err := d.dec.Token(); err != nil { // ']'
		return nil, err
	}
	if !d.build {
		return nil, nil
	}
	return list, nil
}

// names remembers an object's member names: a few in a slice compared
// with strings.EqualFold, more in a map under a case-folded key.
type names struct {
	few  [fewNames]string
	n    int
	many map[string]string // fold(name) -> name
}

const fewNames = 8

// add records name and, when an earlier name equals it under case
// folding, returns that one.
func (n *names) add(name string) (string, bool) {
	if n.many == nil {
		for _, prev := range n.few[:n.n] {
			if strings.EqualFold(prev, name) {
				return prev, true
			}
		}
		if n.n < fewNames {
			n.few[n.n] = name
			n.n++
			return "", false
		}
		n.many = make(map[string]string, 2*fewNames)
		for _, prev := range n.few {
			n.many[fold(prev)] = prev
		}
	}
	k := fold(name)
	if prev, ok := n.many[k]; ok {
		return prev, true
	}
	n.many[k] = name
	return "", false
}

// fold maps s to a key that two strings share exactly when
// strings.EqualFold says they are equal: every rune becomes the smallest
// rune of its simple case-folding orbit (for ASCII letters, the upper
// case; K, k and the Kelvin sign all become K).
func fold(s string) string {
	ascii := true
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		lowest := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			lowest = min(lowest, f)
		}
		b.WriteRune(lowest)
	}
	return b.String()
}

type errorKind int

const (
	duplicate errorKind = iota + 1
	tooDeep
)

// pathError is a duplicate name or too deep a nesting; path collects the
// members and indexes leading to it, innermost first, as the error
// travels up.
type pathError struct {
	kind          errorKind
	first, second string
	path          []string
}

func (e *pathError) Error() string { return toSCIM(e).Error() }

// within adds the member or index segment to a pathError.
func within(err error, segment string) error {
	var pe *pathError
	if errors.As(err, &pe) {
		pe.path = append(pe.path, segment)
	}
	return err
}

func (e *pathError) where() string {
	if len(e.path) == 0 {
		return "at the top level"
	}
	var b strings.Builder
	for i, s := range slices.Backward(e.path) {
		if i != len(e.path)-1 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(truncate(s))
	}
	return "in " + truncate(b.String())
}

func toSCIM(err error) error {
	var pe *pathError
	switch {
	case errors.As(err, &pe) && pe.kind == duplicate:
		if pe.first == pe.second {
			return scimerr.InvalidSyntax("the request body has the attribute %q twice %s; send each attribute once",
				truncate(pe.second), pe.where())
		}
		return scimerr.InvalidSyntax("the request body has the attribute %q twice %s, as %q and %q (attribute names are case-insensitive); send each attribute once",
			truncate(pe.first), pe.where(), truncate(pe.first), truncate(pe.second))
	case errors.As(err, &pe) && pe.kind == tooDeep:
		return scimerr.InvalidSyntax("the request body nests objects and arrays deeper than %d levels %s", MaxDepth, pe.where())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return scimerr.InvalidSyntax("the request body is not valid JSON: it ends too early")
	default:
		return scimerr.InvalidSyntax("the request body is not valid JSON: %v", err)
	}
}

// truncate keeps client text in error details short.
func truncate(s string) string {
	const maxLen = 80
	if len(s) <= maxLen {
		return s
	}
	cut := maxLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
