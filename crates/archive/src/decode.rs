//! Raw records decoded into clean rows: the value unframed and decoded with its writer
//! schema, resolved into the topic's newest schema, given its date, and turned into Arrow
//! columns with the Kafka columns after the record's fields.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use apache_avro::Schema as Avro;
use apache_avro::types::Value;
use arrow::array::{Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use onepipe_client::SchemaRegistry;
use onepipe_client::codec::DatumDecoder;
use onepipe_client::json::Mapper;
use onepipe_client::ranges;
use onepipe_core::metadata::TopicMetadata;
use onepipe_core::wire;

use crate::columns::Mapping;
use crate::layout::RawFile;
use crate::{Error, OFFSET_COLUMN, PARTITION_COLUMN, Result, SCHEMA_ID_COLUMN, TIMESTAMP_COLUMN};

/// A raw record that could not be decoded, and why.
#[derive(Debug, Clone)]
pub struct Reject {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub reason: String,
}

/// Where a record came from: Kafka partition, offset, timestamp, writer schema id.
type Position = (i32, i64, i64, u32);

/// What [`read_new`] read.
pub struct NewRecords {
    pub records: u64,
    /// Records handed to [`Sink::reject`].
    pub rejected: u64,
    /// The highest offset read per partition.
    pub watermarks: BTreeMap<i32, i64>,
}

/// Where [`read_new`] hands what it decoded. It is called on a blocking thread (see
/// [`crate::blocking`]), so it may spill to local disk or write rejects out itself.
pub trait Sink: Send + 'static {
    type Error: From<Error> + Send + 'static;
    /// New rows of one date, a few thousand at a time.
    fn rows(&mut self, date: NaiveDate, batch: RecordBatch) -> Result<(), Self::Error>;
    /// A record that could not be decoded.
    fn reject(&mut self, reject: Reject) -> Result<(), Self::Error>;
}

/// The topic's newest schema, ready to decode raw records into clean rows.
pub struct Reader {
    pub meta: TopicMetadata,
    pub schema: Arc<Avro>,
    pub schema_id: u32,
    pub mapping: Mapping,
    pub target: SchemaRef,
}

impl Reader {
    /// The topic's metadata and newest schema from the registry.
    pub async fn for_topic(registry: &SchemaRegistry, topic: &str) -> Result<Self> {
        let t = registry.topic(topic).await?;
        let schema = Arc::new(t.latest.schema.clone());
        let schema_error = |e| Error::Schema {
            topic: topic.to_string(),
            reason: Box::new(e),
        };
        let mapping = Mapping::new(&schema).map_err(schema_error)?;
        let target = target_schema(&mapping).map_err(schema_error)?;
        Ok(Reader {
            meta: t.metadata.clone(),
            schema,
            schema_id: t.latest.id,
            mapping,
            target,
        })
    }
}

/// Decodes the records of `plan` past `watermarks` (per partition, exclusive) into clean
/// rows of the reader's schema, handing them to `sink` by date a few thousand at a time.
/// Records that cannot be decoded, or hold a timestamp or date outside the range every
/// store holds (`onepipe_client::ranges`), go to the sink as rejects, never dropped. Each file is
/// decoded on the blocking pool, the sink with it; the sink is given back at the end.
pub async fn read_new<S: Sink>(
    store: &dyn ObjectStore,
    registry: &SchemaRegistry,
    reader: &Arc<Reader>,
    plan: &[RawFile],
    watermarks: &HashMap<i32, i64>,
    mut sink: S,
) -> Result<(NewRecords, S), S::Error> {
    let mut out = NewRecords {
        records: 0,
        rejected: 0,
        watermarks: BTreeMap::new(),
    };
    let mut writers: HashMap<u32, Arc<Avro>> = HashMap::new();
    let mut last_progress = std::time::Instant::now();
    for (n, file) in plan.iter().enumerate() {
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = std::time::Instant::now();
            tracing::info!(
                topic = reader.meta.topic,
                files = n,
                of = plan.len(),
                records = out.records,
                "reading raw files"
            );
        }
        let path = file.path();
        let bytes = store
            .get(&Path::from(path.as_str()))
            .await
            .map_err(Error::from)?
            .bytes()
            .await
            .map_err(Error::from)?;
        let from = watermarks.get(&file.partition).copied().unwrap_or(-1);
        let (records, ids) = crate::blocking(move || {
            let records = crate::raw::decode(&path, bytes)?;
            let ids: BTreeSet<u32> = records
                .iter()
                .filter(|r| r.offset > from)
                .filter_map(|r| wire::unframe(r.value.as_deref()?).ok())
                .map(|(id, _)| id)
                .collect();
            Ok::<_, Error>((records, ids))
        })
        .await?;
        // Fetch the writer schemas this file needs before decoding it.
        let mut known: HashMap<u32, Arc<Avro>> = HashMap::new();
        for id in ids {
            if let Some(s) = writers.get(&id) {
                known.insert(id, s.clone());
                continue;
            }
            match registry.schema_by_id(id).await {
                Ok(s) => {
                    writers.insert(id, s.clone());
                    known.insert(id, s);
                }
                Err(onepipe_client::Error::UnknownSchemaId(_)) => {}
                Err(e) => return Err(Error::from(e).into()),
            }
        }
        let reader = reader.clone();
        let path = file.path();
        let (s, read) = crate::blocking(move || {
            let read = decode_file(&reader, &path, records, from, &known, &mut sink)?;
            Ok::<_, S::Error>((sink, read))
        })
        .await?;
        sink = s;
        out.records += read.records;
        out.rejected += read.rejected;
        for (p, w) in read.watermarks {
            let e = out.watermarks.entry(p).or_insert(w);
            *e = (*e).max(w);
        }
    }
    Ok((out, sink))
}

