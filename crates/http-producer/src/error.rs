//! http-producer's error type: what keeps it from starting or from being ready.
//!
//! A variant that wraps another error prints that error's message in its own and does
//! not also return it as `source()`, so a chain printer (`{:#}`) shows it once;
//! `transparent` variants are the wrapped error itself.

/// Everything that can keep the HTTP producer from starting or from being ready.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] onepipe_client::Error),
    #[error("--kafka-option {key}: this setting is fixed by http-producer")]
    FixedKafkaOption { key: String },
    #[error("reading api keys {path}: {error}")]
    ReadApiKeys { path: String, error: std::io::Error },
    /// A keys file that is not valid (see [`crate::auth`]).
    #[error("api keys {path}: {error}")]
    ApiKeysFile { path: String, error: Box<Error> },
    /// Keys that are not a JSON array of keys.
    #[error("{0}")]
    ApiKeysJson(serde_json::Error),
    #[error("entry {entry} ({name:?}): the key is shorter than 16 characters")]
    ShortKey { entry: usize, name: String },
    #[error("entry {entry} ({name:?}): the key is used twice")]
    DuplicateKey { entry: usize, name: String },
    #[error(
        "entry {entry} ({name:?}): topic pattern {pattern:?} must be a name or a prefix ending in *"
    )]
    TopicPattern {
        entry: usize,
        name: String,
        pattern: String,
    },
    /// The registry does not answer (readiness).
    #[error("registry: {0}")]
    RegistryDown(onepipe_client::Error),
    /// Kafka gives no metadata (readiness).
    #[error("kafka: {0}")]
    KafkaDown(rdkafka::error::KafkaError),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
