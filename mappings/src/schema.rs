//! The structure of FHIR R4 resources, checked on write: every element a resource, data type
//! or backbone element may hold, its type, whether it repeats, whether it is required, its
//! choice group (`value[x]`), and the codes of a required binding (status codes and the like).
//!
//! The table (`schema/r4.json`) is generated from the R4 StructureDefinitions by way of the
//! R4 models of fhir.resources 6.4.0, with the `isSummary` flags read from the R4
//! StructureDefinitions themselves (`schema/generate.py` says how); this module only reads
//! it. A JSON value is checked for: unknown elements, an array where one value belongs (and
//! the reverse), the JSON type and lexical form of each primitive (`date`, `dateTime`,
//! `instant`, `time`, `id`, `code`, `integer` ranges …), primitive extensions (`_given`),
//! missing required elements, more than one member of a choice group, and codes outside a
//! required binding. Contained resources and `Bundle.entry.resource` are checked as what
//! they say they are.

use foldhash::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::path::Path;
use crate::{Issue, IssueCode};

/// One element of a type, as the table lists it: `[type, repeats, required, codes?,
/// targets?]` (the codes of a required binding; the types a Reference may point at); and,
/// from the type's `order`, its position in the definition.
#[derive(Debug, Deserialize)]
struct Element(
    String,
    u8,
    u8,
    #[serde(default)] Option<Vec<String>>,
    #[serde(default)] Option<Vec<String>>,
    #[serde(skip)] usize,
);

/// One type as the table lists it: its elements by JSON name, its choice groups
/// (`[required, members]`), and its element names in definition order.
#[derive(Debug, Deserialize)]
struct RawType {
    elements: HashMap<String, Element>,
    choices: HashMap<String, (u8, Vec<String>)>,
    order: Vec<String>,
    /// The elements R4 flags `isSummary`.
    #[serde(default)]
    summary: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawTable {
    types: HashMap<String, RawType>,
}

/// An element name and its primitive-extension name (`given`, `_given`).
type Named = (String, String);

/// A choice group: its name, whether one member is required, and its members.
type Choice = (String, (u8, Vec<Named>));

/// One type, ready to check against: the required elements and the choice members come
/// with their primitive-extension names (`_name`); each element knows its position in the
/// definition (the order of the XML form).
#[derive(Debug)]
struct TypeDef {
    elements: HashMap<String, Element>,
    required: Vec<Named>,
    choices: Vec<Choice>,
    summary: Vec<String>,
}

#[derive(Debug)]
struct Table {
    types: HashMap<String, TypeDef>,
}

impl From<RawTable> for Table {
    fn from(raw: RawTable) -> Table {
        let with_extension = |n: &String| (n.clone(), format!("_{n}"));
        let types = raw
            .types
            .into_iter()
            .map(|(name, mut t)| {
                // An element the order does not list (the generator rules it out) goes last.
                for e in t.elements.values_mut() {
                    e.5 = usize::MAX;
                }
                for (position, element) in t.order.iter().enumerate() {
                    if let Some(e) = t.elements.get_mut(element) {
                        e.5 = position;
                    }
                }
                let mut required: Vec<Named> = t
                    .elements
                    .iter()
                    .filter(|(_, e)| e.2 == 1)
                    .map(|(n, _)| with_extension(n))
                    .collect();
                required.sort();
                let mut choices: Vec<Choice> = t
                    .choices
                    .into_iter()
                    .map(|(g, (req, members))| {
                        (g, (req, members.iter().map(with_extension).collect()))
                    })
                    .collect();
                choices.sort();
                let def = TypeDef {
                    elements: t.elements,
                    required,
                    choices,
                    summary: t.summary,
                };
                (name, def)
            })
            .collect();
        Table { types }
    }
}

static TABLE: OnceLock<Option<Table>> = OnceLock::new();

fn table() -> Option<&'static Table> {
    TABLE
        .get_or_init(|| {
            serde_json::from_str::<RawTable>(include_str!("../schema/r4.json"))
                .ok()
                .map(Table::from)
        })
        .as_ref()
}

/// The top-level elements a resource of `rtype` must have, the members of a required
/// choice (`medication[x]`) included (empty for an unknown type).
pub fn required_elements(rtype: &str) -> Vec<&'static str> {
    let Some(def) = table().and_then(|t| t.types.get(rtype)) else {
        return Vec::new();
    };
    def.required
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(
            def.choices
                .iter()
                .filter(|(_, (required, _))| *required == 1)
                .flat_map(|(_, (_, members))| members.iter().map(|(m, _)| m.as_str())),
        )
        .collect()
}

