//! online-sink against the stack's Kafka and PostgreSQL, the release binary of this build:
//!
//! - **Throughput:** a backlog of `BENCH_ROWS` records (default 300 000; 3 partitions, a
//!   fifth of them newer versions of earlier keys) applied by the sink, rows/s from its
//!   first committed batch to its last (the group join and start-up left out), against
//!   `psql -f` applying the same records to a table of the same columns with one
//!   `INSERT … ON CONFLICT (id) DO UPDATE … WHERE <newer>` per batch of 5 000 (deduplicated
//!   per batch as the sink does, each its own transaction). Median of `BENCH_ROUNDS`
//!   (default 3) rounds, each side into a fresh database.
//! - **Freshness:** records produced at a steady 5 000/s for `BENCH_SECONDS` (default 20)
//!   while the sink runs; each record's time from the producer's send to the commit that
//!   makes it visible, seen by polling the sink's `_onepipe_offsets` (written in the same
//!   transaction as the rows) every 5 ms. p50 and p99.
//!
//! `make bench`, or `eval "$(deploy/local/stack.sh env)"; cargo bench -p onepipe-online-sink
//! --bench freshness`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use onepipe_core::metadata::TopicMetadata;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::Connection;

const SCHEMA: &str = r#"{"type":"record","name":"Account","fields":[
  {"name":"id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"amount","type":"long"},
  {"name":"note","type":"string"},
  {"name":"sent_at","type":"long"}]}"#;
const PARTITIONS: i32 = 3;
const BATCH: usize = 5000;
const RATE: u64 = 5000;
const GROUP: &str = "bench-online";
const DAY0: i64 = 1_795_478_400_000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: eval \"$(deploy/local/stack.sh env)\" first")
    })
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unique(base: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{base}_{}", nanos % 1_000_000_000_000)
}

async fn fresh_database(base: &str) -> String {
    let url = env("ONEPIPE_DATABASE_URL");
    let name = unique(base);
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (server, _) = url.rsplit_once('/').expect("a database URL");
    format!("{server}/{name}")
}

