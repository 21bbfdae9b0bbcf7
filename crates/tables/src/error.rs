//! The error type of `onepipe-tables`.
//!
//! Errors that wrap another keep it as a plain field and print it after their own
//! context: `Display` alone says everything, and no `source()` is exposed, so a chain
//! printed with anyhow's `{:#}` never repeats a message.

/// Why a schema has no table form.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The schema's named types cannot be resolved.
    #[error("{0}")]
    Avro(apache_avro::Error),
    #[error("the schema is not a record")]
    NotARecord,
    /// A field whose type has no column form.
    #[error("field {field:?}: {reason}")]
    Field { field: String, reason: Box<Error> },
    /// A field whose column name is one the loader adds itself.
    #[error("field {field:?} becomes column {column:?}, which the loader adds itself")]
    ReservedColumn { field: String, column: String },
    /// Two fields whose column names are the same.
    #[error("fields {first:?} and {second:?} both become column {column:?}")]
    SameColumn {
        first: String,
        second: String,
        column: String,
    },
    #[error("unknown named type {0}")]
    UnknownType(String),
    #[error("unresolved reference")]
    UnresolvedReference,
    #[error("decimal precision {0} is over 38")]
    DecimalPrecision(usize),
    #[error("decimal scale {0} is too large")]
    DecimalScale(usize),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
