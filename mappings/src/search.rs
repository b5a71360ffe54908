//! Search parameters: which exist, how index entries are extracted from a resource at write
//! time, and how a FHIR query string parses into a typed [`Query`].
//!
//! The table holds the parameters the server supports today; the CapabilityStatement is
//! generated from it, so it lists nothing that does not work.

use model::index::IndexEntry;
use model::query::{Expand, IndexKind, Predicate, Prefix, Query, StringMatch, SystemMatch};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::dates::parse_range;
use crate::fields::{Obj, split_reference};
use crate::json::{Resource, is_valid_id};
use crate::{Issue, IssueCode};

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Coded values and identifiers.
    Token,
    /// Text.
    String,
    /// Dates and periods.
    Date,
    /// References to other resources.
    Reference,
    /// URIs, matched whole (indexed as tokens without a system).
    Uri,
}

impl ParamKind {
    /// The FHIR name of the type.
    pub fn fhir_name(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
            ParamKind::String => "string",
            ParamKind::Date => "date",
            ParamKind::Reference => "reference",
            ParamKind::Uri => "uri",
        }
    }
}

/// One search parameter of a resource type.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    /// Resource type.
    pub resource: &'static str,
    /// Parameter name.
    pub name: &'static str,
    /// Type.
    pub kind: ParamKind,
    /// Element paths (dot-separated; a trailing `[x]` matches every choice).
    pub paths: &'static [&'static str],
    /// For references: the only target type the parameter accepts, if restricted.
    pub target: Option<&'static str>,
    /// Another parameter whose index entries this one reads (e.g. `patient` reads
    /// `subject`'s entries, restricted to Patient targets).
    pub index_of: Option<&'static str>,
}

const fn p(
    resource: &'static str,
    name: &'static str,
    kind: ParamKind,
    paths: &'static [&'static str],
) -> SearchParam {
    SearchParam {
        resource,
        name,
        kind,
        paths,
        target: None,
        index_of: None,
    }
}

const fn patient_of(resource: &'static str) -> SearchParam {
    SearchParam {
        resource,
        name: "patient",
        kind: ParamKind::Reference,
        paths: &[],
        target: Some("Patient"),
        index_of: Some("subject"),
    }
}

use ParamKind::{Date, Reference, String as Str, Token};

