//! The `fhirgate` command: `up`, `token`, `audit verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use gateway::auth::Claims;
use gateway::up::{self, UpOptions};
use gateway::{Icd10Undotted, Limits, Strictness, TerminologyPolicy, VersionMismatch};
use store::cluster::ClusterSpec;

// The request path allocates many small values (JSON trees, index entries): mimalloc serves
// them markedly faster than glibc's allocator under concurrency (BENCHMARKS.md, "Mapping").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn checkpoint_dir() -> Arg {
    Arg::new("audit-checkpoint-dir")
        .long("audit-checkpoint-dir")
        .env("FHIRGATE_AUDIT_CHECKPOINT_DIR")
        .value_parser(value_parser!(PathBuf))
        .help("where audit checkpoints are written (default DIR/audit-checkpoints)")
}

fn checkpoint_key() -> Arg {
    Arg::new("audit-checkpoint-key")
        .long("audit-checkpoint-key")
        .env("FHIRGATE_AUDIT_CHECKPOINT_KEY")
        .value_parser(value_parser!(PathBuf))
        .help("the key that signs them (default DIR/secrets/audit-checkpoint.key)")
}

fn cli() -> Command {
    let data = || {
        Arg::new("data")
            .long("data")
            .env("FHIRGATE_DATA")
            .default_value("./fhirgate-data")
            .value_parser(value_parser!(PathBuf))
            .help("the data folder of the local cluster")
    };
    let limits = Limits::default();
    Command::new("fhirgate")
        .about("FHIR R4 gateway over sharded, replicated PostgreSQL")
        .subcommand_required(true)
        .subcommand(
            Command::new("up")
                .about("start a local cluster and serve FHIR on it until Ctrl-C")
                .arg(data())
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .env("FHIRGATE_LISTEN")
                        .default_value("127.0.0.1:8080"),
                )
                .arg(
                    Arg::new("shards")
                        .long("shards")
                        .default_value("2")
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("standbys")
                        .long("standbys")
                        .default_value("1")
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("ha")
                        .long("ha")
                        .action(ArgAction::SetTrue)
                        .help(
                            "run every shard under pg_auto_failover: a lost primary is replaced by its standby automatically",
                        ),
                )
                .arg(
                    Arg::new("standby-reads-max-lag")
                        .long("standby-reads-max-lag")
                        .env("FHIRGATE_STANDBY_READS_MAX_LAG")
                        .value_name("BYTES")
                        .value_parser(value_parser!(u64))
                        .help(
                            "let reads go to standbys lagging at most BYTES of WAL, or that replayed the caller's X-Consistency-Token (default: all reads on primaries)",
                        ),
                )
                .arg(
                    Arg::new("async-replication")
                        .long("async-replication")
                        .action(ArgAction::SetTrue)
                        .help(
                            "acknowledge writes before a standby has them (default: synchronous)",
                        ),
                )
                .arg(
                    Arg::new("terminology")
                        .long("terminology")
                        .env("FHIRGATE_TERMINOLOGY")
                        .value_parser(value_parser!(PathBuf))
                        .help("folder of ICD-10 / ICPC-2 tables"),
                )
                .arg(
                    Arg::new("code-check")
                        .long("code-check")
                        .env("FHIRGATE_CODE_CHECK")
                        .value_name("SYSTEM=reject|warn|off")
                        .action(ArgAction::Append)
                        .value_delimiter(',')
                        .value_parser(gateway::parse_code_check)
                        .help(
                            "how a loaded system's bad codes are met on write (default reject); \
                             SYSTEM is icd-10, icpc-2, icd-10-cm or the system URI",
                        ),
                )
                .arg(
                    Arg::new("icd10-undotted")
                        .long("icd10-undotted")
                        .env("FHIRGATE_ICD10_UNDOTTED")
                        .value_name("normalise|reject")
                        .default_value(Icd10Undotted::default().as_str())
                        .value_parser(|s: &str| s.parse::<Icd10Undotted>())
                        .help("ICD-10 without its dot (J450): accept with a warning, or reject"),
                )
                .arg(
                    Arg::new("code-version-mismatch")
                        .long("code-version-mismatch")
                        .env("FHIRGATE_CODE_VERSION_MISMATCH")
                        .value_name("reject|warn")
                        .default_value(VersionMismatch::default().as_str())
                        .value_parser(|s: &str| s.parse::<VersionMismatch>())
                        .help("a Coding.version that is not the loaded edition"),
                )
                .arg(
                    Arg::new("max-body-bytes")
                        .long("max-body-bytes")
                        .env("FHIRGATE_MAX_BODY_BYTES")
                        .default_value(limits.max_body_bytes.to_string())
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("max-json-depth")
                        .long("max-json-depth")
                        .env("FHIRGATE_MAX_JSON_DEPTH")
                        .default_value(limits.max_json_depth.to_string())
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("max-url-bytes")
                        .long("max-url-bytes")
                        .env("FHIRGATE_MAX_URL_BYTES")
                        .default_value(limits.max_url_bytes.to_string())
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("default-count")
                        .long("default-count")
                        .env("FHIRGATE_DEFAULT_COUNT")
                        .default_value(limits.default_count.to_string())
                        .value_parser(value_parser!(usize)),
                )
                .arg(
                    Arg::new("max-count")
                        .long("max-count")
                        .env("FHIRGATE_MAX_COUNT")
                        .default_value(limits.max_count.to_string())
                        .value_parser(value_parser!(usize)),
                )
                .arg(checkpoint_dir())
                .arg(checkpoint_key())
                .arg(
                    Arg::new("audit-checkpoint-secs")
                        .long("audit-checkpoint-secs")
                        .env("FHIRGATE_AUDIT_CHECKPOINT_SECS")
                        .default_value("10")
                        .value_parser(value_parser!(u64))
                        .help("how often the audit chain heads are checkpointed"),
                )
                .arg(
                    Arg::new("trusted-proxy")
                        .long("trusted-proxy")
                        .value_name("IP")
                        .action(ArgAction::Append)
                        .value_parser(value_parser!(std::net::IpAddr))
                        .help("a proxy whose X-Forwarded-For is believed (repeatable)"),
                )
                .arg(
                    Arg::new("break-glass-minutes")
                        .long("break-glass-minutes")
                        .env("FHIRGATE_BREAK_GLASS_MINUTES")
                        .default_value("60")
                        .value_parser(value_parser!(u64))
                        .help("how long a stated break-glass reason opens access"),
                )
                .arg(
                    Arg::new("jwks")
                        .long("jwks")
                        .env("FHIRGATE_JWKS")
                        .value_parser(value_parser!(PathBuf))
                        .help("verify tokens with the public keys of this JWKS file (production mode)"),
                )
                .arg(
                    Arg::new("jwt-key")
                        .long("jwt-key")
                        .value_name("ALG[:KID]=PEM")
                        .action(ArgAction::Append)
                        .help("verify tokens with this PEM public key (RS256, ES256 or EdDSA; production mode; repeatable)"),
                )
                .arg(
                    Arg::new("jwt-issuer")
                        .long("jwt-issuer")
                        .env("FHIRGATE_JWT_ISSUER")
                        .help("the `iss` tokens must carry (required with --jwks or --jwt-key)"),
                )
                .arg(
                    Arg::new("jwt-audience")
                        .long("jwt-audience")
                        .env("FHIRGATE_JWT_AUDIENCE")
                        .default_value("fhirgate")
                        .help("the `aud` tokens must carry"),
                )
                .arg(
                    Arg::new("role-claim")
                        .long("role-claim")
                        .env("FHIRGATE_ROLE_CLAIM")
                        .default_value("role")
                        .help("dotted path of the claim holding the role (e.g. realm_access.roles)"),
                )
                .arg(
                    Arg::new("jwt-leeway")
                        .long("jwt-leeway")
                        .env("FHIRGATE_JWT_LEEWAY")
                        .default_value("30")
                        .value_parser(value_parser!(u64))
                        .help("allowed clock skew for exp and nbf, seconds"),
                )
                .arg(
                    Arg::new("smart-endpoints")
                        .long("smart-endpoints")
                        .value_name("AUTHORIZE_URL,TOKEN_URL")
                        .help("the identity provider's endpoints, for .well-known/smart-configuration"),
                )
                .arg(
                    Arg::new("max-bundle-entries")
                        .long("max-bundle-entries")
                        .env("FHIRGATE_MAX_BUNDLE_ENTRIES")
                        .default_value(limits.max_bundle_entries.to_string())
                        .value_parser(value_parser!(usize))
                        .help("most entries in a batch or transaction Bundle"),
                )
                .arg(
                    Arg::new("read-retry-ms")
                        .long("read-retry-ms")
                        .env("FHIRGATE_READ_RETRY_MS")
                        .default_value(limits.read_retry.as_millis().to_string())
                        .value_parser(value_parser!(u64))
                        .help("how long a read is retried while a shard's primary is found again"),
                ),
        )
        .subcommand(
            Command::new("shards")
                .about("the shards of the data folder's cluster")
                .subcommand_required(true)
                .subcommand(
                    Command::new("status")
                        .about("each shard's nodes: role, WAL position, replication lag, failovers")
                        .arg(data())
                        .arg(
                            Arg::new("json")
                                .long("json")
                                .action(ArgAction::SetTrue)
                                .help("print JSON"),
                        ),
                )
                .subcommand(
                    Command::new("add")
                        .about("add a shard to the running cluster and move its share of the buckets to it, online")
                        .arg(data())
                        .arg(
                            Arg::new("chunk")
                                .long("chunk")
                                .default_value("64")
                                .value_parser(value_parser!(usize))
                                .help("buckets moved per step (one brief write fence each)"),
                        ),
                ),
        )
        .subcommand(
            Command::new("token")
                .about("print a development bearer token signed with the data folder's key")
                .arg(data())
                .arg(Arg::new("role").long("role").required(true))
                .arg(Arg::new("scope").long("scope").action(ArgAction::Append))
                .arg(
                    Arg::new("subject")
                        .long("subject")
                        .default_value("dev-user"),
                )
                .arg(Arg::new("practitioner").long("practitioner"))
                .arg(Arg::new("patient").long("patient"))
                .arg(
                    Arg::new("ttl")
                        .long("ttl")
                        .default_value("3600")
                        .value_parser(value_parser!(u64)),
                ),
        )
        .subcommand(
            Command::new("audit")
                .about("audit log tools")
                .subcommand_required(true)
                .subcommand(
                    Command::new("verify")
                        .about("walk every audit chain and check the latest checkpoint; exit 1 at the first broken link")
                        .arg(data())
                        .arg(checkpoint_dir())
                        .arg(checkpoint_key()),
                )
                .subcommand(
                    Command::new("break-glass")
                        .about("list every request made under break-glass, oldest first")
                        .arg(data()),
                ),
        )
}

