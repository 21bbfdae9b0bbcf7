//! One copydog run for one topic: plan against the current manifest, merge the new raw
//! records into the touched dates, write new version folders, commit the next manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use apache_avro::types::Value;
use arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, new_null_array,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use onepipe_client::SchemaRegistry;
use onepipe_client::codec::DatumDecoder;
use onepipe_client::json::Mapper;
use onepipe_copycat::checkpoint::list_raw;
use onepipe_core::admin::Metrics;
use onepipe_core::layout::{CLEAN_ROOT, CleanFile, RawFile, clean_date_prefix, raw_topic_prefix};
use onepipe_core::manifest::{self, DateEntry, Manifest};
use onepipe_core::metadata::TopicMetadata;
use onepipe_core::wire;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::columns::Mapping;
use crate::error::{Error, Result};
use crate::spill::{Budget, DateRows, Pending, RunMerger, Runs};
use crate::{OFFSET_COLUMN, PARTITION_COLUMN, SCHEMA_ID_COLUMN, TIMESTAMP_COLUMN, checks, merge};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Commit even when some records could not be decoded (they are set aside either way).
    pub allow_rejects: bool,
    /// Most rows in one clean file.
    pub max_file_rows: usize,
    /// Attempts when another run commits first.
    pub attempts: u32,
    /// Memory for rows (Arrow bytes); past it dates spill to `spill_dir`.
    pub memory_limit: usize,
    /// Where spill files go (a private folder inside, removed after the run).
    pub spill_dir: PathBuf,
    /// Where the run counts its progress (served on `/metrics` by `--admin-listen`).
    pub metrics: Metrics,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            allow_rejects: false,
            max_file_rows: 1_000_000,
            attempts: 5,
            memory_limit: 1 << 30,
            spill_dir: std::env::temp_dir(),
            metrics: Metrics::new(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub topic: String,
    /// The manifest committed, `None` when there was nothing new.
    pub manifest: Option<u64>,
    pub raw_files: usize,
    pub records: u64,
    pub rejected: u64,
    /// Per touched date: rows after the merge and the new version.
    pub dates: BTreeMap<NaiveDate, (u64, u32)>,
    pub conflicts: u64,
}

/// A new raw record that could not be decoded, and why.
struct Reject {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    reason: String,
}

