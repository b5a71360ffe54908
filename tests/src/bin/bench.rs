//! The benchmark harness: the gateway against the raw-PostgreSQL limit, in one run.
//!
//! It starts `fhirgate up` (the real binary, so the real launcher: 2 shards × primary +
//! synchronous standby), drives it over HTTP with seeded synthetic data, and for the write
//! and read phases runs a baseline that does the same storage work straight through sqlx on
//! the same shards, the same tables and the same row sizes (the encoded entity, its history
//! row, its index rows, a change-feed row and an audit row, one transaction per operation;
//! primary-key reads of the same rows). Each phase prints a JSON line; `--write-md` puts a
//! Markdown table into BENCHMARKS.md.
//!
//! `./dev bench [--smoke] [--scale-to N] [--write-md] [--mapping-only]` builds both binaries and runs this.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gateway::auth::Claims;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use store::placement::{DEFAULT_BUCKETS, ShardMap};

// The same allocator as the `fhirgate` binary, so in-process figures (mapping) match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FAMILIES: &[&str] = &[
    "Nelson", "Smith", "Ivanova", "Tamm", "Kask", "García", "Müller", "Okafor", "Nguyen",
    "Kowalski", "Rossi", "Dubois", "Novak", "Larsen", "Haddad", "Sato", "Silva", "Ahmed",
];
const GIVENS: &[&str] = &[
    "Ann", "Peter", "Mari", "Jüri", "Olga", "Luis", "Amina", "Chen", "Eva", "Karl", "Ines",
    "Tomas", "Leila", "Hana", "Oskar", "Sofia",
];
/// Syllables of the surnames of the scale load's patients: 100 names, none starting like a
/// name of [`FAMILIES`], so the measured searches match the same patients before and after
/// the load and their latency shows the cost of the store's size, not of a longer result.
const LOAD_STEMS: &[&str] = &[
    "Vaher", "Pärn", "Ilves", "Jõe", "Uus", "Lepp", "Mägi", "Zorin", "Björk", "Quist",
];
const LOAD_ENDINGS: &[&str] = &[
    "berg", "mann", "son", "ova", "ski", "ström", "ez", "ini", "lane", "wood",
];
const CITIES: &[&str] = &["Tallinn", "Tartu", "Pärnu", "Narva", "Viljandi", "Rakvere"];
/// LOINC code, display, unit, low, high.
const LOINC: &[(&str, &str, &str, f64, f64)] = &[
    ("8867-4", "Heart rate", "/min", 45.0, 140.0),
    ("8310-5", "Body temperature", "Cel", 35.5, 40.5),
    ("29463-7", "Body weight", "kg", 3.0, 140.0),
    ("8302-2", "Body height", "cm", 45.0, 205.0),
    (
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        "mg/dL",
        60.0,
        300.0,
    ),
    (
        "718-7",
        "Hemoglobin [Mass/volume] in Blood",
        "g/dL",
        7.0,
        18.0,
    ),
];
/// ICD-10 and ICPC-2 codes for conditions.
const ICD10: &[(&str, &str)] = &[
    ("J45.0", "Predominantly allergic asthma"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("I10", "Essential (primary) hypertension"),
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("M54.5", "Low back pain"),
];
const ICPC2: &[(&str, &str)] = &[
    ("K86", "Hypertension uncomplicated"),
    ("T90", "Diabetes non-insulin dependent"),
    ("R96", "Asthma"),
];

struct Options {
    smoke: bool,
    scale_to: usize,
    /// Only the in-process mapping figures (no cluster).
    mapping_only: bool,
    audit_records: usize,
    write_md: bool,
    seed: u64,
    phase_secs: u64,
    phase_ops: usize,
    concurrency: Vec<usize>,
    /// After the scale phases, keep the cluster up this long (printing how to reach it) so
    /// that its plans can be looked at.
    hold_secs: u64,
    /// Only the phases whose names start with one of these (empty: all). `create Patient`
    /// always runs: the other phases read what it makes.
    only: Vec<String>,
}

impl Options {
    /// Whether the phase named `phase` runs.
    fn wants(&self, phase: &str) -> bool {
        self.only.is_empty()
            || phase == "create Patient"
            || self.only.iter().any(|p| phase.starts_with(p.as_str()))
    }

    /// The concurrencies a group of phases runs at: none when `--only` leaves every one of
    /// them out (their data is then not made either).
    fn concurrencies_of(&self, phases: &[&str]) -> Vec<usize> {
        if phases.iter().any(|p| self.wants(p)) {
            self.concurrency.clone()
        } else {
            Vec::new()
        }
    }
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        smoke: false,
        scale_to: 0,
        mapping_only: false,
        audit_records: 100_000,
        write_md: false,
        seed: 42,
        phase_secs: 10,
        phase_ops: 4000,
        concurrency: vec![1, 16, 64],
        hold_secs: 0,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--mapping-only" => o.mapping_only = true,
            "--write-md" => o.write_md = true,
            "--scale-to" => o.scale_to = value("--scale-to")?.parse()?,
            "--audit-records" => o.audit_records = value("--audit-records")?.parse()?,
            "--seed" => o.seed = value("--seed")?.parse()?,
            "--phase-secs" => o.phase_secs = value("--phase-secs")?.parse()?,
            "--phase-ops" => o.phase_ops = value("--phase-ops")?.parse()?,
            "--hold-secs" => o.hold_secs = value("--hold-secs")?.parse::<u64>()?.min(24 * 3600),
            "--only" => {
                o.only = value("--only")?
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect()
            }
            "--concurrency" => {
                o.concurrency = value("--concurrency")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if o.write_md && !o.only.is_empty() {
        bail!("--only runs part of the phases: it does not write BENCHMARKS.md");
    }
    if o.smoke {
        o.phase_secs = 2;
        o.phase_ops = 40;
        o.concurrency = vec![1, 4];
        o.audit_records = o.audit_records.min(2000);
    }
    Ok(o)
}

/// The running `fhirgate up`, stopped with SIGTERM on drop.
struct Gateway {
    child: Child,
    base: String,
    shard_urls: Vec<String>,
    data: PathBuf,
    token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn start_gateway() -> Result<Gateway> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("binary dir")?.join("fhirgate");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with the bench (./dev bench)",
            bin.display()
        );
    }
    let data = tests::temp_dir("fhirgate-bench");
    let child = Command::new(&bin)
        .args(["up", "--data"])
        .arg(&data)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-count",
            "1000",
            "--terminology",
        ])
        .arg(tests::shared_dir().join("terminology"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join("secrets/run.json"))
            && let Ok(run) = serde_json::from_str::<Value>(&text)
            && run["pid"] == child.id()
        {
            let auth = gateway::up::dev_auth(&data, false)?;
            let now = chrono::Utc::now().timestamp() as u64;
            let token = auth.mint(&Claims {
                sub: "bench".into(),
                iss: auth.issuer.clone(),
                aud: auth.audience.clone(),
                exp: now + 24 * 3600,
                iat: now,
                nbf: None,
                role: "system".into(),
                scope: "system/*.cruds".into(),
                practitioner: None,
                patient: None,
            })?;
            return Ok(Gateway {
                base: format!("http://{}/fhir", run["listen"].as_str().unwrap_or_default()),
                shard_urls: run["shard_urls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect(),
                child,
                data,
                token,
            });
        }
        if Instant::now() > deadline {
            bail!("fhirgate up did not come up within 180 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn patient(rng: &mut StdRng, n: usize) -> Value {
    let family = FAMILIES[rng.random_range(0..FAMILIES.len())];
    let given = GIVENS[rng.random_range(0..GIVENS.len())];
    let year = rng.random_range(1930..2020);
    let month = rng.random_range(1..=12);
    let day = rng.random_range(1..=28);
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.3.6.1.4.1.28284.6.2.2.1", "value": format!("{}{:07}", 30000 + n % 70000, n)}],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": format!("+372 5{:07}", n), "use": "mobile"}],
        "gender": if rng.random_bool(0.5) { "female" } else { "male" },
        "birthDate": format!("{year:04}-{month:02}-{day:02}"),
        "address": [{"line": [format!("{} tn {}", FAMILIES[n % FAMILIES.len()], n % 200 + 1)],
            "city": CITIES[rng.random_range(0..CITIES.len())], "postalCode": format!("{:05}", 10000 + n % 89999), "country": "EE"}]
    })
}

