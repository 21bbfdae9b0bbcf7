//! copydog in bounded memory: one date of more than 2 GB of decoded rows, merged by the
//! real `copydog` binary with `--memory-limit 256MB`, its peak RSS measured by the kernel
//! (`getrusage` of the finished child, through Python's `resource` module). The result is
//! checked against winners computed here from the generated input.
//!
//! Then the real `verifier` checks the same date with `--memory-limit 256MB`, twice: as
//! it is, and after one clean row was altered in place. Both runs must peak under 512 MB
//! of RSS; the first must find the stores agreeing, the second must name the altered key.
//!
//! Its own test binary, so it runs alone: nothing else competes for memory meanwhile.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_integration_tests::{
    RawRecord, create_dataset, fresh_store_url, latest_manifest, service_binary, start_registry,
    unique_name, write_raw,
};
use onepipe_registry::auth::Tokens;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

const EVENT: &str = r#"{"type":"record","name":"Event","namespace":"mem","fields":[
  {"name":"id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"score","type":"long"},
  {"name":"payload","type":"string"}]}"#;

/// Distinct keys; every tenth also gets a second, newer version.
const KEYS: i64 = 1_000_000;
/// Bytes of each payload: with the other columns, over 2 GB of Arrow data in one date.
const PAYLOAD: usize = 2000;
const PARTITIONS: i64 = 4;
/// Records per raw file (about 100 MB of values, within copycat's default 128 MiB).
const FILE_RECORDS: usize = 50_000;
/// 2026-11-24T01:00:00Z: every record in one date.
const TS: i64 = 1_795_482_000_000;
const LIMIT_MB: u64 = 256;
const RSS_CEILING_MB: u64 = 1024;
/// The verifier splits the date by key hash into parts merged one at a time, so its
/// sorts do not spill and it stays near its pool.
const VERIFIER_RSS_CEILING_MB: u64 = 512;

/// Runs `program` with `args` under a Python wrapper that reports the child's peak RSS
/// as the kernel measured it (`getrusage` of the finished child): (exit code, stdout,
/// stderr, peak RSS in MB).
fn run_measured(program: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String, u64) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n\
             sys.stdout.buffer.write(p.stdout)\n\
             kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n\
             print(f'peak_rss_kb={kb}', file=sys.stderr)\n\
             sys.exit(p.returncode)",
        ])
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let peak_kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS reported:\n{stderr}"));
    (out.status.code(), stdout, stderr, peak_kb >> 10)
}

