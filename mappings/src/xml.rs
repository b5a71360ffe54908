//! FHIR R4 XML ⇄ FHIR JSON, lossless, driven by the R4 structure ([`crate::schema`]).
//!
//! The rules (FHIR R4, "XML Representation of Resources"):
//!
//! - A resource is an element named by its type in the namespace `http://hl7.org/fhir`
//!   (`<Patient xmlns="http://hl7.org/fhir">`); `resourceType` is no element.
//! - Child elements come in the order of the type's definition (`order` in
//!   `schema/r4.json`); a repeating element is the element repeated. Choice elements keep
//!   their full JSON name (`valueQuantity`).
//! - A primitive is an element with a `value` attribute (`<birthDate value="1974-12-25"/>`);
//!   the `id` and `extension` of its JSON `_birthDate` are the element's `id` attribute and
//!   `<extension>` children. Repeating primitives pair `given[i]` with `_given[i]`; a value
//!   given only by its extension (`null` in JSON) is an element without `value`.
//! - The `id` of a data type or backbone element, and the `url` of an extension, are
//!   attributes; the resource's own `id` is the element `<id value="…"/>`.
//! - The narrative `div` is XHTML (`http://www.w3.org/1999/xhtml`), written and read
//!   verbatim: the JSON string is the exact text of the element, both ways (pretty output
//!   indents up to the div, never inside it). It must be one well-formed `div` element
//!   that declares its namespace itself, with no entity but XML's five.
//! - `contained`, `Bundle.entry.resource`, `Parameters.parameter.resource` (every element of
//!   type `Resource`) wrap one resource element: `<contained><Patient>…</Patient></contained>`.
//! - A `value` of type boolean, integer, unsignedInt, positiveInt or decimal becomes a JSON
//!   boolean or number, checked for its lexical form (and an integer's range); every other
//!   primitive is a string. Numbers keep their text both ways (serde_json keeps a number's
//!   source text; like the JSON path, it writes an exponent as `e+n`).
//! - Attribute values escape `& < > "` and tab, line feed and carriage return (as character
//!   references, which XML keeps; a literal line break in an attribute reads as a space).
//!
//! Reading is strict about what it cannot map and about hostile input: UTF-8 only, no
//! DOCTYPE (so no entity but the five XML predefines), a nesting limit, no text outside the
//! narrative, no element or attribute the structure does not define (namespace
//! declarations and `xsi:` attributes aside), no element in another namespace. It accepts
//! the children of an element in any order, and comments anywhere (dropped). Every error
//! says where: [`MappingError::Malformed`] with the line, column and element path
//! (`Patient.name[0].given[1]`); [`MappingError::TooDeep`] past the depth limit;
//! [`MappingError::UnknownType`] for a root that is no resource type. Writing refuses
//! what XML cannot hold (an unknown element, a character XML forbids, a narrative that is
//! not one well-formed XHTML div) with [`MappingError::Invalid`] and the element's path.

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::str::FromStr;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesRef, BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::{NsReader, Writer, XmlVersion};
use serde_json::{Map, Number, Value};

use crate::schema::{self, ElementInfo};
use crate::{Issue, IssueCode, MappingError};

/// The FHIR namespace.
const FHIR_NS: &str = "http://hl7.org/fhir";
/// The namespace of the narrative.
const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";
/// Schema-instance attributes (`xsi:schemaLocation`) are ignored on reading.
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Renders a resource (a FHIR JSON object that passed the structural checks) as FHIR XML.
pub fn to_xml(resource: &Map<String, Value>, pretty: bool) -> Result<String, MappingError> {
    let mut out = Out {
        writer: Writer::new(Vec::new()),
        pretty,
        depth: 0,
    };
    let mut path = String::new();
    write_resource(&mut out, resource, &mut path, true)?;
    String::from_utf8(out.writer.into_inner())
        .map_err(|err| MappingError::Malformed(format!("the XML written is not UTF-8: {err}")))
}

/// Reads a FHIR XML resource into its FHIR JSON object (the structural checks of the JSON
/// path run after, in the caller).
pub fn from_xml(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, MappingError> {
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let (line, column) = line_column(bytes, err.valid_up_to());
        MappingError::Malformed(format!(
            "XML line {line}, column {column}: the document is not UTF-8"
        ))
    })?;
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        let (line, column) = line_column(bytes, at);
        return Err(MappingError::Malformed(format!(
            "XML line {line}, column {column}: the character U+{:04X} is not allowed in XML",
            u32::from(c)
        )));
    }
    Parser {
        text,
        reader: NsReader::from_str(text),
        max_depth,
        stack: Vec::new(),
        path: String::new(),
        result: None,
        at: 0,
    }
    .run()
}

// ---------------------------------------------------------------------------------------
// Writing

/// The output and its indentation.
struct Out {
    writer: Writer<Vec<u8>>,
    pretty: bool,
    depth: usize,
}

impl Out {
    /// Starts a new line at the current depth (pretty output only, not before the root).
    fn line(&mut self) {
        let buf = self.writer.get_mut();
        if self.pretty && !buf.is_empty() {
            buf.push(b'\n');
            buf.extend(std::iter::repeat_n(b' ', 2 * self.depth));
        }
    }

    fn event(&mut self, event: Event<'_>) -> Result<(), MappingError> {
        self.writer
            .write_event(event)
            .map_err(|err| MappingError::Malformed(format!("writing XML: {err}")))
    }

    fn start(&mut self, start: BytesStart<'_>) -> Result<(), MappingError> {
        self.line();
        self.event(Event::Start(start))?;
        self.depth += 1;
        Ok(())
    }

    fn empty(&mut self, start: BytesStart<'_>) -> Result<(), MappingError> {
        self.line();
        self.event(Event::Empty(start))
    }

    fn end(&mut self, name: &str) -> Result<(), MappingError> {
        self.depth = self.depth.saturating_sub(1);
        self.line();
        self.event(Event::End(BytesEnd::new(name)))
    }

    /// Writes markup verbatim (the narrative).
    fn raw(&mut self, text: &str) {
        self.line();
        self.writer.get_mut().extend_from_slice(text.as_bytes());
    }
}

/// A resource that cannot be written as XML, with where.
fn unrenderable(path: &str, text: impl Into<String>) -> MappingError {
    MappingError::invalid(Issue::error(IssueCode::Structure, path, text))
}

/// `path.key`, for errors about a member.
fn member(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The R4 resource type `name`, with the table's lifetime.
fn resource_type(name: &str) -> Option<&'static str> {
    schema::type_name(name).filter(|t| crate::types::is_resource_type(t))
}

/// An extension of a primitive (its position is no matter: a primitive element holds
/// nothing else).
const EXTENSION: ElementInfo = ElementInfo {
    name: "extension",
    ty: "Extension",
    repeats: true,
    position: 0,
};

/// Whether element `name` of type `ty` is an XML attribute: the `id` of everything but a
/// resource, and the `url` of an extension.
fn is_attribute(ty: &str, resource: bool, name: &str) -> bool {
    (name == "id" && !resource) || (name == "url" && ty == "Extension")
}

fn write_resource(
    out: &mut Out,
    resource: &Map<String, Value>,
    path: &mut String,
    root: bool,
) -> Result<(), MappingError> {
    let ty = match resource.get("resourceType") {
        Some(Value::String(ty)) => ty,
        _ => {
            return Err(unrenderable(
                &member(path, "resourceType"),
                "a resource needs its resourceType",
            ));
        }
    };
    let Some(ty) = resource_type(ty) else {
        return Err(MappingError::UnknownType(ty.clone()));
    };
    if root {
        path.push_str(ty);
    }
    let mut start = BytesStart::new(ty);
    if root {
        start.push_attribute(("xmlns", FHIR_NS));
    }
    write_object(out, start, ty, ty, true, resource, path)
}

/// An element of an object being written: its values and, for a primitive, its `_name`.
struct Member<'v> {
    info: ElementInfo,
    value: Option<&'v Value>,
    extension: Option<&'v Value>,
}

