//! copydog's dedup-and-sort next to DuckDB running the equivalent SQL, on the same data,
//! in one run.
//!
//! The data: `BENCH_ROWS` rows (default 10 million) of decoded records — a string key
//! with about three versions each arriving out of order, a version, a timestamp and two
//! payload columns — written once as a Parquet file. Each side reads that file, keeps
//! the newest version per key, sorts by (timestamp, key) and writes a Parquet file:
//! - copydog in memory: `merge::merge` (max_by(version)) between an Arrow Parquet reader
//!   and writer;
//! - copydog bounded (`BENCH_MEMORY_LIMIT_MB`, default 256): the path a date larger than
//!   `--memory-limit` takes — rows spilled to hash buckets on disk, each merged into a
//!   sorted run, the runs merged into the output;
//! - DuckDB (the Python package, in a subprocess): `COPY (SELECT * FROM read_parquet(…)
//!   QUALIFY row_number() OVER (PARTITION BY key ORDER BY version DESC, _kafka_offset
//!   DESC) = 1 ORDER BY at, key) TO … (FORMAT parquet)`.
//!
//! The outputs are checked to hold the same number of rows. The figures to watch are the
//! ratios copydog / DuckDB (aim: at most 1.5). `make bench`, or
//! `cargo bench -p onepipe-copydog --bench merge` (needs `pip install duckdb`).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use onepipe_archive::merge::merge;
use onepipe_archive::{OFFSET_COLUMN, PARTITION_COLUMN};
use onepipe_copydog::spill::{Budget, Pending, RunMerger, Runs, merge_buckets};
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn main() {
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let dir = std::env::temp_dir().join(format!("copydog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.parquet");
    let keys = rows / 3 + 1;
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
    ]));
    {
        let file = std::fs::File::create(&input).unwrap();
        let mut w = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        let chunk = 1_000_000;
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            let idx: Vec<usize> = (start..start + n).collect();
            // Key k's versions arrive spread out and newest first, mostly.
            let key_of = |i: usize| (i.wrapping_mul(2_654_435_761)) % keys;
            let batch =
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from_iter_values(
                            idx.iter().map(|i| format!("k{:010}", key_of(*i))),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            idx.iter().map(|i| ((i * 7) % 5) as i64),
                        )),
                        Arc::new(
                            TimestampMillisecondArray::from_iter_values(idx.iter().map(|i| {
                                1_795_478_400_000 + (key_of(*i) as i64 * 997) % 86_400_000
                            }))
                            .with_timezone("UTC"),
                        ),
                        Arc::new(Int64Array::from_iter_values(idx.iter().map(|i| *i as i64))),
                        Arc::new(StringArray::from_iter_values(
                            idx.iter().map(|i| format!("note {}", i % 1000)),
                        )),
                        Arc::new(Int32Array::from_iter_values(idx.iter().map(|_| 0))),
                        Arc::new(Int64Array::from_iter_values(idx.iter().map(|i| *i as i64))),
                    ],
                )
                .unwrap();
            w.write(&batch).unwrap();
            start += n;
        }
        w.close().unwrap();
    }
    println!(
        "data: {rows} rows, {keys} keys, {} MB of Parquet",
        std::fs::metadata(&input).unwrap().len() >> 20
    );

    // copydog
    let mut meta = TopicMetadata::new("bench", vec!["key".into()]);
    meta.merge = "max_by(version)".parse().unwrap();
    meta.sort_key = vec!["at".into(), "key".into()];
    let t = Instant::now();
    let file = std::fs::File::open(&input).unwrap();
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
    drop(batches);
    let read = t.elapsed().as_secs_f64();
    let merged = merge(&all, &meta).unwrap();
    let merging = t.elapsed().as_secs_f64() - read;
    let out = std::fs::File::create(dir.join("copydog.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(out, schema.clone(), None).unwrap();
    w.write(&merged.batch).unwrap();
    w.close().unwrap();
    let copydog = t.elapsed().as_secs_f64();
    println!(
        "copydog in memory: read {read:.2} s, merge {merging:.2} s, write {:.2} s",
        copydog - read - merging
    );
    println!(
        "copydog in memory: {copydog:.2} s, {} rows",
        merged.batch.num_rows()
    );
    let merged_rows = merged.batch.num_rows();
    drop(merged);
    drop(all);
    let commit = delta_commit(&dir, merged_rows as u64);
    println!(
        "delta commit of that run's manifest: {commit:.3} s ({:.1} % of copydog in memory)",
        100.0 * commit / copydog
    );

    // copydog bounded: every row through the spill files.
    let limit_mb: usize = std::env::var("BENCH_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let t = Instant::now();
    let bounded_rows = bounded(&input, &dir, &schema, &meta, limit_mb << 20);
    let bounded_secs = t.elapsed().as_secs_f64();
    println!("copydog bounded ({limit_mb} MB): {bounded_secs:.2} s, {bounded_rows} rows");
    assert_eq!(bounded_rows, merged_rows, "both paths keep one row per key");

    // DuckDB on the same file.
    let script = format!(
        r#"
import duckdb, time
con = duckdb.connect()
con.execute('SET enable_progress_bar = false')
t = time.time()
con.execute("""COPY (SELECT * FROM read_parquet('{input}')
  QUALIFY row_number() OVER (PARTITION BY key ORDER BY version DESC, _kafka_offset DESC) = 1
  ORDER BY "at", key) TO '{out}' (FORMAT parquet)""")
secs = time.time() - t
rows = con.execute("SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(secs, rows)
"#,
        input = input.display(),
        out = dir.join("duckdb.parquet").display()
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "duckdb failed (pip install duckdb): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut parts = text.lines().last().unwrap_or_default().split_whitespace();
    let duck: f64 = parts.next().unwrap().parse().unwrap();
    let duck_rows: usize = parts.next().unwrap().parse().unwrap();
    println!("duckdb:  {duck:.2} s, {duck_rows} rows");
    assert_eq!(duck_rows, merged_rows, "both keep one row per key");
    println!(
        "ratio copydog in memory / duckdb: {:.2} (aim: at most 1.5)",
        copydog / duck
    );
    println!("ratio copydog bounded / duckdb: {:.2}", bounded_secs / duck);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads `input`, merges it through spill files within `limit` bytes and writes the
/// result; the rows written.
fn bounded(
    input: &std::path::Path,
    dir: &std::path::Path,
    schema: &arrow::datatypes::SchemaRef,
    meta: &TopicMetadata,
    limit: usize,
) -> usize {
    let budget = Budget::new(limit);
    let mut pending = Pending::new(budget, dir.to_path_buf(), schema.clone(), meta);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let file = std::fs::File::open(input).unwrap();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
    {
        pending.push(date, batch.unwrap()).unwrap();
    }
    let mut rows = pending.take(date);
    let spill = pending.dir();
    rows.spill(spill, schema, meta).unwrap();
    let buckets = rows.spilled.take().unwrap().finish().unwrap();
    let mut runs = Runs::new(meta);
    merge_buckets(spill, buckets, 0, meta, schema, budget, &mut runs).unwrap();
    let out = std::fs::File::create(dir.join("bounded.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(out, schema.clone(), None).unwrap();
    let mut merger = RunMerger::open(&runs.paths, meta, 8192).unwrap();
    let mut written = 0;
    while let Some(b) = merger.next_batch().unwrap() {
        written += b.num_rows();
        w.write(&b).unwrap();
    }
    w.close().unwrap();
    written
}

/// Seconds to publish, as its Delta commit, a manifest naming the in-memory run's output
/// (moved to where copydog would have written it) on a local object store: the table's
/// creation plus the commit, as on a topic's first run.
fn delta_commit(dir: &std::path::Path, rows: u64) -> f64 {
    use object_store::ObjectStore;
    use onepipe_archive::manifest::{self, DateEntry, Manifest};
    let root = dir.join("store");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let file = onepipe_archive::layout::CleanFile {
        topic: "bench".into(),
        date: day,
        version: 1,
        part: 0,
    }
    .path();
    let local = root.join(&file);
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::rename(dir.join("copydog.parquet"), &local).unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap());
    let m = Manifest {
        number: 1,
        topic: "bench".into(),
        created_at: chrono::Utc::now(),
        schema_id: 1,
        watermarks: [("0".to_string(), rows as i64)].into(),
        dates: [(
            day,
            DateEntry {
                version: 1,
                rows,
                files: vec![file],
                checks: Default::default(),
                merge_conflicts: 0,
            },
        )]
        .into(),
        rejected: Default::default(),
        format: onepipe_archive::manifest::CLEAN_FORMAT,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        assert!(manifest::commit(store.as_ref(), &m).await.unwrap());
        let t = Instant::now();
        let published = onepipe_archive::delta::publish(store, "bench")
            .await
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(published.manifests, [1]);
        secs
    })
}
