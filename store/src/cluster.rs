//! Local cluster launcher: sharded, streaming-replicated PostgreSQL on the loopback interface.
//!
//! [`LocalCluster::start`] builds (first run) or restarts (later runs) a set of PostgreSQL
//! instances under one directory, for `fhirgate up` and for test harnesses. Each shard is one
//! primary and `n_standbys` standbys fed by streaming replication, synchronous (`ANY 1`) by
//! default. Everything is blocking and uses `std::process` only.
//!
//! Layout of the cluster directory `DIR`:
//!
//! ```text
//! DIR/cluster.json                 format version, spec, shard and node names, data dirs
//!                                  (relative to DIR, so DIR can be moved)
//! DIR/pg/shard{i}-primary/         data directory of shard i's primary
//! DIR/pg/shard{i}-standby{j}/      data directory of its standby j (j from 1)
//! DIR/logs/{node}.log              server log of each node (appended by pg_ctl -l)
//! DIR/secrets/                     mode 0700
//! DIR/secrets/superuser_password   password of `postgres` (also initdb's --pwfile), 0600
//! DIR/secrets/app_password         password of `fhirgate_app`, 0600
//! DIR/secrets/pgpass               libpq passfile for both roles, 0600
//! ```
//!
//! When the launcher runs as root, `pg/`, `logs/` and `secrets/` belong to the `postgres`
//! OS user and every PostgreSQL program runs as that user (PostgreSQL refuses to run as root).
//!
//! Per-node settings (port, `cluster_name`, `primary_conninfo`, `synchronous_standby_names`,
//! durability) go on the `pg_ctl -o` command line, never into `postgresql.conf`, because
//! `pg_basebackup` and `pg_rewind` copy the configuration files from node to node. Command-line
//! settings take precedence over `postgresql.conf` and `ALTER SYSTEM`. Ports are chosen afresh
//! at every start. Nodes listen on 127.0.0.1 only, without Unix sockets.
//!
//! On a restart the spec stored in `cluster.json` is used. A requested spec with a different
//! topology (`n_shards` or `n_standbys`) is an error; a different `synchronous` or `durable`
//! is logged as a warning and ignored.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

pub mod autofailover;

/// Version of the `cluster.json` format written by this launcher.
pub const FORMAT_VERSION: u32 = 1;
/// The PostgreSQL superuser role (and, when running as root, the OS user running PostgreSQL).
pub const SUPERUSER: &str = "postgres";
/// The login role the gateway uses.
pub const APP_ROLE: &str = "fhirgate_app";
/// The database created on every shard primary at start.
pub const DEFAULT_DATABASE: &str = "fhirgate";
/// Environment variable naming the directory of the PostgreSQL binaries.
pub const PG_BIN_ENV: &str = "FHIRGATE_PG_BIN";

/// Programs the launcher needs in the PostgreSQL binary directory.
const TOOLS: [&str; 4] = ["initdb", "pg_ctl", "pg_basebackup", "psql"];
/// Upper bound of every `pg_ctl` wait, in seconds (passed as `-t`).
const PG_CTL_WAIT_SECS: u64 = 60;
/// How long the standbys may take to stream after start.
const STREAMING_WAIT: Duration = Duration::from_secs(60);
/// Bound of one psql run.
const PSQL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of initdb and pg_basebackup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Attempts to start a node when its freshly chosen port turns out to be taken.
const PORT_ATTEMPTS: usize = 5;
/// Length of generated passwords (characters from `[A-Za-z0-9]`).
const PASSWORD_LEN: usize = 32;

/// What to build: the number of shards and standbys, and the replication and durability mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Number of shards, each a primary with its standbys (default 2).
    pub n_shards: usize,
    /// Standbys per shard (default 1).
    pub n_standbys: usize,
    /// Synchronous replication: the primary waits for `ANY 1` of its standbys at commit
    /// (default true; no effect without standbys).
    pub synchronous: bool,
    /// Crash-safe storage (default true). `false` sets `fsync=off` and `full_page_writes=off`
    /// and skips the syncs of initdb and pg_basebackup, for fast tests; `synchronous_commit`
    /// stays `on`, so synchronous replication keeps its meaning (a commit waits for a standby).
    pub durable: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            n_shards: 2,
            n_standbys: 1,
            synchronous: true,
            durable: true,
        }
    }
}

/// One PostgreSQL instance of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node name, also its `cluster_name` and replication `application_name`
    /// (`shard0-primary`, `shard0-standby1`, ...).
    pub name: String,
    /// The loopback TCP port it listens on in this run.
    pub port: u16,
    /// Its data directory (absolute).
    pub data_dir: PathBuf,
}

/// The nodes of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNodes {
    /// Shard name (`shard0`, `shard1`, ...).
    pub name: String,
    /// The primary.
    pub primary: Node,
    /// The standbys, streaming from the primary.
    pub standbys: Vec<Node>,
}

/// Why the launcher failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "postgresql server binaries not found (no initdb in $FHIRGATE_PG_BIN, /usr/lib/postgresql/*/bin or PATH): install them with `apt-get install postgresql`"
    )]
    PostgresMissing,
    /// A file system or process-spawning operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file, directory or program concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL program exited unsuccessfully.
    #[error("{what} failed ({status}): {stderr_tail}")]
    Command {
        /// What was run, e.g. `initdb of shard0-primary`.
        what: String,
        /// How it ended.
        status: String,
        /// The end of its error output (and of the server log, for `pg_ctl start`).
        stderr_tail: String,
    },
    /// A bounded wait ran out.
    #[error("timed out {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// The OS user running PostgreSQL cannot reach the cluster directory.
    #[error(
        "the {user} user cannot traverse {}: grant it search permission (e.g. `chmod o+x {}`) or use a directory outside it",
        path.display(),
        path.display()
    )]
    NotAccessible {
        /// The first directory on the way that it cannot enter.
        path: PathBuf,
        /// The OS user.
        user: String,
    },
    /// A database name outside `[a-z_][a-z0-9_]{0,62}`.
    #[error(
        "invalid database name {0:?}: use 1-63 characters from [a-z0-9_], not starting with a digit"
    )]
    InvalidName(String),
    /// The directory, spec or environment is unusable as it stands.
    #[error("{0}")]
    BadState(String),
}

