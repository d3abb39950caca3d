package helpdesk

import "strings"

// column is a column an upsert writes, with the PostgreSQL type its
// argument is cast to.
type column struct{ name, pgType string }

// upsertStatement builds the one PostgreSQL statement that upserts a row of
// table by (tenant, scim_id). Its arguments are the values of cols, then
// created_at, updated_at, tenant and scim_id. It returns scim_id when it
// wrote the row (inserted it, changed a column, or revived it from
// deleted_at) and no row when the row already held these values.
//
// The NOT EXISTS guard answers that no-op from the statement's snapshot,
// as a plain SELECT would: without it, ON CONFLICT DO UPDATE locks the
// existing row even when its WHERE is false, so every resync would take
// a transaction id, write a lock to the WAL and wait behind the row's
// other writers. A row that differs, appears or vanishes is settled by ON
// CONFLICT, which rechecks the latest version under the row lock. The
// conflict target is the primary key alone: another unique key (the
// userName key) still fails the statement with a unique violation.
func upsertStatement(table string, cols []column) string {
	all := append(append([]column{}, cols...),
		column{"created_at", "timestamptz"}, column{"updated_at", "timestamptz"},
		column{"tenant", "text"}, column{"scim_id", "text"})
	names := make([]string, len(all))
	casts := make([]string, len(all))
	for i, c := range all {
		names[i] = c.name
		casts[i] = "CAST(? AS " + c.pgType + ")"
	}
	set := make([]string, len(cols))
	stored, guard, excluded, given := make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		set[i] = c.name + " = excluded." + c.name
		stored[i] = table + "." + c.name
		guard[i] = "h." + c.name
		excluded[i] = "excluded." + c.name
		given[i] = "v." + c.name
	}
	list := strings.Join(names, ", ")
	return `WITH v (` + list + `) AS (VALUES (` + strings.Join(casts, ", ") + `))
		INSERT INTO ` + table + ` (` + list + `)
		SELECT ` + list + ` FROM v
		WHERE NOT EXISTS (SELECT 1 FROM ` + table + ` h
			WHERE h.tenant = v.tenant AND h.scim_id = v.scim_id AND h.deleted_at IS NULL
			AND (` + strings.Join(guard, ", ") + `) IS NOT DISTINCT FROM (` + strings.Join(given, ", ") + `))
		ON CONFLICT (tenant, scim_id) DO UPDATE SET ` + strings.Join(set, ", ") + `,
			updated_at = excluded.updated_at, deleted_at = NULL
		WHERE ` + table + `.deleted_at IS NOT NULL
			OR (` + strings.Join(stored, ", ") + `) IS DISTINCT FROM (` + strings.Join(excluded, ", ") + `)
		RETURNING scim_id`
}
