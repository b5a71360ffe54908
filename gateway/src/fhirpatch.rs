//! FHIRPath Patch (<http://hl7.org/fhir/R4/fhirpatch.html>): a `Parameters` resource whose
//! `operation` parameters `add`, `insert`, `delete`, `replace` and `move` elements named by
//! FHIRPath (the subset of [`mappings::fhirpath`]).
//!
//! A body that is not a patch, or a path outside the subset, is 400; an operation whose
//! target is missing or ambiguous (a `replace`, `insert` or `move` of nothing, an `add` to two
//! places) is 422 naming the operation and the path. A `delete` of nothing does nothing, as
//! the specification says. Deleting an item of a list of primitives deletes its primitive
//! extension too (`given[1]` and `_given[1]`), and a container left empty is removed, so the
//! result stays valid FHIR JSON; the caller validates it as any other write.

use mappings::fhirpath::{FhirPath, Located, Step, describe, get, get_mut};
use mappings::schema;
use mappings::{Issue, IssueCode};
use serde_json::{Map, Value};

use crate::outcome::ApiError;

/// The most operations one patch may hold.
pub(crate) const MAX_OPERATIONS: usize = 1000;

/// A value an operation puts in: a typed `value[x]`, or `part`s making a complex value.
#[derive(Debug, Clone, PartialEq)]
enum Given {
    /// `valueHumanName: {...}`: the JSON and the type suffix (`HumanName`).
    Typed(Value, String),
    /// A contained resource (`resource`).
    Resource(Value),
    /// `part`s, each a named value.
    Parts(Vec<(String, Given)>),
}

/// What one operation does.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Add { name: String, value: Given },
    Insert { value: Given, index: usize },
    Delete,
    Replace { value: Given },
    Move { source: usize, destination: usize },
}

/// One operation of a patch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    /// Its position among the body's parameters.
    position: usize,
    path: FhirPath,
    kind: Kind,
}

fn bad(expression: String, text: String) -> ApiError {
    ApiError::Malformed(vec![Issue::error(IssueCode::Value, expression, text)])
}

fn unprocessable(op: &Operation, text: String) -> ApiError {
    ApiError::Unprocessable(vec![Issue::error(
        IssueCode::Value,
        format!("Parameters.parameter[{}]", op.position),
        format!(
            "operation {} ({}) at path '{}': {text}",
            op.position,
            op.kind.name(),
            op.path.text()
        ),
    )])
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Add { .. } => "add",
            Kind::Insert { .. } => "insert",
            Kind::Delete => "delete",
            Kind::Replace { .. } => "replace",
            Kind::Move { .. } => "move",
        }
    }
}

/// The value of a `value` part (or of a part inside one).
fn given(part: &Map<String, Value>, at: &str) -> Result<Given, ApiError> {
    if let Some(resource) = part.get("resource") {
        return Ok(Given::Resource(resource.clone()));
    }
    if let Some((key, v)) = part
        .iter()
        .find(|(k, _)| k.starts_with("value") && k.len() > 5)
    {
        return Ok(Given::Typed(v.clone(), key[5..].to_owned()));
    }
    if let Some(Value::Array(parts)) = part.get("part") {
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let at = format!("{at}.part[{i}]");
            let Some(p) = p.as_object() else {
                return Err(bad(at, "a part is an object".into()));
            };
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                return Err(bad(at, "a part of a value needs its element name".into()));
            };
            out.push((name.to_owned(), given(p, &at)?));
        }
        return Ok(Given::Parts(out));
    }
    Err(bad(
        at.to_owned(),
        "a value is given as value[x], as parts, or as a resource".into(),
    ))
}

