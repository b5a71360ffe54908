//! The one place where errors become HTTP statuses and OperationOutcome bodies.
//!
//! | error | status | issue code |
//! |---|---|---|
//! | `Malformed` (bad JSON, bad query value) | 400 | `structure` / `value` / `invalid` |
//! | `Unauthorized` | 401 + `WWW-Authenticate` | `login` |
//! | `Forbidden` | 403 | `forbidden` |
//! | `NotFound` (unknown type, id or route) | 404 | `not-found` |
//! | `MethodNotAllowed` | 405 | `not-supported` |
//! | `NotAcceptable` | 406 | `not-supported` |
//! | `Conflict` | 409 | `conflict` |
//! | `Gone` | 410 | `deleted` |
//! | `PreconditionFailed` | 412 | `conflict` |
//! | `TooLarge`, `TooCostly` | 413 | `too-costly` |
//! | `UriTooLong` | 414 | `too-costly` |
//! | `UnsupportedMediaType` | 415 | `not-supported` |
//! | `Unprocessable` (FHIR rules broken) | 422 | from the issues |
//! | `Internal` (details logged, never sent) | 500 | `exception` |
//! | `Unavailable` | 503 | `transient` |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mappings::{Issue, IssueCode, MappingError, Severity};
use serde_json::{Value, json};

/// A failed request, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("bad request")]
    Malformed(Vec<Issue>),
    /// No or bad credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Nothing there.
    #[error("not found: {0}")]
    NotFound(String),
    /// The path exists, the method does not.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// No representation the client accepts.
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// Conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Deleted.
    #[error("gone: {0}")]
    Gone(String),
    /// A precondition (`If-Match`) failed.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The body is larger than allowed.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// What the request asks for would exceed a limit (the text says which).
    #[error("too costly: {0}")]
    TooCostly(String),
    /// The URL is longer than allowed.
    #[error("URL longer than {0} bytes")]
    UriTooLong(usize),
    /// The body's media type is not supported.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A valid document that breaks FHIR rules.
    #[error("unprocessable")]
    Unprocessable(Vec<Issue>),
    /// Something failed on our side; the text is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// A dependency is unavailable; the client may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The error of one entry of a Bundle: its status, with every expression re-rooted at
    /// `Bundle.entry[index]`.
    #[error("Bundle.entry[{index}]: {error}")]
    InEntry {
        /// Position of the entry.
        index: usize,
        /// The entry's type, whose name begins the inner expressions.
        rtype: Option<String>,
        /// What went wrong.
        error: Box<ApiError>,
    },
}

impl ApiError {
    /// A 400 with one issue.
    pub fn bad(expression: impl Into<String>, text: impl Into<String>) -> ApiError {
        ApiError::Malformed(vec![Issue::error(IssueCode::Value, expression, text)])
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooLarge(_) | ApiError::TooCostly(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InEntry { error, .. } => error.status(),
        }
    }

    fn issues(&self) -> Vec<Value> {
        let simple = |code: &str, text: &str| vec![issue_json("error", code, text, None)];
        match self {
            ApiError::Malformed(issues) | ApiError::Unprocessable(issues) => {
                issues.iter().map(issue_value).collect()
            }
            ApiError::Unauthorized(t) => simple("login", t),
            ApiError::Forbidden(t) => simple("forbidden", t),
            ApiError::NotFound(t) => simple("not-found", t),
            ApiError::MethodNotAllowed(t) | ApiError::NotAcceptable(t) => {
                simple("not-supported", t)
            }
            ApiError::UnsupportedMediaType(t) => simple("not-supported", t),
            ApiError::Conflict(t) | ApiError::PreconditionFailed(t) => simple("conflict", t),
            ApiError::Gone(t) => simple("deleted", t),
            ApiError::TooLarge(_) | ApiError::UriTooLong(_) => {
                simple("too-costly", &self.to_string())
            }
            ApiError::TooCostly(t) => simple("too-costly", t),
            ApiError::Internal(_) => simple("exception", "internal server error"),
            ApiError::Unavailable(t) => simple("transient", t),
            ApiError::InEntry {
                index,
                rtype,
                error,
            } => {
                let entry = format!("Bundle.entry[{index}]");
                let mut issues = error.issues();
                for issue in &mut issues {
                    let expr = issue["expression"][0].as_str().unwrap_or("").to_owned();
                    issue["expression"] = json!([reroot(&expr, &entry, rtype.as_deref())]);
                }
                issues
            }
        }
    }

    /// The OperationOutcome this error is answered with.
    pub fn outcome_value(&self) -> Value {
        outcome(self.issues())
    }

