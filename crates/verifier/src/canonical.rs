//! The canonical text of values and rows, and the row checksum built on it — defined once
//! here for Arrow and once as SQL for PostgreSQL (see `warehouse.rs`), tested to agree.
//!
//! - A value's text: NULL is `\N`; booleans `true`/`false`; integers in decimal; floats as
//!   PostgreSQL prints them (shortest round-trip digits, exponent form below 1e-4 and from
//!   1e15, `NaN`, `Infinity`); strings as they are; bytes as `\x` and lowercase hex;
//!   dates `YYYY-MM-DD`; timestamps as integer microseconds since the epoch; decimals with
//!   exactly their scale's fraction digits. A date or timestamp that does not fit those
//!   forms (past what 32-bit days or 64-bit microseconds hold) is `out of range: ...`,
//!   which no warehouse gives: a mismatch, never an overflow.
//! - A nested value's text (records, unions, arrays, maps) is compact JSON (no spaces),
//!   built the same way from the warehouse's `jsonb` (see [`push_json`]):
//!   - a record is an object of all its fields in schema order, `{"a":1,"b":null}`; a
//!     union (a record of its branches in Arrow) likewise lists every branch, the unset
//!     ones `null`, since the loader writes only the set branch and the SQL reads a
//!     missing key as `null`;
//!   - an array is `[…]` in its order; a map is an object with its keys sorted by their
//!     UTF-8 bytes, a repeated key keeping its last value (as `jsonb` keeps it);
//!   - inside: `null`; `true`/`false`; integers in decimal; floats as above but `null`
//!     for NaN and ±Infinity and `0` for -0 (JSON and `numeric` hold neither, so the
//!     loader writes `null` and `0`); strings, map keys and field names as JSON strings
//!     escaped as PostgreSQL escapes them (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//!     characters below U+0020 as `\u00xx`, everything else as it is); bytes as a string of
//!     lowercase hex (`"00ff"`); dates `"YYYY-MM-DD"`; decimals as a string with exactly
//!     their scale's fraction digits (`"12.50"`); timestamps as integer microseconds since
//!     the epoch and times of day as integer microseconds since midnight (numbers).
//!
//!   A nested column holding a type with no such form (none that copydog writes) is left
//!   out of the row text on both sides, see [`in_row_text`].
//! - A row's text: the texts of its top-level columns (see [`in_row_text`]) in schema
//!   order, joined by the unit separator U+001F.
//! - A row's hash: the first 8 bytes of the MD5 of its text, as a big-endian signed
//!   64-bit integer. `row_checksum` is the wrapping sum of the hashes: order-independent.
//! - A key's text and hash: the same over the unique-key columns; the drill-down splits
//!   keys into ranges by the top bits of the key hash.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time32MillisecondType, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
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

/// Whether a top-level column takes part in row texts: the scalar ones, and records,
/// arrays and maps whose values inside all have a JSON form (see [`push_json`]).
pub fn in_row_text(dt: &DataType) -> bool {
    is_scalar(dt) || (is_nested(dt) && has_json_form(dt))
}

/// Records (and unions), arrays and maps.
pub fn is_nested(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Struct(_) | DataType::List(_) | DataType::Map(_, _)
    )
}

/// Whether [`push_json`] has a canonical form for every value of this type.
fn has_json_form(dt: &DataType) -> bool {
    match dt {
        DataType::Null
        | DataType::Boolean
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32
        | DataType::Time32(TimeUnit::Millisecond)
        | DataType::Time64(TimeUnit::Microsecond)
        | DataType::Timestamp(_, _)
        | DataType::Decimal128(_, _) => true,
        DataType::Struct(fields) => fields.iter().all(|f| has_json_form(f.data_type())),
        DataType::List(item) => has_json_form(item.data_type()),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                kv[0].data_type() == &DataType::Utf8 && has_json_form(kv[1].data_type())
            }
            _ => false,
        },
        _ => false,
    }
}

