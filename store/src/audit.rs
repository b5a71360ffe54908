//! The audit log: append-only, hash-chained records, several chains per shard.
//!
//! Each record holds the hash of the record before it in its chain:
//! `hash = SHA-256(prev_hash ‖ chain ‖ seq ‖ at_micros ‖ record)` with integers big-endian.
//! A chain's head row (`audit_heads`) is locked for the append, so records of one chain are
//! written one after the other; spreading appends over several chains keeps concurrent
//! writers from queueing on a single head. The table refuses UPDATE, DELETE and TRUNCATE by
//! trigger, and the gateway's role has no such privilege either.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Row};

use crate::StoreError;

/// Number of hash chains per shard.
pub const N_CHAINS: i32 = 16;

/// What one request did, as recorded in the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The token's subject, if the caller was authenticated.
    pub subject: Option<String>,
    /// The caller's role.
    pub role: Option<String>,
    /// The practitioner the caller acts as.
    pub practitioner: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The FHIR interaction (`read`, `create`, `search-type`, …).
    pub interaction: String,
    /// HTTP method and path.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Resource version.
    pub version: Option<u64>,
    /// Patients whose records were touched.
    pub patients: Vec<String>,
    /// The HTTP status of the answer.
    pub outcome: u16,
    /// Break-glass reason, when access was granted by break-glass.
    pub break_glass: Option<String>,
    /// What a transaction or batch did, one `"<op> <type>/<id>"` per entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<String>,
}

/// The head of one audit chain: its last record's number and hash (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Shard index.
    pub shard: usize,
    /// Chain within the shard.
    pub chain: i32,
    /// The last record's number (0: empty chain).
    pub seq: i64,
    /// The last record's hash, hex.
    pub hash: String,
}

/// A record as stored, with its place in a chain.
#[derive(Debug, Clone)]
pub struct StoredAudit {
    /// Shard index.
    pub shard: usize,
    /// Chain within the shard.
    pub chain: i32,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The record.
    pub record: AuditRecord,
}

/// Where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// Shard index.
    pub shard: usize,
    /// Chain.
    pub chain: i32,
    /// Sequence number of the first bad record.
    pub seq: i64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shard {} chain {} record {}: {}",
            self.shard, self.chain, self.seq, self.reason
        )
    }
}

