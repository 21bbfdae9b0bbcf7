//! Checks computed inside a PostgreSQL warehouse by SQL: only the numbers move. The SQL
//! mirrors `canonical` (tested against it on a real server).
//!
//! Tables follow warehouse-loader's naming: the topic lower-cased with every character
//! outside `[a-z0-9_]` replaced by `_`, columns named after the top-level fields, and a
//! `_date` column. Nested columns are `jsonb` as the loader writes them (records as
//! objects, a union as `{"branch": value}`, maps as objects, bytes base64, decimals,
//! dates and timestamps as strings); [`json_sql`] rebuilds `canonical::push_json`'s text
//! from them field by field, never from `jsonb`'s own output (whose key order is by
//! length, then bytes).

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Field};
use onepipe_core::metadata::{Check, TopicMetadata};
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::canonical::{in_row_text, is_nested, push_json_string};
use crate::checks::CheckValues;
use crate::error::{Error, Result};

// Table and column names exactly as warehouse-loader creates them (one definition).
use onepipe_tables::names::{column_name, qualified};
pub use onepipe_tables::names::{quote, sql_name as table_name};

/// The quoted warehouse column of an Avro field: the loader's own naming (names longer
/// than PostgreSQL keeps are cut and hashed), never the raw field name.
pub fn col(field: &str) -> String {
    quote(&column_name(field))
}

/// The SQL text of a field's column, as `canonical::value_text` writes it (NULL stays
/// NULL).
pub fn text_expr(field: &str, dt: &DataType) -> String {
    let c = col(field);
    match dt {
        DataType::Utf8 => c,
        DataType::Date32 => format!("to_char({c}, 'YYYY-MM-DD')"),
        DataType::Timestamp(_, _) => format!("((extract(epoch from {c}) * 1000000)::bigint)::text"),
        dt if is_nested(dt) => {
            format!("CASE WHEN {c} IS NOT NULL THEN {} END", json_sql(&c, dt, 0))
        }
        _ => format!("{c}::text"),
    }
}

/// A string as an SQL literal (standard_conforming_strings, on since PostgreSQL 9.1).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQL (text, never NULL) of `canonical::push_json`'s text for the `jsonb` value `x`
/// of Arrow type `dt`, as warehouse-loader wrote it. SQL NULL, JSON `null` and a missing
/// object key are all `null` (the loader writes only a union's set branch). `depth` names
/// the subqueries of nested arrays and maps apart.
pub fn json_sql(x: &str, dt: &DataType, depth: usize) -> String {
    // `#>> '{}'`: the scalar's own text (a string unquoted and unescaped).
    let v = format!("({x} #>> '{{}}')");
    let inner = match dt {
        DataType::Null => "'null'".to_string(),
        // jsonb prints booleans as `true`/`false`, integers (numeric) as written, and
        // strings escaped as `canonical::push_json_string` escapes them.
        DataType::Boolean | DataType::Int32 | DataType::Int64 | DataType::Utf8 => {
            format!("({x})::text")
        }
        // The loader's shortest round-trip digits read back as the same float, printed as
        // at the top level (extra_float_digits = 1); NaN and Infinity were written null.
        DataType::Float32 => format!("({v}::real)::text"),
        DataType::Float64 => format!("({v}::double precision)::text"),
        DataType::Binary => format!("'\"' || encode(decode({v}, 'base64'), 'hex') || '\"'"),
        DataType::Date32 => format!("'\"' || to_char({v}::date, 'YYYY-MM-DD') || '\"'"),
        DataType::Decimal128(_, _) => format!("'\"' || ({v}::numeric)::text || '\"'"),
        // Read as `timestamp`, the zone of a UTC instant (`Z`) is ignored, so both kinds
        // count from 1970-01-01 00:00 as written; nine fraction digits round like
        // `canonical::pg_micros`.
        DataType::Timestamp(_, _) => {
            format!("((extract(epoch from {v}::timestamp) * 1000000)::bigint)::text")
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            format!("((extract(epoch from {v}::time) * 1000000)::bigint)::text")
        }
        DataType::Struct(fields) => {
            let mut parts = Vec::new();
            for (k, f) in fields.iter().enumerate() {
                let mut name = String::new();
                if k > 0 {
                    name.push(',');
                }
                push_json_string(&mut name, f.name());
                name.push(':');
                parts.push(literal(&name));
                parts.push(json_sql(
                    &format!("({x} -> {})", literal(f.name())),
                    f.data_type(),
                    depth + 1,
                ));
            }
            if parts.is_empty() {
                "'{}'".to_string()
            } else {
                format!("'{{' || {} || '}}'", parts.join(" || "))
            }
        }
        DataType::List(item) => {
            let e = format!("e{depth}");
            format!(
                "(SELECT '[' || coalesce(string_agg({}, ',' ORDER BY {e}.n), '') || ']' \
                 FROM jsonb_array_elements({x}) WITH ORDINALITY AS {e}(v, n))",
                json_sql(&format!("{e}.v"), item.data_type(), depth + 1)
            )
        }
        DataType::Map(entries, _) => {
            let value = match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => kv[1].data_type().clone(),
                _ => DataType::Null,
            };
            // Keys in byte order (collation "C"), as Rust orders `str`; jsonb has kept the
            // last of a repeated key.
            let m = format!("m{depth}");
            format!(
                "(SELECT '{{' || coalesce(string_agg(to_jsonb({m}.k)::text || ':' || {}, ',' \
                 ORDER BY {m}.k COLLATE \"C\"), '') || '}}' FROM jsonb_each({x}) AS {m}(k, v))",
                json_sql(&format!("{m}.v"), &value, depth + 1)
            )
        }
        other => literal(&format!("\"unsupported {other}\"")),
    };
    format!("(CASE WHEN coalesce(jsonb_typeof({x}), 'null') = 'null' THEN 'null' ELSE {inner} END)")
}

