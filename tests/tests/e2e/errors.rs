//! Bad input: the right 4xx, an OperationOutcome that says what and where, and no damage.

use anyhow::{Result, ensure};
use gateway::Limits;
use reqwest::Method;
use serde_json::{Value, json};
use tests::TestServer;

use crate::Env;

crate::tests![
    bad_input_gets_the_right_status_and_an_outcome,
    tokens_and_scopes
];

async fn expect(
    s: &TestServer,
    req: reqwest::RequestBuilder,
    status: u16,
    what: &str,
) -> Result<Value> {
    let resp = req.send().await?;
    let got = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    ensure!(
        got == status,
        "{what}: expected {status}, got {got}: {body}"
    );
    ensure!(
        body["resourceType"] == "OperationOutcome",
        "{what}: body is not an OperationOutcome: {body}"
    );
    ensure!(
        ctype.starts_with("application/fhir+json"),
        "{what}: content type {ctype}"
    );
    ensure!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: no diagnostics"
    );
    let _ = s;
    Ok(body)
}

async fn bad_input_gets_the_right_status_and_an_outcome(env: &Env) -> Result<()> {
    let limits = Limits {
        max_body_bytes: 4096,
        max_json_depth: 16,
        max_url_bytes: 1024,
        ..Limits::default()
    };
    let s = TestServer::start(&env.cluster, limits).await?;
    let post = |path: &str, body: String| {
        s.req(Method::POST, path)
            .header("content-type", "application/fhir+json")
            .body(body)
    };
    expect(
        &s,
        post("Patient", "{\"resourceType\": \"Patient\",".into()),
        400,
        "truncated JSON",
    )
    .await?;
    expect(&s, post("Patient", "[1,2]".into()), 400, "not an object").await?;
    expect(&s, post("Patient", "{}".into()), 400, "no resourceType").await?;
    expect(
        &s,
        post(
            "NoSuchType",
            json!({"resourceType": "NoSuchType"}).to_string(),
        ),
        404,
        "unknown type",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "NoSuchType/1"),
        404,
        "unknown type read",
    )
    .await?;
    expect(
        &s,
        post(
            "Patient",
            json!({"resourceType": "Observation"}).to_string(),
        ),
        400,
        "type mismatch",
    )
    .await?;
    expect(&s, post("Patient", format!("{{\"resourceType\":\"Patient\",\"text\":{{\"status\":\"generated\",\"div\":\"{}\"}}}}", "x".repeat(5000))), 413, "oversized body").await?;
    // A body larger than the limit sent without Content-Length (chunked) is cut off while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    expect(
        &s,
        s.req(Method::POST, "Patient")
            .header("content-type", "application/fhir+json")
            .body(stream),
        413,
        "chunked oversized body",
    )
    .await?;
    let deep = format!(
        "{{\"resourceType\":\"Patient\",\"extension\":{}1{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    expect(&s, post("Patient", deep), 400, "too deep").await?;
    let b = expect(
        &s,
        post(
            "Patient",
            json!({"resourceType": "Patient", "name": []}).to_string(),
        ),
        422,
        "empty array",
    )
    .await?;
    ensure!(b["issue"][0]["expression"][0] == "Patient.name", "{b}");
    let b = expect(
        &s,
        post(
            "Patient",
            json!({"resourceType": "Patient", "gender": null}).to_string(),
        ),
        422,
        "null",
    )
    .await?;
    ensure!(b["issue"][0]["expression"][0] == "Patient.gender", "{b}");
    let b = expect(
        &s,
        post(
            "Patient",
            json!({"resourceType": "Patient", "id": "bad id!"}).to_string(),
        ),
        422,
        "bad id",
    )
    .await?;
    ensure!(b["issue"][0]["expression"][0] == "Patient.id", "{b}");
    let b = expect(
        &s,
        post(
            "Observation",
            json!({"resourceType": "Observation", "status": "final"}).to_string(),
        ),
        422,
        "missing code",
    )
    .await?;
    ensure!(b["issue"][0]["expression"][0] == "Observation.code", "{b}");
    // The R4 structure of every element: type, lexical form, cardinality, unknown elements,
    // required bindings, choice groups; each refused where it is, nothing stored.
    for (what, rtype, body, at, code) in [
        (
            "a number for a date",
            "Patient",
            json!({"resourceType": "Patient", "birthDate": 42}),
            "Patient.birthDate",
            "value",
        ),
        (
            "a month 13",
            "Patient",
            json!({"resourceType": "Patient", "birthDate": "1980-13-01"}),
            "Patient.birthDate",
            "value",
        ),
        (
            "a string for a boolean",
            "Patient",
            json!({"resourceType": "Patient", "active": "yes"}),
            "Patient.active",
            "value",
        ),
        (
            "an unknown element",
            "Patient",
            json!({"resourceType": "Patient", "nickname": "Bob"}),
            "Patient.nickname",
            "structure",
        ),
        (
            "one value for a list",
            "Patient",
            json!({"resourceType": "Patient", "name": {"family": "X"}}),
            "Patient.name",
            "structure",
        ),
        (
            "a list for one value",
            "Patient",
            json!({"resourceType": "Patient", "gender": ["male"]}),
            "Patient.gender",
            "structure",
        ),
        (
            "a code outside the required binding",
            "Patient",
            json!({"resourceType": "Patient", "gender": "woman"}),
            "Patient.gender",
            "code-invalid",
        ),
        (
            "a status outside its value set",
            "Observation",
            json!({"resourceType": "Observation", "status": "done", "code": {"text": "x"}}),
            "Observation.status",
            "code-invalid",
        ),
        (
            "two values of a choice",
            "Observation",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "a", "valueBoolean": true}),
            "Observation.valueString",
            "structure",
        ),
        (
            "a nested type error",
            "Patient",
            json!({"resourceType": "Patient", "name": [{"given": ["A", 7]}]}),
            "Patient.name[0].given[1]",
            "value",
        ),
        (
            "a dateTime without its zone",
            "Observation",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": "2020-01-01T10:00:00"}),
            "Observation.effectiveDateTime",
            "value",
        ),
    ] {
        let b = expect(&s, post(rtype, body.to_string()), 422, what).await?;
        ensure!(
            b["issue"][0]["expression"][0] == at && b["issue"][0]["code"] == code,
            "{what}: {b}"
        );
    }
    let (_, found) = s.send(Method::GET, "Patient?_summary=count", None).await?;
    ensure!(
        found["total"] == 0,
        "a refused resource was stored: {found}"
    );
    expect(
        &s,
        s.req(Method::POST, "Patient")
            .header("content-type", "text/plain")
            .body("hi"),
        415,
        "content type",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient")
            .header("accept", "text/turtle"),
        406,
        "turtle",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient?_format=ttl"),
        406,
        "_format ttl",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient?_pretty=yes"),
        400,
        "_pretty yes",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, &format!("Patient?family={}", "a".repeat(2000))),
        414,
        "long URL",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient?_count=many"),
        400,
        "bad _count",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient?birthdate=1980-13-01"),
        400,
        "bad date",
    )
    .await?;
    expect(&s, s.req(Method::GET, "Patient/nope"), 404, "unknown id").await?;
    expect(
        &s,
        s.req(Method::GET, "Patient/nope/_history/x"),
        404,
        "bad version",
    )
    .await?;
    expect(
        &s,
        s.req(Method::TRACE, "Patient/nope"),
        405,
        "unsupported method",
    )
    .await?;
    expect(
        &s,
        s.req(Method::GET, "Patient/a/b/c/d"),
        404,
        "unknown path",
    )
    .await?;
    let p = s.create(&json!({"resourceType": "Patient"})).await?;
    let path = format!("Patient/{}", p["id"].as_str().unwrap_or_default());
    expect(
        &s,
        s.req(Method::PUT, &path)
            .header("content-type", "application/fhir+json")
            .header("if-match", "banana")
            .body(p.to_string()),
        400,
        "bad If-Match",
    )
    .await?;
    // Nothing above wrote anything but the one patient.
    let b = s.get_ok("Patient?_total=accurate").await?;
    ensure!(b["total"] == 1, "{b}");
    s.stop().await
}

