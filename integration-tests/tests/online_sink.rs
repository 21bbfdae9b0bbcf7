//! online-sink end to end on the local stack: the real binary consuming the stack's Kafka
//! into the stack's PostgreSQL (and SQLite), against a registry of its own. Every
//! expected row is computed here from what the test produced, in Kafka order, by the
//! rule as DESIGN.md states it (highest version wins, ties to the later position; a
//! tombstone deletes what came before it), not by the sink's code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::DateTime;
use onepipe_client::WriterSchema;
use onepipe_integration_tests::{
    Service, create_dataset, dataset_writer, endpoint, fresh_database, fresh_store_url,
    latest_manifest, read_batches, register_schema, service_binary, spawn_service, start_copycat,
    start_registry, unique_name, wait_archived,
};
use onepipe_registry::auth::Tokens;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sqlx::Row as _;

/// 2026-11-24T00:00:00Z
const DAY0: i64 = 1_795_478_400_000;
const DAY_MS: i64 = 86_400_000;

const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"string"},
    {"name":"version","type":"long"},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"amount","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
    {"name":"id","type":"string"},
    {"name":"version","type":"long"},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"amount","type":"long"},
    {"name":"coupon","type":["null","string"],"default":null}]}"#;

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: String,
    version: i64,
    at: i64,
    amount: i64,
    coupon: Option<String>,
}

/// An online row as the test expects it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    version: i64,
    amount: i64,
    coupon: Option<String>,
    partition: i64,
    offset: i64,
    date: String,
}

/// What was produced, in order: (partition, offset, key, the order or a tombstone).
#[derive(Default)]
struct Log {
    sent: Vec<(i32, i64, String, Option<Order>)>,
}

