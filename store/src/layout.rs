//! The shard map in force and the shards it names, loaded from shard 0 and kept fresh.
//!
//! Shard 0 holds every version of the map (`shard_map`), how to reach each shard
//! (`shard_directory`) and which version each gateway has loaded (`map_readers`). A task
//! per store polls the newest version every [`StoreConfig::map_refresh`]; a write refused
//! because its bucket moved reloads at once. A gateway adopts a newer map as a whole: the
//! bucket assignment, the moves in progress, and connections to shards it did not know.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::PgConnectOptions;

use crate::placement::ShardMap;
use crate::{Shard, Store, StoreError};

/// A move of buckets between two shards, in progress: until it is over, both shards may
/// hold rows of these buckets, and only the owner's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMove {
    /// The buckets moving.
    pub buckets: Vec<u32>,
    /// The shard they leave.
    pub from: usize,
    /// The shard they go to.
    pub to: usize,
}

/// One version of the map as stored on shard 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapVersion {
    /// The bucket assignment (and its version).
    pub map: ShardMap,
    /// The moves in progress.
    pub moving: Vec<BucketMove>,
}

/// What a store routes by: the map, the moves in progress, and the shards.
pub(crate) struct Layout {
    pub(crate) map: Arc<ShardMap>,
    pub(crate) moving: Vec<BucketMove>,
    pub(crate) shards: Vec<Arc<Shard>>,
}

impl Layout {
    /// The buckets whose rows shard `shard` may hold without owning them (a move in
    /// progress): every scan of the shard skips them, so no resource is seen twice.
    pub(crate) fn excluded(&self, shard: usize) -> Vec<i32> {
        let mut out = Vec::new();
        for m in &self.moving {
            if m.from != shard && m.to != shard {
                continue;
            }
            out.extend(
                m.buckets
                    .iter()
                    .filter(|&&b| self.map.shard_of(b) != shard)
                    .map(|&b| b as i32),
            );
        }
        out
    }
}

/// Reads the newest map version on shard 0 (`None`: no map stored yet).
pub async fn read_map(conn: impl sqlx::PgExecutor<'_>) -> Result<Option<MapVersion>, StoreError> {
    let row = sqlx::query(
        "SELECT version, assignment, moving::text AS moving FROM shard_map ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let version: i64 = row.try_get("version")?;
    let assignment: Vec<i16> = row.try_get("assignment")?;
    let moving: String = row.try_get("moving")?;
    let moving: Vec<BucketMove> = serde_json::from_str(&moving)
        .map_err(|e| StoreError::Corrupt(format!("shard map {version}: moves: {e}")))?;
    let assignment = assignment
        .into_iter()
        .map(|a| {
            u16::try_from(a)
                .map_err(|_| StoreError::Corrupt(format!("shard map {version}: shard {a}")))
        })
        .collect::<Result<Vec<u16>, _>>()?;
    Ok(Some(MapVersion {
        map: ShardMap {
            version: version as u64,
            assignment,
        },
        moving,
    }))
}

/// Stores a new map version; fails if that version exists (another writer won).
pub async fn write_map(
    conn: impl sqlx::PgExecutor<'_>,
    version: &MapVersion,
) -> Result<(), StoreError> {
    let assignment: Vec<i16> = version.map.assignment.iter().map(|&a| a as i16).collect();
    let moving = serde_json::to_string(&version.moving)
        .map_err(|e| StoreError::Corrupt(format!("encoding moves: {e}")))?;
    sqlx::query("INSERT INTO shard_map (version, assignment, moving) VALUES ($1, $2, $3::jsonb)")
        .bind(version.map.version as i64)
        .bind(assignment)
        .bind(moving)
        .execute(conn)
        .await?;
    Ok(())
}

/// The shard directory on shard 0: each shard's node URLs, without credentials.
pub async fn read_directory(
    conn: impl sqlx::PgExecutor<'_>,
) -> Result<Vec<(usize, Vec<String>)>, StoreError> {
    let rows = sqlx::query("SELECT shard, nodes FROM shard_directory ORDER BY shard")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<i32, _>("shard")? as usize, r.try_get("nodes")?)))
        .collect()
}

/// A node's URL as the directory keeps it: no user name, no password.
pub fn public_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// `url` (from the directory) with the credentials and settings of `template`.
fn with_credentials(
    template: &PgConnectOptions,
    url: &str,
) -> Result<PgConnectOptions, StoreError> {
    let public: PgConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("shard directory: bad URL {url:?}: {e}")))?;
    let mut options = template
        .clone()
        .host(public.get_host())
        .port(public.get_port());
    if let Some(db) = public.get_database() {
        options = options.database(db);
    }
    Ok(options)
}

