//! Issue 4 item 9: a corpus of more than 500 malformed or hostile requests, generated from
//! categories, sent to a real gateway with bounded concurrency.
//!
//! Every request must be answered (no reset, no timeout) with a 4xx whose body is an
//! OperationOutcome with an issue that says what is wrong. A 2xx is accepted only where the
//! specification allows the request ([`Expect::Allowed`], each with its reason; see
//! [`ALLOWED`]). Afterwards the seeded resources are unchanged, the system history holds
//! the seeds and the allowed writes and nothing else, and the server still answers normal
//! requests.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use gateway::Limits;
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Env;

crate::tests![five_hundred_hostile_requests_get_a_4xx_outcome];

/// The limits of the gateway under test.
const MAX_BODY: usize = 256 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_ENTRIES: usize = 1000;
const MAX_URL: usize = 8 * 1024;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Longest wait for one answer.
const PER_REQUEST: Duration = Duration::from_secs(30);
/// Longest the whole corpus may take.
const CORPUS_BUDGET: Duration = Duration::from_secs(900);
/// The least number of distinct requests in the corpus.
const AT_LEAST: usize = 500;

const FHIR_JSON: &str = "application/fhir+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRICT: (&str, &str) = ("prefer", "handling=strict");

/// The only cases where a 2xx is an acceptable answer, and why the specification allows it.
const ALLOWED: &[&str] = &[
    IGNORED_IF_MODIFIED_SINCE,
    TRANSACTION_CYCLE,
    JUST_UNDER_LIMIT,
    BATCH,
];
const IGNORED_IF_MODIFIED_SINCE: &str = "a GET with an If-Modified-Since that is not an HTTP date: \
     RFC 9110 §13.1.3 says the recipient MUST ignore it, so the read answers 200";
const TRANSACTION_CYCLE: &str = "a transaction whose new resources refer to each other in a loop \
     (or one to itself): FHIR resolves urn:uuid references after assigning every id, so a \
     cycle is a valid transaction (200, the resources written)";
const JUST_UNDER_LIMIT: &str = "a body just under the size limit: stored if it is a valid resource \
     (201), refused with a 4xx if not; never a 5xx";
const BATCH: &str = "a batch of bad entries: FHIR answers a batch 200 with each entry's own \
     status, so every entry must carry a 4xx and an OperationOutcome";

const UUID_A: &str = "urn:uuid:6f0b1c2d-0000-4000-8000-00000000000a";
const UUID_B: &str = "urn:uuid:6f0b1c2d-0000-4000-8000-00000000000b";
const UUID_C: &str = "urn:uuid:6f0b1c2d-0000-4000-8000-00000000000c";

/// What a request carries.
enum Payload {
    None,
    Bytes(Vec<u8>),
    /// Chunks sent without a Content-Length, a pause before each (a slow client).
    Slow {
        chunks: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// A whole HTTP/1.1 request written to a socket as it is: in two parts with a pause
    /// between when `split` is given, the write side shut after it when `close` is set.
    Raw {
        request: Vec<u8>,
        split: Option<(usize, Duration)>,
        close: bool,
    },
}

/// What the answer must be.
enum Expect {
    /// One of these statuses (all 4xx), with an OperationOutcome.
    Status(&'static [u16]),
    /// A 2xx the specification allows (the reason, one of [`ALLOWED`]), or a 4xx with an
    /// OperationOutcome.
    Allowed(&'static str),
    /// A batch: 200 and a batch-response whose every entry failed with a 4xx and an outcome.
    BatchOfFailures,
}

struct Case {
    category: &'static str,
    what: String,
    method: Method,
    /// Relative to the FHIR base.
    path: String,
    headers: Vec<(&'static str, String)>,
    /// Sends the system token.
    auth: bool,
    payload: Payload,
    expect: Expect,
}

impl Case {
    fn header(&mut self, name: &'static str, value: impl Into<String>) -> &mut Case {
        self.headers.push((name, value.into()));
        self
    }

    fn strict(&mut self) -> &mut Case {
        self.header(STRICT.0, STRICT.1)
    }

    fn no_auth(&mut self) -> &mut Case {
        self.auth = false;
        self
    }

    /// What makes the request distinct from every other one.
    fn key(&self) -> (String, u64) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match &self.payload {
            Payload::None => 0u8.hash(&mut h),
            Payload::Bytes(b) => b.hash(&mut h),
            Payload::Slow { chunks, pause } => {
                chunks.hash(&mut h);
                pause.hash(&mut h);
            }
            Payload::Raw {
                request,
                split,
                close,
            } => {
                request.hash(&mut h);
                split.hash(&mut h);
                close.hash(&mut h);
            }
        }
        (
            format!(
                "{} {} {:?} {}",
                self.method, self.path, self.headers, self.auth
            ),
            h.finish(),
        )
    }
}

/// The corpus under construction.
struct Corpus {
    cases: Vec<Case>,
    category: &'static str,
    /// Host and token, for raw requests.
    host: String,
    token: String,
    /// A token of the auditor role (who may read AuditEvents).
    auditor: String,
    /// Generation mistakes (an anchor a mutation did not find).
    errors: Vec<String>,
}

impl Corpus {
    fn category(&mut self, name: &'static str) {
        self.category = name;
    }

    fn push(
        &mut self,
        what: impl Into<String>,
        method: Method,
        path: impl Into<String>,
        payload: Payload,
        expect: Expect,
    ) -> &mut Case {
        self.cases.push(Case {
            category: self.category,
            what: what.into(),
            method,
            path: path.into(),
            headers: Vec::new(),
            auth: true,
            payload,
            expect,
        });
        let last = self.cases.len() - 1;
        &mut self.cases[last]
    }

    /// A request with a FHIR JSON body.
    fn body(
        &mut self,
        what: impl Into<String>,
        method: Method,
        path: impl Into<String>,
        body: impl Into<Vec<u8>>,
        expect: &'static [u16],
    ) -> &mut Case {
        self.push(
            what,
            method,
            path,
            Payload::Bytes(body.into()),
            Expect::Status(expect),
        )
        .header("content-type", FHIR_JSON)
    }

    /// A request without a body.
    fn get(
        &mut self,
        what: impl Into<String>,
        method: Method,
        path: impl Into<String>,
        expect: &'static [u16],
    ) -> &mut Case {
        self.push(what, method, path, Payload::None, Expect::Status(expect))
    }

    /// A PATCH with a JSON Patch body.
    fn patch(
        &mut self,
        what: impl Into<String>,
        path: impl Into<String>,
        body: impl Into<Vec<u8>>,
        expect: &'static [u16],
    ) -> &mut Case {
        self.push(
            what,
            Method::PATCH,
            path,
            Payload::Bytes(body.into()),
            Expect::Status(expect),
        )
        .header("content-type", JSON_PATCH)
    }

    /// A raw HTTP/1.1 request (`Connection: close`, the system token unless `headers` sets
    /// an Authorization of its own).
    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        what: impl Into<String>,
        method: &str,
        target: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        split: Option<(usize, Duration)>,
        close: bool,
        expect: &'static [u16],
    ) -> &mut Case {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        )
        .into_bytes();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            request.extend(format!("Authorization: Bearer {}\r\n", self.token).bytes());
        }
        for (k, v) in headers {
            request.extend(k.bytes());
            request.extend(b": ");
            request.extend(v.iter());
            request.extend(b"\r\n");
        }
        request.extend(b"\r\n");
        request.extend(body);
        self.push(
            what,
            Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
            target.to_owned(),
            Payload::Raw {
                request,
                split,
                close,
            },
            Expect::Status(expect),
        )
    }

    /// `text` with `from` replaced (once) by `to`; a generation error when `from` is absent.
    fn with(&mut self, text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        match find(text, from) {
            Some(at) => {
                let mut out = text[..at].to_vec();
                out.extend(to);
                out.extend(&text[at + from.len()..]);
                out
            }
            None => {
                self.errors.push(format!(
                    "{}: no {:?} to replace",
                    self.category,
                    String::from_utf8_lossy(from)
                ));
                text.to_vec()
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The resources seeded before the corpus, as they were answered.
struct Seeds {
    org: String,
    patient: String,
    patient_b: String,
    observation: String,
    /// Every seed: its path and its body as created.
    all: Vec<(String, Value)>,
}

async fn seed(s: &TestServer) -> Result<Seeds> {
    let mut all = Vec::new();
    let org = create(
        s,
        &mut all,
        json!({"resourceType": "Organization", "name": "Seed Org",
        "identifier": [{"system": "urn:hostile", "value": "org-1"}]}),
    )
    .await?;
    let patient = create(
        s,
        &mut all,
        json!({"resourceType": "Patient",
        "identifier": [{"system": "urn:hostile", "value": "p-1"}],
        "name": [{"family": "Hostile", "given": ["Ann"]}], "gender": "female",
        "birthDate": "1970-01-01",
        "managingOrganization": {"reference": format!("Organization/{org}")}}),
    )
    .await?;
    let patient_b = create(
        s,
        &mut all,
        json!({"resourceType": "Patient",
        "identifier": [{"system": "urn:hostile", "value": "p-2"}],
        "name": [{"family": "Hostile", "given": ["Bob"]}], "gender": "male"}),
    )
    .await?;
    create(
        s,
        &mut all,
        json!({"resourceType": "Patient", "name": [{"family": "Other"}]}),
    )
    .await?;
    let observation = create(
        s,
        &mut all,
        json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2020-01-01T10:00:00Z",
        "valueQuantity": {"value": 72, "unit": "/min"}}),
    )
    .await?;
    Ok(Seeds {
        org,
        patient,
        patient_b,
        observation,
        all,
    })
}

/// Creates a seed, noting its path and body.
async fn create(s: &TestServer, all: &mut Vec<(String, Value)>, v: Value) -> Result<String> {
    let created = s.create(&v).await?;
    let id = created["id"].as_str().context("a created id")?.to_owned();
    let rtype = v["resourceType"].as_str().unwrap_or_default();
    all.push((format!("{rtype}/{id}"), created));
    Ok(id)
}

/// Valid resources of several types, mutated into the corpus (each is checked valid first).
struct Bases {
    patient: Value,
    observation: Value,
    encounter: Value,
    condition: Value,
    medication_request: Value,
    practitioner: Value,
    transaction: Value,
}

fn bases(seeds: &Seeds) -> Bases {
    let (p, o) = (&seeds.patient, &seeds.org);
    Bases {
        patient: json!({
            "resourceType": "Patient",
            "identifier": [{"system": "urn:hostile", "value": "base-1"}],
            "active": true,
            "name": [{"use": "official", "family": "Base", "given": ["Alice", "B"]}],
            "telecom": [{"system": "phone", "value": "+1 555 0100", "use": "home"}],
            "gender": "female",
            "birthDate": "1980-02-29",
            "deceasedBoolean": false,
            "address": [{"line": ["1 Main St"], "city": "Springfield", "postalCode": "12345"}],
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
            "multipleBirthInteger": 2,
            "contact": [{"name": {"family": "Contact"}, "telecom": [{"system": "email", "value": "c@example.org"}]}],
            "communication": [{"language": {"text": "English"}, "preferred": true}],
            "managingOrganization": {"reference": format!("Organization/{o}")}
        }),
        observation: json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
            "subject": {"reference": format!("Patient/{p}")},
            "effectiveDateTime": "2020-01-01T10:00:00Z",
            "issued": "2020-01-01T10:05:00.000Z",
            "valueQuantity": {"value": 72, "unit": "beats/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "interpretation": [{"text": "normal"}],
            "note": [{"text": "resting"}],
            "referenceRange": [{"low": {"value": 60}, "high": {"value": 100}}]
        }),
        encounter: json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"text": "checkup"}],
            "subject": {"reference": format!("Patient/{p}")},
            "period": {"start": "2020-01-01T09:00:00Z", "end": "2020-01-01T09:30:00Z"},
            "reasonCode": [{"text": "routine"}],
            "serviceProvider": {"reference": format!("Organization/{o}")}
        }),
        condition: json!({
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": "asthma"},
            "subject": {"reference": format!("Patient/{p}")},
            "onsetDateTime": "2019-05-01",
            "recordedDate": "2019-05-02",
            "note": [{"text": "mild"}]
        }),
        medication_request: json!({
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "aspirin"},
            "subject": {"reference": format!("Patient/{p}")},
            "authoredOn": "2020-01-01",
            "dosageInstruction": [{"text": "once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 100, "unit": "mg"}}]}]
        }),
        practitioner: json!({
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:hostile", "value": "pr-1"}],
            "active": true,
            "name": [{"family": "Doc", "prefix": ["Dr"]}],
            "qualification": [{"code": {"text": "MD"}}]
        }),
        transaction: json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": UUID_A,
             "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": UUID_A}},
             "request": {"method": "POST", "url": "Observation"}}
        ]}),
    }
}

/// A transaction Bundle of `entries`.
fn transaction(entries: Vec<Value>) -> Vec<u8> {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
        .to_string()
        .into_bytes()
}

/// A batch Bundle of `entries`.
fn batch(entries: Vec<Value>) -> Vec<u8> {
    json!({"resourceType": "Bundle", "type": "batch", "entry": entries})
        .to_string()
        .into_bytes()
}

fn post_entry(full_url: Option<&str>, resource: Value) -> Value {
    let rtype = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut e = json!({"resource": resource, "request": {"method": "POST", "url": rtype}});
    if let Some(u) = full_url {
        e["fullUrl"] = json!(u);
    }
    e
}

fn org_part_of(name: &str, part_of: &str) -> Value {
    json!({"resourceType": "Organization", "name": name, "partOf": {"reference": part_of}})
}

fn build(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    broken_json(c, seeds, b);
    wrong_types(c, seeds, b);
    deep_nesting(c, seeds);
    huge(c, seeds);
    bad_ids(c, seeds);
    bad_references(c, seeds, b);
    bad_search(c, seeds);
    bad_dates(c, b);
    control_characters(c, b);
    oversized_and_slow(c, seeds, b);
    headers(c, seeds, b);
    wrong_methods(c, seeds, b);
    bundles(c, seeds);
    patches(c, seeds);
    fhirpath_patches(c, seeds);
    meta_operations(c, seeds);
}