/// The canonical text of row `i` of a column (scalar or nested).
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
            out.push_str(&date_text(column.as_primitive::<Date32Type>().value(i)));
            Ok(())
        }
        DataType::Timestamp(_, _) => match timestamp_micros(column.as_ref(), i) {
            Ok(micros) => write!(out, "{micros}"),
            Err(why) => write!(out, "{why}"),
        },
        DataType::Decimal128(_, scale) => {
            out.push_str(&decimal_text(
                column.as_primitive::<Decimal128Type>().value(i),
                *scale,
            ));
            Ok(())
        }
        dt if is_nested(dt) => {
            push_json(out, column.as_ref(), i);
            Ok(())
        }
        _ => {
            out.push_str(NULL_TEXT);
            Ok(())
        }
    };
}

/// `YYYY-MM-DD` of days since 1970-01-01, or the `out of range: …` text.
fn date_text(days: i32) -> String {
    match days
        .checked_add(719_163)
        .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
    {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => format!("{OUT_OF_RANGE} date {days} days since 1970-01-01"),
    }
}

/// Microseconds since the epoch of row `i` of a timestamp column (nanoseconds rounded
/// as PostgreSQL rounds them, [`pg_micros`]), or the `out of range: …` text.
fn timestamp_micros(column: &dyn Array, i: usize) -> Result<i64, String> {
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return Err(format!("{OUT_OF_RANGE} not a timestamp"));
    };
    let (value, per_micro, unit) = match unit {
        TimeUnit::Second => (
            column.as_primitive::<TimestampSecondType>().value(i),
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
    value
        .checked_mul(per_micro)
        .ok_or_else(|| format!("{OUT_OF_RANGE} timestamp {value} {unit} since the epoch"))
}

/// Appends the canonical JSON of row `i` of `column` (see the module docs): the text of a
/// nested value, and of every value inside one. `warehouse::json_sql` builds the same
/// text from the loader's `jsonb`.
pub fn push_json(out: &mut String, column: &dyn Array, i: usize) {
    use std::fmt::Write as _;
    if column.is_null(i) {
        out.push_str("null");
        return;
    }
    // Writing to a String cannot fail.
    let _ = match column.data_type() {
        DataType::Null => {
            out.push_str("null");
            Ok(())
        }
        DataType::Boolean => write!(out, "{}", column.as_boolean().value(i)),
        DataType::Int32 => write!(out, "{}", column.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => write!(out, "{}", column.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => {
            let v = column.as_primitive::<Float32Type>().value(i);
            out.push_str(&json_float(f64::from(v), || float4_text(v)));
            Ok(())
        }
        DataType::Float64 => {
            let v = column.as_primitive::<Float64Type>().value(i);
            out.push_str(&json_float(v, || float8_text(v)));
            Ok(())
        }
        DataType::Utf8 => {
            push_json_string(out, column.as_string::<i32>().value(i));
            Ok(())
        }
        DataType::Binary => {
            out.push('"');
            for b in column.as_binary::<i32>().value(i) {
                let _ = write!(out, "{b:02x}");
            }
            out.push('"');
            Ok(())
        }
        DataType::Date32 => {
            push_json_string(
                out,
                &date_text(column.as_primitive::<Date32Type>().value(i)),
            );
            Ok(())
        }
        DataType::Time32(TimeUnit::Millisecond) => write!(
            out,
            "{}",
            i64::from(column.as_primitive::<Time32MillisecondType>().value(i)) * 1000
        ),
        DataType::Time64(TimeUnit::Microsecond) => write!(
            out,
            "{}",
            column.as_primitive::<Time64MicrosecondType>().value(i)
        ),
        DataType::Timestamp(_, _) => match timestamp_micros(column, i) {
            Ok(micros) => write!(out, "{micros}"),
            Err(why) => {
                push_json_string(out, &why);
                Ok(())
            }
        },
        DataType::Decimal128(_, scale) => {
            out.push('"');
            out.push_str(&decimal_text(
                column.as_primitive::<Decimal128Type>().value(i),
                *scale,
            ));
            out.push('"');
            Ok(())
        }
        DataType::Struct(fields) => {
            let s = column.as_struct();
            out.push('{');
            for (k, f) in fields.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                push_json_string(out, f.name());
                out.push(':');
                push_json(out, s.column(k).as_ref(), i);
            }
            out.push('}');
            Ok(())
        }
        DataType::List(_) => {
            let items = column.as_list::<i32>().value(i);
            out.push('[');
            for k in 0..items.len() {
                if k > 0 {
                    out.push(',');
                }
                push_json(out, items.as_ref(), k);
            }
            out.push(']');
            Ok(())
        }
        DataType::Map(_, _) => {
            let map = column.as_map();
            let offsets = map.value_offsets();
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            let key = |k: usize| -> &str {
                let keys = map.keys();
                match keys.data_type() {
                    DataType::Utf8 if keys.is_valid(k) => keys.as_string::<i32>().value(k),
                    _ => "",
                }
            };
            // Sorted by key bytes; a stable sort keeps a repeated key's entries in order,
            // and only the last of them is written (jsonb keeps the last).
            let mut entries: Vec<usize> = (start..end).collect();
            entries.sort_by(|a, b| key(*a).cmp(key(*b)));
            out.push('{');
            let mut first = true;
            for (n, &k) in entries.iter().enumerate() {
                if entries.get(n + 1).is_some_and(|&next| key(next) == key(k)) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_string(out, key(k));
                out.push(':');
                push_json(out, map.values().as_ref(), k);
            }
            out.push('}');
            Ok(())
        }
        other => {
            // Kept out of row texts by `in_row_text`; visible rather than silent here.
            push_json_string(out, &format!("unsupported {other}"));
            Ok(())
        }
    };
}

/// A float inside a nested value: `null` where JSON has no number (NaN, ±Infinity, as the
/// loader writes them), `0` for -0 (`numeric` has no negative zero), else `text()`.
fn json_float(v: f64, text: impl FnOnce() -> String) -> String {
    if !v.is_finite() {
        "null".to_string()
    } else if v == 0.0 {
        "0".to_string()
    } else {
        text()
    }
}

/// Appends `s` as a JSON string escaped exactly as PostgreSQL's `escape_json` does.
pub fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

/// The text of row `i` over `columns` (already restricted to those [`in_row_text`]).
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

    /// The Arrow columns copydog writes for JSON records of an Avro schema.
    fn nested_batch(schema: &str, records: &[serde_json::Value]) -> Vec<ArrayRef> {
        let avro = apache_avro::Schema::parse_str(schema).unwrap();
        let values: Vec<apache_avro::types::Value> = records
            .iter()
            .map(|j| onepipe_client::json::from_json(j, &avro, &Default::default()).unwrap())
            .collect();
        let refs: Vec<&apache_avro::types::Value> = values.iter().collect();
        onepipe_archive::columns::Mapping::new(&avro)
            .unwrap()
            .columns(&refs)
            .unwrap()
    }

    #[test]
    fn nested_values_are_compact_json_with_exact_scalars() {
        let columns = nested_batch(
            r#"{"type":"record","name":"Order","namespace":"shop","fields":[
              {"name":"ship","type":["null",{"type":"record","name":"Ship","fields":[
                {"name":"to","type":"string"},
                {"name":"fee","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-nanos"}},
                {"name":"day","type":["null",{"type":"int","logicalType":"date"}]},
                {"name":"tag","type":"bytes"},
                {"name":"w","type":"double"},
                {"name":"either","type":["null","int","string"]}]}],"default":null},
              {"name":"items","type":{"type":"array","items":["null","long"]}},
              {"name":"attrs","type":{"type":"map","values":["null",
                {"type":"long","logicalType":"timestamp-millis"}]}}]}"#,
            &[
                serde_json::json!({
                    "ship": {"to": "Zoë \"Q\" \\ /\n\t\u{1}\u{7f}日本", "fee": "-0.05",
                             "at": 1_795_498_200_123_456_700i64, "day": "1969-12-31",
                             "tag": "AP8=", "w": 1e-7, "either": {"string": "x"}},
                    "items": [3, null, -9_223_372_036_854_775_808i64],
                    "attrs": {"b": 1, "a": null, "é": -1, "aa": 0}
                }),
                serde_json::json!({"ship": null, "items": [], "attrs": {}}),
                serde_json::json!({
                    "ship": {"to": "", "fee": "12.5", "at": 0, "day": null, "tag": "",
                             "w": -0.0, "either": {"int": 7}},
                    "items": [null], "attrs": {"k": 1_795_478_400_000i64}
                }),
            ],
        );
        let texts: Vec<Vec<String>> = columns
            .iter()
            .map(|c| (0..c.len()).map(|i| value_text(c, i)).collect())
            .collect();
        assert_eq!(
            texts[0],
            [
                // Fields in schema order; a union lists every branch.
                r#"{"to":"Zoë \"Q\" \\ /\n\t\u0001"#.to_string()
                    + "\u{7f}日本\",\"fee\":\"-0.05\",\"at\":1795498200123457,\
                       \"day\":\"1969-12-31\",\"tag\":\"00ff\",\"w\":1e-07,\
                       \"either\":{\"int\":null,\"string\":\"x\"}}",
                // A NULL top-level value is NULL, not JSON null.
                NULL_TEXT.to_string(),
                r#"{"to":"","fee":"12.50","at":0,"day":null,"tag":"","w":0,"either":{"int":7,"string":null}}"#
                    .to_string(),
            ]
        );
        assert_eq!(texts[1], ["[3,null,-9223372036854775808]", "[]", "[null]"]);
        // Keys by their UTF-8 bytes.
        assert_eq!(
            texts[2],
            [
                r#"{"a":null,"aa":0,"b":1000,"é":-1000}"#,
                "{}",
                r#"{"k":1795478400000000}"#
            ]
        );
    }

    #[test]
    fn nested_floats_are_what_json_holds() {
        use arrow::array::{Float32Array, Float64Array, ListArray};
        use arrow::buffer::OffsetBuffer;
        use arrow::datatypes::Field;
        use std::sync::Arc;
        let list = |values: ArrayRef| -> ArrayRef {
            let n = values.len() as i32;
            Arc::new(ListArray::new(
                Arc::new(Field::new("item", values.data_type().clone(), true)),
                OffsetBuffer::new(vec![0, n].into()),
                values,
                None,
            ))
        };
        let doubles = list(Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(-0.0),
            Some(0.1),
            Some(1e21),
            None,
        ])));
        assert_eq!(value_text(&doubles, 0), "[null,null,0,0.1,1e+21,null]");
        let floats = list(Arc::new(Float32Array::from(vec![
            0.1f32,
            1e6,
            f32::NEG_INFINITY,
        ])));
        assert_eq!(value_text(&floats, 0), "[0.1,1e+06,null]");
    }

    #[test]
    fn a_repeated_map_key_keeps_its_last_value() {
        use arrow::array::{Int64Builder, MapBuilder, StringBuilder};
        use std::sync::Arc;
        let mut b = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        for (k, v) in [("b", 1), ("a", 2), ("b", 3), ("a", 4), ("c", 5)] {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        b.append(true).unwrap();
        b.append(false).unwrap();
        let map: ArrayRef = Arc::new(b.finish());
        assert_eq!(value_text(&map, 0), r#"{"a":4,"b":3,"c":5}"#);
        assert_eq!(value_text(&map, 1), NULL_TEXT);
    }

    #[test]
    fn json_strings_escape_as_postgres_escapes_them() {
        let mut out = String::new();
        push_json_string(&mut out, "\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f} \u{7f}é😀");
        assert_eq!(out, "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f \u{7f}é😀\"");
    }

    #[test]
    fn nested_columns_take_part_only_with_a_json_form_for_everything_inside() {
        use arrow::datatypes::{Field, Fields};
        use std::sync::Arc;
        let list = |dt: DataType| DataType::List(Arc::new(Field::new("item", dt, true)));
        let record = |dt: DataType| DataType::Struct(Fields::from(vec![Field::new("a", dt, true)]));
        assert!(in_row_text(&DataType::Int64));
        assert!(in_row_text(&list(record(DataType::Decimal128(9, 2)))));
        assert!(in_row_text(&record(list(DataType::Time32(
            TimeUnit::Millisecond
        )))));
        // Not written by copydog: left out of the row text on both sides.
        assert!(!in_row_text(&list(DataType::LargeUtf8)));
        assert!(!in_row_text(&record(list(DataType::UInt64))));
    }
}
