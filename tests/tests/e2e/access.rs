//! Access by role and relationship: a GP sees their patients, a specialist the episodes they
//! were referred to, a patient-context app its patient, a statistician no record at all.
//! What a caller may not see answers 404, never 403, so its existence is not revealed.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    gp_sees_their_patients_only,
    specialist_sees_the_referred_episode_only,
    patient_context_stays_in_its_compartment,
    roles_without_clinical_access_get_403,
    break_glass_opens_is_flagged_and_expires,
    request_ids_and_forwarded_clients,
    everything_pages_and_keeps_to_access,
    granular_scopes_narrow_the_grant,
    an_episode_team_grants_its_episode
];

/// Ids of the scenario's resources by name.
struct World {
    ids: std::collections::HashMap<String, String>,
}

impl World {
    fn id(&self, name: &str) -> &str {
        self.ids.get(name).map(String::as_str).unwrap_or("missing")
    }
}

fn entry(name: &str, resource: Value) -> Value {
    let rtype = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    json!({"fullUrl": format!("urn:uuid:{name}"), "resource": resource,
           "request": {"method": "POST", "url": rtype}})
}

fn obs(patient: &str, encounter: Option<&str>, code: &str) -> Value {
    let mut o = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("urn:uuid:{patient}")}});
    if let Some(e) = encounter {
        o["encounter"] = json!({"reference": format!("urn:uuid:{e}")});
    }
    o
}

