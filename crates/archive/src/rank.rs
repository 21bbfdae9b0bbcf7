//! The merge rule as one sortable value per row: a **rank**, bytes that compare
//! (byte by byte, shorter first when one is a prefix) exactly as [`crate::merge`] decides
//! between two versions of one key. A store that keeps the rank beside each row applies
//! the rule in a single statement, `… ON CONFLICT … DO UPDATE … WHERE excluded.rank >
//! row.rank` (online-sink), so replays, retries and out-of-order arrival never move a row
//! backwards, whatever order the versions come in.
//!
//! Why one value is enough: every strategy is a total order.
//! - `first_seen`: the earlier Kafka position (partition, then offset) wins. The rank is
//!   the position with every byte inverted.
//! - `max_by(F)`: the higher F wins (nulls lowest), ties by the later position. The rank
//!   is F in an order-preserving encoding, then the position.
//! - `vector_clock(F)`: a dominating clock wins; concurrent clocks go to the larger sum
//!   of counters, then the larger clock entry by entry, then the later position. A clock
//!   that dominates another has the strictly larger sum (every counter at least as large,
//!   one larger), so the rule is the order (sum, entries, position). The rank is those
//!   three, encoded in that order.
//!
//! The encoding is onepipe's own and stable across releases (not Arrow's row format,
//! which may change between Arrow versions): integers big-endian with the sign bit
//! flipped, floats by their IEEE total order, text and bytes with `00` escaped as
//! `00 FF` and ended by `00 00`, a null as `00` and a value as `01` before it.

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time32MillisecondType, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use onepipe_core::metadata::{MergeStrategy, TopicMetadata};

use crate::error::{Error, Result};
use crate::merge::{Clock, clocks_of, column_at};
use crate::{OFFSET_COLUMN, PARTITION_COLUMN};

/// The rank of every row of `batch` (clean rows: the record's fields and the Kafka
/// columns) under the topic's merge strategy.
pub fn ranks(batch: &RecordBatch, meta: &TopicMetadata) -> Result<BinaryArray> {
    let partitions = batch
        .column_by_name(PARTITION_COLUMN)
        .ok_or(Error::NoKafkaColumn(PARTITION_COLUMN))?
        .as_primitive::<Int32Type>()
        .clone();
    let offsets = batch
        .column_by_name(OFFSET_COLUMN)
        .ok_or(Error::NoKafkaColumn(OFFSET_COLUMN))?
        .as_primitive::<Int64Type>()
        .clone();
    let position = |i: usize, out: &mut Vec<u8>| {
        out.extend_from_slice(&((partitions.value(i) as u32) ^ (1 << 31)).to_be_bytes());
        out.extend_from_slice(&((offsets.value(i) as u64) ^ (1 << 63)).to_be_bytes());
    };
    let n = batch.num_rows();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(n);
    match &meta.merge {
        MergeStrategy::FirstSeen => {
            for i in 0..n {
                let mut r = Vec::with_capacity(12);
                position(i, &mut r);
                r.iter_mut().for_each(|b| *b = !*b);
                out.push(r);
            }
        }
        MergeStrategy::MaxBy(field) => {
            let column = column_at(batch, field)?;
            for i in 0..n {
                let mut r = Vec::with_capacity(24);
                scalar(&column, i, field, &mut r)?;
                position(i, &mut r);
                out.push(r);
            }
        }
        MergeStrategy::VectorClock(field) => {
            let column = column_at(batch, field)?;
            let clocks = clocks_of(column.as_ref(), field)?;
            for (i, clock) in clocks.iter().enumerate() {
                let mut r = Vec::with_capacity(48);
                clock_rank(clock, &mut r);
                position(i, &mut r);
                out.push(r);
            }
        }
    }
    Ok(BinaryArray::from_iter_values(out))
}

fn clock_rank(clock: &Clock, out: &mut Vec<u8>) {
    let sum = clock.values().fold(0i128, |s, v| s + i128::from(*v));
    out.extend_from_slice(&((sum as u128) ^ (1 << 127)).to_be_bytes());
    for (k, v) in clock {
        out.push(1);
        escaped(k.as_bytes(), out);
        out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes());
    }
    out.push(0);
}

