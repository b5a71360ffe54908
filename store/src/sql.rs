//! The SQL of writes, index maintenance and search. Every value is bound, never pasted.

use chrono::{DateTime, Utc};
use model::index::IndexEntry;
use model::query::{
    Access, IndexKind, Predicate, Prefix, Query, Restriction, SortBy, SortKey, SortValue,
    StringMatch, SystemMatch,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use crate::apply::VersionRow;
use crate::{StoreError, Stored, codec};

/// Writes one version: its current row, history row, change-feed row and index entries
/// (replacing the old ones), and, when `audit` holds records, appends them to audit chain
/// `chain` — all in one statement of plain bound values, one round trip. The one-resource
/// path: a plan that always walks the primary key, whatever the statistics say (the array
/// form below lost ~2× on single creates). Returns the version's timestamp.
///
/// Lock order: the final `SELECT` reads `cur`, so the resource's row is written (and
/// locked, or waited for) before `audit_append` takes the chain's head — the order of every
/// other write path (row locks, then the head), and no chain head is held while waiting on
/// a row. (Unreferenced data-modifying CTEs run after the main query.)
pub(crate) async fn put_one(
    conn: &mut PgConnection,
    r: &VersionRow<'_>,
    chain: i32,
    audit: &[Vec<u8>],
) -> Result<DateTime<Utc>, StoreError> {
    let IndexColumns {
        tok,
        st,
        dt,
        rf,
        qt,
    } = IndexColumns::new(r.index)?;
    let row = sqlx::query(
        "WITH now AS (SELECT date_trunc('microseconds', clock_timestamp()) AS t), \
         cur AS (INSERT INTO resources (rtype, id, bucket, version, deleted, updated_at, patient, body) \
                 SELECT $1, $2, $3, $4, $5, now.t, $6, $7 FROM now \
                 ON CONFLICT (rtype, id) DO UPDATE SET version = EXCLUDED.version, \
                   deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at, \
                   patient = EXCLUDED.patient, body = EXCLUDED.body RETURNING 1), \
         hist AS (INSERT INTO history (rtype, id, version, bucket, deleted, updated_at, body) \
                 SELECT $1, $2, $4, $3, $5, now.t, $7 FROM now), \
         feed AS (INSERT INTO changes (rtype, id, version, op, at) SELECT $1, $2, $4, $8, now.t FROM now), \
         d1 AS (DELETE FROM idx_token WHERE rtype = $1 AND id = $2), \
         d2 AS (DELETE FROM idx_string WHERE rtype = $1 AND id = $2), \
         d3 AS (DELETE FROM idx_date WHERE rtype = $1 AND id = $2), \
         d4 AS (DELETE FROM idx_reference WHERE rtype = $1 AND id = $2), \
         d5 AS (DELETE FROM idx_quantity WHERE rtype = $1 AND id = $2), \
         i1 AS (INSERT INTO idx_token (rtype, id, param, system, code) \
                SELECT $1, $2, * FROM unnest($9::text[], $10::text[], $11::text[])), \
         i2 AS (INSERT INTO idx_string (rtype, id, param, normalized, exact) \
                SELECT $1, $2, * FROM unnest($12::text[], $13::text[], $14::text[])), \
         i3 AS (INSERT INTO idx_date (rtype, id, param, low, high) \
                SELECT $1, $2, * FROM unnest($15::text[], $16::bigint[], $17::bigint[])), \
         i4 AS (INSERT INTO idx_reference (rtype, id, param, target_type, target_id) \
                SELECT $1, $2, * FROM unnest($18::text[], $19::text[], $20::text[])), \
         i5 AS (INSERT INTO idx_quantity (rtype, id, param, system, code, low, high) \
                SELECT $1, $2, * FROM unnest($21::text[], $22::text[], $23::text[], \
                                            $24::text[]::numeric[], $25::text[]::numeric[])) \
         SELECT t, CASE WHEN cardinality($27::bytea[]) > 0 THEN audit_append($26, $27) END FROM now, cur",
    )
    .bind(r.rtype)
    .bind(r.id)
    .bind(r.bucket)
    .bind(r.version)
    .bind(r.body.is_none())
    .bind(r.patient)
    .bind(r.body.as_deref())
    .bind(r.op)
    .bind(&tok.0)
    .bind(&tok.1)
    .bind(&tok.2)
    .bind(&st.0)
    .bind(&st.1)
    .bind(&st.2)
    .bind(&dt.0)
    .bind(&dt.1)
    .bind(&dt.2)
    .bind(&rf.0)
    .bind(&rf.1)
    .bind(&rf.2)
    .bind(&qt.0)
    .bind(&qt.1)
    .bind(&qt.2)
    .bind(&qt.3)
    .bind(&qt.4)
    .bind(chain)
    .bind(audit)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("t")?)
}

/// Writes versions: each one's current row, history row and change-feed row, all in one
/// statement. Returns the commit-side timestamp they were given.
pub(crate) async fn put_versions(
    conn: &mut PgConnection,
    rows: &[VersionRow<'_>],
) -> Result<DateTime<Utc>, StoreError> {
    let rtypes: Vec<&str> = rows.iter().map(|r| r.rtype).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
    let buckets: Vec<i32> = rows.iter().map(|r| r.bucket).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
    let deleted: Vec<bool> = rows.iter().map(|r| r.body.is_none()).collect();
    let patients: Vec<Option<&str>> = rows.iter().map(|r| r.patient).collect();
    let bodies: Vec<Option<&[u8]>> = rows.iter().map(|r| r.body.as_deref()).collect();
    let ops: Vec<&str> = rows.iter().map(|r| r.op).collect();
    let row = sqlx::query(
        "WITH now AS (SELECT date_trunc('microseconds', clock_timestamp()) AS t), \
         v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bool[], \
                                    $6::text[], $7::bytea[], $8::text[]) \
               AS v(rtype, id, bucket, version, deleted, patient, body, op)), \
         cur AS (INSERT INTO resources (rtype, id, bucket, version, deleted, updated_at, patient, body) \
                 SELECT v.rtype, v.id, v.bucket, v.version, v.deleted, now.t, v.patient, v.body FROM v, now \
                 ON CONFLICT (rtype, id) DO UPDATE SET version = EXCLUDED.version, \
                   deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at, \
                   patient = EXCLUDED.patient, body = EXCLUDED.body), \
         hist AS (INSERT INTO history (rtype, id, version, bucket, deleted, updated_at, body) \
                 SELECT v.rtype, v.id, v.version, v.bucket, v.deleted, now.t, v.body FROM v, now), \
         feed AS (INSERT INTO changes (rtype, id, version, op, at) \
                 SELECT v.rtype, v.id, v.version, v.op, now.t FROM v, now) \
         SELECT t FROM now",
    )
    .bind(&rtypes)
    .bind(&ids)
    .bind(&buckets)
    .bind(&versions)
    .bind(&deleted)
    .bind(&patients)
    .bind(&bodies)
    .bind(&ops)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("t")?)
}

