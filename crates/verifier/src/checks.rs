//! Check values of one date in one store, computed from Arrow rows (raw and clean
//! archives). Values are canonical texts (see `canonical`), so every store's are
//! compared as strings. Only sums of float columns compare with a relative tolerance
//! (their rounding depends on the order of addition); integer and decimal sums are
//! exact on every side and must be equal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortOptions, sort_to_indices};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type};
use onepipe_archive::merge::column_at;
use onepipe_core::metadata::{Check, TopicMetadata};

use crate::canonical::{
    self, decimal_text, float8_text, in_row_text, row_hash, row_text, value_text,
};
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
        let keys: Vec<ArrayRef> = meta
            .unique_key
            .iter()
            .map(|p| column(b, p))
            .collect::<Result<_>>()?;
        let cols = row_columns(b);
        let mut buf = String::new();
        for i in 0..b.num_rows() {
            out.insert(row_text(&keys, i), row_hash(&mut buf, &cols, i));
        }
    }
    Ok(out)
}

/// Every check of the topic over the rows of one date.
pub fn compute(batches: &[RecordBatch], meta: &TopicMetadata) -> Result<CheckValues> {
    let mut out = CheckValues::new();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    out.insert("rows".to_string(), rows.to_string());
    for check in meta.effective_checks() {
        let name = check.to_string();
        let value = match &check {
            Check::CountDistinctUniqueKey => count_distinct_keys(batches, meta)?.to_string(),
            Check::Sum(f) => sum(&columns(batches, f)?)?,
            Check::Min(f) => extreme(&columns(batches, f)?, false)?,
            Check::Max(f) => extreme(&columns(batches, f)?, true)?,
            Check::RowChecksum => {
                let mut total = 0i64;
                let mut buf = String::new();
                for b in batches {
                    let cols = row_columns(b);
                    for i in 0..b.num_rows() {
                        total = total.wrapping_add(row_hash(&mut buf, &cols, i));
                    }
                }
                total.to_string()
            }
        };
        out.insert(name, value);
    }
    Ok(out)
}

/// How many distinct key texts the rows have. A single string key is counted without
/// building its text (it is the string itself, NULL as `\N`); other keys by their text.
fn count_distinct_keys(batches: &[RecordBatch], meta: &TopicMetadata) -> Result<usize> {
    let key_columns: Vec<Vec<ArrayRef>> = batches
        .iter()
        .map(|b| meta.unique_key.iter().map(|p| column(b, p)).collect())
        .collect::<Result<_>>()?;
    let single_string = key_columns
        .iter()
        .all(|cols| cols.len() == 1 && cols[0].data_type() == &DataType::Utf8);
    if single_string {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut keys: HashSet<&str, BuildHasherDefault<FxHasher>> =
            HashSet::with_capacity_and_hasher(rows, BuildHasherDefault::default());
        for cols in &key_columns {
            let c = cols[0].as_string::<i32>();
            keys.extend((0..c.len()).map(|i| {
                if c.is_null(i) {
                    canonical::NULL_TEXT
                } else {
                    c.value(i)
                }
            }));
        }
        return Ok(keys.len());
    }
    let mut keys: HashSet<String, BuildHasherDefault<FxHasher>> = HashSet::default();
    for cols in &key_columns {
        let rows = cols.first().map_or(0, |c| c.len());
        keys.extend((0..rows).map(|i| row_text(cols, i)));
    }
    Ok(keys.len())
}

/// The multiply-rotate hash of rustc (FxHash): much faster than SipHash for counting
/// many short keys; the keys are our own data, so hash flooding is not a concern.
#[derive(Default)]
struct FxHasher(u64);

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

fn columns(batches: &[RecordBatch], field: &str) -> Result<Vec<ArrayRef>> {
    batches.iter().map(|b| column(b, field)).collect()
}

fn sum(columns: &[ArrayRef]) -> Result<String> {
    let Some(first) = columns.first() else {
        return Ok(canonical::NULL_TEXT.to_string());
    };
    let all_null = columns.iter().all(|c| c.null_count() == c.len());
    if all_null {
        return Ok(canonical::NULL_TEXT.to_string());
    }
    Ok(match first.data_type() {
        DataType::Int32 | DataType::Int64 => {
            let mut total: i128 = 0;
            for c in columns {
                match c.data_type() {
                    DataType::Int32 => {
                        total += c
                            .as_primitive::<Int32Type>()
                            .iter()
                            .flatten()
                            .map(i128::from)
                            .sum::<i128>()
                    }
                    _ => {
                        total += c
                            .as_primitive::<Int64Type>()
                            .iter()
                            .flatten()
                            .map(i128::from)
                            .sum::<i128>()
                    }
                }
            }
            total.to_string()
        }
        DataType::Float32 | DataType::Float64 => {
            let mut total = 0f64;
            for c in columns {
                match c.data_type() {
                    DataType::Float32 => {
                        total += c
                            .as_primitive::<Float32Type>()
                            .iter()
                            .flatten()
                            .map(f64::from)
                            .sum::<f64>()
                    }
                    _ => {
                        total += c
                            .as_primitive::<Float64Type>()
                            .iter()
                            .flatten()
                            .sum::<f64>()
                    }
                }
            }
            float8_text(total)
        }
        DataType::Decimal128(_, scale) => {
            let mut total: i128 = 0;
            for c in columns {
                total += c
                    .as_primitive::<Decimal128Type>()
                    .iter()
                    .flatten()
                    .sum::<i128>();
            }
            decimal_text(total, *scale)
        }
        other => {
            return Err(Error::CannotSum {
                data_type: other.clone(),
            });
        }
    })
}

fn extreme(columns: &[ArrayRef], largest: bool) -> Result<String> {
    let mut best: Option<(ArrayRef, usize)> = None;
    for c in columns {
        let idx = sort_to_indices(
            c,
            Some(SortOptions {
                descending: largest,
                nulls_first: false,
            }),
            Some(1),
        )?;
        let Some(i) = idx.iter().flatten().next().map(|i| i as usize) else {
            continue;
        };
        if c.is_null(i) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, j)) => {
                let cmp =
                    arrow::array::make_comparator(c.as_ref(), b.as_ref(), SortOptions::default())?;
                let o = cmp(i, *j);
                if largest { o.is_gt() } else { o.is_lt() }
            }
        };
        if better {
            best = Some((c.clone(), i));
        }
    }
    Ok(best.map_or_else(
        || canonical::NULL_TEXT.to_string(),
        |(c, i)| value_text(&c, i),
    ))
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
