//! Where a partition's archive ends, and how a new owner finds it.
//!
//! After each upload copycat writes a small checkpoint object,
//! `raw/{topic}/_checkpoints/partition={p}.json`:
//! `{"topic": "t", "partition": 0, "last_offset": 1999, "file": "raw/t/partition=0/…parquet"}`.
//! (`_`-prefixed folders are skipped by Hive-style readers such as Spark and DuckDB.)
//!
//! Recovery never trusts the checkpoint or the committed Kafka offset alone: it lists
//! the partition's raw files and resumes right after the highest offset a file holds.
//! The checkpoint is checked against that listing; when they disagree (a crash between
//! the upload and the checkpoint, or files removed by hand) the listing wins and the
//! difference is logged. Because a file is uploaded in one piece (a single PUT, or a
//! multipart upload that only appears when completed), a crash at any point leaves
//! either the whole file or none of it, so resuming after the listed files neither loses
//! nor doubles an offset.
//!
//! Before a file is uploaded its range is claimed: `raw/{topic}/_claims/partition={p}/
//! {first:020}.json` (`{"topic","partition","first_offset","last_offset","owner"}`) is
//! created only if absent. A file starting at an offset is therefore always the range its
//! claim names, whoever uploads it: a new owner that finds claims after the listed files
//! (their upload was cut short, or is still running in an instance that lost the
//! partition) ends its files exactly where they say, so both write the same object. An
//! instance that finds a different claim at the start of its file has lost the partition
//! to another one and stops. So two instances never write overlapping files.
//!
//! Claims also name their file (`"file"`), and their names sort by offset where raw
//! files sort by date and hour (a late record's file sorts before older offsets). So
//! what is new after an offset is found without listing a partition's history: the
//! claims listing starts right after that offset's claim name, and only the hour folders
//! those claims name are listed ([`files_past`], [`recover`]). A whole-partition listing
//! is the fallback when a partition has no checkpoint (nothing archived, or files not
//! written by copycat), when its checkpoint does not say that files are claimed with
//! their names (`files_claimed`, written by copycats since claims name files), when a
//! claim names no file, or when the claims do not reach the checkpoint.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use std::collections::BTreeMap;

use crate::layout::{RawFile, raw_partition_prefix, raw_topic_prefix};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub topic: String,
    pub partition: i32,
    /// The last offset archived.
    pub last_offset: i64,
    /// The file that holds it.
    pub file: String,
    /// Every file from this one on is claimed with its name ([`Claim::file`]) before
    /// it is uploaded, so the files past this checkpoint are found from the claims.
    /// Absent (false) in checkpoints of copycats older than this field and of other
    /// writers: then only a whole listing finds them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub files_claimed: bool,
}

/// `raw/{topic}/_checkpoints/partition={p}.json`.
pub fn checkpoint_path(topic: &str, partition: i32) -> String {
    format!(
        "{}_checkpoints/partition={partition}.json",
        raw_topic_prefix(topic)
    )
}

pub async fn write(store: &dyn ObjectStore, c: &Checkpoint) -> Result<()> {
    let body = serde_json::to_vec(c).map_err(|e| Error::BadCheckpoint {
        path: checkpoint_path(&c.topic, c.partition),
        reason: e.to_string(),
    })?;
    store
        .put(
            &Path::from(checkpoint_path(&c.topic, c.partition)),
            PutPayload::from(body),
        )
        .await?;
    Ok(())
}

pub async fn read(
    store: &dyn ObjectStore,
    topic: &str,
    partition: i32,
) -> Result<Option<Checkpoint>> {
    let path = checkpoint_path(topic, partition);
    let bytes = match store.get(&Path::from(path.as_str())).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::BadCheckpoint {
            path,
            reason: e.to_string(),
        })
}

/// The claim of the file starting at `first_offset`, created before its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The copycat run that claimed it (for operators).
    pub owner: String,
    /// The raw file's path (absent in claims of copycats older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `raw/{topic}/_claims/partition={p}/`.
pub fn claims_prefix(topic: &str, partition: i32) -> String {
    format!("{}_claims/partition={partition}/", raw_topic_prefix(topic))
}

