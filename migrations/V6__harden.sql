-- V6: hardening found in review.
--
-- * Erasure is final: once a subject's key is shredded (wrapped_key NULL) no role, the service's
--   included, can write a saved copy back.
-- * The append-only triggers also fire for sessions with session_replication_role = replica
--   (which skips ordinary triggers); only an owner who drops or disables them gets around them,
--   and the hash chain and signed checkpoints catch what such a person changes.

CREATE FUNCTION subject_keys_erasure_is_final() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.wrapped_key IS NULL THEN
        RAISE EXCEPTION 'subject % was erased; its key cannot come back', OLD.subject_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER subject_keys_erasure_is_final
    BEFORE UPDATE ON subject_keys
    FOR EACH ROW EXECUTE FUNCTION subject_keys_erasure_is_final();

ALTER TABLE subject_keys ENABLE ALWAYS TRIGGER subject_keys_erasure_is_final;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_append_only;
ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_append_only;
