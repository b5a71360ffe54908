//! Every request leaves exactly one audit record, and the chains verify.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::json;
use tests::TestServer;

use crate::Env;

crate::tests![
    every_request_leaves_one_record_and_the_chain_verifies,
    auditors_read_the_log_as_audit_events
];

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

async fn auditors_read_the_log_as_audit_events(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Watched"}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    s.get_ok(&format!("Patient/{id}")).await?;
    s.get_ok(&format!("Patient/{id}")).await?;
    let gp = s.token_for("gp", "user/*.rs", Some("Practitioner/stranger"), None, 600);
    let (st, _) = s
        .send_as(&gp, Method::GET, &format!("Patient/{id}"), None)
        .await?;
    ensure!(st == 404);
    let auditor = s.token_for("auditor", "user/AuditEvent.rs", None, None, 600);
    // The patient's trail: one create, two reads (the stranger's 404 touched no data).
    let (st, bundle) = s
        .send_as(
            &auditor,
            Method::GET,
            &format!("AuditEvent?patient={id}"),
            None,
        )
        .await?;
    ensure!(st == 200, "{st} {bundle}");
    let events: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .collect();
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    ensure!(actions == ["R", "R", "C"], "newest first: {actions:?}");
    for e in &events {
        ensure!(
            e["resourceType"] == "AuditEvent" && e["outcome"] == "0",
            "{e}"
        );
        ensure!(
            e["entity"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["what"]["reference"] == format!("Patient/{id}")),
            "{e}"
        );
        ensure!(
            e["agent"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["who"]["identifier"]["value"] == "e2e"),
            "{e}"
        );
    }
    let (_, only_create) = s
        .send_as(
            &auditor,
            Method::GET,
            &format!("AuditEvent?patient={id}&action=C"),
            None,
        )
        .await?;
    ensure!(
        only_create["entry"].as_array().map(Vec::len) == Some(1),
        "{only_create}"
    );
    // The stranger's refused read, by agent and outcome.
    let (_, by_agent) = s
        .send_as(
            &auditor,
            Method::GET,
            "AuditEvent?agent=Practitioner/stranger&date=ge2020-01-01",
            None,
        )
        .await?;
    let failed: Vec<&serde_json::Value> =
        by_agent["entry"].as_array().into_iter().flatten().collect();
    ensure!(
        failed.len() == 1 && failed[0]["resource"]["outcome"] == "4",
        "{by_agent}"
    );
    let (_, none) = s
        .send_as(
            &auditor,
            Method::GET,
            &format!("AuditEvent?patient={id}&date=lt2020-01-01"),
            None,
        )
        .await?;
    ensure!(none["entry"].as_array().is_none_or(Vec::is_empty), "{none}");
    // Paging and read by id.
    let (_, page) = s
        .send_as(
            &auditor,
            Method::GET,
            &format!("AuditEvent?patient={id}&_count=2"),
            None,
        )
        .await?;
    ensure!(page["entry"].as_array().map(Vec::len) == Some(2));
    let next = tests::next_link(&page).unwrap_or_default();
    let (st, rest) = s.send_as(&auditor, Method::GET, &next, None).await?;
    ensure!(
        st == 200 && rest["entry"][0]["resource"]["action"] == "C",
        "{rest}"
    );
    let event_id = rest["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (st, one) = s
        .send_as(
            &auditor,
            Method::GET,
            &format!("AuditEvent/{event_id}"),
            None,
        )
        .await?;
    ensure!(st == 200 && one["id"] == event_id.as_str(), "{st} {one}");
    // Nobody writes the log; only auditors read it; auditors read nothing else.
    let event = json!({"resourceType": "AuditEvent"});
    for (method, path) in [
        (Method::POST, "AuditEvent".to_owned()),
        (Method::PUT, format!("AuditEvent/{event_id}")),
        (Method::DELETE, format!("AuditEvent/{event_id}")),
    ] {
        let (st, _) = s.send(method.clone(), &path, Some(&event)).await?;
        ensure!(st == 405, "{method} {path} as system: {st}");
        let (st, _) = s
            .send_as(&auditor, method.clone(), &path, Some(&event))
            .await?;
        ensure!(st == 405, "{method} {path} as auditor: {st}");
    }
    let (st, _) = s.send(Method::GET, "AuditEvent", None).await?;
    ensure!(st == 403, "system reads the log: {st}");
    let (st, _) = s
        .send_as(&auditor, Method::GET, &format!("Patient/{id}"), None)
        .await?;
    ensure!(st == 403, "auditor reads a record: {st}");
    let (st, _) = s
        .send_as(&auditor, Method::GET, "AuditEvent?bogus=1", None)
        .await?;
    ensure!(st == 400);
    s.stop().await
}
