package operator

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-logr/logr"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// customFieldTTL is how long a tenant's custom field list is reused before
// the database is asked again: new fields show up within it, and the SCIM
// request path costs no query.
const customFieldTTL = 30 * time.Second

// customFieldSchemas serves each tenant's User resource type: the RFC
// schema plus the helpdesk's custom user fields as attributes of the
// enterprise extension (as the helpdesk's Entra guide describes).
type customFieldSchemas struct {
	store helpdesk.Store
	log   logr.Logger
	base  *schema.ResourceType

	mu      sync.Mutex
	tenants map[string]cachedType
}

type cachedType struct {
	rt      *schema.ResourceType
	fetched time.Time
}

func newCustomFieldSchemas(store helpdesk.Store, log logr.Logger) *customFieldSchemas {
	return &customFieldSchemas{store: store, log: log, base: schema.UserResourceType(), tenants: map[string]cachedType{}}
}

// userType is the server.SchemaSource. A type served without the
// definitions ever read for the tenant is marked provisional
// (server.ProvisionalSchema), so that a helpdesk outage never erases custom
// fields: PUT keeps the stored ones and a write naming one answers 503.
func (c *customFieldSchemas) userType(ctx context.Context, tenant string) *schema.ResourceType {
	rt, authoritative := c.lookup(ctx, tenant)
	if !authoritative {
		server.ProvisionalSchema(ctx)
	}
	return rt
}

// lookup returns the tenant's User type and whether it is authoritative:
// the definitions were read at least once (the last known set counts).
func (c *customFieldSchemas) lookup(ctx context.Context, tenant string) (*schema.ResourceType, bool) {
	c.mu.Lock()
	cached, ok := c.tenants[tenant]
	c.mu.Unlock()
	if ok && time.Since(cached.fetched) < customFieldTTL {
		return cached.rt, true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	fields, err := c.store.CustomFields(ctx, tenant)
	if err != nil {
		// The database being down must not stop provisioning: serve the
		// last known schema (or the RFC one) and try again next time.
		c.log.Info("reading custom fields failed; using the last known schema", "tenant", tenant, "error", err.Error())
		if ok {
			return cached.rt, true
		}
		return c.base, false
	}
	attrs := make([]*schema.Attribute, 0, len(fields))
	seen := map[string]bool{}
	for _, f := range fields {
		name := CustomFieldAttributeName(f.Name)
		t, known := fieldTypes[f.Type]
		if name == "" || !known || seen[name] {
			continue
		}
		seen[name] = true
		attrs = append(attrs, &schema.Attribute{
			Name: name, Type: t, Description: "Helpdesk custom field " + f.Name + ".",
			Mutability: "readWrite", Returned: "default", Uniqueness: "none",
		})
	}
	rt := schema.UserResourceType(attrs...)
	c.mu.Lock()
	c.tenants[tenant] = cachedType{rt: rt, fetched: time.Now()}
	c.mu.Unlock()
	return rt, true
}

var fieldTypes = map[string]schema.Type{
	helpdesk.CustomFieldString:   schema.String,
	helpdesk.CustomFieldBoolean:  schema.Boolean,
	helpdesk.CustomFieldDateTime: schema.DateTime,
	helpdesk.CustomFieldInteger:  schema.Integer,
}

// CustomFieldAttributeName turns a helpdesk field name into its SCIM
// attribute name: lower-cased, punctuation stripped, spaces turned into
// dashes ("Shoe Size (EU)" -> "shoe-size-eu").
func CustomFieldAttributeName(field string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(strings.TrimSpace(field)) {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		case unicode.IsSpace(r) || r == '-' || r == '_':
			dash = true
		}
	}
	name := b.String()
	// SCIM attribute names start with a letter (RFC 7643 §2.1).
	if name == "" || !unicode.IsLetter(rune(name[0])) {
		return ""
	}
	return name
}