/// The hash of a record in its chain.
pub fn link_hash(prev: &[u8], chain: i32, seq: i64, at_micros: i64, record: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(chain.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(at_micros.to_be_bytes());
    h.update(record);
    h.finalize().to_vec()
}

/// Encodes a record as stored.
pub fn encode(record: &AuditRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode audit record: {e}")))
}

/// A chain to append to, at random (spreads concurrent appends over the chains' heads).
pub(crate) fn random_chain() -> i32 {
    rand::random_range(0..N_CHAINS)
}

/// Appends a record to a random chain, inside the caller's transaction.
pub async fn append(conn: &mut PgConnection, record: &AuditRecord) -> Result<(), StoreError> {
    append_encoded(conn, &[encode(record)?]).await
}

/// Appends encoded records, in order, to one random chain inside the caller's transaction
/// (or, on a bare connection, in a transaction of their own): one statement, so one round
/// trip whatever the number of records. The database's `audit_append` (migration 0007)
/// locks the chain's head and links the records with [`link_hash`]'s hash.
pub async fn append_encoded(
    conn: &mut PgConnection,
    records: &[Vec<u8>],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT audit_append($1, $2)")
        .bind(random_chain())
        .bind(records)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

type Pending = (
    Vec<u8>,
    tokio::sync::oneshot::Sender<Result<(), (bool, String)>>,
);

/// Group commit of audit records that are not part of a write (reads, searches, failures):
/// per shard, [`WRITERS`] writer tasks share one queue; a writer takes every record queued
/// while it was busy and commits them together (on a chain of its choosing), so a read's
/// record is durable before its answer without a commit of its own, and one writer's commit
/// (a synchronous-replication round trip) does not hold up the next batch.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

/// Most records committed together.
const MAX_BATCH: usize = 512;

/// Commits in flight at once per shard.
const WRITERS: usize = 2;

impl GroupWriter {
    /// Starts the writer tasks (needs a Tokio runtime).
    pub(crate) fn start(pool: sqlx::PgPool) -> GroupWriter {
        let (tx, rx) = tokio::sync::mpsc::channel::<Pending>(4 * MAX_BATCH);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WRITERS {
            let (rx, pool) = (rx.clone(), pool.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { break };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(p) => batch.push(p),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let (records, waiters): (Vec<Vec<u8>>, Vec<_>) = batch.into_iter().unzip();
                    // A record whose batch was lost with its shard may be appended again by
                    // the caller (at least once: an audit record is never dropped silently).
                    let result = commit_batch(&pool, &records).await.map_err(|e| {
                        let unavailable = e.is_unavailable() || e.is_commit_unknown();
                        (unavailable, e.to_string())
                    });
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            });
        }
        GroupWriter { tx }
    }

    /// Queues a record and waits until it is committed.
    pub(crate) async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send((encode(record)?, done))
            .await
            .map_err(|_| StoreError::Audit("the audit writer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Audit("the audit writer has stopped".into()))?
            .map_err(|(unavailable, text)| {
                if unavailable {
                    StoreError::Unavailable(text)
                } else {
                    StoreError::Audit(text)
                }
            })
    }
}

/// Appends a batch in a transaction of its own: the statement commits as it ends, one round
/// trip for the whole batch. A connection lost meanwhile leaves the outcome unknown, which
/// the caller treats as the shard being unavailable (it appends again elsewhere: at least
/// once).
async fn commit_batch(pool: &sqlx::PgPool, records: &[Vec<u8>]) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    append_encoded(&mut conn, records).await
}

/// Walks every chain of one shard; `Ok(n)` is the number of records checked.
pub async fn verify_shard(
    conn: &mut PgConnection,
    shard: usize,
) -> Result<Result<u64, BrokenLink>, StoreError> {
    let mut checked = 0u64;
    let heads = sqlx::query("SELECT chain, seq, hash FROM audit_heads ORDER BY chain")
        .fetch_all(&mut *conn)
        .await?;
    for head in heads {
        let chain: i32 = head.try_get("chain")?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: Vec<u8> = head.try_get("hash")?;
        let broken = |seq: i64, reason: String| BrokenLink {
            shard,
            chain,
            seq,
            reason,
        };
        let mut prev = vec![0u8; 32];
        let mut expected_seq = 1i64;
        let mut after = 0i64;
        // Walk in pages so a long chain never sits in memory whole.
        loop {
            let rows = sqlx::query(
                "SELECT seq, at, prev_hash, hash, record FROM audit \
                 WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT 10000",
            )
            .bind(chain)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let seq: i64 = row.try_get("seq")?;
                let at: DateTime<Utc> = row.try_get("at")?;
                let prev_hash: Vec<u8> = row.try_get("prev_hash")?;
                let hash: Vec<u8> = row.try_get("hash")?;
                let record: Vec<u8> = row.try_get("record")?;
                if seq != expected_seq {
                    return Ok(Err(broken(
                        expected_seq,
                        format!("record {expected_seq} is missing (next is {seq})"),
                    )));
                }
                if prev_hash != prev {
                    return Ok(Err(broken(seq, "previous-hash link does not match".into())));
                }
                if link_hash(&prev, chain, seq, at.timestamp_micros(), &record) != hash {
                    return Ok(Err(broken(seq, "content does not match its hash".into())));
                }
                prev = hash;
                expected_seq += 1;
                after = seq;
                checked += 1;
            }
        }
        if after != head_seq || prev != head_hash {
            return Ok(Err(broken(
                after + 1,
                format!("chain ends at record {after} but its head says {head_seq}"),
            )));
        }
    }
    Ok(Ok(checked))
}

