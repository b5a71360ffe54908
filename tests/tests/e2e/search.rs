//! Search: the parameters the CapabilityStatement lists, prefixes, tokens, paging, totals.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    search_parameters,
    hierarchy_search_across_shards,
    includes_elements_summary_and_strict,
    every_advertised_interaction_answers,
    chains_and_has,
    meta_tags_security_and_profiles,
    missing_and_not_modifiers,
    summary_text_and_data,
    sort_by_several_keys_across_shards,
    sort_by_last_updated_and_with_include,
    spec_parameters_composites_and_modifiers,
    quantity_prefixes_and_units,
    phonetic_and_instantiates_canonical
];

fn ids(resources: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = resources
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

async fn check(s: &TestServer, q: &str, want: &[&String]) -> Result<()> {
    let got = ids(&s.search_all(q, 10).await?);
    let mut want: Vec<String> = want.iter().map(|w| (*w).clone()).collect();
    want.sort();
    ensure!(got == want, "{q}: got {got:?}, want {want:?}");
    Ok(())
}

async fn search_parameters(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let ann = s
        .create(
            &json!({"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-03",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "A-1"}],
        "name": [{"family": "Nélson", "given": ["Ann", "Marie"]}]}),
        )
        .await?;
    let bob = s
        .create(
            &json!({"resourceType": "Patient", "gender": "male", "birthDate": "1975",
        "identifier": [{"value": "B-2"}], "name": [{"family": "Nelsonia", "given": ["Bob"]}]}),
        )
        .await?;
    let carl = s
        .create(
            &json!({"resourceType": "Patient", "gender": "male", "birthDate": "1990-12-31",
        "name": [{"family": "Smith", "given": ["Carl"]}]}),
        )
        .await?;
    let id = |p: &Value| p["id"].as_str().unwrap_or_default().to_owned();
    let (ann_id, bob_id, carl_id) = (id(&ann), id(&bob), id(&carl));
    check(&s, "Patient?family=nelson", &[&ann_id, &bob_id]).await?;
    check(&s, "Patient?family:exact=Nélson", &[&ann_id]).await?;
    check(&s, "Patient?family:contains=SONI", &[&bob_id]).await?;
    check(&s, "Patient?name=mar", &[&ann_id]).await?;
    check(&s, "Patient?given=bob,carl", &[&bob_id, &carl_id]).await?;
    check(&s, "Patient?gender=male&family=smi", &[&carl_id]).await?;
    check(&s, "Patient?identifier=urn:oid:1.2.3|A-1", &[&ann_id]).await?;
    check(&s, "Patient?identifier=|B-2", &[&bob_id]).await?;
    check(&s, "Patient?identifier=A-1", &[&ann_id]).await?;
    check(&s, "Patient?identifier=|A-1", &[]).await?;
    check(&s, "Patient?birthdate=1980-02-03", &[&ann_id]).await?;
    check(&s, "Patient?birthdate=1975-06", &[]).await?;
    check(&s, "Patient?birthdate=lt1980", &[&bob_id]).await?;
    check(&s, "Patient?birthdate=ge1980", &[&ann_id, &carl_id]).await?;
    check(
        &s,
        "Patient?birthdate=gt1980-02-03&birthdate=le1990-12-31",
        &[&carl_id],
    )
    .await?;
    check(&s, "Patient?birthdate=ne1975", &[&ann_id, &carl_id]).await?;
    check(&s, "Patient?birthdate=eq1990", &[&carl_id]).await?;
    let q = format!("Patient?_id={ann_id},{carl_id}");
    let got = ids(&s.search_all(&q, 5).await?);
    ensure!(got.len() == 2, "{q}: {got:?}");
    let got = ids(&s.search_all("Patient?_lastUpdated=gt2000-01-01", 5).await?);
    ensure!(got.len() == 3, "_lastUpdated: {got:?}");

    let obs = |code: &str, date: &str, category: &str, subject: &str| {
        json!({"resourceType": "Observation",
        "status": "final", "effectiveDateTime": date,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{subject}")},
        // Built from text: a float literal would lose the trailing zero before it is sent.
        "valueQuantity": serde_json::from_str::<Value>(r#"{"value": 72.50, "unit": "/min"}"#).unwrap_or_default()})
    };
    let o1 = s
        .create(&obs(
            "8867-4",
            "2024-03-05T10:00:00Z",
            "vital-signs",
            &ann_id,
        ))
        .await?;
    let o2 = s
        .create(&obs("29463-7", "2024-03-06", "vital-signs", &ann_id))
        .await?;
    let o3 = s
        .create(&obs("8867-4", "2023-01-01", "laboratory", &bob_id))
        .await?;
    let q = format!("Observation?patient={ann_id}&code=http://loinc.org|8867-4");
    ensure!(ids(&s.search_all(&q, 5).await?) == vec![id(&o1)], "{q}");
    let q = format!("Observation?subject=Patient/{ann_id}");
    ensure!(ids(&s.search_all(&q, 5).await?).len() == 2, "{q}");
    let got = ids(&s.search_all("Observation?date=ge2024-03-06", 5).await?);
    ensure!(got == vec![id(&o2)], "date ge: {got:?}");
    let got = ids(&s.search_all("Observation?category=laboratory", 5).await?);
    ensure!(got == vec![id(&o3)], "category: {got:?}");
    let got = ids(&s.search_all("Observation?code=8867-4&date=2024", 5).await?);
    ensure!(got == vec![id(&o1)], "code+date: {got:?}");
    // Decimal precision survives the search path too.
    let found = s
        .search_all(&format!("Observation?_id={}", id(&o1)), 2)
        .await?;
    ensure!(
        found
            .first()
            .map(|r| r["valueQuantity"]["value"].to_string())
            == Some("72.50".into())
    );

    let cond = json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{carl_id}")},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "J45.0"}]}});
    let c = s.create(&cond).await?;
    let got = ids(&s
        .search_all(&format!("Condition?patient={carl_id}&code=J45.0"), 5)
        .await?);
    ensure!(got == vec![id(&c)], "condition: {got:?}");
    let enc = json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{carl_id}")},
        "period": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:00:00Z"}});
    let e = s.create(&enc).await?;
    let got = ids(&s
        .search_all(&format!("Encounter?subject={carl_id}&date=2024-01-01"), 5)
        .await?);
    ensure!(got == vec![id(&e)], "encounter: {got:?}");
    let got = ids(&s.search_all("Encounter?date=gt2024-02", 5).await?);
    ensure!(got.is_empty(), "encounter date gt: {got:?}");

    // _total=accurate counts across shards; _count pages.
    let bundle = s.get_ok("Patient?_total=accurate&_count=1").await?;
    ensure!(
        bundle["total"] == 3 && bundle["entry"].as_array().map(Vec::len) == Some(1),
        "{bundle}"
    );
    // POST _search gives the same answer as GET.
    let resp = s
        .req(reqwest::Method::POST, "Patient/_search")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("family=nelson")
        .send()
        .await?;
    ensure!(resp.status() == 200);
    let b: Value = resp.json().await?;
    ensure!(b["entry"].as_array().map(Vec::len) == Some(2), "{b}");
    // Unknown parameters are ignored (lenient) and reported.
    let b = s.get_ok("Patient?family=smith&unknown-param=1").await?;
    let entries = b["entry"].as_array().cloned().unwrap_or_default();
    ensure!(entries.iter().any(|e| e["search"]["mode"] == "outcome"));
    ensure!(
        entries
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .count()
            == 1
    );
    s.stop().await
}

/// `:below` and `:above` follow the ICD-10 hierarchy, over conditions on both shards.
async fn hierarchy_search_across_shards(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
    let codes = [
        "J45", "J45.0", "J45.1", "J45.9", "E11", "I10", "J45.0", "J45.8",
    ];
    // Server ids land on a random shard: make patients (a bounded number) until there is
    // one on each, then give the conditions to them in turn.
    let mut homes: std::collections::BTreeMap<String, String> = Default::default();
    for i in 0..64 {
        if homes.len() == 2 {
            break;
        }
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("Tree{i}")}]}))
            .await?;
        let pid = p["id"].as_str().unwrap_or_default().to_owned();
        let shard = s.store.locate("Patient", &pid).await?;
        homes.entry(format!("{shard:?}")).or_insert(pid);
    }
    ensure!(homes.len() == 2, "no patient on one of the shards");
    let patients: Vec<&String> = homes.values().collect();
    let mut by_code: Vec<(String, String)> = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let pid = patients[i % patients.len()];
        let c = s.create(&json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{pid}")},
            "code": {"coding": [{"system": ICD10, "code": code}]}})).await?;
        by_code.push((
            code.to_string(),
            c["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let want = |pred: &dyn Fn(&str) -> bool| {
        let mut v: Vec<String> = by_code
            .iter()
            .filter(|(c, _)| pred(c))
            .map(|(_, id)| id.clone())
            .collect();
        v.sort();
        v
    };
    let below = ids(&s
        .search_all(&format!("Condition?code:below={ICD10}|J45"), 10)
        .await?);
    ensure!(
        below == want(&|c| c.starts_with("J45")),
        "below J45: {below:?}"
    );
    let above = ids(&s
        .search_all(&format!("Condition?code:above={ICD10}|J45.0"), 10)
        .await?);
    ensure!(
        above == want(&|c| c == "J45" || c == "J45.0"),
        "above J45.0: {above:?}"
    );
    let (status, body) = s
        .send(reqwest::Method::GET, "Condition?code:below=J45", None)
        .await?;
    ensure!(
        status == 400 && body["resourceType"] == "OperationOutcome",
        "no system: {status}"
    );
    let (status, _) = s
        .send(
            reqwest::Method::GET,
            "Condition?code:below=http://loinc.org|1",
            None,
        )
        .await?;
    ensure!(status == 400, "unloaded system: {status}");
    s.stop().await
}

/// Entries of a searchset by mode: (type/id) of matches and of includes.
fn by_mode(bundle: &Value, mode: &str) -> Vec<String> {
    let mut v: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

async fn includes_elements_summary_and_strict(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let org = s
        .create(&json!({"resourceType": "Organization", "name": "Clinic"}))
        .await?;
    let org_id = org["id"].as_str().unwrap_or_default().to_owned();
    let dr = s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Doc"}]}))
        .await?;
    let dr_id = dr["id"].as_str().unwrap_or_default().to_owned();
    let pat = s
        .create(
            &json!({"resourceType": "Patient", "name": [{"family": "Incl"}],
            "generalPractitioner": [{"reference": format!("Practitioner/{dr_id}")}],
            "managingOrganization": {"reference": format!("Organization/{org_id}")}}),
        )
        .await?;
    let pid = pat["id"].as_str().unwrap_or_default().to_owned();
    let mut obs = Vec::new();
    for code in ["a", "b", "c"] {
        let o = s
            .create(&json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "urn:x", "code": code}]},
                "subject": {"reference": format!("Patient/{pid}")}}))
            .await?;
        obs.push(format!(
            "Observation/{}",
            o["id"].as_str().unwrap_or_default()
        ));
    }
    obs.sort();
    let patient = format!("Patient/{pid}");
    // _include follows the matches' references, once each.
    let b = s.get_ok("Observation?_include=Observation:subject").await?;
    ensure!(
        by_mode(&b, "match") == obs && by_mode(&b, "include") == [patient.clone()],
        "{b}"
    );
    let b = s.get_ok("Observation?_include=Observation:patient").await?;
    ensure!(
        by_mode(&b, "include") == [patient.clone()],
        "patient reads subject's index: {b}"
    );
    // _revinclude from the Patient; :iterate goes on to the GP.
    let b = s
        .get_ok(&format!(
            "Patient?_id={pid}&_revinclude=Observation:subject"
        ))
        .await?;
    ensure!(
        by_mode(&b, "match") == [patient.clone()] && by_mode(&b, "include") == obs,
        "{b}"
    );
    let b = s
        .get_ok("Observation?code=a&_include=Observation:subject&_include:iterate=Patient:general-practitioner")
        .await?;
    ensure!(
        by_mode(&b, "include") == [patient.clone(), format!("Practitioner/{dr_id}")],
        "{b}"
    );
    // `*` follows every reference parameter the table knows (`organization` is
    // managingOrganization since the table is R4's).
    let b = s.get_ok(&format!("Patient?_id={pid}&_include=*")).await?;
    let mut want = vec![
        format!("Organization/{org_id}"),
        format!("Practitioner/{dr_id}"),
    ];
    want.sort();
    ensure!(by_mode(&b, "include") == want, "{b}");
    // _elements keeps what is asked (and marks it), _summary=count only counts.
    let b = s.get_ok("Observation?_elements=status&_count=1").await?;
    let r = &b["entry"][0]["resource"];
    ensure!(
        r["status"] == "final" && r.get("code").is_none() && r.get("subject").is_none(),
        "{r}"
    );
    ensure!(
        r["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["code"] == "SUBSETTED"),
        "{r}"
    );
    let b = s.get_ok("Observation?_summary=count").await?;
    ensure!(b["total"] == 3 && b.get("entry").is_none(), "{b}");
    // Unknown parameters: ignored and reported by default, refused under strict handling.
    let b = s.get_ok("Observation?bogus=1").await?;
    ensure!(by_mode(&b, "match").len() == 3, "lenient: {b}");
    ensure!(
        b["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["search"]["mode"] == "outcome")
    );
    let (status, outcome) = s
        .send_with(
            reqwest::Method::GET,
            "Observation?bogus=1",
            None,
            &[("prefer", "handling=strict")],
        )
        .await?;
    ensure!(
        status == 400 && outcome["issue"][0]["expression"][0] == "bogus",
        "{status} {outcome}"
    );
    let (status, _) = s
        .send_with(
            reqwest::Method::GET,
            "Observation?_include=Observation:nope",
            None,
            &[("prefer", "handling=strict")],
        )
        .await?;
    ensure!(
        status == 400,
        "unknown include parameter under strict: {status}"
    );
    s.stop().await
}

/// Every interaction the CapabilityStatement lists (for Patient, and at the system level)
/// answers with success; the ones it does not list are refused.
async fn every_advertised_interaction_answers(env: &Env) -> Result<()> {
    use reqwest::Method;
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let cap = s.get_ok("metadata").await?;
    let rest = &cap["rest"][0];
    let patient = rest["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "Patient")
        .cloned()
        .unwrap_or_default();
    let listed = |v: &Value| -> Vec<String> {
        v["interaction"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["code"].as_str().map(str::to_owned))
            .collect()
    };
    let created = s
        .create(&json!({"resourceType": "Patient", "active": true}))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let mut updated = created.clone();
    updated["active"] = json!(false);
    for code in listed(&patient) {
        let (status, body) = match code.as_str() {
            "read" => s.send(Method::GET, &format!("Patient/{id}"), None).await?,
            "vread" => {
                s.send(Method::GET, &format!("Patient/{id}/_history/1"), None)
                    .await?
            }
            "update" => {
                s.send(Method::PUT, &format!("Patient/{id}"), Some(&updated))
                    .await?
            }
            "patch" => {
                let resp = s
                    .req(Method::PATCH, &format!("Patient/{id}"))
                    .header("content-type", "application/json-patch+json")
                    .body(r#"[{"op": "add", "path": "/gender", "value": "female"}]"#)
                    .send()
                    .await?;
                (resp.status().as_u16(), Value::Null)
            }
            "history-instance" => {
                s.send(Method::GET, &format!("Patient/{id}/_history"), None)
                    .await?
            }
            "history-type" => s.send(Method::GET, "Patient/_history", None).await?,
            "create" => {
                s.send(
                    Method::POST,
                    "Patient",
                    Some(&json!({"resourceType": "Patient"})),
                )
                .await?
            }
            "search-type" => s.send(Method::GET, "Patient", None).await?,
            "delete" => continue,
            other => anyhow::bail!(
                "the CapabilityStatement lists {other:?}, which this test does not know"
            ),
        };
        ensure!((200..300).contains(&status), "{code}: {status} {body}");
    }
    ensure!(listed(&patient).contains(&"delete".to_owned()));
    let (status, _) = s
        .send(Method::DELETE, &format!("Patient/{id}"), None)
        .await?;
    ensure!(status == 204, "delete: {status}");
    for code in listed(rest) {
        let (status, body) = match code.as_str() {
            "transaction" => {
                s.send(
                    Method::POST,
                    "",
                    Some(&json!({"resourceType": "Bundle", "type": "transaction"})),
                )
                .await?
            }
            "batch" => {
                s.send(
                    Method::POST,
                    "",
                    Some(&json!({"resourceType": "Bundle", "type": "batch"})),
                )
                .await?
            }
            "history-system" => s.send(Method::GET, "_history", None).await?,
            other => anyhow::bail!(
                "the CapabilityStatement lists {other:?}, which this test does not know"
            ),
        };
        ensure!(status == 200, "{code}: {status} {body}");
    }
    // Not listed, not served.
    let (status, _) = s.send(Method::GET, "", None).await?;
    ensure!(status == 404, "search-system is not listed: {status}");
    s.stop().await
}

async fn chains_and_has(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    let doc = id(&s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Doc"}]}))
        .await?);
    let other = id(&s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Other"}]}))
        .await?);
    let ann = id(&s
        .create(
            &json!({"resourceType": "Patient", "name": [{"given": ["Ann"], "family": "A"}],
            "generalPractitioner": [{"reference": format!("Practitioner/{doc}")}]}),
        )
        .await?);
    let bob = id(&s
        .create(
            &json!({"resourceType": "Patient", "name": [{"given": ["Bob"], "family": "B"}],
            "generalPractitioner": [{"reference": format!("Practitioner/{other}")}]}),
        )
        .await?);
    let obs = |p: &str, code: &str| {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "urn:x", "code": code}]},
            "subject": {"reference": format!("Patient/{p}")}})
    };
    let o_ann = id(&s.create(&obs(&ann, "a")).await?);
    s.create(&obs(&bob, "b")).await?;
    check(&s, "Observation?subject:Patient.name=Ann", &[&o_ann]).await?;
    check(&s, "Observation?patient.name=Ann", &[&o_ann]).await?;
    check(
        &s,
        "Observation?patient.general-practitioner:Practitioner.name=Doc",
        &[&o_ann],
    )
    .await?;
    check(&s, "Observation?patient.name=Nobody", &[]).await?;
    check(&s, "Patient?_has:Observation:patient:code=a", &[&ann]).await?;
    check(
        &s,
        "Patient?_has:Observation:subject:code=a,b",
        &[&ann, &bob],
    )
    .await?;
    check(
        &s,
        "Practitioner?_has:Patient:general-practitioner:_has:Observation:patient:code=a",
        &[&doc],
    )
    .await?;
    let b = s
        .get_ok("Patient?_has:Observation:patient:code=zzz&_total=accurate")
        .await?;
    ensure!(b["total"] == 0 && b.get("entry").is_none(), "{b}");
    let (status, _) = s
        .send(reqwest::Method::GET, "Observation?subject.name=Ann", None)
        .await?;
    ensure!(
        status == 400,
        "a chain through a many-typed reference needs a type: {status}"
    );
    let (status, _) = s
        .send(
            reqwest::Method::GET,
            "Patient?_has:Observation:nope:code=a",
            None,
        )
        .await?;
    ensure!(status == 400, "{status}");
    // Chains read under the caller's access: Bob's GP cannot find Ann through Observations.
    let gp = s.token_for("gp", "user/*.rs", Some(&other), None, 600);
    let (status, b) = s
        .send_as(
            &gp,
            reqwest::Method::GET,
            "Patient?_has:Observation:patient:code=a,b",
            None,
        )
        .await?;
    ensure!(status == 200, "{status}");
    let found: Vec<&str> = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    ensure!(found == [bob.as_str()], "{found:?}");
    s.stop().await
}

