// Package scimerr carries SCIM protocol errors (RFC 7644 §3.12) from the
// packages that detect them to the HTTP layer that renders them.
package scimerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
)

// ErrorURN is the schema of every SCIM error body.
const ErrorURN = "urn:ietf:params:scim:api:messages:2.0:Error"

// scimType values from RFC 7644 §3.12, Table 9.
const (
	TypeInvalidFilter = "invalidFilter"
	TypeTooMany       = "tooMany"
	TypeUniqueness    = "uniqueness"
	TypeMutability    = "mutability"
	TypeInvalidSyntax = "invalidSyntax"
	TypeInvalidPath   = "invalidPath"
	TypeNoTarget      = "noTarget"
	TypeInvalidValue  = "invalidValue"
)

// Error is a SCIM error: an HTTP status, an optional scimType and a
// human-readable detail that clients (Okta in particular) expect to be set.
type Error struct {
	Status   int
	ScimType string
	Detail   string
	// Template is the format Detail was made from, before the values
	// (which may be what a client sent) were put in; see SafeDetail.
	Template string
}

// verb matches a fmt verb of a Template.
var verb = regexp.MustCompile(`%%|%[-+# 0]*[0-9*]*(\.[0-9*]*)?[a-zA-Z]`)

// SafeDetail is the detail without personal data: the Template with every
// value replaced by "…", or the status text when there is no Template.
// Status objects and other records that must not hold what clients sent
// use it.
func (e *Error) SafeDetail() string {
	if e.Template == "" {
		if t := http.StatusText(e.Status); t != "" {
			return t
		}
		return "error"
	}
	return verb.ReplaceAllStringFunc(e.Template, func(v string) string {
		if v == "%%" {
			return "%"
		}
		return "…"
	})
}

func (e *Error) Error() string {
	if e.ScimType == "" {
		return fmt.Sprintf("scim %d: %s", e.Status, e.detail())
	}
	return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.detail())
}

// detail never returns "" because clients check that the field is filled.
func (e *Error) detail() string {
	if e.Detail != "" {
		return e.Detail
	}
	if t := http.StatusText(e.Status); t != "" {
		return t
	}
	return "error"
}

// New builds an Error with a formatted detail.
func New(status int, scimType, format string, args ...any) *Error {
	return &Error{Status: status, ScimType: scimType, Detail: fmt.Sprintf(format, args...), Template: format}
}

// InvalidFilter reports a filter that cannot be parsed or evaluated (400).
func InvalidFilter(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeInvalidFilter, format, args...)
}

// InvalidValue reports a value of the wrong type or a missing required value (400).
func InvalidValue(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeInvalidValue, format, args...)
}

// InvalidSyntax reports a request body that is not a valid SCIM message (400).
func InvalidSyntax(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeInvalidSyntax, format, args...)
}

// InvalidPath reports an attribute path that is malformed or unknown (400).
func InvalidPath(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeInvalidPath, format, args...)
}

// NoTarget reports a PATCH path that selects nothing where something is needed (400).
func NoTarget(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeNoTarget, format, args...)
}

// Mutability reports a write to a readOnly or immutable attribute (400).
func Mutability(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeMutability, format, args...)
}

// Uniqueness reports a clash with an existing resource (409).
func Uniqueness(format string, args ...any) *Error {
	return New(http.StatusConflict, TypeUniqueness, format, args...)
}

// TooMany reports a query whose result the server will not compute (400).
func TooMany(format string, args ...any) *Error {
	return New(http.StatusBadRequest, TypeTooMany, format, args...)
}

// NotFound reports an unknown resource id (404). RFC 7644 defines no
// scimType for it.
func NotFound(format string, args ...any) *Error {
	return New(http.StatusNotFound, "", format, args...)
}

// As finds a *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

type body struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

// Body renders the RFC 7644 §3.12 JSON error body. The status is a JSON
// string there, not a number.
func (e *Error) Body() []byte {
	b, err := json.Marshal(body{
		Schemas:  []string{ErrorURN},
		Status:   strconv.Itoa(e.Status),
		ScimType: e.ScimType,
		Detail:   e.detail(),
	})
	if err != nil {
		// Only strings and a slice are marshalled; this cannot fail.
		panic(err)
	}
	return b
}
