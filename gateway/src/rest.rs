//! FHIR REST: one dispatcher for everything under `/fhir`, so that every request passes the
//! same checks (URL length, token, content negotiation) and leaves exactly one audit record.
//!
//! A write's audit record is committed in the write's own transaction; every other request's
//! record is appended (durably) before the response is sent, and a request whose record
//! cannot be written fails with 503.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use mappings::dates::format_instant;
use mappings::entity::{to_entity, to_fhir};
use mappings::json::{JsonLimits, Resource, is_valid_id, parse_resource};
use mappings::search::{SearchLimits, parse_query};
use mappings::types::is_resource_type;
use serde_json::{Value, json};
use store::{AuditRecord, Stored, WriteKind};

use crate::AppState;
use crate::auth::{Action, Principal};
use crate::bundle;
use crate::meta_ops::MetaOp;
use crate::outcome::{ApiError, information, issue_value, outcome};
use crate::terminology_ops;
use crate::validate::check_codes;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";
/// Pause between two attempts of a read that found a shard unavailable.
const READ_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// Most attempts of such a read (the time window bounds it first).
const READ_RETRY_MAX: usize = 300;

/// Per-request facts the audit record and the handlers share.
pub(crate) struct Ctx {
    pub(crate) audit: AuditRecord,
    /// The write committed the audit record with it.
    pub(crate) recorded: bool,
    /// A resource the request touched, to place its audit record on that shard.
    pub(crate) near: Option<(String, String)>,
    pub(crate) base: String,
    /// Terminology warnings about the written resource, for `Prefer: return=OperationOutcome`.
    pub(crate) warnings: Vec<mappings::Issue>,
    /// The client's address.
    pub(crate) peer: IpAddr,
    /// An entry of a batch or transaction (which may not hold another).
    pub(crate) nested: bool,
    /// What the caller may see, from the authorization of this request.
    pub(crate) access: model::query::Access,
    /// The caller reads under an open break-glass window.
    pub(crate) break_glass: bool,
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    // What each loaded system's codes meet on write; systems not listed are not checked.
    let policy = &state.config.terminology_policy;
    let systems: Vec<Value> = state
        .terminology
        .systems()
        .iter()
        .map(|s| {
            let mut system = json!({
                "system": s.uri,
                "concepts": s.concept_count,
                "version": s.version,
                "check": policy.strictness(s.uri).as_str(),
                "versionMismatch": policy.version_mismatch.as_str(),
            });
            if s.uri == terminology::ICD10 || s.uri == terminology::ICD10CM {
                system["undotted"] = json!(policy.icd10_undotted.as_str());
            }
            system
        })
        .collect();
    let without_primary = state.store.shards_without_primary();
    if !without_primary.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "unavailable",
                "error": "a shard has no writable primary",
                "shardsWithoutPrimary": without_primary,
            })
            .to_string(),
        )
            .into_response();
    }
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            json!({ "status": "ready", "shards": state.store.n_shards(), "terminology": systems })
                .to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "error": "a shard does not answer" }).to_string(),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition (format 0.0.4) of the shards' topology and the requests
/// answered. Written out here: a handful of gauges does not need a metrics registry.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    use std::fmt::Write as _;
    let topology = state.store.topology();
    let mut out = String::new();
    // One metric: its HELP and TYPE lines, then `name{labels} value` per sample.
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let shard = |s: &store::nodes::ShardStatus| format!("{{shard=\"{}\"}}", s.shard);
    metric(
        "fhirgate_shard_has_primary",
        "gauge",
        "Whether the shard has a known writable node.",
        topology
            .iter()
            .map(|s| (shard(s), u8::from(s.primary.is_some()).to_string()))
            .collect(),
    );
    metric(
        "fhirgate_shard_failovers_total",
        "counter",
        "Times the shard's writable node changed.",
        topology
            .iter()
            .map(|s| (shard(s), s.failovers.to_string()))
            .collect(),
    );
    let nodes = || {
        topology
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s.shard, n)))
    };
    metric(
        "fhirgate_node_role",
        "gauge",
        "The role a node was last seen in (1 for that role).",
        nodes()
            .map(|(shard, n)| {
                let labels = format!(
                    "{{shard=\"{shard}\",node=\"{}\",role=\"{}\"}}",
                    n.address,
                    n.role.as_str()
                );
                (labels, "1".to_owned())
            })
            .collect(),
    );
    metric(
        "fhirgate_node_replication_lag_bytes",
        "gauge",
        "WAL a standby has yet to replay.",
        nodes()
            .filter_map(|(shard, n)| {
                let labels = format!("{{shard=\"{shard}\",node=\"{}\"}}", n.address);
                n.lag_bytes.map(|lag| (labels, lag.to_string()))
            })
            .collect(),
    );
    metric(
        "fhirgate_requests_answered_total",
        "counter",
        "FHIR requests answered (each audited).",
        vec![(
            String::new(),
            state
                .answered
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        )],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

pub(crate) async fn not_found() -> Response {
    ApiError::NotFound("no such endpoint; the FHIR base is /fhir".into()).into_response()
}

pub(crate) async fn dispatch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // A task of its own: a client that hangs up must never cancel a write half-way (a COMMIT
    // cut off by a dropped future would leave its outcome unknown for no reason).
    let task = tokio::spawn(async move {
        run_request(
            &state,
            peer.ip(),
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            false,
        )
        .await
    });
    match task.await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            ApiError::Internal(format!("request task failed: {e}")).into_response()
        }
    }
}

/// Runs one request, top-level or an entry of a batch or transaction (`nested`), and writes
/// its audit record. Boxed: a batch runs its entries through here.
pub(crate) fn run_request<'a>(
    state: &'a AppState,
    peer: IpAddr,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: Body,
    nested: bool,
) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
    Box::pin(async move {
        let header_str = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let base = match &state.config.base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}/fhir",
                header_str(header::HOST).unwrap_or_else(|| "localhost".into())
            ),
        };
        let request_id = request_id(headers);
        let mut ctx = Ctx {
            audit: AuditRecord {
                client_ip: Some(
                    client_ip(peer, headers, &state.config.trusted_proxies).to_string(),
                ),
                user_agent: header_str(header::USER_AGENT),
                request_id: Some(request_id.clone()),
                method: method.to_string(),
                path: uri.path().to_owned(),
                query: uri.query().map(str::to_owned),
                interaction: "unknown".into(),
                ..AuditRecord::default()
            },
            recorded: false,
            near: None,
            base,
            warnings: Vec::new(),
            peer,
            nested,
            break_glass: false,
            // Nothing until the request is authorized.
            access: model::query::Access {
                all_of: vec![model::query::Restriction::Patients(Vec::new())],
                shared_types: Vec::new(),
            },
        };
        // While a shard's primary is being found again (a failover), what is safe to repeat
        // is retried within the configured window: reads, and the audit append below.
        let deadline = std::time::Instant::now() + state.config.limits.read_retry;
        // A read (not one that opens a break-glass window, a write of its own) may be served
        // by a standby, as far as the caller's `X-Consistency-Token` allows.
        let is_read = matches!(*method, Method::GET | Method::HEAD)
            && !headers.contains_key("x-break-glass-reason");
        let (token, bad_token) = match consistency_token(headers) {
            Ok(token) => (token, None),
            Err(e) => (None, Some(e)),
        };
        let read_at =
            (is_read && state.store.standby_reads()).then(|| token.clone().unwrap_or_default());
        // The response format (a batch entry's response is part of its Bundle: JSON).
        let format = if nested {
            Ok(Format::default())
        } else {
            negotiate(headers, &decode_pairs(uri.query().unwrap_or("").as_bytes()))
        };
        let (format, bad_format) = match format {
            Ok(f) => (f, None),
            Err(e) => (Format::default(), Some(e)),
        };
        let mut result = match bad_token.or(bad_format) {
            Some(e) => Err(e),
            None => {
                attempt(
                    state,
                    method,
                    uri,
                    headers,
                    body,
                    &mut ctx,
                    read_at.as_ref(),
                )
                .await
            }
        };
        if is_read {
            for _ in 0..READ_RETRY_MAX {
                let unavailable =
                    matches!(&result, Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE);
                if !unavailable || std::time::Instant::now() + READ_RETRY_PAUSE > deadline {
                    break;
                }
                tokio::time::sleep(READ_RETRY_PAUSE).await;
                result = attempt(
                    state,
                    method,
                    uri,
                    headers,
                    Body::empty(),
                    &mut ctx,
                    read_at.as_ref(),
                )
                .await;
            }
        }
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                if err.status().is_server_error() {
                    tracing::error!(error = %err, path = %uri.path(), "request failed");
                }
                err.into_response()
            }
        };
        let mut response = represent(response, format).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", v);
        }
        // After a write, the position a later read must see (with standby reads on).
        if !is_read && !nested && state.store.standby_reads() && response.status().is_success() {
            match state.store.consistency_token().await {
                Ok(now) => {
                    let merged = token.as_ref().map_or(now.clone(), |t| t.merge(&now));
                    if let Ok(v) = HeaderValue::from_str(&merged.to_string()) {
                        response.headers_mut().insert(CONSISTENCY_TOKEN, v);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no consistency token for a write"),
            }
        }
        if !ctx.recorded {
            ctx.audit.outcome = response.status().as_u16();
            let near = ctx.near.as_ref().map(|(t, i)| (t.as_str(), i.as_str()));
            let mut appended = state.store.append_audit(near, &ctx.audit).await;
            for _ in 0..READ_RETRY_MAX {
                match &appended {
                    Err(e)
                        if e.is_unavailable()
                            && std::time::Instant::now() + READ_RETRY_PAUSE <= deadline => {}
                    _ => break,
                }
                tokio::time::sleep(READ_RETRY_PAUSE).await;
                appended = state.store.append_audit(near, &ctx.audit).await;
            }
            if let Err(err) = appended {
                tracing::error!(error = %err, "audit record could not be written; refusing the request");
                return ApiError::Unavailable(
                    "the audit log cannot be written; request refused".into(),
                )
                .into_response();
            }
        }
        state
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        response
    })
}

