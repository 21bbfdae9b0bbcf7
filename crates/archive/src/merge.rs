//! One row per unique key by the topic's merge strategy, then sorted by the sort key.
//!
//! Rows are compared by the Arrow row format of their unique-key columns, so any
//! key type (strings, numbers, timestamps, nested fields) works the same way.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    pub timings: Timings,
}

/// Where a merge spent its time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Key rows, the winner of each key, and gathering the winners' columns.
    pub dedup: Duration,
    /// Order rows, sorting them, and gathering the columns in that order.
    pub sort: Duration,
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
    rows_of(&key_columns(batch, meta)?)
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
/// Large inputs are merged on every core (see [`merge_on`]).
pub fn merge(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Merged> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Below this many rows per thread, starting threads would cost more than it saves.
    const ROWS_PER_THREAD: usize = 64 * 1024;
    let threads = cores.min(batch.num_rows() / ROWS_PER_THREAD).max(1);
    merge_on(batch, meta, threads)
}

/// [`merge`] on `threads` threads; the result is the same for any number. The rows are
/// cut into one consecutive chunk per thread. Each chunk is turned into the row format
/// and its rows are put into buckets by the hash of their key; each bucket then keeps the
/// winner of each of its keys (all versions of a key share a bucket, and are met in the
/// input's order, as on one thread). The winners' order rows are sorted a chunk per
/// thread and the sorted chunks merged; columns are gathered a few per thread.
pub fn merge_on(batch: &RecordBatch, meta: &TopicMetadata, threads: usize) -> Result<Merged> {
    let threads = threads.max(1);
    let started = Instant::now();
    let n = batch.num_rows();
    let keys = ChunkedRows::new(&key_columns(batch, meta)?, threads)?;
    let rule = Rule::new(batch, meta)?;
    let (winners, conflicts) = dedup(&keys, &rule, n, threads);
    drop(keys);
    let deduped = take_on(batch, &UInt32Array::from(winners), threads)?;
    let deduplicating = started.elapsed();

    let started = Instant::now();
    let rows = ChunkedRows::new(&order_columns(&deduped, meta)?, threads)?;
    let indices = sort_rows(&rows);
    drop(rows);
    let sorted = take_on(&deduped, &UInt32Array::from(indices), threads)?;
    Ok(Merged {
        batch: sorted,
        conflicts,
        timings: Timings {
            dedup: deduplicating,
            sort: started.elapsed(),
        },
    })
}

fn key_columns(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Vec<ArrayRef>> {
    meta.unique_key
        .iter()
        .map(|p| column_at(batch, p))
        .collect()
}

/// Runs `work(0)` to `work(count - 1)`, each on a scoped thread of its own.
fn on_threads<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    on_each((0..count).collect(), work)
}

