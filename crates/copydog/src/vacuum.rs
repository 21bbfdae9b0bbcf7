//! `copydog vacuum`: deletes clean files that no recent manifest names.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_core::layout::{CLEAN_ROOT, MANIFESTS_DIR};
use onepipe_core::manifest;

use crate::error::Result;

/// What a vacuum removed (or would remove, on a dry run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VacuumSummary {
    pub kept_manifests: usize,
    pub deleted: Vec<String>,
}

/// Deletes every object under `clean/{topic}/` (manifests aside) that none of the last
/// `keep` manifests names and that is older than `older_than`, so readers of any of
/// those manifests, and runs still writing their files, are never disturbed.
pub async fn vacuum(
    store: &dyn ObjectStore,
    topic: &str,
    older_than: Duration,
    keep: usize,
    dry_run: bool,
) -> Result<VacuumSummary> {
    let numbers = manifest::list(store, topic).await?;
    let recent = &numbers[numbers.len().saturating_sub(keep.max(1))..];
    let mut named = HashSet::new();
    for &n in recent {
        let m = manifest::read(store, topic, n).await?;
        for entry in m.dates.values() {
            named.extend(entry.files.iter().cloned());
        }
        named.extend(m.rejected.files.iter().cloned());
    }
    let cutoff = Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
    let prefix = Path::from(format!("{CLEAN_ROOT}/{topic}"));
    let manifests = format!("{CLEAN_ROOT}/{topic}/{MANIFESTS_DIR}/");
    let mut deleted = Vec::new();
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.try_next().await? {
        let path = meta.location.to_string();
        if path.starts_with(&manifests) || named.contains(&path) || meta.last_modified > cutoff {
            continue;
        }
        deleted.push(path);
    }
    drop(listing);
    deleted.sort();
    if !dry_run {
        for path in &deleted {
            store.delete(&Path::from(path.as_str())).await?;
        }
    }
    Ok(VacuumSummary {
        kept_manifests: recent.len(),
        deleted,
    })
}
