//! The error type of `onepipe-core`.
//!
//! Errors of other crates are kept as plain fields and printed after this crate's
//! context: `Display` alone says everything, and no `source()` is exposed, so a chain
//! printed with anyhow's `{:#}` never repeats a message (many of those errors, like
//! `object_store`'s, already print their own source).

use crate::wire::WireError;

/// Everything that can go wrong in the shared contracts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wire(#[from] WireError),

    /// A topic name, field path, merge strategy or check that does not follow the rules.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("object store url {url:?}: {reason}")]
    StoreUrl { url: String, reason: String },

    #[error("{0}")]
    ObjectStore(object_store::Error),

    /// The global `tracing` subscriber could not be installed (one already is).
    #[error("telemetry: {0}")]
    TelemetryInit(tracing_subscriber::util::TryInitError),

    /// The OTLP span exporter could not be built from the `OTEL_*` variables.
    #[error("telemetry: otlp exporter: {0}")]
    OtlpExporter(opentelemetry_otlp::ExporterBuildError),
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::ObjectStore(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