fn broken_json(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("broken JSON");
    // Every proper prefix of a JSON object is invalid JSON.
    for (rtype, doc) in [
        ("Patient", &b.patient),
        ("Observation", &b.observation),
        ("Encounter", &b.encounter),
    ] {
        let text = doc.to_string().into_bytes();
        let n = text.len();
        for k in 0..25 {
            let at = k * n / 25;
            c.body(
                format!("{rtype} cut at byte {at} of {n}"),
                Method::POST,
                rtype,
                &text[..at],
                &[400],
            );
        }
    }
    let tx = b.transaction.to_string().into_bytes();
    for k in 1..=12 {
        let at = k * tx.len() / 13;
        c.body(
            format!("a transaction cut at byte {at}"),
            Method::POST,
            "",
            &tx[..at],
            &[400],
        );
    }
    let mut update = b.patient.clone();
    update["id"] = json!(seeds.patient);
    let update = update.to_string().into_bytes();
    let seed_path = format!("Patient/{}", seeds.patient);
    for k in 1..=8 {
        let at = k * update.len() / 9;
        c.body(
            format!("an update cut at byte {at}"),
            Method::PUT,
            seed_path.clone(),
            &update[..at],
            &[400],
        );
    }
    let p = b.patient.to_string().into_bytes();
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    // Stray bytes around and inside the document.
    let mut stray: Vec<(&str, Vec<u8>)> = vec![
        ("a NUL byte after the document", cat(&p, b"\0")),
        ("a second document after it", cat(&p, b"{}")),
        ("a closing brace too many", cat(&p, b"}")),
        ("a bracket after it", cat(&p, b"]")),
        ("a comma after it", cat(&p, b",")),
        ("a letter after it", cat(&p, b"x")),
        ("a letter before it", cat(b"x", &p)),
        ("a bracket before it", cat(b"[", &p)),
        ("a NUL byte before it", cat(b"\0", &p)),
        ("a form feed before it", cat(b"\x0c", &p)),
        (
            "a non-breaking space before it",
            cat("\u{a0}".as_bytes(), &p),
        ),
    ];
    let inside: &[(&str, &[u8], &[u8])] = &[
        ("a raw NUL inside a string", b"\"Base\"", b"\"Ba\0se\""),
        ("a raw tab inside a string", b"\"Base\"", b"\"Ba\tse\""),
        ("a raw newline inside a string", b"\"Base\"", b"\"Ba\nse\""),
        (
            "an unescaped quote inside a string",
            b"\"Base\"",
            b"\"Ba\"se\"",
        ),
        ("an unknown escape", b"\"Base\"", b"\"Ba\\qse\""),
        ("a short unicode escape", b"\"Base\"", b"\"Ba\\u12se\""),
        (
            "a lone high surrogate escape",
            b"\"Base\"",
            b"\"Ba\\ud800se\"",
        ),
        (
            "a lone low surrogate escape",
            b"\"Base\"",
            b"\"Ba\\udc00se\"",
        ),
        ("a missing colon", b"\"gender\":", b"\"gender\" "),
        ("a missing comma", b",\"gender\"", b" \"gender\""),
        ("a single-quoted string", b"\"female\"", b"'female'"),
        ("an unquoted key", b"\"gender\"", b"gender"),
        ("a bare word", b"\"active\":true", b"\"active\":yes"),
        ("True capitalised", b"\"active\":true", b"\"active\":True"),
        ("undefined", b"\"active\":true", b"\"active\":undefined"),
        (
            "a leading zero",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":02",
        ),
        (
            "a hex number",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":0x2",
        ),
        (
            "a plus sign",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":+2",
        ),
        (
            "a bare minus",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":-",
        ),
        (
            "a dot without digits",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":2.",
        ),
        (
            "an exponent without digits",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":2e",
        ),
        (
            "NaN",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":NaN",
        ),
        (
            "Infinity",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":Infinity",
        ),
        (
            "-Infinity",
            b"\"multipleBirthInteger\":2",
            b"\"multipleBirthInteger\":-Infinity",
        ),
        (
            "an unclosed array",
            b"[\"Alice\",\"B\"]",
            b"[\"Alice\",\"B\"",
        ),
        ("an unclosed object", b"{\"language\"", b"{{\"language\""),
        ("a colon for a comma", b",\"gender\"", b":\"gender\""),
        // Invalid UTF-8.
        ("a 0xFF byte in a string", b"\"Base\"", b"\"Ba\xffse\""),
        ("a lone continuation byte", b"\"Base\"", b"\"Ba\x80se\""),
        ("a cut two-byte sequence", b"\"Base\"", b"\"Ba\xc3se\""),
        ("an overlong slash", b"\"Base\"", b"\"Ba\xc0\xafse\""),
        ("an encoded surrogate", b"\"Base\"", b"\"Ba\xed\xa0\x80se\""),
        (
            "a code point above U+10FFFF",
            b"\"Base\"",
            b"\"Ba\xf4\x90\x80\x80se\"",
        ),
        ("Latin-1 text", b"\"Base\"", b"\"Bas\xe9\""),
        ("invalid UTF-8 in a key", b"\"gender\"", b"\"gen\xffder\""),
        // Byte order marks.
        (
            "a byte order mark inside the document",
            b"{\"resourceType\"",
            b"{\xef\xbb\xbf\"resourceType\"",
        ),
        // Trailing commas.
        (
            "a trailing comma in an array",
            b"[\"Alice\",\"B\"]",
            b"[\"Alice\",\"B\",]",
        ),
        (
            "a trailing comma in an object",
            b"\"use\":\"home\"}",
            b"\"use\":\"home\",}",
        ),
        (
            "a leading comma in an object",
            b"{\"resourceType\"",
            b"{,\"resourceType\"",
        ),
        (
            "two commas in an array",
            b"[\"Alice\",\"B\"]",
            b"[\"Alice\",,\"B\"]",
        ),
        // Comments.
        (
            "a block comment inside",
            b"{\"resourceType\"",
            b"{/* c */\"resourceType\"",
        ),
        (
            "a line comment inside",
            b",\"gender\"",
            b",// c\n\"gender\"",
        ),
        ("a hash comment inside", b",\"gender\"", b",# c\n\"gender\""),
    ];
    for (what, from, to) in inside {
        let body = c.with(&p, from, to);
        stray.push((*what, body));
    }
    stray.extend([
        ("a UTF-8 byte order mark", cat(b"\xef\xbb\xbf", &p)),
        ("a UTF-16 LE document with its mark", utf16(&p, false)),
        ("a UTF-16 BE document with its mark", utf16(&p, true)),
        ("a UTF-32 LE byte order mark", cat(b"\xff\xfe\0\0", &p)),
        ("a trailing comma at the end", cat(&p[..p.len() - 1], b",}")),
        ("a line comment before it", cat(b"// c\n", &p)),
        ("a block comment before it", cat(b"/* c */", &p)),
        ("a hash comment before it", cat(b"# c\n", &p)),
        ("a line comment after it", cat(&p, b"// c")),
        ("a block comment after it", cat(&p, b"/* c */")),
    ]);
    for (i, (what, body)) in stray.into_iter().enumerate() {
        // Spread over create, update and the base (a body is parsed before anything else).
        match i % 4 {
            0 | 1 => {
                c.body(what, Method::POST, "Patient", body, &[400]);
            }
            2 => {
                c.body(what, Method::PUT, seed_path.clone(), body, &[400]);
            }
            _ => {
                c.body(what, Method::POST, "Observation", body, &[400]);
            }
        }
    }
    // Documents that are not a resource.
    for (what, body, expect) in [
        ("an empty array", "[]", &[400u16] as &[u16]),
        (
            "an array holding a resource",
            "[{\"resourceType\":\"Patient\"}]",
            &[400],
        ),
        ("a string", "\"Patient\"", &[400]),
        ("null", "null", &[400]),
        ("a number", "42", &[400]),
        ("true", "true", &[400]),
        ("only whitespace", " \r\n\t ", &[400]),
        ("an empty object", "{}", &[400]),
        ("a null resourceType", "{\"resourceType\":null}", &[400]),
        ("a numeric resourceType", "{\"resourceType\":42}", &[400]),
        (
            "an array resourceType",
            "{\"resourceType\":[\"Patient\"]}",
            &[400],
        ),
        (
            "an unknown resourceType",
            "{\"resourceType\":\"Foo\"}",
            &[400],
        ),
        (
            "a lower-case resourceType",
            "{\"resourceType\":\"patient\"}",
            &[400],
        ),
        (
            "another type than the URL's",
            "{\"resourceType\":\"Observation\"}",
            &[400],
        ),
        (
            "a resourceType with a space",
            "{\"resourceType\":\"Patient \"}",
            &[400],
        ),
    ] {
        c.body(what, Method::POST, "Patient", body, expect);
    }
}

