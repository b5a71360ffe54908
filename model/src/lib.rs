//! The internal data model of fhirgate: plain data, no I/O, no FHIR.
//!
//! A small set of entity kinds carries every clinical record (after iCure): [`Person`]
//! (the patient), [`Party`] (a practitioner, an organisation, a role, a location or a care
//! team), [`Contact`] (an encounter or an episode of care),
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
}

/// A note about something, with who made it and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// Who made the note, as a link.
    pub author: Option<Link>,
    /// Who made the note, as text.
    pub author_text: Option<String>,
    /// When the note was made, as source text.
    pub time: Option<String>,
    /// The note itself.
    pub text: Option<String>,
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
    pub active: Option<bool>,
    /// Business identifiers.
    pub identifiers: Vec<Identifier>,
    /// Person names (practitioners).
    pub names: Vec<Name>,
    /// Name of an organisation, location or team.
    pub org_name: Option<String>,
    /// Alternative names of an organisation or location.
    pub aliases: Vec<String>,
    /// Kinds of organisation, qualifications of a practitioner, or specialties of a role.
    pub specialties: Vec<Concept>,
    /// Telecoms.
    pub telecoms: Vec<Telecom>,
    /// Addresses.
    pub addresses: Vec<Address>,
    /// Administrative gender of a practitioner.
    pub gender: Option<String>,
    /// Birth date of a practitioner, as source text.
    pub birth_date: Option<String>,
    /// The organisation or location this one is part of.
    pub part_of: Option<Link>,
    /// Status of a location (active, suspended, inactive) or team (proposed, active, …).
    #[serde(default)]
    pub status: Option<String>,
    /// When the party (a role, a team) is or was in effect.
    #[serde(default)]
    pub period: Option<Period>,
    /// The practitioner who performs a role.
    #[serde(default)]
    pub practitioner: Option<Link>,
    /// The organisation a role is performed for.
    #[serde(default)]
    pub organization: Option<Link>,
    /// The roles a practitioner performs (for a role).
    #[serde(default)]
    pub roles: Vec<Concept>,
    /// Kinds of location (the function performed there) or of team.
    #[serde(default)]
    pub categories: Vec<Concept>,
    /// Where a role is performed.
    #[serde(default)]
    pub locations: Vec<Link>,
    /// The healthcare services a role provides.
    #[serde(default)]
    pub services: Vec<Link>,
    /// When a role is available, or a location open, each week.
    #[serde(default)]
    pub available_times: Vec<AvailableTime>,
    /// Times a role is not available.
    #[serde(default)]
    pub not_available: Vec<NotAvailable>,
    /// Exceptions to the available times, as text.
    #[serde(default)]
    pub availability_exceptions: Option<String>,
    /// Operational status of a location (housekeeping, contaminated, …).
    #[serde(default)]
    pub operational_status: Option<Code>,
    /// Description of a location.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a location is one instance or a kind of place (instance, kind).
    #[serde(default)]
    pub mode: Option<String>,
    /// Physical form of a location (building, wing, room, vehicle, …).
    #[serde(default)]
    pub physical_type: Option<Concept>,
    /// Geographic position of a location.
    #[serde(default)]
    pub position: Option<Position>,
    /// The organisations responsible for a location or team.
    #[serde(default)]
    pub managing_organizations: Vec<Link>,
    /// The patient (or group) a team cares for.
    #[serde(default)]
    pub subject: Option<Link>,
    /// The contact a team was formed for.
    #[serde(default)]
    pub contact: Option<Link>,
    /// Members of a team.
    #[serde(default)]
    pub members: Vec<TeamMember>,
    /// Coded reasons a team exists.
    #[serde(default)]
    pub reasons: Vec<Concept>,
    /// Conditions a team cares for.
    #[serde(default)]
    pub reason_conditions: Vec<Link>,
    /// Technical endpoints to reach the party's services.
    #[serde(default)]
    pub endpoints: Vec<Link>,
    /// Notes.
    #[serde(default)]
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
    pub days_of_week: Vec<String>,
    /// Whether it lasts all day.
    pub all_day: Option<bool>,
    /// Time of day it starts, as source text.
    pub start: Option<String>,
    /// Time of day it ends, as source text.
    pub end: Option<String>,
}

