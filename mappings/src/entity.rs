//! FHIR R4 resources ⇄ entities, lossless by construction.
//!
//! Each mapped type has a reader (FHIR → typed body) and a writer (typed body → FHIR fields).
//! After reading, every top-level field is rendered back from the typed body; a field whose
//! rendering equals its source moves out of the remainder, any other stays in it verbatim.
//! Finally the whole resource is rendered and compared with the source; should they differ
//! (a writer bug), the remainder keeps the whole source and is marked complete. So reading a
//! resource back always returns the JSON value that was written, whatever the mapping knows.

use model::{
    Body, Code, Concept, Contact, Deceased, Entity, HealthElement, Link, Party, PartyKind, Person,
    Remainder,
};
use serde_json::Value;

use crate::care;
use crate::fields::*;
use crate::json::Resource;
use crate::records::*;
use crate::requests::*;
use crate::statements::{
    read_diagnostic_report, read_immunization, read_observation, read_procedure,
    write_diagnostic_report, write_immunization, write_observation, write_procedure,
};

/// The remainder's source-model name for FHIR R4.
pub const SOURCE_MODEL: &str = "fhir-r4";

/// Maps a resource (whose `id` is set) onto an entity at version 0; the store assigns the
/// version. `meta.versionId` and `meta.lastUpdated` are the server's and are dropped here.
pub fn to_entity(resource: &Resource) -> Entity {
    into_entity(resource.clone())
}

/// [`to_entity`] of a resource the caller no longer needs: its fields move into the entity
/// instead of being copied.
///
/// Lossless by construction: a top-level field leaves the remainder only when the typed
/// body renders it equal to the source, and [`to_fhir`] renders a typed field only when the
/// remainder does not hold it. The one way the rendering could differ from the source is a
/// writer that renders a field the source does not have; the remainder then keeps the whole
/// source and is marked complete. (Debug builds check the whole rendering as well.)
pub fn into_entity(resource: Resource) -> Entity {
    let rtype = resource.resource_type().to_owned();
    let mut src = resource.into_object();
    strip_server_meta(&mut src);
    #[cfg(debug_assertions)]
    let original = src.clone();
    let id = src
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = read_body(&rtype, &src);
    let typed = write_body(&rtype, &body);
    let patient = compartment_patient(
        &rtype,
        Some(id.as_str()).filter(|i| !i.is_empty()),
        &src,
        &body,
    );
    let tags = src
        .get("meta")
        .and_then(Value::as_object)
        .map(|m| list_of(m, "tag", read_coding))
        .unwrap_or_default();
    let codes = body_concept(&body)
        .map(|c| c.codes.clone())
        .unwrap_or_default();
    let complete = typed.keys().any(|key| !src.contains_key(key));
    let mut data = Obj::with_capacity(src.len());
    for (key, value) in src {
        if key == "resourceType" || key == "id" || (!complete && typed.get(&key) == Some(&value)) {
            continue;
        }
        data.insert(key, value);
    }
    let entity = Entity {
        id,
        source_type: rtype,
        version: 0,
        patient,
        codes,
        tags,
        body,
        remainder: Remainder {
            model: SOURCE_MODEL.into(),
            data,
            complete,
        },
    };
    #[cfg(debug_assertions)]
    debug_assert!(
        to_fhir(&entity, None) == original,
        "the mapping of a {} is not lossless",
        entity.source_type
    );
    entity
}

/// Renders an entity as a FHIR resource. With `last_updated`, `meta.versionId` and
/// `meta.lastUpdated` are set from the entity's version and that instant.
pub fn to_fhir(entity: &Entity, last_updated: Option<&str>) -> Obj {
    let rest = &entity.remainder.data;
    assemble(
        entity,
        rest.get("meta").cloned(),
        typed_fields(entity, rest),
        rest.iter()
            .filter(|(key, _)| *key != "meta")
            .map(|(key, value)| (key.clone(), value.clone())),
        last_updated,
    )
}