/// `text` as UTF-16 with its byte order mark.
fn utf16(text: &[u8], big_endian: bool) -> Vec<u8> {
    let s = String::from_utf8_lossy(text);
    let mut out = if big_endian {
        vec![0xfe, 0xff]
    } else {
        vec![0xff, 0xfe]
    };
    for unit in s.encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// A step into a JSON value.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every element path of a resource (not `resourceType` or `id`), outer first.
fn element_paths(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                if at.is_empty() && (k == "resourceType" || k == "id") {
                    continue;
                }
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                element_paths(v, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(Step::Index(i));
                out.push(at.clone());
                element_paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn at_path<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut v = value;
    for step in path {
        v = match step {
            Step::Key(k) => v.get_mut(k.as_str())?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    Some(v)
}

fn path_text(rtype: &str, path: &[Step]) -> String {
    let mut s = rtype.to_owned();
    for step in path {
        match step {
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Values of another JSON type than `v`'s.
fn wrong_kinds(v: &Value) -> Vec<(&'static str, Value)> {
    match v {
        Value::String(_) => vec![
            ("a number for a string", json!(42)),
            ("a boolean for a string", json!(true)),
            ("an object for a string", json!({"value": "x"})),
            ("an array for a string", json!(["x"])),
        ],
        Value::Bool(_) => vec![
            ("a string for a boolean", json!("true")),
            ("a number for a boolean", json!(1)),
            ("an array for a boolean", json!([true])),
            ("an object for a boolean", json!({"value": true})),
        ],
        Value::Number(_) => vec![
            ("a string for a number", json!("1")),
            ("a boolean for a number", json!(false)),
            ("an object for a number", json!({"value": 1})),
            ("an array for a number", json!([1])),
        ],
        Value::Array(a) => vec![
            (
                "one value for an array",
                a.first().cloned().unwrap_or(json!("x")),
            ),
            ("a string for an array", json!("x")),
            ("a number for an array", json!(7)),
            ("a boolean for an array", json!(false)),
        ],
        Value::Object(_) => vec![
            ("an array for an object", json!([v.clone()])),
            ("a string for an object", json!("x")),
            ("a number for an object", json!(3)),
            ("a boolean for an object", json!(true)),
        ],
        Value::Null => Vec::new(),
    }
}

fn wrong_types(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("wrong JSON types");
    // Every element of six types, one wrong type each (rotating through the kinds).
    for base in [
        &b.patient,
        &b.observation,
        &b.encounter,
        &b.condition,
        &b.medication_request,
        &b.practitioner,
    ] {
        let rtype = base["resourceType"].as_str().unwrap_or_default().to_owned();
        let mut paths = Vec::new();
        element_paths(base, &mut Vec::new(), &mut paths);
        for (i, path) in paths.iter().enumerate() {
            let mut doc = base.clone();
            let Some(slot) = at_path(&mut doc, path) else {
                continue;
            };
            let kinds = wrong_kinds(slot);
            let Some((what, wrong)) = kinds.get(i % kinds.len().max(1)).cloned() else {
                continue;
            };
            *slot = wrong;
            c.body(
                format!("{what} at {}", path_text(&rtype, path)),
                Method::POST,
                rtype.clone(),
                doc.to_string(),
                &[422],
            );
        }
    }
    // Every top-level element of a Patient, every wrong kind, as an update of a seed.
    let mut update = b.patient.clone();
    update["id"] = json!(seeds.patient);
    let keys: Vec<String> = b
        .patient
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "resourceType").cloned().collect())
        .unwrap_or_default();
    for key in keys {
        for (what, wrong) in wrong_kinds(&update[key.as_str()]).into_iter().skip(1) {
            let mut doc = update.clone();
            doc[key.as_str()] = wrong;
            c.body(
                format!("an update with {what} at Patient.{key}"),
                Method::PUT,
                format!("Patient/{}", seeds.patient),
                doc.to_string(),
                &[422],
            );
        }
    }
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

fn deep_nesting(c: &mut Corpus, seeds: &Seeds) {
    c.category("deep nesting");
    for depth in [MAX_DEPTH + 1, 48, 64, 65, 128, 129, 1000, 10_000, 100_000] {
        c.body(
            format!("arrays nested {depth} deep"),
            Method::POST,
            "Patient",
            format!(
                "{{\"resourceType\":\"Patient\",\"extension\":{}}}",
                nested(depth, "[", "]", "1")
            ),
            &[400],
        );
    }
    for depth in [MAX_DEPTH + 1, 100, 1000, 10_000] {
        c.body(
            format!("objects nested {depth} deep"),
            Method::POST,
            "Observation",
            format!(
                "{{\"resourceType\":\"Observation\",\"code\":{}}}",
                nested(depth, "{\"a\":", "}", "1")
            ),
            &[400],
        );
    }
    c.body(
        "arrays and objects alternating 2000 deep",
        Method::PUT,
        format!("Patient/{}", seeds.patient),
        format!(
            "{{\"resourceType\":\"Patient\",\"id\":\"{}\",\"name\":{}}}",
            seeds.patient,
            nested(1000, "[{\"a\":", "}]", "1")
        ),
        &[400],
    );
    c.body(
        "arrays nested exactly at the limit (valid JSON, not valid FHIR)",
        Method::POST,
        "Patient",
        format!(
            "{{\"resourceType\":\"Patient\",\"extension\":{}}}",
            nested(MAX_DEPTH - 1, "[", "]", "1")
        ),
        &[400, 422],
    );
    c.body(
        "a transaction whose entry is nested 5000 deep",
        Method::POST,
        "",
        format!(
            "{{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{{\"resource\":{{\"resourceType\":\"Patient\",\"extension\":{}}},\"request\":{{\"method\":\"POST\",\"url\":\"Patient\"}}}}]}}",
            nested(5000, "[", "]", "1")
        ),
        &[400],
    );
    c.patch(
        "a patch value nested 100 deep",
        format!("Patient/{}", seeds.patient),
        format!(
            "[{{\"op\":\"add\",\"path\":\"/extension\",\"value\":{}}}]",
            nested(100, "[", "]", "1")
        ),
        &[400],
    );
    c.patch(
        "a patch document nested 10000 deep",
        format!("Patient/{}", seeds.patient),
        nested(10_000, "[", "]", ""),
        &[400],
    );
}

/// `n` pseudo-random alphanumeric characters (incompressible, unlike a repeated letter).
fn noise(n: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn huge(c: &mut Corpus, seeds: &Seeds) {
    c.category("huge strings and arrays");
    let seed_path = format!("Patient/{}", seeds.patient);
    let over = MAX_BODY + 1024;
    c.body(
        "a family name beyond the body limit",
        Method::POST,
        "Patient",
        json!({"resourceType": "Patient", "name": [{"family": "a".repeat(over)}]}).to_string(),
        &[413],
    );
    c.body(
        "200,000 given names (beyond the limit)",
        Method::POST,
        "Patient",
        json!({"resourceType": "Patient", "name": [{"given": vec!["a"; 200_000]}]}).to_string(),
        &[413],
    );
    c.body(
        "an update beyond the limit",
        Method::PUT,
        seed_path.clone(),
        json!({"resourceType": "Patient", "id": seeds.patient, "name": [{"family": noise(over, 1)}]})
            .to_string(),
        &[413],
    );
    c.body(
        "a transaction beyond the limit",
        Method::POST,
        "",
        transaction(vec![post_entry(
            None,
            json!({"resourceType": "Patient", "name": [{"family": "a".repeat(over)}]}),
        )]),
        &[413],
    );
    c.patch(
        "a patch beyond the limit",
        seed_path.clone(),
        json!([{"op": "add", "path": "/name/0/family", "value": "a".repeat(over)}]).to_string(),
        &[413],
    );
    c.push(
        "a search form beyond the body limit",
        Method::POST,
        "Patient/_search",
        Payload::Bytes(format!("family={}", "a".repeat(over)).into_bytes()),
        Expect::Status(&[413, 414]),
    )
    .header("content-type", "application/x-www-form-urlencoded");
    c.push(
        "a search form beyond the URL limit",
        Method::POST,
        "Patient/_search",
        Payload::Bytes(format!("family={}", "a".repeat(MAX_URL + 10)).into_bytes()),
        Expect::Status(&[414]),
    )
    .header("content-type", "application/x-www-form-urlencoded");
    c.get(
        "a URL beyond the limit",
        Method::GET,
        format!("Patient?family={}", "a".repeat(MAX_URL + 10)),
        &[414],
    );
    c.get(
        "an id in the URL beyond the URL limit",
        Method::GET,
        format!("Patient/{}", "a".repeat(MAX_URL + 10)),
        &[404, 414],
    );
    // Just under the limit: a valid resource may be stored, an invalid one refused; never 5xx.
    let under = MAX_BODY - 2048;
    let allowed: Vec<(&str, &str, Value)> = vec![
        (
            "a repeated-letter family name just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"family": "a".repeat(under)}]}),
        ),
        (
            "a random family name just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"family": noise(under, 2)}]}),
        ),
        (
            "a random identifier value just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "identifier": [{"system": "urn:hostile", "value": noise(under, 3)}]}),
        ),
        (
            "a random identifier system just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "identifier": [{"system": format!("urn:{}", noise(under, 4)), "value": "x"}]}),
        ),
        (
            "12,000 identifiers just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "identifier": (0..12_000).map(|i| json!({"value": format!("{i:x}")})).collect::<Vec<_>>()}),
        ),
        (
            "30,000 given names just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"given": (0..30_000).map(|i| format!("{i:x}")).collect::<Vec<_>>()}]}),
        ),
        (
            "a random note just under the limit",
            "Observation",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "note": [{"text": noise(under, 5)}]}),
        ),
        (
            "a random code just under the limit",
            "Observation",
            json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": noise(under, 6)}]}}),
        ),
        (
            "a random reference id just under the limit",
            "Observation",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": format!("Patient/{}", noise(under, 7))}}),
        ),
        (
            "a random tag just under the limit",
            "Patient",
            json!({"resourceType": "Patient", "meta": {"tag": [{"system": "urn:t", "code": noise(under, 8)}]}}),
        ),
        (
            "20,000 unknown elements just under the limit",
            "Patient",
            json!(
                (0..20_000)
                    .map(|i| (format!("x{i:x}"), json!(1)))
                    .chain([("resourceType".to_owned(), json!("Patient"))])
                    .collect::<serde_json::Map<_, _>>()
            ),
        ),
        (
            "a 200,000-digit integer",
            "Patient",
            serde_json::from_str(&format!(
                "{{\"resourceType\":\"Patient\",\"multipleBirthInteger\":{}}}",
                "9".repeat(200_000)
            ))
            .unwrap_or(Value::Null),
        ),
        (
            "a key of 200,000 characters",
            "Patient",
            json!({"resourceType": "Patient", ("a".repeat(200_000)): 1}),
        ),
    ];
    for (what, rtype, doc) in allowed {
        c.push(
            what,
            Method::POST,
            rtype,
            Payload::Bytes(doc.to_string().into_bytes()),
            Expect::Allowed(JUST_UNDER_LIMIT),
        )
        .header("content-type", FHIR_JSON);
    }
}

fn bad_ids(c: &mut Corpus, seeds: &Seeds) {
    c.category("bad ids");
    let long = "a".repeat(65);
    let in_url = [
        long.as_str(),
        "a_b",
        "a%20b",
        "a%2Fb",
        "%2F",
        "a$b",
        "%C3%A9",
        "%00",
        "a;b",
        "a,b",
        "*",
        "%25",
        "a%2Eb",
        "..%2F..%2Fetc",
    ];
    for id in in_url {
        c.get(
            format!("a read of id {id:?}"),
            Method::GET,
            format!("Patient/{id}"),
            &[400, 404],
        );
    }
    for id in &in_url[..8] {
        c.body(
            format!("an update of id {id:?}"),
            Method::PUT,
            format!("Patient/{id}"),
            json!({"resourceType": "Patient", "id": id}).to_string(),
            &[400, 404],
        );
        c.get(
            format!("a delete of id {id:?}"),
            Method::DELETE,
            format!("Patient/{id}"),
            &[400, 404],
        );
        c.patch(
            format!("a patch of id {id:?}"),
            format!("Patient/{id}"),
            r#"[{"op":"add","path":"/active","value":true}]"#,
            &[400, 404],
        );
        c.get(
            format!("the history of id {id:?}"),
            Method::GET,
            format!("Patient/{id}/_history"),
            &[400, 404],
        );
    }
    // Dot segments, written raw (a URL library would remove them).
    for (method, id, body) in [
        ("GET", "..", ""),
        ("GET", ".", ""),
        ("GET", "%2e%2e", ""),
        ("DELETE", "..", ""),
        ("PUT", "..", "{\"resourceType\":\"Patient\",\"id\":\"..\"}"),
        ("PUT", ".", "{\"resourceType\":\"Patient\",\"id\":\".\"}"),
        ("PUT", "%2E", "{\"resourceType\":\"Patient\",\"id\":\".\"}"),
    ] {
        let len = body.len().to_string();
        let headers: Vec<(&str, &[u8])> = if body.is_empty() {
            Vec::new()
        } else {
            vec![
                ("Content-Type", FHIR_JSON.as_bytes()),
                ("Content-Length", len.as_bytes()),
            ]
        };
        c.raw(
            format!("{method} Patient/{id} (raw)"),
            method,
            &format!("/fhir/Patient/{id}"),
            &headers,
            body.as_bytes(),
            None,
            false,
            &[400, 404],
        );
    }
    c.raw(
        "a vread through a dot segment (raw)",
        "GET",
        &format!("/fhir/Patient/{}/_history/..", seeds.patient),
        &[],
        b"",
        None,
        false,
        &[400, 404],
    );
    // Ids in the body.
    let bodies: Vec<(String, Value)> = vec![
        ("65 characters".into(), json!(long)),
        ("a space".into(), json!("a b")),
        ("empty".into(), json!("")),
        ("a number".into(), json!(12)),
        ("an array".into(), json!(["x"])),
        ("an object".into(), json!({"x": 1})),
        ("null".into(), Value::Null),
        ("two dots".into(), json!("..")),
        ("one dot".into(), json!(".")),
        ("a slash".into(), json!("a/b")),
        ("a type and id".into(), json!("Patient/1")),
        ("an underscore".into(), json!("a_b")),
        ("an accented letter".into(), json!("é")),
        ("a NUL".into(), json!("a\u{0}b")),
    ];
    for (what, id) in bodies {
        c.body(
            format!("a create whose body id is {what}"),
            Method::POST,
            "Patient",
            json!({"resourceType": "Patient", "id": id}).to_string(),
            &[400, 422],
        );
    }
    let seed_path = format!("Patient/{}", seeds.patient);
    c.body(
        "an update whose body id is another's",
        Method::PUT,
        seed_path.clone(),
        json!({"resourceType": "Patient", "id": seeds.patient_b}).to_string(),
        &[400],
    );
    c.body(
        "an update without a body id",
        Method::PUT,
        seed_path.clone(),
        json!({"resourceType": "Patient", "active": false}).to_string(),
        &[400],
    );
    c.body(
        "an update whose body id is two dots",
        Method::PUT,
        seed_path,
        json!({"resourceType": "Patient", "id": ".."}).to_string(),
        &[400, 422],
    );
    for v in ["x", "-1", "0", "1.0", "99999999999999999999999"] {
        c.get(
            format!("a vread of version {v:?}"),
            Method::GET,
            format!("Patient/{}/_history/{v}", seeds.patient),
            &[400, 404],
        );
    }
}

fn bad_references(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("bad references");
    let long = format!("Patient/{}", "a".repeat(65));
    let refs = [
        "Patient/",
        "/",
        "Patient/a/b/c/d",
        "Foo/123",
        "patient/123",
        "#",
        "#missing",
        "Patient//1",
        "/Patient/1",
        "Patient/a b",
        long.as_str(),
        "Patient?identifier=urn:hostile|p-1",
        "Patient/1/_history/",
        "Patient/1/_history/a b",
        "urn:uuid:",
        "urn:uuid:not-a-uuid",
        "Patient/1/",
        "Practitioner/1",
    ];
    for r in refs {
        let mut o = b.observation.clone();
        o["subject"] = json!({"reference": r});
        c.body(
            format!("Observation.subject {r:?}"),
            Method::POST,
            "Observation",
            o.to_string(),
            &[400, 422],
        );
        if r == "Practitioner/1" {
            continue;
        }
        let mut p = b.patient.clone();
        p["generalPractitioner"] = json!([{"reference": r}]);
        c.body(
            format!("Patient.generalPractitioner {r:?}"),
            Method::POST,
            "Patient",
            p.to_string(),
            &[400, 422],
        );
    }
    let mut e = b.encounter.clone();
    for (what, value) in [
        ("a number", json!(5)),
        ("an empty string", json!("")),
        ("an object", json!({"x": 1})),
        ("Observation (not allowed here)", json!("Observation/1")),
    ] {
        e["serviceProvider"] = json!({"reference": value});
        c.body(
            format!("Encounter.serviceProvider {what}"),
            Method::POST,
            "Encounter",
            e.to_string(),
            &[400, 422],
        );
    }
    let mut o = b.observation.clone();
    o["contained"] = json!([{"resourceType": "Patient", "id": "p1"}]);
    o["subject"] = json!({"reference": "#p2"});
    c.body(
        "a local reference to a contained id that is not there",
        Method::POST,
        "Observation",
        o.to_string(),
        &[400, 422],
    );
    let mut p = b.patient.clone();
    p["id"] = json!(seeds.patient);
    p["generalPractitioner"] = json!([{"reference": "Patient/"}]);
    c.body(
        "an update with a reference without an id",
        Method::PUT,
        format!("Patient/{}", seeds.patient),
        p.to_string(),
        &[400, 422],
    );
}

fn bad_search(c: &mut Corpus, seeds: &Seeds) {
    c.category("bad search syntax");
    let patient = [
        // Prefixes and dates.
        "birthdate=xx2020-01-01",
        "birthdate=gtt2020",
        "birthdate=ge",
        "birthdate=eq",
        "birthdate=lt-2020",
        "birthdate=2020-13-45",
        "birthdate=2020-02-30",
        "birthdate=20200101",
        "birthdate=2020-1-1",
        "birthdate=2020-01-01T25:00:00Z",
        "birthdate=ge2020-13",
        "birthdate=%20",
        "birthdate=ge2020,xx2021",
        "_lastUpdated=gt2020-99-01",
        "_lastUpdated=yesterday",
        // Modifiers.
        "family:unknown=x",
        "family:exact:contains=x",
        "family:=x",
        "gender:contains=x",
        "gender:missing=maybe",
        "birthdate:exact=2020",
        "birthdate:contains=2020",
        "_id:exact=x",
        "general-practitioner:Foo=1",
        "identifier:of-type=x",
        "identifier:below=x",
        // Empty values and names.
        "family=",
        "birthdate=",
        "gender=",
        "_id=",
        "=x",
        "family",
        "_count=",
        "family=&gender=",
        // _count.
        "_count=5&_count=10",
        "_count=-1",
        "_count=1e9",
        "_count=abc",
        "_count=99999999999999999999999",
        "_count=1.5",
        "_count=%205",
        "_count=0x10",
        // Other result parameters.
        "_total=maybe",
        "_summary=bogus",
        "_summary=count&_summary=false",
        "_sort=bogus",
        "_sort=family,bogus",
        "_sort=",
        "_sort=-",
        "_sort=family,,given",
        "_sort=family&_sort=given",
        "_cursor=~7b7d",
        "_cursor=~zz",
        "_elements=a.b",
        "_elements=name%20x",
        "_cursor=a/b",
        // Chains.
        "general-practitioner.name=x",
        "general-practitioner:Practitioner.bogus=x",
        "bogus.name=x",
        "general-practitioner:Practitioner.name:unknown=x",
        // _has.
        "_has=x",
        "_has:Observation=x",
        "_has:Observation:patient=x",
        "_has:Foo:patient:code=1",
        "_has:Observation:bogus:code=1",
        "_has:Observation:patient:bogus=1",
        "_has::patient:code=1",
        "_has:Observation:patient:date=2020-13-45",
        // _include and _revinclude.
        "_include=Patient:bogus",
        "_include=Bogus:x",
        "_include=Patient:general-practitioner:Bogus",
        "_include=Patient",
        "_include=:",
        "_include=",
        "_revinclude=*",
        "_revinclude=Observation:bogus",
        "_include:bogus=Patient:general-practitioner",
        // Unknown and unsupported parameters.
        "bogus=1",
        "nam=x",
        "_contained=true",
        "_text=x",
        "_content=x",
        "_query=x",
        "_list=x",
        "_filter=name%20eq%20x",
        "_type=Patient",
        // Tokens and references.
        "identifier=|",
        "gender=a|b|c",
        "general-practitioner=Practitioner/",
        "general-practitioner=/",
        "general-practitioner=Foo/1",
        "general-practitioner=a/b/c/d",
        "general-practitioner=Practitioner/a%20b",
        "_id=a/b",
        // Control characters.
        "family=%00",
        "family=a%00b",
        "identifier=urn:x|%00",
        "given=%01%02",
        "name=%1b",
    ];
    for q in patient {
        c.get(
            format!("Patient?{q}"),
            Method::GET,
            format!("Patient?{q}"),
            &[400],
        )
        .strict();
    }
    let observation = [
        "value-quantity=abc",
        "date=2020-13",
        "date=ap",
        "code=|||",
        "code:text:x=1",
        "subject.name=x",
        "subject:Patient.birthdate=2020-99",
        "subject:Patient.general-practitioner:Practitioner.name:bogus=x",
        "combo-code-value-quantity=x",
        "status:not=",
        "patient=Patient/",
        "encounter=Encounter/a/b",
        "_include=Observation:subject:Bogus",
        "_include:iterate=Observation:bogus",
        "category:in=x",
        "code:below=x",
    ];
    for q in observation {
        c.get(
            format!("Observation?{q}"),
            Method::GET,
            format!("Observation?{q}"),
            &[400],
        )
        .strict();
    }
    let encounter = [
        // Chains and _has nested beyond what the server follows.
        "based-on:ServiceRequest.encounter:Encounter.based-on:ServiceRequest.encounter:Encounter.based-on:ServiceRequest.status=active",
        "_has:ServiceRequest:encounter:_has:Encounter:based-on:_has:ServiceRequest:encounter:_has:Encounter:based-on:_has:ServiceRequest:encounter:status=active",
        "date=2020-01-01T10:00:00+25:00",
        "class=|",
    ];
    for q in encounter {
        c.get(
            format!("Encounter?{q}"),
            Method::GET,
            format!("Encounter?{q}"),
            &[400],
        )
        .strict();
    }
    for (what, path, expect) in [
        ("an unknown type", "Foo?x=1", &[404u16] as &[u16]),
        ("a lower-case type", "patient?family=x", &[404]),
        ("an unserved format", "Patient?_format=text/html", &[406]),
        (
            "history with a bad _since",
            "_history?_since=yesterday",
            &[400],
        ),
        (
            "history with a bad _count",
            "Patient/_history?_count=-1",
            &[400],
        ),
        (
            "history with a bad _at",
            "Patient/{p}/_history?_at=2020-13",
            &[400],
        ),
        ("history with a bad cursor", "_history?_cursor=zz", &[400]),
        (
            "$everything of an unknown type",
            "Patient/{p}/$everything?_type=Foo",
            &[400],
        ),
        (
            "$everything with an unknown parameter",
            "Patient/{p}/$everything?bogus=1",
            &[400],
        ),
        (
            "$everything with a bad _since",
            "Patient/{p}/$everything?_since=x",
            &[400],
        ),
        (
            "$everything with a bad _count",
            "Patient/{p}/$everything?_count=-1",
            &[400],
        ),
        (
            "$everything with a bad cursor",
            "Patient/{p}/$everything?_cursor=x/y/z",
            &[400],
        ),
    ] {
        c.get(
            what,
            Method::GET,
            path.replace("{p}", &seeds.patient),
            expect,
        )
        .strict();
    }
    // The audit log's own search.
    let auditor = format!("Bearer {}", c.auditor);
    for (what, path, expect) in [
        (
            "a NUL patient",
            "AuditEvent?patient=%00",
            &[400u16] as &[u16],
        ),
        ("a NUL agent", "AuditEvent?agent=a%00b", &[400]),
        ("a bad date", "AuditEvent?date=2020-13-45", &[400]),
        ("an unknown action", "AuditEvent?action=Z", &[400]),
        ("an unknown parameter", "AuditEvent?bogus=1", &[400]),
        ("a negative _count", "AuditEvent?_count=-1", &[400]),
        ("a bad cursor", "AuditEvent?_cursor=zz", &[400]),
        ("a read of a bad id", "AuditEvent/%00", &[400, 404]),
        ("a read of an id of three parts", "AuditEvent/0-0-x", &[404]),
    ] {
        c.get(format!("AuditEvent: {what}"), Method::GET, path, expect)
            .no_auth()
            .header("authorization", auditor.clone());
    }
    c.get(
        "AuditEvent search by a system client",
        Method::GET,
        "AuditEvent?patient=x",
        &[403],
    );
    c.body(
        "an AuditEvent created",
        Method::POST,
        "AuditEvent",
        "{\"resourceType\":\"AuditEvent\"}",
        &[405],
    )
    .no_auth()
    .header("authorization", auditor);
    c.push(
        "a search form with an unknown parameter",
        Method::POST,
        "Patient/_search",
        Payload::Bytes(b"bogus=1".to_vec()),
        Expect::Status(&[400]),
    )
    .header("content-type", "application/x-www-form-urlencoded")
    .strict();
    c.push(
        "a search form with a bad date",
        Method::POST,
        "Patient/_search",
        Payload::Bytes(b"birthdate=2020-13-45".to_vec()),
        Expect::Status(&[400]),
    )
    .header("content-type", "application/x-www-form-urlencoded")
    .strict();
    c.push(
        "a search form as JSON",
        Method::POST,
        "Patient/_search",
        Payload::Bytes(b"{\"family\":\"x\"}".to_vec()),
        Expect::Status(&[415]),
    )
    .header("content-type", "application/json")
    .strict();
    c.get(
        "200 parameters, most unknown",
        Method::GET,
        format!(
            "Patient?{}",
            (0..200)
                .map(|i| format!("p{i}=1"))
                .collect::<Vec<_>>()
                .join("&")
        ),
        &[400],
    )
    .strict();
}

fn bad_dates(c: &mut Corpus, b: &Bases) {
    c.category("bad dates in bodies");
    for date in [
        json!("2020-13-45"),
        json!("2020-02-30"),
        json!("2021-02-29"),
        json!("2020-1-1"),
        json!("20200101"),
        json!("2020-01-01T10:00:00Z"),
        json!("0000"),
        json!("2020-00-10"),
        json!("2020-01-00"),
        json!("+2020-01-01"),
        json!("2020/01/01"),
        json!("2020-01-01 "),
        json!(" 2020"),
        json!("10000"),
        json!("2020-01-32"),
        json!(2020),
        json!(""),
        json!("1980-02-29T"),
        json!("2020-06-31"),
    ] {
        let mut p = b.patient.clone();
        p["birthDate"] = date.clone();
        c.body(
            format!("Patient.birthDate {date}"),
            Method::POST,
            "Patient",
            p.to_string(),
            &[422],
        );
    }
    for dt in [
        "2020-01-01T10:00:00",
        "2020-01-01T24:00:00Z",
        "2020-01-01T10:60:00Z",
        "2020-01-01T10:00Z",
        "2020-01-01T10:00:00.Z",
        "2020-01-01T10:00:00+25:00",
        "2020-01-01T10:00:00+14:30",
        "2020-02-30T10:00:00Z",
        "2020-01-01T",
        "T10:00:00Z",
        "2020-01-01t10:00:00z",
        "2020-01-01T10:00:00 Z",
    ] {
        let mut o = b.observation.clone();
        o["effectiveDateTime"] = json!(dt);
        c.body(
            format!("Observation.effectiveDateTime {dt:?}"),
            Method::POST,
            "Observation",
            o.to_string(),
            &[422],
        );
    }
    for instant in [
        "2020-01-01",
        "2020-01-01T10:00:00",
        "2020",
        "2020-01-01T10:00:00.000",
    ] {
        let mut o = b.observation.clone();
        o["issued"] = json!(instant);
        c.body(
            format!("Observation.issued {instant:?}"),
            Method::POST,
            "Observation",
            o.to_string(),
            &[422],
        );
    }
    for time in ["25:00:00", "10:00", "10:00:00Z", "1000"] {
        let mut o = b.observation.clone();
        if let Some(m) = o.as_object_mut() {
            m.shift_remove("valueQuantity");
        }
        o["valueTime"] = json!(time);
        c.body(
            format!("Observation.valueTime {time:?}"),
            Method::POST,
            "Observation",
            o.to_string(),
            &[422],
        );
    }
    for (what, period) in [
        ("a period start in month 13", json!({"start": "2020-13-01"})),
        (
            "a period that ends before it starts",
            json!({"start": "2020-02-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"}),
        ),
        (
            "a period whose end year is before its start",
            json!({"start": "2021", "end": "2020"}),
        ),
    ] {
        let mut e = b.encounter.clone();
        e["period"] = period;
        c.body(what, Method::POST, "Encounter", e.to_string(), &[422]);
    }
    let mut cond = b.condition.clone();
    cond["onsetDateTime"] = json!("yesterday");
    c.body(
        "Condition.onsetDateTime \"yesterday\"",
        Method::POST,
        "Condition",
        cond.to_string(),
        &[422],
    );
    let mut m = b.medication_request.clone();
    m["authoredOn"] = json!("2020-02-31");
    c.body(
        "MedicationRequest.authoredOn 2020-02-31",
        Method::POST,
        "MedicationRequest",
        m.to_string(),
        &[422],
    );
    let mut p = b.patient.clone();
    if let Some(m) = p.as_object_mut() {
        m.shift_remove("deceasedBoolean");
    }
    p["deceasedDateTime"] = json!("2020-13-01T00:00:00Z");
    c.body(
        "Patient.deceasedDateTime in month 13",
        Method::POST,
        "Patient",
        p.to_string(),
        &[422],
    );
}

fn control_characters(c: &mut Corpus, b: &Bases) {
    c.category("control characters in bodies");
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut p = b.patient.clone();
    p["name"][0]["family"] = json!("a\u{0}b");
    cases.push(("a NUL in a family name", p, "Patient"));
    let mut p = b.patient.clone();
    p["name"][0]["given"][1] = json!("\u{1}");
    cases.push(("U+0001 as a given name", p, "Patient"));
    let mut p = b.patient.clone();
    p["identifier"][0]["value"] = json!("x\u{7f}");
    cases.push(("DEL in an identifier", p, "Patient"));
    let mut p = b.patient.clone();
    p["text"] = json!({"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">\u{0}</div>"});
    cases.push(("a NUL in the narrative", p, "Patient"));
    let mut o = b.observation.clone();
    o["note"][0]["text"] = json!("\u{1b}[31mred");
    cases.push(("an escape sequence in a note", o, "Observation"));
    let mut o = b.observation.clone();
    o["code"]["coding"][0]["code"] = json!("\u{0}");
    cases.push(("a NUL code", o, "Observation"));
    let mut o = b.observation.clone();
    o["extension"] = json!([{"url": "urn:x", "valueString": "a\u{0}"}]);
    cases.push(("a NUL in an extension", o, "Observation"));
    let mut e = b.encounter.clone();
    e["type"][0]["text"] = json!("next\u{85}line");
    cases.push(("a C1 control character", e, "Encounter"));
    for (what, doc, rtype) in cases {
        c.body(what, Method::POST, rtype, doc.to_string(), &[422]);
    }
}

fn oversized_and_slow(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("oversized and slow bodies");
    let p = b.patient.to_string().into_bytes();
    let ctype: (&str, &[u8]) = ("Content-Type", FHIR_JSON.as_bytes());
    c.raw(
        "a Content-Length far beyond the limit",
        "POST",
        "/fhir/Patient",
        &[ctype, ("Content-Length", b"10000000")],
        &p[..20],
        None,
        true,
        &[413],
    );
    let one_over = (MAX_BODY + 1).to_string();
    c.raw(
        "a Content-Length one byte over the limit",
        "POST",
        "/fhir/Patient",
        &[ctype, ("Content-Length", one_over.as_bytes())],
        &p[..20],
        None,
        true,
        &[413],
    );
    c.raw(
        "a body larger than its Content-Length",
        "POST",
        "/fhir/Patient",
        &[ctype, ("Content-Length", b"30")],
        &p,
        None,
        false,
        &[400],
    );
    let declared = (p.len() + 100).to_string();
    c.raw(
        "a body shorter than its Content-Length",
        "POST",
        "/fhir/Patient",
        &[ctype, ("Content-Length", declared.as_bytes())],
        &p,
        None,
        true,
        &[400],
    );
    let broken = &p[..p.len() - 1];
    let len = broken.len().to_string();
    c.raw(
        "a body that stalls half-way (raw)",
        "POST",
        "/fhir/Patient",
        &[ctype, ("Content-Length", len.as_bytes())],
        broken,
        Some((100 + broken.len() / 2, Duration::from_millis(800))),
        false,
        &[400],
    );
    let mut invalid = b.patient.clone();
    invalid["gender"] = json!("woman");
    let invalid = invalid.to_string().into_bytes();
    let len = invalid.len().to_string();
    c.raw(
        "an invalid resource sent after a pause (raw)",
        "PUT",
        &format!("/fhir/Patient/{}", seeds.patient),
        &[ctype, ("Content-Length", len.as_bytes())],
        &invalid,
        Some((150, Duration::from_millis(500))),
        false,
        &[400, 422],
    );
    let chunks = |body: &[u8], n: usize| -> Vec<Vec<u8>> {
        body.chunks(body.len().div_ceil(n))
            .map(<[u8]>::to_vec)
            .collect()
    };
    c.push(
        "a broken body in chunks with pauses",
        Method::POST,
        "Patient",
        Payload::Slow {
            chunks: chunks(broken, 5),
            pause: Duration::from_millis(200),
        },
        Expect::Status(&[400]),
    )
    .header("content-type", FHIR_JSON);
    c.push(
        "an invalid resource in chunks with pauses",
        Method::POST,
        "Patient",
        Payload::Slow {
            chunks: chunks(&invalid, 4),
            pause: Duration::from_millis(250),
        },
        Expect::Status(&[422]),
    )
    .header("content-type", FHIR_JSON);
    c.push(
        "a chunked body that grows beyond the limit slowly",
        Method::POST,
        "Patient",
        Payload::Slow {
            chunks: (0..6).map(|_| vec![b' '; MAX_BODY / 4]).collect(),
            pause: Duration::from_millis(100),
        },
        Expect::Status(&[413]),
    )
    .header("content-type", FHIR_JSON);
    c.push(
        "a chunked transaction beyond the limit",
        Method::POST,
        "",
        Payload::Slow {
            chunks: (0..3).map(|_| vec![b'['; MAX_BODY / 2]).collect(),
            pause: Duration::from_millis(50),
        },
        Expect::Status(&[413]),
    )
    .header("content-type", FHIR_JSON);
    c.push(
        "a chunked patch beyond the limit",
        Method::PATCH,
        format!("Patient/{}", seeds.patient),
        Payload::Slow {
            chunks: (0..3).map(|_| vec![b' '; MAX_BODY / 2]).collect(),
            pause: Duration::from_millis(50),
        },
        Expect::Status(&[413]),
    )
    .header("content-type", JSON_PATCH);
}

fn headers(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("duplicate, conflicting and garbage headers");
    let seed_path = format!("Patient/{}", seeds.patient);
    let valid = json!({"resourceType": "Patient", "name": [{"family": "Header"}]}).to_string();
    let mut update = b.patient.clone();
    update["id"] = json!(seeds.patient);
    let update = update.to_string();
    for (what, types, expect) in [
        (
            "two Content-Types, JSON first",
            &[FHIR_JSON, "text/plain"][..],
            &[400u16, 415] as &[u16],
        ),
        (
            "two Content-Types, JSON second",
            &["text/plain", FHIR_JSON],
            &[400, 415],
        ),
        (
            "the same Content-Type twice",
            &[FHIR_JSON, FHIR_JSON],
            &[400, 415],
        ),
        (
            "a Content-Type in Latin-1",
            &["application/fhir+json; charset=iso-8859-1"],
            &[415],
        ),
        (
            "a Content-Type in UTF-16",
            &["application/fhir+json; charset=utf-16"],
            &[415],
        ),
        ("an empty Content-Type", &[""], &[415]),
        ("an HTML Content-Type", &["text/html"], &[415]),
        (
            "a form Content-Type",
            &["application/x-www-form-urlencoded"],
            &[415],
        ),
        ("a wildcard Content-Type", &["*/*"], &[415]),
        (
            "a JSON Patch Content-Type on a create",
            &[JSON_PATCH],
            &[415],
        ),
        ("a Content-Type without a subtype", &["application"], &[415]),
    ] {
        let case = c.push(
            what,
            Method::POST,
            "Patient",
            Payload::Bytes(valid.clone().into_bytes()),
            Expect::Status(expect),
        );
        for t in types {
            case.header("content-type", *t);
        }
    }
    c.push(
        "no Content-Type",
        Method::POST,
        "Patient",
        Payload::Bytes(valid.clone().into_bytes()),
        Expect::Status(&[415]),
    );
    c.body(
        "an update without a body",
        Method::PUT,
        seed_path.clone(),
        "",
        &[400],
    );
    // Content codings the server does not speak: the bytes are not JSON to be read as is.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = std::io::Write::write_all(&mut gz, &vec![b' '; 50 * 1024 * 1024]);
    let bomb = gz.finish().unwrap_or_default();
    for (what, coding, body) in [
        (
            "a gzip Content-Encoding on a plain body",
            "gzip",
            valid.clone().into_bytes(),
        ),
        ("a gzip bomb (50 MB of spaces)", "gzip", bomb),
        ("a br Content-Encoding", "br", valid.clone().into_bytes()),
        (
            "an unknown Content-Encoding",
            "x-hostile",
            valid.clone().into_bytes(),
        ),
    ] {
        c.body(what, Method::POST, "Patient", body, &[415])
            .header("content-encoding", coding);
    }
    // Preconditions.
    c.body(
        "two If-Match headers",
        Method::PUT,
        seed_path.clone(),
        update.clone(),
        &[400],
    )
    .header("if-match", "W/\"1\"")
    .header("if-match", "W/\"2\"");
    c.body(
        "two equal If-Match headers",
        Method::PUT,
        seed_path.clone(),
        update.clone(),
        &[400],
    )
    .header("if-match", "W/\"1\"")
    .header("if-match", "W/\"1\"");
    for tag in [
        "banana",
        "W/",
        "\"\"",
        "W/\"-1\"",
        "W/\"1\", W/\"2\"",
        "*",
        "W/\"99999999999999999999999\"",
        "W/\"1.0\"",
    ] {
        c.body(
            format!("If-Match {tag} on an update"),
            Method::PUT,
            seed_path.clone(),
            update.clone(),
            &[400],
        )
        .header("if-match", tag);
    }
    for tag in ["banana", "W/\"x\""] {
        c.get(
            format!("If-Match {tag} on a delete"),
            Method::DELETE,
            seed_path.clone(),
            &[400],
        )
        .header("if-match", tag);
        c.patch(
            format!("If-Match {tag} on a patch"),
            seed_path.clone(),
            r#"[{"op":"add","path":"/active","value":false}]"#,
            &[400],
        )
        .header("if-match", tag);
    }
    for tag in ["banana", "W/", "W/\"1\" junk"] {
        c.get(
            format!("If-None-Match {tag} on a read"),
            Method::GET,
            seed_path.clone(),
            &[400],
        )
        .header("if-none-match", tag);
    }
    for since in ["yesterday", "Mon, 32 Foo 2020 99:99:99 GMT"] {
        c.push(
            format!("If-Modified-Since {since:?} on a read"),
            Method::GET,
            seed_path.clone(),
            Payload::None,
            Expect::Allowed(IGNORED_IF_MODIFIED_SINCE),
        )
        .header("if-modified-since", since);
    }
    for (what, criteria, expect) in [
        (
            "If-None-Exist with an unknown parameter",
            "bogus=1",
            &[400u16] as &[u16],
        ),
        (
            "If-None-Exist with a bad date",
            "birthdate=2020-13-45",
            &[400],
        ),
        ("an empty If-None-Exist", "", &[400]),
        (
            "If-None-Exist with only an empty value",
            "family=",
            &[400, 412],
        ),
        ("If-None-Exist with only _count", "_count=1", &[400, 412]),
        ("If-None-Exist of only a question mark", "?", &[400]),
        ("If-None-Exist with a NUL", "family=%00", &[400]),
    ] {
        c.body(what, Method::POST, "Patient", valid.clone(), expect)
            .header("if-none-exist", criteria);
    }
    c.body(
        "two If-None-Exist headers",
        Method::POST,
        "Patient",
        valid.clone(),
        &[400],
    )
    .header("if-none-exist", "identifier=urn:hostile|nobody")
    .header("if-none-exist", "identifier=urn:hostile|p-1");
    // Credentials.
    let token = c.token.clone();
    c.get(
        "the Authorization header twice",
        Method::GET,
        seed_path.clone(),
        &[400],
    )
    .header("authorization", format!("Bearer {token}"));
    c.get(
        "a good and a bad Authorization header",
        Method::GET,
        seed_path.clone(),
        &[400, 401],
    )
    .no_auth()
    .header("authorization", format!("Bearer {token}"))
    .header("authorization", "Bearer junk");
    c.get(
        "a bad and a good Authorization header",
        Method::GET,
        seed_path.clone(),
        &[400, 401],
    )
    .no_auth()
    .header("authorization", "Bearer junk")
    .header("authorization", format!("Bearer {token}"));
    let none_alg = format!(
        "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        token.split('.').nth(1).unwrap_or_default()
    );
    for (what, value) in [
        ("Basic credentials", "Basic dXNlcjpwYXNz".to_owned()),
        ("Bearer without a token", "Bearer".to_owned()),
        ("a token of three empty parts", "Bearer ..".to_owned()),
        ("a token of junk parts", "Bearer a.b.c".to_owned()),
        (
            "a 6000-character token",
            format!("Bearer {}", "a".repeat(6000)),
        ),
        ("another scheme", format!("Token {token}")),
        ("a token signed with alg none", none_alg),
        (
            "a token with its signature cut",
            format!("Bearer {}", &token[..token.len() - 4]),
        ),
    ] {
        c.get(what, Method::GET, seed_path.clone(), &[401])
            .no_auth()
            .header("authorization", value);
    }
    c.raw(
        "an Authorization header of invalid UTF-8 (raw)",
        "GET",
        &format!("/fhir/{seed_path}"),
        &[("Authorization", b"Bearer \xff\xfe")],
        b"",
        None,
        false,
        &[401],
    );
    c.get(
        "no Authorization header",
        Method::GET,
        seed_path.clone(),
        &[401],
    )
    .no_auth();
    for value in ["junk", "0/0,zz"] {
        c.get(
            format!("X-Consistency-Token {value:?}"),
            Method::GET,
            seed_path.clone(),
            &[400],
        )
        .header("x-consistency-token", value);
    }
    for (what, reason, expect) in [
        (
            "an empty break-glass reason",
            String::new(),
            &[400u16] as &[u16],
        ),
        (
            "a 600-character break-glass reason",
            "x".repeat(600),
            &[400],
        ),
        (
            "break-glass by a system client",
            "emergency".to_owned(),
            &[403],
        ),
    ] {
        c.get(what, Method::GET, seed_path.clone(), expect)
            .header("x-break-glass-reason", reason);
    }
    for accept in ["text/html", "image/png", "application/pdf, text/csv"] {
        c.get(
            format!("Accept {accept}"),
            Method::GET,
            seed_path.clone(),
            &[406],
        )
        .header("accept", accept);
    }
}

fn wrong_methods(c: &mut Corpus, seeds: &Seeds, b: &Bases) {
    c.category("wrong methods");
    let seed = format!("Patient/{}", seeds.patient);
    let mut update = b.patient.clone();
    update["id"] = json!(seeds.patient);
    let methods: Vec<(&str, String, &'static [u16])> = vec![
        ("TRACE", "Patient".into(), &[405]),
        ("OPTIONS", "Patient".into(), &[405]),
        ("PATCH", "Patient".into(), &[405]),
        ("DELETE", String::new(), &[405]),
        ("PUT", String::new(), &[405]),
        ("PATCH", String::new(), &[405]),
        ("GET", String::new(), &[404]),
        ("POST", seed.clone(), &[405]),
        ("POST", format!("{seed}/_history"), &[405]),
        ("DELETE", format!("{seed}/_history/1"), &[405]),
        ("PUT", format!("{seed}/_history/1"), &[405]),
        ("PUT", "metadata".into(), &[405]),
        ("DELETE", "metadata".into(), &[405]),
        ("POST", "metadata".into(), &[405]),
        ("PUT", "Patient/_history".into(), &[404, 405]),
        ("DELETE", "Patient/_search".into(), &[404, 405]),
        ("POST", "_history".into(), &[405]),
        ("DELETE", "_history".into(), &[405]),
        ("FOO", "Patient".into(), &[405]),
        ("PROPFIND", seed.clone(), &[405]),
        ("MKCOL", String::new(), &[405]),
        ("LINK", seed.clone(), &[405]),
        ("POST", format!("{seed}/$everything"), &[404, 405]),
        ("GET", format!("{seed}/$validate"), &[405]),
        ("PUT", ".well-known/smart-configuration".into(), &[405]),
        ("DELETE", "Patient".into(), &[405]),
        ("GET", format!("{seed}/a/b/c"), &[404]),
    ];
    for (method, path, expect) in methods {
        let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        c.get(format!("{method} /{path}"), m, path, expect);
    }
    c.body(
        "PUT on a type without criteria",
        Method::PUT,
        "Patient",
        update.to_string(),
        &[405],
    );
    c.body(
        "POST to a resource's history version",
        Method::POST,
        format!("{seed}/_history/1"),
        update.to_string(),
        &[405],
    );
}

fn bundles(c: &mut Corpus, seeds: &Seeds) {
    c.category("bundles");
    const ANY: &[u16] = &[400, 404, 409, 412, 422];
    let bad_patient = json!({"resourceType": "Patient", "gender": "woman"});
    // Cycles: valid, unless another entry is bad (then nothing may be written).
    c.push(
        "two new organizations part of each other",
        Method::POST,
        "",
        Payload::Bytes(transaction(vec![
            post_entry(Some(UUID_A), org_part_of("Cycle A", UUID_B)),
            post_entry(Some(UUID_B), org_part_of("Cycle B", UUID_A)),
        ])),
        Expect::Allowed(TRANSACTION_CYCLE),
    )
    .header("content-type", FHIR_JSON);
    c.push(
        "a new organization part of itself",
        Method::POST,
        "",
        Payload::Bytes(transaction(vec![post_entry(
            Some(UUID_C),
            org_part_of("Self", UUID_C),
        )])),
        Expect::Allowed(TRANSACTION_CYCLE),
    )
    .header("content-type", FHIR_JSON);
    c.body(
        "a three-organization cycle and a bad patient",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), org_part_of("A", UUID_B)),
            post_entry(Some(UUID_B), org_part_of("B", UUID_C)),
            post_entry(Some(UUID_C), org_part_of("C", UUID_A)),
            post_entry(None, bad_patient.clone()),
        ]),
        &[422],
    );
    c.body(
        "a self-reference and a bad patient",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), org_part_of("A", UUID_A)),
            post_entry(None, bad_patient.clone()),
        ]),
        &[422],
    );
    let linked = |u: &str, other: &str| json!({"resourceType": "Patient", "link": [{"other": {"reference": other}, "type": "seealso"}], "gender": if u == UUID_B { "woman" } else { "male" }});
    c.body(
        "two patients linked to each other, one invalid",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), linked(UUID_A, UUID_B)),
            post_entry(Some(UUID_B), linked(UUID_B, UUID_A)),
        ]),
        &[422],
    );
    // Duplicate fullUrls (bdl-7).
    c.body(
        "two entries with the same fullUrl",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), org_part_of("Dup 1", UUID_B)),
            post_entry(
                Some(UUID_A),
                json!({"resourceType": "Organization", "name": "Dup 2"}),
            ),
            post_entry(
                Some(UUID_B),
                json!({"resourceType": "Organization", "name": "Dup 3"}),
            ),
        ]),
        &[400, 422],
    );
    c.body(
        "a reference to a fullUrl two entries have",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), json!({"resourceType": "Patient", "name": [{"family": "One"}]})),
            post_entry(Some(UUID_A), json!({"resourceType": "Patient", "name": [{"family": "Two"}]})),
            post_entry(None, json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": UUID_A}})),
        ]),
        &[400, 422],
    );
    c.body(
        "a create and an update with the same fullUrl",
        Method::POST,
        "",
        transaction(vec![
            post_entry(Some(UUID_A), json!({"resourceType": "Organization", "name": "New"})),
            json!({"fullUrl": UUID_A, "resource": {"resourceType": "Organization", "id": seeds.org, "name": "Changed"},
                   "request": {"method": "PUT", "url": format!("Organization/{}", seeds.org)}}),
        ]),
        &[400, 422],
    );
    // Conditional references.
    for (what, reference, expect) in [
        (
            "a conditional reference matching nothing",
            "Patient?identifier=urn:hostile|nobody",
            &[412u16] as &[u16],
        ),
        (
            "a conditional reference matching two",
            "Patient?family=Hostile",
            &[412],
        ),
        (
            "a conditional reference with an unknown parameter",
            "Patient?bogus=1",
            &[400],
        ),
        (
            "a conditional reference with a bad date",
            "Patient?birthdate=2020-13-45",
            &[400],
        ),
        (
            "a conditional reference without criteria",
            "Patient?",
            &[400],
        ),
        (
            "a conditional reference to an unknown type",
            "Foo?x=1",
            &[400, 422],
        ),
    ] {
        c.body(
            what,
            Method::POST,
            "",
            transaction(vec![
                post_entry(None, json!({"resourceType": "Organization", "name": "Referrer"})),
                post_entry(None, json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": reference}})),
            ]),
            expect,
        );
    }
    c.body(
        "a conditional create with bad criteria",
        Method::POST,
        "",
        transaction(vec![json!({"resource": {"resourceType": "Patient"},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "birthdate=2020-13-45"}})]),
        &[400],
    );
    // Batch in a transaction, and in a batch.
    let inner = json!({"resourceType": "Bundle", "type": "batch", "entry": [post_entry(None, json!({"resourceType": "Patient"}))]});
    for url in ["/", "", "http://127.0.0.1:9/fhir"] {
        c.body(
            format!("a batch inside a transaction, posted to {url:?}"),
            Method::POST,
            "",
            transaction(vec![
                post_entry(
                    None,
                    json!({"resourceType": "Organization", "name": "Outer"}),
                ),
                json!({"resource": inner, "request": {"method": "POST", "url": url}}),
            ]),
            &[400, 422],
        );
    }
    c.push(
        "a batch inside a batch",
        Method::POST,
        "",
        Payload::Bytes(batch(vec![
            json!({"resource": inner, "request": {"method": "POST", "url": "/"}}),
        ])),
        Expect::BatchOfFailures,
    )
    .header("content-type", FHIR_JSON);
    // Too many entries.
    let get = json!({"request": {"method": "GET", "url": format!("Patient/{}", seeds.patient)}});
    c.body(
        "a transaction of 1,001 entries",
        Method::POST,
        "",
        transaction(vec![get.clone(); MAX_ENTRIES + 1]),
        &[400],
    );
    c.body(
        "a batch of 1,001 entries",
        Method::POST,
        "",
        batch(vec![get.clone(); MAX_ENTRIES + 1]),
        &[400],
    );
    // Bad requests in entries.
    let org = json!({"resourceType": "Organization", "name": "E"});
    let requests: Vec<(&str, Value)> = vec![
        (
            "an unknown method",
            json!({"method": "FOO", "url": "Organization"}),
        ),
        (
            "a lower-case method",
            json!({"method": "post", "url": "Organization"}),
        ),
        (
            "an empty method",
            json!({"method": "", "url": "Organization"}),
        ),
        (
            "a numeric method",
            json!({"method": 1, "url": "Organization"}),
        ),
        (
            "a null method",
            json!({"method": null, "url": "Organization"}),
        ),
        ("no method", json!({"url": "Organization"})),
        ("an empty url", json!({"method": "POST", "url": ""})),
        ("no url", json!({"method": "POST"})),
        ("a numeric url", json!({"method": "POST", "url": 7})),
        ("an unknown type", json!({"method": "POST", "url": "Foo"})),
        (
            "a url of four segments",
            json!({"method": "PUT", "url": "Organization/a/b/c"}),
        ),
        (
            "a bad id in the url",
            json!({"method": "PUT", "url": format!("Organization/{}", "a".repeat(65))}),
        ),
        (
            "a conditional update without criteria",
            json!({"method": "PUT", "url": "Organization?"}),
        ),
        (
            "a relative url climbing up",
            json!({"method": "POST", "url": "../Organization"}),
        ),
        (
            "a space in the id",
            json!({"method": "PUT", "url": "Organization/a b"}),
        ),
        (
            "a PATCH",
            json!({"method": "PATCH", "url": format!("Organization/{}", seeds.org)}),
        ),
        (
            "a garbage ifMatch",
            json!({"method": "PUT", "url": format!("Organization/{}", seeds.org), "ifMatch": "banana"}),
        ),
        (
            "a numeric ifNoneExist",
            json!({"method": "POST", "url": "Organization", "ifNoneExist": 5}),
        ),
        ("a request that is a string", json!("POST Organization")),
    ];
    for (what, request) in &requests {
        let mut resource = org.clone();
        if request["method"] == "PUT" || request["method"] == "PATCH" {
            resource["id"] = json!(seeds.org);
        }
        c.body(
            format!("a transaction entry with {what}"),
            Method::POST,
            "",
            transaction(vec![
                post_entry(
                    None,
                    json!({"resourceType": "Organization", "name": "Fine"}),
                ),
                json!({"resource": resource, "request": request}),
            ]),
            &[400, 422],
        );
    }
    c.push(
        "a batch of entries with bad requests",
        Method::POST,
        "",
        Payload::Bytes(batch(
            requests
                .iter()
                // Empty strings and nulls break the Bundle itself, not one entry.
                .filter(|(what, _)| {
                    !["an empty method", "a null method", "an empty url"].contains(what)
                })
                .map(|(_, r)| json!({"resource": org, "request": r}))
                .chain([
                    post_entry(None, bad_patient.clone()),
                    json!({"request": {"method": "GET", "url": "Foo/1"}}),
                    json!({"request": {"method": "DELETE", "url": format!("Patient/{}", "a".repeat(65))}}),
                    json!({"request": {"method": "GET", "url": "Patient?birthdate=2020-13-45"}}),
                ])
                .collect(),
        )),
        Expect::BatchOfFailures,
    )
    .header("content-type", FHIR_JSON)
    .strict();
    // Malformed bundles and entries.
    for (what, doc) in [
        (
            "an entry that is a number",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [42]}),
        ),
        (
            "entries that are an object",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": {"request": {}}}),
        ),
        (
            "no type",
            json!({"resourceType": "Bundle", "entry": [post_entry(None, org.clone())]}),
        ),
        (
            "a collection",
            json!({"resourceType": "Bundle", "type": "collection", "entry": [post_entry(None, org.clone())]}),
        ),
        (
            "a document",
            json!({"resourceType": "Bundle", "type": "document", "entry": [post_entry(None, org.clone())]}),
        ),
        (
            "a searchset",
            json!({"resourceType": "Bundle", "type": "searchset"}),
        ),
        (
            "a history",
            json!({"resourceType": "Bundle", "type": "history"}),
        ),
        (
            "a batch-response",
            json!({"resourceType": "Bundle", "type": "batch-response"}),
        ),
        (
            "a numeric type",
            json!({"resourceType": "Bundle", "type": 1}),
        ),
        (
            "an entry without a request",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": org}]}),
        ),
        (
            "a resource that is a string",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": "Organization", "request": {"method": "POST", "url": "Organization"}}]}),
        ),
        (
            "a resource of another type than its url",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": org, "request": {"method": "POST", "url": "Patient"}}]}),
        ),
        (
            "a resource of an unknown type",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Foo"}, "request": {"method": "POST", "url": "Foo"}}]}),
        ),
        (
            "a POST without a resource",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "POST", "url": "Organization"}}]}),
        ),
        (
            "an unknown element in an entry",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": org, "request": {"method": "POST", "url": "Organization"}, "bogus": 1}]}),
        ),
        (
            "one invalid resource among valid ones",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [post_entry(None, org.clone()), post_entry(None, bad_patient.clone()), post_entry(None, org.clone())]}),
        ),
        (
            "a placeholder naming no entry",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [post_entry(None, org_part_of("Orphan", UUID_C))]}),
        ),
        (
            "the same resource updated twice",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Organization", "id": seeds.org, "name": "X"}, "request": {"method": "PUT", "url": format!("Organization/{}", seeds.org)}},
            {"resource": {"resourceType": "Organization", "id": seeds.org, "name": "Y"}, "request": {"method": "PUT", "url": format!("Organization/{}", seeds.org)}}]}),
        ),
        (
            "an update whose id is not its url's",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Organization", "id": "other", "name": "X"}, "request": {"method": "PUT", "url": format!("Organization/{}", seeds.org)}}]}),
        ),
        (
            "an update of a seed with a stale version",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            post_entry(None, org.clone()),
            {"resource": {"resourceType": "Organization", "id": seeds.org, "name": "X"}, "request": {"method": "PUT", "url": format!("Organization/{}", seeds.org), "ifMatch": "W/\"7\""}}]}),
        ),
        (
            "a delete of a seed and a bad entry",
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": format!("Observation/{}", seeds.observation)}},
            post_entry(None, bad_patient.clone())]}),
        ),
    ] {
        c.body(
            format!("a bundle with {what}"),
            Method::POST,
            "",
            doc.to_string(),
            ANY,
        );
    }
}

