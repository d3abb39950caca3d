-- Initial helpdesk schema (PostgreSQL). See docs/helpdesk-schema.md.
-- Optional text columns are NULL when the SCIM attribute is absent.
CREATE TABLE IF NOT EXISTS helpdesk_users (
    tenant             VARCHAR(191)   NOT NULL,
    scim_id            VARCHAR(191)   NOT NULL,
    user_name          VARCHAR(191)   NOT NULL,
    -- lower(user_name) while the row is live, NULL once retained as deleted,
    -- so a deleted user never blocks a new user with the same userName.
    user_name_lower    VARCHAR(191)   NULL,
    external_id        VARCHAR(191)   NULL,
    display_name       VARCHAR(512)   NULL,
    given_name         VARCHAR(512)   NULL,
    family_name        VARCHAR(512)   NULL,
    primary_email      VARCHAR(320)   NULL,
    phone              VARCHAR(64)    NULL,
    title              VARCHAR(512)   NULL,
    department         VARCHAR(512)   NULL,
    employee_number    VARCHAR(191)   NULL,
    manager_scim_id    VARCHAR(191)   NULL,
    preferred_language VARCHAR(64)    NULL,
    active             BOOLEAN        NOT NULL DEFAULT TRUE,
    custom_fields      JSONB          NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ(6) NOT NULL,
    updated_at         TIMESTAMPTZ(6) NOT NULL,
    deleted_at         TIMESTAMPTZ(6) NULL,
    CONSTRAINT helpdesk_users_pkey PRIMARY KEY (tenant, scim_id),
    CONSTRAINT helpdesk_users_user_name_lower_key UNIQUE (tenant, user_name_lower)
);

CREATE TABLE IF NOT EXISTS helpdesk_groups (
    tenant       VARCHAR(191)   NOT NULL,
    scim_id      VARCHAR(191)   NOT NULL,
    display_name VARCHAR(512)   NOT NULL,
    external_id  VARCHAR(191)   NULL,
    created_at   TIMESTAMPTZ(6) NOT NULL,
    updated_at   TIMESTAMPTZ(6) NOT NULL,
    deleted_at   TIMESTAMPTZ(6) NULL,
    CONSTRAINT helpdesk_groups_pkey PRIMARY KEY (tenant, scim_id)
);

CREATE TABLE IF NOT EXISTS helpdesk_group_members (
    tenant        VARCHAR(191) NOT NULL,
    group_scim_id VARCHAR(191) NOT NULL,
    user_scim_id  VARCHAR(191) NOT NULL,
    CONSTRAINT helpdesk_group_members_pkey PRIMARY KEY (tenant, group_scim_id, user_scim_id)
);

CREATE INDEX IF NOT EXISTS helpdesk_group_members_user_idx
    ON helpdesk_group_members (tenant, user_scim_id);

-- Owned by the helpdesk application: the operator creates it and only reads it.
CREATE TABLE IF NOT EXISTS helpdesk_custom_fields (
    tenant     VARCHAR(191)   NOT NULL,
    name       VARCHAR(191)   NOT NULL,
    type       VARCHAR(16)    NOT NULL,
    created_at TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT helpdesk_custom_fields_pkey PRIMARY KEY (tenant, name),
    CONSTRAINT helpdesk_custom_fields_type_check CHECK (type IN ('string', 'boolean', 'dateTime', 'integer'))
);
