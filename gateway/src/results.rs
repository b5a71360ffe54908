//! Search result parameters: `_include` / `_revinclude` (with `:iterate` and `*`),
//! `_summary=true|count|text|data` (also on a read), `_elements`, and strict handling (`Prefer: handling=strict`).
//!
//! Included resources are read through the same access as the matches, so an include never
//! shows what the caller may not see; their number is capped (`Limits::max_count`), with a
//! warning when the cap cuts them.

use std::collections::HashSet;

use axum::http::HeaderMap;
use mappings::search::{ReferenceParam, reference_param, reference_params};
use mappings::types::is_resource_type;
use mappings::{Issue, IssueCode};
use serde_json::{Value, json};
use store::Stored;

use crate::AppState;
use crate::outcome::ApiError;

/// How many rounds `:iterate` follows.
const MAX_ITERATIONS: usize = 3;

/// One `_include` or `_revinclude` value.
#[derive(Debug, Clone)]
pub(crate) struct IncludeSpec {
    /// The type whose parameter is followed.
    source: String,
    /// The parameter; `None` for every reference parameter (`*`, `_include` only).
    param: Option<String>,
    /// Only targets of this type.
    target: Option<String>,
    /// Followed again from what was included (`:iterate`).
    iterate: bool,
}

/// The result parameters of a search, taken out of its query.
#[derive(Debug, Default)]
pub(crate) struct ResultParams {
    /// `_summary=count`: the total only.
    pub summary_count: bool,
    /// `_summary=text` or `data`: a subset of each resource.
    pub summary: Option<Summary>,
    /// `_elements`: the top-level elements to keep.
    pub elements: Option<Vec<String>>,
    includes: Vec<IncludeSpec>,
    revincludes: Vec<IncludeSpec>,
    /// The result parameters as given, for the Bundle's links.
    pub kept: Vec<(String, String)>,
    /// What was not understood (lenient: reported; strict: refused).
    pub ignored: Vec<Issue>,
}

/// Whether the client asked for strict handling of unknown parameters.
pub(crate) fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "handling=strict"))
}

fn parse_include(name: &str, value: &str, iterate: bool) -> Result<IncludeSpec, Issue> {
    let bad = |text: String| Issue::error(IssueCode::NotSupported, name.to_owned(), text);
    if value == "*" {
        if name != "_include" {
            return Err(bad("_revinclude=* is not supported".into()));
        }
        return Ok(IncludeSpec {
            source: "*".into(),
            param: None,
            target: None,
            iterate,
        });
    }
    let parts: Vec<&str> = value.split(':').collect();
    let (source, param, target) = match parts.as_slice() {
        [s, p] => (*s, *p, None),
        [s, p, t] => (*s, *p, Some(*t)),
        _ => {
            return Err(bad(format!(
                "{value:?} is not [type]:[parameter](:[target])"
            )));
        }
    };
    if !is_resource_type(source) || target.is_some_and(|t| !is_resource_type(t)) {
        return Err(bad(format!("{value:?} names an unknown resource type")));
    }
    let param = if param == "*" {
        None
    } else {
        reference_param(source, param).ok_or_else(|| {
            bad(format!(
                "{source} has no reference parameter {param:?} here"
            ))
        })?;
        Some(param.to_owned())
    };
    Ok(IncludeSpec {
        source: source.to_owned(),
        param,
        target: target.map(str::to_owned),
        iterate,
    })
}