/// One FHIRPath Patch operation: its type, path and further parts.
fn fhirpath_op(kind: &str, path: &str, parts: Value) -> Value {
    let mut all = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    all.extend(parts.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": all})
}

fn fhirpath_patches(c: &mut Corpus, seeds: &Seeds) {
    c.category("invalid FHIRPath Patch");
    let seed = format!("Patient/{}", seeds.patient);
    let params =
        |ops: Vec<Value>| json!({"resourceType": "Parameters", "parameter": ops}).to_string();
    let value = |v: Value| json!([{"name": "value", "valueString": v}]);
    let long_path = format!("Patient{}", ".name".repeat(1000));
    let parens = format!(
        "Patient.name.where({}use='a'{})",
        "(".repeat(500),
        ")".repeat(500)
    );
    let deep_value = {
        let mut v = json!({"name": "value", "valueString": "x"});
        for _ in 0..100 {
            v = json!({"name": "value", "part": [v]});
        }
        v
    };
    let many: Vec<Value> = (0..1001)
        .map(|_| fhirpath_op("delete", "Patient.photo", json!([])))
        .collect();
    let cases: Vec<(&str, String, &'static [u16])> = vec![
        (
            "not JSON",
            "{\"resourceType\":\"Parameters\",".into(),
            &[400],
        ),
        (
            "no parameters",
            json!({"resourceType": "Parameters"}).to_string(),
            &[400],
        ),
        (
            "another resource type",
            json!({"resourceType": "Patient"}).to_string(),
            &[400],
        ),
        (
            "a parameter not named operation",
            params(vec![json!({"name": "op", "valueString": "x"})]),
            &[400],
        ),
        (
            "an operation without parts",
            params(vec![json!({"name": "operation"})]),
            &[400],
        ),
        (
            "an operation without a type",
            params(vec![
                json!({"name": "operation", "part": [{"name": "path", "valueString": "Patient"}]}),
            ]),
            &[400],
        ),
        (
            "an unknown operation type",
            params(vec![fhirpath_op("upsert", "Patient", json!([]))]),
            &[400],
        ),
        (
            "a type that is not a code",
            params(vec![
                json!({"name": "operation", "part": [{"name": "type", "valueString": "add"}, {"name": "path", "valueString": "Patient"}]}),
            ]),
            &[400],
        ),
        (
            "an operation without a path",
            params(vec![
                json!({"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}),
            ]),
            &[400],
        ),
        (
            "an empty path",
            params(vec![fhirpath_op("delete", "", json!([]))]),
            &[400, 422],
        ),
        (
            "an unsupported function",
            params(vec![fhirpath_op(
                "delete",
                "Patient.name.exists()",
                json!([]),
            )]),
            &[400],
        ),
        (
            "a union",
            params(vec![fhirpath_op(
                "delete",
                "Patient.name | Patient.telecom",
                json!([]),
            )]),
            &[400],
        ),
        (
            "an unclosed string",
            params(vec![fhirpath_op(
                "delete",
                "Patient.name.where(use='x)",
                json!([]),
            )]),
            &[400],
        ),
        (
            "an inequality",
            params(vec![fhirpath_op(
                "delete",
                "Patient.name.where(use!='x')",
                json!([]),
            )]),
            &[400],
        ),
        (
            "a negative index",
            params(vec![fhirpath_op("delete", "Patient.name[-1]", json!([]))]),
            &[400],
        ),
        (
            "a huge index",
            params(vec![fhirpath_op(
                "delete",
                "Patient.name[99999999999999999999999]",
                json!([]),
            )]),
            &[400],
        ),
        (
            "an environment variable",
            params(vec![fhirpath_op("delete", "%resource.name", json!([]))]),
            &[400],
        ),
        (
            "a path of 1000 steps",
            params(vec![fhirpath_op("delete", &long_path, json!([]))]),
            &[400, 422],
        ),
        (
            "500 nested parentheses",
            params(vec![fhirpath_op("delete", &parens, json!([]))]),
            &[400],
        ),
        (
            "control characters in a path",
            params(vec![fhirpath_op("delete", "Patient.\u{1}name", json!([]))]),
            &[400, 422],
        ),
        (
            "an add without a name",
            params(vec![fhirpath_op("add", "Patient", value(json!("x")))]),
            &[400],
        ),
        (
            "an add without a value",
            params(vec![fhirpath_op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "gender"}]),
            )]),
            &[400],
        ),
        (
            "an insert without an index",
            params(vec![fhirpath_op(
                "insert",
                "Patient.name",
                json!([{"name": "value", "valueHumanName": {"family": "X"}}]),
            )]),
            &[400],
        ),
        (
            "a negative index part",
            params(vec![fhirpath_op(
                "insert",
                "Patient.name",
                json!([{"name": "value", "valueHumanName": {"family": "X"}}, {"name": "index", "valueInteger": -1}]),
            )]),
            &[400, 422],
        ),
        (
            "an index past the end",
            params(vec![fhirpath_op(
                "insert",
                "Patient.name",
                json!([{"name": "value", "valueHumanName": {"family": "X"}}, {"name": "index", "valueInteger": 99}]),
            )]),
            &[422],
        ),
        (
            "a move out of range",
            params(vec![fhirpath_op(
                "move",
                "Patient.name",
                json!([{"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 50}]),
            )]),
            &[422],
        ),
        (
            "a move without a destination",
            params(vec![fhirpath_op(
                "move",
                "Patient.name",
                json!([{"name": "source", "valueInteger": 0}]),
            )]),
            &[400],
        ),
        (
            "a replace of nothing",
            params(vec![fhirpath_op(
                "replace",
                "Patient.photo",
                json!([{"name": "value", "valueAttachment": {"contentType": "image/png"}}]),
            )]),
            &[422],
        ),
        (
            "an add to nothing",
            params(vec![fhirpath_op(
                "add",
                "Patient.contact",
                json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "male"}]),
            )]),
            &[422],
        ),
        (
            "an add of an unknown element",
            params(vec![fhirpath_op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "nickname"}, {"name": "value", "valueString": "Bob"}]),
            )]),
            &[422],
        ),
        (
            "a code outside its binding",
            params(vec![fhirpath_op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "woman"}]),
            )]),
            &[422],
        ),
        (
            "a value of the wrong type",
            params(vec![fhirpath_op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "birthDate"}, {"name": "value", "valueInteger": 3}]),
            )]),
            &[422],
        ),
        (
            "a changed id",
            params(vec![fhirpath_op(
                "replace",
                "Patient.id",
                json!([{"name": "value", "valueId": "other"}]),
            )]),
            &[400, 422],
        ),
        (
            "a changed resourceType",
            params(vec![fhirpath_op(
                "replace",
                "Patient.resourceType",
                value(json!("Observation")),
            )]),
            &[400, 422],
        ),
        (
            "a value without value[x]",
            params(vec![fhirpath_op(
                "replace",
                "Patient.active",
                json!([{"name": "value"}]),
            )]),
            &[400],
        ),
        (
            "a value nested 100 parts deep",
            params(vec![fhirpath_op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "contact"}, deep_value]),
            )]),
            &[400, 422],
        ),
        ("1001 operations", params(many), &[413]),
        (
            "a part that is not an object",
            params(vec![json!({"name": "operation", "part": [1]})]),
            &[400, 422],
        ),
        (
            "a null part",
            params(vec![json!({"name": "operation", "part": [null]})]),
            &[400, 422],
        ),
    ];
    for (what, body, expect) in cases {
        c.body(
            format!("a FHIRPath Patch with {what}"),
            Method::PATCH,
            seed.clone(),
            body,
            expect,
        );
    }
    c.push(
        "a FHIRPath Patch in XML with a DOCTYPE",
        Method::PATCH,
        seed.clone(),
        Payload::Bytes(
            br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/></parameter></Parameters>"#.to_vec(),
        ),
        Expect::Status(&[400]),
    )
    .header("content-type", "application/fhir+xml");
    c.push(
        "a FHIRPath Patch in XML with an unsupported path",
        Method::PATCH,
        seed.clone(),
        Payload::Bytes(
            br#"<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/><part><name value="type"/><valueCode value="delete"/></part><part><name value="path"/><valueString value="Patient.name.descendants()"/></part></parameter></Parameters>"#.to_vec(),
        ),
        Expect::Status(&[400]),
    )
    .header("content-type", "application/fhir+xml");
    c.body(
        "a FHIRPath Patch of an unknown id",
        Method::PATCH,
        "Patient/does-not-exist",
        params(vec![fhirpath_op("delete", "Patient.photo", json!([]))]),
        &[404],
    );
}

