//! The registry's error type. Each variant maps to one Confluent `error_code`
//! ([`Error::code`]) so the REST and gRPC layers translate errors in one place.

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
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
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
            | Error::Corrupt(_) => 50001,
        }
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