fn observation(rng: &mut StdRng, patient_id: &str) -> Value {
    let (code, display, unit, lo, hi) = LOINC[rng.random_range(0..LOINC.len())];
    let value = lo + (hi - lo) * rng.random::<f64>();
    // Two decimals kept as text: the store must keep `72.50` as written.
    let value: serde_json::Number = format!("{value:.2}").parse().unwrap_or_else(|_| 0.into());
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": format!("2024-{:02}-{:02}T{:02}:00:00Z", rng.random_range(1..=12), rng.random_range(1..=28), rng.random_range(0..24)),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    })
}

fn condition(rng: &mut StdRng, patient_id: &str) -> Value {
    let (icd, icd_display) = ICD10[rng.random_range(0..ICD10.len())];
    let (icpc, icpc_display) = ICPC2[rng.random_range(0..ICPC2.len())];
    json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": icd, "display": icd_display},
            {"system": "http://hl7.org/fhir/sid/icpc-2", "code": icpc, "display": icpc_display}
        ]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "onsetDateTime": format!("20{:02}-{:02}-01", rng.random_range(0..24), rng.random_range(1..=12))
    })
}

/// The same Condition with its codings in systems no table is loaded for: stored alike,
/// never checked (the "without validation" side of the validation cost).
fn unchecked(mut condition: Value) -> Value {
    for coding in condition["code"]["coding"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if let Some(system) = coding["system"].as_str() {
            coding["system"] =
                json!(system.replace("http://hl7.org/fhir/sid/", "http://example.org/unloaded/"));
        }
    }
    condition
}

/// A transaction Bundle: one new Patient and `n_obs` Observations of it, by `urn:uuid`.
fn patient_bundle(rng: &mut StdRng, n: usize, n_obs: usize) -> Value {
    bundle_of(patient(rng, n), rng, n, n_obs)
}

/// A patient of the scale load: a surname from the load's own pool (see [`LOAD_STEMS`]).
fn load_patient_bundle(rng: &mut StdRng, n: usize, n_obs: usize) -> Value {
    let mut p = patient(rng, n);
    p["name"][0]["family"] = json!(format!(
        "{}{}",
        LOAD_STEMS[n % LOAD_STEMS.len()],
        LOAD_ENDINGS[(n / LOAD_STEMS.len()) % LOAD_ENDINGS.len()]
    ));
    bundle_of(p, rng, n, n_obs)
}

fn bundle_of(patient: Value, rng: &mut StdRng, n: usize, n_obs: usize) -> Value {
    let full_url = format!("urn:uuid:00000000-0000-4000-8000-{n:012}");
    let mut entries = vec![json!({"fullUrl": full_url, "resource": patient,
        "request": {"method": "POST", "url": "Patient"}})];
    for _ in 0..n_obs {
        let mut obs = observation(rng, "x");
        obs["subject"] = json!({"reference": full_url});
        entries.push(json!({"resource": obs, "request": {"method": "POST", "url": "Observation"}}));
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Rows a baseline read phase fetches: type, id, and version for a vread.
type RawReads = Arc<Vec<(String, String, Option<u64>)>>;

/// One phase's measurements.
#[derive(Debug, Clone, Default)]
struct Measure {
    ops: usize,
    errors: usize,
    secs: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

impl Measure {
    fn throughput(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Latencies (ms) and errors of one side of a phase, over one or more slices.
#[derive(Default)]
struct Samples {
    lat: Vec<f64>,
    errors: usize,
    secs: f64,
}

impl Samples {
    fn measure(mut self) -> Measure {
        self.lat.sort_by(f64::total_cmp);
        let lat = &self.lat;
        let pct = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                lat[((lat.len() - 1) as f64 * p).round() as usize]
            }
        };
        Measure {
            ops: lat.len(),
            errors: self.errors,
            secs: self.secs,
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
        }
    }
}

/// One operation of a phase, by index (type-erased, so that a phase's sides can be listed).
type Op = Arc<dyn Fn(usize) -> OpFuture + Send + Sync>;
type OpFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// Wraps a closure as an [`Op`].
fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |i| Box::pin(f(i)))
}

/// Runs `op(i)` from `concurrency` workers, `i` taken from `next`, until `i` reaches `limit`
/// or `max_time` has passed; adds what it saw to `into`.
async fn drive_slice(
    concurrency: usize,
    next: &Arc<AtomicUsize>,
    limit: usize,
    max_time: Duration,
    op: &Op,
    into: &mut Samples,
) {
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                if start.elapsed() >= max_time {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("bench: first error: {e:#}");
                        }
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    for w in workers {
        if let Ok((l, e)) = w.await {
            into.lat.extend(l);
            into.errors += e;
        }
    }
    into.secs += start.elapsed().as_secs_f64();
    // Indices handed out past the limit were not run.
    next.fetch_min(limit, Ordering::Relaxed);
}

/// Runs `f(i)` from `concurrency` workers until `max_ops` operations or `max_time`.
async fn drive<F, Fut>(concurrency: usize, max_ops: usize, max_time: Duration, f: F) -> Measure
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut samples = Samples::default();
    let next = Arc::new(AtomicUsize::new(0));
    drive_slice(concurrency, &next, max_ops, max_time, &op(f), &mut samples).await;
    samples.measure()
}

/// Slices (at least) a compared phase is cut into per side.
const ROUNDS: usize = 4;

