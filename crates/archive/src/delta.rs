//! The clean archive of a topic as a Delta Lake table, for engines that read Delta
//! (Spark, DuckDB `delta_scan`, Trino, the `deltalake` Python package).
//!
//! The table's root is `clean/{topic}/`: its log is `clean/{topic}/_delta_log/` and its
//! data files are the clean files the manifests name, not copies. The manifests stay the
//! commit point: a copydog run commits manifest N, then *publishes* it as one Delta commit
//! that removes the files of the dates it rewrote, adds the new ones (partition value
//! `_date`, row count and integer bounds as file statistics), records the run's
//! watermarks as one `txn` action per Kafka partition and manifest N's number as the
//! `txn` of [`MANIFEST_APP_ID`], and puts the rewritten dates' rows and checks in
//! `commitInfo`. A manifest that was committed but not published (a crash, a run that
//! stopped in between) is published by the next run, in order, so that every manifest
//! is one Delta version and time travel sees each of them.
//!
//! Every Delta commit is written "create only if absent" by deltalake's log store, so of
//! two runs publishing at once one wins and the other reloads the table and finds its
//! manifest published.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Metadata, Protocol, Remove, StructType, Transaction};
use deltalake::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::layout::CLEAN_ROOT;
use crate::manifest::{self, Manifest};

/// The folder of the Delta log under the table's root.
pub const LOG_DIR: &str = "_delta_log";
/// The partition column of the Delta table: the date a clean row belongs to.
pub const DATE_COLUMN: &str = "_date";
/// The `txn` application whose version is the last manifest published.
pub const MANIFEST_APP_ID: &str = "onepipe-manifest";
/// A checkpoint is written every this many Delta versions.
pub const CHECKPOINT_INTERVAL: u64 = 10;
/// Footers of added files read at once while a commit is put together.
const FOOTER_READS: usize = 16;

/// `clean/{topic}`: the table's root, relative to the object store's root.
pub fn table_root(topic: &str) -> String {
    format!("{CLEAN_ROOT}/{topic}")
}

/// The `txn` application of a Kafka partition's watermark.
pub fn partition_app_id(partition: &str) -> String {
    format!("onepipe-partition-{partition}")
}

fn delta_error(topic: &str) -> impl Fn(DeltaTableError) -> Error + '_ {
    move |e| Error::Delta {
        topic: topic.to_string(),
        reason: e.to_string(),
    }
}

/// deltalake's log store for the table of `topic` on `store`.
pub fn log_store(store: Arc<dyn ObjectStore>, topic: &str) -> Result<LogStoreRef> {
    let root = table_root(topic);
    let store: Arc<dyn ObjectStore> = Arc::new(SortedListing(store));
    let prefixed: Arc<dyn ObjectStore> =
        Arc::new(PrefixStore::new(store.clone(), Path::from(root.as_str())));
    // The URL only names the table to deltalake: every read and write goes through the
    // stores given here. Its path is the table's root within `store`.
    let location = url::Url::parse(&format!("memory:///{root}/")).map_err(|e| Error::Delta {
        topic: topic.to_string(),
        reason: format!("table location: {e}"),
    })?;
    Ok(default_logstore(
        prefixed,
        store,
        &location,
        &StorageConfig::default(),
    ))
}

/// The Delta table of `topic` at its newest version (`None` when no version is
/// given), or at `version`; `Ok(None)` when the table has no log yet.
pub async fn open(
    store: Arc<dyn ObjectStore>,
    topic: &str,
    version: Option<i64>,
) -> Result<Option<DeltaTable>> {
    let as_of = version.map_or(AsOf::Latest, AsOf::Version);
    open_as_of(store, topic, as_of).await
}

/// Which version of a table a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The newest version.
    Latest,
    /// Delta version N.
    Version(i64),
    /// The newest version committed at or before this time.
    Time(DateTime<Utc>),
}

impl std::str::FromStr for AsOf {
    type Err = String;

