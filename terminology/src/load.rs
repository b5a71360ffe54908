//! Reading the TSV tables (format: `shared/terminology/README.md`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::{
    CodeSystem, Concept, ICD10, ICD10_CLAML_FILE, ICD10CM, ICPC2, Icpc2Map, Kind, SystemInfo,
    Terminology, TerminologyError, claml,
};

pub(crate) fn load_dir(dir: &Path) -> Result<Terminology, TerminologyError> {
    // Without this check a mistyped directory would load nothing and look like a choice.
    let meta = std::fs::metadata(dir).map_err(|source| io_error(dir, source))?;
    if !meta.is_dir() {
        return Err(io_error(dir, io::ErrorKind::NotADirectory.into()));
    }
    Ok(Terminology {
        // The ClaML file, when present, is the one read: the TSV is then not opened at all.
        icd10: match read_optional(&dir.join(ICD10_CLAML_FILE), false, claml::read_icd10_claml)? {
            Some(cs) => Some(cs),
            None => read_optional(&dir.join("icd10-who.tsv"), false, read_icd10)?,
        },
        icpc2: read_optional(&dir.join("icpc2.tsv"), false, read_icpc2)?,
        icd10cm: read_optional(&dir.join("icd10cm.tsv.gz"), true, read_icd10cm)?,
        map: read_optional(&dir.join("icpc2-icd10.tsv"), false, read_map)?,
    })
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> TerminologyError {
    TerminologyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads `path` with `read`, or `None` if the file does not exist.
fn read_optional<T>(
    path: &Path,
    gzip: bool,
    read: fn(&mut dyn BufRead, &Path) -> Result<T, TerminologyError>,
) -> Result<Option<T>, TerminologyError> {
    // Opening and matching NotFound, rather than checking first, leaves no gap between the two.
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    let raw: Box<dyn Read> = if gzip {
        Box::new(GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    read(&mut BufReader::with_capacity(1 << 16, raw), path).map(Some)
}

/// Calls `row` with the line number and fields of every data row, after checking the header
/// and the field count. `row` reports a bad row as a reason; this adds the path and line.
pub(crate) fn for_each_row(
    reader: &mut dyn BufRead,
    path: &Path,
    header: &[&str],
    mut row: impl FnMut(usize, &[&str]) -> Result<(), String>,
) -> Result<(), TerminologyError> {
    let malformed = |line, reason| TerminologyError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?
            == 0
        {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| malformed(line, "not UTF-8".into()))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let fields: Vec<&str> = text.split('\t').collect();
        if line == 1 {
            if fields != header {
                let reason = format!("header must be {:?}", header.join("\t"));
                return Err(malformed(line, reason));
            }
        } else if text.is_empty() {
            // A stray blank line (often the last one) carries no row.
        } else if fields.len() != header.len() {
            let reason = format!("{} fields, expected {}", fields.len(), header.len());
            return Err(malformed(line, reason));
        } else {
            row(line, &fields).map_err(|reason| malformed(line, reason))?;
        }
    }
    if line == 0 {
        return Err(malformed(1, "empty file: no header".into()));
    }
    Ok(())
}

pub(crate) fn parse_kind(s: &str, allowed: &[Kind]) -> Result<Kind, String> {
    allowed
        .iter()
        .copied()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown kind {s:?}"))
}

fn non_empty<'a>(value: &'a str, column: &str) -> Result<&'a str, String> {
    if value.is_empty() {
        Err(format!("empty {column}"))
    } else {
        Ok(value)
    }
}

/// Collects rows, then links parents and children once every code is known.
pub(crate) struct Builder {
    concepts: Vec<Concept>,
    index: HashMap<Box<str>, usize>,
    /// Per concept: the parent's code (empty at the top) and the line, for errors.
    parents: Vec<(Box<str>, usize)>,
}

/// One row as the tables give it.
pub(crate) struct Row<'a> {
    pub(crate) code: &'a str,
    pub(crate) kind: Kind,
    pub(crate) parent: &'a str,
    pub(crate) display: &'a str,
    pub(crate) short_display: Option<&'a str>,
    pub(crate) billable: Option<bool>,
    pub(crate) selectable: bool,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            concepts: Vec::new(),
            index: HashMap::new(),
            parents: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, line: usize, row: Row<'_>) -> Result<(), String> {
        let code = non_empty(row.code, "code")?;
        if self
            .index
            .insert(code.into(), self.concepts.len())
            .is_some()
        {
            return Err(format!("duplicate code {code:?}"));
        }
        self.concepts.push(Concept {
            code: code.into(),
            display: non_empty(row.display, "display")?.into(),
            short_display: row.short_display.map(Into::into),
            kind: row.kind,
            parent: None,
            children: Vec::new(),
            billable: row.billable,
            selectable: row.selectable,
            listed: true,
        });
        self.parents.push((row.parent.into(), line));
        Ok(())
    }

    pub(crate) fn finish(
        mut self,
        path: &Path,
        uri: &'static str,
        name: &'static str,
        version: &'static str,
    ) -> Result<CodeSystem, TerminologyError> {
        let malformed = |line, reason| TerminologyError::Malformed {
            path: path.to_owned(),
            line,
            reason,
        };
        for (i, (parent, line)) in self.parents.iter().enumerate() {
            if parent.is_empty() {
                continue;
            }
            let p = *self.index.get(parent).ok_or_else(|| {
                malformed(
                    *line,
                    format!("parent {parent:?} is not a code of this file"),
                )
            })?;
            self.concepts[i].parent = Some(p);
            self.concepts[p].children.push(i);
        }
        // A cycle would make every walk up the tree loop forever; no path is longer than
        // the number of concepts.
        let n = self.concepts.len();
        for (i, (_, line)) in self.parents.iter().enumerate() {
            let mut steps = 0;
            let mut at = self.concepts[i].parent;
            while let Some(p) = at {
                steps += 1;
                if steps > n {
                    let code = &self.concepts[i].code;
                    return Err(malformed(*line, format!("{code:?} is its own ancestor")));
                }
                at = self.concepts[p].parent;
            }
        }
        Ok(CodeSystem {
            info: SystemInfo {
                uri,
                name,
                version,
                concept_count: n,
            },
            concepts: self.concepts,
            index: self.index,
        })
    }
}

