//! `onepipe schema …` and `onepipe topic …` against a real registry and the stack's Kafka.

use clap::Parser;
use onepipe_cli::{Cli, run};
use onepipe_integration_tests::{endpoint, start_registry, unique_name};
use onepipe_registry::auth::Tokens;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;

const SCHEMA: &str = r#"{"type":"record","name":"ApiCall","fields":[
  {"name":"call_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"latency_ms","type":"double"}]}"#;

async fn onepipe(registry: &str, args: &[&str]) -> (onepipe_cli::Result<i32>, String) {
    let mut argv = vec!["onepipe", "--registry", registry];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let code = run(cli, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn topic_create_provisions_kafka_schema_and_metadata() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let dir = std::env::temp_dir().join(unique_name("onepipe-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema_file = dir.join("api_calls.avsc");
    std::fs::write(&schema_file, SCHEMA).unwrap();
    let schema_path = schema_file.to_str().unwrap();
    let topic = unique_name("api_calls");

    let create = [
        "topic",
        "create",
        &topic,
        "--schema-file",
        schema_path,
        "--unique-key",
        "call_id",
        "--sort-key",
        "at,call_id",
        "--partition-time",
        "at",
        "--merge",
        "max_by:version",
        "--checks",
        "sum:latency_ms,max:latency_ms,row_checksum",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--kafka-bootstrap",
        &bootstrap,
    ];
    let (code, out) = onepipe(&registry, &create).await;
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(
        out.contains("kafka: topic") && out.contains("created"),
        "{out}"
    );
    assert!(out.contains("metadata: stored"), "{out}");

    // The Kafka topic is there with the partitions asked for.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    let (code, out) = onepipe(&registry, &["topic", "describe", &topic, "--json"]).await;
    assert_eq!(code.unwrap(), 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["subject"], format!("{topic}-value"));
    assert_eq!(json["merge"], "max_by(version)");
    assert_eq!(json["partition_time"], "at");
    assert_eq!(
        json["checks"],
        serde_json::json!(["sum(latency_ms)", "max(latency_ms)", "row_checksum"])
    );

    // Running it again changes nothing.
    let (code, out) = onepipe(&registry, &create).await;
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(
        out.contains("already exists") && out.contains("unchanged"),
        "{out}"
    );

    let (code, out) = onepipe(&registry, &["topic", "list"]).await;
    assert_eq!(code.unwrap(), 0);
    assert!(out.contains(&topic), "{out}");

    // An incompatible schema is reported with its location, exit code 1.
    let broken = dir.join("broken.avsc");
    std::fs::write(
        &broken,
        SCHEMA.replace(
            r#""name":"latency_ms","type":"double""#,
            r#""name":"latency_ms","type":"string""#,
        ),
    )
    .unwrap();
    let subject = format!("{topic}-value");
    let (code, out) = onepipe(
        &registry,
        &[
            "schema",
            "check",
            &subject,
            "--file",
            broken.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code.unwrap(), 1, "{out}");
    assert!(out.contains("/fields/3/type"), "{out}");

    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_metadata_is_refused_with_the_reason() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let dir = std::env::temp_dir().join(unique_name("onepipe-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema_file = dir.join("s.avsc");
    std::fs::write(&schema_file, SCHEMA).unwrap();
    let topic = unique_name("bad_meta");
    let (code, _) = onepipe(
        &registry,
        &[
            "topic",
            "create",
            &topic,
            "--schema-file",
            schema_file.to_str().unwrap(),
            "--unique-key",
            "missing_field",
            "--replication-factor",
            "1",
            "--kafka-bootstrap",
            &bootstrap,
        ],
    )
    .await;
    let err = code.unwrap_err().to_string();
    assert!(err.contains("no field \"missing_field\""), "{err}");
    // Nothing was left behind: no schema, no Kafka topic.
    let (code, out) = onepipe(&registry, &["schema", "list"]).await;
    assert_eq!(code.unwrap(), 0);
    assert!(!out.contains(&topic), "{out}");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(
        md.topics().iter().all(|t| t.name() != topic),
        "kafka topic {topic} was created"
    );

    let cli = Cli::try_parse_from([
        "onepipe",
        "topic",
        "create",
        "t",
        "--schema-file",
        "x",
        "--unique-key",
        "id",
        "--merge",
        "latest_wins",
        "--kafka-bootstrap",
        "k",
    ]);
    let err = cli.unwrap_err().to_string();
    assert!(err.contains("merge strategy"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The local stack has one broker: `topic create` with no `--replication-factor` takes the
/// broker's default instead of asking for 3 replicas it cannot have.
#[tokio::test]
async fn topic_create_takes_the_brokers_replication_factor_by_default() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let dir = std::env::temp_dir().join(unique_name("onepipe-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema_file = dir.join("api_calls.avsc");
    std::fs::write(&schema_file, SCHEMA).unwrap();
    let topic = unique_name("api_calls");
    let create = [
        "topic",
        "create",
        &topic,
        "--schema-file",
        schema_file.to_str().unwrap(),
        "--unique-key",
        "call_id",
        "--partitions",
        "2",
        "--kafka-bootstrap",
        &bootstrap,
    ];
    let (code, out) = onepipe(&registry, &create).await;
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(
        out.contains("kafka: topic") && out.contains("created"),
        "{out}"
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let partitions = md.topics()[0].partitions();
    assert_eq!(partitions.len(), 2);
    assert!(partitions.iter().all(|p| p.replicas().len() == 1));
}