/// A span of time a party is not available, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAvailable {
    /// Why, as text.
    pub description: Option<String>,
    /// When.
    pub during: Option<Period>,
}

/// A geographic position (WGS84), each coordinate as decimal source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Longitude.
    pub longitude: Option<Decimal>,
    /// Latitude.
    pub latitude: Option<Decimal>,
    /// Altitude.
    pub altitude: Option<Decimal>,
}

/// A member of a care team: who, in which roles, for whom, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// The roles the member has in the team.
    pub roles: Vec<Concept>,
    /// The member (a practitioner, a role, a related person, a patient, an organisation or
    /// a team).
    pub member: Option<Link>,
    /// The organisation a practitioner member acts for.
    pub on_behalf_of: Option<Link>,
    /// When the member belongs to the team.
    pub period: Option<Period>,
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
    /// Business identifiers.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// The statuses the contact has had, with when.
    #[serde(default)]
    pub status_history: Vec<StatusPeriod>,
    /// The conditions the contact is about.
    #[serde(default)]
    pub diagnoses: Vec<ContactDiagnosis>,
    /// Referrals that led to the contact.
    #[serde(default)]
    pub referrals: Vec<Link>,
    /// The practitioner who coordinates the care.
    #[serde(default)]
    pub care_manager: Option<Link>,
    /// Care teams that take part.
    #[serde(default)]
    pub teams: Vec<Link>,
    /// Accounts the contact is billed to.
    #[serde(default)]
    pub accounts: Vec<Link>,
}

/// A status held over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPeriod {
    /// The status.
    pub status: Option<String>,
    /// When it held.
    pub period: Option<Period>,
}

/// A condition a contact is about, with its role and rank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactDiagnosis {
    /// The condition.
    pub condition: Option<Link>,
    /// Its role (admission, discharge, chief complaint, …).
    pub role: Option<Concept>,
    /// Its rank among the contact's diagnoses, as source text.
    pub rank: Option<Decimal>,
}

/// One clinical statement: an observation, a measurement, a finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Item tag: what kind of statement this is (`observation`, …).
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
}

/// A problem followed over time: a condition, a diagnosis, an allergy or intolerance.
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
    /// Business identifiers.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// For an allergy or intolerance: which of the two it is (allergy, intolerance).
    #[serde(default)]
    pub kind: Option<String>,
    /// Categories as plain codes (for an allergy: food, medication, environment, biologic).
    #[serde(default)]
    pub category_codes: Vec<String>,
    /// Potential harm of a future reaction (low, high, unable-to-assess).
    #[serde(default)]
    pub criticality: Option<String>,
    /// When it last occurred, as source text.
    #[serde(default)]
    pub last_occurrence: Option<String>,
    /// Notes.
    #[serde(default)]
    pub notes: Vec<Annotation>,
    /// Reactions seen (for an allergy or intolerance).
    #[serde(default)]
    pub reactions: Vec<Reaction>,
}

/// One adverse reaction of an allergy or intolerance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The substance that caused it.
    pub substance: Option<Concept>,
    /// What was seen (signs and symptoms).
    pub manifestations: Vec<Concept>,
    /// Description, as text.
    pub description: Option<String>,
    /// When it began, as source text.
    pub onset: Option<String>,
    /// Severity (mild, moderate, severe).
    pub severity: Option<String>,
    /// How the subject was exposed to the substance.
    pub exposure_route: Option<Concept>,
    /// Notes.
    pub notes: Vec<Annotation>,
}

/// The typed content of an entity, by kind.
// Entities are built once per request and passed by reference; boxing variants would only
// add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A patient.
    Person(Person),
    /// A practitioner, organisation, role, location or care team.
    Party(Party),
    /// An encounter or episode of care.
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
