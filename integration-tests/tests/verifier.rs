//! The verifier against real stores: its row checksum computed in Rust over Arrow and by
//! SQL inside PostgreSQL agree on the same rows; a clean archive that matches its raw
//! archive passes, and a damaged one is caught with the key named.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use onepipe_archive::delta;
use onepipe_archive::layout::RawFile;
use onepipe_archive::manifest;
use onepipe_archive::raw::{RawBatch, encode};
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_copydog::run::{RunOptions, run_topic};
use onepipe_core::metadata::TopicMetadata;
use onepipe_integration_tests::{
    create_dataset, dataset_writer, endpoint, fresh_database, fresh_store_url, latest_manifest,
    read_batches, start_copycat, start_registry, unique_name, wait_archived,
};
use onepipe_registry::auth::Tokens;
use onepipe_verifier::canonical::{hash64, row_text};
use onepipe_verifier::checks::{compute, row_columns};
use onepipe_verifier::verify::{check_dataset, check_dataset_with};
use onepipe_verifier::warehouse;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use sqlx::Row;

fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("n", DataType::Int64, true),
        Field::new("small", DataType::Int32, true),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float32, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("blob", DataType::Binary, true),
        Field::new("day", DataType::Date32, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("price", DataType::Decimal128(10, 2), true),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn row_checksum_in_rust_and_in_postgres_agree() {
    let xs = [
        Some(1.5),
        Some(0.1),
        Some(1e21),
        Some(-2.5e-7),
        None,
        Some(123456789012345.0),
        Some(f64::NAN),
    ];
    let n = xs.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![
            "a",
            "ünï\u{1f}cödé",
            "tab\there",
            "quote'\"",
            "back\\slash",
            "new\nline",
            "日本",
        ])),
        Arc::new(Int64Array::from(vec![
            Some(1),
            Some(-9_223_372_036_854_775_808),
            None,
            Some(0),
            Some(42),
            Some(7),
            Some(9),
        ])),
        Arc::new(Int32Array::from(vec![
            Some(1),
            None,
            Some(-5),
            Some(0),
            Some(2_147_483_647),
            Some(3),
            Some(4),
        ])),
        Arc::new(Float64Array::from(xs.to_vec())),
        Arc::new(Float32Array::from(vec![
            Some(0.1f32),
            Some(1e6),
            None,
            Some(-3.25),
            Some(1e-5),
            Some(2.0),
            Some(7.5),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
            Some(true),
            None,
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xff"[..]),
            None,
            Some(b""),
            Some(b"abc"),
            Some(b"\\"),
            Some(b"x"),
            Some(b"y"),
        ])),
        Arc::new(Date32Array::from(vec![
            Some(20_416),
            Some(0),
            None,
            Some(-1),
            Some(1),
            Some(2),
            Some(3),
        ])),
        Arc::new(
            TimestampMillisecondArray::from(vec![
                Some(1_795_478_400_123),
                Some(0),
                None,
                Some(-1),
                Some(1),
                Some(2),
                Some(3),
            ])
            .with_timezone("UTC"),
        ),
        Arc::new(
            Decimal128Array::from(vec![
                Some(1250),
                Some(-1),
                None,
                Some(0),
                Some(99_999_999),
                Some(5),
                Some(6),
            ])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        ),
    ];
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields())), columns).unwrap();
    let cols = row_columns(&batch);
    let rust: i64 = (0..n).fold(0i64, |s, i| s.wrapping_add(hash64(&row_text(&cols, i))));

    let url = fresh_database("verifier").await;
    let pool = warehouse::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE t (id text, n bigint, small integer, x double precision, y real, ok boolean, \
         blob bytea, day date, \"at\" timestamptz, price numeric(10,2), \"_date\" date)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Insert the same values through their text forms.
    let ids = [
        "a",
        "ünï\u{1f}cödé",
        "tab\there",
        "quote'\"",
        "back\\slash",
        "new\nline",
        "日本",
    ];
    let ns = [
        Some("1"),
        Some("-9223372036854775808"),
        None,
        Some("0"),
        Some("42"),
        Some("7"),
        Some("9"),
    ];
    let smalls = [
        Some("1"),
        None,
        Some("-5"),
        Some("0"),
        Some("2147483647"),
        Some("3"),
        Some("4"),
    ];
    let xs_text = [
        Some("1.5"),
        Some("0.1"),
        Some("1e21"),
        Some("-2.5e-7"),
        None,
        Some("123456789012345"),
        Some("NaN"),
    ];
    let ys = [
        Some("0.1"),
        Some("1e6"),
        None,
        Some("-3.25"),
        Some("1e-5"),
        Some("2"),
        Some("7.5"),
    ];
    let oks = [
        Some("true"),
        Some("false"),
        None,
        Some("true"),
        Some("false"),
        Some("true"),
        None,
    ];
    let blobs = [
        Some("\\x00ff"),
        None,
        Some("\\x"),
        Some("\\x616263"),
        Some("\\x5c"),
        Some("\\x78"),
        Some("\\x79"),
    ];
    let days = [
        Some("2025-11-24"),
        Some("1970-01-01"),
        None,
        Some("1969-12-31"),
        Some("1970-01-02"),
        Some("1970-01-03"),
        Some("1970-01-04"),
    ];
    let ats = [
        Some("2026-11-24 00:00:00.123+00"),
        Some("1970-01-01 00:00:00+00"),
        None,
        Some("1969-12-31 23:59:59.999+00"),
        Some("1970-01-01 00:00:00.001+00"),
        Some("1970-01-01 00:00:00.002+00"),
        Some("1970-01-01 00:00:00.003+00"),
    ];
    let prices = [
        Some("12.50"),
        Some("-0.01"),
        None,
        Some("0.00"),
        Some("999999.99"),
        Some("0.05"),
        Some("0.06"),
    ];
    for i in 0..n {
        sqlx::query(
            "INSERT INTO t VALUES ($1, $2::bigint, $3::integer, $4::double precision, $5::real, \
             $6::boolean, $7::bytea, $8::date, $9::timestamptz, $10::numeric, '2026-11-24')",
        )
        .bind(ids[i])
        .bind(ns[i])
        .bind(smalls[i])
        .bind(xs_text[i])
        .bind(ys[i])
        .bind(oks[i])
        .bind(blobs[i])
        .bind(days[i])
        .bind(ats[i])
        .bind(prices[i])
        .execute(&pool)
        .await
        .unwrap();
    }
    // Row by row first, so a disagreement names the value.
    let sql = format!("SELECT id, {} FROM t", warehouse::row_text_sql(&fields()));
    let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap();
    for r in rows {
        let id: String = r.get(0);
        let text: String = r.get(1);
        let i = ids.iter().position(|x| *x == id).unwrap();
        assert_eq!(text, row_text(&cols, i), "row {i} ({id:?})");
    }
    let mut meta = TopicMetadata::new("t", vec!["id".into()]);
    meta.checks = vec![
        "row_checksum".parse().unwrap(),
        "sum(n)".parse().unwrap(),
        "max(x)".parse().unwrap(),
        "min(at)".parse().unwrap(),
        "sum(price)".parse().unwrap(),
    ];
    let by_sql = warehouse::checks(
        &warehouse::Db::Postgres(pool.clone()),
        "public",
        &meta,
        &fields(),
    )
    .await
    .unwrap();
    let by_rust = compute(&[batch], &meta).unwrap();
    assert_eq!(by_sql["2026-11-24"]["row_checksum"], rust.to_string());
    assert_eq!(by_sql["2026-11-24"], by_rust);
}

