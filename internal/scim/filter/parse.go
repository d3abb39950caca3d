package filter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Limits on hostile filters. Evaluation cost grows with the number of
// comparisons, and the parser recurses once per nesting level.
const (
	MaxLength = 8 << 10 // bytes
	MaxDepth  = 32      // nested parentheses, "not" and value filters
	MaxTerms  = 200     // attribute expressions
)

type errFunc func(format string, args ...any) *scimerr.Error

type parser struct {
	s     string
	pos   int
	depth int
	terms int
	// fail builds the error for the part being parsed: invalidFilter for
	// filters, invalidPath for the attribute part of a PATCH path.
	fail errFunc
	kind string // "filter" or "path", for messages
}

// Parse parses a filter. Errors are *scimerr.Error with scimType
// invalidFilter and name the offset and what was expected there.
func Parse(s string) (Expr, error) {
	if len(s) > MaxLength {
		return nil, scimerr.InvalidFilter("filter is %d bytes long; at most %d are accepted", len(s), MaxLength)
	}
	if !utf8.ValidString(s) {
		// Values would be altered silently when decoded or printed.
		return nil, scimerr.InvalidFilter("filter is not valid UTF-8")
	}
	p := &parser{s: s, fail: scimerr.InvalidFilter, kind: "filter"}
	p.skipSpace()
	if p.eof() {
		return nil, scimerr.InvalidFilter("empty filter")
	}
	e, err := p.parseOr(false)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if !p.eof() {
		return nil, p.errorf(`"and", "or" or the end of the filter`)
	}
	return e, nil
}

func (p *parser) eof() bool { return p.pos >= len(p.s) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (p *parser) skipSpace() {
	for !p.eof() && isSpace(p.s[p.pos]) {
		p.pos++
	}
}

// errorf reports what was expected at the current offset and what was found.
func (p *parser) errorf(expected string, args ...any) *scimerr.Error {
	return p.errorAt(p.pos, expected, args...)
}

func (p *parser) errorAt(pos int, expected string, args ...any) *scimerr.Error {
	found := "the end of the input"
	if pos < len(p.s) {
		rest := p.s[pos:]
		if len(rest) > 20 {
			rest = rest[:20] + "..."
		}
		found = strconv.Quote(rest)
	}
	return p.fail("invalid %s at offset %d: expected %s, found %s", p.kind, pos, fmt.Sprintf(expected, args...), found)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':' || c == '$'
}

// keyword consumes word (case-insensitive) if it stands alone at the
// current position.
func (p *parser) keyword(word string) bool {
	end := p.pos + len(word)
	if end > len(p.s) || !strings.EqualFold(p.s[p.pos:end], word) {
		return false
	}
	if end < len(p.s) && isNameChar(p.s[end]) {
		return false
	}
	p.pos = end
	return true
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.fail("invalid %s: nesting is deeper than %d levels", p.kind, MaxDepth)
	}
	return nil
}

// parseOr parses a disjunction; "and" binds tighter than "or" (RFC 7644
// §3.4.2.2, Table 5).
func (p *parser) parseOr(inValuePath bool) (Expr, error) {
	left, err := p.parseAnd(inValuePath)
	if err != nil {
		return nil, err
	}
	for {
		save := p.pos
		p.skipSpace()
		if !p.keyword("or") {
			p.pos = save
			return left, nil
		}
		right, err := p.parseAnd(inValuePath)
		if err != nil {
			return nil, err
		}
		left = &Or{Left: left, Right: right}
	}
}

func (p *parser) parseAnd(inValuePath bool) (Expr, error) {
	left, err := p.parseUnary(inValuePath)
	if err != nil {
		return nil, err
	}
	for {
		save := p.pos
		p.skipSpace()
		if !p.keyword("and") {
			p.pos = save
			return left, nil
		}
		right, err := p.parseUnary(inValuePath)
		if err != nil {
			return nil, err
		}
		left = &And{Left: left, Right: right}
	}
}

func (p *parser) parseUnary(inValuePath bool) (Expr, error) {
	p.skipSpace()
	switch {
	case p.eof():
		return nil, p.errorf(`an attribute path, "not" or "("`)
	case p.peek() == '(':
		return p.parseGroup(inValuePath)
	case p.keyword("not"):
		p.skipSpace()
		if p.peek() != '(' {
			return nil, p.errorf(`"(" after "not"`)
		}
		x, err := p.parseGroup(inValuePath)
		if err != nil {
			return nil, err
		}
		return &Not{X: x}, nil
	}
	return p.parseAttrExp(inValuePath)
}

func (p *parser) parseGroup(inValuePath bool) (Expr, error) {
	p.pos++ // '('
	if err := p.enter(); err != nil {
		return nil, err
	}
	e, err := p.parseOr(inValuePath)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.peek() != ')' {
		return nil, p.errorf(`"and", "or" or ")"`)
	}
	p.pos++
	p.depth--
	return e, nil
}

