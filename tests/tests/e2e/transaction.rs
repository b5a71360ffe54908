//! Batch and transaction Bundles; conditional update and delete; conditional reads.

use std::collections::HashMap;
use std::io::Read;
use std::time::Instant;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    transaction_resolves_placeholders_and_colocates,
    transaction_with_one_bad_code_writes_nothing_on_any_shard,
    transaction_version_conflict_rolls_back_every_shard,
    transaction_conditional_entries_and_references,
    transaction_refuses_malformed_bundles,
    batch_entries_stand_alone,
    transaction_patches_with_fhirpath_and_json_patch,
    transaction_with_a_failing_patch_writes_nothing,
    batch_patch_entries_stand_alone,
    transaction_conditional_patch,
    transaction_of_a_thousand_entries,
    conditional_update_and_delete,
    reads_answer_304_when_not_modified,
    synthea_transactions_load_and_read_back
];

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";

async fn server(env: &Env) -> Result<TestServer> {
    TestServer::start(&env.cluster, Default::default()).await
}

/// A server-format id (`bbbb` + 28 hex) in `bucket`, so a test can pick the shard.
fn id_in_bucket(bucket: u32, n: u8) -> String {
    format!("{bucket:04x}{}", format!("{n:02x}").repeat(14))
}

/// Two ids of the same type that live on different shards.
fn ids_on_two_shards(s: &TestServer, n: u8) -> (String, String) {
    let map = s.store.shard_map();
    let first = 0;
    let second = (1..1024)
        .find(|b| map.shard_of(*b) != map.shard_of(first))
        .unwrap_or(1);
    (id_in_bucket(first, n), id_in_bucket(second, n))
}

/// Creates an active Patient under each of `ids` (PUT, 201).
async fn put_active_patients(s: &TestServer, ids: &[&str]) -> Result<()> {
    for id in ids {
        let body = json!({"resourceType": "Patient", "id": id, "active": true});
        let (status, got) = s
            .send(Method::PUT, &format!("Patient/{id}"), Some(&body))
            .await?;
        ensure!(status == 201, "{status} {got}");
    }
    Ok(())
}

async fn post_bundle(s: &TestServer, bundle: &Value) -> Result<(u16, Value)> {
    s.send(Method::POST, "", Some(bundle)).await
}

fn status_of(response: &Value, i: usize) -> String {
    response["entry"][i]["response"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn location_id(response: &Value, i: usize) -> String {
    let location = response["entry"][i]["response"]["location"]
        .as_str()
        .unwrap_or_default();
    location.split('/').nth(1).unwrap_or_default().to_owned()
}

fn observation(subject: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject}})
}

