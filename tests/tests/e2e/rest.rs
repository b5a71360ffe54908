//! CRUD, versions, history.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{TestServer, next_link, without_server_meta};

use crate::Env;

crate::tests![
    crud_versions_and_history,
    concurrent_if_match_one_wins,
    update_as_create_and_metadata,
    conditional_create_makes_one_resource,
    system_history_since_and_at,
    json_patch_updates_the_version_it_read,
    create_with_request_id_is_idempotent,
    validate_checks_without_writing,
    fhirpath_patch_in_json_and_xml,
    meta_operations_read_add_and_delete,
    summary_true_on_read_search_and_includes,
    prefer_return_on_every_write
];

async fn server(env: &Env) -> Result<TestServer> {
    TestServer::start(&env.cluster, Default::default()).await
}

async fn crud_versions_and_history(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let patient = json!({"resourceType": "Patient", "id": "ignored-on-create",
        "name": [{"family": "Nelson", "given": ["Ann"]}], "birthDate": "1980-02-03"});
    let resp = s
        .req(Method::POST, "Patient")
        .header("content-type", "application/fhir+json")
        .body(patient.to_string())
        .send()
        .await?;
    ensure!(resp.status() == 201, "create answered {}", resp.status());
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(resp.headers().contains_key("last-modified"));
    let created: serde_json::Value = resp.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    ensure!(
        id != "ignored-on-create" && id.len() == 32,
        "server-assigned id, got {id}"
    );
    ensure!(
        location.ends_with(&format!("/Patient/{id}/_history/1")),
        "{location}"
    );
    ensure!(etag == "W/\"1\"", "{etag}");
    ensure!(created["meta"]["versionId"] == "1");

    let read = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(read == created, "read equals the create's answer");

    let mut changed = read.clone();
    changed["gender"] = json!("female");
    let (status, updated) = s
        .send(Method::PUT, &format!("Patient/{id}"), Some(&changed))
        .await?;
    ensure!(
        status == 200 && updated["meta"]["versionId"] == "2",
        "{status} {updated}"
    );

    let v1 = s.get_ok(&format!("Patient/{id}/_history/1")).await?;
    ensure!(without_server_meta(v1.clone()) == without_server_meta(created.clone()));
    ensure!(v1.get("gender").is_none());

    // Stale If-Match: 412.
    let (status, body) = s
        .send_with(
            Method::PUT,
            &format!("Patient/{id}"),
            Some(&changed),
            &[("if-match", "W/\"1\"")],
        )
        .await?;
    ensure!(
        status == 412 && body["resourceType"] == "OperationOutcome",
        "{status} {body}"
    );

    let (status, _) = s
        .send(Method::DELETE, &format!("Patient/{id}"), None)
        .await?;
    ensure!(status == 204);
    let (status, body) = s.send(Method::GET, &format!("Patient/{id}"), None).await?;
    ensure!(
        status == 410 && body["resourceType"] == "OperationOutcome",
        "{status}"
    );
    let (status, _) = s
        .send(Method::GET, &format!("Patient/{id}/_history/3"), None)
        .await?;
    ensure!(status == 410, "vread of the tombstone: {status}");

    let history = s.get_ok(&format!("Patient/{id}/_history")).await?;
    let entries = history["entry"].as_array().cloned().unwrap_or_default();
    ensure!(entries.len() == 3, "3 versions, got {}", entries.len());
    ensure!(entries[0]["request"]["method"] == "DELETE" && entries[0].get("resource").is_none());
    ensure!(entries[2]["resource"]["meta"]["versionId"] == "1");

    // Paged history: _count=1 walks 3 pages.
    let mut url = format!("Patient/{id}/_history?_count=1");
    let mut versions = Vec::new();
    for _ in 0..5 {
        let page = s.get_ok(&url).await?;
        for e in page["entry"].as_array().into_iter().flatten() {
            versions.push(
                e["response"]["etag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        match next_link(&page) {
            Some(n) => url = n,
            None => break,
        }
    }
    ensure!(
        versions == ["W/\"3\"", "W/\"2\"", "W/\"1\""],
        "{versions:?}"
    );

    // Type history spans shards.
    for i in 0..5 {
        s.create(&json!({"resourceType": "Patient", "name": [{"family": format!("H{i}")}]}))
            .await?;
    }
    let mut url = "Patient/_history?_count=2".to_owned();
    let mut n = 0;
    for _ in 0..10 {
        let page = s.get_ok(&url).await?;
        n += page["entry"].as_array().map_or(0, Vec::len);
        match next_link(&page) {
            Some(next) => url = next,
            None => break,
        }
    }
    ensure!(n == 8, "type history: 3 + 5 versions, got {n}");
    s.stop().await
}

async fn concurrent_if_match_one_wins(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let created = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Race"}]}))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    for round in 0..5 {
        let version = (round + 1).to_string();
        let etag = format!("W/\"{version}\"");
        let mut a = created.clone();
        a["gender"] = json!("male");
        let mut b = created.clone();
        b["gender"] = json!("female");
        let path = format!("Patient/{id}");
        let headers = [("if-match", etag.as_str())];
        let (ra, rb) = tokio::join!(
            s.send_with(Method::PUT, &path, Some(&a), &headers),
            s.send_with(Method::PUT, &path, Some(&b), &headers),
        );
        let mut statuses = [ra?.0, rb?.0];
        statuses.sort();
        ensure!(statuses == [200, 412], "round {round}: {statuses:?}");
    }
    let last = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(last["meta"]["versionId"] == "6");
    s.stop().await
}

async fn update_as_create_and_metadata(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = json!({"resourceType": "Patient", "id": "client-chosen-1", "active": true});
    let (status, body) = s
        .send(Method::PUT, "Patient/client-chosen-1", Some(&p))
        .await?;
    ensure!(
        status == 201 && body["id"] == "client-chosen-1",
        "{status} {body}"
    );
    let (status, _) = s
        .send(Method::PUT, "Patient/client-chosen-1", Some(&p))
        .await?;
    ensure!(status == 200);
    let (status, body) = s.send(Method::PUT, "Patient/other-id", Some(&p)).await?;
    ensure!(
        status == 400 && body["issue"][0]["expression"][0] == "Patient.id",
        "{status} {body}"
    );
    // Observations of a client-id patient land with it and are read back.
    let obs = json!({"resourceType": "Observation", "id": "obs-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/client-chosen-1"}});
    let (status, _) = s.send(Method::PUT, "Observation/obs-1", Some(&obs)).await?;
    ensure!(status == 201);
    ensure!(
        s.get_ok("Observation/obs-1").await?["subject"]["reference"] == "Patient/client-chosen-1"
    );
    // metadata is public and truthful about interactions.
    let cap: serde_json::Value = s
        .http
        .get(format!("{}/metadata", s.base))
        .send()
        .await?
        .json()
        .await?;
    ensure!(cap["resourceType"] == "CapabilityStatement" && cap["fhirVersion"] == "4.0.1");
    let patient = cap["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "Patient")
        .cloned()
        .unwrap_or_default();
    ensure!(
        patient["searchParam"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "birthdate"))
    );
    s.stop().await
}