type Result<T, E = ClusterError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The OS identity PostgreSQL programs run as when the launcher runs as root.
#[derive(Debug, Clone)]
struct RunAs {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Everything the node operations need; immutable after start.
#[derive(Debug)]
struct Ctx {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<RunAs>,
    spec: ClusterSpec,
    superuser_password: String,
    app_password: String,
}

impl Ctx {
    fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB` for a node.
    fn url(&self, user: &str, password: &str, node: &Node, db: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", node.port)
    }

    fn pgpass(&self) -> PathBuf {
        self.secrets().join("pgpass")
    }

    fn log_file(&self, node: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{node}.log"))
    }

    /// A command for a PostgreSQL program, as the right OS user, with a clean libpq
    /// environment.
    fn pg_command(&self, program: &str) -> Command {
        self.tool_command(&self.bin.join(program))
    }

    /// A command for any program of the PostgreSQL OS user (e.g. `pg_autoctl`), as that
    /// user, with a clean libpq environment.
    fn tool_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("LC_ALL", "C")
            .env("PGPASSFILE", self.pgpass())
            .env("PGCONNECT_TIMEOUT", "10");
        if let Some(r) = &self.run_as {
            cmd.uid(r.uid)
                .gid(r.gid)
                .env("HOME", &r.home)
                .env("USER", SUPERUSER)
                .env("LOGNAME", SUPERUSER);
        }
        cmd
    }

    /// Files and directories handed to the PostgreSQL OS user when running as root.
    fn give(&self, path: &Path) -> Result<()> {
        if let Some(r) = &self.run_as {
            std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid)).map_err(io_err(path))?;
        }
        Ok(())
    }

    /// `-o` options of `pg_ctl start` for a node (shell syntax: pg_ctl runs them through
    /// `/bin/sh`).
    fn node_options(&self, node: &Node, role: &Role<'_>) -> Result<String> {
        // 200 connections: a gateway's pools (32 per shard, standby-read pools, probes) and an
        // operator's tools (a mover, `audit verify`, the bench's raw pools) at once.
        let mut o = format!(
            "-p {} -c cluster_name={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c wal_log_hints=on -c wal_keep_size=256MB -c synchronous_commit=on \
             -c max_prepared_transactions=128 -c max_connections=200 -c wal_retrieve_retry_interval=500ms",
            node.port, node.name
        );
        if !self.spec.durable {
            o.push_str(" -c fsync=off -c full_page_writes=off");
        }
        match role {
            Role::Primary { standby_names } => {
                let names = if self.spec.synchronous && !standby_names.is_empty() {
                    let quoted: Vec<String> =
                        standby_names.iter().map(|n| format!("\"{n}\"")).collect();
                    format!("ANY 1 ({})", quoted.join(", "))
                } else {
                    String::new()
                };
                o.push_str(" -c ");
                o.push_str(&shell_quote(&format!("synchronous_standby_names={names}")));
            }
            Role::Standby { primary_port } => {
                let pgpass = self.pgpass();
                let pgpass = path_str(&pgpass)?;
                let conninfo = format!(
                    "host=127.0.0.1 port={primary_port} user={SUPERUSER} application_name={} passfile={}",
                    node.name,
                    conninfo_quote(pgpass)
                );
                o.push_str(" -c ");
                o.push_str(&shell_quote(&format!("primary_conninfo={conninfo}")));
            }
        }
        Ok(o)
    }
}

/// The part a node plays in its shard, for its start options.
enum Role<'a> {
    Primary { standby_names: &'a [String] },
    Standby { primary_port: u16 },
}

/// A running (or stopped) local cluster. Dropping it stops every node that is still running.
#[derive(Debug)]
pub struct LocalCluster {
    ctx: Ctx,
    shards: Vec<ShardNodes>,
    stopped: AtomicBool,
}

/// What `cluster.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    spec: ClusterSpec,
    shards: Vec<ManifestShard>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestShard {
    name: String,
    primary: ManifestNode,
    standbys: Vec<ManifestNode>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestNode {
    name: String,
    /// Relative to the cluster directory.
    data_dir: String,
}

impl LocalCluster {
    /// Starts the cluster in `dir`: builds it on first use (empty or missing directory), else
    /// restarts the one described by `dir/cluster.json` with its data, on new ports. Returns
    /// once every node runs, every standby streams, and each primary has the role
    /// [`APP_ROLE`] and the database [`DEFAULT_DATABASE`].
    pub fn start(dir: &Path, spec: &ClusterSpec) -> Result<LocalCluster> {
        validate_spec(spec)?;
        let bin = find_pg_bin()?;
        let run_as = if effective_uid() == Some(0) {
            Some(lookup_user(SUPERUSER)?.ok_or_else(|| {
                ClusterError::BadState(format!(
                    "running as root but there is no `{SUPERUSER}` user in /etc/passwd to run postgresql as: install it with `apt-get install postgresql`"
                ))
            })?)
        } else {
            None
        };
        let created = !dir.exists();
        if let Some(r) = &run_as {
            // Before creating anything: the deepest existing ancestor must be reachable.
            let abs = std::path::absolute(dir).map_err(io_err(dir))?;
            if let Some(existing) = abs.ancestors().find(|a| a.exists()) {
                let existing = fs::canonicalize(existing).map_err(io_err(existing))?;
                check_traversable(&existing, r)?;
            }
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
        if created && run_as.is_some() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err(&dir))?;
        }
        let dir_str = path_str(&dir)?;
        if dir_str
            .chars()
            .any(|c| matches!(c, '"' | '$' | '`' | '\\') || c.is_control())
        {
            return Err(ClusterError::BadState(format!(
                "cluster directory {dir_str} contains a character pg_ctl cannot quote (\", $, `, \\ or a control character): use another directory"
            )));
        }
        if let Some(r) = &run_as {
            check_traversable(&dir, r)?;
        }
        if dir.join("cluster.json").exists() {
            Self::restart(dir, bin, run_as, spec)
        } else {
            Self::create(dir, bin, run_as, spec)
        }
    }

    fn create(
        dir: PathBuf,
        bin: PathBuf,
        run_as: Option<RunAs>,
        spec: &ClusterSpec,
    ) -> Result<LocalCluster> {
        let pg = dir.join("pg");
        if pg.exists() && fs::read_dir(&pg).map_err(io_err(&pg))?.next().is_some() {
            return Err(ClusterError::BadState(format!(
                "{} is not empty but {} is missing: not a cluster directory of this launcher; remove it or use another directory",
                pg.display(),
                dir.join("cluster.json").display()
            )));
        }
        tracing::info!(dir = %dir.display(), ?spec, "creating local postgresql cluster");
        let ctx = Ctx {
            dir,
            bin,
            run_as,
            spec: *spec,
            superuser_password: generate_password(),
            app_password: generate_password(),
        };
        prepare_dirs(&ctx)?;
        write_secret(&ctx, "superuser_password", &ctx.superuser_password)?;
        write_secret(&ctx, "app_password", &ctx.app_password)?;
        write_pgpass(&ctx)?;
        let mut shards = Vec::with_capacity(spec.n_shards);
        for i in 0..spec.n_shards {
            let node = |role: String| Node {
                data_dir: ctx.dir.join("pg").join(format!("shard{i}-{role}")),
                name: format!("shard{i}-{role}"),
                port: 0,
            };
            shards.push(ShardNodes {
                name: format!("shard{i}"),
                primary: node("primary".into()),
                standbys: (1..=spec.n_standbys)
                    .map(|j| node(format!("standby{j}")))
                    .collect(),
            });
        }
        let mut cluster = LocalCluster {
            ctx,
            shards,
            stopped: AtomicBool::new(false),
        };
        if let Err(e) = cluster.start_all(true) {
            // Nothing of this half-built cluster is worth keeping but its logs.
            if let Err(stop) = cluster.stop() {
                tracing::warn!(error = %stop, "stopping a half-built cluster");
            }
            for sub in ["pg", "secrets"] {
                let path = cluster.ctx.dir.join(sub);
                if let Err(rm) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %rm, "removing a half-built cluster");
                }
            }
            return Err(e);
        }
        cluster.write_manifest()?;
        cluster.finish_start()?;
        Ok(cluster)
    }

