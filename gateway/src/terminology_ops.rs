//! The terminology operations and the built-in code-system resources, answered from the
//! in-memory tables (`terminology`), never from the store.
//!
//! | route | answer |
//! |---|---|
//! | `GET CodeSystem/{icd-10,icpc-2,icd-10-cm}` | a summary (`content: not-present`, `count`), no concepts |
//! | `GET`/`POST CodeSystem[/{id}]/$lookup` | `name`, `version`, `display`, `property` (parent, child, kind, selectable) |
//! | `GET`/`POST CodeSystem[/{id}]/$validate-code`, `ValueSet/$validate-code` | `result`, `message`, `display` |
//! | `GET`/`POST CodeSystem[/{id}]/$subsumes` | `outcome` |
//! | `GET`/`POST ValueSet/$expand` | a ValueSet with a paged `expansion` |
//! | `GET`/`POST ConceptMap/$translate` | `result`, `message`, one `match` per target |
//!
//! Rules chosen here, all documented in README.md:
//!
//! - The ids `icd-10`, `icpc-2` and `icd-10-cm` are reserved for the built-in code systems,
//!   whether their table is loaded or not (a client's resource must not be shadowed when a
//!   table is loaded later): a read answers the summary (404 when the table is not loaded);
//!   every other interaction on them is 405. Every other CodeSystem id is an ordinary stored
//!   resource.
//! - A type-level CodeSystem search answers the built-in summaries that match, on the first
//!   page, ahead of the stored CodeSystems. A parameter the store cannot filter CodeSystems by
//!   (today `url`, `name`, `title`, `status`, `version`) is answered from the built-ins alone,
//!   with an outcome entry saying so, rather than listing stored resources that do not match.
//! - A code system, value set or concept map the server has no table for is a 404, like a
//!   resource that does not exist: a `false` would claim the code is wrong when the server
//!   simply cannot tell. A missing or malformed input is a 400 naming the parameter.
//! - `$validate-code` answers as write validation does: a chapter or block (FHIR "abstract")
//!   is not a valid code unless `abstract=true`; a wrong display keeps `result: true` with a
//!   warning in `message`. `$lookup` of an unknown code is a 404 (the spec calls it an
//!   error); `$subsumes` with an unknown code is a 400 naming `codeA` or `codeB`.
//! - The implicit value sets are `{system}` and `{system}?fhir_vs` (every code) and
//!   `{system}?fhir_vs=isa/{code}` (the code and every code below it). An expansion lists
//!   groupings too, marked `abstract`, so that the hierarchy can be browsed.
//! - Each system has one loaded edition; requested versions are not checked, and answers
//!   name the loaded edition.

use mappings::json::Resource;
use mappings::{Issue, IssueCode, Severity};
use serde_json::{Map, Value, json};
use terminology::{
    ConceptRef, ICD10, ICD10CM, ICPC2, Kind, SystemInfo, Terminology, Validation, normalise_icd10,
};

use crate::Limits;
use crate::outcome::{ApiError, outcome};

/// A code system the server can serve from a table, with its reserved CodeSystem id.
struct Builtin {
    id: &'static str,
    uri: &'static str,
    /// A computable name (FHIR `CodeSystem.name`).
    name: &'static str,
    publisher: &'static str,
    copyright: &'static str,
}

const BUILTINS: [Builtin; 3] = [
    Builtin {
        id: "icd-10",
        uri: ICD10,
        name: "ICD10",
        publisher: "World Health Organization (WHO)",
        copyright: "ICD-10 is copyright of the World Health Organization",
    },
    Builtin {
        id: "icpc-2",
        uri: ICPC2,
        name: "ICPC2",
        publisher: "Wonca International Classification Committee (WICC)",
        copyright: "ICPC-2 is copyright of the World Organization of Family Doctors (Wonca)",
    },
    Builtin {
        id: "icd-10-cm",
        uri: ICD10CM,
        name: "ICD10CM",
        publisher: "CDC National Center for Health Statistics (NCHS)",
        copyright: "ICD-10-CM: public-domain content of CDC/NCHS, adapted from ICD-10 \
                    with WHO's authorization",
    },
];

/// Whether `id` is one of the CodeSystem ids reserved for the built-in code systems.
pub(crate) fn is_builtin_id(id: &str) -> bool {
    BUILTINS.iter().any(|b| b.id == id)
}

fn builtin_by_uri(uri: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.uri == uri)
}

/// Why a built-in code system refuses an interaction other than read and the operations.
pub(crate) fn read_only_message(id: &str) -> String {
    format!(
        "CodeSystem/{id} is served from the loaded code tables and is read-only; \
         only read and the terminology operations are supported on it"
    )
}

/// A terminology operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Lookup,
    ValidateCode,
    Subsumes,
    Expand,
    Translate,
}

/// The operations served, by resource type, as the CapabilityStatement lists them.
pub(crate) const OPERATIONS: &[(&str, &str, Operation)] = &[
    ("CodeSystem", "lookup", Operation::Lookup),
    ("CodeSystem", "validate-code", Operation::ValidateCode),
    ("CodeSystem", "subsumes", Operation::Subsumes),
    ("ValueSet", "expand", Operation::Expand),
    ("ValueSet", "validate-code", Operation::ValidateCode),
    ("ConceptMap", "translate", Operation::Translate),
];

/// The canonical OperationDefinition of an operation of the core specification.
pub(crate) fn definition(rtype: &str, name: &str) -> String {
    format!("http://hl7.org/fhir/OperationDefinition/{rtype}-{name}")
}

/// Whether a path segment names an operation (`$lookup`, or `%24lookup` as some clients
/// encode it).
pub(crate) fn is_operation(segment: &str) -> bool {
    operation_name(segment).is_some()
}

fn operation_name(segment: &str) -> Option<&str> {
    segment
        .strip_prefix('$')
        .or_else(|| segment.strip_prefix("%24"))
}

/// The operation a path segment names on `rtype`; 404 if the server has no such operation.
pub(crate) fn parse_operation(rtype: &str, segment: &str) -> Result<Operation, ApiError> {
    let name = operation_name(segment).unwrap_or(segment);
    OPERATIONS
        .iter()
        .find(|(t, n, _)| *t == rtype && *n == name)
        .map(|(_, _, op)| *op)
        .ok_or_else(|| {
            let served: Vec<String> = OPERATIONS
                .iter()
                .map(|(t, n, _)| format!("{t}/${n}"))
                .collect();
            ApiError::NotFound(format!(
                "operation ${name} is not supported on {rtype}; this server serves {}",
                served.join(", ")
            ))
        })
}

