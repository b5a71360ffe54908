//! Records about records: documents (DocumentReference, Composition), consents (Consent) and
//! provenance (Provenance) ⇄ their entity kinds ([`Document`], [`Consent`], [`Provenance`]).
//!
//! Readers take whole elements where the model has a field for every part, so those elements
//! leave the remainder; writers render exactly what the readers took. The resource narrative
//! (`text`), `contained`, extensions and the like stay in the remainder as for every type.

use model::{
    Agent, Attestation, Consent, ConsentSource, Document, DocumentContent, DocumentContext,
    DocumentEvent, DocumentKind, DocumentRelation, Policy, Provenance, ProvenanceEntity, Provision,
    ProvisionActor, ProvisionData, Section, Signature, Verification,
};
use serde_json::Value;

use crate::fields::*;

/// Reads a DocumentReference: a pointer to a document's content, indexed.
pub(crate) fn read_document_reference(o: &Obj) -> Document {
    let context = o.get("context").and_then(Value::as_object);
    Document {
        kind: DocumentKind::Reference,
        master_identifier: one_of(o, "masterIdentifier", read_identifier),
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        document_status: str_of(o, "docStatus"),
        document_type: one_of(o, "type", read_concept),
        categories: list_of(o, "category", read_concept),
        subject: one_of(o, "subject", read_link),
        contacts: context
            .map(|c| list_of(c, "encounter", read_link))
            .unwrap_or_default(),
        recorded_at: str_of(o, "date"),
        authors: list_of(o, "author", read_link),
        title: str_of(o, "description"),
        security_labels: list_of(o, "securityLabel", read_concept),
        attesters: one_of(o, "authenticator", read_link)
            .map(|party| {
                vec![Attestation {
                    party: Some(party),
                    ..Attestation::default()
                }]
            })
            .unwrap_or_default(),
        custodian: one_of(o, "custodian", read_link),
        relations: list_of(o, "relatesTo", |r| DocumentRelation {
            code: str_of(r, "code"),
            target: one_of(r, "target", read_link),
            target_identifier: None,
        }),
        contents: list_of(o, "content", |c| DocumentContent {
            attachment: one_of(c, "attachment", read_attachment),
            format: one_of(c, "format", read_coding),
        }),
        context: context.map(|c| DocumentContext {
            events: list_of(c, "event", read_concept),
            period: one_of(c, "period", read_period),
            facility_type: one_of(c, "facilityType", read_concept),
            practice_setting: one_of(c, "practiceSetting", read_concept),
            source_patient: one_of(c, "sourcePatientInfo", read_link),
            related: list_of(c, "related", read_link),
        }),
        ..Document::default()
    }
}

/// Renders a document as a DocumentReference.
pub(crate) fn write_document_reference(d: &Document) -> Obj {
    let mut o = Obj::new();
    put_one(
        &mut o,
        "masterIdentifier",
        &d.master_identifier,
        write_identifier,
    );
    put_list(&mut o, "identifier", &d.identifiers, write_identifier);
    put_str(&mut o, "status", &d.status);
    put_str(&mut o, "docStatus", &d.document_status);
    put_one(&mut o, "type", &d.document_type, write_concept);
    put_list(&mut o, "category", &d.categories, write_concept);
    put_one(&mut o, "subject", &d.subject, write_link);
    put_str(&mut o, "date", &d.recorded_at);
    put_list(&mut o, "author", &d.authors, write_link);
    let authenticator = d.attesters.first().and_then(|a| a.party.clone());
    put_one(&mut o, "authenticator", &authenticator, write_link);
    put_one(&mut o, "custodian", &d.custodian, write_link);
    put_list(&mut o, "relatesTo", &d.relations, |r| {
        let mut out = Obj::new();
        put_str(&mut out, "code", &r.code);
        put_one(&mut out, "target", &r.target, write_link);
        out
    });
    put_str(&mut o, "description", &d.title);
    put_list(&mut o, "securityLabel", &d.security_labels, write_concept);
    put_list(&mut o, "content", &d.contents, |c| {
        let mut out = Obj::new();
        put_one(&mut out, "attachment", &c.attachment, write_attachment);
        put_one(&mut out, "format", &c.format, write_coding);
        out
    });
    if d.context.is_some() || !d.contacts.is_empty() {
        let mut out = Obj::new();
        put_list(&mut out, "encounter", &d.contacts, write_link);
        if let Some(c) = &d.context {
            put_list(&mut out, "event", &c.events, write_concept);
            put_one(&mut out, "period", &c.period, write_period);
            put_one(&mut out, "facilityType", &c.facility_type, write_concept);
            put_one(
                &mut out,
                "practiceSetting",
                &c.practice_setting,
                write_concept,
            );
            put_one(&mut out, "sourcePatientInfo", &c.source_patient, write_link);
            put_list(&mut out, "related", &c.related, write_link);
        }
        o.insert("context".into(), Value::Object(out));
    }
    o
}

