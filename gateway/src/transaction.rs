//! Batch and transaction Bundles, POSTed to the base (FHIR R4 http.html#transaction).
//!
//! A **batch** runs each entry as its own request (its own authorization and audit record)
//! and reports each outcome in its entry; one failing entry does not stop the others.
//!
//! A **transaction** is all or nothing. Every entry is checked first (authorization,
//! structure, required elements, codes); conditional entries are resolved under the
//! conditional-interaction locks; new ids are assigned and `urn:uuid` / conditional
//! references are rewritten; then every write goes to the store in one atomic
//! [`store::Store::transact`] (two-phase commit when the writes span shards). GET entries run
//! after the commit. Processing order follows the spec: DELETE, POST, PUT and PATCH, then
//! GET.
//!
//! A PATCH entry's `resource` is a `Parameters` (FHIRPath Patch) or a `Binary` whose `data`
//! is a JSON Patch (`contentType` `application/json-patch+json`). In a transaction it is
//! applied to the current version during planning (its `ifMatch` checked against it), and
//! written as an update pinned to that version, so it commits with the rest or not at all.

use std::collections::{BTreeSet, HashMap};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use mappings::dates::format_instant;
use mappings::entity::to_entity;
use mappings::json::{Resource, check_resource, is_valid_id};
use mappings::types::is_resource_type;
use mappings::{Issue, IssueCode};
use serde_json::{Map, Value, json};
use store::{Change, StoreError, Stored, WriteKind, Written};

use crate::AppState;
use crate::auth::{Action, Principal};
use crate::outcome::{ApiError, issue_value, outcome};
use crate::rest::{
    Ctx, PatchBody, apply_patch, conditional_match, json_response, match_key, prefer_outcome,
    render, run_request,
};
use crate::validate::check_codes;

/// The HTTP verb of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn parse(text: &str) -> Option<Verb> {
        Some(match text {
            "GET" => Verb::Get,
            "HEAD" => Verb::Head,
            "POST" => Verb::Post,
            "PUT" => Verb::Put,
            "PATCH" => Verb::Patch,
            "DELETE" => Verb::Delete,
            _ => return None,
        })
    }

    /// Processing order (R4 http.html#trules): DELETE, POST, PUT/PATCH, GET/HEAD.
    fn rank(self) -> u8 {
        match self {
            Verb::Delete => 0,
            Verb::Post => 1,
            Verb::Put | Verb::Patch => 2,
            Verb::Get | Verb::Head => 3,
        }
    }

    fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Head => Method::HEAD,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }
}

/// One entry, as the client sent it.
struct Entry {
    full_url: Option<String>,
    verb: Verb,
    url: String,
    resource: Option<Map<String, Value>>,
    if_match: Option<String>,
    if_none_exist: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

fn entry_error(index: usize, expr: &str, text: impl Into<String>) -> ApiError {
    ApiError::Malformed(vec![Issue::error(
        IssueCode::Value,
        format!("Bundle.entry[{index}]{expr}"),
        text,
    )])
}

/// Reads one entry's `fullUrl`, `request` and `resource`.
fn parse_entry(index: usize, value: &Value) -> Result<Entry, ApiError> {
    let Some(entry) = value.as_object() else {
        return Err(entry_error(index, "", "an entry must be an object"));
    };
    let string = |obj: &Map<String, Value>, key: &str, expr: &str| match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(entry_error(index, expr, format!("{key} must be a string"))),
    };
    let Some(request) = entry.get("request").and_then(Value::as_object) else {
        return Err(entry_error(
            index,
            ".request",
            "a batch or transaction entry needs a request",
        ));
    };
    let method = string(request, "method", ".request.method")?
        .ok_or_else(|| entry_error(index, ".request.method", "the method is missing"))?;
    let verb = Verb::parse(&method).ok_or_else(|| {
        entry_error(
            index,
            ".request.method",
            format!("{method:?} is not GET, HEAD, POST, PUT, PATCH or DELETE"),
        )
    })?;
    let url = string(request, "url", ".request.url")?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| entry_error(index, ".request.url", "the url is missing"))?;
    let resource = match entry.get("resource") {
        None => None,
        Some(Value::Object(o)) => Some(o.clone()),
        Some(_) => {
            return Err(entry_error(
                index,
                ".resource",
                "resource must be an object",
            ));
        }
    };
    Ok(Entry {
        full_url: string(entry, "fullUrl", ".fullUrl")?,
        verb,
        url,
        resource,
        if_match: string(request, "ifMatch", ".request.ifMatch")?,
        if_none_exist: string(request, "ifNoneExist", ".request.ifNoneExist")?,
        if_none_match: string(request, "ifNoneMatch", ".request.ifNoneMatch")?,
        if_modified_since: string(request, "ifModifiedSince", ".request.ifModifiedSince")?,
    })
}

/// Handles `POST [base]` with a batch or transaction Bundle.
pub(crate) async fn process(
    state: &AppState,
    principal: &Principal,
    bytes: &[u8],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let bundle = crate::rest::parse_envelope(state, "Bundle", bytes)?;
    let object = bundle.object();
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    let entries = bundle_entries(object, state.config.limits.max_bundle_entries)?;
    match kind {
        "transaction" => {
            ctx.audit.interaction = "transaction".into();
            let parsed = transaction_entries(object, entries)?;
            transaction(state, principal, parsed, headers, ctx).await
        }
        "batch" => {
            ctx.audit.interaction = "batch".into();
            batch(state, entries, headers, ctx).await
        }
        other => Err(ApiError::bad(
            "Bundle.type",
            format!("POST to the base takes a batch or transaction Bundle, not {other:?}"),
        )),
    }
}