/// Runs `op` on `rtype` (at the instance `instance`, if given) with the inputs of the query
/// string and of a POSTed Parameters body; returns the resource to answer with.
pub(crate) fn run(
    terminology: &Terminology,
    limits: &Limits,
    rtype: &str,
    instance: Option<&str>,
    op: Operation,
    query: &[(String, String)],
    body: Option<&Resource>,
) -> Result<Value, ApiError> {
    let inputs = Inputs::collect(query, body)?;
    // Only the built-in code systems have instances the operations can run on.
    let instance_system = match (rtype, instance) {
        (_, None) => None,
        ("CodeSystem", Some(id)) => {
            let builtin = BUILTINS.iter().find(|b| b.id == id).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "operations run on the built-in code systems only (CodeSystem/icd-10, \
                     CodeSystem/icpc-2, CodeSystem/icd-10-cm), not on CodeSystem/{id}"
                ))
            })?;
            Some(loaded(terminology, builtin.uri)?.uri)
        }
        (_, Some(id)) => {
            return Err(ApiError::NotFound(format!(
                "operations on {rtype}/{id} are not supported; call {rtype}/$… with the \
                 value set or code system as a parameter"
            )));
        }
    };
    let ops = Ops {
        t: terminology,
        inputs: &inputs,
        instance_system,
    };
    match (rtype, op) {
        ("CodeSystem", Operation::Lookup) => ops.lookup(),
        ("CodeSystem", Operation::ValidateCode) => ops.validate_code_system(),
        ("CodeSystem", Operation::Subsumes) => ops.subsumes(),
        ("ValueSet", Operation::ValidateCode) => ops.validate_value_set(),
        ("ValueSet", Operation::Expand) => ops.expand(limits),
        ("ConceptMap", Operation::Translate) => ops.translate(),
        _ => Err(ApiError::NotFound(format!(
            "this operation is not supported on {rtype}"
        ))),
    }
}

/// The loaded system `uri`, or 404 saying why it is not there.
fn loaded(t: &Terminology, uri: &str) -> Result<SystemInfo, ApiError> {
    if let Some(info) = t.systems().into_iter().find(|s| s.uri == uri) {
        return Ok(info);
    }
    Err(ApiError::NotFound(match builtin_by_uri(uri) {
        Some(_) => format!("code system {uri} is not loaded on this server (no table for it)"),
        None => {
            let known: Vec<&str> = t.systems().iter().map(|s| s.uri).collect();
            format!(
                "code system {uri} is not known to this server; loaded: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        }
    }))
}

// ----- inputs -----

/// One input of an operation.
#[derive(Debug, Clone)]
enum Input {
    /// A primitive, from the query string or a `value[x]` of a primitive type.
    Text(String),
    /// A `valueCoding`.
    Coding(Map<String, Value>),
    /// A `valueCodeableConcept`.
    Concept(Map<String, Value>),
    /// A resource or parts: no operation here takes one.
    Other,
}

/// A Coding given as an input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CodingIn {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

/// The inputs of one call: the query string's, then the Parameters body's.
struct Inputs(Vec<(String, Input)>);

impl Inputs {
    fn collect(query: &[(String, String)], body: Option<&Resource>) -> Result<Inputs, ApiError> {
        let mut items: Vec<(String, Input)> = query
            .iter()
            .map(|(k, v)| (k.clone(), Input::Text(v.clone())))
            .collect();
        let Some(body) = body else {
            return Ok(Inputs(items));
        };
        let parameters: &[Value] = match body.object().get("parameter") {
            None => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(ApiError::bad(
                    "Parameters.parameter",
                    "parameter must be an array",
                ));
            }
        };
        for (i, p) in parameters.iter().enumerate() {
            let at = format!("Parameters.parameter[{i}]");
            let Some(p) = p.as_object() else {
                return Err(ApiError::bad(at, "a parameter must be an object"));
            };
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                return Err(ApiError::bad(
                    format!("{at}.name"),
                    "a parameter needs a name",
                ));
            };
            let value = p.iter().find(|(k, _)| k.starts_with("value"));
            let input = match value {
                Some((k, Value::Object(o))) if k == "valueCoding" => Input::Coding(o.clone()),
                Some((k, Value::Object(o))) if k == "valueCodeableConcept" => {
                    Input::Concept(o.clone())
                }
                Some((_, Value::String(s))) => Input::Text(s.clone()),
                Some((_, Value::Bool(b))) => Input::Text(b.to_string()),
                Some((_, Value::Number(n))) => Input::Text(n.to_string()),
                Some((k, _)) => {
                    return Err(ApiError::bad(
                        format!("{at}.{k}"),
                        format!("{k} of type {} is not supported here", &k["value".len()..]),
                    ));
                }
                None => Input::Other,
            };
            items.push((name.to_owned(), input));
        }
        Ok(Inputs(items))
    }

    fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Input> + use<'a> {
        let name = name.to_owned();
        self.0
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn has(&self, name: &str) -> bool {
        self.all(name).next().is_some()
    }

    /// The one input called `name`, if given; a repeated input is a 400.
    fn one(&self, name: &str) -> Result<Option<&Input>, ApiError> {
        let mut all = self.all(name);
        let first = all.next();
        if all.next().is_some() {
            return Err(ApiError::bad(
                name,
                format!("{name} is given more than once"),
            ));
        }
        Ok(first)
    }

    fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.one(name)? {
            None => Ok(None),
            Some(Input::Text(t)) if t.trim().is_empty() => {
                Err(ApiError::bad(name, format!("{name} is empty")))
            }
            Some(Input::Text(t)) => Ok(Some(t.trim())),
            Some(_) => Err(ApiError::bad(
                name,
                format!("{name} must be a primitive value"),
            )),
        }
    }

    fn texts(&self, name: &str) -> Vec<&str> {
        self.all(name)
            .filter_map(|i| match i {
                Input::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad(
                name,
                format!("{name} must be true or false, not {other:?}"),
            )),
        }
    }

    fn whole_number(&self, name: &str) -> Result<Option<usize>, ApiError> {
        self.text(name)?
            .map(|t| {
                t.parse::<usize>().map_err(|_| {
                    ApiError::bad(
                        name,
                        format!("{name} must be a whole number ≥ 0, not {t:?}"),
                    )
                })
            })
            .transpose()
    }

    /// A Coding input: a `valueCoding`, or `system|code` in a query string.
    fn coding(&self, name: &str) -> Result<Option<CodingIn>, ApiError> {
        match self.one(name)? {
            None => Ok(None),
            Some(Input::Coding(o)) => coding_in(o, name).map(Some),
            Some(Input::Text(t)) => match t.split_once('|') {
                Some((system, code)) if !code.is_empty() => Ok(Some(CodingIn {
                    system: (!system.is_empty()).then(|| system.to_owned()),
                    code: Some(code.to_owned()),
                    display: None,
                })),
                _ => Err(ApiError::bad(
                    name,
                    format!("{name} must be a Coding, or system|code in a query string"),
                )),
            },
            Some(_) => Err(ApiError::bad(name, format!("{name} must be a Coding"))),
        }
    }

    /// A CodeableConcept input's codings.
    fn concept(&self, name: &str) -> Result<Option<Vec<CodingIn>>, ApiError> {
        match self.one(name)? {
            None => Ok(None),
            Some(Input::Concept(o)) => {
                let codings = match o.get("coding") {
                    Some(Value::Array(a)) => a,
                    _ => {
                        return Err(ApiError::bad(
                            format!("{name}.coding"),
                            format!("{name} must hold at least one coding"),
                        ));
                    }
                };
                codings
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let at = format!("{name}.coding[{i}]");
                        c.as_object()
                            .ok_or_else(|| ApiError::bad(&at, "a coding must be an object"))
                            .and_then(|o| coding_in(o, &at))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(_) => Err(ApiError::bad(
                name,
                format!("{name} must be a CodeableConcept (POST a Parameters body)"),
            )),
        }
    }
}

