//! copydog's dedup-and-sort next to DuckDB doing the same work, on the same data, in one
//! run, on equal terms.
//!
//! The data: `BENCH_ROWS` rows (default 10 million) of decoded records — a string key
//! with about three versions each arriving out of order, a version, a timestamp and two
//! payload columns — written once as a zstd Parquet file, as copydog writes clean files.
//! Each side reads that file, keeps the newest version per key, sorts by (timestamp,
//! key) and writes zstd Parquet (level [`ZSTD_LEVEL`], row groups of a million rows):
//! - copydog in memory: `merge::merge` (max_by(version)) on every core (and, for
//!   comparison, merge and encoding on one thread, as they were before), the topic's
//!   checks, files of a million rows as `copydog run` writes them (`--max-file-rows`),
//!   and the run's commit (manifest and Delta commit, on a local store);
//! - copydog bounded (`BENCH_MEMORY_LIMIT_MB`, default 256): the path a date larger than
//!   `--memory-limit` takes — rows spilled to hash buckets on disk, each merged into a
//!   sorted run, the runs merged into the output — with the same checks, files and commit;
//! - DuckDB (the Python package, in a subprocess, on every core): `COPY (SELECT * FROM
//!   read_parquet(…) QUALIFY row_number() OVER (PARTITION BY key ORDER BY version DESC,
//!   _kafka_offset DESC) = 1 ORDER BY at, key) TO … (FORMAT parquet, COMPRESSION zstd,
//!   COMPRESSION_LEVEL 3, ROW_GROUP_SIZE 1000000)`.
//!
//! `BENCH_ROUNDS` rounds (default 3); each prints its figures and the end gives the
//! medians. The outputs are checked to hold the same number of rows. The figures to
//! watch are the ratios copydog / DuckDB (aim: in memory at most 1.0, bounded at most
//! 1.2). `make bench`, or `cargo bench -p onepipe-copydog --bench merge` (needs
//! `pip install duckdb`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use onepipe_archive::clean::{ZSTD_LEVEL, parquet_batches, writer_properties};
use onepipe_archive::merge::{merge, merge_on};
use onepipe_archive::{OFFSET_COLUMN, PARTITION_COLUMN};
use onepipe_copydog::sink::{Sorted, Source, next_file};
use onepipe_copydog::spill::{Budget, Pending, Runs, merge_buckets};
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// Rows per clean file and per row group, on both sides (`copydog run`'s default).
const FILE_ROWS: usize = 1_000_000;