/// Runs copydog once for `topic`: commits at most one manifest.
pub async fn run_topic(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let t = registry.topic(topic).await?;
    let meta = t.metadata.clone();
    let reader = Arc::new(t.latest.schema.clone());
    let reader_id = t.latest.id;
    let mapping = Mapping::new(&reader).map_err(|e| Error::Schema(topic.to_string(), e))?;
    let target = target_schema(&mapping).map_err(|e| Error::Schema(topic.to_string(), e))?;
    for attempt in 1..=opts.attempts {
        let current = manifest::latest(store.as_ref(), topic).await?;
        let plan = plan(store.as_ref(), topic, current.as_ref()).await?;
        // Every row of a view is in the newest schema: when it changed, every date is
        // rewritten (older rows are brought up by `adapt`), new records or not.
        let schema_changed = current.as_ref().is_some_and(|m| m.schema_id != reader_id);
        if plan.is_empty() && !schema_changed {
            tracing::info!(topic, "nothing new in raw/");
            return Ok(RunSummary {
                topic: topic.to_string(),
                ..RunSummary::default()
            });
        }
        let number = current.as_ref().map_or(1, |m| m.number + 1);
        let mut summary = RunSummary {
            topic: topic.to_string(),
            raw_files: plan.len(),
            ..RunSummary::default()
        };
        let watermarks_before: HashMap<i32, i64> = plan
            .iter()
            .map(|f| {
                (
                    f.partition,
                    current.as_ref().map_or(-1, |m| m.watermark(f.partition)),
                )
            })
            .collect();
        let mut pending = Pending::new(
            Budget::new(opts.memory_limit),
            opts.spill_dir.clone(),
            target.clone(),
            &meta,
        );
        let decoded = read_new(
            store.as_ref(),
            registry,
            &meta,
            &reader,
            reader_id,
            &mapping,
            &target,
            &plan,
            &watermarks_before,
            &mut |date, batch| pending.push(date, batch).map_err(Error::Spill),
        )
        .await?;
        summary.records = decoded.records;
        summary.rejected = decoded.rejects.len() as u64;
        let labels = [("topic", topic)];
        opts.metrics.inc(
            "onepipe_copydog_records_total",
            "New raw records read.",
            &labels,
            decoded.records,
        );
        opts.metrics.inc(
            "onepipe_copydog_rejected_records_total",
            "Records that could not be decoded (set aside under clean/{topic}/_rejected/).",
            &labels,
            summary.rejected,
        );

        let mut next = Manifest {
            number,
            topic: topic.to_string(),
            created_at: Utc::now(),
            schema_id: reader_id,
            watermarks: current
                .as_ref()
                .map(|m| m.watermarks.clone())
                .unwrap_or_default(),
            dates: current
                .as_ref()
                .map(|m| m.dates.clone())
                .unwrap_or_default(),
            rejected: current
                .as_ref()
                .map(|m| m.rejected.clone())
                .unwrap_or_default(),
        };
        for (p, w) in &decoded.watermarks {
            next.watermarks.insert(p.to_string(), *w);
        }
        if schema_changed && let Some(m) = &current {
            for date in m.dates.keys() {
                pending.touch(*date);
            }
        }
        for date in pending.dates() {
            let previous = current.as_ref().and_then(|m| m.dates.get(&date));
            let rows = pending.take(date);
            let entry = merge_date(
                store.as_ref(),
                &meta,
                &mapping,
                &target,
                date,
                previous,
                rows,
                &mut pending,
                opts,
            )
            .await?;
            tracing::info!(
                topic,
                %date,
                rows = entry.rows,
                version = entry.version,
                files = entry.files.len(),
                "date merged"
            );
            eprintln!(
                "copydog: {topic} date={date}: {} rows in version {} ({} file(s))",
                entry.rows,
                entry.version,
                entry.files.len()
            );
            let day = date.to_string();
            opts.metrics.inc(
                "onepipe_copydog_dates_merged_total",
                "Date partitions merged and written as a new version.",
                &labels,
                1,
            );
            opts.metrics.set(
                "onepipe_copydog_date_rows",
                "Rows of a date partition after its last merge.",
                &[("topic", topic), ("date", &day)],
                entry.rows as f64,
            );
            summary.dates.insert(date, (entry.rows, entry.version));
            summary.conflicts += entry.merge_conflicts - previous.map_or(0, |p| p.merge_conflicts);
            next.dates.insert(date, entry);
        }
        if !decoded.rejects.is_empty() {
            let path = write_rejects(store.as_ref(), topic, number, &decoded.rejects).await?;
            next.rejected.records += decoded.rejects.len() as u64;
            next.rejected.files.push(path);
        }
        if manifest::commit(store.as_ref(), &next).await? {
            summary.manifest = Some(number);
            opts.metrics.set(
                "onepipe_copydog_manifest",
                "Number of the last manifest this run committed.",
                &labels,
                number as f64,
            );
            eprintln!(
                "copydog: {topic}: committed manifest {number} ({} raw files, {} records, {} rejected)",
                summary.raw_files, summary.records, summary.rejected
            );
            return Ok(summary);
        }
        tracing::warn!(
            topic,
            number,
            attempt,
            "another run committed this manifest number first; planning again"
        );
    }
    Err(Error::Conflict {
        topic: topic.to_string(),
        attempts: opts.attempts,
    })
}

/// The raw files holding offsets past the current watermarks, in partition and offset order.
async fn plan(
    store: &dyn ObjectStore,
    topic: &str,
    current: Option<&Manifest>,
) -> Result<Vec<RawFile>> {
    let (mut files, strange) = list_raw(store, &raw_topic_prefix(topic)).await?;
    if !strange.is_empty() {
        tracing::warn!(topic, count = strange.len(), first = %strange[0], "ignoring objects in raw/ with names that are not raw files");
    }
    files.retain(|f| f.last_offset > current.map_or(-1, |m| m.watermark(f.partition)));
    files.sort_by_key(|f| (f.partition, f.first_offset));
    Ok(files)
}

/// Where a record came from: Kafka partition, offset, timestamp, writer schema id.
type Position = (i32, i64, i64, u32);

struct NewRecords {
    records: u64,
    rejects: Vec<Reject>,
    watermarks: BTreeMap<i32, i64>,
}

