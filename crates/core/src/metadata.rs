//! Per-topic metadata: what a dataset means beyond its schema.
//!
//! The registry stores one [`TopicMetadata`] per topic; copydog, the warehouse loader
//! and the verifier read it to know how to deduplicate, order and check the data.
//! Merge strategies and checks have a text form (`max_by(version)`, `sum(amount)`)
//! used in JSON, on the command line and in manifests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// Checks that `name` is a legal Kafka topic name (1 to 249 of `[a-zA-Z0-9._-]`,
/// not `.` or `..`), which also makes it safe as an object-store path segment.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > MAX_TOPIC_LEN {
        format!(
            "is {} characters, at most {MAX_TOPIC_LEN} are allowed",
            name.len()
        )
    } else if name == "." || name == ".." {
        "must not be '.' or '..'".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        return Ok(());
    };
    Err(Error::invalid("topic name", name, reason))
}

/// Checks that `path` is a dot-separated path of Avro names (`customer.id`).
pub fn validate_field_path(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid("field path", path, "must not be empty"));
    }
    for part in path.split('.') {
        let mut chars = part.chars();
        let ok_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid(
                "field path",
                path,
                format!("segment {part:?} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
    }
    Ok(())
}

/// Schema compatibility levels, with Confluent Schema Registry's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compatibility {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let upper = s.trim().to_ascii_uppercase();
        Compatibility::ALL
            .into_iter()
            .find(|c| c.as_str() == upper)
            .ok_or_else(|| {
                Error::invalid(
                    "compatibility",
                    s,
                    "expected one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE",
                )
            })
    }
}

/// How to choose among versions of one unique key. Never "latest wall-clock wins".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum MergeStrategy {
    /// Keep the first version seen in Kafka order: for exact retries.
    #[default]
    FirstSeen,
    /// The highest value of a producer-assigned version field wins; ties go to the
    /// later Kafka position.
    MaxBy(String),
    /// A `map<long>` vector clock: the dominating clock wins; concurrent clocks are
    /// resolved deterministically and counted as conflicts.
    VectorClock(String),
}

impl MergeStrategy {
    /// The field the strategy reads, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            MergeStrategy::FirstSeen => None,
            MergeStrategy::MaxBy(f) | MergeStrategy::VectorClock(f) => Some(f),
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MergeStrategy::FirstSeen => f.write_str("first_seen"),
            MergeStrategy::MaxBy(field) => write!(f, "max_by({field})"),
            MergeStrategy::VectorClock(field) => write!(f, "vector_clock({field})"),
        }
    }
}

/// Splits `name(arg)` or `name:arg` into its parts.
fn split_call(s: &str) -> (&str, Option<&str>) {
    if let Some((name, rest)) = s.split_once('(')
        && let Some(arg) = rest.strip_suffix(')')
    {
        return (name.trim(), Some(arg.trim()));
    }
    match s.split_once(':') {
        Some((name, arg)) => (name.trim(), Some(arg.trim())),
        None => (s.trim(), None),
    }
}

impl FromStr for MergeStrategy {
    type Err = Error;

    /// Accepts `first_seen`, `max_by(f)`, `max_by:f`, `vector_clock(f)`, `vector_clock:f`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("merge strategy", s, reason);
        match split_call(s) {
            ("first_seen", None) => Ok(MergeStrategy::FirstSeen),
            ("max_by" | "vector_clock", None) => {
                Err(bad("needs a field: max_by(FIELD) or vector_clock(FIELD)"))
            }
            ("max_by", Some(f)) => {
                validate_field_path(f)?;
                Ok(MergeStrategy::MaxBy(f.to_string()))
            }
            ("vector_clock", Some(f)) => {
                validate_field_path(f)?;
                Ok(MergeStrategy::VectorClock(f.to_string()))
            }
            _ => Err(bad(
                "expected first_seen, max_by(FIELD) or vector_clock(FIELD)",
            )),
        }
    }
}

/// An aggregate the verifier compares across stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Check {
    /// Distinct unique keys; always computed, whether listed or not.
    CountDistinctUniqueKey,
    Sum(String),
    Min(String),
    Max(String),
    /// Order-independent checksum over every column of every row.
    RowChecksum,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::CountDistinctUniqueKey => f.write_str("count_distinct(unique_key)"),
            Check::Sum(field) => write!(f, "sum({field})"),
            Check::Min(field) => write!(f, "min({field})"),
            Check::Max(field) => write!(f, "max({field})"),
            Check::RowChecksum => f.write_str("row_checksum"),
        }
    }
}

