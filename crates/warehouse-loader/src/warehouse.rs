//! The warehouses: PostgreSQL, SQLite and Redshift, chosen by the database URL.
//!
//! A date is loaded in one transaction: delete the date's rows, insert the new version,
//! record it in `_onepipe_loads`, commit. Whatever happens before the commit (a crash, a
//! lost connection, a failed row), the database rolls the whole date back, so a reader
//! sees the old version or the new one, never both or half.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Executor, Row};
use tokio::sync::mpsc;

use crate::encode::{Cell, Encoder};
use crate::error::{Error, Result};
use crate::sql::{RedshiftLoad, Table, create_schema};
use onepipe_tables::types::{Column, Dialect, same_type};

/// Rows per Parquet batch read.
const BATCH_ROWS: usize = 8192;
/// Bytes of COPY data sent at once.
const COPY_CHUNK: usize = 1 << 20;
/// Most bound values in one SQLite statement (SQLite allows 32766).
const SQLITE_MAX_PARAMS: usize = 32_000;

/// A connected warehouse.
pub enum Warehouse {
    Postgres {
        pool: PgPool,
        schema: String,
    },
    Redshift {
        pool: PgPool,
        schema: String,
        iam_role: String,
        /// `s3://bucket/prefix` of the object store, to name files for COPY.
        store_url: String,
    },
    Sqlite {
        pool: SqlitePool,
    },
}

/// What a warehouse holds for one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub version: u32,
    pub manifest: u64,
}

/// One date to load.
#[derive(Debug, Clone)]
pub struct DateLoad {
    pub dataset: String,
    pub table: Table,
    pub columns: Arc<Vec<Column>>,
    pub date: NaiveDate,
    pub manifest: u64,
    pub schema_id: u32,
    pub version: u32,
    pub rows: u64,
    pub files: Vec<String>,
}

/// What loading a date did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Loaded(u64),
    /// Another loader had already loaded this version.
    AlreadyThere,
}

