//! Bearer tokens → [`Principal`], and what a principal may do.
//!
//! Tokens are JWTs checked for signature, issuer, audience, `exp` and `nbf` (with a bounded
//! leeway). Today's keys: one HS256 secret, which only the development mode of `fhirgate up`
//! creates (DESIGN: HS256 only in dev mode). Access today is deny-by-default: the `system`
//! and `registry` roles act within their SMART scopes; the relationship-based roles (GP,
//! specialist, statistician, auditor, admin) are refused until their access model lands.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use model::query::{Access, Restriction};

use crate::outcome::ApiError;

/// The token settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Allowed clock skew, seconds.
    pub leeway_secs: u64,
    /// The HS256 secret (development mode).
    pub hs256_secret: Vec<u8>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

/// The claims fhirgate reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The role.
    pub role: String,
    /// Space-separated SMART scopes.
    #[serde(default)]
    pub scope: String,
    /// The practitioner the caller acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub practitioner: Option<String>,
    /// The patient in context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Subject.
    pub subject: String,
    /// Role.
    pub role: String,
    /// Parsed scopes.
    pub scopes: Vec<Scope>,
    /// The practitioner the caller acts as.
    pub practitioner: Option<String>,
    /// The patient in context.
    pub patient: Option<String>,
}

/// A SMART v2 scope (`system/Patient.cruds`); v1 `read`/`write` are read as `rs`/`cud`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `system`, `user` or `patient`.
    pub context: String,
    /// A resource type or `*`.
    pub resource: String,
    /// Which of `c r u d s` are granted.
    pub actions: String,
}

impl Scope {
    /// Parses one scope; other kinds of scope (`openid`, `launch` …) give `None`.
    pub fn parse(text: &str) -> Option<Scope> {
        let (context, rest) = text.split_once('/')?;
        if !matches!(context, "system" | "user" | "patient") {
            return None;
        }
        // Granular scopes (`?category=…`) narrow a grant; until they are honoured they
        // grant nothing, which is the safe reading.
        if rest.contains('?') {
            return None;
        }
        let (resource, actions) = rest.split_once('.')?;
        let actions = match actions {
            "read" => "rs".to_owned(),
            "write" => "cud".to_owned(),
            "*" => "cruds".to_owned(),
            a if !a.is_empty() && a.chars().all(|c| "cruds".contains(c)) => a.to_owned(),
            _ => return None,
        };
        Some(Scope {
            context: context.to_owned(),
            resource: resource.to_owned(),
            actions,
        })
    }
}

/// What an interaction needs, as a SMART action letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `c`
    Create,
    /// `r`
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `s`
    Search,
}

impl Action {
    fn letter(self) -> char {
        match self {
            Action::Create => 'c',
            Action::Read => 'r',
            Action::Update => 'u',
            Action::Delete => 'd',
            Action::Search => 's',
        }
    }
}

/// Roles that reach clinical data through the FHIR API.
const CLINICAL_ROLES: &[&str] = &["system", "registry", "gp", "specialist"];

/// Types outside every patient's compartment that relationship-restricted callers (GPs,
/// specialists, patient-context apps) may still read: who and where care is given, and
/// definitions. Any other resource without a patient is invisible to them (deny by default:
/// a clinical type whose patient link the mapping does not know stays hidden).
pub const SHARED_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "Substance",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
    "NamingSystem",
    "StructureDefinition",
    "SearchParameter",
    "OperationDefinition",
    "CapabilityStatement",
    "Questionnaire",
    "PlanDefinition",
    "ActivityDefinition",
    "Library",
    "Measure",
    "ObservationDefinition",
    "SpecimenDefinition",
];

/// The id in a reference-like claim value (`Practitioner/12`, a full URL, or a bare id).
fn claim_id(value: &str, rtype: &str) -> String {
    match value.rsplit_once(&format!("{rtype}/")) {
        Some((_, id)) => id.trim_end_matches('/').to_owned(),
        None => value.to_owned(),
    }
}