/// A batch or transaction Bundle's entries: an array, each `fullUrl` naming one entry
/// (bdl-7), at most `max_entries` of them.
fn bundle_entries(object: &Map<String, Value>, max_entries: usize) -> Result<&[Value], ApiError> {
    let entries = match object.get("entry") {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(ApiError::bad("Bundle.entry", "entry must be an array")),
    };
    // bdl-7: a fullUrl names one entry (two versions of a resource may share it).
    let mut full_urls: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(url) = entry.get("fullUrl").and_then(Value::as_str) else {
            continue;
        };
        let version = entry
            .pointer("/resource/meta/versionId")
            .and_then(Value::as_str);
        if let Some(first) = full_urls.insert((url, version), i) {
            return Err(ApiError::Malformed(vec![Issue::error(
                IssueCode::Invariant,
                format!("Bundle.entry[{i}].fullUrl"),
                format!(
                    "entry {first} has the same fullUrl {url:?}: a fullUrl names one entry (bdl-7)"
                ),
            )]));
        }
    }
    if entries.len() > max_entries {
        return Err(ApiError::Malformed(vec![Issue::error(
            IssueCode::NotSupported,
            "Bundle.entry",
            format!(
                "the bundle has {} entries; this server takes at most {max_entries}",
                entries.len()
            ),
        )]));
    }
    Ok(entries)
}

/// A transaction's entries, read, with the Bundle itself checked against the R4 structure
/// (its entries' resources are checked one by one, once their references are resolved).
fn transaction_entries(
    object: &Map<String, Value>,
    entries: &[Value],
) -> Result<Vec<Entry>, ApiError> {
    let parsed = entries
        .iter()
        .enumerate()
        .map(|(i, e)| parse_entry(i, e))
        .collect::<Result<Vec<_>, _>>()?;
    let issues = mappings::schema::check(&envelope(object), "Bundle");
    if !issues.is_empty() {
        return Err(ApiError::Unprocessable(issues));
    }
    Ok(parsed)
}

/// A Bundle without its entries' resources.
fn envelope(bundle: &Map<String, Value>) -> Map<String, Value> {
    let without_resource = |entry: &Value| match entry {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| *k != "resource")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    bundle
        .iter()
        .map(|(k, v)| match (k.as_str(), v) {
            ("entry", Value::Array(entries)) => (
                k.clone(),
                Value::Array(entries.iter().map(without_resource).collect()),
            ),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

/// The response Bundle of a batch or transaction.
fn response_bundle(kind: &str, entries: Vec<Value>) -> Response {
    let bundle = json!({
        "resourceType": "Bundle",
        "id": hex::encode(rand::random::<[u8; 16]>()),
        "type": kind,
        "entry": entries,
    });
    json_response(StatusCode::OK, bundle.to_string())
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Runs an entry as a request of its own (batch entries, and a transaction's reads).
async fn sub_request(
    state: &AppState,
    entry: &Entry,
    headers: &HeaderMap,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let url = entry
        .url
        .strip_prefix(ctx.base.as_str())
        .unwrap_or(&entry.url)
        .trim_start_matches('/');
    let uri: Uri = format!("/fhir/{url}")
        .parse()
        .map_err(|_| ApiError::bad("request.url", format!("{url:?} is not a valid URL")))?;
    let mut sub = HeaderMap::new();
    for name in [
        header::AUTHORIZATION,
        header::HOST,
        header::USER_AGENT,
        HeaderName::from_static("prefer"),
        HeaderName::from_static("x-request-id"),
    ] {
        if let Some(v) = headers.get(&name) {
            sub.insert(name, v.clone());
        }
    }
    let conditions = [
        (header::IF_MATCH, &entry.if_match),
        (
            HeaderName::from_static("if-none-exist"),
            &entry.if_none_exist,
        ),
        (header::IF_NONE_MATCH, &entry.if_none_match),
        (header::IF_MODIFIED_SINCE, &entry.if_modified_since),
    ];
    for (name, value) in conditions {
        if let Some(v) = value {
            let v = HeaderValue::from_str(v)
                .map_err(|_| ApiError::bad("request", format!("{v:?} is not a valid {name}")))?;
            sub.insert(name, v);
        }
    }
    let body = match &entry.resource {
        Some(resource) if matches!(entry.verb, Verb::Post | Verb::Put) => {
            sub.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+json"),
            );
            Body::from(Value::Object(resource.clone()).to_string())
        }
        _ if entry.verb == Verb::Patch => {
            let (ctype, bytes) = patch_request_body(entry)?;
            sub.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            Body::from(bytes)
        }
        _ => Body::empty(),
    };
    let method = match entry.verb {
        Verb::Head => Method::GET,
        v => v.method(),
    };
    Ok(run_request(state, ctx.peer, &method, &uri, &sub, body, true).await)
}

/// The media type of a JSON Patch, the only content a PATCH entry's `Binary` may hold.
const JSON_PATCH: &str = "application/json-patch+json";

/// A PATCH entry's patch as a request body: a `Parameters` as FHIR JSON, a `Binary`'s
/// decoded `data` as a JSON Patch.
fn patch_request_body(entry: &Entry) -> Result<(&'static str, Vec<u8>), ApiError> {
    match entry_patch_source(entry)? {
        PatchSource::Parameters(parameters) => Ok((
            "application/fhir+json",
            Value::Object(parameters.clone()).to_string().into_bytes(),
        )),
        PatchSource::JsonPatch(bytes) => Ok((JSON_PATCH, bytes)),
    }
}

/// What a PATCH entry's `resource` holds.
enum PatchSource<'a> {
    /// A FHIRPath Patch.
    Parameters(&'a Map<String, Value>),
    /// The bytes of a JSON Patch (a `Binary`'s decoded `data`).
    JsonPatch(Vec<u8>),
}

/// A PATCH entry's `resource`: a `Parameters` or a `Binary` holding a JSON Patch (400
/// otherwise). Errors name the entry's resource; the caller places them in the entry.
fn entry_patch_source(entry: &Entry) -> Result<PatchSource<'_>, ApiError> {
    let bad = |expr: &str, text: String| {
        ApiError::Malformed(vec![Issue::error(IssueCode::Value, expr, text)])
    };
    let Some(resource) = &entry.resource else {
        return Err(bad(
            "resourceType",
            "a PATCH entry needs a resource: a Parameters (FHIRPath Patch) or a Binary \
             holding a JSON Patch"
                .into(),
        ));
    };
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => Ok(PatchSource::Parameters(resource)),
        Some("Binary") => {
            let ctype = resource
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mime = ctype.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case(JSON_PATCH) {
                return Err(bad(
                    "Binary.contentType",
                    format!(
                        "a PATCH entry's Binary holds a JSON Patch ({JSON_PATCH}), not {ctype:?}"
                    ),
                ));
            }
            let Some(data) = resource.get("data").and_then(Value::as_str) else {
                return Err(bad(
                    "Binary.data",
                    "a PATCH entry's Binary needs its data".into(),
                ));
            };
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| bad("Binary.data", format!("data is not base64: {e}")))?;
            Ok(PatchSource::JsonPatch(bytes))
        }
        other => Err(bad(
            "resourceType",
            format!(
                "a PATCH entry's resource is a Parameters (FHIRPath Patch) or a Binary (JSON \
                 Patch), not {}",
                other.unwrap_or("a resource without a type")
            ),
        )),
    }
}

/// A PATCH entry's patch, read and checked.
fn entry_patch(index: usize, entry: &Entry) -> Result<PatchBody, ApiError> {
    let rtype = entry
        .resource
        .as_ref()
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str);
    let in_entry = |e: ApiError| e.in_entry(index, rtype);
    match entry_patch_source(entry).map_err(in_entry)? {
        PatchSource::Parameters(parameters) => {
            let path = format!("Bundle.entry[{index}].resource");
            let checked = check_resource(parameters.clone(), &path)
                .map_err(|e| in_entry(ApiError::from(e)))?;
            let operations = crate::fhirpatch::parse(&Value::Object(checked.object().clone()))
                .map_err(in_entry)?;
            Ok(PatchBody::FhirPath(operations))
        }
        PatchSource::JsonPatch(bytes) => {
            let operations = serde_json::from_slice(&bytes).map_err(|e| {
                in_entry(ApiError::bad(
                    "Binary.data",
                    format!("data is not a JSON Patch document: {e}"),
                ))
            })?;
            Ok(PatchBody::Json(operations))
        }
    }
}

