//! The verifier's error type.
//!
//! A variant that wraps another error prints that error's message in its own and does
//! not also return it as `source()`, so a chain printer (`{:#}`) shows it once;
//! `transparent` variants are the wrapped error itself.

use arrow::datatypes::DataType;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Everything that can keep a dataset or a store from being checked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A blocking task (Kafka calls) panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error("{topic}: no manifest yet (copydog has not run)")]
    NoManifest { topic: String },
    /// The registry could not give the topic.
    #[error("{topic}: {error}")]
    Topic {
        topic: String,
        error: onepipe_client::Error,
    },
    /// The topic's schema has no column form (the archive's column mapping says why).
    #[error("{reason}")]
    Schema { topic: String, reason: String },
    /// A column the checks need is not in the rows (`reason` names the path).
    #[error("{reason}")]
    Column { path: String, reason: String },
    #[error("cannot sum a {data_type} column")]
    CannotSum { data_type: DataType },
    /// A sum of a decimal(38, s) column that leaves the range of a 128-bit integer.
    #[error("the sum is outside the range of a 128-bit integer; it cannot be checked exactly")]
    SumOverflow,
    #[error("listing the raw files of {topic}: {error}")]
    ListRaw {
        topic: String,
        error: onepipe_archive::Error,
    },
    /// Records read from Kafka that could not be turned into columns.
    #[error("{topic}: records read from Kafka: {reason}")]
    KafkaRecords { topic: String, reason: String },
    /// A Kafka call failed; `what` says which, starting with `kafka`.
    #[error("{what}: {error}")]
    Kafka { what: String, error: KafkaError },
    /// Kafka answered the metadata request of `topic` with an error.
    #[error("kafka metadata of {topic}: {code}")]
    KafkaTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(
        "kafka returned nothing for {secs}s reading {topic}/{partition} at offset {offset} \
         (hole up to {last})"
    )]
    KafkaIdle {
        topic: String,
        partition: i32,
        offset: i64,
        last: i64,
        secs: u64,
    },
    #[error("warehouse url {url}: {error}")]
    WarehouseUrl { url: String, error: sqlx::Error },
    #[error("cannot open the warehouse {url}: {error}")]
    WarehouseOpen { url: String, error: sqlx::Error },
    /// The URL is not printed: it may hold a password.
    #[error("cannot connect to the warehouse: {error}")]
    WarehouseConnect { error: sqlx::Error },
    /// A query on a warehouse table failed, or its answer has unexpected types.
    #[error("{table}: {error}")]
    Sql { table: String, error: sqlx::Error },
    #[error("unique key {key:?} is not a top-level column; only those can be checked by SQL")]
    KeyNotTopLevel { key: String },
    #[error("field {field:?} is not a top-level column of {table}")]
    FieldNotTopLevel { field: String, table: String },
    /// Key sets are fetched from SQLite warehouses only.
    #[error("keys() is for SQLite warehouses")]
    NotSqlite,
    #[error("checksum {text:?}: {error}")]
    Checksum {
        text: String,
        error: std::num::ParseIntError,
    },
    /// The admin port (`verifier serve`) could not be bound or failed.
    #[error("binding {addr}: {error}")]
    Bind { addr: String, error: std::io::Error },
    #[error(transparent)]
    Admin(std::io::Error),
    #[error("local spill file {path}: {error}")]
    Spill { path: String, error: std::io::Error },
    #[error("raw file {path}: {reason}")]
    Raw { path: String, reason: String },
    #[error("decoded raw rows of {date}: {reason}")]
    Decode { date: String, reason: String },
    #[error("{what}: {error}")]
    DataFusion {
        what: String,
        error: Box<datafusion::error::DataFusionError>,
    },
    #[error("verdicts {path}: {reason}")]
    Verdicts { path: String, reason: String },
    #[error("clean file {path}: {reason}")]
    Clean { path: String, reason: String },
    /// An online table cannot be checked (`reason` says why).
    #[error("{reason}")]
    Online { reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a Kafka error with what was being done (`kafka metadata of t`, ...).
    pub(crate) fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
        let what = what.into();
        move |error| Error::Kafka { what, error }
    }

    /// Wraps a DataFusion error with what was being done.
    pub(crate) fn datafusion(
        what: impl Into<String>,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> Error {
        let what = what.into();
        move |error| Error::DataFusion {
            what,
            error: Box::new(error),
        }
    }

    /// Wraps a database error with the table it was about.
    pub(crate) fn sql(table: &str) -> impl Fn(sqlx::Error) -> Error + '_ {
        move |error| Error::Sql {
            table: table.to_string(),
            error,
        }
    }
}
