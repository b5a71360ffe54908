//! The `fhirgate` binary as a user runs it: `up`, `token`, `audit verify`, SIGTERM, restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use store::cluster::{ClusterSpec, LocalCluster};

use crate::Env;

crate::tests![
    up_serves_survives_restart_and_leaves_no_orphans,
    missing_postgres_is_one_clear_line,
    two_phase_commit_survives_a_crash_at_either_step,
    production_mode_verifies_with_configured_keys,
    audit_tampering_and_truncation_are_detected,
    up_ha_serves_restarts_and_stops_clean
];

fn binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("target dir")?;
    let bin = dir.join("fhirgate");
    ensure!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p gateway --bin fhirgate)",
        bin.display()
    );
    Ok(bin)
}

pub(crate) struct Up {
    child: Child,
    pub(crate) base: String,
    pids: Vec<u32>,
}

fn postmaster_pids(data: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(data.join("pg"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("postmaster.pid"))
            && let Some(pid) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            pids.push(pid);
        }
    }
    pids
}

pub(crate) async fn start_up(data: &Path) -> Result<Up> {
    start_up_with(data, &[]).await
}

async fn start_up_with_args(data: &Path, args: &[&str]) -> Result<Up> {
    start_up_full(data, &[], args).await
}

async fn start_up_with(data: &Path, env: &[(&str, &str)]) -> Result<Up> {
    start_up_full(data, env, &[]).await
}

