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
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_copycat::raw::{RawBatch, encode};
use onepipe_copydog::run::{RunOptions, run_topic};
use onepipe_core::layout::RawFile;
use onepipe_core::manifest;
use onepipe_core::metadata::TopicMetadata;
use onepipe_integration_tests::{
    create_dataset, endpoint, fresh_database, start_registry, unique_name,
};
use onepipe_registry::auth::Tokens;
use onepipe_verifier::canonical::{hash64, row_text};
use onepipe_verifier::checks::{compute, row_columns};
use onepipe_verifier::verify::check_dataset;
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
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let w = Serializer::new(registry.clone(), Default::default())
        .writer(&topic, None)
        .await
        .unwrap();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&format!(
        "{}/test-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    ))
    .unwrap();
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

    // Damage: drop one row from the clean file in place.
    let m = manifest::latest(store.as_ref(), &topic)
        .await
        .unwrap()
        .unwrap();
    let path = m.dates.values().next().unwrap().files[0].clone();
    let bytes = store
        .get(&Path::from(path.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let batch = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
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
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let w = Serializer::new(registry.clone(), Default::default())
        .writer(&topic, None)
        .await
        .unwrap();
    let store_url = format!(
        "{}/test-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    );
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
            sample(&b2, &done, &t2).unwrap(),
            sample(&b2, &behind, &t2).unwrap(),
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
