//! The quantity index of the store, driven directly (no gateway): entities written with
//! hand-built `IndexEntry::Quantity` values on both shards, found by `Predicate::Quantity`
//! with every prefix and unit condition, and by `:missing`; updates, deletes and
//! transactions keep the index in step; decimals are compared exactly.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use model::index::IndexEntry;
use model::query::{Access, IndexKind, Predicate, Prefix, Query, SystemMatch};
use model::{Body, Entity, Remainder};
use store::Change;
use store::{AuditRecord, Store, StoreError, WriteKind};

use crate::Env;

crate::tests![quantity_index_answers_every_prefix_and_unit_condition];

const UCUM: &str = "http://unitsofmeasure.org";

fn entity(id: &str) -> Entity {
    Entity {
        id: id.to_owned(),
        source_type: "Observation".into(),
        version: 0,
        patient: None,
        codes: Vec::new(),
        tags: Vec::new(),
        body: Body::Generic,
        remainder: Remainder {
            model: "fhir-r4".into(),
            data: serde_json::Map::new(),
            complete: true,
        },
    }
}

fn qty(param: &str, code: Option<&str>, low: &str, high: &str) -> IndexEntry {
    IndexEntry::Quantity {
        param: param.into(),
        system: code.map(|_| UCUM.to_owned()),
        code: code.map(str::to_owned),
        low: low.into(),
        high: high.into(),
    }
}

fn audit() -> AuditRecord {
    AuditRecord {
        interaction: "create".into(),
        method: "POST".into(),
        path: "Observation".into(),
        outcome: 201,
        ..Default::default()
    }
}

fn query(all_of: Vec<Vec<Predicate>>) -> Query {
    Query {
        source_type: "Observation".into(),
        all_of,
        count: 100,
        after_id: None,
        total: true,
        access: Access::everything(),
    }
}

fn quantity(
    prefix: Prefix,
    low: &str,
    high: &str,
    system: SystemMatch,
    code: Option<&str>,
) -> Predicate {
    Predicate::Quantity {
        param: "value-quantity".into(),
        prefix,
        low: low.into(),
        high: high.into(),
        system,
        code: code.map(str::to_owned),
    }
}

/// The ids a search finds, checked against its `_total`.
async fn ids(store: &Store, q: &Query) -> Result<BTreeSet<String>> {
    let page = store.search(q).await?;
    ensure!(page.next.is_none(), "one page expected");
    let ids: BTreeSet<String> = page
        .items
        .into_iter()
        .filter_map(|s| s.entity.map(|e| e.id))
        .collect();
    ensure!(
        page.total == Some(ids.len() as u64),
        "total {:?} for {ids:?}",
        page.total
    );
    Ok(ids)
}

/// A search and the names it must find: prefix, searched range, unit condition.
type Case = (
    Prefix,
    &'static str,
    &'static str,
    SystemMatch,
    Option<&'static str>,
    &'static [&'static str],
);

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

