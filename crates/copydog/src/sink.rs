//! The Parquet files of one date version: sorted rows cut into files of bounded size.
//! Encoding is CPU work, done here on a blocking thread a file at a time (its columns
//! spread over every core); the caller uploads each file. Public for the merge bench,
//! which writes its files with exactly this code.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, compute_leaves};

use crate::error::{Error, Result};
use crate::spill::RunMerger;

/// The merged rows of a date, in memory or as sorted runs on disk.
#[derive(Clone)]
pub enum Sorted {
    Memory(RecordBatch),
    Runs(Vec<PathBuf>),
}

/// Sorted rows being cut into files.
pub struct Source {
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
    pub fn open(sorted: &Sorted, meta: &TopicMetadata) -> Result<Self> {
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

/// The next file: up to `rows_per_file` rows of `source` as Parquet bytes (one row
/// group), `None` when no rows are left. The columns are encoded on `threads` threads
/// (`copydog run`: one per core): each thread encodes its share of the columns of every batch as the batches come (a few
/// batches at most wait for a thread), so a file costs about its largest share of columns
/// rather than all of them, and memory stays what one encoder holds.
pub fn next_file(
    source: &mut Source,
    schema: &SchemaRef,
    rows_per_file: usize,
    threads: usize,
) -> Result<Option<Vec<u8>>> {
    let Some(first) = source.next(rows_per_file)? else {
        return Ok(None);
    };
    let mut rows = first.num_rows();
    let (mut file, factory) = new_writer(schema, rows_per_file)?.into_serialized_writer()?;
    // Each top-level field's leaf writers (a nested field has several).
    let mut fields: Vec<Vec<ArrowColumnWriter>> =
        (0..schema.fields().len()).map(|_| Vec::new()).collect();
    for (leaf, writer) in factory.create_column_writers(0)?.into_iter().enumerate() {
        fields[file.schema_descr().get_column_root_idx(leaf)].push(writer);
    }
    // The largest columns first, each to the least loaded thread.
    let threads = threads.min(fields.len()).max(1);
    let mut order: Vec<usize> = (0..fields.len()).collect();
    order.sort_by_key(|f| std::cmp::Reverse(first.column(*f).get_array_memory_size()));
    let mut shares: Vec<(usize, Share)> = (0..threads).map(|_| (0, Vec::new())).collect();
    let mut fields: Vec<Option<Vec<ArrowColumnWriter>>> = fields.into_iter().map(Some).collect();
    for f in order {
        let least = shares
            .iter_mut()
            .min_by_key(|s| s.0)
            .expect("at least one thread");
        least.0 += first.column(f).get_array_memory_size();
        least
            .1
            .push((f, fields[f].take().expect("each field once")));
    }
    let chunks = std::thread::scope(|s| -> Result<Vec<(usize, Vec<ArrowColumnChunk>)>> {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for (_, mut mine) in shares {
            let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
            senders.push(tx);
            workers.push(s.spawn(move || {
                for batch in rx {
                    for (f, writers) in &mut mine {
                        let leaves = compute_leaves(schema.field(*f), batch.column(*f))?;
                        for (writer, leaf) in writers.iter_mut().zip(leaves) {
                            writer.write(&leaf)?;
                        }
                    }
                }
                mine.into_iter()
                    .map(|(f, writers)| {
                        let chunks = writers
                            .into_iter()
                            .map(ArrowColumnWriter::close)
                            .collect::<parquet::errors::Result<Vec<_>>>()?;
                        Ok((f, chunks))
                    })
                    .collect::<parquet::errors::Result<Vec<_>>>()
            }));
        }
        // A thread that failed has dropped its receiver; its error is raised below.
        let send = |batch: &RecordBatch| {
            for tx in &senders {
                let _ = tx.send(batch.clone());
            }
        };
        send(&first);
        drop(first);
        let mut read = Ok(());
        while rows < rows_per_file {
            match source.next(rows_per_file - rows) {
                Ok(Some(batch)) => {
                    rows += batch.num_rows();
                    send(&batch);
                }
                Ok(None) => break,
                Err(e) => {
                    read = Err(e);
                    break;
                }
            }
        }
        drop(senders);
        let mut chunks = Vec::new();
        for worker in workers {
            let done = worker
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            chunks.extend(done?);
        }
        read?;
        Ok(chunks)
    })?;
    let mut chunks = chunks;
    chunks.sort_by_key(|(f, _)| *f);
    let mut group = file.next_row_group()?;
    for chunk in chunks.into_iter().flat_map(|(_, c)| c) {
        chunk.append_to_row_group(&mut group)?;
    }
    group.close()?;
    Ok(Some(file.into_inner()?))
}

/// The fields one thread encodes: each field's index and its leaf writers.
type Share = Vec<(usize, Vec<ArrowColumnWriter>)>;

/// The threads `copydog run` encodes a file on: one per core.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
