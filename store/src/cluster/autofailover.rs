//! Highly available local clusters: every shard under pg_auto_failover (Debian's
//! `postgresql-15-auto-failover` and `pg-auto-failover-cli`), which detects a lost primary
//! and promotes a secondary by itself. fhirgate never promotes a node; the gateway only
//! follows (`store::nodes`).
//!
//! One monitor for the whole cluster, one formation per shard (`shard0`, `shard1`, ...), a
//! primary and `n_standbys` secondaries in each, synchronous replication (pg_auto_failover's
//! default: `ANY 1` of the secondaries). Timeouts are tuned as `ha-recipe.md` §2.2 measured
//! (a node death is noticed in ~5 s, the old primary is given 10 s to demote itself, and a
//! keeper that lost the monitor and its standbys demotes itself after 5 s: below the 10 s,
//! so two primaries never accept writes at once).
//!
//! Layout of the cluster directory `DIR` (beside [`super`]'s files):
//!
//! ```text
//! DIR/autofailover.json      format version, spec, the monitor's and every node's name,
//!                            port and data directory (ports are fixed at creation: the
//!                            monitor knows every node by host:port)
//! DIR/pg/monitor/            the monitor's data directory
//! DIR/pg/shard{i}-node{j}/   node j of shard i (node 0 was the first primary)
//! DIR/xdg/                   pg_autoctl's own configuration, state and pid files
//! DIR/logs/{name}.log        output of each `pg_autoctl run` (keeper and postgres)
//! ```
//!
//! Connections are `trust` on 127.0.0.1 (pg_autoctl's `--auth trust`): this launcher is for
//! development and tests on one machine; production runs CloudNativePG (helm chart) or
//! pg_auto_failover with `--auth scram-sha-256` and TLS.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    APP_ROLE, ClusterError, ClusterSpec, Ctx, DEFAULT_DATABASE, Node, PSQL_TIMEOUT, Result,
    SUPERUSER, app_role_sql, check_format, check_traversable, checked, children_of,
    create_database_sql, effective_uid, find_pg_bin, free_ports, generate_password, io_err,
    lookup_user, postmaster_state, prepare_dirs, process_state, psql_run, read_manifest,
    read_password, run_bounded, validate_db_name, write_pgpass, write_secret,
};

const FORMAT_VERSION: u32 = 1;
/// Bound of one pg_autoctl command (create, perform, show).
const AUTOCTL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a formation may take to reach primary + secondaries.
const HEALTHY_WAIT: Duration = Duration::from_secs(180);
/// The monitor's settings (`ha-recipe.md` §2.2, tuned timeouts).
const MONITOR_SETTINGS: [(&str, &str); 5] = [
    ("pgautofailover.health_check_period", "1000"),
    ("pgautofailover.health_check_retry_delay", "500"),
    ("pgautofailover.health_check_timeout", "1000"),
    ("pgautofailover.node_considered_unhealthy_timeout", "5000"),
    ("pgautofailover.primary_demote_timeout", "10000"),
];
/// Below `primary_demote_timeout` (10 s), else split brain is possible.
const NETWORK_PARTITION_TIMEOUT_SECS: &str = "5";

/// One shard: its formation and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoFailoverShard {
    /// Shard name, also its formation (`shard0`, ...).
    pub name: String,
    /// Every node; which one is the primary changes (see [`AutoFailoverCluster::primary_of`]).
    pub nodes: Vec<Node>,
}

/// A node as the monitor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeState {
    /// Node name.
    #[serde(rename = "nodename")]
    pub name: String,
    /// Its port.
    #[serde(rename = "nodeport")]
    pub port: u16,
    /// The state its keeper reported (`primary`, `secondary`, `wait_primary`, ...).
    #[serde(rename = "current_group_state")]
    pub reported: String,
    /// The state the monitor assigned.
    #[serde(rename = "assigned_group_state")]
    pub assigned: String,
}

