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
    /// Expected `aud` (a token's `aud` may be a list that contains it).
    pub audience: String,
    /// Allowed clock skew for `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// The keys that verify tokens. Each accepts only its own algorithm.
    pub keys: Vec<VerifyKey>,
    /// Where the role sits in the claims: a dotted path (`realm_access.roles`) to a string, or
    /// to an array whose first known role is taken.
    pub role_claim: String,
    /// The development HS256 secret (development mode only; `fhirgate token` signs with it).
    pub dev_secret: Option<Vec<u8>>,
    /// The identity provider's authorization and token endpoints, for
    /// `.well-known/smart-configuration`.
    pub endpoints: Option<(String, String)>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("keys", &self.keys)
            .field("role_claim", &self.role_claim)
            .field("dev", &self.dev_secret.is_some())
            .finish()
    }
}

/// A key that verifies tokens signed with one algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    /// The key id tokens name in their header, if the key has one.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key material is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl VerifyKey {
    /// The development HS256 key.
    pub fn hs256_dev(secret: &[u8]) -> VerifyKey {
        VerifyKey {
            kid: None,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// A PEM public key for `alg` (`RS256`, `ES256` or `EdDSA`).
    pub fn from_pem(alg: &str, kid: Option<String>, pem: &[u8]) -> Result<VerifyKey, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError::Invalid(format!("{alg} key: {e}"));
        let (alg, key) = match alg {
            "RS256" => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(pem).map_err(bad)?,
            ),
            "ES256" => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(pem).map_err(bad)?,
            ),
            "EdDSA" => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_pem(pem).map_err(bad)?,
            ),
            other => {
                return Err(KeyError::Invalid(format!(
                    "algorithm {other:?} is not accepted (RS256, ES256 or EdDSA)"
                )));
            }
        };
        Ok(VerifyKey { kid, alg, key })
    }

    /// Every usable key of a JWKS document (RSA → RS256, EC P-256 → ES256, OKP Ed25519 →
    /// EdDSA, unless the key names its `alg`). Symmetric keys are refused.
    pub fn from_jwks(json: &[u8]) -> Result<Vec<VerifyKey>, KeyError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| KeyError::Invalid(format!("not a JWKS document: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            let named = jwk.common.key_algorithm;
            let alg = match (&jwk.algorithm, named) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
                    if p.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                (AlgorithmParameters::OctetKeyPair(p), None | Some(KeyAlgorithm::EdDSA))
                    if p.curve == EllipticCurve::Ed25519 =>
                {
                    Algorithm::EdDSA
                }
                _ => {
                    return Err(KeyError::Invalid(format!(
                        "JWKS key {kid:?}: only RSA (RS256), EC P-256 (ES256) and Ed25519 (EdDSA) public keys are accepted"
                    )));
                }
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| KeyError::Invalid(format!("JWKS key {kid:?}: {e}")))?;
            keys.push(VerifyKey { kid, alg, key });
        }
        if keys.is_empty() {
            return Err(KeyError::Invalid("the JWKS document holds no key".into()));
        }
        Ok(keys)
    }
}

/// Reads a file for key loading.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })
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
    /// A granular scope's filter (`?category=laboratory`), as decoded search parameters:
    /// the grant covers only the resources the search would find.
    pub filter: Vec<(String, String)>,
}

impl Scope {
    /// Parses one scope; other kinds of scope (`openid`, `launch` …) give `None`.
    pub fn parse(text: &str) -> Option<Scope> {
        let (context, rest) = text.split_once('/')?;
        if !matches!(context, "system" | "user" | "patient") {
            return None;
        }
        // Granular scopes (`?category=…`) narrow a grant to what the search finds.
        let (rest, filter) = match rest.split_once('?') {
            Some((rest, query)) => {
                let filter: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if filter.is_empty() {
                    return None;
                }
                (rest, filter)
            }
            None => (rest, Vec::new()),
        };
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
            filter,
        })
    }

    /// A granular scope's filter as index predicates for `resource` (an AND of ORs), or
    /// `None` when it cannot be applied (unknown or result parameters, hierarchy searches):
    /// such a scope grants nothing.
    fn predicates(&self, resource: &str) -> Option<Vec<Vec<model::query::Predicate>>> {
        let parsed = mappings::search::parse_query(
            resource,
            &self.filter,
            &mappings::search::SearchLimits {
                default_count: 1,
                max_count: 1,
            },
        )
        .ok()?;
        let q = &parsed.query;
        let plain = parsed.ignored.is_empty()
            && parsed.used.len() == self.filter.len()
            && q.after_id.is_none()
            && !q.total
            && !q.all_of.is_empty()
            && !q.all_of.iter().flatten().any(|p| {
                matches!(
                    p,
                    model::query::Predicate::TokenIn {
                        expand: Some(_),
                        ..
                    }
                )
            });
        plain.then(|| q.all_of.clone())
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
        // What the scopes of some contexts grant: nothing, everything, or what granular
        // filters find (one match of any suffices).
        let grants = |contexts: &[&str]| -> Option<Option<Vec<Vec<Vec<model::query::Predicate>>>>> {
            let mut filters = Vec::new();
            let mut granted = false;
            for s in self.scopes.iter().filter(|s| {
                contexts.contains(&s.context.as_str())
                    && (s.resource == "*" || s.resource == resource)
                    && s.actions.contains(action.letter())
            }) {
                if s.filter.is_empty() {
                    return Some(None);
                }
                if let Some(p) = s.predicates(resource) {
                    filters.push(p);
                    granted = true;
                }
            }
            granted.then_some(Some(filters))
        };
        let mut all_of = Vec::new();
        let filters = match grants(&["system", "user"]) {
            Some(filters) => filters,
            None => {
                let Some(filters) = grants(&["patient"]) else {
                    return Err(ApiError::Forbidden(format!(
                        "the token's scopes do not allow '{}' on {resource}",
                        action.letter()
                    )));
                };
                let patient = self.patient.as_deref().ok_or_else(|| {
                    ApiError::Forbidden("patient/ scopes need a patient in context".into())
                })?;
                all_of.push(Restriction::Patients(vec![claim_id(patient, "Patient")]));
                filters
            }
        };
        let filtered = filters.map(|any_of| Restriction::Matching {
            rtype: resource.to_owned(),
            any_of,
        });
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
        all_of.extend(filtered);
        Ok(Access {
            all_of,
            shared_types,
        })
    }
}