const SCHEMA: &str = r#"{"type":"record","name":"Visit","fields":[
  {"name":"visit_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"secs","type":"double"}]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_clean_archive_is_caught_and_the_key_named() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "sum:secs,row_checksum",
        ],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&fresh_store_url()).unwrap();
    let mut raw = RawBatch::new(0);
    let day0 = 1_795_478_400_000i64;
    for i in 0..100i64 {
        let e = w
            .encode_json(&json!({"visit_id": format!("v{}", i % 60), "version": i, "at": day0 + i * 1000, "secs": i as f64 / 3.0}))
            .unwrap();
        raw.push(i, day0, Some(&e.key), Some(&e.value), &[]);
    }
    let file = RawFile {
        topic: topic.clone(),
        partition: 0,
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        hour: 0,
        first_offset: 0,
        last_offset: 99,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();

    let report = check_dataset(store.clone(), &registry, &topic, &[], 10)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.store == "raw" && l.check == "row_checksum" && l.verdict == "ok")
    );
    // The same date split by key hash into parts merged one at a time (as a date larger
    // than a sixteenth of --memory-limit is): the same verdict.
    let in_parts = || {
        let mut options = onepipe_verifier::verify::CheckOptions::new(10);
        options.full = true;
        options.expected.part_bytes = Some(1024);
        options
    };
    let parted = check_dataset_with(store.clone(), &registry, &topic, &[], &in_parts())
        .await
        .unwrap();
    assert_eq!(parted.mismatches, 0, "{:#?}", parted.lines);
    let values = |r: &onepipe_verifier::verify::DatasetReport| -> Vec<(String, String, String)> {
        r.lines
            .iter()
            .filter(|l| l.store == "raw")
            .map(|l| {
                // A float sum depends on the order rows are added in.
                let value = match l.value.parse::<f64>() {
                    Ok(v) if l.check.starts_with("sum(") => format!("{v:.6}"),
                    _ => l.value.clone(),
                };
                (l.check.clone(), value, l.verdict.clone())
            })
            .collect()
    };
    assert_eq!(values(&parted), values(&report));

    // Damage: drop one row from the clean file in place.
    let m = latest_manifest(store.as_ref(), &topic).await;
    let path = m.dates.values().next().unwrap().files[0].clone();
    let batch = read_batches(store.as_ref(), &path).await.remove(0);
    let damaged = batch.slice(1, batch.num_rows() - 1);
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, damaged.schema(), None).unwrap();
    writer.write(&damaged).unwrap();
    writer.close().unwrap();
    store
        .put(&Path::from(path.as_str()), PutPayload::from(out))
        .await
        .unwrap();

    let report = check_dataset(store.clone(), &registry, &topic, &[], 10)
        .await
        .unwrap();
    assert!(report.mismatches > 0);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.store == "raw" && l.check == "rows" && l.verdict == "MISMATCH")
    );
    // The first row in sort order is v0 at `at` = day0 + 0; its newest version is 60.
    assert_eq!(report.keys.len(), 1, "{:?}", report.keys);
    assert_eq!(report.keys[0].store, "raw");
    assert_eq!(report.keys[0].problem, "extra");
    assert_eq!(report.keys[0].key, "v0");

    let parted = check_dataset_with(store.clone(), &registry, &topic, &[], &in_parts())
        .await
        .unwrap();
    assert!(parted.mismatches > 0);
    let named: Vec<_> = parted
        .keys
        .iter()
        .map(|k| (k.store.as_str(), k.key.as_str(), k.problem.as_str()))
        .collect();
    assert_eq!(named, [("raw", "v0", "extra")]);

    // A key index too small for the date's keys: named a group of parts at a time.
    let mut grouped = in_parts();
    grouped.key_index_bytes = Some(64);
    let grouped = check_dataset_with(store.clone(), &registry, &topic, &[], &grouped)
        .await
        .unwrap();
    let named: Vec<_> = grouped
        .keys
        .iter()
        .map(|k| (k.store.as_str(), k.key.as_str(), k.problem.as_str()))
        .collect();
    assert_eq!(named, [("raw", "v0", "extra")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn warehouse_faults_are_detected_and_their_keys_named() {
    use clap::Parser;
    use onepipe_verifier::verify::Warehouse;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "sum:secs,max:secs,row_checksum",
        ],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store_url = fresh_store_url();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&store_url).unwrap();
    let mut raw = RawBatch::new(0);
    let day0 = 1_795_478_400_000i64;
    for i in 0..400i64 {
        let e = w
            .encode_json(&json!({"visit_id": format!("v{}", i % 300), "version": i, "at": day0 + i * 1000, "secs": i as f64 / 7.0}))
            .unwrap();
        raw.push(i, day0, Some(&e.key), Some(&e.value), &[]);
    }
    let file = RawFile {
        topic: topic.clone(),
        partition: 0,
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        hour: 0,
        first_offset: 0,
        last_offset: 399,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();

    let db = fresh_database("verifier_mart").await;
    let config = onepipe_warehouse_loader::Config::try_parse_from([
        "warehouse-loader",
        "--registry",
        &registry_url,
        "--object-store",
        &store_url,
        "--database",
        &db,
        "--datasets",
        &topic,
        "--once",
    ])
    .unwrap();
    let loader = onepipe_warehouse_loader::Loader::connect(&config, Default::default())
        .await
        .unwrap();
    let (_stop_loader, stopped) = tokio::sync::watch::channel(false);
    assert!(loader.cycle(&stopped).await.ok());

    let pool = warehouse::connect(&db).await.unwrap();
    let marts = [Warehouse {
        name: "mart".into(),
        db: warehouse::Db::Postgres(pool.clone()),
        schema: "public".into(),
    }];
    let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.store == "mart" && l.check == "row_checksum" && l.verdict == "ok")
    );

    let table = format!("\"{}\"", warehouse::table_name(&topic));
    sqlx::query(&format!("CREATE TABLE backup AS SELECT * FROM {table}"))
        .execute(&pool)
        .await
        .unwrap();
    let faults = [
        (
            format!("DELETE FROM {table} WHERE visit_id = 'v7'"),
            "v7",
            "missing",
        ),
        (
            format!("UPDATE {table} SET secs = secs + 1 WHERE visit_id = 'v8'"),
            "v8",
            "different",
        ),
        (
            format!("INSERT INTO {table} SELECT * FROM {table} WHERE visit_id = 'v9'"),
            "v9",
            "duplicate",
        ),
        (
            format!(
                "INSERT INTO {table} SELECT 'zz-new', version, \"at\", secs, _kafka_partition, _kafka_offset, _kafka_timestamp, _date FROM {table} WHERE visit_id = 'v10'"
            ),
            "zz-new",
            "extra",
        ),
    ];
    for (sql, key, problem) in faults {
        sqlx::query(&sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
            .await
            .unwrap();
        assert!(report.mismatches > 0, "{sql}: not detected");
        let named: Vec<(&str, &str, &str)> = report
            .keys
            .iter()
            .map(|k| (k.store.as_str(), k.key.as_str(), k.problem.as_str()))
            .collect();
        assert_eq!(named, [("mart", key, problem)], "{sql}");
        assert!(
            report
                .keys
                .iter()
                .all(|k| k.date == "2026-11-24" && k.dataset == topic)
        );
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("INSERT INTO {table} SELECT * FROM backup"))
            .execute(&pool)
            .await
            .unwrap();
    }
    let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn lag_is_ok_when_caught_up_and_stopped_when_nobody_consumes() {
    use onepipe_verifier::lag::{Status, sample, status};
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("lagged");
    onepipe_integration_tests::create_topic(&bootstrap, &topic, 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for i in 0..10 {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(&format!("r{i}")),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let commit = |group: &str, offset: i64| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    };
    let (done, behind) = (unique_name("caught-up"), unique_name("stopped"));
    commit(&done, 10);
    commit(&behind, 3);
    let topics = vec![topic.clone()];
    let (b2, t2) = (bootstrap.clone(), topics.clone());
    let ((a1, m1), (b1, n1)) = tokio::task::spawn_blocking(move || {
        (
            sample(&b2, &done, &t2, &[]).unwrap(),
            sample(&b2, &behind, &t2, &[]).unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(a1[0].lag, 0);
    assert_eq!(status(&a1, &a1, m1), Status::Ok);
    assert_eq!(b1[0].lag, 7);
    assert_eq!(n1, 0, "no member is connected");
    assert_eq!(status(&b1, &b1, n1), Status::Stopped);
}

/// A visit as JSON: `at` is `day` days after 2026-11-24 plus `i` seconds.
fn visit(id: &str, version: i64, day: i64, i: i64) -> serde_json::Value {
    json!({"visit_id": id, "version": version, "at": 1_795_478_400_000i64 + day * 86_400_000 + i * 1000, "secs": version as f64 / 4.0})
}

/// Produces `visits` to `topic` (keyed by the unique key); returns where each went
/// (partition, offset).
async fn produce_visits(
    registry: &SchemaRegistry,
    topic: &str,
    visits: &[serde_json::Value],
) -> Vec<(i32, i64)> {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", endpoint("ONEPIPE_KAFKA_BOOTSTRAP"))
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let w = Serializer::new(registry.clone(), Default::default())
        .writer(topic, None)
        .await
        .unwrap();
    let mut out = Vec::new();
    for v in visits {
        let e = w.encode_json(v).unwrap();
        let delivery = producer
            .send(
                FutureRecord::to(topic).key(&e.key).payload(&e.value),
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
        out.push((delivery.partition, delivery.offset));
    }
    out
}

/// The last offset of each partition in `positions`.
fn last_offsets(positions: &[(i32, i64)]) -> std::collections::BTreeMap<i32, i64> {
    let mut last = std::collections::BTreeMap::new();
    for (p, o) in positions {
        let e = last.entry(*p).or_insert(*o);
        *e = (*e).max(*o);
    }
    last
}

/// Runs the `verifier` binary with `args`; returns its exit code and its JSON report.
async fn verifier_json(args: Vec<String>) -> (i32, serde_json::Value) {
    let bin = onepipe_integration_tests::service_binary("onepipe-verifier", "verifier");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("running verifier")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "verifier printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

/// (date, check, value, verdict) of the report lines of `store`.
fn lines_of(doc: &serde_json::Value, store: &str) -> Vec<(String, String, String, String)> {
    doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["store"] == store)
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_string();
            (s("date"), s("check"), s("value"), s("verdict"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_copycat_never_archived_are_named_with_their_dates() {
    use clap::Parser;
    use std::collections::BTreeSet;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        2,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "sum:secs,row_checksum",
        ],
    )
    .await;
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let store_url = fresh_store_url();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&store_url).unwrap();

    // Kafka → copycat → raw/ → copydog → clean/ → warehouse-loader → PostgreSQL.
    let first: Vec<serde_json::Value> = (0..40)
        .map(|i| visit(&format!("v{}", i % 30), i, i % 2, i))
        .collect();
    let last = last_offsets(&produce_visits(&registry, &topic, &first).await);
    let (copycat, stop_copycat) = start_copycat(&bootstrap, &store_url, &topic, 1_000_000);
    wait_archived(store.as_ref(), &topic, &last).await;
    stop_copycat.send(()).unwrap();
    copycat.await.unwrap().expect("copycat stops cleanly");
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();
    let db = fresh_database("verifier_kafka").await;
    let config = onepipe_warehouse_loader::Config::try_parse_from([
        "warehouse-loader",
        "--registry",
        &registry_url,
        "--object-store",
        &store_url,
        "--database",
        &db,
        "--datasets",
        &topic,
        "--once",
    ])
    .unwrap();
    let loader = onepipe_warehouse_loader::Loader::connect(&config, Default::default())
        .await
        .unwrap();
    let (_stop_loader, stopped) = tokio::sync::watch::channel(false);
    assert!(loader.cycle(&stopped).await.ok());

    let args = |grace: &str| -> Vec<String> {
        [
            "--registry",
            &registry_url,
            "--object-store",
            &store_url,
            "--warehouse",
            &db,
            "--kafka-bootstrap",
            &bootstrap,
            "--lag-window-secs",
            "0",
            "--archive-grace-secs",
            grace,
            "check",
            "--dataset",
            &topic,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Everything archived: every store agrees and Kafka has nothing raw/ lacks.
    let (code, doc) = verifier_json(args("0")).await;
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(
        lines_of(&doc, "kafka"),
        [(
            "*".into(),
            "records_not_archived".into(),
            "0".into(),
            "ok".into()
        )]
    );

    // copycat is stopped: these stay in Kafka only. Two dates; v3 is an update of a key
    // that is archived (on the other date).
    let later = [
        visit("x1", 100, 0, 500),
        visit("x2", 101, 0, 501),
        visit("x3", 102, 1, 502),
        visit("v3", 103, 1, 503),
    ];
    produce_visits(&registry, &topic, &later).await;
    let (d0, d1) = ("2026-11-24".to_string(), "2026-11-25".to_string());

    // Within the grace window they are lag, not a fault.
    let (code, doc) = verifier_json(args("3600")).await;
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(
        lines_of(&doc, "kafka"),
        [
            (
                "*".into(),
                "records_not_archived".into(),
                "0".into(),
                "ok".into()
            ),
            (
                d0.clone(),
                "records_in_flight".into(),
                "2".into(),
                "lag".into()
            ),
            (
                d1.clone(),
                "records_in_flight".into(),
                "2".into(),
                "lag".into()
            ),
        ]
    );
    assert_eq!(doc["keys"], json!([]));

    // Past it: a mismatch, exit 1, exactly these keys named with their dates.
    let (code, doc) = verifier_json(args("0")).await;
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["mismatches"], 2, "{doc:#}");
    assert_eq!(doc["errors"], json!([]));
    assert_eq!(
        lines_of(&doc, "kafka"),
        [
            (
                d0.clone(),
                "records_not_archived".into(),
                "2".into(),
                "MISMATCH".into()
            ),
            (
                d1.clone(),
                "records_not_archived".into(),
                "2".into(),
                "MISMATCH".into()
            ),
        ]
    );
    let named: BTreeSet<(String, String, String, String, String)> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("dataset"), s("date"), s("store"), s("key"), s("problem"))
        })
        .collect();
    let want: BTreeSet<_> = [(&d0, "x1"), (&d0, "x2"), (&d1, "x3"), (&d1, "v3")]
        .into_iter()
        .map(|(d, k)| {
            (
                topic.clone(),
                d.clone(),
                "kafka".to_string(),
                k.to_string(),
                "not_archived".to_string(),
            )
        })
        .collect();
    assert_eq!(named, want);
    // The other stores still agree with each other: only Kafka is ahead.
    let others: Vec<_> = doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["store"] != "kafka" && l["verdict"] != "ok")
        .collect();
    assert!(others.is_empty(), "{others:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_file_left_out_of_the_manifest_is_caught_and_its_keys_named() {
    use std::collections::BTreeSet;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "sum:secs,row_checksum",
        ],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&fresh_store_url()).unwrap();
    let mut raw = RawBatch::new(0);
    let day0 = 1_795_478_400_000i64;
    for i in 0..100i64 {
        let e = w
            .encode_json(&visit(&format!("v{}", i % 60), i, 0, i))
            .unwrap();
        raw.push(i, day0, Some(&e.key), Some(&e.value), &[]);
    }
    let file = RawFile {
        topic: topic.clone(),
        partition: 0,
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        hour: 0,
        first_offset: 0,
        last_offset: 99,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
    // 60 keys in files of at most 20 rows: three files for the date.
    let options = RunOptions {
        max_file_rows: 20,
        ..RunOptions::default()
    };
    run_topic(store.clone(), &registry, &topic, &options)
        .await
        .unwrap();
    let report = check_dataset(store.clone(), &registry, &topic, &[], 100)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);
    // The Delta table holds the manifest and exactly its files.
    assert_eq!(
        delta_verdicts(&report),
        [
            (
                "manifest",
                "ok",
                "version 1 holds manifest 1 of 1".to_string()
            ),
            ("files", "ok", "3 files, 1 dates".to_string())
        ]
    );

    // A new manifest whose date lacks its second file, committed create-only as copydog
    // commits.
    let mut m = latest_manifest(store.as_ref(), &topic).await;
    let (date, entry) = m.dates.iter_mut().next().unwrap();
    let date = date.to_string();
    assert!(entry.files.len() >= 2, "{:?}", entry.files);
    let removed = entry.files.remove(1);
    let bytes = store
        .get(&Path::from(removed.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut lost = BTreeSet::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
    {
        let batch = batch.unwrap();
        let ids = batch
            .column_by_name("visit_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        lost.extend(ids.iter().flatten().map(str::to_string));
    }
    assert!(!lost.is_empty());
    entry.rows -= lost.len() as u64;
    m.number += 1;
    m.created_at = chrono::Utc::now();
    assert!(manifest::commit(store.as_ref(), &m).await.unwrap());

    let report = check_dataset(store.clone(), &registry, &topic, &[], 100)
        .await
        .unwrap();
    assert!(report.mismatches > 0);
    let rows = report
        .lines
        .iter()
        .find(|l| l.store == "raw" && l.check == "rows")
        .unwrap();
    assert_eq!(
        (rows.date.as_str(), rows.verdict.as_str()),
        (date.as_str(), "MISMATCH")
    );
    assert_eq!(rows.value, "60");
    // Clean is the reference: raw holds the lost keys, clean does not.
    let named: BTreeSet<String> = report.keys.iter().map(|k| k.key.clone()).collect();
    assert_eq!(named, lost);
    assert!(
        report.keys.iter().all(|k| k.store == "raw"
            && k.problem == "extra"
            && k.date == date
            && k.dataset == topic),
        "{:?}",
        report.keys
    );
    // Not published yet: the Delta table is behind, which is no fault.
    assert_eq!(
        delta_verdicts(&report),
        [(
            "manifest",
            "lag",
            "version 1 holds manifest 1 of 2".to_string()
        )]
    );

    // Published, then one added file's path changed by hand in the Delta log (in version
    // 1: version 2 only removes a file): that date is named.
    delta::publish(store.clone(), &topic).await.unwrap();
    let commit = Path::from(format!("clean/{topic}/_delta_log/{:020}.json", 1));
    let text = String::from_utf8(
        store
            .get(&commit)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let add = text.find("\"add\"").expect("an add action");
    let at = add + text[add..].find(".parquet\"").unwrap();
    let tampered = format!("{}-moved{}", &text[..at], &text[at..]);
    store
        .put(&commit, PutPayload::from(tampered.into_bytes()))
        .await
        .unwrap();
    let report = check_dataset(store.clone(), &registry, &topic, &[], 100)
        .await
        .unwrap();
    let delta = delta_verdicts(&report);
    assert_eq!(
        delta[0],
        (
            "manifest",
            "ok",
            "version 2 holds manifest 2 of 2".to_string()
        )
    );
    assert_eq!((delta[1].0, delta[1].1), ("files", "MISMATCH"));
    let named: Vec<&str> = report
        .lines
        .iter()
        .filter(|l| l.store == "delta" && l.date != onepipe_verifier::verify::ALL_DATES)
        .map(|l| l.date.as_str())
        .collect();
    assert_eq!(named, [date.as_str()]);
}

/// (check, verdict, value) of the report's Delta lines.
fn delta_verdicts(report: &onepipe_verifier::verify::DatasetReport) -> Vec<(&str, &str, String)> {
    report
        .lines
        .iter()
        .filter(|l| l.store == onepipe_verifier::verify::DELTA)
        .map(|l| (l.check.as_str(), l.verdict.as_str(), l.value.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_file_missing_between_others_is_named_with_its_records() {
    use onepipe_verifier::archived::{KafkaOptions, check};
    use std::collections::BTreeSet;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &["--merge", "max_by:version", "--partition-time", "at"],
    )
    .await;
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let store_url = fresh_store_url();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&store_url).unwrap();
    let visits: Vec<serde_json::Value> = (0..30)
        .map(|i| visit(&format!("v{i}"), i, i % 2, i))
        .collect();
    let positions = produce_visits(&registry, &topic, &visits).await;
    let (copycat, stop_copycat) = start_copycat(&bootstrap, &store_url, &topic, 10);
    wait_archived(store.as_ref(), &topic, &last_offsets(&positions)).await;
    stop_copycat.send(()).unwrap();
    copycat.await.unwrap().expect("copycat stops cleanly");
    let kafka = KafkaOptions {
        bootstrap,
        client_options: Vec::new(),
        grace: std::time::Duration::ZERO,
    };
    let report = check(store.clone(), &registry, &topic, &kafka, 100)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);

    // Remove a raw file that has files before and after it.
    let (mut files, _) =
        onepipe_archive::checkpoint::list_raw(store.as_ref(), &format!("raw/{topic}/"))
            .await
            .unwrap();
    files.sort_by_key(|f| f.first_offset);
    assert!(files.len() >= 3, "{files:?}");
    let gone = files[1].clone();
    store
        .delete(&Path::from(gone.path().as_str()))
        .await
        .unwrap();

    let report = check(store.clone(), &registry, &topic, &kafka, 100)
        .await
        .unwrap();
    let n = gone.last_offset - gone.first_offset + 1;
    let gap = report
        .lines
        .iter()
        .find(|l| l.check == "offset_gap")
        .unwrap_or_else(|| panic!("no offset_gap line: {:#?}", report.lines));
    assert_eq!(gap.store, "raw");
    assert_eq!(gap.verdict, "MISMATCH");
    assert_eq!(
        gap.value,
        format!(
            "partition 0: offsets {}..={} missing, {n} records in Kafka",
            gone.first_offset, gone.last_offset
        )
    );
    // Exactly the records of the removed file, each with its date.
    let want: BTreeSet<(String, String)> = positions
        .iter()
        .zip(&visits)
        .filter(|((_, o), _)| (gone.first_offset..=gone.last_offset).contains(o))
        .map(|(_, v)| {
            let i = v["version"].as_i64().unwrap();
            let date = if i % 2 == 0 {
                "2026-11-24"
            } else {
                "2026-11-25"
            };
            (
                date.to_string(),
                v["visit_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let named: BTreeSet<(String, String)> = report
        .keys
        .iter()
        .map(|k| {
            assert_eq!(
                (k.store.as_str(), k.problem.as_str()),
                ("kafka", "not_archived")
            );
            (k.date.clone(), k.key.clone())
        })
        .collect();
    assert_eq!(named, want);
    let counted: u64 = report
        .lines
        .iter()
        .filter(|l| l.check == "records_not_archived")
        .map(|l| l.value.parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, n as u64);

    // Once Kafka has no such topic there is nothing to compare: said, not an error.
    use rdkafka::admin::{AdminClient, AdminOptions};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .unwrap();
    for r in admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let started = std::time::Instant::now();
    let report = loop {
        let report = check(store.clone(), &registry, &topic, &kafka, 100).await;
        match report {
            // Deleting a topic takes a moment to reach every broker's metadata.
            Ok(r)
                if r.lines
                    .iter()
                    .any(|l| l.value == "the topic is not in Kafka") =>
            {
                break r;
            }
            _ if started.elapsed() > std::time::Duration::from_secs(30) => {
                panic!("the deleted topic still reads as present: {report:?}")
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    };
    let lines: Vec<(&str, &str, &str)> = report
        .lines
        .iter()
        .map(|l| (l.check.as_str(), l.value.as_str(), l.verdict.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(
            "records_not_archived",
            "the topic is not in Kafka",
            "unchecked"
        )]
    );
    assert_eq!(report.mismatches, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_is_not_ready_while_the_registry_refuses_it() {
    let tokens = Tokens::new(Some("adm1n".into()), Some("r3ad".into()));
    let (registry, _stop) = start_registry(tokens).await;
    let bin = onepipe_integration_tests::service_binary("onepipe-verifier", "verifier");
    let store = fresh_store_url();
    let log = std::env::temp_dir().join(format!("{}.log", unique_name("verifier-serve")));
    let args = |token: Option<&'static str>| {
        let mut a = vec![
            "--registry",
            registry.as_str(),
            "--object-store",
            store.as_str(),
            "--admin-listen",
            "127.0.0.1:0",
        ];
        if let Some(t) = token {
            a.extend(["--registry-token", t]);
        }
        a.extend(["serve", "--interval", "1s"]);
        a
    };
    let readyz = |admin: String, want: u16, saying: &'static str| async move {
        let started = std::time::Instant::now();
        loop {
            let r = onepipe_integration_tests::http("GET", &admin, "/readyz", &[], b"").await;
            let body = String::from_utf8_lossy(&r.body).into_owned();
            if r.status == want && body.contains(saying) {
                return body;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "/readyz stayed {} ({body}), want {want}",
                r.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    };

    let refused =
        onepipe_integration_tests::spawn_service(&bin, &args(None), &[], &["admin"], &log);
    readyz(refused.addrs["admin"].clone(), 503, "registry").await;
    // Several rounds later it still says so (it used to check nothing and look healthy).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    readyz(refused.addrs["admin"].clone(), 503, "registry").await;
    drop(refused);

    let mut served =
        onepipe_integration_tests::spawn_service(&bin, &args(Some("r3ad")), &[], &["admin"], &log);
    readyz(served.addrs["admin"].clone(), 200, "ready").await;
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn decimal_sums_are_exact_and_float_sums_agree_with_postgres() {
    let url = fresh_database("it_sums").await;
    let pool = warehouse::connect(&url).await.unwrap();
    let topic = unique_name("sums");
    let table = format!(
        "public.{}",
        warehouse::quote(&warehouse::table_name(&topic))
    );
    sqlx::query(&format!(
        "CREATE TABLE {table} (\"_date\" date, id text, price numeric(18,2), weight real, ratio double precision)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    // Prices near 1e9 each (a sum near 1e11), float4 weights that float4 arithmetic
    // sums differently from double precision.
    let n = 100;
    let ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let cents: Vec<i128> = (0..n).map(|i| 99_999_999_999 + i as i128 * 7).collect();
    let weights: Vec<f32> = (0..n).map(|i| 0.1 + i as f32 / 3.0).collect();
    let ratios: Vec<f64> = (0..n).map(|i| 1e-3 * i as f64 + 0.1).collect();
    for i in 0..n {
        sqlx::query(&format!(
            "INSERT INTO {table} VALUES ('2026-11-24', $1, $2::numeric / 100, $3, $4)"
        ))
        .bind(&ids[i])
        .bind(cents[i].to_string())
        .bind(weights[i])
        .bind(ratios[i])
        .execute(&pool)
        .await
        .unwrap();
    }
    let fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("price", DataType::Decimal128(18, 2), true),
        Field::new("weight", DataType::Float32, true),
        Field::new("ratio", DataType::Float64, true),
    ];
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields.clone())),
        vec![
            Arc::new(StringArray::from(ids.clone())),
            Arc::new(
                Decimal128Array::from(cents.clone())
                    .with_precision_and_scale(18, 2)
                    .unwrap(),
            ),
            Arc::new(Float32Array::from(weights.clone())),
            Arc::new(Float64Array::from(ratios.clone())),
        ],
    )
    .unwrap();
    let mut meta = TopicMetadata::new(&topic, vec!["id".into()]);
    meta.checks = ["sum(price)", "sum(weight)", "sum(ratio)"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let float_sums = onepipe_verifier::checks::float_sums(&meta, &fields);
    let ours = compute(&[batch], &meta).unwrap();
    let db = warehouse::Db::Postgres(pool.clone());
    let theirs = warehouse::checks(&db, "public", &meta, &fields)
        .await
        .unwrap();
    let theirs = &theirs["2026-11-24"];
    for name in ["rows", "sum(price)", "sum(weight)", "sum(ratio)"] {
        assert!(
            onepipe_verifier::checks::agree(&ours[name], &theirs[name], float_sums.contains(name)),
            "{name}: Rust {}, PostgreSQL {}",
            ours[name],
            theirs[name]
        );
    }
    // One price a cent off in PostgreSQL: the decimal sum no longer agrees.
    sqlx::query(&format!(
        "UPDATE {table} SET price = price + 0.01 WHERE id = 'k7'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let theirs = warehouse::checks(&db, "public", &meta, &fields)
        .await
        .unwrap();
    let off = &theirs["2026-11-24"]["sum(price)"];
    assert!(
        !onepipe_verifier::checks::agree(&ours["sum(price)"], off, false),
        "a cent's difference in {} vs {off} went unnoticed",
        ours["sum(price)"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_field_name_longer_than_postgres_keeps_is_checked_under_the_loaders_name() {
    let url = fresh_database("it_long_names").await;
    let pool = warehouse::connect(&url).await.unwrap();
    let topic = unique_name("long_names");
    let long = format!("amount_{}", "x".repeat(93));
    assert_eq!(long.len(), 100);
    let column = onepipe_tables::names::column_name(&long);
    let table = format!(
        "public.{}",
        warehouse::quote(&warehouse::table_name(&topic))
    );
    sqlx::query(&format!(
        "CREATE TABLE {table} (\"_date\" date, id text, {} bigint)",
        warehouse::quote(&column)
    ))
    .execute(&pool)
    .await
    .unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let amounts: Vec<i64> = (0..20).map(|i| i * 1_000 + 7).collect();
    for (id, a) in ids.iter().zip(&amounts) {
        sqlx::query(&format!(
            "INSERT INTO {table} VALUES ('2026-11-24', $1, $2)"
        ))
        .bind(id)
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    }
    let fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(&long, DataType::Int64, true),
    ];
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields.clone())),
        vec![
            Arc::new(StringArray::from(ids.clone())),
            Arc::new(Int64Array::from(amounts.clone())),
        ],
    )
    .unwrap();
    let mut meta = TopicMetadata::new(&topic, vec!["id".into()]);
    meta.checks = [
        format!("sum({long})"),
        format!("max({long})"),
        "row_checksum".into(),
    ]
    .iter()
    .map(|c| c.parse().unwrap())
    .collect();
    let ours = compute(&[batch], &meta).unwrap();
    let db = warehouse::Db::Postgres(pool.clone());
    let theirs = warehouse::checks(&db, "public", &meta, &fields)
        .await
        .unwrap_or_else(|e| panic!("the checks name the loader's column: {e}"));
    let theirs = &theirs["2026-11-24"];
    assert_eq!(&ours, theirs);
}

#[tokio::test(flavor = "multi_thread")]
async fn nanosecond_timestamps_agree_with_postgres_row_by_row() {
    use arrow::array::TimestampNanosecondArray;
    let avro = apache_avro::Schema::parse_str(
        r#"{"type":"record","name":"T","fields":[{"name":"id","type":"string"},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-nanos"}}]}"#,
    )
    .unwrap();
    let fields: Vec<Field> = onepipe_archive::columns::Mapping::new(&avro)
        .unwrap()
        .fields()
        .unwrap()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let DataType::Timestamp(TimeUnit::Nanosecond, tz) = fields[1].data_type().clone() else {
        panic!("timestamp-nanos maps to {:?}", fields[1].data_type());
    };
    // Ties and near-ties of the microsecond, a carry into the next second, before 1970.
    const T0: i64 = 1_795_498_200_000_000_000;
    let nanos: Vec<i64> = vec![
        T0 + 1_500,
        T0 + 2_500,
        T0 + 3_500,
        T0 + 123_456_500,
        T0 + 999_999_500,
        T0 + 999_999_700,
        T0 + 499,
        T0 + 501,
        -1_500,
        -2_500,
        -999_999_999,
    ];
    let ids: Vec<String> = (0..nanos.len()).map(|i| format!("k{i}")).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields.clone())),
        vec![
            Arc::new(StringArray::from(ids.clone())),
            Arc::new(TimestampNanosecondArray::from(nanos.clone()).with_timezone_opt(tz)),
        ],
    )
    .unwrap();

    // Loaded the loader's way: its COPY text into its column types.
    let url = fresh_database("it_nanos").await;
    let pool = warehouse::connect(&url).await.unwrap();
    let topic = unique_name("nanos");
    let table = format!(
        "public.{}",
        warehouse::quote(&warehouse::table_name(&topic))
    );
    sqlx::query(&format!(
        "CREATE TABLE {table} (id text, at timestamptz, \"_date\" date)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    // The record's columns (this table has no Kafka columns).
    let mut columns = onepipe_tables::types::columns(&avro).unwrap();
    columns.retain(|c| c.source == "id" || c.source == "at");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let mut text = Vec::new();
    onepipe_warehouse_loader::encode::Encoder::new(columns, day)
        .copy_text(&batch, &mut text)
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN"))
        .await
        .unwrap();
    copy.send(text).await.unwrap();
    copy.finish().await.unwrap();
    drop(conn);

    let stored: std::collections::BTreeMap<String, String> = sqlx::query(&format!(
        "SELECT id, {} FROM {table}",
        warehouse::text_expr("at", fields[1].data_type())
    ))
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
    .collect();
    let column: ArrayRef = batch.column(1).clone();
    for (i, id) in ids.iter().enumerate() {
        let ours = onepipe_verifier::canonical::value_text(&column, i);
        assert_eq!(
            ours, stored[id],
            "{} ns: the verifier says {ours} µs, PostgreSQL holds {}",
            nanos[i], stored[id]
        );
    }
    let mut meta = TopicMetadata::new(&topic, vec!["id".into()]);
    meta.checks = ["min(at)", "max(at)", "row_checksum"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    let ours = compute(&[batch], &meta).unwrap();
    let theirs = warehouse::checks(&warehouse::Db::Postgres(pool), "public", &meta, &fields)
        .await
        .unwrap();
    assert_eq!(&ours, &theirs["2026-11-24"]);
}

/// Writes raw file `first..=last` of partition 0 holding `records` (version, key,
/// `at` in ms), all with Kafka timestamp `ts`.
async fn put_visits(
    store: &dyn ObjectStore,
    w: &onepipe_client::WriterSchema,
    topic: &str,
    first: i64,
    ts: i64,
    records: &[(i64, String, i64)],
) {
    let mut raw = RawBatch::new(0);
    for (i, (version, id, at)) in records.iter().enumerate() {
        let e = w
            .encode_json(&json!({"visit_id": id, "version": version, "at": at, "secs": 1.5}))
            .unwrap();
        raw.push(first + i as i64, ts, Some(&e.key), Some(&e.value), &[]);
    }
    let file = RawFile {
        topic: topic.to_string(),
        partition: 0,
        date: chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .date_naive(),
        hour: 0,
        first_offset: first,
        last_offset: first + records.len() as i64 - 1,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
}

/// The verdicts kept under verify/ let a second check skip what did not change: after
/// one late record, exactly its date is checked again; a clean file replaced in place
/// (same version) is checked again too; `--full` checks everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_check_rechecks_only_the_date_a_late_record_changed() {
    use onepipe_verifier::verify::{ALL_DATES, CheckOptions};
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "sum:secs,row_checksum",
        ],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&fresh_store_url()).unwrap();
    let day = 86_400_000i64;
    let day0 = 1_795_478_400_000i64; // 2026-11-24
    // 30 records over three dates, in one raw file of the first date's folder.
    let records: Vec<(i64, String, i64)> = (0..30)
        .map(|i| (i, format!("v{i}"), day0 + (i % 3) * day + i * 1000))
        .collect();
    put_visits(store.as_ref(), &w, &topic, 0, day0, &records).await;
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();

    let check = |full: bool| {
        let (store, registry, topic) = (store.clone(), registry.clone(), topic.clone());
        async move {
            let mut options = CheckOptions::new(10);
            options.full = full;
            check_dataset_with(store, &registry, &topic, &[], &options)
                .await
                .unwrap()
        }
    };
    let first = check(false).await;
    assert_eq!(first.mismatches, 0, "{:#?}", first.lines);
    assert_eq!(first.checked.len(), 3, "{:?}", first.checked);
    assert!(first.checked.iter().all(|c| c.reason == "new"));
    assert_eq!(first.dates_skipped, 0);
    assert!(
        store
            .head(&onepipe_verifier::verdicts::path(&topic))
            .await
            .is_ok(),
        "verdicts are kept under verify/"
    );

    let again = check(false).await;
    assert_eq!((again.checked.len(), again.dates_skipped), (0, 3));
    // Only the dataset's count of rejected records, which every round updates.
    assert!(
        again.lines.iter().all(|l| l.date == ALL_DATES),
        "{:#?}",
        again.lines
    );

    // One late record for the second date, archived a day later in the next raw file.
    put_visits(
        store.as_ref(),
        &w,
        &topic,
        30,
        day0 + 3 * day,
        &[(100, "v1".to_string(), day0 + day + 5)],
    )
    .await;
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();
    let late = check(false).await;
    assert_eq!(late.mismatches, 0, "{:#?}", late.lines);
    let dates: Vec<(&str, &str)> = late
        .checked
        .iter()
        .map(|c| (c.date.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(dates, [("2026-11-25", "clean version")]);
    assert_eq!(late.dates_skipped, 2);
    assert!(
        late.lines
            .iter()
            .all(|l| l.date == "2026-11-25" || l.date == ALL_DATES)
    );

    // A clean file of the third date replaced in place, one row short: checked again
    // although its version is the same, and the row is missed.
    let m = latest_manifest(store.as_ref(), &topic).await;
    let third = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let path = m.dates[&third].files[0].clone();
    let batch = read_batches(store.as_ref(), &path).await.remove(0);
    let short = batch.slice(1, batch.num_rows() - 1);
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, short.schema(), None).unwrap();
    writer.write(&short).unwrap();
    writer.close().unwrap();
    store
        .put(&Path::from(path.as_str()), PutPayload::from(out))
        .await
        .unwrap();
    let replaced = check(false).await;
    let dates: Vec<(&str, &str)> = replaced
        .checked
        .iter()
        .map(|c| (c.date.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(dates, [("2026-11-26", "clean files changed")]);
    assert!(replaced.mismatches > 0);
    assert_eq!(replaced.keys.len(), 1, "{:?}", replaced.keys);
    assert_eq!(replaced.keys[0].problem, "extra");
    // Not ok: checked again on the next run, not taken from the verdicts.
    let still = check(false).await;
    assert_eq!(still.checked.len(), 1);
    assert!(still.mismatches > 0);
    let full = check(true).await;
    assert_eq!((full.checked.len(), full.dates_skipped), (3, 0));
}

const NESTED_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"order_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"ship","type":["null",{"type":"record","name":"Ship","fields":[
    {"name":"to","type":"string"},
    {"name":"fee","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
    {"name":"due","type":{"type":"long","logicalType":"timestamp-micros"}},
    {"name":"day","type":["null",{"type":"int","logicalType":"date"}]},
    {"name":"tag","type":"bytes"},
    {"name":"weight","type":"double"},
    {"name":"ratio","type":"float"},
    {"name":"via","type":["null","long","string"]}]}],"default":null},
  {"name":"items","type":{"type":"array","items":["null",{"type":"record","name":"Item","fields":[
    {"name":"sku","type":"string"},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":3}},
    {"name":"seen","type":{"type":"long","logicalType":"timestamp-nanos"}},
    {"name":"when","type":{"type":"long","logicalType":"local-timestamp-millis"}},
    {"name":"slot","type":{"type":"int","logicalType":"time-millis"}},
    {"name":"ok","type":"boolean"}]}]}},
  {"name":"attrs","type":["null",{"type":"map","values":["null","string"]}],"default":null},
  {"name":"counts","type":{"type":"map","values":{"type":"array","items":"int"}}}]}"#;

/// Order `i` of the nested dataset: nulls, empty arrays and maps, and inside them
/// decimals, timestamps before and after 1970, floats and strings that need escaping.
fn nested_order(i: i64, day0: i64) -> serde_json::Value {
    let texts = [
        "plain",
        "quote\" and \\ backslash",
        "ünïcödé 日本 😀",
        "tab\there\nnewline\u{1}\u{1f}\u{7f}",
        "",
        "'single'",
    ];
    let text = |k: i64| texts[(k.rem_euclid(texts.len() as i64)) as usize];
    let weights = [0.1, 1e-7, 1e21, -0.0, 123456789.123, -2.5e-300];
    let tag = ["", "AP8=", "3q2+7w==", "XA=="][(i % 4) as usize];
    let ship = if i % 5 == 4 {
        serde_json::Value::Null
    } else {
        json!({
            "to": text(i),
            "fee": format!("{}.{:02}", i * 37 - 500, i % 100),
            "due": (i - 30) * 86_400_000_123i64,
            "day": if i % 3 == 0 { serde_json::Value::Null } else { json!(-3 + i) },
            "tag": tag,
            "weight": weights[(i % 6) as usize],
            "ratio": i as f64 / 8.0,
            "via": match i % 3 {
                0 => serde_json::Value::Null,
                1 => json!({"long": -i}),
                _ => json!({"string": text(i + 1)}),
            }
        })
    };
    let items: Vec<serde_json::Value> = (0..i % 4)
        .map(|k| {
            if (i + k) % 7 == 6 {
                return serde_json::Value::Null;
            }
            json!({
                "sku": text(i + k),
                "price": format!("-{}.{:03}", k, (i * 7 + k) % 1000),
                "seen": 1_795_478_400_000_000_000i64 + i * 1_000_000_007 + k * 500,
                "when": -1_000 * i - k,
                "slot": (i * 3_600_001 + k) % 86_400_000,
                "ok": k % 2 == 0
            })
        })
        .collect();
    let attrs = match i % 6 {
        5 => serde_json::Value::Null,
        4 => json!({}),
        _ => json!({
            "zeta": text(i),
            "a": serde_json::Value::Null,
            "éclair": text(i + 2),
            "AB": "upper",
            "aa": format!("v{i}")
        }),
    };
    let counts = if i % 4 == 0 {
        json!({})
    } else {
        json!({"b": [i, -1, 2_147_483_647], "a": [], "c": [0]})
    };
    json!({
        "order_id": format!("o{}", i % 40),
        "version": i,
        "at": day0 + i * 1_000,
        "ship": ship,
        "items": items,
        "attrs": attrs,
        "counts": counts
    })
}

/// Records, arrays and maps take part in the row checksum: PostgreSQL's text of the
/// loader's `jsonb` equals the Rust text of the clean rows, row by row; a change inside
/// any of them in the warehouse is a mismatch whose key the drill-down names.
#[tokio::test(flavor = "multi_thread")]
async fn nested_columns_agree_with_postgres_and_a_change_inside_names_its_key() {
    use clap::Parser;
    use onepipe_verifier::verify::Warehouse;
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("nested");
    create_dataset(
        &registry_url,
        &topic,
        NESTED_SCHEMA,
        "order_id",
        1,
        &[
            "--merge",
            "max_by:version",
            "--partition-time",
            "at",
            "--checks",
            "row_checksum",
        ],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store_url = fresh_store_url();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&store_url).unwrap();
    let mut raw = RawBatch::new(0);
    let day0 = 1_795_478_400_000i64;
    let n = 100i64;
    for i in 0..n {
        let record = nested_order(i, day0);
        let e = w
            .encode_json(&record)
            .unwrap_or_else(|e| panic!("{record}: {e:?}"));
        raw.push(i, day0, Some(&e.key), Some(&e.value), &[]);
    }
    let file = RawFile {
        topic: topic.clone(),
        partition: 0,
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        hour: 0,
        first_offset: 0,
        last_offset: n - 1,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
    run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();

    let db = fresh_database("verifier_nested").await;
    let config = onepipe_warehouse_loader::Config::try_parse_from([
        "warehouse-loader",
        "--registry",
        &registry_url,
        "--object-store",
        &store_url,
        "--database",
        &db,
        "--datasets",
        &topic,
        "--once",
    ])
    .unwrap();
    let loader = onepipe_warehouse_loader::Loader::connect(&config, Default::default())
        .await
        .unwrap();
    let (_stop_loader, stopped) = tokio::sync::watch::channel(false);
    assert!(loader.cycle(&stopped).await.ok());
    let pool = warehouse::connect(&db).await.unwrap();
    let table = format!("\"{}\"", warehouse::table_name(&topic));

    // Row by row first, so a disagreement names the value.
    let avro = apache_avro::Schema::parse_str(NESTED_SCHEMA).unwrap();
    let fields: Vec<Field> = onepipe_archive::columns::Mapping::new(&avro)
        .unwrap()
        .fields()
        .unwrap()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let m = latest_manifest(store.as_ref(), &topic).await;
    let mut ours = std::collections::BTreeMap::new();
    for path in &m.dates.values().next().unwrap().files {
        for batch in read_batches(store.as_ref(), path).await {
            let keys = batch.column_by_name("order_id").unwrap().clone();
            let cols = row_columns(&batch);
            assert_eq!(cols.len(), fields.len(), "every column is in the row text");
            for i in 0..batch.num_rows() {
                ours.insert(
                    onepipe_verifier::canonical::value_text(&keys, i),
                    row_text(&cols, i),
                );
            }
        }
    }
    let theirs: std::collections::BTreeMap<String, String> = sqlx::query(&format!(
        "SELECT order_id, {} FROM {table}",
        warehouse::row_text_sql(&fields)
    ))
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
    .collect();
    assert_eq!(ours.len(), 40);
    for (key, text) in &ours {
        assert_eq!(Some(text), theirs.get(key), "row {key}");
    }
    for edge in [
        "\\u0001", "\\\"", "😀", "[]", "{}", "[null", "\\N", "1e+21", "\"-",
    ] {
        assert!(
            ours.values().any(|t| t.contains(edge)),
            "no row holds {edge}"
        );
    }

    let marts = [Warehouse {
        name: "mart".into(),
        db: warehouse::Db::Postgres(pool.clone()),
        schema: "public".into(),
    }];
    let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0, "{:#?}", report.lines);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.store == "mart" && l.check == "row_checksum" && l.verdict == "ok")
    );

    sqlx::query(&format!("CREATE TABLE backup AS SELECT * FROM {table}"))
        .execute(&pool)
        .await
        .unwrap();
    // One value deep inside each nested column, in one row.
    let faults = [
        (
            format!(
                "UPDATE {table} SET ship = jsonb_set(ship, '{{fee}}', '\"0.01\"') \
                 WHERE order_id = 'o3'"
            ),
            "o3",
        ),
        (
            format!(
                "UPDATE {table} SET ship = jsonb_set(ship, '{{via}}', '{{\"string\": \"-61\"}}') \
                 WHERE order_id = 'o21'"
            ),
            "o21",
        ),
        (
            format!(
                "UPDATE {table} SET items = jsonb_set(items, '{{1,price}}', '\"-1.604\"') \
                 WHERE order_id = 'o6'"
            ),
            "o6",
        ),
        (
            format!("UPDATE {table} SET items = items || '[null]'::jsonb WHERE order_id = 'o7'"),
            "o7",
        ),
        (
            format!(
                "UPDATE {table} SET attrs = attrs || '{{\"aa\": \"changed\"}}' \
                 WHERE order_id = 'o10'"
            ),
            "o10",
        ),
        (
            format!(
                "UPDATE {table} SET counts = jsonb_set(counts, '{{b,1}}', '0') \
                 WHERE order_id = 'o9'"
            ),
            "o9",
        ),
    ];
    for (sql, key) in faults {
        let changed = sqlx::query(&sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows_affected();
        assert_eq!(changed, 1, "{sql}");
        let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
            .await
            .unwrap();
        assert!(report.mismatches > 0, "{sql}: not detected");
        let named: Vec<(&str, &str, &str)> = report
            .keys
            .iter()
            .map(|k| (k.store.as_str(), k.key.as_str(), k.problem.as_str()))
            .collect();
        assert_eq!(named, [("mart", key, "different")], "{sql}");
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("INSERT INTO {table} SELECT * FROM backup"))
            .execute(&pool)
            .await
            .unwrap();
    }
    let report = check_dataset(store.clone(), &registry, &topic, &marts, 10)
        .await
        .unwrap();
    assert_eq!(report.mismatches, 0);
}

/// Records that are no clean row (a tombstone, bytes without the wire header, an unknown
/// schema id, a datum with bytes after it, a Kafka timestamp after 9999) are counted by
/// the verifier's own reading and compared with copydog's count; when copydog's manifest
/// says otherwise, the mismatch is reported and `--full` names the records.
#[tokio::test(flavor = "multi_thread")]
async fn records_that_are_no_clean_row_are_counted_alike_and_a_difference_is_named() {
    use onepipe_verifier::verify::{ALL_DATES, CheckOptions};
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(
        &registry_url,
        &topic,
        SCHEMA,
        "visit_id",
        1,
        &["--merge", "max_by:version", "--partition-time", "at"],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&fresh_store_url()).unwrap();
    let day0 = 1_795_478_400_000i64; // 2026-11-24
    let good = |i: i64| {
        w.encode_json(
            &json!({"visit_id": format!("v{i}"), "version": 1, "at": day0 + i, "secs": 1.5}),
        )
        .unwrap()
    };
    let mut trailing = good(7).value;
    trailing.push(0);
    let mut unknown_id = good(8).value;
    unknown_id[1..5].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    let after_9999 = 253_402_300_800_000i64;
    let mut raw = RawBatch::new(0);
    let bad: Vec<(i64, i64, Option<Vec<u8>>)> = vec![
        (3, day0, None),
        (4, day0, Some(b"not framed".to_vec())),
        (5, day0, Some(unknown_id)),
        (6, day0, Some(trailing)),
        (7, after_9999, Some(good(9).value)),
    ];
    for i in 0..3 {
        raw.push(i, day0, Some(b"k"), Some(&good(i).value), &[]);
    }
    for (offset, ts, value) in &bad {
        raw.push(*offset, *ts, Some(b"k"), value.as_deref(), &[]);
    }
    raw.push(8, day0, Some(b"k"), Some(&good(10).value), &[]);
    let file = RawFile {
        topic: topic.to_string(),
        partition: 0,
        date: chrono::DateTime::from_timestamp_millis(day0)
            .unwrap()
            .date_naive(),
        hour: 0,
        first_offset: 0,
        last_offset: 8,
    };
    store
        .put(
            &Path::from(file.path().as_str()),
            PutPayload::from(encode(&raw.finish().unwrap()).unwrap()),
        )
        .await
        .unwrap();
    let summary = run_topic(store.clone(), &registry, &topic, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.rejected, 5, "copydog rejects the five");

    let check = |full: bool| {
        let (store, registry, topic) = (store.clone(), registry.clone(), topic.clone());
        async move {
            let mut options = CheckOptions::new(10);
            options.full = full;
            check_dataset_with(store, &registry, &topic, &[], &options)
                .await
                .unwrap()
        }
    };
    let rejected_lines =
        |r: &onepipe_verifier::verify::DatasetReport| -> Vec<(String, String, String)> {
            r.lines
                .iter()
                .filter(|l| l.date == ALL_DATES && l.check == "rejected records")
                .map(|l| (l.store.clone(), l.value.clone(), l.verdict.clone()))
                .collect()
        };
    let first = check(false).await;
    assert_eq!(first.mismatches, 0, "{:#?}", first.lines);
    let expect_rejected =
        |r: &onepipe_verifier::verify::DatasetReport, clean: &str, raw: &str, raw_verdict: &str| {
            let line = |s: &str, v: &str, verdict: &str| {
                (s.to_string(), v.to_string(), verdict.to_string())
            };
            assert_eq!(
                rejected_lines(r),
                [line("clean", clean, "ok"), line("raw", raw, raw_verdict)]
            );
        };
    expect_rejected(&first, "5", "5", "ok");
    // Counted once: the next round adds nothing for records it saw before.
    let again = check(false).await;
    assert_eq!(again.mismatches, 0, "{:#?}", again.lines);
    assert_eq!(rejected_lines(&again)[1].1, "5");

    // A manifest that has lost track of one reject and of the files naming them.
    let mut m = latest_manifest(store.as_ref(), &topic).await;
    m.number += 1;
    m.rejected.records -= 1;
    m.rejected.files.clear();
    assert!(manifest::commit(store.as_ref(), &m).await.unwrap());
    let off = check(false).await;
    assert_eq!(off.mismatches, 1, "{:#?}", off.lines);
    expect_rejected(&off, "4", "5", "MISMATCH");
    let full = check(true).await;
    let named: Vec<(String, String)> = full
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.problem.clone()))
        .collect();
    assert_eq!(named.len(), 5, "{named:?}");
    for (offset, _, _) in &bad {
        let key = format!("partition 0 offset {offset}");
        let (_, problem) = named
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("{key} is not named: {named:?}"));
        assert!(
            problem.starts_with("rejected by the verifier only"),
            "{problem}"
        );
    }
    assert!(
        named
            .iter()
            .any(|(_, p)| p.ends_with("tombstone (no value)"))
    );
    assert!(
        named
            .iter()
            .any(|(_, p)| p.ends_with("Kafka timestamp outside 0001-01-01..9999-12-31"))
    );
}