/// Which audit records an auditor asks for; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A patient whose data the request touched.
    pub patient: Option<String>,
    /// The caller: token subject or acting practitioner.
    pub agent: Option<String>,
    /// The interactions (`read`, `create`, `search-type`, …), any of them.
    pub interactions: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Only records older than this place (paging).
    pub before: Option<AuditCursor>,
}

/// A record's place in the merged, newest-first order of every chain of every shard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// When it was recorded, µs since the epoch.
    pub micros: i64,
    /// Shard index.
    pub shard: usize,
    /// Chain.
    pub chain: i32,
    /// Number in the chain.
    pub seq: i64,
}

impl AuditCursor {
    /// The place of a record.
    pub fn of(r: &StoredAudit) -> AuditCursor {
        AuditCursor {
            micros: r.at.timestamp_micros(),
            shard: r.shard,
            chain: r.chain,
            seq: r.seq,
        }
    }
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}-{}",
            self.micros, self.shard, self.chain, self.seq
        )
    }
}

impl std::str::FromStr for AuditCursor {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<AuditCursor, StoreError> {
        let bad = || StoreError::Config(format!("invalid audit cursor {text:?}"));
        let mut parts = text.split('-');
        let mut next = || parts.next().ok_or_else(bad);
        Ok(AuditCursor {
            micros: next()?.parse().map_err(|_| bad())?,
            shard: next()?.parse().map_err(|_| bad())?,
            chain: next()?.parse().map_err(|_| bad())?,
            seq: next()?.parse().map_err(|_| bad())?,
        })
    }
}

/// A stored record from a row with `chain`, `seq`, `at` and `record`.
pub(crate) fn stored_from_row(
    shard: usize,
    row: &sqlx::postgres::PgRow,
) -> Result<StoredAudit, StoreError> {
    let record: Vec<u8> = row.try_get("record")?;
    Ok(StoredAudit {
        shard,
        chain: row.try_get("chain")?,
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        record: serde_json::from_slice(&record)
            .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?,
    })
}

/// One shard's records matching `filter`, newest first, at most `limit`. The real chains only
/// (those with a head), every value bound.
pub(crate) async fn search_shard(
    pool: &sqlx::PgPool,
    shard: usize,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<StoredAudit>, StoreError> {
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT a.chain, a.seq, a.at, a.record FROM audit a \
         CROSS JOIN LATERAL (SELECT convert_from(a.record, 'UTF8')::jsonb AS j) r \
         WHERE a.chain IN (SELECT chain FROM audit_heads)",
    );
    if let Some(p) = &filter.patient {
        qb.push(" AND r.j -> 'patients' ? ").push_bind(p.clone());
    }
    if let Some(agent) = &filter.agent {
        qb.push(" AND (r.j ->> 'subject' = ")
            .push_bind(agent.clone())
            .push(" OR r.j ->> 'practitioner' = ")
            .push_bind(agent.clone())
            .push(")");
    }
    if let Some(interactions) = &filter.interactions {
        qb.push(" AND r.j ->> 'interaction' = ANY(")
            .push_bind(interactions.clone())
            .push(")");
    }
    if let Some(from) = filter.from {
        qb.push(" AND a.at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        qb.push(" AND a.at < ").push_bind(to);
    }
    if let Some(c) = &filter.before {
        let at = DateTime::<Utc>::from_timestamp_micros(c.micros)
            .ok_or_else(|| StoreError::Config("audit cursor out of range".into()))?;
        // Newest first by (at, shard, chain, seq): within this shard, strictly older places.
        qb.push(" AND (a.at < ").push_bind(at);
        qb.push(" OR (a.at = ").push_bind(at);
        if shard < c.shard {
            qb.push("))");
        } else if shard > c.shard {
            qb.push(" AND FALSE))");
        } else {
            qb.push(" AND (a.chain, a.seq) < (")
                .push_bind(c.chain)
                .push(", ")
                .push_bind(c.seq)
                .push(")))");
        }
    }
    qb.push(" ORDER BY a.at DESC, a.chain DESC, a.seq DESC LIMIT ")
        .push_bind(limit as i64);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(|r| stored_from_row(shard, r)).collect()
}