/// Writes an object of type `ty` as the element `start` (named `name`).
fn write_object(
    out: &mut Out,
    mut start: BytesStart<'_>,
    name: &str,
    ty: &'static str,
    resource: bool,
    object: &Map<String, Value>,
    path: &mut String,
) -> Result<(), MappingError> {
    // The elements present, in definition order (a primitive's `name` and `_name` as one).
    let mut members: Vec<Member<'_>> = Vec::with_capacity(object.len());
    for (key, value) in object {
        if resource && key == "resourceType" {
            continue;
        }
        let (base, underscored) = match key.strip_prefix('_') {
            Some(base) => (base, true),
            None => (key.as_str(), false),
        };
        let Some(info) = schema::element_info(ty, base) else {
            return Err(unrenderable(
                &member(path, key),
                format!("unknown element {key} of {ty}"),
            ));
        };
        let attribute = is_attribute(ty, resource, base);
        if underscored && (!schema::is_primitive(info.ty) || info.ty == "xhtml" || attribute) {
            return Err(unrenderable(
                &member(path, key),
                format!("{ty}.{base} cannot have an id or extensions ({key})"),
            ));
        }
        if attribute {
            continue;
        }
        let pair = if schema::is_primitive(info.ty) {
            members
                .iter_mut()
                .find(|m| m.info.position == info.position)
        } else {
            None
        };
        match (pair, underscored) {
            (Some(m), true) => m.extension = Some(value),
            (Some(m), false) => m.value = Some(value),
            (None, true) => members.push(Member {
                info,
                value: None,
                extension: Some(value),
            }),
            (None, false) => members.push(Member {
                info,
                value: Some(value),
                extension: None,
            }),
        }
    }
    members.sort_by_key(|m| m.info.position);
    for attribute in ["id", "url"] {
        if !is_attribute(ty, resource, attribute) {
            continue;
        }
        if let Some(value) = object.get(attribute) {
            let Value::String(text) = value else {
                return Err(unrenderable(
                    &member(path, attribute),
                    format!("{ty}.{attribute} must be a string"),
                ));
            };
            start.push_attribute(Attribute {
                key: QName(attribute),
                value: escape_attribute(text, &member(path, attribute))?,
            });
        }
    }
    if members.is_empty() {
        return out.empty(start);
    }
    out.start(start)?;
    for Member {
        info,
        value,
        extension,
    } in members
    {
        if info.ty == "xhtml" {
            if let Some(value) = value {
                write_div(out, value, &member(path, info.name))?;
            }
        } else if schema::is_primitive(info.ty) {
            write_primitives(out, info, value, extension, path)?;
        } else if let Some(value) = value {
            let len = path.len();
            for (i, item) in items(value, info, path)?.iter().enumerate() {
                push_segment(path, info, i);
                let Value::Object(item) = item else {
                    return Err(unrenderable(
                        path,
                        format!("a {} is a JSON object", info.ty),
                    ));
                };
                if info.ty == "Resource" {
                    out.start(BytesStart::new(info.name))?;
                    write_resource(out, item, path, false)?;
                    out.end(info.name)?;
                } else {
                    let ty = info.ty;
                    write_object(
                        out,
                        BytesStart::new(info.name),
                        info.name,
                        ty,
                        false,
                        item,
                        path,
                    )?;
                }
                path.truncate(len);
            }
        }
    }
    out.end(name)
}

/// `.name`, or `.name[i]` for a repeating element.
fn push_segment(path: &mut String, info: ElementInfo, i: usize) {
    path.push('.');
    path.push_str(info.name);
    if info.repeats {
        // Writing to a String cannot fail.
        let _ = write!(path, "[{i}]");
    }
}

/// The values of an element: the array of a repeating one, the one value of another.
fn items<'v>(value: &'v Value, info: ElementInfo, path: &str) -> Result<&'v [Value], MappingError> {
    match (value, info.repeats) {
        (Value::Array(items), true) => Ok(items),
        (_, true) => Err(unrenderable(
            &member(path, info.name),
            format!("{} repeats: it must be an array", info.name),
        )),
        (Value::Array(_), false) => Err(unrenderable(
            &member(path, info.name),
            format!("{} holds one value, not an array", info.name),
        )),
        (value, false) => Ok(std::slice::from_ref(value)),
    }
}

/// Writes a primitive element (each of a repeating one): `value` and `_name` pair up.
fn write_primitives(
    out: &mut Out,
    info: ElementInfo,
    value: Option<&Value>,
    extension: Option<&Value>,
    path: &mut String,
) -> Result<(), MappingError> {
    let empty: &[Value] = &[];
    let values = value.map_or(Ok(empty), |v| items(v, info, path))?;
    let extensions = match extension {
        None => empty,
        Some(Value::Array(items)) if info.repeats => items,
        Some(_) if info.repeats => {
            return Err(unrenderable(
                &member(path, &format!("_{}", info.name)),
                "the extensions of a repeating primitive are an array",
            ));
        }
        Some(one) => std::slice::from_ref(one),
    };
    if !values.is_empty() && !extensions.is_empty() && values.len() != extensions.len() {
        return Err(unrenderable(
            &member(path, info.name),
            format!(
                "{0} and _{0} must have the same length ({1} and {2})",
                info.name,
                values.len(),
                extensions.len()
            ),
        ));
    }
    let len = path.len();
    for i in 0..values.len().max(extensions.len()) {
        push_segment(path, info, i);
        let value = values.get(i).filter(|v| !v.is_null());
        let extension = extensions.get(i).filter(|v| !v.is_null());
        write_primitive(out, info, value, extension, path)?;
        path.truncate(len);
    }
    Ok(())
}

fn write_primitive(
    out: &mut Out,
    info: ElementInfo,
    value: Option<&Value>,
    extension: Option<&Value>,
    path: &mut String,
) -> Result<(), MappingError> {
    let mut start = BytesStart::new(info.name);
    let mut extensions: &[Value] = &[];
    if let Some(extension) = extension {
        let Value::Object(extension) = extension else {
            return Err(unrenderable(path, "a primitive extension is an object"));
        };
        for (key, v) in extension {
            match (key.as_str(), v) {
                ("id", Value::String(id)) => start.push_attribute(Attribute {
                    key: QName("id"),
                    value: escape_attribute(id, path)?,
                }),
                ("extension", Value::Array(items)) => extensions = items,
                _ => {
                    return Err(unrenderable(
                        path,
                        format!(
                            "a primitive extension holds a string id and an extension array, not {key}"
                        ),
                    ));
                }
            }
        }
    }
    match value {
        Some(value) => {
            let text = primitive_text(info.ty, value, path)?;
            start.push_attribute(Attribute {
                key: QName("value"),
                value: escape_attribute(&text, path)?,
            });
        }
        None if extension.is_none() => {
            return Err(unrenderable(path, "a null needs its extension"));
        }
        None => {}
    }
    if extensions.is_empty() {
        return out.empty(start);
    }
    out.start(start)?;
    let len = path.len();
    for (i, item) in extensions.iter().enumerate() {
        push_segment(path, EXTENSION, i);
        let Value::Object(item) = item else {
            return Err(unrenderable(path, "an Extension is a JSON object"));
        };
        write_object(
            out,
            BytesStart::new("extension"),
            "extension",
            "Extension",
            false,
            item,
            path,
        )?;
        path.truncate(len);
    }
    out.end(info.name)
}

/// The `value` attribute of a primitive of type `ty`.
fn primitive_text<'v>(
    ty: &str,
    value: &'v Value,
    path: &str,
) -> Result<Cow<'v, str>, MappingError> {
    match (ty, value) {
        ("boolean", Value::Bool(b)) => Ok(Cow::Borrowed(if *b { "true" } else { "false" })),
        ("integer" | "unsignedInt" | "positiveInt" | "decimal", Value::Number(n)) => {
            Ok(Cow::Owned(n.to_string()))
        }
        ("boolean" | "integer" | "unsignedInt" | "positiveInt" | "decimal", _) => {
            Err(unrenderable(
                path,
                format!(
                    "a {ty} must be a JSON {}",
                    if ty == "boolean" { "boolean" } else { "number" }
                ),
            ))
        }
        (_, Value::String(text)) => Ok(Cow::Borrowed(text)),
        _ => Err(unrenderable(path, format!("a {ty} must be a JSON string"))),
    }
}

fn write_div(out: &mut Out, value: &Value, path: &str) -> Result<(), MappingError> {
    let Value::String(div) = value else {
        return Err(unrenderable(path, "the narrative div is a JSON string"));
    };
    check_xhtml(div).map_err(|(at, problem)| {
        let before = String::from_utf8_lossy(&div.as_bytes()[..at.min(div.len())]);
        let at = before.chars().count() + 1;
        unrenderable(
            path,
            format!("the narrative is not well-formed XHTML (at character {at}): {problem}"),
        )
    })?;
    out.raw(div);
    Ok(())
}

/// Whether XML 1.0 allows character `c` (in text or, as a reference, anywhere).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Escapes an attribute value: markup characters, and the whitespace an XML reader would
/// otherwise turn into spaces.
fn escape_attribute<'t>(text: &'t str, path: &str) -> Result<Cow<'t, str>, MappingError> {
    if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(unrenderable(
            path,
            format!(
                "the character U+{:04X} cannot be written in XML",
                u32::from(c)
            ),
        ));
    }
    if !text.contains(['&', '<', '>', '"', '\t', '\n', '\r']) {
        return Ok(Cow::Borrowed(text));
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\t' => escaped.push_str("&#9;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            c => escaped.push(c),
        }
    }
    Ok(Cow::Owned(escaped))
}