/// The header that carries a [`store::ConsistencyToken`].
const CONSISTENCY_TOKEN: &str = "x-consistency-token";

/// The request's `X-Consistency-Token`, if any; 400 when it is not one.
fn consistency_token(headers: &HeaderMap) -> Result<Option<store::ConsistencyToken>, ApiError> {
    let Some(value) = headers.get(CONSISTENCY_TOKEN) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(store::ConsistencyToken::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad(
                "X-Consistency-Token",
                "not a consistency token: one WAL position (like 0/3000060) per shard, comma separated",
            )
        })
}

/// One attempt at a request; reads run under `read_at` (standby reads) when given.
async fn attempt(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    ctx: &mut Ctx,
    read_at: Option<&store::ConsistencyToken>,
) -> Result<Response, ApiError> {
    match read_at {
        Some(at) => {
            let read = handle(state, method, uri, headers, body, ctx);
            state.store.reading(at.clone(), read).await
        }
        None => handle(state, method, uri, headers, body, ctx).await,
    }
}

async fn handle(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let limits = &state.config.limits;
    let url_len = uri.path().len() + uri.query().map_or(0, str::len);
    if url_len > limits.max_url_bytes {
        return Err(ApiError::UriTooLong(limits.max_url_bytes));
    }
    crate::headers::refuse_repeated(headers)?;
    let pairs = decode_pairs(uri.query().unwrap_or("").as_bytes());
    let path = uri.path().trim_start_matches("/fhir").trim_matches('/');
    let segments: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    if segments.as_slice() == [".well-known", "smart-configuration"] {
        ctx.audit.interaction = "smart-configuration".into();
        return match *method {
            Method::GET => Ok((
                [(header::CONTENT_TYPE, "application/json")],
                state.config.auth.smart_configuration().to_string(),
            )
                .into_response()),
            _ => Err(ApiError::MethodNotAllowed(
                "the SMART configuration is read with GET".into(),
            )),
        };
    }
    if segments.as_slice() == ["metadata"] {
        ctx.audit.interaction = "capabilities".into();
        return match *method {
            Method::GET => Ok(json_response(
                StatusCode::OK,
                crate::capability::capability_statement(&ctx.base).to_string(),
            )),
            _ => Err(ApiError::MethodNotAllowed(
                "metadata is read with GET".into(),
            )),
        };
    }
    let principal = authenticate(state, headers)?;
    ctx.audit.subject = Some(principal.subject.clone());
    ctx.audit.role = Some(principal.role.clone());
    ctx.audit.practitioner = principal.practitioner.clone();
    let reason = break_glass(state, &principal, headers).await?;
    ctx.break_glass = reason.is_some();
    ctx.audit.break_glass = reason;

    let Some((&rtype, rest)) = segments.split_first() else {
        return match *method {
            Method::POST => {
                ctx.audit.interaction = "batch/transaction".into();
                ctx.audit.resource_type = Some("Bundle".into());
                if ctx.nested {
                    return Err(ApiError::bad(
                        "",
                        "a batch or transaction entry cannot be another batch or transaction",
                    ));
                }
                let bytes = read_body(state, headers, body).await?;
                crate::transaction::process(state, &principal, &bytes, headers, ctx).await
            }
            Method::GET => Err(ApiError::NotFound(
                "a search across all types is not supported yet".into(),
            )),
            _ => Err(ApiError::MethodNotAllowed(
                "at the base: POST a batch or transaction, GET _history".into(),
            )),
        };
    };
    if segments.as_slice() == ["_history"] {
        ctx.audit.interaction = "history-system".into();
        if *method != Method::GET {
            return Err(ApiError::MethodNotAllowed(
                "history is read with GET".into(),
            ));
        }
        // Every type at once: only a wildcard read scope grants it.
        ctx.access = read_access(ctx, principal.authorize("*", Action::Read)?);
        return history(state, None, None, &pairs, ctx).await;
    }
    if MetaOp::parse(rtype).is_some()
        || rest
            .first()
            .is_some_and(|op| rest.len() == 1 && MetaOp::parse(op).is_some())
    {
        ctx.audit.interaction = "operation".into();
        return Err(ApiError::NotFound(
            "$meta is served on an instance ([type]/[id]/$meta, $meta-add, $meta-delete) and on \
             a version ([type]/[id]/_history/[vid]/$meta); the system- and type-level forms are \
             not supported"
                .into(),
        ));
    }
    if !is_resource_type(rtype) {
        return Err(ApiError::NotFound(format!("unknown resource type {rtype}")));
    }
    ctx.audit.resource_type = Some(rtype.to_owned());
    if rtype == "AuditEvent" {
        return crate::audit_events::handle(state, &principal, method, rest, &pairs, ctx).await;
    }
    match (method.clone(), rest) {
        (Method::GET, [id, "$everything"]) if rtype == "Patient" => {
            ctx.audit.interaction = "operation".into();
            note_target(ctx, rtype, id)?;
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            everything(state, id, &pairs, ctx).await
        }
        // $validate: the checks of a create or update, without the write.
        (_, [.., op]) if rest.len() <= 2 && is_validate(op) => {
            ctx.audit.interaction = "operation".into();
            let instance = rest.first().filter(|_| rest.len() == 2).copied();
            if let Some(id) = instance {
                note_target(ctx, rtype, id)?;
            }
            if *method != Method::POST {
                return Err(ApiError::MethodNotAllowed(
                    "$validate is called with POST and the resource (or a Parameters holding it)"
                        .into(),
                ));
            }
            // It writes and reads nothing: the scope to create (update, for an instance) the
            // type is what it checks for.
            let action = if instance.is_some() {
                Action::Update
            } else {
                Action::Create
            };
            principal.authorize(rtype, action)?;
            let bytes = read_body(state, headers, body).await?;
            let answer = validate_operation(state, rtype, instance, &bytes);
            Ok(json_response(StatusCode::OK, answer.to_string()))
        }
        // $meta, $meta-add, $meta-delete (meta_ops): reading the meta is a read, changing it
        // an update. Before the terminology operations, which claim every other `$name`.
        (_, [id, op]) if MetaOp::parse(op).is_some() => {
            ctx.audit.interaction = "operation".into();
            note_target(ctx, rtype, id)?;
            match (MetaOp::parse(op), method.clone()) {
                (Some(MetaOp::Read), Method::GET | Method::POST) => {
                    ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
                    crate::meta_ops::read(state, rtype, id, None, ctx).await
                }
                (Some(MetaOp::Read), _) => Err(ApiError::MethodNotAllowed(
                    "$meta is called with GET or POST".into(),
                )),
                (Some(op), Method::POST) => {
                    ctx.access = principal.authorize(rtype, Action::Update)?;
                    let bytes = read_body(state, headers, body).await?;
                    crate::meta_ops::change(state, rtype, id, op, &bytes, headers, ctx).await
                }
                (_, _) => Err(ApiError::MethodNotAllowed(format!(
                    "{op} is called with POST and a Parameters holding meta"
                ))),
            }
        }
        (_, [id, "_history", vid, op]) if MetaOp::parse(op).is_some() => {
            ctx.audit.interaction = "operation".into();
            note_target(ctx, rtype, id)?;
            if MetaOp::parse(op) != Some(MetaOp::Read) {
                return Err(ApiError::MethodNotAllowed(
                    "$meta-add and $meta-delete change the current version only".into(),
                ));
            }
            if !matches!(*method, Method::GET | Method::POST) {
                return Err(ApiError::MethodNotAllowed(
                    "$meta is called with GET or POST".into(),
                ));
            }
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            let version = vid
                .parse::<u64>()
                .map_err(|_| ApiError::NotFound(format!("no version {vid:?}")))?;
            crate::meta_ops::read(state, rtype, id, Some(version), ctx).await
        }
        // Terminology operations, answered from the loaded tables (terminology_ops).
        (_, [.., op]) if rest.len() <= 2 && terminology_ops::is_operation(op) => {
            ctx.audit.interaction = "operation".into();
            let instance = rest.first().filter(|_| rest.len() == 2).copied();
            ctx.audit.resource_id = instance.map(str::to_owned);
            let operation = terminology_ops::parse_operation(rtype, op)?;
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            let parameters = match *method {
                Method::GET => None,
                Method::POST => {
                    let bytes = read_body(state, headers, body).await?;
                    Some(parse_checked(state, "Parameters", &bytes)?)
                }
                _ => {
                    return Err(ApiError::MethodNotAllowed(format!(
                        "{op} is called with GET or POST"
                    )));
                }
            };
            let answer = terminology_ops::run(
                &state.terminology,
                &state.config.limits,
                rtype,
                instance,
                operation,
                &pairs,
                parameters.as_ref(),
            )?;
            Ok(json_response(StatusCode::OK, answer.to_string()))
        }
        // The built-in code systems' ids are reserved: read from the tables, never written.
        (Method::GET, [id]) if rtype == "CodeSystem" && terminology_ops::is_builtin_id(id) => {
            ctx.audit.interaction = "read".into();
            ctx.audit.resource_id = Some((*id).to_owned());
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            let summary = terminology_ops::code_system(&state.terminology, id)?;
            Ok(json_response(StatusCode::OK, summary.to_string()))
        }
        (_, [id, ..]) if rtype == "CodeSystem" && terminology_ops::is_builtin_id(id) => {
            ctx.audit.resource_id = Some((*id).to_owned());
            Err(ApiError::MethodNotAllowed(
                terminology_ops::read_only_message(id),
            ))
        }
        (Method::POST, []) => {
            ctx.audit.interaction = "create".into();
            ctx.access = principal.authorize(rtype, Action::Create)?;
            let bytes = read_body(state, headers, body).await?;
            create(state, rtype, &bytes, headers, ctx).await
        }
        (Method::GET | Method::POST, [] | ["_search"])
            if *method == Method::GET || rest == ["_search"] =>
        {
            ctx.audit.interaction = "search-type".into();
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Search)?);
            let mut all = pairs.clone();
            if *method == Method::POST {
                all.extend(decode_pairs(&read_form(state, headers, body).await?));
            }
            // The built-in code systems answer next to the stored ones.
            if rtype == "CodeSystem" {
                code_system_search(state, &all, headers, ctx).await
            } else {
                search(state, rtype, &all, headers, ctx).await
            }
        }
        (Method::PUT, []) => {
            ctx.audit.interaction = "update".into();
            ctx.access = principal.authorize(rtype, Action::Update)?;
            let criteria = uri.query().unwrap_or("").to_owned();
            let bytes = read_body(state, headers, body).await?;
            conditional_update(state, rtype, &criteria, &bytes, headers, ctx).await
        }
        (Method::DELETE, []) => {
            ctx.audit.interaction = "delete".into();
            ctx.access = principal.authorize(rtype, Action::Delete)?;
            let criteria = uri.query().unwrap_or("").to_owned();
            conditional_delete(state, rtype, &criteria, headers, ctx).await
        }
        (Method::GET, ["_history"]) => {
            ctx.audit.interaction = "history-type".into();
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Search)?);
            history(state, Some(rtype), None, &pairs, ctx).await
        }
        (Method::GET, [id]) => {
            ctx.audit.interaction = "read".into();
            note_target(ctx, rtype, id)?;
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            read(state, rtype, id, None, &pairs, headers, ctx).await
        }
        (Method::PUT, [id]) => {
            ctx.audit.interaction = "update".into();
            note_target(ctx, rtype, id)?;
            ctx.access = principal.authorize(rtype, Action::Update)?;
            let bytes = read_body(state, headers, body).await?;
            update(state, rtype, id, &bytes, headers, ctx).await
        }
        (Method::PATCH, [id]) => {
            ctx.audit.interaction = "patch".into();
            note_target(ctx, rtype, id)?;
            ctx.access = principal.authorize(rtype, Action::Update)?;
            let body = read_patch(state, headers, body).await?;
            patch(state, rtype, id, &body, headers, ctx).await
        }
        (Method::DELETE, [id]) => {
            ctx.audit.interaction = "delete".into();
            note_target(ctx, rtype, id)?;
            ctx.access = principal.authorize(rtype, Action::Delete)?;
            delete(state, rtype, id, headers, ctx).await
        }
        (Method::GET, [id, "_history"]) => {
            ctx.audit.interaction = "history-instance".into();
            note_target(ctx, rtype, id)?;
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            history(state, Some(rtype), Some(id), &pairs, ctx).await
        }
        (Method::GET, [id, "_history", vid]) => {
            ctx.audit.interaction = "vread".into();
            note_target(ctx, rtype, id)?;
            ctx.access = read_access(ctx, principal.authorize(rtype, Action::Read)?);
            let version = vid
                .parse::<u64>()
                .map_err(|_| ApiError::NotFound(format!("no version {vid:?}")))?;
            read(state, rtype, id, Some(version), &pairs, headers, ctx).await
        }
        (_, [] | ["_search"] | ["_history"] | [_] | [_, "_history"] | [_, "_history", _]) => Err(
            ApiError::MethodNotAllowed(format!("{method} is not supported here")),
        ),
        _ => Err(ApiError::NotFound(format!(
            "no such endpoint: {}",
            uri.path()
        ))),
    }
}