/// `_tag`, `_security` and `_profile` (every type): what `meta` says of a resource.
async fn meta_tags_security_and_profiles(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let tagged = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Tagged"}],
            "meta": {
                "tag": [{"system": "http://example.org/tags", "code": "vip"}],
                "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
                "profile": ["http://example.org/StructureDefinition/our-patient"]}}))
        .await?;
    let tagged = tagged["id"].as_str().unwrap_or_default().to_owned();
    s.create(
        &json!({"resourceType": "Patient", "name": [{"family": "Plain"}],
        "meta": {"tag": [{"system": "http://example.org/tags", "code": "plain"}]}}),
    )
    .await?;
    s.create(
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "meta": {"tag": [{"system": "http://example.org/tags", "code": "vip"}]}}),
    )
    .await?;
    for q in [
        "Patient?_tag=http://example.org/tags|vip",
        "Patient?_tag=vip",
        "Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        "Patient?_profile=http://example.org/StructureDefinition/our-patient",
        // uri `:below` (the profiles under a path) and `:above` (those above a URL).
        "Patient?_profile:below=http://example.org/StructureDefinition",
        "Patient?_profile:below=http://example.org/",
        "Patient?_profile:above=http://example.org/StructureDefinition/our-patient/v2",
    ] {
        let bundle = s.get_ok(q).await?;
        let found: Vec<String> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
            .collect();
        ensure!(found == vec![tagged.clone()], "{q}: {found:?}");
    }
    let none = s
        .get_ok("Patient?_profile=http://example.org/StructureDefinition/other")
        .await?;
    ensure!(none["entry"].as_array().is_none_or(Vec::is_empty), "{none}");
    for q in [
        "Patient?_profile:below=http://example.org/StructureDefinition/our",
        "Patient?_profile:below=http://example.com/",
        "Patient?_profile:above=http://example.org/StructureDefinition",
    ] {
        let none = s.get_ok(q).await?;
        ensure!(
            none["entry"].as_array().is_none_or(Vec::is_empty),
            "{q}: {none}"
        );
    }
    let obs = s.get_ok("Observation?_tag=vip").await?;
    ensure!(obs["entry"].as_array().map(Vec::len) == Some(1), "{obs}");
    // A reference's target type as a modifier.
    let of_patient = s
        .create(
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient/{tagged}")}}),
        )
        .await?;
    let of_patient = of_patient["id"].as_str().unwrap_or_default().to_owned();
    check(
        &s,
        &format!("Observation?subject:Patient={tagged}"),
        &[&of_patient],
    )
    .await?;
    check(&s, &format!("Observation?subject:Group={tagged}"), &[]).await?;
    let (status, _) = s
        .send(
            reqwest::Method::GET,
            &format!("Observation?patient:Group={tagged}"),
            None,
        )
        .await?;
    ensure!(status == 400, "patient:Group answered {status}");
    s.stop().await
}