    /// This error as the error of Bundle entry `index`, whose resource is a `rtype`.
    pub fn in_entry(self, index: usize, rtype: Option<&str>) -> ApiError {
        match self {
            e @ ApiError::InEntry { .. } => e,
            e => ApiError::InEntry {
                index,
                rtype: rtype.map(str::to_owned),
                error: Box::new(e),
            },
        }
    }
}

/// An expression of an entry's resource (`Condition.code`) or request (`If-Match`) as an
/// expression of the entry (`Bundle.entry[2].resource.code`, `Bundle.entry[2].request.ifMatch`).
fn reroot(expr: &str, entry: &str, rtype: Option<&str>) -> String {
    if expr.starts_with("Bundle.entry[") {
        return expr.to_owned();
    }
    if let Some(rtype) = rtype
        && let Some(rest) = expr.strip_prefix(rtype)
        && (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    {
        return format!("{entry}.resource{rest}");
    }
    match expr {
        "" => entry.to_owned(),
        "If-Match" => format!("{entry}.request.ifMatch"),
        "If-None-Exist" => format!("{entry}.request.ifNoneExist"),
        "If-None-Match" => format!("{entry}.request.ifNoneMatch"),
        "If-Modified-Since" => format!("{entry}.request.ifModifiedSince"),
        other if other.starts_with("resourceType") || other.starts_with("id") => {
            format!("{entry}.resource.{other}")
        }
        other => format!("{entry}.request.url ({other})"),
    }
}

fn issue_json(severity: &str, code: &str, text: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({ "severity": severity, "code": code, "diagnostics": text });
    if let Some(expr) = expression.filter(|e| !e.is_empty()) {
        issue["expression"] = json!([expr]);
    }
    issue
}

/// An issue as FHIR JSON.
pub fn issue_value(issue: &Issue) -> Value {
    let code = match issue.code {
        IssueCode::Structure => "structure",
        IssueCode::Required => "required",
        IssueCode::Value => "value",
        IssueCode::Invariant => "invariant",
        IssueCode::CodeInvalid => "code-invalid",
        IssueCode::NotSupported => "not-supported",
    };
    let severity = match issue.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    issue_json(severity, code, &issue.diagnostics, Some(&issue.expression))
}

/// An `information` issue, e.g. what a successful write did.
pub fn information(text: &str) -> Value {
    issue_json("information", "informational", text, None)
}

/// An OperationOutcome holding the given issues.
pub fn outcome(issues: Vec<Value>) -> Value {
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

impl From<MappingError> for ApiError {
    fn from(err: MappingError) -> ApiError {
        match err {
            MappingError::Malformed(text) => {
                ApiError::Malformed(vec![Issue::error(IssueCode::Structure, "", text)])
            }
            MappingError::TooDeep { .. } => ApiError::Malformed(vec![Issue::error(
                IssueCode::Structure,
                "",
                err.to_string(),
            )]),
            MappingError::UnknownType(t) => {
                ApiError::NotFound(format!("unknown resource type {t}"))
            }
            MappingError::Invalid(issues) => ApiError::Unprocessable(issues),
        }
    }
}

impl From<store::StoreError> for ApiError {
    fn from(err: store::StoreError) -> ApiError {
        use store::StoreError as E;
        match err {
            E::NotFound => ApiError::NotFound("resource not found".into()),
            E::Gone(v) => ApiError::Gone(format!("resource was deleted (version {v})")),
            E::VersionConflict { expected, current } => {
                ApiError::PreconditionFailed(match current {
                    Some(c) => format!("version {expected} is not the current version {c}"),
                    None => format!("version {expected} does not exist"),
                })
            }
            E::Entry { index, error } => ApiError::from(*error).in_entry(index, None),
            E::Forbidden(text) => ApiError::Forbidden(text),
            E::Invalid(text) => ApiError::Malformed(vec![Issue::error(IssueCode::Value, "", text)]),
            e if e.is_contention() => {
                ApiError::Conflict("a concurrent write to the same resource won; retry".into())
            }
            e if e.is_commit_unknown() => ApiError::Unavailable(
                "the write was sent to the store but its outcome is unknown (the shard's primary \
                 was lost during the commit): it may or may not have been saved; read before \
                 writing again, or retry a create with the same X-Request-Id or If-None-Exist \
                 and an update with If-Match, which do not write twice"
                    .into(),
            ),
            e if e.is_unavailable() => ApiError::Unavailable(
                "the store is unavailable (a shard's primary is not reachable); nothing was \
                 written; retry"
                    .into(),
            ),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = outcome(self.issues()).to_string();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fhirgate\", error=\"invalid_token\""),
            );
        }
        response
    }
}
