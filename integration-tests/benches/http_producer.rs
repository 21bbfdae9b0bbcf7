//! Records per second through `http-producer` next to a plain rdkafka producer sending
//! the same pre-encoded records, in one run, on the stack's broker.
//!
//! Setup: a registry (in process, PostgreSQL of the stack), one 3-partition topic, an
//! http-producer (in process, on 127.0.0.1:0). The records are page views of about 300
//! bytes of Avro. Each side runs for `BENCH_SECONDS` (default 5) after a 1 s warm-up:
//! - baseline: one rdkafka producer with the same settings as http-producer's (acks=all,
//!   idempotence, lz4, linger 5 ms) sends the records already encoded, `CONCURRENCY`
//!   batches of `BATCH` in flight, each batch awaited as a whole;
//! - http-producer: `CONCURRENCY` keep-alive connections POST JSON batches of `BATCH`
//!   records; each 200 reply means every record of the batch was acknowledged.
//!
//! The figure to watch is the ratio (aim: at least 0.5). Nothing is asserted about speed;
//! the run fails only if a request or a delivery fails.
//!
//! `make bench` (starts the stack), or with the stack's endpoints loaded:
//! `cargo bench -p onepipe-integration-tests --bench http_producer`.

use std::time::{Duration, Instant};

use clap::Parser;
use onepipe_client::kafka::producer_config;
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_http_producer::{App, Config, run};
use onepipe_integration_tests::{create_dataset, endpoint, start_registry, unique_name};
use onepipe_registry::auth::Tokens;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const BATCH: usize = 500;
const CONCURRENCY: usize = 4;
const DISTINCT_BATCHES: usize = 8;
const WARM_UP: Duration = Duration::from_secs(1);

const SCHEMA: &str = r#"{"type":"record","name":"PageView","namespace":"bench","fields":[
  {"name":"view_id","type":"string"},
  {"name":"user_id","type":"long"},
  {"name":"session_id","type":"string"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"url","type":"string"},
  {"name":"title","type":"string"},
  {"name":"referrer","type":["null","string"],"default":null},
  {"name":"user_agent","type":"string"},
  {"name":"country","type":"string"},
  {"name":"duration_ms","type":"int"},
  {"name":"scroll_depth","type":"double"},
  {"name":"tags","type":{"type":"array","items":"string"}}]}"#;

fn view(i: usize) -> Json {
    let country = ["DE", "FR", "US", "JP"][i % 4];
    json!({
        "view_id": format!("v-{i:012}"),
        "user_id": (i * 7919) % 1_000_003,
        "session_id": format!("s-{:016x}", i / 10),
        "at": 1_764_000_000_000i64 + i as i64 * 37,
        "url": format!("https://shop.example.com/catalog/category-{}/item-{}?ref=home", i % 97, i),
        "title": format!("Running shoes, size {} - Example Shop", 36 + i % 12),
        "referrer": if i.is_multiple_of(3) { Json::Null } else { json!("https://www.example.org/search?q=shoes") },
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
        "country": country,
        "duration_ms": (i % 5000) as i64,
        "scroll_depth": (i % 100) as f64 / 100.0,
        "tags": ["new-visitor", "mobile"]
    })
}

fn seconds() -> f64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0)
}

#[tokio::main]
async fn main() {
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("bench-views");
    create_dataset(&registry, &topic, SCHEMA, "view_id", 3, &[]).await;

    // The same records, as JSON request bodies and pre-encoded for the baseline.
    let client = SchemaRegistry::connect(&registry, RegistryOptions::default()).unwrap();
    let writer = Serializer::new(client, Default::default())
        .writer(&topic, None)
        .await
        .unwrap();
    let mut bodies = Vec::new();
    let mut encoded = Vec::new();
    let mut avro_bytes = 0;
    for b in 0..DISTINCT_BATCHES {
        let values: Vec<Json> = (0..BATCH).map(|i| view(b * BATCH + i)).collect();
        let mut batch = Vec::new();
        for v in &values {
            let e = writer.encode_json(v).unwrap();
            avro_bytes += e.value.len();
            batch.push(e);
        }
        encoded.push(batch);
        let records: Vec<Json> = values.into_iter().map(|v| json!({ "value": v })).collect();
        bodies.push(json!({ "records": records }).to_string().into_bytes());
    }
    println!(
        "records: {} bytes of Avro value on average, {} bytes of JSON request per record",
        avro_bytes / (DISTINCT_BATCHES * BATCH),
        bodies[0].len() / BATCH
    );
    let duration = Duration::from_secs_f64(seconds());

    let baseline = rdkafka_rate(&bootstrap, &topic, &encoded, duration).await;
    println!("rdkafka producer (pre-encoded): {baseline:>10.0} records/s");
    let http = http_rate(&registry, &bootstrap, &topic, &bodies, duration).await;
    println!("http-producer (JSON, validated): {http:>10.0} records/s");
    println!("ratio http-producer / rdkafka: {:.2}", http / baseline);
}

