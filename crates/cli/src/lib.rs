//! `onepipe`, the command line front end: schemas and topics over the registry's gRPC
//! API, Kafka topic creation, and the raw archive (`replay`, `archive check`). The commands write to any `Write`, so tests run them
//! in-process.
//!
//! ```no_run
//! # async fn f() -> onepipe_cli::Result<()> {
//! use clap::Parser;
//! let cli = onepipe_cli::Cli::parse_from(["onepipe", "topic", "list"]);
//! let code = onepipe_cli::run(cli, &mut std::io::stdout()).await?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod query;
pub mod replay;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use onepipe_client::args::KafkaOptions;
use onepipe_core::metadata::{
    Check, Compatibility, MergeStrategy, TopicMetadata, validate_topic_name,
};
use onepipe_proto::registry::v1 as pb;
use onepipe_proto::registry::v1::registry_client::RegistryClient;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tonic::Request;
use tonic::transport::Channel;

pub use crate::error::{Error, Result};

/// onepipe: register schemas, provision datasets (Kafka topic + schema + metadata), replay
/// and check the raw archive.
#[derive(Debug, Parser)]
#[command(name = "onepipe", version)]
pub struct Cli {
    /// The registry's gRPC address.
    #[arg(
        long,
        global = true,
        env = "ONEPIPE_REGISTRY",
        default_value = "http://127.0.0.1:8090"
    )]
    pub registry: String,

    /// Token for the registry: its admin token for writes (schema register, topic
    /// create and delete), or its read token for reads. (`--admin-token` and
    /// ONEPIPE_REGISTRY_ADMIN_TOKEN are old spellings, accepted for one release.)
    #[arg(
        long,
        alias = "admin-token",
        global = true,
        env = "ONEPIPE_REGISTRY_TOKEN",
        hide_env_values = true
    )]
    pub registry_token: Option<String>,

    /// PEM file of the CA to trust when the registry URL is https:// (TLS).
    #[arg(long, global = true, env = "ONEPIPE_TLS_CA")]
    pub tls_ca: Option<String>,

    #[command(flatten)]
    pub kafka: KafkaOptions,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Avro schemas: register, get, check compatibility, list.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Datasets: create (Kafka topic + schema + metadata in one step), describe, list, delete.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce archived records (raw/) back into a topic, byte for byte.
    Replay(Box<ReplayArgs>),
    /// The archives: check raw/ for gaps and overlaps; list the current clean files.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// SQL over the clean archive: every topic with a clean table is a table (lower-cased,
    /// other characters than a-z, 0-9 and _ as _), reading only the files of its Delta
    /// table's current version (or of its newest manifest, before copydog has published
    /// one).
    Query {
        /// The SQL, e.g. "SELECT count(*) FROM page_views".
        sql: String,
        /// Where clean/ lives: file:///path, s3://bucket/prefix.
        #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
        object_store: String,
        /// Only register these topics as tables (default: all).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Time travel: read each table as it was at this Delta version (with one
        /// --topic) or time (RFC 3339, or a date for its midnight UTC): the newest
        /// version committed at or before it.
        #[arg(long, value_name = "VERSION|TIMESTAMP")]
        as_of: Option<onepipe_archive::delta::AsOf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: query::Format,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The archived topic.
    #[arg(long)]
    pub topic: String,
    /// The topic to produce into; each record goes to the partition it came from, so it
    /// needs at least as many partitions.
    #[arg(long)]
    pub to_topic: String,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// First offset to replay (inclusive).
    #[arg(long, conflicts_with_all = ["from_time", "to_time"])]
    pub from_offset: Option<i64>,
    /// Last offset to replay (inclusive).
    #[arg(long, conflicts_with_all = ["from_time", "to_time"])]
    pub to_offset: Option<i64>,
    /// Records with timestamps from this time (inclusive): RFC 3339 or ms since the epoch.
    #[arg(long, value_parser = parse_time)]
    pub from_time: Option<i64>,
    /// Records with timestamps before this time (exclusive): RFC 3339 or ms since the epoch.
    #[arg(long, value_parser = parse_time)]
    pub to_time: Option<i64>,
    /// Where raw/ lives: file:///path, s3://bucket/prefix or memory://.
    #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
    pub object_store: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "ONEPIPE_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: String,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// List gaps and overlaps among a topic's raw files, per partition; exit 1 if any.
    Check {
        #[arg(long)]
        topic: String,
        /// Where raw/ lives: file:///path, s3://bucket/prefix or memory://.
        #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
        object_store: String,
    },
    /// Print the clean files of a topic's current Delta version (or of its newest
    /// manifest, before copydog has published one), one per line, relative to the
    /// object-store root: what any engine should read.
    Files {
        #[arg(long)]
        topic: String,
        /// Only this date (YYYY-MM-DD).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// The files of an older Delta version, or of the version current at a time
        /// (RFC 3339, or a date for its midnight UTC).
        #[arg(long, value_name = "VERSION|TIMESTAMP")]
        as_of: Option<onepipe_archive::delta::AsOf>,
        /// Where clean/ lives: file:///path, s3://bucket/prefix.
        #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
        object_store: String,
    },
}

