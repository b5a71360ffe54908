//! Round trips of the shared FHIR examples through the entity mapping.

use std::path::PathBuf;

use model::Body;
use serde_json::Value;

use crate::entity::{to_entity, to_fhir};
use crate::json::parse_resource;
use crate::rules::check;

fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-data/r4-examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shared/fhir-data/r4-examples beside the checkout")
    {
        let path = entry.expect("readable dir").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        out.push((name, std::fs::read(&path).expect("readable file")));
    }
    out.sort();
    assert!(
        out.len() > 500,
        "expected the shared examples, found {}",
        out.len()
    );
    out
}

/// The resource types with a typed entity body (issue 3's list).
const MAPPED_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "CareTeam",
    "Composition",
    "Condition",
    "Consent",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "Immunization",
    "Location",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "ServiceRequest",
];

#[test]
fn every_example_round_trips_and_mapped_types_fill_typed_fields() {
    let mut mapped = 0;
    let mut types = std::collections::BTreeSet::new();
    for (name, bytes) in examples() {
        let res =
            parse_resource(&bytes, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let issues = check(&res);
        if name == "Questionnaire-qs1.json" {
            assert!(
                issues.iter().any(|i| i.expression.ends_with(".linkId")),
                "{issues:?}"
            );
            continue;
        }
        assert!(issues.is_empty(), "{name}: {issues:?}");
        let entity = to_entity(&res);
        let back = to_fhir(&entity, None);
        // The owning forms give the same entity and the same resource.
        assert_eq!(crate::entity::into_entity(res.clone()), entity, "{name}");
        assert_eq!(
            crate::entity::into_fhir(entity.clone(), Some("2020-01-01T00:00:00Z")),
            to_fhir(&entity, Some("2020-01-01T00:00:00Z")),
            "{name}"
        );
        let mut original = res.object().clone();
        if let Some(Value::Object(meta)) = original.get_mut("meta") {
            meta.shift_remove("versionId");
            meta.shift_remove("lastUpdated");
            if meta.is_empty() {
                original.shift_remove("meta");
            }
        }
        assert_eq!(Value::Object(back), Value::Object(original), "{name}");
        if !matches!(entity.body, Body::Generic) {
            mapped += 1;
            types.insert(entity.source_type.clone());
            assert!(
                !entity.remainder.complete,
                "{name}: typed fields could not reproduce the source"
            );
        }
    }
    assert!(mapped >= 88, "only {mapped} mapped examples");
    // Every mapped type with an example among the shared ones (PractitionerRole has none:
    // its test builds one).
    let expected: std::collections::BTreeSet<String> = MAPPED_TYPES
        .iter()
        .filter(|t| **t != "PractitionerRole")
        .map(|t| t.to_string())
        .collect();
    assert_eq!(types, expected);
}

#[test]
fn typed_fields_hold_the_clinical_content() {
    let read = |file: &str| {
        let bytes = examples()
            .into_iter()
            .find(|(n, _)| n == file)
            .map(|(_, b)| b);
        let res = parse_resource(&bytes.unwrap_or_default(), &Default::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        to_entity(&res)
    };
    let patient = read("Patient-example.json");
    let Body::Person(person) = &patient.body else {
        panic!("Patient is a Person")
    };
    assert_eq!(person.birth_date.as_deref(), Some("1974-12-25"));
    assert_eq!(person.gender.as_deref(), Some("male"));
    assert!(
        person
            .names
            .iter()
            .any(|n| n.family.as_deref() == Some("Chalmers"))
    );
    assert!(!patient.remainder.data.contains_key("gender"));
    assert_eq!(patient.patient.as_deref(), Some("example"));

    let obs = read("Observation-f001.json");
    let Body::Service(service) = &obs.body else {
        panic!("Observation is a Service")
    };
    assert!(matches!(service.value, Some(model::Content::Quantity(_))));
    assert_eq!(obs.patient.as_deref(), Some("f001"));
    assert!(!obs.remainder.data.contains_key("valueQuantity"));
}

/// Every resource of the synthetic patients' transaction bundles keeps the R4 structure (so
/// the schema check refuses nothing a real feed sends), and the bundles themselves too.
#[test]
fn synthetic_bundles_keep_the_structure() {
    use std::io::Read;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-data/synthea");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("shared/fhir-data/synthea beside the checkout") {
        let path = entry.expect("readable dir").path();
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("readable file"))
            .read_to_string(&mut text)
            .expect("gzip'd JSON");
        let bundle: Value = serde_json::from_str(&text).expect("JSON");
        let Value::Object(object) = &bundle else {
            panic!("{path:?}: not an object")
        };
        let issues = crate::schema::check(object, "Bundle");
        assert!(
            issues.is_empty(),
            "{path:?}: {:?}",
            &issues[..issues.len().min(5)]
        );
        checked += bundle["entry"].as_array().map_or(0, Vec::len);
    }
    assert!(checked > 20_000, "only {checked} entries");
}
