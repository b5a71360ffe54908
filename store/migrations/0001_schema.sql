-- fhirgate shard schema, version 1. One database per shard; every shard has the same schema.

-- The current version of each resource. `body` is the encoded entity (NULL for a tombstone).
CREATE TABLE resources (
    rtype      text        NOT NULL,
    id         text        NOT NULL,
    bucket     integer     NOT NULL,
    version    bigint      NOT NULL,
    deleted    boolean     NOT NULL,
    updated_at timestamptz NOT NULL,
    patient    text,
    body       bytea,
    PRIMARY KEY (rtype, id)
);
CREATE INDEX resources_updated ON resources (rtype, updated_at);
CREATE INDEX resources_patient ON resources (patient, rtype) WHERE patient IS NOT NULL;

-- Every version ever written, tombstones included.
CREATE TABLE history (
    rtype      text        NOT NULL,
    id         text        NOT NULL,
    version    bigint      NOT NULL,
    bucket     integer     NOT NULL,
    deleted    boolean     NOT NULL,
    updated_at timestamptz NOT NULL,
    body       bytea,
    PRIMARY KEY (rtype, id, version)
);
CREATE INDEX history_type_time ON history (rtype, updated_at DESC, id DESC, version DESC);

-- Search index, one table per kind. Rows describe the current version only.
CREATE TABLE idx_token (
    rtype  text NOT NULL,
    id     text NOT NULL,
    param  text NOT NULL,
    system text,
    code   text NOT NULL
);
CREATE INDEX idx_token_lookup ON idx_token (rtype, param, code, system);
CREATE INDEX idx_token_owner ON idx_token (rtype, id);

CREATE TABLE idx_string (
    rtype      text NOT NULL,
    id         text NOT NULL,
    param      text NOT NULL,
    normalized text NOT NULL,
    exact      text NOT NULL
);
CREATE INDEX idx_string_lookup ON idx_string (rtype, param, normalized text_pattern_ops);
CREATE INDEX idx_string_owner ON idx_string (rtype, id);

CREATE TABLE idx_date (
    rtype text   NOT NULL,
    id    text   NOT NULL,
    param text   NOT NULL,
    low   bigint NOT NULL,
    high  bigint NOT NULL
);
CREATE INDEX idx_date_lookup ON idx_date (rtype, param, low, high);
CREATE INDEX idx_date_owner ON idx_date (rtype, id);

CREATE TABLE idx_reference (
    rtype       text NOT NULL,
    id          text NOT NULL,
    param       text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL
);
CREATE INDEX idx_reference_lookup ON idx_reference (rtype, param, target_id, target_type);
CREATE INDEX idx_reference_owner ON idx_reference (rtype, id);

-- Where a resource with a client-assigned id lives. A row sits on the shard that owns the
-- bucket hashed from (type, id), so finding it asks one shard.
CREATE TABLE locator (
    rtype  text    NOT NULL,
    id     text    NOT NULL,
    bucket integer NOT NULL,
    PRIMARY KEY (rtype, id)
);

-- The change feed: one row per write, in commit order per shard.
CREATE TABLE changes (
    seq     bigserial   PRIMARY KEY,
    rtype   text        NOT NULL,
    id      text        NOT NULL,
    version bigint      NOT NULL,
    op      text        NOT NULL,
    at      timestamptz NOT NULL
);

-- The audit log: several hash chains per shard (so concurrent writers do not queue on one
-- head), each record holding the hash of the one before it in its chain.
CREATE TABLE audit_heads (
    chain integer PRIMARY KEY,
    seq   bigint  NOT NULL,
    hash  bytea   NOT NULL
);
INSERT INTO audit_heads (chain, seq, hash)
SELECT g, 0, decode(repeat('00', 32), 'hex') FROM generate_series(0, 15) AS g;

CREATE TABLE audit (
    chain     integer     NOT NULL,
    seq       bigint      NOT NULL,
    at        timestamptz NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL,
    record    bytea       NOT NULL,
    PRIMARY KEY (chain, seq)
);

-- Append-only, whoever asks: triggers fire for superusers too.
CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP;
END $$;
-- Statement-level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();

-- The gateway's own role may read and append the audit log, never change it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fhirgate_app') THEN
        CREATE ROLE fhirgate_app NOLOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO fhirgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON resources, idx_token, idx_string, idx_date, idx_reference, locator TO fhirgate_app;
GRANT SELECT, INSERT ON history, changes, audit TO fhirgate_app;
GRANT SELECT, UPDATE ON audit_heads TO fhirgate_app;
GRANT USAGE ON SEQUENCE changes_seq_seq TO fhirgate_app;
