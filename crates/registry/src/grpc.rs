//! The registry's gRPC API (`proto/onepipe/registry/v1/registry.proto`) over
//! [`Registry`]. Errors become a `Status` in one place ([`status`]); internal ones are
//! logged there, and the client sees what it did wrong.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use onepipe_core::metadata::{Compatibility, TopicMetadata};
use onepipe_proto::registry::v1 as pb;
use onepipe_proto::registry::v1::registry_server::{Registry as RegistryApi, RegistryServer};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{Access, Denied, Tokens};
use crate::service::{Registry, parse_schema};
use crate::store::{SubjectVersion, VersionSpec};
use crate::tls::TlsFiles;
use crate::{Error, Result};

/// How often a watch stream looks for new topic changes (shared by every replica
/// through the database, so a poll and not an in-process signal).
const WATCH_POLL: Duration = Duration::from_millis(500);

/// The gRPC service; see [`Tokens`] for who may read and write.
pub struct GrpcService {
    registry: Arc<Registry>,
    tokens: Tokens,
}

impl GrpcService {
    pub fn new(registry: Arc<Registry>, tokens: Tokens) -> Self {
        GrpcService { registry, tokens }
    }

    fn authorize<T>(&self, req: &Request<T>, access: Access) -> Result<(), Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.tokens.check(given, access).map_err(|d| match d {
            Denied::Missing(_) => Status::unauthenticated(d.to_string()),
            Denied::Wrong(_) => Status::permission_denied(d.to_string()),
        })
    }
}

/// Serves the gRPC API on `listener` until `shutdown` completes.
/// With `tls`, only TLS connections are accepted.
pub async fn run(
    listener: TcpListener,
    service: GrpcService,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, api = "grpc", tls = tls.is_some(), "listening");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(t) = tls {
        onepipe_core::tls::install_provider();
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(t.identity()))?;
    }
    builder
        .add_service(RegistryServer::new(service))
        // Without TCP_NODELAY small replies wait on Nagle and delayed ACKs (~40 ms p99);
        // tonic sets it only on listeners it binds itself.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// Registry errors as gRPC statuses, derived from their one error code ([`Error::code`]),
/// so REST and gRPC agree on what each error is.
pub fn status(e: Error) -> Status {
    let code = e.code();
    if code >= 50000 {
        // The detail (a database error, a file path) is for the operator's log only.
        tracing::error!(error = %e, "registry request failed");
        return Status::internal(crate::error::INTERNAL_MESSAGE);
    }
    let msg = e.to_string();
    match code {
        // A soft delete must come first: a precondition, not a missing thing.
        40407 => Status::failed_precondition(msg),
        40400..=40499 => Status::not_found(msg),
        40901 => Status::already_exists(msg),
        409 => Status::failed_precondition(msg),
        _ => Status::invalid_argument(msg),
    }
}

fn version_spec(v: i64) -> Result<VersionSpec, Status> {
    match v {
        0 | -1 => Ok(VersionSpec::Latest),
        n if n > 0 => Ok(VersionSpec::Number(n)),
        n => Err(status(Error::InvalidVersion(n.to_string()))),
    }
}

fn to_pb_version(v: SubjectVersion) -> pb::SchemaVersion {
    pb::SchemaVersion {
        subject: v.subject,
        version: v.version,
        id: v.id,
        schema: v.schema,
        deleted: v.deleted,
    }
}

fn to_pb_topic(m: TopicMetadata) -> pb::TopicMetadata {
    pb::TopicMetadata::from(&m)
}

