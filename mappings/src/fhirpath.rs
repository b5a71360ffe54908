//! The FHIRPath subset FHIRPath Patch needs, evaluated to *locations* in a FHIR JSON
//! resource (so an operation can change what a path names), not to values.
//!
//! Supported: navigation `a.b.c` (a leading type name such as `Patient.` selects the root
//! when it is the resource's type), choice elements (`Observation.value` finds
//! `valueQuantity`), indexers `[n]`, `first()`, `last()`, `where(…)` with equalities of a
//! relative path to a literal joined by `and` (`where(system='phone')`,
//! `where(type.coding.code='MR' and use='official')`), `ofType(T)`, `as(T)` and a trailing
//! `as T`. Anything else is refused with [`PathError::Unsupported`], naming what; no
//! general FHIRPath evaluator on serde_json was found that returns locations (the crates
//! that exist evaluate to values, or bring a model of their own).
//!
//! Element types come from [`crate::schema`], so `ofType` and choice elements follow R4.

use serde_json::Value;

use crate::schema;

/// Why a path cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The text is not FHIRPath, or uses what this subset does not support.
    #[error("unsupported FHIRPath in {path:?}: {what}")]
    Unsupported {
        /// The path as given.
        path: String,
        /// What is wrong or unsupported, in words.
        what: String,
    },
}

/// One step from a JSON value to one inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A member of an object.
    Key(String),
    /// An item of an array.
    Index(usize),
}

/// Where an item a path names sits in the resource, and its FHIR type when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The steps from the resource to the item.
    pub steps: Vec<Step>,
    /// The item's FHIR type (`HumanName`, `string`, `PatientContact`), if known.
    pub ty: Option<String>,
    /// The type of the object holding the item, if known.
    pub holder: Option<String>,
}

/// A literal a `where` compares with.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(String),
    Boolean(bool),
}

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// A child element (or the members of a choice group of that name).
    Child(String),
    /// `[n]`.
    Index(usize),
    /// `first()`.
    First,
    /// `last()`.
    Last,
    /// `where(a.b = 'x' and c = 1)`.
    Where(Vec<(Vec<String>, Literal)>),
    /// `ofType(T)`, `as(T)`, `as T`.
    OfType(String),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct FhirPath {
    text: String,
    /// The type the path starts with (`Patient` in `Patient.name`), if it names one.
    root: Option<String>,
    segments: Vec<Segment>,
}

/// Tokens of the subset.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(String),
    Dot,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Equals,
}

/// The longest path text taken.
const MAX_PATH: usize = 4096;

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > MAX_PATH {
        return Err(format!("a path of at most {MAX_PATH} bytes is accepted"));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '.' => {
                out.push(Token::Dot);
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '[' => {
                out.push(Token::OpenBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::CloseBracket);
                i += 1;
            }
            '=' => {
                out.push(Token::Equals);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("a string literal is not closed".into()),
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('\'') => '\'',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('`') => '`',
                                Some('/') => '/',
                                Some('t') => '\t',
                                Some('n') => '\n',
                                Some('r') => '\r',
                                Some('f') => '\u{c}',
                                _ => return Err("an unsupported escape in a string literal".into()),
                            };
                            s.push(escaped);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Text(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&ch| ch == '`')
                    .ok_or("a delimited identifier is not closed")?;
                out.push(Token::Ident(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_ascii_digit() || *ch == '.')
                {
                    i += 1;
                }
                out.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' || c == '%' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("{other:?} is not supported here")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn expect(&mut self, want: &Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            _ => Err(format!("expected {what}")),
        }
    }
    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            _ => Err(format!("expected {what}")),
        }
    }
    /// A type name, `FHIR.` prefix allowed.
    fn type_name(&mut self) -> Result<String, String> {
        let first = self.ident("a type name")?;
        if first == "FHIR" && self.peek() == Some(&Token::Dot) {
            self.at += 1;
            return self.ident("a type name after FHIR.");
        }
        if first == "System" {
            return Err("System types are not supported (FHIR types are)".into());
        }
        Ok(first)
    }
}

fn is_keyword(name: &str) -> bool {
    matches!(
        name,
        "and" | "or" | "xor" | "implies" | "is" | "as" | "div" | "mod" | "in" | "contains"
    )
}