    /// A version number (`3`), an RFC 3339 time (`2026-12-01T12:00:00Z`) or a date
    /// (`2026-12-01`, its midnight UTC).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Ok(v) = s.parse::<i64>() {
            return if v >= 0 {
                Ok(AsOf::Version(v))
            } else {
                Err(format!("{s}: a version is 0 or more"))
            };
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(AsOf::Time(t.with_timezone(&Utc)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(AsOf::Time(d.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        Err(format!(
            "{s}: expected a version number, an RFC 3339 time (2026-12-01T12:00:00Z) or a date (2026-12-01)"
        ))
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Latest => write!(f, "the newest version"),
            AsOf::Version(v) => write!(f, "version {v}"),
            AsOf::Time(t) => write!(f, "{}", t.to_rfc3339()),
        }
    }
}

/// The Delta table of `topic` at `as_of`; `Ok(None)` when the table has no log yet. A
/// version past the newest, or a time before the first commit, is an error that says
/// which versions there are.
pub async fn open_as_of(
    store: Arc<dyn ObjectStore>,
    topic: &str,
    as_of: AsOf,
) -> Result<Option<DeltaTable>> {
    let log = log_store(store, topic)?;
    if !log
        .is_delta_table_location()
        .await
        .map_err(delta_error(topic))?
    {
        return Ok(None);
    }
    let mut table = DeltaTable::new(log);
    table.load().await.map_err(delta_error(topic))?;
    let newest = table.version().map_or(0, |v| v as i64);
    let missing = |what: String| Error::Delta {
        topic: topic.to_string(),
        reason: format!("{what}: the table has versions 0 to {newest}"),
    };
    match as_of {
        AsOf::Latest => {}
        AsOf::Version(v) if v > newest => return Err(missing(format!("no version {v}"))),
        AsOf::Version(v) if v < newest => table
            .load_version(v as u64)
            .await
            .map_err(delta_error(topic))?,
        AsOf::Version(_) => {}
        AsOf::Time(t) => {
            table
                .load_with_datetime(t)
                .await
                .map_err(delta_error(topic))?;
            // deltalake gives the first version for a time before it: refuse that.
            let v = table.version().unwrap_or(0);
            let committed = commit_time(&table, v).await?;
            if committed > t {
                return Err(missing(format!(
                    "no version was committed at or before {} (version {v} was committed at {})",
                    t.to_rfc3339(),
                    committed.to_rfc3339()
                )));
            }
        }
    }
    Ok(Some(table))
}

/// The manifest Delta readers see: the one the table's current version publishes, or the
/// newest manifest while the topic has no table yet (an archive copydog has not
/// published, or whose schema has no Delta form). Readers that need more than the files
/// (versions, rows, checks) read this, so that they see what Spark and DuckDB see.
pub async fn current_manifest(
    store: Arc<dyn ObjectStore>,
    topic: &str,
) -> Result<Option<Manifest>> {
    let Some(table) = open(store.clone(), topic, None).await? else {
        return manifest::latest(store.as_ref(), topic).await;
    };
    let snapshot = table.snapshot().map_err(delta_error(topic))?;
    let held = snapshot
        .transaction_version(table.log_store().as_ref(), MANIFEST_APP_ID)
        .await
        .map_err(delta_error(topic))?;
    match held {
        Some(n) => manifest::read(store.as_ref(), topic, n as u64)
            .await
            .map(Some),
        // Version 0 only: created, nothing published yet.
        None => Ok(None),
    }
}

/// Delta's own log cleanup: commit files older than the table's log retention
/// (`delta.logRetentionDuration`, 30 days unless set) and older than a checkpoint are
/// removed, so readers start from that checkpoint; time travel reaches back as far as the
/// log that is left. Returns how many entries went.
pub async fn clean_log(store: Arc<dyn ObjectStore>, topic: &str) -> Result<usize> {
    let Some(table) = open(store, topic, None).await? else {
        return Ok(0);
    };
    let removed = deltalake::checkpoints::cleanup_metadata(&table, None)
        .await
        .map_err(delta_error(topic))?;
    if removed > 0 {
        tracing::info!(topic, removed, "delta: expired log entries removed");
    }
    Ok(removed)
}

/// When version `v` of `table` was committed: its commit file's time, as Delta readers
/// take it for time travel.
async fn commit_time(table: &DeltaTable, v: u64) -> Result<DateTime<Utc>> {
    let path = Path::from(format!("{LOG_DIR}/{v:020}.json"));
    let meta = table.log_store().object_store(None).head(&path).await?;
    Ok(meta.last_modified)
}

/// One version of a topic's clean table, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFiles {
    /// The Delta version.
    pub version: i64,
    /// The manifest that version publishes (`None`: version 0, which holds no file).
    pub manifest: Option<u64>,
    /// The data files of each date, as paths from the object store's root, sorted.
    pub dates: BTreeMap<NaiveDate, Vec<String>>,
}

impl TableFiles {
    /// Every data file, date by date.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.dates.values().flatten().map(String::as_str)
    }
}

