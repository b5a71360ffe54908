//! The CapabilityStatement: generated from the search-parameter table and the interactions
//! the dispatcher serves, so it states only what works.

use mappings::search::{ParamKind, SearchParam, modifiers_of, params_of};
use mappings::types::R4_RESOURCE_TYPES;
use serde_json::{Value, json};

use crate::terminology_ops::{OPERATIONS, definition};

/// How the built-in code systems sit beside stored CodeSystem resources.
const BUILTIN_CODE_SYSTEMS: &str = "CodeSystem/icd-10, CodeSystem/icpc-2 and CodeSystem/icd-10-cm \
     are the loaded code tables, served as read-only summaries (content not-present); a \
     type-level search lists them ahead of stored CodeSystems. The operations run on the \
     loaded tables and their implicit value sets ({system}?fhir_vs, \
     {system}?fhir_vs=isa/{code}).";

/// The meta operations served on every instance (`meta_ops`): name and definition id.
pub const META_OPERATIONS: &[(&str, &str)] = &[
    ("meta", "Resource-meta"),
    ("meta-add", "Resource-meta-add"),
    ("meta-delete", "Resource-meta-delete"),
];

/// How the meta operations behave here.
const META_DOCUMENTATION: &str = "Instance (and, for $meta, version) level only. $meta-add \
     and $meta-delete that change the meta write a new version, as an update does; one that \
     changes nothing writes nothing.";

/// The interactions served for every resource type.
pub const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// The interactions served at the base.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch", "history-system"];

/// A `searchParam` entry: its name, type, the HL7 definition it implements, and (R4's
/// CapabilityStatement has no element for them) the modifiers it takes in `documentation`,
/// as `Modifiers: missing, not.`, which `e2e capability` reads back and tries.
pub fn search_param(p: &SearchParam) -> Value {
    let mut entry = json!({ "name": p.name, "type": p.kind.fhir_name() });
    if let Some(url) = p.definition {
        entry["definition"] = json!(url);
    }
    let modifiers = modifiers_of(p);
    let mut doc = if modifiers.is_empty() {
        String::new()
    } else {
        format!("Modifiers: {}.", modifiers.join(", "))
    };
    if let Some(c) = p.composite {
        doc.push_str(&format!(
            " Composite of a {} and a {} in one element: {}=[key]${}",
            c.key.kind.fhir_name(),
            c.value.kind.fhir_name(),
            p.name,
            match c.value.kind {
                ParamKind::Quantity => "[prefix]number[|system|code]",
                ParamKind::Date => "[prefix]date",
                _ => "[value]",
            }
        ));
    }
    if p.phonetic {
        doc.push_str(" Matches a name part (or one of its words) by its American Soundex code.");
    }
    if p.canonical {
        doc.push_str(" A canonical URL, matched as given (a |version is ignored).");
    }
    if p.definition.is_none() {
        doc.push_str(" A fhirgate parameter (not in R4).");
    }
    let doc = doc.trim();
    if !doc.is_empty() {
        entry["documentation"] = json!(doc);
    }
    entry
}

/// The server's CapabilityStatement.
pub fn capability_statement(base: &str) -> Value {
    let resources: Vec<Value> = R4_RESOURCE_TYPES
        .iter()
        .map(|rtype| {
            let mut params: Vec<Value> = vec![
                json!({ "name": "_id", "type": "token" }),
                json!({ "name": "_lastUpdated", "type": "date" }),
            ];
            params.extend(params_of(rtype).map(search_param));
            // R4 has no element for result parameters; `_sort` is listed as a parameter
            // whose value is a list of parameter names.
            params.push(json!({
                "name": "_sort",
                "type": "string",
                "documentation": "Sorts by _id, _lastUpdated and the string, date, token, uri, \
                    reference and quantity parameters of the type, comma-separated, '-' first for \
                    descending; resources without a value come last"
            }));
            let mut resource = json!({
                "type": rtype,
                "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({ "code": i })).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "conditionalRead": "full-support",
                "searchParam": params
            });
            let mut operations: Vec<Value> = OPERATIONS
                .iter()
                .filter(|(t, _, _)| t == rtype)
                .map(|(t, name, _)| json!({ "name": name, "definition": definition(t, name) }))
                .collect();
            operations.push(json!({
                "name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"
            }));
            for (name, definition) in META_OPERATIONS {
                operations.push(json!({
                    "name": name,
                    "definition": format!("http://hl7.org/fhir/OperationDefinition/{definition}"),
                    "documentation": META_DOCUMENTATION
                }));
            }
            if *rtype == "Patient" {
                operations.push(json!({
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                }));
            }
            if !operations.is_empty() {
                resource["operation"] = Value::Array(operations);
            }
            if *rtype == "CodeSystem" {
                resource["documentation"] = json!(BUILTIN_CODE_SYSTEMS);
            }
            if *rtype == "AuditEvent" {
                // The audit log itself: read by auditors, written by no one.
                resource = json!({
                    "type": "AuditEvent",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [
                        {"name": "patient", "type": "reference"},
                        {"name": "agent", "type": "reference"},
                        {"name": "date", "type": "date"},
                        {"name": "action", "type": "token"}
                    ],
                    "documentation": "The server's audit log (IHE BALP shape), for the auditor role only; never written through the API."
                });
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "kind": "instance",
        "software": { "name": "fhirgate", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "fhirgate FHIR R4 gateway", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json", "application/fhir+xml", "xml"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "description": "Bearer JWT (RFC 6750) with SMART v2 scopes; /metadata is public"
            },
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS.iter().map(|i| json!({ "code": i })).collect::<Vec<_>>()
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_lists_the_meta_operations() {
        let statement = capability_statement("http://x/fhir");
        let resources = statement["rest"][0]["resource"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let patient = resources
            .iter()
            .find(|r| r["type"] == "Patient")
            .cloned()
            .unwrap_or_default();
        for (name, _) in META_OPERATIONS {
            assert!(
                patient["operation"]
                    .as_array()
                    .is_some_and(|ops| ops.iter().any(|o| o["name"] == *name)),
                "{name}"
            );
            // The dispatcher routes what the statement names.
            assert!(crate::meta_ops::MetaOp::parse(&format!("${name}")).is_some());
        }
    }
}
