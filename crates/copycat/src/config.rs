//! copycat's flags; the binary parses them, tests build them with `Config::parse_from`.

use std::time::Duration;

use clap::Parser;

/// copycat: archives every record of the topics the registry lists (or of `--topics`)
/// byte for byte into `raw/` Parquet files, named by the offsets they hold, and commits
/// offsets only after the upload.
#[derive(Debug, Clone, Parser)]
#[command(name = "copycat", version)]
pub struct Config {
    /// The registry's gRPC address; the topics it lists are archived (unless --topics).
    #[arg(
        long,
        env = "ONEPIPE_REGISTRY",
        default_value = "http://127.0.0.1:8090"
    )]
    pub registry: String,

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

    /// Files larger than this are uploaded in parts (multipart upload).
    #[arg(long, env = "ONEPIPE_MULTIPART_THRESHOLD", default_value = "16MiB", value_parser = parse_bytes)]
    pub multipart_threshold: usize,

    /// How often the Kafka topic list is read again for --topics.
    #[arg(long, env = "ONEPIPE_TOPIC_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub topic_refresh: Duration,

    /// Extra librdkafka consumer properties, KEY=VALUE (repeat, or comma-separated in
    /// the environment), e.g. security.protocol=SASL_SSL or session.timeout.ms=10000.
    #[arg(long = "kafka-option", env = "ONEPIPE_KAFKA_OPTIONS", value_delimiter = ',', value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,

    /// Address of /healthz, /readyz and /metrics; port 0 picks a free port.
    #[arg(long, env = "ONEPIPE_ADMIN_LISTEN", default_value = "127.0.0.1:8096")]
    pub admin_listen: String,
}

/// `500ms`, `30s`, `5m`, `2h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s, 5m or 2h"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" | "min" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!("{s:?}: unknown unit {other:?}; use ms, s, m or h")),
    }
}

/// A byte count: `1048576`, `64KiB`, `128MiB`, `1GiB` (also `k`, `M`, `G`, powers of 1024).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 4096, 64KiB, 128MiB or 1GiB"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(parse_bytes("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("1TiB").is_err());
    }

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
