//! Records that could not be decoded, set aside under `clean/{topic}/_rejected/` with the
//! reason, so nothing is lost and the run can still commit.
//!
//! They are written out as they come, in parts of bounded size
//! (`clean/{topic}/_rejected/m{manifest}-{unique}.parquet`, every part named by the
//! manifest), so a run holds at most one part in memory however many records it rejects.

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

/// Bytes of keys, values and reasons in one part at most.
const PART_BYTES: usize = 64 << 20;

/// The rejects of one run, written out a part at a time. Used on blocking threads: a
/// full part is uploaded there, through the runtime the writer was made in.
pub(crate) struct RejectParts {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    topic: String,
    number: u64,
    per_part: usize,
    held: Vec<Reject>,
    held_bytes: usize,
    /// Records rejected so far, written or held.
    pub(crate) records: u64,
    /// The parts written so far.
    pub(crate) files: Vec<String>,
}

impl RejectParts {
    /// Rejects of the run that will commit manifest `number`, at most `per_part` records
    /// (and [`PART_BYTES`]) in one part. Needs a Tokio runtime.
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        topic: &str,
        number: u64,
        per_part: usize,
    ) -> Self {
        RejectParts {
            store,
            runtime: tokio::runtime::Handle::current(),
            topic: topic.to_string(),
            number,
            per_part: per_part.max(1),
            held: Vec::new(),
            held_bytes: 0,
            records: 0,
            files: Vec::new(),
        }
    }

    /// Adds a reject; a full part is written out. Blocks: call on a blocking thread.
    pub(crate) fn push(&mut self, r: Reject) -> Result<()> {
        if self.records < 5 {
            tracing::warn!(
                topic = self.topic,
                partition = r.partition,
                offset = r.offset,
                reason = r.reason,
                "record rejected"
            );
        }
        self.records += 1;
        self.held_bytes += r.key.as_ref().map_or(0, Vec::len)
            + r.value.as_ref().map_or(0, Vec::len)
            + r.reason.len();
        self.held.push(r);
        if self.held.len() >= self.per_part || self.held_bytes >= PART_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes out what is held. Blocks: call on a blocking thread.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let bytes = encode(&self.held)?;
        self.held.clear();
        self.held_bytes = 0;
        // A unique name: a run that loses the manifest race leaves an orphan, never a clash.
        let path = format!(
            "{CLEAN_ROOT}/{}/_rejected/m{:010}-{}.parquet",
            self.topic,
            self.number,
            uuid::Uuid::new_v4().simple()
        );
        self.runtime.block_on(
            self.store
                .put(&Path::from(path.as_str()), PutPayload::from(bytes)),
        )?;
        self.files.push(path);
        Ok(())
    }
}

/// One part: a raw record's columns (without its headers), then why it was set aside.
fn encode(rejects: &[Reject]) -> Result<Vec<u8>> {
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
    Ok(onepipe_archive::clean::write_parquet(&batch)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn reject(offset: i64) -> Reject {
        Reject {
            partition: 0,
            offset,
            timestamp: 0,
            key: None,
            value: Some(vec![1, 2, 3]),
            reason: "bad magic byte".into(),
        }
    }

    /// 250 rejects in parts of 100: three parts written, never more than 100 held.
    #[tokio::test(flavor = "multi_thread")]
    async fn rejects_are_written_in_parts_of_bounded_size() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut parts = RejectParts::new(store.clone(), "t", 7, 100);
        let parts = tokio::task::spawn_blocking(move || {
            for offset in 0..250 {
                parts.push(reject(offset)).unwrap();
                assert!(parts.held.len() < 100);
            }
            parts.flush().unwrap();
            parts
        })
        .await
        .unwrap();
        assert_eq!(parts.records, 250);
        assert_eq!(parts.files.len(), 3, "{:?}", parts.files);
        let mut rows = Vec::new();
        for f in &parts.files {
            assert!(f.starts_with("clean/t/_rejected/m0000000007-"), "{f}");
            let bytes = store
                .get(&Path::from(f.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let n: usize = onepipe_archive::clean::read_parquet(f, bytes)
                .unwrap()
                .iter()
                .map(RecordBatch::num_rows)
                .sum();
            rows.push(n);
        }
        assert_eq!(rows, [100, 100, 50]);
    }
}
