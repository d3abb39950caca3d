package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func dur(s string) metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return metav1.Duration{Duration: d}
}

// durPtr keeps the raw text so that negative and malformed values reach the
// API server as written.
func durPtr(s string) *metav1.Duration { d := dur(s); return &d }

// validationCase is one object sent to the API server and what it must answer.
type validationCase struct {
	name    string
	obj     client.Object
	wantErr string // empty: must be accepted
}

// TestValidation creates each object against the real API server: good ones
// must be accepted, bad ones refused with a message a person understands.
func TestValidation(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)

	var cases []validationCase
	cases = append(cases, userValidationCases(ns)...)
	cases = append(cases, groupAndClaimValidationCases(ns)...)
	cases = append(cases, tokenValidationCases(ns)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := e.Client.Create(ctx, tc.obj)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want rejected with %q, but the API server accepted it", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want an error containing %q, got: %v", tc.wantErr, err)
			}
		})
	}
}

func newUser(ns string, mut func(*scimv1.ProvisionedUserSpec)) client.Object {
	u := &scimv1.ProvisionedUser{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "u-", Namespace: ns},
		Spec: scimv1.ProvisionedUserSpec{
			UserName: "alice@contoso.test",
			Emails:   []scimv1.MultiValuedAttribute{{Value: "alice@contoso.test", Type: "work", Primary: true}},
		},
	}
	mut(&u.Spec)
	return u
}

func newToken(ns string, mut func(*scimv1.ScimTokenSpec)) client.Object {
	tk := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Namespace: ns}}
	mut(&tk.Spec)
	return tk
}

func newGroup(ns, name string) client.Object {
	return &scimv1.ProvisionedGroup{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "g-", Namespace: ns},
		Spec:       scimv1.ProvisionedGroupSpec{DisplayName: name},
	}
}

func newGroupWithExternalID(ns, id string) client.Object {
	g := newGroup(ns, "With external id").(*scimv1.ProvisionedGroup)
	g.Spec.ExternalID = id
	return g
}

func newClaim(ns, value, owner string, retired bool) client.Object {
	return &scimv1.NameClaim{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "c-", Namespace: ns},
		Spec:       scimv1.NameClaimSpec{Kind: scimv1.ClaimUserName, Value: value, Owner: owner, Retired: retired},
	}
}

func userValidationCases(ns string) []validationCase {
	return []validationCase{
		{"user: minimal", newUser(ns, func(*scimv1.ProvisionedUserSpec) {}), ""},
		{"user: full enterprise and custom extension", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.Name = &scimv1.PersonName{GivenName: "Alice", FamilyName: "Liddell"}
			s.Active = ptr.To(false)
			s.Addresses = []scimv1.Address{{Type: "work", Locality: "Redmond", Region: "WA"}}
			s.Enterprise = &scimv1.EnterpriseUser{Department: "Sales", Manager: "7d3e9a10",
				CustomFields: map[string]apiextensionsv1.JSON{"shoe-size": {Raw: []byte(`42`)}}}
			s.Extensions = map[string]scimv1.ExtensionAttributes{
				"urn:ietf:params:scim:schemas:extension:Contoso:2.0:User": {"badge": {Raw: []byte(`"B-7"`)}},
			}
		}), ""},
		{"user: empty userName", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.UserName = "" }), "spec.userName"},
		{"user: blank userName", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.UserName = "   " }), "userName must not be blank"},
		// RFC 7643 §4.1.2: emails SHOULD be RFC 5321 addresses; stored as sent.
		{"user: email without @", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.Emails = []scimv1.MultiValuedAttribute{{Value: "emailName357"}}
		}), ""},
		{"user: x509Certificates of 16384 characters", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.X509Certificates = []scimv1.X509Certificate{{Value: strings.Repeat("A", 16384), NotPrimary: true}}
		}), ""},
		// Key columns of the helpdesk database are VARCHAR(191) and cannot be
		// stored cut: the API refuses longer values (lengths in characters).
		{"user: userName of 191 characters", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.UserName = strings.Repeat("é", 191) }), ""},
		{"user: overlong userName", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.UserName = strings.Repeat("a", 192) }), "Too long"},
		{"user: externalId of 191 characters", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.ExternalID = strings.Repeat("x", 191) }), ""},
		{"user: overlong externalId", newUser(ns, func(s *scimv1.ProvisionedUserSpec) { s.ExternalID = strings.Repeat("x", 192) }), "spec.externalId: Too long"},
		{"user: overlong employeeNumber", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.Enterprise = &scimv1.EnterpriseUser{EmployeeNumber: strings.Repeat("1", 192)}
		}), "spec.enterprise.employeeNumber: Too long"},
		{"user: overlong manager", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.Enterprise = &scimv1.EnterpriseUser{Manager: strings.Repeat("m", 192)}
		}), "spec.enterprise.manager: Too long"},
		// Optional columns narrower than the API are stored cut instead, so
		// a long phone is accepted (helpdesk_users.phone holds 64).
		{"user: phone of 65 characters", newUser(ns, func(s *scimv1.ProvisionedUserSpec) {
			s.PhoneNumbers = []scimv1.MultiValuedAttribute{{Value: strings.Repeat("5", 65), Type: "work"}}
		}), ""},
	}
}