/// Reads a Composition: a document made of sections.
pub(crate) fn read_composition(o: &Obj) -> Document {
    Document {
        kind: DocumentKind::Composition,
        identifiers: one_of(o, "identifier", read_identifier)
            .into_iter()
            .collect(),
        status: str_of(o, "status"),
        document_type: one_of(o, "type", read_concept),
        categories: list_of(o, "category", read_concept),
        subject: one_of(o, "subject", read_link),
        contacts: one_of(o, "encounter", read_link).into_iter().collect(),
        recorded_at: str_of(o, "date"),
        authors: list_of(o, "author", read_link),
        title: str_of(o, "title"),
        confidentiality: str_of(o, "confidentiality"),
        attesters: list_of(o, "attester", |a| Attestation {
            mode: str_of(a, "mode"),
            time: str_of(a, "time"),
            party: one_of(a, "party", read_link),
        }),
        custodian: one_of(o, "custodian", read_link),
        relations: list_of(o, "relatesTo", |r| DocumentRelation {
            code: str_of(r, "code"),
            target: one_of(r, "targetReference", read_link),
            target_identifier: one_of(r, "targetIdentifier", read_identifier),
        }),
        events: list_of(o, "event", |e| DocumentEvent {
            codes: list_of(e, "code", read_concept),
            period: one_of(e, "period", read_period),
            details: list_of(e, "detail", read_link),
        }),
        sections: list_of(o, "section", read_section),
        ..Document::default()
    }
}

/// Renders a document as a Composition.
pub(crate) fn write_composition(d: &Document) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "identifier", &d.identifiers.first(), |i| {
        write_identifier(i)
    });
    put_str(&mut o, "status", &d.status);
    put_one(&mut o, "type", &d.document_type, write_concept);
    put_list(&mut o, "category", &d.categories, write_concept);
    put_one(&mut o, "subject", &d.subject, write_link);
    put_one(&mut o, "encounter", &d.contacts.first(), |l| write_link(l));
    put_str(&mut o, "date", &d.recorded_at);
    put_list(&mut o, "author", &d.authors, write_link);
    put_str(&mut o, "title", &d.title);
    put_str(&mut o, "confidentiality", &d.confidentiality);
    put_list(&mut o, "attester", &d.attesters, |a| {
        let mut out = Obj::new();
        put_str(&mut out, "mode", &a.mode);
        put_str(&mut out, "time", &a.time);
        put_one(&mut out, "party", &a.party, write_link);
        out
    });
    put_one(&mut o, "custodian", &d.custodian, write_link);
    put_list(&mut o, "relatesTo", &d.relations, |r| {
        let mut out = Obj::new();
        put_str(&mut out, "code", &r.code);
        put_one(
            &mut out,
            "targetIdentifier",
            &r.target_identifier,
            write_identifier,
        );
        put_one(&mut out, "targetReference", &r.target, write_link);
        out
    });
    put_list(&mut o, "event", &d.events, |e| {
        let mut out = Obj::new();
        put_list(&mut out, "code", &e.codes, write_concept);
        put_one(&mut out, "period", &e.period, write_period);
        put_list(&mut out, "detail", &e.details, write_link);
        out
    });
    put_list(&mut o, "section", &d.sections, write_section);
    o
}

fn read_section(o: &Obj) -> Section {
    Section {
        title: str_of(o, "title"),
        code: one_of(o, "code", read_concept),
        authors: list_of(o, "author", read_link),
        focus: one_of(o, "focus", read_link),
        text: one_of(o, "text", read_narrative),
        mode: str_of(o, "mode"),
        ordered_by: one_of(o, "orderedBy", read_concept),
        entries: list_of(o, "entry", read_link),
        empty_reason: one_of(o, "emptyReason", read_concept),
        sections: list_of(o, "section", read_section),
    }
}

