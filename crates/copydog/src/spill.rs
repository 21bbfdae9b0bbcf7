//! Merging a date in bounded memory.
//!
//! Rows are held in memory while they fit the budget. Past it, a date's rows go to local
//! disk as Arrow IPC files, split into [`FANOUT`] buckets by a hash of the unique key, so
//! every row of one key lands in one bucket. Each bucket is then merged on its own (split
//! again, by the next bits of the hash, while it is still too large) into a sorted run
//! on disk, and the runs are merged by the sort order into the date's files. Keys never
//! span buckets, so the result is the same as merging the whole date at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, interleave_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows, SortField};
use chrono::NaiveDate;
use onepipe_core::metadata::TopicMetadata;

use crate::checks::Accumulator;
use crate::error::{Error, Result};
use onepipe_archive::merge;

/// Buckets a spilled date (or an oversized bucket) is split into.
pub const FANOUT: usize = 16;
/// Bits of the key hash each level of splitting uses (`FANOUT` = 2^4).
const BITS: u32 = 4;
/// Levels of splitting; after the last, a bucket is merged whatever its size (it can only
/// be that large when one key has that many versions).
const MAX_LEVEL: u32 = 64 / BITS - 1;
/// Bytes of one batch in a sorted run, so the final merge holds little per run.
const RUN_BATCH_BYTES: usize = 256 << 10;

/// How a memory limit is shared out.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget {
            limit: limit.max(16 << 20),
        }
    }

    /// New rows held in memory, all dates together, before the largest date spills.
    pub fn buffer(&self) -> usize {
        self.limit / 4
    }

    /// Rows merged at once: merging holds its input about three times over (the input,
    /// the deduplicated rows and the sorted rows).
    pub fn merge_input(&self) -> usize {
        self.limit / 6
    }

    /// Arrow bytes of rows in one clean file (the file is built in memory before upload).
    pub fn file_bytes(&self) -> usize {
        (self.limit / 4).clamp(1 << 20, 512 << 20)
    }
}

/// A private folder for spill files, created when the first file is named and removed
/// when the last clone is dropped. Clones share it, so the blocking tasks of a run can
/// each take one along.
#[derive(Clone)]
pub struct SpillDir(Arc<DirInner>);

struct DirInner {
    base: PathBuf,
    path: PathBuf,
    created: Mutex<bool>,
    next: AtomicU64,
}

impl SpillDir {
    pub fn new(base: &FsPath) -> Self {
        let path = base.join(format!("copydog-spill-{}", uuid::Uuid::new_v4().simple()));
        SpillDir(Arc::new(DirInner {
            base: base.to_path_buf(),
            path,
            created: Mutex::new(false),
            next: AtomicU64::new(0),
        }))
    }

    pub fn path(&self) -> &FsPath {
        &self.0.path
    }

    /// A new file name in the folder, which is created first if need be.
    fn file(&self, what: &str) -> Result<PathBuf> {
        let dir = &self.0;
        let mut created = dir.created.lock().unwrap_or_else(|e| e.into_inner());
        if !*created {
            std::fs::create_dir_all(&dir.path).map_err(|error| Error::SpillDir {
                path: dir.base.clone(),
                error,
            })?;
            tracing::info!(path = %dir.path.display(), "spilling to local disk");
            *created = true;
        }
        let n = dir.next.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(dir.path.join(format!("{what}-{n}.arrow")))
    }
}

impl Drop for DirInner {
    fn drop(&mut self) {
        if !*self.created.get_mut().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove the spill folder");
        }
    }
}

/// An error of reading or writing a spill file, and the file.
trait FileError {
    fn at(self, path: &FsPath) -> Error;
}

impl FileError for std::io::Error {
    fn at(self, path: &FsPath) -> Error {
        Error::SpillIo {
            path: path.to_path_buf(),
            error: self,
        }
    }
}

impl FileError for ArrowError {
    fn at(self, path: &FsPath) -> Error {
        Error::SpillArrow {
            path: path.to_path_buf(),
            error: self,
        }
    }
}

