//! Helpers for the end-to-end tests: endpoints of the local stack and unique names.
//!
//! The tests read the endpoints `deploy/local/stack.sh env` prints and fail, naming
//! the variable, when the stack is not there: they never skip.
//!
//! ```no_run
//! let bootstrap = onepipe_integration_tests::endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
//! let topic = onepipe_integration_tests::unique_name("orders");
//! ```

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// The value of a stack variable, or a panic that says how to start the stack.
pub fn endpoint(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: start the local stack with `deploy/local/stack.sh up` and load its \
             endpoints with `eval \"$(deploy/local/stack.sh env)\"` (or run `make test`)"
        ),
    }
}

/// A name no other test (or earlier run) uses: `{base}-{8 hex digits}`.
pub fn unique_name(base: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}-{}", &id[..8])
}

/// A fresh prefix of the stack's S3 bucket, so each test sees an empty archive.
pub fn fresh_store_url() -> String {
    format!(
        "{}/test-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    )
}

/// A raw record before archiving: offset, Kafka timestamp, key, value.
pub type RawRecord = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Writes one raw file as copycat would (its own encoder and file name; the records
/// must lie within the hour of the first one).
pub async fn write_raw(
    store: &dyn object_store::ObjectStore,
    topic: &str,
    partition: i32,
    records: &[RawRecord],
) {
    use object_store::ObjectStoreExt;
    let mut batch = onepipe_archive::raw::RawBatch::new(partition);
    for (offset, ts, key, value) in records {
        batch.push(*offset, *ts, key.as_deref(), value.as_deref(), &[]);
    }
    let when = chrono::DateTime::from_timestamp_millis(records[0].1).expect("timestamp");
    let file = onepipe_archive::layout::RawFile {
        topic: topic.to_string(),
        partition,
        date: when.date_naive(),
        hour: chrono::Timelike::hour(&when) as u8,
        first_offset: records[0].0,
        last_offset: records[records.len() - 1].0,
    };
    let bytes = onepipe_archive::raw::encode(&batch.finish().expect("raw batch")).expect("encode");
    // Claimed first, as copycat does, and checkpointed after.
    let claim = onepipe_archive::checkpoint::Claim {
        topic: topic.to_string(),
        partition,
        first_offset: file.first_offset,
        last_offset: file.last_offset,
        owner: "write_raw".into(),
        file: Some(file.path()),
    };
    onepipe_archive::checkpoint::claim(store, &claim)
        .await
        .expect("claiming a raw file");
    store
        .put(
            &object_store::path::Path::from(file.path().as_str()),
            object_store::PutPayload::from(bytes),
        )
        .await
        .expect("uploading a raw file");
    let checkpoint = onepipe_archive::checkpoint::Checkpoint {
        topic: topic.to_string(),
        partition,
        last_offset: file.last_offset,
        file: file.path(),
        files_claimed: true,
    };
    let newer = onepipe_archive::checkpoint::read(store, topic, partition)
        .await
        .expect("reading a checkpoint")
        .is_some_and(|c| c.last_offset > file.last_offset);
    if !newer {
        onepipe_archive::checkpoint::write(store, &checkpoint)
            .await
            .expect("writing a checkpoint");
    }
}

/// copycat archiving `topic` in this process, in files of at most `max_file_records`,
/// until the sender is used.
pub fn start_copycat(
    bootstrap: &str,
    store_url: &str,
    topic: &str,
    max_file_records: usize,
) -> (
    tokio::task::JoinHandle<onepipe_copycat::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
) {
    use clap::Parser;
    let group = unique_name("copycat");
    let max_file_records = max_file_records.to_string();
    let config = onepipe_copycat::Config::parse_from([
        "copycat",
        "--kafka-bootstrap",
        bootstrap,
        "--object-store",
        store_url,
        "--topics",
        topic,
        "--group-id",
        &group,
        "--max-file-records",
        &max_file_records,
        "--idle-flush",
        "1s",
        "--admin-listen",
        "127.0.0.1:0",
        "--kafka-option",
        "session.timeout.ms=6000",
        "--kafka-option",
        "heartbeat.interval.ms=500",
    ]);
    let store = onepipe_core::store::open(store_url).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(onepipe_copycat::archiver::run(
        config,
        store,
        onepipe_core::admin::Metrics::new(),
        std::sync::Arc::new(onepipe_copycat::health::Health::new()),
        async {
            let _ = stopped.await;
        },
    ));
    (task, stop)
}

/// Waits (up to 60 s) until raw/ holds every partition up to `last` (partition → offset).
pub async fn wait_archived(
    store: &dyn object_store::ObjectStore,
    topic: &str,
    last: &std::collections::BTreeMap<i32, i64>,
) {
    let started = std::time::Instant::now();
    loop {
        let report = onepipe_archive::check::check(store, topic).await.unwrap();
        let have: std::collections::BTreeMap<i32, i64> = report
            .partitions
            .iter()
            .map(|p| (p.partition, p.last_offset))
            .collect();
        if last
            .iter()
            .all(|(p, o)| have.get(p).is_some_and(|h| h >= o))
        {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "raw/ still lacks records after 60 s: want {last:?}, have {have:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Every batch of a Parquet object (a clean file, a rejects file), read whole.
pub async fn read_batches(
    store: &dyn object_store::ObjectStore,
    path: &str,
) -> Vec<arrow::array::RecordBatch> {
    use object_store::ObjectStoreExt;
    let bytes = store
        .get(&object_store::path::Path::from(path))
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"));
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("{path} is not Parquet: {e}"))
        .map(|b| b.unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// The newest manifest of `topic`, which the test expects to exist.
pub async fn latest_manifest(
    store: &dyn object_store::ObjectStore,
    topic: &str,
) -> onepipe_archive::manifest::Manifest {
    onepipe_archive::manifest::latest(store, topic)
        .await
        .expect("reading the manifests")
        .unwrap_or_else(|| panic!("{topic} has no manifest"))
}

/// A registry client and the writer of `topic`'s newest schema, as tests encode records.
pub async fn dataset_writer(
    registry_url: &str,
    topic: &str,
) -> (onepipe_client::SchemaRegistry, onepipe_client::WriterSchema) {
    let registry = onepipe_client::SchemaRegistry::connect(
        registry_url,
        onepipe_client::RegistryOptions::default(),
    )
    .expect("registry client");
    let writer = onepipe_client::Serializer::new(registry.clone(), Default::default())
        .writer(topic, None)
        .await
        .expect("the topic's writer schema");
    (registry, writer)
}

/// Creates a topic on the stack's broker (auto-creation is off there) and waits for it.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]).await
}

/// Creates a topic with topic-level settings (`cleanup.policy`, `segment.ms`, …).
pub async fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) {
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in settings {
        new_topic = new_topic.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("kafka admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&[new_topic], &opts)
        .await
        .unwrap_or_else(|e| panic!("creating topic {topic} on {bootstrap}: {e}"));
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A fresh PostgreSQL database on the stack's server for one test; returns its URL.
pub async fn fresh_database(base: &str) -> String {
    use sqlx::Connection;
    let url = endpoint("ONEPIPE_DATABASE_URL");
    let name = unique_name(base).replace('-', "_");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    match url.rsplit_once('/') {
        Some((server, _db)) => format!("{server}/{name}"),
        None => panic!("ONEPIPE_DATABASE_URL {url:?} has no database part"),
    }
}

/// A registry serving gRPC on a free port, on a fresh PostgreSQL database of the stack,
/// guarded by `tokens`;
/// it stops when the returned sender is dropped.
pub async fn start_registry(
    tokens: onepipe_registry::auth::Tokens,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    use onepipe_registry::grpc::{self, GrpcService};
    use onepipe_registry::service::Registry;
    use onepipe_registry::store::Store;

    let url = fresh_database("it_registry").await;
    let registry = std::sync::Arc::new(Registry::new(Store::open(&url).await.unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = GrpcService::new(registry, tokens);
    tokio::spawn(grpc::run(listener, service, None, async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

/// Creates a dataset the way users do (`onepipe topic create`): Kafka topic, schema and
/// metadata in the registry. `extra` are more `topic create` flags (`--merge`, …).
pub async fn create_dataset(
    registry: &str,
    topic: &str,
    schema: &str,
    unique_key: &str,
    partitions: u32,
    extra: &[&str],
) {
    let schema_file = write_temp_file(&format!("{topic}.avsc"), schema);
    let partitions = partitions.to_string();
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let mut argv = vec![
        "onepipe",
        "--registry",
        registry,
        "topic",
        "create",
        topic,
        "--schema-file",
        &schema_file,
        "--unique-key",
        unique_key,
        "--partitions",
        &partitions,
        "--replication-factor",
        "1",
        "--kafka-bootstrap",
        &bootstrap,
    ];
    argv.extend_from_slice(extra);
    run_cli(&argv).await;
}

/// Registers a new schema version for a subject through the CLI.
pub async fn register_schema(registry: &str, subject: &str, schema: &str) {
    let file = write_temp_file(&format!("{subject}.avsc"), schema);
    run_cli(&[
        "onepipe",
        "--registry",
        registry,
        "schema",
        "register",
        subject,
        "--file",
        &file,
    ])
    .await;
}

async fn run_cli(argv: &[&str]) {
    use clap::Parser;
    let cli = onepipe_cli::Cli::try_parse_from(argv).expect("onepipe arguments parse");
    let mut out = Vec::new();
    let code = onepipe_cli::run(cli, &mut out).await;
    let out = String::from_utf8_lossy(&out);
    match code {
        Ok(0) => {}
        other => panic!("{argv:?} failed: {other:?}\n{out}"),
    }
}

/// Writes `contents` to a new file in a fresh temporary folder; returns its path.
pub fn write_temp_file(name: &str, contents: &str) -> String {
    let dir = std::env::temp_dir().join(unique_name("onepipe-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path.to_string_lossy().into_owned()
}

/// An HTTP reply as the tests look at it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply {} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A bare HTTP/1.1 request over a fresh connection (`Connection: close`), enough for
/// the services' JSON APIs without pulling an HTTP client crate into the build.
pub async fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (413) before reading a large body; a reset then is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP reply head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
}

/// The path of a workspace binary (`package`'s `bin`), built first with the profile of
/// the running test, so end-to-end tests run the real service processes.
pub fn service_binary(package: &str, bin: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug")
        .to_string();
    let workspace = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    // Cargo gives this test its package's variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR,
    // …). Build scripts that watch them (ring's does) would look changed to the nested
    // cargo and everything above them would be compiled again, here and in the plain
    // `cargo build` after the tests: the nested build gets a plain build's environment.
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || matches!(
                k,
                "CARGO_CRATE_NAME"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            build.env_remove(k);
        }
    }
    build
        .current_dir(&workspace)
        // Every binary of the workspace, as `make test` builds them for the Python
        // tests: one feature set, so one build serves every test (`-p {package}` alone
        // would resolve features per package and build the dependencies again).
        .args(["build", "-q", "--workspace", "--bins", "--target-dir"])
        .arg(&target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build.status().expect("running cargo build");
    assert!(
        status.success(),
        "building the workspace binaries ({bin}) failed"
    );
    let path = profile_dir.join(bin);
    assert!(
        path.exists(),
        "{} missing: is {bin} a binary of {package}?",
        path.display()
    );
    path
}

/// A service process started by a test; killed when dropped.
pub struct Service {
    pub child: std::process::Child,
    /// `api` → `host:port`, from the service's `listening` log lines.
    pub addrs: std::collections::HashMap<String, String>,
}

impl Service {
    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` with `args` and `envs`, waits (up to 30 s) until it logged a `listening`
/// line for each of `apis`; its log goes on to `log`.
pub fn spawn_service(
    bin: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
    apis: &[&str],
    log: &std::path::Path,
) -> Service {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(bin)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut file = std::fs::File::create(log).expect("log file");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{line}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
                && let (Some(api), Some(addr)) = (v["api"].as_str(), v["addr"].as_str())
            {
                let _ = tx.send((api.to_string(), addr.to_string()));
            }
        }
    });
    let mut addrs = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while addrs.len() < apis.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((api, addr)) => {
                addrs.insert(api, addr);
            }
            Err(_) => panic!(
                "{} did not log listening addresses for {apis:?} in 30 s (got {addrs:?}); see {}",
                bin.display(),
                log.display()
            ),
        }
    }
    Service { child, addrs }
}
