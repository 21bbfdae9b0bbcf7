//! The canonical text of values and rows, and the row checksum built on it — defined once
//! here for Arrow and once as SQL for PostgreSQL (see `sql.rs`), tested to agree.
//!
//! - A value's text: NULL is `\N`; booleans `true`/`false`; integers in decimal; floats as
//!   PostgreSQL prints them (shortest round-trip digits, exponent form below 1e-4 and from
//!   1e15, `NaN`, `Infinity`); strings as they are; bytes as `\x` and lowercase hex;
//!   dates `YYYY-MM-DD`; timestamps as integer microseconds since the epoch; decimals with
//!   exactly their scale's fraction digits. A date or timestamp that does not fit those
//!   forms (past what 32-bit days or 64-bit microseconds hold) is `out of range: ...`,
//!   which no warehouse gives: a mismatch, never an overflow.
//! - A row's text: the texts of its scalar top-level columns in schema order, joined by the
//!   unit separator U+001F. Nested columns (records, arrays, maps) are not part of it yet.
//! - A row's hash: the first 8 bytes of the MD5 of its text, as a big-endian signed
//!   64-bit integer. `row_checksum` is the wrapping sum of the hashes: order-independent.
//! - A key's text and hash: the same over the unique-key columns; the drill-down splits
//!   keys into ranges by the top bits of the key hash.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use md5::{Digest, Md5};

/// The text NULL stands as.
pub const NULL_TEXT: &str = "\\N";
/// Between the values of a row.
pub const SEPARATOR: char = '\u{1f}';
/// Starts the text of a date or timestamp too far from 1970 to count in days or
/// microseconds: no warehouse gives such a text, so the row shows up as a mismatch.
pub const OUT_OF_RANGE: &str = "out of range:";

/// Whether a column takes part in row texts.
pub fn is_scalar(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Boolean
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::Binary
            | DataType::Date32
            | DataType::Timestamp(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Null
    )
}

/// The canonical text of row `i` of a scalar column.
pub fn value_text(column: &ArrayRef, i: usize) -> String {
    let mut s = String::new();
    push_value_text(&mut s, column, i);
    s
}

