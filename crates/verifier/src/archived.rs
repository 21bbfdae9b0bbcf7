//! Kafka against the raw archive: is every record Kafka holds also in raw/?
//!
//! The other checks start at raw/, so a record copycat never archived (it was stopped, or
//! a raw file went missing) is invisible to them. This check compares, per partition, the
//! offsets Kafka holds — from its log start offset (low watermark) to its end offset (high
//! watermark) — with the offset ranges the raw files cover, and reads the records in every
//! hole from Kafka:
//!
//! - after the last raw file (copycat is behind or stopped);
//! - between raw files or before the first one (a missing file). A compacted topic has
//!   holes in its offsets legitimately, so a hole is only a fault when Kafka still returns
//!   records in it; reading it costs nothing when it is empty.
//!
//! Each record found is decoded with the registry (into the topic's latest schema) for its
//! unique key and its date, by the contract's date rule as the verifier reads it
//! ([`crate::expected::record_date`], not copydog's code): the `partition_time` field, else
//! the Kafka timestamp, in UTC. Records whose Kafka timestamp is within the grace window are
//! expected to still be in copycat's buffer and are reported as lag (`records_in_flight`);
//! older ones are a mismatch (`records_not_archived`) and their keys are named
//! (`not_archived`). Offsets of a hole below Kafka's log start offset cannot be checked
//! any more and are reported as `unchecked`, except before the first raw file (the archive
//! may have started after Kafka's retention deleted them).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::expected::{kafka_timestamp_date, record_date, time_path};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use chrono::Utc;
use object_store::ObjectStore;
use onepipe_archive::checkpoint::list_raw;
use onepipe_archive::columns::Mapping;
use onepipe_archive::layout::{RawFile, raw_topic_prefix};
use onepipe_client::{Deserializer, ReaderSchema, SchemaRegistry};
use onepipe_core::metadata::TopicMetadata;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::canonical::row_text;
use crate::checks::column;
use crate::error::{Error, Result};
use crate::verify::{DatasetReport, KeyDiff, Line, RAW};

/// The store name of Kafka in reports.
pub const KAFKA: &str = "kafka";
/// Records older than the grace window that raw/ lacks.
pub const NOT_ARCHIVED: &str = "records_not_archived";
/// Records within the grace window that raw/ lacks yet (lag, not a fault).
pub const IN_FLIGHT: &str = "records_in_flight";
/// A hole between raw files in which Kafka still holds old records.
pub const OFFSET_GAP: &str = "offset_gap";
/// A hole Kafka no longer holds either.
pub const BELOW_LOG_START: &str = "offsets_below_log_start";
/// The date of lines about a whole dataset rather than one date.
pub const ALL_DATES: &str = "*";

/// Records read from Kafka per round trip to the decoder.
const CHUNK: usize = 10_000;
/// How long Kafka may return nothing before reading a hole is given up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How to compare Kafka with the raw archive.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub bootstrap: String,
    /// Extra librdkafka properties (TLS, SASL), as `--kafka-option` gives them.
    pub client_options: Vec<(String, String)>,
    /// Records whose Kafka timestamp is newer than this are expected to be in flight.
    pub grace: Duration,
}

/// What Kafka holds of one partition: offsets from `low` (the log start offset) up to,
/// not including, `high` (the end offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// Offsets `first..=last` of one partition that no raw file covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
    /// After the last raw file (copycat has not got there yet), rather than a gap
    /// between files or before the first one.
    pub tail: bool,
}

impl Hole {
    fn describe(&self) -> String {
        format!(
            "partition {}: offsets {}..={}",
            self.partition, self.first, self.last
        )
    }
}

/// The holes to read from Kafka, and those Kafka no longer holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub read: Vec<Hole>,
    pub gone: Vec<Hole>,
}

