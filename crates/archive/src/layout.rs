//! Object-store paths, exactly as DESIGN.md gives them.
//!
//! ```text
//! raw/{topic}/partition={p}/date={YYYY-MM-DD}/hour={HH}/{first:020}-{last:020}.parquet
//! clean/{topic}/date={YYYY-MM-DD}/v{NNNNNNNN}/part-{k:05}.parquet
//! clean/{topic}/_manifests/{NNNNNNNNNN}.json
//! ```
//!
//! Paths are relative to the object store's root (any `s3://bucket/prefix` prefix is
//! applied by `onepipe_core::store`). Every `parse` accepts exactly what `path` builds.

use chrono::NaiveDate;

use crate::{Error, Result};
use onepipe_core::metadata::validate_topic_name;

pub const RAW_ROOT: &str = "raw";
pub const CLEAN_ROOT: &str = "clean";
pub const MANIFESTS_DIR: &str = "_manifests";

const DATE_FMT: &str = "%Y-%m-%d";

/// A raw archive file: the records of one Kafka partition from `first_offset` to
/// `last_offset` (both inclusive) whose timestamps fall in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawFile {
    pub topic: String,
    pub partition: i32,
    pub date: NaiveDate,
    pub hour: u8,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A file of one version of a clean date partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CleanFile {
    pub topic: String,
    pub date: NaiveDate,
    pub version: u32,
    pub part: u32,
}

/// A numbered manifest of a clean dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManifestName {
    pub number: u64,
}

/// `raw/{topic}/`: where all raw files of a topic live.
pub fn raw_topic_prefix(topic: &str) -> String {
    format!("{RAW_ROOT}/{topic}/")
}

/// `raw/{topic}/partition={p}/`: the listing that restart recovery reads.
pub fn raw_partition_prefix(topic: &str, partition: i32) -> String {
    format!("{RAW_ROOT}/{topic}/partition={partition}/")
}

/// `clean/{topic}/date={date}/`.
pub fn clean_date_prefix(topic: &str, date: NaiveDate) -> String {
    format!("{CLEAN_ROOT}/{topic}/date={}/", date.format(DATE_FMT))
}

/// `clean/{topic}/_manifests/`.
pub fn manifests_prefix(topic: &str) -> String {
    format!("{CLEAN_ROOT}/{topic}/{MANIFESTS_DIR}/")
}

impl RawFile {
    pub fn path(&self) -> String {
        format!(
            "{}date={}/hour={:02}/{:020}-{:020}.parquet",
            raw_partition_prefix(&self.topic, self.partition),
            self.date.format(DATE_FMT),
            self.hour,
            self.first_offset,
            self.last_offset
        )
    }

    pub fn parse(path: &str) -> Result<Self> {
        let err = |reason: &str| Error::Layout {
            kind: "raw file",
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [root, topic, partition, date, hour, file] = parts[..] else {
            return Err(err(
                "expected raw/{topic}/partition={p}/date={date}/hour={HH}/{first}-{last}.parquet",
            ));
        };
        if root != RAW_ROOT {
            return Err(err("does not start with raw/"));
        }
        validate_topic_name(topic)?;
        let partition = key_value(partition, "partition")
            .and_then(parse_canonical_int::<i32>)
            .filter(|p| *p >= 0)
            .ok_or_else(|| err("bad partition=N segment"))?;
        let date = key_value(date, "date")
            .and_then(parse_date)
            .ok_or_else(|| err("bad date=YYYY-MM-DD segment"))?;
        let hour = key_value(hour, "hour")
            .filter(|h| h.len() == 2)
            .and_then(|h| h.parse::<u8>().ok())
            .filter(|h| *h < 24)
            .ok_or_else(|| err("bad hour=HH segment"))?;
        let (first, last) = file
            .strip_suffix(".parquet")
            .and_then(|f| f.split_once('-'))
            .ok_or_else(|| err("file name is not {first}-{last}.parquet"))?;
        let first_offset =
            parse_fixed_width(first, 20).ok_or_else(|| err("first offset is not 20 digits"))?;
        let last_offset =
            parse_fixed_width(last, 20).ok_or_else(|| err("last offset is not 20 digits"))?;
        if last_offset < first_offset {
            return Err(err("last offset is before first offset"));
        }
        Ok(RawFile {
            topic: topic.to_string(),
            partition,
            date,
            hour,
            first_offset,
            last_offset,
        })
    }
}

impl CleanFile {
    pub fn version_prefix(topic: &str, date: NaiveDate, version: u32) -> String {
        format!("{}v{version:08}/", clean_date_prefix(topic, date))
    }

