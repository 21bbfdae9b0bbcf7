//! Compares one dataset across stores: the raw archive (what clean/ should hold), the
//! clean archive (the reference) and each warehouse; narrows mismatches down to keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Field;
use chrono::NaiveDate;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_archive::columns::Mapping;
use onepipe_archive::delta;
use onepipe_archive::manifest;
use onepipe_client::SchemaRegistry;
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::canonical::hash64;
use crate::checks::{self, Accumulator, CheckValues, agree};
use crate::error::{Error, Result};
use crate::expected::{self, ExpectedView};
use crate::verdicts::{self, DateVerdict, Verdicts};
use crate::warehouse;
use onepipe_archive::layout::RawFile;

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
    /// The dataset checked (empty in reports that only hold lines).
    pub dataset: String,
    pub lines: Vec<Line>,
    pub keys: Vec<KeyDiff>,
    pub mismatches: usize,
    /// Problems that kept a store from being checked.
    pub errors: Vec<String>,
    /// The dates checked in this round, with their clean version and why.
    pub checked: Vec<CheckedDate>,
    /// Dates whose stores are as they were at their last `ok` verdict, not checked again.
    pub dates_skipped: usize,
    /// The last verdict of every date (checked now or before).
    #[serde(skip)]
    pub verdicts: BTreeMap<String, DateVerdict>,
}

pub const CLEAN: &str = "clean";
/// The verdict of a check that agrees.
pub const OK: &str = "ok";
pub const RAW: &str = "raw";

/// How to check a dataset.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Most differing keys named per store and date.
    pub max_keys: usize,
    /// Memory and local disk for the expected view and the clean files being read.
    pub expected: expected::Options,
    /// Check every date, not only those changed since the last verdicts.
    pub full: bool,
    /// Most bytes of the key index that names differing keys; `None`: an eighth of
    /// `expected.memory_limit`.
    pub key_index_bytes: Option<u64>,
}

impl CheckOptions {
    pub fn new(max_keys: usize) -> Self {
        CheckOptions {
            max_keys,
            expected: expected::Options::default(),
            full: false,
            key_index_bytes: None,
        }
    }
}

/// The store name of the clean archive's Delta table in reports.
pub const DELTA: &str = "delta";

/// The Delta table against the manifest, as deltalake reads its log: the manifest it holds
/// (`lag` while a newer manifest waits for copydog's next run to publish it) and, once it
/// holds this one, every date's files, which must be exactly the manifest's (one line for
/// the table, and one per date that differs). A table that
/// is missing while the manifest exists is `lag` too (published on copydog's next run);
/// one that cannot be read is an error of the report.
async fn delta_lines(
    store: &Arc<dyn ObjectStore>,
    m: &manifest::Manifest,
    report: &mut DatasetReport,
) {
    let topic = m.topic.as_str();
    let line = |date: &str, check: &str, value: String, verdict: &str| Line {
        dataset: topic.to_string(),
        date: date.to_string(),
        store: DELTA.to_string(),
        check: check.to_string(),
        value,
        verdict: verdict.to_string(),
    };
    let table = match delta::files(store.clone(), topic, delta::AsOf::Latest).await {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(format!("{DELTA}: {e}"));
            return;
        }
    };
    let Some(table) = table else {
        report.lines.push(line(
            ALL_DATES,
            "manifest",
            format!("no table yet (manifest {})", m.number),
            "lag",
        ));
        return;
    };
    let held = table.manifest.unwrap_or(0);
    let verdict = match held.cmp(&m.number) {
        std::cmp::Ordering::Equal => OK,
        std::cmp::Ordering::Less => "lag",
        std::cmp::Ordering::Greater => "MISMATCH",
    };
    report.lines.push(line(
        ALL_DATES,
        "manifest",
        format!(
            "version {} holds manifest {held} of {}",
            table.version, m.number
        ),
        verdict,
    ));
    if verdict == "MISMATCH" {
        report.mismatches += 1;
    }
    if held != m.number {
        return;
    }
    let mut dates: BTreeSet<NaiveDate> = m.dates.keys().copied().collect();
    dates.extend(table.dates.keys().copied());
    let mut differing = Vec::new();
    for date in &dates {
        let mut want: Vec<&str> = m
            .dates
            .get(date)
            .map(|e| e.files.iter().map(String::as_str).collect())
            .unwrap_or_default();
        want.sort_unstable();
        let have: Vec<&str> = table
            .dates
            .get(date)
            .map(|f| f.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if want != have {
            differing.push((*date, have.len(), want.len()));
        }
    }
    // One line for the table; a line more for each date whose files differ.
    let files = table.files().count();
    report.lines.push(line(
        ALL_DATES,
        "files",
        format!("{files} files, {} dates", table.dates.len()),
        if differing.is_empty() { OK } else { "MISMATCH" },
    ));
    for (date, have, want) in differing {
        report.mismatches += 1;
        report.lines.push(line(
            &date.to_string(),
            "files",
            format!("{have} files; the manifest names {want}, not the same"),
            "MISMATCH",
        ));
    }
}

