//! online-sink: every allowed dataset upserted from Kafka into one table per topic, one
//! row per unique key, within seconds of the record being produced.
//!
//! - [`batch`]: records decoded as copydog decodes them, one version per key, tombstones.
//! - [`sql`]: the statements (table, upsert by rank, tombstone delete, offsets).
//! - [`db`]: PostgreSQL and SQLite, one transaction per batch of one partition.
//! - [`sink`]: the consumer group, assignment from the stored offsets, dead letters.
//!
//! The merge rule is applied in the upsert itself: each row carries its rank
//! (`onepipe_archive::rank`), and a stored row is replaced only by a higher one. So
//! replays, retries and out-of-order versions never move a row backwards, and the table
//! holds, for every key, the merge winner over all its versions.

pub mod batch;
pub mod db;
pub mod error;
pub mod sink;
pub mod sql;

use std::time::Duration;

use onepipe_client::args::{KafkaOptions, RegistryArgs};
use onepipe_core::units::parse_duration;

pub use error::{Error, Result};

/// Metric names.
pub mod metrics {
    pub const RECORDS: &str = "onepipe_online_records_total";
    pub const RECORDS_HELP: &str =
        "Kafka records consumed and applied (or sent to the dead-letter topic)";
    pub const ROWS_CHANGED: &str = "onepipe_online_rows_changed_total";
    pub const ROWS_CHANGED_HELP: &str =
        "Rows inserted or updated (a version that lost to the stored row does not count)";
    pub const DELETES: &str = "onepipe_online_rows_deleted_total";
    pub const DELETES_HELP: &str = "Rows deleted by tombstones";
    pub const DEAD_LETTERS: &str = "onepipe_online_dead_letters_total";
    pub const DEAD_LETTERS_HELP: &str = "Records sent to {topic}.dlq";
    pub const LAG_RECORDS: &str = "onepipe_online_lag_records";
    pub const LAG_RECORDS_HELP: &str = "Records in Kafka past the last applied one, per partition";
    pub const LAG_SECONDS: &str = "onepipe_online_lag_seconds";
    pub const LAG_SECONDS_HELP: &str =
        "Age of the last applied record while records wait, per partition (0 when caught up)";
    pub const OFFSET_CONFLICTS: &str = "onepipe_online_offset_conflicts_total";
    pub const OFFSET_CONFLICTS_HELP: &str =
        "Batches not applied because another sink had moved the partition's stored offset";
    pub const DATASET_STOPPED: &str = "onepipe_online_dataset_stopped";
    pub const DATASET_STOPPED_HELP: &str = "1 while a dataset is stopped (a column type changed)";
    pub const BATCHES: &str = "onepipe_online_batches_total";
    pub const BATCHES_HELP: &str = "Transactions committed";
}

/// online-sink: a Kafka consumer group that upserts each allowed dataset into a table of
/// one row per unique key, by the topic's merge rule, within seconds.
///
/// Exactly-once effect: the consumed offsets are stored in the same transaction as the
/// rows (table `_onepipe_offsets`), and assigned partitions start there, not at Kafka's
/// committed offsets. Bad records go to `{topic}.dlq` with the reason in the
/// `onepipe.reason` header.
///
/// Exit codes: 0 stopped by SIGTERM, 1 a failure it could not get past (the database or
/// Kafka gone for longer than its retries), 2 bad configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "online-sink", version)]
pub struct Config {
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Kafka bootstrap servers.
    #[arg(long, env = "ONEPIPE_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: String,

    #[command(flatten)]
    pub kafka: KafkaOptions,

    /// The database: postgres://… or sqlite://PATH.
    #[arg(
        long,
        env = "ONEPIPE_DATABASE",
        default_value = "sqlite://.onepipe/online.db",
        hide_env_values = true
    )]
    pub database: String,

    /// The allowlist: the only datasets (topics, exactly spelt) this sink reads and holds.
    #[arg(long, env = "ONEPIPE_DATASETS", value_delimiter = ',', required = true)]
    pub datasets: Vec<String>,

    /// Schema the tables go in (PostgreSQL; default public). SQLite has none.
    #[arg(long, env = "ONEPIPE_SCHEMA")]
    pub schema: Option<String>,

    /// Consumer group; replicas in one group share the partitions.
    #[arg(long, env = "ONEPIPE_GROUP_ID", default_value = "onepipe-online-sink")]
    pub group_id: String,

    /// Records a batch holds at most before it is applied (across partitions).
    #[arg(long, env = "ONEPIPE_BATCH_MAX_RECORDS", default_value_t = 5000)]
    pub batch_max_records: usize,

    /// The longest a record waits in a batch before the batch is applied.
    #[arg(long, env = "ONEPIPE_BATCH_MAX_WAIT", default_value = "200ms", value_parser = parse_duration)]
    pub batch_max_wait: Duration,

    /// /healthz, /readyz (database and registry answer, no dataset stopped), /metrics.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8095")]
    pub admin_listen: String,
}
