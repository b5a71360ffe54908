//! `$meta`, `$meta-add` and `$meta-delete` on an instance
//! (<http://hl7.org/fhir/R4/resource-operation-meta.html> and its siblings).
//!
//! `$meta` (GET or POST) answers a Parameters whose `return` is the Meta of the current (or a
//! named) version; it needs read rights and is audited as a read. `$meta-add` and
//! `$meta-delete` (POST, a Parameters with `meta`) merge or take out profiles (by URL), tags
//! and security labels (by system and code) and need update rights.
//!
//! Versioning: DSTU2 said these operations change the meta in place, without a new version;
//! R4's OperationDefinitions dropped that note and say nothing. Here a change of the meta is
//! written as a new version, like any update, for three reasons: stored versions are never
//! rewritten (history and its hash-chained audit stay true), the `_tag`/`_security`/`_profile`
//! index is maintained by writes, and security labels then apply from a known version on. A
//! call that changes nothing (every label already there, or none of them there) writes
//! nothing and answers the current meta. The write commits its audit record like an update.
//!
//! Type- and system-level `$meta` (the labels in use across resources) are not served: they
//! would need a scan of the index tables on every shard under the caller's access.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::outcome::ApiError;
use crate::rest::{
    Ctx, if_match, json_response, parse_checked, read_current, render, update_parsed,
};

/// One of the three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaOp {
    /// `$meta`.
    Read,
    /// `$meta-add`.
    Add,
    /// `$meta-delete`.
    Delete,
}

impl MetaOp {
    /// The operation a path segment names (`$meta-add`, or `%24meta-add` as sent).
    pub(crate) fn parse(segment: &str) -> Option<MetaOp> {
        let name = segment
            .strip_prefix('$')
            .or_else(|| segment.strip_prefix("%24"))?;
        match name {
            "meta" => Some(MetaOp::Read),
            "meta-add" => Some(MetaOp::Add),
            "meta-delete" => Some(MetaOp::Delete),
            _ => None,
        }
    }

    /// Its name, with the `$`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            MetaOp::Read => "$meta",
            MetaOp::Add => "$meta-add",
            MetaOp::Delete => "$meta-delete",
        }
    }
}

/// The answer: a Parameters with the Meta in `return`.
fn answer(meta: &Value) -> Response {
    let meta = if meta.is_object() {
        meta.clone()
    } else {
        json!({})
    };
    json_response(
        StatusCode::OK,
        json!({"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": meta}]})
            .to_string(),
    )
}

/// `$meta` of the current version, or of `version`.
pub(crate) async fn read(
    state: &AppState,
    rtype: &str,
    id: &str,
    version: Option<u64>,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let stored = match version {
        None => state.store.read(rtype, id, &ctx.access).await?,
        Some(v) => state.store.vread(rtype, id, v, &ctx.access).await?,
    }
    .ok_or_else(|| ApiError::NotFound(format!("{rtype}/{id} is not known")))?;
    ctx.audit.version = Some(stored.version);
    if let Some(p) = stored.entity.as_ref().and_then(|e| e.patient.clone()) {
        ctx.audit.patients = vec![p];
    }
    let resource = render(&stored).ok_or_else(|| {
        ApiError::Gone(format!(
            "{rtype}/{id} was deleted (version {})",
            stored.version
        ))
    })?;
    Ok(answer(&resource["meta"]))
}

/// The `meta` parameter of a `$meta-add` or `$meta-delete` body.
fn meta_parameter(
    state: &AppState,
    op: MetaOp,
    bytes: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    let parameters = parse_checked(state, "Parameters", bytes)?;
    let list = parameters
        .object()
        .get("parameter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let metas: Vec<&Value> = list
        .iter()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some("meta"))
        .collect();
    match metas.as_slice() {
        [one] => match one.get("valueMeta") {
            Some(Value::Object(meta)) => Ok(meta.clone()),
            _ => Err(ApiError::bad(
                "Parameters.parameter",
                format!("the meta parameter of {} is a valueMeta", op.name()),
            )),
        },
        [] => Err(ApiError::bad(
            "Parameters.parameter",
            format!(
                "{} takes a Parameters with one parameter named meta",
                op.name()
            ),
        )),
        _ => Err(ApiError::bad(
            "Parameters.parameter",
            format!(
                "{} takes one meta parameter, not {}",
                op.name(),
                metas.len()
            ),
        )),
    }
}

/// Whether two items of `key` (`profile`, `tag`, `security`) are the same label: profiles by
/// URL, codings by system and code (version and display do not count).
fn same(key: &str, a: &Value, b: &Value) -> bool {
    if key == "profile" {
        return a == b;
    }
    a.get("system") == b.get("system") && a.get("code") == b.get("code")
}

