//! Consumer lag per group and partition, with a status in the spirit of Burrow, from two
//! samples taken a window apart:
//!
//! - OK: no lag, or the committed offsets moved and the lag did not grow;
//! - WARN: the committed offsets moved but the lag grew over the window;
//! - STALLED: members are connected but no committed offset moved while behind;
//! - STOPPED: no member is connected while behind.

use std::time::Duration;

use onepipe_client::SchemaRegistry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Stalled,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Stalled => "STALLED",
            Status::Stopped => "STOPPED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: i64,
    pub lag: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub status: Status,
    pub members: usize,
    pub total_lag: i64,
    pub partitions: Vec<PartitionLag>,
}

/// Where and how to sample consumer lag.
#[derive(Debug, Clone)]
pub struct LagOptions {
    pub bootstrap: String,
    /// Extra librdkafka properties (TLS, SASL), as `--kafka-option` gives them.
    pub client_options: Vec<(String, String)>,
    /// The consumer groups reported.
    pub groups: Vec<String>,
    /// Time between the two samples a status is judged on.
    pub window: Duration,
}

/// The lag and status of each group on every topic the registry lists, from two samples
/// `window` apart.
pub async fn lags(options: &LagOptions, registry: &SchemaRegistry) -> Result<Vec<GroupLag>> {
    let topics = registry.topic_names().await?;
    let first = sample_all(options, &topics).await?;
    tokio::time::sleep(options.window).await;
    let last = sample_all(options, &topics).await?;
    Ok(options
        .groups
        .iter()
        .cloned()
        .zip(first.into_iter().zip(last))
        .map(|(group, ((a, _), (b, members)))| GroupLag {
            status: status(&a, &b, members),
            total_lag: b.iter().map(|p| p.lag).sum(),
            group,
            members,
            partitions: b,
        })
        .collect())
}

/// One [`sample`] of every group, on a blocking thread.
async fn sample_all(
    options: &LagOptions,
    topics: &[String],
) -> Result<Vec<(Vec<PartitionLag>, usize)>> {
    let (options, topics) = (options.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        options
            .groups
            .iter()
            .map(|g| sample(&options.bootstrap, g, &topics, &options.client_options))
            .collect()
    })
    .await?
}

/// Committed and end offsets of `group` on every partition of `topics` it committed to,
/// and how many members the group has. Blocking.
pub fn sample(
    bootstrap: &str,
    group: &str,
    topics: &[String],
    options: &[(String, String)],
) -> Result<(Vec<PartitionLag>, usize)> {
    let mut config = ClientConfig::new();
    for (k, v) in options {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(Error::kafka("kafka"))?;
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), timeout)
            .map_err(Error::kafka(format!("kafka metadata of {t}")))?;
        for topic in md.topics() {
            for p in topic.partitions() {
                tpl.add_partition(t, p.id());
            }
        }
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .map_err(Error::kafka(format!(
            "kafka: committed offsets of group {group}"
        )))?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let Offset::Offset(c) = e.offset() else {
            continue;
        };
        let (_, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), timeout)
            .map_err(Error::kafka(format!(
                "kafka: end offset of {}/{}",
                e.topic(),
                e.partition()
            )))?;
        out.push(PartitionLag {
            topic: e.topic().to_string(),
            partition: e.partition(),
            committed: c,
            end: high,
            lag: (high - c).max(0),
        });
    }
    let members = consumer
        .fetch_group_list(Some(group), timeout)
        .map(|l| l.groups().first().map_or(0, |g| g.members().len()))
        .unwrap_or(0);
    Ok((out, members))
}

/// The status from a sample at the start and one at the end of the window.
pub fn status(first: &[PartitionLag], last: &[PartitionLag], members: usize) -> Status {
    let total: i64 = last.iter().map(|p| p.lag).sum();
    if total == 0 {
        return Status::Ok;
    }
    if members == 0 {
        return Status::Stopped;
    }
    let moved = last.iter().any(|p| {
        first
            .iter()
            .find(|q| q.topic == p.topic && q.partition == p.partition)
            .is_none_or(|q| q.committed != p.committed)
    });
    if !moved {
        return Status::Stalled;
    }
    let before: i64 = first.iter().map(|p| p.lag).sum();
    if total > before {
        Status::Warn
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(committed: i64, end: i64) -> PartitionLag {
        PartitionLag {
            topic: "t".into(),
            partition: 0,
            committed,
            end,
            lag: end - committed,
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(status(&[p(5, 9)], &[p(9, 9)], 1), Status::Ok);
        assert_eq!(status(&[p(5, 9)], &[p(5, 12)], 0), Status::Stopped);
        assert_eq!(status(&[p(5, 9)], &[p(5, 12)], 1), Status::Stalled);
        assert_eq!(status(&[p(5, 9)], &[p(7, 14)], 1), Status::Warn);
        assert_eq!(status(&[p(5, 9)], &[p(8, 10)], 1), Status::Ok);
    }
}
