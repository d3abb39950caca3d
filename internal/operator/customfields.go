package operator

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"

	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/scim/schema"
	"github.com/scim-operator/scim-operator/internal/scim/server"
	"github.com/scim-operator/scim-operator/internal/tenancy"
)

// customFieldTTL is how long a tenant's custom field list is reused before
// the database is asked again: new fields show up within it, and the SCIM
// request path costs no query.
const customFieldTTL = 30 * time.Second

// customFieldSchemas serves each tenant's User resource type: the RFC
// schema plus the tenant's custom user fields as attributes of the
// enterprise extension (as the helpdesk's Entra guide describes). The
// fields are those of the tenant's ProvisioningConfig (spec.customFields)
// and of its helpdesk database: the operator's, read here, or the
// tenant's own, as the ProvisioningConfig controller last read it into
// status (the SCIM server never connects to a tenant's database).
type customFieldSchemas struct {
	store   helpdesk.Store // the operator's database; nil: none
	configs client.Reader  // ProvisioningConfigs, from the cache
	log     logr.Logger
	base    *schema.ResourceType

	mu      sync.Mutex
	tenants map[string]cachedFields // the operator's database's fields, by tenant
	built   map[string]builtType    // the served type, by tenant
}

type cachedFields struct {
	fields  []scimv1.CustomFieldDefinition
	fetched time.Time
}

// builtType is a tenant's served type and what it was built from.
type builtType struct {
	from string
	rt   *schema.ResourceType
}

func newCustomFieldSchemas(store helpdesk.Store, configs client.Reader, log logr.Logger) *customFieldSchemas {
	return &customFieldSchemas{store: store, configs: configs, log: log, base: schema.UserResourceType(),
		tenants: map[string]cachedFields{}, built: map[string]builtType{}}
}

// userType is the server.SchemaSource. A type served without the
// definitions ever read for the tenant is marked provisional
// (server.ProvisionalSchema), so that a helpdesk outage never erases custom
// fields: PUT keeps the stored ones and a write naming one answers 503.
func (c *customFieldSchemas) userType(ctx context.Context, tenant string) *schema.ResourceType {
	cfg := &scimv1.ProvisioningConfig{}
	if err := c.configs.Get(ctx, client.ObjectKey{Namespace: tenant, Name: scimv1.ProvisioningConfigName}, cfg); err != nil {
		if !apierrors.IsNotFound(err) {
			c.log.Info("reading the tenant's ProvisioningConfig failed; custom fields are provisional", "tenant", tenant, "error", err.Error())
			server.ProvisionalSchema(ctx)
			return c.base
		}
		cfg = nil
	}
	var (
		declared, fromDB []scimv1.CustomFieldDefinition
		authoritative    = true
		from             = "none"
	)
	switch {
	case cfg != nil && cfg.Spec.Database != nil:
		fromDB = cfg.Status.HelpdeskCustomFields
		authoritative = cfg.Status.HelpdeskCustomFieldsReadAt != nil
		from = "status"
	case c.store != nil:
		var fetched time.Time
		fromDB, fetched, authoritative = c.defaultFields(ctx, tenant)
		from = strconv.FormatInt(fetched.UnixNano(), 10)
	}
	if cfg != nil {
		declared = cfg.Spec.CustomFields
		from += "/" + cfg.ResourceVersion
	}
	if !authoritative {
		server.ProvisionalSchema(ctx)
	}
	c.mu.Lock()
	b, ok := c.built[tenant]
	c.mu.Unlock()
	if ok && b.from == from {
		return b.rt
	}
	merged, _ := tenancy.MergeFields(declared, fromDB)
	attrs := make([]*schema.Attribute, 0, len(merged))
	for _, f := range merged {
		attrs = append(attrs, &schema.Attribute{
			Name: f.Name, Type: fieldTypes[f.Type], MultiValued: f.MultiValued, Description: f.Description,
			Mutability: "readWrite", Returned: "default", Uniqueness: "none",
		})
	}
	rt := schema.UserResourceType(attrs...)
	c.mu.Lock()
	c.built[tenant] = builtType{from: from, rt: rt}
	c.mu.Unlock()
	return rt
}

// defaultFields returns the tenant's fields in the operator's database and
// whether they are authoritative: read at least once (the last known set
// counts). They are read again after customFieldTTL.
func (c *customFieldSchemas) defaultFields(ctx context.Context, tenant string) ([]scimv1.CustomFieldDefinition, time.Time, bool) {
	c.mu.Lock()
	cached, ok := c.tenants[tenant]
	c.mu.Unlock()
	if ok && time.Since(cached.fetched) < customFieldTTL {
		return cached.fields, cached.fetched, true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := c.store.CustomFields(ctx, tenant)
	if err != nil {
		// The database being down must not stop provisioning: serve the
		// last known schema (or the RFC one) and try again next time.
		c.log.Info("reading custom fields failed; using the last known schema", "tenant", tenant, "error", err.Error())
		return cached.fields, cached.fetched, ok
	}
	fields := tenancy.HelpdeskFields(rows, tenant)
	now := time.Now()
	c.mu.Lock()
	c.tenants[tenant] = cachedFields{fields: fields, fetched: now}
	c.mu.Unlock()
	return fields, now, true
}

var fieldTypes = map[string]schema.Type{
	helpdesk.CustomFieldString:   schema.String,
	helpdesk.CustomFieldBoolean:  schema.Boolean,
	helpdesk.CustomFieldDateTime: schema.DateTime,
	helpdesk.CustomFieldInteger:  schema.Integer,
}