/// A response entry from a sub-request's response.
async fn entry_from_response(response: Response, base: &str, head: bool) -> Value {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut result = json!({ "status": status_line(status) });
    if let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let relative = location
            .strip_prefix(base)
            .unwrap_or(location)
            .trim_start_matches('/');
        result["location"] = json!(relative);
    }
    if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        result["etag"] = json!(etag);
    }
    if let Some(when) = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
    {
        result["lastModified"] = json!(format_instant(when.timestamp_micros()));
    }
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut entry = json!({ "response": result });
    match body {
        Some(b) if b["resourceType"] == "OperationOutcome" => entry["response"]["outcome"] = b,
        Some(b) if !head && b.is_object() => entry["resource"] = b,
        _ => {}
    }
    entry
}

/// A batch: every entry on its own, in processing order, reported in request order.
async fn batch(
    state: &AppState,
    entries: &[Value],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let mut order: Vec<(u8, usize)> = Vec::with_capacity(entries.len());
    let mut parsed = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let entry = parse_entry(i, e);
        let rank = entry.as_ref().map_or(0, |e| e.verb.rank());
        order.push((rank, i));
        parsed.push(entry);
    }
    order.sort();
    let mut answers: Vec<Value> = vec![Value::Null; entries.len()];
    for (_, i) in order {
        let answer = match &parsed[i] {
            Err(err) => error_entry(err),
            Ok(entry) => match sub_request(state, entry, headers, ctx).await {
                Ok(response) => {
                    entry_from_response(response, &ctx.base, entry.verb == Verb::Head).await
                }
                Err(err) => error_entry(&err.in_entry(i, None)),
            },
        };
        answers[i] = answer;
    }
    ctx.audit.outcome = 200;
    Ok(response_bundle("batch-response", answers))
}

fn error_entry(err: &ApiError) -> Value {
    json!({
        "response": {
            "status": status_line(err.status()),
            "outcome": err.outcome_value(),
        }
    })
}

/// What a transaction entry will do, once its conditions are resolved.
enum Plan {
    /// Create under a new id.
    Create { rtype: String, id: String },
    /// A conditional create that found its match: nothing to write.
    Existing { rtype: String, stored: Box<Stored> },
    /// Create or update `rtype/id`.
    Update {
        rtype: String,
        id: String,
        if_match: Option<u64>,
    },
    /// Delete `rtype/id`.
    Delete {
        rtype: String,
        id: String,
        if_match: Option<u64>,
    },
    /// A conditional delete that matched nothing.
    Nothing,
    /// A read, run after the commit.
    Read,
}

/// The target of a PUT or DELETE url: `Type/id` or `Type?criteria`.
enum Target {
    Instance(String, String),
    Conditional(String, String),
}

fn parse_target(index: usize, url: &str) -> Result<Target, ApiError> {
    let bad = |text: String| entry_error(index, ".request.url", text);
    if let Some((rtype, criteria)) = url.split_once('?') {
        if !is_resource_type(rtype) {
            return Err(bad(format!("{rtype:?} is not a resource type")));
        }
        return Ok(Target::Conditional(rtype.to_owned(), criteria.to_owned()));
    }
    match url.split('/').collect::<Vec<_>>().as_slice() {
        [rtype, id] if is_resource_type(rtype) && is_valid_id(id) => {
            Ok(Target::Instance((*rtype).to_owned(), (*id).to_owned()))
        }
        _ => Err(bad(format!(
            "{url:?} is not [type]/[id] or [type]?[criteria]"
        ))),
    }
}

fn version_of(index: usize, etag: Option<&str>) -> Result<Option<u64>, ApiError> {
    etag.map(|text| {
        text.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<u64>()
            .map_err(|_| {
                entry_error(
                    index,
                    ".request.ifMatch",
                    format!("{text:?} is not a version ETag like W/\"3\""),
                )
            })
    })
    .transpose()
}

