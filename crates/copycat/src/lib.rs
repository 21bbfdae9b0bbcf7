//! copycat: every Kafka record archived exactly once, byte for byte, in `raw/` Parquet
//! files named by the offsets they hold. The file format, claims, checkpoints and
//! recovery are the archive contract in `onepipe-archive`.
//!
//! - [`archiver::run`]: the long-running consumer group (the `copycat` binary).
//! - [`buffer`]: where files end (hour of record time, records, bytes, time span).
//! - [`upload`]: claim, upload and checkpoint of one finished file.
//! - [`health`]: what `/readyz` answers.
//!
//! ```
//! use onepipe_archive::raw::{RawBatch, decode, encode};
//!
//! let mut batch = RawBatch::new(0);
//! batch.push(41, 1_700_000_000_000, Some(b"[\"k\"]"), None, &[("traceparent", Some(b"00-1"))]);
//! let file = encode(&batch.finish().unwrap()).unwrap();
//! let records = decode("example", bytes::Bytes::from(file)).unwrap();
//! assert_eq!((records[0].offset, records[0].value.clone()), (41, None));
//! ```

pub mod archiver;
pub mod buffer;
pub mod config;
pub mod error;
pub mod health;
pub mod metrics;
pub mod topics;
pub mod upload;

pub use config::Config;
pub use error::{Error, Result};
