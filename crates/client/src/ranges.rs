//! The range of timestamps and dates every onepipe store can hold, defined once.
//!
//! Years 0001 through 9999 in UTC: timestamps `0001-01-01T00:00:00Z` ..=
//! `9999-12-31T23:59:59.999999Z` (in each logical type's unit), dates `0001-01-01` ..=
//! `9999-12-31` (days since 1970-01-01 `-719162` ..= `2932896`). PostgreSQL's timestamp
//! is the narrowest store (4713 BC to 294276 AD); this range fits inside it and also
//! inside Spark/Delta, DuckDB, Arrow, SQLite text and 4-digit ISO 8601. Times of day
//! (`time-millis`, `time-micros`) must be within one day, as their JSON form already is.
//!
//! Values are refused where data enters ([`crate::json::from_json`], the
//! [`crate::Serializer`], so http-producer answers 422), and records already in Kafka with
//! such values are set aside by copydog. The verifier deliberately does not use this
//! module: a check must not share the code it checks.
//!
//! ```
//! use onepipe_client::ranges::{self, Unit};
//!
//! assert!(ranges::timestamp_in_range(253_402_300_799_999, Unit::Millis));
//! assert!(!ranges::timestamp_in_range(253_402_300_800_000, Unit::Millis));
//! assert!(ranges::date_in_range(-719_162) && !ranges::date_in_range(2_932_897));
//! ```

use apache_avro::types::Value;

use crate::json::{FieldError, format_date, format_timestamp, key_segment};

/// The range as people read it, for messages.
pub const RANGE_TEXT: &str = "0001-01-01..9999-12-31";

/// 0001-01-01 in days since 1970-01-01.
pub const MIN_DATE_DAYS: i32 = -719_162;
/// 9999-12-31 in days since 1970-01-01.
pub const MAX_DATE_DAYS: i32 = 2_932_896;

/// 0001-01-01T00:00:00Z in seconds since the epoch.
const MIN_SECONDS: i64 = MIN_DATE_DAYS as i64 * 86_400;
/// 9999-12-31T23:59:59Z in seconds since the epoch.
const MAX_SECONDS: i64 = (MAX_DATE_DAYS as i64 + 1) * 86_400 - 1;

/// The unit of a timestamp logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Micros,
    Nanos,
}

impl Unit {
    /// Units per second.
    pub const fn per_second(self) -> i64 {
        match self {
            Unit::Millis => 1_000,
            Unit::Micros => 1_000_000,
            Unit::Nanos => 1_000_000_000,
        }
    }

    /// Fraction digits of the unit.
    pub const fn digits(self) -> u32 {
        match self {
            Unit::Millis => 3,
            Unit::Micros => 6,
            Unit::Nanos => 9,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "millis",
            Unit::Micros => "micros",
            Unit::Nanos => "nanos",
        }
    }
}

/// The first and last timestamp in the range, in `unit` since the epoch. Every 64-bit
/// nanosecond count (years 1677 to 2262) is inside it.
pub const fn timestamp_bounds(unit: Unit) -> (i64, i64) {
    let per = unit.per_second() as i128;
    let min = MIN_SECONDS as i128 * per;
    let max = (MAX_SECONDS as i128 + 1) * per - 1;
    let min = if min < i64::MIN as i128 {
        i64::MIN
    } else {
        min as i64
    };
    let max = if max > i64::MAX as i128 {
        i64::MAX
    } else {
        max as i64
    };
    (min, max)
}

/// Whether a timestamp (UTC or local) in `unit` since the epoch is in the range.
pub const fn timestamp_in_range(value: i64, unit: Unit) -> bool {
    let (min, max) = timestamp_bounds(unit);
    min <= value && value <= max
}

/// Whether a date in days since 1970-01-01 is in the range.
pub const fn date_in_range(days: i64) -> bool {
    MIN_DATE_DAYS as i64 <= days && days <= MAX_DATE_DAYS as i64
}