impl Warehouse {
    /// Connects to `url`: `postgres://…`, `sqlite://path`, or `redshift://…` (PostgreSQL
    /// protocol, loads through `COPY … FROM 's3://…'`, needs `iam_role` and an `s3://`
    /// object store). SQLite has no schemas: `schema` must be unset, `public` or `main`.
    pub async fn connect(
        url: &str,
        schema: Option<&str>,
        iam_role: Option<&str>,
        store_url: &str,
        connections: u32,
    ) -> Result<Warehouse> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(connections.max(1) + 1)
                    .connect_with(opts)
                    .await?;
                Ok(Warehouse::Postgres {
                    pool,
                    schema: schema.unwrap_or("public").to_string(),
                })
            }
            "redshift" => {
                let iam_role = iam_role.ok_or_else(|| {
                    Error::Config(
                        "a redshift:// warehouse loads with COPY … IAM_ROLE: set \
                         --redshift-iam-role (ONEPIPE_REDSHIFT_IAM_ROLE)"
                            .to_string(),
                    )
                })?;
                if !store_url.starts_with("s3://") {
                    return Err(Error::Config(format!(
                        "a redshift:// warehouse reads the clean files from S3, but the object \
                         store is {store_url}"
                    )));
                }
                let pg_url = format!("postgres{}", &url["redshift".len()..]);
                let opts = PgConnectOptions::from_str(&pg_url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(connections.max(1) + 1)
                    .connect_with(opts)
                    .await?;
                Ok(Warehouse::Redshift {
                    pool,
                    schema: schema.unwrap_or("public").to_string(),
                    iam_role: iam_role.to_string(),
                    store_url: store_url.trim_end_matches('/').to_string(),
                })
            }
            "sqlite" => {
                if let Some(s) = schema
                    && s != "public"
                    && s != "main"
                {
                    return Err(Error::Config(format!(
                        "--schema {s:?}: SQLite has no schemas; use one database file per mart \
                         (leave --schema unset, or `public`)"
                    )));
                }
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(30));
                if let Some(parent) = std::path::Path::new(opts.get_filename()).parent()
                    && !parent.as_os_str().is_empty()
                {
                    let _ = std::fs::create_dir_all(parent);
                }
                // One writer at a time is all SQLite does.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await?;
                Ok(Warehouse::Sqlite { pool })
            }
            other => Err(Error::Config(format!(
                "--database {other}://…: expected postgres://, sqlite://PATH or redshift://"
            ))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Warehouse::Postgres { .. } => Dialect::Postgres,
            Warehouse::Redshift { .. } => Dialect::Redshift,
            Warehouse::Sqlite { .. } => Dialect::Sqlite,
        }
    }

    /// How many dates may load at once (SQLite: one).
    pub fn max_concurrency(&self) -> usize {
        match self {
            Warehouse::Sqlite { .. } => 1,
            _ => usize::MAX,
        }
    }

    pub fn table(&self, name: &str) -> Table {
        let schema = match self {
            Warehouse::Postgres { schema, .. } | Warehouse::Redshift { schema, .. } => {
                Some(schema.clone())
            }
            Warehouse::Sqlite { .. } => None,
        };
        Table {
            dialect: self.dialect(),
            schema,
            name: name.to_string(),
        }
    }

    /// The database answers.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Warehouse::Postgres { pool, .. } | Warehouse::Redshift { pool, .. } => {
                pool.execute("SELECT 1").await?;
            }
            Warehouse::Sqlite { pool } => {
                pool.execute("SELECT 1").await?;
            }
        }
        Ok(())
    }

    /// Creates the schema and the loads table when missing.
    pub async fn prepare(&self) -> Result<()> {
        let loads = self.table("").create_loads();
        match self {
            Warehouse::Postgres { pool, schema } | Warehouse::Redshift { pool, schema, .. } => {
                let exists: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                        .bind(schema)
                        .fetch_optional(pool)
                        .await?;
                if exists.is_none() {
                    pool.execute(create_schema(schema).as_str()).await?;
                }
                pool.execute(loads.as_str()).await?;
            }
            Warehouse::Sqlite { pool } => {
                pool.execute(loads.as_str()).await?;
            }
        }
        Ok(())
    }

    /// The table's columns and their types as the database reports them.
    async fn existing_columns(&self, table: &Table) -> Result<Vec<(String, String)>> {
        let rows = match self {
            Warehouse::Postgres { pool, .. } | Warehouse::Redshift { pool, .. } => sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)::text \
                     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 \
                     AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(table.schema.as_deref().unwrap_or("public"))
            .bind(&table.name)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Warehouse::Sqlite { pool } => {
                sqlx::query("SELECT name, type FROM pragma_table_info(?1)")
                    .bind(&table.name)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        };
        Ok(rows)
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Warehouse::Postgres { pool, .. } | Warehouse::Redshift { pool, .. } => {
                pool.execute(sql).await?;
            }
            Warehouse::Sqlite { pool } => {
                pool.execute(sql).await?;
            }
        }
        Ok(())
    }

    /// Creates the table, or adds the columns a newer schema has. A column whose type
    /// differs is an error: the dataset stops rather than losing or bending data.
    /// Returns the columns added.
    pub async fn ensure_table(
        &self,
        dataset: &str,
        schema_id: u32,
        table: &Table,
        columns: &[Column],
    ) -> Result<Vec<String>> {
        let mut existing = self.existing_columns(table).await?;
        if existing.is_empty() {
            self.execute(&table.create(columns)).await?;
            if let Some(index) = table.create_index() {
                self.execute(&index).await?;
            }
            tracing::info!(dataset, table = %table.qualified(), "table created");
            return Ok(Vec::new());
        }
        let mut added = Vec::new();
        for column in columns {
            let wanted = column.kind.sql_type(self.dialect());
            match existing.iter().find(|(name, _)| *name == column.name) {
                Some((_, have)) if same_type(have, &wanted) => {}
                Some((_, have)) => {
                    return Err(Error::TypeChange {
                        dataset: dataset.to_string(),
                        table: table.qualified(),
                        column: column.name.clone(),
                        existing: have.clone(),
                        wanted,
                        schema_id,
                    });
                }
                None => {
                    self.execute(&table.add_column(column)).await?;
                    tracing::info!(dataset, table = %table.qualified(), column = %column.name,
                        sql_type = %wanted, "column added");
                    existing.push((column.name.clone(), wanted));
                    added.push(column.name.clone());
                }
            }
        }
        Ok(added)
    }

    /// What every loaded date of `dataset` holds.
    pub async fn loaded(
        &self,
        table: &Table,
        dataset: &str,
    ) -> Result<BTreeMap<NaiveDate, Loaded>> {
        let sql = table.select_loads();
        let rows: Vec<(String, i64, i64)> = match self {
            Warehouse::Postgres { pool, .. } | Warehouse::Redshift { pool, .. } => {
                sqlx::query_as(&sql).bind(dataset).fetch_all(pool).await?
            }
            Warehouse::Sqlite { pool } => {
                sqlx::query_as(&sql).bind(dataset).fetch_all(pool).await?
            }
        };
        let mut out = BTreeMap::new();
        for (date, version, manifest) in rows {
            let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                .map_err(|e| Error::Config(format!("{}: bad date {date:?}: {e}", table.loads())))?;
            out.insert(
                date,
                Loaded {
                    version: u32::try_from(version).unwrap_or(u32::MAX),
                    manifest: u64::try_from(manifest).unwrap_or(0),
                },
            );
        }
        Ok(out)
    }

    /// Loads one date in one transaction (see the module documentation).
    pub async fn load_date(&self, store: &Arc<dyn ObjectStore>, job: &DateLoad) -> Result<Outcome> {
        let fail = |reason: String| Error::Load {
            dataset: job.dataset.clone(),
            date: job.date,
            reason,
        };
        let prefix = format!("clean/{}/date={}/", job.dataset, job.date);
        if let Some(f) = job.files.iter().find(|f| !f.starts_with(&prefix)) {
            return Err(fail(format!(
                "the manifest names {f}, which is not under {prefix}; refusing to read it"
            )));
        }
        match self {
            Warehouse::Postgres { pool, .. } => load_postgres(pool, store, job).await,
            Warehouse::Sqlite { pool } => load_sqlite(pool, store, job).await,
            Warehouse::Redshift {
                pool,
                iam_role,
                store_url,
                ..
            } => load_redshift(pool, iam_role, store_url, job).await,
        }
        .map_err(|e| match e {
            Error::Load { .. } => e,
            other => fail(other.to_string()),
        })
    }
}

