//! The consumer: one thread polls the group's partitions, gathers batches and applies
//! them, one transaction per partition and batch.
//!
//! Where a partition starts: on assignment the rebalance callback reads the offsets the
//! group stored with its rows and assigns each partition there (from the beginning when
//! none is stored), never Kafka's committed offsets, which are only written afterwards
//! so that lag tools see the group. A batch moves the stored offset from where this sink
//! read it: a replica that lost the partition in a rebalance and still applies a batch
//! finds the offset moved by the new owner and applies nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use apache_avro::Schema as Avro;
use onepipe_archive::decode::{Reader, target_schema};
use onepipe_archive::raw::RawRecord;
use onepipe_client::SchemaRegistry;
use onepipe_core::admin::Metrics;
use onepipe_core::wire;
use onepipe_tables::names::{column_name, sql_name};
use onepipe_tables::types::{self, Kind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;

use crate::Config;
use crate::batch::{self, Shape};
use crate::db::{Applied, Db};
use crate::error::{Error, Result};
use crate::metrics as m;
use crate::sql::{Table, table_columns};

type Key = (String, i32);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One allowed dataset: its table and how its records become rows.
struct Dataset {
    table: Table,
    shape: Arc<Shape>,
    /// Schema ids of records already seen (so a new one makes the sink look for a newer
    /// schema once, not per record).
    seen: HashSet<u32>,
    stopped: Option<String>,
}

/// What the rebalance callback and the consuming thread share.
struct Shared {
    db: Arc<Db>,
    group: String,
    handle: Handle,
    metrics: Metrics,
    /// The stored next offset of each assigned partition as this sink last read or
    /// wrote it (`None`: nothing stored yet).
    positions: Mutex<HashMap<Key, Option<i64>>>,
    /// Partitions revoked since the consuming thread last looked.
    revoked: Mutex<Vec<Key>>,
    /// Topics whose partitions stay paused (stopped datasets).
    paused: Mutex<BTreeSet<String>>,
    /// Why the sink cannot go on (set by the callback).
    fatal: Mutex<Option<String>>,
    assigned: AtomicBool,
    /// The newest timestamp applied per partition, for the lag in seconds.
    applied_at: Mutex<HashMap<Key, i64>>,
}

struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let positions = lock(&self.shared.positions);
        let applied = lock(&self.shared.applied_at);
        let now = chrono::Utc::now().timestamp_millis();
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                let key = (topic.clone(), *p);
                let Some(next) = positions.get(&key) else {
                    continue;
                };
                let end = if s.ls_offset >= 0 {
                    s.ls_offset
                } else {
                    s.hi_offset
                };
                if end < 0 {
                    continue;
                }
                let lag = (end - next.unwrap_or(s.lo_offset.max(0))).max(0);
                let ps = p.to_string();
                let labels = [("topic", topic.as_str()), ("partition", ps.as_str())];
                self.shared
                    .metrics
                    .set(m::LAG_RECORDS, m::LAG_RECORDS_HELP, &labels, lag as f64);
                let seconds = match applied.get(&key) {
                    Some(ts) if lag > 0 => ((now - ts).max(0) as f64) / 1000.0,
                    _ => 0.0,
                };
                self.shared
                    .metrics
                    .set(m::LAG_SECONDS, m::LAG_SECONDS_HELP, &labels, seconds);
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assignment = match self.shared.assignment(tpl) {
                    Ok(a) => a,
                    Err(e) => {
                        *lock(&self.shared.fatal) =
                            Some(format!("reading the stored offsets on assignment: {e}"));
                        return;
                    }
                };
                if let Err(e) = consumer.assign(&assignment) {
                    *lock(&self.shared.fatal) = Some(format!("assigning partitions: {e}"));
                    return;
                }
                self.shared.assigned.store(true, Ordering::SeqCst);
                let paused = lock(&self.shared.paused).clone();
                let mut pause = TopicPartitionList::new();
                for e in assignment.elements() {
                    if paused.contains(e.topic()) {
                        pause.add_partition(e.topic(), e.partition());
                    }
                }
                if pause.count() > 0 {
                    let _ = consumer.pause(&pause);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let keys: Vec<Key> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, "partitions revoked");
                {
                    let mut positions = lock(&self.shared.positions);
                    for k in &keys {
                        positions.remove(k);
                    }
                }
                lock(&self.shared.revoked).extend(keys);
                self.shared.assigned.store(false, Ordering::SeqCst);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                let keys: Vec<Key> = lock(&self.shared.positions)
                    .drain()
                    .map(|(k, _)| k)
                    .collect();
                lock(&self.shared.revoked).extend(keys);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Shared {
    /// The assignment with each partition at its stored offset (runs in the rebalance
    /// callback, on the consuming thread, which is not an async worker).
    fn assignment(&self, tpl: &TopicPartitionList) -> Result<TopicPartitionList> {
        let topics: BTreeSet<String> = tpl
            .elements()
            .iter()
            .map(|e| e.topic().to_string())
            .collect();
        let mut stored: HashMap<String, HashMap<i32, i64>> = HashMap::new();
        for topic in topics {
            let offsets = self.handle.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    self.db.stored_offsets(&self.group, &topic),
                )
                .await
            });
            let offsets = match offsets {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Error::Config(
                        "the database did not answer within 60 s".to_string(),
                    ));
                }
            };
            stored.insert(topic, offsets);
        }
        let mut out = TopicPartitionList::new();
        let mut positions = lock(&self.positions);
        for e in tpl.elements() {
            let (topic, partition) = (e.topic().to_string(), e.partition());
            let next = stored.get(&topic).and_then(|s| s.get(&partition)).copied();
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            out.add_partition_offset(&topic, partition, offset)?;
            tracing::info!(topic, partition, stored = ?next, "partition assigned");
            positions.insert((topic, partition), next);
        }
        Ok(out)
    }
}

