//! The onepipe registry: the single source of truth for Avro schemas (subjects,
//! versions, global ids), their compatibility rules, and per-topic metadata.
//!
//! - Compatibility and the metadata rules are `onepipe-schema`'s, shared with the CLI.
//! - [`store`]: schemas and metadata in SQLite or PostgreSQL, same behaviour on both.
//!
//! ```
//! use onepipe_schema::compat::check;
//! let writer = apache_avro::Schema::parse_str(r#""int""#).unwrap();
//! let reader = apache_avro::Schema::parse_str(r#""long""#).unwrap();
//! assert!(check(&reader, &writer).is_empty());
//! ```

pub mod auth;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod rest;
pub mod service;
pub mod store;
pub mod tls;

pub use error::{Error, Result};

#[doc(hidden)]
pub mod test_suite;