/// The offset ranges of each Kafka partition that no raw file covers, split at the log
/// start offset: what Kafka still holds is to be read, what it deleted is `gone` — except
/// before the partition's first raw file, where the archive may simply have started
/// after Kafka's retention deleted the records.
pub fn plan(files: &[RawFile], kafka: &[Watermarks]) -> Plan {
    let mut out = Plan::default();
    for w in kafka {
        let mut covered: Vec<(i64, i64)> = files
            .iter()
            .filter(|f| f.partition == w.partition)
            .map(|f| (f.first_offset, f.last_offset))
            .collect();
        covered.sort_unstable();
        let mut holes = Vec::new();
        let mut next: Option<i64> = None;
        for (first, last) in covered {
            match next {
                // Before the first file: only what Kafka still holds matters.
                None if first > w.low => holes.push((w.low, first - 1, false)),
                Some(n) if first > n => holes.push((n, first - 1, false)),
                _ => {}
            }
            next = Some(next.map_or(last + 1, |n| n.max(last + 1)));
        }
        let end_from = next.unwrap_or(w.low);
        if end_from < w.high {
            holes.push((end_from, w.high - 1, true));
        }
        for (first, last, tail) in holes {
            let hole = |first, last| Hole {
                partition: w.partition,
                first,
                last,
                tail,
            };
            if first < w.low {
                out.gone.push(hole(first, last.min(w.low - 1)));
            }
            if last >= w.low {
                out.read.push(hole(first.max(w.low), last));
            }
        }
    }
    out
}

/// One record read from Kafka.
#[derive(Debug, Clone)]
pub struct KafkaRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (0 when the record has none).
    pub timestamp: i64,
    pub value: Option<Vec<u8>>,
}

/// The date and key text of a record, as the clean archive would hold them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identified {
    pub date: String,
    pub key: String,
}

/// What the holes held, by date.
#[derive(Debug, Default)]
pub struct Tally {
    /// Date → (records, their keys, at most `max_keys`).
    pub not_archived: BTreeMap<String, (u64, BTreeSet<String>)>,
    /// Date → records within the grace window.
    pub in_flight: BTreeMap<String, u64>,
    /// Gaps (not tails) in which old records were found, with how many.
    pub gaps: Vec<(Hole, u64)>,
}

impl Tally {
    /// Counts one record found in a hole; `old` when it is past the grace window.
    pub fn add(&mut self, id: Identified, old: bool, max_keys: usize) {
        if !old {
            *self.in_flight.entry(id.date).or_default() += 1;
            return;
        }
        let e = self.not_archived.entry(id.date).or_default();
        e.0 += 1;
        if e.1.len() < max_keys {
            e.1.insert(id.key);
        }
    }
}

/// Compares `topic` in Kafka with its raw archive; see the module documentation.
pub async fn check(
    store: Arc<dyn ObjectStore>,
    registry: &SchemaRegistry,
    topic: &str,
    kafka: &KafkaOptions,
    max_keys: usize,
) -> Result<DatasetReport> {
    let consumer = Arc::new(consumer(&kafka.bootstrap, &kafka.client_options)?);
    // Kafka first: whatever copycat archives meanwhile only shrinks the holes.
    let marks = {
        let (c, t) = (consumer.clone(), topic.to_string());
        tokio::task::spawn_blocking(move || watermarks(&c, &t)).await??
    };
    let Some(marks) = marks else {
        return Ok(not_in_kafka(topic));
    };
    let (files, _) = list_raw(store.as_ref(), &raw_topic_prefix(topic))
        .await
        .map_err(|error| Error::ListRaw {
            topic: topic.to_string(),
            error,
        })?;
    let plan = plan(&files, &marks);
    let t = registry.topic(topic).await.map_err(|error| Error::Topic {
        topic: topic.to_string(),
        error,
    })?;
    let decoder = RecordDecoder {
        topic: topic.to_string(),
        meta: t.metadata.clone(),
        schema: t.latest.schema.clone(),
        deserializer: Deserializer::new(registry.clone(), ReaderSchema::Latest),
    };
    let newest_old = Utc::now().timestamp_millis() - kafka.grace.as_millis() as i64;
    let mut tally = Tally::default();
    for hole in &plan.read {
        let mut reader = HoleReader::new(consumer.clone(), topic, *hole)?;
        let mut old_in_hole = 0u64;
        loop {
            let (r, chunk) = tokio::task::spawn_blocking(move || {
                let chunk = reader.next_chunk(CHUNK);
                (reader, chunk)
            })
            .await?;
            reader = r;
            let chunk = chunk?;
            if chunk.is_empty() {
                break;
            }
            let ids = decoder.identify(&chunk).await?;
            for (record, id) in chunk.iter().zip(ids) {
                let old = record.timestamp <= newest_old;
                old_in_hole += u64::from(old);
                tally.add(id, old, max_keys);
            }
        }
        if !hole.tail && old_in_hole > 0 {
            tally.gaps.push((*hole, old_in_hole));
        }
    }
    Ok(report(topic, &tally, &plan.gone))
}