/// The resource of a POST or PUT entry, structurally checked, of the type its url names.
fn entry_resource(
    index: usize,
    entry: &Entry,
    rtype: &str,
) -> Result<Map<String, Value>, ApiError> {
    let Some(resource) = &entry.resource else {
        return Err(entry_error(
            index,
            ".resource",
            format!("a {} entry needs a resource", entry.verb.method()),
        ));
    };
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rtype => Ok(resource.clone()),
        Some(t) => Err(entry_error(
            index,
            ".resource.resourceType",
            format!("the resource is a {t} but the url names {rtype}"),
        )),
        None => Err(entry_error(
            index,
            ".resource.resourceType",
            "resourceType is missing",
        )),
    }
}

/// What a transaction entry writes: its type, the action to authorize, and the key of the
/// conditional-interaction lock it needs; `None` for a read.
fn entry_target(
    i: usize,
    entry: &Entry,
) -> Result<Option<(String, Action, Option<String>)>, ApiError> {
    Ok(Some(match entry.verb {
        Verb::Get | Verb::Head => return Ok(None),
        Verb::Post => {
            let rtype = entry.url.trim_matches('/');
            if !is_resource_type(rtype) {
                return Err(entry_error(
                    i,
                    ".request.url",
                    format!("a POST entry's url is a resource type, not {rtype:?}"),
                ));
            }
            let lock_key = entry
                .if_none_exist
                .as_ref()
                .map(|criteria| match_key(rtype, criteria));
            (rtype.to_owned(), Action::Create, lock_key)
        }
        Verb::Put | Verb::Patch | Verb::Delete => {
            let (rtype, lock_key) = match parse_target(i, &entry.url)? {
                Target::Instance(t, _) => (t, None),
                Target::Conditional(t, c) => {
                    let key = match_key(&t, &c);
                    (t, Some(key))
                }
            };
            let action = if matches!(entry.verb, Verb::Put | Verb::Patch) {
                Action::Update
            } else {
                Action::Delete
            };
            (rtype, action, lock_key)
        }
    }))
}

async fn transaction(
    state: &AppState,
    principal: &Principal,
    entries: Vec<Entry>,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    // 1. What each entry targets, and whether the caller may do it.
    let mut lock_keys = Vec::new();
    let mut combined = model::query::Access::everything();
    for (i, entry) in entries.iter().enumerate() {
        let Some((rtype, action, lock_key)) = entry_target(i, entry)? else {
            continue;
        };
        lock_keys.extend(lock_key);
        let access = principal
            .authorize(&rtype, action)
            .map_err(|e| e.in_entry(i, Some(&rtype)))?;
        // One access for the whole transaction: every entry's restrictions at once.
        for r in access.all_of {
            if !combined.all_of.contains(&r) {
                combined.all_of.push(r);
            }
        }
        if combined.shared_types.is_empty() {
            combined.shared_types = access.shared_types;
        }
    }
    ctx.access = combined;
    let lock = if lock_keys.is_empty() {
        None
    } else {
        Some(state.store.lock(&lock_keys).await?)
    };
    let result = run_transaction(state, &entries, headers, ctx).await;
    if let Some(lock) = lock
        && let Err(err) = lock.release().await
    {
        tracing::warn!(error = %err, "releasing transaction locks failed");
    }
    let mut answers = result?;
    // 6. Reads, after the commit.
    for (i, entry) in entries.iter().enumerate() {
        if matches!(entry.verb, Verb::Get | Verb::Head) {
            answers[i] = match sub_request(state, entry, headers, ctx).await {
                Ok(response) => {
                    entry_from_response(response, &ctx.base, entry.verb == Verb::Head).await
                }
                Err(err) => error_entry(&err.in_entry(i, None)),
            };
        }
    }
    Ok(response_bundle("transaction-response", answers))
}

/// Looks up what a transaction's conditions match and names its new resources: the store in
/// service, a stand-in in the fuzzer (everything else in [`plan`] is pure).
trait Resolver {
    /// The one resource `rtype?criteria` matches, if any (several: an error); `what` names
    /// the condition in errors.
    fn matching(
        &mut self,
        rtype: &str,
        criteria: &str,
        what: &str,
    ) -> impl Future<Output = Result<Option<Stored>, ApiError>>;

    /// A new server id, placed with `patient`.
    fn new_id(&mut self, patient: Option<&str>) -> String;

    /// The current version of `rtype/id` (a PATCH entry's start): 404 when unknown.
    fn current(&mut self, rtype: &str, id: &str) -> impl Future<Output = Result<Stored, ApiError>>;
}

/// The store, under the transaction's access.
struct StoreResolver<'a> {
    state: &'a AppState,
    access: &'a model::query::Access,
}

impl Resolver for StoreResolver<'_> {
    async fn matching(
        &mut self,
        rtype: &str,
        criteria: &str,
        what: &str,
    ) -> Result<Option<Stored>, ApiError> {
        conditional_match(self.state, rtype, criteria, what, self.access).await
    }

    fn new_id(&mut self, patient: Option<&str>) -> String {
        self.state.store.new_id(patient)
    }

    async fn current(&mut self, rtype: &str, id: &str) -> Result<Stored, ApiError> {
        self.state
            .store
            .read(rtype, id, self.access)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{rtype}/{id} is not known")))
    }
}

/// A transaction's writes, planned and checked, not yet written.
struct Planned {
    /// What each entry does.
    plans: Vec<Plan>,
    /// The writes with their entries, in processing order (DELETE, POST, PUT).
    changes: Vec<(usize, Change)>,
    /// The patients the writes touch.
    patients: BTreeSet<String>,
    /// Each entry's terminology warnings.
    warnings: Vec<Vec<Issue>>,
    /// The audit record's list of writes.
    audit_entries: Vec<String>,
}

