package patch

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// userDoc is a canonical user as the store holds it.
const userDoc = `{
  "id": "2819c223",
  "userName": "alice@contoso.test",
  "externalId": "alice",
  "active": true,
  "displayName": "Alice",
  "title": "Engineer",
  "name": {"givenName": "Alice", "familyName": "Liddell"},
  "emails": [
    {"value": "Alice@Contoso.test", "type": "work", "primary": true},
    {"value": "alice@home.test", "type": "home"}
  ],
  "addresses": [{"type": "home", "locality": "Oxford"}],
  "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z", "lastModified": "2026-01-01T00:00:00Z",
           "location": "https://scim.example.test/scim/v2/Users/2819c223", "version": "W/\"1\""},
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "manager": {"value": "boss-1"}}
}`

// groupDoc is a canonical group whose members live outside the document.
const groupDoc = `{"id": "g-1", "displayName": "Sales", "externalId": "8aa1a0c0",
  "meta": {"resourceType": "Group", "created": "2026-01-01T00:00:00Z", "lastModified": "2026-01-01T00:00:00Z"}}`

// groupWithMembers is a group that holds its members in the document.
const groupWithMembers = `{"id": "g-1", "displayName": "Sales",
  "members": [{"value": "u-1"}, {"value": "u-42"}, {"value": "u-7"}]}`

type applyCase struct {
	name string
	// group selects the Group resource type; the User type otherwise.
	group bool
	doc   string
	// body is a whole PatchOp message, or just its Operations array.
	body     string
	external bool
	// want lists the expected attributes after the PATCH as a JSON object;
	// keys set to null must be absent. Attributes not named must be
	// unchanged. Ignored when scimType is set.
	want string
	// wantDoc, when set, is the whole expected document.
	wantDoc string
	members []MemberOp
	// unchanged expects Changed=false on the first application.
	unchanged bool
	scimType  string
	// detail must occur in the error detail.
	detail string
}

func TestApply(t *testing.T) {
	var tests []applyCase
	tests = append(tests, entraCases...)
	tests = append(tests, memberCases...)
	tests = append(tests, rfcCases...)
	tests = append(tests, errorCases...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runApplyCase(t, tt) })
	}
}

