//! The database of online tables: PostgreSQL, or SQLite (the embedded default).
//!
//! Each batch of one partition is one transaction: first the partition's stored offset
//! moves from where this sink read it to the batch's end (so two sinks never both apply
//! a batch: the second finds the offset moved and applies nothing), then the tombstones,
//! then the rows by the merge rule.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Executor, Row};

use onepipe_tables::encode::Cell;
use onepipe_tables::names::quote;
use onepipe_tables::types::{Column, Dialect, same_type};

use crate::batch::{KeyValue, Prepared, Rows};
use crate::error::{Error, Result};
use crate::sql::Table;

/// SQLite's bound-parameter limit, with room to spare.
const SQLITE_MAX_PARAMS: usize = 32_000;

pub enum Db {
    Postgres { pool: PgPool, schema: String },
    Sqlite { pool: SqlitePool },
}

/// What applying a batch did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Committed: rows inserted or updated (versions that lost to the stored row do not
    /// count), and keys deleted.
    Done { changed: u64, deleted: u64 },
    /// Another sink had moved the partition's offset: nothing was applied.
    Moved,
}

impl Db {
    /// Connects to `postgres://…` or `sqlite://PATH` (created when missing).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Db> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?;
                Ok(Db::Postgres {
                    pool,
                    schema: schema.unwrap_or("public").to_string(),
                })
            }
            "sqlite" => {
                if let Some(s) = schema
                    && s != "public"
                    && s != "main"
                {
                    return Err(Error::Config(format!(
                        "--schema {s:?}: SQLite has no schemas (leave --schema unset)"
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
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await?;
                Ok(Db::Sqlite { pool })
            }
            other => Err(Error::Config(format!(
                "--database {other}://…: expected postgres://… or sqlite://PATH"
            ))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres { .. } => Dialect::Postgres,
            Db::Sqlite { .. } => Dialect::Sqlite,
        }
    }

    pub fn table(&self, name: &str, key: Vec<String>) -> Table {
        Table {
            dialect: self.dialect(),
            schema: match self {
                Db::Postgres { schema, .. } => Some(schema.clone()),
                Db::Sqlite { .. } => None,
            },
            name: name.to_string(),
            key,
        }
    }

    pub async fn ping(&self) -> Result<()> {
        match self {
            Db::Postgres { pool, .. } => {
                pool.execute("SELECT 1").await?;
            }
            Db::Sqlite { pool } => {
                pool.execute("SELECT 1").await?;
            }
        }
        Ok(())
    }

    async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Db::Postgres { pool, .. } => {
                pool.execute(sql).await?;
            }
            Db::Sqlite { pool } => {
                pool.execute(sql).await?;
            }
        }
        Ok(())
    }

    /// Creates the schema (PostgreSQL) and the offsets table when missing.
    pub async fn prepare(&self) -> Result<()> {
        let offsets = self.table("", Vec::new()).create_offsets();
        if let Db::Postgres { pool, schema } = self {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                    .bind(schema)
                    .fetch_optional(pool)
                    .await?;
            if exists.is_none() {
                let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema));
                pool.execute(sql.as_str()).await?;
            }
        }
        self.execute(&offsets).await
    }

    async fn existing_columns(&self, table: &Table) -> Result<Vec<(String, String)>> {
        let rows = match self {
            Db::Postgres { pool, .. } => sqlx::query(
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
            Db::Sqlite { pool } => sqlx::query("SELECT name, type FROM pragma_table_info(?1)")
                .bind(&table.name)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        };
        Ok(rows)
    }

    /// Creates the table, or adds the columns a newer schema has; a column whose type
    /// changed is an error (the dataset stops). Returns the columns added.
    pub async fn ensure_table(
        &self,
        dataset: &str,
        schema_id: u32,
        table: &Table,
        columns: &[Column],
    ) -> Result<Vec<String>> {
        let existing = self.existing_columns(table).await?;
        if existing.is_empty() {
            self.execute(&table.create(columns)).await?;
            tracing::info!(dataset, table = %table.qualified(), "table created");
            return Ok(Vec::new());
        }
        let mut added = Vec::new();
        for column in columns {
            let wanted = column.kind.sql_type(self.dialect());
            match existing.iter().find(|(name, _)| *name == column.name) {
                Some((_, have)) if same_type(have, &wanted) => {}
                Some((_, have)) => {
                    return Err(Error::TypeChange(Box::new(crate::error::TypeChange {
                        dataset: dataset.to_string(),
                        table: table.qualified(),
                        column: column.name.clone(),
                        existing: have.clone(),
                        wanted,
                        schema_id,
                    })));
                }
                None => {
                    self.execute(&table.add_column(column)).await?;
                    tracing::info!(dataset, table = %table.qualified(), column = %column.name,
                        sql_type = %wanted, "column added");
                    added.push(column.name.clone());
                }
            }
        }
        Ok(added)
    }

    /// The next offsets a group stored for a topic, by partition.
    pub async fn stored_offsets(&self, group: &str, topic: &str) -> Result<HashMap<i32, i64>> {
        let sql = self.table("", Vec::new()).select_offsets();
        let rows: Vec<(i32, i64)> = match self {
            Db::Postgres { pool, .. } => {
                sqlx::query_as(&sql)
                    .bind(group)
                    .bind(topic)
                    .fetch_all(pool)
                    .await?
            }
            Db::Sqlite { pool } => {
                sqlx::query_as(&sql)
                    .bind(group)
                    .bind(topic)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows.into_iter().collect())
    }

    /// Applies one partition's batch in one transaction, moving its stored offset from
    /// `expected` (what this sink read; `None`: no row yet) to `next`.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply(
        &self,
        table: &Table,
        columns: &[Column],
        group: &str,
        partition: i32,
        expected: Option<i64>,
        next: i64,
        batch: &Prepared,
        topic: &str,
    ) -> Result<Applied> {
        match self {
            Db::Postgres { pool, .. } => {
                let mut tx = pool.begin().await?;
                let moved = match expected {
                    None => sqlx::query(&table.insert_offset())
                        .bind(group)
                        .bind(topic)
                        .bind(partition)
                        .bind(next)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    Some(e) => sqlx::query(&table.advance_offset())
                        .bind(next)
                        .bind(group)
                        .bind(topic)
                        .bind(partition)
                        .bind(e)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                if moved != 1 {
                    tx.rollback().await?;
                    return Ok(Applied::Moved);
                }
                let mut deleted = 0;
                let delete = table.delete_key();
                for d in &batch.deletes {
                    let mut q = sqlx::query(&delete);
                    for v in &d.key {
                        q = match v {
                            KeyValue::Text(s) => q.bind(s.as_str()),
                            KeyValue::Int(i) => q.bind(*i),
                            KeyValue::Bool(b) => q.bind(*b),
                        };
                    }
                    deleted += q
                        .bind(d.partition)
                        .bind(d.offset)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                let mut changed = 0;
                if let Rows::Copy(data) = &batch.rows
                    && batch.row_count > 0
                {
                    tx.execute(table.create_stage().as_str()).await?;
                    let mut copy = tx.copy_in_raw(&table.copy_to_stage(columns)).await?;
                    if let Err(e) = copy.send(data.as_slice()).await {
                        let _ = copy.abort(e.to_string()).await;
                        return Err(e.into());
                    }
                    copy.finish().await?;
                    changed = tx
                        .execute(table.upsert_from_stage(columns).as_str())
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(Applied::Done { changed, deleted })
            }
            Db::Sqlite { pool } => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let moved = match expected {
                    None => sqlx::query(&table.insert_offset())
                        .bind(group)
                        .bind(topic)
                        .bind(partition)
                        .bind(next)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                    Some(e) => sqlx::query(&table.advance_offset())
                        .bind(next)
                        .bind(group)
                        .bind(topic)
                        .bind(partition)
                        .bind(e)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected(),
                };
                if moved != 1 {
                    tx.rollback().await?;
                    return Ok(Applied::Moved);
                }
                let mut deleted = 0;
                let delete = table.delete_key();
                for d in &batch.deletes {
                    let mut q = sqlx::query(&delete);
                    for v in &d.key {
                        q = match v {
                            KeyValue::Text(s) => q.bind(s.as_str()),
                            KeyValue::Int(i) => q.bind(*i),
                            KeyValue::Bool(b) => q.bind(*b),
                        };
                    }
                    deleted += q
                        .bind(d.partition)
                        .bind(d.offset)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                let mut changed = 0;
                if let Rows::Cells(rows) = &batch.rows {
                    let width = columns.len().max(1);
                    let per_statement = (SQLITE_MAX_PARAMS / width).clamp(1, 500);
                    for group in rows.chunks(per_statement) {
                        let sql = table.upsert_rows(columns, group.len());
                        let mut q = sqlx::query(&sql);
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
                        changed += q.execute(&mut *tx).await?.rows_affected();
                    }
                }
                tx.commit().await?;
                Ok(Applied::Done { changed, deleted })
            }
        }
    }
}