/// Decodes `application/x-www-form-urlencoded` (a query string or a form body) into pairs.
/// The request's id: the client's `X-Request-Id` when it is a sane token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    client_request_id(headers).unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

/// The break-glass reason in force for this request: a stated `X-Break-Glass-Reason` opens
/// a window (clinicians only); a clinician's open window applies to requests without it.
async fn break_glass(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let clinician = matches!(principal.role.as_str(), "gp" | "specialist");
    let Some(value) = headers.get("x-break-glass-reason") else {
        if !clinician {
            return Ok(None);
        }
        return Ok(state.store.break_glass_reason(&principal.subject).await?);
    };
    let reason = value.to_str().map(str::trim).unwrap_or("").to_owned();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::bad(
            "X-Break-Glass-Reason",
            "state the reason for break-glass access in 1 to 500 characters",
        ));
    }
    if !clinician {
        return Err(ApiError::Forbidden(
            "break-glass access is for clinicians (gp, specialist)".into(),
        ));
    }
    state
        .store
        .open_break_glass(&principal.subject, &reason, state.config.break_glass_window)
        .await?;
    tracing::warn!(subject = %principal.subject, reason = %reason, "break-glass window opened");
    Ok(Some(reason))
}

/// The access of a read or search: under break-glass, every record.
fn read_access(ctx: &Ctx, access: model::query::Access) -> model::query::Access {
    if ctx.break_glass {
        model::query::Access::everything()
    } else {
        access
    }
}

pub(crate) fn decode_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether a path segment is the `$validate` operation.
fn is_validate(segment: &str) -> bool {
    matches!(segment, "$validate" | "%24validate")
}