// entraCases has a row for each Entra habit of docs/entra-interop.md §2.
var entraCases = []applyCase{
	// §2 item 1: op in any case.
	{name: "1 Replace capitalised", doc: userDoc,
		body: `[{"op":"Replace","path":"displayName","value":"Alice Liddell"}]`,
		want: `{"displayName":"Alice Liddell"}`},
	{name: "1 Add capitalised", doc: userDoc,
		body: `[{"op":"Add","path":"nickName","value":"Al"}]`,
		want: `{"nickName":"Al"}`},
	{name: "1 Remove capitalised", doc: userDoc,
		body: `[{"op":"Remove","path":"title"}]`,
		want: `{"title":null}`},
	{name: "1 Postman patch user omalley new username", doc: userDoc,
		body: `{ "schemas":
       ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
     "Operations":[
       {
        "op":"Replace",
        "path":"userName",
        "value":"newusername"
       }]
   }`,
		want: `{"userName":"newusername"}`},

	// §2 item 2: booleans as strings.
	{name: "2 active False string", doc: userDoc,
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		want: `{"active":false}`},
	{name: "2 active True string on a disabled user", doc: strings.Replace(userDoc, `"active": true`, `"active": false`, 1),
		body: `[{"op":"Replace","path":"active","value":"True"}]`,
		want: `{"active":true}`},
	{name: "2 active lower-case false from a rewritten Switch", doc: userDoc,
		body: `[{"op":"Replace","path":"active","value":"false"}]`,
		want: `{"active":false}`},
	{name: "2 Postman active with JSON boolean", doc: userDoc,
		body: `{ "schemas":
       ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
     "Operations":[
       {
        "op":"Replace",
        "path":"active",
        "value": false
       }]
   }`,
		want: `{"active":false}`},
	{name: "2 roles primary True string from the validator", doc: userDoc,
		body: `[{"op":"Add","path":"roles","value":[{"value":"Admin","display":"Admin","type":"WindowsAzureActiveDirectoryRole","primary":"True"}]}]`,
		want: `{"roles":[{"value":"Admin","display":"Admin","type":"WindowsAzureActiveDirectoryRole","primary":true}]}`},
	{name: "2 boolean string that is no boolean", doc: userDoc,
		body:     `[{"op":"Replace","path":"active","value":"yes"}]`,
		scimType: scimerr.TypeInvalidValue, detail: "active"},

	// §2 item 3: no path, keys are paths.
	{name: "3 flagged dialect no-path replace from the doc", doc: userDoc,
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		  {"op":"replace","value":{"displayName":"Alice Liddell","name.givenName":"Alice",
		    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"1042"}}]}`,
		want: `{"displayName":"Alice Liddell","name":{"givenName":"Alice","familyName":"Liddell"},
		  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"boss-1"},"employeeNumber":"1042"}}`},
	{name: "3 no-path add with the same rules", doc: userDoc,
		body: `[{"op":"add","value":{"name.middleName":"Pleasance","nickName":"Al"}}]`,
		want: `{"name":{"givenName":"Alice","familyName":"Liddell","middleName":"Pleasance"},"nickName":"Al"}`},
	{name: "3 no-path complex object merges", doc: userDoc,
		body: `[{"op":"replace","value":{"name":{"givenName":"Alicia"}}}]`,
		want: `{"name":{"givenName":"Alicia","familyName":"Liddell"}}`},
	{name: "3 no-path whole extension object merges", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research","costCenter":"4130"}}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research","costCenter":"4130","manager":{"value":"boss-1"}}}`},
	{name: "3 validator no-path userName update", doc: userDoc,
		body: `[{"op":"replace","value":{"userName":"Alice.Liddell@contoso.test"}}]`,
		want: `{"userName":"Alice.Liddell@contoso.test"}`},
	{name: "3 no-path names in any case", doc: userDoc,
		body: `[{"op":"replace","value":{"DisplayName":"A","NAME.FAMILYNAME":"L"}}]`,
		want: `{"displayName":"A","name":{"givenName":"Alice","familyName":"L"}}`},
	{name: "3 no-path value must be an object", doc: userDoc,
		body:     `[{"op":"replace","value":"Alice"}]`,
		scimType: scimerr.TypeInvalidValue, detail: "without a path"},

	// §2 item 4: value-path targets.
	{name: "4 addresses work locality and region land on one new element", doc: userDoc,
		body: `[{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
		    {"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"}]`,
		want: `{"addresses":[{"type":"home","locality":"Oxford"},{"type":"work","locality":"Redmond","region":"WA"}]}`},
	{name: "4 replace on a missing element creates it", doc: userDoc,
		body: `[{"op":"Replace","path":"phoneNumbers[type eq \"mobile\"].value","value":"4255550123"}]`,
		want: `{"phoneNumbers":[{"type":"mobile","value":"4255550123"}]}`},
	{name: "4 replace work email leaves home alone", doc: userDoc,
		body: `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"Alice.L@Contoso.test"}]`,
		want: `{"emails":[{"value":"Alice.L@Contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"}]}`},
	{name: "4 many Entra mappings in one request", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"Add","path":"emails[type eq \"work\"].value","value":"Bob@Contoso.test"},
		    {"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"4255550100"},
		    {"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"4255550101"},
		    {"op":"Add","path":"phoneNumbers[type eq \"fax\"].value","value":"4255550102"},
		    {"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Microsoft Way"},
		    {"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98052"},
		    {"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"},
		    {"op":"Add","path":"addresses[type eq \"other\"].formatted","value":"Building 4"}]`,
		wantDoc: `{"id":"u","userName":"bob","emails":[{"type":"work","value":"Bob@Contoso.test"}],
		  "phoneNumbers":[{"type":"work","value":"4255550100"},{"type":"mobile","value":"4255550101"},{"type":"fax","value":"4255550102"}],
		  "addresses":[{"type":"work","streetAddress":"1 Microsoft Way","postalCode":"98052","country":"US"},{"type":"other","formatted":"Building 4"}]}`},
	{name: "4 sub-attribute and filter in any case", doc: userDoc,
		body: `[{"op":"Replace","path":"Emails[Type eq \"WORK\"].Value","value":"a@contoso.test"}]`,
		want: `{"emails":[{"value":"a@contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"}]}`},
	{name: "4 primary on a new element after its value", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"Add","path":"emails[type eq \"work\"].primary","value":"True"},
		    {"op":"Add","path":"emails[type eq \"work\"].value","value":"bob@contoso.test"}]`,
		want: `{"emails":[{"type":"work","primary":true,"value":"bob@contoso.test"}]}`},
	{name: "4 roles primary filter from the mapping docs", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"Add","path":"roles[primary eq \"True\"].value","value":"Reader"}]`,
		want: `{"roles":[{"primary":true,"value":"Reader"}]}`},

	// §2 item 5: extension attributes by URN.
	{name: "5 enterprise department by URN path", doc: userDoc,
		body: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Research"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Research","manager":{"value":"boss-1"}}}`},
	{name: "5 enterprise URN in another case", doc: userDoc,
		body: `[{"op":"Add","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:employeeNumber","value":"7"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"boss-1"},"employeeNumber":"7"}}`},
	{name: "5 enterprise extension created when absent", doc: `{"id":"u","userName":"bob"}`,
		body:    `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"1042"}]`,
		wantDoc: `{"id":"u","userName":"bob","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"1042"}}`},
	{name: "5 custom extension attribute by path", doc: userDoc,
		body: `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:Acme:2.0:User:badgeNumber","value":"B-7"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User":{"badgeNumber":"B-7"}}`},
	{name: "5 custom extension attribute as no-path key", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User:badgeNumber":"B-8","title":"Lead"}}]`,
		want: `{"title":"Lead","urn:ietf:params:scim:schemas:extension:Acme:2.0:User":{"badgeNumber":"B-8"}}`},
	{name: "5 custom extension object as no-path key", doc: userDoc,
		body: `[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User":{"badgeNumber":"B-9","onsite":true}}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User":{"badgeNumber":"B-9","onsite":true}}`},
	{name: "5 custom extension removal drops the empty extension", doc: strings.Replace(userDoc, `"id": "2819c223",`,
		`"id": "2819c223", "urn:ietf:params:scim:schemas:extension:Acme:2.0:User": {"badgeNumber": "B-7"},`, 1),
		body: `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:acme:2.0:User:BADGENUMBER"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:Acme:2.0:User":null}`},

	// §2 item 6: manager in several shapes.
	{name: "6 manager bare id (Entra default mapping)", doc: userDoc,
		body: `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"7d3e9a10"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"7d3e9a10"}}}`},
	{name: "6 manager object (validator)", doc: userDoc,
		body: `[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"7d3e9a10"}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"7d3e9a10"}}}`},
	{name: "6 manager array with $ref (Microsoft's example, path manager)", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"Add","path":"manager","value":[{"$ref":"https://scim.example.test/scim/v2/Users/7d3e9a10","value":"7d3e9a10"}]}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"7d3e9a10"}}}`},
	{name: "6 manager same id again is no change", doc: userDoc,
		body:      `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"boss-1"}]`,
		unchanged: true, want: `{}`},
	{name: "6 manager cleared by empty string", doc: userDoc,
		body: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`},
	{name: "6 manager cleared by empty value object", doc: userDoc,
		body: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`},
	{name: "6 manager cleared by remove without value", doc: userDoc,
		body: `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`},
	{name: "6 manager cleared by matching value filter", doc: userDoc,
		body: `[{"op":"Remove","path":"manager[value eq \"boss-1\"]"}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`},
	{name: "6 manager value filter that does not match is a no-op", doc: userDoc,
		body:      `[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"someone-else\"]"}]`,
		unchanged: true, want: `{}`},
	{name: "6 manager no-path key", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":{"value":"7d3e9a10"}}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"7d3e9a10"}}}`},
	{name: "6 last enterprise attribute removed drops the extension", doc: `{"id":"u","userName":"bob","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}}}`,
		body:    `[{"op":"Remove","path":"manager"}]`,
		wantDoc: `{"id":"u","userName":"bob"}`},

	// §2 item 8: nulls and empty strings clear.
	{name: "8 replace with empty string clears", doc: userDoc,
		body: `[{"op":"Replace","path":"title","value":""}]`,
		want: `{"title":null}`},
	{name: "8 replace with null clears", doc: userDoc,
		body: `[{"op":"replace","path":"title","value":null}]`,
		want: `{"title":null}`},
	{name: "8 add with null clears", doc: userDoc,
		body: `[{"op":"add","path":"displayName","value":null}]`,
		want: `{"displayName":null}`},
	{name: "8 sub-attribute cleared, parent kept", doc: userDoc,
		body: `[{"op":"Replace","path":"name.givenName","value":""}]`,
		want: `{"name":{"familyName":"Liddell"}}`},
	{name: "8 clearing the last sub-attribute removes the parent", doc: `{"id":"u","userName":"bob","name":{"givenName":"Bob"}}`,
		body:    `[{"op":"Replace","path":"name.givenName","value":null}]`,
		wantDoc: `{"id":"u","userName":"bob"}`},
	{name: "8 clearing a value path drops the element", doc: userDoc,
		body: `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":""}]`,
		want: `{"emails":[{"value":"alice@home.test","type":"home"}]}`},
	{name: "8 null inside a no-path value clears that key", doc: userDoc,
		body: `[{"op":"replace","value":{"title":null,"name":{"givenName":null}}}]`,
		want: `{"title":null,"name":{"familyName":"Liddell"}}`},
	{name: "8 clearing an absent attribute is no change", doc: userDoc,
		body:      `[{"op":"Replace","path":"nickName","value":""}]`,
		unchanged: true, want: `{}`},

	// §2 item 9: client-sent id and meta.
	{name: "9 Okta no-path group rename carrying id", group: true, doc: groupDoc,
		body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"g-1","displayName":"Sales EMEA"}}]}`,
		want: `{"displayName":"Sales EMEA"}`},
	{name: "9 no-path id, meta, groups and schemas ignored", doc: userDoc,
		body: `[{"op":"replace","value":{"id":"other","meta":{"resourceType":"Group"},"groups":[{"value":"g"}],"schemas":["x"],"title":"CTO"}}]`,
		want: `{"title":"CTO"}`},
	{name: "9 path op on id with the current value", doc: userDoc,
		body:      `[{"op":"replace","path":"id","value":"2819c223"}]`,
		unchanged: true, want: `{}`},
	{name: "9 path op on meta with the current values", doc: userDoc,
		body:      `[{"op":"replace","path":"meta","value":{"resourceType":"User"}},{"op":"add","path":"meta.version","value":"W/\"1\""}]`,
		unchanged: true, want: `{}`},
	{name: "9 path op changing id", doc: userDoc,
		body:     `[{"op":"replace","path":"id","value":"mine"}]`,
		scimType: scimerr.TypeMutability, detail: "readOnly"},
	{name: "9 path op changing meta", doc: userDoc,
		body:     `[{"op":"replace","path":"meta.resourceType","value":"Group"}]`,
		scimType: scimerr.TypeMutability, detail: "meta"},
	{name: "9 remove of id", doc: userDoc,
		body:     `[{"op":"remove","path":"id"}]`,
		scimType: scimerr.TypeMutability},
	{name: "9 path op on groups", doc: userDoc,
		body:     `[{"op":"add","path":"groups","value":[{"value":"g-1"}]}]`,
		scimType: scimerr.TypeMutability},
	{name: "9 password accepted and dropped", doc: userDoc,
		body:      `[{"op":"replace","path":"password","value":"s3cret!"},{"op":"replace","value":{"password":"x"}}]`,
		unchanged: true, want: `{"password":null}`},

	// §2 item 11: case-insensitive names, caseExact:false values.
	{name: "11 path names in any case", doc: userDoc,
		body: `[{"op":"Replace","path":"name.FamilyName","value":"Smith"},{"op":"Replace","path":"UserName","value":"ALICE@contoso.test"}]`,
		want: `{"name":{"givenName":"Alice","familyName":"Smith"},"userName":"ALICE@contoso.test"}`},
	{name: "11 other email by value path in Microsoft's casing", doc: userDoc,
		body: `[{"op":"Add","path":"emails[type eq \"other\"].Value","value":"smtp:alice@contoso.onmicrosoft.test"}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"},{"type":"other","value":"smtp:alice@contoso.onmicrosoft.test"}]}`},

	// §2 item 15: values stored byte for byte.
	{name: "15 phone and email kept as sent", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":" 425 555 0123 "},{"op":"Add","path":"emails","value":[{"value":"Bob@Contoso.TEST","type":"work"}]}]`,
		want: `{"phoneNumbers":[{"type":"work","value":" 425 555 0123 "}],"emails":[{"value":"Bob@Contoso.TEST","type":"work"}]}`},
}

