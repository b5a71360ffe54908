//! `fhirgate up`: a local cluster (shards of a primary and standbys), migrations, the
//! development signing key, and the server, stopped together on Ctrl-C or SIGTERM.
//!
//! The launcher lives in `store::cluster`; only this module and the tests reach it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::cluster::autofailover::AutoFailoverCluster;
use store::cluster::{ClusterSpec, LocalCluster};
use store::{ShardConfig, StoreConfig};

use crate::{AppState, AuthConfig, GatewayConfig, Limits, TerminologyPolicy};

/// The database fhirgate uses on every shard of a local cluster.
pub const DATABASE: &str = "fhirgate";
/// The issuer of development tokens.
pub const DEV_ISSUER: &str = "fhirgate-dev";
/// The audience of development tokens.
pub const DEV_AUDIENCE: &str = "fhirgate";

/// Why `up` (or a command that needs the local cluster) failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The launcher failed.
    #[error(transparent)]
    Cluster(#[from] store::cluster::ClusterError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The terminology tables could not be loaded.
    #[error(transparent)]
    Terminology(#[from] terminology::TerminologyError),
    /// A file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An audit checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The command needs a running `fhirgate up` on this data folder.
    #[error("{0}")]
    NotRunning(String),
    /// Another `fhirgate up` serves this data folder.
    #[error("fhirgate up is already running on {dir} (pid {pid})")]
    AlreadyRunning {
        /// The data folder.
        dir: PathBuf,
        /// Its process.
        pid: u32,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpError {
    let what = what.into();
    move |source| UpError::Io { what, source }
}

/// Options of `fhirgate up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The data folder.
    pub data: PathBuf,
    /// Where to serve.
    pub listen: SocketAddr,
    /// The cluster's shape.
    pub spec: ClusterSpec,
    /// Run every shard under pg_auto_failover (automatic failover).
    pub ha: bool,
    /// Let reads go to standbys lagging at most this many bytes (or that have replayed the
    /// caller's `X-Consistency-Token`); `None`: all reads on the primaries.
    pub standby_max_lag: Option<u64>,
    /// Terminology tables to load.
    pub terminology: Option<PathBuf>,
    /// Request limits.
    pub limits: Limits,
    /// How codes are checked on write.
    pub terminology_policy: TerminologyPolicy,
    /// Crash tests only: abort at this point of every two-phase commit.
    pub crash_at: Option<store::CrashPoint>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How long a break-glass window stays open.
    pub break_glass_window: Duration,
    /// Where audit checkpoints go (default `DIR/audit-checkpoints`).
    pub checkpoint_dir: Option<PathBuf>,
    /// The key that signs them (default `DIR/secrets/audit-checkpoint.key`).
    pub checkpoint_key: Option<PathBuf>,
    /// How often a checkpoint is written.
    pub checkpoint_every: Duration,
    /// Production token settings; `None` runs development mode (an HS256 key in the data
    /// folder, tokens from `fhirgate token`).
    pub auth: Option<AuthConfig>,
}

/// What a running `up` publishes for other commands on the same data folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunFile {
    /// The `up` process.
    pub pid: u32,
    /// Where it serves.
    pub listen: String,
    /// The gateway role's URL of each shard's first node (its primary at start).
    pub shard_urls: Vec<String>,
    /// The gateway role's URLs of every node of each shard.
    #[serde(default)]
    pub shard_nodes: Vec<Vec<String>>,
}

fn run_file_path(data: &Path) -> PathBuf {
    data.join("secrets").join("run.json")
}

/// The running `up` on `data`, if any.
pub fn running(data: &Path) -> Option<RunFile> {
    let text = std::fs::read_to_string(run_file_path(data)).ok()?;
    let run: RunFile = serde_json::from_str(&text).ok()?;
    Path::new(&format!("/proc/{}", run.pid))
        .exists()
        .then_some(run)
}

/// The local cluster `up` runs: plain streaming replication (the default), or every shard
/// under pg_auto_failover (`--ha`), which promotes a secondary when a primary dies.
#[derive(Debug)]
pub enum Cluster {
    /// Primaries and standbys started by fhirgate's own launcher; nobody promotes.
    Plain(LocalCluster),
    /// A pg_auto_failover monitor and a formation per shard.
    AutoFailover(AutoFailoverCluster),
}

impl Cluster {
    /// The store configuration of database `db`: every node of every shard (the gateway
    /// finds each shard's primary itself).
    pub fn store_config(&self, db: &str) -> StoreConfig {
        match self {
            Cluster::Plain(c) => store_config(c, db),
            Cluster::AutoFailover(c) => StoreConfig {
                shards: c
                    .shards()
                    .iter()
                    .map(|s| ShardConfig {
                        nodes: s.nodes.iter().map(|n| c.app_url(n, db)).collect(),
                    })
                    .collect(),
                ..StoreConfig::default()
            },
        }
    }

    /// Applies the schema migrations to database `db` on every shard's primary.
    pub async fn migrate(&self, db: &str) -> Result<(), UpError> {
        match self {
            Cluster::Plain(c) => migrate(c, db).await,
            Cluster::AutoFailover(c) => {
                let mut urls = Vec::new();
                for shard in 0..c.shards().len() {
                    let primary = tokio::task::block_in_place(|| c.primary_of(shard))?;
                    urls.push(c.superuser_url(&primary, db));
                }
                store::migrate(&urls).await?;
                Ok(())
            }
        }
    }

    /// The number of shards.
    pub fn n_shards(&self) -> usize {
        match self {
            Cluster::Plain(c) => c.shards().len(),
            Cluster::AutoFailover(c) => c.shards().len(),
        }
    }
}

/// The store configuration of a local cluster's database `db`.
pub fn store_config(cluster: &LocalCluster, db: &str) -> StoreConfig {
    StoreConfig {
        shards: cluster
            .shards()
            .iter()
            .map(|s| ShardConfig {
                nodes: std::iter::once(&s.primary)
                    .chain(&s.standbys)
                    .map(|n| cluster.app_url(n, db))
                    .collect(),
            })
            .collect(),
        ..StoreConfig::default()
    }
}

/// Applies the schema migrations to database `db` on every shard of a local cluster.
pub async fn migrate(cluster: &LocalCluster, db: &str) -> Result<(), UpError> {
    let urls: Vec<String> = cluster
        .shards()
        .iter()
        .map(|s| cluster.superuser_url(&s.primary, db))
        .collect();
    store::migrate(&urls).await?;
    Ok(())
}

/// The development token settings of a data folder (creating the key if asked).
pub fn dev_auth(data: &Path, create: bool) -> Result<AuthConfig, UpError> {
    let key = crate::auth::dev_key(data, create).map_err(io(format!(
        "reading the development signing key {}",
        crate::auth::dev_key_path(data).display()
    )))?;
    Ok(AuthConfig::dev(DEV_ISSUER, DEV_AUDIENCE, key))
}

/// Starts the local cluster under `data` (blocking work runs off the async threads):
/// under pg_auto_failover if `ha`, or if the folder already holds such a cluster.
pub async fn start_cluster(data: &Path, spec: &ClusterSpec, ha: bool) -> Result<Cluster, UpError> {
    let data = data.to_owned();
    let spec = *spec;
    let ha = ha || data.join("autofailover.json").exists();
    tokio::task::spawn_blocking(move || {
        if ha {
            AutoFailoverCluster::start(&data, &spec).map(Cluster::AutoFailover)
        } else {
            LocalCluster::start(&data, &spec).map(Cluster::Plain)
        }
    })
    .await
    .map_err(|e| UpError::Io {
        what: "starting the cluster".into(),
        source: std::io::Error::other(e.to_string()),
    })?
    .map_err(UpError::from)
}

/// Stops a local cluster (blocking work runs off the async threads).
pub async fn stop_cluster(cluster: Cluster) {
    let stopped = tokio::task::spawn_blocking(move || match cluster {
        Cluster::Plain(mut c) => c.stop(),
        Cluster::AutoFailover(c) => c.stop(),
    })
    .await;
    match stopped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "stopping the cluster failed"),
        Err(e) => tracing::error!(error = %e, "stopping the cluster panicked"),
    }
}

