//! Online bucket moves: adding a shard to a running cluster.
//!
//! A move of a chunk of buckets from shard `s` to shard `t`, while gateways keep writing:
//!
//! 1. **Announce** — a new map version lists the move; every gateway's scans of `t` skip the
//!    chunk's buckets from then on. The mover waits until every live gateway has loaded it
//!    (`map_readers` on shard 0).
//! 2. **Copy** — the chunk's rows (current versions, history, index entries) are copied from
//!    one snapshot of `s` with `COPY … (FORMAT binary)`.
//! 3. **Catch up** — the resources the change feed of `s` names since that snapshot are
//!    copied again, a few rounds, while writes go on.
//! 4. **Fence** — the mover takes the chunk's buckets' exclusive advisory locks on `s`
//!    (writers hold shared ones for their transaction: see migration 0005), so writes to
//!    the chunk pause; it compares every resource's version on both sides and copies what
//!    differs (this, not the feed, is what makes the copy exact), copies the locator rows
//!    filed under the chunk, and marks the buckets moved on `s` before releasing the locks.
//!    A writer that was waiting then finds its bucket moved, reloads the map and writes to `t`.
//! 5. **Switch** — a new map version assigns the chunk to `t` (scans of `s` now skip it);
//!    once every gateway has it, the chunk's rows are deleted from `s` and the move is
//!    removed from the map.
//!
//! The mover connects as the owner (it deletes history rows the gateway role may not). One
//! mover runs at a time (a session advisory lock on shard 0).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::StoreError;
use crate::layout::{BucketMove, MapVersion, read_directory, read_map, write_map};
use crate::placement::ShardMap;

/// The advisory-lock namespace of bucket fences (as in migration 0005).
const FENCE_NS: i32 = 1_718_118_770;

/// The tables whose rows carry their bucket.
const BUCKET_TABLES: [&str; 2] = ["resources", "history"];

/// The index tables (rows belong to a resource by `(rtype, id)`).
const INDEX_TABLES: [&str; 5] = [
    "idx_token",
    "idx_string",
    "idx_date",
    "idx_reference",
    "idx_quantity",
];

/// How a move runs.
#[derive(Debug, Clone, Copy)]
pub struct MoveOptions {
    /// Buckets moved per step (one fence and one map switch each).
    pub chunk: usize,
    /// The longest a step waits for the writes in flight to finish before fencing
    /// (then the step is retried).
    pub fence_timeout: Duration,
    /// How long to wait for every gateway to load a new map version.
    pub ack_timeout: Duration,
    /// A gateway that has not reported for this long is taken for gone.
    pub reader_alive: Duration,
    /// Fault tests: stop in the first step at this point, as a mover that crashed there
    /// would (the next `add_shard` resumes).
    pub stop_at: Option<MoveStop>,
}

/// Where a fault test stops a mover ([`MoveOptions::stop_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStop {
    /// The buckets are marked moved on the source, the map still gives them to it.
    AfterFence,
    /// The map gives them to the target, the source still holds their copies.
    AfterSwitch,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            chunk: 64,
            fence_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            reader_alive: Duration::from_secs(15),
            stop_at: None,
        }
    }
}

/// What a move did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MoveReport {
    /// The map version in force at the end.
    pub map_version: u64,
    /// Buckets moved.
    pub buckets: usize,
    /// Steps (chunks) run.
    pub steps: usize,
    /// Rows copied (resources, history, index entries, locator), re-copies included.
    pub rows_copied: u64,
    /// Resources copied again by the catch-up and the fenced comparison.
    pub resynced: u64,
    /// How long each step's fence held writes to its buckets, in milliseconds.
    pub fence_ms: Vec<f64>,
    /// The whole move, in seconds.
    pub seconds: f64,
}

/// A mover over the owner connections of every shard's primary (shard order).
pub struct Mover {
    urls: Vec<String>,
    options: MoveOptions,
}