// memberCases covers group membership (§2 item 7, §6 Okta, Microsoft's
// Postman collection).
var memberCases = []applyCase{
	{name: "7 Entra default dialect remove by value array", group: true, doc: groupDoc, external: true,
		body:    `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u-42"}]}]}`,
		members: []MemberOp{{Kind: MemberRemove, IDs: []string{"u-42"}}}, unchanged: true, want: `{}`},
	{name: "7 flagged dialect remove by filter", group: true, doc: groupDoc, external: true,
		body:    `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"u-42\"]"}]}`,
		members: []MemberOp{{Kind: MemberRemove, IDs: []string{"u-42"}}}, unchanged: true, want: `{}`},
	{name: "7 Entra Add with several members", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2","display":"x"},{"value":"u1"}]}]`,
		members: []MemberOp{{Kind: MemberAdd, IDs: []string{"u1", "u2"}, Displays: map[string]string{"u2": "x"}}}, unchanged: true, want: `{}`},
	{name: "7 validator adds then removes one member, in order", group: true, doc: groupDoc, external: true,
		body:      `[{"op":"add","path":"members","value":[{"value":"u-9"}]},{"op":"remove","path":"members[value eq \"u-9\"]"}]`,
		members:   []MemberOp{{Kind: MemberAdd, IDs: []string{"u-9"}}, {Kind: MemberRemove, IDs: []string{"u-9"}}},
		unchanged: true, want: `{}`},
	{name: "7 validator add member as replace", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"replace","path":"members","value":[{"value":"u-3"},{"value":"u-4"}]}]`,
		members: []MemberOp{{Kind: MemberReplace, IDs: []string{"u-3", "u-4"}}}, unchanged: true, want: `{}`},
	{name: "7 remove members without value or filter clears", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"remove","path":"members"}]`,
		members: []MemberOp{{Kind: MemberClear}}, unchanged: true, want: `{}`},
	{name: "7 remove with an empty value array removes nobody", group: true, doc: groupDoc, external: true,
		body: `[{"op":"Remove","path":"members","value":[]}]`, unchanged: true, want: `{}`},
	{name: "7 replace with an empty list clears", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"replace","path":"members","value":[]}]`,
		members: []MemberOp{{Kind: MemberClear}}, unchanged: true, want: `{}`},
	{name: "7 Okta no-path replace with members and rename", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"replace","value":{"id":"g-1","displayName":"Sales 2","members":[{"value":"u-5","display":"Eve"}]}}]`,
		members: []MemberOp{{Kind: MemberReplace, IDs: []string{"u-5"}, Displays: map[string]string{"u-5": "Eve"}}}, want: `{"displayName":"Sales 2"}`},
	{name: "7 no-path add with members", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"add","value":{"members":[{"value":"u-6"}]}}]`,
		members: []MemberOp{{Kind: MemberAdd, IDs: []string{"u-6"}}}, unchanged: true, want: `{}`},
	{name: "7 Okta removes by filter and adds in one request", group: true, doc: groupDoc, external: true,
		body:      `[{"op":"remove","path":"members[value eq \"u-1\" or value eq \"u-2\"]"},{"op":"add","path":"members","value":[{"value":"u-3"}]}]`,
		members:   []MemberOp{{Kind: MemberRemove, IDs: []string{"u-1", "u-2"}}, {Kind: MemberAdd, IDs: []string{"u-3"}}},
		unchanged: true, want: `{}`},
	{name: "7 member value key in any case", group: true, doc: groupDoc, external: true,
		body:    `[{"op":"Add","path":"Members","value":[{"Value":"u-8"}]}]`,
		members: []MemberOp{{Kind: MemberAdd, IDs: []string{"u-8"}}}, unchanged: true, want: `{}`},
	{name: "7 Postman add user4 to group1", group: true, doc: groupDoc, external: true,
		body: `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "name": "addMember",
            "op": "add",
            "path": "members",
            "value": [
            	{
            		"displayName":"new User",
            		"value":"u-4"	
            	}
            	]
            
        }
    ]
}`,
		// "displayName", which members do not have, is read as display.
		members: []MemberOp{{Kind: MemberAdd, IDs: []string{"u-4"}, Displays: map[string]string{"u-4": "new User"}}}, unchanged: true, want: `{}`},
	{name: "7 Postman remove user4 from group1", group: true, doc: groupDoc, external: true,
		body: `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "remove",
            "path": "members[value eq \"u-4\"]"
        }
    ]
}`,
		members: []MemberOp{{Kind: MemberRemove, IDs: []string{"u-4"}}}, unchanged: true, want: `{}`},
	{name: "7 Postman remove all users", group: true, doc: groupDoc, external: true,
		body: `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "remove",
            "path": "members"
        }
    ]
}`,
		members: []MemberOp{{Kind: MemberClear}}, unchanged: true, want: `{}`},
	{name: "7 Postman garbage: member value as a bare string is an id", group: true, doc: groupDoc, external: true,
		body: `{
	"id": "g-1",
    "Operations": [
        {
         "op":"add", 
         "path": "members", 
         "value": "string id 1"
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}`,
		members: []MemberOp{{Kind: MemberAdd, IDs: []string{"string id 1"}}}, unchanged: true, want: `{}`},
	{name: "7 member without value", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"add","path":"members","value":[{"display":"x"}]}]`,
		scimType: scimerr.TypeInvalidValue},
	{name: "7 member with empty value", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"remove","path":"members","value":[{"value":""}]}]`,
		scimType: scimerr.TypeInvalidValue},
	{name: "7 member filter on something other than value", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"remove","path":"members[display eq \"Eve\"]"}]`,
		scimType: scimerr.TypeInvalidFilter},
	{name: "7 member filter with add", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"add","path":"members[value eq \"u\"]","value":{"value":"u"}}]`,
		scimType: scimerr.TypeInvalidPath},
	{name: "7 member sub-attribute path", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"remove","path":"members.value"}]`,
		scimType: scimerr.TypeInvalidPath},
	{name: "7 error after member ops reports no members", group: true, doc: groupDoc, external: true,
		body:     `[{"op":"add","path":"members","value":[{"value":"u1"}]},{"op":"remove","path":"displayName"}]`,
		scimType: scimerr.TypeMutability, detail: "required"},

	// Members held in the document (ExternalMembers off).
	{name: "7 in-document remove by value array removes exactly that member", group: true, doc: groupWithMembers,
		body: `[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u-42"}]}]`,
		want: `{"members":[{"value":"u-1"},{"value":"u-7"}]}`},
	{name: "7 in-document remove by filter", group: true, doc: groupWithMembers,
		body: `[{"op":"remove","path":"members[value eq \"u-42\"]"}]`,
		want: `{"members":[{"value":"u-1"},{"value":"u-7"}]}`},
	{name: "7 in-document add skips current members", group: true, doc: groupWithMembers,
		body: `[{"op":"Add","path":"members","value":[{"value":"u-1"},{"value":"u-2","display":"x"}]}]`,
		want: `{"members":[{"value":"u-1"},{"value":"u-42"},{"value":"u-7"},{"display":"x","value":"u-2"}]}`},
	{name: "7 in-document remove of a non-member is no change", group: true, doc: groupWithMembers,
		body:      `[{"op":"Remove","path":"members","value":[{"value":"u-99"}]}]`,
		unchanged: true, want: `{}`},
	{name: "7 in-document remove without value clears", group: true, doc: groupWithMembers,
		body: `[{"op":"remove","path":"members"}]`,
		want: `{"members":null}`},
	{name: "7 in-document replace", group: true, doc: groupWithMembers,
		body: `[{"op":"replace","path":"members","value":[{"value":"u-3"}]}]`,
		want: `{"members":[{"value":"u-3"}]}`},
}