async fn rdkafka_rate(
    bootstrap: &str,
    topic: &str,
    batches: &[Vec<onepipe_client::Encoded>],
    duration: Duration,
) -> f64 {
    let producer: FutureProducer = producer_config(bootstrap).create().unwrap();
    let send_batch = |batch: &Vec<onepipe_client::Encoded>| {
        let futures: Vec<_> = batch
            .iter()
            .map(|e| {
                producer
                    .send_result(FutureRecord::to(topic).key(&e.key).payload(&e.value))
                    .map_err(|(err, _)| err)
                    .expect("enqueue")
            })
            .collect();
        async move {
            for f in futures {
                f.await.expect("delivery").expect("acknowledged");
            }
        }
    };
    let measure = |d: Duration| {
        let send_batch = &send_batch;
        async move {
            let start = Instant::now();
            let mut sent = 0usize;
            let mut in_flight = futures::stream::FuturesUnordered::new();
            let mut next = 0;
            while start.elapsed() < d {
                while in_flight.len() < CONCURRENCY {
                    in_flight.push(send_batch(&batches[next % batches.len()]));
                    next += 1;
                }
                futures::StreamExt::next(&mut in_flight).await;
                sent += BATCH;
            }
            while futures::StreamExt::next(&mut in_flight).await.is_some() {
                sent += BATCH;
            }
            sent as f64 / start.elapsed().as_secs_f64()
        }
    };
    measure(WARM_UP).await;
    measure(duration).await
}

async fn http_rate(
    registry: &str,
    bootstrap: &str,
    topic: &str,
    bodies: &[Vec<u8>],
    duration: Duration,
) -> f64 {
    let config = Config::parse_from([
        "http-producer",
        "--registry",
        registry,
        "--kafka-bootstrap",
        bootstrap,
        "--listen",
        "127.0.0.1:0",
    ]);
    let app = App::new(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(run(listener, app, std::future::pending()));
    let path = format!("/v1/topics/{topic}/records");

    let measure = |d: Duration| {
        let (addr, path) = (addr.clone(), path.clone());
        async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..CONCURRENCY {
                let (addr, path) = (addr.clone(), path.clone());
                let bodies = bodies.to_vec();
                tasks.push(tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut conn = BufReader::new(stream);
                    let mut sent = 0usize;
                    let mut i = c;
                    while start.elapsed() < d {
                        post(&mut conn, &addr, &path, &bodies[i % bodies.len()]).await;
                        sent += BATCH;
                        i += CONCURRENCY;
                    }
                    sent
                }));
            }
            let mut sent = 0;
            for t in tasks {
                sent += t.await.unwrap();
            }
            sent as f64 / start.elapsed().as_secs_f64()
        }
    };
    measure(WARM_UP).await;
    measure(duration).await
}

/// One request on a keep-alive connection; panics unless the reply is 200.
async fn post(conn: &mut BufReader<tokio::net::TcpStream>, addr: &str, path: &str, body: &[u8]) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(head.as_bytes()).await.unwrap();
    conn.get_mut().write_all(body).await.unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).await.unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut reply = vec![0; length];
    conn.read_exact(&mut reply).await.unwrap();
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "{status} {}",
        String::from_utf8_lossy(&reply)
    );
}
