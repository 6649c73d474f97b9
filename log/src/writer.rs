//! The writer thread: group commit.
//!
//! It takes every queued append (up to `group_commit_bytes_max`), encodes them into one
//! buffer sorted by partition, writes the buffer with one `pwrite`, calls `fdatasync` once,
//! then publishes the new index entries and end offsets and answers every appender.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::format;
use crate::store::Store;

/// What an appender sends to the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    Append(AppendReq),
    /// Commit everything queued before this message, answer, and stop.
    Close(oneshot::Sender<()>),
}

#[derive(Debug)]
pub(crate) enum Payloads {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
}

impl Payloads {
    fn as_slices(&self) -> &[Vec<u8>] {
        match self {
            Payloads::One(p) => std::slice::from_ref(p),
            Payloads::Many(ps) => ps,
        }
    }
}

/// One `append` or `append_batch` call: its records go to consecutive offsets.
#[derive(Debug)]
pub(crate) struct AppendReq {
    pub(crate) partition: u32,
    pub(crate) payloads: Payloads,
    /// Framed size of all payloads, checked against the limits by the caller.
    pub(crate) frame_bytes: usize,
    /// Answered with the offset of the first record.
    pub(crate) reply: oneshot::Sender<Result<u64, Error>>,
}

/// Why the writer must stop.
struct Fatal;

pub(crate) struct Writer {
    store: Arc<Store>,
    rx: mpsc::Receiver<Msg>,
    group_commit_bytes_max: usize,
    /// Where the next group is written.
    file_len: u64,
    /// Next offset of each partition, including records of the group being built.
    next_offsets: Vec<u64>,
    /// Requests of the group being built, per partition, in arrival order.
    buckets: Vec<Vec<AppendReq>>,
    /// Partitions with a non-empty bucket, in first-arrival order.
    touched: Vec<u32>,
    /// Index entries of the group, per partition.
    new_entries: Vec<Vec<u64>>,
    /// The group's encoded records.
    buf: Vec<u8>,
    /// A request taken from the queue that did not fit in the previous group.
    carry: Option<Msg>,
}

impl Writer {
    pub(crate) fn new(
        store: Arc<Store>,
        rx: mpsc::Receiver<Msg>,
        group_commit_bytes_max: usize,
        file_len: u64,
    ) -> Self {
        let partitions = store.partitions.len();
        let next_offsets = (0..partitions)
            .map(|p| store.index_read(p as u32).len())
            .collect();
        Writer {
            store,
            rx,
            group_commit_bytes_max,
            file_len,
            next_offsets,
            buckets: (0..partitions).map(|_| Vec::new()).collect(),
            touched: Vec::new(),
            new_entries: (0..partitions).map(|_| Vec::new()).collect(),
            buf: Vec::new(),
            carry: None,
        }
    }

