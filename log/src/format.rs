//! On-disk format: record framing, the recovery scan and the meta file.
//!
//! See the crate root for the format description; this module is its only implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::Error;

/// Bytes in a record header: crc32 (4), payload length (4), partition (4), offset (8).
pub(crate) const HEADER_BYTES: usize = 20;

/// Name of the data file inside the log directory.
pub(crate) const DATA_FILE_NAME: &str = "records.log";
/// Name of the meta file inside the log directory.
pub(crate) const META_FILE_NAME: &str = "meta";
const META_TMP_FILE_NAME: &str = "meta.tmp";
const META_MAGIC_LINE: &str = "turnstile-log";
const META_FORMAT_VERSION: u32 = 1;

/// Bits of a packed index entry used by the payload length (the low bits).
const INDEX_LEN_BITS: u32 = 24;

/// Framed size of a record with a payload of `payload_bytes`.
pub(crate) fn frame_bytes(payload_bytes: usize) -> usize {
    HEADER_BYTES + payload_bytes
}

/// Appends one framed record to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, partition: u32, offset: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("payload length was checked against the limit");
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&partition.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) crc: u32,
    pub(crate) payload_bytes: u32,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
}

impl Header {
    pub(crate) fn decode(bytes: &[u8; HEADER_BYTES]) -> Self {
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&bytes[12..20]);
        Header {
            crc: u32_at(0),
            payload_bytes: u32_at(4),
            partition: u32_at(8),
            offset: u64::from_le_bytes(offset),
        }
    }

    /// The CRC the header should carry, given the payload that follows it.
    pub(crate) fn expected_crc(header_bytes: &[u8; HEADER_BYTES], payload: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header_bytes[4..]);
        hasher.update(payload);
        hasher.finalize()
    }
}

/// Packs a record's file position and payload length into one index entry: the position in
/// the high 40 bits, the payload length in the low 24.
pub(crate) fn pack_entry(pos: u64, payload_bytes: u32) -> u64 {
    debug_assert!(pos < crate::DATA_FILE_BYTES_MAX);
    debug_assert!(payload_bytes < (1 << INDEX_LEN_BITS));
    (pos << INDEX_LEN_BITS) | u64::from(payload_bytes)
}

/// Position of the record's header in the data file.
pub(crate) fn entry_pos(entry: u64) -> u64 {
    entry >> INDEX_LEN_BITS
}

/// Payload length of the record.
pub(crate) fn entry_payload_bytes(entry: u64) -> u32 {
    u32::try_from(entry & ((1 << INDEX_LEN_BITS) - 1)).expect("masked to 24 bits")
}

/// Where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Position just past the last valid record.
    pub(crate) valid_end: u64,
    /// Why the scan stopped before `limit`, if it did (a torn or damaged record).
    pub(crate) stop_reason: Option<String>,
}

/// Reads records from `reader`, which is positioned at `start`, up to position `limit`.
///
/// A record is valid when its header is complete, its payload length is within the limit,
/// its partition exists, its offset is the next one of its partition (`next_offsets`, which
/// the scan advances), its payload is complete and its CRC matches. The scan stops at the
/// first invalid record and calls `on_record(partition, packed_entry)` for every valid one.
pub(crate) fn scan_records(
    reader: impl Read,
    start: u64,
    limit: u64,
    next_offsets: &mut [u64],
    mut on_record: impl FnMut(u32, u64),
) -> io::Result<ScanEnd> {
    let mut reader = io::BufReader::with_capacity(1 << 20, reader.take(limit - start));
    let mut pos = start;
    let mut header_bytes = [0u8; HEADER_BYTES];
    let mut payload = Vec::new();
    let stop = |pos: u64, reason: String| ScanEnd {
        valid_end: pos,
        stop_reason: Some(reason),
    };
    loop {
        let got = read_full(&mut reader, &mut header_bytes)?;
        if got == 0 {
            return Ok(ScanEnd {
                valid_end: pos,
                stop_reason: None,
            });
        }
        if got < HEADER_BYTES {
            return Ok(stop(pos, format!("partial header ({got} bytes) at {pos}")));
        }
        let header = Header::decode(&header_bytes);
        let payload_bytes = header.payload_bytes as usize;
        if payload_bytes > crate::RECORD_PAYLOAD_BYTES_MAX {
            return Ok(stop(
                pos,
                format!("impossible payload length {payload_bytes} at {pos}"),
            ));
        }
        let Some(expected_offset) = next_offsets.get(header.partition as usize).copied() else {
            return Ok(stop(
                pos,
                format!("unknown partition {} at {pos}", header.partition),
            ));
        };
        if header.offset != expected_offset {
            return Ok(stop(
                pos,
                format!(
                    "offset {} where partition {} expects {expected_offset} at {pos}",
                    header.offset, header.partition
                ),
            ));
        }
        let record_end = pos + frame_bytes(payload_bytes) as u64;
        if record_end > crate::DATA_FILE_BYTES_MAX {
            return Ok(stop(
                pos,
                format!("record at {pos} ends past the file limit"),
            ));
        }
        payload.resize(payload_bytes, 0);
        let got = read_full(&mut reader, &mut payload)?;
        if got < payload_bytes {
            return Ok(stop(
                pos,
                format!("partial payload ({got} of {payload_bytes} bytes) at {pos}"),
            ));
        }
        if Header::expected_crc(&header_bytes, &payload) != header.crc {
            return Ok(stop(pos, format!("CRC mismatch in the record at {pos}")));
        }
        on_record(header.partition, pack_entry(pos, header.payload_bytes));
        next_offsets[header.partition as usize] += 1;
        pos = record_end;
    }
}

