//! Per-partition buffering and the rules that cut it into files.
//!
//! A file ends *before* a record when adding it would break a rule:
//! - its timestamp falls in another hour than the file's (a file never spans two hours
//!   of record time, so its `date=`/`hour=` folder is true for every row);
//! - the file already holds `max_records` records;
//! - its bytes would pass `max_bytes` (a single larger record still gets a file);
//! - the file's record times would span more than `max_span`.
//!
//! These depend only on the offsets and the records, never on the wall clock, so the
//! same records from the same starting offset give the same files. Early cuts (an idle
//! partition, the memory cap, shutdown) are the only exceptions; they still fall on
//! offset boundaries and recovery does not depend on where files end.
//!
//! Ranges already claimed by an earlier owner ([`onepipe_archive::checkpoint::Claim`]) override the
//! rules: a file starts at each claimed first offset and ends at its last offset, and is
//! never cut early (at shutdown it is dropped instead, for the next owner to write).

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike};
use onepipe_archive::layout::RawFile;

use onepipe_archive::raw::RawBatch;

const HOUR_MS: i64 = 3_600_000;

/// Limits of one file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_span_ms: i64,
}

/// The hour (since the epoch) a record timestamp falls in.
pub fn hour_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS)
}

/// The `date=`/`hour=` folder of an hour since the epoch.
pub fn date_hour(hour: i64) -> (chrono::NaiveDate, u8) {
    let t = DateTime::from_timestamp_millis(hour.saturating_mul(HOUR_MS)).unwrap_or_default();
    (t.date_naive(), t.hour() as u8)
}

/// Whether a record with this timestamp and size must start a new file rather than
/// join `open` (which is not empty).
pub fn must_cut(open: &RawBatch, timestamp: i64, size: usize, limits: &Limits) -> bool {
    let Some((min_ts, max_ts)) = open.time_range() else {
        return false;
    };
    hour_of(timestamp) != hour_of(min_ts)
        || open.len() >= limits.max_records
        || open.bytes() + size > limits.max_bytes
        || max_ts.max(timestamp) - min_ts.min(timestamp) > limits.max_span_ms
}

/// A finished run of records, ready to be written as one raw file.
pub struct Sealed {
    pub file: RawFile,
    pub batch: RawBatch,
    /// Bytes counted against the memory cap until the upload is done.
    pub bytes: usize,
    pub records: usize,
}

/// What happened to a record offered to a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Appended to the open file.
    Appended,
    /// Already archived or already buffered (offset below the next expected one).
    Skipped,
}

/// The open file of one partition.
pub struct PartitionBuffer {
    topic: String,
    partition: i32,
    limits: Limits,
    /// The next offset expected; anything below it is already archived or buffered.
    next_offset: Option<i64>,
    open: Option<RawBatch>,
    /// Claimed ranges still to write, first → last offset.
    claims: BTreeMap<i64, i64>,
    /// The last offset of the claimed range the open file is writing.
    claimed_last: Option<i64>,
    /// Records and bytes of the last file, to size the next one.
    last_size: (usize, usize),
}

impl PartitionBuffer {
    /// `next_offset`: the first offset not yet archived (`None`: nothing archived yet).
    pub fn new(topic: &str, partition: i32, limits: Limits, next_offset: Option<i64>) -> Self {
        PartitionBuffer {
            topic: topic.to_string(),
            partition,
            limits,
            next_offset,
            open: None,
            claims: BTreeMap::new(),
            claimed_last: None,
            last_size: (0, 0),
        }
    }

