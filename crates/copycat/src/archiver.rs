//! The archiving consumer.
//!
//! One thread polls a Kafka consumer (a `BaseConsumer`, so that rebalance callbacks run
//! on that thread and may wait for uploads) and appends each record to its partition's
//! open file ([`crate::buffer`]). Each finished file goes to that partition's upload
//! task, which encodes it, uploads it, writes the partition's checkpoint and only then
//! marks its offsets for commit. Files of one partition are uploaded in order; different
//! partitions in parallel.
//!
//! - Assignment: each partition resumes right after the last offset its raw files hold
//!   ([`onepipe_archive::checkpoint::recover`]), whatever the committed offset says, and writes
//!   ranges an earlier owner claimed but did not finish exactly as claimed.
//! - Upload: claim the file's range, upload, checkpoint, then mark for commit. A claim
//!   that conflicts means another instance owns the partition now: this one stops.
//! - Revocation: open files are dropped (the next owner reads those records again),
//!   files already finished are uploaded, then offsets are committed and the partitions
//!   given back. So a new owner always starts after everything that was uploaded.
//!   Uploads still running after `--revoke-timeout` (an object store outage) are
//!   abandoned, so the rebalance never outlasts `max.poll.interval.ms`: their ranges
//!   are claimed, and the next owner writes exactly those ranges.
//! - Memory: open files plus files being uploaded stay under `--max-buffer-bytes`: above
//!   it the largest open files are finished early, and if uploads lag behind, fetching
//!   pauses until they catch up.
//! - Shutdown: every open file is finished and uploaded, offsets are committed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::path::Path;
use onepipe_core::admin::Metrics;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Timestamp};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::buffer::{Limits, PartitionBuffer, Pushed, Sealed};
use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;
use crate::topics::{self, TopicSet};
use crate::upload::{upload, with_retries};
use crate::{Error, Result};
use futures::{FutureExt, TryFutureExt};
use onepipe_archive::checkpoint::{self, Checkpoint};

/// Tries of one upload or checkpoint write before copycat gives up (and exits non-zero
/// without committing, so nothing is lost). With [`crate::upload::ATTEMPT_TIMEOUT`] this
/// bounds an upload to about 4 minutes.
const UPLOAD_ATTEMPTS: u32 = 4;
/// How often idle partitions, commits and the memory cap are looked at.
const TICK: Duration = Duration::from_millis(200);

/// Archives until `shutdown` completes (then finishes, uploads and commits what it holds
/// and returns `Ok`) or until archiving cannot go on safely (`Err`).
pub async fn run(
    config: Config,
    store: Arc<dyn ObjectStore>,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let topics = topics::follow(&config, health.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    let shutdown_task = tokio::spawn(async move {
        shutdown.await;
        stopper.store(true, Ordering::SeqCst);
    });
    let shared = Arc::new(Shared {
        handle: Handle::current(),
        limits: Limits {
            max_records: config.max_file_records.max(1),
            max_bytes: config.max_file_bytes.max(1),
            max_span_ms: config.max_file_span.as_millis().min(i64::MAX as u128) as i64,
        },
        revoke_timeout: config.revoke_timeout,
        uploads: Arc::new(Uploads {
            store,
            metrics,
            health,
            multipart_threshold: config.multipart_threshold,
            buffered: AtomicUsize::new(0),
            done: Mutex::new(HashMap::new()),
            fatal: Mutex::new(None),
            owner: format!("copycat-{}", uuid::Uuid::new_v4().simple()),
        }),
        parts: Mutex::new(HashMap::new()),
    });
    let result = tokio::task::spawn_blocking(move || consume(&config, shared, topics, &stop))
        .await
        .map_err(|e| Error::Fatal(format!("the consumer thread failed: {e}")))?;
    shutdown_task.abort();
    result
}

type Key = (String, i32);

/// State shared by the consumer thread, its rebalance callback and the upload tasks.
struct Shared {
    handle: Handle,
    limits: Limits,
    /// How long a revoke waits for the revoked partitions' uploads.
    revoke_timeout: Duration,
    uploads: Arc<Uploads>,
    parts: Mutex<HashMap<String, HashMap<i32, Part>>>,
}

impl Part {
    /// Hands a finished file to the partition's upload task.
    fn upload(&self, s: Sealed) {
        hand_over(&self.uploads, &self.pending, s);
    }
}

fn hand_over(uploads: &mpsc::UnboundedSender<Sealed>, pending: &AtomicUsize, s: Sealed) {
    pending.fetch_add(s.bytes, Ordering::SeqCst);
    let _ = uploads.send(s);
}

struct Part {
    buffer: PartitionBuffer,
    uploads: mpsc::UnboundedSender<Sealed>,
    task: JoinHandle<()>,
    /// Bytes of files handed to `task` and not uploaded yet.
    pending: Arc<AtomicUsize>,
    /// The next offset when last looked at, and since when it has not moved (idle
    /// detection without reading the clock for every record).
    seen_next: Option<i64>,
    seen_since: Instant,
}

/// What upload tasks share.
struct Uploads {
    store: Arc<dyn ObjectStore>,
    metrics: Metrics,
    health: Arc<Health>,
    multipart_threshold: usize,
    /// Bytes of open files and of files not yet uploaded.
    buffered: AtomicUsize,
    /// Per partition: the offset after the last one uploaded, and whether it still has
    /// to be committed.
    done: Mutex<HashMap<Key, (i64, bool)>>,
    fatal: Mutex<Option<String>>,
    /// Names this run in claims.
    owner: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Uploads {
    fn fail(&self, why: String) {
        tracing::error!(error = %why, "archiving stopped");
        lock(&self.fatal).get_or_insert(why);
    }

    fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }

    /// Offsets uploaded but not committed yet, marking them committed.
    fn take_commits(&self, only: Option<&[Key]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), (next, pending)) in lock(&self.done).iter_mut() {
            if *pending && only.is_none_or(|keys| keys.iter().any(|(t, q)| t == topic && q == p)) {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*next));
                *pending = false;
            }
        }
        tpl
    }
}

