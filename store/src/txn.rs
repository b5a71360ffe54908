//! Atomic multi-resource writes: one PostgreSQL transaction when every change lands on one
//! shard, two-phase commit across shards otherwise.
//!
//! The protocol (presumed abort, with the decision as a race both sides can lose):
//! 1. every participant shard runs its changes in a transaction and `PREPARE TRANSACTION`s it
//!    under the gid `fhirgate:<txid>:<shard>`;
//! 2. the coordinator inserts `(txid, 'commit')` into `tx_decisions` on shard 0, in a
//!    transaction of its own; that commit is the decision point;
//! 3. it `COMMIT PREPARED`s every participant, then deletes the decision row.
//!
//! A failure before step 2 rolls every participant back. Recovery (at start-up, then
//! periodically for prepared transactions older than a grace period) inserts
//! `(txid, 'abort')` for an in-doubt gid, and whichever row got there first decides: a
//! coordinator that finds an abort row rolls back, a recoverer that finds a commit row
//! commits. So an in-doubt transaction is never half committed, even when a recoverer of
//! another gateway races a live coordinator. Abort rows are kept for [`ABORT_RETENTION`], far
//! longer than a coordinator may take to decide ([`DECISION_DEADLINE`]).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use model::Entity;
use model::index::IndexEntry;
use model::query::Access;
use sqlx::{AssertSqlSafe, Row};

use crate::apply::{Op, apply_all};
use crate::{AuditRecord, Store, StoreError, WriteKind, Written, audit};

/// A coordinator that has not decided within this time after preparing aborts instead.
pub const DECISION_DEADLINE: Duration = Duration::from_secs(60);

/// How long abort decisions are kept (they must outlive any coordinator still deciding).
pub const ABORT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The prefix of every prepared-transaction gid fhirgate writes.
const GID_PREFIX: &str = "fhirgate:";

/// One change of a transaction.
#[derive(Debug, Clone)]
pub enum Change {
    /// Write a new version (create or update).
    Put {
        /// Create (the id must be new) or upsert.
        kind: WriteKind,
        /// The entity.
        entity: Box<Entity>,
        /// Its index entries.
        index: Vec<IndexEntry>,
        /// The version the caller expects to replace.
        if_match: Option<u64>,
    },
    /// Delete (write a tombstone).
    Delete {
        /// Resource type.
        rtype: String,
        /// Resource id.
        id: String,
        /// The version the caller expects to delete.
        if_match: Option<u64>,
    },
}

impl Change {
    fn as_op(&self) -> Op<'_> {
        match self {
            Change::Put {
                kind,
                entity,
                index,
                if_match,
            } => Op::Put {
                kind: *kind,
                entity,
                index,
                if_match: *if_match,
            },
            Change::Delete {
                rtype,
                id,
                if_match,
            } => Op::Delete {
                rtype,
                id,
                if_match: *if_match,
            },
        }
    }
}

/// Where a two-phase commit stops when a crash test asks it to (see [`crate::StoreConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Every participant is prepared; no decision is recorded.
    AfterPrepare,
    /// The commit decision is recorded; no participant is committed.
    AfterDecision,
}

impl CrashPoint {
    /// Parses `after-prepare` or `after-decision`.
    pub fn parse(text: &str) -> Option<CrashPoint> {
        match text {
            "after-prepare" => Some(CrashPoint::AfterPrepare),
            "after-decision" => Some(CrashPoint::AfterDecision),
            _ => None,
        }
    }
}

