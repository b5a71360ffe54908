//! Property tests of the mapping's typed fields: any Patient, Observation, DocumentReference,
//! MedicationRequest, Immunization or Location built from the generators maps onto typed
//! fields (not the remainder) and renders back to the same JSON.

use model::{Amount, Body, Content};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::entity::{to_entity, to_fhir};
use crate::json::parse_resource;

fn text() -> impl Strategy<Value = String> {
    // Non-empty, with accents and spaces, as names and addresses are.
    "[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ '.-]{0,20}"
}

fn date() -> impl Strategy<Value = String> {
    prop_oneof![
        (1900..2030i32).prop_map(|y| format!("{y:04}")),
        (1900..2030i32, 1..=12u32).prop_map(|(y, m)| format!("{y:04}-{m:02}")),
        (1900..2030i32, 1..=12u32, 1..=28u32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
    ]
}

fn decimal() -> impl Strategy<Value = String> {
    // Decimal text as clients send it: trailing zeros, exponents, long fractions.
    prop_oneof![
        (0..100_000i64, 0..4usize).prop_map(|(n, scale)| {
            if scale == 0 {
                n.to_string()
            } else {
                format!("{}.{:0>width$}", n / 100, n % 100, width = scale)
            }
        }),
        (1..99i64, -5..5i32).prop_map(|(m, e)| format!("{m}.0e{e}")),
        Just("0.000010".to_owned()),
        Just("123456789012345678901234567890.5".to_owned()),
    ]
}

fn patient() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((text(), prop::collection::vec(text(), 1..3)), 1..3),
        prop::option::of(prop_oneof![Just("male"), Just("female"), Just("other"), Just("unknown")]),
        prop::option::of(date()),
        prop::collection::vec(("[a-z]{1,8}", "[A-Z0-9-]{1,12}"), 0..3),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(names, gender, birth, ids, active)| {
            let mut p = json!({
                "resourceType": "Patient",
                "id": "p1",
                "name": names.into_iter().map(|(f, g)| json!({"family": f, "given": g})).collect::<Vec<_>>(),
            });
            if let Some(g) = gender { p["gender"] = json!(g); }
            if let Some(b) = birth { p["birthDate"] = json!(b); }
            if !ids.is_empty() {
                p["identifier"] = ids.into_iter().map(|(s, v)| json!({"system": format!("urn:{s}"), "value": v})).collect();
            }
            if let Some(a) = active { p["active"] = json!(a); }
            p
        })
}

fn observation() -> impl Strategy<Value = Value> {
    ("[0-9]{1,5}-[0-9]", decimal(), "[a-zA-Z/%]{1,6}", date()).prop_map(
        |(code, value, unit, when)| {
            // Built from text so the decimal keeps its exact form.
            let text = format!(
                r#"{{"resourceType":"Observation","id":"o1","status":"final",
                "code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},
                "subject":{{"reference":"Patient/p1"}},"effectiveDateTime":"{when}",
                "valueQuantity":{{"value":{value},"unit":"{unit}"}}}}"#
            );
            serde_json::from_str(&text).unwrap_or(Value::Null)
        },
    )
}

fn document_reference() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (
                "[a-z]{1,10}/[a-z0-9.+-]{1,12}",
                prop::option::of(0..u32::MAX),
                prop::option::of("([A-Za-z0-9+/]{4}){1,6}"),
                prop::option::of(text()),
                prop::option::of(date()),
            ),
            1..3,
        ),
        prop::option::of(date()),
    )
        .prop_map(|(contents, period_start)| {
            let content: Vec<Value> = contents
                .into_iter()
                .map(|(kind, size, data, title, creation)| {
                    let mut a = json!({ "contentType": kind });
                    if let Some(s) = size {
                        a["size"] = json!(s);
                    }
                    if let Some(d) = data {
                        a["data"] = json!(d);
                    }
                    if let Some(t) = title {
                        a["title"] = json!(t);
                    }
                    if let Some(c) = creation {
                        a["creation"] = json!(c);
                    }
                    json!({"attachment": a})
                })
                .collect();
            let mut d = json!({
                "resourceType": "DocumentReference", "id": "d1", "status": "current",
                "subject": {"reference": "Patient/p1"}, "content": content,
            });
            if let Some(start) = period_start {
                d["context"] = json!({"period": {"start": start}});
            }
            d
        })
}

