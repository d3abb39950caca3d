package helpdesk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Column limits, in characters, shared by all dialects (see the migrations).
// Key columns stay at 191 so MySQL utf8mb4 indexes fit.
const (
	maxKeyLen      = 191
	maxTextLen     = 512
	maxEmailLen    = 320
	maxShortLen    = 64
	membersPerStmt = 1000 // rows per INSERT / ids per DELETE ... IN; 3,000 placeholders at most
)

// field is one value to validate before it reaches the database, so all three
// databases reject the same input (SQLite would store anything).
type field struct {
	column   string
	value    string
	max      int
	required bool
}

func validate(fields ...field) error {
	for _, f := range fields {
		switch {
		case f.value == "" && f.required:
			return fmt.Errorf("%w: %s must not be empty", ErrInvalid, f.column)
		case utf8.RuneCountInString(f.value) > f.max:
			return fmt.Errorf("%w: %s is longer than %d characters", ErrInvalid, f.column, f.max)
		case !utf8.ValidString(f.value) || strings.ContainsRune(f.value, 0):
			// PostgreSQL and MySQL reject these; fail the same way everywhere.
			return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalid, f.column)
		}
	}
	return nil
}

// truncate cuts s to its first limit characters (runes, as VARCHAR counts
// them) and reports whether it cut anything.
func truncate(s string, limit int) (string, bool) {
	if utf8.RuneCountInString(s) <= limit {
		return s, false
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i], true
		}
		n++
	}
	return s, false
}

func validTenant(tenant string) error {
	if tenant == AllTenants {
		return fmt.Errorf("%w: tenant %q is reserved for custom fields of every tenant", ErrInvalid, AllTenants)
	}
	return validate(field{column: "tenant", value: tenant, max: maxKeyLen, required: true})
}

func checkPolicy(p DeletionPolicy) (DeletionPolicy, error) {
	switch p {
	case "", DeletionPolicyRetain:
		return DeletionPolicyRetain, nil
	case DeletionPolicyDelete:
		return p, nil
	default:
		return "", fmt.Errorf("%w: deletion policy %q (want %q or %q)", ErrInvalid, p, DeletionPolicyRetain, DeletionPolicyDelete)
	}
}

// nullable stores "" as NULL: absent SCIM attributes are NULL for the helpdesk.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// dbTime scans the timestamp shapes the drivers return: time.Time
// (PostgreSQL, MySQL with parseTime) or RFC 3339 text (SQLite).
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{t: x.UTC(), valid: true}
		return nil
	case string:
		return d.parse(x)
	case []byte:
		return d.parse(string(x))
	default:
		return fmt.Errorf("cannot scan %T into a timestamp", v)
	}
}

func (d *dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	*d = dbTime{t: t.UTC(), valid: true}
	return nil
}

func (d dbTime) ptr() *time.Time {
	if !d.valid {
		return nil
	}
	t := d.t
	return &t
}

// encodeCustomFields returns the JSON to store and the value a read of it
// would decode to, which is what the no-op check compares against.
func encodeCustomFields(m map[string]any) ([]byte, map[string]any, error) {
	if m == nil {
		m = map[string]any{}
	}
	b, err := json.Marshal(m) // map keys come out sorted: stable text
	if err != nil {
		return nil, nil, fmt.Errorf("%w: custom_fields: %w", ErrInvalid, err)
	}
	decoded, err := decodeCustomFields(b)
	if err != nil {
		return nil, nil, err
	}
	return b, decoded, nil
}

func decodeCustomFields(b []byte) (map[string]any, error) {
	out := map[string]any{}
	if len(b) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode custom_fields: %w", err)
	}
	if out == nil { // stored JSON null
		out = map[string]any{}
	}
	return out, nil
}

// sameJSON compares decoded JSON; key order and whitespace, which the
// databases normalise differently, do not matter.
func sameJSON(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }
