//! Readers and writers of the care types: AllergyIntolerance (a [`HealthElement`]),
//! EpisodeOfCare (a [`Contact`]), PractitionerRole, Location and CareTeam (each a [`Party`]).
//!
//! Every writer renders exactly what its reader took, in the JSON shape of the source, so the
//! elements read leave the remainder (see [`crate::entity`]).

use model::{
    AvailableTime, Contact, ContactDiagnosis, HealthElement, NotAvailable, Party, PartyKind,
    Position, Reaction, StatusPeriod, TeamMember,
};

use crate::fields::*;

pub(crate) fn read_allergy(o: &Obj) -> HealthElement {
    HealthElement {
        identifiers: list_of(o, "identifier", read_identifier),
        clinical_status: one_of(o, "clinicalStatus", read_concept),
        verification_status: one_of(o, "verificationStatus", read_concept),
        kind: str_of(o, "type"),
        category_codes: strs_of(o, "category"),
        criticality: str_of(o, "criticality"),
        code: one_of(o, "code", read_concept),
        subject: one_of(o, "patient", read_link),
        contact: one_of(o, "encounter", read_link),
        onset: read_when(o, "onset"),
        recorded_date: str_of(o, "recordedDate"),
        recorder: one_of(o, "recorder", read_link),
        asserter: one_of(o, "asserter", read_link),
        last_occurrence: str_of(o, "lastOccurrence"),
        notes: list_of(o, "note", read_annotation),
        reactions: list_of(o, "reaction", read_reaction),
        ..HealthElement::default()
    }
}

pub(crate) fn write_allergy(h: &HealthElement) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &h.identifiers, write_identifier);
    put_one(&mut o, "clinicalStatus", &h.clinical_status, write_concept);
    put_one(
        &mut o,
        "verificationStatus",
        &h.verification_status,
        write_concept,
    );
    put_str(&mut o, "type", &h.kind);
    put_strs(&mut o, "category", &h.category_codes);
    put_str(&mut o, "criticality", &h.criticality);
    put_one(&mut o, "code", &h.code, write_concept);
    put_one(&mut o, "patient", &h.subject, write_link);
    put_one(&mut o, "encounter", &h.contact, write_link);
    write_when(&mut o, "onset", &h.onset);
    put_str(&mut o, "recordedDate", &h.recorded_date);
    put_one(&mut o, "recorder", &h.recorder, write_link);
    put_one(&mut o, "asserter", &h.asserter, write_link);
    put_str(&mut o, "lastOccurrence", &h.last_occurrence);
    put_list(&mut o, "note", &h.notes, write_annotation);
    put_list(&mut o, "reaction", &h.reactions, write_reaction);
    o
}

fn read_reaction(o: &Obj) -> Reaction {
    Reaction {
        substance: one_of(o, "substance", read_concept),
        manifestations: list_of(o, "manifestation", read_concept),
        description: str_of(o, "description"),
        onset: str_of(o, "onset"),
        severity: str_of(o, "severity"),
        exposure_route: one_of(o, "exposureRoute", read_concept),
        notes: list_of(o, "note", read_annotation),
    }
}

fn write_reaction(r: &Reaction) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "substance", &r.substance, write_concept);
    put_list(&mut o, "manifestation", &r.manifestations, write_concept);
    put_str(&mut o, "description", &r.description);
    put_str(&mut o, "onset", &r.onset);
    put_str(&mut o, "severity", &r.severity);
    put_one(&mut o, "exposureRoute", &r.exposure_route, write_concept);
    put_list(&mut o, "note", &r.notes, write_annotation);
    o
}

pub(crate) fn read_episode(o: &Obj) -> Contact {
    Contact {
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        status_history: list_of(o, "statusHistory", |s| StatusPeriod {
            status: str_of(s, "status"),
            period: one_of(s, "period", read_period),
        }),
        types: list_of(o, "type", read_concept),
        diagnoses: list_of(o, "diagnosis", |d| ContactDiagnosis {
            condition: one_of(d, "condition", read_link),
            role: one_of(d, "role", read_concept),
            rank: decimal_of(d, "rank"),
        }),
        subject: one_of(o, "patient", read_link),
        service_provider: one_of(o, "managingOrganization", read_link),
        period: one_of(o, "period", read_period),
        referrals: list_of(o, "referralRequest", read_link),
        care_manager: one_of(o, "careManager", read_link),
        teams: list_of(o, "team", read_link),
        accounts: list_of(o, "account", read_link),
        ..Contact::default()
    }
}

pub(crate) fn write_episode(c: &Contact) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &c.identifiers, write_identifier);
    put_str(&mut o, "status", &c.status);
    put_list(&mut o, "statusHistory", &c.status_history, |s| {
        let mut h = Obj::new();
        put_str(&mut h, "status", &s.status);
        put_one(&mut h, "period", &s.period, write_period);
        h
    });
    put_list(&mut o, "type", &c.types, write_concept);
    put_list(&mut o, "diagnosis", &c.diagnoses, |d| {
        let mut g = Obj::new();
        put_one(&mut g, "condition", &d.condition, write_link);
        put_one(&mut g, "role", &d.role, write_concept);
        put_decimal(&mut g, "rank", &d.rank);
        g
    });
    put_one(&mut o, "patient", &c.subject, write_link);
    put_one(
        &mut o,
        "managingOrganization",
        &c.service_provider,
        write_link,
    );
    put_one(&mut o, "period", &c.period, write_period);
    put_list(&mut o, "referralRequest", &c.referrals, write_link);
    put_one(&mut o, "careManager", &c.care_manager, write_link);
    put_list(&mut o, "team", &c.teams, write_link);
    put_list(&mut o, "account", &c.accounts, write_link);
    o
}

/// Reads a weekly time whose start and end are under `start` and `end`.
fn read_available_time(o: &Obj, start: &str, end: &str) -> AvailableTime {
    AvailableTime {
        days_of_week: strs_of(o, "daysOfWeek"),
        all_day: bool_of(o, "allDay"),
        start: str_of(o, start),
        end: str_of(o, end),
    }
}

fn write_available_time(t: &AvailableTime, start: &str, end: &str) -> Obj {
    let mut o = Obj::new();
    put_strs(&mut o, "daysOfWeek", &t.days_of_week);
    put_bool(&mut o, "allDay", t.all_day);
    put_str(&mut o, start, &t.start);
    put_str(&mut o, end, &t.end);
    o
}

pub(crate) fn read_role(o: &Obj) -> Party {
    Party {
        identifiers: list_of(o, "identifier", read_identifier),
        active: bool_of(o, "active"),
        period: one_of(o, "period", read_period),
        practitioner: one_of(o, "practitioner", read_link),
        organization: one_of(o, "organization", read_link),
        roles: list_of(o, "code", read_concept),
        specialties: list_of(o, "specialty", read_concept),
        locations: list_of(o, "location", read_link),
        services: list_of(o, "healthcareService", read_link),
        telecoms: list_of(o, "telecom", read_telecom),
        available_times: list_of(o, "availableTime", |t| {
            read_available_time(t, "availableStartTime", "availableEndTime")
        }),
        not_available: list_of(o, "notAvailable", |n| NotAvailable {
            description: str_of(n, "description"),
            during: one_of(n, "during", read_period),
        }),
        availability_exceptions: str_of(o, "availabilityExceptions"),
        endpoints: list_of(o, "endpoint", read_link),
        ..Party::new(PartyKind::Role)
    }
}

pub(crate) fn write_role(p: &Party) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &p.identifiers, write_identifier);
    put_bool(&mut o, "active", p.active);
    put_one(&mut o, "period", &p.period, write_period);
    put_one(&mut o, "practitioner", &p.practitioner, write_link);
    put_one(&mut o, "organization", &p.organization, write_link);
    put_list(&mut o, "code", &p.roles, write_concept);
    put_list(&mut o, "specialty", &p.specialties, write_concept);
    put_list(&mut o, "location", &p.locations, write_link);
    put_list(&mut o, "healthcareService", &p.services, write_link);
    put_list(&mut o, "telecom", &p.telecoms, write_telecom);
    put_list(&mut o, "availableTime", &p.available_times, |t| {
        write_available_time(t, "availableStartTime", "availableEndTime")
    });
    put_list(&mut o, "notAvailable", &p.not_available, |n| {
        let mut w = Obj::new();
        put_str(&mut w, "description", &n.description);
        put_one(&mut w, "during", &n.during, write_period);
        w
    });
    put_str(&mut o, "availabilityExceptions", &p.availability_exceptions);
    put_list(&mut o, "endpoint", &p.endpoints, write_link);
    o
}