impl Log {
    fn last_offsets(&self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for (p, o, _, _) in &self.sent {
            let e = out.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        out
    }

    /// Per key, the row the merge rule leaves, replaying each partition in offset order.
    fn expected(&self) -> BTreeMap<String, Row> {
        let mut sent = self.sent.clone();
        sent.sort_by_key(|(p, o, _, _)| (*p, *o));
        let mut rows: BTreeMap<String, Row> = BTreeMap::new();
        for (p, o, id, order) in sent {
            match order {
                None => {
                    rows.remove(&id);
                }
                Some(order) => {
                    let wins = rows.get(&id).is_none_or(|r| {
                        order.version > r.version
                            || (order.version == r.version
                                && (i64::from(p), o) > (r.partition, r.offset))
                    });
                    if wins {
                        let date = DateTime::from_timestamp_millis(order.at)
                            .unwrap()
                            .date_naive()
                            .to_string();
                        rows.insert(
                            id,
                            Row {
                                version: order.version,
                                amount: order.amount,
                                coupon: order.coupon,
                                partition: i64::from(p),
                                offset: o,
                                date,
                            },
                        );
                    }
                }
            }
        }
        rows
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", endpoint("ONEPIPE_KAFKA_BOOTSTRAP"))
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

fn encode(w: &WriterSchema, o: &Order) -> (Vec<u8>, Vec<u8>) {
    let mut record = json!({"id": o.id, "version": o.version, "at": o.at, "amount": o.amount});
    if w.registered().schema.canonical_form().contains("coupon") {
        record["coupon"] = match &o.coupon {
            Some(c) => json!({"string": c}),
            None => json!(null),
        };
    }
    let e = w.encode_json(&record).expect("a valid order");
    (e.key, e.value)
}

async fn send(
    p: &FutureProducer,
    topic: &str,
    key: &[u8],
    value: Option<&[u8]>,
    ts: i64,
) -> (i32, i64) {
    let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key).timestamp(ts);
    if let Some(v) = value {
        r = r.payload(v);
    }
    let d = p
        .send(r, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
    (d.partition, d.offset)
}

async fn send_order(p: &FutureProducer, topic: &str, w: &WriterSchema, o: &Order, log: &mut Log) {
    let (key, value) = encode(w, o);
    let (partition, offset) = send(p, topic, &key, Some(&value), o.at).await;
    log.sent
        .push((partition, offset, o.id.clone(), Some(o.clone())));
}

async fn send_tombstone(p: &FutureProducer, topic: &str, id: &str, log: &mut Log) {
    let key = onepipe_core::wire::encode_key(&[json!(id)]);
    let (partition, offset) = send(p, topic, &key, None, DAY0).await;
    log.sent.push((partition, offset, id.to_string(), None));
}

/// An order of key `i`: every version of one key has the same day.
fn order(i: i64, version: i64, coupon: Option<&str>) -> Order {
    Order {
        id: format!("o-{i:03}"),
        version,
        at: DAY0 + (i % 3) * DAY_MS + i * 1000 + version,
        amount: i * 100 + version,
        coupon: coupon.map(str::to_string),
    }
}

fn sink_binary() -> PathBuf {
    service_binary("onepipe-online-sink", "online-sink")
}

fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("onepipe-online-sink-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}.log", unique_name(name)))
}

fn spawn_sink(
    bin: &Path,
    registry: &str,
    database: &str,
    topic: &str,
    group: &str,
    log: &Path,
) -> Service {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    spawn_service(
        bin,
        &[
            "--registry",
            registry,
            "--kafka-bootstrap",
            &bootstrap,
            "--database",
            database,
            "--datasets",
            topic,
            "--group-id",
            group,
            "--batch-max-records",
            "200",
            "--batch-max-wait",
            "100ms",
            "--admin-listen",
            "127.0.0.1:0",
            "--kafka-option",
            "session.timeout.ms=6000",
            "--kafka-option",
            "heartbeat.interval.ms=500",
        ],
        &[("RUST_LOG", "info")],
        &["admin"],
        log,
    )
}

async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// The stored next offsets of a group and topic.
async fn stored(db: &sqlx::AnyPool, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    // Names the test made itself: safe as literals, the same in both dialects.
    let sql = format!(
        "SELECT CAST(\"partition\" AS BIGINT), next_offset FROM _onepipe_offsets \
         WHERE group_id = '{group}' AND topic = '{topic}'"
    );
    let rows = sqlx::query(&sql).fetch_all(db).await.unwrap_or_default();
    rows.iter()
        .map(|r| (r.get::<i64, _>(0) as i32, r.get::<i64, _>(1)))
        .collect()
}

/// Waits (up to 90 s) until the stored offsets are past every produced record.
async fn wait_applied(
    db: &sqlx::AnyPool,
    group: &str,
    topic: &str,
    last: &BTreeMap<i32, i64>,
    log: &Path,
) {
    let started = Instant::now();
    loop {
        let have = stored(db, group, topic).await;
        if last
            .iter()
            .all(|(p, o)| have.get(p).is_some_and(|n| *n > *o))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "online-sink has not applied everything after 90 s: produced up to {last:?}, \
             stored {have:?}; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn table_rows(db: &sqlx::AnyPool, table: &str, with_coupon: bool) -> BTreeMap<String, Row> {
    let coupon = if with_coupon {
        "coupon"
    } else {
        "CAST(NULL AS TEXT)"
    };
    let sql = format!(
        "SELECT id, version, amount, {coupon}, CAST(_kafka_partition AS BIGINT), _kafka_offset, \
         CAST(_date AS TEXT) FROM \"{table}\""
    );
    sqlx::query(&sql)
        .fetch_all(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (
                r.get::<String, _>(0),
                Row {
                    version: r.get(1),
                    amount: r.get(2),
                    coupon: r.get(3),
                    partition: r.get(4),
                    offset: r.get(5),
                    date: r.get(6),
                },
            )
        })
        .collect()
}

fn assert_rows(got: &BTreeMap<String, Row>, want: &BTreeMap<String, Row>, what: &str) {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let wrong: Vec<(&String, &Row, &Row)> = want
        .iter()
        .filter_map(|(k, w)| got.get(k).filter(|g| *g != w).map(|g| (k, g, w)))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "{what}: {} rows missing {missing:?}, {} extra {extra:?}, {} wrong (got, want) {:?}",
        missing.len(),
        extra.len(),
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Every record of a dead-letter topic: (key, reason header, source offset header).
fn dead_letters(topic: &str, expect: usize) -> Vec<(Option<Vec<u8>>, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", endpoint("ONEPIPE_KAFKA_BOOTSTRAP"))
        .set("group.id", unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let started = Instant::now();
    while out.len() < expect && started.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let header = |name: &str| {
                m.headers()
                    .and_then(|h| h.iter().find(|x| x.key == name))
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
                    .unwrap_or_default()
            };
            out.push((
                m.key().map(<[u8]>::to_vec),
                header("onepipe.reason"),
                header("onepipe.offset"),
            ));
        }
    }
    // Nothing more than expected arrives.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((
                m.key().map(<[u8]>::to_vec),
                "unexpected".into(),
                m.offset().to_string(),
            ));
        }
    }
    out
}

