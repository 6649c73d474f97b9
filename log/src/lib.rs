//! The embedded durable partitioned log: turnstile's default, no-server log backend.
//!
//! The HTTP edge appends commands (opaque byte payloads) with [`EmbeddedLog::append`] and
//! acknowledges a request only once that call returns: the record is then written and
//! `fdatasync`'d. One processor per partition reads records in offset order with
//! [`EmbeddedLog::read`]. Offsets are per partition, dense and start at 0, as in Kafka.
//! Resources are placed on partitions with [`partition_for`].
//!
//! # Layout
//!
//! - `lib.rs` — the public handle [`EmbeddedLog`], its config, records, [`partition_for`].
//! - `writer.rs` — the writer thread and its group commit.
//! - `store.rs` — state shared by the handle, writer and readers; the positional read path
//!   and the recovery scan driver.
//! - `index.rs` — the per-partition in-memory offset index.
//! - `format.rs` — the on-disk format: framing, scanning, the meta file.
//! - `error.rs` — the crate's [`Error`].
//!
//! # How it works
//!
//! Appenders send their payloads over a bounded queue (`append_queue_max` requests; a full
//! queue makes `append` wait) to one writer thread. The writer takes everything queued, up
//! to `group_commit_bytes_max` bytes, encodes it into one buffer, writes the buffer with one
//! `pwrite`, calls `fdatasync` once for the whole group — all partitions share the file and
//! so share the fsync — and only then publishes the records to the index, wakes waiting
//! readers and answers the appenders. Readers therefore never see a record that is not
//! durable. Reads look records up in a per-partition index (8 bytes per record) and fetch
//! them with positional reads, coalescing neighbouring records into one read.
//!
//! # Format
//!
//! A log directory holds two files:
//!
//! - `meta`: text, written once when the log is created (atomically: temporary file, fsync,
//!   rename, fsync of the directory):
//!   ```text
//!   turnstile-log
//!   format 1
//!   partitions <count>
//!   ```
//! - `records.log`: the records of all partitions, back to back, in commit order; within a
//!   group the records are sorted by partition (stable), so a partition's records of one
//!   group are contiguous. Each record is a 20-byte little-endian header and its payload:
//!
//!   | bytes | field | meaning |
//!   |---|---|---|
//!   | 0..4 | `crc32` | CRC-32 (IEEE, `crc32fast`) of bytes 4.. of the record, header and payload |
//!   | 4..8 | `payload_len` | payload length in bytes, at most [`RECORD_PAYLOAD_BYTES_MAX`] |
//!   | 8..12 | `partition` | partition number, below the count in `meta` |
//!   | 12..20 | `offset` | the record's offset within its partition |
//!   | 20.. | payload | `payload_len` opaque bytes |
//!
//! # Recovery
//!
//! Opening scans `records.log` from the start. A record is valid when it is complete, its
//! CRC matches, its partition exists and its offset is the next one of its partition. The
//! scan stops at the first invalid record: everything from there is a torn tail (a group
//! whose write a crash interrupted; none of its appenders was answered) and a writable open
//! truncates it. Because the writer syncs each group before writing the next, a torn tail is
//! never larger than [`GROUP_COMMIT_BYTES_CAP`]; a larger invalid region is damage, not a
//! torn write, and opening fails with [`Error::Corrupt`] instead of dropping acknowledged
//! records.
//!
//! # Limits
//!
//! There is no retention or compaction: the data file grows until [`DATA_FILE_BYTES_MAX`].
//! One writer per directory: opening the same directory writable twice is not detected and
//! must not be done (read-only opens alongside a writer are fine).

mod error;
mod format;
mod index;
mod store;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::error::Error;
use crate::store::Store;
use crate::writer::{AppendReq, Msg, Payloads, Writer};

/// Largest payload of one record, in bytes.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// Largest group the writer ever writes before an fsync, in bytes, and so the largest torn
/// tail recovery accepts. `group_commit_bytes_max` may not exceed it, and neither may the
/// framed size of one `append_batch`.
pub const GROUP_COMMIT_BYTES_CAP: usize = 64 << 20;

/// Largest size of the data file, in bytes (1 TiB): index entries keep 40 bits of position.
pub const DATA_FILE_BYTES_MAX: u64 = 1 << 40;

/// Largest partition count.
pub const PARTITIONS_MAX: u32 = 65_536;