/// `If-None-Exist`: a retried create makes one resource, even when the retries race.
async fn conditional_create_makes_one_resource(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let body =
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "retry-1"}]});
    let header = [("if-none-exist", "identifier=urn:x|retry-1")];
    let tries: Vec<_> = (0..6)
        .map(|_| s.send_with(Method::POST, "Patient", Some(&body), &header))
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for r in futures_util::future::join_all(tries).await {
        let (status, resource) = r?;
        ensure!(
            status == 201 || status == 200,
            "conditional create answered {status}: {resource}"
        );
        if status == 201 {
            created += 1;
        }
        ids.insert(resource["id"].as_str().unwrap_or_default().to_owned());
    }
    ensure!(
        created == 1 && ids.len() == 1,
        "created {created}, ids {ids:?}"
    );
    let all = s
        .get_ok("Patient?identifier=urn:x|retry-1&_total=accurate")
        .await?;
    ensure!(all["total"] == 1, "{all}");
    // Two matches: 412; criteria the server cannot evaluate: 400, nothing written.
    s.create(&json!({"resourceType": "Patient", "name": [{"family": "Twin"}]}))
        .await?;
    s.create(&json!({"resourceType": "Patient", "name": [{"family": "Twin"}]}))
        .await?;
    let twin = json!({"resourceType": "Patient", "name": [{"family": "Twin"}]});
    let (status, _) = s
        .send_with(
            Method::POST,
            "Patient",
            Some(&twin),
            &[("if-none-exist", "family=twin")],
        )
        .await?;
    ensure!(status == 412, "two matches: {status}");
    let (status, _) = s
        .send_with(
            Method::POST,
            "Patient",
            Some(&twin),
            &[("if-none-exist", "no-such-param=1")],
        )
        .await?;
    ensure!(status == 400, "unknown criteria: {status}");
    let all = s.get_ok("Patient?family=twin&_total=accurate").await?;
    ensure!(all["total"] == 2, "{all}");
    s.stop().await
}

