//! JSON Patch under the limits of a body. A patch is small, but its operations are not: a
//! `copy` doubles what it copies, so a few operations could grow a resource far beyond what
//! any body may carry (or exhaust memory while applying), and an `add` at a deep path nests
//! it deeper than a body may. Each operation is checked before it runs.

use json_patch::PatchOperation;
use serde_json::Value;

use crate::Limits;
use crate::outcome::ApiError;

/// Applies `patch` to `document` (a `rtype`) one operation at a time: 413 before an
/// operation would take the resource past the body limit, 400 before one would nest it
/// deeper than the depth limit, 422 when an operation cannot be applied. On an error the
/// document is half-patched, to be dropped.
pub(crate) fn apply(
    document: &mut Value,
    patch: &json_patch::Patch,
    rtype: &str,
    limits: &Limits,
) -> Result<(), ApiError> {
    let max = limits.max_body_bytes;
    let mut size = encoded_len(document);
    for (i, op) in patch.0.iter().enumerate() {
        let path = op.path().as_str();
        let at = |pointer: &str| document.pointer(pointer);
        // What the operation puts in (its size and depth), and what it takes out.
        let (added, nesting) = match op {
            PatchOperation::Add(a) => (encoded_len(&a.value), depth(&a.value)),
            PatchOperation::Replace(r) => (encoded_len(&r.value), depth(&r.value)),
            PatchOperation::Copy(c) => {
                at(c.from.as_str()).map_or((0, 0), |v| (encoded_len(v), depth(v)))
            }
            PatchOperation::Move(m) => (0, at(m.from.as_str()).map_or(0, depth)),
            PatchOperation::Remove(_) | PatchOperation::Test(_) => (0, 0),
        };
        let removed = match op {
            PatchOperation::Replace(_) | PatchOperation::Remove(_) => {
                at(path).map_or(0, encoded_len)
            }
            _ => 0,
        };
        size = (size + added).saturating_sub(removed);
        if size > max {
            return Err(ApiError::TooCostly(format!(
                "operation {i} ({path}) would make the resource larger than the body limit of \
                 {max} bytes"
            )));
        }
        let levels = path.matches('/').count() + nesting;
        if levels > limits.max_json_depth {
            return Err(ApiError::bad(
                format!("operation {i}"),
                format!(
                    "operation {i} ({path}) would nest the resource {levels} levels deep; at \
                     most {} are allowed",
                    limits.max_json_depth
                ),
            ));
        }
        json_patch::patch_unsafe(document, std::slice::from_ref(op)).map_err(|e| {
            ApiError::Unprocessable(vec![mappings::Issue::error(
                mappings::IssueCode::Invariant,
                rtype,
                format!(
                    "the patch cannot be applied: operation {i} failed at path '{}': {}",
                    e.path, e.kind
                ),
            )])
        })?;
    }
    Ok(())
}

/// The length of `value` as compact JSON, counted without building the text.
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// How deep arrays and objects nest in `value` (a scalar is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 10_000,
            max_json_depth: 10,
            ..Limits::default()
        }
    }

    fn run(doc: &mut Value, patch: Value) -> Result<(), ApiError> {
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a patch");
        apply(doc, &patch, "Patient", &limits())
    }

    #[test]
    fn patches_apply_within_the_limits() {
        let mut doc = json!({"resourceType": "Patient", "name": [{"family": "A"}]});
        run(
            &mut doc,
            json!([{"op": "copy", "from": "/name/0", "path": "/name/-"},
                   {"op": "replace", "path": "/name/1/family", "value": "B"}]),
        )
        .expect("applies");
        assert_eq!(doc["name"][1]["family"], "B");
    }

    #[test]
    fn growth_and_depth_are_refused_before_they_happen() {
        let mut doc = json!({"resourceType": "Patient", "name": [{"family": "x".repeat(1000)}]});
        let copies: Vec<Value> = (0..60)
            .map(|_| json!({"op": "copy", "from": "/name", "path": "/name/-"}))
            .collect();
        let e = run(&mut doc, Value::Array(copies)).expect_err("too large");
        assert_eq!(e.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        let mut doc = json!({"resourceType": "Patient"});
        let e = run(
            &mut doc,
            json!([{"op": "add", "path": "/extension", "value": [[[[[[[[[[[1]]]]]]]]]]]}]),
        )
        .expect_err("too deep");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        // Replacing a large value by another does not count twice.
        let mut doc = json!({"resourceType": "Patient", "text": "x".repeat(6000)});
        run(
            &mut doc,
            json!([{"op": "replace", "path": "/text", "value": "y".repeat(6000)},
                   {"op": "replace", "path": "/text", "value": "z".repeat(6000)}]),
        )
        .expect("within the limit");
    }

    #[test]
    fn a_failing_operation_says_which() {
        let mut doc = json!({"resourceType": "Patient"});
        let e = run(
            &mut doc,
            json!([{"op": "add", "path": "/active", "value": true},
                   {"op": "remove", "path": "/gender"}]),
        )
        .expect_err("fails");
        assert!(e.outcome_value().to_string().contains("operation 1"), "{e}");
    }
}
