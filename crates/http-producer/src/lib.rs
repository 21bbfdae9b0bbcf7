//! `http-producer`: the HTTP front door of onepipe topics.
//!
//! Clients POST plain JSON records; each batch is validated against the topic's schema
//! in the registry and either refused as a whole (422, every failing record and field
//! named) or produced with acks=all and idempotence, answering only once Kafka has
//! acknowledged every record. At most `--max-concurrent-requests` requests are worked on
//! at once; more get 503 with Retry-After before their body is read, and parsing and
//! encoding run on Tokio's blocking pool, so the async workers stay free to answer.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! let config = onepipe_http_producer::Config::parse_from([
//!     "http-producer", "--registry", "http://127.0.0.1:8090",
//!     "--kafka-bootstrap", "127.0.0.1:9092", "--listen", "127.0.0.1:0",
//! ]);
//! let app = onepipe_http_producer::App::new(&config)?;
//! let listener = tokio::net::TcpListener::bind(&config.listen).await?;
//! onepipe_http_producer::run(listener, app, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod error;
mod openapi;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use onepipe_client::Serializer;
use onepipe_client::args::{KafkaOptions, RegistryArgs};
use onepipe_client::codec::WriterSchema;
use onepipe_client::json::Options;
use onepipe_client::{Error as ClientError, Outgoing, Producer, SchemaRegistry};
use onepipe_core::admin::{self, Metrics, ReadyCheck};
use onepipe_core::units::parse_duration;
use rdkafka::producer::Producer as _;
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::{ApiKeys, Denied};
pub use crate::error::{Error, Result};

/// The HTTP producer: JSON records in, schema-checked Avro records on Kafka topics out.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "http-producer", version)]
pub struct Config {
    /// HTTP address of the records API; port 0 picks a free port (the log says which).
    #[arg(long, env = "ONEPIPE_LISTEN", default_value = "127.0.0.1:8093")]
    pub listen: String,

    /// Address of /healthz, /readyz and /metrics; port 0 picks a free port.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8094")]
    pub admin_listen: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "ONEPIPE_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// Largest request body in bytes; bigger ones get 413.
    #[arg(long, env = "ONEPIPE_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most records in one request; more get 413.
    #[arg(long, env = "ONEPIPE_MAX_RECORDS", default_value_t = 10_000)]
    pub max_records: usize,

    /// Most requests worked on at once; more get 503 with Retry-After at once, before
    /// their body is read. A request holds its body, the parsed records and the encoded
    /// records until Kafka has them (up to about 5 x --max-body-bytes), so memory for
    /// requests stays under about 5 x this x --max-body-bytes: 640 MiB with the defaults.
    #[arg(long, env = "ONEPIPE_MAX_CONCURRENT_REQUESTS", default_value = "8")]
    pub max_concurrent_requests: NonZeroUsize,

    /// How long Kafka may take to acknowledge a batch before the request gets 503
    /// with Retry-After, e.g. 10s or 500ms.
    #[arg(long, env = "ONEPIPE_PRODUCE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub produce_timeout: Duration,

    /// The old spelling of --produce-timeout in milliseconds, accepted for one release.
    #[arg(
        long,
        env = "ONEPIPE_PRODUCE_TIMEOUT_MS",
        hide = true,
        conflicts_with = "produce_timeout"
    )]
    pub produce_timeout_ms: Option<u64>,

    /// JSON file of API keys with the topics each may produce to; without it, anyone
    /// reaching the port may produce. See the README for the format.
    #[arg(long, env = "ONEPIPE_API_KEYS")]
    pub api_keys: Option<String>,

    /// Ignore JSON members that are not fields of the schema instead of refusing the record.
    #[arg(long, env = "ONEPIPE_ALLOW_UNKNOWN_FIELDS")]
    pub allow_unknown_fields: bool,

    #[command(flatten)]
    pub kafka: KafkaOptions,
}

/// Metric names.
mod metric {
    pub const REQUESTS: &str = "onepipe_http_requests_total";
    pub const RECORDS_PRODUCED: &str = "onepipe_http_records_produced_total";
    pub const RECORDS_REJECTED: &str = "onepipe_http_records_rejected_total";
    pub const BYTES_PRODUCED: &str = "onepipe_http_bytes_produced_total";
}

