//! The CapabilityStatement against what the server does: every interaction, operation and
//! search parameter it lists is served, and what it does not list is refused.

use anyhow::{Result, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![capability_statement_states_what_is_served];

/// Values a listed parameter takes, by its type (one must be accepted). A composite's
/// form is in its documentation: `[key]$[value]`.
fn advertised_values(p: &Value) -> Vec<String> {
    let doc = p["documentation"].as_str().unwrap_or_default();
    let name = p["name"].as_str().unwrap_or_default();
    let values: &[&str] = match p["type"].as_str().unwrap_or_default() {
        // `_sort` takes parameter names, not values.
        _ if name == "_sort" => &["-_lastUpdated,_id"],
        // `R`: AuditEvent.action takes only C R U D E.
        "token" => &["x", "R"],
        "string" => &["x"],
        "date" => &["ge2000-01-01"],
        // A bare id: some parameters follow one target type only (`patient`).
        "reference" => &["x"],
        "uri" => &["http://example.org/x"],
        "quantity" | "number" => &["5.4"],
        "composite" => {
            let key = if doc.contains("Composite of a reference") {
                "DocumentReference/x"
            } else {
                "urn:s|x"
            };
            let value = if doc.contains("and a quantity") {
                "gt5"
            } else if doc.contains("and a date") {
                "ge2000"
            } else {
                "x"
            };
            return vec![format!("{key}${value}")];
        }
        _ => &[],
    };
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// The modifiers a listed parameter takes (R4 has no element for them: the documentation
/// says `Modifiers: a, b.`), each with a value it accepts.
fn advertised_modifiers(p: &Value, plain: &str) -> Vec<(String, String)> {
    let doc = p["documentation"].as_str().unwrap_or_default();
    let listed = doc
        .strip_prefix("Modifiers: ")
        .and_then(|d| d.split('.').next())
        .unwrap_or_default();
    listed
        .split(", ")
        .filter(|m| !m.is_empty())
        .map(|m| {
            let v = match m {
                "missing" => "true",
                "of-type" => "urn:t|MR|x",
                "above" | "below" => "http://hl7.org/fhir/sid/icd-10|J45",
                "identifier" => "urn:s|x",
                _ => plain,
            };
            (m.to_owned(), v.to_owned())
        })
        .collect()
}

/// Target types tried for the `[type]` modifier of a reference parameter.
const TARGET_TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "Organization",
    "Encounter",
    "Location",
    "Group",
    "Device",
    "PractitionerRole",
    "RelatedPerson",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "EpisodeOfCare",
    "CareTeam",
    "ServiceRequest",
    "Medication",
    "Specimen",
    "ImagingStudy",
    "DocumentReference",
    "Procedure",
];

/// Whether an answer says the route does not exist or the method is not served there.
fn unrouted(status: u16, body: &Value) -> bool {
    let text = body.to_string();
    status == 405 || status == 501 || (status == 404 && text.contains("no such endpoint"))
}

async fn capability_statement_states_what_is_served(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let strict = [("prefer", "handling=strict")];
    let cs = s.get_ok("metadata").await?;
    let rest = &cs["rest"][0];
    let resources = rest["resource"].as_array().cloned().unwrap_or_default();
    ensure!(resources.len() > 100, "{} resource types", resources.len());
    let mut searched = 0usize;
    for r in &resources {
        let rtype = r["type"].as_str().unwrap_or_default();
        // The audit log is the auditor's; everything else the system token's.
        let token = if rtype == "AuditEvent" {
            s.token_for("auditor", "user/AuditEvent.rs", None, None, 600)
        } else {
            s.system_token()
        };
        let interactions: Vec<&str> = r["interaction"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["code"].as_str()).collect())
            .unwrap_or_default();
        // Every listed interaction is routed for the type.
        let probes: &[(&str, Method, String, Option<Value>)] = &[
            (
                "search-type",
                Method::GET,
                format!("{rtype}?_count=1"),
                None,
            ),
            (
                "history-type",
                Method::GET,
                format!("{rtype}/_history?_count=1"),
                None,
            ),
            ("read", Method::GET, format!("{rtype}/cap-absent"), None),
            (
                "vread",
                Method::GET,
                format!("{rtype}/cap-absent/_history/1"),
                None,
            ),
            (
                "history-instance",
                Method::GET,
                format!("{rtype}/cap-absent/_history"),
                None,
            ),
            (
                "delete",
                Method::DELETE,
                format!("{rtype}/cap-absent"),
                None,
            ),
            (
                "update",
                Method::PUT,
                format!("{rtype}/cap-absent"),
                Some(json!({"resourceType": rtype, "id": "other-id"})),
            ),
            ("create", Method::POST, rtype.to_owned(), Some(json!({}))),
        ];
        for (code, method, path, body) in probes {
            let (status, answer) =
                call(&s, &token, method.clone(), path, body.as_ref(), &[]).await?;
            let listed = interactions.contains(code);
            if listed {
                ensure!(
                    !unrouted(status, &answer) && status < 500,
                    "{rtype}: {code} is listed but {method} {path} answered {status}: {answer}"
                );
                if matches!(*code, "search-type" | "history-type") {
                    ensure!(status == 200, "{code} {path} answered {status}: {answer}");
                }
            } else {
                ensure!(
                    (400..500).contains(&status),
                    "{rtype}: {code} is not listed but {method} {path} answered {status}"
                );
            }
        }
        if interactions.contains(&"patch") {
            let resp = s
                .req(Method::PATCH, &format!("{rtype}/cap-absent"))
                .header("content-type", "application/json-patch+json")
                .body("[]")
                .send()
                .await?;
            let status = resp.status().as_u16();
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            ensure!(
                !unrouted(status, &answer) && status < 500,
                "{rtype}: patch is listed but answered {status}: {answer}"
            );
        }
        // Every listed operation is routed.
        for op in r["operation"].as_array().into_iter().flatten() {
            let name = op["name"].as_str().unwrap_or_default();
            let (method, path, body) = match name {
                "validate" => (
                    Method::POST,
                    format!("{rtype}/$validate"),
                    Some(json!({"resourceType": rtype})),
                ),
                "everything" => (Method::GET, format!("{rtype}/cap-absent/$everything"), None),
                // Instance-level operations.
                "meta" | "meta-add" | "meta-delete" => (
                    Method::POST,
                    format!("{rtype}/cap-absent/${name}"),
                    Some(json!({"resourceType": "Parameters"})),
                ),
                _ => (Method::GET, format!("{rtype}/${name}"), None),
            };
            let (status, answer) =
                call(&s, &token, method.clone(), &path, body.as_ref(), &[]).await?;
            ensure!(
                !unrouted(status, &answer) && status < 500,
                "{rtype}: operation {name} is listed but {method} {path} answered {status}: {answer}"
            );
        }
        // An operation nobody lists is not served.
        let (status, _) = call(
            &s,
            &token,
            Method::GET,
            &format!("{rtype}/$fhirgate-unlisted"),
            None,
            &[],
        )
        .await?;
        ensure!(
            status == 404 || status == 400,
            "{rtype}/$fhirgate-unlisted answered {status}"
        );
        if !interactions.contains(&"search-type") {
            continue;
        }
        // Every listed search parameter is understood: strict handling refuses what is not.
        for p in r["searchParam"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            let kind = p["type"].as_str().unwrap_or_default();
            let candidates = advertised_values(p);
            ensure!(
                !candidates.is_empty(),
                "{rtype}.{name}: unknown type {kind}"
            );
            // Every modifier it lists is honoured too.
            for (m, v) in advertised_modifiers(p, &candidates[0]) {
                // `[type]`: a target type; one of the usual ones fits each parameter.
                let names: Vec<&str> = if m == "[type]" {
                    TARGET_TYPES.to_vec()
                } else {
                    vec![m.as_str()]
                };
                let mut answers = Vec::new();
                for m in names {
                    let path = format!("{rtype}?{name}:{m}={}&_count=1", urlencode(&v));
                    let (status, answer) =
                        call(&s, &token, Method::GET, &path, None, &strict).await?;
                    searched += 1;
                    if status == 200 {
                        answers.clear();
                        break;
                    }
                    answers.push(format!("{path}: {status} {answer}"));
                }
                ensure!(answers.is_empty(), "{}", answers.join("; "));
            }
            let mut answers = Vec::new();
            for value in candidates {
                let path = format!("{rtype}?{name}={}&_count=1", urlencode(&value));
                let (status, answer) = call(&s, &token, Method::GET, &path, None, &strict).await?;
                searched += 1;
                // An ignored parameter is reported as an outcome entry (lenient) or refused.
                let ignored = answer["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["search"]["mode"] == "outcome");
                if status == 200 && !ignored {
                    answers.clear();
                    break;
                }
                answers.push(format!("{path} → {status} {answer}"));
            }
            ensure!(
                answers.is_empty(),
                "{rtype}.{name} ({kind}) is listed but not served: {}",
                answers.join("; ")
            );
        }
        let (status, _) = call(
            &s,
            &token,
            Method::GET,
            &format!("{rtype}?fhirgate-unlisted=x"),
            None,
            &strict,
        )
        .await?;
        ensure!(
            status == 400,
            "{rtype}?fhirgate-unlisted under strict handling answered {status}"
        );
    }
    ensure!(searched > 500, "only {searched} parameters searched");
    // System-level interactions.
    let system: Vec<&str> = rest["interaction"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["code"].as_str()).collect())
        .unwrap_or_default();
    for code in ["transaction", "batch"] {
        ensure!(system.contains(&code), "{code} is not listed");
        let bundle = json!({"resourceType": "Bundle", "type": code});
        let (status, answer) = s.send(Method::POST, "", Some(&bundle)).await?;
        ensure!(status == 200, "an empty {code} answered {status}: {answer}");
    }
    ensure!(system.contains(&"history-system"));
    s.get_ok("_history?_count=1").await?;
    s.stop().await
}

/// Sends a request as `token` with extra headers; returns the status and the parsed body.
async fn call(
    s: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value)> {
    let mut req = s
        .http
        .request(method, format!("{}/{}", s.base, path))
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    TestServer::exchange(req, body).await
}

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
