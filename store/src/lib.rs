//! Entities on sharded, replicated PostgreSQL.
//!
//! The store speaks entities, index entries, typed queries and audit records; it never sees
//! FHIR JSON or HTTP. Each shard is one PostgreSQL cluster (a primary and its standbys).
//! [`placement`] decides where a resource lives; every write is one PostgreSQL transaction on
//! the owning shard that writes the new version, its history row, its index entries, a
//! change-feed row and the audit record. Search scatters to the shards and merges by id, with
//! keyset cursors. [`cluster`] starts local clusters for `fhirgate up` and the tests; the
//! request path never reaches it.

mod apply;
pub mod audit;
pub mod cluster;
pub mod codec;
pub mod layout;
pub mod nodes;
pub mod placement;
pub mod rebalance;
pub mod shapes;
mod sql;
pub mod txn;

pub use sql::IndexColumns;

use std::cmp::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use model::Entity;
use model::index::IndexEntry;
use model::query::{Access, Query};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};
use sqlx::{Postgres, QueryBuilder};

pub use audit::{AuditRecord, BrokenLink};
pub use layout::{BucketMove, MapVersion};
pub use placement::ShardMap;
use shapes::push_shape;
pub use shapes::{PlanKind, Shape};
pub use txn::{Change, CrashPoint, Recovered};

/// Errors of the store, as a caller acts on them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource does not exist.
    #[error("not found")]
    NotFound,
    /// The resource was deleted; its last version is given.
    #[error("deleted at version {0}")]
    Gone(u64),
    /// The version the caller expected is not the current one.
    #[error("version conflict: expected {expected}, current {current:?}")]
    VersionConflict {
        /// The version the caller named.
        expected: u64,
        /// The current version, if the resource exists.
        current: Option<u64>,
    },
    /// The caller may not make this change (the result would be outside what they may see).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A concurrent write got there first; the caller may retry.
    #[error("concurrent write conflict")]
    Contention,
    /// A shard could not be reached or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The audit log could not be written.
    #[error("audit log write failed: {0}")]
    Audit(String),
    /// A shard could not be reached (reported by a background writer, which cannot hand
    /// over the original error).
    #[error("shard unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A value the store cannot index or compare (a quantity bound that is not a decimal).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The configuration is unusable.
    #[error("bad store configuration: {0}")]
    Config(String),
    /// The commit was sent but its outcome is unknown: the connection to the shard was lost
    /// while it ran. The write may or may not be there; a retry must be idempotent.
    #[error("the outcome of the commit is unknown: {0}")]
    CommitUnknown(String),
    /// The write's bucket has moved to another shard (the map in force is older than the
    /// one on shard 0); nothing was written. The store reloads the map and retries.
    #[error("buckets {0:?} have moved to another shard")]
    Moved(Vec<u32>),
    /// A change of a transaction failed; `index` is its position.
    #[error("change {index}: {error}")]
    Entry {
        /// Position of the change in the transaction.
        index: usize,
        /// What went wrong with it.
        error: Box<StoreError>,
    },
}

impl StoreError {
    /// The error itself, without the position [`StoreError::Entry`] wraps it in.
    pub fn unwrap_entry(self) -> StoreError {
        match self {
            StoreError::Entry { error, .. } => *error,
            other => other,
        }
    }

    /// Whether a concurrent writer held what this one needed (a lock wait ran out, a
    /// deadlock, a serialization failure, a unique key another writer inserted first): the
    /// caller may retry.
    pub fn is_contention(&self) -> bool {
        match self {
            StoreError::Contention => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                // 23505: a concurrent create of the same id committed first.
                matches!(
                    e.code().as_deref(),
                    Some("55P03" | "40P01" | "40001" | "23505")
                )
            }
            StoreError::Entry { error, .. } => error.is_contention(),
            _ => false,
        }
    }

    /// Whether the store could not be reached or its node stopped serving (connection lost,
    /// node shutting down or in recovery, no connection in time): nothing was written, and
    /// the caller may retry later, when the shard's primary is found again.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => is_connection_error(e),
            StoreError::Unavailable(_) | StoreError::Moved(_) => true,
            StoreError::Entry { error, .. } => error.is_unavailable(),
            _ => false,
        }
    }

    /// The buckets that moved, if this is (or wraps) [`StoreError::Moved`].
    pub fn moved(&self) -> Option<&[u32]> {
        match self {
            StoreError::Moved(b) => Some(b),
            StoreError::Entry { error, .. } => error.moved(),
            _ => None,
        }
    }

    /// Whether the outcome of a write is unknown (see [`StoreError::CommitUnknown`]).
    pub fn is_commit_unknown(&self) -> bool {
        match self {
            StoreError::CommitUnknown(_) => true,
            StoreError::Entry { error, .. } => error.is_commit_unknown(),
            _ => false,
        }
    }
}

/// Errors that mean the node was lost or is not a writable primary, rather than that the
/// statement failed: I/O, protocol, pool, SQLSTATE class 08 (connection exception), 57P01-03
/// (shutdown, crash, cannot connect now) and 25006 (read-only transaction: a standby).
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// Commits `tx`; a connection lost while the commit ran leaves its outcome unknown.
pub(crate) async fn commit(tx: sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    tx.commit().await.map_err(|e| {
        if is_connection_error(&e) {
            StoreError::CommitUnknown(e.to_string())
        } else {
            StoreError::Database(e)
        }
    })
}

