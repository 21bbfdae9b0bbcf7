//! copydog against the stack's S3 server and a real registry. Raw files are written the
//! way copycat writes them (its own encoder), with inputs chosen to hit each rule; every
//! expected result is computed here from the generated input, independently of copydog.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use onepipe_archive::checkpoint::{Claim, claim, claim_path};
use onepipe_archive::delta;
use onepipe_archive::manifest::{self, Manifest};
use onepipe_client::codec::WriterSchema;
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_copydog::run::{RunOptions, run_topic};
use onepipe_copydog::vacuum::vacuum;
use onepipe_integration_tests::{
    RawRecord, create_dataset, dataset_writer, endpoint, fresh_store_url, latest_manifest,
    read_batches, register_schema, start_copycat, start_registry, unique_name, wait_archived,
    write_raw,
};
use onepipe_registry::auth::Tokens;
use serde_json::{Value as Json, json};

const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"order_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":"long"}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"order_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount","type":"long"},
  {"name":"channel","type":"string","default":"web"}]}"#;

/// 2026-11-24T00:00:00Z
const DAY0: i64 = 1_795_478_400_000;
const DAY_MS: i64 = 86_400_000;

/// The setup most copydog tests share: a registry, an `orders` dataset (max_by:version,
/// one partition) and a fresh store on the stack's S3 server.
struct Orders {
    registry_url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    topic: String,
    registry: onepipe_client::SchemaRegistry,
    w: onepipe_client::WriterSchema,
    store_url: String,
    store: Arc<dyn ObjectStore>,
}

impl Orders {
    async fn new(prefix: &str) -> Self {
        let (registry_url, _stop) = start_registry(Tokens::default()).await;
        let topic = unique_name(prefix);
        create_dataset(
            &registry_url,
            &topic,
            ORDER_V1,
            "order_id",
            1,
            &["--merge", "max_by:version"],
        )
        .await;
        let (registry, w) = dataset_writer(&registry_url, &topic).await;
        let store_url = fresh_store_url();
        let store = onepipe_core::store::open(&store_url).unwrap();
        Orders {
            registry_url,
            _stop,
            topic,
            registry,
            w,
            store_url,
            store,
        }
    }

    /// A raw record of order `id` at `version`, at day `day` after DAY0 (its Kafka time,
    /// which dates it).
    fn record(&self, offset: i64, id: &str, version: i64, day: i64) -> RawRecord {
        let at = DAY0 + day * DAY_MS;
        let e = self
            .w
            .encode_json(&json!({"order_id": id, "version": version, "at": at, "amount": 1}))
            .unwrap();
        (offset, at, Some(e.key), Some(e.value))
    }
}

fn store() -> Arc<dyn ObjectStore> {
    onepipe_core::store::open(&fresh_store_url()).unwrap()
}

