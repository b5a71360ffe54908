//! Codes are validated on write against the loaded tables (../shared/terminology), under the
//! default policy: bad codes of a loaded system are 422 with the element path, a wrong
//! display is a warning, and systems without a table are not checked.

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    good_codes_are_stored,
    bad_codes_are_422_with_the_element_path,
    a_wrong_display_is_a_warning,
    an_update_with_a_bad_code_changes_nothing,
    readyz_reports_the_policy
];

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICPC2: &str = "http://hl7.org/fhir/sid/icpc-2";

fn condition(codings: Value) -> Value {
    json!({
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": codings},
    })
}

fn coding(system: &str, code: &str) -> Value {
    json!({"system": system, "code": code})
}

async fn post(s: &TestServer, body: &Value) -> Result<(u16, Value)> {
    s.send(Method::POST, "Condition", Some(body)).await
}

/// Expects a 422 whose first issue is `code-invalid` at `expression` and names `code`.
async fn expect_rejected(s: &TestServer, body: &Value, expression: &str, code: &str) -> Result<()> {
    let (status, outcome) = post(s, body).await?;
    ensure!(
        status == 422,
        "{code}: expected 422, got {status}: {outcome}"
    );
    ensure!(
        outcome["resourceType"] == "OperationOutcome",
        "{code}: {outcome}"
    );
    let issue = &outcome["issue"][0];
    ensure!(
        issue["severity"] == "error" && issue["code"] == "code-invalid",
        "{code}: {issue}"
    );
    ensure!(
        issue["expression"][0] == expression,
        "{code}: expected expression {expression}, got {issue}"
    );
    let diagnostics = issue["diagnostics"].as_str().unwrap_or_default();
    ensure!(
        diagnostics.contains(code) && diagnostics.contains("http://hl7.org/fhir/sid/"),
        "{code}: diagnostics should name the code and the system: {diagnostics}"
    );
    Ok(())
}

async fn good_codes_are_stored(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    for body in [
        condition(json!([coding(ICD10, "J45.0")])),
        condition(json!([coding(ICD10, "J45")])),
        condition(json!([coding(ICPC2, "K86")])),
        condition(json!([coding(ICD10, "J45.0"), coding(ICPC2, "R96")])),
        // A system without a table is not checked.
        condition(json!([coding("http://loinc.org", "no-such-code")])),
        // Neither is a Coding without a system.
        condition(json!([{"code": "Z99.99"}])),
    ] {
        let (status, got) = post(&s, &body).await?;
        ensure!(status == 201, "{body}: {status} {got}");
        ensure!(got["code"] == body["code"], "stored as sent: {got}");
    }
    s.stop().await
}

async fn bad_codes_are_422_with_the_element_path(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let first = "Condition.code.coding[0].code";
    // Unknown, an ICD-10 chapter, an ICD-10 block, an ICPC-2 chapter letter, an undotted code.
    for (system, code) in [
        (ICD10, "Z99.99"),
        (ICD10, "X"),
        (ICD10, "J40-J47"),
        (ICPC2, "K"),
        (ICD10, "J450"),
    ] {
        expect_rejected(&s, &condition(json!([coding(system, code)])), first, code).await?;
    }
    let second = condition(json!([coding(ICPC2, "K86"), coding(ICD10, "Z99.99")]));
    expect_rejected(&s, &second, "Condition.code.coding[1].code", "Z99.99").await?;
    let mut in_extension = condition(json!([coding(ICD10, "J45.0")]));
    in_extension["extension"] = json!([{
        "url": "http://example.org/fhir/StructureDefinition/cause",
        "valueCoding": coding(ICD10, "Z99.99"),
    }]);
    expect_rejected(
        &s,
        &in_extension,
        "Condition.extension[0].valueCoding.code",
        "Z99.99",
    )
    .await?;
    let mut in_contained = condition(json!([coding(ICD10, "J45.0")]));
    in_contained["contained"] = json!([{
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [coding(ICD10, "J45.0"), coding(ICPC2, "K")]},
    }]);
    in_contained["evidence"] = json!([{"detail": [{"reference": "#o1"}]}]);
    expect_rejected(
        &s,
        &in_contained,
        "Condition.contained[0].code.coding[1].code",
        "K",
    )
    .await?;
    // Every bad coding gets its issue.
    let two = condition(json!([coding(ICD10, "Z99.99"), coding(ICPC2, "K")]));
    let (status, outcome) = post(&s, &two).await?;
    ensure!(status == 422, "{status} {outcome}");
    let expressions: Vec<&str> = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    ensure!(
        expressions
            == [
                "Condition.code.coding[0].code",
                "Condition.code.coding[1].code"
            ],
        "{outcome}"
    );
    // Nothing was stored.
    let bundle = s.get_ok("Condition?_total=accurate").await?;
    ensure!(bundle["total"] == 0, "rejected writes left data: {bundle}");
    s.stop().await
}