/// The FHIR type of element `name` of type `ty` (a resource, data type or backbone
/// element: `Patient.contact` is a `PatientContact`) and whether it repeats.
pub fn element_type(ty: &str, name: &str) -> Option<(&'static str, bool)> {
    element_info(ty, name).map(|e| (e.ty, e.repeats))
}

/// The members of choice group `group` of type `ty` (`deceased`: `deceasedBoolean`,
/// `deceasedDateTime`); empty when there is no such group.
pub fn choice_members(ty: &str, group: &str) -> Vec<&'static str> {
    let Some(def) = table().and_then(|t| t.types.get(ty)) else {
        return Vec::new();
    };
    def.choices
        .iter()
        .filter(|(g, _)| g == group)
        .flat_map(|(_, (_, members))| members.iter().map(|(m, _)| m.as_str()))
        .collect()
}

/// The elements of type `ty` that R4 flags `isSummary` (JSON names: each member of a
/// choice group), sorted; what `_summary=true` keeps, with the required ones.
pub fn summary_elements(ty: &str) -> &'static [String] {
    table()
        .and_then(|t| t.types.get(ty))
        .map_or(&[][..], |def| def.summary.as_slice())
}

/// Whether the element table loaded (it is compiled in; a unit test proves it parses).
pub fn available() -> bool {
    table().is_some()
}

/// One element of a type as the XML mapping needs it: its JSON (and XML) name, its FHIR
/// type (a primitive in lower camel case, a complex type, `Resource` for a contained one,
/// `xhtml` for the narrative `div`), whether it repeats, and its position in the type's
/// definition (the XML form writes the elements in that order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElementInfo {
    pub(crate) name: &'static str,
    pub(crate) ty: &'static str,
    pub(crate) repeats: bool,
    pub(crate) position: usize,
}

/// The table's name of type `ty` (a resource, data type or backbone element), if it has it.
pub(crate) fn type_name(ty: &str) -> Option<&'static str> {
    table()?
        .types
        .get_key_value(ty)
        .map(|(name, _)| name.as_str())
}

/// The element `name` of type `ty`, if the type has it.
pub(crate) fn element_info(ty: &str, name: &str) -> Option<ElementInfo> {
    let (name, element) = table()?.types.get(ty)?.elements.get_key_value(name)?;
    Some(ElementInfo {
        name,
        ty: &element.0,
        repeats: element.1 == 1,
        position: element.5,
    })
}

/// Checks a resource (a JSON object with its `resourceType`) against the R4 structure;
/// `root` is the path to report from (`Patient`, `Bundle.entry[2].resource`).
pub fn check(resource: &Map<String, Value>, root: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    let Some(table) = table() else {
        return issues;
    };
    let mut path = Path::new(root);
    let mut w = Walk {
        table,
        resources: Vec::new(),
        next_is_contained: false,
    };
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(rtype) => check_object(&mut w, rtype, resource, &mut path, true, &mut issues),
        None => issues.push(structure(root, "a resource needs its resourceType")),
    }
    issues
}

/// The state of one check: the table, and for each resource being walked (innermost last)
/// what its local references (`#id`) may name.
struct Walk<'t> {
    table: &'t Table,
    resources: Vec<Local>,
    /// The next resource object checked is an item of `contained`.
    next_is_contained: bool,
}

/// What local references inside one resource may name.
struct Local {
    /// The ids of the contained resources of the resource that contains them all.
    contained: Vec<String>,
    /// This is a contained resource (where `#` alone names its container).
    is_contained: bool,
}

fn structure(path: &str, text: impl Into<String>) -> Issue {
    Issue::error(IssueCode::Structure, path, text)
}

