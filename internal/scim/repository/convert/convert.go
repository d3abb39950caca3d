// Package convert maps SCIM documents onto the custom resources' specs and
// back: a user or group spec as a canonical SCIM document (see package
// schema: canonical names, extension data under its URN, no empty values)
// and a canonical document as a spec. A round trip must give back exactly
// what a client wrote, or Entra would re-send the same PATCH every cycle.
// It knows the API types only, no Kubernetes client.
package convert

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/namekey"
)

// Schema URNs of the documents this package reads and writes.
const (
	UserURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	EnterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	GroupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
)

// stringField is a string attribute of T: its SCIM name and where it is
// stored.
type stringField[T any] struct {
	key string
	get func(*T) *string
}

var userStrings = []stringField[scimv1.ProvisionedUserSpec]{
	{"userName", func(s *scimv1.ProvisionedUserSpec) *string { return &s.UserName }},
	{"externalId", func(s *scimv1.ProvisionedUserSpec) *string { return &s.ExternalID }},
	{"displayName", func(s *scimv1.ProvisionedUserSpec) *string { return &s.DisplayName }},
	{"nickName", func(s *scimv1.ProvisionedUserSpec) *string { return &s.NickName }},
	{"profileUrl", func(s *scimv1.ProvisionedUserSpec) *string { return &s.ProfileURL }},
	{"title", func(s *scimv1.ProvisionedUserSpec) *string { return &s.Title }},
	{"userType", func(s *scimv1.ProvisionedUserSpec) *string { return &s.UserType }},
	{"preferredLanguage", func(s *scimv1.ProvisionedUserSpec) *string { return &s.PreferredLanguage }},
	{"locale", func(s *scimv1.ProvisionedUserSpec) *string { return &s.Locale }},
	{"timezone", func(s *scimv1.ProvisionedUserSpec) *string { return &s.Timezone }},
}

var nameParts = []stringField[scimv1.PersonName]{
	{"formatted", func(n *scimv1.PersonName) *string { return &n.Formatted }},
	{"familyName", func(n *scimv1.PersonName) *string { return &n.FamilyName }},
	{"givenName", func(n *scimv1.PersonName) *string { return &n.GivenName }},
	{"middleName", func(n *scimv1.PersonName) *string { return &n.MiddleName }},
	{"honorificPrefix", func(n *scimv1.PersonName) *string { return &n.HonorificPrefix }},
	{"honorificSuffix", func(n *scimv1.PersonName) *string { return &n.HonorificSuffix }},
}

var multiValued = []struct {
	key string
	get func(*scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute
}{
	{"emails", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.Emails }},
	{"phoneNumbers", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.PhoneNumbers }},
	{"ims", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.Ims }},
	{"photos", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.Photos }},
	{"roles", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.Roles }},
	{"entitlements", func(s *scimv1.ProvisionedUserSpec) *[]scimv1.MultiValuedAttribute { return &s.Entitlements }},
}

var addressParts = []stringField[scimv1.Address]{
	{"formatted", func(a *scimv1.Address) *string { return &a.Formatted }},
	{"streetAddress", func(a *scimv1.Address) *string { return &a.StreetAddress }},
	{"locality", func(a *scimv1.Address) *string { return &a.Locality }},
	{"region", func(a *scimv1.Address) *string { return &a.Region }},
	{"postalCode", func(a *scimv1.Address) *string { return &a.PostalCode }},
	{"country", func(a *scimv1.Address) *string { return &a.Country }},
	{"type", func(a *scimv1.Address) *string { return &a.Type }},
}

var enterpriseStrings = []stringField[scimv1.EnterpriseUser]{
	{"employeeNumber", func(e *scimv1.EnterpriseUser) *string { return &e.EmployeeNumber }},
	{"costCenter", func(e *scimv1.EnterpriseUser) *string { return &e.CostCenter }},
	{"organization", func(e *scimv1.EnterpriseUser) *string { return &e.Organization }},
	{"division", func(e *scimv1.EnterpriseUser) *string { return &e.Division }},
	{"department", func(e *scimv1.EnterpriseUser) *string { return &e.Department }},
}

// UserDoc renders a user spec as a canonical SCIM document (without id,
// meta, schemas and groups, which the caller adds).
func UserDoc(s *scimv1.ProvisionedUserSpec) map[string]any {
	doc := map[string]any{}
	for _, f := range userStrings {
		if v := *f.get(s); v != "" {
			doc[f.key] = v
		}
	}
	if s.Name != nil {
		if name := stringsDoc(nameParts, s.Name); len(name) > 0 {
			doc["name"] = name
		}
	}
	if s.Active != nil {
		doc["active"] = *s.Active
	}
	for _, f := range multiValued {
		if list := *f.get(s); len(list) > 0 {
			doc[f.key] = multiValuedDocs(list)
		}
	}
	if len(s.X509Certificates) > 0 {
		certs := make([]scimv1.MultiValuedAttribute, len(s.X509Certificates))
		for i, c := range s.X509Certificates {
			certs[i] = scimv1.MultiValuedAttribute(c)
		}
		doc["x509Certificates"] = multiValuedDocs(certs)
	}
	if len(s.Addresses) > 0 {
		doc["addresses"] = addressDocs(s.Addresses)
	}
	if s.Enterprise != nil {
		if ext := enterpriseDoc(s.Enterprise); len(ext) > 0 {
			doc[EnterpriseURN] = ext
		}
	}
	for urn, attrs := range s.Extensions {
		if ext := decodeAll(attrs, map[string]any{}); len(ext) > 0 {
			doc[urn] = ext
		}
	}
	return doc
}