// ---------------------------------------------------------------------------------------
// The narrative

/// Checks that `div` is exactly one well-formed XHTML `div` element that declares its
/// namespace, with nothing before or after it, no DOCTYPE and no entity but XML's five.
/// On failure: the byte offset and what is wrong.
fn check_xhtml(div: &str) -> Result<(), (usize, String)> {
    if let Some((at, c)) = div.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        return Err((
            at,
            format!("the character U+{:04X} is not allowed in XML", u32::from(c)),
        ));
    }
    // quick-xml skips a byte order mark at the start of a document; inside a resource it
    // would be text before the div (found by the fuzzer).
    if div.starts_with('\u{feff}') {
        return Err((
            0,
            "the narrative must be one div element, with nothing before or after it".into(),
        ));
    }
    let mut reader = NsReader::from_str(div);
    let mut level = 0usize;
    let mut closed = false;
    loop {
        let at = reader.buffer_position() as usize;
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (Ns::of(&ns), event),
            Err(err) => return Err((reader.error_position() as usize, err.to_string())),
        };
        if level == 0 && !matches!(event, Event::Eof) {
            let is_div = matches!(&event, Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "div");
            if closed || at != 0 || !is_div {
                return Err((
                    at,
                    "the narrative must be one div element, with nothing before or after it".into(),
                ));
            }
            if ns != Ns::Xhtml {
                return Err((
                    at,
                    format!("the div must declare its namespace: <div xmlns=\"{XHTML_NS}\">"),
                ));
            }
        }
        match event {
            Event::Start(e) => {
                check_xhtml_element(&reader, &e, &ns).map_err(|m| (at, m))?;
                level += 1;
            }
            Event::Empty(e) => {
                check_xhtml_element(&reader, &e, &ns).map_err(|m| (at, m))?;
                closed |= level == 0;
            }
            Event::End(_) => {
                level = level.saturating_sub(1);
                closed |= level == 0;
            }
            Event::GeneralRef(r) => check_reference(&r).map_err(|m| (at, m))?,
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Decl(_) => return Err((at, "an XML declaration is not allowed here".into())),
            Event::DocType(_) => return Err((at, "a DOCTYPE is not allowed".into())),
            Event::Eof => break,
        }
    }
    if closed {
        Ok(())
    } else {
        Err((div.len(), "the div element is not closed".into()))
    }
}

/// An element inside the narrative: its prefixes declared, its attributes well-formed.
fn check_xhtml_element(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    ns: &Ns,
) -> Result<(), String> {
    if let Ns::Undeclared(prefix) = ns {
        return Err(format!(
            "the prefix {prefix} of <{}> is not declared",
            e.name().0
        ));
    }
    for attribute in e.attributes() {
        let attribute = attribute.map_err(|err| format!("in <{}>: {err}", e.name().0))?;
        if let (ResolveResult::Unknown(prefix), _) =
            reader.resolver().resolve_attribute(attribute.key)
        {
            return Err(format!(
                "the prefix {prefix} of attribute {} is not declared",
                attribute.key.0
            ));
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| format!("attribute {}: {err}", attribute.key.0))?;
        if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!(
                "the character U+{:04X} is not allowed in XML",
                u32::from(c)
            ));
        }
    }
    Ok(())
}

