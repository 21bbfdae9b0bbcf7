//! The raw file format of DESIGN.md: one Parquet file per run of offsets of one
//! partition, zstd-compressed, with the columns
//! `partition int32, offset int64, timestamp timestamp(ms, UTC), key binary null,
//! value binary null, headers list<struct<key utf8, value binary>>`.
//!
//! Keys, values and header values are stored as the exact bytes Kafka gave, with null
//! (absent) kept apart from empty.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Array, Int64Array, ListArray, RecordBatch,
    StringBuilder, StructArray, TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::ColumnPath;

use crate::{Error, Result};

/// Bytes a record is counted as beyond its key, value and headers (offset, timestamp,
/// bookkeeping), so that empty records still count.
pub const RECORD_OVERHEAD: usize = 24;

/// One Kafka record as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (the Kafka record timestamp; -1 when it had none).
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

fn header_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("headers", DataType::List(header_item()), false),
    ]))
});

/// The Arrow schema of raw files.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The records of one future raw file, appended column by column as they arrive.
pub struct RawBatch {
    partition: i32,
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
    keys: BinaryBuilder,
    values: BinaryBuilder,
    header_keys: StringBuilder,
    header_values: BinaryBuilder,
    header_offsets: Vec<i32>,
    bytes: usize,
    min_ts: i64,
    max_ts: i64,
    /// The W3C trace context of the first record that carried one: the upload span
    /// continues that trace.
    traceparent: Option<String>,
}

impl RawBatch {
    pub fn new(partition: i32) -> Self {
        Self::with_capacity(partition, 0, 0)
    }

    /// Room for `records` records of `bytes` bytes in all, so that a batch expected to
    /// be as large as the previous one is not copied while it grows.
    pub fn with_capacity(partition: i32, records: usize, bytes: usize) -> Self {
        let mut header_offsets = Vec::with_capacity(records + 1);
        header_offsets.push(0);
        RawBatch {
            partition,
            offsets: Vec::with_capacity(records),
            timestamps: Vec::with_capacity(records),
            keys: BinaryBuilder::with_capacity(records, bytes / 8),
            values: BinaryBuilder::with_capacity(records, bytes),
            header_keys: StringBuilder::new(),
            header_values: BinaryBuilder::new(),
            header_offsets,
            bytes: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            traceparent: None,
        }
    }

    /// Bytes a record is counted as, for the size limits.
    pub fn record_size(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> usize {
        let h: usize = headers
            .iter()
            .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
            .sum();
        RECORD_OVERHEAD + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + h
    }

    pub fn push(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        self.bytes += Self::record_size(key, value, headers);
        self.offsets.push(offset);
        self.timestamps.push(timestamp);
        self.min_ts = self.min_ts.min(timestamp);
        self.max_ts = self.max_ts.max(timestamp);
        self.keys.append_option(key);
        self.values.append_option(value);
        for (k, v) in headers {
            if self.traceparent.is_none()
                && *k == "traceparent"
                && let Some(tp) = v.and_then(|v| std::str::from_utf8(v).ok())
            {
                self.traceparent = Some(tp.to_string());
            }
            self.header_keys.append_value(k);
            self.header_values.append_option(*v);
        }
        let last = *self.header_offsets.last().unwrap_or(&0);
        self.header_offsets.push(last + headers.len() as i32);
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The trace context of the first record that had a `traceparent` header.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn first_offset(&self) -> Option<i64> {
        self.offsets.first().copied()
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.offsets.last().copied()
    }

    /// Smallest and largest record timestamp, when not empty.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        (!self.is_empty()).then_some((self.min_ts, self.max_ts))
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let n = self.offsets.len();
        let headers = StructArray::try_new(
            header_fields(),
            vec![
                Arc::new(self.header_keys.finish()) as ArrayRef,
                Arc::new(self.header_values.finish()),
            ],
            None,
        )?;
        let headers = ListArray::try_new(
            header_item(),
            OffsetBuffer::new(self.header_offsets.into()),
            Arc::new(headers),
            None,
        )?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![self.partition; n])),
            Arc::new(Int64Array::from(self.offsets)),
            Arc::new(TimestampMillisecondArray::from(self.timestamps).with_timezone("UTC")),
            Arc::new(self.keys.finish()),
            Arc::new(self.values.finish()),
            Arc::new(headers),
        ];
        Ok(RecordBatch::try_new(schema(), columns)?)
    }
}

/// Rows per Parquet row group; a file holds any number of them.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writes a raw file (zstd) into memory.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(concat!("onepipe copycat ", env!("CARGO_PKG_VERSION")).to_string());
    // Min/max of opaque bytes prune nothing and dictionaries of mostly distinct values
    // only cost time; offsets and timestamps keep both, for readers that prune by them.
    for column in [
        ["key"].as_slice(),
        &["value"],
        &["headers", "list", "item", "value"],
    ] {
        let path = ColumnPath::new(column.iter().map(|c| c.to_string()).collect());
        props = props
            .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
            .set_column_dictionary_enabled(path, false);
    }
    let props = props.build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Reads every record of a raw file, in file order.
