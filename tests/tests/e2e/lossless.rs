//! Every shared example goes through the real server and comes back as the same JSON value,
//! as JSON and as XML, and written back as XML, again the same.

use anyhow::{Result, bail, ensure};
use futures_util::StreamExt;
use serde_json::Value;
use tests::{TestServer, shared_dir, without_server_meta};

use crate::Env;

crate::tests![
    every_example_round_trips_through_the_server,
    decimals_extensions_ids_and_contained_survive
];

async fn every_example_round_trips_through_the_server(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let dir = shared_dir().join("fhir-data/r4-examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    ensure!(
        files.len() > 500,
        "expected the shared examples in {}",
        dir.display()
    );
    let results: Vec<Result<()>> = futures_util::stream::iter(files.iter())
        .map(|path| {
            let s = &s;
            async move {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(path)?;
                let original: Value = serde_json::from_str(&text)?;
                let rtype = original["resourceType"].as_str().unwrap_or_default();
                let id = original["id"].as_str().unwrap_or_default();
                let url = format!("{}/{rtype}/{id}", s.base);
                let resp = s
                    .http
                    .put(&url)
                    .bearer_auth(s.system_token())
                    .header("content-type", "application/fhir+json")
                    .body(text.clone())
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let body: Value = resp.json().await?;
                // Examples that break a rule the server enforces, with where it says so:
                // a missing linkId, and an ICD-10 code ("123457") that does not exist.
                let rejected_at = match name {
                    "Questionnaire-qs1.json" => Some("linkId"),
                    "Claim-100153.json" => {
                        Some("Claim.diagnosis[0].diagnosisCodeableConcept.coding[0].code")
                    }
                    _ => None,
                };
                if let Some(at) = rejected_at {
                    ensure!(
                        status == 422 && body["resourceType"] == "OperationOutcome",
                        "{name}: {status}"
                    );
                    ensure!(
                        body["issue"][0]["expression"][0]
                            .as_str()
                            .is_some_and(|e| e.ends_with(at)),
                        "{name}: {body}"
                    );
                    return Ok(());
                }
                // AuditEvents are the server's own log, never written through the API; their
                // mapping round trip is proven without the server (mappings::tests).
                if name.starts_with("AuditEvent-") {
                    ensure!(status == 405, "{name}: {status}");
                    return Ok(());
                }
                if status != 201 {
                    bail!("{name}: PUT answered {status}: {body}");
                }
                let resp = s
                    .http
                    .get(&url)
                    .bearer_auth(s.system_token())
                    .send()
                    .await?;
                ensure!(resp.status() == 200, "{name}: read {}", resp.status());
                // Compare the raw text's value, so number text (1.50 vs 1.5) counts.
                let back: Value = serde_json::from_str(&resp.text().await?)?;
                ensure!(back["meta"]["versionId"] == "1", "{name}: versionId");
                ensure!(
                    without_server_meta(back) == without_server_meta(original.clone()),
                    "{name}: read back differs"
                );
                // The same resource as FHIR XML (by `_format`, or by `Accept`), back to the
                // same JSON value; then written back as XML, read as JSON: the same again.
                let by_accept = name.len() % 2 == 0;
                let req = if by_accept {
                    s.http.get(&url).header("accept", "application/fhir+xml")
                } else {
                    s.http.get(format!("{url}?_format=xml"))
                };
                let resp = req.bearer_auth(s.system_token()).send().await?;
                ensure!(resp.status() == 200, "{name}: XML read {}", resp.status());
                let ctype = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                ensure!(ctype.starts_with("application/fhir+xml"), "{name}: {ctype}");
                let xml = resp.bytes().await?;
                let from_xml = mappings::xml::from_xml(&xml, 100)
                    .map_err(|e| anyhow::anyhow!("{name}: the server's XML does not read: {e}"))?;
                ensure!(
                    without_server_meta(Value::Object(from_xml))
                        == without_server_meta(original.clone()),
                    "{name}: the XML differs"
                );
                let resp = s
                    .http
                    .put(&url)
                    .bearer_auth(s.system_token())
                    .header("content-type", "application/fhir+xml")
                    .body(xml)
                    .send()
                    .await?;
                ensure!(resp.status() == 200, "{name}: XML update {}", resp.status());
                let resp = s
                    .http
                    .get(&url)
                    .bearer_auth(s.system_token())
                    .send()
                    .await?;
                let back: Value = serde_json::from_str(&resp.text().await?)?;
                ensure!(
                    back["meta"]["versionId"] == "2",
                    "{name}: versionId after the XML update"
                );
                ensure!(
                    without_server_meta(back) == without_server_meta(original),
                    "{name}: written as XML, read back differs"
                );
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    ensure!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    s.stop().await
}

/// The hard cases of a lossless round trip, named: decimal text (`1.50`, `0.00001`, 30
/// digits, an exponent), primitive extensions beside nulls (`_given: [null, {…}]`), element
/// ids, contained resources and extensions the mapping does not know — in JSON and in XML.
async fn decimals_extensions_ids_and_contained_survive(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    // Text, so that the numbers are sent exactly as written.
    let text = r##"{"resourceType":"Observation","status":"final",
      "contained":[{"resourceType":"Practitioner","id":"p1","name":[{"family":"Inside"}]}],
      "extension":[{"url":"http://example.org/unknown","valueDecimal":0.00001}],
      "code":{"id":"c1","coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"pulse"},
      "performer":[{"reference":"#p1"}],
      "valueQuantity":{"value":1.50,"unit":"/min"},
      "component":[
        {"code":{"text":"long"},"valueQuantity":{"value":123456789012345678901234567890.123}},
        {"code":{"text":"exponent"},"valueQuantity":{"value":1.0e2}},
        {"code":{"text":"small"},"valueQuantity":{"value":0.00001}}],
      "note":[{"text":"a"}]}"##;
    let (status, created) = s
        .send_with(
            reqwest::Method::POST,
            "Observation",
            Some(&serde_json::from_str(text)?),
            &[],
        )
        .await?;
    ensure!(status == 201, "{status} {created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let patient_text = r#"{"resourceType":"Patient","name":[{"id":"n1","given":[null,"Marie"],
      "_given":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier","valueCode":"IN"}]},null],
      "family":"Extended"}],"birthDate":"1970","_birthDate":{"id":"b1","extension":[{"url":"http://example.org/x","valueString":"y"}]}}"#;
    let (status, patient) = s
        .send_with(
            reqwest::Method::POST,
            "Patient",
            Some(&serde_json::from_str(patient_text)?),
            &[],
        )
        .await?;
    ensure!(status == 201, "{status} {patient}");
    let pid = patient["id"].as_str().unwrap_or_default().to_owned();
    for (path, original) in [
        (format!("Observation/{id}"), text),
        (format!("Patient/{pid}"), patient_text),
    ] {
        let resp = s.req(reqwest::Method::GET, &path).send().await?;
        let body = resp.text().await?;
        let back: Value = serde_json::from_str(&body)?;
        let original: Value = serde_json::from_str(original)?;
        let mut back = without_server_meta(back);
        if let Some(o) = back.as_object_mut() {
            o.shift_remove("id");
        }
        ensure!(back == without_server_meta(original), "{path}: {body}");
        let xml = s
            .req(reqwest::Method::GET, &format!("{path}?_format=xml"))
            .send()
            .await?
            .text()
            .await?;
        if path.starts_with("Observation") {
            // The number text itself, in both formats (an exponent keeps its digits; serde_json
            // writes its marker as `e+`).
            for digits in [
                "1.50",
                "0.00001",
                "123456789012345678901234567890.123",
                "1.0e+2",
            ] {
                ensure!(body.contains(digits), "JSON lost {digits}: {body}");
                ensure!(
                    xml.contains(&format!("value=\"{digits}\"")),
                    "XML lost {digits}: {xml}"
                );
            }
        } else {
            ensure!(
                xml.contains("<given id=")
                    || xml.contains("<given>")
                    || xml.contains("<given><extension"),
                "the extension-only given: {xml}"
            );
        }
    }
    s.stop().await
}
