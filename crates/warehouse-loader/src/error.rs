//! warehouse-loader's error type.

use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] onepipe_client::Error),
    #[error(transparent)]
    Core(#[from] onepipe_core::Error),
    #[error(transparent)]
    Archive(#[from] onepipe_archive::Error),
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Config(String),
    #[error(
        "dataset {0:?} in --datasets is not a topic the registry knows: check the spelling \
         (the allowlist names topics exactly); nothing was loaded"
    )]
    UnknownDataset(String),
    #[error("dataset {dataset}: the schema (id {schema_id}) cannot be mapped to columns: {reason}")]
    Schema {
        dataset: String,
        schema_id: u32,
        reason: String,
    },
    #[error(
        "dataset {dataset}: column {column:?} of table {table} is {existing} but schema id \
         {schema_id} needs {wanted}; the warehouse cannot take a type change, so this dataset \
         is stopped (migrate the column by hand, or load into a fresh schema)"
    )]
    TypeChange {
        dataset: String,
        table: String,
        column: String,
        existing: String,
        wanted: String,
        schema_id: u32,
    },
    #[error("dataset {dataset}, date {date}: {reason}")]
    Load {
        dataset: String,
        date: NaiveDate,
        reason: String,
    },
}

impl Error {
    /// Errors that stop a dataset until an operator acts (a rerun will not help).
    pub fn stops_dataset(&self) -> bool {
        matches!(self, Error::Schema { .. } | Error::TypeChange { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
