//! The internal data model of fhirgate: plain data, no I/O, no FHIR.
//!
//! A small set of entity kinds carries every clinical record (after iCure): [`Person`]
//! (the patient), [`Party`] (a practitioner or an organisation), [`Contact`] (an encounter),
//! [`Service`] (one clinical statement such as an observation) and [`HealthElement`] (a
//! problem followed over time). Whatever a source model carries that an entity has no field
//! for is kept verbatim in the entity's [`Remainder`], so that a round trip through the model
//! is lossless. A source type that has no mapping yet is stored as [`Body::Generic`] and its
//! whole content lives in the remainder.
//!
//! Values keep their source text where a normalised form could differ from it (dates stay
//! strings, decimals stay [`Decimal`] text), because the model promises lossless round trips.

use serde::{Deserialize, Serialize};

/// One stored record: identity, version, provenance and a typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Identifier, unique per source type.
    pub id: String,
    /// The source model's type name (for FHIR, the `resourceType`).
    pub source_type: String,
    /// Version, starting at 1.
    pub version: u64,
    /// The person this entity belongs to, if any (the patient compartment).
    pub patient: Option<String>,
    /// Codes describing the entity (for a service: what was observed).
    pub codes: Vec<Code>,
    /// Tags (labels that do not change meaning).
    pub tags: Vec<Code>,
    /// The typed content.
    pub body: Body,
    /// Whatever the typed content could not carry, per source model.
    pub remainder: Remainder,
}

/// A code from a code system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// The code system's canonical URI.
    pub system: Option<String>,
    /// The code system's version.
    pub version: Option<String>,
    /// The code itself.
    pub code: Option<String>,
    /// Human-readable text of the code.
    pub display: Option<String>,
}

/// A concept given as zero or more codes and an optional text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concept {
    /// The codes.
    pub codes: Vec<Code>,
    /// Free text.
    pub text: Option<String>,
}

/// A link to another entity, by source type and id, or to something outside the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Target type, if known.
    pub target_type: Option<String>,
    /// Target id within the store, if the link is to a stored entity.
    pub target_id: Option<String>,
    /// The raw reference text (may be an absolute URL or a fragment).
    pub reference: Option<String>,
    /// A business identifier of the target.
    pub identifier: Option<Identifier>,
    /// Text for the link.
    pub display: Option<String>,
}

/// A business identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// Usage (official, usual, temp, secondary, old).
    pub usage: Option<String>,
    /// The kind of identifier.
    pub kind: Option<Concept>,
    /// The namespace.
    pub system: Option<String>,
    /// The value.
    pub value: Option<String>,
    /// When the identifier was valid.
    pub period: Option<Period>,
    /// Who issued it.
    pub assigner: Option<Box<Link>>,
}

/// A time span; either end may be open. Kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, as source text.
    pub start: Option<String>,
    /// End, as source text.
    pub end: Option<String>,
}

/// A person's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// Usage (usual, official, nickname, maiden …).
    pub usage: Option<String>,
    /// The full text.
    pub text: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// Given names, in order.
    pub given: Vec<String>,
    /// Parts before the name.
    pub prefix: Vec<String>,
    /// Parts after the name.
    pub suffix: Vec<String>,
    /// When the name was in use.
    pub period: Option<Period>,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Usage (home, work, temp, old, billing).
    pub usage: Option<String>,
    /// Kind (postal, physical, both).
    pub kind: Option<String>,
    /// The full text.
    pub text: Option<String>,
    /// Street lines.
    pub lines: Vec<String>,
    /// City.
    pub city: Option<String>,
    /// District.
    pub district: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// When the address was in use.
    pub period: Option<Period>,
}

/// A phone number, e-mail address or other telecom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telecom {
    /// Channel (phone, fax, email, …).
    pub channel: Option<String>,
    /// The address on that channel.
    pub value: Option<String>,
    /// Usage (home, work, mobile, …).
    pub usage: Option<String>,
    /// Preference order, as source text.
    pub rank: Option<Decimal>,
    /// When it was in use.
    pub period: Option<Period>,
}

/// A decimal number kept as its exact source text (`1.50` stays `1.50`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decimal(pub String);

/// A measured amount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    /// The value.
    pub value: Option<Decimal>,
    /// How to read the value (`<`, `<=`, `>=`, `>`).
    pub comparator: Option<String>,
    /// Unit text.
    pub unit: Option<String>,
    /// Unit system.
    pub system: Option<String>,
    /// Coded unit.
    pub code: Option<String>,
}