async fn transaction_resolves_placeholders_and_colocates(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let (here, there) = ids_on_two_shards(&s, 1);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0001",
         "resource": {"resourceType": "Patient", "name": [{"family": "Placeholder"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0001", "8867-4"),
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0002",
         "resource": {"resourceType": "Practitioner", "id": here, "name": [{"family": "Here"}]},
         "request": {"method": "PUT", "url": format!("Practitioner/{here}")}},
        {"resource": {"resourceType": "Practitioner", "id": there, "name": [{"family": "There"}]},
         "request": {"method": "PUT", "url": format!("Practitioner/{there}")}},
        {"resource": {"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0001"},
            "participant": [{"individual": {"reference": "urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0002"}}]},
         "request": {"method": "POST", "url": "Encounter"}},
        {"request": {"method": "GET", "url": "Practitioner?name=There"}}
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(status == 200, "{status} {response}");
    ensure!(response["type"] == "transaction-response", "{response}");
    for (i, want) in [
        "201 Created",
        "201 Created",
        "201 Created",
        "201 Created",
        "201 Created",
        "200 OK",
    ]
    .iter()
    .enumerate()
    {
        ensure!(status_of(&response, i) == *want, "entry {i}: {response}");
    }
    let patient = location_id(&response, 0);
    let obs = s
        .get_ok(&format!("Observation/{}", location_id(&response, 1)))
        .await?;
    ensure!(
        obs["subject"]["reference"] == format!("Patient/{patient}"),
        "placeholder rewritten: {obs}"
    );
    let enc = s
        .get_ok(&format!("Encounter/{}", location_id(&response, 4)))
        .await?;
    ensure!(enc["participant"][0]["individual"]["reference"] == format!("Practitioner/{here}"));
    // The Observation and the Encounter live with their patient.
    for (rtype, i) in [("Observation", 1), ("Encounter", 4)] {
        let id = location_id(&response, i);
        ensure!(
            id[..4] == patient[..4],
            "{rtype}/{id} is not in its patient's bucket ({patient})"
        );
    }
    ensure!(
        s.store.locate("Practitioner", &here).await?
            != s.store.locate("Practitioner", &there).await?,
        "the two Practitioners should be on different shards"
    );
    // The GET entry ran after the writes and saw them.
    let found = &response["entry"][5]["resource"];
    ensure!(
        found["resourceType"] == "Bundle" && found["entry"].as_array().map(Vec::len) == Some(1),
        "{found}"
    );
    // One audit record for the transaction names every write.
    let records = s.store.audit_records(100).await?;
    let tx: Vec<_> = records
        .iter()
        .filter(|r| r.record.interaction == "transaction")
        .collect();
    ensure!(tx.len() == 1, "one transaction record, got {}", tx.len());
    ensure!(
        tx[0].record.entries.len() == 5,
        "{:?}",
        tx[0].record.entries
    );
    ensure!(
        tx[0].record.patients == vec![patient.clone()],
        "{:?}",
        tx[0].record.patients
    );
    s.stop().await
}

async fn transaction_with_one_bad_code_writes_nothing_on_any_shard(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let (here, there) = ids_on_two_shards(&s, 2);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": here, "name": [{"family": "Here"}]},
         "request": {"method": "PUT", "url": format!("Patient/{here}")}},
        {"resource": {"resourceType": "Patient", "id": there, "name": [{"family": "There"}]},
         "request": {"method": "PUT", "url": format!("Patient/{there}")}},
        {"resource": {"resourceType": "Condition", "subject": {"reference": format!("Patient/{here}")},
            "code": {"coding": [{"system": ICD10, "code": "J45.0"}, {"system": ICD10, "code": "J99.99"}]}},
         "request": {"method": "POST", "url": "Condition"}}
    ]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(status == 422, "{status} {outcome}");
    ensure!(
        outcome["issue"][0]["expression"][0] == "Bundle.entry[2].resource.code.coding[1].code",
        "{outcome}"
    );
    let text = outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default();
    ensure!(text.contains("J99.99") && text.contains(ICD10), "{text}");
    for id in [&here, &there] {
        let (status, _) = s.send(Method::GET, &format!("Patient/{id}"), None).await?;
        ensure!(status == 404, "Patient/{id} must not exist: {status}");
    }
    let (status, _) = s.send(Method::GET, "Condition", None).await?;
    ensure!(status == 200);
    ensure!(
        s.search_all("Condition", 5).await?.is_empty(),
        "no Condition written"
    );
    // The same bundle with the code fixed writes everything, on both shards.
    let mut fixed = bundle.clone();
    fixed["entry"][2]["resource"]["code"]["coding"][1]["code"] = json!("J45.9");
    let (status, response) = post_bundle(&s, &fixed).await?;
    ensure!(status == 200, "{status} {response}");
    for id in [&here, &there] {
        s.get_ok(&format!("Patient/{id}")).await?;
    }
    ensure!(s.store.recover_in_doubt(std::time::Duration::ZERO).await? == Default::default());
    s.stop().await
}