/// Two GPs and a specialist; patient A of gp1 with an episode referred to the specialist
/// (e1) and one not (e2); patient B of gp2.
async fn world(s: &TestServer) -> Result<World> {
    let amb = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"});
    let entries = vec![
        entry(
            "00000000-0000-4000-8000-0000000000a1",
            json!({"resourceType": "Practitioner", "name": [{"family": "Gp-One"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000a2",
            json!({"resourceType": "Practitioner", "name": [{"family": "Gp-Two"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000a3",
            json!({"resourceType": "Practitioner", "name": [{"family": "Specialist"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000b1",
            json!({"resourceType": "Patient", "name": [{"family": "Alpha"}],
            "generalPractitioner": [{"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a1"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000b2",
            json!({"resourceType": "Patient", "name": [{"family": "Beta"}],
            "generalPractitioner": [{"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a2"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000c1",
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000b1"},
            "performer": [{"reference": "urn:uuid:00000000-0000-4000-8000-0000000000a3"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000d1",
            json!({"resourceType": "Encounter", "status": "finished", "class": amb,
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000b1"},
            "basedOn": [{"reference": "urn:uuid:00000000-0000-4000-8000-0000000000c1"}]}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000d2",
            json!({"resourceType": "Encounter", "status": "finished", "class": amb,
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000b1"}}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000e1",
            obs(
                "00000000-0000-4000-8000-0000000000b1",
                Some("00000000-0000-4000-8000-0000000000d1"),
                "o1",
            ),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000e2",
            obs(
                "00000000-0000-4000-8000-0000000000b1",
                Some("00000000-0000-4000-8000-0000000000d2"),
                "o2",
            ),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000e3",
            json!({"resourceType": "Condition",
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000b1"},
            "encounter": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000d1"},
            "code": {"text": "referred problem"}}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000e4",
            json!({"resourceType": "Condition",
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-0000000000b1"}, "code": {"text": "other problem"}}),
        ),
        entry(
            "00000000-0000-4000-8000-0000000000e5",
            obs("00000000-0000-4000-8000-0000000000b2", None, "ob"),
        ),
    ];
    let names = [
        "gp1", "gp2", "spec", "A", "B", "referral", "e1", "e2", "o1", "o2", "c1", "c2", "oB",
    ];
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let (status, response) = s.send(Method::POST, "", Some(&bundle)).await?;
    ensure!(status == 200, "{status} {response}");
    let mut ids = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let location = response["entry"][i]["response"]["location"]
            .as_str()
            .unwrap_or_default();
        ids.insert(
            (*name).to_owned(),
            location.split('/').nth(1).unwrap_or_default().to_owned(),
        );
    }
    Ok(World { ids })
}

async fn status(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<u16> {
    Ok(s.send_as(token, method, path, body).await?.0)
}

/// The ids a search returns (every page), and its `total`.
async fn search_ids(s: &TestServer, token: &str, path: &str) -> Result<(BTreeSet<String>, Value)> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (code, bundle) = s
        .send_as(
            token,
            Method::GET,
            &format!("{path}{sep}_total=accurate&_count=1"),
            None,
        )
        .await?;
    ensure!(code == 200, "{path}: {code} {bundle}");
    let total = bundle["total"].clone();
    let mut ids = BTreeSet::new();
    let mut page = bundle;
    for _ in 0..50 {
        for e in page["entry"].as_array().into_iter().flatten() {
            if e["search"]["mode"] == "match" {
                ids.insert(e["resource"]["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        let Some(next) = tests::next_link(&page) else {
            break;
        };
        let (code, next_page) = s.send_as(token, Method::GET, &next, None).await?;
        ensure!(code == 200, "{next}: {code}");
        page = next_page;
    }
    Ok((ids, total))
}

fn set(w: &World, names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| w.id(n).to_owned()).collect()
}

async fn gp_sees_their_patients_only(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let w = world(&s).await?;
    let gp = s.token_for(
        "gp",
        "user/*.cruds",
        Some(&format!("Practitioner/{}", w.id("gp1"))),
        None,
        600,
    );
    for name in [
        "A", "o1", "o2", "c1", "c2", "e1", "e2", "referral", "gp2", "spec",
    ] {
        let rtype = match name {
            "A" => "Patient",
            "o1" | "o2" => "Observation",
            "c1" | "c2" => "Condition",
            "e1" | "e2" => "Encounter",
            "referral" => "ServiceRequest",
            _ => "Practitioner",
        };
        let code = status(
            &s,
            &gp,
            Method::GET,
            &format!("{rtype}/{}", w.id(name)),
            None,
        )
        .await?;
        ensure!(code == 200, "gp reads {name}: {code}");
    }
    for (rtype, name) in [("Patient", "B"), ("Observation", "oB")] {
        for path in [
            format!("{rtype}/{}", w.id(name)),
            format!("{rtype}/{}/_history", w.id(name)),
            format!("{rtype}/{}/_history/1", w.id(name)),
        ] {
            let code = status(&s, &gp, Method::GET, &path, None).await?;
            ensure!(
                code == 404,
                "gp reads {path} of another GP's patient: {code}"
            );
        }
    }
    let (ids, total) = search_ids(&s, &gp, "Observation").await?;
    ensure!(
        ids == set(&w, &["o1", "o2"]) && total == 2,
        "{ids:?} total {total}"
    );
    let (ids, total) = search_ids(&s, &gp, "Patient").await?;
    ensure!(
        ids == set(&w, &["A"]) && total == 1,
        "{ids:?} total {total}"
    );
    let (ids, _) = search_ids(&s, &gp, "Patient?name=Beta").await?;
    ensure!(
        ids.is_empty(),
        "a search by the other patient's name finds nothing"
    );
    let (code, history) = s
        .send_as(&gp, Method::GET, "Observation/_history", None)
        .await?;
    ensure!(code == 200, "{code}");
    let seen: BTreeSet<String> = history["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    ensure!(seen == set(&w, &["o1", "o2"]), "type history: {seen:?}");
    // Writes: for their patient, yes; for another's, no; another's records cannot be touched.
    let mine = json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "subject": {"reference": format!("Patient/{}", w.id("A"))}});
    ensure!(status(&s, &gp, Method::POST, "Observation", Some(&mine)).await? == 201);
    let theirs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "subject": {"reference": format!("Patient/{}", w.id("B"))}});
    ensure!(status(&s, &gp, Method::POST, "Observation", Some(&theirs)).await? == 403);
    let mut update = theirs.clone();
    update["id"] = json!(w.id("oB"));
    let code = status(
        &s,
        &gp,
        Method::PUT,
        &format!("Observation/{}", w.id("oB")),
        Some(&update),
    )
    .await?;
    ensure!(code == 404, "update of another GP's record: {code}");
    let code = status(
        &s,
        &gp,
        Method::DELETE,
        &format!("Observation/{}", w.id("oB")),
        None,
    )
    .await?;
    ensure!(
        code == 204,
        "delete of an invisible record is a delete of nothing: {code}"
    );
    s.get_ok(&format!("Observation/{}", w.id("oB"))).await?;
    // Moving their own patient's record to another patient is refused too.
    let mut moved = theirs.clone();
    moved["id"] = json!(w.id("o2"));
    let code = status(
        &s,
        &gp,
        Method::PUT,
        &format!("Observation/{}", w.id("o2")),
        Some(&moved),
    )
    .await?;
    ensure!(code == 403, "moving a record out of reach: {code}");
    // Through a batch, the same answers.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Observation/{}", w.id("oB"))}},
        {"request": {"method": "GET", "url": format!("Observation/{}", w.id("o1"))}}]});
    let (code, response) = s.send_as(&gp, Method::POST, "", Some(&batch)).await?;
    ensure!(code == 200, "{code}");
    ensure!(
        response["entry"][0]["response"]["status"] == "404 Not Found",
        "{response}"
    );
    ensure!(
        response["entry"][1]["response"]["status"] == "200 OK",
        "{response}"
    );
    s.stop().await
}

async fn specialist_sees_the_referred_episode_only(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let w = world(&s).await?;
    let spec = s.token_for(
        "specialist",
        "user/*.cruds",
        Some(&format!("Practitioner/{}", w.id("spec"))),
        None,
        600,
    );
    let visible = [
        ("Encounter", "e1"),
        ("Observation", "o1"),
        ("Condition", "c1"),
        ("Patient", "A"),
        ("ServiceRequest", "referral"),
    ];
    for (rtype, name) in visible {
        let code = status(
            &s,
            &spec,
            Method::GET,
            &format!("{rtype}/{}", w.id(name)),
            None,
        )
        .await?;
        ensure!(code == 200, "specialist reads {name}: {code}");
    }
    let hidden = [
        ("Encounter", "e2"),
        ("Observation", "o2"),
        ("Condition", "c2"),
        ("Patient", "B"),
        ("Observation", "oB"),
    ];
    for (rtype, name) in hidden {
        let code = status(
            &s,
            &spec,
            Method::GET,
            &format!("{rtype}/{}", w.id(name)),
            None,
        )
        .await?;
        ensure!(code == 404, "specialist reads {name}: {code}");
    }
    let (ids, total) = search_ids(&s, &spec, "Observation").await?;
    ensure!(
        ids == set(&w, &["o1"]) && total == 1,
        "{ids:?} total {total}"
    );
    let (ids, _) = search_ids(
        &s,
        &spec,
        &format!("Observation?subject=Patient/{}", w.id("A")),
    )
    .await?;
    ensure!(ids == set(&w, &["o1"]), "{ids:?}");
    let (ids, total) = search_ids(&s, &spec, "Encounter").await?;
    ensure!(
        ids == set(&w, &["e1"]) && total == 1,
        "{ids:?} total {total}"
    );
    let (ids, _) = search_ids(&s, &spec, "Condition").await?;
    ensure!(ids == set(&w, &["c1"]), "{ids:?}");
    // Includes read through the same access: the Patient's other episodes stay hidden.
    let (code, b) = s
        .send_as(
            &spec,
            Method::GET,
            &format!(
                "Patient?_id={}&_revinclude=Observation:subject&_revinclude=Encounter:subject",
                w.id("A")
            ),
            None,
        )
        .await?;
    ensure!(code == 200, "{code}");
    let included: BTreeSet<String> = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "include")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    ensure!(included == set(&w, &["o1", "e1"]), "{included:?}");
    // A finding in the referred episode may be recorded; one outside it may not.
    let within = json!({"resourceType": "Observation", "status": "final", "code": {"text": "finding"},
        "subject": {"reference": format!("Patient/{}", w.id("A"))},
        "encounter": {"reference": format!("Encounter/{}", w.id("e1"))}});
    ensure!(status(&s, &spec, Method::POST, "Observation", Some(&within)).await? == 201);
    let outside = json!({"resourceType": "Observation", "status": "final", "code": {"text": "finding"},
        "subject": {"reference": format!("Patient/{}", w.id("A"))}});
    ensure!(status(&s, &spec, Method::POST, "Observation", Some(&outside)).await? == 403);
    // The GP of the patient sees the specialist's finding too.
    let gp = s.token_for("gp", "user/*.cruds", Some(w.id("gp1")), None, 600);
    let (ids, _) = search_ids(&s, &gp, "Observation").await?;
    ensure!(ids.len() == 3, "{ids:?}");
    s.stop().await
}

async fn patient_context_stays_in_its_compartment(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let w = world(&s).await?;
    let app = s.token_for(
        "registry",
        "patient/*.rs",
        None,
        Some(&format!("Patient/{}", w.id("A"))),
        600,
    );
    ensure!(
        status(
            &s,
            &app,
            Method::GET,
            &format!("Observation/{}", w.id("o2")),
            None
        )
        .await?
            == 200
    );
    ensure!(
        status(
            &s,
            &app,
            Method::GET,
            &format!("Observation/{}", w.id("oB")),
            None
        )
        .await?
            == 404
    );
    let (ids, _) = search_ids(&s, &app, "Observation").await?;
    ensure!(ids == set(&w, &["o1", "o2"]), "{ids:?}");
    // patient/ scopes without a patient in context grant nothing.
    let lost = s.token("registry", "patient/*.rs", 600);
    ensure!(status(&s, &lost, Method::GET, "Observation", None).await? == 403);
    // Read-only scopes do not write.
    let body = obs("x", None, "y");
    ensure!(status(&s, &app, Method::POST, "Observation", Some(&body)).await? == 403);
    s.stop().await
}

async fn roles_without_clinical_access_get_403(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let w = world(&s).await?;
    for role in ["statistician", "auditor", "admin", "nurse"] {
        let token = s.token(role, "user/*.cruds", 600);
        for path in [
            format!("Patient/{}", w.id("A")),
            "Observation".to_owned(),
            "Patient?name=Alpha".to_owned(),
        ] {
            let (code, outcome) = s.send_as(&token, Method::GET, &path, None).await?;
            ensure!(
                code == 403 && outcome["resourceType"] == "OperationOutcome",
                "{role} {path}: {code}"
            );
        }
    }
    // A GP token that names no practitioner is refused, not widened.
    let anonymous = s.token("gp", "user/*.cruds", 600);
    ensure!(status(&s, &anonymous, Method::GET, "Observation", None).await? == 403);
    s.stop().await
}

async fn break_glass_opens_is_flagged_and_expires(env: &Env) -> Result<()> {
    let window = std::time::Duration::from_secs(5);
    let s = TestServer::start_configured(
        &env.cluster,
        gateway::GatewayConfig {
            break_glass_window: window,
            ..TestServer::config(Default::default(), TestServer::dev_auth())
        },
    )
    .await?;
    let w = world(&s).await?;
    let gp = s.token_for("gp", "user/*.cruds", Some(w.id("gp1")), None, 600);
    let b = format!("Patient/{}", w.id("B"));
    ensure!(status(&s, &gp, Method::GET, &b, None).await? == 404);
    let reason = "unconscious patient in the emergency room";
    let with_reason = |path: &str| {
        s.http
            .get(format!("{}/{path}", s.base))
            .bearer_auth(&gp)
            .header("x-break-glass-reason", reason)
            .send()
    };
    let opened = std::time::Instant::now();
    ensure!(with_reason(&b).await?.status() == 200, "break-glass read");
    // The window stays open for requests without the header.
    let ob = format!("Observation/{}", w.id("oB"));
    ensure!(status(&s, &gp, Method::GET, &ob, None).await? == 200);
    let (ids, _) = search_ids(&s, &gp, "Observation").await?;
    ensure!(
        ids.contains(w.id("oB")),
        "a search under break-glass sees every patient"
    );
    // It opens reading only: writes keep the relationships.
    let theirs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
        "subject": {"reference": b.clone()}});
    ensure!(status(&s, &gp, Method::POST, "Observation", Some(&theirs)).await? == 403);
    let flagged = s
        .store
        .audit_records(10_000)
        .await?
        .into_iter()
        .filter(|r| r.record.break_glass.as_deref() == Some(reason))
        .count();
    ensure!(
        flagged >= 4,
        "every request under the window is flagged: {flagged}"
    );
    // A reason must be stated, and only clinicians may break the glass.
    let blank = s
        .http
        .get(format!("{}/{b}", s.base))
        .bearer_auth(&gp)
        .header("x-break-glass-reason", "  ")
        .send()
        .await?;
    ensure!(blank.status() == 400, "{}", blank.status());
    let system = s
        .http
        .get(format!("{}/{b}", s.base))
        .bearer_auth(s.system_token())
        .header("x-break-glass-reason", reason)
        .send()
        .await?;
    ensure!(system.status() == 403, "{}", system.status());
    // Expiry.
    if let Some(rest) = window.checked_sub(opened.elapsed()) {
        tokio::time::sleep(rest + std::time::Duration::from_millis(500)).await;
    }
    ensure!(
        status(&s, &gp, Method::GET, &b, None).await? == 404,
        "the window closed"
    );
    s.stop().await
}

async fn request_ids_and_forwarded_clients(env: &Env) -> Result<()> {
    let s = TestServer::start_configured(
        &env.cluster,
        gateway::GatewayConfig {
            trusted_proxies: vec!["127.0.0.1".parse()?],
            break_glass_window: std::time::Duration::from_secs(60),
            ..TestServer::config(Default::default(), TestServer::dev_auth())
        },
    )
    .await?;
    let resp = s
        .req(Method::GET, "Patient")
        .header("x-request-id", "req-123")
        .header("x-forwarded-for", "198.51.100.9, 203.0.113.7")
        .send()
        .await?;
    ensure!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            == Some("req-123")
    );
    let resp = s
        .req(Method::GET, "Patient")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await?;
    let generated = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(
        generated.len() == 32 && generated != "bad id with spaces",
        "{generated}"
    );
    let records = s.store.audit_records(1000).await?;
    let first = records
        .iter()
        .find(|r| r.record.request_id.as_deref() == Some("req-123"));
    ensure!(
        first.is_some_and(|r| r.record.client_ip.as_deref() == Some("203.0.113.7")),
        "the client is the last address before the trusted proxy: {:?}",
        first.map(|r| &r.record.client_ip)
    );
    ensure!(
        records
            .iter()
            .any(|r| r.record.request_id.as_deref() == Some(generated.as_str()))
    );
    s.stop().await?;
    // Without trusted proxies, X-Forwarded-For is the client's word and is ignored.
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    s.req(Method::GET, "Patient")
        .header("x-request-id", "req-456")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await?;
    let records = s.store.audit_records(1000).await?;
    let r = records
        .iter()
        .find(|r| r.record.request_id.as_deref() == Some("req-456"));
    ensure!(
        r.is_some_and(|r| r.record.client_ip.as_deref() == Some("127.0.0.1")),
        "{:?}",
        r.map(|r| &r.record.client_ip)
    );
    s.stop().await
}

/// The match and include ids of every page of a `$everything`.
async fn everything_pages(
    s: &TestServer,
    token: &str,
    path: &str,
) -> Result<(Vec<String>, BTreeSet<String>)> {
    let mut matches = Vec::new();
    let mut includes = BTreeSet::new();
    let (code, mut page) = s.send_as(token, Method::GET, path, None).await?;
    ensure!(code == 200, "{path}: {code} {page}");
    for _ in 0..20 {
        for e in page["entry"].as_array().into_iter().flatten() {
            let id = e["resource"]["id"].as_str().unwrap_or_default().to_owned();
            if e["search"]["mode"] == "match" {
                matches.push(id);
            } else {
                includes.insert(id);
            }
        }
        let Some(next) = tests::next_link(&page) else {
            break;
        };
        let (code, p) = s.send_as(token, Method::GET, &next, None).await?;
        ensure!(code == 200, "{next}: {code}");
        page = p;
    }
    Ok((matches, includes))
}

async fn everything_pages_and_keeps_to_access(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let w = world(&s).await?;
    let system = s.system_token();
    let path = format!("Patient/{}/$everything", w.id("A"));
    let (matches, includes) = everything_pages(&s, &system, &format!("{path}?_count=3")).await?;
    ensure!(
        matches.first().map(String::as_str) == Some(w.id("A")),
        "the Patient leads: {matches:?}"
    );
    let all: BTreeSet<String> = matches.iter().cloned().collect();
    ensure!(all.len() == matches.len(), "no entry twice: {matches:?}");
    ensure!(
        all == set(&w, &["A", "e1", "e2", "o1", "o2", "c1", "c2", "referral"]),
        "{all:?}"
    );
    ensure!(
        includes == set(&w, &["gp1", "spec"]),
        "referenced practitioners: {includes:?}"
    );
    let (obs, _) = everything_pages(&s, &system, &format!("{path}?_type=Observation")).await?;
    ensure!(
        obs.iter().cloned().collect::<BTreeSet<_>>() == set(&w, &["o1", "o2"]),
        "{obs:?}"
    );
    let (none, _) = everything_pages(&s, &system, &format!("{path}?_since=2999-01-01")).await?;
    ensure!(none.is_empty(), "{none:?}");
    let spec = s.token_for("specialist", "user/*.rs", Some(w.id("spec")), None, 600);
    let (seen, _) = everything_pages(&s, &spec, &path).await?;
    let seen: BTreeSet<String> = seen.into_iter().collect();
    ensure!(
        seen == set(&w, &["A", "e1", "o1", "c1", "referral"]),
        "specialist: {seen:?}"
    );
    let gp2 = s.token_for("gp", "user/*.rs", Some(w.id("gp2")), None, 600);
    ensure!(status(&s, &gp2, Method::GET, &path, None).await? == 404);
    ensure!(
        status(
            &s,
            &system,
            Method::GET,
            &format!("{path}?_type=Nope"),
            None
        )
        .await?
            == 400
    );
    s.stop().await
}

/// An Observation of `patient` in `category` (an observation-category code).
fn categorised(patient: &str, category: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"text": category},
        "subject": {"reference": format!("Patient/{patient}")}})
}

/// SMART v2 granular scopes (`patient/Observation.rs?category=laboratory`): the grant covers
/// what the filter finds, through read, search, `_total` and writes; several filters add
/// up; a filter that cannot be applied grants nothing.
async fn granular_scopes_narrow_the_grant(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let a = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Granular"}]}))
        .await?;
    let b = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Other"}]}))
        .await?;
    let (a, b) = (
        a["id"].as_str().unwrap_or_default(),
        b["id"].as_str().unwrap_or_default(),
    );
    let mut ids = std::collections::HashMap::new();
    for (name, patient, category) in [
        ("lab_a", a, "laboratory"),
        ("vital_a", a, "vital-signs"),
        ("lab_b", b, "laboratory"),
        ("exam_a", a, "exam"),
    ] {
        let o = s.create(&categorised(patient, category)).await?;
        ids.insert(name, o["id"].as_str().unwrap_or_default().to_owned());
    }
    let ids_of =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| ids[n].clone()).collect() };
    let in_context = Some(format!("Patient/{a}"));

    // One patient, laboratory only.
    let lab = s.token_for(
        "registry",
        "patient/Observation.crs?category=laboratory",
        None,
        in_context.as_deref(),
        600,
    );
    let (found, total) = search_ids(&s, &lab, "Observation").await?;
    ensure!(
        found == ids_of(&["lab_a"]) && total == json!(1),
        "{found:?} {total}"
    );
    for (name, want) in [("lab_a", 200), ("vital_a", 404), ("lab_b", 404)] {
        let path = format!("Observation/{}", ids[name]);
        let got = status(&s, &lab, Method::GET, &path, None).await?;
        ensure!(got == want, "{name}: {got}");
    }
    // It writes what it may see, and nothing else.
    for (category, want) in [("laboratory", 201), ("vital-signs", 403)] {
        let body = categorised(a, category);
        let got = status(&s, &lab, Method::POST, "Observation", Some(&body)).await?;
        ensure!(got == want, "create {category}: {got}");
    }
    // Other types are not granted by it.
    ensure!(status(&s, &lab, Method::GET, &format!("Patient/{a}"), None).await? == 403);

    // Two filters add up; a system-wide filtered grant spans patients.
    let two = s.token_for(
        "registry",
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs",
        None,
        in_context.as_deref(),
        600,
    );
    let (found, _) =
        search_ids(&s, &two, "Observation?category=laboratory,vital-signs,exam").await?;
    ensure!(
        found.len() == 3 && found.contains(&ids["vital_a"]) && !found.contains(&ids["exam_a"]),
        "{found:?}"
    );
    let system = s.token("system", "system/Observation.rs?category=laboratory", 600);
    let (found, _) = search_ids(&s, &system, "Observation").await?;
    ensure!(
        found.len() == 3 && found.contains(&ids["lab_b"]) && !found.contains(&ids["vital_a"]),
        "{found:?}"
    );
    // An unfiltered scope of the same context wins over a filtered one.
    let both = s.token(
        "system",
        "system/Observation.rs?category=laboratory system/Observation.rs",
        600,
    );
    let (found, _) = search_ids(&s, &both, "Observation").await?;
    ensure!(found.len() == 5, "{found:?}");

    // Filters that cannot be applied grant nothing.
    for scope in [
        "system/Observation.rs?nonsense=1",
        "system/Observation.rs?_count=5",
        "system/Observation.rs?code:below=http://loinc.org|1",
    ] {
        let t = s.token("system", scope, 600);
        let code = status(&s, &t, Method::GET, "Observation", None).await?;
        ensure!(code == 403, "{scope}: {code}");
    }
    s.stop().await
}

/// A practitioner on the care team an EpisodeOfCare names (`EpisodeOfCare.team`) sees that
/// episode, its encounters and what hangs from them, and nothing of the patient's other
/// episode.
async fn an_episode_team_grants_its_episode(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let member = s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Member"}]}))
        .await?;
    let member = member["id"].as_str().unwrap_or_default().to_owned();
    let p = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Teamed"}]}))
        .await?;
    let p = p["id"].as_str().unwrap_or_default().to_owned();
    let subject = json!({"reference": format!("Patient/{p}")});
    let amb = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"});
    let mut ids = std::collections::HashMap::new();
    let mut make = async |name: &str, body: Value| -> Result<String> {
        let created = s.create(&body).await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        ids.insert(name.to_owned(), id.clone());
        Ok(id)
    };
    let team = make(
        "team",
        json!({"resourceType": "CareTeam", "subject": subject,
        "participant": [{"member": {"reference": format!("Practitioner/{member}")}}]}),
    )
    .await?;
    let ep1 = make(
        "ep1",
        json!({"resourceType": "EpisodeOfCare", "status": "active", "patient": subject,
        "team": [{"reference": format!("CareTeam/{team}")}]}),
    )
    .await?;
    let ep2 = make(
        "ep2",
        json!({"resourceType": "EpisodeOfCare", "status": "active", "patient": subject}),
    )
    .await?;
    let enc1 = make(
        "enc1",
        json!({"resourceType": "Encounter", "status": "finished", "class": amb, "subject": subject,
        "episodeOfCare": [{"reference": format!("EpisodeOfCare/{ep1}")}]}),
    )
    .await?;
    let enc2 = make(
        "enc2",
        json!({"resourceType": "Encounter", "status": "finished", "class": amb, "subject": subject,
        "episodeOfCare": [{"reference": format!("EpisodeOfCare/{ep2}")}]}),
    )
    .await?;
    make(
        "o1",
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "in episode"},
        "subject": subject, "encounter": {"reference": format!("Encounter/{enc1}")}}),
    )
    .await?;
    make(
        "o2",
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "other episode"},
        "subject": subject, "encounter": {"reference": format!("Encounter/{enc2}")}}),
    )
    .await?;
    let token = s.token_for(
        "specialist",
        "user/*.rs",
        Some(&format!("Practitioner/{member}")),
        None,
        600,
    );
    let one = |name: &str| -> BTreeSet<String> { std::iter::once(ids[name].clone()).collect() };
    for (rtype, expected) in [
        ("EpisodeOfCare", "ep1"),
        ("Encounter", "enc1"),
        ("Observation", "o1"),
    ] {
        let (found, total) = search_ids(&s, &token, rtype).await?;
        ensure!(
            found == one(expected) && total == json!(1),
            "{rtype}: {found:?} {total}"
        );
    }
    ensure!(
        status(
            &s,
            &token,
            Method::GET,
            &format!("Observation/{}", ids["o2"]),
            None
        )
        .await?
            == 404
    );
    ensure!(
        status(
            &s,
            &token,
            Method::GET,
            &format!("EpisodeOfCare/{ep2}"),
            None
        )
        .await?
            == 404
    );
    // Off the team, nothing.
    let other = s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Outsider"}]}))
        .await?;
    let outsider = s.token_for(
        "specialist",
        "user/*.rs",
        Some(&format!(
            "Practitioner/{}",
            other["id"].as_str().unwrap_or_default()
        )),
        None,
        600,
    );
    let (found, _) = search_ids(&s, &outsider, "Observation").await?;
    ensure!(found.is_empty(), "{found:?}");
    s.stop().await
}