/// One date checked in the archive: from which clean version and how many rows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckedDate {
    pub date: String,
    /// The clean archive's version of the date (`None`: not in the clean archive).
    pub clean_version: Option<u32>,
    /// Why it was checked: `new`, `clean version`, `new raw records`, `not ok before`,
    /// `--full`, or `warehouse` (only a warehouse's values changed).
    pub reason: String,
}

/// Checks the dates of `topic` that changed since the last verdicts, with the default
/// memory limit.
pub async fn check_dataset(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    warehouses: &[Warehouse],
    max_keys: usize,
) -> Result<DatasetReport> {
    check_dataset_with(
        store,
        registry,
        topic,
        warehouses,
        &CheckOptions::new(max_keys),
    )
    .await
}

/// Checks the dates of `topic` that changed since the last verdicts (every date with
/// `full`) in every store, one date at a time: the clean files and the merged raw rows
/// of a date stream through the checks, so memory does not grow with the size of a date
/// (beyond 16 bytes per distinct key). See [`crate::verdicts`] for what is skipped.
pub async fn check_dataset_with(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    warehouses: &[Warehouse],
    options: &CheckOptions,
) -> Result<DatasetReport> {
    let max_keys = options.max_keys;
    let index_budget = options
        .key_index_bytes
        .unwrap_or(options.expected.memory_limit as u64 / 8);
    let t = registry.topic(topic).await?;
    let meta = t.metadata.clone();
    let Some(m) = manifest::latest(store.as_ref(), topic).await? else {
        return Err(Error::NoManifest {
            topic: topic.to_string(),
        });
    };
    let fields = clean_fields(topic, &t.latest.schema)?;
    // Verdicts reached with another newest schema, or without a count of rejected records
    // (an older verifier's), are no base to build on: everything is checked again.
    let prior = if options.full {
        Verdicts::default()
    } else {
        verdicts::load(store.as_ref(), topic).await?
    };
    let prior = if prior.rejected.is_some() && prior.schema_id == Some(t.latest.id) {
        prior
    } else {
        Verdicts::default()
    };

    // The raw side: first every file with records the verdicts have not dated yet, then
    // the older files of raw date folders holding records of dates to check.
    let mut view = ExpectedView::new(registry, topic, &options.expected).await?;
    view.count_rejects_after(&prior.watermarks);
    let files = expected::raw_files(store.as_ref(), topic, &m.watermarks).await?;
    let (new_files, old_files): (Vec<RawFile>, Vec<RawFile>) = files.into_iter().partition(|f| {
        prior
            .watermarks
            .get(&f.partition.to_string())
            .is_none_or(|w| f.last_offset > *w)
    });
    let seen = view
        .decode(store.as_ref(), registry, &new_files, &m.watermarks, None)
        .await?;
    let mut raw_dates = prior.raw_dates.clone();
    let mut touched: BTreeSet<NaiveDate> = BTreeSet::new();
    for (folder, dates) in &seen {
        let known = raw_dates.entry(folder.to_string()).or_default();
        for d in dates {
            known.insert(d.to_string());
            touched.insert(*d);
        }
    }
    let mut all: BTreeSet<NaiveDate> = m.dates.keys().copied().collect();
    all.extend(
        prior
            .dates
            .keys()
            .filter_map(|d| d.parse::<NaiveDate>().ok()),
    );
    all.extend(touched.iter().copied());
    let objects = clean_objects(store.as_ref(), topic).await?;
    let fingerprints: BTreeMap<NaiveDate, String> = m
        .dates
        .iter()
        .map(|(d, e)| (*d, fingerprint(e, &objects)))
        .collect();
    let mut reasons: BTreeMap<NaiveDate, &str> = BTreeMap::new();
    for d in &all {
        let version = m.dates.get(d).map(|e| e.version);
        let files = fingerprints.get(d).map_or("", String::as_str);
        let reason = match prior.dates.get(&d.to_string()) {
            _ if options.full => Some("--full"),
            None => Some("new"),
            Some(v) if v.verdict != OK => Some("not ok before"),
            Some(v) if v.clean_version != version => Some("clean version"),
            Some(v) if v.clean_files != files => Some("clean files changed"),
            _ if touched.contains(d) => Some("new raw records"),
            _ => None,
        };
        if let Some(r) = reason {
            reasons.insert(*d, r);
        }
    }
    let changed: BTreeSet<NaiveDate> = reasons.keys().copied().collect();
    let folders: BTreeSet<String> = raw_dates
        .iter()
        .filter(|(_, dates)| {
            dates
                .iter()
                .any(|d| d.parse().is_ok_and(|d| changed.contains(&d)))
        })
        .map(|(folder, _)| folder.clone())
        .collect();
    let old: Vec<RawFile> = old_files
        .into_iter()
        .filter(|f| folders.contains(&f.date.to_string()))
        .collect();
    view.decode(
        store.as_ref(),
        registry,
        &old,
        &m.watermarks,
        Some(&changed),
    )
    .await?;

    let view = Arc::new(view);
    let mut report = DatasetReport {
        dataset: topic.to_string(),
        ..DatasetReport::default()
    };
    let mut values: BTreeMap<String, BTreeMap<String, CheckValues>> = BTreeMap::new();
    for d in &all {
        values.entry(d.to_string()).or_default();
    }
    let mut warehouse_failed = false;
    for w in warehouses {
        match warehouse::checks(&w.db, &w.schema, &meta, &fields).await {
            Ok(by_date) => {
                for (date, v) in by_date {
                    values.entry(date).or_default().insert(w.name.clone(), v);
                }
            }
            Err(e) => {
                warehouse_failed = true;
                report.errors.push(format!("{topic} in {}: {e}", w.name));
            }
        }
    }

    let float_sums = checks::float_sums(&meta, &fields);
    let mut stores = vec![CLEAN.to_string(), RAW.to_string()];
    stores.extend(warehouses.iter().map(|w| w.name.clone()));
    let spill = &options.expected.spill_dir;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rejected = prior.rejected.unwrap_or(0) + view.rejected();
    let mut next = Verdicts {
        watermarks: m.watermarks.clone(),
        raw_dates,
        dates: BTreeMap::new(),
        rejected: Some(rejected),
        schema_id: Some(t.latest.id),
    };

    // Which dates to compare and why. A date whose archive side is unchanged keeps its
    // stored clean and raw values: it is compared again only if a warehouse's changed.
    let mut plan: BTreeMap<String, &str> = BTreeMap::new();
    for (date, by_store) in &mut values {
        let day: Option<NaiveDate> = date.parse().ok();
        if let Some(r) = day.and_then(|d| reasons.get(&d)) {
            plan.insert(date.clone(), r);
            continue;
        }
        let Some(before) = prior.dates.get(date) else {
            continue;
        };
        for s in [CLEAN, RAW] {
            if let Some(v) = before.stores.get(s) {
                by_store.insert(s.to_string(), v.clone());
            }
        }
        if *by_store == before.stores {
            report.dates_skipped += 1;
            next.dates.insert(date.clone(), before.clone());
        } else {
            plan.insert(date.clone(), "warehouse");
        }
    }
    let archive_dates: Vec<NaiveDate> = plan
        .iter()
        .filter(|(_, r)| **r != "warehouse")
        .filter_map(|(d, _)| d.parse().ok())
        .collect();
    let mut archive =
        archive_values(store.clone(), &view, &m, &meta, spill, archive_dates, topic).await?;

    for (date, reason) in &plan {
        let Some(by_store) = values.get_mut(date) else {
            continue;
        };
        let day: Option<NaiveDate> = date.parse().ok();
        let entry = day.and_then(|d| m.dates.get(&d));
        if let Some((clean, raw)) = day.and_then(|d| archive.remove(&d)) {
            if let Some(v) = clean {
                by_store.insert(CLEAN.to_string(), v);
            }
            if let Some(v) = raw {
                by_store.insert(RAW.to_string(), v);
            }
        }
        if by_store.is_empty() {
            // No store has the date (any more): nothing to say.
            continue;
        }
        report.checked.push(CheckedDate {
            date: date.clone(),
            clean_version: entry.map(|e| e.version),
            reason: reason.to_string(),
        });
        let mismatches_before = report.mismatches;
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
                    verdict: if ok { OK } else { "MISMATCH" }.to_string(),
                });
            }
        }
        next.dates.insert(
            date.clone(),
            DateVerdict {
                clean_version: entry.map(|e| e.version),
                clean_files: day
                    .and_then(|d| fingerprints.get(&d))
                    .cloned()
                    .unwrap_or_default(),
                verdict: if report.mismatches == mismatches_before {
                    OK
                } else {
                    "MISMATCH"
                }
                .to_string(),
                checked_at: now.clone(),
                stores: by_store.clone(),
            },
        );
        differing.remove(CLEAN);
        if differing.is_empty() {
            continue;
        }
        // Name the keys that differ, a few per store and date.
        let mut push = |store_name: &str, found: Vec<(String, String)>| {
            push_keys(&mut report, topic, date, store_name, found)
        };
        if differing.remove(RAW) {
            let (store, entry, view, meta, spill) = (
                store.clone(),
                entry.cloned(),
                view.clone(),
                meta.clone(),
                spill.to_path_buf(),
            );
            let (found, duplicates) = off_async(async move {
                raw_differences(
                    &store,
                    entry.as_ref(),
                    &view,
                    day,
                    &meta,
                    &spill,
                    max_keys,
                    index_budget,
                )
                .await
            })
            .await?;
            push(RAW, found);
            push(
                CLEAN,
                duplicates
                    .into_iter()
                    .map(|k| (k, "duplicate".to_string()))
                    .collect(),
            );
        }
        if differing.is_empty() {
            continue;
        }
        let reference_keys = match entry {
            Some(entry) => {
                let (store, entry, meta, spill) = (
                    store.clone(),
                    entry.clone(),
                    meta.clone(),
                    spill.to_path_buf(),
                );
                off_async(async move {
                    let mut keys = HashMap::new();
                    clean_for_each(store, &entry, &spill, |b| {
                        checks::add_keyed_hashes(&mut keys, b, &meta)
                    })
                    .await?;
                    Ok(keys)
                })
                .await?
            }
            None => HashMap::new(),
        };
        for store_name in differing {
            if let Some(w) = warehouses.iter().find(|w| w.name == store_name) {
                let found = drill_down(w, &meta, &fields, date, &reference_keys, max_keys).await?;
                push(&store_name, found);
            }
        }
    }

    // Records that are no clean row: the verifier's count against copydog's, over the
    // topic's history up to the watermarks.
    let copydog_rejected = m.rejected.records;
    let rejects_agree = rejected == copydog_rejected;
    for (store_name, value) in [(CLEAN, copydog_rejected), (RAW, rejected)] {
        report.lines.push(Line {
            dataset: topic.to_string(),
            date: ALL_DATES.to_string(),
            store: store_name.to_string(),
            check: "rejected records".to_string(),
            value: value.to_string(),
            verdict: if rejects_agree || store_name == CLEAN {
                OK
            } else {
                "MISMATCH"
            }
            .to_string(),
        });
    }
    if !rejects_agree {
        report.mismatches += 1;
        let found =
            reject_differences(store.as_ref(), &m, &prior, view.rejects(), max_keys).await?;
        push_keys(&mut report, topic, ALL_DATES, RAW, found);
    }

    delta_lines(&store, &m, &mut report).await;

    report.verdicts = next
        .dates
        .iter()
        .map(|(d, v)| (d.clone(), v.clone()))
        .collect();
    // A warehouse that could not be asked would be remembered as agreeing: keep the
    // old verdicts then, and check again next time.
    if !warehouse_failed {
        verdicts::save(store.as_ref(), topic, &next).await?;
    }
    Ok(report)
}

