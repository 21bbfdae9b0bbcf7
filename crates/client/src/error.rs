//! The client library's one error type.
//!
//! Errors of other crates are kept as plain fields and printed after this crate's
//! context: `Display` alone says everything, and no `source()` is exposed, so a chain
//! printed with anyhow's `{:#}` never repeats a message (librdkafka's errors, for one,
//! already print their error code).

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
    #[error("cannot decode the record written with schema id {schema_id}: {reason}")]
    Decode { schema_id: u32, reason: Box<Error> },
    /// A writer schema that cannot be resolved into the reader schema.
    #[error("the schemas cannot be used together: {0}")]
    IncompatibleSchemas(apache_avro::Error),
    /// A datum that needed more bytes than it has.
    #[error("the datum is truncated: its {len} bytes end inside a value")]
    TruncatedDatum { len: usize },
    /// A datum that cannot be read with its writer schema.
    #[error("the datum ({len} bytes) does not match the writer schema: {error}")]
    BadDatum {
        len: usize,
        error: apache_avro::Error,
    },
    /// A datum followed by bytes that belong to no value.
    #[error("{stray} stray bytes after the datum ({read} of {len} bytes read)")]
    StrayBytes {
        stray: usize,
        read: usize,
        len: usize,
    },
    /// A schema that names a type it does not define.
    #[error("the schema refers to the unknown type {0}")]
    UnknownType(String),
    /// A field path that steps into a union branch the schema does not have.
    #[error("{path}: the union branch {index} does not exist")]
    NoUnionBranch { path: String, index: u32 },
    /// A field path that steps into a value that is not a record.
    #[error("{path}: {field:?} is not inside a record")]
    NotInRecord { path: String, field: String },
    /// A field path naming a field the record schema does not have.
    #[error("{path}: the record has no field {field:?}")]
    NoSchemaField { path: String, field: String },
    /// A field path naming a field the record value does not have.
    #[error("{path}: the value has no field {field:?}")]
    NoValueField { path: String, field: String },
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
    Kafka(rdkafka::error::KafkaError),
}

impl From<rdkafka::error::KafkaError> for Error {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Error::Kafka(e)
    }
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
