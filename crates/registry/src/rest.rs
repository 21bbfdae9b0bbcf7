//! A Confluent Schema Registry compatible REST API over [`Registry`], enough for
//! `confluent-kafka` clients (`SchemaRegistryClient`, `AvroSerializer`,
//! `AvroDeserializer`) and `kcat -s avro -r` to work unchanged.
//!
//! Errors are `{"error_code": N, "message": "…"}` with Confluent's codes, the HTTP
//! status being the code's first three digits; [`error_response`] is the one mapping.
//! Unknown query parameters are ignored.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::Error;
use crate::auth::{Access, Denied, Tokens};
use crate::service::{Registry, parse_schema};
use crate::store::VersionSpec;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Clone)]
struct Ctx {
    registry: Arc<Registry>,
    tokens: Arc<Tokens>,
}

/// An error as Confluent clients expect it.
struct ApiError {
    code: u32,
    message: String,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        if code >= 50000 {
            // The detail (a database error, a file path) is for the operator's log only.
            tracing::error!(error = %e, "registry request failed");
            return ApiError {
                code,
                message: crate::error::INTERNAL_MESSAGE.to_string(),
            };
        }
        ApiError {
            code,
            message: e.to_string(),
        }
    }
}

impl ApiError {
    fn new(code: u32, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// The HTTP status of a Confluent error code: 40401 → 404, 409 → 409.
fn http_status(code: u32) -> StatusCode {
    let mut c = code;
    while c >= 1000 {
        c /= 10;
    }
    StatusCode::from_u16(c as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error_response(e: ApiError) -> Response {
    let body = json!({"error_code": e.code, "message": e.message});
    (
        http_status(e.code),
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self)
    }
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}

type ApiResult = Result<Response, ApiError>;
type Params = Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The request bodies Confluent clients send; unknown fields are ignored.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_body(body: &Bytes) -> Result<SchemaBody, ApiError> {
    let b: SchemaBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            42201,
            format!("invalid request body: {e}; expected {{\"schema\": \"…\"}}"),
        )
    })?;
    if let Some(t) = &b.schema_type
        && !t.eq_ignore_ascii_case("AVRO")
    {
        return Err(ApiError::new(
            42201,
            format!("schema type {t:?} is not supported: only AVRO"),
        ));
    }
    if !b.references.is_empty() {
        return Err(ApiError::new(42201, "schema references are not supported"));
    }
    Ok(b)
}

fn version_spec(s: &str) -> Result<VersionSpec, ApiError> {
    s.parse().map_err(ApiError::from)
}

/// Reads are GETs, lookups (`POST /subjects/{s}`) and compatibility checks; the rest write.
fn access_of(method: &Method, path: &str) -> Access {
    let is_lookup =
        method == Method::POST && path.starts_with("/subjects/") && path.matches('/').count() == 2;
    if method == Method::GET || is_lookup || path.starts_with("/compatibility/") {
        Access::Read
    } else {
        Access::Write
    }
}

async fn authorize(State(c): State<Ctx>, req: axum::extract::Request, next: Next) -> Response {
    let access = access_of(req.method(), req.uri().path());
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match c.tokens.check(given, access) {
        Ok(()) => next.run(req).await,
        Err(d @ Denied::Missing(_)) => error_response(ApiError::new(40101, d.to_string())),
        Err(d @ Denied::Wrong(_)) => error_response(ApiError::new(40301, d.to_string())),
    }
}