async fn system_history_since_and_at(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let v1 = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Hist"}]}))
        .await?;
    let id = v1["id"].as_str().unwrap_or_default().to_owned();
    let mut body = v1.clone();
    body["active"] = json!(true);
    let (status, v2) = s
        .send(Method::PUT, &format!("Patient/{id}"), Some(&body))
        .await?;
    ensure!(status == 200, "{status}");
    let obs = s
        .create(
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient/{id}")}}),
        )
        .await?;
    let enc = |v: &serde_json::Value| {
        form_urlencoded::byte_serialize(v["meta"]["lastUpdated"].as_str().unwrap_or("").as_bytes())
            .collect::<String>()
    };
    let versions = |bundle: &serde_json::Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}@{}",
                    e["resource"]["resourceType"].as_str().unwrap_or(""),
                    e["resource"]["meta"]["versionId"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    // Every type, newest first, one per page.
    let mut seen = Vec::new();
    let mut url = "_history?_count=1".to_owned();
    for _ in 0..10 {
        let page = s.get_ok(&url).await?;
        seen.extend(versions(&page));
        match next_link(&page) {
            Some(n) => url = n,
            None => break,
        }
    }
    ensure!(
        seen == ["Observation@1", "Patient@2", "Patient@1"],
        "{seen:?}"
    );
    let since = s.get_ok(&format!("_history?_since={}", enc(&v2))).await?;
    ensure!(
        versions(&since) == ["Observation@1", "Patient@2"],
        "{since}"
    );
    let at_v1 = s
        .get_ok(&format!("Patient/{id}/_history?_at={}", enc(&v1)))
        .await?;
    ensure!(versions(&at_v1) == ["Patient@1"], "{at_v1}");
    let since_v2 = s
        .get_ok(&format!("Patient/{id}/_history?_since={}", enc(&v2)))
        .await?;
    ensure!(versions(&since_v2) == ["Patient@2"], "{since_v2}");
    let typed = s
        .get_ok(&format!("Observation/_history?_since={}", enc(&obs)))
        .await?;
    ensure!(versions(&typed) == ["Observation@1"], "{typed}");
    let (status, _) = s
        .send(Method::GET, "_history?_since=yesterday", None)
        .await?;
    ensure!(status == 400);
    // A GP with no patients sees no history; a token without a wildcard scope none at all.
    let gp = s.token_for("gp", "user/*.rs", Some("Practitioner/nobody"), None, 600);
    let (status, bundle) = s.send_as(&gp, Method::GET, "_history", None).await?;
    ensure!(
        status == 200 && versions(&bundle).is_empty(),
        "{status} {bundle}"
    );
    let narrow = s.token("system", "system/Patient.rs", 600);
    let (status, _) = s.send_as(&narrow, Method::GET, "_history", None).await?;
    ensure!(status == 403, "{status}");
    s.stop().await
}