/// Uploads a partition's files in order; stops for good after a failure.
async fn upload_task(
    uploads: Arc<Uploads>,
    mut files: mpsc::UnboundedReceiver<Sealed>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(sealed) = files.recv().await {
        if uploads.fatal().is_some() {
            return;
        }
        let path = sealed.file.path();
        if let Err(e) = archive_file(&uploads, sealed, &pending).await {
            uploads.fail(format!("archiving {path}: {e}"));
            return;
        }
    }
}

async fn archive_file(u: &Uploads, sealed: Sealed, pending: &AtomicUsize) -> Result<()> {
    use tracing::Instrument;
    // The upload continues the trace of the first traced record in the file (producers
    // put a W3C traceparent in the Kafka headers).
    let span = tracing::info_span!(
        "upload",
        path = %sealed.file.path(),
        records = sealed.records
    );
    if let Some(tp) = sealed.batch.traceparent() {
        onepipe_core::telemetry::set_parent(&span, tp);
    }
    archive_file_in_span(u, sealed, pending)
        .instrument(span)
        .await
}

/// Notes a failed try of a write to the object store for `/readyz`.
fn noted<T>(u: &Uploads, what: &str, r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        u.health.store_failed(format!("{what}: {e}"));
    }
    r
}

async fn archive_file_in_span(u: &Uploads, sealed: Sealed, pending: &AtomicUsize) -> Result<()> {
    let Sealed {
        file,
        batch,
        bytes,
        records,
    } = sealed;
    let path = file.path();
    let claim = checkpoint::Claim {
        topic: file.topic.clone(),
        partition: file.partition,
        first_offset: file.first_offset,
        last_offset: file.last_offset,
        owner: u.owner.clone(),
        file: Some(path.clone()),
    };
    let claimed = with_retries("claim", UPLOAD_ATTEMPTS, || {
        checkpoint::claim(u.store.as_ref(), &claim)
            .err_into()
            .map(|r| noted(u, "claim", r))
    })
    .await?;
    if let checkpoint::Claimed::Conflict(other) = claimed {
        return Err(Error::Fatal(format!(
            "offsets {}..={} are claimed as {}..={} by {}: another instance owns {} partition {} now",
            file.first_offset,
            file.last_offset,
            other.first_offset,
            other.last_offset,
            other.owner,
            file.topic,
            file.partition
        )));
    }
    let data = tokio::task::spawn_blocking(move || onepipe_archive::raw::encode(&batch.finish()?))
        .await
        .map_err(|e| Error::Fatal(format!("encoding failed: {e}")))??;
    let data = bytes::Bytes::from(data);
    let size = data.len();
    let started = Instant::now();
    let location = Path::from(path.as_str());
    let labels = [("topic", file.topic.as_str())];
    with_retries("upload", UPLOAD_ATTEMPTS, || {
        let data = data.clone();
        let location = &location;
        async move {
            let r = upload(u.store.as_ref(), location, data, u.multipart_threshold).await;
            let r = noted(u, "upload", r);
            if r.is_err() {
                u.metrics
                    .inc(m::UPLOAD_FAILURES, m::UPLOAD_FAILURES_HELP, &labels, 1);
            }
            r
        }
    })
    .await?;
    let checkpoint = Checkpoint {
        topic: file.topic.clone(),
        partition: file.partition,
        last_offset: file.last_offset,
        file: path.clone(),
        files_claimed: true,
    };
    with_retries("checkpoint", UPLOAD_ATTEMPTS, || {
        checkpoint::write(u.store.as_ref(), &checkpoint)
            .err_into()
            .map(|r| noted(u, "checkpoint", r))
    })
    .await?;
    let ms = started.elapsed().as_millis() as u64;
    u.metrics
        .inc(m::RECORDS, m::RECORDS_HELP, &labels, records as u64);
    u.metrics
        .inc(m::BYTES, m::BYTES_HELP, &labels, bytes as u64);
    u.metrics.inc(m::FILES, m::FILES_HELP, &labels, 1);
    u.metrics
        .inc(m::FILE_BYTES, m::FILE_BYTES_HELP, &labels, size as u64);
    u.metrics.inc(m::UPLOAD_MS, m::UPLOAD_MS_HELP, &labels, ms);
    u.metrics.set(
        m::UPLOAD_LAST_MS,
        m::UPLOAD_LAST_MS_HELP,
        &labels,
        ms as f64,
    );
    u.health.store_ok();
    // No await between these two: a revoke that abandons this task never counts the
    // bytes twice.
    u.buffered.fetch_sub(bytes, Ordering::SeqCst);
    pending.fetch_sub(bytes, Ordering::SeqCst);
    lock(&u.done).insert(
        (file.topic.clone(), file.partition),
        (file.last_offset + 1, true),
    );
    tracing::debug!(path, records, size, ms, "archived");
    Ok(())
}