impl Mover {
    /// A mover for shards reachable at `owner_urls` (owner role, each shard's primary).
    pub fn new(owner_urls: Vec<String>, options: MoveOptions) -> Mover {
        Mover {
            urls: owner_urls,
            options,
        }
    }

    async fn connect(&self, shard: usize) -> Result<PgConnection, StoreError> {
        let url = self
            .urls
            .get(shard)
            .ok_or_else(|| StoreError::Config(format!("no owner URL for shard {shard}")))?;
        Ok(PgConnection::connect(url).await?)
    }

    /// Registers the last shard of `owner_urls` (whose nodes' credential-free URLs are
    /// `public_nodes`; schema migrated) and moves its even share of the buckets to it.
    pub async fn add_shard(&self, public_nodes: &[String]) -> Result<MoveReport, StoreError> {
        let started = Instant::now();
        let new = self.urls.len() - 1;
        let mut zero = self.connect(0).await?;
        self.exclusive(&mut zero).await?;
        let current = read_map(&mut zero).await?.ok_or_else(|| {
            StoreError::Config("shard 0 has no shard map yet: start the gateway once first".into())
        })?;
        let directory = read_directory(&mut zero).await?;
        if directory.iter().any(|(s, _)| *s == new) {
            tracing::info!(shard = new, "shard already in the directory; resuming");
        } else {
            let known = directory.len();
            if known != new {
                return Err(StoreError::Config(format!(
                    "the directory knows {known} shards; the new one would be shard {new}"
                )));
            }
            sqlx::query("INSERT INTO shard_directory (shard, nodes) VALUES ($1, $2)")
                .bind(new as i32)
                .bind(public_nodes)
                .execute(&mut zero)
                .await?;
        }
        // Gateways connect to the new shard before any bucket goes there.
        let mut version = MapVersion {
            map: ShardMap {
                version: current.map.version + 1,
                assignment: current.map.assignment.clone(),
            },
            moving: current.moving.clone(),
        };
        write_map(&mut zero, &version).await?;
        self.wait_readers(&mut zero, version.map.version).await?;
        let mut report = MoveReport::default();
        // A mover that stopped half-way left its move listed: finish it first.
        for mv in current.moving.clone() {
            self.resume(&mut zero, &mut version, &mv, &mut report)
                .await?;
        }
        let plan = plan(&version.map, new);
        for (from, buckets) in plan {
            for chunk in buckets.chunks(self.options.chunk.max(1)) {
                self.move_chunk(&mut zero, &mut version, chunk, from, new, &mut report)
                    .await?;
            }
        }
        report.map_version = version.map.version;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Finishes a move an earlier mover left listed: if the map already gives its buckets
    /// to the target, only the source's leftovers are deleted; otherwise the move is run
    /// again from the start (the target's partial copy is replaced; a source whose buckets
    /// were already fenced stays fenced, so the copy is exact).
    async fn resume(
        &self,
        zero: &mut PgConnection,
        version: &mut MapVersion,
        mv: &BucketMove,
        report: &mut MoveReport,
    ) -> Result<(), StoreError> {
        tracing::warn!(
            from = mv.from,
            to = mv.to,
            buckets = mv.buckets.len(),
            "resuming an unfinished bucket move"
        );
        let switched = mv.buckets.iter().all(|&b| version.map.shard_of(b) == mv.to);
        if switched {
            self.wait_readers(zero, version.map.version).await?;
            let map = version.map.clone();
            let mut src = self.connect(mv.from).await?;
            let mut tx = src.begin().await?;
            delete_rows(&mut tx, &int_array(&mv.buckets)).await?;
            delete_locators(&mut tx, &map, &mv.buckets).await?;
            tx.commit().await?;
            self.next_map(zero, version, |v| v.moving.retain(|m| m != mv))
                .await?;
        } else {
            // The entry stays listed until the new run's cleanup removes both.
            self.move_chunk(zero, version, &mv.buckets, mv.from, mv.to, report)
                .await?;
        }
        Ok(())
    }

    /// Fails at `point` of the first step if the options ask for it.
    fn stop_if(&self, point: MoveStop, report: &MoveReport) -> Result<(), StoreError> {
        if self.options.stop_at == Some(point) && report.steps == 0 {
            return Err(StoreError::Unavailable(format!(
                "mover stopped at {point:?} (fault test)"
            )));
        }
        Ok(())
    }

    /// Takes the one-mover-at-a-time lock on shard 0 (held by `zero`'s session).
    async fn exclusive(&self, zero: &mut PgConnection) -> Result<(), StoreError> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, -1)")
            .bind(FENCE_NS)
            .fetch_one(&mut *zero)
            .await?;
        if got {
            Ok(())
        } else {
            Err(StoreError::Contention)
        }
    }

    /// Stores the next map version (from `version`, changed by `change`).
    async fn next_map(
        &self,
        zero: &mut PgConnection,
        version: &mut MapVersion,
        change: impl FnOnce(&mut MapVersion),
    ) -> Result<(), StoreError> {
        let mut next = version.clone();
        next.map.version += 1;
        change(&mut next);
        write_map(&mut *zero, &next).await?;
        *version = next;
        Ok(())
    }

    /// Waits until every live gateway has loaded `version`.
    async fn wait_readers(&self, zero: &mut PgConnection, version: u64) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.options.ack_timeout;
        loop {
            let behind: Vec<String> = sqlx::query_scalar(
                "SELECT reader FROM map_readers WHERE version < $1 \
                 AND seen_at > clock_timestamp() - make_interval(secs => $2)",
            )
            .bind(version as i64)
            .bind(self.options.reader_alive.as_secs_f64())
            .fetch_all(&mut *zero)
            .await?;
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "gateways {behind:?} have not loaded shard map version {version}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Moves `buckets` from shard `from` to shard `to` (steps 1-5 of the module doc).
    async fn move_chunk(
        &self,
        zero: &mut PgConnection,
        version: &mut MapVersion,
        buckets: &[u32],
        from: usize,
        to: usize,
        report: &mut MoveReport,
    ) -> Result<(), StoreError> {
        let mv = BucketMove {
            buckets: buckets.to_vec(),
            from,
            to,
        };
        // 1. Announce.
        self.next_map(zero, version, |v| v.moving.push(mv.clone()))
            .await?;
        self.wait_readers(zero, version.map.version).await?;
        let map = version.map.clone();
        let set = int_array(buckets);
        let mut src = self.connect(from).await?;
        let mut dst = self.connect(to).await?;
        // 2. Copy, from one snapshot.
        let mut watermark = {
            let mut tx = dst.begin().await?;
            delete_rows(&mut tx, &set).await?;
            let mut snap = src
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .await?;
            let w: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
                .fetch_one(&mut *snap)
                .await?;
            for table in BUCKET_TABLES {
                report.rows_copied += copy(
                    &mut snap,
                    &mut tx,
                    &format!("SELECT * FROM {table} WHERE bucket = ANY({set})"),
                    table,
                )
                .await?;
            }
            for table in INDEX_TABLES {
                report.rows_copied += copy(
                    &mut snap,
                    &mut tx,
                    &format!(
                        "SELECT i.* FROM {table} i JOIN resources r ON r.rtype = i.rtype AND r.id = i.id \
                         WHERE r.bucket = ANY({set})"
                    ),
                    table,
                )
                .await?;
            }
            snap.commit().await?;
            tx.commit().await?;
            w
        };
        report.rows_copied += copy_locators(&mut src, &mut dst, &map, buckets).await?;
        // 3. Catch up from the change feed.
        for _ in 0..3 {
            let rows = sqlx::query(
                "SELECT DISTINCT c.rtype, c.id FROM changes c \
                 JOIN resources r ON r.rtype = c.rtype AND r.id = c.id \
                 WHERE c.seq > $1 AND r.bucket = ANY($2)",
            )
            .bind(watermark)
            .bind(buckets.iter().map(|&b| b as i32).collect::<Vec<_>>())
            .fetch_all(&mut src)
            .await?;
            let next: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
                .fetch_one(&mut src)
                .await?;
            let keys = rows
                .iter()
                .map(|r| Ok((r.try_get("rtype")?, r.try_get("id")?)))
                .collect::<Result<Vec<(String, String)>, StoreError>>()?;
            if keys.is_empty() {
                break;
            }
            report.resynced += keys.len() as u64;
            report.rows_copied += sync_keys(&mut src, &mut dst, &keys).await?;
            watermark = next;
        }
        // 4. Fence, compare, mark moved.
        let fenced = self
            .fence_and_finish(
                &mut src,
                &mut dst,
                &map,
                &mv,
                version.map.version + 1,
                report,
            )
            .await?;
        report.fence_ms.push(fenced.as_secs_f64() * 1000.0);
        self.stop_if(MoveStop::AfterFence, report)?;
        // 5. Switch, then clean up.
        self.next_map(zero, version, |v| {
            for &b in buckets {
                v.map.assignment[b as usize] = to as u16;
            }
        })
        .await?;
        self.wait_readers(zero, version.map.version).await?;
        self.stop_if(MoveStop::AfterSwitch, report)?;
        {
            let mut tx = src.begin().await?;
            delete_rows(&mut tx, &set).await?;
            delete_locators(&mut tx, &map, buckets).await?;
            tx.commit().await?;
        }
        self.next_map(zero, version, |v| v.moving.retain(|m| *m != mv))
            .await?;
        report.buckets += buckets.len();
        report.steps += 1;
        tracing::info!(
            from,
            to,
            buckets = buckets.len(),
            map_version = version.map.version,
            fence_ms = report.fence_ms.last().copied().unwrap_or_default(),
            "buckets moved"
        );
        Ok(())
    }

    /// Step 4: holds the chunk's fence on `src` while the copy is made exact, marks the
    /// buckets moved (as of map version `switch`), and releases it. Retried when the
    /// writes in flight do not finish within the fence timeout. Returns how long writes
    /// to the chunk were held.
    async fn fence_and_finish(
        &self,
        src: &mut PgConnection,
        dst: &mut PgConnection,
        map: &ShardMap,
        mv: &BucketMove,
        switch: u64,
        report: &mut MoveReport,
    ) -> Result<Duration, StoreError> {
        let (buckets, from) = (&mv.buckets[..], mv.from);
        let mut sorted: Vec<i32> = buckets.iter().map(|&b| b as i32).collect();
        sorted.sort_unstable();
        let mut fence_conn = self.connect(from).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut fence = fence_conn.begin().await?;
            sqlx::query(AssertSqlSafe(format!(
                "SET LOCAL lock_timeout = '{}ms'",
                self.options.fence_timeout.as_millis()
            )))
            .execute(&mut *fence)
            .await?;
            let mut locked = Ok(());
            // In bucket order, as writers take them: no deadlock with a writer of several.
            for &b in &sorted {
                if let Err(e) = sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                    .bind(FENCE_NS)
                    .bind(b)
                    .execute(&mut *fence)
                    .await
                {
                    locked = Err(StoreError::from(e));
                    break;
                }
            }
            let held = Instant::now();
            match locked {
                Ok(()) => {}
                Err(e) if e.is_contention() && attempt < 3 => {
                    tracing::warn!(attempt, error = %e, "bucket fence: writes still running; retrying");
                    fence.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let differing = differing(src, dst, buckets).await?;
            report.resynced += differing.len() as u64;
            report.rows_copied += sync_keys(src, dst, &differing).await?;
            report.rows_copied += copy_locators(src, dst, map, buckets).await?;

            sqlx::query("DELETE FROM moved_buckets WHERE bucket = ANY($1)")
                .bind(&sorted)
                .execute(&mut *dst)
                .await?;
            sqlx::query(
                "INSERT INTO moved_buckets (bucket, map_version) SELECT b, $2 FROM unnest($1::int[]) AS b \
                 ON CONFLICT (bucket) DO UPDATE SET map_version = EXCLUDED.map_version",
            )
            .bind(&sorted)
            .bind(switch as i64)
            .execute(&mut *fence)
            .await?;
            fence.commit().await?;
            return Ok(held.elapsed());
        }
    }
}

/// Which buckets go to `new`, from which shard: shards are drained, largest first, until
/// `new` holds its even share.
pub fn plan(map: &ShardMap, new: usize) -> Vec<(usize, Vec<u32>)> {
    let n_shards = map
        .assignment
        .iter()
        .map(|&a| a as usize + 1)
        .max()
        .unwrap_or(1)
        .max(new + 1);
    let share = map.n_buckets() as usize / n_shards;
    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); n_shards];
    for (b, &s) in map.assignment.iter().enumerate() {
        owned[s as usize].push(b as u32);
    }
    let mut taken: HashMap<usize, Vec<u32>> = HashMap::new();
    let mut got = owned[new].len();
    while got < share {
        let Some(from) = (0..n_shards)
            .filter(|&s| s != new)
            .max_by_key(|&s| (owned[s].len(), std::cmp::Reverse(s)))
        else {
            break;
        };
        let Some(b) = owned[from].pop() else { break };
        taken.entry(from).or_default().push(b);
        got += 1;
    }
    let mut out: Vec<(usize, Vec<u32>)> = taken.into_iter().collect();
    for (_, b) in &mut out {
        b.sort_unstable();
    }
    out.sort_by_key(|(s, _)| *s);
    out
}

