package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

func decode(t *testing.T, s string, useNumber bool) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	if useNumber {
		d.UseNumber()
	}
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return m
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}

// entraCreate has the shape of the POST /Users body Entra sends with the
// default mappings, including the nulls and the client-sent meta.
const entraCreate = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "alice",
  "userName": "Alice@contoso.test",
  "active": "True",
  "addresses": null,
  "displayName": "Alice Liddell",
  "emails": [{"primary": true, "type": "work", "value": "Alice@Contoso.test"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "Alice Liddell", "familyName": "Liddell", "givenName": "Alice"},
  "phoneNumbers": [{"type": "work", "value": "4255550123"}],
  "title": null,
  "preferredLanguage": "en-US",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "1042", "department": "Research", "manager": null
  }
}`

const wantEntraCreate = `{"active":true,"displayName":"Alice Liddell","emails":[{"primary":true,"type":"work","value":"Alice@Contoso.test"}],"externalId":"alice","name":{"familyName":"Liddell","formatted":"Alice Liddell","givenName":"Alice"},"phoneNumbers":[{"type":"work","value":"4255550123"}],"preferredLanguage":"en-US","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research","employeeNumber":"1042"},"userName":"Alice@contoso.test"}`

// canonicalizeUserCases are request bodies and the canonical form each must turn into.
var canonicalizeUserCases = []struct {
	name string
	body string
	want string
}{
	{"entra create", entraCreate, wantEntraCreate},
	{
		"okta create drops password and groups",
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@example.test",
			  "name":{"givenName":"Bob","familyName":"Smith"},"emails":[{"primary":true,"value":"bob@example.test","type":"work"}],
			  "displayName":"Bob Smith","locale":"en-US","externalId":"00u1","groups":[],"password":"1mz050nq","active":true}`,
		`{"active":true,"displayName":"Bob Smith","emails":[{"primary":true,"type":"work","value":"bob@example.test"}],"externalId":"00u1","locale":"en-US","name":{"familyName":"Smith","givenName":"Bob"},"userName":"bob@example.test"}`,
	},
	{
		"read-only attributes ignored",
		`{"id":"client-id","userName":"a","meta":{"created":"2020-01-01T00:00:00Z"},"groups":[{"value":"g1"}]}`,
		`{"userName":"a"}`,
	},
	{
		"names case-insensitive",
		`{"UserName":"a","NAME":{"GivenName":"A","familyname":"B"},"Emails":[{"Value":"a@x","TYPE":"work","Primary":"TRUE"}],"ACTIVE":"false"}`,
		`{"active":false,"emails":[{"primary":true,"type":"work","value":"a@x"}],"name":{"familyName":"B","givenName":"A"},"userName":"a"}`,
	},
	{
		"full attribute URNs routed and merged",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","costCenter":"1"},
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:Department":"Sales",
			  "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:employeeNumber":"7",
			  "urn:ietf:params:scim:schemas:core:2.0:User:title":"Boss",
			  "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName":"A"}`,
		`{"name":{"givenName":"A"},"title":"Boss","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"costCenter":"1","department":"Sales","employeeNumber":"7"},"userName":"a"}`,
	},
	{
		"unknown attributes and schemas ignored",
		`{"schemas":["urn:bogus"],"userName":"a","shoeSize":44,"urn:bogus:thing":"x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"shoeSize":1},
			  "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User":{"x":1}}`,
		`{"userName":"a"}`,
	},
	{
		"empty strings, empty lists and empty objects are absent",
		`{"userName":"a","title":"","emails":[],"name":{"givenName":""},"phoneNumbers":[{"value":"","type":""}],
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":""}}`,
		`{"userName":"a"}`,
	},
	{
		"single object where a list is expected",
		`{"userName":"a","emails":{"value":"a@x","type":"work"}}`,
		`{"emails":[{"type":"work","value":"a@x"}],"userName":"a"}`,
	},
	{
		"bare strings in multi-valued complex",
		`{"userName":"a","roles":["admin","","reader"]}`,
		`{"roles":[{"value":"admin"},{"value":"reader"}],"userName":"a"}`,
	},
	{
		"manager as bare id",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"7d3e9a10"}}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"7d3e9a10"}},"userName":"a"}`,
	},
	{
		"manager as object with displayName",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"7d3e9a10","displayName":"Bob"}}}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"7d3e9a10"}},"userName":"a"}`,
	},
	{
		"manager as array with $ref",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":[{"$ref":"https://x/Users/7d3e9a10","value":"7d3e9a10"}]}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"7d3e9a10"}},"userName":"a"}`,
	},
	{
		"manager empty value is absent",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":""},"department":"R"}}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R"},"userName":"a"}`,
	},
	{
		"custom extension attributes",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:costCode":"CC-1",
			  "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:remote":true,
			  "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:Level":3,
			  "urn:ietf:params:scim:schemas:extension:Other:1.0:User":{"Badge":"b1","ratio":0.5}}`,
		`{"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"Level":3,"costCode":"CC-1","remote":true},"urn:ietf:params:scim:schemas:extension:Other:1.0:User":{"Badge":"b1","ratio":0.5},"userName":"a"}`,
	},
	{
		"custom extension keeps first spelling",
		`{"userName":"a","urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"old"},
			  "urn:ietf:params:scim:schemas:extension:contoso:2.0:user:COSTCODE":"new"}`,
		`{"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"new"},"userName":"a"}`,
	},
}