/// The sink: datasets, database, Kafka clients.
pub struct Sink {
    config: Config,
    registry: SchemaRegistry,
    shared: Arc<Shared>,
    datasets: HashMap<String, Dataset>,
    producer: FutureProducer,
}

impl Sink {
    /// Checks the allowlist against the registry, connects to the database, creates or
    /// evolves every table and the dead-letter topics.
    pub async fn connect(config: &Config, metrics: Metrics) -> Result<Sink> {
        let mut topics: Vec<String> = Vec::new();
        for d in &config.datasets {
            let d = d.trim();
            if d.is_empty() {
                return Err(Error::Config("--datasets has an empty name".to_string()));
            }
            if !topics.iter().any(|t| t == d) {
                topics.push(d.to_string());
            }
        }
        if config.batch_max_records == 0 {
            return Err(Error::Config(
                "--batch-max-records must be at least 1".into(),
            ));
        }
        let registry = config.registry.connect(false)?;
        let db = Arc::new(Db::connect(&config.database, config.schema.as_deref()).await?);
        db.prepare().await?;
        let mut datasets = HashMap::new();
        for topic in &topics {
            let reader = match Reader::for_topic(&registry, topic).await {
                Ok(r) => r,
                Err(onepipe_archive::Error::Registry(onepipe_client::Error::UnknownTopic(_))) => {
                    return Err(Error::Config(format!(
                        "dataset {topic:?} in --datasets is not a topic the registry knows: \
                         check the spelling (the allowlist names topics exactly)"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let dataset = dataset(&db, reader, &HashMap::new())?;
            db.ensure_table(
                topic,
                dataset.shape.reader.schema_id,
                &dataset.table,
                &dataset.shape.columns,
            )
            .await?;
            datasets.insert(topic.clone(), dataset);
        }
        let mut producer_config = onepipe_client::kafka::producer_config(&config.kafka_bootstrap);
        config.kafka.apply(&mut producer_config);
        let producer: FutureProducer = producer_config.create()?;
        create_dead_letter_topics(config, &topics).await?;
        let shared = Arc::new(Shared {
            db,
            group: config.group_id.clone(),
            handle: Handle::current(),
            metrics,
            positions: Mutex::new(HashMap::new()),
            revoked: Mutex::new(Vec::new()),
            paused: Mutex::new(BTreeSet::new()),
            fatal: Mutex::new(None),
            assigned: AtomicBool::new(false),
            applied_at: Mutex::new(HashMap::new()),
        });
        Ok(Sink {
            config: config.clone(),
            registry,
            shared,
            datasets,
            producer,
        })
    }

    /// Why `/readyz` fails, if it does.
    pub fn readiness(
        &self,
    ) -> impl Fn() -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send>,
    > + Send
    + Sync
    + 'static {
        let shared = self.shared.clone();
        move || {
            let shared = shared.clone();
            Box::pin(async move {
                if let Some(why) = lock(&shared.fatal).clone() {
                    return Err(why);
                }
                let stopped = lock(&shared.paused).clone();
                if !stopped.is_empty() {
                    return Err(format!("datasets stopped: {stopped:?}"));
                }
                shared.db.ping().await.map_err(|e| e.to_string())
            })
        }
    }

    /// Consumes until `stop` is set; applies what it holds before returning. Blocks:
    /// call it on a thread of its own (`spawn_blocking`).
    pub fn run(mut self, stop: Arc<AtomicBool>) -> Result<()> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.config.kafka_bootstrap)
            .set("group.id", &self.config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            // The callback assigns the stored offsets itself (eager protocols only).
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("statistics.interval.ms", "5000")
            .set("fetch.wait.max.ms", "50")
            .set("topic.metadata.refresh.interval.ms", "30000");
        self.config.kafka.apply(&mut client);
        let consumer: BaseConsumer<Ctx> = client.create_with_context(Ctx {
            shared: self.shared.clone(),
        })?;
        let names: Vec<&str> = self.config.datasets.iter().map(|s| s.trim()).collect();
        consumer.subscribe(&names)?;
        let max_wait = self.config.batch_max_wait;
        let max_records = self.config.batch_max_records;
        let mut pending: BTreeMap<Key, Vec<RawRecord>> = BTreeMap::new();
        let mut count = 0usize;
        let mut first_at: Option<Instant> = None;
        loop {
            if let Some(why) = lock(&self.shared.fatal).clone() {
                return Err(Error::Config(why));
            }
            let stopping = stop.load(Ordering::SeqCst);
            if !stopping {
                let timeout = match first_at {
                    None => Duration::from_millis(100),
                    Some(t) => max_wait.saturating_sub(t.elapsed()),
                };
                match consumer.poll(timeout) {
                    Some(Ok(msg)) => {
                        let key = (msg.topic().to_string(), msg.partition());
                        let position = lock(&self.shared.positions).get(&key).copied();
                        // Not assigned (any more), or already applied: skipped.
                        if let Some(next) = position
                            && next.is_none_or(|n| msg.offset() >= n)
                        {
                            pending.entry(key).or_default().push(RawRecord {
                                partition: msg.partition(),
                                offset: msg.offset(),
                                timestamp: msg.timestamp().to_millis().unwrap_or(-1),
                                key: msg.key().map(<[u8]>::to_vec),
                                value: msg.payload().map(<[u8]>::to_vec),
                                headers: Vec::new(),
                            });
                            count += 1;
                            first_at.get_or_insert_with(Instant::now);
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "kafka"),
                    None => {}
                }
            }
            let revoked: Vec<Key> = std::mem::take(&mut *lock(&self.shared.revoked));
            for k in revoked {
                if let Some(dropped) = pending.remove(&k) {
                    count -= dropped.len();
                }
            }
            let due = first_at.is_some_and(|t| t.elapsed() >= max_wait);
            if count > 0 && (count >= max_records || due || stopping) {
                let batch = std::mem::take(&mut pending);
                count = 0;
                first_at = None;
                self.flush(&consumer, batch)?;
            } else if count == 0 {
                first_at = None;
            }
            if stopping {
                break;
            }
        }
        consumer.unsubscribe();
        Ok(())
    }

    /// Applies every partition's batch.
    fn flush(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        batch: BTreeMap<Key, Vec<RawRecord>>,
    ) -> Result<()> {
        let mut commit = TopicPartitionList::new();
        for ((topic, partition), records) in batch {
            if lock(&self.shared.paused).contains(&topic) {
                continue;
            }
            // Revoked while the batch waited: the next owner reads it again.
            let Some(expected) = lock(&self.shared.positions)
                .get(&(topic.clone(), partition))
                .copied()
            else {
                continue;
            };
            if let Err(e) = self.refresh_schemas(&topic, &records) {
                match e {
                    Error::TypeChange(_) => {
                        self.stop_dataset(consumer, &topic, e.to_string());
                        continue;
                    }
                    other => return Err(other),
                }
            }
            let Some(dataset) = self.datasets.get(&topic) else {
                continue;
            };
            let last = records.last().map_or(-1, |r| r.offset);
            let newest_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
            let shape = dataset.shape.clone();
            let table = dataset.table.clone();
            let prepared = batch::prepare(&shape, records)?;
            self.send_dead_letters(&topic, &prepared.dead)?;
            let next = last + 1;
            let applied = self.with_retries(&topic, partition, || {
                self.shared.db.apply(
                    &table,
                    &shape.columns,
                    &self.shared.group,
                    partition,
                    expected,
                    next,
                    &prepared,
                    &topic,
                )
            })?;
            let labels = [("dataset", topic.as_str())];
            match applied {
                Applied::Done { changed, deleted } => {
                    lock(&self.shared.positions).insert((topic.clone(), partition), Some(next));
                    lock(&self.shared.applied_at).insert((topic.clone(), partition), newest_ts);
                    let metrics = &self.shared.metrics;
                    metrics.inc(
                        m::RECORDS,
                        m::RECORDS_HELP,
                        &labels,
                        prepared.records as u64,
                    );
                    metrics.inc(m::ROWS_CHANGED, m::ROWS_CHANGED_HELP, &labels, changed);
                    metrics.inc(m::DELETES, m::DELETES_HELP, &labels, deleted);
                    metrics.inc(m::BATCHES, m::BATCHES_HELP, &labels, 1);
                    if !prepared.dead.is_empty() {
                        metrics.inc(
                            m::DEAD_LETTERS,
                            m::DEAD_LETTERS_HELP,
                            &labels,
                            prepared.dead.len() as u64,
                        );
                    }
                    let _ = commit.add_partition_offset(&topic, partition, Offset::Offset(next));
                }
                Applied::Moved => {
                    self.shared.metrics.inc(
                        m::OFFSET_CONFLICTS,
                        m::OFFSET_CONFLICTS_HELP,
                        &labels,
                        1,
                    );
                    let stored = self
                        .shared
                        .handle
                        .block_on(self.shared.db.stored_offsets(&self.shared.group, &topic))?;
                    let now = stored.get(&partition).copied();
                    tracing::warn!(topic, partition, expected = ?expected, stored = ?now,
                        "another sink moved this partition's stored offset (a rebalance): \
                         nothing applied, reading again from the stored offset");
                    lock(&self.shared.positions).insert((topic.clone(), partition), now);
                    if let Some(n) = now
                        && let Err(e) = consumer.seek(
                            &topic,
                            partition,
                            Offset::Offset(n),
                            Duration::from_secs(10),
                        )
                    {
                        tracing::warn!(topic, partition, error = %e, "seek failed");
                    }
                }
            }
        }
        if commit.count() > 0 {
            // For lag tools only: the stored offsets in the database are the truth.
            if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
                tracing::debug!(error = %e, "committing offsets to Kafka failed");
            }
        }
        Ok(())
    }

    fn with_retries<F, Fut>(&self, topic: &str, partition: i32, f: F) -> Result<Applied>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Applied>>,
    {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match self.shared.handle.block_on(f()) {
                Ok(a) => return Ok(a),
                Err(e) if attempt < 6 => {
                    tracing::warn!(topic, partition, attempt, error = %e, "applying a batch failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stop_dataset(&mut self, consumer: &BaseConsumer<Ctx>, topic: &str, why: String) {
        tracing::error!(dataset = topic, error = %why, "dataset stopped");
        self.shared.metrics.set(
            m::DATASET_STOPPED,
            m::DATASET_STOPPED_HELP,
            &[("dataset", topic)],
            1.0,
        );
        lock(&self.shared.paused).insert(topic.to_string());
        if let Some(d) = self.datasets.get_mut(topic) {
            d.stopped = Some(why);
        }
        let mut pause = TopicPartitionList::new();
        for (t, p) in lock(&self.shared.positions).keys() {
            if t == topic {
                pause.add_partition(t, *p);
            }
        }
        if let Err(e) = consumer.pause(&pause) {
            tracing::warn!(error = %e, "pausing a stopped dataset's partitions failed");
        }
    }

    /// Fetches the writer schemas the records name; a schema id never seen makes the
    /// sink read the topic's newest schema and evolve the table.
    fn refresh_schemas(&mut self, topic: &str, records: &[RawRecord]) -> Result<()> {
        let Some(dataset) = self.datasets.get(topic) else {
            return Ok(());
        };
        let ids: BTreeSet<u32> = records
            .iter()
            .filter_map(|r| wire::unframe(r.value.as_deref()?).ok())
            .map(|(id, _)| id)
            .filter(|id| !dataset.seen.contains(id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut writers = dataset.shape.writers.clone();
        for id in &ids {
            match self.shared.handle.block_on(self.registry.schema_by_id(*id)) {
                Ok(s) => {
                    writers.insert(*id, s);
                }
                // Records of an id the registry does not know go to the dead letters.
                Err(onepipe_client::Error::UnknownSchemaId(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let newer = ids
            .iter()
            .any(|id| *id != dataset.shape.reader.schema_id && writers.contains_key(id));
        let mut reader = dataset.shape.reader.clone();
        if newer {
            self.registry.invalidate(topic);
            let fresh = self
                .shared
                .handle
                .block_on(Reader::for_topic(&self.registry, topic))?;
            if fresh.schema_id != reader.schema_id {
                tracing::info!(dataset = topic, schema_id = fresh.schema_id, "newer schema");
                reader = Arc::new(fresh);
            }
        }
        let mut next = dataset_from(&self.shared.db, reader, &writers)?;
        if next.shape.reader.schema_id != dataset.shape.reader.schema_id {
            self.shared.handle.block_on(self.shared.db.ensure_table(
                topic,
                next.shape.reader.schema_id,
                &next.table,
                &next.shape.columns,
            ))?;
        }
        next.seen = dataset.seen.clone();
        next.seen.extend(ids);
        self.datasets.insert(topic.to_string(), next);
        Ok(())
    }

    fn send_dead_letters(&self, topic: &str, dead: &[batch::DeadLetter]) -> Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        let dlq = dead_letter_topic(topic);
        self.shared.handle.block_on(async {
            let mut sends = Vec::new();
            for d in dead {
                tracing::warn!(topic, partition = d.record.partition, offset = d.record.offset,
                    reason = %d.reason, "dead letter");
                let partition = d.record.partition.to_string();
                let offset = d.record.offset.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "onepipe.reason",
                        value: Some(d.reason.as_str()),
                    })
                    .insert(Header {
                        key: "onepipe.topic",
                        value: Some(topic),
                    })
                    .insert(Header {
                        key: "onepipe.partition",
                        value: Some(partition.as_str()),
                    })
                    .insert(Header {
                        key: "onepipe.offset",
                        value: Some(offset.as_str()),
                    });
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&dlq).headers(headers);
                if let Some(k) = &d.record.key {
                    record = record.key(k.as_slice());
                }
                if let Some(v) = &d.record.value {
                    record = record.payload(v.as_slice());
                }
                if d.record.timestamp >= 0 {
                    record = record.timestamp(d.record.timestamp);
                }
                sends.push(self.producer.send(record, Duration::from_secs(30)));
            }
            for s in sends {
                s.await.map_err(|(e, _)| Error::Kafka(e))?;
            }
            Ok::<_, Error>(())
        })
    }
}

/// The dead-letter topic of a dataset.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

async fn create_dead_letter_topics(config: &Config, topics: &[String]) -> Result<()> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka_bootstrap);
    config.kafka.apply(&mut client);
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let names: Vec<String> = topics.iter().map(|t| dead_letter_topic(t)).collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(-1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Config(format!(
                    "creating the dead-letter topic {name}: {code}"
                )));
            }
        }
    }
    Ok(())
}

fn dataset(db: &Db, reader: Reader, writers: &HashMap<u32, Arc<Avro>>) -> Result<Dataset> {
    dataset_from(db, Arc::new(reader), writers)
}

/// A dataset's table and shape for a reader schema.
fn dataset_from(
    db: &Db,
    reader: Arc<Reader>,
    writers: &HashMap<u32, Arc<Avro>>,
) -> Result<Dataset> {
    let topic = reader.meta.topic.clone();
    let bad = |reason: String| Error::Dataset {
        dataset: topic.clone(),
        reason,
    };
    let columns = types::columns(&reader.schema).map_err(|e| {
        bad(format!(
            "the schema (id {}) has no table form: {e}",
            reader.schema_id
        ))
    })?;
    let _ = target_schema(&reader.mapping)?;
    let mut key = Vec::new();
    let mut key_kinds: Vec<Kind> = Vec::new();
    for path in &reader.meta.unique_key {
        if path.contains('.') {
            return Err(bad(format!(
                "unique key field {path:?} is inside a record; online tables need top-level \
                 unique key fields (their primary key)"
            )));
        }
        let name = column_name(path);
        let column = columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| bad(format!("unique key field {path:?} is not in the schema")))?;
        key.push(name);
        key_kinds.push(column.kind.clone());
    }
    let mut writers = writers.clone();
    writers.insert(reader.schema_id, reader.schema.clone());
    let table = db.table(&sql_name(&topic), key);
    Ok(Dataset {
        table,
        shape: Arc::new(Shape {
            reader,
            writers,
            columns: table_columns(&columns),
            key_kinds,
            dialect: db.dialect(),
        }),
        seen: HashSet::new(),
        stopped: None,
    })
}
