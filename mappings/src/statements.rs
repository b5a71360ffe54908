//! Clinical statements ⇄ [`Service`]: Observation. Each type has a reader (FHIR → typed
//! body) and a writer that renders exactly the elements its reader takes; the entity mapping
//! (`entity`) keeps whatever else a resource carries in the remainder.

use model::{Component, ReferenceRange, Service};

use crate::fields::*;

/// `item` of an Observation.
const OBSERVATION: &str = "observation";

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use model::{Content, Decimal, Entity, Service, When};
    use serde_json::Value;

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
            assert_eq!(s.notes[1].author_name.as_deref(), Some("Dr X"));
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
}
