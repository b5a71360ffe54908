//! The stored encoding of an entity.
//!
//! A body is one format byte followed by the encoding that byte names. Data written today must
//! be readable by every later release: a new encoding gets a new format byte, and decoding
//! keeps every old one.

use model::Entity;

use crate::StoreError;

/// Format 1: the entity as JSON (serde, with numbers kept as their source text).
const FORMAT_JSON_V1: u8 = 1;

/// Encodes an entity for storage.
pub fn encode(entity: &Entity) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(1024);
    out.push(FORMAT_JSON_V1);
    serde_json::to_writer(&mut out, entity)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode entity: {e}")))?;
    Ok(out)
}

/// Decodes a stored body.
pub fn decode(body: &[u8]) -> Result<Entity, StoreError> {
    match body.split_first() {
        Some((&FORMAT_JSON_V1, rest)) => {
            // One UTF-8 check of the whole body, instead of one per string.
            let text = std::str::from_utf8(rest)
                .map_err(|e| StoreError::Corrupt(format!("entity body is not UTF-8: {e}")))?;
            serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("undecodable entity body: {e}")))
        }
        Some((format, _)) => Err(StoreError::Corrupt(format!(
            "unknown entity encoding format {format}"
        ))),
        None => Err(StoreError::Corrupt("empty entity body".into())),
    }
}
