//! Statements and requests about care, mapped onto [`Service`]s: MedicationStatement
//! (`item` "medication-statement"), MedicationRequest ("medication-request") and
//! ServiceRequest ("service-request", referrals included).
//!
//! Elements left to the remainder on purpose (rare, or no cheap typed form):
//! `instantiatesCanonical`, `instantiatesUri`, `insurance`, `detectedIssue`, `eventHistory`,
//! `relevantHistory`, and the `contained` resources (a medication linked as `#id`).

use model::{DispenseRequest, Dosage, DoseAndRate, Medication, Reported, Service, Substitution};
use serde_json::Value;

use crate::fields::*;

/// The first element of a 0..* list whose typed field holds one (written back as a list of
/// one: a longer list renders differently and so stays whole in the remainder).
fn first_of<T>(o: &Obj, key: &str, read: impl Fn(&Obj) -> T) -> Option<T> {
    list_of(o, key, read).into_iter().next()
}

/// Writes a 0..1 typed field as a list of one (the inverse of [`first_of`]).
fn put_list_of_one<T>(o: &mut Obj, key: &str, v: &Option<T>, write: impl Fn(&T) -> Obj) {
    if let Some(v) = v {
        o.insert(key.into(), Value::Array(vec![Value::Object(write(v))]));
    }
}

fn read_medication(o: &Obj) -> Option<Medication> {
    if let Some(c) = one_of(o, "medicationCodeableConcept", read_concept) {
        return Some(Medication::Coded(c));
    }
    one_of(o, "medicationReference", read_link).map(Medication::Linked)
}

fn write_medication(o: &mut Obj, m: &Option<Medication>) {
    match m {
        Some(Medication::Coded(c)) => {
            o.insert(
                "medicationCodeableConcept".into(),
                Value::Object(write_concept(c)),
            );
        }
        Some(Medication::Linked(l)) => {
            o.insert("medicationReference".into(), Value::Object(write_link(l)));
        }
        None => {}
    }
}

fn read_dosage(o: &Obj) -> Dosage {
    Dosage {
        sequence: decimal_of(o, "sequence"),
        text: str_of(o, "text"),
        additional_instructions: list_of(o, "additionalInstruction", read_concept),
        patient_instruction: str_of(o, "patientInstruction"),
        timing: one_of(o, "timing", read_timing),
        as_needed: read_answer(o, "asNeeded"),
        site: one_of(o, "site", read_concept),
        route: one_of(o, "route", read_concept),
        method: one_of(o, "method", read_concept),
        doses: list_of(o, "doseAndRate", |d| DoseAndRate {
            kind: one_of(d, "type", read_concept),
            dose: read_amount(d, "dose", &["Quantity", "Range"]),
            rate: read_amount(d, "rate", &["Quantity", "Range", "Ratio"]),
        }),
        max_per_period: one_of(o, "maxDosePerPeriod", read_ratio),
        max_per_administration: one_of(o, "maxDosePerAdministration", read_quantity),
        max_per_lifetime: one_of(o, "maxDosePerLifetime", read_quantity),
    }
}

fn write_dosage(d: &Dosage) -> Obj {
    let mut o = Obj::new();
    put_decimal(&mut o, "sequence", &d.sequence);
    put_str(&mut o, "text", &d.text);
    put_list(
        &mut o,
        "additionalInstruction",
        &d.additional_instructions,
        write_concept,
    );
    put_str(&mut o, "patientInstruction", &d.patient_instruction);
    put_one(&mut o, "timing", &d.timing, write_timing);
    write_answer(&mut o, "asNeeded", &d.as_needed);
    put_one(&mut o, "site", &d.site, write_concept);
    put_one(&mut o, "route", &d.route, write_concept);
    put_one(&mut o, "method", &d.method, write_concept);
    put_list(&mut o, "doseAndRate", &d.doses, |r| {
        let mut o = Obj::new();
        put_one(&mut o, "type", &r.kind, write_concept);
        write_amount(&mut o, "dose", &r.dose);
        write_amount(&mut o, "rate", &r.rate);
        o
    });
    put_one(&mut o, "maxDosePerPeriod", &d.max_per_period, write_ratio);
    put_one(
        &mut o,
        "maxDosePerAdministration",
        &d.max_per_administration,
        write_quantity,
    );
    put_one(
        &mut o,
        "maxDosePerLifetime",
        &d.max_per_lifetime,
        write_quantity,
    );
    o
}

