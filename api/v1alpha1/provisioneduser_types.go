package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProvisionedUserSpec is a SCIM User (RFC 7643 §4.1) with the enterprise
// extension (§4.3), as last written by the identity provider. The object's
// name is the SCIM id; the SCIM server writes it and the controller copies it
// into the helpdesk database. Edit it by hand only to repair data: the
// identity provider overwrites it on its next cycle.
type ProvisionedUserSpec struct {
	// UserName is the unique identifier the identity provider matches on
	// (Entra sends the userPrincipalName). Unique in the namespace without
	// regard to case.
	//
	// At most 191 characters: it is a key of the helpdesk database
	// (helpdesk_users.user_name and its unique user_name_lower, VARCHAR(191)
	// so that a utf8mb4 index fits MySQL's key limit), where a key cannot be
	// stored cut; longer values are refused here, before they are
	// acknowledged to the identity provider.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=191
	// +kubebuilder:validation:XValidation:rule="self.trim() != ''",message="userName must not be blank"
	// +required
	UserName string `json:"userName"`

	// ExternalID is the identity provider's own id for the user (Entra sends
	// mailNickname or the objectId). Compared case-sensitively. At most 191
	// characters, the helpdesk's key column (see userName).
	// +kubebuilder:validation:MaxLength=191
	// +optional
	ExternalID string `json:"externalId,omitempty"`

	// Name holds the parts of the person's name.
	// +optional
	Name *PersonName `json:"name,omitempty"`

	// DisplayName is the name shown to people.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// NickName is a casual name, such as "Bob" for Robert.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	NickName string `json:"nickName,omitempty"`

	// ProfileURL points to the person's online profile.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	ProfileURL string `json:"profileUrl,omitempty"`

	// Title is the job title, such as "Vice President".
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Title string `json:"title,omitempty"`

	// UserType says how the person relates to the organisation, such as
	// "Employee" or "Contractor".
	// +kubebuilder:validation:MaxLength=256
	// +optional
	UserType string `json:"userType,omitempty"`

	// PreferredLanguage is an Accept-Language value such as "en-US".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	PreferredLanguage string `json:"preferredLanguage,omitempty"`

	// Locale is used for localising dates and numbers, such as "en-US".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Locale string `json:"locale,omitempty"`

	// Timezone is an IANA time zone name such as "Europe/Paris".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Timezone string `json:"timezone,omitempty"`

	// Active is false for a user the identity provider disabled or
	// soft-deleted. Inactive users stay readable over SCIM so that the
	// identity provider finds them again when they are re-enabled. Unset
	// (never sent, or removed with a PATCH) counts as active for the
	// helpdesk, and is returned over SCIM as absent, as it was stored.
	// +optional
	Active *bool `json:"active,omitempty"`

	// Emails of the user, as the identity provider sent them. RFC 7643
	// §4.1.2 says values SHOULD be RFC 5321 addresses, not MUST: a value
	// that is not one is stored as sent, and the SCIM server reports it
	// with a Warning event (reason EmailNotAnAddress) on the user.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Emails []MultiValuedAttribute `json:"emails,omitempty"`

	// PhoneNumbers of the user.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	PhoneNumbers []MultiValuedAttribute `json:"phoneNumbers,omitempty"`

	// Ims are instant messaging addresses.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Ims []MultiValuedAttribute `json:"ims,omitempty"`

	// Photos are URLs of pictures of the user.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Photos []MultiValuedAttribute `json:"photos,omitempty"`

	// Addresses are physical mailing addresses.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Addresses []Address `json:"addresses,omitempty"`

	// Roles the identity provider assigns, when app roles are mapped.
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	// +optional
	Roles []MultiValuedAttribute `json:"roles,omitempty"`

	// Entitlements the identity provider assigns.
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	// +optional
	Entitlements []MultiValuedAttribute `json:"entitlements,omitempty"`

	// X509Certificates are the user's certificates, each a base64-encoded
	// DER value as sent (RFC 7643 §4.1.2, type binary).
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	X509Certificates []X509Certificate `json:"x509Certificates,omitempty"`

	// Enterprise holds the enterprise extension
	// (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User).
	// +optional
	Enterprise *EnterpriseUser `json:"enterprise,omitempty"`

	// Extensions holds attributes of other extension schemas, keyed by schema
	// URN and then attribute name. Entra sends custom attributes as
	// urn:ietf:params:scim:schemas:extension:<Name>:2.0:User:<attribute>.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Extensions map[string]ExtensionAttributes `json:"extensions,omitempty"`
}

// ExtensionAttributes are the attributes of one extension schema, by name.
// Values are JSON strings, numbers or booleans.
type ExtensionAttributes map[string]apiextensionsv1.JSON

// PersonName holds the parts of a person's name (RFC 7643 §4.1.1).
type PersonName struct {
	// Formatted is the full name for display, such as "Ms. Barbara J Jensen, III".
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Formatted string `json:"formatted,omitempty"`
	// FamilyName is the surname.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	FamilyName string `json:"familyName,omitempty"`
	// GivenName is the first name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	GivenName string `json:"givenName,omitempty"`
	// MiddleName holds middle names.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	MiddleName string `json:"middleName,omitempty"`
	// HonorificPrefix is a title such as "Ms.".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	HonorificPrefix string `json:"honorificPrefix,omitempty"`
	// HonorificSuffix is a suffix such as "III".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	HonorificSuffix string `json:"honorificSuffix,omitempty"`
}