async fn quantity_index_answers_every_prefix_and_unit_condition(env: &Env) -> Result<()> {
    let db = env.cluster.fresh_database().await?;
    let store = Store::connect(&gateway::up::store_config(&env.cluster.cluster, &db))?;
    let everyone = Access::everything();
    // Ranges as the mappings write them: `5.4` is [5.35, 5.45], `100` [99.5, 100.5].
    // Ids chosen so that both shards hold some (placement by id hash).
    let data: &[(&str, Option<&str>, &str, &str)] = &[
        ("a", Some("mg"), "5.35", "5.45"),
        ("b", Some("mg"), "99.5", "100.5"),
        ("c", Some("g"), "5.35", "5.45"),
        ("d", None, "5.35", "5.45"),
        // Beyond a double's precision: 0.1 and a hair above it are different values.
        (
            "e",
            Some("mg"),
            "0.100000000000000000005",
            "0.100000000000000000015",
        ),
        ("f", Some("mg"), "-2.5", "-1.5"),
    ];
    let mut written = Vec::new();
    for (name, code, low, high) in data {
        let id = store.new_id(None);
        let index = vec![qty("value-quantity", *code, low, high)];
        store
            .write(
                WriteKind::Create,
                &entity(&id),
                &index,
                None,
                &mut audit(),
                &everyone,
            )
            .await
            .with_context(|| format!("writing {name}"))?;
        written.push(((*name).to_owned(), id));
    }
    // One more with no quantity at all.
    let bare = store.new_id(None);
    store
        .write(
            WriteKind::Create,
            &entity(&bare),
            &[],
            None,
            &mut audit(),
            &everyone,
        )
        .await?;
    written.push(("g".into(), bare.clone()));
    let mut shards = BTreeSet::new();
    for (_, id) in &written {
        shards.insert(store.locate("Observation", id).await?);
    }
    ensure!(
        shards.len() == 2,
        "the data sits on one shard only: {shards:?}"
    );
    let name_of = |found: BTreeSet<String>| -> BTreeSet<String> {
        found
            .iter()
            .map(|id| {
                written
                    .iter()
                    .find(|(_, i)| i == id)
                    .map_or_else(|| format!("?{id}"), |(n, _)| n.clone())
            })
            .collect()
    };

    // (prefix, searched range, unit condition, expected matches)
    let any = SystemMatch::Any;
    let ucum = || SystemMatch::Is(UCUM.into());
    let cases: Vec<Case> = vec![
        // eq: the entry's range within the searched one.
        (
            Prefix::Eq,
            "5.35",
            "5.45",
            any.clone(),
            None,
            &["a", "c", "d"],
        ),
        (Prefix::Eq, "5.35", "5.45", ucum(), Some("mg"), &["a"]),
        (Prefix::Eq, "5.35", "5.45", any.clone(), Some("g"), &["c"]),
        (Prefix::Eq, "5.35", "5.45", SystemMatch::None, None, &["d"]),
        (Prefix::Eq, "5.3", "5.4", any.clone(), None, &[]),
        (
            Prefix::Eq,
            "0.1",
            "0.1000000000000000001",
            any.clone(),
            None,
            &["e"],
        ),
        (
            Prefix::Eq,
            "0.10000000000000000001",
            "0.1000000000000000001",
            any.clone(),
            None,
            &[],
        ),
        // ne: not eq (entries without a quantity have no entry to compare).
        (
            Prefix::Ne,
            "5.35",
            "5.45",
            any.clone(),
            None,
            &["b", "e", "f"],
        ),
        // lt / le against the searched range's start / end.
        (Prefix::Lt, "5.35", "5.45", any.clone(), None, &["e", "f"]),
        (
            Prefix::Le,
            "5.25",
            "5.35",
            any.clone(),
            None,
            &["a", "c", "d", "e", "f"],
        ),
        (Prefix::Le, "5.25", "5.349", any.clone(), None, &["e", "f"]),
        // gt / ge.
        (Prefix::Gt, "5.35", "5.45", any.clone(), None, &["b"]),
        (
            Prefix::Ge,
            "5.45",
            "5.55",
            any.clone(),
            None,
            &["a", "b", "c", "d"],
        ),
        (Prefix::Ge, "5.451", "5.55", any.clone(), Some("mg"), &["b"]),
        // sa / eb: wholly after / before.
        (Prefix::Sa, "5.3", "5.35", any.clone(), None, &["b"]),
        (
            Prefix::Sa,
            "5.3",
            "5.34",
            any.clone(),
            None,
            &["a", "b", "c", "d"],
        ),
        (Prefix::Eb, "5.45", "5.5", any.clone(), None, &["e", "f"]),
        (
            Prefix::Eb,
            "5.46",
            "5.5",
            any.clone(),
            None,
            &["a", "c", "d", "e", "f"],
        ),
        // ap: the ranges overlap.
        (Prefix::Ap, "90", "110", any.clone(), None, &["b"]),
        (Prefix::Ap, "-3", "0", any.clone(), None, &["f"]),
        (Prefix::Ap, "5.45", "5.45", ucum(), Some("mg"), &["a"]),
        // Negative numbers and exponents.
        (Prefix::Lt, "-2", "-2", any.clone(), None, &["f"]),
        (Prefix::Gt, "1e1", "1e1", any.clone(), None, &["b"]),
    ];
    for (prefix, low, high, system, code, expect) in cases {
        let q = query(vec![vec![quantity(
            prefix,
            low,
            high,
            system.clone(),
            code,
        )]]);
        let found = name_of(ids(&store, &q).await?);
        ensure!(
            found == set(expect),
            "{prefix:?} [{low}, {high}] {system:?} {code:?}: found {found:?}, expected {expect:?}"
        );
    }
    // OR within a group, AND across groups (the second group filters through EXISTS).
    let q = query(vec![
        vec![
            quantity(Prefix::Eq, "5.35", "5.45", any.clone(), None),
            quantity(Prefix::Ap, "90", "110", any.clone(), None),
        ],
        vec![quantity(Prefix::Ge, "0", "0", ucum(), Some("mg"))],
    ]);
    ensure!(name_of(ids(&store, &q).await?) == set(&["a", "b"]));

    // :missing.
    let missing = |m: bool| {
        query(vec![vec![Predicate::Missing {
            param: "value-quantity".into(),
            kind: IndexKind::Quantity,
            missing: m,
        }]])
    };
    ensure!(name_of(ids(&store, &missing(true)).await?) == set(&["g"]));
    ensure!(name_of(ids(&store, &missing(false)).await?).len() == 6);

    // An update replaces the entries, a delete removes them.
    let a = &written[0].1;
    store
        .write(
            WriteKind::Upsert,
            &entity(a),
            &[qty("value-quantity", Some("mg"), "7.5", "8.5")],
            None,
            &mut audit(),
            &everyone,
        )
        .await?;
    let eq8 = query(vec![vec![quantity(
        Prefix::Eq,
        "7.5",
        "8.5",
        any.clone(),
        None,
    )]]);
    ensure!(name_of(ids(&store, &eq8).await?) == set(&["a"]));
    let eq54 = query(vec![vec![quantity(
        Prefix::Eq,
        "5.35",
        "5.45",
        any.clone(),
        None,
    )]]);
    ensure!(name_of(ids(&store, &eq54).await?) == set(&["c", "d"]));
    store
        .delete("Observation", a, None, &mut audit(), &everyone)
        .await?;
    ensure!(ids(&store, &eq8).await?.is_empty());

    // A transaction over both shards writes its entries with the rest.
    let (t1, t2) = (store.new_id(None), store.new_id(None));
    let changes: Vec<Change> = [&t1, &t2]
        .iter()
        .map(|id| Change::Put {
            kind: WriteKind::Create,
            entity: Box::new(entity(id)),
            index: vec![qty("value-quantity", Some("kg"), "70.05", "70.15")],
            if_match: None,
        })
        .collect();
    store.transact(&changes, &audit(), &everyone).await?;
    let kg = query(vec![vec![quantity(
        Prefix::Eq,
        "70",
        "70.2",
        ucum(),
        Some("kg"),
    )]]);
    ensure!(ids(&store, &kg).await? == [t1.clone(), t2.clone()].into_iter().collect());

    // A bound that is not a decimal is the caller's error, on write and on search; nothing
    // is written.
    let bad = store.new_id(None);
    for (low, high) in [
        ("NaN", "1"),
        ("1", "Infinity"),
        ("1,5", "2"),
        ("", "1"),
        ("1e99999", "1"),
    ] {
        let err = store
            .write(
                WriteKind::Create,
                &entity(&bad),
                &[qty("value-quantity", None, low, high)],
                None,
                &mut audit(),
                &everyone,
            )
            .await
            .err();
        ensure!(
            matches!(err, Some(StoreError::Invalid(_))),
            "{low} {high}: {err:?}"
        );
        let q = query(vec![vec![quantity(
            Prefix::Eq,
            low,
            high,
            any.clone(),
            None,
        )]]);
        let err = store.search(&q).await.err();
        ensure!(
            matches!(err, Some(StoreError::Invalid(_))),
            "search {low} {high}: {err:?}"
        );
    }
    ensure!(store.read("Observation", &bad, &everyone).await?.is_none());

    store.close().await;
    Ok(())
}