func TestCanonicalizeUser(t *testing.T) {
	for _, tt := range canonicalizeUserCases {
		for _, useNumber := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				rt := UserResourceType()
				got, err := rt.Canonicalize(decode(t, tt.body, useNumber), ModeCreate)
				if err != nil {
					t.Fatalf("Canonicalize: %v", err)
				}
				if g := asJSON(t, got); g != tt.want {
					t.Errorf("got  %s\nwant %s", g, tt.want)
				}
			})
		}
	}
}

func TestCanonicalizeTypes(t *testing.T) {
	rt := UserResourceType(&Attribute{Name: "badge", Type: Integer, Mutability: ReadWrite, Returned: ReturnedDefault},
		&Attribute{Name: "weight", Type: Decimal, Mutability: ReadWrite, Returned: ReturnedDefault},
		&Attribute{Name: "hired", Type: DateTime, Mutability: ReadWrite, Returned: ReturnedDefault})
	body := decode(t, `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"badge":12,"weight":1.5,"hired":"2024-05-01T09:00:00+02:00"}}`, true)
	got, err := rt.Canonicalize(body, ModeReplace)
	if err != nil {
		t.Fatal(err)
	}
	ext := got[EnterpriseURN].(map[string]any)
	if ext["badge"] != int64(12) || ext["weight"] != 1.5 || ext["hired"] != "2024-05-01T09:00:00+02:00" {
		t.Errorf("got %#v", ext)
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	big := strings.Repeat("x", MaxStringLen+1)
	tests := []struct {
		name     string
		rt       *ResourceType
		body     string
		scimType string
		detail   string
	}{
		{"missing userName", UserResourceType(), `{"displayName":"x"}`, "invalidValue", `"userName" is required`},
		{"null userName", UserResourceType(), `{"userName":null}`, "invalidValue", `"userName" is required`},
		{"empty userName", UserResourceType(), `{"userName":""}`, "invalidValue", `"userName" is required`},
		{"bad boolean string", UserResourceType(), `{"userName":"a","active":"yes"}`, "invalidValue", `"active" must be a boolean`},
		{"boolean as number", UserResourceType(), `{"userName":"a","active":1}`, "invalidValue", `"active" must be a boolean`},
		{"bad sub boolean", UserResourceType(), `{"userName":"a","emails":[{"value":"a","primary":"Y"}]}`, "invalidValue", `"emails.primary" must be a boolean`},
		{"string as number", UserResourceType(), `{"userName":42}`, "invalidValue", `"userName" must be a string`},
		{"complex as string", UserResourceType(), `{"userName":"a","name":"Alice"}`, "invalidValue", `"name" must be a JSON object`},
		{"nested array", UserResourceType(), `{"userName":"a","emails":[[{"value":"x"}]]}`, "invalidValue", `"emails" must be a JSON object`},
		{"manager number", UserResourceType(), `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":7}}`, "invalidValue", `manager" must be an object`},
		{"extension not object", UserResourceType(), `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`, "invalidValue", "must hold a JSON object"},
		{"custom extension complex value", UserResourceType(), `{"userName":"a","urn:ietf:params:scim:schemas:extension:C:2.0:User:x":["a"]}`, "invalidValue", "must be a string, boolean or number"},
		{"custom extension bad name", UserResourceType(), `{"userName":"a","urn:ietf:params:scim:schemas:extension:C:2.0:User":{"a b":1}}`, "invalidValue", "invalid attribute name"},
		{"long string", UserResourceType(), `{"userName":"` + big + `"}`, "invalidValue", "at most 65536"},
		{"group without displayName", GroupResourceType(), `{"members":[]}`, "invalidValue", `"displayName" is required`},
		{"member not object", GroupResourceType(), `{"displayName":"g","members":[true]}`, "invalidValue", `"members.value" must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rt.Canonicalize(decode(t, tt.body, false), ModeCreate)
			e, ok := scimerr.As(err)
			if !ok {
				t.Fatalf("got %v, want a SCIM error", err)
			}
			if e.Status != 400 || e.ScimType != tt.scimType || !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("got %d %s %q, want 400 %s containing %q", e.Status, e.ScimType, e.Detail, tt.scimType, tt.detail)
			}
		})
	}
}

func TestCanonicalizeGroup(t *testing.T) {
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
	  "id":"client","externalId":"8aa1a0c0","displayName":"Sales","meta":{"resourceType":"Group"},
	  "members":[{"value":"u1","$ref":null,"display":"Alice"},{"value":"u2","type":"User"},
	    {"value":"u3","displayName":"Bob"},{"value":"u4","DisplayName":"not this","display":"Dan"}],
	  "urn:ietf:params:scim:schemas:extension:Foo:2.0:Group":{"x":"y"}}`
	got, err := GroupResourceType().Canonicalize(decode(t, body, false), ModeCreate)
	if err != nil {
		t.Fatal(err)
	}
	// A member's display is kept (immutable, like its value), and its
	// "displayName" is read as display unless display is sent too
	// (docs/conformance.md).
	want := `{"displayName":"Sales","externalId":"8aa1a0c0","members":[{"display":"Alice","value":"u1"},{"type":"User","value":"u2"},` +
		`{"display":"Bob","value":"u3"},{"display":"Dan","value":"u4"}]}`
	if g := asJSON(t, got); g != want {
		t.Errorf("got  %s\nwant %s", g, want)
	}
}

func TestCoerceValue(t *testing.T) {
	rt := UserResourceType()
	tests := []struct {
		path string
		in   any
		want any
	}{
		{"active", "False", false},
		{"active", "TRUE", true},
		{"active", nil, nil},
		{"title", "", nil},
		{"emails", map[string]any{"value": "a@x"}, []any{map[string]any{"value": "a@x"}}},
		{"emails.primary", "True", true},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "7d3e", map[string]any{"value": "7d3e"}},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", map[string]any{"value": ""}, nil},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "", nil},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "7d3e", "7d3e"},
		{"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:n", json.Number("3"), int64(3)},
		{"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:n", 2.5, 2.5},
		{"name", map[string]any{"GIVENNAME": "A", "bogus": 1}, map[string]any{"givenName": "A"}},
	}
	for _, tt := range tests {
		p, err := rt.ResolveText(tt.path)
		if err != nil {
			t.Fatalf("%s: %v", tt.path, err)
		}
		got, err := rt.CoerceValue(p, tt.in)
		if err != nil {
			t.Errorf("%s %v: %v", tt.path, tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %v: got %#v, want %#v", tt.path, tt.in, got, tt.want)
		}
	}
	p, _ := rt.ResolveText("active")
	if _, err := rt.CoerceValue(p, "maybe"); err == nil {
		t.Error("CoerceValue(active, maybe) succeeded")
	}
}

func TestResolve(t *testing.T) {
	rt := UserResourceType()
	tests := []struct {
		text, want string
		core       bool
	}{
		{"userName", "userName", true},
		{"USERNAME", "userName", true},
		{"name.FamilyName", "name.familyName", true},
		{"emails.Value", "emails.value", true},
		{"id", "id", true},
		{"meta.LASTMODIFIED", "meta.lastModified", true},
		{"urn:ietf:params:scim:schemas:core:2.0:User:displayName", "displayName", true},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", EnterpriseURN + ":employeeNumber", false},
		{"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:MANAGER.VALUE", EnterpriseURN + ":manager.value", false},
		{"manager", EnterpriseURN + ":manager", false},
		{"department", EnterpriseURN + ":department", false},
		{"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:costCode", "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:costCode", false},
		{"groups.$ref", "groups.$ref", true},
	}
	for _, tt := range tests {
		p, err := rt.ResolveText(tt.text)
		if err != nil {
			t.Errorf("%s: %v", tt.text, err)
			continue
		}
		if p.String() != tt.want || p.IsCore() != tt.core {
			t.Errorf("%s: got %s core=%v, want %s core=%v", tt.text, p, p.IsCore(), tt.want, tt.core)
		}
	}
	bad := []string{"foo", "name.foo", "userName.x", "urn:bogus:x", "a b", "", "name.", ".x",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoe", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}
	for _, text := range bad {
		_, err := rt.ResolveText(text)
		if e, ok := scimerr.As(err); !ok || e.ScimType != "invalidPath" {
			t.Errorf("%q: got %v, want invalidPath", text, err)
		}
	}
	_, err := rt.ResolveText("foo")
	if !strings.Contains(err.Error(), `unknown attribute "foo" on User; known attributes are id, externalId, meta, userName`) {
		t.Errorf("detail: %v", err)
	}
	if _, err := GroupResourceType().ResolveText("urn:ietf:params:scim:schemas:extension:Contoso:2.0:Group:x"); err == nil {
		t.Error("Group accepted an undeclared extension")
	}
}

func TestValue(t *testing.T) {
	rt := UserResourceType()
	doc := decode(t, wantEntraCreate, false)
	doc["urn:ietf:params:scim:schemas:extension:Contoso:2.0:User"] = map[string]any{"costCode": "CC"}
	doc["emails"] = append(doc["emails"].([]any), map[string]any{"type": "home"})
	tests := []struct {
		path string
		want []any
	}{
		{"userName", []any{"Alice@contoso.test"}},
		{"emails.value", []any{"Alice@Contoso.test"}},
		{"emails.type", []any{"work", "home"}},
		{"name.givenName", []any{"Alice"}},
		{"title", nil},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", []any{"Research"}},
		{"urn:ietf:params:scim:schemas:extension:CONTOSO:2.0:User:COSTCODE", []any{"CC"}},
	}
	for _, tt := range tests {
		p, err := rt.ResolveText(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.Value(doc, p); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.path, got, tt.want)
		}
	}
}

func TestProject(t *testing.T) {
	rt := UserResourceType()
	doc := decode(t, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"1","userName":"a","password":"p","title":"T",
	  "name":{"givenName":"A","familyName":"B"},"emails":[{"value":"a@x","type":"work"},{"value":"b@x","type":"home"}],
	  "meta":{"resourceType":"User","location":"https://x/Users/1"},
	  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R","manager":{"value":"m"}},
	  "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"CC"}}`, false)
	tests := []struct {
		name               string
		attributes, exclud []string
		want               string
	}{
		{"default drops never", nil, nil,
			`{"emails":[{"type":"work","value":"a@x"},{"type":"home","value":"b@x"}],"id":"1","meta":{"location":"https://x/Users/1","resourceType":"User"},"name":{"familyName":"B","givenName":"A"},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"title":"T","urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"CC"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R","manager":{"value":"m"}},"userName":"a"}`},
		{"attributes=id", []string{"id"}, nil,
			`{"id":"1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}`},
		{"attributes=userName,NAME.givenName,emails.value,password", []string{"userName", "NAME.givenName", "emails.value", "password"}, nil,
			`{"emails":[{"value":"a@x"},{"value":"b@x"}],"id":"1","name":{"givenName":"A"},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}`},
		{"attributes with URN and unknown names", []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "bogus", "urn:ietf:params:scim:schemas:extension:contoso:2.0:user"}, nil,
			`{"id":"1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"CC"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}}}`},
		{"attributes=whole enterprise, manager.value", []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "manager.value"}, nil,
			`{"id":"1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R","manager":{"value":"m"}}}`},
		{"excluded", nil, []string{"emails", "name.familyName", "id", "Meta", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:costcode"},
			`{"id":"1","name":{"givenName":"A"},"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"title":"T","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}},"userName":"a"}`},
		{"excluded whole extension", nil, []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "emails.type", "title", "name", "meta"},
			`{"emails":[{"value":"a@x"},{"value":"b@x"}],"id":"1","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User":{"costCode":"CC"},"userName":"a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := asJSON(t, doc)
			got := rt.Project(doc, tt.attributes, tt.exclud)
			if g := asJSON(t, got); g != tt.want {
				t.Errorf("got  %s\nwant %s", g, tt.want)
			}
			if asJSON(t, doc) != before {
				t.Error("Project modified its input")
			}
		})
	}
	g := GroupResourceType()
	group := map[string]any{"id": "g", "displayName": "Sales", "members": []any{map[string]any{"value": "u"}}}
	if got := asJSON(t, g.Project(group, nil, []string{"members"})); got != `{"displayName":"Sales","id":"g"}` {
		t.Errorf("excludedAttributes=members: %s", got)
	}
}

func TestRepresentation(t *testing.T) {
	extra := &Attribute{Name: "badgeColor", Type: String, Mutability: ReadWrite, Returned: ReturnedDefault, Uniqueness: UniqueNone, Description: "Badge colour."}
	rt := UserResourceType(extra)
	if UserResourceType().Extensions[0].Schema.Attr("badgeColor") != nil {
		t.Fatal("extra attribute leaked into another resource type")
	}
	rt.Extensions[0].Schema.Attr("badgeColor").Name = "changed"
	if extra.Name != "badgeColor" {
		t.Fatal("UserResourceType aliases its argument")
	}
	for _, r := range []*ResourceType{UserResourceType(extra), GroupResourceType()} {
		for _, s := range r.Schemas() {
			rep := s.Representation("https://scim.example.test/scim/v2/")
			text := asJSON(t, rep)
			if loc := rep["meta"].(map[string]any)["location"]; loc != "https://scim.example.test/scim/v2/Schemas/"+s.ID {
				t.Errorf("location %v", loc)
			}
			var walk func(prefix string, attrs []*Attribute, rep []any)
			walk = func(prefix string, attrs []*Attribute, rep []any) {
				if len(attrs) != len(rep) {
					t.Errorf("%s: %d attributes represented, want %d", prefix, len(rep), len(attrs))
					return
				}
				for i, a := range attrs {
					m := rep[i].(map[string]any)
					if m["name"] != a.Name || m["type"] != string(a.Type) || m["mutability"] == "" || m["returned"] == "" || m["description"] == "" {
						t.Errorf("%s%s: bad representation %v", prefix, a.Name, m)
					}
					for _, k := range []string{"multiValued", "required", "caseExact", "uniqueness"} {
						if _, ok := m[k]; !ok {
							t.Errorf("%s%s: %s missing", prefix, a.Name, k)
						}
					}
					if a.Type == Complex {
						walk(prefix+a.Name+".", a.SubAttributes, m["subAttributes"].([]any))
					}
				}
			}
			walk(s.ID+":", s.Attributes, rep["attributes"].([]any))
			if s.ID == EnterpriseURN && !strings.Contains(text, `"name":"badgeColor"`) {
				t.Error("extra attribute missing from /Schemas")
			}
		}
		rep := asJSON(t, r.Representation("https://scim.example.test/scim/v2"))
		if !strings.Contains(rep, `"endpoint":"`+r.Endpoint+`"`) || !strings.Contains(rep, `"location":"https://scim.example.test/scim/v2/ResourceTypes/`+r.ID+`"`) {
			t.Errorf("resource type representation %s", rep)
		}
	}
	if got := asJSON(t, UserResourceType().Representation("")["schemaExtensions"]); got != `[{"required":false,"schema":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]` {
		t.Errorf("schemaExtensions %s", got)
	}
}

func TestSchemasOf(t *testing.T) {
	rt := UserResourceType()
	doc := map[string]any{"userName": "a", EnterpriseURN: map[string]any{"department": "x"},
		"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User": map[string]any{"a": "b"}}
	want := []string{UserURN, EnterpriseURN, "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User"}
	if got := rt.SchemasOf(doc); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestProjectReturnedRequest(t *testing.T) {
	secret := &Attribute{Name: "badgePin", Type: String, Mutability: ReadWrite, Returned: ReturnedRequest, Uniqueness: UniqueNone}
	rt := UserResourceType(secret)
	doc := map[string]any{"id": "1", "userName": "a", EnterpriseURN: map[string]any{"badgePin": "1234", "department": "R"}}
	tests := []struct {
		attributes, excluded []string
		want                 string
	}{
		{nil, nil, `{"id":"1","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R"},"userName":"a"}`},
		{nil, []string{"department"}, `{"id":"1","userName":"a"}`},
		{[]string{"BADGEPIN"}, nil, `{"id":"1","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"badgePin":"1234"}}`},
		{[]string{EnterpriseURN}, nil, `{"id":"1","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"badgePin":"1234","department":"R"}}`},
	}
	for _, tt := range tests {
		if got := asJSON(t, rt.Project(doc, tt.attributes, tt.excluded)); got != tt.want {
			t.Errorf("attributes=%v excluded=%v: got %s, want %s", tt.attributes, tt.excluded, got, tt.want)
		}
	}
}

func TestExtensionURNs(t *testing.T) {
	for s, want := range map[string]bool{
		"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User": true,
		"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:Contoso:2.0:User": true,
		"urn:ietf:params:scim:schemas:extension:":                 false,
		"urn:ietf:params:scim:schemas:extension:.":                false,
		"urn:ietf:params:scim:schemas:extension:x 0":              false,
		"urn:ietf:params:scim:schemas:extension:x\x00":            false,
		"urn:ietf:params:scim:schemas:core:2.0:User":              false,
	} {
		if got := IsExtensionURN(s); got != want {
			t.Errorf("IsExtensionURN(%q) = %v, want %v", s, got, want)
		}
	}
	if got := CanonicalExtensionURN("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:Contoso:2.0:User"); got != "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User" {
		t.Errorf("CanonicalExtensionURN: %q", got)
	}
}