/// Takes the result parameters out of `pairs`; returns the rest (the query) and them.
pub(crate) fn split(
    pairs: &[(String, String)],
) -> Result<(Vec<(String, String)>, ResultParams), ApiError> {
    let mut query = Vec::new();
    let mut r = ResultParams::default();
    let mut given: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        let (name, modifier) = k.split_once(':').unwrap_or((k.as_str(), ""));
        // Parameters that set one thing: a second value would contradict the first.
        if matches!(name, "_summary" | "_elements") {
            if given.contains(&name) {
                return Err(ApiError::bad(
                    name,
                    format!("{name} may be given only once"),
                ));
            }
            given.push(name);
        }
        match name {
            "_summary" => {
                r.kept.push((k.clone(), v.clone()));
                match v.as_str() {
                    "count" => r.summary_count = true,
                    "true" => r.summary = Some(Summary::True),
                    "text" => r.summary = Some(Summary::Text),
                    "data" => r.summary = Some(Summary::Data),
                    "false" => {}
                    other => r.ignored.push(Issue::error(
                        IssueCode::NotSupported,
                        "_summary",
                        format!(
                            "_summary={other} is not supported (true, count, text, data and false are)"
                        ),
                    )),
                }
            }
            "_elements" => {
                r.kept.push((k.clone(), v.clone()));
                let list: Vec<String> = v
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect();
                if list
                    .iter()
                    .any(|e| !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    return Err(ApiError::bad(
                        "_elements",
                        "_elements lists top-level element names, comma-separated",
                    ));
                }
                r.elements = Some(list);
            }
            "_include" | "_revinclude" => {
                r.kept.push((k.clone(), v.clone()));
                if !matches!(modifier, "" | "iterate" | "recurse") {
                    r.ignored.push(Issue::error(
                        IssueCode::NotSupported,
                        k.clone(),
                        format!("{name} has no modifier :{modifier} (only :iterate)"),
                    ));
                    continue;
                }
                let iterate = matches!(modifier, "iterate" | "recurse");
                match parse_include(name, v, iterate) {
                    Ok(spec) if name == "_include" => r.includes.push(spec),
                    Ok(spec) => r.revincludes.push(spec),
                    Err(issue) => r.ignored.push(issue),
                }
            }
            _ => query.push((k.clone(), v.clone())),
        }
    }
    Ok((query, r))
}

/// A resource with its type and id.
pub(crate) type Keyed = (String, String, Stored);

fn params_for(spec: &IncludeSpec, rtype: &str) -> Vec<ReferenceParam> {
    match &spec.param {
        None => reference_params(rtype),
        Some(p) => reference_param(rtype, p).into_iter().collect(),
    }
}

/// The resources the includes of `params` reach from `matches`, read with `access`.
pub(crate) async fn included(
    state: &AppState,
    access: &model::query::Access,
    matches: &[Keyed],
    params: &ResultParams,
) -> Result<(Vec<Keyed>, Vec<Issue>), ApiError> {
    let cap = state.config.limits.max_count;
    let mut seen: HashSet<(String, String)> = matches
        .iter()
        .map(|(t, i, _)| (t.clone(), i.clone()))
        .collect();
    let mut out: Vec<Keyed> = Vec::new();
    let mut frontier: Vec<(String, String)> = seen.iter().cloned().collect();
    let mut warnings = Vec::new();
    for round in 0..=MAX_ITERATIONS {
        if frontier.is_empty() {
            break;
        }
        let mut found: Vec<Keyed> = Vec::new();
        let mut types: Vec<&str> = frontier.iter().map(|(t, _)| t.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        for spec in params.includes.iter().filter(|s| round == 0 || s.iterate) {
            for rtype in types
                .iter()
                .filter(|t| spec.source == "*" || spec.source == **t)
            {
                let ids: Vec<String> = frontier
                    .iter()
                    .filter(|(t, _)| t == rtype)
                    .map(|(_, i)| i.clone())
                    .collect();
                for p in params_for(spec, rtype) {
                    let target = spec.target.as_deref().or(p.target);
                    let refs = state
                        .store
                        .references_from(rtype, &ids, p.stored, target)
                        .await?;
                    let new: Vec<(String, String)> =
                        refs.into_iter().filter(|k| !seen.contains(k)).collect();
                    found.extend(state.store.read_many(&new, access).await?);
                }
            }
        }
        for spec in params
            .revincludes
            .iter()
            .filter(|s| round == 0 || s.iterate)
        {
            for p in params_for(spec, &spec.source) {
                for rtype in types.iter().filter(|t| {
                    spec.target
                        .as_deref()
                        .or(p.target)
                        .is_none_or(|want| want == **t)
                }) {
                    let ids: Vec<String> = frontier
                        .iter()
                        .filter(|(t, _)| t == rtype)
                        .map(|(_, i)| i.clone())
                        .collect();
                    found.extend(
                        state
                            .store
                            .referrers(&spec.source, p.stored, rtype, &ids, access, cap + 1)
                            .await?,
                    );
                }
            }
        }
        frontier.clear();
        for item in found {
            let key = (item.0.clone(), item.1.clone());
            if seen.insert(key.clone()) {
                if out.len() >= cap {
                    warnings.push(Issue {
                        severity: mappings::Severity::Warning,
                        code: IssueCode::NotSupported,
                        expression: "_include".into(),
                        diagnostics: format!(
                            "more than {cap} included resources; the rest are left out"
                        ),
                    });
                    return Ok((out, warnings));
                }
                frontier.push(key);
                out.push(item);
            }
        }
        if !params
            .includes
            .iter()
            .chain(&params.revincludes)
            .any(|s| s.iterate)
        {
            break;
        }
    }
    Ok((out, warnings))
}

/// Keeps `elements` (and `resourceType`, `id`, `meta`) of a resource, marked SUBSETTED.
pub(crate) fn subset(resource: &mut Value, elements: &[String]) {
    let Some(o) = resource.as_object_mut() else {
        return;
    };
    o.retain(|k, _| {
        matches!(k.as_str(), "resourceType" | "id" | "meta") || elements.iter().any(|e| e == k)
    });
    mark_subsetted(resource);
}

/// The parts of a resource `_summary` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summary {
    /// `true`: the elements R4 flags `isSummary` and the mandatory ones, within the
    /// resource's backbone elements too (a data type is kept whole).
    True,
    /// `text`: the narrative, `id`, `meta` and the mandatory top-level elements.
    Text,
    /// `data`: everything but the narrative.
    Data,
}