/// [`to_fhir`] of an entity the caller no longer needs: the remainder's fields move into the
/// resource instead of being copied.
pub fn into_fhir(mut entity: Entity, last_updated: Option<&str>) -> Obj {
    let mut rest = std::mem::take(&mut entity.remainder.data);
    let meta = rest.shift_remove("meta");
    let typed = typed_fields(&entity, &rest);
    assemble(&entity, meta, typed, rest.into_iter(), last_updated)
}

/// The fields the entity's typed body renders that its remainder does not hold.
fn typed_fields(entity: &Entity, rest: &Obj) -> Obj {
    if entity.remainder.complete {
        return Obj::new();
    }
    let mut typed = write_body(&entity.source_type, &entity.body);
    typed.retain(|key, _| !rest.contains_key(key));
    typed
}

/// The resource of an entity: `resourceType`, `id`, `meta`, the typed fields, then the
/// remainder's fields.
fn assemble(
    entity: &Entity,
    meta: Option<Value>,
    typed: Obj,
    rest: impl Iterator<Item = (String, Value)>,
    last_updated: Option<&str>,
) -> Obj {
    let mut out = Obj::with_capacity(entity.remainder.data.len() + typed.len() + 3);
    out.insert(
        "resourceType".into(),
        Value::String(entity.source_type.clone()),
    );
    if !entity.id.is_empty() {
        out.insert("id".into(), Value::String(entity.id.clone()));
    }
    if let Some(meta) = meta {
        out.insert("meta".into(), meta);
    }
    out.extend(typed);
    out.extend(rest);
    if let Some(at) = last_updated {
        let meta = out
            .entry("meta")
            .or_insert_with(|| Value::Object(Obj::new()));
        if let Value::Object(meta) = meta {
            meta.insert(
                "versionId".into(),
                Value::String(entity.version.to_string()),
            );
            meta.insert("lastUpdated".into(), Value::String(at.to_owned()));
        }
    }
    out
}

/// Drops `meta.versionId` and `meta.lastUpdated` (the server's; the mapping does not keep
/// them), and `meta` itself if nothing else is left in it.
pub fn strip_server_meta(src: &mut Obj) {
    let now_empty = match src.get_mut("meta") {
        Some(Value::Object(meta)) => {
            meta.shift_remove("versionId");
            meta.shift_remove("lastUpdated");
            meta.is_empty()
        }
        _ => false,
    };
    if now_empty {
        src.shift_remove("meta");
    }
}

/// The patient whose compartment holds the resource, used for placement.
fn compartment_patient(rtype: &str, id: Option<&str>, src: &Obj, body: &Body) -> Option<String> {
    let of = |link: &Option<Link>| {
        link.as_ref()
            .filter(|l| l.target_type.as_deref() == Some("Patient"))
            .and_then(|l| l.target_id.clone())
    };
    match body {
        Body::Person(_) => id.map(str::to_owned),
        Body::Contact(c) => of(&c.subject),
        // Observation, DiagnosticReport and Procedure.subject; Immunization.patient.
        Body::Service(s) => of(&s.subject),
        Body::HealthElement(h) => of(&h.subject),
        Body::Document(d) => of(&d.subject),
        Body::Consent(c) => of(&c.patient),
        // A provenance is in a patient's compartment through a target that is a Patient.
        Body::Provenance(p) => p
            .targets
            .iter()
            .filter(|t| t.target_type.as_deref() == Some("Patient"))
            .find_map(|t| t.target_id.clone()),
        // Only a CareTeam's party has a subject.
        Body::Party(p) => of(&p.subject),
        Body::Generic => {
            if rtype == "Patient" {
                return id.map(str::to_owned);
            }
            ["patient", "subject", "beneficiary"]
                .iter()
                .find_map(|key| of(&one_of(src, key, read_link)))
        }
    }
}

