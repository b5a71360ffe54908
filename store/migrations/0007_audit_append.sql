-- Appends records to one audit chain in one statement, so an append costs the gateway one
-- round trip (and, outside a transaction, its commit rides on the same one): locks the
-- chain's head, links each record to the one before it, moves the head, and returns the
-- last record's number. The hash is store::audit::link_hash's:
--   sha256(prev ‖ chain ‖ seq ‖ at_micros ‖ record), integers big-endian (int4send/int8send),
-- and `audit verify` recomputes it in Rust, so the two must agree byte for byte (which
-- needs PostgreSQL 14 or later: `extract(epoch …)` is an exact numeric there, a float
-- before). The time is read once the head is locked, so a chain's times follow its order.
CREATE FUNCTION audit_append(p_chain integer, p_records bytea[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq    bigint;
    v_hash   bytea;
    -- Stored with microsecond precision: the hash covers exactly what is stored.
    v_at     timestamptz;
    v_micros bigint;
    v_seqs   bigint[] := '{}';
    v_prevs  bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_rec    bytea;
BEGIN
    SELECT seq, hash INTO STRICT v_seq, v_hash FROM audit_heads WHERE chain = p_chain FOR UPDATE;
    v_at := clock_timestamp();
    v_micros := (extract(epoch FROM v_at) * 1000000)::bigint;
    FOREACH v_rec IN ARRAY p_records LOOP
        v_seq := v_seq + 1;
        v_seqs := v_seqs || v_seq;
        v_prevs := v_prevs || v_hash;
        v_hash := sha256(v_hash || int4send(p_chain) || int8send(v_seq) || int8send(v_micros) || v_rec);
        v_hashes := v_hashes || v_hash;
    END LOOP;
    INSERT INTO audit (chain, seq, at, prev_hash, hash, record)
    SELECT p_chain, s, v_at, p, h, r
    FROM unnest(v_seqs, v_prevs, v_hashes, p_records) AS t(s, p, h, r);
    UPDATE audit_heads SET seq = v_seq, hash = v_hash WHERE chain = p_chain;
    RETURN v_seq;
END $$;