pub(crate) fn read_location(o: &Obj) -> Party {
    Party {
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        operational_status: one_of(o, "operationalStatus", read_coding),
        org_name: str_of(o, "name"),
        aliases: strs_of(o, "alias"),
        description: str_of(o, "description"),
        mode: str_of(o, "mode"),
        categories: list_of(o, "type", read_concept),
        telecoms: list_of(o, "telecom", read_telecom),
        addresses: one_of(o, "address", read_address).into_iter().collect(),
        physical_type: one_of(o, "physicalType", read_concept),
        position: one_of(o, "position", |p| Position {
            longitude: decimal_of(p, "longitude"),
            latitude: decimal_of(p, "latitude"),
            altitude: decimal_of(p, "altitude"),
        }),
        managing_organizations: one_of(o, "managingOrganization", read_link)
            .into_iter()
            .collect(),
        part_of: one_of(o, "partOf", read_link),
        available_times: list_of(o, "hoursOfOperation", |t| {
            read_available_time(t, "openingTime", "closingTime")
        }),
        availability_exceptions: str_of(o, "availabilityExceptions"),
        endpoints: list_of(o, "endpoint", read_link),
        ..Party::new(PartyKind::Location)
    }
}

pub(crate) fn write_location(p: &Party) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &p.identifiers, write_identifier);
    put_str(&mut o, "status", &p.status);
    put_one(
        &mut o,
        "operationalStatus",
        &p.operational_status,
        write_coding,
    );
    put_str(&mut o, "name", &p.org_name);
    put_strs(&mut o, "alias", &p.aliases);
    put_str(&mut o, "description", &p.description);
    put_str(&mut o, "mode", &p.mode);
    put_list(&mut o, "type", &p.categories, write_concept);
    put_list(&mut o, "telecom", &p.telecoms, write_telecom);
    put_first(&mut o, "address", &p.addresses, write_address);
    put_one(&mut o, "physicalType", &p.physical_type, write_concept);
    put_one(&mut o, "position", &p.position, |p| {
        let mut w = Obj::new();
        put_decimal(&mut w, "longitude", &p.longitude);
        put_decimal(&mut w, "latitude", &p.latitude);
        put_decimal(&mut w, "altitude", &p.altitude);
        w
    });
    put_first(
        &mut o,
        "managingOrganization",
        &p.managing_organizations,
        write_link,
    );
    put_one(&mut o, "partOf", &p.part_of, write_link);
    put_list(&mut o, "hoursOfOperation", &p.available_times, |t| {
        write_available_time(t, "openingTime", "closingTime")
    });
    put_str(&mut o, "availabilityExceptions", &p.availability_exceptions);
    put_list(&mut o, "endpoint", &p.endpoints, write_link);
    o
}

pub(crate) fn read_team(o: &Obj) -> Party {
    Party {
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        categories: list_of(o, "category", read_concept),
        org_name: str_of(o, "name"),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        period: one_of(o, "period", read_period),
        members: list_of(o, "participant", |m| TeamMember {
            roles: list_of(m, "role", read_concept),
            member: one_of(m, "member", read_link),
            on_behalf_of: one_of(m, "onBehalfOf", read_link),
            period: one_of(m, "period", read_period),
        }),
        reasons: list_of(o, "reasonCode", read_concept),
        reason_conditions: list_of(o, "reasonReference", read_link),
        managing_organizations: list_of(o, "managingOrganization", read_link),
        telecoms: list_of(o, "telecom", read_telecom),
        notes: list_of(o, "note", read_annotation),
        ..Party::new(PartyKind::Team)
    }
}

