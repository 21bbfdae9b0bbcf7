//! Shared contracts of onepipe, used by every service.
//!
//! - [`wire`]: the Kafka record value (`0x00 | schema id | Avro datum`) and key formats.
//! - [`metadata`]: per-topic metadata held by the registry (unique key, merge strategy, checks).
//! - [`secret`]: tokens and keys compared in constant time.
//! - [`store`]: an object store opened from a URL (`file://`, `s3://`, `memory://`).
//! - [`telemetry`]: logs and traces for a service's `main`.
//! - [`units`]: durations, sizes and `KEY=VALUE` options as every command line takes them.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and the shutdown signal.
//!
//! ```
//! use onepipe_core::wire;
//!
//! let framed = wire::frame(42, b"\x02hi");
//! let (schema_id, datum) = wire::unframe(&framed).unwrap();
//! assert_eq!((schema_id, datum), (42, &b"\x02hi"[..]));
//! ```

pub mod admin;
pub mod error;
pub mod metadata;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod units;
pub mod wire;

pub use error::{Error, Result};
