//! Checks against the real tables in `shared/terminology/`, plus small hand-written tables
//! for the loader's error paths.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/terminology")
}

/// The real tables, loaded once for the whole test binary.
fn real() -> &'static Terminology {
    static REAL: OnceLock<Terminology> = OnceLock::new();
    REAL.get_or_init(|| Terminology::load_dir(&shared_dir()).expect("shared tables load"))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("terminology-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn with(self, name: &str, content: &str) -> Self {
        std::fs::write(self.0.join(name), content).expect("write table");
        self
    }

    fn with_gz(self, name: &str, content: &str) -> Self {
        let file = std::fs::File::create(self.0.join(name)).expect("create table");
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(content.as_bytes()).expect("write table");
        gz.finish().expect("finish gzip");
        self
    }

    fn load(&self) -> Result<Terminology, TerminologyError> {
        Terminology::load_dir(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SMALL_ICD10: &str = "code\tkind\tparent\tdisplay\n\
    X\tchapter\t\tDiseases of the respiratory system\n\
    J40-J47\tblock\tX\tChronic lower respiratory diseases\n\
    J45\tcategory\tJ40-J47\tAsthma\n";

#[test]
fn systems_lists_the_four_tables_with_their_row_counts() {
    let t = real();
    let counts: Vec<_> = t
        .systems()
        .iter()
        .map(|s| (s.uri, s.concept_count))
        .collect();
    // ICPC-2's 743 rows exclude the chapter + process combinations, which are not rows.
    assert_eq!(counts, [(ICD10, 12_542), (ICPC2, 743), (ICD10CM, 98_505)]);
    assert!(t.has_icpc2_icd10_map());
    assert!(t.is_loaded(ICD10) && t.is_loaded(ICPC2) && t.is_loaded(ICD10CM));
    assert!(!t.is_loaded("http://snomed.info/sct"));
}

#[test]
fn validate() {
    use Validation::*;
    let cases: &[(&str, &str, Option<&str>, Validation<'_>)] = &[
        // ICD-10: categories of three, four and five characters are codes; groupings are not.
        (ICD10, "J45.0", Some("Predominantly allergic asthma"), Valid),
        (
            ICD10,
            "J45.0",
            Some("  predominantly ALLERGIC\tasthma "),
            Valid,
        ),
        (ICD10, "J45.0", None, Valid),
        (ICD10, "J45", Some("Asthma"), Valid),
        (ICD10, "B18.00", None, Valid),
        (
            ICD10,
            "J45.0",
            Some("Asthma"),
            ValidWrongDisplay {
                expected: "Predominantly allergic asthma",
            },
        ),
        (
            ICD10,
            "X",
            None,
            NotSelectable {
                kind: Kind::Chapter,
            },
        ),
        (ICD10, "J40-J47", None, NotSelectable { kind: Kind::Block }),
        (ICD10, "Z99.99", None, UnknownCode),
        // Undotted input is normalise_icd10's job, not validate's.
        (ICD10, "J450", None, UnknownCode),
        // ICD-10-CM: headers (billable = 0) are selectable too.
        (ICD10CM, "S72.001A", None, Valid),
        (ICD10CM, "S72.001", None, Valid),
        (
            ICD10CM,
            "10",
            None,
            NotSelectable {
                kind: Kind::Chapter,
            },
        ),
        // ICPC-2 rubrics, by preferred or short title.
        (ICPC2, "K86", Some("Hypertension uncomplicated"), Valid),
        (ICPC2, "-50", Some("Medication/prescr/renewal"), Valid),
        (ICPC2, "-50", Some("Medication/prescription/renewal"), Valid),
        (
            ICPC2,
            "K86",
            Some("Hypertension"),
            ValidWrongDisplay {
                expected: "Hypertension uncomplicated",
            },
        ),
        (
            ICPC2,
            "K",
            None,
            NotSelectable {
                kind: Kind::Chapter,
            },
        ),
        // Chapter + process combinations take the process code's display.
        (ICPC2, "K50", Some("Medication/prescription/renewal"), Valid),
        (ICPC2, "Z69", None, Valid),
        (
            ICPC2,
            "K50",
            Some("Hypertension"),
            ValidWrongDisplay {
                expected: "Medication/prescription/renewal",
            },
        ),
        (ICPC2, "K29", None, Valid),
        (ICPC2, "K70", None, Valid),
        (ICPC2, "K00", None, UnknownCode),
        (ICPC2, "E50", None, UnknownCode),
        (ICPC2, "K5", None, UnknownCode),
        // ICD-10 and ICPC-2 codes never validate against each other's system.
        (ICPC2, "J45", None, UnknownCode),
        (ICD10, "-50", None, UnknownCode),
        ("http://snomed.info/sct", "195967001", None, SystemNotLoaded),
    ];
    for (system, code, display, expected) in cases {
        assert_eq!(
            &real().validate(system, code, *display),
            expected,
            "{system} {code} {display:?}"
        );
    }
    assert_eq!(
        Terminology::empty().validate(ICD10, "J45.0", None),
        SystemNotLoaded
    );
}

#[test]
fn is_valid_accepts_a_wrong_display_only() {
    assert!(Validation::Valid.is_valid());
    assert!(Validation::ValidWrongDisplay { expected: "x" }.is_valid());
    assert!(!Validation::NotSelectable { kind: Kind::Block }.is_valid());
    assert!(!Validation::UnknownCode.is_valid());
    assert!(!Validation::SystemNotLoaded.is_valid());
}

#[test]
fn lookup() {
    let t = real();
    let j45 = t.lookup(ICD10, "J45").expect("J45");
    assert_eq!(
        j45,
        ConceptRef {
            code: "J45",
            display: "Asthma",
            short_display: None,
            kind: Kind::Category,
            parent: Some("J40-J47"),
            children: vec!["J45.0", "J45.1", "J45.8", "J45.9"],
            selectable: true,
            billable: None,
        }
    );
    let block = t.lookup(ICD10, "J40-J47").expect("block");
    assert_eq!(
        (block.kind, block.parent, block.selectable),
        (Kind::Block, Some("X"), false)
    );

    let cm = t.lookup(ICD10CM, "S72.001A").expect("S72.001A");
    assert_eq!(
        (cm.billable, cm.selectable, cm.parent),
        (Some(true), true, Some("S72.001"))
    );
    assert_eq!(
        cm.display,
        "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"
    );
    assert_eq!(
        t.lookup(ICD10CM, "S72.001").expect("S72.001").billable,
        Some(false)
    );

    let k86 = t.lookup(ICPC2, "K86").expect("K86");
    assert_eq!(
        (k86.kind, k86.parent, k86.selectable),
        (Kind::Rubric, Some("K"), true)
    );
    assert_eq!(k86.short_display, Some("Hypertension uncomplicated"));

    let k50 = t.lookup(ICPC2, "K50").expect("K50");
    assert_eq!(
        (k50.code, k50.kind, k50.parent),
        ("K50", Kind::Process, Some("-50"))
    );
    assert_eq!(k50.display, "Medication/prescription/renewal");
    assert!(
        t.lookup(ICPC2, "-50")
            .expect("-50")
            .children
            .contains(&"K50")
    );

    assert_eq!(t.lookup(ICD10, "Z99.99"), None);
    assert_eq!(t.lookup("http://snomed.info/sct", "J45"), None);
}

#[test]
fn hierarchy() {
    use Subsumption::*;
    let t = real();
    let cases = [
        (ICD10, "J45", "J45.0", Some(Subsumes)),
        (ICD10, "J45.0", "J45", Some(SubsumedBy)),
        (ICD10, "X", "J45.0", Some(Subsumes)),
        (ICD10, "J45", "J45", Some(Equivalent)),
        (ICD10, "J45", "J46", Some(NotSubsumed)),
        (ICD10, "J45.0", "J45.1", Some(NotSubsumed)),
        (ICD10, "J45", "Z99.99", None),
        (ICD10CM, "S72", "S72.001A", Some(Subsumes)),
        (ICPC2, "K", "K86", Some(Subsumes)),
        (ICPC2, "K50", "-50", Some(SubsumedBy)),
        ("http://snomed.info/sct", "J45", "J45", None),
    ];
    for (system, a, b, expected) in cases {
        assert_eq!(t.subsumes(system, a, b), expected, "{system} {a} {b}");
    }

    assert_eq!(
        t.descendants(ICD10, "J45"),
        ["J45.0", "J45.1", "J45.8", "J45.9"]
    );
    let below_block = t.descendants(ICD10, "J40-J47");
    assert!(below_block.contains(&"J45") && below_block.contains(&"J45.0"));
    assert!(!below_block.contains(&"J40-J47") && !below_block.contains(&"J30"));
    // Depth first: a category comes right before its subcategories.
    let j45 = below_block
        .iter()
        .position(|&c| c == "J45")
        .expect("J45 below its block");
    assert_eq!(below_block[j45 + 1], "J45.0");
    assert_eq!(t.descendants(ICD10, "J45.0"), Vec::<&str>::new());
    assert_eq!(t.descendants(ICD10, "Z99.99"), Vec::<&str>::new());
    let below_process = t.descendants(ICPC2, "-50");
    assert_eq!(below_process.len(), 17);
    assert!(below_process.contains(&"K50"));

    assert_eq!(t.ancestors(ICD10, "J45.0"), ["J45", "J40-J47", "X"]);
    assert_eq!(t.ancestors(ICD10, "X"), Vec::<&str>::new());
    assert_eq!(
        t.ancestors(ICD10CM, "S72.001A"),
        ["S72.001", "S72.00", "S72.0", "S72", "S70-S79", "19"]
    );
}

#[test]
fn translate() {
    let t = real();
    assert_eq!(t.translate_icpc2_to_icd10("K86"), ["I10"]);
    assert_eq!(&t.translate_icpc2_to_icd10("R96")[..2], ["J45.0", "J45.1"]);
    assert!(t.translate_icpc2_to_icd10("K50").is_empty());
    assert!(t.translate_icpc2_to_icd10("J45").is_empty());

    assert_eq!(t.translate_icd10_to_icpc2("I10"), ["K86"]);
    // R17.0 is reached only through its category R17, which D13 names.
    assert_eq!(t.translate_icd10_to_icpc2("R17.0"), ["D13"]);
    // Direct targets first, then through the ancestor O97.
    assert_eq!(t.translate_icd10_to_icpc2("O97.0"), ["A96", "W99"]);
    assert!(t.translate_icd10_to_icpc2("Z99.99").is_empty());

    assert!(
        Terminology::empty()
            .translate_icpc2_to_icd10("K86")
            .is_empty()
    );
}

#[test]
fn search() {
    let t = real();
    let (total, page) = t.search(ICD10, "ASTHMA", 0, 5);
    assert_eq!((total, page.len()), (9, 5));
    assert_eq!(page[0].code, "J45");
    let (total, rest) = t.search(ICD10, "asthma", 5, 100);
    assert_eq!((total, rest.len()), (9, 4));
    assert!(
        page.iter()
            .chain(&rest)
            .all(|c| c.display.to_lowercase().contains("asthma"))
    );
    assert_eq!(t.search(ICD10, "asthma", 50, 10), (9, Vec::new()));

    // Codes match too, case-insensitively.
    let (total, page) = t.search(ICD10, "j45.", 0, 10);
    assert_eq!(
        page.iter().map(|c| c.code).collect::<Vec<_>>(),
        ["J45.0", "J45.1", "J45.8", "J45.9"]
    );
    assert_eq!(total, 4);

    // An empty filter lists every row; combinations are not rows.
    assert_eq!(t.search(ICPC2, "", 0, 0).0, 743);
    assert!(
        t.search(ICPC2, "", 0, 1000)
            .1
            .iter()
            .all(|c| c.code != "K50")
    );
    assert_eq!(
        t.search(ICPC2, "prescr/renewal", 0, 10)
            .1
            .iter()
            .map(|c| c.code)
            .collect::<Vec<_>>(),
        ["-50"]
    );
    // Non-ASCII filters take the slow path.
    assert_eq!(t.search(ICD10, "ÄSTHMA", 0, 10).0, 0);
    assert_eq!(
        t.search("http://snomed.info/sct", "", 0, 10),
        (0, Vec::new())
    );
}

#[test]
fn normalise() {
    let cases = [
        ("J450", Some("J45.0")),
        ("J45.0", Some("J45.0")),
        ("j45.0", Some("J45.0")),
        (" J45 ", Some("J45")),
        ("S72001A", Some("S72.001A")),
        ("B1800", Some("B18.00")),
        ("M1A0", Some("M1A.0")),
        ("J45.", None),
        ("J4", None),
        ("", None),
        ("J40-J47", None),
        ("XXII", None),
        ("J45.00000", None),
        ("545.0", None),
        ("JJ5.0", None),
        ("É45.0", None),
    ];
    for (input, expected) in cases {
        assert_eq!(normalise_icd10(input).as_deref(), expected, "{input:?}");
    }
}

#[test]
fn missing_files_leave_their_systems_unloaded() {
    let t = TempDir::new()
        .with("icd10-who.tsv", SMALL_ICD10)
        .load()
        .expect("load");
    assert!(t.is_loaded(ICD10));
    assert!(!t.is_loaded(ICPC2) && !t.is_loaded(ICD10CM) && !t.has_icpc2_icd10_map());
    assert_eq!(t.validate(ICD10, "J45", None), Validation::Valid);
    assert_eq!(t.validate(ICPC2, "K86", None), Validation::SystemNotLoaded);
    assert_eq!(t.systems().len(), 1);
    // Without ICD-10 loaded nothing else changes; with it, an empty dir loads nothing.
    assert!(
        TempDir::new()
            .load()
            .expect("empty dir")
            .systems()
            .is_empty()
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = TempDir::new();
    let missing = dir.0.join("nope");
    let err = Terminology::load_dir(&missing).expect_err("missing dir");
    assert!(
        matches!(&err, TerminologyError::Io { path, .. } if *path == missing),
        "{err}"
    );
    let file = dir.0.join("icd10-who.tsv");
    std::fs::write(&file, SMALL_ICD10).expect("write");
    assert!(matches!(
        Terminology::load_dir(&file),
        Err(TerminologyError::Io { .. })
    ));
}

/// Loads one malformed table and checks the error names its file and line.
fn check_malformed(file: &str, content: &str, line: usize, reason: &str) {
    let dir = TempDir::new();
    let dir = if file.ends_with(".gz") {
        dir.with_gz(file, content)
    } else {
        dir.with(file, content)
    };
    let err = dir.load().expect_err(content);
    let TerminologyError::Malformed {
        path,
        line: at,
        reason: why,
    } = &err
    else {
        panic!("expected Malformed, got {err:?}");
    };
    assert_eq!(
        (path.file_name(), *at),
        (Some(file.as_ref()), line),
        "{err}"
    );
    assert!(why.contains(reason), "{why:?} should contain {reason:?}");
    assert!(
        err.to_string().contains(&format!("{file}:{line}: ")),
        "{err}"
    );
}

#[test]
fn malformed_tables_are_errors_naming_file_and_line() {
    let icd = "icd10-who.tsv";
    check_malformed(icd, "", 1, "empty file");
    check_malformed(icd, "code\tkind\tdisplay\n", 1, "header");
    check_malformed(
        icd,
        &format!("{SMALL_ICD10}J45.0\tcategory\tJ45\n"),
        5,
        "3 fields, expected 4",
    );
    check_malformed(
        icd,
        &format!("{SMALL_ICD10}J45.0\tsubcategory\tJ45\tx\n"),
        5,
        "unknown kind",
    );
    check_malformed(
        icd,
        &format!("{SMALL_ICD10}J45.0\tcategory\tJ99\tx\n"),
        5,
        "parent \"J99\"",
    );
    check_malformed(
        icd,
        &format!("{SMALL_ICD10}J45\tcategory\tJ40-J47\tx\n"),
        5,
        "duplicate code",
    );
    check_malformed(
        icd,
        &format!("{SMALL_ICD10}J45.0\tcategory\tJ45\t\n"),
        5,
        "empty display",
    );
    check_malformed(
        icd,
        "code\tkind\tparent\tdisplay\nA\tblock\tB\ta\nB\tblock\tA\tb\n",
        2,
        "own ancestor",
    );
    let mut bytes = SMALL_ICD10.as_bytes().to_vec();
    bytes.extend(b"J45.0\tcategory\tJ45\t\xff\n");
    let dir = TempDir::new();
    std::fs::write(dir.0.join(icd), bytes).expect("write");
    assert!(matches!(
        dir.load(),
        Err(TerminologyError::Malformed { line: 5, .. })
    ));

    let cm_header = "code\tkind\tparent\tdisplay\tbillable\n";
    check_malformed(
        "icd10cm.tsv.gz",
        &format!("{cm_header}1\tchapter\t\tInfections\t2\n"),
        2,
        "billable",
    );
    check_malformed(
        "icpc2-icd10.tsv",
        "icpc2_code\ticd10_code\trelationship\nK86\tI10\tequivalent\n",
        2,
        "related-to",
    );
    check_malformed(
        "icpc2.tsv",
        "code\tkind\tchapter\tcomponent\tparent\tdisplay\tshort_display\nK\tblock\tK\t\t\tx\tx\n",
        2,
        "unknown kind",
    );
}

#[test]
fn blank_lines_and_crlf_are_tolerated() {
    let crlf = SMALL_ICD10.replace('\n', "\r\n") + "\n";
    let t = TempDir::new()
        .with("icd10-who.tsv", &crlf)
        .load()
        .expect("load");
    assert_eq!(t.lookup(ICD10, "J45").map(|c| c.display), Some("Asthma"));
    assert_eq!(t.systems()[0].concept_count, 3);
}

#[test]
fn a_broken_gzip_stream_is_an_io_error() {
    let dir = TempDir::new().with("icd10cm.tsv.gz", "not gzip at all");
    assert!(matches!(dir.load(), Err(TerminologyError::Io { .. })));
}

#[test]
fn rubrics_win_over_chapter_process_combinations() {
    // A made-up rubric K31 beside the process code -31: K31 keeps the rubric's meaning,
    // while K32 is the combination of K and -32.
    let icpc2 = "code\tkind\tchapter\tcomponent\tparent\tdisplay\tshort_display\n\
        K\tchapter\tK\t\t\tCardiovascular\tCardiovascular\n\
        -31\tprocess\t\t2\t\tMedical examination partial\tMed exam partial\n\
        -32\tprocess\t\t2\t\tSensitivity test\t\n\
        K31\trubric\tK\t1\tK\tMade-up rubric\tMade-up\n";
    let t = TempDir::new()
        .with("icpc2.tsv", icpc2)
        .load()
        .expect("load");
    let k31 = t.lookup(ICPC2, "K31").expect("K31");
    assert_eq!(
        (k31.kind, k31.parent, k31.display),
        (Kind::Rubric, Some("K"), "Made-up rubric")
    );
    let k32 = t.lookup(ICPC2, "K32").expect("K32");
    assert_eq!(
        (k32.kind, k32.parent, k32.short_display),
        (Kind::Process, Some("-32"), None)
    );
    assert_eq!(t.descendants(ICPC2, "-31"), Vec::<&str>::new());
    // Only combinations of the table's own process codes exist.
    assert_eq!(t.validate(ICPC2, "K33", None), Validation::UnknownCode);
    assert_eq!(t.systems()[0].concept_count, 4);
}

// ---- ICD-10 from ClaML ----

/// The hand-written ClaML sample (`tests/data/icd10-sample.claml.xml`).
fn claml_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/icd10-sample.claml.xml")
}

fn claml() -> Terminology {
    Terminology::load_icd10_claml(&claml_fixture()).expect("ClaML sample loads")
}

/// Every class of the sample, in file order.
const CLAML_CODES: &[&str] = &[
    "IV", "E10-E14", "E11", "E11.9", "X", "J40-J47", "J45", "J45.0", "J45.1", "J45.8", "J45.9",
    "J46",
];

#[test]
fn claml_loads_codes_and_displays() {
    let t = claml();
    let systems = t.systems();
    assert_eq!(systems.len(), 1, "{systems:?}");
    assert_eq!(
        (systems[0].uri, systems[0].version, systems[0].concept_count),
        (ICD10, "2019", CLAML_CODES.len())
    );
    assert!(!t.is_loaded(ICPC2) && !t.has_icpc2_icd10_map());
    let (total, all) = t.search(ICD10, "", 0, usize::MAX);
    assert_eq!(total, CLAML_CODES.len());
    assert_eq!(all.iter().map(|c| c.code).collect::<Vec<_>>(), CLAML_CODES);
    // Mixed content: fragments, terms, CDATA, a character reference, a line break; the
    // French label and the inclusion and exclusion rubrics are not the display.
    for (code, display) in [
        ("X", "Diseases of the respiratory system"),
        ("J45", "Asthma"),
        ("J45.0", "Predominantly allergic asthma"),
        ("J45.8", "Mixed asthma"),
        ("J46", "Status asthmaticus"),
        ("E11", "Type 2 diabetes mellitus"),
        ("E11.9", "Type 2 diabetes mellitus without complications"),
        ("J40-J47", "Chronic lower respiratory diseases"),
    ] {
        assert_eq!(t.lookup(ICD10, code).map(|c| c.display), Some(display));
    }
    // Modifier classes are not codes.
    assert!(t.lookup(ICD10, ".9").is_none());
    assert!(t.lookup(ICD10, "S04E10_4").is_none());
}

#[test]
fn claml_hierarchy_validation_and_search() {
    use Validation::*;
    let t = claml();
    let j450 = t.lookup(ICD10, "J45.0").expect("J45.0");
    assert_eq!(
        (j450.kind, j450.parent, j450.selectable),
        (Kind::Category, Some("J45"), true)
    );
    assert_eq!(t.ancestors(ICD10, "J45.0"), ["J45", "J40-J47", "X"]);
    let x = t.lookup(ICD10, "X").expect("X");
    assert_eq!(
        (x.kind, x.parent, x.children),
        (Kind::Chapter, None, vec!["J40-J47"])
    );
    assert_eq!(
        t.lookup(ICD10, "J40-J47")
            .map(|c| (c.kind, c.parent, c.children)),
        Some((Kind::Block, Some("X"), vec!["J45", "J46"]))
    );
    assert_eq!(
        t.descendants(ICD10, "J45"),
        ["J45.0", "J45.1", "J45.8", "J45.9"]
    );
    assert_eq!(
        t.descendants(ICD10, "X"),
        ["J40-J47", "J45", "J45.0", "J45.1", "J45.8", "J45.9", "J46"]
    );
    assert_eq!(t.descendants(ICD10, "IV"), ["E10-E14", "E11", "E11.9"]);
    assert_eq!(
        t.subsumes(ICD10, "J40-J47", "J45.9"),
        Some(Subsumption::Subsumes)
    );

    assert_eq!(t.validate(ICD10, "J45.0", None), Valid);
    assert_eq!(
        t.validate(ICD10, "J45.0", Some("predominantly  allergic asthma")),
        Valid
    );
    assert_eq!(
        t.validate(ICD10, "J45.0", Some("Asthma")),
        ValidWrongDisplay {
            expected: "Predominantly allergic asthma"
        }
    );
    assert_eq!(t.validate(ICD10, "E11.9", None), Valid);
    assert_eq!(
        t.validate(ICD10, "J40-J47", None),
        NotSelectable { kind: Kind::Block }
    );
    assert_eq!(
        t.validate(ICD10, "X", None),
        NotSelectable {
            kind: Kind::Chapter
        }
    );
    assert_eq!(t.validate(ICD10, "J99.99", None), UnknownCode);

    let (total, page) = t.search(ICD10, "asthma", 0, 3);
    assert_eq!(total, 6);
    assert_eq!(
        page.iter().map(|c| c.code).collect::<Vec<_>>(),
        ["J45", "J45.0", "J45.1"]
    );
    // Inclusion terms are not searched: only the display is.
    assert_eq!(t.search(ICD10, "hay fever", 0, 10).0, 0);
    assert_eq!(t.search(ICD10, "diabetes", 0, 10).0, 3);
}

#[test]
fn claml_sample_follows_the_real_edition() {
    let sample = claml();
    let real = real();
    let (_, all) = sample.search(ICD10, "", 0, usize::MAX);
    assert_eq!(all.len(), CLAML_CODES.len());
    for c in all {
        let r = real
            .lookup(ICD10, c.code)
            .unwrap_or_else(|| panic!("{} is not in icd10-who.tsv", c.code));
        assert_eq!(
            (c.display, c.kind, c.parent),
            (r.display, r.kind, r.parent),
            "{}",
            c.code
        );
    }
}

#[test]
fn load_dir_prefers_the_claml_file_over_the_tsv() {
    let claml = std::fs::read_to_string(claml_fixture()).expect("read sample");
    let both = TempDir::new()
        .with("icd10-who.tsv", SMALL_ICD10)
        .with(ICD10_CLAML_FILE, &claml)
        .load()
        .expect("load");
    assert_eq!(both.systems()[0].concept_count, CLAML_CODES.len());
    assert!(both.lookup(ICD10, "E11.9").is_some());
    // A broken TSV beside the ClaML file is not even read.
    let broken_tsv = TempDir::new()
        .with("icd10-who.tsv", "not a table")
        .with(ICD10_CLAML_FILE, &claml)
        .load()
        .expect("load");
    assert!(broken_tsv.lookup(ICD10, "J45.0").is_some());
    let tsv_only = TempDir::new()
        .with("icd10-who.tsv", SMALL_ICD10)
        .load()
        .expect("load");
    assert_eq!(tsv_only.systems()[0].concept_count, 3);
}

#[test]
fn load_icd10_claml_of_a_missing_file_is_an_io_error() {
    let dir = TempDir::new();
    assert!(matches!(
        Terminology::load_icd10_claml(&dir.0.join("nope.xml")),
        Err(TerminologyError::Io { .. })
    ));
}

#[test]
fn malformed_claml_is_an_error_naming_file_and_line() {
    let file = ICD10_CLAML_FILE;
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ClaML version=\"2.0.0\">\n\
        <Title name=\"ICD-10\" version=\"2019\">ICD-10</Title>\n\
        <Class code=\"X\" kind=\"chapter\">\n\
        <Rubric kind=\"preferred\"><Label xml:lang=\"en\">Diseases of the respiratory system</Label></Rubric>\n\
        </Class>\n";
    // Line 7 onwards is the broken part.
    let with = |tail: &str| format!("{head}{tail}");
    check_malformed(
        file,
        &with(
            "<Class code=\"J45\" kind=\"category\">\n<SuperClass code=\"X\"/>\n<Rubric kind=\"preferred\"><Label xml:lang=\"en\">Asthma</Rubric>\n</Class>\n</ClaML>\n",
        ),
        9,
        "malformed xml",
    );
    check_malformed(
        file,
        &with(
            "<Class kind=\"category\">\n<Rubric kind=\"preferred\"><Label>Asthma</Label></Rubric>\n</Class>\n</ClaML>\n",
        ),
        7,
        "class without a code",
    );
    check_malformed(
        file,
        &with(
            "<Class code=\"J45\" kind=\"category\">\n<SuperClass code=\"X\"/>\n<Rubric kind=\"inclusion\"><Label xml:lang=\"en\">Asthma</Label></Rubric>\n</Class>\n</ClaML>\n",
        ),
        7,
        "class \"J45\" has no preferred label",
    );
    check_malformed(
        file,
        &with("\n<Class code=\"J45\" kind=\"category\"/>\n</ClaML>\n"),
        8,
        "no preferred label",
    );
    check_malformed(
        file,
        &with(
            "<Class code=\"J45\" kind=\"category\">\n<SuperClass code=\"J40-J47\"/>\n<Rubric kind=\"preferred\"><Label xml:lang=\"en\">Asthma</Label></Rubric>\n</Class>\n</ClaML>\n",
        ),
        7,
        "parent \"J40-J47\" is not a code of this file",
    );
    check_malformed(
        file,
        &with("<Class code=\"J45\" kind=\"subcategory\">\n</Class>\n</ClaML>\n"),
        7,
        "unknown kind",
    );
    check_malformed(
        file,
        &with(
            "<Class code=\"X\" kind=\"chapter\">\n<Rubric kind=\"preferred\"><Label>Again</Label></Rubric>\n</Class>\n</ClaML>\n",
        ),
        7,
        "duplicate code",
    );
    check_malformed(
        file,
        &with(
            "<Class code=\"J45\" kind=\"category\">\n<SuperClass code=\"X\"/>\n<Rubric kind=\"preferred\"><Label>  <Fragment/> </Label></Rubric>\n</Class>\n</ClaML>\n",
        ),
        7,
        "empty display",
    );
    check_malformed(
        file,
        &with("<Class code=\"J45\" kind=\"category\">\n"),
        7,
        "unexpected end of file: <Class> is not closed",
    );
    check_malformed(
        file,
        "<?xml version=\"1.0\"?>\n<ICD>\n</ICD>\n",
        2,
        "root element",
    );
    check_malformed(file, "", 1, "no <ClaML> element");
}

#[test]
fn claml_written_from_the_whole_tsv_loads_the_same_concepts() {
    // The real WHO file is not available; this writes all 12,542 rows of icd10-who.tsv as
    // ClaML classes (with characters that need escaping) and checks nothing is lost.
    let tsv = std::fs::read_to_string(shared_dir().join("icd10-who.tsv")).expect("read tsv");
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ClaML version=\"2.0.0\">\n<Title name=\"ICD-10\" version=\"2019\">ICD-10</Title>\n",
    );
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        let superclass = if f[2].is_empty() {
            String::new()
        } else {
            format!("<SuperClass code=\"{}\"/>", f[2])
        };
        xml += &format!(
            "<Class code=\"{}\" kind=\"{}\">{superclass}<Rubric kind=\"preferred\"><Label xml:lang=\"en\">{}</Label></Rubric></Class>\n",
            f[0],
            f[1],
            escape(f[3])
        );
    }
    xml += "</ClaML>\n";
    let dir = TempDir::new().with(ICD10_CLAML_FILE, &xml);
    let from_claml = dir.load().expect("load");
    let (total, all) = real().search(ICD10, "", 0, usize::MAX);
    assert_eq!(from_claml.systems()[0].concept_count, total);
    for c in all {
        assert_eq!(from_claml.lookup(ICD10, c.code), Some(c));
    }
}