/// A running pg_auto_failover cluster. Dropping it stops every process it started.
#[derive(Debug)]
pub struct AutoFailoverCluster {
    ctx: Ctx,
    autoctl: PathBuf,
    monitor: Node,
    shards: Vec<AutoFailoverShard>,
    /// `pg_autoctl run` processes we started, by node name.
    keepers: Mutex<Vec<(String, Child)>>,
    stopped: AtomicBool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    spec: ClusterSpec,
    monitor: ManifestNode,
    shards: Vec<ManifestShard>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestShard {
    name: String,
    nodes: Vec<ManifestNode>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestNode {
    name: String,
    port: u16,
    /// Relative to the cluster directory.
    data_dir: String,
}

/// `pg_autoctl` on `PATH` (Debian installs it in `/usr/bin`).
fn find_autoctl() -> Result<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("pg_autoctl"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            ClusterError::BadState(
                "pg_autoctl not found: install it with `apt-get install postgresql-15-auto-failover pg-auto-failover-cli` (./dev prereqs --ha does)"
                    .into(),
            )
        })
}

impl AutoFailoverCluster {
    /// Starts the cluster in `dir`: builds it on first use, else runs the one described by
    /// `dir/autofailover.json` again (same ports). Returns once every formation has a
    /// primary and all its secondaries, and each primary has [`APP_ROLE`] and
    /// [`DEFAULT_DATABASE`].
    pub fn start(dir: &Path, spec: &ClusterSpec) -> Result<AutoFailoverCluster> {
        super::validate_spec(spec)?;
        if spec.n_standbys == 0 {
            return Err(ClusterError::BadState(
                "a highly available shard needs at least one standby".into(),
            ));
        }
        let bin = find_pg_bin()?;
        let autoctl = find_autoctl()?;
        let run_as = if effective_uid() == Some(0) {
            Some(lookup_user(SUPERUSER)?.ok_or_else(|| {
                ClusterError::BadState(format!(
                    "running as root but there is no `{SUPERUSER}` user to run postgresql as"
                ))
            })?)
        } else {
            None
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
        if let Some(r) = &run_as {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_err(&dir))?;
            check_traversable(&dir, r)?;
        }
        if dir.join("cluster.json").exists() {
            return Err(ClusterError::BadState(format!(
                "{} holds a cluster without automatic failover: use another directory for --ha",
                dir.display()
            )));
        }
        let manifest_path = dir.join("autofailover.json");
        let existing = manifest_path.exists();
        let (ctx, monitor, shards) = if existing {
            Self::load(&dir, bin, run_as, spec)?
        } else {
            let ctx = Ctx {
                dir,
                bin,
                run_as,
                spec: *spec,
                superuser_password: generate_password(),
                app_password: generate_password(),
            };
            let ports = free_ports(1 + spec.n_shards * (1 + spec.n_standbys))?;
            let node = |name: String, port: u16| Node {
                data_dir: ctx.dir.join("pg").join(&name),
                name,
                port,
            };
            let mut ports = ports.into_iter();
            let mut next = || {
                ports
                    .next()
                    .ok_or_else(|| ClusterError::BadState("fewer free ports than nodes".into()))
            };
            let monitor = node("monitor".into(), next()?);
            let mut shards = Vec::new();
            for i in 0..spec.n_shards {
                let mut nodes = Vec::new();
                for j in 0..=spec.n_standbys {
                    nodes.push(node(format!("shard{i}-node{j}"), next()?));
                }
                shards.push(AutoFailoverShard {
                    name: format!("shard{i}"),
                    nodes,
                });
            }
            (ctx, monitor, shards)
        };
        let cluster = AutoFailoverCluster {
            ctx,
            autoctl,
            monitor,
            shards,
            keepers: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        };
        prepare_dirs(&cluster.ctx)?;
        cluster.prepare_xdg()?;
        if existing {
            cluster.run_all()?;
        } else {
            write_secret(
                &cluster.ctx,
                "superuser_password",
                &cluster.ctx.superuser_password,
            )?;
            write_secret(&cluster.ctx, "app_password", &cluster.ctx.app_password)?;
            write_pgpass(&cluster.ctx)?;
            cluster.create_all()?;
            cluster.write_manifest()?;
        }
        for shard in 0..cluster.shards.len() {
            cluster.wait_healthy(shard, HEALTHY_WAIT)?;
        }
        for shard in 0..cluster.shards.len() {
            // On a restart the monitor's states are the ones from before the stop: wait
            // until the primary serves and its standbys stream again.
            let primary = cluster.wait_serving(shard, HEALTHY_WAIT)?;
            psql_run(
                &cluster.ctx,
                primary.port,
                "postgres",
                &app_role_sql(&cluster.ctx.app_password),
                PSQL_TIMEOUT,
            )?;
        }
        cluster.create_database(DEFAULT_DATABASE)?;
        tracing::info!(shards = ?cluster.shards, "pg_auto_failover cluster ready");
        Ok(cluster)
    }