/// `'{1,2,3}'::int[]`: a literal of bucket numbers (integers only) for COPY statements,
/// which take no parameters.
fn int_array(buckets: &[u32]) -> String {
    let items: Vec<String> = buckets.iter().map(u32::to_string).collect();
    format!("'{{{}}}'::int[]", items.join(","))
}

/// Streams the rows of `select` on `src` into `table` on `dst` (binary COPY).
async fn copy(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    select: &str,
    table: &str,
) -> Result<u64, StoreError> {
    let mut sink = dst
        .copy_in_raw(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await?;
    let sent = async {
        let mut rows = src
            .copy_out_raw(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
            .await?;
        while let Some(chunk) = rows.next().await {
            sink.send(chunk?).await?;
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    match sent {
        Ok(()) => Ok(sink.finish().await?),
        Err(e) => {
            let _ = sink.abort(e.to_string()).await;
            Err(e.into())
        }
    }
}

/// Deletes the rows of buckets `set` (a literal from [`int_array`]) on a shard.
async fn delete_rows(conn: &mut PgConnection, set: &str) -> Result<(), StoreError> {
    for table in INDEX_TABLES {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} i USING resources r \
             WHERE r.rtype = i.rtype AND r.id = i.id AND r.bucket = ANY({set})"
        )))
        .execute(&mut *conn)
        .await?;
    }
    for table in ["history", "resources"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE bucket = ANY({set})"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Copies the rows of `keys` (type, id) again: deletes them on `dst`, then copies every
/// table's rows of those resources from one snapshot of `src`. Small by design (it runs
/// under the fence), so rows travel as one JSON array per table: one round trip each way
/// (a binary COPY pays a delayed-ACK stall at its end, sqlx sockets having Nagle on).
async fn sync_keys(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<u64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let types: Vec<&str> = keys.iter().map(|(t, _)| t.as_str()).collect();
    let ids: Vec<&str> = keys.iter().map(|(_, i)| i.as_str()).collect();
    let mut rows = Vec::new();
    let mut snap = src
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await?;
    for table in BUCKET_TABLES.iter().chain(&INDEX_TABLES) {
        let json: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT t.* FROM {table} t \
             JOIN unnest($1::text[], $2::text[]) AS k(rtype, id) ON t.rtype = k.rtype AND t.id = k.id) t"
        )))
        .bind(&types)
        .bind(&ids)
        .fetch_one(&mut *snap)
        .await?;
        rows.push((table, json));
    }
    snap.commit().await?;
    let mut copied = 0;
    let mut tx = dst.begin().await?;
    for table in INDEX_TABLES.iter().chain(&BUCKET_TABLES) {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} t USING unnest($1::text[], $2::text[]) AS k(rtype, id) \
             WHERE t.rtype = k.rtype AND t.id = k.id"
        )))
        .bind(&types)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    }
    for (table, json) in rows {
        copied += sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::json)"
        )))
        .bind(json)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(copied)
}