/// The rows of a date as the newest manifest names them: (order_id, version, amount,
/// partition, offset), plus the channel column when present.
async fn clean_rows(
    store: &dyn ObjectStore,
    m: &Manifest,
    date: NaiveDate,
) -> Vec<(String, i64, i64, i32, i64, Option<String>)> {
    let mut out = Vec::new();
    for f in &m.dates[&date].files {
        for b in read_batches(store, f).await {
            let ids = b
                .column_by_name("order_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let versions = b
                .column_by_name("version")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let amounts = b
                .column_by_name("amount")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let parts = b
                .column_by_name("_kafka_partition")
                .unwrap()
                .as_primitive::<Int32Type>()
                .clone();
            let offsets = b
                .column_by_name("_kafka_offset")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone();
            let channel = b
                .column_by_name("channel")
                .map(|c| c.as_string::<i32>().clone());
            for i in 0..b.num_rows() {
                out.push((
                    ids.value(i).to_string(),
                    versions.value(i),
                    amounts.value(i),
                    parts.value(i),
                    offsets.value(i),
                    channel.as_ref().map(|c| c.value(i).to_string()),
                ));
            }
        }
    }
    out
}

struct Order {
    id: String,
    version: i64,
    at: i64,
    amount: i64,
}

fn encode_order(w: &WriterSchema, o: &Order, extra: Option<(&str, &str)>) -> (Vec<u8>, Vec<u8>) {
    let mut v = json!({"order_id": o.id, "version": o.version, "at": o.at, "amount": o.amount});
    if let Some((k, x)) = extra {
        v[k] = json!(x);
    }
    let e = w.encode_json(&v).unwrap();
    (e.key, e.value)
}

/// Per date, per key: (version, amount, partition, offset) of the row that must win.
type Winners = BTreeMap<NaiveDate, BTreeMap<String, (i64, i64, i32, i64)>>;

/// Expected winners by max_by(version), ties by the later (partition, offset).
fn expected_max_by(all: &[(i32, i64, &Order)]) -> Winners {
    let mut best: HashMap<&str, (i64, (i32, i64), &Order)> = HashMap::new();
    for (p, off, o) in all {
        let cand = (o.version, (*p, *off), *o);
        match best.get(o.id.as_str()) {
            Some((v, pos, _)) if (*v, *pos) >= (cand.0, cand.1) => {}
            _ => {
                best.insert(&o.id, cand);
            }
        }
    }
    let mut out = Winners::new();
    for (id, (v, (p, off), o)) in best {
        let date = chrono::DateTime::from_timestamp_millis(o.at)
            .unwrap()
            .date_naive();
        out.entry(date)
            .or_default()
            .insert(id.to_string(), (v, o.amount, p, off));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn max_by_late_records_evolution_rejects_and_vacuum() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(
        &registry_url,
        &topic,
        ORDER_V1,
        "order_id",
        2,
        &[
            "--merge",
            "max_by:version",
            "--sort-key",
            "at,order_id",
            "--partition-time",
            "at",
            "--checks",
            "sum:amount,min:amount,max:amount",
        ],
    )
    .await;
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let serializer = Serializer::new(registry.clone(), Default::default());
    let w1 = serializer.writer(&topic, None).await.unwrap();
    let store = store();

    // Round 1: 200 orders over two days, each in up to 4 versions arriving out of order,
    // with exact duplicate retries; two partitions by key hash.
    let mut orders = Vec::new();
    for i in 0..200i64 {
        let versions = 1 + i % 4;
        for v in (1..=versions).rev() {
            orders.push(Order {
                id: format!("o-{i:03}"),
                version: v,
                at: DAY0 + (i % 2) * DAY_MS + i * 1000,
                amount: i * 10 + v,
            });
        }
        if i % 7 == 0 {
            orders.push(Order {
                id: format!("o-{i:03}"),
                version: versions,
                at: DAY0 + (i % 2) * DAY_MS + i * 1000,
                amount: i * 10 + versions,
            });
        }
    }
    let mut next_offset = [0i64; 2];
    let mut placed: Vec<(i32, i64, &Order)> = Vec::new();
    let mut files: [Vec<RawRecord>; 2] = Default::default();
    for o in &orders {
        let p = (o.id.bytes().map(u32::from).sum::<u32>() % 2) as i32;
        let (key, value) = encode_order(&w1, o, None);
        files[p as usize].push((
            next_offset[p as usize],
            DAY0 + 3_600_000,
            Some(key),
            Some(value),
        ));
        placed.push((p, next_offset[p as usize], o));
        next_offset[p as usize] += 1;
    }
    for (p, recs) in files.iter().enumerate() {
        write_raw(store.as_ref(), &topic, p as i32, recs).await;
    }
    let opts = RunOptions::default();
    let s1 = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(s1.manifest, Some(1));
    assert_eq!(s1.records as usize, orders.len());
    assert_eq!(s1.rejected, 0);
    // The run's progress, as `--admin-listen` serves it on /metrics.
    let metrics = opts.metrics.render();
    for line in [
        format!(
            "onepipe_copydog_records_total{{topic=\"{topic}\"}} {}",
            orders.len()
        ),
        format!("onepipe_copydog_dates_merged_total{{topic=\"{topic}\"}} 2"),
        format!("onepipe_copydog_manifest{{topic=\"{topic}\"}} 1"),
        format!("onepipe_copydog_date_rows{{topic=\"{topic}\",date=\"2026-11-24\"}} 100"),
    ] {
        assert!(metrics.contains(&line), "{line:?} not in:\n{metrics}");
    }
    let m1 = latest_manifest(store.as_ref(), &topic).await;
    let expected = expected_max_by(&placed);
    assert_eq!(m1.dates.len(), 2);
    for (date, exp) in &expected {
        let rows = clean_rows(store.as_ref(), &m1, *date).await;
        let got: BTreeMap<String, (i64, i64, i32, i64)> = rows
            .iter()
            .map(|r| (r.0.clone(), (r.1, r.2, r.3, r.4)))
            .collect();
        assert_eq!(rows.len(), got.len(), "one row per key on {date}");
        assert_eq!(&got, exp, "winners on {date}");
        let checks = &m1.dates[date].checks;
        assert_eq!(checks["count_distinct(unique_key)"], json!(exp.len()));
        let sum: i64 = exp.values().map(|v| v.1).sum();
        assert_eq!(checks["sum(amount)"], json!(sum));
        assert_eq!(
            checks["min(amount)"],
            json!(exp.values().map(|v| v.1).min().unwrap())
        );
        assert_eq!(
            checks["max(amount)"],
            json!(exp.values().map(|v| v.1).max().unwrap())
        );
        // Sorted by the sort key (at, order_id): ids are increasing with `at` here.
        let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
    assert_eq!(m1.watermark(0), next_offset[0] - 1);
    assert_eq!(m1.watermark(1), next_offset[1] - 1);

    // Nothing new: no new manifest.
    let again = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(again.manifest, None);

    // Round 2: late records for the first day only (newer and older versions).
    let day0 = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let day1 = day0.succ_opt().unwrap();
    let late: Vec<Order> = (0..40i64)
        .map(|k| {
            let i = k * 2; // even ids are on day 0
            Order {
                id: format!("o-{i:03}"),
                version: if k % 2 == 0 { 10 } else { 0 },
                at: DAY0 + i * 1000,
                amount: 7,
            }
        })
        .collect();
    let mut recs: [Vec<RawRecord>; 2] = Default::default();
    for o in &late {
        let p = (o.id.bytes().map(u32::from).sum::<u32>() % 2) as i32;
        let (key, value) = encode_order(&w1, o, None);
        recs[p as usize].push((
            next_offset[p as usize],
            DAY0 + 2 * DAY_MS,
            Some(key),
            Some(value),
        ));
        placed.push((p, next_offset[p as usize], o));
        next_offset[p as usize] += 1;
    }
    for (p, r) in recs.iter().enumerate() {
        if !r.is_empty() {
            write_raw(store.as_ref(), &topic, p as i32, r).await;
        }
    }
    let s2 = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(s2.manifest, Some(2));
    assert_eq!(
        s2.dates.keys().collect::<Vec<_>>(),
        [&day0],
        "only the late date is rewritten"
    );
    let m2 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(
        m2.dates[&day1], m1.dates[&day1],
        "the other date keeps its files"
    );
    assert!(m2.dates[&day0].version > m1.dates[&day0].version);
    let expected = expected_max_by(&placed);
    let got: BTreeMap<String, (i64, i64, i32, i64)> = clean_rows(store.as_ref(), &m2, day0)
        .await
        .iter()
        .map(|r| (r.0.clone(), (r.1, r.2, r.3, r.4)))
        .collect();
    assert_eq!(got, expected[&day0]);

    // Schema evolution: v2 adds a field with a default; v1 rows read as the default.
    register_schema(&registry_url, &format!("{topic}-value"), ORDER_V2).await;
    registry.invalidate(&topic);
    let w2 = serializer.writer(&topic, None).await.unwrap();
    assert_eq!(w2.registered().version, 2);
    let new = Order {
        id: "o-999".into(),
        version: 1,
        at: DAY0 + 5000,
        amount: 1,
    };
    let (key, value) = encode_order(&w2, &new, Some(("channel", "app")));
    // One corrupt value and one unknown schema id ride along: set aside, counted.
    let corrupt = onepipe_core::wire::frame(w2.registered().id, &[0xff, 0xff, 0xff]);
    let unknown = onepipe_core::wire::frame(987_654, b"\x02");
    let base = next_offset[0];
    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[
            (base, DAY0 + 2 * DAY_MS, Some(key), Some(value)),
            (base + 1, DAY0 + 2 * DAY_MS, None, Some(corrupt)),
            (base + 2, DAY0 + 2 * DAY_MS, None, Some(unknown)),
            (base + 3, DAY0 + 2 * DAY_MS, None, None),
        ],
    )
    .await;
    let s3 = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(s3.manifest, Some(3));
    assert_eq!(s3.rejected, 3);
    let m3 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m3.schema_id, w2.registered().id);
    assert_eq!(m3.rejected.records, 3);
    assert_eq!(m3.watermark(0), base + 3);
    // Both dates are in the new schema now.
    for date in [day0, day1] {
        let rows = clean_rows(store.as_ref(), &m3, date).await;
        assert!(
            rows.iter().all(|r| r.5.is_some()),
            "{date} has the channel column"
        );
        for r in &rows {
            let want = if r.0 == "o-999" { "app" } else { "web" };
            assert_eq!(r.5.as_deref(), Some(want), "{}", r.0);
        }
    }
    let reasons: Vec<String> = read_batches(store.as_ref(), &m3.rejected.files[0])
        .await
        .into_iter()
        .flat_map(|b| {
            let r = b
                .column_by_name("reason")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..r.len())
                .map(|i| r.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        reasons[0].contains("does not match the writer schema") || reasons[0].contains("truncated"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("unknown schema id 987654"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("tombstone"), "{reasons:?}");

    // A crashed run's leftovers (a version folder no manifest names) are skipped by the
    // next run and removed by vacuum; files the manifests name stay.
    let orphan = format!(
        "clean/{topic}/date=2026-11-25/v{:08}/part-00000.parquet",
        m3.dates[&day1].version + 1
    );
    store
        .put(
            &Path::from(orphan.as_str()),
            PutPayload::from(b"half-written".to_vec()),
        )
        .await
        .unwrap();
    let o = Order {
        id: "o-001".into(),
        version: 99,
        at: DAY0 + DAY_MS + 1000,
        amount: 5,
    };
    let (key, value) = encode_order(&w2, &o, None);
    write_raw(
        store.as_ref(),
        &topic,
        1,
        &[(next_offset[1], DAY0 + 3 * DAY_MS, Some(key), Some(value))],
    )
    .await;
    let s4 = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(s4.manifest, Some(4));
    let m4 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(
        m4.dates[&day1].version,
        m3.dates[&day1].version + 2,
        "the orphan's folder is skipped"
    );
    // Copycat's claims: one for a raw file already merged (vacuumed), one for a range
    // with no file yet (an upload in flight: kept).
    let merged_claim = claim_path(&topic, 0, 0);
    let pending_claim = claim_path(&topic, 1, 1_000_000);
    for (partition, first_offset) in [(0, 0), (1, 1_000_000)] {
        let c = Claim {
            topic: topic.clone(),
            partition,
            first_offset,
            last_offset: first_offset + 10,
            owner: "test".into(),
            file: None,
        };
        claim(store.as_ref(), &c).await.unwrap();
    }
    let gone = vacuum(&store, &topic, std::time::Duration::ZERO, 1, false)
        .await
        .unwrap();
    assert!(gone.deleted.contains(&orphan), "{:?}", gone.deleted);
    // Exactly the claims of merged raw files (write_raw claims its files as copycat does).
    let (raw_files, _) =
        onepipe_archive::checkpoint::list_raw(store.as_ref(), &format!("raw/{topic}/"))
            .await
            .unwrap();
    let merged: std::collections::BTreeSet<String> = raw_files
        .iter()
        .filter(|f| f.last_offset <= m4.watermark(f.partition))
        .map(|f| claim_path(&topic, f.partition, f.first_offset))
        .collect();
    assert!(merged.contains(&merged_claim), "{merged:?}");
    assert_eq!(
        gone.claims
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        merged
    );
    assert!(store.head(&Path::from(merged_claim)).await.is_err());
    store.head(&Path::from(pending_claim)).await.unwrap();
    for entry in m4.dates.values() {
        for f in &entry.files {
            assert!(!gone.deleted.contains(f));
            store.head(&Path::from(f.as_str())).await.unwrap();
        }
    }
    let rows = clean_rows(store.as_ref(), &m4, day1).await;
    assert!(rows.iter().any(|r| r.0 == "o-001" && r.1 == 99));
    // The Delta log survives vacuum, and every file of the table's current version (the
    // newest manifest's) is still there.
    assert!(
        gone.deleted.iter().all(|p| !p.contains("/_delta_log/")),
        "{:?}",
        gone.deleted
    );
    let table = delta_table(&store, &topic).await;
    assert_eq!((table.version, table.manifest), (4, Some(4)));
    let mut current: Vec<String> = table.files().map(String::from).collect();
    current.sort();
    let mut want: Vec<String> = m4.dates.values().flat_map(|e| e.files.clone()).collect();
    want.sort();
    assert_eq!(current, want);
}

/// The `reason` column of a rejects file.
async fn reject_reasons(store: &dyn ObjectStore, path: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for b in read_batches(store, path).await {
        let offsets = b
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let reasons = b
            .column_by_name("reason")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            out.push((offsets.value(i), reasons.value(i).to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_outside_years_1_to_9999_from_kafka_are_rejected_and_the_rest_merged() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("orders");
    create_dataset(
        &registry_url,
        &topic,
        ORDER_V1,
        "order_id",
        1,
        &["--partition-time", "at", "--checks", "sum:amount"],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store_url = fresh_store_url();
    let store = onepipe_core::store::open(&store_url).unwrap();

    // Valid orders through the Serializer, and two written the way any Confluent client
    // could: magic byte, schema id, an Avro datum the Serializer would have refused.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let raw_datum = |id: &str, at: i64| {
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&w.registered().schema)
            .build()
            .unwrap()
            .write_value_to_vec(apache_avro::types::Value::Record(vec![
                (
                    "order_id".into(),
                    apache_avro::types::Value::String(id.into()),
                ),
                ("version".into(), apache_avro::types::Value::Long(1)),
                ("at".into(), apache_avro::types::Value::TimestampMillis(at)),
                ("amount".into(), apache_avro::types::Value::Long(1000)),
            ]))
            .unwrap();
        (
            format!("[\"{id}\"]").into_bytes(),
            onepipe_core::wire::frame(w.registered().id, &datum),
        )
    };
    let mut sent: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..10i64 {
        let o = Order {
            id: format!("o-{i}"),
            version: 1,
            at: DAY0 + i * 1000,
            amount: i,
        };
        let (key, value) = encode_order(&w, &o, None);
        sent.push((o.id, key, value));
        if i == 3 {
            let (key, value) = raw_datum("bad-max", i64::MAX);
            sent.push(("bad-max".into(), key, value));
        }
        if i == 6 {
            let (key, value) = raw_datum("bad-10000", 253_402_300_800_000);
            sent.push(("bad-10000".into(), key, value));
        }
    }
    let mut offsets = BTreeMap::new();
    let mut offset_of = HashMap::new();
    for (id, key, value) in &sent {
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(key).payload(value),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
        offsets.insert(delivery.partition, delivery.offset);
        offset_of.insert(id.clone(), delivery.offset);
    }
    let (copycat, stop_copycat) = start_copycat(&bootstrap, &store_url, &topic, 1_000_000);
    wait_archived(store.as_ref(), &topic, &offsets).await;
    stop_copycat.send(()).unwrap();
    copycat.await.unwrap().expect("copycat stops cleanly");

    let s = run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .expect("copydog runs");
    assert_eq!(s.records, 12);
    assert_eq!(s.rejected, 2);
    assert_eq!(s.manifest, Some(1));
    let m = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m.rejected.records, 2);
    let day0 = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    assert_eq!(m.dates.keys().collect::<Vec<_>>(), [&day0]);
    let mut ids: Vec<String> = clean_rows(store.as_ref(), &m, day0)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    ids.sort();
    let want: Vec<String> = (0..10).map(|i| format!("o-{i}")).collect();
    assert_eq!(ids, want, "every valid order of the run is merged");
    assert_eq!(m.dates[&day0].checks["sum(amount)"], json!(45));

    let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
    let reasons = reject_reasons(store.as_ref(), &m.rejected.files[0]).await;
    assert_eq!(
        reasons,
        [
            (
                offset_of["bad-max"],
                format!(
                    "$.at: timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}"
                )
            ),
            (
                offset_of["bad-10000"],
                format!(
                    "$.at: timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"
                )
            ),
        ]
    );

    // The watermark is past them: the next run has nothing to do, no retry.
    assert_eq!(m.watermark(0), *offsets.values().max().unwrap());
    let again = run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .expect("copydog runs again");
    assert_eq!(
        (again.manifest, again.records, again.rejected),
        (None, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_timestamps_outside_years_1_to_9999_are_rejected() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(&registry_url, &topic, ORDER_V1, "order_id", 1, &[]).await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store = store();
    let record = |offset: i64, kafka_ts: i64| -> RawRecord {
        let o = Order {
            id: format!("o-{offset}"),
            version: 1,
            at: DAY0,
            amount: 1,
        };
        let (key, value) = encode_order(&w, &o, None);
        (offset, kafka_ts, Some(key), Some(value))
    };
    // The last millisecond of 9999 is the newest Kafka timestamp a store can hold.
    let last = 253_402_300_799_999;
    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[
            record(0, DAY0),
            record(1, i64::MAX),
            record(2, last),
            record(3, last + 1),
            record(4, -62_135_596_800_001),
        ],
    )
    .await;
    let s = run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .expect("copydog runs");
    assert_eq!((s.records, s.rejected), (5, 3));
    let m = latest_manifest(store.as_ref(), &topic).await;
    let dates: Vec<String> = m.dates.keys().map(ToString::to_string).collect();
    assert_eq!(dates, ["2026-11-24", "9999-12-31"]);
    let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
    assert_eq!(
        reject_reasons(store.as_ref(), &m.rejected.files[0]).await,
        [
            (
                1,
                format!(
                    "Kafka record timestamp: timestamp-millis 9223372036854775807 is \
                     292278994-08-17T07:12:55.807Z, {range}"
                )
            ),
            (
                3,
                format!(
                    "Kafka record timestamp: timestamp-millis 253402300800000 is \
                     10000-01-01T00:00:00.000Z, {range}"
                )
            ),
            (
                4,
                format!(
                    "Kafka record timestamp: timestamp-millis -62135596800001 is \
                     0000-12-31T23:59:59.999Z, {range}"
                )
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_never_mix_views() {
    let o = Orders::new("orders").await;
    let (registry, w, topic, store) = (&o.registry, &o.w, o.topic.clone(), o.store.clone());
    let orders: Vec<Order> = (0..500i64)
        .map(|i| Order {
            id: format!("c-{}", i % 300),
            version: i,
            at: DAY0 + i,
            amount: i,
        })
        .collect();
    let recs: Vec<RawRecord> = orders
        .iter()
        .enumerate()
        .map(|(i, order)| {
            let (k, v) = encode_order(w, order, None);
            (i as i64, DAY0, Some(k), Some(v))
        })
        .collect();
    write_raw(store.as_ref(), &topic, 0, &recs).await;
    let opts = RunOptions::default();
    let (a, b) = tokio::join!(
        run_topic(store.clone(), registry, &topic, &opts),
        run_topic(store.clone(), registry, &topic, &opts)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let committed: Vec<u64> = [a.manifest, b.manifest].into_iter().flatten().collect();
    assert!(
        !committed.is_empty() && committed.len() <= 2,
        "{committed:?}"
    );
    let m = latest_manifest(store.as_ref(), &topic).await;
    let rows = clean_rows(
        store.as_ref(),
        &m,
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
    )
    .await;
    assert_eq!(rows.len(), 300);
    for r in &rows {
        let i: i64 = r.0[2..].parse().unwrap();
        let last = if i + 300 < 500 { i + 300 } else { i };
        assert_eq!(r.1, last, "{} has its newest version", r.0);
    }
    // Every manifest names only files that exist, and no two manifests share a number.
    let numbers = manifest::list(store.as_ref(), &topic).await.unwrap();
    for n in &numbers {
        let m = manifest::read(store.as_ref(), &topic, *n).await.unwrap();
        for e in m.dates.values() {
            for f in &e.files {
                store.head(&Path::from(f.as_str())).await.unwrap();
            }
        }
    }

    // The Delta table, published by both runs at once on S3: version 0 creates it, then
    // one version per manifest in order, and its files are the newest manifest's.
    let mut wanted: Vec<String> = m.dates.values().flat_map(|e| e.files.clone()).collect();
    wanted.sort();
    let check_table = |table: delta::TableFiles| {
        let (store, topic, numbers, wanted) = (
            store.clone(),
            topic.clone(),
            numbers.clone(),
            wanted.clone(),
        );
        async move {
            assert_eq!(table.version, numbers.len() as i64);
            let mut files: Vec<String> = table.files().map(String::from).collect();
            files.sort();
            assert_eq!(files, wanted);
            // Each version holds the manifest of its number.
            for n in &numbers {
                let v = delta::files(store.clone(), &topic, delta::AsOf::Version(*n as i64))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(v.manifest, Some(*n), "version {n}");
            }
        }
    };
    check_table(delta_table(&store, &topic).await).await;

    // A run that committed its manifest and died before publishing it: the newest Delta
    // commit is gone. Two publishers at once heal it, one version for it, not two.
    let last = format!("clean/{topic}/_delta_log/{:020}.json", numbers.len());
    store.delete(&Path::from(last.as_str())).await.unwrap();
    let (a, b) = tokio::join!(
        delta::publish(store.clone(), &topic),
        delta::publish(store.clone(), &topic)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut healed: Vec<u64> = a.manifests.iter().chain(&b.manifests).copied().collect();
    healed.sort();
    assert_eq!(healed, [*numbers.last().unwrap()], "{a:?} {b:?}");
    check_table(delta_table(&store, &topic).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vector_clocks_dominate_and_concurrent_updates_are_counted() {
    let schema = r#"{"type":"record","name":"Doc","fields":[
      {"name":"doc_id","type":"string"},
      {"name":"clock","type":{"type":"map","values":"long"}},
      {"name":"body","type":"string"}]}"#;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("docs");
    create_dataset(
        &registry_url,
        &topic,
        schema,
        "doc_id",
        1,
        &["--merge", "vector_clock:clock"],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store = store();
    let docs: Vec<Json> = vec![
        json!({"doc_id": "a", "clock": {"x": 1}, "body": "a1"}),
        json!({"doc_id": "a", "clock": {"x": 2, "y": 1}, "body": "a2"}), // dominates a1
        json!({"doc_id": "a", "clock": {"x": 1, "y": 1}, "body": "a-old"}), // dominated
        json!({"doc_id": "b", "clock": {"x": 2}, "body": "b-x"}),
        json!({"doc_id": "b", "clock": {"y": 3}, "body": "b-y"}), // concurrent, larger sum
        json!({"doc_id": "c", "clock": {"x": 1}, "body": "c"}),
    ];
    let recs: Vec<RawRecord> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let e = w.encode_json(d).unwrap();
            (i as i64, DAY0, Some(e.key), Some(e.value))
        })
        .collect();
    write_raw(store.as_ref(), &topic, 0, &recs).await;
    let s = run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(s.conflicts, 1);
    let m = latest_manifest(store.as_ref(), &topic).await;
    let entry = &m.dates[&NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()];
    assert_eq!(entry.merge_conflicts, 1);
    let batch = read_batches(store.as_ref(), &entry.files[0])
        .await
        .remove(0);
    let ids = batch.column_by_name("doc_id").unwrap().as_string::<i32>();
    let bodies = batch.column_by_name("body").unwrap().as_string::<i32>();
    let got: Vec<(&str, &str)> = (0..batch.num_rows())
        .map(|i| (ids.value(i), bodies.value(i)))
        .collect();
    assert_eq!(got, [("a", "a2"), ("b", "b-y"), ("c", "c")]);
}

/// A date over the memory budget goes through spill files, in its first run and again
/// when late records arrive (its current clean files are streamed into the buckets too):
/// the rows and their order are those computed here, and the same as a run that merged
/// everything in memory.
#[tokio::test(flavor = "multi_thread")]
async fn a_date_over_the_memory_limit_spills_and_gives_the_in_memory_result() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("big_orders");
    create_dataset(
        &registry_url,
        &topic,
        ORDER_V1,
        "order_id",
        2,
        &[
            "--merge",
            "max_by:version",
            "--sort-key",
            "amount",
            "--partition-time",
            "at",
            "--checks",
            "sum:amount,min:amount,max:amount",
        ],
    )
    .await;
    let (registry, w1) = dataset_writer(&registry_url, &topic).await;
    let (bounded, unbounded) = (store(), store());
    let spill_dir = std::env::temp_dir().join(unique_name("copydog_spill"));
    std::fs::create_dir_all(&spill_dir).unwrap();
    let small = RunOptions {
        // The smallest budget there is: 4 MB of new rows, 2.7 MB merged at once.
        memory_limit: 16 << 20,
        spill_dir: spill_dir.clone(),
        ..RunOptions::default()
    };
    let large = RunOptions::default();

    // Round 1: 80,000 orders on one date; round 2: new versions of every 7th order and
    // 5,000 new ones, arriving later.
    let amount = |i: i64, v: i64| (i * 7_919 + v * 104_729) % 1_000_003;
    let mut orders: Vec<Order> = (0..80_000i64)
        .map(|i| Order {
            id: format!("o-{i:06}"),
            version: 1,
            at: DAY0 + i,
            amount: amount(i, 1),
        })
        .collect();
    let round1 = orders.len();
    orders.extend((0..80_000i64).step_by(7).map(|i| Order {
        id: format!("o-{i:06}"),
        version: 2,
        at: DAY0 + i,
        amount: amount(i, 2),
    }));
    orders.extend((80_000..85_000i64).map(|i| Order {
        id: format!("o-{i:06}"),
        version: 1,
        at: DAY0 + i,
        amount: amount(i, 1),
    }));
    let mut next_offset = [0i64; 2];
    let mut placed: Vec<(i32, i64, &Order)> = Vec::new();
    for (round, slice) in [&orders[..round1], &orders[round1..]]
        .into_iter()
        .enumerate()
    {
        let mut files: [Vec<RawRecord>; 2] = Default::default();
        for o in slice {
            let p = (o.id.len() + o.id.as_bytes()[o.id.len() - 1] as usize) as i32 % 2;
            let (key, value) = encode_order(&w1, o, None);
            files[p as usize].push((next_offset[p as usize], DAY0, Some(key), Some(value)));
            placed.push((p, next_offset[p as usize], o));
            next_offset[p as usize] += 1;
        }
        for (p, recs) in files.iter().enumerate() {
            write_raw(bounded.as_ref(), &topic, p as i32, recs).await;
            write_raw(unbounded.as_ref(), &topic, p as i32, recs).await;
        }
        let a = run_topic(bounded.clone(), &registry, &topic, &small)
            .await
            .unwrap();
        let b = run_topic(unbounded.clone(), &registry, &topic, &large)
            .await
            .unwrap();
        assert_eq!(a.manifest, Some(round as u64 + 1));
        assert_eq!(a.dates, b.dates);
    }
    let expected = expected_max_by(&placed);
    let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let exp = &expected[&date];
    assert_eq!(exp.len(), 85_000);
    let m_small = manifest::latest(bounded.as_ref(), &topic)
        .await
        .unwrap()
        .unwrap();
    let m_large = manifest::latest(unbounded.as_ref(), &topic)
        .await
        .unwrap()
        .unwrap();
    let rows = clean_rows(bounded.as_ref(), &m_small, date).await;
    assert_eq!(rows, clean_rows(unbounded.as_ref(), &m_large, date).await);
    let got: BTreeMap<String, (i64, i64, i32, i64)> = rows
        .iter()
        .map(|r| (r.0.clone(), (r.1, r.2, r.3, r.4)))
        .collect();
    assert_eq!(rows.len(), got.len(), "one row per key");
    assert_eq!(&got, exp, "winners");
    let amounts: Vec<i64> = rows.iter().map(|r| r.2).collect();
    assert!(amounts.windows(2).all(|w| w[0] <= w[1]), "sorted by amount");
    assert_eq!(m_small.dates[&date].checks, m_large.dates[&date].checks);
    let sum: i64 = exp.values().map(|v| v.1).sum();
    assert_eq!(m_small.dates[&date].checks["sum(amount)"], json!(sum));
    // Files are cut by bytes under the small budget (a quarter of it each).
    assert!(
        m_small.dates[&date].files.len() > m_large.dates[&date].files.len(),
        "{:?}",
        m_small.dates[&date].files
    );
    // Both rounds went through the spill files; none are left.
    let spilled = small
        .metrics
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "onepipe_copydog_spilled_bytes_total{{topic=\"{topic}\"}} "
            ))
            .map(|v| v.parse::<f64>().unwrap())
        })
        .unwrap_or(0.0);
    assert!(spilled > 12e6, "spilled only {spilled} bytes");
    assert!(!large.metrics.render().contains("spilled_bytes"));
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0);
    std::fs::remove_dir(&spill_dir).unwrap();
}

/// Rejects are written out in parts as they come, never all held: 250 undecodable records
/// spread over three raw files, with parts of 100, give three files of 100, 100 and 50
/// rows under `_rejected/`, all named by the manifest, which counts 250; the good records
/// merge as usual.
#[tokio::test(flavor = "multi_thread")]
async fn many_rejects_are_written_in_parts_of_bounded_size() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(&registry_url, &topic, ORDER_V1, "order_id", 1, &[]).await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store = store();
    let corrupt = onepipe_core::wire::frame(w.registered().id, &[0xff, 0xff, 0xff]);
    let mut rejected = Vec::new();
    let mut records: Vec<RawRecord> = Vec::new();
    for i in 0..300i64 {
        if i % 6 == 0 {
            let o = Order {
                id: format!("o-{i:03}"),
                version: 1,
                at: DAY0 + i,
                amount: i,
            };
            let (key, value) = encode_order(&w, &o, None);
            records.push((i, DAY0, Some(key), Some(value)));
        } else {
            rejected.push(i);
            records.push((i, DAY0, None, Some(corrupt.clone())));
        }
    }
    for file in records.chunks(100) {
        write_raw(store.as_ref(), &topic, 0, file).await;
    }
    let opts = RunOptions {
        rejects_per_file: 100,
        allow_rejects: true,
        ..RunOptions::default()
    };
    let s = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!((s.records, s.rejected), (300, 250));
    let m = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m.rejected.records, 250);
    assert_eq!(m.dates.values().map(|d| d.rows).sum::<u64>(), 50);
    let prefix = format!("clean/{topic}/_rejected/m0000000001-");
    let mut sizes = Vec::new();
    let mut offsets = Vec::new();
    for f in &m.rejected.files {
        assert!(f.starts_with(&prefix), "{f}");
        let mut rows = 0;
        for b in read_batches(store.as_ref(), f).await {
            rows += b.num_rows();
            let o = b
                .column_by_name("offset")
                .unwrap()
                .as_primitive::<Int64Type>();
            offsets.extend(o.values().iter().copied());
        }
        sizes.push(rows);
    }
    assert_eq!(sizes, [100, 100, 50], "{:?}", m.rejected.files);
    assert_eq!(offsets, rejected, "every reject once, in order");
}

/// `copydog run --every` (for places without a scheduler, as deploy/compose.yaml): the real
/// binary merges what is in raw/, merges again what arrives after its first run without
/// being started again, and exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn run_every_merges_new_raw_files_until_sigterm() {
    let o = Orders::new("every").await;
    let (registry_url, topic, store_url, store) = (
        o.registry_url.clone(),
        o.topic.clone(),
        o.store_url.clone(),
        o.store.clone(),
    );
    let record = |offset: i64, id: &str, version: i64| o.record(offset, id, version, 0);
    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[record(0, "a", 1), record(1, "b", 1)],
    )
    .await;

    let copydog = onepipe_integration_tests::service_binary("onepipe-copydog", "copydog");
    let mut child = std::process::Command::new(copydog)
        .args(["--registry", &registry_url, "--object-store", &store_url])
        .args(["run", "--topic", &topic, "--every", "1s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rows_in_latest = |store: Arc<dyn ObjectStore>, topic: String| async move {
        match manifest::latest(store.as_ref(), &topic).await.unwrap() {
            Some(m) => m.dates.values().map(|e| e.rows).sum::<u64>(),
            None => 0,
        }
    };
    let wait_rows = |n: u64| {
        let (store, topic) = (store.clone(), topic.clone());
        async move {
            for _ in 0..120 {
                if rows_in_latest(store.clone(), topic.clone()).await == n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            panic!("the clean archive of {topic} never held {n} rows");
        }
    };
    wait_rows(2).await;
    // Arrives after the first run: the next turn merges it, nobody restarts copydog.
    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[record(2, "c", 1), record(3, "a", 2)],
    )
    .await;
    wait_rows(3).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "copydog --every exited on its own"
    );

    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "copydog --every after SIGTERM:\n{stderr}"
    );
    assert!(stderr.contains("committed manifest 2"), "{stderr}");
}