// rfcCases are RFC 7644 §3.5.2 semantics as generic clients use them.
var rfcCases = []applyCase{
	{name: "add appends to a multi-valued attribute", doc: userDoc,
		body: `[{"op":"add","path":"emails","value":[{"value":"al@other.test","type":"other"}]}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"},{"value":"al@other.test","type":"other"}]}`},
	{name: "add of a present value in another case is no change", doc: userDoc,
		body:      `[{"op":"add","path":"emails","value":[{"value":"ALICE@contoso.TEST","type":"work"}]}]`,
		unchanged: true, want: `{}`},
	{name: "add of a lone element to a multi-valued attribute", doc: userDoc,
		body: `[{"op":"add","path":"emails","value":{"value":"x@y.test"}}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"},{"value":"x@y.test"}]}`},
	{name: "add of a primary element demotes the old primary", doc: userDoc,
		body: `[{"op":"add","path":"emails","value":[{"value":"new@contoso.test","type":"work","primary":true}]}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work"},{"value":"alice@home.test","type":"home"},{"value":"new@contoso.test","type":"work","primary":true}]}`},
	{name: "primary set by value path demotes the old primary", doc: userDoc,
		body: `[{"op":"replace","path":"emails[type eq \"home\"].primary","value":true}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work"},{"value":"alice@home.test","type":"home","primary":true}]}`},
	{name: "replace of a multi-valued attribute replaces the list", doc: userDoc,
		body: `[{"op":"replace","path":"emails","value":[{"value":"only@contoso.test","type":"work","primary":true}]}]`,
		want: `{"emails":[{"value":"only@contoso.test","type":"work","primary":true}]}`},
	{name: "replace with an empty list clears", doc: userDoc,
		body: `[{"op":"replace","path":"addresses","value":[]}]`,
		want: `{"addresses":null}`},
	{name: "add of an empty list is no change", doc: userDoc,
		body: `[{"op":"add","path":"emails","value":[]}]`, unchanged: true, want: `{}`},
	{name: "replace of a complex attribute merges", doc: userDoc,
		body: `[{"op":"replace","path":"name","value":{"formatted":"Alice Liddell"}}]`,
		want: `{"name":{"givenName":"Alice","familyName":"Liddell","formatted":"Alice Liddell"}}`},
	{name: "add of a complex attribute merges", doc: userDoc,
		body: `[{"op":"add","path":"name","value":{"givenName":"Alicia","honorificPrefix":"Ms."}}]`,
		want: `{"name":{"givenName":"Alicia","familyName":"Liddell","honorificPrefix":"Ms."}}`},
	{name: "remove a value-path element", doc: userDoc,
		body: `[{"op":"remove","path":"emails[type eq \"work\"]"}]`,
		want: `{"emails":[{"value":"alice@home.test","type":"home"}]}`},
	{name: "remove a sub-attribute of matching elements", doc: userDoc,
		body: `[{"op":"remove","path":"emails[type eq \"work\"].primary"}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work"},{"value":"alice@home.test","type":"home"}]}`},
	{name: "remove with a value array on a multi-valued attribute", doc: userDoc,
		body: `[{"op":"remove","path":"emails","value":[{"value":"ALICE@HOME.TEST"}]}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work","primary":true}]}`},
	{name: "remove of an absent attribute is no change", doc: userDoc,
		body:      `[{"op":"remove","path":"nickName"},{"op":"remove","path":"phoneNumbers[type eq \"fax\"]"},{"op":"remove","path":"name.middleName"}]`,
		unchanged: true, want: `{}`},
	{name: "remove of the last element removes the attribute", doc: userDoc,
		body: `[{"op":"remove","path":"addresses[type eq \"home\"]"}]`,
		want: `{"addresses":null}`},
	{name: "replace of a matching element keeps the filter's type", doc: userDoc,
		body: `[{"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"alice@new-home.test"}}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"work","primary":true},{"value":"alice@new-home.test","type":"home"}]}`},
	{name: "add of an element by value path merges into the match", doc: userDoc,
		body: `[{"op":"add","path":"addresses[type eq \"home\"]","value":{"region":"Oxfordshire"}}]`,
		want: `{"addresses":[{"type":"home","locality":"Oxford","region":"Oxfordshire"}]}`},
	{name: "value path with and creates the element from both", doc: `{"id":"u","userName":"bob"}`,
		body: `[{"op":"add","path":"emails[type eq \"work\" and primary eq true].value","value":"b@contoso.test"}]`,
		want: `{"emails":[{"type":"work","primary":true,"value":"b@contoso.test"}]}`},
	{name: "sub-attribute without filter on every element", doc: userDoc,
		body: `[{"op":"replace","path":"emails.type","value":"other"}]`,
		want: `{"emails":[{"value":"Alice@Contoso.test","type":"other","primary":true},{"value":"alice@home.test","type":"other"}]}`},
	{name: "remove a single-valued attribute by its value", doc: userDoc,
		body: `[{"op":"remove","path":"title","value":"engineer"},{"op":"remove","path":"displayName","value":"Bob"}]`,
		want: `{"title":null}`},
	{name: "remove with value null means no value", doc: userDoc,
		body: `[{"op":"remove","path":"title","value":null}]`,
		want: `{"title":null}`},
	{name: "unknown keys in a no-path value are ignored", doc: userDoc,
		body: `[{"op":"add","value":{"favouriteColour":"blue","urn:example:unknown:attr":"x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize":"9","title":"CTO"}}]`,
		want: `{"title":"CTO"}`},
	{name: "URN-qualified no-path key wins over the plain one", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:core:2.0:User:title":"B","title":"A"}}]`,
		want: `{"title":"B"}`},
	{name: "core schema object as no-path key", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:core:2.0:User":{"title":"C","nickName":"N"}}}]`,
		want: `{"title":"C","nickName":"N"}`},
	{name: "no-path null extension clears it", doc: userDoc,
		body: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":null}}]`,
		want: `{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":null}`},
	{name: "value path as a no-path key", doc: userDoc,
		body: `[{"op":"replace","value":{"emails[type eq \"work\"].value":"w@contoso.test","phoneNumbers[type eq \"work\"].value":"1"}}]`,
		want: `{"emails":[{"value":"w@contoso.test","type":"work","primary":true},{"value":"alice@home.test","type":"home"}],"phoneNumbers":[{"type":"work","value":"1"}]}`},
	{name: "group displayName replace", group: true, doc: groupDoc,
		body: `[{"op":"Replace","path":"displayName","value":"Marketing"}]`,
		want: `{"displayName":"Marketing"}`},
	{name: "group no-path externalId replace (validator)", group: true, doc: groupDoc,
		body: `[{"op":"replace","value":{"externalId":"b2c3"}}]`,
		want: `{"externalId":"b2c3"}`},
	{name: "replace of the same value is no change", doc: userDoc,
		body:      `[{"op":"replace","path":"displayName","value":"Alice"},{"op":"replace","path":"active","value":"True"}]`,
		unchanged: true, want: `{}`},
	{name: "Postman patch user1", doc: userDoc,
		body: `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "replace",
            "path": "userName",
            "value": "ryan3"
        }
    ]
}`,
		want: `{"userName":"ryan3"}`},
}

