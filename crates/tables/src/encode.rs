//! Clean rows (Arrow batches) into what a SQL store takes: PostgreSQL `COPY` text format, or
//! typed cells for SQLite's `INSERT`.
//!
//! COPY text format: columns separated by tabs, rows by newlines, NULL as `\N`; in a
//! value a backslash, newline, carriage return and tab are written `\\`, `\n`, `\r`,
//! `\t`, and everything else (quotes, Unicode) goes as it is. bytea is hex (`\\x0aff`
//! once escaped). PostgreSQL text cannot hold a NUL character: such a value fails the
//! date with an error naming the column and row, never a silent change. So does a
//! timestamp or date outside years 0001 to 9999 (`onepipe_client::ranges`), which copydog
//! sets aside but older clean files may hold: no warehouse text or garbage for it.

use std::fmt::Write as _;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, Float32Array,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time32MillisecondType, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use base64::Engine as _;
use chrono::NaiveDate;

use crate::types::{Column, Kind, Shape, Unit};
use arrow::error::ArrowError;
use onepipe_client::ranges;

/// Why rows cannot be written to a SQL store as they are: each names the column, and the
/// row within the batch where there is one.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("the file has no column {column:?}")]
    MissingColumn { column: String },
    #[error("column {column:?} is {found} in the file, expected {expected}: {error}")]
    ColumnType {
        column: String,
        found: DataType,
        expected: DataType,
        error: ArrowError,
    },
    #[error(
        "row {row} column {column:?}: the text holds a NUL character, which PostgreSQL cannot \
         store"
    )]
    NulInText { row: usize, column: String },
    /// A timestamp or date no store can hold (`onepipe_client::ranges`).
    #[error("row {row} column {column:?}: {message}")]
    OutOfRange {
        row: usize,
        column: String,
        message: String,
    },
}

impl EncodeError {
    /// The row of the batch the error is about, when it is about one row.
    pub fn row(&self) -> Option<usize> {
        match self {
            EncodeError::NulInText { row, .. } | EncodeError::OutOfRange { row, .. } => Some(*row),
            _ => None,
        }
    }
}

type Error = EncodeError;
type Result<T, E = EncodeError> = std::result::Result<T, E>;