/// The data files of `topic`'s table at `as_of`, from its Delta log; `Ok(None)` when the
/// table has no log yet (an archive that copydog has not published).
pub async fn files(
    store: Arc<dyn ObjectStore>,
    topic: &str,
    as_of: AsOf,
) -> Result<Option<TableFiles>> {
    let Some(table) = open_as_of(store, topic, as_of).await? else {
        return Ok(None);
    };
    let log = table.log_store();
    let snapshot = table.snapshot().map_err(delta_error(topic))?;
    let manifest = snapshot
        .transaction_version(log.as_ref(), MANIFEST_APP_ID)
        .await
        .map_err(delta_error(topic))?
        .map(|v| v as u64);
    let mut dates: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
    for f in snapshot.log_data().iter() {
        let path = f.path().to_string();
        let value = f.partition_values_map().remove(DATE_COLUMN).flatten();
        let date = value
            .as_deref()
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .ok_or_else(|| Error::Delta {
                topic: topic.to_string(),
                reason: format!("file {path} has no {DATE_COLUMN} partition value (got {value:?})"),
            })?;
        dates
            .entry(date)
            .or_default()
            .push(format!("{}/{path}", table_root(topic)));
    }
    for files in dates.values_mut() {
        files.sort();
    }
    Ok(Some(TableFiles {
        version: snapshot.version() as i64,
        manifest,
        dates,
    }))
}

/// What [`publish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Manifest numbers published by this call, each as one Delta version.
    pub manifests: Vec<u64>,
    /// The table's newest version afterwards (`None`: no manifest yet, no table).
    pub version: Option<i64>,
}

/// Publishes every manifest of `topic` newer than the last one the Delta table holds, one
/// Delta commit each, in order. Creates the table (version 0, no files) first when it has
/// no log. Idempotent and safe to run from several processes at once.
pub async fn publish(store: Arc<dyn ObjectStore>, topic: &str) -> Result<Published> {
    let numbers = manifest::list(store.as_ref(), topic).await?;
    let mut published = Published::default();
    let Some(&newest) = numbers.last() else {
        return Ok(published);
    };
    let log = log_store(store.clone(), topic)?;
    let mut table = match open(store.clone(), topic, None).await? {
        Some(t) => t,
        None => {
            let first = manifest::read(store.as_ref(), topic, newest).await?;
            create(&store, &log, &first).await?;
            open(store.clone(), topic, None)
                .await?
                .ok_or_else(|| Error::Delta {
                    topic: topic.to_string(),
                    reason: "the table was created but has no log".into(),
                })?
        }
    };
    loop {
        let snapshot = table.snapshot().map_err(delta_error(topic))?;
        let done = snapshot
            .transaction_version(log.as_ref(), MANIFEST_APP_ID)
            .await
            .map_err(delta_error(topic))?
            .map_or(0, |v| v as u64);
        // An archive made before its Delta log (or whose older manifests were removed):
        // the first commit brings the table to the newest manifest at once.
        let Some(&next) = numbers.iter().find(|n| **n > done) else {
            break;
        };
        let m = manifest::read(store.as_ref(), topic, next).await?;
        let current: BTreeMap<String, Option<String>> = snapshot
            .log_data()
            .iter()
            .map(|f| {
                let date = f.partition_values_map().remove(DATE_COLUMN).flatten();
                (f.path().to_string(), date)
            })
            .collect();
        let actions = commit_actions(
            &store,
            &m,
            &current,
            snapshot.schema().as_ref(),
            snapshot.metadata(),
        )
        .await?;
        let info = commit_info(&m, &current);
        let commit = CommitBuilder::default()
            .with_actions(actions)
            .with_app_metadata(info)
            .with_max_retries(0)
            .build(
                Some(snapshot),
                log.clone(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: Some(vec![DATE_COLUMN.to_string()]),
                    predicate: None,
                },
            )
            .await;
        match commit {
            Ok(c) => {
                published.manifests.push(m.number);
                tracing::info!(
                    topic,
                    manifest = m.number,
                    version = c.version(),
                    "delta: manifest published"
                );
                if c.version() % CHECKPOINT_INTERVAL == 0 {
                    table.update_state().await.map_err(delta_error(topic))?;
                    deltalake::checkpoints::create_checkpoint(&table, None)
                        .await
                        .map_err(delta_error(topic))?;
                }
            }
            // Another run published this version first: reload and look again.
            Err(e) if lost_race(&e) => {
                tracing::info!(
                    topic,
                    manifest = m.number,
                    "delta: another run published first; reloading"
                );
            }
            Err(e) => return Err(delta_error(topic)(e)),
        }
        table.update_state().await.map_err(delta_error(topic))?;
    }
    published.version = table.version().map(|v| v as i64);
    Ok(published)
}

