//! `http-producer`: JSON records over HTTP, validated against the registry and produced
//! to Kafka with acks=all.

use anyhow::Context;
use clap::Parser;
use onepipe_core::admin;
use onepipe_http_producer::{App, Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = onepipe_core::telemetry::init("http-producer")?;
    let app = App::new(&config)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .with_context(|| format!("binding {}", config.admin_listen))?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin = admin::serve(admin_listener, app.admin_router(), "admin", when_stopped());
    let api = run(listener, app, when_stopped());
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let (a, h) = tokio::join!(api, admin);
    h.context("admin server")?;
    a.context("http server")?;
    tracing::info!("stopped");
    Ok(())
}
