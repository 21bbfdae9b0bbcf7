//! Shared contracts of onepipe, used by every service.
//!
//! - [`wire`]: the Kafka record value (`0x00 | schema id | Avro datum`) and key formats.
//! - [`metadata`]: per-topic metadata held by the registry (unique key, merge strategy, checks).
//! - [`layout`]: object-store paths of raw files, clean files and manifests.
//! - [`manifest`]: the numbered, create-only manifests that name a topic's clean files.
//! - [`store`]: an object store opened from a URL (`file://`, `s3://`, `memory://`).
//! - [`telemetry`]: logs and traces for a service's `main`.
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
pub mod layout;
pub mod manifest;
pub mod metadata;
pub mod store;
pub mod telemetry;
pub mod wire;

pub use error::{Error, Result};
