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

use futures::TryStreamExt;
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
    let prefix = Path::from(claims_prefix(topic, partition).trim_end_matches('/'));
    // Names are zero-padded, so listing after the name of `from - 1` skips older claims.
    let mut stream = match from {
        Some(f) if f > 0 => store.list_with_offset(
            Some(&prefix),
            &Path::from(claim_path(topic, partition, f - 1)),
        ),
        _ => store.list(Some(&prefix)),
    };
    let mut out = BTreeMap::new();
    while let Some(meta) = stream.try_next().await? {
        let path = meta.location.to_string();
        let c = read_claim(store, &path).await?;
        if from.is_none_or(|f| c.first_offset >= f) {
            out.insert(c.first_offset, c.last_offset);
        }
    }
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

/// Reads the listing and checkpoint of a partition and decides where to resume.
pub async fn recover(store: &dyn ObjectStore, topic: &str, partition: i32) -> Result<Resume> {
    let checkpoint = read(store, topic, partition).await?;
    let (files, _) = list_raw(store, &raw_partition_prefix(topic, partition)).await?;
    let files: Vec<RawFile> = files
        .into_iter()
        .filter(|f| f.topic == topic && f.partition == partition)
        .collect();
    let mut resume = resume_point(&files, checkpoint.as_ref());
    resume.claims = claims_from(store, topic, partition, resume.next_offset).await?;
    if !resume.claims.is_empty() {
        resume.notes.push(format!(
            "claimed ranges not in the listing, to be written exactly so: {:?}",
            resume.claims
        ));
    }
    Ok(resume)
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
}