// MultiValuedAttribute is one element of a multi-valued SCIM attribute such as
// emails or phoneNumbers (RFC 7643 §2.4).
type MultiValuedAttribute struct {
	// Value, such as an email address or a phone number.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Value string `json:"value,omitempty"`
	// Display is a human-readable form of the value.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Display string `json:"display,omitempty"`
	// Type is a label such as "work", "home", "mobile" or "other".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Type string `json:"type,omitempty"`
	// Primary marks the preferred element; at most one element is primary.
	// +optional
	Primary bool `json:"primary,omitempty"`
	// NotPrimary records a "primary": false the identity provider sent, so
	// that it is returned as sent rather than as absent (a SCIM client
	// reads back what it stored). Never set together with primary.
	// +optional
	NotPrimary bool `json:"notPrimary,omitempty"`
}

// X509Certificate is one element of x509Certificates: a MultiValuedAttribute
// whose value, a base64-encoded DER certificate, may be longer.
type X509Certificate struct {
	// Value is the base64-encoded DER certificate.
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	Value string `json:"value,omitempty"`
	// Display is a human-readable form of the value.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Display string `json:"display,omitempty"`
	// Type is a label for the certificate.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Type string `json:"type,omitempty"`
	// Primary marks the preferred certificate.
	// +optional
	Primary bool `json:"primary,omitempty"`
	// NotPrimary records a "primary": false the identity provider sent.
	// +optional
	NotPrimary bool `json:"notPrimary,omitempty"`
}

// Address is a physical mailing address (RFC 7643 §4.1.2).
type Address struct {
	// Formatted is the full address for display.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Formatted string `json:"formatted,omitempty"`
	// StreetAddress is the street, house number and so on.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	StreetAddress string `json:"streetAddress,omitempty"`
	// Locality is the city.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Locality string `json:"locality,omitempty"`
	// Region is the state or region.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Region string `json:"region,omitempty"`
	// PostalCode is the zip or postal code.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	PostalCode string `json:"postalCode,omitempty"`
	// Country is the country name or ISO 3166-1 alpha-2 code.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Country string `json:"country,omitempty"`
	// Type is "work", "home" or "other".
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Type string `json:"type,omitempty"`
	// Primary marks the preferred address.
	// +optional
	Primary bool `json:"primary,omitempty"`
	// NotPrimary records a "primary": false the identity provider sent.
	// +optional
	NotPrimary bool `json:"notPrimary,omitempty"`
}

// EnterpriseUser is the enterprise extension of a user (RFC 7643 §4.3).
type EnterpriseUser struct {
	// EmployeeNumber is the organisation's number for the person. At most
	// 191 characters, the helpdesk's key column (an identifier cannot be
	// stored cut).
	// +kubebuilder:validation:MaxLength=191
	// +optional
	EmployeeNumber string `json:"employeeNumber,omitempty"`
	// CostCenter is the cost center's name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	CostCenter string `json:"costCenter,omitempty"`
	// Organization is the organisation's name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Organization string `json:"organization,omitempty"`
	// Division is the division's name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Division string `json:"division,omitempty"`
	// Department is the department's name.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Department string `json:"department,omitempty"`
	// Manager is the SCIM id of the user's manager. It may name a user that
	// does not exist yet: Entra links managers in a second request. At most
	// 191 characters, the helpdesk's key column (an id cannot be stored cut).
	// +kubebuilder:validation:MaxLength=191
	// +optional
	Manager string `json:"manager,omitempty"`
	// CustomFields are the helpdesk's own user fields (its table
	// helpdesk_custom_fields), served as extra attributes of the enterprise
	// extension, by lower-case name.
	// +kubebuilder:validation:MaxProperties=128
	// +optional
	CustomFields map[string]apiextensionsv1.JSON `json:"customFields,omitempty"`
}

// ProvisionedUserStatus reports how far the user reached the helpdesk.
type ProvisionedUserStatus struct {
	// Conditions: Synced is true when the helpdesk database holds this
	// generation of the user.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation last written to the database.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LastSyncTime is when the database was last written or checked.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// ProvisionedUser is a user that an identity provider provisioned over SCIM.
// Its name is the SCIM id.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pu,categories=scim
// +kubebuilder:printcolumn:name="UserName",type=string,JSONPath=`.spec.userName`
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`,priority=1
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.spec.active`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProvisionedUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProvisionedUserSpec `json:"spec"`
	// +optional
	Status ProvisionedUserStatus `json:"status,omitempty"`
}

// IsActive reports spec.active; unset counts as active.
func (u *ProvisionedUser) IsActive() bool { return u.Spec.Active == nil || *u.Spec.Active }

// +kubebuilder:object:root=true

// ProvisionedUserList is a list of ProvisionedUsers.
type ProvisionedUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProvisionedUser `json:"items"`
}
