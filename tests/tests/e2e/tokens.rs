//! Tokens against a production-style key set (RS256, ES256 and EdDSA from a JWKS-like set of
//! PEM keys, no development secret): the attack matrix of reliability-security.md §5.3. Every
//! case gets its status, an OperationOutcome, and an audit record.

use anyhow::{Context, Result, ensure};
use gateway::auth::{AuthConfig, VerifyKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![token_attack_matrix, smart_configuration_is_public];

const ISSUER: &str = "https://idp.example.org/realms/health";
const AUDIENCE: &str = "fhirgate";

fn key_file(name: &str) -> Result<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keys")
        .join(name);
    std::fs::read(&path).with_context(|| path.display().to_string())
}

fn auth() -> Result<AuthConfig> {
    Ok(AuthConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_secs: 30,
        // The identity provider's JWKS (the same keys as PEM are loaded by the CLI test).
        keys: VerifyKey::from_jwks(&key_file("jwks.json")?)?,
        role_claim: "realm_access.roles".into(),
        dev_secret: None,
        endpoints: None,
    })
}

fn claims(role: &str, scope: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
           "realm_access": {"roles": ["offline_access", role]}, "scope": scope})
}

struct Signer {
    rsa: EncodingKey,
    rsa_other: EncodingKey,
    ec: EncodingKey,
    ed: EncodingKey,
}

impl Signer {
    fn new() -> Result<Signer> {
        Ok(Signer {
            rsa: EncodingKey::from_rsa_pem(&key_file("rsa-private.pem")?)?,
            rsa_other: EncodingKey::from_rsa_pem(&key_file("rsa-other-private.pem")?)?,
            ec: EncodingKey::from_ec_pem(&key_file("ec-private-pk8.pem")?)?,
            ed: EncodingKey::from_ed_pem(&key_file("ed-private.pem")?)?,
        })
    }

