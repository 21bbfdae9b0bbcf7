//! copycat against the stack's Kafka and S3 server: every offset archived exactly once
//! and byte for byte, also when copycat is killed with SIGKILL again and again; replay
//! back into Kafka; topics followed from the registry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use onepipe_archive::layout::RawFile;
use onepipe_archive::raw::RawRecord;
use onepipe_integration_tests::{create_topic, endpoint, start_registry, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const HOUR_MS: i64 = 3_600_000;
/// 2026-11-24T05:30:00Z: records start half way through an hour.
const BASE_TS: i64 = 1_795_498_200_000;

/// A record as produced: key, value, headers, timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

impl From<&RawRecord> for Rec {
    fn from(r: &RawRecord) -> Self {
        Rec {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp: r.timestamp,
        }
    }
}

/// Record `i` of `n`, timestamps spread over `span_ms` from BASE_TS, a little out of
/// order, with null keys and values, empty values, no headers and null header values
/// among them.
fn record(i: u64, n: u64, span_ms: i64) -> Rec {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let len = (x % 180) as usize + 1;
    let mut value = Vec::with_capacity(len);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        value.push(x as u8);
    }
    let value = match i {
        i if i % 89 == 0 => None,
        i if i % 101 == 0 => Some(Vec::new()),
        _ => Some(value),
    };
    let key = (!i.is_multiple_of(97)).then(|| format!("[\"acct-{}\",{i}]", i % 1000).into_bytes());
    let mut headers = Vec::new();
    if !i.is_multiple_of(5) {
        headers.push((
            "traceparent".to_string(),
            Some(format!("00-{i:032x}-{:016x}-01", i * 7).into_bytes()),
        ));
        headers.push(("bin".to_string(), Some(vec![0, 255, i as u8, 0])));
    }
    if i.is_multiple_of(7) {
        headers.push(("null".to_string(), None));
    }
    let jitter = (i % 13) as i64 * 1_000;
    let timestamp = BASE_TS + (i as i64 * span_ms) / n as i64 - jitter;
    Rec {
        key,
        value,
        headers,
        timestamp,
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

type Produced = BTreeMap<(i32, i64), Rec>;

/// Produces records `range` of `n` round-robin over `partitions`; returns them by
/// (partition, offset).
async fn produce(
    p: &FutureProducer,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<u64>,
    n: u64,
    span_ms: i64,
) -> Produced {
    let mut pending = Vec::new();
    for i in range {
        let r = record(i, n, span_ms);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition((i % partitions as u64) as i32)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        let delivery = p.send_result(fr).map_err(|(e, _)| e).expect("enqueue");
        pending.push((r, delivery));
    }
    let mut out = BTreeMap::new();
    for (r, d) in pending {
        let (partition, offset) = match d.await.expect("delivery") {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("produce failed: {e}"),
        };
        out.insert((partition, offset), r);
    }
    out
}

/// A fresh prefix of the stack's S3 bucket.
fn store_url() -> String {
    format!(
        "{}/test-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    )
}

fn copycat_args(bootstrap: &str, store: &str, topics: &str, group: &str) -> Vec<String> {
    [
        "--kafka-bootstrap",
        bootstrap,
        "--object-store",
        store,
        "--topics",
        topics,
        "--group-id",
        group,
        "--max-file-records",
        "3000",
        "--idle-flush",
        "1s",
        "--topic-refresh",
        "2s",
        "--admin-listen",
        "127.0.0.1:0",
        "--kafka-option",
        "session.timeout.ms=6000",
        "--kafka-option",
        "heartbeat.interval.ms=500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// copycat running in this process until the sender is dropped or used.
fn start_in_process(
    args: Vec<String>,
) -> (
    tokio::task::JoinHandle<onepipe_copycat::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let mut argv = vec!["copycat".to_string()];
    argv.extend(args);
    let config = onepipe_copycat::Config::parse_from(argv);
    let store = onepipe_core::store::open(&config.object_store).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(onepipe_copycat::archiver::run(
        config,
        store,
        onepipe_core::admin::Metrics::new(),
        std::sync::Arc::new(onepipe_copycat::health::Health::new()),
        async {
            let _ = stopped.await;
        },
    ));
    (task, stop)
}

/// Waits until raw/ holds every offset of `produced` (up to `timeout`).
async fn wait_archived(
    store: &dyn ObjectStore,
    topic: &str,
    produced: &Produced,
    timeout: Duration,
) {
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in produced.keys() {
        let e = want.entry(*p).or_insert(*o);
        *e = (*e).max(*o);
    }
    let started = Instant::now();
    loop {
        let report = onepipe_archive::check::check(store, topic).await.unwrap();
        let have: BTreeMap<i32, i64> = report
            .partitions
            .iter()
            .map(|p| (p.partition, p.last_offset))
            .collect();
        if want
            .iter()
            .all(|(p, last)| have.get(p).is_some_and(|h| h >= last))
        {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "raw/ still lacks records after {timeout:?}: want last offsets {want:?}, have {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reads every raw file of `topic`, checking each file against its name (partition,
/// first and last offset, contiguous, one hour); panics on an offset held twice.
async fn read_archive(
    store: &dyn ObjectStore,
    topic: &str,
) -> (BTreeMap<(i32, i64), RawRecord>, usize) {
    let files = raw_files(store, topic).await;
    let count = files.len();
    let mut out = BTreeMap::new();
    for (f, records) in files {
        let path = f.path();
        assert_eq!(
            records.len() as i64,
            f.last_offset - f.first_offset + 1,
            "{path}"
        );
        let hour_start = f
            .date
            .and_hms_opt(f.hour.into(), 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        for (i, r) in records.into_iter().enumerate() {
            assert_eq!(r.partition, f.partition, "{path}");
            assert_eq!(r.offset, f.first_offset + i as i64, "{path}");
            assert!(
                (hour_start..hour_start + HOUR_MS).contains(&r.timestamp),
                "{path}: offset {} has timestamp {} outside the file's hour",
                r.offset,
                r.timestamp
            );
            let key = (r.partition, r.offset);
            if let Some(old) = out.insert(key, r) {
                panic!("offset {key:?} archived twice (again in {path}): {old:?}");
            }
        }
    }
    (out, count)
}

/// Every produced record is in the archive, byte for byte, and nothing else is.
fn assert_exactly_once(produced: &Produced, archived: &BTreeMap<(i32, i64), RawRecord>) {
    for (key, want) in produced {
        let got = archived
            .get(key)
            .unwrap_or_else(|| panic!("offset {key:?} is not archived"));
        assert_eq!(&Rec::from(got), want, "offset {key:?}");
    }
    let extra: Vec<_> = archived
        .keys()
        .filter(|k| !produced.contains_key(k))
        .collect();
    assert!(
        extra.is_empty(),
        "archived offsets never produced: {extra:?}"
    );
    // Contiguous from 0 in each partition.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in archived.keys() {
        let n = next.entry(*p).or_insert(0);
        assert_eq!(*o, *n, "partition {p}: offset {o} follows {}", *n - 1);
        *n += 1;
    }
}

async fn onepipe(args: &[&str]) -> (i32, String) {
    let mut argv = vec!["onepipe"];
    argv.extend_from_slice(args);
    let cli = onepipe_cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let code = onepipe_cli::run(cli, &mut out).await.expect("onepipe runs");
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archives_50k_records_exactly_once_byte_for_byte() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("cc_exact");
    create_topic(&bootstrap, &topic, 3).await;
    let n = 50_000;
    let produced = produce(&producer(&bootstrap), &topic, 3, 0..n, n, 5 * HOUR_MS).await;
    assert_eq!(produced.len(), n as usize);

    let url = store_url();
    let store = onepipe_core::store::open(&url).unwrap();
    let started = Instant::now();
    let (task, stop) = start_in_process(copycat_args(&bootstrap, &url, &topic, &unique_name("g")));
    wait_archived(store.as_ref(), &topic, &produced, Duration::from_secs(90)).await;
    eprintln!("archived {n} records in {:?}", started.elapsed());
    let _ = stop.send(());
    task.await.unwrap().expect("copycat stops cleanly");

    let (archived, files) = read_archive(store.as_ref(), &topic).await;
    assert_exactly_once(&produced, &archived);
    // 5+ hours over 3 partitions, 3000 records per file at most.
    assert!(files >= 18, "only {files} files");
    let (code, out) = onepipe(&[
        "archive",
        "check",
        "--topic",
        &topic,
        "--object-store",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("no gaps or overlaps").count(), 3, "{out}");
    // The checkpoints agree with the files.
    for p in 0..3 {
        let c = onepipe_archive::checkpoint::read(store.as_ref(), &topic, p)
            .await
            .unwrap()
            .unwrap();
        let last = archived
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .max()
            .unwrap();
        assert_eq!(c.last_offset, last);
    }
}

/// The `copycat` binary, built if needed, in the target folder of this test.
fn copycat_binary() -> PathBuf {
    onepipe_integration_tests::service_binary("onepipe-copycat", "copycat")
}

fn spawn_copycat(bin: &PathBuf, args: &[String], log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    std::process::Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info,onepipe_copycat=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning copycat")
}

/// A small deterministic random number source (no extra crate for a test).
fn random(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn survives_sigkill_without_losing_or_doubling_records() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let bin = copycat_binary();
    let topic = unique_name("cc_fault");
    create_topic(&bootstrap, &topic, 3).await;
    let url = store_url();
    let store = onepipe_core::store::open(&url).unwrap();
    let group = unique_name("g");
    let mut args = copycat_args(&bootstrap, &url, &topic, &group);
    let at = args.iter().position(|a| a == "--max-file-records").unwrap();
    args[at + 1] = "700".to_string();
    let log = std::env::temp_dir().join(format!("{topic}.log"));
    eprintln!("copycat logs: {}", log.display());

    // Records keep flowing the whole time, 1 500 a second, until copycat was killed
    // three times.
    let max = 90_000u64;
    let produced = Arc::new(Mutex::new(Produced::new()));
    let flowing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let feeder = {
        let (produced, flowing) = (produced.clone(), flowing.clone());
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        tokio::spawn(async move {
            let p = producer(&bootstrap);
            let chunk = 150;
            let mut start = 0;
            while flowing.load(std::sync::atomic::Ordering::SeqCst) && start < max {
                let got = produce(&p, &topic, 3, start..start + chunk, max, 6 * HOUR_MS).await;
                produced.lock().unwrap().extend(got);
                start += chunk;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Each round: start copycat, wait until it has uploaded something, then kill it at
    // a random moment (often in the middle of an upload or between an upload and its
    // checkpoint or commit).
    let files = |store: Arc<dyn ObjectStore>, topic: String| async move {
        let r = onepipe_archive::check::check(store.as_ref(), &topic)
            .await
            .unwrap();
        r.partitions.iter().map(|p| p.files).sum::<usize>()
    };
    let mut seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
    for round in 0..3 {
        let before = files(store.clone(), topic.clone()).await;
        let mut child = spawn_copycat(&bin, &args, &log);
        let started = Instant::now();
        while files(store.clone(), topic.clone()).await <= before {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "copycat uploaded nothing in 60 s; logs in {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wait = random(&mut seed, 1_500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let have = produced.lock().unwrap().len();
        eprintln!(
            "round {round}: killed copycat {wait} ms after its first upload, {:?} after start ({have} records produced so far)",
            started.elapsed()
        );
    }
    flowing.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut last = spawn_copycat(&bin, &args, &log);
    feeder.await.unwrap();
    let produced = produced.lock().unwrap().clone();
    wait_archived(store.as_ref(), &topic, &produced, Duration::from_secs(90)).await;
    // SIGTERM: flush, upload, commit, exit 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &last.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || last.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        exit.success(),
        "copycat exited with {exit} after SIGTERM; logs in {}",
        log.display()
    );

    let (archived, _) = read_archive(store.as_ref(), &topic).await;
    assert_exactly_once(&produced, &archived);
    let (code, out) = onepipe(&[
        "archive",
        "check",
        "--topic",
        &topic,
        "--object-store",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("no gaps or overlaps").count(), 3, "{out}");

    // The group's committed offsets reached the end (they are not what recovery reads,
    // but lag tools do).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for e in committed.elements() {
        let end = produced.keys().filter(|(p, _)| *p == e.partition()).count() as i64;
        assert_eq!(
            e.offset(),
            Offset::Offset(end),
            "partition {}",
            e.partition()
        );
    }
}

/// Every record of `topic` as Kafka holds it, by (partition, offset).
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expect: usize) -> Produced {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Produced::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expect {
        assert!(
            Instant::now() < deadline,
            "read only {} of {expect} records",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            (m.partition(), m.offset()),
            Rec {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: m.timestamp().to_millis().unwrap(),
            },
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_gives_the_same_records_byte_for_byte() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("ccr");
    create_topic(&bootstrap, &topic, 3).await;
    let n = 6_000;
    let produced = produce(&producer(&bootstrap), &topic, 3, 0..n, n, 3 * HOUR_MS).await;
    // Short names: the stack's S3 server (s3s-fs) names a multipart upload's side file
    // after the base64 of the whole key, which must fit in 255 bytes.
    let url = format!(
        "{}/t-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let store = onepipe_core::store::open(&url).unwrap();
    let mut args = copycat_args(&bootstrap, &url, &topic, &unique_name("g"));
    // Files go up as multipart uploads here (one part each).
    args.extend(["--multipart-threshold".to_string(), "8KiB".to_string()]);
    let (task, stop) = start_in_process(args);
    wait_archived(store.as_ref(), &topic, &produced, Duration::from_secs(60)).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    // S3 gives multipart objects an ETag of `{md5 of the parts' md5s}-{parts}`.
    let (files, _) =
        onepipe_archive::checkpoint::list_raw(store.as_ref(), &format!("raw/{topic}/"))
            .await
            .unwrap();
    assert!(!files.is_empty());
    for f in &files {
        let meta = store.head(&Path::from(f.path())).await.unwrap();
        let etag = meta.e_tag.unwrap_or_default();
        assert!(
            etag.trim_matches('"').ends_with("-1"),
            "{}: etag {etag}",
            f.path()
        );
    }

    let to = unique_name("cc_replay_dst");
    create_topic(&bootstrap, &to, 3).await;
    let (code, out) = onepipe(&[
        "replay",
        "--topic",
        &topic,
        "--to-topic",
        &to,
        "--object-store",
        &url,
        "--kafka-bootstrap",
        &bootstrap,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("replayed {n} records")), "{out}");
    // Same partitions, same order, hence the same offsets in a fresh topic.
    let replayed = consume_all(&bootstrap, &to, 3, n as usize);
    assert_eq!(replayed.len(), produced.len());
    for (key, want) in &produced {
        assert_eq!(replayed.get(key), Some(want), "{key:?}");
    }

    // A slice: one partition, an offset range.
    let slice = unique_name("cc_replay_slice");
    create_topic(&bootstrap, &slice, 3).await;
    let (code, out) = onepipe(&[
        "replay",
        "--topic",
        &topic,
        "--to-topic",
        &slice,
        "--partition",
        "1",
        "--from-offset",
        "100",
        "--to-offset",
        "199",
        "--object-store",
        &url,
        "--kafka-bootstrap",
        &bootstrap,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed 100 records"), "{out}");
    let got = consume_all(&bootstrap, &slice, 3, 100);
    for (i, ((p, o), rec)) in got.iter().enumerate() {
        assert_eq!((*p, *o), (1, i as i64));
        assert_eq!(Some(rec), produced.get(&(1, 100 + i as i64)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_the_topics_the_registry_lists() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (registry, _stop_registry) =
        start_registry(onepipe_registry::auth::Tokens::default()).await;
    let url = store_url();
    let store = onepipe_core::store::open(&url).unwrap();
    let mut args = copycat_args(&bootstrap, &url, "unused", &unique_name("g"));
    let at = args.iter().position(|a| a == "--topics").unwrap();
    args.drain(at..at + 2);
    args.extend(["--registry".to_string(), registry.clone()]);
    let (task, stop) = start_in_process(args);

    // A dataset created after copycat started is picked up from the watch stream.
    let topic = unique_name("cc_registry");
    let dir = std::env::temp_dir().join(unique_name("cc-schema"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("s.avsc");
    std::fs::write(
        &schema,
        r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}"#,
    )
    .unwrap();
    let (code, out) = onepipe(&[
        "--registry",
        &registry,
        "topic",
        "create",
        &topic,
        "--schema-file",
        schema.to_str().unwrap(),
        "--unique-key",
        "id",
        "--partitions",
        "2",
        "--replication-factor",
        "1",
        "--kafka-bootstrap",
        &bootstrap,
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let produced = produce(&producer(&bootstrap), &topic, 2, 0..500, 500, HOUR_MS).await;
    wait_archived(store.as_ref(), &topic, &produced, Duration::from_secs(60)).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let (archived, _) = read_archive(store.as_ref(), &topic).await;
    assert_exactly_once(&produced, &archived);
}

/// Writes the claim of a copycat that claimed `first..=last` and died before uploading.
async fn dead_owner_claims(store: &dyn ObjectStore, topic: &str, first: i64, last: i64) {
    let claim = onepipe_archive::checkpoint::Claim {
        topic: topic.to_string(),
        partition: 0,
        first_offset: first,
        last_offset: last,
        owner: "copycat-that-died".into(),
        file: None,
    };
    let claimed = onepipe_archive::checkpoint::claim(store, &claim)
        .await
        .unwrap();
    assert_eq!(claimed, onepipe_archive::checkpoint::Claimed::New);
}

/// Produces `(key, value)` records to partition 0 with Kafka timestamp `ts`, in order;
/// returns their offsets.
async fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    ts: i64,
    records: &[(String, String)],
) -> Vec<i64> {
    let p = producer(bootstrap);
    let mut offsets = Vec::new();
    for (k, v) in records {
        let fr: FutureRecord<'_, str, str> = FutureRecord::to(topic)
            .partition(0)
            .timestamp(ts)
            .key(k.as_str())
            .payload(v.as_str());
        let d = p.send(fr, Duration::from_secs(30)).await;
        offsets.push(d.unwrap_or_else(|(e, _)| panic!("produce: {e}")).offset);
    }
    offsets
}

/// (offset, value) of every record partition 0 holds now, read from the beginning.
fn kafka_offsets(bootstrap: &str, topic: &str) -> Vec<(i64, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("peek"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => out.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    panic!("reading {topic} did not reach its end");
}

/// Every raw file of partition 0 as (first, last) and every archived (offset, value).
async fn archived_offsets(
    store: &dyn ObjectStore,
    topic: &str,
) -> (Vec<(i64, i64)>, Vec<(i64, Vec<u8>)>) {
    let files = raw_files(store, topic).await;
    let mut records = Vec::new();
    for (f, rs) in &files {
        for r in rs {
            assert!(
                (f.first_offset..=f.last_offset).contains(&r.offset),
                "{} holds offset {}",
                f.path(),
                r.offset
            );
            records.push((r.offset, r.value.clone().unwrap_or_default()));
        }
    }
    let ranges = files
        .iter()
        .map(|(f, _)| (f.first_offset, f.last_offset))
        .collect();
    (ranges, records)
}

/// Every raw file of `topic` with its records, in partition and offset order; panics on
/// objects in raw/ with names that are not raw file names.
async fn raw_files(store: &dyn ObjectStore, topic: &str) -> Vec<(RawFile, Vec<RawRecord>)> {
    let (mut files, strange) =
        onepipe_archive::checkpoint::list_raw(store, &format!("raw/{topic}/"))
            .await
            .unwrap();
    assert!(strange.is_empty(), "{strange:?}");
    files.sort_by_key(|f| (f.partition, f.first_offset));
    let mut out = Vec::new();
    for f in files {
        let path = f.path();
        let data = store
            .get(&Path::from(path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let records = onepipe_archive::raw::decode(&path, data).unwrap();
        out.push((f, records));
    }
    out
}

/// Runs copycat on `topic` until raw/ holds partition 0 up to `last`; fails as soon as
/// copycat stops on its own (a fatal error) rather than waiting.
async fn archive_until(bootstrap: &str, url: &str, topic: &str, group: &str, last: i64) {
    let store = onepipe_core::store::open(url).unwrap();
    let (task, stop) = start_in_process(copycat_args(bootstrap, url, topic, group));
    let started = Instant::now();
    loop {
        if task.is_finished() {
            let why = task.await.unwrap();
            panic!("copycat stopped on its own before archiving offset {last}: {why:?}");
        }
        let report = onepipe_archive::check::check(store.as_ref(), topic)
            .await
            .unwrap();
        if report.partitions.iter().any(|p| p.last_offset >= last) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "raw/ lacks offset {last} after 60 s: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().expect("copycat stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_range_whose_end_was_compacted_away_is_archived_without_a_crash_loop() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("cc_compacted");
    onepipe_integration_tests::create_topic_with(
        &bootstrap,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "200"),
            ("min.cleanable.dirty.ratio", "0.001"),
            ("min.compaction.lag.ms", "0"),
        ],
    )
    .await;
    let url = store_url();
    let store = onepipe_core::store::open(&url).unwrap();
    let rec = |k: usize, v: &str| (format!("k{k}"), format!("{v}{k}"));
    // Offsets 0..=9, keys k0..k9. A copycat claimed 0..=9 and died before its upload.
    let first: Vec<_> = (0..10).map(|k| rec(k, "a")).collect();
    assert_eq!(
        produce_keyed(&bootstrap, &topic, BASE_TS, &first).await,
        (0..10).collect::<Vec<_>>()
    );
    dead_owner_claims(store.as_ref(), &topic, 0, 9).await;
    // k8 and k9 written again (offsets 10, 11): compaction removes offsets 8 and 9, the
    // end of the claimed range. A later record rolls the segment so it can be cleaned
    // (Kafka rolls by the records' timestamps: a second past the segment's first).
    produce_keyed(&bootstrap, &topic, BASE_TS, &[rec(8, "b"), rec(9, "b")]).await;
    produce_keyed(&bootstrap, &topic, BASE_TS + 1000, &[rec(20, "c")]).await;
    let started = Instant::now();
    let survivors = loop {
        let now = kafka_offsets(&bootstrap, &topic);
        if !now.iter().any(|(o, _)| *o == 9) {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "Kafka did not compact {topic}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let offsets: Vec<i64> = survivors.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12]);

    // Twice: the first run writes the claimed range as claimed, a restart goes on.
    let group = unique_name("g");
    archive_until(&bootstrap, &url, &topic, &group, 12).await;
    produce_keyed(&bootstrap, &topic, BASE_TS + 2000, &[rec(21, "d")]).await;
    archive_until(&bootstrap, &url, &topic, &group, 13).await;

    let (files, records) = archived_offsets(store.as_ref(), &topic).await;
    assert_eq!(files[0], (0, 9), "the claimed range is one file: {files:?}");
    let mut want = survivors;
    want.push((13, b"d21".to_vec()));
    assert_eq!(records, want, "files {files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claimed_range_cut_by_retention_while_copycat_was_down_is_skipped_cleanly() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("cc_retention");
    create_topic(&bootstrap, &topic, 1).await;
    let url = store_url();
    let store = onepipe_core::store::open(&url).unwrap();
    let group = unique_name("g");
    let rec = |k: usize| (format!("k{k}"), format!("v{k}"));
    produce_keyed(
        &bootstrap,
        &topic,
        BASE_TS,
        &(0..10).map(rec).collect::<Vec<_>>(),
    )
    .await;
    archive_until(&bootstrap, &url, &topic, &group, 9).await;

    // While copycat is down: 10..=19 arrive, an instance claimed 10..=14 and 15..=17 and
    // died, and retention deletes everything before 12 and so the start of the claim.
    produce_keyed(
        &bootstrap,
        &topic,
        BASE_TS,
        &(10..20).map(rec).collect::<Vec<_>>(),
    )
    .await;
    dead_owner_claims(store.as_ref(), &topic, 10, 14).await;
    dead_owner_claims(store.as_ref(), &topic, 15, 17).await;
    delete_records_before(&bootstrap, &topic, 12).await;

    archive_until(&bootstrap, &url, &topic, &group, 19).await;
    produce_keyed(&bootstrap, &topic, BASE_TS, &[rec(20)]).await;
    archive_until(&bootstrap, &url, &topic, &group, 20).await;

    let (files, records) = archived_offsets(store.as_ref(), &topic).await;
    let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
    let want: Vec<i64> = (0..10).chain(12..21).collect();
    assert_eq!(offsets, want, "files {files:?}");
    assert!(
        files.contains(&(15, 17)),
        "the later claim is written as claimed: {files:?}"
    );
    for (o, v) in &records {
        assert_eq!(v, format!("v{o}").as_bytes());
    }
}

/// What retention does: moves the log start offset of partition 0 to `before`.
async fn delete_records_before(bootstrap: &str, topic: &str, before: i64) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(before))
        .unwrap();
    let done = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap_or_else(|e| panic!("deleting records of {topic}: {e}"));
    for e in done.elements() {
        if let Some(err) = e.error().err() {
            panic!("deleting records of {topic}: {err}");
        }
    }
}

/// `/readyz` of a copycat process, polled until it answers `want` (200 or 503) with a
/// body containing `saying`, or 60 s; returns the body.
async fn readyz_until(admin: &str, want: u16, saying: &str) -> String {
    let started = Instant::now();
    loop {
        let reply = onepipe_integration_tests::http("GET", admin, "/readyz", &[], b"").await;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status == want && body.contains(saying) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/readyz stayed {} ({body}), want {want}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_says_not_ready_while_a_secured_registry_refuses_copycat() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let tokens = onepipe_registry::auth::Tokens::new(Some("adm1n".into()), Some("r3ad".into()));
    let (registry, _stop_registry) = start_registry(tokens).await;
    let bin = copycat_binary();
    let url = store_url();
    let group = unique_name("g");
    let base = |token: Option<&str>| {
        let mut args = copycat_args(&bootstrap, &url, "unused", &group);
        let at = args.iter().position(|a| a == "--topics").unwrap();
        args.drain(at..at + 2);
        args.extend(["--registry".to_string(), registry.clone()]);
        if let Some(t) = token {
            args.extend(["--registry-token".to_string(), t.to_string()]);
        }
        args
    };
    let log = std::env::temp_dir().join(format!("{group}.log"));

    // Without the token it can archive nothing, and says so.
    let args = base(None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = onepipe_integration_tests::spawn_service(&bin, &args, &[], &["admin"], &log);
    let body = readyz_until(&refused.addrs["admin"], 503, "registry").await;
    assert!(
        body.contains("Unauthenticated") || body.contains("token"),
        "{body}"
    );
    // And keeps saying so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    readyz_until(&refused.addrs["admin"], 503, "registry").await;
    drop(refused);

    // With it, ready once the topic set is known (here empty: nothing to be assigned).
    let args = base(Some("r3ad"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut served = onepipe_integration_tests::spawn_service(&bin, &args, &[], &["admin"], &log);
    readyz_until(&served.addrs["admin"], 200, "ready").await;
    assert_eq!(served.terminate(), Some(0));
}
