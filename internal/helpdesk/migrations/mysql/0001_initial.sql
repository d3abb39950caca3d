-- Initial helpdesk schema (MariaDB; MySQL 8.0.16+ for CHECK). See docs/helpdesk-schema.md.
-- utf8mb4_bin: SCIM ids are case-sensitive, and user_name_lower must compare
-- byte-for-byte (a _ci collation would also fold accents). Indexed columns stay
-- at 191 characters so every key fits InnoDB's 3072-byte limit.
-- Indexes are declared inline because MySQL has no CREATE INDEX IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS helpdesk_users (
    tenant             VARCHAR(191) NOT NULL,
    scim_id            VARCHAR(191) NOT NULL,
    user_name          VARCHAR(191) NOT NULL,
    user_name_lower    VARCHAR(191) NULL,
    external_id        VARCHAR(191) NULL,
    display_name       VARCHAR(512) NULL,
    given_name         VARCHAR(512) NULL,
    family_name        VARCHAR(512) NULL,
    primary_email      VARCHAR(320) NULL,
    phone              VARCHAR(64)  NULL,
    title              VARCHAR(512) NULL,
    department         VARCHAR(512) NULL,
    employee_number    VARCHAR(191) NULL,
    manager_scim_id    VARCHAR(191) NULL,
    preferred_language VARCHAR(64)  NULL,
    active             BOOLEAN      NOT NULL DEFAULT TRUE,
    custom_fields      JSON         NOT NULL,
    created_at         DATETIME(6)  NOT NULL,
    updated_at         DATETIME(6)  NOT NULL,
    deleted_at         DATETIME(6)  NULL,
    PRIMARY KEY (tenant, scim_id),
    UNIQUE KEY helpdesk_users_user_name_lower_key (tenant, user_name_lower)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS helpdesk_groups (
    tenant       VARCHAR(191) NOT NULL,
    scim_id      VARCHAR(191) NOT NULL,
    display_name VARCHAR(512) NOT NULL,
    external_id  VARCHAR(191) NULL,
    created_at   DATETIME(6)  NOT NULL,
    updated_at   DATETIME(6)  NOT NULL,
    deleted_at   DATETIME(6)  NULL,
    PRIMARY KEY (tenant, scim_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS helpdesk_group_members (
    tenant        VARCHAR(191) NOT NULL,
    group_scim_id VARCHAR(191) NOT NULL,
    user_scim_id  VARCHAR(191) NOT NULL,
    PRIMARY KEY (tenant, group_scim_id, user_scim_id),
    KEY helpdesk_group_members_user_idx (tenant, user_scim_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Owned by the helpdesk application: the operator creates it and only reads it.
CREATE TABLE IF NOT EXISTS helpdesk_custom_fields (
    tenant     VARCHAR(191) NOT NULL,
    name       VARCHAR(191) NOT NULL,
    type       VARCHAR(16)  NOT NULL,
    created_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (tenant, name),
    CONSTRAINT helpdesk_custom_fields_type_check CHECK (type IN ('string', 'boolean', 'dateTime', 'integer'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
