//! One date of a run: the new rows and the date's current clean rows (brought up to the
//! newest schema) merged in memory or through spill files, then written as a new version.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use onepipe_archive::blocking;
use onepipe_archive::clean::parquet_batches;
use onepipe_archive::columns::Mapping;
use onepipe_archive::decode::Reader;
use onepipe_archive::layout::{CleanFile, clean_date_prefix};
use onepipe_archive::manifest::DateEntry;

use crate::checks;
use crate::error::{Error, Result};
use crate::run::RunOptions;
use crate::sink::{Sorted, Source, cores, empty_file, next_file};
use crate::spill::{Budget, DateRows, Runs, SpillDir};

/// A date's rows merged: sorted, counted and checked.
struct Merged {
    sorted: Sorted,
    rows: u64,
    bytes: usize,
    checks: std::collections::BTreeMap<String, serde_json::Value>,
    conflicts: u64,
    /// Arrow bytes of rows merged through spill files.
    spilled: Option<usize>,
}

/// Merges the new rows of `date` into its current version and writes the next version.
/// Decoding, merging, sorting, spill files and Parquet encoding run on the blocking
/// pool, a file or a step at a time; only the object-store I/O runs here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn merge_date(
    store: &dyn ObjectStore,
    reader: &Arc<Reader>,
    date: NaiveDate,
    previous: Option<&DateEntry>,
    mut rows: DateRows,
    dir: &SpillDir,
    budget: Budget,
    opts: &RunOptions,
) -> Result<DateEntry> {
    let meta = &reader.meta;
    if let Some(p) = previous {
        for file in &p.files {
            let bytes = store.get(&Path::from(file.as_str())).await?.bytes().await?;
            let (reader, dir, file) = (reader.clone(), dir.clone(), file.clone());
            rows = blocking(move || {
                for batch in parquet_batches(&file, bytes)? {
                    let batch = adapt(&batch?, &reader.target, &reader.mapping)
                        .map_err(|e| Error::convert(&file, e))?;
                    rows.push(batch);
                    if rows.bytes > budget.merge_input() {
                        spill(&mut rows, &dir, &reader, date)?;
                    }
                }
                Ok::<_, Error>(rows)
            })
            .await?;
        }
    }
    let merged = {
        let (reader, dir) = (reader.clone(), dir.clone());
        blocking(move || merge_rows(rows, &reader, &dir, budget, date)).await?
    };
    if let Some(spilled) = merged.spilled {
        opts.metrics.inc(
            "onepipe_copydog_spilled_bytes_total",
            "Arrow bytes of rows merged through spill files on local disk.",
            &[("topic", &meta.topic)],
            spilled as u64,
        );
    }
    // Files of bounded size: by rows, and by bytes so one file is never built past the
    // memory budget.
    let per_row = merged.bytes / usize::try_from(merged.rows).unwrap_or(usize::MAX).max(1);
    let rows_per_file = opts
        .max_file_rows
        .min(budget.file_bytes() / per_row.max(1))
        .max(1);

    // The next version folder: above every folder already there, so leftovers of a
    // crashed run are never reused; files are created only if absent, so two runs
    // never write into one folder.
    let mut version = next_version(store, &meta.topic, date, previous).await?;
    loop {
        if let Some(files) =
            write_version(store, reader, &merged.sorted, date, version, rows_per_file).await?
        {
            return Ok(DateEntry {
                version,
                rows: merged.rows,
                files,
                checks: merged.checks,
                merge_conflicts: previous.map_or(0, |p| p.merge_conflicts) + merged.conflicts,
            });
        }
        version += 1;
    }
}

/// Moves the rows held in memory to spill files.
fn spill(rows: &mut DateRows, dir: &SpillDir, reader: &Reader, date: NaiveDate) -> Result<()> {
    if rows.spilled.is_none() {
        tracing::info!(
            topic = reader.meta.topic,
            %date,
            "over the memory budget, spilling to local disk"
        );
    }
    rows.spill(dir, &reader.target, &reader.meta)
        .map_err(Error::spill)
}

