//! Check values of a merged date partition, stored in the manifest for the verifier.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortOptions, sort_to_indices};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use onepipe_core::metadata::{Check, TopicMetadata};
use serde_json::{Value as Json, json};

use crate::merge::column_at;

/// Every check of the topic that copydog computes, by its name. `row_checksum` is left
/// to the verifier (issue 8), which defines its canonical row text.
pub fn compute(
    batch: &RecordBatch,
    meta: &TopicMetadata,
) -> Result<BTreeMap<String, Json>, String> {
    let mut out = BTreeMap::new();
    for check in meta.effective_checks() {
        let value = match &check {
            Check::CountDistinctUniqueKey => json!(batch.num_rows()),
            Check::Sum(f) => sum(&column_at(batch, f)?).map_err(|e| format!("{check}: {e}"))?,
            Check::Min(f) => extreme(&column_at(batch, f)?, false)?,
            Check::Max(f) => extreme(&column_at(batch, f)?, true)?,
            Check::RowChecksum => continue,
        };
        out.insert(check.to_string(), value);
    }
    Ok(out)
}

fn sum(column: &ArrayRef) -> Result<Json, String> {
    Ok(match column.data_type() {
        DataType::Int32 => int_json(
            column
                .as_primitive::<Int32Type>()
                .iter()
                .flatten()
                .map(i128::from)
                .sum(),
        ),
        DataType::Int64 => int_json(
            column
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .map(i128::from)
                .sum(),
        ),
        DataType::Float32 => json!(
            column
                .as_primitive::<Float32Type>()
                .iter()
                .flatten()
                .map(f64::from)
                .sum::<f64>()
        ),
        DataType::Float64 => json!(
            column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>()
        ),
        DataType::Decimal128(_, scale) => {
            let total: i128 = column
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .iter()
                .flatten()
                .sum();
            json!(decimal_text(total, *scale))
        }
        other => return Err(format!("cannot sum a {other} column")),
    })
}

fn int_json(v: i128) -> Json {
    match i64::try_from(v) {
        Ok(x) => json!(x),
        Err(_) => json!(v.to_string()),
    }
}

/// A decimal with exactly `scale` fraction digits (as PostgreSQL prints numeric(p, s)).
pub fn decimal_text(v: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if v == 0 {
            "0".to_string()
        } else {
            format!("{v}{zeros}")
        };
    }
    let scale = scale as usize;
    let digits = v.unsigned_abs().to_string();
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

/// The smallest or largest non-null value (null when there is none), as a number for
/// integer columns and as Arrow's display text otherwise.
fn extreme(column: &ArrayRef, largest: bool) -> Result<Json, String> {
    let indices = sort_to_indices(
        column,
        Some(SortOptions {
            descending: largest,
            nulls_first: false,
        }),
        Some(1),
    )
    .map_err(|e| e.to_string())?;
    let Some(i) = indices.iter().flatten().next().map(|i| i as usize) else {
        return Ok(Json::Null);
    };
    if column.is_null(i) {
        return Ok(Json::Null);
    }
    Ok(match column.data_type() {
        DataType::Int32 => json!(column.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(i)),
        _ => {
            let f = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                .map_err(|e| e.to_string())?;
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