/// A moment or span as source text: a date, a date-time, or a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// A date or date-time, as source text.
    At(String),
    /// A period.
    Span(Period),
}

/// The content of a clinical statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A measured quantity.
    Quantity(Quantity),
    /// A coded value.
    Concept(Concept),
    /// Text.
    Text(String),
    /// Yes or no.
    Boolean(bool),
    /// A whole number, as source text.
    Integer(Decimal),
    /// A date-time, as source text.
    DateTime(String),
    /// A time of day, as source text.
    Time(String),
    /// A period.
    Period(Period),
    /// A range of quantities.
    Range(Range),
    /// A ratio of two quantities.
    Ratio(Ratio),
    /// A series of samples taken at a regular interval.
    SampledData(SampledData),
}

/// A range of quantities; either end may be open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The low end.
    pub low: Option<Quantity>,
    /// The high end.
    pub high: Option<Quantity>,
}

/// A ratio of two quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    /// The numerator.
    pub numerator: Option<Quantity>,
    /// The denominator.
    pub denominator: Option<Quantity>,
}

/// A series of samples taken at a regular interval (e.g. an ECG lead), kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledData {
    /// The zero value and unit of the samples.
    pub origin: Option<Quantity>,
    /// Milliseconds between samples.
    pub interval: Option<Decimal>,
    /// The factor each sample is multiplied by before the origin is added.
    pub factor: Option<Decimal>,
    /// The lowest value the device can measure.
    pub lower_limit: Option<Decimal>,
    /// The highest value the device can measure.
    pub upper_limit: Option<Decimal>,
    /// How many sample points each time point has.
    pub dimensions: Option<Decimal>,
    /// The samples, space-separated (numbers, or the codes E, L and U).
    pub data: Option<String>,
}

/// A note, with who wrote it and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// The author, as a link.
    pub author: Option<Link>,
    /// The author, as a name only.
    pub author_name: Option<String>,
    /// When it was written, as source text.
    pub time: Option<String>,
    /// The note (markdown).
    pub text: Option<String>,
}

/// A document, inline (base64 text) or by location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Media type.
    pub content_type: Option<String>,
    /// Human language.
    pub language: Option<String>,
    /// The content, as base64 text.
    pub data: Option<String>,
    /// Where the content is.
    pub url: Option<String>,
    /// Size in bytes.
    pub size: Option<Decimal>,
    /// SHA-1 of the content, as base64 text.
    pub hash: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// When it was made, as source text.
    pub creation: Option<String>,
}

/// A range of values against which a result is read (normal, therapeutic, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRange {
    /// The low end.
    pub low: Option<Quantity>,
    /// The high end.
    pub high: Option<Quantity>,
    /// What the range means (normal, recommended, treatment, …).
    pub kind: Option<Concept>,
    /// The population it applies to.
    pub applies_to: Vec<Concept>,
    /// The age range it applies to.
    pub age: Option<Range>,
    /// The range as text.
    pub text: Option<String>,
}

/// One part of a compound statement (e.g. the systolic value of a blood pressure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What the part is.
    pub code: Option<Concept>,
    /// The result.
    pub value: Option<Content>,
    /// Why there is no result.
    pub data_absent_reason: Option<Concept>,
    /// Interpretation of the result.
    pub interpretations: Vec<Concept>,
    /// Ranges against which the result is read.
    pub reference_ranges: Vec<ReferenceRange>,
}

/// Someone who took part in an act, with their role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The role (e.g. administering or ordering provider).
    pub role: Option<Concept>,
    /// Who.
    pub actor: Option<Link>,
    /// The organisation they acted for.
    pub on_behalf_of: Option<Link>,
}

/// A dose given under a protocol (a vaccination series).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolDose {
    /// The series' name.
    pub series: Option<String>,
    /// Who published the protocol.
    pub authority: Option<Link>,
    /// The diseases it protects against.
    pub targets: Vec<Concept>,
    /// The dose's number in the series: [`Content::Integer`] or [`Content::Text`].
    pub dose_number: Option<Content>,
    /// The series' number of doses: [`Content::Integer`] or [`Content::Text`].
    pub series_doses: Option<Content>,
}