    fn load(
        dir: &Path,
        bin: PathBuf,
        run_as: Option<super::RunAs>,
        requested: &ClusterSpec,
    ) -> Result<(Ctx, Node, Vec<AutoFailoverShard>)> {
        let path = dir.join("autofailover.json");
        let manifest: Manifest = read_manifest(&path)?;
        check_format(&path, manifest.format_version, FORMAT_VERSION)?;
        if manifest.spec.n_shards != requested.n_shards
            || manifest.spec.n_standbys != requested.n_standbys
        {
            return Err(ClusterError::BadState(format!(
                "{} holds {} shard(s) with {} standby(s) each but {} with {} were requested",
                dir.display(),
                manifest.spec.n_shards,
                manifest.spec.n_standbys,
                requested.n_shards,
                requested.n_standbys
            )));
        }
        let node = |m: &ManifestNode| -> Result<Node> {
            let rel = Path::new(&m.data_dir);
            if rel.is_absolute()
                || rel
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(ClusterError::BadState(format!(
                    "{}: the data directory must lie inside the cluster directory",
                    m.name
                )));
            }
            Ok(Node {
                name: m.name.clone(),
                port: m.port,
                data_dir: dir.join(rel),
            })
        };
        let shards = manifest
            .shards
            .iter()
            .map(|s| {
                Ok(AutoFailoverShard {
                    name: s.name.clone(),
                    nodes: s.nodes.iter().map(node).collect::<Result<_>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = Ctx {
            superuser_password: read_password(dir, "superuser_password")?,
            app_password: read_password(dir, "app_password")?,
            dir: dir.to_path_buf(),
            bin,
            run_as,
            spec: manifest.spec,
        };
        Ok((ctx, node(&manifest.monitor)?, shards))
    }

    fn write_manifest(&self) -> Result<()> {
        let rel = |n: &Node| ManifestNode {
            name: n.name.clone(),
            port: n.port,
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
            monitor: rel(&self.monitor),
            shards: self
                .shards
                .iter()
                .map(|s| ManifestShard {
                    name: s.name.clone(),
                    nodes: s.nodes.iter().map(rel).collect(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| ClusterError::BadState(format!("cannot encode the manifest: {e}")))?;
        let path = self.ctx.dir.join("autofailover.json");
        fs::write(&path, text + "\n").map_err(io_err(&path))
    }

    fn xdg(&self) -> PathBuf {
        self.ctx.dir.join("xdg")
    }

    fn prepare_xdg(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for sub in ["", "config", "data", "run"] {
            let path = self.xdg().join(sub);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
            self.ctx.give(&path)?;
        }
        Ok(())
    }

    /// `pg_autoctl` as the PostgreSQL user, with its state under `DIR/xdg`.
    fn autoctl(&self) -> Command {
        let mut cmd = self.ctx.tool_command(&self.autoctl);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.ctx.bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap_or(path))
            .env("PG_CONFIG", self.ctx.bin.join("pg_config"))
            .env("XDG_CONFIG_HOME", self.xdg().join("config"))
            .env("XDG_DATA_HOME", self.xdg().join("data"))
            .env("XDG_RUNTIME_DIR", self.xdg().join("run"));
        cmd
    }

    /// Runs a bounded pg_autoctl command to its end.
    fn autoctl_run(&self, args: &[&str], what: &str) -> Result<String> {
        let mut cmd = self.autoctl();
        cmd.args(args);
        Ok(checked(run_bounded(cmd, what, None, AUTOCTL_TIMEOUT)?, what)?.stdout)
    }

    /// Starts a long-running `pg_autoctl` (`run`, or `create ... --run`) for `name`, its
    /// output appended to `logs/{name}.log`.
    fn spawn_keeper(&self, name: &str, args: &[&str]) -> Result<()> {
        let log = self.ctx.log_file(name);
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err(&log))?;
        let err = out.try_clone().map_err(io_err(&log))?;
        let mut cmd = self.autoctl();
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(io_err(&self.autoctl))?;
        tracing::info!(node = name, pid = child.id(), "pg_autoctl started");
        self.keepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), child));
        Ok(())
    }

    fn monitor_uri(&self) -> String {
        format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor.port
        )
    }

