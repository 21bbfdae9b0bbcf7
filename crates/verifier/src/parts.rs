//! A date too large to merge in one query, split by key hash into parts merged one at a
//! time.
//!
//! DataFusion's external sort stays within its pool, but the merge of its spilled runs,
//! the batches each run holds and the window over them do not: with a 64 MB pool a 2 GB
//! date peaked at about 560 MB of RSS. All versions of a key have the same key text, so
//! they land in the same part, and the winners of the date are the union of the winners
//! of its parts. Each part is small enough to be sorted in memory, so nothing spills.
//!
//! The decoded rows of a date are Parquet files in its folder. Splitting moves them into
//! subfolders `part-NNNNN/` (one file per part per split) and removes them, so a folder
//! holds either files (one query) or parts (one query each), never both. Rows decoded
//! later into a split date are split into the same number of parts.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use onepipe_core::metadata::TopicMetadata;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::canonical::push_row_text;
use crate::checks::{column, key_hash};
use crate::error::{Error, Result};

/// Most parts one date is split into.
pub const MAX_PARTS: usize = 4096;
/// Rows per batch read while splitting.
const READ_ROWS: usize = 4096;

/// The subfolder of part `i`.
pub fn part_folder(date_folder: &Path, i: usize) -> PathBuf {
    date_folder.join(format!("part-{i:05}"))
}