/// Runs `fhirgate up` until Ctrl-C or SIGTERM, then stops everything it started.
pub async fn run(options: UpOptions) -> Result<(), UpError> {
    if let Some(run) = running(&options.data) {
        return Err(UpError::AlreadyRunning {
            dir: options.data.clone(),
            pid: run.pid,
        });
    }
    std::fs::create_dir_all(&options.data).map_err(io(format!(
        "creating the data folder {}",
        options.data.display()
    )))?;
    let terminology = match &options.terminology {
        Some(dir) => terminology::Terminology::load_dir(dir)?,
        None => terminology::Terminology::empty(),
    };
    // Said at start-up because such a setting has no effect: codes of a system without a
    // table are never checked.
    for system in options.terminology_policy.per_system.keys() {
        if !terminology.is_loaded(system) {
            tracing::warn!(
                %system,
                "--code-check names a system whose table is not loaded; its codes are not checked"
            );
        }
    }
    let auth = match &options.auth {
        Some(auth) => auth.clone(),
        None => dev_auth(&options.data, true)?,
    };
    let cluster = start_cluster(&options.data, &options.spec, options.ha).await?;
    if options.auth.is_none() {
        tracing::warn!(
            "development mode: tokens are HS256 with the key in the data folder; give --jwks or --jwt-key in production"
        );
    }
    let result = serve_on(&options, &cluster, auth, terminology).await;
    stop_cluster(cluster).await;
    let _ = std::fs::remove_file(run_file_path(&options.data));
    result
}