/// Default of [`EmbeddedLogConfig::append_queue_max`].
pub const APPEND_QUEUE_MAX_DEFAULT: usize = 65_536;

/// Default of [`EmbeddedLogConfig::group_commit_bytes_max`] (4 MiB).
pub const GROUP_COMMIT_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// How to open or create an embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Directory holding the log's files; created (with its parents) if missing.
    pub dir: PathBuf,
    /// Number of partitions, 1..=[`PARTITIONS_MAX`]. Fixed when the log is created (it is
    /// stored in the `meta` file); reopening with another count fails with
    /// [`Error::PartitionCountMismatch`].
    pub partitions: u32,
    /// Most append requests (an `append` or an `append_batch` call each) waiting for the
    /// writer. When the queue is full, `append` waits: backpressure instead of memory growth.
    pub append_queue_max: usize,
    /// Most framed bytes written per fsync group, 1..=[`GROUP_COMMIT_BYTES_CAP`]. A single
    /// request larger than this still forms a group of its own.
    pub group_commit_bytes_max: usize,
}

impl EmbeddedLogConfig {
    /// A config with the default queue and group limits.
    pub fn new(dir: impl Into<PathBuf>, partitions: u32) -> Self {
        EmbeddedLogConfig {
            dir: dir.into(),
            partitions,
            append_queue_max: APPEND_QUEUE_MAX_DEFAULT,
            group_commit_bytes_max: GROUP_COMMIT_BYTES_MAX_DEFAULT,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidConfig { reason });
        if self.partitions == 0 || self.partitions > PARTITIONS_MAX {
            return invalid(format!(
                "partitions is {}; it must be between 1 and {PARTITIONS_MAX}",
                self.partitions
            ));
        }
        if self.append_queue_max == 0 || self.append_queue_max > tokio::sync::Semaphore::MAX_PERMITS
        {
            return invalid(format!(
                "append_queue_max is {}; it must be between 1 and {}",
                self.append_queue_max,
                tokio::sync::Semaphore::MAX_PERMITS
            ));
        }
        if self.group_commit_bytes_max == 0 || self.group_commit_bytes_max > GROUP_COMMIT_BYTES_CAP
        {
            return invalid(format!(
                "group_commit_bytes_max is {}; it must be between 1 and {GROUP_COMMIT_BYTES_CAP}",
                self.group_commit_bytes_max
            ));
        }
        Ok(())
    }
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The record's offset in its partition.
    pub offset: u64,
    /// The bytes appended.
    pub payload: Bytes,
}

/// Counters of what the writer committed since the log was opened, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Groups written and fsync'd (one fsync each).
    pub committed_groups: u64,
    /// Records made durable.
    pub committed_records: u64,
    /// Framed bytes made durable.
    pub committed_bytes: u64,
}

/// A handle to an open embedded log. Cloning is cheap; all clones share one writer.
///
/// When the last clone is dropped the writer commits what is still queued and stops; the
/// drop waits for that (at most one group's write and fsync).
#[derive(Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<Store>,
    /// `None` for read-only handles.
    sender: Option<mpsc::Sender<Msg>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and return.
        self.sender = None;
        let handle = self
            .writer
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.shared.store.dir)
            .field("partitions", &self.partitions())
            .field("read_only", &self.shared.store.is_read_only())
            .finish()
    }
}

