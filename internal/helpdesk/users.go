package helpdesk

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const userColumns = `tenant, scim_id, user_name, user_name_lower, external_id, display_name, given_name, family_name,
	primary_email, phone, title, department, employee_number, manager_scim_id, preferred_language,
	active, custom_fields, created_at, updated_at, deleted_at`

// FitUser returns u as UpsertUser stores it: the optional text columns cut
// to their length (in characters, at a character boundary), and the names
// of the columns it cut, in column order (nil when everything fits). Key
// columns are never cut: UpsertUser refuses them when too long.
func FitUser(u User) (User, []string) {
	var cut []string
	for _, f := range []struct {
		column string
		value  *string
		max    int
	}{
		{"display_name", &u.DisplayName, maxTextLen},
		{"given_name", &u.GivenName, maxTextLen},
		{"family_name", &u.FamilyName, maxTextLen},
		{"primary_email", &u.PrimaryEmail, maxEmailLen},
		{"phone", &u.Phone, maxShortLen},
		{"title", &u.Title, maxTextLen},
		{"department", &u.Department, maxTextLen},
		{"preferred_language", &u.PreferredLanguage, maxShortLen},
	} {
		if v, ok := truncate(*f.value, f.max); ok {
			*f.value = v
			cut = append(cut, f.column)
		}
	}
	return u, cut
}

func validateUser(u User) error {
	if err := validTenant(u.Tenant); err != nil {
		return err
	}
	return validate(
		field{column: "scim_id", value: u.SCIMID, max: maxKeyLen, required: true},
		field{column: "user_name", value: u.UserName, max: maxKeyLen, required: true},
		field{column: "user_name_lower", value: u.UserNameKey, max: maxKeyLen, required: true},
		field{column: "external_id", value: u.ExternalID, max: maxKeyLen},
		field{column: "display_name", value: u.DisplayName, max: maxTextLen},
		field{column: "given_name", value: u.GivenName, max: maxTextLen},
		field{column: "family_name", value: u.FamilyName, max: maxTextLen},
		field{column: "primary_email", value: u.PrimaryEmail, max: maxEmailLen},
		field{column: "phone", value: u.Phone, max: maxShortLen},
		field{column: "title", value: u.Title, max: maxTextLen},
		field{column: "department", value: u.Department, max: maxTextLen},
		field{column: "employee_number", value: u.EmployeeNumber, max: maxKeyLen},
		field{column: "manager_scim_id", value: u.ManagerSCIMID, max: maxKeyLen},
		field{column: "preferred_language", value: u.PreferredLanguage, max: maxShortLen},
	)
}

func (s *sqlStore) UpsertUser(ctx context.Context, u User) (bool, error) {
	wrap := func(err error) error { return fmt.Errorf("helpdesk: upsert user %s/%s: %w", u.Tenant, u.SCIMID, err) }
	u, _ = FitUser(u)
	if err := validateUser(u); err != nil {
		return false, wrap(err)
	}
	cfJSON, cf, err := encodeCustomFields(u.CustomFields)
	if err != nil {
		return false, wrap(err)
	}
	changed, err := readThenWrite(func() (bool, bool, error) { return s.upsertUserOnce(ctx, u, cfJSON, cf) })
	if err != nil {
		return false, wrap(err)
	}
	return changed, nil
}