fn meta_operations(c: &mut Corpus, seeds: &Seeds) {
    c.category("invalid $meta, $meta-add, $meta-delete");
    let seed = format!("Patient/{}", seeds.patient);
    let params = |ps: Value| json!({"resourceType": "Parameters", "parameter": ps}).to_string();
    for op in ["$meta-add", "$meta-delete"] {
        let path = format!("{seed}/{op}");
        let cases: Vec<(&str, String, &'static [u16])> = vec![
            ("an empty body", String::new(), &[400]),
            ("not JSON", "{\"resourceType\":".into(), &[400]),
            (
                "another resource",
                json!({"resourceType": "Patient"}).to_string(),
                &[400],
            ),
            (
                "no parameters",
                json!({"resourceType": "Parameters"}).to_string(),
                &[400],
            ),
            (
                "no meta",
                params(json!([{"name": "other", "valueString": "x"}])),
                &[400],
            ),
            (
                "a meta that is a string",
                params(json!([{"name": "meta", "valueString": "x"}])),
                &[400],
            ),
            (
                "two metas",
                params(
                    json!([{"name": "meta", "valueMeta": {"tag": [{"code": "a"}]}}, {"name": "meta", "valueMeta": {"tag": [{"code": "b"}]}}]),
                ),
                &[400],
            ),
            (
                "a tag that is a string",
                params(json!([{"name": "meta", "valueMeta": {"tag": ["a"]}}])),
                &[400, 422],
            ),
            (
                "an empty tag list",
                params(json!([{"name": "meta", "valueMeta": {"tag": []}}])),
                &[400, 422],
            ),
            (
                "a profile that is an object",
                params(json!([{"name": "meta", "valueMeta": {"profile": [{"url": "x"}]}}])),
                &[400, 422],
            ),
            (
                "an unknown meta element",
                params(json!([{"name": "meta", "valueMeta": {"label": [{"code": "x"}]}}])),
                &[400, 422],
            ),
        ];
        for (what, body, expect) in cases {
            c.body(
                format!("{op} with {what}"),
                Method::POST,
                path.clone(),
                body,
                expect,
            );
        }
        c.get(format!("{op} with GET"), Method::GET, path.clone(), &[405]);
        c.body(
            format!("{op} of an unknown id"),
            Method::POST,
            format!("Patient/does-not-exist/{op}"),
            params(
                json!([{"name": "meta", "valueMeta": {"tag": [{"system": "urn:t", "code": "x"}]}}]),
            ),
            &[404],
        );
        c.body(
            format!("{op} on a history version"),
            Method::POST,
            format!("{seed}/_history/1/{op}"),
            params(
                json!([{"name": "meta", "valueMeta": {"tag": [{"system": "urn:t", "code": "x"}]}}]),
            ),
            &[405],
        );
    }
    c.get(
        "$meta with PUT",
        Method::PUT,
        format!("{seed}/$meta"),
        &[405],
    );
    c.get(
        "$meta of an unknown id",
        Method::GET,
        "Patient/does-not-exist/$meta",
        &[404],
    );
    c.get(
        "$meta of a version that is not a number",
        Method::GET,
        format!("{seed}/_history/x/$meta"),
        &[404],
    );
    c.get("type-level $meta", Method::GET, "Patient/$meta", &[404]);
    c.get("system-level $meta", Method::GET, "$meta", &[404]);
}