pub fn decode<R: ChunkReader + 'static>(path: &str, data: R) -> Result<Vec<RawRecord>> {
    let bad = |reason: String| Error::BadRawFile {
        path: path.to_string(),
        reason,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        if batch.schema().fields() != schema().fields() {
            return Err(bad(format!(
                "unexpected columns {:?}",
                batch.schema().fields()
            )));
        }
        let partitions = batch.column(0).as_primitive::<Int32Type>();
        let offsets = batch.column(1).as_primitive::<Int64Type>();
        let timestamps = batch
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        let keys = batch.column(3).as_binary::<i32>();
        let values = batch.column(4).as_binary::<i32>();
        let headers = batch.column(5).as_list::<i32>();
        for i in 0..batch.num_rows() {
            let h = headers.value(i);
            let h = h.as_struct();
            let hk = h.column(0).as_string::<i32>();
            let hv = h.column(1).as_binary::<i32>();
            let headers = (0..h.len())
                .map(|j| {
                    let v = (!hv.is_null(j)).then(|| hv.value(j).to_vec());
                    (hk.value(j).to_string(), v)
                })
                .collect();
            out.push(RawRecord {
                partition: partitions.value(i),
                offset: offsets.value(i),
                timestamp: timestamps.value(i),
                key: (!keys.is_null(i)).then(|| keys.value(i).to_vec()),
                value: (!values.is_null(i)).then(|| values.value(i).to_vec()),
                headers,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bytes_nulls_and_headers() {
        let mut b = RawBatch::new(2);
        b.push(
            10,
            1_700_000_000_000,
            Some(b"k"),
            Some(b"\x00\x01v"),
            &[
                ("traceparent", Some(b"00-ab")),
                ("empty", Some(b"")),
                ("null", None),
            ],
        );
        b.push(11, 1_700_000_000_001, None, None, &[]);
        b.push(12, 1_700_000_000_002, Some(b""), Some(b""), &[]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.time_range(), Some((1_700_000_000_000, 1_700_000_000_002)));
        let file = encode(&b.finish().unwrap()).unwrap();
        let records = decode("x", bytes_of(file)).unwrap();
        assert_eq!(
            records,
            vec![
                RawRecord {
                    partition: 2,
                    offset: 10,
                    timestamp: 1_700_000_000_000,
                    key: Some(b"k".to_vec()),
                    value: Some(b"\x00\x01v".to_vec()),
                    headers: vec![
                        ("traceparent".into(), Some(b"00-ab".to_vec())),
                        ("empty".into(), Some(vec![])),
                        ("null".into(), None),
                    ],
                },
                RawRecord {
                    partition: 2,
                    offset: 11,
                    timestamp: 1_700_000_000_001,
                    key: None,
                    value: None,
                    headers: vec![],
                },
                RawRecord {
                    partition: 2,
                    offset: 12,
                    timestamp: 1_700_000_000_002,
                    key: Some(vec![]),
                    value: Some(vec![]),
                    headers: vec![],
                },
            ]
        );
    }

    #[test]
    fn schema_matches_design() {
        let file = encode(&RawBatch::new(0).finish().unwrap()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes_of(file)).unwrap();
        assert_eq!(reader.schema().fields(), schema().fields());
        let types: Vec<String> = schema()
            .fields()
            .iter()
            .map(|f| format!("{} {} {}", f.name(), f.data_type(), f.is_nullable()))
            .collect();
        assert_eq!(types[0], "partition Int32 false");
        assert_eq!(types[1], "offset Int64 false");
        assert!(
            types[2].starts_with("timestamp Timestamp(ms, \"UTC\")"),
            "{}",
            types[2]
        );
        assert_eq!(types[3], "key Binary true");
        assert_eq!(types[4], "value Binary true");
    }

    #[test]
    fn opaque_bytes_get_no_statistics_or_dictionary() {
        let mut b = RawBatch::new(0);
        b.push(1, 5, Some(b"k"), Some(b"v"), &[("h", Some(b"x"))]);
        let file = encode(&b.finish().unwrap()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes_of(file)).unwrap();
        let rg = reader.metadata().row_group(0);
        for c in rg.columns() {
            let path = c.column_path().string();
            let opaque = ["key", "value", "headers.list.item.value"].contains(&path.as_str());
            assert_eq!(c.statistics().is_none(), opaque, "{path}");
            if opaque {
                assert!(c.dictionary_page_offset().is_none(), "{path}");
            }
        }
    }

    pub(crate) fn bytes_of(v: Vec<u8>) -> bytes::Bytes {
        bytes::Bytes::from(v)
    }
}