fn score(key: i64, version: i64) -> i64 {
    let mut x = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((version as u64) << 7);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 24) % 1_000_000_000) as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_date_over_2gb_merges_and_verifies_with_a_256mb_limit() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("big_day");
    create_dataset(
        &registry_url,
        &topic,
        EVENT,
        "id",
        PARTITIONS as u32,
        &[
            "--merge",
            "max_by:version",
            "--sort-key",
            "score",
            "--checks",
            "sum:score,max:score,row_checksum",
        ],
    )
    .await;
    let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
    let writer = Serializer::new(registry, Default::default())
        .writer(&topic, None)
        .await
        .unwrap();
    let store_url = fresh_store_url();
    let store: Arc<dyn ObjectStore> = onepipe_core::store::open(&store_url).unwrap();

    // Payloads are windows into one block of noise: real bytes to hold, cheap to make.
    let noise: String = (0..65_536u64)
        .map(|i| char::from(b'a' + (score(i as i64, 0) % 26) as u8))
        .collect();
    // Every key once (version 1), then every tenth key again (version 2), spread over the
    // partitions; the expected winner of each key and the check values follow directly.
    let mut next_offset = [0i64; PARTITIONS as usize];
    let mut pending: Vec<Vec<RawRecord>> = vec![Vec::new(); PARTITIONS as usize];
    let mut expected: HashMap<String, i64> = HashMap::with_capacity(KEYS as usize);
    let (mut decoded_bytes, mut records) = (0usize, 0u64);
    let versions = (0..KEYS)
        .map(|k| (k, 1))
        .chain((0..KEYS).step_by(10).map(|k| (k, 2)));
    for (k, version) in versions {
        let id = format!("key-{k:08}");
        let at = (k as usize * 7919) % (noise.len() - PAYLOAD);
        let payload = &noise[at..at + PAYLOAD];
        let e = writer
            .encode_json(&json!({"id": id, "version": version, "score": score(k, version), "payload": payload}))
            .unwrap();
        decoded_bytes += id.len() + 8 + 8 + PAYLOAD;
        records += 1;
        expected.insert(id, version);
        let p = (k % PARTITIONS) as usize;
        pending[p].push((next_offset[p], TS, Some(e.key), Some(e.value)));
        next_offset[p] += 1;
        if pending[p].len() == FILE_RECORDS {
            write_raw(store.as_ref(), &topic, p as i32, &pending[p]).await;
            pending[p].clear();
        }
    }
    for (p, recs) in pending.iter().enumerate() {
        if !recs.is_empty() {
            write_raw(store.as_ref(), &topic, p as i32, recs).await;
        }
    }
    assert!(
        decoded_bytes > 2 << 30,
        "the date must hold over 2 GB of decoded data, not {decoded_bytes}"
    );
    let expected_sum: i64 = expected
        .iter()
        .map(|(id, v)| score(id[4..].parse().unwrap(), *v))
        .sum();

    // The real binary, its peak RSS measured by the kernel.
    let copydog = service_binary("onepipe-copydog", "copydog");
    let spill_dir = std::env::temp_dir().join(unique_name("copydog_memory"));
    std::fs::create_dir_all(&spill_dir).unwrap();
    let limit = format!("{LIMIT_MB}MB");
    let spill = spill_dir.to_str().unwrap().to_string();
    let args = [
        "--registry",
        &registry_url,
        "--object-store",
        &store_url,
        "run",
        "--topic",
        &topic,
        "--memory-limit",
        &limit,
        "--spill-dir",
        &spill,
    ];
    let (code, _, stderr, peak_mb) = run_measured(&copydog, &args);
    assert_eq!(code, Some(0), "copydog failed:\n{stderr}");
    eprintln!(
        "copydog merged {records} records ({} MB decoded) with --memory-limit {LIMIT_MB}MB: \
         peak RSS {peak_mb} MB",
        decoded_bytes >> 20,
    );
    assert!(
        stderr.contains("spilling"),
        "the date should have spilled:\n{stderr}"
    );
    assert!(
        peak_mb < RSS_CEILING_MB,
        "peak RSS {peak_mb} MB is not under {RSS_CEILING_MB} MB"
    );

    // The result: one row per key with the newest version, sorted by score, and check
    // values equal to the ones computed from the input.
    let m = latest_manifest(store.as_ref(), &topic).await;
    assert_eq!(m.dates.len(), 1);
    let entry = m.dates.values().next().unwrap();
    assert_eq!(entry.rows, KEYS as u64);
    assert!(
        entry.files.len() > 1,
        "files of bounded size: {:?}",
        entry.files
    );
    assert_eq!(entry.checks["count_distinct(unique_key)"], json!(KEYS));
    assert_eq!(entry.checks["sum(score)"], json!(expected_sum));
    let mut seen = 0usize;
    let mut last_score = i64::MIN;
    for f in &entry.files {
        let bytes = store
            .get(&Path::from(f.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1, 2]);
        for batch in builder.with_projection(mask).build().unwrap() {
            let b: RecordBatch = batch.unwrap();
            let ids = b.column(0).as_string::<i32>();
            let versions = b.column(1).as_primitive::<Int64Type>();
            let scores = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let id = ids.value(i);
                let want = expected
                    .remove(id)
                    .unwrap_or_else(|| panic!("{id} is not expected or appears twice"));
                assert_eq!(versions.value(i), want, "{id}: the newest version wins");
                assert!(scores.value(i) >= last_score, "{id}: rows sorted by score");
                last_score = scores.value(i);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, KEYS as usize);
    assert!(expected.is_empty(), "{} keys missing", expected.len());
    let leftovers: Vec<_> = std::fs::read_dir(&spill_dir).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "spill files left behind: {leftovers:?}"
    );
    std::fs::remove_dir(&spill_dir).unwrap();

    // The verifier on the same date, under the same limit.
    let verifier = service_binary("onepipe-verifier", "verifier");
    let verify = |what: &str| {
        std::fs::create_dir_all(&spill_dir).unwrap();
        let args = [
            "--registry",
            &registry_url,
            "--object-store",
            &store_url,
            "--memory-limit",
            &limit,
            "--spill-dir",
            &spill,
            "check",
            "--dataset",
            &topic,
        ];
        let (code, stdout, stderr, peak_mb) = run_measured(&verifier, &args);
        eprintln!(
            "verifier checked {records} records ({what}) with --memory-limit {LIMIT_MB}MB: \
             peak RSS {peak_mb} MB"
        );
        assert!(
            peak_mb < VERIFIER_RSS_CEILING_MB,
            "verifier peak RSS {peak_mb} MB ({what}) is not under \
             {VERIFIER_RSS_CEILING_MB} MB\n{stderr}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&spill_dir).unwrap().flatten().collect();
        assert!(leftovers.is_empty(), "verifier left {leftovers:?}");
        std::fs::remove_dir(&spill_dir).unwrap();
        (code, stdout, stderr)
    };
    let (code, stdout, stderr) = verify("as archived");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("verdict: all stores agree"), "{stdout}");
    assert!(stdout.contains("1 dates checked"), "{stdout}");

    // One clean row altered in place (same file, one score changed): the next check sees
    // the file changed, finds the mismatch and names the key.
    let file = Path::from(entry.files[0].as_str());
    let bytes = store.get(&file).await.unwrap().bytes().await.unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let schema = reader.schema().clone();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    let mut altered: Option<String> = None;
    for batch in reader.build().unwrap() {
        let mut b: RecordBatch = batch.unwrap();
        if altered.is_none() {
            let idx = b.schema().index_of("score").unwrap();
            let scores = b.column(idx).as_primitive::<Int64Type>();
            let changed: arrow::array::Int64Array = (0..b.num_rows())
                .map(|i| Some(scores.value(i) + i64::from(i == 0)))
                .collect();
            let mut columns = b.columns().to_vec();
            columns[idx] = Arc::new(changed);
            altered = Some(b.column(0).as_string::<i32>().value(0).to_string());
            b = RecordBatch::try_new(b.schema(), columns).unwrap();
        }
        writer.write(&b).unwrap();
    }
    writer.close().unwrap();
    store.put(&file, out.into()).await.unwrap();
    let altered = altered.unwrap();
    let (code, stdout, stderr) = verify("one clean row altered");
    assert_eq!(code, Some(1), "a mismatch exits 1\n{stdout}\n{stderr}");
    let named: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(&altered) && l.contains("different"))
        .collect();
    assert!(
        named.len() == 1 && named[0].contains("raw"),
        "the altered key {altered} is named once, against raw/:\n{stdout}"
    );
}