/// The typed body of a resource of type `rtype`: one arm per mapped type, sorted by type.
fn read_body(rtype: &str, o: &Obj) -> Body {
    match rtype {
        "AllergyIntolerance" => Body::HealthElement(Box::new(care::read_allergy(o))),
        "CareTeam" => Body::Party(Box::new(care::read_team(o))),
        "Composition" => Body::Document(Box::new(read_composition(o))),
        "Condition" => Body::HealthElement(Box::new(read_condition(o))),
        "Consent" => Body::Consent(Box::new(read_consent(o))),
        "DiagnosticReport" => Body::Service(Box::new(read_diagnostic_report(o))),
        "DocumentReference" => Body::Document(Box::new(read_document_reference(o))),
        "Encounter" => Body::Contact(Box::new(read_contact(o))),
        "EpisodeOfCare" => Body::Contact(Box::new(care::read_episode(o))),
        "Immunization" => Body::Service(Box::new(read_immunization(o))),
        "Location" => Body::Party(Box::new(care::read_location(o))),
        "MedicationRequest" => Body::Service(Box::new(read_medication_request(o))),
        "MedicationStatement" => Body::Service(Box::new(read_medication_statement(o))),
        "Observation" => Body::Service(Box::new(read_observation(o))),
        "Organization" => Body::Party(Box::new(read_party(PartyKind::Organization, o))),
        "Patient" => Body::Person(Box::new(read_person(o))),
        "Practitioner" => Body::Party(Box::new(read_party(PartyKind::Practitioner, o))),
        "PractitionerRole" => Body::Party(Box::new(care::read_role(o))),
        "Procedure" => Body::Service(Box::new(read_procedure(o))),
        "Provenance" => Body::Provenance(Box::new(read_provenance(o))),
        "ServiceRequest" => Body::Service(Box::new(read_service_request(o))),
        _ => Body::Generic,
    }
}

/// The FHIR fields a typed body renders, for a resource of type `rtype` (several types
/// share an entity kind). A body that does not belong to `rtype` renders nothing.
fn write_body(rtype: &str, body: &Body) -> Obj {
    match (rtype, body) {
        ("AllergyIntolerance", Body::HealthElement(h)) => care::write_allergy(h),
        ("CareTeam", Body::Party(p)) => care::write_team(p),
        ("Composition", Body::Document(d)) => write_composition(d),
        ("Condition", Body::HealthElement(h)) => write_condition(h),
        ("Consent", Body::Consent(c)) => write_consent(c),
        ("DiagnosticReport", Body::Service(s)) => write_diagnostic_report(s),
        ("DocumentReference", Body::Document(d)) => write_document_reference(d),
        ("Encounter", Body::Contact(c)) => write_contact(c),
        ("EpisodeOfCare", Body::Contact(c)) => care::write_episode(c),
        ("Immunization", Body::Service(s)) => write_immunization(s),
        ("Location", Body::Party(p)) => care::write_location(p),
        ("MedicationRequest", Body::Service(s)) => write_medication_request(s),
        ("MedicationStatement", Body::Service(s)) => write_medication_statement(s),
        ("Observation", Body::Service(s)) => write_observation(s),
        ("Organization" | "Practitioner", Body::Party(p)) => write_party(p),
        ("Patient", Body::Person(p)) => write_person(p),
        ("PractitionerRole", Body::Party(p)) => care::write_role(p),
        ("Procedure", Body::Service(s)) => write_procedure(s),
        ("Provenance", Body::Provenance(p)) => write_provenance(p),
        ("ServiceRequest", Body::Service(s)) => write_service_request(s),
        _ => Obj::new(),
    }
}

fn read_person(o: &Obj) -> Person {
    let deceased = match (bool_of(o, "deceasedBoolean"), str_of(o, "deceasedDateTime")) {
        (Some(flag), _) => Some(Deceased::Flag(flag)),
        (None, Some(at)) => Some(Deceased::At(at)),
        (None, None) => None,
    };
    Person {
        active: bool_of(o, "active"),
        identifiers: list_of(o, "identifier", read_identifier),
        names: list_of(o, "name", read_name),
        telecoms: list_of(o, "telecom", read_telecom),
        gender: str_of(o, "gender"),
        birth_date: str_of(o, "birthDate"),
        deceased,
        addresses: list_of(o, "address", read_address),
        marital_status: one_of(o, "maritalStatus", read_concept),
        general_practitioners: list_of(o, "generalPractitioner", read_link),
        managing_organization: one_of(o, "managingOrganization", read_link),
    }
}

