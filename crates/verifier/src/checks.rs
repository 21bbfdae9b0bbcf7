//! Check values of one date in one store, computed from Arrow rows (raw and clean
//! archives). Values are canonical texts (see `canonical`), so every store's are
//! compared as strings. Only sums of float columns compare with a relative tolerance
//! (their rounding depends on the order of addition); integer and decimal sums are
//! exact on every side and must be equal.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch};
use arrow::compute::{SortOptions, sort_to_indices};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type};
use onepipe_archive::merge::column_at;
use onepipe_core::metadata::{Check, TopicMetadata};

use crate::canonical::{self, decimal_text, float8_text, in_row_text, row_hash, value_text};
use crate::error::{Error, Result};

/// Check name → canonical value.
pub type CheckValues = BTreeMap<String, String>;

/// The columns that make up row texts: top-level columns with a canonical text
/// (`canonical::in_row_text`: scalars, records, arrays, maps), Kafka columns aside.
pub fn row_columns(batch: &RecordBatch) -> Vec<ArrayRef> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| {
            !f.name().starts_with("_kafka_") && f.name() != "_schema_id" && f.name() != "_date"
        })
        .filter(|(f, _)| in_row_text(f.data_type()))
        .map(|(_, c)| c.clone())
        .collect()
}

/// Per row: (key text, row hash), for the drill-down.
pub fn keyed_hashes(batches: &[RecordBatch], meta: &TopicMetadata) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for b in batches {
        add_keyed_hashes(&mut out, b, meta)?;
    }
    Ok(out)
}

/// Every check of the topic over the rows of one date.
pub fn compute(batches: &[RecordBatch], meta: &TopicMetadata) -> Result<CheckValues> {
    let mut acc = Accumulator::new(meta);
    for b in batches {
        acc.add(b)?;
    }
    acc.finish()
}

/// The checks of one date, a batch at a time: what it keeps does not grow with the rows
/// except for the set of key hashes (16 bytes per distinct key), so a date larger than
/// memory is checked as it streams past. Several threads may each feed a
/// [`sibling`](Self::sibling) (they share the key set) and [`merge`](Self::merge) them at
/// the end.
pub struct Accumulator {
    meta: TopicMetadata,
    rows: u64,
    keys: Arc<KeySet>,
    /// This batch's key hashes, by shard of `keys`.
    by_shard: Vec<Vec<u128>>,
    sums: BTreeMap<String, Sum>,
    extremes: BTreeMap<String, Option<ArrayRef>>,
    checksum: i64,
    text: String,
}

/// Shards of [`KeySet`].
const KEY_SHARDS: usize = 64;

/// The distinct 128-bit hashes of key texts ([`key_hash`]; a collision, about 1 in 2^68
/// for a billion keys, would undercount, never hide a difference in the other checks),
/// in shards by their top bits, so that threads adding keys at once rarely wait on each
/// other and no set has to be merged into another at the end.
pub struct KeySet {
    shards: Vec<Mutex<HashSet<u128, FastHash>>>,
}