/// Reads the operations of a FHIRPath Patch body (already checked as a Parameters
/// resource); 400 for what is not a patch.
pub(crate) fn parse(body: &Value) -> Result<Vec<Operation>, ApiError> {
    let parameters = body
        .get("parameter")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(
                "Parameters.parameter".into(),
                "a FHIRPath Patch holds at least one operation parameter".into(),
            )
        })?;
    if parameters.len() > MAX_OPERATIONS {
        return Err(ApiError::TooCostly(format!(
            "a patch may hold at most {MAX_OPERATIONS} operations"
        )));
    }
    let mut ops = Vec::new();
    for (position, parameter) in parameters.iter().enumerate() {
        let at = format!("Parameters.parameter[{position}]");
        if parameter.get("name").and_then(Value::as_str) != Some("operation") {
            return Err(bad(
                at,
                "every parameter of a FHIRPath Patch is named operation".into(),
            ));
        }
        let parts: Vec<&Map<String, Value>> = parameter
            .get("part")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default();
        let named = |name: &str| {
            parts
                .iter()
                .position(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .map(|i| (i, parts[i]))
        };
        let text = |name: &str, key: &str| -> Result<Option<String>, ApiError> {
            match named(name) {
                None => Ok(None),
                Some((i, p)) => match p.get(key).and_then(Value::as_str) {
                    Some(s) => Ok(Some(s.to_owned())),
                    None => Err(bad(
                        format!("{at}.part[{i}]"),
                        format!("the {name} part takes {key}"),
                    )),
                },
            }
        };
        let required = |name: &str, v: Option<String>| {
            v.ok_or_else(|| bad(at.clone(), format!("this operation needs a {name} part")))
        };
        let integer = |name: &str| -> Result<usize, ApiError> {
            let (i, p) = named(name)
                .ok_or_else(|| bad(at.clone(), format!("this operation needs a {name} part")))?;
            p.get("valueInteger")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    bad(
                        format!("{at}.part[{i}]"),
                        format!("{name} is a valueInteger of 0 or more"),
                    )
                })
        };
        let value = || -> Result<Given, ApiError> {
            let (i, p) = named("value")
                .ok_or_else(|| bad(at.clone(), "this operation needs a value part".into()))?;
            given(p, &format!("{at}.part[{i}]"))
        };
        let kind_code = required("type", text("type", "valueCode")?)?;
        let path_text = required("path", text("path", "valueString")?)?;
        let path = FhirPath::parse(&path_text).map_err(|e| {
            ApiError::Malformed(vec![Issue::error(
                IssueCode::NotSupported,
                format!("{at}.part[path]"),
                e.to_string(),
            )])
        })?;
        let kind = match kind_code.as_str() {
            "add" => Kind::Add {
                name: required("name", text("name", "valueString")?)?,
                value: value()?,
            },
            "insert" => Kind::Insert {
                value: value()?,
                index: integer("index")?,
            },
            "delete" => Kind::Delete,
            "replace" => Kind::Replace { value: value()? },
            "move" => Kind::Move {
                source: integer("source")?,
                destination: integer("destination")?,
            },
            other => {
                return Err(bad(
                    at,
                    format!(
                        "the operation type {other:?} is not one of add, insert, delete, replace, move"
                    ),
                ));
            }
        };
        ops.push(Operation {
            position,
            path,
            kind,
        });
    }
    if ops.is_empty() {
        return Err(bad(
            "Parameters.parameter".into(),
            "a FHIRPath Patch holds at least one operation parameter".into(),
        ));
    }
    Ok(ops)
}

/// Applies the operations to `document` in order. On an error the document is half-patched,
/// to be dropped.
pub(crate) fn apply(document: &mut Value, ops: &[Operation]) -> Result<(), ApiError> {
    for op in ops {
        apply_one(document, op)?;
    }
    Ok(())
}