async fn start_up_full(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Result<Up> {
    // Its output goes beside the data folder, for the failure message below.
    let log_path = data.with_extension("log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut child = Command::new(binary()?)
        .args(["up", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let run_file = data.join("secrets/run.json");
    loop {
        if let Ok(text) = std::fs::read_to_string(&run_file)
            && let Ok(run) = serde_json::from_str::<Value>(&text)
            && run["pid"] == child.id()
        {
            let base = format!("http://{}/fhir", run["listen"].as_str().unwrap_or_default());
            return Ok(Up {
                child,
                base,
                pids: postmaster_pids(data),
            });
        }
        let exited = child.try_wait()?;
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fhirgate up did not come up ({}); its output ends:\n{}",
                match exited {
                    Some(status) => format!("exited with {status}"),
                    None => "timed out".into(),
                },
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn stop_up(up: Up) -> Result<()> {
    stop_up_expecting(up, 4).await
}

async fn stop_up_expecting(mut up: Up, servers: usize) -> Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = up.child.try_wait()? {
            ensure!(status.success(), "fhirgate up exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = up.child.kill();
            bail!("fhirgate up did not stop within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        up.pids.len() == servers,
        "expected {servers} PostgreSQL servers, saw {:?}",
        up.pids
    );
    for pid in &up.pids {
        ensure!(!alive(*pid), "PostgreSQL {pid} outlived fhirgate up");
    }
    Ok(())
}

/// Whether a process runs (a zombie, which this machine's init may leave unreaped, is gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

pub(crate) fn fhirgate(args: &[&str], data: &Path) -> Result<(bool, String)> {
    let out = Command::new(binary()?)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    ))
}

async fn up_serves_survives_restart_and_leaves_no_orphans(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-up");
    let result = scenario(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

async fn scenario(data: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let up = start_up(data).await?;
    let (ok, token) = fhirgate(
        &["token", "--role", "system", "--scope", "system/*.cruds"],
        data,
    )?;
    ensure!(ok && token.split('.').count() == 3, "token: {token}");
    let resp = http.post(format!("{}/Patient", up.base)).bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": "Persistent"}], "birthDate": "1970-01-01"}).to_string())
        .send().await?;
    ensure!(resp.status() == 201, "create: {}", resp.status());
    let created: Value = resp.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (ok, out) = fhirgate(&["audit", "verify"], data)?;
    ensure!(ok, "audit verify while running: {out}");
    // Each shard: its primary and a streaming standby with its lag.
    let (ok, out) = fhirgate(&["shards", "status"], data)?;
    ensure!(
        ok && out.matches("primary 127.0.0.1:").count() == 2
            && out.matches(" standby ").count() == 2
            && out.contains("lag ")
            && out.matches("512 buckets (map version 1)").count() == 2,
        "shards status: {out}"
    );
    // A GP outside their relationships: 404, until they state a reason; the command lists it.
    let (ok, gp) = fhirgate(
        &[
            "token",
            "--role",
            "gp",
            "--practitioner",
            "Practitioner/dr-who",
            "--scope",
            "user/*.rs",
        ],
        data,
    )?;
    ensure!(ok, "gp token: {gp}");
    let url = format!("{}/Patient/{id}", up.base);
    let resp = http.get(&url).bearer_auth(&gp).send().await?;
    ensure!(
        resp.status() == 404,
        "gp outside relationships: {}",
        resp.status()
    );
    let resp = http
        .get(&url)
        .bearer_auth(&gp)
        .header("x-break-glass-reason", "cli test emergency")
        .send()
        .await?;
    ensure!(resp.status() == 200, "break-glass read: {}", resp.status());
    let (ok, out) = fhirgate(&["audit", "break-glass"], data)?;
    ensure!(
        ok && out.contains("cli test emergency") && out.contains("1 request(s)"),
        "audit break-glass: {out}"
    );
    stop_up(up).await?;

    let up = start_up(data).await?;
    let resp = http
        .get(format!("{}/Patient/{id}", up.base))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "read after restart: {}",
        resp.status()
    );
    let back: Value = resp.json().await?;
    ensure!(back["name"] == created["name"] && back["meta"] == created["meta"]);

    // A third shard, added while the server runs: it gets its share, the running gateway
    // follows the map, the data stays readable, and `up` stops the new nodes too.
    let (ok, out) = fhirgate(&["shards", "add", "--chunk", "128"], data)?;
    ensure!(ok, "shards add: {out}");
    let report: Value = serde_json::from_str(&out).with_context(|| format!("shards add: {out}"))?;
    ensure!(report["buckets"] == 341, "shards add: {out}");
    let (ok, out) = fhirgate(&["shards", "status"], data)?;
    ensure!(
        ok && out.matches("primary 127.0.0.1:").count() == 3
            && out.contains("shard 2: primary")
            && out.contains("341 buckets"),
        "shards status after add: {out}"
    );
    let resp = http
        .get(format!("{}/Patient/{id}", up.base))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "read after the move: {}",
        resp.status()
    );
    for i in 0..20 {
        let resp = http
            .post(format!("{}/Patient", up.base))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Patient", "name": [{"family": format!("After{i}")}]})
                    .to_string(),
            )
            .send()
            .await?;
        ensure!(
            resp.status() == 201,
            "create after the move: {}",
            resp.status()
        );
    }
    let all_servers = postmaster_pids(data);
    ensure!(all_servers.len() == 6, "servers after add: {all_servers:?}");
    stop_up(up).await?;
    for pid in all_servers {
        ensure!(
            !alive(pid),
            "PostgreSQL {pid} (an added shard's) outlived fhirgate up"
        );
    }

    // With the server down, `audit verify` starts the cluster itself.
    let (ok, out) = fhirgate(&["audit", "verify"], data)?;
    ensure!(ok && out.contains("intact"), "audit verify offline: {out}");

    // Tamper with one record as the database superuser (triggers disabled): verify names it.
    let mut cluster =
        tokio::task::block_in_place(|| LocalCluster::start(data, &ClusterSpec::default()))?;
    let tampered = async {
        for shard in cluster.shards() {
            let mut conn =
                PgConnection::connect(&cluster.superuser_url(&shard.primary, "fhirgate")).await?;
            // The gateway's role may not change the log, and neither may anyone with triggers on.
            let refused = sqlx::query("UPDATE audit SET record = record")
                .execute(&mut conn)
                .await;
            ensure!(refused.is_err(), "the audit table accepted an UPDATE");
            let refused = sqlx::query("TRUNCATE audit").execute(&mut conn).await;
            ensure!(refused.is_err(), "the audit table accepted a TRUNCATE");
            sqlx::query("ALTER TABLE audit DISABLE TRIGGER USER")
                .execute(&mut conn)
                .await?;
            let n = sqlx::query(
                "UPDATE audit SET record = convert_to('{\"forged\":true}', 'UTF8') \
                 WHERE (chain, seq) = (SELECT chain, seq FROM audit ORDER BY chain, seq LIMIT 1)",
            )
            .execute(&mut conn)
            .await?
            .rows_affected();
            sqlx::query("ALTER TABLE audit ENABLE TRIGGER USER")
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            if n == 1 {
                return Ok(());
            }
        }
        bail!("no audit record to tamper with")
    }
    .await;
    tokio::task::block_in_place(|| cluster.stop())?;
    tampered?;
    let (ok, out) = fhirgate(&["audit", "verify"], data)?;
    ensure!(
        !ok && out.contains("BROKEN") && out.contains("record 1"),
        "audit verify after tampering: {out}"
    );
    Ok(())
}

async fn up_ha_serves_restarts_and_stops_clean(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-up-ha");
    let result = ha_scenario(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

/// Processes (other than zombies) working in a folder under `data` (pg_autoctl keepers and
/// postgres servers chdir into their data directories).
fn processes_under(data: &Path) -> Vec<u32> {
    let Ok(data) = std::fs::canonicalize(data) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&data))
                && alive(pid)
        })
        .collect()
}

/// `up --ha`: every shard under pg_auto_failover. Serves, shows its shards, kills nothing
/// on its own; SIGTERM stops the keepers and servers; a restart on the same folder serves
/// the same data.
async fn ha_scenario(data: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let up = start_up_with_args(data, &["--ha"]).await?;
    let (ok, token) = fhirgate(
        &["token", "--role", "system", "--scope", "system/*.cruds"],
        data,
    )?;
    ensure!(ok, "token: {token}");
    let resp = http
        .post(format!("{}/Patient", up.base))
        .bearer_auth(&token)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "name": [{"family": "Available"}]}).to_string())
        .send()
        .await?;
    ensure!(resp.status() == 201, "create: {}", resp.status());
    let created: Value = resp.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (ok, out) = fhirgate(&["shards", "status"], data)?;
    ensure!(
        ok && out.matches("primary 127.0.0.1:").count() == 2
            && out.matches(" standby ").count() == 2,
        "shards status: {out}"
    );
    ensure!(
        data.join("autofailover.json").exists() && data.join("pg/monitor").exists(),
        "no pg_auto_failover layout in {}",
        data.display()
    );
    // A monitor and two nodes per shard.
    stop_up_expecting(up, 5).await?;
    let left = processes_under(data);
    ensure!(left.is_empty(), "processes outlived fhirgate up: {left:?}");

    // Restart: the same folder is a pg_auto_failover cluster again (no --ha needed).
    let up = start_up(data).await?;
    let resp = http
        .get(format!("{}/Patient/{id}", up.base))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "read after restart: {}",
        resp.status()
    );
    stop_up_expecting(up, 5).await?;
    let left = processes_under(data);
    ensure!(
        left.is_empty(),
        "processes outlived the restarted up: {left:?}"
    );
    Ok(())
}

