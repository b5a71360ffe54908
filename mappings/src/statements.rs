//! Clinical statements ⇄ [`Service`]: Observation, DiagnosticReport, Procedure and
//! Immunization. Each type has a reader (FHIR → typed body) and a writer that renders exactly
//! the elements its reader takes; the entity mapping (`entity`) keeps whatever else a resource
//! carries in the remainder.
//!
//! FHIR elements map onto the general fields of a statement: the moment of an observation,
//! report, procedure or immunization (`effective[x]`, `performed[x]`, `occurrence[x]`) is
//! `effective`; the patient of an immunization is `subject`; its vaccine is `code`.

use model::{Component, Content, Participant, ProtocolDose, ReferenceRange, Service};

use crate::fields::*;

/// `item` of an Observation.
const OBSERVATION: &str = "observation";
/// `item` of a DiagnosticReport.
const DIAGNOSTIC_REPORT: &str = "diagnostic-report";
/// `item` of a Procedure.
const PROCEDURE: &str = "procedure";
/// `item` of an Immunization.
const IMMUNIZATION: &str = "immunization";

pub(crate) fn read_observation(o: &Obj) -> Service {
    Service {
        item: OBSERVATION.into(),
        status: str_of(o, "status"),
        categories: list_of(o, "category", read_concept),
        code: one_of(o, "code", read_concept),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        effective: read_when(o, "effective"),
        issued: str_of(o, "issued"),
        performers: list_of(o, "performer", read_link),
        value: read_content(o, "value"),
        data_absent_reason: one_of(o, "dataAbsentReason", read_concept),
        interpretations: list_of(o, "interpretation", read_concept),
        components: list_of(o, "component", read_component),
        reference_ranges: list_of(o, "referenceRange", read_reference_range),
        body_sites: one_as_list(o, "bodySite", read_concept),
        method: one_of(o, "method", read_concept),
        specimens: one_as_list(o, "specimen", read_link),
        device: one_of(o, "device", read_link),
        members: list_of(o, "hasMember", read_link),
        derived_from: list_of(o, "derivedFrom", read_link),
        based_on: list_of(o, "basedOn", read_link),
        part_of: list_of(o, "partOf", read_link),
        focus: list_of(o, "focus", read_link),
        notes: list_of(o, "note", read_annotation),
        ..Service::default()
    }
}

pub(crate) fn write_observation(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_list(&mut o, "partOf", &s.part_of, write_link);
    put_str(&mut o, "status", &s.status);
    put_list(&mut o, "category", &s.categories, write_concept);
    put_one(&mut o, "code", &s.code, write_concept);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_list(&mut o, "focus", &s.focus, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    write_when(&mut o, "effective", &s.effective);
    put_str(&mut o, "issued", &s.issued);
    put_list(&mut o, "performer", &s.performers, write_link);
    write_content(&mut o, "value", &s.value);
    put_one(
        &mut o,
        "dataAbsentReason",
        &s.data_absent_reason,
        write_concept,
    );
    put_list(&mut o, "interpretation", &s.interpretations, write_concept);
    put_list(&mut o, "note", &s.notes, write_annotation);
    put_first(&mut o, "bodySite", &s.body_sites, write_concept);
    put_one(&mut o, "method", &s.method, write_concept);
    put_first(&mut o, "specimen", &s.specimens, write_link);
    put_one(&mut o, "device", &s.device, write_link);
    put_list(
        &mut o,
        "referenceRange",
        &s.reference_ranges,
        write_reference_range,
    );
    put_list(&mut o, "hasMember", &s.members, write_link);
    put_list(&mut o, "derivedFrom", &s.derived_from, write_link);
    put_list(&mut o, "component", &s.components, write_component);
    o
}

fn read_component(o: &Obj) -> Component {
    Component {
        code: one_of(o, "code", read_concept),
        value: read_content(o, "value"),
        data_absent_reason: one_of(o, "dataAbsentReason", read_concept),
        interpretations: list_of(o, "interpretation", read_concept),
        reference_ranges: list_of(o, "referenceRange", read_reference_range),
    }
}

fn write_component(c: &Component) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "code", &c.code, write_concept);
    write_content(&mut o, "value", &c.value);
    put_one(
        &mut o,
        "dataAbsentReason",
        &c.data_absent_reason,
        write_concept,
    );
    put_list(&mut o, "interpretation", &c.interpretations, write_concept);
    put_list(
        &mut o,
        "referenceRange",
        &c.reference_ranges,
        write_reference_range,
    );
    o
}