/// Whether a commit failed only because another writer committed that version first
/// (with no retries, deltalake reports it as running out of attempts).
fn lost_race(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::VersionAlreadyExists(_)
                    | TransactionError::MaxCommitAttempts(_)
            }
    )
}

/// Version 0: the protocol and the table's metadata, with the schema of `m`'s files.
async fn create(store: &Arc<dyn ObjectStore>, log: &LogStoreRef, m: &Manifest) -> Result<()> {
    let schema = table_schema(store, m, None)
        .await?
        .ok_or_else(|| Error::Delta {
            topic: m.topic.clone(),
            reason: "the newest manifest names no clean file to take the table's schema from"
                .into(),
        })?;
    let protocol: Protocol = serde_json::from_value(json!({
        "minReaderVersion": 1,
        "minWriterVersion": 2,
    }))
    .map_err(|e| Error::Delta {
        topic: m.topic.clone(),
        reason: format!("protocol: {e}"),
    })?;
    let metadata = metadata(&m.topic, &schema)?;
    let operation = DeltaOperation::Create {
        mode: SaveMode::ErrorIfExists,
        location: log.root_url().clone(),
        protocol: protocol.clone(),
        metadata: metadata.clone(),
    };
    let commit = CommitBuilder::default()
        .with_actions(vec![Action::Protocol(protocol), Action::Metadata(metadata)])
        .with_max_retries(0)
        .build(None, log.clone(), operation)
        .await;
    match commit {
        Ok(_) => Ok(()),
        Err(e) if lost_race(&e) => Ok(()),
        Err(e) => Err(delta_error(&m.topic)(e)),
    }
}

fn metadata(topic: &str, schema: &StructType) -> Result<Metadata> {
    deltalake::kernel::new_metadata(
        schema,
        [DATE_COLUMN],
        [("onepipe.topic", topic.to_string())],
    )
    .map_err(|e| Error::Delta {
        topic: topic.to_string(),
        reason: e.to_string(),
    })
}

/// The Delta schema of the files `m` names (the first one whose footer is read), with
/// the date partition column; `None` when `m` names no file. When `current` is given and
/// equal, `None` too: the schema did not change.
async fn table_schema(
    store: &Arc<dyn ObjectStore>,
    m: &Manifest,
    current: Option<&StructType>,
) -> Result<Option<StructType>> {
    let Some(file) = m.dates.values().flat_map(|e| e.files.iter()).next() else {
        return Ok(None);
    };
    let (_, footer) = footer(store, file).await?;
    let arrow = parquet::arrow::parquet_to_arrow_schema(
        footer.file_metadata().schema_descr(),
        footer.file_metadata().key_value_metadata(),
    )
    .map_err(|e| Error::Delta {
        topic: m.topic.clone(),
        reason: format!("{file}: {e}"),
    })?;
    let schema = with_date(&m.topic, &arrow)?;
    Ok(match current {
        Some(c) if *c == schema => None,
        _ => Some(schema),
    })
}

/// An Arrow schema of clean files as a Delta schema, with [`DATE_COLUMN`] last.
pub fn with_date(topic: &str, arrow: &arrow::datatypes::Schema) -> Result<StructType> {
    use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
    let bad = |reason: String| Error::Delta {
        topic: topic.to_string(),
        reason,
    };
    if arrow.field_with_name(DATE_COLUMN).is_ok() {
        return Err(bad(format!(
            "the clean rows have a column {DATE_COLUMN}, the name of the table's partition column"
        )));
    }
    // deltalake would call these `timestamp`, but Delta's timestamps are microseconds and
    // Spark does not read Parquet's nanosecond timestamps as timestamps.
    if let Some(f) = arrow.fields().iter().find(|f| has_nanos(f.data_type())) {
        return Err(bad(format!(
            "the clean schema has no Delta form: column {} holds nanosecond timestamps",
            f.name()
        )));
    }
    let schema = StructType::try_from_arrow(arrow)
        .map_err(|e| bad(format!("the clean schema has no Delta form: {e}")))?;
    let mut fields: Vec<_> = schema.fields().cloned().collect();
    fields.push(deltalake::kernel::StructField::new(
        DATE_COLUMN,
        deltalake::kernel::DataType::DATE,
        false,
    ));
    StructType::try_new(fields).map_err(|e| bad(e.to_string()))
}