fn coding_in(o: &Map<String, Value>, at: &str) -> Result<CodingIn, ApiError> {
    let field = |k: &str| -> Result<Option<String>, ApiError> {
        match o.get(k) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(ApiError::bad(
                format!("{at}.{k}"),
                format!("{k} must be a non-empty string"),
            )),
        }
    };
    Ok(CodingIn {
        system: field("system")?,
        code: field("code")?,
        display: field("display")?,
    })
}

// ----- the operations -----

struct Ops<'a> {
    t: &'a Terminology,
    inputs: &'a Inputs,
    /// The system of the CodeSystem instance the operation was called on.
    instance_system: Option<&'static str>,
}

/// One code to work on: its system (resolved and loaded) and code.
struct Subject {
    info: SystemInfo,
    code: String,
}

impl Ops<'_> {
    /// Resolves the system an operation names with `system_param` (or the instance), which
    /// must agree with a Coding's own system.
    fn system(
        &self,
        system_param: Option<(&str, &str)>,
        from_coding: Option<(&str, &str)>,
    ) -> Result<SystemInfo, ApiError> {
        let mut chosen: Option<(&str, &str)> = self.instance_system.map(|s| (s, "the URL"));
        for candidate in [system_param, from_coding].into_iter().flatten() {
            match chosen {
                Some((uri, from)) if uri != candidate.0 => {
                    return Err(ApiError::bad(
                        candidate.1,
                        format!(
                            "{} names system {}, but {from} names {uri}",
                            candidate.1, candidate.0
                        ),
                    ));
                }
                Some(_) => {}
                None => chosen = Some(candidate),
            }
        }
        let (uri, _) = chosen.ok_or_else(|| {
            ApiError::bad(
                system_param.map_or("system", |p| p.1),
                "the code system is missing: give system (or a coding with a system)",
            )
        })?;
        loaded(self.t, uri)
    }

    /// The subject of `$lookup` and `$subsumes`: `code` + `system`, or `coding`.
    fn subject(
        &self,
        code_param: &str,
        coding_param: &str,
        system_param: &str,
    ) -> Result<Subject, ApiError> {
        let code = self.inputs.text(code_param)?;
        let coding = self.inputs.coding(coding_param)?;
        let system = self.inputs.text(system_param)?;
        let (code, coding_system) = match (code, coding) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad(
                    code_param,
                    format!("give either {code_param} or {coding_param}, not both"),
                ));
            }
            (Some(code), None) => (code.to_owned(), None),
            (None, Some(c)) => {
                let code = c.code.ok_or_else(|| {
                    ApiError::bad(
                        format!("{coding_param}.code"),
                        format!("{coding_param} has no code"),
                    )
                })?;
                (code, c.system)
            }
            (None, None) => {
                return Err(ApiError::bad(
                    code_param,
                    format!("{code_param} (or {coding_param}) is required"),
                ));
            }
        };
        let coding_at = format!("{coding_param}.system");
        let info = self.system(
            system.map(|s| (s, system_param)),
            coding_system.as_deref().map(|s| (s, coding_at.as_str())),
        )?;
        Ok(Subject { info, code })
    }

    fn lookup(&self) -> Result<Value, ApiError> {
        let s = self.subject("code", "coding", "system")?;
        let Some(c) = self.t.lookup(s.info.uri, &s.code) else {
            return Err(ApiError::NotFound(unknown_code(self.t, &s.info, &s.code)));
        };
        let wanted = self.inputs.texts("property");
        let want = |p: &str| wanted.is_empty() || wanted.contains(&p);
        let mut out = vec![
            json!({ "name": "name", "valueString": s.info.name }),
            json!({ "name": "version", "valueString": s.info.version }),
            json!({ "name": "display", "valueString": c.display }),
        ];
        if let Some(short) = c
            .short_display
            .filter(|short| *short != c.display && want("designation"))
        {
            out.push(json!({ "name": "designation", "part": [
                { "name": "use", "valueCoding": {
                    "system": "http://snomed.info/sct",
                    "code": "900000000000013009",
                    "display": "Synonym"
                } },
                { "name": "value", "valueString": short }
            ] }));
        }
        let property = |code: &str, value: Value| {
            let mut part = vec![json!({ "name": "code", "valueCode": code })];
            if let Value::Object(v) = value {
                let mut value_part = Map::new();
                value_part.insert("name".into(), json!("value"));
                value_part.extend(v);
                part.push(Value::Object(value_part));
            }
            json!({ "name": "property", "part": part })
        };
        if want("parent")
            && let Some(parent) = c.parent
        {
            out.push(property("parent", json!({ "valueCode": parent })));
        }
        if want("child") {
            for child in &c.children {
                out.push(property("child", json!({ "valueCode": child })));
            }
        }
        if want("kind") {
            out.push(property("kind", json!({ "valueCode": c.kind.as_str() })));
        }
        if want("selectable") {
            out.push(property(
                "selectable",
                json!({ "valueBoolean": c.selectable }),
            ));
        }
        if want("billable")
            && let Some(billable) = c.billable
        {
            out.push(property("billable", json!({ "valueBoolean": billable })));
        }
        Ok(parameters(out))
    }

    fn subsumes(&self) -> Result<Value, ApiError> {
        let a = self.subject("codeA", "codingA", "system")?;
        let b = self.subject("codeB", "codingB", "system")?;
        if a.info.uri != b.info.uri {
            return Err(ApiError::bad(
                "codingB",
                format!(
                    "codeA is a code of {} and codeB of {}; $subsumes compares codes of one system",
                    a.info.uri, b.info.uri
                ),
            ));
        }
        for (s, param) in [(&a, "codeA"), (&b, "codeB")] {
            if self.t.lookup(s.info.uri, &s.code).is_none() {
                return Err(ApiError::bad(param, unknown_code(self.t, &s.info, &s.code)));
            }
        }
        let outcome = self
            .t
            .subsumes(a.info.uri, &a.code, &b.code)
            .ok_or_else(|| ApiError::Internal("subsumes of two known codes gave none".into()))?;
        Ok(parameters(vec![
            json!({ "name": "outcome", "valueCode": outcome.as_str() }),
        ]))
    }

    /// `CodeSystem/$validate-code`: the code system is the instance, `url` or `system`, or
    /// the system of the coding.
    fn validate_code_system(&self) -> Result<Value, ApiError> {
        let named = match (self.inputs.text("url")?, self.inputs.text("system")?) {
            (Some(url), Some(system)) if url != system => {
                return Err(ApiError::bad(
                    "system",
                    format!("url names {url} and system {system}"),
                ));
            }
            (Some(url), _) => Some((url, "url")),
            (None, Some(system)) => Some((system, "system")),
            (None, None) => None,
        };
        let codings = self.codings_to_check()?;
        let first_system = codings
            .iter()
            .find_map(|c| c.system.as_deref().map(|s| (s, "coding.system")));
        let info = match (named, self.instance_system) {
            (Some(_), _) | (None, Some(_)) => self.system(named, None)?,
            (None, None) => self.system(None, first_system)?,
        };
        let set = CodeSet {
            info,
            isa: None,
            label: "code system",
        };
        self.validate(&set, codings)
    }

    /// `ValueSet/$validate-code` over an implicit value set named by `url`.
    fn validate_value_set(&self) -> Result<Value, ApiError> {
        let set = self.value_set()?;
        let codings = self.codings_to_check()?;
        self.validate(&set, codings)
    }

    /// The codings `$validate-code` checks: `code` (+ `system`, `display`), `coding` or
    /// `codeableConcept`, exactly one of them.
    fn codings_to_check(&self) -> Result<Vec<CodingIn>, ApiError> {
        let code = self.inputs.text("code")?;
        let coding = self.inputs.coding("coding")?;
        let concept = self.inputs.concept("codeableConcept")?;
        let given = usize::from(code.is_some())
            + usize::from(coding.is_some())
            + usize::from(concept.is_some());
        if given > 1 {
            return Err(ApiError::bad(
                "code",
                "give one of code, coding and codeableConcept",
            ));
        }
        if let Some(code) = code {
            return Ok(vec![CodingIn {
                system: None,
                code: Some(code.to_owned()),
                display: self.inputs.text("display")?.map(str::to_owned),
            }]);
        }
        if let Some(c) = coding {
            return Ok(vec![c]);
        }
        match concept {
            Some(codings) if !codings.is_empty() => Ok(codings),
            Some(_) => Err(ApiError::bad(
                "codeableConcept",
                "codeableConcept has no coding",
            )),
            None => Err(ApiError::bad(
                "code",
                "code (or coding, or codeableConcept) is required",
            )),
        }
    }

    fn validate(&self, set: &CodeSet, codings: Vec<CodingIn>) -> Result<Value, ApiError> {
        let abstract_ok = self.inputs.boolean("abstract")?.unwrap_or(false);
        // A bare `code` may say its system with `system` (it is the set's system otherwise).
        let system_param = self.inputs.text("system")?;
        let checks: Vec<Check> = codings
            .iter()
            .map(|c| {
                let system = c.system.as_deref().or(system_param);
                check_coding(self.t, set, system, c, abstract_ok)
            })
            .collect();
        let valid = checks.iter().any(|c| c.valid);
        // The display of the coding that passed, else of the first code that exists.
        let display = checks
            .iter()
            .filter(|c| c.valid == valid)
            .chain(&checks)
            .find_map(|c| c.display.clone());
        let messages: Vec<&str> = checks.iter().filter_map(|c| c.message.as_deref()).collect();
        let mut out = vec![json!({ "name": "result", "valueBoolean": valid })];
        if !messages.is_empty() {
            out.push(json!({ "name": "message", "valueString": messages.join("; ") }));
        }
        if let Some(d) = display {
            out.push(json!({ "name": "display", "valueString": d }));
        }
        Ok(parameters(out))
    }

    /// The implicit value set named by `url`.
    fn value_set(&self) -> Result<CodeSet, ApiError> {
        if self.inputs.has("valueSet") {
            return Err(ApiError::bad(
                "valueSet",
                "a value set given in the request is not supported; name an implicit value set with url",
            ));
        }
        let url = self.inputs.text("url")?.ok_or_else(|| {
            ApiError::bad(
                "url",
                "url is required: {system}, {system}?fhir_vs or {system}?fhir_vs=isa/{code}",
            )
        })?;
        // A canonical may carry `|version`; each system has one loaded edition.
        let canonical = url.split('|').next().unwrap_or(url);
        let (base, query) = match canonical.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (canonical, None),
        };
        if builtin_by_uri(base).is_none() {
            return Err(ApiError::NotFound(format!(
                "value set {url} is not known; this server serves the implicit value sets \
                 of its loaded code systems ({{system}}, {{system}}?fhir_vs, \
                 {{system}}?fhir_vs=isa/{{code}})"
            )));
        }
        let info = loaded(self.t, base)?;
        let isa = match query {
            None | Some("fhir_vs") => None,
            Some(q) => {
                let code = q.strip_prefix("fhir_vs=isa/").ok_or_else(|| {
                    ApiError::bad(
                        "url",
                        format!(
                            "{url}: only {base}?fhir_vs and {base}?fhir_vs=isa/{{code}} are supported"
                        ),
                    )
                })?;
                if self.t.lookup(info.uri, code).is_none() {
                    return Err(ApiError::bad("url", unknown_code(self.t, &info, code)));
                }
                Some(code.to_owned())
            }
        };
        Ok(CodeSet {
            info,
            isa,
            label: "value set",
        })
    }

    fn expand(&self, limits: &Limits) -> Result<Value, ApiError> {
        let set = self.value_set()?;
        let filter = self.inputs.text("filter")?.unwrap_or("");
        let count = match (
            self.inputs.whole_number("count")?,
            self.inputs.whole_number("_count")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad("_count", "give count or _count, not both"));
            }
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => limits.default_count,
        }
        .min(limits.max_count);
        let offset = self.inputs.whole_number("offset")?.unwrap_or(0);
        let uri = set.info.uri;
        let (total, page) = match &set.isa {
            None => self.t.search(uri, filter, offset, count),
            Some(base) => {
                let needle = filter.to_lowercase();
                let matches: Vec<ConceptRef<'_>> = std::iter::once(base.as_str())
                    .chain(self.t.descendants(uri, base))
                    .filter_map(|code| self.t.lookup(uri, code))
                    .filter(|c| {
                        std::iter::once(c.code)
                            .chain(std::iter::once(c.display))
                            .chain(c.short_display)
                            .any(|text| text.to_lowercase().contains(&needle))
                    })
                    .collect();
                let total = matches.len();
                (
                    total,
                    matches.into_iter().skip(offset).take(count).collect(),
                )
            }
        };
        let contains: Vec<Value> = page
            .iter()
            .map(|c| {
                let mut entry = json!({ "system": uri, "code": c.code, "display": c.display });
                if !c.selectable {
                    entry["abstract"] = json!(true);
                }
                entry
            })
            .collect();
        let mut params = Vec::new();
        if !filter.is_empty() {
            params.push(json!({ "name": "filter", "valueString": filter }));
        }
        params.push(json!({ "name": "count", "valueInteger": count }));
        params.push(json!({ "name": "offset", "valueInteger": offset }));
        params.push(json!({
            "name": "used-codesystem",
            "valueUri": format!("{uri}|{}", set.info.version)
        }));
        let mut expansion = json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "total": total,
            "offset": offset,
            "parameter": params,
        });
        if !contains.is_empty() {
            expansion["contains"] = Value::Array(contains);
        }
        let url = match &set.isa {
            None => format!("{uri}?fhir_vs"),
            Some(code) => format!("{uri}?fhir_vs=isa/{code}"),
        };
        let title = match &set.isa {
            None => format!("All codes of {}", set.info.name),
            Some(code) => format!("{code} and the codes below it in {}", set.info.name),
        };
        Ok(json!({
            "resourceType": "ValueSet",
            "url": url,
            "version": set.info.version,
            "title": title,
            "status": "active",
            "expansion": expansion,
        }))
    }

    fn translate(&self) -> Result<Value, ApiError> {
        if let Some(url) = self.inputs.text("url")? {
            return Err(ApiError::NotFound(format!(
                "ConceptMap {url} is not known; omit url to use the built-in ICPC-2 ⇄ ICD-10 map"
            )));
        }
        let concept = self.inputs.concept("codeableConcept")?;
        let sources: Vec<Subject> = match concept {
            Some(codings) => {
                let mut out = Vec::new();
                for c in codings {
                    let (Some(system), Some(code)) = (c.system, c.code) else {
                        continue;
                    };
                    // Codings of systems without a map are not translated.
                    if let Ok(info) = loaded(self.t, &system) {
                        out.push(Subject { info, code });
                    }
                }
                if out.is_empty() {
                    return Err(ApiError::bad(
                        "codeableConcept",
                        "no coding of codeableConcept has a loaded system",
                    ));
                }
                out
            }
            None => vec![self.subject("code", "coding", "system")?],
        };
        if !self.t.has_icpc2_icd10_map() {
            return Err(ApiError::NotFound(
                "the ICPC-2 → ICD-10 map is not loaded on this server".into(),
            ));
        }
        let wanted_target = match (
            self.inputs.text("targetsystem")?,
            self.inputs.text("target")?,
        ) {
            (Some(system), _) => Some(system),
            // `target` is a value set; the implicit value set of a system names the system.
            (None, Some(vs)) => Some(vs.split(['?', '|']).next().unwrap_or(vs)),
            (None, None) => None,
        };
        let mut matches = Vec::new();
        let mut messages = Vec::new();
        for s in &sources {
            let target_system = match s.info.uri {
                ICPC2 => ICD10,
                ICD10 => ICPC2,
                other => {
                    messages.push(format!(
                        "there is no map from {other}; this server maps ICPC-2 → ICD-10 and back"
                    ));
                    continue;
                }
            };
            if let Some(wanted) = wanted_target.filter(|w| *w != target_system) {
                messages.push(format!(
                    "there is no map from {} to {wanted}; codes of {} map to {target_system}",
                    s.info.uri, s.info.uri
                ));
                continue;
            }
            let targets: Vec<&str> = if s.info.uri == ICPC2 {
                if self.t.lookup(ICPC2, &s.code).is_none() {
                    messages.push(unknown_code(self.t, &s.info, &s.code));
                    continue;
                }
                self.t
                    .translate_icpc2_to_icd10(&s.code)
                    .iter()
                    .map(String::as_str)
                    .collect()
            } else {
                self.t.translate_icd10_to_icpc2(&s.code)
            };
            if targets.is_empty() {
                messages.push(format!(
                    "the map has no target for {} of {}",
                    s.code, s.info.uri
                ));
            }
            for target in targets {
                let mut concept = json!({ "system": target_system, "code": target });
                if let Some(c) = self.t.lookup(target_system, target) {
                    concept["display"] = json!(c.display);
                }
                matches.push(json!({ "name": "match", "part": [
                    { "name": "equivalence", "valueCode": "relatedto" },
                    { "name": "concept", "valueCoding": concept },
                ] }));
            }
        }
        let mut out = vec![json!({ "name": "result", "valueBoolean": !matches.is_empty() })];
        if !messages.is_empty() {
            out.push(json!({ "name": "message", "valueString": messages.join("; ") }));
        }
        out.extend(matches);
        Ok(parameters(out))
    }
}

