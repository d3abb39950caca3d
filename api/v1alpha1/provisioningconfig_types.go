package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProvisioningConfigName is the one name a ProvisioningConfig may have: a
// tenant (namespace) has at most one, so nothing has to choose between two.
const ProvisioningConfigName = "default"

// Condition types of a ProvisioningConfig.
const (
	// ConditionDatabaseReachable is true when the tenant's helpdesk
	// database answered the last ping.
	ConditionDatabaseReachable = "DatabaseReachable"
	// ConditionCustomFieldsConsistent is false when a field declared in
	// spec.customFields is declared with another type or multiplicity in
	// the helpdesk database's helpdesk_custom_fields table.
	ConditionCustomFieldsConsistent = "CustomFieldsConsistent"
)

// Reasons of ProvisioningConfig conditions.
const (
	ReasonDatabaseSecretNotFound = "DatabaseSecretNotFound"
	ReasonDatabaseURLInvalid     = "DatabaseURLInvalid"
	ReasonDatabaseUnreachable    = "DatabaseUnreachable"
	ReasonDatabaseReachable      = "Reachable"
	ReasonSuspended              = "Suspended"
	ReasonBehind                 = "Behind"
	ReasonCustomFieldClash       = "CustomFieldClash"
	ReasonConsistent             = "Consistent"
)

// ProvisioningConfigSpec says where a tenant's users and groups go and how:
// its helpdesk database, what a deletion does there, the custom attributes
// it accepts, and whether the sync runs. Every field is optional; an absent
// field keeps the operator's default (its flags), so creating an empty
// ProvisioningConfig changes nothing.
type ProvisioningConfigSpec struct {
	// Database is where this tenant's rows are written. Absent: the
	// operator's database (--helpdesk-database-url). Changing it does not
	// move rows already written: the new database receives every user and
	// group on the catch-up that follows, the old one keeps what it had.
	// +optional
	Database *TenantDatabase `json:"database,omitempty"`

	// DeletionPolicy is what a deletion over SCIM does to the helpdesk row:
	// "retain" keeps it marked deleted (tickets keep their author),
	// "delete" removes it. Absent: the operator's --deletion-policy. A
	// change applies to the deletions that follow, not to rows retained
	// before.
	// +kubebuilder:validation:Enum=retain;delete
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`

	// CustomFields are custom user attributes declared here rather than in
	// the helpdesk's helpdesk_custom_fields table. They are published in
	// /Schemas as attributes of the enterprise extension
	// (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:NAME),
	// accepted in POST, PUT and PATCH, and stored in the helpdesk row's
	// custom_fields. A name the table declares too with another type or
	// multiplicity is reported in the CustomFieldsConsistent condition and
	// the table's definition is served (it is what the helpdesk reads).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	// +optional
	CustomFields []CustomFieldDefinition `json:"customFields,omitempty"`

	// Suspend stops writing this tenant's users and groups to the helpdesk
	// database, for a maintenance window of the helpdesk. SCIM keeps
	// accepting and recording every change; when suspend is lifted every
	// user and group is written again, so nothing made meanwhile is lost.
	// Deletions wait too (the objects keep their finalizer until then).
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// TenantDatabase names the Secret key holding a helpdesk database URL.
type TenantDatabase struct {
	// SecretRef is a key of a Secret in the tenant's namespace holding the
	// database URL, in the form --helpdesk-database-url accepts:
	// sqlite:///path, postgres://user:password@host:5432/db?sslmode=require
	// or mysql://user:password@host:3306/db. The operator reads the Secret
	// with `get` only and polls it: a new value (rotated credentials)
	// reopens the connection pool within a minute, without a restart.
	// +required
	SecretRef DatabaseSecretReference `json:"secretRef"`
}

// DatabaseSecretReference names a key of a Secret in the same namespace.
type DatabaseSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Key in the Secret's data holding the URL. Defaults to "url".
	// +kubebuilder:default=url
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// CustomFieldDefinition declares one custom user attribute.
type CustomFieldDefinition struct {
	// Name is the SCIM attribute name: lower-case letters, digits and single
	// dashes, starting with a letter, such as "shoe-size". It is the key in
	// the helpdesk row's custom_fields.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][a-z0-9]*(-[a-z0-9]+)*$')",message="a custom field name is lower-case letters, digits and single dashes, starting with a letter (the SCIM attribute name, such as shoe-size)"
	// +required
	Name string `json:"name"`

	// Type of the value (RFC 7643 §2.3).
	// +kubebuilder:validation:Enum=string;boolean;integer;dateTime
	// +kubebuilder:default=string
	// +optional
	Type string `json:"type,omitempty"`

	// MultiValued accepts a list of values instead of one.
	// +optional
	MultiValued bool `json:"multiValued,omitempty"`

	// Description is published in /Schemas for the identity provider's
	// admins.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`
}