/// Whether `dt` holds nanosecond timestamps, at any depth.
fn has_nanos(dt: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::{DataType, TimeUnit};
    match dt {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => true,
        DataType::Struct(fields) => fields.iter().any(|f| has_nanos(f.data_type())),
        DataType::List(f) | DataType::LargeList(f) | DataType::Map(f, _) => {
            has_nanos(f.data_type())
        }
        _ => false,
    }
}

/// The object's metadata and the footer of a clean Parquet file: its last 8 bytes give
/// the length of the metadata before them.
async fn footer(
    store: &Arc<dyn ObjectStore>,
    file: &str,
) -> Result<(object_store::ObjectMeta, Arc<ParquetMetaData>)> {
    let path = Path::from(file);
    let bad = |reason: String| {
        Error::Parquet(parquet::errors::ParquetError::General(format!(
            "{file}: {reason}"
        )))
    };
    let meta = store.head(&path).await?;
    let size = meta.size;
    if size < 12 {
        return Err(bad(format!("{size} bytes is too short for a Parquet file")));
    }
    let tail = store.get_range(&path, size - 8..size).await?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("does not end in PAR1".into()));
    }
    let len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
    if len + 8 > size {
        return Err(bad(format!("footer of {len} bytes in a file of {size}")));
    }
    let bytes = store.get_range(&path, size - 8 - len..size - 8).await?;
    let footer = ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    Ok((meta, Arc::new(footer)))
}

/// A clean file's path relative to the table's root.
fn relative<'a>(topic: &str, file: &'a str) -> &'a str {
    file.strip_prefix(&format!("{}/", table_root(topic)))
        .unwrap_or(file)
}

