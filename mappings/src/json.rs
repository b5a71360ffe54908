//! FHIR JSON in: limits, parsing and the structural rules every resource must pass before
//! anything else sees it.
//!
//! `serde_json` (with `arbitrary_precision` and `preserve_order`) parses the document; a
//! pre-scan of the raw bytes enforces the nesting limit before the parser recurses, and the
//! checks below close the holes a schema-less parse leaves: `resourceType` and `id` rules,
//! no empty arrays or objects, no `null` outside primitive arrays, no JSON `null` resource.

use serde_json::{Map, Value};

use crate::path::Path;
use crate::types::is_resource_type;
use crate::{Issue, IssueCode, MappingError};

/// Limits applied while reading a document.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Maximum nesting depth of arrays and objects.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits { max_depth: 64 }
    }
}

/// A parsed resource that passed the structural rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    resource_type: String,
    object: Map<String, Value>,
}

impl Resource {
    /// The resource's type.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The resource's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        self.object.get("id").and_then(Value::as_str)
    }

    /// Sets (or replaces) the id.
    pub fn set_id(&mut self, id: &str) {
        self.object.insert("id".into(), Value::String(id.into()));
    }

    /// The JSON object.
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }

    /// Consumes the resource, giving its JSON object.
    pub fn into_object(self) -> Map<String, Value> {
        self.object
    }

    /// Builds a resource from an object already known to be valid (e.g. read back from the
    /// store). The object must hold a string `resourceType`.
    pub fn from_trusted(object: Map<String, Value>) -> Option<Resource> {
        let resource_type = object.get("resourceType")?.as_str()?.to_owned();
        Some(Resource {
            resource_type,
            object,
        })
    }
}