/// Index entries split into one column array per table column, to bind to `unnest`.
#[derive(Default)]
pub struct IndexColumns<'a> {
    /// idx_token: param, system, code.
    pub tok: (Vec<&'a str>, Vec<Option<&'a str>>, Vec<&'a str>),
    /// idx_string: param, normalized, exact.
    pub st: (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>),
    /// idx_date: param, low, high.
    pub dt: (Vec<&'a str>, Vec<i64>, Vec<i64>),
    /// idx_reference: param, target_type, target_id.
    pub rf: (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>),
    /// idx_quantity: param, system, code, low, high (decimal text, checked).
    pub qt: QuantityColumns<'a>,
}

/// The columns of idx_quantity rows: param, system, code, low, high.
pub type QuantityColumns<'a> = (
    Vec<&'a str>,
    Vec<Option<&'a str>>,
    Vec<Option<&'a str>>,
    Vec<&'a str>,
    Vec<&'a str>,
);

impl<'a> IndexColumns<'a> {
    fn append(&mut self, other: IndexColumns<'a>) {
        let IndexColumns {
            tok,
            st,
            dt,
            rf,
            qt,
        } = other;
        self.tok.0.extend(tok.0);
        self.tok.1.extend(tok.1);
        self.tok.2.extend(tok.2);
        self.st.0.extend(st.0);
        self.st.1.extend(st.1);
        self.st.2.extend(st.2);
        self.dt.0.extend(dt.0);
        self.dt.1.extend(dt.1);
        self.dt.2.extend(dt.2);
        self.rf.0.extend(rf.0);
        self.rf.1.extend(rf.1);
        self.rf.2.extend(rf.2);
        self.qt.0.extend(qt.0);
        self.qt.1.extend(qt.1);
        self.qt.2.extend(qt.2);
        self.qt.3.extend(qt.3);
        self.qt.4.extend(qt.4);
    }

    /// Splits entries by table; a quantity whose bounds are not decimal numbers, or whose
    /// low bound exceeds its high one, is refused ([`StoreError::Invalid`]).
    pub fn new(entries: &'a [IndexEntry]) -> Result<IndexColumns<'a>, StoreError> {
        let mut c = IndexColumns::default();
        for e in entries {
            match e {
                IndexEntry::Token {
                    param,
                    system,
                    code,
                } => {
                    c.tok.0.push(param);
                    c.tok.1.push(system.as_deref());
                    c.tok.2.push(code);
                }
                IndexEntry::String {
                    param,
                    normalized,
                    exact,
                } => {
                    c.st.0.push(param);
                    c.st.1.push(normalized);
                    c.st.2.push(exact);
                }
                IndexEntry::Date { param, low, high } => {
                    c.dt.0.push(param);
                    c.dt.1.push(*low);
                    c.dt.2.push(*high);
                }
                IndexEntry::Reference {
                    param,
                    target_type,
                    target_id,
                } => {
                    c.rf.0.push(param);
                    c.rf.1.push(target_type);
                    c.rf.2.push(target_id);
                }
                IndexEntry::Quantity {
                    param,
                    system,
                    code,
                    low,
                    high,
                } => {
                    check_decimal(low)?;
                    check_decimal(high)?;
                    c.qt.0.push(param);
                    c.qt.1.push(system.as_deref());
                    c.qt.2.push(code.as_deref());
                    c.qt.3.push(low);
                    c.qt.4.push(high);
                }
            }
        }
        Ok(c)
    }
}

/// Replaces the index entries of every resource in `rows` (a tombstone's are none), in one
/// statement.
pub(crate) async fn replace_indexes(
    conn: &mut PgConnection,
    rows: &[VersionRow<'_>],
) -> Result<(), StoreError> {
    let owners: (Vec<&str>, Vec<&str>) = rows.iter().map(|r| (r.rtype, r.id)).unzip();
    // Each table's column arrays, with the owner of every entry.
    let (mut tok_owner, mut st_owner, mut dt_owner, mut rf_owner, mut qt_owner) = (
        Owners::default(),
        Owners::default(),
        Owners::default(),
        Owners::default(),
        Owners::default(),
    );
    let mut all = IndexColumns::default();
    for r in rows {
        let c = IndexColumns::new(r.index)?;
        tok_owner.extend(r, c.tok.0.len());
        st_owner.extend(r, c.st.0.len());
        dt_owner.extend(r, c.dt.0.len());
        rf_owner.extend(r, c.rf.0.len());
        qt_owner.extend(r, c.qt.0.len());
        all.append(c);
    }
    let IndexColumns {
        tok,
        st,
        dt,
        rf,
        qt,
    } = all;
    // All sub-statements see one snapshot, so the deletes never touch the new rows.
    sqlx::query(
        "WITH o AS (SELECT * FROM unnest($1::text[], $2::text[]) AS o(rtype, id)), \
         d1 AS (DELETE FROM idx_token x USING o WHERE x.rtype = o.rtype AND x.id = o.id), \
         d2 AS (DELETE FROM idx_string x USING o WHERE x.rtype = o.rtype AND x.id = o.id), \
         d3 AS (DELETE FROM idx_date x USING o WHERE x.rtype = o.rtype AND x.id = o.id), \
         d4 AS (DELETE FROM idx_reference x USING o WHERE x.rtype = o.rtype AND x.id = o.id), \
         d5 AS (DELETE FROM idx_quantity x USING o WHERE x.rtype = o.rtype AND x.id = o.id), \
         i1 AS (INSERT INTO idx_token (rtype, id, param, system, code) \
                SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])), \
         i2 AS (INSERT INTO idx_string (rtype, id, param, normalized, exact) \
                SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[])), \
         i3 AS (INSERT INTO idx_date (rtype, id, param, low, high) \
                SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::bigint[], $17::bigint[])), \
         i4 AS (INSERT INTO idx_reference (rtype, id, param, target_type, target_id) \
                SELECT * FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[])), \
         i5 AS (INSERT INTO idx_quantity (rtype, id, param, system, code, low, high) \
                SELECT * FROM unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::text[], \
                                     $28::text[]::numeric[], $29::text[]::numeric[])) \
         SELECT 1",
    )
    .bind(&owners.0)
    .bind(&owners.1)
    .bind(&tok_owner.rtype)
    .bind(&tok_owner.id)
    .bind(&tok.0)
    .bind(&tok.1)
    .bind(&tok.2)
    .bind(&st_owner.rtype)
    .bind(&st_owner.id)
    .bind(&st.0)
    .bind(&st.1)
    .bind(&st.2)
    .bind(&dt_owner.rtype)
    .bind(&dt_owner.id)
    .bind(&dt.0)
    .bind(&dt.1)
    .bind(&dt.2)
    .bind(&rf_owner.rtype)
    .bind(&rf_owner.id)
    .bind(&rf.0)
    .bind(&rf.1)
    .bind(&rf.2)
    .bind(&qt_owner.rtype)
    .bind(&qt_owner.id)
    .bind(&qt.0)
    .bind(&qt.1)
    .bind(&qt.2)
    .bind(&qt.3)
    .bind(&qt.4)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refuses a bound that is not a finite decimal number as FHIR writes one (`-12.50`,
/// `0.001`, `1.5e3`), so that a bad value is the caller's error, not a database error, and
/// no bound can ask PostgreSQL's numeric for more digits than it holds.
pub(crate) fn check_decimal(text: &str) -> Result<(), StoreError> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && mantissa.len() <= 1000
        && exponent.is_none_or(|e| all_digits(e) && e.len() <= 3);
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{text:?} is not a decimal number"
        )))
    }
}

