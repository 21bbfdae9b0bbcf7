//! The registry store's behaviour suite on PostgreSQL from the local stack (the unit
//! tests run the same suite on SQLite), and two stores sharing one database the way
//! registry replicas do.

use onepipe_integration_tests::fresh_database;
use onepipe_registry::store::{Store, VersionSpec};

#[tokio::test]
async fn behaviour_suite_on_postgres() {
    let url = fresh_database("it_registry").await;
    let store = Store::open(&url).await.unwrap();
    onepipe_registry::test_suite::run(&store).await;
}

#[tokio::test]
async fn replicas_share_one_database() {
    let url = fresh_database("it_registry_replicas").await;
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let schema = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}"#;
    let v = a
        .insert_version("r-value", schema, schema, 1)
        .await
        .unwrap()
        .unwrap();
    let seen = b
        .version("r-value", VersionSpec::Latest, false)
        .await
        .unwrap();
    assert_eq!(seen, v);
    assert_eq!(b.schema_by_id(v.id).await.unwrap(), schema);
}