impl FhirPath {
    /// Parses a path of the supported subset.
    pub fn parse(text: &str) -> Result<FhirPath, PathError> {
        let fail = |what: String| PathError::Unsupported {
            path: text.to_owned(),
            what,
        };
        let tokens = tokens(text).map_err(fail)?;
        if tokens.is_empty() {
            return Err(fail("the path is empty".into()));
        }
        let mut p = Parser { tokens, at: 0 };
        let mut segments = Vec::new();
        let mut root = None;
        let mut first = true;
        loop {
            let Some(token) = p.next() else {
                return Err(fail("the path ends after a '.'".into()));
            };
            let name = match token {
                Token::Ident(name) => name,
                other => return Err(fail(format!("expected an element name, found {other:?}"))),
            };
            if name.starts_with('$') || name.starts_with('%') {
                return Err(fail(format!("{name} is not supported in a patch path")));
            }
            if p.peek() == Some(&Token::Open) {
                p.at += 1;
                segments.push(function(&mut p, &name).map_err(fail)?);
            } else if is_keyword(&name) {
                return Err(fail(format!("the operator {name:?} is not supported here")));
            } else if first && name.starts_with(|c: char| c.is_ascii_uppercase()) {
                root = Some(name);
            } else {
                segments.push(Segment::Child(name));
            }
            first = false;
            // Indexers after the step.
            while p.peek() == Some(&Token::OpenBracket) {
                p.at += 1;
                let n = match p.next() {
                    Some(Token::Number(n)) => n.parse::<usize>().map_err(|_| {
                        fail(format!("the index {n} is not a non-negative integer"))
                    })?,
                    _ => return Err(fail("an indexer takes an integer literal".into())),
                };
                p.expect(&Token::CloseBracket, "']'").map_err(fail)?;
                segments.push(Segment::Index(n));
            }
            match p.next() {
                None => break,
                Some(Token::Dot) => {}
                Some(Token::Ident(kw)) if kw == "as" => {
                    let ty = p.type_name().map_err(fail)?;
                    segments.push(Segment::OfType(ty.clone()));
                    if let Some(t) = p.next() {
                        return Err(fail(format!(
                            "nothing may follow 'as {ty}' here, found {t:?}"
                        )));
                    }
                    break;
                }
                Some(Token::Ident(kw)) if is_keyword(&kw) => {
                    return Err(fail(format!("the operator {kw:?} is not supported here")));
                }
                Some(other) => return Err(fail(format!("unexpected {other:?}"))),
            }
        }
        Ok(FhirPath {
            text: text.to_owned(),
            root,
            segments,
        })
    }

    /// The path as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// This path without its last step, and that step's element name, when the last step is
    /// a plain child (`Patient.name` → `Patient`, `name`): where a new list would go.
    pub fn parent(&self) -> Option<(FhirPath, &str)> {
        match self.segments.last()? {
            Segment::Child(name) => Some((
                FhirPath {
                    text: self.text.clone(),
                    root: self.root.clone(),
                    segments: self.segments[..self.segments.len() - 1].to_vec(),
                },
                name,
            )),
            _ => None,
        }
    }

    /// The items of `resource` the path names, in document order.
    pub fn locate(&self, resource: &Value) -> Vec<Located> {
        let rtype = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(root) = &self.root
            && rtype.as_deref() != Some(root.as_str())
            && root != "Resource"
            && root != "DomainResource"
        {
            return Vec::new();
        }
        let mut items = vec![Located {
            steps: Vec::new(),
            ty: rtype,
            holder: None,
        }];
        for segment in &self.segments {
            items = apply(segment, resource, items);
        }
        items
    }
}

