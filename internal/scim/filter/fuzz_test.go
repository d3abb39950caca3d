package filter

import (
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// Filters as Entra, its validator and Okta send them, plus RFC examples.
var filterSeeds = []string{
	`userName eq "d2f4c6a8-0b1e-4c3d-9e8f-7a6b5c4d3e2f"`,
	`userName eq "alice@contoso.test"`,
	`externalId eq jyoung`,
	`DisplayName eq "Sales"`,
	`emails[type eq "work"].value eq "alice@contoso.test"`,
	`id eq "7d3e9a10" and manager eq "c4a9"`,
	`id eq "g1" and members eq "u-42"`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1042"`,
	`title pr and userType eq "Employee"`,
	`meta.lastModified gt "2011-05-13T04:42:34Z"`,
	`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
	`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
	`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
	`name.familyName co "O'Malley"`,
	`title eq "a\"b\u00e9"`,
	`active eq "True"`,
	`x eq -1.5e3`,
}

func FuzzParse(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	users := schema.UserResourceType()
	groups := schema.GroupResourceType()
	docs := users2()
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			if se, ok := scimerr.As(err); !ok || se.ScimType != scimerr.TypeInvalidFilter || se.Status != 400 {
				t.Fatalf("Parse(%q) = %v, want an invalidFilter *scimerr.Error", s, err)
			}
			return
		}
		// Canonical text must parse to the same canonical text.
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, e.String(), err)
		}
		if again.String() != e.String() {
			t.Fatalf("round trip of %q: %q != %q", s, again.String(), e.String())
		}
		for _, rt := range []*schema.ResourceType{users, groups} {
			b, err := Bind(e, rt)
			if err != nil {
				if _, ok := scimerr.As(err); !ok {
					t.Fatalf("Bind(%q) = %v, want a *scimerr.Error", s, err)
				}
				continue
			}
			for _, doc := range docs {
				Match(b, doc)
			}
		}
	})
}

func users2() []map[string]any {
	var out []map[string]any
	for _, d := range users() {
		out = append(out, d)
	}
	return out
}

func FuzzParsePatchPath(f *testing.F) {
	for _, s := range []string{
		`emails[type eq "work"].value`,
		`addresses[type eq "work"].locality`,
		`members[value eq "u-42"]`,
		`name.givenName`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "7d3e9a10"]`,
		`roles[primary eq "True"].value`,
		`Emails[Type eq "other"].Value`,
	} {
		f.Add(s)
	}
	users := schema.UserResourceType()
	groups := schema.GroupResourceType()
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePatchPath(s)
		if err != nil {
			se, ok := scimerr.As(err)
			if !ok || se.Status != 400 || (se.ScimType != scimerr.TypeInvalidPath && se.ScimType != scimerr.TypeInvalidFilter) {
				t.Fatalf("ParsePatchPath(%q) = %v, want invalidPath or invalidFilter", s, err)
			}
			return
		}
		again, err := ParsePatchPath(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("round trip of %q via %q: %v, %v", s, p.String(), again, err)
		}
		for _, rt := range []*schema.ResourceType{users, groups} {
			b, err := BindPatchPath(p, rt)
			if err != nil {
				if _, ok := scimerr.As(err); !ok {
					t.Fatalf("BindPatchPath(%q) = %v, want a *scimerr.Error", s, err)
				}
				continue
			}
			_ = b.String()
			_ = b.Target().String()
		}
	})
}