/// The owner of each index row of one table.
#[derive(Default)]
struct Owners<'a> {
    rtype: Vec<&'a str>,
    id: Vec<&'a str>,
}

impl<'a> Owners<'a> {
    fn extend(&mut self, row: &VersionRow<'a>, n: usize) {
        self.rtype.extend(std::iter::repeat_n(row.rtype, n));
        self.id.extend(std::iter::repeat_n(row.id, n));
    }
}

/// A stored version from a row with `version`, `updated_at` and `body`.
pub(crate) fn stored_from_row(row: &PgRow) -> Result<Stored, StoreError> {
    let body: Option<Vec<u8>> = row.try_get("body")?;
    Ok(Stored {
        version: row.try_get::<i64, _>("version")? as u64,
        updated_at: row.try_get("updated_at")?,
        entity: body.as_deref().map(codec::decode).transpose()?,
    })
}

/// A stored version with its type and id, from a row that also has `rtype` and `id`.
pub(crate) fn keyed_from_row(row: &PgRow) -> Result<(String, String, Stored), StoreError> {
    Ok((
        row.try_get("rtype")?,
        row.try_get("id")?,
        stored_from_row(row)?,
    ))
}

/// Pushes `resource range [lo, hi]` compared with the searched range `[low, high]`; each
/// bound value is followed by `cast` (`::numeric` for decimal text, else empty).
fn push_range<T>(
    qb: &mut QueryBuilder<Postgres>,
    (lo, hi): (&str, &str),
    prefix: Prefix,
    (low, high): (T, T),
    cast: &str,
) where
    T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send + 'static,
{
    match prefix {
        Prefix::Eq | Prefix::Ne => {
            qb.push(if prefix == Prefix::Ne { "NOT (" } else { "(" });
            qb.push(format!("{lo} >= ")).push_bind(low).push(cast);
            qb.push(format!(" AND {hi} <= "))
                .push_bind(high)
                .push(cast)
                .push(")");
        }
        Prefix::Lt => {
            qb.push(format!("{lo} < ")).push_bind(low).push(cast);
        }
        Prefix::Gt => {
            qb.push(format!("{hi} > ")).push_bind(high).push(cast);
        }
        Prefix::Le => {
            qb.push(format!("{lo} <= ")).push_bind(high).push(cast);
        }
        Prefix::Ge => {
            qb.push(format!("{hi} >= ")).push_bind(low).push(cast);
        }
        Prefix::Sa => {
            qb.push(format!("{lo} > ")).push_bind(high).push(cast);
        }
        Prefix::Eb => {
            qb.push(format!("{hi} < ")).push_bind(low).push(cast);
        }
        Prefix::Ap => {
            qb.push(format!("({lo} <= ")).push_bind(high).push(cast);
            qb.push(format!(" AND {hi} >= "))
                .push_bind(low)
                .push(cast)
                .push(")");
        }
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// How an index predicate is joined to the resource: correlated (`EXISTS`, for a group that
/// mixes in resource columns) or as a set of candidate ids (for the candidate set).
enum IndexForm<'a> {
    Exists,
    Candidates { rtype: &'a str },
}

/// The index table a predicate reads, or `None` for a predicate on the resource row.
fn index_table(p: &Predicate) -> Option<&'static str> {
    match p {
        // Negative conditions cannot drive a search (nor be a candidate list).
        Predicate::Id(_)
        | Predicate::LastUpdated { .. }
        | Predicate::Missing { .. }
        | Predicate::NotToken { .. } => None,
        Predicate::Token { .. } | Predicate::TokenIn { .. } => Some("idx_token"),
        Predicate::String { .. } => Some("idx_string"),
        Predicate::Date { .. } => Some("idx_date"),
        Predicate::Reference { .. } => Some("idx_reference"),
        Predicate::Quantity { .. } => Some("idx_quantity"),
    }
}

fn push_predicate(qb: &mut QueryBuilder<Postgres>, p: &Predicate, form: IndexForm<'_>) {
    let (param, table) = match (p, index_table(p)) {
        (Predicate::Id(id), _) => {
            qb.push("r.id = ").push_bind(id.clone());
            return;
        }
        (
            Predicate::Missing {
                param,
                kind,
                missing,
            },
            _,
        ) => {
            let table = match kind {
                IndexKind::Token => "idx_token",
                IndexKind::String => "idx_string",
                IndexKind::Date => "idx_date",
                IndexKind::Reference => "idx_reference",
                IndexKind::Quantity => "idx_quantity",
            };
            qb.push(if *missing { "NOT EXISTS" } else { "EXISTS" })
                .push(format!(
                    " (SELECT 1 FROM {table} x WHERE x.rtype = r.rtype AND x.id = r.id AND x.param = "
                ))
                .push_bind(param.clone())
                .push(PROBE_END);
            return;
        }
        (
            Predicate::NotToken {
                param,
                system,
                code,
            },
            _,
        ) => {
            qb.push(
                "NOT EXISTS (SELECT 1 FROM idx_token x WHERE x.rtype = r.rtype AND x.id = r.id AND x.param = ",
            )
            .push_bind(param.clone());
            push_token_match(qb, system, code.as_deref());
            qb.push(PROBE_END);
            return;
        }
        (Predicate::LastUpdated { prefix, low, high }, _) => {
            let us = "(extract(epoch FROM r.updated_at) * 1000000)::bigint";
            push_range(qb, (us, us), *prefix, (*low, *high), "");
            return;
        }
        (
            Predicate::Token { param, .. }
            | Predicate::TokenIn { param, .. }
            | Predicate::String { param, .. }
            | Predicate::Date { param, .. }
            | Predicate::Reference { param, .. }
            | Predicate::Quantity { param, .. },
            Some(table),
        ) => (param, table),
        _ => return,
    };
    match form {
        IndexForm::Exists => {
            qb.push(format!(
                "EXISTS (SELECT 1 FROM {table} x WHERE x.rtype = r.rtype AND x.id = r.id AND x.param = "
            ));
        }
        IndexForm::Candidates { rtype } => {
            qb.push(format!("SELECT x.id FROM {table} x WHERE x.rtype = "))
                .push_bind(rtype.to_owned())
                .push(" AND x.param = ");
        }
    }
    qb.push_bind(param.clone());
    match p {
        Predicate::Token { system, code, .. } => push_token_match(qb, system, code.as_deref()),
        Predicate::TokenIn { system, codes, .. } => {
            qb.push(" AND x.code = ANY(")
                .push_bind(codes.clone())
                .push(") AND x.system = ")
                .push_bind(system.clone());
        }
        Predicate::String {
            how,
            value,
            normalized,
            ..
        } => match how {
            StringMatch::Exact => {
                qb.push(" AND x.normalized = ")
                    .push_bind(normalized.clone())
                    .push(" AND x.exact = ")
                    .push_bind(value.clone());
            }
            StringMatch::StartsWith => {
                // A range the index can use even in a generic prepared plan (where a bound
                // LIKE pattern cannot); U+10FFFF is the greatest character, so every value
                // that starts with the prefix sorts below the upper bound.
                qb.push(" AND x.normalized ~>=~ ")
                    .push_bind(value.clone())
                    .push(" AND x.normalized ~<~ ")
                    .push_bind(format!("{value}\u{10FFFF}"));
            }
            StringMatch::Contains => {
                qb.push(" AND x.normalized LIKE ")
                    .push_bind(format!("%{}%", escape_like(value)));
            }
        },
        Predicate::Date {
            prefix, low, high, ..
        } => {
            qb.push(" AND ");
            push_range(qb, ("x.low", "x.high"), *prefix, (*low, *high), "");
        }
        Predicate::Quantity {
            prefix,
            low,
            high,
            system,
            code,
            ..
        } => {
            qb.push(" AND ");
            push_range(
                qb,
                ("x.low", "x.high"),
                *prefix,
                (low.clone(), high.clone()),
                "::numeric",
            );
            if *prefix == Prefix::Eq {
                // Implied (an entry's low never exceeds its high: the table checks it), and it
                // bounds the lookup index's range on `low` from both sides: without it a
                // driving `eq` reads every entry above the searched start.
                qb.push(" AND x.low <= ")
                    .push_bind(high.clone())
                    .push("::numeric");
            }
            // The unit: the same columns, matched as a token's system and code.
            push_token_match(qb, system, code.as_deref());
        }
        Predicate::Reference {
            target_type,
            target_id,
            ..
        } => {
            qb.push(" AND x.target_id = ").push_bind(target_id.clone());
            if let Some(t) = target_type {
                qb.push(" AND x.target_type = ").push_bind(t.clone());
            }
        }
        Predicate::Id(_)
        | Predicate::LastUpdated { .. }
        | Predicate::Missing { .. }
        | Predicate::NotToken { .. } => {}
    }
    if matches!(form, IndexForm::Exists) {
        qb.push(PROBE_END);
    }
}

/// Closes an `EXISTS (…)` filter. `OFFSET 0` keeps the planner from turning the `EXISTS`
/// into a semi-join, which reads the filter's whole index range (every Observation with a
/// common code, at scale hundreds of thousands of rows) to keep a few candidates: the
/// filter is instead a probe of the owner index per candidate row, so a search costs what
/// its driving predicate matches, whatever the size of the store.
const PROBE_END: &str = " OFFSET 0)";

/// Pushes the code and system conditions of a token match on the entry aliased `x`.
fn push_token_match(qb: &mut QueryBuilder<Postgres>, system: &SystemMatch, code: Option<&str>) {
    if let Some(code) = code {
        qb.push(" AND x.code = ").push_bind(code.to_owned());
    }
    match system {
        SystemMatch::Any => {}
        SystemMatch::None => {
            qb.push(" AND x.system IS NULL");
        }
        SystemMatch::Is(s) => {
            qb.push(" AND x.system = ").push_bind(s.clone());
        }
    }
}

/// Token parameters whose codes come from a handful of values (a gender, a status, a
/// flag): a code of theirs matches a large share of a type, so they drive a search only
/// when nothing narrower is there.
const COARSE_TOKENS: &[&str] = &[
    "active",
    "category",
    "clinical-status",
    "criticality",
    "deceased",
    "gender",
    "intent",
    "priority",
    "status",
    "type",
    "verification-status",
];

/// How narrow a predicate usually is, without table statistics: an id reference or an exact
/// code picks few rows, a date range or a substring many.
fn selectivity(p: &Predicate) -> u8 {
    match p {
        Predicate::Reference { .. } => 4,
        Predicate::Token { param, .. } | Predicate::TokenIn { param, .. }
            if COARSE_TOKENS.contains(&param.as_str()) =>
        {
            1
        }
        Predicate::Token { code: Some(_), .. } => 3,
        Predicate::String {
            how: StringMatch::Exact,
            ..
        } => 3,
        Predicate::TokenIn { .. }
        | Predicate::String {
            how: StringMatch::StartsWith,
            ..
        } => 2,
        Predicate::String { .. } | Predicate::Date { .. } | Predicate::Quantity { .. } => 1,
        Predicate::Token { code: None, .. }
        | Predicate::Id(_)
        | Predicate::LastUpdated { .. }
        | Predicate::Missing { .. }
        | Predicate::NotToken { .. } => 0,
    }
}

/// Pushes a search's `SELECT {select} FROM … WHERE …`. The narrowest group made only of
/// index predicates drives the search: its candidate ids are read first from the index
/// tables' lookup indexes (a materialized CTE, so that a generic prepared plan cannot turn it
/// into a walk of every resource in id order) and joined to the resources by primary key;
/// every other group filters those rows, index predicates through a correlated `EXISTS` on
/// the owner indexes.
fn push_search(
    qb: &mut QueryBuilder<Postgres>,
    select: &dyn Fn(&mut QueryBuilder<Postgres>),
    query: &Query,
) {
    let rtype = query.source_type.as_str();
    let groups: Vec<&Vec<Predicate>> = query.all_of.iter().filter(|g| !g.is_empty()).collect();
    let driver = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.iter().all(|p| index_table(p).is_some()))
        .max_by_key(|(_, g)| g.iter().map(selectivity).min().unwrap_or(0))
        .map(|(i, _)| i);
    match driver {
        Some(i) => {
            qb.push("WITH c AS MATERIALIZED (");
            for (j, p) in groups[i].iter().enumerate() {
                if j > 0 {
                    qb.push(" UNION ");
                }
                push_predicate(qb, p, IndexForm::Candidates { rtype });
            }
            qb.push(") SELECT ");
            select(qb);
            qb.push(" FROM c JOIN resources r ON r.rtype = ")
                .push_bind(rtype.to_owned())
                .push(" AND r.id = c.id");
        }
        None => {
            qb.push("SELECT ");
            select(qb);
            qb.push(" FROM resources r");
        }
    }
    qb.push(" WHERE r.rtype = ")
        .push_bind(rtype.to_owned())
        .push(" AND NOT r.deleted");
    for (i, group) in groups.iter().enumerate() {
        if Some(i) == driver {
            continue;
        }
        qb.push(" AND ");
        push_any(qb, group);
    }
}