/// The removes and adds that turn the table's `current` files (relative path to date)
/// into those `m` names, a metadata action when the schema changed, and the watermarks'
/// and the manifest number's `txn` actions.
async fn commit_actions(
    store: &Arc<dyn ObjectStore>,
    m: &Manifest,
    current: &BTreeMap<String, Option<String>>,
    schema: &StructType,
    metadata: &Metadata,
) -> Result<Vec<Action>> {
    let wanted: BTreeMap<&str, NaiveDate> = m
        .dates
        .iter()
        .flat_map(|(d, e)| e.files.iter().map(move |f| (relative(&m.topic, f), *d)))
        .collect();
    let now = Utc::now().timestamp_millis();
    let mut actions = Vec::new();
    let added: Vec<(&str, NaiveDate)> = wanted
        .iter()
        .filter(|(p, _)| !current.contains_key(**p))
        .map(|(p, d)| (*p, *d))
        .collect();
    if !added.is_empty()
        && let Some(schema) = table_schema(store, m, Some(schema)).await?
    {
        // The same table (its id unchanged) with the new schema.
        use deltalake::kernel::MetadataExt;
        let updated = metadata
            .clone()
            .with_schema(&schema)
            .map_err(|e| Error::Delta {
                topic: m.topic.clone(),
                reason: format!("the new schema: {e}"),
            })?;
        actions.push(Action::Metadata(updated));
    }
    for (path, date) in current {
        if wanted.contains_key(path.as_str()) {
            continue;
        }
        actions.push(Action::Remove(Remove {
            path: path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(false),
            partition_values: Some(HashMap::from([(DATE_COLUMN.to_string(), date.clone())])),
            size: None,
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        }));
    }
    // A run that rewrote many dates adds many files: their footers are read a few at a
    // time rather than one round trip after another.
    let footers: Vec<_> = futures::stream::iter(added.iter().map(|(path, _)| {
        let file = format!("{}/{path}", table_root(&m.topic));
        async move { footer(store, &file).await }
    }))
    .buffered(FOOTER_READS)
    .try_collect()
    .await?;
    for ((path, date), (meta, footer)) in added.into_iter().zip(footers) {
        actions.push(Action::Add(Add {
            path: path.to_string(),
            partition_values: HashMap::from([(
                DATE_COLUMN.to_string(),
                Some(date.format("%Y-%m-%d").to_string()),
            )]),
            size: meta.size as i64,
            modification_time: meta.last_modified.timestamp_millis(),
            data_change: true,
            stats: Some(stats(&footer).to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }));
    }
    for (partition, offset) in &m.watermarks {
        actions.push(Action::Txn(Transaction::new(
            partition_app_id(partition),
            *offset,
        )));
    }
    actions.push(Action::Txn(Transaction::new(
        MANIFEST_APP_ID,
        m.number as i64,
    )));
    Ok(actions)
}

/// `commitInfo`: the manifest's number and watermarks, and the rows and checks of each
/// date this commit rewrote.
fn commit_info(m: &Manifest, current: &BTreeMap<String, Option<String>>) -> HashMap<String, Value> {
    let before: BTreeSet<&str> = current.keys().map(String::as_str).collect();
    let dates: BTreeMap<String, Value> = m
        .dates
        .iter()
        .filter(|(_, e)| {
            e.files
                .iter()
                .any(|f| !before.contains(relative(&m.topic, f)))
        })
        .map(|(d, e)| {
            (
                d.format("%Y-%m-%d").to_string(),
                json!({"version": e.version, "rows": e.rows, "checks": e.checks}),
            )
        })
        .collect();
    HashMap::from([(
        "onepipe".to_string(),
        json!({
            "manifest": m.number,
            "schemaId": m.schema_id,
            "watermarks": m.watermarks,
            "dates": dates,
        }),
    )])
}

/// Delta file statistics from a Parquet footer: the row count, and per top-level column of
/// integers its null count and exact bounds (other types give no bounds: a truncated
/// string bound or a timestamp in another unit would make readers skip files wrongly).
fn stats(footer: &ParquetMetaData) -> Value {
    let rows: i64 = footer.row_groups().iter().map(|g| g.num_rows()).sum();
    let schema = footer.file_metadata().schema_descr();
    let mut min = serde_json::Map::new();
    let mut max = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    for (i, column) in schema.columns().iter().enumerate() {
        // Top-level leaves only: a nested column's path has more than one part.
        if column.path().parts().len() != 1 {
            continue;
        }
        let name = column.name().to_string();
        // Plain signed integers only: no date, timestamp, decimal or unsigned meaning.
        let logical_plain = match column.logical_type_ref() {
            None => column.converted_type() == parquet::basic::ConvertedType::NONE,
            Some(parquet::basic::LogicalType::Integer(int)) => int.is_signed,
            Some(_) => false,
        };
        let mut null_count = Some(0u64);
        let mut bounds: Option<(i64, i64)> = None;
        let mut exact = logical_plain;
        for g in footer.row_groups() {
            let Some(s) = g.column(i).statistics() else {
                null_count = None;
                exact = false;
                continue;
            };
            null_count = null_count.zip(s.null_count_opt()).map(|(a, b)| a + b);
            let pair = match s {
                Statistics::Int32(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .map(|(a, b)| (*a as i64, *b as i64)),
                Statistics::Int64(v) => v.min_opt().zip(v.max_opt()).map(|(a, b)| (*a, *b)),
                _ => None,
            };
            if !(s.min_is_exact() && s.max_is_exact()) {
                exact = false;
            }
            match pair {
                Some((a, b)) => {
                    bounds = Some(bounds.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
                }
                None if g.num_rows() > 0 && null_count != Some(g.num_rows() as u64) => {
                    exact = false;
                }
                None => {}
            }
        }
        if let Some(n) = null_count {
            nulls.insert(name.clone(), json!(n));
        }
        if let (true, Some((a, b))) = (exact, bounds) {
            min.insert(name.clone(), json!(a));
            max.insert(name, json!(b));
        }
    }
    json!({
        "numRecords": rows,
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
}

/// A store whose listings come in path order, as Delta readers expect of S3 and as a local
/// folder does not give them (deltalake sorts only listings of `file://` tables, and the
/// table's location here is not one).
#[derive(Debug)]
struct SortedListing(Arc<dyn ObjectStore>);

impl std::fmt::Display for SortedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SortedListing({})", self.0)
    }
}

fn sorted(
    s: futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
    futures::stream::once(async move {
        let mut all: Vec<object_store::ObjectMeta> = s.try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok::<_, object_store::Error>(futures::stream::iter(all.into_iter().map(Ok)))
    })
    .try_flatten()
    .boxed()
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for SortedListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        sorted(self.0.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        sorted(self.0.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        let mut listed = self.0.list_with_delimiter(prefix).await?;
        listed.objects.sort_by(|a, b| a.location.cmp(&b.location));
        listed.common_prefixes.sort();
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.0.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_a_version_a_time_or_a_date() {
        assert_eq!("3".parse::<AsOf>(), Ok(AsOf::Version(3)));
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!("2026-12-01T12:00:00Z".parse::<AsOf>(), Ok(AsOf::Time(t)));
        assert_eq!(
            "2026-12-01T13:00:00+01:00".parse::<AsOf>(),
            Ok(AsOf::Time(t))
        );
        let midnight = t - chrono::Duration::hours(12);
        assert_eq!("2026-12-01".parse::<AsOf>(), Ok(AsOf::Time(midnight)));
        let e = "-1".parse::<AsOf>().unwrap_err();
        assert!(e.contains("0 or more"), "{e}");
        let e = "yesterday".parse::<AsOf>().unwrap_err();
        assert!(e.starts_with("yesterday: expected a version number"), "{e}");
    }
    use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    fn delta_type(dt: DataType) -> std::result::Result<String, String> {
        let schema = Schema::new(vec![Field::new("c", dt, true)]);
        with_date("t", &schema)
            .map(|s| {
                let f = s.fields().next().unwrap();
                serde_json::to_value(f.data_type()).unwrap().to_string()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_clean_types_map_as_the_readme_says() {
        let utc = Some("UTC".into());
        assert_eq!(delta_type(DataType::Int64).unwrap(), "\"long\"");
        assert_eq!(delta_type(DataType::Utf8).unwrap(), "\"string\"");
        assert_eq!(delta_type(DataType::Binary).unwrap(), "\"binary\"");
        assert_eq!(delta_type(DataType::Date32).unwrap(), "\"date\"");
        assert_eq!(delta_type(DataType::Null).unwrap(), "\"void\"");
        assert_eq!(
            delta_type(DataType::Decimal128(20, 4)).unwrap(),
            "\"decimal(20,4)\""
        );
        for unit in [TimeUnit::Millisecond, TimeUnit::Microsecond] {
            assert_eq!(
                delta_type(DataType::Timestamp(unit, utc.clone())).unwrap(),
                "\"timestamp\""
            );
            assert_eq!(
                delta_type(DataType::Timestamp(unit, None)).unwrap(),
                "\"timestamp_ntz\""
            );
        }
        for no_form in [
            DataType::Timestamp(TimeUnit::Nanosecond, utc.clone()),
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Timestamp(TimeUnit::Nanosecond, utc),
                true,
            ))),
            DataType::Time32(TimeUnit::Millisecond),
            DataType::Time64(TimeUnit::Microsecond),
        ] {
            let e = delta_type(no_form.clone()).unwrap_err();
            assert!(e.contains("no Delta form"), "{no_form}: {e}");
        }
        let clash = Schema::new(vec![Field::new(DATE_COLUMN, DataType::Date32, false)]);
        let e = with_date("t", &clash).unwrap_err().to_string();
        assert!(e.contains("partition column"), "{e}");
    }

    #[tokio::test]
    async fn stats_give_integer_bounds_and_no_others() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
            Field::new("d", DataType::Date32, false),
            Field::new("i", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(-5), None, Some(i64::MAX)])),
                Arc::new(StringArray::from(vec!["b", "a", "c"])),
                Arc::new(arrow::array::Date32Array::from(vec![1, 2, 3])),
                Arc::new(Int32Array::from(vec![7, 3, 9])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("f.parquet"), PutPayload::from(out))
            .await
            .unwrap();
        let s = stats(&footer(&store, "f.parquet").await.unwrap().1);
        assert_eq!(s["numRecords"], json!(3));
        assert_eq!(s["minValues"], json!({"n": -5, "i": 3}));
        assert_eq!(s["maxValues"], json!({"n": i64::MAX, "i": 9}));
        assert_eq!(s["nullCount"]["n"], json!(1));
        assert_eq!(s["nullCount"]["s"], json!(0));

        store
            .put(
                &Path::from("short.parquet"),
                PutPayload::from(vec![1u8, 2, 3]),
            )
            .await
            .unwrap();
        let e = footer(&store, "short.parquet")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("short.parquet") && e.contains("too short"),
            "{e}"
        );
    }
}