/// Steps 2 to 4 of a transaction: resolves conditions (through `resolver`), assigns ids,
/// rewrites `urn:uuid` and conditional references, checks every resource and builds the
/// changes in processing order.
async fn plan(
    entries: &[Entry],
    resolver: &mut impl Resolver,
    terminology: &terminology::Terminology,
    policy: &crate::TerminologyPolicy,
    limits: &crate::Limits,
) -> Result<Planned, ApiError> {
    // 2. Conditions, and the identity each entry gets.
    let mut plans: Vec<Plan> = Vec::with_capacity(entries.len());
    let mut resources: Vec<Option<Map<String, Value>>> = Vec::with_capacity(entries.len());
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut urls: HashMap<String, String> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let in_entry = |e: ApiError, t: &str| e.in_entry(i, Some(t));
        let (plan, resource) = match entry.verb {
            Verb::Get | Verb::Head => (Plan::Read, None),
            Verb::Patch => {
                let (rtype, id) = match parse_target(i, &entry.url)? {
                    Target::Instance(t, id) => (t, id),
                    Target::Conditional(t, criteria) => {
                        let found = resolver
                            .matching(&t, &criteria, "url")
                            .await
                            .map_err(|e| in_entry(e, &t))?;
                        match found.and_then(|s| s.entity) {
                            Some(e) => (t, e.id),
                            None => {
                                return Err(in_entry(
                                    ApiError::NotFound(format!("{t}?{criteria} matches nothing")),
                                    &t,
                                ));
                            }
                        }
                    }
                };
                let body = entry_patch(i, entry)?;
                let if_match = version_of(i, entry.if_match.as_deref())?;
                let current = resolver
                    .current(&rtype, &id)
                    .await
                    .map_err(|e| in_entry(e, &rtype))?;
                let Some(mut document) = render(&current) else {
                    return Err(in_entry(
                        ApiError::Gone(format!(
                            "{rtype}/{id} was deleted (version {})",
                            current.version
                        )),
                        &rtype,
                    ));
                };
                if let Some(v) = if_match
                    && v != current.version
                {
                    return Err(in_entry(
                        ApiError::PreconditionFailed(format!(
                            "Bundle.entry[{i}]: version {v} of {rtype}/{id} is not the current version {}",
                            current.version
                        )),
                        &rtype,
                    ));
                }
                apply_patch(&mut document, &body, &rtype, &id, limits)
                    .map_err(|e| in_entry(e, &rtype))?;
                let Value::Object(resource) = document else {
                    return Err(ApiError::Internal(
                        "a patched resource is not an object".into(),
                    ));
                };
                // Written as an update of exactly the version patched.
                (
                    Plan::Update {
                        rtype,
                        id,
                        if_match: Some(current.version),
                    },
                    Some(resource),
                )
            }
            Verb::Post => {
                let rtype = entry.url.trim_matches('/').to_owned();
                let resource = entry_resource(i, entry, &rtype)?;
                let existing = match &entry.if_none_exist {
                    Some(criteria) => resolver
                        .matching(&rtype, criteria, "If-None-Exist")
                        .await
                        .map_err(|e| in_entry(e, &rtype))?,
                    None => None,
                };
                match existing {
                    Some(stored) => (
                        Plan::Existing {
                            rtype,
                            stored: Box::new(stored),
                        },
                        None,
                    ),
                    // Ids of new Patients now; other types once their patient is known.
                    None if rtype == "Patient" => {
                        let id = resolver.new_id(None);
                        (Plan::Create { rtype, id }, Some(resource))
                    }
                    None => (
                        Plan::Create {
                            rtype,
                            id: String::new(),
                        },
                        Some(resource),
                    ),
                }
            }
            Verb::Put => {
                let target = parse_target(i, &entry.url)?;
                let (rtype, id) = match target {
                    Target::Instance(t, id) => (t, Some(id)),
                    Target::Conditional(t, criteria) => {
                        let found = resolver
                            .matching(&t, &criteria, "url")
                            .await
                            .map_err(|e| in_entry(e, &t))?;
                        let id = found.and_then(|s| s.entity.map(|e| e.id));
                        (t, id)
                    }
                };
                let resource = entry_resource(i, entry, &rtype)?;
                let body_id = resource
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let id = match (id, body_id) {
                    (Some(id), Some(b)) if id != b => {
                        return Err(entry_error(
                            i,
                            ".resource.id",
                            format!("the resource's id {b:?} differs from its target {id:?}"),
                        ));
                    }
                    (Some(id), _) | (None, Some(id)) => id,
                    (None, None) if rtype == "Patient" => resolver.new_id(None),
                    (None, None) => String::new(),
                };
                let if_match = version_of(i, entry.if_match.as_deref())?;
                (
                    Plan::Update {
                        rtype,
                        id,
                        if_match,
                    },
                    Some(resource),
                )
            }
            Verb::Delete => match parse_target(i, &entry.url)? {
                Target::Instance(rtype, id) => {
                    let if_match = version_of(i, entry.if_match.as_deref())?;
                    (
                        Plan::Delete {
                            rtype,
                            id,
                            if_match,
                        },
                        None,
                    )
                }
                Target::Conditional(rtype, criteria) => {
                    let found = resolver
                        .matching(&rtype, &criteria, "url")
                        .await
                        .map_err(|e| in_entry(e, &rtype))?;
                    match found.and_then(|s| s.entity) {
                        Some(e) => (
                            Plan::Delete {
                                rtype,
                                id: e.id,
                                if_match: None,
                            },
                            None,
                        ),
                        None => (Plan::Nothing, None),
                    }
                }
            },
        };
        if let Some((rtype, id)) = plan_target(&plan) {
            if !id.is_empty()
                && let Some(first) = seen.insert((rtype.to_owned(), id.to_owned()), i)
            {
                return Err(entry_error(
                    i,
                    "",
                    format!(
                        "{rtype}/{id} is also the target of entry {first}; a transaction may touch a resource once"
                    ),
                ));
            }
            if let Some(full_url) = &entry.full_url
                && !id.is_empty()
            {
                urls.insert(full_url.clone(), format!("{rtype}/{id}"));
            }
        }
        plans.push(plan);
        resources.push(resource);
    }
    // 3. Ids of the other new resources, placed with their patient (whose reference may be
    // to a new Patient of this bundle).
    let mut conditional_refs: HashMap<String, String> = HashMap::new();
    for i in 0..entries.len() {
        let needs_id = match &plans[i] {
            Plan::Create { id, .. } | Plan::Update { id, .. } => id.is_empty(),
            _ => false,
        };
        if !needs_id {
            continue;
        }
        let Some(resource) = resources[i].clone() else {
            continue;
        };
        let mut probe = Value::Object(resource);
        rewrite_references(&mut probe, &urls, &HashMap::new(), i, false)?;
        let patient = match Value::as_object(&probe)
            .cloned()
            .and_then(Resource::from_trusted)
        {
            Some(r) => to_entity(&r).patient,
            None => None,
        };
        let new_id = resolver.new_id(patient.as_deref());
        if let Plan::Create { rtype, id } | Plan::Update { rtype, id, .. } = &mut plans[i] {
            *id = new_id.clone();
            if let Some(full_url) = &entries[i].full_url {
                urls.insert(full_url.clone(), format!("{rtype}/{new_id}"));
            }
        }
    }
    // Conditional references (`Patient?identifier=…`): exactly one match each.
    for (i, resource) in resources.iter().enumerate() {
        let Some(resource) = resource else {
            continue;
        };
        let mut found = BTreeSet::new();
        collect_conditional_refs(&Value::Object(resource.clone()), &mut found);
        for reference in found {
            if conditional_refs.contains_key(&reference) {
                continue;
            }
            let (rtype, criteria) = reference.split_once('?').unwrap_or((&reference, ""));
            let expr = format!("conditional reference {reference:?}");
            let matched = resolver
                .matching(rtype, criteria, &expr)
                .await
                .map_err(|e| e.in_entry(i, None))?;
            let Some(target) = matched.and_then(|s| s.entity) else {
                return Err(ApiError::PreconditionFailed(format!(
                    "Bundle.entry[{i}]: the conditional reference {reference:?} matches nothing"
                )));
            };
            let resolved = format!("{rtype}/{}", target.id);
            conditional_refs.insert(reference, resolved);
        }
    }
    // 4. Rewrite references, check every resource, build the changes.
    let mut changes: Vec<(usize, Change)> = Vec::new();
    let mut patients = BTreeSet::new();
    let mut warnings: Vec<Vec<Issue>> = vec![Vec::new(); entries.len()];
    let mut audit_entries = Vec::new();
    for i in 0..entries.len() {
        let change = match &plans[i] {
            Plan::Create { rtype, id } | Plan::Update { rtype, id, .. } => {
                let Some(object) = resources[i].take() else {
                    continue;
                };
                let mut value = Value::Object(object);
                rewrite_references(&mut value, &urls, &conditional_refs, i, true)?;
                let Value::Object(object) = value else {
                    continue;
                };
                let path = format!("Bundle.entry[{i}].resource");
                let mut resource = check_resource(object, &path)
                    .map_err(|e| ApiError::from(e).in_entry(i, Some(rtype)))?;
                resource.set_id(id);
                let issues = mappings::rules::check(&resource);
                if !issues.is_empty() {
                    return Err(ApiError::Unprocessable(issues).in_entry(i, Some(rtype)));
                }
                warnings[i] = check_codes(&resource, terminology, policy)
                    .map_err(|e| e.in_entry(i, Some(rtype)))?;
                let mut entity = to_entity(&resource);
                entity.id = id.clone();
                if rtype == "Patient" {
                    entity.patient = Some(id.clone());
                }
                patients.extend(entity.patient.clone());
                let index = mappings::search::index_entries(&resource);
                let (kind, if_match, op) = match &plans[i] {
                    Plan::Update { if_match, .. } => (WriteKind::Upsert, *if_match, "update"),
                    _ => (WriteKind::Create, None, "create"),
                };
                audit_entries.push(format!("{op} {rtype}/{id}"));
                Change::Put {
                    kind,
                    entity: Box::new(entity),
                    index,
                    if_match,
                }
            }
            Plan::Delete {
                rtype,
                id,
                if_match,
            } => {
                audit_entries.push(format!("delete {rtype}/{id}"));
                Change::Delete {
                    rtype: rtype.clone(),
                    id: id.clone(),
                    if_match: *if_match,
                }
            }
            Plan::Existing { .. } | Plan::Nothing | Plan::Read => continue,
        };
        changes.push((i, change));
    }
    // Processing order: DELETE, POST, PUT.
    changes.sort_by_key(|(i, _)| (entries[*i].verb.rank(), *i));
    Ok(Planned {
        plans,
        changes,
        patients,
        warnings,
        audit_entries,
    })
}