/// Pushes `(p1 OR p2 …)` over the resources row aliased `r`.
fn push_any(qb: &mut QueryBuilder<Postgres>, group: &[Predicate]) {
    qb.push("(");
    for (j, p) in group.iter().enumerate() {
        if j > 0 {
            qb.push(" OR ");
        }
        push_predicate(qb, p, IndexForm::Exists);
    }
    qb.push(")");
}

/// Pushes ` AND <the row's bucket is not one of excluded>` (`prefix` is the table alias
/// with its dot): the copies a bucket move leaves on a shard that does not own them.
pub(crate) fn push_owned(qb: &mut QueryBuilder<Postgres>, prefix: &str, excluded: Vec<i32>) {
    if !excluded.is_empty() {
        qb.push(format!(" AND {prefix}bucket <> ALL("))
            .push_bind(excluded)
            .push(")");
    }
}

/// Pushes ` AND <what the caller may see>` about the resources row aliased `r` (nothing
/// when access is unrestricted). Every relationship is read from the same shard: a
/// patient's compartment is placed together.
pub(crate) fn push_access(qb: &mut QueryBuilder<Postgres>, access: &Access) {
    if access.is_everything() {
        return;
    }
    for restriction in &access.all_of {
        if let Restriction::Matching { rtype, any_of } = restriction {
            push_matching(qb, rtype, any_of);
            continue;
        }
        qb.push(" AND ((r.patient IS NULL AND r.rtype = ANY(")
            .push_bind(access.shared_types.clone())
            .push(")) OR ");
        match restriction {
            Restriction::Patients(patients) => {
                qb.push("r.patient = ANY(")
                    .push_bind(patients.clone())
                    .push(")");
            }
            Restriction::GpOf(practitioner) => {
                qb.push(
                    "r.patient IN (SELECT g.id FROM idx_reference g WHERE g.rtype = 'Patient' \
                     AND g.param = 'general-practitioner' AND g.target_type = 'Practitioner' \
                     AND g.target_id = ",
                )
                .push_bind(practitioner.clone())
                .push(")");
            }
            Restriction::GrantsOf(practitioner) => push_grants(qb, practitioner),
            // Handled above.
            Restriction::Matching { .. } => {
                qb.push("FALSE");
            }
        }
        qb.push(")");
    }
}

