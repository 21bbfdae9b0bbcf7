//! Registry replicas racing to register: several `registry` processes on one PostgreSQL
//! database take 50 registrations at once, each compatible with version 1 but none with
//! another. Every version stored afterwards must be compatible with the one before it,
//! under the subject's level: one candidate wins version 2 and the rest are refused.

use std::sync::Arc;

use onepipe_core::metadata::Compatibility;
use onepipe_integration_tests::{fresh_database, http, service_binary, spawn_service, unique_name};
use onepipe_registry::store::Store;
use serde_json::{Value, json};

const V1: &str = r#"{"type":"record","name":"Event","fields":[{"name":"id","type":"long"}]}"#;

/// Version 1 plus a field `x` of a fixed size `n` with a default: readable over version 1
/// (BACKWARD), but not over another candidate's `x` (fixed sizes differ).
fn candidate(n: usize) -> String {
    json!({"type": "record", "name": "Event", "fields": [
        {"name": "id", "type": "long"},
        {"name": "x", "type": {"type": "fixed", "name": "X", "size": n}, "default": "a".repeat(n)}
    ]})
    .to_string()
}

async fn register(rest: &str, subject: &str, schema: &str) -> u16 {
    let body = json!({ "schema": schema }).to_string();
    http(
        "POST",
        rest,
        &format!("/subjects/{subject}/versions"),
        &[("content-type", "application/vnd.schemaregistry.v1+json")],
        body.as_bytes(),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_never_store_a_version_unchecked_against_its_predecessor() {
    let database = fresh_database("it_registry_race").await;
    let bin = service_binary("onepipe-registry", "registry");
    let logs = std::env::temp_dir().join(unique_name("registry-race"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(spawn_service(
            &bin,
            &[
                "--database",
                &database,
                "--listen",
                "127.0.0.1:0",
                "--rest-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            &[],
            &["grpc", "rest", "admin"],
            &logs.join(format!("registry-{i}.log")),
        ));
    }
    let rests: Vec<String> = replicas.iter().map(|r| r.addrs["rest"].clone()).collect();
    let subject = unique_name("race") + "-value";
    assert_eq!(register(&rests[0], &subject, V1).await, 200);

    let rests = Arc::new(rests);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (rests, subject) = (rests.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            register(&rests[i % rests.len()], &subject, &candidate(i + 1)).await
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "every registration is stored or refused as incompatible: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "exactly one candidate can follow version 1: {statuses:?}"
    );

    // What the database holds, read directly: each version against its predecessor at
    // the subject's level (BACKWARD, the default), and transitively against all before.
    let store = Store::open(&database).await.unwrap();
    let versions = store.all_versions(&subject, true).await.unwrap();
    assert_eq!(
        versions.len(),
        2,
        "{:?}",
        versions.iter().map(|v| v.version).collect::<Vec<_>>()
    );
    let level = store.effective_compatibility(&subject).await.unwrap();
    assert_eq!(level, Compatibility::Backward);
    let parsed: Vec<(i32, apache_avro::Schema)> = versions
        .iter()
        .map(|v| (v.version as i32, onepipe_schema::parse(&v.schema).unwrap()))
        .collect();
    for i in 1..parsed.len() {
        let problems = onepipe_schema::compat::check_level(
            Compatibility::BackwardTransitive,
            &parsed[i].1,
            &parsed[..i],
        );
        assert!(
            problems.is_empty(),
            "version {} was stored unchecked: {problems:?}",
            parsed[i].0
        );
    }
    let listed: Value = serde_json::from_slice(
        &http(
            "GET",
            &rests[2],
            &format!("/subjects/{subject}/versions"),
            &[],
            b"",
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(listed, json!([1, 2]));
    for mut r in replicas {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
}
