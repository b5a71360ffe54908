//! A paced write load (and a few readers) through the gateway, logging every acknowledged
//! write, as `ha-recipe.md`'s writer does: the fault tests compare it with what is readable
//! afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tests::TestServer;

/// The shape of a load.
pub struct LoadSpec {
    /// Writes per second offered, all writers together.
    pub rate: u32,
    /// How long it runs.
    pub duration: Duration,
    /// Concurrent writers.
    pub writers: u32,
    /// Concurrent readers of existing patients.
    pub readers: u32,
}

/// What a load saw.
#[derive(Debug, Default)]
pub struct Load {
    /// Acknowledged creates: id, when the request started, when the 201 came.
    pub acked: Vec<(String, Instant, Instant)>,
    /// Failed creates: when, and what (status and text, or the client error).
    pub write_errors: Vec<(Instant, String)>,
    /// Successful reads.
    pub reads: usize,
    /// Failed reads.
    pub read_errors: usize,
    /// When the load started and ended.
    pub span: Option<(Instant, Instant)>,
}

impl Load {
    /// Acknowledged writes per second over the whole load.
    pub fn rate(&self) -> f64 {
        match self.span {
            Some((a, b)) => self.acked.len() as f64 / (b - a).as_secs_f64().max(1e-3),
            None => 0.0,
        }
    }

    /// Acknowledged writes per second from the start of the load to `t`.
    pub fn rate_until(&self, t: Instant) -> f64 {
        let Some((a, _)) = self.span else { return 0.0 };
        let n = self.acked.iter().filter(|(_, _, end)| *end <= t).count();
        n as f64 / (t - a).as_secs_f64().max(1e-3)
    }

    /// The longest time without any acknowledgement, from the fault to the end of the load.
    pub fn longest_gap_after(&self, fault: Instant) -> Duration {
        let mut ends: Vec<Instant> = self
            .acked
            .iter()
            .map(|(_, _, end)| *end)
            .filter(|end| *end >= fault)
            .collect();
        ends.sort();
        let last = self.span.map_or(fault, |(_, b)| b);
        let mut prev = fault;
        let mut gap = Duration::ZERO;
        for t in ends.into_iter().chain(std::iter::once(last)) {
            gap = gap.max(t.saturating_duration_since(prev));
            prev = prev.max(t);
        }
        gap
    }

    /// From the fault to the first acknowledgement of a write sent after it.
    pub fn outage_after(&self, fault: Instant) -> Option<Duration> {
        self.acked
            .iter()
            .filter(|(_, start, _)| *start >= fault)
            .map(|(_, _, end)| *end - fault)
            .min()
    }
}

/// Who the load talks to (owned, for spawned tasks).
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Creates `n` patients; returns their ids.
pub async fn seed_patients(server: &TestServer, n: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let p = server
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("Seed{i}")}]}))
            .await?;
        ids.push(p["id"].as_str().context("created without id")?.to_owned());
    }
    Ok(ids)
}

/// How long writers go on past the planned end while no write sent after the fault has
/// been acknowledged: a slow recovery is measured, not cut off.
const RECOVERY_GRACE: Duration = Duration::from_secs(20);

/// Shared between the writers and the fault: when the fault took effect, and whether a
/// write sent after it was acknowledged.
#[derive(Default)]
struct Recovery {
    started: std::sync::atomic::AtomicBool,
    fault: std::sync::OnceLock<Instant>,
    seen: std::sync::atomic::AtomicBool,
}

impl Recovery {
    /// Whether a writer should stop at `now`, past the planned `end`.
    fn done(&self, now: Instant, end: Instant) -> bool {
        if now < end {
            return false;
        }
        if !self.started.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        let recovered =
            self.fault.get().is_some() && self.seen.load(std::sync::atomic::Ordering::Relaxed);
        recovered || now >= end + RECOVERY_GRACE
    }