/// `:missing` (every parameter type) and `:not` (tokens; a resource without the element
/// matches, and `:not=a,b` is neither).
async fn missing_and_not_modifiers(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let mut ids = std::collections::HashMap::new();
    for (name, body) in [
        (
            "male",
            json!({"resourceType": "Patient", "gender": "male", "birthDate": "1970-01-01"}),
        ),
        (
            "female",
            json!({"resourceType": "Patient", "gender": "female"}),
        ),
        (
            "unsaid",
            json!({"resourceType": "Patient", "name": [{"family": "Unsaid"}]}),
        ),
    ] {
        let created = s.create(&body).await?;
        ids.insert(name, created["id"].as_str().unwrap_or_default().to_owned());
    }
    let expect = |names: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|n| ids[n].clone()).collect();
        v.sort();
        v
    };
    for (q, want) in [
        ("Patient?birthdate:missing=true", vec!["female", "unsaid"]),
        ("Patient?birthdate:missing=false", vec!["male"]),
        ("Patient?gender:missing=true", vec!["unsaid"]),
        ("Patient?name:missing=false", vec!["unsaid"]),
        ("Patient?gender:not=male", vec!["female", "unsaid"]),
        ("Patient?gender:not=male,female", vec!["unsaid"]),
        (
            "Patient?gender:not=male&birthdate:missing=true",
            vec!["female", "unsaid"],
        ),
    ] {
        let bundle = s.get_ok(q).await?;
        let mut found: Vec<String> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
            .collect();
        found.sort();
        ensure!(found == expect(&want), "{q}: {found:?}");
    }
    let (status, _) = s
        .send(reqwest::Method::GET, "Patient?gender:missing=maybe", None)
        .await?;
    ensure!(status == 400, ":missing=maybe answered {status}");
    s.stop().await
}