/// A registry in process on a fresh database, with `topic` registered (max_by:version).
async fn registry(topics: &[&str]) -> (String, i64, tokio::sync::oneshot::Sender<()>) {
    use onepipe_registry::grpc::{self, GrpcService};
    use onepipe_registry::service::Registry;
    use onepipe_registry::store::Store;
    let url = fresh_database("bench_registry").await;
    let registry = Arc::new(Registry::new(
        Store::open(&url).await.expect("registry store"),
    ));
    let mut id = 0;
    for t in topics {
        id = registry
            .register(&format!("{t}-value"), SCHEMA)
            .await
            .expect("register")
            .id;
        let mut meta = TopicMetadata::new(*t, vec!["id".to_string()]);
        meta.merge = "max_by:version".parse().expect("merge");
        registry.put_topic(&meta, true).await.expect("metadata");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(grpc::run(
        listener,
        GrpcService::new(registry, Default::default()),
        None,
        async {
            let _ = stopped.await;
        },
    ));
    (format!("http://{addr}"), id, stop)
}

async fn create_topics(bootstrap: &str, topics: &[&str]) {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// One record: key `a-N`, its version, and the wall time it is sent at (µs).
struct Rec {
    key: usize,
    version: i64,
}

fn encode(schema: &apache_avro::Schema, id: i64, r: &Rec, sent_at: i64) -> (Vec<u8>, Vec<u8>) {
    let value = Value::Record(vec![
        ("id".into(), Value::String(format!("a-{:08}", r.key))),
        ("version".into(), Value::Long(r.version)),
        ("amount".into(), Value::Long(r.key as i64 * 7 + r.version)),
        (
            "note".into(),
            Value::String(format!("note {} with 'quotes' and \\ slashes", r.key % 977)),
        ),
        ("sent_at".into(), Value::Long(sent_at)),
    ]);
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("encode");
    let key = onepipe_core::wire::encode_key(&[serde_json::json!(format!("a-{:08}", r.key))]);
    (key, onepipe_core::wire::frame(id as u32, &datum))
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

fn spawn_sink(registry: &str, database: &str, topic: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_online-sink"))
        .args([
            "--registry",
            registry,
            "--kafka-bootstrap",
            &env("ONEPIPE_KAFKA_BOOTSTRAP"),
            "--database",
            database,
            "--datasets",
            topic,
            "--group-id",
            GROUP,
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn online-sink")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The next offsets the sink stored for `topic` (empty until its first batch).
async fn stored(db: &mut sqlx::PgConnection, topic: &str) -> BTreeMap<i32, i64> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT \"partition\", next_offset FROM _onepipe_offsets WHERE group_id = $1 AND topic = $2",
    )
    .bind(GROUP)
    .bind(topic)
    .fetch_all(&mut *db)
    .await
    .unwrap_or_default();
    rows.into_iter().collect()
}

async fn connect(url: &str) -> sqlx::PgConnection {
    for _ in 0..100 {
        if let Ok(c) = sqlx::PgConnection::connect(url).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {url}")
}

/// Sends `records` as fast as Kafka takes them; their (partition, offset) in order.
async fn produce_backlog(
    p: &FutureProducer,
    topic: &str,
    schema: &apache_avro::Schema,
    id: i64,
    records: &[Rec],
) -> Vec<(i32, i64)> {
    let mut out = Vec::with_capacity(records.len());
    for chunk in records.chunks(10_000) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|r| {
                let (k, v) = encode(schema, id, r, 0);
                let partition = (r.key % PARTITIONS as usize) as i32;
                p.send_result(
                    FutureRecord::to(topic)
                        .key(&k)
                        .payload(&v)
                        .partition(partition)
                        .timestamp(DAY0 + r.key as i64),
                )
                .expect("queue")
            })
            .collect();
        for s in sends {
            let d = s.await.expect("delivery").expect("delivered");
            out.push((d.partition, d.offset));
        }
    }
    out
}

/// The psql side: the same records, per partition in offset order, in batches of
/// [`BATCH`], each batch's winner per key in one `INSERT … ON CONFLICT`.
fn baseline_sql(records: &[Rec], positions: &[(i32, i64)]) -> String {
    let mut by_partition: BTreeMap<i32, Vec<(i64, &Rec)>> = BTreeMap::new();
    for (r, (p, o)) in records.iter().zip(positions) {
        by_partition.entry(*p).or_default().push((*o, r));
    }
    let mut sql = String::from(
        "CREATE TABLE base (id text PRIMARY KEY, version bigint, amount bigint, note text, \
         sent_at bigint, _kafka_partition integer NOT NULL, _kafka_offset bigint NOT NULL, \
         _kafka_timestamp timestamptz NOT NULL, _date date NOT NULL);\n",
    );
    for (p, mut rows) in by_partition {
        rows.sort_by_key(|(o, _)| *o);
        for batch in rows.chunks(BATCH) {
            let mut best: BTreeMap<usize, (i64, &Rec)> = BTreeMap::new();
            for (o, r) in batch {
                let e = best.entry(r.key).or_insert((*o, r));
                if (r.version, *o) >= (e.1.version, e.0) {
                    *e = (*o, r);
                }
            }
            sql.push_str(
                "INSERT INTO base (id, version, amount, note, sent_at, _kafka_partition, \
                 _kafka_offset, _kafka_timestamp, _date) VALUES ",
            );
            for (i, (o, r)) in best.values().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let ts = DAY0 + r.key as i64;
                sql.push_str(&format!(
                    "('a-{:08}',{},{},'note {} with ''quotes'' and \\ slashes',0,{p},{o},\
                     to_timestamp({}::double precision / 1000),'2026-11-24')",
                    r.key,
                    r.version,
                    r.key as i64 * 7 + r.version,
                    r.key % 977,
                    ts
                ));
            }
            sql.push_str(
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version, amount = \
                 excluded.amount, note = excluded.note, sent_at = excluded.sent_at, \
                 _kafka_partition = excluded._kafka_partition, _kafka_offset = \
                 excluded._kafka_offset, _kafka_timestamp = excluded._kafka_timestamp, _date \
                 = excluded._date WHERE (excluded.version, excluded._kafka_partition, \
                 excluded._kafka_offset) > (base.version, base._kafka_partition, \
                 base._kafka_offset);\n",
            );
        }
    }
    sql
}

/// Rows/s of the sink over a backlog: from its first committed batch to the last.
async fn sink_round(
    registry: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    total: usize,
) -> (f64, usize) {
    let url = fresh_database("bench_online").await;
    let child = spawn_sink(registry, &url, topic);
    let mut db = connect(&url).await;
    let (mut first, mut first_done) = (None, 0i64);
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let now = stored(&mut db, topic).await;
        let applied: i64 = now.values().sum();
        if first.is_none() && applied > 0 {
            first = Some(Instant::now());
            first_done = applied;
        }
        if ends.iter().all(|(p, e)| now.get(p).is_some_and(|n| n >= e)) {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not catch up: {now:?} of {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop(child);
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{topic}\""))
        .fetch_one(&mut db)
        .await
        .expect("count");
    let secs = (done - first.expect("a first batch")).as_secs_f64();
    let records = ends.values().sum::<i64>() - first_done;
    assert_eq!(ends.values().sum::<i64>() as usize, total);
    (records as f64 / secs.max(1e-6), rows as usize)
}

/// Rows/s of `psql -f` with the baseline file, into a fresh database.
async fn psql_round(sql_file: &std::path::Path, total: usize) -> (f64, usize) {
    let url = fresh_database("bench_psql").await;
    let started = Instant::now();
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-X", "-f"])
        .arg(sql_file)
        .arg(&url)
        .stdout(Stdio::null())
        .status()
        .expect("psql (postgresql-client) runs");
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "psql failed");
    let mut db = connect(&url).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM base")
        .fetch_one(&mut db)
        .await
        .expect("count");
    (total as f64 / secs, rows as usize)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Produces at [`RATE`]/s for `seconds` while the sink runs; each record's send-to-visible
/// time in ms, sorted.
async fn freshness(
    registry: &str,
    topic: &str,
    schema: &apache_avro::Schema,
    id: i64,
    seconds: u64,
) -> Vec<f64> {
    let bootstrap = env("ONEPIPE_KAFKA_BOOTSTRAP");
    let url = fresh_database("bench_fresh").await;
    let p = producer(&bootstrap);
    // One record per partition, applied before the clock starts: the group has joined.
    let warm: Vec<Rec> = (0..PARTITIONS as usize)
        .map(|k| Rec { key: k, version: 0 })
        .collect();
    let warm_at = produce_backlog(&p, topic, schema, id, &warm).await;
    let child = spawn_sink(registry, &url, topic);
    let mut db = connect(&url).await;
    loop {
        let now = stored(&mut db, topic).await;
        if warm_at
            .iter()
            .all(|(p, o)| now.get(p).is_some_and(|n| n > o))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The poller: every 5 ms, the stored offsets and when they were seen.
    let (stop_poll, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let poll_topic = topic.to_string();
    let poller = tokio::spawn(async move {
        let mut seen: Vec<(Instant, BTreeMap<i32, i64>)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    let now = stored(&mut db, &poll_topic).await;
                    seen.push((Instant::now(), now));
                }
            }
        }
        seen
    });

    let total = (RATE * seconds) as usize;
    let start = Instant::now();
    let mut pending = Vec::with_capacity(total);
    for i in 0..total {
        // Paced: record i leaves at i / RATE seconds.
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / RATE);
        let wait = due.saturating_duration_since(Instant::now());
        if wait > Duration::from_millis(1) {
            tokio::time::sleep(wait).await;
        }
        let r = Rec {
            key: 1_000 + i,
            version: 1,
        };
        let (k, v) = encode(schema, id, &r, 0);
        let sent = Instant::now();
        let fut = p
            .send_result(
                FutureRecord::to(topic)
                    .key(&k)
                    .payload(&v)
                    .partition((i % PARTITIONS as usize) as i32),
            )
            .expect("queue");
        pending.push((sent, fut));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    let mut sent = Vec::with_capacity(total);
    for (at, fut) in pending {
        let d = fut.await.expect("delivery").expect("delivered");
        sent.push((at, d.partition, d.offset));
    }
    let last: BTreeMap<i32, i64> = sent.iter().fold(BTreeMap::new(), |mut m, (_, p, o)| {
        let e = m.entry(*p).or_insert(*o);
        *e = (*e).max(*o);
        m
    });
    // Wait for the last record, then stop polling.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut check = connect(&url).await;
    loop {
        let now = stored(&mut check, topic).await;
        if last.iter().all(|(p, o)| now.get(p).is_some_and(|n| n > o)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not apply everything"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = stop_poll.send(());
    let seen = poller.await.expect("poller");
    stop(child);
    println!("  produced {total} records at {offered:.0}/s");
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(at, p, o)| {
            // The first poll that shows the record applied.
            let i = seen.partition_point(|(_, m)| m.get(p).is_none_or(|n| n <= o));
            let visible = seen.get(i).map_or_else(Instant::now, |(t, _)| *t);
            visible.saturating_duration_since(*at).as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

#[tokio::main]
async fn main() {
    let bootstrap = env("ONEPIPE_KAFKA_BOOTSTRAP");
    let rows = knob("BENCH_ROWS", 300_000) as usize;
    let rounds = knob("BENCH_ROUNDS", 3).max(1);
    let seconds = knob("BENCH_SECONDS", 20).max(1);
    let backlog = unique("bench_online_backlog");
    let fresh = unique("bench_online_fresh");
    create_topics(&bootstrap, &[&backlog, &fresh]).await;
    let (registry_url, id, _stop) = registry(&[&backlog, &fresh]).await;
    let schema = apache_avro::Schema::parse_str(SCHEMA).expect("schema");

    // The backlog: keys 0..4/5 N, then newer versions of a quarter of them.
    let keys = rows * 4 / 5;
    let records: Vec<Rec> = (0..keys)
        .map(|k| Rec { key: k, version: 1 })
        .chain((0..rows - keys).map(|i| Rec {
            key: (i * 4) % keys,
            version: 2,
        }))
        .collect();
    let p = producer(&bootstrap);
    let positions = produce_backlog(&p, &backlog, &schema, id, &records).await;
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (part, o) in &positions {
        let e = ends.entry(*part).or_insert(0);
        *e = (*e).max(o + 1);
    }
    let sql_file = std::env::temp_dir().join(format!("{backlog}.sql"));
    std::fs::File::create(&sql_file)
        .and_then(|mut f| f.write_all(baseline_sql(&records, &positions).as_bytes()))
        .expect("baseline file");

    println!("online-sink: {rows} records ({keys} keys), {rounds} rounds");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (s, sink_rows) = sink_round(&registry_url, &backlog, &ends, rows).await;
        let (b, base_rows) = psql_round(&sql_file, rows).await;
        assert_eq!(sink_rows, keys, "one row per key in the sink's table");
        assert_eq!(base_rows, keys, "one row per key in psql's table");
        println!(
            "  round {round}: online-sink {s:.0} records/s, psql INSERT … ON CONFLICT {b:.0} records/s, ratio {:.2}",
            s / b
        );
        ours.push(s);
        theirs.push(b);
    }
    let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
    println!(
        "online-sink throughput: {:.0} records/s; psql (one INSERT … ON CONFLICT per {BATCH}-record batch): {:.0} records/s; ratio {:.2} (median of {rounds})",
        median(ours),
        median(theirs),
        median(ratios)
    );
    let _ = std::fs::remove_file(&sql_file);

    let lat = freshness(&registry_url, &fresh, &schema, id, seconds).await;
    println!(
        "online-sink freshness at {RATE} records/s for {seconds}s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} records; send to visible commit, polled every 5 ms; --batch-max-wait 200ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
        lat.len()
    );
}
