//! One telemetry init for every binary: `tracing` logs filtered by `RUST_LOG`
//! (default `info`), JSON when stderr is not a terminal, and OTLP traces when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Libraries only instrument; `main` calls
//! [`init`] once and keeps the guard alive, which flushes spans on drop.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::{Error, Result};

pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Flushes and shuts down trace export when dropped.
#[must_use = "telemetry stops exporting when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            // The global subscriber outlives the guard, so this still reaches stderr.
            tracing::warn!(error = %e, "telemetry: flushing traces failed");
        }
    }
}

/// The body of a job's `main`: telemetry for `service`, then `run`. Its exit code is the
/// process's; an error (telemetry or `run`'s) is printed once on stderr as
/// `service: message` (with anyhow's `{:#}` chain) and exits with 2.
pub async fn main_with<E, F>(service: &'static str, run: F) -> std::process::ExitCode
where
    E: std::fmt::Display,
    F: std::future::Future<Output = std::result::Result<std::process::ExitCode, E>>,
{
    let _telemetry = match init(service) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{service}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run.await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{service}: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Installs the global subscriber for the binary `service`. Call once, early in `main`,
/// inside the Tokio runtime when OTLP export may be on.
pub fn init(service: &'static str) -> Result<TelemetryGuard> {
    crate::tls::install_provider();
    // deltalake's kernel logs every snapshot it builds at info: only its warnings by default.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,buoyant_kernel=warn,deltalake_core=warn"));
    let fmt = if std::io::stderr().is_terminal() {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed()
    };

    let provider = match std::env::var(OTLP_ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.is_empty() => Some(otlp_provider(service)?),
        _ => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(Error::TelemetryInit)?;
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(service: &'static str) -> Result<SdkTracerProvider> {
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables) itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(Error::OtlpExporter)?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// Continues the trace of a W3C `traceparent` (from an HTTP request or a Kafka record
/// header) in `span`: the span becomes its child. Invalid values are ignored, as the
/// W3C specification asks. Without OTLP export this does nothing.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    if opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
    {
        let _ = span.set_parent(cx);
    }
}

/// The W3C `traceparent` of `span`, to put in the headers of what it sends on; `None`
/// when spans are not exported (then callers pass on the one they received, if any).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = span.context();
    if !opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
    {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}
