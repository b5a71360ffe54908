//! The internal data model of fhirgate: plain data, no I/O, no FHIR.
//!
//! A small set of entity kinds carries every clinical record (after iCure): [`Person`]
//! (the patient), [`Party`] (a practitioner, an organisation, a role, a location or a care
//! team), [`Contact`] (an encounter or an episode of care), [`Service`] (one clinical
//! statement: an observation, a report, a procedure, an immunization, a medication statement,
//! a request or referral), [`HealthElement`] (a problem or an allergy followed over time),
//! [`Document`] (a document or its index entry), [`Consent`] and [`Provenance`]. Whatever a source model carries that an entity has no field
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Codes describing the entity (for a service: what was observed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Code>,
    /// Tags (labels that do not change meaning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The code system's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The code itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable text of the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A concept given as zero or more codes and an optional text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concept {
    /// The codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Code>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A link to another entity, by source type and id, or to something outside the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Target type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// Target id within the store, if the link is to a stored entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// The raw reference text (may be an absolute URL or a fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A business identifier of the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Text for the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A business identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// Usage (official, usual, temp, secondary, old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// The kind of identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Concept>,
    /// The namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the identifier was valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Who issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigner: Option<Box<Link>>,
}

/// A time span; either end may be open. Kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Start, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A person's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// Usage (usual, official, nickname, maiden …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// The full text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    /// Parts before the name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix: Vec<String>,
    /// Parts after the name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suffix: Vec<String>,
    /// When the name was in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Usage (home, work, temp, old, billing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// Kind (postal, physical, both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The full text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Street lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// District.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// When the address was in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// A phone number, e-mail address or other telecom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telecom {
    /// Channel (phone, fax, email, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The address on that channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Usage (home, work, mobile, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// Preference order, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Decimal>,
    /// When it was in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// A decimal number kept as its exact source text (`1.50` stays `1.50`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decimal(pub String);

/// A measured amount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Decimal>,
    /// How to read the value (`<`, `<=`, `>=`, `>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
    /// Unit text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Unit system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Coded unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A file or document content, inline (base64 text) or by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Media type of the content (`application/pdf`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Human language of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The content itself, as base64 source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Where the content can be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size of the content in bytes, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Decimal>,
    /// Hash (SHA-1) of the content, as base64 source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// A label or title for the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When the content was first created, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation: Option<String>,
}

/// Human-readable text kept with a record or a part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Narrative {
    /// How the text was made (generated, extensions, additional, empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The text as an XHTML `div`, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub div: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Quantity>,
    /// The high end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Quantity>,
}

/// A ratio of two quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    /// The numerator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerator: Option<Quantity>,
    /// The denominator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<Quantity>,
}

/// A series of samples taken at a regular interval (e.g. an ECG lead), kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledData {
    /// The zero value and unit of the samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Quantity>,
    /// Milliseconds between samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Decimal>,
    /// The factor each sample is multiplied by before the origin is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<Decimal>,
    /// The lowest value the device can measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_limit: Option<Decimal>,
    /// The highest value the device can measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_limit: Option<Decimal>,
    /// How many sample points each time point has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Decimal>,
    /// The samples, space-separated (numbers, or the codes E, L and U).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// A range of values against which a result is read (normal, therapeutic, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRange {
    /// The low end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Quantity>,
    /// The high end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Quantity>,
    /// What the range means (normal, recommended, treatment, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Concept>,
    /// The population it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies_to: Vec<Concept>,
    /// The age range it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<Range>,
    /// The range as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One part of a compound statement (e.g. the systolic value of a blood pressure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// What the part is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
    /// The result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Content>,
    /// Why there is no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_absent_reason: Option<Concept>,
    /// Interpretation of the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpretations: Vec<Concept>,
    /// Ranges against which the result is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_ranges: Vec<ReferenceRange>,
}

/// Someone who took part in an act, with their role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The role (e.g. administering or ordering provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Concept>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Link>,
    /// The organisation they acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Link>,
}

/// A dose given under a protocol (a vaccination series).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolDose {
    /// The series' name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Who published the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<Link>,
    /// The diseases it protects against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Concept>,
    /// The dose's number in the series: [`Content::Integer`] or [`Content::Text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose_number: Option<Content>,
    /// The series' number of doses: [`Content::Integer`] or [`Content::Text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_doses: Option<Content>,
}

