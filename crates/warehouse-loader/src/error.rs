//! warehouse-loader's error type.
//!
//! A variant that wraps another error prints that error's message in its own and does
//! not also return it as `source()`, so a chain printer (`{:#}`) shows it once;
//! `transparent` variants are the wrapped error itself.

use arrow::error::ArrowError;
use chrono::NaiveDate;
use parquet::errors::ParquetError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Core(#[from] onepipe_core::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(ParquetError),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error("reading {path}: {error}")]
    ReadFile {
        path: String,
        error: object_store::Error,
    },
    /// A clean file that is not Parquet, or not readable as such.
    #[error("{path}: {error}")]
    BadFile { path: String, error: ParquetError },
    /// Rows of a clean file that could not be read or encoded for the warehouse.
    #[error("{path}: {error}")]
    InFile { path: String, error: Box<Error> },
    /// Rows that cannot be written to the warehouse as they are.
    #[error(transparent)]
    Encode(#[from] onepipe_tables::encode::EncodeError),
    #[error("{0}")]
    Config(String),
    #[error(
        "dataset {0:?} in --datasets is not a topic the registry knows: check the spelling \
         (the allowlist names topics exactly); nothing was loaded"
    )]
    UnknownDataset(String),
    #[error("dataset {dataset}: the schema (id {schema_id}) cannot be mapped to columns: {reason}")]
    Schema {
        dataset: String,
        schema_id: u32,
        reason: String,
    },
    #[error(
        "dataset {dataset}: column {column:?} of table {table} is {existing} but schema id \
         {schema_id} needs {wanted}; the warehouse cannot take a type change, so this dataset \
         is stopped (migrate the column by hand, or load into a fresh schema)"
    )]
    TypeChange {
        dataset: String,
        table: String,
        column: String,
        existing: String,
        wanted: String,
        schema_id: u32,
    },
    #[error("dataset {dataset}, date {date}: {reason}")]
    Load {
        dataset: String,
        date: NaiveDate,
        reason: String,
    },
}

impl Error {
    /// Errors that stop a dataset until an operator acts (a rerun will not help).
    pub fn stops_dataset(&self) -> bool {
        matches!(self, Error::Schema { .. } | Error::TypeChange { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// `From` without `source()`: these variants print the wrapped error's message.
impl From<ParquetError> for Error {
    fn from(e: ParquetError) -> Self {
        Error::Parquet(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}
