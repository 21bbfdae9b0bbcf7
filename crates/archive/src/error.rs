//! The error type of `onepipe-archive`.
//!
//! Errors of other crates are kept as plain fields and printed after this crate's
//! context: `Display` alone says everything, and no `source()` is exposed, so a chain
//! printed with anyhow's `{:#}` never repeats a message (many of those errors, like
//! `object_store`'s, already print their own source). Errors of the other onepipe
//! crates, which follow the same rule, pass through as they are (`transparent`).

use std::sync::Arc;

use arrow::datatypes::DataType;
use chrono::NaiveDate;

/// Everything that can go wrong reading or writing the archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// A Kafka value that is not in the wire format.
    #[error(transparent)]
    Wire(#[from] onepipe_core::wire::WireError),
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
    /// The topic's Delta Lake table could not be read or written.
    #[error("delta table of {topic}: {reason}")]
    Delta { topic: String, reason: String },
    /// An Avro schema that has no column form.
    #[error("topic {topic}: the schema cannot be mapped to columns: {reason}")]
    Schema { topic: String, reason: Box<Error> },
    /// Records or clean rows (of a file, a date) that could not be turned into columns of
    /// the current schema.
    #[error("{what}: {reason}")]
    Convert { what: String, reason: Box<Error> },
    /// Rows of a date that could not be merged by the topic's merge strategy.
    #[error("merge: date {date}: {reason}")]
    Merge { date: NaiveDate, reason: Box<Error> },

    // The Avro to Arrow mapping (`columns`, `decode`).
    /// The named types of a schema cannot be resolved.
    #[error("{0}")]
    Names(apache_avro::Error),
    #[error("the schema is not a record")]
    NotARecord,
    /// A field (top-level or nested) whose type or values have no column form.
    #[error("field {field:?}: {reason}")]
    Field { field: String, reason: Box<Error> },
    #[error("the default of field {field:?} cannot be used: {error}")]
    BadDefault {
        field: String,
        error: apache_avro::Error,
    },
    #[error("unknown named type {0}")]
    UnknownType(String),
    #[error("unresolved reference")]
    UnresolvedReference,
    /// A value that is not of the type its schema gives (the value as Avro's debug form).
    #[error("value {value} does not fit {data_type}")]
    Mismatch { value: String, data_type: DataType },
    /// A list or map with more entries than an Arrow column holds.
    #[error("{0} too long")]
    TooLong(&'static str),
    #[error("map entries are not a struct")]
    MapEntries,
    #[error("union mapped to {0}")]
    UnionType(DataType),
    /// An Avro type (its debug form) and an Arrow type that do not go together.
    #[error("no mapping of {schema} to {data_type}")]
    NoMapping { schema: String, data_type: DataType },
    #[error("decimal precision {0} is over 38, the most Arrow's decimal128 holds")]
    DecimalPrecision(usize),
    #[error("decimal scale {0} is too large")]
    DecimalScale(usize),
    #[error("decimal value: {0}")]
    DecimalValue(apache_avro::Error),
    #[error("decimal wider than 128 bits")]
    WideDecimal,
    /// A field whose column name is one copydog adds itself.
    #[error("field {0:?} clashes with the columns copydog adds")]
    ReservedField(String),

    // Why a raw record is rejected (`decode`).
    #[error("the record has no value (a tombstone)")]
    Tombstone,
    /// Timestamps or dates no store can hold (`onepipe_client::ranges`), each with its path.
    #[error("{}", join_field_errors(.0))]
    OutOfRange(Vec<onepipe_client::json::FieldError>),
    /// A Kafka record timestamp (milliseconds) no store can hold.
    #[error(
        "Kafka record timestamp: {}",
        onepipe_client::ranges::timestamp_message(*.0, onepipe_client::ranges::Unit::Millis, false)
    )]
    KafkaTimestamp(i64),
    /// Records of a writer schema that cannot be read into the topic's newest schema;
    /// shared by every record of that schema.
    #[error("{reason}")]
    WriterSchema {
        schema_id: u32,
        reason: Arc<onepipe_client::Error>,
    },

    // Merging (`merge`).
    /// A Kafka column (`_kafka_partition`, `_kafka_offset`) missing from clean rows.
    #[error("no {0} column")]
    NoKafkaColumn(&'static str),
    #[error("no column {column:?} for {path:?}")]
    NoColumn { column: String, path: String },
    #[error("{path:?}: {field:?} is not inside a record")]
    NotInStruct { path: String, field: String },
    #[error("{path:?}: no field {field:?}")]
    NoStructField { path: String, field: String },
    #[error("max_by({field}): {error}")]
    MaxBy {
        field: String,
        error: arrow::error::ArrowError,
    },
    #[error("vector_clock({field}): the field is not a map<long> column")]
    NotAClock { field: String },

    /// Work handed to the blocking pool that never finished (the runtime shut down).
    #[error("cancelled: the runtime is shutting down")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::Store(e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::Parquet(e)
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
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

    pub(crate) fn field(field: impl Into<String>, reason: Error) -> Self {
        Error::Field {
            field: field.into(),
            reason: Box::new(reason),
        }
    }
}

fn join_field_errors(errors: &[onepipe_client::json::FieldError]) -> String {
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapped error is printed by `Display` and not exposed again as `source()`, so
    /// anyhow's `{:#}` prints it once.
    #[test]
    fn wrapped_errors_are_printed_once() {
        let e = Error::convert(
            "clean/t/x.parquet",
            object_store::Error::NotFound {
                path: "clean/t/x.parquet".into(),
                source: "gone".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "clean/t/x.parquet: object store: Object at location clean/t/x.parquet not found: gone"
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