async fn missing_postgres_is_one_clear_line(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-nopg");
    let out = Command::new(binary()?)
        .args(["up", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .env("FHIRGATE_PG_BIN", "/nonexistent/postgresql/bin")
        .output()?;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "up succeeded without PostgreSQL");
    // One clear line naming what is wrong (the message for binaries missing from the
    // machine altogether, naming the package, is checked by the launcher's own tests).
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == 1 && lines[0].contains("initdb") && lines[0].contains("postgresql"),
        "stderr: {stderr}"
    );
    Ok(())
}

async fn two_phase_commit_survives_a_crash_at_either_step(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-2pc");
    let result = crash_scenario(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

/// Prepared transactions of fhirgate on each shard of the running (or orphaned) cluster.
async fn prepared_per_shard(data: &Path) -> Result<Vec<i64>> {
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("secrets/run.json"))?)?;
    let mut counts = Vec::new();
    for url in run["shard_urls"].as_array().into_iter().flatten() {
        let mut conn = PgConnection::connect(url.as_str().unwrap_or_default()).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'fhirgate:%'",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        counts.push(n);
    }
    Ok(counts)
}

/// The gateway is killed (aborts) between PREPARE and COMMIT PREPARED of a transaction that
/// spans both shards: before the decision is recorded, and after. On restart, recovery makes
/// every shard agree: nothing written in the first case, everything in the second.
async fn crash_scenario(data: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let map = store::placement::ShardMap::round_robin(store::placement::DEFAULT_BUCKETS, 2);
    let other = (1..1024)
        .find(|b| map.shard_of(*b) != map.shard_of(0))
        .unwrap_or(1);
    for (round, (point, committed)) in [("after-prepare", false), ("after-decision", true)]
        .into_iter()
        .enumerate()
    {
        let ids = [0, other].map(|b| format!("{b:04x}{}", format!("{:02x}", round + 1).repeat(14)));
        let up = start_up_with(data, &[("FHIRGATE_CRASH_AT", point)]).await?;
        let (ok, token) = fhirgate(
            &["token", "--role", "system", "--scope", "system/*.cruds"],
            data,
        )?;
        ensure!(ok, "token: {token}");
        let entries: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"resource": {"resourceType": "Patient", "id": id, "active": true},
                             "request": {"method": "PUT", "url": format!("Patient/{id}")}})
            })
            .collect();
        let sent = http
            .post(format!("{}/", up.base))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
                    .to_string(),
            )
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        ensure!(
            sent.is_err(),
            "{point}: the gateway answered instead of crashing: {sent:?}"
        );
        let mut child = up.child;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "{point}: the gateway did not exit"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(
            !status.success(),
            "{point}: the gateway exited cleanly: {status}"
        );
        // In doubt on both shards while the gateway is down.
        let prepared = prepared_per_shard(data).await?;
        ensure!(
            prepared == [1, 1],
            "{point}: prepared transactions per shard: {prepared:?}"
        );

        let up = start_up(data).await?;
        ensure!(
            prepared_per_shard(data).await? == [0, 0],
            "{point}: recovery left transactions in doubt"
        );
        for id in &ids {
            let resp = http
                .get(format!("{}/Patient/{id}", up.base))
                .bearer_auth(&token)
                .send()
                .await?;
            let want = if committed { 200 } else { 404 };
            ensure!(
                resp.status() == want,
                "{point}: Patient/{id} answered {}, every shard must agree on {want}",
                resp.status()
            );
        }
        let (ok, out) = fhirgate(&["audit", "verify"], data)?;
        ensure!(ok, "{point}: audit verify: {out}");
        stop_up(up).await?;
    }
    Ok(())
}