// ProvisioningConfigStatus is what the operator observed of the tenant's sync.
type ProvisioningConfigStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (the config is applied: the database is reachable
	// and the custom fields agree; what GitOps health checks read, see
	// docs/gitops.md), DatabaseReachable (the tenant's database answered
	// the last ping), Synced (every user and group of the tenant is in the
	// database at its current generation; False with reason Suspended or
	// Behind otherwise) and CustomFieldsConsistent.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Database is where the tenant's database is, without user, password
	// or options (postgres://db.example:5432/helpdesk), or "default" when
	// the operator's database is used.
	// +optional
	Database string `json:"database,omitempty"`

	// Users and Groups count the tenant's users and groups; UsersSynced
	// and GroupsSynced those whose current generation is in the database.
	// +optional
	Users int32 `json:"users"`
	// +optional
	UsersSynced int32 `json:"usersSynced"`
	// +optional
	Groups int32 `json:"groups"`
	// +optional
	GroupsSynced int32 `json:"groupsSynced"`

	// OldestUnsyncedChange is when the oldest change not yet in the
	// database was made over SCIM; absent when everything is synced.
	// `kubectl get` shows its age.
	// +optional
	OldestUnsyncedChange *metav1.Time `json:"oldestUnsyncedChange,omitempty"`

	// LastDatabaseError is the last error the database returned (without
	// credentials) and when.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	LastDatabaseError string `json:"lastDatabaseError,omitempty"`
	// +optional
	LastDatabaseErrorTime *metav1.Time `json:"lastDatabaseErrorTime,omitempty"`

	// HelpdeskCustomFields are the custom user fields the tenant's own
	// database declares (helpdesk_custom_fields, this tenant's rows and
	// those of every tenant), as the operator last read them. The SCIM
	// server serves them with spec.customFields; it does not connect to
	// tenant databases itself. Set only with spec.database.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	// +optional
	HelpdeskCustomFields []CustomFieldDefinition `json:"helpdeskCustomFields,omitempty"`
	// HelpdeskCustomFieldsReadAt is when HelpdeskCustomFields were read;
	// until they are, the tenant's custom fields are provisional (writes
	// naming a custom field answer 503 rather than losing it).
	// +optional
	HelpdeskCustomFieldsReadAt *metav1.Time `json:"helpdeskCustomFieldsReadAt,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=provcfg,categories=scim
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.database`
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=`.status.conditions[?(@.type=="Synced")].status`
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=`.status.usersSynced`,description="users whose current generation is in the database"
// +kubebuilder:printcolumn:name="Groups",type=integer,JSONPath=`.status.groupsSynced`,priority=1
// +kubebuilder:printcolumn:name="Oldest Unsynced",type=date,JSONPath=`.status.oldestUnsyncedChange`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="a tenant has one ProvisioningConfig and it is named \"default\" (kubectl -n TENANT get provisioningconfig default)"

// ProvisioningConfig is the provisioning configuration of one tenant (its
// namespace): where its helpdesk database is, what deletions do, the
// custom attributes it accepts, and whether the sync is suspended. It is
// meant to live in Git next to the tenant's ScimToken (docs/gitops.md).
type ProvisioningConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ProvisioningConfigSpec `json:"spec,omitempty"`
	// +optional
	Status ProvisioningConfigStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ProvisioningConfigList is a list of ProvisioningConfigs.
type ProvisioningConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProvisioningConfig `json:"items"`
}
