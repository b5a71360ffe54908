//! Scale-out: a shard added to a running cluster under a write load, its share of the
//! buckets moved online (`store::rebalance`), every resource still readable exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use store::ShardMap;
use store::rebalance::{MoveOptions, MoveReport, MoveStop, Mover};
use tests::{TestCluster, TestServer};

use crate::load::{self, LoadSpec};
use crate::{figures, limits, median, spec};

/// Adds a third shard to a 2-shard cluster while 8 writers create patients through the
/// gateway and 2 readers read: no client sees an error, every acknowledged resource is
/// readable afterwards and stored on exactly one shard (the one the final map names), a
/// search counts each once, client-assigned ids (the locator) still resolve and update,
/// and the audit log holds exactly one record per answered request.
pub async fn add_shard_under_write_load() -> Result<()> {
    let mut cluster = TestCluster::start_spec(&spec(2))?;
    let server = TestServer::start(&cluster, limits()).await?;
    server.store.refresh_map().await?;
    let readable = load::seed_patients(&server, 40).await?;
    // Observations in the patients' compartments, and resources with client-assigned ids.
    for (i, patient) in readable.iter().enumerate().take(20) {
        server
            .create(&json!({
                "resourceType": "Observation", "status": "final",
                "code": {"text": format!("seed {i}")},
                "subject": {"reference": format!("Patient/{patient}")},
            }))
            .await?;
    }
    let orgs: Vec<String> = (0..30).map(|i| format!("org-{i}")).collect();
    for id in &orgs {
        let (status, _) = server
            .send(
                reqwest::Method::PUT,
                &format!("Organization/{id}"),
                Some(&json!({"resourceType": "Organization", "id": id, "name": "Before"})),
            )
            .await?;
        ensure!(status == 201, "PUT Organization/{id}: {status}");
    }
    let db = server.db.clone();
    let spec = LoadSpec {
        rate: 150,
        duration: Duration::from_secs(14),
        writers: 8,
        readers: 2,
    };
    let c = &mut cluster.cluster;
    let grow = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let added = tokio::task::block_in_place(|| c.add_shard(std::slice::from_ref(&db)))?;
        store::migrate(&[c.superuser_url(&added.primary, &db)]).await?;
        let shard_up = started.elapsed();
        let report = mover(c, &db, MoveOptions::default())
            .add_shard(&public_urls(&added, &db))
            .await
            .context("moving buckets")?;
        Ok::<_, anyhow::Error>((shard_up, report))
    };
    let (load, grown) = tokio::join!(load::run(&server, &spec, &readable), grow);
    let (load, (shard_up, report)) = (load?, grown?);
    ensure!(
        report.buckets == 1024 / 3,
        "moved {} buckets, not 341",
        report.buckets
    );
    let longest_write = load
        .acked
        .iter()
        .map(|(_, sent, done)| *done - *sent)
        .max()
        .unwrap_or_default();
    eprintln!(
        "scale-out: shard up in {shard_up:?}, move {report:?}; {} acked, {} write errors {:?}, longest write {longest_write:?}",
        load.acked.len(),
        load.write_errors.len(),
        load.write_errors.iter().take(3).collect::<Vec<_>>()
    );
    ensure!(
        load.write_errors.is_empty() && load.read_errors == 0,
        "clients saw errors: {} writes, {} reads",
        load.write_errors.len(),
        load.read_errors
    );
    ensure!(
        longest_write <= Duration::from_secs(10),
        "a write waited {longest_write:?}"
    );
    let lost = load::lost(&server, &load).await?;
    ensure!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // The gateway follows the final map: three shards, the new one with its share.
    server.store.refresh_map().await?;
    let map = server.store.shard_map();
    ensure!(
        map.version == report.map_version,
        "gateway map {}",
        map.version
    );
    let topology = server.store.topology();
    ensure!(
        topology.len() == 3 && topology[2].buckets == 341,
        "{topology:?}"
    );

    // Every resource on exactly one shard, the one that owns its bucket.
    let copies = placement(&cluster, &db, &map)?;
    for (id, _, _) in &load.acked {
        ensure!(
            copies.contains_key(&("Patient".to_owned(), id.clone())),
            "Patient/{id} is on no shard"
        );
    }
    let on_new = cluster.cluster.psql(
        &cluster.cluster.shards()[2].primary,
        &db,
        "SELECT count(*) FROM resources",
    )?;
    ensure!(
        on_new.trim().parse::<u64>()? > 0,
        "the new shard holds nothing"
    );

    // A search counts every resource once.
    let (status, bundle) = server
        .send(
            reqwest::Method::GET,
            "Patient?identifier=urn:ha-load|&_summary=count",
            None,
        )
        .await?;
    ensure!(status == 200, "search: {status} {bundle}");
    ensure!(
        bundle["total"] == json!(load.acked.len()),
        "search counted {} of {} acknowledged",
        bundle["total"],
        load.acked.len()
    );
    let (_, all) = server
        .send(reqwest::Method::GET, "Observation?_summary=count", None)
        .await?;
    ensure!(all["total"] == json!(20), "observations: {}", all["total"]);
    for patient in readable.iter().take(20) {
        let (_, page) = server
            .send(
                reqwest::Method::GET,
                &format!("Observation?patient={patient}"),
                None,
            )
            .await?;
        ensure!(page["total"] == json!(1) || page["entry"].as_array().map(Vec::len) == Some(1));
    }
    // Client-assigned ids resolve through the moved locator, and update in place.
    for id in &orgs {
        let (status, _) = server
            .send(
                reqwest::Method::PUT,
                &format!("Organization/{id}"),
                Some(&json!({"resourceType": "Organization", "id": id, "name": "After"})),
            )
            .await?;
        ensure!(status == 200, "update of Organization/{id}: {status}");
    }
    let (_, orgs_found) = server
        .send(
            reqwest::Method::GET,
            "Organization?name=After&_summary=count",
            None,
        )
        .await?;
    ensure!(
        orgs_found["total"] == json!(30),
        "organizations: {}",
        orgs_found["total"]
    );

    let mut fences = report.fence_ms.clone();
    figures(
        "scale-out",
        json!({
            "shards": "2 -> 3",
            "buckets_moved": report.buckets,
            "steps": report.steps,
            "rows_copied": report.rows_copied,
            "resynced": report.resynced,
            "move_s": report.seconds,
            "shard_start_s": shard_up.as_secs_f64(),
            "fence_ms_median": median(&mut fences),
            "fence_ms_max": fences.iter().copied().fold(0.0, f64::max),
            "acked": load.acked.len(),
            "write_rate": load.rate(),
            "write_errors": 0,
            "longest_write_s": longest_write.as_secs_f64(),
            "lost": 0,
            "duplicated": 0,
        }),
    );
    server.stop().await?;
    cluster.stop()?;
    Ok(())
}

