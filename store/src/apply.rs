//! Writing changes on one shard inside the caller's transaction, in a fixed number of
//! statements however many changes there are: lock the current rows, write every new
//! version (current row, history row, change-feed row), replace every index entry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use model::Entity;
use model::index::IndexEntry;
use sqlx::{PgConnection, Row};

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
pub(crate) async fn apply_all(
    conn: &mut PgConnection,
    ops: &[(Op<'_>, u32)],
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
    let current = lock_current(conn, ops).await?;
    let mut rows: Vec<VersionRow<'_>> = Vec::with_capacity(ops.len());
    // For each op: the index of its row, and whether it created the resource.
    let mut plan: Vec<Option<(usize, bool)>> = Vec::with_capacity(ops.len());
    for (i, (op, bucket)) in ops.iter().enumerate() {
        let (rtype, id) = op.key();
        let cur = current.get(&(rtype.to_owned(), id.to_owned())).copied();
        let fail = |error: StoreError| StoreError::Entry {
            index: i,
            error: Box::new(error),
        };
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
                    patient: None,
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
    let updated_at: DateTime<Utc> = sql::put_versions(conn, &rows).await?;
    sql::replace_indexes(conn, &rows).await?;
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

/// The current version and deletion flag of every resource `ops` touch, locking their rows
/// (in key order, so that two writers lock alike).
async fn lock_current(
    conn: &mut PgConnection,
    ops: &[(Op<'_>, u32)],
) -> Result<HashMap<(String, String), (u64, bool)>, StoreError> {
    let (rtypes, ids): (Vec<&str>, Vec<&str>) = ops.iter().map(|(op, _)| op.key()).unzip();
    let rows = sqlx::query(
        "SELECT r.rtype, r.id, r.version, r.deleted FROM resources r \
         JOIN unnest($1::text[], $2::text[]) AS k(rtype, id) ON r.rtype = k.rtype AND r.id = k.id \
         ORDER BY r.rtype, r.id FOR UPDATE OF r",
    )
    .bind(&rtypes)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        found.insert(
            (row.try_get("rtype")?, row.try_get("id")?),
            (
                row.try_get::<i64, _>("version")? as u64,
                row.try_get("deleted")?,
            ),
        );
    }
    Ok(found)
}
