//! Answers questions about a `(system, code)` pair over code tables it was given: WHO ICD-10,
//! ICPC-2, ICD-10-CM and the ICPC-2 → ICD-10 map.
//!
//! Pure and in memory: [`Terminology::load_dir`] is the only function that touches the file
//! system, and nothing here knows FHIR JSON. The table formats and the canonical system URIs
//! are described in `shared/terminology/README.md`.
//!
//! ICPC-2 chapter + process combinations (`K50`: a prescription for a cardiovascular
//! problem) are not rows of `icpc2.tsv`, but records carry them. They are accepted as codes
//! whose display is the process code's and whose parent is the process code (`K50` is a kind
//! of `-50`). They are not counted in [`SystemInfo::concept_count`] and [`Terminology::search`]
//! does not list them, because the published table does not.
//!
//! # ICD-10 from ClaML
//!
//! WHO distributes ICD-10 as ClaML 2.0 XML. [`Terminology::load_icd10_claml`] reads such a
//! file, and [`Terminology::load_dir`] reads `icd10-who.claml.xml` ([`ICD10_CLAML_FILE`])
//! when the directory has it, *instead of* `icd10-who.tsv` (the TSV is then not opened).
//! Only that exact file name is picked up; rename WHO's download (for example
//! `icd102019en.xml`) to it. Each `<Class kind="chapter|block|category" code="…">` becomes
//! the concept the TSV row would be: its parent is the `<SuperClass>`, its display the
//! text of the `xml:lang="en"` `<Label>` (else the first label) of `<Rubric
//! kind="preferred">`, with the text of nested `<Reference>`, `<Term>`, `<Fragment>`… elements
//! included (fragments and paragraphs separate words) and whitespace collapsed; categories
//! are selectable. Inclusion, exclusion and note rubrics, `<ModifierClass>` and `<Modifier>`
//! are not read, so the optional fifth-character subclassifications are not codes (as in the
//! TSV). The edition ([`SystemInfo::version`]) is `<Title version>`, `unknown` if absent.
//! Malformed XML, a class without a code, kind or preferred label, an unknown kind, a
//! duplicate code or a `<SuperClass>` that is not a class of the file is
//! [`TerminologyError::Malformed`], naming the line.

mod claml;
mod load;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// FHIR system URI of WHO ICD-10.
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
/// FHIR system URI of ICPC-2.
pub const ICPC2: &str = "http://hl7.org/fhir/sid/icpc-2";
/// FHIR system URI of ICD-10-CM.
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

/// The file name under which [`Terminology::load_dir`] reads WHO ICD-10 in ClaML, in
/// preference to `icd10-who.tsv`.
pub const ICD10_CLAML_FILE: &str = "icd10-who.claml.xml";

/// Why loading the tables failed.
#[derive(Debug, thiserror::Error)]
pub enum TerminologyError {
    /// The directory or a table in it exists but cannot be read (permissions, a broken gzip
    /// stream): fix the deployment.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A table does not follow its format: fix or replace the file.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

/// What a row of a code table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A chapter: ICD-10 `X`, ICD-10-CM `10`, ICPC-2 `K`. A grouping, never a clinical code.
    Chapter,
    /// An ICD-10 block such as `J40-J47`. A grouping, never a clinical code.
    Block,
    /// An ICD-10 category or subcategory (`J45`, `J45.0`).
    Category,
    /// An ICPC-2 process code (`-50`), or a chapter + process combination (`K50`).
    Process,
    /// An ICPC-2 rubric (`K86`).
    Rubric,
}

impl Kind {
    /// The name used in the tables' `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chapter => "chapter",
            Kind::Block => "block",
            Kind::Category => "category",
            Kind::Process => "process",
            Kind::Rubric => "rubric",
        }
    }
}

/// One loaded code system, as listed by [`Terminology::systems`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// The FHIR system URI, one of [`ICD10`], [`ICPC2`], [`ICD10CM`].
    pub uri: &'static str,
    /// A human-readable name.
    pub name: &'static str,
    /// The edition the table format describes (the tables carry no version of their own).
    pub version: &'static str,
    /// Number of rows in the table.
    pub concept_count: usize,
}

/// A concept as [`Terminology::lookup`] and [`Terminology::search`] return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConceptRef<'a> {
    /// The code as published (`J45.0`, `K86`, `-50`).
    pub code: &'a str,
    /// The display (ICPC-2: the "preferred" title).
    pub display: &'a str,
    /// ICPC-2's short title; `None` for other systems.
    pub short_display: Option<&'a str>,
    /// What the row is.
    pub kind: Kind,
    /// The parent's code; `None` at the top.
    pub parent: Option<&'a str>,
    /// The direct children's codes, in table order.
    pub children: Vec<&'a str>,
    /// Whether the code may stand in a clinical `Coding` (see [`Terminology::validate`]).
    pub selectable: bool,
    /// ICD-10-CM only: valid for claims and reporting (a leaf); `None` for other systems.
    pub billable: Option<bool>,
}

