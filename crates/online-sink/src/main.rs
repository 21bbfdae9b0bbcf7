//! `online-sink`: upserts the allowed datasets from Kafka into online tables.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use onepipe_core::admin::{self, Metrics};
use onepipe_online_sink::Config;
use onepipe_online_sink::sink::Sink;

#[tokio::main]
async fn main() -> ExitCode {
    onepipe_core::telemetry::main_with("online-sink", serve(Config::parse())).await
}

async fn serve(config: Config) -> Result<ExitCode, String> {
    let admin_listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .map_err(|e| format!("cannot bind the admin port {}: {e}", config.admin_listen))?;
    let metrics = Metrics::new();
    let sink = Sink::connect(&config, metrics.clone())
        .await
        .map_err(|e| e.to_string())?;
    let readiness = Arc::new(sink.readiness());
    let ready: admin::ReadyCheck = Arc::new(move || {
        let check = readiness.clone();
        Box::pin(async move { check().await.map_err(Into::into) })
    });
    let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
    let mut admin_stopped = admin_stopped;
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        admin::router(ready, metrics, None),
        "admin",
        async move {
            let _ = admin_stopped.wait_for(|s| *s).await;
        },
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        tracing::info!("stopping: applying what is held");
        signal_stop.store(true, Ordering::SeqCst);
    });
    let result = tokio::task::spawn_blocking(move || sink.run(stop))
        .await
        .map_err(|e| format!("the consumer thread failed: {e}"))?;
    let _ = admin_stop.send(true);
    admin.abort();
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            tracing::error!(error = %e, "online-sink stopped on an error");
            eprintln!("online-sink: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
