//! The registry's gRPC API end to end: a real server on a free port, PostgreSQL from
//! the local stack behind it, and the generated client in front.

use std::time::Duration;

use onepipe_integration_tests::start_registry;
use onepipe_proto::registry::v1 as pb;
use onepipe_proto::registry::v1::registry_client::RegistryClient;
use onepipe_registry::auth::Tokens;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

const V1: &str = r#"{"type":"record","name":"PageView","fields":[
  {"name":"view_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"url","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"PageView","fields":[
  {"name":"view_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"url","type":"string"},
  {"name":"referrer","type":["null","string"],"default":null}]}"#;
const INCOMPATIBLE: &str = r#"{"type":"record","name":"PageView","fields":[
  {"name":"view_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"url","type":"int"}]}"#;

async fn start(tokens: Tokens) -> (RegistryClient<Channel>, tokio::sync::oneshot::Sender<()>) {
    let (url, stop) = start_registry(tokens).await;
    (RegistryClient::connect(url).await.unwrap(), stop)
}

fn register(subject: &str, schema: &str) -> pb::RegisterSchemaRequest {
    pb::RegisterSchemaRequest {
        subject: subject.into(),
        schema: schema.into(),
    }
}

#[tokio::test]
async fn schemas_evolve_under_compatibility_rules() {
    let (mut c, _stop) = start(Tokens::default()).await;
    let v1 = c
        .register_schema(register("views-value", V1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1.version, 1);
    let again = c
        .register_schema(register("views-value", V1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.id, again.version), (v1.id, 1));

    let v2 = c
        .register_schema(register("views-value", V2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v2.version, 2);

    let check = c
        .check_compatibility(pb::CheckCompatibilityRequest {
            subject: "views-value".into(),
            schema: INCOMPATIBLE.into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!check.compatible);
    assert!(
        check.messages.iter().any(|m| m.contains("/fields/2/type")),
        "{:?}",
        check.messages
    );

    let refused = c
        .register_schema(register("views-value", INCOMPATIBLE))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("incompatible"),
        "{}",
        refused.message()
    );

    let by_id = c
        .get_schema(pb::GetSchemaRequest { id: v2.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.schema, V2);
    let latest = c
        .get_subject_version(pb::GetSubjectVersionRequest {
            subject: "views-value".into(),
            version: 0,
            include_deleted: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(latest.version, 2);

    let missing = c
        .get_schema(pb::GetSchemaRequest { id: 999_999 })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = c
        .register_schema(register("views-value", "{\"type\":"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn topic_metadata_is_checked_and_watched() {
    let (mut c, _stop) = start(Tokens::default()).await;
    c.register_schema(register("views-value", V1))
        .await
        .unwrap();
    let mut watch = c
        .watch_topics(pb::WatchTopicsRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();

    let meta = pb::TopicMetadata {
        topic: "views".into(),
        unique_key: vec!["view_id".into()],
        merge: "max_by:version".into(),
        checks: vec!["row_checksum".into()],
        ..Default::default()
    };
    let ack = c.create_topic(meta.clone()).await.unwrap().into_inner();
    let got = c
        .get_topic(pb::GetTopicRequest {
            topic: "views".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.subject, "views-value");
    assert_eq!(got.merge, "max_by(version)");
    assert_eq!(got.compatibility, "BACKWARD");

    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!((event.seq, event.topic.as_str()), (ack.seq, "views"));
    assert_eq!(event.metadata.unwrap().unique_key, vec!["view_id"]);

    let mut wrong = meta.clone();
    wrong.topic = "views2".into();
    wrong.subject = "views-value".into();
    wrong.unique_key = vec!["nope".into()];
    let err = c.create_topic(wrong).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("no field \"nope\""),
        "{}",
        err.message()
    );

    // Dropping the unique-key field from the schema is refused while the topic uses it.
    c.set_compatibility(pb::SetCompatibilityRequest {
        subject: "views-value".into(),
        level: "NONE".into(),
    })
    .await
    .unwrap();
    let without_key = V1.replace(r#"{"name":"view_id","type":"string"},"#, "");
    let err = c
        .register_schema(register("views-value", &without_key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("unique_key field \"view_id\""),
        "{}",
        err.message()
    );

    c.delete_topic(pb::GetTopicRequest {
        topic: "views".into(),
    })
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a delete event within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(event.topic, "views");
    assert!(event.metadata.is_none());
}

#[tokio::test]
async fn tokens_guard_writes_and_reads() {
    let (mut c, _stop) = start(Tokens::new(Some("s3cret".into()), Some("reader".into()))).await;
    let err = c
        .register_schema(register("t-value", V1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut wrong = tonic::Request::new(register("t-value", V1));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        c.register_schema(wrong).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let mut right = tonic::Request::new(register("t-value", V1));
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let v = c.register_schema(right).await.unwrap().into_inner();
    // With a read token set, reads need it (or the admin token).
    let err = c
        .get_schema(pb::GetSchemaRequest { id: v.id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    for token in ["Bearer reader", "Bearer s3cret"] {
        let mut read = tonic::Request::new(pb::GetSchemaRequest { id: v.id });
        read.metadata_mut()
            .insert("authorization", token.parse().unwrap());
        assert_eq!(c.get_schema(read).await.unwrap().into_inner().schema, V1);
    }
    // The read token does not allow writes.
    let mut write = tonic::Request::new(register("t-value", V1));
    write
        .metadata_mut()
        .insert("authorization", "Bearer reader".parse().unwrap());
    assert_eq!(
        c.register_schema(write).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}