/// `_summary=text` keeps the narrative and the mandatory elements, `_summary=data` drops the
/// narrative; both mark the resource subsetted.
async fn summary_text_and_data(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let o = s
        .create(&json!({"resourceType": "Observation", "status": "final",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">pulse 72</div>"},
            "code": {"text": "pulse"}, "valueQuantity": {"value": 72, "unit": "/min"},
            "effectiveDateTime": "2020-01-01"}))
        .await?;
    let id = o["id"].as_str().unwrap_or_default();
    let subsetted = |r: &Value| {
        r["meta"]["tag"]
            .as_array()
            .is_some_and(|t| t.iter().any(|c| c["code"] == "SUBSETTED"))
    };
    let (_, text) = s
        .send(
            Method::GET,
            &format!("Observation?_id={id}&_summary=text"),
            None,
        )
        .await?;
    let r = &text["entry"][0]["resource"];
    ensure!(
        r["text"]["status"] == "generated"
            && r["status"] == "final"
            && r["code"]["text"] == "pulse",
        "text keeps the narrative and the mandatory elements: {r}"
    );
    ensure!(
        r.get("valueQuantity").is_none() && r.get("effectiveDateTime").is_none() && subsetted(r),
        "text drops the rest: {r}"
    );
    let (_, data) = s
        .send(
            Method::GET,
            &format!("Observation?_id={id}&_summary=data"),
            None,
        )
        .await?;
    let r = &data["entry"][0]["resource"];
    ensure!(
        r.get("text").is_none() && r["valueQuantity"]["value"] == 72 && subsetted(r),
        "data drops the narrative only: {r}"
    );
    let (status, summary) = s
        .send_with(
            Method::GET,
            &format!("Observation?_id={id}&_summary=true"),
            None,
            &[("prefer", "handling=strict")],
        )
        .await?;
    let r = &summary["entry"][0]["resource"];
    ensure!(
        status == 200
            && r.get("text").is_none()
            && r["valueQuantity"]["value"] == 72
            && r["effectiveDateTime"] == "2020-01-01"
            && subsetted(r),
        "true keeps the summary elements: {status} {r}"
    );
    let (status, _) = s
        .send_with(
            Method::GET,
            "Observation?_summary=everything",
            None,
            &[("prefer", "handling=strict")],
        )
        .await?;
    ensure!(
        status == 400,
        "an unknown _summary under strict handling: {status}"
    );
    s.stop().await
}

