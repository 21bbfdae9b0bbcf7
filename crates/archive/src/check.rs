//! `onepipe archive check`: gaps and overlaps among a topic's raw files, per partition.

use std::collections::BTreeMap;
use std::fmt;

use crate::layout::{RawFile, raw_topic_prefix};
use object_store::ObjectStore;

use crate::Result;
use crate::checkpoint::list_raw;

/// What one partition's files cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub partition: i32,
    pub files: usize,
    pub first_offset: i64,
    pub last_offset: i64,
    /// Offsets no file holds, between the first and the last archived offset
    /// (inclusive ranges). Kafka itself leaves such holes after compaction and around
    /// transaction markers; anywhere else they are lost records.
    pub gaps: Vec<(i64, i64)>,
    /// Pairs of files that hold the same offsets (paths).
    pub overlaps: Vec<(String, String)>,
}

impl PartitionReport {
    pub fn is_clean(&self) -> bool {
        self.gaps.is_empty() && self.overlaps.is_empty()
    }
}

/// The result of checking a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub topic: String,
    pub partitions: Vec<PartitionReport>,
    /// `.parquet` objects under `raw/{topic}/` whose names are not raw-file names.
    pub strange: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.strange.is_empty() && self.partitions.iter().all(PartitionReport::is_clean)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partitions.is_empty() {
            writeln!(f, "{}: no raw files", self.topic)?;
        }
        for p in &self.partitions {
            write!(
                f,
                "{} partition {}: {} files, offsets {}..={}",
                self.topic, p.partition, p.files, p.first_offset, p.last_offset
            )?;
            if p.is_clean() {
                writeln!(f, ", no gaps or overlaps")?;
                continue;
            }
            writeln!(f, ", {} gaps, {} overlaps", p.gaps.len(), p.overlaps.len())?;
            for (a, b) in &p.gaps {
                writeln!(f, "  gap: offsets {a}..={b} are in no file")?;
            }
            for (a, b) in &p.overlaps {
                writeln!(f, "  overlap: {a} and {b}")?;
            }
        }
        for s in &self.strange {
            writeln!(f, "not a raw file name: {s}")?;
        }
        Ok(())
    }
}

/// Finds gaps and overlaps among files (of any partitions of one topic).
pub fn analyze(files: Vec<RawFile>) -> Vec<PartitionReport> {
    let mut by_partition: BTreeMap<i32, Vec<RawFile>> = BTreeMap::new();
    for f in files {
        by_partition.entry(f.partition).or_default().push(f);
    }
    let mut out = Vec::new();
    for (partition, mut files) in by_partition {
        files.sort_by_key(|f| (f.first_offset, f.last_offset));
        let mut report = PartitionReport {
            partition,
            files: files.len(),
            first_offset: files[0].first_offset,
            last_offset: files[0].last_offset,
            gaps: Vec::new(),
            overlaps: Vec::new(),
        };
        // The file reaching furthest so far, to compare each next file with.
        let mut reach = &files[0];
        for f in &files[1..] {
            if f.first_offset <= reach.last_offset {
                report.overlaps.push((reach.path(), f.path()));
            } else if f.first_offset > reach.last_offset + 1 {
                report
                    .gaps
                    .push((reach.last_offset + 1, f.first_offset - 1));
            }
            if f.last_offset > reach.last_offset {
                reach = f;
            }
        }
        report.last_offset = reach.last_offset;
        out.push(report);
    }
    out
}

/// Checks every raw file of `topic`.
pub async fn check(store: &dyn ObjectStore, topic: &str) -> Result<Report> {
    let (files, strange) = list_raw(store, &raw_topic_prefix(topic)).await?;
    let files = files.into_iter().filter(|f| f.topic == topic).collect();
    Ok(Report {
        topic: topic.to_string(),
        partitions: analyze(files),
        strange,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn f(p: i32, first: i64, last: i64) -> RawFile {
        RawFile {
            topic: "t".into(),
            partition: p,
            date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            hour: 0,
            first_offset: first,
            last_offset: last,
        }
    }

    #[test]
    fn finds_gaps_and_overlaps() {
        let r = analyze(vec![
            f(0, 10, 19),
            f(0, 0, 9),
            f(1, 0, 4),
            f(1, 8, 9),
            f(1, 3, 5),
        ]);
        assert_eq!(r.len(), 2);
        assert!(r[0].is_clean());
        assert_eq!(
            (r[0].first_offset, r[0].last_offset, r[0].files),
            (0, 19, 2)
        );
        assert_eq!(r[1].gaps, vec![(6, 7)]);
        assert_eq!(r[1].overlaps.len(), 1);
        assert_eq!(r[1].last_offset, 9);
        // A file inside another one is an overlap, not a gap.
        let r = analyze(vec![f(0, 0, 100), f(0, 10, 20), f(0, 101, 110)]);
        assert_eq!(r[0].overlaps.len(), 1);
        assert!(r[0].gaps.is_empty());
    }
}