fn file_error(path: &FsPath, e: impl FileError) -> Error {
    e.at(path)
}

/// Rows of one date split by key hash into files.
pub struct Buckets {
    level: u32,
    schema: SchemaRef,
    files: Vec<Bucket>,
}

/// One bucket file: opened on its first row.
struct Bucket {
    path: PathBuf,
    writer: Option<StreamWriter<BufWriter<File>>>,
    /// Bytes written and pending.
    bytes: usize,
    /// Rows not written yet: written together, as one message, once they are
    /// [`BUCKET_WRITE_BYTES`], since every message costs the same whatever its rows.
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
}

/// Rows a bucket gathers before it writes them.
const BUCKET_WRITE_BYTES: usize = 1 << 20;

impl Bucket {
    fn flush(&mut self, schema: &SchemaRef) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let rows = concat_batches(schema, &self.pending).map_err(|e| file_error(path, e))?;
        self.pending.clear();
        self.pending_bytes = 0;
        let writer = match self.writer.take() {
            Some(w) => w,
            None => {
                let file = File::create(path).map_err(|e| file_error(path, e))?;
                StreamWriter::try_new(BufWriter::new(file), schema)
                    .map_err(|e| file_error(path, e))?
            }
        };
        self.writer
            .insert(writer)
            .write(&rows)
            .map_err(|e| file_error(path, e))
    }
}

impl Buckets {
    pub fn create(dir: &SpillDir, schema: &SchemaRef, level: u32) -> Result<Self> {
        let mut files = Vec::with_capacity(FANOUT);
        for _ in 0..FANOUT {
            files.push(Bucket {
                path: dir.file(&format!("bucket-l{level}"))?,
                writer: None,
                bytes: 0,
                pending: Vec::new(),
                pending_bytes: 0,
            });
        }
        Ok(Buckets {
            level,
            schema: schema.clone(),
            files,
        })
    }

    /// Bytes written so far (Arrow sizes of the rows).
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Appends `batch`, each row to its key's bucket.
    pub fn write(&mut self, batch: &RecordBatch, meta: &TopicMetadata) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = merge::key_rows_of(batch, meta)?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); FANOUT];
        for i in 0..batch.num_rows() {
            rows[bucket_of(keys.row(i).data(), self.level)].push(i as u32);
        }
        for (b, indices) in rows.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let part = take_record_batch(batch, &UInt32Array::from(indices))?;
            let bucket = &mut self.files[b];
            let size = part.get_array_memory_size();
            bucket.bytes += size;
            bucket.pending_bytes += size;
            bucket.pending.push(part);
            if bucket.pending_bytes >= BUCKET_WRITE_BYTES {
                bucket.flush(&self.schema)?;
            }
        }
        Ok(())
    }

    /// Closes the files: the non-empty buckets and their sizes.
    pub fn finish(self) -> Result<Vec<(PathBuf, usize)>> {
        let mut out = Vec::new();
        for mut bucket in self.files {
            bucket.flush(&self.schema)?;
            if let Some(mut w) = bucket.writer {
                w.finish().map_err(|e| file_error(&bucket.path, e))?;
                out.push((bucket.path, bucket.bytes));
            }
        }
        Ok(out)
    }
}

/// The rows of one date so far: in memory, and once it spilled, in buckets on disk too.
#[derive(Default)]
pub struct DateRows {
    pub batches: Vec<RecordBatch>,
    /// Arrow bytes of `batches`.
    pub bytes: usize,
    pub spilled: Option<Buckets>,
}

impl DateRows {
    pub fn push(&mut self, batch: RecordBatch) {
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
    }

    /// Moves the rows held in memory to the buckets on disk.
    pub fn spill(
        &mut self,
        dir: &SpillDir,
        schema: &SchemaRef,
        meta: &TopicMetadata,
    ) -> Result<()> {
        let buckets = match &mut self.spilled {
            Some(b) => b,
            None => self.spilled.insert(Buckets::create(dir, schema, 0)?),
        };
        for batch in self.batches.drain(..) {
            buckets.write(&batch, meta)?;
        }
        self.bytes = 0;
        Ok(())
    }
}