    fn restart(
        dir: PathBuf,
        bin: PathBuf,
        run_as: Option<RunAs>,
        requested: &ClusterSpec,
    ) -> Result<LocalCluster> {
        let (ctx, shards) = Self::load(dir, bin, run_as)?;
        let spec = ctx.spec;
        if spec.n_shards < requested.n_shards || spec.n_standbys != requested.n_standbys {
            return Err(ClusterError::BadState(format!(
                "{} holds {} shard(s) with {} standby(s) each but {} with {} were requested: use another directory or remove this one",
                ctx.dir.display(),
                spec.n_shards,
                spec.n_standbys,
                requested.n_shards,
                requested.n_standbys
            )));
        }
        if spec != *requested {
            tracing::warn!(stored = ?spec, ?requested, "cluster.json holds another spec (shards added by `fhirgate shards add`?); the stored one is used");
        }
        tracing::info!(dir = %ctx.dir.display(), ?spec, "restarting local postgresql cluster");
        prepare_dirs(&ctx)?;
        write_pgpass(&ctx)?;
        let mut cluster = LocalCluster {
            ctx,
            shards,
            stopped: AtomicBool::new(false),
        };
        cluster.start_all(false)?;
        cluster.finish_start()?;
        Ok(cluster)
    }

    /// Reads a cluster directory: its manifest, passwords and nodes (ports unknown: 0).
    fn load(dir: PathBuf, bin: PathBuf, run_as: Option<RunAs>) -> Result<(Ctx, Vec<ShardNodes>)> {
        let path = dir.join("cluster.json");
        let manifest: Manifest = read_manifest(&path)?;
        check_format(&path, manifest.format_version, FORMAT_VERSION)?;
        let spec = manifest.spec;
        if manifest.shards.len() != spec.n_shards
            || manifest
                .shards
                .iter()
                .any(|s| s.standbys.len() != spec.n_standbys)
        {
            return Err(ClusterError::BadState(format!(
                "{} does not match its own spec",
                path.display()
            )));
        }
        let ctx = Ctx {
            superuser_password: read_password(&dir, "superuser_password")?,
            app_password: read_password(&dir, "app_password")?,
            dir,
            bin,
            run_as,
            spec,
        };
        let node = |m: &ManifestNode| -> Result<Node> {
            let rel = Path::new(&m.data_dir);
            let data_dir = ctx.dir.join(rel);
            if rel.is_absolute() || !data_dir.join("PG_VERSION").is_file() {
                return Err(ClusterError::BadState(format!(
                    "data directory {} of {} is missing",
                    data_dir.display(),
                    m.name
                )));
            }
            Ok(Node {
                name: m.name.clone(),
                port: 0,
                data_dir,
            })
        };
        let mut shards = Vec::new();
        for s in &manifest.shards {
            shards.push(ShardNodes {
                name: s.name.clone(),
                primary: node(&s.primary)?,
                standbys: s.standbys.iter().map(node).collect::<Result<_>>()?,
            });
        }
        Ok((ctx, shards))
    }

    /// The cluster in `dir` as another process (`fhirgate up`) runs it: every node must be
    /// running (its port is read from its `postmaster.pid`). The handle never stops the
    /// nodes; it can add a shard ([`LocalCluster::add_shard`]), which the running process
    /// stops with the others.
    pub fn attach(dir: &Path) -> Result<LocalCluster> {
        let bin = find_pg_bin()?;
        let run_as = if effective_uid() == Some(0) {
            lookup_user(SUPERUSER)?
        } else {
            None
        };
        let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
        let (ctx, mut shards) = Self::load(dir, bin, run_as)?;
        for shard in &mut shards {
            for node in std::iter::once(&mut shard.primary).chain(shard.standbys.iter_mut()) {
                node.port = running_port(&node.data_dir).ok_or_else(|| {
                    ClusterError::BadState(format!(
                        "{} is not running: start the cluster (`fhirgate up`) first",
                        node.name
                    ))
                })?;
            }
        }
        Ok(LocalCluster {
            ctx,
            shards,
            stopped: AtomicBool::new(true),
        })
    }

    /// Adds a shard (a primary and the spec's standbys, built and started now) to the
    /// cluster, with the application role and the databases `databases` (and the default
    /// one), and records it in `cluster.json`. Returns the new shard. Its schema and its
    /// share of the data are the caller's business ([`crate::rebalance`]).
    pub fn add_shard(&mut self, databases: &[String]) -> Result<ShardNodes> {
        let i = self.shards.len();
        let ctx = &self.ctx;
        let node = |role: String| Node {
            data_dir: ctx.dir.join("pg").join(format!("shard{i}-{role}")),
            name: format!("shard{i}-{role}"),
            port: 0,
        };
        let mut shard = ShardNodes {
            name: format!("shard{i}"),
            primary: node("primary".into()),
            standbys: (1..=ctx.spec.n_standbys)
                .map(|j| node(format!("standby{j}")))
                .collect(),
        };
        for n in std::iter::once(&shard.primary).chain(&shard.standbys) {
            if n.data_dir.exists() {
                return Err(ClusterError::BadState(format!(
                    "{} exists already: a shard was half added; remove it and retry",
                    n.data_dir.display()
                )));
            }
        }
        let mut ports = free_ports(1 + shard.standbys.len())?.into_iter();
        for n in std::iter::once(&mut shard.primary).chain(shard.standbys.iter_mut()) {
            n.port = ports
                .next()
                .ok_or_else(|| ClusterError::BadState("fewer free ports than nodes".into()))?;
        }
        tracing::info!(shard = %shard.name, "adding a shard");
        start_shard(ctx, &mut shard, true)?;
        self.shards.push(shard.clone());
        self.ctx.spec.n_shards = self.shards.len();
        self.write_manifest()?;
        self.wait_streaming()?;
        self.ensure_app_role()?;
        self.create_database(DEFAULT_DATABASE)?;
        for db in databases {
            self.create_database(db)?;
        }
        Ok(shard)
    }

