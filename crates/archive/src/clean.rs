//! Clean Parquet files: written zstd-compressed, read batch by batch, and a manifest
//! date's rows read from exactly the files it names.

use arrow::array::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use crate::manifest::DateEntry;
use crate::{Error, Result};

/// The zstd level of every Parquet file onepipe writes.
pub const ZSTD_LEVEL: i32 = 3;

/// Writer properties of clean files (compression; callers add row-group sizes).
pub fn writer_properties() -> WriterPropertiesBuilder {
    WriterProperties::builder().set_compression(Compression::ZSTD(
        ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
    ))
}

/// One batch as a whole zstd Parquet file.
pub fn write_parquet(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(writer_properties().build()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// The batches of a Parquet file, read as they are needed.
pub fn parquet_batches(
    path: &str,
    bytes: Bytes,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    let path = path.to_string();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| Error::convert(path.clone(), e))?
        .build()
        .map_err(|e| Error::convert(path.clone(), e))?;
    Ok(reader.map(move |b| b.map_err(|e| Error::convert(path.clone(), e))))
}

/// Every batch of a Parquet file.
pub fn read_parquet(path: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    parquet_batches(path, bytes)?.collect()
}

/// The rows of one date of a manifest, read from the files it names.
pub async fn read_date(store: &dyn ObjectStore, entry: &DateEntry) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for file in &entry.files {
        let bytes = store.get(&Path::from(file.as_str())).await?.bytes().await?;
        out.extend(read_parquet(file, bytes)?);
    }
    Ok(out)
}
