-- V12: erasure that reaches the storage. Crypto-shredding sets a subject's wrapped key to NULL,
-- but PostgreSQL keeps the old row version (with the key) in the table file until the page is
-- rewritten; a plain VACUUM frees the space without overwriting it. So the keys now live in 64
-- small hash partitions, and after an erasure the service's maintenance connection (the owner)
-- rewrites the one partition that held the key (`VACUUM FULL`: a new file holding only live
-- rows; the old file is unlinked). Rewriting 1/64 of the keys takes a short lock on that
-- partition only. What remains elsewhere (WAL, backups) is stated in ARCHITECTURE.md.

ALTER TABLE subject_keys RENAME TO subject_keys_v1;
ALTER TABLE subject_keys_v1 RENAME CONSTRAINT subject_keys_pkey TO subject_keys_v1_pkey;

CREATE TABLE subject_keys (
    subject_id  uuid        NOT NULL,
    kek_id      text        NOT NULL,
    wrapped_key bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    erased_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL)),
    CONSTRAINT subject_keys_pkey PRIMARY KEY (subject_id)
) PARTITION BY HASH (subject_id);

DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format('CREATE TABLE subject_keys_p%s PARTITION OF subject_keys FOR VALUES WITH (MODULUS 64, REMAINDER %s)', i, i);
    END LOOP;
END
$$;

INSERT INTO subject_keys (subject_id, kek_id, wrapped_key, created_at, erased_at)
SELECT subject_id, kek_id, wrapped_key, created_at, erased_at FROM subject_keys_v1;
DROP TABLE subject_keys_v1;

CREATE TRIGGER subject_keys_erasure_is_final
    BEFORE UPDATE ON subject_keys
    FOR EACH ROW EXECUTE FUNCTION subject_keys_erasure_is_final();
ALTER TABLE subject_keys ENABLE ALWAYS TRIGGER subject_keys_erasure_is_final;

CREATE INDEX subject_keys_erased_idx ON subject_keys (erased_at) WHERE erased_at IS NOT NULL;

REVOKE ALL ON subject_keys FROM PUBLIC;
GRANT SELECT, INSERT ON subject_keys TO huiyin_app;
GRANT UPDATE (wrapped_key, erased_at) ON subject_keys TO huiyin_app;

-- When each partition was last rewritten: a partition with an erasure after that time still
-- holds a shredded key's old row version.
CREATE TABLE subject_key_compactions (
    partition    text        PRIMARY KEY,
    compacted_at timestamptz NOT NULL
);
REVOKE ALL ON subject_key_compactions FROM PUBLIC;
GRANT SELECT ON subject_key_compactions TO huiyin_app;