async fn transaction_version_conflict_rolls_back_every_shard(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let (here, there) = ids_on_two_shards(&s, 3);
    put_active_patients(&s, &[&here, &there]).await?;
    let update = |id: &str, etag: &str| {
        json!({"resource": {"resourceType": "Patient", "id": id, "active": false},
               "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": etag}})
    };
    let bundle = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [update(&here, "W/\"1\""), update(&there, "W/\"7\"")]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(status == 412, "{status} {outcome}");
    ensure!(
        outcome["issue"][0]["expression"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("Bundle.entry[1]")),
        "{outcome}"
    );
    for id in [&here, &there] {
        let p = s.get_ok(&format!("Patient/{id}")).await?;
        ensure!(p["meta"]["versionId"] == "1" && p["active"] == true, "{p}");
    }
    // Deletes and updates across shards in one go.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        update(&here, "W/\"1\""),
        {"request": {"method": "DELETE", "url": format!("Patient/{there}")}}
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(status == 200, "{status} {response}");
    ensure!(
        status_of(&response, 0) == "200 OK" && status_of(&response, 1) == "204 No Content",
        "{response}"
    );
    let (status, _) = s
        .send(Method::GET, &format!("Patient/{there}"), None)
        .await?;
    ensure!(status == 410, "deleted: {status}");
    s.stop().await
}

async fn transaction_conditional_entries_and_references(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let known = s
        .create(&json!({"resourceType": "Patient",
            "identifier": [{"system": "urn:e2e:mrn", "value": "known"}], "name": [{"family": "Known"}]}))
        .await?;
    let known_id = known["id"].as_str().unwrap_or_default().to_owned();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        // Conditional create that finds its match: nothing written, the placeholder maps to it.
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:e2e:mrn", "value": "known"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:e2e:mrn|known"}},
        {"resource": observation("urn:uuid:11111111-1111-4111-8111-111111111111", "1"),
         "request": {"method": "POST", "url": "Observation"}},
        // A conditional reference.
        {"resource": observation("Patient?identifier=urn:e2e:mrn|known", "2"),
         "request": {"method": "POST", "url": "Observation"}},
        // Conditional update with no match: a create.
        {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:e2e:mrn", "value": "new"}]},
         "request": {"method": "PUT", "url": "Patient?identifier=urn:e2e:mrn|new"}},
        // Conditional delete with no match: nothing to do.
        {"request": {"method": "DELETE", "url": "Patient?identifier=urn:e2e:mrn|nobody"}}
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(status == 200, "{status} {response}");
    ensure!(status_of(&response, 0) == "200 OK", "{response}");
    ensure!(location_id(&response, 0) == known_id, "{response}");
    ensure!(status_of(&response, 3) == "201 Created", "{response}");
    ensure!(status_of(&response, 4) == "204 No Content", "{response}");
    for i in [1, 2] {
        let obs = s
            .get_ok(&format!("Observation/{}", location_id(&response, i)))
            .await?;
        ensure!(
            obs["subject"]["reference"] == format!("Patient/{known_id}"),
            "{obs}"
        );
    }
    let patients = s
        .search_all("Patient?identifier=urn:e2e:mrn|known", 3)
        .await?;
    ensure!(
        patients.len() == 1,
        "the conditional create made nothing new"
    );
    // A conditional reference that matches nothing, or several, fails the transaction.
    s.create(&json!({"resourceType": "Patient", "identifier": [{"system": "urn:e2e:mrn", "value": "known"}]}))
        .await?;
    for criteria in [
        "Patient?identifier=urn:e2e:mrn|nobody",
        "Patient?identifier=urn:e2e:mrn|known",
    ] {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation(criteria, "3"), "request": {"method": "POST", "url": "Observation"}}
        ]});
        let (status, outcome) = post_bundle(&s, &bundle).await?;
        ensure!(status == 412, "{criteria}: {status} {outcome}");
    }
    s.stop().await
}

