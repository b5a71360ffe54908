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

/// A file or document content, inline (base64 text) or by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Media type of the content (`application/pdf`, …).
    pub content_type: Option<String>,
    /// Human language of the content.
    pub language: Option<String>,
    /// The content itself, as base64 source text.
    pub data: Option<String>,
    /// Where the content can be fetched.
    pub url: Option<String>,
    /// Size of the content in bytes, as source text.
    pub size: Option<Decimal>,
    /// Hash (SHA-1) of the content, as base64 source text.
    pub hash: Option<String>,
    /// A label or title for the content.
    pub title: Option<String>,
    /// When the content was first created, as source text.
    pub creation: Option<String>,
}

/// Human-readable text kept with a record or a part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Narrative {
    /// How the text was made (generated, extensions, additional, empty).
    pub status: Option<String>,
    /// The text as an XHTML `div`, verbatim.
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

/// One clinical statement: an observation, a measurement, a finding, a report, a procedure,
/// an immunization, a statement that a medicine is taken, or a request (for a medicine or
/// a service, a referral). Fields that a kind of statement has no use for stay empty.
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
    /// Business identifiers.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
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
    /// Records that justify it (conditions, observations …).
    #[serde(default)]
    pub reason_links: Vec<Link>,
    /// Who entered it into the record.
    #[serde(default)]
    pub recorder: Option<Link>,
    /// For a request: proposal, plan, order, …
    #[serde(default)]
    pub intent: Option<String>,
    /// For a request: how urgent (routine, urgent, asap, stat).
    #[serde(default)]
    pub priority: Option<String>,
    /// For a request: true when it asks that the thing NOT be done.
    #[serde(default)]
    pub do_not_perform: Option<bool>,
    /// For a request: who asked for it.
    #[serde(default)]
    pub requester: Option<Link>,
    /// For a request: when it was written, as source text.
    #[serde(default)]
    pub authored: Option<String>,
    /// Whether it was reported by someone else than its author, or by whom.
    #[serde(default)]
    pub reported: Option<Reported>,
    /// The medicine taken or asked for.
    #[serde(default)]
    pub medication: Option<Medication>,
    /// How a medicine is (to be) taken.
    #[serde(default)]
    pub dosages: Vec<Dosage>,
    /// When the statement was asserted, as source text.
    #[serde(default)]
    pub asserted: Option<String>,
    /// Who gave the information.
    #[serde(default)]
    pub information_source: Option<Link>,
    /// The kind of performer asked for.
    #[serde(default)]
    pub performer_type: Option<Concept>,
    /// The identifier shared by requests made together (a requisition or group).
    #[serde(default)]
    pub requisition: Option<Identifier>,
    /// The pattern of a medication's use (continuous, acute, seasonal).
    #[serde(default)]
    pub course_of_therapy: Option<Concept>,
    /// How a medicine is to be dispensed.
    #[serde(default)]
    pub dispense: Option<DispenseRequest>,
    /// Whether another medicine may be given instead.
    #[serde(default)]
    pub substitution: Option<Substitution>,
    /// The earlier requests this one replaces.
    #[serde(default)]
    pub replaces: Vec<Link>,
    /// Other records that support it.
    #[serde(default)]
    pub supporting_info: Vec<Link>,
    /// Details of what is asked for.
    #[serde(default)]
    pub order_details: Vec<Concept>,
    /// How much is asked for.
    #[serde(default)]
    pub quantity: Option<Amount>,
    /// A repeating schedule of when it happens.
    #[serde(default)]
    pub schedule: Option<Timing>,
    /// Whether it is done only as needed, or for what.
    #[serde(default)]
    pub as_needed: Option<Answer>,
    /// Coded places where it should happen.
    #[serde(default)]
    pub location_codes: Vec<Concept>,
    /// Places where it should happen.
    #[serde(default)]
    pub locations: Vec<Link>,
    /// Instructions for the patient, in words.
    #[serde(default)]
    pub patient_instruction: Option<String>,
    /// Who took part, with their roles (where the source records roles; `performers`
    /// holds plain links).
    #[serde(default)]
    pub participants: Vec<Participant>,
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