/// The consumer's context: rebalances and statistics.
struct Ctx {
    shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        let u = &self.shared.uploads;
        let done = lock(&u.done);
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                if *p < 0 || !s.desired {
                    continue;
                }
                let end = if s.ls_offset >= 0 {
                    s.ls_offset
                } else {
                    s.hi_offset
                };
                let archived = done.get(&(topic.clone(), *p)).map_or(s.lo_offset, |d| d.0);
                if end < 0 || archived < 0 {
                    continue;
                }
                let ps = p.to_string();
                u.metrics.set(
                    m::LAG,
                    m::LAG_HELP,
                    &[("topic", topic), ("partition", &ps)],
                    (end - archived).max(0) as f64,
                );
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
                let assignment = self.shared.assign(tpl);
                match consumer.assign(&assignment) {
                    Ok(()) => self.shared.uploads.health.assigned(),
                    Err(e) => self
                        .shared
                        .uploads
                        .fail(format!("assigning partitions: {e}")),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let keys: Vec<Key> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, lost = consumer.assignment_lost(), "partitions revoked");
                self.shared.uploads.health.unassigned();
                self.shared
                    .finish(&keys, false, Some(self.shared.revoke_timeout));
                commit(
                    consumer,
                    &self.shared.uploads,
                    Some(&keys),
                    CommitMode::Sync,
                );
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                self.shared.uploads.health.unassigned();
                let keys = self.shared.keys();
                self.shared
                    .finish(&keys, false, Some(self.shared.revoke_timeout));
                let _ = consumer.unassign();
            }
        }
        let n = lock(&self.shared.parts)
            .values()
            .map(HashMap::len)
            .sum::<usize>();
        self.shared
            .uploads
            .metrics
            .set(m::PARTITIONS, m::PARTITIONS_HELP, &[], n as f64);
    }
}