async fn transaction_refuses_malformed_bundles(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let patient = json!({"resourceType": "Patient", "active": true});
    let cases = [
        (
            json!({"resourceType": "Bundle", "type": "collection"}),
            400,
            "Bundle.type",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": patient}]}),
            400,
            "Bundle.entry[0].request",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient, "request": {"method": "FETCH", "url": "Patient"}}]}),
            400,
            "Bundle.entry[0].request.method",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient, "request": {"method": "POST", "url": "Observation"}}]}),
            400,
            "Bundle.entry[0].resource.resourceType",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation("urn:uuid:99999999-9999-4999-8999-999999999999", "x"),
             "request": {"method": "POST", "url": "Observation"}}]}),
            400,
            "Bundle.entry[0].resource",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": "same"}, "request": {"method": "PUT", "url": "Patient/same"}},
            {"request": {"method": "DELETE", "url": "Patient/same"}}]}),
            400,
            "Bundle.entry[1]",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Observation", "code": {"text": "x"}},
             "request": {"method": "POST", "url": "Observation"}}]}),
            422,
            "Bundle.entry[0].resource.status",
        ),
        (
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": "a"}, "request": {"method": "PUT", "url": "Patient/b"}}]}),
            400,
            "Bundle.entry[0].resource.id",
        ),
    ];
    for (bundle, want, expression) in cases {
        let (status, outcome) = post_bundle(&s, &bundle).await?;
        ensure!(status == want, "{bundle}: {status} {outcome}");
        ensure!(outcome["resourceType"] == "OperationOutcome", "{outcome}");
        ensure!(
            outcome["issue"][0]["expression"][0] == expression,
            "{bundle}: {outcome}"
        );
    }
    // Nothing of the above was written.
    ensure!(s.search_all("Patient", 3).await?.is_empty());
    // A bundle above the entry limit.
    let small = TestServer::start(
        &env.cluster,
        gateway::Limits {
            max_bundle_entries: 2,
            ..Default::default()
        },
    )
    .await?;
    let entry = json!({"resource": patient, "request": {"method": "POST", "url": "Patient"}});
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [entry, entry, entry]});
    let (status, outcome) = post_bundle(&small, &bundle).await?;
    ensure!(
        status == 400 && outcome["issue"][0]["expression"][0] == "Bundle.entry",
        "{status} {outcome}"
    );
    small.stop().await?;
    s.stop().await
}

async fn batch_entries_stand_alone(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let existing = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Batch"}]}))
        .await?;
    let id = existing["id"].as_str().unwrap_or_default().to_owned();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Fine"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Condition", "subject": {"reference": format!("Patient/{id}")},
            "code": {"coding": [{"system": ICD10, "code": "J99.99"}]}},
         "request": {"method": "POST", "url": "Condition"}},
        {"request": {"method": "GET", "url": format!("Patient/{id}")}},
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"request": {"method": "DELETE", "url": format!("Patient/{id}")}},
        {"resource": {"resourceType": "Bundle", "type": "batch"}, "request": {"method": "POST", "url": "/"}},
        {"request": {"method": "GET"}}
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(
        status == 200 && response["type"] == "batch-response",
        "{status} {response}"
    );
    let statuses: Vec<String> = (0..7).map(|i| status_of(&response, i)).collect();
    // The GET runs after the DELETE (processing order): 410.
    ensure!(
        statuses
            == [
                "201 Created",
                "422 Unprocessable Entity",
                "410 Gone",
                "404 Not Found",
                "204 No Content",
                "400 Bad Request",
                "400 Bad Request"
            ],
        "{statuses:?}"
    );
    ensure!(
        response["entry"][0]["resource"]["name"][0]["family"] == "Fine",
        "{response}"
    );
    ensure!(response["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome");
    ensure!(
        response["entry"][6]["response"]["outcome"]["issue"][0]["expression"][0]
            == "Bundle.entry[6].request.url"
    );
    let fine = location_id(&response, 0);
    s.get_ok(&format!("Patient/{fine}")).await?;
    ensure!(s.search_all("Condition", 3).await?.is_empty());
    s.stop().await
}

