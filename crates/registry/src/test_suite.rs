//! The store's behaviour suite, run against every backend: SQLite in the unit tests,
//! PostgreSQL from the local stack in `integration-tests`. Panics on the first
//! difference from the expected behaviour.

use onepipe_core::metadata::{Compatibility, TopicMetadata};

use crate::Error;
use crate::store::{Store, VersionSpec};

const S1: &str = r#"{"type":"record","name":"A","fields":[{"name":"id","type":"long"}]}"#;
const S2: &str = r#"{"type":"record","name":"A","fields":[{"name":"id","type":"long"},{"name":"n","type":["null","string"],"default":null}]}"#;
const S3: &str = r#"{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}"#;

/// Inserts like a registry would: the existing version when the schema is already
/// there, else a new one, retrying when another writer won the race.
async fn register(store: &Store, subject: &str, schema: &str) -> (i64, i64) {
    if let Some(v) = store.find_in_subject(subject, schema).await.unwrap() {
        return (v.id, v.version);
    }
    loop {
        let next = store.next_version(subject).await.unwrap();
        if let Some(v) = store
            .insert_version(subject, schema, schema, next)
            .await
            .unwrap()
        {
            return (v.id, v.version);
        }
    }
}

/// Runs every behaviour check on `store`, which must be empty.
pub async fn run(store: &Store) {
    schemas_and_versions(store).await;
    compatibility_levels(store).await;
    topic_metadata(store).await;
    concurrent_registrations(store).await;
}

