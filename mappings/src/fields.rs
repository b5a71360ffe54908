//! FHIR datatypes ⇄ model values.
//!
//! Readers are best effort: they take what the model can carry and ignore the rest (ids and
//! extensions on elements, unknown sub-fields). Nothing is lost by that, because the entity
//! mapping keeps every top-level field whose rendering differs from its source in the
//! remainder. Writers render exactly the FHIR JSON a reader would have accepted.

use model::{
    Address, Annotation, Code, Concept, Content, Decimal, Identifier, Link, Name, Period, Quantity,
    Telecom, When,
};
use serde_json::{Map, Value};

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn str_of(o: &Obj, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn bool_of(o: &Obj, key: &str) -> Option<bool> {
    o.get(key).and_then(Value::as_bool)
}

pub(crate) fn strs_of(o: &Obj, key: &str) -> Vec<String> {
    match o.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads an array field with `read`, or one object for a 0..1 field.
pub(crate) fn list_of<T>(o: &Obj, key: &str, read: impl Fn(&Obj) -> T) -> Vec<T> {
    match o.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_object)
            .map(read)
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn one_of<T>(o: &Obj, key: &str, read: impl Fn(&Obj) -> T) -> Option<T> {
    o.get(key).and_then(Value::as_object).map(read)
}

pub(crate) fn decimal_of(o: &Obj, key: &str) -> Option<Decimal> {
    match o.get(key) {
        Some(Value::Number(n)) => Some(Decimal(n.to_string())),
        _ => None,
    }
}

pub(crate) fn put_str(o: &mut Obj, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(key.into(), Value::String(v.clone()));
    }
}

pub(crate) fn put_bool(o: &mut Obj, key: &str, v: Option<bool>) {
    if let Some(v) = v {
        o.insert(key.into(), Value::Bool(v));
    }
}

pub(crate) fn put_strs(o: &mut Obj, key: &str, v: &[String]) {
    if !v.is_empty() {
        o.insert(
            key.into(),
            Value::Array(v.iter().cloned().map(Value::String).collect()),
        );
    }
}

pub(crate) fn put_list<T>(o: &mut Obj, key: &str, v: &[T], write: impl Fn(&T) -> Obj) {
    if !v.is_empty() {
        o.insert(
            key.into(),
            Value::Array(v.iter().map(|x| Value::Object(write(x))).collect()),
        );
    }
}

pub(crate) fn put_one<T>(o: &mut Obj, key: &str, v: &Option<T>, write: impl Fn(&T) -> Obj) {
    if let Some(v) = v {
        o.insert(key.into(), Value::Object(write(v)));
    }
}

pub(crate) fn put_decimal(o: &mut Obj, key: &str, v: &Option<Decimal>) {
    if let Some(Decimal(text)) = v
        && let Ok(n) = text.parse::<serde_json::Number>()
    {
        o.insert(key.into(), Value::Number(n));
    }
}

pub(crate) fn read_coding(o: &Obj) -> Code {
    Code {
        system: str_of(o, "system"),
        version: str_of(o, "version"),
        code: str_of(o, "code"),
        display: str_of(o, "display"),
    }
}

pub(crate) fn write_coding(c: &Code) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "system", &c.system);
    put_str(&mut o, "version", &c.version);
    put_str(&mut o, "code", &c.code);
    put_str(&mut o, "display", &c.display);
    o
}

pub(crate) fn read_concept(o: &Obj) -> Concept {
    Concept {
        codes: list_of(o, "coding", read_coding),
        text: str_of(o, "text"),
    }
}

pub(crate) fn write_concept(c: &Concept) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "coding", &c.codes, write_coding);
    put_str(&mut o, "text", &c.text);
    o
}

pub(crate) fn read_period(o: &Obj) -> Period {
    Period {
        start: str_of(o, "start"),
        end: str_of(o, "end"),
    }
}

pub(crate) fn write_period(p: &Period) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "start", &p.start);
    put_str(&mut o, "end", &p.end);
    o
}

pub(crate) fn read_identifier(o: &Obj) -> Identifier {
    Identifier {
        usage: str_of(o, "use"),
        kind: one_of(o, "type", read_concept),
        system: str_of(o, "system"),
        value: str_of(o, "value"),
        period: one_of(o, "period", read_period),
        assigner: one_of(o, "assigner", read_link).map(Box::new),
    }
}