pub(crate) fn write_team(p: &Party) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &p.identifiers, write_identifier);
    put_str(&mut o, "status", &p.status);
    put_list(&mut o, "category", &p.categories, write_concept);
    put_str(&mut o, "name", &p.org_name);
    put_one(&mut o, "subject", &p.subject, write_link);
    put_one(&mut o, "encounter", &p.contact, write_link);
    put_one(&mut o, "period", &p.period, write_period);
    put_list(&mut o, "participant", &p.members, |m| {
        let mut w = Obj::new();
        put_list(&mut w, "role", &m.roles, write_concept);
        put_one(&mut w, "member", &m.member, write_link);
        put_one(&mut w, "onBehalfOf", &m.on_behalf_of, write_link);
        put_one(&mut w, "period", &m.period, write_period);
        w
    });
    put_list(&mut o, "reasonCode", &p.reasons, write_concept);
    put_list(&mut o, "reasonReference", &p.reason_conditions, write_link);
    put_list(
        &mut o,
        "managingOrganization",
        &p.managing_organizations,
        write_link,
    );
    put_list(&mut o, "telecom", &p.telecoms, write_telecom);
    put_list(&mut o, "note", &p.notes, write_annotation);
    o
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use model::{Body, Entity, PartyKind, When};
    use serde_json::{Value, json};

    use crate::entity::{to_entity, to_fhir};
    use crate::json::parse_resource;

    fn map_value(v: &Value) -> Entity {
        let res = parse_resource(v.to_string().as_bytes(), &Default::default())
            .unwrap_or_else(|e| panic!("{e}: {v}"));
        assert!(crate::rules::check(&res).is_empty(), "{v}");
        let entity = to_entity(&res);
        assert_eq!(&Value::Object(to_fhir(&entity, None)), v);
        assert!(!entity.remainder.complete, "{v}");
        entity
    }

    fn map_example(file: &str) -> Entity {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fhir-data/r4-examples")
            .join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        map_value(&serde_json::from_slice(&bytes).expect("JSON"))
    }

    fn assert_typed(entity: &Entity, keys: &[&str]) {
        for key in keys {
            assert!(
                !entity.remainder.data.contains_key(*key),
                "{}/{}: {key} left in the remainder",
                entity.source_type,
                entity.id
            );
        }
    }

    #[test]
    fn allergy_intolerance_is_a_health_element() {
        let e = map_example("AllergyIntolerance-example.json");
        let Body::HealthElement(h) = &e.body else {
            panic!("AllergyIntolerance is a HealthElement")
        };
        assert_eq!(e.patient.as_deref(), Some("example"));
        assert_eq!(h.kind.as_deref(), Some("allergy"));
        assert_eq!(h.category_codes, ["food"]);
        assert_eq!(h.criticality.as_deref(), Some("high"));
        assert_eq!(e.codes[0].code.as_deref(), Some("227493005"));
        assert_eq!(
            h.subject.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("example")
        );
        assert_eq!(h.onset, Some(When::At("2004".into())));
        assert_eq!(h.last_occurrence.as_deref(), Some("2012-06"));
        assert_eq!(h.identifiers[0].value.as_deref(), Some("49476534"));
        assert_eq!(h.notes.len(), 1);
        assert_eq!(h.reactions.len(), 2);
        assert_eq!(h.reactions[0].severity.as_deref(), Some("severe"));
        assert_eq!(h.reactions[0].onset.as_deref(), Some("2012-06-12"));
        assert!(h.reactions[0].exposure_route.is_some());
        assert!(h.reactions[1].notes[0].text.is_some());
        assert_typed(
            &e,
            &[
                "identifier",
                "clinicalStatus",
                "verificationStatus",
                "type",
                "category",
                "criticality",
                "code",
                "patient",
                "onsetDateTime",
                "recordedDate",
                "recorder",
                "asserter",
                "lastOccurrence",
                "note",
                "reaction",
            ],
        );
        assert_eq!(
            e.remainder.data.keys().collect::<Vec<_>>(),
            ["text"],
            "only the narrative stays"
        );

        let fish = map_example("AllergyIntolerance-fishallergy.json");
        let Body::HealthElement(h) = &fish.body else {
            panic!("AllergyIntolerance is a HealthElement")
        };
        assert_eq!(fish.patient.as_deref(), Some("example"));
        assert!(h.kind.is_none());
        assert_eq!(
            h.code.as_ref().and_then(|c| c.text.as_deref()),
            Some("Allergic to fresh fish. Tolerates canned fish")
        );
        assert_typed(&fish, &["category", "code", "recordedDate", "recorder"]);
    }

    #[test]
    fn allergy_intolerance_with_every_typed_element() {
        let v = json!({
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "type": "intolerance",
            "category": ["medication", "biologic"],
            "criticality": "unable-to-assess",
            "code": {"text": "penicillin"},
            "patient": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "onsetPeriod": {"start": "2020-01", "end": "2020-02-03"},
            "note": [
                {"authorReference": {"reference": "Practitioner/x"}, "time": "2021-01-01T10:00:00Z", "text": "seen"},
                {"authorString": "the patient", "text": "told"}
            ],
            "reaction": [{"manifestation": [{"text": "rash"}], "severity": "mild"}]
        });
        let e = map_value(&v);
        let Body::HealthElement(h) = &e.body else {
            panic!("AllergyIntolerance is a HealthElement")
        };
        assert_eq!(e.patient.as_deref(), Some("p1"));
        assert_eq!(h.category_codes, ["medication", "biologic"]);
        assert!(matches!(h.onset, Some(When::Span(_))));
        assert_eq!(h.notes[1].author_text.as_deref(), Some("the patient"));
        assert!(e.remainder.data.is_empty(), "{:?}", e.remainder.data);
    }

    /// Synthea's allergies (55 in the development set) map whole onto typed fields.
    #[test]
    fn synthetic_allergies_map_onto_typed_fields() {
        use std::io::Read;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-data/synthea");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("shared/fhir-data/synthea") {
            let path = entry.expect("readable dir").path();
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("readable file"))
                .read_to_string(&mut text)
                .expect("gzip'd JSON");
            let bundle: Value = serde_json::from_str(&text).expect("JSON");
            for item in bundle["entry"].as_array().into_iter().flatten() {
                let resource = &item["resource"];
                if resource["resourceType"] != "AllergyIntolerance" {
                    continue;
                }
                let mut resource = resource.clone();
                if resource.get("id").is_none() {
                    resource["id"] = json!("a1");
                }
                let e = map_value(&resource);
                assert_eq!(
                    e.remainder.data.keys().collect::<Vec<_>>(),
                    ["meta"],
                    "{path:?}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 50, "only {seen} allergies");
    }

    #[test]
    fn episode_of_care_is_a_contact() {
        let e = map_example("EpisodeOfCare-example.json");
        let Body::Contact(c) = &e.body else {
            panic!("EpisodeOfCare is a Contact")
        };
        assert_eq!(e.patient.as_deref(), Some("example"));
        assert_eq!(c.status.as_deref(), Some("active"));
        assert_eq!(c.identifiers[0].value.as_deref(), Some("123"));
        assert_eq!(c.status_history.len(), 4);
        assert_eq!(c.status_history[2].status.as_deref(), Some("onhold"));
        assert_eq!(c.types[0].codes[0].code.as_deref(), Some("hacc"));
        assert_eq!(
            c.diagnoses[0]
                .condition
                .as_ref()
                .and_then(|l| l.target_id.as_deref()),
            Some("stroke")
        );
        assert_eq!(
            c.diagnoses[0].rank.as_ref().map(|d| d.0.as_str()),
            Some("1")
        );
        assert_eq!(
            c.service_provider
                .as_ref()
                .and_then(|l| l.target_id.as_deref()),
            Some("hl7")
        );
        assert_eq!(
            c.period.as_ref().and_then(|p| p.start.as_deref()),
            Some("2014-09-01")
        );
        assert_eq!(c.referrals.len(), 1);
        assert_eq!(
            c.care_manager.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("14")
        );
        assert_eq!(
            c.teams[0].target_type.as_deref(),
            Some("CareTeam"),
            "team links a care team"
        );
        assert_eq!(c.accounts.len(), 1);
        assert_typed(
            &e,
            &[
                "identifier",
                "status",
                "statusHistory",
                "type",
                "diagnosis",
                "patient",
                "managingOrganization",
                "period",
                "referralRequest",
                "careManager",
                "team",
                "account",
            ],
        );
        assert_eq!(e.remainder.data.keys().collect::<Vec<_>>(), ["text"]);
    }

    #[test]
    fn practitioner_role_is_a_party() {
        let v = json!({
            "resourceType": "PractitionerRole",
            "id": "r1",
            "identifier": [{"system": "http://example.org/roles", "value": "23"}],
            "active": true,
            "period": {"start": "2019-01-01", "end": "2021-12-31"},
            "practitioner": {"reference": "Practitioner/p1", "display": "Dr A"},
            "organization": {"reference": "Organization/o1"},
            "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "doctor"}]}],
            "specialty": [{"coding": [{"system": "http://snomed.info/sct", "code": "408443003"}]}],
            "location": [{"reference": "Location/l1"}],
            "healthcareService": [{"reference": "HealthcareService/h1"}],
            "telecom": [{"system": "phone", "value": "555 0101", "use": "work", "rank": 1}],
            "availableTime": [
                {"daysOfWeek": ["mon", "tue", "wed"], "availableStartTime": "09:00:00", "availableEndTime": "16:30:00"},
                {"daysOfWeek": ["sat"], "allDay": true}
            ],
            "notAvailable": [{"description": "On leave", "during": {"start": "2020-07-01", "end": "2020-07-14"}}],
            "availabilityExceptions": "Not on public holidays",
            "endpoint": [{"reference": "Endpoint/ep1"}]
        });
        let e = map_value(&v);
        let Body::Party(p) = &e.body else {
            panic!("PractitionerRole is a Party")
        };
        assert_eq!(p.kind, PartyKind::Role);
        assert_eq!(e.patient, None);
        assert_eq!(p.active, Some(true));
        assert_eq!(
            p.practitioner.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("p1")
        );
        assert_eq!(
            p.organization.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("o1")
        );
        assert_eq!(p.roles[0].codes[0].code.as_deref(), Some("doctor"));
        assert_eq!(p.specialties.len(), 1);
        assert_eq!(p.locations.len(), 1);
        assert_eq!(p.services.len(), 1);
        assert_eq!(p.available_times[0].days_of_week.len(), 3);
        assert_eq!(p.available_times[0].start.as_deref(), Some("09:00:00"));
        assert_eq!(p.available_times[1].all_day, Some(true));
        assert_eq!(p.not_available[0].description.as_deref(), Some("On leave"));
        assert!(p.availability_exceptions.is_some());
        assert_eq!(p.endpoints.len(), 1);
        assert!(e.remainder.data.is_empty(), "{:?}", e.remainder.data);
    }

    #[test]
    fn location_is_a_party() {
        let e = map_example("Location-2.json");
        let Body::Party(p) = &e.body else {
            panic!("Location is a Party")
        };
        assert_eq!(p.kind, PartyKind::Location);
        assert_eq!(e.patient, None);
        assert_eq!(p.status.as_deref(), Some("suspended"));
        assert_eq!(
            p.operational_status
                .as_ref()
                .and_then(|c| c.code.as_deref()),
            Some("H")
        );
        assert_eq!(p.org_name.as_deref(), Some("South Wing Neuro OR 1"));
        assert_eq!(p.aliases.len(), 2);
        assert_eq!(p.mode.as_deref(), Some("instance"));
        assert_eq!(p.categories[0].codes[0].code.as_deref(), Some("RNEU"));
        assert_eq!(
            p.physical_type
                .as_ref()
                .and_then(|c| c.codes[0].code.as_deref()),
            Some("ro")
        );
        assert_eq!(
            p.managing_organizations[0].target_id.as_deref(),
            Some("f001")
        );
        assert_eq!(
            p.part_of.as_ref().and_then(|l| l.target_type.as_deref()),
            Some("Location")
        );
        assert_typed(
            &e,
            &[
                "identifier",
                "status",
                "operationalStatus",
                "name",
                "alias",
                "description",
                "mode",
                "type",
                "telecom",
                "physicalType",
                "managingOrganization",
                "partOf",
            ],
        );
        assert_eq!(e.remainder.data.keys().collect::<Vec<_>>(), ["text"]);

        let amb = map_example("Location-amb.json");
        let Body::Party(p) = &amb.body else {
            panic!("Location is a Party")
        };
        assert_eq!(p.mode.as_deref(), Some("kind"));
        assert_eq!(amb.remainder.data.keys().collect::<Vec<_>>(), ["text"]);
    }

    #[test]
    fn location_keeps_position_decimals_and_hours() {
        // Built from text so the decimals keep their exact form.
        let v: Value = serde_json::from_str(
            r#"{"resourceType": "Location", "id": "l1", "status": "active",
            "name": "Clinic", "address": {"use": "work", "line": ["1 Main St"], "city": "Ann Arbor",
            "postalCode": "48104", "country": "USA"},
            "position": {"longitude": -83.6945691, "latitude": 42.25475478, "altitude": 0},
            "hoursOfOperation": [
                {"daysOfWeek": ["mon", "tue"], "allDay": false, "openingTime": "08:30:00", "closingTime": "17:00:00"},
                {"daysOfWeek": ["sat", "sun"], "allDay": true}
            ],
            "availabilityExceptions": "Closed on public holidays",
            "endpoint": [{"reference": "Endpoint/example"}]}"#,
        )
        .expect("JSON");
        let e = map_value(&v);
        let Body::Party(p) = &e.body else {
            panic!("Location is a Party")
        };
        let position = p.position.as_ref().expect("position");
        assert_eq!(
            position.longitude.as_ref().map(|d| d.0.as_str()),
            Some("-83.6945691")
        );
        assert_eq!(
            position.latitude.as_ref().map(|d| d.0.as_str()),
            Some("42.25475478")
        );
        assert_eq!(position.altitude.as_ref().map(|d| d.0.as_str()), Some("0"));
        assert_eq!(p.addresses[0].city.as_deref(), Some("Ann Arbor"));
        assert_eq!(p.available_times[0].end.as_deref(), Some("17:00:00"));
        assert_eq!(p.available_times[0].all_day, Some(false));
        assert!(e.remainder.data.is_empty(), "{:?}", e.remainder.data);
    }

    #[test]
    fn care_team_is_a_party() {
        let e = map_example("CareTeam-example.json");
        let Body::Party(p) = &e.body else {
            panic!("CareTeam is a Party")
        };
        assert_eq!(p.kind, PartyKind::Team);
        assert_eq!(e.patient.as_deref(), Some("example"));
        assert_eq!(p.status.as_deref(), Some("active"));
        assert_eq!(p.categories[0].codes[0].code.as_deref(), Some("LA27976-2"));
        assert_eq!(
            p.org_name.as_deref(),
            Some("Peter James Charlmers Care Plan for Inpatient Encounter")
        );
        assert_eq!(
            p.contact.as_ref().and_then(|l| l.target_id.as_deref()),
            Some("example")
        );
        assert_eq!(
            p.period.as_ref().and_then(|l| l.end.as_deref()),
            Some("2013-01-01")
        );
        assert_eq!(p.members.len(), 2);
        assert_eq!(p.members[1].roles[0].text.as_deref(), Some("adviser"));
        assert_eq!(
            p.members[1]
                .member
                .as_ref()
                .and_then(|l| l.reference.as_deref()),
            Some("#pr1")
        );
        assert_eq!(
            p.members[1]
                .on_behalf_of
                .as_ref()
                .and_then(|l| l.target_id.as_deref()),
            Some("f001")
        );
        assert_eq!(p.managing_organizations.len(), 1);
        assert_typed(
            &e,
            &[
                "identifier",
                "status",
                "category",
                "name",
                "subject",
                "encounter",
                "period",
                "participant",
                "managingOrganization",
            ],
        );
        assert_eq!(
            e.remainder.data.keys().collect::<Vec<_>>(),
            ["text", "contained"]
        );
    }

    #[test]
    fn care_team_of_a_group_belongs_to_no_patient() {
        let v = json!({
            "resourceType": "CareTeam",
            "id": "t1",
            "subject": {"reference": "Group/g1"},
            "reasonCode": [{"text": "diabetes"}],
            "reasonReference": [{"reference": "Condition/c1"}],
            "telecom": [{"system": "email", "value": "team@example.org"}],
            "note": [{"text": "meets weekly"}]
        });
        let e = map_value(&v);
        let Body::Party(p) = &e.body else {
            panic!("CareTeam is a Party")
        };
        assert_eq!(e.patient, None);
        assert_eq!(p.reasons.len(), 1);
        assert_eq!(p.reason_conditions.len(), 1);
        assert_eq!(p.telecoms.len(), 1);
        assert_eq!(p.notes[0].text.as_deref(), Some("meets weekly"));
        assert!(e.remainder.data.is_empty(), "{:?}", e.remainder.data);
    }
}