/// Runs the sides of a phase (the gateway's first, then its baselines) in turns — [`ROUNDS`]
/// slices each (rounded up to a multiple of the number of sides), the order rotating every
/// round (two sides: A B, B A, A B, B A), each slice an equal share of the operations and of
/// the time — so that a drift of the shared machine (a
/// checkpoint, autovacuum, a cache warming, another process) weighs on every side alike
/// rather than on whichever ran last. One [`Measure`] per side, in order.
async fn compare(
    concurrency: usize,
    max_ops: usize,
    max_time: Duration,
    sides: &[Op],
) -> Vec<Measure> {
    let next: Vec<Arc<AtomicUsize>> = sides
        .iter()
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let mut samples: Vec<Samples> = sides.iter().map(|_| Samples::default()).collect();
    // A multiple of the number of sides, so that each side goes first equally often.
    let rounds = ROUNDS.div_ceil(sides.len().max(1)) * sides.len().max(1);
    let slice_time = max_time / rounds as u32;
    for round in 0..rounds {
        let limit = if round + 1 == rounds {
            max_ops
        } else {
            (max_ops * (round + 1)).div_ceil(rounds)
        };
        for k in 0..sides.len() {
            let side = (k + round) % sides.len();
            let into = &mut samples[side];
            drive_slice(
                concurrency,
                &next[side],
                limit,
                slice_time,
                &sides[side],
                into,
            )
            .await;
        }
    }
    samples.into_iter().map(Samples::measure).collect()
}

/// An audit row of the gateway's size, on a chain of its own (outside the 16 real chains, so
/// `audit verify` of a bench cluster still walks only real chains).
async fn insert_audit_row(conn: impl sqlx::PgExecutor<'_>, chain: i32, seq: i64) -> Result<()> {
    let record = vec![b'x'; 420];
    let hash = vec![0u8; 32];
    sqlx::query("INSERT INTO audit (chain, seq, at, prev_hash, hash, record) VALUES ($1, $2, now(), $3, $3, $4)")
        .bind(chain)
        .bind(seq)
        .bind(&hash)
        .bind(&record)
        .execute(conn)
        .await?;
    Ok(())
}

/// The same storage work as a gateway write, straight through sqlx.
#[derive(Clone)]
struct Baseline {
    pools: Vec<PgPool>,
    map: ShardMap,
}

/// A prepared raw write: the rows a gateway create of the same resource produces.
struct RawWrite {
    rtype: String,
    id: String,
    bucket: u32,
    patient: Option<String>,
    body: Vec<u8>,
    index: Vec<model::index::IndexEntry>,
}

impl Baseline {
    fn prepare(&self, resource: &Value, patient: Option<&str>) -> Result<RawWrite> {
        let text = resource.to_string();
        let parsed = mappings::json::parse_resource(text.as_bytes(), &Default::default())?;
        let mut entity = mappings::entity::to_entity(&parsed);
        let bucket = match patient {
            Some(p) => self.map.patient_bucket(p),
            None => self.map.random_bucket(),
        };
        entity.id = self.map.new_id(bucket);
        entity.version = 1;
        if entity.source_type == "Patient" {
            entity.patient = Some(entity.id.clone());
        }
        Ok(RawWrite {
            rtype: entity.source_type.clone(),
            id: entity.id.clone(),
            bucket,
            patient: entity.patient.clone(),
            body: store::codec::encode(&entity)?,
            index: mappings::search::index_entries(&parsed),
        })
    }

    /// Writes one resource's rows and an audit row in one transaction.
    async fn write(&self, w: &RawWrite, audit_chain: i32, audit_seq: i64) -> Result<()> {
        self.write_all(std::slice::from_ref(w), audit_chain, audit_seq)
            .await
    }

