//! One row per unique key by the topic's merge strategy, then sorted by the sort key.
//!
//! Rows are compared by the Arrow row format of their unique-key columns, so any
//! key type (strings, numbers, timestamps, nested fields) works the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::make_comparator;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortOptions, take_record_batch};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::row::{RowConverter, Rows, SortField};
use onepipe_core::metadata::{MergeStrategy, TopicMetadata};

use crate::OFFSET_COLUMN;
use crate::PARTITION_COLUMN;
use crate::error::{Error, Result};

/// The merged and sorted rows, and how many concurrent vector clocks were resolved.
pub struct Merged {
    pub batch: RecordBatch,
    pub conflicts: u64,
}

/// The column at a dotted path (`customer.id`), with the nulls of the structs on the way.
pub fn column_at(batch: &RecordBatch, path: &str) -> Result<ArrayRef> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let mut array = batch
        .column_by_name(first)
        .ok_or_else(|| Error::NoColumn {
            column: first.to_string(),
            path: path.to_string(),
        })?
        .clone();
    for part in parts {
        let Some(s) = array.as_struct_opt() else {
            return Err(Error::NotInStruct {
                path: path.to_string(),
                field: part.to_string(),
            });
        };
        let child = s
            .column_by_name(part)
            .ok_or_else(|| Error::NoStructField {
                path: path.to_string(),
                field: part.to_string(),
            })?
            .clone();
        let nulls = NullBuffer::union(s.nulls(), child.nulls());
        let data = child.to_data().into_builder().nulls(nulls).build()?;
        array = arrow::array::make_array(data);
    }
    Ok(array)
}