fn patches(c: &mut Corpus, seeds: &Seeds) {
    c.category("invalid JSON Patch");
    let seed = format!("Patient/{}", seeds.patient);
    for (what, body, expect) in [
        ("not JSON", "[{\"op\":", &[400u16] as &[u16]),
        (
            "an object",
            "{\"op\":\"add\",\"path\":\"/active\",\"value\":true}",
            &[400],
        ),
        ("an array of numbers", "[1,2]", &[400]),
        ("a string", "\"add\"", &[400]),
        ("empty", "", &[400]),
        (
            "an unknown op",
            "[{\"op\":\"bogus\",\"path\":\"/active\"}]",
            &[400],
        ),
        (
            "an op without a path",
            "[{\"op\":\"add\",\"value\":true}]",
            &[400],
        ),
        (
            "an add without a value",
            "[{\"op\":\"add\",\"path\":\"/active\"}]",
            &[400],
        ),
        (
            "a path without a slash",
            "[{\"op\":\"add\",\"path\":\"active\",\"value\":true}]",
            &[400, 422],
        ),
        (
            "a numeric path",
            "[{\"op\":\"add\",\"path\":7,\"value\":true}]",
            &[400],
        ),
        (
            "a move without from",
            "[{\"op\":\"move\",\"path\":\"/active\"}]",
            &[400],
        ),
        (
            "a failing test",
            "[{\"op\":\"test\",\"path\":\"/gender\",\"value\":\"male\"}]",
            &[409, 412, 422],
        ),
        (
            "removing resourceType",
            "[{\"op\":\"remove\",\"path\":\"/resourceType\"}]",
            &[400, 422],
        ),
        (
            "changing resourceType",
            "[{\"op\":\"replace\",\"path\":\"/resourceType\",\"value\":\"Observation\"}]",
            &[400, 422],
        ),
        (
            "changing the id",
            "[{\"op\":\"replace\",\"path\":\"/id\",\"value\":\"other\"}]",
            &[400, 422],
        ),
        (
            "a code outside its binding",
            "[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"woman\"}]",
            &[422],
        ),
        (
            "an unknown element",
            "[{\"op\":\"add\",\"path\":\"/nickname\",\"value\":\"Bob\"}]",
            &[422],
        ),
        (
            "a number for the names",
            "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":3}]",
            &[422],
        ),
        (
            "removing what is not there",
            "[{\"op\":\"remove\",\"path\":\"/photo\"}]",
            &[422],
        ),
        (
            "an index past the end",
            "[{\"op\":\"replace\",\"path\":\"/name/99\",\"value\":{}}]",
            &[422],
        ),
        (
            "an index with a leading zero",
            "[{\"op\":\"replace\",\"path\":\"/name/00\",\"value\":{\"family\":\"X\"}}]",
            &[400, 422],
        ),
        (
            "a path through the end marker",
            "[{\"op\":\"add\",\"path\":\"/name/-/family\",\"value\":\"X\"}]",
            &[422],
        ),
        (
            "a bad escape in a path",
            "[{\"op\":\"add\",\"path\":\"/~2\",\"value\":1}]",
            &[400, 422],
        ),
        (
            "copying from nowhere",
            "[{\"op\":\"copy\",\"from\":\"/nowhere\",\"path\":\"/active\"}]",
            &[422],
        ),
        (
            "moving a value into itself",
            "[{\"op\":\"move\",\"from\":\"/name\",\"path\":\"/name/0/x\"}]",
            &[400, 422],
        ),
        (
            "a null value",
            "[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":null}]",
            &[422],
        ),
        (
            "an empty name list",
            "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":[]}]",
            &[422],
        ),
        (
            "the meta replaced by a string",
            "[{\"op\":\"add\",\"path\":\"/meta\",\"value\":\"x\"}]",
            &[400, 422],
        ),
        (
            "a whole-document replace",
            "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"resourceType\":\"Observation\"}}]",
            &[400, 422],
        ),
    ] {
        c.patch(format!("a patch with {what}"), seed.clone(), body, expect);
    }
    for (ctype, expect) in [
        // FHIR JSON (and plain JSON, as on every other write) is a FHIRPath Patch, which an
        // array is not.
        ("application/json", &[400u16] as &[u16]),
        (FHIR_JSON, &[400]),
        ("text/plain", &[415]),
    ] {
        c.push(
            format!("a patch as {ctype}"),
            Method::PATCH,
            seed.clone(),
            Payload::Bytes(br#"[{"op":"add","path":"/active","value":false}]"#.to_vec()),
            Expect::Status(expect),
        )
        .header("content-type", ctype);
    }
    c.patch(
        "a patch of an unknown id",
        "Patient/does-not-exist",
        r#"[{"op":"add","path":"/active","value":false}]"#,
        &[404],
    );
    // Copies that grow a valid resource past the body limit (a small patch, a large
    // result), and copies that double it (exponentially: 40 of them would not fit in memory).
    let name = json!({"family": noise(MAX_BODY / 8, 9)});
    let mut linear = vec![json!({"op": "add", "path": "/name/-", "value": name})];
    linear.extend((0..8).map(|_| json!({"op": "copy", "from": "/name/1", "path": "/name/-"})));
    c.patch(
        "copies that grow the resource past the body limit",
        seed.clone(),
        json!(linear).to_string(),
        &[413],
    );
    let mut doubling = vec![
        json!({"op": "add", "path": "/extension", "value": [{"url": "urn:x", "valueString": "a".repeat(1000)}]}),
    ];
    doubling.extend(
        (0..40).map(|_| json!({"op": "copy", "from": "/extension", "path": "/extension/-"})),
    );
    c.patch(
        "40 copies that each double the resource",
        seed.clone(),
        json!(doubling).to_string(),
        &[413],
    );
    let deep = |n: usize| nested(n, "[", "]", "1");
    c.patch(
        "adds that nest the resource deeper than the limit",
        seed.clone(),
        json!([
            {"op": "add", "path": "/extension", "value": serde_json::from_str::<Value>(&deep(20)).unwrap_or(Value::Null)},
            {"op": "add", "path": format!("/extension{}", "/0".repeat(19)), "value": serde_json::from_str::<Value>(&deep(20)).unwrap_or(Value::Null)},
        ])
        .to_string(),
        &[400],
    );
}