/// `$validate` (FHIR R4 Resource-validate): the body is the resource, or a Parameters with
/// it in `resource` (and a `mode`: `create`, `update`, `delete`). The answer is an
/// OperationOutcome listing what a create or update would refuse (structure, required
/// elements, required bindings, codes) and the warnings it would give; it says so when there
/// is nothing to report. The HTTP status is 200 whenever the validation ran.
fn validate_operation(
    state: &AppState,
    rtype: &str,
    instance: Option<&str>,
    bytes: &[u8],
) -> Value {
    let mut mode = None;
    let mut body = bytes.to_vec();
    if rtype != "Parameters"
        && let Ok(Value::Object(parameters)) = serde_json::from_slice::<Value>(bytes)
        && parameters.get("resourceType").and_then(Value::as_str) == Some("Parameters")
    {
        let list = parameters
            .get("parameter")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let named = |name: &str| list.iter().find(|p| p["name"] == name);
        mode = named("mode").and_then(|p| p["valueCode"].as_str().map(str::to_owned));
        match named("resource").map(|p| &p["resource"]) {
            Some(resource @ Value::Object(_)) => body = resource.to_string().into_bytes(),
            _ if mode.as_deref() == Some("delete") => body.clear(),
            _ => {
                return crate::outcome::outcome(vec![crate::outcome::issue_value(
                    &mappings::Issue::error(
                        mappings::IssueCode::Required,
                        "Parameters.parameter",
                        "a Parameters body needs the resource to validate in a parameter named resource",
                    ),
                )]);
            }
        }
    }
    if let Some(m) = mode.as_deref()
        && !matches!(m, "create" | "update" | "delete")
    {
        return crate::outcome::outcome(vec![crate::outcome::issue_value(
            &mappings::Issue::error(
                mappings::IssueCode::Value,
                "Parameters.parameter.valueCode",
                format!("mode must be create, update or delete, not {m:?}"),
            ),
        )]);
    }
    if mode.as_deref() == Some("delete") {
        return crate::outcome::outcome(vec![crate::outcome::information(
            "nothing prevents the delete",
        )]);
    }
    let mut issues = Vec::new();
    match parse_checked(state, rtype, &body) {
        Err(e) => return e.outcome_value(),
        Ok(resource) => {
            if let Some(id) = instance
                && resource.id() != Some(id)
            {
                issues.push(crate::outcome::issue_value(&mappings::Issue::error(
                    mappings::IssueCode::Value,
                    format!("{rtype}.id"),
                    format!("an update of {rtype}/{id} needs the body's id to be {id}"),
                )));
            }
            match crate::validate::check_codes(
                &resource,
                &state.terminology,
                &state.config.terminology_policy,
            ) {
                Ok(warnings) => issues.extend(warnings.iter().map(crate::outcome::issue_value)),
                Err(e) => {
                    if let Value::Array(found) = e.outcome_value()["issue"].take() {
                        issues.extend(found);
                    }
                }
            }
        }
    }
    if issues.is_empty() {
        issues.push(crate::outcome::information(
            "no issues: the resource is valid",
        ));
    }
    crate::outcome::outcome(issues)
}

fn note_target(ctx: &mut Ctx, rtype: &str, id: &str) -> Result<(), ApiError> {
    if !is_valid_id(id) {
        return Err(ApiError::NotFound(format!("{id:?} is not a valid id")));
    }
    ctx.audit.resource_id = Some(id.to_owned());
    ctx.near = Some((rtype.to_owned(), id.to_owned()));
    Ok(())
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?;
    state.config.auth.verify(token.trim())
}

/// The representation a response is written in: FHIR JSON or FHIR XML, compact or
/// indented (`_pretty=true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Format {
    /// FHIR XML rather than FHIR JSON.
    pub xml: bool,
    /// Indented.
    pub pretty: bool,
}

/// The MIME types (and `_format` short names) of FHIR JSON.
fn is_json_type(t: &str) -> bool {
    matches!(
        t,
        "json"
            | "application/json"
            | "application/fhir+json"
            | "application/json+fhir"
            | "text/json"
    )
}

/// The MIME types (and `_format` short names) of FHIR XML.
fn is_xml_type(t: &str) -> bool {
    matches!(
        t,
        "xml" | "text/xml" | "application/xml" | "application/fhir+xml" | "application/xml+fhir"
    )
}

/// Picks the response format: `_format` wins over `Accept` (the spec's rule, for clients
/// that cannot set headers); in `Accept`, the first FHIR format listed (or a wildcard, which
/// means JSON). Anything else is 406.
pub(crate) fn negotiate(
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<Format, ApiError> {
    let pretty = match pairs.iter().rev().find(|(k, _)| k == "_pretty") {
        None => false,
        Some((_, v)) if v == "true" => true,
        Some((_, v)) if v == "false" => false,
        Some((_, v)) => {
            return Err(ApiError::bad(
                "_pretty",
                format!("_pretty is true or false, not {v:?}"),
            ));
        }
    };
    let mime = |t: &str| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    if let Some((_, f)) = pairs.iter().find(|(k, _)| k == "_format") {
        let f = mime(f);
        return if is_json_type(&f) {
            Ok(Format { xml: false, pretty })
        } else if is_xml_type(&f) {
            Ok(Format { xml: true, pretty })
        } else {
            Err(ApiError::NotAcceptable(format!(
                "_format {f:?} is not supported; this server speaks FHIR JSON (json, \
                 application/fhir+json) and FHIR XML (xml, application/fhir+xml)"
            )))
        };
    }
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.trim().is_empty())
    else {
        return Ok(Format { xml: false, pretty });
    };
    for range in accept.split(',') {
        let t = mime(range);
        if is_json_type(&t) || t == "*/*" || t == "application/*" {
            return Ok(Format { xml: false, pretty });
        }
        if is_xml_type(&t) || t == "text/*" {
            return Ok(Format { xml: true, pretty });
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "cannot produce {accept:?}; this server speaks application/fhir+json and application/fhir+xml"
    )))
}

/// Writes a FHIR JSON response in the negotiated format: XML or indented JSON. Other
/// responses (no body, not FHIR JSON) pass unchanged.
pub(crate) async fn represent(response: Response, format: Format) -> Response {
    if format == Format::default() {
        return response;
    }
    let is_fhir_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/fhir+json"));
    if !is_fhir_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return ApiError::Internal(format!("response body: {e}")).into_response(),
    };
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::empty());
    }
    let object = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(o)) => o,
        _ => return Response::from_parts(parts, Body::from(bytes)),
    };
    let (text, ctype) = if format.xml {
        match mappings::xml::to_xml(&object, format.pretty) {
            Ok(x) => (x, FHIR_XML),
            // What FHIR JSON holds but XML cannot (a narrative that is not well-formed
            // XHTML, characters XML forbids): this representation cannot be made.
            Err(e) => {
                tracing::warn!(error = %e, "a response could not be written as XML");
                return ApiError::NotAcceptable(format!(
                    "the response cannot be written as FHIR XML ({e}); ask for application/fhir+json"
                ))
                .into_response();
            }
        }
    } else {
        match serde_json::to_string_pretty(&object) {
            Ok(t) => (t, FHIR_JSON),
            Err(e) => return ApiError::Internal(format!("response body: {e}")).into_response(),
        }
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// The request's `Content-Type` as sent, and its media type in lower case.
fn content_type(headers: &HeaderMap) -> (&str, String) {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (ctype, mime)
}

/// Reads a FHIR JSON body, refusing more than the limit while reading.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let (ctype, mime) = content_type(headers);
    if is_xml_type(&mime) && mime != "xml" {
        // FHIR XML is read into FHIR JSON, which then takes the JSON path's checks.
        let bytes = limited_bytes(state, headers, body).await?;
        let object = mappings::xml::from_xml(&bytes, state.config.limits.max_json_depth)?;
        return serde_json::to_vec(&Value::Object(object))
            .map_err(|e| ApiError::Internal(format!("an XML body could not be read: {e}")));
    }
    if !is_json_type(&mime) || mime == "json" || mime == "text/json" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/fhir+json or application/fhir+xml, got {ctype:?}"
        )));
    }
    limited_bytes(state, headers, body).await
}

/// The body of a PATCH (or of a PATCH entry of a batch or transaction).
pub(crate) enum PatchBody {
    /// A JSON Patch (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// A FHIRPath Patch (a Parameters resource in FHIR JSON or XML).
    FhirPath(Vec<crate::fhirpatch::Operation>),
}

/// Reads a PATCH body under the body limit: a JSON Patch (`application/json-patch+json`),
/// or a FHIRPath Patch in FHIR JSON or XML.
async fn read_patch(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<PatchBody, ApiError> {
    let (ctype, mime) = content_type(headers);
    if mime == "application/json-patch+json" {
        let bytes = limited_bytes(state, headers, body).await?;
        let operations = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad("", format!("the body is not a JSON Patch document: {e}"))
        })?;
        return Ok(PatchBody::Json(operations));
    }
    if !(is_json_type(&mime) || is_xml_type(&mime)) || matches!(mime.as_str(), "json" | "xml") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json or \
             application/fhir+xml (FHIRPath Patch, a Parameters resource), got {ctype:?}"
        )));
    }
    let bytes = read_body(state, headers, body).await?;
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::bad(
            "",
            "a FHIRPath Patch is a Parameters resource; send a JSON Patch (an array of \
             operations) as application/json-patch+json",
        ));
    }
    let parameters = parse_checked(state, "Parameters", &bytes)?;
    let operations = crate::fhirpatch::parse(&Value::Object(parameters.object().clone()))?;
    Ok(PatchBody::FhirPath(operations))
}

