package helpdesk

import (
	"context"
	"fmt"
	"sort"
)

// CustomFields reads helpdesk_custom_fields, which the helpdesk writes; the
// operator never modifies it.
func (s *sqlStore) CustomFields(ctx context.Context, tenant string) ([]CustomField, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(
		`SELECT tenant, name, type FROM helpdesk_custom_fields WHERE tenant IN (?, ?)`), tenant, AllTenants)
	if err != nil {
		return nil, fmt.Errorf("helpdesk: custom fields of %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []CustomField
	for rows.Next() {
		var f CustomField
		if err := rows.Scan(&f.Tenant, &f.Name, &f.Type); err != nil {
			return nil, fmt.Errorf("helpdesk: custom fields of %s: scan: %w", tenant, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("helpdesk: custom fields of %s: %w", tenant, err)
	}
	// Sorted in Go: collations order '*' differently on each database.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant == AllTenants
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
