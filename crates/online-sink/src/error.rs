//! online-sink's error type. A variant that wraps another prints its message in its own.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Encode(String),
    #[error("{0}")]
    TypeChange(Box<TypeChange>),
    #[error("dataset {dataset}: {reason}")]
    Dataset { dataset: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A column whose type a newer schema changes: the dataset stops.
#[derive(Debug, thiserror::Error)]
#[error(
    "dataset {dataset}: column {column:?} of {table} is {existing}, but schema id {schema_id} \
     makes it {wanted}; the dataset stops (change the schema back, or migrate the table)"
)]
pub struct TypeChange {
    pub dataset: String,
    pub table: String,
    pub column: String,
    pub existing: String,
    pub wanted: String,
    pub schema_id: u32,
}