    /// Picks ports and starts every shard (in parallel), building the nodes first if `init`.
    fn start_all(&mut self, init: bool) -> Result<()> {
        let n_nodes = self.shards.len() * (1 + self.ctx.spec.n_standbys);
        let mut ports = free_ports(n_nodes)?.into_iter();
        for shard in &mut self.shards {
            for node in std::iter::once(&mut shard.primary).chain(shard.standbys.iter_mut()) {
                node.port = ports
                    .next()
                    .ok_or_else(|| ClusterError::BadState("fewer free ports than nodes".into()))?;
            }
        }
        let ctx = &self.ctx;
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .shards
                .iter_mut()
                .map(|shard| scope.spawn(move || start_shard(ctx, shard, init)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ClusterError::BadState(
                            "a shard start thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// Waits for replication, then creates the role and database. On error the nodes keep
    /// running until the cluster is dropped.
    fn finish_start(&self) -> Result<()> {
        self.wait_streaming()?;
        self.ensure_app_role()?;
        self.create_database(DEFAULT_DATABASE)?;
        tracing::info!(shards = ?self.shards, "local postgresql cluster ready");
        Ok(())
    }

    fn write_manifest(&self) -> Result<()> {
        let rel = |n: &Node| ManifestNode {
            name: n.name.clone(),
            data_dir: n
                .data_dir
                .strip_prefix(&self.ctx.dir)
                .unwrap_or(&n.data_dir)
                .to_string_lossy()
                .into_owned(),
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            spec: self.ctx.spec,
            shards: self
                .shards
                .iter()
                .map(|s| ManifestShard {
                    name: s.name.clone(),
                    primary: rel(&s.primary),
                    standbys: s.standbys.iter().map(rel).collect(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| ClusterError::BadState(format!("cannot encode cluster.json: {e}")))?;
        let tmp = self.ctx.dir.join("cluster.json.tmp");
        fs::write(&tmp, text + "\n").map_err(io_err(&tmp))?;
        let path = self.ctx.dir.join("cluster.json");
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Waits (at most 60 s in all) until every primary sees all its standbys streaming.
    fn wait_streaming(&self) -> Result<()> {
        let deadline = Instant::now() + STREAMING_WAIT;
        let sql = "select count(*) from pg_stat_replication where state = 'streaming'";
        for shard in self.shards.iter().filter(|s| !s.standbys.is_empty()) {
            let want = shard.standbys.len();
            let mut last = String::from("no answer yet");
            // Bounded by the deadline; the count bounds it too should the clock misbehave.
            for _ in 0..2_000 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match psql_run(
                    &self.ctx,
                    shard.primary.port,
                    "postgres",
                    sql,
                    left.min(PSQL_TIMEOUT),
                ) {
                    Ok(out) if out.trim().parse::<usize>().is_ok_and(|n| n >= want) => {
                        last.clear();
                        break;
                    }
                    Ok(out) => last = format!("{} streaming", out.trim()),
                    Err(e) => last = e.to_string(),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !last.is_empty() {
                return Err(ClusterError::Timeout {
                    what: format!(
                        "waiting for the {want} standby(s) of {} to stream (last: {last}); see {}",
                        shard.name,
                        self.ctx.dir.join("logs").display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Creates or updates the application role on every primary.
    fn ensure_app_role(&self) -> Result<()> {
        let sql = app_role_sql(&self.ctx.app_password);
        for shard in &self.shards {
            psql_run(
                &self.ctx,
                shard.primary.port,
                "postgres",
                &sql,
                PSQL_TIMEOUT,
            )?;
        }
        Ok(())
    }

    /// The directory of the cluster (absolute).
    pub fn dir(&self) -> &Path {
        &self.ctx.dir
    }

    /// The spec in force (the one stored in `cluster.json`).
    pub fn spec(&self) -> &ClusterSpec {
        &self.ctx.spec
    }

    /// The shards, in shard order.
    pub fn shards(&self) -> &[ShardNodes] {
        &self.shards
    }

    /// The server log of a node.
    pub fn log_file(&self, node: &Node) -> PathBuf {
        self.ctx.log_file(&node.name)
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB` for a node (passwords are
    /// alphanumeric, so nothing needs encoding).
    pub fn superuser_url(&self, node: &Node, db: &str) -> String {
        self.ctx
            .url(SUPERUSER, &self.ctx.superuser_password, node, db)
    }

    /// `postgres://fhirgate_app:PASSWORD@127.0.0.1:PORT/DB` for a node.
    pub fn app_url(&self, node: &Node, db: &str) -> String {
        self.ctx.url(APP_ROLE, &self.ctx.app_password, node, db)
    }

    /// Creates database `db` (owned by `postgres`) on every shard primary if it does not
    /// exist, and grants [`APP_ROLE`] `CONNECT` and `TEMP` on it and `USAGE` on its schema
    /// `public`. Table privileges are the schema migrations' business.
    pub fn create_database(&self, db: &str) -> Result<()> {
        let sql = create_database_sql(db)?;
        for shard in &self.shards {
            psql_run(
                &self.ctx,
                shard.primary.port,
                "postgres",
                &sql,
                PSQL_TIMEOUT,
            )?;
        }
        Ok(())
    }

    /// Runs SQL with psql as `postgres` on a node and returns its unaligned, tuples-only
    /// output (`-At`; rows on lines, columns separated by `|`), without the final newline.
    /// Stops at the first error. Bounded to 30 s.
    pub fn psql(&self, node: &Node, db: &str, sql: &str) -> Result<String> {
        validate_db_name(db)?;
        psql_run(&self.ctx, node.port, db, sql, PSQL_TIMEOUT)
    }

    /// The postmaster PID of a node, read from its `postmaster.pid`; `None` when that file
    /// is absent (node stopped cleanly). After a crash the file may name a dead process.
    pub fn node_pid(&self, node: &Node) -> Option<u32> {
        read_postmaster_pid(&node.data_dir)
    }

    /// Stops one node (`pg_ctl stop -m fast`, escalating to `-m immediate` if that fails).
    /// Stopping a node that does not run is not an error.
    pub fn stop_node(&self, node: &Node) -> Result<()> {
        stop_node(&self.ctx, node)
    }

    /// Kills one node as a host crash would: SIGKILL to its postmaster and every child at
    /// once (fault-injection tests). Killing a node that does not run is not an error.
    pub fn kill_node(&self, node: &Node) -> Result<()> {
        let PostmasterState::Ours(pid) = postmaster_state(&node.data_dir) else {
            return Ok(());
        };
        if pid == 0 {
            return Err(ClusterError::BadState(format!(
                "{} is starting or stopping; its postmaster.pid is unreadable",
                node.name
            )));
        }
        let mut pids = children_of(pid);
        pids.push(pid);
        tracing::warn!(node = %node.name, ?pids, "kill -9");
        // All at once, like a host crash (no `unsafe` here: the workspace denies it).
        let mut cmd = Command::new("kill");
        cmd.arg("-KILL").args(pids.iter().map(u32::to_string));
        let what = format!("kill -KILL of {}", node.name);
        // Some children may have exited meanwhile: kill then exits non-zero, which is fine.
        run_bounded(cmd, &what, None, PSQL_TIMEOUT)?;
        // Bounded wait until the postmaster is gone (or a zombie nobody reaps).
        for _ in 0..200 {
            if !matches!(process_state(pid), Some(c) if c != 'Z' && c != 'X') {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(ClusterError::Timeout {
            what: format!("waiting for the killed postmaster of {} to exit", node.name),
        })
    }

    /// Promotes a standby to a primary (`pg_ctl promote -w`), as an HA manager or an
    /// operator would after the primary was lost.
    pub fn promote_node(&self, node: &Node) -> Result<()> {
        let mut cmd = self.ctx.pg_command("pg_ctl");
        cmd.args(["promote", "-w", "-t", &PG_CTL_WAIT_SECS.to_string(), "-D"])
            .arg(&node.data_dir);
        let what = format!("pg_ctl promote of {}", node.name);
        checked(
            run_bounded(cmd, &what, None, Duration::from_secs(PG_CTL_WAIT_SECS + 15))?,
            &what,
        )
        .map(drop)
    }

    /// Starts one node of this cluster again, on the port it had, with its usual settings;
    /// a node that already runs is left alone.
    pub fn start_node(&self, node: &Node) -> Result<()> {
        let (shard, is_primary) = self
            .shards
            .iter()
            .find_map(|s| {
                if s.primary.name == node.name {
                    Some((s, true))
                } else if s.standbys.iter().any(|n| n.name == node.name) {
                    Some((s, false))
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                ClusterError::BadState(format!("{} is not a node of this cluster", node.name))
            })?;
        let node = if is_primary {
            &shard.primary
        } else {
            shard
                .standbys
                .iter()
                .find(|n| n.name == node.name)
                .ok_or_else(|| ClusterError::BadState(format!("{} vanished", node.name)))?
        };
        if matches!(postmaster_state(&node.data_dir), PostmasterState::Ours(_)) {
            return Ok(());
        }
        let names: Vec<String> = shard.standbys.iter().map(|n| n.name.clone()).collect();
        let role = if is_primary {
            Role::Primary {
                standby_names: &names,
            }
        } else {
            Role::Standby {
                primary_port: shard.primary.port,
            }
        };
        let options = self.ctx.node_options(node, &role)?;
        if pg_ctl_start(&self.ctx, node, &options)? {
            self.stopped.store(false, Ordering::SeqCst);
            Ok(())
        } else {
            Err(ClusterError::BadState(format!(
                "port {} of {} is taken by another process",
                node.port, node.name
            )))
        }
    }

    /// Stops every node, primaries first, then standbys; each stop is bounded in time. Every
    /// node is attempted; the first error is returned. Afterwards no postmaster of this
    /// cluster runs (unless an error says otherwise).
    pub fn stop(&mut self) -> Result<()> {
        self.stopped.store(true, Ordering::SeqCst);
        // Shards another process added (`fhirgate shards add`) are stopped too.
        if let Ok((_, on_disk)) = Self::load(
            self.ctx.dir.clone(),
            self.ctx.bin.clone(),
            self.ctx.run_as.clone(),
        ) && on_disk.len() > self.shards.len()
        {
            let known = self.shards.len();
            self.shards.extend(on_disk.into_iter().skip(known));
        }
        let mut first_error = None;
        let nodes = self
            .shards
            .iter()
            .map(|s| &s.primary)
            .chain(self.shards.iter().flat_map(|s| s.standbys.iter()));
        for node in nodes {
            if let Err(e) = stop_node(&self.ctx, node) {
                tracing::warn!(node = %node.name, error = %e, "stopping node");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::SeqCst)
            && let Err(e) = self.stop()
        {
            tracing::warn!(error = %e, dir = %self.ctx.dir.display(), "stopping local cluster on drop");
        }
    }
}

/// The port a running postmaster of `data_dir` listens on (line 4 of `postmaster.pid`).
fn running_port(data_dir: &Path) -> Option<u16> {
    if !matches!(postmaster_state(data_dir), PostmasterState::Ours(_)) {
        return None;
    }
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().nth(3)?.trim().parse().ok()
}

/// Builds (if `init`) and starts the nodes of one shard: primary first, then its standbys.
fn start_shard(ctx: &Ctx, shard: &mut ShardNodes, init: bool) -> Result<()> {
    if init {
        initdb(ctx, &shard.primary)?;
    }
    let names: Vec<String> = shard.standbys.iter().map(|n| n.name.clone()).collect();
    start_with_retry(
        ctx,
        &mut shard.primary,
        &Role::Primary {
            standby_names: &names,
        },
    )?;
    let primary_port = shard.primary.port;
    for standby in &mut shard.standbys {
        if init {
            basebackup(ctx, standby, primary_port)?;
        }
        start_with_retry(ctx, standby, &Role::Standby { primary_port })?;
    }
    Ok(())
}

fn initdb(ctx: &Ctx, node: &Node) -> Result<()> {
    tracing::info!(node = %node.name, "initdb");
    let mut cmd = ctx.pg_command("initdb");
    cmd.arg("-D")
        .arg(&node.data_dir)
        .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--data-checksums"])
        .args(["-E", "UTF8", "--locale=C"])
        .arg(format!(
            "--pwfile={}",
            path_str(&ctx.secrets().join("superuser_password"))?
        ));
    if !ctx.spec.durable {
        cmd.arg("--no-sync");
    }
    let what = format!("initdb of {}", node.name);
    checked(run_bounded(cmd, &what, None, SETUP_TIMEOUT)?, &what).map(drop)
}

fn basebackup(ctx: &Ctx, node: &Node, primary_port: u16) -> Result<()> {
    tracing::info!(node = %node.name, "pg_basebackup");
    let mut cmd = ctx.pg_command("pg_basebackup");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &primary_port.to_string(),
        "-U",
        SUPERUSER,
    ])
    .arg("-D")
    .arg(&node.data_dir)
    .args(["-X", "stream", "-R", "-c", "fast", "-w"]);
    if !ctx.spec.durable {
        cmd.arg("--no-sync");
    }
    let what = format!("pg_basebackup of {}", node.name);
    checked(run_bounded(cmd, &what, None, SETUP_TIMEOUT)?, &what).map(drop)
}

/// Starts a node, moving it to another free port when postgres cannot bind the chosen one.
fn start_with_retry(ctx: &Ctx, node: &mut Node, role: &Role<'_>) -> Result<()> {
    stop_leftover(ctx, node)?;
    for attempt in 1..=PORT_ATTEMPTS {
        let options = ctx.node_options(node, role)?;
        if pg_ctl_start(ctx, node, &options)? {
            return Ok(());
        }
        tracing::warn!(node = %node.name, port = node.port, attempt, "port taken, trying another");
        node.port = free_ports(1)?
            .first()
            .copied()
            .ok_or_else(|| ClusterError::BadState("no free port".into()))?;
    }
    Err(ClusterError::BadState(format!(
        "{} could not bind a port in {PORT_ATTEMPTS} attempts; see {}",
        node.name,
        ctx.log_file(&node.name).display()
    )))
}

/// `pg_ctl start -w`; `Ok(false)` when postgres failed only because its port was taken.
fn pg_ctl_start(ctx: &Ctx, node: &Node, options: &str) -> Result<bool> {
    tracing::info!(node = %node.name, port = node.port, "pg_ctl start");
    let log = ctx.log_file(&node.name);
    let offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut cmd = ctx.pg_command("pg_ctl");
    cmd.args(["start", "-w", "-t", &PG_CTL_WAIT_SECS.to_string(), "-D"])
        .arg(&node.data_dir)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(options);
    let what = format!("pg_ctl start of {} on port {}", node.name, node.port);
    let out = run_bounded(cmd, &what, None, Duration::from_secs(PG_CTL_WAIT_SECS + 15))?;
    if out.status.success() {
        return Ok(true);
    }
    let log_tail = read_from(&log, offset);
    if log_tail.contains("could not bind") || log_tail.contains("could not create any TCP/IP") {
        return Ok(false);
    }
    Err(ClusterError::Command {
        what,
        status: out.status.to_string(),
        stderr_tail: tail(&format!("{}\n{}", out.stderr.trim(), log_tail.trim())),
    })
}

/// Stops a postmaster left running on this data directory by an earlier run; removes a
/// `postmaster.pid` naming some unrelated process.
fn stop_leftover(ctx: &Ctx, node: &Node) -> Result<()> {
    match postmaster_state(&node.data_dir) {
        PostmasterState::None | PostmasterState::Gone(_) => Ok(()),
        PostmasterState::Ours(pid) => {
            tracing::warn!(node = %node.name, pid, "a postmaster from an earlier run is still running; stopping it");
            stop_node(ctx, node)
        }
        PostmasterState::Zombie(pid) | PostmasterState::Foreign(pid) => {
            // Removing the file also removes postgres' own check that no orphaned backend
            // still uses the old shared memory, so make that check here.
            let orphans = processes_in(&node.data_dir);
            if !orphans.is_empty() {
                return Err(ClusterError::BadState(format!(
                    "the postmaster of {} (pid {pid}) is dead but processes {orphans:?} still work in {}: stop them before starting the cluster",
                    node.name,
                    node.data_dir.display()
                )));
            }
            let pidfile = node.data_dir.join("postmaster.pid");
            tracing::warn!(node = %node.name, pid, "postmaster.pid names a dead or unrelated process; removing the stale file");
            fs::remove_file(&pidfile).map_err(io_err(&pidfile))
        }
    }
}

fn stop_node(ctx: &Ctx, node: &Node) -> Result<()> {
    if matches!(
        postmaster_state(&node.data_dir),
        PostmasterState::None
            | PostmasterState::Gone(_)
            | PostmasterState::Zombie(_)
            | PostmasterState::Foreign(_)
    ) {
        return Ok(());
    }
    let mut last = None;
    for mode in ["fast", "immediate"] {
        tracing::info!(node = %node.name, mode, "pg_ctl stop");
        let mut cmd = ctx.pg_command("pg_ctl");
        cmd.args([
            "stop",
            "-w",
            "-t",
            &PG_CTL_WAIT_SECS.to_string(),
            "-m",
            mode,
            "-D",
        ])
        .arg(&node.data_dir);
        let what = format!("pg_ctl stop -m {mode} of {}", node.name);
        match run_bounded(cmd, &what, None, Duration::from_secs(PG_CTL_WAIT_SECS + 15))
            .and_then(|out| checked(out, &what))
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                if !matches!(postmaster_state(&node.data_dir), PostmasterState::Ours(_)) {
                    return Ok(());
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ClusterError::BadState(format!("{} did not stop", node.name))))
}

/// What a data directory's `postmaster.pid` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostmasterState {
    /// No `postmaster.pid`.
    None,
    /// It names a process that no longer exists: postgres itself replaces such a file (after
    /// checking that no old backend still uses the shared memory it names).
    Gone(u32),
    /// It names a zombie (a killed postmaster nobody reaped, e.g. under a container init that
    /// does not reap): postgres would take it for a running server.
    Zombie(u32),
    /// It names a live postgres process working in this data directory (or one we cannot
    /// inspect, which pg_ctl then deals with).
    Ours(u32),
    /// It names a live process that is not this directory's postmaster (PID reused).
    Foreign(u32),
}

fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn postmaster_state(data_dir: &Path) -> PostmasterState {
    let Some(pid) = read_postmaster_pid(data_dir) else {
        return if data_dir.join("postmaster.pid").exists() {
            // Being written right now, or garbage: let pg_ctl judge.
            PostmasterState::Ours(0)
        } else {
            PostmasterState::None
        };
    };
    match process_state(pid) {
        None => return PostmasterState::Gone(pid),
        Some('Z' | 'X') => return PostmasterState::Zombie(pid),
        Some(_) => {}
    }
    // A postmaster works in its data directory (it chdirs there at start).
    let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
    let ours = fs::canonicalize(data_dir);
    match (cwd, ours) {
        (Ok(cwd), Ok(ours)) if cwd == ours => PostmasterState::Ours(pid),
        (Ok(_), Ok(_)) => PostmasterState::Foreign(pid),
        _ => PostmasterState::Ours(pid),
    }
}

/// The PIDs whose parent is `parent` (from `/proc/*/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// The state letter of a process (`R`, `S`, `Z`, ...), `None` if it does not exist.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

/// Whether a process exists and is not a zombie.
fn pid_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// Live processes working in a data directory (a postmaster and its backends chdir there).
fn processes_in(data_dir: &Path) -> Vec<u32> {
    let Ok(target) = fs::canonicalize(data_dir) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == target)
                && pid_alive(pid)
        })
        .collect()
}

fn psql_run(ctx: &Ctx, port: u16, db: &str, sql: &str, timeout: Duration) -> Result<String> {
    let mut cmd = ctx.pg_command("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
        ])
        .args(["-f", "-"]);
    let what = format!("psql on port {port}");
    let out = checked(
        run_bounded(cmd, &what, Some(sql.to_owned()), timeout)?,
        &what,
    )?;
    Ok(out.stdout.trim_end_matches('\n').to_owned())
}

/// Output of a finished child.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a command with piped output, killing it (it is our own child) after `timeout`.
fn run_bounded(
    mut cmd: Command,
    what: &str,
    input: Option<String>,
    timeout: Duration,
) -> Result<Finished> {
    let program = PathBuf::from(cmd.get_program());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(io_err(&program))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            // A child that exits early closes the pipe; its exit status tells the story.
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let stdout = spawn_reader(child.stdout.take());
    let stderr = spawn_reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io_err(&program))? {
            break status;
        }
        if Instant::now() >= deadline {
            if let Err(e) = child.kill() {
                tracing::warn!(error = %e, what, "killing a timed-out child");
            }
            // Reaps it; SIGKILL cannot be ignored.
            let _ = child.wait();
            return Err(ClusterError::Timeout {
                what: format!("after {} s: {what}", timeout.as_secs()),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    Ok(Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// The output of a reader thread; a grandchild holding the pipe open does not block us
/// for more than 2 s.
fn collect(rx: mpsc::Receiver<Vec<u8>>) -> String {
    rx.recv_timeout(Duration::from_secs(2))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn checked(out: Finished, what: &str) -> Result<Finished> {
    if out.status.success() {
        return Ok(out);
    }
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    Err(ClusterError::Command {
        what: what.to_owned(),
        status: out.status.to_string(),
        stderr_tail: tail(text),
    })
}

/// The last lines of a text, at most about 3000 bytes.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut out = lines[lines.len().saturating_sub(20)..].join("\n");
    if out.len() > 3000 {
        let mut cut = out.len() - 3000;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_owned();
    }
    out
}

fn read_from(path: &Path, offset: u64) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// `n` distinct free loopback ports: all listeners are held until every port is known.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let l = TcpListener::bind(("127.0.0.1", 0)).map_err(io_err(Path::new("127.0.0.1:0")))?;
        let port = l
            .local_addr()
            .map_err(io_err(Path::new("127.0.0.1:0")))?
            .port();
        ports.push(port);
        listeners.push(l);
    }
    Ok(ports)
}

/// Creates `pg/`, `logs/` and `secrets/` with the right owner and modes.
fn prepare_dirs(ctx: &Ctx) -> Result<()> {
    for (sub, mode) in [("pg", 0o700), ("logs", 0o750), ("secrets", 0o700)] {
        let path = ctx.dir.join(sub);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_err(&path))?;
        ctx.give(&path)?;
    }
    Ok(())
}

fn write_secret(ctx: &Ctx, name: &str, content: &str) -> Result<()> {
    let path = ctx.secrets().join(name);
    // Remove first so that the mode of a new file applies.
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(content.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .map_err(io_err(&path))?;
    ctx.give(&path)
}

/// A cluster directory's manifest (`cluster.json`, `autofailover.json`).
fn read_manifest<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text)
        .map_err(|e| ClusterError::BadState(format!("{} is unreadable: {e}", path.display())))
}

/// Refuses a manifest of another format version than `wanted`.
fn check_format(path: &Path, found: u32, wanted: u32) -> Result<()> {
    if found == wanted {
        return Ok(());
    }
    Err(ClusterError::BadState(format!(
        "{} has format version {found}, this launcher reads version {wanted}",
        path.display()
    )))
}

/// A generated password kept in `DIR/secrets/{name}`.
fn read_password(dir: &Path, name: &str) -> Result<String> {
    let p = dir.join("secrets").join(name);
    let s = fs::read_to_string(&p).map_err(io_err(&p))?;
    let s = s.trim().to_owned();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ClusterError::BadState(format!(
            "{} does not hold a password",
            p.display()
        )));
    }
    Ok(s)
}

fn write_pgpass(ctx: &Ctx) -> Result<()> {
    let text = format!(
        "127.0.0.1:*:*:{SUPERUSER}:{}\n127.0.0.1:*:*:{APP_ROLE}:{}",
        ctx.superuser_password, ctx.app_password
    );
    write_secret(ctx, "pgpass", &text)
}

fn generate_password() -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

fn validate_spec(spec: &ClusterSpec) -> Result<()> {
    if !(1..=64).contains(&spec.n_shards) {
        return Err(ClusterError::BadState(format!(
            "n_shards must be between 1 and 64, not {}",
            spec.n_shards
        )));
    }
    // max_wal_senders is 10: a standby uses one, pg_basebackup -X stream two.
    if spec.n_standbys > 8 {
        return Err(ClusterError::BadState(format!(
            "n_standbys must be at most 8, not {}",
            spec.n_standbys
        )));
    }
    Ok(())
}

/// psql script: database `db` owned by `postgres`, usable by [`APP_ROLE`].
fn create_database_sql(db: &str) -> Result<String> {
    validate_db_name(db)?;
    Ok(format!(
        "SELECT 'CREATE DATABASE {db} OWNER {SUPERUSER}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{db}') \\gexec\n\
         GRANT CONNECT, TEMP ON DATABASE {db} TO {APP_ROLE};\n\
         \\connect {db}\n\
         GRANT USAGE ON SCHEMA public TO {APP_ROLE};\n"
    ))
}

/// psql script: the application role, created or updated, with `password`.
fn app_role_sql(password: &str) -> String {
    format!(
        "SELECT 'CREATE ROLE {APP_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec\n\
         ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{password}';\n"
    )
}

fn validate_db_name(db: &str) -> Result<()> {
    let mut chars = db.chars();
    let ok = db.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::InvalidName(db.to_owned()))
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        ClusterError::BadState(format!("path {} is not valid UTF-8", path.display()))
    })
}

/// Single-quotes a word for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Quotes a libpq conninfo value when it needs it.
fn conninfo_quote(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\']) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The PostgreSQL binary directory: `$FHIRGATE_PG_BIN`, else the highest
/// `/usr/lib/postgresql/*/bin` holding `initdb`, else the directory of `initdb` on `PATH`.
fn find_pg_bin() -> Result<PathBuf> {
    let chosen = if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !is_executable(&dir.join("initdb")) {
            return Err(ClusterError::BadState(format!(
                "{PG_BIN_ENV}={} holds no initdb: point it at a postgresql bin directory or unset it",
                dir.display()
            )));
        }
        dir
    } else if let Some(dir) = debian_pg_bin() {
        dir
    } else if let Some(dir) = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| is_executable(&d.join("initdb"))))
    {
        dir
    } else {
        return Err(ClusterError::PostgresMissing);
    };
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !is_executable(&chosen.join(t)))
        .collect();
    if !missing.is_empty() {
        return Err(ClusterError::BadState(format!(
            "{} lacks {}: install the postgresql and postgresql-client packages (`apt-get install postgresql`)",
            chosen.display(),
            missing.join(", ")
        )));
    }
    Ok(chosen)
}

fn debian_pg_bin() -> Option<PathBuf> {
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: Vec<u64> = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// The effective UID, from `/proc/self/status` (no `unsafe` needed).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Looks a user up in `/etc/passwd`.
fn lookup_user(name: &str) -> Result<Option<RunAs>> {
    let path = Path::new("/etc/passwd");
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    Ok(text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(RunAs {
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
        })
    }))
}

/// Checks that `who` (its UID and primary GID: the children get no supplementary groups)
/// can enter every directory from `/` down to `dir`.
fn check_traversable(dir: &Path, who: &RunAs) -> Result<()> {
    let mut path = PathBuf::new();
    for component in dir.components() {
        path.push(component);
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        let mode = meta.mode();
        let bits = if meta.uid() == who.uid {
            mode >> 6
        } else if meta.gid() == who.gid {
            mode >> 3
        } else {
            mode
        };
        if bits & 1 == 0 {
            return Err(ClusterError::NotAccessible {
                path,
                user: SUPERUSER.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system temp dir, removed on drop (after the cluster, which is
    /// declared later and so dropped first).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let suffix: String = rand::rng()
                .sample_iter(&rand::distr::Alphanumeric)
                .take(10)
                .map(char::from)
                .collect();
            TempDir(std::env::temp_dir().join(format!("fhirgate-cluster-test-{suffix}")))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(15);
        for _ in 0..300 {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn helpers_quote_and_validate() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(conninfo_quote("/tmp/x/pgpass"), "/tmp/x/pgpass");
        assert_eq!(conninfo_quote("/tmp/a b/it's"), "'/tmp/a b/it\\'s'");
        assert!(validate_db_name("fhirgate_t1").is_ok());
        assert!(validate_db_name("1abc").is_err());
        assert!(validate_db_name("a-b").is_err());
        assert!(validate_db_name("").is_err());
        assert!(validate_db_name(&"a".repeat(64)).is_err());
        let p = generate_password();
        assert_eq!(p.len(), PASSWORD_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(ClusterError::PostgresMissing.to_string().lines().count(), 1);
        assert!(
            ClusterError::PostgresMissing
                .to_string()
                .contains("apt-get install postgresql")
        );
    }

    #[test]
    fn node_moves_to_another_port_when_its_port_is_taken() {
        let tmp = TempDir::new();
        let spec = ClusterSpec {
            n_shards: 1,
            n_standbys: 0,
            synchronous: true,
            durable: false,
        };
        let mut cluster = LocalCluster::start(&tmp.0, &spec).expect("start");
        assert_eq!(
            cluster
                .psql(
                    &cluster.shards()[0].primary,
                    "postgres",
                    "show synchronous_standby_names"
                )
                .expect("psql"),
            "",
            "no standby, no synchronous replication"
        );
        cluster.stop().expect("stop");
        let taken = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let taken_port = taken.local_addr().expect("addr").port();
        let mut node = cluster.shards()[0].primary.clone();
        node.port = taken_port;
        start_with_retry(
            &cluster.ctx,
            &mut node,
            &Role::Primary { standby_names: &[] },
        )
        .expect("start on another port");
        assert_ne!(node.port, taken_port);
        cluster.shards[0].primary = node.clone();
        assert_eq!(
            cluster.psql(&node, "postgres", "select 1").expect("psql"),
            "1"
        );
        let pid = cluster.node_pid(&node).expect("pid");
        cluster.stop().expect("stop again");
        poll("the postmaster to exit", || (!pid_alive(pid)).then_some(()));
        drop(taken);
    }

    #[test]
    fn cluster_replicates_stops_and_restarts() {
        let t0 = Instant::now();
        let tmp = TempDir::new();
        let spec = ClusterSpec {
            n_shards: 2,
            n_standbys: 1,
            synchronous: true,
            durable: false,
        };
        let mut cluster = LocalCluster::start(&tmp.0, &spec).expect("first start");
        eprintln!("first start: {:?}", t0.elapsed());
        assert_eq!(cluster.shards().len(), 2);
        let mut ports: Vec<u16> = cluster
            .shards()
            .iter()
            .flat_map(|s| std::iter::once(s.primary.port).chain(s.standbys.iter().map(|n| n.port)))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4, "every node has its own port");
        assert!(tmp.0.join("cluster.json").is_file());
        let secrets_mode = fs::metadata(tmp.0.join("secrets")).expect("secrets").mode() & 0o777;
        assert_eq!(secrets_mode, 0o700);
        let pgpass_mode = fs::metadata(tmp.0.join("secrets/pgpass"))
            .expect("pgpass")
            .mode()
            & 0o777;
        assert_eq!(pgpass_mode, 0o600);

        let shard0 = cluster.shards()[0].clone();
        let (primary, standby) = (&shard0.primary, &shard0.standbys[0]);
        assert_eq!(
            cluster.app_url(primary, "fhirgate"),
            format!(
                "postgres://fhirgate_app:{}@127.0.0.1:{}/fhirgate",
                cluster.ctx.app_password, primary.port
            )
        );
        // The commit waits for the synchronous standby.
        cluster
            .psql(
                primary,
                "fhirgate",
                "create table t(id int primary key, v text); insert into t values (1, 'hello')",
            )
            .expect("create and insert on shard0's primary");
        let seen = poll("the row on the standby", || {
            cluster
                .psql(standby, "fhirgate", "select v from t where id = 1")
                .ok()
                .filter(|v| !v.is_empty())
        });
        assert_eq!(seen, "hello");
        assert_eq!(
            cluster
                .psql(standby, "postgres", "select pg_is_in_recovery()")
                .expect("standby answers"),
            "t"
        );
        for shard in cluster.shards() {
            let rep = cluster
                .psql(
                    &shard.primary,
                    "postgres",
                    "select application_name, state, sync_state from pg_stat_replication",
                )
                .expect("pg_stat_replication");
            let expected_name = &shard.standbys[0].name;
            assert!(
                rep == format!("{expected_name}|streaming|quorum")
                    || rep == format!("{expected_name}|streaming|sync"),
                "{}: {rep}",
                shard.name
            );
            let role = cluster
                .psql(
                    &shard.primary,
                    "fhirgate",
                    "select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = 'fhirgate_app'",
                )
                .expect("role");
            assert_eq!(role, "t|f|f|f");
        }
        cluster
            .create_database("per_test_db")
            .expect("create_database");
        cluster
            .create_database("per_test_db")
            .expect("create_database again");
        for shard in cluster.shards() {
            let can = cluster
                .psql(
                    &shard.primary,
                    "per_test_db",
                    "select has_database_privilege('fhirgate_app', 'per_test_db', 'CONNECT'), \
                     has_schema_privilege('fhirgate_app', 'public', 'USAGE'), \
                     has_schema_privilege('fhirgate_app', 'public', 'CREATE')",
                )
                .expect("privileges");
            assert_eq!(can, "t|t|f");
        }

        let pids: Vec<u32> = cluster
            .shards()
            .iter()
            .flat_map(|s| std::iter::once(&s.primary).chain(&s.standbys))
            .map(|n| cluster.node_pid(n).expect("running node has a pid"))
            .collect();
        assert!(pids.iter().all(|&p| pid_alive(p)));
        cluster.stop().expect("stop");
        for &pid in &pids {
            poll("the postmaster to exit", || (!pid_alive(pid)).then_some(()));
        }
        for shard in cluster.shards() {
            assert_eq!(cluster.node_pid(&shard.primary), None);
        }
        drop(cluster);
        eprintln!("stopped: {:?}", t0.elapsed());

        let mut again = LocalCluster::start(&tmp.0, &spec).expect("restart");
        eprintln!("restarted: {:?}", t0.elapsed());
        let shard0 = again.shards()[0].clone();
        assert_eq!(shard0.primary.data_dir, primary.data_dir);
        for node in [&shard0.primary, &shard0.standbys[0]] {
            let v = poll("the row after restart", || {
                again
                    .psql(node, "fhirgate", "select v from t where id = 1")
                    .ok()
                    .filter(|v| !v.is_empty())
            });
            assert_eq!(v, "hello", "{}", node.name);
        }
        let restart_pids: Vec<u32> = again
            .shards()
            .iter()
            .map(|s| again.node_pid(&s.primary).expect("pid"))
            .collect();
        again.stop().expect("second stop");
        for &pid in &restart_pids {
            poll("the postmaster to exit", || (!pid_alive(pid)).then_some(()));
        }
        eprintln!("done: {:?}", t0.elapsed());
    }
}
