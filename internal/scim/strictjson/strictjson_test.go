package strictjson

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/scim-operator/scim-operator/internal/scim/scimerr"
)

// stdDecode is what encoding/json makes of data, with UseNumber.
func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, &json.SyntaxError{}
	}
	return v, nil
}

var validBodies = []string{
	`{}`, `[]`, `null`, `true`, `"x"`, `12345678901234567890`, `-0.5e-3`,
	`{"userName":"a@example.test","name":{"givenName":"A","familyName":"B"},"emails":[{"value":"a","type":"work"},{"value":"b","type":"home"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"1"},{"value":"2"}]}]}`,
	// The same name in an object and in its child, and in siblings.
	`{"value":{"value":{"value":1}},"x":[{"value":1},{"value":2}]}`,
	// Names that differ in more than case.
	`{"ß":1,"ss":2}`, `{"ı":1,"i":2}`,
	// More than the slice holds: the map takes over.
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"Ä":12}`,
	"  {\"a\" : [ 1 , 2 ] }\n",
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	`{"\u00e9":1,"e\u0301":2}`, // not the same name under case folding
}

func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range validBodies {
		want, err := stdDecode([]byte(body))
		if err != nil {
			t.Fatalf("bad fixture %s: %v", body, err)
		}
		got, err := Decode([]byte(body))
		if err != nil {
			t.Errorf("Decode(%s): %v", body, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %#v, encoding/json gives %#v", body, got, want)
		}
		if err := Check([]byte(body)); err != nil {
			t.Errorf("Check(%s): %v", body, err)
		}
	}
}

func TestDuplicatesAndLimits(t *testing.T) {
	many := `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"A":11}`
	for _, tt := range []struct {
		name, body string
		detail     []string // each must be in the detail
	}{
		{"same name twice", `{"userName":"a","userName":"b"}`, []string{`"userName" twice at the top level`}},
		{"two spellings", `{"userName":"a","USERNAME":"b"}`, []string{`"userName" twice at the top level, as "userName" and "USERNAME"`}},
		{"inside an object", `{"name":{"givenName":"A","GIVENNAME":"B"}}`, []string{`"givenName" twice in name`}},
		{"inside an array element", `{"emails":[{"value":"a"},{"value":"b","Value":"c"}]}`, []string{`"value" twice in emails[1]`}},
		{"inside an operation's value", `{"Operations":[{"op":"add","value":{"title":"a","Title":"b"}}]}`, []string{`"title" twice in Operations[0].value`}},
		{"Operations twice", `{"Operations":[],"operations":[]}`, []string{`"Operations"`, `"operations"`}},
		{"beyond the few names", many, []string{`"a" twice`, `"A"`}},
		{"Kelvin sign", `{"kind":1,"` + "\u212a" + `ind":2}`, []string{`"kind" twice`}},
		{"long s", `{"schemas":1,"` + "\u017f" + `chemas":2}`, []string{`"schemas" twice`}},
		{"Kelvin sign beyond the few names", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"KIND":1,"` + "\u212a" + `ind":2}`, []string{`"KIND" twice`}},
		{"too deep", strings.Repeat(`{"a":`, MaxDepth) + `[]` + strings.Repeat(`}`, MaxDepth), []string{"deeper than 32 levels in a.a.a"}},
		{"too deep in arrays", `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, []string{"deeper than 32", "x[0][0]"}},
		{"empty", ``, []string{"empty"}},
		{"blank", " \n", []string{"empty"}},
		{"truncated", `{"a":[1,2`, []string{"ends too early"}},
		{"truncated object", `{"a":1`, []string{"ends too early"}},
		{"trailing data", `{} {}`, []string{"data after"}},
		{"trailing garbage", `{}x`, []string{"data after"}},
		{"missing comma", `{"a":1 "b":2}`, []string{"not valid JSON"}},
		{"trailing comma", `[1,]`, []string{"not valid JSON"}},
		{"number as a name", `{1:2}`, []string{"not valid JSON"}},
		{"stray close", `}`, []string{"not valid JSON"}},
		{"single quotes", `{'a':1}`, []string{"not valid JSON"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []func([]byte) error{
				func(b []byte) error { _, err := Decode(b); return err },
				Check,
			} {
				err := f([]byte(tt.body))
				se, ok := scimerr.As(err)
				if !ok || se.Status != http.StatusBadRequest || se.ScimType != scimerr.TypeInvalidSyntax {
					t.Fatalf("want a 400 invalidSyntax, got %v", err)
				}
				for _, want := range tt.detail {
					if !strings.Contains(se.Detail, want) {
						t.Errorf("detail %q lacks %q", se.Detail, want)
					}
				}
			}
		})
	}
}

func TestLongNamesAreTruncatedInDetails(t *testing.T) {
	long := strings.Repeat("é", 500)
	_, err := Decode([]byte(`{"` + long + `":1,"` + long + `":2}`))
	se, ok := scimerr.As(err)
	if !ok || len(se.Detail) > 400 || !strings.Contains(se.Detail, "…") {
		t.Fatalf("want a short detail, got %v", err)
	}
}

func TestFold(t *testing.T) {
	for _, tt := range []struct {
		a, b string
	}{
		{"userName", "USERNAME"}, {"kind", "\u212aIND"}, {"Straße", "STRASSE"}, {"σς", "ΣΣ"}, {"ı", "I"}, {"İ", "i"}, {"é", "É"}, {"", ""},
	} {
		if got, want := fold(tt.a) == fold(tt.b), strings.EqualFold(tt.a, tt.b); got != want {
			t.Errorf("fold(%q) == fold(%q) is %v, strings.EqualFold says %v", tt.a, tt.b, got, want)
		}
	}
}

// FuzzDecode: whatever Decode accepts, encoding/json accepts and decodes
// alike; whatever it refuses for its syntax, encoding/json refuses too; and
// fold agrees with strings.EqualFold.
func FuzzDecode(f *testing.F) {
	for _, b := range validBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"userName":"a","USERNAME":"b"}`))
	f.Add([]byte(`{"a":{"b":[{"c":1,"C":2}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		want, stdErr := stdDecode(data)
		if err == nil {
			if stdErr != nil {
				t.Fatalf("accepted what encoding/json refuses (%v): %q", stdErr, data)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode = %#v, encoding/json %#v", got, want)
			}
		} else {
			se, ok := scimerr.As(err)
			if !ok || se.Status != http.StatusBadRequest || se.ScimType != scimerr.TypeInvalidSyntax || se.Detail == "" {
				t.Fatalf("error %v", err)
			}
			if strings.Contains(se.Detail, "not valid JSON") && stdErr == nil {
				t.Fatalf("refused as not JSON what encoding/json accepts: %q: %v", data, err)
			}
		}
		if (Check(data) == nil) != (err == nil) {
			t.Fatalf("Check and Decode disagree on %q", data)
		}
		if a, b, ok := strings.Cut(string(data), "\x00"); ok {
			if (fold(a) == fold(b)) != strings.EqualFold(a, b) {
				t.Fatalf("fold and strings.EqualFold disagree on %q and %q", a, b)
			}
		}
	})
}