/// An entity or character reference in text: only XML's predefined entities.
fn check_reference(r: &BytesRef<'_>) -> Result<(), String> {
    match r.resolve_char_ref() {
        Ok(Some(c)) if is_xml_char(c) => Ok(()),
        Ok(Some(c)) => Err(format!(
            "&{}; refers to U+{:04X}, not allowed in XML",
            &**r,
            u32::from(c)
        )),
        Ok(None) if matches!(&**r, "lt" | "gt" | "amp" | "apos" | "quot") => Ok(()),
        Ok(None) => Err(format!(
            "the entity &{}; is not defined (XML predefines only lt, gt, amp, apos and quot)",
            &**r
        )),
        Err(err) => Err(format!("&{};: {err}", &**r)),
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// The namespace an element or attribute name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ns {
    Fhir,
    Xhtml,
    Other(String),
    None,
    Undeclared(String),
}

impl Ns {
    fn of(resolved: &ResolveResult<'_>) -> Ns {
        match resolved {
            ResolveResult::Bound(ns) if ns.0 == FHIR_NS => Ns::Fhir,
            ResolveResult::Bound(ns) if ns.0 == XHTML_NS => Ns::Xhtml,
            ResolveResult::Bound(ns) => Ns::Other(ns.0.to_owned()),
            ResolveResult::Unbound => Ns::None,
            ResolveResult::Unknown(prefix) => Ns::Undeclared(prefix.clone()),
        }
    }
}

/// One element being read.
struct Frame {
    /// The element as its parent knows it (`None` for a resource: the root, or the one
    /// inside a `contained`).
    info: Option<ElementInfo>,
    /// The length of the path before this element's segment.
    path_len: usize,
    kind: Kind,
}

enum Kind {
    /// A resource (`resource`), data type or backbone element: its attributes (`id`,
    /// `url`) and children so far.
    Object {
        ty: &'static str,
        resource: bool,
        attributes: Vec<(ElementInfo, String)>,
        fields: Vec<Field>,
    },
    /// A primitive: its value, id and extensions.
    Primitive {
        value: Option<Value>,
        id: Option<String>,
        extensions: Vec<Value>,
    },
    /// An element of type `Resource`: the one resource inside.
    Holder {
        resource: Option<Map<String, Value>>,
    },
}

/// The values read so far of one child element.
struct Field {
    info: ElementInfo,
    items: Vec<Item>,
}

/// One value read: a JSON value, or a primitive's value and `_name` object.
enum Item {
    Value(Value),
    Primitive(Option<Value>, Option<Map<String, Value>>),
}

/// What an element being opened is, as its parent says.
#[derive(Clone, Copy)]
enum Plan {
    Root,
    Unknown(&'static str),
    Element {
        info: ElementInfo,
        count: usize,
        parent: &'static str,
        resource: bool,
    },
    Extension(usize),
    Contained(bool),
}

struct Parser<'i> {
    text: &'i str,
    reader: NsReader<&'i [u8]>,
    max_depth: usize,
    stack: Vec<Frame>,
    /// The element path, for errors (`Patient.name[0].given[1]`).
    path: String,
    result: Option<Map<String, Value>>,
    /// Where the event being handled starts (a byte offset).
    at: usize,
}

impl<'i> Parser<'i> {
    fn run(mut self) -> Result<Map<String, Value>, MappingError> {
        loop {
            self.at = self.reader.buffer_position() as usize;
            let (ns, event) = match self.reader.read_resolved_event() {
                Ok((ns, event)) => (Ns::of(&ns), event),
                Err(err) => {
                    let at = self.reader.error_position() as usize;
                    return Err(self.fail_at(at, err));
                }
            };
            match event {
                Event::Start(e) => self.open(&ns, &e, false)?,
                Event::Empty(e) => self.open(&ns, &e, true)?,
                Event::End(_) => self.close()?,
                Event::Text(t) => {
                    let text: &str = &t;
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
                        return Err(self.misplaced_text(text));
                    }
                }
                Event::GeneralRef(r) => return Err(self.misplaced_text(&format!("&{};", &*r))),
                Event::CData(_) => return Err(self.misplaced_text("<![CDATA[")),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(d) => self.declaration(&d)?,
                Event::DocType(_) => {
                    return Err(
                        self.fail("a DOCTYPE is not allowed (no DTD, no entity declarations)")
                    );
                }
                Event::Eof => break,
            }
        }
        if let Some(frame) = self.stack.last() {
            let name = frame.info.map_or("the resource", |i| i.name);
            return Err(self.fail(format!("the document ends inside {name}")));
        }
        match self.result.take() {
            Some(resource) => Ok(resource),
            None => Err(self.fail("the document holds no resource element")),
        }
    }

    fn misplaced_text(&self, text: &str) -> MappingError {
        let shown: String = text.trim().chars().take(40).collect();
        let place = match self.stack.last() {
            None => "outside the resource element".to_owned(),
            Some(frame) => format!("in {}", frame.info.map_or("a resource", |i| i.name)),
        };
        self.fail(format!(
            "text is not allowed {place} (only the narrative div holds text): {shown:?}"
        ))
    }

    fn declaration(&self, decl: &BytesDecl<'_>) -> Result<(), MappingError> {
        if self.at != 0 {
            return Err(self.fail("the XML declaration must come first"));
        }
        match decl.version() {
            Ok(v) if v == "1.0" => {}
            Ok(v) => return Err(self.fail(format!("XML version {v} is not supported (only 1.0)"))),
            Err(err) => return Err(self.fail(err)),
        }
        match decl.encoding() {
            None => Ok(()),
            Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("utf-8") => Ok(()),
            Some(Ok(encoding)) => {
                Err(self.fail(format!("the document must be UTF-8, not {encoding}")))
            }
            Some(Err(err)) => Err(self.fail(err)),
        }
    }

    fn fail(&self, message: impl Display) -> MappingError {
        self.fail_at(self.at, message)
    }

    fn fail_at(&self, at: usize, message: impl Display) -> MappingError {
        let (line, column) = line_column(self.text.as_bytes(), at);
        let place = if self.path.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.path)
        };
        MappingError::Malformed(format!(
            "XML line {line}, column {column}{place}: {message}"
        ))
    }

    fn expect_ns(&self, ns: &Ns, want: &Ns, name: &str) -> Result<(), MappingError> {
        if ns == want {
            return Ok(());
        }
        let want = if *want == Ns::Xhtml {
            XHTML_NS
        } else {
            FHIR_NS
        };
        Err(self.fail(match ns {
            Ns::Undeclared(prefix) => format!("the prefix {prefix} of <{name}> is not declared"),
            Ns::None => {
                format!("<{name}> is in no namespace; it belongs in {want} (xmlns=\"{want}\")")
            }
            Ns::Fhir => format!("<{name}> is in {FHIR_NS}; it belongs in {want}"),
            Ns::Xhtml => format!("<{name}> is in {XHTML_NS}; it belongs in {want}"),
            Ns::Other(other) => {
                format!("<{name}> is in the namespace {other}; it belongs in {want}")
            }
        }))
    }

    fn open(&mut self, ns: &Ns, e: &BytesStart<'i>, empty: bool) -> Result<(), MappingError> {
        let local = e.local_name();
        let local: &str = local.as_ref();
        if self.stack.len() >= self.max_depth {
            return Err(MappingError::TooDeep {
                max_depth: self.max_depth,
            });
        }
        let plan = match self.stack.last().map(|f| &f.kind) {
            None => Plan::Root,
            Some(Kind::Object {
                ty,
                resource,
                fields,
                ..
            }) => match schema::element_info(ty, local) {
                None => Plan::Unknown(ty),
                Some(info) => Plan::Element {
                    info,
                    count: fields
                        .iter()
                        .find(|f| f.info.name == info.name)
                        .map_or(0, |f| f.items.len()),
                    parent: ty,
                    resource: *resource,
                },
            },
            Some(Kind::Primitive { extensions, .. }) => Plan::Extension(extensions.len()),
            Some(Kind::Holder { resource }) => Plan::Contained(resource.is_some()),
        };
        let path_len = self.path.len();
        let frame = match plan {
            Plan::Root => {
                if self.result.is_some() {
                    return Err(self.fail("nothing may follow the resource element"));
                }
                self.expect_ns(ns, &Ns::Fhir, local)?;
                let Some(ty) = resource_type(local) else {
                    return Err(MappingError::UnknownType(local.to_owned()));
                };
                self.attributes(e, &[])?;
                self.path.push_str(ty);
                Frame {
                    info: None,
                    path_len,
                    kind: object(ty, true, Vec::new()),
                }
            }
            Plan::Unknown(ty) => {
                self.expect_ns(ns, &Ns::Fhir, local)?;
                return Err(self.fail(format!("unknown element <{local}> in {ty}")));
            }
            Plan::Element {
                info,
                count,
                parent,
                resource,
            } => {
                let want = if info.ty == "xhtml" {
                    Ns::Xhtml
                } else {
                    Ns::Fhir
                };
                self.expect_ns(ns, &want, local)?;
                if is_attribute(parent, resource, info.name) {
                    return Err(self.fail(format!(
                        "{parent}.{0} is an attribute in XML (<… {0}=\"…\">), not an element",
                        info.name
                    )));
                }
                if count > 0 && !info.repeats {
                    return Err(self.fail(format!(
                        "<{}> appears more than once in {parent}; it does not repeat",
                        info.name
                    )));
                }
                push_segment(&mut self.path, info, count);
                if info.ty == "xhtml" {
                    let div = self.read_div(empty)?;
                    self.add(info, Item::Value(Value::String(div)));
                    self.path.truncate(path_len);
                    return Ok(());
                }
                let kind = if info.ty == "Resource" {
                    self.attributes(e, &[])?;
                    Kind::Holder { resource: None }
                } else if schema::is_primitive(info.ty) {
                    let mut value = None;
                    let mut id = None;
                    for (name, text) in self.attributes(e, &["value", "id"])? {
                        if name == "value" {
                            value =
                                Some(primitive_value(info.ty, &text).map_err(|m| self.fail(m))?);
                        } else {
                            id = Some(text);
                        }
                    }
                    Kind::Primitive {
                        value,
                        id,
                        extensions: Vec::new(),
                    }
                } else {
                    let attributes = self.object_attributes(e, info.ty)?;
                    object(info.ty, false, attributes)
                };
                Frame {
                    info: Some(info),
                    path_len,
                    kind,
                }
            }
            Plan::Extension(count) => {
                self.expect_ns(ns, &Ns::Fhir, local)?;
                if local != "extension" {
                    return Err(self.fail(format!(
                        "<{local}> is not allowed in a primitive element (only <extension>)"
                    )));
                }
                let info = EXTENSION;
                let attributes = self.object_attributes(e, "Extension")?;
                push_segment(&mut self.path, info, count);
                Frame {
                    info: Some(info),
                    path_len,
                    kind: object("Extension", false, attributes),
                }
            }
            Plan::Contained(full) => {
                if full {
                    return Err(self.fail("an element of type Resource holds one resource"));
                }
                self.expect_ns(ns, &Ns::Fhir, local)?;
                let Some(ty) = resource_type(local) else {
                    return Err(self.fail(format!("<{local}> is not an R4 resource type")));
                };
                self.attributes(e, &[])?;
                Frame {
                    info: None,
                    path_len,
                    kind: object(ty, true, Vec::new()),
                }
            }
        };
        self.stack.push(frame);
        if empty {
            self.close()?;
        }
        Ok(())
    }

    /// The attributes of `e` (namespace declarations and `xsi:` ones left out), each of
    /// which must be one of `allowed`.
    fn attributes(
        &self,
        e: &BytesStart<'_>,
        allowed: &[&'static str],
    ) -> Result<Vec<(&'static str, String)>, MappingError> {
        let mut out = Vec::new();
        for attribute in e.attributes() {
            let attribute = attribute.map_err(|err| self.fail(err))?;
            if attribute.key.as_namespace_binding().is_some() {
                continue;
            }
            let (resolved, local) = self.reader.resolver().resolve_attribute(attribute.key);
            match Ns::of(&resolved) {
                Ns::None => {}
                Ns::Other(ns) if ns == XSI_NS => continue,
                Ns::Undeclared(prefix) => {
                    return Err(self.fail(format!(
                        "the prefix {prefix} of attribute {} is not declared",
                        attribute.key.0
                    )));
                }
                _ => {
                    return Err(self.fail(format!(
                        "attribute {} is not allowed on <{}>",
                        attribute.key.0,
                        e.name().0
                    )));
                }
            }
            let local: &str = local.as_ref();
            let Some(name) = allowed.iter().find(|a| **a == local) else {
                return Err(self.fail(format!(
                    "attribute {local} is not allowed on <{}>",
                    e.name().0
                )));
            };
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| self.fail(format!("attribute {local}: {err}")))?;
            if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                return Err(self.fail(format!(
                    "attribute {local}: the character U+{:04X} is not allowed in XML",
                    u32::from(c)
                )));
            }
            out.push((*name, value.into_owned()));
        }
        Ok(out)
    }

    /// The attributes of a data type or backbone element `e` of type `ty`: `id`, and the
    /// `url` of an extension.
    fn object_attributes(
        &self,
        e: &BytesStart<'_>,
        ty: &'static str,
    ) -> Result<Vec<(ElementInfo, String)>, MappingError> {
        let allowed: &[&'static str] = if ty == "Extension" {
            &["id", "url"]
        } else {
            &["id"]
        };
        let mut out = Vec::new();
        for (name, value) in self.attributes(e, allowed)? {
            let Some(info) = schema::element_info(ty, name) else {
                return Err(self.fail(format!("{ty} has no {name}")));
            };
            out.push((info, value));
        }
        Ok(out)
    }

    /// Reads the narrative `div` whose start tag was just read, and gives its exact text.
    fn read_div(&mut self, empty: bool) -> Result<String, MappingError> {
        let start = self.at;
        if !empty {
            self.skip_div_content()?;
        }
        let end = self.reader.buffer_position() as usize;
        let Some(div) = self.text.get(start..end) else {
            return Err(self.fail("the narrative div could not be located"));
        };
        check_xhtml(div).map_err(|(at, problem)| self.fail_at(start + at, problem))?;
        Ok(div.to_owned())
    }

    /// Reads on to the end tag of the narrative `div`, under the depth limit.
    fn skip_div_content(&mut self) -> Result<(), MappingError> {
        // The div is at depth `stack.len() + 1`, its children one deeper for each level.
        let base = self.stack.len() + 1;
        let mut level = 0usize;
        loop {
            let at = self.reader.buffer_position() as usize;
            match self.reader.read_event() {
                Ok(Event::Start(_)) => {
                    level += 1;
                    if base + level > self.max_depth {
                        return Err(MappingError::TooDeep {
                            max_depth: self.max_depth,
                        });
                    }
                }
                Ok(Event::Empty(_)) if base + level + 1 > self.max_depth => {
                    return Err(MappingError::TooDeep {
                        max_depth: self.max_depth,
                    });
                }
                Ok(Event::End(_)) if level == 0 => return Ok(()),
                Ok(Event::End(_)) => level -= 1,
                Ok(Event::Eof) => {
                    return Err(self.fail_at(at, "the document ends inside the narrative div"));
                }
                Ok(_) => {}
                Err(err) => {
                    let at = self.reader.error_position() as usize;
                    return Err(self.fail_at(at, err));
                }
            }
        }
    }

    /// Adds a child value to the object on top of the stack.
    fn add(&mut self, info: ElementInfo, item: Item) {
        if let Some(Frame {
            kind: Kind::Object { fields, .. },
            ..
        }) = self.stack.last_mut()
        {
            push_item(fields, info, item);
        }
    }

    /// Closes the element on top of the stack and hands its value to its parent.
    fn close(&mut self) -> Result<(), MappingError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.fail("an end tag without its start tag"));
        };
        let name = frame.info.map_or("the resource", |i| i.name);
        let item = match frame.kind {
            Kind::Object {
                ty,
                resource,
                attributes,
                fields,
            } => {
                if !resource && attributes.is_empty() && fields.is_empty() {
                    return Err(self.fail(format!("<{name}> is empty")));
                }
                Item::Value(Value::Object(finish_object(
                    ty, resource, attributes, fields,
                )))
            }
            Kind::Primitive {
                value,
                id,
                extensions,
            } => {
                if value.is_none() && id.is_none() && extensions.is_empty() {
                    return Err(self.fail(format!(
                        "<{name}> has neither a value attribute nor extensions"
                    )));
                }
                let mut extension = Map::new();
                if let Some(id) = id {
                    extension.insert("id".into(), Value::String(id));
                }
                if !extensions.is_empty() {
                    extension.insert("extension".into(), Value::Array(extensions));
                }
                Item::Primitive(value, (!extension.is_empty()).then_some(extension))
            }
            Kind::Holder { resource } => match resource {
                Some(resource) => Item::Value(Value::Object(resource)),
                None => return Err(self.fail(format!("<{name}> holds no resource"))),
            },
        };
        self.path.truncate(frame.path_len);
        let Some(parent) = self.stack.last_mut() else {
            if let Item::Value(Value::Object(resource)) = item {
                self.result = Some(resource);
            }
            return Ok(());
        };
        match (&mut parent.kind, frame.info, item) {
            (Kind::Primitive { extensions, .. }, _, Item::Value(extension)) => {
                extensions.push(extension);
            }
            (Kind::Holder { resource }, _, Item::Value(Value::Object(inner))) => {
                *resource = Some(inner);
            }
            (Kind::Object { fields, .. }, Some(info), item) => push_item(fields, info, item),
            _ => return Err(self.fail("an element its parent cannot hold")),
        }
        Ok(())
    }
}

