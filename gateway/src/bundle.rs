//! Searchset and history Bundles.

use mappings::search::ParsedSearch;
use serde_json::{Value, json};
use store::{HistoryPage, Page, Stored};

use crate::results::{Keyed, ResultParams};

use crate::rest::render;

fn link(relation: &str, url: String) -> Value {
    json!({ "relation": relation, "url": url })
}

fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// A searchset Bundle for one page, with `self` and `next` links: the matches, then what the
/// includes reached, then an OperationOutcome of warnings if any.
pub(crate) fn searchset(
    base: &str,
    rtype: &str,
    parsed: &ParsedSearch,
    page: &Page,
    included: &[Keyed],
    results: &ResultParams,
    warning: Option<Value>,
) -> Value {
    let mut params = parsed.used.clone();
    params.extend(results.kept.iter().cloned());
    if !results.summary_count {
        params.push(("_count".into(), parsed.query.count.to_string()));
    }
    if parsed.query.total && !results.summary_count {
        params.push(("_total".into(), "accurate".into()));
    }
    let mut this = params.clone();
    if let Some(after) = parsed.query.cursor_text() {
        this.push(("_cursor".into(), after));
    }
    let mut links = vec![link("self", format!("{base}/{rtype}?{}", encode(&this)))];
    if let Some(next) = &page.next {
        let mut next_params = params;
        next_params.push(("_cursor".into(), next.clone()));
        links.push(link(
            "next",
            format!("{base}/{rtype}?{}", encode(&next_params)),
        ));
    }
    let entry = |stored: &Stored, mode: &str| {
        let mut resource = render(stored)?;
        let id = resource.get("id").and_then(Value::as_str)?.to_owned();
        let rt = resource
            .get("resourceType")
            .and_then(Value::as_str)?
            .to_owned();
        if let Some(elements) = &results.elements {
            crate::results::subset(&mut resource, elements);
        }
        if let Some(summary) = results.summary {
            crate::results::summarize(&mut resource, summary);
        }
        Some(json!({
            "fullUrl": format!("{base}/{rt}/{id}"),
            "resource": resource,
            "search": { "mode": mode }
        }))
    };
    let mut entries: Vec<Value> = page
        .items
        .iter()
        .filter_map(|s| entry(s, "match"))
        .chain(included.iter().filter_map(|(_, _, s)| entry(s, "include")))
        .collect();
    if let Some(outcome) = warning {
        entries.push(json!({ "resource": outcome, "search": { "mode": "outcome" } }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
    });
    if let Some(total) = page.total {
        bundle["total"] = json!(total);
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// A history Bundle for one page, newest first.
pub(crate) fn history(
    base: &str,
    self_path: &str,
    count: usize,
    kept: &[(String, String)],
    page: &HistoryPage,
) -> Value {
    let mut params = kept.to_vec();
    params.push(("_count".into(), count.to_string()));
    let mut links = vec![link(
        "self",
        format!("{base}/{self_path}?{}", encode(&params)),
    )];
    if let Some(next) = &page.next {
        let mut next_params = params.clone();
        next_params.push(("_cursor".into(), next.clone()));
        links.push(link(
            "next",
            format!("{base}/{self_path}?{}", encode(&next_params)),
        ));
    }
    let entries: Vec<Value> = page
        .items
        .iter()
        .map(|(rtype, id, stored)| {
            let url = format!("{base}/{rtype}/{id}");
            let last_modified =
                mappings::dates::format_instant(stored.updated_at.timestamp_micros());
            let etag = format!("W/\"{}\"", stored.version);
            match render(stored) {
                Some(resource) => {
                    let (method, status) = if stored.version == 1 {
                        ("POST", "201 Created")
                    } else {
                        ("PUT", "200 OK")
                    };
                    json!({
                        "fullUrl": url,
                        "resource": resource,
                        "request": { "method": method, "url": format!("{rtype}/{id}") },
                        "response": { "status": status, "etag": etag, "lastModified": last_modified }
                    })
                }
                None => json!({
                    "fullUrl": url,
                    "request": { "method": "DELETE", "url": format!("{rtype}/{id}") },
                    "response": { "status": "204 No Content", "etag": etag, "lastModified": last_modified }
                }),
            }
        })
        .collect();
    let mut bundle = json!({ "resourceType": "Bundle", "type": "history", "link": links });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}