/// The answer of [`Terminology::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation<'a> {
    /// The system is not loaded: the code can be neither accepted nor rejected.
    SystemNotLoaded,
    /// The code exists, is selectable, and the display (if given) matches.
    Valid,
    /// The code is valid but the given display does not match; a warning, not an error.
    ValidWrongDisplay {
        /// The code's display.
        expected: &'a str,
    },
    /// The code exists but is a grouping (ICD-10 chapter or block, ICPC-2 chapter).
    NotSelectable {
        /// What the code is.
        kind: Kind,
    },
    /// The system is loaded and has no such code.
    UnknownCode,
}

impl Validation<'_> {
    /// Whether a `Coding` with this outcome may be stored (a wrong display is only a warning).
    pub fn is_valid(&self) -> bool {
        matches!(
            self,
            Validation::Valid | Validation::ValidWrongDisplay { .. }
        )
    }
}

/// How two codes relate in the hierarchy (FHIR `$subsumes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsumption {
    /// Same code.
    Equivalent,
    /// The first code is an ancestor of the second.
    Subsumes,
    /// The first code is a descendant of the second.
    SubsumedBy,
    /// Neither is below the other.
    NotSubsumed,
}

impl Subsumption {
    /// The FHIR `concept-subsumption-outcome` code.
    pub fn as_str(self) -> &'static str {
        match self {
            Subsumption::Equivalent => "equivalent",
            Subsumption::Subsumes => "subsumes",
            Subsumption::SubsumedBy => "subsumed-by",
            Subsumption::NotSubsumed => "not-subsumed",
        }
    }
}

/// One row of a table, with its place in the tree.
struct Concept {
    code: Box<str>,
    display: Box<str>,
    short_display: Option<Box<str>>,
    kind: Kind,
    parent: Option<usize>,
    children: Vec<usize>,
    billable: Option<bool>,
    selectable: bool,
    /// False for ICPC-2 chapter + process combinations, which the table does not list.
    listed: bool,
}

impl Concept {
    /// The display, then the short title if any.
    fn displays(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.display).chain(self.short_display.as_deref())
    }
}

/// A loaded table: concepts in file order, indexed by code.
struct CodeSystem {
    info: SystemInfo,
    concepts: Vec<Concept>,
    index: HashMap<Box<str>, usize>,
}

impl CodeSystem {
    fn get(&self, code: &str) -> Option<usize> {
        self.index.get(code).copied()
    }

    fn code(&self, i: usize) -> &str {
        &self.concepts[i].code
    }

    fn concept_ref(&self, i: usize) -> ConceptRef<'_> {
        let c = &self.concepts[i];
        ConceptRef {
            code: &c.code,
            display: &c.display,
            short_display: c.short_display.as_deref(),
            kind: c.kind,
            parent: c.parent.map(|p| self.code(p)),
            children: c.children.iter().map(|&ch| self.code(ch)).collect(),
            selectable: c.selectable,
            billable: c.billable,
        }
    }

    /// Indices of the ancestors of `i`, parent first. Loading rejects cycles, so this ends.
    fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.concepts[i].parent, |&p| self.concepts[p].parent)
    }
}

/// The ICPC-2 → ICD-10 map, both ways.
#[derive(Default)]
struct Icpc2Map {
    forward: HashMap<Box<str>, Vec<String>>,
    reverse: HashMap<Box<str>, Vec<Box<str>>>,
}

/// The loaded code systems and the ICPC-2 → ICD-10 map. Load once at start-up and share.
#[derive(Default)]
pub struct Terminology {
    icd10: Option<CodeSystem>,
    icpc2: Option<CodeSystem>,
    icd10cm: Option<CodeSystem>,
    map: Option<Icpc2Map>,
}

// A derived Debug would print every concept; a summary is what logs need.
impl fmt::Debug for Terminology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminology")
            .field("systems", &self.systems())
            .field("icpc2_icd10_map", &self.map.is_some())
            .finish()
    }
}

impl Terminology {
    /// Loads whichever of `icd10-who.tsv`, `icpc2.tsv`, `icpc2-icd10.tsv` and `icd10cm.tsv.gz`
    /// exist in `dir`. ICD-10 is read from `icd10-who.claml.xml` ([`ICD10_CLAML_FILE`])
    /// instead of `icd10-who.tsv` when that file exists. A missing file leaves its system (or
    /// the map) unloaded; a missing or unreadable directory, an unreadable file or a
    /// malformed file is an error.
    pub fn load_dir(dir: &Path) -> Result<Self, TerminologyError> {
        load::load_dir(dir)
    }