/// Resolves, checks and writes a transaction's entries; the answers of its writes (reads are
/// left `null` for the caller).
async fn run_transaction(
    state: &AppState,
    entries: &[Entry],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Vec<Value>, ApiError> {
    let access = ctx.access.clone();
    let mut resolver = StoreResolver {
        state,
        access: &access,
    };
    let Planned {
        plans,
        changes,
        patients,
        warnings,
        audit_entries,
    } = plan(
        entries,
        &mut resolver,
        &state.terminology,
        &state.config.terminology_policy,
        &state.config.limits,
    )
    .await?;
    // 5. Write, all or nothing.
    ctx.audit.patients = patients.into_iter().collect();
    ctx.audit.entries = audit_entries;
    ctx.audit.outcome = 200;
    let (positions, changes): (Vec<usize>, Vec<Change>) = changes.into_iter().unzip();
    let written = state
        .store
        .transact(&changes, &ctx.audit, &access)
        .await
        .map_err(|e| match e {
            StoreError::Entry { index, error } => {
                let i = positions.get(index).copied().unwrap_or(index);
                let rtype = match &plans[i] {
                    Plan::Create { rtype, .. }
                    | Plan::Update { rtype, .. }
                    | Plan::Delete { rtype, .. } => Some(rtype.as_str()),
                    _ => None,
                };
                ApiError::from(*error).in_entry(i, rtype)
            }
            other => ApiError::from(other),
        })?;
    ctx.recorded = true;
    let mut answers = vec![Value::Null; entries.len()];
    let mut by_entry: HashMap<usize, Option<Written>> = HashMap::new();
    for (position, w) in positions.iter().zip(written) {
        by_entry.insert(*position, w);
    }
    let with_outcome = prefer_outcome(headers);
    let representation = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=representation"));
    for (i, plan) in plans.iter().enumerate() {
        answers[i] = match plan {
            Plan::Read => continue,
            Plan::Nothing => json!({ "response": { "status": "204 No Content" } }),
            Plan::Existing { rtype, stored } => {
                let id = stored
                    .entity
                    .as_ref()
                    .map(|e| e.id.clone())
                    .unwrap_or_default();
                let mut e = written_entry(rtype, &id, stored.version, stored.updated_at, "200 OK");
                if representation && let Some(r) = render(stored) {
                    e["resource"] = r;
                }
                e
            }
            Plan::Delete { rtype, id, .. } => match by_entry.get(&i).cloned().flatten() {
                Some(w) => json!({
                    "fullUrl": format!("{}/{rtype}/{id}", ctx.base),
                    "response": { "status": "204 No Content", "etag": format!("W/\"{}\"", w.version) }
                }),
                None => json!({ "response": { "status": "204 No Content" } }),
            },
            Plan::Create { rtype, id } | Plan::Update { rtype, id, .. } => {
                let Some(Some(w)) = by_entry.get(&i) else {
                    continue;
                };
                let status = if w.created { "201 Created" } else { "200 OK" };
                let mut e = written_entry(rtype, id, w.version, w.updated_at, status);
                e["fullUrl"] = json!(format!("{}/{rtype}/{id}", ctx.base));
                if representation
                    && let Some(r) = state
                        .store
                        .vread(rtype, id, w.version, &access)
                        .await
                        .ok()
                        .flatten()
                        .as_ref()
                        .and_then(render)
                {
                    e["resource"] = r;
                }
                if with_outcome && !warnings[i].is_empty() {
                    e["response"]["outcome"] =
                        outcome(warnings[i].iter().map(issue_value).collect());
                }
                e
            }
        };
    }
    Ok(answers)
}

/// A write's response entry.
fn written_entry(
    rtype: &str,
    id: &str,
    version: u64,
    updated: chrono::DateTime<chrono::Utc>,
    status: &str,
) -> Value {
    json!({
        "response": {
            "status": status,
            "location": format!("{rtype}/{id}/_history/{version}"),
            "etag": format!("W/\"{version}\""),
            "lastModified": format_instant(updated.timestamp_micros()),
        }
    })
}

fn plan_target(plan: &Plan) -> Option<(&str, &str)> {
    match plan {
        Plan::Create { rtype, id }
        | Plan::Update { rtype, id, .. }
        | Plan::Delete { rtype, id, .. } => Some((rtype, id)),
        Plan::Existing { rtype, stored } => stored
            .entity
            .as_ref()
            .map(|e| (rtype.as_str(), e.id.as_str())),
        Plan::Nothing | Plan::Read => None,
    }
}

/// Whether a reference is a placeholder that must resolve inside the bundle.
fn is_placeholder(reference: &str) -> bool {
    reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:")
}

/// Whether a reference is conditional (`Type?criteria`).
fn is_conditional(reference: &str) -> bool {
    reference
        .split_once('?')
        .is_some_and(|(t, _)| is_resource_type(t))
}

fn collect_conditional_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) if is_conditional(r) => {
                        out.insert(r.clone());
                    }
                    _ => collect_conditional_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_conditional_refs(v, out)),
        _ => {}
    }
}

