-- Break-glass windows (only shard 0's table is used): a clinician who states a reason may
-- read outside their relationships until `until`. Rows are never updated or deleted by the
-- gateway; every request made under a window is flagged in the audit log with its reason.
CREATE TABLE break_glass (
    subject text        NOT NULL,
    reason  text        NOT NULL,
    started timestamptz NOT NULL DEFAULT clock_timestamp(),
    until   timestamptz NOT NULL
);
CREATE INDEX break_glass_subject ON break_glass (subject, until DESC);
GRANT SELECT, INSERT ON break_glass TO fhirgate_app;
