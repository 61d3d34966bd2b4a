-- V4: signed checkpoints of the whole log.
--
-- A background task folds the integrator feed (in its stable (tx_id, position) order) into a
-- running log hash, log_hash_n = SHA-256("huiyin.log.v1" ‖ log_hash_{n-1} ‖ hash_n), and now and
-- then records a checkpoint: the feed position, the number of events, the log hash, signed with
-- Ed25519 as a compact JWS. The JWS can be exported and kept outside the database; `huiyin verify
-- --checkpoint FILE` then proves the log still holds exactly those events, which per-case chains
-- alone cannot (they do not see a case's last event removed, or a whole case removed).

CREATE TABLE checkpoints (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_tx_id    bigint      NOT NULL,
    feed_position bigint      NOT NULL,
    event_count   bigint      NOT NULL CHECK (event_count >= 0),
    log_hash      bytea       NOT NULL CHECK (length(log_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    key_id        text        NOT NULL,
    jws           text        NOT NULL
);

CREATE TRIGGER checkpoints_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

REVOKE ALL ON checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON checkpoints TO huiyin_app;