fn write_person(p: &Person) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &p.identifiers, write_identifier);
    put_bool(&mut o, "active", p.active);
    put_list(&mut o, "name", &p.names, write_name);
    put_list(&mut o, "telecom", &p.telecoms, write_telecom);
    put_str(&mut o, "gender", &p.gender);
    put_str(&mut o, "birthDate", &p.birth_date);
    match &p.deceased {
        Some(Deceased::Flag(flag)) => put_bool(&mut o, "deceasedBoolean", Some(*flag)),
        Some(Deceased::At(at)) => put_str(&mut o, "deceasedDateTime", &Some(at.clone())),
        None => {}
    }
    put_list(&mut o, "address", &p.addresses, write_address);
    put_one(&mut o, "maritalStatus", &p.marital_status, write_concept);
    put_list(
        &mut o,
        "generalPractitioner",
        &p.general_practitioners,
        write_link,
    );
    put_one(
        &mut o,
        "managingOrganization",
        &p.managing_organization,
        write_link,
    );
    o
}

fn read_party(kind: PartyKind, o: &Obj) -> Party {
    let (names, org_name, specialties) = match kind {
        PartyKind::Practitioner => (
            list_of(o, "name", read_name),
            None,
            list_of(o, "qualification", |q| {
                one_of(q, "code", read_concept).unwrap_or_default()
            }),
        ),
        PartyKind::Organization => (
            Vec::new(),
            str_of(o, "name"),
            list_of(o, "type", read_concept),
        ),
        // Read by `care`.
        PartyKind::Role | PartyKind::Location | PartyKind::Team => (Vec::new(), None, Vec::new()),
    };
    Party {
        kind,
        active: bool_of(o, "active"),
        identifiers: list_of(o, "identifier", read_identifier),
        names,
        org_name,
        aliases: strs_of(o, "alias"),
        specialties,
        telecoms: list_of(o, "telecom", read_telecom),
        addresses: list_of(o, "address", read_address),
        gender: str_of(o, "gender"),
        birth_date: str_of(o, "birthDate"),
        part_of: one_of(o, "partOf", read_link),
        ..Party::new(kind)
    }
}

fn write_party(p: &Party) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &p.identifiers, write_identifier);
    put_bool(&mut o, "active", p.active);
    match p.kind {
        PartyKind::Practitioner => {
            put_list(&mut o, "name", &p.names, write_name);
            put_list(&mut o, "telecom", &p.telecoms, write_telecom);
            put_list(&mut o, "address", &p.addresses, write_address);
            put_str(&mut o, "gender", &p.gender);
            put_str(&mut o, "birthDate", &p.birth_date);
            put_list(&mut o, "qualification", &p.specialties, |c| {
                let mut q = Obj::new();
                q.insert("code".into(), Value::Object(write_concept(c)));
                q
            });
        }
        PartyKind::Organization => {
            put_list(&mut o, "type", &p.specialties, write_concept);
            put_str(&mut o, "name", &p.org_name);
            put_strs(&mut o, "alias", &p.aliases);
            put_list(&mut o, "telecom", &p.telecoms, write_telecom);
            put_list(&mut o, "address", &p.addresses, write_address);
            put_one(&mut o, "partOf", &p.part_of, write_link);
        }
        // Written by `care`.
        PartyKind::Role | PartyKind::Location | PartyKind::Team => {}
    }
    o
}

fn read_contact(o: &Obj) -> Contact {
    Contact {
        status: str_of(o, "status"),
        class: one_of(o, "class", read_coding),
        types: list_of(o, "type", read_concept),
        subject: one_of(o, "subject", read_link),
        participants: list_of(o, "participant", |p| {
            one_of(p, "individual", read_link).unwrap_or_default()
        }),
        period: one_of(o, "period", read_period),
        reasons: list_of(o, "reasonCode", read_concept),
        service_provider: one_of(o, "serviceProvider", read_link),
        part_of: one_of(o, "partOf", read_link),
        ..Contact::default()
    }
}