async fn transaction_of_a_thousand_entries(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let mut entries = vec![
        json!({"fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
        "resource": {"resourceType": "Patient", "name": [{"family": "Thousand"}]},
        "request": {"method": "POST", "url": "Patient"}}),
    ];
    for n in 0..999 {
        entries.push(json!({
            "resource": observation("urn:uuid:22222222-2222-4222-8222-222222222222", &format!("c{n}")),
            "request": {"method": "POST", "url": "Observation"}}));
    }
    // Plus a hundred Practitioners, spread over both shards.
    for n in 0..100 {
        entries.push(json!({"resource": {"resourceType": "Practitioner", "name": [{"family": format!("P{n}")}]},
            "request": {"method": "POST", "url": "Practitioner"}}));
    }
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let started = Instant::now();
    let (status, response) = post_bundle(&s, &bundle).await?;
    let took = started.elapsed();
    ensure!(status == 200, "{status} {response}");
    ensure!(response["entry"].as_array().map(Vec::len) == Some(1100));
    let patient = location_id(&response, 0);
    let (_, found) = s
        .send(
            Method::GET,
            &format!("Observation?subject=Patient/{patient}&_total=accurate&_count=1"),
            None,
        )
        .await?;
    ensure!(found["total"] == 999, "{}", found["total"]);
    let (_, found) = s
        .send(Method::GET, "Practitioner?_total=accurate&_count=1", None)
        .await?;
    ensure!(found["total"] == 100, "{}", found["total"]);
    eprintln!("transaction of 1100 entries over 2 shards: {took:?}");
    s.stop().await
}

async fn conditional_update_and_delete(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let body = |family: &str| {
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:e2e:mrn", "value": "c1"}],
               "name": [{"family": family}]})
    };
    let url = "Patient?identifier=urn:e2e:mrn|c1";
    let (status, first) = s.send(Method::PUT, url, Some(&body("One"))).await?;
    ensure!(status == 201, "no match: a create: {status} {first}");
    let (status, second) = s.send(Method::PUT, url, Some(&body("Two"))).await?;
    ensure!(status == 200, "one match: an update: {status} {second}");
    ensure!(
        second["id"] == first["id"] && second["meta"]["versionId"] == "2",
        "{second}"
    );
    let mut wrong = body("Three");
    wrong["id"] = json!("someone-else");
    let (status, _) = s.send(Method::PUT, url, Some(&wrong)).await?;
    ensure!(status == 400, "the body's id must be the match's: {status}");
    let (status, _) = s.send(Method::PUT, "Patient", Some(&body("Four"))).await?;
    ensure!(status == 405, "PUT on a type without criteria: {status}");
    s.create(&body("Twin")).await?;
    let (status, outcome) = s.send(Method::PUT, url, Some(&body("Five"))).await?;
    ensure!(status == 412, "two matches: {status} {outcome}");
    let (status, _) = s.send(Method::DELETE, url, None).await?;
    ensure!(
        status == 412,
        "conditional delete with two matches: {status}"
    );
    let (status, _) = s.send(Method::DELETE, "Patient?name=Twin", None).await?;
    ensure!(status == 204, "conditional delete of one: {status}");
    let (status, _) = s.send(Method::DELETE, "Patient?name=Twin", None).await?;
    ensure!(status == 204, "conditional delete of none: {status}");
    ensure!(s.search_all(url, 3).await?.len() == 1);
    let (status, _) = s.send(Method::DELETE, "Patient?bogus=1", None).await?;
    ensure!(
        status == 400,
        "criteria the server cannot evaluate: {status}"
    );
    s.stop().await
}

async fn reads_answer_304_when_not_modified(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let p = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await?;
    let path = format!("Patient/{}", p["id"].as_str().unwrap_or_default());
    let status_with = |name: &'static str, value: String| {
        let req = s.req(Method::GET, &path).header(name, value);
        async move { Ok::<u16, anyhow::Error>(req.send().await?.status().as_u16()) }
    };
    ensure!(status_with("if-none-match", "W/\"1\"".into()).await? == 304);
    ensure!(status_with("if-none-match", "*".into()).await? == 304);
    ensure!(status_with("if-none-match", "W/\"2\"".into()).await? == 200);
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let past = "Mon, 01 Jan 2001 00:00:00 GMT".to_owned();
    ensure!(status_with("if-modified-since", future).await? == 304);
    ensure!(status_with("if-modified-since", past).await? == 200);
    ensure!(status_with("if-modified-since", "not a date".into()).await? == 200);
    s.stop().await
}

/// Replaces every `reference` found in `map` (a bundle's fullUrl → `Type/id`).
fn rewrite(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                match v {
                    Value::String(r) if k == "reference" => {
                        if let Some(t) = map.get(r.as_str()) {
                            *r = t.clone();
                        }
                    }
                    _ => rewrite(v, map),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite(v, map)),
        _ => {}
    }
}