fn parse_time(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|error| Error::Time {
            text: s.to_string(),
            error,
        })
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a schema under a subject; prints its global id and version.
    Register {
        subject: String,
        /// The Avro schema (.avsc, JSON).
        #[arg(long)]
        file: String,
    },
    /// Print a schema by global id, or a subject's version (latest by default).
    Get {
        /// The subject (omit with --id).
        subject: Option<String>,
        #[arg(long, conflicts_with = "subject")]
        id: Option<i64>,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Would this schema be accepted as the subject's next version? Exit 1 if not.
    Check {
        subject: String,
        #[arg(long)]
        file: String,
        /// Check against this version only (default: the versions the level names).
        #[arg(long)]
        version: Option<i64>,
    },
    /// List subjects, or one subject's versions.
    List { subject: Option<String> },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create the Kafka topic (if absent), register the schema under TOPIC-value and store the metadata.
    Create(Box<CreateTopic>),
    /// Show a topic's metadata.
    Describe {
        topic: String,
        /// Print JSON (DESIGN.md's metadata document).
        #[arg(long)]
        json: bool,
    },
    /// List topics the registry knows.
    List,
    /// Delete a topic's metadata from the registry (the Kafka topic and archives stay).
    Delete { topic: String },
}

#[derive(Debug, Args)]
pub struct CreateTopic {
    pub topic: String,
    /// The Avro schema of the topic's values (.avsc, JSON).
    #[arg(long)]
    pub schema_file: String,
    /// Fields whose values identify one entity (comma-separated field paths).
    #[arg(long, value_delimiter = ',', required = true)]
    pub unique_key: Vec<String>,
    /// Fields a date partition is sorted by.
    #[arg(long, value_delimiter = ',')]
    pub sort_key: Vec<String>,
    /// A timestamp field that decides the date partition (default: the Kafka timestamp).
    #[arg(long)]
    pub partition_time: Option<String>,
    /// first_seen, max_by:FIELD or vector_clock:FIELD.
    #[arg(long, default_value = "first_seen")]
    pub merge: MergeStrategy,
    /// Checks the verifier compares: sum:F, min:F, max:F, row_checksum (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub checks: Vec<Check>,
    /// Tombstones (a key with no value) delete that key in online tables (online-sink);
    /// without it they are bad records there.
    #[arg(long)]
    pub deletes: bool,
    /// Compatibility level of the topic's subject.
    #[arg(long, default_value = "BACKWARD")]
    pub compatibility: Compatibility,
    #[arg(long, default_value = "")]
    pub owner: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Partitions of a new Kafka topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of a new Kafka topic. The default, -1, takes the brokers' own
    /// `default.replication.factor` (as `kafka-topics.sh` does), so it works on a one-broker
    /// cluster and follows a production cluster's policy; give a number to override it.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,
    /// Kafka bootstrap servers.
    #[arg(long, env = "ONEPIPE_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: String,
}

