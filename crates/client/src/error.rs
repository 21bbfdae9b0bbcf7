//! The client library's one error type.

use crate::json::FieldError;

/// Everything that can go wrong between a record and a topic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry knows no such topic.
    #[error("unknown topic {0:?}: it is not registered (create it with `onepipe topic create`)")]
    UnknownTopic(String),
    /// A record names a schema id the registry does not know.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// A pinned schema version that does not exist.
    #[error("subject {subject:?} has no version {version}")]
    UnknownVersion { subject: String, version: i64 },
    /// The record does not fit the topic's schema; every problem is listed.
    #[error("the record does not fit the schema: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The value is not in the wire format (magic byte, header).
    #[error(transparent)]
    Wire(#[from] onepipe_core::wire::WireError),
    /// The Avro datum cannot be read with its writer schema or resolved into the reader's.
    #[error("cannot decode the record written with schema id {schema_id}: {message}")]
    Decode { schema_id: u32, message: String },
    /// The registry refused or failed a call.
    #[error("registry: {0}")]
    Registry(String),
    /// A schema or metadata from the registry cannot be used.
    #[error("the registry returned {what} that cannot be used: {message}")]
    BadRegistryData { what: String, message: String },
    /// The connection to the registry could not be made.
    #[error("cannot reach the registry at {url}: {message}")]
    Connect { url: String, message: String },
    /// Kafka refused or failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

fn join(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// The client library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The field errors when the record did not fit its schema.
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            Error::Invalid(errors) => Some(errors),
            _ => None,
        }
    }
}
