//! The terminology operations and the built-in CodeSystem resources over real HTTP, answered
//! from the shared tables (../shared/terminology): every operation as GET with query
//! parameters and as POST with a Parameters body, bad input as 400 with an OperationOutcome.

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    translate_icpc2_to_icd10_and_back,
    expand_filters_and_pages,
    lookup_and_subsumes,
    validate_code_on_code_systems_and_value_sets,
    bad_input_is_400_with_an_outcome,
    built_in_code_systems_are_read_only_resources
];

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICPC2: &str = "http://hl7.org/fhir/sid/icpc-2";

/// GET `path` with `query` (encoded by the client); status and body.
async fn get(s: &TestServer, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value)> {
    let resp = s.req(Method::GET, path).query(query).send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    Ok((status, body))
}

async fn get_ok(s: &TestServer, path: &str, query: &[(&str, &str)]) -> Result<Value> {
    let (status, body) = get(s, path, query).await?;
    ensure!(status == 200, "GET {path} {query:?}: {status} {body}");
    Ok(body)
}

/// POST a Parameters body built from `(name, {"valueX": …})` pairs; expects 200.
async fn post_ok(s: &TestServer, path: &str, inputs: &[(&str, Value)]) -> Result<Value> {
    let (status, body) = s
        .send(Method::POST, path, Some(&parameters(inputs)))
        .await?;
    ensure!(status == 200, "POST {path}: {status} {body}");
    Ok(body)
}

fn parameters(inputs: &[(&str, Value)]) -> Value {
    let parameter: Vec<Value> = inputs
        .iter()
        .map(|(name, value)| {
            let mut p = json!({ "name": name });
            if let (Some(p), Some(v)) = (p.as_object_mut(), value.as_object()) {
                p.extend(v.clone());
            }
            p
        })
        .collect();
    json!({ "resourceType": "Parameters", "parameter": parameter })
}

/// The `value[x]` of the first output parameter called `name`.
fn param<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["parameter"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .and_then(|x| {
            x.as_object()?
                .iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v)
        })
        .unwrap_or(&Value::Null)
}

