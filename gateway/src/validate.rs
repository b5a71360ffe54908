//! Validation of codes on write (DESIGN.md, "Terminology"): every Coding whose `system` is a
//! loaded code system is checked against its table before the store sees the resource.
//!
//! | finding | issue at | default |
//! |---|---|---|
//! | unknown code | `….code`, `code-invalid` | reject (422) |
//! | ICD-10 chapter or block, ICPC-2 chapter letter | `….code`, `code-invalid` | reject (422) |
//! | ICD-10 not as published (`J450`, `j45.0`) | `….code`, `code-invalid` | reject [1] |
//! | `version` is not the loaded edition | `….version`, `not-supported` | warn |
//! | wrong `display` | `….display`, `code-invalid` | warn, never rejects |
//!
//! [1] as an unknown code; [`Icd10Undotted::Normalise`] accepts it with a warning.
//!
//! [`Strictness`] per system caps all of that: `warn` turns every error of the system into a
//! warning, `off` skips the system. A Coding whose system is not loaded (LOINC, SNOMED CT, a
//! system without a table) is not checked at all: the server cannot tell a good code from a
//! bad one there, and refusing every such code would refuse most clinical data. Neither is a
//! Coding without a `code` (text only): it claims no code to check.

use std::collections::BTreeMap;
use std::str::FromStr;

use mappings::{Issue, IssueCode, Resource, Severity};
use terminology::{ICD10, ICD10CM, ICPC2, SystemInfo, Terminology, Validation};

use crate::outcome::ApiError;

/// How the codes of one code system are checked on write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// A bad code rejects the write with 422.
    #[default]
    Reject,
    /// A bad code is stored, and the client is warned.
    Warn,
    /// The system's codes are not checked.
    Off,
}

/// What an ICD-10 or ICD-10-CM code not written as published (`J450`, `j45.0`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Icd10Undotted {
    /// Accepted as the code it normalises to (`J45.0`), with a warning naming that code. The
    /// resource is stored as sent: storage is lossless, so the server does not rewrite codes.
    Normalise,
    /// Rejected as an unknown code (the diagnostics suggest the published form).
    #[default]
    Reject,
}

/// What a Coding whose `version` is not the loaded edition is. The code itself is checked
/// against the loaded edition either way, as it is the only one the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VersionMismatch {
    /// An error (422 under [`Strictness::Reject`]).
    Reject,
    /// A warning.
    #[default]
    Warn,
}

/// How codes are checked on write. `Default` rejects bad codes of every loaded system,
/// rejects undotted ICD-10 and warns about other editions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TerminologyPolicy {
    /// Strictness by system URI; a loaded system not listed here is [`Strictness::Reject`].
    pub per_system: BTreeMap<String, Strictness>,
    /// ICD-10 and ICD-10-CM codes not written as published.
    pub icd10_undotted: Icd10Undotted,
    /// A `version` that is not the loaded edition.
    pub version_mismatch: VersionMismatch,
}

impl TerminologyPolicy {
    /// The strictness for `system`.
    pub fn strictness(&self, system: &str) -> Strictness {
        self.per_system.get(system).copied().unwrap_or_default()
    }
}

/// The systems fhirgate can load a table for, with the short names the CLI accepts.
const KNOWN_SYSTEMS: [(&str, &str); 3] =
    [("icd-10", ICD10), ("icpc-2", ICPC2), ("icd-10-cm", ICD10CM)];

/// Parses a `--code-check` value, `SYSTEM=reject|warn|off`, where SYSTEM is a system URI
/// fhirgate can load or its last path segment (`icd-10`, `icpc-2`, `icd-10-cm`). Other
/// systems are refused here, because a setting for a system that can never be loaded would
/// silently do nothing.
pub fn parse_code_check(text: &str) -> Result<(String, Strictness), String> {
    let (system, level) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SYSTEM=reject|warn|off, got {text:?}"))?;
    let system = system.trim();
    let uri = KNOWN_SYSTEMS
        .iter()
        .find(|(short, uri)| system == *short || system == *uri)
        .map(|(_, uri)| *uri)
        .ok_or_else(|| {
            let known: Vec<String> = KNOWN_SYSTEMS
                .iter()
                .map(|(short, uri)| format!("{short} ({uri})"))
                .collect();
            format!(
                "{system:?} is not a code system fhirgate can load; one of {}",
                known.join(", ")
            )
        })?;
    Ok((uri.to_owned(), level.trim().parse()?))
}

