//! Compares one dataset across stores: the raw archive (what clean/ should hold), the
//! clean archive (the reference) and each warehouse; narrows mismatches down to keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Field;
use object_store::ObjectStore;
use onepipe_archive::clean::read_date;
use onepipe_archive::columns::Mapping;
use onepipe_archive::decode::expected_view;
use onepipe_archive::manifest;
use onepipe_client::SchemaRegistry;
use onepipe_core::metadata::TopicMetadata;
use serde::Serialize;

use crate::canonical::hash64;
use crate::checks::{self, CheckValues, agree, keyed_hashes};
use crate::error::{Error, Result};
use crate::warehouse;

/// A warehouse to compare, by name.
pub struct Warehouse {
    pub name: String,
    pub db: warehouse::Db,
    pub schema: String,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Line {
    pub dataset: String,
    pub date: String,
    pub store: String,
    pub check: String,
    pub value: String,
    /// `ok`, `MISMATCH`, `lag` (records on their way to raw/, not a fault) or
    /// `unchecked` (offsets Kafka no longer holds).
    pub verdict: String,
}

/// A key that differs between the clean archive and another store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyDiff {
    pub dataset: String,
    pub date: String,
    pub store: String,
    pub key: String,
    /// `missing` (in clean, not in the store), `extra` (in the store only), `different`,
    /// `duplicate` (more than one row), or `not_archived` (store `kafka`: a record Kafka
    /// holds that no raw file does).
    pub problem: String,
}

#[derive(Debug, Default, Serialize)]
pub struct DatasetReport {
    pub lines: Vec<Line>,
    pub keys: Vec<KeyDiff>,
    pub mismatches: usize,
    /// Problems that kept a store from being checked.
    pub errors: Vec<String>,
}

pub const CLEAN: &str = "clean";
pub const RAW: &str = "raw";

/// Checks every date of `topic` in every store.
pub async fn check_dataset(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    warehouses: &[Warehouse],
    max_keys: usize,
) -> Result<DatasetReport> {
    let t = registry.topic(topic).await?;
    let meta = t.metadata.clone();
    let Some(m) = manifest::latest(store.as_ref(), topic).await? else {
        return Err(Error::NoManifest {
            topic: topic.to_string(),
        });
    };
    let schema_error = |e: String| Error::Schema {
        topic: topic.to_string(),
        reason: e,
    };
    let mapping = Mapping::new(&t.latest.schema).map_err(|e| schema_error(e.to_string()))?;
    let fields: Vec<Field> = mapping
        .fields()
        .map_err(|e| schema_error(e.to_string()))?
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();

    let mut report = DatasetReport::default();
    let mut values: BTreeMap<String, BTreeMap<String, CheckValues>> = BTreeMap::new();
    let mut clean_rows: HashMap<String, Vec<RecordBatch>> = HashMap::new();
    for (date, entry) in &m.dates {
        let batches = read_date(store.as_ref(), entry).await?;
        let v = checks::compute(&batches, &meta)?;
        values
            .entry(date.to_string())
            .or_default()
            .insert(CLEAN.to_string(), v);
        clean_rows.insert(date.to_string(), batches);
    }
    let (raw, _) = expected_view(store.as_ref(), registry, topic, &m.watermarks).await?;
    let mut raw_rows = HashMap::new();
    for (date, batch) in raw {
        let v = checks::compute(std::slice::from_ref(&batch), &meta)?;
        values
            .entry(date.to_string())
            .or_default()
            .insert(RAW.to_string(), v);
        raw_rows.insert(date.to_string(), vec![batch]);
    }
    for w in warehouses {
        match warehouse::checks(&w.db, &w.schema, &meta, &fields).await {
            Ok(by_date) => {
                for (date, v) in by_date {
                    values.entry(date).or_default().insert(w.name.clone(), v);
                }
            }
            Err(e) => report.errors.push(format!("{topic} in {}: {e}", w.name)),
        }
    }

    let float_sums = checks::float_sums(&meta, &fields);
    let mut stores = vec![CLEAN.to_string(), RAW.to_string()];
    stores.extend(warehouses.iter().map(|w| w.name.clone()));
    for (date, by_store) in &values {
        let empty = CheckValues::new();
        let reference = by_store.get(CLEAN).unwrap_or(&empty);
        let names: BTreeSet<&String> = by_store.values().flat_map(|v| v.keys()).collect();
        let mut differing: BTreeSet<String> = BTreeSet::new();
        for store_name in &stores {
            let Some(v) = by_store.get(store_name) else {
                report.lines.push(Line {
                    dataset: topic.to_string(),
                    date: date.clone(),
                    store: store_name.clone(),
                    check: "rows".to_string(),
                    value: "(date absent)".to_string(),
                    verdict: "MISMATCH".to_string(),
                });
                differing.insert(store_name.clone());
                report.mismatches += 1;
                continue;
            };
            for name in &names {
                // A store that cannot compute a check (SQLite: no MD5) leaves it out.
                let Some(value) = v.get(*name).cloned() else {
                    continue;
                };
                let ok = reference
                    .get(*name)
                    .is_some_and(|r| agree(r, &value, float_sums.contains(*name)));
                if !ok {
                    differing.insert(store_name.clone());
                    report.mismatches += 1;
                }
                report.lines.push(Line {
                    dataset: topic.to_string(),
                    date: date.clone(),
                    store: store_name.clone(),
                    check: (*name).clone(),
                    value,
                    verdict: if ok { "ok" } else { "MISMATCH" }.to_string(),
                });
            }
        }
        // Name the keys that differ, a few per store and date.
        let reference_rows = clean_rows.get(date).map(Vec::as_slice).unwrap_or(&[]);
        let reference_keys = keyed_hashes(reference_rows, &meta)?;
        for store_name in differing {
            let found = if store_name == RAW {
                let other =
                    keyed_hashes(raw_rows.get(date).map(Vec::as_slice).unwrap_or(&[]), &meta)?;
                diff(&reference_keys, &other.into_iter().collect(), max_keys)
            } else if let Some(w) = warehouses.iter().find(|w| w.name == store_name) {
                drill_down(w, &meta, &fields, date, &reference_keys, max_keys).await?
            } else {
                Vec::new()
            };
            for (key, problem) in found {
                report.keys.push(KeyDiff {
                    dataset: topic.to_string(),
                    date: date.clone(),
                    store: store_name.clone(),
                    key,
                    problem,
                });
            }
        }
    }
    Ok(report)
}