async fn json_patch_updates_the_version_it_read(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = s
        .create(&json!({"resourceType": "Patient", "active": true, "name": [{"family": "Patch"}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("Patient/{id}");
    let send = |body: serde_json::Value, extra: Vec<(&'static str, &'static str)>| {
        let mut req = s
            .req(Method::PATCH, &path)
            .header("content-type", "application/json-patch+json")
            .body(body.to_string());
        for (k, v) in extra {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
            Ok::<_, anyhow::Error>((status, body))
        }
    };
    let (status, patched) = send(
        json!([{"op": "replace", "path": "/active", "value": false},
               {"op": "add", "path": "/name/0/given", "value": ["Ann"]}]),
        vec![],
    )
    .await?;
    ensure!(status == 200, "{status} {patched}");
    ensure!(
        patched["active"] == false && patched["name"][0]["given"][0] == "Ann",
        "{patched}"
    );
    ensure!(patched["meta"]["versionId"] == "2", "{patched}");
    ensure!(s.get_ok(&path).await? == patched);
    let (status, _) = send(
        json!([{"op": "replace", "path": "/active", "value": true}]),
        vec![("if-match", "W/\"1\"")],
    )
    .await?;
    ensure!(status == 412, "stale If-Match: {status}");
    let (status, _) = send(
        json!([{"op": "test", "path": "/active", "value": true}]),
        vec![],
    )
    .await?;
    ensure!(status == 422, "failed test op: {status}");
    let (status, _) = send(
        json!([{"op": "replace", "path": "/id", "value": "other"}]),
        vec![],
    )
    .await?;
    ensure!(status == 422, "id change: {status}");
    let (status, _) = send(
        json!([{"op": "add", "path": "/identifier", "value": []}]),
        vec![],
    )
    .await?;
    ensure!(
        status == 400 || status == 422,
        "a patch that breaks the resource: {status}"
    );
    let (status, _) = send(json!({"not": "a patch"}), vec![]).await?;
    ensure!(status == 400, "not a patch: {status}");
    // FHIR JSON is a FHIRPath Patch (a Parameters), which an array is not.
    let resp = s
        .req(Method::PATCH, &path)
        .header("content-type", "application/fhir+json")
        .body("[]")
        .send()
        .await?;
    ensure!(resp.status() == 400, "{}", resp.status());
    let text = resp.text().await?;
    ensure!(
        text.contains("application/json-patch+json"),
        "the hint: {text}"
    );
    let resp = s
        .req(Method::PATCH, &path)
        .header("content-type", "text/plain")
        .body("[]")
        .send()
        .await?;
    ensure!(resp.status() == 415, "{}", resp.status());
    let resp = s
        .req(Method::PATCH, "Patient/nobody-here")
        .header("content-type", "application/json-patch+json")
        .body("[]")
        .send()
        .await?;
    ensure!(resp.status() == 404, "{}", resp.status());
    ensure!(
        s.get_ok(&path).await?["meta"]["versionId"] == "2",
        "failed patches wrote nothing"
    );
    s.stop().await
}

/// POSTs `body` with `request_id`; returns the status, the resource's id (from the body of a
/// 201, from the Location of a replay) and the Location.
async fn post_keyed(
    s: &TestServer,
    token: &str,
    request_id: &str,
    body: &serde_json::Value,
) -> Result<(u16, String, String)> {
    let resp = s
        .http
        .post(format!("{}/Patient", s.base))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .header("x-request-id", request_id)
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let v: serde_json::Value = resp.json().await?;
    let id = match v["id"].as_str() {
        Some(id) => id.to_owned(),
        None => location
            .split("/Patient/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_owned(),
    };
    // A replay names the resource; it does not hand out its (current) content.
    ensure!(
        status != 200 || (v["resourceType"] == "OperationOutcome" && v.get("name").is_none()),
        "a replay returned content: {v}"
    );
    Ok((status, id, location))
}

/// A POST with the client's `X-Request-Id` is an idempotent create: a retry of the same
/// request answers 200 naming what the first one created (concurrent retries too), without
/// its content; another caller's same request id, or the same id with another body, is
/// another create.
async fn create_with_request_id_is_idempotent(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let body = json!({"resourceType": "Patient", "name": [{"family": "Retried"}]});
    let token = s.system_token();
    let (first, id, location) = post_keyed(&s, &token, "order-7", &body).await?;
    ensure!(first == 201 && !id.is_empty(), "first create: {first}");
    let (again, same, again_location) = post_keyed(&s, &token, "order-7", &body).await?;
    ensure!(
        again == 200 && same == id && again_location.contains(&format!("Patient/{id}")),
        "retry: {again} {same} {again_location} (first {id} at {location})"
    );
    // Concurrent retries of a new request: one creates, all name the same resource.
    let results =
        futures_util::future::join_all((0..4).map(|_| post_keyed(&s, &token, "order-8", &body)))
            .await;
    let mut ids = Vec::new();
    let mut created = 0;
    for r in results {
        let (status, rid, _) = r?;
        ensure!(
            status == 200 || status == 201,
            "concurrent retry answered {status}"
        );
        created += usize::from(status == 201);
        ids.push(rid);
    }
    ids.dedup();
    ensure!(
        created == 1 && ids.len() == 1,
        "concurrent retries: {created} created, ids {ids:?}"
    );
    // The same request id from another caller is another request.
    let other = s.token_of("someone-else", "system", "system/*.cruds");
    let (status, other_id, _) = post_keyed(&s, &other, "order-7", &body).await?;
    ensure!(
        status == 201 && other_id != id,
        "other caller: {status} {other_id}"
    );
    // A reused request id with another body is another create, not a replay.
    let changed =
        json!({"resourceType": "Patient", "name": [{"family": "Retried", "given": ["B"]}]});
    let (status, changed_id, _) = post_keyed(&s, &token, "order-7", &changed).await?;
    ensure!(
        status == 201 && changed_id != id,
        "other body: {status} {changed_id}"
    );
    let n = s.get_ok("Patient?family=Retried&_summary=count").await?;
    ensure!(n["total"] == 4, "four resources expected: {n}");
    s.stop().await
}

/// `$validate` at type and instance level: what a create or update would refuse or warn
/// about, as an OperationOutcome (200), and nothing written.
async fn validate_checks_without_writing(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let issues = |b: &Value| -> Vec<(String, String)> {
        b["issue"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["severity"].as_str().unwrap_or_default().to_owned(),
                    i["expression"][0].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let good = json!({"resourceType": "Patient", "name": [{"family": "Valid"}], "birthDate": "1970-01-01"});
    let (status, b) = s
        .send(Method::POST, "Patient/$validate", Some(&good))
        .await?;
    ensure!(
        status == 200 && b["resourceType"] == "OperationOutcome",
        "{status} {b}"
    );
    ensure!(
        issues(&b) == vec![("information".to_owned(), String::new())],
        "{b}"
    );
    let bad = json!({"resourceType": "Patient", "birthDate": 42, "gender": "woman"});
    let (status, b) = s
        .send(Method::POST, "Patient/$validate", Some(&bad))
        .await?;
    ensure!(status == 200, "{status} {b}");
    let found = issues(&b);
    ensure!(
        found.contains(&("error".into(), "Patient.birthDate".into()))
            && found.contains(&("error".into(), "Patient.gender".into())),
        "{b}"
    );
    // In a Parameters, as the spec shows it; with a bad ICD-10 code (the terminology check).
    let wrapped = json!({"resourceType": "Parameters", "parameter": [
        {"name": "mode", "valueCode": "create"},
        {"name": "resource", "resource": {"resourceType": "Condition",
            "subject": {"reference": "Patient/x"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "XX99.9"}]}}}]});
    let (status, b) = s
        .send(Method::POST, "Condition/$validate", Some(&wrapped))
        .await?;
    ensure!(status == 200, "{status} {b}");
    ensure!(
        issues(&b)
            .iter()
            .any(|(sev, at)| sev == "error" && at.starts_with("Condition.code")),
        "{b}"
    );
    // Instance level: the body's id must be the URL's.
    let (status, b) = s
        .send(
            Method::POST,
            "Patient/other/$validate",
            Some(&json!({"resourceType": "Patient", "id": "mine"})),
        )
        .await?;
    ensure!(
        status == 200 && issues(&b) == vec![("error".into(), "Patient.id".into())],
        "{b}"
    );
    // Malformed JSON is an outcome too; GET is not the way to call it.
    let resp = s
        .req(Method::POST, "Patient/$validate")
        .header("content-type", "application/fhir+json")
        .body("{")
        .send()
        .await?;
    ensure!(resp.status() == 200, "{}", resp.status());
    let (status, _) = s.send(Method::GET, "Patient/$validate", None).await?;
    ensure!(status == 405, "GET: {status}");
    // Nothing was written.
    let (_, count) = s.send(Method::GET, "Patient?_summary=count", None).await?;
    ensure!(count["total"] == 0, "{count}");
    s.stop().await
}

/// One FHIRPath Patch operation.
fn fhirpath_op(kind: &str, path: &str, parts: Value) -> Value {
    let mut all = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    all.extend(parts.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": all})
}

fn parameters(ops: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

async fn fhirpath_patch_in_json_and_xml(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = s
        .create(&json!({"resourceType": "Patient", "active": true,
            "name": [{"use": "official", "family": "Path", "given": ["Ann"]}],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("Patient/{id}");
    let patch = parameters(vec![
        fhirpath_op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "birthDate"},
                                            {"name": "value", "valueDate": "1930-01-01"}]),
        ),
        fhirpath_op(
            "insert",
            "Patient.name.where(use='official').given",
            json!([{"name": "value", "valueString": "Zoe"}, {"name": "index", "valueInteger": 0}]),
        ),
        fhirpath_op("delete", "Patient.telecom.where(system='phone')", json!([])),
        fhirpath_op("delete", "Patient.photo", json!([])),
        fhirpath_op(
            "replace",
            "Patient.active",
            json!([{"name": "value", "valueBoolean": false}]),
        ),
        fhirpath_op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "contact"},
            {"name": "value", "part": [{"name": "name", "valueHumanName": {"family": "Kin"}},
                                       {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "9"}}]}]),
        ),
    ]);
    let (status, patched) = s.send(Method::PATCH, &path, Some(&patch)).await?;
    ensure!(status == 200, "{status} {patched}");
    ensure!(
        patched["birthDate"] == "1930-01-01"
            && patched["name"][0]["given"] == json!(["Zoe", "Ann"])
            && patched["telecom"] == json!([{"system": "email", "value": "a@b"}])
            && patched["active"] == false
            && patched["contact"]
                == json!([{"name": {"family": "Kin"}, "telecom": [{"system": "phone", "value": "9"}]}])
            && patched["meta"]["versionId"] == "2",
        "{patched}"
    );
    ensure!(s.get_ok(&path).await? == patched, "the patch was stored");
    // If-Match: a stale version is 412, the current one applies.
    let move_given = parameters(vec![fhirpath_op(
        "move",
        "Patient.name[0].given",
        json!([{"name": "source", "valueInteger": 1}, {"name": "destination", "valueInteger": 0}]),
    )]);
    let (status, body) = s
        .send_with(
            Method::PATCH,
            &path,
            Some(&move_given),
            &[("if-match", "W/\"1\"")],
        )
        .await?;
    ensure!(
        status == 412 && body["resourceType"] == "OperationOutcome",
        "{status} {body}"
    );
    let (status, body) = s
        .send_with(
            Method::PATCH,
            &path,
            Some(&move_given),
            &[("if-match", "W/\"2\"")],
        )
        .await?;
    ensure!(
        status == 200 && body["name"][0]["given"] == json!(["Ann", "Zoe"]),
        "{status} {body}"
    );
    // A replace of nothing is 422 naming the path; an unsupported path is 400 naming it.
    let (status, body) = s
        .send(
            Method::PATCH,
            &path,
            Some(&parameters(vec![fhirpath_op(
                "replace",
                "Patient.gender",
                json!([{"name": "value", "valueCode": "male"}]),
            )])),
        )
        .await?;
    ensure!(
        status == 422 && body.to_string().contains("Patient.gender"),
        "{status} {body}"
    );
    let (status, body) = s
        .send(
            Method::PATCH,
            &path,
            Some(&parameters(vec![fhirpath_op(
                "delete",
                "Patient.name.descendants()",
                json!([]),
            )])),
        )
        .await?;
    ensure!(
        status == 400 && body.to_string().contains("descendants()"),
        "{status} {body}"
    );
    // A result that breaks R4 is refused like an update.
    let (status, body) = s
        .send(Method::PATCH, &path, Some(&parameters(vec![fhirpath_op("add", "Patient",
            json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "woman"}]))])))
        .await?;
    ensure!(status == 422, "{status} {body}");
    // FHIR XML, answered in XML.
    let xml = r#"<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/><part><name value="type"/><valueCode value="replace"/></part><part><name value="path"/><valueString value="Patient.birthDate"/></part><part><name value="value"/><valueDate value="1931-02-03"/></part></parameter></Parameters>"#;
    let resp = s
        .req(Method::PATCH, &path)
        .header("content-type", "application/fhir+xml")
        .header("accept", "application/fhir+xml")
        .body(xml)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    ensure!(
        status == 200 && text.contains("<birthDate value=\"1931-02-03\"/>"),
        "{status} {text}"
    );
    let read = s.get_ok(&path).await?;
    ensure!(
        read["birthDate"] == "1931-02-03" && read["meta"]["versionId"] == "4",
        "{read}"
    );
    s.stop().await
}