/// Everything a request needs, shared by all of them.
pub struct App {
    registry: SchemaRegistry,
    serializer: Serializer,
    producer: Producer,
    keys: ApiKeys,
    max_body_bytes: usize,
    max_records: usize,
    produce_timeout: Duration,
    /// One permit per request being worked on.
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl App {
    /// Connects (lazily) to the registry and Kafka. Needs a Tokio runtime.
    pub fn new(config: &Config) -> Result<Arc<Self>> {
        let registry = config.registry.connect(true)?;
        let serializer = Serializer::new(
            registry.clone(),
            Options {
                allow_unknown_fields: config.allow_unknown_fields,
            },
        );
        let produce_timeout = config
            .produce_timeout_ms
            .map_or(config.produce_timeout, Duration::from_millis);
        let timeout = produce_timeout.as_millis().to_string();
        let mut extra: Vec<(&str, &str)> = vec![("message.timeout.ms", &timeout)];
        for (k, v) in &config.kafka.kafka_options {
            if matches!(
                k.as_str(),
                "acks" | "enable.idempotence" | "bootstrap.servers"
            ) {
                return Err(Error::FixedKafkaOption { key: k.clone() });
            }
            extra.push((k, v));
        }
        let producer = Producer::new(&config.kafka_bootstrap, serializer.clone(), &extra)?;
        let keys = match &config.api_keys {
            Some(path) => ApiKeys::from_file(path)?,
            None => ApiKeys::default(),
        };
        Ok(Arc::new(App {
            registry,
            serializer,
            producer,
            keys,
            max_body_bytes: config.max_body_bytes,
            max_records: config.max_records,
            produce_timeout,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests.get())),
            metrics: Metrics::new(),
        }))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Ready when the registry answers and Kafka gives its metadata.
    pub async fn ready(self: &Arc<Self>) -> Result<()> {
        self.registry.ping().await.map_err(Error::RegistryDown)?;
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            app.producer
                .kafka()
                .client()
                .fetch_metadata(None, Duration::from_secs(3))
                .map(|_| ())
                .map_err(Error::KafkaDown)
        })
        .await?
    }

    /// The admin router: /healthz, /readyz, /metrics.
    pub fn admin_router(self: &Arc<Self>) -> Router {
        let app = self.clone();
        let ready: ReadyCheck = Arc::new(move || {
            let app = app.clone();
            Box::pin(async move { app.ready().await.map_err(Into::into) })
        });
        admin::router(ready, self.metrics.clone(), None)
    }

    /// Waits for queued records to be acknowledged (on shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.producer.flush(self.produce_timeout) {
            tracing::error!(error = %e, "records still unacknowledged at shutdown");
        }
    }
}

/// The records API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/topics/{topic}/records", post(produce))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: see /openapi.json",
            )
        })
        .with_state(app)
}

/// Serves the records API until `shutdown`, lets in-flight requests finish, then flushes
/// the producer.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = admin::serve(listener, router(app.clone()), "http", shutdown).await;
    let flushing = app.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.flush()).await;
    served
}

/// An error reply: `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Json,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Json::Null,
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error in http-producer; its log has the cause",
        )
    }

    fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.details.is_null() {
            error["details"] = self.details;
        }
        let mut r = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// Registry and Kafka failures as the client should see them.
fn client_error(e: ClientError) -> ApiError {
    match e {
        ClientError::UnknownTopic(t) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            format!("topic {t:?} is not registered"),
        ),
        ClientError::UnknownVersion { subject, version } => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_schema_version",
            format!("subject {subject:?} has no schema version {version}"),
        ),
        ClientError::Registry(_) | ClientError::Connect { .. } => {
            tracing::warn!(error = %e, "registry unavailable");
            ApiError::unavailable(format!("the schema registry cannot be reached: {e}"))
        }
        other => {
            // The detail is for the operator's log; the client gets a stable message.
            tracing::error!(error = %other, "unexpected failure");
            ApiError::internal()
        }
    }
}

