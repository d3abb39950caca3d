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
	// Answer the common no-op without a write transaction.
	cur, err := s.getGroup(ctx, s.db, g.Tenant, g.SCIMID, "")
	switch {
	case err == nil && sameGroup(cur, g):
		return false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, wrap(err)
	}

	var changed bool
	err = s.withRetry(func() (err error) {
		changed, err = s.upsertGroupTx(ctx, g)
		return err
	})
	if err != nil {
		return false, wrap(err)
	}
	return changed, nil
}

func (s *sqlStore) upsertGroupTx(ctx context.Context, g Group) (changed bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := s.getGroup(ctx, tx, g.Tenant, g.SCIMID, s.d.forUpdate())
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if exists && sameGroup(cur, g) {
			return nil
		}
		now := s.d.timeArg(s.timestamp())
		if exists {
			_, err = tx.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_groups
				SET display_name = ?, external_id = ?, updated_at = ?, deleted_at = NULL
				WHERE tenant = ? AND scim_id = ?`),
				g.DisplayName, nullable(g.ExternalID), now, g.Tenant, g.SCIMID)
			if err != nil {
				return fmt.Errorf("update: %w", err)
			}
		} else {
			_, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO helpdesk_groups
				(tenant, scim_id, display_name, external_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`),
				g.Tenant, g.SCIMID, g.DisplayName, nullable(g.ExternalID), now, now)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
		}
		changed = true
		return nil
	})
	return changed, err
}

// sameGroup reports whether storing g over the live row cur would change nothing.
func sameGroup(cur, g Group) bool {
	return cur.DeletedAt == nil && cur.DisplayName == g.DisplayName && cur.ExternalID == g.ExternalID
}

func (s *sqlStore) GetGroup(ctx context.Context, tenant, scimID string) (Group, error) {
	g, err := s.getGroup(ctx, s.db, tenant, scimID, "")
	if err != nil {
		return Group{}, fmt.Errorf("helpdesk: get group %s/%s: %w", tenant, scimID, err)
	}
	return g, nil
}

func (s *sqlStore) getGroup(ctx context.Context, q querier, tenant, scimID, lock string) (Group, error) {
	var (
		g                         Group
		ext                       sql.NullString
		created, updated, deleted dbTime
	)
	err := q.QueryRowContext(ctx, s.d.rebind(`SELECT tenant, scim_id, display_name, external_id,
		created_at, updated_at, deleted_at FROM helpdesk_groups WHERE tenant = ? AND scim_id = ?`+lock),
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