/// The codes a `$validate-code` accepts: every code of a system, or those below a code.
struct CodeSet {
    info: SystemInfo,
    isa: Option<String>,
    /// "code system" or "value set", for messages.
    label: &'static str,
}

/// The verdict on one coding.
struct Check {
    valid: bool,
    message: Option<String>,
    display: Option<String>,
}

fn check_coding(
    t: &Terminology,
    set: &CodeSet,
    system: Option<&str>,
    coding: &CodingIn,
    abstract_ok: bool,
) -> Check {
    let invalid = |message: String, display: Option<&str>| Check {
        valid: false,
        message: Some(message),
        display: display.map(str::to_owned),
    };
    let uri = set.info.uri;
    let Some(code) = coding.code.as_deref() else {
        return invalid("a coding has no code".into(), None);
    };
    if let Some(system) = system.filter(|s| *s != uri) {
        return invalid(
            format!("{code} of {system} is not in the {} ({uri})", set.label),
            None,
        );
    }
    let concept_display = t.lookup(uri, code).map(|c| c.display);
    let (valid, mut message) = match t.validate(uri, code, coding.display.as_deref()) {
        Validation::Valid => (true, None),
        Validation::ValidWrongDisplay { expected } => (
            true,
            Some(format!(
                "the display {:?} of {code} does not match the code's display {expected:?}",
                coding.display.as_deref().unwrap_or_default()
            )),
        ),
        Validation::NotSelectable { .. } if abstract_ok => (true, None),
        Validation::NotSelectable { kind } => (
            false,
            Some(format!(
                "{code} is {} of {uri}, a grouping and not a code for a Coding \
                 (abstract=true accepts groupings)",
                kind_article(kind),
            )),
        ),
        Validation::UnknownCode => (false, Some(unknown_code(t, &set.info, code))),
        Validation::SystemNotLoaded => (false, Some(format!("{uri} is not loaded"))),
    };
    if valid
        && let Some(base) = &set.isa
        && base != code
        && !t.ancestors(uri, code).contains(&base.as_str())
    {
        return invalid(
            format!("{code} is not in the value set: it is not {base} or below it"),
            concept_display,
        );
    }
    if !valid && message.is_none() {
        message = Some(format!("{code} is not valid"));
    }
    Check {
        valid,
        message,
        display: concept_display.map(str::to_owned),
    }
}

