//! `copydog vacuum`: deletes clean files that no recent manifest names, and copycat's
//! claims for raw files that copydog has merged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_archive::checkpoint::list_raw;
use onepipe_archive::delta;
use onepipe_archive::layout::{CLEAN_ROOT, MANIFESTS_DIR, raw_topic_prefix};
use onepipe_archive::manifest::{self, Manifest};

use crate::error::Result;

/// What a vacuum removed (or would remove, on a dry run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VacuumSummary {
    pub kept_manifests: usize,
    pub deleted: Vec<String>,
    /// Claims under `raw/{topic}/_claims/` no longer needed.
    pub claims: Vec<String>,
    /// Delta log entries removed: commits older than the table's log retention
    /// (`delta.logRetentionDuration`, 30 days unless set) and older than a checkpoint.
    pub log_entries: usize,
}

/// Deletes every object under `clean/{topic}/` (manifests and the Delta log aside) that
/// none of the last `keep` manifests names and that is older than `older_than`, so
/// readers of any of those manifests, and runs still writing their files, are never
/// disturbed. The Delta table is brought up to the newest manifest first, and the files
/// its current version names are kept whatever happens (Delta readers of older versions,
/// by time travel, lose the files vacuum removes, as with Delta's own vacuum).
pub async fn vacuum(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    older_than: Duration,
    keep: usize,
    dry_run: bool,
) -> Result<VacuumSummary> {
    if !dry_run && let Err(e) = delta::publish(store.clone(), topic).await {
        tracing::warn!(topic, error = %e, "the Delta table was not updated before vacuum");
    }
    let delta_files: Vec<String> = match delta::open(store.clone(), topic, None).await {
        Ok(Some(table)) => match table.snapshot() {
            Ok(s) => s
                .log_data()
                .iter()
                .map(|f| format!("{}/{}", delta::table_root(topic), f.path()))
                .collect(),
            Err(e) => return Err(delta_error(topic, e.to_string())),
        },
        Ok(None) => Vec::new(),
        Err(e) => return Err(delta_error(topic, e.to_string())),
    };
    let store_arc = store.clone();
    let store = store.as_ref();
    let numbers = manifest::list(store, topic).await?;
    let recent = &numbers[numbers.len().saturating_sub(keep.max(1))..];
    let mut named = HashSet::new();
    let mut newest = None;
    for &n in recent {
        let m = manifest::read(store, topic, n).await?;
        newest = Some(m.clone());
        for entry in m.dates.values() {
            named.extend(entry.files.iter().cloned());
        }
        named.extend(m.rejected.files.iter().cloned());
    }
    named.extend(delta_files);
    let cutoff = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
    let prefix = Path::from(format!("{CLEAN_ROOT}/{topic}"));
    let manifests = format!("{CLEAN_ROOT}/{topic}/{MANIFESTS_DIR}/");
    let delta_log = format!("{}/{}/", delta::table_root(topic), delta::LOG_DIR);
    let mut deleted = Vec::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.try_next().await? {
        let path = meta.location.to_string();
        if path.starts_with(&manifests)
            || path.starts_with(&delta_log)
            || named.contains(&path)
            || meta.last_modified > cutoff
        {
            continue;
        }
        deleted.push(path);
    }
    drop(listing);
    deleted.sort();
    let claims = match &newest {
        Some(m) => stale_claims(store, topic, m, cutoff).await?,
        None => Vec::new(),
    };
    let mut log_entries = 0;
    if !dry_run {
        for path in deleted.iter().chain(&claims) {
            store.delete(&Path::from(path.as_str())).await?;
        }
        log_entries = delta::clean_log(store_arc, topic).await?;
    }
    Ok(VacuumSummary {
        kept_manifests: recent.len(),
        deleted,
        claims,
        log_entries,
    })
}

/// Claims copycat no longer reads: a raw file starting at the claim's offset is listed
/// and lies within the newest manifest's watermarks (merged into clean/), and the claim
/// is older than `cutoff`. Copycat only reads claims past its listed files on recovery,
/// so these guard nothing any more.
async fn stale_claims(
    store: &dyn ObjectStore,
    topic: &str,
    newest: &Manifest,
    cutoff: chrono::DateTime<Utc>,
) -> Result<Vec<String>> {
    let prefix = raw_topic_prefix(topic);
    let (files, _) = list_raw(store, &prefix).await?;
    let merged: HashSet<(i32, i64)> = files
        .iter()
        .filter(|f| f.last_offset <= newest.watermark(f.partition))
        .map(|f| (f.partition, f.first_offset))
        .collect();
    let claims_root = format!("{prefix}_claims/");
    let mut out = Vec::new();
    let mut listing = store.list(Some(&Path::from(claims_root.trim_end_matches('/'))));
    while let Some(meta) = listing.try_next().await? {
        let path = meta.location.to_string();
        let Some((partition, first)) = path
            .strip_prefix(&claims_root)
            .and_then(|rest| rest.strip_prefix("partition="))
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(p, name)| {
                Some((
                    p.parse::<i32>().ok()?,
                    name.strip_suffix(".json")?.parse::<i64>().ok()?,
                ))
            })
        else {
            continue;
        };
        if meta.last_modified <= cutoff && merged.contains(&(partition, first)) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Vacuum refuses to run on a Delta table it cannot read: it could not tell which files
/// the table's readers need.
fn delta_error(topic: &str, reason: String) -> crate::error::Error {
    crate::error::Error::Archive(onepipe_archive::Error::Delta {
        topic: topic.to_string(),
        reason: format!("vacuum needs the table's current files: {reason}"),
    })
}