    /// Runs until the log is closed, every handle is dropped, or a write fails in a way that
    /// leaves the file in an unknown state. Queued appends then fail with `Error::Stopped`.
    pub(crate) fn run(mut self) {
        loop {
            let first = match self.carry.take() {
                Some(msg) => msg,
                None => match self.rx.blocking_recv() {
                    Some(msg) => msg,
                    None => return,
                },
            };
            let mut close = None;
            let mut group_bytes = 0;
            match first {
                Msg::Append(req) => {
                    group_bytes += req.frame_bytes;
                    self.add(req);
                }
                Msg::Close(done) => close = Some(done),
            }
            while close.is_none() && group_bytes < self.group_commit_bytes_max {
                match self.rx.try_recv() {
                    Ok(Msg::Append(req)) => {
                        if group_bytes + req.frame_bytes > self.group_commit_bytes_max {
                            self.carry = Some(Msg::Append(req));
                            break;
                        }
                        group_bytes += req.frame_bytes;
                        self.add(req);
                    }
                    Ok(Msg::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            if !self.touched.is_empty() && self.commit_group().is_err() {
                return;
            }
            if let Some(done) = close {
                // The closer may have given up waiting; nothing to do then.
                let _ = done.send(());
                return;
            }
        }
    }

    fn add(&mut self, req: AppendReq) {
        let bucket = &mut self.buckets[req.partition as usize];
        if bucket.is_empty() {
            self.touched.push(req.partition);
        }
        bucket.push(req);
    }

    /// Encodes, writes and syncs the group, then publishes it and answers its appenders.
    fn commit_group(&mut self) -> Result<(), Fatal> {
        let group_start = self.file_len;
        self.buf.clear();
        for &p in &self.touched {
            let entries = &mut self.new_entries[p as usize];
            for req in &self.buckets[p as usize] {
                for payload in req.payloads.as_slices() {
                    let pos = group_start + self.buf.len() as u64;
                    let offset = self.next_offsets[p as usize];
                    let payload_bytes =
                        u32::try_from(payload.len()).expect("payload length checked by append");
                    entries.push(format::pack_entry(pos, payload_bytes));
                    format::encode_record(&mut self.buf, p, offset, payload);
                    self.next_offsets[p as usize] += 1;
                }
            }
        }
        let group_end = group_start + self.buf.len() as u64;
        if group_end > crate::DATA_FILE_BYTES_MAX {
            self.fail_group(|| Error::Full {
                data_file_bytes_max: crate::DATA_FILE_BYTES_MAX,
            });
            return Ok(());
        }

        if let Err(e) = self.store.file.write_all_at(&self.buf, group_start) {
            tracing::error!(error = %e, path = %self.store.data_path.display(), "log write failed");
            // Cut off whatever part of the group reached the file, so the next group starts
            // at a record boundary; if even that fails the file is in an unknown state.
            let truncated = self.store.file.set_len(group_start);
            let path = self.store.data_path.clone();
            self.fail_group(|| {
                Error::io("writing", &path, io::Error::new(e.kind(), e.to_string()))
            });
            return match truncated {
                Ok(()) => Ok(()),
                Err(te) => {
                    tracing::error!(error = %te, "could not cut a failed write off the log; stopping the writer");
                    Err(Fatal)
                }
            };
        }
        if let Err(e) = self.store.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages and a later
            // fsync can succeed without writing them: nothing written can be trusted to be
            // durable any more, so stop and let a reopen rescan the file.
            tracing::error!(error = %e, path = %self.store.data_path.display(), "log fdatasync failed; stopping the writer");
            let path = self.store.data_path.clone();
            self.fail_group(|| {
                Error::io("syncing", &path, io::Error::new(e.kind(), e.to_string()))
            });
            return Err(Fatal);
        }
        self.file_len = group_end;

        // Durable: publish index entries before end offsets, so a reader that sees an end
        // offset finds its entries.
        let mut records = 0u64;
        for &p in &self.touched {
            let entries = &mut self.new_entries[p as usize];
            records += entries.len() as u64;
            {
                let mut index = self.store.index_write(p);
                for &entry in entries.iter() {
                    index.push(entry);
                }
                assert_eq!(
                    index.len(),
                    self.next_offsets[p as usize],
                    "the writer's offsets and the index of partition {p} diverged"
                );
            }
            entries.clear();
            self.store.partitions[p as usize]
                .end
                .send_replace(self.next_offsets[p as usize]);
        }
        let counters = &self.store.counters;
        counters.groups.fetch_add(1, Ordering::Relaxed);
        counters.records.fetch_add(records, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);

        for &p in &self.touched {
            // Offsets of the bucket were assigned in order from the old end.
            let mut offset = self.next_offsets[p as usize];
            let bucket = &mut self.buckets[p as usize];
            offset -= bucket
                .iter()
                .map(|r| r.payloads.as_slices().len() as u64)
                .sum::<u64>();
            for req in bucket.drain(..) {
                let count = req.payloads.as_slices().len() as u64;
                // An appender that gave up waiting (its future was dropped) is not an error:
                // its record is durable all the same.
                let _ = req.reply.send(Ok(offset));
                offset += count;
            }
        }
        self.touched.clear();
        self.shrink_buffer();
        Ok(())
    }

    /// Rolls the group back (offsets, entries) and answers its appenders with an error.
    fn fail_group(&mut self, error: impl Fn() -> Error) {
        for &p in &self.touched {
            let entries = &mut self.new_entries[p as usize];
            self.next_offsets[p as usize] -= entries.len() as u64;
            entries.clear();
            for req in self.buckets[p as usize].drain(..) {
                let _ = req.reply.send(Err(error()));
            }
        }
        self.touched.clear();
        self.shrink_buffer();
    }

    /// A group larger than usual (one huge batch) should not pin its buffer forever.
    fn shrink_buffer(&mut self) {
        if self.buf.capacity() > 2 * self.group_commit_bytes_max.max(1 << 20) {
            self.buf = Vec::new();
        }
    }
}
