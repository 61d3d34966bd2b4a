-- V2: reference data the lifecycle needs: units, categories (with deadline policies) and the
-- working calendar. These are mutable tables maintained by admins, not events: a case records
-- every fact it used (unit ids, the computed deadline and its rule) in its own events, so a
-- later change here never rewrites an existing case.

CREATE TABLE units (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind       text        NOT NULL CHECK (kind IN ('town', 'village', 'farm', 'community', 'department')),
    parent_id  uuid        REFERENCES units (id),
    active     boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);
-- Two units under one parent cannot share a name (the ledger shows names).
CREATE UNIQUE INDEX units_parent_name_key
    ON units (coalesce(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

CREATE TABLE categories (
    id              uuid        PRIMARY KEY,
    code            text        NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_.-]{0,31}$'),
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind            text        CHECK (kind IN ('complaint', 'suggestion', 'report')),
    default_unit_id uuid        REFERENCES units (id),
    policy          jsonb       NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_code_key UNIQUE (code)
);

-- Only the exceptions to "Monday to Friday": public holidays and make-up working days (调休).
CREATE TABLE calendar_days (
    day  date PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 50)
);

REVOKE ALL ON units, categories, calendar_days FROM PUBLIC;
-- Reference data is never deleted (cases point at it): deactivate instead.
GRANT SELECT, INSERT, UPDATE ON units, categories TO huiyin_app;
-- A year of the calendar is replaced as a whole.
GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_days TO huiyin_app;