/// One answer, as received.
struct Answer {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: Vec<u8>,
}

fn slow_body(chunks: Vec<Vec<u8>>, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let chunk = rest.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<Vec<u8>, std::io::Error>(chunk), rest))
    });
    reqwest::Body::wrap_stream(stream)
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    addr: SocketAddr,
    token: &str,
    case: &Case,
) -> Result<Answer> {
    let body = match &case.payload {
        Payload::Raw {
            request,
            split,
            close,
        } => return send_raw(addr, request, *split, *close).await,
        Payload::None => None,
        Payload::Bytes(b) => Some(reqwest::Body::from(b.clone())),
        Payload::Slow { chunks, pause } => Some(slow_body(chunks.clone(), *pause)),
    };
    let mut req = client.request(case.method.clone(), format!("{base}/{}", case.path));
    if case.auth {
        req = req.bearer_auth(token);
    }
    for (k, v) in &case.headers {
        req = req.header(*k, v.as_str());
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let resp = req.send().await?;
    let header = |name: reqwest::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let location = header(reqwest::header::LOCATION);
    let status = resp.status().as_u16();
    let body = resp.bytes().await?.to_vec();
    Ok(Answer {
        status,
        content_type,
        location,
        body,
    })
}

/// Writes a raw request and reads the answer until the server closes the connection.
async fn send_raw(
    addr: SocketAddr,
    request: &[u8],
    split: Option<(usize, Duration)>,
    close: bool,
) -> Result<Answer> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    match split {
        Some((at, pause)) if at < request.len() => {
            socket.write_all(&request[..at]).await?;
            socket.flush().await?;
            tokio::time::sleep(pause).await;
            socket.write_all(&request[at..]).await?;
        }
        _ => socket.write_all(request).await?,
    }
    if close {
        socket.shutdown().await?;
    }
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => received.extend(&buf[..n]),
            // A reset after a whole answer is no failure to answer.
            Err(e) => match parse_response(&received) {
                Ok(answer) => return Ok(answer),
                Err(_) => bail!("the connection failed before an answer: {e}"),
            },
        }
    }
    parse_response(&received)
}