    fn path(p: &Path) -> Result<&str> {
        super::path_str(p)
    }

    /// First build: monitor, formations, the first node of each shard (stopped to add our
    /// settings, then run), then the secondaries.
    fn create_all(&self) -> Result<()> {
        let port = self.monitor.port.to_string();
        let monitor_dir = Self::path(&self.monitor.data_dir)?;
        self.autoctl_run(
            &[
                "create",
                "monitor",
                "--pgdata",
                monitor_dir,
                "--pgport",
                &port,
                "--hostname",
                "127.0.0.1",
                "--listen",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
            ],
            "pg_autoctl create monitor",
        )?;
        self.spawn_keeper("monitor", &["run", "--pgdata", monitor_dir])?;
        self.wait_monitor()?;
        let tune: String = MONITOR_SETTINGS
            .iter()
            .map(|(k, v)| format!("ALTER SYSTEM SET {k} = {v};\n"))
            .chain(std::iter::once("SELECT pg_reload_conf();\n".to_owned()))
            .collect();
        psql_run(
            &self.ctx,
            self.monitor.port,
            "pg_auto_failover",
            &tune,
            PSQL_TIMEOUT,
        )?;
        for shard in &self.shards {
            self.autoctl_run(
                &[
                    "create",
                    "formation",
                    "--pgdata",
                    monitor_dir,
                    "--formation",
                    &shard.name,
                    "--kind",
                    "pgsql",
                ],
                &format!("pg_autoctl create formation {}", shard.name),
            )?;
        }
        let monitor_uri = self.monitor_uri();
        for shard in &self.shards {
            let first = &shard.nodes[0];
            // Without --run: the node is initialised, registered, and left stopped, so that
            // our settings are in place before it first serves (and its secondaries copy
            // them with the base backup).
            let args = self.create_args(first, &shard.name, &monitor_uri, false)?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.autoctl_run(&args, &format!("pg_autoctl create postgres {}", first.name))?;
            let mut settings = String::from(
                "\n# fhirgate\nmax_prepared_transactions = 128\nmax_connections = 200\nwal_keep_size = '256MB'\n",
            );
            if !self.ctx.spec.durable {
                // Not full_page_writes = off: pg_rewind, which a keeper runs to turn a failed
                // primary into a secondary, refuses a source without it.
                settings.push_str("fsync = off\n");
            }
            let conf = first.data_dir.join("postgresql.conf");
            let mut text = fs::read_to_string(&conf).map_err(io_err(&conf))?;
            text.push_str(&settings);
            fs::write(&conf, text).map_err(io_err(&conf))?;
            self.set_partition_timeout(first)?;
            self.spawn_keeper(
                &first.name,
                &["run", "--pgdata", Self::path(&first.data_dir)?],
            )?;
        }
        for shard in &self.shards {
            for node in &shard.nodes[1..] {
                let args = self.create_args(node, &shard.name, &monitor_uri, true)?;
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.spawn_keeper(&node.name, &args)?;
            }
        }
        // The secondaries' keepers wrote their configuration once they registered.
        for (i, shard) in self.shards.iter().enumerate() {
            self.wait_healthy(i, HEALTHY_WAIT)?;
            for node in &shard.nodes[1..] {
                self.set_partition_timeout(node)?;
                self.autoctl_run(
                    &["reload", "--pgdata", Self::path(&node.data_dir)?],
                    &format!("pg_autoctl reload {}", node.name),
                )?;
            }
        }
        Ok(())
    }