    fn sign(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> Result<String> {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        let key = match alg {
            Algorithm::RS256 => &self.rsa,
            Algorithm::ES256 => &self.ec,
            _ => &self.ed,
        };
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    fn rs(&self, claims: &Value) -> Result<String> {
        self.sign(Algorithm::RS256, Some("rsa-1"), claims)
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    if let Some(o) = claims.as_object_mut() {
        o.shift_remove(key);
    }
    claims
}

async fn token_attack_matrix(env: &Env) -> Result<()> {
    let s = TestServer::start_with_auth(&env.cluster, Default::default(), auth()?).await?;
    let k = Signer::new()?;
    let good = claims("system", "system/*.cruds");
    // A patient to read, created with a valid token.
    let (status, created) = {
        let resp = s
            .http
            .post(format!("{}/Patient", s.base))
            .bearer_auth(k.rs(&good)?)
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient", "active": true}).to_string())
            .send()
            .await?;
        (resp.status().as_u16(), resp.json::<Value>().await?)
    };
    ensure!(status == 201, "setup create: {status} {created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("Patient/{id}");
    let now = chrono::Utc::now().timestamp();
    let valid = k.rs(&good)?;
    let parts: Vec<&str> = valid.split('.').collect();
    let other_payload = k.rs(&with(good.clone(), "sub", json!("mallory")))?;
    let rsa_public = key_file("rsa-public.pem")?;
    let confused = |kid: Option<&str>| -> Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        Ok(jsonwebtoken::encode(
            &header,
            &good,
            &EncodingKey::from_secret(&rsa_public),
        )?)
    };
    let mut forged_header = Header::new(Algorithm::RS256);
    forged_header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(&forged_header, &good, &k.rsa_other)?;
    let mut wrong_alg_header = Header::new(Algorithm::ES256);
    wrong_alg_header.kid = Some("rsa-1".into());
    let wrong_alg = jsonwebtoken::encode(&wrong_alg_header, &good, &k.ec)?;
    let mut odd_typ = Header::new(Algorithm::RS256);
    odd_typ.kid = Some("rsa-1".into());
    odd_typ.typ = Some("dpop+jwt".into());
    let odd_typ = jsonwebtoken::encode(&odd_typ, &good, &k.rsa)?;
    let mut sig = parts[2].to_owned();
    let flipped = if sig.ends_with('A') { 'B' } else { 'A' };
    sig.pop();
    sig.push(flipped);
    let dev_style = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(&[7u8; 32]),
    )?;
    let patient_other = with(
        claims("registry", "patient/*.rs"),
        "patient",
        json!("Patient/someone-else"),
    );
    // (name, Authorization header or None, method, expected status)
    let cases: Vec<(&str, Option<String>, Method, u16)> = vec![
        (
            "RS256 with kid",
            Some(format!("Bearer {valid}")),
            Method::GET,
            200,
        ),
        (
            "ES256",
            Some(format!(
                "Bearer {}",
                k.sign(Algorithm::ES256, Some("ec-1"), &good)?
            )),
            Method::GET,
            200,
        ),
        (
            "EdDSA",
            Some(format!(
                "Bearer {}",
                k.sign(Algorithm::EdDSA, Some("ed-1"), &good)?
            )),
            Method::GET,
            200,
        ),
        (
            "RS256 without kid",
            Some(format!("Bearer {}", k.sign(Algorithm::RS256, None, &good)?)),
            Method::GET,
            200,
        ),
        (
            "lower-case scheme",
            Some(format!("bearer {valid}")),
            Method::GET,
            200,
        ),
        (
            "scopes as scp array",
            Some(format!(
                "Bearer {}",
                k.rs(&with(
                    without(good.clone(), "scope"),
                    "scp",
                    json!(["system/Patient.rs"])
                ))?
            )),
            Method::GET,
            200,
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "exp", json!(now - 120)))?
            )),
            Method::GET,
            401,
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "nbf", json!(now + 300)))?
            )),
            Method::GET,
            401,
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "iss", json!("https://evil.example")))?
            )),
            Method::GET,
            401,
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "aud", json!("another-api")))?
            )),
            Method::GET,
            401,
        ),
        (
            "audience list without ours",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "aud", json!(["a", "b"])))?
            )),
            Method::GET,
            401,
        ),
        (
            "no exp",
            Some(format!("Bearer {}", k.rs(&without(good.clone(), "exp"))?)),
            Method::GET,
            401,
        ),
        (
            "no sub",
            Some(format!("Bearer {}", k.rs(&without(good.clone(), "sub"))?)),
            Method::GET,
            401,
        ),
        (
            "no aud",
            Some(format!("Bearer {}", k.rs(&without(good.clone(), "aud"))?)),
            Method::GET,
            401,
        ),
        (
            "no iss",
            Some(format!("Bearer {}", k.rs(&without(good.clone(), "iss"))?)),
            Method::GET,
            401,
        ),
        (
            "alg none",
            Some(format!(
                "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                parts[1]
            )),
            Method::GET,
            401,
        ),
        (
            "RS/HS confusion with kid",
            Some(format!("Bearer {}", confused(Some("rsa-1"))?)),
            Method::GET,
            401,
        ),
        (
            "RS/HS confusion without kid",
            Some(format!("Bearer {}", confused(None)?)),
            Method::GET,
            401,
        ),
        (
            "unknown kid",
            Some(format!(
                "Bearer {}",
                k.sign(Algorithm::RS256, Some("rsa-9"), &good)?
            )),
            Method::GET,
            401,
        ),
        (
            "tampered payload",
            Some(format!(
                "Bearer {}.{}.{}",
                parts[0],
                other_payload.split('.').nth(1).unwrap_or(""),
                parts[2]
            )),
            Method::GET,
            401,
        ),
        (
            "tampered signature",
            Some(format!("Bearer {}.{}.{sig}", parts[0], parts[1])),
            Method::GET,
            401,
        ),
        (
            "another key, same kid",
            Some(format!("Bearer {forged}")),
            Method::GET,
            401,
        ),
        (
            "ES256 header on the RSA kid",
            Some(format!("Bearer {wrong_alg}")),
            Method::GET,
            401,
        ),
        ("garbage", Some("Bearer abc".into()), Method::GET, 401),
        ("two segments", Some("Bearer a.b".into()), Method::GET, 401),
        ("empty bearer", Some("Bearer ".into()), Method::GET, 401),
        (
            "basic scheme",
            Some("Basic YWxpY2U6c2VjcmV0".into()),
            Method::GET,
            401,
        ),
        ("no Authorization", None, Method::GET, 401),
        (
            "odd typ",
            Some(format!("Bearer {odd_typ}")),
            Method::GET,
            401,
        ),
        (
            "exp as a string",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "exp", json!((now + 300).to_string())))?
            )),
            Method::GET,
            401,
        ),
        (
            "sub as a number",
            Some(format!(
                "Bearer {}",
                k.rs(&with(good.clone(), "sub", json!(42)))?
            )),
            Method::GET,
            401,
        ),
        (
            "development HS256 token",
            Some(format!("Bearer {dev_style}")),
            Method::GET,
            401,
        ),
        (
            "scope escalation: read-only token writes",
            Some(format!(
                "Bearer {}",
                k.rs(&claims("system", "system/Patient.rs"))?
            )),
            Method::DELETE,
            403,
        ),
        (
            "no scope",
            Some(format!("Bearer {}", k.rs(&without(good.clone(), "scope"))?)),
            Method::GET,
            403,
        ),
        (
            "no role",
            Some(format!(
                "Bearer {}",
                k.rs(&without(good.clone(), "realm_access"))?
            )),
            Method::GET,
            403,
        ),
        (
            "statistician",
            Some(format!(
                "Bearer {}",
                k.rs(&claims("statistician", "user/*.cruds"))?
            )),
            Method::GET,
            403,
        ),
        (
            "granular scope on a parameter the server does not support grants nothing",
            Some(format!(
                "Bearer {}",
                k.rs(&claims("system", "system/Patient.rs?_content=x"))?
            )),
            Method::GET,
            403,
        ),
        (
            "granular scope the patient matches (active is R4's, so supported)",
            Some(format!(
                "Bearer {}",
                k.rs(&claims("system", "system/Patient.rs?active=true"))?
            )),
            Method::GET,
            200,
        ),
        (
            "patient-context escape",
            Some(format!("Bearer {}", k.rs(&patient_other)?)),
            Method::GET,
            404,
        ),
    ];
    ensure!(cases.len() >= 30, "the matrix has {} cases", cases.len());
    let before = s.store.audit_records(100_000).await?.len();
    for (name, authorization, method, want) in &cases {
        let mut req = s.http.request(method.clone(), format!("{}/{path}", s.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        ensure!(
            status == *want,
            "{name}: expected {want}, got {status} {body}"
        );
        if *want >= 400 {
            ensure!(body["resourceType"] == "OperationOutcome", "{name}: {body}");
        }
    }
    let records = s.store.audit_records(100_000).await?;
    ensure!(
        records.len() - before == cases.len(),
        "one audit record per request: {} for {} requests",
        records.len() - before,
        cases.len()
    );
    for want in [401u16, 403, 404] {
        let expected = cases.iter().filter(|c| c.3 == want).count();
        let found = records.iter().filter(|r| r.record.outcome == want).count();
        ensure!(
            found == expected,
            "{expected} requests answered {want}, {found} audit records say so"
        );
    }
    s.stop().await
}

async fn smart_configuration_is_public(env: &Env) -> Result<()> {
    let s = TestServer::start_with_auth(&env.cluster, Default::default(), auth()?).await?;
    let resp = s
        .http
        .get(format!("{}/.well-known/smart-configuration", s.base))
        .send()
        .await?;
    ensure!(resp.status() == 200, "{}", resp.status());
    let doc: Value = resp.json().await?;
    ensure!(doc["issuer"] == ISSUER, "{doc}");
    let capabilities: Vec<&str> = doc["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        capabilities.contains(&"permission-v2") && capabilities.contains(&"permission-patient"),
        "{doc}"
    );
    s.stop().await
}