var errorCases = []applyCase{
	{name: "remove without path", doc: userDoc,
		body: `[{"op":"remove","value":{"title":"x"}}]`, scimType: scimerr.TypeNoTarget},
	{name: "remove of userName", doc: userDoc,
		body: `[{"op":"Remove","path":"userName"}]`, scimType: scimerr.TypeMutability, detail: `"userName" is required`},
	{name: "remove of group displayName", group: true, doc: groupDoc,
		body: `[{"op":"Remove","path":"displayName"}]`, scimType: scimerr.TypeMutability, detail: `"displayName" is required`},
	{name: "userName cleared with empty string", doc: userDoc,
		body: `[{"op":"Replace","path":"userName","value":""}]`, scimType: scimerr.TypeInvalidValue, detail: "required"},
	{name: "unknown attribute in a path", doc: userDoc,
		body: `[{"op":"add","path":"favouriteColour","value":"blue"}]`, scimType: scimerr.TypeInvalidPath},
	{name: "unknown sub-attribute in a path", doc: userDoc,
		body: `[{"op":"add","path":"name.nickname","value":"x"}]`, scimType: scimerr.TypeInvalidPath},
	{name: "unknown sub-attribute after a filter", doc: userDoc,
		body: `[{"op":"add","path":"emails[type eq \"work\"].address","value":"x"}]`, scimType: scimerr.TypeInvalidPath},
	{name: "unknown schema in a path", doc: userDoc,
		body: `[{"op":"add","path":"urn:example:foo:2.0:User:x","value":"x"}]`, scimType: scimerr.TypeInvalidPath},
	{name: "malformed filter", doc: userDoc,
		body: `[{"op":"add","path":"emails[type eq ]","value":"x"}]`, scimType: scimerr.TypeInvalidFilter},
	{name: "filter that cannot seed a new element", doc: userDoc,
		body: `[{"op":"add","path":"phoneNumbers[type eq \"work\" or type eq \"mobile\"].value","value":"1"}]`, scimType: scimerr.TypeNoTarget},
	{name: "value path on a single-valued attribute that does not match", doc: userDoc,
		body: `[{"op":"replace","path":"manager[value eq \"x\"].value","value":"y"}]`, scimType: scimerr.TypeNoTarget},
	{name: "string where an object is needed", doc: userDoc,
		body: `[{"op":"replace","path":"name","value":"Alice"}]`, scimType: scimerr.TypeInvalidValue},
	{name: "number where a string is needed", doc: userDoc,
		body: `[{"op":"replace","path":"title","value":7}]`, scimType: scimerr.TypeInvalidValue},
	{name: "non-object element for a value path", doc: userDoc,
		body: `[{"op":"add","path":"emails[type eq \"work\"]","value":"x"}]`, scimType: scimerr.TypeInvalidValue},
	{name: "no-path schema key holding a string", doc: userDoc,
		body: `[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}}]`, scimType: scimerr.TypeInvalidValue},
	{name: "no-path bad boolean", doc: userDoc,
		body: `[{"op":"replace","value":{"active":"maybe"}}]`, scimType: scimerr.TypeInvalidValue},
	{name: "immutable member value changed", group: true, doc: groupWithMembers,
		body: `[{"op":"replace","path":"members[value eq \"u-1\"].value","value":"u-2"}]`, scimType: scimerr.TypeMutability},
	{name: "meta object with a different value", doc: userDoc,
		body: `[{"op":"replace","path":"meta","value":{"resourceType":"Group"}}]`, scimType: scimerr.TypeMutability},
	{name: "readOnly sub-attribute of the manager", doc: userDoc,
		body: `[{"op":"add","path":"manager.displayName","value":"Boss"}]`, scimType: scimerr.TypeMutability},
	{name: "value path whose new element would not match its filter", doc: userDoc,
		body: `[{"op":"replace","path":"emails[value eq \"a@x.test\"].value","value":"b@x.test"}]`, scimType: scimerr.TypeNoTarget},
	{name: "immutable member value changed without a filter", group: true, doc: groupWithMembers,
		body: `[{"op":"replace","path":"members.value","value":"u-2"}]`, scimType: scimerr.TypeMutability},
	{name: "error names the failing operation", doc: userDoc,
		body:     `[{"op":"replace","path":"title","value":"x"},{"op":"replace","path":"active","value":"nope"}]`,
		scimType: scimerr.TypeInvalidValue, detail: "Operations[1] (replace active)"},
}

