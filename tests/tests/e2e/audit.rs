//! Every request leaves exactly one audit record, and the chains verify.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::json;
use tests::TestServer;

use crate::Env;

crate::tests![every_request_leaves_one_record_and_the_chain_verifies];

async fn every_request_leaves_one_record_and_the_chain_verifies(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let mut n = 0usize;
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Audit"}]}))
        .await?;
    n += 1;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    s.get_ok(&format!("Patient/{id}")).await?;
    n += 1;
    s.get_ok("Patient?family=audit").await?;
    n += 1;
    let (st, _) = s.send(Method::GET, "Patient/does-not-exist", None).await?;
    ensure!(st == 404);
    n += 1;
    let (st, _) = s
        .send(
            Method::POST,
            "Patient",
            Some(&json!({"resourceType": "Patient", "name": []})),
        )
        .await?;
    ensure!(st == 422);
    n += 1;
    let (st, _) = s
        .send_with(
            Method::PUT,
            &format!("Patient/{id}"),
            Some(&p),
            &[("if-match", "W/\"9\"")],
        )
        .await?;
    ensure!(st == 412);
    n += 1;
    let resp = s.http.get(format!("{}/Patient", s.base)).send().await?;
    ensure!(resp.status() == 401);
    n += 1;
    let (st, _) = s
        .send(Method::DELETE, &format!("Patient/{id}"), None)
        .await?;
    ensure!(st == 204);
    n += 1;
    s.get_ok(&format!("Patient/{id}/_history")).await?;
    n += 1;
    s.get_ok("metadata").await?;
    n += 1;
    // Concurrent requests each leave their own record.
    let futures: Vec<_> = (0..20).map(|_| s.get_ok("Patient?family=x")).collect();
    for r in futures_util::future::join_all(futures).await {
        r?;
    }
    n += 20;

    let records = s.store.audit_records(10_000).await?;
    ensure!(
        records.len() == n,
        "expected {n} audit records, found {}",
        records.len()
    );
    let read = records
        .iter()
        .find(|r| r.record.interaction == "read" && r.record.outcome == 200);
    ensure!(
        read.is_some_and(|r| r.record.resource_id.as_deref() == Some(id.as_str())
            && r.record.subject.as_deref() == Some("e2e")
            && r.record.client_ip.as_deref() == Some("127.0.0.1")
            && r.record.patients == vec![id.clone()]),
        "read record: {read:?}"
    );
    let unauth = records.iter().filter(|r| r.record.outcome == 401).count();
    ensure!(unauth == 1);
    let create = records
        .iter()
        .find(|r| r.record.interaction == "create" && r.record.outcome == 201);
    ensure!(
        create.is_some_and(|r| r.record.version == Some(1)),
        "create record: {create:?}"
    );
    let verdict = s.store.verify_audit().await?;
    ensure!(verdict == Ok(n as u64), "verify: {verdict:?}");
    s.stop().await
}