fn check_object<'a>(
    w: &mut Walk<'_>,
    ty: &str,
    object: &'a Map<String, Value>,
    path: &mut Path<'a>,
    is_resource: bool,
    issues: &mut Vec<Issue>,
) {
    let table = w.table;
    let Some(def) = table.types.get(ty) else {
        issues.push(structure(&path.text(""), format!("{ty} is not an R4 type")));
        return;
    };
    if is_resource {
        // A contained resource's local references name its container's contained
        // resources; any other resource (the root, a Bundle entry) starts its own.
        let local = if std::mem::take(&mut w.next_is_contained) {
            Local {
                contained: w
                    .resources
                    .last()
                    .map(|l| l.contained.clone())
                    .unwrap_or_default(),
                is_contained: true,
            }
        } else {
            Local {
                contained: object
                    .get("contained")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect(),
                is_contained: false,
            }
        };
        w.resources.push(local);
    }
    for (key, value) in object {
        if is_resource && key == "resourceType" {
            continue;
        }
        path.key(key);
        if let Some(base) = key.strip_prefix('_') {
            match def.elements.get(base) {
                Some(e) if is_primitive(&e.0) => {
                    check_primitive_extension(w, e.1 == 1, value, path, issues);
                }
                Some(_) => issues.push(structure(
                    &path.text(""),
                    format!("{base} is not a primitive element: it cannot have a {key}"),
                )),
                None => issues.push(structure(
                    &path.text(""),
                    format!("unknown element {key} of {ty}"),
                )),
            }
            path.pop();
            continue;
        }
        let Some(element) = def.elements.get(key.as_str()) else {
            issues.push(structure(
                &path.text(""),
                format!("unknown element {key} of {ty}"),
            ));
            path.pop();
            continue;
        };
        let (ety, repeats) = (&element.0, element.1 == 1);
        let contained = is_resource && key == "contained";
        match (value, repeats) {
            (Value::Array(items), true) => {
                for (i, item) in items.iter().enumerate() {
                    // A null stands in for a value given only by its primitive extension.
                    if item.is_null() && is_primitive(ety) && has_extension_at(object, key, i) {
                        continue;
                    }
                    path.index(i);
                    w.next_is_contained = contained;
                    check_value(w, element, item, path, issues);
                    w.next_is_contained = false;
                    path.pop();
                }
            }
            (Value::Array(_), false) => issues.push(structure(
                &path.text(""),
                format!("{key} holds one value, not an array"),
            )),
            (_, true) => issues.push(structure(
                &path.text(""),
                format!("{key} repeats: it must be an array"),
            )),
            (_, false) => check_value(w, element, value, path, issues),
        }
        path.pop();
    }
    if is_resource {
        w.resources.pop();
    }
    for (name, underscored) in &def.required {
        if !object.contains_key(name.as_str()) && !object.contains_key(underscored.as_str()) {
            issues.push(Issue::error(
                IssueCode::Required,
                path.text(name),
                format!("{ty}.{name} is required"),
            ));
        }
    }
    for (group, (required, members)) in &def.choices {
        let mut present = members
            .iter()
            .filter(|(m, um)| object.contains_key(m.as_str()) || object.contains_key(um.as_str()));
        let first = present.next();
        if let Some((second, _)) = present.next() {
            issues.push(structure(
                &path.text(second),
                format!(
                    "only one of {group}[x] may be given, not {} and {second}",
                    first.map_or("", |(m, _)| m.as_str())
                ),
            ));
        } else if first.is_none() && *required == 1 {
            issues.push(Issue::error(
                IssueCode::Required,
                path.text(&format!("{group}[x]")),
                format!("{ty}.{group}[x] is required"),
            ));
        }
    }
}

/// Whether `object[key]` has a primitive extension at position `i` (`_key[i]` an object).
fn has_extension_at(object: &Map<String, Value>, key: &str, i: usize) -> bool {
    object
        .get(format!("_{key}").as_str())
        .and_then(Value::as_array)
        .and_then(|a| a.get(i))
        .is_some_and(Value::is_object)
}

fn check_primitive_extension<'a>(
    w: &mut Walk<'_>,
    repeats: bool,
    value: &'a Value,
    path: &mut Path<'a>,
    issues: &mut Vec<Issue>,
) {
    match (value, repeats) {
        (Value::Object(o), false) => check_object(w, "Element", o, path, false, issues),
        (Value::Array(items), true) => {
            for (i, item) in items.iter().enumerate() {
                path.index(i);
                match item {
                    Value::Null => {}
                    Value::Object(o) => check_object(w, "Element", o, path, false, issues),
                    _ => issues.push(structure(
                        &path.text(""),
                        "a primitive extension is an object (or null)",
                    )),
                }
                path.pop();
            }
        }
        (_, false) => issues.push(structure(
            &path.text(""),
            "a primitive extension is an object",
        )),
        (_, true) => issues.push(structure(
            &path.text(""),
            "the extensions of a repeating primitive are an array",
        )),
    }
}