/// A copydog process SIGKILLed at a failpoint (`ONEPIPE_COPYDOG_PAUSE_AT`): waits until
/// it says it paused there, then kills it.
fn kill_at_failpoint(registry_url: &str, store_url: &str, topic: &str, failpoint: &str) {
    use std::io::BufRead;
    let copydog = onepipe_integration_tests::service_binary("onepipe-copydog", "copydog");
    let mut child = std::process::Command::new(copydog)
        .args(["--registry", registry_url, "--object-store", store_url])
        .args(["run", "--topic", topic])
        .env("ONEPIPE_COPYDOG_PAUSE_AT", failpoint)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.contains("paused at failpoint") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("copydog never reached failpoint {failpoint}"));
    assert!(line.contains(failpoint), "{line}");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

/// The files of the Delta table's current version.
async fn delta_table(store: &Arc<dyn ObjectStore>, topic: &str) -> delta::TableFiles {
    delta::files(store.clone(), topic, delta::AsOf::Latest)
        .await
        .unwrap()
        .expect("a Delta table")
}

/// (order_id, version) of every row of the Delta table's current version, read from the
/// files its log names; each file must exist.
async fn delta_rows(store: &Arc<dyn ObjectStore>, topic: &str) -> (i64, BTreeMap<String, i64>) {
    let t = delta_table(store, topic).await;
    let mut rows = BTreeMap::new();
    for f in t.files() {
        for b in read_batches(store.as_ref(), f).await {
            let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
            let versions = b
                .column_by_name("version")
                .unwrap()
                .as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                assert!(
                    rows.insert(ids.value(i).to_string(), versions.value(i))
                        .is_none(),
                    "a key twice in the Delta table"
                );
            }
        }
    }
    (t.version, rows)
}

