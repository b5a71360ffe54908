//! The rules a resource must keep on write, beyond well-formed JSON (`json`): the structure
//! of FHIR R4 (`schema`: elements, types, cardinalities, required elements, choice groups,
//! required bindings), checked for every type.

use crate::Issue;
use crate::json::Resource;

/// Checks a resource against the R4 structure; returns the issues found (each with the
/// path of its element).
pub fn check(resource: &Resource) -> Vec<Issue> {
    crate::schema::check(resource.object(), resource.resource_type())
}
