//! The error type of `onepipe-core`.

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

    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    #[error("telemetry: {0}")]
    Telemetry(String),
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