    pub fn path(&self) -> String {
        format!(
            "{}part-{:05}.parquet",
            Self::version_prefix(&self.topic, self.date, self.version),
            self.part
        )
    }

    pub fn parse(path: &str) -> Result<Self> {
        let err = |reason: &str| Error::Layout {
            kind: "clean file",
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [root, topic, date, version, file] = parts[..] else {
            return Err(err(
                "expected clean/{topic}/date={date}/v{NNNNNNNN}/part-{k}.parquet",
            ));
        };
        if root != CLEAN_ROOT {
            return Err(err("does not start with clean/"));
        }
        validate_topic_name(topic)?;
        let date = key_value(date, "date")
            .and_then(parse_date)
            .ok_or_else(|| err("bad date=YYYY-MM-DD segment"))?;
        let version = version
            .strip_prefix('v')
            .and_then(|v| parse_fixed_width::<u32>(v, 8))
            .ok_or_else(|| err("version folder is not v and 8 digits"))?;
        let part = file
            .strip_prefix("part-")
            .and_then(|f| f.strip_suffix(".parquet"))
            .and_then(|k| parse_fixed_width::<u32>(k, 5))
            .ok_or_else(|| err("file name is not part-{5 digits}.parquet"))?;
        Ok(CleanFile {
            topic: topic.to_string(),
            date,
            version,
            part,
        })
    }
}

impl ManifestName {
    pub fn path(&self, topic: &str) -> String {
        format!("{}{:010}.json", manifests_prefix(topic), self.number)
    }

