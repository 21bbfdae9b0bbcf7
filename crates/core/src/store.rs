//! Object stores opened from a URL, so one code path serves tests and production.
//!
//! - `file:///path`: a local folder (created if missing).
//! - `s3://bucket[/prefix]`: S3 or an S3-compatible server. Credentials and region come
//!   from the usual `AWS_*` environment variables; the endpoint from `AWS_ENDPOINT_URL`
//!   (or `ONEPIPE_S3_ENDPOINT`), in which case path-style requests are used and plain
//!   `http://` is allowed.
//! - `memory://`: in-process, for unit tests.
//!
//! A prefix in the URL is applied to every path, so callers use [`crate::layout`] paths as
//! they are.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::{Error, Result};

/// Environment variables read for the S3 endpoint, first match wins.
pub const S3_ENDPOINT_VARS: [&str; 3] = ["ONEPIPE_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];

/// Opens the object store `url` names.
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let err = |reason: String| Error::StoreUrl {
        url: url.to_string(),
        reason,
    };
    if url == "memory://" || url == "memory:" {
        return Ok(Arc::new(InMemory::new()));
    }
    let parsed = Url::parse(url).map_err(|e| {
        err(format!(
            "{e}; expected file:///path, s3://bucket/prefix or memory://"
        ))
    })?;
    match parsed.scheme() {
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| err("not an absolute local path".to_string()))?;
            std::fs::create_dir_all(&path)
                .map_err(|e| err(format!("cannot create {}: {e}", path.display())))?;
            let fs = LocalFileSystem::new_with_prefix(&path)?;
            Ok(Arc::new(fs))
        }
        "s3" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| err("no bucket: expected s3://bucket/prefix".to_string()))?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = S3_ENDPOINT_VARS
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()));
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false)
                    .with_endpoint(endpoint);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err()
            {
                builder = builder.with_region("us-east-1");
            }
            let s3 = builder.build()?;
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Ok(Arc::new(s3))
            } else {
                Ok(Arc::new(PrefixStore::new(s3, prefix)))
            }
        }
        "memory" => Err(err("memory:// takes no path".to_string())),
        other => Err(err(format!(
            "unsupported scheme {other:?}; expected file:///path, s3://bucket/prefix or memory://"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutMode, PutPayload};

    #[tokio::test]
    async fn memory_and_file_stores_work_the_same() {
        let dir = std::env::temp_dir().join(format!("onepipe-store-test-{}", std::process::id()));
        let file_url = format!("file://{}", dir.display());
        for url in ["memory://", file_url.as_str()] {
            let store = open(url).unwrap();
            let path = Path::from("clean/t/_manifests/0000000001.json");
            store
                .put_opts(
                    &path,
                    PutPayload::from_static(b"{}"),
                    PutMode::Create.into(),
                )
                .await
                .unwrap();
            // "Create only if absent" is what makes manifest commits safe.
            let again = store
                .put_opts(
                    &path,
                    PutPayload::from_static(b"{}"),
                    PutMode::Create.into(),
                )
                .await;
            assert!(
                matches!(again, Err(object_store::Error::AlreadyExists { .. })),
                "{url}: {again:?}"
            );
            let got = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(&got[..], b"{}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_urls_are_named() {
        for (url, needle) in [
            ("ftp://x/y", "unsupported scheme"),
            ("s3:///prefix", "no bucket"),
            ("not a url", "expected file:///path"),
            ("memory://x", "memory:// takes no path"),
        ] {
            let e = open(url).expect_err(url).to_string();
            assert!(e.contains(needle) && e.contains(url), "{url}: {e}");
        }
    }
}
