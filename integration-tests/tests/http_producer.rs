//! http-producer against the stack's Kafka and a real registry: valid batches land and
//! read back through the client's Deserializer, every kind of bad input gets its status
//! and message with nothing reaching the topic, and schema versions evolve; under a load
//! of concurrent 16 MiB bodies the process stays responsive and within its memory bound.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use onepipe_client::{
    Consumer, Deserializer, ReaderSchema, RegistryOptions, SchemaRegistry, Serializer,
};
use onepipe_http_producer::{App, Config, run};
use onepipe_integration_tests::{
    HttpReply, create_dataset, endpoint, http, register_schema, service_binary, spawn_service,
    start_registry, unique_name, write_temp_file,
};
use onepipe_registry::auth::Tokens;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use serde_json::{Value as Json, json};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"order_id","type":"string"},
  {"name":"version","type":"long"},
  {"name":"placed_at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}},
  {"name":"total","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
  {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
    {"name":"sku","type":"string"},{"name":"qty","type":"int"},{"name":"price","type":"double"}]}}},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"signature","type":"bytes"}]}"#;

const KEY: &str = "orders-key-0123456789";
const OTHER_KEY: &str = "other-key-0123456789";

fn order(i: usize) -> Json {
    let status = ["NEW", "PAID", "SHIPPED"][i % 3];
    json!({
        "order_id": format!("o-{i}"),
        "version": i as i64 % 7,
        "placed_at": format!("2026-11-24T10:{:02}:00.000Z", i % 60),
        "status": status,
        "total": format!("{}.{:02}", i, i % 100),
        "items": [{"sku": format!("sku-{}", i % 13), "qty": (i % 5) as i64 + 1, "price": 2.5}],
        "note": if i.is_multiple_of(2) { Json::Null } else { json!(format!("note {i} ünïcödé")) },
        "signature": "c2lnbmF0dXJl"
    })
}

struct Producer {
    addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_producer(registry: &str, topic: &str) -> Producer {
    let keys = write_temp_file(
        "keys.json",
        &json!([
            {"name": "orders-app", "key": KEY, "topics": [topic]},
            {"name": "other-app", "key": OTHER_KEY, "topics": ["something-else*"]}
        ])
        .to_string(),
    );
    let bootstrap = endpoint("ONEPIPE_KAFKA_BOOTSTRAP");
    let config = Config::parse_from([
        "http-producer",
        "--registry",
        registry,
        "--kafka-bootstrap",
        &bootstrap,
        "--listen",
        "127.0.0.1:0",
        "--api-keys",
        &keys,
        "--max-body-bytes",
        "262144",
        "--max-records",
        "1000",
    ]);
    let app = App::new(&config).expect("http-producer starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, app, async {
        let _ = stopped.await;
    }));
    Producer { addr, _stop: stop }
}

async fn post(p: &Producer, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
    http("POST", &p.addr, path, headers, body).await
}

fn auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {KEY}"))
}

/// Sum of the topic's end offsets over its partitions.
fn end_offsets(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", endpoint("ONEPIPE_KAFKA_BOOTSTRAP"))
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut total = 0;
    for p in md.topics()[0].partitions() {
        let (_, high) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .unwrap();
        total += high;
    }
    total
}

fn registry_client(url: &str) -> SchemaRegistry {
    SchemaRegistry::connect(url, RegistryOptions::default()).unwrap()
}

