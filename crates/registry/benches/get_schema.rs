//! GetSchema(id) throughput and latency of the real registry gRPC server, next to a
//! bare tonic server of the same service that answers from a constant, in one run.
//!
//! Both servers listen on 127.0.0.1:0 in this process; the registry keeps its schemas
//! in SQLite in a temporary directory and runs open (no tokens). For each server in
//! turn: 1 s of warm-up, then `CONCURRENCY` client tasks over `CHANNELS` shared HTTP/2
//! channels call GetSchema for `BENCH_SECONDS` (default 5) seconds. The figure to
//! watch is the ratio: both sides run on the same machine in the same process a few
//! seconds apart, so much of the machine's noise cancels out.
//! Nothing is asserted about speed; the run fails only if a request fails.
//!
//! `make bench`, or `cargo bench -p onepipe-registry --bench get_schema`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use onepipe_proto::registry::v1 as pb;
use onepipe_proto::registry::v1::registry_client::RegistryClient;
use onepipe_proto::registry::v1::registry_server::{Registry as RegistryApi, RegistryServer};
use onepipe_registry::auth::Tokens;
use onepipe_registry::grpc::{self, GrpcService};
use onepipe_registry::service::Registry;
use onepipe_registry::store::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// Client tasks issuing requests at the same time.
const CONCURRENCY: usize = 32;
/// HTTP/2 connections the client tasks share (task `i` uses channel `i % CHANNELS`).
const CHANNELS: usize = 4;
const WARM_UP: Duration = Duration::from_secs(1);
const DEFAULT_SECONDS: f64 = 5.0;

const SUBJECT: &str = "orders-value";
/// A realistic record: nested record, enum, array, map, logical types, optional fields.
const SCHEMA: &str = r#"{
  "type": "record",
  "name": "Order",
  "namespace": "com.example.shop",
  "doc": "An order as placed by a customer.",
  "fields": [
    {"name": "order_id", "type": "string", "doc": "Unique key"},
    {"name": "customer_id", "type": "long"},
    {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "status", "type": {"type": "enum", "name": "OrderStatus",
      "symbols": ["PLACED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"]}},
    {"name": "currency", "type": "string", "default": "EUR"},
    {"name": "total_cents", "type": "long"},
    {"name": "lines", "type": {"type": "array", "items": {
      "type": "record", "name": "OrderLine", "fields": [
        {"name": "sku", "type": "string"},
        {"name": "quantity", "type": "int"},
        {"name": "unit_price_cents", "type": "long"}]}}},
    {"name": "shipping_address", "type": ["null", {
      "type": "record", "name": "Address", "fields": [
        {"name": "street", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "postal_code", "type": "string"},
        {"name": "country", "type": "string"}]}], "default": null},
    {"name": "coupon", "type": ["null", "string"], "default": null},
    {"name": "attributes", "type": {"type": "map", "values": "string"}, "default": {}}
  ]
}"#;

/// The baseline: the same generated service, `get_schema` answered from a constant.
struct Baseline {
    schema: String,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not part of the baseline"))
}

#[tonic::async_trait]
impl RegistryApi for Baseline {
    async fn get_schema(
        &self,
        req: Request<pb::GetSchemaRequest>,
    ) -> Result<Response<pb::SchemaById>, Status> {
        Ok(Response::new(pb::SchemaById {
            id: req.into_inner().id,
            schema: self.schema.clone(),
        }))
    }

    async fn register_schema(
        &self,
        _: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        unimplemented()
    }

    async fn lookup_schema(
        &self,
        _: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        unimplemented()
    }

    async fn get_subject_version(
        &self,
        _: Request<pb::GetSubjectVersionRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        unimplemented()
    }

    async fn list_subjects(
        &self,
        _: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        unimplemented()
    }

    async fn list_versions(
        &self,
        _: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        unimplemented()
    }

    async fn delete_version(
        &self,
        _: Request<pb::DeleteVersionRequest>,
    ) -> Result<Response<pb::DeleteVersionResponse>, Status> {
        unimplemented()
    }

    async fn delete_subject(
        &self,
        _: Request<pb::DeleteSubjectRequest>,
    ) -> Result<Response<pb::DeleteSubjectResponse>, Status> {
        unimplemented()
    }

    async fn check_compatibility(
        &self,
        _: Request<pb::CheckCompatibilityRequest>,
    ) -> Result<Response<pb::CheckCompatibilityResponse>, Status> {
        unimplemented()
    }

    async fn get_compatibility(
        &self,
        _: Request<pb::GetCompatibilityRequest>,
    ) -> Result<Response<pb::CompatibilityLevel>, Status> {
        unimplemented()
    }

    async fn set_compatibility(
        &self,
        _: Request<pb::SetCompatibilityRequest>,
    ) -> Result<Response<pb::CompatibilityLevel>, Status> {
        unimplemented()
    }

    async fn create_topic(
        &self,
        _: Request<pb::TopicMetadata>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        unimplemented()
    }

    async fn update_topic(
        &self,
        _: Request<pb::TopicMetadata>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        unimplemented()
    }

    async fn get_topic(
        &self,
        _: Request<pb::GetTopicRequest>,
    ) -> Result<Response<pb::TopicMetadata>, Status> {
        unimplemented()
    }

    async fn list_topics(
        &self,
        _: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        unimplemented()
    }

    async fn delete_topic(
        &self,
        _: Request<pb::GetTopicRequest>,
    ) -> Result<Response<pb::TopicChangeAck>, Status> {
        unimplemented()
    }

    type WatchTopicsStream = BoxStream<'static, Result<pb::TopicEvent, Status>>;

    async fn watch_topics(
        &self,
        _: Request<pb::WatchTopicsRequest>,
    ) -> Result<Response<Self::WatchTopicsStream>, Status> {
        unimplemented()
    }
}

