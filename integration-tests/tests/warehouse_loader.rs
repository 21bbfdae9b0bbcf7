//! warehouse-loader against the stack's PostgreSQL and against SQLite (a temp file): the
//! clean archive is produced the way production does (copycat's raw encoder, then
//! copydog on the stack's S3 server), and every expected warehouse row is computed here
//! from the generated input, independently of copydog and the loader.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use clap::Parser;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use onepipe_archive::layout::RawFile;
use onepipe_archive::manifest;
use onepipe_archive::raw::{RawBatch, encode};
use onepipe_client::codec::WriterSchema;
use onepipe_client::{RegistryOptions, SchemaRegistry, Serializer};
use onepipe_copydog::run::{RunOptions, run_topic};
use onepipe_integration_tests::{
    create_dataset, endpoint, fresh_database, register_schema, start_registry, unique_name,
};
use onepipe_registry::auth::Tokens;
use onepipe_warehouse_loader::{Config, Error, Loader, Report};
use serde_json::{Value as Json, json};
use sqlx::Row;
use tokio::sync::watch;

/// 2026-11-24T00:00:00Z
const DAY0: i64 = 1_795_478_400_000;
const DAY_MS: i64 = 86_400_000;

fn schema(version: u32) -> String {
    let qty = if version >= 3 { "long" } else { "int" };
    let coupon = if version >= 2 {
        r#",{"name":"Coupon","type":["null","string"],"default":null}"#
    } else {
        ""
    };
    format!(
        r#"{{"type":"record","name":"Order","namespace":"shop","fields":[
        {{"name":"Order_ID","type":"string"}},
        {{"name":"select","type":"long"}},
        {{"name":"at","type":{{"type":"long","logicalType":"timestamp-millis"}}}},
        {{"name":"note","type":["null","string"],"default":null}},
        {{"name":"total","type":{{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}}},
        {{"name":"raw","type":"bytes"}},
        {{"name":"tags","type":{{"type":"array","items":"string"}}}},
        {{"name":"ok","type":"boolean"}},
        {{"name":"score","type":"double"}},
        {{"name":"qty","type":"{qty}"}}{coupon}]}}"#
    )
}

/// A warehouse row, the same whichever database holds it.
#[derive(Debug, Clone, PartialEq)]
struct WRow {
    id: String,
    select: i64,
    at: i64,
    note: Option<String>,
    total: String,
    raw: Vec<u8>,
    tags: Json,
    ok: bool,
    score: f64,
    qty: i64,
    coupon: Option<String>,
    partition: i64,
    offset: i64,
    date: String,
}

const NOTES: [Option<&str>; 6] = [
    None,
    Some("tab\there"),
    Some("line\nbreak \\N back\\slash\\"),
    Some("quote \" ' ✓ ünïcødé 😀"),
    Some("\r\n,;|\\x00"),
    Some(""),
];

/// The record `i` on day `day`, and the row it must become (offset and partition set
/// when placed).
fn order(i: i64, day: i64, coupon: Option<&str>) -> (Json, WRow) {
    let at = DAY0 + day * DAY_MS + i * 1000;
    let sign = if i % 3 == 0 && i > 0 { "-" } else { "" };
    let total = format!("{sign}{}.{:02}", i, i % 100);
    let raw = vec![0u8, 9, 10, 92, (i % 256) as u8];
    let note = NOTES[(i % 6) as usize].map(str::to_string);
    let tags = json!(["a", format!("t{i}"), "quo\"te\\"]);
    let mut value = json!({
        "Order_ID": format!("o-{i:05}"),
        "select": i * 7,
        "at": at,
        "note": note,
        "total": total,
        "raw": base64_encode(&raw),
        "tags": tags,
        "ok": i % 2 == 0,
        "score": i as f64 / 3.0,
        "qty": i % 1000,
    });
    if let Some(c) = coupon {
        value["Coupon"] = json!(c);
    }
    let date = chrono::DateTime::from_timestamp_millis(at)
        .unwrap()
        .date_naive()
        .to_string();
    let row = WRow {
        id: format!("o-{i:05}"),
        select: i * 7,
        at,
        note,
        total,
        raw,
        tags,
        ok: i % 2 == 0,
        score: i as f64 / 3.0,
        qty: i % 1000,
        coupon: coupon.map(str::to_string),
        partition: 0,
        offset: -1,
        date,
    };
    (value, row)
}

fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One test's pipeline: registry, topic, object store, raw writer.
struct Pipeline {
    registry_url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    registry: SchemaRegistry,
    store: Arc<dyn ObjectStore>,
    store_url: String,
    topic: String,
    next_offset: i64,
    /// Expected rows by id (first_seen with unique ids: every record is a row).
    expected: BTreeMap<String, WRow>,
}

impl Pipeline {
    async fn new(base: &str) -> Pipeline {
        let (registry_url, stop) = start_registry(Tokens::default()).await;
        let store_url = format!(
            "{}/wl-{}",
            endpoint("ONEPIPE_OBJECT_STORE").trim_end_matches('/'),
            uuid::Uuid::new_v4().simple()
        );
        let registry = SchemaRegistry::connect(&registry_url, RegistryOptions::default()).unwrap();
        let mut p = Pipeline {
            registry_url,
            _stop: stop,
            registry,
            store: onepipe_core::store::open(&store_url).unwrap(),
            store_url,
            topic: String::new(),
            next_offset: 0,
            expected: BTreeMap::new(),
        };
        p.topic = p.add_topic(base).await;
        p
    }

    async fn add_topic(&self, base: &str) -> String {
        let topic = unique_name(base);
        create_dataset(
            &self.registry_url,
            &topic,
            &schema(1),
            "Order_ID",
            1,
            &["--sort-key", "at,Order_ID", "--partition-time", "at"],
        )
        .await;
        topic
    }

    async fn writer(&self, topic: &str) -> WriterSchema {
        self.registry.invalidate(topic);
        Serializer::new(self.registry.clone(), Default::default())
            .writer(topic, None)
            .await
            .unwrap()
    }

    /// Archives records `ids` on `day` as one raw file, then runs copydog.
    async fn produce(&mut self, ids: std::ops::Range<i64>, day: i64, coupon: Option<&str>) -> u64 {
        let topic = self.topic.clone();
        self.produce_to(&topic, ids, day, coupon, true).await
    }

    async fn produce_to(
        &mut self,
        topic: &str,
        ids: std::ops::Range<i64>,
        day: i64,
        coupon: Option<&str>,
        track: bool,
    ) -> u64 {
        let w = self.writer(topic).await;
        let ts = DAY0 + 5 * DAY_MS;
        let mut batch = RawBatch::new(0);
        let first = self.next_offset;
        for i in ids {
            let (value, mut row) = order(i, day, coupon);
            let e = w.encode_json(&value).unwrap();
            batch.push(self.next_offset, ts, Some(&e.key), Some(&e.value), &[]);
            row.offset = self.next_offset;
            if track {
                self.expected.insert(row.id.clone(), row);
            }
            self.next_offset += 1;
        }
        let when = chrono::DateTime::from_timestamp_millis(ts).unwrap();
        let file = RawFile {
            topic: topic.to_string(),
            partition: 0,
            date: when.date_naive(),
            hour: 0,
            first_offset: first,
            last_offset: self.next_offset - 1,
        };
        let bytes = encode(&batch.finish().unwrap()).unwrap();
        self.store
            .put(&Path::from(file.path().as_str()), PutPayload::from(bytes))
            .await
            .unwrap();
        self.copydog(topic).await
    }

    async fn copydog(&self, topic: &str) -> u64 {
        let s = run_topic(
            self.store.clone(),
            &self.registry,
            topic,
            &RunOptions::default(),
        )
        .await
        .unwrap();
        s.manifest.expect("copydog committed a manifest")
    }

