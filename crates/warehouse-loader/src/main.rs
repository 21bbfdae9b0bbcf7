//! `warehouse-loader`: loads the clean archive's allowed datasets into one warehouse.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use onepipe_core::admin::{self, Metrics};
use onepipe_warehouse_loader::{Config, Loader, run};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let _telemetry = match onepipe_core::telemetry::init("warehouse-loader") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warehouse-loader: {e}");
            return ExitCode::from(2);
        }
    };
    let admin_listener = match tokio::net::TcpListener::bind(&config.admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = %config.admin_listen, error = %e, "cannot bind the admin port");
            return ExitCode::from(2);
        }
    };
    let metrics = Metrics::new();
    let loader = match Loader::connect(&config, metrics.clone()).await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("warehouse-loader: {e}");
            return ExitCode::from(2);
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ready_loader = loader.clone();
    let ready: admin::ReadyCheck = Arc::new(move || {
        let l = ready_loader.clone();
        Box::pin(async move { l.warehouse().ping().await.map_err(Into::into) })
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
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