fn apply_one(doc: &mut Value, op: &Operation) -> Result<(), ApiError> {
    let rtype = doc
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let found = op.path.locate(doc);
    let one = |found: &[Located]| -> Result<Located, ApiError> {
        match found {
            [one] => Ok(one.clone()),
            [] => Err(unprocessable(op, "the path matches nothing".into())),
            many => Err(unprocessable(
                op,
                format!("the path matches {} elements, not one", many.len()),
            )),
        }
    };
    match &op.kind {
        Kind::Delete => match found.as_slice() {
            [] => Ok(()),
            [one] => {
                remove(doc, &one.steps);
                Ok(())
            }
            many => Err(unprocessable(
                op,
                format!("the path matches {} elements, not one", many.len()),
            )),
        },
        Kind::Replace { value } => {
            let target = one(&found)?;
            let new = build(value, target.ty.as_deref()).map_err(|e| unprocessable(op, e))?;
            let steps = rename_choice(doc, &target, value);
            if let Some(slot) = get_mut(doc, &steps) {
                *slot = new;
            }
            Ok(())
        }
        Kind::Add { name, value } => {
            let target = one(&found)?;
            if !get(doc, &target.steps).is_some_and(Value::is_object) {
                return Err(unprocessable(
                    op,
                    "the path names a primitive value, which has no elements to add to".into(),
                ));
            }
            let (key, ty, repeats) =
                element_for(target.ty.as_deref(), name, value).map_err(|e| unprocessable(op, e))?;
            let new = build(value, ty.as_deref()).map_err(|e| unprocessable(op, e))?;
            let Some(Value::Object(object)) = get_mut(doc, &target.steps) else {
                return Ok(());
            };
            match object.get_mut(&key) {
                Some(Value::Array(list)) => {
                    list.push(new);
                    let len = list.len();
                    if let Some(Value::Array(ext)) = object.get_mut(&format!("_{key}")) {
                        ext.resize(len, Value::Null);
                    }
                }
                Some(_) => {
                    return Err(unprocessable(
                        op,
                        format!(
                            "{} already has {key}, which does not repeat; use replace",
                            describe(&rtype, &target.steps)
                        ),
                    ));
                }
                None if repeats => {
                    object.insert(key, Value::Array(vec![new]));
                }
                None => {
                    object.insert(key, new);
                }
            }
            Ok(())
        }
        Kind::Insert { value, index } => {
            let (list, ty) = list_at(doc, op, &found)?;
            let len = get(doc, &list)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if *index > len {
                return Err(unprocessable(
                    op,
                    format!("index {index} is past the end of the list ({len} items)"),
                ));
            }
            let new = build(value, ty.as_deref()).map_err(|e| unprocessable(op, e))?;
            insert_at(doc, &list, *index, new, Value::Null);
            Ok(())
        }
        Kind::Move {
            source,
            destination,
        } => {
            if found.is_empty() {
                return Err(unprocessable(op, "the path matches nothing".into()));
            }
            let (list, _) = list_at(doc, op, &found)?;
            let len = get(doc, &list)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if *source >= len || *destination >= len {
                return Err(unprocessable(
                    op,
                    format!(
                        "source {source} and destination {destination} must be below the list's \
                         length ({len})"
                    ),
                ));
            }
            let (item, ext) = take_at(doc, &list, *source);
            insert_at(doc, &list, *destination, item, ext);
            Ok(())
        }
    }
}

/// The list a path names (every item from one array): its steps and item type. When the path
/// names nothing, the list it would be (an absent element of the one item its parent names).
fn list_at(
    doc: &Value,
    op: &Operation,
    found: &[Located],
) -> Result<(Vec<Step>, Option<String>), ApiError> {
    if let Some(first) = found.first() {
        let Some((Step::Index(_), list)) = first.steps.split_last() else {
            return Err(unprocessable(
                op,
                "the path names an element that is not a list item".into(),
            ));
        };
        if found
            .iter()
            .any(|f| f.steps.len() != first.steps.len() || !f.steps.starts_with(list))
        {
            return Err(unprocessable(
                op,
                "the path names items of more than one list".into(),
            ));
        }
        return Ok((list.to_vec(), first.ty.clone()));
    }
    let missing = || unprocessable(op, "the path matches nothing".into());
    let (parent, name) = op.path.parent().ok_or_else(missing)?;
    let located = parent.locate(doc);
    let [holder] = located.as_slice() else {
        return Err(missing());
    };
    let ty = holder.ty.as_deref();
    match ty.and_then(|t| schema::element_type(t, name)) {
        Some((item, true)) => {
            let mut steps = holder.steps.clone();
            steps.push(Step::Key(name.to_owned()));
            Ok((steps, Some(item.to_owned())))
        }
        Some((_, false)) => Err(unprocessable(op, format!("{name} is not a list"))),
        None => Err(missing()),
    }
}

