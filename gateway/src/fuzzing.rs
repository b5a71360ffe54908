//! Entry points of the fuzz targets (`fuzz/`): the pure steps the gateway runs on what a
//! client sends, each taking raw bytes and panicking when a property that must hold does
//! not. Not an API: nothing in the server calls them.

use mappings::json::{JsonLimits, parse_resource};
use mappings::search::{SearchLimits, parse_query};

use crate::Limits;

/// The limits the server runs with by default.
fn limits() -> Limits {
    Limits::default()
}

/// A request body as `POST [type]` / `PUT [type]/[id]` reads it, in JSON and in XML: parsed
/// under the depth limit, checked (structure, R4 rules, codes against no tables, index
/// entries), mapped onto an entity. An accepted resource maps to an entity that renders back
/// equal, survives the stored encoding, and reads back equal from its XML.
pub fn resource(data: &[u8]) {
    let max_depth = limits().max_json_depth;
    if let Ok(resource) = parse_resource(data, &JsonLimits { max_depth }) {
        accepted(resource);
    }
    if let Ok(object) = mappings::xml::from_xml(data, max_depth)
        && let Ok(resource) = mappings::json::check_resource(object, "")
    {
        accepted(resource);
    }
}

/// What the server does with a parsed resource, and the round trips it relies on.
fn accepted(mut resource: mappings::Resource) {
    if !mappings::rules::check(&resource).is_empty() {
        return;
    }
    let none = terminology::Terminology::empty();
    if crate::check_codes(&resource, &none, &Default::default()).is_err() {
        return;
    }
    // The server gives every stored resource an id.
    if resource.id().is_none() {
        resource.set_id("fuzz");
    }
    let _ = mappings::search::index_entries(&resource);
    let entity = mappings::entity::to_entity(&resource);
    let mut expected = resource.object().clone();
    mappings::entity::strip_server_meta(&mut expected);
    assert_eq!(
        mappings::entity::to_fhir(&entity, None),
        expected,
        "the entity of a {} renders back different",
        resource.resource_type()
    );
    assert_eq!(
        mappings::entity::into_fhir(entity.clone(), None),
        expected,
        "the entity of a {} renders back different when moved",
        resource.resource_type()
    );
    let stored = store::codec::encode(&entity).expect("an entity encodes");
    let decoded = store::codec::decode(&stored).expect("an encoded entity decodes");
    assert_eq!(decoded, entity, "the stored encoding changed the entity");
    // The XML writer may refuse what XML cannot carry; what it writes must read back equal.
    if let Ok(xml) = mappings::xml::to_xml(resource.object(), false) {
        let back = mappings::xml::from_xml(xml.as_bytes(), usize::MAX).unwrap_or_else(|e| {
            panic!("the XML of an accepted resource does not read: {e}\n{xml}")
        });
        assert_eq!(&back, resource.object(), "XML round trip differs:\n{xml}");
    }
}

/// A search URL's tail, `Type?query` (`Patient` when the type is missing or unknown), as
/// a search reads it: percent-decoding, the result parameters (`_include`, `_summary`,
/// `_elements` …), the query parser, hierarchy expansion, and the same criteria as a
/// conditional interaction's. The parameters a parsed search reports as used parse again
/// into the same query.
pub fn query(data: &[u8]) {
    let (rtype, raw) = match data.iter().position(|&b| b == b'?') {
        Some(at) => (
            std::str::from_utf8(&data[..at]).unwrap_or(""),
            &data[at + 1..],
        ),
        None => ("", data),
    };
    let rtype = if mappings::types::is_resource_type(rtype) {
        rtype
    } else {
        "Patient"
    };
    let limits = limits();
    let search_limits = SearchLimits {
        default_count: limits.default_count,
        max_count: limits.max_count,
    };
    let pairs = crate::rest::decode_pairs(raw);
    let none = terminology::Terminology::empty();
    if let Ok(criteria) = std::str::from_utf8(raw) {
        let _ = crate::rest::match_query(&none, rtype, criteria, "fuzz");
    }
    let Ok((query_pairs, results)) = crate::results::split(&pairs) else {
        return;
    };
    // Without a store, chains and _has are dropped as when they match nothing.
    let effective: Vec<(String, String)> = query_pairs
        .into_iter()
        .filter(|(k, _)| !k.contains('.') && !k.starts_with("_has:"))
        .collect();
    let Ok(mut parsed) = parse_query(rtype, &effective, &search_limits) else {
        return;
    };
    let _ = crate::rest::expand_hierarchies(&none, &mut parsed.query);
    if let Ok(again) = parse_query(rtype, &parsed.used, &search_limits) {
        assert_eq!(
            again.query.all_of, parsed.query.all_of,
            "the used parameters {:?} parse to another query",
            parsed.used
        );
    } else {
        panic!("the used parameters {:?} do not parse", parsed.used);
    }
    let mut sample = serde_json::json!({
        "resourceType": rtype, "id": "x", "text": {"status": "generated", "div": "<div/>"}
    });
    if let Some(elements) = &results.elements {
        crate::results::subset(&mut sample, elements);
    }
    if let Some(summary) = results.summary {
        crate::results::summarize(&mut sample, summary);
    }
}

/// A transaction or batch Bundle as `POST [base]` reads it, up to the writes: the envelope
/// checks, each entry read, its target and lock key, then the planning of a transaction
/// (conditions matched by a stand-in store, ids, `urn:uuid` and conditional references,
/// every resource checked, processing order).
pub fn bundle(data: &[u8]) {
    crate::transaction::fuzz(data, &limits());
}