/// Parses a FHIR JSON resource and applies the structural rules.
pub fn parse_resource(bytes: &[u8], limits: &JsonLimits) -> Result<Resource, MappingError> {
    check_depth(bytes, limits.max_depth)?;
    // One UTF-8 check of the whole document (fast on ASCII), instead of one per string.
    let text = std::str::from_utf8(bytes).map_err(|err| {
        MappingError::Malformed(format!(
            "invalid JSON: not UTF-8 at byte {}",
            err.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text).map_err(|err| {
        MappingError::Malformed(format!(
            "invalid JSON at line {} column {}: {}",
            err.line(),
            err.column(),
            err
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(MappingError::Malformed(
            "a resource must be a JSON object".into(),
        ));
    };
    check_resource(object, "")
}

/// Applies the structural rules to a resource object found at `path` (empty for the root;
/// `Bundle.entry[0].resource` for a bundle entry).
pub fn check_resource(object: Map<String, Value>, path: &str) -> Result<Resource, MappingError> {
    let resource_type = match object.get("resourceType") {
        Some(Value::String(rt)) => rt.clone(),
        // Without a resource type the document is not a FHIR resource at all.
        Some(_) => {
            return Err(MappingError::Malformed(format!(
                "{} must be a string",
                join(path, "resourceType")
            )));
        }
        None => {
            return Err(MappingError::Malformed(format!(
                "{} is missing",
                join(path, "resourceType")
            )));
        }
    };
    if !is_resource_type(&resource_type) {
        return Err(MappingError::UnknownType(resource_type));
    }
    let root = if path.is_empty() {
        resource_type.clone()
    } else {
        path.to_owned()
    };
    let mut issues = Vec::new();
    if let Some(id) = object.get("id") {
        match id.as_str() {
            Some(id) if is_valid_id(id) => {}
            _ => issues.push(Issue::error(
                IssueCode::Value,
                format!("{root}.id"),
                "id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.' (and not . or ..)",
            )),
        }
    }
    if let Some(meta) = object.get("meta")
        && !meta.is_object()
    {
        issues.push(Issue::error(
            IssueCode::Structure,
            format!("{root}.meta"),
            "meta must be an object",
        ));
    }
    check_object(&object, &mut Path::new(&root), &mut issues);
    if issues.is_empty() {
        Ok(Resource {
            resource_type,
            object,
        })
    } else {
        Err(MappingError::Invalid(issues))
    }
}

/// Whether `id` is a valid FHIR logical id. `.` and `..` match the R4 pattern but are dot
/// segments, which URLs remove (RFC 3986 §5.2.4): no URL could name such a resource.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check_object<'a>(object: &'a Map<String, Value>, path: &mut Path<'a>, issues: &mut Vec<Issue>) {
    if object.is_empty() {
        issues.push(Issue::error(
            IssueCode::Structure,
            path.text(""),
            "objects must not be empty",
        ));
    }
    for (key, value) in object {
        path.key(key);
        check_member(object, key, value, path, issues);
        path.pop();
    }
}

fn check_member<'a>(
    object: &'a Map<String, Value>,
    key: &'a str,
    value: &'a Value,
    path: &mut Path<'a>,
    issues: &mut Vec<Issue>,
) {
    if key.is_empty() {
        issues.push(Issue::error(
            IssueCode::Structure,
            path.text(""),
            "empty property name",
        ));
        return;
    }
    // A primitive's value array and its `_name` extension array may hold `null` to keep
    // the two aligned; nowhere else. (Looked up only for an array that holds a null.)
    let nulls_allowed = |items: &[Value]| {
        items.iter().any(Value::is_null)
            && (key.starts_with('_') || object.contains_key(format!("_{key}").as_str()))
    };
    match value {
        Value::Null => issues.push(Issue::error(
            IssueCode::Structure,
            path.text(""),
            "null is not allowed here",
        )),
        Value::Array(items) => {
            if items.is_empty() {
                issues.push(Issue::error(
                    IssueCode::Structure,
                    path.text(""),
                    "arrays must not be empty",
                ));
                return;
            }
            let nulls_allowed = nulls_allowed(items);
            if nulls_allowed && items.iter().all(Value::is_null) {
                issues.push(Issue::error(
                    IssueCode::Structure,
                    path.text(""),
                    "an array must not hold only null",
                ));
            }
            for (i, item) in items.iter().enumerate() {
                path.index(i);
                match item {
                    Value::Null if nulls_allowed => {}
                    Value::Null => issues.push(Issue::error(
                        IssueCode::Structure,
                        path.text(""),
                        "null is not allowed here",
                    )),
                    Value::Array(_) => issues.push(Issue::error(
                        IssueCode::Structure,
                        path.text(""),
                        "arrays must not nest directly",
                    )),
                    Value::Object(inner) => check_nested(key, inner, path, issues),
                    Value::String(s) => check_string(s, path, issues),
                    _ => {}
                }
                path.pop();
            }
        }
        Value::Object(inner) => check_nested(key, inner, path, issues),
        Value::String(s) => check_string(s, path, issues),
        _ => {}
    }
}

fn check_nested<'a>(
    key: &str,
    inner: &'a Map<String, Value>,
    path: &mut Path<'a>,
    issues: &mut Vec<Issue>,
) {
    // Contained and inline resources (`contained`, `Bundle.entry.resource`, `Parameters`
    // values) are resources in their own right and carry a resourceType.
    if (key == "contained" || key == "resource")
        && let Some(Value::String(rt)) = inner.get("resourceType")
        && !is_resource_type(rt)
    {
        issues.push(Issue::error(
            IssueCode::Value,
            path.text("resourceType"),
            format!("unknown resource type {rt}"),
        ));
    }
    check_object(inner, path, issues);
}

fn check_string(s: &str, path: &Path<'_>, issues: &mut Vec<Issue>) {
    // FHIR: "string values are never empty".
    if s.is_empty() {
        issues.push(Issue::error(
            IssueCode::Value,
            path.text(""),
            "strings must not be empty",
        ));
    }
}

/// Rejects documents nested deeper than `max_depth` without building anything, so that a
/// hostile document cannot make the parser recurse.
fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), MappingError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: jump to its closing quote, past escapes.
                i += 1;
                loop {
                    let Some(rest) = bytes.get(i..) else {
                        return Ok(());
                    };
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(at) if bytes[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(MappingError::TooDeep { max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_depth;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(check_depth(br#"{"a":[{"b":1}]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a":[{"b":[1]}]}"#, 3).is_err());
        // Brackets, quotes and backslashes inside strings do not count.
        assert!(check_depth(br#"{"a":"[[[{{{\"]]]\\"}"#, 1).is_ok());
        assert!(check_depth(br#"{"a":"\\","b":[[1]]}"#, 2).is_err());
        // Cut-off input ends the scan without a panic (the parser reports it).
        for cut in [&br#"{"a":"\"#[..], br#"{"a":"abc"#, br#"{"a":"x\\"#, b"\""] {
            assert!(check_depth(cut, 4).is_ok());
        }
    }
}