/// Reads `n` records of `topic` from the start with a fresh group.
async fn read_back(
    registry: &str,
    topic: &str,
    reader: ReaderSchema,
    n: usize,
) -> Vec<onepipe_client::Record> {
    let consumer = Consumer::new(
        &endpoint("ONEPIPE_KAFKA_BOOTSTRAP"),
        &unique_name("reader"),
        Deserializer::new(registry_client(registry), reader),
        &[],
    )
    .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", out.len()))
            .unwrap();
        consumer.mark_done(&r);
        out.push(r);
    }
    assert!(consumer.commit().await.unwrap() > 0);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_batches_land_and_read_back() {
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(
        &registry,
        &topic,
        ORDER,
        "order_id",
        3,
        &["--merge", "max_by:version"],
    )
    .await;
    let p = start_producer(&registry, &topic).await;
    let path = format!("/v1/topics/{topic}/records");
    let (k, v) = auth();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let records: Vec<Json> = (0..300)
        .map(|i| json!({"value": order(i), "headers": {"source": "test"}}))
        .collect();
    let reply = post(
        &p,
        &path,
        &[
            (k, &v),
            ("content-type", "application/json"),
            ("traceparent", trace),
        ],
        json!({ "records": records }).to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    assert_eq!(body["offsets"].as_array().unwrap().len(), 300);
    assert_eq!(body["schema_version"], 1);

    // The same records as NDJSON, with an explicit (matching) key on none.
    let ndjson: String = (300..320).map(|i| format!("{}\n", order(i))).collect();
    let reply = post(
        &p,
        &path,
        &[(k, &v), ("content-type", "application/x-ndjson")],
        ndjson.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(end_offsets(&topic), 320);

    let back = read_back(&registry, &topic, ReaderSchema::Latest, 320).await;
    let mut by_id = std::collections::HashMap::new();
    for r in &back {
        let decoded = r.value.as_ref().expect("decodes");
        let value = decoded.to_json();
        let id = value["order_id"].as_str().unwrap().to_string();
        assert_eq!(
            r.key.as_deref(),
            Some(format!("[\"{id}\"]").as_bytes()),
            "key of {id}"
        );
        let i: usize = id[2..].parse().unwrap();
        if i < 300 {
            let headers: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref().unwrap()))
                .collect();
            assert_eq!(
                headers,
                [("source", &b"test"[..]), ("traceparent", trace.as_bytes())]
            );
        }
        by_id.insert(i, value);
    }
    assert_eq!(by_id.len(), 320, "every record once");
    for (i, value) in by_id {
        assert_eq!(value, order(i), "record {i} reads back as sent");
    }

    // Records of one key share a partition.
    let key_of = |i: usize| order(i)["order_id"].clone();
    let same_key =
        json!({"records": [{"value": order(5)}, {"value": order(5), "key": [key_of(5)]}]});
    let reply = post(&p, &path, &[(k, &v)], same_key.to_string().as_bytes()).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let offsets = reply.json()["offsets"].clone();
    assert_eq!(offsets[0]["partition"], offsets[1]["partition"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_get_their_status_and_nothing_is_produced() {
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(&registry, &topic, ORDER, "order_id", 3, &[]).await;
    let p = start_producer(&registry, &topic).await;
    let path = format!("/v1/topics/{topic}/records");
    let bearer = format!("Bearer {KEY}");
    let other = format!("Bearer {OTHER_KEY}");
    let json_ct = ("content-type", "application/json");

    let with = |f: &dyn Fn(&mut Json)| {
        let mut o = order(1);
        f(&mut o);
        json!({"records": [{"value": o}]}).to_string().into_bytes()
    };
    let big_note = "x".repeat(300_000);
    let too_many = json!({"records": vec![json!({"value": order(1)}); 1001]}).to_string();
    let one_bad_of_nine: Vec<Json> = (0..9)
        .map(|i| {
            let mut o = order(i);
            if i == 3 {
                o["items"][0]["price"] = json!("12,50");
            }
            json!({"value": o})
        })
        .collect();
    let mut invalid_utf8 = br#"{"records": [{"value": {"order_id": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}}]}"#);

    // (what, path and query, headers, body, status, text the reply must contain)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let auth = vec![("authorization", bearer.as_str()), json_ct];
    let cases: Vec<Case> = vec![
        (
            "wrong type deep inside",
            path.clone(),
            auth.clone(),
            with(&|o| o["items"][0]["price"] = json!("12,50")),
            422,
            r#"expected a number (double), found \"12,50\"","path":"$.items[0].price""#,
        ),
        (
            "missing required field",
            path.clone(),
            auth.clone(),
            with(&|o| {
                o.as_object_mut().unwrap().remove("version");
            }),
            422,
            r#"missing required field \"version\""#,
        ),
        (
            "extra field",
            path.clone(),
            auth.clone(),
            with(&|o| o["colour"] = json!("red")),
            422,
            "colour",
        ),
        (
            "bad base64",
            path.clone(),
            auth.clone(),
            with(&|o| o["signature"] = json!("not base64!")),
            422,
            "$.signature",
        ),
        (
            "int out of range",
            path.clone(),
            auth.clone(),
            with(&|o| o["items"][0]["qty"] = json!(1u64 << 40)),
            422,
            "$.items[0].qty",
        ),
        (
            "wrong enum symbol",
            path.clone(),
            auth.clone(),
            with(&|o| o["status"] = json!("LOST")),
            422,
            "$.status",
        ),
        (
            "null for a required field",
            path.clone(),
            auth.clone(),
            with(&|o| o["order_id"] = Json::Null),
            422,
            "$.order_id",
        ),
        (
            "bad timestamp",
            path.clone(),
            auth.clone(),
            with(&|o| o["placed_at"] = json!("yesterday")),
            422,
            "$.placed_at",
        ),
        (
            "decimal with too many digits",
            path.clone(),
            auth.clone(),
            with(&|o| o["total"] = json!("1.234")),
            422,
            "$.total",
        ),
        (
            "value is not an object",
            path.clone(),
            auth.clone(),
            br#"{"records": [{"value": "order"}]}"#.to_vec(),
            422,
            "\"$\"",
        ),
        (
            "record without value",
            path.clone(),
            auth.clone(),
            br#"{"records": [{"valu": {}}]}"#.to_vec(),
            422,
            "has no \\\"value\\\"",
        ),
        (
            "header value not a string",
            path.clone(),
            auth.clone(),
            json!({"records": [{"value": order(1), "headers": {"n": 1}}]})
                .to_string()
                .into_bytes(),
            422,
            "header values must be strings",
        ),
        (
            "key that differs from the unique key",
            path.clone(),
            auth.clone(),
            json!({"records": [{"value": order(1), "key": ["o-2"]}]})
                .to_string()
                .into_bytes(),
            422,
            "differs from the unique key",
        ),
        (
            "one bad record among nine",
            path.clone(),
            auth.clone(),
            json!({"records": one_bad_of_nine}).to_string().into_bytes(),
            422,
            "\"index\":3",
        ),
        (
            "oversized body",
            path.clone(),
            auth.clone(),
            with(&|o| o["note"] = json!(big_note)),
            413,
            "larger than the limit",
        ),
        (
            "too many records",
            path.clone(),
            auth.clone(),
            too_many.into_bytes(),
            413,
            "more than the limit of 1000",
        ),
        (
            "invalid UTF-8",
            path.clone(),
            auth.clone(),
            invalid_utf8,
            400,
            "not valid JSON",
        ),
        (
            "malformed JSON",
            path.clone(),
            auth.clone(),
            b"{\"records\": [".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "empty batch",
            path.clone(),
            auth.clone(),
            b"{\"records\": []}".to_vec(),
            400,
            "no records",
        ),
        (
            "body is an array",
            path.clone(),
            auth.clone(),
            b"[]".to_vec(),
            400,
            "must be a JSON object",
        ),
        (
            "records is not an array",
            path.clone(),
            auth.clone(),
            b"{\"records\": {}}".to_vec(),
            400,
            "needs \\\"records\\\"",
        ),
        (
            "unknown body member",
            path.clone(),
            auth.clone(),
            b"{\"records\": [], \"topic\": 1}".to_vec(),
            400,
            "unknown member",
        ),
        (
            "bad NDJSON line",
            path.clone(),
            vec![
                ("authorization", bearer.as_str()),
                ("content-type", "application/x-ndjson"),
            ],
            format!("{}\n{{oops\n", order(1)).into_bytes(),
            400,
            "line 2",
        ),
        (
            "unsupported content type",
            path.clone(),
            vec![
                ("authorization", bearer.as_str()),
                ("content-type", "text/plain"),
            ],
            with(&|_| {}),
            415,
            "application/x-ndjson",
        ),
        (
            "bad key on an unknown topic",
            format!("/v1/topics/{topic}-nope/records"),
            vec![("authorization", "Bearer nothing-matches-this"), json_ct],
            with(&|_| {}),
            401,
            "not valid",
        ),
        (
            "unknown topic with a wildcard key",
            "/v1/topics/something-else-x/records".to_string(),
            vec![("x-api-key", OTHER_KEY), json_ct],
            with(&|_| {}),
            404,
            "is not registered",
        ),
        (
            "unknown schema version",
            format!("{path}?schema_version=99"),
            auth.clone(),
            with(&|_| {}),
            404,
            "no schema version 99",
        ),
        (
            "schema version not a number",
            format!("{path}?schema_version=latest"),
            auth.clone(),
            with(&|_| {}),
            400,
            "not a positive integer",
        ),
        (
            "unknown query parameter",
            format!("{path}?partition=1"),
            auth.clone(),
            with(&|_| {}),
            400,
            "unknown query parameter",
        ),
        (
            "no API key",
            path.clone(),
            vec![json_ct],
            with(&|_| {}),
            401,
            "API key is required",
        ),
        (
            "wrong API key",
            path.clone(),
            vec![("authorization", "Bearer 0000000000000000"), json_ct],
            with(&|_| {}),
            401,
            "not valid",
        ),
        (
            "key of another topic",
            path.clone(),
            vec![("authorization", other.as_str()), json_ct],
            with(&|_| {}),
            403,
            "may not produce",
        ),
    ];
    assert!(cases.len() >= 25);
    let before = end_offsets(&topic);
    assert_eq!(before, 0);
    for (what, path, headers, body, status, text) in &cases {
        let reply = post(&p, path, headers, body).await;
        let shown = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, *status, "{what}: {shown}");
        let error = &reply.json()["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{what}: {shown}"
        );
        assert!(shown.contains(text), "{what}: {shown} lacks {text}");
        assert_eq!(
            end_offsets(&topic),
            0,
            "{what}: something reached the topic"
        );
    }

    // The 422 reply names every failing record and field.
    let reply = post(
        &p,
        &path,
        &auth,
        &json!({"records": [{"value": order(1)}, {"value": {"order_id": 5}}, {"value": order(2)}]})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(reply.status, 422);
    let details = reply.json()["error"]["details"].clone();
    assert_eq!(details.as_array().unwrap().len(), 1);
    assert_eq!(details[0]["index"], 1);
    let paths: Vec<&str> = details[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"$.order_id"), "{paths:?}");
    assert!(
        details
            .to_string()
            .contains(r#"missing required field \"placed_at\""#)
    );
    assert_eq!(end_offsets(&topic), 0);

    // And a valid request still goes through afterwards.
    let reply = post(&p, &path, &auth, &with(&|_| {})).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(end_offsets(&topic), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_outside_years_1_to_9999_get_422_naming_the_field() {
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(&registry, &topic, ORDER, "order_id", 1, &[]).await;
    let p = start_producer(&registry, &topic).await;
    let path = format!("/v1/topics/{topic}/records");
    let (k, v) = auth();
    let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
    for (placed_at, message) in [
        (
            json!(i64::MAX),
            format!(
                "timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}"
            ),
        ),
        (
            json!(253_402_300_800_000_i64),
            format!("timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"),
        ),
        (
            json!(i64::MIN),
            format!(
                "timestamp-millis -9223372036854775808 is -292275055-05-16T16:47:04.192Z, {range}"
            ),
        ),
        (
            json!("0001-01-01T00:59:59.999+01:00"),
            format!("timestamp-millis -62135596800001 is 0000-12-31T23:59:59.999Z, {range}"),
        ),
    ] {
        let mut o = order(1);
        o["placed_at"] = placed_at.clone();
        let reply = post(
            &p,
            &path,
            &[(k, &v)],
            json!({"records": [{"value": order(0)}, {"value": o}]})
                .to_string()
                .as_bytes(),
        )
        .await;
        let shown = String::from_utf8_lossy(&reply.body).to_string();
        assert_eq!(reply.status, 422, "{placed_at}: {shown}");
        assert_eq!(
            reply.json()["error"]["details"],
            json!([{"index": 1, "errors": [{"path": "$.placed_at", "message": message}]}]),
            "{placed_at}"
        );
    }
    assert_eq!(end_offsets(&topic), 0, "nothing reached the topic");

    // The first and last instants of the range are accepted.
    let mut first = order(2);
    first["placed_at"] = json!("0001-01-01T00:00:00.000Z");
    let mut last = order(3);
    last["placed_at"] = json!("9999-12-31T23:59:59.999Z");
    let reply = post(
        &p,
        &path,
        &[(k, &v)],
        json!({"records": [{"value": first}, {"value": last}]})
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
    assert_eq!(end_offsets(&topic), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_two_schema_versions_read_back_in_either_version() {
    let v1 = r#"{"type":"record","name":"Visit","fields":[
        {"name":"id","type":"string"},{"name":"hits","type":"int"}]}"#;
    let v2 = r#"{"type":"record","name":"Visit","fields":[
        {"name":"id","type":"string"},{"name":"hits","type":"long"},
        {"name":"referrer","type":"string","default":"direct"}]}"#;
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("visits");
    create_dataset(&registry, &topic, v1, "id", 1, &[]).await;
    let p = start_producer(&registry, &topic).await;
    let path = format!("/v1/topics/{topic}/records");
    let (k, v) = auth();
    let batch = |records: Json| json!({ "records": records }).to_string().into_bytes();

    let reply = post(
        &p,
        &path,
        &[(k, &v)],
        &batch(json!([{"value": {"id": "a", "hits": 1}}, {"value": {"id": "b", "hits": 2}}])),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    register_schema(&registry, &format!("{topic}-value"), v2).await;
    let reply = post(
        &p,
        &format!("{path}?schema_version=2"),
        &[(k, &v)],
        &batch(json!([{"value": {"id": "c", "hits": 3_000_000_000i64, "referrer": "ads"}}])),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["schema_version"], 2);
    // Pinned to version 1, a v2-only field is refused.
    let reply = post(
        &p,
        &format!("{path}?schema_version=1"),
        &[(k, &v)],
        &batch(json!([{"value": {"id": "d", "hits": 4, "referrer": "x"}}])),
    )
    .await;
    assert_eq!(
        reply.status,
        422,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let reply = post(
        &p,
        &format!("{path}?schema_version=1"),
        &[(k, &v)],
        &batch(json!([{"value": {"id": "d", "hits": 4}}])),
    )
    .await;
    assert_eq!(reply.status, 200);

    let as_v2: Vec<Json> = read_back(&registry, &topic, ReaderSchema::Version(2), 4)
        .await
        .iter()
        .map(|r| r.value.as_ref().unwrap().to_json())
        .collect();
    assert_eq!(
        as_v2,
        [
            json!({"id": "a", "hits": 1, "referrer": "direct"}),
            json!({"id": "b", "hits": 2, "referrer": "direct"}),
            json!({"id": "c", "hits": 3_000_000_000i64, "referrer": "ads"}),
            json!({"id": "d", "hits": 4, "referrer": "direct"}),
        ]
    );
    // Latest is version 2 as well.
    let latest = read_back(&registry, &topic, ReaderSchema::Latest, 4).await;
    assert_eq!(latest[0].value.as_ref().unwrap().to_json(), as_v2[0]);

    // Version 1 readers get a and b and d as written; c does not fit an int.
    let as_v1 = read_back(&registry, &topic, ReaderSchema::Version(1), 4).await;
    let v1_values: Vec<Option<Json>> = as_v1
        .iter()
        .map(|r| r.value.as_ref().ok().map(|d| d.to_json()))
        .collect();
    assert_eq!(v1_values[0], Some(json!({"id": "a", "hits": 1})));
    assert_eq!(v1_values[1], Some(json!({"id": "b", "hits": 2})));
    assert_eq!(v1_values[3], Some(json!({"id": "d", "hits": 4})));
    let err = as_v1[2].value.as_ref().unwrap_err().to_string();
    assert!(err.contains("cannot decode"), "{err}");

    // The client's own Serializer encodes like the HTTP path does.
    let serializer = Serializer::new(registry_client(&registry), Default::default());
    let encoded = serializer
        .serialize_json(&topic, &json!({"id": "e", "hits": 5}))
        .await
        .unwrap();
    assert_eq!(encoded.key, br#"["e"]"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_kafka_or_registry_gives_503_with_retry_after() {
    let (registry, stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("orders");
    create_dataset(&registry, &topic, ORDER, "order_id", 1, &[]).await;
    // Nothing listens on port 9 here: Kafka never takes the records.
    let config = Config::parse_from([
        "http-producer",
        "--registry",
        &registry,
        "--kafka-bootstrap",
        "127.0.0.1:9",
        "--produce-timeout-ms",
        "1500",
    ]);
    let app = App::new(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(run(listener, app, std::future::pending()));
    let body = json!({"records": [{"value": order(1)}]}).to_string();
    let path = format!("/v1/topics/{topic}/records");

    let reply = http("POST", &addr, &path, &[], body.as_bytes()).await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.json()["error"]["code"], "unavailable");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not acknowledge 1 of 1 records"),
        "{}",
        reply.json()
    );

    // With the registry gone (and the cached topic expired or never seen) it is 503 too.
    drop(stop_registry);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = format!("/v1/topics/{topic}-other/records");
    let reply = http("POST", &addr, &other, &[], body.as_bytes()).await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("registry"),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Requests the producer under load may work on at once (`--max-concurrent-requests`).
/// Given through its environment variable, so the same test also runs against a build
/// that does not know the setting yet.
const PERMITS: usize = 2;
/// Clients sending big bodies at once, and the requests each sends.
const CLIENTS: usize = 12;
const ROUNDS: usize = 3;
/// Memory one request in the works may hold, as a multiple of its body: the body (twice
/// while its chunks are gathered), the parsed JSON values (about the body again) and the
/// encoded records (about the body again), with room for the allocator.
const REQUEST_FACTOR: u64 = 5;
/// The process before the load (about 20 MiB: runtime, registry and Kafka clients), with
/// room for connections and allocator arenas.
const BASELINE_MB: u64 = 32;

/// A body just under the default 16 MiB limit: 10,000 records (the default limit) of
/// about 1.6 KB, the last of which does not fit the schema, so the whole batch is parsed
/// and encoded and then refused with 422 (nothing reaches Kafka).
fn big_body() -> Vec<u8> {
    let filler: String = (0..1600u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let mut records: Vec<Json> = (0..9_999)
        .map(|i| json!({"value": {"id": format!("r-{i:05}"), "payload": filler}}))
        .collect();
    records.push(json!({"value": {"id": "r-bad", "payload": 5}}));
    json!({ "records": records }).to_string().into_bytes()
}

/// POSTs `body` while reading the reply, so a reply sent before the body was taken
/// (a 503) is seen even when the server closes without reading the rest. The status
/// and Retry-After of the reply and how long it took, or `None` when the connection
/// ended without one.
async fn post_big(
    addr: &str,
    path: &str,
    body: Arc<Vec<u8>>,
) -> Option<(u16, Option<String>, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        // A refused request's connection is closed under the writer: that is fine.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            let _ = wr.write_all(&body).await;
        }
        wr
    });
    let mut raw = Vec::new();
    let _ = rd.read_to_end(&mut raw).await;
    let took = started.elapsed();
    writer.abort();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim().to_string());
    Some((status, retry_after, took))
}

/// GETs `/healthz` on `admin` from a plain thread (away from the test's runtime) until
/// `stop`: the latency of every answer; a failed probe counts as never answering.
fn probe_healthz(admin: String, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<Duration> {
    use std::io::{Read, Write};
    let mut latencies = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = std::time::Instant::now();
        let answered = (|| -> std::io::Result<bool> {
            let mut s = std::net::TcpStream::connect(&admin)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")?;
            let mut reply = Vec::new();
            s.read_to_end(&mut reply)?;
            Ok(reply.starts_with(b"HTTP/1.1 200"))
        })();
        latencies.push(match answered {
            Ok(true) => started.elapsed(),
            _ => Duration::MAX,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies
}

/// Peak resident memory of a process (`VmHWM`), in MiB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb >> 10)
        .expect("VmHWM in /proc/<pid>/status")
}

/// Issue 16: concurrent 16 MiB bodies, more than the producer takes at once. Parsing and
/// encoding run off the async workers, so `/healthz` (served by the same runtime) answers
/// within 100 ms throughout; requests beyond the limit get 503 with Retry-After before
/// their body is read; and the process's peak memory stays within
/// `PERMITS × 16 MiB × REQUEST_FACTOR + BASELINE_MB`.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_16mib_bodies_keep_healthz_fast_and_memory_bounded() {
    const BIG: &str = r#"{"type":"record","name":"Big","fields":[
        {"name":"id","type":"string"},{"name":"payload","type":"string"}]}"#;
    let (registry, _stop_registry) = start_registry(Tokens::default()).await;
    let topic = unique_name("big_bodies");
    create_dataset(&registry, &topic, BIG, "id", 1, &[]).await;
    let body = Arc::new(big_body());
    let max_body = 16 << 20;
    assert!(
        body.len() > 15 << 20 && body.len() <= max_body,
        "{} bytes",
        body.len()
    );

    let logs = std::env::temp_dir().join(unique_name("http-producer-load"));
    std::fs::create_dir_all(&logs).unwrap();
    let permits = PERMITS.to_string();
    let producer = spawn_service(
        &service_binary("onepipe-http-producer", "http-producer"),
        &[
            "--registry",
            &registry,
            "--kafka-bootstrap",
            &endpoint("ONEPIPE_KAFKA_BOOTSTRAP"),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("ONEPIPE_MAX_CONCURRENT_REQUESTS", permits.as_str())],
        &["http", "admin"],
        &logs.join("http-producer.log"),
    );
    let pid = producer.child.id();
    let api = producer.addrs["http"].clone();
    let path = format!("/v1/topics/{topic}/records");
    // One small request first: the topic's schema is then cached, as in steady use.
    let reply = http(
        "POST",
        &api,
        &path,
        &[],
        br#"{"records": [{"value": {"id": "warm", "payload": 1}}]}"#,
    )
    .await;
    assert_eq!(
        reply.status,
        422,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let baseline = peak_rss_mb(pid);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (admin, stop) = (producer.addrs["admin"].clone(), stop.clone());
        std::thread::spawn(move || probe_healthz(admin, stop))
    };
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (api, path, body) = (api.clone(), path.clone(), body.clone());
        clients.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for _ in 0..ROUNDS {
                let reply = post_big(&api, &path, body.clone()).await;
                // A well-behaved client waits as long as it is told to.
                if let Some((503, Some(secs), _)) = &reply {
                    let secs: u64 = secs.parse().unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                }
                replies.push(reply);
            }
            replies
        }));
    }
    let mut replies = Vec::new();
    for c in clients {
        replies.extend(c.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let latencies = probe.join().unwrap();
    let peak = peak_rss_mb(pid);

    let worst = latencies.iter().max().copied().unwrap_or_default();
    let slow = latencies
        .iter()
        .filter(|l| **l > Duration::from_millis(100))
        .count();
    let count = |want: u16| {
        replies
            .iter()
            .filter(|r| matches!(r, Some((s, _, _)) if *s == want))
            .count()
    };
    let (done, refused) = (count(422), count(503));
    let refused_with_retry = replies
        .iter()
        .filter(|r| matches!(r, Some((503, Some(_), _))))
        .count();
    let slowest_refusal = replies
        .iter()
        .filter_map(|r| match r {
            Some((503, _, took)) => Some(*took),
            _ => None,
        })
        .max()
        .unwrap_or_default();
    let bound = PERMITS as u64 * (max_body as u64 >> 20) * REQUEST_FACTOR + BASELINE_MB;
    let figures = format!(
        "{} requests of {} bytes from {CLIENTS} clients with {PERMITS} permits: {done} worked \
         through (422), {refused} refused (503, {refused_with_retry} with Retry-After, slowest \
         in {slowest_refusal:?}), {} other; /healthz probed {} times, slowest {worst:?}, {slow} over 100 ms; peak RSS \
         {peak} MiB (baseline {baseline} MiB, bound {bound} MiB)",
        replies.len(),
        body.len(),
        replies.len() - done - refused,
        latencies.len()
    );
    eprintln!("{figures}");
    assert!(latencies.len() >= 10, "too few probes: {figures}");
    assert!(
        worst <= Duration::from_millis(100),
        "/healthz must answer within 100 ms: {figures}"
    );
    assert!(
        peak <= bound,
        "peak RSS over the bound: {figures} (log in {})",
        logs.display()
    );
    assert!(refused > 0, "no request was refused: {figures}");
    assert_eq!(
        refused, refused_with_retry,
        "every 503 has Retry-After: {figures}"
    );
    // Refused before the body is read: no waiting for 16 MiB to arrive, let alone parse.
    assert!(
        slowest_refusal < Duration::from_secs(1),
        "503s are quick: {figures}"
    );
    assert!(done > 0, "no request was worked through: {figures}");
    assert_eq!(
        done + refused,
        replies.len(),
        "every request gets 422 or 503: {figures}"
    );
}