/// A comment, with who made it and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// The author, as a link.
    pub author: Option<Link>,
    /// The author, as text.
    pub author_text: Option<String>,
    /// When it was made, as source text.
    pub time: Option<String>,
    /// The comment.
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
    pub sequence: Option<Decimal>,
    /// The instruction, in words.
    pub text: Option<String>,
    /// Extra coded instructions (e.g. "with food").
    pub additional_instructions: Vec<Concept>,
    /// Instructions for the patient, in words.
    pub patient_instruction: Option<String>,
    /// When it is taken.
    pub timing: Option<Timing>,
    /// Whether it is taken only as needed, or for what.
    pub as_needed: Option<Answer>,
    /// Body site.
    pub site: Option<Concept>,
    /// Route into the body.
    pub route: Option<Concept>,
    /// Technique of administration.
    pub method: Option<Concept>,
    /// Amounts and rates.
    pub doses: Vec<DoseAndRate>,
    /// Upper limit over a period.
    pub max_per_period: Option<Ratio>,
    /// Upper limit per administration.
    pub max_per_administration: Option<Quantity>,
    /// Upper limit over the patient's lifetime.
    pub max_per_lifetime: Option<Quantity>,
}

/// An amount of medicine and the rate at which it is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseAndRate {
    /// The kind of dose or rate (ordered, calculated, …).
    pub kind: Option<Concept>,
    /// The dose: a quantity or a range.
    pub dose: Option<Amount>,
    /// The rate: a quantity, a range or a ratio.
    pub rate: Option<Amount>,
}

/// When something happens: given moments, a repeating pattern, or a code for one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Given moments, as source text.
    pub events: Vec<String>,
    /// A repeating pattern.
    pub repeat: Option<Repeat>,
    /// A code for the pattern (e.g. BID).
    pub code: Option<Concept>,
}

/// A repeating pattern. Numbers are kept as source text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeat {
    /// How long the pattern lasts, or its span.
    pub bounds: Option<Bounds>,
    /// How many times in all.
    pub count: Option<Decimal>,
    /// Upper number of times in all.
    pub count_max: Option<Decimal>,
    /// How long each time lasts.
    pub duration: Option<Decimal>,
    /// Upper length of each time.
    pub duration_max: Option<Decimal>,
    /// Unit of `duration` (s, min, h, d, wk, mo, a).
    pub duration_unit: Option<String>,
    /// How many times per period.
    pub frequency: Option<Decimal>,
    /// Upper number of times per period.
    pub frequency_max: Option<Decimal>,
    /// The period.
    pub period: Option<Decimal>,
    /// Upper length of the period.
    pub period_max: Option<Decimal>,
    /// Unit of `period` (s, min, h, d, wk, mo, a).
    pub period_unit: Option<String>,
    /// Days of the week (mon … sun).
    pub days_of_week: Vec<String>,
    /// Times of day, as source text.
    pub times_of_day: Vec<String>,
    /// Moments of daily life it is tied to (e.g. before breakfast).
    pub when: Vec<String>,
    /// Minutes from those moments.
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
    pub initial_quantity: Option<Quantity>,
    /// Length of time the first fill lasts.
    pub initial_duration: Option<Quantity>,
    /// Least time between fills.
    pub interval: Option<Quantity>,
    /// When the request may be dispensed.
    pub validity: Option<Period>,
    /// Number of refills allowed, as source text.
    pub repeats_allowed: Option<Decimal>,
    /// Amount per fill.
    pub quantity: Option<Quantity>,
    /// Length of time a fill lasts.
    pub supply_duration: Option<Quantity>,
    /// Who is to dispense.
    pub dispenser: Option<Link>,
}

