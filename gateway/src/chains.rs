//! Chained parameters (`subject:Patient.name=peter`, several levels) and reverse chaining
//! (`_has:Observation:patient:code=1234-5`, nestable), resolved before the search itself.
//!
//! Each chain is resolved by an inner search under the caller's access — on every shard —
//! into the ids it names, and rewritten into a plain parameter of the outer search
//! (`subject=Patient/a,Patient/b` or `_id=a,b`). So the outer search still pages, counts and
//! filters everything in SQL, and a chain never reaches what the caller may not see. An inner
//! search that matches more than `Limits::max_count` resources is refused (400) rather than
//! answered in part.

use mappings::search::{SearchLimits, parse_query, reference_param};
use mappings::types::is_resource_type;
use model::query::Access;

use crate::AppState;
use crate::outcome::ApiError;

/// How deep chains and `_has` may nest.
const MAX_DEPTH: usize = 4;

/// A search's parameters with every chain resolved; `None` when a chain matched nothing (so
/// the search matches nothing).
pub(crate) async fn resolve(
    state: &AppState,
    rtype: &str,
    pairs: &[(String, String)],
    access: &Access,
) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match rewrite(state, rtype, key, value, access, 0).await? {
            Rewritten::Same => out.push((key.clone(), value.clone())),
            Rewritten::To(k, v) => out.push((k, v)),
            Rewritten::Nothing => return Ok(None),
        }
    }
    Ok(Some(out))
}

enum Rewritten {
    Same,
    To(String, String),
    Nothing,
}

fn rewrite<'a>(
    state: &'a AppState,
    rtype: &'a str,
    key: &'a str,
    value: &'a str,
    access: &'a Access,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Rewritten, ApiError>> + Send + 'a>> {
    Box::pin(async move {
        if let Some(rest) = key.strip_prefix("_has:") {
            if depth >= MAX_DEPTH {
                return Err(ApiError::bad(key, "chains nest too deep"));
            }
            // _has:Type:param:inner
            let mut parts = rest.splitn(3, ':');
            let (Some(source), Some(param), Some(inner)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiError::bad(
                    key,
                    "_has is _has:[type]:[reference parameter]:[parameter]",
                ));
            };
            if !is_resource_type(source) {
                return Err(ApiError::bad(
                    key,
                    format!("{source:?} is not a resource type"),
                ));
            }
            let p = reference_param(source, param).ok_or_else(|| {
                ApiError::bad(
                    key,
                    format!("{source} has no reference parameter {param:?} here"),
                )
            })?;
            let Some(ids) = inner_ids(state, source, inner, value, access, depth).await? else {
                return Ok(Rewritten::Nothing);
            };
            let targets = state
                .store
                .references_from(source, &ids, p.stored, Some(rtype))
                .await?;
            if targets.is_empty() {
                return Ok(Rewritten::Nothing);
            }
            let list: Vec<String> = targets.into_iter().map(|(_, id)| id).collect();
            return Ok(Rewritten::To("_id".into(), list.join(",")));
        }
        let Some((head, inner)) = key.split_once('.') else {
            return Ok(Rewritten::Same);
        };
        if depth >= MAX_DEPTH {
            return Err(ApiError::bad(key, "chains nest too deep"));
        }
        let (param, modifier) = head.split_once(':').unwrap_or((head, ""));
        let p = reference_param(rtype, param).ok_or_else(|| {
            ApiError::bad(
                key,
                format!("{rtype} has no reference parameter {param:?} to chain"),
            )
        })?;
        let target = if !modifier.is_empty() {
            if !is_resource_type(modifier) || p.target.is_some_and(|t| t != modifier) {
                return Err(ApiError::bad(
                    key,
                    format!("{modifier:?} is not a target of {param}"),
                ));
            }
            modifier
        } else {
            p.target.ok_or_else(|| {
                ApiError::bad(
                    key,
                    format!("{param} may point at several types: name one ({param}:[type].…)"),
                )
            })?
        };
        let Some(ids) = inner_ids(state, target, inner, value, access, depth).await? else {
            return Ok(Rewritten::Nothing);
        };
        let list: Vec<String> = ids.iter().map(|id| format!("{target}/{id}")).collect();
        Ok(Rewritten::To(param.to_owned(), list.join(",")))
    })
}

/// The ids of `rtype` resources matching `key=value` (itself possibly chained), under
/// `access`; `None` when nothing matches.
async fn inner_ids(
    state: &AppState,
    rtype: &str,
    key: &str,
    value: &str,
    access: &Access,
    depth: usize,
) -> Result<Option<Vec<String>>, ApiError> {
    let (key, value) = match rewrite(state, rtype, key, value, access, depth + 1).await? {
        Rewritten::Nothing => return Ok(None),
        Rewritten::Same => (key.to_owned(), value.to_owned()),
        Rewritten::To(k, v) => (k, v),
    };
    let cap = state.config.limits.max_count;
    let limits = SearchLimits {
        default_count: cap + 1,
        max_count: cap + 1,
    };
    let mut parsed =
        parse_query(rtype, &[(key.clone(), value)], &limits).map_err(ApiError::Malformed)?;
    if let Some(issue) = parsed.ignored.first() {
        return Err(ApiError::bad(
            key,
            format!("a chain the server cannot follow: {}", issue.diagnostics),
        ));
    }
    crate::rest::expand_hierarchies(&state.terminology, &mut parsed.query)?;
    parsed.query.access = access.clone();
    let page = state.store.search(&parsed.query).await?;
    if page.items.len() > cap {
        return Err(ApiError::bad(
            key,
            format!("the chain matches more than {cap} resources; narrow it"),
        ));
    }
    let ids: Vec<String> = page
        .items
        .iter()
        .filter_map(|s| s.entity.as_ref().map(|e| e.id.clone()))
        .collect();
    Ok((!ids.is_empty()).then_some(ids))
}