// upsertUserOnce reads the row, then writes it in one statement when it
// differs: one round trip for the common no-op, two for a change. It
// opens no transaction: BEGIN, SELECT ... FOR UPDATE, a uniqueness SELECT
// and COMMIT were four more round trips per row, and on a loaded machine
// round trips, not the database, bound how many rows a write slot syncs
// per second (docs/benchmarks.md). The unique key on (tenant,
// user_name_lower) keeps two live users from sharing a name; the SELECT
// after a violation only names the holder. retry asks to run it again: the
// row appeared, vanished or lost its key between the read and the write.
func (s *sqlStore) upsertUserOnce(ctx context.Context, u User, cfJSON []byte, cf map[string]any) (changed, retry bool, err error) {
	cur, err := s.getUser(ctx, u.Tenant, u.SCIMID)
	exists := err == nil
	switch {
	case exists && cur.DeletedAt == nil && sameUser(cur, u, cf):
		return false, false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, false, err
	}
	wrote, err := s.writeUser(ctx, u, cfJSON, exists)
	switch {
	case err == nil:
		// Not written means the row was deleted since it was read.
		return wrote, !wrote, nil
	case s.d.isDeadlock(err):
		return false, true, err
	case !s.d.isUniqueViolation(err):
		return false, false, err
	}
	var holder string
	herr := s.db.QueryRowContext(ctx, s.d.rebind(
		`SELECT scim_id FROM helpdesk_users WHERE tenant = ? AND user_name_lower = ? AND scim_id <> ?`),
		u.Tenant, u.UserNameKey, u.SCIMID).Scan(&holder)
	switch {
	case herr == nil:
		return false, false, &ConflictError{Key: u.UserNameKey, Holder: holder}
	case !errors.Is(herr, sql.ErrNoRows):
		// Not ErrConflict: the database failed, and the retry that cures
		// that is the one the controller runs for an unavailable database.
		return false, false, fmt.Errorf("naming the holder of the userName key after %w: %w", err, herr)
	}
	// No other row holds the key: this user's own row was inserted since
	// it was read, or the holder let the key go. Read again.
	return false, true, fmt.Errorf("%w: %w", ErrConflict, err)
}

// writeUser updates the row (exists) or inserts it, in one statement.
// wrote is false when an update found no row.
func (s *sqlStore) writeUser(ctx context.Context, u User, cfJSON []byte, exists bool) (wrote bool, err error) {
	now := s.d.timeArg(s.timestamp())
	values := []any{
		u.UserName, u.UserNameKey, nullable(u.ExternalID), nullable(u.DisplayName), nullable(u.GivenName),
		nullable(u.FamilyName), nullable(u.PrimaryEmail), nullable(u.Phone), nullable(u.Title),
		nullable(u.Department), nullable(u.EmployeeNumber), nullable(u.ManagerSCIMID),
		nullable(u.PreferredLanguage), u.Active, string(cfJSON),
	}
	if !exists {
		_, err = s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO helpdesk_users (
			user_name, user_name_lower, external_id, display_name, given_name,
			family_name, primary_email, phone, title, department,
			employee_number, manager_scim_id, preferred_language, active,
			custom_fields, created_at, updated_at, tenant, scim_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			append(values, now, now, u.Tenant, u.SCIMID)...)
		if err != nil {
			return false, fmt.Errorf("insert: %w", err)
		}
		return true, nil
	}
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_users SET
		user_name = ?, user_name_lower = ?, external_id = ?, display_name = ?, given_name = ?,
		family_name = ?, primary_email = ?, phone = ?, title = ?, department = ?,
		employee_number = ?, manager_scim_id = ?, preferred_language = ?, active = ?,
		custom_fields = ?, updated_at = ?, deleted_at = NULL
		WHERE tenant = ? AND scim_id = ?`),
		append(values, now, u.Tenant, u.SCIMID)...)
	if err != nil {
		return false, fmt.Errorf("update: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update: rows affected: %w", err)
	}
	// MySQL counts changed rows only: 0 also when a concurrent writer
	// stored the same values meanwhile; the next read settles it.
	return n > 0, nil
}

// sameUser reports whether storing u over cur would change nothing.
// cf is u.CustomFields as it reads back from the database.
func sameUser(cur, u User, cf map[string]any) bool {
	return cur.UserName == u.UserName &&
		cur.UserNameKey == u.UserNameKey &&
		cur.ExternalID == u.ExternalID &&
		cur.DisplayName == u.DisplayName &&
		cur.GivenName == u.GivenName &&
		cur.FamilyName == u.FamilyName &&
		cur.PrimaryEmail == u.PrimaryEmail &&
		cur.Phone == u.Phone &&
		cur.Title == u.Title &&
		cur.Department == u.Department &&
		cur.EmployeeNumber == u.EmployeeNumber &&
		cur.ManagerSCIMID == u.ManagerSCIMID &&
		cur.PreferredLanguage == u.PreferredLanguage &&
		cur.Active == u.Active &&
		sameJSON(cur.CustomFields, cf)
}

func (s *sqlStore) GetUser(ctx context.Context, tenant, scimID string) (User, error) {
	u, err := s.getUser(ctx, tenant, scimID)
	if err != nil {
		return User{}, fmt.Errorf("helpdesk: get user %s/%s: %w", tenant, scimID, err)
	}
	return u, nil
}

// getUser reads one row.
func (s *sqlStore) getUser(ctx context.Context, tenant, scimID string) (User, error) {
	var (
		u                                                             User
		ext, disp, given, family, email, phone, title, dept, emp, mgr sql.NullString
		key, lang                                                     sql.NullString
		cf                                                            []byte
		created, updated, deleted                                     dbTime
	)
	err := s.db.QueryRowContext(ctx, s.d.rebind(
		`SELECT `+userColumns+` FROM helpdesk_users WHERE tenant = ? AND scim_id = ?`),
		tenant, scimID).Scan(
		&u.Tenant, &u.SCIMID, &u.UserName, &key, &ext, &disp, &given, &family,
		&email, &phone, &title, &dept, &emp, &mgr, &lang,
		&u.Active, &cf, &created, &updated, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("select: %w", err)
	}
	u.UserNameKey = key.String
	u.ExternalID, u.DisplayName, u.GivenName, u.FamilyName = ext.String, disp.String, given.String, family.String
	u.PrimaryEmail, u.Phone, u.Title, u.Department = email.String, phone.String, title.String, dept.String
	u.EmployeeNumber, u.ManagerSCIMID, u.PreferredLanguage = emp.String, mgr.String, lang.String
	if u.CustomFields, err = decodeCustomFields(cf); err != nil {
		return User{}, err
	}
	u.CreatedAt, u.UpdatedAt, u.DeletedAt = created.t, updated.t, deleted.ptr()
	return u, nil
}

func (s *sqlStore) DeleteUser(ctx context.Context, tenant, scimID string, policy DeletionPolicy) error {
	wrap := func(err error) error { return fmt.Errorf("helpdesk: delete user %s/%s: %w", tenant, scimID, err) }
	policy, err := checkPolicy(policy)
	if err != nil {
		return wrap(err)
	}
	if policy == DeletionPolicyDelete {
		_, err = s.db.ExecContext(ctx, s.d.rebind(
			`DELETE FROM helpdesk_users WHERE tenant = ? AND scim_id = ?`), tenant, scimID)
	} else {
		// Clearing user_name_lower frees the userName for a new live user.
		now := s.d.timeArg(s.timestamp())
		_, err = s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_users
			SET active = ?, user_name_lower = NULL, deleted_at = ?, updated_at = ?
			WHERE tenant = ? AND scim_id = ? AND deleted_at IS NULL`),
			false, now, now, tenant, scimID)
	}
	if err != nil {
		return wrap(err)
	}
	return nil
}