/// The resources of `buckets` whose current version differs between `src` and `dst`
/// (missing on one side included).
async fn differing(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    buckets: &[u32],
) -> Result<Vec<(String, String)>, StoreError> {
    let set: Vec<i32> = buckets.iter().map(|&b| b as i32).collect();
    let mut sides = Vec::with_capacity(2);
    for conn in [src, dst] {
        let rows = sqlx::query("SELECT rtype, id, version FROM resources WHERE bucket = ANY($1)")
            .bind(&set)
            .fetch_all(conn)
            .await?;
        let mut side = HashMap::with_capacity(rows.len());
        for r in rows {
            side.insert(
                (
                    r.try_get::<String, _>("rtype")?,
                    r.try_get::<String, _>("id")?,
                ),
                r.try_get::<i64, _>("version")?,
            );
        }
        sides.push(side);
    }
    let (a, b) = (&sides[0], &sides[1]);
    let mut out: Vec<(String, String)> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    out.sort();
    Ok(out)
}

/// The locator rows of `src` filed under one of `buckets` (client-assigned ids, by the
/// hash of type and id).
async fn locators(
    src: &mut PgConnection,
    map: &ShardMap,
    buckets: &[u32],
) -> Result<(Vec<String>, Vec<String>, Vec<i32>), StoreError> {
    let wanted: std::collections::HashSet<u32> = buckets.iter().copied().collect();
    let rows = sqlx::query("SELECT rtype, id, bucket FROM locator")
        .fetch_all(src)
        .await?;
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let rtype: String = r.try_get("rtype")?;
        let id: String = r.try_get("id")?;
        if wanted.contains(&map.locator_bucket(&rtype, &id)) {
            out.0.push(rtype);
            out.1.push(id);
            out.2.push(r.try_get("bucket")?);
        }
    }
    Ok(out)
}