impl KeySet {
    fn new() -> Self {
        KeySet {
            shards: (0..KEY_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(hash: u128) -> usize {
        (hash >> (128 - KEY_SHARDS.trailing_zeros())) as usize
    }

    /// Adds the hashes, grouped by shard (`by_shard[i]` goes to shard `i`; emptied).
    fn add(&self, by_shard: &mut [Vec<u128>]) {
        for (shard, hashes) in self.shards.iter().zip(by_shard) {
            if hashes.is_empty() {
                continue;
            }
            let mut set = shard.lock().unwrap_or_else(|e| e.into_inner());
            set.extend(hashes.drain(..));
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// A running sum: exact for integers and decimals, in f64 for floats.
#[derive(Debug, Clone, Copy)]
enum Sum {
    Empty,
    Int(i128),
    Float(f64),
    Decimal(i128, i8),
}

impl Accumulator {
    pub fn new(meta: &TopicMetadata) -> Self {
        Accumulator {
            meta: meta.clone(),
            rows: 0,
            keys: Arc::new(KeySet::new()),
            by_shard: vec![Vec::new(); KEY_SHARDS],
            sums: BTreeMap::new(),
            extremes: BTreeMap::new(),
            checksum: 0,
            text: String::new(),
        }
    }

    /// An empty accumulator of the same checks that shares this one's key set, for
    /// another thread; [`merge`](Self::merge) it back.
    pub fn sibling(&self) -> Self {
        Accumulator {
            keys: self.keys.clone(),
            ..Accumulator::new(&self.meta)
        }
    }

    /// Adds the rows a [`sibling`](Self::sibling) has seen.
    pub fn merge(&mut self, other: Accumulator) -> Result<()> {
        if !Arc::ptr_eq(&self.keys, &other.keys) {
            return Err(Error::Column {
                path: "*".to_string(),
                reason: "merging accumulators that do not share their keys".to_string(),
            });
        }
        self.rows += other.rows;
        self.checksum = self.checksum.wrapping_add(other.checksum);
        for (name, sum) in other.sums {
            let mine = self.sums.entry(name).or_insert(Sum::Empty);
            *mine = combine(*mine, sum)?;
        }
        for check in self.meta.effective_checks() {
            let largest = match check {
                Check::Min(_) => false,
                Check::Max(_) => true,
                _ => continue,
            };
            let name = check.to_string();
            if let Some(Some(theirs)) = other.extremes.get(&name) {
                let best = self.extremes.entry(name).or_insert(None);
                *best = extreme(best.as_ref(), theirs, largest)?;
            }
        }
        Ok(())
    }

    /// The top-level columns the checks read; `None` when they read every column (a
    /// `row_checksum`). A reader may leave the others out.
    pub fn columns(&self) -> Option<BTreeSet<String>> {
        let top = |path: &str| path.split('.').next().unwrap_or_default().to_string();
        let mut out: BTreeSet<String> = BTreeSet::new();
        for check in self.meta.effective_checks() {
            match &check {
                Check::RowChecksum => return None,
                Check::CountDistinctUniqueKey => {
                    out.extend(self.meta.unique_key.iter().map(|k| top(k)));
                }
                Check::Sum(f) | Check::Min(f) | Check::Max(f) => {
                    out.insert(top(f));
                }
            }
        }
        Some(out)
    }

    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        for check in self.meta.effective_checks() {
            match &check {
                Check::CountDistinctUniqueKey => {
                    let keys: Vec<ArrayRef> = self
                        .meta
                        .unique_key
                        .iter()
                        .map(|p| column(batch, p))
                        .collect::<Result<_>>()?;
                    let single_string = keys.len() == 1 && keys[0].data_type() == &DataType::Utf8;
                    for i in 0..batch.num_rows() {
                        let text = if single_string && keys[0].is_valid(i) {
                            // A single string key is its own text.
                            keys[0].as_string::<i32>().value(i)
                        } else {
                            self.text.clear();
                            canonical::push_row_text(&mut self.text, &keys, i);
                            self.text.as_str()
                        };
                        let h = key_hash(text);
                        self.by_shard[KeySet::shard(h)].push(h);
                    }
                    self.keys.add(&mut self.by_shard);
                }
                Check::Sum(f) => {
                    let c = column(batch, f)?;
                    let s = self.sums.entry(check.to_string()).or_insert(Sum::Empty);
                    *s = add_sum(*s, &c)?;
                }
                Check::Min(f) | Check::Max(f) => {
                    let largest = matches!(check, Check::Max(_));
                    let c = column(batch, f)?;
                    let best = self.extremes.entry(check.to_string()).or_insert(None);
                    *best = extreme(best.as_ref(), &c, largest)?;
                }
                Check::RowChecksum => {
                    let cols = row_columns(batch);
                    for i in 0..batch.num_rows() {
                        self.checksum =
                            self.checksum
                                .wrapping_add(row_hash(&mut self.text, &cols, i));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<CheckValues> {
        let mut out = CheckValues::new();
        out.insert("rows".to_string(), self.rows.to_string());
        for check in self.meta.effective_checks() {
            let name = check.to_string();
            let value = match &check {
                Check::CountDistinctUniqueKey => self.keys.len().to_string(),
                Check::Sum(_) => sum_text(self.sums.get(&name).copied().unwrap_or(Sum::Empty)),
                Check::Min(_) | Check::Max(_) => match self.extremes.get(&name) {
                    Some(Some(c)) => value_text(c, 0),
                    _ => canonical::NULL_TEXT.to_string(),
                },
                Check::RowChecksum => self.checksum.to_string(),
            };
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// Two 64-bit foldhash hashes of a key text under fixed, different seeds.
pub(crate) fn key_hash(text: &str) -> u128 {
    use std::hash::BuildHasher;
    let a = foldhash::quality::FixedState::with_seed(0x6f6e_6570_6970_6531).hash_one(text);
    let b = foldhash::quality::FixedState::with_seed(0x7665_7269_6669_6572).hash_one(text);
    (u128::from(a) << 64) | u128::from(b)
}

/// Per row: (key text, row hash), for the drill-down, a batch at a time.
pub fn add_keyed_hashes(
    out: &mut HashMap<String, i64>,
    batch: &RecordBatch,
    meta: &TopicMetadata,
) -> Result<()> {
    for_each_keyed_hash(batch, meta, |k, h| {
        out.insert(k.to_string(), h);
    })
}

/// Calls `f` with each row's key text (as the drill-down names keys) and row hash.
pub fn for_each_keyed_hash(
    batch: &RecordBatch,
    meta: &TopicMetadata,
    mut f: impl FnMut(&str, i64),
) -> Result<()> {
    let keys: Vec<ArrayRef> = meta
        .unique_key
        .iter()
        .map(|p| column(batch, p))
        .collect::<Result<_>>()?;
    let cols = row_columns(batch);
    let (mut key, mut buf) = (String::new(), String::new());
    for i in 0..batch.num_rows() {
        key.clear();
        canonical::push_row_text(&mut key, &keys, i);
        f(&key, row_hash(&mut buf, &cols, i));
    }
    Ok(())
}

/// A hasher for maps keyed by [`key_hash`] values (already uniform).
pub(crate) type FastHash = BuildHasherDefault<FxHasher>;

/// The multiply-rotate hash of rustc (FxHash): much faster than SipHash for counting
/// many short keys; the keys are our own data, so hash flooding is not a concern.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The column at a dotted path, as [`column_at`] finds it.
pub(crate) fn column(batch: &RecordBatch, path: &str) -> Result<ArrayRef> {
    column_at(batch, path).map_err(|e| Error::Column {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn add_sum(acc: Sum, c: &ArrayRef) -> Result<Sum> {
    if c.null_count() == c.len() {
        // All NULL (or no rows): the type still has to be summable.
        return match c.data_type() {
            DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _) => Ok(acc),
            other => Err(Error::CannotSum {
                data_type: other.clone(),
            }),
        };
    }
    Ok(match c.data_type() {
        DataType::Int32 | DataType::Int64 => {
            let part: i128 = match c.data_type() {
                DataType::Int32 => exact_sum(c.as_primitive::<Int32Type>())?,
                _ => exact_sum(c.as_primitive::<Int64Type>())?,
            };
            match acc {
                Sum::Int(t) => Sum::Int(t.checked_add(part).ok_or(Error::SumOverflow)?),
                _ => Sum::Int(part),
            }
        }
        DataType::Float32 | DataType::Float64 => {
            let part: f64 = match c.data_type() {
                DataType::Float32 => float_sum(c.as_primitive::<Float32Type>()),
                _ => float_sum(c.as_primitive::<Float64Type>()),
            };
            match acc {
                Sum::Float(t) => Sum::Float(t + part),
                _ => Sum::Float(part),
            }
        }
        DataType::Decimal128(_, scale) => {
            let part: i128 = exact_sum(c.as_primitive::<Decimal128Type>())?;
            match acc {
                Sum::Decimal(t, _) => {
                    Sum::Decimal(t.checked_add(part).ok_or(Error::SumOverflow)?, *scale)
                }
                _ => Sum::Decimal(part, *scale),
            }
        }
        other => {
            return Err(Error::CannotSum {
                data_type: other.clone(),
            });
        }
    })
}

/// The sum of the non-NULL values of an integer or decimal column; an error when it
/// leaves the range of an `i128` (only a decimal(38, s) column can get there).
fn exact_sum<T>(a: &PrimitiveArray<T>) -> Result<i128>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i128>,
{
    let sum = if a.null_count() == 0 {
        a.values()
            .iter()
            .try_fold(0i128, |t, v| t.checked_add((*v).into()))
    } else {
        a.iter()
            .flatten()
            .try_fold(0i128, |t, v| t.checked_add(v.into()))
    };
    sum.ok_or(Error::SumOverflow)
}

/// The sum of the non-NULL values of a float column, in f64.
fn float_sum<T>(a: &PrimitiveArray<T>) -> f64
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    if a.null_count() == 0 {
        a.values().iter().map(|v| (*v).into()).sum()
    } else {
        a.iter().flatten().map(Into::into).sum()
    }
}

/// Two running sums of the same column as one.
fn combine(a: Sum, b: Sum) -> Result<Sum> {
    Ok(match (a, b) {
        (Sum::Empty, x) | (x, Sum::Empty) => x,
        (Sum::Int(x), Sum::Int(y)) => Sum::Int(x.checked_add(y).ok_or(Error::SumOverflow)?),
        (Sum::Float(x), Sum::Float(y)) => Sum::Float(x + y),
        (Sum::Decimal(x, s), Sum::Decimal(y, t)) if s == t => {
            Sum::Decimal(x.checked_add(y).ok_or(Error::SumOverflow)?, s)
        }
        (a, b) => {
            return Err(Error::Column {
                path: "*".to_string(),
                reason: format!("sums of different types: {a:?} and {b:?}"),
            });
        }
    })
}

fn sum_text(s: Sum) -> String {
    match s {
        Sum::Empty => canonical::NULL_TEXT.to_string(),
        Sum::Int(t) => t.to_string(),
        Sum::Float(t) => float8_text(t),
        Sum::Decimal(t, scale) => decimal_text(t, scale),
    }
}

/// The smaller (or larger) of `best` and the extreme non-NULL value of `c`, as a
/// one-row array.
fn extreme(best: Option<&ArrayRef>, c: &ArrayRef, largest: bool) -> Result<Option<ArrayRef>> {
    let idx = sort_to_indices(
        c,
        Some(SortOptions {
            descending: largest,
            nulls_first: false,
        }),
        Some(1),
    )?;
    let Some(i) = idx.iter().flatten().next().map(|i| i as usize) else {
        return Ok(best.cloned());
    };
    if c.is_null(i) {
        return Ok(best.cloned());
    }
    let better = match best {
        None => true,
        Some(b) => {
            let cmp =
                arrow::array::make_comparator(c.as_ref(), b.as_ref(), SortOptions::default())?;
            let o = cmp(i, 0);
            if largest { o.is_gt() } else { o.is_lt() }
        }
    };
    Ok(if better {
        Some(c.slice(i, 1))
    } else {
        best.cloned()
    })
}

/// The checks that sum a float column (`float`, `double`): the only ones whose values
/// may differ in the last bits between stores.
pub fn float_sums(meta: &TopicMetadata, fields: &[arrow::datatypes::Field]) -> HashSet<String> {
    meta.effective_checks()
        .into_iter()
        .filter(|c| match c {
            Check::Sum(f) => fields.iter().any(|x| {
                x.name() == f && matches!(x.data_type(), DataType::Float32 | DataType::Float64)
            }),
            _ => false,
        })
        .map(|c| c.to_string())
        .collect()
}

/// Whether two stores' values of a check agree: equal texts, or for a float sum
/// (`float_sum`, from [`float_sums`]) equal within a relative 1e-9, since the order of
/// addition changes the last bits. Decimal sums are exact and get no tolerance: a
/// `decimal(18,2)` sum near 1e11 that differs by 0.01 is a mismatch.
pub fn agree(a: &str, b: &str, float_sum: bool) -> bool {
    if a == b {
        return true;
    }
    if float_sum && let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    #[test]
    fn a_decimal_sum_beyond_i128_is_an_error_not_a_wrong_number() {
        use arrow::array::Decimal128Array;
        let mut meta = TopicMetadata::new("t", vec!["id".into()]);
        meta.checks = vec!["sum(amount)".parse().unwrap()];
        let big = 10i128.pow(37);
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(arrow::array::StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![big, big])
                        .with_precision_and_scale(38, 0)
                        .unwrap(),
                ) as ArrayRef,
            ),
        ])
        .unwrap();
        // 1.6e38 fits in an i128 (up to about 1.7e38); 1.8e38 does not.
        let mut acc = Accumulator::new(&meta);
        for _ in 0..8 {
            acc.add(&batch).unwrap();
        }
        let err = acc.add(&batch).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn only_float_sums_get_a_tolerance() {
        // decimal(18,2) sums near 1e11: a cent apart is a mismatch.
        assert!(!agree("123456789012.34", "123456789012.35", false));
        assert!(agree("123456789012.34", "123456789012.34", false));
        // Float sums: the last bits may differ, more may not.
        assert!(agree("123456789012.34", "123456789012.3401", true));
        assert!(!agree("123456789012.34", "123456790012.34", true));
        assert!(!agree("7", "8", true));

        let mut meta = TopicMetadata::new("t", vec!["id".into()]);
        meta.checks = ["sum(price)", "sum(ratio)", "sum(weight)", "sum(n)"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let fields = [
            Field::new("price", DataType::Decimal128(18, 2), true),
            Field::new("ratio", DataType::Float64, true),
            Field::new("weight", DataType::Float32, true),
            Field::new("n", DataType::Int64, true),
        ];
        let floats = float_sums(&meta, &fields);
        assert_eq!(
            floats,
            HashSet::from(["sum(ratio)".to_string(), "sum(weight)".to_string()])
        );
    }
}