/// The ids of a search's matches in the order its pages give them, following `next` links.
async fn ordered_ids(s: &TestServer, q: &str, max_pages: usize) -> Result<Vec<String>> {
    Ok(s.search_all(q, max_pages)
        .await?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect())
}

/// `_sort=family,-birthdate` over patients on both shards, paged 3 by 3 through the store's
/// merge: every match exactly once, in order, missing values last; ties broken by id.
async fn sort_by_several_keys_across_shards(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    // (family, birthDate, the birthDate's last day: what a descending sort compares)
    let people: &[(Option<&str>, Option<&str>, &str)] = &[
        (Some("Zeta"), Some("1990-01-02"), "1990-01-02"),
        (Some("Adams"), Some("1975"), "1975-12-31"),
        (Some("Adams"), Some("1975-06-01"), "1975-06-01"),
        (Some("Adams"), None, ""),
        (Some("adams"), Some("2001-03-04"), "2001-03-04"),
        (Some("Émile"), Some("1960-01-01"), "1960-01-01"),
        (Some("Brown"), Some("1980-02-03"), "1980-02-03"),
        (Some("Brown"), Some("1980-02-03"), "1980-02-03"),
        (Some("Brown"), Some("1999-09-09"), "1999-09-09"),
        (None, Some("1950-05-05"), "1950-05-05"),
        (None, None, ""),
        (Some("Émile"), Some("1960-01"), "1960-01-31"),
        (Some("Chen"), Some("1970-07-07"), "1970-07-07"),
    ];
    let mut expected = Vec::new();
    let mut shards = std::collections::BTreeSet::new();
    for (family, birth, last_day) in people {
        let mut p = json!({"resourceType": "Patient", "gender": "other"});
        if let Some(f) = family {
            p["name"] = json!([{"family": f, "given": ["X"]}]);
        }
        if let Some(b) = birth {
            p["birthDate"] = json!(b);
        }
        let id = s.create(&p).await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        shards.insert(s.store.locate("Patient", &id).await?);
        // The normalised family (lower case, accents folded), missing last.
        let family_key = family.map(|f| f.to_lowercase().replace('é', "e"));
        expected.push((family_key, *last_day, id));
    }
    ensure!(shards.len() == 2, "all patients on one shard: {shards:?}");
    expected.sort_by(|a, b| {
        let family = match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.cmp(y),
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
        };
        let birth = match (a.1.is_empty(), b.1.is_empty()) {
            (false, false) => b.1.cmp(a.1),
            (x, y) => x.cmp(&y),
        };
        family.then(birth).then_with(|| a.2.cmp(&b.2))
    });
    let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
    for count in [3, 1, 20] {
        let got = ordered_ids(
            &s,
            &format!("Patient?_sort=family,-birthdate&_count={count}"),
            20,
        )
        .await?;
        ensure!(
            got == expected,
            "_count={count}: got {got:?}, want {expected:?}"
        );
    }
    // Many ties (one gender for all): pages of 2 still give each match once, by id.
    let mut by_id = expected.clone();
    by_id.sort();
    let got = ordered_ids(&s, "Patient?_sort=gender&_count=2", 20).await?;
    ensure!(got == by_id, "gender: got {got:?}");
    // Descending id.
    let got = ordered_ids(&s, "Patient?_sort=-_id&_count=4", 20).await?;
    by_id.reverse();
    ensure!(got == by_id, "-_id: got {got:?}");
    // A filter and a sort together.
    let got = ordered_ids(&s, "Patient?family=adams&_sort=-birthdate&_count=2", 20).await?;
    // The four of family "adams" (any case) come first in `expected`, by birth date
    // descending already.
    let want: Vec<String> = expected[..4].to_vec();
    ensure!(got == want, "family=adams: got {got:?}, want {want:?}");
    // An unknown sort parameter: ignored and reported, or 400 under strict handling.
    let (status, body) = s
        .send(Method::GET, "Patient?_sort=bogus,family", None)
        .await?;
    ensure!(status == 200, "{status} {body}");
    ensure!(
        body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["search"]["mode"] == "outcome"),
        "the unknown sort key is not reported: {body}"
    );
    let (status, body) = s
        .send_with(
            Method::GET,
            "Patient?_sort=bogus",
            None,
            &[("prefer", "handling=strict")],
        )
        .await?;
    ensure!(status == 400, "{status} {body}");
    // A cursor of another sort is refused.
    let first = s.get_ok("Patient?_sort=family&_count=2").await?;
    let next = tests::next_link(&first).unwrap_or_default();
    ensure!(
        next.contains("_cursor=%7E") || next.contains("_cursor=~"),
        "{next}"
    );
    let other = next.replace("_sort=family", "_sort=family%2Cgender");
    let (status, body) = s
        .send(
            Method::GET,
            other.rsplit("/fhir/").next().unwrap_or_default(),
            None,
        )
        .await?;
    ensure!(status == 400, "a cursor of another sort: {status} {body}");
    s.stop().await
}

