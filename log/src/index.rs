//! The in-memory offset index of one partition.

/// Entries per chunk. Chunks never reallocate once full, so a growing index never copies its
/// whole history while the writer holds the lock (a plain `Vec` would, at every doubling).
const CHUNK_ENTRIES: usize = 1 << 16;

/// Offset → packed (file position, payload length) entry, 8 bytes per record.
///
/// Offset `o` of the partition is entry `o`: offsets are dense from 0.
#[derive(Debug, Default)]
pub(crate) struct Index {
    chunks: Vec<Vec<u64>>,
    len: u64,
}

impl Index {
    /// Number of records, which is also the partition's end offset.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn push(&mut self, entry: u64) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK_ENTRIES => chunk.push(entry),
            last => {
                // The first chunk grows by doubling (small partitions stay small); later
                // chunks belong to a big partition and are allocated whole.
                let mut chunk = if last.is_some() {
                    Vec::with_capacity(CHUNK_ENTRIES)
                } else {
                    Vec::new()
                };
                chunk.push(entry);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// Copies the entries of offsets `from..from + count` into `out`.
    ///
    /// The range must lie within `0..len()`.
    pub(crate) fn copy_range(&self, from: u64, count: usize, out: &mut Vec<u64>) {
        assert!(
            from + count as u64 <= self.len,
            "index range {from}+{count} past the end {}",
            self.len
        );
        let mut at = usize::try_from(from).expect("an in-memory index fits in usize");
        let mut left = count;
        while left > 0 {
            let chunk = &self.chunks[at / CHUNK_ENTRIES];
            let start = at % CHUNK_ENTRIES;
            let take = left.min(chunk.len() - start);
            out.extend_from_slice(&chunk[start..start + take]);
            at += take;
            left -= take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_range_crosses_chunks() {
        let mut index = Index::default();
        let n = CHUNK_ENTRIES as u64 * 2 + 10;
        for i in 0..n {
            index.push(i * 3);
        }
        assert_eq!(index.len(), n);
        let mut out = Vec::new();
        let from = CHUNK_ENTRIES as u64 - 5;
        index.copy_range(from, CHUNK_ENTRIES + 10, &mut out);
        assert_eq!(out.len(), CHUNK_ENTRIES + 10);
        for (k, e) in out.iter().enumerate() {
            assert_eq!(*e, (from + k as u64) * 3);
        }
        assert_eq!(index.chunks.len(), 3);
        assert!(index.chunks.iter().all(|c| c.capacity() == CHUNK_ENTRIES));
    }
}