/// The report lines and keys of a tally: one `records_not_archived` mismatch and one
/// `records_in_flight` lag line per date, an `ok` line when nothing is missing, an
/// `offset_gap` mismatch per gap between raw files that Kafka still fills, and an
/// `unchecked` line per hole Kafka deleted.
pub fn report(topic: &str, tally: &Tally, gone: &[Hole]) -> DatasetReport {
    let mut r = DatasetReport::default();
    let line = |date: &str, store: &str, check: &str, value: String, verdict: &str| Line {
        dataset: topic.to_string(),
        date: date.to_string(),
        store: store.to_string(),
        check: check.to_string(),
        value,
        verdict: verdict.to_string(),
    };
    for (date, (n, keys)) in &tally.not_archived {
        r.lines
            .push(line(date, KAFKA, NOT_ARCHIVED, n.to_string(), "MISMATCH"));
        r.mismatches += 1;
        for key in keys {
            r.keys.push(KeyDiff {
                dataset: topic.to_string(),
                date: date.clone(),
                store: KAFKA.to_string(),
                key: key.clone(),
                problem: "not_archived".to_string(),
            });
        }
    }
    if tally.not_archived.is_empty() {
        r.lines
            .push(line(ALL_DATES, KAFKA, NOT_ARCHIVED, "0".to_string(), "ok"));
    }
    for (date, n) in &tally.in_flight {
        r.lines
            .push(line(date, KAFKA, IN_FLIGHT, n.to_string(), "lag"));
    }
    for (hole, n) in &tally.gaps {
        let value = format!("{} missing, {n} records in Kafka", hole.describe());
        r.lines
            .push(line(ALL_DATES, RAW, OFFSET_GAP, value, "MISMATCH"));
        r.mismatches += 1;
    }
    for hole in gone {
        let value = format!("{} are in neither raw/ nor Kafka", hole.describe());
        r.lines
            .push(line(ALL_DATES, KAFKA, BELOW_LOG_START, value, "unchecked"));
    }
    r
}

/// A consumer that only reads assigned partitions (no group membership, no commits), and
/// only committed transactions, as copycat does.
fn consumer(bootstrap: &str, options: &[(String, String)]) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    for (k, v) in options {
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "onepipe-verifier")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(Error::kafka(format!("kafka consumer for {bootstrap}")))
}

/// The report of a dataset whose topic Kafka does not have (deleted, or never created):
/// nothing to compare, said as one `unchecked` line.
fn not_in_kafka(topic: &str) -> DatasetReport {
    DatasetReport {
        lines: vec![Line {
            dataset: topic.to_string(),
            date: ALL_DATES.to_string(),
            store: KAFKA.to_string(),
            check: NOT_ARCHIVED.to_string(),
            value: "the topic is not in Kafka".to_string(),
            verdict: "unchecked".to_string(),
        }],
        ..DatasetReport::default()
    }
}

/// The log start and end offsets of every partition of `topic`; `None` when Kafka has no
/// such topic. Blocking.
fn watermarks(consumer: &BaseConsumer, topic: &str) -> Result<Option<Vec<Watermarks>>> {
    let md = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(Error::kafka(format!("kafka metadata of {topic}")))?;
    let mut out = Vec::new();
    for t in md.topics() {
        match t.error() {
            None => {}
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
            Some(e) => {
                return Err(Error::KafkaTopic {
                    topic: topic.to_string(),
                    code: RDKafkaErrorCode::from(e),
                });
            }
        }
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)
                .map_err(Error::kafka(format!(
                    "kafka: watermarks of {topic}/{}",
                    p.id()
                )))?;
            out.push(Watermarks {
                partition: p.id(),
                low,
                high,
            });
        }
    }
    out.sort_by_key(|w| w.partition);
    Ok(Some(out))
}

/// Reads the records of one hole, a chunk at a time.
struct HoleReader {
    consumer: Arc<BaseConsumer>,
    topic: String,
    hole: Hole,
    /// The next offset wanted; `None` once the hole is read.
    next: Option<i64>,
}