    /// Records an acknowledgement of a write sent at `sent`.
    fn acked(&self, sent: Instant) {
        if self.fault.get().is_some_and(|f| sent >= *f) {
            self.seen.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Runs the load; `readable` are ids the readers pick from.
pub async fn run(server: &TestServer, spec: &LoadSpec, readable: &[String]) -> Result<Load> {
    run_observed(server, spec, readable, std::sync::Arc::default()).await
}

/// [`run`], with writers that go on past the end until `recovery` has seen a write sent
/// after the fault acknowledged (at most [`RECOVERY_GRACE`] longer).
async fn run_observed(
    server: &TestServer,
    spec: &LoadSpec,
    readable: &[String],
    recovery: std::sync::Arc<Recovery>,
) -> Result<Load> {
    let target = Target {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?,
        base: server.base.clone(),
        token: server.system_token(),
    };
    let start = Instant::now();
    let end = start + spec.duration;
    let interval = Duration::from_secs_f64(f64::from(spec.writers) / f64::from(spec.rate.max(1)));
    let max_each = ((spec.duration + RECOVERY_GRACE).as_secs_f64() / interval.as_secs_f64()).ceil()
        as usize
        + 1;
    let mut writers = Vec::new();
    for w in 0..spec.writers {
        let t = target.clone();
        let recovery = recovery.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut next = Instant::now() + interval.mul_f64(f64::from(w) / 8.0);
            for n in 0..max_each {
                if recovery.done(next, end) {
                    break;
                }
                tokio::time::sleep_until(next.into()).await;
                next += interval;
                let body = json!({
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:ha-load", "value": format!("w{w}-{n}")}],
                    "name": [{"family": "Load"}],
                });
                let sent = Instant::now();
                let answer = t
                    .http
                    .post(format!("{}/Patient", t.base))
                    .bearer_auth(&t.token)
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        match v["id"].as_str() {
                            Some(id) => {
                                recovery.acked(sent);
                                acked.push((id.to_owned(), sent, Instant::now()));
                            }
                            None => errors.push((sent, format!("201 without id: {v}"))),
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        errors.push((sent, format!("{status}: {text}")));
                    }
                    Err(e) => errors.push((sent, e.to_string())),
                }
                if next < Instant::now() {
                    // Behind schedule after a slow answer: do not burst to catch up.
                    next = Instant::now();
                }
            }
            (acked, errors)
        }));
    }
    let mut readers = Vec::new();
    for r in 0..spec.readers {
        let t = target.clone();
        let ids: Vec<String> = readable.to_vec();
        readers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, 0usize);
            let mut i = r as usize;
            // Bounded by time and by count.
            for _ in 0..100_000 {
                if Instant::now() >= end || ids.is_empty() {
                    break;
                }
                let id = &ids[i % ids.len()];
                i += 7;
                let answer = t
                    .http
                    .get(format!("{}/Patient/{id}", t.base))
                    .bearer_auth(&t.token)
                    .send()
                    .await;
                match answer {
                    Ok(resp) if resp.status() == 200 => ok += 1,
                    Ok(resp) => {
                        failed += 1;
                        eprintln!("read {id}: {}", resp.status());
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("read {id}: {e}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        }));
    }
    let mut load = Load::default();
    for w in writers {
        let (acked, errors) = w.await?;
        load.acked.extend(acked);
        load.write_errors.extend(errors);
    }
    for r in readers {
        let (ok, failed) = r.await?;
        load.reads += ok;
        load.read_errors += failed;
    }
    let last_ack = load.acked.iter().map(|(_, _, t)| *t).max().unwrap_or(end);
    load.span = Some((start, last_ack.max(end)));
    Ok(load)
}

/// Runs the load and, `fault_at` into it, the fault (blocking work: kills, promotions).
/// The fault returns when it took effect (the node is dead, the switchover began); so does
/// this, with the load.
pub async fn run_with_fault(
    server: &TestServer,
    spec: &LoadSpec,
    readable: &[String],
    fault_at: Duration,
    fault: impl FnOnce() -> Result<Instant>,
) -> Result<(Load, Instant)> {
    let recovery = std::sync::Arc::new(Recovery::default());
    let load = run_observed(server, spec, readable, recovery.clone());
    let inject = async {
        tokio::time::sleep(fault_at).await;
        recovery
            .started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let at = tokio::task::block_in_place(fault)?;
        // Set once, here only.
        let _ = recovery.fault.set(at);
        Ok::<_, anyhow::Error>(at)
    };
    let (load, at) = tokio::join!(load, inject);
    Ok((load?, at?))
}

/// The acknowledged writes that cannot be read back.
pub async fn lost(server: &TestServer, load: &Load) -> Result<Vec<String>> {
    ensure!(!load.acked.is_empty(), "nothing was acknowledged");
    let mut lost = Vec::new();
    for (id, _, _) in &load.acked {
        let (status, _) = server
            .send(reqwest::Method::GET, &format!("Patient/{id}"), None)
            .await?;
        if status != 200 {
            lost.push(format!("{id} ({status})"));
        }
    }
    Ok(lost)
}

/// The acknowledged creates without their audit record (issue 6: after a failover every
/// acknowledged write still has its record; a write commits it in its own transaction).
pub async fn unaudited(server: &TestServer, load: &Load) -> Result<Vec<String>> {
    let records = server.store.audit_records(i64::MAX).await?;
    let audited: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| r.record.outcome == 201)
        .filter_map(|r| r.record.resource_id.as_deref())
        .collect();
    Ok(load
        .acked
        .iter()
        .filter(|(id, _, _)| !audited.contains(id.as_str()))
        .map(|(id, _, _)| id.clone())
        .collect())
}