impl Shared {
    /// Finds where each newly assigned partition resumes and starts its upload task;
    /// returns the assignment with those offsets.
    fn assign(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut assignment = TopicPartitionList::new();
        // This runs in the rebalance callback: like a revoke, it must end well within
        // max.poll.interval.ms. An object store that does not answer in time stops
        // copycat (a restart resumes, and the group can give the partitions to another).
        let deadline = tokio::time::Instant::now() + self.revoke_timeout;
        for e in tpl.elements() {
            let (topic, partition) = (e.topic().to_string(), e.partition());
            let store = self.uploads.store.clone();
            let resume = self.handle.block_on(async {
                let recovery = with_retries("recovery", 5, || {
                    checkpoint::recover(store.as_ref(), &topic, partition).err_into()
                });
                tokio::time::timeout_at(deadline, recovery).await
            });
            let resume = match resume {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.uploads.fail(format!(
                        "finding where {topic} partition {partition} resumes: {e}"
                    ));
                    return TopicPartitionList::new();
                }
                Err(_) => {
                    self.uploads.fail(format!(
                        "finding where {topic} partition {partition} resumes took longer than \
                         --revoke-timeout ({:?}): the object store does not answer",
                        self.revoke_timeout
                    ));
                    return TopicPartitionList::new();
                }
            };
            for note in &resume.notes {
                tracing::warn!(topic, partition, note, "recovery");
            }
            let offset = resume.next_offset.map_or(Offset::Beginning, Offset::Offset);
            tracing::info!(topic, partition, resume = ?resume.next_offset, "partition assigned");
            if let Some(next) = resume.next_offset {
                lock(&self.uploads.done).insert((topic.clone(), partition), (next, false));
            }
            let _ = assignment.add_partition_offset(&topic, partition, offset);
            let (tx, rx) = mpsc::unbounded_channel();
            let pending = Arc::new(AtomicUsize::new(0));
            let task = self
                .handle
                .spawn(upload_task(self.uploads.clone(), rx, pending.clone()));
            let part = Part {
                buffer: PartitionBuffer::new(&topic, partition, self.limits, resume.next_offset)
                    .with_claims(resume.claims),
                uploads: tx,
                task,
                pending,
                seen_next: None,
                seen_since: Instant::now(),
            };
            if let Some(old) = lock(&self.parts)
                .entry(topic)
                .or_default()
                .insert(partition, part)
            {
                // Assigned twice without a revoke in between: keep nothing of the old one.
                old.task.abort();
            }
        }
        assignment
    }

    fn keys(&self) -> Vec<Key> {
        lock(&self.parts)
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(|p| (t.clone(), *p)))
            .collect()
    }

    /// Stops archiving partitions: their open files are uploaded (`flush`) or dropped,
    /// and every file already finished is uploaded before this returns — or, given a
    /// `limit`, abandoned when that time is up (a revoke must end well within the
    /// consumer's `max.poll.interval.ms`). Abandoned files are claimed or not yet
    /// claimed; either way the next owner writes them again, exactly as claimed, and
    /// their offsets are not committed here.
    fn finish(&self, keys: &[Key], flush: bool, limit: Option<Duration>) {
        let mut parts = Vec::new();
        {
            let mut all = lock(&self.parts);
            for (topic, p) in keys {
                if let Some(ps) = all.get_mut(topic)
                    && let Some(part) = ps.remove(p)
                {
                    parts.push(part);
                }
                if all.get(topic).is_some_and(HashMap::is_empty) {
                    all.remove(topic);
                }
            }
        }
        let mut tasks = Vec::new();
        for mut part in parts {
            let sealed = if flush {
                part.buffer.seal_early()
            } else {
                None
            };
            match sealed {
                Some(s) => part.upload(s),
                None => {
                    let dropped = part.buffer.discard();
                    self.uploads.buffered.fetch_sub(dropped, Ordering::SeqCst);
                }
            }
            let key = (part.buffer.topic().to_string(), part.buffer.partition());
            drop(part.uploads);
            tasks.push((key, part.task, part.pending));
        }
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let abandoned = self.handle.block_on(async {
            let mut abandoned = Vec::new();
            for (key, mut task, pending) in tasks {
                let done = match deadline {
                    Some(d) => tokio::time::timeout_at(d, &mut task).await.is_ok(),
                    None => {
                        let _ = (&mut task).await;
                        true
                    }
                };
                if !done {
                    task.abort();
                    // Wait for the task to be dropped, so it no longer changes the counts.
                    let _ = task.await;
                    abandoned.push(key);
                }
                // Files not uploaded (abandoned, or after a fatal error) hold no memory now.
                let left = pending.swap(0, Ordering::SeqCst);
                self.uploads.buffered.fetch_sub(left, Ordering::SeqCst);
            }
            abandoned
        });
        if !abandoned.is_empty() {
            tracing::warn!(
                partitions = ?abandoned,
                limit = ?limit,
                "uploads of revoked partitions did not finish in time and are abandoned; the next owner writes their claimed ranges"
            );
        }
    }

    fn on_message(&self, msg: &BorrowedMessage<'_>) {
        let timestamp = match msg.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
            Timestamp::NotAvailable => -1,
        };
        // Most records have a few headers: keep them on the stack.
        const INLINE: usize = 8;
        let mut inline: [(&str, Option<&[u8]>); INLINE] = [("", None); INLINE];
        let spilled: Vec<(&str, Option<&[u8]>)>;
        let headers: &[(&str, Option<&[u8]>)] = match msg.headers() {
            None => &[],
            Some(hs) if hs.count() <= INLINE => {
                for (slot, h) in inline.iter_mut().zip(hs.iter()) {
                    *slot = (h.key, h.value);
                }
                &inline[..hs.count()]
            }
            Some(hs) => {
                spilled = hs.iter().map(|h| (h.key, h.value)).collect();
                &spilled
            }
        };
        self.append(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            timestamp,
            msg.key(),
            msg.payload(),
            headers,
        );
    }

    /// Adds a record to its partition's open file, handing finished files to the
    /// partition's upload task.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let mut parts = lock(&self.parts);
        let Some(part) = parts.get_mut(topic).and_then(|ps| ps.get_mut(&partition)) else {
            tracing::debug!(topic, partition, "record of an unassigned partition");
            return;
        };
        let Part {
            buffer,
            uploads,
            pending,
            ..
        } = part;
        let before = buffer.open_bytes();
        let mut sealed_bytes = 0;
        let pushed = buffer.push(offset, timestamp, key, value, headers, &mut |s: Sealed| {
            sealed_bytes += s.bytes;
            hand_over(uploads, pending, s);
        });
        if pushed == Pushed::Appended {
            let added = buffer.open_bytes() + sealed_bytes - before;
            self.uploads.buffered.fetch_add(added, Ordering::Relaxed);
        }
    }

    /// Finishes the open files of partitions that got no record for `idle` (as seen at
    /// the ticks of the consumer loop).
    fn flush_idle(&self, idle: Duration) {
        let now = Instant::now();
        let mut parts = lock(&self.parts);
        for ps in parts.values_mut() {
            for part in ps.values_mut() {
                let next = part.buffer.next_offset();
                if next != part.seen_next {
                    part.seen_next = next;
                    part.seen_since = now;
                } else if part.buffer.open_records() > 0
                    && now.duration_since(part.seen_since) >= idle
                    && let Some(s) = part.buffer.seal_early()
                {
                    tracing::debug!(path = s.file.path(), "idle partition, file finished early");
                    part.upload(s);
                }
            }
        }
    }

    /// Finishes the largest open files until open files hold at most `target` bytes.
    fn flush_largest(&self, target: usize) {
        let mut parts = lock(&self.parts);
        let mut open: Vec<&mut Part> = parts
            .values_mut()
            .flat_map(|ps| ps.values_mut())
            .filter(|p| p.buffer.open_records() > 0)
            .collect();
        let mut total: usize = open.iter().map(|p| p.buffer.open_bytes()).sum();
        open.sort_by_key(|p| std::cmp::Reverse(p.buffer.open_bytes()));
        for part in open {
            if total <= target {
                break;
            }
            let bytes = part.buffer.open_bytes();
            if let Some(s) = part.buffer.seal_early() {
                total -= bytes;
                tracing::debug!(
                    path = s.file.path(),
                    "memory cap reached, file finished early"
                );
                part.upload(s);
            }
        }
    }
}