/// Every Synthea transaction bundle of the shared data (93 patients, their hospitals and
/// practitioners; 26,920 entries) loads, and a sample of each reads back as sent with its
/// placeholders rewritten to the ids the server gave.
async fn synthea_transactions_load_and_read_back(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let dir = tests::shared_dir().join("fhir-data/synthea");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .collect();
    // Hospitals and practitioners first, as Synthea's own loading order has it.
    files.sort_by_key(|p| {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        (!name.contains("Information"), name)
    });
    ensure!(
        files.len() == 95,
        "expected 95 Synthea bundles, found {}",
        files.len()
    );
    let started = Instant::now();
    let mut total = 0;
    for (n, path) in files.iter().enumerate() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
        let bundle: Value = serde_json::from_str(&text)?;
        let (status, response) = post_bundle(&s, &bundle).await?;
        ensure!(status == 200, "{}: {status} {response}", path.display());
        let sent = bundle["entry"].as_array().cloned().unwrap_or_default();
        let answered = response["entry"].as_array().cloned().unwrap_or_default();
        ensure!(
            sent.len() == answered.len(),
            "{}: entry count",
            path.display()
        );
        total += sent.len();
        let mut map = HashMap::new();
        for (i, entry) in sent.iter().enumerate() {
            ensure!(
                status_of(&response, i) == "201 Created",
                "{} entry {i}: {}",
                path.display(),
                answered[i]
            );
            let rtype = entry["resource"]["resourceType"]
                .as_str()
                .unwrap_or_default();
            if let Some(full_url) = entry["fullUrl"].as_str() {
                map.insert(
                    full_url.to_owned(),
                    format!("{rtype}/{}", location_id(&response, i)),
                );
            }
        }
        // Every fifth bundle: read every resource back.
        if n % 5 != 0 {
            continue;
        }
        for (i, entry) in sent.iter().enumerate() {
            let mut want = entry["resource"].clone();
            rewrite(&mut want, &map);
            let id = location_id(&response, i);
            want["id"] = json!(id);
            let rtype = want["resourceType"].as_str().unwrap_or_default().to_owned();
            let got = tests::without_server_meta(s.get_ok(&format!("{rtype}/{id}")).await?);
            ensure!(
                got == want,
                "{} entry {i} reads back changed:\n sent {want}\n got  {got}",
                path.display()
            );
        }
    }
    ensure!(total == 26920, "expected 26,920 entries, loaded {total}");
    eprintln!(
        "Synthea: {total} entries in 95 transactions, {:?}",
        started.elapsed()
    );
    s.stop().await
}

/// Standard base64 (the tests crate has no base64 dependency).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PATCH entry holding a FHIRPath Patch.
fn fhirpath_patch_entry(url: &str, operations: Value, if_match: Option<&str>) -> Value {
    let mut request = json!({"method": "PATCH", "url": url});
    if let Some(etag) = if_match {
        request["ifMatch"] = json!(etag);
    }
    json!({"resource": {"resourceType": "Parameters", "parameter": operations}, "request": request})
}

/// A PATCH entry holding a JSON Patch in a Binary.
fn json_patch_entry(url: &str, patch: &Value) -> Value {
    json!({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                        "data": base64(patch.to_string().as_bytes())},
           "request": {"method": "PATCH", "url": url}})
}

/// A FHIRPath Patch of one `replace` of `path` by `value`, a `value[x]` named `value_name`.
fn replace(path: &str, value_name: &str, value: Value) -> Value {
    json!([{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": path},
        {"name": "value", value_name: value}]}])
}

fn replace_status(value: &str) -> Value {
    replace("Observation.status", "valueCode", json!(value))
}

