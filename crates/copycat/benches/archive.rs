//! copycat's archive throughput next to a plain rdkafka consumer reading the same topic
//! to nowhere, in one run, against the local stack (Kafka and the S3 server).
//!
//! `BENCH_RECORDS` records (default 3 000 000, ~860 MB; a ~20-byte key, a 200-byte
//! value, one header) are produced into a fresh 3-partition topic. (The run must be long
//! enough that copycat's fixed tail, noticing the partitions went idle and writing the
//! last files, does not dominate.) Then, in turn, twice each:
//! - baseline: a `BaseConsumer` assigned to the 3 partitions from the beginning polls
//!   every record and drops it;
//! - copycat: `archiver::run` in this process (its own consumer group, `--max-file-bytes
//!   16MiB`), from the moment its partitions are assigned until the metric of archived
//!   records says every record is uploaded and checkpointed in a fresh S3 prefix.
//!
//! The best of the two runs of each is reported, in MB/s of record bytes (keys, values,
//! headers) and records/s, and the ratio copycat / baseline. Nothing is asserted.
//!
//! `make bench` (needs `deploy/local/stack.sh up`), or
//! `eval "$(deploy/local/stack.sh env)"; cargo bench -p onepipe-copycat --bench archive`.

use std::time::{Duration, Instant};

use clap::Parser;
use onepipe_core::admin::Metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
const VALUE_LEN: usize = 200;

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the stack (deploy/local/stack.sh up) and eval \"$(deploy/local/stack.sh env)\"")
    })
}

/// `{base}-{8 hex digits}`. Short on purpose: the stack's S3 server (s3s-fs) keeps a
/// side file named after the base64 of the whole key, which must fit in 255 bytes.
fn unique(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{base}-{:08x}",
        (nanos as u32) ^ std::process::id().rotate_left(16)
    )
}

async fn setup(bootstrap: &str, topic: &str, n: u64) -> u64 {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    r[0].as_ref().unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut value = [0u8; VALUE_LEN];
    let mut bytes = 0u64;
    let mut pending = Vec::new();
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..n {
        for (j, b) in value.iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 7) as u8;
        }
        let key = format!("[\"user-{}\",{i}]", i % 100_000);
        let tp = format!("00-{i:032x}-00f067aa0ba902b7-01");
        bytes += (key.len() + value.len() + "traceparent".len() + tp.len()) as u64;
        let record = FutureRecord::to(topic)
            .partition((i % PARTITIONS as u64) as i32)
            .key(key.as_bytes())
            .payload(&value[..])
            .timestamp(now - (n - i) as i64)
            .headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(tp.as_bytes()),
            }));
        pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        if pending.len() >= 100_000 {
            for d in pending.drain(..) {
                d.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    bytes
}

fn baseline(bootstrap: &str, topic: &str, n: u64) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("bench-baseline"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    let started = Instant::now();
    consumer.assign(&tpl).unwrap();
    let mut seen = 0u64;
    let mut sink = 0usize;
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            // Touch the record so the loop does what a real reader would.
            sink = sink
                .wrapping_add(m.payload().map_or(0, <[u8]>::len) + m.key().map_or(0, <[u8]>::len));
            seen += 1;
        }
    }
    std::hint::black_box(sink);
    started.elapsed()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn copycat(bootstrap: &str, topic: &str, n: u64) -> Duration {
    let store_url = format!(
        "{}/bench-{}",
        env("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        unique("cc")
    );
    let config = onepipe_copycat::Config::parse_from([
        "copycat",
        "--kafka-bootstrap",
        bootstrap,
        "--object-store",
        &store_url,
        "--topics",
        topic,
        "--group-id",
        &unique("bench-copycat"),
        "--max-file-bytes",
        "16MiB",
        "--idle-flush",
        "200ms",
    ]);
    let store = onepipe_core::store::open(&store_url).unwrap();
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(onepipe_copycat::archiver::run(
        config,
        store,
        metrics.clone(),
        std::sync::Arc::new(onepipe_copycat::health::Health::new()),
        async {
            let _ = stopped.await;
        },
    ));
    let mut started = None;
    loop {
        if task.is_finished() {
            panic!("copycat stopped: {:?}", task.await);
        }
        let text = metrics.render();
        if started.is_none()
            && metric(&text, onepipe_copycat::metrics::PARTITIONS) >= PARTITIONS as f64
        {
            started = Some(Instant::now());
        }
        if metric(&text, onepipe_copycat::metrics::RECORDS) >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.expect("partitions assigned").elapsed();
    let text = metrics.render();
    let files = metric(&text, onepipe_copycat::metrics::FILES);
    println!(
        "  {files} files, {:.1} MB of Parquet, mean upload + checkpoint {:.0} ms",
        metric(&text, onepipe_copycat::metrics::FILE_BYTES) / 1e6,
        metric(&text, onepipe_copycat::metrics::UPLOAD_MS) / files.max(1.0)
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    took
}

#[tokio::main]
async fn main() {
    let _telemetry = onepipe_core::telemetry::init("bench").unwrap();
    let bootstrap = env("ONEPIPE_KAFKA_BOOTSTRAP");
    let n: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let topic = unique("bench_cc");
    let t = Instant::now();
    let bytes = setup(&bootstrap, &topic, n).await;
    println!(
        "produced {n} records, {:.1} MB of keys, values and headers, into {topic} in {:.1?}",
        bytes as f64 / 1e6,
        t.elapsed()
    );
    let mut base = Duration::MAX;
    let mut cat = Duration::MAX;
    for round in 0..2 {
        let (b, t) = (bootstrap.clone(), topic.clone());
        let d = tokio::task::spawn_blocking(move || baseline(&b, &t, n))
            .await
            .unwrap();
        println!("round {round}: plain consumer {d:.2?}");
        base = base.min(d);
        let d = copycat(&bootstrap, &topic, n).await;
        println!("round {round}: copycat        {d:.2?}");
        cat = cat.min(d);
    }
    let line = |name: &str, d: Duration| {
        let s = d.as_secs_f64();
        println!(
            "{name:<16} {:>8.1} MB/s {:>10.0} records/s",
            bytes as f64 / 1e6 / s,
            n as f64 / s
        );
    };
    line("plain consumer", base);
    line("copycat archive", cat);
    println!(
        "ratio copycat / plain consumer: {:.2}",
        base.as_secs_f64() / cat.as_secs_f64()
    );
}
