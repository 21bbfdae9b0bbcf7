//! copycat's flags; the binary parses them, tests build them with `Config::parse_from`.

use std::time::Duration;

use clap::Parser;
use onepipe_client::args::{KafkaOptions, RegistryArgs};
use onepipe_core::units::{parse_bytes, parse_duration};

/// copycat: archives every record of the topics the registry lists (or of `--topics`)
/// byte for byte into `raw/` Parquet files, named by the offsets they hold, and commits
/// offsets only after the upload.
#[derive(Debug, Clone, Parser)]
#[command(name = "copycat", version)]
pub struct Config {
    /// The registry (its topics are archived unless --topics is given).
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "ONEPIPE_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// Where raw/ lives: file:///path, s3://bucket/prefix or memory://.
    #[arg(long, env = "ONEPIPE_OBJECT_STORE")]
    pub object_store: String,

    /// Kafka consumer group; replicas sharing it split the partitions.
    #[arg(long, env = "ONEPIPE_GROUP_ID", default_value = "copycat")]
    pub group_id: String,

    /// Archive the Kafka topics whose whole name matches this regex instead of the
    /// registry's list (topics starting with `__` are never archived).
    #[arg(long, env = "ONEPIPE_TOPICS")]
    pub topics: Option<String>,

    /// A file holds at most this many records.
    #[arg(long, env = "ONEPIPE_MAX_FILE_RECORDS", default_value_t = 1_000_000)]
    pub max_file_records: usize,

    /// A file holds at most this many bytes of keys, values and headers (e.g. 128MiB).
    #[arg(long, env = "ONEPIPE_MAX_FILE_BYTES", default_value = "128MiB", value_parser = parse_bytes)]
    pub max_file_bytes: usize,

    /// The record timestamps in one file span at most this long (files never span two
    /// hours of record time whatever this says), e.g. 10m.
    #[arg(long, env = "ONEPIPE_MAX_FILE_SPAN", default_value = "1h", value_parser = parse_duration)]
    pub max_file_span: Duration,

    /// Cap on bytes held in memory across partitions (open files and files being
    /// uploaded). Above it the largest open files are written early; if uploads lag,
    /// fetching pauses.
    #[arg(long, env = "ONEPIPE_MAX_BUFFER_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub max_buffer_bytes: usize,

    /// A partition that has had no new record for this long has its open file written,
    /// so quiet partitions still reach the archive.
    #[arg(long, env = "ONEPIPE_IDLE_FLUSH", default_value = "60s", value_parser = parse_duration)]
    pub idle_flush: Duration,

    /// How long a rebalance may take. Giving back partitions waits this long for their
    /// finished files to upload; uploads still running then (an object store outage)
    /// are abandoned and the next owner writes their claimed ranges. Finding where newly
    /// assigned partitions resume must end within it too, else copycat stops (a restart
    /// resumes). Keep it well under the consumer's
    /// `max.poll.interval.ms` (5 minutes unless set with --kafka-option), or the group
    /// drops this member mid-rebalance.
    #[arg(long, env = "ONEPIPE_REVOKE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub revoke_timeout: Duration,

    /// Files larger than this are uploaded in parts (multipart upload).
    #[arg(long, env = "ONEPIPE_MULTIPART_THRESHOLD", default_value = "16MiB", value_parser = parse_bytes)]
    pub multipart_threshold: usize,

    /// How often the Kafka topic list is read again for --topics.
    #[arg(long, env = "ONEPIPE_TOPIC_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub topic_refresh: Duration,

    #[command(flatten)]
    pub kafka: KafkaOptions,

    /// Address of /healthz, /readyz and /metrics; port 0 picks a free port.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8096")]
    pub admin_listen: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_env_var() {
        use clap::CommandFactory;
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|e| e.starts_with("ONEPIPE_")),
                "--{id} has no ONEPIPE_ variable"
            );
        }
    }
}