/// Pushes ` AND (r.rtype <> rtype OR <one of the filters matches r>)`: an empty filter
/// list or a filter with a predicate that has no SQL form matches nothing.
fn push_matching(qb: &mut QueryBuilder<Postgres>, rtype: &str, any_of: &[Vec<Vec<Predicate>>]) {
    qb.push(" AND (r.rtype <> ")
        .push_bind(rtype.to_owned())
        .push(" OR FALSE");
    for filter in any_of {
        let expressible = filter.iter().flatten().all(|p| {
            matches!(p, Predicate::Id(_) | Predicate::LastUpdated { .. })
                || (index_table(p).is_some()
                    && !matches!(
                        p,
                        Predicate::TokenIn {
                            expand: Some(_),
                            ..
                        }
                    ))
        });
        if !expressible || filter.iter().any(Vec::is_empty) {
            continue;
        }
        qb.push(" OR (TRUE");
        for group in filter {
            qb.push(" AND ");
            push_any(qb, group);
        }
        qb.push(")");
    }
    qb.push(")");
}

/// References to a practitioner from `rtype`'s `param`: the ids of the referring resources.
fn push_referrers(qb: &mut QueryBuilder<Postgres>, rtype: &str, param: &str, practitioner: &str) {
    qb.push("SELECT x.id FROM idx_reference x WHERE x.rtype = ")
        .push_bind(rtype.to_owned())
        .push(" AND x.param = ")
        .push_bind(param.to_owned())
        .push(" AND x.target_type = 'Practitioner' AND x.target_id = ")
        .push_bind(practitioner.to_owned());
}

