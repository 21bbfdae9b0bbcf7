//! `copycat`: archives Kafka topics byte for byte into raw/ Parquet files.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use onepipe_copycat::Config;
use onepipe_core::admin;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = onepipe_core::telemetry::init("copycat")?;
    let store = onepipe_core::store::open(&config.object_store)
        .with_context(|| format!("opening the object store {}", config.object_store))?;
    let admin_listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .with_context(|| format!("binding {}", config.admin_listen))?;
    let metrics = admin::Metrics::new();
    let health = Arc::new(onepipe_copycat::health::Health::new());
    let checked = health.clone();
    let ready: admin::ReadyCheck = Arc::new(move || {
        let answer = checked.check().map_err(admin::NotReady::from);
        Box::pin(async move { answer })
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin_server = tokio::spawn(admin::serve(
        admin_listener,
        admin::router(ready, metrics.clone(), None),
        "admin",
        when_stopped(),
    ));
    let archive_stopped = when_stopped();
    tokio::spawn(async move {
        onepipe_core::admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let result =
        onepipe_copycat::archiver::run(config, store, metrics, health, archive_stopped).await;
    admin_server.abort();
    result.context("archiving")?;
    Ok(())
}