    async fn evolve(&mut self, version: u32) {
        register_schema(
            &self.registry_url,
            &format!("{}-value", self.topic),
            &schema(version),
        )
        .await;
        self.registry.invalidate(&self.topic);
    }

    fn config(&self, mart: &Mart, datasets: &str) -> Config {
        let mut args = vec![
            "warehouse-loader".to_string(),
            "--registry".into(),
            self.registry_url.clone(),
            "--object-store".into(),
            self.store_url.clone(),
            "--database".into(),
            mart.url.clone(),
            "--datasets".into(),
            datasets.into(),
            "--once".into(),
            "--concurrency".into(),
            "1".into(),
        ];
        if let Some(s) = &mart.schema {
            args.push("--schema".into());
            args.push(s.clone());
        }
        Config::try_parse_from(args).unwrap()
    }

    fn expected_by_date(&self) -> BTreeMap<String, Vec<WRow>> {
        let mut out: BTreeMap<String, Vec<WRow>> = BTreeMap::new();
        for r in self.expected.values() {
            out.entry(r.date.clone()).or_default().push(r.clone());
        }
        out
    }
}

/// A mart under test: a PostgreSQL schema or a SQLite file.
struct Mart {
    url: String,
    schema: Option<String>,
    pg: Option<sqlx::PgPool>,
    lite: Option<sqlx::SqlitePool>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Mart {
    /// A fresh mart; on PostgreSQL `database` may be shared by several marts (schemas).
    async fn new(backend: Backend, database: Option<&str>, schema: &str) -> Mart {
        match backend {
            Backend::Postgres => {
                let url = match database {
                    Some(u) => u.to_string(),
                    None => fresh_database("it_mart").await,
                };
                let pg = sqlx::PgPool::connect(&url).await.unwrap();
                Mart {
                    url,
                    schema: Some(schema.to_string()),
                    pg: Some(pg),
                    lite: None,
                }
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique_name("onepipe-mart"));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}", dir.join(format!("{schema}.db")).display());
                Mart {
                    url,
                    schema: None,
                    pg: None,
                    lite: None,
                }
            }
        }
    }

    async fn lite(&mut self) -> sqlx::SqlitePool {
        if self.lite.is_none() {
            let opts: sqlx::sqlite::SqliteConnectOptions = self.url.parse().unwrap();
            self.lite = Some(
                sqlx::SqlitePool::connect_with(opts.create_if_missing(true))
                    .await
                    .unwrap(),
            );
        }
        self.lite.clone().unwrap()
    }

    fn qualified(&self, table: &str) -> String {
        match &self.schema {
            Some(s) => format!("\"{s}\".\"{table}\""),
            None => format!("\"{table}\""),
        }
    }

    async fn exec(&mut self, sql: &str) {
        if let Some(pg) = &self.pg {
            sqlx::query(sql)
                .execute(pg)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        } else {
            let lite = self.lite().await;
            sqlx::query(sql)
                .execute(&lite)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    async fn columns(&mut self, table: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(pg) = &self.pg {
            let rows = sqlx::query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
            )
            .bind(self.schema.as_deref().unwrap())
            .bind(table)
            .fetch_all(pg)
            .await
            .unwrap();
            for r in rows {
                out.insert(r.get(0), r.get(1));
            }
        } else {
            let lite = self.lite().await;
            let rows = sqlx::query("SELECT name, type FROM pragma_table_info(?1)")
                .bind(table)
                .fetch_all(&lite)
                .await
                .unwrap();
            for r in rows {
                out.insert(r.get(0), r.get(1));
            }
        }
        out
    }

    /// `_onepipe_loads` of a dataset: date → (manifest, version, rows).
    async fn loads(&mut self, dataset: &str) -> BTreeMap<String, (i64, i64, i64)> {
        let sql = format!(
            "SELECT CAST(\"date\" AS text), \"manifest\", \"version\", \"rows\" FROM {} WHERE \"dataset\" = $1",
            self.qualified("_onepipe_loads")
        );
        let rows = if let Some(pg) = &self.pg {
            sqlx::query_as::<_, (String, i64, i64, i64)>(&sql)
                .bind(dataset)
                .fetch_all(pg)
                .await
                .unwrap()
        } else {
            let lite = self.lite().await;
            sqlx::query_as::<_, (String, i64, i64, i64)>(&sql.replace("$1", "?1"))
                .bind(dataset)
                .fetch_all(&lite)
                .await
                .unwrap()
        };
        rows.into_iter()
            .map(|(d, m, v, r)| (d, (m, v, r)))
            .collect()
    }

    /// Every row of a dataset's table, sorted by id.
    async fn rows(&mut self, table: &str) -> Vec<WRow> {
        let cols = self.columns(table).await;
        let coupon = if cols.contains_key("Coupon") {
            "\"Coupon\""
        } else {
            "NULL"
        };
        let t = self.qualified(table);
        let mut out = Vec::new();
        if let Some(pg) = &self.pg {
            let sql = format!(
                "SELECT \"Order_ID\", \"select\", (extract(epoch from \"at\") * 1000)::bigint, \"note\", \
                 \"total\"::text, \"raw\", \"tags\"::text, \"ok\", \"score\", \"qty\"::bigint, {coupon}::text, \
                 \"_kafka_partition\"::bigint, \"_kafka_offset\", \"_date\"::text FROM {t}"
            );
            for r in sqlx::query(&sql).fetch_all(pg).await.unwrap() {
                out.push(WRow {
                    id: r.get(0),
                    select: r.get(1),
                    at: r.get(2),
                    note: r.get(3),
                    total: r.get(4),
                    raw: r.get(5),
                    tags: serde_json::from_str(r.get::<&str, _>(6)).unwrap(),
                    ok: r.get(7),
                    score: r.get(8),
                    qty: r.get(9),
                    coupon: r.get(10),
                    partition: r.get(11),
                    offset: r.get(12),
                    date: r.get(13),
                });
            }
        } else {
            let lite = self.lite().await;
            let sql = format!(
                "SELECT \"Order_ID\", \"select\", \"at\", \"note\", \"total\", \"raw\", \"tags\", \"ok\", \
                 \"score\", \"qty\", {coupon}, \"_kafka_partition\", \"_kafka_offset\", \"_date\" FROM {t}"
            );
            for r in sqlx::query(&sql).fetch_all(&lite).await.unwrap() {
                let at: String = r.get(2);
                out.push(WRow {
                    id: r.get(0),
                    select: r.get(1),
                    at: chrono::DateTime::parse_from_rfc3339(&at)
                        .unwrap_or_else(|e| panic!("{at}: {e}"))
                        .timestamp_millis(),
                    note: r.get(3),
                    total: r.get(4),
                    raw: r.get(5),
                    tags: serde_json::from_str(r.get::<&str, _>(6)).unwrap(),
                    ok: r.get::<i64, _>(7) != 0,
                    score: r.get(8),
                    qty: r.get(9),
                    coupon: r.get(10),
                    partition: r.get(11),
                    offset: r.get(12),
                    date: r.get(13),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    async fn table_exists(&mut self, table: &str) -> bool {
        !self.columns(table).await.is_empty()
    }
}

fn table_of(topic: &str) -> String {
    onepipe_tables::names::sql_name(topic)
}

async fn once(config: &Config) -> (Loader, Report) {
    once_with(config, Default::default()).await
}

async fn once_with(config: &Config, metrics: onepipe_core::admin::Metrics) -> (Loader, Report) {
    let loader = Loader::connect(config, metrics).await.unwrap();
    let (_stop, stopped) = watch::channel(false);
    let report = loader.cycle(&stopped).await;
    (loader, report)
}

fn assert_rows(got: &[WRow], want: &BTreeMap<String, WRow>, what: &str) {
    let want: Vec<WRow> = want.values().cloned().collect();
    assert_same(got, &want, what);
}

fn assert_same(got: &[WRow], want: &[WRow], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}");
    }
}

/// First load, idempotent rerun, a reload of one rewritten date, a new column, and a
/// type change refused.
async fn load_reload_evolve(backend: Backend) {
    let mut p = Pipeline::new("Shop.Orders").await;
    let table = table_of(&p.topic);
    assert!(table.starts_with("shop_orders_"), "{table}");
    let m1 = p.produce(0..150, 0, None).await;
    p.produce(150..300, 1, None).await;
    let m1b = m1 + 1;
    let mut mart = Mart::new(backend, None, "Mart-One").await;
    let config = p.config(&mart, &p.topic);

    let (loader, report) = once(&config).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.loaded.len(), 2);
    assert_rows(&mart.rows(&table).await, &p.expected, "first load");
    let loads = mart.loads(&p.topic).await;
    let day0 = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap().to_string();
    let day1 = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap().to_string();
    assert_eq!(
        loads[&day0].0, m1b as i64,
        "both dates from the newest manifest"
    );
    assert_eq!(loads[&day0].2, 150);
    assert_eq!(loads[&day1], (m1b as i64, loads[&day1].1, 150));

    // Nothing changed: nothing is loaded again.
    let (_stop, stopped) = watch::channel(false);
    let again = loader.cycle(&stopped).await;
    assert!(again.ok() && again.loaded.is_empty(), "{again:?}");

    // copydog rewrites day 0 only: only day 0 is reloaded, no duplicates.
    let m2 = p.produce(300..340, 0, None).await;
    // Until manifest m2 is in the Delta table (a copydog run that died between the two
    // writes), the loader loads what Delta readers see: nothing new.
    let commit =
        object_store::path::Path::from(format!("clean/{}/_delta_log/{m2:020}.json", p.topic));
    p.store.delete(&commit).await.unwrap();
    let waiting = loader.cycle(&stopped).await;
    assert!(waiting.ok() && waiting.loaded.is_empty(), "{waiting:?}");
    let published = onepipe_archive::delta::publish(p.store.clone(), &p.topic)
        .await
        .unwrap();
    assert_eq!(published.manifests, [m2]);
    let report = loader.cycle(&stopped).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        report
            .loaded
            .iter()
            .map(|l| l.1.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&day0)
    );
    assert_eq!(report.loaded[0].2, 190);
    assert_rows(&mart.rows(&table).await, &p.expected, "after reload");
    let loads2 = mart.loads(&p.topic).await;
    assert_eq!(loads2[&day0].0, m2 as i64);
    assert_eq!(loads2[&day0].2, 190);
    assert!(loads2[&day0].1 > loads[&day0].1);
    assert_eq!(loads2[&day1], loads[&day1], "the other date is untouched");

    // A new optional field: a new column, NULL in old rows.
    p.evolve(2).await;
    p.produce(400..410, 1, Some("SAVE10")).await;
    let report = loader.cycle(&stopped).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.loaded.len(), 2, "a new schema rewrites every date");
    let cols = mart.columns(&table).await;
    assert!(cols.contains_key("Coupon"), "{cols:?}");
    let rows = mart.rows(&table).await;
    assert_rows(&rows, &p.expected, "after evolution");
    assert_eq!(rows.iter().filter(|r| r.coupon.is_some()).count(), 10);

    // int → long is a compatible schema change but a type change in the table: the
    // dataset stops with an error naming the column; the rows stay as they were.
    p.evolve(3).await;
    p.copydog(&p.topic).await;
    let report = loader.cycle(&stopped).await;
    assert!(!report.ok());
    let error = &report.failures[0].1;
    assert!(
        error.contains("\"qty\"") && error.contains("type change") && error.contains(&p.topic),
        "{error}"
    );
    assert_rows(
        &mart.rows(&table).await,
        &p.expected,
        "after the refused change",
    );
    // Stopped until restart: the next pass reports it again without touching anything.
    let report = loader.cycle(&stopped).await;
    assert_eq!(report.failures.len(), 1);
    assert!(report.loaded.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_load_reload_evolve() {
    load_reload_evolve(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_load_reload_evolve() {
    load_reload_evolve(Backend::Sqlite).await;
}

/// Two marts with different allowlists; a misspelt dataset is refused by name.
async fn allowlists(backend: Backend) {
    let mut p = Pipeline::new("orders").await;
    let other = p.add_topic("payments").await;
    p.produce(0..20, 0, None).await;
    p.produce_to(&other.clone(), 100..130, 0, None, false).await;
    let database = match backend {
        Backend::Postgres => Some(fresh_database("it_marts").await),
        Backend::Sqlite => None,
    };
    let mut a = Mart::new(backend, database.as_deref(), "mart_a").await;
    let mut b = Mart::new(backend, database.as_deref(), "mart_b").await;
    let metrics = onepipe_core::admin::Metrics::new();
    let (_, ra) = once_with(&p.config(&a, &p.topic), metrics.clone()).await;
    let text = metrics.render();
    let rows_line = format!(
        "onepipe_warehouse_rows_loaded_total{{dataset=\"{}\"}} 20",
        p.topic
    );
    assert!(text.contains(&rows_line), "{text}");
    assert!(
        text.contains(&format!(
            "onepipe_warehouse_manifests_behind{{dataset=\"{}\"}} 0",
            p.topic
        )),
        "{text}"
    );
    assert!(
        !text.contains(&other),
        "mart a never looks at {other}: {text}"
    );
    let (_, rb) = once(&p.config(&b, &other)).await;
    assert!(ra.ok() && rb.ok(), "{ra:?} {rb:?}");
    assert_rows(&a.rows(&table_of(&p.topic)).await, &p.expected, "mart a");
    assert!(
        !a.table_exists(&table_of(&other)).await,
        "mart a has no {other}"
    );
    assert!(a.loads(&other).await.is_empty());
    assert!(b.table_exists(&table_of(&other)).await);
    assert_eq!(b.loads(&other).await.values().map(|l| l.2).sum::<i64>(), 30);
    assert!(
        !b.table_exists(&table_of(&p.topic)).await,
        "mart b has no {}",
        p.topic
    );
    assert!(b.loads(&p.topic).await.is_empty());

    // A typo in the allowlist: a clear error naming it, and nothing is loaded at all.
    let mut c = Mart::new(backend, database.as_deref(), "mart_c").await;
    let typo = format!("{}x", p.topic);
    let config = p.config(&c, &format!("{},{typo}", p.topic));
    let err = match Loader::connect(&config, Default::default()).await {
        Err(e) => e,
        Ok(_) => panic!("a misspelt dataset must be refused"),
    };
    assert!(
        matches!(err, Error::UnknownDataset(ref d) if *d == typo),
        "{err}"
    );
    assert!(err.to_string().contains(&typo), "{err}");
    assert!(!c.table_exists(&table_of(&p.topic)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_allowlists() {
    allowlists(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_allowlists() {
    allowlists(Backend::Sqlite).await;
}

/// The second date's load fails late (a constraint on its last row): the first date is
/// fully new, the second entirely old; once the cause is gone the rerun converges.
async fn crash_safety(backend: Backend) {
    let mut p = Pipeline::new("Ledger-Entries").await;
    p.produce(0..1000, 0, None).await;
    p.produce(1000..2000, 1, None).await;
    let mut mart = Mart::new(backend, None, "public").await;
    let config = p.config(&mart, &p.topic);
    let (loader, report) = once(&config).await;
    assert!(report.ok(), "{report:?}");
    let table = table_of(&p.topic);
    let before = p.expected_by_date();
    let old_loads = mart.loads(&p.topic).await;

    // New versions of both dates; day 1's last row (by the sort key) will be refused.
    p.produce(2000..2500, 0, None).await;
    p.produce(3000..3600, 1, None).await;
    let bad = 3599 * 7;
    let t = mart.qualified(&table);
    match backend {
        Backend::Postgres => {
            mart.exec(&format!(
                "ALTER TABLE {t} ADD CONSTRAINT no_bad CHECK (\"select\" <> {bad}) NOT VALID"
            ))
            .await
        }
        Backend::Sqlite => {
            mart.exec(&format!(
                "CREATE TRIGGER no_bad BEFORE INSERT ON {t} WHEN NEW.\"select\" = {bad} \
                 BEGIN SELECT RAISE(ABORT, 'bad row'); END"
            ))
            .await
        }
    }
    let (_stop, stopped) = watch::channel(false);
    let report = loader.cycle(&stopped).await;
    assert_eq!(report.loaded.len(), 1, "{report:?}");
    assert_eq!(report.pending, 1);
    assert!(report.failures[0].1.contains("2026-11-25"), "{report:?}");
    let after = p.expected_by_date();
    let rows = mart.rows(&table).await;
    let day0: Vec<&WRow> = rows.iter().filter(|r| r.date == "2026-11-24").collect();
    let day1: Vec<WRow> = rows
        .iter()
        .filter(|r| r.date == "2026-11-25")
        .cloned()
        .collect();
    let day0: Vec<WRow> = day0.into_iter().cloned().collect();
    assert_same(&day0, &after["2026-11-24"], "day 0 is the new version");
    assert_same(
        &day1,
        &before["2026-11-25"],
        "day 1 is entirely the old version",
    );
    let loads = mart.loads(&p.topic).await;
    assert_eq!(loads["2026-11-25"], old_loads["2026-11-25"]);
    assert_ne!(loads["2026-11-24"], old_loads["2026-11-24"]);

    // The cause removed, a fresh loader (as after a restart) converges.
    match backend {
        Backend::Postgres => {
            mart.exec(&format!("ALTER TABLE {t} DROP CONSTRAINT no_bad"))
                .await
        }
        Backend::Sqlite => mart.exec("DROP TRIGGER no_bad").await,
    }
    drop(loader);
    let (_, report) = once(&config).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.loaded.len(), 1);
    assert_rows(&mart.rows(&table).await, &p.expected, "converged");
    let m = manifest::latest(p.store.as_ref(), &p.topic)
        .await
        .unwrap()
        .unwrap();
    let loads = mart.loads(&p.topic).await;
    for (date, entry) in &m.dates {
        let l = loads[&date.to_string()];
        assert_eq!(
            (l.1, l.2),
            (i64::from(entry.version), entry.rows as i64),
            "{date}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_crash_safety() {
    crash_safety(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_crash_safety() {
    crash_safety(Backend::Sqlite).await;
}

/// The `warehouse-loader` binary, built with the workspace's binaries.
fn loader_binary() -> std::path::PathBuf {
    onepipe_integration_tests::service_binary("onepipe-warehouse-loader", "warehouse-loader")
}

fn spawn_loader(
    bin: &std::path::Path,
    config: &Config,
    once: bool,
    log: &std::path::Path,
) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut args = vec![
        "--registry".to_string(),
        config.registry.registry.clone(),
        "--object-store".into(),
        config.object_store.clone(),
        "--database".into(),
        config.database.clone(),
        "--datasets".into(),
        config.datasets.join(","),
        "--concurrency".into(),
        "1".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--poll-interval".into(),
        "1s".into(),
    ];
    if let Some(s) = &config.schema {
        args.push("--schema".into());
        args.push(s.clone());
    }
    if once {
        args.push("--once".into());
    }
    std::process::Command::new(bin)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning warehouse-loader")
}

/// Waits until the log has `needle` at least `times` times.
async fn wait_log(log: &std::path::Path, needle: &str, times: usize) {
    for _ in 0..1500 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= times {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "{needle:?} never appeared {times} times in {}",
        log.display()
    );
}

/// Every date is either absent or complete, and `_onepipe_loads` says which.
async fn assert_whole_dates(mart: &mut Mart, p: &Pipeline, table: &str, what: &str) {
    let rows = if mart.table_exists(table).await {
        mart.rows(table).await
    } else {
        Vec::new()
    };
    let loads = mart.loads(&p.topic).await;
    for (date, want) in p.expected_by_date() {
        let got: Vec<WRow> = rows.iter().filter(|r| r.date == date).cloned().collect();
        match loads.get(&date) {
            Some(l) => {
                assert_eq!(l.2 as usize, want.len(), "{what}: {date} recorded");
                assert_same(&got, &want, &format!("{what}: {date} is whole"));
            }
            None => assert!(
                got.is_empty(),
                "{what}: {date} has {} rows but no record",
                got.len()
            ),
        }
    }
}

/// The binary killed with SIGKILL after its first date, and stopped with SIGTERM while
/// loading: each time every date is whole or absent; a rerun with --once converges and
/// exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_sigkill_and_sigterm_leave_whole_dates() {
    let bin = loader_binary();
    let mut p = Pipeline::new("Kill.Me").await;
    for day in 0..4 {
        p.produce(day * 10_000..day * 10_000 + 6_000, day, None)
            .await;
    }
    let mut mart = Mart::new(Backend::Postgres, None, "public").await;
    let config = p.config(&mart, &p.topic);
    let table = table_of(&p.topic);
    let log = std::env::temp_dir().join(format!("{}.log", unique_name("warehouse-loader")));
    eprintln!("warehouse-loader logs: {}", log.display());

    let mut child = spawn_loader(&bin, &config, true, &log);
    wait_log(&log, "date loaded", 1).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_whole_dates(&mut mart, &p, &table, "after SIGKILL").await;

    let mut child = spawn_loader(&bin, &config, false, &log);
    wait_log(&log, "loading date", 3).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM exits 0: {exit:?}");
    assert_whole_dates(&mut mart, &p, &table, "after SIGTERM").await;

    let mut child = spawn_loader(&bin, &config, true, &log);
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "--once exits 0 when all is loaded: {exit:?}"
    );
    assert_rows(&mart.rows(&table).await, &p.expected, "converged");
    assert_eq!(mart.loads(&p.topic).await.len(), 4);
}

/// Two loaders on one mart at once (a rollout gone wrong): each date is loaded once,
/// never doubled, thanks to the per-date lock and the version check under it.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_two_loaders_never_double_a_date() {
    let mut p = Pipeline::new("twice").await;
    for day in 0..4 {
        p.produce(day * 1000..day * 1000 + 400, day, None).await;
    }
    let mut mart = Mart::new(Backend::Postgres, None, "public").await;
    let mut config = p.config(&mart, &p.topic);
    config.concurrency = 2;
    let a = Loader::connect(&config, Default::default()).await.unwrap();
    let b = Loader::connect(&config, Default::default()).await.unwrap();
    // A pass that loads nothing creates the table first, so only dates race.
    let (_stop, stopped) = watch::channel(true);
    a.cycle(&stopped).await;
    let (_go, go) = watch::channel(false);
    let (ra, rb) = tokio::join!(a.cycle(&go), b.cycle(&go));
    assert!(ra.ok() && rb.ok(), "{ra:?} {rb:?}");
    assert_eq!(
        ra.loaded.len() + rb.loaded.len(),
        4,
        "each date loaded once: {ra:?} {rb:?}"
    );
    assert_rows(
        &mart.rows(&table_of(&p.topic)).await,
        &p.expected,
        "two loaders",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_while_a_pass_cannot_plan() {
    let p = Pipeline::new("wl_ready").await;
    let mart = Mart::new(Backend::Sqlite, None, "ready").await;
    // The clean archive is in a bucket that does not exist: every pass fails to plan.
    let mut config = p.config(&mart, &p.topic);
    config.object_store = format!("s3://{}", unique_name("no-such-bucket"));
    let (loader, report) = once(&config).await;
    assert!(!report.failures.is_empty());
    let why = loader.ready().await.unwrap_err();
    assert!(
        why.contains("could not plan") && why.contains(&p.topic),
        "{why}"
    );
    // With the archive reachable (and nothing to load yet) it is ready.
    let (loader, report) = once(&p.config(&mart, &p.topic)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(loader.ready().await, Ok(()));
}
