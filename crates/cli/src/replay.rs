//! `onepipe replay`: raw files back into a topic, with the exact key, value, headers and
//! timestamp of each record, in offset order per partition, each record to the partition
//! it was archived from.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_archive::layout::{RawFile, raw_topic_prefix};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use onepipe_archive::checkpoint::list_raw;

use crate::error::{Error, Result};

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub topic: String,
    pub to_topic: String,
    /// Only this partition (default: all).
    pub partition: Option<i32>,
    /// Offsets from, inclusive.
    pub from_offset: Option<i64>,
    /// Offsets to, inclusive.
    pub to_offset: Option<i64>,
    /// Record timestamps from, inclusive (ms since the epoch).
    pub from_time: Option<i64>,
    /// Record timestamps to, exclusive (ms since the epoch).
    pub to_time: Option<i64>,
}

impl ReplayOptions {
    fn wants_file(&self, f: &RawFile) -> bool {
        const HOUR_MS: i64 = 3_600_000;
        let start = f
            .date
            .and_hms_opt(u32::from(f.hour), 0, 0)
            .map_or(i64::MIN, |t| t.and_utc().timestamp_millis());
        self.partition.is_none_or(|p| p == f.partition)
            && self.from_offset.is_none_or(|o| f.last_offset >= o)
            && self.to_offset.is_none_or(|o| f.first_offset <= o)
            && self.from_time.is_none_or(|t| start + HOUR_MS > t)
            && self.to_time.is_none_or(|t| start < t)
    }

    fn wants(&self, offset: i64, timestamp: i64) -> bool {
        self.from_offset.is_none_or(|o| offset >= o)
            && self.to_offset.is_none_or(|o| offset <= o)
            && self.from_time.is_none_or(|t| timestamp >= t)
            && self.to_time.is_none_or(|t| timestamp < t)
    }
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaySummary {
    pub files: usize,
    pub records: u64,
    /// Offsets skipped because an earlier file already held them (overlapping files).
    pub duplicates_skipped: u64,
}

/// Records in flight to the broker before the oldest is awaited.
const IN_FLIGHT: usize = 50_000;

/// Replays the archive of `opts.topic` into `opts.to_topic` through `producer_config`
/// (bootstrap servers and any other librdkafka settings; idempotence and acks=all are
/// set here). `progress(done, total)` is called as records are delivered; `total` is
/// an upper bound read from the file names.
pub async fn replay(
    store: &dyn ObjectStore,
    mut producer_config: ClientConfig,
    opts: &ReplayOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<ReplaySummary> {
    let (files, _) = list_raw(store, &raw_topic_prefix(&opts.topic)).await?;
    let mut by_partition: BTreeMap<i32, Vec<RawFile>> = BTreeMap::new();
    for f in files {
        if f.topic == opts.topic && opts.wants_file(&f) {
            by_partition.entry(f.partition).or_default().push(f);
        }
    }
    let total: u64 = by_partition
        .values()
        .flatten()
        .map(|f| {
            let first = opts
                .from_offset
                .map_or(f.first_offset, |o| o.max(f.first_offset));
            let last = opts
                .to_offset
                .map_or(f.last_offset, |o| o.min(f.last_offset));
            (last - first + 1).max(0) as u64
        })
        .sum();
    progress(0, total);

    let producer: FutureProducer = producer_config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let mut summary = ReplaySummary::default();
    let mut in_flight: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut done = 0u64;
    for (partition, mut files) in by_partition {
        files.sort_by_key(|f| (f.first_offset, f.last_offset));
        let mut next = i64::MIN;
        for f in files {
            let path = f.path();
            let data = store.get(&Path::from(path.as_str())).await?.bytes().await?;
            let records = tokio::task::spawn_blocking({
                let path = path.clone();
                move || onepipe_archive::raw::decode(&path, data)
            })
            .await
            .map_err(|e| Error::Decode {
                path: path.clone(),
                reason: e.to_string(),
            })??;
            summary.files += 1;
            for r in records {
                if r.partition != partition || r.offset != r.offset.max(f.first_offset) {
                    return Err(Error::BadRawFile {
                        path,
                        reason: format!("holds partition {} offset {}", r.partition, r.offset),
                    });
                }
                if r.offset < next {
                    summary.duplicates_skipped += 1;
                    continue;
                }
                next = r.offset + 1;
                if !opts.wants(r.offset, r.timestamp) {
                    continue;
                }
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for (key, value) in &r.headers {
                    headers = headers.insert(Header {
                        key,
                        value: value.as_deref(),
                    });
                }
                let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&opts.to_topic)
                    .partition(partition)
                    .headers(headers);
                if let Some(k) = &r.key {
                    record = record.key(k.as_slice());
                }
                if let Some(v) = &r.value {
                    record = record.payload(v.as_slice());
                }
                if r.timestamp >= 0 {
                    record = record.timestamp(r.timestamp);
                }
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            in_flight.push_back(delivery);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            match in_flight.pop_front() {
                                Some(d) => {
                                    delivered(d).await?;
                                    done += 1;
                                    progress(done, total);
                                }
                                None => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                        Err((e, _)) => return Err(e.into()),
                    }
                }
                summary.records += 1;
                while in_flight.len() > IN_FLIGHT {
                    if let Some(d) = in_flight.pop_front() {
                        delivered(d).await?;
                        done += 1;
                        if done.is_multiple_of(1000) {
                            progress(done, total);
                        }
                    }
                }
            }
        }
    }
    while let Some(d) = in_flight.pop_front() {
        delivered(d).await?;
        done += 1;
        if done.is_multiple_of(1000) {
            progress(done, total);
        }
    }
    progress(done, done.max(total));
    Ok(summary)
}

async fn delivered(d: DeliveryFuture) -> Result<()> {
    match d.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.into()),
        Err(_) => Err(Error::Dropped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn selects_files_by_partition_offsets_and_hours() {
        let f = RawFile {
            topic: "t".into(),
            partition: 1,
            date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            hour: 7,
            first_offset: 100,
            last_offset: 199,
        };
        let hour_start = 1_795_503_600_000; // 2026-11-24T07:00:00Z
        let o = |p: Option<i32>, fo, to, ft, tt| ReplayOptions {
            partition: p,
            from_offset: fo,
            to_offset: to,
            from_time: ft,
            to_time: tt,
            ..Default::default()
        };
        assert!(o(None, None, None, None, None).wants_file(&f));
        assert!(!o(Some(0), None, None, None, None).wants_file(&f));
        assert!(o(None, Some(199), None, None, None).wants_file(&f));
        assert!(!o(None, Some(200), None, None, None).wants_file(&f));
        assert!(!o(None, None, Some(99), None, None).wants_file(&f));
        assert!(o(None, None, None, Some(hour_start + 3_599_999), None).wants_file(&f));
        assert!(!o(None, None, None, Some(hour_start + 3_600_000), None).wants_file(&f));
        assert!(!o(None, None, None, None, Some(hour_start)).wants_file(&f));
        assert!(o(None, None, None, None, Some(hour_start + 1)).wants_file(&f));
        let w = o(None, Some(5), Some(6), Some(1000), Some(2000));
        assert!(w.wants(5, 1000) && w.wants(6, 1999));
        assert!(!w.wants(4, 1500) && !w.wants(7, 1500) && !w.wants(5, 2000) && !w.wants(5, 999));
    }
}