async fn produce(
    State(app): State<Arc<App>>,
    Path(topic): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use tracing::Instrument;
    let incoming = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_traceparent(v))
        .map(str::to_string);
    // The request's span continues the caller's trace; records carry this span's context
    // (or, when spans are not exported, the caller's traceparent as it came).
    let span = tracing::info_span!("produce", topic = %topic);
    if let Some(tp) = &incoming {
        onepipe_core::telemetry::set_parent(&span, tp);
    }
    let trace = onepipe_core::telemetry::traceparent(&span).or(incoming);
    let result = produce_inner(&app, &topic, &query, &headers, body, trace.as_deref())
        .instrument(span)
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    app.metrics.inc(
        metric::REQUESTS,
        "Record API requests by HTTP status",
        &[("status", response.status().as_str())],
        1,
    );
    response
}

async fn produce_inner(
    app: &Arc<App>,
    topic: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
    trace: Option<&str>,
) -> Result<Response, ApiError> {
    check_key(app, topic, headers)?;
    let mut version = None;
    for (k, v) in query {
        match k.as_str() {
            "schema_version" => {
                version = Some(v.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    ApiError::bad_request(format!("schema_version {v:?} is not a positive integer"))
                })?)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?} (only schema_version is known)"
                )));
            }
        }
    }
    let ndjson = match content_type(headers)? {
        Format::Json => false,
        Format::NdJson => true,
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > app.max_body_bytes
    {
        return Err(body_too_large(app.max_body_bytes));
    }
    // Held until the reply: the body, its records and their encoding are in memory until
    // Kafka has them, so the permits bound memory as well as CPU. Without one the
    // request is refused at once, its body unread.
    let Ok(_permit) = app.permits.clone().try_acquire_owned() else {
        tracing::debug!(topic, "at the limit of concurrent requests, refused");
        return Err(ApiError::unavailable(
            "http-producer is working on as many requests as it takes at once; retry later",
        ));
    };
    let writer = app
        .serializer
        .writer(topic, version)
        .await
        .map_err(client_error)?;
    let bytes = axum::body::to_bytes(body, app.max_body_bytes)
        .await
        .map_err(|_| body_too_large(app.max_body_bytes))?;
    let max_records = app.max_records;
    let trace = trace.map(str::to_string);
    // Parsing and encoding up to --max-body-bytes is CPU work: off the async workers.
    let (writer, outgoing, failures) = tokio::task::spawn_blocking(move || {
        let records = parse_batch(&bytes, ndjson, max_records)?;
        drop(bytes);
        let (outgoing, failures) = encode_all(&writer, records, trace.as_deref());
        Ok::<_, ApiError>((writer, outgoing, failures))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "parsing and encoding a batch failed");
        ApiError::internal()
    })??;
    if !failures.is_empty() {
        let total = outgoing.len() + failures.len();
        app.metrics.inc(
            metric::RECORDS_REJECTED,
            "Records refused because their batch had invalid records",
            &[("topic", topic)],
            total as u64,
        );
        let reg = writer.registered();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_records",
            format!(
                "{} of {total} records do not fit the schema of topic {topic:?} \
                 (subject {:?} version {}); nothing was produced",
                failures.len(),
                reg.subject,
                reg.version
            ),
        )
        .details(Json::Array(failures)));
    }
    let bytes_out: usize = outgoing.iter().map(|o| o.key.len() + o.value.len()).sum();
    let count = outgoing.len();
    let results = app
        .producer
        .send_all(topic, outgoing, app.produce_timeout)
        .await;
    let mut offsets = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Ok(d) => offsets.push(json!({"partition": d.partition, "offset": d.offset})),
            Err(e) => failed.push(json!({"index": index, "error": e.to_string()})),
        }
    }
    if !failed.is_empty() {
        tracing::warn!(topic, failed = failed.len(), first = %failed[0], "kafka did not acknowledge records");
        return Err(ApiError::unavailable(format!(
            "Kafka did not acknowledge {} of {count} records in time; retry the request \
             (records that did land are deduplicated downstream by the topic's merge strategy)",
            failed.len()
        ))
        .details(Json::Array(failed)));
    }
    app.metrics.inc(
        metric::RECORDS_PRODUCED,
        "Records acknowledged by Kafka",
        &[("topic", topic)],
        count as u64,
    );
    app.metrics.inc(
        metric::BYTES_PRODUCED,
        "Key and value bytes acknowledged by Kafka",
        &[("topic", topic)],
        bytes_out as u64,
    );
    let reg = writer.registered();
    Ok(axum::Json(json!({
        "topic": topic,
        "schema_id": reg.id,
        "schema_version": reg.version,
        "offsets": offsets,
    }))
    .into_response())
}

