//! The Parquet files of one date version: sorted rows cut into files of bounded size,
//! each uploaded create-only when full.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};
use onepipe_archive::layout::CleanFile;
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;

use crate::error::Result;

/// Writes sorted rows into the Parquet files of one date version, each uploaded when full.
pub(crate) struct FileSink<'a> {
    store: &'a dyn ObjectStore,
    meta: &'a TopicMetadata,
    schema: &'a SchemaRef,
    date: NaiveDate,
    version: u32,
    rows_per_file: usize,
    writer: Option<ArrowWriter<Vec<u8>>>,
    in_file: usize,
    files: Vec<String>,
}

impl<'a> FileSink<'a> {
    pub(crate) fn new(
        store: &'a dyn ObjectStore,
        meta: &'a TopicMetadata,
        schema: &'a SchemaRef,
        date: NaiveDate,
        version: u32,
        rows_per_file: usize,
    ) -> Self {
        FileSink {
            store,
            meta,
            schema,
            date,
            version,
            rows_per_file,
            writer: None,
            in_file: 0,
            files: Vec::new(),
        }
    }

    /// Appends rows; `false` when the version folder turned out to be taken.
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<bool> {
        let mut start = 0;
        while start < batch.num_rows() {
            let len = (batch.num_rows() - start).min(self.rows_per_file - self.in_file);
            self.writer()?.write(&batch.slice(start, len))?;
            self.in_file += len;
            start += len;
            if self.in_file == self.rows_per_file && !self.close().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<Vec<u8>>> {
        let writer = match self.writer.take() {
            Some(w) => w,
            None => {
                let props = onepipe_archive::clean::writer_properties()
                    .set_max_row_group_row_count(Some(self.rows_per_file))
                    .build();
                ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))?
            }
        };
        Ok(self.writer.insert(writer))
    }

    /// Uploads the open file; `false` when the name was taken.
    async fn close(&mut self) -> Result<bool> {
        let Some(writer) = self.writer.take() else {
            return Ok(true);
        };
        let bytes = writer.into_inner()?;
        self.in_file = 0;
        let path = CleanFile {
            topic: self.meta.topic.clone(),
            date: self.date,
            version: self.version,
            part: u32::try_from(self.files.len()).unwrap_or(u32::MAX),
        }
        .path();
        match self
            .store
            .put_opts(
                &Path::from(path.as_str()),
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await
        {
            Ok(_) => {
                self.files.push(path);
                Ok(true)
            }
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads the last file (an empty one when there were no rows): the file names, or
    /// `None` when the version folder turned out to be taken.
    pub(crate) async fn finish(mut self) -> Result<Option<Vec<String>>> {
        if self.writer.is_none() && self.files.is_empty() {
            self.writer()?;
        }
        if !self.close().await? {
            return Ok(None);
        }
        Ok(Some(self.files))
    }
}
