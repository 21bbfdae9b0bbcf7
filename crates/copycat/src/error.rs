//! copycat's error type.
//!
//! A variant that wraps another error prints that error's message in its own and does
//! not also return it as `source()`, so a chain printer (`{:#}`, anyhow's `Caused by`) shows
//! it once; `transparent` variants are the wrapped error itself.

use rdkafka::error::KafkaError;

/// Everything that can go wrong while archiving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(KafkaError),
    #[error("object store: {0}")]
    Store(object_store::Error),
    #[error("parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(arrow::error::ArrowError),
    #[error(transparent)]
    Core(#[from] onepipe_core::Error),
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error("invalid --topics regex: {0}")]
    Regex(regex::Error),
    /// Archiving cannot go on safely (an upload kept failing, recovery could not read
    /// the archive); the process should exit non-zero and be restarted.
    #[error("{0}")]
    Fatal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// `From` without `source()`: these variants print the wrapped error's message.
macro_rules! from_message {
    ($($source:ty => $variant:ident),* $(,)?) => {
        $(impl From<$source> for Error {
            fn from(e: $source) -> Self {
                Error::$variant(e)
            }
        })*
    };
}

from_message! {
    KafkaError => Kafka,
    object_store::Error => Store,
    parquet::errors::ParquetError => Parquet,
    arrow::error::ArrowError => Arrow,
    regex::Error => Regex,
}