/// A patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Whether the record is in active use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Name>,
    /// Telecoms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecoms: Vec<Telecom>,
    /// Administrative gender (male, female, other, unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Birth date, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Deceased flag or date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deceased: Option<Deceased>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Marital status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marital_status: Option<Concept>,
    /// The person's general practitioners (parties).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub general_practitioners: Vec<Link>,
    /// The organisation that keeps the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// The roles a practitioner performs for an organisation.
    Role,
    /// A place where care is given (a building, a ward, a room, a vehicle).
    Location,
    /// People and organisations who take part in the care of a patient.
    Team,
}

/// A healthcare party: a practitioner, an organisation, a practitioner's role, a location or
/// a care team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    /// Which kind of party this is.
    pub kind: PartyKind,
    /// Whether the record is in active use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Person names (practitioners).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Name>,
    /// Name of an organisation, location or team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    /// Alternative names of an organisation or location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Kinds of organisation, qualifications of a practitioner, or specialties of a role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specialties: Vec<Concept>,
    /// Telecoms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecoms: Vec<Telecom>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Administrative gender of a practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Birth date of a practitioner, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// The organisation or location this one is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<Link>,
    /// Status of a location (active, suspended, inactive) or team (proposed, active, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When the party (a role, a team) is or was in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The practitioner who performs a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<Link>,
    /// The organisation a role is performed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Link>,
    /// The roles a practitioner performs (for a role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Concept>,
    /// Kinds of location (the function performed there) or of team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Concept>,
    /// Where a role is performed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Link>,
    /// The healthcare services a role provides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Link>,
    /// When a role is available, or a location open, each week.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_times: Vec<AvailableTime>,
    /// Times a role is not available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_available: Vec<NotAvailable>,
    /// Exceptions to the available times, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_exceptions: Option<String>,
    /// Operational status of a location (housekeeping, contaminated, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operational_status: Option<Code>,
    /// Description of a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a location is one instance or a kind of place (instance, kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Physical form of a location (building, wing, room, vehicle, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_type: Option<Concept>,
    /// Geographic position of a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The organisations responsible for a location or team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managing_organizations: Vec<Link>,
    /// The patient (or group) a team cares for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Link>,
    /// The contact a team was formed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Link>,
    /// Members of a team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<TeamMember>,
    /// Coded reasons a team exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Concept>,
    /// Conditions a team cares for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_conditions: Vec<Link>,
    /// Technical endpoints to reach the party's services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Link>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Annotation>,
}

impl Party {
    /// A party of the given kind with every field empty.
    pub fn new(kind: PartyKind) -> Party {
        Party {
            kind,
            active: None,
            identifiers: Vec::new(),
            names: Vec::new(),
            org_name: None,
            aliases: Vec::new(),
            specialties: Vec::new(),
            telecoms: Vec::new(),
            addresses: Vec::new(),
            gender: None,
            birth_date: None,
            part_of: None,
            status: None,
            period: None,
            practitioner: None,
            organization: None,
            roles: Vec::new(),
            categories: Vec::new(),
            locations: Vec::new(),
            services: Vec::new(),
            available_times: Vec::new(),
            not_available: Vec::new(),
            availability_exceptions: None,
            operational_status: None,
            description: None,
            mode: None,
            physical_type: None,
            position: None,
            managing_organizations: Vec::new(),
            subject: None,
            contact: None,
            members: Vec::new(),
            reasons: Vec::new(),
            reason_conditions: Vec::new(),
            endpoints: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// A weekly recurring time: on which days, all day or from a time of day to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableTime {
    /// Days of the week (mon, tue, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<String>,
    /// Whether it lasts all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_day: Option<bool>,
    /// Time of day it starts, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Time of day it ends, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A span of time a party is not available, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAvailable {
    /// Why, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<Period>,
}

/// A geographic position (WGS84), each coordinate as decimal source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<Decimal>,
    /// Latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<Decimal>,
    /// Altitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<Decimal>,
}

/// A member of a care team: who, in which roles, for whom, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// The roles the member has in the team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Concept>,
    /// The member (a practitioner, a role, a related person, a patient, an organisation or
    /// a team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Link>,
    /// The organisation a practitioner member acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Link>,
    /// When the member belongs to the team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// An encounter or episode of care.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Status (planned, in-progress, finished, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Classification (ambulatory, inpatient, …), as a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<Code>,
    /// Specific types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<Concept>,
    /// The patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Link>,
    /// People who took part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Link>,
    /// When it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Coded reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Concept>,
    /// The organisation responsible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider: Option<Link>,
    /// The larger contact this one is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<Link>,
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// The statuses the contact has had, with when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_history: Vec<StatusPeriod>,
    /// The conditions the contact is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<ContactDiagnosis>,
    /// Referrals that led to the contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrals: Vec<Link>,
    /// The practitioner who coordinates the care.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_manager: Option<Link>,
    /// Care teams that take part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<Link>,
    /// Accounts the contact is billed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Link>,
}