/// `fhirgate up --jwt-key …`: tokens of the configured identity provider work, the
/// development key does not exist, and the SMART configuration names the issuer.
async fn production_mode_verifies_with_configured_keys(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-prod");
    let result = production_scenario(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

async fn production_scenario(data: &Path) -> Result<()> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
    let issuer = "https://idp.example.org/realms/health";
    let pem = format!("ES256:ec-1={}", keys.join("ec-public.pem").display());
    let up = start_up_with_args(
        data,
        &[
            "--jwt-key",
            &pem,
            "--jwt-issuer",
            issuer,
            "--role-claim",
            "realm_access.roles",
        ],
    )
    .await?;
    let result = async {
        let (ok, out) = fhirgate(
            &["token", "--role", "system", "--scope", "system/*.cruds"],
            data,
        )?;
        ensure!(
            !ok,
            "production mode has no development key, yet `token` printed {out}"
        );
        let now = chrono::Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("ec-1".into());
        let token = jsonwebtoken::encode(
            &header,
            &json!({"iss": issuer, "aud": "fhirgate", "sub": "svc", "exp": now + 300,
                    "realm_access": {"roles": ["registry"]}, "scope": "system/*.cruds"}),
            &jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(
                keys.join("ec-private-pk8.pem"),
            )?)?,
        )?;
        let http = reqwest::Client::new();
        let resp = http
            .get(format!("{}/Patient", up.base))
            .bearer_auth(&token)
            .send()
            .await?;
        ensure!(resp.status() == 200, "IdP token: {}", resp.status());
        let smart: Value = http
            .get(format!("{}/.well-known/smart-configuration", up.base))
            .send()
            .await?
            .json()
            .await?;
        ensure!(smart["issuer"] == issuer, "{smart}");
        Ok(())
    }
    .await;
    stop_up(up).await?;
    result
}

async fn audit_tampering_and_truncation_are_detected(_env: &Env) -> Result<()> {
    let data = tests::temp_dir("fhirgate-tamper");
    let result = tamper_scenario(&data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

/// Superuser connections to each shard of a running `up`.
async fn superuser_connections(data: &Path) -> Result<Vec<PgConnection>> {
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("secrets/run.json"))?)?;
    let password = std::fs::read_to_string(data.join("secrets/superuser_password"))?;
    let mut out = Vec::new();
    for url in run["shard_urls"].as_array().into_iter().flatten() {
        let url = url.as_str().unwrap_or_default();
        let host = url.rsplit_once('@').map(|(_, h)| h).unwrap_or_default();
        let su = format!("postgres://postgres:{}@{host}", password.trim());
        out.push(PgConnection::connect(&su).await?);
    }
    Ok(out)
}