fn push_item(fields: &mut Vec<Field>, info: ElementInfo, item: Item) {
    match fields.iter_mut().find(|f| f.info.name == info.name) {
        Some(field) => field.items.push(item),
        None => fields.push(Field {
            info,
            items: vec![item],
        }),
    }
}

fn object(ty: &'static str, resource: bool, attributes: Vec<(ElementInfo, String)>) -> Kind {
    Kind::Object {
        ty,
        resource,
        attributes,
        fields: Vec::new(),
    }
}

/// The JSON object of an element read: `resourceType` first for a resource, then its
/// members in definition order, a primitive's `_name` after its `name`.
fn finish_object(
    ty: &'static str,
    resource: bool,
    attributes: Vec<(ElementInfo, String)>,
    fields: Vec<Field>,
) -> Map<String, Value> {
    let mut members: Vec<Field> = attributes
        .into_iter()
        .map(|(info, value)| Field {
            info,
            items: vec![Item::Value(Value::String(value))],
        })
        .chain(fields)
        .collect();
    members.sort_by_key(|f| f.info.position);
    let mut map = Map::new();
    if resource {
        map.insert("resourceType".into(), Value::String(ty.into()));
    }
    for field in members {
        insert_field(&mut map, field);
    }
    map
}

fn insert_field(map: &mut Map<String, Value>, field: Field) {
    let name = field.info.name;
    let mut values = Vec::with_capacity(field.items.len());
    let mut extensions = Vec::with_capacity(field.items.len());
    for item in field.items {
        match item {
            Item::Value(value) => {
                values.push(value);
                extensions.push(Value::Null);
            }
            Item::Primitive(value, extension) => {
                values.push(value.unwrap_or(Value::Null));
                extensions.push(extension.map_or(Value::Null, Value::Object));
            }
        }
    }
    let some = |items: &[Value]| items.iter().any(|v| !v.is_null());
    let (has_values, has_extensions) = (some(&values), some(&extensions));
    if field.info.repeats {
        if has_values {
            map.insert(name.into(), Value::Array(values));
        }
        if has_extensions {
            map.insert(format!("_{name}"), Value::Array(extensions));
        }
    } else {
        if let Some(value) = values.into_iter().next().filter(|_| has_values) {
            map.insert(name.into(), value);
        }
        if let Some(extension) = extensions.into_iter().next().filter(|_| has_extensions) {
            map.insert(format!("_{name}"), extension);
        }
    }
}

