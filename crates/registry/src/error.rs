//! The registry's error type. Each variant maps to one Confluent `error_code`
//! ([`Error::code`]) so the REST and gRPC layers translate errors in one place.
//!
//! A variant that wraps another error prints that error's message in its own and does
//! not also return it as `source()`, so a chain printer (`{:#}`) shows it once.

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem;

/// What a client is told of an internal error (the detail goes to the registry's log).
pub const INTERNAL_MESSAGE: &str = "internal error in the registry; its log has the cause";

/// Everything the registry can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("subject {0:?} not found")]
    SubjectNotFound(String),
    #[error("version {version} of subject {subject:?} not found")]
    VersionNotFound { subject: String, version: i64 },
    #[error("schema {0} not found")]
    SchemaNotFound(i64),
    #[error("schema not found in subject {0:?}")]
    SchemaNotInSubject(String),
    #[error("topic {0:?} not found")]
    TopicNotFound(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error("invalid version {0:?}: expected a positive integer or \"latest\"")]
    InvalidVersion(String),
    #[error("invalid topic metadata: {0}")]
    InvalidMetadata(String),
    #[error("schema being registered is incompatible with an earlier schema for subject {subject:?} ({level}): {}", .reasons.join("; "))]
    Incompatible {
        subject: String,
        level: onepipe_core::metadata::Compatibility,
        reasons: Vec<String>,
    },
    #[error(
        "version {version} of subject {subject:?} must be soft-deleted before it is deleted permanently"
    )]
    NotSoftDeleted { subject: String, version: i64 },
    #[error("database url {url:?}: {reason}")]
    DatabaseUrl { url: String, reason: String },
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The TLS certificate chain or key (`what`) is not PEM.
    #[error("tls: {what}: {error}")]
    TlsPem {
        what: &'static str,
        error: pem::Error,
    },
    #[error("tls: certificate: no PEM certificate found")]
    NoCertificate,
    #[error("tls: certificate and key: {0}")]
    TlsCertificate(rustls::Error),
    /// rustls refused its own protocol settings.
    #[error("tls: {0}")]
    TlsSettings(rustls::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Confluent Schema Registry's `error_code` for this error.
    pub fn code(&self) -> u32 {
        match self {
            Error::SubjectNotFound(_) => 40401,
            Error::VersionNotFound { .. } => 40402,
            Error::SchemaNotFound(_) | Error::SchemaNotInSubject(_) => 40403,
            Error::NotSoftDeleted { .. } => 40407,
            Error::TopicNotFound(_) => 40420,
            Error::TopicExists(_) => 40901,
            Error::Incompatible { .. } => 409,
            Error::InvalidSchema(_) | Error::InvalidMetadata(_) => 42201,
            Error::InvalidVersion(_) => 42202,
            Error::DatabaseUrl { .. }
            | Error::Database(_)
            | Error::Migrate(_)
            | Error::Corrupt(_)
            | Error::TlsPem { .. }
            | Error::NoCertificate
            | Error::TlsCertificate(_)
            | Error::TlsSettings(_) => 50001,
        }
    }
}

// `From` without `source()`: these variants print the wrapped error's message.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(e)
    }
}

impl From<onepipe_schema::Error> for Error {
    fn from(e: onepipe_schema::Error) -> Self {
        Error::InvalidSchema(match e {
            onepipe_schema::Error::InvalidSchema(e) => e.to_string(),
            other => other.to_string(),
        })
    }
}
