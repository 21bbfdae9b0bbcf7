//! Records to Kafka bytes and back: [`Serializer`] and [`Deserializer`].
//!
//! A value is the Confluent wire format (magic byte, 4-byte schema id, Avro datum); a
//! key is the compact JSON array of the record's unique-key fields (DESIGN.md).

use std::io::Read;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use onepipe_core::metadata::TopicMetadata;
use onepipe_core::wire;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::json::{self, FieldError, Mapper, Options};
use crate::ranges;
use crate::registry::{RegisteredSchema, SchemaRegistry};

/// A record ready for Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The unique-key fields as a compact JSON array (`["acct-7",42]`).
    pub key: Vec<u8>,
    /// Magic byte, schema id, Avro datum.
    pub value: Vec<u8>,
}

/// Encodes records for topics, looking their schemas up in the registry.
#[derive(Clone)]
pub struct Serializer {
    registry: SchemaRegistry,
    options: Options,
}

impl Serializer {
    pub fn new(registry: SchemaRegistry, options: Options) -> Self {
        Serializer { registry, options }
    }

    /// What records of `topic` are written with: the latest schema, or `version` when pinned.
    /// Fetch it once and encode many records with it.
    pub async fn writer(&self, topic: &str, version: Option<i64>) -> Result<WriterSchema> {
        let t = self.registry.topic(topic).await?;
        let schema = match version {
            None => t.latest.clone(),
            Some(v) if v == t.latest.version => t.latest.clone(),
            Some(v) => self.registry.version(&t.metadata.subject, v).await?,
        };
        Ok(WriterSchema::new(
            t.metadata.clone(),
            schema,
            self.options.clone(),
        ))
    }

    /// Validates and encodes a plain-JSON record with the topic's latest schema.
    pub async fn serialize_json(&self, topic: &str, record: &Json) -> Result<Encoded> {
        self.writer(topic, None)
            .await?
            .encode_json(record)
            .map_err(Error::Invalid)
    }

    /// Validates and encodes an Avro value with the topic's latest schema.
    pub async fn serialize_value(&self, topic: &str, record: Value) -> Result<Encoded> {
        self.writer(topic, None).await?.encode_value(record)
    }

    /// Validates and encodes a serde type with the topic's latest schema (through its JSON
    /// form, so the JSON mapping applies: bytes are base64 strings, timestamps RFC 3339 or
    /// integers).
    pub async fn serialize<T: serde::Serialize>(&self, topic: &str, record: &T) -> Result<Encoded> {
        self.writer(topic, None).await?.encode(record)
    }
}

/// One topic's schema version plus its unique key: encodes records without I/O.
#[derive(Debug, Clone)]
pub struct WriterSchema {
    metadata: TopicMetadata,
    schema: Arc<RegisteredSchema>,
    options: Options,
}

impl WriterSchema {
    /// The registry checks that the unique-key fields exist in every schema of a topic;
    /// a record where one cannot be read is refused when encoded.
    pub fn new(metadata: TopicMetadata, schema: Arc<RegisteredSchema>, options: Options) -> Self {
        WriterSchema {
            metadata,
            schema,
            options,
        }
    }

    pub fn metadata(&self) -> &TopicMetadata {
        &self.metadata
    }

    /// The registered schema (subject, version, id) records are written with.
    pub fn registered(&self) -> &RegisteredSchema {
        &self.schema
    }

    /// An encoder for many records: the schema's named types are resolved once.
    pub fn encoder(&self) -> Encoder<'_> {
        let mapper = Mapper::new(&self.schema.schema);
        // Values reach the writer only through `from_json` or `Value::resolve`, which both
        // check them against the schema, so the writer's own validation pass is skipped.
        let builder = GenericDatumWriter::builder(&self.schema.schema).validate(false);
        let writer = match mapper.resolved() {
            Some(resolved) => builder.resolved_schemata(resolved.clone()).build(),
            None => builder.build(),
        };
        Encoder {
            ws: self,
            mapper,
            writer,
        }
    }

    /// Validates the plain-JSON record and encodes it; every field error is returned.
    pub fn encode_json(&self, record: &Json) -> Result<Encoded, Vec<FieldError>> {
        self.encoder().encode_json(record)
    }

    /// Validates an Avro value (resolving it into the schema, so an `Int` for a `long`
    /// field or a bare value for an optional field is accepted; timestamps and dates must
    /// be in the range of [`ranges`]) and encodes it.
    pub fn encode_value(&self, record: Value) -> Result<Encoded> {
        self.encoder().encode_value(record)
    }

    /// Encodes a serde type through its JSON form (see [`Serializer::serialize`]).
    pub fn encode<T: serde::Serialize>(&self, record: &T) -> Result<Encoded> {
        let json = serde_json::to_value(record)
            .map_err(|e| invalid("$", format!("cannot be turned into JSON: {e}")))?;
        self.encode_json(&json).map_err(Error::Invalid)
    }
}

