//! One partition's records made ready to apply: decoded as copydog decodes them, one
//! version per key (the highest rank), tombstones split out, and the rows encoded for the
//! database. CPU work: runs on a blocking thread.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use arrow::array::{ArrayRef, AsArray, Date32Array, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Field, Int64Type, Schema};
use chrono::NaiveDate;
use onepipe_archive::decode::{Reader, decode_records};
use onepipe_archive::raw::RawRecord;
use onepipe_archive::{merge, rank};
use onepipe_tables::encode::{Cell, Encoder};
use onepipe_tables::types::{Column, DATE, Dialect, Kind};

use crate::error::{Error, Result};
use crate::sql::RANK;

/// A key value of a tombstone, typed as its column.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: RawRecord,
    pub reason: String,
}

/// A tombstone to apply: the key's values, and its Kafka position.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub key: Vec<KeyValue>,
    pub partition: i32,
    pub offset: i64,
}

/// The rows, in what the database takes.
pub enum Rows {
    /// PostgreSQL COPY text.
    Copy(Vec<u8>),
    /// SQLite values, row by row.
    Cells(Vec<Vec<Cell>>),
}

/// What one batch of a partition does to the table.
pub struct Prepared {
    pub deletes: Vec<Delete>,
    pub rows: Rows,
    /// Rows in `rows` (one per key).
    pub row_count: usize,
    pub dead: Vec<DeadLetter>,
    /// The records the batch covers, every one of them applied, deleted, superseded
    /// within the batch or sent to the dead-letter topic.
    pub records: usize,
}

/// How a dataset's records become rows of its online table.
pub struct Shape {
    pub reader: Arc<Reader>,
    /// Writer schemas by id (every id the registry knows that the records name).
    pub writers: HashMap<u32, Arc<Avro>>,
    /// The table's columns ([`crate::sql::table_columns`]).
    pub columns: Vec<Column>,
    /// Kinds of the unique-key columns, in the metadata's order.
    pub key_kinds: Vec<Kind>,
    pub dialect: Dialect,
}

/// Prepares one partition's records (in offset order).
pub fn prepare(shape: &Shape, records: Vec<RawRecord>) -> Result<Prepared> {
    let total = records.len();
    let meta = &shape.reader.meta;
    let mut dead = Vec::new();
    let mut deletes: Vec<Delete> = Vec::new();
    // The offset of the last tombstone of each Kafka key in this batch.
    let mut deleted_at: HashMap<Vec<u8>, i64> = HashMap::new();
    // Records with a value, in offset order (found again by offset, binary search).
    let mut values = Vec::with_capacity(records.len());
    for r in records {
        if r.value.is_some() {
            values.push(r);
            continue;
        }
        let reason = if !meta.deletes {
            Some(
                "a tombstone (key, no value), and the topic's metadata does not allow deletes"
                    .to_string(),
            )
        } else {
            match &r.key {
                None => Some("a record with neither key nor value".to_string()),
                Some(k) => match tombstone_key(k, &shape.key_kinds) {
                    Ok(key) => {
                        deleted_at.insert(k.clone(), r.offset);
                        deletes.push(Delete {
                            key,
                            partition: r.partition,
                            offset: r.offset,
                        });
                        None
                    }
                    Err(why) => Some(format!("tombstone key: {why}")),
                },
            }
        };
        if let Some(reason) = reason {
            dead.push(DeadLetter { record: r, reason });
        }
    }
    let record_at = |offset: i64| {
        values
            .binary_search_by_key(&offset, |r| r.offset)
            .ok()
            .map(|i| &values[i])
    };
    let decoded = decode_records(&shape.reader, &values, &shape.writers)?;
    for reject in decoded.rejects {
        let record = RawRecord {
            partition: reject.partition,
            offset: reject.offset,
            timestamp: reject.timestamp,
            key: reject.key,
            value: reject.value,
            headers: Vec::new(),
        };
        dead.push(DeadLetter {
            record,
            reason: reject.reason,
        });
    }
    let mut batch = with_date(&decoded.batch, &decoded.dates)?;
    loop {
        let ranks = rank::ranks(&batch, meta)?;
        let winners = UInt32Array::from(winners(&batch, &ranks, meta, &deleted_at, &record_at)?);
        let chosen = take_record_batch(&batch, &winners)?;
        let chosen_ranks = arrow::compute::take(&ranks, &winners, None)?;
        let full = append(&chosen, RANK, chosen_ranks)?;
        let encoder = Encoder::exactly(shape.columns.clone());
        let encoded = match shape.dialect {
            Dialect::Sqlite => encoder.cells(&full).map(Rows::Cells),
            _ => {
                let mut out = Vec::new();
                encoder.copy_text(&full, &mut out).map(|_| Rows::Copy(out))
            }
        };
        match encoded {
            Ok(rows) => {
                return Ok(Prepared {
                    deletes,
                    rows,
                    row_count: full.num_rows(),
                    dead,
                    records: total,
                });
            }
            Err(e) => {
                // A value the table cannot hold: that record goes to the dead-letter
                // topic and the others are tried again.
                let Some(row) = e.row() else {
                    return Err(e.into());
                };
                let offset = offset_at(&full, row);
                if let Some(record) = record_at(offset) {
                    dead.push(DeadLetter {
                        record: record.clone(),
                        reason: e.to_string(),
                    });
                }
                let keep: Vec<u32> = (0..batch.num_rows())
                    .filter(|&i| offset_at(&batch, i) != offset)
                    .map(|i| i as u32)
                    .collect();
                batch = take_record_batch(&batch, &UInt32Array::from(keep))?;
            }
        }
    }
}