/// The Encounters a practitioner's grants reach (see [`Restriction::GrantsOf`]).
fn push_granted_encounters(qb: &mut QueryBuilder<Postgres>, practitioner: &str) {
    qb.push("SELECT e.id FROM idx_reference e WHERE e.rtype = 'Encounter' AND (");
    qb.push("(e.param = 'participant' AND e.target_type = 'Practitioner' AND e.target_id = ")
        .push_bind(practitioner.to_owned())
        .push(")");
    qb.push(" OR (e.param = 'based-on' AND e.target_type = 'ServiceRequest' AND e.target_id IN (");
    push_referrers(qb, "ServiceRequest", "performer", practitioner);
    qb.push(")) OR (e.param = 'episode-of-care' AND e.target_type = 'EpisodeOfCare' AND e.target_id IN (");
    push_granted_episodes(qb, practitioner);
    qb.push(")))");
    qb.push(
        " UNION SELECT t.target_id FROM idx_reference t WHERE t.rtype = 'CareTeam' \
         AND t.param = 'encounter' AND t.target_type = 'Encounter' AND t.id IN (",
    );
    push_referrers(qb, "CareTeam", "participant", practitioner);
    qb.push(")");
}

/// The EpisodesOfCare a practitioner manages (`careManager`) or whose team
/// (`EpisodeOfCare.team`) they are on (`CareTeam.participant`).
fn push_granted_episodes(qb: &mut QueryBuilder<Postgres>, practitioner: &str) {
    push_referrers(qb, "EpisodeOfCare", "care-manager", practitioner);
    qb.push(
        " UNION SELECT m.id FROM idx_reference m WHERE m.rtype = 'EpisodeOfCare' \
         AND m.param = 'team' AND m.target_type = 'CareTeam' AND m.target_id IN (",
    );
    push_referrers(qb, "CareTeam", "participant", practitioner);
    qb.push(")");
}

fn push_grants(qb: &mut QueryBuilder<Postgres>, practitioner: &str) {
    qb.push("(r.rtype = 'Encounter' AND r.id IN (");
    push_granted_encounters(qb, practitioner);
    qb.push(")) OR (r.rtype = 'EpisodeOfCare' AND r.id IN (");
    push_granted_episodes(qb, practitioner);
    qb.push(")) OR (r.rtype = 'ServiceRequest' AND r.id IN (");
    push_referrers(qb, "ServiceRequest", "performer", practitioner);
    qb.push(")) OR (r.rtype = 'CareTeam' AND r.id IN (");
    push_referrers(qb, "CareTeam", "participant", practitioner);
    qb.push(
        ")) OR EXISTS (SELECT 1 FROM idx_reference h WHERE h.rtype = r.rtype AND h.id = r.id \
         AND h.param = 'encounter' AND h.target_type = 'Encounter' AND h.target_id IN (",
    );
    push_granted_encounters(qb, practitioner);
    qb.push(
        ")) OR (r.rtype = 'Patient' AND r.id IN (SELECT s.target_id FROM idx_reference s \
         WHERE s.rtype = 'Encounter' AND s.param = 'subject' AND s.target_type = 'Patient' \
         AND s.id IN (",
    );
    push_granted_encounters(qb, practitioner);
    qb.push(")))");
}

/// Pushes ` AND <the history row's resource is visible now>` (a history row is as visible as
/// its resource's current version, whose tombstone keeps the patient).
pub(crate) fn push_visible_history(qb: &mut QueryBuilder<Postgres>, access: &Access) {
    if access.is_everything() {
        return;
    }
    qb.push(
        " AND EXISTS (SELECT 1 FROM resources r WHERE r.rtype = history.rtype AND r.id = history.id",
    );
    push_access(qb, access);
    qb.push(")");
}

/// Pushes one shard's query for a page of a search: up to `count + 1` matches after the
/// cursor, in id order.
pub(crate) fn push_search_page(qb: &mut QueryBuilder<Postgres>, query: &Query, excluded: Vec<i32>) {
    if !query.sort.is_empty() {
        push_sorted_page(qb, query, excluded);
        return;
    }
    push_search(
        qb,
        &|qb| {
            qb.push("r.id, r.version, r.updated_at, r.body");
        },
        query,
    );
    push_access(qb, &query.access);
    push_owned(qb, "r.", excluded);
    if let Some(after) = &query.after_id {
        qb.push(" AND r.id > ").push_bind(after.clone());
    }
    qb.push(" ORDER BY r.id LIMIT ")
        .push_bind((query.count + 1) as i64);
}