fn write_section(s: &Section) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "title", &s.title);
    put_one(&mut o, "code", &s.code, write_concept);
    put_list(&mut o, "author", &s.authors, write_link);
    put_one(&mut o, "focus", &s.focus, write_link);
    put_one(&mut o, "text", &s.text, write_narrative);
    put_str(&mut o, "mode", &s.mode);
    put_one(&mut o, "orderedBy", &s.ordered_by, write_concept);
    put_list(&mut o, "entry", &s.entries, write_link);
    put_one(&mut o, "emptyReason", &s.empty_reason, write_concept);
    put_list(&mut o, "section", &s.sections, write_section);
    o
}

/// Reads a Consent.
pub(crate) fn read_consent(o: &Obj) -> Consent {
    let source = match (
        one_of(o, "sourceAttachment", read_attachment),
        one_of(o, "sourceReference", read_link),
    ) {
        (Some(a), _) => Some(ConsentSource::Attachment(a)),
        (None, Some(l)) => Some(ConsentSource::Link(l)),
        (None, None) => None,
    };
    Consent {
        identifiers: list_of(o, "identifier", read_identifier),
        status: str_of(o, "status"),
        scope: one_of(o, "scope", read_concept),
        categories: list_of(o, "category", read_concept),
        patient: one_of(o, "patient", read_link),
        recorded_at: str_of(o, "dateTime"),
        performers: list_of(o, "performer", read_link),
        organizations: list_of(o, "organization", read_link),
        source,
        policies: list_of(o, "policy", |p| Policy {
            authority: str_of(p, "authority"),
            uri: str_of(p, "uri"),
        }),
        policy_rule: one_of(o, "policyRule", read_concept),
        verifications: list_of(o, "verification", |v| Verification {
            verified: bool_of(v, "verified"),
            verified_with: one_of(v, "verifiedWith", read_link),
            verified_at: str_of(v, "verificationDate"),
        }),
        provision: one_of(o, "provision", read_provision),
    }
}

/// Renders a consent as a Consent.
pub(crate) fn write_consent(c: &Consent) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "identifier", &c.identifiers, write_identifier);
    put_str(&mut o, "status", &c.status);
    put_one(&mut o, "scope", &c.scope, write_concept);
    put_list(&mut o, "category", &c.categories, write_concept);
    put_one(&mut o, "patient", &c.patient, write_link);
    put_str(&mut o, "dateTime", &c.recorded_at);
    put_list(&mut o, "performer", &c.performers, write_link);
    put_list(&mut o, "organization", &c.organizations, write_link);
    match &c.source {
        Some(ConsentSource::Attachment(a)) => {
            o.insert(
                "sourceAttachment".into(),
                Value::Object(write_attachment(a)),
            );
        }
        Some(ConsentSource::Link(l)) => {
            o.insert("sourceReference".into(), Value::Object(write_link(l)));
        }
        None => {}
    }
    put_list(&mut o, "policy", &c.policies, |p| {
        let mut out = Obj::new();
        put_str(&mut out, "authority", &p.authority);
        put_str(&mut out, "uri", &p.uri);
        out
    });
    put_one(&mut o, "policyRule", &c.policy_rule, write_concept);
    put_list(&mut o, "verification", &c.verifications, |v| {
        let mut out = Obj::new();
        put_bool(&mut out, "verified", v.verified);
        put_one(&mut out, "verifiedWith", &v.verified_with, write_link);
        put_str(&mut out, "verificationDate", &v.verified_at);
        out
    });
    put_one(&mut o, "provision", &c.provision, write_provision);
    o
}

fn read_provision(o: &Obj) -> Provision {
    Provision {
        decision: str_of(o, "type"),
        period: one_of(o, "period", read_period),
        actors: list_of(o, "actor", |a| ProvisionActor {
            role: one_of(a, "role", read_concept),
            party: one_of(a, "reference", read_link),
        }),
        actions: list_of(o, "action", read_concept),
        security_labels: list_of(o, "securityLabel", read_coding),
        purposes: list_of(o, "purpose", read_coding),
        classes: list_of(o, "class", read_coding),
        codes: list_of(o, "code", read_concept),
        data_period: one_of(o, "dataPeriod", read_period),
        data: list_of(o, "data", |d| ProvisionData {
            meaning: str_of(d, "meaning"),
            target: one_of(d, "reference", read_link),
        }),
        provisions: list_of(o, "provision", read_provision),
    }
}