/// Copies the locator rows filed under `buckets` that `dst` lacks.
async fn copy_locators(
    src: &mut PgConnection,
    dst: &mut PgConnection,
    map: &ShardMap,
    buckets: &[u32],
) -> Result<u64, StoreError> {
    let (types, ids, placed) = locators(src, map, buckets).await?;
    if types.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "INSERT INTO locator (rtype, id, bucket) SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&placed)
    .execute(dst)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes the locator rows filed under `buckets`.
async fn delete_locators(
    conn: &mut PgConnection,
    map: &ShardMap,
    buckets: &[u32],
) -> Result<(), StoreError> {
    let (types, ids, _) = locators(&mut *conn, map, buckets).await?;
    if types.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM locator l USING unnest($1::text[], $2::text[]) AS k(rtype, id) \
         WHERE l.rtype = k.rtype AND l.id = k.id",
    )
    .bind(&types)
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_shard_gets_an_even_share_from_the_fullest() {
        let map = ShardMap::round_robin(1024, 2);
        let plan = plan(&map, 2);
        let moved: usize = plan.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(moved, 1024 / 3);
        // Both old shards give about as much.
        let from: Vec<usize> = plan.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(from.len(), 2);
        assert!(from[0].abs_diff(from[1]) <= 1, "{from:?}");
        for (s, buckets) in &plan {
            assert!(buckets.iter().all(|&b| map.shard_of(b) == *s));
        }
        assert_eq!(int_array(&[1, 20, 300]), "'{1,20,300}'::int[]");
    }
}