/// Bytes of the files in `folder` and in its subfolders.
pub fn folder_bytes(folder: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Splits the files directly in `folder` (the rows of one date) into parts when the date
/// holds more than `part_bytes`, or always when it is split already (`parts`). Returns the
/// date's number of parts afterwards, `None` when it is merged whole. Blocking.
pub fn split(
    folder: &Path,
    parts: Option<usize>,
    part_bytes: u64,
    meta: &TopicMetadata,
    round: u64,
) -> Result<Option<usize>> {
    let spill = |path: &Path, error: std::io::Error| Error::Spill {
        path: path.display().to_string(),
        error,
    };
    let mut files = Vec::new();
    for e in std::fs::read_dir(folder).map_err(|e| spill(folder, e))? {
        let e = e.map_err(|e| spill(folder, e))?;
        if e.file_type()
            .map_err(|err| spill(&e.path(), err))?
            .is_file()
        {
            files.push(e.path());
        }
    }
    files.sort();
    let total = folder_bytes(folder);
    let n = match parts {
        Some(n) => n,
        None if total <= part_bytes => return Ok(None),
        None => usize::try_from(total.div_ceil(part_bytes.max(1)))
            .unwrap_or(MAX_PARTS)
            .clamp(2, MAX_PARTS),
    };
    if files.is_empty() {
        return Ok(Some(n));
    }
    let date = folder
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let bad = |reason: String| Error::Decode {
        date: date.clone(),
        reason: format!("splitting by key hash: {reason}"),
    };
    // Rows wait per part until it holds its share of `part_bytes`, then go out as a row
    // group: at most about `part_bytes` wait in all.
    let share = (part_bytes / n as u64).max(64 << 10) as usize;
    let mut writers: Vec<Option<ArrowWriter<File>>> = (0..n).map(|_| None).collect();
    let mut waiting: Vec<(Vec<RecordBatch>, usize)> = (0..n).map(|_| (Vec::new(), 0)).collect();
    let write_out = |i: usize,
                     batches: Vec<RecordBatch>,
                     writers: &mut Vec<Option<ArrowWriter<File>>>|
     -> Result<()> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        if writers[i].is_none() {
            let dir = part_folder(folder, i);
            std::fs::create_dir_all(&dir).map_err(|e| spill(&dir, e))?;
            let path = dir.join(format!("{round:08}.parquet"));
            let file = File::create(&path).map_err(|e| spill(&path, e))?;
            writers[i] = Some(
                ArrowWriter::try_new(file, first.schema(), None).map_err(|e| bad(e.to_string()))?,
            );
        }
        let w = writers[i].as_mut().expect("opened above");
        for b in &batches {
            w.write(b).map_err(|e| bad(e.to_string()))?;
        }
        w.flush().map_err(|e| bad(e.to_string()))
    };
    let mut key = String::new();
    for path in &files {
        let file = File::open(path).map_err(|e| spill(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?
            .with_batch_size(READ_ROWS)
            .build()
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        for batch in reader {
            let batch = batch.map_err(|e| bad(format!("{}: {e}", path.display())))?;
            let keys: Vec<ArrayRef> = meta
                .unique_key
                .iter()
                .map(|k| column(&batch, k))
                .collect::<Result<_>>()?;
            let mut rows: Vec<Vec<u32>> = vec![Vec::new(); n];
            for r in 0..batch.num_rows() {
                key.clear();
                push_row_text(&mut key, &keys, r);
                rows[(key_hash(&key) % n as u128) as usize].push(r as u32);
            }
            for (i, rows) in rows.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                let piece = take_record_batch(&batch, &UInt32Array::from(rows))
                    .map_err(|e| bad(e.to_string()))?;
                let w = &mut waiting[i];
                w.1 += piece.get_array_memory_size();
                w.0.push(piece);
                if w.1 >= share {
                    let batches = std::mem::take(&mut w.0);
                    w.1 = 0;
                    write_out(i, batches, &mut writers)?;
                }
            }
        }
    }
    for (i, (batches, _)) in waiting.into_iter().enumerate() {
        write_out(i, batches, &mut writers)?;
    }
    for w in writers.into_iter().flatten() {
        w.close().map_err(|e| bad(e.to_string()))?;
    }
    for path in &files {
        std::fs::remove_file(path).map_err(|e| spill(path, e))?;
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn meta() -> TopicMetadata {
        TopicMetadata::new("t", vec!["id".into()])
    }

    fn write(path: &Path, ids: &[String], versions: &[i64]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(Int64Array::from(versions.to_vec())),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    /// Every part's (id, version) rows, by part.
    fn read_parts(folder: &Path, n: usize) -> Vec<BTreeSet<(String, i64)>> {
        (0..n)
            .map(|i| {
                let mut out = BTreeSet::new();
                let Ok(entries) = std::fs::read_dir(part_folder(folder, i)) else {
                    return out;
                };
                for e in entries.flatten() {
                    let reader =
                        ParquetRecordBatchReaderBuilder::try_new(File::open(e.path()).unwrap())
                            .unwrap()
                            .build()
                            .unwrap();
                    for b in reader {
                        let b = b.unwrap();
                        let ids = b.column(0).as_string::<i32>();
                        let v = b.column(1).as_primitive::<Int64Type>();
                        for r in 0..b.num_rows() {
                            assert!(out.insert((ids.value(r).to_string(), v.value(r))));
                        }
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn every_row_lands_once_and_a_keys_versions_together() {
        let root = std::env::temp_dir().join(format!("onepipe-parts-test-{}", std::process::id()));
        let folder = root.join("2026-11-24");
        std::fs::create_dir_all(&folder).unwrap();
        // Two files, each key in both (two versions).
        let ids: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
        write(&folder.join("1.parquet"), &ids, &vec![1; ids.len()]);
        write(&folder.join("2.parquet"), &ids, &vec![2; ids.len()]);
        // Small: merged whole.
        assert_eq!(split(&folder, None, 1 << 30, &meta(), 1).unwrap(), None);
        let n = split(&folder, None, 8 << 10, &meta(), 1).unwrap().unwrap();
        assert!(n > 2, "{n} parts");
        let files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .collect();
        assert!(files.is_empty(), "files left unsplit: {files:?}");

        // A later version decoded into the split date joins the same parts.
        write(&folder.join("3.parquet"), &ids[..10], &[3; 10]);
        assert_eq!(
            split(&folder, Some(n), 8 << 10, &meta(), 2).unwrap(),
            Some(n)
        );

        let parts = read_parts(&folder, n);
        let mut part_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut rows = 0;
        for (i, part) in parts.iter().enumerate() {
            for (id, _) in part {
                rows += 1;
                assert_eq!(
                    *part_of.entry(id.clone()).or_insert(i),
                    i,
                    "{id} in two parts"
                );
            }
        }
        assert_eq!(rows, 2 * ids.len() + 10);
        assert_eq!(part_of.len(), ids.len());
        assert!(parts.iter().filter(|p| !p.is_empty()).count() > 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