fn read_reference_range(o: &Obj) -> ReferenceRange {
    ReferenceRange {
        low: one_of(o, "low", read_quantity),
        high: one_of(o, "high", read_quantity),
        kind: one_of(o, "type", read_concept),
        applies_to: list_of(o, "appliesTo", read_concept),
        age: one_of(o, "age", read_range),
        text: str_of(o, "text"),
    }
}

fn write_reference_range(r: &ReferenceRange) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "low", &r.low, write_quantity);
    put_one(&mut o, "high", &r.high, write_quantity);
    put_one(&mut o, "type", &r.kind, write_concept);
    put_list(&mut o, "appliesTo", &r.applies_to, write_concept);
    put_one(&mut o, "age", &r.age, write_range);
    put_str(&mut o, "text", &r.text);
    o
}

pub(crate) fn read_diagnostic_report(o: &Obj) -> Service {
    Service {
        item: DIAGNOSTIC_REPORT.into(),
        based_on: list_of(o, "basedOn", read_link),
        status: str_of(o, "status"),
        categories: list_of(o, "category", read_concept),
        code: one_of(o, "code", read_concept),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        effective: read_when(o, "effective"),
        issued: str_of(o, "issued"),
        performers: list_of(o, "performer", read_link),
        interpreters: list_of(o, "resultsInterpreter", read_link),
        specimens: list_of(o, "specimen", read_link),
        results: list_of(o, "result", read_link),
        conclusion: str_of(o, "conclusion"),
        conclusion_codes: list_of(o, "conclusionCode", read_concept),
        attachments: list_of(o, "presentedForm", read_attachment),
        ..Service::default()
    }
}

pub(crate) fn write_diagnostic_report(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_str(&mut o, "status", &s.status);
    put_list(&mut o, "category", &s.categories, write_concept);
    put_one(&mut o, "code", &s.code, write_concept);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    write_when(&mut o, "effective", &s.effective);
    put_str(&mut o, "issued", &s.issued);
    put_list(&mut o, "performer", &s.performers, write_link);
    put_list(&mut o, "resultsInterpreter", &s.interpreters, write_link);
    put_list(&mut o, "specimen", &s.specimens, write_link);
    put_list(&mut o, "result", &s.results, write_link);
    put_str(&mut o, "conclusion", &s.conclusion);
    put_list(&mut o, "conclusionCode", &s.conclusion_codes, write_concept);
    put_list(&mut o, "presentedForm", &s.attachments, write_attachment);
    o
}

fn read_participant(o: &Obj) -> Participant {
    Participant {
        role: one_of(o, "function", read_concept),
        actor: one_of(o, "actor", read_link),
        on_behalf_of: one_of(o, "onBehalfOf", read_link),
    }
}

fn write_participant(p: &Participant) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "function", &p.role, write_concept);
    put_one(&mut o, "actor", &p.actor, write_link);
    put_one(&mut o, "onBehalfOf", &p.on_behalf_of, write_link);
    o
}

pub(crate) fn read_procedure(o: &Obj) -> Service {
    Service {
        item: PROCEDURE.into(),
        based_on: list_of(o, "basedOn", read_link),
        part_of: list_of(o, "partOf", read_link),
        status: str_of(o, "status"),
        status_reason: one_of(o, "statusReason", read_concept),
        categories: one_as_list(o, "category", read_concept),
        code: one_of(o, "code", read_concept),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        effective: read_when(o, "performed"),
        recorder: one_of(o, "recorder", read_link),
        asserter: one_of(o, "asserter", read_link),
        participants: list_of(o, "performer", read_participant),
        location: one_of(o, "location", read_link),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_links: list_of(o, "reasonReference", read_link),
        body_sites: list_of(o, "bodySite", read_concept),
        outcome: one_of(o, "outcome", read_concept),
        complications: list_of(o, "complication", read_concept),
        follow_ups: list_of(o, "followUp", read_concept),
        notes: list_of(o, "note", read_annotation),
        ..Service::default()
    }
}

pub(crate) fn write_procedure(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_list(&mut o, "partOf", &s.part_of, write_link);
    put_str(&mut o, "status", &s.status);
    put_one(&mut o, "statusReason", &s.status_reason, write_concept);
    put_first(&mut o, "category", &s.categories, write_concept);
    put_one(&mut o, "code", &s.code, write_concept);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    write_when(&mut o, "performed", &s.effective);
    put_one(&mut o, "recorder", &s.recorder, write_link);
    put_one(&mut o, "asserter", &s.asserter, write_link);
    put_list(&mut o, "performer", &s.participants, write_participant);
    put_one(&mut o, "location", &s.location, write_link);
    put_list(&mut o, "reasonCode", &s.reasons, write_concept);
    put_list(&mut o, "reasonReference", &s.reason_links, write_link);
    put_list(&mut o, "bodySite", &s.body_sites, write_concept);
    put_one(&mut o, "outcome", &s.outcome, write_concept);
    put_list(&mut o, "complication", &s.complications, write_concept);
    put_list(&mut o, "followUp", &s.follow_ups, write_concept);
    put_list(&mut o, "note", &s.notes, write_annotation);
    o
}