impl Principal {
    /// Checks that the principal may perform `action` on `resource`, and returns what it may
    /// see while doing so: its role's relationships (a GP's patients, a specialist's grants)
    /// and, when only `patient/` scopes grant the action, the patient in context.
    pub fn authorize(&self, resource: &str, action: Action) -> Result<Access, ApiError> {
        if !CLINICAL_ROLES.contains(&self.role.as_str()) {
            return Err(ApiError::Forbidden(match self.role.as_str() {
                "statistician" => {
                    "the statistician role sees de-identified exports only, never records".into()
                }
                "auditor" => "the auditor role reads the audit log only".into(),
                "admin" => "the admin role has no access to clinical data".into(),
                other => format!("role {other:?} has no access to clinical data"),
            }));
        }
        let grants = |contexts: &[&str]| {
            self.scopes.iter().any(|s| {
                contexts.contains(&s.context.as_str())
                    && (s.resource == "*" || s.resource == resource)
                    && s.actions.contains(action.letter())
            })
        };
        let mut all_of = Vec::new();
        if !grants(&["system", "user"]) {
            if !grants(&["patient"]) {
                return Err(ApiError::Forbidden(format!(
                    "the token's scopes do not allow '{}' on {resource}",
                    action.letter()
                )));
            }
            let patient = self.patient.as_deref().ok_or_else(|| {
                ApiError::Forbidden("patient/ scopes need a patient in context".into())
            })?;
            all_of.push(Restriction::Patients(vec![claim_id(patient, "Patient")]));
        }
        match self.role.as_str() {
            "gp" | "specialist" => {
                let practitioner = self.practitioner.as_deref().ok_or_else(|| {
                    ApiError::Forbidden(format!(
                        "a {} token must name the practitioner it acts as",
                        self.role
                    ))
                })?;
                let id = claim_id(practitioner, "Practitioner");
                all_of.push(if self.role == "gp" {
                    Restriction::GpOf(id)
                } else {
                    Restriction::GrantsOf(id)
                });
            }
            _ => {}
        }
        let shared_types = if all_of.is_empty() {
            Vec::new()
        } else {
            SHARED_TYPES.iter().map(|t| (*t).to_owned()).collect()
        };
        Ok(Access {
            all_of,
            shared_types,
        })
    }
}

impl AuthConfig {
    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.hs256_secret),
            &validation,
        )
        .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {e}")))?;
        let claims = data.claims;
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
            scopes: claims
                .scope
                .split_whitespace()
                .filter_map(Scope::parse)
                .collect(),
            practitioner: claims.practitioner,
            patient: claims.patient,
        })
    }

    /// Mints a token (development mode).
    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.hs256_secret),
        )
    }
}

/// Where the development signing key lives under a data folder.
pub fn dev_key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("secrets").join("dev-jwt.key")
}

/// Reads the development signing key, creating it (mode 0600) when `create` is set.
pub fn dev_key(data_dir: &Path, create: bool) -> std::io::Result<Vec<u8>> {
    let path = dev_key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key: [u8; 32] = rand::random();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(hex::encode(key).as_bytes())?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            issuer: "fhirgate-dev".into(),
            audience: "fhirgate".into(),
            leeway_secs: 5,
            hs256_secret: vec![7; 32],
        }
    }

    fn claims(role: &str, scope: &str, exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "tester".into(),
            iss: "fhirgate-dev".into(),
            aud: "fhirgate".into(),
            exp: (now + exp_in) as u64,
            iat: now as u64,
            nbf: None,
            role: role.into(),
            scope: scope.into(),
            practitioner: None,
            patient: None,
        }
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Scope::parse("system/*.cruds").map(|s| s.actions),
            Some("cruds".into())
        );
        assert_eq!(
            Scope::parse("user/Patient.read").map(|s| s.actions),
            Some("rs".into())
        );
        assert_eq!(Scope::parse("openid"), None);
        assert_eq!(Scope::parse("system/Patient.xyz"), None);
        assert_eq!(
            Scope::parse("patient/Observation.rs?category=laboratory"),
            None
        );
    }

    #[test]
    fn tokens_are_checked() {
        let cfg = config();
        let good = cfg
            .mint(&claims("system", "system/Patient.rs", 60))
            .unwrap_or_default();
        let p = cfg.verify(&good);
        assert!(
            p.as_ref()
                .is_ok_and(|p| p.authorize("Patient", Action::Read).is_ok())
        );
        assert!(
            p.as_ref()
                .is_ok_and(|p| p.authorize("Patient", Action::Create).is_err())
        );
        assert!(
            p.as_ref()
                .is_ok_and(|p| p.authorize("Observation", Action::Read).is_err())
        );
        let expired = cfg
            .mint(&claims("system", "system/*.cruds", -120))
            .unwrap_or_default();
        assert!(cfg.verify(&expired).is_err());
        let mut other = config();
        other.hs256_secret = vec![8; 32];
        let forged = other
            .mint(&claims("system", "system/*.cruds", 60))
            .unwrap_or_default();
        assert!(cfg.verify(&forged).is_err());
        let mut aud = claims("system", "system/*.cruds", 60);
        aud.aud = "someone-else".into();
        assert!(cfg.verify(&cfg.mint(&aud).unwrap_or_default()).is_err());
        // `alg: none`
        let none = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            good.split('.').nth(1).unwrap_or_default()
        );
        assert!(cfg.verify(&none).is_err());
        let gp = cfg
            .mint(&claims("gp", "user/*.cruds", 60))
            .unwrap_or_default();
        assert!(
            cfg.verify(&gp)
                .is_ok_and(|p| p.authorize("Patient", Action::Read).is_err())
        );
    }
}