/// Runs one command, writing its output to `out`; returns the process exit code.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<i32> {
    // The archive commands need no registry.
    let command = match cli.command {
        Command::Replay(args) => return replay(*args, &cli.kafka, out).await,
        Command::Query {
            sql,
            object_store,
            topics,
            as_of,
            format,
        } => {
            let as_of = as_of.unwrap_or(onepipe_archive::delta::AsOf::Latest);
            query::run(&sql, &object_store, &topics, as_of, format, out).await?;
            return Ok(0);
        }
        Command::Archive(command) => return archive(command, out).await,
        Command::Schema(command) => Registered::Schema(command),
        Command::Topic(command) => Registered::Topic(command),
    };
    let mut client = RegistryClient::new(connect(&cli.registry, cli.tls_ca.as_deref()).await?);
    let token = cli
        .registry_token
        .clone()
        .or_else(|| std::env::var("ONEPIPE_REGISTRY_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty());
    match command {
        Registered::Schema(command) => schema(command, &mut client, token.as_deref(), out).await,
        Registered::Topic(command) => {
            topic(command, &mut client, token.as_deref(), &cli.kafka, out).await?;
            Ok(0)
        }
    }
}

/// The commands that talk to the registry.
enum Registered {
    Schema(SchemaCommand),
    Topic(TopicCommand),
}

async fn archive(command: ArchiveCommand, out: &mut impl Write) -> Result<i32> {
    match command {
        ArchiveCommand::Check {
            topic,
            object_store,
        } => {
            let store = onepipe_core::store::open(&object_store)?;
            let report = onepipe_archive::check::check(store.as_ref(), &topic).await?;
            write!(out, "{report}")?;
            Ok(if report.is_clean() { 0 } else { 1 })
        }
        ArchiveCommand::Files {
            topic,
            date,
            as_of,
            object_store,
        } => {
            let store = onepipe_core::store::open(&object_store)?;
            let as_of = as_of.unwrap_or(onepipe_archive::delta::AsOf::Latest);
            let Some(view) = query::clean_files(&store, &topic, as_of).await? else {
                return Err(Error::NoManifest { topic });
            };
            let mut printed = 0;
            for (d, files) in &view.dates {
                if date.is_some_and(|want| want != *d) {
                    continue;
                }
                for f in files {
                    writeln!(out, "{f}")?;
                    printed += 1;
                }
            }
            if let Some(date) = date
                && printed == 0
            {
                return Err(Error::NoDate {
                    what: view.what,
                    topic,
                    date,
                });
            }
            Ok(0)
        }
    }
}

async fn schema(
    command: SchemaCommand,
    client: &mut RegistryClient<Channel>,
    token: Option<&str>,
    out: &mut impl Write,
) -> Result<i32> {
    match command {
        SchemaCommand::Register { subject, file } => {
            let schema = read_file(&file)?;
            let v = client
                .register_schema(authorized(
                    pb::RegisterSchemaRequest { subject, schema },
                    token,
                ))
                .await
                .map_err(Error::Registry)?
                .into_inner();
            writeln!(
                out,
                "subject {} version {} id {}",
                v.subject, v.version, v.id
            )?;
        }
        SchemaCommand::Get {
            subject,
            id,
            version,
        } => {
            let schema = match (subject, id) {
                (_, Some(id)) => {
                    client
                        .get_schema(pb::GetSchemaRequest { id })
                        .await
                        .map_err(Error::Registry)?
                        .into_inner()
                        .schema
                }
                (Some(subject), None) => {
                    client
                        .get_subject_version(pb::GetSubjectVersionRequest {
                            subject,
                            version: version.unwrap_or(0),
                            include_deleted: false,
                        })
                        .await
                        .map_err(Error::Registry)?
                        .into_inner()
                        .schema
                }
                (None, None) => return Err(Error::NoSubject),
            };
            writeln!(out, "{schema}")?;
        }
        SchemaCommand::Check {
            subject,
            file,
            version,
        } => {
            let schema = read_file(&file)?;
            let r = client
                .check_compatibility(pb::CheckCompatibilityRequest {
                    subject,
                    schema,
                    version: version.unwrap_or(0),
                })
                .await
                .map_err(Error::Registry)?
                .into_inner();
            if r.compatible {
                writeln!(out, "compatible")?;
            } else {
                writeln!(out, "incompatible:")?;
                for m in r.messages {
                    writeln!(out, "  {m}")?;
                }
                return Ok(1);
            }
        }
        SchemaCommand::List { subject: None } => {
            let r = client
                .list_subjects(pb::ListSubjectsRequest::default())
                .await
                .map_err(Error::Registry)?;
            for s in r.into_inner().subjects {
                writeln!(out, "{s}")?;
            }
        }
        SchemaCommand::List {
            subject: Some(subject),
        } => {
            let r = client
                .list_versions(pb::ListVersionsRequest {
                    subject,
                    include_deleted: false,
                })
                .await
                .map_err(Error::Registry)?;
            for v in r.into_inner().versions {
                writeln!(out, "{v}")?;
            }
        }
    }
    Ok(0)
}

async fn topic(
    command: TopicCommand,
    client: &mut RegistryClient<Channel>,
    token: Option<&str>,
    kafka: &KafkaOptions,
    out: &mut impl Write,
) -> Result<()> {
    match command {
        TopicCommand::Create(c) => create_topic(client, *c, token, kafka, out).await?,
        TopicCommand::Describe { topic, json } => {
            let m = client
                .get_topic(pb::GetTopicRequest { topic })
                .await
                .map_err(Error::Registry)?
                .into_inner();
            let meta = from_pb(m)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&meta)?)?;
            } else {
                describe(&meta, out)?;
            }
        }
        TopicCommand::List => {
            let r = client
                .list_topics(pb::ListTopicsRequest {})
                .await
                .map_err(Error::Registry)?;
            for t in r.into_inner().topics {
                writeln!(
                    out,
                    "{}\t{}\tunique_key={}",
                    t.topic,
                    t.subject,
                    t.unique_key.join(",")
                )?;
            }
        }
        TopicCommand::Delete { topic } => {
            client
                .delete_topic(authorized(
                    pb::GetTopicRequest {
                        topic: topic.clone(),
                    },
                    token,
                ))
                .await
                .map_err(Error::Registry)?;
            writeln!(
                out,
                "deleted the metadata of {topic} (the Kafka topic and its archives are kept)"
            )?;
        }
    }
    Ok(())
}