/// Why a timestamp is outside the range, naming its value both ways.
pub fn timestamp_message(value: i64, unit: Unit, local: bool) -> String {
    let kind = if local {
        "local-timestamp"
    } else {
        "timestamp"
    };
    format!(
        "{kind}-{} {value} is {}, outside {RANGE_TEXT} (the range every store holds)",
        unit.name(),
        format_timestamp(value, unit.digits(), !local)
    )
}

/// Why a date is outside the range, naming its value both ways.
pub fn date_message(days: i64) -> String {
    format!(
        "date {days} is {}, outside {RANGE_TEXT} (the range every store holds)",
        format_date(days)
    )
}

fn time_message(value: i64, unit: Unit) -> String {
    format!(
        "time-{} {value} is not a time of day (0 to one day less one unit)",
        unit.name()
    )
}

/// One step from a value to a part of it.
enum Step<'v> {
    Field(&'v str),
    Item(usize),
    Key(&'v str),
}

/// Every timestamp, date and time of day inside `value` that is outside the range, with
/// its JSON path (`$.items[2].at`), as [`crate::json::from_json`] would report it. For
/// values that did not come through `from_json`: Avro values built in code, and records
/// decoded from Kafka.
pub fn out_of_range(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut path = Vec::new();
    walk(value, &mut path, &mut errors);
    errors
}

fn walk<'v>(value: &'v Value, path: &mut Vec<Step<'v>>, errors: &mut Vec<FieldError>) {
    let problem = match value {
        Value::Record(fields) => {
            for (name, v) in fields {
                path.push(Step::Field(name));
                walk(v, path, errors);
                path.pop();
            }
            None
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Item(i));
                walk(v, path, errors);
                path.pop();
            }
            None
        }
        Value::Map(entries) => {
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                path.push(Step::Key(key));
                walk(&entries[key], path, errors);
                path.pop();
            }
            None
        }
        Value::Union(_, inner) => {
            walk(inner, path, errors);
            None
        }
        Value::Date(d) => (!date_in_range(i64::from(*d))).then(|| date_message(i64::from(*d))),
        Value::TimestampMillis(t) => timestamp_problem(*t, Unit::Millis, false),
        Value::TimestampMicros(t) => timestamp_problem(*t, Unit::Micros, false),
        Value::TimestampNanos(t) => timestamp_problem(*t, Unit::Nanos, false),
        Value::LocalTimestampMillis(t) => timestamp_problem(*t, Unit::Millis, true),
        Value::LocalTimestampMicros(t) => timestamp_problem(*t, Unit::Micros, true),
        Value::LocalTimestampNanos(t) => timestamp_problem(*t, Unit::Nanos, true),
        Value::TimeMillis(t) => time_problem(i64::from(*t), Unit::Millis),
        Value::TimeMicros(t) => time_problem(*t, Unit::Micros),
        _ => None,
    };
    if let Some(message) = problem {
        errors.push(FieldError {
            path: render(path),
            message,
        });
    }
}

fn timestamp_problem(value: i64, unit: Unit, local: bool) -> Option<String> {
    (!timestamp_in_range(value, unit)).then(|| timestamp_message(value, unit, local))
}

fn time_problem(value: i64, unit: Unit) -> Option<String> {
    let day = 86_400 * unit.per_second();
    (!(0..day).contains(&value)).then(|| time_message(value, unit))
}