/// The element `name` (with the value's type suffix for a choice: `deceased` + `Boolean`) of
/// a `ty`: its JSON key, type, and whether it repeats.
fn element_for(
    ty: Option<&str>,
    name: &str,
    value: &Given,
) -> Result<(String, Option<String>, bool), String> {
    let Some(ty) = ty else {
        return Ok((name.to_owned(), None, false));
    };
    if let Some((t, repeats)) = schema::element_type(ty, name) {
        return Ok((name.to_owned(), Some(t.to_owned()), repeats));
    }
    if let Given::Typed(_, suffix) = value {
        let key = format!("{name}{suffix}");
        if let Some((t, repeats)) = schema::element_type(ty, &key) {
            return Ok((key, Some(t.to_owned()), repeats));
        }
    }
    Err(format!("{ty} has no element {name}"))
}

/// The JSON of a given value as an element of type `ty`.
fn build(value: &Given, ty: Option<&str>) -> Result<Value, String> {
    match value {
        Given::Typed(v, _) | Given::Resource(v) => Ok(v.clone()),
        Given::Parts(parts) => {
            let mut object = Map::new();
            for (name, part) in parts {
                let (key, child, repeats) = element_for(ty, name, part)?;
                let built = build(part, child.as_deref())?;
                match object.get_mut(&key) {
                    Some(Value::Array(list)) => list.push(built),
                    Some(_) if ty.is_some() => {
                        return Err(format!("{key} is given twice but does not repeat"));
                    }
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, built]);
                    }
                    None if repeats => {
                        object.insert(key, Value::Array(vec![built]));
                    }
                    None => {
                        object.insert(key, built);
                    }
                }
            }
            Ok(Value::Object(object))
        }
    }
}

/// When a replace puts a value of another type into a choice element (`valueQuantity` by a
/// `valueString`), renames the element; returns where the value now goes.
fn rename_choice(doc: &mut Value, target: &Located, value: &Given) -> Vec<Step> {
    let steps = &target.steps;
    let (Given::Typed(_, suffix), Some((Step::Key(key), parent)), Some(holder)) =
        (value, steps.split_last(), target.holder.as_deref())
    else {
        return steps.clone();
    };
    if key.ends_with(suffix.as_str()) {
        return steps.clone();
    }
    // The choice group the key belongs to, and its member of the new type.
    let renamed = key
        .char_indices()
        .filter(|(i, c)| *i > 0 && c.is_ascii_uppercase())
        .map(|(i, _)| &key[..i])
        .map(|group| {
            (
                schema::choice_members(holder, group),
                format!("{group}{suffix}"),
            )
        })
        .find(|(members, renamed)| {
            members.contains(&key.as_str()) && members.contains(&renamed.as_str())
        })
        .map(|(_, renamed)| renamed);
    let (Some(renamed), Some(Value::Object(object))) = (renamed, get_mut(doc, parent)) else {
        return steps.clone();
    };
    if let Some(old) = object.shift_remove(key.as_str()) {
        object.shift_remove(&format!("_{key}"));
        object.insert(renamed.clone(), old);
    }
    let mut out = parent.to_vec();
    out.push(Step::Key(renamed));
    out
}

/// Removes the item at `steps` (with its primitive extension), then what that leaves empty.
fn remove(doc: &mut Value, steps: &[Step]) {
    let Some((last, parent)) = steps.split_last() else {
        return;
    };
    match last {
        Step::Key(key) => {
            if let Some(Value::Object(object)) = get_mut(doc, parent) {
                object.shift_remove(key.as_str());
                object.shift_remove(&format!("_{key}"));
            }
        }
        Step::Index(i) => {
            let _ = take_at(doc, parent, *i);
            let empty = get(doc, parent)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            if empty {
                remove(doc, parent);
                return;
            }
        }
    }
    if !parent.is_empty()
        && get(doc, parent).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        remove(doc, parent);
    }
}

/// The primitive-extension list beside the list at `list` (`_given` beside `given`).
fn extension_list(list: &[Step]) -> Option<Vec<Step>> {
    let (Step::Key(key), holder) = list.split_last()? else {
        return None;
    };
    let mut steps = holder.to_vec();
    steps.push(Step::Key(format!("_{key}")));
    Some(steps)
}

