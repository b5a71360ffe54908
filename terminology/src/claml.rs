//! Reading WHO ICD-10 in ClaML 2.0, the XML format WHO distributes it in.
//!
//! Only what the TSV table holds is taken: each `<Class>` directly under `<ClaML>` gives one
//! concept, with its `code` and `kind` attributes, its parent from `<SuperClass code>` (none
//! for chapters) and its display from the `<Label>` of `<Rubric kind="preferred">` (the
//! `xml:lang="en"` label if there are several, else the first). A label's text is the text of
//! all it holds, `<Reference>`, `<Term>` and other inline elements included; `<Fragment>` and
//! `<Para>` boundaries separate words; runs of whitespace become one space. `<SubClass>`
//! repeats what `<SuperClass>` says and is not read. Other rubrics (inclusions, exclusions,
//! notes), `<Meta>`, `<ModifierClass>`, `<Modifier>` and the header elements are skipped. The
//! edition is `<Title version>`.

use std::io::BufRead;
use std::path::Path;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::load::{Builder, ICD10_KINDS, Row, io_error, parse_kind};
use crate::{CodeSystem, ICD10, Kind, TerminologyError};

/// The elements whose place matters; every other element is [`Tag::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    ClaML,
    Class,
    Rubric,
    Label,
    /// `<Fragment>` or `<Para>`: a word boundary inside a label.
    Break,
    Other,
}

impl Tag {
    fn of(e: &BytesStart<'_>) -> Tag {
        match e.name().as_ref() {
            "ClaML" => Tag::ClaML,
            "Class" => Tag::Class,
            "Rubric" => Tag::Rubric,
            "Label" => Tag::Label,
            "Fragment" | "Para" => Tag::Break,
            _ => Tag::Other,
        }
    }
}

/// A `<Class>` being read.
struct ClassDraft {
    code: String,
    kind: Kind,
    parent: Option<String>,
    /// `(xml:lang, text)` of each label of the preferred rubric.
    labels: Vec<(Option<String>, String)>,
    line: usize,
}

/// Turns byte offsets into 1-based line numbers; offsets are asked for in increasing order,
/// so the whole file is scanned once.
struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Lines<'_> {
    fn line_at(&mut self, offset: u64) -> usize {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        if offset < self.at {
            (self.at, self.line) = (0, 1);
        }
        self.line += self.text[self.at..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.at = offset;
        self.line
    }
}