/// SIGKILL between writing the files and committing: killed after its files and before
/// its manifest, the table stays readable at the old version and the files are orphans;
/// killed after the manifest and before the Delta commit, the table stays at the old
/// version until the next run publishes the manifest; vacuum then removes the orphans.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_between_files_and_commit_leaves_the_old_version_readable() {
    let o = Orders::new("crash").await;
    let (registry_url, topic, store_url, store) = (
        o.registry_url.clone(),
        o.topic.clone(),
        o.store_url.clone(),
        o.store.clone(),
    );
    let record = |offset: i64, id: &str, version: i64| o.record(offset, id, version, 0);
    let copydog = onepipe_integration_tests::service_binary("onepipe-copydog", "copydog");
    let run = || {
        let out = std::process::Command::new(&copydog)
            .args(["--registry", &registry_url, "--object-store", &store_url])
            .args(["run", "--topic", &topic])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[record(0, "a", 1), record(1, "b", 1)],
    )
    .await;
    run();
    let v1 = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 1)]);
    assert_eq!(delta_rows(&store, &topic).await, (1, v1.clone()));
    let named_by =
        |m: &Manifest| -> Vec<String> { m.dates.values().flat_map(|e| e.files.clone()).collect() };
    let clean_objects = || async {
        let listing: Vec<object_store::ObjectMeta> = futures::TryStreamExt::try_collect(
            store.list(Some(&Path::from(delta::table_root(&topic)))),
        )
        .await
        .unwrap();
        listing
            .into_iter()
            .map(|o| o.location.to_string())
            .filter(|p| !p.contains("/_manifests/") && !p.contains("/_delta_log/"))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = clean_objects().await;

    write_raw(
        store.as_ref(),
        &topic,
        0,
        &[record(2, "c", 1), record(3, "a", 2)],
    )
    .await;
    // 1. Killed with its files written and no manifest: nothing changed for readers.
    kill_at_failpoint(&registry_url, &store_url, &topic, "before-manifest");
    let m = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m.number, 1);
    assert_eq!(delta_rows(&store, &topic).await, (1, v1.clone()));
    let orphans: Vec<String> = clean_objects().await.difference(&before).cloned().collect();
    assert!(
        !orphans.is_empty(),
        "the killed run wrote no file before its failpoint"
    );

    // 2. Killed with manifest 2 committed and not published: Delta still at version 1.
    kill_at_failpoint(&registry_url, &store_url, &topic, "before-delta");
    let m2 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m2.number, 2);
    assert_eq!(delta_rows(&store, &topic).await, (1, v1.clone()));

    // 3. The next run (nothing new in raw/) publishes manifest 2 as version 2.
    run();
    let v2 = BTreeMap::from([
        ("a".to_string(), 2),
        ("b".to_string(), 1),
        ("c".to_string(), 1),
    ]);
    assert_eq!(delta_rows(&store, &topic).await, (2, v2.clone()));
    assert_eq!(latest_manifest(store.as_ref(), &topic).await.number, 2);
    let t = delta_table(&store, &topic).await;
    assert_eq!(t.manifest, Some(2));
    let mut want: Vec<String> = named_by(&m2);
    want.sort();
    let mut have: Vec<String> = t.files().map(String::from).collect();
    have.sort();
    assert_eq!(have, want);

    // 4. Within the retention period vacuum keeps the killed run's files (a run still
    // writing looks the same); past it, it removes them, and the table's files stay.
    let kept = vacuum(
        &store,
        &topic,
        std::time::Duration::from_secs(3600),
        1,
        true,
    )
    .await
    .unwrap();
    assert!(
        orphans.iter().all(|o| !kept.deleted.contains(o)),
        "{:?}",
        kept.deleted
    );
    let gone = vacuum(&store, &topic, std::time::Duration::ZERO, 1, false)
        .await
        .unwrap();
    for o in &orphans {
        assert!(gone.deleted.contains(o), "{o} kept: {:?}", gone.deleted);
    }
    assert_eq!(delta_rows(&store, &topic).await, (2, v2));
}