/// Out-of-order versions, exact retries, a schema evolution, tombstones and bad records,
/// through the real binary into `database`; then copydog on the same input agrees for
/// every key it holds one row of.
async fn merge_rule_end_to_end(database: String, compare_with_copydog: bool) {
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("online_orders");
    create_dataset(
        &registry,
        &topic,
        V1,
        "id",
        3,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--deletes",
            "--checks",
            "row_checksum,sum:amount",
        ],
    )
    .await;
    let (_r, w1) = dataset_writer(&registry, &topic).await;
    let p = producer();
    let mut log = Log::default();
    let group = unique_name("online");
    let sink_log = log_path("merge");
    let mut sink = spawn_sink(
        &sink_binary(),
        &registry,
        &database,
        &topic,
        &group,
        &sink_log,
    );

    // Round 1: 60 keys in up to 4 versions, newest first for odd keys (out of order),
    // every fifth key's newest version sent twice (an exact retry).
    for i in 0..60 {
        let n = 1 + i % 4;
        let versions: Vec<i64> = if i % 2 == 1 {
            (1..=n).rev().collect()
        } else {
            (1..=n).collect()
        };
        for v in versions {
            send_order(&p, &topic, &w1, &order(i, v, None), &mut log).await;
        }
        if i % 5 == 0 {
            send_order(&p, &topic, &w1, &order(i, n, None), &mut log).await;
        }
    }
    let db = pool(&database).await;
    wait_applied(&db, &group, &topic, &log.last_offsets(), &sink_log).await;
    let table = topic.replace('-', "_");
    assert_rows(
        &table_rows(&db, &table, false).await,
        &log.expected(),
        "after round 1",
    );

    // Round 2: schema v2 adds `coupon`; newer versions with it, an older one (must not
    // win), tombstones (keys 10..15), a version after a tombstone (a new row, even with
    // a lower version), and two bad records for the dead-letter topic.
    register_schema(&registry, &format!("{topic}-value"), V2).await;
    let (_r2, w2) = dataset_writer(&registry, &topic).await;
    for i in 0..20 {
        send_order(
            &p,
            &topic,
            &w2,
            &order(i, 10, Some(&format!("c-{i}"))),
            &mut log,
        )
        .await;
        send_order(&p, &topic, &w2, &order(i, 2, Some("stale")), &mut log).await;
    }
    for i in 10..15 {
        send_tombstone(&p, &topic, &format!("o-{i:03}"), &mut log).await;
    }
    send_order(
        &p,
        &topic,
        &w2,
        &order(12, 1, Some("after-delete")),
        &mut log,
    )
    .await;
    // A tombstone of a key never written deletes nothing.
    send_tombstone(&p, &topic, "o-999", &mut log).await;
    let bad = send(
        &p,
        &topic,
        br#"["bad-1"]"#,
        Some(b"\x00\x00\x00\x27\x0fnot avro"),
        DAY0,
    )
    .await;
    let bad_key = send(&p, &topic, b"not-json", None, DAY0).await;
    let mut last = log.last_offsets();
    for (part, off) in [bad, bad_key] {
        let e = last.entry(part).or_insert(off);
        *e = (*e).max(off);
    }
    wait_applied(&db, &group, &topic, &last, &sink_log).await;
    let want = log.expected();
    let got = table_rows(&db, &table, true).await;
    assert_rows(&got, &want, "after the evolution and the tombstones");
    assert!(!got.contains_key("o-010") && got.contains_key("o-012"));
    assert_eq!(got["o-012"].coupon.as_deref(), Some("after-delete"));
    assert_eq!(got["o-003"].version, 10, "an older version never wins");

    // The stored offsets are exactly the last applied positions.
    let have = stored(&db, &group, &topic).await;
    let next: BTreeMap<i32, i64> = last.iter().map(|(p, o)| (*p, o + 1)).collect();
    assert_eq!(have, next);

    let dlq = dead_letters(&format!("{topic}.dlq"), 2);
    assert_eq!(dlq.len(), 2, "two dead letters: {dlq:?}");
    let reasons: BTreeSet<String> = dlq.iter().map(|d| d.1.clone()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("schema") || r.contains("39")),
        "the undecodable record names why: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("tombstone key")),
        "the bad tombstone key names why: {reasons:?}"
    );
    assert!(dlq.iter().any(|d| d.2 == bad.1.to_string()));
    assert_eq!(sink.terminate(), Some(0), "SIGTERM stops the sink cleanly");

    if !compare_with_copydog {
        return;
    }
    // copydog on the same records: for keys never deleted (copydog keeps no deletes),
    // whose versions all share one date, the clean row is the online row.
    let store_url = fresh_store_url();
    let store = onepipe_core::store::open(&store_url).unwrap();
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (copycat, stop_copycat) = start_copycat(&bootstrap, &store_url, &topic, 1_000_000);
    wait_archived(store.as_ref(), &topic, &last).await;
    stop_copycat.send(()).unwrap();
    copycat.await.unwrap().expect("copycat stops cleanly");
    let registry_client =
        onepipe_client::SchemaRegistry::connect(&registry, Default::default()).unwrap();
    onepipe_copydog::run::run_topic(
        store.clone(),
        &registry_client,
        &topic,
        &onepipe_copydog::run::RunOptions::default(),
    )
    .await
    .expect("copydog runs");
    let m = latest_manifest(store.as_ref(), &topic).await;
    let mut clean: BTreeMap<String, Row> = BTreeMap::new();
    for (date, entry) in &m.dates {
        for f in &entry.files {
            for b in read_batches(store.as_ref(), f).await {
                use arrow::array::{Array, AsArray};
                use arrow::datatypes::{Int32Type, Int64Type};
                let col = |n: &str| b.column_by_name(n).unwrap().clone();
                let (ids, vs, amounts, coupons) =
                    (col("id"), col("version"), col("amount"), col("coupon"));
                let (parts, offs) = (col("_kafka_partition"), col("_kafka_offset"));
                for i in 0..b.num_rows() {
                    let coupons = coupons.as_string::<i32>();
                    clean.insert(
                        ids.as_string::<i32>().value(i).to_string(),
                        Row {
                            version: vs.as_primitive::<Int64Type>().value(i),
                            amount: amounts.as_primitive::<Int64Type>().value(i),
                            coupon: coupons.is_valid(i).then(|| coupons.value(i).to_string()),
                            partition: i64::from(parts.as_primitive::<Int32Type>().value(i)),
                            offset: offs.as_primitive::<Int64Type>().value(i),
                            date: date.to_string(),
                        },
                    );
                }
            }
        }
    }
    let deleted: BTreeSet<String> = (10..15).map(|i| format!("o-{i:03}")).collect();
    let comparable: BTreeMap<String, Row> = want
        .into_iter()
        .filter(|(k, _)| !deleted.contains(k))
        .collect();
    let clean: BTreeMap<String, Row> = clean
        .into_iter()
        .filter(|(k, _)| !deleted.contains(k))
        .collect();
    assert_eq!(comparable.len(), 55);
    assert_rows(
        &clean,
        &comparable,
        "copydog's clean rows against the online table",
    );

    // The verifier's own view of the online table (winners over every date of raw/ up to
    // the stored offsets, after the tombstones) agrees, and names keys changed by hand.
    let online = onepipe_verifier::online::Online {
        store: onepipe_verifier::verify::Warehouse {
            name: "online".to_string(),
            db: onepipe_verifier::warehouse::open(&database).await.unwrap(),
            schema: "public".to_string(),
        },
        group: group.clone(),
    };
    let verify = || async {
        onepipe_verifier::online::check(
            store.clone(),
            &registry_client,
            &topic,
            &online,
            &Default::default(),
            20,
        )
        .await
        .expect("the online table can be checked")
    };
    let report = verify().await;
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);
    assert!(report.keys.is_empty(), "{:?}", report.keys);
    let rows_line = |date: &str, store: &str| {
        report
            .lines
            .iter()
            .find(|l| l.date == date && l.store == store && l.check == "rows")
            .map(|l| l.value.clone())
    };
    let per_date = rows_per_date(&log.expected());
    assert!(!per_date.is_empty());
    for (date, n) in &per_date {
        assert_eq!(
            rows_line(date, "online").as_deref(),
            Some(n.to_string().as_str())
        );
        assert_eq!(
            rows_line(date, "online (expected)").as_deref(),
            Some(n.to_string().as_str())
        );
    }
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.check == "applied offsets" && l.verdict == "ok"),
        "{:?}",
        report.lines
    );
    sqlx::query(&format!(
        "UPDATE \"{table}\" SET amount = amount + 1 WHERE id = 'o-005'"
    ))
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(&format!("DELETE FROM \"{table}\" WHERE id = 'o-007'"))
        .execute(&db)
        .await
        .unwrap();
    let report = verify().await;
    assert!(report.mismatches > 0);
    let named: BTreeMap<String, String> = report
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.problem.clone()))
        .collect();
    assert_eq!(
        named,
        BTreeMap::from([
            ("o-005".to_string(), "different".to_string()),
            ("o-007".to_string(), "missing".to_string()),
        ]),
        "{:?} {:#?}",
        report.keys,
        report
            .lines
            .iter()
            .filter(|l| l.verdict != "ok")
            .collect::<Vec<_>>()
    );
}