async fn tokens_and_scopes(env: &Env) -> Result<()> {
    let s = TestServer::start(&env.cluster, Default::default()).await?;
    let url = format!("{}/Patient", s.base);
    let resp = s.http.get(&url).send().await?;
    ensure!(resp.status() == 401, "no token: {}", resp.status());
    ensure!(
        resp.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer"))
    );
    let body: Value = resp.json().await?;
    ensure!(body["resourceType"] == "OperationOutcome");
    for (what, token, status) in [
        ("garbage", "not-a-jwt".to_owned(), 401),
        ("expired", s.token("system", "system/*.cruds", -3600), 401),
        (
            "read-only scope creating",
            s.token("system", "system/Patient.rs", 60),
            403,
        ),
        (
            "other type",
            s.token("system", "system/Observation.cruds", 60),
            403,
        ),
        (
            "role not yet in force",
            s.token("gp", "user/*.cruds", 60),
            403,
        ),
    ] {
        let resp = s
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(json!({"resourceType": "Patient"}).to_string())
            .send()
            .await?;
        ensure!(
            resp.status().as_u16() == status,
            "{what}: {}",
            resp.status()
        );
        let body: Value = resp.json().await?;
        ensure!(body["resourceType"] == "OperationOutcome", "{what}");
    }
    let resp = s
        .http
        .get(&url)
        .bearer_auth(s.token("registry", "system/Patient.read", 60))
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "v1 read scope allows search: {}",
        resp.status()
    );
    s.stop().await
}