fn check_value<'a>(
    w: &mut Walk<'_>,
    element: &Element,
    value: &'a Value,
    path: &mut Path<'a>,
    issues: &mut Vec<Issue>,
) {
    let ty = element.0.as_str();
    if is_primitive(ty) {
        if let Some(problem) = primitive_problem(ty, value) {
            issues.push(Issue::error(IssueCode::Value, path.text(""), problem));
        } else if let (Some(codes), Some(code)) = (&element.3, value.as_str())
            && !codes.iter().any(|c| c == code)
        {
            issues.push(Issue::error(
                IssueCode::CodeInvalid,
                path.text(""),
                format!(
                    "{code:?} is not one of the codes of the required binding: {}",
                    codes.join(", ")
                ),
            ));
        }
        return;
    }
    let Value::Object(object) = value else {
        issues.push(structure(
            &path.text(""),
            format!("a {ty} is a JSON object"),
        ));
        return;
    };
    if ty == "Reference" {
        let problem = reference_form_problem(object, w.resources.last()).or_else(|| {
            element
                .4
                .as_ref()
                .and_then(|targets| reference_problem(object, targets))
        });
        if let Some(problem) = problem {
            issues.push(Issue::error(IssueCode::Value, path.text(""), problem));
        }
    }
    if ty == "Period"
        && let Some(problem) = period_problem(object)
    {
        issues.push(Issue::error(IssueCode::Invariant, path.text(""), problem));
    }
    if ty == "Resource" {
        match object.get("resourceType").and_then(Value::as_str) {
            Some(rtype) if w.table.types.contains_key(rtype) => {
                check_object(w, rtype, object, path, true, issues);
            }
            Some(rtype) => issues.push(structure(
                &path.text(""),
                format!("unknown resource type {rtype}"),
            )),
            None => issues.push(structure(
                &path.text(""),
                "a resource needs its resourceType",
            )),
        }
        return;
    }
    check_object(w, ty, object, path, false, issues);
}