    /// Loads WHO ICD-10 from the ClaML 2.0 file `path` (see the module docs), and nothing
    /// else: the result has ICD-10 loaded and no other system. A missing or unreadable file
    /// is [`TerminologyError::Io`], a malformed one [`TerminologyError::Malformed`].
    pub fn load_icd10_claml(path: &Path) -> Result<Self, TerminologyError> {
        let file = std::fs::File::open(path).map_err(|e| load::io_error(path, e))?;
        let mut reader = std::io::BufReader::new(file);
        Ok(Terminology {
            icd10: Some(claml::read_icd10_claml(&mut reader, path)?),
            ..Self::default()
        })
    }

    /// No code system loaded: every validation answers [`Validation::SystemNotLoaded`].
    pub fn empty() -> Self {
        Self::default()
    }

    fn system(&self, uri: &str) -> Option<&CodeSystem> {
        match uri {
            ICD10 => self.icd10.as_ref(),
            ICPC2 => self.icpc2.as_ref(),
            ICD10CM => self.icd10cm.as_ref(),
            _ => None,
        }
    }

    /// The loaded code systems, in the order ICD-10, ICPC-2, ICD-10-CM.
    pub fn systems(&self) -> Vec<SystemInfo> {
        [&self.icd10, &self.icpc2, &self.icd10cm]
            .into_iter()
            .flatten()
            .map(|cs| cs.info.clone())
            .collect()
    }

    /// Whether `system` (a FHIR system URI) is loaded.
    pub fn is_loaded(&self, system: &str) -> bool {
        self.system(system).is_some()
    }

    /// Whether the ICPC-2 → ICD-10 map is loaded.
    pub fn has_icpc2_icd10_map(&self) -> bool {
        self.map.is_some()
    }