/// What a recovery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// In-doubt participants committed (their transaction had been decided).
    pub committed: usize,
    /// In-doubt participants rolled back.
    pub rolled_back: usize,
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl Store {
    /// Applies `changes` atomically: all of them or none, on however many shards they land.
    /// Returns one result per change, in order (`None` for a delete that found nothing).
    /// The audit record is committed with the changes (on the first participating shard).
    /// A change that fails is reported as [`StoreError::Entry`] with its position.
    /// A transaction refused because a bucket moved meanwhile is retried under the new map.
    pub async fn transact(
        &self,
        changes: &[Change],
        audit_record: &AuditRecord,
        access: &Access,
    ) -> Result<Vec<Option<Written>>, StoreError> {
        let mut attempt = 0;
        loop {
            match self.transact_once(changes, audit_record, access).await {
                Err(e) if attempt < crate::MOVED_RETRIES && e.moved().is_some() => {
                    attempt += 1;
                    let buckets = e.moved().map(<[u32]>::to_vec).unwrap_or_default();
                    self.after_moved(&buckets, attempt).await;
                }
                other => return other,
            }
        }
    }

    async fn transact_once(
        &self,
        changes: &[Change],
        audit_record: &AuditRecord,
        access: &Access,
    ) -> Result<Vec<Option<Written>>, StoreError> {
        // Place every change; deletes of unknown resources do nothing.
        let map = self.shard_map();
        let mut placed: Vec<Option<(usize, u32)>> = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            let bucket = match change {
                Change::Put { entity, .. } => Some(self.place(entity).await.map_err(at(i))?),
                Change::Delete { rtype, id, .. } => {
                    self.bucket_of(rtype, id).await.map_err(at(i))?
                }
            };
            placed.push(bucket.map(|b| (map.shard_of(b), b)));
        }
        let mut shards: Vec<usize> = placed.iter().flatten().map(|(s, _)| *s).collect();
        shards.sort_unstable();
        shards.dedup();
        if shards.is_empty() {
            // Nothing to write: the record still needs a home.
            self.append_audit(None, audit_record).await?;
            return Ok(vec![None; changes.len()]);
        }
        // Run each shard's part, in parallel across shards, in order within one.
        let parts = shards.iter().enumerate().map(|(n, &shard)| {
            let mine: Vec<usize> = (0..changes.len())
                .filter(|&i| placed[i].is_some_and(|(s, _)| s == shard))
                .collect();
            let record = (n == 0).then_some(audit_record);
            self.run_part(shard, changes, &placed, mine, record, access)
        });
        let mut results: Vec<Option<Written>> = vec![None; changes.len()];
        let mut open: Vec<(usize, Tx)> = Vec::new();
        let mut failure: Option<StoreError> = None;
        for (&shard, outcome) in shards.iter().zip(join_all(parts).await) {
            match outcome {
                Ok((tx, written)) => {
                    for (i, w) in written {
                        results[i] = w;
                    }
                    open.push((shard, tx));
                }
                // Keep the error of the earliest entry.
                Err(e) => {
                    failure = Some(match failure {
                        Some(prev) if entry_of(&prev) <= entry_of(&e) => prev,
                        _ => e,
                    });
                }
            }
        }
        if let Some(err) = failure {
            for (_, tx) in open {
                let _ = tx.rollback().await;
            }
            return Err(err);
        }
        if open.len() == 1 {
            let (_, tx) = open.remove(0);
            crate::commit(tx).await?;
            return Ok(results);
        }
        self.two_phase_commit(open).await?;
        Ok(results)
    }

    /// One shard's part: its changes (and the audit record, if given) in an open transaction.
    async fn run_part(
        &self,
        shard: usize,
        changes: &[Change],
        placed: &[Option<(usize, u32)>],
        mine: Vec<usize>,
        record: Option<&AuditRecord>,
        access: &Access,
    ) -> Result<(Tx, Vec<(usize, Option<Written>)>), StoreError> {
        let mut tx = self.primary(shard).begin().await?;
        // Parts on different shards wait for each other at commit, out of sight of any one
        // shard's deadlock detector: a lock wait is bounded instead.
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await?;
        let ops: Vec<(Op<'_>, u32)> = mine
            .iter()
            .filter_map(|&i| placed[i].map(|(_, bucket)| (changes[i].as_op(), bucket)))
            .collect();
        let results = apply_all(&mut tx, &ops, access, None)
            .await
            .map_err(|e| match e {
                // Positions within this part become positions in the transaction.
                StoreError::Entry { index, error } => StoreError::Entry {
                    index: mine.get(index).copied().unwrap_or(index),
                    error,
                },
                other => other,
            })?;
        let written: Vec<(usize, Option<Written>)> = mine.into_iter().zip(results).collect();
        if let Some(record) = record {
            audit::append(&mut tx, record).await?;
        }
        Ok((tx, written))
    }

    /// Prepares every open part, records the decision, commits every part.
    async fn two_phase_commit(&self, open: Vec<(usize, Tx)>) -> Result<(), StoreError> {
        let txid = hex::encode(rand::random::<[u8; 16]>());
        let started = Instant::now();
        let mut prepared: Vec<usize> = Vec::new();
        let mut failure = None;
        for (shard, mut tx) in open {
            if failure.is_some() {
                let _ = tx.rollback().await;
                continue;
            }
            let gid = gid(&txid, shard);
            // PREPARE takes the session out of its transaction; the empty one begun after it
            // is what sqlx's COMMIT below closes (a COMMIT with no transaction open would
            // draw a warning from PostgreSQL, one per shard and transaction).
            let step = sqlx::raw_sql(AssertSqlSafe(format!("PREPARE TRANSACTION '{gid}'; BEGIN")))
                .execute(&mut *tx)
                .await;
            match step {
                Ok(_) => {
                    prepared.push(shard);
                    let _ = tx.commit().await;
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    failure = Some(StoreError::from(e));
                }
            }
        }
        if let Some(err) = failure {
            self.finish_prepared(&txid, &prepared, false).await;
            return Err(err);
        }
        self.crash_if(CrashPoint::AfterPrepare);
        let decided = if started.elapsed() < DECISION_DEADLINE {
            decide(&self.primary(0), &txid, "commit").await
        } else {
            Ok("abort".to_owned())
        };
        match decided {
            Ok(d) if d == "commit" => {}
            Ok(_) => {
                self.finish_prepared(&txid, &prepared, false).await;
                return Err(StoreError::Contention);
            }
            Err(err) => {
                // The decision row may have committed (the connection can be lost after the
                // commit): asking for an abort settles it, since the first decision wins.
                tracing::error!(txid, error = %err, "two-phase commit: decision not confirmed");
                match decide(&self.primary(0), &txid, "abort").await {
                    Ok(d) if d == "commit" => {}
                    Ok(_) => {
                        self.finish_prepared(&txid, &prepared, false).await;
                        return Err(err);
                    }
                    Err(again) => {
                        // Still unknown: the prepared parts stay for recovery, which applies
                        // whatever decision stands (or records an abort).
                        tracing::error!(txid, error = %again, "two-phase commit: outcome left to recovery");
                        return Err(StoreError::CommitUnknown(err.to_string()));
                    }
                }
            }
        }
        self.crash_if(CrashPoint::AfterDecision);
        if self.finish_prepared(&txid, &prepared, true).await {
            let _ = sqlx::query("DELETE FROM tx_decisions WHERE txid = $1")
                .bind(&txid)
                .execute(&self.primary(0))
                .await;
        }
        // A commit that failed here is decided and will be completed by recovery.
        Ok(())
    }

    /// Commits or rolls back the prepared parts; true when every one succeeded.
    async fn finish_prepared(&self, txid: &str, shards: &[usize], commit: bool) -> bool {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        let mut all = true;
        for &shard in shards {
            let gid = gid(txid, shard);
            let sql = AssertSqlSafe(format!("{verb} PREPARED '{gid}'"));
            if let Err(e) = sqlx::raw_sql(sql).execute(&self.primary(shard)).await {
                tracing::error!(gid, error = %e, "{verb} PREPARED failed; recovery will retry");
                all = false;
            }
        }
        all
    }

    /// Starts a task that settles in-doubt transactions every `every`, for those prepared
    /// more than `min_age` ago (a coordinator of another gateway may still be deciding
    /// younger ones). Needs a Tokio runtime; stops when the store is closed.
    pub fn spawn_recovery(&self, every: Duration, min_age: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if store.is_closed() {
                    break;
                }
                if let Err(e) = store.recover_in_doubt(min_age).await {
                    tracing::warn!(error = %e, "in-doubt transaction recovery failed");
                }
            }
        });
    }

    fn crash_if(&self, point: CrashPoint) {
        if self.inner.crash_at == Some(point) {
            tracing::error!(?point, "crash test: aborting the process");
            std::process::abort();
        }
    }

    /// Settles in-doubt two-phase commits: every fhirgate transaction prepared at least
    /// `min_age` ago is committed if its commit was decided and rolled back otherwise (the
    /// abort is recorded first, so a coordinator still running cannot commit it later).
    /// Also forgets old abort decisions.
    pub async fn recover_in_doubt(&self, min_age: Duration) -> Result<Recovered, StoreError> {
        let mut done = Recovered::default();
        for shard in 0..self.n_shards() {
            let rows = sqlx::query(
                "SELECT gid FROM pg_prepared_xacts \
                 WHERE database = current_database() AND starts_with(gid, $1) \
                 AND prepared <= now() - make_interval(secs => $2)",
            )
            .bind(GID_PREFIX)
            .bind(min_age.as_secs_f64())
            .fetch_all(&self.primary(shard))
            .await?;
            for row in rows {
                let gid: String = row.try_get("gid")?;
                let Some(txid) = txid_of(&gid) else {
                    continue;
                };
                let decision = decide(&self.primary(0), txid, "abort").await?;
                let verb = if decision == "commit" {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                sqlx::raw_sql(AssertSqlSafe(format!("{verb} PREPARED '{gid}'")))
                    .execute(&self.primary(shard))
                    .await?;
                tracing::warn!(gid, verb, "recovered an in-doubt transaction");
                if decision == "commit" {
                    done.committed += 1;
                } else {
                    done.rolled_back += 1;
                }
            }
        }
        // Commit rows whose participants are all settled, and old abort rows, can go.
        let mut pending: Vec<String> = Vec::new();
        for shard in 0..self.n_shards() {
            let rows = sqlx::query(
                "SELECT gid FROM pg_prepared_xacts \
                 WHERE database = current_database() AND starts_with(gid, $1)",
            )
            .bind(GID_PREFIX)
            .fetch_all(&self.primary(shard))
            .await?;
            for row in rows {
                let gid: String = row.try_get("gid")?;
                pending.extend(txid_of(&gid).map(str::to_owned));
            }
        }
        sqlx::query(
            "DELETE FROM tx_decisions WHERE txid <> ALL($1) AND \
             (decision = 'commit' OR at < clock_timestamp() - make_interval(secs => $2))",
        )
        .bind(&pending)
        .bind(ABORT_RETENTION.as_secs_f64())
        .execute(&self.primary(0))
        .await?;
        Ok(done)
    }
}