// stringsDoc renders the non-empty string fields of v.
func stringsDoc[T any](fields []stringField[T], v *T) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		if s := *f.get(v); s != "" {
			out[f.key] = s
		}
	}
	return out
}

func multiValuedDocs(list []scimv1.MultiValuedAttribute) []any {
	out := make([]any, 0, len(list))
	for _, mv := range list {
		out = append(out, multiValuedDoc(mv))
	}
	return out
}

func addressDocs(addresses []scimv1.Address) []any {
	out := make([]any, 0, len(addresses))
	for i := range addresses {
		a := stringsDoc(addressParts, &addresses[i])
		if p, ok := primaryDoc(addresses[i].Primary, addresses[i].NotPrimary); ok {
			a["primary"] = p
		}
		out = append(out, a)
	}
	return out
}

func enterpriseDoc(e *scimv1.EnterpriseUser) map[string]any {
	ext := stringsDoc(enterpriseStrings, e)
	if e.Manager != "" {
		ext["manager"] = map[string]any{"value": e.Manager}
	}
	return decodeAll(e.CustomFields, ext)
}

// decodeAll adds the decodable attributes of attrs to into.
func decodeAll(attrs map[string]apiextensionsv1.JSON, into map[string]any) map[string]any {
	for k, raw := range attrs {
		if v, ok := decodeJSON(raw); ok {
			into[k] = v
		}
	}
	return into
}

func multiValuedDoc(mv scimv1.MultiValuedAttribute) map[string]any {
	m := map[string]any{}
	if mv.Value != "" {
		m["value"] = mv.Value
	}
	if mv.Display != "" {
		m["display"] = mv.Display
	}
	if mv.Type != "" {
		m["type"] = mv.Type
	}
	if p, ok := primaryDoc(mv.Primary, mv.NotPrimary); ok {
		m["primary"] = p
	}
	return m
}

// primaryDoc renders the stored primary flags: true, an explicit false, or
// absent.
func primaryDoc(primary, notPrimary bool) (bool, bool) {
	switch {
	case primary:
		return true, true
	case notPrimary:
		return false, true
	}
	return false, false
}

// primarySpec reads "primary" of a canonical element into the two stored
// flags.
func primarySpec(m map[string]any) (primary, notPrimary bool) {
	b, ok := m["primary"].(bool)
	return ok && b, ok && !b
}

func multiValuedSpec(m map[string]any) scimv1.MultiValuedAttribute {
	mv := scimv1.MultiValuedAttribute{}
	mv.Value, _ = m["value"].(string)
	mv.Display, _ = m["display"].(string)
	mv.Type, _ = m["type"].(string)
	mv.Primary, mv.NotPrimary = primarySpec(m)
	return mv
}

// MaxUserNameKey is the longest canonical userName (namekey.Key) the
// helpdesk's unique key column holds.
const MaxUserNameKey = 191

// UserSpec builds a user spec from a canonical SCIM document. Enterprise
// attributes beyond RFC 7643 §4.3 are the helpdesk's custom fields (the
// schema only lets declared ones through).
func UserSpec(doc map[string]any) (scimv1.ProvisionedUserSpec, error) {
	var s scimv1.ProvisionedUserSpec
	if err := stringsSpec(userStrings, doc, &s, ""); err != nil {
		return s, err
	}
	// The canonical key is what the helpdesk's unique index holds, and
	// NFKC can lengthen a value (a ligature becomes two or three letters):
	// refuse here what could never be stored there (I1).
	if n := utf8.RuneCountInString(namekey.Key(s.UserName)); n > MaxUserNameKey {
		return s, fmt.Errorf("userName is %d characters long once normalized (NFKC, case folded); at most %d fit the helpdesk", n, MaxUserNameKey)
	}
	if name, ok := doc["name"].(map[string]any); ok {
		n := &scimv1.PersonName{}
		if err := stringsSpec(nameParts, name, n, "name."); err != nil {
			return s, err
		}
		if *n != (scimv1.PersonName{}) {
			s.Name = n
		}
	}
	// active is stored only when sent: removed, it reads back absent (and
	// counts as active for the helpdesk).
	if v, ok := doc["active"].(bool); ok {
		s.Active = ptr.To(v)
	}
	for _, f := range multiValued {
		*f.get(&s) = append(*f.get(&s), multiValuedSpecs(doc[f.key])...)
	}
	for _, mv := range multiValuedSpecs(doc["x509Certificates"]) {
		s.X509Certificates = append(s.X509Certificates, scimv1.X509Certificate(mv))
	}
	s.Addresses = addressSpecs(doc["addresses"])
	err := extensionsSpec(doc, &s)
	return s, err
}

