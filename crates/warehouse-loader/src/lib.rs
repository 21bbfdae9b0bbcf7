//! warehouse-loader: loads clean datasets into one warehouse (a data mart), date by date.
//!
//! For each dataset on the allowlist it reads the current manifest, creates or evolves
//! the table from the manifest's Avro schema (`onepipe_tables::types`), and loads every date whose
//! version differs from what `_onepipe_loads` records, each date in one transaction
//! ([`warehouse`]). A dataset not on the allowlist is never read, created or loaded.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! use onepipe_warehouse_loader::{Config, Loader};
//!
//! let config = Config::try_parse_from([
//!     "warehouse-loader", "--object-store", "s3://bucket/onepipe",
//!     "--database", "postgres://u:p@db/mart", "--datasets", "orders,page_views", "--once",
//! ])?;
//! let loader = Loader::connect(&config, Default::default()).await?;
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! let report = loader.cycle(&stopped).await;
//! assert!(report.ok());
//! # Ok(()) }
//! ```

/// Moved to `onepipe_tables::encode` (online-sink writes rows the same way).
pub use onepipe_tables::encode;
pub mod error;
pub mod sql;
pub mod warehouse;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::StreamExt;
use object_store::ObjectStore;
use onepipe_client::SchemaRegistry;
use onepipe_client::args::RegistryArgs;
use onepipe_core::admin::Metrics;
use onepipe_core::units::parse_duration;
use tokio::sync::watch;

pub use error::{Error, Result};
use sql::{LOADS_TABLE, Table};
use warehouse::{DateLoad, Outcome, Warehouse};

/// Metric names.
pub mod metrics {
    pub const ROWS_LOADED: &str = "onepipe_warehouse_rows_loaded_total";
    pub const DATES_LOADED: &str = "onepipe_warehouse_dates_loaded_total";
    pub const LOAD_FAILURES: &str = "onepipe_warehouse_load_failures_total";
    pub const MANIFESTS_BEHIND: &str = "onepipe_warehouse_manifests_behind";
    pub const DATES_PENDING: &str = "onepipe_warehouse_dates_pending";
    pub const DATASET_STOPPED: &str = "onepipe_warehouse_dataset_stopped";
}

/// warehouse-loader: loads the clean archive's datasets into one warehouse (a data
/// mart), each date partition in one transaction, only the datasets on --datasets.
///
/// Exit codes: 0 everything loaded (or stopped by SIGTERM), 1 some dataset or date
/// failed (with --once), 2 bad configuration or no connection.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "warehouse-loader", version)]
pub struct Config {
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Where clean/ lives: file:///path, s3://bucket/prefix.
    #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
    pub object_store: String,

    /// The warehouse: postgres://…, sqlite://PATH, or redshift://user:pw@host:5439/db.
    #[arg(
        long,
        env = "ONEPIPE_DATABASE",
        default_value = "sqlite://.onepipe/warehouse.db",
        hide_env_values = true
    )]
    pub database: String,

    /// The allowlist: the only datasets (topics, exactly spelt) this warehouse holds.
    #[arg(long, env = "ONEPIPE_DATASETS", value_delimiter = ',', required = true)]
    pub datasets: Vec<String>,

    /// Schema the tables go in (PostgreSQL, Redshift; default public). SQLite has none.
    #[arg(long, env = "ONEPIPE_SCHEMA")]
    pub schema: Option<String>,

    /// Load everything pending, then exit (0 when all loaded).
    #[arg(long, env = "ONEPIPE_ONCE")]
    pub once: bool,

    /// How often manifests are read again (s, m, h suffixes).
    #[arg(long, env = "ONEPIPE_POLL_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Dates loaded at once, across datasets (SQLite: always 1).
    #[arg(long, env = "ONEPIPE_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,

    /// IAM role Redshift's COPY reads S3 with (redshift:// warehouses only).
    #[arg(long, env = "ONEPIPE_REDSHIFT_IAM_ROLE")]
    pub redshift_iam_role: Option<String>,

    /// /healthz, /readyz (the database answers), /metrics.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8098")]
    pub admin_listen: String,
}