impl HoleReader {
    fn new(consumer: Arc<BaseConsumer>, topic: &str, hole: Hole) -> Result<Self> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, hole.partition, Offset::Offset(hole.first))
            .map_err(Error::kafka(format!("kafka: {topic}/{}", hole.partition)))?;
        consumer.assign(&tpl).map_err(Error::kafka(format!(
            "kafka: assigning {topic}/{}",
            hole.partition
        )))?;
        Ok(HoleReader {
            consumer,
            topic: topic.to_string(),
            hole,
            next: Some(hole.first),
        })
    }

    /// Up to `max` more records of the hole; empty once it is read (Kafka may return
    /// fewer records than offsets: compaction and transaction markers). Blocking.
    fn next_chunk(&mut self, max: usize) -> Result<Vec<KafkaRecord>> {
        let mut out = Vec::new();
        let mut idle = Instant::now();
        while let Some(next) = self.next {
            if out.len() >= max {
                break;
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {
                    if idle.elapsed() > IDLE_TIMEOUT {
                        return Err(Error::KafkaIdle {
                            topic: self.topic.clone(),
                            partition: self.hole.partition,
                            offset: next,
                            last: self.hole.last,
                            secs: IDLE_TIMEOUT.as_secs(),
                        });
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == self.hole.partition => {
                    self.next = None;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    return Err(Error::Kafka {
                        what: format!(
                            "kafka: reading {}/{} at offset {next}",
                            self.topic, self.hole.partition
                        ),
                        error: e,
                    });
                }
                Some(Ok(m)) => {
                    idle = Instant::now();
                    if m.partition() != self.hole.partition || m.offset() < next {
                        continue;
                    }
                    if m.offset() > self.hole.last {
                        self.next = None;
                        continue;
                    }
                    out.push(KafkaRecord {
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: m.timestamp().to_millis().unwrap_or(0).max(0),
                        value: m.payload().map(<[u8]>::to_vec),
                    });
                    self.next = (m.offset() < self.hole.last).then_some(m.offset() + 1);
                }
            }
        }
        Ok(out)
    }
}

/// A record's date as report text; a date outside the calendar is named as such.
fn date_text(date: Option<chrono::NaiveDate>) -> String {
    date.map_or_else(|| "(outside the calendar)".to_string(), |d| d.to_string())
}

/// Decodes records of one topic into their date and unique-key text.
struct RecordDecoder {
    topic: String,
    meta: TopicMetadata,
    schema: apache_avro::Schema,
    deserializer: Deserializer,
}

impl RecordDecoder {
    /// The date and key of each record. A record that cannot be decoded (a tombstone, an
    /// unknown schema id, bad bytes) is named by its position and why, dated by its
    /// Kafka timestamp.
    async fn identify(&self, records: &[KafkaRecord]) -> Result<Vec<Identified>> {
        let mut out: Vec<Option<Identified>> = vec![None; records.len()];
        let mut values = Vec::new();
        let mut decoded_at = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let position = format!("partition {} offset {}", r.partition, r.offset);
            let Some(bytes) = &r.value else {
                out[i] = Some(Identified {
                    date: date_text(kafka_timestamp_date(r.timestamp)),
                    key: format!("({position}: a tombstone)"),
                });
                continue;
            };
            match self.deserializer.deserialize(&self.topic, bytes).await {
                Ok(d) => {
                    values.push(d.value);
                    decoded_at.push(i);
                }
                Err(e) => {
                    out[i] = Some(Identified {
                        date: date_text(kafka_timestamp_date(r.timestamp)),
                        key: format!("({position}: cannot decode: {e})"),
                    });
                }
            }
        }
        if !values.is_empty() {
            let keys = self.keys(&values)?;
            let path = time_path(&self.meta);
            for ((value, key), i) in values.iter().zip(keys).zip(decoded_at) {
                let date = record_date(path.as_deref(), value, records[i].timestamp);
                out[i] = Some(Identified {
                    date: date_text(date),
                    key,
                });
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The unique-key texts of decoded values, as `canonical` writes them for clean rows.
    fn keys(&self, values: &[apache_avro::types::Value]) -> Result<Vec<String>> {
        let what = |e: &dyn std::fmt::Display| Error::KafkaRecords {
            topic: self.topic.clone(),
            reason: e.to_string(),
        };
        let mapping = Mapping::new(&self.schema).map_err(|e| what(&e))?;
        let refs: Vec<_> = values.iter().collect();
        let columns = mapping.columns(&refs).map_err(|e| what(&e))?;
        let schema = Arc::new(Schema::new(mapping.fields().map_err(|e| what(&e))?));
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| what(&e))?;
        let keys: Vec<ArrayRef> = self
            .meta
            .unique_key
            .iter()
            .map(|k| column(&batch, k))
            .collect::<Result<_>>()
            .map_err(|e| what(&e))?;
        Ok((0..batch.num_rows()).map(|i| row_text(&keys, i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn file(partition: i32, first: i64, last: i64) -> RawFile {
        RawFile {
            topic: "t".into(),
            partition,
            date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            hour: 0,
            first_offset: first,
            last_offset: last,
        }
    }

    fn w(partition: i32, low: i64, high: i64) -> Watermarks {
        Watermarks {
            partition,
            low,
            high,
        }
    }

    fn hole(partition: i32, first: i64, last: i64, tail: bool) -> Hole {
        Hole {
            partition,
            first,
            last,
            tail,
        }
    }

    #[test]
    fn an_archive_that_covers_kafka_has_no_holes() {
        let files = [file(0, 0, 9), file(0, 10, 19), file(1, 0, 4)];
        assert_eq!(plan(&files, &[w(0, 0, 20), w(1, 0, 5)]), Plan::default());
        // Kafka deleted what is archived: nothing to say.
        assert_eq!(plan(&files, &[w(0, 15, 20)]), Plan::default());
    }

    #[test]
    fn the_tail_beyond_the_archive_is_read() {
        let files = [file(0, 0, 9)];
        let p = plan(&files, &[w(0, 0, 25), w(1, 0, 3)]);
        assert_eq!(p.read, [hole(0, 10, 24, true), hole(1, 0, 2, true)]);
        assert!(p.gone.is_empty());
    }

    #[test]
    fn gaps_between_files_are_read_and_deleted_offsets_are_gone() {
        let files = [file(0, 0, 9), file(0, 20, 29), file(0, 40, 49)];
        let p = plan(&files, &[w(0, 25, 60)]);
        // 10..=19 is below the log start: gone; 30..=39 is a gap Kafka still holds.
        assert_eq!(p.gone, [hole(0, 10, 19, false)]);
        assert_eq!(p.read, [hole(0, 30, 39, false), hole(0, 50, 59, true)]);
        // The archive ends below the log start: the part in between is gone.
        let p = plan(&[file(0, 0, 9)], &[w(0, 15, 20)]);
        assert_eq!(p.gone, [hole(0, 10, 14, true)]);
        assert_eq!(p.read, [hole(0, 15, 19, true)]);
    }

    #[test]
    fn before_the_first_file_only_what_kafka_holds_counts() {
        let p = plan(&[file(0, 100, 109)], &[w(0, 50, 110)]);
        assert_eq!(p.read, [hole(0, 50, 99, false)]);
        assert!(p.gone.is_empty());
        // Nothing archived at all: every offset Kafka holds.
        let p = plan(&[], &[w(0, 7, 10)]);
        assert_eq!(p.read, [hole(0, 7, 9, true)]);
        assert!(p.gone.is_empty());
        // Overlapping files (a re-upload) leave no hole.
        let p = plan(&[file(0, 0, 9), file(0, 5, 14)], &[w(0, 0, 15)]);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn reports_old_records_as_mismatches_and_new_ones_as_lag() {
        let mut t = Tally::default();
        let id = |date: &str, key: &str| Identified {
            date: date.into(),
            key: key.into(),
        };
        t.add(id("2026-11-24", "b"), true, 1);
        t.add(id("2026-11-24", "a"), true, 1);
        t.add(id("2026-11-25", "c"), false, 1);
        t.gaps.push((hole(0, 30, 39, false), 2));
        let r = report("t", &t, &[hole(0, 10, 19, false)]);
        assert_eq!(r.mismatches, 2);
        let lines: Vec<(&str, &str, &str, &str)> = r
            .lines
            .iter()
            .map(|l| {
                (
                    l.date.as_str(),
                    l.check.as_str(),
                    l.value.as_str(),
                    l.verdict.as_str(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("2026-11-24", NOT_ARCHIVED, "2", "MISMATCH"),
                ("2026-11-25", IN_FLIGHT, "1", "lag"),
                (
                    ALL_DATES,
                    OFFSET_GAP,
                    "partition 0: offsets 30..=39 missing, 2 records in Kafka",
                    "MISMATCH"
                ),
                (
                    ALL_DATES,
                    BELOW_LOG_START,
                    "partition 0: offsets 10..=19 are in neither raw/ nor Kafka",
                    "unchecked"
                ),
            ]
        );
        // Keys are capped per date, counts are not.
        assert_eq!(r.keys.len(), 1);
        assert_eq!(r.keys[0].key, "b");
        assert_eq!(r.keys[0].problem, "not_archived");
        let ok = report("t", &Tally::default(), &[]);
        assert_eq!(ok.mismatches, 0);
        assert_eq!(ok.lines[0].verdict, "ok");
    }
}