/// Checks every Coding of `resource` whose system is loaded and not switched off. Returns the
/// warnings to give the client, or 422 with every error (one per rejected Coding part) and,
/// after them, the warnings, so that the client can fix everything in one round.
pub fn check_codes(
    resource: &Resource,
    terminology: &Terminology,
    policy: &TerminologyPolicy,
) -> Result<Vec<Issue>, ApiError> {
    let systems = terminology.systems();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (path, coding) in mappings::entity::codings(resource) {
        let (Some(system), Some(code)) = (coding.system.as_deref(), coding.code.as_deref()) else {
            continue;
        };
        let Some(info) = systems.iter().find(|s| s.uri == system) else {
            continue;
        };
        let strictness = policy.strictness(system);
        if strictness == Strictness::Off {
            continue;
        }
        let found = CodingCheck {
            terminology,
            policy,
            info,
            path: &path,
            code,
            display: coding.display.as_deref(),
        }
        .run(coding.version.as_deref());
        for mut issue in found {
            if issue.severity == Severity::Error && strictness == Strictness::Warn {
                issue.severity = Severity::Warning;
            }
            match issue.severity {
                Severity::Error => errors.push(issue),
                Severity::Warning => warnings.push(issue),
            }
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        errors.extend(warnings);
        Err(ApiError::Unprocessable(errors))
    }
}

/// One Coding of a loaded system.
struct CodingCheck<'a> {
    terminology: &'a Terminology,
    policy: &'a TerminologyPolicy,
    info: &'a SystemInfo,
    /// The Coding's element path, e.g. `Condition.code.coding[0]`.
    path: &'a str,
    code: &'a str,
    display: Option<&'a str>,
}

impl CodingCheck<'_> {
    fn run(&self, version: Option<&str>) -> Vec<Issue> {
        let mut out = Vec::new();
        if let Some(version) = version.filter(|v| *v != self.info.version) {
            let severity = match self.policy.version_mismatch {
                VersionMismatch::Reject => Severity::Error,
                VersionMismatch::Warn => Severity::Warning,
            };
            out.push(self.issue(
                severity,
                IssueCode::NotSupported,
                "version",
                format!(
                    "version {version:?} of {} is not loaded; checked against {}",
                    self.info.uri, self.info.version
                ),
            ));
        }
        let system = self.info.uri;
        let code = self.code;
        match self.terminology.validate(system, code, self.display) {
            Validation::Valid | Validation::SystemNotLoaded => {}
            Validation::ValidWrongDisplay { expected } => out.push(self.wrong_display(expected)),
            Validation::NotSelectable { kind } => out.push(self.issue(
                Severity::Error,
                IssueCode::CodeInvalid,
                "code",
                format!(
                    "code {code:?} of {system} is a {} of {}, a grouping, not a selectable code",
                    kind.as_str(),
                    self.info.name
                ),
            )),
            Validation::UnknownCode => out.extend(self.unknown()),
        }
        out
    }

    /// An unknown code, which may be an ICD-10 code not written as published.
    fn unknown(&self) -> Vec<Issue> {
        let (system, code) = (self.info.uri, self.code);
        let published = (system == ICD10 || system == ICD10CM)
            .then(|| terminology::normalise_icd10(code))
            .flatten()
            .filter(|n| n != code);
        let Some((published, validation)) = published.and_then(|n| {
            let v = self.terminology.validate(system, &n, self.display);
            v.is_valid().then_some((n, v))
        }) else {
            return vec![self.issue(
                Severity::Error,
                IssueCode::CodeInvalid,
                "code",
                format!(
                    "unknown code {code:?} in {system} ({} {})",
                    self.info.name, self.info.version
                ),
            )];
        };
        let mut out = vec![match self.policy.icd10_undotted {
            Icd10Undotted::Normalise => self.issue(
                Severity::Warning,
                IssueCode::CodeInvalid,
                "code",
                format!("code {code:?} of {system} is not as published; read as {published:?}"),
            ),
            Icd10Undotted::Reject => self.issue(
                Severity::Error,
                IssueCode::CodeInvalid,
                "code",
                format!("unknown code {code:?} in {system}; as published it is {published:?}"),
            ),
        }];
        // Only an accepted code's display is worth a warning; a rejected one is fixed first.
        if let (Icd10Undotted::Normalise, Validation::ValidWrongDisplay { expected }) =
            (self.policy.icd10_undotted, validation)
        {
            out.push(self.wrong_display(expected));
        }
        out
    }

    fn wrong_display(&self, expected: &str) -> Issue {
        self.issue(
            Severity::Warning,
            IssueCode::CodeInvalid,
            "display",
            format!(
                "display {:?} is not the display of code {:?} in {}: expected {expected:?}",
                self.display.unwrap_or_default(),
                self.code,
                self.info.uri
            ),
        )
    }

    fn issue(&self, severity: Severity, code: IssueCode, element: &str, text: String) -> Issue {
        Issue {
            severity,
            code,
            expression: format!("{}.{element}", self.path),
            diagnostics: text,
        }
    }
}

