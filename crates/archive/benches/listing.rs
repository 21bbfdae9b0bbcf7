//! What finding the new raw files costs as the archive's history grows: copydog's
//! planning ([`files_past`]) and copycat's recovery ([`recover`]) with 100 and with
//! 100,000 old raw files in one partition, next to the whole-partition listing both did
//! before (`list_raw`), run in the same process on the same store.
//!
//! The store keeps its keys sorted and starts a listing at a key, as S3 does with
//! `start-after` (the local S3 server, s3s-fs, answers `start-after` correctly but walks
//! its whole folder for every listing, so timing it would measure s3s-fs). Reported per
//! history size: keys the store returned and milliseconds, median of three rounds. Each
//! case finds the same 10 new files (one of them in an earlier hour folder: late
//! records). Nothing is asserted.
//!
//! `cargo bench -p onepipe-archive --bench listing` (no stack needed).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use onepipe_archive::checkpoint::{self, Checkpoint, Claim, files_past, list_raw, recover};
use onepipe_archive::layout::{RawFile, raw_partition_prefix, raw_topic_prefix};

/// An in-memory store whose listings start at a key and cost what they return, and
/// which counts the keys it returns.
#[derive(Debug, Default)]
struct Sorted {
    inner: InMemory,
    keys: RwLock<BTreeSet<String>>,
    returned: AtomicUsize,
}

impl fmt::Display for Sorted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sorted")
    }
}

impl Sorted {
    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(key),
            last_modified: Utc::now(),
            size: 0,
            e_tag: None,
            version: None,
        }
    }

    /// Keys under `prefix` (a folder) after `after`.
    fn range(&self, prefix: Option<&Path>, after: Option<&Path>) -> Vec<ObjectMeta> {
        let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Included(prefix.clone()),
        };
        let keys = self.keys.read().unwrap();
        let out: Vec<ObjectMeta> = keys
            .range((start, Bound::Unbounded))
            .take_while(|k| k.starts_with(&prefix))
            .map(|k| Self::meta(k))
            .collect();
        self.returned.fetch_add(out.len(), Ordering::Relaxed);
        out
    }

    fn take(&self) -> usize {
        self.returned.swap(0, Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Sorted {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
        let r = self.inner.put_opts(l, p, o).await?;
        self.keys.write().unwrap().insert(l.to_string());
        Ok(r)
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::iter(self.range(prefix, None).into_iter().map(Ok)).boxed()
    }
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        stream::iter(self.range(prefix, Some(offset)).into_iter().map(Ok)).boxed()
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        // One entry per sub-folder, skipping over its contents as S3's index does.
        let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let keys = self.keys.read().unwrap();
        let mut out = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        let mut from = Bound::Included(prefix.clone());
        while let Some(k) = keys.range((from.clone(), Bound::Unbounded)).next() {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    let folder = format!("{prefix}{dir}");
                    from = Bound::Excluded(format!("{folder}/{}", char::MAX));
                    out.common_prefixes.push(Path::from(folder));
                }
                None => {
                    from = Bound::Excluded(k.clone());
                    out.objects.push(Self::meta(k));
                }
            }
        }
        self.returned.fetch_add(
            out.common_prefixes.len() + out.objects.len(),
            Ordering::Relaxed,
        );
        Ok(out)
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

const TOPIC: &str = "t";
const NEW_FILES: i64 = 10;

/// File `i` of partition 0: offsets `10i..=10i+9`, one file an hour from 2025-01-01.
fn file(i: i64, hour_shift: i64) -> RawFile {
    let hours = i + hour_shift;
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    RawFile {
        topic: TOPIC.into(),
        partition: 0,
        date: start + chrono::Days::new((hours / 24) as u64),
        hour: (hours % 24) as u8,
        first_offset: i * 10,
        last_offset: i * 10 + 9,
    }
}

/// Claims, uploads (a stand-in body) and checkpoints a file, as copycat does.
async fn archive(store: &Sorted, f: &RawFile) {
    let claim = Claim {
        topic: TOPIC.into(),
        partition: 0,
        first_offset: f.first_offset,
        last_offset: f.last_offset,
        owner: "bench".into(),
        file: Some(f.path()),
    };
    checkpoint::claim(store, &claim).await.unwrap();
    store
        .put(&Path::from(f.path()), PutPayload::from_static(b"x"))
        .await
        .unwrap();
    let c = Checkpoint {
        topic: TOPIC.into(),
        partition: 0,
        last_offset: f.last_offset,
        file: f.path(),
        files_claimed: true,
    };
    checkpoint::write(store, &c).await.unwrap();
}

/// (keys returned, milliseconds, result), median of three rounds by time.
async fn measure<F, Fut>(store: &Sorted, mut f: F) -> (usize, f64, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = usize>,
{
    let mut rounds = Vec::new();
    for _ in 0..3 {
        store.take();
        let started = Instant::now();
        let found = f().await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        rounds.push((store.take(), ms, found));
    }
    rounds.sort_by(|a, b| a.1.total_cmp(&b.1));
    rounds[1]
}

#[tokio::main]
async fn main() {
    println!(
        "| old raw files | case | keys listed | ms (median of 3) | result (plan: new files; recovery: resume offset) |\n|---|---|---|---|---|"
    );
    for old in [100i64, 100_000] {
        let store = Sorted::default();
        for i in 0..old {
            archive(&store, &file(i, 0)).await;
        }
        let watermark = old * 10 - 1;
        for i in old..old + NEW_FILES {
            // The fourth new file holds late records: an hour folder three hours back.
            let shift = if i == old + 3 { -3 } else { 0 };
            archive(&store, &file(i, shift)).await;
        }
        let s = &store;
        let rows = [
            (
                "copydog plan: claims past the watermark",
                measure(s, || async {
                    let l = files_past(s, TOPIC, |_| watermark).await.unwrap();
                    assert!(l.full.is_empty(), "{:?}", l.full);
                    l.files.len()
                })
                .await,
            ),
            (
                "copydog plan before: list the topic's raw/",
                measure(s, || async {
                    let (files, _) = list_raw(s, &raw_topic_prefix(TOPIC)).await.unwrap();
                    files.iter().filter(|f| f.last_offset > watermark).count()
                })
                .await,
            ),
            (
                "copycat recovery: checkpoint and claims past it",
                measure(s, || async {
                    let r = recover(s, TOPIC, 0).await.unwrap();
                    r.next_offset.unwrap_or(0) as usize
                })
                .await,
            ),
            (
                "copycat recovery before: list the partition",
                measure(s, || async {
                    let (files, _) = list_raw(s, &raw_partition_prefix(TOPIC, 0)).await.unwrap();
                    files.iter().map(|f| f.last_offset + 1).max().unwrap_or(0) as usize
                })
                .await,
            ),
        ];
        for (case, (keys, ms, found)) in rows {
            println!("| {old} | {case} | {keys} | {ms:.2} | {found} |");
        }
    }
}