enum Chunk {
    Copy(Vec<u8>),
    Rows(Vec<Vec<Cell>>),
}

#[derive(Clone, Copy)]
enum Mode {
    Copy,
    Rows,
}

/// Reads the date's files and encodes their rows on a blocking thread, so that
/// decoding, encoding and the database work in parallel.
fn produce(
    store: Arc<dyn ObjectStore>,
    job: &DateLoad,
    mode: Mode,
) -> mpsc::Receiver<Result<Chunk>> {
    let (tx, rx) = mpsc::channel(4);
    let files = job.files.clone();
    let encoder = Arc::new(Encoder::new(job.columns.as_ref().clone(), job.date));
    tokio::spawn(async move {
        for file in files {
            let read = match store.get(&Path::from(file.as_str())).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            let bytes: Bytes = match read {
                Ok(b) => b,
                Err(error) => {
                    let _ = tx.send(Err(Error::ReadFile { path: file, error })).await;
                    return;
                }
            };
            let tx2 = tx.clone();
            let encoder = encoder.clone();
            let ok = tokio::task::spawn_blocking(move || {
                encode_file(&file, bytes, &encoder, mode, &tx2)
            })
            .await
            .unwrap_or(false);
            if !ok {
                return;
            }
        }
    });
    rx
}

fn encode_file(
    file: &str,
    bytes: Bytes,
    encoder: &Encoder,
    mode: Mode,
    tx: &mpsc::Sender<Result<Chunk>>,
) -> bool {
    let in_file = |error: Error| Error::InFile {
        path: file.to_string(),
        error: Box::new(error),
    };
    let reader = match ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
    {
        Ok(r) => r,
        Err(error) => {
            let _ = tx.blocking_send(Err(Error::BadFile {
                path: file.to_string(),
                error,
            }));
            return false;
        }
    };
    let mut buf = Vec::with_capacity(COPY_CHUNK + COPY_CHUNK / 4);
    for batch in reader {
        let batch: RecordBatch = match batch {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.blocking_send(Err(in_file(e.into())));
                return false;
            }
        };
        let chunk = match mode {
            Mode::Copy => match encoder.copy_text(&batch, &mut buf) {
                Ok(_) => {
                    if buf.len() < COPY_CHUNK {
                        continue;
                    }
                    let full = std::mem::replace(
                        &mut buf,
                        Vec::with_capacity(COPY_CHUNK + COPY_CHUNK / 4),
                    );
                    Ok(Chunk::Copy(full))
                }
                Err(e) => Err(in_file(e.into())),
            },
            Mode::Rows => encoder
                .cells(&batch)
                .map(Chunk::Rows)
                .map_err(|e| in_file(e.into())),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return false;
        }
    }
    if !buf.is_empty() && tx.blocking_send(Ok(Chunk::Copy(buf))).is_err() {
        return false;
    }
    true
}