pub(crate) fn write_identifier(i: &Identifier) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "use", &i.usage);
    put_one(&mut o, "type", &i.kind, write_concept);
    put_str(&mut o, "system", &i.system);
    put_str(&mut o, "value", &i.value);
    put_one(&mut o, "period", &i.period, write_period);
    if let Some(a) = &i.assigner {
        o.insert("assigner".into(), Value::Object(write_link(a)));
    }
    o
}

/// Splits a literal reference (`Patient/123`, `http://base/Patient/123/_history/2`) into its
/// type and id. Fragments (`#p1`) and URNs are not links to stored entities.
pub fn split_reference(reference: &str) -> Option<(&str, &str)> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split(['?', '#']).next().unwrap_or(reference);
    let parts: Vec<&str> = path.split('/').collect();
    // [.., Type, id] or [.., Type, id, _history, vid]
    let (t, id) = match parts.as_slice() {
        [.., t, id, h, _] if *h == "_history" => (*t, *id),
        [.., t, id] => (*t, *id),
        _ => return None,
    };
    if crate::types::is_resource_type(t) && crate::json::is_valid_id(id) {
        Some((t, id))
    } else {
        None
    }
}

pub(crate) fn read_link(o: &Obj) -> Link {
    let reference = str_of(o, "reference");
    let (mut target_type, target_id) = match reference.as_deref().and_then(split_reference) {
        Some((t, id)) => (Some(t.to_owned()), Some(id.to_owned())),
        None => (None, None),
    };
    let declared = str_of(o, "type");
    if declared.is_some() {
        target_type = declared;
    }
    Link {
        target_type,
        target_id,
        reference,
        identifier: one_of(o, "identifier", read_identifier),
        display: str_of(o, "display"),
    }
}

pub(crate) fn write_link(l: &Link) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "reference", &l.reference);
    // `type` is written only when it is not implied by the reference text.
    let implied = l
        .reference
        .as_deref()
        .and_then(split_reference)
        .map(|(t, _)| t.to_owned());
    if l.target_type != implied {
        put_str(&mut o, "type", &l.target_type);
    }
    put_one(&mut o, "identifier", &l.identifier, write_identifier);
    put_str(&mut o, "display", &l.display);
    o
}

pub(crate) fn read_name(o: &Obj) -> Name {
    Name {
        usage: str_of(o, "use"),
        text: str_of(o, "text"),
        family: str_of(o, "family"),
        given: strs_of(o, "given"),
        prefix: strs_of(o, "prefix"),
        suffix: strs_of(o, "suffix"),
        period: one_of(o, "period", read_period),
    }
}

pub(crate) fn write_name(n: &Name) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "use", &n.usage);
    put_str(&mut o, "text", &n.text);
    put_str(&mut o, "family", &n.family);
    put_strs(&mut o, "given", &n.given);
    put_strs(&mut o, "prefix", &n.prefix);
    put_strs(&mut o, "suffix", &n.suffix);
    put_one(&mut o, "period", &n.period, write_period);
    o
}

pub(crate) fn read_address(o: &Obj) -> Address {
    Address {
        usage: str_of(o, "use"),
        kind: str_of(o, "type"),
        text: str_of(o, "text"),
        lines: strs_of(o, "line"),
        city: str_of(o, "city"),
        district: str_of(o, "district"),
        state: str_of(o, "state"),
        postal_code: str_of(o, "postalCode"),
        country: str_of(o, "country"),
        period: one_of(o, "period", read_period),
    }
}

pub(crate) fn write_address(a: &Address) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "use", &a.usage);
    put_str(&mut o, "type", &a.kind);
    put_str(&mut o, "text", &a.text);
    put_strs(&mut o, "line", &a.lines);
    put_str(&mut o, "city", &a.city);
    put_str(&mut o, "district", &a.district);
    put_str(&mut o, "state", &a.state);
    put_str(&mut o, "postalCode", &a.postal_code);
    put_str(&mut o, "country", &a.country);
    put_one(&mut o, "period", &a.period, write_period);
    o
}

pub(crate) fn read_telecom(o: &Obj) -> Telecom {
    Telecom {
        channel: str_of(o, "system"),
        value: str_of(o, "value"),
        usage: str_of(o, "use"),
        rank: decimal_of(o, "rank"),
        period: one_of(o, "period", read_period),
    }
}