/// `_sort=-_lastUpdated` gives the newest first (an update moves a resource to the front),
/// and a sorted page brings its `_include`s.
async fn sort_by_last_updated_and_with_include(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let mut patients = Vec::new();
    for n in 0..6 {
        let p = s
            .create(&json!({"resourceType": "Patient", "name": [{"family": format!("Upd{n}")}]}))
            .await?;
        patients.push(p);
    }
    let ids: Vec<String> = patients
        .iter()
        .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let got = ordered_ids(&s, "Patient?_sort=-_lastUpdated&_count=4", 10).await?;
    ensure!(got == newest_first, "got {got:?}, want {newest_first:?}");
    let mut oldest = patients[0].clone();
    oldest["name"] = json!([{"family": "Upd0", "given": ["Again"]}]);
    let (status, body) = s
        .send(Method::PUT, &format!("Patient/{}", ids[0]), Some(&oldest))
        .await?;
    ensure!(status == 200, "{status} {body}");
    newest_first.retain(|i| i != &ids[0]);
    newest_first.insert(0, ids[0].clone());
    let got = ordered_ids(&s, "Patient?_sort=-_lastUpdated&_count=5", 10).await?;
    ensure!(got == newest_first, "after the update: got {got:?}");
    // Observations of these patients, sorted by date descending, with their patients.
    let mut obs = Vec::new();
    for (n, pid) in ids.iter().enumerate() {
        let o = s
            .create(&json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": format!("Patient/{pid}")},
                "effectiveDateTime": format!("2020-0{}-01", n + 1)}))
            .await?;
        obs.push(o["id"].as_str().unwrap_or_default().to_owned());
    }
    let mut seen = Vec::new();
    let mut included = std::collections::BTreeSet::new();
    let mut url =
        "Observation?code=8867-4&_sort=-date&_include=Observation:subject&_count=4".to_owned();
    for _ in 0..5 {
        let bundle = s.get_ok(&url).await?;
        for e in bundle["entry"].as_array().into_iter().flatten() {
            let id = e["resource"]["id"].as_str().unwrap_or_default().to_owned();
            match e["search"]["mode"].as_str() {
                Some("match") => seen.push(id),
                Some("include") => {
                    included.insert(id);
                }
                _ => {}
            }
        }
        match tests::next_link(&bundle) {
            Some(next) => url = next,
            None => break,
        }
    }
    let want: Vec<String> = obs.iter().rev().cloned().collect();
    ensure!(seen == want, "got {seen:?}, want {want:?}");
    let all: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
    ensure!(included == all, "included {included:?}");
    s.stop().await
}

