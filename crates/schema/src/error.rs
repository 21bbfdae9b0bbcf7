//! The error type of `onepipe-schema`.
//!
//! Errors that wrap another keep it as a plain field and print it after their own
//! context: `Display` alone says everything, and no `source()` is exposed, so a chain
//! printed with anyhow's `{:#}` never repeats a message.

/// A schema that is not valid Avro, or a field path that does not lead to a field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not a valid Avro schema.
    #[error("invalid schema: {0}")]
    InvalidSchema(apache_avro::Error),
    /// The parsed schema cannot be written back as JSON (its identity).
    #[error("the schema cannot be written back as JSON: {0}")]
    Identity(serde_json::Error),
    /// A path steps into a field whose type is not a record.
    #[error("{path:?} is not a record, so it has no field {field:?}")]
    NotARecord { path: String, field: String },
    /// The top-level record has no such field.
    #[error("no field {field:?} in record {record}")]
    NoField { field: String, record: String },
    /// A nested record on the path has no such field.
    #[error("no field {field:?} in {path:?}")]
    NoFieldIn { field: String, path: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
