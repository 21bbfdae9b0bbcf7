//! copydog keeps its CPU work off the async runtime: decoding raw files, reading and
//! bringing up older clean files, merging and sorting, spill files and Parquet encoding
//! run on the blocking pool, so a runtime with a single worker thread stays free to
//! answer probes and drive I/O while a run goes on.
//!
//! Its own test binary, so no other test competes for that worker meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use onepipe_copydog::run::{RunOptions, run_topic};
use onepipe_integration_tests::{
    RawRecord, create_dataset, dataset_writer, fresh_store_url, latest_manifest, start_registry,
    unique_name, write_raw,
};
use onepipe_registry::auth::Tokens;
use serde_json::json;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"order_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"amount","type":"long"},
  {"name":"note","type":"string"}]}"#;

/// 2026-11-24T00:00:00Z
const DAY0: i64 = 1_795_478_400_000;
/// Records per raw file, and raw files per round.
const FILE_RECORDS: i64 = 100_000;
const FILES: i64 = 1;
/// The longest the worker may be held up, with room for a busy machine (a run with its
/// work off the worker holds it up some 10 ms). Decoding one raw file of this size
/// alone takes several times as long in a debug build when it runs on the worker.
const MAX_STALL: Duration = Duration::from_millis(250);

/// Wakes every 10 ms until `stop`; the longest it was held up past that.
async fn ticker(stop: Arc<AtomicBool>) -> Duration {
    let tick = Duration::from_millis(10);
    let mut worst = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let before = Instant::now();
        tokio::time::sleep(tick).await;
        worst = worst.max(before.elapsed().saturating_sub(tick));
    }
    worst
}

/// Two runs on a single-threaded runtime: 100,000 records into an empty date, then
/// 100,000 more versions of them merged with the date's clean files, through spill files. A task
/// ticking next to them is never held up longer than [`MAX_STALL`].
#[tokio::test(flavor = "current_thread")]
async fn a_run_leaves_the_async_worker_free() {
    let (registry_url, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(
        &registry_url,
        &topic,
        ORDER,
        "order_id",
        1,
        &["--merge", "max_by:version", "--sort-key", "amount"],
    )
    .await;
    let (registry, w) = dataset_writer(&registry_url, &topic).await;
    let store = onepipe_core::store::open(&fresh_store_url()).unwrap();
    let spill_dir = std::env::temp_dir().join(unique_name("copydog_runtime"));
    std::fs::create_dir_all(&spill_dir).unwrap();
    let opts = RunOptions {
        // Small enough that the date merges through spill files.
        memory_limit: 16 << 20,
        spill_dir: spill_dir.clone(),
        ..RunOptions::default()
    };
    let mut offset = 0i64;
    for round in 1..=2i64 {
        for _ in 0..FILES {
            let records: Vec<RawRecord> = (0..FILE_RECORDS)
                .map(|i| {
                    let key = offset % (FILE_RECORDS * FILES);
                    let e = w
                        .encode_json(&json!({
                            "order_id": format!("o-{key:06}"),
                            "version": round,
                            "amount": (key * 7_919 + round * 104_729) % 1_000_003,
                            "note": format!("order {key} of round {round}, item {i}"),
                        }))
                        .unwrap();
                    offset += 1;
                    (offset - 1, DAY0 + key, Some(e.key), Some(e.value))
                })
                .collect();
            write_raw(store.as_ref(), &topic, 0, &records).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = tokio::spawn(ticker(stop.clone()));
        let started = Instant::now();
        let summary = run_topic(store.clone(), &registry, &topic, &opts)
            .await
            .unwrap();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let stall = ticking.await.unwrap();
        eprintln!(
            "round {round}: {} records merged in {took:?}; the worker was held up {stall:?} at most",
            summary.records
        );
        assert_eq!(summary.records, (FILE_RECORDS * FILES) as u64);
        assert!(
            stall <= MAX_STALL,
            "round {round}: the async worker was held up {stall:?} (run took {took:?})"
        );
    }
    let m = latest_manifest(store.as_ref(), &topic).await;
    let entry = m.dates.values().next().unwrap();
    assert_eq!(entry.rows, (FILE_RECORDS * FILES) as u64);
    assert!(
        opts.metrics
            .render()
            .contains("onepipe_copydog_spilled_bytes_total"),
        "the date should have merged through spill files"
    );
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0);
    std::fs::remove_dir(&spill_dir).unwrap();
}
