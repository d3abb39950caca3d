package helpdesk

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

func (s *sqlStore) SyncMembers(ctx context.Context, tenant, groupID string, desired []string) (added, removed int, err error) {
	wrap := func(err error) error {
		return fmt.Errorf("helpdesk: sync members of group %s/%s: %w", tenant, groupID, err)
	}
	if err := validTenant(tenant); err != nil {
		return 0, 0, wrap(err)
	}
	if err := validate(field{column: "group_scim_id", value: groupID, max: maxKeyLen, required: true}); err != nil {
		return 0, 0, wrap(err)
	}
	want := make(map[string]struct{}, len(desired))
	for _, id := range desired {
		if err := validate(field{column: "user_scim_id", value: id, max: maxKeyLen, required: true}); err != nil {
			return 0, 0, wrap(err)
		}
		want[id] = struct{}{}
	}

	// Retried as a whole: a concurrent sync of the same group may deadlock.
	err = s.withRetry(func() (err error) {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			added, removed, err = s.syncMembersTx(ctx, tx, tenant, groupID, want)
			return err
		})
	})
	if err != nil {
		return 0, 0, wrap(err)
	}
	return added, removed, nil
}

func (s *sqlStore) syncMembersTx(ctx context.Context, tx *sql.Tx, tenant, groupID string, want map[string]struct{}) (added, removed int, err error) {
	have, err := s.groupMembers(ctx, tx, tenant, groupID)
	if err != nil {
		return 0, 0, err
	}
	toAdd, toRemove := diffMembers(have, want)
	if removed, err = s.deleteMembers(ctx, tx, tenant, groupID, toRemove); err != nil {
		return 0, 0, err
	}
	if added, err = s.insertMembers(ctx, tx, tenant, groupID, toAdd); err != nil {
		return 0, 0, err
	}
	return added, removed, nil
}

// diffMembers returns the ids to insert and delete, sorted so concurrent
// syncs take row locks in the same order.
func diffMembers(have []string, want map[string]struct{}) (toAdd, toRemove []string) {
	haveSet := make(map[string]struct{}, len(have))
	for _, id := range have {
		haveSet[id] = struct{}{}
		if _, ok := want[id]; !ok {
			toRemove = append(toRemove, id)
		}
	}
	for id := range want {
		if _, ok := haveSet[id]; !ok {
			toAdd = append(toAdd, id)
		}
	}
	sort.Strings(toAdd)
	sort.Strings(toRemove)
	return toAdd, toRemove
}

// deleteMembers removes ids in DELETE ... IN (...) chunks and returns the
// number of rows really deleted.
func (s *sqlStore) deleteMembers(ctx context.Context, tx *sql.Tx, tenant, groupID string, ids []string) (int, error) {
	n := 0
	for start := 0; start < len(ids); start += membersPerStmt {
		chunk := ids[start:min(start+membersPerStmt, len(ids))]
		q := `DELETE FROM helpdesk_group_members WHERE tenant = ? AND group_scim_id = ? AND user_scim_id IN (` +
			placeholders(len(chunk), 1) + `)`
		args := make([]any, 0, len(chunk)+2)
		args = append(args, tenant, groupID)
		for _, id := range chunk {
			args = append(args, id)
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(q), args...)
		if err != nil {
			return n, fmt.Errorf("delete %d members: %w", len(chunk), err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return n, fmt.Errorf("delete members: rows affected: %w", err)
		}
		n += int(affected)
	}
	return n, nil
}

// insertMembers adds ids with multi-row INSERTs. Rows a concurrent sync
// already inserted are skipped rather than failing, and not counted.
func (s *sqlStore) insertMembers(ctx context.Context, tx *sql.Tx, tenant, groupID string, ids []string) (int, error) {
	n := 0
	for start := 0; start < len(ids); start += membersPerStmt {
		chunk := ids[start:min(start+membersPerStmt, len(ids))]
		q := `INSERT INTO helpdesk_group_members (tenant, group_scim_id, user_scim_id) VALUES ` +
			placeholders(len(chunk), 3) + s.d.ignoreDuplicates("user_scim_id")
		args := make([]any, 0, 3*len(chunk))
		for _, id := range chunk {
			args = append(args, tenant, groupID, id)
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(q), args...)
		if err != nil {
			return n, fmt.Errorf("insert %d members: %w", len(chunk), err)
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return n, fmt.Errorf("insert members: rows affected: %w", err)
		}
		n += int(affected)
	}
	return n, nil
}

// placeholders returns rows groups of width '?': "?, ?" for width 1,
// "(?, ?, ?), (?, ?, ?)" for width 3.
func placeholders(rows, width int) string {
	one := strings.TrimSuffix(strings.Repeat("?, ", width), ", ")
	if width > 1 {
		one = "(" + one + ")"
	}
	var b strings.Builder
	b.Grow(rows * (len(one) + 2))
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

func (s *sqlStore) GroupMembers(ctx context.Context, tenant, groupID string) ([]string, error) {
	ids, err := s.groupMembers(ctx, s.db, tenant, groupID)
	if err != nil {
		return nil, fmt.Errorf("helpdesk: members of group %s/%s: %w", tenant, groupID, err)
	}
	return ids, nil
}

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// groupMembers returns the member ids sorted bytewise (not by collation).
func (s *sqlStore) groupMembers(ctx context.Context, q rowsQuerier, tenant, groupID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(
		`SELECT user_scim_id FROM helpdesk_group_members WHERE tenant = ? AND group_scim_id = ?`), tenant, groupID)
	if err != nil {
		return nil, fmt.Errorf("select members: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan member: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	sort.Strings(ids)
	return ids, nil
}
