// Package schema holds the SCIM attribute definitions (RFC 7643) of the
// resource types the server offers, and the schema-driven operations on
// resource documents: path resolution, input canonicalisation, attribute
// projection and the discovery representations.
package schema

import (
	"slices"
	"strings"
)

// Schema URNs served by this package.
const (
	UserURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	GroupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	EnterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	// ExtensionPrefix starts every URN that an AnyExtension resource type
	// accepts without a declaration.
	ExtensionPrefix = "urn:ietf:params:scim:schemas:extension:"
	corePrefix      = "urn:ietf:params:scim:schemas:core:"

	SchemaURN       = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	ResourceTypeURN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
)

// Type is an attribute data type (RFC 7643 §2.3).
type Type string

// The data types of RFC 7643 §2.3.
const (
	String    Type = "string"
	Boolean   Type = "boolean"
	Decimal   Type = "decimal"
	Integer   Type = "integer"
	DateTime  Type = "dateTime"
	Reference Type = "reference"
	Complex   Type = "complex"
	Binary    Type = "binary"
)

// Characteristic values (RFC 7643 §7).
const (
	ReadOnly  = "readOnly"
	ReadWrite = "readWrite"
	Immutable = "immutable"
	WriteOnly = "writeOnly"

	ReturnedAlways  = "always"
	ReturnedNever   = "never"
	ReturnedDefault = "default"
	ReturnedRequest = "request"

	UniqueNone   = "none"
	UniqueServer = "server"
	UniqueGlobal = "global"
)

// Attribute describes one attribute or sub-attribute.
type Attribute struct {
	Name            string
	Type            Type
	MultiValued     bool
	Description     string
	Required        bool
	CaseExact       bool
	Mutability      string
	Returned        string
	Uniqueness      string
	CanonicalValues []string
	ReferenceTypes  []string
	SubAttributes   []*Attribute

	// freeForm marks the synthetic attributes of undeclared extensions,
	// whose values may be any simple JSON type.
	freeForm bool
	// singleRef marks a single-valued reference that clients send in
	// several shapes (the enterprise manager) and that is stored as
	// {"value": id}.
	singleRef bool
	// alias is a name some clients send for this sub-attribute, read as
	// it when the sub-attribute itself is absent (members.displayName for
	// members.display). It is not declared in /Schemas.
	alias string
}

// Sub finds a sub-attribute by name, ignoring case (RFC 7643 §2.1).
func (a *Attribute) Sub(name string) *Attribute {
	if a == nil {
		return nil
	}
	return findAttr(a.SubAttributes, name)
}

// FreeForm reports whether a is a synthetic attribute of an undeclared
// extension: single-valued, any simple JSON type, compared case-insensitively.
func (a *Attribute) FreeForm() bool { return a != nil && a.freeForm }

// Schema is a named set of attributes (RFC 7643 §7).
type Schema struct {
	ID          string
	Name        string
	Description string
	Attributes  []*Attribute
}

// Attr finds a top-level attribute by name, ignoring case.
func (s *Schema) Attr(name string) *Attribute {
	if s == nil {
		return nil
	}
	return findAttr(s.Attributes, name)
}

func findAttr(attrs []*Attribute, name string) *Attribute {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// Extension is a schema extension of a resource type.
type Extension struct {
	Schema   *Schema
	Required bool
}

// ResourceType binds a core schema and its extensions to an endpoint
// (RFC 7643 §6).
type ResourceType struct {
	ID          string
	Name        string
	Endpoint    string
	Description string
	Schema      *Schema
	Extensions  []Extension
	// AnyExtension accepts attributes under any URN starting with
	// ExtensionPrefix that is not declared: Entra sends custom extension
	// attributes that way without announcing them. Their values are
	// single-valued simple values, matched case-insensitively by name.
	AnyExtension bool
}

// SchemaURNs lists the core schema URN followed by the declared extensions.
func (rt *ResourceType) SchemaURNs() []string {
	urns := []string{rt.Schema.ID}
	for _, e := range rt.Extensions {
		urns = append(urns, e.Schema.ID)
	}
	return urns
}

// Schemas lists the core schema followed by the declared extension schemas,
// as served on /Schemas.
func (rt *ResourceType) Schemas() []*Schema {
	s := []*Schema{rt.Schema}
	for _, e := range rt.Extensions {
		s = append(s, e.Schema)
	}
	return s
}

// extension finds a declared extension schema by URN, ignoring case.
func (rt *ResourceType) extension(urn string) *Schema {
	for _, e := range rt.Extensions {
		if strings.EqualFold(e.Schema.ID, urn) {
			return e.Schema
		}
	}
	return nil
}

// SchemasOf returns the value of the "schemas" attribute for doc: the core
// URN plus every extension URN under which doc holds data.
func (rt *ResourceType) SchemasOf(doc map[string]any) []string {
	urns := []string{rt.Schema.ID}
	var undeclared []string
	for k, v := range doc {
		if _, ok := v.(map[string]any); !ok || !strings.HasPrefix(k, "urn:") {
			continue
		}
		if s := rt.extension(k); s != nil {
			continue
		}
		if rt.AnyExtension && hasPrefixFold(k, ExtensionPrefix) {
			undeclared = append(undeclared, k)
		}
	}
	for _, e := range rt.Extensions {
		if _, ok := doc[e.Schema.ID].(map[string]any); ok {
			urns = append(urns, e.Schema.ID)
		}
	}
	slices.Sort(undeclared)
	return append(urns, undeclared...)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// FindKey finds the key of m that equals name, preferring an exact match
// and otherwise the smallest key equal to name under case folding. It
// serves the maps whose keys are kept as first written (undeclared
// extension attributes and URNs).
func FindKey(m map[string]any, name string) (string, bool) {
	if _, ok := m[name]; ok {
		return name, true
	}
	found, ok := "", false
	for k := range m {
		if strings.EqualFold(k, name) && (!ok || k < found) {
			found, ok = k, true
		}
	}
	return found, ok
}

func cloneAttr(a *Attribute) *Attribute {
	c := *a
	c.CanonicalValues = slices.Clone(a.CanonicalValues)
	c.ReferenceTypes = slices.Clone(a.ReferenceTypes)
	c.SubAttributes = nil
	for _, s := range a.SubAttributes {
		c.SubAttributes = append(c.SubAttributes, cloneAttr(s))
	}
	return &c
}

// IsExtensionURN reports whether s can name an undeclared extension schema:
// ExtensionPrefix and more, in the characters schema URNs use (letters,
// digits, ':', '.', '-', '_'), at most 256 bytes. Anything else (spaces,
// control characters, quotes) is no schema this server will store.
func IsExtensionURN(s string) bool {
	if len(s) <= len(ExtensionPrefix) || len(s) > 256 || !hasPrefixFold(s, ExtensionPrefix) {
		return false
	}
	if !isAlnum(s[len(ExtensionPrefix)]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != ':' && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// CanonicalExtensionURN spells an undeclared extension URN with the RFC
// prefix in lower case and the rest as the client wrote it: the prefix is
// case-insensitive, the extension's own name is kept.
func CanonicalExtensionURN(s string) string {
	if len(s) < len(ExtensionPrefix) {
		return s
	}
	return ExtensionPrefix + s[len(ExtensionPrefix):]
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