async fn read_form(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(
            "POST _search takes application/x-www-form-urlencoded".into(),
        ));
    }
    let bytes = limited_bytes(state, headers, body).await?;
    if bytes.len() > state.config.limits.max_url_bytes {
        return Err(ApiError::UriTooLong(state.config.limits.max_url_bytes));
    }
    Ok(bytes)
}

async fn limited_bytes(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    crate::headers::plain_utf8_body(headers)?;
    let max = state.config.limits.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::TooLarge(max));
    }
    match axum::body::to_bytes(body, max).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(err) => {
            let inner = err.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                Err(ApiError::TooLarge(max))
            } else {
                Err(ApiError::bad(
                    "",
                    format!("could not read the request body: {inner}"),
                ))
            }
        }
    }
}

pub(crate) fn parse_checked(
    state: &AppState,
    rtype: &str,
    bytes: &[u8],
) -> Result<Resource, ApiError> {
    let resource = parse_envelope(state, rtype, bytes)?;
    let issues = mappings::rules::check(&resource);
    if !issues.is_empty() {
        return Err(ApiError::Unprocessable(issues));
    }
    Ok(resource)
}

/// [`parse_checked`] without the R4 structure check: for a batch or transaction Bundle,
/// whose entries are checked one by one (a bad entry of a batch fails alone).
pub(crate) fn parse_envelope(
    state: &AppState,
    rtype: &str,
    bytes: &[u8],
) -> Result<Resource, ApiError> {
    let limits = JsonLimits {
        max_depth: state.config.limits.max_json_depth,
    };
    let resource = parse_resource(bytes, &limits).map_err(|e| match e {
        // An unknown type in a body is a bad body, not a missing endpoint.
        mappings::MappingError::UnknownType(t) => {
            ApiError::bad("resourceType", format!("unknown resource type {t}"))
        }
        other => other.into(),
    })?;
    if resource.resource_type() != rtype {
        return Err(ApiError::bad(
            "resourceType",
            format!(
                "the body is a {} but the URL names {rtype}",
                resource.resource_type()
            ),
        ));
    }
    Ok(resource)
}

/// Whether a read's `If-None-Match` (version ETags, or `*`) or `If-Modified-Since` says the
/// client's copy is current. `If-None-Match` wins when both are sent (RFC 9110 §13.1.3);
/// one that is not a list of entity tags is 400, an `If-Modified-Since` that is not a date
/// is ignored (RFC 9110 §13.1.3 says so).
fn not_modified(headers: &HeaderMap, stored: &Stored) -> Result<bool, ApiError> {
    if let Some(tags) = crate::headers::if_none_match(headers)? {
        let current = stored.version.to_string();
        return Ok(tags.iter().any(|tag| tag == "*" || *tag == current));
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
    {
        // HTTP dates have whole seconds.
        return Ok(stored.updated_at.timestamp() <= since.timestamp());
    }
    Ok(false)
}

pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    let inner = text.trim().trim_start_matches("W/").trim_matches('"');
    inner.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad(
            "If-Match",
            format!("{text:?} is not a version ETag like W/\"3\""),
        )
    })
}

pub(crate) fn prefer_minimal(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=minimal"))
}

/// `Prefer: return=OperationOutcome`: the client wants the write's warnings, not the resource.
pub(crate) fn prefer_outcome(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("return=operationoutcome"))
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

pub(crate) fn version_headers(
    r: &mut Response,
    version: u64,
    updated: chrono::DateTime<chrono::Utc>,
) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&updated.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// [`render`], moving the entity out of `stored` instead of copying its fields.
pub(crate) fn render_taking(stored: &mut Stored) -> Option<Value> {
    let at = format_instant(stored.updated_at.timestamp_micros());
    stored
        .entity
        .take()
        .map(|e| Value::Object(mappings::entity::into_fhir(e, Some(&at))))
}

/// The current version of `rtype/id` that a change starts from, and its FHIR rendering:
/// 404 if it is unknown (or not visible), 410 if it was deleted.
pub(crate) async fn read_current(
    state: &AppState,
    rtype: &str,
    id: &str,
    ctx: &Ctx,
) -> Result<(Stored, Value), ApiError> {
    let current = state
        .store
        .read(rtype, id, &ctx.access)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{rtype}/{id} is not known")))?;
    match render(&current) {
        Some(document) => Ok((current, document)),
        None => Err(ApiError::Gone(format!(
            "{rtype}/{id} was deleted (version {})",
            current.version
        ))),
    }
}

/// Renders a stored entity as FHIR JSON text.
pub(crate) fn render(stored: &Stored) -> Option<Value> {
    stored.entity.as_ref().map(|e| {
        Value::Object(to_fhir(
            e,
            Some(&format_instant(stored.updated_at.timestamp_micros())),
        ))
    })
}

async fn create(
    state: &AppState,
    rtype: &str,
    bytes: &[u8],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let resource = parse_checked(state, rtype, bytes)?;
    let Some(value) = headers.get("if-none-exist") else {
        return create_parsed(state, rtype, resource, headers, ctx).await;
    };
    // Conditional create: the check and the write run under one lock per (type, criteria),
    // so concurrent retries of the same create make one resource.
    let criteria = value
        .to_str()
        .map_err(|_| ApiError::bad("If-None-Exist", "the header is not text"))?
        .trim_start_matches('?')
        .to_owned();
    under_match_lock(state, rtype, &criteria, async {
        match conditional_match(state, rtype, &criteria, "If-None-Exist", &ctx.access).await? {
            None => create_parsed(state, rtype, resource, headers, ctx).await,
            Some(existing) => {
                ctx.audit.resource_id = existing.entity.as_ref().map(|e| e.id.clone());
                ctx.audit.version = Some(existing.version);
                let body = render(&existing).map(|v| v.to_string()).unwrap_or_default();
                let mut r = json_response(StatusCode::OK, body);
                version_headers(&mut r, existing.version, existing.updated_at);
                Ok(r)
            }
        }
    })
    .await
}

/// The lock key of conditional interactions on (type, criteria): conditional creates,
/// updates and deletes with the same criteria run one at a time.
pub(crate) fn match_key(rtype: &str, criteria: &str) -> String {
    format!("match:{rtype}?{}", criteria.trim_start_matches('?'))
}

/// Runs `work` holding the conditional-interaction lock of (type, criteria).
async fn under_match_lock<T>(
    state: &AppState,
    rtype: &str,
    criteria: &str,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let lock = state.store.lock(&[match_key(rtype, criteria)]).await?;
    let result = work.await;
    // Release explicitly: a dropped transaction's rollback waits until its pooled connection
    // is next used, and the lock with it.
    if let Err(err) = lock.release().await {
        tracing::warn!(error = %err, "releasing a conditional-interaction lock failed");
    }
    result
}

/// Creates a parsed resource under a new server-assigned id.
async fn create_parsed(
    state: &AppState,
    rtype: &str,
    mut resource: Resource,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    ctx.warnings = check_codes(
        &resource,
        &state.terminology,
        &state.config.terminology_policy,
    )?;
    let mut entity = to_entity(&resource);
    // The server assigns the id on create (a client's id is ignored, as the spec says). A
    // client `X-Request-Id` makes the create idempotent: the id derives from the caller, the
    // type, that id and the body (hashed before the id is set), so a retry of the same
    // request (after a 503 or a lost answer) finds the first one, while a reused request id
    // with another body is another create, never a silently dropped one.
    let patient = if rtype == "Patient" {
        None
    } else {
        entity.patient.clone()
    };
    let key = client_request_id(headers)
        .filter(|_| !ctx.nested)
        .map(|request| {
            let subject = ctx.audit.subject.as_deref().unwrap_or_default();
            let body = serde_json::to_vec(resource.object()).unwrap_or_default();
            let body = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
            format!("create\n{subject}\n{rtype}\n{request}\n{body}")
        });
    let id = match &key {
        Some(key) => state.store.idempotent_id(patient.as_deref(), key),
        None => state.store.new_id(patient.as_deref()),
    };
    resource.set_id(&id);
    entity.id = id.clone();
    if rtype == "Patient" {
        entity.patient = Some(id.clone());
    }
    ctx.audit.resource_id = Some(id.clone());
    ctx.audit.patients = entity.patient.iter().cloned().collect();
    let written = write(
        state,
        WriteKind::Create,
        resource,
        entity,
        None,
        headers,
        ctx,
    )
    .await;
    match written {
        // The id exists: this request was made before (or concurrently, and the other one
        // committed). Answer where it is, not what it holds now: the caller may only be
        // allowed to create, and the resource may have changed since.
        Err(ApiError::Conflict(text)) if key.is_some() => {
            match state.store.read(rtype, &id, &ctx.access).await {
                Ok(Some(existing)) if existing.entity.is_some() => {
                    ctx.audit.version = Some(1);
                    let body = outcome(vec![information(
                        "already created by an earlier request with this X-Request-Id and \
                         body; the Location names it",
                    )])
                    .to_string();
                    let mut r = json_response(StatusCode::OK, body);
                    if let Ok(location) =
                        HeaderValue::from_str(&format!("{}/{rtype}/{id}/_history/1", ctx.base))
                    {
                        r.headers_mut().insert(header::LOCATION, location);
                    }
                    Ok(r)
                }
                _ => Err(ApiError::Conflict(text)),
            }
        }
        other => other,
    }
}