/// The clean columns (the contract's Avro → column mapping) of a topic's newest schema.
pub(crate) fn clean_fields(topic: &str, schema: &apache_avro::Schema) -> Result<Vec<Field>> {
    let schema_error = |e: String| Error::Schema {
        topic: topic.to_string(),
        reason: e,
    };
    let mapping = Mapping::new(schema).map_err(|e| schema_error(e.to_string()))?;
    Ok(mapping
        .fields()
        .map_err(|e| schema_error(e.to_string()))?
        .iter()
        .map(|f| f.as_ref().clone())
        .collect())
}

/// The date column of report lines about the whole dataset.
pub const ALL_DATES: &str = "(all)";

/// The clean archive's check values and those of the merged raw rows, for each of
/// `dates`. Several dates at once, up to the cores available, each on a blocking thread:
/// reading Parquet, merging and hashing are CPU work, kept off the async workers.
async fn archive_values(
    store: Arc<dyn ObjectStore>,
    view: &Arc<ExpectedView>,
    m: &manifest::Manifest,
    meta: &TopicMetadata,
    spill: &std::path::Path,
    dates: Vec<NaiveDate>,
    topic: &str,
) -> Result<BTreeMap<NaiveDate, (Option<CheckValues>, Option<CheckValues>)>> {
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = dates.len();
    let jobs = dates.into_iter().map(|d| {
        let (store, view, meta, spill) = (
            store.clone(),
            view.clone(),
            meta.clone(),
            spill.to_path_buf(),
        );
        let entry = m.dates.get(&d).cloned();
        off_async(async move {
            let clean = match &entry {
                Some(entry) => Some(clean_values(store, entry, &spill, &meta).await?),
                None => None,
            };
            let raw = if view.has(d) {
                let mut acc = Accumulator::new(&meta);
                view.for_each(d, |b| acc.add(b)).await?;
                Some(acc.finish()?)
            } else {
                None
            };
            Ok((d, (clean, raw)))
        })
    });
    let mut out = BTreeMap::new();
    let mut results = futures::stream::iter(jobs).buffer_unordered(parallel);
    let mut last_progress = std::time::Instant::now();
    while let Some(result) = results.next().await {
        let (d, v) = result?;
        out.insert(d, v);
        if last_progress.elapsed() >= std::time::Duration::from_secs(10) {
            last_progress = std::time::Instant::now();
            tracing::info!(
                topic,
                dates = out.len(),
                of = total,
                "verifier: checking dates"
            );
        }
    }
    Ok(out)
}