/// The SQL of a row's text over the fields that take part in it, in order.
pub fn row_text_sql(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter(|f| in_row_text(f.data_type()))
        .map(|f| format!("coalesce({}, E'\\\\N')", text_expr(f.name(), f.data_type())))
        .collect();
    format!("concat_ws(E'\\x1f', {})", parts.join(", "))
}

fn hash_sql(text_sql: &str) -> String {
    format!("(('x' || substr(md5({text_sql}), 1, 16))::bit(64)::bigint)")
}

fn key_text_sql(meta: &TopicMetadata, fields: &[Field]) -> Result<String> {
    let mut parts = Vec::new();
    for k in &meta.unique_key {
        let f = fields
            .iter()
            .find(|f| f.name() == k)
            .ok_or_else(|| Error::KeyNotTopLevel { key: k.clone() })?;
        parts.push(format!(
            "coalesce({}, E'\\\\N')",
            text_expr(f.name(), f.data_type())
        ));
    }
    Ok(format!("concat_ws(E'\\x1f', {})", parts.join(", ")))
}

/// A warehouse connection: PostgreSQL computes every check by SQL; SQLite (the embedded
/// default of `make run`) has no MD5, so it computes the row count, distinct keys and
/// integer sums only, and the drill-down compares key sets.
pub enum Db {
    Postgres(PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// One `--warehouse` value: `URL`, or `URL#schema=S&name=N` to say which schema its tables
/// are in (otherwise `--warehouse-schema`) and what the report calls it (otherwise
/// `warehouseN`). The part after the last `#` never reaches the database driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub url: String,
    pub schema: Option<String>,
    pub name: Option<String>,
    /// `--online` only: the sink's consumer group.
    pub group: Option<String>,
}

/// Parses a `--warehouse` value. Errors name the part after `#` only, never the URL (it
/// may hold a password).
pub fn parse_spec(value: &str) -> std::result::Result<Spec, String> {
    let Some((url, fragment)) = value.rsplit_once('#') else {
        return Ok(Spec {
            url: value.to_string(),
            schema: None,
            name: None,
            group: None,
        });
    };
    let mut spec = Spec {
        url: url.to_string(),
        schema: None,
        name: None,
        group: None,
    };
    for pair in fragment.split('&') {
        let Some((key, val)) = pair.split_once('=').filter(|(_, v)| !v.is_empty()) else {
            return Err(format!(
                "`{pair}` after `#` in a --warehouse value is not KEY=VALUE (schema=…, name=…)"
            ));
        };
        let slot = match key {
            "schema" => &mut spec.schema,
            "name" => &mut spec.name,
            "group" => &mut spec.group,
            other => {
                return Err(format!(
                    "unknown key `{other}` after `#` in a --warehouse value (known: schema, name, and group for --online)"
                ));
            }
        };
        if slot.replace(val.to_string()).is_some() {
            return Err(format!(
                "`{key}` is given twice after `#` in a --warehouse value"
            ));
        }
    }
    Ok(spec)
}

/// Connects to `postgres://…` or `sqlite://…`.
pub async fn open(url: &str) -> Result<Db> {
    if url.starts_with("sqlite:") {
        let opts: sqlx::sqlite::SqliteConnectOptions = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .map_err(|error| Error::WarehouseUrl {
                url: url.to_string(),
                error,
            })?
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts)
            .await
            .map_err(|error| Error::WarehouseOpen {
                url: url.to_string(),
                error,
            })?;
        return Ok(Db::Sqlite(pool));
    }
    connect(url).await.map(Db::Postgres)
}