fn parse_response(bytes: &[u8]) -> Result<Answer> {
    let end = find(bytes, b"\r\n\r\n").context("no complete response head")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let mut headers = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let rest = &bytes[end + 4..];
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let line_end = find(&rest[at..], b"\r\n").context("a cut chunk")? + at;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[at..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )?;
            at = line_end + 2;
            if size == 0 {
                break;
            }
            ensure!(rest.len() >= at + size, "a cut chunk");
            out.extend(&rest[at..at + size]);
            at += size + 2;
        }
        out
    } else if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        ensure!(rest.len() >= n, "a cut body");
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Answer {
        status,
        content_type: headers.get("content-type").cloned().unwrap_or_default(),
        location: headers.get("location").cloned(),
        body,
    })
}

/// Why an OperationOutcome does not do: `None` when it does.
fn outcome_problem(content_type: &str, body: &Value) -> Option<String> {
    if !content_type.starts_with("application/fhir+json") {
        return Some(format!("content type {content_type:?}"));
    }
    if body["resourceType"] != "OperationOutcome" {
        return Some("not an OperationOutcome".into());
    }
    let issues = body["issue"].as_array().filter(|i| !i.is_empty());
    let Some(issues) = issues else {
        return Some("an OperationOutcome without issues".into());
    };
    let says = |i: &Value| {
        [&i["diagnostics"], &i["details"]["text"]]
            .iter()
            .any(|t| t.as_str().is_some_and(|t| !t.trim().is_empty()))
    };
    if !issues.iter().any(says) {
        return Some("no issue says what is wrong".into());
    }
    None
}

/// Judges one answer: `Err` with the reason when it breaks the expectation; the writes an
/// allowed 2xx made (resource types) otherwise.
fn judge(case: &Case, answer: &Answer) -> std::result::Result<Vec<String>, String> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let snippet = || {
        let text = String::from_utf8_lossy(&answer.body);
        text.chars().take(300).collect::<String>()
    };
    let client_error = (400..500).contains(&answer.status);
    let check_outcome = || match outcome_problem(&answer.content_type, &body) {
        None => Ok(Vec::new()),
        Some(p) => Err(format!("{} with {p}: {}", answer.status, snippet())),
    };
    match &case.expect {
        Expect::Status(allowed) => {
            if !allowed.contains(&answer.status) {
                return Err(format!(
                    "expected {allowed:?}, got {}: {}",
                    answer.status,
                    snippet()
                ));
            }
            check_outcome()
        }
        Expect::Allowed(_) if client_error => check_outcome(),
        Expect::Allowed(_) if (200..300).contains(&answer.status) => {
            let mut written = Vec::new();
            if body["type"] == "transaction-response" {
                for e in body["entry"].as_array().into_iter().flatten() {
                    if let Some(l) = e["response"]["location"].as_str() {
                        written.push(l.split('/').next().unwrap_or_default().to_owned());
                    }
                }
            } else if let Some(l) = &answer.location {
                let rel = l.rsplit("/fhir/").next().unwrap_or_default();
                written.push(rel.split('/').next().unwrap_or_default().to_owned());
            }
            Ok(written)
        }
        Expect::Allowed(_) => Err(format!(
            "neither a 2xx nor a 4xx: {}: {}",
            answer.status,
            snippet()
        )),
        Expect::BatchOfFailures => {
            if answer.status != 200 || body["type"] != "batch-response" {
                return Err(format!(
                    "expected a 200 batch-response, got {}: {}",
                    answer.status,
                    snippet()
                ));
            }
            for (i, e) in body["entry"].as_array().into_iter().flatten().enumerate() {
                let status = e["response"]["status"].as_str().unwrap_or_default();
                if !status.starts_with('4') {
                    return Err(format!("entry {i} answered {status:?}: {e}"));
                }
                if let Some(p) = outcome_problem(FHIR_JSON, &e["response"]["outcome"]) {
                    return Err(format!("entry {i}: {p}: {e}"));
                }
            }
            Ok(Vec::new())
        }
    }
}

async fn five_hundred_hostile_requests_get_a_4xx_outcome(env: &Env) -> Result<()> {
    let limits = Limits {
        max_body_bytes: MAX_BODY,
        max_json_depth: MAX_DEPTH,
        max_url_bytes: MAX_URL,
        max_bundle_entries: MAX_ENTRIES,
        ..Limits::default()
    };
    let s = TestServer::start(&env.cluster, limits).await?;
    let seeds = seed(&s).await?;
    let b = bases(&seeds);
    // The bases are valid: each mutation of them is the only thing wrong.
    for base in [
        &b.patient,
        &b.observation,
        &b.encounter,
        &b.condition,
        &b.medication_request,
        &b.practitioner,
    ] {
        let rtype = base["resourceType"].as_str().unwrap_or_default();
        let (status, outcome) = s
            .send(Method::POST, &format!("{rtype}/$validate"), Some(base))
            .await?;
        ensure!(
            status == 200
                && outcome["issue"]
                    .as_array()
                    .is_some_and(|i| i.iter().all(|i| i["severity"] == "information")),
            "the base {rtype} is not valid: {outcome}"
        );
    }
    let (before, _) = history_count(&s).await?;
    let base_url = s.base.clone();
    let addr: SocketAddr = base_url
        .trim_start_matches("http://")
        .trim_end_matches("/fhir")
        .parse()?;
    let token = s.system_token();
    let mut corpus = Corpus {
        cases: Vec::new(),
        category: "",
        host: addr.to_string(),
        token: token.clone(),
        auditor: s.token_for("auditor", "user/AuditEvent.rs", None, None, 3600),
        errors: Vec::new(),
    };
    build(&mut corpus, &seeds, &b);
    ensure!(corpus.errors.is_empty(), "corpus: {:?}", corpus.errors);
    let cases = corpus.cases;
    let mut keys = HashSet::new();
    for case in &cases {
        ensure!(
            keys.insert(case.key()),
            "{}: {} is not distinct",
            case.category,
            case.what
        );
    }
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        *per_category.entry(case.category).or_default() += 1;
    }
    eprintln!("hostile corpus: {} requests", cases.len());
    for (category, n) in &per_category {
        eprintln!("  {n:4}  {category}");
    }
    ensure!(
        cases.len() >= AT_LEAST,
        "only {} requests in the corpus",
        cases.len()
    );
    for case in &cases {
        if let Expect::Allowed(reason) = case.expect {
            ensure!(
                ALLOWED.contains(&reason),
                "{}: an unlisted allowance",
                case.what
            );
        }
    }

    let client = reqwest::Client::builder()
        .timeout(PER_REQUEST)
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let started = Instant::now();
    let results: Vec<(usize, Result<Answer>, Duration)> = tokio::time::timeout(
        CORPUS_BUDGET,
        futures_util::stream::iter(cases.iter().enumerate())
            .map(|(i, case)| {
                let (client, base_url, token) = (&client, &base_url, &token);
                async move {
                    let t = Instant::now();
                    let answer = match tokio::time::timeout(
                        PER_REQUEST,
                        send(client, base_url, addr, token, case),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(anyhow::anyhow!("no answer within {PER_REQUEST:?}")),
                    };
                    (i, answer, t.elapsed())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect(),
    )
    .await
    .context("the corpus did not finish in time")?;
    let elapsed = started.elapsed();

    let mut failures = Vec::new();
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    let mut allowed_2xx: BTreeMap<&str, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, answer, took) in results {
        let case = &cases[i];
        slowest = slowest.max(took);
        match answer {
            Err(e) => failures.push(format!("[{}] {}: {e:#}", case.category, case.what)),
            Ok(answer) => {
                *statuses.entry(answer.status).or_default() += 1;
                if let Expect::Allowed(_) | Expect::BatchOfFailures = case.expect {
                    eprintln!("  allowed case: {} -> {}", case.what, answer.status);
                }
                match judge(case, &answer) {
                    Err(why) => failures.push(format!("[{}] {}: {why}", case.category, case.what)),
                    Ok(types) => {
                        if let (Expect::Allowed(reason), true) =
                            (&case.expect, (200..300).contains(&answer.status))
                        {
                            *allowed_2xx.entry(reason).or_default() += 1;
                        }
                        for t in types {
                            *written.entry(t).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "hostile corpus: answered in {elapsed:?}, slowest {slowest:?}; statuses {statuses:?}; \
         allowed 2xx {allowed_2xx:?}; written by them {written:?}"
    );
    if !failures.is_empty() {
        failures.sort();
        bail!(
            "{} of {} hostile requests were not refused properly:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    // Nothing refused was written: the seeds are as they were, the history holds the seeds
    // and the allowed writes only, and each type counts what it should.
    for (path, created) in &seeds.all {
        let now = s.get_ok(path).await?;
        ensure!(&now == created, "{path} changed: {now} (was {created})");
    }
    let (after, types) = history_count(&s).await?;
    let allowed_writes: usize = written.values().sum();
    ensure!(
        after == before + allowed_writes,
        "the history holds {after} versions; {before} before the corpus and {allowed_writes} \
         allowed writes since: {types:?}"
    );
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (path, _) in &seeds.all {
        *expected
            .entry(path.split('/').next().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    for (t, n) in &written {
        *expected.entry(t.clone()).or_default() += n;
    }
    for rtype in [
        "Patient",
        "Observation",
        "Organization",
        "Encounter",
        "Condition",
        "MedicationRequest",
        "Practitioner",
        "Bundle",
    ] {
        let counted = s.get_ok(&format!("{rtype}?_summary=count")).await?;
        let want = expected.get(rtype).copied().unwrap_or(0);
        ensure!(
            counted["total"] == want,
            "{rtype}: {} resources, {want} expected",
            counted["total"]
        );
    }
    // And normal requests are still answered.
    let (status, _) = s.send(Method::GET, "metadata", None).await?;
    ensure!(status == 200, "metadata answered {status}");
    let created = s
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Afterwards"}]}))
        .await?;
    let id = created["id"].as_str().unwrap_or_default();
    let read = s.get_ok(&format!("Patient/{id}")).await?;
    ensure!(read["name"][0]["family"] == "Afterwards", "{read}");
    let found = s.get_ok("Patient?family=Afterwards").await?;
    ensure!(
        found["entry"].as_array().map(Vec::len) == Some(1),
        "{found}"
    );
    s.stop().await
}

/// How many versions the system history holds, and of which types.
async fn history_count(s: &TestServer) -> Result<(usize, BTreeMap<String, usize>)> {
    let mut types = BTreeMap::new();
    let mut n = 0;
    let mut url = "_history?_count=1000".to_owned();
    for _ in 0..20 {
        let page = s.get_ok(&url).await?;
        for e in page["entry"].as_array().into_iter().flatten() {
            n += 1;
            let t = e["request"]["url"]
                .as_str()
                .and_then(|u| u.split('/').next())
                .unwrap_or_default()
                .to_owned();
            *types.entry(t).or_default() += 1;
        }
        match tests::next_link(&page) {
            Some(next) => url = next,
            None => return Ok((n, types)),
        }
    }
    bail!("the history has more than 20 pages")
}
