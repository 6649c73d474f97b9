//! The state shared by the handle, the writer thread and readers: the open data file, the
//! per-partition indexes and end-offset watches, and the positional read path.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::Error;
use crate::format::{self, Header, HEADER_BYTES};
use crate::index::Index;
use crate::{LogRecord, LogStats};

/// A read coalesces neighbouring records into one positional read while the bytes skipped
/// between them (other partitions' records) stay below this: copying 16 KiB from the page
/// cache costs about what one more `pread` does.
const READ_GAP_BYTES_MAX: u64 = 16 << 10;
/// Largest single positional read.
const READ_SPAN_BYTES_MAX: u64 = 1 << 20;
/// A read returns fewer than `max_records` once it has this many framed bytes (always at
/// least one record).
pub(crate) const READ_BYTES_MAX: u64 = 16 << 20;

/// One partition's published state.
#[derive(Debug)]
pub(crate) struct PartitionState {
    /// Entries of durable records only; the writer extends it after fsync.
    pub(crate) index: RwLock<Index>,
    /// The end offset, published after `index` is extended; readers wait on it.
    pub(crate) end: watch::Sender<u64>,
}

/// Monotonic counters, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) groups: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) data_path: PathBuf,
    /// Opened read-write by the writer, read-only otherwise. All I/O on it is positional
    /// (`pread`/`pwrite`), so readers and the writer share it without a lock; only the
    /// read-only refresh scan uses the file cursor, under `refresh_pos`.
    pub(crate) file: File,
    pub(crate) partitions: Box<[PartitionState]>,
    /// Read-only handles: the position up to which the data file has been scanned.
    /// `None` for the writer's handle.
    refresh_pos: Option<Mutex<u64>>,
    pub(crate) counters: Counters,
}