/// What is wrong with the form of a Reference's `reference`: a local reference (`#id`) must
/// name a contained resource (ref-1; `#` alone, the container, only from a contained
/// resource); an absolute reference must be a URL with a host or a well-formed `urn:uuid:` /
/// `urn:oid:`; anything else is relative and must be `Type/id` or `Type/id/_history/version`
/// with a known type and valid ids. (A conditional reference, `Type?criteria`, is only
/// allowed in a transaction, which resolves it before this check.)
fn reference_form_problem(object: &Map<String, Value>, local: Option<&Local>) -> Option<String> {
    let text = object.get("reference").and_then(Value::as_str)?;
    if let Some(id) = text.strip_prefix('#') {
        let local = local?;
        return if id.is_empty() {
            (!local.is_contained).then(|| {
                "\"#\" names the containing resource: only a contained resource may use it"
                    .to_owned()
            })
        } else {
            (!local.contained.iter().any(|c| c == id))
                .then(|| format!("{text:?} names no contained resource of this resource (ref-1)"))
        };
    }
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    if let Some((scheme, rest)) = text.split_once(':')
        && is_scheme(scheme)
    {
        let ok = match scheme.to_ascii_lowercase().as_str() {
            "urn" => match rest.split_once(':') {
                Some(("uuid", uuid)) => is_uuid(uuid),
                Some(("oid", oid)) => is_oid(oid),
                Some((nid, nss)) => !nid.is_empty() && !nss.is_empty(),
                None => false,
            },
            "http" | "https" => rest
                .strip_prefix("//")
                .is_some_and(|r| !r.is_empty() && !r.starts_with('/')),
            _ => !rest.is_empty(),
        };
        return (!ok).then(|| format!("{text:?} is not a valid absolute reference"));
    }
    if text.contains('?') {
        return Some(format!(
            "{text:?} is a conditional reference: only a transaction may hold one (it resolves it)"
        ));
    }
    let valid_id = crate::json::is_valid_id;
    let ok = match text.split('/').collect::<Vec<_>>().as_slice() {
        [t, id] => crate::types::is_resource_type(t) && valid_id(id),
        [t, id, "_history", v] => crate::types::is_resource_type(t) && valid_id(id) && valid_id(v),
        _ => false,
    };
    (!ok).then(|| {
        format!(
            "{text:?} is not a reference: Type/id (a resource type and a valid id), \
             Type/id/_history/version, #id of a contained resource, or an absolute URL"
        )
    })
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Dot-separated numbers (`1.2.840.113549`).
fn is_oid(s: &str) -> bool {
    s.split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// per-1: a Period may not end before it starts. Only a certain violation is one: partial
/// dates compare by the whole span they stand for.
fn period_problem(object: &Map<String, Value>) -> Option<String> {
    let bound = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .and_then(crate::dates::parse_range)
    };
    let ((start, _), (_, end)) = (bound("start")?, bound("end")?);
    (start > end).then(|| "the period ends before it starts (per-1)".to_owned())
}

/// What is wrong with where a Reference points, given the types the element allows: the
/// type in `reference` (`Type/id`, a full URL ending so, `…/_history/n`) or in `type`.
/// Local (`#…`) and bundle (`urn:uuid:…`) references, and URLs that name no resource type,
/// are not judged here.
fn reference_problem(object: &Map<String, Value>, targets: &[String]) -> Option<String> {
    let allowed = |t: &str| targets.iter().any(|a| a == t);
    let named = object.get("type").and_then(Value::as_str);
    if let Some(t) = named
        && crate::types::is_resource_type(t)
        && !allowed(t)
    {
        return Some(format!(
            "a reference to a {t} is not allowed here (only {})",
            targets.join(", ")
        ));
    }
    let text = object.get("reference").and_then(Value::as_str)?;
    if text.starts_with('#') || text.starts_with("urn:") {
        return None;
    }
    let path = text.split(['?', '#']).next().unwrap_or(text);
    let path = path.split("/_history/").next().unwrap_or(path);
    let mut segments = path.rsplit('/');
    let (_id, t) = (segments.next()?, segments.next()?);
    (crate::types::is_resource_type(t) && !allowed(t)).then(|| {
        format!(
            "a reference to a {t} is not allowed here (only {})",
            targets.join(", ")
        )
    })
}

/// The FHIR primitive types (the table names them in lower camel case).
pub(crate) fn is_primitive(ty: &str) -> bool {
    ty.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// What is wrong with `value` as a FHIR primitive of type `ty`, if anything.
fn primitive_problem(ty: &str, value: &Value) -> Option<String> {
    let want = |what: &str| Some(format!("a {ty} must be {what}, not {}", kind(value)));
    match ty {
        "boolean" => (!value.is_boolean())
            .then(|| format!("a boolean must be true or false, not {}", kind(value))),
        "integer" | "unsignedInt" | "positiveInt" => {
            let Some(n) = value.as_i64() else {
                return want("a whole number");
            };
            let (low, high) = match ty {
                "integer" => (i64::from(i32::MIN), i64::from(i32::MAX)),
                "unsignedInt" => (0, i64::from(i32::MAX)),
                _ => (1, i64::from(i32::MAX)),
            };
            (!(low..=high).contains(&n))
                .then(|| format!("{n} is outside the range of a {ty} ({low} to {high})"))
        }
        "decimal" => (!value.is_number())
            .then(|| format!("a decimal must be a JSON number, not {}", kind(value))),
        _ => {
            let Some(text) = value.as_str() else {
                return want("a string");
            };
            // A byte scan first (C0 controls and DEL are single bytes, C1 controls start
            // with 0xC2): most strings have none of these, and the scan is cheap.
            // (A fold without an early exit, which the compiler vectorises.)
            let suspect = text.bytes().fold(false, |found, b| {
                found | (b < 0x20) | (b == 0x7F) | (b == 0xC2)
            });
            if suspect
                && let Some(c) = text
                    .chars()
                    .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            {
                return Some(format!(
                    "a {ty} may not hold the control character U+{:04X} (only tab, carriage return and line feed)",
                    u32::from(c)
                ));
            }
            lexical_problem(ty, text)
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The lexical rules of the string-based primitives (FHIR R4 datatypes, "Primitive Types").
fn lexical_problem(ty: &str, text: &str) -> Option<String> {
    let bad = |rule: &str| Some(format!("{text:?} is not a valid {ty} ({rule})"));
    match ty {
        "date" => (!is_date(text))
            .then(|| format!("{text:?} is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)")),
        "dateTime" => {
            let ok = match text.split_once('T') {
                None => is_date(text),
                Some((d, t)) => is_full_date(d) && is_time_with_zone(t, false),
            };
            if ok {
                None
            } else {
                bad("YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff]+zz:zz")
            }
        }
        "instant" => {
            let ok = text
                .split_once('T')
                .is_some_and(|(d, t)| is_full_date(d) && is_time_with_zone(t, true));
            if ok {
                None
            } else {
                bad("YYYY-MM-DDThh:mm:ss[.fff] with a time zone")
            }
        }
        "time" => {
            (!is_time(text)).then(|| format!("{text:?} is not a valid time (hh:mm:ss[.fff])"))
        }
        "id" => (!crate::json::is_valid_id(text))
            .then(|| format!("{text:?} is not a valid id (1 to 64 of A-Z, a-z, 0-9, '-', '.')")),
        "code" => (text.trim() != text || text.contains("  ") || text.is_empty()).then(|| {
            format!("{text:?} is not a valid code (no leading, trailing or double spaces)")
        }),
        "uri" | "url" | "canonical" => text
            .chars()
            .any(char::is_whitespace)
            .then(|| format!("{text:?} is not a valid {ty} (no whitespace)")),
        "oid" => (!text.starts_with("urn:oid:")
            || !text[8..]
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| format!("{text:?} is not a valid oid (urn:oid:1.2.3)")),
        "uuid" => (!text.starts_with("urn:uuid:") || text.len() != 45)
            .then(|| format!("{text:?} is not a valid uuid (urn:uuid: and 36 characters)")),
        "base64Binary" => (!text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b' ' | b'\n' | b'\r')
        }))
        .then(|| format!("{ty} holds characters outside base64")),
        _ => None,
    }
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn in_range(s: &str, low: u32, high: u32) -> bool {
    s.parse::<u32>().is_ok_and(|v| (low..=high).contains(&v))
}

/// A year of the R4 pattern: four digits, not 0000.
fn is_year(s: &str) -> bool {
    digits(s, 4) && s != "0000"
}

/// A date that exists: the day within its month (29 February in leap years only).
fn is_full_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 3 || !is_year(parts[0]) || !digits(parts[1], 2) || !digits(parts[2], 2) {
        return false;
    }
    let (Ok(year), Ok(month)) = (parts[0].parse::<u32>(), parts[1].parse::<u32>()) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    in_range(parts[2], 1, days)
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.len() {
        1 => is_year(parts[0]),
        2 => is_year(parts[0]) && digits(parts[1], 2) && in_range(parts[1], 1, 12),
        _ => is_full_date(s),
    }
}

fn is_time(s: &str) -> bool {
    let (hms, fraction) = match s.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    parts.len() == 3
        && digits(parts[0], 2)
        && in_range(parts[0], 0, 23)
        && digits(parts[1], 2)
        && in_range(parts[1], 0, 59)
        && digits(parts[2], 2)
        && in_range(parts[2], 0, 60)
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// `hh:mm:ss[.fff]` then `Z` or `±hh:mm` (the zone required for dateTime too when a time is
/// given; `instant` the same).
fn is_time_with_zone(s: &str, _instant: bool) -> bool {
    if let Some(t) = s.strip_suffix('Z') {
        return is_time(t);
    }
    let Some(at) = s.rfind(['+', '-']) else {
        return false;
    };
    let (t, zone) = s.split_at(at);
    let zone = &zone[1..];
    // The R4 pattern: -13:59 to +13:59, and 14:00 either way.
    let ok_zone = zone.split_once(':').is_some_and(|(h, m)| {
        digits(h, 2)
            && digits(m, 2)
            && ((in_range(h, 0, 13) && in_range(m, 0, 59)) || (h == "14" && m == "00"))
    });
    is_time(t) && ok_zone
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues(v: Value) -> Vec<(IssueCode, String)> {
        let Value::Object(o) = v else { return vec![] };
        let root = o["resourceType"].as_str().unwrap_or_default().to_owned();
        check(&o, &root)
            .into_iter()
            .map(|i| (i.code, i.expression))
            .collect()
    }

    #[test]
    fn summary_flags_come_from_r4() {
        let patient = summary_elements("Patient");
        for name in [
            "id",
            "meta",
            "identifier",
            "name",
            "birthDate",
            "deceasedBoolean",
        ] {
            assert!(patient.iter().any(|e| e == name), "{name}");
        }
        for name in ["text", "contained", "contact", "photo", "communication"] {
            assert!(!patient.iter().any(|e| e == name), "{name}");
        }
        assert!(
            summary_elements("Observation")
                .iter()
                .any(|e| e == "valueQuantity")
        );
        assert!(
            summary_elements("ObservationComponent")
                .iter()
                .any(|e| e == "code")
        );
        assert!(summary_elements("NoSuchType").is_empty());
    }

    #[test]
    fn the_table_loads() {
        assert!(available());
    }

    #[test]
    fn every_element_has_its_own_position_in_the_definition() {
        let Some(table) = table() else {
            panic!("the table loads")
        };
        for (name, def) in &table.types {
            let mut positions: Vec<usize> = def.elements.values().map(|e| e.5).collect();
            positions.sort_unstable();
            assert_eq!(
                positions,
                (0..def.elements.len()).collect::<Vec<_>>(),
                "{name}"
            );
        }
        let position = |name: &str| element_info("Patient", name).map(|e| e.position);
        let patient = [
            "id",
            "meta",
            "implicitRules",
            "language",
            "text",
            "contained",
            "extension",
            "modifierExtension",
            "identifier",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
        ];
        for (i, name) in patient.iter().enumerate() {
            assert_eq!(position(name), Some(i), "{name}");
        }
        assert_eq!(
            element_info("Patient", "name"),
            Some(ElementInfo {
                name: "name",
                ty: "HumanName",
                repeats: true,
                position: 10
            })
        );
        assert_eq!(type_name("Extension"), Some("Extension"));
        assert_eq!(type_name("Nothing"), None);
    }

    #[test]
    fn types_cardinality_and_unknown_elements() {
        assert!(issues(json!({"resourceType": "Patient", "birthDate": "1970-01-01", "name": [{"given": ["A", "B"]}]})).is_empty());
        assert_eq!(
            issues(json!({"resourceType": "Patient", "birthDate": 42})),
            vec![(IssueCode::Value, "Patient.birthDate".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "birthDate": "1970-13-01"})),
            vec![(IssueCode::Value, "Patient.birthDate".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "name": {"family": "X"}})),
            vec![(IssueCode::Structure, "Patient.name".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "nickname": "X"})),
            vec![(IssueCode::Structure, "Patient.nickname".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "active": "yes"})),
            vec![(IssueCode::Value, "Patient.active".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "gender": "woman"})),
            vec![(IssueCode::CodeInvalid, "Patient.gender".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "name": [{"given": ["A", 7]}]})),
            vec![(IssueCode::Value, "Patient.name[0].given[1]".into())]
        );
        assert_eq!(
            issues(json!({"resourceType": "Patient", "multipleBirthInteger": 3000000000i64})),
            vec![(IssueCode::Value, "Patient.multipleBirthInteger".into())]
        );
    }

    #[test]
    fn required_elements_choices_and_primitive_extensions() {
        assert_eq!(
            issues(json!({"resourceType": "Observation", "code": {"text": "x"}})),
            vec![(IssueCode::Required, "Observation.status".into())]
        );
        assert_eq!(
            issues(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueString": "a", "valueBoolean": true})
            ),
            vec![(IssueCode::Structure, "Observation.valueString".into())]
        );
        // A value given only by its extension, and a null held by an extension.
        assert!(issues(json!({"resourceType": "Patient",
            "_birthDate": {"extension": [{"url": "http://x", "valueString": "unknown"}]},
            "name": [{"given": [null, "B"], "_given": [{"extension": [{"url": "http://x", "valueCode": "c"}]}, null]}]}))
        .is_empty());
        assert_eq!(
            issues(json!({"resourceType": "Patient", "name": [{"given": [null]}]})),
            vec![(IssueCode::Value, "Patient.name[0].given[0]".into())]
        );
        // References point at the types the element allows.
        assert_eq!(
            issues(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": "Practitioner/1"}})
            ),
            vec![(IssueCode::Value, "Observation.subject".into())]
        );
        assert!(issues(json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": "http://example.org/fhir/Patient/1/_history/2"},
            "contained": [{"resourceType": "Practitioner", "id": "p1"}],
            "performer": [{"reference": "#p1"}, {"reference": "urn:uuid:7f1d5d3c-0000-4000-8000-000000000001"}]}))
        .is_empty());
        // Contained resources and bundle entries are checked as what they are.
        assert_eq!(
            issues(json!({"resourceType": "Bundle", "type": "collection",
                "entry": [{"resource": {"resourceType": "Patient", "birthDate": "x"}}]})),
            vec![(
                IssueCode::Value,
                "Bundle.entry[0].resource.birthDate".into()
            )]
        );
    }

    #[test]
    fn lexical_forms() {
        for ok in [
            "2020",
            "2020-02",
            "2020-02-29",
            "2020-02-29T10:00:00Z",
            "2020-02-29T10:00:00.123+01:00",
        ] {
            assert_eq!(lexical_problem("dateTime", ok), None, "{ok}");
        }
        for bad in [
            "20",
            "2020-2",
            "2020-02-29T10:00",
            "2020-02-29T10:00:00",
            "2020-02-29 10:00:00Z",
        ] {
            assert!(lexical_problem("dateTime", bad).is_some(), "{bad}");
        }
        assert!(lexical_problem("instant", "2020-02-29").is_some());
        assert_eq!(lexical_problem("time", "23:59:59.5"), None);
        assert!(lexical_problem("code", " x").is_some());
        assert!(lexical_problem("uri", "a b").is_some());
        assert_eq!(lexical_problem("oid", "urn:oid:1.2.3"), None);
        // Dates that do not exist, year 0000, zones beyond ±14:00.
        for bad in [
            "2021-02-29",
            "2020-02-30",
            "2020-06-31",
            "0000",
            "0000-01-01",
            "2020-01-01T10:00:00+14:30",
            "2020-01-01T10:00:00-15:00",
        ] {
            assert!(lexical_problem("dateTime", bad).is_some(), "{bad}");
        }
        for ok in [
            "2000-02-29",
            "2020-12-31",
            "2020-01-01T10:00:00-14:00",
            "0001",
        ] {
            assert_eq!(lexical_problem("dateTime", ok), None, "{ok}");
        }
        assert!(lexical_problem("date", "1900-02-29").is_some());
    }

    #[test]
    fn control_characters_and_periods() {
        assert!(primitive_problem("string", &json!("a\u{0}b")).is_some());
        assert!(primitive_problem("markdown", &json!("\u{1b}[31m")).is_some());
        assert!(primitive_problem("code", &json!("x\u{85}")).is_some());
        assert_eq!(primitive_problem("string", &json!("a\tb\r\nc")), None);
        assert_eq!(
            issues(json!({"resourceType": "Encounter", "status": "finished",
                "class": {"code": "AMB"},
                "period": {"start": "2020-02-01", "end": "2020-01-31"}})),
            vec![(IssueCode::Invariant, "Encounter.period".into())]
        );
        // Partial dates: the end may be as coarse as it likes.
        assert!(
            issues(json!({"resourceType": "Encounter", "status": "finished",
            "class": {"code": "AMB"},
            "period": {"start": "2020-02-01T10:00:00Z", "end": "2020"}}))
            .is_empty()
        );
    }

    #[test]
    fn reference_forms() {
        let with = |reference: &str| {
            issues(
                json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "contained": [{"resourceType": "Patient", "id": "p1",
                    "link": [{"other": {"reference": "#"}, "type": "seealso"}]}],
                "subject": {"reference": reference}}),
            )
        };
        for ok in [
            "Patient/1",
            "Patient/a.b-c/_history/2",
            "#p1",
            "http://example.org/fhir/Patient/1",
            "urn:uuid:7f1d5d3c-0000-4000-8000-000000000001",
            "urn:oid:1.2.3",
        ] {
            assert!(with(ok).is_empty(), "{ok}: {:?}", with(ok));
        }
        for bad in [
            "Patient/",
            "/",
            "Patient/a/b/c/d",
            "Foo/1",
            "#",
            "#p2",
            "Patient/..",
            "Patient?identifier=x",
            "urn:uuid:x",
            "http://",
            "Patient/1/_history/",
        ] {
            assert_eq!(
                with(bad),
                vec![(IssueCode::Value, "Observation.subject".into())],
                "{bad}"
            );
        }
        // `#` names the container from inside a contained resource only; a Bundle entry
        // has contained resources of its own.
        assert!(
            issues(json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "#p"},
                "contained": [{"resourceType": "Patient", "id": "p"}]}}]}))
            .is_empty()
        );
        assert_eq!(
            issues(json!({"resourceType": "Bundle", "type": "collection",
                "entry": [{"resource": {"resourceType": "Observation", "status": "final",
                    "code": {"text": "x"}, "subject": {"reference": "#p"}}}]})),
            vec![(IssueCode::Value, "Bundle.entry[0].resource.subject".into())]
        );
    }
}