func (s *sqlStore) DeactivateUser(ctx context.Context, tenant, scimID string) (bool, error) {
	wrap := func(err error) error { return fmt.Errorf("helpdesk: deactivate user %s/%s: %w", tenant, scimID, err) }
	now := s.d.timeArg(s.timestamp())
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_users SET active = ?, updated_at = ?
		WHERE tenant = ? AND scim_id = ? AND active = ?`), false, now, tenant, scimID, true)
	if err != nil {
		return false, wrap(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(fmt.Errorf("rows affected: %w", err))
	}
	if n > 0 {
		return true, nil
	}
	// Nothing changed: the row is already inactive, or there is none.
	var rows int
	if err := s.db.QueryRowContext(ctx, s.d.rebind(
		`SELECT COUNT(*) FROM helpdesk_users WHERE tenant = ? AND scim_id = ?`), tenant, scimID).Scan(&rows); err != nil {
		return false, wrap(err)
	}
	return rows > 0, nil
}

func (s *sqlStore) ReleaseUserName(ctx context.Context, tenant, holderID, key string) (bool, error) {
	wrap := func(err error) error {
		return fmt.Errorf("helpdesk: release the userName key of user %s/%s: %w", tenant, holderID, err)
	}
	if key == "" {
		return false, wrap(fmt.Errorf("%w: user_name_lower must not be empty", ErrInvalid))
	}
	now := s.d.timeArg(s.timestamp())
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE helpdesk_users SET user_name_lower = NULL, updated_at = ?
		WHERE tenant = ? AND scim_id = ? AND user_name_lower = ?`), now, tenant, holderID, key)
	if err != nil {
		return false, wrap(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap(fmt.Errorf("rows affected: %w", err))
	}
	return n > 0, nil
}
