//! verifier: proves that every store holds the same data for a dataset, and names what
//! differs.
//!
//! For each date partition it computes the topic's checks inside each store — the raw
//! archive (decoded and merged the way copydog merges, up to the manifest's watermarks),
//! the clean archive (the files the newest manifest names) and each PostgreSQL warehouse
//! (by SQL, so only the numbers move) — compares them with the clean archive's, and on a
//! mismatch narrows it down to keys by splitting the key-hash range. Against Kafka it
//! names the records no raw file holds (`archived`), and it reports consumer lag per group
//! with a Burrow-like status.
//!
//! `verifier check` and `verifier serve` are [`report::Round`] and [`serve::serve`].
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use onepipe_client::{RegistryOptions, SchemaRegistry};
//! let store = onepipe_core::store::open("file:///tmp/archive")?;
//! let registry = SchemaRegistry::connect("http://127.0.0.1:8090", RegistryOptions::default())?;
//! let report = onepipe_verifier::verify::check_dataset(store, &registry, "page_views", &[], 20).await?;
//! assert_eq!(report.mismatches, 0);
//! # Ok(()) }
//! ```

pub mod archived;
pub mod canonical;
pub mod checks;
pub mod error;
pub mod expected;
pub mod lag;
pub mod online;
pub mod parts;
pub mod report;
pub mod serve;
pub mod verdicts;
pub mod verify;
pub mod warehouse;

pub use error::{Error, Result};
