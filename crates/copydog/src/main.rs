//! `copydog`: merges a topic's raw archive into its clean archive (one run, then exits; or
//! one run every `--every` until SIGTERM, where no scheduler runs it).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onepipe_client::args::RegistryArgs;
use onepipe_copydog::run::{RunOptions, RunSummary, run_topic};
use onepipe_copydog::vacuum::vacuum;
use onepipe_core::admin;
use onepipe_core::units::{parse_bytes, parse_duration};

/// copydog: turns raw/ into clean/ — every record once, in its latest state by the topic's
/// merge strategy, sorted, in versioned date folders named by numbered manifests.
///
/// Exit codes: 0 done, 1 records were rejected (committed, set aside under
/// clean/{topic}/_rejected/; pass --allow-rejects to accept), 2 failure.
#[derive(Debug, Parser)]
#[command(name = "copydog", version)]
struct Cli {
    #[command(flatten)]
    registry: RegistryArgs,

    /// Where raw/ and clean/ live: file:///path, s3://bucket/prefix.
    #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
    object_store: String,

    /// Serve /healthz, /readyz and /metrics here while the job runs (for probes).
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN")]
    admin_listen: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Merge what is new in raw/ for one topic (or every registered topic) and commit.
    Run {
        /// The topic to merge.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        topic: Option<String>,
        /// Every topic the registry lists.
        #[arg(long)]
        all: bool,
        /// Exit 0 even when some records could not be decoded.
        #[arg(long, env = "ONEPIPE_ALLOW_REJECTS")]
        allow_rejects: bool,
        /// Most rows per clean Parquet file.
        #[arg(long, env = "ONEPIPE_MAX_FILE_ROWS", default_value_t = 1_000_000)]
        max_file_rows: usize,
        /// Memory for rows being merged (e.g. 256MB, 2GB). A date larger than this is
        /// merged through spill files on local disk instead, in pieces that fit; the
        /// process needs somewhat more than this in all.
        #[arg(long, env = "ONEPIPE_MEMORY_LIMIT", default_value = "1GiB", value_parser = parse_bytes)]
        memory_limit: usize,
        /// Folder for spill files (a private folder inside it is removed after the run);
        /// it needs free space about twice the size of the largest date.
        #[arg(long, env = "ONEPIPE_SPILL_DIR", default_value_os_t = std::env::temp_dir())]
        spill_dir: std::path::PathBuf,
        /// Run again this long after each run ends (e.g. 5m), until SIGTERM or Ctrl-C, for
        /// places without a scheduler (deploy/compose.yaml). A failed run is logged and
        /// retried at the next turn; a run under way when the signal comes is finished first.
        /// Without it: one run, then exit.
        #[arg(long, env = "ONEPIPE_EVERY", value_parser = parse_duration)]
        every: Option<std::time::Duration>,
    },
    /// Turn a topic's clean archive into a Delta Lake table (clean/{topic}/_delta_log/)
    /// without rewriting data files: publishes every manifest the table does not hold yet
    /// (all of them for an archive made before the Delta log). `copydog run` does the
    /// same after each merge; this is for archives no run touches.
    Migrate {
        /// The topic whose clean archive becomes a table.
        #[arg(long)]
        topic: String,
    },
    /// Delete clean files that none of the last --keep manifests names, and copycat's
    /// claims for raw files already merged (older than --older-than too).
    Vacuum {
        /// The topic to vacuum.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        topic: Option<String>,
        /// Every topic the registry lists.
        #[arg(long)]
        all: bool,
        /// Only files older than this (s, m, h, d suffixes), so running writers are safe.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        older_than: std::time::Duration,
        /// How many of the newest manifests stay readable.
        #[arg(long, default_value_t = 10)]
        keep: usize,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    onepipe_core::telemetry::main_with("copydog", run(Cli::parse())).await
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = onepipe_core::store::open(&cli.object_store)?;
    let metrics = admin::Metrics::new();
    if let Some(addr) = &cli.admin_listen {
        admin::serve_job_admin(addr, metrics.clone())
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    }
    let registry = cli.registry.connect(false)?;
    match cli.command {
        Command::Run {
            topic,
            all: _,
            allow_rejects,
            max_file_rows,
            memory_limit,
            spill_dir,
            every,
        } => {
            let opts = RunOptions {
                allow_rejects,
                max_file_rows,
                memory_limit,
                spill_dir,
                metrics: metrics.clone(),
                ..RunOptions::default()
            };
            let Some(every) = every else {
                return run_once(&store, &registry, topic.as_deref(), &opts).await;
            };
            let stop = admin::shutdown_signal();
            tokio::pin!(stop);
            loop {
                // A run that has begun is finished, its Delta commit included, before a
                // SIGTERM is obeyed: deltalake's blocking reads must not outlive the
                // runtime. (A SIGKILL is safe too: every commit is atomic.)
                let run = run_once(&store, &registry, topic.as_deref(), &opts);
                tokio::pin!(run);
                let mut stopping = false;
                let result = tokio::select! {
                    result = &mut run => result,
                    () = &mut stop => {
                        eprintln!("copydog: stopping after the current run");
                        stopping = true;
                        run.await
                    }
                };
                if let Err(e) = result {
                    eprintln!("copydog: run failed, next try in {every:?}: {e:#}");
                }
                if stopping {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = &mut stop => return Ok(ExitCode::SUCCESS),
                }
            }
        }
        Command::Migrate { topic } => {
            let Some(m) = onepipe_archive::manifest::latest(store.as_ref(), &topic).await? else {
                anyhow::bail!("topic {topic} has no clean archive (no manifest) to migrate");
            };
            let published = onepipe_archive::delta::publish(store.clone(), &topic).await?;
            let version = published.version.unwrap_or(0);
            match published.manifests.as_slice() {
                [] => println!(
                    "clean/{topic} is a Delta table at version {version}, holding manifest {}: nothing to do",
                    m.number
                ),
                [first, .., last] => println!(
                    "clean/{topic} is a Delta table at version {version}: manifests {first} to {last} published"
                ),
                [only] => println!(
                    "clean/{topic} is a Delta table at version {version}: manifest {only} published"
                ),
            }
            if m.format < onepipe_archive::manifest::CLEAN_FORMAT {
                eprintln!(
                    "copydog: {topic}: its files are in column format {} (timestamps in milliseconds); \
                     the next `copydog run` rewrites every date in format {}",
                    m.format,
                    onepipe_archive::manifest::CLEAN_FORMAT
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Vacuum {
            topic,
            all: _,
            older_than,
            keep,
            dry_run,
        } => {
            let topics = match topic {
                Some(t) => vec![t],
                None => registry.topic_names().await?,
            };
            for topic in topics {
                let s = vacuum(&store, &topic, older_than, keep, dry_run).await?;
                for path in &s.deleted {
                    println!(
                        "{}{path}",
                        if dry_run { "would delete " } else { "deleted " }
                    );
                }
                for path in &s.claims {
                    println!(
                        "{}{path}",
                        if dry_run { "would delete " } else { "deleted " }
                    );
                }
                eprintln!(
                    "copydog: vacuum {topic}: {} file(s) and {} merged raw-file claim(s) {}, \
                     the last {} manifest(s) kept readable, {} expired Delta log entr(y/ies) removed",
                    s.deleted.len(),
                    s.claims.len(),
                    if dry_run { "to delete" } else { "deleted" },
                    s.kept_manifests,
                    s.log_entries
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One run over `topic` or every registered topic; exit code 1 when records were rejected
/// and not allowed.
async fn run_once(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    registry: &onepipe_client::SchemaRegistry,
    topic: Option<&str>,
    opts: &RunOptions,
) -> anyhow::Result<ExitCode> {
    let topics = match topic {
        Some(t) => vec![t.to_string()],
        None => registry.topic_names().await?,
    };
    let mut rejected = 0;
    for t in topics {
        let summary = run_topic(store.clone(), registry, &t, opts).await?;
        print_summary(&summary);
        rejected += summary.rejected;
    }
    if rejected > 0 && !opts.allow_rejects {
        eprintln!(
            "copydog: {rejected} record(s) could not be decoded; they are under \
             clean/<topic>/_rejected/ (pass --allow-rejects to exit 0)"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress line of one topic's run, on stderr (stdout is for `vacuum`'s list).
fn print_summary(s: &RunSummary) {
    for (date, (rows, version)) in &s.dates {
        eprintln!(
            "copydog: {} date={date}: {rows} rows in version {version}",
            s.topic
        );
    }
    match s.manifest {
        Some(n) => eprintln!(
            "copydog: {}: committed manifest {n} ({} raw files, {} records, {} rejected)",
            s.topic, s.raw_files, s.records, s.rejected
        ),
        None => eprintln!("copydog: {}: nothing new in raw/", s.topic),
    }
    match &s.delta {
        Ok(p) if !p.manifests.is_empty() => eprintln!(
            "copydog: {}: Delta table at version {} (published manifests {:?})",
            s.topic,
            p.version.unwrap_or(-1),
            p.manifests
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "copydog: {}: warning: the Delta table was not updated: {e} \
             (the manifest is committed; the next run tries again)",
            s.topic
        ),
    }
}
