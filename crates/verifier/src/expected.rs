//! What clean/ must hold, computed from raw/ by the verifier's own reading of the contract
//! in DESIGN.md, so that a bug in copydog's decoding, merging or date rule shows up as a
//! mismatch instead of agreement. Nothing here calls copydog's decode or merge code:
//!
//! - **Decoding.** The raw Parquet columns are read here, the wire header (magic byte 0,
//!   a 4-byte big-endian schema id) is taken apart here, and each value is decoded by
//!   apache-avro's own reader with its schema resolution into the topic's newest schema
//!   (copydog uses onepipe's decoder). What the contract says is never a clean row is
//!   left out: tombstones, unknown schema ids, bytes after the datum, values outside the
//!   years 0001–9999 (`onepipe_client::ranges`, the contract's range). The Avro → column
//!   mapping is the shared contract (`onepipe_archive::columns::Mapping`).
//! - **The date.** The `partition_time` field's UTC day, by integer division of its
//!   value in its own unit; else the Kafka timestamp's (negative counts as 0). Copydog
//!   prints the field as JSON text and parses its first ten characters.
//! - **The winners.** SQL window functions in DataFusion over the decoded rows of one
//!   date: `row_number() OVER (PARTITION BY <unique key> ORDER BY <merge order>)` keeps
//!   row 1. Copydog instead keeps the best row per key in a hash map with a pairwise rule.
//!   The orders: `first_seen` — the earliest Kafka position; `max_by(f)` — the largest
//!   `f` (NULL loses), then the latest position; `vector_clock(f)` — the scalar function
//!   [`CLOCK_RANK`], whose bytes sort by the sum of the counters, then the non-zero
//!   entries in key order, so a dominating clock (larger in no entry smaller, hence a
//!   larger sum) always wins, equal clocks fall to the latest position and concurrent
//!   ones are settled by sum, then entries, then position.
//!
//! Bounded memory: decoded rows go to local Parquet files, one folder per date, a few
//! thousand rows at a time, and each date is merged by its own query under DataFusion's
//! memory pool (`--memory-limit`), whose sorts spill to local disk. A date larger than a
//! quarter of the pool is first split by key hash into parts merged one at a time
//! ([`crate::parts`]), so that no sort spills and the memory held is about the pool's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Date32Array, Int32Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, SchemaRef};
use chrono::NaiveDate;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_archive::columns::Mapping;
use onepipe_archive::layout::{RawFile, raw_topic_prefix};
use onepipe_archive::{OFFSET_COLUMN, PARTITION_COLUMN};
use onepipe_client::{SchemaRegistry, ranges};
use onepipe_core::metadata::{MergeStrategy, TopicMetadata};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::parts;

/// The scalar function that orders vector clocks (see the module documentation).
pub const CLOCK_RANK: &str = "onepipe_clock_rank";
/// Rows per spill file and per Arrow batch built from decoded values.
const CHUNK_ROWS: usize = 8192;
/// Decoded values held before every date's pending rows are written out.
const MAX_PENDING_ROWS: usize = 4 * CHUNK_ROWS;
/// Encoded bytes of decoded values held before they are written out.
const MAX_PENDING_BYTES: usize = 16 << 20;
/// Rows per batch read from a raw file.
const RAW_BATCH_ROWS: usize = 1024;
/// Spilled sort runs merged at once.
const SPILL_MERGE_FAN_IN: usize = 8;
/// About how many bytes a batch of merged rows holds.
const BATCH_BYTES: u64 = 1 << 20;
const MS_PER_DAY: i64 = 86_400_000;
/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// How much memory and which local folder the expected view may use.
#[derive(Debug, Clone)]
pub struct Options {
    /// DataFusion's memory pool: sorts beyond it spill to `spill_dir`.
    pub memory_limit: usize,
    /// A private folder is made inside it and removed when the view is dropped.
    pub spill_dir: PathBuf,
    /// Decoded bytes of one date merged by one query; a larger date is split by key hash
    /// into parts of about this size (see [`crate::parts`]). `None`: a sixteenth of
    /// `memory_limit`, a quarter of DataFusion's pool, so that a part sorts in memory.
    pub part_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memory_limit: 1 << 30,
            spill_dir: std::env::temp_dir(),
            part_bytes: None,
        }
    }
}

/// The decoded raw rows of a topic up to the clean archive's watermarks, by date, in
/// local files, ready to be merged one date at a time.
pub struct ExpectedView {
    meta: TopicMetadata,
    /// DataFusion's memory pool and spill folder, shared by the dates' queries.
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// Between decodes; `None` only while one runs (or after one failed).
    decoder: Option<Decoder>,
    // Last, so the folder goes after everything that reads it.
    dir: SpillDir,
}