/// Rows per date of `rows`.
fn rows_per_date(rows: &BTreeMap<String, Row>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows.values() {
        *out.entry(r.date.clone()).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_applies_the_merge_rule_evolution_and_tombstones() {
    merge_rule_end_to_end(fresh_database("it_online").await, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_applies_the_merge_rule_evolution_and_tombstones() {
    let dir = std::env::temp_dir().join(unique_name("online-sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("online.db").display());
    merge_rule_end_to_end(url, false).await;
}

/// Produces versions of `keys` keys from a task until `stop` is set: blocks of 8
/// versions per key, each block shuffled (versions arrive out of order), a short pause
/// every 20 records; returns the log.
fn produce_until(
    topic: String,
    w: WriterSchema,
    keys: i64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Log> {
    tokio::spawn(async move {
        let p = producer();
        let mut log = Log::default();
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut n = 0usize;
        for block in 0i64.. {
            let mut all: Vec<(i64, i64)> = (0..keys)
                .flat_map(|k| (1..=8).map(move |v| (k, block * 8 + v)))
                .collect();
            for i in (1..all.len()).rev() {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                all.swap(i, (s >> 33) as usize % (i + 1));
            }
            for (k, v) in all {
                if stop.load(Ordering::SeqCst) {
                    return log;
                }
                send_order(&p, &topic, &w, &order(k, v, None), &mut log).await;
                n += 1;
                if n.is_multiple_of(20) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        log
    })
}

/// Waits (up to 60 s) until the stored offsets of all partitions together moved `by`
/// records past `from`; returns the new total.
async fn wait_progress(
    db: &sqlx::AnyPool,
    group: &str,
    topic: &str,
    from: i64,
    by: i64,
    log: &Path,
) -> i64 {
    let started = Instant::now();
    loop {
        let total: i64 = stored(db, group, topic).await.values().sum();
        if total >= from + by {
            return total;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "online-sink applied {} of {by} records in 60 s; see {}",
            total - from,
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No row ever moves to a lower version between two looks at the table.
fn assert_no_regression(before: &BTreeMap<String, Row>, after: &BTreeMap<String, Row>) {
    for (k, b) in before {
        let a = after
            .get(k)
            .unwrap_or_else(|| panic!("row {k} disappeared"));
        assert!(
            a.version >= b.version,
            "row {k} went back from version {} to {}",
            b.version,
            a.version
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_three_times_loses_nothing_and_never_regresses() {
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("online_kill");
    create_dataset(
        &registry,
        &topic,
        V1,
        "id",
        3,
        &["--merge", "max_by:version"],
    )
    .await;
    let (_r, w) = dataset_writer(&registry, &topic).await;
    let database = fresh_database("it_online_kill").await;
    let db = pool(&database).await;
    let table = topic.replace('-', "_");
    let group = unique_name("online");
    let bin = sink_binary();
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(topic.clone(), w, 300, stop.clone());
    let mut seen: BTreeMap<String, Row> = BTreeMap::new();
    let mut applied = 0;
    for round in 0..3 {
        let log = log_path(&format!("kill-{round}"));
        let mut sink = spawn_sink(&bin, &registry, &database, &topic, &group, &log);
        // Killed only once it applies again (after the group let it in), mid-stream.
        applied = wait_progress(&db, &group, &topic, applied, 300, &log).await;
        let now = table_rows(&db, &table, false).await;
        assert_no_regression(&seen, &now);
        seen = now;
        assert!(!producing.is_finished(), "records are still being produced");
        sink.child.kill().expect("SIGKILL");
        let _ = sink.child.wait();
    }
    stop.store(true, Ordering::SeqCst);
    let log = producing.await.unwrap();
    assert!(log.sent.len() > 900, "{} records produced", log.sent.len());
    let sink_log = log_path("kill-final");
    let mut sink = spawn_sink(&bin, &registry, &database, &topic, &group, &sink_log);
    wait_applied(&db, &group, &topic, &log.last_offsets(), &sink_log).await;
    let got = table_rows(&db, &table, false).await;
    assert_no_regression(&seen, &got);
    assert_rows(&got, &log.expected(), "after three SIGKILLs");
    let next: BTreeMap<i32, i64> = log
        .last_offsets()
        .iter()
        .map(|(p, o)| (*p, o + 1))
        .collect();
    assert_eq!(
        stored(&db, &group, &topic).await,
        next,
        "stored offsets are the last applied positions"
    );
    assert_eq!(sink.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_with_rebalances_give_the_same_rows() {
    let (registry, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("online_pair");
    create_dataset(
        &registry,
        &topic,
        V1,
        "id",
        4,
        &["--merge", "max_by:version"],
    )
    .await;
    let (_r, w) = dataset_writer(&registry, &topic).await;
    let database = fresh_database("it_online_pair").await;
    let db = pool(&database).await;
    let table = topic.replace('-', "_");
    let group = unique_name("online");
    let bin = sink_binary();
    let (log_a, log_b) = (log_path("pair-a"), log_path("pair-b"));
    let mut a = spawn_sink(&bin, &registry, &database, &topic, &group, &log_a);
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(topic.clone(), w, 250, stop.clone());
    let applied = wait_progress(&db, &group, &topic, 0, 300, &log_a).await;
    // B joins: the group rebalances while records flow.
    let mut b = spawn_sink(&bin, &registry, &database, &topic, &group, &log_b);
    let applied = wait_progress(&db, &group, &topic, applied, 1000, &log_b).await;
    // A leaves: B takes every partition over from A's stored offsets.
    assert_eq!(a.terminate(), Some(0));
    wait_progress(&db, &group, &topic, applied, 500, &log_b).await;
    stop.store(true, Ordering::SeqCst);
    let log = producing.await.unwrap();
    wait_applied(&db, &group, &topic, &log.last_offsets(), &log_b).await;
    assert_rows(
        &table_rows(&db, &table, false).await,
        &log.expected(),
        "two replicas",
    );
    let next: BTreeMap<i32, i64> = log
        .last_offsets()
        .iter()
        .map(|(p, o)| (*p, o + 1))
        .collect();
    assert_eq!(stored(&db, &group, &topic).await, next);
    let b_log = std::fs::read_to_string(&log_b).unwrap();
    let a_log = std::fs::read_to_string(&log_a).unwrap();
    // A had partitions taken away while it ran (B joined), and B got partitions twice
    // (when it joined, and when A left).
    assert!(
        a_log.matches("partitions revoked").count() >= 2,
        "A rebalanced while running"
    );
    assert!(
        b_log.matches("partitions revoked").count() >= 1,
        "B rebalanced when A left"
    );
    assert!(
        b_log.contains("partition assigned"),
        "B was assigned partitions"
    );
    assert_eq!(b.terminate(), Some(0));
}