pub(crate) fn read_medication_statement(o: &Obj) -> Service {
    Service {
        item: "medication-statement".into(),
        identifiers: list_of(o, "identifier", read_identifier),
        based_on: list_of(o, "basedOn", read_link),
        part_of: list_of(o, "partOf", read_link),
        status: str_of(o, "status"),
        status_reason: first_of(o, "statusReason", read_concept),
        categories: one_as_list(o, "category", read_concept),
        medication: read_medication(o),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "context", read_link),
        effective: read_when(o, "effective"),
        asserted: str_of(o, "dateAsserted"),
        information_source: one_of(o, "informationSource", read_link),
        derived_from: list_of(o, "derivedFrom", read_link),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_links: list_of(o, "reasonReference", read_link),
        notes: list_of(o, "note", read_annotation),
        dosages: list_of(o, "dosage", read_dosage),
        ..Service::default()
    }
}

pub(crate) fn write_medication_statement(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &s.identifiers, write_identifier);
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_list(&mut o, "partOf", &s.part_of, write_link);
    put_str(&mut o, "status", &s.status);
    put_list_of_one(&mut o, "statusReason", &s.status_reason, write_concept);
    put_first(&mut o, "category", &s.categories, write_concept);
    write_medication(&mut o, &s.medication);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_one(&mut o, "context", &s.contact, write_link);
    write_when(&mut o, "effective", &s.effective);
    put_str(&mut o, "dateAsserted", &s.asserted);
    put_one(
        &mut o,
        "informationSource",
        &s.information_source,
        write_link,
    );
    put_list(&mut o, "derivedFrom", &s.derived_from, write_link);
    put_list(&mut o, "reasonCode", &s.reasons, write_concept);
    put_list(&mut o, "reasonReference", &s.reason_links, write_link);
    put_list(&mut o, "note", &s.notes, write_annotation);
    put_list(&mut o, "dosage", &s.dosages, write_dosage);
    o
}

fn read_reported(o: &Obj) -> Option<Reported> {
    if let Some(flag) = bool_of(o, "reportedBoolean") {
        return Some(Reported::Flag(flag));
    }
    one_of(o, "reportedReference", read_link).map(Reported::By)
}

fn write_reported(o: &mut Obj, r: &Option<Reported>) {
    match r {
        Some(Reported::Flag(flag)) => {
            o.insert("reportedBoolean".into(), Value::Bool(*flag));
        }
        Some(Reported::By(l)) => {
            o.insert("reportedReference".into(), Value::Object(write_link(l)));
        }
        None => {}
    }
}

fn read_dispense(o: &Obj) -> DispenseRequest {
    let initial = one_of(o, "initialFill", |f| {
        (
            one_of(f, "quantity", read_quantity),
            one_of(f, "duration", read_quantity),
        )
    });
    let (initial_quantity, initial_duration) = initial.unwrap_or_default();
    DispenseRequest {
        initial_quantity,
        initial_duration,
        interval: one_of(o, "dispenseInterval", read_quantity),
        validity: one_of(o, "validityPeriod", read_period),
        repeats_allowed: decimal_of(o, "numberOfRepeatsAllowed"),
        quantity: one_of(o, "quantity", read_quantity),
        supply_duration: one_of(o, "expectedSupplyDuration", read_quantity),
        dispenser: one_of(o, "performer", read_link),
    }
}