pub(crate) fn read_icd10_claml(
    reader: &mut dyn BufRead,
    path: &Path,
) -> Result<CodeSystem, TerminologyError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    let malformed = |line, reason| TerminologyError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        malformed(line, "not UTF-8".into())
    })?;
    let mut lines = Lines {
        text: text.as_bytes(),
        at: 0,
        line: 1,
    };
    let mut xml = Reader::from_str(text);
    let mut builder = Builder::new();
    let mut version: Option<String> = None;
    // Open elements and the lines of their start tags.
    let mut stack: Vec<(Tag, usize)> = Vec::new();
    let mut class: Option<ClassDraft> = None;
    // Inside a preferred rubric of the current class.
    let mut preferred = false;
    // The label being read: its language and text so far.
    let mut label: Option<(Option<String>, String)> = None;
    let mut seen_root = false;
    loop {
        let start = xml.buffer_position();
        let event = match xml.read_event() {
            Ok(event) => event,
            Err(e) => {
                let line = lines.line_at(xml.error_position());
                return Err(malformed(line, format!("malformed xml: {e}")));
            }
        };
        let line = lines.line_at(start);
        let fail = |reason: String| TerminologyError::Malformed {
            path: path.to_owned(),
            line,
            reason,
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let tag = Tag::of(e);
                let parent = stack.last().map(|&(tag, _)| tag);
                match (parent, tag) {
                    (None, Tag::ClaML) if !seen_root => seen_root = true,
                    (None, _) => return Err(fail("the root element must be <ClaML>".into())),
                    (Some(Tag::ClaML), Tag::Class) => {
                        let code = attribute(e, "code")
                            .map_err(&fail)?
                            .filter(|c| !c.trim().is_empty())
                            .ok_or_else(|| fail("class without a code".into()))?;
                        let kind = attribute(e, "kind")
                            .map_err(&fail)?
                            .ok_or_else(|| fail(format!("class {code:?} has no kind")))?;
                        let kind = parse_kind(&kind, ICD10_KINDS).map_err(&fail)?;
                        class = Some(ClassDraft {
                            code,
                            kind,
                            parent: None,
                            labels: Vec::new(),
                            line,
                        });
                    }
                    (Some(Tag::ClaML), Tag::Other) if e.name().as_ref() == "Title" => {
                        version = attribute(e, "version").map_err(&fail)?;
                    }
                    (Some(Tag::Class), Tag::Other) if e.name().as_ref() == "SuperClass" => {
                        let draft = class.as_mut().ok_or_else(|| fail("no class".into()))?;
                        let code = attribute(e, "code")
                            .map_err(&fail)?
                            .ok_or_else(|| fail("superclass without a code".into()))?;
                        if draft.parent.is_some() {
                            let reason =
                                format!("class {:?} has more than one superclass", draft.code);
                            return Err(fail(reason));
                        }
                        draft.parent = Some(code);
                    }
                    (Some(Tag::Class), Tag::Rubric) => {
                        preferred =
                            attribute(e, "kind").map_err(&fail)?.as_deref() == Some("preferred");
                    }
                    (Some(Tag::Rubric), Tag::Label) if preferred && class.is_some() => {
                        label = Some((attribute(e, "xml:lang").map_err(&fail)?, String::new()));
                    }
                    (_, Tag::Break) => {
                        if let Some((_, text)) = &mut label {
                            text.push(' ');
                        }
                    }
                    _ => {}
                }
                if empty {
                    // An empty element opens and closes at once.
                    close(tag, &mut class, &mut label, &mut preferred, &mut builder)
                        .map_err(|(line, reason)| malformed(line, reason))?;
                } else {
                    stack.push((tag, line));
                }
            }
            Event::End(_) => {
                let (tag, _) = stack.pop().unwrap_or((Tag::Other, line));
                close(tag, &mut class, &mut label, &mut preferred, &mut builder)
                    .map_err(|(line, reason)| malformed(line, reason))?;
            }
            Event::Text(t) => {
                if let Some((_, text)) = &mut label {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((_, text)) = &mut label {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, text)) = &mut label {
                    let c = r
                        .resolve_char_ref()
                        .map_err(|e| fail(format!("malformed xml: {e}")))?;
                    match (c, resolve_predefined_entity(&r)) {
                        (Some(c), _) => text.push(c),
                        (None, Some(s)) => text.push_str(s),
                        (None, None) => {
                            return Err(fail(format!("unknown entity &{};", &*r)));
                        }
                    }
                }
            }
            Event::Eof => {
                // quick-xml accepts a document that ends inside an element; a cut-off file
                // must not load as a smaller table.
                if let Some(&(tag, opened)) = stack.last() {
                    let what = match tag {
                        Tag::ClaML => "<ClaML>",
                        Tag::Class => "<Class>",
                        Tag::Rubric => "<Rubric>",
                        Tag::Label => "<Label>",
                        Tag::Break | Tag::Other => "an element",
                    };
                    let reason = format!("unexpected end of file: {what} is not closed");
                    return Err(malformed(opened, reason));
                }
                break;
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(malformed(1, "no <ClaML> element".into()));
    }
    let version: &'static str = match version.as_deref() {
        // The edition the TSV table also has needs no allocation.
        Some("2019") => "2019",
        // `SystemInfo::version` is `&'static str`; a table is loaded once, so this leaks a
        // few bytes once.
        Some(v) => Box::leak(v.to_owned().into_boxed_str()),
        None => "unknown",
    };
    builder.finish(path, ICD10, "ICD-10 (WHO)", version)
}

/// Handles the end of a `tag` element: a label's text is kept, a class becomes a concept.
/// A class's errors name the line of its start tag.
fn close(
    tag: Tag,
    class: &mut Option<ClassDraft>,
    label: &mut Option<(Option<String>, String)>,
    preferred: &mut bool,
    builder: &mut Builder,
) -> Result<(), (usize, String)> {
    match tag {
        Tag::Break => {
            if let Some((_, text)) = label {
                text.push(' ');
            }
        }
        Tag::Label => {
            if let (Some((lang, text)), Some(draft)) = (label.take(), class.as_mut()) {
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                draft.labels.push((lang, text));
            }
        }
        Tag::Rubric => *preferred = false,
        Tag::Class => {
            let Some(draft) = class.take() else {
                return Ok(());
            };
            let display = draft
                .labels
                .iter()
                .find(|(lang, _)| lang.as_deref() == Some("en"))
                .or(draft.labels.first())
                .map(|(_, text)| text.as_str())
                .ok_or_else(|| {
                    let reason = format!("class {:?} has no preferred label", draft.code);
                    (draft.line, reason)
                })?;
            let row = Row {
                code: &draft.code,
                kind: draft.kind,
                parent: draft.parent.as_deref().unwrap_or(""),
                display,
                short_display: None,
                billable: None,
                selectable: draft.kind == Kind::Category,
            };
            // Errors found here (a duplicate code, an empty label) name the class's line.
            builder.add(draft.line, row).map_err(|r| (draft.line, r))?;
        }
        _ => {}
    }
    Ok(())
}

/// The value of attribute `name`, entities resolved; `None` if absent.
fn attribute(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    let bad = |err: &dyn std::fmt::Display| format!("malformed xml: {err}");
    match e.try_get_attribute(name).map_err(|err| bad(&err))? {
        None => Ok(None),
        Some(a) => a
            .normalized_value(XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|err| bad(&err)),
    }
}