/// A folder removed when dropped.
struct SpillDir(PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ExpectedView {
    /// Decodes every raw record of `topic` at or below `watermarks` (per partition, as the
    /// manifest holds them) whose date is in `dates` (every date when `None`).
    pub async fn build(
        store: &dyn ObjectStore,
        registry: &SchemaRegistry,
        topic: &str,
        watermarks: &BTreeMap<String, i64>,
        dates: Option<&BTreeSet<NaiveDate>>,
        options: &Options,
    ) -> Result<ExpectedView> {
        let mut view = ExpectedView::new(registry, topic, options).await?;
        let files = raw_files(store, topic, watermarks).await?;
        view.decode(store, registry, &files, watermarks, dates)
            .await?;
        Ok(view)
    }

    /// An empty view of `topic`, to [`decode`](Self::decode) raw files into.
    pub async fn new(
        registry: &SchemaRegistry,
        topic: &str,
        options: &Options,
    ) -> Result<ExpectedView> {
        let t = registry.topic(topic).await?;
        let schema_error = |reason: String| Error::Schema {
            topic: topic.to_string(),
            reason,
        };
        let reader_schema = Arc::new(t.latest.schema.clone());
        let mapping = Mapping::new(&reader_schema).map_err(|e| schema_error(e.to_string()))?;
        // The clean schema is the contract's Avro → column mapping plus the Kafka columns.
        let target = onepipe_archive::decode::target_schema(&mapping)
            .map_err(|e| schema_error(e.to_string()))?;

        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let root = options
            .spill_dir
            .join(format!("onepipe-verifier-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).map_err(|e| Error::Spill {
            path: root.display().to_string(),
            error: e,
        })?;
        let dir = SpillDir(root);

        // A sort holds its input and a sorted copy at once: a quarter of the limit for the
        // pool leaves room for that copy, the merge of the spilled runs and the decoding.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit / 4)))
            .with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(
                        datafusion::execution::disk_manager::DiskManagerMode::Directories(vec![
                            dir.0.join("sort"),
                        ]),
                    )
                    // Few spilled runs read at once: each holds a batch in memory.
                    .with_max_spill_merge_fan_in(SPILL_MERGE_FAN_IN),
            )
            .build_arc()
            .map_err(Error::datafusion("starting DataFusion"))?;
        let decoder = Decoder {
            topic: topic.to_string(),
            meta: t.metadata.clone(),
            reader_schema,
            reader_id: t.latest.id,
            mapping: Arc::new(mapping),
            target,
            writers: HashMap::new(),
            pending: BTreeMap::new(),
            pending_rows: 0,
            pending_bytes: 0,
            root: dir.0.clone(),
            written: BTreeMap::new(),
            seq: 0,
            only: None,
            seen: BTreeMap::new(),
            count_after: BTreeMap::new(),
            rejected: 0,
            rejects: Vec::new(),
            decoded: 0,
            parts: BTreeMap::new(),
            part_bytes: options
                .part_bytes
                .unwrap_or(options.memory_limit as u64 / 16)
                .max(1),
            online: None,
        };
        Ok(ExpectedView {
            meta: t.metadata.clone(),
            runtime,
            dir,
            decoder: Some(decoder),
        })
    }

    /// An empty view for the online check: every decoded row in one folder with its date
    /// as a column ([`ONLINE_DATE_COLUMN`]), and the last tombstone of each Kafka key
    /// kept (when the topic's metadata allows deletes). Read with
    /// [`online_for_each`](Self::online_for_each).
    pub async fn new_online(
        registry: &SchemaRegistry,
        topic: &str,
        options: &Options,
    ) -> Result<ExpectedView> {
        let mut view = ExpectedView::new(registry, topic, options).await?;
        if let Some(d) = view.decoder.as_mut() {
            d.online = Some(OnlineRows::default());
        }
        Ok(view)
    }

    /// The online view's tombstones: per Kafka key, the position of its last one.
    pub fn tombstones(&self) -> impl Iterator<Item = (&[u8], (i32, i64))> {
        self.decoder
            .iter()
            .filter_map(|d| d.online.as_ref())
            .flat_map(|o| o.tombstones.iter().map(|(k, at)| (k.as_slice(), *at)))
    }

    /// Calls `f` with each batch of the online view's winners: per unique key, the merge
    /// strategy's best version among those after the key's last tombstone (`tombstones`:
    /// the unique-key columns, typed as the rows', and the tombstone's position as
    /// [`TOMBSTONE_PARTITION`] and [`TOMBSTONE_OFFSET`], one row per key), whatever the
    /// versions' dates. Rows keep their date column. A part at a time when split by key
    /// hash (every version of a key is in one part).
    pub async fn online_for_each(
        &self,
        tombstones: Option<RecordBatch>,
        mut f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let what = "the online view's winners";
        let root = self.dir.0.join(ONLINE_FOLDER);
        if !root.is_dir() {
            return Ok(());
        }
        let folders = match self.decoder.as_ref().and_then(|d| d.online.as_ref()?.parts) {
            None => vec![root.clone()],
            Some(n) => (0..n)
                .map(|i| parts::part_folder(&root, i))
                .filter(|p| p.is_dir())
                .collect(),
        };
        for folder in folders {
            let (ctx, columns) = self
                .rows_table(&folder, "versions", CHUNK_ROWS, what)
                .await?;
            let live = match &tombstones {
                Some(t) if t.num_rows() > 0 => {
                    let table = datafusion::datasource::MemTable::try_new(
                        t.schema(),
                        vec![vec![t.clone()]],
                    )
                    .map_err(Error::datafusion(what))?;
                    ctx.register_table("tombstones", Arc::new(table))
                        .map_err(Error::datafusion(what))?;
                    let on = self
                        .meta
                        .unique_key
                        .iter()
                        .map(|k| format!("v.{} = t.{}", quote(k), quote(k)))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    let (p, o) = (quote(PARTITION_COLUMN), quote(OFFSET_COLUMN));
                    let (tp, to) = (quote(TOMBSTONE_PARTITION), quote(TOMBSTONE_OFFSET));
                    let picked = columns
                        .iter()
                        .map(|c| format!("v.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        "(SELECT {picked} FROM versions v LEFT JOIN tombstones t ON {on} \
                         WHERE t.{tp} IS NULL OR v.{p} > t.{tp} OR (v.{p} = t.{tp} AND v.{o} > t.{to})) AS live"
                    )
                }
                _ => "versions".to_string(),
            };
            let sql = winners_sql(&self.meta, &live, &columns.join(", "));
            let mut stream = ctx
                .sql(&sql)
                .await
                .map_err(Error::datafusion(format!("{what}: {sql}")))?
                .execute_stream()
                .await
                .map_err(Error::datafusion(what))?;
            while let Some(batch) = stream.next().await {
                f(&batch.map_err(Error::datafusion(what))?)?;
            }
        }
        Ok(())
    }

    /// Decodes the records of `files` at or below `watermarks` whose date is in `only`
    /// (every date when `None`) into the view. Returns, per raw date folder, every date
    /// its records belong to (also those left out).
    pub async fn decode(
        &mut self,
        store: &dyn ObjectStore,
        registry: &SchemaRegistry,
        files: &[RawFile],
        watermarks: &BTreeMap<String, i64>,
        only: Option<&BTreeSet<NaiveDate>>,
    ) -> Result<BTreeMap<NaiveDate, BTreeSet<NaiveDate>>> {
        let Some(mut decoder) = self.decoder.take() else {
            return Err(Error::Decode {
                date: "*".to_string(),
                reason: "an earlier decode failed".to_string(),
            });
        };
        decoder.only = only.cloned();
        decoder.seen.clear();
        let topic = decoder.topic.clone();
        let mut last_progress = std::time::Instant::now();
        for (n, file) in files.iter().enumerate() {
            if last_progress.elapsed() >= std::time::Duration::from_secs(10) {
                last_progress = std::time::Instant::now();
                tracing::info!(
                    topic,
                    files = n,
                    of = files.len(),
                    "verifier: decoding raw files"
                );
            }
            let path = file.path();
            // Copied to local disk and read a batch at a time: a raw file can be large.
            let local = self.dir.0.join("raw-file.parquet");
            download(store, &path, &local)
                .await
                .map_err(|reason| Error::Raw {
                    path: path.clone(),
                    reason,
                })?;
            let watermark = watermarks
                .get(&file.partition.to_string())
                .copied()
                .unwrap_or(-1);
            // Writer schemas first (the registry is async), then decode off the workers.
            let ids = tokio::task::spawn_blocking({
                let (local, path) = (local.clone(), path.clone());
                move || schema_ids(&path, &local)
            })
            .await??;
            for id in ids {
                if decoder.writers.contains_key(&id) {
                    continue;
                }
                match registry.schema_by_id(id).await {
                    Ok(s) => {
                        decoder.writers.insert(id, Some(s));
                    }
                    Err(onepipe_client::Error::UnknownSchemaId(_)) => {
                        decoder.writers.insert(id, None);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let folder = file.date;
            decoder = tokio::task::spawn_blocking(move || {
                decoder.file(&path, folder, &local, watermark)?;
                Ok::<_, Error>(decoder)
            })
            .await??;
        }
        let decoder = tokio::task::spawn_blocking(move || {
            decoder.flush_all()?;
            decoder.split_large()?;
            Ok::<_, Error>(decoder)
        })
        .await??;
        let seen = decoder.seen.clone();
        self.decoder = Some(decoder);
        Ok(seen)
    }

    /// Counts (and remembers, see [`rejects`](Self::rejects)) only the rejected records
    /// after these offsets (per partition, as the manifest keys them), so that records
    /// an earlier run counted are not counted again. Every reject counts by default.
    pub fn count_rejects_after(&mut self, watermarks: &BTreeMap<String, i64>) {
        if let Some(d) = self.decoder.as_mut() {
            d.count_after = watermarks
                .iter()
                .filter_map(|(p, w)| Some((p.parse().ok()?, *w)))
                .collect();
        }
    }

    /// Raw records that are no clean row by the contract, so far (those counted, see
    /// [`count_rejects_after`](Self::count_rejects_after)).
    pub fn rejected(&self) -> u64 {
        self.decoder.as_ref().map_or(0, |d| d.rejected)
    }

    /// The first [`MAX_REJECT_POSITIONS`] counted rejects, in the order met.
    pub fn rejects(&self) -> &[RejectedRecord] {
        self.decoder.as_ref().map_or(&[], |d| d.rejects.as_slice())
    }

    /// The dates that have rows.
    pub fn dates(&self) -> Vec<NaiveDate> {
        self.decoder
            .as_ref()
            .map(|d| d.written.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `date` has rows.
    pub fn has(&self, date: NaiveDate) -> bool {
        self.decoder
            .as_ref()
            .is_some_and(|d| d.written.contains_key(&date))
    }

    /// How many parts `date` is split into by key hash (a key whose
    /// [`key_hash`](crate::checks::key_hash) is `h` is in part `h % n`), `None` when it is
    /// merged whole.
    pub fn parts(&self, date: NaiveDate) -> Option<usize> {
        self.decoder
            .as_ref()
            .and_then(|d| d.parts.get(&date).copied())
    }

    /// The folders whose rows are merged by one query each: the date's folder, or those of
    /// its parts `keep` accepts when it is split.
    fn merge_folders(&self, date: NaiveDate, keep: &impl Fn(usize) -> bool) -> Vec<PathBuf> {
        let folder = self.dir.0.join(date.to_string());
        match self.parts(date) {
            None => vec![folder],
            Some(n) => (0..n)
                .filter(|i| keep(*i))
                .map(|i| parts::part_folder(&folder, i))
                .filter(|p| p.is_dir())
                .collect(),
        }
    }

    /// A DataFusion session on the view's memory pool with the decoded rows in `folder`
    /// as `table`, and that table's columns, quoted. One partition: the sort gets the whole
    /// pool. Strings and bytes as the clean archive holds them (Utf8, Binary), not as
    /// views.
    async fn rows_table(
        &self,
        folder: &std::path::Path,
        table: &str,
        batch: usize,
        what: &str,
    ) -> Result<(SessionContext, Vec<String>)> {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(batch)
            .set_bool(
                "datafusion.execution.parquet.schema_force_view_types",
                false,
            );
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        ctx.register_udf(ScalarUDF::new_from_impl(ClockRank::new()));
        ctx.register_parquet(
            table,
            format!("{}/", folder.display()),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(Error::datafusion(what))?;
        let columns = ctx
            .table(table)
            .await
            .map_err(Error::datafusion(what))?
            .schema()
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        Ok((ctx, columns))
    }

    /// The merged rows of the decoded rows in `folder` (of `date`), streamed; `batch`
    /// rows per batch.
    async fn merge_folder(
        &self,
        date: NaiveDate,
        folder: &std::path::Path,
        batch: usize,
    ) -> Result<SendableRecordBatchStream> {
        let what = format!("merging the raw rows of {date}");
        let table = format!("raw_{}", date.format("%Y%m%d"));
        let (ctx, columns) = self.rows_table(folder, &table, batch, &what).await?;
        let sql = winners_sql(&self.meta, &table, &columns.join(", "));
        let stream = ctx
            .sql(&sql)
            .await
            .map_err(Error::datafusion(format!("{what}: {sql}")))?
            .execute_stream()
            .await
            .map_err(Error::datafusion(what))?;
        Ok(stream)
    }

    /// Calls `f` with each batch of the merged rows of `date` (the clean rows it must
    /// hold), a part at a time when the date is split.
    pub async fn for_each(
        &self,
        date: NaiveDate,
        f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        self.for_each_part(date, |_| true, f).await
    }

    /// As [`for_each`](Self::for_each), for only the parts `keep` accepts (by index, see
    /// [`parts`](Self::parts)); a date merged whole is always read.
    pub async fn for_each_part(
        &self,
        date: NaiveDate,
        keep: impl Fn(usize) -> bool,
        mut f: impl FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        // Batches of about 1 MB whatever the width of a row: the merge of spilled sort
        // runs holds one batch per run.
        let rows = self
            .decoder
            .as_ref()
            .and_then(|d| d.written.get(&date).copied())
            .unwrap_or(0)
            .max(1);
        let bytes = parts::folder_bytes(&self.dir.0.join(date.to_string()));
        let batch = (BATCH_BYTES / (bytes / rows).max(1)).clamp(256, CHUNK_ROWS as u64) as usize;
        for folder in self.merge_folders(date, &keep) {
            let mut stream = self.merge_folder(date, &folder, batch).await?;
            while let Some(batch) = stream.next().await {
                let batch =
                    batch.map_err(Error::datafusion(format!("merging the raw rows of {date}")))?;
                f(&batch)?;
            }
        }
        Ok(())
    }
}

/// The winners among `batches` (rows of one date with the Kafka columns) by the same query
/// a date's raw rows go through; for tests and small inputs.
pub async fn merge_in_memory(
    meta: &TopicMetadata,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let what = "merging rows in memory";
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    ctx.register_udf(ScalarUDF::new_from_impl(ClockRank::new()));
    let table = datafusion::datasource::MemTable::try_new(schema.clone(), vec![batches])
        .map_err(Error::datafusion(what))?;
    ctx.register_table("rows", Arc::new(table))
        .map_err(Error::datafusion(what))?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    ctx.sql(&winners_sql(meta, "rows", &columns))
        .await
        .map_err(Error::datafusion(what))?
        .collect()
        .await
        .map_err(Error::datafusion(what))
}

/// Copies object `location` to the local file `local`, a chunk at a time.
pub async fn download(
    store: &dyn ObjectStore,
    location: &str,
    local: &std::path::Path,
) -> std::result::Result<(), String> {
    use std::io::Write as _;
    let mut out = std::fs::File::create(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let mut body = store
        .get(&Path::from(location))
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        out.write_all(&chunk)
            .map_err(|e| format!("{}: {e}", local.display()))?;
    }
    Ok(())
}

/// The raw files holding offsets at or below the watermarks, in offset order.
pub async fn raw_files(
    store: &dyn ObjectStore,
    topic: &str,
    watermarks: &BTreeMap<String, i64>,
) -> Result<Vec<RawFile>> {
    let (files, _) = onepipe_archive::checkpoint::list_raw(store, &raw_topic_prefix(topic))
        .await
        .map_err(|error| Error::ListRaw {
            topic: topic.to_string(),
            error,
        })?;
    let mut plan: Vec<RawFile> = files
        .into_iter()
        .filter(|f| {
            watermarks
                .get(&f.partition.to_string())
                .is_some_and(|w| f.first_offset <= *w)
        })
        .collect();
    plan.sort_by_key(|f| (f.partition, f.first_offset));
    Ok(plan)
}

/// `"name"`, quoted for DataFusion SQL.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A field path (`customer.id`) as a DataFusion expression.
fn path_expr(path: &str) -> String {
    let mut parts = path.split('.');
    let mut out = quote(parts.next().unwrap_or_default());
    for p in parts {
        out = format!("{out}['{}']", p.replace('\'', "''"));
    }
    out
}

/// The query keeping one row per unique key of `table` by the merge strategy.
fn winners_sql(meta: &TopicMetadata, table: &str, columns: &str) -> String {
    let keys = meta
        .unique_key
        .iter()
        .map(|k| path_expr(k))
        .collect::<Vec<_>>()
        .join(", ");
    let (p, o) = (quote(PARTITION_COLUMN), quote(OFFSET_COLUMN));
    let order = match &meta.merge {
        MergeStrategy::FirstSeen => format!("{p} ASC, {o} ASC"),
        MergeStrategy::MaxBy(f) => {
            format!("{} DESC NULLS LAST, {p} DESC, {o} DESC", path_expr(f))
        }
        MergeStrategy::VectorClock(f) => {
            format!("{CLOCK_RANK}({}) DESC, {p} DESC, {o} DESC", path_expr(f))
        }
    };
    let rank = quote("_onepipe_verifier_rank");
    format!(
        "SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {rank} FROM {table}) WHERE {rank} = 1"
    )
}

/// The writer schema ids of a raw file's values (blocking).
fn schema_ids(path: &str, local: &std::path::Path) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for batch in raw_batches(path, local)? {
        let batch = batch?;
        let values = raw_column(&batch, "value", path)?;
        let values = values.as_binary::<i32>();
        for v in values.iter().flatten() {
            if let Some((id, _)) = unframe(v) {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

fn raw_batches(
    path: &str,
    local: &std::path::Path,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    let bad = |path: &str, e: &dyn std::fmt::Display| Error::Raw {
        path: path.to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(local).map_err(|e| Error::Spill {
        path: local.display().to_string(),
        error: e,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(path, &e))?
        .with_batch_size(RAW_BATCH_ROWS)
        .build()
        .map_err(|e| bad(path, &e))?;
    let path = path.to_string();
    Ok(reader.map(move |b| b.map_err(|e| bad(&path, &e))))
}

fn raw_column(batch: &RecordBatch, name: &str, path: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| Error::Raw {
            path: path.to_string(),
            reason: format!("no column {name:?} in a raw file"),
        })
}

/// The schema id and the Avro datum of a framed value: magic byte 0, then the id as 4
/// big-endian bytes.
fn unframe(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

/// One decoded row waiting to be written: its value and Kafka position.
struct Row {
    value: Value,
    partition: i32,
    offset: i64,
    timestamp: i64,
    schema_id: u32,
}

struct Decoder {
    topic: String,
    meta: TopicMetadata,
    reader_schema: Arc<Avro>,
    /// The registry id of `reader_schema`.
    reader_id: u32,
    mapping: Arc<Mapping>,
    target: SchemaRef,
    /// Writer schemas by id; `None` for ids the registry does not know.
    writers: HashMap<u32, Option<Arc<Avro>>>,
    pending: BTreeMap<NaiveDate, Vec<Row>>,
    pending_rows: usize,
    /// Encoded bytes of the pending rows (about what their decoded values hold).
    pending_bytes: usize,
    root: PathBuf,
    /// Rows written per date.
    written: BTreeMap<NaiveDate, u64>,
    seq: u64,
    only: Option<BTreeSet<NaiveDate>>,
    /// Raw date folder → the dates of its records, in this decode.
    seen: BTreeMap<NaiveDate, BTreeSet<NaiveDate>>,
    /// Per partition, the offset after which a rejected record is counted (see
    /// [`ExpectedView::count_rejects_after`]).
    count_after: BTreeMap<i32, i64>,
    rejected: u64,
    /// The first [`MAX_REJECT_POSITIONS`] of the counted rejects.
    rejects: Vec<RejectedRecord>,
    decoded: u64,
    /// The dates split into parts, and into how many (see [`crate::parts`]).
    parts: BTreeMap<NaiveDate, usize>,
    /// Decoded bytes of a date above which it is split.
    part_bytes: u64,
    /// The online view ([`ExpectedView::new_online`]): every row in one folder with its
    /// date as a column, and the tombstones kept.
    online: Option<OnlineRows>,
}

/// What the online view keeps besides the rows.
#[derive(Default)]
struct OnlineRows {
    /// Per Kafka key (its bytes), the position of its last tombstone.
    tombstones: HashMap<Vec<u8>, (i32, i64)>,
    /// Into how many parts the rows are split (`None`: merged whole).
    parts: Option<usize>,
}

/// The folder of the online view's rows.
const ONLINE_FOLDER: &str = "online";
/// The position columns of the tombstones table given to
/// [`ExpectedView::online_for_each`].
pub const TOMBSTONE_PARTITION: &str = "_onepipe_tombstone_partition";
pub const TOMBSTONE_OFFSET: &str = "_onepipe_tombstone_offset";
/// The online view's date column (Date32), after the clean columns.
pub const ONLINE_DATE_COLUMN: &str = "_date";

/// A raw record that is no clean row by the contract, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    pub partition: i32,
    pub offset: i64,
    pub reason: &'static str,
}

/// Rejected records remembered by position (the rest are only counted).
pub const MAX_REJECT_POSITIONS: usize = 10_000;

impl Decoder {
    /// Decodes the records of one raw file at or below `watermark` (blocking).
    fn file(
        &mut self,
        path: &str,
        folder: NaiveDate,
        local: &std::path::Path,
        watermark: i64,
    ) -> Result<()> {
        let time_path = time_path(&self.meta);
        let mut readers: HashMap<u32, Option<GenericDatumReader<'_>>> = HashMap::new();
        let writers = self.writers.clone();
        let reader_schema = self.reader_schema.clone();
        let reader_id = self.reader_id;
        for batch in raw_batches(path, local)? {
            let batch = batch?;
            let partitions = raw_column(&batch, "partition", path)?;
            let partitions = partitions.as_primitive::<Int32Type>();
            let offsets = raw_column(&batch, "offset", path)?;
            let offsets = offsets.as_primitive::<Int64Type>();
            let timestamps = raw_column(&batch, "timestamp", path)?;
            let timestamps = timestamps
                .as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>()
                .ok_or_else(|| Error::Raw {
                    path: path.to_string(),
                    reason: "column \"timestamp\" is not a timestamp(ms)".to_string(),
                })?;
            let values = raw_column(&batch, "value", path)?;
            let values = values.as_binary::<i32>();
            let keys = match self.online {
                Some(_) if self.meta.deletes => Some(raw_column(&batch, "key", path)?),
                _ => None,
            };
            for i in 0..batch.num_rows() {
                let offset = offsets.value(i);
                if offset > watermark {
                    continue;
                }
                if let (Some(keys), Some(online)) = (&keys, self.online.as_mut())
                    && values.is_null(i)
                    && keys.is_valid(i)
                {
                    let key = keys.as_binary::<i32>().value(i).to_vec();
                    let at = (partitions.value(i), offset);
                    let last = online.tombstones.entry(key).or_insert(at);
                    *last = (*last).max(at);
                }
                let timestamp = timestamps.value(i);
                let decoded = if !ranges::timestamp_in_range(timestamp, ranges::Unit::Millis) {
                    Err("Kafka timestamp outside 0001-01-01..9999-12-31")
                } else if values.is_null(i) {
                    Err("tombstone (no value)")
                } else {
                    match unframe(values.value(i)) {
                        None => Err("no wire header (magic byte 0 and a schema id)"),
                        Some((id, datum)) => {
                            let reader = readers.entry(id).or_insert_with(|| {
                                let writer = writers.get(&id)?.as_ref()?;
                                // Written with the newest schema: nothing to resolve.
                                let target = (id != reader_id).then_some(reader_schema.as_ref());
                                GenericDatumReader::builder(writer.as_ref())
                                    .maybe_reader_schema(target)
                                    .build()
                                    .ok()
                            });
                            match reader.as_ref() {
                                None => Err("schema id unknown to the registry or unreadable"),
                                Some(reader) => {
                                    let mut rest = datum;
                                    match reader.read_value(&mut rest) {
                                        Err(_) => Err("not an Avro datum of its schema"),
                                        // The datum is the whole value: bytes after it
                                        // are not a record.
                                        Ok(_) if !rest.is_empty() => {
                                            Err("bytes after the Avro datum")
                                        }
                                        Ok(value) if !ranges::out_of_range(&value).is_empty() => {
                                            Err("a value outside its type's range")
                                        }
                                        Ok(value) => Ok((id, value)),
                                    }
                                }
                            }
                        }
                    }
                };
                let date = decoded.and_then(|(id, value)| {
                    record_date(time_path.as_deref(), &value, timestamp)
                        .map(|date| (id, value, date))
                        .ok_or("its date is outside the calendar")
                });
                let (schema_id, value, date) = match date {
                    Ok(v) => v,
                    Err(reason) => {
                        let partition = partitions.value(i);
                        if offset > self.count_after.get(&partition).copied().unwrap_or(-1) {
                            self.rejected += 1;
                            if self.rejects.len() < MAX_REJECT_POSITIONS {
                                self.rejects.push(RejectedRecord {
                                    partition,
                                    offset,
                                    reason,
                                });
                            }
                        }
                        continue;
                    }
                };
                self.seen.entry(folder).or_default().insert(date);
                if self.only.as_ref().is_some_and(|only| !only.contains(&date)) {
                    continue;
                }
                self.decoded += 1;
                let rows = self.pending.entry(date).or_default();
                rows.push(Row {
                    value,
                    partition: partitions.value(i),
                    offset,
                    timestamp,
                    schema_id,
                });
                self.pending_rows += 1;
                self.pending_bytes += values.value_length(i) as usize;
                if rows.len() >= CHUNK_ROWS {
                    self.flush(date)?;
                } else if self.pending_rows >= MAX_PENDING_ROWS
                    || self.pending_bytes >= MAX_PENDING_BYTES
                {
                    self.flush_all()?;
                }
            }
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        let dates: Vec<NaiveDate> = self.pending.keys().copied().collect();
        for d in dates {
            self.flush(d)?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Splits each date that has grown beyond `part_bytes` into parts, and the rows newly
    /// decoded into a split date into its parts (blocking).
    fn split_large(&mut self) -> Result<()> {
        if let Some(online) = self.online.as_mut() {
            let folder = self.root.join(ONLINE_FOLDER);
            self.seq += 1;
            if folder.is_dir() {
                online.parts =
                    parts::split(&folder, online.parts, self.part_bytes, &self.meta, self.seq)?;
            }
            return Ok(());
        }
        for date in self.written.keys().copied().collect::<Vec<_>>() {
            let folder = self.root.join(date.to_string());
            let before = self.parts.get(&date).copied();
            self.seq += 1;
            if let Some(n) = parts::split(&folder, before, self.part_bytes, &self.meta, self.seq)? {
                if before.is_none() {
                    tracing::info!(
                        topic = self.topic,
                        %date,
                        parts = n,
                        "verifier: a large date is merged in parts by key hash"
                    );
                }
                self.parts.insert(date, n);
            }
        }
        Ok(())
    }

    /// Writes the pending rows of `date` as one Parquet file in its folder.
    fn flush(&mut self, date: NaiveDate) -> Result<()> {
        let Some(rows) = self.pending.remove(&date) else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        self.pending_rows -= rows.len();
        let convert = |e: &dyn std::fmt::Display| Error::Decode {
            date: date.to_string(),
            reason: e.to_string(),
        };
        let values: Vec<&Value> = rows.iter().map(|r| &r.value).collect();
        let mut columns = self.mapping.columns(&values).map_err(|e| convert(&e))?;
        columns.push(Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.offset),
        )));
        let timestamps = rows
            .iter()
            .map(|r| onepipe_archive::columns::millis_to_micros(r.timestamp))
            .collect::<std::result::Result<Vec<i64>, _>>()
            .map_err(|e| convert(&e))?;
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(timestamps).with_timezone("UTC"),
        ));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| i64::from(r.schema_id)),
        )));
        let mut schema = self.target.clone();
        let mut folder = self.root.join(date.to_string());
        if self.online.is_some() {
            let days = chrono::Datelike::num_days_from_ce(&date) - UNIX_EPOCH_DAYS_FROM_CE;
            columns.push(Arc::new(Date32Array::from_value(days, rows.len())));
            let mut fields = self.target.fields().to_vec();
            fields.push(Arc::new(Field::new(
                ONLINE_DATE_COLUMN,
                DataType::Date32,
                false,
            )));
            schema = Arc::new(arrow::datatypes::Schema::new(fields));
            folder = self.root.join(ONLINE_FOLDER);
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| convert(&e))?;
        std::fs::create_dir_all(&folder).map_err(|e| Error::Spill {
            path: folder.display().to_string(),
            error: e,
        })?;
        self.seq += 1;
        let path = folder.join(format!("{:08}.parquet", self.seq));
        let file = std::fs::File::create(&path).map_err(|e| Error::Spill {
            path: path.display().to_string(),
            error: e,
        })?;
        let mut w = ArrowWriter::try_new(file, schema, None).map_err(|e| convert(&e))?;
        w.write(&batch).map_err(|e| convert(&e))?;
        w.close().map_err(|e| convert(&e))?;
        *self.written.entry(date).or_default() += rows.len() as u64;
        Ok(())
    }
}

/// The path of a topic's `partition_time` field, split at its dots.
pub fn time_path(meta: &TopicMetadata) -> Option<Vec<String>> {
    meta.partition_time
        .as_ref()
        .map(|p| p.split('.').map(str::to_string).collect())
}

/// The date of a decoded record by the contract's rule: the UTC day of its
/// `partition_time` field (at `time_path`) when that is set, else of its Kafka timestamp
/// (milliseconds; a negative one counts as 1970-01-01). `None` when the day is outside the
/// calendar.
pub fn record_date(
    time_path: Option<&[String]>,
    value: &Value,
    timestamp: i64,
) -> Option<NaiveDate> {
    let days = time_path
        .and_then(|p| field_day(value, p))
        .unwrap_or_else(|| timestamp.max(0).div_euclid(MS_PER_DAY));
    day_date(days)
}

/// The UTC date of a Kafka timestamp (milliseconds; a negative one counts as 1970-01-01).
pub fn kafka_timestamp_date(timestamp: i64) -> Option<NaiveDate> {
    day_date(timestamp.max(0).div_euclid(MS_PER_DAY))
}

/// The date `days` after 1970-01-01, if the calendar has it.
fn day_date(days: i64) -> Option<NaiveDate> {
    i32::try_from(days)
        .ok()
        .and_then(|d| d.checked_add(UNIX_EPOCH_DAYS_FROM_CE))
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

/// Days since 1970-01-01 (UTC) of the date or timestamp at `path` in a decoded record;
/// `None` when it is NULL or absent.
fn field_day(value: &Value, path: &[String]) -> Option<i64> {
    let mut v = value;
    for name in path {
        while let Value::Union(_, inner) = v {
            v = inner;
        }
        let Value::Record(fields) = v else {
            return None;
        };
        v = &fields.iter().find(|(n, _)| n == name)?.1;
    }
    while let Value::Union(_, inner) = v {
        v = inner;
    }
    let per_day: i64 = match v {
        Value::Date(d) => return Some(i64::from(*d)),
        Value::TimestampMillis(_) | Value::LocalTimestampMillis(_) => MS_PER_DAY,
        Value::TimestampMicros(_) | Value::LocalTimestampMicros(_) => MS_PER_DAY * 1000,
        Value::TimestampNanos(_) | Value::LocalTimestampNanos(_) => MS_PER_DAY * 1_000_000,
        _ => return None,
    };
    let t = match v {
        Value::TimestampMillis(t)
        | Value::LocalTimestampMillis(t)
        | Value::TimestampMicros(t)
        | Value::LocalTimestampMicros(t)
        | Value::TimestampNanos(t)
        | Value::LocalTimestampNanos(t) => *t,
        _ => return None,
    };
    Some(t.div_euclid(per_day))
}

/// `onepipe_clock_rank(map<utf8, int64>) -> binary`: bytes that sort as the contract
/// orders vector clocks — the sum of the counters (as a 128-bit integer), then the
/// non-zero entries by key, each as the key's bytes (0x00 escaped as 0x00 0x01), 0x00 0x00,
/// and the counter. A NULL clock or counter counts as empty or 0.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClockRank {
    signature: Signature,
}

impl ClockRank {
    pub fn new() -> Self {
        ClockRank {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl Default for ClockRank {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ClockRank {
    fn name(&self) -> &str {
        CLOCK_RANK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(map) = arrays.first().and_then(|a| a.as_map_opt()) else {
            return Err(datafusion::common::DataFusionError::Plan(format!(
                "{CLOCK_RANK} takes a map<string, long>"
            )));
        };
        Ok(ColumnarValue::Array(Arc::new(clock_ranks(map)?)))
    }
}

fn clock_ranks(
    map: &arrow::array::MapArray,
) -> datafusion::common::Result<arrow::array::BinaryArray> {
    let mut out = BinaryBuilder::new();
    let mut entries: BTreeMap<&str, i64> = BTreeMap::new();
    let keys = map.keys().as_string_opt::<i32>();
    let values = map.values().as_primitive_opt::<Int64Type>();
    let (Some(keys), Some(values)) = (keys, values) else {
        return Err(datafusion::common::DataFusionError::Plan(format!(
            "{CLOCK_RANK} takes a map<string, long>, not {}",
            map.data_type()
        )));
    };
    let offsets = map.value_offsets();
    for i in 0..map.len() {
        entries.clear();
        if map.is_valid(i) {
            // A key given twice keeps its last counter; a counter of 0 is no entry.
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                if values.is_valid(j) {
                    entries.insert(keys.value(j), values.value(j));
                }
            }
            entries.retain(|_, v| *v != 0);
        }
        out.append_value(clock_rank(&entries));
    }
    Ok(out.finish())
}

/// The sortable bytes of one clock (see [`ClockRank`]).
pub fn clock_rank(entries: &BTreeMap<&str, i64>) -> Vec<u8> {
    let sum: i128 = entries.values().map(|v| i128::from(*v)).sum();
    let mut out = Vec::with_capacity(16 + entries.len() * 16);
    out.extend_from_slice(&((sum as u128) ^ (1u128 << 127)).to_be_bytes());
    for (k, v) in entries {
        for b in k.as_bytes() {
            out.push(*b);
            if *b == 0 {
                out.push(1);
            }
        }
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&((*v as u64) ^ (1u64 << 63)).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn clock_ranks_sort_by_sum_then_entries() {
        let rank = |e: &[(&'static str, i64)]| clock_rank(&e.iter().copied().collect());
        // Dominance always means a larger sum.
        assert!(rank(&[("a", 2), ("b", 1)]) > rank(&[("a", 1), ("b", 1)]));
        assert!(rank(&[("a", 1)]) > rank(&[]));
        // Concurrent, same sum: entries by key, then counter.
        assert!(rank(&[("b", 2)]) > rank(&[("a", 2)]));
        assert!(rank(&[("a", 3), ("b", 1)]) > rank(&[("a", 2), ("b", 2)]));
        // Key order is the strings' order, a longer list of equal entries is larger.
        assert!(rank(&[("ab", 1)]) > rank(&[("a", 1)]));
        assert!(rank(&[("a\0", 1)]) > rank(&[("a", 1)]));
        assert!(rank(&[("a", 1), ("b", 0)]) > rank(&[("a", 1)]));
        assert!(rank(&[("a", 1), ("b", 1)]) < rank(&[("a", 2)]));
        // Negative sums sort below positive ones.
        assert!(rank(&[("a", -5)]) < rank(&[]));
    }

    #[test]
    fn the_date_is_the_fields_utc_day_in_its_own_unit() {
        let rec = |v: Value| Value::Record(vec![("at".to_string(), v)]);
        let path = ["at".to_string()];
        let day = |v: Value| field_day(&rec(v), &path);
        assert_eq!(day(Value::TimestampMillis(MS_PER_DAY - 1)), Some(0));
        assert_eq!(day(Value::TimestampMillis(-1)), Some(-1));
        assert_eq!(day(Value::TimestampMicros(MS_PER_DAY * 1000)), Some(1));
        assert_eq!(day(Value::TimestampNanos(-1)), Some(-1));
        assert_eq!(day(Value::Date(-719_162)), Some(-719_162));
        assert_eq!(
            day(Value::Union(1, Box::new(Value::TimestampMillis(0)))),
            Some(0)
        );
        assert_eq!(day(Value::Union(0, Box::new(Value::Null))), None);
        let nested = Value::Record(vec![(
            "o".to_string(),
            Value::Union(1, Box::new(rec(Value::Date(3)))),
        )]);
        assert_eq!(
            field_day(&nested, &["o".to_string(), "at".to_string()]),
            Some(3)
        );
    }

    use arrow::array::{Int64Builder, MapBuilder, StringArray, StringBuilder, UInt32Array};
    use proptest::prelude::*;

    /// One version of a key: (key, version or NULL, clock entries, partition).
    type Version = (u8, Option<i64>, Vec<(u8, i64)>, i32);

    /// Rows with the Kafka columns; offsets count up per partition in the given order.
    fn history(rows: &[Version]) -> RecordBatch {
        let mut clocks = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut offsets = Vec::new();
        for (_, _, clock, p) in rows {
            for (k, v) in clock {
                clocks.keys().append_value(format!("n{k}"));
                clocks.values().append_value(*v);
            }
            clocks.append(true).unwrap();
            let o = next.entry(*p).or_default();
            offsets.push(*o);
            *o += 1;
        }
        let clocks = clocks.finish();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
            Field::new("clock", clocks.data_type().clone(), false),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| format!("k{}", r.0)),
                )),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(clocks),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.3))),
                Arc::new(Int64Array::from(offsets)),
            ],
        )
        .unwrap()
    }

    type Positions = Vec<(i32, i64)>;
    type Merge = fn(&RecordBatch) -> RecordBatch;

    /// The winners as (partition, offset), sorted.
    fn positions(batches: &[RecordBatch]) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for b in batches {
            let p = b
                .column_by_name(PARTITION_COLUMN)
                .unwrap()
                .as_primitive::<Int32Type>();
            let o = b
                .column_by_name(OFFSET_COLUMN)
                .unwrap()
                .as_primitive::<Int64Type>();
            out.extend((0..b.num_rows()).map(|i| (p.value(i), o.value(i))));
        }
        out.sort_unstable();
        out
    }

    fn meta(merge: &str) -> TopicMetadata {
        let mut m = TopicMetadata::new("t", vec!["id".into()]);
        m.merge = merge.parse().unwrap();
        m
    }

    /// Copydog's merge (the code under check) and the verifier's query, on one history.
    fn both(
        rt: &tokio::runtime::Runtime,
        b: &RecordBatch,
        m: &TopicMetadata,
    ) -> (Positions, Positions) {
        let copydog = onepipe_archive::merge::merge(b, m).unwrap();
        let verifier = rt.block_on(merge_in_memory(m, vec![b.clone()])).unwrap();
        (positions(&[copydog.batch]), positions(&verifier))
    }

    fn versions() -> impl Strategy<Value = Vec<Version>> {
        proptest::collection::vec(
            (
                0u8..4,
                proptest::option::weighted(0.9, 0i64..4),
                proptest::collection::vec((0u8..3, 0i64..3), 0..3),
                0i32..2,
            ),
            1..30,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// For random raw histories (repeated keys, tied and NULL versions, clocks with
        /// zero counters, two partitions), copydog and the verifier keep the same rows.
        #[test]
        fn copydog_and_the_verifier_keep_the_same_winners(rows in versions()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let b = history(&rows);
            for strategy in ["first_seen", "max_by(v)", "vector_clock(clock)"] {
                let (copydog, verifier) = both(&rt, &b, &meta(strategy));
                prop_assert_eq!(copydog, verifier, "{}", strategy);
            }
        }
    }

    /// A deliberately broken merge in copydog is caught: here max_by that breaks ties by
    /// the earlier position instead of the later one, and a vector-clock merge that
    /// keeps the first clock it sees. Proptest finds a history on which they disagree.
    #[test]
    fn a_broken_merge_rule_is_caught() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let broken: [(&str, Merge); 2] = [
            ("max_by(v)", |b| {
                // Ties by the earliest position: reverse offsets, merge, map back.
                let n = b.num_rows();
                let reversed: Vec<u32> = (0..n as u32).rev().collect();
                let r = arrow::compute::take_record_batch(b, &UInt32Array::from(reversed)).unwrap();
                let mut cols = r.columns().to_vec();
                let o = r
                    .column_by_name(OFFSET_COLUMN)
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let max = o.iter().flatten().max().unwrap_or(0);
                cols[4] = Arc::new(Int64Array::from_iter_values(
                    o.values().iter().map(|x| max - x),
                ));
                let flipped = RecordBatch::try_new(r.schema(), cols).unwrap();
                let m = onepipe_archive::merge::merge(&flipped, &meta("max_by(v)"))
                    .unwrap()
                    .batch;
                let o = m
                    .column_by_name(OFFSET_COLUMN)
                    .unwrap()
                    .as_primitive::<Int64Type>();
                let mut cols = m.columns().to_vec();
                cols[4] = Arc::new(Int64Array::from_iter_values(
                    o.values().iter().map(|x| max - x),
                ));
                RecordBatch::try_new(m.schema(), cols).unwrap()
            }),
            ("vector_clock(clock)", |b| {
                onepipe_archive::merge::merge(b, &meta("first_seen"))
                    .unwrap()
                    .batch
            }),
        ];
        for (strategy, merge) in broken {
            let mut runner = proptest::test_runner::TestRunner::default();
            let found = runner.run(&versions(), |rows| {
                let b = history(&rows);
                let verifier = rt
                    .block_on(merge_in_memory(&meta(strategy), vec![b.clone()]))
                    .unwrap();
                prop_assert_eq!(positions(&[merge(&b)]), positions(&verifier));
                Ok(())
            });
            assert!(found.is_err(), "the broken {strategy} merge went unnoticed");
        }
    }

    #[test]
    fn the_merge_order_is_sql_of_the_strategy() {
        let mut m = TopicMetadata::new("t", vec!["id".into(), "c.k".into()]);
        let sql = winners_sql(&m, "raw", "*");
        assert!(
            sql.contains(r#"PARTITION BY "id", "c"['k'] ORDER BY "_kafka_partition" ASC"#),
            "{sql}"
        );
        m.merge = "max_by(v)".parse().unwrap();
        assert!(winners_sql(&m, "raw", "*").contains(r#""v" DESC NULLS LAST"#));
        m.merge = "vector_clock(clock)".parse().unwrap();
        assert!(winners_sql(&m, "raw", "*").contains(r#"onepipe_clock_rank("clock") DESC"#));
    }
}
