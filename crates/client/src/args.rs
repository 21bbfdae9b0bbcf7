//! The flags every onepipe service spells the same way, to `#[command(flatten)]` into its
//! own: how to reach the registry (`--registry`, `--registry-token`, `--tls-ca`) and extra
//! Kafka client properties (`--kafka-option KEY=VALUE`, repeatable).
//!
//! ```
//! use clap::Parser;
//! use onepipe_client::args::{KafkaOptions, RegistryArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     registry: RegistryArgs,
//!     #[command(flatten)]
//!     kafka: KafkaOptions,
//! }
//! let cli = Cli::parse_from(["svc", "--registry-token", "t", "--kafka-option", "acks=all"]);
//! assert_eq!(cli.registry.registry, "http://127.0.0.1:8090");
//! assert_eq!(cli.kafka.kafka_options, vec![("acks".to_string(), "all".to_string())]);
//! ```

use onepipe_core::units::parse_key_value;
use rdkafka::ClientConfig;

use crate::{Error, RegistryOptions, Result, SchemaRegistry};

/// How a service reaches the registry.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// The registry's gRPC address (http:// or https://).
    #[arg(
        long,
        env = "ONEPIPE_REGISTRY",
        default_value = "http://127.0.0.1:8090"
    )]
    pub registry: String,

    /// Token for the registry when it requires one (its read or admin token).
    #[arg(long, env = "ONEPIPE_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,

    /// PEM file of the CA to trust for an https:// registry.
    #[arg(long, env = "ONEPIPE_TLS_CA")]
    pub tls_ca: Option<String>,
}

impl RegistryArgs {
    /// The client options these flags give (the CA file is read here).
    pub fn options(&self) -> Result<RegistryOptions> {
        let tls_ca_pem = match &self.tls_ca {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| Error::Connect {
                url: self.registry.clone(),
                message: format!("reading --tls-ca {path}: {e}"),
            })?),
            None => None,
        };
        Ok(RegistryOptions {
            token: self.registry_token.clone(),
            tls_ca_pem,
            ..RegistryOptions::default()
        })
    }

    /// A registry client with these flags and `watch` as given (jobs that run once need
    /// no watch stream).
    pub fn connect(&self, watch: bool) -> Result<SchemaRegistry> {
        let opts = RegistryOptions {
            watch,
            ..self.options()?
        };
        SchemaRegistry::connect(&self.registry, opts)
    }
}

/// Extra librdkafka properties for every Kafka client a service makes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaOptions {
    /// Any librdkafka property, KEY=VALUE (repeat the flag, or separate with commas in the
    /// environment), e.g. security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512,
    /// ssl.ca.location=/etc/kafka/ca.pem. Applied after the service's own settings.
    /// (`--kafka-config` is an old spelling, accepted for one release.)
    #[arg(
        long = "kafka-option",
        alias = "kafka-config",
        env = "ONEPIPE_KAFKA_OPTIONS",
        value_delimiter = ',',
        value_parser = parse_key_value
    )]
    pub kafka_options: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Sets every option on `config`.
    pub fn apply(&self, config: &mut ClientConfig) {
        for (k, v) in &self.kafka_options {
            config.set(k, v);
        }
    }
}