/// An archive written by an older onepipe (no Delta log; manifest format 1, no field):
/// `copydog migrate` makes it a Delta table, and the next run rewrites every date in the
/// current format, with no new record.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_archive_is_migrated_and_its_format_rewritten_by_the_next_run() {
    let o = Orders::new("format").await;
    let (registry_url, topic, store_url, store) = (
        o.registry_url.clone(),
        o.topic.clone(),
        o.store_url.clone(),
        o.store.clone(),
    );
    let record = |offset: i64, id: &str, day: i64| o.record(offset, id, 1, day);
    // Two dates, one raw file each (a raw file spans one hour).
    write_raw(store.as_ref(), &topic, 0, &[record(0, "a", 0)]).await;
    write_raw(store.as_ref(), &topic, 0, &[record(1, "b", 1)]).await;
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let opts = RunOptions::default();
    run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    let m1 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!((m1.number, m1.format), (1, manifest::CLEAN_FORMAT));
    // As an older onepipe wrote it: no Delta log, and no `format`.
    let log: Vec<object_store::ObjectMeta> = futures::TryStreamExt::try_collect(
        store.list(Some(&Path::from(format!("clean/{topic}/_delta_log")))),
    )
    .await
    .unwrap();
    assert!(!log.is_empty());
    for o in log {
        store.delete(&o.location).await.unwrap();
    }
    assert!(
        delta::files(store.clone(), &topic, delta::AsOf::Latest)
            .await
            .unwrap()
            .is_none()
    );
    let path = Path::from(format!("clean/{topic}/_manifests/0000000001.json"));
    let mut old: Json =
        serde_json::from_slice(&store.get(&path).await.unwrap().bytes().await.unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("format");
    store
        .put(&path, PutPayload::from(serde_json::to_vec(&old).unwrap()))
        .await
        .unwrap();
    assert_eq!(latest_manifest(store.as_ref(), &topic).await.format, 1);

    // `copydog migrate` makes it a Delta table of the same files, and says the format is old.
    let copydog = onepipe_integration_tests::service_binary("onepipe-copydog", "copydog");
    let out = std::process::Command::new(&copydog)
        .args(["--registry", &registry_url, "--object-store", &store_url])
        .args(["migrate", "--topic", &topic])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("is a Delta table at version 1: manifest 1 published"),
        "{stdout}"
    );
    assert!(stderr.contains("column format 1"), "{stderr}");
    let t = delta::files(store.clone(), &topic, delta::AsOf::Latest)
        .await
        .unwrap()
        .unwrap();
    let mut have: Vec<String> = t.files().map(String::from).collect();
    have.sort();
    let mut want: Vec<String> = m1.dates.values().flat_map(|e| e.files.clone()).collect();
    want.sort();
    assert_eq!((t.manifest, have), (Some(1), want));

    let summary = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(summary.manifest, Some(2));
    let m2 = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m2.format, manifest::CLEAN_FORMAT);
    assert_eq!(m2.dates.len(), 2);
    for (date, entry) in &m2.dates {
        assert!(
            entry.version > m1.dates[date].version,
            "{date} was not rewritten"
        );
        assert_eq!(entry.rows, 1);
    }
    // A third run has nothing to do.
    let summary = run_topic(store.clone(), &registry, &topic, &opts)
        .await
        .unwrap();
    assert_eq!(summary.manifest, None);
}

