//! Shards and standbys: replication is real, placement follows the patient, paging merges
//! shards exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use tests::TestServer;

use crate::Env;

crate::tests![
    writes_reach_the_standby,
    patient_compartment_is_colocated,
    paging_across_shards_returns_each_once
];

async fn writes_reach_the_standby(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Replica"}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let shard = s.store.locate("Patient", &id).await?.unwrap_or(usize::MAX);
    let cluster = &env.cluster.cluster;
    let node = &cluster.shards()[shard].standbys[0];
    let mut conn = PgConnection::connect(&cluster.superuser_url(node, &s.db)).await?;
    let in_recovery: bool = sqlx::query("SELECT pg_is_in_recovery() AS r")
        .fetch_one(&mut conn)
        .await?
        .try_get("r")?;
    ensure!(in_recovery, "the standby is a standby");
    // Synchronous replication: the commit waited for the standby; allow replay a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = sqlx::query("SELECT version FROM resources WHERE rtype = 'Patient' AND id = $1")
            .bind(&id)
            .fetch_optional(&mut conn)
            .await?;
        if row.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("the write never reached the standby");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close().await?;
    s.stop().await
}

async fn patient_compartment_is_colocated(env: &Env) -> Result<()> {
    // The shard map is loaded once: its periodic lookup on shard 0 would count as commits
    // there (see reads_by_id_touch_one_shard).
    let db = env.cluster.fresh_database().await?;
    let store_config = store::StoreConfig {
        map_refresh: Duration::from_secs(3600),
        ..gateway::up::store_config(&env.cluster.cluster, &db)
    };
    let s = TestServer::start_on(
        &store_config,
        db,
        TestServer::config(Default::default(), TestServer::dev_auth()),
    )
    .await?;
    let mut by_shard: HashMap<usize, usize> = HashMap::new();
    for i in 0..16 {
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("C{i}")}]}))
            .await?;
        let pid = p["id"].as_str().unwrap_or_default().to_owned();
        let pshard = s.store.locate("Patient", &pid).await?.unwrap_or(usize::MAX);
        *by_shard.entry(pshard).or_default() += 1;
        for _ in 0..2 {
            let o = s
                .create(&json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": format!("Patient/{pid}")}}))
                .await?;
            let oid = o["id"].as_str().unwrap_or_default().to_owned();
            // The id carries the bucket: locating it asks no shard, and the row is on the
            // patient's shard and nowhere else.
            ensure!(s.store.locate("Observation", &oid).await? == Some(pshard));
            for shard in 0..env.cluster.cluster.shards().len() {
                let node = &env.cluster.cluster.shards()[shard].primary;
                let mut conn =
                    PgConnection::connect(&env.cluster.cluster.superuser_url(node, &s.db)).await?;
                let n: i64 = sqlx::query("SELECT count(*) AS n FROM resources WHERE id = $1")
                    .bind(&oid)
                    .fetch_one(&mut conn)
                    .await?
                    .try_get("n")?;
                ensure!(
                    n == i64::from(shard == pshard),
                    "observation {oid} on shard {shard}: {n}"
                );
                conn.close().await?;
            }
        }
    }
    ensure!(
        by_shard.len() == 2,
        "patients spread over both shards: {by_shard:?}"
    );
    reads_by_id_touch_one_shard(env, &s).await?;
    // A client-assigned id is found through the locator, on one shard.
    let (st, _) = s.send(reqwest::Method::PUT, "Observation/client-obs",
        Some(&json!({"resourceType": "Observation", "id": "client-obs", "status": "final", "code": {"text": "y"}}))).await?;
    ensure!(st == 201);
    ensure!(s.store.locate("Observation", "client-obs").await?.is_some());
    s.stop().await
}

async fn paging_across_shards_returns_each_once(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    use futures_util::StreamExt;
    let results: Vec<Result<serde_json::Value>> = futures_util::stream::iter(0..250)
        .map(|i| {
            let body = json!({"resourceType": "Patient", "name": [{"family": "Pager", "given": [format!("n{i}")]}]});
            let s = &s;
            async move { s.create(&body).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut created = Vec::new();
    for r in results {
        created.push(r?["id"].as_str().unwrap_or_default().to_owned());
    }
    // Page while other patients are being written.
    let writer = async {
        for i in 0..40 {
            s.create(&json!({"resourceType": "Patient", "name": [{"family": "Pager", "given": [format!("late{i}")]}]})).await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let reader = s.search_all("Patient?family=pager&_count=20", 40);
    let (w, seen) = tokio::join!(writer, reader);
    w?;
    let seen: Vec<String> = seen?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    ensure!(
        counts.values().all(|&c| c == 1),
        "a resource came back twice"
    );
    for id in &created {
        ensure!(
            counts.get(id.as_str()) == Some(&1),
            "{id} missing from the pages"
        );
    }
    let shards: std::collections::HashSet<_> = {
        let mut set = std::collections::HashSet::new();
        for id in &created {
            set.insert(s.store.locate("Patient", id).await?);
        }
        set
    };
    ensure!(shards.len() == 2, "patients on both shards");
    s.stop().await
}

/// Committed transactions in the test database, per shard, as the statistics collector
/// reports them (read through the `postgres` database so the probe adds none).
async fn commits_per_shard(env: &Env, db: &str) -> Result<Vec<i64>> {
    let cluster = &env.cluster.cluster;
    let mut out = Vec::new();
    for shard in cluster.shards() {
        let mut conn =
            PgConnection::connect(&cluster.superuser_url(&shard.primary, "postgres")).await?;
        let n: i64 = sqlx::query("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(&mut conn)
            .await?
            .try_get("xact_commit")?;
        conn.close().await?;
        out.push(n);
    }
    Ok(out)
}

/// Reading a resource by id (and writing the read's audit record) asks its own shard only:
/// the other shard's database sees no transaction at all.
async fn reads_by_id_touch_one_shard(env: &Env, s: &TestServer) -> Result<()> {
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "OneShard"}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let owner = s.store.locate("Patient", &id).await?.unwrap_or(usize::MAX);
    // Backends report statistics at most once a second; let earlier activity settle.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = commits_per_shard(env, &s.db).await?;
    for _ in 0..5 {
        s.get_ok(&format!("Patient/{id}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = commits_per_shard(env, &s.db).await?;
    for shard in 0..before.len() {
        let delta = after[shard] - before[shard];
        if shard == owner {
            // Read records are group-committed, so 5 reads may take fewer commits; the count
            // moving at all shows the statistics are live.
            ensure!(delta >= 1, "owner shard {shard} saw no commit for 5 reads");
        } else {
            ensure!(
                delta == 0,
                "shard {shard} does not hold {id} but saw {delta} commits"
            );
        }
    }
    Ok(())
}
