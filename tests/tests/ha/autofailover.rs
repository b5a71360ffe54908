//! HA-3 and HA-4 under pg_auto_failover: the manager promotes, the gateway follows.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use store::cluster::ClusterSpec;
use store::cluster::autofailover::AutoFailoverCluster;
use tests::TestServer;

use crate::load::{self, LoadSpec};
use crate::{figures, median};

/// Node deaths measured (each followed by the node's rejoin).
const HA3_RUNS: usize = 3;

async fn start() -> Result<(AutoFailoverCluster, TestServer, std::path::PathBuf)> {
    let dir = tests::temp_dir("fhirgate-ha");
    let spec = ClusterSpec {
        n_shards: 1,
        n_standbys: 1,
        synchronous: true,
        durable: false,
    };
    let started = Instant::now();
    let cluster = tokio::task::block_in_place(|| AutoFailoverCluster::start(&dir, &spec))
        .context("starting the pg_auto_failover cluster")?;
    eprintln!(
        "pg_auto_failover cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let db = "hadb";
    tokio::task::block_in_place(|| cluster.create_database(db))?;
    let primary = tokio::task::block_in_place(|| cluster.primary_of(0))?;
    store::migrate(&[cluster.superuser_url(&primary, db)]).await?;
    let store_config = store::StoreConfig {
        shards: vec![store::ShardConfig {
            nodes: cluster.shards()[0]
                .nodes
                .iter()
                .map(|n| cluster.app_url(n, db))
                .collect(),
        }],
        ..store::StoreConfig::default()
    };
    let config = TestServer::config(gateway::Limits::default(), TestServer::dev_auth());
    let server = TestServer::start_on(&store_config, db.into(), config).await?;
    Ok((cluster, server, dir))
}

/// HA-3: node death (keeper and postgres killed) of the primary under >= 200 writes/s: the
/// monitor promotes the secondary, the gateway follows by itself, no acknowledged write is
/// lost, and the writes resume within 20 s (RTO). HA-4 after it: a planned switchover under
/// the same load; HA-5: postgres alone crashes, its keeper restarts it (no failover).
pub async fn ha3_node_death() -> Result<()> {
    let (cluster, server, dir) = start().await?;
    let readable = load::seed_patients(&server, 20).await?;
    let spec = LoadSpec {
        rate: 220,
        duration: Duration::from_secs(30),
        writers: 16,
        readers: 2,
    };
    let mut rtos = Vec::new();
    let mut acked = 0;
    for run in 0..HA3_RUNS {
        let victim = tokio::task::block_in_place(|| cluster.primary_of(0))?;
        let c = &cluster;
        let (report, fault) =
            load::run_with_fault(&server, &spec, &readable, Duration::from_secs(3), || {
                c.kill_node(&victim)?;
                Ok(Instant::now())
            })
            .await?;
        let lost = load::lost(&server, &report).await?;
        let unaudited = load::unaudited(&server, &report).await?;
        ensure!(
            unaudited.is_empty(),
            "run {run}: acknowledged writes without their audit record: {unaudited:?}"
        );
        report
            .outage_after(fault)
            .with_context(|| format!("run {run}: no write acknowledged after the node death"))?;
        // Recovery time: the longest stretch without any acknowledged write.
        let rto = report.longest_gap_after(fault);
        let before = report.rate_until(fault);
        eprintln!(
            "HA-3 run {run}: killed {}, {} acked ({before:.0}/s before), RTO {rto:?}, {} write errors, {} read errors",
            victim.name,
            report.acked.len(),
            report.write_errors.len(),
            report.read_errors
        );
        ensure!(
            lost.is_empty(),
            "run {run}: acknowledged writes lost: {lost:?}"
        );
        ensure!(
            before >= 200.0,
            "run {run}: only {before:.0} writes/s before the fault"
        );
        ensure!(
            rto <= Duration::from_secs(20),
            "run {run}: RTO {rto:?} is over 20 s"
        );
        let now = tokio::task::block_in_place(|| cluster.primary_of(0))?;
        ensure!(now.name != victim.name, "run {run}: no failover happened");
        rtos.push(rto.as_secs_f64());
        acked += report.acked.len();
        // The dead node comes back as a secondary (its keeper rewinds it).
        let rejoin = Instant::now();
        tokio::task::block_in_place(|| {
            cluster.run_node(&victim)?;
            cluster.wait_healthy(0, Duration::from_secs(120))
        })?;
        eprintln!(
            "HA-3 run {run}: {} back as a secondary after {:.1} s",
            victim.name,
            rejoin.elapsed().as_secs_f64()
        );
    }
    let max = rtos.iter().copied().fold(0.0, f64::max);
    figures(
        "HA-3",
        json!({
            "runs": HA3_RUNS,
            "acked": acked,
            "lost": 0,
            "rto_s_median": median(&mut rtos),
            "rto_s_max": max,
        }),
    );

    // HA-4: planned switchover under load.
    let spec = LoadSpec {
        duration: Duration::from_secs(12),
        ..spec
    };
    let before_primary = tokio::task::block_in_place(|| cluster.primary_of(0))?;
    let c = &cluster;
    let (report, fault) =
        load::run_with_fault(&server, &spec, &readable, Duration::from_secs(2), || {
            let began = Instant::now();
            c.switchover(0)?;
            Ok(began)
        })
        .await?;
    let lost = load::lost(&server, &report).await?;
    ensure!(
        lost.is_empty(),
        "switchover: acknowledged writes lost: {lost:?}"
    );
    let after_primary = tokio::task::block_in_place(|| cluster.primary_of(0))?;
    ensure!(
        after_primary.name != before_primary.name,
        "the switchover did not move the primary"
    );
    let gap = report.longest_gap_after(fault);
    ensure!(
        gap <= Duration::from_secs(10),
        "switchover: writes stopped for {gap:?}"
    );
    figures(
        "HA-4",
        json!({
            "acked": report.acked.len(),
            "lost": 0,
            "longest_gap_s": gap.as_secs_f64(),
            "write_errors": report.write_errors.len(),
            "read_errors": report.read_errors,
        }),
    );

    // HA-5: postgres crashes, its keeper lives: restarted in place, no failover.
    tokio::task::block_in_place(|| cluster.wait_healthy(0, Duration::from_secs(120)))?;
    let primary = tokio::task::block_in_place(|| cluster.primary_of(0))?;
    let c = &cluster;
    let (report, fault) =
        load::run_with_fault(&server, &spec, &readable, Duration::from_secs(2), || {
            c.crash_postgres(&primary)?;
            Ok(Instant::now())
        })
        .await?;
    let lost = load::lost(&server, &report).await?;
    ensure!(
        lost.is_empty(),
        "postgres crash: acknowledged writes lost: {lost:?}"
    );
    let after = tokio::task::block_in_place(|| cluster.primary_of(0))?;
    ensure!(
        after.name == primary.name,
        "a postgres crash caused a failover ({} -> {})",
        primary.name,
        after.name
    );
    let gap = report.longest_gap_after(fault);
    ensure!(
        gap <= Duration::from_secs(10),
        "postgres crash: writes stopped for {gap:?}"
    );
    figures(
        "HA-5",
        json!({
            "acked": report.acked.len(),
            "lost": 0,
            "failover": false,
            "longest_gap_s": gap.as_secs_f64(),
            "write_errors": report.write_errors.len(),
            "read_errors": report.read_errors,
        }),
    );
    server.stop_after_fault().await?;
    tokio::task::block_in_place(|| cluster.stop())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
