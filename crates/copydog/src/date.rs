//! One date of a run: the new rows and the date's current clean rows (brought up to the
//! newest schema) merged in memory or through spill files, then written as a new version.

use std::path::PathBuf;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_archive::clean::parquet_batches;
use onepipe_archive::columns::Mapping;
use onepipe_archive::layout::{CleanFile, clean_date_prefix};
use onepipe_archive::manifest::DateEntry;
use onepipe_core::metadata::TopicMetadata;

use crate::checks;
use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::sink::FileSink;
use crate::spill::{DateRows, Pending, RunMerger, Runs};

/// The merged rows of a date, in memory or as sorted runs on disk.
enum Sorted {
    Memory(RecordBatch),
    Runs(Vec<PathBuf>),
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn merge_date(
    store: &dyn ObjectStore,
    meta: &TopicMetadata,
    mapping: &Mapping,
    target: &SchemaRef,
    date: NaiveDate,
    previous: Option<&DateEntry>,
    mut rows: DateRows,
    pending: &mut Pending<'_>,
    opts: &RunOptions,
) -> Result<DateEntry> {
    let budget = pending.budget();
    let spill = |rows: &mut DateRows, pending: &mut Pending<'_>| -> Result<()> {
        if rows.spilled.is_none() {
            tracing::info!(
                topic = meta.topic,
                %date,
                "over the memory budget, spilling to local disk"
            );
        }
        let dir = pending.dir().map_err(Error::spill)?;
        rows.spill(dir, target, meta).map_err(Error::spill)
    };
    if let Some(p) = previous {
        for file in &p.files {
            let bytes = store.get(&Path::from(file.as_str())).await?.bytes().await?;
            for batch in parquet_batches(file, bytes)? {
                let batch = batch?;
                rows.push(adapt(&batch, target, mapping).map_err(|e| Error::convert(file, e))?);
                if rows.bytes > budget.merge_input() {
                    spill(&mut rows, pending)?;
                }
            }
        }
    }
    if rows.spilled.is_some() || rows.bytes > budget.merge_input() {
        spill(&mut rows, pending)?;
    }
    let (sorted, count, bytes, checks, conflicts) = match rows.spilled.take() {
        None => {
            let all = concat_batches(target, &rows.batches)
                .map_err(|e| Error::convert(date.to_string(), e))?;
            drop(rows);
            let merged = onepipe_archive::merge::merge(&all, meta).map_err(Error::merge(date))?;
            drop(all);
            let checks = checks::compute(&merged.batch, meta).map_err(Error::merge(date))?;
            let count = merged.batch.num_rows() as u64;
            let bytes = merged.batch.get_array_memory_size();
            (
                Sorted::Memory(merged.batch),
                count,
                bytes,
                checks,
                merged.conflicts,
            )
        }
        Some(buckets) => {
            let buckets = buckets.finish().map_err(Error::spill)?;
            let spilled: usize = buckets.iter().map(|b| b.1).sum();
            opts.metrics.inc(
                "onepipe_copydog_spilled_bytes_total",
                "Arrow bytes of rows merged through spill files on local disk.",
                &[("topic", &meta.topic)],
                spilled as u64,
            );
            tracing::info!(
                topic = meta.topic,
                %date,
                mb = spilled >> 20,
                buckets = buckets.len(),
                "merging through spill buckets"
            );
            let mut runs = Runs::new(meta);
            let dir = pending.dir().map_err(Error::spill)?;
            crate::spill::merge_buckets(dir, buckets, 0, meta, target, budget, &mut runs)
                .map_err(Error::merge(date))?;
            let checks = runs.checks.finish().map_err(Error::merge(date))?;
            (
                Sorted::Runs(runs.paths),
                runs.rows,
                runs.bytes,
                checks,
                runs.conflicts,
            )
        }
    };
    // Files of bounded size: by rows, and by bytes so one file is never built past the
    // memory budget.
    let per_row = bytes / usize::try_from(count).unwrap_or(usize::MAX).max(1);
    let rows_per_file = opts
        .max_file_rows
        .min(budget.file_bytes() / per_row.max(1))
        .max(1);

    // The next version folder: above every folder already there, so leftovers of a
    // crashed run are never reused; files are created only if absent, so two runs
    // never write into one folder.
    let mut version = next_version(store, &meta.topic, date, previous).await?;
    loop {
        let mut sink = FileSink::new(store, meta, target, date, version, rows_per_file);
        let complete = match &sorted {
            Sorted::Memory(batch) => sink.write(batch).await?,
            Sorted::Runs(paths) => {
                let mut merger = RunMerger::open(paths, meta, 8192).map_err(Error::spill)?;
                let mut complete = true;
                while let Some(batch) = merger.next_batch().map_err(Error::spill)? {
                    if !sink.write(&batch).await? {
                        complete = false;
                        break;
                    }
                }
                complete
            }
        };
        if complete && let Some(files) = sink.finish().await? {
            return Ok(DateEntry {
                version,
                rows: count,
                files,
                checks,
                merge_conflicts: previous.map_or(0, |p| p.merge_conflicts) + conflicts,
            });
        }
        version += 1;
    }
}

async fn next_version(
    store: &dyn ObjectStore,
    topic: &str,
    date: NaiveDate,
    previous: Option<&DateEntry>,
) -> Result<u32> {
    let prefix = Path::from(clean_date_prefix(topic, date).trim_end_matches('/'));
    let mut highest = previous.map_or(0, |p| p.version);
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.try_next().await? {
        if let Ok(f) = CleanFile::parse(meta.location.as_ref()) {
            highest = highest.max(f.version);
        }
    }
    Ok(highest + 1)
}

/// Brings rows of an older clean file into the current schema: fields added since take
/// their default, promoted types are cast, removed fields go.
fn adapt(batch: &RecordBatch, target: &SchemaRef, mapping: &Mapping) -> Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => cast(c, field.data_type()).map_err(|error| Error::TypeChange {
                field: field.name().clone(),
                from: c.data_type().clone(),
                to: field.data_type().clone(),
                error,
            })?,
            None => match mapping.default_column(field.name(), batch.num_rows())? {
                Some(c) => c,
                None if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
                None => return Err(Error::NoDefault(field.name().clone())),
            },
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}
