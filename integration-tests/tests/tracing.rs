//! A trace that starts at an HTTP request continues through the Kafka record headers
//! into copycat's upload span: both services export over OTLP to a receiver in this test
//! (a gRPC server of the OpenTelemetry collector protocol), and the spans carry the
//! request's trace id.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onepipe_integration_tests::{
    create_dataset, endpoint, http, service_binary, spawn_service, start_registry, unique_name,
};
use onepipe_registry::auth::Tokens;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::json;

/// (service name, span name, trace id hex, parent span id hex)
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

struct Receiver(Seen);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut seen = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    seen.push((
                        service.clone(),
                        s.name.clone(),
                        hex(&s.trace_id),
                        hex(&s.parent_span_id),
                    ));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_trace_continues_into_copycat_uploads() {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(seen.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let (registry, _stop) = start_registry(Tokens::default()).await;
    let topic = unique_name("traced");
    let schema = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}"#;
    create_dataset(&registry, &topic, schema, "id", 1, &[]).await;
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let store = format!(
        "{}/test-{}",
        endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
        uuid::Uuid::new_v4().simple()
    );
    let logs = std::env::temp_dir().join(unique_name("tracing-logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let envs = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut producer = spawn_service(
        &service_binary("onepipe-http-producer", "http-producer"),
        &[
            "--registry",
            &registry,
            "--kafka-bootstrap",
            &bootstrap,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &envs,
        &["http", "admin"],
        &logs.join("http-producer.log"),
    );
    let topics = format!("^{topic}$");
    let group = unique_name("cc-traced");
    let mut copycat = spawn_service(
        &service_binary("onepipe-copycat", "copycat"),
        &[
            "--registry",
            &registry,
            "--kafka-bootstrap",
            &bootstrap,
            "--object-store",
            &store,
            "--topics",
            &topics,
            "--group-id",
            &group,
            "--idle-flush",
            "1s",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &envs,
        &["admin"],
        &logs.join("copycat.log"),
    );

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let reply = http(
        "POST",
        &producer.addrs["http"],
        &format!("/v1/topics/{topic}/records"),
        &[
            ("content-type", "application/json"),
            ("traceparent", &traceparent),
        ],
        json!({"records": [{"value": {"id": "a"}}, {"value": {"id": "b"}}]})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    // Wait until copycat archived both records, then stop both (SIGTERM flushes spans).
    let admin = copycat.addrs["admin"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = http("GET", &admin, "/metrics", &[], b"").await;
        let text = String::from_utf8_lossy(&m.body).to_string();
        let archived: f64 = text
            .lines()
            .filter(|l| l.starts_with("onepipe_copycat_records_archived_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if archived >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "copycat did not archive in 60 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(producer.terminate(), Some(0));
    assert_eq!(copycat.terminate(), Some(0));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = seen.lock().unwrap().clone();
        let produce = spans
            .iter()
            .find(|s| s.0 == "http-producer" && s.1 == "produce");
        let upload = spans.iter().find(|s| s.0 == "copycat" && s.1 == "upload");
        if let (Some(p), Some(u)) = (produce, upload) {
            assert_eq!(
                p.2, trace_id,
                "the request span continues the caller's trace"
            );
            assert_eq!(p.3, "00f067aa0ba902b7", "its parent is the caller's span");
            assert_eq!(u.2, trace_id, "copycat's upload span is in the same trace");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans missing; received: {spans:?} (logs in {})",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
