//! copydog's error type.
//!
//! Errors of other crates are kept as plain fields and printed after copydog's context:
//! `Display` alone says everything, and no `source()` is exposed, so a chain printed
//! with anyhow's `{:#}` never repeats a message (many of those errors, like
//! `object_store`'s, already print their own source). Errors of the other onepipe
//! crates, which follow the same rule, pass through as they are (`transparent`).

use std::path::PathBuf;

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error("{0}")]
    ObjectStore(object_store::Error),
    #[error("parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(ArrowError),
    /// Rows (of a file, a date) that could not be brought into the current schema.
    #[error("{what}: {reason}")]
    Convert { what: String, reason: Box<Error> },
    /// The rows of a date that could not be merged or checked.
    #[error("date {date}: {reason}")]
    Merge { date: NaiveDate, reason: Box<Error> },
    #[error(
        "topic {topic}: other runs committed first {attempts} times in a row; is another copydog \
         running on this topic without end?"
    )]
    Conflict { topic: String, attempts: u32 },

    // Bringing older clean rows up to the newest schema.
    /// A field whose type changed in a way Arrow cannot cast.
    #[error("field {field:?} changed from {from} to {to}, which cannot be converted: {error}")]
    TypeChange {
        field: String,
        from: DataType,
        to: DataType,
        error: ArrowError,
    },
    /// A field added by the newest schema that older rows cannot be given.
    #[error("field {0:?} is new, required and has no default")]
    NoDefault(String),

    // Check values.
    /// A check that cannot be computed.
    #[error("{check}: {reason}")]
    Check { check: String, reason: Box<Error> },
    #[error("cannot sum a {0} column")]
    NotSummable(DataType),
    #[error("{0}: internal error, wrong accumulator")]
    WrongAccumulator(String),

    // Spilling to local disk.
    /// What went wrong while rows were moved to local disk.
    #[error("spilling to local disk: {0}")]
    Spill(Box<Error>),
    #[error("cannot create a spill folder in {path}: {error}")]
    SpillDir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A spill file that cannot be created, written, read or removed.
    #[error("spill file {path}: {error}")]
    SpillIo {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A spill file whose Arrow IPC stream cannot be written or read.
    #[error("spill file {path}: {error}")]
    SpillArrow { path: PathBuf, error: ArrowError },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::ObjectStore(e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::Parquet(e)
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::Arrow(e)
    }
}

impl Error {
    pub(crate) fn convert(what: impl Into<String>, reason: impl Into<Error>) -> Self {
        Error::Convert {
            what: what.into(),
            reason: Box::new(reason.into()),
        }
    }

    pub(crate) fn merge<E: Into<Error>>(date: NaiveDate) -> impl FnOnce(E) -> Error {
        move |e| Error::Merge {
            date,
            reason: Box::new(e.into()),
        }
    }

    pub(crate) fn spill(e: Error) -> Self {
        Error::Spill(Box::new(e))
    }
}