/// Connects with the settings the canonical texts assume.
pub async fn connect(url: &str) -> Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET extra_float_digits = 1")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("SET bytea_output = 'hex'")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|error| Error::WarehouseConnect { error })
}

/// Per date (`YYYY-MM-DD`): the topic's checks computed by the warehouse.
pub async fn checks(
    db: &Db,
    schema: &str,
    meta: &TopicMetadata,
    fields: &[Field],
) -> Result<BTreeMap<String, CheckValues>> {
    match db {
        Db::Postgres(pool) => pg_checks(pool, schema, meta, fields).await,
        Db::Sqlite(pool) => sqlite_checks(pool, meta, fields).await,
    }
}

async fn sqlite_checks(
    pool: &sqlx::SqlitePool,
    meta: &TopicMetadata,
    fields: &[Field],
) -> Result<BTreeMap<String, CheckValues>> {
    let table = qualified(None, &table_name(&meta.topic));
    let mut names = vec!["rows".to_string()];
    let mut exprs = vec!["count(*)".to_string()];
    for check in meta.effective_checks() {
        let expr = match &check {
            Check::CountDistinctUniqueKey if meta.unique_key.len() == 1 => {
                format!("count(DISTINCT {})", col(&meta.unique_key[0]))
            }
            Check::Sum(f) => match fields.iter().find(|x| x.name() == f).map(Field::data_type) {
                Some(DataType::Int32 | DataType::Int64) => format!("sum({})", col(f)),
                _ => continue,
            },
            _ => continue,
        };
        names.push(check.to_string());
        exprs.push(format!("CAST({expr} AS TEXT)"));
    }
    let sql = format!(
        "SELECT CAST(\"_date\" AS TEXT), {} FROM {table} GROUP BY \"_date\"",
        exprs.join(", ")
    );
    let rows = sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .map_err(Error::sql(&table))?;
    let mut out = BTreeMap::new();
    for row in rows {
        // SQLite columns have no fixed type; the CASTs make every value text.
        let date: String = row.try_get_unchecked(0).map_err(Error::sql(&table))?;
        let mut values = CheckValues::new();
        for (i, name) in names.iter().enumerate() {
            let v: Option<String> = row.try_get_unchecked(i + 1).map_err(Error::sql(&table))?;
            values.insert(
                name.clone(),
                v.unwrap_or_else(|| crate::canonical::NULL_TEXT.to_string()),
            );
        }
        out.insert(date.get(..10).unwrap_or(&date).to_string(), values);
    }
    Ok(out)
}

