package v1alpha1

// Labels, annotations and finalizers shared by the controllers and the SCIM
// server. They are part of the API: users select on the labels with kubectl.
const (
	// LabelActive mirrors a ProvisionedUser's spec.active ("true"/"false") so
	// that `kubectl get provisionedusers -l scim.helpdesk.dev/active=false`
	// lists disabled users.
	LabelActive = "scim.helpdesk.dev/active"
	// LabelToken names the ScimToken whose bearer created the object.
	LabelToken = "scim.helpdesk.dev/token" //nolint:gosec // a label key, not a credential
	// LabelGroup names the ProvisionedGroup a GroupMembership shard belongs to.
	LabelGroup = "scim.helpdesk.dev/group"
	// LabelClaimKind says what a NameClaim reserves: "userName" or "displayName".
	LabelClaimKind = "scim.helpdesk.dev/claim-kind"
	// LabelManagedBy marks Secrets the ScimToken controller generated.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelAdoptable set to "true" lets a ScimToken in the Secret's namespace
	// adopt the Secret (spec.secretRef). Without it the operator does not
	// read the Secret's value: otherwise whoever may edit a ScimToken could
	// point it at any Secret in the namespace, read the SHA-256 of its value
	// in status and make that value a valid bearer token.
	LabelAdoptable = "scim.helpdesk.dev/adoptable"

	// AnnotationEntraTenantIDs, on a Namespace, lists (comma-separated)
	// the Entra directory ids whose self-issued tokens ScimTokens of that
	// namespace may accept (spec.entraIssued). It is set by cluster
	// administrators: directory ids are public, and a namespace editor
	// claiming another tenant's directory would receive its provisioning
	// traffic or make it ambiguous.
	AnnotationEntraTenantIDs = "scim.helpdesk.dev/entra-tenant-ids"

	// AnnotationRotate requests a rotation when set to a value the ScimToken
	// never handled (a value set back to an earlier one does not rotate
	// again; a rotation waits for a running overlap to end):
	// kubectl annotate scimtoken NAME scim.helpdesk.dev/rotate="$(date +%s)" --overwrite
	AnnotationRotate = "scim.helpdesk.dev/rotate"

	// AnnotationPendingMembers marks a ProvisionedGroup whose creation has
	// not been acknowledged yet: the SCIM server creates a group with members
	// under this mark and removes it in the same write that completes the
	// members. Until then the group is invisible to SCIM, does not hold its
	// displayName, and is not written to the helpdesk database; one left
	// behind by a failed create is deleted by the group controller.
	AnnotationPendingMembers = "scim.helpdesk.dev/pending-members"

	// FinalizerHelpdesk keeps a user or group until its deletion reached the
	// helpdesk database.
	FinalizerHelpdesk = "scim.helpdesk.dev/helpdesk-sync"
	// FinalizerTenantSync keeps a ProvisioningConfig while users or groups
	// of its tenant still have deletions to write to its database (a
	// namespace being deleted removes the config and the users at once).
	FinalizerTenantSync = "scim.helpdesk.dev/tenant-sync"
	// FinalizerToken keeps a ScimToken until its tokens are revoked.
	FinalizerToken = "scim.helpdesk.dev/revoke" //nolint:gosec // a finalizer name, not a credential

	// ManagerName is the value of LabelManagedBy on objects this operator owns.
	ManagerName = "scim-operator"
)

// Condition types and reasons used across kinds.
const (
	// ConditionReady is true when a ScimToken's bearer token is accepted.
	ConditionReady = "Ready"
	// ConditionSynced is true when a user or group is in the helpdesk database
	// exactly as its spec says.
	ConditionSynced = "Synced"
	// ConditionPreviousTokenInUse warns that the identity provider still sends
	// a token that is about to stop working.
	ConditionPreviousTokenInUse = "PreviousTokenInUse"
)
