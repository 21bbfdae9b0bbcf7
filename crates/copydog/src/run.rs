//! One copydog run for one topic: plan against the current manifest, merge the new raw
//! records into the touched dates, write new version folders, commit the next manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::{NaiveDate, Utc};
use object_store::ObjectStore;
use onepipe_archive::blocking;
use onepipe_archive::checkpoint::files_past;
use onepipe_archive::decode::{Reader, Reject, Sink, read_new};
use onepipe_archive::delta;
use onepipe_archive::layout::RawFile;
use onepipe_archive::manifest::{self, Manifest};
use onepipe_client::SchemaRegistry;
use onepipe_core::admin::Metrics;

use crate::date::merge_date;
use crate::error::{Error, Result};
use crate::rejects::RejectParts;
use crate::spill::{Budget, Pending};

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
    /// Most records in one file of rejects; a run holds at most this many (and at most
    /// 64 MiB of them) in memory, writing each full part out.
    pub rejects_per_file: usize,
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
            rejects_per_file: 100_000,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
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
    /// The Delta table afterwards: `Ok` with the manifests this run published (this run's
    /// and any an earlier run committed but did not publish) and the table's version, or
    /// why the table could not be written (the manifests, the archive's truth, are
    /// committed either way; the next run tries again).
    pub delta: std::result::Result<delta::Published, String>,
}

impl Default for RunSummary {
    fn default() -> Self {
        RunSummary {
            topic: String::new(),
            manifest: None,
            raw_files: 0,
            records: 0,
            rejected: 0,
            dates: BTreeMap::new(),
            conflicts: 0,
            delta: Ok(delta::Published::default()),
        }
    }
}

/// Runs copydog once for `topic`: commits at most one manifest, then publishes every
/// manifest the topic's Delta table does not hold yet (see [`delta`]).
pub async fn run_topic(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let mut summary = merge_topic(store.clone(), registry, topic, opts).await?;
    failpoint("before-delta").await;
    summary.delta = delta::publish(store, topic).await.map_err(|e| {
        tracing::warn!(topic, error = %e, "the Delta table was not updated");
        e.to_string()
    });
    Ok(summary)
}

/// The crash tests' hook: with `ONEPIPE_COPYDOG_PAUSE_AT=NAME`, a run that reaches the
/// point `NAME` (`before-manifest`: its files are written, the manifest is not;
/// `before-delta`: the manifest is committed, the Delta commit is not) says so on stderr
/// and waits there for ever, so that a test can SIGKILL it at exactly that point.
async fn failpoint(name: &str) {
    if std::env::var("ONEPIPE_COPYDOG_PAUSE_AT").is_ok_and(|v| v == name) {
        tracing::warn!(
            failpoint = name,
            "paused at failpoint (ONEPIPE_COPYDOG_PAUSE_AT)"
        );
        std::future::pending::<()>().await;
    }
}

/// Merges what is new in raw/ and commits at most one manifest.
async fn merge_topic(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let reader = Arc::new(Reader::for_topic(registry, topic).await?);
    let meta = &reader.meta;
    let reader_id = reader.schema_id;
    for attempt in 1..=opts.attempts {
        let current = manifest::latest(store.as_ref(), topic).await?;
        let plan = plan(store.as_ref(), topic, current.as_ref()).await?;
        // Every row of a view is in the newest schema and column format: when either
        // changed, every date is rewritten (older rows are brought up by `adapt`), new
        // records or not.
        let schema_changed = current
            .as_ref()
            .is_some_and(|m| m.schema_id != reader_id || m.format != manifest::CLEAN_FORMAT);
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
        let sink = RunSink {
            pending: Pending::new(
                Budget::new(opts.memory_limit),
                opts.spill_dir.clone(),
                reader.target.clone(),
                meta,
            ),
            rejects: RejectParts::new(store.clone(), topic, number, opts.rejects_per_file),
        };
        let (decoded, sink) = read_new(
            store.as_ref(),
            registry,
            &reader,
            &plan,
            &watermarks_before,
            sink,
        )
        .await?;
        let RunSink {
            mut pending,
            mut rejects,
        } = sink;
        let rejects = blocking(move || rejects.flush().map(|()| rejects)).await?;
        summary.records = decoded.records;
        summary.rejected = decoded.rejected;
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
            format: manifest::CLEAN_FORMAT,
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
                &reader,
                date,
                previous,
                rows,
                pending.dir(),
                pending.budget(),
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
        // Removing the spill folder (with the last sorted runs in it) is file I/O too.
        blocking(move || {
            drop(pending);
            Ok::<_, Error>(())
        })
        .await?;
        next.rejected.records += rejects.records;
        next.rejected.files.extend(rejects.files);
        failpoint("before-manifest").await;
        if manifest::commit(store.as_ref(), &next).await? {
            summary.manifest = Some(number);
            opts.metrics.set(
                "onepipe_copydog_manifest",
                "Number of the last manifest this run committed.",
                &labels,
                number as f64,
            );
            tracing::info!(
                topic,
                number,
                raw_files = summary.raw_files,
                records = summary.records,
                rejected = summary.rejected,
                "manifest committed"
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

/// Where a run's decoded records go (on blocking threads): rows to the dates held within
/// the memory budget, rejects out to `_rejected/` a part at a time.
struct RunSink {
    pending: Pending,
    rejects: RejectParts,
}

impl Sink for RunSink {
    type Error = Error;

    fn rows(&mut self, date: NaiveDate, batch: RecordBatch) -> Result<()> {
        self.pending.push(date, batch).map_err(Error::spill)
    }

    fn reject(&mut self, reject: Reject) -> Result<()> {
        self.rejects.push(reject)
    }
}

/// The raw files holding offsets past the current watermarks, in partition and offset
/// order. The listing starts at the watermarks, so its cost follows what is new.
async fn plan(
    store: &dyn ObjectStore,
    topic: &str,
    current: Option<&Manifest>,
) -> Result<Vec<RawFile>> {
    let listing = files_past(store, topic, |p| current.map_or(-1, |m| m.watermark(p))).await?;
    if !listing.strange.is_empty() {
        tracing::warn!(topic, count = listing.strange.len(), first = %listing.strange[0], "ignoring objects in raw/ with names that are not raw files");
    }
    for (partition, why) in &listing.full {
        tracing::debug!(
            topic,
            partition,
            why,
            "listed the partition's whole raw/ history"
        );
    }
    tracing::debug!(
        topic,
        keys = listing.keys_listed,
        files = listing.files.len(),
        "planned"
    );
    Ok(listing.files)
}