/// Encodes records of one [`WriterSchema`]; make one per batch.
pub struct Encoder<'w> {
    ws: &'w WriterSchema,
    mapper: Mapper<'w>,
    writer: Result<GenericDatumWriter<'w>, apache_avro::Error>,
}

impl Encoder<'_> {
    /// See [`WriterSchema::encode_json`].
    pub fn encode_json(&self, record: &Json) -> Result<Encoded, Vec<FieldError>> {
        let value = self.mapper.from_json(record, &self.ws.options)?;
        self.finish(&value).map_err(|e| match e {
            Error::Invalid(errors) => errors,
            other => vec![FieldError {
                path: "$".to_string(),
                message: other.to_string(),
            }],
        })
    }

    /// See [`WriterSchema::encode_value`].
    pub fn encode_value(&self, record: Value) -> Result<Encoded> {
        let value = record
            .resolve(&self.ws.schema.schema)
            .map_err(|e| invalid("$", format!("the value does not fit the schema: {e}")))?;
        // `from_json` checks the range as it converts; a value built in code is checked here.
        let out_of_range = ranges::out_of_range(&value);
        if !out_of_range.is_empty() {
            return Err(Error::Invalid(out_of_range));
        }
        self.finish(&value)
    }

    fn finish(&self, value: &Value) -> Result<Encoded> {
        let unique_key = &self.ws.metadata.unique_key;
        let mut parts = Vec::with_capacity(unique_key.len());
        for path in unique_key {
            let part = self
                .mapper
                .field_json(value, path)
                .map_err(|e| invalid("$", format!("unique key field {e}")))?;
            parts.push(part);
        }
        let writer = self
            .writer
            .as_ref()
            .map_err(|e| invalid("$", format!("the schema cannot be used: {e}")))?;
        let mut framed = wire::frame(self.ws.schema.id, &[]);
        writer
            .write_value_ref(&mut framed, value)
            .map_err(|e| invalid("$", format!("cannot encode the value: {e}")))?;
        Ok(Encoded {
            key: wire::encode_key(&parts),
            value: framed,
        })
    }
}

fn invalid(path: &str, message: String) -> Error {
    Error::Invalid(vec![FieldError {
        path: path.to_string(),
        message,
    }])
}

/// Which schema a [`Deserializer`] hands records out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReaderSchema {
    /// The topic's latest version (re-read from the registry as it changes).
    #[default]
    Latest,
    /// A pinned version of the topic's subject.
    Version(i64),
    /// Each record in the schema it was written with (no resolution).
    Writer,
}

/// A decoded record.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The id of the schema the record was written with.
    pub writer_schema_id: u32,
    /// The schema `value` is in (the reader's).
    pub schema: Arc<Schema>,
    pub value: Value,
}

impl Decoded {
    /// The record as plain JSON (the same mapping producers use).
    pub fn to_json(&self) -> Json {
        json::to_json(&self.value, &self.schema)
    }
}

/// Decodes wire-format values, resolving every record into the reader's schema.
#[derive(Clone)]
pub struct Deserializer {
    registry: SchemaRegistry,
    reader: ReaderSchema,
}

impl Deserializer {
    pub fn new(registry: SchemaRegistry, reader: ReaderSchema) -> Self {
        Deserializer { registry, reader }
    }