/// Runs `work` on each item, each on a scoped thread of its own (one item: on this
/// thread); the results in the items' order. A panic in one is raised here.
fn on_each<I: Send, T: Send>(items: Vec<I>, work: impl Fn(I) -> T + Sync) -> Vec<T> {
    if items.len() <= 1 {
        return items.into_iter().map(work).collect();
    }
    std::thread::scope(|s| {
        let work = &work;
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| s.spawn(move || work(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Columns in the Arrow row format, converted a consecutive chunk of rows per thread.
/// Every chunk has the same fields, so its rows compare byte for byte with the others'.
struct ChunkedRows {
    chunk: usize,
    rows: Vec<Rows>,
}

impl ChunkedRows {
    fn new(columns: &[ArrayRef], threads: usize) -> Result<Self> {
        let n = columns.first().map_or(0, |c| c.len());
        let chunk = n.div_ceil(threads).max(1);
        let fields: Vec<SortField> = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        let rows = on_threads(n.div_ceil(chunk).max(1), |t| {
            let start = (t * chunk).min(n);
            let len = chunk.min(n - start);
            let sliced: Vec<ArrayRef> = columns.iter().map(|c| c.slice(start, len)).collect();
            let converter = RowConverter::new(fields.clone())?;
            Ok::<_, Error>(converter.convert_columns(&sliced)?)
        })
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        Ok(ChunkedRows { chunk, rows })
    }

    /// The bytes of row `i` of the whole input.
    fn row(&self, i: usize) -> &[u8] {
        self.rows[i / self.chunk].row(i % self.chunk).data()
    }

    /// The range of rows of chunk `t`.
    fn range(&self, t: usize) -> std::ops::Range<usize> {
        let start = t * self.chunk;
        start..start + self.rows[t].num_rows()
    }
}

/// The topic's merge strategy over one batch: which of two rows of a key wins.
struct Rule {
    kind: RuleKind,
    partitions: arrow::array::Int32Array,
    offsets: arrow::array::Int64Array,
}

enum RuleKind {
    FirstSeen,
    MaxBy(arrow::array::DynComparator),
    VectorClock(Vec<Clock>),
}

impl Rule {
    fn new(batch: &RecordBatch, meta: &TopicMetadata) -> Result<Self> {
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
        let kind = match &meta.merge {
            MergeStrategy::FirstSeen => RuleKind::FirstSeen,
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
                RuleKind::MaxBy(cmp)
            }
            MergeStrategy::VectorClock(field) => {
                let column = column_at(batch, field)?;
                RuleKind::VectorClock(clocks_of(column.as_ref(), field)?)
            }
        };
        Ok(Rule {
            kind,
            partitions,
            offsets,
        })
    }

    fn position(&self, i: usize) -> (i32, i64) {
        (self.partitions.value(i), self.offsets.value(i))
    }

    /// Whether row `c` replaces `cur`, the winner so far of its key; a pair of
    /// concurrent vector clocks resolved is counted in `conflicts`.
    fn wins(&self, c: usize, cur: usize, conflicts: &mut u64) -> bool {
        match &self.kind {
            RuleKind::FirstSeen => self.position(c) < self.position(cur),
            RuleKind::MaxBy(cmp) => match cmp(c, cur) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => self.position(c) > self.position(cur),
            },
            RuleKind::VectorClock(clocks) => match compare_clocks(&clocks[c], &clocks[cur]) {
                ClockOrder::Dominates => true,
                ClockOrder::Dominated => false,
                ClockOrder::Equal => self.position(c) > self.position(cur),
                ClockOrder::Concurrent => {
                    *conflicts += 1;
                    concurrent_winner(
                        &clocks[c],
                        &clocks[cur],
                        self.position(c),
                        self.position(cur),
                    )
                }
            },
        }
    }
}

/// The winning row of every key, in input order, and the concurrent clocks resolved.
fn dedup(keys: &ChunkedRows, rule: &Rule, n: usize, threads: usize) -> (Vec<u32>, u64) {
    // Key rows are already well-mixed bytes; a fast non-cryptographic hash is enough.
    let hasher = foldhash::fast::RandomState::default();
    let chunks = keys.rows.len();
    // Each chunk's rows by bucket (the key's hash modulo the threads).
    let bucketed: Vec<Vec<Vec<u32>>> = if threads == 1 {
        vec![vec![(0..n).map(|i| i as u32).collect()]]
    } else {
        on_threads(chunks, |t| {
            let range = keys.range(t);
            let mut out: Vec<Vec<u32>> = (0..threads)
                .map(|_| Vec::with_capacity(range.len() / threads + 16))
                .collect();
            for i in range {
                let b = (hasher.hash_one(keys.row(i)) % threads as u64) as usize;
                out[b].push(i as u32);
            }
            out
        })
    };
    let buckets = bucketed.first().map_or(0, Vec::len);
    let results = on_threads(buckets.max(1), |b| {
        let size: usize = bucketed.iter().map(|c| c.get(b).map_or(0, Vec::len)).sum();
        let mut best: HashMap<&[u8], u32, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(size, hasher);
        let mut conflicts = 0u64;
        // Chunk by chunk, each in order: a key's rows are met in input order.
        for i in bucketed.iter().filter_map(|c| c.get(b)).flatten() {
            match best.entry(keys.row(*i as usize)) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    if rule.wins(*i as usize, *e.get() as usize, &mut conflicts) {
                        e.insert(*i);
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(*i);
                }
            }
        }
        (best.into_values().collect::<Vec<u32>>(), conflicts)
    });
    let conflicts = results.iter().map(|r| r.1).sum();
    let mut winners: Vec<u32> = Vec::with_capacity(results.iter().map(|r| r.0.len()).sum());
    for (w, _) in results {
        winners.extend(w);
    }
    winners.sort_unstable();
    (winners, conflicts)
}

/// `take` of every column, the columns shared out among `threads` by size.
fn take_on(batch: &RecordBatch, indices: &UInt32Array, threads: usize) -> Result<RecordBatch> {
    let threads = threads.min(batch.num_columns());
    if threads <= 1 {
        return Ok(take_record_batch(batch, indices)?);
    }
    // The largest columns first, each to the least loaded thread.
    let mut by_size: Vec<usize> = (0..batch.num_columns()).collect();
    by_size.sort_by_key(|c| std::cmp::Reverse(batch.column(*c).get_array_memory_size()));
    let mut shares: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); threads];
    for c in by_size {
        let least = shares
            .iter_mut()
            .min_by_key(|s| s.0)
            .expect("at least one thread");
        least.0 += batch.column(c).get_array_memory_size();
        least.1.push(c);
    }
    let taken = on_threads(threads, |t| {
        shares[t]
            .1
            .iter()
            .map(|c| Ok((*c, arrow::compute::take(batch.column(*c), indices, None)?)))
            .collect::<Result<Vec<_>>>()
    });
    let mut columns: Vec<Option<ArrayRef>> = vec![None; batch.num_columns()];
    for share in taken {
        for (c, array) in share? {
            columns[c] = Some(array);
        }
    }
    let columns = columns
        .into_iter()
        .map(|c| c.expect("every column taken"))
        .collect();
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())),
    )?)
}