/// Records `wanted` as the decision of `txid` unless one exists; returns the decision in force.
async fn decide(pool: &sqlx::PgPool, txid: &str, wanted: &str) -> Result<String, StoreError> {
    let row = sqlx::query(
        "WITH ins AS (INSERT INTO tx_decisions (txid, decision) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING RETURNING decision) \
         SELECT decision FROM ins UNION ALL \
         SELECT decision FROM tx_decisions WHERE txid = $1 LIMIT 1",
    )
    .bind(txid)
    .bind(wanted)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("decision")?)
}

fn gid(txid: &str, shard: usize) -> String {
    format!("{GID_PREFIX}{txid}:{shard}")
}

fn txid_of(gid: &str) -> Option<&str> {
    let rest = gid.strip_prefix(GID_PREFIX)?;
    let (txid, _) = rest.split_once(':')?;
    (txid.len() == 32 && txid.bytes().all(|b| b.is_ascii_hexdigit())).then_some(txid)
}

/// Tags an error with the position of the change that caused it.
fn at(index: usize) -> impl Fn(StoreError) -> StoreError {
    move |error| match error {
        e @ StoreError::Entry { .. } => e,
        e => StoreError::Entry {
            index,
            error: Box::new(e),
        },
    }
}

fn entry_of(error: &StoreError) -> usize {
    match error {
        StoreError::Entry { index, .. } => *index,
        _ => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_carry_their_transaction() {
        let txid = "0123456789abcdef0123456789abcdef";
        assert_eq!(txid_of(&gid(txid, 3)), Some(txid));
        assert_eq!(txid_of("fhirgate:short:1"), None);
        assert_eq!(txid_of("other:0123456789abcdef0123456789abcdef:1"), None);
        assert_eq!(
            CrashPoint::parse("after-prepare"),
            Some(CrashPoint::AfterPrepare)
        );
        assert_eq!(CrashPoint::parse("later"), None);
    }
}