fn offset_at(batch: &RecordBatch, row: usize) -> i64 {
    batch
        .column_by_name(onepipe_archive::OFFSET_COLUMN)
        .map(|c| c.as_primitive::<Int64Type>().value(row))
        .unwrap_or(-1)
}

/// The rows that win per key: the highest rank among the versions after the key's last
/// tombstone in this batch.
fn winners<'r>(
    batch: &RecordBatch,
    ranks: &arrow::array::BinaryArray,
    meta: &onepipe_core::metadata::TopicMetadata,
    deleted_at: &HashMap<Vec<u8>, i64>,
    record_at: &impl Fn(i64) -> Option<&'r RawRecord>,
) -> Result<Vec<u32>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let keys = merge::key_rows(batch, meta)?;
    let mut best: HashMap<&[u8], usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let offset = offset_at(batch, i);
        if let Some(kafka_key) = record_at(offset).and_then(|r| r.key.as_ref())
            && deleted_at.get(kafka_key).is_some_and(|t| *t > offset)
        {
            continue;
        }
        match best.get(key.as_slice()) {
            Some(&j) if ranks.value(j) >= ranks.value(i) => {}
            _ => {
                best.insert(key.as_slice(), i);
            }
        }
    }
    let mut out: Vec<u32> = best.values().map(|&i| i as u32).collect();
    out.sort_unstable();
    Ok(out)
}

fn append(batch: &RecordBatch, name: &str, column: ArrayRef) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, column.data_type().clone(), false));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn with_date(batch: &RecordBatch, dates: &[NaiveDate]) -> Result<RecordBatch> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = Date32Array::from_iter_values(dates.iter().map(|d| {
        (*d - epoch)
            .num_days()
            .clamp(i32::MIN.into(), i32::MAX.into()) as i32
    }));
    append(batch, DATE, Arc::new(days))
}

/// A tombstone's Kafka key (`["acct-7",42]`, as `onepipe_core::wire::encode_key` writes
/// it) as typed key values.
pub fn tombstone_key(key: &[u8], kinds: &[Kind]) -> std::result::Result<Vec<KeyValue>, String> {
    let text = String::from_utf8_lossy(key);
    let serde_json::Value::Array(values) = serde_json::from_slice(key)
        .map_err(|e| format!("{text:?} is not a JSON array of the unique key's values ({e})"))?
    else {
        return Err(format!(
            "{text:?} is not a JSON array of the unique key's values"
        ));
    };
    if values.len() != kinds.len() {
        return Err(format!(
            "{text:?} has {} values, the unique key has {} fields",
            values.len(),
            kinds.len()
        ));
    }
    values
        .iter()
        .zip(kinds)
        .map(|(v, kind)| match (kind, v) {
            (Kind::Text, serde_json::Value::String(s)) => Ok(KeyValue::Text(s.clone())),
            (Kind::Int | Kind::Long, serde_json::Value::Number(n)) => n
                .as_i64()
                .map(KeyValue::Int)
                .ok_or_else(|| format!("{n} is not an integer")),
            (Kind::Boolean, serde_json::Value::Bool(b)) => Ok(KeyValue::Bool(*b)),
            (Kind::Text | Kind::Int | Kind::Long | Kind::Boolean, other) => {
                Err(format!("{other} does not fit a {kind:?} key field"))
            }
            (other, _) => Err(format!(
                "deleting by a {other:?} key field is not supported (text, int, long, boolean are)"
            )),
        })
        .collect()
}

impl From<onepipe_tables::encode::EncodeError> for Error {
    fn from(e: onepipe_tables::encode::EncodeError) -> Self {
        Error::Encode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_keys_are_typed_or_refused() {
        assert_eq!(
            tombstone_key(br#"["a",7]"#, &[Kind::Text, Kind::Long]).unwrap(),
            vec![KeyValue::Text("a".into()), KeyValue::Int(7)]
        );
        assert!(
            tombstone_key(br#"["a"]"#, &[Kind::Text, Kind::Long])
                .unwrap_err()
                .contains("has 1 values")
        );
        assert!(
            tombstone_key(b"a", &[Kind::Text])
                .unwrap_err()
                .contains("not a JSON array")
        );
        assert!(
            tombstone_key(b"[1]", &[Kind::Text])
                .unwrap_err()
                .contains("does not fit")
        );
    }
}