/// Takes item `i` out of the list at `list`, with its primitive extension (or null).
fn take_at(doc: &mut Value, list: &[Step], i: usize) -> (Value, Value) {
    let item = match get_mut(doc, list) {
        Some(Value::Array(items)) if i < items.len() => items.remove(i),
        _ => Value::Null,
    };
    let mut ext = Value::Null;
    if let Some(at) = extension_list(list)
        && let Some(Value::Array(items)) = get_mut(doc, &at)
        && i < items.len()
    {
        ext = items.remove(i);
        if items.iter().all(Value::is_null) {
            remove_key(doc, &at);
        }
    }
    (item, ext)
}

/// Inserts `item` (and its primitive extension `ext`) at `i` of the list at `list`, making
/// the list when it is absent.
fn insert_at(doc: &mut Value, list: &[Step], i: usize, item: Value, ext: Value) {
    if get(doc, list).is_none()
        && let Some((Step::Key(key), holder)) = list.split_last()
        && let Some(Value::Object(object)) = get_mut(doc, holder)
    {
        object.insert(key.clone(), Value::Array(Vec::new()));
    }
    if let Some(Value::Array(items)) = get_mut(doc, list) {
        let i = i.min(items.len());
        items.insert(i, item);
    }
    let Some(at) = extension_list(list) else {
        return;
    };
    let len = get(doc, list).and_then(Value::as_array).map_or(0, Vec::len);
    match get_mut(doc, &at) {
        Some(Value::Array(items)) => {
            items.insert(i.min(items.len()), ext);
            items.resize(len, Value::Null);
        }
        _ if !ext.is_null() => {
            if let Some((Step::Key(key), holder)) = at.split_last()
                && let Some(Value::Object(object)) = get_mut(doc, holder)
            {
                let mut items = vec![Value::Null; len];
                if let Some(slot) = items.get_mut(i) {
                    *slot = ext;
                }
                object.insert(key.clone(), Value::Array(items));
            }
        }
        _ => {}
    }
}

