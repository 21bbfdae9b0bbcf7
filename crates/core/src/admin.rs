//! The admin endpoints every service serves on `--admin-listen`: `/healthz` (the
//! process answers), `/readyz` (its dependencies answer) and `/metrics` (Prometheus
//! text format).
//!
//! Metrics are few per service and named as constants in the service, so a small
//! registry of counters and gauges is all that is needed here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

/// Why a service is not ready: any error of the service's own dependencies.
pub type NotReady = Box<dyn std::error::Error + Send + Sync>;

/// Answers whether the service can do its work; `Err` names what is missing.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), NotReady>> + Send>> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Default)]
struct Family {
    help: &'static str,
    kind: Option<Kind>,
    /// Rendered label set (`{a="b"}` or empty) to value.
    values: BTreeMap<String, f64>,
}

/// Counters and gauges, rendered in the Prometheus text format.
#[derive(Default, Clone)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Metrics")
            .field("families", &families.len())
            .finish()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn update(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
        f: impl FnOnce(&mut f64),
    ) {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.entry(name).or_default();
        family.help = help;
        family.kind = Some(kind);
        f(family.values.entry(render_labels(labels)).or_insert(0.0));
    }

    /// Adds `by` to a counter.
    pub fn inc(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], by: u64) {
        self.update(name, help, Kind::Counter, labels, |v| *v += by as f64);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        self.update(name, help, Kind::Gauge, labels, |v| *v = value);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, f) in families.iter() {
            let kind = match f.kind {
                Some(Kind::Counter) => "counter",
                _ => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in &f.values {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
        out
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The admin router. `refresh` runs before each scrape, to set gauges read from state.
pub fn router(ready: ReadyCheck, metrics: Metrics, refresh: Option<ReadyCheck>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {why}\n"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                let refresh = refresh.clone();
                async move {
                    if let Some(r) = refresh
                        && let Err(e) = r().await
                    {
                        tracing::warn!(error = %e, "refreshing metrics failed");
                    }
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        )
}

/// Serves an HTTP router on `listener` until `shutdown` completes, logging the bound
/// address as `api` (the admin router here, a service's own HTTP API elsewhere).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    api: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, api, "listening");
    }
    // Small replies must not wait on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// For batch jobs (copydog, `verifier check`): serves /healthz, /readyz (always ready)
/// and an empty /metrics on `addr` in the background for as long as the process runs,
/// so schedulers can probe them like services.
pub async fn serve_probes(addr: &str) -> std::io::Result<()> {
    serve_job_admin(addr, Metrics::new()).await
}

/// Like [`serve_probes`], with the job's `metrics` on `/metrics` (progress of long runs).
pub async fn serve_job_admin(addr: &str, metrics: Metrics) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let ready: ReadyCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    tokio::spawn(serve(
        listener,
        router(ready, metrics, None),
        "admin",
        std::future::pending(),
    ));
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (every service stops taking work then).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.inc("x_total", "things", &[("kind", "a\"b")], 2);
        m.inc("x_total", "things", &[("kind", "a\"b")], 3);
        m.set("y", "level", &[], 1.5);
        assert_eq!(
            m.render(),
            "# HELP x_total things\n# TYPE x_total counter\nx_total{kind=\"a\\\"b\"} 5\n\
             # HELP y level\n# TYPE y gauge\ny 1.5\n"
        );
    }
}
