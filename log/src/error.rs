//! The crate's one error enum.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong opening, appending to or reading the embedded log.
///
/// Each variant knows whether retrying the same call can help: see [`Error::is_retriable`].
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The configuration is unusable (zero partitions, a zero-sized queue, …). Fix the config.
    #[error("invalid embedded log configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and what the allowed range is.
        reason: String,
    },

    /// The log directory was created with a different number of partitions. Records are
    /// already placed by `partition_for(id, stored)`, so changing the count would move
    /// resources between partitions and break ordering: use the stored count, or a new
    /// directory.
    #[error(
        "the log in {dir} has {stored} partitions but the configuration asks for {configured}; \
         the partition count is fixed when a log is created (use {stored}, or a new directory)"
    )]
    PartitionCountMismatch {
        /// The log directory.
        dir: PathBuf,
        /// Partition count recorded in the meta file.
        stored: u32,
        /// Partition count the caller asked for.
        configured: u32,
    },

    /// The partition number is not below the log's partition count.
    #[error("partition {partition} does not exist: the log has {partitions} partitions")]
    UnknownPartition {
        /// The partition asked for.
        partition: u32,
        /// The log's partition count.
        partitions: u32,
    },

    /// One payload is larger than [`crate::RECORD_PAYLOAD_BYTES_MAX`].
    #[error(
        "record payload of {payload_bytes} bytes exceeds the limit of {payload_bytes_max} bytes"
    )]
    RecordTooLarge {
        /// Size of the rejected payload.
        payload_bytes: usize,
        /// The limit.
        payload_bytes_max: usize,
    },

    /// A batch's framed size is larger than [`crate::GROUP_COMMIT_BYTES_CAP`]; split it.
    #[error("batch of {batch_bytes} framed bytes exceeds the limit of {batch_bytes_max} bytes; split it")]
    BatchTooLarge {
        /// Framed size of the rejected batch.
        batch_bytes: usize,
        /// The limit.
        batch_bytes_max: usize,
    },

    /// `append_batch` was called with no payloads: there is no first offset to return.
    #[error("append_batch needs at least one payload")]
    EmptyBatch,

    /// A read started past the end of the partition. The reader's position is ahead of the
    /// log, which means its stored offset does not belong to this log.
    #[error("offset {offset} is past the end ({end_offset}) of partition {partition}")]
    OffsetOutOfRange {
        /// The partition read.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's end offset at the time of the read.
        end_offset: u64,
    },

    /// The handle was opened with [`crate::EmbeddedLog::open_read_only`]; it cannot append.
    #[error("the log was opened read-only; appends need EmbeddedLog::open")]
    ReadOnly,

    /// The writer has stopped: the log was closed, or an I/O failure made further writes
    /// unsafe (see the error logged at that moment). Reopen the log to continue.
    #[error("the log writer has stopped (closed, or failed after an I/O error); reopen the log")]
    Stopped,

    /// The data file reached [`crate::DATA_FILE_BYTES_MAX`].
    #[error("the log's data file reached its size limit of {data_file_bytes_max} bytes")]
    Full {
        /// The limit.
        data_file_bytes_max: u64,
    },

    /// A file does not hold what this format promises: a bad meta file, a data file without
    /// one, a damaged record that is not a torn tail, or a record that no longer matches the
    /// index. Needs a person: the log's files were damaged or replaced.
    #[error("the log file {path} is corrupt: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was found, and where.
        reason: String,
    },

    /// An operating-system I/O error. Transient conditions (a full disk, an interrupted
    /// device) can clear, so a retry — after reopening if the writer stopped — may succeed.
    /// An append that failed with this error may still have reached the disk.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        /// What the log was doing ("writing", "syncing", "opening", …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether retrying the same call can succeed. Only I/O errors can: every other variant
    /// is a caller bug, a configuration mistake, damaged files, or a stopped writer (for
    /// which the remedy is to reopen, not to retry on this handle).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