/// Decodes the records of one raw file past `from` into the sink (on a blocking thread).
fn decode_file<S: Sink>(
    reader: &Reader,
    path: &str,
    records: Vec<crate::raw::RawRecord>,
    from: i64,
    writers: &HashMap<u32, Arc<Avro>>,
    sink: &mut S,
) -> Result<NewRecords, S::Error> {
    let Reader {
        meta,
        schema: reader_schema,
        schema_id: reader_id,
        mapping,
        target,
    } = reader;
    let mapper = Mapper::new(reader_schema);
    let mut out = NewRecords {
        records: 0,
        rejected: 0,
        watermarks: BTreeMap::new(),
    };
    let mut decoders: HashMap<u32, Decoder<'_>> = HashMap::new();
    let mut groups: BTreeMap<NaiveDate, (Vec<Value>, Vec<Position>)> = BTreeMap::new();
    for r in records {
        if r.offset <= from {
            continue;
        }
        out.records += 1;
        let w = out.watermarks.entry(r.partition).or_insert(r.offset);
        *w = (*w).max(r.offset);
        let decoded = if ranges::timestamp_in_range(r.timestamp, ranges::Unit::Millis) {
            decode_one(&r.value, writers, &mut decoders, reader_schema, *reader_id)
        } else {
            Err(Error::KafkaTimestamp(r.timestamp))
        };
        let value = match decoded {
            Ok(v) => v,
            Err(reason) => {
                out.rejected += 1;
                sink.reject(Reject {
                    partition: r.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    reason: reason.to_string(),
                })?;
                continue;
            }
        };
        let (value, id) = value;
        let date = partition_date(&mapper, meta, &value, r.timestamp);
        let g = groups.entry(date).or_default();
        g.0.push(value);
        g.1.push((r.partition, r.offset, r.timestamp, id));
        // Decoded values are large: turn them into columns every few thousand.
        if g.0.len() >= CONVERT_ROWS {
            let (values, positions) = std::mem::take(g);
            let batch = to_batch(mapping, target, &values, &positions)
                .map_err(|e| Error::convert(path, e))?;
            drop(values);
            sink.rows(date, batch)?;
        }
    }
    for (date, (values, positions)) in groups {
        if values.is_empty() {
            continue;
        }
        let batch =
            to_batch(mapping, target, &values, &positions).map_err(|e| Error::convert(path, e))?;
        sink.rows(date, batch)?;
    }
    Ok(out)
}

/// Records read straight from Kafka (not from raw files), decoded in their order.
pub struct DecodedRecords {
    /// One clean row per decoded record, in the order given ([`target_schema`]).
    pub batch: RecordBatch,
    /// The date of each row ([`partition_date`]).
    pub dates: Vec<NaiveDate>,
    /// Records that could not be decoded, tombstones included (`Error::Tombstone`).
    pub rejects: Vec<Reject>,
}