/// The JSON value of a primitive's `value` attribute, by the primitive's type.
fn primitive_value(ty: &str, text: &str) -> Result<Value, String> {
    match ty {
        "boolean" => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not a boolean (true or false)")),
        },
        "integer" | "unsignedInt" | "positiveInt" => {
            let (low, high) = match ty {
                "integer" => (i64::from(i32::MIN), i64::from(i32::MAX)),
                "unsignedInt" => (0, i64::from(i32::MAX)),
                _ => (1, i64::from(i32::MAX)),
            };
            let digits = text.strip_prefix('-').unwrap_or(text);
            let lexical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !lexical {
                return Err(format!("{text:?} is not a valid {ty} (a whole number)"));
            }
            match text.parse::<i64>() {
                Ok(n) if (low..=high).contains(&n) => number(text),
                _ => Err(format!(
                    "{text} is outside the range of a {ty} ({low} to {high})"
                )),
            }
        }
        "decimal" => {
            if is_decimal(text) {
                number(text)
            } else {
                Err(format!("{text:?} is not a valid decimal"))
            }
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// A JSON number with exactly this text.
fn number(text: &str) -> Result<Value, String> {
    Number::from_str(text)
        .map(Value::Number)
        .map_err(|err| format!("{text:?} is not a number: {err}"))
}

/// FHIR's decimal: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(digits)
        && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// Line and column (both from 1; the column in characters) of byte offset `at`.
fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::json::parse_resource;

    fn shared(dir: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fhir-data")
            .join(dir)
    }

    /// The shared spec examples, by file name.
    fn examples() -> Vec<(String, Map<String, Value>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(shared("r4-examples")).expect("shared/fhir-data/r4-examples")
        {
            let path = entry.expect("readable dir").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let bytes = std::fs::read(&path).expect("readable file");
            let resource = parse_resource(&bytes, &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((name, resource.into_object()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(out.len() > 500, "found {} examples", out.len());
        out
    }

    fn round_trip(name: &str, resource: &Map<String, Value>) {
        for pretty in [false, true] {
            round_trip_in(name, resource, pretty);
        }
    }

    /// JSON → XML → JSON gives the same JSON value.
    fn round_trip_in(name: &str, resource: &Map<String, Value>, pretty: bool) {
        {
            let xml = to_xml(resource, pretty).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = from_xml(xml.as_bytes(), 64)
                .unwrap_or_else(|e| panic!("{name} (pretty {pretty}): {e}\n{xml}"));
            if back != *resource {
                panic!(
                    "{name} (pretty {pretty}) differs:\n{}\n{}",
                    serde_json::to_string(resource).unwrap_or_default(),
                    serde_json::to_string(&back).unwrap_or_default()
                );
            }
        }
    }

    #[test]
    fn every_example_round_trips() {
        for (name, resource) in examples() {
            round_trip(&name, &resource);
        }
    }

    #[test]
    fn every_synthea_resource_round_trips() {
        let started = std::time::Instant::now();
        let mut count = 0;
        let mut files: Vec<PathBuf> = std::fs::read_dir(shared("synthea"))
            .expect("shared/fhir-data/synthea")
            .map(|e| e.expect("readable dir").path())
            .collect();
        files.sort();
        // Compact for one file, pretty for the next: both forms over some 13 000 resources
        // each, in half the time (the spec examples above take both forms each).
        for (i, path) in files.into_iter().enumerate() {
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("readable file"))
                .read_to_string(&mut text)
                .expect("gzip'd JSON");
            let bundle: Value = serde_json::from_str(&text).expect("a JSON bundle");
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let Some(Value::Object(resource)) = entry.get("resource") else {
                    panic!("{path:?}: an entry without its resource")
                };
                round_trip_in(&format!("{path:?}"), resource, i % 2 == 1);
                count += 1;
            }
        }
        assert!(count > 20_000, "{count} resources");
        eprintln!("{count} Synthea resources in {:?}", started.elapsed());
    }

    /// Checks, with a reader of its own, that `xml` is well-formed and that the children
    /// of every element come in definition order.
    fn assert_definition_order(name: &str, xml: &str) {
        enum Level {
            Object(&'static str, usize),
            Primitive,
            Holder,
        }
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<Level> = Vec::new();
        loop {
            let event = reader
                .read_event()
                .unwrap_or_else(|e| panic!("{name}: not well-formed: {e}"));
            let (e, empty) = match event {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => {
                    stack.pop();
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let local = e.local_name().as_ref().to_owned();
            let next = match stack.last_mut() {
                None | Some(Level::Holder) => Level::Object(
                    resource_type(&local).unwrap_or_else(|| panic!("{name}: <{local}>")),
                    0,
                ),
                Some(Level::Primitive) => {
                    assert_eq!(local, "extension", "{name}");
                    Level::Object("Extension", 0)
                }
                Some(Level::Object(ty, last)) => {
                    let info = schema::element_info(ty, &local)
                        .unwrap_or_else(|| panic!("{name}: <{local}> in {ty}"));
                    assert!(
                        info.position >= *last,
                        "{name}: <{local}> comes after a later element of {ty}"
                    );
                    *last = info.position;
                    match info.ty {
                        "xhtml" => {
                            if !empty {
                                reader.read_to_end(e.name()).expect("the div ends");
                            }
                            continue;
                        }
                        "Resource" => Level::Holder,
                        t if schema::is_primitive(t) => Level::Primitive,
                        t => Level::Object(t, 0),
                    }
                }
            };
            if !empty {
                stack.push(next);
            }
        }
        assert!(stack.is_empty(), "{name}: unclosed elements");
    }

    #[test]
    fn elements_follow_the_definition_order() {
        let examples = examples();
        for (name, resource) in &examples {
            for pretty in [false, true] {
                let xml = to_xml(resource, pretty).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_definition_order(name, &xml);
            }
        }
        // The spec's Patient example, against the order of the Patient page.
        let Some((_, patient)) = examples.iter().find(|(n, _)| n == "Patient-example.json") else {
            panic!("Patient-example.json")
        };
        let xml = to_xml(patient, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(xml.starts_with(
            "<Patient xmlns=\"http://hl7.org/fhir\">\n  <id value=\"example\"/>\n  <text>\n"
        ));
        let mut top: Vec<String> = Vec::new();
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0;
        loop {
            match reader.read_event().expect("well-formed") {
                Event::Start(e) => {
                    if depth == 1 {
                        top.push(e.local_name().as_ref().to_owned());
                    }
                    depth += 1;
                    if e.local_name().as_ref() == "div" {
                        reader.read_to_end(e.name()).expect("the div ends");
                        depth -= 1;
                    }
                }
                Event::Empty(e) if depth == 1 => top.push(e.local_name().as_ref().to_owned()),
                Event::End(_) => depth -= 1,
                Event::Eof => break,
                _ => {}
            }
        }
        top.dedup();
        assert_eq!(
            top,
            [
                "id",
                "text",
                "identifier",
                "active",
                "name",
                "telecom",
                "gender",
                "birthDate",
                "deceasedBoolean",
                "address",
                "contact",
                "managingOrganization"
            ]
        );
        // The narrative is written verbatim.
        let div = patient["text"]["div"].as_str().unwrap_or_default();
        assert!(div.len() > 100 && xml.contains(div));
    }

    #[test]
    fn pretty_and_compact_forms() {
        let patient: Map<String, Value> = serde_json::from_str(
            r#"{"resourceType": "Patient", "id": "p1",
                "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Ann &amp; Bob</p>\n  </div>"},
                "name": [{"id": "n1", "given": ["Ann", null],
                          "_given": [null, {"id": "g2", "extension": [{"url": "http://example.org/x", "valueString": "B\"\n\t<&>"}]}]}],
                "multipleBirthInteger": 2}"#,
        )
        .expect("JSON");
        let pretty = to_xml(&patient, true).expect("XML");
        assert_eq!(
            pretty,
            "<Patient xmlns=\"http://hl7.org/fhir\">
  <id value=\"p1\"/>
  <text>
    <status value=\"generated\"/>
    <div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Ann &amp; Bob</p>
  </div>
  </text>
  <name id=\"n1\">
    <given value=\"Ann\"/>
    <given id=\"g2\">
      <extension url=\"http://example.org/x\">
        <valueString value=\"B&quot;&#10;&#9;&lt;&amp;&gt;\"/>
      </extension>
    </given>
  </name>
  <multipleBirthInteger value=\"2\"/>
</Patient>"
        );
        let compact = to_xml(&patient, false).expect("XML");
        assert_eq!(
            compact,
            pretty
                .replace("\n  ", "")
                .replace("\n", "")
                .replace("  ", "")
                .replace("</p></div>", "</p>\n  </div>")
        );
        for xml in [&pretty, &compact] {
            assert_eq!(from_xml(xml.as_bytes(), 64).as_ref(), Ok(&patient));
        }
    }

    /// The error from reading `xml` (with a depth limit of 64).
    fn error(xml: &str) -> String {
        match from_xml(xml.as_bytes(), 64) {
            Ok(json) => panic!("accepted {xml}: {json:?}"),
            Err(e) => e.to_string(),
        }
    }

    const PATIENT: &str = r#"<Patient xmlns="http://hl7.org/fhir">"#;

    #[test]
    fn malformed_xml_is_refused_with_where() {
        let cases: &[(&str, &str)] = &[
            ("", "holds no resource"),
            ("   ", "holds no resource"),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value="x"></Patient>"#,
                "expected `</id>`, but `</Patient>` was found",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value="x"/>"#,
                "ends inside",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value=x/></Patient>"#,
                "line 1",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value="a&b"/></Patient>"#,
                "line 1",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value="a" value="b"/></Patient>"#,
                "line 1",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"/><Patient xmlns="http://hl7.org/fhir"/>"#,
                "nothing may follow",
            ),
            (
                "<Patient xmlns=\"http://hl7.org/fhir\">\n</Observation>",
                "line 2",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Patient xmlns=\"http://hl7.org/fhir\"/>",
                "UTF-8",
            ),
            (
                "<?xml version=\"1.1\"?><Patient xmlns=\"http://hl7.org/fhir\"/>",
                "version 1.1",
            ),
            (
                "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"a\u{1}\"/></Patient>",
                "U+0001",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><id value="a&#1;"/></Patient>"#,
                "line 1",
            ),
        ];
        for (xml, expected) in cases {
            let e = error(xml);
            assert!(e.contains(expected), "{xml}: {e}");
            assert!(e.contains("XML line"), "{xml}: {e}");
        }
        let latin1 = b"<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"M\xfcller\"/></name></Patient>";
        let e = from_xml(latin1, 64).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("malformed document: XML line 1, column 60: the document is not UTF-8".into())
        );
    }

    #[test]
    fn namespaces_and_unknown_elements_are_refused() {
        let cases: &[(&str, &str)] = &[
            (
                "<Patient><id value=\"x\"/></Patient>",
                "<Patient> is in no namespace",
            ),
            (
                r#"<Patient xmlns="http://example.org/fhir"/>"#,
                "in the namespace http://example.org/fhir",
            ),
            (
                r#"<f:Patient xmlns:f="http://hl7.org/fhir"><x:id xmlns:x="urn:x" value="1"/></f:Patient>"#,
                "<id> is in the namespace urn:x",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><x:id value="1"/></Patient>"#,
                "prefix x",
            ),
            (
                "<Patient xmlns=\"http://hl7.org/fhir\">\n  <nickname value=\"x\"/>\n</Patient>",
                "XML line 2, column 3 (Patient): unknown element <nickname> in Patient",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name><given value="a"/><nick value="b"/></name></Patient>"#,
                "(Patient.name[0]): unknown element <nick> in HumanName",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male" foo="1"/></Patient>"#,
                "attribute foo is not allowed on <gender>",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir" id="x"/>"#,
                "attribute id is not allowed",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir" xml:lang="en"/>"#,
                "attribute xml:lang is not allowed",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name><id value="n"/></name></Patient>"#,
                "HumanName.id is an attribute",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><extension><url value="http://x"/></extension></Patient>"#,
                "Extension.url is an attribute",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/></Patient>"#,
                "<gender> appears more than once",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"><id value="x"/></gender></Patient>"#,
                "only <extension>",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name/></Patient>"#,
                "(Patient.name[0]): <name> is empty",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><gender/></Patient>"#,
                "(Patient.gender): <gender> has neither a value attribute nor extensions",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><contained/></Patient>"#,
                "holds no resource",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><contained><Basic/><Basic/></contained></Patient>"#,
                "holds one resource",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><contained><HumanName/></contained></Patient>"#,
                "<HumanName> is not an R4 resource type",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div><p>x</p></div></text></Patient>"#,
                "<div> is in http://hl7.org/fhir; it belongs in http://www.w3.org/1999/xhtml",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml"><text><status value="generated"/><h:div><p>x</p></h:div></text></Patient>"#,
                "the div must declare its namespace",
            ),
        ];
        for (xml, expected) in cases {
            let e = error(xml);
            assert!(e.contains(expected), "{xml}: {e}");
        }
        assert_eq!(
            from_xml(br#"<Nothing xmlns="http://hl7.org/fhir"/>"#, 64),
            Err(MappingError::UnknownType("Nothing".into()))
        );
        assert_eq!(
            from_xml(br#"<HumanName xmlns="http://hl7.org/fhir"/>"#, 64),
            Err(MappingError::UnknownType("HumanName".into()))
        );
    }

    #[test]
    fn entities_and_doctypes_are_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol3;"/></name></Patient>"#;
        assert!(error(laughs).contains("XML line 2, column 1: a DOCTYPE is not allowed"));
        let external = r#"<!DOCTYPE Patient SYSTEM "file:///etc/passwd"><Patient xmlns="http://hl7.org/fhir"/>"#;
        assert!(error(external).contains("DOCTYPE"));
        let cases: &[(&str, &str)] = &[
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol;"/></name></Patient>"#,
                "lol",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir">&lol;</Patient>"#,
                "text is not allowed in a resource",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">a&nbsp;b</div></text></Patient>"#,
                "the entity &nbsp; is not defined",
            ),
            (
                r#"<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">a&#0;b</div></text></Patient>"#,
                "(Patient.text.div): &#0;: invalid character reference",
            ),
        ];
        for (xml, expected) in cases {
            let e = error(xml);
            assert!(e.contains(expected), "{xml}: {e}");
        }
    }

    #[test]
    fn values_must_fit_their_type() {
        let cases: &[(&str, &str)] = &[
            (
                "<active value=\"yes\"/>",
                "(Patient.active): \"yes\" is not a boolean",
            ),
            ("<active value=\"True\"/>", "is not a boolean"),
            ("<active value=\"\"/>", "is not a boolean"),
            (
                "<multipleBirthInteger value=\"1.5\"/>",
                "\"1.5\" is not a valid integer",
            ),
            (
                "<multipleBirthInteger value=\"+1\"/>",
                "not a valid integer",
            ),
            (
                "<multipleBirthInteger value=\"01\"/>",
                "not a valid integer",
            ),
            (
                "<multipleBirthInteger value=\" 1\"/>",
                "not a valid integer",
            ),
            (
                "<multipleBirthInteger value=\"3000000000\"/>",
                "outside the range of a integer",
            ),
            (
                "<multipleBirthInteger value=\"99999999999999999999999\"/>",
                "outside the range",
            ),
            (
                "<telecom><rank value=\"0\"/></telecom>",
                "(Patient.telecom[0].rank): 0 is outside the range of a positiveInt",
            ),
        ];
        for (element, expected) in cases {
            let e = error(&format!("{PATIENT}{element}</Patient>"));
            assert!(e.contains(expected), "{element}: {e}");
        }
        for bad in [
            "1,5", "1.", ".5", "01.5", "1e", "NaN", "Infinity", "0x10", "1.5 ", "--1",
        ] {
            let xml = format!(
                r#"<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code><valueQuantity><value value="{bad}"/></valueQuantity></Observation>"#
            );
            let e = error(&xml);
            assert!(
                e.contains("(Observation.valueQuantity.value)")
                    && e.contains("is not a valid decimal"),
                "{bad}: {e}"
            );
        }
        // serde_json writes an exponent as `e+3`/`e-3`, from XML as from JSON; the digits
        // are kept as they are.
        for (good, kept) in [
            ("0", "0"),
            ("-0", "-0"),
            ("1.50", "1.50"),
            ("0.000001", "0.000001"),
            ("1e3", "1e+3"),
            ("-1.5E-10", "-1.5e-10"),
            (
                "123456789012345678901234567890.123",
                "123456789012345678901234567890.123",
            ),
        ] {
            let xml = format!(
                r#"<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code><valueQuantity><value value="{good}"/></valueQuantity></Observation>"#
            );
            let json = from_xml(xml.as_bytes(), 64).unwrap_or_else(|e| panic!("{good}: {e}"));
            let value = &json["valueQuantity"]["value"];
            assert!(value.is_number(), "{good}");
            assert_eq!(value.to_string(), kept);
        }
    }

    #[test]
    fn text_where_none_belongs_is_refused() {
        let cases: &[(&str, &str)] = &[
            ("hello", "text is not allowed in a resource"),
            (
                "<gender value=\"male\">male</gender>",
                "text is not allowed in gender",
            ),
            (
                "<name><family value=\"A\"/>B</name>",
                "text is not allowed in name",
            ),
            ("<name><![CDATA[x]]></name>", "text is not allowed in name"),
        ];
        for (inside, expected) in cases {
            let e = error(&format!("{PATIENT}{inside}</Patient>"));
            assert!(e.contains(expected), "{inside}: {e}");
        }
        assert!(
            error(&format!("text{PATIENT}</Patient>")).contains("outside the resource element")
        );
        assert!(
            error(&format!("{PATIENT}</Patient>text")).contains("outside the resource element")
        );
    }

    #[test]
    fn depth_is_limited() {
        // Extensions within extensions, 100 deep.
        let deep = format!(
            "{PATIENT}{}{}</Patient>",
            "<extension url=\"http://x\">".repeat(100),
            "</extension>".repeat(100)
        );
        assert_eq!(
            from_xml(deep.as_bytes(), 64),
            Err(MappingError::TooDeep { max_depth: 64 })
        );
        assert!(from_xml(deep.as_bytes(), 200).is_ok());
        // Within the narrative too.
        let div = format!(
            "{PATIENT}<text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">{}{}</div></text></Patient>",
            "<b>".repeat(100),
            "</b>".repeat(100)
        );
        assert_eq!(
            from_xml(div.as_bytes(), 64),
            Err(MappingError::TooDeep { max_depth: 64 })
        );
        assert!(from_xml(div.as_bytes(), 200).is_ok());
        let flat = format!("{PATIENT}<name><given value=\"a\"/></name></Patient>");
        assert!(from_xml(flat.as_bytes(), 3).is_ok());
        assert_eq!(
            from_xml(flat.as_bytes(), 2),
            Err(MappingError::TooDeep { max_depth: 2 })
        );
    }

    #[test]
    fn damaged_documents_never_panic() {
        let Some((_, patient)) = examples()
            .into_iter()
            .find(|(n, _)| n == "Patient-example.json")
        else {
            panic!("Patient-example.json")
        };
        let xml = to_xml(&patient, true).expect("XML");
        let bytes = xml.as_bytes();
        for cut in 0..bytes.len() {
            assert!(from_xml(&bytes[..cut], 64).is_err(), "cut at {cut}");
        }
        for at in (0..bytes.len()).step_by(3) {
            for b in [b'<', b'>', b'"', b'&', b'/', b'x', 0xC3] {
                let mut damaged = bytes.to_vec();
                damaged[at] = b;
                let _ = from_xml(&damaged, 64);
            }
        }
    }

    /// Reads `xml` and compares with `json`.
    fn reads_as(xml: &str, json: &str) {
        let expected: Map<String, Value> = serde_json::from_str(json).expect("JSON");
        let read = from_xml(xml.as_bytes(), 64).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Value::Object(read.clone()), Value::Object(expected.clone()));
        // And the JSON path's checks accept it.
        let checked = crate::json::check_resource(read, "").expect("structural rules");
        assert_eq!(crate::rules::check(&checked), vec![]);
        // Written back, it reads the same.
        let again = from_xml(to_xml(&expected, true).expect("XML").as_bytes(), 64).expect("read");
        assert_eq!(again, expected);
    }

    #[test]
    fn hand_written_documents_read_as_their_json() {
        // Declaration, BOM-free UTF-8, comments, a schema location, primitive ids and
        // extensions (one given only by its extension), a contained resource, attribute
        // whitespace: a literal newline is a space, a character reference is kept.
        reads_as(
            r##"<?xml version="1.0" encoding="UTF-8"?>
<!-- a patient -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <id value="pat-1"/>
  <meta>
    <lastUpdated value="2019-11-01T09:29:23.356+11:00"/>
  </meta>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml">
      <p>Pat &amp; <b>Smith</b> &lt;here&gt; &#169;</p>
    </div>
  </text>
  <contained>
    <Organization>
      <id value="org"/>
      <name value="Clinic"/>
    </Organization>
  </contained>
  <extension url="http://example.org/fhir/StructureDefinition/trusted">
    <valueBoolean value="true"/>
  </extension>
  <active value="true"/>
  <name id="n1">
    <!-- the family name first -->
    <family value="Smith"/>
    <given value="Pat"/>
    <given>
      <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
        <valueCode value="unknown"/>
      </extension>
    </given>
    <suffix value="a&#10;b
c"/>
  </name>
  <telecom>
    <system value="phone"/>
    <value value="555-0100"/>
    <rank value="1"/>
  </telecom>
  <gender value="female"/>
  <birthDate id="bd" value="1970-03-30">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1970-03-30T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
  <managingOrganization>
    <reference value="#org"/>
  </managingOrganization>
</Patient>
"##,
            r##"{"resourceType": "Patient", "id": "pat-1",
              "meta": {"lastUpdated": "2019-11-01T09:29:23.356+11:00"},
              "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">\n      <p>Pat &amp; <b>Smith</b> &lt;here&gt; &#169;</p>\n    </div>"},
              "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinic"}],
              "extension": [{"url": "http://example.org/fhir/StructureDefinition/trusted", "valueBoolean": true}],
              "active": true,
              "name": [{"id": "n1", "family": "Smith", "given": ["Pat", null],
                        "_given": [null, {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}],
                        "suffix": ["a\nb c"]}],
              "telecom": [{"system": "phone", "value": "555-0100", "rank": 1}],
              "gender": "female",
              "birthDate": "1970-03-30",
              "_birthDate": {"id": "bd", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1970-03-30T14:35:45-05:00"}]},
              "multipleBirthInteger": 2,
              "managingOrganization": {"reference": "#org"}}"##,
        );
        // An observation: choice elements by their full name, decimals keep their text.
        reads_as(
            r#"<Observation xmlns="http://hl7.org/fhir">
  <id value="glucose"/>
  <status value="final"/>
  <code>
    <coding>
      <system value="http://loinc.org"/>
      <code value="15074-8"/>
      <display value="Glucose [Moles/volume] in Blood"/>
    </coding>
  </code>
  <subject>
    <reference value="Patient/f001"/>
  </subject>
  <effectivePeriod>
    <start value="2013-04-02T09:30:10+01:00"/>
  </effectivePeriod>
  <valueQuantity>
    <value value="6.30"/>
    <unit value="mmol/l"/>
    <system value="http://unitsofmeasure.org"/>
    <code value="mmol/L"/>
  </valueQuantity>
  <referenceRange>
    <low>
      <value value="3.1E0"/>
      <unit value="mmol/l"/>
    </low>
    <high>
      <value value="6.2"/>
    </high>
  </referenceRange>
</Observation>"#,
            r#"{"resourceType": "Observation", "id": "glucose", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "15074-8", "display": "Glucose [Moles/volume] in Blood"}]},
              "subject": {"reference": "Patient/f001"},
              "effectivePeriod": {"start": "2013-04-02T09:30:10+01:00"},
              "valueQuantity": {"value": 6.30, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
              "referenceRange": [{"low": {"value": 3.1E0, "unit": "mmol/l"}, "high": {"value": 6.2}}]}"#,
        );
        // A bundle and a Parameters: resources inside elements of type Resource.
        reads_as(
            r#"<Bundle xmlns="http://hl7.org/fhir">
  <type value="searchset"/>
  <total value="1"/>
  <entry>
    <fullUrl value="http://example.org/fhir/Patient/1"/>
    <resource>
      <Patient>
        <id value="1"/>
        <deceasedBoolean value="false"/>
      </Patient>
    </resource>
    <search>
      <mode value="match"/>
      <score value="1.0"/>
    </search>
  </entry>
</Bundle>"#,
            r#"{"resourceType": "Bundle", "type": "searchset", "total": 1,
              "entry": [{"fullUrl": "http://example.org/fhir/Patient/1",
                         "resource": {"resourceType": "Patient", "id": "1", "deceasedBoolean": false},
                         "search": {"mode": "match", "score": 1.0}}]}"#,
        );
        reads_as(
            r#"<Parameters xmlns="http://hl7.org/fhir">
  <parameter>
    <name value="return"/>
    <resource>
      <Basic>
        <code>
          <text value="x"/>
        </code>
      </Basic>
    </resource>
  </parameter>
  <parameter>
    <name value="flag"/>
    <valueBoolean value="false"/>
    <part>
      <name value="n"/>
      <valueInteger value="-7"/>
    </part>
  </parameter>
</Parameters>"#,
            r#"{"resourceType": "Parameters",
              "parameter": [{"name": "return", "resource": {"resourceType": "Basic", "code": {"text": "x"}}},
                            {"name": "flag", "valueBoolean": false, "part": [{"name": "n", "valueInteger": -7}]}]}"#,
        );
    }

    #[test]
    fn a_byte_order_mark_and_children_out_of_order_are_accepted() {
        let xml = "\u{feff}<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"male\"/><id value=\"x\"/></Patient>";
        let json = from_xml(xml.as_bytes(), 64).expect("read");
        assert_eq!(
            Value::Object(json),
            json!({"resourceType": "Patient", "id": "x", "gender": "male"})
        );
    }

    #[test]
    fn what_xml_cannot_hold_is_refused_on_writing() {
        let write = |v: Value| match v {
            Value::Object(o) => to_xml(&o, false).map_err(|e| match e {
                MappingError::Invalid(issues) => {
                    format!("{}: {}", issues[0].expression, issues[0].diagnostics)
                }
                other => other.to_string(),
            }),
            _ => Err("not an object".into()),
        };
        let cases = [
            (
                json!({"resourceType": "Patient", "nickname": "x"}),
                "Patient.nickname: unknown element nickname of Patient",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"_id": {"extension": []}}]}),
                "Patient.name[0]._id",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"family": "a\u{1}"}]}),
                "Patient.name[0].family: the character U+0001",
            ),
            (
                json!({"resourceType": "Patient", "active": "true"}),
                "Patient.active: a boolean must be a JSON boolean",
            ),
            (
                json!({"resourceType": "Patient", "name": {"family": "x"}}),
                "Patient.name: name repeats",
            ),
            (
                json!({"resourceType": "Patient", "name": [{"given": ["a"], "_given": [null, null]}]}),
                "same length",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>x</div>"}}),
                "Patient.text.div: the narrative is not well-formed XHTML (at character 1): the div must declare its namespace",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">a&nbsp;b</div>"}}),
                "&nbsp;",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</div>"}}),
                "not well-formed",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": " <div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}),
                "nothing before or after",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div><p/>"}}),
                "nothing before or after",
            ),
            (
                json!({"resourceType": "Patient", "text": {"status": "generated", "div": "\u{feff}<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}),
                "nothing before or after",
            ),
            (
                json!({"resourceType": "Patient", "contained": [{"resourceType": "Nothing"}]}),
                "unknown resource type Nothing",
            ),
        ];
        for (json, expected) in cases {
            let e = write(json.clone())
                .map(|_| ())
                .expect_err(&json.to_string());
            assert!(e.contains(expected), "{json}: {e}");
        }
    }
}