/// Applies `_summary=text|data` to a resource and marks it subsetted.
pub(crate) fn summarize(resource: &mut Value, summary: Summary) {
    let Some(o) = resource.as_object_mut() else {
        return;
    };
    match summary {
        Summary::True => {
            let rtype = o
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            keep_summary(o, &rtype, &rtype);
        }
        Summary::Data => {
            o.shift_remove("text");
        }
        Summary::Text => {
            let rtype = o
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let required = mappings::schema::required_elements(&rtype);
            o.retain(|k, _| {
                matches!(k.as_str(), "resourceType" | "id" | "meta" | "text")
                    || required.contains(&k.as_str())
            });
        }
    }
    mark_subsetted(resource);
}

/// Keeps the summary and mandatory elements of `object`, a `ty` inside a `rtype`, and their
/// primitive extensions (`_birthDate`); goes into the kept elements that are backbone
/// elements of the resource (`ObservationComponent`), keeping data types whole.
fn keep_summary(object: &mut serde_json::Map<String, Value>, ty: &str, rtype: &str) {
    let summary = mappings::schema::summary_elements(ty);
    let required = mappings::schema::required_elements(ty);
    object.retain(|k, _| {
        let name = k.strip_prefix('_').unwrap_or(k);
        k == "resourceType" || summary.iter().any(|s| s == name) || required.contains(&name)
    });
    for (name, value) in object.iter_mut() {
        let Some((child, _)) = mappings::schema::element_type(ty, name) else {
            continue;
        };
        // Backbone elements are named after their resource (`Observation` →
        // `ObservationComponent`); data types and contained resources are not.
        if child == rtype || !child.starts_with(rtype) || is_resource_type(child) {
            continue;
        }
        match value {
            Value::Object(inner) => keep_summary(inner, child, rtype),
            Value::Array(items) => {
                for inner in items.iter_mut().filter_map(Value::as_object_mut) {
                    keep_summary(inner, child, rtype);
                }
            }
            _ => {}
        }
    }
}

/// Adds the `SUBSETTED` tag to `meta.tag`.
fn mark_subsetted(resource: &mut Value) {
    let Some(o) = resource.as_object_mut() else {
        return;
    };
    let meta = o.entry("meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| json!([]));
        if let Some(t) = tags.as_array_mut() {
            t.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
                "display": "subsetted"
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_true_keeps_summary_and_mandatory_elements() {
        let mut patient = json!({"resourceType": "Patient", "id": "p",
            "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name": [{"family": "A"}], "birthDate": "1970", "_birthDate": {"id": "b"},
            "photo": [{"contentType": "image/png"}],
            "contact": [{"name": {"family": "B"}}],
            "communication": [{"language": {"text": "nl"}}]});
        summarize(&mut patient, Summary::True);
        let keys: Vec<&String> = patient
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "meta",
                "name",
                "birthDate",
                "_birthDate"
            ]
        );
        assert_eq!(patient["meta"]["tag"][0]["code"], "SUBSETTED");
        // Inside a backbone element too; the mandatory status stays.
        let mut observation = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "bp"}, "note": [{"text": "n"}],
            "component": [{"code": {"text": "sys"}, "valueQuantity": {"value": 120},
                           "interpretation": [{"text": "high"}]}]});
        summarize(&mut observation, Summary::True);
        assert!(observation.get("note").is_none());
        assert_eq!(observation["status"], "final");
        assert_eq!(
            observation["component"][0],
            json!({"code": {"text": "sys"}, "valueQuantity": {"value": 120}})
        );
    }
}