async fn a_wrong_display_is_a_warning(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let body = condition(json!([
        {"system": ICD10, "code": "J45.0", "display": "Broken leg"}
    ]));
    let (status, got) = post(&s, &body).await?;
    ensure!(status == 201, "{status} {got}");
    ensure!(
        got["resourceType"] == "Condition",
        "the resource by default: {got}"
    );
    let (status, outcome) = s
        .send_with(
            Method::POST,
            "Condition",
            Some(&body),
            &[("prefer", "return=OperationOutcome")],
        )
        .await?;
    ensure!(status == 201, "{status} {outcome}");
    ensure!(outcome["resourceType"] == "OperationOutcome", "{outcome}");
    let issues = outcome["issue"].as_array().context("issues")?;
    let warning = issues
        .iter()
        .find(|i| i["severity"] == "warning")
        .with_context(|| format!("no warning: {outcome}"))?;
    ensure!(
        warning["expression"][0] == "Condition.code.coding[0].display",
        "{warning}"
    );
    let diagnostics = warning["diagnostics"].as_str().unwrap_or_default();
    ensure!(
        diagnostics.contains("Broken leg") && diagnostics.contains("Predominantly allergic asthma"),
        "{diagnostics}"
    );
    ensure!(
        issues
            .iter()
            .any(|i| i["severity"] == "information" && i["code"] == "informational"),
        "{outcome}"
    );
    // A clean write asked the same way gets an outcome without warnings.
    let clean = condition(json!([coding(ICD10, "J45.0")]));
    let (status, outcome) = s
        .send_with(
            Method::POST,
            "Condition",
            Some(&clean),
            &[("prefer", "return=OperationOutcome")],
        )
        .await?;
    ensure!(status == 201, "{status} {outcome}");
    ensure!(
        outcome["issue"]
            .as_array()
            .is_some_and(|i| i.len() == 1 && i[0]["severity"] == "information"),
        "{outcome}"
    );
    s.stop().await
}

async fn an_update_with_a_bad_code_changes_nothing(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let created = s
        .create(&condition(json!([coding(ICD10, "J45.0")])))
        .await?;
    let id = created["id"].as_str().context("id")?.to_owned();
    let mut bad = condition(json!([coding(ICD10, "Z99.99")]));
    bad["id"] = json!(id);
    let (status, outcome) = s
        .send(Method::PUT, &format!("Condition/{id}"), Some(&bad))
        .await?;
    ensure!(status == 422, "{status} {outcome}");
    ensure!(
        outcome["issue"][0]["expression"][0] == "Condition.code.coding[0].code",
        "{outcome}"
    );
    let now = s.get_ok(&format!("Condition/{id}")).await?;
    ensure!(now["meta"]["versionId"] == "1", "version moved: {now}");
    ensure!(now["code"] == created["code"], "code changed: {now}");
    // A good update still goes through, as version 2.
    let mut good = condition(json!([coding(ICPC2, "R96")]));
    good["id"] = json!(id);
    let (status, got) = s
        .send(Method::PUT, &format!("Condition/{id}"), Some(&good))
        .await?;
    ensure!(status == 200, "{status} {got}");
    ensure!(got["meta"]["versionId"] == "2", "{got}");
    s.stop().await
}

async fn readyz_reports_the_policy(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let root = s.base.trim_end_matches("/fhir");
    let ready: Value = s
        .http
        .get(format!("{root}/readyz"))
        .send()
        .await?
        .json()
        .await?;
    let systems = ready["terminology"].as_array().context("terminology")?;
    let icd10 = systems
        .iter()
        .find(|x| x["system"] == ICD10)
        .with_context(|| format!("ICD-10 not listed: {ready}"))?;
    ensure!(
        icd10["check"] == "reject"
            && icd10["undotted"] == "reject"
            && icd10["versionMismatch"] == "warn"
            && icd10["version"] == "2019",
        "{icd10}"
    );
    ensure!(
        systems
            .iter()
            .all(|x| x["check"] == "reject" && x["concepts"].as_u64().is_some_and(|n| n > 0)),
        "{ready}"
    );
    s.stop().await
}