impl Store {
    /// Loads the newest map from shard 0 and adopts it if it is newer than the one in force
    /// (connecting to shards it names that this store does not know yet). Stores the
    /// configured map as version 1 when shard 0 has none. Records what this store has
    /// loaded, for movers waiting on it.
    pub async fn refresh_map(&self) -> Result<u64, StoreError> {
        let pool = self.primary(0);
        let stored = match read_map(&pool).await? {
            Some(v) => v,
            None => {
                let current = self.layout();
                let first = MapVersion {
                    map: current.map.as_ref().clone(),
                    moving: Vec::new(),
                };
                let mut tx = pool.begin().await?;
                for (i, shard) in current.shards.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO shard_directory (shard, nodes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(i as i32)
                    .bind(shard.router.public_urls())
                    .execute(&mut *tx)
                    .await?;
                }
                // A concurrent first load may win; either stores the same map.
                match write_map(&mut *tx, &first).await {
                    Ok(()) => tx.commit().await?,
                    Err(e) if e.is_contention() => tx.rollback().await?,
                    Err(e) => return Err(e),
                }
                read_map(&pool)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("the shard map vanished".into()))?
            }
        };
        let version = stored.map.version;
        if version > self.layout().map.version {
            self.adopt(stored).await?;
        }
        let loaded = self.layout().map.version;
        self.ack_map(loaded, false).await;
        Ok(loaded)
    }

    /// Makes `stored` the map in force, connecting to the shards it needs.
    async fn adopt(&self, stored: MapVersion) -> Result<(), StoreError> {
        let needed = stored
            .map
            .assignment
            .iter()
            .map(|&a| a as usize + 1)
            .chain(stored.moving.iter().flat_map(|m| [m.from + 1, m.to + 1]))
            .max()
            .unwrap_or(1);
        let mut shards = self.layout().shards.clone();
        if needed > shards.len() {
            let directory = read_directory(&self.primary(0)).await?;
            let template = self.inner.template.clone();
            for i in shards.len()..needed {
                let Some((_, urls)) = directory.iter().find(|(s, _)| *s == i) else {
                    return Err(StoreError::Corrupt(format!(
                        "shard map {} names shard {i}, which the shard directory lacks",
                        stored.map.version
                    )));
                };
                let nodes = urls
                    .iter()
                    .map(|u| with_credentials(&template, u))
                    .collect::<Result<Vec<_>, _>>()?;
                tracing::info!(shard = i, nodes = ?urls, "joining a new shard");
                shards.push(Arc::new(self.open_shard(i, nodes)));
            }
        }
        let old = self.layout().map.version;
        tracing::info!(
            from = old,
            to = stored.map.version,
            moving = stored.moving.len(),
            "shard map changed"
        );
        let layout = Layout {
            map: Arc::new(stored.map),
            moving: stored.moving,
            shards,
        };
        let mut slot = self
            .inner
            .layout
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Never go back to an older map (two refreshes may race).
        if layout.map.version > slot.map.version {
            *slot = Arc::new(layout);
        }
        Ok(())
    }

    /// Records on shard 0 that this store has loaded `version` (at most every few seconds
    /// unless `force`d or the version changed). Best effort: a mover that sees no record
    /// waits for it.
    async fn ack_map(&self, version: u64, force: bool) {
        {
            let last = self
                .inner
                .acked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((v, at)) = *last
                && v == version
                && !force
                && at.elapsed() < ACK_EVERY
            {
                return;
            }
        }
        let done = sqlx::query(
            "INSERT INTO map_readers (reader, version, seen_at) VALUES ($1, $2, clock_timestamp()) \
             ON CONFLICT (reader) DO UPDATE SET version = EXCLUDED.version, seen_at = EXCLUDED.seen_at",
        )
        .bind(&self.inner.reader)
        .bind(version as i64)
        .execute(&self.primary(0))
        .await;
        match done {
            Ok(_) => {
                *self
                    .inner
                    .acked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((version, Instant::now()));
            }
            Err(e) => tracing::debug!(error = %e, "recording the loaded shard map failed"),
        }
    }

    /// Starts the task that keeps the map fresh (needs a Tokio runtime; stops when the store
    /// is closed or dropped).
    pub(crate) fn spawn_map_refresh(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let store = Store { inner };
                if store.is_closed() {
                    break;
                }
                if let Err(e) = store.refresh_map().await {
                    tracing::debug!(error = %e, "shard map refresh failed");
                }
                drop(store);
                tokio::time::sleep(every).await;
            }
        });
    }
}

/// How often a store repeats its `map_readers` record while its map does not change.
const ACK_EVERY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_hides_the_copies_on_the_shard_that_does_not_own_them() {
        let mut map = ShardMap::round_robin(8, 2);
        let moving = vec![BucketMove {
            buckets: vec![0, 2],
            from: 0,
            to: 2,
        }];
        let layout = |map: &ShardMap| Layout {
            map: Arc::new(map.clone()),
            moving: moving.clone(),
            shards: Vec::new(),
        };
        // Before the switch: the copies on the new shard are hidden.
        assert_eq!(layout(&map).excluded(2), vec![0, 2]);
        assert!(layout(&map).excluded(0).is_empty());
        assert!(layout(&map).excluded(1).is_empty());
        // After it: the leftovers on the old shard are.
        map.assignment[0] = 2;
        map.assignment[2] = 2;
        assert!(layout(&map).excluded(2).is_empty());
        assert_eq!(layout(&map).excluded(0), vec![0, 2]);
    }

    #[test]
    fn directory_urls_carry_no_credentials() {
        let o: PgConnectOptions = "postgres://app:secret@127.0.0.1:5433/fhirgate"
            .parse()
            .expect("a valid URL");
        let public = public_url(&o);
        assert_eq!(public, "postgres://127.0.0.1:5433/fhirgate");
        let back = with_credentials(&o.clone().port(1), &public).expect("a valid URL");
        assert_eq!(back.get_port(), 5433);
        assert_eq!(back.get_username(), "app");
    }
}
