//! The error type of `onepipe-archive`.

/// Everything that can go wrong reading or writing the archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// An object-store path that is not one of the layout's forms.
    #[error("not a {kind} path {path:?}: {reason}")]
    Layout {
        kind: &'static str,
        path: String,
        reason: String,
    },
    #[error("raw file {path}: {reason}")]
    BadRawFile { path: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
    /// A manifest that cannot be read or written as JSON.
    #[error("manifest {path}: {reason}")]
    BadManifest { path: String, reason: String },
    /// An Avro schema or value that has no column form.
    #[error("topic {topic}: the schema cannot be mapped to columns: {reason}")]
    Schema { topic: String, reason: String },
    /// Records or clean rows that could not be turned into columns of the current schema.
    #[error("{what}: {reason}")]
    Convert { what: String, reason: String },
    /// Rows that could not be merged by the topic's merge strategy.
    #[error("merge: {0}")]
    Merge(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn convert(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Convert {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
