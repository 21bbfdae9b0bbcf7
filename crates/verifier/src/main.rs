//! `verifier`: do all stores hold the same data? Exit 0 when they agree, 1 on a mismatch,
//! 2 when something could not be checked.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onepipe_client::args::RegistryArgs;
use onepipe_core::admin;
use onepipe_core::units::{parse_bytes, parse_duration};
use onepipe_verifier::archived::KafkaOptions;
use onepipe_verifier::lag::LagOptions;
use onepipe_verifier::online::Online;
use onepipe_verifier::report::{Round, Stores};
use onepipe_verifier::verify::Warehouse;
use onepipe_verifier::{serve, warehouse};

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
    /// Append `#schema=S` when its tables are not in --warehouse-schema, and `name=N` for
    /// the name the report gives it (`URL#schema=finance&name=finance`).
    #[arg(long = "warehouse", env = "ONEPIPE_WAREHOUSES", value_delimiter = ',')]
    warehouses: Vec<String>,

    /// An online database kept by online-sink, `postgres://…` or `sqlite://…` (repeatable):
    /// its table of each dataset is checked against the merge winners over every date of
    /// raw/, up to the offsets the sink stored. After `#`: `schema=S` (default
    /// --warehouse-schema), `name=N` (default `online`, `online2`, …) and `group=G`, the
    /// sink's consumer group (default onepipe-online-sink).
    #[arg(long = "online", env = "ONEPIPE_ONLINE", value_delimiter = ',')]
    online: Vec<String>,

    /// The schema the warehouse tables are in (unless a --warehouse value says `#schema=`).
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

    /// Memory for merging a date's raw records (e.g. 256MB, 2GB); a date larger than this
    /// is merged through spill files in --spill-dir. The process needs somewhat more.
    #[arg(long, env = "ONEPIPE_MEMORY_LIMIT", default_value = "1GiB", value_parser = parse_bytes)]
    memory_limit: usize,

    /// Folder for the decoded raw records, sort spills and clean files being read (a
    /// private folder or file inside it is removed after use); it needs free space about
    /// twice the size of the largest date.
    #[arg(long, env = "ONEPIPE_SPILL_DIR", default_value_os_t = std::env::temp_dir())]
    spill_dir: std::path::PathBuf,

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
        /// Check every date, not only those that changed since the verdicts kept under
        /// verify/{topic}/ (a new clean version, new raw records, a warehouse's values,
        /// or a verdict that was not ok).
        #[arg(long, env = "ONEPIPE_VERIFY_FULL")]
        full: bool,
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
    onepipe_core::telemetry::main_with("verifier", run(Cli::parse())).await
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stores = stores(&cli).await?;
    match cli.command {
        Command::Check {
            dataset,
            json,
            max_keys,
            full,
        } => {
            let stores = Stores { full, ..stores };
            if let Some(addr) = &cli.admin_listen {
                admin::serve_probes(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
            }
            let datasets = match dataset {
                Some(d) => vec![d],
                None => stores.registry.topic_names().await?,
            };
            let round = Round::check(&stores, &datasets, max_keys).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&round.json())?);
            } else {
                let mut out = std::io::stdout().lock();
                round.write_tables(&mut out)?;
                out.flush()?;
            }
            Ok(ExitCode::from(round.exit_code()))
        }
        Command::Serve { interval } => {
            let addr = cli.admin_listen.as_deref().unwrap_or("127.0.0.1:8099");
            serve::serve(&stores, interval, addr).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The stores the flags name, connected.
async fn stores(cli: &Cli) -> anyhow::Result<Stores> {
    let store = onepipe_core::store::open(&cli.object_store)?;
    let registry = cli.registry.connect(false)?;
    let mut warehouses = Vec::new();
    for (i, value) in cli.warehouses.iter().enumerate() {
        let spec = warehouse::parse_spec(value).map_err(|e| anyhow::anyhow!("--warehouse: {e}"))?;
        if spec.group.is_some() {
            anyhow::bail!("--warehouse: `group=` is for --online values only");
        }
        warehouses.push(Warehouse {
            name: spec.name.unwrap_or_else(|| format!("warehouse{}", i + 1)),
            db: warehouse::open(&spec.url).await?,
            schema: spec.schema.unwrap_or_else(|| cli.warehouse_schema.clone()),
        });
    }
    let mut online = Vec::new();
    for (i, value) in cli.online.iter().enumerate() {
        let spec = warehouse::parse_spec(value).map_err(|e| anyhow::anyhow!("--online: {e}"))?;
        let default_name = match i {
            0 => "online".to_string(),
            _ => format!("online{}", i + 1),
        };
        online.push(Online {
            store: Warehouse {
                name: spec.name.unwrap_or(default_name),
                db: warehouse::open(&spec.url).await?,
                schema: spec.schema.unwrap_or_else(|| cli.warehouse_schema.clone()),
            },
            group: spec
                .group
                .unwrap_or_else(|| onepipe_verifier::online::DEFAULT_GROUP.to_string()),
        });
    }
    let client_options = &cli.kafka_options.kafka_options;
    let kafka = cli.kafka_bootstrap.clone().map(|bootstrap| KafkaOptions {
        bootstrap,
        client_options: client_options.clone(),
        grace: cli.archive_grace,
    });
    let lag = cli.kafka_bootstrap.clone().map(|bootstrap| LagOptions {
        bootstrap,
        client_options: client_options.clone(),
        groups: cli.groups.clone(),
        window: cli.lag_window,
    });
    Ok(Stores {
        store,
        registry,
        warehouses,
        online,
        kafka,
        lag,
        expected: onepipe_verifier::expected::Options {
            memory_limit: cli.memory_limit,
            spill_dir: cli.spill_dir.clone(),
            part_bytes: None,
        },
        full: false,
    })
}