/// A value for SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One column of one batch, downcast once.
enum View {
    Null,
    Bool(BooleanArray),
    Int(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Str(StringArray),
    Bin(BinaryArray),
    Date(Int32Array),
    Time(Int64Array, Unit),
    Timestamp(Int64Array, Unit, bool),
    Decimal(Decimal128Array, i8),
    Json(ArrayRef, Shape),
}

/// What a value is once rendered for a text protocol.
enum Rendered {
    Null,
    /// Plain text that needs no escaping (numbers, dates, booleans).
    Plain,
    /// Text that may hold tabs, newlines, backslashes.
    Text,
    /// Raw bytes (bytea).
    Bytes,
    /// A timestamp or date no store can hold, and why (`onepipe_client::ranges`).
    OutOfRange(String),
}

fn unit_of(unit: Unit) -> TimeUnit {
    match unit {
        Unit::Millis => TimeUnit::Millisecond,
        Unit::Micros => TimeUnit::Microsecond,
        Unit::Nanos => TimeUnit::Nanosecond,
    }
}

fn view(column: &Column, array: &ArrayRef) -> Result<View> {
    let want = |dt: DataType| -> Result<ArrayRef> {
        if array.data_type() == &dt {
            Ok(array.clone())
        } else {
            cast(array, &dt).map_err(|error| Error::ColumnType {
                column: column.source.clone(),
                found: array.data_type().clone(),
                expected: dt,
                error,
            })
        }
    };
    if array.data_type() == &DataType::Null {
        return Ok(View::Null);
    }
    Ok(match &column.kind {
        Kind::Boolean => View::Bool(want(DataType::Boolean)?.as_boolean().clone()),
        Kind::Int | Kind::Long => {
            View::Int(want(DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
        Kind::Float => View::F32(
            want(DataType::Float32)?
                .as_primitive::<Float32Type>()
                .clone(),
        ),
        Kind::Double => View::F64(
            want(DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
        ),
        Kind::Text => View::Str(want(DataType::Utf8)?.as_string::<i32>().clone()),
        Kind::Bytes => View::Bin(want(DataType::Binary)?.as_binary::<i32>().clone()),
        Kind::Date => {
            let a = want(DataType::Date32)?;
            View::Date(
                reinterpret(&a, DataType::Int32)?
                    .as_primitive::<Int32Type>()
                    .clone(),
            )
        }
        Kind::Time(unit) => {
            let dt = match unit {
                Unit::Millis => DataType::Time32(TimeUnit::Millisecond),
                _ => DataType::Time64(TimeUnit::Microsecond),
            };
            let a = want(dt)?;
            let a = match unit {
                Unit::Millis => reinterpret(&a, DataType::Int32)?,
                _ => a,
            };
            View::Time(
                reinterpret(&a, DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
                *unit,
            )
        }
        Kind::Timestamp(unit, utc) => {
            let tz = utc.then(|| "UTC".into());
            let a = match array.data_type() {
                DataType::Timestamp(u, _) if *u == unit_of(*unit) => array.clone(),
                _ => want(DataType::Timestamp(unit_of(*unit), tz))?,
            };
            View::Timestamp(
                reinterpret(&a, DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
                *unit,
                *utc,
            )
        }
        Kind::Decimal(p, s) => View::Decimal(
            want(DataType::Decimal128(*p, *s))?
                .as_primitive::<Decimal128Type>()
                .clone(),
            *s,
        ),
        Kind::Json(shape) => View::Json(array.clone(), shape.clone()),
    })
}

/// The same values under another primitive type of the same width.
fn reinterpret(array: &ArrayRef, dt: DataType) -> Result<ArrayRef> {
    let data = array.to_data().into_builder().data_type(dt).build()?;
    Ok(arrow::array::make_array(data))
}

impl View {
    fn render(&self, row: usize, out: &mut String, bytes: &mut Vec<u8>) -> Rendered {
        let null = match self {
            View::Null => true,
            View::Json(a, _) => a.is_null(row),
            View::Bool(a) => a.is_null(row),
            View::Int(a) | View::Time(a, _) | View::Timestamp(a, _, _) => a.is_null(row),
            View::F32(a) => a.is_null(row),
            View::F64(a) => a.is_null(row),
            View::Str(a) => a.is_null(row),
            View::Bin(a) => a.is_null(row),
            View::Date(a) => a.is_null(row),
            View::Decimal(a, _) => a.is_null(row),
        };
        if null {
            return Rendered::Null;
        }
        match self {
            View::Null => Rendered::Null,
            View::Bool(a) => {
                out.push_str(if a.value(row) { "true" } else { "false" });
                Rendered::Plain
            }
            View::Int(a) => {
                let _ = write!(out, "{}", a.value(row));
                Rendered::Plain
            }
            View::F32(a) => float(f64::from(a.value(row)), &a.value(row).to_string(), out),
            View::F64(a) => float(a.value(row), &a.value(row).to_string(), out),
            View::Str(a) => {
                out.push_str(a.value(row));
                Rendered::Text
            }
            View::Bin(a) => {
                bytes.extend_from_slice(a.value(row));
                Rendered::Bytes
            }
            View::Date(a) => {
                let days = i64::from(a.value(row));
                if !ranges::date_in_range(days) {
                    return Rendered::OutOfRange(ranges::date_message(days));
                }
                write_date(a.value(row), out);
                Rendered::Plain
            }
            View::Time(a, unit) => {
                write_time(a.value(row), *unit, out);
                Rendered::Plain
            }
            View::Timestamp(a, unit, utc) => {
                let (value, range) = (a.value(row), range_unit(*unit));
                if !ranges::timestamp_in_range(value, range) {
                    return Rendered::OutOfRange(ranges::timestamp_message(value, range, !utc));
                }
                write_timestamp(value, *unit, *utc, out);
                Rendered::Plain
            }
            View::Decimal(a, scale) => {
                write_decimal(a.value(row), *scale, out);
                Rendered::Plain
            }
            View::Json(a, shape) => {
                if let Some(why) = nested_out_of_range(a.as_ref(), row) {
                    return Rendered::OutOfRange(why);
                }
                write_json(a.as_ref(), row, shape, out);
                Rendered::Text
            }
        }
    }
}

fn float(v: f64, display: &str, out: &mut String) -> Rendered {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("Infinity");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Infinity");
    } else {
        out.push_str(display);
    }
    Rendered::Plain
}

/// Turns the clean files' batches of one date into warehouse rows.
pub struct Encoder {
    columns: Vec<Column>,
    /// The `_date` written after the columns, or none (when it is one of them).
    date: Option<String>,
}

impl Encoder {
    /// `columns` are the table columns the schema gives (`_date` is added here).
    pub fn new(columns: Vec<Column>, date: NaiveDate) -> Self {
        Encoder {
            columns,
            date: Some(date.format("%Y-%m-%d").to_string()),
        }
    }

    /// An encoder of exactly `columns`, nothing added (rows of many dates, whose `_date`
    /// is a column of the batch).
    pub fn exactly(columns: Vec<Column>) -> Self {
        Encoder {
            columns,
            date: None,
        }
    }

    fn views(&self, batch: &RecordBatch) -> Result<Vec<View>> {
        let mut views = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let array = batch
                .column_by_name(&c.source)
                .ok_or_else(|| Error::MissingColumn {
                    column: c.source.clone(),
                })?;
            views.push(view(c, array)?);
        }
        Ok(views)
    }

    /// Appends the batch's rows in COPY text format; returns how many.
    pub fn copy_text(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<usize> {
        let views = self.views(batch)?;
        let mut text = String::new();
        let mut bytes = Vec::new();
        for row in 0..batch.num_rows() {
            for (view, column) in views.iter().zip(&self.columns) {
                text.clear();
                bytes.clear();
                match view.render(row, &mut text, &mut bytes) {
                    Rendered::Null => out.extend_from_slice(b"\\N"),
                    Rendered::Plain => out.extend_from_slice(text.as_bytes()),
                    Rendered::Text => {
                        if !escape_copy(text.as_bytes(), out) {
                            return Err(Error::NulInText {
                                row,
                                column: column.source.clone(),
                            });
                        }
                    }
                    Rendered::Bytes => bytea_hex(&bytes, out),
                    Rendered::OutOfRange(message) => {
                        return Err(Error::OutOfRange {
                            row,
                            column: column.source.clone(),
                            message,
                        });
                    }
                }
                out.push(b'\t');
            }
            match &self.date {
                Some(date) => out.extend_from_slice(date.as_bytes()),
                // No `_date` after the last column: its tab goes.
                None => {
                    out.pop();
                }
            }
            out.push(b'\n');
        }
        Ok(batch.num_rows())
    }

    /// The batch's rows as SQLite values, `_date` last.
    pub fn cells(&self, batch: &RecordBatch) -> Result<Vec<Vec<Cell>>> {
        let views = self.views(batch)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut text = String::new();
        let mut bytes = Vec::new();
        for row in 0..batch.num_rows() {
            let mut cells = Vec::with_capacity(views.len() + 1);
            for (view, column) in views.iter().zip(&self.columns) {
                let cell = match view {
                    View::Bool(a) if a.is_valid(row) => Cell::Int(i64::from(a.value(row))),
                    View::Int(a) if a.is_valid(row) => Cell::Int(a.value(row)),
                    View::F32(a) if a.is_valid(row) => real(f64::from(a.value(row))),
                    View::F64(a) if a.is_valid(row) => real(a.value(row)),
                    _ => {
                        text.clear();
                        bytes.clear();
                        match view.render(row, &mut text, &mut bytes) {
                            Rendered::Null => Cell::Null,
                            Rendered::Plain | Rendered::Text => Cell::Text(text.clone()),
                            Rendered::Bytes => Cell::Blob(bytes.clone()),
                            Rendered::OutOfRange(message) => {
                                return Err(Error::OutOfRange {
                                    row,
                                    column: column.source.clone(),
                                    message,
                                });
                            }
                        }
                    }
                };
                cells.push(cell);
            }
            if let Some(date) = &self.date {
                cells.push(Cell::Text(date.clone()));
            }
            rows.push(cells);
        }
        Ok(rows)
    }
}

/// SQLite stores NaN as NULL anyway; infinities are real values there.
fn real(v: f64) -> Cell {
    if v.is_nan() {
        Cell::Null
    } else {
        Cell::Real(v)
    }
}

/// Appends `text` escaped for COPY text format; `false` when it holds a NUL.
pub fn escape_copy(text: &[u8], out: &mut Vec<u8>) -> bool {
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0 => return false,
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
    true
}

/// bytea in hex form, backslash already escaped for COPY text format: `\\x0aff`.
pub fn bytea_hex(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\\\x");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn range_unit(unit: Unit) -> ranges::Unit {
    match unit {
        Unit::Millis => ranges::Unit::Millis,
        Unit::Micros => ranges::Unit::Micros,
        Unit::Nanos => ranges::Unit::Nanos,
    }
}

/// The first timestamp or date inside a nested value (record, list, map, union) that no
/// store can hold, and why.
fn nested_out_of_range(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(row));
            (!ranges::date_in_range(days)).then(|| ranges::date_message(days))
        }
        DataType::Timestamp(unit, tz) => {
            let (value, unit) = match unit {
                TimeUnit::Millisecond => (
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                    ranges::Unit::Millis,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    ranges::Unit::Micros,
                ),
                TimeUnit::Nanosecond => (
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    ranges::Unit::Nanos,
                ),
                // Not produced by copydog.
                TimeUnit::Second => return None,
            };
            (!ranges::timestamp_in_range(value, unit))
                .then(|| ranges::timestamp_message(value, unit, tz.is_none()))
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            (0..items.len()).find_map(|i| nested_out_of_range(items.as_ref(), i))
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let offsets = map.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            (start..end).find_map(|i| nested_out_of_range(map.values().as_ref(), i))
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .find_map(|c| nested_out_of_range(c.as_ref(), row)),
        _ => None,
    }
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn write_date(days: i32, out: &mut String) {
    match NaiveDate::from_num_days_from_ce_opt(days.saturating_add(UNIX_EPOCH_DAYS_FROM_CE)) {
        Some(d) => {
            let _ = write!(out, "{}", d.format("%Y-%m-%d"));
        }
        None => {
            let _ = write!(out, "out-of-range date {days}");
        }
    }
}

fn per_second(unit: Unit) -> (i64, usize) {
    match unit {
        Unit::Millis => (1_000, 3),
        Unit::Micros => (1_000_000, 6),
        Unit::Nanos => (1_000_000_000, 9),
    }
}

fn write_time(value: i64, unit: Unit, out: &mut String) {
    let (per, digits) = per_second(unit);
    let secs = value.div_euclid(per);
    let frac = value.rem_euclid(per);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:0digits$}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        frac
    );
}

/// RFC 3339 with as many fraction digits as the unit has, `Z` for UTC instants.
fn write_timestamp(value: i64, unit: Unit, utc: bool, out: &mut String) {
    let (per, _) = per_second(unit);
    let secs = value.div_euclid(per);
    let days = secs.div_euclid(86_400);
    let Ok(days) = i32::try_from(days) else {
        let _ = write!(out, "out-of-range timestamp {value}");
        return;
    };
    write_date(days, out);
    out.push('T');
    let in_day = secs.rem_euclid(86_400) * per + value.rem_euclid(per);
    write_time(in_day, unit, out);
    if utc {
        out.push('Z');
    }
}

fn write_decimal(value: i128, scale: i8, out: &mut String) {
    if scale <= 0 {
        let _ = write!(out, "{value}");
        for _ in 0..(-i32::from(scale)) {
            out.push('0');
        }
        return;
    }
    let scale = scale as usize;
    if value < 0 {
        out.push('-');
    }
    let digits = value.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    out.push_str(int);
    out.push('.');
    out.push_str(frac);
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
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

/// One value of `array` as JSON, the way the client's `to_json` writes it.
pub fn write_json(array: &dyn Array, row: usize, shape: &Shape, out: &mut String) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    macro_rules! num {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(row));
        }};
    }
    match array.data_type() {
        DataType::Null => out.push_str("null"),
        DataType::Boolean => out.push_str(if array.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => {
            let v = array.as_primitive::<Float32Type>().value(row);
            if v.is_finite() {
                let _ = write!(out, "{v}");
            } else {
                out.push_str("null");
            }
        }
        DataType::Float64 => {
            let v = array.as_primitive::<Float64Type>().value(row);
            if v.is_finite() {
                let _ = write!(out, "{v}");
            } else {
                out.push_str("null");
            }
        }
        DataType::Utf8 => json_string(array.as_string::<i32>().value(row), out),
        DataType::LargeUtf8 => json_string(array.as_string::<i64>().value(row), out),
        DataType::Binary => {
            let b = base64::engine::general_purpose::STANDARD
                .encode(array.as_binary::<i32>().value(row));
            json_string(&b, out);
        }
        DataType::Date32 => {
            out.push('"');
            write_date(array.as_primitive::<Date32Type>().value(row), out);
            out.push('"');
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            out.push('"');
            let v = array.as_primitive::<Time32MillisecondType>().value(row);
            write_time(i64::from(v), Unit::Millis, out);
            out.push('"');
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            out.push('"');
            let v = array.as_primitive::<Time64MicrosecondType>().value(row);
            write_time(v, Unit::Micros, out);
            out.push('"');
        }
        DataType::Timestamp(unit, tz) => {
            let (v, u) = match unit {
                TimeUnit::Millisecond => (
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                    Unit::Millis,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    Unit::Micros,
                ),
                _ => (
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    Unit::Nanos,
                ),
            };
            out.push('"');
            write_timestamp(v, u, tz.is_some(), out);
            out.push('"');
        }
        DataType::Decimal128(_, s) => {
            out.push('"');
            write_decimal(array.as_primitive::<Decimal128Type>().value(row), *s, out);
            out.push('"');
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            let item_shape = match shape {
                Shape::List(s) => s.as_ref(),
                _ => &Shape::Leaf,
            };
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                write_json(items.as_ref(), i, item_shape, out);
            }
            out.push(']');
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let offsets = map.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let keys = map.keys();
            let values = map.values();
            let value_shape = match shape {
                Shape::Map(s) => s.as_ref(),
                _ => &Shape::Leaf,
            };
            out.push('{');
            for i in start..end {
                if i > start {
                    out.push(',');
                }
                let key = match keys.data_type() {
                    DataType::Utf8 => keys.as_string::<i32>().value(i).to_string(),
                    _ => String::new(),
                };
                json_string(&key, out);
                out.push(':');
                write_json(values.as_ref(), i, value_shape, out);
            }
            out.push('}');
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            match shape {
                Shape::Union(branches) => {
                    // Exactly one branch is set: `{"branch": value}`.
                    for (k, field) in fields.iter().enumerate() {
                        let child = s.column(k);
                        if child.is_valid(row) {
                            out.push('{');
                            json_string(field.name(), out);
                            out.push(':');
                            write_json(
                                child.as_ref(),
                                row,
                                branches.get(k).unwrap_or(&Shape::Leaf),
                                out,
                            );
                            out.push('}');
                            return;
                        }
                    }
                    out.push_str("null");
                }
                _ => {
                    let shapes = match shape {
                        Shape::Record(f) => f.as_slice(),
                        _ => &[],
                    };
                    out.push('{');
                    for (k, field) in fields.iter().enumerate() {
                        if k > 0 {
                            out.push(',');
                        }
                        json_string(field.name(), out);
                        out.push(':');
                        write_json(
                            s.column(k).as_ref(),
                            row,
                            shapes.get(k).unwrap_or(&Shape::Leaf),
                            out,
                        );
                    }
                    out.push('}');
                }
            }
        }
        other => {
            // Not produced by copydog; kept visible rather than dropped.
            json_string(&format!("unsupported {other}"), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, ListArray, StructArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, Fields, Schema};

    fn copy(text: &str) -> String {
        let mut out = Vec::new();
        assert!(escape_copy(text.as_bytes(), &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn copy_escaping() {
        assert_eq!(copy("plain"), "plain");
        assert_eq!(copy("a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(copy("quotes \" and ' stay"), "quotes \" and ' stay");
        assert_eq!(copy("ünïcødé ✓ 😀"), "ünïcødé ✓ 😀");
        assert_eq!(copy("\\N"), "\\\\N", "a literal \\N is not NULL");
        assert!(!escape_copy(b"nul\0here", &mut Vec::new()));
        let mut out = Vec::new();
        bytea_hex(&[0, 0x0a, 0xff, b'\\'], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "\\\\x000aff5c");
    }

    #[test]
    fn scalars() {
        let mut s = String::new();
        write_decimal(1250, 2, &mut s);
        s.push(' ');
        write_decimal(-1, 2, &mut s);
        s.push(' ');
        write_decimal(-123, 0, &mut s);
        s.push(' ');
        write_decimal(5, -2, &mut s);
        assert_eq!(s, "12.50 -0.01 -123 500");
        let mut s = String::new();
        write_timestamp(1_795_478_400_123, Unit::Millis, true, &mut s);
        s.push(' ');
        write_timestamp(-1, Unit::Micros, false, &mut s);
        s.push(' ');
        write_time(3_723_004, Unit::Millis, &mut s);
        s.push(' ');
        write_date(0, &mut s);
        assert_eq!(
            s,
            "2026-11-24T00:00:00.123Z 1969-12-31T23:59:59.999999 01:02:03.004 1970-01-01"
        );
    }

    fn batch() -> (RecordBatch, Vec<Column>) {
        let item = Fields::from(vec![
            Field::new("sku", DataType::Utf8, false),
            Field::new("qty", DataType::Int32, false),
        ]);
        let items = StructArray::new(
            item.clone(),
            vec![
                Arc::new(StringArray::from(vec!["x\"y", "z"])) as ArrayRef,
                Arc::new(Int32Array::from(vec![2, 3])),
            ],
            None,
        );
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(item), false)),
            arrow::buffer::OffsetBuffer::new(vec![0, 2, 2].into()),
            Arc::new(items),
            Some(vec![true, false].into()),
        );
        let either_fields = Fields::from(vec![
            Field::new("int", DataType::Int32, true),
            Field::new("string", DataType::Utf8, true),
        ]);
        let either = StructArray::new(
            either_fields,
            vec![
                Arc::new(Int32Array::from(vec![None, Some(5)])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("s\n"), None])),
            ],
            None,
        );
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "s",
                Arc::new(StringArray::from(vec![Some("tab\there \\ \"q\" ✓"), None])),
            ),
            ("n", Arc::new(Int64Array::from(vec![Some(-7), None]))),
            ("d", Arc::new(Float64Array::from(vec![0.1, f64::NAN]))),
            ("ok", Arc::new(BooleanArray::from(vec![true, false]))),
            (
                "b",
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\xff"[..]),
                    Some(&b""[..]),
                ])),
            ),
            (
                "at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![1_795_478_400_000, 0])
                        .with_timezone("UTC"),
                ),
            ),
            ("day", Arc::new(Date32Array::from(vec![20_416, 0]))),
            (
                "total",
                Arc::new(
                    Decimal128Array::from(vec![Some(1250), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            ("items", Arc::new(list)),
            ("either", Arc::new(either)),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            columns.iter().map(|(_, a)| a.clone()).collect(),
        )
        .unwrap();
        let kinds = vec![
            Kind::Text,
            Kind::Long,
            Kind::Double,
            Kind::Boolean,
            Kind::Bytes,
            Kind::Timestamp(Unit::Millis, true),
            Kind::Date,
            Kind::Decimal(10, 2),
            Kind::Json(Shape::List(Box::new(Shape::Record(vec![
                Shape::Leaf,
                Shape::Leaf,
            ])))),
            Kind::Json(Shape::Union(vec![Shape::Leaf, Shape::Leaf])),
        ];
        let cols = columns
            .iter()
            .zip(kinds)
            .map(|((n, _), kind)| Column {
                name: n.to_string(),
                source: n.to_string(),
                kind,
            })
            .collect();
        (batch, cols)
    }

    #[test]
    fn rows_in_copy_text_format() {
        let (batch, cols) = batch();
        let enc = Encoder::new(cols, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        let mut out = Vec::new();
        assert_eq!(enc.copy_text(&batch, &mut out).unwrap(), 2);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(
            lines[0],
            "tab\\there \\\\ \"q\" ✓\t-7\t0.1\ttrue\t\\\\x00ff\t2026-11-24T00:00:00.000Z\t\
             2025-11-24\t12.50\t[{\"sku\":\"x\\\\\"y\",\"qty\":2},{\"sku\":\"z\",\"qty\":3}]\t\
             {\"string\":\"s\\\\n\"}\t2026-11-24"
        );
        assert_eq!(
            lines[1],
            "\\N\t\\N\tNaN\tfalse\t\\\\x\t1970-01-01T00:00:00.000Z\t1970-01-01\t\\N\t\\N\t\
             {\"int\":5}\t2026-11-24"
        );
        assert_eq!(lines[2], "");
    }

    #[test]
    fn rows_as_sqlite_cells() {
        let (batch, cols) = batch();
        let enc = Encoder::new(cols, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        let rows = enc.cells(&batch).unwrap();
        assert_eq!(rows[0][1], Cell::Int(-7));
        assert_eq!(rows[0][3], Cell::Int(1));
        assert_eq!(rows[0][4], Cell::Blob(vec![0, 0xff]));
        assert_eq!(rows[0][7], Cell::Text("12.50".into()));
        assert_eq!(rows[0][9], Cell::Text("{\"string\":\"s\\n\"}".into()));
        assert_eq!(rows[1][0], Cell::Null);
        assert_eq!(rows[1][2], Cell::Null, "NaN");
        assert_eq!(rows[1][10], Cell::Text("2026-11-24".into()));
    }

    /// A batch of one timestamp, one date and one list-of-timestamps column.
    fn dated(at: Vec<i64>, day: Vec<i32>, nested: Vec<i64>) -> (RecordBatch, Vec<Column>) {
        let rows = at.len() as i32;
        let item = Arc::new(Field::new(
            "item",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ));
        let per_row = nested.len() as i32 / rows;
        let list = ListArray::new(
            item,
            arrow::buffer::OffsetBuffer::new((0..=rows).map(|r| r * per_row).collect()),
            Arc::new(arrow::array::TimestampMicrosecondArray::from(nested)),
            None,
        );
        let columns: Vec<(&str, ArrayRef, Kind)> = vec![
            (
                "at",
                Arc::new(TimestampMillisecondArray::from(at).with_timezone("UTC")),
                Kind::Timestamp(Unit::Millis, true),
            ),
            ("day", Arc::new(Date32Array::from(day)), Kind::Date),
            (
                "seen",
                Arc::new(list),
                Kind::Json(Shape::List(Box::new(Shape::Leaf))),
            ),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a, _)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            columns.iter().map(|(_, a, _)| a.clone()).collect(),
        )
        .unwrap();
        let cols = columns
            .into_iter()
            .map(|(n, _, kind)| Column {
                name: n.to_string(),
                source: n.to_string(),
                kind,
            })
            .collect();
        (batch, cols)
    }

    #[test]
    fn values_outside_years_1_to_9999_fail_the_date_naming_column_and_row() {
        let enc = |cols| Encoder::new(cols, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        // The first and last values inside the range load.
        let (batch, cols) = dated(
            vec![-62_135_596_800_000, 253_402_300_799_999],
            vec![-719_162, 2_932_896],
            vec![-62_135_596_800_000_000, 253_402_300_799_999_999],
        );
        let mut out = Vec::new();
        enc(cols.clone()).copy_text(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0001-01-01T00:00:00.000Z\t0001-01-01\t[\"0001-01-01T00:00:00.000000\"]\t2026-11-24\n\
             9999-12-31T23:59:59.999Z\t9999-12-31\t[\"9999-12-31T23:59:59.999999\"]\t2026-11-24\n"
        );
        assert!(enc(cols).cells(&batch).is_ok());

        let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
        for (at, day, nested, want) in [
            (
                vec![0, i64::MAX],
                vec![0, 0],
                vec![0, 0],
                format!(
                    "row 1 column \"at\": timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}"
                ),
            ),
            (
                vec![i64::MIN, 0],
                vec![0, 0],
                vec![0, 0],
                format!(
                    "row 0 column \"at\": timestamp-millis -9223372036854775808 is -292275055-05-16T16:47:04.192Z, {range}"
                ),
            ),
            (
                vec![253_402_300_800_000, 0],
                vec![0, 0],
                vec![0, 0],
                format!(
                    "row 0 column \"at\": timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"
                ),
            ),
            (
                vec![0, 0],
                vec![0, i32::MAX],
                vec![0, 0],
                format!("row 1 column \"day\": date 2147483647 is 5881580-07-11, {range}"),
            ),
            (
                vec![0, 0],
                vec![i32::MIN, 0],
                vec![0, 0],
                format!("row 0 column \"day\": date -2147483648 is -5877641-06-23, {range}"),
            ),
            (
                vec![0, 0],
                vec![-719_163, 0],
                vec![0, 0],
                format!("row 0 column \"day\": date -719163 is 0000-12-31, {range}"),
            ),
            (
                vec![0, 0],
                vec![0, 0],
                vec![0, -62_135_596_800_000_001],
                format!(
                    "row 1 column \"seen\": local-timestamp-micros -62135596800000001 is 0000-12-31T23:59:59.999999, {range}"
                ),
            ),
        ] {
            let (batch, cols) = dated(at, day, nested);
            let e = enc(cols.clone())
                .copy_text(&batch, &mut Vec::new())
                .unwrap_err()
                .to_string();
            assert_eq!(e, want);
            let e = enc(cols).cells(&batch).unwrap_err().to_string();
            assert_eq!(e, want);
        }
    }

    #[test]
    fn nul_is_refused_with_the_column() {
        let cols = vec![Column {
            name: "s".into(),
            source: "s".into(),
            kind: Kind::Text,
        }];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["a\0b"]))],
        )
        .unwrap();
        let enc = Encoder::new(cols, NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        let e = enc
            .copy_text(&batch, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("column \"s\"") && e.contains("NUL"), "{e}");
    }
}