/// The key texts of one date (SQLite drill-down).
pub async fn keys(db: &Db, meta: &TopicMetadata, date: &str) -> Result<Vec<String>> {
    let Db::Sqlite(pool) = db else {
        return Err(Error::NotSqlite);
    };
    let table = qualified(None, &table_name(&meta.topic));
    let cols: Vec<String> = meta
        .unique_key
        .iter()
        .map(|k| format!("CAST({} AS TEXT)", col(k)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE CAST(\"_date\" AS TEXT) LIKE $1 || '%'",
        cols.join(" || char(31) || ")
    );
    let rows = sqlx::query(&sql)
        .bind(date)
        .fetch_all(pool)
        .await
        .map_err(Error::sql(&table))?;
    rows.iter()
        .map(|r| {
            r.try_get_unchecked::<String, _>(0)
                .map_err(Error::sql(&table))
        })
        .collect()
}

async fn pg_checks(
    pool: &PgPool,
    schema: &str,
    meta: &TopicMetadata,
    fields: &[Field],
) -> Result<BTreeMap<String, CheckValues>> {
    let table = qualified(Some(schema), &table_name(&meta.topic));
    let find = |name: &str| {
        fields
            .iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| Error::FieldNotTopLevel {
                field: name.to_string(),
                table: table.clone(),
            })
    };
    let mut names = vec!["rows".to_string()];
    let mut exprs = vec!["count(*)::text".to_string()];
    for check in meta.effective_checks() {
        let expr = match &check {
            Check::CountDistinctUniqueKey => {
                let keys: Vec<String> = meta.unique_key.iter().map(|k| col(k)).collect();
                if keys.len() == 1 {
                    format!("count(DISTINCT {})::text", keys[0])
                } else {
                    format!("count(DISTINCT ({}))::text", keys.join(", "))
                }
            }
            Check::Sum(f) => {
                let field = find(f)?;
                match field.data_type() {
                    // float4 sums are float4 in PostgreSQL: sum in double precision, as
                    // the Rust side does.
                    DataType::Float32 | DataType::Float64 => {
                        format!("sum({}::double precision)::text", col(field.name()))
                    }
                    _ => format!("sum({})::text", col(field.name())),
                }
            }
            Check::Min(f) | Check::Max(f) => {
                let field = find(f)?;
                let agg = if matches!(check, Check::Min(_)) {
                    "min"
                } else {
                    "max"
                };
                let inner = format!("{agg}({})", col(field.name()));
                match field.data_type() {
                    DataType::Date32 => format!("to_char({inner}, 'YYYY-MM-DD')"),
                    DataType::Timestamp(_, _) => {
                        format!("((extract(epoch from {inner}) * 1000000)::bigint)::text")
                    }
                    DataType::Utf8 => inner,
                    _ => format!("{inner}::text"),
                }
            }
            Check::RowChecksum => format!("sum({})::text", hash_sql(&row_text_sql(fields))),
        };
        names.push(check.to_string());
        exprs.push(expr);
    }
    let sql = format!(
        "SELECT to_char(\"_date\", 'YYYY-MM-DD'), {} FROM {table} GROUP BY \"_date\"",
        exprs.join(", ")
    );
    let rows = sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .map_err(Error::sql(&table))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let date: String = row.try_get(0).map_err(Error::sql(&table))?;
        let mut values = CheckValues::new();
        for (i, name) in names.iter().enumerate() {
            let v: Option<String> = row.try_get(i + 1).map_err(Error::sql(&table))?;
            let v = v.unwrap_or_else(|| crate::canonical::NULL_TEXT.to_string());
            let v = if name == "row_checksum" {
                wrap64(&v)?
            } else {
                v
            };
            values.insert(name.clone(), v);
        }
        out.insert(date, values);
    }
    Ok(out)
}

/// A numeric sum of 64-bit hashes, wrapped to 64 bits like the Rust side.
fn wrap64(text: &str) -> Result<String> {
    if text == crate::canonical::NULL_TEXT {
        return Ok("0".to_string());
    }
    let v: i128 = text.parse().map_err(|error| Error::Checksum {
        text: text.to_string(),
        error,
    })?;
    Ok((v.rem_euclid(1i128 << 64) as u64 as i64).to_string())
}

