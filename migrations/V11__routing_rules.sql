-- V11: routing rules (归口). A category, optionally for one village, names the unit a case goes
-- to by default and the tier it sits at (town department or village). Registration proposes the
-- route; an assignment without a unit applies it, and the Assigned event records the tier. Like
-- units and categories these are reference data, not events: a case records the unit and tier
-- it was actually routed to in its own history.

CREATE TABLE routing_rules (
    id          uuid        PRIMARY KEY,
    category_id uuid        NOT NULL REFERENCES categories (id),
    village_id  uuid        REFERENCES units (id),
    unit_id     uuid        NOT NULL REFERENCES units (id),
    tier        text        NOT NULL CHECK (tier IN ('town', 'village')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- One rule per category and village (and one category-wide rule).
CREATE UNIQUE INDEX routing_rules_key
    ON routing_rules (category_id, coalesce(village_id, '00000000-0000-0000-0000-000000000000'::uuid));

REVOKE ALL ON routing_rules FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON routing_rules TO huiyin_app;