pub(crate) const ICD10_KINDS: &[Kind] = &[Kind::Chapter, Kind::Block, Kind::Category];

pub(crate) fn read_icd10(
    reader: &mut dyn BufRead,
    path: &Path,
) -> Result<CodeSystem, TerminologyError> {
    let mut b = Builder::new();
    for_each_row(
        reader,
        path,
        &["code", "kind", "parent", "display"],
        |line, f| {
            let kind = parse_kind(f[1], ICD10_KINDS)?;
            let row = Row {
                code: f[0],
                kind,
                parent: f[2],
                display: f[3],
                short_display: None,
                billable: None,
                selectable: kind == Kind::Category,
            };
            b.add(line, row)
        },
    )?;
    b.finish(path, ICD10, "ICD-10 (WHO)", "2019")
}

pub(crate) fn read_icd10cm(
    reader: &mut dyn BufRead,
    path: &Path,
) -> Result<CodeSystem, TerminologyError> {
    let mut b = Builder::new();
    let header = ["code", "kind", "parent", "display", "billable"];
    for_each_row(reader, path, &header, |line, f| {
        let kind = parse_kind(f[1], ICD10_KINDS)?;
        let billable = match f[4] {
            "1" => true,
            "0" => false,
            other => return Err(format!("billable must be 0 or 1, not {other:?}")),
        };
        let row = Row {
            code: f[0],
            kind,
            parent: f[2],
            display: f[3],
            short_display: None,
            billable: Some(billable),
            selectable: kind == Kind::Category,
        };
        b.add(line, row)
    })?;
    b.finish(path, ICD10CM, "ICD-10-CM", "2026")
}

pub(crate) fn read_icpc2(
    reader: &mut dyn BufRead,
    path: &Path,
) -> Result<CodeSystem, TerminologyError> {
    let mut b = Builder::new();
    let header = [
        "code",
        "kind",
        "chapter",
        "component",
        "parent",
        "display",
        "short_display",
    ];
    for_each_row(reader, path, &header, |line, f| {
        let kind = parse_kind(f[1], &[Kind::Chapter, Kind::Process, Kind::Rubric])?;
        let row = Row {
            code: f[0],
            kind,
            parent: f[4],
            display: f[5],
            short_display: Some(f[6]).filter(|s| !s.is_empty()),
            billable: None,
            selectable: kind != Kind::Chapter,
        };
        b.add(line, row)
    })?;
    let mut cs = b.finish(path, ICPC2, "ICPC-2e", "7.0")?;
    add_chapter_process_codes(&mut cs);
    Ok(cs)
}

/// Adds the chapter + process combinations (`K50`) as unlisted concepts under their process
/// code (`-50`), so that lookup, validation and the hierarchy treat them like other codes.
/// With the published table this is exactly `^[ABDFHKLNPRSTUWXYZ](3[0-9]|[4-6][0-9])$`:
/// its 17 chapters times its 40 process codes `-30` … `-69`. A rubric with the same code
/// keeps its own meaning.
fn add_chapter_process_codes(cs: &mut CodeSystem) {
    let of_kind = |kind| {
        cs.concepts
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.kind == kind)
            .map(|(i, c)| (i, c.code.clone()))
            .collect::<Vec<_>>()
    };
    let chapters = of_kind(Kind::Chapter);
    let processes = of_kind(Kind::Process);
    for (_, chapter) in &chapters {
        for (p, process) in &processes {
            let Some(number) = process.strip_prefix('-') else {
                continue;
            };
            let code: Box<str> = format!("{chapter}{number}").into();
            if cs.index.contains_key(&code) {
                continue;
            }
            let template = &cs.concepts[*p];
            let combined = Concept {
                code: code.clone(),
                display: template.display.clone(),
                short_display: template.short_display.clone(),
                kind: Kind::Process,
                parent: Some(*p),
                children: Vec::new(),
                billable: None,
                selectable: true,
                listed: false,
            };
            let i = cs.concepts.len();
            cs.concepts.push(combined);
            cs.concepts[*p].children.push(i);
            cs.index.insert(code, i);
        }
    }
}

pub(crate) fn read_map(
    reader: &mut dyn BufRead,
    path: &Path,
) -> Result<Icpc2Map, TerminologyError> {
    let mut map = Icpc2Map::default();
    let header = ["icpc2_code", "icd10_code", "relationship"];
    for_each_row(reader, path, &header, |_, f| {
        let (icpc2, icd10) = (
            non_empty(f[0], "icpc2_code")?,
            non_empty(f[1], "icd10_code")?,
        );
        // The API reports every pair as related-to; another relationship would be misreported.
        if f[2] != "related-to" {
            return Err(format!(
                "relationship must be \"related-to\", not {:?}",
                f[2]
            ));
        }
        let targets = map.forward.entry(icpc2.into()).or_default();
        if !targets.iter().any(|t| t == icd10) {
            targets.push(icd10.to_owned());
            map.reverse
                .entry(icd10.into())
                .or_default()
                .push(icpc2.into());
        }
        Ok(())
    })?;
    Ok(map)
}