/// The supported search parameters (besides `_id` and `_lastUpdated`, which every type has).
pub const PARAMS: &[SearchParam] = &[
    p("Patient", "identifier", Token, &["identifier"]),
    p("Patient", "name", Str, &["name"]),
    p("Patient", "family", Str, &["name.family"]),
    p("Patient", "given", Str, &["name.given"]),
    p("Patient", "birthdate", Date, &["birthDate"]),
    p("Patient", "gender", Token, &["gender"]),
    p(
        "Patient",
        "general-practitioner",
        Reference,
        &["generalPractitioner"],
    ),
    p("Practitioner", "identifier", Token, &["identifier"]),
    p("Practitioner", "name", Str, &["name"]),
    p("Practitioner", "family", Str, &["name.family"]),
    p("Practitioner", "given", Str, &["name.given"]),
    p("Organization", "identifier", Token, &["identifier"]),
    p("Organization", "name", Str, &["name", "alias"]),
    p("Observation", "subject", Reference, &["subject"]),
    patient_of("Observation"),
    p("Observation", "code", Token, &["code"]),
    p("Observation", "date", Date, &["effective[x]"]),
    p("Observation", "category", Token, &["category"]),
    p("Observation", "status", Token, &["status"]),
    p("Observation", "encounter", Reference, &["encounter"]),
    p("Condition", "subject", Reference, &["subject"]),
    patient_of("Condition"),
    p("Condition", "code", Token, &["code"]),
    p("Condition", "clinical-status", Token, &["clinicalStatus"]),
    p("Condition", "onset-date", Date, &["onset[x]"]),
    p("Condition", "encounter", Reference, &["encounter"]),
    p("Encounter", "subject", Reference, &["subject"]),
    patient_of("Encounter"),
    p("Encounter", "date", Date, &["period"]),
    p("Encounter", "status", Token, &["status"]),
    p("Encounter", "class", Token, &["class"]),
    p("Encounter", "type", Token, &["type"]),
    p(
        "Encounter",
        "participant",
        Reference,
        &["participant.individual"],
    ),
    p("Encounter", "based-on", Reference, &["basedOn"]),
    p(
        "Encounter",
        "episode-of-care",
        Reference,
        &["episodeOfCare"],
    ),
    p("ServiceRequest", "subject", Reference, &["subject"]),
    patient_of("ServiceRequest"),
    p("ServiceRequest", "performer", Reference, &["performer"]),
    p("ServiceRequest", "requester", Reference, &["requester"]),
    p("ServiceRequest", "encounter", Reference, &["encounter"]),
    p("ServiceRequest", "status", Token, &["status"]),
    p("CareTeam", "subject", Reference, &["subject"]),
    patient_of("CareTeam"),
    p(
        "CareTeam",
        "participant",
        Reference,
        &["participant.member"],
    ),
    p("CareTeam", "encounter", Reference, &["encounter"]),
    p("EpisodeOfCare", "patient", Reference, &["patient"]),
    p("EpisodeOfCare", "care-manager", Reference, &["careManager"]),
    // Not an R4 parameter: a fhirgate one, so that membership of an episode's team grants
    // access to the episode (DESIGN, "Access control").
    p("EpisodeOfCare", "team", Reference, &["team"]),
    p("EpisodeOfCare", "status", Token, &["status"]),
    p("DiagnosticReport", "subject", Reference, &["subject"]),
    patient_of("DiagnosticReport"),
    p("DiagnosticReport", "encounter", Reference, &["encounter"]),
    p("DiagnosticReport", "code", Token, &["code"]),
    p("Procedure", "subject", Reference, &["subject"]),
    patient_of("Procedure"),
    p("Procedure", "encounter", Reference, &["encounter"]),
    p("Procedure", "code", Token, &["code"]),
    p("MedicationRequest", "subject", Reference, &["subject"]),
    patient_of("MedicationRequest"),
    p("MedicationRequest", "encounter", Reference, &["encounter"]),
];

/// The parameters of one resource type.
pub fn params_of(resource: &str) -> impl Iterator<Item = &'static SearchParam> + '_ {
    PARAMS
        .iter()
        .filter(move |p| p.resource == resource)
        .chain(COMMON_PARAMS)
}

/// The parameters every resource type has (besides `_id` and `_lastUpdated`, which are
/// answered from the resource row): the tags, security labels and profiles in `meta`.
const COMMON_PARAMS: &[SearchParam] = &[
    p("*", "_tag", Token, &["meta.tag"]),
    p("*", "_security", Token, &["meta.security"]),
    p("*", "_profile", ParamKind::Uri, &["meta.profile"]),
];

fn find_param(resource: &str, name: &str) -> Option<&'static SearchParam> {
    params_of(resource).find(|p| p.name == name)
}

/// A reference parameter as the index stores it: the parameter whose entries hold it, and
/// the only target type it follows (e.g. `Observation:patient` is `subject` to Patients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceParam {
    /// The parameter's own name.
    pub name: &'static str,
    /// The parameter whose index entries hold the references.
    pub stored: &'static str,
    /// The target type it is restricted to, if any.
    pub target: Option<&'static str>,
}

/// The reference parameter `name` of `resource` (for `_include` / `_revinclude`).
pub fn reference_param(resource: &str, name: &str) -> Option<ReferenceParam> {
    let p = find_param(resource, name).filter(|p| p.kind == ParamKind::Reference)?;
    Some(ReferenceParam {
        name: p.name,
        stored: p.index_of.unwrap_or(p.name),
        target: p.target,
    })
}