/// Roles the role claim may name; an array claim yields the first of these it holds.
const KNOWN_ROLES: &[&str] = &[
    "system",
    "registry",
    "gp",
    "specialist",
    "statistician",
    "auditor",
    "admin",
];

impl AuthConfig {
    /// A development configuration: HS256 with `secret`, role in the `role` claim.
    pub fn dev(issuer: &str, audience: &str, secret: Vec<u8>) -> AuthConfig {
        AuthConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_secs: 30,
            keys: vec![VerifyKey::hs256_dev(&secret)],
            role_claim: "role".into(),
            dev_secret: Some(secret),
            endpoints: None,
        }
    }

    /// Verifies a bearer token: a known key (by `kid`, else by algorithm) of the very
    /// algorithm the header names, signature, `typ`, issuer, audience, `exp`, `nbf` (with the
    /// configured leeway) and `sub`.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let bad = |why: String| ApiError::Unauthorized(format!("invalid bearer token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        if let Some(typ) = header.typ.as_deref()
            && !matches!(
                typ.to_ascii_lowercase().as_str(),
                "jwt" | "at+jwt" | "application/at+jwt"
            )
        {
            return Err(bad(format!("typ {typ:?} is not a JWT access token")));
        }
        let by_kid: Vec<&VerifyKey> = match &header.kid {
            Some(kid) => {
                let found: Vec<&VerifyKey> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if found.is_empty() {
                    return Err(bad(format!("unknown key id {kid:?}")));
                }
                found
            }
            None => self.keys.iter().collect(),
        };
        // A key verifies only its own algorithm: no RS256 key is ever used as an HS256 secret.
        let keys: Vec<&VerifyKey> = by_kid.into_iter().filter(|k| k.alg == header.alg).collect();
        if keys.is_empty() {
            return Err(bad(format!(
                "algorithm {:?} is not accepted for this key",
                header.alg
            )));
        }
        let mut last = String::new();
        for key in keys {
            let mut validation = Validation::new(key.alg);
            validation.algorithms = vec![key.alg];
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = self.leeway_secs;
            validation.validate_nbf = true;
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => return self.principal(&data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(bad(last))
    }

    fn principal(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Principal, ApiError> {
        use serde_json::Value;
        let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub").filter(|s| !s.is_empty()).ok_or_else(|| {
            ApiError::Unauthorized("invalid bearer token: sub must be a string".into())
        })?;
        let mut node = claims.get(self.role_claim.split('.').next().unwrap_or(""));
        for part in self.role_claim.split('.').skip(1) {
            node = node.and_then(|n| n.get(part));
        }
        let role = match node {
            Some(Value::String(r)) => r.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .find(|r| KNOWN_ROLES.contains(r))
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        let scopes: Vec<Scope> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().filter_map(Scope::parse).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Scope::parse)
                .collect(),
            _ => Vec::new(),
        };
        let practitioner = text("fhirUser")
            .filter(|u| u.contains("Practitioner/"))
            .or_else(|| text("practitioner"));
        Ok(Principal {
            subject,
            role,
            scopes,
            practitioner,
            patient: text("patient"),
        })
    }

    /// The SMART App Launch v2 discovery document (`[base]/.well-known/smart-configuration`).
    pub fn smart_configuration(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "issuer": self.issuer,
            "capabilities": [
                "permission-v1", "permission-v2", "permission-patient", "permission-user",
                "client-confidential-asymmetric"
            ],
            "scopes_supported": [
                "system/*.cruds", "user/*.cruds", "patient/*.rs", "fhirUser", "launch/patient"
            ],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
        });
        if let Some((authorize, token)) = &self.endpoints {
            doc["authorization_endpoint"] = serde_json::json!(authorize);
            doc["token_endpoint"] = serde_json::json!(token);
            doc["grant_types_supported"] =
                serde_json::json!(["authorization_code", "client_credentials"]);
        }
        doc
    }

    /// Mints a token with the development secret (development mode only).
    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let secret = self.dev_secret.as_deref().ok_or_else(|| {
            jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
        })?;
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
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
        AuthConfig::dev("fhirgate-dev", "fhirgate", vec![7; 32])
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
            Scope::parse("patient/Observation.rs?category=laboratory").map(|s| s.filter),
            Some(vec![("category".into(), "laboratory".into())])
        );
        assert_eq!(Scope::parse("patient/Observation.rs?"), None);
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
        let other = AuthConfig::dev("fhirgate-dev", "fhirgate", vec![8; 32]);
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