/// A status held over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPeriod {
    /// The status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// A condition a contact is about, with its role and rank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDiagnosis {
    /// The condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Link>,
    /// Its role (admission, discharge, chief complaint, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Concept>,
    /// Its rank among the contact's diagnoses, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<Decimal>,
}

/// One clinical statement: an observation, a measurement, a finding, a report, a procedure,
/// an immunization, a statement that a medicine is taken, or a request (for a medicine or
/// a service, a referral). Fields that a kind of statement has no use for stay empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Item tag: what kind of statement this is (`observation`, `diagnostic-report`,
    /// `procedure`, `immunization`, …).
    pub item: String,
    /// Status (registered, preliminary, final, amended, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Concept>,
    /// What was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
    /// The patient or other subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Link>,
    /// The contact it was made during.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Link>,
    /// When it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<When>,
    /// When it was made available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    /// Who is responsible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performers: Vec<Link>,
    /// The result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Content>,
    /// Why there is no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_absent_reason: Option<Concept>,
    /// Interpretation of the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpretations: Vec<Concept>,
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Parts of a compound statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// Ranges against which the result is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_ranges: Vec<ReferenceRange>,
    /// Body sites concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_sites: Vec<Concept>,
    /// How it was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Concept>,
    /// How a product entered the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Concept>,
    /// Specimens used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specimens: Vec<Link>,
    /// The device used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Link>,
    /// Statements this one groups (a panel's members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Link>,
    /// Records this one was derived from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<Link>,
    /// Requests or plans it fulfils.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub based_on: Vec<Link>,
    /// Larger acts it is part of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_of: Vec<Link>,
    /// What it is about, where that is not the subject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub focus: Vec<Link>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Annotation>,
    /// Why the status is what it is (e.g. why it was not done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<Concept>,
    /// Coded reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Concept>,
    /// Records that justify it (conditions, observations …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_links: Vec<Link>,
    /// Who entered it into the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<Link>,
    /// For a request: proposal, plan, order, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// For a request: how urgent (routine, urgent, asap, stat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// For a request: true when it asks that the thing NOT be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_perform: Option<bool>,
    /// For a request: who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Link>,
    /// For a request: when it was written, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authored: Option<String>,
    /// Whether it was reported by someone else than its author, or by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Reported>,
    /// The medicine taken or asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medication: Option<Medication>,
    /// How a medicine is (to be) taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dosages: Vec<Dosage>,
    /// When the statement was asserted, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserted: Option<String>,
    /// Who gave the information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information_source: Option<Link>,
    /// The kind of performer asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performer_type: Option<Concept>,
    /// The identifier shared by requests made together (a requisition or group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requisition: Option<Identifier>,
    /// The pattern of a medication's use (continuous, acute, seasonal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_of_therapy: Option<Concept>,
    /// How a medicine is to be dispensed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispense: Option<DispenseRequest>,
    /// Whether another medicine may be given instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitution: Option<Substitution>,
    /// The earlier requests this one replaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<Link>,
    /// Other records that support it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supporting_info: Vec<Link>,
    /// Details of what is asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_details: Vec<Concept>,
    /// How much is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Amount>,
    /// A repeating schedule of when it happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Timing>,
    /// Whether it is done only as needed, or for what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_needed: Option<Answer>,
    /// Coded places where it should happen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub location_codes: Vec<Concept>,
    /// Places where it should happen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Link>,
    /// Instructions for the patient, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_instruction: Option<String>,
    /// Who took part, with their roles (where the source records roles; `performers`
    /// holds plain links).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
    /// Who asserted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserter: Option<Link>,
    /// When it was recorded, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// Whether the record comes from whoever did the act (not from a later report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_source: Option<bool>,
    /// Where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Link>,
    /// Statements it reports (a report's results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<Link>,
    /// Who interpreted the results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpreters: Vec<Link>,
    /// Clinical conclusion, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// Coded conclusions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conclusion_codes: Vec<Concept>,
    /// Documents presenting it (e.g. a report as PDF).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Concept>,
    /// Complications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub complications: Vec<Concept>,
    /// Follow-up instructions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<Concept>,
    /// Who made the product given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<Link>,
    /// The product's lot number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<String>,
    /// The product's expiry date, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// The amount given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose_quantity: Option<Quantity>,
    /// Whether less was given than intended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpotent: Option<bool>,
    /// Why less was given than intended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subpotent_reasons: Vec<Concept>,
    /// Doses given under a protocol (vaccination series).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol_doses: Vec<ProtocolDose>,
}

