use rdkafka::error::KafkaError;

/// Everything that can go wrong while archiving, replaying or checking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Core(#[from] onepipe_core::Error),
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error("raw file {path}: {reason}")]
    BadRawFile { path: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
    #[error("invalid --topics regex: {0}")]
    Regex(#[from] regex::Error),
    #[error("{0}")]
    Config(String),
    /// Archiving cannot go on safely (an upload kept failing, recovery could not read
    /// the archive); the process should exit non-zero and be restarted.
    #[error("{0}")]
    Fatal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