async fn meta_operations_read_add_and_delete(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = s
        .create(
            &json!({"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": "a"}]},
            "name": [{"family": "Meta"}]}),
        )
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let meta_of = |answer: &Value| answer["parameter"][0]["valueMeta"].clone();
    let answer = s.get_ok(&format!("Patient/{id}/$meta")).await?;
    ensure!(
        answer["resourceType"] == "Parameters"
            && answer["parameter"][0]["name"] == "return"
            && meta_of(&answer)["versionId"] == "1"
            && meta_of(&answer)["tag"][0]["code"] == "a",
        "{answer}"
    );
    let (status, answer) = s
        .send(Method::POST, &format!("Patient/{id}/$meta"), None)
        .await?;
    ensure!(
        status == 200 && meta_of(&answer)["versionId"] == "1",
        "POST $meta: {status} {answer}"
    );
    // $meta-add: labels are sets; a change writes version 2, the rest of the resource as it was.
    let add = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "urn:t", "code": "a", "display": "again"}, {"system": "urn:t", "code": "b"}],
        "profile": ["http://example.org/StructureDefinition/p"],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}]});
    let (status, answer) = s
        .send(Method::POST, &format!("Patient/{id}/$meta-add"), Some(&add))
        .await?;
    let meta = meta_of(&answer);
    ensure!(
        status == 200
            && meta["versionId"] == "2"
            && meta["tag"].as_array().map(Vec::len) == Some(2)
            && meta["tag"][0].get("display").is_none()
            && meta["profile"][0] == "http://example.org/StructureDefinition/p"
            && meta["security"][0]["code"] == "R",
        "{status} {answer}"
    );
    let read = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(read["meta"] == meta && read["name"] == p["name"], "{read}");
    // The new tag is searchable.
    let found = s.get_ok(&format!("Patient?_tag=urn:t|b&_id={id}")).await?;
    ensure!(
        found["entry"].as_array().map(Vec::len) == Some(1),
        "{found}"
    );
    // Adding what is there writes nothing.
    let (status, answer) = s
        .send(Method::POST, &format!("Patient/{id}/$meta-add"), Some(&add))
        .await?;
    ensure!(
        status == 200 && meta_of(&answer)["versionId"] == "2",
        "{status} {answer}"
    );
    // $meta-delete; the old version's meta is still there.
    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "urn:t", "code": "a"}], "profile": ["http://example.org/StructureDefinition/p"]}}]});
    let (status, answer) = s
        .send(
            Method::POST,
            &format!("Patient/{id}/$meta-delete"),
            Some(&delete),
        )
        .await?;
    let meta = meta_of(&answer);
    ensure!(
        status == 200
            && meta["versionId"] == "3"
            && meta["tag"] == json!([{"system": "urn:t", "code": "b"}])
            && meta.get("profile").is_none()
            && meta["security"][0]["code"] == "R",
        "{status} {answer}"
    );
    let v1 = s.get_ok(&format!("Patient/{id}/_history/1/$meta")).await?;
    ensure!(
        meta_of(&v1)["tag"] == json!([{"system": "urn:t", "code": "a"}]),
        "{v1}"
    );
    // If-Match holds; write rights are needed to change the meta, read rights to see it.
    let (status, _) = s
        .send_with(
            Method::POST,
            &format!("Patient/{id}/$meta-add"),
            Some(&add),
            &[("if-match", "W/\"1\"")],
        )
        .await?;
    ensure!(status == 412, "stale If-Match: {status}");
    let reader = s.token("registry", "system/Patient.rs", 600);
    let (status, _) = s
        .send_as(&reader, Method::GET, &format!("Patient/{id}/$meta"), None)
        .await?;
    ensure!(status == 200, "a reader reads the meta: {status}");
    let (status, body) = s
        .send_as(
            &reader,
            Method::POST,
            &format!("Patient/{id}/$meta-add"),
            Some(&add),
        )
        .await?;
    ensure!(status == 403, "a reader may not add: {status} {body}");
    let nobody = s.token("registry", "system/Observation.rs", 600);
    let (status, _) = s
        .send_as(&nobody, Method::GET, &format!("Patient/{id}/$meta"), None)
        .await?;
    ensure!(status == 403, "no Patient scope: {status}");
    ensure!(
        s.get_ok(&format!("Patient/{id}")).await?["meta"]["versionId"] == "3",
        "refused calls wrote nothing"
    );
    let (status, _) = s.send(Method::GET, "Patient/$meta", None).await?;
    ensure!(status == 404, "type-level $meta is not served: {status}");
    s.stop().await
}