    fn create_args(
        &self,
        node: &Node,
        formation: &str,
        monitor_uri: &str,
        run: bool,
    ) -> Result<Vec<String>> {
        let mut args: Vec<String> = [
            "create",
            "postgres",
            "--pgdata",
            Self::path(&node.data_dir)?,
            "--pgport",
            &node.port.to_string(),
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--name",
            &node.name,
            "--formation",
            formation,
            "--monitor",
            monitor_uri,
            "--auth",
            "trust",
            "--no-ssl",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if run {
            args.push("--run".into());
        }
        Ok(args)
    }

    fn set_partition_timeout(&self, node: &Node) -> Result<()> {
        self.autoctl_run(
            &[
                "config",
                "set",
                "--pgdata",
                Self::path(&node.data_dir)?,
                "timeout.network_partition_timeout",
                NETWORK_PARTITION_TIMEOUT_SECS,
            ],
            &format!("pg_autoctl config set of {}", node.name),
        )
        .map(drop)
    }

    /// Restart: the monitor, then every node's keeper.
    fn run_all(&self) -> Result<()> {
        self.spawn_keeper(
            "monitor",
            &["run", "--pgdata", Self::path(&self.monitor.data_dir)?],
        )?;
        self.wait_monitor()?;
        for shard in &self.shards {
            for node in &shard.nodes {
                self.spawn_keeper(
                    &node.name,
                    &["run", "--pgdata", Self::path(&node.data_dir)?],
                )?;
            }
        }
        Ok(())
    }

    fn wait_monitor(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        for _ in 0..600 {
            match psql_run(
                &self.ctx,
                self.monitor.port,
                "pg_auto_failover",
                "SELECT 1",
                PSQL_TIMEOUT,
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(ClusterError::Timeout {
            what: format!("waiting for the pg_auto_failover monitor (last: {last})"),
        })
    }

    /// The monitor's view of a shard's nodes.
    pub fn state(&self, shard: usize) -> Result<Vec<NodeState>> {
        let name = &self.shard(shard)?.name;
        let out = self.autoctl_run(
            &[
                "show",
                "state",
                "--pgdata",
                Self::path(&self.monitor.data_dir)?,
                "--formation",
                name,
                "--json",
            ],
            &format!("pg_autoctl show state of {name}"),
        )?;
        serde_json::from_str(&out).map_err(|e| {
            ClusterError::BadState(format!("pg_autoctl show state answered {out:?}: {e}"))
        })
    }

    fn shard(&self, shard: usize) -> Result<&AutoFailoverShard> {
        self.shards
            .get(shard)
            .ok_or_else(|| ClusterError::BadState(format!("no shard {shard}")))
    }

    /// Waits until a shard has a primary and every secondary, as the monitor sees it.
    pub fn wait_healthy(&self, shard: usize, bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        let want = self.shard(shard)?.nodes.len();
        let mut last = Vec::new();
        for _ in 0..10_000 {
            if let Ok(states) = self.state(shard) {
                let settled = states.iter().all(|s| s.reported == s.assigned);
                let primaries = states.iter().filter(|s| s.reported == "primary").count();
                let secondaries = states.iter().filter(|s| s.reported == "secondary").count();
                if settled && primaries == 1 && primaries + secondaries == want {
                    return Ok(());
                }
                last = states;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(ClusterError::Timeout {
            what: format!(
                "waiting for shard {shard} to have a primary and its secondaries (last: {last:?}); see {}",
                self.ctx.dir.join("logs").display()
            ),
        })
    }

    /// Waits until the shard's primary accepts connections, is out of recovery, and sees
    /// all its standbys streaming; returns it.
    fn wait_serving(&self, shard: usize, bound: Duration) -> Result<Node> {
        let deadline = Instant::now() + bound;
        let want = self.shard(shard)?.nodes.len() - 1;
        let sql = "SELECT NOT pg_is_in_recovery() AND \
                   (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') >= ";
        let mut last = String::new();
        for _ in 0..10_000 {
            match self.primary_of(shard).and_then(|p| {
                let out = psql_run(
                    &self.ctx,
                    p.port,
                    "postgres",
                    &format!("{sql}{want}"),
                    PSQL_TIMEOUT,
                )?;
                Ok((p, out))
            }) {
                Ok((p, out)) if out.trim() == "t" => return Ok(p),
                Ok((_, out)) => last = format!("answered {out}"),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(ClusterError::Timeout {
            what: format!("waiting for shard {shard}'s primary to serve (last: {last})"),
        })
    }

    /// The node the monitor holds for the shard's writable primary.
    pub fn primary_of(&self, shard: usize) -> Result<Node> {
        let states = self.state(shard)?;
        let primary = states
            .iter()
            // A node is its formation's writable primary when it reports and is assigned one
            // of these states (they may differ while it moves on, e.g. wait_primary towards
            // primary; a dead primary still reports primary but is assigned demote_timeout).
            .find(|s| is_writable_state(&s.reported) && is_writable_state(&s.assigned))
            .ok_or_else(|| {
                ClusterError::BadState(format!("shard {shard} has no primary now: {states:?}"))
            })?;
        self.shard(shard)?
            .nodes
            .iter()
            .find(|n| n.name == primary.name)
            .cloned()
            .ok_or_else(|| ClusterError::BadState(format!("unknown node {}", primary.name)))
    }

    /// The shards and their nodes.
    pub fn shards(&self) -> &[AutoFailoverShard] {
        &self.shards
    }

    /// The monitor's node.
    pub fn monitor(&self) -> &Node {
        &self.monitor
    }

    /// The directory of the cluster.
    pub fn dir(&self) -> &Path {
        &self.ctx.dir
    }

    /// `postgres://fhirgate_app:PASSWORD@127.0.0.1:PORT/DB` for a node.
    pub fn app_url(&self, node: &Node, db: &str) -> String {
        self.ctx.url(APP_ROLE, &self.ctx.app_password, node, db)
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB` for a node.
    pub fn superuser_url(&self, node: &Node, db: &str) -> String {
        self.ctx
            .url(SUPERUSER, &self.ctx.superuser_password, node, db)
    }

    /// Creates database `db` on every shard's current primary (the secondaries get it by
    /// replication).
    pub fn create_database(&self, db: &str) -> Result<()> {
        let sql = create_database_sql(db)?;
        for shard in 0..self.shards.len() {
            let primary = self.primary_of(shard)?;
            psql_run(&self.ctx, primary.port, "postgres", &sql, PSQL_TIMEOUT)?;
        }
        Ok(())
    }

    /// Runs SQL with psql as `postgres` on a node (see [`super::LocalCluster::psql`]).
    pub fn psql(&self, node: &Node, db: &str, sql: &str) -> Result<String> {
        validate_db_name(db)?;
        psql_run(&self.ctx, node.port, db, sql, PSQL_TIMEOUT)
    }

    /// Node death: SIGKILL to the node's keeper, its postgres, and all their children at
    /// once. The monitor notices and fails over; [`AutoFailoverCluster::run_node`] brings the
    /// node back (its keeper rewinds it into a secondary).
    pub fn kill_node(&self, node: &Node) -> Result<()> {
        self.reap();
        let keeper = {
            let mut keepers = self.keepers.lock().unwrap_or_else(|p| p.into_inner());
            keepers
                .iter()
                .rposition(|(n, _)| *n == node.name)
                .map(|i| keepers.remove(i).1)
        };
        let mut roots = Vec::new();
        if let Some(child) = &keeper {
            roots.push(child.id());
        }
        if let super::PostmasterState::Ours(pid) = postmaster_state(&node.data_dir)
            && pid != 0
        {
            roots.push(pid);
        }
        tracing::warn!(node = %node.name, ?roots, "kill -9 (node death)");
        let killed = kill_tree(&roots)?;
        // Reaped now: a zombie keeper would still own its pid file, and a keeper started
        // again on the node would take it for a running one and refuse to start.
        if let Some(mut child) = keeper {
            child.wait().map_err(io_err(&self.autoctl))?;
        }
        for _ in 0..200 {
            if killed
                .iter()
                .all(|&p| !matches!(process_state(p), Some(c) if c != 'Z' && c != 'X'))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(ClusterError::Timeout {
            what: format!("waiting for the killed processes of {} to exit", node.name),
        })
    }

    /// A postgres crash with its keeper alive: SIGKILL to the postmaster and its children
    /// only. The keeper restarts postgres in place (no failover).
    pub fn crash_postgres(&self, node: &Node) -> Result<()> {
        let super::PostmasterState::Ours(pid) = postmaster_state(&node.data_dir) else {
            return Err(ClusterError::BadState(format!(
                "{} is not running",
                node.name
            )));
        };
        tracing::warn!(node = %node.name, pid, "kill -9 of postgres (keeper alive)");
        kill_tree(&[pid]).map(drop)
    }

    /// Starts a node's keeper again (after [`AutoFailoverCluster::kill_node`]).
    pub fn run_node(&self, node: &Node) -> Result<()> {
        self.spawn_keeper(
            &node.name,
            &["run", "--pgdata", Self::path(&node.data_dir)?],
        )
    }

    /// A planned switchover of a shard (`pg_autoctl perform switchover`; waits for it).
    pub fn switchover(&self, shard: usize) -> Result<()> {
        let name = self.shard(shard)?.name.clone();
        self.autoctl_run(
            &[
                "perform",
                "switchover",
                "--pgdata",
                Self::path(&self.monitor.data_dir)?,
                "--formation",
                &name,
            ],
            &format!("pg_autoctl perform switchover of {name}"),
        )
        .map(drop)
    }

    fn keeper_running(&self, name: &str) -> bool {
        self.reap();
        self.keepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(n, _)| n == name)
    }

    /// Waits until the keepers of `names` have exited; past `bound`, kills each one's
    /// process tree (the keeper and its service processes) and reports a timeout.
    fn wait_keepers_exit(&self, names: &[&str], bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        loop {
            self.reap();
            let mut keepers = self.keepers.lock().unwrap_or_else(|p| p.into_inner());
            if !keepers.iter().any(|(n, _)| names.contains(&n.as_str())) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut i = 0;
                while i < keepers.len() {
                    if names.contains(&keepers[i].0.as_str()) {
                        let (name, mut child) = keepers.remove(i);
                        tracing::warn!(node = %name, "pg_autoctl did not stop; killing it");
                        let _ = kill_tree(&[child.id()]);
                        let _ = child.wait();
                    } else {
                        i += 1;
                    }
                }
                return Err(ClusterError::Timeout {
                    what: format!("waiting for pg_autoctl of {names:?} to stop"),
                });
            }
            drop(keepers);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reaps keepers that exited.
    fn reap(&self) {
        let mut keepers = self.keepers.lock().unwrap_or_else(|p| p.into_inner());
        keepers.retain_mut(|(_, child)| !matches!(child.try_wait(), Ok(Some(_))));
    }

    /// Stops the monitor first (so that it does not take the nodes' shutdown for a failure
    /// and start a failover that the next start would inherit), then each shard's primary
    /// (while its standby still streams, so it does not demote itself), then the
    /// secondaries. Bounded; anything still running afterwards is killed by PID.
    pub fn stop(&self) -> Result<()> {
        self.stopped.store(true, Ordering::SeqCst);
        let mut first_error = None;
        let primaries: Vec<Option<String>> = (0..self.shards.len())
            .map(|i| self.primary_of(i).ok().map(|n| n.name))
            .collect();
        let mut nodes: Vec<&Node> = vec![&self.monitor];
        // (Only shards whose primary is known put one in the second group.)
        for (shard, primary) in self.shards.iter().zip(&primaries) {
            nodes.extend(
                shard
                    .nodes
                    .iter()
                    .filter(|n| Some(&n.name) == primary.as_ref()),
            );
        }
        for (shard, primary) in self.shards.iter().zip(&primaries) {
            nodes.extend(
                shard
                    .nodes
                    .iter()
                    .filter(|n| Some(&n.name) != primary.as_ref()),
            );
        }
        let dirs: Vec<(String, PathBuf)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.data_dir.clone()))
            .collect();
        // `pg_autoctl stop` only signals: each group is waited for before the next is
        // signalled (monitor, then primaries, then secondaries).
        let n_primaries = primaries.iter().flatten().count();
        let groups = [
            &dirs[..1],
            &dirs[1..1 + n_primaries],
            &dirs[1 + n_primaries..],
        ];
        for group in groups {
            let names: Vec<&str> = group.iter().map(|(n, _)| n.as_str()).collect();
            for (name, dir) in group {
                let Ok(dir) = Self::path(dir) else { continue };
                if self.keeper_running(name)
                    && let Err(e) = self.autoctl_run(&["stop", "--pgdata", dir], "pg_autoctl stop")
                {
                    tracing::warn!(node = %name, error = %e, "pg_autoctl stop");
                }
            }
            if let Err(e) = self.wait_keepers_exit(&names, Duration::from_secs(30)) {
                first_error.get_or_insert(e);
            }
        }
        // A postgres whose keeper was killed (a test's node death, never rerun) is ours too.
        for (name, dir) in &dirs {
            if let super::PostmasterState::Ours(pid) = postmaster_state(dir)
                && pid != 0
            {
                tracing::warn!(node = %name, pid, "postgres outlived its keeper; killing it");
                let mut cmd = Command::new("kill");
                cmd.arg("-KILL").arg(pid.to_string());
                let _ = run_bounded(cmd, "kill -KILL", None, PSQL_TIMEOUT);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// SIGKILL to every process of the trees rooted at `roots` at once (descendants found
/// through `/proc`, breadth first, at most 256); returns the PIDs signalled.
fn kill_tree(roots: &[u32]) -> Result<Vec<u32>> {
    let mut all = roots.to_vec();
    let mut i = 0;
    while i < all.len() && all.len() < 256 {
        let more = children_of(all[i]);
        all.extend(more);
        i += 1;
    }
    all.sort_unstable();
    all.dedup();
    if all.is_empty() {
        return Ok(all);
    }
    let mut cmd = Command::new("kill");
    cmd.arg("-KILL").args(all.iter().map(u32::to_string));
    // Some may have exited meanwhile: kill then exits non-zero, which is fine.
    run_bounded(cmd, "kill -KILL", None, PSQL_TIMEOUT)?;
    Ok(all)
}

/// pg_auto_failover states of a formation's writable primary.
fn is_writable_state(state: &str) -> bool {
    matches!(
        state,
        "primary" | "wait_primary" | "single" | "join_primary" | "apply_settings"
    )
}

impl Drop for AutoFailoverCluster {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::SeqCst)
            && let Err(e) = self.stop()
        {
            tracing::warn!(error = %e, "stopping the pg_auto_failover cluster on drop");
        }
    }
}