/// Whether another medicine may be given instead, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitution {
    /// Whether (or what kind of) substitution is allowed.
    pub allowed: Option<Answer>,
    /// Why.
    pub reason: Option<Concept>,
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
    pub master_identifier: Option<Identifier>,
    /// Other business identifiers.
    pub identifiers: Vec<Identifier>,
    /// Status of the record (current, superseded, preliminary, final, amended, …).
    pub status: Option<String>,
    /// Status of the underlying document (preliminary, final, amended, …).
    pub document_status: Option<String>,
    /// What kind of document it is (a note type, a report type).
    pub document_type: Option<Concept>,
    /// Categories.
    pub categories: Vec<Concept>,
    /// The patient or other subject.
    pub subject: Option<Link>,
    /// The contacts the document belongs to.
    pub contacts: Vec<Link>,
    /// When the record was made or last edited, as source text.
    pub recorded_at: Option<String>,
    /// Who wrote it.
    pub authors: Vec<Link>,
    /// Its title, or a description in words.
    pub title: Option<String>,
    /// Confidentiality code of the whole document.
    pub confidentiality: Option<String>,
    /// Security labels.
    pub security_labels: Vec<Concept>,
    /// Who attested or authenticated it, how and when.
    pub attesters: Vec<Attestation>,
    /// The organisation that keeps the document.
    pub custodian: Option<Link>,
    /// Relations to other documents (replaces, appends, transforms, signs …).
    pub relations: Vec<DocumentRelation>,
    /// The content, as attachments with their formats.
    pub contents: Vec<DocumentContent>,
    /// The clinical context of the content.
    pub context: Option<DocumentContext>,
    /// The clinical services documented (a composition's events).
    pub events: Vec<DocumentEvent>,
    /// The sections of a composition.
    pub sections: Vec<Section>,
}

/// Someone's attestation of a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// How they attested (personal, professional, legal, official); none for an
    /// authentication given without one.
    pub mode: Option<String>,
    /// When, as source text.
    pub time: Option<String>,
    /// Who.
    pub party: Option<Link>,
}

/// A relation of a document to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRelation {
    /// The kind of relation (replaces, transforms, signs, appends).
    pub code: Option<String>,
    /// The other document, as a link.
    pub target: Option<Link>,
    /// The other document, by business identifier only.
    pub target_identifier: Option<Identifier>,
}

/// One rendition of a document's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContent {
    /// The content or where it is.
    pub attachment: Option<Attachment>,
    /// The format or profile the content follows.
    pub format: Option<Code>,
}

/// The clinical context of a document's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContext {
    /// The main clinical acts documented.
    pub events: Vec<Concept>,
    /// When the documented care took place.
    pub period: Option<Period>,
    /// The kind of facility where the patient was seen.
    pub facility_type: Option<Concept>,
    /// The clinical specialty of the setting.
    pub practice_setting: Option<Concept>,
    /// The patient as known at the document's source.
    pub source_patient: Option<Link>,
    /// Related records and identifiers.
    pub related: Vec<Link>,
}

/// A clinical service documented by a composition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEvent {
    /// What was documented.
    pub codes: Vec<Concept>,
    /// When it took place.
    pub period: Option<Period>,
    /// The records of the service.
    pub details: Vec<Link>,
}

/// A section of a composition; sections nest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Its title.
    pub title: Option<String>,
    /// What the section holds.
    pub code: Option<Concept>,
    /// Who wrote it.
    pub authors: Vec<Link>,
    /// Who or what it is about, when not the document's subject.
    pub focus: Option<Link>,
    /// Its text for a human reader.
    pub text: Option<Narrative>,
    /// How its entries were chosen (working, snapshot, changes).
    pub mode: Option<String>,
    /// The order of its entries.
    pub ordered_by: Option<Concept>,
    /// The records it refers to.
    pub entries: Vec<Link>,
    /// Why it is empty.
    pub empty_reason: Option<Concept>,
    /// Nested sections.
    pub sections: Vec<Section>,
}