fn props(rows: usize) -> WriterProperties {
    writer_properties()
        .set_max_row_group_row_count(Some(rows))
        .build()
}

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
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Int64, false),
        Field::new("note", DataType::Utf8, false),
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
    ]));
    {
        let file = std::fs::File::create(&input).unwrap();
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props(FILE_ROWS))).unwrap();
        let chunk = 1_000_000;
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            let idx: Vec<usize> = (start..start + n).collect();
            // Key k's versions arrive spread out and newest first, mostly.
            let key_of = |i: usize| (i.wrapping_mul(2_654_435_761)) % keys;
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        idx.iter().map(|i| format!("k{:010}", key_of(*i))),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        idx.iter().map(|i| ((i * 7) % 5) as i64),
                    )),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(idx.iter().map(|i| {
                            (1_795_478_400_000 + (key_of(*i) as i64 * 997) % 86_400_000) * 1000
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

    let mut meta = TopicMetadata::new("bench", vec!["key".into()]);
    meta.merge = "max_by(version)".parse().unwrap();
    meta.sort_key = vec!["at".into(), "key".into()];
    let limit_mb: usize = std::env::var("BENCH_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut results: Vec<[f64; 4]> = Vec::new();
    let mut commits = Vec::new();
    for round in 1..=rounds {
        let one = in_memory(
            &input,
            &dir.join(format!("one-{round}")),
            &schema,
            &meta,
            Some(1),
        );
        one.print(round, "copydog in memory on one thread");
        let memory = in_memory(
            &input,
            &dir.join(format!("memory-{round}")),
            &schema,
            &meta,
            None,
        );
        memory.print(round, "copydog in memory");
        assert_eq!(one.rows, memory.rows, "both keep one row per key");
        commits.push(memory.commit / memory.total);

        let t = Instant::now();
        let bounded_rows = bounded(
            &input,
            &dir.join(format!("bounded-{round}")),
            &schema,
            &meta,
            limit_mb << 20,
        );
        let bounded_secs = t.elapsed().as_secs_f64();
        println!(
            "round {round}: copydog bounded ({limit_mb} MB) {bounded_secs:.2} s, {bounded_rows} rows"
        );
        assert_eq!(bounded_rows, memory.rows, "both paths keep one row per key");

        let (duck, duck_rows) = duckdb(&input, &dir.join(format!("duckdb-{round}.parquet")));
        println!("round {round}: duckdb {duck:.2} s, {duck_rows} rows");
        assert_eq!(duck_rows, memory.rows, "both keep one row per key");
        println!(
            "round {round}: ratio copydog in memory / duckdb {:.2} (one thread {:.2}), \
             bounded / duckdb {:.2}",
            memory.total / duck,
            one.total / duck,
            bounded_secs / duck
        );
        results.push([memory.total, bounded_secs, duck, one.total]);
    }
    let median = |i: usize| {
        let mut v: Vec<f64> = results.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios = |i: usize| {
        let mut v: Vec<f64> = results.iter().map(|r| r[i] / r[2]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (memory, bounded_ratio, one) = (ratios(0), ratios(1), ratios(3));
    commits.sort_by(f64::total_cmp);
    println!(
        "median of {rounds}: copydog in memory {:.2} s, bounded {:.2} s, duckdb {:.2} s; \
         the commit {:.1} % of the in-memory run",
        median(0),
        median(1),
        median(2),
        100.0 * commits[commits.len() / 2]
    );
    println!("ratio copydog in memory / duckdb: {memory:.2} (aim: at most 1.0)");
    println!("ratio copydog in memory on one thread / duckdb: {one:.2}");
    println!("ratio copydog bounded / duckdb: {bounded_ratio:.2} (aim: at most 1.2)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seconds of each step of an in-memory run.
struct Split {
    read: f64,
    decode: f64,
    dedup: f64,
    sort: f64,
    checks: f64,
    write: f64,
    commit: f64,
    total: f64,
    rows: usize,
}

/// An in-memory run with the merge on `threads` threads (`None`: as `copydog run` does,
/// on every core).
fn in_memory(
    input: &Path,
    root: &Path,
    schema: &SchemaRef,
    meta: &TopicMetadata,
    threads: Option<usize>,
) -> Split {
    let t = Instant::now();
    let bytes = bytes::Bytes::from(std::fs::read(input).unwrap());
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batches: Vec<RecordBatch> = parquet_batches("input.parquet", bytes)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let all = arrow::compute::concat_batches(schema, &batches).unwrap();
    drop(batches);
    let decode = t.elapsed().as_secs_f64();
    let merged = match threads {
        None => merge(&all, meta).unwrap(),
        Some(n) => merge_on(&all, meta, n).unwrap(),
    };
    drop(all);
    let t = Instant::now();
    let checks = onepipe_copydog::checks::compute(&merged.batch, meta).unwrap();
    let checks_secs = t.elapsed().as_secs_f64();
    let rows = merged.batch.num_rows();
    let t = Instant::now();
    let names = write_files(root, &Sorted::Memory(merged.batch), schema, meta, threads);
    let write = t.elapsed().as_secs_f64();
    let commit = commit(root, names, rows as u64, checks);
    let (dedup, sort) = (
        merged.timings.dedup.as_secs_f64(),
        merged.timings.sort.as_secs_f64(),
    );
    Split {
        read,
        decode,
        dedup,
        sort,
        checks: checks_secs,
        write,
        commit,
        total: read + decode + dedup + sort + checks_secs + write + commit,
        rows,
    }
}

impl Split {
    fn print(&self, round: usize, what: &str) {
        println!(
            "round {round}: {what} {:.2} s: read {:.2}, decode {:.2}, dedup {:.2}, sort {:.2}, \
             checks {:.2}, write {:.2}, commit {:.3} ({:.1} % of the run); {} rows",
            self.total,
            self.read,
            self.decode,
            self.dedup,
            self.sort,
            self.checks,
            self.write,
            self.commit,
            100.0 * self.commit / self.total,
            self.rows
        );
    }
}

/// Writes `sorted` as `copydog run` writes a date's version (its `sink`: files of
/// [`FILE_ROWS`] rows) under `root`, a local store, encoding on `threads` threads
/// (`None`: one per core, as `copydog run` does); the files' names.
fn write_files(
    root: &Path,
    sorted: &Sorted,
    schema: &SchemaRef,
    meta: &TopicMetadata,
    threads: Option<usize>,
) -> Vec<String> {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut source = Source::open(sorted, meta).unwrap();
    let mut names = Vec::new();
    while let Some(bytes) = next_file(&mut source, schema, FILE_ROWS, threads).unwrap() {
        let name = onepipe_archive::layout::CleanFile {
            topic: "bench".into(),
            date: day(),
            version: 1,
            part: names.len() as u32,
        }
        .path();
        let local = root.join(&name);
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(local, bytes).unwrap();
        names.push(name);
    }
    names
}

fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

/// Reads `input`, merges it through spill files within `limit` bytes, computes the checks,
/// writes the files and commits; the rows written.
fn bounded(
    input: &Path,
    root: &Path,
    schema: &SchemaRef,
    meta: &TopicMetadata,
    limit: usize,
) -> usize {
    let budget = Budget::new(limit);
    let spill_base = root.join("spill");
    std::fs::create_dir_all(&spill_base).unwrap();
    let mut pending = Pending::new(budget, spill_base, schema.clone(), meta);
    let bytes = bytes::Bytes::from(std::fs::read(input).unwrap());
    for batch in parquet_batches("input.parquet", bytes).unwrap() {
        pending.push(day(), batch.unwrap()).unwrap();
    }
    let mut rows = pending.take(day());
    let spill = pending.dir();
    rows.spill(spill, schema, meta).unwrap();
    let buckets = rows.spilled.take().unwrap().finish().unwrap();
    let mut runs = Runs::new(meta);
    merge_buckets(spill, buckets, 0, meta, schema, budget, &mut runs).unwrap();
    let checks = runs.checks.finish().unwrap();
    let written = runs.rows;
    let names = write_files(root, &Sorted::Runs(runs.paths), schema, meta, None);
    commit(root, names, written, checks);
    written as usize
}

/// DuckDB's seconds and rows for the same work.
fn duckdb(input: &Path, out: &Path) -> (f64, usize) {
    let script = format!(
        r#"
import duckdb, time
con = duckdb.connect()
con.execute('SET enable_progress_bar = false')
t = time.time()
con.execute("""COPY (SELECT * FROM read_parquet('{input}')
  QUALIFY row_number() OVER (PARTITION BY key ORDER BY version DESC, _kafka_offset DESC) = 1
  ORDER BY "at", key) TO '{out}'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {level}, ROW_GROUP_SIZE {rows})""")
secs = time.time() - t
rows = con.execute("SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(secs, rows)
"#,
        input = input.display(),
        out = out.display(),
        level = ZSTD_LEVEL,
        rows = FILE_ROWS,
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
    let secs: f64 = parts.next().unwrap().parse().unwrap();
    let rows: usize = parts.next().unwrap().parse().unwrap();
    (secs, rows)
}

/// Seconds to commit the run that wrote `files` under `root` (a local store): its
/// manifest, then its Delta commit — the table's creation plus the commit, as on a
/// topic's first run.
fn commit(
    root: &Path,
    files: Vec<String>,
    rows: u64,
    checks: std::collections::BTreeMap<String, serde_json::Value>,
) -> f64 {
    use object_store::ObjectStore;
    use onepipe_archive::manifest::{self, DateEntry, Manifest};
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(root).unwrap());
    let m = Manifest {
        number: 1,
        topic: "bench".into(),
        created_at: chrono::Utc::now(),
        schema_id: 1,
        watermarks: [("0".to_string(), rows as i64)].into(),
        dates: [(
            day(),
            DateEntry {
                version: 1,
                rows,
                files,
                checks,
                merge_conflicts: 0,
            },
        )]
        .into(),
        rejected: Default::default(),
        format: onepipe_archive::manifest::CLEAN_FORMAT,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let t = Instant::now();
        assert!(manifest::commit(store.as_ref(), &m).await.unwrap());
        let published = onepipe_archive::delta::publish(store, "bench")
            .await
            .unwrap();
        assert_eq!(published.manifests, [1]);
        t.elapsed().as_secs_f64()
    })
}