#[allow(clippy::too_many_arguments)]
async fn read_new(
    store: &dyn ObjectStore,
    registry: &SchemaRegistry,
    meta: &TopicMetadata,
    reader: &Arc<Avro>,
    reader_id: u32,
    mapping: &Mapping,
    target: &SchemaRef,
    plan: &[RawFile],
    watermarks: &HashMap<i32, i64>,
    sink: &mut dyn FnMut(NaiveDate, RecordBatch) -> Result<()>,
) -> Result<NewRecords> {
    let mut out = NewRecords {
        records: 0,
        rejects: Vec::new(),
        watermarks: BTreeMap::new(),
    };
    let mut writers: HashMap<u32, Arc<Avro>> = HashMap::new();
    let mapper = Mapper::new(reader);
    let mut last_progress = std::time::Instant::now();
    for (n, file) in plan.iter().enumerate() {
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = std::time::Instant::now();
            eprintln!(
                "copydog: {}: read {n}/{} raw files, {} records",
                meta.topic,
                plan.len(),
                out.records
            );
        }
        let path = file.path();
        let bytes = store.get(&Path::from(path.as_str())).await?.bytes().await?;
        let records = onepipe_copycat::raw::decode(&path, bytes)?;
        let from = watermarks.get(&file.partition).copied().unwrap_or(-1);
        // Fetch the writer schemas this file needs before decoding synchronously.
        let mut unknown: HashMap<u32, String> = HashMap::new();
        for r in &records {
            if let Some(v) = &r.value
                && let Ok((id, _)) = wire::unframe(v)
                && !writers.contains_key(&id)
                && !unknown.contains_key(&id)
            {
                match registry.schema_by_id(id).await {
                    Ok(s) => {
                        writers.insert(id, s);
                    }
                    Err(onepipe_client::Error::UnknownSchemaId(_)) => {
                        unknown.insert(id, format!("unknown schema id {id}"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut decoders: HashMap<u32, std::result::Result<DatumDecoder<'_>, String>> =
            HashMap::new();
        let mut groups: BTreeMap<NaiveDate, (Vec<Value>, Vec<Position>)> = BTreeMap::new();
        for r in records {
            if r.offset <= from {
                continue;
            }
            out.records += 1;
            let w = out.watermarks.entry(r.partition).or_insert(r.offset);
            *w = (*w).max(r.offset);
            let decoded = decode_one(
                &r.value,
                &writers,
                &unknown,
                &mut decoders,
                reader,
                reader_id,
            );
            let value = match decoded {
                Ok(v) => v,
                Err(reason) => {
                    out.rejects.push(Reject {
                        partition: r.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        reason,
                    });
                    continue;
                }
            };
            let (value, id) = value;
            let date = partition_date(&mapper, meta, &value, r.timestamp);
            let g = groups.entry(date).or_default();
            g.0.push(value);
            g.1.push((r.partition, r.offset, r.timestamp, id));
            // Decoded values are large: turn them into columns every few thousand.
            if g.0.len() >= CONVERT_ROWS {
                let (values, positions) = std::mem::take(g);
                let batch = to_batch(mapping, target, &values, &positions)
                    .map_err(|e| Error::Convert(path.clone(), e))?;
                drop(values);
                sink(date, batch)?;
            }
        }
        for (date, (values, positions)) in groups {
            if values.is_empty() {
                continue;
            }
            let batch = to_batch(mapping, target, &values, &positions)
                .map_err(|e| Error::Convert(path.clone(), e))?;
            sink(date, batch)?;
        }
    }
    Ok(out)
}

/// How often long runs print where they are.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Records decoded before they are turned into Arrow columns.
const CONVERT_ROWS: usize = 4096;

/// What `clean/` should hold for `topic` by the raw archive alone: every raw record up to
/// `watermarks` (per partition, inclusive) decoded into the newest schema and merged per
/// date, nothing written. The verifier compares this with the clean archive.
pub async fn expected_view(
    store: &dyn ObjectStore,
    registry: &SchemaRegistry,
    topic: &str,
    watermarks: &BTreeMap<String, i64>,
) -> Result<(BTreeMap<NaiveDate, RecordBatch>, u64)> {
    let t = registry.topic(topic).await?;
    let meta = t.metadata.clone();
    let reader = Arc::new(t.latest.schema.clone());
    let mapping = Mapping::new(&reader).map_err(|e| Error::Schema(topic.to_string(), e))?;
    let target = target_schema(&mapping).map_err(|e| Error::Schema(topic.to_string(), e))?;
    let (files, _) = list_raw(store, &raw_topic_prefix(topic)).await?;
    let mut plan: Vec<RawFile> = files
        .into_iter()
        .filter(|f| {
            watermarks
                .get(&f.partition.to_string())
                .is_some_and(|w| f.first_offset <= *w)
        })
        .collect();
    plan.sort_by_key(|f| (f.partition, f.first_offset));
    let from = HashMap::new();
    let mut by_date: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
    let decoded = read_new(
        store,
        registry,
        &meta,
        &reader,
        t.latest.id,
        &mapping,
        &target,
        &plan,
        &from,
        &mut |date, batch| {
            by_date.entry(date).or_default().push(batch);
            Ok(())
        },
    )
    .await?;
    // Records past the watermarks were not merged into clean/ yet: leave them out.
    let mut out = BTreeMap::new();
    for (date, batches) in by_date {
        let all = concat_batches(&target, &batches)
            .map_err(|e| Error::Convert(date.to_string(), e.to_string()))?;
        let kept =
            below_watermarks(&all, watermarks).map_err(|e| Error::Convert(date.to_string(), e))?;
        let merged = merge::merge(&kept, &meta).map_err(|e| Error::Merge(date, e))?;
        out.insert(date, merged.batch);
    }
    Ok((out, decoded.rejects.len() as u64))
}

fn below_watermarks(
    batch: &RecordBatch,
    watermarks: &BTreeMap<String, i64>,
) -> std::result::Result<RecordBatch, String> {
    use arrow::array::{AsArray, BooleanArray};
    use arrow::datatypes::{Int32Type, Int64Type};
    let p = batch
        .column_by_name(PARTITION_COLUMN)
        .ok_or("no partition column")?
        .as_primitive::<Int32Type>();
    let o = batch
        .column_by_name(OFFSET_COLUMN)
        .ok_or("no offset column")?
        .as_primitive::<Int64Type>();
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            Some(
                watermarks
                    .get(&p.value(i).to_string())
                    .is_some_and(|w| o.value(i) <= *w),
            )
        })
        .collect();
    arrow::compute::filter_record_batch(batch, &keep).map_err(|e| e.to_string())
}

/// The rows of one date of a manifest, read from the files it names.
pub async fn read_date(store: &dyn ObjectStore, entry: &DateEntry) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for file in &entry.files {
        let bytes = store.get(&Path::from(file.as_str())).await?.bytes().await?;
        out.extend(read_parquet(file, bytes)?);
    }
    Ok(out)
}

fn decode_one<'s>(
    value: &Option<Vec<u8>>,
    writers: &'s HashMap<u32, Arc<Avro>>,
    unknown: &HashMap<u32, String>,
    decoders: &mut HashMap<u32, std::result::Result<DatumDecoder<'s>, String>>,
    reader: &'s Arc<Avro>,
    reader_id: u32,
) -> std::result::Result<(Value, u32), String> {
    let Some(bytes) = value else {
        return Err("the record has no value (a tombstone)".to_string());
    };
    let (id, datum) = wire::unframe(bytes).map_err(|e| e.to_string())?;
    if let Some(reason) = unknown.get(&id) {
        return Err(reason.clone());
    }
    let decoder = decoders
        .entry(id)
        .or_insert_with(|| match writers.get(&id) {
            Some(w) => DatumDecoder::new(w, (id != reader_id).then_some(reader.as_ref())),
            None => Err(format!("unknown schema id {id}")),
        });
    match decoder {
        Ok(d) => d.decode(datum).map(|v| (v, id)),
        Err(e) => Err(e.clone()),
    }
}

/// The UTC date of a record: its `partition_time` field, else its Kafka timestamp.
fn partition_date(
    mapper: &Mapper<'_>,
    meta: &TopicMetadata,
    value: &Value,
    timestamp: i64,
) -> NaiveDate {
    if let Some(field) = &meta.partition_time
        && let Ok(serde_json::Value::String(text)) = mapper.field_json(value, field)
        && let Some(day) = text.get(..10)
        && let Ok(date) = NaiveDate::parse_from_str(day, "%Y-%m-%d")
    {
        return date;
    }
    DateTime::<Utc>::from_timestamp_millis(timestamp.max(0))
        .unwrap_or_default()
        .date_naive()
}

/// The Arrow schema of clean files: the record's fields, then the Kafka columns.
pub fn target_schema(mapping: &Mapping) -> std::result::Result<SchemaRef, String> {
    let mut fields: Vec<Field> = mapping
        .fields()?
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (name, _) in fields
        .iter()
        .map(|f| (f.name().clone(), ()))
        .collect::<Vec<_>>()
    {
        if name.starts_with("_kafka_") || name == SCHEMA_ID_COLUMN {
            return Err(format!(
                "field {name:?} clashes with the columns copydog adds"
            ));
        }
    }
    fields.extend(kafka_fields());
    Ok(Arc::new(Schema::new(fields)))
}

fn kafka_fields() -> Vec<Field> {
    vec![
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
        Field::new(
            TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(SCHEMA_ID_COLUMN, DataType::Int64, false),
    ]
}

fn to_batch(
    mapping: &Mapping,
    target: &SchemaRef,
    values: &[Value],
    positions: &[Position],
) -> std::result::Result<RecordBatch, String> {
    let refs: Vec<&Value> = values.iter().collect();
    let mut columns = mapping.columns(&refs)?;
    columns.push(Arc::new(Int32Array::from_iter_values(
        positions.iter().map(|p| p.0),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        positions.iter().map(|p| p.1),
    )));
    columns.push(Arc::new(
        TimestampMillisecondArray::from_iter_values(positions.iter().map(|p| p.2))
            .with_timezone("UTC"),
    ));
    columns.push(Arc::new(Int64Array::from_iter_values(
        positions.iter().map(|p| i64::from(p.3)),
    )));
    RecordBatch::try_new(target.clone(), columns).map_err(|e| e.to_string())
}

/// The merged rows of a date, in memory or as sorted runs on disk.
enum Sorted {
    Memory(RecordBatch),
    Runs(Vec<PathBuf>),
}

#[allow(clippy::too_many_arguments)]
async fn merge_date(
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
            eprintln!(
                "copydog: {} date={date}: over the memory budget, spilling to local disk",
                meta.topic
            );
        }
        let dir = pending.dir().map_err(Error::Spill)?;
        rows.spill(dir, target, meta).map_err(Error::Spill)
    };
    if let Some(p) = previous {
        for file in &p.files {
            let bytes = store.get(&Path::from(file.as_str())).await?.bytes().await?;
            for batch in parquet_batches(file, bytes)? {
                let batch = batch?;
                rows.push(
                    adapt(&batch, target, mapping).map_err(|e| Error::Convert(file.clone(), e))?,
                );
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
                .map_err(|e| Error::Convert(date.to_string(), e.to_string()))?;
            drop(rows);
            let merged = merge::merge(&all, meta).map_err(|e| Error::Merge(date, e))?;
            drop(all);
            let checks = checks::compute(&merged.batch, meta).map_err(|e| Error::Merge(date, e))?;
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
            let buckets = buckets.finish().map_err(Error::Spill)?;
            let spilled: usize = buckets.iter().map(|b| b.1).sum();
            opts.metrics.inc(
                "onepipe_copydog_spilled_bytes_total",
                "Arrow bytes of rows merged through spill files on local disk.",
                &[("topic", &meta.topic)],
                spilled as u64,
            );
            eprintln!(
                "copydog: {} date={date}: merging {} MB through {} spill buckets",
                meta.topic,
                spilled >> 20,
                buckets.len()
            );
            let mut runs = Runs::new(meta);
            let dir = pending.dir().map_err(Error::Spill)?;
            crate::spill::merge_buckets(dir, buckets, 0, meta, target, budget, &mut runs)
                .map_err(|e| Error::Merge(date, e))?;
            let checks = runs.checks.finish().map_err(|e| Error::Merge(date, e))?;
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
                let mut merger = RunMerger::open(paths, meta, 8192).map_err(Error::Spill)?;
                let mut complete = true;
                while let Some(batch) = merger.next_batch().map_err(Error::Spill)? {
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

/// Writes sorted rows into the Parquet files of one date version, each uploaded when full.
struct FileSink<'a> {
    store: &'a dyn ObjectStore,
    meta: &'a TopicMetadata,
    schema: &'a SchemaRef,
    date: NaiveDate,
    version: u32,
    rows_per_file: usize,
    writer: Option<ArrowWriter<Vec<u8>>>,
    in_file: usize,
    files: Vec<String>,
}

impl<'a> FileSink<'a> {
    fn new(
        store: &'a dyn ObjectStore,
        meta: &'a TopicMetadata,
        schema: &'a SchemaRef,
        date: NaiveDate,
        version: u32,
        rows_per_file: usize,
    ) -> Self {
        FileSink {
            store,
            meta,
            schema,
            date,
            version,
            rows_per_file,
            writer: None,
            in_file: 0,
            files: Vec::new(),
        }
    }

    /// Appends rows; `false` when the version folder turned out to be taken.
    async fn write(&mut self, batch: &RecordBatch) -> Result<bool> {
        let mut start = 0;
        while start < batch.num_rows() {
            let len = (batch.num_rows() - start).min(self.rows_per_file - self.in_file);
            self.writer()?.write(&batch.slice(start, len))?;
            self.in_file += len;
            start += len;
            if self.in_file == self.rows_per_file && !self.close().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<Vec<u8>>> {
        if self.writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
                .set_max_row_group_row_count(Some(self.rows_per_file))
                .build();
            let w = ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))?;
            self.writer = Some(w);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| Error::Convert("parquet".into(), "no open file".into()))
    }

    /// Uploads the open file; `false` when the name was taken.
    async fn close(&mut self) -> Result<bool> {
        let Some(writer) = self.writer.take() else {
            return Ok(true);
        };
        let bytes = writer.into_inner()?;
        self.in_file = 0;
        let path = CleanFile {
            topic: self.meta.topic.clone(),
            date: self.date,
            version: self.version,
            part: u32::try_from(self.files.len()).unwrap_or(u32::MAX),
        }
        .path();
        match self
            .store
            .put_opts(
                &Path::from(path.as_str()),
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await
        {
            Ok(_) => {
                self.files.push(path);
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads the last file (an empty one when there were no rows): the file names, or
    /// `None` when the version folder turned out to be taken.
    async fn finish(mut self) -> Result<Option<Vec<String>>> {
        if self.writer.is_none() && self.files.is_empty() {
            self.writer()?;
        }
        if !self.close().await? {
            return Ok(None);
        }
        Ok(Some(self.files))
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

fn write_parquet(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// The batches of a Parquet file, read as they are needed.
fn parquet_batches(
    path: &str,
    bytes: Bytes,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    let path = path.to_string();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::Convert(path.clone(), e.to_string()))?
        .build()
        .map_err(|e| Error::Convert(path.clone(), e.to_string()))?;
    Ok(reader.map(move |b| b.map_err(|e| Error::Convert(path.clone(), e.to_string()))))
}

fn read_parquet(path: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    parquet_batches(path, bytes)?.collect()
}

/// Brings rows of an older clean file into the current schema: fields added since take
/// their default, promoted types are cast, removed fields go.
fn adapt(
    batch: &RecordBatch,
    target: &SchemaRef,
    mapping: &Mapping,
) -> std::result::Result<RecordBatch, String> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => cast(c, field.data_type()).map_err(|e| {
                format!(
                    "field {:?} changed from {} to {}, which cannot be converted: {e}",
                    field.name(),
                    c.data_type(),
                    field.data_type()
                )
            })?,
            None => match mapping.default_column(field.name(), batch.num_rows())? {
                Some(c) => c,
                None if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
                None => {
                    return Err(format!(
                        "field {:?} is new, required and has no default",
                        field.name()
                    ));
                }
            },
        };
        columns.push(column);
    }
    RecordBatch::try_new(target.clone(), columns).map_err(|e| e.to_string())
}

async fn write_rejects(
    store: &dyn ObjectStore,
    topic: &str,
    number: u64,
    rejects: &[Reject],
) -> Result<String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                rejects.iter().map(|r| r.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                rejects.iter().map(|r| r.offset),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rejects.iter().map(|r| r.timestamp))
                    .with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from_iter(
                rejects.iter().map(|r| r.key.as_deref()),
            )),
            Arc::new(BinaryArray::from_iter(
                rejects.iter().map(|r| r.value.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.reason.as_str()),
            )),
        ],
    )
    .map_err(|e| Error::Convert("rejected records".into(), e.to_string()))?;
    let bytes = write_parquet(&batch)?;
    // A unique name: a run that loses the manifest race leaves an orphan, never a clash.
    let path = format!(
        "{CLEAN_ROOT}/{topic}/_rejected/m{number:010}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    );
    store
        .put(&Path::from(path.as_str()), PutPayload::from(bytes))
        .await?;
    for r in rejects.iter().take(5) {
        eprintln!(
            "copydog: {topic}: rejected partition {} offset {}: {}",
            r.partition, r.offset, r.reason
        );
    }
    Ok(path)
}
