package schema

// The definitions follow RFC 7643 §4 and §8.7. They are built afresh by
// every constructor so that callers may adjust their copy freely.

type option func(*Attribute)

func newAttr(name string, t Type, desc string, opts ...option) *Attribute {
	a := &Attribute{
		Name:        name,
		Type:        t,
		Description: desc,
		Mutability:  ReadWrite,
		Returned:    ReturnedDefault,
		Uniqueness:  UniqueNone,
	}
	if t == Reference {
		// RFC 7643 §2.3.7: references are case-exact URIs.
		a.CaseExact = true
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func required(a *Attribute)  { a.Required = true }
func caseExact(a *Attribute) { a.CaseExact = true }
func multi(a *Attribute)     { a.MultiValued = true }
func readOnly(a *Attribute)  { a.Mutability = ReadOnly }
func immutable(a *Attribute) { a.Mutability = Immutable }
func writeOnly(a *Attribute) { a.Mutability = WriteOnly }

func returned(r string) option { return func(a *Attribute) { a.Returned = r } }
func unique(u string) option   { return func(a *Attribute) { a.Uniqueness = u } }
func canonical(v ...string) option {
	return func(a *Attribute) { a.CanonicalValues = v }
}
func refTypes(v ...string) option {
	return func(a *Attribute) { a.ReferenceTypes = v }
}
func subs(s ...*Attribute) option {
	return func(a *Attribute) { a.SubAttributes = s }
}

// each applies opts to the attribute and to all its sub-attributes, so that
// a read-only complex attribute reads as read-only all the way down.
func each(opts ...option) option {
	return func(a *Attribute) {
		for _, o := range opts {
			o(a)
			for _, s := range a.SubAttributes {
				o(s)
			}
		}
	}
}

// commonAttributes are the RFC 7643 §3.1 attributes every resource carries.
// They are listed in each core schema so that they resolve, project and
// appear on /Schemas like any other attribute.
func commonAttributes() []*Attribute {
	return []*Attribute{
		newAttr("id", String, "Unique identifier of the resource, assigned by the service provider.",
			required, caseExact, readOnly, returned(ReturnedAlways), unique(UniqueServer)),
		newAttr("externalId", String, "Identifier of the resource as defined by the provisioning client.",
			caseExact),
		newAttr("meta", Complex, "Resource metadata maintained by the service provider.",
			subs(
				newAttr("resourceType", String, "Name of the resource type of the resource.", caseExact),
				newAttr("created", DateTime, "Time the resource was added to the service provider."),
				newAttr("lastModified", DateTime, "Time the resource was last updated."),
				newAttr("location", Reference, "URI of the resource.", refTypes("uri")),
				newAttr("version", String, "Version (ETag) of the resource.", caseExact),
			),
			each(readOnly)),
	}
}

// multiComplex builds a multi-valued attribute of the usual
// value/display/type/primary elements; desc names one element.
func multiComplex(name, desc, plural string, valueType Type, types []string) *Attribute {
	valueOpts := []option{}
	if valueType == Reference {
		valueOpts = append(valueOpts, refTypes("external"))
	}
	opts := []option{multi, subs(
		newAttr("value", valueType, "Value of the "+desc+".", valueOpts...),
		newAttr("display", String, "Human-readable name of the "+desc+"."),
		newAttr("type", String, "Label indicating the kind of "+desc+".", canonical(types...)),
		newAttr("primary", Boolean, "Whether this is the primary "+desc+"; at most one element may be primary."),
	)}
	return newAttr(name, Complex, plural, opts...)
}

func userSchema() *Schema {
	attrs := commonAttributes()
	attrs = append(attrs,
		newAttr("userName", String, "Unique identifier the user signs in with; unique without regard to case.",
			required, unique(UniqueServer)),
		newAttr("name", Complex, "Components of the user's real name.", subs(
			newAttr("formatted", String, "Full name formatted for display."),
			newAttr("familyName", String, "Family name (last name in most Western languages)."),
			newAttr("givenName", String, "Given name (first name in most Western languages)."),
			newAttr("middleName", String, "Middle name(s)."),
			newAttr("honorificPrefix", String, "Honorific prefix, such as \"Ms.\"."),
			newAttr("honorificSuffix", String, "Honorific suffix, such as \"III\"."),
		)),
		newAttr("displayName", String, "Name of the user suitable for display to end users."),
		newAttr("nickName", String, "Casual name of the user."),
		newAttr("profileUrl", Reference, "URL of the user's online profile.", refTypes("external")),
		newAttr("title", String, "Job title of the user."),
		newAttr("userType", String, "Relationship between the organization and the user, such as \"Employee\"."),
		newAttr("preferredLanguage", String, "Preferred written or spoken language, as in HTTP Accept-Language."),
		newAttr("locale", String, "Default location for localizing currency, dates and numbers."),
		newAttr("timezone", String, "Time zone in IANA database format, such as \"Europe/Amsterdam\"."),
		newAttr("active", Boolean, "Whether the user may sign in; false for a disabled user."),
		newAttr("password", String, "Cleartext password; accepted but never stored or returned.",
			writeOnly, returned(ReturnedNever)),
		multiComplex("emails", "email address", "Email addresses of the user.", String, []string{"work", "home", "other"}),
		multiComplex("phoneNumbers", "phone number", "Phone numbers of the user.", String, []string{"work", "home", "mobile", "fax", "pager", "other"}),
		multiComplex("ims", "instant messaging address", "Instant messaging addresses of the user.", String, []string{"aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"}),
		multiComplex("photos", "photo", "URLs of photos of the user.", Reference, []string{"photo", "thumbnail"}),
		newAttr("addresses", Complex, "Physical mailing addresses of the user.", multi, subs(
			newAttr("formatted", String, "Full mailing address formatted for display."),
			newAttr("streetAddress", String, "Street address, possibly with house number and line breaks."),
			newAttr("locality", String, "City or locality."),
			newAttr("region", String, "State or region."),
			newAttr("postalCode", String, "Postal or ZIP code."),
			newAttr("country", String, "Country, as an ISO 3166-1 alpha-2 code."),
			newAttr("type", String, "Label indicating the kind of address.", canonical("work", "home", "other")),
			newAttr("primary", Boolean, "Whether this is the primary address; at most one element may be primary."),
		)),
		newAttr("groups", Complex, "Groups the user belongs to, maintained through the Group resources.", multi, subs(
			newAttr("value", String, "Identifier of the group.", caseExact),
			newAttr("$ref", Reference, "URI of the group.", refTypes("User", "Group")),
			newAttr("display", String, "Display name of the group."),
			newAttr("type", String, "Whether membership is direct or inherited.", canonical("direct", "indirect")),
		), each(readOnly)),
		multiComplex("entitlements", "entitlement", "Entitlements of the user.", String, nil),
		multiComplex("roles", "role", "Roles of the user.", String, nil),
		multiComplex("x509Certificates", "X.509 certificate", "DER-encoded X.509 certificates of the user.", Binary, nil),
	)
	return &Schema{ID: UserURN, Name: "User", Description: "User Account", Attributes: attrs}
}

func enterpriseSchema(extra []*Attribute) *Schema {
	attrs := []*Attribute{
		newAttr("employeeNumber", String, "Number or identifier of the employee in the organization."),
		newAttr("costCenter", String, "Name of the cost center."),
		newAttr("organization", String, "Name of the organization."),
		newAttr("division", String, "Name of the division."),
		newAttr("department", String, "Name of the department."),
		newAttr("manager", Complex, "The user's manager.", func(a *Attribute) { a.singleRef = true }, subs(
			newAttr("value", String, "Identifier of the manager's User resource.", caseExact),
			newAttr("$ref", Reference, "URI of the manager's User resource.", refTypes("User")),
			newAttr("displayName", String, "Display name of the manager.", readOnly),
		)),
	}
	for _, a := range extra {
		attrs = append(attrs, cloneAttr(a))
	}
	return &Schema{ID: EnterpriseURN, Name: "EnterpriseUser", Description: "Enterprise User", Attributes: attrs}
}

func groupSchema() *Schema {
	attrs := commonAttributes()
	attrs = append(attrs,
		newAttr("displayName", String, "Name of the group; unique without regard to case.", required, unique(UniqueServer)),
		newAttr("members", Complex, "Users and groups that belong to the group.", multi, subs(
			newAttr("value", String, "Identifier of the member resource.", caseExact, immutable),
			newAttr("$ref", Reference, "URI of the member resource.", refTypes("User", "Group"), immutable),
			// Immutable like the other sub-attributes of members (RFC 7643
			// §4.2): set when the member is included (POST, PUT, PATCH add),
			// kept per member (docs/conformance.md).
			newAttr("display", String, "Display name of the member.", immutable, func(a *Attribute) { a.alias = "displayName" }),
			newAttr("type", String, "Kind of the member resource.", canonical("User", "Group"), immutable),
		)),
	)
	return &Schema{ID: GroupURN, Name: "Group", Description: "Group", Attributes: attrs}
}

// UserResourceType returns the User resource type with the enterprise
// extension. enterpriseExtra attributes (deployment-specific fields) are
// copied and appended to the enterprise extension.
func UserResourceType(enterpriseExtra ...*Attribute) *ResourceType {
	return &ResourceType{
		ID:           "User",
		Name:         "User",
		Endpoint:     "/Users",
		Description:  "User Account",
		Schema:       userSchema(),
		Extensions:   []Extension{{Schema: enterpriseSchema(enterpriseExtra)}},
		AnyExtension: true,
	}
}

// GroupResourceType returns the Group resource type. Undeclared extensions
// are not accepted: no client is known to send them for groups.
func GroupResourceType() *ResourceType {
	return &ResourceType{
		ID:          "Group",
		Name:        "Group",
		Endpoint:    "/Groups",
		Description: "Group",
		Schema:      groupSchema(),
	}
}
