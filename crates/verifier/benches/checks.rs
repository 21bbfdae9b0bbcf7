//! The verifier's checks over one date of `BENCH_ROWS` rows (default 10 million) in the
//! clean archive and in PostgreSQL, next to DuckDB computing the same count and sums over
//! the same Parquet files, in one run.
//!
//! The data: a string unique key, an integer, a URL, a double and a timestamp, written as
//! copydog writes a date (zstd Parquet files of at most 1 000 000 rows, one row group
//! each, in a local folder used as the object store) and loaded into a fresh schema of the
//! stack's PostgreSQL by warehouse-loader (`COPY`). Timed, each the median of three rounds:
//! - archive, count + sums: the verifier's own path (`verify::clean_values`: the files
//!   read by one thread a core, only the columns the checks need, into
//!   `checks::Accumulator`s) for `rows`, `count_distinct(unique_key)`, `sum(user_id)`,
//!   `sum(duration)` — the same figures DuckDB computes;
//! - archive, every check: the same plus `row_checksum` (a canonical text and a hash per
//!   row, over every column);
//! - PostgreSQL, every check: `warehouse::checks`, by SQL inside the server;
//! - DuckDB (the Python package, in a subprocess, all its threads): `SELECT count(*),
//!   count(DISTINCT view_id), sum(user_id), sum(duration) FROM read_parquet([...])`.
//!
//! Every side's numbers are checked to agree. The figures to watch are the ratios
//! verifier / DuckDB for the count and sums, and for every check. `make bench`, or
//! `eval "$(deploy/local/stack.sh env)"; cargo bench -p onepipe-verifier --bench checks`
//! (needs `pip install duckdb`). Run it on a quiet machine.

use std::sync::Arc;
use std::time::Instant;

use apache_avro::Schema as Avro;
use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use onepipe_archive::columns::Mapping;
use onepipe_archive::manifest::DateEntry;
use onepipe_core::metadata::TopicMetadata;
use onepipe_tables::types::columns;
use onepipe_verifier::checks::{self, CheckValues, agree};
use onepipe_verifier::verify::clean_values;
use onepipe_verifier::warehouse;
use onepipe_warehouse_loader::warehouse::{DateLoad, Outcome, Warehouse};
use parquet::arrow::ArrowWriter;