/// A server running in this process, stopped by [`Server::stop`].
struct Server {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        // Graceful shutdown waits for open connections; the clients are gone by now,
        // but never let a straggler keep the benchmark from ending.
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("server {} failed: {e}", self.url),
            Ok(Err(e)) => eprintln!("server {} panicked: {e}", self.url),
            Err(_) => eprintln!("server {} did not stop within 5 s", self.url),
        }
    }
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    (listener, format!("http://{addr}"))
}

/// The real registry: SQLite in `dir`, one schema registered; returns its id too.
async fn start_registry(dir: &std::path::Path) -> (Server, i64) {
    let url = format!("sqlite://{}", dir.join("registry.db").display());
    let store = Store::open(&url).await.expect("open the SQLite store");
    let registry = Registry::new(store);
    let id = registry
        .register(SUBJECT, SCHEMA)
        .await
        .expect("register the schema")
        .id;
    let (listener, url) = bind().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = GrpcService::new(Arc::new(registry), Tokens::default());
    let task = tokio::spawn(grpc::run(listener, service, None, async {
        let _ = stopped.await;
    }));
    (Server { url, stop, task }, id)
}

/// The baseline, with tonic's defaults: what `Server::builder().serve(addr)` does,
/// including TCP_NODELAY on accepted connections (tonic's default; it applies it only
/// to listeners it binds itself or gets as a `TcpIncoming`).
async fn start_baseline(schema: String) -> Server {
    let (listener, url) = bind().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistryServer::new(Baseline { schema }))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    Server { url, stop, task }
}

async fn channels(url: &str) -> Vec<Channel> {
    let mut out = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        let channel = Endpoint::from_shared(url.to_string())
            .expect("endpoint url")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        out.push(channel);
    }
    out
}

struct Phase {
    /// Latency of every successful request, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<Status>,
    elapsed: Duration,
}

/// `CONCURRENCY` tasks calling GetSchema(`id`) back to back until `duration` is over.
async fn load(channels: &[Channel], id: i64, duration: Duration) -> Phase {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let mut client = RegistryClient::new(channels[i % channels.len()].clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0;
                let mut first_error = None;
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    match client.get_schema(pb::GetSchemaRequest { id }).await {
                        Ok(_) => latencies.push(sent.elapsed().as_nanos() as u64),
                        Err(status) => {
                            errors += 1;
                            first_error.get_or_insert(status);
                        }
                    }
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut phase = Phase {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, errors, first_error) = task.await.expect("client task panicked");
        phase.latencies.extend(latencies);
        phase.errors += errors;
        if phase.first_error.is_none() {
            phase.first_error = first_error;
        }
    }
    phase.elapsed = start.elapsed();
    phase
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    requests: usize,
    errors: u64,
    first_error: Option<Status>,
}

async fn measure(url: &str, id: i64, duration: Duration) -> Figures {
    let channels = channels(url).await;
    let warm = load(&channels, id, WARM_UP).await;
    let mut phase = load(&channels, id, duration).await;
    drop(channels);
    phase.latencies.sort_unstable();
    let percentile = |p: f64| {
        let n = phase.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        Duration::from_nanos(phase.latencies[rank - 1])
    };
    Figures {
        rps: phase.latencies.len() as f64 / phase.elapsed.as_secs_f64(),
        p50: percentile(0.50),
        p99: percentile(0.99),
        requests: phase.latencies.len(),
        errors: warm.errors + phase.errors,
        first_error: warm.first_error.or(phase.first_error),
    }
}

/// 23456.7 as "23,457".
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn line(name: &str, what: &str, r: &Figures) -> String {
    format!(
        "{name:<9} {what:<16}: {:>7} req/s  p50 {:>8}  p99 {:>8}  ({} requests)",
        thousands(r.rps),
        ms(r.p50),
        ms(r.p99),
        r.requests
    )
}

fn bench_duration() -> Duration {
    match std::env::var("BENCH_SECONDS") {
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
            _ => {
                eprintln!("BENCH_SECONDS must be a positive number of seconds, not {s:?}");
                std::process::exit(2);
            }
        },
        Err(_) => Duration::from_secs_f64(DEFAULT_SECONDS),
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench` (and filters, if given); there is only one
    // benchmark here, so the arguments are ignored.
    let duration = bench_duration();
    let dir = std::env::temp_dir().join(format!("onepipe-bench-get-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the temporary directory");

    let (registry, id) = start_registry(&dir).await;
    // The baseline sends the very bytes the registry sends.
    let schema = RegistryClient::connect(registry.url.clone())
        .await
        .expect("connect to the registry")
        .get_schema(pb::GetSchemaRequest { id })
        .await
        .expect("GetSchema on the registry")
        .into_inner()
        .schema;
    let baseline = start_baseline(schema).await;

    println!(
        "GetSchema(id) over gRPC: {CONCURRENCY} client tasks on {CHANNELS} HTTP/2 channels, \
         {:.1} s per server after {:.0} s of warm-up, {} worker threads, debug assertions {}",
        duration.as_secs_f64(),
        WARM_UP.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if cfg!(debug_assertions) { "on" } else { "off" },
    );
    let real = measure(&registry.url, id, duration).await;
    println!("{}", line("registry", "get-schema-by-id", &real));
    let base = measure(&baseline.url, id, duration).await;
    println!("{}", line("baseline", "bare tonic", &base));
    println!("ratio registry/baseline: {:.2}", real.rps / base.rps);

    registry.stop().await;
    baseline.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut failed = false;
    for (name, r) in [("registry", &real), ("baseline", &base)] {
        if let Some(e) = &r.first_error {
            eprintln!("{name}: {} requests failed, the first with: {e}", r.errors);
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
