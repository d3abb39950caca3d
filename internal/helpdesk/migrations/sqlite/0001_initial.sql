-- Initial helpdesk schema (SQLite). See docs/helpdesk-schema.md.
-- SQLite ignores VARCHAR lengths; the store enforces the same limits as on the
-- other databases. Timestamps are TEXT in fixed-width UTC RFC 3339 with
-- microseconds (2006-01-02T15:04:05.000000Z) so they sort as strings.
CREATE TABLE IF NOT EXISTS helpdesk_users (
    tenant             TEXT    NOT NULL,
    scim_id            TEXT    NOT NULL,
    user_name          TEXT    NOT NULL,
    user_name_lower    TEXT    NULL,
    external_id        TEXT    NULL,
    display_name       TEXT    NULL,
    given_name         TEXT    NULL,
    family_name        TEXT    NULL,
    primary_email      TEXT    NULL,
    phone              TEXT    NULL,
    title              TEXT    NULL,
    department         TEXT    NULL,
    employee_number    TEXT    NULL,
    manager_scim_id    TEXT    NULL,
    preferred_language TEXT    NULL,
    active             INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    custom_fields      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(custom_fields)),
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    deleted_at         TEXT    NULL,
    PRIMARY KEY (tenant, scim_id),
    CONSTRAINT helpdesk_users_user_name_lower_key UNIQUE (tenant, user_name_lower)
);

CREATE TABLE IF NOT EXISTS helpdesk_groups (
    tenant       TEXT NOT NULL,
    scim_id      TEXT NOT NULL,
    display_name TEXT NOT NULL,
    external_id  TEXT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT NULL,
    PRIMARY KEY (tenant, scim_id)
);

CREATE TABLE IF NOT EXISTS helpdesk_group_members (
    tenant        TEXT NOT NULL,
    group_scim_id TEXT NOT NULL,
    user_scim_id  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_scim_id, user_scim_id)
);

CREATE INDEX IF NOT EXISTS helpdesk_group_members_user_idx
    ON helpdesk_group_members (tenant, user_scim_id);

-- Owned by the helpdesk application: the operator creates it and only reads it.
CREATE TABLE IF NOT EXISTS helpdesk_custom_fields (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('string', 'boolean', 'dateTime', 'integer')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant, name)
);