/// A function call; the `(` is taken.
fn function(p: &mut Parser, name: &str) -> Result<Segment, String> {
    let segment = match name {
        "first" => Segment::First,
        "last" => Segment::Last,
        "ofType" | "as" => Segment::OfType(p.type_name()?),
        "where" => {
            let mut terms = Vec::new();
            loop {
                let mut path = vec![p.ident("an element name in where()")?];
                if path[0] == "$this" {
                    return Err("$this is not supported in where()".into());
                }
                while p.peek() == Some(&Token::Dot) {
                    p.at += 1;
                    path.push(p.ident("an element name in where()")?);
                }
                if path
                    .iter()
                    .any(|s| is_keyword(s) || s.starts_with(['$', '%']))
                {
                    return Err("where() takes equalities like where(system='phone')".into());
                }
                p.expect(
                    &Token::Equals,
                    "'=' in where() (only equality is supported)",
                )?;
                let literal = match p.next() {
                    Some(Token::Text(s)) => Literal::Text(s),
                    Some(Token::Number(n)) => Literal::Number(n),
                    Some(Token::Ident(b)) if b == "true" => Literal::Boolean(true),
                    Some(Token::Ident(b)) if b == "false" => Literal::Boolean(false),
                    _ => {
                        return Err(
                            "where() compares with a string, number or boolean literal".into()
                        );
                    }
                };
                terms.push((path, literal));
                match p.next() {
                    Some(Token::Close) => return Ok(Segment::Where(terms)),
                    Some(Token::Ident(and)) if and == "and" => {}
                    _ => return Err("where() joins equalities with 'and' only".into()),
                }
            }
        }
        other => return Err(format!("the function {other}() is not supported")),
    };
    p.expect(&Token::Close, &format!("')' after {name}("))?;
    Ok(segment)
}

/// The value at `steps` in `root`.
pub fn get<'v>(root: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    steps.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

/// The value at `steps` in `root`, mutably.
pub fn get_mut<'v>(root: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// The type of element `name` of an item of type `ty` holding `value` (a contained resource
/// is the type it says it is).
fn child_type(ty: Option<&str>, name: &str, value: &Value) -> Option<String> {
    let (t, _) = schema::element_type(ty?, name)?;
    if t == "Resource" {
        return value
            .get("resourceType")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    Some(t.to_owned())
}

/// The children named `name` of one item: the element itself, or the members of the choice
/// group `name` it has.
fn children(resource: &Value, item: &Located, name: &str, out: &mut Vec<Located>) {
    let Some(Value::Object(object)) = get(resource, &item.steps) else {
        return;
    };
    let mut push = |key: &str, value: &Value| {
        let mut steps = item.steps.clone();
        steps.push(Step::Key(key.to_owned()));
        match value {
            Value::Array(list) => {
                for (i, v) in list.iter().enumerate() {
                    let mut s = steps.clone();
                    s.push(Step::Index(i));
                    out.push(Located {
                        steps: s,
                        ty: child_type(item.ty.as_deref(), key, v),
                        holder: item.ty.clone(),
                    });
                }
            }
            v => out.push(Located {
                steps,
                ty: child_type(item.ty.as_deref(), key, v),
                holder: item.ty.clone(),
            }),
        }
    };
    if let Some(value) = object.get(name) {
        push(name, value);
        return;
    }
    // A choice element: `value` names `valueQuantity`, `valueString`, … (by the schema when
    // the type is known, else by the name's form).
    let members = item.ty.as_deref().map(|t| schema::choice_members(t, name));
    for (key, value) in object {
        let is_member = match &members {
            Some(members) => members.contains(&key.as_str()),
            None => key
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())),
        };
        if is_member {
            push(key, value);
        }
    }
}

fn apply(segment: &Segment, resource: &Value, items: Vec<Located>) -> Vec<Located> {
    match segment {
        Segment::Child(name) => {
            let mut out = Vec::new();
            for item in &items {
                children(resource, item, name, &mut out);
            }
            out
        }
        Segment::Index(n) => items.into_iter().nth(*n).into_iter().collect(),
        Segment::First => items.into_iter().next().into_iter().collect(),
        Segment::Last => items.into_iter().last().into_iter().collect(),
        Segment::OfType(ty) => items
            .into_iter()
            .filter(|i| i.ty.as_deref() == Some(ty.as_str()))
            .collect(),
        Segment::Where(terms) => items
            .into_iter()
            .filter(|item| {
                terms.iter().all(|(path, literal)| {
                    let mut found = vec![item.clone()];
                    for name in path {
                        let mut next = Vec::new();
                        for f in &found {
                            children(resource, f, name, &mut next);
                        }
                        found = next;
                    }
                    // FHIRPath `=` on a collection of more than one item is empty (false).
                    match found.as_slice() {
                        [one] => get(resource, &one.steps).is_some_and(|v| equals(v, literal)),
                        _ => false,
                    }
                })
            })
            .collect(),
    }
}

