//! Manifests of the clean archive: the only way readers find current files.
//!
//! One JSON document per commit at `clean/{topic}/_manifests/{NNNNNNNNNN}.json`, written
//! with "create only if absent", so two writers can never both commit number N. The
//! current view of a topic is the manifest with the highest number.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{ManifestName, manifests_prefix};

/// One committed view of a topic's clean archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub number: u64,
    pub topic: String,
    pub created_at: DateTime<Utc>,
    /// The registry id of the schema every row of the view is decoded into.
    pub schema_id: u32,
    /// Per Kafka partition (as a string, JSON object keys), the last raw offset merged.
    pub watermarks: BTreeMap<String, i64>,
    /// Per date (`YYYY-MM-DD`), its current version.
    pub dates: BTreeMap<NaiveDate, DateEntry>,
    /// Records that could not be decoded, over the topic's whole history.
    #[serde(default)]
    pub rejected: Rejected,
    /// The column format of the view's files ([`CLEAN_FORMAT`] when written by this
    /// onepipe). Manifests from before the field are format 1, whose files hold
    /// timestamp-millis in milliseconds. A run that finds an older format rewrites every
    /// date, as for a schema change.
    #[serde(default = "first_format")]
    pub format: u32,
}

/// The column format copydog writes: 2 stores timestamp-millis and `_kafka_timestamp` in
/// microseconds (Delta's and Spark's `TIMESTAMP` unit).
pub const CLEAN_FORMAT: u32 = 2;

fn first_format() -> u32 {
    1
}

/// The current version of one date partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DateEntry {
    pub version: u32,
    pub rows: u64,
    /// Paths relative to the object-store root.
    pub files: Vec<String>,
    /// Check name (`count_distinct(unique_key)`, `sum(f)`, …) to its value.
    pub checks: BTreeMap<String, serde_json::Value>,
    /// Concurrent vector clocks resolved by the deterministic rule, over the date's history.
    #[serde(default)]
    pub merge_conflicts: u64,
}

/// Undecodable records set aside under `clean/{topic}/_rejected/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub records: u64,
    pub files: Vec<String>,
}

impl Manifest {
    /// The watermark of a Kafka partition (-1 when nothing was merged yet).
    pub fn watermark(&self, partition: i32) -> i64 {
        self.watermarks
            .get(&partition.to_string())
            .copied()
            .unwrap_or(-1)
    }
}

/// The numbers of every manifest of a topic, ascending.
pub async fn list(store: &dyn ObjectStore, topic: &str) -> Result<Vec<u64>> {
    let prefix = Path::from(manifests_prefix(topic).trim_end_matches('/'));
    let mut numbers = Vec::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.try_next().await? {
        if let Ok((_, name)) = ManifestName::parse(meta.location.as_ref()) {
            numbers.push(name.number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Reads manifest `number` of `topic`.
pub async fn read(store: &dyn ObjectStore, topic: &str, number: u64) -> Result<Manifest> {
    let path = ManifestName { number }.path(topic);
    let bytes = store.get(&Path::from(path.as_str())).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
        path,
        reason: e.to_string(),
    })
}

/// The current view: the highest-numbered manifest, or `None` before the first commit.
pub async fn latest(store: &dyn ObjectStore, topic: &str) -> Result<Option<Manifest>> {
    match list(store, topic).await?.last() {
        Some(&n) => Ok(Some(read(store, topic, n).await?)),
        None => Ok(None),
    }
}

/// Writes `manifest` only if no manifest with its number exists. `Ok(false)` means
/// another writer committed that number first: re-plan against the newer view.
pub async fn commit(store: &dyn ObjectStore, manifest: &Manifest) -> Result<bool> {
    let path = ManifestName {
        number: manifest.number,
    }
    .path(&manifest.topic);
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::BadManifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    match store
        .put_opts(
            &Path::from(path.as_str()),
            PutPayload::from(body),
            PutMode::Create.into(),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn manifest(number: u64) -> Manifest {
        let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        Manifest {
            number,
            topic: "page_views".into(),
            created_at: Utc::now(),
            schema_id: 3,
            watermarks: BTreeMap::from([("0".into(), 41234)]),
            dates: BTreeMap::from([(
                date,
                DateEntry {
                    version: 3,
                    rows: 81234,
                    files: vec![
                        "clean/page_views/date=2026-11-24/v00000003/part-00000.parquet".into(),
                    ],
                    checks: BTreeMap::from([("count_distinct(unique_key)".into(), 81234.into())]),
                    merge_conflicts: 0,
                },
            )]),
            rejected: Rejected::default(),
            format: CLEAN_FORMAT,
        }
    }

    #[test]
    fn a_manifest_from_before_the_format_field_is_format_1() {
        let mut json = serde_json::to_value(manifest(1)).unwrap();
        assert_eq!(json["format"], CLEAN_FORMAT);
        json.as_object_mut().unwrap().remove("format");
        let old: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(old.format, 1);
    }

    #[tokio::test]
    async fn a_number_is_committed_once_and_the_highest_is_current() {
        let store = InMemory::new();
        assert_eq!(latest(&store, "page_views").await.unwrap(), None);
        assert!(commit(&store, &manifest(1)).await.unwrap());
        assert!(!commit(&store, &manifest(1)).await.unwrap());
        assert!(commit(&store, &manifest(2)).await.unwrap());
        let current = latest(&store, "page_views").await.unwrap().unwrap();
        assert_eq!(current.number, 2);
        assert_eq!(current.watermark(0), 41234);
        assert_eq!(current.watermark(1), -1);
        assert_eq!(list(&store, "page_views").await.unwrap(), [1, 2]);
        let text = serde_json::to_value(&current).unwrap();
        assert_eq!(text["dates"]["2026-11-24"]["version"], 3);
        assert_eq!(text["watermarks"]["0"], 41234);
    }
}