/// Runs `work` on a blocking thread, so that its CPU work (Parquet decoding, hashing)
/// leaves the async workers free; it may still await I/O.
async fn off_async<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work)).await?
}

/// Bytes the key index of [`raw_differences`] takes per key, with the hash table's slack.
const INDEX_BYTES_PER_KEY: u64 = 64;

/// The keys whose merged raw rows differ from the clean rows of a date (at most `max`),
/// and the keys the clean archive holds more than once. Memory per key is a key hash and
/// a row hash (24 bytes), not its text: one pass over the clean files indexes them, one
/// pass over the merged raw rows names the extra and different keys as it meets them,
/// and a last pass over the clean files names the keys raw/ lacks.
///
/// The index is bounded by `index_budget` bytes whatever the date's size: when the date
/// is split into parts by key hash and its keys would not fit, the passes run once per
/// group of parts, each indexing only the clean keys of its group and merging only its
/// parts (every part is still merged once; the clean files are read once more a group).
#[allow(clippy::too_many_arguments)]
async fn raw_differences(
    store: &Arc<dyn ObjectStore>,
    entry: Option<&manifest::DateEntry>,
    view: &ExpectedView,
    day: Option<NaiveDate>,
    meta: &TopicMetadata,
    spill: &std::path::Path,
    max: usize,
    index_budget: u64,
) -> Result<(Vec<(String, String)>, Vec<String>)> {
    let rows = entry.map_or(0, |e| e.rows);
    let parts = day.and_then(|d| view.parts(d));
    let groups = match parts {
        Some(n) => (rows.saturating_mul(INDEX_BYTES_PER_KEY))
            .div_ceil(index_budget.max(1))
            .clamp(1, n as u64) as usize,
        None => 1,
    };
    if groups > 1 {
        tracing::info!(
            topic = %meta.topic,
            date = ?day,
            groups,
            "verifier: naming differing keys a group of parts at a time"
        );
    }
    let mut found: BTreeMap<String, &str> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for group in 0..groups {
        if found.len() >= max {
            break;
        }
        // A key's part is its hash modulo the date's parts; a group is every part whose
        // index is `group` modulo `groups`.
        let part_in_group = |part: usize| part % groups == group;
        let key_in_group = |h: u128| parts.is_none_or(|n| part_in_group((h % n as u128) as usize));
        let mut index: HashMap<u128, i64, checks::FastHash> =
            HashMap::with_capacity_and_hasher((rows / groups as u64) as usize, Default::default());
        if let Some(entry) = entry {
            clean_for_each(store.clone(), entry, spill, |b| {
                checks::for_each_keyed_hash(b, meta, |key, h| {
                    let kh = checks::key_hash(key);
                    if key_in_group(kh) && index.insert(kh, h).is_some() && duplicates.len() < max {
                        duplicates.push(key.to_string());
                    }
                })
            })
            .await?;
        }
        if let Some(d) = day.filter(|d| view.has(*d)) {
            view.for_each_part(d, part_in_group, |b| {
                checks::for_each_keyed_hash(b, meta, |key, h| {
                    let problem = match index.remove(&checks::key_hash(key)) {
                        None => "extra",
                        Some(clean) if clean != h => "different",
                        Some(_) => return,
                    };
                    if found.len() < max {
                        found.insert(key.to_string(), problem);
                    }
                })
            })
            .await?;
        }
        if let Some(entry) = entry.filter(|_| !index.is_empty() && found.len() < max) {
            clean_for_each(store.clone(), entry, spill, |b| {
                checks::for_each_keyed_hash(b, meta, |key, _| {
                    if found.len() < max && index.contains_key(&checks::key_hash(key)) {
                        found.insert(key.to_string(), "missing");
                    }
                })
            })
            .await?;
        }
    }
    Ok((
        found.into_iter().map(|(k, p)| (k, p.to_string())).collect(),
        duplicates,
    ))
}

