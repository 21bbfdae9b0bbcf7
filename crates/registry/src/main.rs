//! `registry`: the onepipe schema and topic-metadata registry (gRPC).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use onepipe_core::admin;
use onepipe_registry::auth::Tokens;
use onepipe_registry::grpc::{self, GrpcService};
use onepipe_registry::rest;
use onepipe_registry::service::Registry;
use onepipe_registry::store::Store;
use onepipe_registry::tls::{TlsFiles, serve_https};

/// The onepipe registry: Avro schemas per subject (versions, global ids, compatibility
/// checks) and per-topic metadata (unique key, ordering, merge strategy, checks),
/// served over gRPC to every onepipe service.
#[derive(Debug, Parser)]
#[command(name = "registry", version)]
struct Config {
    /// gRPC address to listen on; port 0 picks a free port (the log says which).
    #[arg(long, env = "ONEPIPE_LISTEN", default_value = "127.0.0.1:8090")]
    listen: String,

    /// Confluent-compatible REST API address (for confluent-kafka clients, kcat -r);
    /// port 0 picks a free port.
    #[arg(long, env = "ONEPIPE_REST_LISTEN", default_value = "127.0.0.1:8091")]
    rest_listen: String,

    /// Address of /healthz, /readyz and /metrics; port 0 picks a free port.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8092")]
    admin_listen: String,

    /// Where schemas and metadata live: sqlite://PATH (created if missing) or
    /// postgres://USER:PASSWORD@HOST:PORT/DB (several replicas may share one).
    #[arg(
        long,
        env = "ONEPIPE_DATABASE",
        default_value = "sqlite://.onepipe/registry.db"
    )]
    database: String,

    /// When set, every write (register, delete, set compatibility, topic changes)
    /// needs `authorization: Bearer TOKEN`. Reads stay open.
    #[arg(long, env = "ONEPIPE_REGISTRY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// When set, every read needs `authorization: Bearer TOKEN` with this token or the
    /// admin token.
    #[arg(long, env = "ONEPIPE_REGISTRY_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,

    /// PEM certificate chain: with --tls-key, both the gRPC and the REST port take TLS only.
    #[arg(long, env = "ONEPIPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<String>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ONEPIPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = onepipe_core::telemetry::init("registry")?;
    let store = Store::open(&config.database)
        .await
        .with_context(|| format!("opening the registry database {}", config.database))?;
    let registry = Arc::new(Registry::new(store));
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles::read(cert, key)?),
        _ => None,
    };
    let rest_tls = match &tls {
        Some(t) => Some(t.server_config()?),
        None => None,
    };
    let tokens = Tokens::new(config.admin_token, config.read_token);
    let grpc_listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let rest_listener = tokio::net::TcpListener::bind(&config.rest_listen)
        .await
        .with_context(|| format!("binding {}", config.rest_listen))?;

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
    let grpc = grpc::run(
        grpc_listener,
        GrpcService::new(registry.clone(), tokens.clone()),
        tls,
        when_stopped(),
    );
    let admin = admin::serve(
        admin_listener,
        admin_router(registry.clone()),
        "admin",
        when_stopped(),
    );
    let rest_router = rest::router(registry, tokens);
    let rest_stopped = when_stopped();
    let rest = async move {
        match rest_tls {
            Some(cfg) => serve_https(rest_listener, rest_router, cfg, "rest", rest_stopped).await,
            None => rest::run(rest_listener, rest_router, rest_stopped).await,
        }
    };
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let (g, r, a) = tokio::join!(grpc, rest, admin);
    g.context("grpc server")?;
    r.context("rest server")?;
    a.context("admin server")?;
    tracing::info!("stopped");
    Ok(())
}

/// Ready when the database answers; gauges are read from it at each scrape.
fn admin_router(registry: Arc<Registry>) -> axum::Router {
    let r = registry.clone();
    let ready: admin::ReadyCheck = Arc::new(move || {
        let r = r.clone();
        Box::pin(async move { r.store().ping().await.map_err(Into::into) })
    });
    let r = registry.clone();
    let refresh: admin::ReadyCheck = Arc::new(move || {
        let r = r.clone();
        Box::pin(async move { r.refresh_metrics().await.map_err(Into::into) })
    });
    admin::router(ready, registry.metrics().clone(), Some(refresh))
}
