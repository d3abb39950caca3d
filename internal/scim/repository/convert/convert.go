package repository

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

// The conversions below map canonical SCIM documents (see package schema:
// canonical names, extension data under its URN, no empty values) onto the
// typed specs and back. A round trip must give back exactly what a client
// wrote, or Entra would re-send the same PATCH every cycle.

var userStrings = []struct {
	key string
	get func(*scimv1.ProvisionedUserSpec) *string
}{
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

var nameParts = []struct {
	key string
	get func(*scimv1.PersonName) *string
}{
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

var addressParts = []struct {
	key string
	get func(*scimv1.Address) *string
}{
	{"formatted", func(a *scimv1.Address) *string { return &a.Formatted }},
	{"streetAddress", func(a *scimv1.Address) *string { return &a.StreetAddress }},
	{"locality", func(a *scimv1.Address) *string { return &a.Locality }},
	{"region", func(a *scimv1.Address) *string { return &a.Region }},
	{"postalCode", func(a *scimv1.Address) *string { return &a.PostalCode }},
	{"country", func(a *scimv1.Address) *string { return &a.Country }},
	{"type", func(a *scimv1.Address) *string { return &a.Type }},
}

var enterpriseStrings = []struct {
	key string
	get func(*scimv1.EnterpriseUser) *string
}{
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
		name := map[string]any{}
		for _, f := range nameParts {
			if v := *f.get(s.Name); v != "" {
				name[f.key] = v
			}
		}
		if len(name) > 0 {
			doc["name"] = name
		}
	}
	if s.Active != nil {
		doc["active"] = *s.Active
	}
	for _, f := range multiValued {
		if list := *f.get(s); len(list) > 0 {
			out := make([]any, 0, len(list))
			for _, mv := range list {
				out = append(out, multiValuedDoc(mv))
			}
			doc[f.key] = out
		}
	}
	if len(s.X509Certificates) > 0 {
		out := make([]any, 0, len(s.X509Certificates))
		for _, c := range s.X509Certificates {
			out = append(out, multiValuedDoc(scimv1.MultiValuedAttribute(c)))
		}
		doc["x509Certificates"] = out
	}
	if len(s.Addresses) > 0 {
		out := make([]any, 0, len(s.Addresses))
		for i := range s.Addresses {
			a := map[string]any{}
			for _, f := range addressParts {
				if v := *f.get(&s.Addresses[i]); v != "" {
					a[f.key] = v
				}
			}
			if p, ok := primaryDoc(s.Addresses[i].Primary, s.Addresses[i].NotPrimary); ok {
				a["primary"] = p
			}
			out = append(out, a)
		}
		doc["addresses"] = out
	}
	if e := s.Enterprise; e != nil {
		ext := map[string]any{}
		for _, f := range enterpriseStrings {
			if v := *f.get(e); v != "" {
				ext[f.key] = v
			}
		}
		if e.Manager != "" {
			ext["manager"] = map[string]any{"value": e.Manager}
		}
		for k, raw := range e.CustomFields {
			if v, ok := decodeJSON(raw); ok {
				ext[k] = v
			}
		}
		if len(ext) > 0 {
			doc[EnterpriseURN] = ext
		}
	}
	for urn, attrs := range s.Extensions {
		ext := map[string]any{}
		for k, raw := range attrs {
			if v, ok := decodeJSON(raw); ok {
				ext[k] = v
			}
		}
		if len(ext) > 0 {
			doc[urn] = ext
		}
	}
	return doc
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
	for _, f := range userStrings {
		if v, err := str(doc, f.key); err != nil {
			return s, err
		} else {
			*f.get(&s) = v
		}
	}
	// The canonical key is what the helpdesk's unique index holds, and
	// NFKC can lengthen a value (a ligature becomes two or three letters):
	// refuse here what could never be stored there (I1).
	if n := utf8.RuneCountInString(namekey.Key(s.UserName)); n > MaxUserNameKey {
		return s, fmt.Errorf("userName is %d characters long once normalized (NFKC, case folded); at most %d fit the helpdesk", n, MaxUserNameKey)
	}
	if name, ok := doc["name"].(map[string]any); ok {
		n := &scimv1.PersonName{}
		for _, f := range nameParts {
			v, err := str(name, f.key)
			if err != nil {
				return s, fmt.Errorf("name.%w", err)
			}
			*f.get(n) = v
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
		list, _ := doc[f.key].([]any)
		for _, el := range list {
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			if mv := multiValuedSpec(m); mv != (scimv1.MultiValuedAttribute{}) {
				*f.get(&s) = append(*f.get(&s), mv)
			}
		}
	}
	if list, ok := doc["x509Certificates"].([]any); ok {
		for _, el := range list {
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			if mv := multiValuedSpec(m); mv != (scimv1.MultiValuedAttribute{}) {
				s.X509Certificates = append(s.X509Certificates, scimv1.X509Certificate(mv))
			}
		}
	}
	if list, ok := doc["addresses"].([]any); ok {
		for _, el := range list {
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			var a scimv1.Address
			for _, f := range addressParts {
				*f.get(&a), _ = m[f.key].(string)
			}
			a.Primary, a.NotPrimary = primarySpec(m)
			if a != (scimv1.Address{}) {
				s.Addresses = append(s.Addresses, a)
			}
		}
	}
	for key, v := range doc {
		ext, ok := v.(map[string]any)
		if !ok || !strings.HasPrefix(key, "urn:") {
			continue
		}
		if key == EnterpriseURN {
			e, err := enterpriseSpec(ext)
			if err != nil {
				return s, err
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
	return s, nil
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
