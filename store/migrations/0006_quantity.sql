-- Search index of quantities and numbers (store::sql). A row is the range a value's written
-- precision implies (`5.4` is [5.35, 5.45]), exact: numeric, bound from decimal text, never
-- a float. `code` is the unit's code, else its display unit; numbers have no unit.
CREATE TABLE idx_quantity (
    rtype  text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    system text,
    code   text,
    low    numeric NOT NULL,
    high   numeric NOT NULL,
    -- Finite (NaN sorts above Infinity), and a range.
    CHECK (low > '-Infinity' AND high < 'Infinity' AND low <= high)
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (rtype, param, low, high);
CREATE INDEX idx_quantity_owner ON idx_quantity (rtype, id);

GRANT SELECT, INSERT, UPDATE, DELETE ON idx_quantity TO fhirgate_app;