impl EmbeddedLog {
    /// Opens the log in `config.dir`, creating it if needed.
    ///
    /// Scans the data file, truncates a torn tail (a partial or CRC-failing last group left by
    /// a crash mid-write), rebuilds the in-memory index and starts the writer thread.
    pub fn open(config: EmbeddedLogConfig) -> Result<Self, Error> {
        config.validate()?;
        let dir = config.dir.as_path();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        match format::read_meta(dir)? {
            Some(stored) if stored != config.partitions => {
                return Err(Error::PartitionCountMismatch {
                    dir: dir.to_path_buf(),
                    stored,
                    configured: config.partitions,
                });
            }
            Some(_) => {}
            None => {
                let data_path = dir.join(format::DATA_FILE_NAME);
                if data_path.exists() {
                    return Err(Error::corrupt(
                        data_path,
                        "a data file without a meta file; this directory is not a log this \
                         build created",
                    ));
                }
                format::write_meta(dir, config.partitions)?;
            }
        }
        let (store, file_len) = Store::open(dir, config.partitions, true)?;
        let store = Arc::new(store);
        let (sender, rx) = mpsc::channel(config.append_queue_max);
        let writer = Writer::new(
            Arc::clone(&store),
            rx,
            config.group_commit_bytes_max,
            file_len,
        );
        let handle = std::thread::Builder::new()
            .name("turnstile-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("starting the writer thread for", dir, e))?;
        Ok(EmbeddedLog {
            shared: Arc::new(Shared {
                store,
                sender: Some(sender),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Opens an existing log for reading only: no writer thread and no truncation (a torn
    /// tail is simply the end). Safe while another process has the log open for writing,
    /// e.g. for an offline audit. Appends fail with [`Error::ReadOnly`].
    ///
    /// The handle sees the records present when it was opened; [`EmbeddedLog::refresh`] (and
    /// every [`EmbeddedLog::read`]) picks up later ones. While a writer runs, a read-only
    /// handle may see records that are written but whose fsync has not finished yet.
    pub fn open_read_only(dir: &Path) -> Result<Self, Error> {
        let partitions = format::read_meta(dir)?.ok_or_else(|| {
            Error::io(
                "opening",
                dir.join(format::META_FILE_NAME),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no log meta file"),
            )
        })?;
        let (store, _) = Store::open(dir, partitions, false)?;
        Ok(EmbeddedLog {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                sender: None,
                writer: Mutex::new(None),
            }),
        })
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.shared.store.partitions.len()).expect("at most PARTITIONS_MAX")
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.store.dir
    }

    /// Whether this handle was opened with [`EmbeddedLog::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.shared.store.is_read_only()
    }

    fn check_partition(&self, partition: u32) -> Result<(), Error> {
        let partitions = self.partitions();
        if partition >= partitions {
            return Err(Error::UnknownPartition {
                partition,
                partitions,
            });
        }
        Ok(())
    }

    /// Appends one record to `partition` and returns its offset once it is durable (written
    /// and `fdatasync`'d). Waits while the append queue is full.
    ///
    /// Cancel safety: if the future is dropped after the request was queued, the record may
    /// still be written.
    pub async fn append(&self, partition: u32, payload: Vec<u8>) -> Result<u64, Error> {
        check_payload(&payload)?;
        let frame_bytes = format::frame_bytes(payload.len());
        self.submit(partition, Payloads::One(payload), frame_bytes)
            .await
    }

    /// Appends `payloads` to `partition` at consecutive offsets, in one group with one fsync,
    /// and returns the offset of the first. Either all are durable or the call fails.
    ///
    /// The framed size (20 bytes of header per record plus payloads) may be at most
    /// [`GROUP_COMMIT_BYTES_CAP`].
    pub async fn append_batch(&self, partition: u32, payloads: Vec<Vec<u8>>) -> Result<u64, Error> {
        if payloads.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut frame_bytes = 0usize;
        for payload in &payloads {
            check_payload(payload)?;
            frame_bytes += format::frame_bytes(payload.len());
        }
        if frame_bytes > GROUP_COMMIT_BYTES_CAP {
            return Err(Error::BatchTooLarge {
                batch_bytes: frame_bytes,
                batch_bytes_max: GROUP_COMMIT_BYTES_CAP,
            });
        }
        self.submit(partition, Payloads::Many(payloads), frame_bytes)
            .await
    }

    async fn submit(
        &self,
        partition: u32,
        payloads: Payloads,
        frame_bytes: usize,
    ) -> Result<u64, Error> {
        self.check_partition(partition)?;
        let sender = self.shared.sender.as_ref().ok_or(Error::ReadOnly)?;
        let (reply, answer) = oneshot::channel();
        let req = AppendReq {
            partition,
            payloads,
            frame_bytes,
            reply,
        };
        sender
            .send(Msg::Append(req))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Offset one past the last durable record of `partition` (0 when it is empty).
    ///
    /// # Panics
    ///
    /// If `partition` is not below [`EmbeddedLog::partitions`]: that is a caller bug.
    pub fn end_offset(&self, partition: u32) -> u64 {
        let partitions = self.partitions();
        assert!(
            partition < partitions,
            "end_offset of partition {partition}, but the log has {partitions} partitions"
        );
        *self.shared.store.partitions[partition as usize]
            .end
            .borrow()
    }

    /// Reads up to `max_records` durable records of `partition` from offset `from` on,
    /// waiting until at least one exists. Never returns records that are not yet durable.
    ///
    /// `shutdown` is a shutdown signal (`true` = shut down): when it is or becomes `true`
    /// while the read waits, the read returns an empty `Vec`. The read marks the signal's
    /// current value as seen. If its sender is dropped, the read just waits for records.
    ///
    /// May return fewer than `max_records` (it stops after about 16 MiB). Reading from
    /// `from == end_offset` waits; from beyond it fails with [`Error::OffsetOutOfRange`].
    /// A read-only handle has no writer to wait for: it refreshes and returns what exists,
    /// possibly nothing. After the writer stopped (closed or failed) no record will come, so
    /// a read at the end waits for `shutdown`. The file reads run on tokio's blocking pool.
    pub async fn read(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<LogRecord>, Error> {
        self.check_partition(partition)?;
        let store = Arc::clone(&self.shared.store);
        if store.is_read_only() {
            return blocking(move || {
                store.refresh()?;
                store.read_range(partition, from, max_records)
            })
            .await;
        }
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let mut end = store.partitions[partition as usize].end.subscribe();
        let mut shutdown_live = true;
        loop {
            if *end.borrow_and_update() != from {
                // Records exist, or `from` is past the end and read_range reports it.
                break;
            }
            if *shutdown.borrow_and_update() {
                return Ok(Vec::new());
            }
            tokio::select! {
                changed = end.changed() => {
                    // The sender lives in the store, which this function holds.
                    changed.expect("the end offset sender outlives its readers");
                }
                changed = shutdown.changed(), if shutdown_live => {
                    if changed.is_err() {
                        shutdown_live = false;
                    }
                }
            }
        }
        blocking(move || store.read_range(partition, from, max_records)).await
    }

    /// Reads up to `max_records` durable records of `partition` from `from` on without
    /// waiting: returns what exists now, possibly nothing. Does the file reads on the calling
    /// thread (from the page cache, normally microseconds).
    pub fn read_now(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<LogRecord>, Error> {
        self.check_partition(partition)?;
        self.shared.store.read_range(partition, from, max_records)
    }

    /// Read-only handles: picks up records written since the handle was opened or last
    /// refreshed. A no-op on a writable handle, which always sees every durable record.
    pub fn refresh(&self) -> Result<(), Error> {
        self.shared.store.refresh()
    }

    /// What the writer committed since this log was opened.
    pub fn stats(&self) -> LogStats {
        self.shared.store.stats()
    }

    /// Commits everything queued before this call, then stops the writer and waits for it.
    /// Other clones of the handle then fail appends with [`Error::Stopped`]; their reads keep
    /// working. Dropping the last handle also stops the writer.
    pub async fn close(self) -> Result<(), Error> {
        let Some(sender) = &self.shared.sender else {
            return Ok(());
        };
        let (done, closed) = oneshot::channel();
        if sender.send(Msg::Close(done)).await.is_ok() {
            // An error means the writer already stopped; there is nothing left to commit.
            let _ = closed.await;
        }
        let handle = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            blocking(move || {
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Runs blocking work (file I/O, a thread join) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down and dropped the task before it ran.
        Err(_) => Err(Error::Stopped),
    }
}

fn check_payload(payload: &[u8]) -> Result<(), Error> {
    if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
        return Err(Error::RecordTooLarge {
            payload_bytes: payload.len(),
            payload_bytes_max: RECORD_PAYLOAD_BYTES_MAX,
        });
    }
    Ok(())
}

/// The partition of a resource: [`stable_hash`] of `resource_id` modulo `partitions`.
///
/// # Panics
///
/// If `partitions` is 0.
pub fn partition_for(resource_id: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "partition_for needs at least one partition");
    let h = stable_hash(resource_id.as_bytes());
    u32::try_from(h % u64::from(partitions)).expect("below partitions, a u32")
}

/// A hash that never changes across processes, builds or versions, for values that are
/// persisted in effect (a resource's partition, a request's key in Redis): FNV-1a 64 over
/// the bytes, followed by the MurmurHash3 64-bit finalizer (`fmix64`) so that the low bits
/// spread well for ids that differ only in a few characters. Written out here, not taken
/// from `std`, whose hasher is randomly seeded and may change between releases. The tests
/// pin a few values.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET_BASIS;
    for &byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}
