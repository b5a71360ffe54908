//! The audit log as FHIR AuditEvent, shaped after IHE BALP (Basic Audit Log Patterns), for
//! the `auditor` role: read by id and search by `patient`, `agent`, `date` and `action`.
//! AuditEvents are the log itself: nobody creates, changes or deletes one through the API.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use mappings::dates::format_instant;
use serde_json::{Value, json};
use store::audit::{AuditCursor, AuditFilter, StoredAudit};

use crate::AppState;
use crate::auth::Principal;
use crate::outcome::ApiError;
use crate::rest::{Ctx, json_response};

/// The id of a record: `shard-chain-seq`.
fn id_of(r: &StoredAudit) -> String {
    format!("{}-{}-{}", r.shard, r.chain, r.seq)
}

/// BALP's action code of an interaction.
fn action(interaction: &str) -> &'static str {
    match interaction {
        "create" => "C",
        "read" | "vread" | "history-instance" => "R",
        "update" => "U",
        "delete" => "D",
        _ => "E",
    }
}

/// The interactions of an action code (the inverse of [`action`], for search).
fn interactions(code: &str) -> Option<Vec<String>> {
    let list: &[&str] = match code {
        "C" => &["create"],
        "R" => &["read", "vread", "history-instance"],
        "U" => &["update"],
        "D" => &["delete"],
        "E" => &[
            "search-type",
            "history-type",
            "transaction",
            "batch",
            "operation",
            "capabilities",
            "smart-configuration",
            "batch/transaction",
            "unknown",
        ],
        _ => return None,
    };
    Some(list.iter().map(|s| (*s).to_owned()).collect())
}

/// A record as a BALP-shaped AuditEvent.
pub(crate) fn render(r: &StoredAudit) -> Value {
    let a = &r.record;
    let outcome = match a.outcome {
        200..=399 => "0",
        400..=499 => "4",
        _ => "8",
    };
    let mut agents = vec![json!({
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
        "requestor": false,
        "who": {"display": a.user_agent.clone().unwrap_or_default()},
        "network": {"address": a.client_ip.clone().unwrap_or_default(), "type": "2"}
    })];
    if let Some(subject) = &a.subject {
        let mut user = json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
            "requestor": true,
            "who": {"identifier": {"value": subject}},
        });
        if let Some(role) = &a.role {
            user["role"] = json!([{"text": role}]);
        }
        if let Some(p) = &a.practitioner {
            user["altId"] = json!(p);
        }
        agents.push(user);
    }
    agents.push(json!({
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152", "display": "Destination Role ID"}]},
        "requestor": false,
        "who": {"display": "fhirgate"},
    }));
    let mut entities: Vec<Value> = a
        .patients
        .iter()
        .map(|p| {
            json!({
                "what": {"reference": format!("Patient/{p}")},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
            })
        })
        .collect();
    if let (Some(t), Some(id)) = (&a.resource_type, &a.resource_id) {
        let what = match a.version {
            Some(v) => format!("{t}/{id}/_history/{v}"),
            None => format!("{t}/{id}"),
        };
        entities.push(json!({
            "what": {"reference": what},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}
        }));
    }
    if let Some(q) = &a.query {
        entities.push(json!({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"},
            "query": base64(q.as_bytes()),
        }));
    }
    for e in &a.entries {
        entities.push(json!({"description": e}));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": id_of(r),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": a.interaction}],
        "action": action(&a.interaction),
        "recorded": format_instant(r.at.timestamp_micros()),
        "outcome": outcome,
        "outcomeDesc": format!("HTTP {} {} {}", a.outcome, a.method, a.path),
        "agent": agents,
        "source": {
            "observer": {"display": "fhirgate"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        },
    });
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    if let Some(reason) = &a.break_glass {
        event["purposeOfEvent"] = json!([{
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass"}],
            "text": reason
        }]);
    }
    if let Some(id) = &a.request_id {
        event["extension"] = json!([{"url": "https://fhirgate.dev/fhir/StructureDefinition/request-id", "valueString": id}]);
    }
    event
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Requests on `AuditEvent`: the auditor reads; nobody writes.
pub(crate) async fn handle(
    state: &AppState,
    principal: &Principal,
    method: &Method,
    rest: &[&str],
    pairs: &[(String, String)],
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    if *method != Method::GET {
        ctx.audit.interaction = "write-refused".into();
        return Err(ApiError::MethodNotAllowed(
            "AuditEvents are the audit log: nobody creates, changes or deletes them".into(),
        ));
    }
    if principal.role != "auditor" {
        return Err(ApiError::Forbidden(
            "the audit log is read by the auditor role".into(),
        ));
    }
    match rest {
        [] => {
            ctx.audit.interaction = "search-type".into();
            search(state, pairs, ctx).await
        }
        [id] => {
            ctx.audit.interaction = "read".into();
            ctx.audit.resource_id = Some((*id).to_owned());
            let mut parts = id.splitn(3, '-');
            let place = (|| {
                Some((
                    parts.next()?.parse::<usize>().ok()?,
                    parts.next()?.parse::<i32>().ok()?,
                    parts.next()?.parse::<i64>().ok()?,
                ))
            })();
            let not_found = || ApiError::NotFound(format!("AuditEvent/{id} is not known"));
            let (shard, chain, seq) = place.ok_or_else(not_found)?;
            let record = state
                .store
                .audit_record(shard, chain, seq)
                .await?
                .ok_or_else(not_found)?;
            Ok(json_response(StatusCode::OK, render(&record).to_string()))
        }
        _ => Err(ApiError::NotFound("no such AuditEvent endpoint".into())),
    }
}

