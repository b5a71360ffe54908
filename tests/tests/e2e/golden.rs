//! Golden files of the stored entity encoding: bodies written by format 1 must decode, in
//! every later release, to entities that render the same FHIR JSON as their source.
//!
//! The files in `store/golden/v1/` are never rewritten by a test run; to add new ones (never
//! to change old ones) run with `FHIRGATE_BLESS_GOLDEN=1`.

use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

/// Shared examples whose encodings are kept: every mapped kind and a generic one.
const SOURCES: &[&str] = &[
    "Patient-example.json",
    "Practitioner-f001.json",
    "Organization-hl7.json",
    "Encounter-f202.json",
    "Observation-f001.json",
    "Condition-f201.json",
    "Medication-med0304.json",
    "AllergyIntolerance-example.json",
    "CareTeam-example.json",
    "Composition-example.json",
    "Consent-consent-example-Out.json",
    "DiagnosticReport-f201.json",
    "DocumentReference-example.json",
    "EpisodeOfCare-example.json",
    "Immunization-protocol.json",
    "Location-2.json",
    "MedicationRequest-medrx0304.json",
    "MedicationStatement-example003.json",
    "Procedure-biopsy.json",
    "Provenance-signature.json",
    "ServiceRequest-physical-therapy.json",
];

pub fn all() -> Vec<Trial> {
    vec![Trial::test(
        "golden::stored_encoding_v1_still_decodes",
        || check().map_err(Failed::from),
    )]
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/golden/v1")
}

fn source(name: &str) -> Result<Value, String> {
    let path = tests::shared_dir().join("fhir-data/r4-examples").join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))
}

fn check() -> Result<(), String> {
    let bless = std::env::var("FHIRGATE_BLESS_GOLDEN").is_ok_and(|v| v == "1");
    for name in SOURCES {
        let golden = golden_dir().join(name.replace(".json", ".bin"));
        let original = source(name)?;
        if bless && !golden.exists() {
            let parsed = mappings::json::parse_resource(
                original.to_string().as_bytes(),
                &Default::default(),
            )
            .map_err(|e| format!("{name}: {e}"))?;
            let mut entity = mappings::entity::to_entity(&parsed);
            entity.version = 1;
            let bytes = store::codec::encode(&entity).map_err(|e| e.to_string())?;
            std::fs::write(&golden, bytes).map_err(|e| format!("{}: {e}", golden.display()))?;
        }
        let bytes = std::fs::read(&golden).map_err(|e| {
            format!(
                "{}: {e} (golden files are never regenerated silently)",
                golden.display()
            )
        })?;
        if bytes.first() != Some(&1) {
            return Err(format!("{name}: golden file is not format 1"));
        }
        let entity = store::codec::decode(&bytes).map_err(|e| format!("{name}: {e}"))?;
        let rendered = Value::Object(mappings::entity::to_fhir(&entity, None));
        if tests::without_server_meta(rendered) != tests::without_server_meta(original) {
            return Err(format!(
                "{name}: the decoded entity no longer renders its source"
            ));
        }
        if entity.version != 1 {
            return Err(format!(
                "{name}: version {} in a golden file of version 1",
                entity.version
            ));
        }
    }
    Ok(())
}
