//! Primary discovery: each shard is a list of nodes, and one task per shard keeps finding
//! the writable one.
//!
//! sqlx has no multi-host failover (it takes one host and silently ignores
//! `target_session_attrs`), so the shard's pool is pointed at a node by this module:
//!
//! - a probe task asks every node `pg_is_in_recovery()` (and its WAL position) every
//!   [`Discovery::interval`], over one kept connection per node, each probe bounded by
//!   [`Discovery::timeout`];
//! - when the writable node changes, the pool's connect options are switched to it (with a
//!   new generation in the application_name), every pooled connection opened before the
//!   switch is discarded at its next acquire, and a connect that began before the switch
//!   but ended after it is refused (its application_name holds the old generation);
//! - a node is writable when it is out of recovery and its new transactions are not
//!   read-only (pg_auto_failover fences a node read-only while a failover completes); every
//!   new pooled connection checks that, so a pool never writes to a standby even between
//!   two probes;
//! - should two nodes both accept writes (an old primary restarted outside its manager), the
//!   one on the newer timeline wins: a promotion always starts a new timeline.
//!
//! The nodes' own opinion is what the probe trusts; the HA manager (pg_auto_failover) is the
//! one that promotes and demotes, never fhirgate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};

/// How the probe task runs.
#[derive(Debug, Clone, Copy)]
pub struct Discovery {
    /// Time between two probes of a shard's nodes.
    pub interval: Duration,
    /// Bound of one probe of one node (connect included).
    pub timeout: Duration,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
        }
    }
}

/// What a node is, as last seen by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Accepts writes and is the shard's chosen primary.
    Primary,
    /// In recovery (a standby).
    Standby,
    /// Out of recovery but not written to: read-only (held so by its HA manager while a
    /// failover completes), or on an older timeline than the chosen primary.
    Fenced,
    /// Did not answer the last probe.
    Down,
}

impl NodeRole {
    /// Its name (as in JSON and the metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "primary",
            NodeRole::Standby => "standby",
            NodeRole::Fenced => "fenced",
            NodeRole::Down => "down",
        }
    }
}

/// One node of a shard, as last seen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// `host:port`.
    pub address: String,
    /// What it is.
    pub role: NodeRole,
    /// Its WAL position: written (primary) or replayed (standby).
    pub lsn: Option<u64>,
    /// How many bytes of WAL it has yet to replay behind the primary (standbys).
    pub lag_bytes: Option<u64>,
    /// Why the last probe failed.
    pub error: Option<String>,
}

/// One shard, as last seen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardStatus {
    /// Shard number.
    pub shard: usize,
    /// The node writes go to, if one is known.
    pub primary: Option<String>,
    /// Times the writable node changed since start.
    pub failovers: u64,
    /// How many buckets the shard map puts on this shard, and the map's version.
    pub buckets: u32,
    /// The version of the shard map in force.
    pub map_version: u64,
    /// Every node.
    pub nodes: Vec<NodeStatus>,
}

/// The nodes of one shard and the pool pointed at the writable one.
pub(crate) struct Router {
    shard: usize,
    nodes: Vec<PgConnectOptions>,
    addresses: Vec<String>,
    pool: PgPool,
    /// Microseconds after `epoch` of the last switch; connections opened earlier are dropped.
    switched_at: Arc<AtomicU64>,
    epoch: Instant,
    state: Mutex<State>,
    failovers: AtomicU64,
    /// Bumped at every switch; the pool's connections carry it in their application_name.
    generation: Arc<AtomicU64>,
    /// A read-only pool per node (opened lazily), for reads served by standbys.
    read_pools: Vec<PgPool>,
}

struct State {
    primary: Option<usize>,
    /// The last primary known (kept while the shard has none), to count failovers.
    last_primary: Option<usize>,
    nodes: Vec<NodeStatus>,
}

impl Router {
    /// Its nodes' URLs without credentials (what the shard directory keeps).
    pub(crate) fn public_urls(&self) -> Vec<String> {
        self.nodes.iter().map(crate::layout::public_url).collect()
    }