/// New rows by date while the raw files are read, held within the budget.
pub struct Pending {
    dates: BTreeMap<NaiveDate, DateRows>,
    held: usize,
    budget: Budget,
    dir: SpillDir,
    schema: SchemaRef,
    meta: TopicMetadata,
}

impl Pending {
    pub fn new(budget: Budget, base: PathBuf, schema: SchemaRef, meta: &TopicMetadata) -> Self {
        Pending {
            dates: BTreeMap::new(),
            held: 0,
            budget,
            dir: SpillDir::new(&base),
            schema,
            meta: meta.clone(),
        }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The spill folder of the run (created on first use).
    pub fn dir(&self) -> &SpillDir {
        &self.dir
    }

    /// Adds new rows of `date`; past the budget the largest date in memory spills.
    pub fn push(&mut self, date: NaiveDate, batch: RecordBatch) -> Result<()> {
        self.held += batch.get_array_memory_size();
        self.dates.entry(date).or_default().push(batch);
        while self.held > self.budget.buffer() {
            let Some((&largest, _)) = self
                .dates
                .iter()
                .filter(|(_, r)| r.bytes > 0)
                .max_by_key(|(_, r)| r.bytes)
            else {
                break;
            };
            let Some(rows) = self.dates.get_mut(&largest) else {
                break;
            };
            if rows.spilled.is_none() {
                tracing::info!(
                    topic = self.meta.topic,
                    date = %largest,
                    path = %self.dir.path().display(),
                    "over the memory budget, spilling to local disk"
                );
            }
            self.held -= rows.bytes;
            rows.spill(&self.dir, &self.schema, &self.meta)?;
        }
        Ok(())
    }

    /// Dates touched so far.
    pub fn dates(&self) -> Vec<NaiveDate> {
        self.dates.keys().copied().collect()
    }

    /// Makes sure `date` is merged even with no new rows.
    pub fn touch(&mut self, date: NaiveDate) {
        self.dates.entry(date).or_default();
    }

    /// Takes the rows of `date` out.
    pub fn take(&mut self, date: NaiveDate) -> DateRows {
        let rows = self.dates.remove(&date).unwrap_or_default();
        self.held -= rows.bytes;
        rows
    }
}

/// The bucket of a key at a level: the level's bits of a fixed hash of the key.
fn bucket_of(key: &[u8], level: u32) -> usize {
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::with_seed(0x6f6e_6570_6970_6531).hash_one(key);
    ((hash >> (level * BITS)) as usize) & (FANOUT - 1)
}

fn read_all(path: &FsPath) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| file_error(path, e))?;
    let reader =
        StreamReader::try_new(BufReader::new(file), None).map_err(|e| file_error(path, e))?;
    reader.map(|b| b.map_err(|e| file_error(path, e))).collect()
}

/// What merging the buckets of a date gave: sorted runs on disk and their totals.
pub struct Runs {
    pub paths: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: usize,
    pub conflicts: u64,
    pub checks: Accumulator,
}

impl Runs {
    pub fn new(meta: &TopicMetadata) -> Self {
        Runs {
            paths: Vec::new(),
            rows: 0,
            bytes: 0,
            conflicts: 0,
            checks: Accumulator::new(meta),
        }
    }
}

/// Merges every bucket into a sorted run, splitting buckets over the budget first.
pub fn merge_buckets(
    dir: &SpillDir,
    buckets: Vec<(PathBuf, usize)>,
    level: u32,
    meta: &TopicMetadata,
    schema: &SchemaRef,
    budget: Budget,
    runs: &mut Runs,
) -> Result<()> {
    for (path, bytes) in buckets {
        if bytes > budget.merge_input() && level < MAX_LEVEL {
            let mut split = Buckets::create(dir, schema, level + 1)?;
            let file = File::open(&path).map_err(|e| file_error(&path, e))?;
            let reader = StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| file_error(&path, e))?;
            for batch in reader {
                split.write(&batch.map_err(|e| file_error(&path, e))?, meta)?;
            }
            let parts = split.finish()?;
            std::fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
            merge_buckets(dir, parts, level + 1, meta, schema, budget, runs)?;
            continue;
        }
        let batches = read_all(&path)?;
        std::fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
        let all = concat_batches(schema, &batches)?;
        drop(batches);
        let merged = merge::merge(&all, meta)?;
        drop(all);
        let batch = merged.batch;
        runs.checks.add(&batch)?;
        runs.rows += batch.num_rows() as u64;
        runs.bytes += batch.get_array_memory_size();
        runs.conflicts += merged.conflicts;
        let run = dir.file("run")?;
        write_run(&run, &batch, schema)?;
        runs.paths.push(run);
    }
    Ok(())
}