/// Reads a `name[x]` choice of positiveInt or string (a dose count).
fn read_count(o: &Obj, name: &str) -> Option<Content> {
    decimal_of(o, &format!("{name}PositiveInt"))
        .map(Content::Integer)
        .or_else(|| str_of(o, &format!("{name}String")).map(Content::Text))
}

fn write_count(o: &mut Obj, name: &str, c: &Option<Content>) {
    match c {
        Some(Content::Integer(n)) => {
            put_decimal(o, &format!("{name}PositiveInt"), &Some(n.clone()));
        }
        Some(Content::Text(t)) => put_str(o, &format!("{name}String"), &Some(t.clone())),
        _ => {}
    }
}

fn read_protocol_dose(o: &Obj) -> ProtocolDose {
    ProtocolDose {
        series: str_of(o, "series"),
        authority: one_of(o, "authority", read_link),
        targets: list_of(o, "targetDisease", read_concept),
        dose_number: read_count(o, "doseNumber"),
        series_doses: read_count(o, "seriesDoses"),
    }
}

fn write_protocol_dose(p: &ProtocolDose) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "series", &p.series);
    put_one(&mut o, "authority", &p.authority, write_link);
    put_list(&mut o, "targetDisease", &p.targets, write_concept);
    write_count(&mut o, "doseNumber", &p.dose_number);
    write_count(&mut o, "seriesDoses", &p.series_doses);
    o
}

pub(crate) fn read_immunization(o: &Obj) -> Service {
    Service {
        item: IMMUNIZATION.into(),
        status: str_of(o, "status"),
        status_reason: one_of(o, "statusReason", read_concept),
        code: one_of(o, "vaccineCode", read_concept),
        subject: one_of(o, "patient", read_link),
        contact: one_of(o, "encounter", read_link),
        effective: read_when(o, "occurrence"),
        recorded_at: str_of(o, "recorded"),
        primary_source: bool_of(o, "primarySource"),
        location: one_of(o, "location", read_link),
        manufacturer: one_of(o, "manufacturer", read_link),
        lot_number: str_of(o, "lotNumber"),
        expiration_date: str_of(o, "expirationDate"),
        body_sites: one_as_list(o, "site", read_concept),
        route: one_of(o, "route", read_concept),
        dose_quantity: one_of(o, "doseQuantity", read_quantity),
        participants: list_of(o, "performer", read_participant),
        notes: list_of(o, "note", read_annotation),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_links: list_of(o, "reasonReference", read_link),
        subpotent: bool_of(o, "isSubpotent"),
        subpotent_reasons: list_of(o, "subpotentReason", read_concept),
        protocol_doses: list_of(o, "protocolApplied", read_protocol_dose),
        ..Service::default()
    }
}