fn remove_key(doc: &mut Value, steps: &[Step]) {
    if let Some((Step::Key(key), holder)) = steps.split_last()
        && let Some(Value::Object(object)) = get_mut(doc, holder)
    {
        object.shift_remove(key.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: &str, path: &str, extra: Value) -> Value {
        let mut parts = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        if let Value::Array(more) = extra {
            parts.extend(more);
        }
        json!({"name": "operation", "part": parts})
    }

    fn run(doc: &mut Value, ops: Vec<Value>) -> Result<(), ApiError> {
        let body = json!({"resourceType": "Parameters", "parameter": ops});
        apply(doc, &parse(&body)?)
    }

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p",
               "identifier": [{"system": "urn:a", "value": "1"}],
               "name": [{"family": "Chalmers", "given": ["Peter", "James"],
                         "_given": [null, {"extension": [{"url": "urn:x", "valueString": "y"}]}]}],
               "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "e"}],
               "birthDate": "1974-12-25",
               "_birthDate": {"extension": [{"url": "urn:t", "valueString": "z"}]},
               "deceasedBoolean": false})
    }

    // The examples of http://hl7.org/fhir/R4/fhirpatch.html, one per operation.

    #[test]
    fn add_a_primitive_and_a_complex_value() {
        let mut doc = json!({"resourceType": "Patient"});
        run(
            &mut doc,
            vec![op(
                "add",
                "Patient",
                json!([
            {"name": "name", "valueString": "birthDate"},
            {"name": "value", "valueDate": "1930-01-01"}]),
            )],
        )
        .expect("adds");
        assert_eq!(doc["birthDate"], "1930-01-01");
        // A complex value as parts; telecom repeats, so it becomes a list.
        run(
            &mut doc,
            vec![op(
                "add",
                "Patient",
                json!([
            {"name": "name", "valueString": "contact"},
            {"name": "value", "part": [
                {"name": "name", "valueHumanName": {"text": "a name"}},
                {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "5"}}]}]),
            )],
        )
        .expect("adds");
        assert_eq!(
            doc["contact"],
            json!([{"name": {"text": "a name"},
                                           "telecom": [{"system": "phone", "value": "5"}]}])
        );
        // A choice element takes its type from the value.
        run(
            &mut doc,
            vec![op(
                "add",
                "Patient",
                json!([
            {"name": "name", "valueString": "deceased"},
            {"name": "value", "valueDateTime": "2020-01-01"}]),
            )],
        )
        .expect("adds");
        assert_eq!(doc["deceasedDateTime"], "2020-01-01");
        // A second add of a single element is refused.
        let e = run(
            &mut doc,
            vec![op(
                "add",
                "Patient",
                json!([
            {"name": "name", "valueString": "birthDate"},
            {"name": "value", "valueDate": "1930-01-02"}]),
            )],
        )
        .expect_err("exists");
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let e = run(
            &mut doc,
            vec![op(
                "add",
                "Patient",
                json!([
            {"name": "name", "valueString": "nickname"},
            {"name": "value", "valueString": "x"}]),
            )],
        )
        .expect_err("no such element");
        assert!(
            e.outcome_value()
                .to_string()
                .contains("no element nickname"),
            "{e}"
        );
    }

    #[test]
    fn insert_at_an_index() {
        let mut doc = patient();
        run(
            &mut doc,
            vec![op(
                "insert",
                "Patient.identifier",
                json!([
            {"name": "value", "valueIdentifier": {"system": "urn:z", "value": "0"}},
            {"name": "index", "valueInteger": 0}]),
            )],
        )
        .expect("inserts");
        assert_eq!(doc["identifier"][0]["system"], "urn:z");
        assert_eq!(doc["identifier"][1]["system"], "urn:a");
        // Into a list of primitives: the extension list keeps in step.
        run(
            &mut doc,
            vec![op(
                "insert",
                "Patient.name[0].given",
                json!([
            {"name": "value", "valueString": "Jim"},
            {"name": "index", "valueInteger": 1}]),
            )],
        )
        .expect("inserts");
        assert_eq!(doc["name"][0]["given"], json!(["Peter", "Jim", "James"]));
        assert_eq!(
            doc["name"][0]["_given"][2]["extension"][0]["valueString"],
            "y"
        );
        assert_eq!(doc["name"][0]["_given"].as_array().map(Vec::len), Some(3));
        // Into an absent list, at 0.
        run(
            &mut doc,
            vec![op(
                "insert",
                "Patient.address",
                json!([
            {"name": "value", "valueAddress": {"city": "Ghent"}},
            {"name": "index", "valueInteger": 0}]),
            )],
        )
        .expect("makes the list");
        assert_eq!(doc["address"], json!([{"city": "Ghent"}]));
        let e = run(
            &mut doc,
            vec![op(
                "insert",
                "Patient.identifier",
                json!([
            {"name": "value", "valueIdentifier": {"value": "9"}},
            {"name": "index", "valueInteger": 7}]),
            )],
        )
        .expect_err("past the end");
        assert!(
            e.outcome_value().to_string().contains("past the end"),
            "{e}"
        );
    }

    #[test]
    fn delete_is_a_no_op_when_nothing_matches() {
        let mut doc = patient();
        run(
            &mut doc,
            vec![op(
                "delete",
                "Patient.telecom.where(system='phone')",
                json!([]),
            )],
        )
        .expect("deletes");
        assert_eq!(doc["telecom"], json!([{"system": "email", "value": "e"}]));
        run(
            &mut doc,
            vec![op(
                "delete",
                "Patient.telecom.where(system='phone')",
                json!([]),
            )],
        )
        .expect("nothing to delete");
        run(&mut doc, vec![op("delete", "Patient.birthDate", json!([]))]).expect("deletes");
        assert!(doc.get("birthDate").is_none() && doc.get("_birthDate").is_none());
        // The last item of a list takes the list; an emptied object goes too.
        run(&mut doc, vec![op("delete", "Patient.telecom", json!([]))]).expect("deletes");
        assert!(doc.get("telecom").is_none());
        run(
            &mut doc,
            vec![
                op("delete", "Patient.identifier.system", json!([])),
                op("delete", "Patient.identifier.value", json!([])),
            ],
        )
        .expect("deletes");
        assert!(doc.get("identifier").is_none(), "{doc}");
        // An item of a primitive list takes its extension along.
        run(
            &mut doc,
            vec![op("delete", "Patient.name.given[0]", json!([]))],
        )
        .expect("deletes");
        assert_eq!(doc["name"][0]["given"], json!(["James"]));
        assert_eq!(
            doc["name"][0]["_given"][0]["extension"][0]["valueString"],
            "y"
        );
        let e = run(
            &mut doc,
            vec![op("delete", "Patient.name.given | Patient.id", json!([]))],
        )
        .expect_err("unsupported");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn replace_needs_one_target() {
        let mut doc = patient();
        run(
            &mut doc,
            vec![op(
                "replace",
                "Patient.birthDate",
                json!([
            {"name": "value", "valueDate": "1930-01-01"}]),
            )],
        )
        .expect("replaces");
        assert_eq!(doc["birthDate"], "1930-01-01");
        assert!(doc.get("_birthDate").is_some(), "the extension stays");
        run(
            &mut doc,
            vec![op(
                "replace",
                "Patient.telecom.where(system='email').value",
                json!([
            {"name": "value", "valueString": "new@x"}]),
            )],
        )
        .expect("replaces");
        assert_eq!(doc["telecom"][1]["value"], "new@x");
        // A choice element changes its type.
        run(
            &mut doc,
            vec![op(
                "replace",
                "Patient.deceased",
                json!([
            {"name": "value", "valueDateTime": "2021-02-03"}]),
            )],
        )
        .expect("replaces");
        assert_eq!(doc["deceasedDateTime"], "2021-02-03");
        assert!(doc.get("deceasedBoolean").is_none());
        let e = run(
            &mut doc,
            vec![op(
                "replace",
                "Patient.gender",
                json!([
            {"name": "value", "valueCode": "male"}]),
            )],
        )
        .expect_err("nothing there");
        let text = e.outcome_value().to_string();
        assert!(
            text.contains("Patient.gender") && text.contains("matches nothing"),
            "{text}"
        );
        let e = run(
            &mut doc,
            vec![op(
                "replace",
                "Patient.telecom",
                json!([
            {"name": "value", "valueContactPoint": {"value": "x"}}]),
            )],
        )
        .expect_err("two");
        assert!(e.outcome_value().to_string().contains("2 elements"), "{e}");
    }

    #[test]
    fn move_within_a_list() {
        let mut doc = patient();
        run(
            &mut doc,
            vec![op(
                "move",
                "Patient.name[0].given",
                json!([
            {"name": "source", "valueInteger": 1},
            {"name": "destination", "valueInteger": 0}]),
            )],
        )
        .expect("moves");
        assert_eq!(doc["name"][0]["given"], json!(["James", "Peter"]));
        assert_eq!(
            doc["name"][0]["_given"][0]["extension"][0]["valueString"],
            "y"
        );
        assert!(doc["name"][0]["_given"][1].is_null());
        let e = run(
            &mut doc,
            vec![op(
                "move",
                "Patient.telecom",
                json!([
            {"name": "source", "valueInteger": 0},
            {"name": "destination", "valueInteger": 2}]),
            )],
        )
        .expect_err("out of range");
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let e = run(
            &mut doc,
            vec![op(
                "move",
                "Patient.address",
                json!([
            {"name": "source", "valueInteger": 0},
            {"name": "destination", "valueInteger": 0}]),
            )],
        )
        .expect_err("no list");
        assert!(
            e.outcome_value().to_string().contains("matches nothing"),
            "{e}"
        );
    }

    #[test]
    fn malformed_patches_are_400() {
        for (body, what) in [
            (json!({"resourceType": "Parameters"}), "at least one"),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "x"}]}),
                "named operation",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("frobnicate", "Patient", json!([]))]}),
                "frobnicate",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}]}),
                "path part",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("add", "Patient", json!([{"name": "value", "valueString": "x"}]))]}),
                "name part",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("insert", "Patient.name", json!([{"name": "value", "valueString": "x"}]))]}),
                "index part",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("move", "Patient.name", json!([{"name": "source", "valueInteger": -1}, {"name": "destination", "valueInteger": 0}]))]}),
                "0 or more",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("replace", "Patient.name.exists()", json!([{"name": "value", "valueString": "x"}]))]}),
                "exists()",
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [op("replace", "Patient.name", json!([{"name": "value"}]))]}),
                "value[x]",
            ),
        ] {
            let e = parse(&body).expect_err(what);
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{what}");
            assert!(
                e.outcome_value().to_string().contains(what),
                "{what}: {}",
                e.outcome_value()
            );
        }
    }
}