fn write_dispense(d: &DispenseRequest) -> Obj {
    let mut o = Obj::new();
    if d.initial_quantity.is_some() || d.initial_duration.is_some() {
        let mut f = Obj::new();
        put_one(&mut f, "quantity", &d.initial_quantity, write_quantity);
        put_one(&mut f, "duration", &d.initial_duration, write_quantity);
        o.insert("initialFill".into(), Value::Object(f));
    }
    put_one(&mut o, "dispenseInterval", &d.interval, write_quantity);
    put_one(&mut o, "validityPeriod", &d.validity, write_period);
    put_decimal(&mut o, "numberOfRepeatsAllowed", &d.repeats_allowed);
    put_one(&mut o, "quantity", &d.quantity, write_quantity);
    put_one(
        &mut o,
        "expectedSupplyDuration",
        &d.supply_duration,
        write_quantity,
    );
    put_one(&mut o, "performer", &d.dispenser, write_link);
    o
}

fn read_substitution(o: &Obj) -> Substitution {
    Substitution {
        allowed: read_answer(o, "allowed"),
        reason: one_of(o, "reason", read_concept),
    }
}

fn write_substitution(s: &Substitution) -> Obj {
    let mut o = Obj::new();
    write_answer(&mut o, "allowed", &s.allowed);
    put_one(&mut o, "reason", &s.reason, write_concept);
    o
}

pub(crate) fn read_medication_request(o: &Obj) -> Service {
    Service {
        item: "medication-request".into(),
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        status_reason: one_of(o, "statusReason", read_concept),
        intent: str_of(o, "intent"),
        categories: list_of(o, "category", read_concept),
        priority: str_of(o, "priority"),
        do_not_perform: bool_of(o, "doNotPerform"),
        reported: read_reported(o),
        medication: read_medication(o),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        supporting_info: list_of(o, "supportingInformation", read_link),
        authored: str_of(o, "authoredOn"),
        requester: one_of(o, "requester", read_link),
        performers: one_as_list(o, "performer", read_link),
        performer_type: one_of(o, "performerType", read_concept),
        recorder: one_of(o, "recorder", read_link),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_links: list_of(o, "reasonReference", read_link),
        based_on: list_of(o, "basedOn", read_link),
        requisition: one_of(o, "groupIdentifier", read_identifier),
        course_of_therapy: one_of(o, "courseOfTherapyType", read_concept),
        notes: list_of(o, "note", read_annotation),
        dosages: list_of(o, "dosageInstruction", read_dosage),
        dispense: one_of(o, "dispenseRequest", read_dispense),
        substitution: one_of(o, "substitution", read_substitution),
        replaces: one_as_list(o, "priorPrescription", read_link),
        ..Service::default()
    }
}

pub(crate) fn write_medication_request(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &s.identifiers, write_identifier);
    put_str(&mut o, "status", &s.status);
    put_one(&mut o, "statusReason", &s.status_reason, write_concept);
    put_str(&mut o, "intent", &s.intent);
    put_list(&mut o, "category", &s.categories, write_concept);
    put_str(&mut o, "priority", &s.priority);
    put_bool(&mut o, "doNotPerform", s.do_not_perform);
    write_reported(&mut o, &s.reported);
    write_medication(&mut o, &s.medication);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    put_list(
        &mut o,
        "supportingInformation",
        &s.supporting_info,
        write_link,
    );
    put_str(&mut o, "authoredOn", &s.authored);
    put_one(&mut o, "requester", &s.requester, write_link);
    put_first(&mut o, "performer", &s.performers, write_link);
    put_one(&mut o, "performerType", &s.performer_type, write_concept);
    put_one(&mut o, "recorder", &s.recorder, write_link);
    put_list(&mut o, "reasonCode", &s.reasons, write_concept);
    put_list(&mut o, "reasonReference", &s.reason_links, write_link);
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_one(&mut o, "groupIdentifier", &s.requisition, write_identifier);
    put_one(
        &mut o,
        "courseOfTherapyType",
        &s.course_of_therapy,
        write_concept,
    );
    put_list(&mut o, "note", &s.notes, write_annotation);
    put_list(&mut o, "dosageInstruction", &s.dosages, write_dosage);
    put_one(&mut o, "dispenseRequest", &s.dispense, write_dispense);
    put_one(&mut o, "substitution", &s.substitution, write_substitution);
    put_first(&mut o, "priorPrescription", &s.replaces, write_link);
    o
}