/// How to reach one shard: every node's URL, for the gateway's role. Which node is the
/// primary is found at run time ([`nodes`]); the first is tried before the first probe.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Connection URLs of the shard's nodes (primary and standbys, in any order).
    pub nodes: Vec<String>,
}

impl ShardConfig {
    /// A shard of one node.
    pub fn single(url: impl Into<String>) -> ShardConfig {
        ShardConfig {
            nodes: vec![url.into()],
        }
    }
}

tokio::task_local! {
    /// Set by [`Store::reading`] for the task of a read request.
    static READ_AT: ConsistencyToken;
}

/// The WAL position, per shard, that a read must see: what the caller last wrote. Its text
/// form (the `X-Consistency-Token` header) is the shards' LSNs in shard order, comma
/// separated (`0/3000060,0/2FFF1A8`; empty for a shard the caller has not written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyToken(pub Vec<Option<u64>>);

impl ConsistencyToken {
    /// The position shard `shard` must have replayed, if any.
    pub fn lsn(&self, shard: usize) -> Option<u64> {
        self.0.get(shard).copied().flatten()
    }

    /// Parses the header's text; `None` if it is not a token.
    pub fn parse(text: &str) -> Option<ConsistencyToken> {
        if text.len() > 64 * 18 {
            return None;
        }
        text.split(',')
            .map(|part| {
                let part = part.trim();
                if part.is_empty() {
                    Some(None)
                } else {
                    nodes::parse_lsn(part).map(Some)
                }
            })
            .collect::<Option<Vec<_>>>()
            .map(ConsistencyToken)
    }

    /// The later position of the two, per shard.
    pub fn merge(&self, other: &ConsistencyToken) -> ConsistencyToken {
        let n = self.0.len().max(other.0.len());
        ConsistencyToken(
            (0..n)
                .map(|i| match (self.lsn(i), other.lsn(i)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                })
                .collect(),
        )
    }
}

impl std::fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|l| {
                l.map(|l| format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF))
                    .unwrap_or_default()
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The shards, in shard-map order.
    pub shards: Vec<ShardConfig>,
    /// Number of buckets (fixed for the life of the data).
    pub n_buckets: u32,
    /// Connections per shard pool.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// Crash tests only: abort the process at this point of every two-phase commit.
    pub crash_at: Option<CrashPoint>,
    /// How the shards' primaries are found.
    pub discovery: nodes::Discovery,
    /// Reads under [`Store::reading`] may go to a standby lagging at most this many bytes
    /// of WAL (or having replayed the caller's token); `None`: every read goes to the
    /// primary.
    pub standby_max_lag: Option<u64>,
    /// How often the shard map is looked up on shard 0 (a bucket moved by
    /// `fhirgate shards add` is followed within this time; a refused write reloads at once).
    pub map_refresh: Duration,
}

impl Default for StoreConfig {
    /// No shards yet; the settings `fhirgate up` uses: 1024 buckets, 32 connections per
    /// shard, 10 s to get one, primaries probed every 250 ms, every read on the primaries,
    /// the shard map looked up every 500 ms.
    fn default() -> Self {
        StoreConfig {
            shards: Vec::new(),
            n_buckets: placement::DEFAULT_BUCKETS,
            max_connections: 32,
            acquire_timeout: Duration::from_secs(10),
            crash_at: None,
            discovery: nodes::Discovery::default(),
            standby_max_lag: None,
            map_refresh: Duration::from_millis(500),
        }
    }
}

/// One shard as a store reaches it.
pub(crate) struct Shard {
    router: std::sync::Arc<nodes::Router>,
    audit: audit::GroupWriter,
}

/// Handle to the sharded store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    /// The map and shards in force; replaced as a whole when the map changes.
    layout: std::sync::RwLock<std::sync::Arc<layout::Layout>>,
    /// Credentials and settings for shards joined later (from the first shard's first node).
    template: PgConnectOptions,
    pool_options: PgPoolOptions,
    discovery: nodes::Discovery,
    /// This store's name in shard 0's `map_readers`.
    reader: String,
    /// The last map version recorded there, and when.
    acked: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
    crash_at: Option<CrashPoint>,
    standby_max_lag: Option<u64>,
}

/// How many times a write refused because its bucket moved is retried (each after the map
/// is reloaded; the switch that refused it is committed moments later).
const MOVED_RETRIES: usize = 20;

/// What a write should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Create a new resource (its id must be new).
    Create,
    /// Create or replace.
    Upsert,
}

/// A version as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The version number.
    pub version: u64,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// The entity; `None` for a tombstone.
    pub entity: Option<Entity>,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The new version.
    pub version: u64,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// Whether the resource was created by this write.
    pub created: bool,
}

