//! copycat: every Kafka record archived exactly once, byte for byte, in `raw/` Parquet
//! files named by the offsets they hold; plus replay from that archive back into Kafka
//! and a check of the archive for gaps and overlaps.
//!
//! - [`archiver::run`]: the long-running consumer group (the `copycat` binary).
//! - [`raw`]: the raw file format (DESIGN.md's columns, zstd).
//! - [`buffer`]: where files end (hour of record time, records, bytes, time span).
//! - [`checkpoint`]: where a partition's archive ends, for recovery.
//! - [`replay::replay`]: raw files back into a topic (`onepipe replay`).
//! - [`check::check`]: gaps and overlaps per partition (`onepipe archive check`).
//!
//! ```
//! use onepipe_copycat::raw::{RawBatch, decode, encode};
//!
//! let mut batch = RawBatch::new(0);
//! batch.push(41, 1_700_000_000_000, Some(b"[\"k\"]"), None, &[("traceparent", Some(b"00-1"))]);
//! let file = encode(&batch.finish().unwrap()).unwrap();
//! let records = decode("example", bytes::Bytes::from(file)).unwrap();
//! assert_eq!((records[0].offset, records[0].value.clone()), (41, None));
//! ```

pub mod archiver;
pub mod buffer;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod metrics;
pub mod raw;
pub mod replay;
pub mod topics;
pub mod upload;

pub use config::Config;
pub use error::{Error, Result};
