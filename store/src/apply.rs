//! Writing changes on one shard inside the caller's transaction, in a fixed number of
//! statements however many changes there are: lock the current rows, write every new
//! version (current row, history row, change-feed row), replace every index entry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use model::Entity;
use model::index::IndexEntry;
use model::query::Access;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::audit::{self, AuditRecord};
use crate::{StoreError, WriteKind, Written, codec, sql};

/// One change, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Write a new version of `entity`.
    Put {
        kind: WriteKind,
        entity: &'a Entity,
        index: &'a [IndexEntry],
        if_match: Option<u64>,
    },
    /// Write a tombstone.
    Delete {
        rtype: &'a str,
        id: &'a str,
        if_match: Option<u64>,
    },
}

impl Op<'_> {
    fn key(&self) -> (&str, &str) {
        match self {
            Op::Put { entity, .. } => (&entity.source_type, &entity.id),
            Op::Delete { rtype, id, .. } => (rtype, id),
        }
    }
}

/// A version row to write.
pub(crate) struct VersionRow<'a> {
    pub(crate) rtype: &'a str,
    pub(crate) id: &'a str,
    pub(crate) bucket: i32,
    pub(crate) version: i64,
    pub(crate) patient: Option<&'a str>,
    /// `None` for a tombstone.
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) op: &'static str,
    pub(crate) index: &'a [IndexEntry],
}

/// Applies `ops` (each with its bucket; all on this connection's shard) in the caller's
/// transaction. One result per op, in order: `None` for a delete that found nothing. An op
/// that cannot be applied fails the whole call with [`StoreError::Entry`] at its position.
///
/// With `audit_record`, the record is appended in the same transaction whenever a version is
/// written: with that version, and by the same statement, when it is exactly one. The
/// caller's record is not changed.
///
/// Under a restricted `access`, an op on an existing resource the caller may not see fails
/// with [`StoreError::NotFound`] (its existence is not revealed), and a write whose result the
/// caller could not see (a GP writing outside their patients) with [`StoreError::Forbidden`].
pub(crate) async fn apply_all(
    conn: &mut PgConnection,
    ops: &[(Op<'_>, u32)],
    access: &Access,
    audit_record: Option<&AuditRecord>,
) -> Result<Vec<Option<Written>>, StoreError> {
    let mut seen = HashMap::with_capacity(ops.len());
    for (i, (op, _)) in ops.iter().enumerate() {
        if let Some(first) = seen.insert(op.key(), i) {
            let (rtype, id) = op.key();
            return Err(StoreError::Entry {
                index: i,
                error: Box::new(StoreError::Config(format!(
                    "{rtype}/{id} is also changed by change {first}"
                ))),
            });
        }
    }
    enter_buckets(conn, ops.iter().map(|(_, b)| *b)).await?;
    let current = lock_current(conn, ops, access).await?;
    let mut rows: Vec<VersionRow<'_>> = Vec::with_capacity(ops.len());
    // For each op: the index of its row, and whether it created the resource.
    let mut plan: Vec<Option<(usize, bool)>> = Vec::with_capacity(ops.len());
    for (i, (op, bucket)) in ops.iter().enumerate() {
        let (rtype, id) = op.key();
        let found = current.get(&(rtype.to_owned(), id.to_owned()));
        let fail = |error: StoreError| StoreError::Entry {
            index: i,
            error: Box::new(error),
        };
        if found.is_some_and(|f| !f.visible) {
            // What the caller may not see does not exist for them: a delete finds nothing,
            // a write is refused as if the id were unknown.
            if matches!(op, Op::Delete { .. }) {
                plan.push(None);
                continue;
            }
            return Err(fail(StoreError::NotFound));
        }
        let cur = found.map(|f| (f.version, f.deleted));
        let cur_patient = found.and_then(|f| f.patient.as_deref());
        match *op {
            Op::Put {
                kind,
                entity,
                index,
                if_match,
            } => {
                if kind == WriteKind::Create && cur.is_some() {
                    return Err(fail(StoreError::Contention));
                }
                if let Some(expected) = if_match
                    && (cur.map(|c| c.0) != Some(expected) || cur.is_some_and(|c| c.1))
                {
                    return Err(fail(StoreError::VersionConflict {
                        expected,
                        current: cur.map(|c| c.0),
                    }));
                }
                let version = cur.map_or(1, |c| c.0 + 1);
                let mut stored = entity.clone();
                stored.version = version;
                rows.push(VersionRow {
                    rtype: &entity.source_type,
                    id: &entity.id,
                    bucket: *bucket as i32,
                    version: version as i64,
                    patient: entity.patient.as_deref(),
                    body: Some(codec::encode(&stored).map_err(fail)?),
                    op: if cur.is_some() { "update" } else { "create" },
                    index,
                });
                plan.push(Some((rows.len() - 1, cur.is_none())));
            }
            Op::Delete {
                rtype,
                id,
                if_match,
            } => {
                let Some((version, deleted)) = cur else {
                    plan.push(None);
                    continue;
                };
                if let Some(expected) = if_match
                    && expected != version
                {
                    return Err(fail(StoreError::VersionConflict {
                        expected,
                        current: Some(version),
                    }));
                }
                if deleted {
                    plan.push(None);
                    continue;
                }
                rows.push(VersionRow {
                    rtype,
                    id,
                    bucket: *bucket as i32,
                    version: version as i64 + 1,
                    // A tombstone stays in its compartment, so its history stays as visible.
                    patient: cur_patient,
                    body: None,
                    op: "delete",
                    index: &[],
                });
                plan.push(Some((rows.len() - 1, false)));
            }
        }
    }
    if rows.is_empty() {
        return Ok(vec![None; ops.len()]);
    }
    let updated_at: DateTime<Utc> = if let [row] = rows.as_slice() {
        // The caller's record is left as it is: if the transaction fails, the record of the
        // failure must not name a version that was never committed.
        let records = match audit_record {
            Some(record) => {
                let written = AuditRecord {
                    version: Some(row.version as u64),
                    ..record.clone()
                };
                vec![audit::encode(&written)?]
            }
            None => Vec::new(),
        };
        sql::put_one(conn, row, audit::random_chain(), &records).await?
    } else {
        let t = sql::put_versions(conn, &rows).await?;
        sql::replace_indexes(conn, &rows).await?;
        if let Some(record) = audit_record {
            audit::append(conn, record).await?;
        }
        t
    };
    if let Some(row) = written_invisible(conn, &rows, access).await? {
        let index = plan
            .iter()
            .position(|p| p.is_some_and(|(r, _)| r == row))
            .unwrap_or(row);
        return Err(StoreError::Entry {
            index,
            error: Box::new(StoreError::Forbidden(format!(
                "{}/{} would be outside the records you may see",
                rows[row].rtype, rows[row].id
            ))),
        });
    }
    Ok(plan
        .into_iter()
        .map(|p| {
            p.map(|(row, created)| Written {
                version: rows[row].version as u64,
                updated_at,
                created,
            })
        })
        .collect())
}

/// A resource's current row, as a write finds it.
struct Current {
    version: u64,
    deleted: bool,
    patient: Option<String>,
    /// Whether the caller may see it.
    visible: bool,
}

/// The current rows of every resource `ops` touch, locked (in key order, so that two
/// writers lock alike), with whether the caller may see each.
/// Enters the write fence of `buckets` for the rest of the transaction (see migration
/// 0005): waits while a mover finishes one of them, and fails with [`StoreError::Moved`]
/// if one has moved to another shard.
pub(crate) async fn enter_buckets(
    conn: &mut PgConnection,
    buckets: impl Iterator<Item = u32>,
) -> Result<(), StoreError> {
    let mut buckets: Vec<i32> = buckets.map(|b| b as i32).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let moved: Vec<i32> = sqlx::query_scalar("SELECT fhirgate_enter_buckets($1)")
        .bind(&buckets)
        .fetch_one(&mut *conn)
        .await?;
    if moved.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Moved(
            moved.into_iter().map(|b| b as u32).collect(),
        ))
    }
}