pub(crate) fn read_service_request(o: &Obj) -> Service {
    Service {
        item: "service-request".into(),
        identifiers: list_of(o, "identifier", read_identifier),
        based_on: list_of(o, "basedOn", read_link),
        replaces: list_of(o, "replaces", read_link),
        requisition: one_of(o, "requisition", read_identifier),
        status: str_of(o, "status"),
        intent: str_of(o, "intent"),
        categories: list_of(o, "category", read_concept),
        priority: str_of(o, "priority"),
        do_not_perform: bool_of(o, "doNotPerform"),
        code: one_of(o, "code", read_concept),
        order_details: list_of(o, "orderDetail", read_concept),
        quantity: read_amount(o, "quantity", &["Quantity", "Ratio", "Range"]),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        effective: read_when(o, "occurrence"),
        schedule: one_of(o, "occurrenceTiming", read_timing),
        as_needed: read_answer(o, "asNeeded"),
        authored: str_of(o, "authoredOn"),
        requester: one_of(o, "requester", read_link),
        performer_type: one_of(o, "performerType", read_concept),
        performers: list_of(o, "performer", read_link),
        location_codes: list_of(o, "locationCode", read_concept),
        locations: list_of(o, "locationReference", read_link),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_links: list_of(o, "reasonReference", read_link),
        supporting_info: list_of(o, "supportingInfo", read_link),
        specimens: list_of(o, "specimen", read_link),
        body_sites: list_of(o, "bodySite", read_concept),
        notes: list_of(o, "note", read_annotation),
        patient_instruction: str_of(o, "patientInstruction"),
        ..Service::default()
    }
}

pub(crate) fn write_service_request(s: &Service) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &s.identifiers, write_identifier);
    put_list(&mut o, "basedOn", &s.based_on, write_link);
    put_list(&mut o, "replaces", &s.replaces, write_link);
    put_one(&mut o, "requisition", &s.requisition, write_identifier);
    put_str(&mut o, "status", &s.status);
    put_str(&mut o, "intent", &s.intent);
    put_list(&mut o, "category", &s.categories, write_concept);
    put_str(&mut o, "priority", &s.priority);
    put_bool(&mut o, "doNotPerform", s.do_not_perform);
    put_one(&mut o, "code", &s.code, write_concept);
    put_list(&mut o, "orderDetail", &s.order_details, write_concept);
    write_amount(&mut o, "quantity", &s.quantity);
    put_one(&mut o, "subject", &s.subject, write_link);
    put_one(&mut o, "encounter", &s.contact, write_link);
    write_when(&mut o, "occurrence", &s.effective);
    put_one(&mut o, "occurrenceTiming", &s.schedule, write_timing);
    write_answer(&mut o, "asNeeded", &s.as_needed);
    put_str(&mut o, "authoredOn", &s.authored);
    put_one(&mut o, "requester", &s.requester, write_link);
    put_one(&mut o, "performerType", &s.performer_type, write_concept);
    put_list(&mut o, "performer", &s.performers, write_link);
    put_list(&mut o, "locationCode", &s.location_codes, write_concept);
    put_list(&mut o, "locationReference", &s.locations, write_link);
    put_list(&mut o, "reasonCode", &s.reasons, write_concept);
    put_list(&mut o, "reasonReference", &s.reason_links, write_link);
    put_list(&mut o, "supportingInfo", &s.supporting_info, write_link);
    put_list(&mut o, "specimen", &s.specimens, write_link);
    put_list(&mut o, "bodySite", &s.body_sites, write_concept);
    put_list(&mut o, "note", &s.notes, write_annotation);
    put_str(&mut o, "patientInstruction", &s.patient_instruction);
    o
}