fn medication_request() -> impl Strategy<Value = Value> {
    (
        "[0-9]{3,7}",
        decimal(),
        decimal(),
        prop_oneof![Just("h"), Just("d"), Just("wk")],
        1..6u32,
        any::<bool>(),
        prop::option::of(0..10u32),
    )
        .prop_map(|(code, dose, period, unit, frequency, prn, repeats)| {
            let dispense = repeats
                .map(|n| format!(r#","dispenseRequest":{{"numberOfRepeatsAllowed":{n}}}"#))
                .unwrap_or_default();
            // Built from text so the decimals keep their exact form.
            let text = format!(
                r#"{{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order",
                "medicationCodeableConcept":{{"coding":[{{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"{code}"}}]}},
                "subject":{{"reference":"Patient/p1"}},"authoredOn":"2020-01-02",
                "dosageInstruction":[{{"sequence":1,"timing":{{"repeat":{{"frequency":{frequency},"period":{period},"periodUnit":"{unit}"}}}},
                "asNeededBoolean":{prn},"doseAndRate":[{{"doseQuantity":{{"value":{dose},"unit":"mg"}}}}]}}]{dispense}}}"#
            );
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
}

fn immunization() -> impl Strategy<Value = Value> {
    (
        decimal(),
        date(),
        "[A-Z0-9]{1,8}",
        prop::option::of(1..10u32),
        any::<bool>(),
    )
        .prop_map(|(dose, when, lot, number, subpotent)| {
            let protocol = number
                .map(|n| format!(r#","protocolApplied":[{{"doseNumberPositiveInt":{n}}}]"#))
                .unwrap_or_default();
            let text = format!(
                r#"{{"resourceType":"Immunization","id":"i1","status":"completed",
                "vaccineCode":{{"coding":[{{"system":"http://hl7.org/fhir/sid/cvx","code":"140"}}]}},
                "patient":{{"reference":"Patient/p1"}},"occurrenceDateTime":"{when}",
                "lotNumber":"{lot}","isSubpotent":{subpotent},
                "doseQuantity":{{"value":{dose},"unit":"ml"}}{protocol}}}"#
            );
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
}

fn location() -> impl Strategy<Value = Value> {
    (decimal(), decimal(), prop::option::of(decimal()), text()).prop_map(
        |(longitude, latitude, altitude, name)| {
            let altitude = altitude.map_or(String::new(), |a| format!(r#","altitude":{a}"#));
            // Built from text so the decimals keep their exact form.
            let text = format!(
                r#"{{"resourceType":"Location","id":"l1","name":{name},
                "position":{{"longitude":{longitude},"latitude":{latitude}{altitude}}}}}"#,
                name = Value::String(name)
            );
            serde_json::from_str(&text).unwrap_or(Value::Null)
        },
    )
}

fn round_trip(v: &Value) -> Result<model::Entity, TestCaseError> {
    let res = parse_resource(v.to_string().as_bytes(), &Default::default())
        .map_err(|e| TestCaseError::fail(format!("{e}: {v}")))?;
    let entity = to_entity(&res);
    prop_assert_eq!(Value::Object(to_fhir(&entity, None)), v.clone());
    prop_assert!(
        !entity.remainder.complete,
        "typed fields could not reproduce {}",
        v
    );
    Ok(entity)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn patients_map_to_typed_fields(p in patient()) {
        let entity = round_trip(&p)?;
        let Body::Person(person) = &entity.body else { return Err(TestCaseError::fail("not a Person")) };
        prop_assert_eq!(person.names.len(), p["name"].as_array().map_or(0, Vec::len));
        prop_assert_eq!(person.birth_date.as_deref(), p["birthDate"].as_str());
        prop_assert_eq!(person.gender.as_deref(), p["gender"].as_str());
        for key in ["name", "gender", "birthDate", "identifier", "active"] {
            prop_assert!(!entity.remainder.data.contains_key(key), "{} left in the remainder", key);
        }
    }

    #[test]
    fn observations_keep_decimal_text_in_typed_fields(o in observation()) {
        let entity = round_trip(&o)?;
        let Body::Service(service) = &entity.body else { return Err(TestCaseError::fail("not a Service")) };
        let Some(Content::Quantity(q)) = &service.value else { return Err(TestCaseError::fail("no quantity")) };
        prop_assert_eq!(q.value.as_ref().map(|d| d.0.clone()), Some(o["valueQuantity"]["value"].to_string()));
        prop_assert!(!entity.remainder.data.contains_key("valueQuantity"));
        prop_assert_eq!(entity.patient.as_deref(), Some("p1"));
    }

    #[test]
    fn document_attachments_map_to_typed_fields(d in document_reference()) {
        let entity = round_trip(&d)?;
        let Body::Document(doc) = &entity.body else { return Err(TestCaseError::fail("not a Document")) };
        prop_assert_eq!(doc.contents.len(), d["content"].as_array().map_or(0, Vec::len));
        for (c, src) in doc.contents.iter().zip(d["content"].as_array().into_iter().flatten()) {
            let a = c.attachment.as_ref();
            prop_assert_eq!(a.and_then(|a| a.size.as_ref()).map(|s| s.0.clone()), src["attachment"].get("size").map(Value::to_string));
            prop_assert_eq!(a.and_then(|a| a.data.as_deref()), src["attachment"]["data"].as_str());
        }
        for key in ["content", "context", "subject", "status"] {
            prop_assert!(!entity.remainder.data.contains_key(key), "{} left in the remainder", key);
        }
        prop_assert_eq!(entity.patient.as_deref(), Some("p1"));
    }

    #[test]
    fn medication_requests_keep_dosage_decimals_in_typed_fields(m in medication_request()) {
        let entity = round_trip(&m)?;
        let Body::Service(service) = &entity.body else { return Err(TestCaseError::fail("not a Service")) };
        let dosage = &service.dosages[0];
        let Some(Amount::Quantity(q)) = &dosage.doses[0].dose else { return Err(TestCaseError::fail("no dose")) };
        let source = &m["dosageInstruction"][0];
        prop_assert_eq!(q.value.as_ref().map(|d| d.0.clone()), Some(source["doseAndRate"][0]["doseQuantity"]["value"].to_string()));
        let period = dosage.timing.as_ref().and_then(|t| t.repeat.as_ref()).and_then(|r| r.period.as_ref());
        prop_assert_eq!(period.map(|d| d.0.clone()), Some(source["timing"]["repeat"]["period"].to_string()));
        for key in ["status", "intent", "medicationCodeableConcept", "authoredOn", "dosageInstruction", "dispenseRequest"] {
            prop_assert!(!entity.remainder.data.contains_key(key), "{} left in the remainder", key);
        }
        prop_assert_eq!(entity.patient.as_deref(), Some("p1"));
        prop_assert_eq!(entity.codes[0].code.as_deref(), m["medicationCodeableConcept"]["coding"][0]["code"].as_str());
    }

    #[test]
    fn immunizations_map_to_typed_fields(i in immunization()) {
        let entity = round_trip(&i)?;
        let Body::Service(service) = &entity.body else { return Err(TestCaseError::fail("not a Service")) };
        prop_assert_eq!(service.item.as_str(), "immunization");
        prop_assert_eq!(service.lot_number.as_deref(), i["lotNumber"].as_str());
        prop_assert_eq!(
            service.dose_quantity.as_ref().and_then(|q| q.value.as_ref()).map(|d| d.0.clone()),
            Some(i["doseQuantity"]["value"].to_string())
        );
        prop_assert!(entity.remainder.data.is_empty(), "{:?}", entity.remainder.data);
        prop_assert_eq!(entity.patient.as_deref(), Some("p1"));
    }

    #[test]
    fn locations_keep_position_decimal_text(l in location()) {
        let entity = round_trip(&l)?;
        let Body::Party(party) = &entity.body else { return Err(TestCaseError::fail("not a Party")) };
        let Some(position) = &party.position else { return Err(TestCaseError::fail("no position")) };
        prop_assert_eq!(position.latitude.as_ref().map(|d| d.0.clone()), Some(l["position"]["latitude"].to_string()));
        prop_assert_eq!(position.altitude.as_ref().map(|d| d.0.clone()), l["position"].get("altitude").map(Value::to_string));
        prop_assert!(entity.remainder.data.is_empty());
    }
}