fn lock_key(job: &DateLoad) -> String {
    format!("{}/{}", job.table.qualified(), job.date)
}

async fn load_postgres(
    pool: &PgPool,
    store: &Arc<dyn ObjectStore>,
    job: &DateLoad,
) -> Result<Outcome> {
    let table = &job.table;
    let mut tx = pool.begin().await?;
    // Two loaders on one date would both delete and then both insert: serialise them.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(lock_key(job))
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar(&table.select_load())
        .bind(&job.dataset)
        .bind(job.date.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    if current == Some(i64::from(job.version)) {
        tx.rollback().await?;
        return Ok(Outcome::AlreadyThere);
    }
    sqlx::query(&table.delete_date())
        .bind(job.date.to_string())
        .execute(&mut *tx)
        .await?;
    let mut rx = produce(store.clone(), job, Mode::Copy);
    let mut copy = tx.copy_in_raw(&table.copy_from_stdin(&job.columns)).await?;
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(Chunk::Copy(data)) => {
                // The connection must leave COPY mode before the rollback can run.
                if let Err(e) = copy.send(data).await {
                    let _ = copy.abort(e.to_string()).await;
                    return Err(e.into());
                }
            }
            Ok(Chunk::Rows(_)) => unreachable!("copy mode"),
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                // `load_date` names the dataset and date.
                return Err(e);
            }
        }
    }
    let rows = copy.finish().await?;
    check_rows(job, rows)?;
    sqlx::query(&table.upsert_load())
        .bind(&job.dataset)
        .bind(job.date.to_string())
        .bind(job.manifest as i64)
        .bind(i64::from(job.version))
        .bind(rows as i64)
        .bind(i64::from(job.schema_id))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Loaded(rows))
}

fn check_rows(job: &DateLoad, rows: u64) -> Result<()> {
    if rows != job.rows {
        return Err(Error::Load {
            dataset: job.dataset.clone(),
            date: job.date,
            reason: format!(
                "manifest {} says {} rows but its files hold {rows}; nothing loaded",
                job.manifest, job.rows
            ),
        });
    }
    Ok(())
}