/// Every reference parameter of `resource` (for `_include=Type:*`).
pub fn reference_params(resource: &str) -> Vec<ReferenceParam> {
    params_of(resource)
        .filter(|p| p.kind == ParamKind::Reference && p.index_of.is_none())
        .filter_map(|p| reference_param(resource, p.name))
        .collect()
}

/// The longest value, in bytes, the index holds as it is: a PostgreSQL B-tree entry holds at
/// most about 2.7 KB, and a token entry holds both a code and a system.
pub const MAX_INDEXED: usize = 1000;

/// A token's code or system as the index holds it and a search compares it: itself up to
/// [`MAX_INDEXED`] bytes, else its SHA-256 digest (after U+0001, which no FHIR string holds,
/// so a digest never equals a real code). Token search is equality, which the digest keeps.
pub fn index_token(text: &str) -> String {
    use sha2::Digest as _;
    if text.len() <= MAX_INDEXED {
        return text.to_owned();
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut out = String::from("\u{1}sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A normalised string as the index holds it: cut to at most [`MAX_INDEXED`] bytes, on a
/// character boundary. A search value is never longer (a longer one is refused), so prefix
/// and exact search stay exact; `:contains` does not see past the cut.
pub fn index_string(mut normalized: String) -> String {
    if normalized.len() > MAX_INDEXED {
        let mut end = MAX_INDEXED;
        while !normalized.is_char_boundary(end) {
            end -= 1;
        }
        normalized.truncate(end);
    }
    normalized
}

/// Lower case with accents folded: what string search compares.
pub fn normalize(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Extracts the index entries of a resource.
pub fn index_entries(resource: &Resource) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for param in params_of(resource.resource_type()).filter(|p| p.index_of.is_none()) {
        for path in param.paths {
            let mut values = Vec::new();
            collect(resource.object(), path, &mut values);
            for v in values {
                extract(param, v, &mut out);
            }
        }
    }
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out.dedup();
    out
}

/// Collects the values at a dotted path, flattening arrays.
fn collect<'a>(o: &'a Obj, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let matches: Vec<&Value> = match head.strip_suffix("[x]") {
        Some(stem) => o
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(stem)
                    .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))
            })
            .map(|(_, v)| v)
            .collect(),
        None => o.get(head).into_iter().collect(),
    };
    for m in matches {
        let items: Vec<&Value> = match m {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match (rest, item) {
                (None, v) => out.push(v),
                (Some(rest), Value::Object(inner)) => collect(inner, rest, out),
                _ => {}
            }
        }
    }
}

