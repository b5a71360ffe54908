//! House rules checked as tests: the crate dependency direction (ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

/// The workspace crates each crate may depend on (normal and build dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("terminology", &[]),
    ("mappings", &["model"]),
    ("store", &["model"]),
    ("gateway", &["model", "mappings", "store", "terminology"]),
    (
        "tests",
        &["model", "mappings", "store", "terminology", "gateway"],
    ),
];

/// Outside crates that must never reach the pure crates.
const FORBIDDEN_EXTERNAL: &[(&str, &[&str])] = &[
    (
        "model",
        &["sqlx", "tokio", "axum", "fhirbolt", "reqwest", "hyper"],
    ),
    ("mappings", &["sqlx", "tokio", "axum", "reqwest", "hyper"]),
    (
        "terminology",
        &["sqlx", "tokio", "axum", "reqwest", "hyper", "serde_json"],
    ),
    (
        "store",
        &["axum", "fhirbolt", "jsonwebtoken", "hyper", "reqwest"],
    ),
];

pub fn all() -> Vec<Trial> {
    vec![Trial::test("house::dependency_direction", || {
        dependency_direction().map_err(Failed::from)
    })]
}

fn dependency_direction() -> Result<(), String> {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| {
            meta["packages"]
                .as_array()?
                .iter()
                .find(|p| &p["id"] == id)?["name"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for name in &members {
        let Some(ok) = allowed.get(name.as_str()) else {
            problems.push(format!(
                "crate {name} is not in the dependency table of house.rs"
            ));
            continue;
        };
        let pkg = meta["packages"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"] == name.as_str() && p["source"].is_null())
            })
            .ok_or("package not found")?;
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dev = dep["kind"] == "dev";
            if members.contains(dep_name) && !dev && !ok.contains(&dep_name) {
                problems.push(format!("forbidden edge {name} -> {dep_name}"));
            }
        }
    }
    // Transitive check over the resolved graph for outside crates.
    let resolve = &meta["resolve"]["nodes"];
    let name_of = |id: &str| -> Option<String> {
        meta["packages"]
            .as_array()?
            .iter()
            .find(|p| p["id"] == id)?["name"]
            .as_str()
            .map(str::to_owned)
    };
    for (krate, banned) in FORBIDDEN_EXTERNAL {
        let Some(root) = resolve
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| name_of(n["id"].as_str().unwrap_or_default()).as_deref() == Some(krate))
        else {
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut stack = vec![root["id"].as_str().unwrap_or_default().to_owned()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(node) = resolve
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["id"] == id.as_str())
            else {
                continue;
            };
            for d in node["deps"].as_array().into_iter().flatten() {
                let normal = d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null());
                if normal && let Some(dep_id) = d["pkg"].as_str() {
                    if let Some(n) = name_of(dep_id)
                        && banned.contains(&n.as_str())
                    {
                        problems.push(format!("{krate} reaches {n}"));
                    }
                    stack.push(dep_id.to_owned());
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