/// Vacuum cleans the Delta log as Delta does: commits older than the log retention (30
/// days by default) and older than the checkpoint (every 10 versions) go, the table still
/// reads at its newest version from the checkpoint, and versions before it are gone.
#[tokio::test(flavor = "multi_thread")]
async fn vacuum_removes_expired_delta_log_entries_before_a_checkpoint() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("logs");
    create_dataset(
        &registry_url,
        &topic,
        ORDER_V1,
        "order_id",
        1,
        &["--merge", "max_by:version"],
    )
    .await;
    let (_, w) = dataset_writer(&registry_url, &topic).await;
    // A local folder, whose file times the test can move back.
    let dir = std::env::temp_dir().join(format!("onepipe-logs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = onepipe_core::store::open(&format!("file://{}", dir.display())).unwrap();
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    for i in 0..11i64 {
        let e = w
            .encode_json(
                &json!({"order_id": format!("o{i}"), "version": 1, "at": DAY0, "amount": i}),
            )
            .unwrap();
        write_raw(
            store.as_ref(),
            &topic,
            0,
            &[(i, DAY0, Some(e.key), Some(e.value))],
        )
        .await;
        run_topic(store.clone(), &registry, &topic, &RunOptions::default())
            .await
            .unwrap();
    }
    let log = dir.join(format!("clean/{topic}/_delta_log"));
    let commits = |log: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(log)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(commits(&log).len(), 12, "versions 0 to 11");
    assert!(log.join("00000000000000000010.checkpoint.parquet").exists());

    // Within the retention nothing goes.
    let s = vacuum(
        &store,
        &topic,
        std::time::Duration::from_secs(3600),
        1,
        false,
    )
    .await
    .unwrap();
    assert_eq!(s.log_entries, 0);
    assert_eq!(commits(&log).len(), 12);

    // Forty days later: versions 0-9 go (older than checkpoint 10); 10 and 11 stay.
    for name in commits(&log) {
        let ok = std::process::Command::new("touch")
            .args(["-d", "40 days ago"])
            .arg(log.join(&name))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let s = vacuum(
        &store,
        &topic,
        std::time::Duration::from_secs(3600),
        1,
        false,
    )
    .await
    .unwrap();
    assert_eq!(s.log_entries, 10);
    assert_eq!(
        commits(&log),
        ["00000000000000000010.json", "00000000000000000011.json"]
    );
    let t = delta::files(store.clone(), &topic, delta::AsOf::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.version, t.manifest), (11, Some(11)));
    let m = latest_manifest(store.as_ref(), &topic).await;
    let mut want: Vec<String> = m.dates.values().flat_map(|e| e.files.clone()).collect();
    want.sort();
    let mut have: Vec<String> = t.files().map(String::from).collect();
    have.sort();
    assert_eq!(have, want);
    assert!(
        delta::files(store.clone(), &topic, delta::AsOf::Version(3))
            .await
            .is_err(),
        "version 3's log is gone"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
