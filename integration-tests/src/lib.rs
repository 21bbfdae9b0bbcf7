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

/// Creates a topic on the stack's broker (auto-creation is off there) and waits for it.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("kafka admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        )
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