    /// A router whose pool starts out pointed at the first node (a probe corrects it within
    /// one interval).
    pub(crate) fn new(
        shard: usize,
        nodes: Vec<PgConnectOptions>,
        pool_options: PgPoolOptions,
    ) -> Router {
        let read_connections = (pool_options.get_max_connections() / 2).max(1);
        let acquire_timeout = pool_options.get_acquire_timeout();
        let epoch = Instant::now();
        let switched_at = Arc::new(AtomicU64::new(0));
        let addresses: Vec<String> = nodes
            .iter()
            .map(|o| format!("{}:{}", o.get_host(), o.get_port()))
            .collect();
        let switched = switched_at.clone();
        let generation = Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        let pool = pool_options
            .after_connect(move |conn, _| {
                let current = current.clone();
                Box::pin(async move {
                    let (writable, name): (bool, String) =
                        sqlx::query_as(WRITABLE_SQL).fetch_one(&mut *conn).await?;
                    // A connect that began before a switch (to the old node) and ended after
                    // it carries the old generation in its application_name.
                    let stale = name != pool_application_name(current.load(Ordering::Acquire));
                    if !writable || stale {
                        // sqlx retries a refused connection (with backoff) until the acquire
                        // timeout; then the caller answers 503.
                        return Err(sqlx::Error::Protocol(
                            "the node does not accept writes (a standby, or a primary fenced \
                             read-only by its HA manager), or the shard's primary moved"
                                .into(),
                        ));
                    }
                    Ok(())
                })
            })
            .before_acquire(move |_, meta| {
                let switched = switched.load(Ordering::Acquire);
                let opened = epoch
                    .elapsed()
                    .saturating_sub(meta.age)
                    .as_micros()
                    .min(u64::MAX as u128) as u64;
                Box::pin(async move { Ok(opened >= switched) })
            })
            .connect_lazy_with(nodes[0].clone().application_name(&pool_application_name(0)));
        let read_pools = nodes
            .iter()
            .map(|o| {
                PgPoolOptions::new()
                    .max_connections(read_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy_with(o.clone().application_name("fhirgate-read"))
            })
            .collect();
        Router {
            generation,
            read_pools,
            shard,
            state: Mutex::new(State {
                primary: None,
                last_primary: None,
                nodes: addresses
                    .iter()
                    .map(|a| NodeStatus {
                        address: a.clone(),
                        role: NodeRole::Down,
                        lsn: None,
                        lag_bytes: None,
                        error: Some("not probed yet".into()),
                    })
                    .collect(),
            }),
            nodes,
            addresses,
            pool,
            switched_at,
            epoch,
            failovers: AtomicU64::new(0),
        }
    }

    /// The pool of the writable node.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool of a standby that may serve a read: one that has replayed `lsn` when given
    /// (the probe's figure is at most one interval old and replay only moves forward, so
    /// the standby has at least that), else one lagging at most `max_lag` bytes at the
    /// last probe. `None`: read from the primary.
    pub(crate) fn standby_pool(&self, lsn: Option<u64>, max_lag: u64) -> Option<&PgPool> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.primary?;
        let i = state.nodes.iter().position(|n| {
            n.role == NodeRole::Standby
                && match lsn {
                    Some(want) => n.lsn.is_some_and(|have| have >= want),
                    None => n.lag_bytes.is_some_and(|lag| lag <= max_lag),
                }
        })?;
        self.read_pools.get(i)
    }

    /// The shard as last seen.
    pub(crate) fn status(&self) -> ShardStatus {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ShardStatus {
            shard: self.shard,
            primary: state.primary.map(|i| self.addresses[i].clone()),
            failovers: self.failovers.load(Ordering::Relaxed),
            buckets: 0,
            map_version: 0,
            nodes: state.nodes.clone(),
        }
    }

    /// Closes the shard's pools (the probe task ends with them).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
        for pool in &self.read_pools {
            pool.close().await;
        }
    }

    /// Whether a writable node is known.
    pub(crate) fn has_primary(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .primary
            .is_some()
    }

    /// Probes every node once and points the pool at the writable one.
    async fn probe(&self, conns: &mut [Option<PgConnection>], timeout: Duration) {
        let probes = conns
            .iter_mut()
            .zip(&self.nodes)
            .map(|(conn, options)| probe_node(conn, options, timeout));
        let seen = futures_util::future::join_all(probes).await;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // The writable node on the newest timeline; the current one wins a tie.
        let chosen = seen
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Ok(Seen {
                    timeline: Some(t),
                    read_only: false,
                    ..
                }) => Some((*t, state.primary == Some(i), std::cmp::Reverse(i), i)),
                _ => None,
            })
            .max()
            .map(|(.., i)| i);
        let primary_lsn = chosen.and_then(|i| seen[i].as_ref().ok().and_then(|s| s.lsn));
        state.nodes = seen
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Ok(s) => NodeStatus {
                    address: self.addresses[i].clone(),
                    role: match (s.timeline, chosen == Some(i)) {
                        (_, true) => NodeRole::Primary,
                        (Some(_), false) => NodeRole::Fenced,
                        (None, false) => NodeRole::Standby,
                    },
                    lsn: s.lsn,
                    lag_bytes: match (s.timeline, primary_lsn, s.lsn) {
                        (None, Some(p), Some(l)) => Some(p.saturating_sub(l)),
                        _ => None,
                    },
                    error: None,
                },
                Err(e) => NodeStatus {
                    address: self.addresses[i].clone(),
                    role: NodeRole::Down,
                    lsn: None,
                    lag_bytes: None,
                    error: Some(e.clone()),
                },
            })
            .collect();
        if let Some(i) = chosen
            && chosen != state.primary
        {
            if let Some(previous) = state.last_primary.filter(|&p| p != i) {
                self.failovers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    shard = self.shard,
                    from = %self.addresses[previous],
                    to = %self.addresses[i],
                    "the shard's primary moved"
                );
            } else {
                tracing::info!(shard = self.shard, primary = %self.addresses[i], "shard primary found");
            }
            // The pool starts out pointed at the first node: finding it writable at the first
            // probe is no switch (and must not refuse the connects already under way).
            let first_found = state.last_primary.is_none() && i == 0;
            if !first_found {
                let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                self.pool.set_connect_options(
                    self.nodes[i]
                        .clone()
                        .application_name(&pool_application_name(generation)),
                );
                let now = self.epoch.elapsed().as_micros().min(u64::MAX as u128) as u64;
                self.switched_at.store(now, Ordering::Release);
            }
        } else if chosen.is_none() && state.primary.is_some() {
            tracing::warn!(shard = self.shard, "the shard has no writable node");
        }
        // A lost primary stays unknown until a node is writable again: readiness says so.
        state.primary = chosen;
        if chosen.is_some() {
            state.last_primary = chosen;
        }
    }
}