fn write_provision(p: &Provision) -> Obj {
    let mut o = Obj::new();
    put_str(&mut o, "type", &p.decision);
    put_one(&mut o, "period", &p.period, write_period);
    put_list(&mut o, "actor", &p.actors, |a| {
        let mut out = Obj::new();
        put_one(&mut out, "role", &a.role, write_concept);
        put_one(&mut out, "reference", &a.party, write_link);
        out
    });
    put_list(&mut o, "action", &p.actions, write_concept);
    put_list(&mut o, "securityLabel", &p.security_labels, write_coding);
    put_list(&mut o, "purpose", &p.purposes, write_coding);
    put_list(&mut o, "class", &p.classes, write_coding);
    put_list(&mut o, "code", &p.codes, write_concept);
    put_one(&mut o, "dataPeriod", &p.data_period, write_period);
    put_list(&mut o, "data", &p.data, |d| {
        let mut out = Obj::new();
        put_str(&mut out, "meaning", &d.meaning);
        put_one(&mut out, "reference", &d.target, write_link);
        out
    });
    put_list(&mut o, "provision", &p.provisions, write_provision);
    o
}

/// Reads a Provenance.
pub(crate) fn read_provenance(o: &Obj) -> Provenance {
    Provenance {
        targets: list_of(o, "target", read_link),
        occurred: read_when(o, "occurred"),
        recorded_at: str_of(o, "recorded"),
        policies: strs_of(o, "policy"),
        location: one_of(o, "location", read_link),
        reasons: list_of(o, "reason", read_concept),
        activity: one_of(o, "activity", read_concept),
        agents: list_of(o, "agent", read_agent),
        entities: list_of(o, "entity", |e| ProvenanceEntity {
            role: str_of(e, "role"),
            what: one_of(e, "what", read_link),
            agents: list_of(e, "agent", read_agent),
        }),
        signatures: list_of(o, "signature", |s| Signature {
            kinds: list_of(s, "type", read_coding),
            signed_at: str_of(s, "when"),
            who: one_of(s, "who", read_link),
            on_behalf_of: one_of(s, "onBehalfOf", read_link),
            target_format: str_of(s, "targetFormat"),
            signature_format: str_of(s, "sigFormat"),
            data: str_of(s, "data"),
        }),
    }
}

/// Renders a provenance as a Provenance.
pub(crate) fn write_provenance(p: &Provenance) -> Obj {
    let mut o = Obj::new();
    put_list(&mut o, "target", &p.targets, write_link);
    write_when(&mut o, "occurred", &p.occurred);
    put_str(&mut o, "recorded", &p.recorded_at);
    put_strs(&mut o, "policy", &p.policies);
    put_one(&mut o, "location", &p.location, write_link);
    put_list(&mut o, "reason", &p.reasons, write_concept);
    put_one(&mut o, "activity", &p.activity, write_concept);
    put_list(&mut o, "agent", &p.agents, write_agent);
    put_list(&mut o, "entity", &p.entities, |e| {
        let mut out = Obj::new();
        put_str(&mut out, "role", &e.role);
        put_one(&mut out, "what", &e.what, write_link);
        put_list(&mut out, "agent", &e.agents, write_agent);
        out
    });
    put_list(&mut o, "signature", &p.signatures, |s| {
        let mut out = Obj::new();
        put_list(&mut out, "type", &s.kinds, write_coding);
        put_str(&mut out, "when", &s.signed_at);
        put_one(&mut out, "who", &s.who, write_link);
        put_one(&mut out, "onBehalfOf", &s.on_behalf_of, write_link);
        put_str(&mut out, "targetFormat", &s.target_format);
        put_str(&mut out, "sigFormat", &s.signature_format);
        put_str(&mut out, "data", &s.data);
        out
    });
    o
}

fn read_agent(o: &Obj) -> Agent {
    Agent {
        kind: one_of(o, "type", read_concept),
        roles: list_of(o, "role", read_concept),
        who: one_of(o, "who", read_link),
        on_behalf_of: one_of(o, "onBehalfOf", read_link),
    }
}

fn write_agent(a: &Agent) -> Obj {
    let mut o = Obj::new();
    put_one(&mut o, "type", &a.kind, write_concept);
    put_list(&mut o, "role", &a.roles, write_concept);
    put_one(&mut o, "who", &a.who, write_link);
    put_one(&mut o, "onBehalfOf", &a.on_behalf_of, write_link);
    o
}