/// A comment, with who made it and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// The author, as a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Link>,
    /// The author, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_text: Option<String>,
    /// When it was made, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An amount: a quantity, a range or a ratio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Amount {
    /// One quantity.
    Quantity(Quantity),
    /// A range.
    Range(Range),
    /// A ratio.
    Ratio(Ratio),
}

/// A yes/no answer, or a coded one that stands for yes with a qualification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Yes or no.
    Flag(bool),
    /// Yes, qualified by a concept (e.g. "as needed for fever").
    Coded(Concept),
}

/// Whether a request was reported rather than recorded first-hand, or who reported it.
// Held inline like `Option<Link>` fields are: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reported {
    /// Reported (true) or first-hand (false).
    Flag(bool),
    /// Reported by this source.
    By(Link),
}

/// A medicine: a code, or a link to a medication record.
// Held inline like `Option<Link>` fields are: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Medication {
    /// Given by code.
    Coded(Concept),
    /// Given by a link to a medication record.
    Linked(Link),
}

impl Medication {
    /// The medicine's concept, when given by code.
    pub fn concept(&self) -> Option<&Concept> {
        match self {
            Medication::Coded(c) => Some(c),
            Medication::Linked(_) => None,
        }
    }
}

/// How a medicine is or should be taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dosage {
    /// Order among the dosages, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Decimal>,
    /// The instruction, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Extra coded instructions (e.g. "with food").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_instructions: Vec<Concept>,
    /// Instructions for the patient, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_instruction: Option<String>,
    /// When it is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// Whether it is taken only as needed, or for what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_needed: Option<Answer>,
    /// Body site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Concept>,
    /// Route into the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Concept>,
    /// Technique of administration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Concept>,
    /// Amounts and rates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doses: Vec<DoseAndRate>,
    /// Upper limit over a period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_period: Option<Ratio>,
    /// Upper limit per administration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_administration: Option<Quantity>,
    /// Upper limit over the patient's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_lifetime: Option<Quantity>,
}

/// An amount of medicine and the rate at which it is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseAndRate {
    /// The kind of dose or rate (ordered, calculated, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Concept>,
    /// The dose: a quantity or a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<Amount>,
    /// The rate: a quantity, a range or a ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Amount>,
}

/// When something happens: given moments, a repeating pattern, or a code for one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Given moments, as source text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// A repeating pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// A code for the pattern (e.g. BID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
}

/// A repeating pattern. Numbers are kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    /// How long the pattern lasts, or its span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Bounds>,
    /// How many times in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Decimal>,
    /// Upper number of times in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_max: Option<Decimal>,
    /// How long each time lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Decimal>,
    /// Upper length of each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_max: Option<Decimal>,
    /// Unit of `duration` (s, min, h, d, wk, mo, a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_unit: Option<String>,
    /// How many times per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<Decimal>,
    /// Upper number of times per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_max: Option<Decimal>,
    /// The period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Decimal>,
    /// Upper length of the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_max: Option<Decimal>,
    /// Unit of `period` (s, min, h, d, wk, mo, a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_unit: Option<String>,
    /// Days of the week (mon … sun).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<String>,
    /// Times of day, as source text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times_of_day: Vec<String>,
    /// Moments of daily life it is tied to (e.g. before breakfast).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<String>,
    /// Minutes from those moments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Decimal>,
}

/// The bounds of a repeating pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bounds {
    /// A length of time.
    Duration(Quantity),
    /// A range of lengths.
    Range(Range),
    /// A span of dates.
    Period(Period),
}

