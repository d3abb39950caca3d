package convert_test

import (
	"encoding/json"
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/scim/repository/convert"
)

// TestUserRoundTrip: every attribute a spec holds survives UserDoc and
// UserSpec unchanged (through JSON, as a document travels), or Entra would
// re-send the same PATCH every cycle.
func TestUserRoundTrip(t *testing.T) {
	spec := scimv1.ProvisionedUserSpec{
		UserName: "ann@example.test", ExternalID: "ext-1", DisplayName: "Ann", Title: "Engineer",
		Name:   &scimv1.PersonName{GivenName: "Ann", FamilyName: "Archer"},
		Active: ptr.To(false),
		Emails: []scimv1.MultiValuedAttribute{{Value: "ann@example.test", Type: "work", Primary: true},
			{Value: "a@example.test", NotPrimary: true}},
		PhoneNumbers:     []scimv1.MultiValuedAttribute{{Value: "+1 555", Display: "desk"}},
		X509Certificates: []scimv1.X509Certificate{{Value: "MIIB"}},
		Addresses:        []scimv1.Address{{Locality: "Oslo", Country: "NO", Primary: true}},
		Enterprise: &scimv1.EnterpriseUser{EmployeeNumber: "42", Manager: "boss-id",
			CustomFields: map[string]apiextensionsv1.JSON{"badge": {Raw: []byte(`7`)}}},
		Extensions: map[string]scimv1.ExtensionAttributes{
			"urn:example:ext": {"shoe": apiextensionsv1.JSON{Raw: []byte(`"44"`)}}},
	}
	raw, err := json.Marshal(convert.UserDoc(&spec))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	got, err := convert.UserSpec(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Errorf("round trip changed the spec:\n got %+v\nwant %+v\n doc %s", got, spec, raw)
	}
}

// TestUserSpecRefuses: a string attribute that is not a string names its
// path in the error.
func TestUserSpecRefuses(t *testing.T) {
	for doc, want := range map[string]string{
		`{"userName":1}`:                                      "userName: want a string, got float64",
		`{"name":{"givenName":true}}`:                         "name.givenName: want a string, got bool",
		`{"` + convert.EnterpriseURN + `":{"department":[]}}`: convert.EnterpriseURN + ":department: want a string, got []interface {}",
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		if _, err := convert.UserSpec(m); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", doc, err, want)
		}
	}
}