impl FromStr for Check {
    type Err = Error;

    /// Accepts `count_distinct(unique_key)`, `sum(f)`/`sum:f`, `min(f)`, `max(f)`, `row_checksum`.
    fn from_str(s: &str) -> Result<Self> {
        let field = |f: &str| validate_field_path(f).map(|()| f.to_string());
        match split_call(s) {
            ("count_distinct", Some("unique_key")) => Ok(Check::CountDistinctUniqueKey),
            ("row_checksum", None) => Ok(Check::RowChecksum),
            ("sum", Some(f)) => Ok(Check::Sum(field(f)?)),
            ("min", Some(f)) => Ok(Check::Min(field(f)?)),
            ("max", Some(f)) => Ok(Check::Max(field(f)?)),
            _ => Err(Error::invalid(
                "check",
                s,
                "expected count_distinct(unique_key), sum(FIELD), min(FIELD), max(FIELD) or row_checksum",
            )),
        }
    }
}

macro_rules! serde_via_str {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via_str!(MergeStrategy, "a merge strategy");
serde_via_str!(Check, "a check");

/// Everything the registry holds about one topic besides its schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicMetadata {
    pub topic: String,
    /// Schema subject; [`TopicMetadata::default_subject`] when created from the CLI.
    pub subject: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub compatibility: Compatibility,
    /// Field paths whose values identify one entity.
    pub unique_key: Vec<String>,
    /// Field paths a date partition is ordered by.
    #[serde(default)]
    pub sort_key: Vec<String>,
    /// A timestamp field that decides the date partition; the Kafka timestamp when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_time: Option<String>,
    #[serde(default)]
    pub merge: MergeStrategy,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// A tombstone (a key with no value) deletes that key in stores of one row per key
    /// (online-sink); otherwise tombstones are rejected as bad records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletes: bool,
}

impl TopicMetadata {
    /// Metadata with the defaults: subject `<topic>-value`, BACKWARD, `first_seen`.
    pub fn new(topic: impl Into<String>, unique_key: Vec<String>) -> Self {
        let topic = topic.into();
        TopicMetadata {
            subject: Self::default_subject(&topic),
            topic,
            owner: String::new(),
            description: String::new(),
            compatibility: Compatibility::default(),
            unique_key,
            sort_key: Vec::new(),
            partition_time: None,
            merge: MergeStrategy::default(),
            checks: Vec::new(),
            deletes: false,
        }
    }

    pub fn default_subject(topic: &str) -> String {
        format!("{topic}-value")
    }

    /// Checks what can be checked without the schema: names, paths, no repeats.
    /// (That the fields exist with suitable types is the registry's check.)
    pub fn validate(&self) -> Result<()> {
        validate_topic_name(&self.topic)?;
        if self.subject.trim().is_empty() {
            return Err(Error::invalid(
                "subject",
                &self.subject,
                "must not be empty",
            ));
        }
        if self.unique_key.is_empty() {
            return Err(Error::invalid(
                "unique key",
                "",
                "needs at least one field path: every dataset is deduplicated by it",
            ));
        }
        for (what, paths) in [
            ("unique key", &self.unique_key),
            ("sort key", &self.sort_key),
        ] {
            for (i, p) in paths.iter().enumerate() {
                validate_field_path(p)?;
                if paths[..i].contains(p) {
                    return Err(Error::invalid(what, p, "field listed twice"));
                }
            }
        }
        if let Some(p) = &self.partition_time {
            validate_field_path(p)?;
        }
        for (i, c) in self.checks.iter().enumerate() {
            if self.checks[..i].contains(c) {
                return Err(Error::invalid("check", c.to_string(), "listed twice"));
            }
        }
        Ok(())
    }

    /// The checks the verifier runs: `count_distinct(unique_key)` first, then the listed ones.
    pub fn effective_checks(&self) -> Vec<Check> {
        let mut out = vec![Check::CountDistinctUniqueKey];
        out.extend(
            self.checks
                .iter()
                .filter(|c| **c != Check::CountDistinctUniqueKey)
                .cloned(),
        );
        out
    }