pub fn claim_path(topic: &str, partition: i32, first_offset: i64) -> String {
    format!("{}{first_offset:020}.json", claims_prefix(topic, partition))
}

/// What claiming a file's range found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The range is ours now.
    New,
    /// The same range was claimed before (by us on an earlier try, or by an earlier
    /// owner): uploading gives the same object.
    Same,
    /// Another range starting at the same offset is claimed: uploading would overlap.
    Conflict(Claim),
}

/// Claims `c`'s range unless a claim for its first offset exists.
pub async fn claim(store: &dyn ObjectStore, c: &Claim) -> Result<Claimed> {
    let path = claim_path(&c.topic, c.partition, c.first_offset);
    let body = serde_json::to_vec(c).map_err(|e| Error::BadCheckpoint {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let location = Path::from(path.as_str());
    match store
        .put_opts(&location, PutPayload::from(body), PutMode::Create.into())
        .await
    {
        Ok(_) => Ok(Claimed::New),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let existing = read_claim(store, &path).await?;
            if existing.last_offset == c.last_offset {
                Ok(Claimed::Same)
            } else {
                Ok(Claimed::Conflict(existing))
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn read_claim(store: &dyn ObjectStore, path: &str) -> Result<Claim> {
    let bytes = store.get(&Path::from(path)).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadCheckpoint {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Claimed ranges (first → last offset) of files starting at `from` or later.
pub async fn claims_from(
    store: &dyn ObjectStore,
    topic: &str,
    partition: i32,
    from: Option<i64>,
) -> Result<BTreeMap<i64, i64>> {
    let after = from.map(|f| f - 1);
    let (claims, _) = claims_after(store, topic, partition, after).await?;
    Ok(claims
        .into_iter()
        .map(|c| (c.first_offset, c.last_offset))
        .collect())
}

/// Claims of files starting after offset `after` (every claim when `None`), in offset
/// order, and how many keys the listing returned. Claim names are zero-padded offsets,
/// so the listing starts right after `after`'s name: its cost follows the claims past
/// `after`, not the partition's history (S3 starts a listing at a key).
pub async fn claims_after(
    store: &dyn ObjectStore,
    topic: &str,
    partition: i32,
    after: Option<i64>,
) -> Result<(Vec<Claim>, usize)> {
    let prefix = Path::from(claims_prefix(topic, partition).trim_end_matches('/'));
    let mut stream = match after {
        Some(a) if a >= 0 => {
            store.list_with_offset(Some(&prefix), &Path::from(claim_path(topic, partition, a)))
        }
        _ => store.list(Some(&prefix)),
    };
    let mut paths = Vec::new();
    while let Some(meta) = stream.try_next().await? {
        paths.push(meta.location.to_string());
    }
    let listed = paths.len();
    let mut claims: Vec<Claim> = futures::stream::iter(paths)
        .map(|path| async move { read_claim(store, &path).await })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    claims.retain(|c| after.is_none_or(|a| c.first_offset > a));
    claims.sort_by_key(|c| c.first_offset);
    Ok((claims, listed))
}

/// The raw files that `claims` name and that exist, found by listing only the hour
/// folders the claims name, and how many keys those listings returned. `None` when a
/// claim names no file: only a listing of the whole partition tells then.
pub async fn claimed_files(
    store: &dyn ObjectStore,
    claims: &[Claim],
) -> Result<Option<(Vec<RawFile>, usize)>> {
    let mut named = std::collections::HashSet::new();
    let mut folders = std::collections::BTreeSet::new();
    for c in claims {
        let Some(file) = &c.file else {
            return Ok(None);
        };
        let Some((folder, _)) = file.rsplit_once('/') else {
            return Ok(None);
        };
        folders.insert(folder.to_string());
        named.insert(file.as_str());
    }
    let mut files = Vec::new();
    let mut listed = 0;
    for folder in folders {
        let mut stream = store.list(Some(&Path::from(folder)));
        while let Some(meta) = stream.try_next().await? {
            listed += 1;
            let path = meta.location.to_string();
            if named.contains(path.as_str())
                && let Ok(f) = RawFile::parse(&path)
            {
                files.push(f);
            }
        }
    }
    files.sort_by_key(|f| f.first_offset);
    Ok(Some((files, listed)))
}

/// Raw files of a topic past given offsets, as [`files_past`] finds them.
#[derive(Debug, Default)]
pub struct Listing {
    /// In partition and offset order.
    pub files: Vec<RawFile>,
    /// `.parquet` objects with names that are not raw file names (full listings only).
    pub strange: Vec<String>,
    /// Keys the store returned, all listings together.
    pub keys_listed: usize,
    /// Partitions that needed a listing of their whole history, and why.
    pub full: Vec<(i32, &'static str)>,
}

/// The raw files of `topic` holding offsets past `watermark(partition)` (an offset, -1
/// for none): copydog's plan. Per partition this reads the checkpoint and lists the
/// claims past the watermark and the hour folders they name, so its cost follows what
/// is new rather than the archive's history; see the module notes for the fallbacks.
pub async fn files_past(
    store: &dyn ObjectStore,
    topic: &str,
    watermark: impl Fn(i32) -> i64,
) -> Result<Listing> {
    let root = raw_topic_prefix(topic);
    let top = store
        .list_with_delimiter(Some(&Path::from(root.trim_end_matches('/'))))
        .await?;
    let mut out = Listing {
        keys_listed: top.common_prefixes.len() + top.objects.len(),
        ..Listing::default()
    };
    let mut partitions: Vec<i32> = top
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename()?.strip_prefix("partition=")?.parse().ok())
        .collect();
    partitions.sort_unstable();
    for p in partitions {
        let w = watermark(p);
        let recent = match read(store, topic, p).await? {
            None => Err("no checkpoint"),
            Some(c) if !c.files_claimed => Err("the checkpoint does not say files are claimed"),
            Some(c) => {
                let (claims, listed) = claims_after(store, topic, p, Some(w)).await?;
                out.keys_listed += listed;
                match claimed_files(store, &claims).await? {
                    None => Err("a claim names no file"),
                    Some((files, listed)) => {
                        out.keys_listed += listed;
                        let reach = files.iter().map(|f| f.last_offset).max().unwrap_or(w);
                        if reach < c.last_offset {
                            Err("the claims do not reach the checkpoint")
                        } else {
                            Ok(files)
                        }
                    }
                }
            }
        };
        let files = match recent {
            Ok(files) => files,
            Err(why) => {
                out.full.push((p, why));
                let (files, strange) = list_raw(store, &raw_partition_prefix(topic, p)).await?;
                out.keys_listed += files.len() + strange.len();
                out.strange.extend(strange);
                files
            }
        };
        out.files.extend(
            files
                .into_iter()
                .filter(|f| f.topic == topic && f.partition == p && f.last_offset > w),
        );
    }
    out.files.sort_by_key(|f| (f.partition, f.first_offset));
    Ok(out)
}

/// Every raw file under `prefix` (a topic or a partition prefix). Objects that are not
/// raw files (checkpoints) are left out; `.parquet` objects with bad names are returned
/// in the second list.
pub async fn list_raw(
    store: &dyn ObjectStore,
    prefix: &str,
) -> Result<(Vec<RawFile>, Vec<String>)> {
    let prefix = Path::from(prefix.trim_end_matches('/'));
    let mut stream = store.list(Some(&prefix));
    let mut files = Vec::new();
    let mut strange = Vec::new();
    while let Some(meta) = stream.try_next().await? {
        let path = meta.location.to_string();
        if !path.ends_with(".parquet") {
            continue;
        }
        match RawFile::parse(&path) {
            Ok(f) => files.push(f),
            Err(_) => strange.push(path),
        }
    }
    Ok((files, strange))
}

/// Where a partition resumes, and what recovery noticed on the way.
#[derive(Debug, PartialEq, Eq)]
pub struct Resume {
    /// The first offset not archived; `None` when nothing is (read from the beginning).
    pub next_offset: Option<i64>,
    /// Disagreements between the checkpoint and the listing, for the log.
    pub notes: Vec<String>,
    /// Claimed ranges not (yet) in the listing, first → last offset: the next files
    /// must be exactly these.
    pub claims: BTreeMap<i64, i64>,
}

/// Decides the resume point from a partition's files and its checkpoint.
pub fn resume_point(files: &[RawFile], checkpoint: Option<&Checkpoint>) -> Resume {
    let mut notes = Vec::new();
    let listed_last = files.iter().map(|f| f.last_offset).max();
    if let Some(c) = checkpoint {
        if !files.iter().any(|f| f.path() == c.file) {
            notes.push(format!(
                "checkpoint names {} which is not listed; trusting the listing",
                c.file
            ));
        }
        match listed_last {
            Some(l) if l > c.last_offset => notes.push(format!(
                "files after the checkpoint (offsets {}..={l}): a crash between upload and checkpoint; resuming after them",
                c.last_offset + 1
            )),
            Some(l) if l < c.last_offset => notes.push(format!(
                "checkpoint says offset {} is archived but the files end at {l}; trusting the listing",
                c.last_offset
            )),
            None => notes.push(format!(
                "checkpoint says offset {} is archived but no file is listed; trusting the listing",
                c.last_offset
            )),
            _ => {}
        }
    }
    Resume {
        next_offset: listed_last.map(|l| l + 1),
        notes,
        claims: BTreeMap::new(),
    }
}

/// Reads the checkpoint and what was written after it and decides where to resume.
/// The checkpoint's file must exist and every claim past it must name its file; then
/// only those claims and the hour folders they name are listed. Otherwise (no
/// checkpoint, its file gone, claims of an older copycat) the partition's whole listing
/// decides.
pub async fn recover(store: &dyn ObjectStore, topic: &str, partition: i32) -> Result<Resume> {
    let checkpoint = read(store, topic, partition).await?;
    let recent = match &checkpoint {
        Some(c) if c.files_claimed => after_checkpoint(store, c).await?,
        _ => None,
    };
    let mut resume = match recent {
        Some((files, claims)) => {
            let mut resume = resume_point(&files, checkpoint.as_ref());
            let next = resume.next_offset.unwrap_or(0);
            resume.claims = claims
                .iter()
                .filter(|c| c.first_offset >= next)
                .map(|c| (c.first_offset, c.last_offset))
                .collect();
            resume
        }
        None => {
            let (files, _) = list_raw(store, &raw_partition_prefix(topic, partition)).await?;
            let files: Vec<RawFile> = files
                .into_iter()
                .filter(|f| f.topic == topic && f.partition == partition)
                .collect();
            let mut resume = resume_point(&files, checkpoint.as_ref());
            resume.claims = claims_from(store, topic, partition, resume.next_offset).await?;
            resume
        }
    };
    if !resume.claims.is_empty() {
        resume.notes.push(format!(
            "claimed ranges not in the listing, to be written exactly so: {:?}",
            resume.claims
        ));
    }
    Ok(resume)
}

/// The checkpoint's file and the claimed files after it, with the claims after it;
/// `None` when only a whole listing can tell.
async fn after_checkpoint(
    store: &dyn ObjectStore,
    c: &Checkpoint,
) -> Result<Option<(Vec<RawFile>, Vec<Claim>)>> {
    let Ok(last) = RawFile::parse(&c.file) else {
        return Ok(None);
    };
    match store.head(&Path::from(c.file.as_str())).await {
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let (claims, _) = claims_after(store, &c.topic, c.partition, Some(c.last_offset)).await?;
    let Some((mut files, _)) = claimed_files(store, &claims).await? else {
        return Ok(None);
    };
    files.push(last);
    Ok(Some((files, claims)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use object_store::memory::InMemory;

    fn file(first: i64, last: i64) -> RawFile {
        RawFile {
            topic: "t".into(),
            partition: 1,
            date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            hour: (first % 24) as u8,
            first_offset: first,
            last_offset: last,
        }
    }

    fn cp(f: &RawFile) -> Checkpoint {
        Checkpoint {
            topic: "t".into(),
            partition: 1,
            last_offset: f.last_offset,
            file: f.path(),
            files_claimed: false,
        }
    }

    #[test]
    fn listing_decides_and_checkpoint_is_checked() {
        let files = vec![file(0, 9), file(10, 19), file(20, 29)];
        // Agreeing.
        let r = resume_point(&files, Some(&cp(&files[2])));
        assert_eq!(
            r,
            Resume {
                next_offset: Some(30),
                notes: vec![],
                claims: BTreeMap::new()
            }
        );
        // Crash after the upload of 20..=29, before its checkpoint.
        let r = resume_point(&files, Some(&cp(&files[1])));
        assert_eq!(r.next_offset, Some(30));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        // A checkpoint naming a file that is gone.
        let r = resume_point(&files[..1], Some(&cp(&files[2])));
        assert_eq!(r.next_offset, Some(10));
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        // Nothing archived.
        assert_eq!(
            resume_point(&[], None),
            Resume {
                next_offset: None,
                notes: vec![],
                claims: BTreeMap::new()
            }
        );
        // Files without a checkpoint (the checkpoint write never happened).
        assert_eq!(resume_point(&files, None).next_offset, Some(30));
    }

    #[tokio::test]
    async fn claims_are_created_once_and_found_by_recovery() {
        let store = InMemory::new();
        let c = |first, last, owner: &str| Claim {
            topic: "t".into(),
            partition: 1,
            first_offset: first,
            last_offset: last,
            owner: owner.into(),
            file: None,
        };
        assert_eq!(claim(&store, &c(0, 9, "a")).await.unwrap(), Claimed::New);
        assert_eq!(claim(&store, &c(0, 9, "a")).await.unwrap(), Claimed::Same);
        assert_eq!(claim(&store, &c(0, 9, "b")).await.unwrap(), Claimed::Same);
        assert_eq!(
            claim(&store, &c(0, 5, "b")).await.unwrap(),
            Claimed::Conflict(c(0, 9, "a"))
        );
        claim(&store, &c(10, 19, "a")).await.unwrap();
        claim(&store, &c(20, 29, "a")).await.unwrap();
        // File 0..=9 is uploaded; 10..=19 and 20..=29 are only claimed.
        store
            .put(
                &Path::from(file(0, 9).path()),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(r.next_offset, Some(10));
        assert_eq!(r.claims, BTreeMap::from([(10, 19), (20, 29)]));
        assert_eq!(claims_from(&store, "t", 1, None).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn recovers_from_an_object_store() {
        let store = InMemory::new();
        assert_eq!(recover(&store, "t", 1).await.unwrap().next_offset, None);
        let files = [file(0, 9), file(10, 19)];
        for f in &files {
            store
                .put(&Path::from(f.path()), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        // Another partition and a stray object do not count.
        let mut other = file(0, 99);
        other.partition = 2;
        store
            .put(&Path::from(other.path()), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        write(&store, &cp(&files[0])).await.unwrap();
        assert_eq!(read(&store, "t", 1).await.unwrap(), Some(cp(&files[0])));
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(r.next_offset, Some(20));
        assert_eq!(r.notes.len(), 1);
        write(&store, &cp(&files[1])).await.unwrap();
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(
            r,
            Resume {
                next_offset: Some(20),
                notes: vec![],
                claims: BTreeMap::new()
            }
        );
        let (all, strange) = list_raw(&store, "raw/t/").await.unwrap();
        assert_eq!((all.len(), strange.len()), (3, 0));
    }

    /// Puts a raw file (a stand-in body) of partition 1 in `hour`, claimed with its
    /// name unless `claimed` is false, and the checkpoint naming it.
    async fn put_file(store: &InMemory, first: i64, last: i64, hour: u8, claimed: bool) {
        let mut f = file(first, last);
        f.hour = hour;
        if claimed {
            let c = Claim {
                topic: "t".into(),
                partition: 1,
                first_offset: first,
                last_offset: last,
                owner: "a".into(),
                file: Some(f.path()),
            };
            assert_eq!(claim(store, &c).await.unwrap(), Claimed::New);
        }
        store
            .put(&Path::from(f.path()), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        let mut c = cp(&f);
        c.files_claimed = claimed;
        write(store, &c).await.unwrap();
    }

    fn ranges(files: &[RawFile]) -> Vec<(i64, i64)> {
        files
            .iter()
            .map(|f| (f.first_offset, f.last_offset))
            .collect()
    }

    #[tokio::test]
    async fn what_is_new_is_found_without_listing_the_history() {
        let store = InMemory::new();
        for i in 0..500 {
            put_file(&store, i * 10, i * 10 + 9, 3, true).await;
        }
        // New since the watermark 4999: one file in a later hour, then one holding late
        // records, in an earlier hour folder (its name sorts before older offsets).
        put_file(&store, 5000, 5009, 5, true).await;
        put_file(&store, 5010, 5019, 1, true).await;
        let listing = files_past(&store, "t", |_| 4999).await.unwrap();
        assert_eq!(ranges(&listing.files), vec![(5000, 5009), (5010, 5019)]);
        assert!(listing.full.is_empty(), "{:?}", listing.full);
        assert!(
            listing.keys_listed < 10,
            "{} keys listed",
            listing.keys_listed
        );
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(r.next_offset, Some(5020));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        // Nothing new.
        let listing = files_past(&store, "t", |_| 5019).await.unwrap();
        assert!(listing.files.is_empty());
        assert!(listing.keys_listed < 10);

        // A claim past the files whose upload never happened is to be written so.
        let c = Claim {
            topic: "t".into(),
            partition: 1,
            first_offset: 5020,
            last_offset: 5029,
            owner: "b".into(),
            file: Some(file(5020, 5029).path()),
        };
        claim(&store, &c).await.unwrap();
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(r.next_offset, Some(5020));
        assert_eq!(r.claims, BTreeMap::from([(5020, 5029)]));
        assert!(
            files_past(&store, "t", |_| 5019)
                .await
                .unwrap()
                .files
                .is_empty()
        );
    }

    #[tokio::test]
    async fn files_the_claims_do_not_account_for_are_found_by_a_whole_listing() {
        let store = InMemory::new();
        put_file(&store, 0, 9, 3, true).await;
        // Written without a claim by a writer that says its files are claimed: the
        // checkpoint is past the claims.
        put_file(&store, 10, 19, 4, false).await;
        let mut c = read(&store, "t", 1).await.unwrap().unwrap();
        c.files_claimed = true;
        write(&store, &c).await.unwrap();
        let listing = files_past(&store, "t", |_| 9).await.unwrap();
        assert_eq!(ranges(&listing.files), vec![(10, 19)]);
        assert_eq!(
            listing.full,
            vec![(1, "the claims do not reach the checkpoint")]
        );
        assert_eq!(recover(&store, "t", 1).await.unwrap().next_offset, Some(20));
        // A writer that does not say so.
        c.files_claimed = false;
        write(&store, &c).await.unwrap();
        let listing = files_past(&store, "t", |_| 9).await.unwrap();
        assert_eq!(ranges(&listing.files), vec![(10, 19)]);
        assert_eq!(
            listing.full,
            vec![(1, "the checkpoint does not say files are claimed")]
        );

        // A claim of an older copycat names no file.
        let old = Claim {
            topic: "t".into(),
            partition: 1,
            first_offset: 20,
            last_offset: 29,
            owner: "old".into(),
            file: None,
        };
        claim(&store, &old).await.unwrap();
        let f = file(20, 29);
        store
            .put(&Path::from(f.path()), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        c.files_claimed = true;
        write(&store, &c).await.unwrap();
        let listing = files_past(&store, "t", |_| 19).await.unwrap();
        assert_eq!(ranges(&listing.files), vec![(20, 29)]);
        assert_eq!(listing.full, vec![(1, "a claim names no file")]);
        assert_eq!(recover(&store, "t", 1).await.unwrap().next_offset, Some(30));

        // The checkpoint's file removed by hand: the listing decides.
        store
            .delete(&Path::from(file(10, 19).path()))
            .await
            .unwrap_or(());
        let mut gone = file(10, 19);
        gone.hour = 4;
        store.delete(&Path::from(gone.path())).await.unwrap();
        let r = recover(&store, "t", 1).await.unwrap();
        assert_eq!(r.next_offset, Some(30));

        // A partition without a checkpoint is listed whole.
        let mut other = file(0, 4);
        other.partition = 2;
        store
            .put(&Path::from(other.path()), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        let listing = files_past(&store, "t", |_| -1).await.unwrap();
        assert!(
            listing.full.contains(&(2, "no checkpoint")),
            "{:?}",
            listing.full
        );
        assert!(listing.files.iter().any(|f| f.partition == 2));
    }
}
