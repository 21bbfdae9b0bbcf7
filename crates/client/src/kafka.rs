//! rdkafka wrappers that speak onepipe records: a [`Producer`] that only puts valid,
//! acknowledged records on a topic, and a [`Consumer`] that hands out decoded records
//! and commits only what the caller marked done.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;

use crate::codec::{Decoded, Deserializer, Encoded, Serializer};
use crate::error::{Error, Result};

/// Where Kafka stored a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// One record to send: encoded value and key plus headers and an optional timestamp.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the epoch; Kafka's send time when absent.
    pub timestamp: Option<i64>,
}

impl From<Encoded> for Outgoing {
    fn from(e: Encoded) -> Self {
        Outgoing {
            key: e.key,
            value: e.value,
            ..Outgoing::default()
        }
    }
}

/// The Kafka settings the producer always uses: a record counts as sent once every
/// in-sync replica has it, and retries never duplicate or reorder.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4");
    c
}

/// A producer that validates records against the topic's schema before sending and
/// returns only after Kafka acknowledged them.
pub struct Producer {
    kafka: FutureProducer,
    serializer: Serializer,
}

impl Producer {
    /// A producer with [`producer_config`]; `extra` settings are applied on top.
    pub fn new(bootstrap: &str, serializer: Serializer, extra: &[(&str, &str)]) -> Result<Self> {
        let mut config = producer_config(bootstrap);
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Ok(Producer {
            kafka: config.create()?,
            serializer,
        })
    }

    pub fn serializer(&self) -> &Serializer {
        &self.serializer
    }

    /// Validates a plain-JSON record, sends it and waits for the acknowledgement.
    pub async fn send_json(&self, topic: &str, record: &Json) -> Result<Delivery> {
        let encoded = self.serializer.serialize_json(topic, record).await?;
        self.send(topic, encoded.into(), Duration::from_secs(30))
            .await
    }

    /// Sends an encoded record and waits for the acknowledgement, giving up when Kafka
    /// has not taken it within `timeout`.
    pub async fn send(&self, topic: &str, record: Outgoing, timeout: Duration) -> Result<Delivery> {
        let mut all = self.send_all(topic, vec![record], timeout).await;
        all.pop().unwrap_or(Err(Error::Kafka(KafkaError::Canceled)))
    }

    /// Sends records in order and waits for every acknowledgement. Records queue in the
    /// client until `timeout` (the producer's `message.timeout.ms` bounds how long an
    /// enqueued record may wait for the broker); one result per record, in order.
    pub async fn send_all(
        &self,
        topic: &str,
        records: Vec<Outgoing>,
        timeout: Duration,
    ) -> Vec<Result<Delivery>> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<Result<DeliveryFuture>> = Vec::with_capacity(records.len());
        for r in &records {
            pending.push(self.enqueue(topic, r, deadline).await);
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Err(e) => Err(e),
                Ok(future) => match future.await {
                    Ok(Ok(d)) => Ok(Delivery {
                        partition: d.partition,
                        offset: d.offset,
                    }),
                    Ok(Err((e, _))) => Err(Error::Kafka(e)),
                    Err(_) => Err(Error::Kafka(KafkaError::Canceled)),
                },
            });
        }
        out
    }

    async fn enqueue(
        &self,
        topic: &str,
        r: &Outgoing,
        deadline: Instant,
    ) -> Result<DeliveryFuture> {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = FutureRecord::to(topic)
            .key(&r.key)
            .payload(&r.value)
            .headers(headers);
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        loop {
            match self.kafka.send_result(record) {
                Ok(future) => return Ok(future),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(Error::Kafka(e)),
            }
        }
    }

    /// Waits until every queued record is acknowledged or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.kafka.flush(timeout)?;
        Ok(())
    }

    /// The underlying rdkafka producer (for metadata queries).
    pub fn kafka(&self) -> &FutureProducer {
        &self.kafka
    }
}

/// A consumed record with its position and decoded value.
#[derive(Debug)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the record has one.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The value resolved into the reader's schema, or why it could not be decoded
    /// (the caller decides whether to skip it; it is still marked done explicitly).
    pub value: Result<Decoded>,
}

/// Per (topic, partition): the offsets handed out and not yet committed, in order, with
/// whether each is marked done.
type Progress = HashMap<(String, i32), VecDeque<(i64, bool)>>;

/// A consumer-group member that decodes records and commits only what the caller
/// marked done: the committed offset of a partition never passes a record that was
/// handed out and not marked.
pub struct Consumer {
    kafka: StreamConsumer,
    deserializer: Deserializer,
    progress: Mutex<Progress>,
}

impl Consumer {
    /// Joins `group` on `bootstrap`; `extra` settings are applied on top of
    /// `enable.auto.commit=false` and `auto.offset.reset=earliest`.
    pub fn new(
        bootstrap: &str,
        group: &str,
        deserializer: Deserializer,
        extra: &[(&str, &str)],
    ) -> Result<Self> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        Ok(Consumer {
            kafka: c.create()?,
            deserializer,
            progress: Mutex::default(),
        })
    }

    pub fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.kafka.subscribe(topics)?;
        Ok(())
    }

    /// The next record (waits for one).
    pub async fn recv(&self) -> Result<Record> {
        let m = self.kafka.recv().await?;
        let topic = m.topic().to_string();
        let (partition, offset) = (m.partition(), m.offset());
        {
            let mut progress = self.lock();
            let queue = progress.entry((topic.clone(), partition)).or_default();
            // After a rebalance or seek the partition may start over: forget the old run.
            if queue.back().is_some_and(|(last, _)| *last >= offset) {
                queue.clear();
            }
            queue.push_back((offset, false));
        }
        let headers = match m.headers() {
            Some(h) => h
                .iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect(),
            None => Vec::new(),
        };
        let value = self
            .deserializer
            .deserialize(&topic, m.payload().unwrap_or_default())
            .await;
        Ok(Record {
            topic,
            partition,
            offset,
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            headers,
            value,
        })
    }

    /// Marks a record as processed; [`Consumer::commit`] may now move past it once every
    /// earlier record of its partition is marked too.
    pub fn mark_done(&self, record: &Record) {
        let mut progress = self.lock();
        if let Some(queue) = progress.get_mut(&(record.topic.clone(), record.partition))
            && let Some(entry) = queue.iter_mut().find(|(o, _)| *o == record.offset)
        {
            entry.1 = true;
        }
    }

    /// Commits, per partition, the position after the last record of the unbroken run
    /// of marked records; returns how many partitions moved.
    pub async fn commit(&self) -> Result<usize> {
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for ((topic, partition), queue) in self.lock().iter() {
            let done = queue.iter().take_while(|(_, done)| *done).last();
            if let Some(&(offset, _)) = done {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))?;
                moved.push(((topic.clone(), *partition), offset));
            }
        }
        if moved.is_empty() {
            return Ok(0);
        }
        self.kafka.commit(&tpl, CommitMode::Sync)?;
        // Forget what is committed only once the commit succeeded, so a failed one is retried.
        let mut progress = self.lock();
        for (key, last) in &moved {
            if let Some(queue) = progress.get_mut(key) {
                while queue.front().is_some_and(|(o, _)| o <= last) {
                    queue.pop_front();
                }
            }
        }
        Ok(moved.len())
    }

    /// The underlying rdkafka consumer.
    pub fn kafka(&self) -> &StreamConsumer {
        &self.kafka
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}
