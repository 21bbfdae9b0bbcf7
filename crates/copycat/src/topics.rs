//! Which topics to archive: the registry's list (kept current by its watch stream) or
//! the Kafka topics matching `--topics`. Either way the result is a channel carrying the
//! whole current set; the consumer subscribes again when it changes.

use std::collections::BTreeSet;
use std::time::Duration;

use onepipe_client::SchemaRegistry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use regex::Regex;
use tokio::sync::watch;

use crate::Result;
use crate::config::Config;
use crate::health::Health;
use std::sync::Arc;

pub type TopicSet = BTreeSet<String>;

/// How long the watch stream must be quiet before a changed set is announced, so a
/// burst of events (the replay of the change log at start) gives one resubscription.
const SETTLE: Duration = Duration::from_millis(300);

/// Starts following the topic set; `None` until the first set is known.
/// `health` learns whether the source answers.
pub fn follow(config: &Config, health: Arc<Health>) -> Result<watch::Receiver<Option<TopicSet>>> {
    let (tx, rx) = watch::channel(None);
    match &config.topics {
        Some(pattern) => {
            let re = Regex::new(&format!("^(?:{pattern})$"))?;
            let mut client = ClientConfig::new();
            client.set("bootstrap.servers", &config.kafka_bootstrap);
            config.kafka.apply(&mut client);
            let metadata: BaseConsumer = client.create()?;
            tokio::spawn(follow_kafka(metadata, re, config.topic_refresh, tx, health));
        }
        None => {
            let registry = config.registry.connect(false)?;
            tokio::spawn(follow_registry(registry, tx, health));
        }
    }
    Ok(rx)
}

/// Whether a Kafka topic is archived under `--topics`.
pub fn matches(re: &Regex, topic: &str) -> bool {
    !topic.starts_with("__") && re.is_match(topic)
}

async fn follow_kafka(
    metadata: BaseConsumer,
    re: Regex,
    every: Duration,
    tx: watch::Sender<Option<TopicSet>>,
    health: Arc<Health>,
) {
    let metadata = std::sync::Arc::new(metadata);
    loop {
        let m = metadata.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            m.fetch_metadata(None, Duration::from_secs(10)).map(|md| {
                md.topics()
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match fetched {
            Ok(Ok(names)) => {
                health.topics_known();
                let set: TopicSet = names.into_iter().filter(|t| matches(&re, t)).collect();
                tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&set);
                    if changed {
                        tracing::info!(topics = ?set, "topics to archive");
                        *cur = Some(set);
                    }
                    changed
                });
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "listing kafka topics failed");
                health.topics_failed(format!("listing Kafka's topics failed: {e}"));
            }
            Err(e) => tracing::warn!(error = %e, "listing kafka topics failed"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

async fn follow_registry(
    registry: SchemaRegistry,
    tx: watch::Sender<Option<TopicSet>>,
    health: Arc<Health>,
) {
    let mut after_seq = 0;
    let mut topics = TopicSet::new();
    let mut backoff = Duration::from_millis(200);
    while !tx.is_closed() {
        match watch_once(&registry, &mut after_seq, &mut topics, &tx, &health).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(registry = registry.url(), error = %e, "watching the registry's topics failed, retrying");
                health.topics_failed(format!(
                    "watching the topics of the registry at {} failed: {e}",
                    registry.url()
                ));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Follows one watch stream until it ends; every event moves `after_seq` on, so a new
/// stream continues where this one stopped.
async fn watch_once(
    registry: &SchemaRegistry,
    after_seq: &mut i64,
    topics: &mut TopicSet,
    tx: &watch::Sender<Option<TopicSet>>,
    health: &Health,
) -> Result<()> {
    let mut stream = registry.watch_topics(*after_seq).await?;
    let mut dirty = tx.borrow().is_none();
    if !dirty {
        health.topics_known();
    }
    loop {
        match tokio::time::timeout(SETTLE, stream.next()).await {
            Ok(Ok(Some(event))) => {
                *after_seq = event.seq;
                if event.present {
                    dirty |= topics.insert(event.topic);
                } else {
                    dirty |= topics.remove(&event.topic);
                }
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_quiet) => {
                if dirty {
                    tracing::info!(topics = ?topics, "topics to archive");
                    let _ = tx.send(Some(topics.clone()));
                    dirty = false;
                    health.topics_known();
                }
                if tx.is_closed() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matches_whole_names_and_never_internal_topics() {
        let re = Regex::new("^(?:orders|page_.*)$").unwrap();
        assert!(matches(&re, "orders"));
        assert!(matches(&re, "page_views"));
        assert!(!matches(&re, "orders_v2"));
        assert!(!matches(&re, "my_orders"));
        let all = Regex::new("^(?:.*)$").unwrap();
        assert!(!matches(&all, "__consumer_offsets"));
    }
}