async fn transaction_patches_with_fhirpath_and_json_patch(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let patient = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Patched"}]}))
        .await?;
    let pid = patient["id"].as_str().unwrap_or_default().to_owned();
    let first = s
        .create(&observation(&format!("Patient/{pid}"), "8867-4"))
        .await?;
    let second = s
        .create(&observation(&format!("Patient/{pid}"), "8310-5"))
        .await?;
    let (a, b) = (
        first["id"].as_str().unwrap_or_default().to_owned(),
        second["id"].as_str().unwrap_or_default().to_owned(),
    );
    let placeholder = "urn:uuid:0a9b6e44-7c35-4d9c-9d3a-1f0f6e1f0077";
    let mut fhirpath = replace_status("amended")[0].clone();
    let add_performer = json!({"name": "operation", "part": [
        {"name": "type", "valueCode": "add"},
        {"name": "path", "valueString": "Observation"},
        {"name": "name", "valueString": "performer"},
        {"name": "value", "valueReference": {"reference": placeholder}}]});
    fhirpath = json!([fhirpath, add_performer]);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        fhirpath_patch_entry(&format!("Observation/{a}"), fhirpath, Some("W/\"1\"")),
        json_patch_entry(&format!("Observation/{b}"), &json!([
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/subject", "value": {"reference": placeholder}}])),
        {"fullUrl": placeholder,
         "resource": {"resourceType": "Patient", "name": [{"family": "New"}]},
         "request": {"method": "POST", "url": "Patient"}}
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(status == 200, "{status} {response}");
    ensure!(
        status_of(&response, 0) == "200 OK"
            && status_of(&response, 1) == "200 OK"
            && status_of(&response, 2) == "201 Created",
        "{response}"
    );
    let new_patient = location_id(&response, 2);
    let a_now = s.get_ok(&format!("Observation/{a}")).await?;
    ensure!(
        a_now["status"] == "amended"
            && a_now["meta"]["versionId"] == "2"
            && a_now["performer"][0]["reference"] == format!("Patient/{new_patient}")
            && a_now["subject"]["reference"] == format!("Patient/{pid}"),
        "{a_now}"
    );
    let b_now = s.get_ok(&format!("Observation/{b}")).await?;
    ensure!(
        b_now["status"] == "cancelled"
            && b_now["meta"]["versionId"] == "2"
            && b_now["subject"]["reference"] == format!("Patient/{new_patient}"),
        "{b_now}"
    );
    s.stop().await
}

async fn transaction_with_a_failing_patch_writes_nothing(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let (here, there) = ids_on_two_shards(&s, 9);
    put_active_patients(&s, &[&here, &there]).await?;
    let deactivate = |id: &str, etag: Option<&str>| {
        fhirpath_patch_entry(
            &format!("Patient/{id}"),
            replace("Patient.active", "valueBoolean", json!(false)),
            etag,
        )
    };
    let new_patient = json!({"resource": {"resourceType": "Patient", "name": [{"family": "Never"}]},
                             "request": {"method": "POST", "url": "Patient"}});
    // If-Match mismatch on the second shard: 412, nothing written.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        new_patient.clone(), deactivate(&here, Some("W/\"1\"")), deactivate(&there, Some("W/\"5\""))]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(status == 412, "{status} {outcome}");
    ensure!(
        outcome["issue"][0]["expression"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("Bundle.entry[2]")),
        "{outcome}"
    );
    // A bad path (JSON Patch on a missing element): 4xx, nothing written.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        new_patient.clone(), deactivate(&here, None),
        json_patch_entry(&format!("Patient/{there}"),
            &json!([{"op": "replace", "path": "/birthDate", "value": "2000-01-01"}]))]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(matches!(status, 400 | 422), "{status} {outcome}");
    // A FHIRPath Patch replacing nothing: 422.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        new_patient.clone(), deactivate(&here, None),
        fhirpath_patch_entry(&format!("Patient/{there}"),
            replace("Patient.gender", "valueCode", json!("other")), None)]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(matches!(status, 400 | 422), "{status} {outcome}");
    // A patch entry that is no patch: 400.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        new_patient, {"resource": {"resourceType": "Patient", "active": false},
                      "request": {"method": "PATCH", "url": format!("Patient/{here}")}}]});
    let (status, outcome) = post_bundle(&s, &bundle).await?;
    ensure!(status == 400, "{status} {outcome}");
    for id in [&here, &there] {
        let p = s.get_ok(&format!("Patient/{id}")).await?;
        ensure!(p["meta"]["versionId"] == "1" && p["active"] == true, "{p}");
    }
    let never = s.search_all("Patient?family=Never", 10).await?;
    ensure!(never.is_empty(), "{never:?}");
    s.stop().await
}