fn kind_article(kind: Kind) -> &'static str {
    match kind {
        Kind::Chapter => "a chapter",
        Kind::Block => "a block",
        Kind::Category => "a category",
        Kind::Process => "a process code",
        Kind::Rubric => "a rubric",
    }
}

/// Says that `code` is not in the system, with the published form when it was written
/// without its dot (`J450` → `J45.0`).
fn unknown_code(t: &Terminology, info: &SystemInfo, code: &str) -> String {
    let hint = (info.uri == ICD10 || info.uri == ICD10CM)
        .then(|| normalise_icd10(code))
        .flatten()
        .filter(|n| n != code && t.lookup(info.uri, n).is_some())
        .map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default();
    format!(
        "{code} is not a code of {}, version {}{hint}",
        info.uri, info.version
    )
}

fn parameters(parameter: Vec<Value>) -> Value {
    json!({ "resourceType": "Parameters", "parameter": parameter })
}

// ----- the CodeSystem resources -----

/// The summary of a loaded built-in code system, without its concepts.
fn summary(b: &Builtin, info: &SystemInfo) -> Value {
    let mut properties = vec![
        json!({ "code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent",
                "description": "The code of the parent concept", "type": "code" }),
        json!({ "code": "child", "uri": "http://hl7.org/fhir/concept-properties#child",
                "description": "The code of a child concept", "type": "code" }),
        json!({ "code": "kind", "description": "chapter, block, category, process or rubric",
                "type": "code" }),
        json!({ "code": "selectable",
                "description": "Whether the code may stand in a Coding (groupings may not)",
                "type": "boolean" }),
    ];
    if b.uri == ICD10CM {
        properties.push(json!({ "code": "billable",
            "description": "Valid for claims and reporting", "type": "boolean" }));
    }
    json!({
        "resourceType": "CodeSystem",
        "id": b.id,
        "url": b.uri,
        "version": info.version,
        "name": b.name,
        "title": info.name,
        "status": "active",
        "experimental": false,
        "publisher": b.publisher,
        "description": format!(
            "{} as loaded by this server from its code table; the concepts are available \
             through $lookup, $validate-code, $subsumes and ValueSet/$expand",
            info.name
        ),
        "copyright": b.copyright,
        "caseSensitive": true,
        "valueSet": format!("{}?fhir_vs", b.uri),
        "hierarchyMeaning": "is-a",
        "content": "not-present",
        "count": info.concept_count,
        "property": properties,
    })
}

