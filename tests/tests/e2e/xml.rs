//! FHIR XML in and out, negotiated by `Accept` and `_format`, and `_pretty`.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![every_interaction_speaks_xml];

const XML: &str = "application/fhir+xml";

/// Sends a request and returns status, content type and body text.
async fn exchange(req: reqwest::RequestBuilder) -> Result<(u16, String, String)> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, ctype, resp.text().await?))
}

fn from_xml(text: &str) -> Result<Value> {
    Ok(Value::Object(
        mappings::xml::from_xml(text.as_bytes(), 100)
            .map_err(|e| anyhow::anyhow!("{e}: {text}"))?,
    ))
}

async fn every_interaction_speaks_xml(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    // Create in XML, answered in XML.
    let patient = r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="Xml"/><given value="Ann"/><given value="Marie"/></name><gender value="female"/><birthDate value="1970-01-02"/></Patient>"#;
    let (status, ctype, body) = exchange(
        s.req(Method::POST, "Patient")
            .header("content-type", XML)
            .header("accept", XML)
            .body(patient),
    )
    .await?;
    ensure!(
        status == 201 && ctype.starts_with(XML),
        "create: {status} {ctype} {body}"
    );
    let created = from_xml(&body)?;
    ensure!(
        created["name"][0]["given"] == json!(["Ann", "Marie"]),
        "{created}"
    );
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    // Read as JSON: the same resource.
    let json_read = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(json_read["birthDate"] == "1970-01-02" && json_read["gender"] == "female");
    // vread, search and history by `_format`, each in XML.
    for path in [
        format!("Patient/{id}/_history/1?_format=xml"),
        "Patient?family=xml&_format=application/fhir%2Bxml".to_owned(),
        format!("Patient/{id}/_history?_format=xml"),
        "metadata?_format=xml".to_owned(),
    ] {
        let (status, ctype, body) = exchange(s.req(Method::GET, &path)).await?;
        ensure!(
            status == 200 && ctype.starts_with(XML),
            "{path}: {status} {ctype}"
        );
        let v = from_xml(&body)?;
        ensure!(v["resourceType"].is_string(), "{path}: {v}");
        if path.starts_with("Patient?") {
            ensure!(
                v["resourceType"] == "Bundle" && v["entry"][0]["resource"]["id"] == id.as_str(),
                "{v}"
            );
        }
    }
    // Update in XML with If-Match; conditional read answers 304 without a body.
    let updated = patient.replace("1970-01-02", "1970-01-03").replace(
        "<Patient xmlns=\"http://hl7.org/fhir\">",
        &format!("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/>"),
    );
    let (status, _, body) = exchange(
        s.req(Method::PUT, &format!("Patient/{id}"))
            .header("content-type", XML)
            .header("if-match", "W/\"1\"")
            .body(updated),
    )
    .await?;
    ensure!(status == 200, "update: {status} {body}");
    let (status, _, body) = exchange(
        s.req(Method::GET, &format!("Patient/{id}?_format=xml"))
            .header("if-none-match", "W/\"2\""),
    )
    .await?;
    ensure!(status == 304 && body.is_empty(), "304: {status} {body}");
    // A transaction in XML.
    let bundle = format!(
        r#"<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><fullUrl value="urn:uuid:11111111-1111-4111-8111-111111111111"/><resource><Observation><status value="final"/><code><text value="pulse"/></code><subject><reference value="Patient/{id}"/></subject><valueQuantity><value value="72.50"/><unit value="/min"/></valueQuantity></Observation></resource><request><method value="POST"/><url value="Observation"/></request></entry></Bundle>"#
    );
    let (status, ctype, body) = exchange(
        s.req(Method::POST, "")
            .header("content-type", XML)
            .header("accept", XML)
            .body(bundle),
    )
    .await?;
    ensure!(
        status == 200 && ctype.starts_with(XML),
        "transaction: {status} {body}"
    );
    let response = from_xml(&body)?;
    ensure!(response["type"] == "transaction-response", "{response}");
    let (_, found) = s
        .send(Method::GET, &format!("Observation?patient={id}"), None)
        .await?;
    ensure!(
        found["entry"][0]["resource"]["valueQuantity"]["value"]
            .as_number()
            .map(ToString::to_string)
            .as_deref()
            == Some("72.50"),
        "the decimal's text: {found}"
    );
    // Errors are OperationOutcomes in the negotiated format.
    let (status, ctype, body) = exchange(
        s.req(Method::POST, "Observation")
            .header("content-type", XML)
            .header("accept", XML)
            .body(r#"<Observation xmlns="http://hl7.org/fhir"><code><text value="x"/></code></Observation>"#),
    )
    .await?;
    ensure!(
        status == 422 && ctype.starts_with(XML),
        "missing status: {status} {ctype}"
    );
    let outcome = from_xml(&body)?;
    ensure!(
        outcome["resourceType"] == "OperationOutcome"
            && outcome["issue"][0]["expression"][0] == "Observation.status",
        "{outcome}"
    );
    // Bad XML: 400 with an OperationOutcome, whatever the trouble.
    for (what, text) in [
        (
            "not well-formed",
            "<Patient xmlns=\"http://hl7.org/fhir\"><name>",
        ),
        (
            "not FHIR",
            "<Patient><name><family value=\"x\"/></name></Patient>",
        ),
        (
            "a DTD",
            "<!DOCTYPE Patient [<!ENTITY a \"aaaaaaaaaa\">]><Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&a;\"/></Patient>",
        ),
        (
            "an unknown element",
            "<Patient xmlns=\"http://hl7.org/fhir\"><colour value=\"red\"/></Patient>",
        ),
        (
            "a bad boolean",
            "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"yes\"/></Patient>",
        ),
    ] {
        let (status, _, body) = exchange(
            s.req(Method::POST, "Patient")
                .header("content-type", XML)
                .body(text),
        )
        .await?;
        let outcome: Value = serde_json::from_str(&body)?;
        ensure!(
            (400..500).contains(&status) && outcome["resourceType"] == "OperationOutcome",
            "{what}: {status} {body}"
        );
    }
    // A narrative that is not well-formed XHTML is stored from JSON, but cannot be written
    // as XML: 406, with an OperationOutcome; JSON still reads it.
    let sloppy = s
        .create(
            &json!({"resourceType": "Patient", "text": {"status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>unclosed</div>"}}),
        )
        .await?;
    let sloppy_id = sloppy["id"].as_str().unwrap_or_default();
    let (status, _, body) =
        exchange(s.req(Method::GET, &format!("Patient/{sloppy_id}?_format=xml"))).await?;
    let outcome: Value = serde_json::from_str(&body)?;
    ensure!(
        status == 406 && outcome["resourceType"] == "OperationOutcome",
        "sloppy div: {status} {body}"
    );
    s.get_ok(&format!("Patient/{sloppy_id}")).await?;
    // `_pretty` indents JSON as well; compact by default.
    let (_, _, pretty) =
        exchange(s.req(Method::GET, &format!("Patient/{id}?_pretty=true"))).await?;
    let (_, _, compact) = exchange(s.req(Method::GET, &format!("Patient/{id}"))).await?;
    ensure!(
        pretty.contains("\n  ") && !compact.contains('\n'),
        "{pretty}"
    );
    ensure!(
        serde_json::from_str::<Value>(&pretty)? == serde_json::from_str::<Value>(&compact)?,
        "pretty is the same value"
    );
    let (_, _, pretty_xml) = exchange(s.req(
        Method::GET,
        &format!("Patient/{id}?_format=xml&_pretty=true"),
    ))
    .await?;
    ensure!(pretty_xml.contains("\n"), "{pretty_xml}");
    s.stop().await
}
