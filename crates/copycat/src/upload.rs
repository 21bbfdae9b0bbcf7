//! Uploads of finished raw files: one PUT for small files, a multipart upload (aborted
//! on failure) for large ones. Either way the object appears whole or not at all.

use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::Result;

/// Size of each part of a multipart upload (S3 wants at least 5 MiB but the last).
pub const PART_SIZE: usize = 8 << 20;

/// Uploads `data` to `path`, in parts when it is larger than `multipart_threshold`.
pub async fn upload(
    store: &dyn ObjectStore,
    path: &Path,
    data: bytes::Bytes,
    multipart_threshold: usize,
) -> Result<()> {
    if data.len() <= multipart_threshold {
        store.put(path, PutPayload::from(data)).await?;
        return Ok(());
    }
    let mut upload = store.put_multipart(path).await?;
    let mut parts = Vec::new();
    for start in (0..data.len()).step_by(PART_SIZE) {
        let end = (start + PART_SIZE).min(data.len());
        parts.push(upload.put_part(PutPayload::from(data.slice(start..end))));
    }
    let mut result = futures::future::try_join_all(parts).await.map(|_| ());
    if result.is_ok() {
        result = upload.complete().await.map(|_| ());
    }
    if let Err(e) = result {
        if let Err(abort) = upload.abort().await {
            tracing::warn!(path = %path, error = %abort, "aborting a failed multipart upload failed");
        }
        return Err(e.into());
    }
    Ok(())
}

/// How long one try may take. The object store client retries inside a try too; the
/// bound keeps every upload, tries and pauses included, well under Kafka's
/// `max.poll.interval.ms` (5 min), which matters when a revoke waits for uploads.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Retries `f` with exponential backoff (0.2 s doubling, up to 10 s between tries),
/// `attempts` times in all, each try bounded by [`ATTEMPT_TIMEOUT`].
pub async fn with_retries<T, F, Fut>(what: &str, attempts: u32, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delay = Duration::from_millis(200);
    let mut tried = 0;
    loop {
        tried += 1;
        let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, f()).await {
            Ok(r) => r,
            Err(_) => Err(crate::Error::Fatal(format!(
                "{what} took longer than {ATTEMPT_TIMEOUT:?}"
            ))),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if tried < attempts => {
                tracing::warn!(what, attempt = tried, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn small_and_multipart_uploads_give_the_same_object() {
        let store = InMemory::new();
        let data: Vec<u8> = (0..(PART_SIZE * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let data = bytes::Bytes::from(data);
        for (name, threshold) in [("one", usize::MAX), ("parts", 1024)] {
            let path = Path::from(name);
            upload(&store, &path, data.clone(), threshold)
                .await
                .unwrap();
            let got = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(got, data, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_try_times_out() {
        let r: Result<()> = with_retries("upload", 2, std::future::pending).await;
        let e = r.unwrap_err().to_string();
        assert!(e.contains("upload took longer than"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_then_gives_up() {
        let mut calls = 0;
        let r: Result<()> = with_retries("x", 3, || {
            calls += 1;
            async { Err(crate::Error::Fatal("no".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let r = with_retries("x", 3, || {
            calls += 1;
            let ok = calls == 2;
            async move {
                if ok {
                    Ok(7)
                } else {
                    Err(crate::Error::Fatal("no".into()))
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}
