package operator_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestCustomFieldsDeclaredInGit: a tenant with its own database gets the
// custom fields of its ProvisioningConfig and of its database's table in
// /Schemas, accepts them over SCIM, and stores them in its database (not
// the operator's); a name the two declare differently is reported and the
// table's type is served.
func TestCustomFieldsDeclaredInGit(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()
	def := sqliteStore(t, "")
	dir := filepath.Join(t.TempDir(), "tenants")
	tenantURL := "sqlite://" + filepath.Join(dir, ns+".db")
	tenantDB := tenantDatabaseWithFields(t, dir, ns)

	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}, Helpdesk: def,
		TenantDatabasePrefixes: []string{"sqlite://" + dir + "/"}})
	declareCustomFieldsInGit(t, e, ns, tenantURL)
	token := issueToken(t, ns, base)

	served := servedEnterpriseAttributes(t, base, token)
	for name, want := range map[string]string{"cost-center": "string/false", "projects": "string/true", "badge-number": "integer/false", "shoe-size": "integer/false"} {
		if served[name] != want {
			t.Errorf("/Schemas: %s is %q, want %q", name, served[name], want)
		}
	}

	const ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	code, body := call(t, base, token, "POST", "/Users", `{"userName":"gitops@example.test","`+ext+`":{"cost-center":"CC-7","projects":["alpha","beta"],"badge-number":12}}`)
	if code != 201 {
		t.Fatalf("POST with custom fields declared in Git: %d %s", code, body)
	}
	var created map[string]any
	_ = json.Unmarshal([]byte(body), &created)
	id, _ := created["id"].(string)
	waitFor(t, func() error {
		row, err := tenantDB.GetUser(ctx, ns, id)
		if err != nil {
			return err
		}
		got, _ := json.Marshal(row.CustomFields)
		if row.CustomFields["cost-center"] != "CC-7" || row.CustomFields["badge-number"] != float64(12) || !strings.Contains(string(got), `"projects":["alpha","beta"]`) {
			return fmt.Errorf("custom fields in the tenant's database: %s", got)
		}
		return nil
	})
	if _, err := def.GetUser(ctx, ns, id); !errors.Is(err, helpdesk.ErrNotFound) {
		t.Errorf("the tenant has its own database, yet the operator's has the user: %v", err)
	}
	// The table's type is served for the clashing name.
	if code, body := call(t, base, token, "POST", "/Users", `{"userName":"feet@example.test","`+ext+`":{"shoe-size":"large"}}`); code != 400 {
		t.Errorf("a string for the table's integer shoe-size: want 400, got %d %s", code, body)
	}
}

// tenantDatabaseWithFields makes ns's own database in dir, migrated as the
// operator will find it, whose table declares Badge Number (for ns) and
// Shoe Size (for every tenant) as integers.
func tenantDatabaseWithFields(t *testing.T, dir, ns string) helpdesk.Store {
	t.Helper()
	tenantDB, err := helpdesk.Open(context.Background(), "sqlite://"+filepath.Join(dir, ns+".db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tenantDB.Close() })
	raw, err := sql.Open("sqlite", filepath.Join(dir, ns+".db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO helpdesk_custom_fields (tenant, name, type) VALUES (?, 'Badge Number', 'integer'), ('*', 'Shoe Size', 'integer')`, ns); err != nil {
		t.Fatal(err)
	}
	return tenantDB
}

// declareCustomFieldsInGit creates ns's ProvisioningConfig naming its
// database and three fields, one of which (shoe-size) the table declares
// with another type, and waits until the clash is reported.
func declareCustomFieldsInGit(t *testing.T, e *testenv.Env, ns, tenantURL string) {
	t.Helper()
	ctx := context.Background()
	if err := e.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		StringData: map[string]string{"url": tenantURL}}); err != nil {
		t.Fatal(err)
	}
	cfg := &scimv1.ProvisioningConfig{ObjectMeta: metav1.ObjectMeta{Name: scimv1.ProvisioningConfigName, Namespace: ns},
		Spec: scimv1.ProvisioningConfigSpec{
			Database: &scimv1.TenantDatabase{SecretRef: scimv1.DatabaseSecretReference{Name: "db"}},
			CustomFields: []scimv1.CustomFieldDefinition{
				{Name: "cost-center", Type: "string", Description: "Cost center from Git."},
				{Name: "projects", Type: "string", MultiValued: true},
				{Name: "shoe-size", Type: "string"}, // the table says integer
			},
		}}
	if err := e.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cfg.Status.Conditions, scimv1.ConditionCustomFieldsConsistent)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "shoe-size") {
			return fmt.Errorf("want CustomFieldsConsistent=False naming shoe-size, got %+v", c)
		}
		if cfg.Status.HelpdeskCustomFieldsReadAt == nil {
			return errors.New("the tenant database's fields are not read yet")
		}
		return nil
	})
}

// servedEnterpriseAttributes is the enterprise extension's attributes in
// /Schemas, as "type/multiValued" by name.
func servedEnterpriseAttributes(t *testing.T, base, token string) map[string]string {
	t.Helper()
	code, body := call(t, base, token, "GET", "/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "")
	if code != 200 {
		t.Fatalf("GET the enterprise schema: %d %s", code, body)
	}
	var sch struct {
		Attributes []struct {
			Name        string `json:"name"`
			Type        string `json:"type"`
			MultiValued bool   `json:"multiValued"`
		} `json:"attributes"`
	}
	_ = json.Unmarshal([]byte(body), &sch)
	served := map[string]string{}
	for _, a := range sch.Attributes {
		served[a.Name] = fmt.Sprintf("%s/%t", a.Type, a.MultiValued)
	}
	return served
}