/// The columns rows are sorted by: the sort key, the unique key, then the Kafka position
/// (so the order is total and the output the same for the same input).
pub fn order_columns(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Vec<ArrayRef>> {
    let mut columns = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // A unique-key field already in the sort key changes nothing the second time.
    for p in meta.sort_key.iter().chain(meta.unique_key.iter()) {
        if seen.insert(p) {
            columns.push(column_at(batch, p)?);
        }
    }
    for c in [PARTITION_COLUMN, OFFSET_COLUMN] {
        columns.push(
            batch
                .column_by_name(c)
                .ok_or(Error::NoKafkaColumn(c))?
                .clone(),
        );
    }
    Ok(columns)
}

/// The unique key of every row in the Arrow row format (equal keys, equal bytes).
pub fn key_rows_of(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Rows> {
    let key_columns = meta
        .unique_key
        .iter()
        .map(|p| column_at(batch, p))
        .collect::<Result<Vec<_>>>()?;
    rows_of(&key_columns)
}

fn rows_of(columns: &[ArrayRef]) -> Result<Rows> {
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    Ok(converter.convert_columns(columns)?)
}

/// Keeps one row per unique key and sorts by the sort key (then the unique key and the
/// Kafka position, so the order is total and the output the same for the same input).
pub fn merge(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Merged> {
    let n = batch.num_rows();
    let keys = key_rows_of(batch, meta)?;
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
    let position = |i: usize| (partitions.value(i), offsets.value(i));

    let mut conflicts = 0u64;
    let decide: Box<dyn FnMut(usize, usize) -> bool + '_> = match &meta.merge {
        MergeStrategy::FirstSeen => Box::new(|c, cur| position(c) < position(cur)),
        MergeStrategy::MaxBy(field) => {
            let column = column_at(batch, field)?;
            let cmp = make_comparator(
                column.as_ref(),
                column.as_ref(),
                SortOptions {
                    descending: false,
                    nulls_first: true,
                },
            )
            .map_err(|error| Error::MaxBy {
                field: field.clone(),
                error,
            })?;
            Box::new(move |c, cur| match cmp(c, cur) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => position(c) > position(cur),
            })
        }
        MergeStrategy::VectorClock(field) => {
            let column = column_at(batch, field)?;
            let clocks = clocks_of(column.as_ref(), field)?;
            let conflicts = &mut conflicts;
            Box::new(
                move |c, cur| match compare_clocks(&clocks[c], &clocks[cur]) {
                    ClockOrder::Dominates => true,
                    ClockOrder::Dominated => false,
                    ClockOrder::Equal => position(c) > position(cur),
                    ClockOrder::Concurrent => {
                        *conflicts += 1;
                        concurrent_winner(&clocks[c], &clocks[cur], position(c), position(cur))
                    }
                },
            )
        }
    };
    let mut decide = decide;
    // Key rows are already well-mixed bytes; a fast non-cryptographic hash is enough.
    let mut best: HashMap<&[u8], usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
    for i in 0..n {
        let key = keys.row(i);
        match best.get_mut(key.data()) {
            Some(cur) => {
                if decide(i, *cur) {
                    *cur = i;
                }
            }
            None => {
                best.insert(keys.row(i).data(), i);
            }
        }
    }
    drop(decide);
    let winners: Vec<u32> = {
        let mut w: Vec<u32> = best
            .values()
            .map(|i| u32::try_from(*i).unwrap_or(u32::MAX))
            .collect();
        w.sort_unstable();
        w
    };
    let deduped = take_record_batch(batch, &UInt32Array::from(winners))?;

    let rows = rows_of(&order_columns(&deduped, meta)?)?;
    let indices = sort_rows(&rows);
    let sorted = take_record_batch(&deduped, &UInt32Array::from(indices))?;
    Ok(Merged {
        batch: sorted,
        conflicts,
    })
}

/// The row numbers in the order of `rows`. Each row's first 16 bytes go next to its
/// number, so most comparisons never touch the rows themselves (which sit all over
/// memory); only rows equal in those bytes are compared in full. The order is total (the
/// Kafka position ends every row), so an unstable sort is exact.
fn sort_rows(rows: &Rows) -> Vec<u32> {
    let mut keyed: Vec<(u128, u32)> = (0..rows.num_rows())
        .map(|i| {
            let data = rows.row(i).data();
            let mut prefix = [0u8; 16];
            let n = data.len().min(16);
            prefix[..n].copy_from_slice(&data[..n]);
            (u128::from_be_bytes(prefix), i as u32)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| rows.row(a.1 as usize).cmp(&rows.row(b.1 as usize)))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

pub(crate) type Clock = BTreeMap<String, i64>;

pub(crate) fn clocks_of(column: &dyn Array, field: &str) -> Result<Vec<Clock>> {
    let Some(map) = column.as_map_opt() else {
        return Err(Error::NotAClock {
            field: field.to_string(),
        });
    };
    let mut out = Vec::with_capacity(map.len());
    for i in 0..map.len() {
        let mut clock = Clock::new();
        if map.is_valid(i) {
            let entries = map.value(i);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_primitive::<Int64Type>();
            for j in 0..entries.len() {
                if values.is_valid(j) {
                    clock.insert(keys.value(j).to_string(), values.value(j));
                }
            }
            // A missing entry counts as 0, so an explicit 0 is no entry: otherwise the
            // rule for concurrent clocks, which compares entries, would depend on
            // whether a producer wrote the zero (found by the verifier's property test).
            clock.retain(|_, v| *v != 0);
        }
        out.push(clock);
    }
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
enum ClockOrder {
    Dominates,
    Dominated,
    Equal,
    Concurrent,
}

/// Compares two vector clocks (a missing entry counts as 0).
fn compare_clocks(a: &Clock, b: &Clock) -> ClockOrder {
    let (mut greater, mut less) = (false, false);
    for k in a.keys().chain(b.keys()) {
        let (x, y) = (
            a.get(k).copied().unwrap_or(0),
            b.get(k).copied().unwrap_or(0),
        );
        greater |= x > y;
        less |= x < y;
    }
    match (greater, less) {
        (true, false) => ClockOrder::Dominates,
        (false, true) => ClockOrder::Dominated,
        (false, false) => ClockOrder::Equal,
        (true, true) => ClockOrder::Concurrent,
    }
}

/// The rule for concurrent clocks, the same whatever order the rows arrive in: the
/// larger sum of counters wins, then the larger clock entry by entry, then the later
/// Kafka position.
fn concurrent_winner(a: &Clock, b: &Clock, pa: (i32, i64), pb: (i32, i64)) -> bool {
    let sum = |c: &Clock| c.values().fold(0i128, |s, v| s + i128::from(*v));
    match sum(a).cmp(&sum(b)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match a.iter().cmp(b.iter()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => pa > pb,
        },
    }
}

/// A column of key rows, for tests and the verifier.
pub fn key_rows(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Vec<Vec<u8>>> {
    let rows = key_rows_of(batch, meta)?;
    Ok((0..batch.num_rows())
        .map(|i| rows.row(i).data().to_vec())
        .collect())
}

#[allow(dead_code)]
fn _assert_send(_: Arc<RecordBatch>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Int32Array, Int64Array, Int64Builder, MapBuilder, StringArray, StringBuilder,
    };
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    fn batch(keys: &[&str], versions: &[i64], offsets: &[i64]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(versions.to_vec())),
                Arc::new(Int32Array::from(vec![0; keys.len()])),
                Arc::new(Int64Array::from(offsets.to_vec())),
            ],
        )
        .unwrap()
    }

    fn meta(merge: &str) -> TopicMetadata {
        let mut m = TopicMetadata::new("t", vec!["id".into()]);
        m.merge = merge.parse().unwrap();
        m
    }

    fn rows(b: &RecordBatch) -> Vec<(String, i64, i64)> {
        let ids = b.column(0).as_string::<i32>();
        let vs = b.column(1).as_primitive::<Int64Type>();
        let os = b.column(3).as_primitive::<Int64Type>();
        (0..b.num_rows())
            .map(|i| (ids.value(i).to_string(), vs.value(i), os.value(i)))
            .collect()
    }

    #[test]
    fn first_seen_keeps_the_earliest_position() {
        let b = batch(&["b", "a", "a", "b"], &[1, 2, 3, 4], &[10, 11, 12, 13]);
        let m = merge(&b, &meta("first_seen")).unwrap();
        assert_eq!(rows(&m.batch), [("a".into(), 2, 11), ("b".into(), 1, 10)]);
    }

    #[test]
    fn max_by_keeps_the_highest_version_ties_by_later_position() {
        let b = batch(&["a", "a", "a", "b"], &[3, 5, 5, 1], &[10, 11, 9, 12]);
        let m = merge(&b, &meta("max_by(v)")).unwrap();
        assert_eq!(rows(&m.batch), [("a".into(), 5, 11), ("b".into(), 1, 12)]);
    }

    fn clock_batch(clocks: &[&[(&str, i64)]]) -> RecordBatch {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for c in clocks {
            for (k, v) in *c {
                builder.keys().append_value(k);
                builder.values().append_value(*v);
            }
            builder.append(true).unwrap();
        }
        let map = builder.finish();
        let n = clocks.len();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("clock", map.data_type().clone(), false),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["k"; n])),
                Arc::new(map),
                Arc::new(Int32Array::from(vec![0; n])),
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn vector_clocks_dominating_wins_concurrent_is_counted() {
        let b = clock_batch(&[&[("a", 1)], &[("a", 2), ("b", 1)], &[("a", 1)]]);
        let m = merge(&b, &meta("vector_clock(clock)")).unwrap();
        assert_eq!(m.conflicts, 0);
        assert_eq!(m.batch.column(3).as_primitive::<Int64Type>().value(0), 1);

        let b = clock_batch(&[&[("a", 2)], &[("b", 1)]]);
        let m = merge(&b, &meta("vector_clock(clock)")).unwrap();
        assert_eq!(m.conflicts, 1);
        assert_eq!(m.batch.column(3).as_primitive::<Int64Type>().value(0), 0);
    }

    proptest! {
        /// Whatever order rows arrive in, the same rows win.
        #[test]
        fn merge_does_not_depend_on_row_order(
            rows in proptest::collection::vec((0u8..5, 0i64..4), 1..40),
            seed in any::<u64>(),
        ) {
            let keys: Vec<String> = rows.iter().map(|(k, _)| format!("k{k}")).collect();
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let versions: Vec<i64> = rows.iter().map(|(_, v)| *v).collect();
            let offsets: Vec<i64> = (0..rows.len() as i64).collect();
            let b = batch(&key_refs, &versions, &offsets);
            let mut order: Vec<u32> = (0..rows.len() as u32).collect();
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let shuffled = take_record_batch(&b, &UInt32Array::from(order)).unwrap();
            for strategy in ["first_seen", "max_by(v)"] {
                let a = merge(&b, &meta(strategy)).unwrap();
                let c = merge(&shuffled, &meta(strategy)).unwrap();
                prop_assert_eq!(rows_of_batch(&a.batch), rows_of_batch(&c.batch));
            }
        }
    }

    fn rows_of_batch(b: &RecordBatch) -> Vec<(String, i64, i64)> {
        rows(b)
    }
}