/// The records of a body, within the record limit.
fn parse_batch(bytes: &[u8], ndjson: bool, max_records: usize) -> Result<Vec<Incoming>, ApiError> {
    let records = if ndjson {
        parse_ndjson(bytes)?
    } else {
        parse_json(bytes)?
    };
    if records.is_empty() {
        return Err(ApiError::bad_request(
            "the batch has no records: send at least one",
        ));
    }
    if records.len() > max_records {
        return Err(ApiError::too_large(format!(
            "the batch has {} records, more than the limit of {max_records}",
            records.len(),
        )));
    }
    Ok(records)
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "the body is larger than the limit of {limit} bytes"
    ))
}

fn check_key(app: &App, topic: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match app.keys.check(presented, topic) {
        Ok(_) => Ok(()),
        Err(Denied::Unauthenticated(m)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            m,
        )),
        Err(Denied::Forbidden(m)) => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", m)),
    }
}

enum Format {
    Json,
    NdJson,
}

fn content_type(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let mime = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" => Ok(Format::NdJson),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {:?} is not accepted: use application/json or application/x-ndjson",
                v.to_str().unwrap_or("(not text)")
            ),
        )),
    }
}

/// One record of a request, before validation.
struct Incoming {
    value: Json,
    key: Option<Json>,
    headers: Vec<(String, Vec<u8>)>,
    /// Problems with the envelope (not the value), reported with the value's errors.
    envelope_errors: Vec<Json>,
}

fn parse_json(bytes: &[u8]) -> Result<Vec<Incoming>, ApiError> {
    let body: Json = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Json::Object(mut top) = body else {
        return Err(ApiError::bad_request(
            r#"the body must be a JSON object {"records": [...]}"#,
        ));
    };
    if let Some(other) = top.keys().find(|k| *k != "records") {
        return Err(ApiError::bad_request(format!(
            "unknown member {other:?} in the body: only \"records\" is allowed"
        )));
    }
    let Some(Json::Array(items)) = top.remove("records") else {
        return Err(ApiError::bad_request(
            r#"the body needs "records": an array of {"value": …} objects"#,
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut envelope_errors = Vec::new();
        let Json::Object(mut fields) = item else {
            out.push(Incoming {
                value: Json::Null,
                key: None,
                headers: Vec::new(),
                envelope_errors: vec![envelope("record", "must be an object {\"value\": …}")],
            });
            continue;
        };
        let value = fields.remove("value");
        if value.is_none() {
            envelope_errors.push(envelope("record", "has no \"value\""));
        }
        let key = fields.remove("key");
        let mut headers = Vec::new();
        match fields.remove("headers") {
            None | Some(Json::Null) => {}
            Some(Json::Object(h)) => {
                for (name, v) in h {
                    match v {
                        Json::String(s) => headers.push((name, s.into_bytes())),
                        other => envelope_errors.push(envelope(
                            &format!("headers[{name:?}]"),
                            &format!("header values must be strings, found {other}"),
                        )),
                    }
                }
            }
            Some(other) => envelope_errors.push(envelope(
                "headers",
                &format!("must be an object of string values, found {other}"),
            )),
        }
        for name in fields.keys() {
            envelope_errors.push(envelope(
                "record",
                &format!("unknown member {name:?} (allowed: value, key, headers)"),
            ));
        }
        out.push(Incoming {
            value: value.unwrap_or(Json::Null),
            key,
            headers,
            envelope_errors,
        });
    }
    Ok(out)
}

fn parse_ndjson(bytes: &[u8]) -> Result<Vec<Incoming>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid UTF-8: {e}")))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(line)
            .map_err(|e| ApiError::bad_request(format!("line {} is not valid JSON: {e}", i + 1)))?;
        out.push(Incoming {
            value,
            key: None,
            headers: Vec::new(),
            envelope_errors: Vec::new(),
        });
    }
    Ok(out)
}

fn envelope(path: &str, message: &str) -> Json {
    json!({"path": path, "message": message})
}