fn get<T: Clone + Send + Sync + 'static>(m: &ArgMatches, name: &str) -> Result<T> {
    m.get_one::<T>(name)
        .cloned()
        .with_context(|| format!("missing --{name}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // PostgreSQL answers the COMMIT that settles sqlx's bookkeeping after every
                // PREPARE TRANSACTION with the notice "there is no transaction in progress":
                // expected, and not worth a warning per two-phase commit.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fhirgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The token settings of production mode (`--jwks` / `--jwt-key`); `None` in development mode.
fn production_auth(m: &ArgMatches) -> Result<Option<gateway::AuthConfig>> {
    use gateway::auth::{VerifyKey, read_key_file};
    let mut keys = Vec::new();
    if let Some(path) = m.get_one::<PathBuf>("jwks") {
        keys.extend(VerifyKey::from_jwks(&read_key_file(path)?)?);
    }
    for spec in m.get_many::<String>("jwt-key").into_iter().flatten() {
        let (alg_kid, path) = spec
            .split_once('=')
            .context("--jwt-key takes ALG[:KID]=PEM-FILE")?;
        let (alg, kid) = match alg_kid.split_once(':') {
            Some((a, k)) => (a, Some(k.to_owned())),
            None => (alg_kid, None),
        };
        let pem = read_key_file(std::path::Path::new(path))?;
        keys.push(VerifyKey::from_pem(alg, kid, &pem)?);
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let issuer: String = m
        .get_one::<String>("jwt-issuer")
        .cloned()
        .context("--jwt-issuer is required with --jwks or --jwt-key")?;
    let endpoints = match m.get_one::<String>("smart-endpoints") {
        Some(both) => {
            let (a, t) = both
                .split_once(',')
                .context("--smart-endpoints takes AUTHORIZE_URL,TOKEN_URL")?;
            Some((a.to_owned(), t.to_owned()))
        }
        None => None,
    };
    Ok(Some(gateway::AuthConfig {
        issuer,
        audience: get(m, "jwt-audience")?,
        leeway_secs: get(m, "jwt-leeway")?,
        keys,
        role_claim: get(m, "role-claim")?,
        dev_secret: None,
        endpoints,
    }))
}

fn run() -> Result<ExitCode> {
    let matches = cli().get_matches();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match matches.subcommand() {
        Some(("up", m)) => {
            let options = UpOptions {
                data: get(m, "data")?,
                listen: get::<String>(m, "listen")?
                    .parse()
                    .context("--listen must be an address like 127.0.0.1:8080")?,
                spec: ClusterSpec {
                    n_shards: get(m, "shards")?,
                    n_standbys: get(m, "standbys")?,
                    synchronous: !m.get_flag("async-replication"),
                    ..ClusterSpec::default()
                },
                ha: m.get_flag("ha"),
                standby_max_lag: m.get_one::<u64>("standby-reads-max-lag").copied(),
                terminology: m.get_one::<PathBuf>("terminology").cloned(),
                terminology_policy: TerminologyPolicy {
                    // A later --code-check for the same system wins.
                    per_system: m
                        .get_many::<(String, Strictness)>("code-check")
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect(),
                    icd10_undotted: get(m, "icd10-undotted")?,
                    version_mismatch: get(m, "code-version-mismatch")?,
                },
                limits: Limits {
                    max_body_bytes: get(m, "max-body-bytes")?,
                    max_json_depth: get(m, "max-json-depth")?,
                    max_url_bytes: get(m, "max-url-bytes")?,
                    default_count: get(m, "default-count")?,
                    max_count: get(m, "max-count")?,
                    max_bundle_entries: get(m, "max-bundle-entries")?,
                    read_retry: std::time::Duration::from_millis(get(m, "read-retry-ms")?),
                },
                auth: production_auth(m)?,
                checkpoint_dir: m.get_one::<PathBuf>("audit-checkpoint-dir").cloned(),
                checkpoint_key: m.get_one::<PathBuf>("audit-checkpoint-key").cloned(),
                checkpoint_every: std::time::Duration::from_secs(
                    get::<u64>(m, "audit-checkpoint-secs")?.max(1),
                ),
                trusted_proxies: m
                    .get_many::<std::net::IpAddr>("trusted-proxy")
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect(),
                break_glass_window: std::time::Duration::from_secs(
                    60 * get::<u64>(m, "break-glass-minutes")?,
                ),
                // Crash tests of two-phase commit (debug builds only; release builds ignore it).
                crash_at: if cfg!(debug_assertions) {
                    std::env::var("FHIRGATE_CRASH_AT")
                        .ok()
                        .and_then(|v| store::CrashPoint::parse(&v))
                } else {
                    None
                },
            };
            if options.spec.n_shards == 0 {
                bail!("--shards must be at least 1");
            }
            runtime.block_on(up::run(options))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(("shards", m)) => match m.subcommand() {
            Some(("status", m)) => {
                let data: PathBuf = get(m, "data")?;
                let shards = runtime.block_on(up::shards_status(&data))?;
                if m.get_flag("json") {
                    println!("{}", serde_json::to_string_pretty(&shards)?);
                } else {
                    for s in &shards {
                        println!(
                            "shard {}: primary {} ({} failover(s) seen), {} buckets (map version {})",
                            s.shard,
                            s.primary.as_deref().unwrap_or("NONE"),
                            s.failovers,
                            s.buckets,
                            s.map_version
                        );
                        for n in &s.nodes {
                            let detail = match (&n.error, n.lag_bytes) {
                                (Some(e), _) => format!("error: {e}"),
                                (None, Some(lag)) => format!("lag {lag} bytes"),
                                (None, None) => String::new(),
                            };
                            println!("  {:<22} {:<8} {}", n.address, n.role.as_str(), detail);
                        }
                    }
                }
                let healthy = shards.iter().all(|s| s.primary.is_some());
                Ok(if healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Some(("add", m)) => {
                let data: PathBuf = get(m, "data")?;
                let options = store::rebalance::MoveOptions {
                    chunk: get(m, "chunk")?,
                    ..Default::default()
                };
                let report = runtime.block_on(up::shards_add(&data, options))?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(ExitCode::SUCCESS)
            }
            _ => bail!("unknown shards command"),
        },
        Some(("token", m)) => {
            let data: PathBuf = get(m, "data")?;
            let auth = up::dev_auth(&data, false).context(
                "no development signing key: run `fhirgate up` on this data folder first",
            )?;
            let now = chrono::Utc::now().timestamp() as u64;
            let claims = Claims {
                sub: get(m, "subject")?,
                iss: auth.issuer.clone(),
                aud: auth.audience.clone(),
                exp: now + get::<u64>(m, "ttl")?,
                iat: now,
                nbf: None,
                role: get(m, "role")?,
                scope: m
                    .get_many::<String>("scope")
                    .map(|s| s.cloned().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                practitioner: m.get_one::<String>("practitioner").cloned(),
                patient: m.get_one::<String>("patient").cloned(),
            };
            println!("{}", auth.mint(&claims).context("signing the token")?);
            Ok(ExitCode::SUCCESS)
        }
        Some(("audit", m)) => match m.subcommand() {
            Some(("verify", m)) => {
                let data: PathBuf = get(m, "data")?;
                let checkpoints = up::checkpoints(
                    &data,
                    m.get_one::<PathBuf>("audit-checkpoint-dir")
                        .map(PathBuf::as_path),
                    m.get_one::<PathBuf>("audit-checkpoint-key")
                        .map(PathBuf::as_path),
                    // A missing key is made anew: it verifies no old checkpoint, which is
                    // then reported as broken, never silently skipped.
                    true,
                )?;
                match runtime.block_on(up::audit_verify(&data, &checkpoints))? {
                    Ok((n, verdict)) => {
                        let checkpoint = match verdict {
                            gateway::checkpoint::Verdict::Holds(at) => {
                                let when = chrono::DateTime::from_timestamp(at, 0)
                                    .map(|t| t.to_rfc3339())
                                    .unwrap_or_default();
                                format!("the checkpoint of {when} holds")
                            }
                            _ => "no checkpoint yet".to_owned(),
                        };
                        println!(
                            "audit log intact: {n} records in every chain verified; {checkpoint}"
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(broken) => {
                        println!("audit log BROKEN at {broken}");
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
            Some(("break-glass", m)) => {
                let data: PathBuf = get(m, "data")?;
                let records = runtime.block_on(up::audit_break_glass(&data))?;
                for r in &records {
                    let a = &r.record;
                    println!(
                        "{}\t{}\t{}\t{} {}\t{}\t{:?}",
                        r.at.to_rfc3339(),
                        a.subject.as_deref().unwrap_or("-"),
                        a.role.as_deref().unwrap_or("-"),
                        a.method,
                        a.path,
                        a.outcome,
                        a.break_glass.as_deref().unwrap_or("")
                    );
                }
                println!("{} request(s) under break-glass", records.len());
                Ok(ExitCode::SUCCESS)
            }
            _ => bail!("unknown audit command"),
        },
        _ => bail!("unknown command"),
    }
}