    /// Ranges claimed before (first → last offset) that the next files must match.
    pub fn with_claims(mut self, claims: BTreeMap<i64, i64>) -> Self {
        self.claims = claims;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn next_offset(&self) -> Option<i64> {
        self.next_offset
    }

    /// Bytes held by the open file.
    pub fn open_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, RawBatch::bytes)
    }

    pub fn open_records(&self) -> usize {
        self.open.as_ref().map_or(0, RawBatch::len)
    }

    /// Adds a record; when it cannot join the open file, that file is sealed first and
    /// handed to `sealed`.
    pub fn push(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        sealed: &mut impl FnMut(Sealed),
    ) -> Pushed {
        if self.next_offset.is_some_and(|next| offset < next) {
            return Pushed::Skipped;
        }
        let size = RawBatch::record_size(key, value, headers);
        let cut = match self.claimed_last {
            // Past a claimed range whose last record never came (deleted by retention).
            Some(last) => offset > last,
            None => {
                self.claims.contains_key(&offset)
                    || self
                        .open
                        .as_ref()
                        .is_some_and(|open| must_cut(open, timestamp, size, &self.limits))
            }
        };
        if cut && let Some(s) = self.seal() {
            sealed(s);
        }
        if self.open_records() == 0 {
            self.claimed_last = self.claims.remove(&offset);
        }
        let (records, bytes) = self.last_size;
        self.open
            .get_or_insert_with(|| RawBatch::with_capacity(self.partition, records, bytes))
            .push(offset, timestamp, key, value, headers);
        self.next_offset = Some(offset + 1);
        if self.claimed_last == Some(offset)
            && let Some(s) = self.seal()
        {
            sealed(s);
        }
        Pushed::Appended
    }

    /// Ends the open file here (an early cut: idle partition, memory cap, shutdown), if
    /// it holds anything and is not a claimed range.
    pub fn seal_early(&mut self) -> Option<Sealed> {
        if self.claimed_last.is_some() {
            return None;
        }
        self.seal()
    }

    /// Drops the open file; returns the bytes it held. The next offset goes back to its
    /// first record, so that it is read again.
    pub fn discard(&mut self) -> usize {
        let Some(open) = self.open.take() else {
            return 0;
        };
        if let (Some(first), Some(last)) = (open.first_offset(), self.claimed_last.take()) {
            self.claims.insert(first, last);
        }
        if let Some(first) = open.first_offset() {
            self.next_offset = Some(first);
        }
        open.bytes()
    }

    /// The file is named by its claimed range when it writes one, even when the range's
    /// last records were removed from the topic: the claim and the file then agree, and
    /// recovery resumes after the range instead of claiming a shorter one (which would
    /// conflict with the claim on every restart).
    fn seal(&mut self) -> Option<Sealed> {
        let claimed_last = self.claimed_last.take();
        let batch = self.open.take().filter(|b| !b.is_empty())?;
        if let Some(last) = claimed_last {
            self.next_offset = self.next_offset.max(Some(last + 1));
        }
        // Files cut by the rules are alike; early cuts are not a guide.
        self.last_size = (
            batch.len().min(self.limits.max_records),
            batch.bytes().min(self.limits.max_bytes),
        );
        let (min_ts, _) = batch.time_range()?;
        let (date, hour) = date_hour(hour_of(min_ts));
        let file = RawFile {
            topic: self.topic.clone(),
            partition: self.partition,
            date,
            hour,
            first_offset: batch.first_offset()?,
            last_offset: batch.last_offset()?.max(claimed_last.unwrap_or(i64::MIN)),
        };
        Some(Sealed {
            file,
            bytes: batch.bytes(),
            records: batch.len(),
            batch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS; // an hour boundary

    fn limits() -> Limits {
        Limits {
            max_records: 1000,
            max_bytes: 1 << 20,
            max_span_ms: HOUR_MS,
        }
    }

    /// Pushes (offset, timestamp, value length) records; returns the files as
    /// (first, last, date/hour) plus what is still open.
    fn files(limits: Limits, records: &[(i64, i64, usize)]) -> Vec<(i64, i64, String)> {
        let mut buf = PartitionBuffer::new("t", 0, limits, None);
        let mut out = Vec::new();
        let mut sink = |s: Sealed| {
            out.push((
                s.file.first_offset,
                s.file.last_offset,
                format!("{}/{:02}", s.file.date, s.file.hour),
            ))
        };
        for &(o, ts, len) in records {
            let v = vec![7u8; len];
            buf.push(o, ts, None, Some(&v), &[], &mut sink);
        }
        if let Some(s) = buf.seal_early() {
            sink(s);
        }
        out
    }

    #[test]
    fn a_file_never_spans_two_hours() {
        let recs = [
            (0, T0 + HOUR_MS - 2, 1),
            (1, T0 + HOUR_MS - 1, 1),
            (2, T0 + HOUR_MS, 1),     // next hour
            (3, T0 + HOUR_MS - 5, 1), // late record: back to the earlier hour
            (4, T0 + 2 * HOUR_MS + 1, 1),
        ];
        let f = files(limits(), &recs);
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!((f[0].0, f[0].1), (0, 1));
        assert_eq!((f[1].0, f[1].1), (2, 2));
        assert_eq!((f[2].0, f[2].1), (3, 3));
        assert_eq!((f[3].0, f[3].1), (4, 4));
        assert_eq!(f[0].2, f[2].2);
        assert_ne!(f[0].2, f[1].2);
    }

    #[test]
    fn hour_folders_are_utc() {
        // 2026-11-24T07:30:00Z
        let ts = 1_795_505_400_000;
        let (d, h) = date_hour(hour_of(ts));
        assert_eq!((d.to_string(), h), ("2026-11-24".to_string(), 7));
        let (d, h) = date_hour(hour_of(-1));
        assert_eq!((d.to_string(), h), ("1969-12-31".to_string(), 23));
    }

    #[test]
    fn cuts_by_records_bytes_and_span() {
        let l = Limits {
            max_records: 3,
            ..limits()
        };
        let recs: Vec<_> = (0..7).map(|o| (o, T0 + o, 1)).collect();
        let f = files(l, &recs);
        let ranges: Vec<_> = f.iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(ranges, vec![(0, 2), (3, 5), (6, 6)]);

        let per_record = RawBatch::record_size(None, Some(&[0; 100]), &[]);
        let l = Limits {
            max_bytes: 2 * per_record,
            ..limits()
        };
        let recs: Vec<_> = (0..5).map(|o| (o, T0, 100)).collect();
        let ranges: Vec<_> = files(l, &recs).iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(ranges, vec![(0, 1), (2, 3), (4, 4)]);
        // One record larger than the limit still gets its own file.
        let ranges: Vec<_> = files(l, &[(0, T0, 10), (1, T0, 10_000), (2, T0, 10)])
            .iter()
            .map(|x| (x.0, x.1))
            .collect();
        assert_eq!(ranges, vec![(0, 0), (1, 1), (2, 2)]);

        let l = Limits {
            max_span_ms: 10_000,
            ..limits()
        };
        let recs = [
            (0, T0, 1),
            (1, T0 + 10_000, 1),
            (2, T0 + 10_001, 1), // 10 001 ms after offset 0
            (3, T0 + 5, 1),      // within 10 s of offset 2
            (4, T0 + 20_006, 1), // 20 001 ms after offset 3
        ];
        let ranges: Vec<_> = files(l, &recs).iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(ranges, vec![(0, 1), (2, 3), (4, 4)]);
    }

    #[test]
    fn same_records_give_same_files() {
        let recs: Vec<_> = (0..500)
            .map(|o| {
                (
                    o,
                    T0 + (o * 7919) % (3 * HOUR_MS / 100) * 100,
                    (o % 13) as usize,
                )
            })
            .collect();
        let l = Limits {
            max_records: 17,
            max_bytes: 600,
            max_span_ms: 1_000_000,
        };
        assert_eq!(files(l, &recs), files(l, &recs));
        // Contiguous, each offset once.
        let f = files(l, &recs);
        let mut next = 0;
        for (first, last, _) in f {
            assert_eq!(first, next);
            next = last + 1;
        }
        assert_eq!(next, 500);
    }

    #[test]
    fn claimed_ranges_override_the_rules() {
        // An earlier owner claimed 10..=14 and 15..=15; our own rule would cut every 3.
        let l = Limits {
            max_records: 3,
            ..limits()
        };
        let mut buf = PartitionBuffer::new("t", 0, l, Some(5))
            .with_claims(BTreeMap::from([(10, 14), (15, 15)]));
        let mut files = Vec::new();
        let mut sink = |s: Sealed| files.push((s.file.first_offset, s.file.last_offset));
        for o in 5..22 {
            buf.push(o, T0, None, None, &[], &mut sink);
        }
        // Never cut early inside a claimed range.
        let mut inside =
            PartitionBuffer::new("t", 0, l, Some(30)).with_claims(BTreeMap::from([(30, 40)]));
        inside.push(30, T0, None, None, &[], &mut |_| panic!("not yet"));
        assert!(inside.seal_early().is_none());
        // Dropped, it is claimed again and read again from its first offset.
        assert!(inside.discard() > 0);
        assert_eq!(inside.next_offset(), Some(30));
        inside.push(30, T0, None, None, &[], &mut |_| panic!("not yet"));
        assert!(inside.seal_early().is_none());

        if let Some(s) = buf.seal_early() {
            sink(s);
        }
        assert_eq!(
            files,
            vec![(5, 7), (8, 9), (10, 14), (15, 15), (16, 18), (19, 21)]
        );
    }

    #[test]
    fn a_claimed_range_whose_end_is_gone_is_still_written_as_claimed() {
        // Offset 12 was compacted away: the file ends at the next record, named 10..=12
        // as claimed (a shorter name would conflict with the claim).
        let mut buf = PartitionBuffer::new("t", 0, limits(), Some(10))
            .with_claims(BTreeMap::from([(10, 12), (30, 35)]));
        let mut files = Vec::new();
        let mut push = |buf: &mut PartitionBuffer, offsets: &[i64]| {
            for o in offsets {
                buf.push(*o, T0, None, None, &[], &mut |s: Sealed| {
                    files.push((s.file.first_offset, s.file.last_offset, s.records))
                });
            }
        };
        push(&mut buf, &[10, 11, 20, 21]);
        let s = buf.seal_early().unwrap();
        assert_eq!((s.file.first_offset, s.file.last_offset), (20, 21));
        // The next claimed range starts at 30; 31, 33 and 35 are gone.
        push(&mut buf, &[30, 32, 34, 36]);
        assert_eq!(files, vec![(10, 12, 2), (30, 35, 3)]);
        assert_eq!(buf.next_offset(), Some(37));
    }

    #[test]
    fn offsets_below_the_resume_point_are_skipped() {
        let mut buf = PartitionBuffer::new("t", 0, limits(), Some(10));
        let mut sink = |_: Sealed| panic!("nothing to seal");
        assert_eq!(buf.push(9, T0, None, None, &[], &mut sink), Pushed::Skipped);
        assert_eq!(
            buf.push(10, T0, None, None, &[], &mut sink),
            Pushed::Appended
        );
        assert_eq!(
            buf.push(10, T0, None, None, &[], &mut sink),
            Pushed::Skipped
        );
        assert_eq!(buf.next_offset(), Some(11));
        let s = buf.seal_early().unwrap();
        assert_eq!((s.file.first_offset, s.file.last_offset), (10, 10));
        assert!(buf.seal_early().is_none());
    }
}