/// `GET CodeSystem/{id}` of a built-in id: the summary, or 404 if its table is not loaded.
pub(crate) fn code_system(t: &Terminology, id: &str) -> Result<Value, ApiError> {
    let b = BUILTINS
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("CodeSystem/{id} is not a built-in")))?;
    let info = loaded(t, b.uri)?;
    Ok(summary(b, &info))
}

/// The built-in part of a type-level CodeSystem search.
pub(crate) struct BuiltinSearch {
    /// Searchset entries of the matching built-ins (empty after the first page).
    pub entries: Vec<Value>,
    /// Whether the store can answer the query too; if not, answer [`BuiltinSearch::bundle`].
    pub ask_store: bool,
    /// Parameters neither side understood, or that only the built-ins were searched by.
    notes: Vec<Issue>,
}

/// Search parameters only the built-in code systems can be searched by, today.
const BUILTIN_PARAMS: &[&str] = &["url", "name", "title", "status", "version"];
/// Parameters that shape the result rather than select resources.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_total",
    "_format",
    "_cursor",
    "_sort",
    "_summary",
    "_elements",
    "_pretty",
];

/// The built-in code systems a type-level CodeSystem search matches. `_id` and the
/// parameters of [`BUILTIN_PARAMS`] select; any other parameter the store filters by
/// (`_lastUpdated`) excludes them; parameters nobody knows are ignored, as the store's
/// search ignores them (and reported, when the store is not asked).
pub(crate) fn search_builtin(
    t: &Terminology,
    base: &str,
    pairs: &[(String, String)],
) -> Result<BuiltinSearch, ApiError> {
    let store_filters = |name: &str| {
        matches!(name, "_id" | "_lastUpdated")
            || mappings::search::params_of("CodeSystem").any(|p| p.name == name)
    };
    let mut candidates: Vec<(&Builtin, SystemInfo)> = BUILTINS
        .iter()
        .filter_map(|b| Some((b, t.systems().into_iter().find(|s| s.uri == b.uri)?)))
        .collect();
    // The parameters only the built-ins could be searched by, when there are any.
    let mut builtin_only: Vec<&str> = Vec::new();
    let mut notes = Vec::new();
    let mut first_page = true;
    let mut none_wanted = false;
    for (key, value) in pairs {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        if RESULT_PARAMS.contains(&name) {
            first_page &= name != "_cursor";
            none_wanted |= name == "_count" && value.trim() == "0";
            continue;
        }
        if name != "_id" && !BUILTIN_PARAMS.contains(&name) {
            if store_filters(name) {
                // A filter the built-ins cannot be checked against (`_lastUpdated`: they
                // have no stored version) cannot claim them.
                candidates.clear();
            } else {
                notes.push(warning(
                    key,
                    format!("search parameter {key} is not supported on CodeSystem; ignored"),
                ));
            }
            continue;
        }
        if !store_filters(name) && !builtin_only.contains(&name) {
            builtin_only.push(name);
        }
        let values: Vec<&str> = value.split(',').map(str::trim).collect();
        let is_string = matches!(name, "name" | "title");
        match modifier {
            None => {}
            Some("exact" | "contains") if is_string => {}
            Some(m) => {
                return Err(ApiError::bad(
                    key.clone(),
                    format!("modifier :{m} is not supported on {name}"),
                ));
            }
        }
        candidates.retain(|(b, info)| {
            let field = match name {
                "_id" => b.id,
                "url" => b.uri,
                "name" => b.name,
                "title" => info.name,
                "status" => "active",
                _ => info.version,
            };
            values.iter().any(|v| match (is_string, modifier) {
                (false, _) | (true, Some("exact")) => field == *v,
                (true, Some(_)) => field.to_lowercase().contains(&v.to_lowercase()),
                (true, None) => field.to_lowercase().starts_with(&v.to_lowercase()),
            })
        });
    }
    let ask_store = builtin_only.is_empty();
    if !ask_store {
        notes.push(warning(
            "",
            format!(
                "stored CodeSystems cannot be searched by {} yet; only the built-in code \
                 systems were searched",
                builtin_only.join(", ")
            ),
        ));
    }
    let entries = if first_page && !none_wanted {
        candidates
            .iter()
            .map(|(b, info)| {
                json!({
                    "fullUrl": format!("{base}/CodeSystem/{}", b.id),
                    "resource": summary(b, info),
                    "search": { "mode": "match" }
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(BuiltinSearch {
        entries,
        ask_store,
        notes,
    })
}

fn warning(expression: &str, text: String) -> Issue {
    Issue {
        severity: Severity::Warning,
        code: IssueCode::NotSupported,
        expression: expression.to_owned(),
        diagnostics: text,
    }
}

impl BuiltinSearch {
    /// The searchset Bundle of the built-ins alone (when the store cannot answer).
    pub(crate) fn bundle(self, base: &str, pairs: &[(String, String)]) -> Value {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let total = self.entries.len();
        let mut entries = self.entries;
        if !self.notes.is_empty() {
            let issues = self.notes.iter().map(crate::outcome::issue_value).collect();
            entries.push(json!({ "resource": outcome(issues), "search": { "mode": "outcome" } }));
        }
        let mut bundle = json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": [{ "relation": "self", "url": format!("{base}/CodeSystem?{query}") }],
        });
        if !entries.is_empty() {
            bundle["entry"] = Value::Array(entries);
        }
        bundle
    }

    /// Puts the built-in entries ahead of a store searchset's, counting them in `total`.
    pub(crate) fn merge_into(self, bundle: &mut Value) {
        if self.entries.is_empty() {
            return;
        }
        if let Some(total) = bundle.get("total").and_then(Value::as_u64) {
            bundle["total"] = json!(total + self.entries.len() as u64);
        }
        let mut entries = self.entries;
        if let Some(Value::Array(stored)) = bundle.get_mut("entry") {
            entries.append(stored);
        }
        bundle["entry"] = Value::Array(entries);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use mappings::json::{JsonLimits, parse_resource};

    use super::*;

    fn terminology() -> &'static Terminology {
        static TABLES: OnceLock<Terminology> = OnceLock::new();
        TABLES.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/terminology");
            Terminology::load_dir(&dir).expect("the shared terminology tables load")
        })
    }

    fn get(rtype: &str, instance: Option<&str>, op: &str, query: &[(&str, &str)]) -> Value {
        try_get(rtype, instance, op, query).expect("the operation succeeds")
    }

    fn try_get(
        rtype: &str,
        instance: Option<&str>,
        op: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let op = parse_operation(rtype, op)?;
        run(
            terminology(),
            &Limits::default(),
            rtype,
            instance,
            op,
            &pairs,
            None,
        )
    }

    fn post(rtype: &str, op: &str, body: Value) -> Result<Value, ApiError> {
        let resource = parse_resource(body.to_string().as_bytes(), &JsonLimits::default())
            .expect("a valid Parameters");
        let op = parse_operation(rtype, op)?;
        run(
            terminology(),
            &Limits::default(),
            rtype,
            None,
            op,
            &[],
            Some(&resource),
        )
    }

    /// The first `value[x]` of the parameter `name`.
    fn param<'a>(p: &'a Value, name: &str) -> &'a Value {
        p["parameter"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .and_then(|x| {
                x.as_object()?
                    .iter()
                    .find(|(k, _)| k.starts_with("value"))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&Value::Null)
    }

    fn bad_param(err: ApiError) -> String {
        match err {
            ApiError::Malformed(issues) => issues[0].expression.clone(),
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn validate_code_follows_write_validation() {
        let check = |system: &str, code: &str| {
            let p = get(
                "CodeSystem",
                None,
                "$validate-code",
                &[("url", system), ("code", code)],
            );
            param(&p, "result").as_bool().expect("a result")
        };
        for code in ["E11", "I10", "J45.0"] {
            assert!(check(ICD10, code), "{code}");
        }
        for code in ["K86", "T90", "R96", "-50", "K50"] {
            assert!(check(ICPC2, code), "{code}");
        }
        for code in ["J99.99", "X", "J40-J47", "J450"] {
            assert!(!check(ICD10, code), "{code}");
        }
        let p = get(
            "CodeSystem",
            Some("icd-10"),
            "$validate-code",
            &[("code", "J450")],
        );
        assert!(
            param(&p, "message")
                .as_str()
                .is_some_and(|m| m.contains("J45.0")),
            "{p}"
        );
        let p = get(
            "CodeSystem",
            Some("icd-10"),
            "$validate-code",
            &[("code", "J40-J47"), ("abstract", "true")],
        );
        assert_eq!(param(&p, "result"), &json!(true));
    }

    #[test]
    fn a_wrong_display_is_valid_with_a_message() {
        let p = get(
            "CodeSystem",
            None,
            "$validate-code",
            &[
                ("system", ICD10),
                ("code", "J45.0"),
                ("display", "Broken leg"),
            ],
        );
        assert_eq!(param(&p, "result"), &json!(true));
        assert_eq!(
            param(&p, "display"),
            &json!("Predominantly allergic asthma")
        );
        assert!(param(&p, "message").is_string());
    }

    #[test]
    fn value_set_membership() {
        let isa = format!("{ICD10}?fhir_vs=isa/J45");
        let check = |code: &str| {
            let p = get(
                "ValueSet",
                None,
                "$validate-code",
                &[("url", isa.as_str()), ("code", code)],
            );
            param(&p, "result").as_bool().expect("a result")
        };
        assert!(check("J45.0"));
        assert!(check("J45"));
        assert!(!check("J46"));
        assert!(!check("E11"));
        let all = format!("{ICD10}?fhir_vs");
        let p = get(
            "ValueSet",
            None,
            "$validate-code",
            &[("url", all.as_str()), ("system", ICPC2), ("code", "K86")],
        );
        assert_eq!(param(&p, "result"), &json!(false));
    }

    #[test]
    fn codeable_concept_is_valid_if_one_coding_is() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "url", "valueUri": ICD10},
            {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
                {"system": "http://snomed.info/sct", "code": "195967001"},
                {"system": ICD10, "code": "J45.0"},
            ]}},
        ]});
        let p = post("ValueSet", "$validate-code", body).expect("answers");
        assert_eq!(param(&p, "result"), &json!(true));
    }

    #[test]
    fn lookup_gives_display_parent_children_and_kind() {
        let p = get(
            "CodeSystem",
            None,
            "$lookup",
            &[("system", ICD10), ("code", "J45")],
        );
        assert_eq!(param(&p, "display"), &json!("Asthma"));
        let properties: Vec<(String, String)> = p["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["name"] == "property")
            .map(|x| {
                let value = x["part"][1]
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default();
                (x["part"][0]["valueCode"].to_string(), value)
            })
            .collect();
        assert!(properties.contains(&("\"parent\"".into(), "\"J40-J47\"".into())));
        assert!(properties.contains(&("\"child\"".into(), "\"J45.0\"".into())));
        assert!(properties.contains(&("\"kind\"".into(), "\"category\"".into())));
        assert!(properties.contains(&("\"selectable\"".into(), "true".into())));
        let only = get(
            "CodeSystem",
            Some("icd-10"),
            "$lookup",
            &[("code", "J45"), ("property", "kind")],
        );
        let n = only["parameter"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x["name"] == "property").count());
        assert_eq!(n, 1, "{only}");
        assert!(matches!(
            try_get(
                "CodeSystem",
                None,
                "$lookup",
                &[("system", ICD10), ("code", "J99.99")]
            ),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn inputs_are_checked() {
        let missing = try_get("CodeSystem", None, "$lookup", &[("system", ICD10)]);
        assert_eq!(bad_param(missing.expect_err("400")), "code");
        let no_system = try_get("CodeSystem", None, "$lookup", &[("code", "J45")]);
        assert_eq!(bad_param(no_system.expect_err("400")), "system");
        let mismatch = try_get(
            "CodeSystem",
            Some("icd-10"),
            "$lookup",
            &[("system", ICPC2), ("code", "K86")],
        );
        assert_eq!(bad_param(mismatch.expect_err("400")), "system");
        let count = try_get(
            "ValueSet",
            None,
            "$expand",
            &[("url", ICD10), ("count", "-1")],
        );
        assert_eq!(bad_param(count.expect_err("400")), "count");
        let unknown = try_get(
            "CodeSystem",
            None,
            "$subsumes",
            &[("system", ICD10), ("codeA", "J45"), ("codeB", "nope")],
        );
        assert_eq!(bad_param(unknown.expect_err("400")), "codeB");
        assert!(matches!(
            try_get(
                "CodeSystem",
                None,
                "$lookup",
                &[("system", "http://loinc.org"), ("code", "1-8")]
            ),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            try_get("CodeSystem", None, "$everything", &[]),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn subsumes_both_ways() {
        let outcome = |a: &str, b: &str| {
            let p = get(
                "CodeSystem",
                Some("icd-10"),
                "$subsumes",
                &[("codeA", a), ("codeB", b)],
            );
            param(&p, "outcome").as_str().unwrap_or_default().to_owned()
        };
        assert_eq!(outcome("J45", "J45.0"), "subsumes");
        assert_eq!(outcome("J45.0", "J45"), "subsumed-by");
        assert_eq!(outcome("J45", "J45"), "equivalent");
        assert_eq!(outcome("J45", "E11"), "not-subsumed");
    }

    #[test]
    fn expand_pages_a_filter() {
        let expand = |query: &[(&str, &str)]| get("ValueSet", None, "$expand", query);
        let all = expand(&[("url", ICD10), ("filter", "asthma"), ("count", "1000")]);
        let total = all["expansion"]["total"].as_u64().expect("a total") as usize;
        let codes: Vec<&str> = all["expansion"]["contains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["code"].as_str())
            .collect();
        assert!(codes.contains(&"J45"), "{codes:?}");
        assert_eq!(codes.len(), total);
        let mut paged = Vec::new();
        for offset in (0..total).step_by(2) {
            let page = expand(&[
                ("url", ICD10),
                ("filter", "asthma"),
                ("count", "2"),
                ("offset", &offset.to_string()),
            ]);
            assert_eq!(page["expansion"]["total"].as_u64(), Some(total as u64));
            paged.extend(
                page["expansion"]["contains"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["code"].as_str().map(str::to_owned)),
            );
        }
        assert_eq!(paged, codes);
        let isa = format!("{ICD10}?fhir_vs=isa/J45");
        let below = expand(&[("url", isa.as_str())]);
        assert_eq!(below["expansion"]["contains"][0]["code"], "J45");
        let capped = expand(&[("url", ICD10CM), ("count", "100000")]);
        assert_eq!(
            capped["expansion"]["contains"].as_array().map(Vec::len),
            Some(Limits::default().max_count)
        );
    }

    #[test]
    fn translate_both_ways() {
        let p = get(
            "ConceptMap",
            None,
            "$translate",
            &[("system", ICPC2), ("code", "K86")],
        );
        assert_eq!(param(&p, "result"), &json!(true));
        let m = &p["parameter"][1];
        assert_eq!(m["name"], "match");
        assert_eq!(m["part"][0]["valueCode"], "relatedto");
        assert_eq!(m["part"][1]["valueCoding"]["code"], "I10");
        let back = get(
            "ConceptMap",
            None,
            "$translate",
            &[("system", ICD10), ("code", "I10")],
        );
        assert!(back.to_string().contains("\"K86\""), "{back}");
        let wrong_target = get(
            "ConceptMap",
            None,
            "$translate",
            &[
                ("system", ICPC2),
                ("code", "K86"),
                ("targetsystem", ICD10CM),
            ],
        );
        assert_eq!(param(&wrong_target, "result"), &json!(false));
    }

    #[test]
    fn code_system_search_by_url_and_name() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let t = terminology();
        let by_url = search_builtin(t, "http://x/fhir", &pairs(&[("url", ICPC2)])).expect("ok");
        assert!(!by_url.ask_store);
        assert_eq!(by_url.entries.len(), 1);
        let by_name = search_builtin(t, "http://x/fhir", &pairs(&[("name", "icd10")])).expect("ok");
        assert_eq!(by_name.entries.len(), 2);
        let all = search_builtin(t, "http://x/fhir", &[]).expect("ok");
        assert!(all.ask_store);
        assert_eq!(all.entries.len(), 3);
        let later = search_builtin(t, "http://x/fhir", &pairs(&[("_cursor", "abc")])).expect("ok");
        assert!(later.entries.is_empty());
        let by_id =
            search_builtin(t, "http://x/fhir", &pairs(&[("_id", "icd-10,other")])).expect("ok");
        assert!(by_id.ask_store);
        assert_eq!(by_id.entries.len(), 1);
    }
}
