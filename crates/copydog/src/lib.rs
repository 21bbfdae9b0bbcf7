//! copydog: turns a topic's raw archive into its clean archive.
//!
//! Each run reads the newest manifest, decodes the raw records past its watermarks into
//! the topic's newest schema, merges them into the dates they belong to (one row per
//! unique key by the topic's merge strategy, sorted by the sort key), writes each
//! touched date as a new version folder and commits the next manifest with "create only
//! if absent". Readers only ever see whole manifests.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use onepipe_client::{RegistryOptions, SchemaRegistry};
//! let store = onepipe_core::store::open("file:///tmp/archive")?;
//! let registry = SchemaRegistry::connect("http://127.0.0.1:8090", RegistryOptions::default())?;
//! let summary = onepipe_copydog::run::run_topic(store, &registry, "page_views", &Default::default()).await?;
//! println!("committed {:?}", summary.manifest);
//! # Ok(()) }
//! ```

pub mod checks;
mod date;
pub mod error;
mod rejects;
pub mod run;
pub mod sink;
pub mod spill;
pub mod vacuum;

pub use error::{Error, Result};