/// Like `read_exact`, but a short read at end of file returns the count instead of failing.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the partition count from the meta file, or `None` when there is no meta file.
pub(crate) fn read_meta(dir: &Path) -> Result<Option<u32>, Error> {
    let path = dir.join(META_FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(META_MAGIC_LINE) {
        return Err(Error::corrupt(path, "not a turnstile-log meta file"));
    }
    let mut format = None;
    let mut partitions = None;
    for line in lines {
        match line.split_once(' ') {
            Some(("format", v)) => format = v.parse::<u32>().ok(),
            Some(("partitions", v)) => partitions = v.parse::<u32>().ok(),
            _ => return Err(Error::corrupt(path, format!("unexpected line {line:?}"))),
        }
    }
    match (format, partitions) {
        (Some(META_FORMAT_VERSION), Some(n)) if n > 0 => Ok(Some(n)),
        (Some(META_FORMAT_VERSION), _) => {
            Err(Error::corrupt(path, "missing or invalid partition count"))
        }
        (Some(other), _) => Err(Error::corrupt(
            path,
            format!(
                "format {other} is not supported (this build reads format {META_FORMAT_VERSION})"
            ),
        )),
        (None, _) => Err(Error::corrupt(path, "missing or invalid format line")),
    }
}

/// Writes the meta file atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_meta(dir: &Path, partitions: u32) -> Result<(), Error> {
    let tmp = dir.join(META_TMP_FILE_NAME);
    let text =
        format!("{META_MAGIC_LINE}\nformat {META_FORMAT_VERSION}\npartitions {partitions}\n");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
    let path = dir.join(META_FILE_NAME);
    fs::rename(&tmp, &path).map_err(|e| Error::io("renaming into", &path, e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (created or renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn encode_all(records: &[(u32, u64, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (p, o, payload) in records {
            encode_record(&mut buf, *p, *o, payload);
        }
        buf
    }

    #[test]
    fn scan_reads_back_what_encode_wrote() {
        let buf = encode_all(&[(0, 0, b"a"), (1, 0, b"bb"), (0, 1, b"")]);
        let mut next = vec![0u64; 2];
        let mut seen = Vec::new();
        let end = scan_records(&buf[..], 0, buf.len() as u64, &mut next, |p, e| {
            seen.push((p, entry_pos(e), entry_payload_bytes(e)))
        })
        .unwrap();
        assert_eq!(end.valid_end, buf.len() as u64);
        assert_eq!(end.stop_reason, None);
        assert_eq!(next, vec![2, 1]);
        assert_eq!(seen, vec![(0, 0, 1), (1, 21, 2), (0, 43, 0)]);
    }

    #[test]
    fn scan_stops_at_crc_mismatch_partial_and_offset_gap() {
        let good = encode_all(&[(0, 0, b"hello"), (0, 1, b"world")]);
        let first_end = frame_bytes(5) as u64;

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut next = vec![0u64; 1];
        let end =
            scan_records(&flipped[..], 0, flipped.len() as u64, &mut next, |_, _| {}).unwrap();
        assert_eq!(end.valid_end, first_end);
        assert!(end.stop_reason.unwrap().contains("CRC"));

        let short = &good[..good.len() - 2];
        let mut next = vec![0u64; 1];
        let end = scan_records(short, 0, short.len() as u64, &mut next, |_, _| {}).unwrap();
        assert_eq!(end.valid_end, first_end);
        assert_eq!(next, vec![1]);

        let gap = encode_all(&[(0, 0, b"x"), (0, 2, b"y")]);
        let mut next = vec![0u64; 1];
        let end = scan_records(&gap[..], 0, gap.len() as u64, &mut next, |_, _| {}).unwrap();
        assert_eq!(end.valid_end, frame_bytes(1) as u64);
        assert!(end.stop_reason.unwrap().contains("expects 1"));
    }

    #[test]
    fn pack_round_trips() {
        let e = pack_entry(crate::DATA_FILE_BYTES_MAX - 1, (1 << 20) + 7);
        assert_eq!(entry_pos(e), crate::DATA_FILE_BYTES_MAX - 1);
        assert_eq!(entry_payload_bytes(e), (1 << 20) + 7);
    }

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), None);
        write_meta(dir.path(), 12).unwrap();
        assert_eq!(read_meta(dir.path()).unwrap(), Some(12));
        fs::write(
            dir.path().join(META_FILE_NAME),
            "turnstile-log\nformat 9\npartitions 1\n",
        )
        .unwrap();
        assert!(matches!(read_meta(dir.path()), Err(Error::Corrupt { .. })));
        fs::write(dir.path().join(META_FILE_NAME), "hello").unwrap();
        assert!(matches!(read_meta(dir.path()), Err(Error::Corrupt { .. })));
    }
}