func runApplyCase(t *testing.T, tt applyCase) {
	t.Helper()
	rt := schema.UserResourceType()
	if tt.group {
		rt = schema.GroupResourceType()
	}
	ops := decodeOps(t, tt.body)
	doc := mustJSON(t, tt.doc)
	orig := cloneMap(doc)
	opt := Options{ExternalMembers: tt.external}

	res, err := Apply(rt, doc, ops, opt)
	if tt.scimType != "" {
		se := assertSCIMError(t, err, tt.scimType)
		if !strings.Contains(se.Detail, tt.detail) {
			t.Errorf("detail %q does not mention %q", se.Detail, tt.detail)
		}
		if !reflect.DeepEqual(doc, orig) {
			t.Errorf("document changed by a failed PATCH:\n got %s\nwant %s", toJSON(t, doc), toJSON(t, orig))
		}
		if res.Changed || res.Members != nil {
			t.Errorf("failed PATCH returned %+v", res)
		}
		return
	}
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := expectedDoc(t, tt, orig)
	if got, w := toJSON(t, doc), toJSON(t, want); got != w {
		t.Errorf("document\n got %s\nwant %s", got, w)
	}
	if res.Changed == tt.unchanged {
		t.Errorf("Changed = %v, want %v", res.Changed, !tt.unchanged)
	}
	if !reflect.DeepEqual(res.Members, tt.members) {
		t.Errorf("Members\n got %+v\nwant %+v", res.Members, tt.members)
	}
	if !tt.group {
		if _, err := rt.Canonicalize(cloneMap(doc), schema.ModeReplace); err != nil {
			t.Errorf("result does not canonicalise: %v", err)
		}
	}

	// Idempotency: the same PATCH again changes nothing.
	again := cloneMap(doc)
	res2, err := Apply(rt, again, ops, opt)
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if res2.Changed {
		t.Errorf("second Apply reported Changed")
	}
	if got, w := toJSON(t, again), toJSON(t, doc); got != w {
		t.Errorf("second Apply changed the document\n got %s\nwant %s", got, w)
	}
}

// expectedDoc is wantDoc, or orig with the attributes of want overlaid
// (null meaning absent).
func expectedDoc(t *testing.T, tt applyCase, orig map[string]any) map[string]any {
	t.Helper()
	if tt.wantDoc != "" {
		return mustJSON(t, tt.wantDoc)
	}
	want := cloneMap(orig)
	for k, v := range mustJSON(t, tt.want) {
		if v == nil {
			delete(want, k)
		} else {
			want[k] = v
		}
	}
	return want
}

// decodeOps accepts a whole PatchOp body or only its Operations array.
func decodeOps(t *testing.T, body string) []Operation {
	t.Helper()
	if strings.HasPrefix(strings.TrimSpace(body), "[") {
		body = `{"schemas":["` + PatchOpURN + `"],"Operations":` + body + `}`
	}
	req, err := Decode([]byte(body), Limits{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return req.Operations
}

func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("fixture %s: %v", s, err)
	}
	return m
}

func toJSON(t testing.TB, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(b.String())
}