/// One bucket of the key-hash range split: how many rows, and their row-hash sum.
pub type Buckets = BTreeMap<u64, (u64, i64)>;

/// Rows of `date` grouped by the top `bits` bits of the key hash, within the range whose
/// top `parent_bits` bits are `parent`.
pub async fn buckets(
    pool: &PgPool,
    schema: &str,
    meta: &TopicMetadata,
    fields: &[Field],
    date: &str,
    bits: u32,
    parent: Option<(u32, u64)>,
) -> Result<Buckets> {
    let table = qualified(Some(schema), &table_name(&meta.topic));
    let key = format!(
        "(('x' || substr(md5({}), 1, 16))::bit(64))",
        key_text_sql(meta, fields)?
    );
    let row = hash_sql(&row_text_sql(fields));
    let filter = match parent {
        Some((pb, prefix)) => format!(" AND (({key} >> {})::bigint) = {prefix}", 64 - pb),
        None => String::new(),
    };
    let sql = format!(
        "SELECT (({key} >> {shift})::bigint), count(*), sum({row})::text FROM {table} \
         WHERE \"_date\" = $1::date{filter} GROUP BY 1",
        shift = 64 - bits
    );
    let rows = sqlx::query(&sql)
        .bind(date)
        .fetch_all(pool)
        .await
        .map_err(Error::sql(&table))?;
    let mut out = Buckets::new();
    for r in rows {
        let b: i64 = r.try_get(0).map_err(Error::sql(&table))?;
        let n: i64 = r.try_get(1).map_err(Error::sql(&table))?;
        let s: String = r.try_get(2).map_err(Error::sql(&table))?;
        out.insert(b as u64, (n as u64, wrap64(&s)?.parse().unwrap_or(0)));
    }
    Ok(out)
}

/// (key text, row hash) of every row in one key-hash range (a key twice is a duplicate).
pub async fn keyed_rows(
    pool: &PgPool,
    schema: &str,
    meta: &TopicMetadata,
    fields: &[Field],
    date: &str,
    range: (u32, u64),
) -> Result<Vec<(String, i64)>> {
    let table = qualified(Some(schema), &table_name(&meta.topic));
    let key_text = key_text_sql(meta, fields)?;
    let key = format!("(('x' || substr(md5({key_text}), 1, 16))::bit(64))");
    let sql = format!(
        "SELECT {key_text}, {} FROM {table} WHERE \"_date\" = $1::date AND (({key} >> {})::bigint) = {}",
        hash_sql(&row_text_sql(fields)),
        64 - range.0,
        range.1
    );
    let rows = sqlx::query(&sql)
        .bind(date)
        .fetch_all(pool)
        .await
        .map_err(Error::sql(&table))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let k: String = r.try_get(0).map_err(Error::sql(&table))?;
        let h: i64 = r.try_get(1).map_err(Error::sql(&table))?;
        out.push((k, h));
    }
    Ok(out)
}

#[cfg(test)]
mod spec_tests {
    #[test]
    fn warehouse_values_take_a_schema_and_a_name_after_the_last_hash() {
        let plain = super::parse_spec("postgres://u:p@h/db").unwrap();
        assert_eq!(plain.url, "postgres://u:p@h/db");
        assert_eq!((plain.schema, plain.name), (None, None));
        let full = super::parse_spec("postgres://u:p%23x@h/db#schema=finance&name=fin").unwrap();
        assert_eq!(full.url, "postgres://u:p%23x@h/db");
        assert_eq!(full.schema.as_deref(), Some("finance"));
        assert_eq!(full.name.as_deref(), Some("fin"));
        for (bad, says) in [
            ("sqlite:///w.db#schema", "not KEY=VALUE"),
            ("sqlite:///w.db#schema=", "not KEY=VALUE"),
            ("sqlite:///w.db#table=x", "unknown key `table`"),
            ("sqlite:///w.db#schema=a&schema=b", "given twice"),
        ] {
            let err = super::parse_spec(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(
                !err.contains("sqlite:///"),
                "the URL must not be in the error: {err}"
            );
        }
    }
}