/// A patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Whether the record is in active use.
    pub active: Option<bool>,
    /// Business identifiers.
    pub identifiers: Vec<Identifier>,
    /// Names.
    pub names: Vec<Name>,
    /// Telecoms.
    pub telecoms: Vec<Telecom>,
    /// Administrative gender (male, female, other, unknown).
    pub gender: Option<String>,
    /// Birth date, as source text.
    pub birth_date: Option<String>,
    /// Deceased flag or date-time.
    pub deceased: Option<Deceased>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Marital status.
    pub marital_status: Option<Concept>,
    /// The person's general practitioners (parties).
    pub general_practitioners: Vec<Link>,
    /// The organisation that keeps the record.
    pub managing_organization: Option<Link>,
}

/// Whether, or when, a person died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deceased {
    /// A yes/no flag.
    Flag(bool),
    /// The date-time of death, as source text.
    At(String),
}

/// What kind of healthcare party an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartyKind {
    /// A person who provides care.
    Practitioner,
    /// An organisation.
    Organization,
}

/// A healthcare party: a practitioner or an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    /// Practitioner or organisation.
    pub kind: PartyKind,
    /// Whether the record is in active use.
    pub active: Option<bool>,
    /// Business identifiers.
    pub identifiers: Vec<Identifier>,
    /// Person names (practitioners).
    pub names: Vec<Name>,
    /// Organisation name.
    pub org_name: Option<String>,
    /// Alternative organisation names.
    pub aliases: Vec<String>,
    /// Kinds of organisation, or qualifications of a practitioner.
    pub specialties: Vec<Concept>,
    /// Telecoms.
    pub telecoms: Vec<Telecom>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Administrative gender of a practitioner.
    pub gender: Option<String>,
    /// Birth date of a practitioner, as source text.
    pub birth_date: Option<String>,
    /// The organisation this one is part of.
    pub part_of: Option<Link>,
}

/// An encounter or episode of care.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Status (planned, in-progress, finished, …).
    pub status: Option<String>,
    /// Classification (ambulatory, inpatient, …), as a code.
    pub class: Option<Code>,
    /// Specific types.
    pub types: Vec<Concept>,
    /// The patient.
    pub subject: Option<Link>,
    /// People who took part.
    pub participants: Vec<Link>,
    /// When it happened.
    pub period: Option<Period>,
    /// Coded reasons.
    pub reasons: Vec<Concept>,
    /// The organisation responsible.
    pub service_provider: Option<Link>,
    /// The larger contact this one is part of.
    pub part_of: Option<Link>,
}