impl Strictness {
    /// The name used on the command line and in `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strictness::Reject => "reject",
            Strictness::Warn => "warn",
            Strictness::Off => "off",
        }
    }
}

impl Icd10Undotted {
    /// The name used on the command line and in `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Icd10Undotted::Normalise => "normalise",
            Icd10Undotted::Reject => "reject",
        }
    }
}

impl VersionMismatch {
    /// The name used on the command line and in `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionMismatch::Reject => "reject",
            VersionMismatch::Warn => "warn",
        }
    }
}

/// Parses one of `choices` (by its `as_str` name) for the command line.
fn parse_choice<T: Copy>(
    text: &str,
    choices: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, String> {
    let text = text.trim();
    choices
        .iter()
        .copied()
        .find(|c| name(*c) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|c| name(*c)).collect();
            format!("expected one of {}, got {text:?}", names.join(", "))
        })
}

impl FromStr for Strictness {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_choice(
            s,
            &[Strictness::Reject, Strictness::Warn, Strictness::Off],
            Strictness::as_str,
        )
    }
}

impl FromStr for Icd10Undotted {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_choice(
            s,
            &[Icd10Undotted::Normalise, Icd10Undotted::Reject],
            Icd10Undotted::as_str,
        )
    }
}

impl FromStr for VersionMismatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_choice(
            s,
            &[VersionMismatch::Reject, VersionMismatch::Warn],
            VersionMismatch::as_str,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use mappings::json::{JsonLimits, parse_resource};
    use serde_json::{Value, json};

    use super::*;

    /// The shared tables, loaded once for every test of this binary.
    fn terminology() -> &'static Terminology {
        static TABLES: OnceLock<Terminology> = OnceLock::new();
        TABLES.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/terminology");
            Terminology::load_dir(&dir).expect("the shared terminology tables load")
        })
    }

    fn condition(codings: Value) -> Resource {
        let body = json!({
            "resourceType": "Condition",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": codings},
        });
        parse_resource(body.to_string().as_bytes(), &JsonLimits { max_depth: 64 })
            .expect("a valid Condition")
    }

    fn icd10(code: &str) -> Value {
        json!({"system": ICD10, "code": code})
    }

    /// `(severity, expression)` of each issue, or the error's issues marked `Err`.
    fn check(policy: &TerminologyPolicy, codings: Value) -> Result<Vec<Issue>, Vec<Issue>> {
        match check_codes(&condition(codings), terminology(), policy) {
            Ok(warnings) => Ok(warnings),
            Err(ApiError::Unprocessable(issues)) => Err(issues),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    fn expressions(issues: &[Issue]) -> Vec<(Severity, &str)> {
        issues
            .iter()
            .map(|i| (i.severity, i.expression.as_str()))
            .collect()
    }

    #[test]
    fn default_policy_rejects_bad_codes_and_warns_about_displays() {
        let p = TerminologyPolicy::default();
        assert_eq!(check(&p, json!([icd10("J45.0"), icd10("J45")])), Ok(vec![]));
        for bad in ["Z99.99", "X", "J40-J47", "J450", "j45.0"] {
            let issues = check(&p, json!([icd10("J45.0"), icd10(bad)])).expect_err(bad);
            assert_eq!(
                expressions(&issues),
                [(Severity::Error, "Condition.code.coding[1].code")],
                "{bad}"
            );
            assert_eq!(issues[0].code, IssueCode::CodeInvalid);
            assert!(issues[0].diagnostics.contains(bad), "{bad}");
            assert!(issues[0].diagnostics.contains(ICD10), "{bad}");
        }
        let icpc = |code: &str| json!([{"system": ICPC2, "code": code}]);
        assert_eq!(check(&p, icpc("K86")), Ok(vec![]));
        assert_eq!(check(&p, icpc("-50")), Ok(vec![]));
        assert!(check(&p, icpc("K")).is_err());
        let wrong = json!([{"system": ICD10, "code": "J45.0", "display": "Broken leg"}]);
        let warnings = check(&p, wrong).expect("a wrong display does not reject");
        assert_eq!(
            expressions(&warnings),
            [(Severity::Warning, "Condition.code.coding[0].display")]
        );
        assert!(warnings[0].diagnostics.contains("Broken leg"));
        // Systems without a table are not checked.
        let loinc = json!([{"system": "http://loinc.org", "code": "no-such-code"}]);
        assert_eq!(check(&p, loinc), Ok(vec![]));
    }

    #[test]
    fn strictness_per_system() {
        let mut p = TerminologyPolicy::default();
        p.per_system.insert(ICD10.into(), Strictness::Warn);
        let issues = check(&p, json!([icd10("Z99.99")])).expect("warn stores the code");
        assert_eq!(
            expressions(&issues),
            [(Severity::Warning, "Condition.code.coding[0].code")]
        );
        // Only the named system is relaxed.
        let icpc = json!([icd10("Z99.99"), {"system": ICPC2, "code": "K"}]);
        let issues = check(&p, icpc).expect_err("ICPC-2 still rejects");
        assert_eq!(
            expressions(&issues),
            [
                (Severity::Error, "Condition.code.coding[1].code"),
                (Severity::Warning, "Condition.code.coding[0].code"),
            ]
        );
        p.per_system.insert(ICD10.into(), Strictness::Off);
        let off = json!([{"system": ICD10, "code": "Z99.99", "display": "x"}]);
        assert_eq!(check(&p, off), Ok(vec![]));
    }

    #[test]
    fn undotted_icd10() {
        let mut p = TerminologyPolicy::default();
        let issues = check(&p, json!([icd10("J450")])).expect_err("rejected by default");
        assert!(issues[0].diagnostics.contains("\"J45.0\""), "{issues:?}");
        p.icd10_undotted = Icd10Undotted::Normalise;
        let warnings = check(&p, json!([icd10("J450")])).expect("normalised");
        assert_eq!(
            expressions(&warnings),
            [(Severity::Warning, "Condition.code.coding[0].code")]
        );
        assert!(warnings[0].diagnostics.contains("\"J45.0\""));
        // The normalised code's display is checked too.
        let shown = json!([{"system": ICD10, "code": "J450", "display": "Broken leg"}]);
        let warnings = check(&p, shown).expect("normalised");
        assert_eq!(
            expressions(&warnings),
            [
                (Severity::Warning, "Condition.code.coding[0].code"),
                (Severity::Warning, "Condition.code.coding[0].display"),
            ]
        );
        // Normalising does not make an unknown code or a block known.
        assert!(check(&p, json!([icd10("Z9999")])).is_err());
        assert!(check(&p, json!([icd10("J40-J47")])).is_err());
        // ICD-10-CM is published with dots too.
        let cm = json!([{"system": ICD10CM, "code": "E119"}]);
        assert!(check(&p, cm).is_ok());
        // ICPC-2 codes are never rewritten.
        assert!(check(&p, json!([{"system": ICPC2, "code": "k86"}])).is_err());
    }

    #[test]
    fn version_mismatch() {
        let mut p = TerminologyPolicy::default();
        let same = json!([{"system": ICD10, "version": "2019", "code": "J45.0"}]);
        assert_eq!(check(&p, same), Ok(vec![]));
        let other = json!([{"system": ICD10, "version": "2016", "code": "J45.0"}]);
        let warnings = check(&p, other.clone()).expect("warned by default");
        assert_eq!(
            expressions(&warnings),
            [(Severity::Warning, "Condition.code.coding[0].version")]
        );
        p.version_mismatch = VersionMismatch::Reject;
        let issues = check(&p, other.clone()).expect_err("rejected");
        assert_eq!(issues[0].code, IssueCode::NotSupported);
        // Per-system warn caps a rejecting version policy too.
        p.per_system.insert(ICD10.into(), Strictness::Warn);
        assert!(check(&p, other).is_ok());
    }

    #[test]
    fn command_line_values() {
        assert_eq!(
            parse_code_check("icd-10=warn"),
            Ok((ICD10.to_owned(), Strictness::Warn))
        );
        assert_eq!(
            parse_code_check(&format!("{ICPC2}=off")),
            Ok((ICPC2.to_owned(), Strictness::Off))
        );
        assert!(parse_code_check("http://loinc.org=reject").is_err());
        assert!(parse_code_check("icd-10=maybe").is_err());
        assert!(parse_code_check("icd-10").is_err());
        assert_eq!("normalise".parse(), Ok(Icd10Undotted::Normalise));
        assert_eq!("reject".parse(), Ok(VersionMismatch::Reject));
        assert!("normalize".parse::<Icd10Undotted>().is_err());
    }
}