fn equals(value: &Value, literal: &Literal) -> bool {
    match (value, literal) {
        (Value::String(s), Literal::Text(t)) => s == t,
        (Value::Bool(b), Literal::Boolean(l)) => b == l,
        (Value::Number(n), Literal::Number(l)) => {
            let (a, b) = (n.to_string(), l.clone());
            a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// A location as FHIRPath-like text (`name[1].given[0]`), for messages.
pub fn describe(rtype: &str, steps: &[Step]) -> String {
    let mut out = rtype.to_owned();
    for s in steps {
        match s {
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}],
            "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                     {"use": "usual", "given": ["Jim"]}],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
            "deceasedBoolean": false,
            "contained": [{"resourceType": "Practitioner", "id": "p"}]
        })
    }

    fn at(path: &str) -> Vec<String> {
        let p = patient();
        FhirPath::parse(path)
            .expect("parses")
            .locate(&p)
            .iter()
            .map(|l| describe("Patient", &l.steps))
            .collect()
    }

    #[test]
    fn navigation_indexers_and_functions() {
        assert_eq!(
            at("Patient.name.given"),
            [
                "Patient.name[0].given[0]",
                "Patient.name[0].given[1]",
                "Patient.name[1].given[0]"
            ]
        );
        assert_eq!(at("name[1].given"), ["Patient.name[1].given[0]"]);
        assert_eq!(
            at("Patient.name.first().given.last()"),
            ["Patient.name[0].given[1]"]
        );
        assert_eq!(
            at("Patient.telecom.where(system='email')"),
            ["Patient.telecom[1]"]
        );
        assert_eq!(
            at("Patient.name.where(use = 'official' and family = 'Chalmers').family"),
            ["Patient.name[0].family"]
        );
        assert_eq!(
            at("Patient.telecom.where(system='fax')"),
            Vec::<String>::new()
        );
        assert_eq!(at("Observation.status"), Vec::<String>::new());
        assert_eq!(at("Patient.`name`[0].family"), ["Patient.name[0].family"]);
    }

    #[test]
    fn choice_elements_and_types() {
        assert_eq!(at("Patient.deceased"), ["Patient.deceasedBoolean"]);
        assert_eq!(
            at("Patient.deceased.ofType(boolean)"),
            ["Patient.deceasedBoolean"]
        );
        assert_eq!(
            at("Patient.deceased.ofType(dateTime)"),
            Vec::<String>::new()
        );
        assert_eq!(
            at("Patient.deceased as FHIR.boolean"),
            ["Patient.deceasedBoolean"]
        );
        assert_eq!(
            at("Patient.contained.ofType(Practitioner).id"),
            ["Patient.contained[0].id"]
        );
        assert_eq!(at("Patient.name.as(HumanName)[1]"), ["Patient.name[1]"]);
        // A prefix of an element name is not a choice group.
        let twins = json!({"resourceType": "Patient", "multipleBirthBoolean": true});
        let path = FhirPath::parse("Patient.multiple").expect("parses");
        assert!(path.locate(&twins).is_empty());
        let path = FhirPath::parse("Patient.multipleBirth").expect("parses");
        assert_eq!(path.locate(&twins).len(), 1);
    }

    #[test]
    fn what_is_not_supported_is_named() {
        for (path, what) in [
            ("Patient.name.exists()", "exists()"),
            ("Patient.name | Patient.telecom", "'|'"),
            ("Patient.telecom.where(system != 'x')", "'!'"),
            ("Patient.telecom.where(system)", "'='"),
            ("Patient.name[-1]", "non-negative"),
            ("Patient.name[", "integer"),
            ("Patient.", "ends"),
            ("", "empty"),
            ("%resource.name", "%resource"),
            ("Patient.name.where(use='a' or use='b')", "'and'"),
            ("Patient.name.where($this.use = 'a')", "$this"),
            ("'abc", "not closed"),
            ("Patient.name and Patient.id", "\"and\""),
        ] {
            let e = FhirPath::parse(path).expect_err(path);
            assert!(e.to_string().contains(what), "{path}: {e}");
        }
    }

    #[test]
    fn parent_of_a_child_step() {
        let p = FhirPath::parse("Patient.contact[0].telecom").expect("parses");
        let (parent, name) = p.parent().expect("a child step");
        assert_eq!(name, "telecom");
        let patient = json!({"resourceType": "Patient", "contact": [{"gender": "male"}]});
        assert_eq!(parent.locate(&patient).len(), 1);
        assert!(p.locate(&patient).is_empty());
    }
}