/// The SQL type a sort key's values have, and how they come back.
fn sort_kind(key: &SortKey) -> SortKind {
    match &key.by {
        SortBy::Id => SortKind::Text,
        SortBy::LastUpdated => SortKind::Micros,
        SortBy::Param { kind, .. } => match kind {
            IndexKind::Token | IndexKind::String | IndexKind::Reference => SortKind::Text,
            IndexKind::Date => SortKind::Micros,
            IndexKind::Quantity => SortKind::Decimal,
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortKind {
    Text,
    Micros,
    Decimal,
}

/// Pushes a sort key's value for the resources row aliased `r`: the smallest of the
/// parameter's entries ascending, the largest descending (a date's `low` ascending, its
/// `high` descending), read through the owner index; NULL when it has none.
fn push_sort_value(qb: &mut QueryBuilder<Postgres>, key: &SortKey) {
    let (param, kind) = match &key.by {
        SortBy::Id => {
            qb.push("r.id");
            return;
        }
        SortBy::LastUpdated => {
            qb.push("(extract(epoch FROM r.updated_at) * 1000000)::bigint");
            return;
        }
        SortBy::Param { param, kind } => (param, kind),
    };
    let (table, column) = match (kind, key.descending) {
        (IndexKind::Token, _) => ("idx_token", "code"),
        (IndexKind::String, _) => ("idx_string", "normalized"),
        (IndexKind::Date, false) => ("idx_date", "low"),
        (IndexKind::Date, true) => ("idx_date", "high"),
        (IndexKind::Reference, _) => ("idx_reference", "target_id"),
        (IndexKind::Quantity, _) => ("idx_quantity", "low"),
    };
    let agg = if key.descending { "max" } else { "min" };
    qb.push(format!(
        "(SELECT {agg}(x.{column}) FROM {table} x WHERE x.rtype = r.rtype AND x.id = r.id AND x.param = "
    ))
    .push_bind(param.clone())
    .push(")");
}

/// Pushes a bound sort value, typed for its key.
fn push_sort_bind(qb: &mut QueryBuilder<Postgres>, value: &SortValue) {
    match value {
        SortValue::Text(t) => {
            qb.push_bind(t.clone());
        }
        SortValue::Micros(m) => {
            qb.push_bind(*m);
        }
        SortValue::Decimal(d) => {
            qb.push_bind(d.clone()).push("::numeric");
        }
    }
}

/// Pushes one shard's page of a sorted search: every match with its sort values (which
/// means reading every match: no index orders the matches of an arbitrary query by the
/// smallest of a parameter's entries), those after the cursor in key order, then the id.
/// Missing values sort last both ways (text compares byte by byte: the shards' databases use
/// the C collation, as the store's merge does).
fn push_sorted_page(qb: &mut QueryBuilder<Postgres>, query: &Query, excluded: Vec<i32>) {
    qb.push("SELECT q.id, q.version, q.updated_at, q.body");
    for (i, key) in query.sort.iter().enumerate() {
        let cast = if sort_kind(key) == SortKind::Decimal {
            "::text"
        } else {
            ""
        };
        qb.push(format!(", q.s{i}{cast} AS v{i}"));
    }
    qb.push(" FROM (");
    push_search(
        qb,
        &|qb| {
            qb.push("r.id, r.version, r.updated_at, r.body");
            for (i, key) in query.sort.iter().enumerate() {
                qb.push(", ");
                push_sort_value(qb, key);
                qb.push(format!(" AS s{i}"));
            }
        },
        query,
    );
    push_access(qb, &query.access);
    push_owned(qb, "r.", excluded);
    qb.push(") q WHERE TRUE");
    if let Some(after) = &query.after_id {
        // After the cursor: some key after its value with every earlier key equal, or every
        // key equal and a greater id.
        qb.push(" AND (FALSE");
        for i in 0..=query.sort.len() {
            qb.push(" OR (TRUE");
            for j in 0..i.min(query.sort.len()) {
                match query.after_sort.get(j).cloned().flatten() {
                    Some(v) => {
                        qb.push(format!(" AND q.s{j} = "));
                        push_sort_bind(qb, &v);
                    }
                    None => {
                        qb.push(format!(" AND q.s{j} IS NULL"));
                    }
                }
            }
            match query.sort.get(i) {
                Some(key) => match query.after_sort.get(i).cloned().flatten() {
                    // Nothing sorts after a missing value but other missing values, which
                    // are equal to it.
                    None => {
                        qb.push(" AND FALSE");
                    }
                    Some(v) => {
                        let op = if key.descending { "<" } else { ">" };
                        qb.push(format!(" AND (q.s{i} IS NULL OR q.s{i} {op} "));
                        push_sort_bind(qb, &v);
                        qb.push(")");
                    }
                },
                None => {
                    qb.push(" AND q.id > ").push_bind(after.clone());
                }
            }
            qb.push(")");
        }
        qb.push(")");
    }
    qb.push(" ORDER BY ");
    for (i, key) in query.sort.iter().enumerate() {
        let dir = if key.descending { "DESC" } else { "ASC" };
        qb.push(format!("q.s{i} {dir} NULLS LAST, "));
    }
    qb.push("q.id LIMIT ").push_bind((query.count + 1) as i64);
}

/// The sort values of a sorted page's row (`v0`, `v1`, …).
fn sort_values(row: &PgRow, query: &Query) -> Result<Vec<Option<SortValue>>, StoreError> {
    query
        .sort
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let col = format!("v{i}");
            Ok(match sort_kind(key) {
                SortKind::Text => row
                    .try_get::<Option<String>, _>(col.as_str())?
                    .map(SortValue::Text),
                SortKind::Micros => row
                    .try_get::<Option<i64>, _>(col.as_str())?
                    .map(SortValue::Micros),
                SortKind::Decimal => row
                    .try_get::<Option<String>, _>(col.as_str())?
                    .map(SortValue::Decimal),
            })
        })
        .collect()
}

/// Pushes one shard's count of all a search's matches.
pub(crate) fn push_search_count(
    qb: &mut QueryBuilder<Postgres>,
    query: &Query,
    excluded: Vec<i32>,
) {
    push_search(
        qb,
        &|qb| {
            qb.push("count(*) AS n");
        },
        query,
    );
    push_access(qb, &query.access);
    push_owned(qb, "r.", excluded);
}

/// Refuses a query with a quantity bound that is not a decimal number (its own predicates
/// and the filters of its access).
pub(crate) fn check_query(query: &Query) -> Result<(), StoreError> {
    let filters = query.access.all_of.iter().flat_map(|r| match r {
        Restriction::Matching { any_of, .. } => any_of.iter().flatten().flatten().collect(),
        _ => Vec::new(),
    });
    for p in query.all_of.iter().flatten().chain(filters) {
        if let Predicate::Quantity { low, high, .. } = p {
            check_decimal(low)?;
            check_decimal(high)?;
        }
    }
    if !query.sort.is_empty() && query.after_id.is_some() {
        let bad = || StoreError::Invalid("the paging cursor does not belong to this sort".into());
        if query.after_sort.len() != query.sort.len() {
            return Err(bad());
        }
        for (key, value) in query.sort.iter().zip(&query.after_sort) {
            match (sort_kind(key), value) {
                (_, None)
                | (SortKind::Text, Some(SortValue::Text(_)))
                | (SortKind::Micros, Some(SortValue::Micros(_))) => {}
                (SortKind::Decimal, Some(SortValue::Decimal(d))) => check_decimal(d)?,
                _ => return Err(bad()),
            }
        }
    }
    Ok(())
}

/// A match of a search, with its sort values (one per sort key).
pub(crate) struct SearchRow {
    pub id: String,
    pub stored: Stored,
    pub sort: Vec<Option<SortValue>>,
}

/// One shard's share of a search: up to `count + 1` matches after the cursor, in sort order,
/// and the shard's count of all matches when asked.
pub(crate) async fn search_shard(
    pool: &PgPool,
    query: &Query,
    excluded: Vec<i32>,
) -> Result<(Vec<SearchRow>, Option<u64>), StoreError> {
    check_query(query)?;
    let mut qb = QueryBuilder::new("");
    push_search_page(&mut qb, query, excluded.clone());
    let rows = qb.build().fetch_all(pool).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(SearchRow {
                id: r.try_get::<String, _>("id")?,
                stored: stored_from_row(r)?,
                sort: sort_values(r, query)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let total = if query.total {
        let mut qb = QueryBuilder::new("");
        push_search_count(&mut qb, query, excluded);
        let row = qb.build().fetch_one(pool).await?;
        Some(row.try_get::<i64, _>("n")? as u64)
    } else {
        None
    };
    Ok((items, total))
}

/// Position in a history: after (older than) this version.
#[derive(Debug, Clone)]
pub(crate) struct HistoryCursor {
    pub micros: i64,
    pub version: u64,
    pub rtype: String,
    pub id: String,
}

impl HistoryCursor {
    pub fn parse(text: &str) -> Result<HistoryCursor, StoreError> {
        let mut parts = text.splitn(3, '-');
        let bad = || StoreError::Config(format!("invalid history cursor {text:?}"));
        let micros = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let version = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let (rtype, id) = parts
            .next()
            .and_then(|p| p.split_once('/'))
            .ok_or_else(bad)?;
        Ok(HistoryCursor {
            micros,
            version,
            rtype: rtype.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}/{}",
            self.micros, self.version, self.rtype, self.id
        )
    }
}

/// Pushes the `_since` / `_at` conditions on the `history` table.
pub(crate) fn push_window(qb: &mut QueryBuilder<Postgres>, window: &crate::HistoryWindow) {
    if let Some(since) = window.since {
        qb.push(" AND history.updated_at >= ").push_bind(since);
    }
    if let Some((low, high)) = window.at {
        // Current at some time in [low, high]: written by `high`, and not replaced by `low`.
        qb.push(" AND history.updated_at <= ").push_bind(high);
        qb.push(
            " AND NOT EXISTS (SELECT 1 FROM history n WHERE n.rtype = history.rtype \
             AND n.id = history.id AND n.version = history.version + 1 AND n.updated_at <= ",
        )
        .push_bind(low)
        .push(")");
    }
}

pub(crate) async fn history_type_shard(
    pool: &PgPool,
    rtype: Option<&str>,
    limit: usize,
    after: Option<&HistoryCursor>,
    access: &Access,
    window: &crate::HistoryWindow,
    excluded: Vec<i32>,
) -> Result<Vec<(String, String, Stored)>, StoreError> {
    let mut qb =
        QueryBuilder::new("SELECT rtype, id, version, updated_at, body FROM history WHERE TRUE");
    push_owned(&mut qb, "", excluded);
    if let Some(rtype) = rtype {
        qb.push(" AND rtype = ").push_bind(rtype.to_owned());
    }
    push_visible_history(&mut qb, access);
    push_window(&mut qb, window);
    if let Some(c) = after {
        let at = DateTime::<Utc>::from_timestamp_micros(c.micros)
            .ok_or_else(|| StoreError::Config("history cursor out of range".into()))?;
        qb.push(" AND (updated_at, rtype, id, version) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(c.rtype.clone())
            .push(", ")
            .push_bind(c.id.clone())
            .push(", ")
            .push_bind(c.version as i64)
            .push(")");
    }
    qb.push(" ORDER BY updated_at DESC, rtype DESC, id DESC, version DESC LIMIT ")
        .push_bind(limit as i64);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("rtype")?,
                r.try_get::<String, _>("id")?,
                stored_from_row(r)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::check_decimal;

    #[test]
    fn decimals_are_checked_before_binding() {
        for ok in [
            "0",
            "-12.50",
            "+3",
            "0.100000000000000000001",
            "1.5e3",
            "2E-7",
        ] {
            assert!(check_decimal(ok).is_ok(), "{ok}");
        }
        let long = "9".repeat(1001);
        for bad in [
            "", "-", ".5", "5.", "1,5", "NaN", "Infinity", "-inf", "1e", "1e1000", " 1", "1 ",
            "0x10", &long,
        ] {
            assert!(check_decimal(bad).is_err(), "{bad:?}");
        }
    }
}