/// A person's consent: choices about their care or their data, and the policies they keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    /// Business identifiers.
    pub identifiers: Vec<Identifier>,
    /// Status (draft, proposed, active, rejected, inactive, entered-in-error).
    pub status: Option<String>,
    /// What it is about (privacy, research, treatment, advance directive).
    pub scope: Option<Concept>,
    /// Categories.
    pub categories: Vec<Concept>,
    /// The patient.
    pub patient: Option<Link>,
    /// When it was given or recorded, as source text.
    pub recorded_at: Option<String>,
    /// Who agrees to it.
    pub performers: Vec<Link>,
    /// The organisations that hold it.
    pub organizations: Vec<Link>,
    /// The source document: the signed form or a record.
    pub source: Option<ConsentSource>,
    /// The policies it refers to.
    pub policies: Vec<Policy>,
    /// The regulation or policy it follows, as a code.
    pub policy_rule: Option<Concept>,
    /// Verifications of the consent with the patient or a proxy.
    pub verifications: Vec<Verification>,
    /// The rules it sets, permit or deny with exceptions.
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
    pub authority: Option<String>,
    /// The policy itself, as a URI.
    pub uri: Option<String>,
}

/// A verification of a consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether it was verified.
    pub verified: Option<bool>,
    /// With whom.
    pub verified_with: Option<Link>,
    /// When, as source text.
    pub verified_at: Option<String>,
}

/// A rule of a consent: a permit or a deny, narrowed by actors, actions, data and time,
/// with nested exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    /// permit or deny.
    pub decision: Option<String>,
    /// When the rule applies.
    pub period: Option<Period>,
    /// Who the rule is about, in which role.
    pub actors: Vec<ProvisionActor>,
    /// The actions it covers (access, collect, use, disclose, correct).
    pub actions: Vec<Concept>,
    /// Security labels of the data it covers.
    pub security_labels: Vec<Code>,
    /// Purposes of use it covers.
    pub purposes: Vec<Code>,
    /// Kinds of records it covers.
    pub classes: Vec<Code>,
    /// Codes of the records it covers.
    pub codes: Vec<Concept>,
    /// When the covered data was recorded.
    pub data_period: Option<Period>,
    /// The particular records it covers.
    pub data: Vec<ProvisionData>,
    /// Nested rules (exceptions).
    pub provisions: Vec<Provision>,
}

/// Someone a consent rule is about, in a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionActor {
    /// The role (the recipient, the custodian, …).
    pub role: Option<Concept>,
    /// Who.
    pub party: Option<Link>,
}

/// A record a consent rule covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionData {
    /// How the record is meant (instance, related, dependents, authoredby).
    pub meaning: Option<String>,
    /// The record.
    pub target: Option<Link>,
}

/// Where records came from: who did what to which, when and why, and who signed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The records this is the provenance of.
    pub targets: Vec<Link>,
    /// When the activity took place.
    pub occurred: Option<When>,
    /// When it was recorded, as source text.
    pub recorded_at: Option<String>,
    /// The policies followed, as URIs.
    pub policies: Vec<String>,
    /// Where the activity took place.
    pub location: Option<Link>,
    /// Why.
    pub reasons: Vec<Concept>,
    /// What was done (create, update, authenticate, …).
    pub activity: Option<Concept>,
    /// Who took part.
    pub agents: Vec<Agent>,
    /// What was used or produced.
    pub entities: Vec<ProvenanceEntity>,
    /// Signatures over the targets.
    pub signatures: Vec<Signature>,
}

/// Someone who took part in an activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// How they took part (author, verifier, …).
    pub kind: Option<Concept>,
    /// Their roles.
    pub roles: Vec<Concept>,
    /// Who.
    pub who: Option<Link>,
    /// On whose behalf.
    pub on_behalf_of: Option<Link>,
}

/// A record used or produced by an activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceEntity {
    /// How it was used (derivation, revision, quotation, source, removal).
    pub role: Option<String>,
    /// The record.
    pub what: Option<Link>,
    /// Who took part in making it.
    pub agents: Vec<Agent>,
}

/// A digital or written signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// What the signature means (author, verification, witness, …).
    pub kinds: Vec<Code>,
    /// When it was signed, as source text.
    pub signed_at: Option<String>,
    /// Who signed.
    pub who: Option<Link>,
    /// On whose behalf.
    pub on_behalf_of: Option<Link>,
    /// Media type of the signed content.
    pub target_format: Option<String>,
    /// Media type of the signature.
    pub signature_format: Option<String>,
    /// The signature, as base64 source text.
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