async fn serve_on(
    options: &UpOptions,
    cluster: &Cluster,
    auth: AuthConfig,
    terminology: terminology::Terminology,
) -> Result<(), UpError> {
    cluster.migrate(DATABASE).await?;
    let mut config = cluster.store_config(DATABASE);
    config.crash_at = options.crash_at;
    config.standby_max_lag = options.standby_max_lag;
    let store = store::Store::connect(&config)?;
    // Transactions a crashed gateway left prepared are settled before serving, and then
    // periodically (those of another gateway still deciding are left for a grace period).
    let recovered = store.recover_in_doubt(Duration::ZERO).await?;
    if recovered != store::Recovered::default() {
        println!(
            "recovered in-doubt transactions: {} committed, {} rolled back",
            recovered.committed, recovered.rolled_back
        );
    }
    store.spawn_recovery(Duration::from_secs(10), Duration::from_secs(60));
    let checkpoints = checkpoints(
        &options.data,
        options.checkpoint_dir.as_deref(),
        options.checkpoint_key.as_deref(),
        true,
    )?;
    checkpoints
        .clone()
        .spawn(store.clone(), options.checkpoint_every);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(io(format!("listening on {}", options.listen)))?;
    let local = listener
        .local_addr()
        .map_err(io("reading the listen address"))?;
    let run = RunFile {
        pid: std::process::id(),
        listen: local.to_string(),
        shard_urls: config
            .shards
            .iter()
            .filter_map(|s| s.nodes.first().cloned())
            .collect(),
        shard_nodes: config.shards.iter().map(|s| s.nodes.clone()).collect(),
    };
    write_private(
        &run_file_path(&options.data),
        &serde_json::to_vec_pretty(&run).unwrap_or_default(),
    )?;
    let state = AppState {
        store: store.clone(),
        config: Arc::new(GatewayConfig {
            limits: options.limits,
            auth,
            base_url: None,
            terminology_policy: options.terminology_policy.clone(),
            trusted_proxies: options.trusted_proxies.clone(),
            break_glass_window: options.break_glass_window,
        }),
        terminology: Arc::new(terminology),
        answered: Default::default(),
    };
    println!(
        "fhirgate serving http://{local}/fhir ({} shards × {} standby{}, data in {})",
        cluster.n_shards(),
        options.spec.n_standbys,
        if matches!(cluster, Cluster::AutoFailover(_)) {
            ", automatic failover by pg_auto_failover"
        } else {
            ""
        },
        options.data.display()
    );
    crate::serve(listener, state, shutdown_signal())
        .await
        .map_err(io("serving"))?;
    if let Err(e) = checkpoints.write(&store).await {
        tracing::error!(error = %e, "the last audit checkpoint");
    }
    store.close().await;
    println!("fhirgate stopping");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), UpError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    file.write_all(bytes)
        .map_err(io(format!("writing {}", path.display())))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// The audit checkpoints of a data folder, at the given or the default places.
pub fn checkpoints(
    data: &Path,
    dir: Option<&Path>,
    key: Option<&Path>,
    create: bool,
) -> Result<crate::checkpoint::Checkpoints, UpError> {
    let dir = dir.map_or_else(|| data.join("audit-checkpoints"), Path::to_owned);
    let key = key.map_or_else(
        || data.join("secrets").join("audit-checkpoint.key"),
        Path::to_owned,
    );
    Ok(crate::checkpoint::Checkpoints::open(&dir, &key, create)?)
}

