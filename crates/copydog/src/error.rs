//! copydog's error type.

use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("topic {0}: the schema cannot be mapped to columns: {1}")]
    Schema(String, String),
    #[error("{0}: {1}")]
    Convert(String, String),
    #[error("date {0}: {1}")]
    Merge(NaiveDate, String),
    #[error(
        "topic {topic}: other runs committed first {attempts} times in a row; is another copydog \
         running on this topic without end?"
    )]
    Conflict { topic: String, attempts: u32 },
    #[error("{0}")]
    Usage(String),
    #[error("spilling to local disk: {0}")]
    Spill(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