/// A held [`Store::lock`]; released by [`LockGuard::release`] or when dropped.
pub struct LockGuard {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl LockGuard {
    /// Releases the lock now.
    pub async fn release(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A page of search results.
#[derive(Debug, Clone)]
pub struct Page {
    /// Matches, in the query's sort order (by id when it has none).
    pub items: Vec<Stored>,
    /// The cursor for the next page, if there is one.
    pub next: Option<String>,
    /// All matches, when asked for.
    pub total: Option<u64>,
}

/// Which versions a history asks for (`_since`, `_at`).
#[derive(Debug, Clone, Default)]
pub struct HistoryWindow {
    /// Versions written at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Versions that were current at some time in this period (inclusive).
    pub at: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Versions, newest first, with their type and id.
    pub items: Vec<(String, String, Stored)>,
    /// The cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// Runs the schema migrations on every shard, connecting with owner URLs.
pub async fn migrate(owner_urls: &[String]) -> Result<(), StoreError> {
    for url in owner_urls {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::migrate!("./migrations").run(&mut conn).await?;
        conn.close().await?;
    }
    Ok(())
}

impl Store {
    /// Connects to every shard (lazily: pools open connections on demand). Must be called
    /// within a Tokio runtime: each shard gets an audit writer task.
    pub fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        if config.shards.is_empty() {
            return Err(StoreError::Config("no shards configured".into()));
        }
        let mut all_nodes = Vec::new();
        for (i, shard) in config.shards.iter().enumerate() {
            if shard.nodes.is_empty() {
                return Err(StoreError::Config(format!("shard {i} has no nodes")));
            }
            let nodes = shard
                .nodes
                .iter()
                .map(|url| {
                    url.parse::<PgConnectOptions>()
                        .map(|o| o.application_name("fhirgate"))
                        .map_err(|e| StoreError::Config(format!("bad URL of shard {i}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            all_nodes.push(nodes);
        }
        let template = all_nodes[0][0].clone();
        let pool_options = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout);
        let store = Store {
            inner: std::sync::Arc::new(Inner {
                layout: std::sync::RwLock::new(std::sync::Arc::new(layout::Layout {
                    map: std::sync::Arc::new(ShardMap::round_robin(
                        config.n_buckets,
                        all_nodes.len(),
                    )),
                    moving: Vec::new(),
                    shards: Vec::new(),
                })),
                template,
                pool_options,
                discovery: config.discovery,
                reader: hex::encode(rand::random::<[u8; 8]>()),
                acked: std::sync::Mutex::new(None),
                crash_at: config.crash_at,
                standby_max_lag: config.standby_max_lag,
            }),
        };
        let shards: Vec<std::sync::Arc<Shard>> = all_nodes
            .into_iter()
            .enumerate()
            .map(|(i, nodes)| std::sync::Arc::new(store.open_shard(i, nodes)))
            .collect();
        {
            let mut slot = store
                .inner
                .layout
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let map = slot.map.clone();
            *slot = std::sync::Arc::new(layout::Layout {
                map,
                moving: Vec::new(),
                shards,
            });
        }
        store.spawn_map_refresh(config.map_refresh);
        Ok(store)
    }

    /// Connects to one shard: its router (primary discovery) and audit writer.
    fn open_shard(&self, i: usize, nodes: Vec<PgConnectOptions>) -> Shard {
        let router = std::sync::Arc::new(nodes::Router::new(
            i,
            nodes,
            self.inner.pool_options.clone(),
        ));
        nodes::spawn_probe(&router, self.inner.discovery);
        Shard {
            audit: audit::GroupWriter::start(router.pool().clone()),
            router,
        }
    }

    /// The map and shards in force (a snapshot: one operation routes by one map).
    pub(crate) fn layout(&self) -> std::sync::Arc<layout::Layout> {
        self.inner
            .layout
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The shard's router (the last shard for an index out of range).
    fn shard(&self, shard: usize) -> std::sync::Arc<Shard> {
        let layout = self.layout();
        layout.shards[shard.min(layout.shards.len() - 1)].clone()
    }

    /// The shard map in force.
    pub fn shard_map(&self) -> std::sync::Arc<ShardMap> {
        self.layout().map.clone()
    }

    /// The number of shards.
    pub fn n_shards(&self) -> usize {
        self.layout().shards.len()
    }

    /// The pool a read of `shard` uses: a standby's when standby reads are on, the running
    /// task reads under [`Store::reading`], and a standby has replayed the caller's token
    /// (or, without one, lags by at most the configured bound); else the primary's.
    fn pool(&self, shard: usize) -> PgPool {
        let layout = self.layout();
        let shard = shard.min(layout.shards.len() - 1);
        let router = &layout.shards[shard].router;
        if let Some(max_lag) = self.inner.standby_max_lag
            && let Ok(Some(pool)) =
                READ_AT.try_with(|at| router.standby_pool(at.lsn(shard), max_lag).cloned())
        {
            return pool;
        }
        router.pool().clone()
    }

    /// Runs `read` (a GET's work) allowed to read from standbys, as far as `token` (the
    /// caller's last writes, per shard) permits. Writes inside it still go to primaries.
    pub async fn reading<F: std::future::Future>(
        &self,
        token: ConsistencyToken,
        read: F,
    ) -> F::Output {
        READ_AT.scope(token, read).await
    }

    /// Whether reads may go to standbys.
    pub fn standby_reads(&self) -> bool {
        self.inner.standby_max_lag.is_some()
    }

    /// Every shard primary's current WAL position, read after the caller's writes
    /// committed: a standby that has replayed up to it has those writes.
    pub async fn consistency_token(&self) -> Result<ConsistencyToken, StoreError> {
        let lsns = join_all((0..self.n_shards()).map(|shard| async move {
            let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
                .fetch_one(&self.primary(shard))
                .await?;
            Ok::<_, StoreError>(nodes::parse_lsn(&text))
        }))
        .await;
        Ok(ConsistencyToken(
            lsns.into_iter().collect::<Result<_, _>>()?,
        ))
    }

    /// The pool of a shard's primary: every write, lock, audit and recovery goes there.
    fn primary(&self, shard: usize) -> PgPool {
        self.shard(shard).router.pool().clone()
    }

    /// Takes cluster-wide locks on `keys` (transaction-scoped advisory locks on shard 0, in
    /// a fixed order so that two callers never wait for each other), held until the returned
    /// guard is released or dropped. Serialises check-then-write sequences such as
    /// conditional creates, whose matches may live on any shard.
    pub async fn lock(&self, keys: &[String]) -> Result<LockGuard, StoreError> {
        let mut ids: Vec<i64> = keys
            .iter()
            .map(|key| {
                let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                i64::from_be_bytes(first)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.primary(0).begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, n) ORDER BY n")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        Ok(LockGuard { tx })
    }

    /// Every shard's nodes as last probed (roles, WAL positions, lag, failovers) and its
    /// share of the shard map.
    pub fn topology(&self) -> Vec<nodes::ShardStatus> {
        let layout = self.layout();
        let map = &layout.map;
        layout
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| nodes::ShardStatus {
                buckets: map.assignment.iter().filter(|&&a| a as usize == i).count() as u32,
                map_version: map.version,
                ..s.router.status()
            })
            .collect()
    }

    /// The shards without a known writable node.
    pub fn shards_without_primary(&self) -> Vec<usize> {
        let layout = self.layout();
        (0..layout.shards.len())
            .filter(|&i| !layout.shards[i].router.has_primary())
            .collect()
    }

    /// Checks that every shard answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        for shard in &self.layout().shards {
            sqlx::query("SELECT 1").execute(shard.router.pool()).await?;
        }
        Ok(())
    }

    /// The id of a create made idempotent by the client's key (e.g. subject, type and
    /// request id): placed with its patient if it has one, else by the key, so that a retry
    /// of the same request, with the same body, gets the same id on the same shard.
    pub fn idempotent_id(&self, patient: Option<&str>, key: &str) -> String {
        let map = self.shard_map();
        let bucket = match patient {
            Some(p) => map.patient_bucket(p),
            None => map.hash_bucket(key),
        };
        map.derived_id(bucket, key)
    }

    /// A new server-assigned id for a resource, placed with its patient if it has one.
    pub fn new_id(&self, patient: Option<&str>) -> String {
        let layout = self.layout();
        let map = &layout.map;
        let bucket = match patient {
            Some(p) => map.patient_bucket(p),
            // A new placement avoids a shard without a primary (lost, failing over), so that
            // one shard down does not fail creates that could go anywhere. Bounded draws.
            None => (0..64)
                .map(|_| map.random_bucket())
                .find(|&b| {
                    layout
                        .shards
                        .get(map.shard_of(b))
                        .is_some_and(|s| s.router.has_primary())
                })
                .unwrap_or_else(|| map.random_bucket()),
        };
        map.new_id(bucket)
    }

    /// The shard that holds a resource, if it exists (or ever existed).
    pub async fn locate(&self, rtype: &str, id: &str) -> Result<Option<usize>, StoreError> {
        Ok(self
            .bucket_of(rtype, id)
            .await?
            .map(|b| self.shard_map().shard_of(b)))
    }

    async fn bucket_of(&self, rtype: &str, id: &str) -> Result<Option<u32>, StoreError> {
        let map = self.shard_map();
        if let Some(bucket) = map.server_id_bucket(id) {
            return Ok(Some(bucket));
        }
        let shard = map.shard_of(map.locator_bucket(rtype, id));
        let row = sqlx::query("SELECT bucket FROM locator WHERE rtype = $1 AND id = $2")
            .bind(rtype)
            .bind(id)
            .fetch_optional(&self.pool(shard))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i32, _>("bucket"))
            .transpose()?
            .map(|b| b as u32))
    }

    /// Where a write of `entity` goes: the existing bucket, or a new placement recorded in
    /// the locator (client-assigned ids) or carried by the id (server-assigned ones).
    async fn place(&self, entity: &Entity) -> Result<u32, StoreError> {
        if let Some(bucket) = self.bucket_of(&entity.source_type, &entity.id).await? {
            return Ok(bucket);
        }
        let map = self.shard_map();
        let home = map.locator_bucket(&entity.source_type, &entity.id);
        let wanted = match &entity.patient {
            Some(p) => map.patient_bucket(p),
            None => home,
        };
        // First writer wins: a concurrent create of the same id gets the same placement.
        // The row is filed under the write fence of its home bucket (a move copies it).
        let placed: Option<i32> = sqlx::query_scalar("SELECT fhirgate_place($1, $2, $3, $4)")
            .bind(&entity.source_type)
            .bind(&entity.id)
            .bind(wanted as i32)
            .bind(home as i32)
            .fetch_one(&self.primary(map.shard_of(home)))
            .await?;
        placed
            .map(|b| b as u32)
            .ok_or(StoreError::Moved(vec![home]))
    }

    /// After a write was refused because buckets moved: reloads the map, and waits a little
    /// if it has not changed yet (the mover commits the new map just after the fence).
    pub(crate) async fn after_moved(&self, buckets: &[u32], attempt: usize) {
        let before = self.shard_map().version;
        let after = self.refresh_map().await.unwrap_or(before);
        tracing::debug!(
            ?buckets,
            before,
            after,
            attempt,
            "write refused: bucket moved"
        );
        if after == before {
            tokio::time::sleep(Duration::from_millis(25 * attempt.min(8) as u64)).await;
        }
    }

    /// Writes a new version of `entity` in one transaction on its shard, with its index
    /// entries, history, change-feed row and audit record. `if_match` names the version the
    /// caller expects to replace. A write into a bucket that moved meanwhile is retried on
    /// the bucket's new shard.
    pub async fn write(
        &self,
        kind: WriteKind,
        entity: &Entity,
        index: &[IndexEntry],
        if_match: Option<u64>,
        audit_record: &mut AuditRecord,
        access: &Access,
    ) -> Result<Written, StoreError> {
        let mut attempt = 0;
        loop {
            let op = apply::Op::Put {
                kind,
                entity,
                index,
                if_match,
            };
            let done = async {
                let bucket = self.place(entity).await?;
                self.apply_one(op, bucket, audit_record, access).await
            };
            match done.await {
                Err(StoreError::Moved(b)) if attempt < MOVED_RETRIES => {
                    attempt += 1;
                    self.after_moved(&b, attempt).await;
                }
                other => {
                    return other?
                        .ok_or_else(|| StoreError::Corrupt("a write wrote nothing".into()));
                }
            }
        }
    }

    /// One change in a transaction of its own, with its audit record.
    async fn apply_one(
        &self,
        op: apply::Op<'_>,
        bucket: u32,
        audit_record: &mut AuditRecord,
        access: &Access,
    ) -> Result<Option<Written>, StoreError> {
        let shard = self.shard_map().shard_of(bucket);
        let mut tx = self.primary(shard).begin().await?;
        // The record goes in with the write (nothing written: no record here; the caller's
        // own record of the request says so).
        let written = apply::apply_all(&mut tx, &[(op, bucket)], access, Some(&*audit_record))
            .await
            .map_err(StoreError::unwrap_entry)?
            .pop()
            .flatten();
        let Some(written) = written else {
            return Ok(None);
        };
        commit(tx).await?;
        audit_record.version = Some(written.version);
        Ok(Some(written))
    }

    /// Deletes a resource by writing a tombstone version. Returns `None` when there was
    /// nothing to delete (never existed, or already deleted).
    pub async fn delete(
        &self,
        rtype: &str,
        id: &str,
        if_match: Option<u64>,
        audit_record: &mut AuditRecord,
        access: &Access,
    ) -> Result<Option<Written>, StoreError> {
        let mut attempt = 0;
        loop {
            let op = apply::Op::Delete {
                rtype,
                id,
                if_match,
            };
            let done = async {
                match self.bucket_of(rtype, id).await? {
                    Some(bucket) => self.apply_one(op, bucket, audit_record, access).await,
                    None => Ok(None),
                }
            };
            match done.await {
                Err(StoreError::Moved(b)) if attempt < MOVED_RETRIES => {
                    attempt += 1;
                    self.after_moved(&b, attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Reads the current version (a tombstone comes back with `entity: None`).
    pub async fn read(
        &self,
        rtype: &str,
        id: &str,
        access: &Access,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(shard) = self.locate(rtype, id).await? else {
            return Ok(None);
        };
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT r.version, r.updated_at, r.body FROM resources r WHERE r.rtype = ",
        );
        qb.push_bind(rtype).push(" AND r.id = ").push_bind(id);
        sql::push_access(&mut qb, access);
        let row = qb.build().fetch_optional(&self.pool(shard)).await?;
        row.map(|r| sql::stored_from_row(&r)).transpose()
    }

    /// Reads one version (visible as its resource is now).
    pub async fn vread(
        &self,
        rtype: &str,
        id: &str,
        version: u64,
        access: &Access,
    ) -> Result<Option<Stored>, StoreError> {
        let Some(shard) = self.locate(rtype, id).await? else {
            return Ok(None);
        };
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT version, updated_at, body FROM history WHERE rtype = ",
        );
        qb.push_bind(rtype)
            .push(" AND id = ")
            .push_bind(id)
            .push(" AND version = ")
            .push_bind(version as i64);
        sql::push_visible_history(&mut qb, access);
        let row = qb.build().fetch_optional(&self.pool(shard)).await?;
        row.map(|r| sql::stored_from_row(&r)).transpose()
    }

    /// Reads the current versions of many resources at once (one query per shard), skipping
    /// the unknown, the deleted and what `access` hides. Order is not kept.
    pub async fn read_many(
        &self,
        keys: &[(String, String)],
        access: &Access,
    ) -> Result<Vec<(String, String, Stored)>, StoreError> {
        let mut per_shard: Vec<(Vec<&str>, Vec<&str>)> =
            vec![(Vec::new(), Vec::new()); self.n_shards()];
        for (rtype, id) in keys {
            if let Some(shard) = self.locate(rtype, id).await? {
                per_shard[shard].0.push(rtype);
                per_shard[shard].1.push(id);
            }
        }
        let futures = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, k)| !k.0.is_empty())
            .map(|(shard, (types, ids))| async move {
                let mut qb = QueryBuilder::<Postgres>::new("");
                push_shape(
                    &mut qb,
                    &Shape::ReadMany {
                        types: &types,
                        ids: &ids,
                        access,
                    },
                    Vec::new(),
                );
                qb.build().fetch_all(&self.pool(shard)).await
            });
        let mut out = Vec::new();
        for rows in join_all(futures).await {
            for r in rows? {
                out.push(sql::keyed_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The targets of `rtype`'s reference parameter `param` from the resources `ids`
    /// (restricted to `target` type when given), deduplicated.
    pub async fn references_from(
        &self,
        rtype: &str,
        ids: &[String],
        param: &str,
        target: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // Copies of a moving bucket may answer twice: the targets are deduplicated below.
        let shape = Shape::ReferencesFrom {
            rtype,
            ids,
            param,
            target,
        };
        let shape = &shape;
        let futures = (0..self.n_shards()).map(|shard| async move {
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_shape(&mut qb, shape, Vec::new());
            qb.build().fetch_all(&self.pool(shard)).await
        });
        let mut out = Vec::new();
        for rows in join_all(futures).await {
            for r in rows? {
                out.push((r.try_get("target_type")?, r.try_get("target_id")?));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The resources of type `rtype` whose reference parameter `param` points at one of
    /// `targets` (of type `target_type`), as `access` lets the caller see them; at most
    /// `limit` per shard.
    pub async fn referrers(
        &self,
        rtype: &str,
        param: &str,
        target_type: &str,
        targets: &[String],
        access: &Access,
        limit: usize,
    ) -> Result<Vec<(String, String, Stored)>, StoreError> {
        let layout = self.layout();
        let layout = &layout;
        let shape = Shape::Referrers {
            rtype,
            param,
            target_type,
            targets,
            access,
            limit,
        };
        let shape = &shape;
        let futures = (0..layout.shards.len()).map(|shard| async move {
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_shape(&mut qb, shape, layout.excluded(shard));
            qb.build().fetch_all(&self.pool(shard)).await
        });
        let mut out = Vec::new();
        for rows in join_all(futures).await {
            for r in rows? {
                out.push(sql::keyed_from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// One page of a patient's compartment (`Patient/$everything`): every current resource
    /// whose patient is `patient` (the Patient resource itself aside), of `types` if given, changed since
    /// `since` if given, visible under `access`; in (type, id) order after `after`.
    pub async fn compartment(
        &self,
        patient: &str,
        types: Option<&[String]>,
        since: Option<DateTime<Utc>>,
        after: Option<(&str, &str)>,
        count: usize,
        access: &Access,
    ) -> Result<(Vec<(String, String, Stored)>, bool), StoreError> {
        let layout = self.layout();
        let layout = &layout;
        let shape = Shape::Compartment {
            patient,
            types,
            since,
            after,
            count,
            access,
        };
        let shape = &shape;
        let futures = (0..layout.shards.len()).map(|shard| async move {
            let mut qb = QueryBuilder::<Postgres>::new("");
            push_shape(&mut qb, shape, layout.excluded(shard));
            qb.build().fetch_all(&self.pool(shard)).await
        });
        let mut out = Vec::new();
        for rows in join_all(futures).await {
            for r in rows? {
                out.push(sql::keyed_from_row(&r)?);
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let more = out.len() > count;
        out.truncate(count);
        Ok((out, more))
    }

    /// Searches every shard and merges the pages by the query's sort keys (missing values
    /// last), then id. The next page's cursor is the last match's id, with its sort values
    /// when the query is sorted ([`model::query::SortCursor`]).
    pub async fn search(&self, query: &Query) -> Result<Page, StoreError> {
        let limit = query.count;
        let layout = self.layout();
        let layout = &layout;
        let futures = (0..layout.shards.len()).map(|shard| async move {
            sql::search_shard(&self.pool(shard), query, layout.excluded(shard)).await
        });
        let results = join_all(futures).await;
        let mut items = Vec::new();
        let mut total = query.total.then_some(0u64);
        for result in results {
            let (rows, count) = result?;
            items.extend(rows);
            if let (Some(t), Some(c)) = (total.as_mut(), count) {
                *t += c;
            }
        }
        items.sort_by(|a, b| {
            let keys =
                query
                    .sort
                    .iter()
                    .zip(a.sort.iter().zip(&b.sort))
                    .map(|(key, (x, y))| match (x, y) {
                        (Some(x), Some(y)) if key.descending => y.compare(x),
                        (Some(x), Some(y)) => x.compare(y),
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => Ordering::Greater,
                        (Some(_), None) => Ordering::Less,
                    });
            keys.fold(Ordering::Equal, Ordering::then)
                .then_with(|| a.id.cmp(&b.id))
        });
        let more = items.len() > limit;
        items.truncate(limit);
        let next = match items.last() {
            Some(last) if more => Some(if query.sort.is_empty() {
                last.id.clone()
            } else {
                model::query::SortCursor {
                    values: last.sort.clone(),
                    id: last.id.clone(),
                }
                .to_text()
            }),
            _ => None,
        };
        Ok(Page {
            items: items.into_iter().map(|r| r.stored).collect(),
            next,
            total,
        })
    }

    /// The history of one resource, newest first; `before` is a version cursor.
    pub async fn history_instance(
        &self,
        rtype: &str,
        id: &str,
        count: usize,
        before: Option<u64>,
        access: &Access,
        window: &HistoryWindow,
    ) -> Result<HistoryPage, StoreError> {
        let Some(shard) = self.locate(rtype, id).await? else {
            return Ok(HistoryPage {
                items: Vec::new(),
                next: None,
            });
        };
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT rtype, id, version, updated_at, body FROM history WHERE rtype = ",
        );
        qb.push_bind(rtype)
            .push(" AND id = ")
            .push_bind(id)
            .push(" AND version < ")
            .push_bind(before.map_or(i64::MAX, |b| b as i64));
        sql::push_visible_history(&mut qb, access);
        sql::push_window(&mut qb, window);
        qb.push(" ORDER BY version DESC LIMIT ")
            .push_bind((count + 1) as i64);
        let rows = qb.build().fetch_all(&self.pool(shard)).await?;
        let mut items = rows
            .iter()
            .map(|r| Ok((rtype.to_owned(), id.to_owned(), sql::stored_from_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = items.len() > count;
        items.truncate(count);
        let next = if more {
            items.last().map(|(_, _, s)| s.version.to_string())
        } else {
            None
        };
        Ok(HistoryPage { items, next })
    }

    /// The history of every resource of a type (or, with no type, of every resource),
    /// newest first, merged across shards.
    pub async fn history_type(
        &self,
        rtype: Option<&str>,
        count: usize,
        cursor: Option<&str>,
        access: &Access,
        window: &HistoryWindow,
    ) -> Result<HistoryPage, StoreError> {
        let after = cursor.map(sql::HistoryCursor::parse).transpose()?;
        let layout = self.layout();
        let layout = &layout;
        let after = &after;
        let futures = (0..layout.shards.len()).map(|shard| async move {
            sql::history_type_shard(
                &self.pool(shard),
                rtype,
                count + 1,
                after.as_ref(),
                access,
                window,
                layout.excluded(shard),
            )
            .await
        });
        let mut items = Vec::new();
        for result in join_all(futures).await {
            items.extend(result?);
        }
        items.sort_by(|a, b| {
            (b.2.updated_at, &b.0, &b.1, b.2.version).cmp(&(
                a.2.updated_at,
                &a.0,
                &a.1,
                a.2.version,
            ))
        });
        let more = items.len() > count;
        items.truncate(count);
        let next = if more {
            items.last().map(|(rtype, id, s)| {
                sql::HistoryCursor {
                    micros: s.updated_at.timestamp_micros(),
                    version: s.version,
                    rtype: rtype.clone(),
                    id: id.clone(),
                }
                .to_string()
            })
        } else {
            None
        };
        Ok(HistoryPage { items, next })
    }

    /// Appends an audit record on its own (for requests that write nothing), on the shard
    /// that holds `near` (a resource the request touched) or on shard 0. Returns once the
    /// record is durable.
    pub async fn append_audit(
        &self,
        near: Option<(&str, &str)>,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let shard = match near {
            Some((rtype, id)) => self.locate(rtype, id).await.ok().flatten().unwrap_or(0),
            None => 0,
        };
        let layout = self.layout();
        let preferred = shard.min(layout.shards.len() - 1);
        // A record may live on any shard (audit search scatters): while the preferred one has
        // no primary, another takes it, so that one shard down stops no other shard's work.
        let mut order: Vec<usize> = std::iter::once(preferred)
            .chain((0..layout.shards.len()).filter(|&s| s != preferred))
            .collect();
        order.sort_by_key(|&s| !layout.shards[s].router.has_primary());
        let mut last = None;
        for shard in order {
            match layout.shards[shard].audit.append(record).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(shard, error = %e, "audit append failed; trying another shard");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Audit("no shard to append to".into())))
    }

    /// Verifies every audit chain of every shard. `Ok(Ok(n))`: `n` records checked, all whole.
    pub async fn verify_audit(&self) -> Result<Result<u64, BrokenLink>, StoreError> {
        let mut total = 0;
        for shard in 0..self.n_shards() {
            let mut conn = self.primary(shard).acquire().await?;
            match audit::verify_shard(&mut conn, shard).await? {
                Ok(n) => total += n,
                Err(broken) => return Ok(Err(broken)),
            }
        }
        Ok(Ok(total))
    }

    /// How many records the audit chains hold, on every shard.
    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for shard in 0..self.n_shards() {
            let n: i64 =
                sqlx::query_scalar("SELECT coalesce(sum(seq), 0)::bigint FROM audit_heads")
                    .fetch_one(&self.primary(shard))
                    .await?;
            total += n as u64;
        }
        Ok(total)
    }

    /// The head of every audit chain of every shard (what a checkpoint records).
    pub async fn audit_heads(&self) -> Result<Vec<audit::ChainHead>, StoreError> {
        let mut heads = Vec::new();
        for shard in 0..self.n_shards() {
            let rows = sqlx::query("SELECT chain, seq, hash FROM audit_heads ORDER BY chain")
                .fetch_all(&self.primary(shard))
                .await?;
            for row in rows {
                let hash: Vec<u8> = row.try_get("hash")?;
                heads.push(audit::ChainHead {
                    shard,
                    chain: row.try_get("chain")?,
                    seq: row.try_get("seq")?,
                    hash: hex::encode(hash),
                });
            }
        }
        Ok(heads)
    }

    /// Checks that every record a checkpoint names is still in its chain, unchanged: a
    /// chain cut below its checkpointed head, or a checkpointed record rewritten, is a
    /// broken link. (The chain walk of [`Store::verify_audit`] proves the rest.)
    pub async fn check_audit_checkpoint(
        &self,
        heads: &[audit::ChainHead],
    ) -> Result<Result<(), BrokenLink>, StoreError> {
        for head in heads.iter().filter(|h| h.seq > 0) {
            if head.shard >= self.n_shards() {
                return Err(StoreError::Config(format!(
                    "the checkpoint names shard {}, the store has {}",
                    head.shard,
                    self.n_shards()
                )));
            }
            let found: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT hash FROM audit WHERE chain = $1 AND seq = $2")
                    .bind(head.chain)
                    .bind(head.seq)
                    .fetch_optional(&self.primary(head.shard))
                    .await?;
            let broken = |reason: &str| BrokenLink {
                shard: head.shard,
                chain: head.chain,
                seq: head.seq,
                reason: reason.into(),
            };
            match found {
                None => {
                    return Ok(Err(broken(
                        "a checkpointed record is gone (the chain was cut)",
                    )));
                }
                Some(hash) if hex::encode(&hash) != head.hash => {
                    return Ok(Err(broken(
                        "a checkpointed record differs from the checkpoint",
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(Ok(()))
    }

    /// Reads audit records, newest first within each chain, up to `limit` per shard.
    pub async fn audit_records(&self, limit: i64) -> Result<Vec<audit::StoredAudit>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..self.n_shards() {
            let rows = sqlx::query(
                "SELECT chain, seq, at, record FROM audit ORDER BY at DESC, chain, seq DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.primary(shard))
            .await?;
            for row in rows {
                out.push(audit::stored_from_row(shard, &row)?);
            }
        }
        Ok(out)
    }

    /// Opens a break-glass window for `subject` lasting `window`, with its stated reason.
    pub async fn open_break_glass(
        &self,
        subject: &str,
        reason: &str,
        window: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO break_glass (subject, reason, until) \
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))",
        )
        .bind(subject)
        .bind(reason)
        .bind(window.as_secs_f64())
        .execute(&self.primary(0))
        .await?;
        Ok(())
    }

    /// The reason of `subject`'s open break-glass window, if one is open.
    pub async fn break_glass_reason(&self, subject: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT reason FROM break_glass WHERE subject = $1 AND until > clock_timestamp() \
             ORDER BY until DESC LIMIT 1",
        )
        .bind(subject)
        .fetch_optional(&self.primary(0))
        .await?;
        Ok(row.map(|r| r.try_get("reason")).transpose()?)
    }

    /// Every audit record made under break-glass, on every shard, oldest first.
    pub async fn break_glass_records(&self) -> Result<Vec<audit::StoredAudit>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..self.n_shards() {
            let rows = sqlx::query(
                "SELECT chain, seq, at, record FROM audit \
                 WHERE (convert_from(record, 'UTF8')::jsonb ->> 'break_glass') IS NOT NULL",
            )
            .fetch_all(&self.primary(shard))
            .await?;
            for row in rows {
                out.push(audit::stored_from_row(shard, &row)?);
            }
        }
        out.sort_by_key(|r| r.at);
        Ok(out)
    }

    /// Audit records matching `filter`, newest first, merged across shards: up to `count`,
    /// and the cursor of the next page.
    pub async fn audit_search(
        &self,
        filter: &audit::AuditFilter,
        count: usize,
    ) -> Result<(Vec<audit::StoredAudit>, Option<audit::AuditCursor>), StoreError> {
        let futures = (0..self.n_shards()).map(|shard| async move {
            audit::search_shard(&self.primary(shard), shard, filter, count + 1).await
        });
        let mut items = Vec::new();
        for result in join_all(futures).await {
            items.extend(result?);
        }
        items.sort_by(|a, b| audit::AuditCursor::of(b).cmp(&audit::AuditCursor::of(a)));
        let more = items.len() > count;
        items.truncate(count);
        let next = if more {
            items.last().map(audit::AuditCursor::of)
        } else {
            None
        };
        Ok((items, next))
    }

    /// One audit record by its place.
    pub async fn audit_record(
        &self,
        shard: usize,
        chain: i32,
        seq: i64,
    ) -> Result<Option<audit::StoredAudit>, StoreError> {
        if shard >= self.n_shards() {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT chain, seq, at, record FROM audit WHERE chain = $1 AND seq = $2")
                .bind(chain)
                .bind(seq)
                .fetch_optional(&self.primary(shard))
                .await?;
        row.map(|r| audit::stored_from_row(shard, &r)).transpose()
    }

    /// Whether the store has been closed.
    pub fn is_closed(&self) -> bool {
        self.primary(0).is_closed()
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for shard in &self.layout().shards {
            shard.router.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConsistencyToken;

    #[test]
    fn consistency_tokens_round_trip_and_merge() {
        let t = ConsistencyToken(vec![
            Some((0x16 << 32) | 0xB374_D848),
            None,
            Some(0x300_0060),
        ]);
        let text = t.to_string();
        assert_eq!(text, "16/B374D848,,0/3000060");
        assert_eq!(ConsistencyToken::parse(&text), Some(t.clone()));
        assert_eq!(
            ConsistencyToken::parse(" 0/1 , 0/2 "),
            Some(ConsistencyToken(vec![Some(1), Some(2)]))
        );
        let later = ConsistencyToken(vec![Some(1), Some(5)]);
        assert_eq!(
            t.merge(&later),
            ConsistencyToken(vec![
                Some((0x16 << 32) | 0xB374_D848),
                Some(5),
                Some(0x300_0060)
            ])
        );
        assert_eq!(t.lsn(1), None);
        assert_eq!(t.lsn(9), None);
        for bad in ["x", "0/", "1/2/3", "0/1;0/2", &"0/1,".repeat(400)] {
            assert_eq!(ConsistencyToken::parse(bad), None, "{bad:?}");
        }
    }
}