/// Writes sorted rows in small batches, so reading them back holds little.
fn write_run(path: &FsPath, batch: &RecordBatch, schema: &SchemaRef) -> Result<()> {
    let file = File::create(path).map_err(|e| file_error(path, e))?;
    let mut w =
        StreamWriter::try_new(BufWriter::new(file), schema).map_err(|e| file_error(path, e))?;
    let rows = batch.num_rows();
    let per_row = batch.get_array_memory_size() / rows.max(1);
    let chunk = (RUN_BATCH_BYTES / per_row.max(1)).clamp(64, 65_536);
    let mut start = 0;
    while start < rows {
        let len = chunk.min(rows - start);
        w.write(&batch.slice(start, len))
            .map_err(|e| file_error(path, e))?;
        start += len;
    }
    w.finish().map_err(|e| file_error(path, e))
}

/// One sorted run being read.
struct Cursor {
    path: PathBuf,
    reader: StreamReader<BufReader<File>>,
    batch: RecordBatch,
    rows: Rows,
    at: usize,
}

/// Merges sorted runs into one sorted stream of batches of about `out_rows` rows.
pub struct RunMerger {
    meta: TopicMetadata,
    converter: Option<RowConverter>,
    cursors: Vec<Cursor>,
    /// A binary min-heap of cursor indices by their current row.
    heap: Vec<usize>,
    out_rows: usize,
}

impl RunMerger {
    pub fn open(paths: &[PathBuf], meta: &TopicMetadata, out_rows: usize) -> Result<Self> {
        let mut m = RunMerger {
            meta: meta.clone(),
            converter: None,
            cursors: Vec::new(),
            heap: Vec::new(),
            out_rows: out_rows.max(1),
        };
        for path in paths {
            let file = File::open(path).map_err(|e| file_error(path, e))?;
            let mut reader = StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| file_error(path, e))?;
            if let Some(batch) = next_batch(&mut reader, path)? {
                let rows = m.rows(&batch)?;
                m.cursors.push(Cursor {
                    path: path.clone(),
                    reader,
                    batch,
                    rows,
                    at: 0,
                });
            }
        }
        for i in 0..m.cursors.len() {
            m.heap.push(i);
            m.sift_up(m.heap.len() - 1);
        }
        Ok(m)
    }

    fn rows(&mut self, batch: &RecordBatch) -> Result<Rows> {
        let columns = merge::order_columns(batch, &self.meta)?;
        let converter = match self.converter.take() {
            Some(c) => c,
            None => RowConverter::new(
                columns
                    .iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )?,
        };
        Ok(self.converter.insert(converter).convert_columns(&columns)?)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.cursors[a], &self.cursors[b]);
        x.rows.row(x.at) < y.rows.row(y.at)
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.less(self.heap[i], self.heap[parent]) {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.less(self.heap[l], self.heap[smallest]) {
                smallest = l;
            }
            if r < self.heap.len() && self.less(self.heap[r], self.heap[smallest]) {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    /// The next rows in order; `None` at the end. A batch ends early where a run moves
    /// on to its next batch, so only the current batch of each run is held.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut picked: Vec<(usize, usize)> = Vec::new();
        while let Some(&top) = self.heap.first() {
            let at = self.cursors[top].at;
            picked.push((top, at));
            self.cursors[top].at += 1;
            let exhausted = self.cursors[top].at == self.cursors[top].batch.num_rows();
            if exhausted {
                let out = self.emit(&picked)?;
                let c = &mut self.cursors[top];
                match next_batch(&mut c.reader, &c.path)? {
                    Some(batch) => {
                        let rows = self.rows(&batch)?;
                        let c = &mut self.cursors[top];
                        c.batch = batch;
                        c.rows = rows;
                        c.at = 0;
                        self.sift_down(0);
                    }
                    None => {
                        let last = self.heap.len() - 1;
                        self.heap.swap(0, last);
                        self.heap.pop();
                        self.sift_down(0);
                    }
                }
                return Ok(out);
            }
            self.sift_down(0);
            if picked.len() >= self.out_rows {
                return self.emit(&picked);
            }
        }
        if picked.is_empty() {
            Ok(None)
        } else {
            self.emit(&picked)
        }
    }

    fn emit(&self, picked: &[(usize, usize)]) -> Result<Option<RecordBatch>> {
        let batches: Vec<&RecordBatch> = self.cursors.iter().map(|c| &c.batch).collect();
        Ok(Some(interleave_record_batch(&batches, picked)?))
    }
}

