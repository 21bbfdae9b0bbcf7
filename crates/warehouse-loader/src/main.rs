//! `warehouse-loader`: loads the clean archive's allowed datasets into one warehouse.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use onepipe_core::admin::{self, Metrics};
use onepipe_warehouse_loader::{Config, Loader, run};

#[tokio::main]
async fn main() -> ExitCode {
    onepipe_core::telemetry::main_with("warehouse-loader", serve(Config::parse())).await
}

async fn serve(config: Config) -> Result<ExitCode, String> {
    let admin_listener = tokio::net::TcpListener::bind(&config.admin_listen)
        .await
        .map_err(|e| format!("cannot bind the admin port {}: {e}", config.admin_listen))?;
    let metrics = Metrics::new();
    let loader = Arc::new(
        Loader::connect(&config, metrics.clone())
            .await
            .map_err(|e| e.to_string())?,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ready_loader = loader.clone();
    let ready: admin::ReadyCheck = Arc::new(move || {
        let l = ready_loader.clone();
        Box::pin(async move { l.ready().await.map_err(Into::into) })
    });
    let mut admin_stopped = stopped.clone();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        admin::router(ready, metrics, None),
        "admin",
        async move {
            let _ = admin_stopped.wait_for(|s| *s).await;
        },
    ));
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let ok = run(&loader, &config, stopped).await;
    admin.abort();
    tracing::info!(ok, "stopped");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