/// Runs `sql` as the superuser with the audit table's triggers off, in one transaction.
async fn tamper(conn: &mut PgConnection, sql: &str) -> Result<()> {
    let script = format!(
        "BEGIN; ALTER TABLE audit DISABLE TRIGGER USER; {sql}; ALTER TABLE audit ENABLE TRIGGER USER; COMMIT"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn tamper_scenario(data: &Path) -> Result<()> {
    let up = start_up_with_args(data, &["--audit-checkpoint-secs", "1"]).await?;
    let result = async {
        let (ok, token) = fhirgate(&["token", "--role", "system", "--scope", "system/*.cruds"], data)?;
        ensure!(ok, "token: {token}");
        let http = reqwest::Client::new();
        // 96 records over 32 chains: some chain surely holds three.
        for n in 0..96 {
            let resp = http
                .post(format!("{}/Patient", up.base))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(json!({"resourceType": "Patient", "name": [{"family": format!("T{n}")}]}).to_string())
                .send()
                .await?;
            ensure!(resp.status() == 201, "create: {}", resp.status());
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (ok, out) = fhirgate(&["audit", "verify"], data)?;
        ensure!(ok && out.contains("holds"), "before tampering: {out}");
        // The checkpoint is an Ed25519 signature that the public key alone verifies.
        let jwt = std::fs::read_to_string(data.join("audit-checkpoints/latest.jwt"))?;
        let public = hex::decode(
            std::fs::read_to_string(data.join("secrets/audit-checkpoint.key.pub"))?.trim(),
        )?;
        let header = jsonwebtoken::decode_header(jwt.trim())?;
        ensure!(header.alg == jsonwebtoken::Algorithm::EdDSA, "checkpoint signed with {:?}", header.alg);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_required_spec_claims(&["iat"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(
            jwt.trim(),
            &jsonwebtoken::DecodingKey::from_ed_der(&public),
            &validation,
        )?;
        ensure!(claims.claims["heads"].as_array().is_some_and(|h| !h.is_empty()));
        // A chain with at least three records.
        let mut conns = superuser_connections(data).await?;
        let mut target = None;
        for (shard, conn) in conns.iter_mut().enumerate() {
            let row: Option<(i32, i64)> = sqlx::query_as(
                "SELECT chain, seq FROM audit_heads WHERE seq >= 3 ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(r) = row {
                target = Some((shard, r));
                break;
            }
        }
        let Some((shard, (chain, head))) = target else {
            anyhow::bail!("no chain with three records");
        };
        let conn = &mut conns[shard];
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE keep AS SELECT * FROM audit WHERE chain = {chain}; \
             CREATE TEMP TABLE keep_head AS SELECT * FROM audit_heads WHERE chain = {chain}"
        )))
        .execute(&mut *conn)
        .await?;
        let restore = format!(
            "DELETE FROM audit WHERE chain = {chain}; INSERT INTO audit SELECT * FROM keep; \
             UPDATE audit_heads h SET seq = k.seq, hash = k.hash FROM keep_head k WHERE h.chain = k.chain"
        );
        let cases = [
            (
                "cut the newest record (and its head)",
                format!(
                    "DELETE FROM audit WHERE chain = {chain} AND seq = {head}; \
                     UPDATE audit_heads SET seq = {prev}, hash = (SELECT hash FROM audit WHERE chain = {chain} AND seq = {prev}) WHERE chain = {chain}",
                    prev = head - 1
                ),
                "cut",
            ),
            (
                "edit a record",
                format!("UPDATE audit SET record = convert_to('{{}}', 'UTF8') WHERE chain = {chain} AND seq = 2"),
                "content",
            ),
            (
                "delete a record in the middle",
                format!("DELETE FROM audit WHERE chain = {chain} AND seq = 2"),
                "missing",
            ),
            (
                "swap two records",
                format!(
                    "UPDATE audit SET seq = -1 WHERE chain = {chain} AND seq = 1; \
                     UPDATE audit SET seq = 1 WHERE chain = {chain} AND seq = 2; \
                     UPDATE audit SET seq = 2 WHERE chain = {chain} AND seq = -1"
                ),
                "link",
            ),
        ];
        for (what, sql, expect) in cases {
            tamper(conn, &sql).await?;
            let (ok, out) = fhirgate(&["audit", "verify"], data)?;
            ensure!(
                !ok && out.contains("BROKEN") && out.contains(&format!("chain {chain}")) && out.contains(expect),
                "{what}: audit verify said {out}"
            );
            tamper(conn, &restore).await?;
            let (ok, out) = fhirgate(&["audit", "verify"], data)?;
            ensure!(ok, "after restoring ({what}): {out}");
        }
        Ok(())
    }
    .await;
    stop_up(up).await?;
    result
}