async fn search(
    state: &AppState,
    pairs: &[(String, String)],
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let mut filter = AuditFilter::default();
    let mut count = state.config.limits.default_count;
    for (k, v) in pairs {
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(ApiError::bad(
                k.as_str(),
                format!(
                    "a search parameter may not hold the control character U+{:04X}",
                    u32::from(c)
                ),
            ));
        }
        match k.as_str() {
            "patient" => filter.patient = Some(v.trim_start_matches("Patient/").to_owned()),
            "agent" => filter.agent = Some(v.clone()),
            "action" => {
                filter.interactions = Some(interactions(v).ok_or_else(|| {
                    ApiError::bad("action", format!("{v:?} is not one of C R U D E"))
                })?)
            }
            "date" => {
                let (prefix, value) = match v.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &v[2..]),
                    _ => ("eq", v.as_str()),
                };
                let (low, high) = mappings::dates::parse_range(value)
                    .ok_or_else(|| ApiError::bad("date", format!("{value:?} is not a date")))?;
                let at = |micros: i64| chrono::DateTime::from_timestamp_micros(micros);
                match prefix {
                    "ge" | "gt" => filter.from = at(if prefix == "gt" { high + 1 } else { low }),
                    "le" | "lt" => filter.to = at(if prefix == "le" { high + 1 } else { low }),
                    _ => {
                        filter.from = at(low);
                        filter.to = at(high + 1);
                    }
                }
            }
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad("_count", format!("{v:?} is not a whole number")))?
                    .clamp(1, state.config.limits.max_count)
            }
            "_cursor" => {
                filter.before = Some(
                    v.parse::<AuditCursor>()
                        .map_err(|_| ApiError::bad("_cursor", "invalid paging cursor"))?,
                )
            }
            "_format" => {}
            other => {
                return Err(ApiError::bad(
                    other,
                    "AuditEvent is searched by patient, agent, date and action",
                ));
            }
        }
    }
    let (items, next) = state.store.audit_search(&filter, count).await?;
    let entries: Vec<Value> = items
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{}/AuditEvent/{}", ctx.base, id_of(r)),
                "resource": render(r),
                "search": {"mode": "match"}
            })
        })
        .collect();
    let keep: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k != "_cursor")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let encode = |extra: Option<String>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(keep.iter().copied());
        if let Some(c) = extra {
            s.append_pair("_cursor", &c);
        }
        s.finish()
    };
    let mut links = vec![
        json!({"relation": "self", "url": format!("{}/AuditEvent?{}", ctx.base, encode(None))}),
    ];
    if let Some(c) = next {
        links.push(json!({"relation": "next", "url": format!("{}/AuditEvent?{}", ctx.base, encode(Some(c.to_string())))}));
    }
    let bundle =
        json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries});
    Ok(json_response(StatusCode::OK, bundle.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"name=Smith&_count=2"),
            "bmFtZT1TbWl0aCZfY291bnQ9Mg=="
        );
    }

    #[test]
    fn actions_round_trip() {
        for code in ["C", "R", "U", "D", "E"] {
            for i in interactions(code).unwrap_or_default() {
                assert_eq!(action(&i), code, "{i}");
            }
        }
        assert_eq!(interactions("X"), None);
    }
}