fn commit(consumer: &BaseConsumer<Ctx>, uploads: &Uploads, only: Option<&[Key]>, mode: CommitMode) {
    let tpl = uploads.take_commits(only);
    if tpl.count() == 0 {
        return;
    }
    // Committed offsets only show progress (lag tools read them); recovery reads raw/.
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!(error = %e, "committing offsets failed");
    }
}

fn consume(
    config: &Config,
    shared: Arc<Shared>,
    mut topics: tokio::sync::watch::Receiver<Option<TopicSet>>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "30000")
        // When the local queue is full librdkafka waits this long before fetching again
        // (default 1 s); copycat drains the queue in bursts, so wait little.
        .set("fetch.queue.backoff.ms", "20");
    config.kafka.apply(&mut client);
    let consumer: BaseConsumer<Ctx> = client.create_with_context(Ctx {
        shared: shared.clone(),
    })?;
    let u = shared.uploads.clone();
    let max = config.max_buffer_bytes.max(1);
    let mut subscribed: Option<TopicSet> = None;
    let mut paused = false;
    let mut last_tick = Instant::now();
    let mut polled = 0u32;
    while !stop.load(Ordering::SeqCst) {
        if let Some(why) = u.fatal() {
            return Err(Error::Fatal(why));
        }
        if topics.has_changed().unwrap_or(false) {
            let set = topics.borrow_and_update().clone();
            if set.is_some() && set != subscribed {
                let names: Vec<&str> = set.iter().flatten().map(String::as_str).collect();
                if names.is_empty() {
                    consumer.unsubscribe();
                } else {
                    consumer.subscribe(&names)?;
                }
                shared.uploads.health.subscribed(names.len());
                subscribed = set;
            }
        }
        // The clock is read every 256 records or when no record came, not per record.
        polled = polled.wrapping_add(1);
        let mut look = polled.is_multiple_of(256);
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => shared.on_message(&msg),
            Some(Err(e)) => tracing::warn!(error = %e, "kafka"),
            None => look = true,
        }
        let over = u.buffered.load(Ordering::Relaxed) > max;
        if over && !paused || look && last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            shared.flush_idle(config.idle_flush);
            if u.buffered.load(Ordering::SeqCst) > max {
                shared.flush_largest(max / 2);
                if u.buffered.load(Ordering::SeqCst) > max
                    && let Ok(a) = consumer.assignment()
                {
                    if !paused {
                        tracing::info!("uploads lag behind the memory cap, pausing fetches");
                    }
                    let _ = consumer.pause(&a);
                    paused = true;
                }
            } else if paused && u.buffered.load(Ordering::SeqCst) <= max / 4 * 3 {
                if let Ok(a) = consumer.assignment() {
                    let _ = consumer.resume(&a);
                }
                paused = false;
            }
            commit(&consumer, &u, None, CommitMode::Async);
            u.metrics.set(
                m::BUFFERED,
                m::BUFFERED_HELP,
                &[],
                u.buffered.load(Ordering::SeqCst) as f64,
            );
        }
    }
    tracing::info!("stopping: uploading open files");
    let keys = shared.keys();
    shared.finish(&keys, true, None);
    if let Some(why) = u.fatal() {
        return Err(Error::Fatal(why));
    }
    commit(&consumer, &u, None, CommitMode::Sync);
    consumer.unsubscribe();
    drop(consumer);
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn shared(rt: &tokio::runtime::Runtime, store: Arc<dyn ObjectStore>) -> Shared {
        Shared {
            handle: rt.handle().clone(),
            limits: Limits {
                max_records: 1_000_000,
                max_bytes: 1 << 30,
                max_span_ms: 3_600_000,
            },
            revoke_timeout: Duration::from_secs(30),
            uploads: Arc::new(Uploads {
                store,
                metrics: Metrics::new(),
                health: Arc::new(Health::new()),
                multipart_threshold: 1 << 20,
                buffered: AtomicUsize::new(0),
                done: Mutex::new(HashMap::new()),
                fatal: Mutex::new(None),
                owner: "test".into(),
            }),
            parts: Mutex::new(HashMap::new()),
        }
    }

    fn partitions(n: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition("t", p);
        }
        tpl
    }

    const TS: i64 = 1_795_503_600_000;

    /// Offsets archived per partition: (first, last) of each file.
    fn files(rt: &tokio::runtime::Runtime, store: &dyn ObjectStore) -> Vec<(i32, i64, i64)> {
        let (files, _) = rt.block_on(checkpoint::list_raw(store, "raw/t/")).unwrap();
        let mut out: Vec<_> = files
            .iter()
            .map(|f| (f.partition, f.first_offset, f.last_offset))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn memory_cap_flushes_the_largest_buffers_and_shutdown_uploads_the_rest() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = shared(&rt, store.clone());
        let assignment = s.assign(&partitions(3));
        assert!(
            assignment
                .elements()
                .iter()
                .all(|e| e.offset() == Offset::Beginning)
        );
        let value = vec![1u8; 1000];
        for (p, n) in [(0, 100), (1, 50), (2, 10)] {
            for o in 0..n {
                s.append("t", p, o, TS + o, None, Some(&value), &[]);
            }
        }
        let per_record = onepipe_archive::raw::RawBatch::record_size(None, Some(&value), &[]);
        assert_eq!(s.uploads.buffered.load(Ordering::SeqCst), 160 * per_record);

        // Down to 60 records' worth: only partition 0 (100 records) is written early.
        s.flush_largest(60 * per_record);
        // Marked done last, after the upload, the checkpoint and the memory release.
        while !lock(&s.uploads.done).contains_key(&("t".to_string(), 0)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(files(&rt, store.as_ref()), vec![(0, 0, 99)]);
        assert_eq!(s.uploads.buffered.load(Ordering::SeqCst), 60 * per_record);

        // Shutdown: the rest is written, then everything is marked for commit.
        s.finish(&s.keys(), true, None);
        assert_eq!(
            files(&rt, store.as_ref()),
            vec![(0, 0, 99), (1, 0, 49), (2, 0, 9)]
        );
        assert_eq!(s.uploads.buffered.load(Ordering::SeqCst), 0);
        let commits = s.uploads.take_commits(None);
        let mut committed: Vec<_> = commits
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        committed.sort_by_key(|c| c.0);
        assert_eq!(
            committed,
            vec![
                (0, Offset::Offset(100)),
                (1, Offset::Offset(50)),
                (2, Offset::Offset(10))
            ]
        );
        assert_eq!(s.uploads.take_commits(None).count(), 0);
    }

    fn put_claim(rt: &tokio::runtime::Runtime, store: &dyn ObjectStore, first: i64, last: i64) {
        let c = checkpoint::Claim {
            topic: "t".into(),
            partition: 0,
            first_offset: first,
            last_offset: last,
            owner: "an-earlier-owner".into(),
            file: None,
        };
        let claimed = rt.block_on(checkpoint::claim(store, &c)).unwrap();
        assert_eq!(claimed, checkpoint::Claimed::New);
    }

    #[test]
    fn a_range_claimed_by_an_earlier_owner_is_written_exactly_as_claimed() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        // An owner uploaded 0..=29, claimed 30..=34 and died (or stalled) before uploading.
        let first = shared(&rt, store.clone());
        first.assign(&partitions(1));
        for o in 0..30 {
            first.append("t", 0, o, TS, None, Some(b"v"), &[]);
        }
        first.finish(&first.keys(), true, None);
        put_claim(&rt, store.as_ref(), 30, 34);

        let mut next = shared(&rt, store.clone());
        next.limits.max_records = 2;
        let assignment = next.assign(&partitions(1));
        assert_eq!(assignment.elements()[0].offset(), Offset::Offset(30));
        for o in 30..40 {
            next.append("t", 0, o, TS, None, Some(b"v"), &[]);
        }
        next.finish(&next.keys(), true, None);
        assert!(next.uploads.fatal().is_none());
        assert_eq!(
            files(&rt, store.as_ref()),
            vec![
                (0, 0, 29),
                (0, 30, 34),
                (0, 35, 36),
                (0, 37, 38),
                (0, 39, 39)
            ]
        );
    }

    #[test]
    fn an_instance_that_lost_its_partition_writes_no_overlapping_file() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let stale = shared(&rt, store.clone());
        stale.assign(&partitions(1));
        for o in 0..10 {
            stale.append("t", 0, o, TS, None, Some(b"v"), &[]);
        }
        // Meanwhile a new owner claimed (and wrote) 0..=5.
        put_claim(&rt, store.as_ref(), 0, 5);
        stale.finish(&stale.keys(), true, None);
        let why = stale.uploads.fatal().expect("the stale instance stops");
        assert!(why.contains("another instance owns"), "{why}");
        assert!(files(&rt, store.as_ref()).is_empty());
        assert!(stale.uploads.take_commits(None).count() == 0);
    }

    #[test]
    fn revoke_drops_open_files_and_the_next_owner_resumes_after_the_archive() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let first = shared(&rt, store.clone());
        first.assign(&partitions(1));
        for o in 0..30 {
            first.append("t", 0, o, TS, Some(b"k"), Some(b"v"), &[]);
        }
        // The first look notes where the partition is, the next finds it idle.
        first.flush_idle(Duration::ZERO);
        first.flush_idle(Duration::ZERO);
        for o in 30..40 {
            first.append("t", 0, o, TS, Some(b"k"), Some(b"v"), &[]);
        }
        // Revoked: 0..=29 was finished and is uploaded, 30..=39 is dropped.
        first.finish(&first.keys(), false, None);
        assert_eq!(files(&rt, store.as_ref()), vec![(0, 0, 29)]);
        assert_eq!(first.uploads.buffered.load(Ordering::SeqCst), 0);

        // Whatever Kafka has committed, the next owner starts at 30 and skips older
        // offsets delivered again.
        let second = shared(&rt, store.clone());
        let assignment = second.assign(&partitions(1));
        assert_eq!(assignment.elements()[0].offset(), Offset::Offset(30));
        for o in 25..35 {
            second.append("t", 0, o, TS, Some(b"k"), Some(b"v"), &[]);
        }
        second.finish(&second.keys(), true, None);
        assert_eq!(files(&rt, store.as_ref()), vec![(0, 0, 29), (0, 30, 34)]);
        let c = rt
            .block_on(checkpoint::read(store.as_ref(), "t", 0))
            .unwrap()
            .unwrap();
        assert_eq!(c.last_offset, 34);
    }

    #[test]
    fn a_revoke_during_an_object_store_outage_ends_within_its_limit() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let outage = Arc::new(super::outage::Outage::default());
        let store: Arc<dyn ObjectStore> = outage.clone();
        let first = shared(&rt, store.clone());
        first.assign(&partitions(2));
        for p in 0..2 {
            for o in 0..10 {
                first.append("t", p, o, TS, None, Some(b"v"), &[]);
            }
        }
        outage.down.store(true, Ordering::SeqCst);
        // Both files are finished, claimed, and their uploads hang.
        first.flush_idle(Duration::ZERO);
        first.flush_idle(Duration::ZERO);
        for p in 0..2 {
            first.append("t", p, 10, TS, None, Some(b"v"), &[]);
        }
        let started = Instant::now();
        first.finish(&first.keys(), false, Some(Duration::from_millis(500)));
        // Unbounded, this waited for every try of every upload (minutes).
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the revoke took {:?}",
            started.elapsed()
        );
        assert_eq!(first.uploads.buffered.load(Ordering::SeqCst), 0);
        assert_eq!(first.uploads.take_commits(None).count(), 0);
        assert!(first.uploads.fatal().is_none());
        assert!(files(&rt, store.as_ref()).is_empty());

        // After the outage the next owner writes the claimed ranges exactly so.
        outage.down.store(false, Ordering::SeqCst);
        let mut next = shared(&rt, store.clone());
        next.limits.max_records = 4;
        next.assign(&partitions(2));
        for p in 0..2 {
            for o in 0..12 {
                next.append("t", p, o, TS, None, Some(b"v"), &[]);
            }
        }
        next.finish(&next.keys(), true, None);
        assert_eq!(
            files(&rt, store.as_ref()),
            vec![(0, 0, 9), (0, 10, 11), (1, 0, 9), (1, 10, 11)]
        );
    }

    #[test]
    fn an_assignment_during_an_object_store_outage_ends_within_its_limit() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let outage = Arc::new(super::outage::Outage::default());
        outage.frozen.store(true, Ordering::SeqCst);
        let mut s = shared(&rt, outage.clone());
        s.revoke_timeout = Duration::from_millis(500);
        let started = Instant::now();
        let assignment = s.assign(&partitions(2));
        // Unbounded, this waited for every try of the recovery (5 × 60 s).
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the assignment took {:?}",
            started.elapsed()
        );
        assert_eq!(assignment.count(), 0);
        let why = s.uploads.fatal().expect("copycat stops");
        assert!(why.contains("took longer than"), "{why}");
    }
}

/// An in-memory store whose raw file uploads hang while `down` is set: an object store
/// outage as copycat sees it (requests that never answer).
#[cfg(test)]
mod outage {
    use std::fmt;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    };

    #[derive(Debug, Default)]
    pub struct Outage {
        pub inner: InMemory,
        /// Raw file uploads hang.
        pub down: AtomicBool,
        /// Reads and listings hang too.
        pub frozen: AtomicBool,
    }

    impl fmt::Display for Outage {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Outage({})", self.inner)
        }
    }

    impl Outage {
        async fn wait(&self, location: &Path) {
            if location.as_ref().ends_with(".parquet") && self.down.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Outage {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.wait(l).await;
            self.inner.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.wait(l).await;
            self.inner.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            if self.frozen.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            self.inner.get_opts(l, o).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            if self.frozen.load(Ordering::SeqCst) {
                return Box::pin(futures::stream::pending());
            }
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }
}
