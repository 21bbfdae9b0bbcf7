//! Proves each part of the local stack is real and reachable: Kafka, the S3 server and
//! PostgreSQL. Fails (never skips) when one is not running.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use onepipe_integration_tests::{create_topic, endpoint, unique_name};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const RECORDS: usize = 1_000;

#[tokio::test]
async fn kafka_produces_and_consumes_in_order() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("it-stack");
    create_topic(&bootstrap, &topic, 1).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let sends = (0..RECORDS).map(|i| {
        let producer = &producer;
        let topic = &topic;
        async move {
            let payload = format!("record-{i}");
            let key = i.to_string();
            let record = FutureRecord::to(topic).key(&key).payload(&payload);
            producer.send(record, Duration::from_secs(30)).await
        }
    });
    let delivered = futures::future::join_all(sends).await;
    for (i, d) in delivered.into_iter().enumerate() {
        let delivery = d.unwrap_or_else(|(e, _)| panic!("record {i} not acknowledged: {e}"));
        assert_eq!(delivery.partition, 0);
        // Idempotence keeps send order within the partition, retries or not.
        assert_eq!(
            delivery.offset, i as i64,
            "record {i} landed at the wrong offset"
        );
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique_name("it-stack-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = 0usize;
    while seen < RECORDS {
        let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {seen} of {RECORDS} records came back within 60 s"))
            .unwrap();
        assert_eq!(msg.offset(), seen as i64);
        assert_eq!(msg.payload(), Some(format!("record-{seen}").as_bytes()));
        assert_eq!(msg.key(), Some(seen.to_string().as_bytes()));
        seen += 1;
    }
}

#[tokio::test]
async fn s3_put_list_get_delete() {
    let bucket = endpoint("ONEPIPE_S3_BUCKET");
    endpoint("ONEPIPE_S3_ENDPOINT");
    let prefix = unique_name("it-stack");
    let store = onepipe_core::store::open(&format!("s3://{bucket}/{prefix}")).unwrap();

    let names = ["raw/a/one.bin", "raw/a/two.bin", "raw/b/three.bin"];
    for n in names {
        store
            .put(&Path::from(n), PutPayload::from(n.as_bytes().to_vec()))
            .await
            .unwrap_or_else(|e| panic!("put {n}: {e}"));
    }
    let mut listed: Vec<String> = store
        .list(Some(&Path::from("raw/a")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(listed, vec!["raw/a/one.bin", "raw/a/two.bin"]);

    let got = store
        .get(&Path::from("raw/b/three.bin"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"raw/b/three.bin");

    // Manifests rely on "create only if absent".
    let again = store
        .put_opts(
            &Path::from("raw/a/one.bin"),
            PutPayload::from_static(b"x"),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );

    for n in names {
        store.delete(&Path::from(n)).await.unwrap();
    }
    let left: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(left.is_empty(), "objects left after delete: {left:?}");
}

#[tokio::test]
async fn postgres_runs_queries() {
    let url = endpoint("ONEPIPE_DATABASE_URL");
    let pool = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let schema = unique_name("it_stack").replace('-', "_");
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE \"{schema}\".t (id bigint primary key, name text)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".t SELECT g, 'n' || g FROM generate_series(1, 100) g"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let (count, sum): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), sum(id)::bigint FROM \"{schema}\".t"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((count, sum), (100, 5050));
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!version.is_empty());
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}