/// The client's own `X-Request-Id`, when it is a sane token (else none).
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
}

/// `PUT [type]?criteria`: updates the one match, creates when nothing matches (under the
/// body's id if it has one), 412 when several match.
async fn conditional_update(
    state: &AppState,
    rtype: &str,
    criteria: &str,
    bytes: &[u8],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    if criteria.is_empty() {
        return Err(ApiError::MethodNotAllowed(
            "PUT on a type needs search criteria (a conditional update)".into(),
        ));
    }
    let resource = parse_checked(state, rtype, bytes)?;
    under_match_lock(state, rtype, criteria, async {
        let found = conditional_match(state, rtype, criteria, "url", &ctx.access).await?;
        let target = found.and_then(|s| s.entity.map(|e| e.id));
        match (target, resource.id().map(str::to_owned)) {
            (Some(id), Some(body_id)) if id != body_id => Err(ApiError::bad(
                format!("{rtype}.id"),
                format!("the body's id {body_id:?} is not the id of the match, {id:?}"),
            )),
            (Some(id), _) | (None, Some(id)) => {
                note_target(ctx, rtype, &id)?;
                let mut resource = resource;
                resource.set_id(&id);
                update_parsed(state, rtype, &id, resource, headers, ctx).await
            }
            (None, None) => create_parsed(state, rtype, resource, headers, ctx).await,
        }
    })
    .await
}

/// `DELETE [type]?criteria`: deletes the one match (nothing to do when none), 412 when
/// several match.
async fn conditional_delete(
    state: &AppState,
    rtype: &str,
    criteria: &str,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    if criteria.is_empty() {
        return Err(ApiError::MethodNotAllowed(
            "DELETE on a type needs search criteria (a conditional delete)".into(),
        ));
    }
    under_match_lock(state, rtype, criteria, async {
        match conditional_match(state, rtype, criteria, "url", &ctx.access).await? {
            Some(Stored {
                entity: Some(existing),
                ..
            }) => {
                note_target(ctx, rtype, &existing.id)?;
                delete(state, rtype, &existing.id, headers, ctx).await
            }
            _ => Ok(StatusCode::NO_CONTENT.into_response()),
        }
    })
    .await
}

/// `PATCH [type]/[id]` with a JSON Patch or a FHIRPath Patch: applied to the current
/// version, then written as an update of exactly that version (the version the client named
/// in `If-Match`, else the one read), so a concurrent write makes it fail instead of being
/// lost.
async fn patch(
    state: &AppState,
    rtype: &str,
    id: &str,
    body: &PatchBody,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let (current, mut document) = read_current(state, rtype, id, ctx).await?;
    let expected = match if_match(headers)? {
        Some(v) if v != current.version => {
            return Err(ApiError::PreconditionFailed(format!(
                "version {v} is not the current version {}",
                current.version
            )));
        }
        _ => current.version,
    };
    let patched = apply_patch(&mut document, body, rtype, id, &state.config.limits)?;
    let resource = parse_checked(state, rtype, &patched)?;
    let mut pinned = headers.clone();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{expected}\"")) {
        pinned.insert(header::IF_MATCH, v);
    }
    update_parsed(state, rtype, id, resource, &pinned, ctx).await
}

/// Applies `body` to `document`, the current rendering of `rtype/id`: the server's meta
/// (`versionId`, `lastUpdated`) is dropped first (it is set again on write), the patched
/// resource must stay under the body limit (413) and keep its id (422). Returns the patched
/// resource encoded (what the size was checked on). Used by `PATCH` and by the PATCH entries
/// of a transaction.
pub(crate) fn apply_patch(
    document: &mut Value,
    body: &PatchBody,
    rtype: &str,
    id: &str,
    limits: &crate::Limits,
) -> Result<Vec<u8>, ApiError> {
    if let Some(meta) = document.get_mut("meta").and_then(Value::as_object_mut) {
        meta.shift_remove("versionId");
        meta.shift_remove("lastUpdated");
    }
    match body {
        PatchBody::Json(operations) => {
            crate::patching::apply(document, operations, rtype, limits)?;
        }
        PatchBody::FhirPath(operations) => crate::fhirpatch::apply(document, operations)?,
    }
    if document
        .get("meta")
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
        && let Some(o) = document.as_object_mut()
    {
        o.shift_remove("meta");
    }
    let patched = serde_json::to_vec(&*document)
        .map_err(|e| ApiError::Internal(format!("re-encoding a patched resource: {e}")))?;
    let max = limits.max_body_bytes;
    if patched.len() > max {
        return Err(ApiError::TooCostly(format!(
            "the patched resource would be larger than the body limit of {max} bytes"
        )));
    }
    if document.get("id").and_then(Value::as_str) != Some(id) {
        return Err(ApiError::Unprocessable(vec![mappings::Issue::error(
            mappings::IssueCode::Invariant,
            format!("{rtype}.id"),
            "a patch may not change the resource's id",
        )]));
    }
    Ok(patched)
}

async fn update(
    state: &AppState,
    rtype: &str,
    id: &str,
    bytes: &[u8],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let resource = parse_checked(state, rtype, bytes)?;
    match resource.id() {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(ApiError::bad(
                format!("{rtype}.id"),
                format!("the body's id {body_id:?} differs from the URL's {id:?}"),
            ));
        }
        None => {
            return Err(ApiError::bad(
                format!("{rtype}.id"),
                "an update must carry the resource's id",
            ));
        }
    }
    update_parsed(state, rtype, id, resource, headers, ctx).await
}

/// Writes a parsed resource as the new version of `rtype/id` (creating it if new).
pub(crate) async fn update_parsed(
    state: &AppState,
    rtype: &str,
    id: &str,
    resource: Resource,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let expected = if_match(headers)?;
    ctx.warnings = check_codes(
        &resource,
        &state.terminology,
        &state.config.terminology_policy,
    )?;
    let mut entity = to_entity(&resource);
    entity.id = id.to_owned();
    if rtype == "Patient" {
        entity.patient = Some(id.to_owned());
    }
    ctx.audit.patients = entity.patient.iter().cloned().collect();
    write(
        state,
        WriteKind::Upsert,
        resource,
        entity,
        expected,
        headers,
        ctx,
    )
    .await
}