    /// The concept `code` of `system`; `None` if the system is not loaded or has no such
    /// code. Codes are matched exactly (ICD-10 with its dot: see [`normalise_icd10`]).
    pub fn lookup(&self, system: &str, code: &str) -> Option<ConceptRef<'_>> {
        let cs = self.system(system)?;
        cs.get(code).map(|i| cs.concept_ref(i))
    }

    /// Checks a `Coding`. Selectable codes: ICD-10 and ICD-10-CM categories (for ICD-10-CM
    /// billable or not), ICPC-2 rubrics, process codes and chapter + process combinations.
    /// `display`, when given, must equal the display or ICPC-2 short title, ignoring case
    /// and runs of whitespace; otherwise the answer is [`Validation::ValidWrongDisplay`].
    pub fn validate<'a>(
        &'a self,
        system: &str,
        code: &str,
        display: Option<&str>,
    ) -> Validation<'a> {
        let Some(cs) = self.system(system) else {
            return Validation::SystemNotLoaded;
        };
        let Some(i) = cs.get(code) else {
            return Validation::UnknownCode;
        };
        let c = &cs.concepts[i];
        if !c.selectable {
            return Validation::NotSelectable { kind: c.kind };
        }
        match display {
            Some(given) if !c.displays().any(|d| same_text(d, given)) => {
                Validation::ValidWrongDisplay {
                    expected: &c.display,
                }
            }
            _ => Validation::Valid,
        }
    }

    /// How `a` relates to `b` in `system`'s hierarchy; `None` if the system is not loaded or
    /// either code is unknown.
    pub fn subsumes(&self, system: &str, a: &str, b: &str) -> Option<Subsumption> {
        let cs = self.system(system)?;
        let (a, b) = (cs.get(a)?, cs.get(b)?);
        Some(if a == b {
            Subsumption::Equivalent
        } else if cs.ancestors(b).any(|x| x == a) {
            Subsumption::Subsumes
        } else if cs.ancestors(a).any(|x| x == b) {
            Subsumption::SubsumedBy
        } else {
            Subsumption::NotSubsumed
        })
    }

    /// Every code below `code` (not `code` itself), depth first in table order; empty if the
    /// system is not loaded or the code is unknown. A `:below` search adds `code` itself.
    pub fn descendants(&self, system: &str, code: &str) -> Vec<&str> {
        let Some((cs, i)) = self.system(system).and_then(|cs| Some((cs, cs.get(code)?))) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack: Vec<usize> = cs.concepts[i].children.iter().rev().copied().collect();
        while let Some(j) = stack.pop() {
            out.push(cs.code(j));
            stack.extend(cs.concepts[j].children.iter().rev());
        }
        out
    }

    /// The codes above `code`, parent first, up to the chapter; empty if the system is not
    /// loaded or the code is unknown.
    pub fn ancestors(&self, system: &str, code: &str) -> Vec<&str> {
        self.system(system)
            .and_then(|cs| Some(cs.ancestors(cs.get(code)?).map(|i| cs.code(i)).collect()))
            .unwrap_or_default()
    }

    /// The ICD-10 codes the map relates to an ICPC-2 rubric, in the source's order; empty if
    /// the map is not loaded or names no such rubric. Every pair means FHIR `related-to`
    /// (R4 `relatedto`), not equivalence. A few targets are codes WHO deleted before 2019;
    /// they are returned as they are, so check them with [`Terminology::lookup`] if needed.
    pub fn translate_icpc2_to_icd10(&self, code: &str) -> &[String] {
        self.map
            .as_ref()
            .and_then(|m| m.forward.get(code))
            .map_or(&[], Vec::as_slice)
    }

    /// The ICPC-2 rubrics whose map targets include the ICD-10 code `code` or, when ICD-10 is
    /// loaded, one of its ancestors: the map sometimes names a three-character category
    /// (`D13` → `R17`) that covers the four-character codes under it. Direct targets come
    /// first; no rubric is repeated.
    pub fn translate_icd10_to_icpc2(&self, code: &str) -> Vec<&str> {
        let Some(map) = &self.map else {
            return Vec::new();
        };
        let mut out: Vec<&str> = Vec::new();
        let mut add = |target: &str| {
            for rubric in map.reverse.get(target).into_iter().flatten() {
                if !out.contains(&&**rubric) {
                    out.push(rubric);
                }
            }
        };
        add(code);
        for ancestor in self.ancestors(ICD10, code) {
            add(ancestor);
        }
        out
    }

    /// Concepts of `system` whose code or display (or ICPC-2 short title) contains
    /// `text_filter`, ignoring case, in table order: the total number of matches and the
    /// page `offset..offset + count`. An empty filter matches everything. Groupings are
    /// included (check [`ConceptRef::selectable`]); ICPC-2 chapter + process combinations
    /// are not, as the table does not list them.
    pub fn search(
        &self,
        system: &str,
        text_filter: &str,
        offset: usize,
        count: usize,
    ) -> (usize, Vec<ConceptRef<'_>>) {
        let Some(cs) = self.system(system) else {
            return (0, Vec::new());
        };
        let needle = text_filter.to_lowercase();
        let mut matches = cs.concepts.iter().enumerate().filter_map(|(i, c)| {
            let hit = c.listed
                && std::iter::once(&*c.code)
                    .chain(c.displays())
                    .any(|text| contains_ignore_case(text, &needle));
            hit.then_some(i)
        });
        let skipped = matches.by_ref().take(offset).count();
        let page: Vec<_> = matches
            .by_ref()
            .take(count)
            .map(|i| cs.concept_ref(i))
            .collect();
        (skipped + page.len() + matches.count(), page)
    }
}

/// Rewrites an ICD-10 or ICD-10-CM code as published, with its dot: `J450` → `J45.0`,
/// `s72001a` → `S72.001A`, `J45` and `J45.0` unchanged. Purely syntactic (a letter, a digit,
/// a letter or digit, then at most four letters or digits): it does not check that the code
/// exists, so look the result up. `None` when the input cannot be an ICD-10 code (`J4`,
/// `J45.`, a block such as `J40-J47`, a chapter).
pub fn normalise_icd10(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let (head, tail) = match code.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (code.get(..3)?, code.get(3..)?),
    };
    let [letter, digit, third] = head.as_bytes() else {
        return None;
    };
    let valid = letter.is_ascii_uppercase()
        && digit.is_ascii_digit()
        && third.is_ascii_alphanumeric()
        && tail.len() <= 4
        && tail.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| {
        if tail.is_empty() {
            head.to_owned()
        } else {
            format!("{head}.{tail}")
        }
    })
}

/// Display comparison: same words, ignoring case and how the words are spaced.
fn same_text(a: &str, b: &str) -> bool {
    let words = |s: &'_ str| {
        s.split_whitespace()
            .flat_map(|w| w.chars().flat_map(char::to_lowercase).chain([' ']))
            .collect::<String>()
    };
    a == b || words(a) == words(b)
}

/// Whether `haystack` contains `needle_lower` (already lowercased), ignoring case. The ASCII
/// path avoids allocating for each of ICD-10-CM's 98,000 displays on every search.
fn contains_ignore_case(haystack: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        true
    } else if needle_lower.is_ascii() {
        haystack
            .as_bytes()
            .windows(needle_lower.len())
            .any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
    } else {
        haystack.to_lowercase().contains(needle_lower)
    }
}