/// What one probe of a node saw.
struct Seen {
    /// The timeline of a node out of recovery; `None` for a node in recovery.
    timeline: Option<u32>,
    /// Out of recovery but holding new transactions read-only (fenced by its manager).
    read_only: bool,
    lsn: Option<u64>,
}

/// Whether the node accepts writes: out of recovery, and new transactions not read-only
/// (pg_auto_failover holds a freshly promoted node read-only until the old primary must
/// have demoted itself, and a draining primary too), as libpq's
/// `target_session_attrs=read-write` decides.
const WRITABLE_SQL: &str = "SELECT NOT pg_is_in_recovery() \
     AND current_setting('transaction_read_only') = 'off', current_setting('application_name')";

/// The application_name of the pool's connections opened for switch number `generation`.
fn pool_application_name(generation: u64) -> String {
    format!("fhirgate-{generation}")
}

const PROBE_SQL: &str = "SELECT pg_is_in_recovery() AS standby, \
     current_setting('transaction_read_only') = 'on' AS read_only, \
     CASE WHEN pg_is_in_recovery() THEN NULL \
          ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline, \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn";

async fn probe_node(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<Seen, String> {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(PgConnection::connect_with(options).await?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        let row = sqlx::query(PROBE_SQL).fetch_one(c).await?;
        let standby: bool = row.try_get("standby")?;
        let read_only: bool = row.try_get("read_only")?;
        let timeline: Option<i32> = row.try_get("timeline")?;
        let lsn: Option<String> = row.try_get("lsn")?;
        Ok::<_, sqlx::Error>(Seen {
            timeline: if standby {
                None
            } else {
                Some(timeline.unwrap_or_default().max(0) as u32)
            },
            read_only: !standby && read_only,
            lsn: lsn.as_deref().and_then(parse_lsn),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(seen)) => Ok(seen),
        Ok(Err(e)) => {
            *conn = None;
            Err(e.to_string())
        }
        Err(_) => {
            *conn = None;
            Err(format!("no answer within {} ms", timeout.as_millis()))
        }
    }
}

/// `16/B374D848` → its byte position.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u32::MAX as u64 && lo <= u32::MAX as u64).then_some((hi << 32) | lo)
}

/// Probes the shard's nodes, now and every interval, until the router is dropped or its
/// pool closed. Needs a Tokio runtime.
pub(crate) fn spawn_probe(router: &Arc<Router>, discovery: Discovery) {
    let mut conns: Vec<Option<PgConnection>> = router.nodes.iter().map(|_| None).collect();
    let weak: Weak<Router> = Arc::downgrade(router);
    tokio::spawn(async move {
        loop {
            let Some(router) = weak.upgrade() else { break };
            if router.pool.is_closed() {
                break;
            }
            router.probe(&mut conns, discovery.timeout).await;
            drop(router);
            tokio::time::sleep(discovery.interval).await;
        }
        for conn in conns.into_iter().flatten() {
            let _ = conn.close().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn lsn_text_is_a_byte_position() {
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_lsn("1/"), None);
        assert_eq!(parse_lsn("x"), None);
        assert_eq!(parse_lsn("100000000/0"), None);
    }
}
