-- Two-phase commit decisions (store::txn). Only shard 0's table is used: a row is the
-- decision on a transaction whose parts are prepared on several shards. The coordinator
-- inserts 'commit'; recovery inserts 'abort' for an in-doubt transaction; the first insert wins.
CREATE TABLE tx_decisions (
    txid     text        PRIMARY KEY,
    decision text        NOT NULL CHECK (decision IN ('commit', 'abort')),
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT SELECT, INSERT, DELETE ON tx_decisions TO fhirgate_app;