/// One allowed dataset and its table.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub topic: String,
    pub table: Table,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// (dataset, date, rows) of every date loaded.
    pub loaded: Vec<(String, NaiveDate, u64)>,
    /// Dates still not at the manifest's version (failed, or not started: SIGTERM).
    pub pending: usize,
    /// (dataset, error) of every failure, stopped datasets included.
    pub failures: Vec<(String, String)>,
}

impl Report {
    /// Everything the manifests name is loaded.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.pending == 0
    }
}

/// A loader for one warehouse.
pub struct Loader {
    registry: SchemaRegistry,
    store: Arc<dyn ObjectStore>,
    warehouse: Warehouse,
    datasets: Vec<Dataset>,
    concurrency: usize,
    metrics: Metrics,
    /// Datasets stopped until restart, with why.
    stopped: Mutex<BTreeMap<String, String>>,
    /// Datasets the last pass could not plan (object store or registry failing), with
    /// why: `/readyz` names them.
    unplanned: Mutex<BTreeMap<String, String>>,
}

impl Loader {
    /// Checks the allowlist against the registry, connects, creates the schema and the
    /// loads table.
    pub async fn connect(config: &Config, metrics: Metrics) -> Result<Loader> {
        let mut topics: Vec<String> = Vec::new();
        for d in &config.datasets {
            let d = d.trim();
            if d.is_empty() {
                return Err(Error::Config("--datasets has an empty name".to_string()));
            }
            if !topics.iter().any(|t| t == d) {
                topics.push(d.to_string());
            }
        }
        if topics.is_empty() {
            return Err(Error::Config(
                "--datasets is empty: nothing may be loaded".to_string(),
            ));
        }
        let registry = config.registry.connect(true)?;
        for t in &topics {
            match registry.topic(t).await {
                Ok(_) => {}
                Err(onepipe_client::Error::UnknownTopic(_)) => {
                    return Err(Error::UnknownDataset(t.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let store = onepipe_core::store::open(&config.object_store)?;
        let warehouse = Warehouse::connect(
            &config.database,
            config.schema.as_deref(),
            config.redshift_iam_role.as_deref(),
            &config.object_store,
            config.concurrency.max(1) as u32,
        )
        .await?;
        let mut datasets: Vec<Dataset> = Vec::new();
        for t in topics {
            let name = onepipe_tables::names::sql_name(&t);
            if name == LOADS_TABLE {
                return Err(Error::Config(format!(
                    "dataset {t:?} would be table {name:?}, which the loader keeps its records in"
                )));
            }
            if let Some(other) = datasets.iter().find(|d| d.table.name == name) {
                return Err(Error::Config(format!(
                    "datasets {:?} and {t:?} would both be table {name:?}; load them into \
                     different warehouses or schemas",
                    other.topic
                )));
            }
            datasets.push(Dataset {
                table: warehouse.table(&name),
                topic: t,
            });
        }
        warehouse.prepare().await?;
        let concurrency = config.concurrency.clamp(1, warehouse.max_concurrency());
        Ok(Loader {
            registry,
            store,
            warehouse,
            datasets,
            concurrency,
            metrics,
            stopped: Mutex::new(BTreeMap::new()),
            unplanned: Mutex::new(BTreeMap::new()),
        })
    }

    /// Whether the loader can do its work now: the warehouse answers and the last pass
    /// could plan every dataset (read its manifest, reach the registry). `Err` names what
    /// fails. Datasets stopped for an operator are not counted (a metric shows them).
    pub async fn ready(&self) -> std::result::Result<(), String> {
        self.warehouse
            .ping()
            .await
            .map_err(|e| format!("the warehouse does not answer: {e}"))?;
        let unplanned = self.unplanned.lock().unwrap_or_else(|p| p.into_inner());
        if unplanned.is_empty() {
            return Ok(());
        }
        let why: Vec<String> = unplanned.iter().map(|(d, e)| format!("{d}: {e}")).collect();
        Err(format!(
            "the last pass could not plan {}: {}",
            unplanned.len(),
            why.join("; ")
        ))
    }

    pub fn datasets(&self) -> &[Dataset] {
        &self.datasets
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// Plans one dataset: the table is created or evolved, and the dates to load listed.
    async fn plan(&self, dataset: &Dataset) -> Result<Vec<DateLoad>> {
        let topic = &dataset.topic;
        // What the Delta table's current version holds, as Spark and DuckDB read it; a
        // manifest copydog has committed and not yet published waits for its next run.
        let Some(m) = onepipe_archive::delta::current_manifest(self.store.clone(), topic).await?
        else {
            tracing::debug!(dataset = %topic, "no manifest yet: nothing to load");
            self.gauge(metrics::MANIFESTS_BEHIND, topic, 0.0);
            self.gauge(metrics::DATES_PENDING, topic, 0.0);
            return Ok(Vec::new());
        };
        if m.topic != *topic {
            return Err(Error::Config(format!(
                "manifest {} under clean/{topic}/ is for topic {:?}; refusing to load it",
                m.number, m.topic
            )));
        }
        let schema = self.registry.schema_by_id(m.schema_id).await?;
        let columns = onepipe_tables::types::columns(&schema).map_err(|e| Error::Schema {
            dataset: topic.clone(),
            schema_id: m.schema_id,
            reason: e.to_string(),
        })?;
        self.warehouse
            .ensure_table(topic, m.schema_id, &dataset.table, &columns)
            .await?;
        let loaded = self.warehouse.loaded(&dataset.table, topic).await?;
        let columns = Arc::new(columns);
        let mut jobs = Vec::new();
        for (date, entry) in &m.dates {
            if loaded.get(date).map(|l| l.version) == Some(entry.version) {
                continue;
            }
            jobs.push(DateLoad {
                dataset: topic.clone(),
                table: dataset.table.clone(),
                columns: columns.clone(),
                date: *date,
                manifest: m.number,
                schema_id: m.schema_id,
                version: entry.version,
                rows: entry.rows,
                files: entry.files.clone(),
            });
        }
        // The manifest the warehouse last caught up with is the newest one it loaded from.
        let behind = if jobs.is_empty() {
            0
        } else {
            let last = loaded.values().map(|l| l.manifest).max().unwrap_or(0);
            m.number.saturating_sub(last)
        };
        self.gauge(metrics::MANIFESTS_BEHIND, topic, behind as f64);
        self.gauge(metrics::DATES_PENDING, topic, jobs.len() as f64);
        if !jobs.is_empty() {
            tracing::info!(dataset = %topic, manifest = m.number, dates = jobs.len(),
                manifests_behind = behind, "dates to load");
        }
        Ok(jobs)
    }

    fn gauge(&self, name: &'static str, dataset: &str, value: f64) {
        let help = match name {
            metrics::MANIFESTS_BEHIND => {
                "manifests committed since the newest one the warehouse loaded from, 0 when caught up"
            }
            metrics::DATES_PENDING => "dates whose version the warehouse does not hold yet",
            _ => "1 when the dataset is stopped by an error an operator must fix",
        };
        self.metrics.set(name, help, &[("dataset", dataset)], value);
    }

    /// One pass: plans every allowed dataset, then loads the pending dates, at most
    /// `concurrency` at once. After `stop` turns true no new date starts; dates in
    /// flight finish (or roll back if the process dies).
    pub async fn cycle(&self, stop: &watch::Receiver<bool>) -> Report {
        let mut report = Report::default();
        let mut jobs = Vec::new();
        let mut unplanned = BTreeMap::new();
        for dataset in &self.datasets {
            let topic = &dataset.topic;
            if let Some(why) = self.stopped_reason(topic) {
                report.failures.push((topic.clone(), why));
                continue;
            }
            match self.plan(dataset).await {
                Ok(j) => jobs.extend(j),
                Err(e) if e.stops_dataset() => {
                    tracing::error!(dataset = %topic, error = %e, "dataset stopped");
                    self.gauge(metrics::DATASET_STOPPED, topic, 1.0);
                    self.stopped_insert(topic, e.to_string());
                    report.failures.push((topic.clone(), e.to_string()));
                }
                Err(e) => {
                    tracing::warn!(dataset = %topic, error = %e, "planning failed, retrying next pass");
                    report.failures.push((topic.clone(), e.to_string()));
                    unplanned.insert(topic.clone(), e.to_string());
                }
            }
        }
        *self.unplanned.lock().unwrap_or_else(|p| p.into_inner()) = unplanned;
        let total = jobs.len();
        let mut results = futures::stream::iter(jobs)
            .map(|job| async move {
                if *stop.borrow() {
                    return (job, None);
                }
                let started = Instant::now();
                tracing::info!(dataset = %job.dataset, date = %job.date, version = job.version,
                    rows = job.rows, files = job.files.len(), "loading date");
                let result = self.warehouse.load_date(&self.store, &job).await;
                if let Ok(Outcome::Loaded(rows)) = &result {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(dataset = %job.dataset, date = %job.date, version = job.version,
                        rows, seconds = format!("{secs:.2}"),
                        rows_per_second = (*rows as f64 / secs.max(1e-6)) as u64, "date loaded");
                }
                (job, Some(result))
            })
            .buffer_unordered(self.concurrency);
        let mut unfinished: BTreeSet<String> = BTreeSet::new();
        while let Some((job, result)) = results.next().await {
            let topic = job.dataset.as_str();
            match result {
                None => {
                    unfinished.insert(topic.to_string());
                    report.pending += 1;
                }
                Some(Ok(Outcome::AlreadyThere)) => {
                    tracing::info!(dataset = topic, date = %job.date, version = job.version,
                        "already loaded by another loader");
                }
                Some(Ok(Outcome::Loaded(rows))) => {
                    self.metrics.inc(
                        metrics::ROWS_LOADED,
                        "rows loaded into the warehouse",
                        &[("dataset", topic)],
                        rows,
                    );
                    self.metrics.inc(
                        metrics::DATES_LOADED,
                        "date partitions loaded (one transaction each)",
                        &[("dataset", topic)],
                        1,
                    );
                    report.loaded.push((topic.to_string(), job.date, rows));
                }
                Some(Err(e)) => {
                    tracing::error!(dataset = topic, date = %job.date, error = %e,
                        "date not loaded (rolled back), retrying next pass");
                    self.metrics.inc(
                        metrics::LOAD_FAILURES,
                        "date loads that failed and were rolled back",
                        &[("dataset", topic)],
                        1,
                    );
                    unfinished.insert(topic.to_string());
                    report.pending += 1;
                    report.failures.push((topic.to_string(), e.to_string()));
                }
            }
        }
        for dataset in &self.datasets {
            let topic = &dataset.topic;
            if self.stopped_reason(topic).is_none() {
                self.gauge(metrics::DATASET_STOPPED, topic, 0.0);
            }
            let planned = !report.failures.iter().any(|(d, _)| d == topic);
            if planned && !unfinished.contains(topic) {
                self.gauge(metrics::DATES_PENDING, topic, 0.0);
                self.gauge(metrics::MANIFESTS_BEHIND, topic, 0.0);
            }
        }
        if total > 0 {
            tracing::info!(
                dates = total,
                loaded = report.loaded.len(),
                pending = report.pending,
                failures = report.failures.len(),
                "pass done"
            );
        }
        report
    }

    fn stopped_reason(&self, topic: &str) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
    }

    fn stopped_insert(&self, topic: &str, why: String) {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), why);
    }
}

/// Runs passes until `stop` (or, with --once, one pass). `Ok(true)` when everything
/// was loaded or the loader was asked to stop; `Ok(false)` when --once left failures.
pub async fn run(loader: &Loader, config: &Config, mut stop: watch::Receiver<bool>) -> bool {
    loop {
        let report = loader.cycle(&stop).await;
        if *stop.borrow() {
            return true;
        }
        if config.once {
            for (dataset, e) in &report.failures {
                tracing::error!(dataset = %dataset, error = %e, "not loaded");
            }
            return report.ok();
        }
        tokio::select! {
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_and_defaults() {
        let c = Config::try_parse_from([
            "warehouse-loader",
            "--object-store",
            "memory://",
            "--datasets",
            "a.b,C-d",
            "--poll-interval",
            "5m",
        ])
        .unwrap();
        assert_eq!(c.datasets, ["a.b", "C-d"]);
        assert_eq!(c.poll_interval, Duration::from_secs(300));
        assert_eq!(c.database, "sqlite://.onepipe/warehouse.db");
        assert!(!c.once);
        assert!(parse_duration("3x").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        // The allowlist is required: no flag, no loading.
        assert!(
            Config::try_parse_from(["warehouse-loader", "--object-store", "memory://"]).is_err()
        );
    }
}
