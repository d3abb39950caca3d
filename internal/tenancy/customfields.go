package tenancy

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
)

// A tenant's custom user attributes come from two places: its
// ProvisioningConfig (spec.customFields, kept in Git) and the helpdesk
// database's helpdesk_custom_fields table (kept by the helpdesk). The SCIM
// server serves the union; the ProvisioningConfig controller reports the
// names the two declare differently.

// HelpdeskFields turns rows of helpdesk_custom_fields into definitions:
// names become SCIM attribute names (AttributeName), rows of an unknown
// type or without a usable name are left out, and the first row of a name
// wins (the tenant's own rows come before those of every tenant).
func HelpdeskFields(rows []helpdesk.CustomField, tenant string) []scimv1.CustomFieldDefinition {
	sorted := append([]helpdesk.CustomField(nil), rows...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].Tenant == tenant && sorted[j].Tenant != tenant
	})
	var out []scimv1.CustomFieldDefinition
	seen := map[string]bool{}
	for _, f := range sorted {
		name := AttributeName(f.Name)
		// Within what a ProvisioningConfig's status may hold (the CRD's
		// limits): one field too many or too long would refuse the whole
		// status, and the tenant's custom fields would stay provisional.
		if name == "" || len(name) > maxFieldName || seen[name] || !knownType(f.Type) || len(out) == maxFields {
			continue
		}
		seen[name] = true
		out = append(out, scimv1.CustomFieldDefinition{Name: name, Type: f.Type, Description: "Helpdesk custom field " + f.Name + "."})
	}
	return out
}

// The CRD's limits on custom field definitions.
const (
	maxFieldName = 64
	maxFields    = 100
)

func knownType(t string) bool {
	switch t {
	case helpdesk.CustomFieldString, helpdesk.CustomFieldBoolean, helpdesk.CustomFieldDateTime, helpdesk.CustomFieldInteger:
		return true
	}
	return false
}

// MergeFields is the union of the fields the database declares and those
// declared in the config. A name both declare with another type or
// multiplicity is a clash: the database's definition is kept (the helpdesk
// reads the value as it declares it) and the clash is described, for the
// CustomFieldsConsistent condition.
func MergeFields(declared, fromDB []scimv1.CustomFieldDefinition) ([]scimv1.CustomFieldDefinition, []string) {
	out := append([]scimv1.CustomFieldDefinition(nil), fromDB...)
	byName := map[string]scimv1.CustomFieldDefinition{}
	for _, f := range fromDB {
		byName[f.Name] = f
	}
	var clashes []string
	for _, f := range declared {
		f.Type = typeOrString(f.Type)
		db, both := byName[f.Name]
		switch {
		case !both:
			out = append(out, f)
			byName[f.Name] = f
		case db.Type != f.Type || db.MultiValued != f.MultiValued:
			clashes = append(clashes, fmt.Sprintf("%s is declared %s in spec.customFields but %s in the helpdesk database, which is served",
				f.Name, describe(f), describe(db)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, clashes
}

func typeOrString(t string) string {
	if t == "" {
		return helpdesk.CustomFieldString
	}
	return t
}

func describe(f scimv1.CustomFieldDefinition) string {
	if f.MultiValued {
		return "a multi-valued " + typeOrString(f.Type)
	}
	return "a single " + typeOrString(f.Type)
}

// AttributeName turns a helpdesk field name into its SCIM attribute name:
// lower-cased, punctuation stripped, spaces turned into dashes
// ("Shoe Size (EU)" -> "shoe-size-eu"). "" when nothing usable is left.
func AttributeName(field string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.TrimSpace(field)) {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		case unicode.IsSpace(r) || r == '-' || r == '_':
			dash = true
		}
	}
	name := b.String()
	// SCIM attribute names start with a letter (RFC 7643 §2.1).
	if name == "" || !unicode.IsLetter(rune(name[0])) {
		return ""
	}
	return name
}
