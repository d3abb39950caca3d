package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScimTokenSpec describes a bearer token that an identity provider (Microsoft
// Entra ID, Okta, ...) uses to call the SCIM endpoint. The token's namespace
// is the tenant: users and groups provisioned with it live in that namespace.
//
// +kubebuilder:validation:XValidation:rule="!has(self.rotation) || !has(self.secretRef)",message="rotation and secretRef cannot be combined: an adopted Secret is rotated by whoever manages it (Vault, External Secrets)"
// +kubebuilder:validation:XValidation:rule="!has(self.entraIssued) || !has(self.secretRef)",message="entraIssued and secretRef cannot be combined: with entraIssued, Entra's Secret Token field stays blank and Entra signs a token of its own for every request; no Secret is read. Keep one of them"
// +kubebuilder:validation:XValidation:rule="!has(self.entraIssued) || !has(self.rotation)",message="entraIssued and rotation cannot be combined: Entra-issued tokens are short-lived and Entra replaces them itself; there is no token of the operator's to rotate"
type ScimTokenSpec struct {
	// Description is free text for people, shown by `kubectl get scimtokens`,
	// for example "Entra ID production tenant".
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Description string `json:"description,omitempty"`

	// Active says whether the token is accepted. Setting it to false makes
	// every operator replica refuse the token within seconds, without
	// deleting it (a replica whose view of the tokens falls more than 30 s
	// behind the API server refuses every token until it catches up);
	// setting it back to true accepts it again.
	// +kubebuilder:default=true
	// +optional
	Active *bool `json:"active,omitempty"`

	// Rotation replaces the token on a schedule. Without it the token is
	// rotated only on demand, by setting the scim.helpdesk.dev/rotate
	// annotation to a value it never had (a value handled before does not
	// rotate again).
	// +optional
	Rotation *TokenRotation `json:"rotation,omitempty"`

	// SecretRef adopts a Secret managed elsewhere (External Secrets, Vault,
	// sealed-secrets) instead of generating one. The operator reads the token
	// from it, follows its changes, and never writes or deletes it. The
	// Secret must carry the label scim.helpdesk.dev/adoptable: "true";
	// without it the operator does not read its value and the ScimToken is
	// not Ready (reason SecretNotAdoptable).
	// +optional
	SecretRef *TokenSecretReference `json:"secretRef,omitempty"`

	// EntraIssued accepts, instead of a shared token, the tokens Microsoft
	// Entra ID issues itself when the Secret Token field of the
	// provisioning configuration is left blank: a JWT signed by Entra for
	// every request, checked against the directory's published signing
	// keys (signature RS256, issuer https://sts.windows.net/<tenantID>/,
	// audience 8adf8e6e-67b2-4cf2-a259-e3dc5476c621, expiry). No Secret is
	// generated or read, and status holds no fingerprint. One directory
	// belongs to one namespace: ScimTokens of the same directory in two
	// namespaces make every such token refused.
	// +optional
	EntraIssued *EntraIssuedTokens `json:"entraIssued,omitempty"`

	// SilenceWarningAfter is how long the identity provider may send no
	// authenticated request before the IdentityProviderSilent condition
	// turns True, as a Go duration of at least one minute. Defaults to 2h:
	// Entra ID provisions about every 40 minutes, so 2h is three missed
	// cycles.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="silenceWarningAfter must be at least 1m"
	// +optional
	SilenceWarningAfter *metav1.Duration `json:"silenceWarningAfter,omitempty"`
}

// EntraIssuedTokens names the Entra ID directory whose tokens are accepted.
//
// +kubebuilder:validation:XValidation:rule="has(self.applicationObjectID)",message="entraIssued.applicationObjectID is required: Entra issues tokens with the same issuer and audience to every custom application of the directory, so without it any of them could provision into this namespace. Set it to the object id of the enterprise application that provisions (Enterprise applications > the application > Overview > Object ID)"
type EntraIssuedTokens struct {
	// TenantID is the directory (tenant) id, a GUID: Entra admin center,
	// Overview, "Tenant ID".
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	// +required
	TenantID string `json:"tenantID"`

	// ApplicationObjectID accepts only tokens whose oid or appid claim is
	// this GUID: the enterprise application that provisions (its object
	// id, or its application id), so that another application of the same
	// directory cannot provision into this namespace. Required. Delegated
	// tokens (with an scp claim, issued for a signed-in user) are never
	// accepted. (Required by the XValidation rule of EntraIssuedTokens,
	// not by the schema, so that the refusal says why.)
	// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	ApplicationObjectID string `json:"applicationObjectID,omitempty"`

	// KeysURL overrides where the signing keys are fetched: an OpenID
	// Connect metadata document (its jwks_uri is followed) or a JSON Web
	// Key Set. Default:
	// https://login.microsoftonline.com/<tenantID>/.well-known/openid-configuration.
	// For tests, and clusters that reach Entra through a proxy or mirror:
	// it must start with one of the operator's --entra-keys-url-prefixes,
	// otherwise nothing is fetched.
	// No user info: credentials in the URL would show in status and logs.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#@]+([/?#][^\s]*)?$`
	// +optional
	KeysURL string `json:"keysURL,omitempty"`
}

// TokenRotation says how often a generated token is replaced and how long the
// replaced one keeps working.
//
// +kubebuilder:validation:XValidation:rule="!has(self.overlap) || duration(self.interval) > duration(self.overlap)",message="rotation.interval must be longer than rotation.overlap, otherwise two rotations would overlap"
type TokenRotation struct {
	// Interval between rotations, as a Go duration such as "720h" (30 days).
	// At least one minute.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="rotation.interval must be at least 1m (and not negative)"
	// +required
	Interval metav1.Duration `json:"interval"`

	// Overlap is how long the previous token keeps working after a rotation,
	// so that the identity provider can be given the new one. "0s" revokes
	// the previous token at once (use it after a leak), also one whose
	// overlap is running. Defaults to 24h. A rotation requested while an
	// overlap runs waits until it ends (condition RotationDeferred).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="rotation.overlap must not be negative"
	// +kubebuilder:default="24h"
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
}

// TokenSecretReference names a Secret in the ScimToken's namespace.
type TokenSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Key in the Secret's data that holds the token. Defaults to "token".
	// +kubebuilder:default=token
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// ScimTokenStatus is what the operator observed. It never holds a token,
// only fingerprints (keyed hashes of the token, which cannot be reversed,
// nor checked against a guess without the installation key).
type ScimTokenStatus struct {
	// Conditions: Ready (the token is accepted; with spec.entraIssued,
	// reason EntraIssuedTokens, or False with reason KeysUnavailable while
	// no signing key of the directory could be fetched), PreviousTokenInUse
	// (the identity provider still sends a token that is about to expire),
	// IdentityProviderSilent (no request for spec.silenceWarningAfter),
	// SecretTampered and RotationDeferred.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Endpoint is the SCIM base URL to paste into the identity provider
	// (Entra's "Tenant URL"). It comes from the operator's public base URL
	// flag and is the same for every ScimToken: the bearer token, not the
	// URL, identifies the tenant (this ScimToken's namespace).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// SecretName is the Secret holding the token (key "token") and the
	// endpoint (key "endpoint"): the generated "<name>-token", controlled by
	// this ScimToken, or the adopted spec.secretRef.name. Deleting the
	// generated Secret makes the operator issue a new token and revoke the
	// earlier ones. A token written into it by hand (or a restored backup)
	// is never accepted: status, not the Secret, says which tokens are
	// valid; see the SecretTampered condition.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// Fingerprint identifies the current token: "hmac-sha256:" and the hex
	// HMAC-SHA-256 of the token under the installation key (Secret
	// scim-operator-installation-key in the operator's namespace). Safe to
	// show: without the key nobody can test a guessed token against it. A
	// generated Secret carries the same value in its
	// scim.helpdesk.dev/fingerprint annotation. Status written before
	// fingerprints were keyed holds "sha256:" and the plain SHA-256 until
	// the next reconcile.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`

	// IssuedAt is when the current token was generated or adopted.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// NextRotationAt is when the current token will be replaced.
	// +optional
	NextRotationAt *metav1.Time `json:"nextRotationAt,omitempty"`

	// PreviousFingerprint identifies the token replaced by the last rotation
	// while it still works.
	// +optional
	PreviousFingerprint string `json:"previousFingerprint,omitempty"`

	// PreviousValidUntil is when the previous token stops working: at most
	// issuedAt (when it was replaced) plus the overlap, so shortening
	// spec.rotation.overlap shortens a running overlap too.
	// +optional
	PreviousValidUntil *metav1.Time `json:"previousValidUntil,omitempty"`

	// LastUsedAt is the last time the current token authenticated a request,
	// written at most once a minute.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// PreviousLastUsedAt is the last time the previous token authenticated a
	// request, written at most once a minute.
	// +optional
	PreviousLastUsedAt *metav1.Time `json:"previousLastUsedAt,omitempty"`

	// RotationRequest is the value of the scim.helpdesk.dev/rotate annotation
	// that was last handled: acted on, or recognised as acted on before.
	// Values longer than 63 characters are kept as "sha256:" and their hex
	// SHA-256.
	// +optional
	RotationRequest string `json:"rotationRequest,omitempty"`

	// EarlierRotationRequests are the rotation requests handled before
	// RotationRequest, newest first, at most 10. Setting the annotation back
	// to one of them (a GitOps tool undoing a change) does not rotate again.
	// +optional
	EarlierRotationRequests []string `json:"earlierRotationRequests,omitempty"`

	// Pending is a token the operator is writing into its generated Secret
	// and has not made current yet. It is never accepted; it lets the
	// operator tell its own interrupted write from a token somebody else
	// put into the Secret.
	// +optional
	Pending *PendingToken `json:"pending,omitempty"`

	// EntraTenantID is the directory whose Entra-issued tokens are
	// accepted (spec.entraIssued.tenantID, lower case), once the operator
	// has taken spec.entraIssued up; no replica accepts them before, nor
	// when it differs from spec.
	// +optional
	EntraTenantID string `json:"entraTenantID,omitempty"`

	// Activity is the provisioning traffic of the last hour, written by the
	// SCIM server at most once a minute. It holds no personal data: no
	// resource ids, user names or values a client sent.
	// +optional
	Activity *TokenActivity `json:"activity,omitempty"`
}

// TokenActivity counts the requests this ScimToken authenticated. Every
// replica of the SCIM server adds the counts it gathered since its last
// write into the 10-minute bucket they fall in; the totals are the sum of
// the buckets of the last hour (50 to 60 minutes, in 10-minute steps) when
// UpdatedAt was written. Requests refused before authentication carry no
// token and are not counted here (see the scim_responses_total metric).
type TokenActivity struct {
	// UpdatedAt is when a SCIM server replica last wrote this activity.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`

	// LastRequestAt is when the last authenticated request arrived.
	// +optional
	LastRequestAt *metav1.Time `json:"lastRequestAt,omitempty"`

	// LastClient is the User-Agent of that request (at most 128
	// characters), for example "Azure Active Directory SCIM Client".
	// +optional
	LastClient string `json:"lastClient,omitempty"`

	// Requests in the last hour by operation: listUsers, getUser,
	// createUser, replaceUser, patchUser, deleteUser, searchUsers, the
	// same for Groups, search, discovery and other.
	// +optional
	Requests map[string]int64 `json:"requests,omitempty"`

	// Writes in the last hour by operation: the create, replace, patch
	// and delete requests that succeeded.
	// +optional
	Writes map[string]int64 `json:"writes,omitempty"`

	// Refused requests in the last hour (answered 4xx or 5xx) by status
	// and scimType, as "409 uniqueness" or "404".
	// +optional
	Refused map[string]int64 `json:"refused,omitempty"`

	// RefusedTotal is the sum of Refused.
	// +optional
	RefusedTotal int64 `json:"refusedTotal,omitempty"`

	// LastRefusal is the last refused request.
	// +optional
	LastRefusal *Refusal `json:"lastRefusal,omitempty"`

	// Buckets are the counts per 10 minutes the totals are summed from,
	// oldest first, at most 6.
	// +kubebuilder:validation:MaxItems=6
	// +optional
	Buckets []ActivityBucket `json:"buckets,omitempty"`
}

// ActivityBucket is the activity of the 10 minutes from Start.
type ActivityBucket struct {
	// Start of the 10 minutes.
	// +required
	Start metav1.Time `json:"start"`
	// +optional
	Requests map[string]int64 `json:"requests,omitempty"`
	// +optional
	Writes map[string]int64 `json:"writes,omitempty"`
	// +optional
	Refused map[string]int64 `json:"refused,omitempty"`
}

// Refusal describes a refused request without personal data: the route's
// pattern (/Users/{id}), never the path sent, and the error's wording with
// the values it quoted left out (…).
type Refusal struct {
	// Time the request arrived.
	// +required
	Time metav1.Time `json:"time"`
	// Method, such as PATCH.
	// +optional
	Method string `json:"method,omitempty"`
	// Path is the route's pattern below the SCIM base path, such as
	// /Users/{id}.
	// +optional
	Path string `json:"path,omitempty"`
	// Status is the HTTP status code of the answer.
	// +optional
	Status int32 `json:"status,omitempty"`
	// ScimType of the error (RFC 7644 §3.12), if any.
	// +optional
	ScimType string `json:"scimType,omitempty"`
	// Detail is the error's wording with every value it quoted replaced
	// by "…", at most 256 characters.
	// +optional
	Detail string `json:"detail,omitempty"`
}

// PendingToken is a token being written into the generated Secret, and what
// becomes of the current one once it is written.
type PendingToken struct {
	// Fingerprint of the token being written.
	// +required
	Fingerprint string `json:"fingerprint"`

	// IssuedAt is when it was generated.
	// +required
	IssuedAt metav1.Time `json:"issuedAt"`

	// PreviousValidUntil, when set, keeps the current token working until
	// then as the previous one (a rotation with an overlap); when unset,
	// every earlier token stops once this one is current (a re-issue, or a
	// rotation with overlap 0s).
	// +optional
	PreviousValidUntil *metav1.Time `json:"previousValidUntil,omitempty"`

	// RotationRequest is the scim.helpdesk.dev/rotate value this token
	// satisfies, if any.
	// +optional
	RotationRequest string `json:"rotationRequest,omitempty"`
}

// Condition types of a ScimToken besides Ready and PreviousTokenInUse.
const (
	// ConditionSecretTampered is True when the generated Secret was found
	// edited outside the operator: token-state annotations that disagree
	// with status, or a token the operator did not issue. It stays True
	// until the operator makes a new token current, because whoever could
	// edit the Secret could read the token in it.
	ConditionSecretTampered = "SecretTampered"
	// ConditionRotationDeferred is True while a requested or scheduled
	// rotation waits for the running overlap to end: rotating then would
	// revoke a token the identity provider may still use.
	ConditionRotationDeferred = "RotationDeferred"
	// ConditionIdentityProviderSilent is True when no request authenticated
	// with this ScimToken for longer than spec.silenceWarningAfter.
	ConditionIdentityProviderSilent = "IdentityProviderSilent"
)

// ScimToken issues the bearer token that an identity provider uses to
// provision users and groups into its namespace over SCIM.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=scimtok,categories=scim
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.spec.active`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Next Rotation",type=date,JSONPath=`.status.nextRotationAt`
// +kubebuilder:printcolumn:name="Last Request",type=date,JSONPath=`.status.activity.lastRequestAt`
// +kubebuilder:printcolumn:name="Refused (1h)",type=integer,JSONPath=`.status.activity.refusedTotal`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.secretRef) || self.spec.secretRef.name != self.metadata.name + '-token'",message="spec.secretRef must not name the Secret this ScimToken generates (<name>-token): the operator would stop generating it and delete it, leaving no valid token; adopt a Secret with another name"
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a ScimToken name must be at most 63 characters: it is used as a label value on the users, groups and Secret it owns"
type ScimToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ScimTokenSpec `json:"spec,omitempty"`
	// +optional
	Status ScimTokenStatus `json:"status,omitempty"`
}

// IsActive reports spec.active, which defaults to true.
func (t *ScimToken) IsActive() bool { return t.Spec.Active == nil || *t.Spec.Active }

// +kubebuilder:object:root=true

// ScimTokenList is a list of ScimTokens.
type ScimTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ScimToken `json:"items"`
}