fn render(path: &[Step<'_>]) -> String {
    let mut out = String::from("$");
    for step in path {
        match step {
            Step::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            Step::Item(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Step::Key(key) => out.push_str(&key_segment(key)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn bounds_are_years_1_to_9999() {
        assert_eq!(
            timestamp_bounds(Unit::Millis),
            (-62_135_596_800_000, 253_402_300_799_999)
        );
        assert_eq!(
            timestamp_bounds(Unit::Micros),
            (-62_135_596_800_000_000, 253_402_300_799_999_999)
        );
        assert_eq!(timestamp_bounds(Unit::Nanos), (i64::MIN, i64::MAX));
        for unit in [Unit::Millis, Unit::Micros] {
            let (min, max) = timestamp_bounds(unit);
            let digits = unit.digits();
            assert!(format_timestamp(min, digits, true).starts_with("0001-01-01T00:00:00.000"));
            assert!(format_timestamp(max, digits, true).starts_with("9999-12-31T23:59:59.999"));
            assert!(format_timestamp(min - 1, digits, true).starts_with("0000-12-31T23:59:59"));
            assert!(format_timestamp(max + 1, digits, true).starts_with("10000-01-01T00:00:00"));
        }
        assert_eq!(format_date(i64::from(MIN_DATE_DAYS)), "0001-01-01");
        assert_eq!(format_date(i64::from(MAX_DATE_DAYS)), "9999-12-31");
    }

    #[test]
    fn timestamps_at_and_past_each_end() {
        for unit in [Unit::Millis, Unit::Micros] {
            let (min, max) = timestamp_bounds(unit);
            assert!(timestamp_in_range(min, unit), "{unit:?}");
            assert!(timestamp_in_range(max, unit), "{unit:?}");
            assert!(timestamp_in_range(0, unit), "{unit:?}");
            assert!(!timestamp_in_range(min - 1, unit), "{unit:?}");
            assert!(!timestamp_in_range(max + 1, unit), "{unit:?}");
            assert!(!timestamp_in_range(i64::MIN, unit), "{unit:?}");
            assert!(!timestamp_in_range(i64::MAX, unit), "{unit:?}");
        }
        assert!(timestamp_in_range(i64::MIN, Unit::Nanos));
        assert!(timestamp_in_range(i64::MAX, Unit::Nanos));
    }

    #[test]
    fn dates_at_and_past_each_end() {
        assert!(date_in_range(-719_162) && date_in_range(2_932_896) && date_in_range(0));
        assert!(!date_in_range(-719_163) && !date_in_range(2_932_897));
        assert!(!date_in_range(i64::from(i32::MIN)) && !date_in_range(i64::from(i32::MAX)));
    }

    #[test]
    fn messages_name_the_value_both_ways() {
        assert_eq!(
            timestamp_message(i64::MAX, Unit::Millis, false),
            "timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, outside \
             0001-01-01..9999-12-31 (the range every store holds)"
        );
        assert_eq!(
            timestamp_message(253_402_300_800_000_000, Unit::Micros, true),
            "local-timestamp-micros 253402300800000000 is 10000-01-01T00:00:00.000000, outside \
             0001-01-01..9999-12-31 (the range every store holds)"
        );
        assert_eq!(
            date_message(i64::from(i32::MIN)),
            "date -2147483648 is -5877641-06-23, outside 0001-01-01..9999-12-31 (the range \
             every store holds)"
        );
    }

    #[test]
    fn every_bad_value_is_found_with_its_path() {
        let (min, max) = timestamp_bounds(Unit::Millis);
        let value = Value::Record(vec![
            ("ok".into(), Value::TimestampMillis(max)),
            ("low".into(), Value::TimestampMillis(min - 1)),
            (
                "order".into(),
                Value::Record(vec![(
                    "created_at".into(),
                    Value::Union(1, Box::new(Value::TimestampMicros(i64::MAX))),
                )]),
            ),
            (
                "days".into(),
                Value::Array(vec![Value::Date(MAX_DATE_DAYS), Value::Date(i32::MAX)]),
            ),
            (
                "clock".into(),
                Value::Map(HashMap::from([
                    ("b c".to_string(), Value::LocalTimestampMillis(i64::MIN)),
                    ("a".to_string(), Value::LocalTimestampNanos(i64::MIN)),
                ])),
            ),
            ("t".into(), Value::TimeMicros(86_400_000_000)),
            ("n".into(), Value::Long(i64::MAX)),
        ]);
        let paths: Vec<String> = out_of_range(&value).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "$.low",
                "$.order.created_at",
                "$.days[1]",
                "$.clock[\"b c\"]",
                "$.t"
            ]
        );
        assert!(out_of_range(&Value::TimestampMillis(0)).is_empty());
        assert_eq!(out_of_range(&Value::Date(MIN_DATE_DAYS - 1))[0].path, "$");
    }
}