/// Decodes Kafka records as copydog decodes raw ones: the same writer-schema lookup,
/// resolution into the reader's schema, range checks and date rule. `writers` holds the
/// writer schemas the records name (an id missing from it rejects its records as
/// unknown). CPU-heavy: call it on a blocking thread.
pub fn decode_records(
    reader: &Reader,
    records: &[crate::raw::RawRecord],
    writers: &HashMap<u32, Arc<Avro>>,
) -> Result<DecodedRecords> {
    let mapper = Mapper::new(&reader.schema);
    let mut decoders: HashMap<u32, Decoder<'_>> = HashMap::new();
    let mut values = Vec::with_capacity(records.len());
    let mut positions = Vec::with_capacity(records.len());
    let mut dates = Vec::with_capacity(records.len());
    let mut rejects = Vec::new();
    for r in records {
        let decoded = if ranges::timestamp_in_range(r.timestamp, ranges::Unit::Millis) {
            decode_one(
                &r.value,
                writers,
                &mut decoders,
                &reader.schema,
                reader.schema_id,
            )
        } else {
            Err(Error::KafkaTimestamp(r.timestamp))
        };
        match decoded {
            Ok((value, id)) => {
                dates.push(partition_date(&mapper, &reader.meta, &value, r.timestamp));
                values.push(value);
                positions.push((r.partition, r.offset, r.timestamp, id));
            }
            Err(reason) => rejects.push(Reject {
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                reason: reason.to_string(),
            }),
        }
    }
    let batch = to_batch(&reader.mapping, &reader.target, &values, &positions)?;
    Ok(DecodedRecords {
        batch,
        dates,
        rejects,
    })
}

/// How often long reads log where they are.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Records decoded before they are turned into Arrow columns.
const CONVERT_ROWS: usize = 4096;

/// The decoder of one writer schema into the reader's, or why there is none (kept to be
/// the reason of every record of that schema).
type Decoder<'s> = std::result::Result<DatumDecoder<'s>, Arc<onepipe_client::Error>>;

/// One raw record's value decoded into the reader's schema, with its writer schema id;
/// the error is the reason the record is rejected.
fn decode_one<'s>(
    value: &Option<Vec<u8>>,
    writers: &'s HashMap<u32, Arc<Avro>>,
    decoders: &mut HashMap<u32, Decoder<'s>>,
    reader: &'s Arc<Avro>,
    reader_id: u32,
) -> Result<(Value, u32)> {
    let Some(bytes) = value else {
        return Err(Error::Tombstone);
    };
    let (id, datum) = wire::unframe(bytes)?;
    // Ids the registry does not know are never in `writers`.
    let Some(writer) = writers.get(&id) else {
        return Err(onepipe_client::Error::UnknownSchemaId(id).into());
    };
    let decoder = decoders.entry(id).or_insert_with(|| {
        DatumDecoder::new(writer, (id != reader_id).then_some(reader.as_ref())).map_err(Arc::new)
    });
    let value = match decoder {
        Ok(d) => d.decode(datum)?,
        Err(e) => {
            return Err(Error::WriterSchema {
                schema_id: id,
                reason: e.clone(),
            });
        }
    };
    // Any Confluent client can write timestamps and dates no store can hold; such a
    // record would wedge every stage after this one.
    let out_of_range = ranges::out_of_range(&value);
    if !out_of_range.is_empty() {
        return Err(Error::OutOfRange(out_of_range));
    }
    Ok((value, id))
}

/// The UTC date of a record: its `partition_time` field, else its Kafka timestamp.
pub fn partition_date(
    mapper: &Mapper<'_>,
    meta: &TopicMetadata,
    value: &Value,
    timestamp: i64,
) -> NaiveDate {
    if let Some(field) = &meta.partition_time
        && let Ok(serde_json::Value::String(text)) = mapper.field_json(value, field)
        && let Some(day) = text.get(..10)
        && let Ok(date) = NaiveDate::parse_from_str(day, "%Y-%m-%d")
    {
        return date;
    }
    kafka_date(timestamp)
}

/// The UTC date of a Kafka timestamp (milliseconds; a negative one counts as 1970-01-01).
pub fn kafka_date(timestamp: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(timestamp.max(0))
        .unwrap_or_default()
        .date_naive()
}

/// The Arrow schema of clean files: the record's fields, then the Kafka columns.
pub fn target_schema(mapping: &Mapping) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = mapping
        .fields()?
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (name, _) in fields
        .iter()
        .map(|f| (f.name().clone(), ()))
        .collect::<Vec<_>>()
    {
        if name.starts_with("_kafka_") || name == SCHEMA_ID_COLUMN {
            return Err(Error::ReservedField(name));
        }
    }
    fields.extend(kafka_fields());
    Ok(Arc::new(Schema::new(fields)))
}