impl Store {
    /// Opens the data file of a log whose meta file says `partitions`, scans it and builds the
    /// indexes. A writable open truncates a torn tail; a read-only one treats it as the end.
    /// Returns the store and the data file length (where the next write goes).
    pub(crate) fn open(dir: &Path, partitions: u32, writable: bool) -> Result<(Store, u64), Error> {
        let data_path = dir.join(format::DATA_FILE_NAME);
        let file = if writable {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&data_path)
                .map_err(|e| Error::io("opening", &data_path, e))?;
            // The file may have just been created: make its directory entry durable.
            format::sync_dir(dir)?;
            file
        } else {
            File::open(&data_path).map_err(|e| Error::io("opening", &data_path, e))?
        };
        let store = Store {
            dir: dir.to_path_buf(),
            data_path,
            file,
            partitions: (0..partitions)
                .map(|_| PartitionState {
                    index: RwLock::new(Index::default()),
                    end: watch::Sender::new(0),
                })
                .collect(),
            refresh_pos: (!writable).then(|| Mutex::new(0)),
            counters: Counters::default(),
        };
        let file_len = store.file_len()?;
        let valid_end = store.scan_from(0, file_len)?;
        if writable && valid_end < file_len {
            tracing::warn!(
                path = %store.data_path.display(),
                valid_end,
                discarded_bytes = file_len - valid_end,
                "truncating the torn tail of the log (a write interrupted by a crash)"
            );
            store
                .file
                .set_len(valid_end)
                .and_then(|()| store.file.sync_all())
                .map_err(|e| Error::io("truncating", &store.data_path, e))?;
        }
        if let Some(pos) = &store.refresh_pos {
            *pos.lock().expect("refresh lock poisoned") = valid_end;
        }
        Ok((store, valid_end))
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.refresh_pos.is_some()
    }

    fn file_len(&self) -> Result<u64, Error> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("reading the size of", &self.data_path, e))
    }

    pub(crate) fn index_read(&self, partition: u32) -> RwLockReadGuard<'_, Index> {
        self.partitions[partition as usize]
            .index
            .read()
            .expect("index lock poisoned: a thread panicked while publishing records")
    }

    pub(crate) fn index_write(&self, partition: u32) -> RwLockWriteGuard<'_, Index> {
        self.partitions[partition as usize]
            .index
            .write()
            .expect("index lock poisoned: a thread panicked while publishing records")
    }

    /// Scans the data file from `start` (a record boundary) to `limit`, appends every valid
    /// record to the indexes, publishes the new end offsets, and returns where the valid
    /// records end. Fails when the invalid region after them is too large to be a torn write.
    fn scan_from(&self, start: u64, limit: u64) -> Result<u64, Error> {
        let mut next_offsets: Vec<u64> = (0..self.partitions.len())
            .map(|p| self.index_read(p as u32).len())
            .collect();
        let before = next_offsets.clone();
        let mut reader = &self.file;
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("seeking", &self.data_path, e))?;
        let mut indexes: Vec<_> = (0..self.partitions.len())
            .map(|p| self.index_write(p as u32))
            .collect();
        let end = format::scan_records(reader, start, limit, &mut next_offsets, |p, entry| {
            indexes[p as usize].push(entry)
        })
        .map_err(|e| Error::io("reading", &self.data_path, e))?;
        drop(indexes);
        for (p, (old, new)) in before.iter().zip(&next_offsets).enumerate() {
            if new != old {
                self.partitions[p].end.send_replace(*new);
            }
        }
        if let Some(reason) = end.stop_reason {
            let invalid_bytes = limit - end.valid_end;
            // The writer fsyncs each group before writing the next, so a crash can damage
            // at most the last group, which is never larger than the cap. Damage further from
            // the end is not a torn write, and truncating it would drop acknowledged records.
            if invalid_bytes > crate::GROUP_COMMIT_BYTES_CAP as u64 {
                return Err(Error::corrupt(
                    &self.data_path,
                    format!(
                        "{reason}, followed by {invalid_bytes} more bytes: too much to be a \
                         torn write (at most {} bytes); refusing to truncate",
                        crate::GROUP_COMMIT_BYTES_CAP
                    ),
                ));
            }
            tracing::debug!(%reason, invalid_bytes, "log scan stopped before the end of the file");
        }
        Ok(end.valid_end)
    }

    /// Read-only handles: indexes records written since the last scan. No-op for the writer.
    pub(crate) fn refresh(&self) -> Result<(), Error> {
        let Some(pos) = &self.refresh_pos else {
            return Ok(());
        };
        let mut pos = pos.lock().expect("refresh lock poisoned");
        let file_len = self.file_len()?;
        if file_len > *pos {
            *pos = self.scan_from(*pos, file_len)?;
        }
        Ok(())
    }

    /// Reads up to `max_records` indexed records of `partition` from offset `from`.
    pub(crate) fn read_range(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<LogRecord>, Error> {
        let mut entries = Vec::new();
        {
            let index = self.index_read(partition);
            let end_offset = index.len();
            if from > end_offset {
                return Err(Error::OffsetOutOfRange {
                    partition,
                    offset: from,
                    end_offset,
                });
            }
            let available = usize::try_from(end_offset - from).unwrap_or(usize::MAX);
            index.copy_range(from, available.min(max_records), &mut entries);
        }
        let frame_end = |entry: u64| {
            format::entry_pos(entry)
                + format::frame_bytes(format::entry_payload_bytes(entry) as usize) as u64
        };
        let mut records = Vec::with_capacity(entries.len());
        let mut total_bytes = 0u64;
        let mut i = 0;
        while i < entries.len() && (i == 0 || total_bytes < READ_BYTES_MAX) {
            // Coalesce entries i..j into one span read.
            let span_start = format::entry_pos(entries[i]);
            let mut span_end = frame_end(entries[i]);
            total_bytes += span_end - span_start;
            let mut j = i + 1;
            while let Some(&entry) = entries.get(j) {
                let pos = format::entry_pos(entry);
                let end = frame_end(entry);
                if pos - span_end > READ_GAP_BYTES_MAX
                    || end - span_start > READ_SPAN_BYTES_MAX
                    || total_bytes + (end - pos) > READ_BYTES_MAX
                {
                    break;
                }
                total_bytes += end - pos;
                span_end = end;
                j += 1;
            }
            let span_len = usize::try_from(span_end - span_start).expect("span fits in memory");
            let mut span = vec![0u8; span_len];
            self.file
                .read_exact_at(&mut span, span_start)
                .map_err(|e| Error::io("reading", &self.data_path, e))?;
            let span = Bytes::from(span);
            for (k, &entry) in entries[i..j].iter().enumerate() {
                let offset = from + (i + k) as u64;
                records.push(self.decode_at(&span, span_start, entry, partition, offset)?);
            }
            i = j;
        }
        Ok(records)
    }

    /// Checks the record of `entry` inside `span` against the index and its CRC.
    fn decode_at(
        &self,
        span: &Bytes,
        span_start: u64,
        entry: u64,
        partition: u32,
        offset: u64,
    ) -> Result<LogRecord, Error> {
        let pos = format::entry_pos(entry);
        let at = usize::try_from(pos - span_start).expect("inside the span");
        let header_bytes: &[u8; HEADER_BYTES] = span[at..at + HEADER_BYTES]
            .try_into()
            .expect("slice has the header length");
        let header = Header::decode(header_bytes);
        let payload_bytes = format::entry_payload_bytes(entry);
        let payload_at = at + HEADER_BYTES;
        let payload = span.slice(payload_at..payload_at + payload_bytes as usize);
        let matches_index = header.partition == partition
            && header.offset == offset
            && header.payload_bytes == payload_bytes;
        if !matches_index || Header::expected_crc(header_bytes, &payload) != header.crc {
            return Err(Error::corrupt(
                &self.data_path,
                format!(
                    "the record of partition {partition} offset {offset} at {pos} changed on \
                     disk after it was written"
                ),
            ));
        }
        Ok(LogRecord { offset, payload })
    }

    pub(crate) fn stats(&self) -> LogStats {
        LogStats {
            committed_groups: self.counters.groups.load(Ordering::Relaxed),
            committed_records: self.counters.records.load(Ordering::Relaxed),
            committed_bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }
}