/// One clinical statement: an observation, a measurement, a finding, a report, a procedure,
/// an immunization. Fields that a kind of statement has no use for stay empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Item tag: what kind of statement this is (`observation`, `diagnostic-report`,
    /// `procedure`, `immunization`, …).
    pub item: String,
    /// Status (registered, preliminary, final, amended, …).
    pub status: Option<String>,
    /// Categories.
    pub categories: Vec<Concept>,
    /// What was observed.
    pub code: Option<Concept>,
    /// The patient or other subject.
    pub subject: Option<Link>,
    /// The contact it was made during.
    pub contact: Option<Link>,
    /// When it applies.
    pub effective: Option<When>,
    /// When it was made available.
    pub issued: Option<String>,
    /// Who is responsible.
    pub performers: Vec<Link>,
    /// The result.
    pub value: Option<Content>,
    /// Why there is no result.
    pub data_absent_reason: Option<Concept>,
    /// Interpretation of the result.
    pub interpretations: Vec<Concept>,
    /// Parts of a compound statement.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Ranges against which the result is read.
    #[serde(default)]
    pub reference_ranges: Vec<ReferenceRange>,
    /// Body sites concerned.
    #[serde(default)]
    pub body_sites: Vec<Concept>,
    /// How it was done.
    #[serde(default)]
    pub method: Option<Concept>,
    /// How a product entered the body.
    #[serde(default)]
    pub route: Option<Concept>,
    /// Specimens used.
    #[serde(default)]
    pub specimens: Vec<Link>,
    /// The device used.
    #[serde(default)]
    pub device: Option<Link>,
    /// Statements this one groups (a panel's members).
    #[serde(default)]
    pub members: Vec<Link>,
    /// Records this one was derived from.
    #[serde(default)]
    pub derived_from: Vec<Link>,
    /// Requests or plans it fulfils.
    #[serde(default)]
    pub based_on: Vec<Link>,
    /// Larger acts it is part of.
    #[serde(default)]
    pub part_of: Vec<Link>,
    /// What it is about, where that is not the subject.
    #[serde(default)]
    pub focus: Vec<Link>,
    /// Notes.
    #[serde(default)]
    pub notes: Vec<Annotation>,
    /// Why the status is what it is (e.g. why it was not done).
    #[serde(default)]
    pub status_reason: Option<Concept>,
    /// Coded reasons.
    #[serde(default)]
    pub reasons: Vec<Concept>,
    /// Records that explain why (conditions, observations, …).
    #[serde(default)]
    pub reason_links: Vec<Link>,
    /// Who took part, with their roles (where the source records roles; `performers`
    /// holds plain links).
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// Who recorded it.
    #[serde(default)]
    pub recorder: Option<Link>,
    /// Who asserted it.
    #[serde(default)]
    pub asserter: Option<Link>,
    /// When it was recorded, as source text.
    #[serde(default)]
    pub recorded_at: Option<String>,
    /// Whether the record comes from whoever did the act (not from a later report).
    #[serde(default)]
    pub primary_source: Option<bool>,
    /// Where it happened.
    #[serde(default)]
    pub location: Option<Link>,
    /// Statements it reports (a report's results).
    #[serde(default)]
    pub results: Vec<Link>,
    /// Who interpreted the results.
    #[serde(default)]
    pub interpreters: Vec<Link>,
    /// Clinical conclusion, as text.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// Coded conclusions.
    #[serde(default)]
    pub conclusion_codes: Vec<Concept>,
    /// Documents presenting it (e.g. a report as PDF).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// The outcome.
    #[serde(default)]
    pub outcome: Option<Concept>,
    /// Complications.
    #[serde(default)]
    pub complications: Vec<Concept>,
    /// Follow-up instructions.
    #[serde(default)]
    pub follow_ups: Vec<Concept>,
    /// Who made the product given.
    #[serde(default)]
    pub manufacturer: Option<Link>,
    /// The product's lot number.
    #[serde(default)]
    pub lot_number: Option<String>,
    /// The product's expiry date, as source text.
    #[serde(default)]
    pub expiration_date: Option<String>,
    /// The amount given.
    #[serde(default)]
    pub dose_quantity: Option<Quantity>,
    /// Whether less was given than intended.
    #[serde(default)]
    pub subpotent: Option<bool>,
    /// Why less was given than intended.
    #[serde(default)]
    pub subpotent_reasons: Vec<Concept>,
    /// Doses given under a protocol (vaccination series).
    #[serde(default)]
    pub protocol_doses: Vec<ProtocolDose>,
}

/// A problem followed over time: a condition, a diagnosis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthElement {
    /// Clinical status (active, resolved, …).
    pub clinical_status: Option<Concept>,
    /// Verification status (confirmed, provisional, …).
    pub verification_status: Option<Concept>,
    /// Categories.
    pub categories: Vec<Concept>,
    /// Severity.
    pub severity: Option<Concept>,
    /// What the problem is.
    pub code: Option<Concept>,
    /// Body sites.
    pub body_sites: Vec<Concept>,
    /// The patient.
    pub subject: Option<Link>,
    /// The contact it was recorded during.
    pub contact: Option<Link>,
    /// When it began, as source text (a date-time) or a period.
    pub onset: Option<When>,
    /// When it ended.
    pub abatement: Option<When>,
    /// When it was recorded, as source text.
    pub recorded_date: Option<String>,
    /// Who recorded it.
    pub recorder: Option<Link>,
    /// Who asserted it.
    pub asserter: Option<Link>,
}

/// The typed content of an entity, by kind.
// Entities are built once per request and passed by reference; boxing variants would only
// add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A patient.
    Person(Person),
    /// A practitioner or organisation.
    Party(Party),
    /// An encounter.
    Contact(Contact),
    /// A clinical statement.
    Service(Service),
    /// A problem followed over time.
    HealthElement(HealthElement),
    /// A type with no mapping yet: everything is in the remainder.
    Generic,
}

impl Body {
    /// The entity kind's name, for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Body::Person(_) => "person",
            Body::Party(_) => "party",
            Body::Contact(_) => "contact",
            Body::Service(_) => "service",
            Body::HealthElement(_) => "health-element",
            Body::Generic => "generic",
        }
    }
}

/// What a source model carried that the entity has no field for, kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remainder {
    /// The source model, e.g. `fhir-r4`.
    pub model: String,
    /// The source content left over, as a JSON object.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Whether `data` alone is the whole source content. Set when the typed fields could not
    /// reproduce their source exactly; the typed fields then serve queries and other views,
    /// and `data` serves the round trip.
    pub complete: bool,
}

pub mod index;
pub mod query;
