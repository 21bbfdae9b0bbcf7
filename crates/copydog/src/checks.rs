//! Check values of a merged date partition, stored in the manifest for the verifier.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortOptions, sort_to_indices};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use onepipe_core::metadata::{Check, TopicMetadata};
use serde_json::{Value as Json, json};

use onepipe_archive::columns::decimal_text;
use onepipe_archive::merge::column_at;

use crate::error::{Error, Result};

/// Every check of the topic that copydog computes, by its name. `row_checksum` is left
/// to the verifier (issue 8), which defines its canonical row text.
pub fn compute(batch: &RecordBatch, meta: &TopicMetadata) -> Result<BTreeMap<String, Json>> {
    let mut acc = Accumulator::new(meta);
    acc.add(batch)?;
    acc.finish()
}

/// Check values over rows that arrive in several batches (a date merged in pieces).
pub struct Accumulator {
    states: Vec<(Check, State)>,
}

enum State {
    Count(u64),
    /// Integer and decimal sums are exact; the scale is known after the first batch.
    Sum {
        exact: i128,
        float: f64,
        kind: Option<DataType>,
    },
    /// The extreme so far as a one-value array (`None` before the first batch).
    Extreme {
        value: Option<ArrayRef>,
        largest: bool,
    },
}

impl Accumulator {
    pub fn new(meta: &TopicMetadata) -> Self {
        let states = meta
            .effective_checks()
            .into_iter()
            .filter_map(|check| {
                let state = match &check {
                    Check::CountDistinctUniqueKey => State::Count(0),
                    Check::Sum(_) => State::Sum {
                        exact: 0,
                        float: 0.0,
                        kind: None,
                    },
                    Check::Min(_) => State::Extreme {
                        value: None,
                        largest: false,
                    },
                    Check::Max(_) => State::Extreme {
                        value: None,
                        largest: true,
                    },
                    Check::RowChecksum => return None,
                };
                Some((check, state))
            })
            .collect();
        Accumulator { states }
    }

    /// Adds the rows of `batch` (rows of other batches must have other unique keys).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        for (check, state) in &mut self.states {
            let check: &Check = check;
            match (check, state) {
                (_, State::Count(n)) => *n += batch.num_rows() as u64,
                (Check::Sum(f), State::Sum { exact, float, kind }) => {
                    let column = column_at(batch, f)?;
                    add_sum(&column, exact, float).map_err(|e| Error::Check {
                        check: check.to_string(),
                        reason: Box::new(e),
                    })?;
                    kind.get_or_insert_with(|| column.data_type().clone());
                }
                (Check::Min(f) | Check::Max(f), State::Extreme { value, largest }) => {
                    let column = column_at(batch, f)?;
                    let candidates = match value.take() {
                        Some(v) => arrow::compute::concat(&[v.as_ref(), column.as_ref()])?,
                        None => column,
                    };
                    *value = Some(match extreme_index(&candidates, *largest)? {
                        Some(i) => candidates.slice(i, 1),
                        None => candidates.slice(0, 0),
                    });
                }
                _ => return Err(Error::WrongAccumulator(check.to_string())),
            }
        }
        Ok(())
    }

    /// The values by check name.
    pub fn finish(self) -> Result<BTreeMap<String, Json>> {
        let mut out = BTreeMap::new();
        for (check, state) in self.states {
            let value = match state {
                State::Count(n) => json!(n),
                State::Sum { exact, float, kind } => match kind {
                    Some(DataType::Float32 | DataType::Float64) => json!(float),
                    Some(DataType::Decimal128(_, scale)) => json!(decimal_text(exact, scale)),
                    _ => int_json(exact),
                },
                State::Extreme { value, .. } => match value {
                    Some(v) if !v.is_empty() => extreme_json(&v, 0)?,
                    _ => Json::Null,
                },
            };
            out.insert(check.to_string(), value);
        }
        Ok(out)
    }
}

fn add_sum(column: &ArrayRef, exact: &mut i128, float: &mut f64) -> Result<()> {
    match column.data_type() {
        DataType::Int32 => {
            *exact += column
                .as_primitive::<Int32Type>()
                .iter()
                .flatten()
                .map(i128::from)
                .sum::<i128>();
        }
        DataType::Int64 => {
            *exact += column
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .map(i128::from)
                .sum::<i128>();
        }
        DataType::Float32 => {
            *float += column
                .as_primitive::<Float32Type>()
                .iter()
                .flatten()
                .map(f64::from)
                .sum::<f64>();
        }
        DataType::Float64 => {
            *float += column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>();
        }
        DataType::Decimal128(_, _) => {
            *exact += column
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .iter()
                .flatten()
                .sum::<i128>();
        }
        other => return Err(Error::NotSummable(other.clone())),
    }
    Ok(())
}

fn int_json(v: i128) -> Json {
    match i64::try_from(v) {
        Ok(x) => json!(x),
        Err(_) => json!(v.to_string()),
    }
}

/// Where the smallest or largest non-null value is (`None` when all are null).
fn extreme_index(column: &ArrayRef, largest: bool) -> Result<Option<usize>> {
    let indices = sort_to_indices(
        column,
        Some(SortOptions {
            descending: largest,
            nulls_first: false,
        }),
        Some(1),
    )?;
    Ok(indices
        .iter()
        .flatten()
        .next()
        .map(|i| i as usize)
        .filter(|i| column.is_valid(*i)))
}

/// The value at `i`: a number for integer columns, Arrow's display text otherwise.
fn extreme_json(column: &ArrayRef, i: usize) -> Result<Json> {
    Ok(match column.data_type() {
        DataType::Int32 => json!(column.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(i)),
        _ => {
            let f = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
            json!(f.value(i).to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal_text(1250, 2), "12.50");
        assert_eq!(decimal_text(-1, 2), "-0.01");
        assert_eq!(decimal_text(5, 0), "5");
    }
}
