//! FHIR R4 ⇄ the internal model.
//!
//! This is the only crate that knows how FHIR maps onto the model, which search parameters
//! exist and how a FHIR query string parses into a typed [`model::query::Query`]. It never
//! touches a database, a socket or a clock, and it does not call terminology: it reports what
//! it found and lets the gateway ask.
//!
//! - [`json`]: parse FHIR JSON under limits and apply the structural rules;
//! - [`entity`]: FHIR resource ⇄ [`model::Entity`], lossless by construction;
//! - [`search`]: the search parameters, index extraction and query parsing;
//! - [`rules`]: required elements of the mapped types;
//! - [`xml`]: FHIR XML ⇄ FHIR JSON, lossless, by the R4 structure;
//! - [`fhirpath`]: the FHIRPath subset of FHIRPath Patch, evaluated to locations.

mod care;
pub mod dates;
mod decimal;
pub mod entity;
pub mod fhirpath;
mod fields;
pub mod json;
mod path;
mod records;
mod requests;
pub mod rules;
pub mod schema;
pub mod search;
#[rustfmt::skip]
mod search_params;
mod statements;
pub mod types;
pub mod xml;

pub use json::{JsonLimits, Resource};

/// Severity of an [`Issue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The request fails.
    Error,
    /// The request goes on; the client is told.
    Warning,
}

/// What kind of problem an [`Issue`] is (FHIR's IssueType codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// Structural error (`structure`).
    Structure,
    /// A required element is missing (`required`).
    Required,
    /// An element's value is invalid (`value`).
    Value,
    /// A rule of the type is broken (`invariant`).
    Invariant,
    /// A code is invalid (`code-invalid`).
    CodeInvalid,
    /// Something is not supported (`not-supported`).
    NotSupported,
}

/// One problem found in a resource or a query, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub code: IssueCode,
    /// Where: a FHIRPath-like element path (`Patient.name[0].given`) or a parameter name.
    pub expression: String,
    /// What is wrong, in words.
    pub diagnostics: String,
}

impl Issue {
    /// An error issue.
    pub fn error(code: IssueCode, expression: impl Into<String>, text: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Error,
            code,
            expression: expression.into(),
            diagnostics: text.into(),
        }
    }
}

/// Why a resource or query was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// The document is not well-formed JSON, or not an object.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// The document nests deeper than allowed.
    #[error("document nests deeper than {max_depth} levels")]
    TooDeep {
        /// The limit.
        max_depth: usize,
    },
    /// The resource type is not an R4 resource type.
    #[error("unknown resource type {0}")]
    UnknownType(String),
    /// The resource breaks FHIR rules.
    #[error("invalid resource: {}", .0.first().map(|i| i.diagnostics.as_str()).unwrap_or(""))]
    Invalid(Vec<Issue>),
}

impl MappingError {
    /// An [`MappingError::Invalid`] with one issue.
    pub fn invalid(issue: Issue) -> MappingError {
        MappingError::Invalid(vec![issue])
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