fn kafka_fields() -> Vec<Field> {
    vec![
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
        Field::new(
            TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(SCHEMA_ID_COLUMN, DataType::Int64, false),
    ]
}

pub fn to_batch(
    mapping: &Mapping,
    target: &SchemaRef,
    values: &[Value],
    positions: &[Position],
) -> Result<RecordBatch> {
    let refs: Vec<&Value> = values.iter().collect();
    let mut columns = mapping.columns(&refs)?;
    columns.push(Arc::new(Int32Array::from_iter_values(
        positions.iter().map(|p| p.0),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        positions.iter().map(|p| p.1),
    )));
    let mut timestamps = Vec::with_capacity(positions.len());
    for p in positions {
        timestamps.push(crate::columns::millis_to_micros(p.2)?);
    }
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(timestamps).with_timezone("UTC"),
    ));
    columns.push(Arc::new(Int64Array::from_iter_values(
        positions.iter().map(|p| i64::from(p.3)),
    )));
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;

    const ORDER: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"string"},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"day","type":["null",{"type":"int","logicalType":"date"}],"default":null}
    ]}"#;

    /// `decode_one` of a record written by any Confluent client (not onepipe's
    /// Serializer) with `at` and `day` as given.
    fn decode_order(at: i64, day: Option<i32>) -> Result<(Value, u32)> {
        let schema = Arc::new(Avro::parse_str(ORDER).unwrap());
        let day = match day {
            Some(d) => Value::Union(1, Box::new(Value::Date(d))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        let datum = GenericDatumWriter::builder(&schema)
            .validate(false)
            .build()
            .unwrap()
            .write_value_to_vec(Value::Record(vec![
                ("id".into(), Value::String("o-1".into())),
                ("at".into(), Value::TimestampMillis(at)),
                ("day".into(), day),
            ]))
            .unwrap();
        let writers = HashMap::from([(7, schema.clone())]);
        let mut decoders = HashMap::new();
        decode_one(
            &Some(wire::frame(7, &datum)),
            &writers,
            &mut decoders,
            &schema,
            7,
        )
    }

    #[test]
    fn values_outside_years_1_to_9999_are_rejected_with_their_field() {
        let range = "outside 0001-01-01..9999-12-31 (the range every store holds)";
        assert!(decode_order(253_402_300_799_999, Some(2_932_896)).is_ok());
        assert!(decode_order(-62_135_596_800_000, Some(-719_162)).is_ok());
        for (at, day, reason) in [
            (
                i64::MAX,
                None,
                format!(
                    "$.at: timestamp-millis 9223372036854775807 is 292278994-08-17T07:12:55.807Z, {range}"
                ),
            ),
            (
                i64::MIN,
                None,
                format!(
                    "$.at: timestamp-millis -9223372036854775808 is -292275055-05-16T16:47:04.192Z, {range}"
                ),
            ),
            (
                253_402_300_800_000,
                None,
                format!(
                    "$.at: timestamp-millis 253402300800000 is 10000-01-01T00:00:00.000Z, {range}"
                ),
            ),
            (
                -62_135_596_800_001,
                None,
                format!(
                    "$.at: timestamp-millis -62135596800001 is 0000-12-31T23:59:59.999Z, {range}"
                ),
            ),
            (
                0,
                Some(i32::MAX),
                format!("$.day: date 2147483647 is 5881580-07-11, {range}"),
            ),
            (
                0,
                Some(i32::MIN),
                format!("$.day: date -2147483648 is -5877641-06-23, {range}"),
            ),
            (
                0,
                Some(2_932_897),
                format!("$.day: date 2932897 is 10000-01-01, {range}"),
            ),
            (
                0,
                Some(-719_163),
                format!("$.day: date -719163 is 0000-12-31, {range}"),
            ),
        ] {
            match decode_order(at, day) {
                Ok((v, _)) => panic!("{at} {day:?} was accepted: {v:?}"),
                Err(e) => assert!(e.to_string().contains(&reason), "{e}"),
            }
        }
    }
    #[test]
    fn kafka_timestamps_outside_years_1_to_9999_are_a_reason() {
        assert!(ranges::timestamp_in_range(0, ranges::Unit::Millis));
        assert_eq!(
            Error::KafkaTimestamp(i64::MAX).to_string(),
            "Kafka record timestamp: timestamp-millis 9223372036854775807 is \
             292278994-08-17T07:12:55.807Z, outside 0001-01-01..9999-12-31 (the range every \
             store holds)"
        );
    }
}