async fn schemas_and_versions(store: &Store) {
    let (id1, v1) = register(store, "a-value", S1).await;
    assert_eq!(v1, 1);
    assert_eq!(
        register(store, "a-value", S1).await,
        (id1, 1),
        "re-registering returns the existing id"
    );
    let (id_b, vb) = register(store, "b-value", S1).await;
    assert_eq!(
        (id_b, vb),
        (id1, 1),
        "the same schema in another subject shares the id"
    );
    let (id2, v2) = register(store, "a-value", S2).await;
    assert!(id2 > id1);
    assert_eq!(v2, 2);

    assert_eq!(store.versions("a-value", false).await.unwrap(), vec![1, 2]);
    assert_eq!(
        store.subjects(false).await.unwrap(),
        vec!["a-value", "b-value"]
    );
    let latest = store
        .version("a-value", VersionSpec::Latest, false)
        .await
        .unwrap();
    assert_eq!(
        (latest.version, latest.id, latest.schema.as_str()),
        (2, id2, S2)
    );
    assert_eq!(store.schema_by_id(id1).await.unwrap(), S1);
    assert_eq!(store.id_of(S2).await.unwrap(), Some(id2));
    assert_eq!(
        store.subjects_of_id(id1).await.unwrap(),
        vec![("a-value".to_string(), 1), ("b-value".to_string(), 1)]
    );
    assert!(matches!(
        store.schema_by_id(9_999_999).await,
        Err(Error::SchemaNotFound(9_999_999))
    ));
    assert!(matches!(
        store.versions("nope", false).await,
        Err(Error::SubjectNotFound(_))
    ));
    assert!(matches!(
        store
            .version("a-value", VersionSpec::Number(7), false)
            .await,
        Err(Error::VersionNotFound { version: 7, .. })
    ));

    // Soft delete hides a version; permanent delete needs a soft delete first.
    assert_eq!(
        store
            .delete_version("a-value", VersionSpec::Number(1), false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.versions("a-value", false).await.unwrap(), vec![2]);
    assert_eq!(store.versions("a-value", true).await.unwrap(), vec![1, 2]);
    assert!(
        store
            .version("a-value", VersionSpec::Number(1), true)
            .await
            .unwrap()
            .deleted
    );
    assert!(matches!(
        store
            .delete_version("a-value", VersionSpec::Number(2), true)
            .await,
        Err(Error::NotSoftDeleted { version: 2, .. })
    ));
    assert_eq!(
        store
            .delete_version("a-value", VersionSpec::Number(1), true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.versions("a-value", true).await.unwrap(), vec![2]);
    // The id lives on for other subjects and for old records.
    assert_eq!(store.schema_by_id(id1).await.unwrap(), S1);

    // Ids are never reused.
    let (id3, v3) = register(store, "a-value", S3).await;
    assert!(id3 > id2, "id {id3} reused");
    assert_eq!(v3, 3);

    assert_eq!(
        store.delete_subject("b-value", false).await.unwrap(),
        vec![1]
    );
    assert_eq!(store.subjects(false).await.unwrap(), vec!["a-value"]);
    assert_eq!(
        store.subjects(true).await.unwrap(),
        vec!["a-value", "b-value"]
    );
    assert_eq!(
        store.delete_subject("b-value", true).await.unwrap(),
        vec![1]
    );
    assert_eq!(store.subjects(true).await.unwrap(), vec!["a-value"]);
    // A subject registered again after a permanent delete starts at 1, with the old id.
    assert_eq!(register(store, "b-value", S1).await, (id1, 1));
}

async fn compatibility_levels(store: &Store) {
    assert_eq!(store.compatibility(None).await.unwrap(), None);
    assert_eq!(
        store.effective_compatibility("a-value").await.unwrap(),
        Compatibility::Backward
    );
    store
        .set_compatibility(None, Compatibility::Full)
        .await
        .unwrap();
    assert_eq!(
        store.effective_compatibility("a-value").await.unwrap(),
        Compatibility::Full
    );
    store
        .set_compatibility(Some("a-value"), Compatibility::None)
        .await
        .unwrap();
    store
        .set_compatibility(Some("a-value"), Compatibility::ForwardTransitive)
        .await
        .unwrap();
    assert_eq!(
        store.effective_compatibility("a-value").await.unwrap(),
        Compatibility::ForwardTransitive
    );
    assert_eq!(
        store.delete_compatibility(Some("a-value")).await.unwrap(),
        Some(Compatibility::ForwardTransitive)
    );
    assert_eq!(
        store.effective_compatibility("a-value").await.unwrap(),
        Compatibility::Full
    );
    store.delete_compatibility(None).await.unwrap();
    assert_eq!(store.compatibility(None).await.unwrap(), None);
}

async fn topic_metadata(store: &Store) {
    let start = store.last_change().await.unwrap();
    let mut meta = TopicMetadata::new("orders", vec!["id".into()]);
    let seq1 = store.put_topic(&meta, true).await.unwrap();
    assert!(matches!(
        store.put_topic(&meta, true).await,
        Err(Error::TopicExists(_))
    ));
    let other = TopicMetadata::new("ghost", vec!["id".into()]);
    assert!(matches!(
        store.put_topic(&other, false).await,
        Err(Error::TopicNotFound(_))
    ));

    meta.owner = "team-orders".into();
    meta.merge = "max_by(version)".parse().unwrap();
    let seq2 = store.put_topic(&meta, false).await.unwrap();
    assert!(seq2 > seq1);
    assert_eq!(store.topic("orders").await.unwrap(), meta);
    assert_eq!(store.topics().await.unwrap(), vec![meta.clone()]);
    assert_eq!(
        store.topics_of_subject("orders-value").await.unwrap(),
        vec![meta.clone()]
    );

    let seq3 = store.delete_topic("orders").await.unwrap();
    assert!(matches!(
        store.topic("orders").await,
        Err(Error::TopicNotFound(_))
    ));
    assert!(matches!(
        store.delete_topic("orders").await,
        Err(Error::TopicNotFound(_))
    ));

    let changes = store.topic_changes_since(start).await.unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![seq1, seq2, seq3]);
    assert_eq!(changes[1].metadata.as_ref(), Some(&meta));
    assert_eq!(changes[2].metadata, None);
    assert!(store.topic_changes_since(seq3).await.unwrap().is_empty());
    assert_eq!(store.last_change().await.unwrap(), seq3);
}

/// Several writers (think: registry replicas) add versions to one subject at once:
/// every schema gets its own version number, none is lost.
async fn concurrent_registrations(store: &Store) {
    let schemas: Vec<String> = (0..12)
        .map(|i| {
            format!(r#"{{"type":"record","name":"C","fields":[{{"name":"f{i}","type":"int"}}]}}"#)
        })
        .collect();
    // Polled together, so the writers really overlap.
    let results =
        futures::future::join_all(schemas.iter().map(|s| register(store, "race-value", s))).await;
    let mut versions: Vec<i64> = results.iter().map(|(_, v)| *v).collect();
    versions.sort();
    assert_eq!(versions, (1..=12).collect::<Vec<i64>>());
    assert_eq!(store.versions("race-value", false).await.unwrap().len(), 12);
}