/// `(property code, value as JSON text)` of a `$lookup` answer.
fn properties(p: &Value) -> Vec<(String, String)> {
    p["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == "property")
        .map(|x| {
            let value = x["part"][1]
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            (
                x["part"][0]["valueCode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                value,
            )
        })
        .collect()
}

/// The target codes of a `$translate` answer, checking each match's shape.
fn match_codes(p: &Value, system: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for m in p["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["name"] == "match")
    {
        let parts = m["part"].as_array().context("match parts")?;
        let equivalence = parts.iter().find(|x| x["name"] == "equivalence");
        ensure!(
            equivalence.is_some_and(|e| e["valueCode"] == "relatedto"),
            "{m}"
        );
        let concept = &parts
            .iter()
            .find(|x| x["name"] == "concept")
            .with_context(|| format!("no concept: {m}"))?["valueCoding"];
        ensure!(concept["system"] == system, "{concept}");
        out.push(concept["code"].as_str().unwrap_or_default().to_owned());
    }
    Ok(out)
}

fn codes_of(expansion: &Value) -> Vec<String> {
    expansion["expansion"]["contains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect()
}

async fn translate_icpc2_to_icd10_and_back(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let got = get_ok(
        &s,
        "ConceptMap/$translate",
        &[("system", ICPC2), ("code", "K86"), ("targetsystem", ICD10)],
    )
    .await?;
    ensure!(param(&got, "result") == true, "{got}");
    ensure!(match_codes(&got, ICD10)? == ["I10"], "{got}");
    // The same as POST, with a Coding.
    let posted = post_ok(
        &s,
        "ConceptMap/$translate",
        &[(
            "coding",
            json!({"valueCoding": {"system": ICPC2, "code": "K86"}}),
        )],
    )
    .await?;
    ensure!(posted == got, "POST differs from GET: {posted}");
    // ICD-10 → ICPC-2: the map read backwards.
    let back = get_ok(
        &s,
        "ConceptMap/$translate",
        &[("system", ICD10), ("code", "I10")],
    )
    .await?;
    ensure!(param(&back, "result") == true, "{back}");
    let rubrics = match_codes(&back, ICPC2)?;
    ensure!(rubrics.iter().any(|r| r == "K86"), "{back}");
    let back_post = post_ok(
        &s,
        "ConceptMap/$translate",
        &[
            ("system", json!({"valueUri": ICD10})),
            ("code", json!({"valueCode": "I10"})),
        ],
    )
    .await?;
    ensure!(match_codes(&back_post, ICPC2)? == rubrics, "{back_post}");
    // No map to the asked target: result false with a message, not an error.
    let none = get_ok(
        &s,
        "ConceptMap/$translate",
        &[
            ("system", ICPC2),
            ("code", "K86"),
            ("targetsystem", "http://snomed.info/sct"),
        ],
    )
    .await?;
    ensure!(
        param(&none, "result") == false && param(&none, "message").is_string(),
        "{none}"
    );
    s.stop().await
}

async fn expand_filters_and_pages(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let all_codes = format!("{ICD10}?fhir_vs");
    let full = get_ok(
        &s,
        "ValueSet/$expand",
        &[("url", &all_codes), ("filter", "asthma"), ("count", "1000")],
    )
    .await?;
    ensure!(full["resourceType"] == "ValueSet", "{full}");
    let total = full["expansion"]["total"].as_u64().context("total")? as usize;
    let codes = codes_of(&full);
    ensure!(codes.iter().any(|c| c == "J45"), "{codes:?}");
    ensure!(codes.len() == total && total > 4, "{total}: {codes:?}");
    let first = &full["expansion"]["contains"][0];
    ensure!(
        first["system"] == ICD10 && first["display"].is_string(),
        "{first}"
    );
    // Pages of two, by offset, add up to the whole expansion.
    let mut paged = Vec::new();
    for n in (0..total).step_by(2) {
        let offset = n.to_string();
        let page = get_ok(
            &s,
            "ValueSet/$expand",
            &[
                ("url", ICD10),
                ("filter", "asthma"),
                ("count", "2"),
                ("offset", &offset),
            ],
        )
        .await?;
        let e = &page["expansion"];
        ensure!(e["total"] == total && e["offset"] == n, "{page}");
        let echoed: Vec<String> = e["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let value = p
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
                    .map(|(_, v)| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default();
                format!("{}={value}", p["name"].as_str().unwrap_or_default())
            })
            .collect();
        for want in ["filter=asthma", "count=2", &format!("offset={offset}")] {
            ensure!(
                echoed.iter().any(|e| e == want),
                "{want} not echoed: {echoed:?}"
            );
        }
        let got = codes_of(&page);
        ensure!(got.len() == 2.min(total - paged.len()), "{page}");
        paged.extend(got);
    }
    ensure!(paged == codes, "paged {paged:?} != {codes:?}");
    // Past the end: the total, and no codes.
    let past = get_ok(
        &s,
        "ValueSet/$expand",
        &[("url", ICD10), ("filter", "asthma"), ("offset", "100000")],
    )
    .await?;
    ensure!(
        past["expansion"]["total"] == total && codes_of(&past).is_empty(),
        "{past}"
    );
    // is-a: J45 and the codes below it, as POST.
    let below = post_ok(
        &s,
        "ValueSet/$expand",
        &[
            (
                "url",
                json!({"valueUri": format!("{ICD10}?fhir_vs=isa/J45")}),
            ),
            ("count", json!({"valueInteger": 50})),
        ],
    )
    .await?;
    let below_codes = codes_of(&below);
    ensure!(
        below_codes.first().is_some_and(|c| c == "J45")
            && below_codes.iter().skip(1).all(|c| c.starts_with("J45.")),
        "{below_codes:?}"
    );
    ensure!(below_codes.iter().any(|c| c == "J45.0"), "{below_codes:?}");
    // Groupings are listed, marked abstract.
    let chapter = get_ok(
        &s,
        "ValueSet/$expand",
        &[("url", ICD10), ("filter", "J40-J47")],
    )
    .await?;
    ensure!(
        chapter["expansion"]["contains"][0]["abstract"] == true,
        "{chapter}"
    );
    s.stop().await
}

async fn lookup_and_subsumes(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let got = get_ok(
        &s,
        "CodeSystem/$lookup",
        &[("system", ICD10), ("code", "J45.0")],
    )
    .await?;
    ensure!(
        param(&got, "display") == "Predominantly allergic asthma"
            && param(&got, "version") == "2019"
            && param(&got, "name").is_string(),
        "{got}"
    );
    let props = properties(&got);
    for want in [
        ("parent", "\"J45\""),
        ("kind", "\"category\""),
        ("selectable", "true"),
    ] {
        ensure!(
            props.iter().any(|(k, v)| k == want.0 && v == want.1),
            "{want:?} missing: {props:?}"
        );
    }
    // Instance level and POST give the same answer.
    let instance = get_ok(&s, "CodeSystem/icd-10/$lookup", &[("code", "J45.0")]).await?;
    ensure!(instance == got, "{instance}");
    let posted = post_ok(
        &s,
        "CodeSystem/$lookup",
        &[(
            "coding",
            json!({"valueCoding": {"system": ICD10, "code": "J45.0"}}),
        )],
    )
    .await?;
    ensure!(posted == got, "{posted}");
    // A code with children lists each.
    let j45 = get_ok(&s, "CodeSystem/icd-10/$lookup", &[("code", "J45")]).await?;
    let children: Vec<String> = properties(&j45)
        .into_iter()
        .filter(|(k, _)| k == "child")
        .map(|(_, v)| v)
        .collect();
    ensure!(children.contains(&"\"J45.0\"".to_owned()), "{children:?}");
    // An ICPC-2 process code.
    let process = get_ok(
        &s,
        "CodeSystem/$lookup",
        &[("system", ICPC2), ("code", "-50")],
    )
    .await?;
    ensure!(
        param(&process, "display")
            .as_str()
            .is_some_and(|d| d.starts_with("Medication")),
        "{process}"
    );
    ensure!(
        properties(&process).contains(&("kind".into(), "\"process\"".into())),
        "{process}"
    );
    // An unknown code is an error (404).
    let (status, outcome) = get(
        &s,
        "CodeSystem/$lookup",
        &[("system", ICD10), ("code", "J99.99")],
    )
    .await?;
    ensure!(
        status == 404 && outcome["resourceType"] == "OperationOutcome",
        "{status} {outcome}"
    );
    // $subsumes, GET and POST, both ways.
    let subsumes = get_ok(
        &s,
        "CodeSystem/$subsumes",
        &[("system", ICD10), ("codeA", "J45"), ("codeB", "J45.0")],
    )
    .await?;
    ensure!(param(&subsumes, "outcome") == "subsumes", "{subsumes}");
    let subsumed = post_ok(
        &s,
        "CodeSystem/$subsumes",
        &[
            (
                "codingA",
                json!({"valueCoding": {"system": ICD10, "code": "J45.0"}}),
            ),
            (
                "codingB",
                json!({"valueCoding": {"system": ICD10, "code": "J45"}}),
            ),
        ],
    )
    .await?;
    ensure!(param(&subsumed, "outcome") == "subsumed-by", "{subsumed}");
    let unrelated = get_ok(
        &s,
        "CodeSystem/icd-10/$subsumes",
        &[("codeA", "J45"), ("codeB", "E11")],
    )
    .await?;
    ensure!(
        param(&unrelated, "outcome") == "not-subsumed",
        "{unrelated}"
    );
    s.stop().await
}

async fn validate_code_on_code_systems_and_value_sets(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let cases = [
        (ICD10, "E11", true),
        (ICD10, "I10", true),
        (ICD10, "J45.0", true),
        (ICPC2, "K86", true),
        (ICPC2, "T90", true),
        (ICPC2, "R96", true),
        (ICPC2, "-50", true),
        (ICD10, "J99.99", false),
        (ICD10, "X", false),
        (ICD10, "J40-J47", false),
    ];
    for (system, code, valid) in cases {
        let got = get_ok(
            &s,
            "CodeSystem/$validate-code",
            &[("url", system), ("code", code)],
        )
        .await?;
        ensure!(param(&got, "result") == valid, "{code}: {got}");
        if !valid {
            ensure!(
                param(&got, "message")
                    .as_str()
                    .is_some_and(|m| m.contains(code)),
                "{code}: {got}"
            );
        }
        // POST with a Coding, on the value set of all the system's codes.
        let posted = post_ok(
            &s,
            "ValueSet/$validate-code",
            &[
                ("url", json!({"valueUri": format!("{system}?fhir_vs")})),
                (
                    "coding",
                    json!({"valueCoding": {"system": system, "code": code}}),
                ),
            ],
        )
        .await?;
        ensure!(param(&posted, "result") == valid, "{code}: {posted}");
    }
    // A display is returned; a wrong one is a warning, not a failure.
    let display = get_ok(
        &s,
        "CodeSystem/icd-10/$validate-code",
        &[("code", "J45.0"), ("display", "Broken leg")],
    )
    .await?;
    ensure!(
        param(&display, "result") == true
            && param(&display, "display") == "Predominantly allergic asthma"
            && param(&display, "message").is_string(),
        "{display}"
    );
    // is-a value sets.
    let isa = format!("{ICD10}?fhir_vs=isa/J45");
    for (code, valid) in [("J45.0", true), ("J45", true), ("J46", false)] {
        let got = get_ok(
            &s,
            "ValueSet/$validate-code",
            &[("url", &isa), ("system", ICD10), ("code", code)],
        )
        .await?;
        ensure!(param(&got, "result") == valid, "{code}: {got}");
    }
    // A CodeableConcept is valid when one of its codings is.
    let concept = post_ok(
        &s,
        "ValueSet/$validate-code",
        &[
            ("url", json!({"valueUri": ICPC2})),
            (
                "codeableConcept",
                json!({"valueCodeableConcept": {"coding": [
                    {"system": ICD10, "code": "I10"},
                    {"system": ICPC2, "code": "K86"},
                ]}}),
            ),
        ],
    )
    .await?;
    ensure!(param(&concept, "result") == true, "{concept}");
    s.stop().await
}

async fn bad_input_is_400_with_an_outcome(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let expect = |status: u16, expression: Option<&'static str>| {
        move |what: &str, got: (u16, Value)| -> Result<()> {
            let (got_status, body) = got;
            ensure!(got_status == status, "{what}: {got_status} {body}");
            ensure!(body["resourceType"] == "OperationOutcome", "{what}: {body}");
            if let Some(expression) = expression {
                ensure!(
                    body["issue"][0]["expression"][0] == expression,
                    "{what}: expected expression {expression}: {body}"
                );
            }
            Ok(())
        }
    };
    expect(400, Some("code"))(
        "lookup without a code",
        get(&s, "CodeSystem/$lookup", &[("system", ICD10)]).await?,
    )?;
    expect(400, Some("system"))(
        "lookup without a system",
        get(&s, "CodeSystem/$lookup", &[("code", "J45")]).await?,
    )?;
    expect(400, Some("system"))(
        "instance and system disagree",
        get(
            &s,
            "CodeSystem/icd-10/$lookup",
            &[("system", ICPC2), ("code", "K86")],
        )
        .await?,
    )?;
    expect(400, Some("count"))(
        "negative count",
        get(&s, "ValueSet/$expand", &[("url", ICD10), ("count", "-1")]).await?,
    )?;
    expect(400, Some("url"))(
        "expand without url",
        get(&s, "ValueSet/$expand", &[("filter", "asthma")]).await?,
    )?;
    expect(400, Some("codeB"))(
        "subsumes with an unknown code",
        get(
            &s,
            "CodeSystem/$subsumes",
            &[("system", ICD10), ("codeA", "J45"), ("codeB", "J99.99")],
        )
        .await?,
    )?;
    expect(400, Some("code"))(
        "translate without a code",
        get(&s, "ConceptMap/$translate", &[("system", ICPC2)]).await?,
    )?;
    expect(400, Some("coding"))(
        "a coding that is not a Coding",
        s.send(
            Method::POST,
            "CodeSystem/$lookup",
            Some(&parameters(&[("coding", json!({"valueString": "J45"}))])),
        )
        .await?,
    )?;
    expect(400, None)(
        "a body that is not Parameters",
        s.send(
            Method::POST,
            "CodeSystem/$lookup",
            Some(&json!({"resourceType": "Patient"})),
        )
        .await?,
    )?;
    // A system or value set the server has no table for is a 404.
    expect(404, None)(
        "an unknown system",
        get(
            &s,
            "CodeSystem/$validate-code",
            &[("url", "http://loinc.org"), ("code", "8867-4")],
        )
        .await?,
    )?;
    expect(404, None)(
        "an unknown value set",
        get(
            &s,
            "ValueSet/$expand",
            &[("url", "http://example.org/ValueSet/x")],
        )
        .await?,
    )?;
    expect(404, None)(
        "an unknown operation",
        get(&s, "CodeSystem/$closure", &[]).await?,
    )?;
    expect(405, None)(
        "DELETE on an operation",
        s.send(Method::DELETE, "CodeSystem/$lookup", None).await?,
    )?;
    // Operations are reads of the type: a token without that scope is refused.
    let resp = s
        .http
        .get(format!("{}/CodeSystem/$lookup", s.base))
        .query(&[("system", ICD10), ("code", "J45")])
        .bearer_auth(s.token("system", "system/Patient.rs", 600))
        .send()
        .await?;
    ensure!(resp.status().as_u16() == 403, "{}", resp.status());
    s.stop().await
}

async fn built_in_code_systems_are_read_only_resources(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let icd10 = s.get_ok("CodeSystem/icd-10").await?;
    ensure!(
        icd10["resourceType"] == "CodeSystem"
            && icd10["id"] == "icd-10"
            && icd10["url"] == ICD10
            && icd10["version"] == "2019"
            && icd10["content"] == "not-present"
            && icd10["status"] == "active"
            && icd10["hierarchyMeaning"] == "is-a"
            && icd10["caseSensitive"].is_boolean()
            && icd10["name"].is_string()
            && icd10["count"].as_u64().is_some_and(|n| n > 12_000)
            && icd10.get("concept").is_none(),
        "{icd10}"
    );
    let icpc2 = s.get_ok("CodeSystem/icpc-2").await?;
    ensure!(icpc2["url"] == ICPC2, "{icpc2}");
    // Reserved ids are read-only.
    let (status, outcome) = s
        .send(Method::PUT, "CodeSystem/icd-10", Some(&icd10))
        .await?;
    ensure!(
        status == 405 && outcome["resourceType"] == "OperationOutcome",
        "{status} {outcome}"
    );
    let (status, _) = s.send(Method::DELETE, "CodeSystem/icpc-2", None).await?;
    ensure!(status == 405, "{status}");
    // Other CodeSystem ids are ordinary stored resources.
    let own = json!({"resourceType": "CodeSystem", "id": "local-codes", "status": "active",
        "content": "complete", "url": "http://example.org/CodeSystem/local",
        "concept": [{"code": "a", "display": "A"}]});
    let (status, _) = s
        .send(Method::PUT, "CodeSystem/local-codes", Some(&own))
        .await?;
    ensure!(status == 201, "{status}");
    ensure!(s.get_ok("CodeSystem/local-codes").await?["concept"] == own["concept"]);
    // A type-level search lists the built-ins ahead of the stored ones.
    let listed = s.search_all("CodeSystem", 10).await?;
    let ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in ["icd-10", "icpc-2", "icd-10-cm", "local-codes"] {
        ensure!(ids.contains(&id), "{id} not listed: {ids:?}");
    }
    let total = s.get_ok("CodeSystem?_total=accurate").await?;
    ensure!(total["total"] == ids.len(), "{total}");
    // By url and name: the built-ins that match.
    let by_url = get_ok(&s, "CodeSystem", &[("url", ICPC2)]).await?;
    let found: Vec<&str> = by_url["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    ensure!(found == ["icpc-2"] && by_url["total"] == 1, "{by_url}");
    let by_name = get_ok(&s, "CodeSystem", &[("name", "ICD10")]).await?;
    ensure!(by_name["total"] == 2, "{by_name}");
    let by_id = get_ok(&s, "CodeSystem", &[("_id", "icd-10")]).await?;
    ensure!(by_id["entry"][0]["resource"]["id"] == "icd-10", "{by_id}");
    // The CapabilityStatement lists the operations that work.
    let cap = s.get_ok("metadata").await?;
    let ops = |rtype: &str| -> Vec<String> {
        cap["rest"][0]["resource"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["type"] == rtype)
            .flat_map(|r| r["operation"].as_array().cloned().unwrap_or_default())
            .filter_map(|o| o["definition"].as_str().map(str::to_owned))
            .collect()
    };
    let defs = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("http://hl7.org/fhir/OperationDefinition/{n}"))
            .collect()
    };
    ensure!(
        ops("CodeSystem")
            == defs(&[
                "CodeSystem-lookup",
                "CodeSystem-validate-code",
                "CodeSystem-subsumes",
                "Resource-validate",
                "Resource-meta",
                "Resource-meta-add",
                "Resource-meta-delete"
            ])
    );
    ensure!(
        ops("ValueSet")
            == defs(&[
                "ValueSet-expand",
                "ValueSet-validate-code",
                "Resource-validate",
                "Resource-meta",
                "Resource-meta-add",
                "Resource-meta-delete"
            ])
    );
    ensure!(
        ops("ConceptMap")
            == defs(&[
                "ConceptMap-translate",
                "Resource-validate",
                "Resource-meta",
                "Resource-meta-add",
                "Resource-meta-delete"
            ])
    );
    // An operation leaves its audit record like any request.
    get_ok(
        &s,
        "CodeSystem/$lookup",
        &[("system", ICD10), ("code", "J45")],
    )
    .await?;
    let records = s.store.audit_records(10_000).await?;
    ensure!(
        records.iter().any(|r| r.record.interaction == "operation"
            && r.record.path.ends_with("/CodeSystem/$lookup")
            && r.record.resource_type.as_deref() == Some("CodeSystem")
            && r.record.outcome == 200),
        "no audit record for $lookup"
    );
    s.stop().await
}
