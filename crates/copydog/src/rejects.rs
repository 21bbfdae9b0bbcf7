//! Records that could not be decoded, set aside under `clean/{topic}/_rejected/` with the
//! reason, so nothing is lost and the run can still commit.

use std::sync::Arc;

use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use onepipe_archive::decode::Reject;
use onepipe_archive::layout::CLEAN_ROOT;

use crate::error::{Error, Result};

pub(crate) async fn write_rejects(
    store: &dyn ObjectStore,
    topic: &str,
    number: u64,
    rejects: &[Reject],
) -> Result<String> {
    // A raw record's columns (without its headers), then why it was set aside.
    let raw = onepipe_archive::raw::schema();
    let mut fields: Vec<Field> = ["partition", "offset", "timestamp", "key", "value"]
        .iter()
        .map(|name| raw.field_with_name(name).cloned())
        .collect::<std::result::Result<_, _>>()?;
    fields.push(Field::new("reason", DataType::Utf8, false));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                rejects.iter().map(|r| r.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                rejects.iter().map(|r| r.offset),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rejects.iter().map(|r| r.timestamp))
                    .with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from_iter(
                rejects.iter().map(|r| r.key.as_deref()),
            )),
            Arc::new(BinaryArray::from_iter(
                rejects.iter().map(|r| r.value.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.reason.as_str()),
            )),
        ],
    )
    .map_err(|e| Error::convert("rejected records", e))?;
    let bytes = onepipe_archive::clean::write_parquet(&batch)?;
    // A unique name: a run that loses the manifest race leaves an orphan, never a clash.
    let path = format!(
        "{CLEAN_ROOT}/{topic}/_rejected/m{number:010}-{}.parquet",
        uuid::Uuid::new_v4().simple()
    );
    store
        .put(&Path::from(path.as_str()), PutPayload::from(bytes))
        .await?;
    for r in rejects.iter().take(5) {
        tracing::warn!(
            topic,
            partition = r.partition,
            offset = r.offset,
            reason = r.reason,
            "record rejected"
        );
    }
    Ok(path)
}