/// Runs `work` on the data folder's store: through the running `up` when there is one, else
/// by starting the cluster for it and stopping it after.
async fn with_store<T>(
    data: &Path,
    work: impl AsyncFnOnce(&store::Store) -> Result<T, UpError>,
) -> Result<T, UpError> {
    if let Some(run) = running(data) {
        let store = store::Store::connect(&StoreConfig {
            shards: if run.shard_nodes.is_empty() {
                run.shard_urls.iter().map(ShardConfig::single).collect()
            } else {
                run.shard_nodes
                    .iter()
                    .map(|nodes| ShardConfig {
                        nodes: nodes.clone(),
                    })
                    .collect()
            },
            max_connections: 2,
            ..StoreConfig::default()
        })?;
        // Shards added since `up` started are in shard 0's directory.
        if let Err(e) = store.refresh_map().await {
            tracing::warn!(error = %e, "reading the shard map");
        }
        let result = work(&store).await;
        store.close().await;
        return result;
    }
    let cluster = start_cluster(data, &ClusterSpec::default(), false).await?;
    let result = async {
        cluster.migrate(DATABASE).await?;
        let store = store::Store::connect(&cluster.store_config(DATABASE))?;
        let result = work(&store).await;
        store.close().await;
        result
    }
    .await;
    stop_cluster(cluster).await;
    result
}

/// Verifies every audit chain of the data folder's cluster, then the latest checkpoint.
pub async fn audit_verify(
    data: &Path,
    checkpoints: &crate::checkpoint::Checkpoints,
) -> Result<Result<(u64, crate::checkpoint::Verdict), store::BrokenLink>, UpError> {
    with_store(data, async |store| {
        let n = match store.verify_audit().await? {
            Ok(n) => n,
            Err(broken) => return Ok(Err(broken)),
        };
        Ok(match checkpoints.verify(store).await? {
            crate::checkpoint::Verdict::Broken(broken) => Err(broken),
            verdict => Ok((n, verdict)),
        })
    })
    .await
}

/// Every shard's nodes, their roles and lag, as a fresh probe sees them.
pub async fn shards_status(data: &Path) -> Result<Vec<store::nodes::ShardStatus>, UpError> {
    with_store(data, async |store| {
        // The probe runs at connect and then every interval: wait for a full round.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline
            && store.topology().iter().any(|s| {
                s.nodes
                    .iter()
                    .any(|n| n.error.as_deref() == Some("not probed yet"))
            })
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(store.topology())
    })
    .await
}

/// `fhirgate shards add`: builds a new shard (primary and standbys) in the data folder's
/// running cluster, migrates it, registers it on shard 0 and moves its even share of the
/// buckets to it while the gateway serves (`store::rebalance`). The running `fhirgate up`
/// follows the map by itself and stops the new nodes with the others.
pub async fn shards_add(
    data: &Path,
    options: store::rebalance::MoveOptions,
) -> Result<store::rebalance::MoveReport, UpError> {
    if running(data).is_none() {
        return Err(UpError::NotRunning(format!(
            "no fhirgate up serves {}: start it first (the move runs online, with the gateway following the shard map)",
            data.display()
        )));
    }
    if data.join("autofailover.json").exists() {
        return Err(UpError::NotRunning(
            "shards add does not yet build pg_auto_failover formations; it works on the plain local cluster".into(),
        ));
    }
    let dir = data.to_owned();
    let (cluster, added) = tokio::task::spawn_blocking(move || {
        let mut cluster = LocalCluster::attach(&dir)?;
        let added = cluster.add_shard(&[])?;
        Ok::<_, store::cluster::ClusterError>((cluster, added))
    })
    .await
    .map_err(|e| UpError::Io {
        what: "adding a shard".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    store::migrate(&[cluster.superuser_url(&added.primary, DATABASE)]).await?;
    let owners: Vec<String> = cluster
        .shards()
        .iter()
        .map(|s| cluster.superuser_url(&s.primary, DATABASE))
        .collect();
    let public: Vec<String> = std::iter::once(&added.primary)
        .chain(&added.standbys)
        .map(|n| format!("postgres://127.0.0.1:{}/{DATABASE}", n.port))
        .collect();
    Ok(store::rebalance::Mover::new(owners, options)
        .add_shard(&public)
        .await?)
}

/// Every audit record made under break-glass, oldest first.
pub async fn audit_break_glass(data: &Path) -> Result<Vec<store::audit::StoredAudit>, UpError> {
    with_store(data, async |store| Ok(store.break_glass_records().await?)).await
}