/// Encodes every record; on any failure returns the per-record errors (by index).
fn encode_all(
    writer: &WriterSchema,
    records: Vec<Incoming>,
    trace: Option<&str>,
) -> (Vec<Outgoing>, Vec<Json>) {
    let mut outgoing = Vec::with_capacity(records.len());
    let mut failures = Vec::new();
    let encoder = writer.encoder();
    for (index, r) in records.into_iter().enumerate() {
        let mut errors = r.envelope_errors;
        match encoder.encode_json(&r.value) {
            Ok(encoded) => {
                if let Some(given) = &r.key
                    && serde_json::from_slice::<Json>(&encoded.key).ok().as_ref() != Some(given)
                {
                    errors.push(envelope(
                        "key",
                        &format!(
                            "{given} differs from the unique key {} read from the value's fields ({}); \
                             leave \"key\" out to use it",
                            String::from_utf8_lossy(&encoded.key),
                            writer.metadata().unique_key.join(", ")
                        ),
                    ));
                }
                if errors.is_empty() {
                    let mut o = Outgoing::from(encoded);
                    o.headers = r.headers;
                    if let Some(t) = trace
                        && !o.headers.iter().any(|(k, _)| k == "traceparent")
                    {
                        o.headers
                            .push(("traceparent".to_string(), t.as_bytes().to_vec()));
                    }
                    outgoing.push(o);
                }
            }
            Err(field_errors) => {
                for e in field_errors {
                    errors.push(json!({"path": e.path, "message": e.message}));
                }
            }
        }
        if !errors.is_empty() {
            failures.push(json!({"index": index, "errors": errors}));
        }
    }
    (outgoing, failures)
}

/// W3C trace context: `00-<32 hex>-<16 hex>-<2 hex>`; anything else is ignored.
fn is_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_shape_is_checked() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent("00-xyz-00f067aa0ba902b7-01"));
        assert!(!is_traceparent(""));
    }

    #[test]
    fn envelope_problems_are_collected_per_record() {
        let records = parse_json(
            br#"{"records": [{"value": {}}, 5, {"vlue": 1}, {"value": 1, "headers": {"a": 1}}]}"#,
        )
        .unwrap();
        assert_eq!(records.len(), 4);
        assert!(records[0].envelope_errors.is_empty());
        assert_eq!(records[1].envelope_errors.len(), 1);
        assert_eq!(records[2].envelope_errors.len(), 2);
        assert_eq!(
            records[3].envelope_errors[0]["path"],
            json!("headers[\"a\"]")
        );
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_are_invalid_records_naming_the_field() {
        use onepipe_client::registry::RegisteredSchema;
        use onepipe_core::metadata::TopicMetadata;
        let schema = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"Order","fields":[
                {"name":"id","type":"string"},
                {"name":"order","type":{"type":"record","name":"Inner","fields":[
                    {"name":"created_at","type":{"type":"long","logicalType":"timestamp-millis"}},
                    {"name":"day","type":{"type":"int","logicalType":"date"}}]}}]}"#,
        )
        .unwrap();
        let writer = WriterSchema::new(
            TopicMetadata::new("t", vec!["id".into()]),
            Arc::new(RegisteredSchema {
                subject: "t-value".into(),
                version: 1,
                id: 1,
                schema,
            }),
            Options::default(),
        );
        let records = parse_json(
            br#"{"records": [
                {"value": {"id": "a", "order": {"created_at": "9999-12-31T23:59:59.999Z", "day": "0001-01-01"}}},
                {"value": {"id": "b", "order": {"created_at": 9223372036854775807, "day": 2932897}}}
            ]}"#,
        )
        .unwrap();
        let (outgoing, failures) = encode_all(&writer, records, None);
        assert_eq!(outgoing.len(), 1);
        let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
        assert_eq!(
            failures,
            [json!({"index": 1, "errors": [
                {"path": "$.order.created_at",
                 "message": format!("timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}")},
                {"path": "$.order.day", "message": format!("date 2932897 is 10000-01-01, {range}")}
            ]})]
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for body in [
            &b"{"[..],
            b"[]",
            b"{\"records\": 5}",
            b"{\"records\": [], \"x\": 1}",
        ] {
            let err = parse_json(body).err().unwrap();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body:?}");
        }
        let err = parse_ndjson(b"{}\n{oops}\n").err().unwrap();
        assert!(err.message.contains("line 2"), "{}", err.message);
    }
}
