//! Rows/s the loader puts into the stack's PostgreSQL for one date, against `psql \copy`
//! of the same rows from a CSV file, in one run. The date's clean file is written here
//! (a local folder as the object store); both sides load into identical fresh tables.
//!
//! `eval "$(deploy/local/stack.sh env)"; cargo bench -p onepipe-warehouse-loader --bench load`
//! (`BENCH_ROWS`, default 5 000 000).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use apache_avro::Schema as Avro;
use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use onepipe_tables::types::columns;
use onepipe_warehouse_loader::warehouse::{DateLoad, Outcome, Warehouse};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const SCHEMA: &str = r#"{"type":"record","name":"View","fields":[
  {"name":"view_id","type":"string"},
  {"name":"user_id","type":"long"},
  {"name":"url","type":"string"},
  {"name":"duration","type":"double"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
const DAY0: i64 = 1_795_478_400_000;

fn batch(from: usize, to: usize) -> RecordBatch {
    let n = to - from;
    let schema = Schema::new(vec![
        Field::new("view_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("duration", DataType::Float64, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("_kafka_partition", DataType::Int32, false),
        Field::new("_kafka_offset", DataType::Int64, false),
        Field::new(
            "_kafka_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("_schema_id", DataType::Int64, false),
    ]);
    let ids = from..to;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ids.clone().map(|i| format!("v-{i:09}")),
        )),
        Arc::new(Int64Array::from_iter_values(
            ids.clone().map(|i| (i % 100_000) as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.clone()
                .map(|i| format!("/shop/item/{}?ref=\"mail\"", i % 5000)),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.clone().map(|i| i as f64 / 7.0),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                ids.clone().map(|i| DAY0 + (i as i64 % 86_400_000)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(
            ids.clone().map(|i| (i % 6) as i32),
        )),
        Arc::new(Int64Array::from_iter_values(ids.clone().map(|i| i as i64))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(ids.clone().map(|i| DAY0 + i as i64))
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(1, n))),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

fn csv_line(b: &RecordBatch, row: usize, date: &str, out: &mut Vec<u8>) {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
    let ts = |c: usize| {
        let v = b
            .column(c)
            .as_primitive::<TimestampMillisecondType>()
            .value(row);
        chrono::DateTime::from_timestamp_millis(v)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    let url = b
        .column(2)
        .as_string::<i32>()
        .value(row)
        .replace('"', "\"\"");
    let _ = writeln!(
        out,
        "{},{},\"{url}\",{},{},{},{},{},{date}",
        b.column(0).as_string::<i32>().value(row),
        b.column(1).as_primitive::<Int64Type>().value(row),
        b.column(3).as_primitive::<Float64Type>().value(row),
        ts(4),
        b.column(5).as_primitive::<Int32Type>().value(row),
        b.column(6).as_primitive::<Int64Type>().value(row),
        ts(7),
    );
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let db = std::env::var("ONEPIPE_DATABASE_URL")
        .expect("ONEPIPE_DATABASE_URL: eval \"$(deploy/local/stack.sh env)\" first");
    let dir = std::env::temp_dir().join(format!("onepipe-wl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store_url = format!("file://{}", dir.display());
    let store = onepipe_core::store::open(&store_url).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let file = format!("clean/bench/date={date}/v00000001/part-00000.parquet");

    // The clean file, as copydog writes it (zstd), and the same rows as CSV.
    let csv_path = dir.join("rows.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut parquet = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut parquet, batch(0, 1).schema(), Some(props)).unwrap();
    let mut line = Vec::new();
    for start in (0..rows).step_by(65_536) {
        let b = batch(start, (start + 65_536).min(rows));
        writer.write(&b).unwrap();
        line.clear();
        for r in 0..b.num_rows() {
            csv_line(&b, r, &date.to_string(), &mut line);
        }
        csv.write_all(&line).unwrap();
    }
    writer.close().unwrap();
    csv.flush().unwrap();
    store
        .put(&Path::from(file.as_str()), parquet.into())
        .await
        .unwrap();

    let schema = format!("bench_{}", std::process::id());
    let warehouse = Warehouse::connect(&db, Some(&schema), None, &store_url, 1)
        .await
        .unwrap();
    warehouse.prepare().await.unwrap();
    let cols = columns(&Avro::parse_str(SCHEMA).unwrap()).unwrap();
    let table = warehouse.table("bench");
    warehouse
        .ensure_table("bench", 1, &table, &cols)
        .await
        .unwrap();
    let baseline = warehouse.table("baseline");
    warehouse
        .ensure_table("baseline", 1, &baseline, &cols)
        .await
        .unwrap();

    let job = DateLoad {
        dataset: "bench".into(),
        table: table.clone(),
        columns: Arc::new(cols.clone()),
        date,
        manifest: 1,
        schema_id: 1,
        version: 1,
        rows: rows as u64,
        files: vec![file],
    };
    let started = Instant::now();
    let outcome = warehouse.load_date(&store, &job).await.unwrap();
    let loader_secs = started.elapsed().as_secs_f64();
    assert_eq!(outcome, Outcome::Loaded(rows as u64));

    let columns: Vec<String> = cols
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .chain(["\"_date\"".to_string()])
        .collect();
    let copy = format!(
        "\\copy \"{schema}\".\"baseline\" ({}) FROM '{}' WITH (FORMAT csv)",
        columns.join(", "),
        csv_path.display()
    );
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .args([
            db.as_str(),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            copy.as_str(),
        ])
        .status()
        .expect("psql");
    let psql_secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "psql \\copy failed");

    let loader_rate = rows as f64 / loader_secs;
    let psql_rate = rows as f64 / psql_secs;
    println!(
        "warehouse-loader: {rows} rows in {loader_secs:.2} s = {loader_rate:.0} rows/s; \
         psql \\copy: {psql_secs:.2} s = {psql_rate:.0} rows/s; ratio {:.2}",
        loader_rate / psql_rate
    );
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