// parseAttrPath reads [URN ":"] ATTRNAME ["." subAttr].
func (p *parser) parseAttrPath() (AttrPath, error) {
	start := p.pos
	for !p.eof() && isNameChar(p.s[p.pos]) {
		p.pos++
	}
	if start == p.pos {
		return AttrPath{}, p.errorf("an attribute path")
	}
	urn, attr, sub, err := schema.SplitPath(p.s[start:p.pos])
	if err != nil {
		return AttrPath{}, p.errorAt(start, "an attribute path such as userName, name.givenName or urn:...:User:employeeNumber")
	}
	return AttrPath{URN: urn, Attr: attr, Sub: sub}, nil
}

func (p *parser) parseAttrExp(inValuePath bool) (Expr, error) {
	path, err := p.parseAttrPath()
	if err != nil {
		return nil, err
	}
	if p.peek() != '[' {
		return p.parseComparison(path)
	}
	if inValuePath {
		return nil, p.errorf("an operator; value filters cannot be nested")
	}
	if path.Sub != "" {
		return nil, p.errorf(`an operator; "[" must follow an attribute, not a sub-attribute`)
	}
	p.pos++ // '['
	if err := p.enter(); err != nil {
		return nil, err
	}
	inner, err := p.parseOr(true)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.peek() != ']' {
		return nil, p.errorf(`"and", "or" or "]"`)
	}
	p.pos++
	p.depth--
	if p.peek() != '.' {
		return &ValuePath{Path: path, Filter: inner}, nil
	}
	// Not in the RFC grammar, but clients write emails[type eq "work"].value
	// eq "x" for "a work email whose value is x", and that is what it means.
	p.pos++
	start := p.pos
	for !p.eof() && isNameChar(p.s[p.pos]) {
		p.pos++
	}
	if sub := p.s[start:p.pos]; !schema.ValidName(sub) {
		return nil, p.errorAt(start, "a sub-attribute name after \"].\"")
	}
	cmp, err := p.parseComparison(AttrPath{Attr: p.s[start:p.pos]})
	if err != nil {
		return nil, err
	}
	return &ValuePath{Path: path, Filter: &And{Left: inner, Right: cmp}}, nil
}

func (p *parser) parseComparison(path AttrPath) (Expr, error) {
	p.terms++
	if p.terms > MaxTerms {
		return nil, p.fail("invalid filter: more than %d comparisons", MaxTerms)
	}
	if !p.eof() && !isSpace(p.peek()) {
		return nil, p.errorf("a space after attribute path %q", path.String())
	}
	p.skipSpace()
	start := p.pos
	for !p.eof() && isLetter(p.s[p.pos]) {
		p.pos++
	}
	word := p.s[start:p.pos]
	var op Op
	for _, o := range ops {
		if strings.EqualFold(word, string(o)) {
			op = o
		}
	}
	if op == "" {
		return nil, p.errorAt(start, "an operator (eq, ne, co, sw, ew, gt, lt, ge, le or pr) after %q", path.String())
	}
	if op == Pr {
		return &Compare{Path: path, Op: Pr}, nil
	}
	p.skipSpace()
	c := &Compare{Path: path, Op: op}
	var err error
	c.Value, c.raw, err = p.parseValue()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// parseValue reads compValue: false / null / true / number / string. It
// also accepts a bare token as a string, because Microsoft's own examples
// send externalId eq jyoung and clients copy them; a server that rejects
// it makes Entra miss existing users and create duplicates.
func (p *parser) parseValue() (value any, raw string, err error) {
	start := p.pos
	if p.peek() == '"' {
		i := p.pos + 1
		for i < len(p.s) && p.s[i] != '"' {
			if p.s[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(p.s) {
			return nil, "", p.errorAt(start, "a closing quote for the string")
		}
		var s string
		if err := json.Unmarshal([]byte(p.s[start:i+1]), &s); err != nil {
			return nil, "", p.errorAt(start, "a valid JSON string")
		}
		p.pos = i + 1
		return s, s, nil
	}
	for !p.eof() && !isSpace(p.s[p.pos]) && !strings.ContainsRune("()[]\"", rune(p.s[p.pos])) {
		// A control character is no part of a bare word (nor of any
		// userName or id); in quotes it must be escaped, as in JSON.
		if p.s[p.pos] < 0x20 || p.s[p.pos] == 0x7f {
			return nil, "", p.errorAt(p.pos, "a printable character in the value (quote and escape control characters)")
		}
		p.pos++
	}
	tok := p.s[start:p.pos]
	switch {
	case tok == "":
		return nil, "", p.errorf("a value (string, number, true, false or null)")
	case strings.EqualFold(tok, "true"):
		return true, tok, nil
	case strings.EqualFold(tok, "false"):
		return false, tok, nil
	case strings.EqualFold(tok, "null"):
		return nil, tok, nil
	case isNumber(tok):
		if !strings.ContainsAny(tok, ".eE") {
			if n, err := strconv.ParseInt(tok, 10, 64); err == nil {
				return n, tok, nil
			}
		}
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			return nil, "", p.errorAt(start, "a number within range")
		}
		return f, tok, nil
	}
	return tok, tok, nil
}

// isNumber reports whether s is a JSON number.
func isNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