/// Bytes with `00` written `00 FF`, ended by `00 00`: a prefix sorts first.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(*b);
        if *b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn int(v: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

fn float(bits: u64, out: &mut Vec<u8>) {
    // IEEE total order, as f64::total_cmp (and Arrow's comparator) orders floats.
    let key = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    out.extend_from_slice(&key.to_be_bytes());
}

/// One value of a `max_by` field, order-preserving; nulls first.
fn scalar(column: &ArrayRef, i: usize, field: &str, out: &mut Vec<u8>) -> Result<()> {
    if column.is_null(i) {
        out.push(0);
        return Ok(());
    }
    out.push(1);
    match column.data_type() {
        DataType::Boolean => out.push(u8::from(column.as_boolean().value(i))),
        DataType::Int32 => int(column.as_primitive::<Int32Type>().value(i).into(), out),
        DataType::Int64 => int(column.as_primitive::<Int64Type>().value(i), out),
        DataType::Date32 => int(column.as_primitive::<Date32Type>().value(i).into(), out),
        DataType::Time32(TimeUnit::Millisecond) => int(
            column
                .as_primitive::<Time32MillisecondType>()
                .value(i)
                .into(),
            out,
        ),
        DataType::Time64(TimeUnit::Microsecond) => {
            int(column.as_primitive::<Time64MicrosecondType>().value(i), out)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => int(
            column.as_primitive::<TimestampMillisecondType>().value(i),
            out,
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => int(
            column.as_primitive::<TimestampMicrosecondType>().value(i),
            out,
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => int(
            column.as_primitive::<TimestampNanosecondType>().value(i),
            out,
        ),
        DataType::Float32 => float(
            // Widening keeps the order, NaNs and infinities included.
            f64::from(column.as_primitive::<Float32Type>().value(i)).to_bits(),
            out,
        ),
        DataType::Float64 => float(column.as_primitive::<Float64Type>().value(i).to_bits(), out),
        DataType::Decimal128(_, _) => {
            let v = column.as_primitive::<Decimal128Type>().value(i);
            out.extend_from_slice(&((v as u128) ^ (1 << 127)).to_be_bytes());
        }
        DataType::Utf8 => escaped(column.as_string::<i32>().value(i).as_bytes(), out),
        DataType::Binary => escaped(column.as_binary::<i32>().value(i), out),
        other => {
            return Err(Error::MaxBy {
                field: field.to_string(),
                error: arrow::error::ArrowError::NotYetImplemented(format!(
                    "a rank of a {other} field (max_by takes numbers, text, bytes, dates, \
                     times, timestamps and decimals)"
                )),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{
        Float64Array, Int32Array, Int64Array, Int64Builder, MapBuilder, StringArray, StringBuilder,
    };
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    use crate::merge::merge;

    fn meta(merge: &str) -> TopicMetadata {
        let mut m = TopicMetadata::new("t", vec!["id".into()]);
        m.merge = merge.parse().unwrap();
        m
    }

    /// (key, partition, offset) of a row.
    type Winner = (String, i32, i64);

    /// (key, partition, offset) of each winner: by `merge`, and by the highest rank.
    fn winners(b: &RecordBatch, m: &TopicMetadata) -> (Vec<Winner>, Vec<Winner>) {
        let get = |b: &RecordBatch, i: usize| {
            (
                b.column_by_name("id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i)
                    .to_string(),
                b.column_by_name(PARTITION_COLUMN)
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .value(i),
                b.column_by_name(OFFSET_COLUMN)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .value(i),
            )
        };
        let merged = merge(b, m).unwrap().batch;
        let mut by_merge: Vec<_> = (0..merged.num_rows()).map(|i| get(&merged, i)).collect();
        by_merge.sort();
        let r = ranks(b, m).unwrap();
        let mut best: HashMap<String, usize> = HashMap::new();
        for i in 0..b.num_rows() {
            let k = get(b, i).0;
            match best.get(&k) {
                Some(&j) if r.value(j) >= r.value(i) => {}
                _ => {
                    best.insert(k, i);
                }
            }
        }
        let mut by_rank: Vec<_> = best.values().map(|&i| get(b, i)).collect();
        by_rank.sort();
        (by_merge, by_rank)
    }

    fn batch(keys: Vec<String>, field: ArrayRef, partitions: Vec<i32>) -> RecordBatch {
        let n = keys.len();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("f", field.data_type().clone(), true),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(keys)),
                field,
                Arc::new(Int32Array::from(partitions)),
                Arc::new(Int64Array::from(
                    (0..n as i64).map(|o| o * 7 - 20).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    proptest! {
        /// The highest rank is the row the merge keeps, for every strategy and field type.
        #[test]
        fn the_highest_rank_is_the_merge_winner(
            rows in proptest::collection::vec(
                (0u8..4, 0i32..3, proptest::option::of(-3i64..3), -2.0f64..2.0,
                 "[a\\x00]{0,3}",
                 proptest::collection::btree_map("[ab\\x00]{0,2}", -2i64..3, 0..3)),
                1..30),
        ) {
            let keys: Vec<String> = rows.iter().map(|r| format!("k{}", r.0)).collect();
            let parts: Vec<i32> = rows.iter().map(|r| r.1).collect();
            let longs: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
            let floats: ArrayRef = Arc::new(Float64Array::from(
                rows.iter().map(|r| (r.3 * 2.0).round() / 2.0).collect::<Vec<_>>()));
            let texts: ArrayRef = Arc::new(StringArray::from(
                rows.iter().map(|r| r.4.clone()).collect::<Vec<_>>()));
            let mut mb = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
            for r in &rows {
                for (k, v) in &r.5 {
                    mb.keys().append_value(k);
                    mb.values().append_value(*v);
                }
                mb.append(true).unwrap();
            }
            let clocks: ArrayRef = Arc::new(mb.finish());
            for (field, strategy) in [
                (longs.clone(), "first_seen"),
                (longs, "max_by(f)"),
                (floats, "max_by(f)"),
                (texts, "max_by(f)"),
                (clocks, "vector_clock(f)"),
            ] {
                let b = batch(keys.clone(), field, parts.clone());
                let (by_merge, by_rank) = winners(&b, &meta(strategy));
                prop_assert_eq!(by_merge, by_rank, "{}", strategy);
            }
        }
    }

    #[test]
    fn text_prefixes_and_nulls_sort_first() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        escaped(b"a", &mut a);
        escaped(b"a\0", &mut b);
        assert!(a < b);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        escaped(b"a", &mut x);
        escaped(b"ab", &mut y);
        assert!(x < y);
        let (mut n, mut m) = (Vec::new(), Vec::new());
        float((-0.0f64).to_bits(), &mut n);
        float(0.0f64.to_bits(), &mut m);
        assert!(n < m);
    }
}