async fn replay(args: ReplayArgs, kafka: &KafkaOptions, out: &mut impl Write) -> Result<i32> {
    let store = onepipe_core::store::open(&args.object_store)?;
    let opts = crate::replay::ReplayOptions {
        topic: args.topic,
        to_topic: args.to_topic,
        partition: args.partition,
        from_offset: args.from_offset,
        to_offset: args.to_offset,
        from_time: args.from_time,
        to_time: args.to_time,
    };
    let mut producer = ClientConfig::new();
    producer.set("bootstrap.servers", &args.kafka_bootstrap);
    kafka.apply(&mut producer);
    let bar = indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} records {per_sec} eta {eta}",
    )?);
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let summary = crate::replay::replay(store.as_ref(), producer, &opts, &mut progress).await?;
    bar.finish_and_clear();
    writeln!(
        out,
        "replayed {} records from {} files of {} into {}",
        summary.records, summary.files, opts.topic, opts.to_topic
    )?;
    if summary.duplicates_skipped > 0 {
        writeln!(
            out,
            "skipped {} offsets held by more than one file (see `onepipe archive check --topic {}`)",
            summary.duplicates_skipped, opts.topic
        )?;
    }
    Ok(0)
}

async fn create_topic(
    client: &mut RegistryClient<Channel>,
    c: CreateTopic,
    token: Option<&str>,
    kafka: &KafkaOptions,
    out: &mut impl Write,
) -> Result<()> {
    validate_topic_name(&c.topic)?;
    let schema = read_file(&c.schema_file)?;
    let mut meta = TopicMetadata::new(c.topic.clone(), c.unique_key);
    meta.sort_key = c.sort_key;
    meta.partition_time = c.partition_time;
    meta.merge = c.merge;
    meta.checks = c.checks;
    meta.deletes = c.deletes;
    meta.compatibility = c.compatibility;
    meta.owner = c.owner;
    meta.description = c.description;
    meta.validate()?;
    // Checked here too, so that a refused dataset leaves no schema or Kafka topic behind.
    let parsed = onepipe_schema::parse(&schema).map_err(|error| Error::SchemaFile {
        path: c.schema_file.clone(),
        error,
    })?;
    let problems = onepipe_schema::metadata_problems(&meta, &parsed);
    if !problems.is_empty() {
        return Err(Error::InvalidMetadata { problems });
    }

    // The schema first: metadata is checked against it. Then Kafka, then the metadata,
    // so a dataset is only announced once it can take records.
    let v = client
        .register_schema(authorized(
            pb::RegisterSchemaRequest {
                subject: meta.subject.clone(),
                schema,
            },
            token,
        ))
        .await
        .map_err(Error::Registry)?
        .into_inner();
    writeln!(
        out,
        "schema: subject {} version {} id {}",
        v.subject, v.version, v.id
    )?;
    client
        .set_compatibility(authorized(
            pb::SetCompatibilityRequest {
                subject: meta.subject.clone(),
                level: meta.compatibility.to_string(),
            },
            token,
        ))
        .await
        .map_err(Error::Registry)?;

    let created = ensure_kafka_topic(
        &c.kafka_bootstrap,
        kafka,
        &c.topic,
        c.partitions,
        c.replication_factor,
    )
    .await?;
    writeln!(
        out,
        "kafka: topic {} {}",
        c.topic,
        if created { "created" } else { "already exists" }
    )?;

    let pb_meta = to_pb(&meta);
    match client
        .create_topic(authorized(pb_meta.clone(), token))
        .await
    {
        Ok(_) => writeln!(out, "metadata: stored")?,
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            let existing = from_pb(
                client
                    .get_topic(pb::GetTopicRequest {
                        topic: c.topic.clone(),
                    })
                    .await
                    .map_err(Error::Registry)?
                    .into_inner(),
            )?;
            if existing != meta {
                return Err(Error::MetadataDiffers { topic: c.topic });
            }
            writeln!(out, "metadata: already stored, unchanged")?;
        }
        Err(s) => return Err(Error::Registry(s)),
    }
    Ok(())
}

