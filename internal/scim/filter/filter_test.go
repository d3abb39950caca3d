package filter

import (
	"slices"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

const contoso = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User"

func users() map[string]map[string]any {
	return map[string]map[string]any{
		"alice": {
			"id": "u1", "userName": "alice@contoso.test", "externalId": "abc", "active": true,
			"title": "Engineer", "displayName": "Alice Liddell",
			"name": map[string]any{"givenName": "Alice", "familyName": "Liddell"},
			"emails": []any{
				map[string]any{"value": "Alice@Contoso.test", "type": "work", "primary": true},
				map[string]any{"value": "alice@home.test", "type": "home"},
			},
			"addresses": []any{map[string]any{"type": "work", "locality": "Redmond"}},
			"meta":      map[string]any{"resourceType": "User", "created": "2025-06-01T00:00:00Z", "lastModified": "2026-02-01T10:00:00+01:00"},
			schema.EnterpriseURN: map[string]any{
				"employeeNumber": "1042", "department": "Research", "manager": map[string]any{"value": "m1"},
			},
			contoso: map[string]any{"costCode": "CC-1", "Level": int64(3), "remote": true},
		},
		"bob": {
			"id": "u2", "userName": "bob@fabrikam.test", "externalId": "bob", "active": false,
			"emails":             []any{map[string]any{"value": "bob@fabrikam.test", "type": "work"}},
			"meta":               map[string]any{"resourceType": "User", "created": "2025-01-01T00:00:00Z", "lastModified": "2025-12-31T23:59:59Z"},
			schema.EnterpriseURN: map[string]any{"department": "Sales"},
			contoso:              map[string]any{"Level": 1.5},
		},
	}
}

func matching(t *testing.T, rt *schema.ResourceType, docs map[string]map[string]any, text string) []string {
	t.Helper()
	e, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse(%s): %v", text, err)
	}
	b, err := Bind(e, rt)
	if err != nil {
		t.Fatalf("Bind(%s): %v", text, err)
	}
	var got []string
	for name, doc := range docs {
		if Match(b, doc) {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	return got
}

// matchUsersCases are filters over users() and the users each must match.
var matchUsersCases = []struct {
	filter string
	want   string // space-separated names of the matching users
}{
	// Entra's matching queries.
	{`userName eq "alice@contoso.test"`, "alice"},
	{`userName eq "ALICE@CONTOSO.TEST"`, "alice"},
	{`UserName EQ "Alice@Contoso.Test"`, "alice"},
	{`userName eq "d2f4c6a8-0b1e-4c3d-9e8f-7a6b5c4d3e2f"`, ""},
	{`externalId eq "abc"`, "alice"},
	{`externalId eq "ABC"`, ""},
	{`externalId eq abc`, "alice"},
	{`externalId eq bob`, "bob"},
	{`emails[type eq "work"].value eq "alice@contoso.test"`, "alice"},
	{`emails[type eq "home"].value eq "bob@fabrikam.test"`, ""},
	{`id eq "u1" and manager eq "m1"`, "alice"},
	{`id eq "u2" and manager eq "m1"`, ""},
	{`id eq "U1"`, ""},
	{`displayName eq "alice liddell"`, "alice"},
	// Operators.
	{`title pr`, "alice"},
	{`not (title pr)`, "bob"},
	{`title eq null`, "bob"},
	{`title ne null`, "alice"},
	{`title ne "Engineer"`, "bob"},
	{`title ne "Manager"`, "alice bob"},
	{`userName co "CONTOSO"`, "alice"},
	{`userName sw "bob@"`, "bob"},
	{`userName ew ".test"`, "alice bob"},
	{`userName gt "b"`, "bob"},
	{`userName lt "b"`, "alice"},
	{`userName ge "bob@fabrikam.test"`, "bob"},
	{`userName le "alice@contoso.test"`, "alice"},
	{`active eq true`, "alice"},
	{`active eq "True"`, "alice"},
	{`active eq FALSE`, "bob"},
	{`active ne true`, "bob"},
	{`not (active eq true)`, "bob"},
	{`meta.lastModified gt "2026-01-01T00:00:00Z"`, "alice"},
	{`meta.lastModified lt "2026-01-01T00:00:00Z"`, "bob"},
	{`meta.lastModified ge "2026-02-01T09:00:00Z"`, "alice"},
	{`meta.lastModified eq "2026-02-01T09:00:00Z"`, "alice"},
	{`meta.created le "2025-01-01T00:00:00Z"`, "bob"},
	// Multi-valued and value paths.
	{`emails[type eq "work" and value co "@contoso"]`, "alice"},
	{`emails[type eq "home" and value co "@fabrikam"]`, ""},
	{`emails.type eq "home"`, "alice"},
	{`emails.type ne "home"`, "bob"},
	{`emails.value ew "@home.test"`, "alice"},
	{`emails pr`, "alice bob"},
	{`emails[not (type eq "work")]`, "alice"},
	{`emails[primary eq true]`, "alice"},
	{`emails[primary eq "True"]`, "alice"},
	{`emails[type eq "work"] and emails[value sw "alice@home"]`, "alice"},
	{`addresses[type eq "work" and locality eq "redmond"]`, "alice"},
	{`name[givenName eq "alice"]`, "alice"},
	{`name.familyName eq "LIDDELL"`, "alice"},
	{`name.FAMILYNAME pr`, "alice"},
	// Extension paths.
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1042"`, "alice"},
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 1042`, "alice"},
	{`URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:department eq "sales"`, "bob"},
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1"`, "alice"},
	{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m1"`, "alice"},
	{`manager pr`, "alice"},
	{`department eq "Research"`, "alice"},
	{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice"`, "alice"},
	{contoso + `:costCode eq "cc-1"`, "alice"},
	{contoso + `:COSTCODE pr`, "alice"},
	{contoso + `:level gt 2`, "alice"},
	{contoso + `:level lt 2`, "bob"},
	{contoso + `:level eq "3"`, "alice"},
	{contoso + `:remote eq true`, "alice"},
	{contoso + `:remote eq "TRUE"`, "alice"},
	{contoso + `:missing pr`, ""},
	// Logic and precedence: and binds tighter than or.
	{`userName sw "alice" or userName sw "bob" and active eq true`, "alice"},
	{`(userName sw "alice" or userName sw "bob") and active eq true`, "alice"},
	{`(userName sw "alice" or userName sw "bob") and active eq false`, "bob"},
	{`userName sw "bob" and active eq true or title pr`, "alice"},
	{`userName sw "bob" and (active eq true or title pr)`, ""},
	{`not (userName sw "alice" or userName sw "bob")`, ""},
	{`not(not(active eq true))`, "alice"},
	{`((((title pr))))`, "alice"},
	{`title pr AND active Eq TRUE`, "alice"},
	{`title pr Or active eq false`, "alice bob"},
	// Strings with escapes.
	{`title eq "Eng\u0069neer"`, "alice"},
	{`displayName eq "Alice \"Al\" Liddell"`, ""},
	{"userName eq \"alice@contoso.test\"\t", "alice"},
}

func TestMatchUsers(t *testing.T) {
	rt := schema.UserResourceType()
	docs := users()
	for _, tt := range matchUsersCases {
		t.Run(tt.filter, func(t *testing.T) {
			got := strings.Join(matching(t, rt, docs, tt.filter), " ")
			if got != tt.want {
				t.Errorf("matched [%s], want [%s]", got, tt.want)
			}
		})
	}
}

func TestMatchGroups(t *testing.T) {
	groups := map[string]map[string]any{
		"sales": {"id": "g1", "displayName": "Sales", "externalId": "8aa1",
			"members": []any{map[string]any{"value": "u1"}, map[string]any{"value": "u2", "type": "User"}}},
		"empty": {"id": "g2", "displayName": "Sales Ops"},
	}
	tests := []struct{ filter, want string }{
		{`displayName eq "SALES"`, "sales"},
		{`displayName sw "sales"`, "empty sales"},
		{`id eq "g1" and members eq "u2"`, "sales"},
		{`members eq "U2"`, ""},
		{`members[value eq "u1"]`, "sales"},
		{`members.value eq "u1"`, "sales"},
		{`members pr`, "sales"},
		{`not (members pr)`, "empty"},
		{`members[type eq "user"]`, "sales"},
	}
	rt := schema.GroupResourceType()
	for _, tt := range tests {
		if got := strings.Join(matching(t, rt, groups, tt.filter), " "); got != tt.want {
			t.Errorf("%s: matched [%s], want [%s]", tt.filter, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ filter, detail string }{
		{``, "empty filter"},
		{`   `, "empty filter"},
		{`userName`, `offset 8: expected an operator (eq, ne, co, sw, ew, gt, lt, ge, le or pr) after "userName", found the end of the input`},
		{`userName"x"`, `offset 8: expected a space after attribute path "userName", found "\"x\""`},
		{`userName eq`, "offset 11: expected a value"},
		{`userName eq "alice`, "offset 12: expected a closing quote"},
		{`userName eq "a\x"`, "expected a valid JSON string"},
		{`userName xx "a"`, "offset 9: expected an operator (eq, ne, co, sw, ew, gt, lt, ge, le or pr)"},
		{`userName eq "a" and`, "offset 19: expected an attribute path"},
		{`userName eq "a" or`, "expected an attribute path"},
		{`userName eq "a" nand title pr`, `offset 16: expected "and", "or" or the end of the filter`},
		{`(userName eq "a"`, `offset 16: expected "and", "or" or ")"`},
		{`userName eq "a")`, `offset 15: expected "and", "or" or the end`},
		{`not userName eq "a"`, `offset 4: expected "(" after "not"`},
		{`emails[type eq "work"`, `expected "and", "or" or "]"`},
		{`emails[type[value eq "x"]]`, "value filters cannot be nested"},
		{`name.givenName[x eq "y"]`, "must follow an attribute"},
		{`emails[type eq "work"].`, "sub-attribute name"},
		{`1abc eq "x"`, "expected an attribute path such as"},
		{`user name eq "x"`, "expected an operator"},
		{`a.b.c eq "x"`, "expected an attribute path such as"},
		{`"x" eq userName`, "expected an attribute path"},
		{`title eq 1e999`, "a number within range"},
		{strings.Repeat("(", 40) + "title pr" + strings.Repeat(")", 40), "deeper than 32"},
		{strings.Repeat("title pr or ", 200) + "title pr", "more than 200 comparisons"},
		{strings.Repeat("x", MaxLength+1), "at most 8192"},
		{"A ne\xff", "not valid UTF-8"}, // fuzz crasher f594b10e61399767: the round trip altered the value
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			_, err := Parse(tt.filter)
			checkErr(t, err, 400, "invalidFilter", tt.detail)
		})
	}
}

func checkErr(t *testing.T, err error, status int, scimType, detail string) {
	t.Helper()
	e, ok := scimerr.As(err)
	if !ok {
		t.Fatalf("got %v, want a *scimerr.Error", err)
	}
	if e.Status != status || e.ScimType != scimType || !strings.Contains(e.Detail, detail) {
		t.Errorf("got %d %s %q, want %d %s containing %q", e.Status, e.ScimType, e.Detail, status, scimType, detail)
	}
}

func TestBindErrors(t *testing.T) {
	tests := []struct{ filter, detail string }{
		{`foo eq "x"`, `unknown attribute "foo" on User`},
		{`name.foo eq "x"`, `unknown sub-attribute "foo"`},
		{`urn:bogus:schema:x eq "x"`, `unknown schema`},
		{`active gt true`, `only eq, ne and pr apply`},
		{`active eq "yes"`, `must be true or false`},
		{`active co "t"`, `only eq, ne and pr apply`},
		{`name eq "Alice"`, `"name" is a complex attribute; compare one of its sub-attributes`},
		{`meta gt "x"`, `complex attribute`},
		{`meta.lastModified gt "yesterday"`, `RFC 3339 dateTime`},
		{`meta.lastModified co "2026"`, `co, sw and ew apply to strings only`},
		{`title gt null`, `null can only be compared with eq or ne`},
		{`emails[foo eq "x"]`, `unknown sub-attribute "foo" of "emails"`},
		{`emails[value.x eq "x"]`, `name a sub-attribute of emails`},
		{`title[value eq "x"]`, `not a complex attribute`},
		{`emails.value[type eq "x"]`, `must follow an attribute`},
		{`x509Certificates.value sw "MII"`, `only eq, ne and pr apply`},
	}
	rt := schema.UserResourceType()
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := Parse(tt.filter)
			if err == nil {
				_, err = Bind(e, rt)
			}
			checkErr(t, err, 400, "invalidFilter", tt.detail)
		})
	}
	// Numbers: an integer attribute in a helpdesk extension.
	rtNum := schema.UserResourceType(&schema.Attribute{Name: "badge", Type: schema.Integer, Mutability: schema.ReadWrite, Returned: schema.ReturnedDefault})
	for _, f := range []string{`badge co 1`, `badge eq "one"`} {
		e, _ := Parse(f)
		_, err := Bind(e, rtNum)
		checkErr(t, err, 400, "invalidFilter", "badge")
	}
	doc := map[string]any{schema.EnterpriseURN: map[string]any{"badge": int64(7)}}
	for f, want := range map[string]bool{`badge gt 6`: true, `badge le 6.5`: false, `badge eq "7"`: true, `badge ge 7.0`: true} {
		e, _ := Parse(f)
		b, err := Bind(e, rtNum)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if Match(b, doc) != want {
			t.Errorf("%s: got %v", f, !want)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, parsed, bound string }{
		{`USERNAME Eq "a"`, `USERNAME eq "a"`, `userName eq "a"`},
		{`a pr or b pr and c pr`, `a pr or b pr and c pr`, ""},
		{`(a pr or b pr) and c pr`, `(a pr or b pr) and c pr`, ""},
		{`not(a eq 1.5)`, `not (a eq 1.5)`, ""},
		{`emails[Type eq "work"].Value eq "x"`, `emails[Type eq "work" and Value eq "x"]`, `emails[type eq "work" and value eq "x"]`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:MANAGER eq x`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:MANAGER eq "x"`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x"`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:active eq "True"`, "", `active eq true`},
		{`title eq "a\"b<"`, `title eq "a\"b<"`, ""},
		{`title eq 10`, `title eq 10`, `title eq "10"`},
		{`A eq-0e00`, `A eq 0`, ""}, // fuzz crasher 41235205ea5a3ff1: "-0" read back as 0
	}
	rt := schema.UserResourceType()
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if tt.parsed != "" && e.String() != tt.parsed {
			t.Errorf("%s: String() = %s, want %s", tt.in, e, tt.parsed)
		}
		if tt.bound != "" {
			b, err := Bind(e, rt)
			if err != nil {
				t.Fatalf("%s: %v", tt.in, err)
			}
			if b.String() != tt.bound {
				t.Errorf("%s: bound String() = %s, want %s", tt.in, b, tt.bound)
			}
		}
		// The canonical text parses back to the same text.
		again, err := Parse(e.String())
		if err != nil || again.String() != e.String() {
			t.Errorf("%s: round trip gave %v, %v", tt.in, again, err)
		}
	}
}

func TestBindDoesNotModify(t *testing.T) {
	e, _ := Parse(`USERNAME eq "a" and emails[TYPE eq "work"]`)
	before := e.String()
	if _, err := Bind(e, schema.UserResourceType()); err != nil {
		t.Fatal(err)
	}
	if e.String() != before {
		t.Errorf("Bind modified its input: %s", e)
	}
}

func TestWalk(t *testing.T) {
	e, _ := Parse(`userName eq "a" and (not (title pr) or emails[type eq "work" and value co "x"])`)
	var paths []string
	Walk(e, func(x Expr) bool {
		if c, ok := x.(*Compare); ok {
			paths = append(paths, c.Path.String())
		}
		return true
	})
	if got := strings.Join(paths, ","); got != "userName,title,type,value" {
		t.Errorf("visited %s", got)
	}
	n := 0
	Walk(e, func(x Expr) bool { n++; _, isOr := x.(*Or); return !isOr })
	if n != 3 { // And, its left Compare, the Or
		t.Errorf("pruned walk visited %d nodes", n)
	}
}

func TestPatchPath(t *testing.T) {
	tests := []struct{ in, bound, target string }{
		{`name.givenName`, `name.givenName`, `name.givenName`},
		{`NAME.GIVENNAME`, `name.givenName`, `name.givenName`},
		{`emails`, `emails`, `emails`},
		{`emails[type eq "work"].value`, `emails[type eq "work"].value`, `emails.value`},
		{`Emails[Type eq "other"].Value`, `emails[type eq "other"].value`, `emails.value`},
		{`addresses[type eq "work"].locality`, `addresses[type eq "work"].locality`, `addresses.locality`},
		{`members[value eq "u-42"]`, `members[value eq "u-42"]`, `members`},
		{`members[value eq u-42]`, `members[value eq "u-42"]`, `members`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "7d3e"]`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "7d3e"]`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`},
		{`roles[primary eq "True"].value`, `roles[primary eq true].value`, `roles.value`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:active`, `active`, `active`},
		{contoso + `:costCode`, contoso + `:costCode`, contoso + `:costCode`},
	}
	rt := schema.UserResourceType()
	for _, tt := range tests {
		p, err := ParsePatchPath(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		rt := rt
		if strings.HasPrefix(tt.in, "members") {
			rt = schema.GroupResourceType()
		}
		b, err := BindPatchPath(p, rt)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if b.String() != tt.bound || b.Target().String() != tt.target {
			t.Errorf("%s: got %s (target %s), want %s (target %s)", tt.in, b, b.Target(), tt.bound, tt.target)
		}
	}
	// The filter of a bound path selects elements.
	p, _ := ParsePatchPath(`emails[type eq "WORK"]`)
	b, _ := BindPatchPath(p, rt)
	var hits []string
	for _, el := range users()["alice"]["emails"].([]any) {
		el := el.(map[string]any)
		if MatchElement(b.Filter, el) {
			hits = append(hits, el["value"].(string))
		}
	}
	if strings.Join(hits, ",") != "Alice@Contoso.test" {
		t.Errorf("filter selected %v", hits)
	}
}

func TestPatchPathErrors(t *testing.T) {
	tests := []struct{ in, scimType, detail string }{
		{``, "invalidPath", "empty path"},
		{`emails[`, "invalidFilter", "expected an attribute path"},
		{`emails[type eq "work"`, "invalidFilter", `"and", "or" or "]"`},
		{`emails[type eq "work"]value`, "invalidPath", `expected "." followed by a sub-attribute`},
		{`emails[type eq "work"].`, "invalidPath", "a sub-attribute name"},
		{`emails[type eq "work"].value.x`, "invalidPath", "sub-attribute name"},
		{`emails[type eq "work"].value x`, "invalidPath", "the end of the path"},
		{`name.givenName[x eq "y"]`, "invalidPath", "must follow an attribute"},
		{`a b`, "invalidPath", `expected "[" or the end of the path`},
		{`a..b`, "invalidPath", "expected an attribute path such as"},
		{`1a`, "invalidPath", "expected an attribute path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParsePatchPath(tt.in)
			checkErr(t, err, 400, tt.scimType, tt.detail)
		})
	}
	bind := []struct{ in, scimType, detail string }{
		{`foo`, "invalidPath", `unknown attribute "foo"`},
		{`name.foo`, "invalidPath", `unknown sub-attribute "foo"`},
		{`title[value eq "x"]`, "invalidPath", "not a complex attribute"},
		{`emails[type eq "work"].foo`, "invalidPath", `unknown sub-attribute "foo"`},
		{`emails[foo eq "work"]`, "invalidFilter", `unknown sub-attribute "foo"`},
		{`emails[primary gt true]`, "invalidFilter", "only eq, ne and pr apply"},
	}
	rt := schema.UserResourceType()
	for _, tt := range bind {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePatchPath(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			_, err = BindPatchPath(p, rt)
			checkErr(t, err, 400, tt.scimType, tt.detail)
		})
	}
}