async fn write(
    state: &AppState,
    kind: WriteKind,
    resource: Resource,
    entity: model::Entity,
    expected: Option<u64>,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let index = mappings::search::index_entries(&resource);
    let rtype = entity.source_type.clone();
    let id = entity.id.clone();
    // The record is committed with the write, so it states the outcome of a commit.
    ctx.audit.outcome = if kind == WriteKind::Create { 201 } else { 200 };
    let written = state
        .store
        .write(kind, &entity, &index, expected, &mut ctx.audit, &ctx.access)
        .await?;
    ctx.recorded = true;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if !written.created && ctx.audit.outcome == 201 {
        ctx.audit.outcome = 200;
    }
    let mut stored_entity = entity;
    stored_entity.version = written.version;
    let stored = Stored {
        version: written.version,
        updated_at: written.updated_at,
        entity: Some(stored_entity),
    };
    let warnings = &ctx.warnings;
    if !warnings.is_empty() {
        tracing::info!(
            resource_type = %rtype,
            id = %id,
            warnings = warnings.len(),
            "stored with terminology warnings"
        );
    }
    // Warnings reach the client only through `return=OperationOutcome`: FHIR has no other
    // standard place for them in a create or update response.
    let body = if prefer_minimal(headers) {
        String::new()
    } else if prefer_outcome(headers) {
        let mut issues: Vec<Value> = warnings.iter().map(issue_value).collect();
        let done = if written.created {
            "created"
        } else {
            "updated"
        };
        issues.push(information(&format!(
            "{done} {rtype}/{id} version {}",
            written.version
        )));
        outcome(issues).to_string()
    } else {
        render(&stored).map(|v| v.to_string()).unwrap_or_default()
    };
    let mut r = json_response(status, body);
    version_headers(&mut r, written.version, written.updated_at);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}/{rtype}/{id}/_history/{}",
        ctx.base, written.version
    )) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn delete(
    state: &AppState,
    rtype: &str,
    id: &str,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let expected = if_match(headers)?;
    ctx.audit.outcome = 204;
    match state
        .store
        .delete(rtype, id, expected, &mut ctx.audit, &ctx.access)
        .await?
    {
        Some(written) => {
            ctx.recorded = true;
            let mut r = StatusCode::NO_CONTENT.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", written.version)) {
                r.headers_mut().insert(header::ETAG, v);
            }
            Ok(r)
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The `_summary` of a read: `true`, `text`, `data` or `false` (`count` is a search's).
fn read_summary(pairs: &[(String, String)]) -> Result<Option<crate::results::Summary>, ApiError> {
    use crate::results::Summary;
    let mut given = pairs.iter().filter(|(k, _)| k == "_summary");
    let Some((_, value)) = given.next() else {
        return Ok(None);
    };
    if given.next().is_some() {
        return Err(ApiError::bad("_summary", "_summary may be given only once"));
    }
    match value.as_str() {
        "true" => Ok(Some(Summary::True)),
        "text" => Ok(Some(Summary::Text)),
        "data" => Ok(Some(Summary::Data)),
        "false" => Ok(None),
        other => Err(ApiError::bad(
            "_summary",
            format!("_summary={other} does not apply to a read (true, text, data and false do)"),
        )),
    }
}

async fn read(
    state: &AppState,
    rtype: &str,
    id: &str,
    version: Option<u64>,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let summary = read_summary(pairs)?;
    let stored = match version {
        None => state.store.read(rtype, id, &ctx.access).await?,
        Some(v) => state.store.vread(rtype, id, v, &ctx.access).await?,
    };
    let Some(stored) = stored else {
        return Err(ApiError::NotFound(match version {
            None => format!("{rtype}/{id} is not known"),
            Some(v) => format!("{rtype}/{id} has no version {v}"),
        }));
    };
    ctx.audit.version = Some(stored.version);
    if let Some(p) = stored.entity.as_ref().and_then(|e| e.patient.clone()) {
        ctx.audit.patients = vec![p];
    }
    let mut stored = stored;
    let Some(body) = render_taking(&mut stored) else {
        return Err(ApiError::Gone(format!(
            "{rtype}/{id} was deleted (version {})",
            stored.version
        )));
    };
    if not_modified(headers, &stored)? {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        version_headers(&mut r, stored.version, stored.updated_at);
        return Ok(r);
    }
    let mut body = body;
    if let Some(summary) = summary {
        crate::results::summarize(&mut body, summary);
    }
    let mut r = json_response(StatusCode::OK, body.to_string());
    version_headers(&mut r, stored.version, stored.updated_at);
    Ok(r)
}

async fn search(
    state: &AppState,
    rtype: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let body = search_bundle(state, rtype, pairs, headers, ctx).await?;
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// Runs a search and builds its searchset Bundle.
async fn search_bundle(
    state: &AppState,
    rtype: &str,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Value, ApiError> {
    let limits = SearchLimits {
        default_count: state.config.limits.default_count,
        max_count: state.config.limits.max_count,
    };
    let (query_pairs, results) = crate::results::split(pairs)?;
    // Chains and _has become plain parameters (ids they name), or match nothing at all.
    let resolved = crate::chains::resolve(state, rtype, &query_pairs, &ctx.access).await?;
    let matches_nothing = resolved.is_none();
    let effective = resolved.unwrap_or_else(|| {
        query_pairs
            .iter()
            .filter(|(k, _)| !k.contains('.') && !k.starts_with("_has:"))
            .cloned()
            .collect()
    });
    let mut parsed = parse_query(rtype, &effective, &limits).map_err(ApiError::Malformed)?;
    let mut ignored = parsed.ignored.clone();
    ignored.extend(results.ignored.iter().cloned());
    // Unknown or unsupported parameters: refused under strict handling, else reported.
    if crate::results::strict(headers) && !ignored.is_empty() {
        return Err(ApiError::Malformed(ignored));
    }
    expand_hierarchies(&state.terminology, &mut parsed.query)?;
    parsed.query.access = ctx.access.clone();
    if results.summary_count {
        parsed.query.total = true;
        parsed.query.count = 0;
    }
    let page = if matches_nothing {
        store::Page {
            items: Vec::new(),
            next: None,
            total: parsed.query.total.then_some(0),
        }
    } else {
        state.store.search(&parsed.query).await?
    };
    let matches: Vec<crate::results::Keyed> = page
        .items
        .iter()
        .filter_map(|s| {
            let e = s.entity.as_ref()?;
            Some((e.source_type.clone(), e.id.clone(), s.clone()))
        })
        .collect();
    let (included, include_warnings) = if results.summary_count {
        (Vec::new(), Vec::new())
    } else {
        crate::results::included(state, &ctx.access, &matches, &results).await?
    };
    ignored.extend(include_warnings);
    let mut patients: Vec<String> = matches
        .iter()
        .chain(&included)
        .filter_map(|(_, _, s)| s.entity.as_ref().and_then(|e| e.patient.clone()))
        .collect();
    patients.sort();
    patients.dedup();
    ctx.audit.patients = patients;
    let warnings: Vec<Value> = ignored.iter().map(issue_value).collect();
    let warning = (!warnings.is_empty()).then(|| outcome(warnings));
    Ok(bundle::searchset(
        &ctx.base, rtype, &parsed, &page, &included, &results, warning,
    ))
}

/// A type-level CodeSystem search: the built-in code systems that match, ahead of the stored
/// ones on the first page; the built-ins alone when the query filters by a parameter the
/// store cannot (see `terminology_ops`).
async fn code_system_search(
    state: &AppState,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let builtin = terminology_ops::search_builtin(&state.terminology, &ctx.base, pairs)?;
    if !builtin.ask_store {
        let bundle = builtin.bundle(&ctx.base, pairs);
        return Ok(json_response(StatusCode::OK, bundle.to_string()));
    }
    let mut bundle = search_bundle(state, "CodeSystem", pairs, headers, ctx).await?;
    builtin.merge_into(&mut bundle);
    Ok(json_response(StatusCode::OK, bundle.to_string()))
}

/// The one resource matching conditional-create criteria, `None` when nothing matches, 412
/// when several do. Criteria the server cannot evaluate are an error, never ignored: an
/// ignored criterion would match resources the client did not mean.
pub(crate) async fn conditional_match(
    state: &AppState,
    rtype: &str,
    criteria: &str,
    what: &str,
    access: &model::query::Access,
) -> Result<Option<Stored>, ApiError> {
    let mut query = match_query(&state.terminology, rtype, criteria, what)?;
    query.access = access.clone();
    let mut page = state.store.search(&query).await?;
    match page.items.len() {
        0 => Ok(None),
        1 => Ok(page.items.pop()),
        _ => Err(ApiError::PreconditionFailed(format!(
            "{what}: more than one {rtype} matches {criteria:?}"
        ))),
    }
}

/// The query of a conditional interaction's criteria (at most two matches asked for, no
/// access yet): criteria it cannot evaluate exactly, or that select every resource, are 400.
pub(crate) fn match_query(
    terminology: &terminology::Terminology,
    rtype: &str,
    criteria: &str,
    what: &str,
) -> Result<model::query::Query, ApiError> {
    let pairs = decode_pairs(criteria.trim_start_matches('?').as_bytes());
    if pairs.is_empty() {
        return Err(ApiError::bad(what, "the criteria are empty"));
    }
    let limits = SearchLimits {
        default_count: 2,
        max_count: 2,
    };
    let mut parsed = parse_query(rtype, &pairs, &limits).map_err(ApiError::Malformed)?;
    if let Some(issue) = parsed.ignored.first() {
        return Err(ApiError::bad(
            what,
            format!("criteria the server cannot evaluate: {}", issue.diagnostics),
        ));
    }
    if parsed.query.all_of.is_empty() {
        return Err(ApiError::bad(
            what,
            format!("{criteria:?} selects nothing: every {rtype} would match"),
        ));
    }
    parsed.query.count = 2;
    parsed.query.after_id = None;
    expand_hierarchies(terminology, &mut parsed.query)?;
    Ok(parsed.query)
}

/// Resolves `:below` / `:above` token searches into the codes of the loaded hierarchy.
pub(crate) fn expand_hierarchies(
    terminology: &terminology::Terminology,
    query: &mut model::query::Query,
) -> Result<(), ApiError> {
    use model::query::{Expand, Predicate};
    for predicate in query.all_of.iter_mut().flatten() {
        if let Predicate::TokenIn {
            param,
            system,
            codes,
            expand: expand @ Some(_),
        } = predicate
        {
            if !terminology.is_loaded(system) {
                return Err(ApiError::bad(
                    param.clone(),
                    format!(
                        "code system {system} is not loaded, so its hierarchy cannot be searched"
                    ),
                ));
            }
            let Some(code) = codes.first().cloned() else {
                continue;
            };
            let related = match expand {
                Some(Expand::Below) => terminology.descendants(system, &code),
                _ => terminology.ancestors(system, &code),
            };
            codes.extend(related.into_iter().map(str::to_owned));
            *expand = None;
        }
    }
    Ok(())
}

async fn history(
    state: &AppState,
    rtype: Option<&str>,
    id: Option<&str>,
    pairs: &[(String, String)],
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let mut count = state.config.limits.default_count;
    let mut cursor = None;
    let mut window = store::HistoryWindow::default();
    let instant = |name: &str, v: &str| {
        mappings::dates::parse_range(v)
            .and_then(|(low, high)| {
                Some((
                    chrono::DateTime::from_timestamp_micros(low)?,
                    chrono::DateTime::from_timestamp_micros(high)?,
                ))
            })
            .ok_or_else(|| ApiError::bad(name, format!("{v:?} is not a FHIR date or instant")))
    };
    for (k, v) in pairs {
        match k.as_str() {
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad("_count", format!("{v:?} is not a whole number")))?
                    .min(state.config.limits.max_count)
            }
            "_cursor" => cursor = Some(v.clone()),
            "_since" => window.since = Some(instant("_since", v)?.0),
            "_at" => window.at = Some(instant("_at", v)?),
            _ => {}
        }
    }
    let page = match (rtype, id) {
        (Some(rtype), Some(id)) => {
            let before = cursor
                .as_deref()
                .map(|c| {
                    c.parse::<u64>()
                        .map_err(|_| ApiError::bad("_cursor", "invalid paging cursor"))
                })
                .transpose()?;
            let page = state
                .store
                .history_instance(rtype, id, count, before, &ctx.access, &window)
                .await?;
            if page.items.is_empty()
                && before.is_none()
                && state.store.read(rtype, id, &ctx.access).await?.is_none()
            {
                return Err(ApiError::NotFound(format!("{rtype}/{id} is not known")));
            }
            page
        }
        _ => state
            .store
            .history_type(rtype, count, cursor.as_deref(), &ctx.access, &window)
            .await
            .map_err(|e| match e {
                store::StoreError::Config(t) => ApiError::bad("_cursor", t),
                other => other.into(),
            })?,
    };
    let self_path = match (rtype, id) {
        (Some(rtype), Some(id)) => format!("{rtype}/{id}/_history"),
        (Some(rtype), None) => format!("{rtype}/_history"),
        _ => "_history".to_owned(),
    };
    let kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "_since" || k == "_at")
        .cloned()
        .collect();
    let body = bundle::history(&ctx.base, &self_path, count, &kept, &page);
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `Patient/[id]/$everything`: the patient's compartment (the Patient first, then by type
/// and id), paged with `_count` and a `(type/id)` cursor, filtered by `_since` and `_type`,
/// with the resources outside the compartment that a page refers to (practitioners,
/// organizations …) as `include` entries. Everything passes the caller's access.
async fn everything(
    state: &AppState,
    id: &str,
    pairs: &[(String, String)],
    ctx: &mut Ctx,
) -> Result<Response, ApiError> {
    let mut count = state.config.limits.default_count;
    let mut since = None;
    let mut types: Option<Vec<String>> = None;
    let mut after: Option<(String, String)> = None;
    for (k, v) in pairs {
        match k.as_str() {
            "_count" => {
                count = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad("_count", format!("{v:?} is not a whole number")))?
                    .clamp(1, state.config.limits.max_count)
            }
            "_since" => {
                let (low, _) = mappings::dates::parse_range(v).ok_or_else(|| {
                    ApiError::bad("_since", format!("{v:?} is not a FHIR instant"))
                })?;
                since = chrono::DateTime::from_timestamp_micros(low);
            }
            "_type" => {
                let list: Vec<String> = v.split(',').map(|t| t.trim().to_owned()).collect();
                if let Some(bad) = list.iter().find(|t| !is_resource_type(t)) {
                    return Err(ApiError::bad(
                        "_type",
                        format!("{bad:?} is not a resource type"),
                    ));
                }
                types = Some(list);
            }
            "_cursor" => {
                let (t, i) = v
                    .split_once('/')
                    .filter(|(t, i)| is_resource_type(t) && is_valid_id(i))
                    .ok_or_else(|| ApiError::bad("_cursor", "invalid paging cursor"))?;
                after = Some((t.to_owned(), i.to_owned()));
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(ApiError::bad(
                    other,
                    "$everything takes _since, _type and _count",
                ));
            }
        }
    }
    let visible = state.store.read("Patient", id, &ctx.access).await?;
    if visible.as_ref().is_none_or(|s| s.entity.is_none()) {
        return Err(ApiError::NotFound(format!("Patient/{id} is not known")));
    }
    ctx.audit.patients = vec![id.to_owned()];
    let (mut items, more) = state
        .store
        .compartment(
            id,
            types.as_deref(),
            since,
            after.as_ref().map(|(t, i)| (t.as_str(), i.as_str())),
            count,
            &ctx.access,
        )
        .await?;
    let next = if more {
        items.last().map(|(t, i, _)| format!("{t}/{i}"))
    } else {
        None
    };
    // The Patient leads the first page.
    if let Some(patient) = visible
        && after.is_none()
        && types
            .as_ref()
            .is_none_or(|t| t.iter().any(|t| t == "Patient"))
        && since.is_none_or(|s| patient.updated_at >= s)
    {
        items.insert(0, ("Patient".to_owned(), id.to_owned(), patient));
    }
    let rendered: Vec<Value> = items.iter().filter_map(|(_, _, s)| render(s)).collect();
    // What the page refers to outside the compartment.
    let mut refs = std::collections::BTreeSet::new();
    for r in &rendered {
        collect_references(r, &mut refs);
    }
    let have: std::collections::HashSet<(String, String)> = items
        .iter()
        .map(|(t, i, _)| (t.clone(), i.clone()))
        .collect();
    let wanted: Vec<(String, String)> = refs.into_iter().filter(|k| !have.contains(k)).collect();
    let referenced = state.store.read_many(&wanted, &ctx.access).await?;
    let entry = |resource: Value, mode: &str| {
        let url = format!(
            "{}/{}/{}",
            ctx.base,
            resource["resourceType"].as_str().unwrap_or_default(),
            resource["id"].as_str().unwrap_or_default()
        );
        json!({ "fullUrl": url, "resource": resource, "search": { "mode": mode } })
    };
    let mut entries: Vec<Value> = rendered.into_iter().map(|r| entry(r, "match")).collect();
    // Only what lies outside the compartment: the compartment's own are pages' matches.
    entries.extend(
        referenced
            .iter()
            .filter(|(_, _, s)| {
                s.entity
                    .as_ref()
                    .is_some_and(|e| e.patient.as_deref() != Some(id))
            })
            .filter_map(|(_, _, s)| render(s))
            .map(|r| entry(r, "include")),
    );
    let mut params: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "_cursor" && k != "_count")
        .cloned()
        .collect();
    params.push(("_count".into(), count.to_string()));
    let encode = |extra: Option<&str>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(c) = extra {
            s.append_pair("_cursor", c);
        }
        s.finish()
    };
    let path = format!("{}/Patient/{id}/$everything", ctx.base);
    let mut links = vec![json!({"relation": "self", "url": format!("{path}?{}", encode(None))})];
    if let Some(c) = &next {
        links.push(json!({"relation": "next", "url": format!("{path}?{}", encode(Some(c)))}));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    Ok(json_response(StatusCode::OK, bundle.to_string()))
}

/// Every relative reference (`Type/id`) in a resource.
fn collect_references(value: &Value, out: &mut std::collections::BTreeSet<(String, String)>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("reference", Value::String(r)) => {
                        if let Some((t, i)) = r.split_once('/')
                            && is_resource_type(t)
                            && is_valid_id(i)
                        {
                            out.insert((t.to_owned(), i.to_owned()));
                        }
                    }
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}