fn from_pb_topic(m: pb::TopicMetadata) -> Result<TopicMetadata> {
    TopicMetadata::try_from(m).map_err(|e| Error::InvalidMetadata(e.to_string()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::TopicEvent, Status>> + Send>>;

#[tonic::async_trait]
impl RegistryApi for GrpcService {
    async fn register_schema(
        &self,
        req: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        self.authorize(&req, Access::Write)?;
        let r = req.into_inner();
        let v = self
            .registry
            .register(&r.subject, &r.schema)
            .await
            .map_err(status)?;
        Ok(Response::new(to_pb_version(v)))
    }

    async fn lookup_schema(
        &self,
        req: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        self.authorize(&req, Access::Read)?;
        let r = req.into_inner();
        let v = self
            .registry
            .lookup(&r.subject, &r.schema)
            .await
            .map_err(status)?;
        Ok(Response::new(to_pb_version(v)))
    }

    async fn get_schema(
        &self,
        req: Request<pb::GetSchemaRequest>,
    ) -> Result<Response<pb::SchemaById>, Status> {
        self.authorize(&req, Access::Read)?;
        let id = req.into_inner().id;
        let schema = self.registry.schema_by_id(id).await.map_err(status)?;
        Ok(Response::new(pb::SchemaById {
            id,
            schema: schema.to_string(),
        }))
    }

    async fn get_subject_version(
        &self,
        req: Request<pb::GetSubjectVersionRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        self.authorize(&req, Access::Read)?;
        let r = req.into_inner();
        let spec = version_spec(r.version)?;
        let v = self
            .registry
            .store()
            .version(&r.subject, spec, r.include_deleted)
            .await
            .map_err(status)?;
        Ok(Response::new(to_pb_version(v)))
    }

    async fn list_subjects(
        &self,
        req: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        self.authorize(&req, Access::Read)?;
        let subjects = self
            .registry
            .store()
            .subjects(req.into_inner().include_deleted)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListSubjectsResponse { subjects }))
    }

    async fn list_versions(
        &self,
        req: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        self.authorize(&req, Access::Read)?;
        let r = req.into_inner();
        let versions = self
            .registry
            .store()
            .versions(&r.subject, r.include_deleted)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListVersionsResponse { versions }))
    }

    async fn delete_version(
        &self,
        req: Request<pb::DeleteVersionRequest>,
    ) -> Result<Response<pb::DeleteVersionResponse>, Status> {
        self.authorize(&req, Access::Write)?;
        let r = req.into_inner();
        let spec = version_spec(r.version)?;
        let version = self
            .registry
            .store()
            .delete_version(&r.subject, spec, r.permanent)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteVersionResponse { version }))
    }

    async fn delete_subject(
        &self,
        req: Request<pb::DeleteSubjectRequest>,
    ) -> Result<Response<pb::DeleteSubjectResponse>, Status> {
        self.authorize(&req, Access::Write)?;
        let r = req.into_inner();
        let versions = self
            .registry
            .store()
            .delete_subject(&r.subject, r.permanent)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteSubjectResponse { versions }))
    }

    async fn check_compatibility(
        &self,
        req: Request<pb::CheckCompatibilityRequest>,
    ) -> Result<Response<pb::CheckCompatibilityResponse>, Status> {
        self.authorize(&req, Access::Read)?;
        let r = req.into_inner();
        let candidate = parse_schema(&r.schema).map_err(status)?;
        let against = if r.version == 0 {
            None
        } else {
            Some(version_spec(r.version)?)
        };
        let messages = self
            .registry
            .compatibility_problems(&r.subject, &candidate, against)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CheckCompatibilityResponse {
            compatible: messages.is_empty(),
            messages,
        }))
    }

    async fn get_compatibility(
        &self,
        req: Request<pb::GetCompatibilityRequest>,
    ) -> Result<Response<pb::CompatibilityLevel>, Status> {
        self.authorize(&req, Access::Read)?;
        let subject = req.into_inner().subject;
        let store = self.registry.store();
        let level = if subject.is_empty() {
            store
                .compatibility(None)
                .await
                .map_err(status)?
                .unwrap_or_default()
        } else {
            store
                .effective_compatibility(&subject)
                .await
                .map_err(status)?
        };
        Ok(Response::new(pb::CompatibilityLevel {
            level: level.to_string(),
        }))
    }

    async fn set_compatibility(
        &self,
        req: Request<pb::SetCompatibilityRequest>,
    ) -> Result<Response<pb::CompatibilityLevel>, Status> {
        self.authorize(&req, Access::Write)?;
        let r = req.into_inner();
        let level: Compatibility = r
            .level
            .parse()
            .map_err(|e: onepipe_core::Error| Status::invalid_argument(e.to_string()))?;
        let subject = Some(r.subject.as_str()).filter(|s| !s.is_empty());
        self.registry
            .store()
            .set_compatibility(subject, level)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CompatibilityLevel {
            level: level.to_string(),
        }))
    }

    async fn create_topic(
        &self,
        req: Request<pb::TopicMetadata>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        self.authorize(&req, Access::Write)?;
        let meta = from_pb_topic(req.into_inner()).map_err(status)?;
        let seq = self.registry.put_topic(&meta, true).await.map_err(status)?;
        Ok(Response::new(pb::TopicChangeAck { seq }))
    }

    async fn update_topic(
        &self,
        req: Request<pb::TopicMetadata>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        self.authorize(&req, Access::Write)?;
        let meta = from_pb_topic(req.into_inner()).map_err(status)?;
        let seq = self
            .registry
            .put_topic(&meta, false)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TopicChangeAck { seq }))
    }

    async fn get_topic(
        &self,
        req: Request<pb::GetTopicRequest>,
    ) -> Result<Response<pb::TopicMetadata>, Status> {
        self.authorize(&req, Access::Read)?;
        let meta = self
            .registry
            .store()
            .topic(&req.into_inner().topic)
            .await
            .map_err(status)?;
        Ok(Response::new(to_pb_topic(meta)))
    }

    async fn list_topics(
        &self,
        req: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        self.authorize(&req, Access::Read)?;
        let topics = self.registry.store().topics().await.map_err(status)?;
        Ok(Response::new(pb::ListTopicsResponse {
            topics: topics.into_iter().map(to_pb_topic).collect(),
        }))
    }

    async fn delete_topic(
        &self,
        req: Request<pb::GetTopicRequest>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        self.authorize(&req, Access::Write)?;
        let seq = self
            .registry
            .store()
            .delete_topic(&req.into_inner().topic)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TopicChangeAck { seq }))
    }

    type WatchTopicsStream = WatchStream;

    async fn watch_topics(
        &self,
        req: Request<pb::WatchTopicsRequest>,
    ) -> Result<Response<Self::WatchTopicsStream>, Status> {
        self.authorize(&req, Access::Read)?;
        let mut after = req.into_inner().after_seq;
        let registry = self.registry.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let changes = match registry.store().topic_changes_since(after).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                for c in changes {
                    after = c.seq;
                    let event = pb::TopicEvent {
                        seq: c.seq,
                        topic: c.topic,
                        metadata: c.metadata.map(to_pb_topic),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return; // the client went away
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_detail_in_the_log() {
        let s = status(Error::Database(sqlx::Error::Protocol(
            "password authentication failed for user onepipe at 10.1.2.3".into(),
        )));
        assert_eq!(s.code(), tonic::Code::Internal);
        assert_eq!(s.message(), crate::error::INTERNAL_MESSAGE);
        let s = status(Error::Corrupt("row 7 of subject_versions".into()));
        assert_eq!(s.message(), crate::error::INTERNAL_MESSAGE);
        // What a client did wrong is still told.
        let s = status(Error::SubjectNotFound("orders-value".into()));
        assert!(s.message().contains("orders-value"));
    }
}