/// Every resource row of every shard, checked to sit on the shard `map` gives its bucket,
/// and counted: a resource stored twice is an error.
fn placement(
    cluster: &TestCluster,
    db: &str,
    map: &ShardMap,
) -> Result<HashMap<(String, String), usize>> {
    let mut copies: HashMap<(String, String), usize> = HashMap::new();
    for (i, shard) in cluster.cluster.shards().iter().enumerate() {
        let rows = tokio::task::block_in_place(|| {
            cluster.cluster.psql(
                &shard.primary,
                db,
                "SELECT rtype, id, bucket FROM resources",
            )
        })?;
        for line in rows.lines().filter(|l| !l.is_empty()) {
            let mut parts = line.split('|');
            let (Some(rtype), Some(id), Some(bucket)) = (parts.next(), parts.next(), parts.next())
            else {
                anyhow::bail!("unexpected row {line:?}");
            };
            let bucket: u32 = bucket.parse()?;
            ensure!(
                map.shard_of(bucket) == i,
                "{rtype}/{id} (bucket {bucket}) left on shard {i}"
            );
            *copies.entry((rtype.to_owned(), id.to_owned())).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    ensure!(duplicated.is_empty(), "stored twice: {duplicated:?}");
    Ok(copies)
}

/// Adds a shard to `cluster` (database `db` on it, migrated) and runs a mover over all.
async fn add_and_move(
    cluster: &mut TestCluster,
    db: &str,
    options: MoveOptions,
) -> Result<std::result::Result<MoveReport, store::StoreError>> {
    let c = &mut cluster.cluster;
    let added = tokio::task::block_in_place(|| c.add_shard(&[db.to_owned()]))?;
    store::migrate(&[c.superuser_url(&added.primary, db)]).await?;
    Ok(mover(c, db, options)
        .add_shard(&public_urls(&added, db))
        .await)
}

fn mover(c: &store::cluster::LocalCluster, db: &str, options: MoveOptions) -> Mover {
    let owners = c
        .shards()
        .iter()
        .map(|s| c.superuser_url(&s.primary, db))
        .collect();
    Mover::new(owners, options)
}

fn public_urls(shard: &store::cluster::ShardNodes, db: &str) -> Vec<String> {
    std::iter::once(&shard.primary)
        .chain(&shard.standbys)
        .map(|n| format!("postgres://127.0.0.1:{}/{db}", n.port))
        .collect()
}

/// A mover that stops half-way (after the fence, then after the switch) leaves no resource
/// lost or doubled, writes into its fenced buckets are refused (503, never written to the
/// old shard) until a new mover resumes, and the resumed move ends like an uninterrupted one.
pub async fn an_interrupted_move_is_resumed() -> Result<()> {
    let mut cluster = TestCluster::start_spec(&spec(2))?;
    let server = TestServer::start(&cluster, limits()).await?;
    server.store.refresh_map().await?;
    let patients = load::seed_patients(&server, 150).await?;
    let db = server.db.clone();

    // Shard 2: the mover stops after its first fence.
    let stopped = add_and_move(
        &mut cluster,
        &db,
        MoveOptions {
            stop_at: Some(MoveStop::AfterFence),
            ..MoveOptions::default()
        },
    )
    .await?;
    ensure!(stopped.is_err(), "the mover did not stop: {stopped:?}");
    server.store.refresh_map().await?;
    let map = server.store.shard_map();
    // Fenced: the first chunk's buckets, still mapped to their old shard.
    let fenced: Vec<&String> = patients
        .iter()
        .filter(|id| {
            let b = u32::from_str_radix(&id[..4], 16).unwrap_or(u32::MAX);
            map.shard_of(b) != 2 && crate::scale::first_chunk(&map).contains(&b)
        })
        .collect();
    let mut refused = 0;
    if let Some(id) = fenced.first() {
        let (status, body) = server
            .send(
                reqwest::Method::PUT,
                &format!("Patient/{id}"),
                Some(&json!({"resourceType": "Patient", "id": id, "name": [{"family": "Fenced"}]})),
            )
            .await?;
        ensure!(
            status == 503,
            "a write into a fenced bucket: {status} {body}"
        );
        refused += 1;
    }
    // The gateway still reads everything, each once.
    for id in &patients {
        let (status, _) = server
            .send(reqwest::Method::GET, &format!("Patient/{id}"), None)
            .await?;
        ensure!(status == 200, "Patient/{id} while fenced: {status}");
    }
    let resumed = mover(&cluster.cluster, &db, MoveOptions::default())
        .add_shard(&public_urls(&cluster.cluster.shards()[2], &db))
        .await?;
    ensure!(resumed.buckets == 341, "resumed move: {resumed:?}");

    // Shard 3: the mover stops after its first switch.
    let stopped = add_and_move(
        &mut cluster,
        &db,
        MoveOptions {
            stop_at: Some(MoveStop::AfterSwitch),
            ..MoveOptions::default()
        },
    )
    .await?;
    ensure!(stopped.is_err(), "the mover did not stop: {stopped:?}");
    for id in &patients {
        let (status, _) = server
            .send(reqwest::Method::GET, &format!("Patient/{id}"), None)
            .await?;
        ensure!(status == 200, "Patient/{id} before the cleanup: {status}");
    }
    let (_, count) = server
        .send(reqwest::Method::GET, "Patient?_summary=count", None)
        .await?;
    ensure!(
        count["total"] == json!(150),
        "counted before the cleanup: {}",
        count["total"]
    );
    let resumed = mover(&cluster.cluster, &db, MoveOptions::default())
        .add_shard(&public_urls(&cluster.cluster.shards()[3], &db))
        .await?;
    ensure!(resumed.buckets > 0, "resumed move: {resumed:?}");

    server.store.refresh_map().await?;
    let map = server.store.shard_map();
    let copies = placement(&cluster, &db, &map)?;
    ensure!(copies.len() == 150, "{} resources stored", copies.len());
    for id in &patients {
        let (status, _) = server
            .send(
                reqwest::Method::PUT,
                &format!("Patient/{id}"),
                Some(&json!({"resourceType": "Patient", "id": id, "name": [{"family": "After"}]})),
            )
            .await?;
        ensure!(status == 200, "update of Patient/{id}: {status}");
    }
    let (_, count) = server
        .send(
            reqwest::Method::GET,
            "Patient?family=After&_summary=count",
            None,
        )
        .await?;
    ensure!(
        count["total"] == json!(150),
        "counted after: {}",
        count["total"]
    );
    let shares: Vec<u32> = server.store.topology().iter().map(|s| s.buckets).collect();
    figures(
        "scale-out-resume",
        json!({ "shards": "2 -> 4", "buckets_per_shard": shares, "fenced_writes_refused": refused, "lost": 0, "duplicated": 0 }),
    );
    server.stop_after_fault().await?;
    cluster.stop()?;
    Ok(())
}

/// The buckets of the first step of a move to a new shard (as `plan` orders them).
fn first_chunk(map: &ShardMap) -> Vec<u32> {
    let n = map
        .assignment
        .iter()
        .map(|&a| a as usize)
        .max()
        .unwrap_or(0);
    store::rebalance::plan(map, n + 1)
        .into_iter()
        .next()
        .map(|(_, b)| b.into_iter().take(MoveOptions::default().chunk).collect())
        .unwrap_or_default()
}