/// Appends the canonical text of row `i` of a scalar column to `out` (no allocation for
/// the common types, for checksums over many rows).
pub fn push_value_text(out: &mut String, column: &ArrayRef, i: usize) {
    use std::fmt::Write as _;
    if column.is_null(i) {
        out.push_str(NULL_TEXT);
        return;
    }
    // Writing to a String cannot fail.
    let _ = match column.data_type() {
        DataType::Boolean => write!(out, "{}", column.as_boolean().value(i)),
        DataType::Int32 => write!(out, "{}", column.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => write!(out, "{}", column.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => {
            out.push_str(&float4_text(column.as_primitive::<Float32Type>().value(i)));
            Ok(())
        }
        DataType::Float64 => {
            out.push_str(&float8_text(column.as_primitive::<Float64Type>().value(i)));
            Ok(())
        }
        DataType::Utf8 => {
            out.push_str(column.as_string::<i32>().value(i));
            Ok(())
        }
        DataType::Binary => {
            out.push_str("\\x");
            for b in column.as_binary::<i32>().value(i) {
                let _ = write!(out, "{b:02x}");
            }
            Ok(())
        }
        DataType::Date32 => {
            let days = column.as_primitive::<Date32Type>().value(i);
            match days
                .checked_add(719_163)
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
            {
                Some(d) => write!(out, "{}", d.format("%Y-%m-%d")),
                None => write!(out, "{OUT_OF_RANGE} date {days} days since 1970-01-01"),
            }
        }
        DataType::Timestamp(unit, _) => {
            let (value, per_micro, unit) = match unit {
                TimeUnit::Second => (
                    column
                        .as_primitive::<arrow::datatypes::TimestampSecondType>()
                        .value(i),
                    1_000_000,
                    "s",
                ),
                TimeUnit::Millisecond => (
                    column.as_primitive::<TimestampMillisecondType>().value(i),
                    1000,
                    "ms",
                ),
                TimeUnit::Microsecond => (
                    column.as_primitive::<TimestampMicrosecondType>().value(i),
                    1,
                    "us",
                ),
                TimeUnit::Nanosecond => (
                    pg_micros(column.as_primitive::<TimestampNanosecondType>().value(i)),
                    1,
                    "us",
                ),
            };
            match value.checked_mul(per_micro) {
                Some(micros) => write!(out, "{micros}"),
                None => write!(
                    out,
                    "{OUT_OF_RANGE} timestamp {value} {unit} since the epoch"
                ),
            }
        }
        DataType::Decimal128(_, scale) => {
            out.push_str(&decimal_text(
                column.as_primitive::<Decimal128Type>().value(i),
                *scale,
            ));
            Ok(())
        }
        _ => {
            out.push_str(NULL_TEXT);
            Ok(())
        }
    };
}

pub use onepipe_archive::columns::decimal_text;

/// A double as PostgreSQL 12+ prints float8 (extra_float_digits = 1, the default).
pub fn float8_text(v: f64) -> String {
    pg_float(v, format!("{v:e}"), 15)
}

/// Microseconds of a nanosecond timestamp as PostgreSQL stores it from the loader's text
/// (nine fraction digits): PostgreSQL reads the fraction with `strtod` and keeps
/// `rint(fraction * 1e6)` microseconds (round to nearest, ties to even, on the double),
/// carrying into the next second. Flooring instead disagreed with every warehouse on
/// about half the rows.
pub fn pg_micros(nanos: i64) -> i64 {
    let secs = nanos.div_euclid(1_000_000_000);
    let fraction: f64 = format!("0.{:09}", nanos.rem_euclid(1_000_000_000))
        .parse()
        .unwrap_or(0.0);
    secs * 1_000_000 + (fraction * 1e6).round_ties_even() as i64
}

/// A float as PostgreSQL prints float4.
pub fn float4_text(v: f32) -> String {
    pg_float(f64::from(v), format!("{v:e}"), 6)
}

/// `sci` is Rust's shortest round-trip scientific form (`1.5e-7`); PostgreSQL writes the
/// same digits in fixed notation for exponents from -4 to `digits - 1` and otherwise as
/// `1.5e-07` (sign and at least two exponent digits).
fn pg_float(v: f64, sci: String, digits: i32) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let m = mantissa.trim_start_matches('-');
    let digits_only: String = m.chars().filter(|c| *c != '.').collect();
    let sign = if negative { "-" } else { "" };
    if exp < -4 || exp >= digits {
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    let n = digits_only.len() as i32;
    if exp >= 0 {
        let int_len = exp + 1;
        if n <= int_len {
            format!("{sign}{digits_only}{}", "0".repeat((int_len - n) as usize))
        } else {
            let (a, b) = digits_only.split_at(int_len as usize);
            format!("{sign}{a}.{b}")
        }
    } else {
        format!("{sign}0.{}{digits_only}", "0".repeat((-exp - 1) as usize))
    }
}

/// MD5's first 8 bytes as a big-endian signed integer.
pub fn hash64(text: &str) -> i64 {
    let digest = Md5::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The text of row `i` over `columns` (already restricted to the scalar ones).
pub fn row_text(columns: &[ArrayRef], i: usize) -> String {
    let mut s = String::new();
    push_row_text(&mut s, columns, i);
    s
}

/// Appends the text of row `i` over `columns` to `out`.
pub fn push_row_text(out: &mut String, columns: &[ArrayRef], i: usize) {
    for (k, c) in columns.iter().enumerate() {
        if k > 0 {
            out.push(SEPARATOR);
        }
        push_value_text(out, c, i);
    }
}

/// The hash of row `i`'s text, reusing `buf` for the text.
pub fn row_hash(buf: &mut String, columns: &[ArrayRef], i: usize) -> i64 {
    buf.clear();
    push_row_text(buf, columns, i);
    hash64(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        for (v, want) in [
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1e21, "1e+21"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-0.0, "-0"),
        ] {
            assert_eq!(float8_text(v), want, "{v}");
        }
        assert_eq!(float4_text(0.1f32), "0.1");
        assert_eq!(float4_text(1e6f32), "1e+06");
    }

    #[test]
    fn extreme_dates_and_timestamps_never_overflow() {
        use arrow::array::{
            Date32Array, TimestampMicrosecondArray, TimestampMillisecondArray,
            TimestampNanosecondArray, TimestampSecondArray,
        };
        use std::sync::Arc;
        let text =
            |a: ArrayRef| -> Vec<String> { (0..a.len()).map(|i| value_text(&a, i)).collect() };
        // In range: the usual texts.
        assert_eq!(
            text(Arc::new(Date32Array::from(vec![-719_162, 0, 2_932_896]))),
            ["0001-01-01", "1970-01-01", "9999-12-31"]
        );
        assert_eq!(
            text(Arc::new(TimestampMillisecondArray::from(vec![
                -62_135_596_800_000,
                253_402_300_799_999
            ]))),
            ["-62135596800000000", "253402300799999000"]
        );
        // Values no warehouse can hold give a text no warehouse can give, so they show
        // up as a mismatch instead of a crash.
        assert_eq!(
            text(Arc::new(Date32Array::from(vec![i32::MAX, i32::MIN]))),
            [
                "out of range: date 2147483647 days since 1970-01-01",
                "out of range: date -2147483648 days since 1970-01-01"
            ]
        );
        assert_eq!(
            text(Arc::new(TimestampMillisecondArray::from(vec![
                i64::MAX,
                i64::MIN
            ]))),
            [
                "out of range: timestamp 9223372036854775807 ms since the epoch",
                "out of range: timestamp -9223372036854775808 ms since the epoch"
            ]
        );
        assert_eq!(
            text(Arc::new(TimestampSecondArray::from(vec![i64::MAX]))),
            ["out of range: timestamp 9223372036854775807 s since the epoch"]
        );
        assert_eq!(
            text(Arc::new(TimestampMicrosecondArray::from(vec![
                i64::MAX,
                i64::MIN
            ]))),
            ["9223372036854775807", "-9223372036854775808"]
        );
        assert_eq!(
            text(Arc::new(TimestampNanosecondArray::from(vec![
                i64::MAX,
                i64::MIN
            ]))),
            // Rounded to microseconds as PostgreSQL rounds the loader's text.
            ["9223372036854776", "-9223372036854776"]
        );
    }

    #[test]
    fn nanoseconds_round_to_microseconds_as_postgres_reads_them() {
        assert_eq!(pg_micros(1_499), 1);
        assert_eq!(pg_micros(1_501), 2);
        assert_eq!(pg_micros(-1), 0);
        assert_eq!(pg_micros(-501), -1);
        // Carried into the next second.
        assert_eq!(pg_micros(999_999_700), 1_000_000);
    }

    #[test]
    fn decimals_and_hashes() {
        assert_eq!(decimal_text(1250, 2), "12.50");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
        // md5("") = d41d8cd98f00b204…
        assert_eq!(
            hash64(""),
            i64::from_be_bytes([0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04])
        );
    }
}