fn diff(
    reference: &HashMap<String, i64>,
    other: &BTreeMap<String, i64>,
    max: usize,
) -> Vec<(String, String)> {
    diff_rows(
        reference,
        &other
            .iter()
            .map(|(k, h)| (k.clone(), *h))
            .collect::<Vec<_>>(),
        max,
    )
}

/// Keys of `other` (rows, a key may repeat) that are missing, extra, different or
/// duplicated against `reference`.
fn diff_rows(
    reference: &HashMap<String, i64>,
    other_rows: &[(String, i64)],
    max: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut other: BTreeMap<String, i64> = BTreeMap::new();
    for (k, h) in other_rows {
        if other.insert(k.clone(), *h).is_some() {
            out.push((k.clone(), "duplicate".to_string()));
        }
    }
    let mut keys: Vec<&String> = reference.keys().collect();
    keys.sort();
    for k in keys {
        match other.get(k) {
            None => out.push((k.clone(), "missing".to_string())),
            Some(h) if *h != reference[k] => out.push((k.clone(), "different".to_string())),
            _ => {}
        }
    }
    for k in other.keys() {
        if !reference.contains_key(k) {
            out.push((k.clone(), "extra".to_string()));
        }
    }
    out.truncate(max);
    out
}

/// Rows per key-hash range small enough to fetch their keys.
const LEAF_ROWS: u64 = 64;
const BITS_PER_LEVEL: u32 = 4;

/// Splits the date's rows by ranges of the key hash, compares counts and row-hash sums
/// per range with the clean archive, recursing into the ranges that differ, and fetches
/// keys only for small differing ranges (data-diff's bisection).
async fn drill_down(
    w: &Warehouse,
    meta: &TopicMetadata,
    fields: &[Field],
    date: &str,
    reference: &HashMap<String, i64>,
    max_keys: usize,
) -> Result<Vec<(String, String)>> {
    let local = |bits: u32, parent: Option<(u32, u64)>| {
        let mut b: warehouse::Buckets = BTreeMap::new();
        for (k, h) in reference {
            let kh = hash64(k) as u64;
            if let Some((pb, prefix)) = parent
                && kh >> (64 - pb) != prefix
            {
                continue;
            }
            let e = b.entry(kh >> (64 - bits)).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.wrapping_add(*h);
        }
        b
    };
    let mut out = Vec::new();
    let mut todo: Vec<(u32, Option<(u32, u64)>)> = vec![(BITS_PER_LEVEL, None)];
    while let Some((bits, parent)) = todo.pop() {
        if out.len() >= max_keys {
            break;
        }
        let warehouse::Db::Postgres(pool) = &w.db else {
            // SQLite has no MD5: compare the key sets only.
            let keys = warehouse::keys(&w.db, meta, date).await?;
            let remote: BTreeMap<String, i64> = keys
                .into_iter()
                .map(|k| {
                    let h = reference.get(&k).copied().unwrap_or(0);
                    (k, h)
                })
                .collect();
            out.extend(diff(reference, &remote, max_keys));
            break;
        };
        let theirs = warehouse::buckets(pool, &w.schema, meta, fields, date, bits, parent).await?;
        let ours = local(bits, parent);
        let all: BTreeSet<u64> = theirs.keys().chain(ours.keys()).copied().collect();
        for b in all {
            let (a, t) = (ours.get(&b), theirs.get(&b));
            if a == t {
                continue;
            }
            let rows = a.map_or(0, |x| x.0).max(t.map_or(0, |x| x.0));
            if rows <= LEAF_ROWS || bits >= 60 {
                let remote =
                    warehouse::keyed_rows(pool, &w.schema, meta, fields, date, (bits, b)).await?;
                let mine: HashMap<String, i64> = reference
                    .iter()
                    .filter(|(k, _)| (hash64(k) as u64) >> (64 - bits) == b)
                    .map(|(k, h)| (k.clone(), *h))
                    .collect();
                out.extend(diff_rows(&mine, &remote, max_keys));
            } else {
                todo.push((bits + BITS_PER_LEVEL, Some((bits, b))));
            }
        }
    }
    out.truncate(max_keys);
    Ok(out)
}
