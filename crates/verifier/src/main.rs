//! `verifier`: do all stores hold the same data? Exit 0 when they agree, 1 on a mismatch,
//! 2 when something could not be checked.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onepipe_client::SchemaRegistry;
use onepipe_client::args::RegistryArgs;
use onepipe_core::admin::{self, Metrics};
use onepipe_core::units::parse_duration;
use onepipe_verifier::archived::{self, KafkaOptions};
use onepipe_verifier::lag::{self, GroupLag};
use onepipe_verifier::verify::{DatasetReport, Warehouse, check_dataset};
use onepipe_verifier::warehouse;

/// verifier: computes each dataset's checks (row count, distinct unique keys, sums,
/// minimums, maximums, row checksum) per date inside every store — the raw archive, the
/// clean archive and each warehouse — compares them, names the keys that differ, and
/// reports consumer lag per group (OK, WARN, STALLED, STOPPED). With --kafka-bootstrap it
/// also reads the records Kafka holds that no raw file covers and names those older than
/// --archive-grace-secs as not archived.
#[derive(Debug, Parser)]
#[command(name = "verifier", version)]
struct Cli {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Where raw/ and clean/ live.
    #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
    object_store: String,

    /// A warehouse loaded by warehouse-loader, `postgres://…` or `sqlite://…` (repeatable).
    #[arg(long = "warehouse", env = "ONEPIPE_WAREHOUSES", value_delimiter = ',')]
    warehouses: Vec<String>,

    /// The schema the warehouse tables are in.
    #[arg(long, env = "ONEPIPE_WAREHOUSE_SCHEMA", default_value = "public")]
    warehouse_schema: String,

    /// Kafka, for consumer lag and the Kafka ↔ raw archive check (neither without it).
    #[arg(long, env = "ONEPIPE_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,

    #[command(flatten)]
    kafka_options: onepipe_client::args::KafkaOptions,

    /// Records still in Kafka but not in raw/ are expected (copycat's buffer, reported as
    /// `records_in_flight`, lag) while their Kafka timestamp is at most this old; older
    /// ones are `records_not_archived`, a mismatch. The default covers copycat's default
    /// --max-file-span (1h) with room for the upload; lower it with a shorter span.
    /// (`--archive-grace-secs` is an old spelling, accepted for one release.)
    #[arg(long, alias = "archive-grace-secs", env = "ONEPIPE_ARCHIVE_GRACE", default_value = "2h", value_parser = parse_duration)]
    archive_grace: Duration,

    /// Consumer groups whose lag is reported (repeatable).
    #[arg(
        long = "group",
        env = "ONEPIPE_GROUPS",
        value_delimiter = ',',
        default_value = "copycat"
    )]
    groups: Vec<String>,

    /// Time between the two lag samples a status is judged on. (`--lag-window-secs` is
    /// an old spelling, accepted for one release.)
    #[arg(long, alias = "lag-window-secs", env = "ONEPIPE_LAG_WINDOW", default_value = "5s", value_parser = parse_duration)]
    lag_window: Duration,

    /// Address of /healthz, /readyz and /metrics; port 0 picks a free port. `check`
    /// serves them only when this is given (for probes of a scheduled job).
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN")]
    admin_listen: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check once and exit (0 agree, 1 mismatch, 2 could not check).
    Check {
        /// Only this dataset (default: every topic the registry lists).
        #[arg(long)]
        dataset: Option<String>,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Most differing keys named per store and date.
        #[arg(long, default_value_t = 20)]
        max_keys: usize,
    },
    /// Check on an interval and export the results on /metrics (at --admin-listen,
    /// 127.0.0.1:8099 by default).
    Serve {
        /// Time between checks. (`--interval-secs` is an old spelling, accepted for one
        /// release.)
        #[arg(long, alias = "interval-secs", env = "ONEPIPE_INTERVAL", default_value = "5m", value_parser = parse_duration)]
        interval: Duration,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match onepipe_core::telemetry::init("verifier") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("verifier: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("verifier: {e:#}");
            ExitCode::from(2)
        }
    }
}

