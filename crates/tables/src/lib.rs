//! How onepipe turns a dataset into a SQL table, the same for every store that holds one
//! (warehouse-loader's marts, the verifier's queries, `onepipe query`, online tables):
//!
//! - [`names`]: table and column names from topic and field names, and their quoting.
//! - [`types`]: the column of each Avro field and its type in PostgreSQL, SQLite and
//!   Redshift.
//! - [`encode`]: clean rows (Arrow) as PostgreSQL `COPY` text or SQLite cells.
//! - [`error`]: why a schema has no table form.
//!
//! ```
//! assert_eq!(onepipe_tables::names::sql_name("Page-Views"), "page_views");
//! assert_eq!(onepipe_tables::names::quote("order"), "\"order\"");
//! ```

pub mod encode;
pub mod error;
pub mod names;
pub mod types;

pub use error::{Error, Result};