    /// Decodes one Kafka value of `topic`. Bad magic byte, short header, unknown schema
    /// id, a datum that does not parse or is followed by stray bytes, and a writer
    /// schema that cannot be resolved into the reader's all give typed errors.
    pub async fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Decoded> {
        let (id, datum) = wire::unframe(bytes)?;
        let writer = self.registry.schema_by_id(id).await?;
        let reader = match self.reader {
            ReaderSchema::Writer => None,
            ReaderSchema::Latest => {
                let t = self.registry.topic(topic).await?;
                Some((t.latest.id, Arc::new(t.latest.schema.clone())))
            }
            ReaderSchema::Version(v) => {
                let t = self.registry.topic(topic).await?;
                let r = self.registry.version(&t.metadata.subject, v).await?;
                Some((r.id, self.registry.schema_by_id(r.id).await?))
            }
        };
        let reader = reader.filter(|(reader_id, _)| *reader_id != id);
        let value =
            decode(&writer, reader.as_ref().map(|(_, s)| s.as_ref()), datum).map_err(|e| {
                Error::Decode {
                    schema_id: id,
                    reason: Box::new(e),
                }
            })?;
        Ok(Decoded {
            writer_schema_id: id,
            schema: reader.map_or(writer, |(_, s)| s),
            value,
        })
    }
}

/// Reads one datum written with `writer`, resolved into `reader` when given; the
/// whole input must be used.
pub fn decode(writer: &Schema, reader: Option<&Schema>, datum: &[u8]) -> Result<Value> {
    DatumDecoder::new(writer, reader)?.decode(datum)
}

/// Decodes many datums of one writer schema (resolved into one reader schema) without
/// resolving the schemas again for each.
pub struct DatumDecoder<'s> {
    reader: apache_avro::reader::datum::GenericDatumReader<'s>,
}

impl<'s> DatumDecoder<'s> {
    pub fn new(writer: &'s Schema, reader: Option<&'s Schema>) -> Result<Self> {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(writer)
            .maybe_reader_schema(reader)
            .build()
            .map_err(Error::IncompatibleSchemas)?;
        Ok(DatumDecoder { reader })
    }

    /// See [`decode`].
    pub fn decode(&self, datum: &[u8]) -> Result<Value> {
        let mut input = Input {
            rest: datum,
            ran_out: false,
        };
        let value = self.reader.read_value(&mut input);
        // apache-avro reads a union index, boolean or string cut off by the end of the
        // input as null; a datum that needed more bytes than it has is truncated.
        if input.ran_out {
            return Err(Error::TruncatedDatum { len: datum.len() });
        }
        let value = value.map_err(|error| Error::BadDatum {
            len: datum.len(),
            error,
        })?;
        if !input.rest.is_empty() {
            return Err(Error::StrayBytes {
                stray: input.rest.len(),
                read: datum.len() - input.rest.len(),
                len: datum.len(),
            });
        }
        Ok(value)
    }
}

