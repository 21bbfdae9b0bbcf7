//! The archive contract of onepipe: what copycat writes under `raw/`, what copydog writes
//! under `clean/`, and how every reader finds and decodes them. No service owns it;
//! copycat, copydog, warehouse-loader, the verifier and the CLI all use it.
//!
//! - [`layout`]: object-store paths of raw files, clean files and manifests.
//! - [`raw`]: the raw Parquet file format (write and read), byte for byte.
//! - [`checkpoint`]: raw listing, create-only claims, checkpoints and restart recovery.
//! - [`check`]: gaps and overlaps in a topic's raw offsets.
//! - [`columns`]: Avro schemas and values as Arrow types and columns.
//! - [`decode`]: raw records decoded into clean rows, and the date rule.
//! - [`merge`]: the merge strategies (`first_seen`, `max_by`, `vector_clock`) and sort.
//! - [`rank`]: the merge rule as one sortable value per row, for stores that upsert.
//! - [`clean`]: reading and writing clean Parquet files.
//! - [`manifest`]: the numbered, create-only manifests that name a topic's clean files.
//! - [`delta`]: each manifest published as a version of the topic's Delta Lake table.
//!
//! ```
//! use onepipe_archive::layout::RawFile;
//!
//! let f = RawFile::parse("raw/orders/partition=2/date=2026-05-01/hour=07/00000000000000000010-00000000000000000019.parquet").unwrap();
//! assert_eq!((f.partition, f.first_offset, f.last_offset), (2, 10, 19));
//! ```

pub mod check;
pub mod checkpoint;
pub mod clean;
pub mod columns;
pub mod decode;
pub mod delta;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod merge;
pub mod rank;
pub mod raw;

pub use error::{Error, Result};

/// Runs CPU-heavy or blocking work (decoding, encoding, sorting, local files) on Tokio's
/// blocking pool, so the async workers stay free. A panic there continues here.
pub async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Cancelled.into()),
    }
}

/// The Kafka columns every clean row carries after the record's own fields.
pub const PARTITION_COLUMN: &str = "_kafka_partition";
pub const OFFSET_COLUMN: &str = "_kafka_offset";
pub const TIMESTAMP_COLUMN: &str = "_kafka_timestamp";
pub const SCHEMA_ID_COLUMN: &str = "_schema_id";