async fn batch_patch_entries_stand_alone(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let patient = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "BatchPatch"}]}))
        .await?;
    let pid = patient["id"].as_str().unwrap_or_default().to_owned();
    let obs = s
        .create(&observation(&format!("Patient/{pid}"), "8867-4"))
        .await?;
    let oid = obs["id"].as_str().unwrap_or_default().to_owned();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        json_patch_entry(&format!("Observation/{oid}"),
            &json!([{"op": "replace", "path": "/status", "value": "amended"}])),
        fhirpath_patch_entry(&format!("Patient/{pid}"), json!([{"name": "operation", "part": [
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.gender"},
            {"name": "value", "valueCode": "other"}]}]), None),
    ]});
    let (status, response) = post_bundle(&s, &bundle).await?;
    ensure!(
        status == 200 && response["type"] == "batch-response",
        "{status} {response}"
    );
    ensure!(status_of(&response, 0) == "200 OK", "{response}");
    ensure!(
        status_of(&response, 1).starts_with("422")
            && response["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome",
        "{response}"
    );
    let o = s.get_ok(&format!("Observation/{oid}")).await?;
    ensure!(
        o["status"] == "amended" && o["meta"]["versionId"] == "2",
        "{o}"
    );
    let p = s.get_ok(&format!("Patient/{pid}")).await?;
    ensure!(p["meta"]["versionId"] == "1", "{p}");
    s.stop().await
}

/// A PATCH entry whose url is a search (`Patient?identifier=…`): one match is patched (in
/// the transaction, with the other entries), none is 404 and two are 412, each writing
/// nothing.
async fn transaction_conditional_patch(env: &Env) -> Result<()> {
    let s = server(env).await?;
    let system = "urn:oid:1.3.6.1.4.1.28284.6.2.2.1";
    let one = |value: &str| {
        json!({"resourceType": "Patient", "active": true,
               "identifier": [{"system": system, "value": value}]})
    };
    let single = s.create(&one("cp-1")).await?;
    s.create(&one("cp-twice")).await?;
    s.create(&one("cp-twice")).await?;
    let deactivate = replace("Patient.active", "valueBoolean", json!(false));
    let bundle = |criteria: &str| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            fhirpath_patch_entry(&format!("Patient?identifier={system}|{criteria}"),
                                 deactivate.clone(), None),
            {"resource": {"resourceType": "Patient", "name": [{"family": "Beside"}]},
             "request": {"method": "POST", "url": "Patient"}}]})
    };
    let id = single["id"].as_str().unwrap_or_default().to_owned();
    let (status, response) = post_bundle(&s, &bundle("cp-1")).await?;
    ensure!(status == 200, "{status} {response}");
    ensure!(
        status_of(&response, 0) == "200 OK" && status_of(&response, 1) == "201 Created",
        "{response}"
    );
    let now = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(
        now["active"] == false && now["meta"]["versionId"] == "2",
        "{now}"
    );
    let before = s.get_ok("Patient?family=Beside&_summary=count").await?;
    for (criteria, expected) in [("cp-none", 404), ("cp-twice", 412)] {
        let (status, response) = post_bundle(&s, &bundle(criteria)).await?;
        ensure!(status == expected, "{criteria}: {status} {response}");
        ensure!(
            response["resourceType"] == "OperationOutcome",
            "{criteria}: {response}"
        );
    }
    let after = s.get_ok("Patient?family=Beside&_summary=count").await?;
    ensure!(
        before["total"] == 1 && after["total"] == 1,
        "{before} {after}"
    );
    let twice = s
        .get_ok(&format!("Patient?identifier={system}|cp-twice&active=true"))
        .await?;
    ensure!(
        twice["entry"].as_array().map_or(0, Vec::len) == 2,
        "{twice}"
    );
    s.stop().await
}