/// How a medicine is to be dispensed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispenseRequest {
    /// Amount of the first fill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_quantity: Option<Quantity>,
    /// Length of time the first fill lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_duration: Option<Quantity>,
    /// Least time between fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Quantity>,
    /// When the request may be dispensed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<Period>,
    /// Number of refills allowed, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats_allowed: Option<Decimal>,
    /// Amount per fill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    /// Length of time a fill lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply_duration: Option<Quantity>,
    /// Who is to dispense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispenser: Option<Link>,
}

/// Whether another medicine may be given instead, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitution {
    /// Whether (or what kind of) substitution is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Answer>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Concept>,
}

/// A problem followed over time: a condition, a diagnosis, an allergy or intolerance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthElement {
    /// Clinical status (active, resolved, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_status: Option<Concept>,
    /// Verification status (confirmed, provisional, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_status: Option<Concept>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Concept>,
    /// Severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Concept>,
    /// What the problem is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
    /// Body sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_sites: Vec<Concept>,
    /// The patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Link>,
    /// The contact it was recorded during.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Link>,
    /// When it began, as source text (a date-time) or a period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<When>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abatement: Option<When>,
    /// When it was recorded, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_date: Option<String>,
    /// Who recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<Link>,
    /// Who asserted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserter: Option<Link>,
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// For an allergy or intolerance: which of the two it is (allergy, intolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Categories as plain codes (for an allergy: food, medication, environment, biologic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category_codes: Vec<String>,
    /// Potential harm of a future reaction (low, high, unable-to-assess).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criticality: Option<String>,
    /// When it last occurred, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_occurrence: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Annotation>,
    /// Reactions seen (for an allergy or intolerance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// One adverse reaction of an allergy or intolerance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The substance that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substance: Option<Concept>,
    /// What was seen (signs and symptoms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifestations: Vec<Concept>,
    /// Description, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it began, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<String>,
    /// Severity (mild, moderate, severe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// How the subject was exposed to the substance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_route: Option<Concept>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Annotation>,
}

/// Which kind of document record a [`Document`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocumentKind {
    /// A record that points at a document's content (attached or by address) and indexes it.
    #[default]
    Reference,
    /// A document composed of titled sections that refer to other records.
    Composition,
}

/// A clinical document: a letter, a report, a summary, or the index entry of a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Whether this is a pointer to the content or a composition of sections.
    pub kind: DocumentKind,
    /// The identifier of the document itself, stable across versions of this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_identifier: Option<Identifier>,
    /// Other business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Status of the record (current, superseded, preliminary, final, amended, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Status of the underlying document (preliminary, final, amended, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_status: Option<String>,
    /// What kind of document it is (a note type, a report type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_type: Option<Concept>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Concept>,
    /// The patient or other subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Link>,
    /// The contacts the document belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Link>,
    /// When the record was made or last edited, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<Link>,
    /// Its title, or a description in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Confidentiality code of the whole document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidentiality: Option<String>,
    /// Security labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_labels: Vec<Concept>,
    /// Who attested or authenticated it, how and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attesters: Vec<Attestation>,
    /// The organisation that keeps the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<Link>,
    /// Relations to other documents (replaces, appends, transforms, signs …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<DocumentRelation>,
    /// The content, as attachments with their formats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<DocumentContent>,
    /// The clinical context of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<DocumentContext>,
    /// The clinical services documented (a composition's events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<DocumentEvent>,
    /// The sections of a composition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
}

/// Someone's attestation of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// How they attested (personal, professional, legal, official); none for an
    /// authentication given without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// When, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<Link>,
}

/// A relation of a document to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRelation {
    /// The kind of relation (replaces, transforms, signs, appends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The other document, as a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Link>,
    /// The other document, by business identifier only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_identifier: Option<Identifier>,
}

/// One rendition of a document's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContent {
    /// The content or where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// The format or profile the content follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Code>,
}

/// The clinical context of a document's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContext {
    /// The main clinical acts documented.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Concept>,
    /// When the documented care took place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The kind of facility where the patient was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility_type: Option<Concept>,
    /// The clinical specialty of the setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practice_setting: Option<Concept>,
    /// The patient as known at the document's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_patient: Option<Link>,
    /// Related records and identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Link>,
}

/// A clinical service documented by a composition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEvent {
    /// What was documented.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Concept>,
    /// When it took place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The records of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Link>,
}

