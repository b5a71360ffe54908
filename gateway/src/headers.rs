//! Request headers refused before anything reads them: a field that may appear once given
//! twice (RFC 9110 §5.3: the recipient cannot tell which one the sender meant), a body in a
//! content coding or a character set the server does not read, and `If-None-Match` that is
//! not a list of entity tags.

use axum::http::{HeaderMap, header};

use crate::outcome::ApiError;

/// Fields a request may carry once, as a client names them. `If-Match` is a list in HTTP,
/// but FHIR's names one version; the others are single values.
const SINGLETONS: &[&str] = &[
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Exist",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "X-Consistency-Token",
    "X-Break-Glass-Reason",
];

/// 400 when a field that may appear once appears more than once: two credentials, two media
/// types or two versions leave the request ambiguous (and a server that picks one would
/// act on what another part of the chain may not have checked).
pub(crate) fn refuse_repeated(headers: &HeaderMap) -> Result<(), ApiError> {
    for name in SINGLETONS {
        if headers.get_all(*name).iter().nth(1).is_some() {
            return Err(ApiError::bad(
                *name,
                format!("the {name} header is given more than once; send it once"),
            ));
        }
    }
    Ok(())
}

/// 415 unless the body comes as it is (no content coding but `identity`) and, if the media
/// type names a charset, in UTF-8 (FHIR JSON is UTF-8; the bytes are never decoded otherwise).
pub(crate) fn plain_utf8_body(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("(not text)");
        if text
            .split(',')
            .map(str::trim)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {text:?} is not supported: send the body uncompressed"
            )));
        }
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for parameter in ctype.split(';').skip(1) {
        if let Some((name, value)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
        {
            let charset = value.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "charset {charset:?} is not supported: the body must be UTF-8"
                )));
            }
        }
    }
    Ok(())
}

/// The opaque tags of `If-None-Match` (all its field lines; `*` as itself), `None` without
/// one; 400 when it is not `*` or a list of entity tags (`W/"3"`, `"3"`).
pub(crate) fn if_none_match(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    if !headers.contains_key(header::IF_NONE_MATCH) {
        return Ok(None);
    }
    let mut tags = Vec::new();
    for value in headers.get_all(header::IF_NONE_MATCH) {
        let text = value.to_str().unwrap_or("");
        for item in text.split(',').map(str::trim) {
            let tag = if item == "*" {
                Some(item)
            } else {
                let quoted = item.strip_prefix("W/").unwrap_or(item);
                quoted
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .filter(|q| !q.contains('"'))
            };
            let Some(tag) = tag else {
                return Err(ApiError::bad(
                    "If-None-Match",
                    format!("{text:?} is not * or a list of entity tags like W/\"3\""),
                ));
            };
            tags.push(tag.to_owned());
        }
    }
    Ok(Some(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        assert!(refuse_repeated(&map(&[("authorization", "Bearer a"), ("accept", "x")])).is_ok());
        for name in ["authorization", "content-type", "if-match", "if-none-exist"] {
            let e = refuse_repeated(&map(&[(name, "a"), (name, "a")])).expect_err(name);
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
        // Lists may take several lines.
        assert!(refuse_repeated(&map(&[("accept", "a"), ("accept", "b")])).is_ok());
    }

    #[test]
    fn bodies_are_plain_utf8() {
        assert!(
            plain_utf8_body(&map(&[(
                "content-type",
                "application/fhir+json; charset=UTF-8"
            )]))
            .is_ok()
        );
        assert!(plain_utf8_body(&map(&[("content-encoding", "identity")])).is_ok());
        for (k, v) in [
            ("content-type", "application/fhir+json; charset=iso-8859-1"),
            ("content-type", "application/fhir+json;charset=\"utf-16\""),
            ("content-encoding", "gzip"),
            ("content-encoding", "identity, br"),
        ] {
            let e = plain_utf8_body(&map(&[(k, v)])).expect_err(v);
            assert_eq!(e.status(), axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }

    #[test]
    fn if_none_match_is_a_list_of_entity_tags() {
        assert_eq!(if_none_match(&map(&[])).ok(), Some(None));
        assert_eq!(
            if_none_match(&map(&[
                ("if-none-match", "W/\"1\", \"2\""),
                ("if-none-match", "*")
            ]))
            .ok(),
            Some(Some(vec!["1".into(), "2".into(), "*".into()]))
        );
        for bad in ["banana", "W/", "3", "W/\"1\" junk", ""] {
            assert!(
                if_none_match(&map(&[("if-none-match", bad)])).is_err(),
                "{bad}"
            );
        }
    }
}