/// Creates the topic unless it exists; true when it was created.
async fn ensure_kafka_topic(
    bootstrap: &str,
    kafka: &KafkaOptions,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<bool> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    kafka.apply(&mut config);
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(Error::KafkaAdmin)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(replication),
            )],
            &opts,
        )
        .await
        .map_err(|error| Error::CreateTopic {
            topic: topic.to_string(),
            bootstrap: bootstrap.to_string(),
            error: Box::new(error),
        })?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((topic, code))) => Err(Error::TopicRefused {
            topic,
            bootstrap: bootstrap.to_string(),
            code,
        }),
        None => Err(Error::NoAnswer {
            topic: topic.to_string(),
        }),
    }
}

fn describe(m: &TopicMetadata, out: &mut impl Write) -> std::io::Result<()> {
    let checks: Vec<String> = m
        .effective_checks()
        .iter()
        .map(ToString::to_string)
        .collect();
    writeln!(out, "topic           {}", m.topic)?;
    writeln!(out, "subject         {}", m.subject)?;
    writeln!(out, "owner           {}", m.owner)?;
    writeln!(out, "description     {}", m.description)?;
    writeln!(out, "compatibility   {}", m.compatibility)?;
    writeln!(out, "unique_key      {}", m.unique_key.join(", "))?;
    writeln!(out, "sort_key        {}", m.sort_key.join(", "))?;
    writeln!(
        out,
        "partition_time  {}",
        m.partition_time.as_deref().unwrap_or("(kafka timestamp)")
    )?;
    writeln!(out, "merge           {}", m.merge)?;
    writeln!(
        out,
        "deletes         {}",
        if m.deletes { "yes" } else { "no" }
    )?;
    writeln!(out, "checks          {}", checks.join(", "))
}

/// A channel to the registry; TLS when the URL is https://, trusting `--tls-ca`.
async fn connect(url: &str, tls_ca: Option<&str>) -> Result<Channel> {
    let mut endpoint =
        Channel::from_shared(url.to_string()).map_err(|error| Error::RegistryUrl {
            url: url.to_string(),
            error,
        })?;
    if url.starts_with("https://") {
        let Some(ca) = tls_ca else {
            return Err(Error::NoTlsCa {
                url: url.to_string(),
            });
        };
        let pem = read_file(ca)?;
        onepipe_core::tls::install_provider();
        endpoint = endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
            .map_err(Error::Tls)?;
    }
    endpoint.connect().await.map_err(|error| Error::Connect {
        url: url.to_string(),
        error,
    })
}

fn authorized<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn read_file(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| Error::ReadFile {
        path: path.to_string(),
        error,
    })
}

fn to_pb(m: &TopicMetadata) -> pb::TopicMetadata {
    pb::TopicMetadata::from(m)
}

fn from_pb(m: pb::TopicMetadata) -> Result<TopicMetadata> {
    Ok(TopicMetadata::try_from(m)?)
}