struct Stores {
    store: Arc<dyn object_store::ObjectStore>,
    registry: SchemaRegistry,
    warehouses: Vec<Warehouse>,
    /// Kafka, to check that the raw archive holds every record it has.
    kafka: Option<KafkaOptions>,
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = onepipe_core::store::open(&cli.object_store)?;
    let registry = cli.registry.connect(false)?;
    let mut warehouses = Vec::new();
    for (i, url) in cli.warehouses.iter().enumerate() {
        let db = warehouse::open(url).await.map_err(anyhow::Error::msg)?;
        warehouses.push(Warehouse {
            name: format!("warehouse{}", i + 1),
            db,
            schema: cli.warehouse_schema.clone(),
        });
    }
    let kafka = cli.kafka_bootstrap.clone().map(|bootstrap| KafkaOptions {
        bootstrap,
        client_options: cli.kafka_options.kafka_options.clone(),
        grace: cli.archive_grace,
    });
    let ctx = Stores {
        store,
        registry,
        warehouses,
        kafka,
    };
    match &cli.command {
        Command::Check {
            dataset,
            json,
            max_keys,
        } => {
            if let Some(addr) = &cli.admin_listen {
                admin::serve_probes(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
            }
            let datasets = match dataset {
                Some(d) => vec![d.clone()],
                None => ctx.registry.topic_names().await?,
            };
            let (reports, errors) = check_all(&ctx, &datasets, *max_keys).await;
            let lags = lags(&cli, &ctx).await;
            let mismatches: usize = reports.iter().map(|r| r.mismatches).sum();
            let errors: Vec<String> = errors
                .into_iter()
                .chain(reports.iter().flat_map(|r| r.errors.clone()))
                .chain(lags.as_ref().err().cloned())
                .collect();
            if *json {
                let doc = serde_json::json!({
                    "lines": reports.iter().flat_map(|r| r.lines.clone()).collect::<Vec<_>>(),
                    "keys": reports.iter().flat_map(|r| r.keys.clone()).collect::<Vec<_>>(),
                    "lag": lags.as_ref().ok(),
                    "errors": errors,
                    "mismatches": mismatches,
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_tables(&reports, lags.as_ref().ok(), &errors);
            }
            Ok(ExitCode::from(if !errors.is_empty() {
                2
            } else if mismatches > 0 {
                1
            } else {
                0
            }))
        }
        Command::Serve { interval } => {
            let addr = cli.admin_listen.as_deref().unwrap_or("127.0.0.1:8099");
            serve(&cli, ctx, *interval, addr).await
        }
    }
}

async fn check_all(
    ctx: &Stores,
    datasets: &[String],
    max_keys: usize,
) -> (Vec<DatasetReport>, Vec<String>) {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for d in datasets {
        eprintln!("verifier: checking {d}");
        match check_dataset(
            ctx.store.clone(),
            &ctx.registry,
            d,
            &ctx.warehouses,
            max_keys,
        )
        .await
        {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(format!("{d}: {e}")),
        }
        if let Some(kafka) = &ctx.kafka {
            match archived::check(ctx.store.clone(), &ctx.registry, d, kafka, max_keys).await {
                Ok(r) => reports.push(r),
                Err(e) => errors.push(format!("{d} in Kafka against raw/: {e}")),
            }
        }
    }
    (reports, errors)
}

async fn lags(cli: &Cli, ctx: &Stores) -> Result<Vec<GroupLag>, String> {
    let Some(bootstrap) = cli.kafka_bootstrap.clone() else {
        return Ok(Vec::new());
    };
    let topics = ctx
        .registry
        .topic_names()
        .await
        .map_err(|e| e.to_string())?;
    let groups = cli.groups.clone();
    let window = cli.lag_window;
    let options = cli.kafka_options.kafka_options.clone();
    let sample_all = move |bootstrap: String, groups: Vec<String>, topics: Vec<String>| {
        let options = options.clone();
        tokio::task::spawn_blocking(move || {
            groups
                .iter()
                .map(|g| lag::sample(&bootstrap, g, &topics, &options))
                .collect::<Result<Vec<_>, String>>()
        })
    };
    let first = sample_all(bootstrap.clone(), groups.clone(), topics.clone())
        .await
        .map_err(|e| e.to_string())??;
    tokio::time::sleep(window).await;
    let last = sample_all(bootstrap, groups.clone(), topics)
        .await
        .map_err(|e| e.to_string())??;
    Ok(groups
        .into_iter()
        .zip(first.into_iter().zip(last))
        .map(|(group, ((a, _), (b, members)))| GroupLag {
            status: lag::status(&a, &b, members),
            total_lag: b.iter().map(|p| p.lag).sum(),
            group,
            members,
            partitions: b,
        })
        .collect())
}

fn print_tables(reports: &[DatasetReport], lags: Option<&Vec<GroupLag>>, errors: &[String]) {
    println!(
        "{:<28} {:<10} {:<12} {:<28} {:>22}  verdict",
        "dataset", "date", "store", "check", "value"
    );
    for r in reports {
        for l in &r.lines {
            println!(
                "{:<28} {:<10} {:<12} {:<28} {:>22}  {}",
                l.dataset, l.date, l.store, l.check, l.value, l.verdict
            );
        }
    }
    let keys: Vec<_> = reports.iter().flat_map(|r| r.keys.iter()).collect();
    if !keys.is_empty() {
        println!(
            "\nkeys that differ (clean archive is the reference; store kafka: in Kafka, not in raw/):"
        );
        for k in keys {
            println!(
                "  {} {} {}: {} {}",
                k.dataset, k.date, k.store, k.problem, k.key
            );
        }
    }
    if let Some(lags) = lags
        && !lags.is_empty()
    {
        println!("\nconsumer lag:");
        for g in lags {
            println!(
                "  group {} {} (members {}, total lag {})",
                g.group, g.status, g.members, g.total_lag
            );
            for p in &g.partitions {
                println!(
                    "    {}/{}: committed {} end {} lag {}",
                    p.topic, p.partition, p.committed, p.end, p.lag
                );
            }
        }
    }
    for e in errors {
        println!("could not check: {e}");
    }
    let mismatches: usize = reports.iter().map(|r| r.mismatches).sum();
    println!(
        "\n{}",
        if !errors.is_empty() {
            "verdict: COULD NOT CHECK everything".to_string()
        } else if mismatches > 0 {
            format!("verdict: MISMATCH ({mismatches} check values differ)")
        } else {
            "verdict: all stores agree".to_string()
        }
    );
}

async fn serve(
    cli: &Cli,
    ctx: Stores,
    interval: Duration,
    admin_listen: &str,
) -> anyhow::Result<ExitCode> {
    let metrics = Metrics::new();
    let listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("binding {admin_listen}"))?;
    let ready: admin::ReadyCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut rx = stopped.clone();
    let server = tokio::spawn(admin::serve(
        listener,
        admin::router(ready, metrics.clone(), None),
        "admin",
        async move {
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    tokio::spawn(async move {
        admin::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut stopped = stopped;
    loop {
        let datasets = ctx.registry.topic_names().await.unwrap_or_default();
        let (reports, errors) = check_all(&ctx, &datasets, 0).await;
        for r in &reports {
            let mut per: std::collections::BTreeMap<(String, String, String), f64> =
                Default::default();
            for l in &r.lines {
                let e = per
                    .entry((l.dataset.clone(), l.store.clone(), l.check.clone()))
                    .or_default();
                if l.verdict == "MISMATCH" {
                    *e += 1.0;
                }
            }
            for ((d, s, c), n) in per {
                metrics.set(
                    "onepipe_verifier_mismatched_dates",
                    "Dates whose check value in the store differs from the clean archive's",
                    &[("dataset", &d), ("store", &s), ("check", &c)],
                    n,
                );
            }
        }
        metrics.set(
            "onepipe_verifier_errors",
            "Datasets or stores that could not be checked in the last round",
            &[],
            (errors.len() + reports.iter().map(|r| r.errors.len()).sum::<usize>()) as f64,
        );
        if let Ok(groups) = lags(cli, &ctx).await {
            for g in groups {
                let code = match g.status {
                    lag::Status::Ok => 0.0,
                    lag::Status::Warn => 1.0,
                    lag::Status::Stalled => 2.0,
                    lag::Status::Stopped => 3.0,
                };
                metrics.set(
                    "onepipe_verifier_group_status",
                    "0 OK, 1 WARN, 2 STALLED, 3 STOPPED",
                    &[("group", &g.group)],
                    code,
                );
                for p in g.partitions {
                    metrics.set(
                        "onepipe_verifier_consumer_lag",
                        "End offset minus committed offset",
                        &[
                            ("group", &g.group),
                            ("topic", &p.topic),
                            ("partition", &p.partition.to_string()),
                        ],
                        p.lag as f64,
                    );
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    server.await??;
    Ok(ExitCode::SUCCESS)
}
