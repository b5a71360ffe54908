//! Index entries per resource over the Synthea bundles (write cost of the search table):
//! `cargo run -p mappings --example index_counts [folder]`.

use std::collections::BTreeMap;
use std::io::Read as _;

use model::index::IndexEntry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/fhir-data/synthea".into());
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    let (mut resources, mut entries) = (0usize, 0usize);
    let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut elapsed = std::time::Duration::ZERO;
    let mut round_trip = std::time::Duration::ZERO;
    for f in &files {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(f)?).read_to_string(&mut text)?;
        let bundle: serde_json::Value = serde_json::from_str(&text)?;
        // The references of a transaction bundle, rewritten as the gateway does.
        let mut ids = Vec::new();
        for e in bundle["entry"].as_array().into_iter().flatten() {
            if let (Some(url), Some(t), Some(id)) = (
                e["fullUrl"].as_str(),
                e["resource"]["resourceType"].as_str(),
                e["fullUrl"]
                    .as_str()
                    .and_then(|u| u.strip_prefix("urn:uuid:")),
            ) {
                ids.push((format!("\"{url}\""), format!("\"{t}/{id}\"")));
            }
        }
        for e in bundle["entry"].as_array().into_iter().flatten() {
            let mut text = serde_json::to_string(&e["resource"])?;
            if text.contains("urn:uuid:") {
                for (from, to) in &ids {
                    text = text.replace(from, to);
                }
            }
            let bytes = text.into_bytes();
            let bytes = &bytes[..];
            let Ok(res) = mappings::json::parse_resource(bytes, &Default::default()) else {
                continue;
            };
            let start = std::time::Instant::now();
            let index = mappings::search::index_entries(&res);
            elapsed += start.elapsed();
            // Against a serde_json::Value parse and write of the same bytes.
            let start = std::time::Instant::now();
            let v: serde_json::Value = serde_json::from_slice(bytes)?;
            std::hint::black_box(serde_json::to_vec(&v)?);
            round_trip += start.elapsed();
            resources += 1;
            entries += index.len();
            let t = by_type.entry(res.resource_type().to_owned()).or_default();
            t.0 += 1;
            t.1 += index.len();
            for i in &index {
                *by_kind
                    .entry(match i {
                        IndexEntry::Token { .. } => "token",
                        IndexEntry::String { .. } => "string",
                        IndexEntry::Date { .. } => "date",
                        IndexEntry::Reference { .. } => "reference",
                        IndexEntry::Quantity { .. } => "quantity",
                    })
                    .or_default() += 1;
            }
        }
    }
    println!(
        "{} bundles, {resources} resources, {entries} index entries, {:.2} per resource, {:.1} µs per resource to extract",
        files.len(),
        entries as f64 / resources.max(1) as f64,
        elapsed.as_secs_f64() * 1e6 / resources.max(1) as f64
    );
    println!(
        "extraction costs {:.2}x a serde_json::Value round trip of the same bytes",
        elapsed.as_secs_f64() / round_trip.as_secs_f64()
    );
    println!("by kind: {by_kind:?}");
    for (t, (n, e)) in by_type {
        println!(
            "{t:24} {n:6} resources {e:8} entries {:6.2} per resource",
            e as f64 / n as f64
        );
    }
    Ok(())
}