/// The datum being read, remembering whether the decoder asked for bytes past its end.
struct Input<'a> {
    rest: &'a [u8],
    ran_out: bool,
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.ran_out = true;
        }
        self.rest.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn writer(schema: &str, unique_key: &[&str]) -> WriterSchema {
        let schema = Schema::parse_str(schema).unwrap();
        let metadata = TopicMetadata::new("t", unique_key.iter().map(|s| s.to_string()).collect());
        WriterSchema::new(
            metadata,
            Arc::new(RegisteredSchema {
                subject: "t-value".into(),
                version: 1,
                id: 7,
                schema,
            }),
            Options::default(),
        )
    }

    const ORDER: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"long"},
        {"name":"shop","type":{"type":"record","name":"Shop","fields":[{"name":"code","type":"string"}]}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"ref","type":["null","Shop"],"default":null}
    ]}"#;

    #[test]
    fn key_is_the_unique_key_fields_as_json() {
        let w = writer(ORDER, &["shop.code", "id", "at", "ref.code"]);
        let e = w
            .encode_json(&json!({"id": 42, "shop": {"code": "acct-7"}, "at": 0}))
            .unwrap();
        assert_eq!(
            String::from_utf8(e.key).unwrap(),
            r#"["acct-7",42,"1970-01-01T00:00:00.000Z",null]"#
        );
        assert_eq!(&e.value[..5], &[0, 0, 0, 0, 7]);
    }

    #[test]
    fn json_and_value_inputs_give_the_same_bytes() {
        let w = writer(ORDER, &["id"]);
        let from_json = w
            .encode_json(&json!({"id": 1, "shop": {"code": "x"}, "at": "1970-01-01T00:00:01Z"}))
            .unwrap();
        let value = Value::Record(vec![
            ("id".into(), Value::Int(1)),
            (
                "shop".into(),
                Value::Record(vec![("code".into(), Value::String("x".into()))]),
            ),
            ("at".into(), Value::TimestampMillis(1000)),
            ("ref".into(), Value::Null),
        ]);
        assert_eq!(w.encode_value(value).unwrap(), from_json);
    }

    #[test]
    fn serde_types_go_through_the_json_mapping() {
        #[derive(serde::Serialize)]
        struct Shop {
            code: String,
        }
        #[derive(serde::Serialize)]
        struct Order {
            id: i64,
            shop: Shop,
            at: String,
        }
        let w = writer(ORDER, &["id"]);
        let e = w
            .encode(&Order {
                id: 3,
                shop: Shop { code: "s".into() },
                at: "2026-11-24T00:00:00Z".into(),
            })
            .unwrap();
        assert_eq!(e.key, b"[3]");
        let bad = w.encode(&json!({"id": "3"})).unwrap_err();
        let messages: Vec<String> = bad
            .field_errors()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(messages.contains(&r#"$.id: expected a long (64-bit), found "3""#.to_string()));
    }

    #[test]
    fn value_that_does_not_fit_is_refused() {
        let w = writer(ORDER, &["id"]);
        let err = w
            .encode_value(Value::Record(vec![(
                "id".into(),
                Value::String("x".into()),
            )]))
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_are_refused_with_their_path() {
        let w = writer(ORDER, &["id"]);
        let order = |at: Value| {
            Value::Record(vec![
                ("id".into(), Value::Long(1)),
                (
                    "shop".into(),
                    Value::Record(vec![("code".into(), Value::String("x".into()))]),
                ),
                ("at".into(), at),
                ("ref".into(), Value::Null),
            ])
        };
        let last = 253_402_300_799_999;
        assert!(w.encode_value(order(Value::TimestampMillis(last))).is_ok());
        assert!(
            w.encode_value(order(Value::TimestampMillis(-62_135_596_800_000)))
                .is_ok()
        );
        for at in [last + 1, -62_135_596_800_001, i64::MAX, i64::MIN] {
            let err = w
                .encode_value(order(Value::TimestampMillis(at)))
                .unwrap_err();
            let messages: Vec<String> = err
                .field_errors()
                .unwrap_or_else(|| panic!("{at}: {err}"))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(
                messages[0].starts_with(&format!("$.at: timestamp-millis {at} is "))
                    && messages[0]
                        .ends_with("outside 0001-01-01..9999-12-31 (the range every store holds)"),
                "{messages:?}"
            );
        }
        // A plain long resolved into the timestamp field is checked the same way.
        assert!(w.encode_value(order(Value::Long(i64::MAX))).is_err());
        let err = w
            .encode_json(&json!({"id": 1, "shop": {"code": "x"}, "at": i64::MAX}))
            .unwrap_err();
        assert_eq!(err[0].path, "$.at", "{err:?}");
    }

    #[test]
    fn decode_rejects_truncated_and_stray_bytes() {
        let w = writer(ORDER, &["id"]);
        let e = w
            .encode_json(&json!({"id": 1, "shop": {"code": "abc"}, "at": 5}))
            .unwrap();
        let (_, datum) = wire::unframe(&e.value).unwrap();
        let schema = &w.registered().schema;
        assert!(decode(schema, None, datum).is_ok());
        for cut in 0..datum.len() {
            let err = decode(schema, None, &datum[..cut]).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{cut}: {err}");
        }
        let mut longer = datum.to_vec();
        longer.push(0);
        assert!(
            decode(schema, None, &longer)
                .unwrap_err()
                .to_string()
                .contains("1 stray bytes")
        );
    }

    #[test]
    fn decode_resolves_old_records_into_a_newer_schema() {
        let v1 = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let v2 = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},
                {"name":"b","type":"string","default":"none"}]}"#,
        )
        .unwrap();
        let datum = GenericDatumWriter::builder(&v1)
            .build()
            .unwrap()
            .write_value_to_vec(Value::Record(vec![("a".into(), Value::Int(5))]))
            .unwrap();
        let value = decode(&v1, Some(&v2), &datum).unwrap();
        assert_eq!(json::to_json(&value, &v2), json!({"a": 5, "b": "none"}));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let schema = Schema::parse_str(ORDER).unwrap();
            let _ = decode(&schema, None, &bytes);
        }
    }
}
