//! Client-side helpers for producing to and consuming from onepipe topics.
//!
//! Every onepipe dataset is a Kafka topic of Avro records. Clients usually
//! hold plain JSON; [`json`] maps it onto a topic's Avro schema, reporting
//! every field that does not fit, and maps Avro values back to the same JSON.
//!
//! ```
//! use apache_avro::Schema;
//! use onepipe_client::json::{Options, encode, from_json, to_json};
//! use serde_json::json;
//!
//! let schema = Schema::parse_str(
//!     r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
//!         {"name": "id", "type": "long"},
//!         {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
//!         {"name": "note", "type": ["null", "string"], "default": null}
//!     ]}"#,
//! )
//! .unwrap();
//!
//! let order = json!({"id": 7, "placed_at": "2026-11-24T10:00:00.000Z", "note": "gift"});
//! let bytes = encode(&order, &schema, &Options::default()).unwrap();
//! assert!(!bytes.is_empty());
//!
//! let value = from_json(&order, &schema, &Options::default()).unwrap();
//! assert_eq!(to_json(&value, &schema), order);
//!
//! let errors = from_json(&json!({"id": "7"}), &schema, &Options::default()).unwrap_err();
//! let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
//! assert_eq!(
//!     messages,
//!     [
//!         r#"$.id: expected a long (64-bit), found "7""#,
//!         r#"$: missing required field "placed_at""#,
//!     ]
//! );
//! ```

pub mod args;
pub mod codec;
pub mod error;
pub mod json;
pub mod kafka;
pub mod ranges;
pub mod registry;

pub use codec::{Decoded, Deserializer, Encoded, ReaderSchema, Serializer, WriterSchema};
pub use error::{Error, Result};
pub use kafka::{Consumer, Delivery, Outgoing, Producer, Record};
pub use registry::{RegistryOptions, SchemaRegistry, TopicEvent, TopicWatch};