/// Adds (or deletes) the labels of `given` to (from) `meta`; whether anything changed.
fn merge(meta: &mut Map<String, Value>, given: &Map<String, Value>, op: MetaOp) -> bool {
    let mut changed = false;
    for key in ["profile", "tag", "security"] {
        let Some(Value::Array(items)) = given.get(key) else {
            continue;
        };
        let mut list = match meta.shift_remove(key) {
            Some(Value::Array(l)) => l,
            _ => Vec::new(),
        };
        for item in items {
            let at = list.iter().position(|x| same(key, x, item));
            match (op, at) {
                (MetaOp::Add, None) => {
                    list.push(item.clone());
                    changed = true;
                }
                (MetaOp::Delete, Some(i)) => {
                    list.remove(i);
                    changed = true;
                }
                _ => {}
            }
        }
        if !list.is_empty() {
            meta.insert(key.to_owned(), Value::Array(list));
        }
    }
    changed
}

/// `$meta-add` or `$meta-delete`: the labels merged into the current version, written as a
/// new version when they change it (see the module doc), under `If-Match` if given.
pub(crate) async fn change(
    state: &AppState,
    rtype: &str,
    id: &str,
    op: MetaOp,
    bytes: &[u8],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let given = meta_parameter(state, op, bytes)?;
    let (current, mut document) = read_current(state, rtype, id, ctx).await?;
    if let Some(v) = if_match(headers)?
        && v != current.version
    {
        return Err(ApiError::PreconditionFailed(format!(
            "version {v} is not the current version {}",
            current.version
        )));
    }
    ctx.audit.version = Some(current.version);
    let mut meta = match document.get("meta") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !merge(&mut meta, &given, op) {
        if let Some(p) = current.entity.as_ref().and_then(|e| e.patient.clone()) {
            ctx.audit.patients = vec![p];
        }
        return Ok(answer(&document["meta"]));
    }
    meta.shift_remove("versionId");
    meta.shift_remove("lastUpdated");
    if let Some(o) = document.as_object_mut() {
        if meta.is_empty() {
            o.shift_remove("meta");
        } else {
            o.insert("meta".into(), Value::Object(meta));
        }
    }
    let bytes = serde_json::to_vec(&document)
        .map_err(|e| ApiError::Internal(format!("re-encoding a resource: {e}")))?;
    let resource = parse_checked(state, rtype, &bytes)?;
    // The write pins the version read, so a concurrent update makes this one fail (412)
    // instead of being lost; the answer is the new version's meta, whatever `Prefer` says.
    let mut pinned = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", current.version)) {
        pinned.insert(header::IF_MATCH, v);
    }
    let written = update_parsed(state, rtype, id, resource, &pinned, ctx).await?;
    let (parts, body) = written.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("reading a written resource: {e}")))?;
    let stored: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Internal(format!("reading a written resource: {e}")))?;
    let mut response = answer(&stored["meta"]);
    for name in [header::ETAG, header::LAST_MODIFIED, header::LOCATION] {
        if let Some(v) = parts.headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(meta: Value, given: Value, op: MetaOp) -> (Value, bool) {
        let mut m = meta.as_object().cloned().unwrap_or_default();
        let changed = merge(&mut m, given.as_object().expect("an object"), op);
        (Value::Object(m), changed)
    }

    #[test]
    fn labels_are_sets() {
        let meta = json!({"versionId": "2", "profile": ["urn:p1"],
                          "tag": [{"system": "urn:s", "code": "a", "display": "A"}]});
        let (m, changed) = run(
            meta.clone(),
            json!({"profile": ["urn:p1", "urn:p2"],
                   "tag": [{"system": "urn:s", "code": "a", "display": "other"},
                           {"system": "urn:s", "code": "b"}],
                   "security": [{"system": "urn:v", "code": "R"}]}),
            MetaOp::Add,
        );
        assert!(changed);
        assert_eq!(m["profile"], json!(["urn:p1", "urn:p2"]));
        assert_eq!(m["tag"].as_array().map(Vec::len), Some(2), "{m}");
        assert_eq!(
            m["tag"][0]["display"], "A",
            "the existing tag stays as it was"
        );
        assert_eq!(m["security"][0]["code"], "R");
        let (_, changed) = run(
            m.clone(),
            json!({"tag": [{"system": "urn:s", "code": "a"}]}),
            MetaOp::Add,
        );
        assert!(!changed, "nothing new");
        let (after, changed) = run(
            m,
            json!({"tag": [{"system": "urn:s", "code": "a"}, {"system": "urn:s", "code": "zz"}],
                   "profile": ["urn:p1", "urn:p2"], "security": [{"system": "urn:v", "code": "R"}]}),
            MetaOp::Delete,
        );
        assert!(changed);
        assert_eq!(
            after,
            json!({"versionId": "2", "tag": [{"system": "urn:s", "code": "b"}]})
        );
        let (_, changed) = run(
            meta,
            json!({"tag": [{"system": "urn:x", "code": "a"}]}),
            MetaOp::Delete,
        );
        assert!(!changed, "nothing to delete");
    }

    #[test]
    fn operation_names() {
        assert_eq!(MetaOp::parse("$meta"), Some(MetaOp::Read));
        assert_eq!(MetaOp::parse("%24meta-add"), Some(MetaOp::Add));
        assert_eq!(MetaOp::parse("$meta-delete"), Some(MetaOp::Delete));
        assert_eq!(MetaOp::parse("meta"), None);
        assert_eq!(MetaOp::parse("$metaa"), None);
    }
}
