package helpdesk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func validateGroup(g Group) error {
	if err := validTenant(g.Tenant); err != nil {
		return err
	}
	return validate(
		field{column: "scim_id", value: g.SCIMID, max: maxKeyLen, required: true},
		field{column: "display_name", value: g.DisplayName, max: maxTextLen, required: true},
		field{column: "external_id", value: g.ExternalID, max: maxKeyLen},
	)
}

func (s *sqlStore) UpsertGroup(ctx context.Context, g Group) (bool, error) {
	wrap := func(err error) error { return fmt.Errorf("helpdesk: upsert group %s/%s: %w", g.Tenant, g.SCIMID, err) }
	if err := validateGroup(g); err != nil {
		return false, wrap(err)
	}
	changed, err := readThenWrite(func() (bool, bool, error) { return s.upsertGroupOnce(ctx, g) })
	if err != nil {
		return false, wrap(err)
	}
	return changed, nil
}

// upsertGroupOnce reads the row and writes it in one statement when it
// differs, as upsertUserOnce does. retry asks to run it again: the row
// appeared or vanished between the read and the write.
func (s *sqlStore) upsertGroupOnce(ctx context.Context, g Group) (changed, retry bool, err error) {
	cur, err := s.getGroup(ctx, g.Tenant, g.SCIMID)
	exists := err == nil
	switch {
	case exists && sameGroup(cur, g):
		return false, false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, false, err
	}
	now := s.d.timeArg(s.timestamp())
	if !exists {
		_, err = s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO helpdesk_groups
			(tenant, scim_id, display_name, external_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`),
			g.Tenant, g.SCIMID, g.DisplayName, nullable(g.ExternalID), now, now)
		if err != nil {
			// The one unique key is the row's own: it was inserted meanwhile.
			retry = s.d.isUniqueViolation(err) || s.d.isDeadlock(err)
			return false, retry, fmt.Errorf("insert: %w", err)
		}
		return true, false, nil
	}
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_groups
		SET display_name = ?, external_id = ?, updated_at = ?, deleted_at = NULL
		WHERE tenant = ? AND scim_id = ?`),
		g.DisplayName, nullable(g.ExternalID), now, g.Tenant, g.SCIMID)
	if err != nil {
		return false, s.d.isDeadlock(err), fmt.Errorf("update: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, false, fmt.Errorf("update: rows affected: %w", err)
	}
	// No row: deleted since it was read (or, on MySQL, which counts changed
	// rows only, already equal). The next read settles it.
	return n > 0, n == 0, nil
}

// sameGroup reports whether storing g over the live row cur would change nothing.
func sameGroup(cur, g Group) bool {
	return cur.DeletedAt == nil && cur.DisplayName == g.DisplayName && cur.ExternalID == g.ExternalID
}

func (s *sqlStore) GetGroup(ctx context.Context, tenant, scimID string) (Group, error) {
	g, err := s.getGroup(ctx, tenant, scimID)
	if err != nil {
		return Group{}, fmt.Errorf("helpdesk: get group %s/%s: %w", tenant, scimID, err)
	}
	return g, nil
}

func (s *sqlStore) getGroup(ctx context.Context, tenant, scimID string) (Group, error) {
	var (
		g                         Group
		ext                       sql.NullString
		created, updated, deleted dbTime
	)
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT tenant, scim_id, display_name, external_id,
		created_at, updated_at, deleted_at FROM helpdesk_groups WHERE tenant = ? AND scim_id = ?`),
		tenant, scimID).Scan(&g.Tenant, &g.SCIMID, &g.DisplayName, &ext, &created, &updated, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, ErrNotFound
	}
	if err != nil {
		return Group{}, fmt.Errorf("select: %w", err)
	}
	g.ExternalID = ext.String
	g.CreatedAt, g.UpdatedAt, g.DeletedAt = created.t, updated.t, deleted.ptr()
	return g, nil
}

func (s *sqlStore) DeleteGroup(ctx context.Context, tenant, scimID string, policy DeletionPolicy) error {
	wrap := func(err error) error { return fmt.Errorf("helpdesk: delete group %s/%s: %w", tenant, scimID, err) }
	policy, err := checkPolicy(policy)
	if err != nil {
		return wrap(err)
	}
	if policy == DeletionPolicyRetain {
		// Member rows stay, so the helpdesk can still show who was in it.
		now := s.d.timeArg(s.timestamp())
		_, err = s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_groups SET deleted_at = ?, updated_at = ?
			WHERE tenant = ? AND scim_id = ? AND deleted_at IS NULL`), now, now, tenant, scimID)
		if err != nil {
			return wrap(err)
		}
		return nil
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.rebind(
			`DELETE FROM helpdesk_group_members WHERE tenant = ? AND group_scim_id = ?`), tenant, scimID); err != nil {
			return fmt.Errorf("delete members: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind(
			`DELETE FROM helpdesk_groups WHERE tenant = ? AND scim_id = ?`), tenant, scimID); err != nil {
			return fmt.Errorf("delete group: %w", err)
		}
		return nil
	})
	if err != nil {
		return wrap(err)
	}
	return nil
}