fn extract(param: &SearchParam, v: &Value, out: &mut Vec<IndexEntry>) {
    let name = param.name.to_owned();
    match param.kind {
        ParamKind::Token => {
            let mut push = |system: Option<&str>, code: &str| {
                out.push(IndexEntry::Token {
                    param: name.clone(),
                    system: system.map(index_token),
                    code: index_token(code),
                })
            };
            match v {
                Value::String(s) => push(None, s),
                Value::Bool(b) => push(None, if *b { "true" } else { "false" }),
                Value::Object(o) => {
                    let codings: Vec<&Obj> = match o.get("coding") {
                        Some(Value::Array(c)) => c.iter().filter_map(Value::as_object).collect(),
                        _ => vec![o],
                    };
                    for c in codings {
                        let system = c.get("system").and_then(Value::as_str);
                        let code = c
                            .get("code")
                            .or_else(|| c.get("value"))
                            .and_then(Value::as_str);
                        if let Some(code) = code {
                            push(system, code);
                        }
                    }
                }
                _ => {}
            }
        }
        ParamKind::Uri => {
            if let Value::String(uri) = v {
                out.push(IndexEntry::Token {
                    param: name,
                    system: None,
                    code: index_token(uri),
                });
            }
        }
        ParamKind::String => {
            let mut push = |s: &str| {
                out.push(IndexEntry::String {
                    param: name.clone(),
                    normalized: index_string(normalize(s)),
                    exact: s.to_owned(),
                })
            };
            match v {
                Value::String(s) => push(s),
                Value::Object(o) => {
                    for key in [
                        "text",
                        "family",
                        "given",
                        "prefix",
                        "suffix",
                        "line",
                        "city",
                        "district",
                        "state",
                        "postalCode",
                        "country",
                    ] {
                        match o.get(key) {
                            Some(Value::String(s)) => push(s),
                            Some(Value::Array(items)) => {
                                items.iter().filter_map(Value::as_str).for_each(&mut push)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        ParamKind::Date => {
            let range = match v {
                Value::String(s) => parse_range(s),
                Value::Object(o) => {
                    let start = o.get("start").and_then(Value::as_str).and_then(parse_range);
                    let end = o.get("end").and_then(Value::as_str).and_then(parse_range);
                    match (start, end) {
                        (None, None) => None,
                        (s, e) => Some((s.map_or(i64::MIN, |r| r.0), e.map_or(i64::MAX, |r| r.1))),
                    }
                }
                _ => None,
            };
            if let Some((low, high)) = range {
                out.push(IndexEntry::Date {
                    param: name,
                    low,
                    high,
                });
            }
        }
        ParamKind::Reference => {
            if let Some(reference) = v.get("reference").and_then(Value::as_str)
                && let Some((t, id)) = split_reference(reference)
            {
                out.push(IndexEntry::Reference {
                    param: name,
                    target_type: t.to_owned(),
                    target_id: id.to_owned(),
                });
            }
        }
    }
}

/// Limits and defaults of search.
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    /// Page size when `_count` is absent.
    pub default_count: usize,
    /// Largest page size; a larger `_count` is reduced to it.
    pub max_count: usize,
}

/// A parsed search: the typed query, and what was not understood.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSearch {
    /// The query.
    pub query: Query,
    /// The parameters used, normalised, for the `self` link (paging parameters excluded).
    pub used: Vec<(String, String)>,
    /// Parameters that were ignored, with why.
    pub ignored: Vec<Issue>,
}

/// Parameters that shape the response rather than select resources; accepted everywhere.
const RESULT_PARAMS: &[&str] = &["_format", "_pretty"];

/// Parses search parameters (already percent-decoded) for a resource type. Unknown
/// parameters are ignored and reported (lenient handling, the FHIR default); malformed values
/// of known parameters are errors.
pub fn parse_query(
    resource: &str,
    pairs: &[(String, String)],
    limits: &SearchLimits,
) -> Result<ParsedSearch, Vec<Issue>> {
    let mut query = Query {
        source_type: resource.to_owned(),
        all_of: Vec::new(),
        count: limits.default_count,
        after_id: None,
        sort: Vec::new(),
        after_sort: Vec::new(),
        total: false,
        access: Default::default(),
    };
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    let mut given: Vec<&str> = Vec::new();
    for (key, raw) in pairs {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        let bad = |text: String| Issue::error(IssueCode::Value, key.clone(), text);
        // No FHIR value holds a control character, and the store cannot take some.
        if let Some(c) = key.chars().chain(raw.chars()).find(|c| c.is_control()) {
            errors.push(bad(format!(
                "a search parameter may not hold the control character U+{:04X}",
                u32::from(c)
            )));
            continue;
        }
        // Parameters that set one thing: a second value would contradict the first.
        if matches!(name, "_count" | "_total" | "_cursor" | "_sort") {
            if given.contains(&name) {
                errors.push(bad(format!("{name} may be given only once")));
                continue;
            }
            given.push(name);
        }
        match name {
            "_count" => match raw.parse::<usize>() {
                Ok(n) => query.count = n.min(limits.max_count),
                Err(_) => errors.push(bad(format!("_count must be a whole number, got {raw:?}"))),
            },
            "_total" => match raw.as_str() {
                "accurate" => query.total = true,
                "none" | "estimate" => query.total = false,
                _ => errors.push(bad(format!(
                    "_total must be none, estimate or accurate, got {raw:?}"
                ))),
            },
            "_sort" => match parse_sort(resource, raw) {
                Ok((keys, unknown)) => {
                    query.sort = keys;
                    ignored.extend(unknown);
                    used.push((key.clone(), raw.clone()));
                }
                Err(issue) => errors.push(issue),
            },
            "_cursor" if raw.starts_with('~') => match model::query::SortCursor::parse(raw) {
                Some(c) if is_valid_id(&c.id) => {
                    query.after_id = Some(c.id);
                    query.after_sort = c.values;
                }
                _ => errors.push(bad("invalid paging cursor".into())),
            },
            "_cursor" => {
                if is_valid_id(raw) {
                    query.after_id = Some(raw.clone());
                } else {
                    errors.push(bad("invalid paging cursor".into()));
                }
            }
            _ if RESULT_PARAMS.contains(&name) => {}
            _ => {
                let group = split_or(raw)
                    .into_iter()
                    .map(|v| parse_value(resource, name, modifier, &v))
                    .collect::<Result<Vec<_>, Issue>>();
                match group {
                    // Nothing to search for: reported (and refused under strict handling).
                    Ok(group) if group.is_empty() => ignored.push(not_supported(
                        key,
                        format!("{key} has no value, so it is ignored"),
                    )),
                    // `code:not=a,b`: neither a nor b (each value a condition of its own).
                    Ok(group) if modifier == Some("not") => {
                        query.all_of.extend(group.into_iter().map(|p| vec![p]));
                        used.push((key.clone(), raw.clone()));
                    }
                    Ok(group) => {
                        query.all_of.push(group);
                        used.push((key.clone(), raw.clone()));
                    }
                    Err(issue) if issue.code == IssueCode::NotSupported => ignored.push(issue),
                    Err(issue) => errors.push(issue),
                }
            }
        }
    }
    if query.after_id.is_some() && query.after_sort.len() != query.sort.len() {
        errors.push(Issue::error(
            IssueCode::Value,
            "_cursor",
            "the paging cursor does not belong to this _sort".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(ParsedSearch {
            query,
            used,
            ignored,
        })
    } else {
        Err(errors)
    }
}

/// Parses `_sort`: comma-separated keys, each a parameter name (`_id`, `_lastUpdated`, or a
/// string, date, token, URI or reference parameter of the type), `-` first for descending.
/// Returns the keys, and the keys left out (unknown, or of a kind that does not sort) as
/// not-supported issues.
fn parse_sort(
    resource: &str,
    raw: &str,
) -> Result<(Vec<model::query::SortKey>, Vec<Issue>), Issue> {
    use model::query::{SortBy, SortKey};
    let mut keys = Vec::new();
    let mut ignored = Vec::new();
    for item in raw.split(',') {
        let (descending, name) = match item.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if name.is_empty() {
            return Err(Issue::error(
                IssueCode::Value,
                "_sort".to_owned(),
                format!("_sort has an empty key in {raw:?}"),
            ));
        }
        let by = match name {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            _ => match find_param(resource, name) {
                Some(param) => SortBy::Param {
                    param: param.index_of.unwrap_or(param.name).to_owned(),
                    kind: match param.kind {
                        ParamKind::Token | ParamKind::Uri => IndexKind::Token,
                        ParamKind::String => IndexKind::String,
                        ParamKind::Date => IndexKind::Date,
                        ParamKind::Reference => IndexKind::Reference,
                    },
                },
                None => {
                    ignored.push(not_supported(
                        "_sort",
                        format!("unknown sort parameter {name} for {resource}, so it is ignored"),
                    ));
                    continue;
                }
            },
        };
        if keys.iter().any(|k: &SortKey| k.by == by) {
            continue;
        }
        keys.push(SortKey { by, descending });
    }
    Ok((keys, ignored))
}

/// Splits a value on commas not escaped with a backslash, and unescapes `\,`, `\|`, `\$`
/// and `\\`.
fn split_or(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '$' | '\\')) => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|v| !v.is_empty()).collect()
}

fn not_supported(key: &str, text: String) -> Issue {
    Issue {
        severity: crate::Severity::Warning,
        code: IssueCode::NotSupported,
        expression: key.to_owned(),
        diagnostics: text,
    }
}

fn parse_prefix(value: &str) -> (Prefix, &str) {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("lt", Prefix::Lt),
        ("gt", Prefix::Gt),
        ("le", Prefix::Le),
        ("ge", Prefix::Ge),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    for (text, prefix) in prefixes {
        if let Some(rest) = value.strip_prefix(text)
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            return (prefix, rest);
        }
    }
    (Prefix::Eq, value)
}

fn parse_value(
    resource: &str,
    name: &str,
    modifier: Option<&str>,
    value: &str,
) -> Result<Predicate, Issue> {
    let key = match modifier {
        Some(m) => format!("{name}:{m}"),
        None => name.to_owned(),
    };
    let bad = |text: String| Issue::error(IssueCode::Value, key.clone(), text);
    if name == "_id" {
        if modifier.is_some() {
            return Err(not_supported(
                &key,
                format!("modifier on {name} is not supported"),
            ));
        }
        return if is_valid_id(value) {
            Ok(Predicate::Id(value.to_owned()))
        } else {
            Err(bad(format!("{value:?} is not a valid id")))
        };
    }
    if name == "_lastUpdated" {
        let (prefix, text) = parse_prefix(value);
        let (low, high) =
            parse_range(text).ok_or_else(|| bad(format!("{text:?} is not a valid date")))?;
        return Ok(Predicate::LastUpdated { prefix, low, high });
    }
    let Some(param) = find_param(resource, name) else {
        return Err(not_supported(
            &key,
            format!("unknown search parameter {name} for {resource}"),
        ));
    };
    let index_param = param.index_of.unwrap_or(param.name).to_owned();
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!(":missing takes true or false, not {value:?}"))),
        };
        let kind = match param.kind {
            ParamKind::Token | ParamKind::Uri => IndexKind::Token,
            ParamKind::String => IndexKind::String,
            ParamKind::Date => IndexKind::Date,
            ParamKind::Reference => IndexKind::Reference,
        };
        return Ok(Predicate::Missing {
            param: index_param,
            kind,
            missing,
        });
    }
    match (param.kind, modifier) {
        (ParamKind::Token, None | Some("not")) => {
            if value == "|" {
                return Err(bad(
                    "a token of '|' alone names neither a system nor a code".into(),
                ));
            }
            if let Some((_, code)) = value.split_once('|')
                && code
                    .char_indices()
                    .any(|(i, c)| c == '|' && !code[..i].ends_with('\\'))
            {
                return Err(bad(format!(
                    "{value:?} is not [system]|[code]: a '|' in a code is escaped as \\|"
                )));
            }
            let (system, code) = match value.split_once('|') {
                None => (SystemMatch::Any, Some(index_token(value))),
                Some(("", code)) => (SystemMatch::None, Some(index_token(code))),
                Some((system, "")) => (SystemMatch::Is(index_token(system)), None),
                Some((system, code)) => (
                    SystemMatch::Is(index_token(system)),
                    Some(index_token(code)),
                ),
            };
            Ok(if modifier == Some("not") {
                Predicate::NotToken {
                    param: index_param,
                    system,
                    code,
                }
            } else {
                Predicate::Token {
                    param: index_param,
                    system,
                    code,
                }
            })
        }
        (ParamKind::Token, Some(m @ ("below" | "above"))) => {
            let Some((system, code)) = value
                .split_once('|')
                .filter(|(s, c)| !s.is_empty() && !c.is_empty())
            else {
                return Err(bad(format!(
                    ":{m} needs system|code (the hierarchy belongs to a code system), got {value:?}"
                )));
            };
            Ok(Predicate::TokenIn {
                param: index_param,
                system: index_token(system),
                codes: vec![index_token(code)],
                expand: Some(if m == "below" {
                    Expand::Below
                } else {
                    Expand::Above
                }),
            })
        }
        (ParamKind::Uri, None) => Ok(Predicate::Token {
            param: index_param,
            system: SystemMatch::None,
            code: Some(index_token(value)),
        }),
        (ParamKind::String, None | Some("exact") | Some("contains")) => {
            let how = match modifier {
                Some("exact") => StringMatch::Exact,
                Some("contains") => StringMatch::Contains,
                _ => StringMatch::StartsWith,
            };
            let normalized = normalize(value);
            if normalized.len() > MAX_INDEXED {
                return Err(bad(format!(
                    "a string search value is at most {MAX_INDEXED} bytes"
                )));
            }
            let value = if how == StringMatch::Exact {
                value.to_owned()
            } else {
                normalized.clone()
            };
            Ok(Predicate::String {
                param: index_param,
                how,
                value,
                normalized,
            })
        }
        (ParamKind::Date, None) => {
            let (prefix, text) = parse_prefix(value);
            let (low, high) =
                parse_range(text).ok_or_else(|| bad(format!("{text:?} is not a valid date")))?;
            Ok(Predicate::Date {
                param: index_param,
                prefix,
                low,
                high,
            })
        }
        (ParamKind::Reference, None) => {
            let (target_type, target_id) = match split_reference(value) {
                Some((t, id)) => (Some(t.to_owned()), id.to_owned()),
                None if is_valid_id(value) => (None, value.to_owned()),
                None => return Err(bad(format!("{value:?} is not a valid reference"))),
            };
            if let (Some(wanted), Some(given)) = (param.target, target_type.as_deref())
                && wanted != given
            {
                return Err(bad(format!("{name} refers to {wanted}, not {given}")));
            }
            Ok(Predicate::Reference {
                param: index_param,
                target_type: param.target.map(str::to_owned).or(target_type),
                target_id,
            })
        }
        (_, Some(m)) => Err(not_supported(
            &key,
            format!("modifier :{m} is not supported on {name}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(resource: &str, q: &[(&str, &str)]) -> Result<ParsedSearch, Vec<Issue>> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_query(
            resource,
            &pairs,
            &SearchLimits {
                default_count: 20,
                max_count: 100,
            },
        )
    }

    #[test]
    fn tokens_strings_and_references() {
        let s = parse(
            "Observation",
            &[
                ("code", "http://loinc.org|8867-4,|x"),
                ("patient", "Patient/p1"),
            ],
        )
        .map(|s| s.query.all_of)
        .unwrap_or_default();
        assert_eq!(
            s,
            vec![
                vec![
                    Predicate::Token {
                        param: "code".into(),
                        system: SystemMatch::Is("http://loinc.org".into()),
                        code: Some("8867-4".into())
                    },
                    Predicate::Token {
                        param: "code".into(),
                        system: SystemMatch::None,
                        code: Some("x".into())
                    }
                ],
                vec![Predicate::Reference {
                    param: "subject".into(),
                    target_type: Some("Patient".into()),
                    target_id: "p1".into()
                }]
            ]
        );
        // `family=nelson` is a string, never read as the prefix `ne`.
        let s = parse("Patient", &[("family", "Nélson")]).map(|s| s.query.all_of);
        assert_eq!(
            s,
            Ok(vec![vec![Predicate::String {
                param: "family".into(),
                how: StringMatch::StartsWith,
                value: "nelson".into(),
                normalized: "nelson".into()
            }]])
        );
    }

    #[test]
    fn dates_counts_and_errors() {
        let s = parse("Patient", &[("birthdate", "ge1970-01"), ("_count", "500")]);
        let q = s.map(|s| s.query).ok();
        assert_eq!(q.as_ref().map(|q| q.count), Some(100));
        assert!(matches!(
            q.as_ref().map(|q| &q.all_of[0][0]),
            Some(Predicate::Date {
                prefix: Prefix::Ge,
                ..
            })
        ));
        assert!(parse("Patient", &[("birthdate", "1970-13")]).is_err());
        assert!(parse("Patient", &[("_count", "x")]).is_err());
        let lenient = parse("Patient", &[("nonsense", "1")]);
        assert_eq!(lenient.map(|s| s.ignored.len()), Ok(1));
        assert!(parse("Observation", &[("patient", "Group/1")]).is_err());
        let below = parse(
            "Condition",
            &[("code:below", "http://hl7.org/fhir/sid/icd-10|J45")],
        );
        assert_eq!(
            below.map(|s| s.query.all_of),
            Ok(vec![vec![Predicate::TokenIn {
                param: "code".into(),
                system: "http://hl7.org/fhir/sid/icd-10".into(),
                codes: vec!["J45".into()],
                expand: Some(Expand::Below)
            }]])
        );
        assert!(
            parse("Condition", &[("code:below", "J45")]).is_err(),
            "needs a system"
        );
    }

    #[test]
    fn index_extraction() {
        let json = br#"{"resourceType":"Patient","id":"p","name":[{"family":"Ch\u00e1lmers","given":["Peter","James"]}],
            "identifier":[{"system":"urn:x","value":"12"}],"birthDate":"1974-12-25","gender":"male"}"#;
        let res = crate::json::parse_resource(json, &Default::default());
        let entries = res.map(|r| index_entries(&r)).unwrap_or_default();
        assert!(entries.contains(&IndexEntry::String {
            param: "family".into(),
            normalized: "chalmers".into(),
            exact: "Chálmers".into()
        }));
        assert!(entries.contains(&IndexEntry::Token {
            param: "identifier".into(),
            system: Some("urn:x".into()),
            code: "12".into()
        }));
        assert_eq!(
            entries
                .iter()
                .filter(|e| matches!(e, IndexEntry::String { param, .. } if param == "name"))
                .count(),
            3
        );
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, IndexEntry::Date { param, .. } if param == "birthdate"))
        );
    }

    #[test]
    fn long_values_are_indexed_within_the_index_limits() {
        let long = "x".repeat(3 * MAX_INDEXED);
        let token = index_token(&long);
        assert!(token.len() < 100 && token.starts_with('\u{1}'));
        assert_eq!(index_token("short"), "short");
        // A search for the long code compares what the index holds.
        let found = parse("Patient", &[("identifier", &format!("urn:x|{long}"))])
            .map(|s| s.query.all_of)
            .unwrap_or_default();
        assert_eq!(
            found,
            vec![vec![Predicate::Token {
                param: "identifier".into(),
                system: SystemMatch::Is("urn:x".into()),
                code: Some(token)
            }]]
        );
        // Strings are cut on a character boundary; a longer search value is refused.
        let cut = index_string("é".repeat(MAX_INDEXED));
        assert!(cut.len() <= MAX_INDEXED && cut.chars().all(|c| c == 'é'));
        assert!(parse("Patient", &[("family", &"a".repeat(MAX_INDEXED + 1))]).is_err());
        assert!(parse("Patient", &[("family", &"a".repeat(MAX_INDEXED))]).is_ok());
    }

    #[test]
    fn malformed_parameters_are_refused_or_reported() {
        for (k, v) in [
            ("family", "a\u{0}b"),
            ("name", "\u{1b}"),
            ("identifier", "|"),
            ("gender", "a|b|c"),
        ] {
            assert!(parse("Patient", &[(k, v)]).is_err(), "{k}={v:?}");
        }
        assert!(parse("Patient", &[("_count", "5"), ("_count", "10")]).is_err());
        assert!(parse("Patient", &[("identifier", "urn:x|a\\|b")]).is_ok());
        // An empty value selects nothing: reported, so strict handling refuses it.
        let empty = parse("Patient", &[("family", "")]).expect("parses");
        assert!(empty.query.all_of.is_empty());
        assert_eq!(empty.ignored.len(), 1);
    }
}