/// Replaces every `reference` that names a bundle entry (`fullUrl`) or a resolved conditional
/// reference. With `strict`, a placeholder that names no entry is an error.
fn rewrite_references(
    value: &mut Value,
    urls: &HashMap<String, String>,
    conditional: &HashMap<String, String>,
    index: usize,
    strict: bool,
) -> Result<(), ApiError> {
    match value {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                if k == "reference"
                    && let Value::String(r) = v
                {
                    if let Some(target) =
                        urls.get(r.as_str()).or_else(|| conditional.get(r.as_str()))
                    {
                        *r = target.clone();
                    } else if strict && is_placeholder(r) {
                        return Err(ApiError::Malformed(vec![Issue::error(
                            IssueCode::Value,
                            format!("Bundle.entry[{index}].resource"),
                            format!("the reference {r:?} names no entry of this bundle"),
                        )]));
                    }
                    continue;
                }
                rewrite_references(v, urls, conditional, index, strict)?;
            }
        }
        Value::Array(a) => {
            for v in a {
                rewrite_references(v, urls, conditional, index, strict)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The stand-in store of the fuzz target: criteria are parsed as the store would take them,
/// then match nothing, or one resource of an id derived from them (by their length).
struct FuzzResolver {
    ids: usize,
}

impl Resolver for FuzzResolver {
    async fn matching(
        &mut self,
        rtype: &str,
        criteria: &str,
        what: &str,
    ) -> Result<Option<Stored>, ApiError> {
        crate::rest::match_query(&terminology::Terminology::empty(), rtype, criteria, what)?;
        if criteria.len().is_multiple_of(2) {
            return Ok(None);
        }
        let object = json!({"resourceType": rtype, "id": format!("m{}", criteria.len())});
        let entity = Value::as_object(&object)
            .cloned()
            .and_then(Resource::from_trusted)
            .map(|r| to_entity(&r));
        Ok(Some(Stored {
            version: 1,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            entity,
        }))
    }

    fn new_id(&mut self, patient: Option<&str>) -> String {
        self.ids += 1;
        format!("n{}-{}", self.ids, patient.map_or(0, str::len))
    }

    /// Every resource exists, at version 1, with nothing but its id.
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Stored, ApiError> {
        let object = json!({"resourceType": rtype, "id": id});
        let entity = Value::as_object(&object)
            .cloned()
            .and_then(Resource::from_trusted)
            .map(|r| to_entity(&r));
        Ok(Stored {
            version: 1,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            entity,
        })
    }
}

/// The fuzz target's body (see `crate::fuzzing::bundle`): everything a batch or transaction
/// does before it writes, with the properties of a planned transaction asserted.
pub(crate) fn fuzz(data: &[u8], limits: &crate::Limits) {
    let json_limits = mappings::JsonLimits {
        max_depth: limits.max_json_depth,
    };
    let Ok(bundle) = mappings::json::parse_resource(data, &json_limits) else {
        return;
    };
    let object = bundle.object();
    if bundle.resource_type() != "Bundle" {
        return;
    }
    let Ok(entries) = bundle_entries(object, limits.max_bundle_entries) else {
        return;
    };
    if object.get("type").and_then(Value::as_str) == Some("batch") {
        for (i, entry) in entries.iter().enumerate() {
            let _ = parse_entry(i, entry);
        }
        return;
    }
    let Ok(parsed) = transaction_entries(object, entries) else {
        return;
    };
    for (i, entry) in parsed.iter().enumerate() {
        if entry_target(i, entry).is_err() {
            return;
        }
    }
    let mut resolver = FuzzResolver { ids: 0 };
    let none = terminology::Terminology::empty();
    let policy = crate::TerminologyPolicy::default();
    let mut future = std::pin::pin!(plan(&parsed, &mut resolver, &none, &policy, limits));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let std::task::Poll::Ready(result) = future.as_mut().poll(&mut cx) else {
        panic!("planning waited on the stand-in store, which never waits");
    };
    let Ok(planned) = result else {
        return;
    };
    let order: Vec<(u8, usize)> = planned
        .changes
        .iter()
        .map(|(i, _)| (parsed[*i].verb.rank(), *i))
        .collect();
    assert!(
        order.is_sorted(),
        "writes out of processing order: {order:?}"
    );
    let mut targets = BTreeSet::new();
    for (i, change) in &planned.changes {
        let target = match change {
            Change::Put { entity, .. } => {
                assert!(!entity.id.is_empty(), "entry {i} is written without an id");
                let mut refs = Vec::new();
                collect_references(
                    &Value::Object(mappings::entity::to_fhir(entity, None)),
                    &mut refs,
                );
                for r in refs {
                    assert!(
                        !is_placeholder(&r) && !is_conditional(&r),
                        "entry {i} is written with the unresolved reference {r:?}"
                    );
                }
                (entity.source_type.clone(), entity.id.clone())
            }
            Change::Delete { rtype, id, .. } => (rtype.clone(), id.clone()),
        };
        assert!(
            targets.insert(target.clone()),
            "{target:?} is written twice in one transaction"
        );
    }
}

/// Every `reference` string in `value`.
fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) => out.push(r.clone()),
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_and_unknown_ones_refused() {
        let mut urls = HashMap::new();
        urls.insert("urn:uuid:1".to_owned(), "Patient/abc".to_owned());
        let mut v =
            json!({"subject": {"reference": "urn:uuid:1"}, "x": [{"reference": "Patient/z"}]});
        rewrite_references(&mut v, &urls, &HashMap::new(), 0, true).expect("resolves");
        assert_eq!(v["subject"]["reference"], "Patient/abc");
        assert_eq!(v["x"][0]["reference"], "Patient/z");
        let mut v = json!({"subject": {"reference": "urn:uuid:2"}});
        assert!(rewrite_references(&mut v, &urls, &HashMap::new(), 3, true).is_err());
        assert!(rewrite_references(&mut v, &urls, &HashMap::new(), 3, false).is_ok());
    }

    #[test]
    fn conditional_references_are_found() {
        let v = json!({"a": {"reference": "Patient?identifier=x|1"}, "b": {"reference": "Patient/1"}, "c": {"reference": "http://x?y"}});
        let mut out = BTreeSet::new();
        collect_conditional_refs(&v, &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec!["Patient?identifier=x|1"]
        );
    }

    /// Plans a transaction with the stand-in store.
    fn planned(bundle: &Value) -> Result<Planned, ApiError> {
        let object = bundle.as_object().expect("a bundle object");
        let entries = bundle_entries(object, 100)?;
        let parsed = transaction_entries(object, entries)?;
        let none = terminology::Terminology::empty();
        let policy = crate::TerminologyPolicy::default();
        let mut resolver = FuzzResolver { ids: 0 };
        let limits = crate::Limits::default();
        let mut future = std::pin::pin!(plan(&parsed, &mut resolver, &none, &policy, &limits));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => panic!("the stand-in store never waits"),
        }
    }

    #[test]
    fn planning_resolves_placeholders_and_orders_writes() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "PUT", "url": "Patient/p2"},
             "resource": {"resourceType": "Patient", "id": "p2"}},
            {"fullUrl": "urn:uuid:o", "request": {"method": "POST", "url": "Observation"},
             "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                          "subject": {"reference": "urn:uuid:p"}}},
            {"request": {"method": "DELETE", "url": "Patient/gone"}},
            {"fullUrl": "urn:uuid:p", "request": {"method": "POST", "url": "Patient"},
             "resource": {"resourceType": "Patient"}},
        ]});
        let planned = planned(&bundle).expect("plans");
        let order: Vec<usize> = planned.changes.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [2, 1, 3, 0], "DELETE, POSTs in entry order, PUT");
        let Change::Put { entity, .. } = &planned.changes[1].1 else {
            panic!("the Observation is a put");
        };
        let Change::Put {
            entity: patient, ..
        } = &planned.changes[2].1
        else {
            panic!("the Patient is a put");
        };
        let rendered = mappings::entity::to_fhir(entity, None);
        assert_eq!(
            rendered["subject"]["reference"],
            json!(format!("Patient/{}", patient.id))
        );
        assert_eq!(entity.patient.as_deref(), Some(patient.id.as_str()));
    }

    #[test]
    fn planning_refuses_a_placeholder_naming_no_entry() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Observation"},
             "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                          "subject": {"reference": "urn:uuid:nowhere"}}},
        ]});
        assert!(planned(&bundle).is_err());
    }

    #[test]
    fn processing_order_is_the_specs() {
        let mut verbs = [Verb::Get, Verb::Put, Verb::Post, Verb::Delete];
        verbs.sort_by_key(|v| v.rank());
        assert_eq!(verbs, [Verb::Delete, Verb::Post, Verb::Put, Verb::Get]);
    }
}