async fn summary_true_on_read_search_and_includes(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = s
        .create(&json!({"resourceType": "Patient",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Sum</div>"},
            "name": [{"family": "Sum"}], "birthDate": "1970-01-01",
            "contact": [{"name": {"family": "Kin"}}],
            "communication": [{"language": {"text": "nl"}}]}))
        .await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let o = s
        .create(
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "hr"},
            "subject": {"reference": format!("Patient/{id}")},
            "note": [{"text": "not in the summary"}],
            "valueQuantity": {"value": 60}}),
        )
        .await?;
    let oid = o["id"].as_str().unwrap_or_default().to_owned();
    let subsetted = |r: &Value| {
        r["meta"]["tag"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["code"] == "SUBSETTED"))
    };
    let read = s.get_ok(&format!("Patient/{id}?_summary=true")).await?;
    ensure!(
        read["name"] == p["name"]
            && read["birthDate"] == "1970-01-01"
            && read.get("text").is_none()
            && read.get("contact").is_none()
            && read.get("communication").is_none()
            && subsetted(&read),
        "{read}"
    );
    let (status, _) = s
        .send(Method::GET, &format!("Patient/{id}?_summary=count"), None)
        .await?;
    ensure!(status == 400, "_summary=count on a read: {status}");
    let bundle = s
        .get_ok(&format!(
            "Observation?_id={oid}&_summary=true&_include=Observation:subject"
        ))
        .await?;
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    ensure!(entries.len() == 2, "{bundle}");
    for e in &entries {
        let r = &e["resource"];
        ensure!(subsetted(r), "{r}");
        ensure!(
            r.get("note").is_none() && r.get("text").is_none() && r.get("contact").is_none(),
            "{r}"
        );
    }
    ensure!(
        entries[0]["resource"]["status"] == "final"
            && entries[0]["resource"]["valueQuantity"]["value"] == 60,
        "{bundle}"
    );
    // In XML too.
    let resp = s
        .req(
            Method::GET,
            &format!("Patient/{id}?_summary=true&_format=xml"),
        )
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    ensure!(
        status == 200
            && text.contains("SUBSETTED")
            && text.contains("<family value=\"Sum\"/>")
            && !text.contains("Kin"),
        "{status} {text}"
    );
    s.stop().await
}

