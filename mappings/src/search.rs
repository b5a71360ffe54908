//! Search parameters: which exist, how index entries are extracted from a resource at write
//! time, and how a FHIR query string parses into a typed [`Query`].
//!
//! The table ([`PARAMS`], `search_params.rs`) is generated from HL7's R4 SearchParameter
//! bundle by `mappings/schema/generate_search.py`: every parameter of the mapped types whose
//! expression it translates faithfully (the others are listed, with why, in
//! `mappings/schema/search-params-not-supported.md`). The CapabilityStatement is generated
//! from it, so it lists nothing that does not work.
//!
//! Modifiers and composites live in the index under derived parameter names, so the store
//! needs nothing of its own for them: `code:text` (strings from CodeableConcept.text and
//! Coding.display), `identifier:of-type` (tokens `type-system` | `type-code|value`),
//! `subject:identifier` (tokens from Reference.identifier), and a composite's second
//! component under `name$key`, where the key is its first component's value in the same
//! element (`system|code`, `code`, `|code` for a code without a system, or `Type/id`).

use model::index::IndexEntry;
use model::query::{Expand, IndexKind, Predicate, Prefix, Query, StringMatch, SystemMatch};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::dates::parse_range;
use crate::decimal::{approximate_range, precision_range};
use crate::fields::{Obj, split_reference};
use crate::json::{Resource, is_valid_id};
use crate::{Issue, IssueCode};

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Coded values and identifiers.
    Token,
    /// Text.
    String,
    /// Dates and periods.
    Date,
    /// References to other resources.
    Reference,
    /// URIs, matched whole (indexed as tokens without a system).
    Uri,
    /// Quantities (value and unit), indexed as the range their precision implies.
    Quantity,
    /// Numbers, indexed as quantities without a unit.
    Number,
    /// Two parameters that must match in one element (`code-value-quantity`).
    Composite,
}

impl ParamKind {
    /// The FHIR name of the type.
    pub fn fhir_name(self) -> &'static str {
        match self {
            ParamKind::Token => "token",
            ParamKind::String => "string",
            ParamKind::Date => "date",
            ParamKind::Reference => "reference",
            ParamKind::Uri => "uri",
            ParamKind::Quantity => "quantity",
            ParamKind::Number => "number",
            ParamKind::Composite => "composite",
        }
    }

    /// The index table a parameter of this kind is held in (`None`: a composite, held in
    /// its value component's table under derived names).
    pub fn index_kind(self) -> Option<IndexKind> {
        match self {
            ParamKind::Token | ParamKind::Uri => Some(IndexKind::Token),
            ParamKind::String => Some(IndexKind::String),
            ParamKind::Date => Some(IndexKind::Date),
            ParamKind::Reference => Some(IndexKind::Reference),
            ParamKind::Quantity | ParamKind::Number => Some(IndexKind::Quantity),
            ParamKind::Composite => None,
        }
    }
}

/// One search parameter of a resource type (a row of the generated table,
/// `mappings/schema/generate_search.py`).
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    /// Resource type (`*`: every type).
    pub resource: &'static str,
    /// Parameter name.
    pub name: &'static str,
    /// Type.
    pub kind: ParamKind,
    /// Element paths: dot-separated JSON names; `name[x]` is every choice of `name`;
    /// `name(field=value)` keeps the items whose `field` is `value`; for a composite, the
    /// elements its components are read in (the empty path is the resource).
    pub paths: &'static [&'static str],
    /// For references: the only target type the parameter follows, if restricted
    /// (`.where(resolve() is T)`).
    pub target: Option<&'static str>,
    /// Another parameter whose index entries this one reads (e.g. `patient` reads
    /// `subject`'s entries, restricted to Patient targets).
    pub index_of: Option<&'static str>,
    /// Other parameters whose entries together are this one's (Observation `combo-code` is
    /// `code` and `component-code`): it stores nothing, and a search reads them all.
    pub union_of: &'static [&'static str],
    /// A boolean token of whether an element is there and not `false` (`deceased`): every
    /// resource has one entry, `true` or `false`.
    pub exists: bool,
    /// Tokens over CodeableConcept or Coding: `:text` entries (the text and displays).
    pub text: bool,
    /// Tokens over Identifier: `:of-type` entries (the identifier's type and value).
    pub of_type: bool,
    /// `phonetic` (a string over names): each name part is indexed as its American Soundex
    /// code ([`soundex`]), and a search value matches by its code's equality.
    pub phonetic: bool,
    /// A reference over `canonical` elements (`instantiates-canonical`): indexed as token
    /// entries of the URL without its `|version`, matched by equality (the target is not
    /// resolved).
    pub canonical: bool,
    /// For a composite: its two components.
    pub composite: Option<&'static Composite>,
    /// The canonical URL of the HL7 SearchParameter it implements (`None`: fhirgate's own).
    pub definition: Option<&'static str>,
}

impl SearchParam {
    /// A parameter of `kind` with nothing else: a composite's component.
    const fn plain(name: &'static str, kind: ParamKind) -> SearchParam {
        SearchParam {
            resource: "",
            name,
            kind,
            paths: &[],
            target: None,
            index_of: None,
            union_of: &[],
            exists: false,
            text: false,
            of_type: false,
            phonetic: false,
            canonical: false,
            composite: None,
            definition: None,
        }
    }
}

/// The two components of a composite parameter, read in one element.
#[derive(Debug, Clone, Copy)]
pub struct Composite {
    /// The first component (a token or a reference), whose value names the derived
    /// parameter the second one's entries are held under (`name$system|code`).
    pub key: Component,
    /// The second component: the entries.
    pub value: Component,
}

/// One component of a composite parameter.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// Its type.
    pub kind: ParamKind,
    /// Its paths, relative to the composite's element.
    pub paths: &'static [&'static str],
}

pub use crate::search_params::PARAMS;

/// The parameters of one resource type, then those of every type.
pub fn params_of(resource: &str) -> impl Iterator<Item = &'static SearchParam> + '_ {
    own_params(resource).iter().chain(common_params())
}

/// The rows of `resource` (the table is sorted by type, then name; `*` rows last).
fn own_params(resource: &str) -> &'static [SearchParam] {
    let common = common_params().len();
    let typed = &PARAMS[..PARAMS.len() - common];
    let start = typed.partition_point(|p| p.resource < resource);
    let end = start + typed[start..].partition_point(|p| p.resource == resource);
    &typed[start..end]
}

/// The parameters every resource type has (besides `_id` and `_lastUpdated`, which are
/// answered from the resource row): the tags, security labels, profiles and source in
/// `meta`.
fn common_params() -> &'static [SearchParam] {
    let start = PARAMS.partition_point(|p| p.resource != "*");
    &PARAMS[start..]
}

fn find_param(resource: &str, name: &str) -> Option<&'static SearchParam> {
    params_of(resource).find(|p| p.name == name)
}

/// The modifiers a parameter takes (for the CapabilityStatement).
pub fn modifiers_of(param: &SearchParam) -> Vec<&'static str> {
    let mut out = Vec::new();
    if param.kind != ParamKind::Composite && !restricted_view(param) {
        out.push("missing");
    }
    if param.phonetic || param.canonical {
        return out;
    }
    match param.kind {
        ParamKind::Token => {
            out.extend(["not", "above", "below"]);
            if param.text {
                out.push("text");
            }
            if param.of_type {
                out.push("of-type");
            }
        }
        ParamKind::String => out.extend(["exact", "contains"]),
        ParamKind::Reference => out.extend(["identifier", "[type]"]),
        ParamKind::Uri => out.extend(["above", "below"]),
        _ => {}
    }
    out
}

/// A URI's path prefixes, itself included, each without a final '/':
/// `http://a.org/fhir/x` → `http://a.org`, `http://a.org/fhir`, `http://a.org/fhir/x`.
/// A URI without `//` (a URN) is only itself.
fn uri_prefixes(uri: &str) -> Vec<&str> {
    let trimmed = uri.trim_end_matches('/');
    let Some(authority) = trimmed.find("//").map(|i| i + 2) else {
        return vec![trimmed];
    };
    let mut out: Vec<&str> = trimmed[authority..]
        .match_indices('/')
        .map(|(i, _)| &trimmed[..authority + i])
        .collect();
    out.push(trimmed);
    out
}

/// Whether `param` reads another parameter's entries restricted to one target type
/// (`patient` over `subject`): those entries hold other targets too, so whether it is
/// missing cannot be read from them.
fn restricted_view(param: &SearchParam) -> bool {
    param.index_of.is_some() && param.target.is_some()
}

/// A reference parameter as the index stores it: the parameter whose entries hold it, and
/// the only target type it follows (e.g. `Observation:patient` is `subject` to Patients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceParam {
    /// The parameter's own name.
    pub name: &'static str,
    /// The parameter whose index entries hold the references.
    pub stored: &'static str,
    /// The target type it is restricted to, if any.
    pub target: Option<&'static str>,
}

/// The reference parameter `name` of `resource` (for `_include` / `_revinclude`).
pub fn reference_param(resource: &str, name: &str) -> Option<ReferenceParam> {
    // A canonical reference names no resource the store could follow.
    let p =
        find_param(resource, name).filter(|p| p.kind == ParamKind::Reference && !p.canonical)?;
    Some(ReferenceParam {
        name: p.name,
        stored: p.index_of.unwrap_or(p.name),
        target: p.target,
    })
}