// stringsSpec sets the string fields of v from m; prefix names m in errors.
func stringsSpec[T any](fields []stringField[T], m map[string]any, v *T, prefix string) error {
	for _, f := range fields {
		s, err := str(m, f.key)
		if err != nil {
			return fmt.Errorf("%s%w", prefix, err)
		}
		*f.get(v) = s
	}
	return nil
}

// elements are the objects of a multi-valued attribute; anything else in
// the list is skipped.
func elements(list any) []map[string]any {
	items, _ := list.([]any)
	var out []map[string]any
	for _, el := range items {
		if m, ok := el.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// multiValuedSpecs reads the non-empty elements of a multi-valued
// attribute.
func multiValuedSpecs(list any) []scimv1.MultiValuedAttribute {
	var out []scimv1.MultiValuedAttribute
	for _, m := range elements(list) {
		if mv := multiValuedSpec(m); mv != (scimv1.MultiValuedAttribute{}) {
			out = append(out, mv)
		}
	}
	return out
}

func addressSpecs(list any) []scimv1.Address {
	var out []scimv1.Address
	for _, m := range elements(list) {
		var a scimv1.Address
		for _, f := range addressParts {
			*f.get(&a), _ = m[f.key].(string)
		}
		a.Primary, a.NotPrimary = primarySpec(m)
		if a != (scimv1.Address{}) {
			out = append(out, a)
		}
	}
	return out
}

// extensionsSpec reads the schema extensions of doc (attributes under a
// URN) into s.
func extensionsSpec(doc map[string]any, s *scimv1.ProvisionedUserSpec) error {
	for key, v := range doc {
		ext, ok := v.(map[string]any)
		if !ok || !strings.HasPrefix(key, "urn:") {
			continue
		}
		if key == EnterpriseURN {
			e, err := enterpriseSpec(ext)
			if err != nil {
				return err
			}
			s.Enterprise = e
			continue
		}
		attrs := ExtensionAttributesFrom(ext)
		if len(attrs) > 0 {
			if s.Extensions == nil {
				s.Extensions = map[string]scimv1.ExtensionAttributes{}
			}
			s.Extensions[key] = attrs
		}
	}
	return nil
}

func enterpriseSpec(ext map[string]any) (*scimv1.EnterpriseUser, error) {
	e := &scimv1.EnterpriseUser{}
	known := map[string]bool{"manager": true}
	for _, f := range enterpriseStrings {
		known[f.key] = true
		v, err := str(ext, f.key)
		if err != nil {
			return nil, fmt.Errorf("%s:%w", EnterpriseURN, err)
		}
		*f.get(e) = v
	}
	if m, ok := ext["manager"].(map[string]any); ok {
		e.Manager, _ = m["value"].(string)
	}
	for k, v := range ext {
		if known[k] {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s:%s: %w", EnterpriseURN, k, err)
		}
		if e.CustomFields == nil {
			e.CustomFields = map[string]apiextensionsv1.JSON{}
		}
		e.CustomFields[k] = apiextensionsv1.JSON{Raw: raw}
	}
	if e.EmployeeNumber == "" && e.CostCenter == "" && e.Organization == "" && e.Division == "" &&
		e.Department == "" && e.Manager == "" && len(e.CustomFields) == 0 {
		return nil, nil
	}
	return e, nil
}

// ExtensionAttributesFrom encodes an extension's attributes for the spec.
func ExtensionAttributesFrom(ext map[string]any) scimv1.ExtensionAttributes {
	out := scimv1.ExtensionAttributes{}
	for k, v := range ext {
		raw, err := json.Marshal(v)
		if err != nil {
			continue // canonical documents hold only JSON values
		}
		out[k] = apiextensionsv1.JSON{Raw: raw}
	}
	return out
}

// GroupDoc renders a group spec as a canonical SCIM document (without
// members, id, meta and schemas).
func GroupDoc(s *scimv1.ProvisionedGroupSpec) map[string]any {
	doc := map[string]any{"displayName": s.DisplayName}
	if s.ExternalID != "" {
		doc["externalId"] = s.ExternalID
	}
	return doc
}

// GroupSpec builds a group spec from a canonical SCIM document.
func GroupSpec(doc map[string]any) (scimv1.ProvisionedGroupSpec, error) {
	var s scimv1.ProvisionedGroupSpec
	var err error
	if s.DisplayName, err = str(doc, "displayName"); err != nil {
		return s, err
	}
	if s.ExternalID, err = str(doc, "externalId"); err != nil {
		return s, err
	}
	return s, nil
}

func str(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %T", key, v)
	}
	return s, nil
}

func decodeJSON(raw apiextensionsv1.JSON) (any, bool) {
	if len(raw.Raw) == 0 {
		return nil, false
	}
	var v any
	if err := json.Unmarshal(raw.Raw, &v); err != nil || v == nil {
		return nil, false
	}
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return int64(f), true
	}
	return v, true
}