/// The row numbers in the order of `rows`. Each row's first 16 bytes go next to its
/// number, so most comparisons never touch the rows themselves (which sit all over
/// memory); only rows equal in those bytes are compared in full. The order is total (the
/// Kafka position ends every row), so an unstable sort is exact. Each chunk is sorted on
/// its own thread, then the sorted chunks are merged pairwise.
fn sort_rows(rows: &ChunkedRows) -> Vec<u32> {
    let cmp = |a: &(u128, u32), b: &(u128, u32)| {
        a.0.cmp(&b.0)
            .then_with(|| rows.row(a.1 as usize).cmp(rows.row(b.1 as usize)))
    };
    let mut runs: Vec<Vec<(u128, u32)>> = on_threads(rows.rows.len(), |t| {
        let mut keyed: Vec<(u128, u32)> = rows
            .range(t)
            .map(|i| {
                let data = rows.row(i);
                let mut prefix = [0u8; 16];
                let n = data.len().min(16);
                prefix[..n].copy_from_slice(&data[..n]);
                (u128::from_be_bytes(prefix), i as u32)
            })
            .collect();
        keyed.sort_unstable_by(cmp);
        keyed
    });
    while runs.len() > 1 {
        let mut pairs = Vec::new();
        let mut it = std::mem::take(&mut runs).into_iter();
        while let Some(a) = it.next() {
            pairs.push((a, it.next()));
        }
        runs = on_each(pairs, |(a, b)| match b {
            None => a,
            Some(b) => merge_runs(a, b, cmp),
        });
    }
    runs.pop()
        .unwrap_or_default()
        .into_iter()
        .map(|(_, i)| i)
        .collect()
}

/// Two sorted runs as one.
fn merge_runs<T: Copy>(a: Vec<T>, b: Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if cmp(&b[j], &a[i]) == std::cmp::Ordering::Less {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
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

    fn keyed_clock_batch(rows: &[(u8, Vec<(u8, i64)>)]) -> RecordBatch {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for (_, clock) in rows {
            for (k, v) in clock {
                builder.keys().append_value(format!("n{k}"));
                builder.values().append_value(*v);
            }
            builder.append(true).unwrap();
        }
        let map = builder.finish();
        let n = rows.len();
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("clock", map.data_type().clone(), false),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(k, _)| format!("k{k}")),
                )),
                Arc::new(map),
                Arc::new(Int32Array::from(vec![0; n])),
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn ids_and_offsets(b: &RecordBatch) -> Vec<(String, i64)> {
        let ids = b.column(0).as_string::<i32>();
        let os = b.column(3).as_primitive::<Int64Type>();
        (0..b.num_rows())
            .map(|i| (ids.value(i).to_string(), os.value(i)))
            .collect()
    }

    proptest! {
        /// Merged on several threads, the rows, their order and the conflicts counted
        /// are those of one thread.
        #[test]
        fn threads_do_not_change_the_result(
            rows in proptest::collection::vec((0u8..60, 0i64..4), 0..500),
            threads in 2usize..8,
        ) {
            let keys: Vec<String> = rows.iter().map(|(k, _)| format!("k{k}")).collect();
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let versions: Vec<i64> = rows.iter().map(|(_, v)| *v).collect();
            let offsets: Vec<i64> = (0..rows.len() as i64).collect();
            let b = batch(&key_refs, &versions, &offsets);
            for strategy in ["first_seen", "max_by(v)"] {
                let one = merge_on(&b, &meta(strategy), 1).unwrap();
                let many = merge_on(&b, &meta(strategy), threads).unwrap();
                prop_assert_eq!(rows_of_batch(&one.batch), rows_of_batch(&many.batch));
            }
        }

        #[test]
        fn threads_do_not_change_vector_clock_merges(
            rows in proptest::collection::vec(
                (0u8..20, proptest::collection::vec((0u8..3, 0i64..3), 0..3)),
                0..300,
            ),
            threads in 2usize..8,
        ) {
            let b = keyed_clock_batch(&rows);
            let m = meta("vector_clock(clock)");
            let one = merge_on(&b, &m, 1).unwrap();
            let many = merge_on(&b, &m, threads).unwrap();
            prop_assert_eq!(ids_and_offsets(&one.batch), ids_and_offsets(&many.batch));
            prop_assert_eq!(one.conflicts, many.conflicts);
        }
    }

    fn rows_of_batch(b: &RecordBatch) -> Vec<(String, i64, i64)> {
        rows(b)
    }
}