#[cfg(test)]
mod tests {
    use model::{Body, ConsentSource, DocumentKind, Entity, When};
    use serde_json::{Value, json};

    use crate::entity::{main_concept, to_entity, to_fhir};
    use crate::json::parse_resource;
    use crate::rules::check;

    /// Maps one of the shared R4 examples.
    fn example(file: &str) -> Entity {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fhir-data/r4-examples")
            .join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let res = parse_resource(&bytes, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        to_entity(&res)
    }

    /// Maps a resource built here, checks it against the R4 structure and that it renders
    /// back unchanged.
    fn mapped(v: &Value) -> Entity {
        let res = parse_resource(v.to_string().as_bytes(), &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&res), vec![], "{v}");
        let entity = to_entity(&res);
        assert_eq!(&Value::Object(to_fhir(&entity, None)), v);
        assert!(!entity.remainder.complete, "{v}");
        entity
    }

    /// Only the narrative (and what is named) stays in the remainder.
    fn only_left(entity: &Entity, keys: &[&str]) {
        let left: Vec<&str> = entity.remainder.data.keys().map(String::as_str).collect();
        assert_eq!(left, keys, "{}/{}", entity.source_type, entity.id);
        assert!(!entity.remainder.complete);
    }

    #[test]
    fn document_reference_example_fills_the_document() {
        let e = example("DocumentReference-example.json");
        let Body::Document(d) = &e.body else {
            panic!("DocumentReference is a Document")
        };
        assert_eq!(d.kind, DocumentKind::Reference);
        assert_eq!(d.status.as_deref(), Some("current"));
        assert_eq!(d.document_status.as_deref(), Some("preliminary"));
        let code = |c: &Option<model::Concept>| {
            c.as_ref()
                .and_then(|c| c.codes.first())
                .and_then(|c| c.code.clone())
        };
        assert_eq!(code(&d.document_type).as_deref(), Some("34108-1"));
        assert_eq!(
            e.codes.first().and_then(|c| c.code.as_deref()),
            Some("34108-1")
        );
        assert!(main_concept(&e).is_some());
        assert_eq!(
            d.subject.as_ref().and_then(|s| s.target_id.as_deref()),
            Some("xcda")
        );
        assert_eq!(e.patient.as_deref(), Some("xcda"));
        assert_eq!(d.recorded_at.as_deref(), Some("2005-12-24T09:43:41+11:00"));
        assert_eq!(d.authors.len(), 2);
        assert_eq!(
            d.attesters[0]
                .party
                .as_ref()
                .and_then(|p| p.reference.as_deref()),
            Some("Organization/f001")
        );
        assert_eq!(d.title.as_deref(), Some("Physical"));
        assert_eq!(d.relations[0].code.as_deref(), Some("appends"));
        let attachment = d.contents[0].attachment.as_ref().expect("an attachment");
        assert_eq!(
            attachment.content_type.as_deref(),
            Some("application/hl7-v3+xml")
        );
        assert_eq!(attachment.size, Some(model::Decimal("3654".into())));
        assert_eq!(
            d.contents[0]
                .format
                .as_ref()
                .and_then(|f| f.code.as_deref()),
            Some("urn:ihe:pcc:handp:2008")
        );
        assert_eq!(
            d.contacts[0].target_id.as_deref(),
            Some("xcda"),
            "context.encounter"
        );
        let context = d.context.as_ref().expect("a context");
        assert_eq!(
            code(&context.practice_setting).as_deref(),
            Some("General Medicine")
        );
        assert_eq!(context.related.len(), 1);
        for key in [
            "masterIdentifier",
            "status",
            "docStatus",
            "type",
            "subject",
            "date",
            "authenticator",
            "relatesTo",
            "securityLabel",
            "content",
            "context",
        ] {
            assert!(!e.remainder.data.contains_key(key), "{key} left");
        }
        only_left(&e, &["text", "contained"]);
    }