/// The REST router; see [`Tokens`] for who may read and write.
pub fn router(registry: Arc<Registry>, tokens: Tokens) -> Router {
    let ctx = Ctx {
        registry,
        tokens: Arc::new(tokens),
    };
    Router::new()
        .route("/schemas/types", get(|| async { ok(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version_schema),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_one),
        )
        .route(
            "/config",
            get(global_config)
                .put(set_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .fallback(|| async { ApiError::new(404, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), authorize))
        .with_state(ctx)
}

/// Serves the REST API on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    onepipe_core::admin::serve(listener, router, "rest", shutdown).await
}

async fn schema_by_id(State(c): State<Ctx>, Path(id): Path<i64>) -> ApiResult {
    let schema = c.registry.schema_by_id(id).await?;
    Ok(ok(json!({"schema": &*schema})))
}

async fn raw_schema_by_id(State(c): State<Ctx>, Path(id): Path<i64>) -> ApiResult {
    let schema = c.registry.schema_by_id(id).await?;
    Ok(ok(
        serde_json::from_str(&schema).unwrap_or(Value::String(schema.to_string()))
    ))
}

async fn versions_of_id(State(c): State<Ctx>, Path(id): Path<i64>) -> ApiResult {
    c.registry.schema_by_id(id).await?;
    let pairs = c.registry.store().subjects_of_id(id).await?;
    let out: Vec<Value> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(Value::Array(out)))
}

async fn subjects(State(c): State<Ctx>, Query(q): Params) -> ApiResult {
    Ok(ok(json!(
        c.registry.store().subjects(flag(&q, "deleted")).await?
    )))
}

async fn versions(
    State(c): State<Ctx>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> ApiResult {
    Ok(ok(json!(
        c.registry
            .store()
            .versions(&subject, flag(&q, "deleted"))
            .await?
    )))
}

async fn register(State(c): State<Ctx>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let b = schema_body(&body)?;
    let v = c.registry.register(&subject, &b.schema).await?;
    Ok(ok(json!({"id": v.id})))
}

async fn lookup(State(c): State<Ctx>, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let b = schema_body(&body)?;
    let v = c.registry.lookup(&subject, &b.schema).await?;
    Ok(ok(
        json!({"subject": v.subject, "id": v.id, "version": v.version, "schema": v.schema}),
    ))
}

async fn version(
    State(c): State<Ctx>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let v = c
        .registry
        .store()
        .version(&subject, version_spec(&version)?, flag(&q, "deleted"))
        .await?;
    Ok(ok(
        json!({"subject": v.subject, "id": v.id, "version": v.version, "schema": v.schema}),
    ))
}

async fn raw_version_schema(
    State(c): State<Ctx>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let v = c
        .registry
        .store()
        .version(&subject, version_spec(&version)?, false)
        .await?;
    Ok(ok(
        serde_json::from_str(&v.schema).unwrap_or(Value::String(v.schema))
    ))
}

async fn delete_subject(
    State(c): State<Ctx>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> ApiResult {
    Ok(ok(json!(
        c.registry
            .store()
            .delete_subject(&subject, flag(&q, "permanent"))
            .await?
    )))
}

async fn delete_version(
    State(c): State<Ctx>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let spec = version_spec(&version)?;
    Ok(ok(json!(
        c.registry
            .store()
            .delete_version(&subject, spec, flag(&q, "permanent"))
            .await?
    )))
}

async fn check(
    c: &Ctx,
    subject: &str,
    against: Option<VersionSpec>,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let b = schema_body(body)?;
    let candidate = parse_schema(&b.schema)?;
    let messages = c
        .registry
        .compatibility_problems(subject, &candidate, against)
        .await?;
    let mut out = json!({"is_compatible": messages.is_empty()});
    if flag(q, "verbose") {
        out["messages"] = json!(messages);
    }
    Ok(ok(out))
}

async fn check_all(
    State(c): State<Ctx>,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult {
    check(&c, &subject, None, &q, &body).await
}

async fn check_one(
    State(c): State<Ctx>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult {
    let spec = version_spec(&version)?;
    check(&c, &subject, Some(spec), &q, &body).await
}

fn level_body(body: &Bytes) -> Result<onepipe_core::metadata::Compatibility, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            42203,
            format!("invalid request body: {e}; expected {{\"compatibility\": \"BACKWARD\"}}"),
        )
    })?;
    let level = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(42203, "missing \"compatibility\""))?;
    level
        .parse()
        .map_err(|e: onepipe_core::Error| ApiError::new(42203, e.to_string()))
}

async fn global_config(State(c): State<Ctx>) -> ApiResult {
    let level = c
        .registry
        .store()
        .compatibility(None)
        .await?
        .unwrap_or_default();
    Ok(ok(json!({"compatibilityLevel": level})))
}

async fn set_global_config(State(c): State<Ctx>, body: Bytes) -> ApiResult {
    let level = level_body(&body)?;
    c.registry.store().set_compatibility(None, level).await?;
    Ok(ok(json!({"compatibility": level})))
}

async fn delete_global_config(State(c): State<Ctx>) -> ApiResult {
    let old = c
        .registry
        .store()
        .delete_compatibility(None)
        .await?
        .unwrap_or_default();
    Ok(ok(json!({"compatibilityLevel": old})))
}

async fn subject_config(
    State(c): State<Ctx>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> ApiResult {
    let store = c.registry.store();
    let level = match store.compatibility(Some(&subject)).await? {
        Some(l) => l,
        None if flag(&q, "defaultToGlobal") => store.compatibility(None).await?.unwrap_or_default(),
        None => {
            return Err(ApiError::new(
                40408,
                format!("subject {subject:?} does not have subject-level compatibility configured"),
            ));
        }
    };
    Ok(ok(json!({"compatibilityLevel": level})))
}

async fn set_subject_config(
    State(c): State<Ctx>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = level_body(&body)?;
    c.registry
        .store()
        .set_compatibility(Some(&subject), level)
        .await?;
    Ok(ok(json!({"compatibility": level})))
}

async fn delete_subject_config(State(c): State<Ctx>, Path(subject): Path<String>) -> ApiResult {
    match c
        .registry
        .store()
        .delete_compatibility(Some(&subject))
        .await?
    {
        Some(old) => Ok(ok(json!({"compatibilityLevel": old}))),
        None => Err(ApiError::new(
            40408,
            format!("subject {subject:?} does not have subject-level compatibility configured"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes() {
        assert_eq!(access_of(&Method::GET, "/subjects"), Access::Read);
        assert_eq!(access_of(&Method::POST, "/subjects/s"), Access::Read);
        assert_eq!(
            access_of(&Method::POST, "/compatibility/subjects/s/versions"),
            Access::Read
        );
        assert_eq!(
            access_of(&Method::POST, "/subjects/s/versions"),
            Access::Write
        );
        assert_eq!(access_of(&Method::DELETE, "/subjects/s"), Access::Write);
        assert_eq!(access_of(&Method::PUT, "/config"), Access::Write);
    }

    #[test]
    fn status_is_the_codes_first_three_digits() {
        assert_eq!(http_status(40401), StatusCode::NOT_FOUND);
        assert_eq!(http_status(409), StatusCode::CONFLICT);
        assert_eq!(http_status(42201), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(http_status(50001), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_errors_keep_their_detail_in_the_log() {
        let e = ApiError::from(Error::Database(sqlx::Error::Protocol(
            "password authentication failed for user onepipe at 10.1.2.3".into(),
        )));
        assert_eq!(e.code, 50001);
        assert_eq!(e.message, crate::error::INTERNAL_MESSAGE);
        let e = ApiError::from(Error::SubjectNotFound("orders-value".into()));
        assert!(e.message.contains("orders-value"));
    }
}