/// Names the records rejected by the verifier and not by copydog, or the other way
/// round (as `partition P offset O`), among those after the previous verdicts'
/// watermarks; at most `max`.
async fn reject_differences(
    store: &dyn ObjectStore,
    m: &manifest::Manifest,
    prior: &Verdicts,
    ours: &[expected::RejectedRecord],
    max: usize,
) -> Result<Vec<(String, String)>> {
    let after = |p: i32| prior.watermarks.get(&p.to_string()).copied().unwrap_or(-1);
    let mut theirs: BTreeSet<(i32, i64)> = BTreeSet::new();
    for file in &m.rejected.files {
        let bad = |reason: String| Error::Clean {
            path: file.clone(),
            reason,
        };
        let bytes = store
            .get(&object_store::path::Path::from(file.as_str()))
            .await
            .map_err(|e| bad(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| bad(e.to_string()))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| bad(e.to_string()))?
            .build()
            .map_err(|e| bad(e.to_string()))?;
        for batch in batches {
            let batch = batch.map_err(|e| bad(e.to_string()))?;
            let (Some(p), Some(o)) = (
                batch.column_by_name("partition"),
                batch.column_by_name("offset"),
            ) else {
                return Err(bad("no partition or offset column".to_string()));
            };
            let (Some(p), Some(o)) = (
                p.as_primitive_opt::<arrow::datatypes::Int32Type>(),
                o.as_primitive_opt::<arrow::datatypes::Int64Type>(),
            ) else {
                return Err(bad("partition or offset of an unexpected type".to_string()));
            };
            for i in 0..batch.num_rows() {
                let (p, o) = (p.value(i), o.value(i));
                if o > after(p) && o <= m.watermark(p) {
                    theirs.insert((p, o));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut mine: BTreeSet<(i32, i64)> = BTreeSet::new();
    for r in ours {
        mine.insert((r.partition, r.offset));
        if !theirs.contains(&(r.partition, r.offset)) && out.len() < max {
            out.push((
                format!("partition {} offset {}", r.partition, r.offset),
                format!("rejected by the verifier only: {}", r.reason),
            ));
        }
    }
    // Only a complete list of ours tells what copydog alone rejected.
    if ours.len() < expected::MAX_REJECT_POSITIONS {
        for (p, o) in theirs.difference(&mine) {
            if out.len() >= max {
                break;
            }
            out.push((
                format!("partition {p} offset {o}"),
                "rejected by copydog only".to_string(),
            ));
        }
    }
    Ok(out)
}

/// Adds the keys found to differ in one store on one date to the report.
fn push_keys(
    report: &mut DatasetReport,
    topic: &str,
    date: &str,
    store: &str,
    found: Vec<(String, String)>,
) {
    for (key, problem) in found {
        report.keys.push(KeyDiff {
            dataset: topic.to_string(),
            date: date.to_string(),
            store: store.to_string(),
            key,
            problem,
        });
    }
}

/// Per object under `clean/{topic}/`: its size, ETag and modification time, from one
/// listing.
async fn clean_objects(store: &dyn ObjectStore, topic: &str) -> Result<HashMap<String, String>> {
    let prefix = object_store::path::Path::from(format!("clean/{topic}/"));
    let mut out = HashMap::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| Error::Clean {
            path: prefix.to_string(),
            reason: format!("listing: {e}"),
        })?;
        out.insert(
            meta.location.to_string(),
            format!(
                "{} {} {}",
                meta.size,
                meta.e_tag.unwrap_or_default(),
                meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
            ),
        );
    }
    Ok(out)
}

/// The digest of one date's clean files as they are now (see
/// [`DateVerdict::clean_files`]).
fn fingerprint(entry: &manifest::DateEntry, objects: &HashMap<String, String>) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for f in &entry.files {
        h.update(f.as_bytes());
        h.update(b"\0");
        h.update(objects.get(f).map_or("missing", String::as_str).as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Calls `f` with each batch of the clean files of one date. Each file is copied to local
/// disk first and read a batch at a time, so a file larger than memory is no problem.
pub async fn clean_for_each(
    store: Arc<dyn ObjectStore>,
    entry: &manifest::DateEntry,
    spill_dir: &std::path::Path,
    mut f: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    for file in &entry.files {
        clean_file_for_each(store.as_ref(), file, spill_dir, None, &mut f).await?;
    }
    Ok(())
}

/// The check values of the clean files of one date. The files are read by as many
/// threads as there are cores (at most one a file), each into its own
/// [`Accumulator::sibling`], and only the columns the checks need are decoded.
pub async fn clean_values(
    store: Arc<dyn ObjectStore>,
    entry: &manifest::DateEntry,
    spill_dir: &std::path::Path,
    meta: &TopicMetadata,
) -> Result<CheckValues> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(entry.files.len()).max(1);
    let mut total = Accumulator::new(meta);
    let columns = total.columns();
    let queue = Arc::new(std::sync::Mutex::new(entry.files.clone().into_iter()));
    let jobs = (0..workers).map(|_| {
        let (store, queue, spill, columns) = (
            store.clone(),
            queue.clone(),
            spill_dir.to_path_buf(),
            columns.clone(),
        );
        let mut acc = total.sibling();
        off_async(async move {
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(file) = next else {
                    return Ok(acc);
                };
                clean_file_for_each(store.as_ref(), &file, &spill, columns.as_ref(), &mut |b| {
                    acc.add(b)
                })
                .await?;
            }
        })
    });
    for acc in futures::future::try_join_all(jobs).await? {
        total.merge(acc)?;
    }
    total.finish()
}

/// About how many decoded bytes a batch read from a clean file holds.
const CLEAN_BATCH_BYTES: i64 = 2 << 20;

/// Calls `f` with each batch of one clean file, of only `columns` (top-level names) when
/// given.
async fn clean_file_for_each(
    store: &dyn ObjectStore,
    file: &str,
    spill_dir: &std::path::Path,
    columns: Option<&BTreeSet<String>>,
    f: &mut impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let bad = |reason: String| Error::Clean {
        path: file.to_string(),
        reason,
    };
    let local = spill_dir.join(format!(
        "onepipe-verifier-clean-{}-{}.parquet",
        std::process::id(),
        hash64(file) as u64
    ));
    let _cleanup = RemoveOnDrop(local.clone());
    expected::download(store, file, &local).await.map_err(bad)?;
    let reader = std::fs::File::open(&local).map_err(|e| Error::Spill {
        path: local.display().to_string(),
        error: e,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(reader).map_err(|e| bad(e.to_string()))?;
    // Batches of about CLEAN_BATCH_BYTES decoded, whatever the width of a row.
    let rows = builder.metadata().file_metadata().num_rows().max(1);
    let bytes: i64 = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.total_byte_size())
        .sum();
    let batch = (CLEAN_BATCH_BYTES / (bytes / rows).max(1)).clamp(256, 8192) as usize;
    let mut builder = builder.with_batch_size(batch);
    if let Some(columns) = columns {
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let batches = builder.build().map_err(|e| bad(e.to_string()))?;
    for batch in batches {
        f(&batch.map_err(|e| bad(e.to_string()))?)?;
    }
    Ok(())
}

/// A local file removed when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
pub(crate) async fn drill_down(
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
