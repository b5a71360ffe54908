-- The persistent, versioned shard map and online bucket moves (store::layout, store::rebalance).
-- Only shard 0's shard_map, shard_directory and map_readers are used; moved_buckets is used
-- on every shard.

-- Every version of the map ever in force (the newest wins). `assignment[b + 1]` is the shard
-- of bucket b; `moving` lists the bucket moves in progress as JSON
-- ([{"buckets": [..], "from": s, "to": t}]): while a move is listed, both shards may hold rows
-- of its buckets, and searches of the shard that does not own them skip those rows.
CREATE TABLE shard_map (
    version    bigint      PRIMARY KEY,
    assignment smallint[]  NOT NULL,
    moving     jsonb       NOT NULL DEFAULT '[]',
    made_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- How to reach each shard: its nodes' URLs without credentials (the gateway uses its own).
CREATE TABLE shard_directory (
    shard    integer     PRIMARY KEY,
    nodes    text[]      NOT NULL,
    added_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Which map version each running gateway has loaded (a mover waits for all of them).
CREATE TABLE map_readers (
    reader  text        PRIMARY KEY,
    version bigint      NOT NULL,
    seen_at timestamptz NOT NULL
);

-- Buckets this shard no longer owns: a write into one is refused (the writer reloads the map
-- and goes to the new owner).
CREATE TABLE moved_buckets (
    bucket      integer PRIMARY KEY,
    map_version bigint  NOT NULL
);

-- The write fence. Every write transaction enters the buckets it writes: a shared
-- transaction-level advisory lock per bucket (namespace 1718118770), then a look at
-- moved_buckets with a fresh snapshot (a volatile PL/pgSQL function takes one per statement,
-- after the lock wait). A mover holds the exclusive locks while it finishes a bucket, and
-- marks it moved before releasing them. Returns the buckets that have moved away.
CREATE FUNCTION fhirgate_enter_buckets(buckets integer[]) RETURNS integer[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    b integer;
    moved integer[];
BEGIN
    FOREACH b IN ARRAY (SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') FROM unnest(buckets) AS x) LOOP
        PERFORM pg_advisory_xact_lock_shared(1718118770, b);
    END LOOP;
    SELECT coalesce(array_agg(m.bucket), '{}') INTO moved
    FROM moved_buckets m WHERE m.bucket = ANY(buckets);
    RETURN moved;
END $$;

-- A locator row, written under the same fence as the bucket (`home`) it is filed in. Returns
-- the bucket recorded for the id (the existing one if it was already placed), or NULL when
-- `home` has moved away from this shard.
CREATE FUNCTION fhirgate_place(p_rtype text, p_id text, p_bucket integer, home integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found integer;
BEGIN
    IF cardinality(fhirgate_enter_buckets(ARRAY[home])) > 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO locator (rtype, id, bucket) VALUES (p_rtype, p_id, p_bucket)
        ON CONFLICT DO NOTHING;
    SELECT l.bucket INTO found FROM locator l WHERE l.rtype = p_rtype AND l.id = p_id;
    RETURN found;
END $$;

GRANT SELECT, INSERT ON shard_map, shard_directory TO fhirgate_app;
GRANT SELECT, INSERT, UPDATE ON map_readers TO fhirgate_app;
GRANT SELECT ON moved_buckets TO fhirgate_app;
GRANT EXECUTE ON FUNCTION fhirgate_enter_buckets(integer[]) TO fhirgate_app;
GRANT EXECUTE ON FUNCTION fhirgate_place(text, text, integer, integer) TO fhirgate_app;
