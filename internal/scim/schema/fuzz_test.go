package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// FuzzCanonicalize feeds request bodies through the decoding every POST and
// PUT goes through: no panic, only SCIM errors, and a canonical document
// canonicalises to itself (so a stored user reads back as written).
func FuzzCanonicalize(f *testing.F) {
	for _, seed := range []string{
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"alice","userName":"Alice@Contoso.test","active":"True","displayName":"Alice","emails":[{"primary":true,"type":"work","value":"alice@contoso.test"}],"meta":{"resourceType":"User"},"name":{"formatted":"Alice L","familyName":"L","givenName":"Alice"},"title":null,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales","manager":{"value":"7d3e"}}}`,
		`{"userName":"bob","password":"x","groups":[],"addresses":[{"type":"work","locality":"Redmond","primary":"true"}],"phoneNumbers":{"value":"+1","type":"mobile"}}`,
		`{"UserName":"c","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"1","urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:badge":"B"}`,
		`{"userName":"d","active":"maybe"}`,
		`{"displayName":"Sales","members":[{"value":"u1","display":"x"}],"schemas":["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"]}`,
		`{"userName":"e","roles":["admin"],"x509Certificates":[{"value":"AAAA"}]}`,
	} {
		f.Add([]byte(seed))
	}
	users, groups := UserResourceType(), GroupResourceType()
	f.Fuzz(func(t *testing.T, raw []byte) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var body map[string]any
		if err := dec.Decode(&body); err != nil || body == nil {
			return
		}
		for _, rt := range []*ResourceType{users, groups} {
			doc, err := rt.Canonicalize(body, ModeCreate)
			if err != nil {
				if _, ok := scimerr.As(err); !ok {
					t.Fatalf("%s: error is not a SCIM error: %v", rt.Name, err)
				}
				continue
			}
			again, err := rt.Canonicalize(doc, ModeReplace)
			if err != nil {
				t.Fatalf("%s: a canonical document was refused: %v\n%v", rt.Name, err, doc)
			}
			if !reflect.DeepEqual(doc, again) {
				t.Fatalf("%s: canonicalising twice changed the document:\n%v\n%v", rt.Name, doc, again)
			}
		}
	})
}