async fn lock_current(
    conn: &mut PgConnection,
    ops: &[(Op<'_>, u32)],
    access: &Access,
) -> Result<HashMap<(String, String), Current>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT r.rtype, r.id, r.version, r.deleted, r.patient, (TRUE",
    );
    sql::push_access(&mut qb, access);
    if let [(op, _)] = ops {
        // One resource: a plain primary-key lookup (see `sql::put_one`).
        let (rtype, id) = op.key();
        qb.push(") AS visible FROM resources r WHERE r.rtype = ")
            .push_bind(rtype)
            .push(" AND r.id = ")
            .push_bind(id)
            .push(" FOR UPDATE OF r");
    } else {
        let (rtypes, ids): (Vec<&str>, Vec<&str>) = ops.iter().map(|(op, _)| op.key()).unzip();
        qb.push(") AS visible FROM resources r JOIN unnest(")
            .push_bind(rtypes)
            .push("::text[], ")
            .push_bind(ids)
            .push(
                "::text[]) AS k(rtype, id) ON r.rtype = k.rtype AND r.id = k.id \
                 ORDER BY r.rtype, r.id FOR UPDATE OF r",
            );
    }
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        found.insert(
            (row.try_get("rtype")?, row.try_get("id")?),
            Current {
                version: row.try_get::<i64, _>("version")? as u64,
                deleted: row.try_get("deleted")?,
                patient: row.try_get("patient")?,
                visible: row.try_get::<Option<bool>, _>("visible")?.unwrap_or(false),
            },
        );
    }
    Ok(found)
}

/// Under a restricted access, every version written (tombstones aside) must be one the
/// caller may see: a write may not move data out of their reach or into someone else's.
/// Returns the position in `rows` of one that is not.
async fn written_invisible(
    conn: &mut PgConnection,
    rows: &[VersionRow<'_>],
    access: &Access,
) -> Result<Option<usize>, StoreError> {
    if access.is_everything() {
        return Ok(None);
    }
    let (rtypes, ids): (Vec<&str>, Vec<&str>) = rows
        .iter()
        .filter(|r| r.body.is_some())
        .map(|r| (r.rtype, r.id))
        .unzip();
    if rtypes.is_empty() {
        return Ok(None);
    }
    let mut qb =
        QueryBuilder::<Postgres>::new("SELECT r.rtype, r.id FROM resources r JOIN unnest(");
    qb.push_bind(rtypes).push("::text[], ").push_bind(ids).push(
        "::text[]) AS k(rtype, id) ON r.rtype = k.rtype AND r.id = k.id WHERE NOT coalesce((TRUE",
    );
    sql::push_access(&mut qb, access);
    qb.push("), FALSE) LIMIT 1");
    let Some(row) = qb.build().fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let rtype: String = row.try_get("rtype")?;
    let id: String = row.try_get("id")?;
    Ok(rows.iter().position(|r| r.rtype == rtype && r.id == id))
}