/// The medication's concept of a coded medication statement or request (its main code).
pub(crate) fn medication_concept(s: &Service) -> Option<&model::Concept> {
    s.medication.as_ref().and_then(Medication::concept)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::PathBuf;

    use model::{Amount, Answer, Bounds, Decimal, Entity, Medication, Service, When};
    use serde_json::Value;

    use crate::entity::{to_entity, to_fhir};
    use crate::json::parse_resource;

    fn shared() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-data")
    }

    fn example(file: &str) -> Entity {
        let path = shared().join("r4-examples").join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let res = parse_resource(&bytes, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let entity = to_entity(&res);
        assert!(!entity.remainder.complete, "{file}: not reproduced");
        entity
    }

    fn service(entity: &Entity) -> &Service {
        match &entity.body {
            model::Body::Service(s) => s,
            other => panic!("{} is a {}", entity.source_type, other.kind_name()),
        }
    }

    fn left(entity: &Entity, keys: &[&str]) {
        for key in keys {
            assert!(
                !entity.remainder.data.contains_key(*key),
                "{}/{}: {key} left in the remainder",
                entity.source_type,
                entity.id
            );
        }
    }

    fn dec(text: &str) -> Option<Decimal> {
        Some(Decimal(text.into()))
    }

    fn code_of(c: &Option<model::Concept>) -> Option<&str> {
        c.as_ref()?.codes.first()?.code.as_deref()
    }

    #[test]
    fn medication_statement_maps_to_typed_fields() {
        let e = example("MedicationStatement-example003.json");
        let s = service(&e);
        assert_eq!(s.item, "medication-statement");
        assert_eq!(s.status.as_deref(), Some("active"));
        let Some(Medication::Coded(med)) = &s.medication else {
            panic!("coded medication: {:?}", s.medication)
        };
        assert_eq!(
            med.text.as_deref(),
            Some("Little Pink Pill for water retention")
        );
        assert_eq!(e.patient.as_deref(), Some("pat1"));
        assert_eq!(s.effective, Some(When::At("2014-02-01".into())));
        assert_eq!(s.asserted.as_deref(), Some("2014-02-22"));
        assert_eq!(
            s.information_source
                .as_ref()
                .and_then(|l| l.target_id.as_deref()),
            Some("pat1")
        );
        assert_eq!(
            s.reason_links[0].target_type.as_deref(),
            Some("Observation")
        );
        assert!(
            s.notes[0]
                .text
                .as_deref()
                .is_some_and(|t| t.starts_with("Patient cannot"))
        );
        let d = &s.dosages[0];
        assert_eq!(d.sequence, dec("1"));
        assert_eq!(d.as_needed, Some(Answer::Flag(false)));
        assert_eq!(code_of(&d.route), Some("260548002"));
        let Some(Amount::Quantity(q)) = &d.doses[0].dose else {
            panic!("dose quantity")
        };
        assert_eq!(
            (q.value.clone(), q.code.as_deref()),
            (dec("1"), Some("tab"))
        );
        let max = d
            .max_per_period
            .as_ref()
            .and_then(|r| r.denominator.as_ref());
        assert_eq!(max.and_then(|q| q.code.as_deref()), Some("d"));
        left(
            &e,
            &[
                "status",
                "medicationCodeableConcept",
                "subject",
                "effectiveDateTime",
                "dateAsserted",
                "informationSource",
                "reasonReference",
                "note",
                "dosage",
            ],
        );
    }

    #[test]
    fn medication_requests_map_to_typed_fields() {
        let e = example("MedicationRequest-medrx0305.json");
        let s = service(&e);
        assert_eq!(s.item, "medication-request");
        assert_eq!(
            (s.status.as_deref(), s.intent.as_deref()),
            (Some("completed"), Some("order"))
        );
        assert_eq!(e.patient.as_deref(), Some("pat1"));
        let Some(Medication::Linked(med)) = &s.medication else {
            panic!("linked medication: {:?}", s.medication)
        };
        assert_eq!(med.reference.as_deref(), Some("#med0314"));
        assert_eq!(s.authored.as_deref(), Some("2015-01-15"));
        assert_eq!(
            s.requester.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("f007")
        );
        assert_eq!(
            s.contact.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("f001")
        );
        assert_eq!(s.identifiers[0].value.as_deref(), Some("12345689"));
        let d = &s.dosages[0];
        assert_eq!(
            code_of(&d.additional_instructions.first().cloned()),
            Some("418914006")
        );
        assert!(
            matches!(&d.as_needed, Some(Answer::Coded(c)) if c.codes[0].code.as_deref() == Some("266599000"))
        );
        let repeat = d
            .timing
            .as_ref()
            .and_then(|t| t.repeat.as_ref())
            .expect("repeat");
        assert_eq!(
            (
                &repeat.frequency,
                &repeat.period,
                &repeat.period_max,
                repeat.period_unit.as_deref()
            ),
            (&dec("1"), &dec("6"), &dec("12"), Some("h"))
        );
        assert!(
            matches!(&repeat.bounds, Some(Bounds::Period(p)) if p.end.as_deref() == Some("2015-01-20"))
        );
        assert_eq!(
            d.max_per_administration
                .as_ref()
                .and_then(|q| q.value.clone()),
            dec("4")
        );
        let dispense = s.dispense.as_ref().expect("dispense request");
        assert_eq!(dispense.repeats_allowed, dec("1"));
        assert_eq!(
            dispense
                .supply_duration
                .as_ref()
                .and_then(|q| q.code.as_deref()),
            Some("d")
        );
        assert_eq!(
            dispense.validity.as_ref().and_then(|p| p.start.as_deref()),
            Some("2015-01-15")
        );
        let substitution = s.substitution.as_ref().expect("substitution");
        assert_eq!(substitution.allowed, Some(Answer::Flag(true)));
        assert_eq!(code_of(&substitution.reason), Some("FP"));
        left(
            &e,
            &[
                "identifier",
                "status",
                "intent",
                "medicationReference",
                "subject",
                "encounter",
                "authoredOn",
                "requester",
                "dosageInstruction",
                "dispenseRequest",
                "substitution",
            ],
        );
        // The linked medication's resource stays contained, in the remainder.
        assert!(e.remainder.data.contains_key("contained"));

        // A coded medication is the entity's main code; the prior prescription is replaced.
        let e = example("MedicationRequest-medrx0312.json");
        let s = service(&e);
        assert_eq!(e.codes[0].code.as_deref(), Some("1313112"));
        assert_eq!(s.replaces[0].target_id.as_deref(), Some("medrx0304"));
        assert_eq!(code_of(&s.reasons.first().cloned()), Some("230456007"));
        left(
            &e,
            &[
                "medicationCodeableConcept",
                "priorPrescription",
                "reasonCode",
                "note",
            ],
        );

        // Given moments and a rate as a ratio; a decimal dose keeps its text.
        let e = example("MedicationRequest-medrx0323.json");
        let d = &service(&e).dosages[0];
        let timing = d.timing.as_ref().expect("timing");
        assert_eq!(timing.events, vec!["2015-01-15T22:00:00+11:00".to_owned()]);
        assert!(matches!(&d.doses[0].rate, Some(Amount::Ratio(r))
            if r.numerator.as_ref().and_then(|q| q.value.clone()) == dec("50")));
        assert_eq!(
            d.method.as_ref().and_then(|m| m.text.as_deref()),
            Some("PICC line")
        );
        left(&e, &["dosageInstruction"]);
        let e = example("MedicationRequest-medrx0319.json");
        assert!(
            matches!(&service(&e).dosages[0].doses[0].dose, Some(Amount::Quantity(q)) if q.value == dec("4.5"))
        );

        // The group identifier and the plan it is based on.
        let e = example("MedicationRequest-medrx0332.json");
        let s = service(&e);
        assert_eq!(
            s.requisition.as_ref().and_then(|i| i.value.as_deref()),
            Some("983939393")
        );
        assert_eq!(s.based_on[0].target_type.as_deref(), Some("CarePlan"));
        left(&e, &["groupIdentifier", "basedOn", "dosageInstruction"]);
    }

    #[test]
    fn service_requests_map_to_typed_fields() {
        let e = example("ServiceRequest-physical-therapy.json");
        let s = service(&e);
        assert_eq!(s.item, "service-request");
        assert_eq!(
            (s.status.as_deref(), s.intent.as_deref()),
            (Some("completed"), Some("order"))
        );
        assert_eq!(e.patient.as_deref(), Some("example"));
        assert_eq!(e.codes[0].code.as_deref(), Some("710830005"));
        assert_eq!(code_of(&s.categories.first().cloned()), Some("386053000"));
        assert_eq!(s.effective, Some(When::At("2016-09-27".into())));
        assert_eq!(s.authored.as_deref(), Some("2016-09-20"));
        assert_eq!(
            s.requester.as_ref().and_then(|l| l.display.as_deref()),
            Some("Ollie Ortho, MD")
        );
        assert_eq!(
            s.performers[0].display.as_deref(),
            Some("Paul Therapist, PT")
        );
        assert!(s.reasons[0].text.is_some());
        assert_eq!(code_of(&s.body_sites.first().cloned()), Some("36701003"));
        left(
            &e,
            &[
                "status",
                "intent",
                "category",
                "code",
                "subject",
                "occurrenceDateTime",
                "authoredOn",
                "requester",
                "performer",
                "reasonCode",
                "bodySite",
            ],
        );

        let e = example("ServiceRequest-benchpress.json");
        let s = service(&e);
        let repeat = s
            .schedule
            .as_ref()
            .and_then(|t| t.repeat.as_ref())
            .expect("schedule");
        assert_eq!(
            (
                &repeat.count,
                &repeat.count_max,
                repeat.period_unit.as_deref()
            ),
            (&dec("20"), &dec("30"), Some("wk"))
        );
        assert!(s.patient_instruction.is_some());
        left(&e, &["occurrenceTiming", "patientInstruction", "code"]);

        let e = example("ServiceRequest-example.json");
        assert_eq!(
            service(&e).categories[0].text.as_deref(),
            Some("Diagnostics Procedure")
        );
        left(&e, &["category", "code", "subject"]);
    }

    /// The synthetic patients' medication requests (what a real feed sends) round-trip
    /// through typed fields.
    #[test]
    fn synthetic_medication_requests_use_typed_fields() {
        let mut checked = 0;
        let dir = shared().join("synthea");
        for entry in std::fs::read_dir(&dir).expect("shared/fhir-data/synthea") {
            let path = entry.expect("readable dir").path();
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("readable file"))
                .read_to_string(&mut text)
                .expect("gzip'd JSON");
            let bundle: Value = serde_json::from_str(&text).expect("JSON");
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let resource = &entry["resource"];
                let rtype = resource["resourceType"].as_str().unwrap_or_default();
                if !["MedicationRequest", "MedicationStatement", "ServiceRequest"].contains(&rtype)
                {
                    continue;
                }
                let res = parse_resource(resource.to_string().as_bytes(), &Default::default())
                    .expect("parses");
                let entity = to_entity(&res);
                assert!(!entity.remainder.complete, "{path:?}: {resource}");
                let mut original = res.object().clone();
                original.shift_remove("meta");
                let mut back = to_fhir(&entity, None);
                back.shift_remove("meta");
                assert_eq!(Value::Object(back), Value::Object(original));
                let leftover: Vec<_> = entity
                    .remainder
                    .data
                    .keys()
                    .filter(|k| *k != "meta")
                    .collect();
                assert!(leftover.is_empty(), "{rtype}: {leftover:?} left");
                // Bundle references are `urn:uuid:`s, resolved when a transaction stores them.
                assert!(service(&entity).subject.is_some());
                checked += 1;
            }
        }
        assert!(checked > 500, "only {checked} requests");
    }
}
