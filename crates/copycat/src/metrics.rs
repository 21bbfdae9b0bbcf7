//! copycat's Prometheus metrics.

pub const RECORDS: &str = "onepipe_copycat_records_archived_total";
pub const RECORDS_HELP: &str = "records written to raw/ (uploaded and checkpointed)";
pub const BYTES: &str = "onepipe_copycat_bytes_archived_total";
pub const BYTES_HELP: &str = "bytes of keys, values and headers written to raw/";
pub const FILES: &str = "onepipe_copycat_files_written_total";
pub const FILES_HELP: &str = "raw files uploaded";
pub const FILE_BYTES: &str = "onepipe_copycat_file_bytes_uploaded_total";
pub const FILE_BYTES_HELP: &str = "bytes of Parquet uploaded";
pub const UPLOAD_MS: &str = "onepipe_copycat_upload_milliseconds_total";
pub const UPLOAD_MS_HELP: &str =
    "time spent uploading raw files and checkpoints (divide by files written for the mean latency)";
pub const UPLOAD_LAST_MS: &str = "onepipe_copycat_upload_last_milliseconds";
pub const UPLOAD_LAST_MS_HELP: &str = "latency of the latest upload";
pub const UPLOAD_FAILURES: &str = "onepipe_copycat_upload_failures_total";
pub const UPLOAD_FAILURES_HELP: &str = "upload attempts that failed (each is retried)";
pub const LAG: &str = "onepipe_copycat_archive_lag_records";
pub const LAG_HELP: &str =
    "records in the partition not yet in raw/ (high watermark - next offset to archive)";
pub const BUFFERED: &str = "onepipe_copycat_buffered_bytes";
pub const BUFFERED_HELP: &str = "bytes held in memory: open files and files being uploaded";
pub const PARTITIONS: &str = "onepipe_copycat_assigned_partitions";
pub const PARTITIONS_HELP: &str = "partitions this instance archives";