func groupAndClaimValidationCases(ns string) []validationCase {
	return []validationCase{
		{"group: ok", newGroup(ns, "Sales"), ""},
		{"group: displayName of 256 characters", newGroup(ns, strings.Repeat("g", 256)), ""},
		{"group: externalId of 191 characters", newGroupWithExternalID(ns, strings.Repeat("e", 191)), ""},
		{"group: overlong externalId", newGroupWithExternalID(ns, strings.Repeat("e", 192)), "spec.externalId: Too long"},

		{"claim: held", newClaim(ns, "alice", "u-1", false), ""},
		{"claim: retired, nobody holds it", newClaim(ns, "bob", "", true), ""},
		{"claim: no owner, not retired", newClaim(ns, "carol", "", false), "spec.owner is required unless the claim is retired"},
		{"group: blank displayName", newGroup(ns, " "), "displayName must not be blank"},
	}
}

func tokenValidationCases(ns string) []validationCase {
	return []validationCase{
		{"token: defaults", newToken(ns, func(*scimv1.ScimTokenSpec) {}), ""},
		{"token: rotation ok", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("720h"), Overlap: durPtr("24h")}
		}), ""},
		{"token: overlap 0 revokes at once", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("1h"), Overlap: durPtr("0s")}
		}), ""},
		{"token: overlap longer than interval", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("1h"), Overlap: durPtr("2h")}
		}), "rotation.interval must be longer than rotation.overlap"},
		{"token: negative interval", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("-1h")}
		}), "rotation.interval must be at least 1m (and not negative)"},
		{"token: negative overlap", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("1h"), Overlap: durPtr("-5m")}
		}), "rotation.overlap must not be negative"},
		{"token: rotation with adopted secret", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.Rotation = &scimv1.TokenRotation{Interval: dur("1h")}
			s.SecretRef = &scimv1.TokenSecretReference{Name: "vault-token"}
		}), "rotation and secretRef cannot be combined"},
		{"token: adopted secret without name", newToken(ns, func(s *scimv1.ScimTokenSpec) {
			s.SecretRef = &scimv1.TokenSecretReference{}
		}), "spec.secretRef.name"},
	}
}

// TestDefaults checks the defaults the API server fills in.
func TestDefaults(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	tk := &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: ns},
		Spec: scimv1.ScimTokenSpec{Rotation: &scimv1.TokenRotation{Interval: dur("720h")}}}
	if err := e.Client.Create(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if !tk.IsActive() || tk.Spec.Active == nil {
		t.Errorf("spec.active: want defaulted to true, got %v", tk.Spec.Active)
	}
	if tk.Spec.Rotation.Overlap == nil || tk.Spec.Rotation.Overlap.Duration != 24*time.Hour {
		t.Errorf("spec.rotation.overlap: want 24h, got %v", tk.Spec.Rotation.Overlap)
	}
	u := &scimv1.ProvisionedUser{ObjectMeta: metav1.ObjectMeta{Name: "u", Namespace: ns},
		Spec: scimv1.ProvisionedUserSpec{UserName: "bob"}}
	if err := e.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	// A user's active has no default: unset is returned over SCIM as unset
	// (removed with a PATCH, it must stay absent), and counts as active.
	if u.Spec.Active != nil || !u.IsActive() {
		t.Errorf("user spec.active: want unset and counted active, got %v", u.Spec.Active)
	}
}

// TestASealedShardStaysSealed: members are only appended to a group's
// newest shard; the API server refuses to unseal an older one, by
// setting sealed to false or by dropping the field.
func TestASealedShardStaysSealed(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := &scimv1.GroupMembership{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "g-0"},
		Spec:       scimv1.GroupMembershipSpec{Group: "g", Members: []string{"u1"}},
	}
	if err := e.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Spec.Sealed = true
	if err := e.Client.Update(ctx, s); err != nil {
		t.Fatalf("sealing: %v", err)
	}
	s.Spec.Members = nil // removals stay allowed
	if err := e.Client.Update(ctx, s); err != nil {
		t.Fatalf("removing a member from a sealed shard: %v", err)
	}
	s.Spec.Sealed = false // omitted from the JSON: the field is dropped
	err := e.Client.Update(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "a sealed shard stays sealed") {
		t.Errorf("unsealing: want refused with the seal's message, got %v", err)
	}
}