/// A section of a composition; sections nest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the section holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Concept>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<Link>,
    /// Who or what it is about, when not the document's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<Link>,
    /// Its text for a human reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Narrative>,
    /// How its entries were chosen (working, snapshot, changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The order of its entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_by: Option<Concept>,
    /// The records it refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Link>,
    /// Why it is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_reason: Option<Concept>,
    /// Nested sections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<Section>,
}

/// A person's consent: choices about their care or their data, and the policies they keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    /// Business identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Status (draft, proposed, active, rejected, inactive, entered-in-error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What it is about (privacy, research, treatment, advance directive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Concept>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Concept>,
    /// The patient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Link>,
    /// When it was given or recorded, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// Who agrees to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performers: Vec<Link>,
    /// The organisations that hold it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<Link>,
    /// The source document: the signed form or a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConsentSource>,
    /// The policies it refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    /// The regulation or policy it follows, as a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<Concept>,
    /// Verifications of the consent with the patient or a proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifications: Vec<Verification>,
    /// The rules it sets, permit or deny with exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision: Option<Provision>,
}

/// Where a consent is written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentSource {
    /// A scanned or signed document.
    Attachment(Attachment),
    /// Another record.
    Link(Link),
}

/// A policy a consent refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The authority that enforces it, as a URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// The policy itself, as a URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// A verification of a consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether it was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// With whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_with: Option<Link>,
    /// When, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
}

/// A rule of a consent: a permit or a deny, narrowed by actors, actions, data and time,
/// with nested exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    /// permit or deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// When the rule applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Who the rule is about, in which role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<ProvisionActor>,
    /// The actions it covers (access, collect, use, disclose, correct).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Concept>,
    /// Security labels of the data it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_labels: Vec<Code>,
    /// Purposes of use it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<Code>,
    /// Kinds of records it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Code>,
    /// Codes of the records it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Concept>,
    /// When the covered data was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_period: Option<Period>,
    /// The particular records it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ProvisionData>,
    /// Nested rules (exceptions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provisions: Vec<Provision>,
}

/// Someone a consent rule is about, in a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionActor {
    /// The role (the recipient, the custodian, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Concept>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<Link>,
}

/// A record a consent rule covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionData {
    /// How the record is meant (instance, related, dependents, authoredby).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
    /// The record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Link>,
}

/// Where records came from: who did what to which, when and why, and who signed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The records this is the provenance of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Link>,
    /// When the activity took place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred: Option<When>,
    /// When it was recorded, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// The policies followed, as URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Where the activity took place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Link>,
    /// Why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Concept>,
    /// What was done (create, update, authenticate, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Concept>,
    /// Who took part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<Agent>,
    /// What was used or produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<ProvenanceEntity>,
    /// Signatures over the targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<Signature>,
}

/// Someone who took part in an activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// How they took part (author, verifier, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Concept>,
    /// Their roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Concept>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Link>,
    /// On whose behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Link>,
}

/// A record used or produced by an activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceEntity {
    /// How it was used (derivation, revision, quotation, source, removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<Link>,
    /// Who took part in making it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<Agent>,
}

/// A digital or written signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// What the signature means (author, verification, witness, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Code>,
    /// When it was signed, as source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    /// Who signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Link>,
    /// On whose behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Link>,
    /// Media type of the signed content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_format: Option<String>,
    /// Media type of the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_format: Option<String>,
    /// The signature, as base64 source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// The typed content of an entity, by kind. Each kind is boxed: a service carries many
/// optional fields (kilobytes inline), and entities are held across awaits and moved
/// between tasks, where their size would be copied and kept on every stack frame. The
/// stored encoding is the same as unboxed (serde sees through a box).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A patient.
    Person(Box<Person>),
    /// A practitioner, organisation, role, location or care team.
    Party(Box<Party>),
    /// An encounter or episode of care.
    Contact(Box<Contact>),
    /// A clinical statement.
    Service(Box<Service>),
    /// A problem followed over time.
    HealthElement(Box<HealthElement>),
    /// A type with no mapping yet: everything is in the remainder.
    Generic,
    /// A clinical document or the index entry of one.
    Document(Box<Document>),
    /// A consent.
    Consent(Box<Consent>),
    /// The provenance of records.
    Provenance(Box<Provenance>),
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
            Body::Document(_) => "document",
            Body::Consent(_) => "consent",
            Body::Provenance(_) => "provenance",
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