pub(crate) fn write_telecom(t: &Telecom) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "system", &t.channel);
    put_str(&mut o, "value", &t.value);
    put_str(&mut o, "use", &t.usage);
    put_decimal(&mut o, "rank", &t.rank);
    put_one(&mut o, "period", &t.period, write_period);
    o
}

pub(crate) fn read_annotation(o: &Obj) -> Annotation {
    Annotation {
        author: one_of(o, "authorReference", read_link),
        author_text: str_of(o, "authorString"),
        time: str_of(o, "time"),
        text: str_of(o, "text"),
    }
}

pub(crate) fn write_annotation(a: &Annotation) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "authorReference", &a.author, write_link);
    put_str(&mut o, "authorString", &a.author_text);
    put_str(&mut o, "time", &a.time);
    put_str(&mut o, "text", &a.text);
    o
}

pub(crate) fn read_quantity(o: &Obj) -> Quantity {
    Quantity {
        value: decimal_of(o, "value"),
        comparator: str_of(o, "comparator"),
        unit: str_of(o, "unit"),
        system: str_of(o, "system"),
        code: str_of(o, "code"),
    }
}

pub(crate) fn write_quantity(q: &Quantity) -> Obj {
    let mut o = Obj::new();
    put_decimal(&mut o, "value", &q.value);
    put_str(&mut o, "comparator", &q.comparator);
    put_str(&mut o, "unit", &q.unit);
    put_str(&mut o, "system", &q.system);
    put_str(&mut o, "code", &q.code);
    o
}

/// Reads a `name[x]` choice of date-time or period.
pub(crate) fn read_when(o: &Obj, name: &str) -> Option<When> {
    if let Some(at) = str_of(o, &format!("{name}DateTime")) {
        return Some(When::At(at));
    }
    one_of(o, &format!("{name}Period"), read_period).map(When::Span)
}

pub(crate) fn write_when(o: &mut Obj, name: &str, w: &Option<When>) {
    match w {
        Some(When::At(at)) => {
            o.insert(format!("{name}DateTime"), Value::String(at.clone()));
        }
        Some(When::Span(p)) => {
            o.insert(format!("{name}Period"), Value::Object(write_period(p)));
        }
        None => {}
    }
}

/// Reads a `value[x]` choice into a [`Content`].
pub(crate) fn read_content(o: &Obj, name: &str) -> Option<Content> {
    let key = |suffix: &str| format!("{name}{suffix}");
    if let Some(q) = one_of(o, &key("Quantity"), read_quantity) {
        return Some(Content::Quantity(q));
    }
    if let Some(c) = one_of(o, &key("CodeableConcept"), read_concept) {
        return Some(Content::Concept(c));
    }
    if let Some(s) = str_of(o, &key("String")) {
        return Some(Content::Text(s));
    }
    if let Some(b) = bool_of(o, &key("Boolean")) {
        return Some(Content::Boolean(b));
    }
    if let Some(i) = decimal_of(o, &key("Integer")) {
        return Some(Content::Integer(i));
    }
    if let Some(s) = str_of(o, &key("DateTime")) {
        return Some(Content::DateTime(s));
    }
    if let Some(s) = str_of(o, &key("Time")) {
        return Some(Content::Time(s));
    }
    one_of(o, &key("Period"), read_period).map(Content::Period)
}

pub(crate) fn write_content(o: &mut Obj, name: &str, c: &Option<Content>) {
    let Some(c) = c else { return };
    let (suffix, value) = match c {
        Content::Quantity(q) => ("Quantity", Value::Object(write_quantity(q))),
        Content::Concept(cc) => ("CodeableConcept", Value::Object(write_concept(cc))),
        Content::Text(s) => ("String", Value::String(s.clone())),
        Content::Boolean(b) => ("Boolean", Value::Bool(*b)),
        Content::Integer(Decimal(text)) => match text.parse::<serde_json::Number>() {
            Ok(n) => ("Integer", Value::Number(n)),
            Err(_) => return,
        },
        Content::DateTime(s) => ("DateTime", Value::String(s.clone())),
        Content::Time(s) => ("Time", Value::String(s.clone())),
        Content::Period(p) => ("Period", Value::Object(write_period(p))),
    };
    o.insert(format!("{name}{suffix}"), value);
}