    /// Writes several resources' rows (all on one shard) and one audit row in one
    /// transaction: what a single-shard transaction Bundle costs the store at least.
    async fn write_all(&self, ws: &[RawWrite], audit_chain: i32, audit_seq: i64) -> Result<()> {
        let first = ws.first().context("nothing to write")?;
        let pool = &self.pools[self.map.shard_of(first.bucket)];
        let mut tx = pool.begin().await?;
        for w in ws {
            Baseline::write_rows(&mut tx, w).await?;
        }
        insert_audit_row(&mut *tx, audit_chain, audit_seq).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_rows(tx: &mut sqlx::PgConnection, w: &RawWrite) -> Result<()> {
        sqlx::query(
            "WITH cur AS (INSERT INTO resources (rtype, id, bucket, version, deleted, updated_at, patient, body) \
               VALUES ($1, $2, $3, 1, false, now(), $4, $5)), \
             hist AS (INSERT INTO history (rtype, id, version, bucket, deleted, updated_at, body) \
               VALUES ($1, $2, 1, $3, false, now(), $5)) \
             INSERT INTO changes (rtype, id, version, op, at) VALUES ($1, $2, 1, 'create', now())",
        )
        .bind(&w.rtype)
        .bind(&w.id)
        .bind(w.bucket as i32)
        .bind(&w.patient)
        .bind(&w.body)
        .execute(&mut *tx)
        .await?;
        // The same column arrays the store binds.
        let store::IndexColumns {
            tok,
            st,
            dt,
            rf,
            qt,
        } = store::IndexColumns::new(&w.index)?;
        sqlx::query(
            "WITH i1 AS (INSERT INTO idx_token (rtype, id, param, system, code) \
                SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[])), \
             i2 AS (INSERT INTO idx_string (rtype, id, param, normalized, exact) \
                SELECT $1, $2, * FROM unnest($6::text[], $7::text[], $8::text[])), \
             i3 AS (INSERT INTO idx_date (rtype, id, param, low, high) \
                SELECT $1, $2, * FROM unnest($9::text[], $10::bigint[], $11::bigint[])), \
             i4 AS (INSERT INTO idx_quantity (rtype, id, param, system, code, low, high) \
                SELECT $1, $2, * FROM unnest($15::text[], $16::text[], $17::text[], \
                                            $18::text[]::numeric[], $19::text[]::numeric[])) \
             INSERT INTO idx_reference (rtype, id, param, target_type, target_id) \
                SELECT $1, $2, * FROM unnest($12::text[], $13::text[], $14::text[])",
        )
        .bind(&w.rtype)
        .bind(&w.id)
        .bind(&tok.0)
        .bind(&tok.1)
        .bind(&tok.2)
        .bind(&st.0)
        .bind(&st.1)
        .bind(&st.2)
        .bind(&dt.0)
        .bind(&dt.1)
        .bind(&dt.2)
        .bind(&rf.0)
        .bind(&rf.1)
        .bind(&rf.2)
        .bind(&qt.0)
        .bind(&qt.1)
        .bind(&qt.2)
        .bind(&qt.3)
        .bind(&qt.4)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// A read's audit row of the gateway's size, committed on its own on the row's shard (on
    /// a chain outside the real ones, like the writes' rows above).
    async fn audit_row(&self, id: &str, chain: i32, seq: i64) -> Result<()> {
        let bucket = self.map.server_id_bucket(id).context("server id")?;
        insert_audit_row(&self.pools[self.map.shard_of(bucket)], chain, seq).await
    }

    async fn read(&self, rtype: &str, id: &str, version: Option<u64>) -> Result<()> {
        let bucket = self.map.server_id_bucket(id).context("server id")?;
        let pool = &self.pools[self.map.shard_of(bucket)];
        let found = match version {
            None => sqlx::query("SELECT version, updated_at, body FROM resources WHERE rtype = $1 AND id = $2")
                .bind(rtype)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .is_some(),
            Some(v) => sqlx::query("SELECT version, updated_at, body FROM history WHERE rtype = $1 AND id = $2 AND version = $3")
                .bind(rtype)
                .bind(id)
                .bind(v as i64)
                .fetch_optional(pool)
                .await?
                .is_some(),
        };
        if !found {
            bail!("{rtype}/{id} not found");
        }
        Ok(())
    }
}

/// Peak resident set of a process since the last reset, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident set (Linux `clear_refs` 5), so each phase reports its own peak.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

struct Row {
    phase: String,
    concurrency: usize,
    gateway: Measure,
    baseline: Option<Measure>,
    /// Reads only: the baseline's read followed by the read's audit row, committed (the
    /// storage work DESIGN asks of a read, one commit per read).
    audited: Option<Measure>,
    rss_mib: f64,
}

impl Row {
    fn json(&self) -> Value {
        let m = |m: &Measure| {
            json!({"ops": m.ops, "errors": m.errors, "secs": round(m.secs), "throughput": round(m.throughput()),
                "p50_ms": round(m.p50_ms), "p95_ms": round(m.p95_ms), "p99_ms": round(m.p99_ms)})
        };
        json!({
            "phase": self.phase, "concurrency": self.concurrency, "gateway": m(&self.gateway),
            "baseline": self.baseline.as_ref().map(m),
            "ratio_throughput": self.baseline.as_ref().map(|b| round(self.gateway.throughput() / b.throughput().max(1e-9))),
            "baseline_audited": self.audited.as_ref().map(m),
            "ratio_audited": self.audited.as_ref().map(|b| round(self.gateway.throughput() / b.throughput().max(1e-9))),
            "gateway_peak_rss_mib": round(self.rss_mib),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Bench {
    http: reqwest::Client,
    gw: Gateway,
    baseline: Baseline,
    opts: Options,
    rows: Vec<Row>,
}

impl Bench {
    async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<String> {
        let resp = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .header("prefer", "return=minimal")
            .body(body.to_string())
            .send()
            .await?;
        if resp.status() != 201 {
            bail!(
                "POST answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no Location")?;
        // .../Type/id/_history/1
        let id = location.rsplit('/').nth(2).context("bad Location")?;
        Ok(id.to_owned())
    }

    async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<()> {
        let resp = http.get(url).bearer_auth(token).send().await?;
        if resp.status() != 200 {
            bail!("GET {url} answered {}", resp.status());
        }
        resp.bytes().await?;
        Ok(())
    }

    fn record(
        &mut self,
        phase: &str,
        concurrency: usize,
        gateway: Measure,
        baseline: Option<Measure>,
        audited: Option<Measure>,
        rss: f64,
    ) {
        let row = Row {
            phase: phase.into(),
            concurrency,
            gateway,
            baseline,
            audited,
            rss_mib: rss,
        };
        println!("{}", row.json());
        self.rows.push(row);
    }

    /// Runs a write phase's two sides (gateway, baseline) in turns and records them, with
    /// the gateway's peak RSS since the phase began.
    async fn compare_writes(
        &mut self,
        phase: &str,
        concurrency: usize,
        (max, time): (usize, Duration),
        sides: [Op; 2],
    ) {
        let mut m = compare(concurrency, max, time, &sides).await;
        let (baseline, gateway) = (m.pop(), m.pop());
        let rss = peak_rss_mib(self.gw.child.id());
        let gateway = gateway.unwrap_or_default();
        self.record(phase, concurrency, gateway, baseline, None, rss);
    }

    /// A create phase: the gateway creates `resources`, the baseline writes the same rows.
    async fn create_phase(
        &mut self,
        phase: &str,
        concurrency: usize,
        resources: Vec<(Value, Option<String>)>,
    ) -> Result<Vec<String>> {
        if !self.opts.wants(phase) {
            return Ok(Vec::new());
        }
        let max = self.opts.phase_ops.min(resources.len() / 2);
        let time = Duration::from_secs(self.opts.phase_secs);
        let pid = self.gw.child.id();
        let (gw_items, base_items) = resources.split_at(resources.len() / 2);
        let items = Arc::new(gw_items.to_vec());
        let created = Arc::new(std::sync::Mutex::new(Vec::new()));
        reset_peak(pid);
        let (http, token, base) = (
            self.http.clone(),
            self.gw.token.clone(),
            self.gw.base.clone(),
        );
        let (it, cr) = (items.clone(), created.clone());
        let gw_op = move |i: usize| {
            let (http, token, base, it, cr) = (
                http.clone(),
                token.clone(),
                base.clone(),
                it.clone(),
                cr.clone(),
            );
            async move {
                let (res, _) = &it[i];
                let rtype = res["resourceType"].as_str().unwrap_or_default();
                let id = Bench::post(&http, &format!("{base}/{rtype}"), &token, res).await?;
                if let Ok(mut c) = cr.lock() {
                    c.push(id);
                }
                Ok(())
            }
        };
        let prepared: Vec<RawWrite> = base_items
            .iter()
            .take(max)
            .map(|(r, p)| self.baseline.prepare(r, p.as_deref()))
            .collect::<Result<_>>()?;
        let prepared = Arc::new(prepared);
        let bl = self.baseline.clone();
        let seqs = Arc::new(AtomicUsize::new(1));
        let chain = 1000 + self.rows.len() as i32;
        let base_op = move |i: usize| {
            let (bl, prepared, seqs) = (bl.clone(), prepared.clone(), seqs.clone());
            async move {
                let seq = seqs.fetch_add(1, Ordering::Relaxed) as i64;
                bl.write(&prepared[i], chain, seq).await
            }
        };
        self.compare_writes(phase, concurrency, (max, time), [op(gw_op), op(base_op)])
            .await;
        let ids = created.lock().map(|c| c.clone()).unwrap_or_default();
        Ok(ids)
    }

    /// POSTs a transaction Bundle; returns the number of entries answered.
    async fn transact(
        http: &reqwest::Client,
        base: &str,
        token: &str,
        body: &Value,
    ) -> Result<usize> {
        let resp = http
            .post(format!("{base}/"))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await?;
        if resp.status() != 200 {
            bail!(
                "transaction answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let answer: Value = resp.json().await?;
        Ok(answer["entry"].as_array().map_or(0, Vec::len))
    }

    /// A transaction phase: the gateway runs `bundles`, the baseline writes the same rows
    /// (each bundle's on one shard) in one transaction per bundle.
    async fn transaction_phase(
        &mut self,
        phase: &str,
        concurrency: usize,
        bundles: Vec<Value>,
        raw: Vec<Vec<RawWrite>>,
    ) -> Result<()> {
        if !self.opts.wants(phase) {
            return Ok(());
        }
        let max = self.opts.phase_ops.min(bundles.len());
        let time = Duration::from_secs(self.opts.phase_secs);
        let pid = self.gw.child.id();
        reset_peak(pid);
        let (http, token, base) = (
            self.http.clone(),
            self.gw.token.clone(),
            self.gw.base.clone(),
        );
        let bundles = Arc::new(bundles);
        let gw_op = move |i: usize| {
            let (http, token, base, bundles) =
                (http.clone(), token.clone(), base.clone(), bundles.clone());
            async move {
                Bench::transact(&http, &base, &token, &bundles[i])
                    .await
                    .map(|_| ())
            }
        };
        let raw = Arc::new(raw);
        let bl = self.baseline.clone();
        let seqs = Arc::new(AtomicUsize::new(1));
        let chain = 1000 + self.rows.len() as i32;
        let base_op = move |i: usize| {
            let (bl, raw, seqs) = (bl.clone(), raw.clone(), seqs.clone());
            async move {
                let seq = seqs.fetch_add(1, Ordering::Relaxed) as i64;
                bl.write_all(&raw[i], chain, seq).await
            }
        };
        self.compare_writes(phase, concurrency, (max, time), [op(gw_op), op(base_op)])
            .await;
        Ok(())
    }

    /// A read phase over `paths` (relative URLs); `baseline` reads the same rows raw.
    async fn read_phase(
        &mut self,
        phase: &str,
        concurrency: usize,
        paths: Arc<Vec<String>>,
        raw: Option<RawReads>,
    ) {
        if !self.opts.wants(phase) || paths.is_empty() {
            return;
        }
        eprintln!("bench: {phase} at concurrency {concurrency}");
        let max = self.opts.phase_ops;
        let time = Duration::from_secs(self.opts.phase_secs);
        let pid = self.gw.child.id();
        reset_peak(pid);
        let (http, token, base) = (
            self.http.clone(),
            self.gw.token.clone(),
            self.gw.base.clone(),
        );
        let p = paths.clone();
        let gw_op = move |i: usize| {
            let (http, token, url) = (
                http.clone(),
                token.clone(),
                format!("{base}/{}", p[i % p.len()]),
            );
            async move { Bench::get(&http, &url, &token).await }
        };
        let (gateway, baseline, audited) = match raw {
            Some(raw) => {
                let (bl, r) = (self.baseline.clone(), raw.clone());
                let base_op = move |i: usize| {
                    let (bl, raw) = (bl.clone(), r.clone());
                    async move {
                        let (t, id, v) = &raw[i % raw.len()];
                        bl.read(t, id, *v).await
                    }
                };
                let bl = self.baseline.clone();
                let seqs = Arc::new(AtomicUsize::new(1));
                let chain = 1000 + self.rows.len() as i32;
                let audited_op = move |i: usize| {
                    let (bl, raw, seqs) = (bl.clone(), raw.clone(), seqs.clone());
                    async move {
                        let (t, id, v) = &raw[i % raw.len()];
                        bl.read(t, id, *v).await?;
                        let seq = seqs.fetch_add(1, Ordering::Relaxed) as i64;
                        bl.audit_row(id, chain, seq).await
                    }
                };
                let sides = [op(gw_op), op(base_op), op(audited_op)];
                let mut m = compare(concurrency, max, time, &sides).await.into_iter();
                (m.next().unwrap_or_default(), m.next(), m.next())
            }
            None => (drive(concurrency, max, time, gw_op).await, None, None),
        };
        let rss = peak_rss_mib(pid);
        self.record(phase, concurrency, gateway, baseline, audited, rss);
    }
}

/// Appends `--audit-records` records of a realistic size to the real chains (through the
/// store's own append, 1,000 per transaction), then times `audit verify` over every chain.
async fn audit_verify_figures(bench: &Bench) -> Result<String> {
    let target = bench.opts.audit_records;
    let record = store::audit::encode(&store::AuditRecord {
        subject: Some("bench".into()),
        role: Some("system".into()),
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("fhirgate-bench".into()),
        request_id: Some("0123456789abcdef0123456789abcdef".into()),
        interaction: "read".into(),
        method: "GET".into(),
        path: "/fhir/Patient/0123456789abcdef0123456789abcdef".into(),
        resource_type: Some("Patient".into()),
        resource_id: Some("0123456789abcdef0123456789abcdef".into()),
        version: Some(1),
        patients: vec!["0123456789abcdef0123456789abcdef".into()],
        outcome: 200,
        ..Default::default()
    })?;
    let batch: Vec<Vec<u8>> = vec![record; 1000];
    let started = Instant::now();
    let mut written = 0;
    let mut shard = 0;
    while written < target {
        let pool = &bench.baseline.pools[shard % bench.baseline.pools.len()];
        let mut tx = pool.begin().await?;
        let n = (target - written).min(batch.len());
        store::audit::append_encoded(&mut tx, &batch[..n]).await?;
        tx.commit().await?;
        written += n;
        shard += 1;
    }
    let append_secs = started.elapsed().as_secs_f64();
    let store = store::Store::connect(&store::StoreConfig {
        shards: bench
            .gw
            .shard_urls
            .iter()
            .map(store::ShardConfig::single)
            .collect(),
        n_buckets: DEFAULT_BUCKETS,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
        ..store::StoreConfig::default()
    })?;
    let started = Instant::now();
    let verdict = store.verify_audit().await?;
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    let total = match verdict {
        Ok(n) => n,
        Err(broken) => bail!("the audit log of the bench is broken: {broken}"),
    };
    let line = json!({"phase": "audit verify", "records": total, "secs": round(secs),
        "records_per_sec": round(total as f64 / secs.max(0.001))});
    println!("{line}");
    Ok(format!(
        "Audit: `audit verify` walked {total} records (every chain of both shards; {target} of them appended for this in {append_secs:.0} s) in {secs:.1} s, {:.0} records/s.",
        total as f64 / secs.max(0.001)
    ))
}

async fn database_bytes(pools: &[PgPool]) -> Result<i64> {
    sum_over(pools, "SELECT pg_database_size(current_database())").await
}

/// `sql`'s one number, summed over every shard.
async fn sum_over(pools: &[PgPool], sql: &'static str) -> Result<i64> {
    let mut total = 0i64;
    for pool in pools {
        total += sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?;
    }
    Ok(total)
}

/// Waits, at most `limit`, until autovacuum has nothing left to do on any shard (two polls
/// in a row): after a bulk load autovacuum vacuums and analyzes the grown tables for
/// minutes, and the phases after the load are to measure the size of the store, not that
/// aftermath (the state a store reaches on its own once a load is over). The gateway's role
/// cannot see autovacuum workers in `pg_stat_activity`, so the test is autovacuum's own:
/// no table has more changes since its last analyze, or inserts since its last vacuum, than
/// the thresholds that trigger one. Returns how long it waited, the most tables seen waiting
/// at once, and whether autovacuum caught up (rather than the limit ending the wait).
async fn settle(pools: &[PgPool], limit: Duration) -> Result<(Duration, i64, bool)> {
    let start = Instant::now();
    let (mut quiet, mut most) = (0, 0i64);
    while quiet < 2 && start.elapsed() < limit {
        let due = sum_over(
            pools,
            "SELECT count(*) FROM pg_stat_user_tables WHERE \
               n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 \
                 + current_setting('autovacuum_analyze_scale_factor')::float8 * n_live_tup \
               OR n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8 \
                 + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * n_live_tup",
        )
        .await?;
        quiet = if due == 0 { quiet + 1 } else { 0 };
        most = most.max(due);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "bench: settled after {:.0} s (at most {most} tables awaiting autovacuum at once)",
        start.elapsed().as_secs_f64()
    );
    Ok((start.elapsed(), most, quiet >= 2))
}

/// Resources (current versions) on every shard.
async fn resource_count(pools: &[PgPool]) -> Result<i64> {
    sum_over(pools, "SELECT count(*) FROM resources").await
}

fn markdown(rows: &[Row], opts: &Options, notes: &[String]) -> String {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut md = String::new();
    md.push_str(&format!(
        "Machine: {cores} cores, {mem:.0} GiB; commit `{commit}`; {}.\n\nCommand: `./dev bench {}`\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.join(" ")
    ));
    md.push_str(&format!(
        "Each cell: up to {} operations or {} s per phase and concurrency. Latencies in ms.\n\n",
        opts.phase_ops, opts.phase_secs
    ));
    md.push_str("| phase | conc | gateway ops/s | p50 | p95 | p99 | errors | baseline ops/s | baseline p99 | ratio | read + audit row ops/s | ratio to it | gateway peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let g = &r.gateway;
        let (bt, bp99, ratio) = match &r.baseline {
            Some(b) => (
                format!("{:.0}", b.throughput()),
                format!("{:.2}", b.p99_ms),
                format!("{:.2}", g.throughput() / b.throughput().max(1e-9)),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let (at, aratio) = match &r.audited {
            Some(a) => (
                format!("{:.0}", a.throughput()),
                format!("{:.2}", g.throughput() / a.throughput().max(1e-9)),
            ),
            None => ("–".into(), "–".into()),
        };
        md.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {bt} | {bp99} | {ratio} | {at} | {aratio} | {:.0} |\n",
            r.phase,
            r.concurrency,
            g.throughput(),
            g.p50_ms,
            g.p95_ms,
            g.p99_ms,
            g.errors,
            r.rss_mib
        ));
    }
    for n in notes {
        md.push_str(&format!("\n{n}\n"));
    }
    md
}

fn write_benchmarks_md(section: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    let new = match (text.find(start), text.find(end)) {
        (Some(a), Some(b)) if a < b => format!("{}{start}\n{section}\n{}", &text[..a], &text[b..]),
        _ => format!("{text}\n{start}\n{section}\n{end}\n"),
    };
    std::fs::write(&path, new)?;
    Ok(())
}

/// Resident set of this process, in MiB.
fn own_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Terminology in-process: load time and memory of the shared tables, code lookups per
/// second, and what validating a Condition's codes costs next to a create.
fn terminology_figures(smoke: bool) -> Result<String> {
    let dir = tests::shared_dir().join("terminology");
    let before = own_rss_mib();
    let start = Instant::now();
    let t = terminology::Terminology::load_dir(&dir)?;
    let load_ms = start.elapsed().as_secs_f64() * 1000.0;
    let mem = own_rss_mib() - before;
    let codes: Vec<(&str, &str)> = vec![
        (terminology::ICD10, "J45.0"),
        (terminology::ICD10, "E11"),
        (terminology::ICD10, "Z99.99"),
        (terminology::ICD10, "J40-J47"),
        (terminology::ICPC2, "K86"),
        (terminology::ICPC2, "-50"),
        (terminology::ICPC2, "K"),
        (terminology::ICD10CM, "S72.001A"),
        (terminology::ICD10CM, "E11.9"),
    ];
    let n = if smoke { 20_000 } else { 2_000_000 };
    let start = Instant::now();
    let mut valid = 0usize;
    for i in 0..n {
        let (system, code) = codes[i % codes.len()];
        if t.validate(system, code, None).is_valid() {
            valid += 1;
        }
    }
    let lookups = n as f64 / start.elapsed().as_secs_f64();
    let mut rng = StdRng::seed_from_u64(7);
    let cond = condition(&mut rng, "p");
    let parsed = mappings::json::parse_resource(cond.to_string().as_bytes(), &Default::default())?;
    let policy = gateway::TerminologyPolicy::default();
    let m = if smoke { 2_000 } else { 200_000 };
    let start = Instant::now();
    for _ in 0..m {
        if gateway::check_codes(&parsed, &t, &policy).is_err() {
            bail!("the bench Condition's codes do not validate");
        }
    }
    let per_check_us = start.elapsed().as_secs_f64() * 1e6 / m as f64;
    let line = json!({"phase": "terminology", "load_ms": round(load_ms), "memory_mib": round(mem),
        "validate_per_sec": round(lookups), "valid": valid, "check_codes_per_condition_us": round(per_check_us)});
    println!("{line}");
    Ok(format!(
        "Terminology (in-process, shared tables: ICD-10 WHO, ICPC-2 + map, ICD-10-CM 98k rows): load {load_ms:.0} ms, \
         {mem:.0} MiB resident; `validate` {lookups:.0} lookups/s on one core; validating a Condition's two \
         codings (ICD-10 + ICPC-2) costs {per_check_us:.1} µs, against the create's p50 in the table above."
    ))
}

/// The mapping in-process (issue 3): every shared R4 example parsed, checked against the R4
/// structure, mapped onto an entity, encoded as stored, decoded, rendered back and written
/// as JSON — against a `serde_json::Value` parse and write of the same bytes, in one run.
fn mapping_figures(smoke: bool) -> Result<String> {
    let dir = tests::shared_dir().join("fhir-data").join("r4-examples");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        files.push(std::fs::read(entry?.path())?);
    }
    files.sort();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let rounds = if smoke { 1 } else { 20 };
    let once = |work: &dyn Fn(&[u8]) -> Result<usize>| -> Result<f64> {
        let start = Instant::now();
        let mut out = 0usize;
        for f in &files {
            out += work(f)?;
        }
        std::hint::black_box(out);
        Ok(start.elapsed().as_secs_f64())
    };
    let value_round_trip = |f: &[u8]| -> Result<usize> {
        let v: Value = serde_json::from_slice(f)?;
        Ok(serde_json::to_vec(&v)?.len())
    };
    let mapping = |f: &[u8]| -> Result<usize> {
        let parsed = mappings::json::parse_resource(f, &Default::default())?;
        std::hint::black_box(mappings::rules::check(&parsed));
        let entity = mappings::entity::into_entity(parsed);
        let stored = store::codec::encode(&entity)?;
        let back = store::codec::decode(&stored)?;
        let rendered = mappings::entity::into_fhir(back, None);
        Ok(serde_json::to_vec(&rendered)?.len())
    };
    // Rounds alternate, so that both sides see the same machine (its speed drifts).
    let (mut base_runs, mut mapped_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        base_runs.push(once(&value_round_trip)?);
        mapped_runs.push(once(&mapping)?);
    }
    let median = |mut runs: Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let ratios: Vec<f64> = mapped_runs
        .iter()
        .zip(&base_runs)
        .map(|(m, b)| m / b)
        .collect();
    let baseline = median(base_runs);
    let mapped = median(mapped_runs);
    let n = files.len() as f64;
    let mb = bytes as f64 / 1e6;
    // The median of the per-round ratios: each round's two sides ran back to back.
    let ratio = median(ratios);
    let line = json!({"phase": "mapping", "resources": files.len(), "bytes": bytes,
        "mapped_per_sec": round(n / mapped), "mapped_mb_per_sec": round(mb / mapped),
        "value_per_sec": round(n / baseline), "value_mb_per_sec": round(mb / baseline),
        "cost_ratio": round(ratio)});
    println!("{line}");
    Ok(format!(
        "Mapping (in-process, the {} shared R4 examples, {:.1} MB, median of {rounds} rounds): parse, R4 structure \
         check, entity, stored encoding and back, FHIR JSON out: {:.0} resources/s, {:.1} MB/s; a \
         `serde_json::Value` parse and write of the same bytes: {:.0} resources/s, {:.1} MB/s — the mapping \
         costs **{ratio:.2}×** the plain round trip (target ≤ 3×).",
        files.len(),
        mb,
        n / mapped,
        mb / mapped,
        n / baseline,
        mb / baseline,
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = parse_args()?;
    let terminology_note = terminology_figures(opts.smoke)?;
    let mapping_note = mapping_figures(opts.smoke)?;
    if opts.mapping_only {
        println!("{mapping_note}");
        return Ok(());
    }
    let gw = tokio::task::spawn_blocking(start_gateway).await??;
    let mut pools = Vec::new();
    for url in &gw.shard_urls {
        pools.push(
            PgPoolOptions::new()
                .max_connections(64)
                .connect(url)
                .await?,
        );
    }
    let baseline = Baseline {
        map: ShardMap::round_robin(DEFAULT_BUCKETS, pools.len()),
        pools,
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut bench = Bench {
        http,
        gw,
        baseline,
        opts,
        rows: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(bench.opts.seed);
    let mut notes = vec![terminology_note, mapping_note];
    let concurrencies = bench.opts.concurrency.clone();
    let per_phase = bench.opts.phase_ops * 2;

    let mut patients: Vec<String> = Vec::new();
    let mut observations: Vec<String> = Vec::new();
    let mut counter = 0usize;
    for &c in &concurrencies {
        let items: Vec<(Value, Option<String>)> = (0..per_phase)
            .map(|_| {
                counter += 1;
                (patient(&mut rng, counter), None)
            })
            .collect();
        patients.extend(bench.create_phase("create Patient", c, items).await?);
    }
    if patients.is_empty() {
        bail!("no patient was created");
    }
    for c in bench.opts.concurrencies_of(&["create Observation"]) {
        let items: Vec<(Value, Option<String>)> = (0..per_phase)
            .map(|_| {
                let p = patients[rng.random_range(0..patients.len())].clone();
                (observation(&mut rng, &p), Some(p))
            })
            .collect();
        observations.extend(bench.create_phase("create Observation", c, items).await?);
    }
    for c in bench
        .opts
        .concurrencies_of(&["create Condition", "create Condition (codes unchecked)"])
    {
        let items: Vec<(Value, Option<String>)> = (0..per_phase)
            .map(|_| {
                let p = patients[rng.random_range(0..patients.len())].clone();
                (condition(&mut rng, &p), Some(p))
            })
            .collect();
        bench.create_phase("create Condition", c, items).await?;
        // The same Conditions with codes the server does not check: the validation's cost.
        let items: Vec<(Value, Option<String>)> = (0..per_phase)
            .map(|_| {
                let p = patients[rng.random_range(0..patients.len())].clone();
                (unchecked(condition(&mut rng, &p)), Some(p))
            })
            .collect();
        bench
            .create_phase("create Condition (codes unchecked)", c, items)
            .await?;
    }
    for c in bench
        .opts
        .concurrencies_of(&["transaction: Patient + 10 Observations"])
    {
        let n = bench.opts.phase_ops.div_ceil(10).max(4);
        let bundles: Vec<Value> = (0..n)
            .map(|i| patient_bundle(&mut rng, 2_000_000 + i, 10))
            .collect();
        let raw: Vec<Vec<RawWrite>> = (0..n)
            .map(|i| {
                let bundle = patient_bundle(&mut rng, 3_000_000 + i, 10);
                let mut rows = Vec::new();
                let mut patient_id = None;
                for entry in bundle["entry"].as_array().into_iter().flatten() {
                    let w = bench
                        .baseline
                        .prepare(&entry["resource"], patient_id.as_deref())?;
                    if w.rtype == "Patient" {
                        patient_id = Some(w.id.clone());
                    }
                    rows.push(w);
                }
                Ok(rows)
            })
            .collect::<Result<_>>()?;
        bench
            .transaction_phase("transaction: Patient + 10 Observations", c, bundles, raw)
            .await?;
    }
    let reads: Arc<Vec<String>> =
        Arc::new(patients.iter().map(|id| format!("Patient/{id}")).collect());
    let raw_reads = Arc::new(
        patients
            .iter()
            .map(|id| ("Patient".to_owned(), id.clone(), None))
            .collect::<Vec<_>>(),
    );
    let vreads: Arc<Vec<String>> = Arc::new(
        patients
            .iter()
            .map(|id| format!("Patient/{id}/_history/1"))
            .collect(),
    );
    let raw_vreads = Arc::new(
        patients
            .iter()
            .map(|id| ("Patient".to_owned(), id.clone(), Some(1)))
            .collect::<Vec<_>>(),
    );
    let obs_search: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| {
                let p = &patients[rng.random_range(0..patients.len())];
                let (code, ..) = LOINC[rng.random_range(0..LOINC.len())];
                format!("Observation?patient={p}&code=http://loinc.org|{code}")
            })
            .collect(),
    );
    let pat_search: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| {
                let f = FAMILIES[rng.random_range(0..FAMILIES.len())];
                format!(
                    "Patient?family={f}&birthdate=ge{}",
                    rng.random_range(1930..2020)
                )
            })
            .collect(),
    );
    let includes: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| {
                let p = &patients[rng.random_range(0..patients.len())];
                format!("Observation?patient={p}&_include=Observation:patient")
            })
            .collect(),
    );
    let revincludes: Arc<Vec<String>> = Arc::new(
        (0..1000)
            .map(|_| {
                let p = &patients[rng.random_range(0..patients.len())];
                format!("Patient?_id={p}&_revinclude=Observation:patient")
            })
            .collect(),
    );
    let searches = [
        ("search Observation?patient&code", obs_search.clone()),
        ("search Patient?family&birthdate", pat_search.clone()),
        ("search Observation?patient&_include", includes),
        ("search Patient?_id&_revinclude", revincludes),
    ];
    let histories: Arc<Vec<String>> = Arc::new(
        observations
            .iter()
            .map(|id| format!("Observation/{id}/_history"))
            .collect(),
    );
    for &c in &concurrencies {
        bench
            .read_phase(
                "read Patient by id",
                c,
                reads.clone(),
                Some(raw_reads.clone()),
            )
            .await;
    }
    for &c in &concurrencies {
        bench
            .read_phase("vread Patient", c, vreads.clone(), Some(raw_vreads.clone()))
            .await;
    }
    for (name, queries) in &searches {
        for &c in &concurrencies {
            bench.read_phase(name, c, queries.clone(), None).await;
        }
    }
    if !histories.is_empty() {
        for &c in &concurrencies {
            bench
                .read_phase("history of an Observation", c, histories.clone(), None)
                .await;
        }
    }
    // `$everything` of patients with 100 resources each (1 Patient + 99 Observations, made by
    // transactions), and the history of those patients' resources.
    let mut everything: Vec<String> = Vec::new();
    let mut patient_histories: Vec<String> = Vec::new();
    let big_patients = [
        "Patient/$everything (100 resources)",
        "history of a patient's resources",
    ];
    let n_big = if big_patients.iter().any(|p| bench.opts.wants(p)) {
        8
    } else {
        0
    };
    for n in 0..n_big {
        let bundle = patient_bundle(&mut rng, 5_000_000 + n, 99);
        let response: Value = bench
            .http
            .post(format!("{}/", bench.gw.base))
            .bearer_auth(&bench.gw.token)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await?
            .json()
            .await?;
        let location = |i: usize| {
            response["entry"][i]["response"]["location"]
                .as_str()
                .and_then(|l| l.split('/').nth(1))
                .map(str::to_owned)
        };
        let patient = location(0).context("the $everything setup transaction failed")?;
        everything.push(format!("Patient/{patient}/$everything?_count=100"));
        for i in 1..=5 {
            if let Some(obs) = location(i) {
                patient_histories.push(format!("Observation/{obs}/_history"));
            }
        }
        patient_histories.push(format!("Patient/{patient}/_history"));
    }
    let everything = Arc::new(everything);
    let patient_histories = Arc::new(patient_histories);
    for &c in &concurrencies {
        bench
            .read_phase(
                "Patient/$everything (100 resources)",
                c,
                everything.clone(),
                None,
            )
            .await;
    }
    for &c in &concurrencies {
        bench
            .read_phase(
                "history of a patient's resources",
                c,
                patient_histories.clone(),
                None,
            )
            .await;
    }

    if bench.opts.scale_to > 0 {
        let loaded_before = database_bytes(&bench.baseline.pools).await?;
        let resources_before = resource_count(&bench.baseline.pools).await?;
        let target = bench.opts.scale_to;
        let start = Instant::now();
        // Bundles of 5 new patients with 19 Observations each (100 resources; the patients
        // fall on either shard, so most bundles commit in two phases).
        let n_bundles = target.div_ceil(100);
        let bundles: Arc<Vec<Value>> = Arc::new(
            (0..n_bundles)
                .map(|b| {
                    let mut entries = Vec::new();
                    for k in 0..5 {
                        let one = load_patient_bundle(&mut rng, 4_000_000 + b * 5 + k, 19);
                        entries.extend(one["entry"].as_array().cloned().unwrap_or_default());
                    }
                    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                })
                .collect(),
        );
        let (http, token, base) = (
            bench.http.clone(),
            bench.gw.token.clone(),
            bench.gw.base.clone(),
        );
        let written = Arc::new(AtomicUsize::new(0));
        let w = written.clone();
        let load = drive(8, n_bundles, Duration::from_secs(3600), move |i| {
            let (http, token, base, bundles, w) = (
                http.clone(),
                token.clone(),
                base.clone(),
                bundles.clone(),
                w.clone(),
            );
            async move {
                let n = Bench::transact(&http, &base, &token, &bundles[i]).await?;
                w.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
        })
        .await;
        let loaded = written.load(Ordering::Relaxed);
        let bytes = database_bytes(&bench.baseline.pools).await? - loaded_before;
        let secs = start.elapsed().as_secs_f64();
        let (settled, due, caught_up) =
            settle(&bench.baseline.pools, Duration::from_secs(300)).await?;
        let wait = if caught_up {
            "once autovacuum had caught up with"
        } else {
            "with autovacuum still behind on (the 300 s wait ran out)"
        };
        notes.push(format!(
            "Load: the store held {resources_before} resources (the phases above, gateway and baselines); {loaded} more in {} transaction Bundles of 100 (5 Patients × 19 Observations) at concurrency 8 in {secs:.0} s ({:.0} resources/s, {} failed bundles); the shards' databases grew {:.0} MiB, {:.2} GiB per million resources (primaries only; each standby holds the same again). The phases marked @{target} ran after it, {wait} the loaded tables ({} of them awaiting it after the load; waited {:.0} s, at most 300).",
            load.ops, loaded as f64 / secs.max(0.001), load.errors,
            bytes as f64 / 1048576.0, bytes as f64 / 1073741824.0 / (loaded.max(1) as f64 / 1e6),
            due,
            settled.as_secs_f64()
        ));
        bench
            .read_phase(
                &format!("read Patient by id @{target}"),
                16,
                reads.clone(),
                Some(raw_reads.clone()),
            )
            .await;
        for (name, queries) in &searches {
            bench
                .read_phase(&format!("{name} @{target}"), 16, queries.clone(), None)
                .await;
        }
    }
    if bench.opts.hold_secs > 0 {
        eprintln!(
            "holding for {} s: gateway {} (bearer token in {}), shards {:?}",
            bench.opts.hold_secs,
            bench.gw.base,
            bench.gw.data.join("bench-token").display(),
            bench.gw.shard_urls
        );
        std::fs::write(bench.gw.data.join("bench-token"), &bench.gw.token)?;
        tokio::time::sleep(Duration::from_secs(bench.opts.hold_secs)).await;
    }
    notes.push(audit_verify_figures(&bench).await?);
    if bench.opts.write_md {
        write_benchmarks_md(&markdown(&bench.rows, &bench.opts, &notes))?;
    }
    let errors: usize = bench.rows.iter().map(|r| r.gateway.errors).sum();
    drop(bench);
    if errors > 0 {
        bail!("{errors} gateway requests failed");
    }
    Ok(())
}