    #[test]
    fn composition_example_fills_the_document_and_its_sections() {
        let e = example("Composition-example.json");
        let Body::Document(d) = &e.body else {
            panic!("Composition is a Document")
        };
        assert_eq!(d.kind, DocumentKind::Composition);
        assert_eq!(d.status.as_deref(), Some("final"));
        assert_eq!(
            e.codes.first().and_then(|c| c.code.as_deref()),
            Some("11488-4")
        );
        assert_eq!(e.patient.as_deref(), Some("xcda"));
        assert_eq!(d.contacts[0].target_id.as_deref(), Some("xcda"));
        assert_eq!(d.title.as_deref(), Some("Consultation Note"));
        assert_eq!(d.confidentiality.as_deref(), Some("N"));
        assert_eq!(d.attesters[0].mode.as_deref(), Some("legal"));
        assert_eq!(d.relations.len(), 2);
        assert!(d.relations[0].target.is_some());
        assert!(d.relations[1].target_identifier.is_some());
        assert_eq!(d.events[0].details.len(), 1);
        assert_eq!(d.sections.len(), 2);
        assert_eq!(d.sections[0].entries.len(), 3);
        assert_eq!(
            d.sections[0]
                .text
                .as_ref()
                .and_then(|t| t.status.as_deref()),
            Some("generated")
        );
        assert!(d.sections[1].empty_reason.is_some());
        for key in [
            "identifier",
            "encounter",
            "attester",
            "relatesTo",
            "event",
            "section",
        ] {
            assert!(!e.remainder.data.contains_key(key), "{key} left");
        }
        only_left(&e, &["text"]);
    }

    #[test]
    fn consent_examples_fill_the_consent() {
        for file in [
            "Consent-consent-example-Out.json",
            "Consent-consent-example-notAuthor.json",
            "Consent-consent-example-notThem.json",
        ] {
            let e = example(file);
            let Body::Consent(c) = &e.body else {
                panic!("Consent is a Consent")
            };
            assert_eq!(c.status.as_deref(), Some("active"), "{file}");
            assert_eq!(e.patient.as_deref(), Some("f001"), "{file}");
            assert_eq!(c.recorded_at.as_deref(), Some("2015-11-18"));
            assert!(matches!(c.source, Some(ConsentSource::Attachment(_))));
            assert!(c.policy_rule.is_some());
            let provision = c.provision.as_ref().expect("a provision");
            assert_eq!(provision.actors.len(), 1);
            for key in [
                "scope",
                "patient",
                "dateTime",
                "sourceAttachment",
                "provision",
            ] {
                assert!(!e.remainder.data.contains_key(key), "{file}: {key} left");
            }
            only_left(&e, &["text"]);
        }
        let e = example("Consent-consent-example-notThem.json");
        let Body::Consent(c) = &e.body else {
            panic!("Consent is a Consent")
        };
        let provision = c.provision.as_ref().expect("a provision");
        assert_eq!(provision.actions.len(), 2);
        assert_eq!(
            provision.actors[0]
                .party
                .as_ref()
                .and_then(|p| p.target_id.as_deref()),
            Some("f204")
        );
    }

    #[test]
    fn provenance_examples_fill_the_provenance() {
        let e = example("Provenance-signature.json");
        let Body::Provenance(p) = &e.body else {
            panic!("Provenance is a Provenance")
        };
        assert_eq!(
            p.targets[0].target_type.as_deref(),
            Some("DocumentReference")
        );
        assert_eq!(p.recorded_at.as_deref(), Some("2015-08-27T08:39:24+10:00"));
        assert!(p.activity.is_some());
        assert_eq!(p.signatures[0].data.as_deref(), Some("Li4u"));
        assert_eq!(
            p.signatures[0].signature_format.as_deref(),
            Some("application/signature+xml")
        );
        assert!(
            p.agents[0]
                .who
                .as_ref()
                .is_some_and(|w| w.identifier.is_some())
        );
        assert_eq!(e.patient, None, "the target is not a Patient");
        only_left(&e, &["text"]);

        for file in [
            "Provenance-example-biocompute-object.json",
            "Provenance-example-cwl.json",
        ] {
            let e = example(file);
            let Body::Provenance(p) = &e.body else {
                panic!("Provenance is a Provenance")
            };
            assert!(matches!(p.occurred, Some(When::Span(_))), "{file}");
            assert_eq!(p.entities[0].role.as_deref(), Some("source"));
            assert_eq!(e.patient, None, "{file}: the target is a sequence");
            for key in ["target", "occurredPeriod", "recorded", "agent", "entity"] {
                assert!(!e.remainder.data.contains_key(key), "{file}: {key} left");
            }
            only_left(&e, &["text"]);
        }
    }