/// Every reference parameter of `resource` (for `_include=Type:*`).
pub fn reference_params(resource: &str) -> Vec<ReferenceParam> {
    params_of(resource)
        .filter(|p| p.kind == ParamKind::Reference && p.index_of.is_none())
        .filter_map(|p| reference_param(resource, p.name))
        .collect()
}

/// The longest value, in bytes, the index holds as it is: a PostgreSQL B-tree entry holds at
/// most about 2.7 KB, and a token entry holds both a code and a system.
pub const MAX_INDEXED: usize = 1000;

/// A token's code or system as the index holds it and a search compares it: itself up to
/// [`MAX_INDEXED`] bytes, else its SHA-256 digest (after U+0001, which no FHIR string holds,
/// so a digest never equals a real code). Token search is equality, which the digest keeps.
pub fn index_token(text: &str) -> String {
    use sha2::Digest as _;
    if text.len() <= MAX_INDEXED {
        return text.to_owned();
    }
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut out = String::from("\u{1}sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A normalised string as the index holds it: cut to at most [`MAX_INDEXED`] bytes, on a
/// character boundary. A search value is never longer (a longer one is refused), so prefix
/// and exact search stay exact; `:contains` does not see past the cut.
pub fn index_string(mut normalized: String) -> String {
    if normalized.len() > MAX_INDEXED {
        let mut end = MAX_INDEXED;
        while !normalized.is_char_boundary(end) {
            end -= 1;
        }
        normalized.truncate(end);
    }
    normalized
}

/// Lower case with accents folded: what string search compares.
pub fn normalize(text: &str) -> String {
    // ASCII has nothing to decompose or fold: the common case, without the NFD iterator.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The name a derived entry is held under: the parameter, then a modifier (`code:text`) or a
/// composite key (`code-value-quantity$http://loinc.org|8480-6`).
fn derived(name: &str, sep: char, suffix: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1 + suffix.len());
    out.push_str(name);
    out.push(sep);
    out.push_str(suffix);
    out
}

/// The table a parameter's entries are held in (`None`: a composite): its kind's, but a
/// canonical reference is held as tokens.
fn stored_kind(param: &SearchParam) -> Option<IndexKind> {
    if param.canonical {
        return Some(IndexKind::Token);
    }
    param.kind.index_kind()
}

/// A canonical URL as indexed and searched: without its `|version` (`url|1.0` is `url`).
fn canonical_url(value: &str) -> &str {
    value.split_once('|').map_or(value, |(url, _)| url)
}

/// American Soundex of a word (`Robert`, `Rupert` → `R163`; `Tymczak` → `T522`), as the US
/// National Archives define it ("The Soundex Indexing System", 2007,
/// <https://www.archives.gov/research/census/soundex>): the first letter, then the digits
/// of the following consonants (b f p v → 1; c g j k q s x z → 2; d t → 3; l → 4; m n → 5;
/// r → 6), a digit equal to the one before it written once (also across `h` and `w`, and
/// when it is the first letter's), vowels (a e i o u y) separating equal digits, padded
/// with `0` or cut to four characters. Accents are folded first ([`normalize`]) and
/// anything but the letters a–z is ignored; `None` if no letter is left.
pub fn soundex(word: &str) -> Option<String> {
    fn digit(c: u8) -> Option<u8> {
        Some(match c {
            b'b' | b'f' | b'p' | b'v' => b'1',
            b'c' | b'g' | b'j' | b'k' | b'q' | b's' | b'x' | b'z' => b'2',
            b'd' | b't' => b'3',
            b'l' => b'4',
            b'm' | b'n' => b'5',
            b'r' => b'6',
            _ => return None,
        })
    }
    let folded = normalize(word);
    let mut letters = folded.bytes().filter(u8::is_ascii_lowercase);
    let first = letters.next()?;
    let mut out = vec![first.to_ascii_uppercase()];
    let mut last = digit(first);
    for c in letters {
        if out.len() == 4 {
            break;
        }
        match digit(c) {
            Some(d) if last != Some(d) => {
                out.push(d);
                last = Some(d);
            }
            Some(_) => {}
            // `h` and `w` do not separate equal digits; vowels do.
            None if c == b'h' || c == b'w' => {}
            None => last = None,
        }
    }
    out.resize(4, b'0');
    String::from_utf8(out).ok()
}

/// `phonetic` entries of one name: the Soundex code of each name part (a HumanName's family
/// and givens; a string itself), whole and of each of its words, each code once.
fn extract_phonetic(name: &str, v: &Value, out: &mut Vec<IndexEntry>) {
    let mut parts: Vec<&str> = Vec::new();
    match v {
        Value::String(s) => parts.push(s),
        Value::Object(o) => {
            if let Some(Value::String(s)) = o.get("family") {
                parts.push(s);
            }
            if let Some(Value::Array(given)) = o.get("given") {
                parts.extend(given.iter().filter_map(Value::as_str));
            }
        }
        _ => {}
    }
    let mut codes: Vec<String> = Vec::new();
    for part in parts {
        let words = part.split(|c: char| c.is_whitespace() || c == '-');
        for code in std::iter::once(part).chain(words).filter_map(soundex) {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
    }
    for code in codes {
        out.push(IndexEntry::String {
            param: name.to_owned(),
            normalized: code.clone(),
            exact: code,
        });
    }
}

/// Extracts the index entries of a resource.
pub fn index_entries(resource: &Resource) -> Vec<IndexEntry> {
    let object = resource.object();
    let mut out = Vec::new();
    let mut values = Vec::new();
    for param in params_of(resource.resource_type()) {
        if !param.union_of.is_empty() {
            continue;
        }
        if let Some(c) = param.composite {
            extract_composite(object, param, c, &mut out);
            continue;
        }
        if param.exists {
            values.clear();
            for path in param.paths {
                collect(object, path, &mut values);
            }
            let there = values.iter().any(|v| **v != Value::Bool(false));
            out.push(IndexEntry::Token {
                param: param.name.to_owned(),
                system: None,
                code: if there { "true" } else { "false" }.to_owned(),
            });
            continue;
        }
        // A restricted parameter over another one's entries has only its `:identifier`
        // entries of its own (a logical reference names no target to restrict by).
        let stored = match param.index_of {
            Some(stored) => match find_param(resource.resource_type(), stored) {
                Some(s) => s,
                None => continue,
            },
            None => param,
        };
        for path in stored.paths {
            values.clear();
            collect(object, path, &mut values);
            for v in &values {
                if param.index_of.is_some() {
                    extract_identifier(param, v, &mut out);
                } else {
                    extract(param, param.name, v, &mut out);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The composite's entries: for each element, each key of the first component joined to
/// each entry of the second.
fn extract_composite(object: &Obj, param: &SearchParam, c: &Composite, out: &mut Vec<IndexEntry>) {
    let mut bases = Vec::new();
    for path in param.paths {
        if path.is_empty() {
            bases.push(object);
        } else {
            let mut values = Vec::new();
            collect(object, path, &mut values);
            bases.extend(values.into_iter().filter_map(Value::as_object));
        }
    }
    let mut values = Vec::new();
    let mut keys = Vec::new();
    let mut entries = Vec::new();
    for base in bases {
        keys.clear();
        entries.clear();
        for path in c.key.paths {
            values.clear();
            collect(base, path, &mut values);
            for v in &values {
                composite_keys(c.key.kind, v, &mut keys);
            }
        }
        if keys.is_empty() {
            continue;
        }
        let value_param = SearchParam::plain("", c.value.kind);
        for path in c.value.paths {
            values.clear();
            collect(base, path, &mut values);
            for v in &values {
                extract(&value_param, "", v, &mut entries);
            }
        }
        for key in &keys {
            let name = derived(param.name, '$', &index_token(key));
            for e in &entries {
                let mut e = e.clone();
                set_param(&mut e, name.clone());
                out.push(e);
            }
        }
    }
}

/// The keys a composite's first component gives: `system|code` and `code` for a coding with
/// a system, `|code` and `code` without one; `Type/id` for a reference.
fn composite_keys(kind: ParamKind, v: &Value, out: &mut Vec<String>) {
    match kind {
        ParamKind::Reference => {
            if let Some((t, id)) = v
                .get("reference")
                .and_then(Value::as_str)
                .and_then(split_reference)
            {
                out.push(format!("{t}/{id}"));
            }
        }
        _ => {
            let mut tokens = Vec::new();
            extract(&SearchParam::plain("", kind), "", v, &mut tokens);
            for t in tokens {
                if let IndexEntry::Token { system, code, .. } = t {
                    out.push(format!("{}|{code}", system.as_deref().unwrap_or("")));
                    out.push(code);
                }
            }
        }
    }
}

fn set_param(e: &mut IndexEntry, name: String) {
    match e {
        IndexEntry::Token { param, .. }
        | IndexEntry::String { param, .. }
        | IndexEntry::Date { param, .. }
        | IndexEntry::Reference { param, .. }
        | IndexEntry::Quantity { param, .. } => *param = name,
    }
}

/// Collects the values at a dotted path, flattening arrays.
fn collect<'a>(o: &'a Obj, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    // `telecom(system=email)`: only the items whose `system` is `email`.
    let (head, filter) = match head.split_once('(') {
        Some((h, f)) => (h, f.strip_suffix(')').and_then(|f| f.split_once('='))),
        None => (head, None),
    };
    let keep = |v: &Value| match filter {
        Some((field, wanted)) => v.get(field).and_then(Value::as_str) == Some(wanted),
        None => true,
    };
    let mut visit = |m: &'a Value| {
        let items: &'a [Value] = match m {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        for item in items.iter().filter(|v| keep(v)) {
            match (rest, item) {
                (None, v) => out.push(v),
                (Some(rest), Value::Object(inner)) => collect(inner, rest, out),
                _ => {}
            }
        }
    };
    match head.strip_suffix("[x]") {
        Some(stem) => {
            for (k, v) in o {
                if k.strip_prefix(stem)
                    .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))
                {
                    visit(v);
                }
            }
        }
        None => {
            if let Some(v) = o.get(head) {
                visit(v);
            }
        }
    }
}

/// The codings of a CodeableConcept, or the value itself (a Coding, an Identifier, a
/// ContactPoint).
fn codings(o: &Obj) -> Vec<&Obj> {
    match o.get("coding") {
        Some(Value::Array(c)) => c.iter().filter_map(Value::as_object).collect(),
        _ => vec![o],
    }
}

/// The `:identifier` entries of a restricted reference parameter (`patient:identifier`):
/// those of references that say they point at its target type.
fn extract_identifier(param: &SearchParam, v: &Value, out: &mut Vec<IndexEntry>) {
    let Some(target) = param.target else { return };
    let declared = v.get("type").and_then(Value::as_str).or_else(|| {
        v.get("reference")
            .and_then(Value::as_str)
            .and_then(split_reference)
            .map(|(t, _)| t)
    });
    if declared == Some(target) {
        push_reference_identifier(param.name, v, out);
    }
}

fn push_reference_identifier(name: &str, v: &Value, out: &mut Vec<IndexEntry>) {
    if let Some(Value::Object(id)) = v.get("identifier")
        && let Some(value) = id.get("value").and_then(Value::as_str)
    {
        out.push(IndexEntry::Token {
            param: derived(name, ':', "identifier"),
            system: id.get("system").and_then(Value::as_str).map(index_token),
            code: index_token(value),
        });
    }
}

fn extract(param: &SearchParam, name: &str, v: &Value, out: &mut Vec<IndexEntry>) {
    if param.phonetic {
        return extract_phonetic(name, v, out);
    }
    if param.canonical {
        if let Value::String(url) = v {
            out.push(IndexEntry::Token {
                param: name.to_owned(),
                system: None,
                code: index_token(canonical_url(url)),
            });
        }
        return;
    }
    match param.kind {
        ParamKind::Token => {
            let mut push = |system: Option<&str>, code: &str| {
                out.push(IndexEntry::Token {
                    param: name.to_owned(),
                    system: system.map(index_token),
                    code: index_token(code),
                })
            };
            match v {
                Value::String(s) => push(None, s),
                Value::Bool(b) => push(None, if *b { "true" } else { "false" }),
                Value::Object(o) => {
                    for c in codings(o) {
                        let system = c.get("system").and_then(Value::as_str);
                        let code = c
                            .get("code")
                            .or_else(|| c.get("value"))
                            .and_then(Value::as_str);
                        if let Some(code) = code {
                            push(system, code);
                        }
                    }
                    if param.text {
                        extract_text(name, o, out);
                    }
                    if param.of_type {
                        extract_of_type(name, o, out);
                    }
                }
                _ => {}
            }
        }
        ParamKind::Uri => {
            if let Value::String(uri) = v {
                out.push(IndexEntry::Token {
                    param: name.to_owned(),
                    system: None,
                    code: index_token(uri),
                });
                // `:below`: the URI is found by each of its path prefixes.
                for prefix in uri_prefixes(uri) {
                    out.push(IndexEntry::Token {
                        param: derived(name, ':', "below"),
                        system: None,
                        code: index_token(prefix),
                    });
                }
            }
        }
        ParamKind::String => {
            let mut push = |s: &str| push_string(name, s, out);
            match v {
                Value::String(s) => push(s),
                Value::Object(o) => {
                    for key in [
                        "text",
                        "family",
                        "given",
                        "prefix",
                        "suffix",
                        "line",
                        "city",
                        "district",
                        "state",
                        "postalCode",
                        "country",
                    ] {
                        match o.get(key) {
                            Some(Value::String(s)) => push(s),
                            Some(Value::Array(items)) => {
                                items.iter().filter_map(Value::as_str).for_each(&mut push)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        ParamKind::Date => {
            let range = match v {
                Value::String(s) => parse_range(s),
                Value::Object(o) => {
                    let start = o.get("start").and_then(Value::as_str).and_then(parse_range);
                    let end = o.get("end").and_then(Value::as_str).and_then(parse_range);
                    match (start, end) {
                        (None, None) => None,
                        (s, e) => Some((s.map_or(i64::MIN, |r| r.0), e.map_or(i64::MAX, |r| r.1))),
                    }
                }
                _ => None,
            };
            if let Some((low, high)) = range {
                out.push(IndexEntry::Date {
                    param: name.to_owned(),
                    low,
                    high,
                });
            }
        }
        ParamKind::Reference => {
            if let Some(reference) = v.get("reference").and_then(Value::as_str)
                && let Some((t, id)) = split_reference(reference)
                && param.target.is_none_or(|wanted| wanted == t)
            {
                out.push(IndexEntry::Reference {
                    param: name.to_owned(),
                    target_type: t.to_owned(),
                    target_id: id.to_owned(),
                });
            }
            if param.target.is_none() {
                push_reference_identifier(name, v, out);
            } else {
                extract_identifier(param, v, out);
            }
        }
        ParamKind::Quantity => {
            let Value::Object(o) = v else { return };
            match (o.get("low"), o.get("high")) {
                // A Range: from its low's low bound to its high's high bound.
                (low, high) if low.is_some() || high.is_some() => {
                    let lo = low.and_then(quantity_of);
                    let hi = high.and_then(quantity_of);
                    let unit = lo.as_ref().or(hi.as_ref()).map(|q| (q.0, q.1));
                    let (Some((system, code)), Some(low), Some(high)) = (
                        unit,
                        lo.as_ref().map(|q| q.2.0.clone()),
                        hi.as_ref().map(|q| q.2.1.clone()),
                    ) else {
                        return;
                    };
                    push_quantity(name, system, code, low, high, out);
                }
                _ => {
                    if let Some((system, code, (low, high))) = quantity_of(v) {
                        push_quantity(name, system, code, low, high, out);
                    }
                }
            }
        }
        ParamKind::Number => {
            if let Value::Number(n) = v
                && let Some((low, high)) = precision_range(&n.to_string())
            {
                push_quantity(name, None, None, low, high, out);
            }
        }
        ParamKind::Composite => {}
    }
}

type QuantityParts<'a> = (Option<&'a str>, Option<&'a str>, (String, String));

/// A Quantity's unit system, code (else its display unit) and precision range.
fn quantity_of(v: &Value) -> Option<QuantityParts<'_>> {
    let o = v.as_object()?;
    let Some(Value::Number(value)) = o.get("value") else {
        return None;
    };
    let range = precision_range(&value.to_string())?;
    let system = o.get("system").and_then(Value::as_str);
    let code = o
        .get("code")
        .or_else(|| o.get("unit"))
        .and_then(Value::as_str);
    Some((system, code, range))
}

fn push_quantity(
    name: &str,
    system: Option<&str>,
    code: Option<&str>,
    low: String,
    high: String,
    out: &mut Vec<IndexEntry>,
) {
    out.push(IndexEntry::Quantity {
        param: name.to_owned(),
        system: system.map(index_token),
        code: code.map(index_token),
        low,
        high,
    });
}

fn push_string(name: &str, s: &str, out: &mut Vec<IndexEntry>) {
    out.push(IndexEntry::String {
        param: name.to_owned(),
        normalized: index_string(normalize(s)),
        exact: s.to_owned(),
    })
}

/// `:text` entries: a CodeableConcept's text and its codings' displays (a Coding's display).
fn extract_text(name: &str, o: &Obj, out: &mut Vec<IndexEntry>) {
    let name = derived(name, ':', "text");
    if let Some(text) = o.get("text").and_then(Value::as_str) {
        push_string(&name, text, out);
    }
    for c in codings(o) {
        if let Some(display) = c.get("display").and_then(Value::as_str) {
            push_string(&name, display, out);
        }
    }
}

/// `:of-type` entries of an Identifier: for each coding of its type, the type's system, and
/// `typecode|value` as the code.
fn extract_of_type(name: &str, o: &Obj, out: &mut Vec<IndexEntry>) {
    let (Some(Value::Object(t)), Some(value)) =
        (o.get("type"), o.get("value").and_then(Value::as_str))
    else {
        return;
    };
    for c in codings(t) {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            out.push(IndexEntry::Token {
                param: derived(name, ':', "of-type"),
                system: c.get("system").and_then(Value::as_str).map(index_token),
                code: index_token(&format!("{code}|{value}")),
            });
        }
    }
}

/// Limits and defaults of search.
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    /// Page size when `_count` is absent.
    pub default_count: usize,
    /// Largest page size; a larger `_count` is reduced to it.
    pub max_count: usize,
}

/// A parsed search: the typed query, and what was not understood.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSearch {
    /// The query.
    pub query: Query,
    /// The parameters used, normalised, for the `self` link (paging parameters excluded).
    pub used: Vec<(String, String)>,
    /// Parameters that were ignored, with why.
    pub ignored: Vec<Issue>,
}

/// Parameters that shape the response rather than select resources; accepted everywhere.
const RESULT_PARAMS: &[&str] = &["_format", "_pretty"];

/// Parses search parameters (already percent-decoded) for a resource type. Unknown
/// parameters are ignored and reported (lenient handling, the FHIR default); malformed values
/// of known parameters are errors.
pub fn parse_query(
    resource: &str,
    pairs: &[(String, String)],
    limits: &SearchLimits,
) -> Result<ParsedSearch, Vec<Issue>> {
    let mut query = Query {
        source_type: resource.to_owned(),
        all_of: Vec::new(),
        count: limits.default_count,
        after_id: None,
        sort: Vec::new(),
        after_sort: Vec::new(),
        total: false,
        access: Default::default(),
    };
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    let mut given: Vec<&str> = Vec::new();
    for (key, raw) in pairs {
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key.as_str(), None),
        };
        let bad = |text: String| Issue::error(IssueCode::Value, key.clone(), text);
        // No FHIR value holds a control character, and the store cannot take some.
        if let Some(c) = key.chars().chain(raw.chars()).find(|c| c.is_control()) {
            errors.push(bad(format!(
                "a search parameter may not hold the control character U+{:04X}",
                u32::from(c)
            )));
            continue;
        }
        // Parameters that set one thing: a second value would contradict the first.
        if matches!(name, "_count" | "_total" | "_cursor" | "_sort") {
            if given.contains(&name) {
                errors.push(bad(format!("{name} may be given only once")));
                continue;
            }
            given.push(name);
        }
        match name {
            "_count" => match raw.parse::<usize>() {
                Ok(n) => query.count = n.min(limits.max_count),
                Err(_) => errors.push(bad(format!("_count must be a whole number, got {raw:?}"))),
            },
            "_total" => match raw.as_str() {
                "accurate" => query.total = true,
                "none" | "estimate" => query.total = false,
                _ => errors.push(bad(format!(
                    "_total must be none, estimate or accurate, got {raw:?}"
                ))),
            },
            "_sort" => match parse_sort(resource, raw) {
                Ok((keys, unknown)) => {
                    query.sort = keys;
                    ignored.extend(unknown);
                    used.push((key.clone(), raw.clone()));
                }
                Err(issue) => errors.push(issue),
            },
            "_cursor" if raw.starts_with('~') => match model::query::SortCursor::parse(raw) {
                Some(c) if is_valid_id(&c.id) => {
                    query.after_id = Some(c.id);
                    query.after_sort = c.values;
                }
                _ => errors.push(bad("invalid paging cursor".into())),
            },
            "_cursor" => {
                if is_valid_id(raw) {
                    query.after_id = Some(raw.clone());
                } else {
                    errors.push(bad("invalid paging cursor".into()));
                }
            }
            _ if RESULT_PARAMS.contains(&name) => {}
            _ => {
                let group = split_or(raw)
                    .into_iter()
                    .map(|v| parse_value(resource, name, modifier, &v))
                    .collect::<Result<Vec<_>, Issue>>()
                    .map(|g| g.concat());
                match group {
                    // Nothing to search for: reported (and refused under strict handling).
                    Ok(group) if group.is_empty() => ignored.push(not_supported(
                        key,
                        format!("{key} has no value, so it is ignored"),
                    )),
                    // `code:not=a,b`: neither a nor b (each value a condition of its own); so
                    // too each member of a union under a negation.
                    Ok(group)
                        if modifier == Some("not")
                            || (modifier == Some("missing") && raw == "true") =>
                    {
                        query.all_of.extend(group.into_iter().map(|p| vec![p]));
                        used.push((key.clone(), raw.clone()));
                    }
                    Ok(group) => {
                        query.all_of.push(group);
                        used.push((key.clone(), raw.clone()));
                    }
                    Err(issue) if issue.code == IssueCode::NotSupported => ignored.push(issue),
                    Err(issue) => errors.push(issue),
                }
            }
        }
    }
    if query.after_id.is_some() && query.after_sort.len() != query.sort.len() {
        errors.push(Issue::error(
            IssueCode::Value,
            "_cursor",
            "the paging cursor does not belong to this _sort".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(ParsedSearch {
            query,
            used,
            ignored,
        })
    } else {
        Err(errors)
    }
}

/// Parses `_sort`: comma-separated keys, each a parameter name (`_id`, `_lastUpdated`, or a
/// string, date, token, URI, reference, quantity or number parameter of the type), `-` first for descending.
/// Returns the keys, and the keys left out (unknown, or of a kind that does not sort) as
/// not-supported issues.
fn parse_sort(
    resource: &str,
    raw: &str,
) -> Result<(Vec<model::query::SortKey>, Vec<Issue>), Issue> {
    use model::query::{SortBy, SortKey};
    let mut keys = Vec::new();
    let mut ignored = Vec::new();
    for item in raw.split(',') {
        let (descending, name) = match item.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if name.is_empty() {
            return Err(Issue::error(
                IssueCode::Value,
                "_sort".to_owned(),
                format!("_sort has an empty key in {raw:?}"),
            ));
        }
        let by = match name {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            _ => {
                match find_param(resource, name).and_then(|p| Some((p, sort_kind(p)?))) {
                    Some((param, kind)) => SortBy::Param {
                        param: param.index_of.unwrap_or(param.name).to_owned(),
                        kind,
                    },
                    None => {
                        ignored.push(not_supported(
                        "_sort",
                        format!("{name} is not a parameter of {resource} that sorts, so it is ignored"),
                    ));
                        continue;
                    }
                }
            }
        };
        if keys.iter().any(|k: &SortKey| k.by == by) {
            continue;
        }
        keys.push(SortKey { by, descending });
    }
    Ok((keys, ignored))
}

/// The index a parameter sorts by: its own entries' kind. A composite, or a parameter that
/// reads several others' entries, has no one value to sort by.
fn sort_kind(param: &SearchParam) -> Option<IndexKind> {
    if param.composite.is_some() || !param.union_of.is_empty() {
        return None;
    }
    if param.canonical {
        return Some(IndexKind::Token);
    }
    Some(match param.kind {
        ParamKind::Token | ParamKind::Uri => IndexKind::Token,
        ParamKind::String => IndexKind::String,
        ParamKind::Date => IndexKind::Date,
        ParamKind::Reference => IndexKind::Reference,
        ParamKind::Quantity | ParamKind::Number => IndexKind::Quantity,
        ParamKind::Composite => return None,
    })
}

/// Splits a value on commas not escaped with a backslash, and unescapes `\,` (`\$` and
/// `\\` stay escaped until a composite value is split on its `$`: [`unescape`]).
fn split_or(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(',') => cur.push(','),
                Some(n @ ('$' | '\\')) => {
                    cur.push('\\');
                    cur.push(n);
                }
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|v| !v.is_empty()).collect()
}

fn not_supported(key: &str, text: String) -> Issue {
    Issue {
        severity: crate::Severity::Warning,
        code: IssueCode::NotSupported,
        expression: key.to_owned(),
        diagnostics: text,
    }
}

fn parse_prefix(value: &str) -> (Prefix, &str) {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("lt", Prefix::Lt),
        ("gt", Prefix::Gt),
        ("le", Prefix::Le),
        ("ge", Prefix::Ge),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    for (text, prefix) in prefixes {
        if let Some(rest) = value.strip_prefix(text)
            && rest.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        {
            return (prefix, rest);
        }
    }
    (Prefix::Eq, value)
}

/// Unescapes `\$` and `\\`.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('$' | '\\'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits a composite value on its first unescaped `$`.
fn split_composite(value: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '$' if !escaped => return Some((&value[..i], &value[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// Parses one value of a parameter: the predicates any of which may match (more than one
/// for a parameter that is the union of others).
fn parse_value(
    resource: &str,
    name: &str,
    modifier: Option<&str>,
    value: &str,
) -> Result<Vec<Predicate>, Issue> {
    let key = match modifier {
        Some(m) => format!("{name}:{m}"),
        None => name.to_owned(),
    };
    let bad = |text: String| Issue::error(IssueCode::Value, key.clone(), text);
    if name == "_id" {
        if modifier.is_some() {
            return Err(not_supported(
                &key,
                format!("modifier on {name} is not supported"),
            ));
        }
        let value = unescape(value);
        return if is_valid_id(&value) {
            Ok(vec![Predicate::Id(value)])
        } else {
            Err(bad(format!("{value:?} is not a valid id")))
        };
    }
    if name == "_lastUpdated" {
        let (prefix, text) = parse_prefix(value);
        let (low, high) =
            parse_range(text).ok_or_else(|| bad(format!("{text:?} is not a valid date")))?;
        return Ok(vec![Predicate::LastUpdated { prefix, low, high }]);
    }
    let Some(param) = find_param(resource, name) else {
        return Err(not_supported(
            &key,
            format!("unknown search parameter {name} for {resource}"),
        ));
    };
    if !param.union_of.is_empty() {
        let mut out = Vec::new();
        for member in param.union_of {
            out.extend(parse_value(resource, member, modifier, value)?);
        }
        return Ok(out);
    }
    let index_param = param.index_of.unwrap_or(param.name).to_owned();
    if modifier == Some("missing") {
        let Some(kind) = stored_kind(param) else {
            return Err(not_supported(
                &key,
                format!(":missing is not supported on the composite {name}"),
            ));
        };
        if restricted_view(param) {
            return Err(not_supported(
                &key,
                format!(
                    ":missing is not supported on {name}: its entries are {index_param}'s, \
                     which hold other targets too (use {index_param}:missing)"
                ),
            ));
        }
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(format!(":missing takes true or false, not {value:?}"))),
        };
        return Ok(vec![Predicate::Missing {
            param: index_param,
            kind,
            missing,
        }]);
    }
    let Some(c) = param.composite else {
        let value = unescape(value);
        if param.phonetic || param.canonical {
            if let Some(m) = modifier {
                return Err(not_supported(
                    &key,
                    format!("modifier :{m} is not supported on {name}"),
                ));
            }
            return parse_phonetic_or_canonical(param, index_param, &value, &bad).map(|p| vec![p]);
        }
        if let Some(set) = parse_modifier_set(param, &index_param, modifier, &value, &bad)? {
            return Ok(set);
        }
        return parse_kind(param, index_param, modifier, &value, &bad).map(|p| vec![p]);
    };
    if let Some(m) = modifier {
        return Err(not_supported(
            &key,
            format!("modifier :{m} is not supported on {name}"),
        ));
    }
    let Some((left, right)) = split_composite(value) else {
        return Err(bad(format!(
            "{value:?} is not a composite value: {name} takes its two parts joined by '$'"
        )));
    };
    let (left, right) = (unescape(left), unescape(right));
    let composite_key = match c.key.kind {
        ParamKind::Reference => match split_reference(&left) {
            Some((t, id)) => format!("{t}/{id}"),
            None => {
                return Err(bad(format!(
                    "{left:?} is not a reference Type/id (the first part of {name})"
                )));
            }
        },
        _ => match left.split_once('|') {
            _ if left.is_empty() => return Err(bad(format!("the first part of {name} is empty"))),
            Some((_, "")) => {
                return Err(bad(format!(
                    "{left:?}: the first part of {name} needs a code"
                )));
            }
            Some((_, code)) if code.contains('|') => {
                return Err(bad(format!("{left:?} is not [system|]code")));
            }
            Some((system, code)) => format!("{}|{}", index_token(system), index_token(code)),
            None => index_token(&left),
        },
    };
    let value_param = SearchParam::plain(param.name, c.value.kind);
    let derived_param = derived(name, '$', &index_token(&composite_key));
    parse_kind(&value_param, derived_param, None, &right, &bad).map(|p| vec![p])
}

/// The modifiers whose value stands for several predicates, any of which may match (uri
/// `:above`), or that need their own index (uri `:below`) or name a type
/// (`subject:Patient`); `None` for every other modifier.
fn parse_modifier_set(
    param: &SearchParam,
    index_param: &str,
    modifier: Option<&str>,
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<Option<Vec<Predicate>>, Issue> {
    let name = param.name;
    let uri = |code: &str, param: String| Predicate::Token {
        param,
        system: SystemMatch::None,
        code: Some(index_token(code)),
    };
    Ok(Some(match (param.kind, modifier) {
        // The URIs under the value: equality with one of their path prefixes.
        (ParamKind::Uri, Some("below")) => vec![uri(
            value.trim_end_matches('/'),
            derived(index_param, ':', "below"),
        )],
        // The URIs above the value: each of its path prefixes, with or without a final '/'.
        (ParamKind::Uri, Some("above")) => uri_prefixes(value)
            .into_iter()
            .flat_map(|p| [p.to_owned(), format!("{p}/")])
            .map(|code| uri(&code, index_param.to_owned()))
            .collect(),
        // `subject:Patient=123`: the target's type as a modifier.
        (ParamKind::Reference, Some(t)) if crate::types::is_resource_type(t) => {
            let target_id = match split_reference(value) {
                Some((given, id)) if given == t => id.to_owned(),
                Some((given, _)) => {
                    return Err(bad(format!("{value:?} is not a {t} (it names a {given})")));
                }
                None if is_valid_id(value) => value.to_owned(),
                None => return Err(bad(format!("{value:?} is not a valid id"))),
            };
            if let Some(wanted) = param.target.filter(|w| *w != t) {
                return Err(bad(format!("{name} refers to {wanted}, not {t}")));
            }
            vec![Predicate::Reference {
                param: index_param.to_owned(),
                target_type: Some(t.to_owned()),
                target_id,
            }]
        }
        _ => return Ok(None),
    }))
}

/// Parses a value of `param`'s kind into a predicate on the index parameter `index_param`.
fn parse_kind(
    param: &SearchParam,
    index_param: String,
    modifier: Option<&str>,
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<Predicate, Issue> {
    let name = param.name;
    match (param.kind, modifier) {
        (ParamKind::Token, None | Some("not")) => {
            let (system, code) = parse_token(value, bad)?;
            Ok(if modifier == Some("not") {
                Predicate::NotToken {
                    param: index_param,
                    system,
                    code,
                }
            } else {
                Predicate::Token {
                    param: index_param,
                    system,
                    code,
                }
            })
        }
        (ParamKind::Token, Some("text")) if param.text => {
            parse_string(derived(&index_param, ':', "text"), None, value, bad)
        }
        (ParamKind::Token, Some("of-type")) if param.of_type => {
            let parts: Vec<&str> = value.splitn(3, '|').collect();
            let [system, code, id] = parts.as_slice() else {
                return Err(bad(format!(
                    "{value:?} is not type-system|type-code|value (:of-type)"
                )));
            };
            if system.is_empty() || code.is_empty() || id.is_empty() {
                return Err(bad(format!(
                    "{value:?}: :of-type needs a type system, a type code and a value"
                )));
            }
            Ok(Predicate::Token {
                param: derived(&index_param, ':', "of-type"),
                system: SystemMatch::Is(index_token(system)),
                code: Some(index_token(&format!("{code}|{id}"))),
            })
        }
        (ParamKind::Token, Some(m @ ("below" | "above"))) => {
            let Some((system, code)) = value
                .split_once('|')
                .filter(|(s, c)| !s.is_empty() && !c.is_empty())
            else {
                return Err(bad(format!(
                    ":{m} needs system|code (the hierarchy belongs to a code system), got {value:?}"
                )));
            };
            Ok(Predicate::TokenIn {
                param: index_param,
                system: index_token(system),
                codes: vec![index_token(code)],
                expand: Some(if m == "below" {
                    Expand::Below
                } else {
                    Expand::Above
                }),
            })
        }
        (ParamKind::Uri, None) => Ok(Predicate::Token {
            param: index_param,
            system: SystemMatch::None,
            code: Some(index_token(value)),
        }),
        (ParamKind::String, None | Some("exact") | Some("contains")) => {
            parse_string(index_param, modifier, value, bad)
        }
        (ParamKind::Date, None) => {
            let (prefix, text) = parse_prefix(value);
            let (low, high) =
                parse_range(text).ok_or_else(|| bad(format!("{text:?} is not a valid date")))?;
            Ok(Predicate::Date {
                param: index_param,
                prefix,
                low,
                high,
            })
        }
        (ParamKind::Reference, None) => {
            let (target_type, target_id) = match split_reference(value) {
                Some((t, id)) => (Some(t.to_owned()), id.to_owned()),
                None if is_valid_id(value) => (None, value.to_owned()),
                None => return Err(bad(format!("{value:?} is not a valid reference"))),
            };
            if let (Some(wanted), Some(given)) = (param.target, target_type.as_deref())
                && wanted != given
            {
                return Err(bad(format!("{name} refers to {wanted}, not {given}")));
            }
            Ok(Predicate::Reference {
                param: index_param,
                target_type: param.target.map(str::to_owned).or(target_type),
                target_id,
            })
        }
        (ParamKind::Reference, Some("identifier")) => {
            let (system, code) = parse_token(value, bad)?;
            Ok(Predicate::Token {
                // Restricted parameters hold their own `:identifier` entries.
                param: derived(name, ':', "identifier"),
                system,
                code,
            })
        }
        (ParamKind::Quantity | ParamKind::Number, None) => {
            parse_quantity(param.kind, index_param, value, bad)
        }
        (_, Some(m)) => Err(not_supported(
            &derived(name, ':', m),
            format!("modifier :{m} is not supported on {name}"),
        )),
        (ParamKind::Composite, None) => Err(bad(format!("{name} is a composite"))),
    }
}

/// A `phonetic` value (its Soundex code, equal to an entry's) or a canonical reference's
/// (its URL without `|version`, equal to an entry's).
fn parse_phonetic_or_canonical(
    param: &SearchParam,
    index_param: String,
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<Predicate, Issue> {
    if param.canonical {
        let url = canonical_url(value);
        if url.is_empty() {
            return Err(bad(format!("{} takes a canonical URL", param.name)));
        }
        return Ok(Predicate::Token {
            param: index_param,
            system: SystemMatch::None,
            code: Some(index_token(url)),
        });
    }
    let code = soundex(value)
        .ok_or_else(|| bad(format!("{value:?} has no letter to match phonetically")))?;
    Ok(Predicate::String {
        param: index_param,
        how: StringMatch::Exact,
        value: code.clone(),
        normalized: code,
    })
}

/// `[system]|[code]`, `|code` or `code`.
fn parse_token(
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<(SystemMatch, Option<String>), Issue> {
    if value == "|" {
        return Err(bad(
            "a token of '|' alone names neither a system nor a code".into(),
        ));
    }
    if let Some((_, code)) = value.split_once('|')
        && code
            .char_indices()
            .any(|(i, c)| c == '|' && !code[..i].ends_with('\\'))
    {
        return Err(bad(format!(
            "{value:?} is not [system]|[code]: a '|' in a code is escaped as \\|"
        )));
    }
    Ok(match value.split_once('|') {
        None => (SystemMatch::Any, Some(index_token(value))),
        Some(("", code)) => (SystemMatch::None, Some(index_token(code))),
        Some((system, "")) => (SystemMatch::Is(index_token(system)), None),
        Some((system, code)) => (
            SystemMatch::Is(index_token(system)),
            Some(index_token(code)),
        ),
    })
}

fn parse_string(
    index_param: String,
    modifier: Option<&str>,
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<Predicate, Issue> {
    let how = match modifier {
        Some("exact") => StringMatch::Exact,
        Some("contains") => StringMatch::Contains,
        _ => StringMatch::StartsWith,
    };
    let normalized = normalize(value);
    if normalized.len() > MAX_INDEXED {
        return Err(bad(format!(
            "a string search value is at most {MAX_INDEXED} bytes"
        )));
    }
    let value = if how == StringMatch::Exact {
        value.to_owned()
    } else {
        normalized.clone()
    };
    Ok(Predicate::String {
        param: index_param,
        how,
        value,
        normalized,
    })
}

/// `[prefix]number[|system|code]` (a number takes no unit): the searched range is the
/// number's precision range (±10 % for `ap`); `number||code` matches the code in any system
/// (the store compares it with the unit's code, else its display unit).
fn parse_quantity(
    kind: ParamKind,
    index_param: String,
    value: &str,
    bad: &dyn Fn(String) -> Issue,
) -> Result<Predicate, Issue> {
    let (prefix, rest) = parse_prefix(value);
    let parts: Vec<&str> = rest.splitn(3, '|').collect();
    let (number, system, code) = match parts.as_slice() {
        [n] => (*n, SystemMatch::Any, None),
        [n, s, c] if kind == ParamKind::Quantity => (
            *n,
            if s.is_empty() {
                SystemMatch::Any
            } else {
                SystemMatch::Is(index_token(s))
            },
            (!c.is_empty()).then(|| index_token(c)),
        ),
        _ if kind == ParamKind::Number => {
            return Err(bad(format!("{value:?} is not [prefix]number")));
        }
        _ => {
            return Err(bad(format!(
                "{value:?} is not [prefix]number[|system|code]"
            )));
        }
    };
    if parts.len() == 3 && code.is_none() && system == SystemMatch::Any {
        return Err(bad(format!("{value:?}: a unit needs a code")));
    }
    let range = if prefix == Prefix::Ap {
        approximate_range(number)
    } else {
        precision_range(number)
    };
    let Some((low, high)) = range else {
        return Err(bad(format!("{number:?} is not a decimal number")));
    };
    Ok(Predicate::Quantity {
        param: index_param,
        prefix,
        low,
        high,
        system,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soundex_codes() {
        // The National Archives' examples, and the usual reference cases.
        for (word, code) in [
            ("Robert", "R163"),
            ("Rupert", "R163"),
            ("Rubin", "R150"),
            ("Ashcraft", "A261"),
            ("Ashcroft", "A261"),
            ("Tymczak", "T522"),
            ("Pfister", "P236"),
            ("Honeyman", "H555"),
            ("Lee", "L000"),
            ("Gutierrez", "G362"),
            ("Jackson", "J250"),
            ("Washington", "W252"),
            ("Chálmers", "C456"),
            ("o'brien", "O165"),
        ] {
            assert_eq!(soundex(word).as_deref(), Some(code), "{word}");
        }
        assert_eq!(soundex("Smith"), soundex("Smyth"));
        assert_eq!(soundex("12 -"), None);
        assert_eq!(soundex(""), None);
    }

    #[test]
    fn phonetic_names_are_indexed_and_searched_by_code() {
        let json = br#"{"resourceType":"Patient","id":"p","name":[{"family":"Van Dyke","given":["Smyth","Jon"]}]}"#;
        let res = crate::json::parse_resource(json, &Default::default());
        let entries = res.map(|r| index_entries(&r)).unwrap_or_default();
        let mut codes: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                IndexEntry::String {
                    param, normalized, ..
                } if param == "phonetic" => Some(normalized.as_str()),
                _ => None,
            })
            .collect();
        codes.sort_unstable();
        // "Van Dyke" whole (V532) and its words, then each given.
        assert_eq!(codes, ["D200", "J500", "S530", "V500", "V532"]);
        let org = br#"{"resourceType":"Organization","id":"o","name":"Acme Healthcare"}"#;
        let res = crate::json::parse_resource(org, &Default::default());
        let entries = res.map(|r| index_entries(&r)).unwrap_or_default();
        for code in ["A250", "H432"] {
            assert!(entries.contains(&IndexEntry::String {
                param: "phonetic".into(),
                normalized: code.into(),
                exact: code.into()
            }));
        }
        let q = parse("Patient", &[("phonetic", "Smith,John")]).map(|p| p.query.all_of);
        let want = |code: &str| Predicate::String {
            param: "phonetic".into(),
            how: StringMatch::Exact,
            value: code.into(),
            normalized: code.into(),
        };
        assert_eq!(q.ok(), Some(vec![vec![want("S530"), want("J500")]]));
        assert!(parse("Practitioner", &[("phonetic", "1234")]).is_err());
        // No modifier but :missing.
        let p = parse("Patient", &[("phonetic:exact", "Smith")]);
        assert!(p.is_ok_and(|p| p.query.all_of.is_empty() && p.ignored.len() == 1));
        assert!(parse("Organization", &[("phonetic:missing", "true")]).is_ok());
        let param = find_param("Patient", "phonetic");
        assert_eq!(param.map(modifiers_of), Some(vec!["missing"]));
    }

    #[test]
    fn canonical_references_are_indexed_and_searched_as_urls() {
        let json = br#"{"resourceType":"Procedure","id":"p","status":"completed","subject":{"reference":"Patient/a"},
            "instantiatesCanonical":["http://example.org/PlanDefinition/x|2.0","http://example.org/ActivityDefinition/y"]}"#;
        let res = crate::json::parse_resource(json, &Default::default());
        let entries = res.map(|r| index_entries(&r)).unwrap_or_default();
        for url in [
            "http://example.org/PlanDefinition/x",
            "http://example.org/ActivityDefinition/y",
        ] {
            assert!(entries.contains(&IndexEntry::Token {
                param: "instantiates-canonical".into(),
                system: None,
                code: url.into()
            }));
        }
        for value in [
            "http://example.org/PlanDefinition/x",
            "http://example.org/PlanDefinition/x|2.0",
        ] {
            let q = parse("ServiceRequest", &[("instantiates-canonical", value)]);
            assert_eq!(
                q.map(|p| p.query.all_of).ok(),
                Some(vec![vec![Predicate::Token {
                    param: "instantiates-canonical".into(),
                    system: SystemMatch::None,
                    code: Some("http://example.org/PlanDefinition/x".into()),
                }]])
            );
        }
        let missing = parse("Procedure", &[("instantiates-canonical:missing", "true")]);
        assert_eq!(
            missing.map(|p| p.query.all_of).ok(),
            Some(vec![vec![Predicate::Missing {
                param: "instantiates-canonical".into(),
                kind: IndexKind::Token,
                missing: true,
            }]])
        );
        // No target to follow: not an _include / chain parameter, no :identifier or [type].
        assert_eq!(reference_param("Procedure", "instantiates-canonical"), None);
        let p = parse(
            "Procedure",
            &[("instantiates-canonical:PlanDefinition", "x")],
        );
        assert!(p.is_ok_and(|p| p.query.all_of.is_empty()));
        assert!(parse("Procedure", &[("instantiates-canonical", "|1.0")]).is_err());
    }

    fn parse(resource: &str, q: &[(&str, &str)]) -> Result<ParsedSearch, Vec<Issue>> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_query(
            resource,
            &pairs,
            &SearchLimits {
                default_count: 20,
                max_count: 100,
            },
        )
    }

    #[test]
    fn uri_above_below_and_the_reference_type_modifier() {
        assert_eq!(
            uri_prefixes("http://a.org/fhir/x/"),
            ["http://a.org", "http://a.org/fhir", "http://a.org/fhir/x"]
        );
        assert_eq!(uri_prefixes("urn:oid:1.2"), ["urn:oid:1.2"]);
        let below =
            parse("Patient", &[("_profile:below", "http://a.org/fhir/")]).map(|s| s.query.all_of);
        assert_eq!(
            below,
            Ok(vec![vec![Predicate::Token {
                param: "_profile:below".into(),
                system: SystemMatch::None,
                code: Some("http://a.org/fhir".into())
            }]])
        );
        let above = parse("Patient", &[("_profile:above", "http://a.org/x")])
            .map(|s| s.query.all_of[0].len());
        assert_eq!(above, Ok(4));
        // Stored entries: the URI, and one `:below` entry per prefix.
        let serde_json::Value::Object(o) = serde_json::json!({"resourceType": "Patient",
            "meta": {"profile": ["http://a.org/fhir/p"]}})
        else {
            unreachable!()
        };
        let r = Resource::from_trusted(o).expect("a patient");
        let below: Vec<_> = index_entries(&r)
            .into_iter()
            .filter(|e| matches!(e, IndexEntry::Token { param, .. } if param == "_profile:below"))
            .collect();
        assert_eq!(below.len(), 3);
        let typed = parse("Observation", &[("subject:Patient", "p1")]).map(|s| s.query.all_of);
        assert_eq!(
            typed,
            Ok(vec![vec![Predicate::Reference {
                param: "subject".into(),
                target_type: Some("Patient".into()),
                target_id: "p1".into()
            }]])
        );
        assert!(parse("Observation", &[("subject:Patient", "Group/g")]).is_err());
        assert!(parse("Observation", &[("patient:Group", "g")]).is_err());
    }

    #[test]
    fn tokens_strings_and_references() {
        let s = parse(
            "Observation",
            &[
                ("code", "http://loinc.org|8867-4,|x"),
                ("patient", "Patient/p1"),
            ],
        )
        .map(|s| s.query.all_of)
        .unwrap_or_default();
        assert_eq!(
            s,
            vec![
                vec![
                    Predicate::Token {
                        param: "code".into(),
                        system: SystemMatch::Is("http://loinc.org".into()),
                        code: Some("8867-4".into())
                    },
                    Predicate::Token {
                        param: "code".into(),
                        system: SystemMatch::None,
                        code: Some("x".into())
                    }
                ],
                vec![Predicate::Reference {
                    param: "subject".into(),
                    target_type: Some("Patient".into()),
                    target_id: "p1".into()
                }]
            ]
        );
        // `family=nelson` is a string, never read as the prefix `ne`.
        let s = parse("Patient", &[("family", "Nélson")]).map(|s| s.query.all_of);
        assert_eq!(
            s,
            Ok(vec![vec![Predicate::String {
                param: "family".into(),
                how: StringMatch::StartsWith,
                value: "nelson".into(),
                normalized: "nelson".into()
            }]])
        );
    }

    #[test]
    fn dates_counts_and_errors() {
        let s = parse("Patient", &[("birthdate", "ge1970-01"), ("_count", "500")]);
        let q = s.map(|s| s.query).ok();
        assert_eq!(q.as_ref().map(|q| q.count), Some(100));
        assert!(matches!(
            q.as_ref().map(|q| &q.all_of[0][0]),
            Some(Predicate::Date {
                prefix: Prefix::Ge,
                ..
            })
        ));
        assert!(parse("Patient", &[("birthdate", "1970-13")]).is_err());
        assert!(parse("Patient", &[("_count", "x")]).is_err());
        let lenient = parse("Patient", &[("nonsense", "1")]);
        assert_eq!(lenient.map(|s| s.ignored.len()), Ok(1));
        assert!(parse("Observation", &[("patient", "Group/1")]).is_err());
        let below = parse(
            "Condition",
            &[("code:below", "http://hl7.org/fhir/sid/icd-10|J45")],
        );
        assert_eq!(
            below.map(|s| s.query.all_of),
            Ok(vec![vec![Predicate::TokenIn {
                param: "code".into(),
                system: "http://hl7.org/fhir/sid/icd-10".into(),
                codes: vec!["J45".into()],
                expand: Some(Expand::Below)
            }]])
        );
        assert!(
            parse("Condition", &[("code:below", "J45")]).is_err(),
            "needs a system"
        );
    }

    #[test]
    fn index_extraction() {
        let json = br#"{"resourceType":"Patient","id":"p","name":[{"family":"Ch\u00e1lmers","given":["Peter","James"]}],
            "identifier":[{"system":"urn:x","value":"12"}],"birthDate":"1974-12-25","gender":"male"}"#;
        let res = crate::json::parse_resource(json, &Default::default());
        let entries = res.map(|r| index_entries(&r)).unwrap_or_default();
        assert!(entries.contains(&IndexEntry::String {
            param: "family".into(),
            normalized: "chalmers".into(),
            exact: "Chálmers".into()
        }));
        assert!(entries.contains(&IndexEntry::Token {
            param: "identifier".into(),
            system: Some("urn:x".into()),
            code: "12".into()
        }));
        assert_eq!(
            entries
                .iter()
                .filter(|e| matches!(e, IndexEntry::String { param, .. } if param == "name"))
                .count(),
            3
        );
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, IndexEntry::Date { param, .. } if param == "birthdate"))
        );
    }

    #[test]
    fn long_values_are_indexed_within_the_index_limits() {
        let long = "x".repeat(3 * MAX_INDEXED);
        let token = index_token(&long);
        assert!(token.len() < 100 && token.starts_with('\u{1}'));
        assert_eq!(index_token("short"), "short");
        // A search for the long code compares what the index holds.
        let found = parse("Patient", &[("identifier", &format!("urn:x|{long}"))])
            .map(|s| s.query.all_of)
            .unwrap_or_default();
        assert_eq!(
            found,
            vec![vec![Predicate::Token {
                param: "identifier".into(),
                system: SystemMatch::Is("urn:x".into()),
                code: Some(token)
            }]]
        );
        // Strings are cut on a character boundary; a longer search value is refused.
        let cut = index_string("é".repeat(MAX_INDEXED));
        assert!(cut.len() <= MAX_INDEXED && cut.chars().all(|c| c == 'é'));
        assert!(parse("Patient", &[("family", &"a".repeat(MAX_INDEXED + 1))]).is_err());
        assert!(parse("Patient", &[("family", &"a".repeat(MAX_INDEXED))]).is_ok());
    }

    #[test]
    fn malformed_parameters_are_refused_or_reported() {
        for (k, v) in [
            ("family", "a\u{0}b"),
            ("name", "\u{1b}"),
            ("identifier", "|"),
            ("gender", "a|b|c"),
        ] {
            assert!(parse("Patient", &[(k, v)]).is_err(), "{k}={v:?}");
        }
        assert!(parse("Patient", &[("_count", "5"), ("_count", "10")]).is_err());
        assert!(parse("Patient", &[("identifier", "urn:x|a\\|b")]).is_ok());
        // An empty value selects nothing: reported, so strict handling refuses it.
        let empty = parse("Patient", &[("family", "")]).expect("parses");
        assert!(empty.query.all_of.is_empty());
        assert_eq!(empty.ignored.len(), 1);
    }

    fn example(name: &str) -> Vec<IndexEntry> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fhir-data/r4-examples")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_default();
        crate::json::parse_resource(&bytes, &Default::default())
            .map(|r| index_entries(&r))
            .unwrap_or_default()
    }

    fn quantity(
        param: &str,
        system: Option<&str>,
        code: &str,
        low: &str,
        high: &str,
    ) -> IndexEntry {
        IndexEntry::Quantity {
            param: param.into(),
            system: system.map(Into::into),
            code: Some(code.into()),
            low: low.into(),
            high: high.into(),
        }
    }

    fn token(param: &str, system: Option<&str>, code: &str) -> IndexEntry {
        IndexEntry::Token {
            param: param.into(),
            system: system.map(Into::into),
            code: code.into(),
        }
    }

    #[test]
    fn the_table_is_the_specs() {
        // Generated, sorted by type then name (the lookups rely on it), with the names the
        // access SQL and the chains use.
        let typed = &PARAMS[..PARAMS.len() - common_params().len()];
        assert!(
            typed
                .windows(2)
                .all(|w| (w[0].resource, w[0].name) < (w[1].resource, w[1].name))
        );
        assert!(PARAMS.len() > 300, "{}", PARAMS.len());
        for (rtype, name) in [
            ("Patient", "general-practitioner"),
            ("Encounter", "participant"),
            ("Encounter", "based-on"),
            ("Encounter", "episode-of-care"),
            ("Encounter", "subject"),
            ("ServiceRequest", "performer"),
            ("ServiceRequest", "requester"),
            ("CareTeam", "participant"),
            ("CareTeam", "encounter"),
            ("EpisodeOfCare", "care-manager"),
            ("EpisodeOfCare", "team"),
            ("Observation", "encounter"),
        ] {
            let p = find_param(rtype, name);
            assert!(
                p.is_some_and(|p| p.kind == ParamKind::Reference && p.index_of.is_none()),
                "{rtype}.{name}"
            );
        }
        for rtype in ["Observation", "Condition", "Encounter", "DocumentReference"] {
            assert_eq!(
                reference_param(rtype, "patient"),
                Some(ReferenceParam {
                    name: "patient",
                    stored: "subject",
                    target: Some("Patient")
                })
            );
        }
        assert_eq!(
            reference_param("Encounter", "practitioner").map(|p| p.stored),
            Some("participant")
        );
        assert!(
            find_param("Location", "near").is_none(),
            "special is left out"
        );
        let deceased = |body: &[u8]| {
            crate::json::parse_resource(body, &Default::default())
                .map(|r| index_entries(&r))
                .unwrap_or_default()
                .into_iter()
                .filter(|e| matches!(e, IndexEntry::Token { param, .. } if param == "deceased"))
                .collect::<Vec<_>>()
        };
        for (body, want) in [
            (&br#"{"resourceType":"Patient"}"#[..], "false"),
            (
                br#"{"resourceType":"Patient","deceasedBoolean":false}"#,
                "false",
            ),
            (
                br#"{"resourceType":"Patient","deceasedBoolean":true}"#,
                "true",
            ),
            (
                br#"{"resourceType":"Patient","deceasedDateTime":"2020"}"#,
                "true",
            ),
        ] {
            assert_eq!(deceased(body), vec![token("deceased", None, want)]);
        }
        assert!(find_param("Patient", "phonetic").is_some_and(|p| p.phonetic));
        assert!(find_param("Procedure", "instantiates-canonical").is_some_and(|p| p.canonical));
        assert!(find_param("Location", "near").is_none());
        assert!(
            find_param("Basic", "_tag").is_some(),
            "every type has the common ones"
        );
        assert!(
            find_param("Basic", "code").is_none(),
            "only the mapped types"
        );
    }

    #[test]
    fn spec_examples_index_every_kind() {
        let obs = example("Observation-example.json");
        assert!(obs.contains(&quantity(
            "value-quantity",
            Some("http://unitsofmeasure.org"),
            "[lb_av]",
            "184.5",
            "185.5"
        )));
        // The composite, with the system, with any system.
        for key in ["http://loinc.org|29463-7", "29463-7"] {
            assert!(obs.contains(&quantity(
                &format!("code-value-quantity${key}"),
                Some("http://unitsofmeasure.org"),
                "[lb_av]",
                "184.5",
                "185.5"
            )));
        }
        assert!(obs.iter().any(|e| matches!(e,
            IndexEntry::String { param, normalized, .. } if param == "code:text" && normalized == "body weight")));
        assert!(
            !obs.iter().any(|e| matches!(e,
            IndexEntry::Reference { param, .. } if param == "patient")),
            "patient reads subject's rows"
        );

        let patient = example("Patient-example.json");
        assert!(patient.contains(&token(
            "identifier:of-type",
            Some("http://terminology.hl7.org/CodeSystem/v2-0203"),
            "MR|12345"
        )));
        assert!(patient.contains(&token("phone", Some("phone"), "(03) 5555 6473")));
        assert!(
            !patient
                .iter()
                .any(|e| matches!(e, IndexEntry::Token { param, .. } if param == "email"))
        );

        let condition = example("Condition-f202.json");
        assert!(condition.contains(&quantity(
            "onset-age",
            Some("http://unitsofmeasure.org"),
            "a",
            "51.5",
            "52.5"
        )));

        let doc = example("DocumentReference-example.json");
        assert!(doc.contains(&token(
            "relationship$DocumentReference/example",
            None,
            "appends"
        )));
    }

    #[test]
    fn components_correlate() {
        let bp = br#"{"resourceType":"Observation","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
            "subject":{"reference":"Patient/p","identifier":{"system":"urn:mrn","value":"7"}},
            "component":[
              {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},
               "valueQuantity":{"value":107,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
              {"code":{"coding":[{"code":"8462-4"}]},
               "valueQuantity":{"value":60,"unit":"mmHg"}}]}"#;
        let entries = crate::json::parse_resource(bp, &Default::default())
            .map(|r| index_entries(&r))
            .unwrap_or_default();
        let q = |param: &str| {
            entries
                .iter()
                .filter(|e| matches!(e, IndexEntry::Quantity { param: p, .. } if p == param))
                .count()
        };
        assert_eq!(
            q("component-code-value-quantity$http://loinc.org|8480-6"),
            1
        );
        assert_eq!(q("component-code-value-quantity$8480-6"), 1);
        assert_eq!(q("component-code-value-quantity$|8462-4"), 1);
        assert_eq!(q("component-code-value-quantity$8462-4"), 1);
        // The combo parameters store nothing: they read the others.
        assert_eq!(q("combo-code-value-quantity$8462-4"), 0);
        assert_eq!(q("combo-value-quantity"), 0);
        // No pairing across components, and none with the resource's own code.
        assert_eq!(q("component-code-value-quantity$85354-9"), 0);
        assert_eq!(q("code-value-quantity$85354-9"), 0);
        assert!(entries.contains(&quantity(
            "component-code-value-quantity$8462-4",
            None,
            "mmHg",
            "59.5",
            "60.5"
        )));
        assert!(entries.contains(&token("subject:identifier", Some("urn:mrn"), "7")));
        assert!(entries.contains(&token("patient:identifier", Some("urn:mrn"), "7")));
    }

    #[test]
    fn composites_quantities_and_modifiers_parse() {
        let one = |rtype: &str, k: &str, v: &str| {
            parse(rtype, &[(k, v)]).map(|s| s.query.all_of.concat())
        };
        assert_eq!(
            one(
                "Observation",
                "code-value-quantity",
                "http://loinc.org|8480-6$gt100"
            ),
            Ok(vec![Predicate::Quantity {
                param: "code-value-quantity$http://loinc.org|8480-6".into(),
                prefix: Prefix::Gt,
                low: "99.5".into(),
                high: "100.5".into(),
                system: SystemMatch::Any,
                code: None
            }])
        );
        assert_eq!(
            one(
                "Observation",
                "value-quantity",
                "ap5.4|http://unitsofmeasure.org|mg"
            ),
            Ok(vec![Predicate::Quantity {
                param: "value-quantity".into(),
                prefix: Prefix::Ap,
                low: "4.86".into(),
                high: "5.94".into(),
                system: SystemMatch::Is("http://unitsofmeasure.org".into()),
                code: Some("mg".into())
            }])
        );
        assert!(matches!(
            one("Observation", "value-quantity", "le-1.5||mmHg").as_deref(),
            Ok([Predicate::Quantity {
                prefix: Prefix::Le,
                system: SystemMatch::Any,
                code: Some(_),
                ..
            }])
        ));
        assert_eq!(
            one(
                "Observation",
                "code-value-concept",
                "|x$http://snomed.info/sct|260385009"
            ),
            Ok(vec![Predicate::Token {
                param: "code-value-concept$|x".into(),
                system: SystemMatch::Is("http://snomed.info/sct".into()),
                code: Some("260385009".into())
            }])
        );
        assert_eq!(
            one("Observation", "code:text", "Body W"),
            Ok(vec![Predicate::String {
                param: "code:text".into(),
                how: StringMatch::StartsWith,
                value: "body w".into(),
                normalized: "body w".into()
            }])
        );
        assert_eq!(
            one(
                "Patient",
                "identifier:of-type",
                "http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"
            ),
            Ok(vec![Predicate::Token {
                param: "identifier:of-type".into(),
                system: SystemMatch::Is("http://terminology.hl7.org/CodeSystem/v2-0203".into()),
                code: Some("MR|12345".into())
            }])
        );
        assert_eq!(
            one("Observation", "patient:identifier", "urn:mrn|7"),
            Ok(vec![Predicate::Token {
                param: "patient:identifier".into(),
                system: SystemMatch::Is("urn:mrn".into()),
                code: Some("7".into())
            }])
        );
        assert_eq!(
            one("Observation", "value-quantity:missing", "true"),
            Ok(vec![Predicate::Missing {
                param: "value-quantity".into(),
                kind: IndexKind::Quantity,
                missing: true
            }])
        );
        assert_eq!(
            one(
                "DocumentReference",
                "relationship",
                "DocumentReference/example$appends"
            ),
            Ok(vec![Predicate::Token {
                param: "relationship$DocumentReference/example".into(),
                system: SystemMatch::Any,
                code: Some("appends".into())
            }])
        );
        // A union reads its members, any of which may match; under a negation, all must.
        assert_eq!(
            one("Observation", "combo-code-value-quantity", "8480-6$100").map(|p| p
                .iter()
                .map(|p| match p {
                    Predicate::Quantity { param, .. } => param.clone(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()),
            Ok(vec![
                "code-value-quantity$8480-6".to_owned(),
                "component-code-value-quantity$8480-6".to_owned()
            ])
        );
        let groups =
            |k: &str, v: &str| parse("Observation", &[(k, v)]).map(|s| s.query.all_of.len());
        assert_eq!(groups("combo-code", "a,b"), Ok(1));
        assert_eq!(groups("combo-code:not", "a,b"), Ok(4));
        assert_eq!(groups("combo-code:missing", "true"), Ok(2));
        assert_eq!(groups("combo-code:missing", "false"), Ok(1));
        // Malformed values are 400s that say what is wrong.
        for (rtype, k, v) in [
            ("Observation", "value-quantity", "abc"),
            ("Observation", "value-quantity", "5|x"),
            ("Observation", "value-quantity", "5||"),
            ("Observation", "value-quantity", "1e99999999"),
            ("Observation", "code-value-quantity", "8480-6"),
            ("Observation", "code-value-quantity", "$5"),
            ("Observation", "code-value-quantity", "http://loinc.org|$5"),
            ("Observation", "code-value-quantity", "8480-6$x"),
            ("Patient", "identifier:of-type", "MR|12345"),
            ("DocumentReference", "relationship", "example$appends"),
        ] {
            let r = parse(rtype, &[(k, v)]);
            assert!(
                r.as_ref()
                    .is_err_and(|e| e.iter().all(|i| i.code == IssueCode::Value)),
                "{k}={v}: {r:?}"
            );
        }
        // Modifiers a parameter does not take are reported, not guessed at.
        for (rtype, k) in [
            ("Observation", "patient:missing"),
            ("Patient", "gender:text"),
            ("Patient", "name:of-type"),
            ("Observation", "code-value-quantity:missing"),
        ] {
            assert_eq!(
                parse(rtype, &[(k, "x")]).map(|s| s.ignored.len()),
                Ok(1),
                "{k}"
            );
        }
        // An escaped $ is no separator.
        assert_eq!(
            one("Observation", "code-value-string", "a\\$b$c").map(|p| p.len()),
            Ok(1)
        );
        assert!(matches!(
            one("Observation", "code-value-string", "a\\$b$c").as_deref(),
            Ok([Predicate::String { param, .. }]) if param == "code-value-string$a$b"
        ));
    }
}