fn write_contact(c: &Contact) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "status", &c.status);
    put_one(&mut o, "class", &c.class, write_coding);
    put_list(&mut o, "type", &c.types, write_concept);
    put_one(&mut o, "subject", &c.subject, write_link);
    put_list(&mut o, "participant", &c.participants, |l| {
        let mut p = Obj::new();
        p.insert("individual".into(), Value::Object(write_link(l)));
        p
    });
    put_one(&mut o, "period", &c.period, write_period);
    put_list(&mut o, "reasonCode", &c.reasons, write_concept);
    put_one(&mut o, "serviceProvider", &c.service_provider, write_link);
    put_one(&mut o, "partOf", &c.part_of, write_link);
    o
}

fn read_condition(o: &Obj) -> HealthElement {
    HealthElement {
        clinical_status: one_of(o, "clinicalStatus", read_concept),
        verification_status: one_of(o, "verificationStatus", read_concept),
        categories: list_of(o, "category", read_concept),
        severity: one_of(o, "severity", read_concept),
        code: one_of(o, "code", read_concept),
        body_sites: list_of(o, "bodySite", read_concept),
        subject: one_of(o, "subject", read_link),
        contact: one_of(o, "encounter", read_link),
        onset: read_when(o, "onset"),
        abatement: read_when(o, "abatement"),
        recorded_date: str_of(o, "recordedDate"),
        recorder: one_of(o, "recorder", read_link),
        asserter: one_of(o, "asserter", read_link),
        ..HealthElement::default()
    }
}

fn write_condition(h: &HealthElement) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "clinicalStatus", &h.clinical_status, write_concept);
    put_one(
        &mut o,
        "verificationStatus",
        &h.verification_status,
        write_concept,
    );
    put_list(&mut o, "category", &h.categories, write_concept);
    put_one(&mut o, "severity", &h.severity, write_concept);
    put_one(&mut o, "code", &h.code, write_concept);
    put_list(&mut o, "bodySite", &h.body_sites, write_concept);
    put_one(&mut o, "subject", &h.subject, write_link);
    put_one(&mut o, "encounter", &h.contact, write_link);
    write_when(&mut o, "onset", &h.onset);
    write_when(&mut o, "abatement", &h.abatement);
    put_str(&mut o, "recordedDate", &h.recorded_date);
    put_one(&mut o, "recorder", &h.recorder, write_link);
    put_one(&mut o, "asserter", &h.asserter, write_link);
    o
}

/// Every coding in the resource with its element path, at any depth (extensions and
/// contained resources included), for the gateway to ask terminology about.
pub fn codings(resource: &Resource) -> Vec<(String, Code)> {
    let mut out = Vec::new();
    let mut path = crate::path::Path::new(resource.resource_type());
    walk_object(resource.object(), &mut path, &mut out);
    out
}

fn walk_object<'a>(
    o: &'a serde_json::Map<String, Value>,
    path: &mut crate::path::Path<'a>,
    out: &mut Vec<(String, Code)>,
) {
    for (key, v) in o {
        if key.starts_with('_') {
            continue;
        }
        path.key(key);
        if key == "coding" || key == "valueCoding" || key == "class" {
            match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = item.as_object() {
                            path.index(i);
                            out.push((path.text(""), read_coding(c)));
                            path.pop();
                        }
                    }
                }
                Value::Object(c) => out.push((path.text(""), read_coding(c))),
                _ => {}
            }
        }
        walk_value(v, path, out);
        path.pop();
    }
}

fn walk_value<'a>(
    value: &'a Value,
    path: &mut crate::path::Path<'a>,
    out: &mut Vec<(String, Code)>,
) {
    match value {
        Value::Object(o) => walk_object(o, path, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.index(i);
                walk_value(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The concept of a service or health element (or a document's type), for callers that need
/// the main code.
pub fn main_concept(entity: &Entity) -> Option<&Concept> {
    body_concept(&entity.body)
}

/// The main concept of a body: a service's code (or its coded medication), a health
/// element's code.
fn body_concept(body: &Body) -> Option<&Concept> {
    match body {
        Body::Service(s) => s.code.as_ref().or_else(|| medication_concept(s)),
        Body::HealthElement(h) => h.code.as_ref(),
        Body::Document(d) => d.document_type.as_ref(),
        _ => None,
    }
}
