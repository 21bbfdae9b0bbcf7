//! The verifier's verdicts, kept in the object store at `verify/{topic}/verdicts.json` so
//! that every replica and the next run see them, and what they let a run skip.
//!
//! Per date the file holds the clean version checked, each store's check values, the
//! verdict and when it was reached. Beside them: up to which raw offset per partition
//! the verifier has seen records (the manifest's watermarks at that run), and which clean
//! dates the records of each raw date folder (`raw/…/date=…/`, copycat's Kafka-timestamp
//! date) belong to by the verifier's own date rule. A run then decodes only the raw files
//! past those offsets, finds the dates they touch, and rechecks a date only when its
//! clean version moved, new raw records belong to it, or its last verdict was not `ok`;
//! the raw files it decodes for such a date are those of the raw date folders known to
//! hold its records. Warehouses are always asked (the checks run inside them); a date
//! whose warehouse values changed is compared again against its stored clean values.
//!
//! Two replicas may write the file at once: each writes a whole, valid file, and the
//! loser's verdicts are recomputed by the next run at worst.

use std::collections::{BTreeMap, BTreeSet};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::checks::CheckValues;
use crate::error::{Error, Result};

/// What the file says about one date.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DateVerdict {
    /// The clean archive's version of the date that was checked (`None`: the date was
    /// not in the clean archive).
    pub clean_version: Option<u32>,
    /// A digest of the clean files' paths, sizes, ETags and modification times: a file
    /// replaced in place, without a new version, is checked again too.
    #[serde(default)]
    pub clean_files: String,
    /// `ok` or `MISMATCH`.
    pub verdict: String,
    /// RFC 3339, UTC.
    pub checked_at: String,
    /// Store → check values.
    pub stores: BTreeMap<String, CheckValues>,
}

/// The verdicts of one topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdicts {
    /// Per Kafka partition, the raw offset up to which records have been dated.
    pub watermarks: BTreeMap<String, i64>,
    /// Raw date folder (`YYYY-MM-DD`) → the clean dates its records belong to.
    pub raw_dates: BTreeMap<String, BTreeSet<String>>,
    /// Date (`YYYY-MM-DD`) → its last verdict.
    pub dates: BTreeMap<String, DateVerdict>,
    /// Raw records up to `watermarks` that are no clean row by the verifier's reading
    /// (absent in files of older verifiers: then nothing is taken from the file).
    #[serde(default)]
    pub rejected: Option<u64>,
    /// The registry id of the schema raw records were decoded into: values computed with
    /// another (older) newest schema are not reused.
    #[serde(default)]
    pub schema_id: Option<u32>,
}

/// Where a topic's verdicts are kept.
pub fn path(topic: &str) -> Path {
    Path::from(format!("verify/{topic}/verdicts.json"))
}

/// The topic's verdicts; empty when there are none yet.
pub async fn load(store: &dyn ObjectStore, topic: &str) -> Result<Verdicts> {
    let p = path(topic);
    let bytes = match store.get(&p).await {
        Ok(r) => r.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(Verdicts::default()),
        Err(e) => Err(e),
    }
    .map_err(|e| Error::Verdicts {
        path: p.to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Verdicts {
        path: p.to_string(),
        reason: format!("not a verdicts file ({e}); delete it or run with --full"),
    })
}

/// Writes the topic's verdicts (a whole new file).
pub async fn save(store: &dyn ObjectStore, topic: &str, verdicts: &Verdicts) -> Result<()> {
    let p = path(topic);
    let body = serde_json::to_vec(verdicts).map_err(|e| Error::Verdicts {
        path: p.to_string(),
        reason: e.to_string(),
    })?;
    store
        .put(&p, PutPayload::from(body))
        .await
        .map_err(|e| Error::Verdicts {
            path: p.to_string(),
            reason: e.to_string(),
        })?;
    Ok(())
}