    /// Parses a manifest path, returning the topic and the manifest number.
    pub fn parse(path: &str) -> Result<(String, Self)> {
        let err = |reason: &str| Error::Layout {
            kind: "manifest",
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let [root, topic, dir, file] = parts[..] else {
            return Err(err("expected clean/{topic}/_manifests/{NNNNNNNNNN}.json"));
        };
        if root != CLEAN_ROOT || dir != MANIFESTS_DIR {
            return Err(err("not under clean/{topic}/_manifests/"));
        }
        validate_topic_name(topic)?;
        let number = file
            .strip_suffix(".json")
            .and_then(|n| parse_fixed_width::<u64>(n, 10))
            .ok_or_else(|| err("file name is not 10 digits and .json"))?;
        Ok((topic.to_string(), ManifestName { number }))
    }
}

fn key_value<'a>(segment: &'a str, key: &str) -> Option<&'a str> {
    segment.strip_prefix(key)?.strip_prefix('=')
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    // chrono accepts unpadded fields; the layout does not.
    let d = NaiveDate::parse_from_str(s, DATE_FMT).ok()?;
    (d.format(DATE_FMT).to_string() == s).then_some(d)
}

/// Exactly `width` ASCII digits, for zero-padded names. Wider numbers are allowed
/// only if the value needs the room, so that one value has one spelling.
fn parse_fixed_width<T: std::str::FromStr + ToString>(s: &str, width: usize) -> Option<T> {
    if s.len() < width || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: T = s.parse().ok()?;
    let canonical = v.to_string();
    (s.len() == width || (s.len() == canonical.len() && !s.starts_with('0'))).then_some(v)
}

/// A decimal integer with no sign, padding or leading zeros.
fn parse_canonical_int<T: std::str::FromStr + ToString>(s: &str) -> Option<T> {
    let v: T = s.parse().ok()?;
    (v.to_string() == s).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, DATE_FMT).unwrap()
    }

    #[test]
    fn paths_match_design() {
        let raw = RawFile {
            topic: "page_views".into(),
            partition: 3,
            date: date("2026-11-24"),
            hour: 7,
            first_offset: 100,
            last_offset: 199,
        };
        assert_eq!(
            raw.path(),
            "raw/page_views/partition=3/date=2026-11-24/hour=07/00000000000000000100-00000000000000000199.parquet"
        );
        let clean = CleanFile {
            topic: "page_views".into(),
            date: date("2026-11-24"),
            version: 3,
            part: 0,
        };
        assert_eq!(
            clean.path(),
            "clean/page_views/date=2026-11-24/v00000003/part-00000.parquet"
        );
        assert_eq!(
            ManifestName { number: 12 }.path("page_views"),
            "clean/page_views/_manifests/0000000012.json"
        );
    }

    #[test]
    fn rejects_what_it_would_not_build() {
        for bad in [
            "raw/t/partition=03/date=2026-11-24/hour=07/00000000000000000100-00000000000000000199.parquet",
            "raw/t/partition=3/date=2026-1-24/hour=07/00000000000000000100-00000000000000000199.parquet",
            "raw/t/partition=3/date=2026-11-24/hour=7/00000000000000000100-00000000000000000199.parquet",
            "raw/t/partition=3/date=2026-11-24/hour=24/00000000000000000100-00000000000000000199.parquet",
            "raw/t/partition=3/date=2026-11-24/hour=07/100-199.parquet",
            "raw/t/partition=3/date=2026-11-24/hour=07/00000000000000000200-00000000000000000199.parquet",
            "raw/t/partition=-1/date=2026-11-24/hour=07/00000000000000000100-00000000000000000199.parquet",
            "raw/a b/partition=3/date=2026-11-24/hour=07/00000000000000000100-00000000000000000199.parquet",
            "clean/t/partition=3/date=2026-11-24/hour=07/00000000000000000100-00000000000000000199.parquet",
        ] {
            assert!(RawFile::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "clean/t/date=2026-11-24/v3/part-00000.parquet",
            "clean/t/date=2026-11-24/v00000003/part-0.parquet",
            "clean/t/date=2026-02-30/v00000003/part-00000.parquet",
            "clean/t/_manifests/0000000012.json",
        ] {
            assert!(CleanFile::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "clean/t/_manifests/12.json",
            "clean/t/manifests/0000000012.json",
            "clean/t/_manifests/00000000x2.json",
        ] {
            assert!(ManifestName::parse(bad).is_err(), "{bad}");
        }
    }

    fn topic() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{1,40}".prop_filter("not . or ..", |t| t != "." && t != "..")
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (0i32..200_000).prop_map(|d| date("1970-01-01") + chrono::Days::new(d as u64))
    }

    proptest! {
        #[test]
        fn raw_round_trip(topic in topic(), partition in 0i32.., date in any_date(), hour in 0u8..24,
                          first in 0i64.., len in 0i64..1_000_000) {
            let raw = RawFile { topic, partition, date, hour, first_offset: first, last_offset: first.saturating_add(len) };
            prop_assert_eq!(RawFile::parse(&raw.path()).unwrap(), raw);
        }

        #[test]
        fn clean_round_trip(topic in topic(), date in any_date(), version: u32, part: u32) {
            let f = CleanFile { topic, date, version, part };
            prop_assert_eq!(CleanFile::parse(&f.path()).unwrap(), f);
        }

        #[test]
        fn manifest_round_trip(topic in topic(), number: u64) {
            let m = ManifestName { number };
            prop_assert_eq!(ManifestName::parse(&m.path(&topic)).unwrap(), (topic, m));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = RawFile::parse(&s);
            let _ = CleanFile::parse(&s);
            let _ = ManifestName::parse(&s);
        }
    }
}
