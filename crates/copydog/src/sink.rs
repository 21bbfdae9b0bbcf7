//! The Parquet files of one date version: sorted rows cut into files of bounded size.
//! Encoding is CPU work, done here on a blocking thread a file at a time; the caller
//! uploads each file.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;

use crate::error::{Error, Result};
use crate::spill::RunMerger;

/// The merged rows of a date, in memory or as sorted runs on disk.
#[derive(Clone)]
pub(crate) enum Sorted {
    Memory(RecordBatch),
    Runs(Vec<PathBuf>),
}

/// Sorted rows being cut into files.
pub(crate) struct Source {
    from: Rows,
    /// Rows taken from the runs that did not fit the last file.
    carry: Option<RecordBatch>,
}

enum Rows {
    Memory { batch: RecordBatch, at: usize },
    Runs(Box<RunMerger>),
}

impl Source {
    /// Opens the rows (the run files, for rows on disk).
    pub(crate) fn open(sorted: &Sorted, meta: &TopicMetadata) -> Result<Self> {
        let from = match sorted {
            Sorted::Memory(batch) => Rows::Memory {
                batch: batch.clone(),
                at: 0,
            },
            Sorted::Runs(paths) => Rows::Runs(Box::new(
                RunMerger::open(paths, meta, 8192).map_err(Error::spill)?,
            )),
        };
        Ok(Source { from, carry: None })
    }

    /// Up to `max` next rows; `None` at the end.
    fn next(&mut self, max: usize) -> Result<Option<RecordBatch>> {
        let batch = match self.carry.take() {
            Some(b) => b,
            None => match &mut self.from {
                Rows::Memory { batch, at } => {
                    let len = (batch.num_rows() - *at).min(max);
                    if len == 0 {
                        return Ok(None);
                    }
                    *at += len;
                    return Ok(Some(batch.slice(*at - len, len)));
                }
                Rows::Runs(merger) => match merger.next_batch().map_err(Error::spill)? {
                    Some(b) => b,
                    None => return Ok(None),
                },
            },
        };
        if batch.num_rows() > max {
            self.carry = Some(batch.slice(max, batch.num_rows() - max));
            return Ok(Some(batch.slice(0, max)));
        }
        Ok(Some(batch))
    }
}

/// The next file: up to `rows_per_file` rows of `source` as Parquet bytes, `None` when
/// no rows are left.
pub(crate) fn next_file(
    source: &mut Source,
    schema: &SchemaRef,
    rows_per_file: usize,
) -> Result<Option<Vec<u8>>> {
    let mut writer: Option<ArrowWriter<Vec<u8>>> = None;
    let mut rows = 0;
    while rows < rows_per_file {
        let Some(batch) = source.next(rows_per_file - rows)? else {
            break;
        };
        rows += batch.num_rows();
        let w = match writer.take() {
            Some(w) => w,
            None => new_writer(schema, rows_per_file)?,
        };
        writer.insert(w).write(&batch)?;
    }
    Ok(match writer {
        Some(w) => Some(w.into_inner()?),
        None => None,
    })
}

/// A file with no rows, for a date left empty.
pub(crate) fn empty_file(schema: &SchemaRef) -> Result<Vec<u8>> {
    Ok(new_writer(schema, 1)?.into_inner()?)
}

fn new_writer(schema: &SchemaRef, rows_per_file: usize) -> Result<ArrowWriter<Vec<u8>>> {
    let props = onepipe_archive::clean::writer_properties()
        .set_max_row_group_row_count(Some(rows_per_file))
        .build();
    Ok(ArrowWriter::try_new(
        Vec::new(),
        schema.clone(),
        Some(props),
    )?)
}