async fn found(s: &TestServer, q: &str) -> Result<Vec<String>> {
    Ok(ids(&s.search_all(q, 10).await?))
}

/// Parameters from the spec's table that were not hand-picked before, composites (in one
/// element: a component's code never pairs with another component's value), `:text`,
/// `:of-type`, `:identifier`.
async fn spec_parameters_composites_and_modifiers(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    const V2: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    let patient = s
        .create(&json!({"resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"system": V2, "code": "MR"}]},
                            "system": "urn:mrn", "value": "12345"}],
            "telecom": [{"system": "email", "value": "ann@example.org"},
                        {"system": "phone", "value": "555-1"}],
            "address": [{"city": "Amsterdam"}]}))
        .await?;
    let pid = patient["id"].as_str().unwrap_or_default().to_owned();
    let subject = json!({"reference": format!("Patient/{pid}"),
        "identifier": {"system": "urn:mrn", "value": "12345"}});
    let obs = |code: &str, extra: Value| {
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": subject.clone()});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            o[k] = v;
        }
        o
    };
    let mmhg = |v: u32| json!({"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
    let bp = s
        .create(&obs("85354-9", json!({"component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": mmhg(107)},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": mmhg(60)}]})))
        .await?;
    let weight = s
        .create(&obs("29463-7", json!({"code": {"coding": [{"system": "http://loinc.org",
            "code": "29463-7", "display": "Body Weight"}], "text": "Weight"},
            "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}})))
        .await?;
    let smoker = s
        .create(&obs("72166-2", json!({"valueCodeableConcept": {"coding": [
            {"system": "http://snomed.info/sct", "code": "266919005", "display": "Never smoked"}]}})))
        .await?;
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    let (bp, weight, smoker) = (id(&bp), id(&weight), id(&smoker));
    let none: Vec<String> = Vec::new();
    for (q, want) in [
        // Not in the hand-picked table before.
        ("Patient?email=ann@example.org", vec![pid.clone()]),
        ("Patient?email=555-1", none.clone()),
        ("Patient?phone=555-1", vec![pid.clone()]),
        ("Patient?address-city=amster", vec![pid.clone()]),
        ("Patient?deceased=false", vec![pid.clone()]),
        ("Patient?deceased=true", none.clone()),
        (
            "Observation?value-concept=http://snomed.info/sct|266919005",
            vec![smoker.clone()],
        ),
        // Composites.
        (
            "Observation?code-value-quantity=http://loinc.org|29463-7$185",
            vec![weight.clone()],
        ),
        (
            "Observation?code-value-quantity=29463-7$gt180",
            vec![weight.clone()],
        ),
        ("Observation?code-value-quantity=|29463-7$185", none.clone()),
        (
            "Observation?code-value-quantity=29463-7$lt180",
            none.clone(),
        ),
        (
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100",
            vec![bp.clone()],
        ),
        // The diastolic is 60: the systolic's 107 must not pair with its code.
        (
            "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100",
            none.clone(),
        ),
        (
            "Observation?component-code-value-quantity=8462-4$60",
            vec![bp.clone()],
        ),
        ("Observation?code-value-quantity=85354-9$107", none.clone()),
        (
            "Observation?combo-code-value-quantity=8480-6$107,29463-7$185",
            vec![bp.clone(), weight.clone()],
        ),
        ("Observation?combo-code=8462-4", vec![bp.clone()]),
        (
            "Observation?code-value-concept=72166-2$http://snomed.info/sct|266919005",
            vec![smoker.clone()],
        ),
        (
            "Observation?code-value-concept=29463-7$http://snomed.info/sct|266919005",
            none.clone(),
        ),
        // Modifiers.
        ("Observation?code:text=body w", vec![weight.clone()]),
        ("Observation?code:text=weight", vec![weight.clone()]),
        ("Observation?value-concept:text=never", vec![smoker.clone()]),
        (
            &*format!("Patient?identifier:of-type={V2}|MR|12345"),
            vec![pid.clone()],
        ),
        (
            &*format!("Patient?identifier:of-type={V2}|MR|9"),
            none.clone(),
        ),
        (
            "Observation?subject:identifier=urn:mrn|12345",
            vec![bp.clone(), weight.clone(), smoker.clone()],
        ),
        (
            "Observation?patient:identifier=12345&code=29463-7",
            vec![weight.clone()],
        ),
        (
            "Observation?value-quantity:missing=false",
            vec![weight.clone()],
        ),
        (
            "Observation?value-quantity:missing=true",
            vec![bp.clone(), smoker.clone()],
        ),
        (
            "Observation?component-value-quantity:missing=false",
            vec![bp.clone()],
        ),
    ] {
        let got = found(&s, q).await?;
        let mut want = want;
        want.sort();
        ensure!(got == want, "{q}: got {got:?}, want {want:?}");
    }
    for bad in [
        "Observation?code-value-quantity=29463-7",
        "Observation?code-value-quantity=29463-7$heavy",
        "Observation?value-quantity=5|kg",
        "Patient?identifier:of-type=MR|12345",
    ] {
        let (status, b) = s.send(Method::GET, bad, None).await?;
        ensure!(
            status == 400 && b["resourceType"] == "OperationOutcome",
            "{bad}: {status} {b}"
        );
    }
    s.stop().await
}

/// Quantity prefixes over the range a value's precision implies (185 is 184.5..185.5), `ap`
/// (±10 %), `sa`, `eb`, units by code or by display unit.
async fn quantity_prefixes_and_units(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let mut ids = Vec::new();
    for (value, unit, code) in [("185", "lbs", Some("[lb_av]")), ("5.4", "mmol/L", None)] {
        // The value as written (its precision is what it means).
        let mut q = json!({"value": serde_json::from_str::<Value>(value)?, "unit": unit});
        if let Some(code) = code {
            q["system"] = json!("http://unitsofmeasure.org");
            q["code"] = json!(code);
        }
        let o = s
            .create(&json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "valueQuantity": q}))
            .await?;
        ids.push(o["id"].as_str().unwrap_or_default().to_owned());
    }
    let (lb, mmol) = (ids[0].clone(), ids[1].clone());
    let none: Vec<String> = Vec::new();
    for (q, want) in [
        ("value-quantity=185", vec![lb.clone()]),
        ("value-quantity=185.0", none.clone()),
        ("value-quantity=5.4", vec![mmol.clone()]),
        ("value-quantity=5.40", none.clone()),
        ("value-quantity=ne185", vec![mmol.clone()]),
        ("value-quantity=gt100", vec![lb.clone()]),
        ("value-quantity=lt6", vec![mmol.clone()]),
        ("value-quantity=ge185", vec![lb.clone()]),
        ("value-quantity=le5.4", vec![mmol.clone()]),
        ("value-quantity=ap200", vec![lb.clone()]),
        ("value-quantity=ap210", none.clone()),
        ("value-quantity=ap5", vec![mmol.clone()]),
        ("value-quantity=sa180", vec![lb.clone()]),
        ("value-quantity=sa185", none.clone()),
        ("value-quantity=eb190", vec![mmol.clone(), lb.clone()]),
        ("value-quantity=eb185", vec![mmol.clone()]),
        (
            "value-quantity=185|http://unitsofmeasure.org|[lb_av]",
            vec![lb.clone()],
        ),
        ("value-quantity=185||[lb_av]", vec![lb.clone()]),
        ("value-quantity=185||kg", none.clone()),
        ("value-quantity=5.4||mmol/L", vec![mmol.clone()]),
        (
            "value-quantity=5.4|http://unitsofmeasure.org|mmol/L",
            none.clone(),
        ),
    ] {
        let q = format!("Observation?{q}");
        let got = found(&s, &q).await?;
        let mut want = want;
        want.sort();
        ensure!(got == want, "{q}: got {got:?}, want {want:?}");
    }
    s.stop().await
}

/// `phonetic` matches name parts by their American Soundex code; `instantiates-canonical`
/// matches the canonical URL (a `|version` ignored on either side).
async fn phonetic_and_instantiates_canonical(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let id = |r: &Value| r["id"].as_str().unwrap_or_default().to_owned();
    let smith = id(&s
        .create(&json!({"resourceType": "Patient",
            "name": [{"family": "Smith", "given": ["Jon", "Robert"]}]}))
        .await?);
    let dyke = id(&s
        .create(&json!({"resourceType": "Patient",
            "name": [{"family": "Van Dyke", "given": ["Ann"]}]}))
        .await?);
    let dr = id(&s
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Ashcraft"}]}))
        .await?);
    let org = id(&s
        .create(&json!({"resourceType": "Organization", "name": "Acme Healthcare"}))
        .await?);
    check(&s, "Patient?phonetic=Smyth", &[&smith]).await?;
    check(&s, "Patient?phonetic=john", &[&smith]).await?;
    check(&s, "Patient?phonetic=Rupert", &[&smith]).await?;
    check(&s, "Patient?phonetic=Van%20Dike", &[&dyke]).await?;
    check(&s, "Patient?phonetic=Dike", &[&dyke]).await?;
    check(&s, "Patient?phonetic=Smith,Anne", &[&smith, &dyke]).await?;
    check(&s, "Patient?phonetic=Smith&phonetic=Ann", &[]).await?;
    check(&s, "Patient?phonetic=Jones", &[]).await?;
    check(&s, "Practitioner?phonetic=Ashcroft", &[&dr]).await?;
    check(&s, "Organization?phonetic=Akme", &[&org]).await?;
    check(&s, "Organization?phonetic=helthcare", &[&org]).await?;

    let proc = id(&s
        .create(&json!({"resourceType": "Procedure", "status": "completed",
            "subject": {"reference": format!("Patient/{smith}")},
            "instantiatesCanonical": ["http://example.org/PlanDefinition/x|1.0"]}))
        .await?);
    let other = id(&s
        .create(&json!({"resourceType": "Procedure", "status": "completed",
            "subject": {"reference": format!("Patient/{smith}")}}))
        .await?);
    let sr = id(&s
        .create(
            &json!({"resourceType": "ServiceRequest", "status": "active",
            "intent": "order", "subject": {"reference": format!("Patient/{dyke}")},
            "instantiatesCanonical": ["http://example.org/ActivityDefinition/y"]}),
        )
        .await?);
    let x = "http://example.org/PlanDefinition/x";
    check(
        &s,
        &format!("Procedure?instantiates-canonical={x}"),
        &[&proc],
    )
    .await?;
    check(
        &s,
        &format!("Procedure?instantiates-canonical={x}%7C2.0"),
        &[&proc],
    )
    .await?;
    check(
        &s,
        "Procedure?instantiates-canonical=http://example.org/PlanDefinition/z",
        &[],
    )
    .await?;
    check(
        &s,
        "Procedure?instantiates-canonical:missing=true",
        &[&other],
    )
    .await?;
    check(
        &s,
        "ServiceRequest?instantiates-canonical=http://example.org/ActivityDefinition/y",
        &[&sr],
    )
    .await?;
    Ok(())
}
