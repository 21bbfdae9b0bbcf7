//! The error type of the CLI's commands.
//!
//! A variant that wraps another error either prints that error's message in its own and
//! does not return it as `source()`, or prints only its context and returns it as
//! `source()` (the errors whose detail is in their own sources, such as tonic's
//! transport errors); `transparent` variants are the wrapped error itself. [`report`]
//! prints the whole chain, each message once.

use chrono::NaiveDate;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Everything a command can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] onepipe_core::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    /// The registry refused or failed a request (its gRPC status message).
    #[error("registry: {}", .0.message())]
    Registry(tonic::Status),
    #[error("registry url {url:?}: {error}")]
    RegistryUrl {
        url: String,
        error: tonic::codegen::http::uri::InvalidUri,
    },
    #[error("registry url {url} is https: give the CA certificate with --tls-ca (ONEPIPE_TLS_CA)")]
    NoTlsCa { url: String },
    /// The TLS settings of the registry channel were refused.
    #[error(transparent)]
    Tls(tonic::transport::Error),
    #[error("cannot reach the registry at {url}")]
    Connect {
        url: String,
        #[source]
        error: tonic::transport::Error,
    },
    #[error("reading {path}: {error}")]
    ReadFile { path: String, error: std::io::Error },
    #[error("in {path}: {error}")]
    SchemaFile {
        path: String,
        error: onepipe_schema::Error,
    },
    #[error("invalid topic metadata: {}", .problems.join("; "))]
    InvalidMetadata { problems: Vec<String> },
    #[error(
        "topic {topic} already has different metadata; compare with `onepipe topic describe {topic} --json`"
    )]
    MetadataDiffers { topic: String },
    #[error("name a subject or give --id")]
    NoSubject,
    #[error("{text:?} is neither RFC 3339 nor ms since the epoch: {error}")]
    Time {
        text: String,
        error: chrono::ParseError,
    },
    #[error("kafka admin client: {0}")]
    KafkaAdmin(KafkaError),
    #[error("creating kafka topic {topic} on {bootstrap}: {error}")]
    CreateTopic {
        topic: String,
        bootstrap: String,
        error: Box<KafkaError>,
    },
    #[error("creating kafka topic {topic} on {bootstrap}: {code}")]
    TopicRefused {
        topic: String,
        bootstrap: String,
        code: RDKafkaErrorCode,
    },
    #[error("creating kafka topic {topic}: the broker gave no answer")]
    NoAnswer { topic: String },
    #[error("topic {topic} has no clean archive yet (no manifest: copydog has not run)")]
    NoManifest { topic: String },
    #[error("{what} of {topic} has no date {date}")]
    NoDate {
        what: String,
        topic: String,
        date: NaiveDate,
    },
    #[error(
        "topic {topic} has no Delta log yet, so no older version to read (copydog publishes one on its next run)"
    )]
    NoDeltaLog { topic: String },
    #[error(
        "--as-of {version} names a Delta version, and each table has versions of its own: give one --topic"
    )]
    VersionNeedsOneTopic { version: i64 },
    #[error("listing clean/: {0}")]
    ListClean(object_store::Error),
    #[error("no topic has a clean archive under {object_store} (has copydog run?)")]
    NoCleanArchive { object_store: String },
    #[error("reading the schema of {topic}: {error}")]
    TableSchema {
        topic: String,
        error: DataFusionError,
    },
    /// The SQL could not be planned (an unknown table or column, a syntax error).
    #[error("the query (tables: {tables}): {error}")]
    Query {
        tables: String,
        error: DataFusionError,
    },
    #[error("{0}")]
    DataFusion(DataFusionError),
    #[error("{0}")]
    Arrow(ArrowError),
    // Replay.
    #[error("kafka: {0}")]
    Kafka(KafkaError),
    #[error("object store: {0}")]
    Store(object_store::Error),
    #[error("raw file {path}: {reason}")]
    BadRawFile { path: String, reason: String },
    #[error("decoding {path}: {reason}")]
    Decode { path: String, reason: String },
    #[error("the producer dropped a record before its delivery was known")]
    Dropped,
    #[error(transparent)]
    Progress(#[from] indicatif::style::TemplateError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Writing the output.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// `From` without `source()`: these variants print the wrapped error's message.
impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::DataFusion(e)
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::Arrow(e)
    }
}

impl From<KafkaError> for Error {
    fn from(e: KafkaError) -> Self {
        Error::Kafka(e)
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::Store(e)
    }
}

/// `error` and its sources as one line, `a: b: c`, leaving out a source whose message
/// the text already holds (errors of other crates often print their source as well as
/// returning it), so every message appears once.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like `object_store::Error` and anyhow's context: a message that already holds its
    /// source's, and one that does not.
    #[derive(Debug, thiserror::Error)]
    enum Layer {
        #[error("outer: {0}")]
        Repeats(#[source] std::io::Error),
        #[error("context only")]
        Context(#[source] std::io::Error),
    }

    #[test]
    fn report_prints_each_message_once() {
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(report(&Layer::Repeats(io())), "outer: disk on fire");
        assert_eq!(report(&Layer::Context(io())), "context only: disk on fire");
        let e = Error::ReadFile {
            path: "a.avsc".into(),
            error: io(),
        };
        assert_eq!(report(&e), "reading a.avsc: disk on fire");
    }
}