async fn prefer_return_on_every_write(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let patient = json!({"resourceType": "Patient", "name": [{"family": "Prefer"}]});
    let minimal = [("prefer", "return=minimal")];
    let outcome = [("prefer", "return=OperationOutcome")];
    let representation = [("prefer", "return=representation")];
    // Create.
    let (status, body) = s
        .send_with(Method::POST, "Patient", Some(&patient), &minimal)
        .await?;
    ensure!(
        status == 201 && body.is_null(),
        "create minimal: {status} {body}"
    );
    let (status, body) = s
        .send_with(Method::POST, "Patient", Some(&patient), &outcome)
        .await?;
    ensure!(
        status == 201 && body["resourceType"] == "OperationOutcome",
        "create outcome: {status} {body}"
    );
    let (status, created) = s
        .send_with(Method::POST, "Patient", Some(&patient), &representation)
        .await?;
    ensure!(
        status == 201 && created["resourceType"] == "Patient",
        "create representation: {status}"
    );
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("Patient/{id}");
    // Update.
    let mut changed = created.clone();
    changed["gender"] = json!("other");
    let (status, body) = s
        .send_with(Method::PUT, &path, Some(&changed), &minimal)
        .await?;
    ensure!(
        status == 200 && body.is_null(),
        "update minimal: {status} {body}"
    );
    let (status, body) = s
        .send_with(Method::PUT, &path, Some(&changed), &outcome)
        .await?;
    ensure!(
        status == 200 && body["resourceType"] == "OperationOutcome",
        "update outcome: {status} {body}"
    );
    let (status, body) = s
        .send_with(Method::PUT, &path, Some(&changed), &representation)
        .await?;
    ensure!(
        status == 200 && body["gender"] == "other",
        "update representation: {status} {body}"
    );
    // Patch (FHIRPath).
    let patch = parameters(vec![fhirpath_op(
        "replace",
        "Patient.gender",
        json!([{"name": "value", "valueCode": "male"}]),
    )]);
    let (status, body) = s
        .send_with(Method::PATCH, &path, Some(&patch), &minimal)
        .await?;
    ensure!(
        status == 200 && body.is_null(),
        "patch minimal: {status} {body}"
    );
    let (status, body) = s
        .send_with(Method::PATCH, &path, Some(&patch), &outcome)
        .await?;
    ensure!(
        status == 200 && body["resourceType"] == "OperationOutcome",
        "patch outcome: {status} {body}"
    );
    let (status, body) = s
        .send_with(Method::PATCH, &path, Some(&patch), &representation)
        .await?;
    ensure!(
        status == 200 && body["gender"] == "male",
        "patch representation: {status} {body}"
    );
    // Transaction and batch entries.
    for kind in ["transaction", "batch"] {
        let bundle = json!({"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": patient, "request": {"method": "POST", "url": "Patient"}}]});
        let (status, body) = s
            .send_with(Method::POST, "", Some(&bundle), &representation)
            .await?;
        ensure!(
            status == 200 && body["entry"][0]["resource"]["resourceType"] == "Patient",
            "{kind} representation: {status} {body}"
        );
        let (status, body) = s
            .send_with(Method::POST, "", Some(&bundle), &minimal)
            .await?;
        ensure!(
            status == 200
                && body["entry"][0].get("resource").is_none()
                && body["entry"][0]["response"]["status"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("201")),
            "{kind} minimal: {status} {body}"
        );
        let (status, body) = s
            .send_with(Method::POST, "", Some(&bundle), &outcome)
            .await?;
        ensure!(
            status == 200
                && body["entry"][0]
                    .get("resource")
                    .is_none_or(|r| r["resourceType"] == "OperationOutcome"),
            "{kind} outcome: {status} {body}"
        );
    }
    s.stop().await
}