async fn load_sqlite(
    pool: &SqlitePool,
    store: &Arc<dyn ObjectStore>,
    job: &DateLoad,
) -> Result<Outcome> {
    let table = &job.table;
    let date = job.date.to_string();
    // IMMEDIATE takes the write lock now, so the check below cannot go stale.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let current: Option<i64> = sqlx::query_scalar(&table.select_load())
        .bind(&job.dataset)
        .bind(&date)
        .fetch_optional(&mut *tx)
        .await?;
    if current == Some(i64::from(job.version)) {
        tx.rollback().await?;
        return Ok(Outcome::AlreadyThere);
    }
    sqlx::query(&table.delete_date())
        .bind(&date)
        .execute(&mut *tx)
        .await?;
    let width = job.columns.len() + 1;
    let per_statement = (SQLITE_MAX_PARAMS / width).clamp(1, 500);
    let full_sql = table.insert_rows(&job.columns, per_statement);
    let mut rx = produce(store.clone(), job, Mode::Rows);
    let mut rows = 0u64;
    while let Some(chunk) = rx.recv().await {
        let batch = match chunk {
            Ok(Chunk::Rows(r)) => r,
            Ok(Chunk::Copy(_)) => unreachable!("rows mode"),
            // `load_date` names the dataset and date.
            Err(e) => return Err(e),
        };
        for group in batch.chunks(per_statement) {
            let partial;
            let sql = if group.len() == per_statement {
                &full_sql
            } else {
                partial = table.insert_rows(&job.columns, group.len());
                &partial
            };
            let mut q = sqlx::query(sql);
            for row in group {
                for cell in row {
                    q = match cell {
                        Cell::Null => q.bind(None::<i64>),
                        Cell::Int(i) => q.bind(*i),
                        Cell::Real(f) => q.bind(*f),
                        Cell::Text(s) => q.bind(s.as_str()),
                        Cell::Blob(b) => q.bind(b.as_slice()),
                    };
                }
            }
            q.execute(&mut *tx).await?;
            rows += group.len() as u64;
        }
    }
    check_rows(job, rows)?;
    sqlx::query(&table.upsert_load())
        .bind(&job.dataset)
        .bind(&date)
        .bind(job.manifest as i64)
        .bind(i64::from(job.version))
        .bind(rows as i64)
        .bind(i64::from(job.schema_id))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Loaded(rows))
}

async fn load_redshift(
    pool: &PgPool,
    iam_role: &str,
    store_url: &str,
    job: &DateLoad,
) -> Result<Outcome> {
    let table = &job.table;
    let statements = table.redshift_load(&RedshiftLoad {
        dataset: &job.dataset,
        date: job.date,
        columns: &job.columns,
        files: job
            .files
            .iter()
            .map(|f| format!("{store_url}/{f}"))
            .collect(),
        iam_role,
        manifest: job.manifest,
        version: job.version,
        rows: job.rows,
        schema_id: job.schema_id,
    });
    let mut tx = pool.begin().await?;
    // LOCK, then the version check, then staging; the count is checked before the swap.
    let (lock, rest) = statements.split_first().expect("statements");
    tx.execute(lock.as_str()).await?;
    let current: Option<i64> = sqlx::query_scalar(&table.select_load())
        .bind(&job.dataset)
        .bind(job.date.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    if current == Some(i64::from(job.version)) {
        tx.rollback().await?;
        return Ok(Outcome::AlreadyThere);
    }
    let copies = 2 + job.files.len();
    for sql in &rest[..copies] {
        tx.execute(sql.as_str()).await?;
    }
    let staged: i64 = sqlx::query_scalar(&table.redshift_count_stage())
        .fetch_one(&mut *tx)
        .await?;
    check_rows(job, staged as u64)?;
    for sql in &rest[copies..] {
        tx.execute(sql.as_str()).await?;
    }
    tx.commit().await?;
    Ok(Outcome::Loaded(staged as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str, schema: Option<&str>, role: Option<&str>, store: &str) -> String {
        match Warehouse::connect(url, schema, role, store, 1).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{url} must be refused"),
        }
    }

    // These are refused before any connection is made.
    #[tokio::test]
    async fn bad_configurations_are_named() {
        let e = refused("redshift://u:p@h:5439/db", None, None, "s3://b/p").await;
        assert!(e.contains("--redshift-iam-role"), "{e}");
        let e = refused(
            "redshift://u:p@h:5439/db",
            None,
            Some("arn:r"),
            "file:///tmp/x",
        )
        .await;
        assert!(e.contains("reads the clean files from S3"), "{e}");
        let e = refused("sqlite://x.db", Some("sales"), None, "memory://").await;
        assert!(e.contains("SQLite has no schemas"), "{e}");
        let e = refused("mysql://h/db", None, None, "memory://").await;
        assert!(e.contains("expected postgres://"), "{e}");
    }
}