    /// Elements no shared example has: inline data, nested sections, a linked consent source,
    /// policies and verifications, nested provisions, a provenance of a Patient.
    #[test]
    fn elements_beyond_the_examples_map_to_typed_fields() {
        let e = mapped(&json!({
            "resourceType": "DocumentReference", "id": "d1", "status": "current",
            "subject": {"reference": "Patient/p1"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8=", "size": 5, "title": "hello"}}],
            "context": {"period": {"start": "2020-01-01"}}
        }));
        let Body::Document(d) = &e.body else {
            panic!("a Document")
        };
        assert_eq!(
            d.contents[0]
                .attachment
                .as_ref()
                .and_then(|a| a.data.as_deref()),
            Some("aGVsbG8=")
        );
        assert!(d.contacts.is_empty());
        assert_eq!(e.patient.as_deref(), Some("p1"));
        only_left(&e, &[]);

        let e = mapped(&json!({
            "resourceType": "Composition", "id": "c1", "status": "final",
            "type": {"text": "Discharge summary"}, "date": "2021-03-04",
            "author": [{"reference": "Practitioner/a"}], "title": "Discharge",
            "relatesTo": [{"code": "replaces", "targetReference": {"reference": "Composition/c0"}}],
            "section": [{
                "title": "Plan", "focus": {"reference": "Patient/p2"},
                "text": {"status": "additional", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
                "section": [{"title": "Drugs", "mode": "working", "author": [{"reference": "Practitioner/b"}],
                              "entry": [{"reference": "MedicationRequest/m1"}]}]
            }]
        }));
        let Body::Document(d) = &e.body else {
            panic!("a Document")
        };
        assert_eq!(d.sections[0].sections[0].entries.len(), 1);
        assert_eq!(e.patient, None, "no subject");
        only_left(&e, &[]);

        let e = mapped(&json!({
            "resourceType": "Consent", "id": "k1", "status": "active",
            "scope": {"text": "research"}, "category": [{"text": "research"}],
            "patient": {"reference": "Patient/p3"},
            "performer": [{"reference": "Patient/p3"}],
            "sourceReference": {"reference": "DocumentReference/d1"},
            "policy": [{"authority": "https://example.org/irb", "uri": "https://example.org/irb/p/1"}],
            "verification": [{"verified": true, "verifiedWith": {"reference": "RelatedPerson/r1"}, "verificationDate": "2020-02-02"}],
            "provision": {
                "type": "deny", "period": {"start": "2020-01-01"},
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}],
                "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
                "securityLabel": [{"code": "R"}], "code": [{"text": "HIV"}],
                "dataPeriod": {"end": "2019-12-31"},
                "data": [{"meaning": "related", "reference": {"reference": "Encounter/e1"}}],
                "provision": [{"type": "permit", "actor": [{"role": {"text": "doctor"}, "reference": {"reference": "Practitioner/a"}}]}]
            }
        }));
        let Body::Consent(c) = &e.body else {
            panic!("a Consent")
        };
        assert!(matches!(c.source, Some(ConsentSource::Link(_))));
        assert_eq!(c.verifications[0].verified, Some(true));
        let provision = c.provision.as_ref().expect("a provision");
        assert_eq!(provision.decision.as_deref(), Some("deny"));
        assert_eq!(provision.provisions[0].decision.as_deref(), Some("permit"));
        assert_eq!(e.patient.as_deref(), Some("p3"));
        only_left(&e, &[]);

        let e = mapped(&json!({
            "resourceType": "Provenance", "id": "v1",
            "target": [{"reference": "Observation/o1"}, {"reference": "Patient/p4"}, {"reference": "Patient/p5"}],
            "occurredDateTime": "2020-05-05", "recorded": "2020-05-05T10:00:00Z",
            "policy": ["https://example.org/policy"], "location": {"reference": "Location/l1"},
            "agent": [{"role": [{"text": "editor"}], "who": {"reference": "Practitioner/a"},
                       "onBehalfOf": {"reference": "Organization/o"}}],
            "entity": [{"role": "revision", "what": {"reference": "Observation/o0"},
                        "agent": [{"who": {"reference": "Device/x"}}]}],
            "signature": [{"type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
                           "when": "2020-05-05T10:00:00Z", "who": {"reference": "Practitioner/a"}}]
        }));
        let Body::Provenance(p) = &e.body else {
            panic!("a Provenance")
        };
        assert!(matches!(p.occurred, Some(When::At(_))));
        assert_eq!(p.entities[0].agents.len(), 1);
        assert_eq!(e.patient.as_deref(), Some("p4"), "the first Patient target");
        only_left(&e, &[]);
    }
}
