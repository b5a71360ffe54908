//! Required elements of the mapped types (FHIR R4 cardinalities of 1..*), checked on write.
//!
//! A small table for now: the structural validation of every mapped type comes with the
//! mappings issue. Questionnaire's `item.linkId` is here because the official examples carry
//! one known violation of it, which a server must reject.

use serde_json::Value;

use crate::json::Resource;
use crate::{Issue, IssueCode};

/// Top-level elements that must be present, per type.
const REQUIRED: &[(&str, &[&str])] = &[
    ("Observation", &["status", "code"]),
    ("Condition", &["subject"]),
    ("Encounter", &["status", "class"]),
    ("Questionnaire", &["status"]),
];

/// Checks the required elements of a resource; returns the issues found.
pub fn check_required(resource: &Resource) -> Vec<Issue> {
    let rtype = resource.resource_type();
    let o = resource.object();
    let mut issues = Vec::new();
    if let Some((_, fields)) = REQUIRED.iter().find(|(t, _)| *t == rtype) {
        for field in *fields {
            if !o.contains_key(*field) {
                issues.push(Issue::error(
                    IssueCode::Required,
                    format!("{rtype}.{field}"),
                    format!("{rtype}.{field} is required (cardinality 1..1)"),
                ));
            }
        }
    }
    if rtype == "Questionnaire" {
        check_items(o.get("item"), "Questionnaire.item", &mut issues);
    }
    issues
}

fn check_items(items: Option<&Value>, path: &str, issues: &mut Vec<Issue>) {
    let Some(Value::Array(items)) = items else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            continue;
        };
        let here = format!("{path}[{i}]");
        for field in ["linkId", "type"] {
            if !item.contains_key(field) {
                issues.push(Issue::error(
                    IssueCode::Required,
                    format!("{here}.{field}"),
                    format!("Questionnaire.item.{field} is required (cardinality 1..1)"),
                ));
            }
        }
        check_items(item.get("item"), &format!("{here}.item"), issues);
    }
}