fn next_batch(
    reader: &mut StreamReader<BufReader<File>>,
    path: &FsPath,
) -> Result<Option<RecordBatch>> {
    loop {
        match reader.next() {
            Some(Ok(b)) if b.num_rows() == 0 => continue,
            Some(Ok(b)) => return Ok(Some(b)),
            Some(Err(e)) => return Err(file_error(path, e)),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use onepipe_archive::{OFFSET_COLUMN, PARTITION_COLUMN};
    use std::sync::Arc;

    fn meta() -> TopicMetadata {
        let mut m = TopicMetadata::new("t", vec!["id".into()]);
        m.merge = "max_by(v)".parse().unwrap();
        m.sort_key = vec!["v".into()];
        m
    }

    fn batch(n: usize, seed: u64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
        ]));
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 33
        };
        let ids: Vec<String> = (0..n).map(|_| format!("k{}", next() % 5000)).collect();
        let vs: Vec<i64> = (0..n).map(|_| (next() % 100) as i64).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(vs)),
                Arc::new(Int32Array::from(vec![0; n])),
                Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|o| o + (seed as i64) * 1_000_000),
                )),
            ],
        )
        .unwrap()
    }

    /// Spilling through tiny buckets (split several levels deep) gives exactly the rows
    /// and order of the in-memory merge.
    #[test]
    fn spilled_merge_equals_the_in_memory_merge() {
        let meta = meta();
        let input: Vec<RecordBatch> = (1..=4).map(|s| batch(5000, s)).collect();
        let schema = input[0].schema();
        let whole = concat_batches(&schema, &input).unwrap();
        let expected = merge::merge(&whole, &meta).unwrap();

        let dir = SpillDir::new(&std::env::temp_dir());
        let mut buckets = Buckets::create(&dir, &schema, 0).unwrap();
        for b in &input {
            buckets.write(b, &meta).unwrap();
        }
        let mut runs = Runs::new(&meta);
        // A budget so small that every bucket is split again.
        let budget = Budget { limit: 6 * 20_000 };
        merge_buckets(
            &dir,
            buckets.finish().unwrap(),
            0,
            &meta,
            &schema,
            budget,
            &mut runs,
        )
        .unwrap();
        assert!(runs.paths.len() > FANOUT, "{} runs", runs.paths.len());
        let mut merger = RunMerger::open(&runs.paths, &meta, 1000).unwrap();
        let mut out = Vec::new();
        while let Some(b) = merger.next_batch().unwrap() {
            out.push(b);
        }
        let got = concat_batches(&schema, &out).unwrap();
        assert_eq!(runs.rows as usize, expected.batch.num_rows());
        assert_eq!(got, expected.batch);
        assert_eq!(
            runs.checks.finish().unwrap(),
            crate::checks::compute(&expected.batch, &meta).unwrap()
        );
        let offsets = got.column(3).as_primitive::<Int64Type>();
        assert_eq!(offsets.len(), expected.batch.num_rows());
    }
}