    /// Every field path the metadata refers to, with the role it plays.
    pub fn referenced_fields(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, &str)> = Vec::new();
        out.extend(self.unique_key.iter().map(|p| ("unique_key", p.as_str())));
        out.extend(self.sort_key.iter().map(|p| ("sort_key", p.as_str())));
        if let Some(p) = &self.partition_time {
            out.push(("partition_time", p));
        }
        if let Some(f) = self.merge.field() {
            out.push(("merge", f));
        }
        for c in &self.checks {
            if let Check::Sum(f) | Check::Min(f) | Check::Max(f) = c {
                out.push(("checks", f));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topic_names() {
        for ok in ["page_views", "a", "orders.v2-eu", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "naïve", "a b", &"x".repeat(250)] {
            let err = validate_topic_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid topic name"), "{err}");
        }
    }

    #[test]
    fn field_paths() {
        validate_field_path("customer.id").unwrap();
        validate_field_path("_x1").unwrap();
        for bad in ["", "a..b", "1a", "a.", "a-b"] {
            assert!(validate_field_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merge_strategy_text_forms() {
        assert_eq!(
            "first_seen".parse::<MergeStrategy>().unwrap(),
            MergeStrategy::FirstSeen
        );
        assert_eq!(
            "max_by:version".parse::<MergeStrategy>().unwrap(),
            MergeStrategy::MaxBy("version".into())
        );
        assert_eq!(
            "max_by(version)".parse::<MergeStrategy>().unwrap(),
            MergeStrategy::MaxBy("version".into())
        );
        assert_eq!(
            "vector_clock(clock)".parse::<MergeStrategy>().unwrap(),
            MergeStrategy::VectorClock("clock".into())
        );
        for bad in [
            "latest",
            "max_by",
            "max_by()",
            "max_by(a b)",
            "first_seen(x)",
        ] {
            assert!(bad.parse::<MergeStrategy>().is_err(), "{bad}");
        }
        let m = MergeStrategy::MaxBy("v".into());
        assert_eq!(m.to_string().parse::<MergeStrategy>().unwrap(), m);
    }

    #[test]
    fn check_text_forms() {
        assert_eq!(
            "sum:amount".parse::<Check>().unwrap(),
            Check::Sum("amount".into())
        );
        assert_eq!("row_checksum".parse::<Check>().unwrap(), Check::RowChecksum);
        assert_eq!(
            "count_distinct(unique_key)".parse::<Check>().unwrap(),
            Check::CountDistinctUniqueKey
        );
        for bad in ["avg(x)", "sum", "count_distinct(x)", "row_checksum(x)"] {
            assert!(bad.parse::<Check>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let v = json!({
            "topic": "page_views",
            "subject": "page_views-value",
            "unique_key": ["view_id"],
            "merge": "max_by(version)",
            "checks": ["sum(duration_ms)", "row_checksum"],
        });
        let m: TopicMetadata = serde_json::from_value(v).unwrap();
        m.validate().unwrap();
        assert_eq!(m.compatibility, Compatibility::Backward);
        assert_eq!(m.merge, MergeStrategy::MaxBy("version".into()));
        let back: TopicMetadata =
            serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            m.effective_checks(),
            vec![
                Check::CountDistinctUniqueKey,
                Check::Sum("duration_ms".into()),
                Check::RowChecksum
            ]
        );
        assert_eq!(
            m.referenced_fields(),
            vec![
                ("unique_key", "view_id"),
                ("merge", "version"),
                ("checks", "duration_ms")
            ]
        );
    }

    #[test]
    fn json_errors_name_the_problem() {
        let err = serde_json::from_value::<TopicMetadata>(json!({
            "topic": "t", "subject": "t-value", "unique_key": ["id"], "merge": "latest_wins"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("merge strategy"), "{err}");
        let err = serde_json::from_value::<TopicMetadata>(json!({
            "topic": "t", "subject": "t-value", "unique_key": ["id"], "colour": "red"
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn validation() {
        let mut m = TopicMetadata::new("orders", vec![]);
        assert!(m.validate().unwrap_err().to_string().contains("unique key"));
        m.unique_key = vec!["id".into(), "id".into()];
        assert!(m.validate().unwrap_err().to_string().contains("twice"));
        m.unique_key = vec!["id".into()];
        m.validate().unwrap();
        assert_eq!(m.subject, "orders-value");
        "BACKWARD_transitive".parse::<Compatibility>().unwrap();
        assert!("SIDEWAYS".parse::<Compatibility>().is_err());
    }
}