/// Merges and sorts a date's rows: in memory when they fit, else through spill files
/// (on a blocking thread).
fn merge_rows(
    mut rows: DateRows,
    reader: &Reader,
    dir: &SpillDir,
    budget: Budget,
    date: NaiveDate,
) -> Result<Merged> {
    let (meta, target) = (&reader.meta, &reader.target);
    if rows.spilled.is_some() || rows.bytes > budget.merge_input() {
        spill(&mut rows, dir, reader, date)?;
    }
    match rows.spilled.take() {
        None => {
            let all = concat_batches(target, &rows.batches)
                .map_err(|e| Error::convert(date.to_string(), e))?;
            drop(rows);
            let merged = onepipe_archive::merge::merge(&all, meta).map_err(Error::merge(date))?;
            tracing::debug!(
                topic = meta.topic,
                %date,
                rows_in = all.num_rows(),
                rows_out = merged.batch.num_rows(),
                dedup_ms = merged.timings.dedup.as_millis() as u64,
                sort_ms = merged.timings.sort.as_millis() as u64,
                "merged in memory"
            );
            drop(all);
            let checks = checks::compute(&merged.batch, meta).map_err(Error::merge(date))?;
            Ok(Merged {
                rows: merged.batch.num_rows() as u64,
                bytes: merged.batch.get_array_memory_size(),
                sorted: Sorted::Memory(merged.batch),
                checks,
                conflicts: merged.conflicts,
                spilled: None,
            })
        }
        Some(buckets) => {
            let buckets = buckets.finish().map_err(Error::spill)?;
            let spilled: usize = buckets.iter().map(|b| b.1).sum();
            tracing::info!(
                topic = meta.topic,
                %date,
                mb = spilled >> 20,
                buckets = buckets.len(),
                "merging through spill buckets"
            );
            let mut runs = Runs::new(meta);
            crate::spill::merge_buckets(dir, buckets, 0, meta, target, budget, &mut runs)
                .map_err(Error::merge(date))?;
            let checks = runs.checks.finish().map_err(Error::merge(date))?;
            Ok(Merged {
                sorted: Sorted::Runs(runs.paths),
                rows: runs.rows,
                bytes: runs.bytes,
                checks,
                conflicts: runs.conflicts,
                spilled: Some(spilled),
            })
        }
    }
}

/// Writes the sorted rows as version `version` of the date: the file names, or `None`
/// when another run took the version folder first. Each file is encoded on the blocking
/// pool and uploaded create-only.
async fn write_version(
    store: &dyn ObjectStore,
    reader: &Arc<Reader>,
    sorted: &Sorted,
    date: NaiveDate,
    version: u32,
    rows_per_file: usize,
) -> Result<Option<Vec<String>>> {
    let mut source = {
        let (reader, sorted) = (reader.clone(), sorted.clone());
        blocking(move || Source::open(&sorted, &reader.meta)).await?
    };
    let mut files = Vec::new();
    loop {
        let r = reader.clone();
        let (s, bytes) = blocking(move || {
            let bytes = next_file(&mut source, &r.target, rows_per_file, cores())?;
            Ok::<_, Error>((source, bytes))
        })
        .await?;
        source = s;
        let (bytes, last) = match bytes {
            Some(b) => (b, false),
            None if files.is_empty() => {
                // A date with no rows left still gets its (empty) file.
                let r = reader.clone();
                (blocking(move || empty_file(&r.target)).await?, true)
            }
            None => return Ok(Some(files)),
        };
        let path = CleanFile {
            topic: reader.meta.topic.clone(),
            date,
            version,
            part: u32::try_from(files.len()).unwrap_or(u32::MAX),
        }
        .path();
        match store
            .put_opts(
                &Path::from(path.as_str()),
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await
        {
            Ok(_) => files.push(path),
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if last {
            return Ok(Some(files));
        }
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

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, StructArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};

    use super::*;

    /// A format-1 file (timestamp-millis in milliseconds, also inside a record) is brought
    /// up to the current target, where they are microseconds, with the same instants.
    #[test]
    fn format_1_millisecond_timestamps_become_microseconds() {
        let avro = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
              {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
              {"name":"inner","type":{"type":"record","name":"I","fields":[
                {"name":"seen","type":{"type":"long","logicalType":"timestamp-millis"}}]}}]}"#,
        )
        .unwrap();
        let mapping = Mapping::new(&avro).unwrap();
        let target = onepipe_archive::decode::target_schema(&mapping).unwrap();
        let ms = |v: Vec<i64>| {
            Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) as ArrayRef
        };
        let ms_type = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let inner = StructArray::from(vec![(
            Arc::new(Field::new("seen", ms_type.clone(), false)),
            ms(vec![-1, 253_402_300_799_999]),
        )]);
        let mut fields = vec![
            Field::new("at", ms_type.clone(), false),
            Field::new("inner", inner.data_type().clone(), false),
        ];
        let mut columns = vec![ms(vec![1_795_478_400_123, 0]), Arc::new(inner) as ArrayRef];
        // The Kafka columns, with _kafka_timestamp in milliseconds too.
        for f in target.fields().iter().skip(2) {
            let c: ArrayRef = if f.name() == onepipe_archive::TIMESTAMP_COLUMN {
                fields.push(Field::new(f.name(), ms_type.clone(), false));
                ms(vec![5, 6])
            } else {
                fields.push(f.as_ref().clone());
                cast(&arrow::array::Int64Array::from(vec![1, 2]), f.data_type()).unwrap()
            };
            columns.push(c);
        }
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let new = adapt(&old, &target, &mapping).unwrap();
        assert_eq!(new.schema(), target);
        let at = new.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.values().to_vec(), vec![1_795_478_400_123_000, 0]);
        let seen = new.column(1).as_struct().column(0).clone();
        let seen = seen.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(seen.values().to_vec(), vec![-1000, 253_402_300_799_999_000]);
        let kafka = new
            .column_by_name(onepipe_archive::TIMESTAMP_COLUMN)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(kafka.values().to_vec(), vec![5000, 6000]);
        assert!(!kafka.is_null(0));
    }
}