pub(crate) fn write_immunization(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "status", &s.status);
    put_one(&mut o, "statusReason", &s.status_reason, write_concept);
    put_one(&mut o, "vaccineCode", &s.code, write_concept);
    put_one(&mut o, "patient", &s.subject, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    write_when(&mut o, "occurrence", &s.effective);
    put_str(&mut o, "recorded", &s.recorded_at);
    put_bool(&mut o, "primarySource", s.primary_source);
    put_one(&mut o, "location", &s.location, write_link);
    put_one(&mut o, "manufacturer", &s.manufacturer, write_link);
    put_str(&mut o, "lotNumber", &s.lot_number);
    put_str(&mut o, "expirationDate", &s.expiration_date);
    put_first(&mut o, "site", &s.body_sites, write_concept);
    put_one(&mut o, "route", &s.route, write_concept);
    put_one(&mut o, "doseQuantity", &s.dose_quantity, write_quantity);
    put_list(&mut o, "performer", &s.participants, write_participant);
    put_list(&mut o, "note", &s.notes, write_annotation);
    put_list(&mut o, "reasonCode", &s.reasons, write_concept);
    put_list(&mut o, "reasonReference", &s.reason_links, write_link);
    put_bool(&mut o, "isSubpotent", s.subpotent);
    put_list(
        &mut o,
        "subpotentReason",
        &s.subpotent_reasons,
        write_concept,
    );
    put_list(
        &mut o,
        "protocolApplied",
        &s.protocol_doses,
        write_protocol_dose,
    );
    o
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use model::{Content, Decimal, Entity, Service, When};
    use serde_json::{Value, json};

    use crate::entity::{to_entity, to_fhir};
    use crate::json::parse_resource;

    fn examples_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-data/r4-examples")
    }

    fn map_bytes(name: &str, bytes: &[u8]) -> Entity {
        let res =
            parse_resource(bytes, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let issues = crate::rules::check(&res);
        assert!(issues.is_empty(), "{name}: {issues:?}");
        let entity = to_entity(&res);
        assert!(
            !entity.remainder.complete,
            "{name}: typed fields could not reproduce the source"
        );
        entity
    }

    fn map(file: &str) -> Entity {
        let bytes =
            std::fs::read(examples_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        map_bytes(file, &bytes)
    }

    fn service(entity: &Entity) -> &Service {
        match &entity.body {
            model::Body::Service(s) => s,
            other => panic!(
                "{}: a Service, not {}",
                entity.source_type,
                other.kind_name()
            ),
        }
    }

    /// The elements typed for the kind left the remainder.
    fn gone(entity: &Entity, keys: &[&str]) {
        for key in keys {
            assert!(
                !entity.remainder.data.contains_key(*key),
                "{}/{}: {key} left in the remainder",
                entity.source_type,
                entity.id
            );
        }
    }

    fn target(link: Option<&model::Link>) -> Option<(&str, &str)> {
        let link = link?;
        Some((link.target_type.as_deref()?, link.target_id.as_deref()?))
    }

    /// Every example of the four types leaves in the remainder only what is kept there on
    /// purpose: narrative, meta, business identifiers, extensions, contained resources and
    /// the elements no statement field carries.
    #[test]
    fn examples_leave_only_untyped_elements_in_the_remainder() {
        let untyped = [
            "text",
            "meta",
            "identifier",
            "extension",
            "contained",
            // DiagnosticReport
            "imagingStudy",
            // Procedure
            "instantiatesUri",
            "usedCode",
            // Immunization
            "education",
            "programEligibility",
            "fundingSource",
        ];
        // Elements read in part: codings with extensions (Apgar ordinal values) or with
        // `userSelected` have no typed form.
        let partial = [
            ("Observation-10minute-apgar-score.json", "component"),
            ("Observation-1minute-apgar-score.json", "component"),
            ("Observation-2minute-apgar-score.json", "component"),
            ("Observation-body-length.json", "code"),
        ];
        let mut names: Vec<String> = std::fs::read_dir(examples_dir())
            .expect("shared examples")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                [
                    "Observation-",
                    "DiagnosticReport-",
                    "Procedure-",
                    "Immunization-",
                ]
                .iter()
                .any(|p| n.starts_with(p))
            })
            .collect();
        names.sort();
        assert!(names.len() >= 30, "only {} examples", names.len());
        for name in names {
            let entity = map(&name);
            let item = service(&entity).item.clone();
            for key in entity.remainder.data.keys() {
                assert!(
                    untyped.contains(&key.as_str()) || partial.contains(&(name.as_str(), key)),
                    "{name} ({item}): {key} left in the remainder"
                );
            }
        }
    }

    #[test]
    fn observation_with_quantity_and_reference_range() {
        let e = map("Observation-f001.json");
        let s = service(&e);
        assert_eq!(s.item, "observation");
        assert_eq!(s.status.as_deref(), Some("final"));
        assert_eq!(e.codes[0].code.as_deref(), Some("15074-8"));
        assert_eq!(target(s.subject.as_ref()), Some(("Patient", "f001")));
        assert_eq!(e.patient.as_deref(), Some("f001"));
        assert!(
            matches!(&s.effective, Some(When::Span(p)) if p.start.as_deref() == Some("2013-04-02T09:30:10+01:00"))
        );
        assert_eq!(s.issued.as_deref(), Some("2013-04-03T15:30:10+01:00"));
        let Some(Content::Quantity(q)) = &s.value else {
            panic!("a quantity: {:?}", s.value)
        };
        assert_eq!(q.value, Some(Decimal("6.3".into())));
        assert_eq!(s.interpretations[0].codes[0].code.as_deref(), Some("H"));
        let range = &s.reference_ranges[0];
        assert_eq!(
            range.low.as_ref().and_then(|q| q.value.clone()),
            Some(Decimal("3.1".into()))
        );
        assert_eq!(
            range.high.as_ref().and_then(|q| q.unit.as_deref()),
            Some("mmol/l")
        );
        gone(
            &e,
            &[
                "status",
                "code",
                "subject",
                "effectivePeriod",
                "issued",
                "performer",
                "valueQuantity",
                "interpretation",
                "referenceRange",
            ],
        );

        let e = map("Observation-f203.json");
        let s = service(&e);
        assert_eq!(
            s.method.as_ref().and_then(|m| m.text.as_deref()),
            Some("enzymatic method")
        );
        let kind = s.reference_ranges[0].kind.as_ref();
        assert_eq!(
            kind.map(|k| k.codes[0].code.as_deref()),
            Some(Some("normal"))
        );
        gone(&e, &["method", "referenceRange"]);

        let e = map("Observation-f004.json");
        assert!(service(&e).reference_ranges[0].text.is_some());
        gone(&e, &["referenceRange"]);
    }

    #[test]
    fn observation_components_keep_sampled_data_and_decimal_text() {
        let e = map("Observation-ekg.json");
        let s = service(&e);
        assert_eq!(
            s.device.as_ref().and_then(|d| d.display.as_deref()),
            Some("12 lead EKG Device Metric")
        );
        assert_eq!(s.components.len(), 3);
        let c = &s.components[1];
        assert_eq!(
            c.code.as_ref().map(|c| c.codes[0].code.as_deref()),
            Some(Some("131330"))
        );
        let Some(Content::SampledData(d)) = &c.value else {
            panic!("sampled data: {:?}", c.value)
        };
        assert_eq!(d.interval, Some(Decimal("10".into())));
        assert_eq!(d.factor, Some(Decimal("1.612".into())));
        assert_eq!(d.lower_limit, Some(Decimal("-3300".into())));
        assert_eq!(
            d.origin.as_ref().and_then(|o| o.value.clone()),
            Some(Decimal("2048".into()))
        );
        assert!(
            d.data
                .as_deref()
                .is_some_and(|t| t.starts_with("2041 2043"))
        );
        gone(
            &e,
            &["device", "component", "category", "effectiveDateTime"],
        );

        let e = map("Observation-decimal.json");
        let values: Vec<String> = service(&e)
            .components
            .iter()
            .filter_map(|c| match &c.value {
                Some(Content::Quantity(q)) => q.value.as_ref().map(|d| d.0.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(values[0], "1.0");
        assert!(values.contains(&"1e-22".to_owned()), "{values:?}");
        gone(&e, &["component"]);

        let e = map("Observation-alcohol-type.json");
        let s = service(&e);
        assert!(
            matches!(&s.components[1].value, Some(Content::Concept(c)) if c.text.as_deref() == Some("Beer"))
        );
        gone(&e, &["component"]);
    }

    #[test]
    fn observation_links_and_notes() {
        let e = map("Observation-vitals-panel.json");
        let s = service(&e);
        assert_eq!(s.members.len(), 4);
        assert_eq!(
            target(s.members.first()),
            Some(("Observation", "respiratory-rate"))
        );
        gone(&e, &["hasMember"]);

        let e = map("Observation-example-genetics-3.json");
        let s = service(&e);
        assert!(
            s.notes[0]
                .text
                .as_deref()
                .is_some_and(|t| t.contains("EGFR"))
        );
        assert_eq!(
            target(s.derived_from.first()),
            Some(("Observation", "example-genetics-1"))
        );
        gone(&e, &["note", "derivedFrom"]);

        let e = map("Observation-example-genetics-4.json");
        let s = service(&e);
        assert_eq!(
            target(s.specimens.first()),
            Some(("Specimen", "genetics-example1-somatic"))
        );
        gone(&e, &["specimen", "hasMember"]);

        let e = map("Observation-satO2.json");
        let s = service(&e);
        assert_eq!(target(s.part_of.first()), Some(("Procedure", "ob")));
        assert_eq!(target(s.device.as_ref()), Some(("DeviceMetric", "example")));
        gone(&e, &["partOf", "device", "referenceRange"]);
    }

    /// The value kinds and elements no shared example has: ranges, ratios, body site, focus,
    /// based-on, annotations with authors, reference ranges with an age and population.
    #[test]
    fn observation_value_kinds_round_trip_through_typed_fields() {
        // Parsed from text so that decimals keep their exact form.
        let parse = |text: &str| -> Value { serde_json::from_str(text).expect("JSON") };
        let base = parse(
            r#"{
            "resourceType": "Observation", "id": "o1", "status": "final",
            "basedOn": [{"reference": "ServiceRequest/r1"}],
            "code": {"text": "test"},
            "subject": {"reference": "Patient/p1"},
            "focus": [{"reference": "Condition/c1"}],
            "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003"}]},
            "note": [
                {"authorReference": {"reference": "Practitioner/x"}, "time": "2020-01-01", "text": "a"},
                {"authorString": "Dr X", "text": "b"}
            ],
            "referenceRange": [{
                "low": {"value": 1.50, "unit": "g"},
                "appliesTo": [{"text": "women"}],
                "age": {"low": {"value": 18, "unit": "a"}, "high": {"value": 65, "unit": "a"}}
            }],
            "component": [{
                "code": {"text": "ratio"},
                "valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 128}},
                "interpretation": [{"text": "high"}],
                "referenceRange": [{"text": "< 1:64"}]
            }, {
                "code": {"text": "absent"},
                "dataAbsentReason": {"text": "not asked"}
            }]
        }"#,
        );
        let values = [
            (
                "valueRange",
                r#"{"low": {"value": 2.0}, "high": {"value": 3.00, "comparator": "<"}}"#,
            ),
            (
                "valueRatio",
                r#"{"numerator": {"value": 1}, "denominator": {"value": 2}}"#,
            ),
            (
                "valueSampledData",
                r#"{"origin": {"value": 0}, "period": 0.50, "dimensions": 2, "data": "1 2 E U"}"#,
            ),
            ("valueString", r#""text""#),
            ("valueBoolean", "false"),
            ("valueInteger", "7"),
            ("valueTime", r#""10:00:00""#),
            ("valueDateTime", r#""2020-02""#),
            ("valuePeriod", r#"{"start": "2020"}"#),
            ("valueCodeableConcept", r#"{"text": "pos"}"#),
            ("valueQuantity", r#"{"value": 1.000, "unit": "ml"}"#),
        ];
        for (key, value) in values {
            let mut o = base.clone();
            o[key] = parse(value);
            let text = o.to_string();
            let e = map_bytes(key, text.as_bytes());
            assert_eq!(Value::Object(to_fhir(&e, None)), o, "{key}");
            assert!(e.remainder.data.is_empty(), "{key}: {:?}", e.remainder.data);
            let s = service(&e);
            let kind = match &s.value {
                Some(Content::Range(_)) => "valueRange",
                Some(Content::Ratio(_)) => "valueRatio",
                Some(Content::SampledData(_)) => "valueSampledData",
                Some(Content::Text(_)) => "valueString",
                Some(Content::Boolean(_)) => "valueBoolean",
                Some(Content::Integer(_)) => "valueInteger",
                Some(Content::Time(_)) => "valueTime",
                Some(Content::DateTime(_)) => "valueDateTime",
                Some(Content::Period(_)) => "valuePeriod",
                Some(Content::Concept(_)) => "valueCodeableConcept",
                Some(Content::Quantity(_)) => "valueQuantity",
                None => "none",
            };
            assert_eq!(kind, key);
            assert_eq!(s.notes[1].author_text.as_deref(), Some("Dr X"));
            assert_eq!(
                target(s.notes[0].author.as_ref()),
                Some(("Practitioner", "x"))
            );
            assert_eq!(target(s.focus.first()), Some(("Condition", "c1")));
            assert_eq!(target(s.based_on.first()), Some(("ServiceRequest", "r1")));
            assert_eq!(s.body_sites.len(), 1);
            let age = s.reference_ranges[0].age.as_ref();
            assert_eq!(
                age.and_then(|a| a.high.as_ref()?.value.clone()),
                Some(Decimal("65".into()))
            );
            assert_eq!(
                s.reference_ranges[0]
                    .low
                    .as_ref()
                    .and_then(|q| q.value.clone()),
                Some(Decimal("1.50".into()))
            );
            assert!(
                matches!(&s.components[0].value, Some(Content::Ratio(r)) if r.denominator.as_ref().and_then(|d| d.value.clone()) == Some(Decimal("128".into())))
            );
            assert!(s.components[1].data_absent_reason.is_some());
            match &s.value {
                Some(Content::Range(r)) => assert_eq!(
                    r.high.as_ref().and_then(|q| q.value.clone()),
                    Some(Decimal("3.00".into()))
                ),
                Some(Content::SampledData(d)) => {
                    assert_eq!(d.interval, Some(Decimal("0.50".into())))
                }
                Some(Content::Quantity(q)) => assert_eq!(q.value, Some(Decimal("1.000".into()))),
                _ => {}
            }
        }
    }

    #[test]
    fn diagnostic_reports_map_results_conclusions_and_forms() {
        let e = map("DiagnosticReport-example-pgx.json");
        let s = service(&e);
        assert_eq!(s.item, "diagnostic-report");
        assert_eq!(s.status.as_deref(), Some("final"));
        assert_eq!(e.codes[0].code.as_deref(), Some("PGxReport"));
        assert_eq!(e.patient.as_deref(), Some("899962"));
        assert_eq!(
            s.effective,
            Some(When::At("2016-10-15T12:34:56+11:00".into()))
        );
        assert_eq!(
            target(s.results.first()),
            Some(("Observation", "example-phenotype"))
        );
        assert_eq!(
            target(s.based_on.first()),
            Some(("ServiceRequest", "example-pgx"))
        );
        assert_eq!(target(s.performers.first()), Some(("Organization", "4829")));
        let form = &s.attachments[0];
        assert_eq!(form.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(form.data.as_deref(), Some("cGRmSW5CYXNlNjRCaW5hcnk="));
        assert_eq!(form.creation.as_deref(), Some("2016-10-20T20:00:00+11:00"));
        gone(
            &e,
            &[
                "status",
                "code",
                "subject",
                "effectiveDateTime",
                "issued",
                "performer",
                "result",
                "basedOn",
                "presentedForm",
            ],
        );

        let e = map("DiagnosticReport-f201.json");
        let s = service(&e);
        assert_eq!(
            s.conclusion.as_deref(),
            Some("CT brains: large tumor sphenoid/clivus.")
        );
        assert_eq!(
            s.conclusion_codes[0].codes[0].code.as_deref(),
            Some("188340000")
        );
        assert_eq!(s.categories[0].codes.len(), 2);
        assert_eq!(e.patient.as_deref(), Some("f201"));
        gone(&e, &["conclusion", "conclusionCode", "category"]);
        assert!(e.remainder.data.contains_key("imagingStudy"));

        let e = map("DiagnosticReport-gingival-mass.json");
        let s = service(&e);
        assert!(
            s.interpreters[0]
                .display
                .as_deref()
                .is_some_and(|d| d.starts_with("Sean Stover"))
        );
        // A subject given only by its display is in no patient's compartment.
        assert_eq!(e.patient, None);
        gone(&e, &["resultsInterpreter", "presentedForm", "subject"]);
    }

    #[test]
    fn procedures_map_performers_reasons_and_outcomes() {
        let e = map("Procedure-ambulation.json");
        let s = service(&e);
        assert_eq!(s.item, "procedure");
        assert_eq!(s.status.as_deref(), Some("not-done"));
        assert_eq!(
            s.status_reason.as_ref().and_then(|c| c.text.as_deref()),
            Some("Pre-eclampsia")
        );
        assert_eq!(e.codes[0].code.as_deref(), Some("62013009"));
        assert_eq!(e.patient.as_deref(), Some("example"));
        let p = &s.participants[0];
        assert_eq!(target(p.actor.as_ref()), Some(("Practitioner", "f204")));
        assert_eq!(
            target(p.on_behalf_of.as_ref()),
            Some(("Organization", "f001"))
        );
        assert_eq!(target(s.location.as_ref()), Some(("Location", "1")));
        assert_eq!(
            target(s.reason_links.first()),
            Some(("Observation", "blood-pressure"))
        );
        assert_eq!(target(s.based_on.first()), Some(("CarePlan", "preg")));
        gone(
            &e,
            &[
                "status",
                "statusReason",
                "code",
                "subject",
                "performer",
                "location",
                "reasonReference",
                "basedOn",
            ],
        );

        let e = map("Procedure-biopsy.json");
        let s = service(&e);
        assert_eq!(s.categories.len(), 1);
        assert_eq!(s.effective, Some(When::At("2014-02-03".into())));
        assert_eq!(s.body_sites[0].text.as_deref(), Some("Left forearm"));
        assert_eq!(
            s.complications[0].codes[0].code.as_deref(),
            Some("67750007")
        );
        assert_eq!(s.follow_ups[0].text.as_deref(), Some("Review in clinic"));
        assert_eq!(s.notes[0].text.as_deref(), Some("Standard Biopsy"));
        assert!(
            s.reasons[0]
                .text
                .as_deref()
                .is_some_and(|t| t.starts_with("Dark lesion"))
        );
        gone(
            &e,
            &[
                "category",
                "performedDateTime",
                "bodySite",
                "complication",
                "followUp",
                "note",
                "reasonCode",
            ],
        );

        let e = map("Procedure-example.json");
        let s = service(&e);
        assert_eq!(
            target(s.recorder.as_ref()),
            Some(("Practitioner", "example"))
        );
        assert_eq!(
            s.asserter.as_ref().and_then(|a| a.display.as_deref()),
            Some("Dr Cecil Surgeon")
        );
        assert_eq!(s.participants[0].role, None);
        gone(
            &e,
            &["recorder", "asserter", "performer", "followUp", "note"],
        );
    }

    #[test]
    fn immunizations_map_vaccine_patient_and_protocol() {
        let e = map("Immunization-protocol.json");
        let s = service(&e);
        assert_eq!(s.item, "immunization");
        assert_eq!(s.status.as_deref(), Some("completed"));
        assert_eq!(e.codes[0].code.as_deref(), Some("104"));
        assert_eq!(
            crate::entity::main_concept(&e).and_then(|c| c.text.as_deref()),
            Some("Twinrix (HepA/HepB)")
        );
        assert_eq!(target(s.subject.as_ref()), Some(("Patient", "example")));
        assert_eq!(e.patient.as_deref(), Some("example"));
        assert_eq!(target(s.contact.as_ref()), Some(("Encounter", "example")));
        assert_eq!(s.effective, Some(When::At("2018-06-18".into())));
        assert_eq!(s.primary_source, Some(true));
        assert_eq!(
            target(s.manufacturer.as_ref()),
            Some(("Organization", "hl7"))
        );
        assert_eq!(s.lot_number.as_deref(), Some("PT123F"));
        assert_eq!(s.expiration_date.as_deref(), Some("2018-12-15"));
        assert_eq!(s.body_sites[0].codes[0].code.as_deref(), Some("LA"));
        assert_eq!(
            s.route.as_ref().map(|r| r.codes[0].code.as_deref()),
            Some(Some("IM"))
        );
        assert_eq!(
            s.dose_quantity.as_ref().and_then(|q| q.value.clone()),
            Some(Decimal("5".into()))
        );
        assert_eq!(s.participants.len(), 2);
        assert_eq!(
            s.participants[1]
                .role
                .as_ref()
                .map(|r| r.codes[0].code.as_deref()),
            Some(Some("AP"))
        );
        assert_eq!(s.subpotent, Some(false));
        let dose = &s.protocol_doses[1];
        assert_eq!(dose.series.as_deref(), Some("3-dose"));
        assert_eq!(
            dose.dose_number,
            Some(Content::Integer(Decimal("2".into())))
        );
        assert_eq!(dose.targets[0].codes[0].code.as_deref(), Some("66071002"));
        gone(
            &e,
            &[
                "status",
                "vaccineCode",
                "patient",
                "encounter",
                "occurrenceDateTime",
                "primarySource",
                "location",
                "manufacturer",
                "lotNumber",
                "expirationDate",
                "site",
                "route",
                "doseQuantity",
                "performer",
                "isSubpotent",
                "protocolApplied",
            ],
        );

        let e = map("Immunization-subpotent.json");
        let s = service(&e);
        assert_eq!(
            s.dose_quantity.as_ref().and_then(|q| q.value.clone()),
            Some(Decimal("0.5".into()))
        );
        assert_eq!(
            s.subpotent_reasons[0].codes[0].code.as_deref(),
            Some("partial")
        );
        assert_eq!(
            s.notes[0].text.as_deref(),
            Some("Notes on adminstration of vaccine")
        );
        gone(&e, &["note", "subpotentReason"]);
    }

    /// Immunization's string forms: occurrenceString has no typed form and stays in the
    /// remainder; a dose count given as text is typed.
    #[test]
    fn immunization_text_forms() {
        let o = json!({
            "resourceType": "Immunization", "id": "i1", "status": "completed",
            "vaccineCode": {"text": "flu"},
            "patient": {"reference": "Patient/p1"},
            "occurrenceString": "autumn 2019",
            "reasonCode": [{"text": "season"}],
            "reasonReference": [{"reference": "Observation/o1"}],
            "protocolApplied": [{"doseNumberString": "booster", "seriesDosesString": "many",
                "authority": {"reference": "Organization/who"}}]
        });
        let e = map_bytes("inline", o.to_string().as_bytes());
        assert_eq!(Value::Object(to_fhir(&e, None)), o);
        let s = service(&e);
        assert_eq!(s.effective, None);
        assert!(e.remainder.data.contains_key("occurrenceString"));
        let dose = &s.protocol_doses[0];
        assert_eq!(dose.dose_number, Some(Content::Text("booster".into())));
        assert_eq!(dose.series_doses, Some(Content::Text("many".into())));
        assert_eq!(s.reasons[0].text.as_deref(), Some("season"));
        assert_eq!(target(s.reason_links.first()), Some(("Observation", "o1")));
        gone(
            &e,
            &[
                "protocolApplied",
                "reasonCode",
                "reasonReference",
                "patient",
            ],
        );
        assert_eq!(e.patient.as_deref(), Some("p1"));
    }
}