const SCHEMA: &str = r#"{"type":"record","name":"View","fields":[
  {"name":"view_id","type":"string"},
  {"name":"user_id","type":"long"},
  {"name":"url","type":"string"},
  {"name":"duration","type":"double"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
const DAY0: i64 = 1_795_478_400_000;
/// Rows per clean file, copydog's default `max_file_rows`.
const FILE_ROWS: usize = 1_000_000;
const DATASET: &str = "bench";

/// Rows `from..to` as copydog writes them (record fields, then the Kafka columns).
fn batch(from: usize, to: usize) -> RecordBatch {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("view_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("duration", DataType::Float64, false),
        Field::new("at", ts(), false),
        Field::new("_kafka_partition", DataType::Int32, false),
        Field::new("_kafka_offset", DataType::Int64, false),
        Field::new("_kafka_timestamp", ts(), false),
        Field::new("_schema_id", DataType::Int64, false),
    ]);
    let ids = from..to;
    let at = |i: usize| DAY0 + (i as i64 * 7919) % 86_400_000;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            ids.clone().map(|i| format!("v-{i:09}")),
        )),
        Arc::new(Int64Array::from_iter_values(
            ids.clone().map(|i| (i % 100_003) as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.clone()
                .map(|i| format!("https://example.com/p/{}", i % 5000)),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.clone().map(|i| (i % 977) as f64 / 8.0),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(ids.clone().map(at)).with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(ids.clone().map(|_| 0))),
        Arc::new(Int64Array::from_iter_values(ids.clone().map(|i| i as i64))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(ids.clone().map(at)).with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(ids.map(|_| 1))),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

/// Writes the date's clean files; returns their paths in the store.
async fn write_clean(store: &Arc<dyn ObjectStore>, date: NaiveDate, rows: usize) -> Vec<String> {
    // As copydog writes a clean file: zstd at onepipe's level, one row group.
    let props = onepipe_archive::clean::writer_properties()
        .set_max_row_group_row_count(Some(FILE_ROWS))
        .build();
    let mut files = Vec::new();
    for (part, start) in (0..rows).step_by(FILE_ROWS).enumerate() {
        let end = (start + FILE_ROWS).min(rows);
        let mut parquet = Vec::new();
        let mut w =
            ArrowWriter::try_new(&mut parquet, batch(0, 1).schema(), Some(props.clone())).unwrap();
        for s in (start..end).step_by(65_536) {
            w.write(&batch(s, (s + 65_536).min(end))).unwrap();
        }
        w.close().unwrap();
        let path = format!("clean/{DATASET}/date={date}/v00000001/part-{part:05}.parquet");
        store
            .put(&Path::from(path.as_str()), parquet.into())
            .await
            .unwrap();
        files.push(path);
    }
    files
}

/// The topic's metadata with `checks`.
fn meta(checks: &[&str]) -> TopicMetadata {
    let mut m = TopicMetadata::new(DATASET, vec!["view_id".into()]);
    m.checks = checks.iter().map(|c| c.parse().unwrap()).collect();
    m
}

/// Rounds of each timed side; the median is reported.
const ROUNDS: usize = 3;

/// The median of `secs`.
fn median(mut secs: Vec<f64>) -> f64 {
    secs.sort_by(f64::total_cmp);
    secs[secs.len() / 2]
}

/// Reads the date from the archive and computes `meta`'s checks the way `verifier check`
/// does (`verify::clean_values`); returns them and the median seconds of the rounds.
async fn archive_checks(
    store: &Arc<dyn ObjectStore>,
    entry: &DateEntry,
    meta: &TopicMetadata,
) -> (CheckValues, f64) {
    let mut secs = Vec::new();
    let mut values = CheckValues::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        values = clean_values(store.clone(), entry, &std::env::temp_dir(), meta)
            .await
            .unwrap();
        secs.push(t.elapsed().as_secs_f64());
    }
    (values, median(secs))
}

/// DuckDB's count(*), count(DISTINCT view_id), sum(user_id), sum(duration) over `files`,
/// and the median seconds of the rounds (all its threads, as it runs by default).
fn duckdb(files: &[std::path::PathBuf]) -> ([String; 4], f64) {
    let list: Vec<String> = files.iter().map(|f| format!("'{}'", f.display())).collect();
    let script = format!(
        r#"
import duckdb, time
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
secs = []
for _ in range({ROUNDS}):
    t = time.time()
    r = con.execute("""SELECT count(*), count(DISTINCT view_id), sum(user_id), sum(duration)
      FROM read_parquet([{}])""").fetchone()
    secs.append(time.time() - t)
print(sorted(secs)[len(secs) // 2], r[0], r[1], r[2], repr(float(r[3])))
"#,
        list.join(", ")
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "duckdb failed (pip install duckdb): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let parts: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(parts.len(), 5, "unexpected duckdb output: {text}");
    let secs: f64 = parts[0].parse().unwrap();
    (
        [
            parts[1].to_string(),
            parts[2].to_string(),
            parts[3].to_string(),
            parts[4].to_string(),
        ],
        secs,
    )
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let db = std::env::var("ONEPIPE_DATABASE_URL")
        .expect("ONEPIPE_DATABASE_URL: eval \"$(deploy/local/stack.sh env)\" first");
    let dir = std::env::temp_dir().join(format!("onepipe-verifier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store_url = format!("file://{}", dir.display());
    let store = onepipe_core::store::open(&store_url).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();

    // The clean archive, then the same rows in PostgreSQL by warehouse-loader's COPY.
    let files = write_clean(&store, date, rows).await;
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    let schema = format!("bench_verifier_{}", std::process::id());
    let wh = Warehouse::connect(&db, Some(&schema), None, &store_url, 1)
        .await
        .unwrap();
    wh.prepare().await.unwrap();
    let avro = Avro::parse_str(SCHEMA).unwrap();
    let cols = columns(&avro).unwrap();
    let table = wh.table(DATASET);
    wh.ensure_table(DATASET, 1, &table, &cols).await.unwrap();
    let job = DateLoad {
        dataset: DATASET.into(),
        table,
        columns: Arc::new(cols),
        date,
        manifest: 1,
        schema_id: 1,
        version: 1,
        rows: rows as u64,
        files: files.clone(),
    };
    let loaded = wh.load_date(&store, &job).await.unwrap();
    assert_eq!(loaded, Outcome::Loaded(rows as u64));
    println!(
        "data: {rows} rows in {} clean files ({} MB of Parquet) and in PostgreSQL",
        files.len(),
        bytes >> 20
    );

    let entry = DateEntry {
        version: 1,
        rows: rows as u64,
        files: files.clone(),
        checks: Default::default(),
        merge_conflicts: 0,
    };
    let sums = meta(&["sum(user_id)", "sum(duration)"]);
    let every = meta(&["sum(user_id)", "sum(duration)", "row_checksum"]);
    let (same, same_secs) = archive_checks(&store, &entry, &sums).await;
    let (all, all_secs) = archive_checks(&store, &entry, &every).await;

    let pool = warehouse::connect(&db).await.unwrap();
    let fields: Vec<Field> = Mapping::new(&avro)
        .unwrap()
        .fields()
        .unwrap()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut secs = Vec::new();
    let mut by_sql = Default::default();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        by_sql = warehouse::checks(
            &warehouse::Db::Postgres(pool.clone()),
            &schema,
            &every,
            &fields,
        )
        .await
        .unwrap();
        secs.push(t.elapsed().as_secs_f64());
    }
    let pg_secs = median(secs);
    let pg = &by_sql[&date.to_string()];

    let local: Vec<_> = files.iter().map(|f| dir.join(f)).collect();
    let (duck, duck_secs) = duckdb(&local);

    // Every side computed the same figures.
    let float_sums = checks::float_sums(&every, &fields);
    for (name, value) in &all {
        assert!(
            agree(value, &pg[name], float_sums.contains(name)),
            "{name}: archive {value}, PostgreSQL {}",
            pg[name]
        );
    }
    let wanted = [
        "rows",
        "count_distinct(unique_key)",
        "sum(user_id)",
        "sum(duration)",
    ];
    for (name, d) in wanted.iter().zip(&duck) {
        assert!(
            agree(&same[*name], d, float_sums.contains(*name)),
            "{name}: verifier {}, DuckDB {d}",
            same[*name]
        );
    }

    let rate = |secs: f64| rows as f64 / secs;
    println!(
        "verifier, archive, count + sums:   {same_secs:7.2} s = {:>11.0} rows/s",
        rate(same_secs)
    );
    println!(
        "verifier, archive, every check:    {all_secs:7.2} s = {:>11.0} rows/s (with row_checksum)",
        rate(all_secs)
    );
    println!(
        "verifier, PostgreSQL, every check: {pg_secs:7.2} s = {:>11.0} rows/s (by SQL in the server)",
        rate(pg_secs)
    );
    println!(
        "duckdb, count + sums:              {duck_secs:7.2} s = {:>11.0} rows/s",
        rate(duck_secs)
    );
    println!(
        "ratio verifier / duckdb, count + sums: {:.2} (every check: {:.2})",
        same_secs / duck_secs,
        all_secs / duck_secs
    );

    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
