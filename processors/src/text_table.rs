//! [`TextTable`]: a hash table of small values keyed by short strings, with every string in
//! one arena.
//!
//! A partition remembers every request it ever decided (invariant 3), so what it keeps per
//! request is the processor's memory per grant and its cost per decision. A
//! `HashMap<String, V>` costs one allocation per key plus the allocator's overhead; here a
//! key is appended to a shared `String` and named by a packed 8-byte [`Text`] reference, and
//! the index holds 4-byte entry numbers. Deciding then allocates nothing (the vectors grow by
//! doubling) and entries stay in insertion order, which recovery and tests rely on.

use std::hash::BuildHasher;
use std::num::NonZeroU64;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// A string stored in a [`TextTable`]'s arena: start and length packed in one `u64`,
/// kept inverted so it is never zero and `Option<Text>` is 8 bytes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text(NonZeroU64);

/// Bits of [`Text`] that hold the length; the rest hold the start.
const TEXT_LEN_BITS: u32 = 24;
/// Longest storable string. Envelope ids are at most 128 bytes; this is a loud backstop.
const TEXT_LEN_MAX: usize = (1 << TEXT_LEN_BITS) - 1;
/// Largest arena: 2^40 bytes (1 TiB), far beyond any partition's memory.
const ARENA_BYTES_MAX: usize = 1 << (64 - TEXT_LEN_BITS);

impl Text {
    fn new(start: usize, len: usize) -> Self {
        // All ones would need start = 2^40 - 1 and len = 2^24 - 1: past the arena's end.
        let packed = ((start as u64) << TEXT_LEN_BITS) | len as u64;
        Text(NonZeroU64::new(!packed).expect("a Text lies within the arena"))
    }

    fn range(self) -> std::ops::Range<usize> {
        let packed = !self.0.get();
        let start = (packed >> TEXT_LEN_BITS) as usize;
        let len = (packed & TEXT_LEN_MAX as u64) as usize;
        start..start + len
    }
}

/// Values of type `V` keyed by distinct strings, numbered 0, 1, 2… in insertion order.
#[derive(Debug, Clone)]
pub struct TextTable<V> {
    arena: String,
    entries: Vec<(Text, V)>,
    /// Entry numbers, hashed by their key. Seeded per process: keys come from callers.
    index: HashTable<u32>,
    hasher: RandomState,
}

// Not derived: a derive would require `V: Default`.
impl<V> Default for TextTable<V> {
    fn default() -> Self {
        TextTable {
            arena: String::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::default(),
        }
    }
}

/// Proof that a key was looked up and is absent: [`TextTable::insert`] needs it, so a key
/// is hashed once and never inserted twice.
#[derive(Debug)]
#[must_use]
pub struct Absent(u64);

impl<V> TextTable<V> {
    /// An empty table with room for `entries` entries of about 16-byte keys.
    pub fn with_capacity(entries: usize) -> Self {
        TextTable {
            arena: String::with_capacity(entries * 16),
            entries: Vec::with_capacity(entries),
            index: HashTable::with_capacity(entries),
            hasher: RandomState::default(),
        }
    }

    /// Makes room for `entries` more entries of about 16-byte keys.
    pub fn reserve(&mut self, entries: usize) {
        self.arena.reserve(entries * 16);
        self.entries.reserve(entries);
        let Self {
            arena,
            entries: stored,
            index,
            hasher,
        } = self;
        index.reserve(entries, |&entry| {
            hasher.hash_one(&arena[stored[entry as usize].0.range()])
        });
    }

    /// The number of the entry keyed `key`, if any.
    pub fn find(&self, key: &str) -> Option<u32> {
        self.lookup(key).ok()
    }

    /// The number of the entry keyed `key`, or proof of its absence to insert it with.
    pub fn lookup(&self, key: &str) -> Result<u32, Absent> {
        let hash = self.hasher.hash_one(key);
        match self.index.find(hash, |&entry| self.key(entry) == key) {
            Some(&entry) => Ok(entry),
            None => Err(Absent(hash)),
        }
    }

    /// Adds an entry under `key`, found [`Absent`] by the last lookup; returns its number.
    pub fn insert(&mut self, absent: Absent, key: &str, value: V) -> u32 {
        debug_assert_eq!(
            absent.0,
            self.hasher.hash_one(key),
            "Absent is for this key"
        );
        debug_assert!(self.find(key).is_none(), "{key:?} is already present");
        let number = u32::try_from(self.entries.len()).expect("at most 2^32 entries per table");
        let key_text = self.store(key);
        self.entries.push((key_text, value));
        let Self {
            arena,
            entries,
            index,
            hasher,
        } = self;
        let key_of = |entry: u32| &arena[entries[entry as usize].0.range()];
        index.insert_unique(absent.0, number, |&entry| hasher.hash_one(key_of(entry)));
        number
    }

    /// Appends `text` to the arena, for strings that belong to an entry's value.
    pub fn store(&mut self, text: &str) -> Text {
        assert!(
            text.len() <= TEXT_LEN_MAX,
            "a {}-byte string is too long for a TextTable",
            text.len()
        );
        let start = self.arena.len();
        assert!(
            start + text.len() <= ARENA_BYTES_MAX,
            "a TextTable arena is full"
        );
        self.arena.push_str(text);
        Text::new(start, text.len())
    }

    /// A string stored by [`TextTable::store`] (or an entry's key).
    pub fn text(&self, text: Text) -> &str {
        &self.arena[text.range()]
    }

    /// The key of entry `entry`.
    pub fn key(&self, entry: u32) -> &str {
        self.text(self.entries[entry as usize].0)
    }

    /// The value of entry `entry`.
    pub fn value(&self, entry: u32) -> &V {
        &self.entries[entry as usize].1
    }

    /// The value of entry `entry`, to change it.
    pub fn value_mut(&mut self, entry: u32) -> &mut V {
        &mut self.entries[entry as usize].1
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of memory held, for the memory-per-grant figure.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<(Text, V)>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_key_and_numbered_in_insertion_order() {
        let mut table = TextTable::default();
        let keys: Vec<String> = (0..10_000).map(|i| format!("req-{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            let absent = table.lookup(key).expect_err("not inserted yet");
            assert_eq!(table.insert(absent, key, i * 2), i as u32);
        }
        assert_eq!(table.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            let entry = table.find(key).expect("inserted");
            assert_eq!(entry, i as u32);
            assert_eq!(table.key(entry), key);
            assert_eq!(*table.value(entry), i * 2);
        }
        assert_eq!(table.find("req-10000"), None);
        assert_eq!(table.find(""), None);
    }

    #[test]
    fn stored_texts_come_back_unchanged() {
        let mut table: TextTable<()> = TextTable::default();
        let texts = ["", "a", "사용자-1", "user-42", &"x".repeat(128)];
        let stored: Vec<Text> = texts.iter().map(|t| table.store(t)).collect();
        for (text, reference) in texts.iter().zip(stored) {
            assert_eq!(table.text(reference), *text);
        }
    }

    #[test]
    fn an_optional_text_is_as_small_as_a_text() {
        assert_eq!(std::mem::size_of::<Option<Text>>(), 8);
    }

    #[test]
    #[should_panic(expected = "already present")]
    fn inserting_a_present_key_is_a_bug() {
        let mut table = TextTable::default();
        let absent = table.lookup("k").expect_err("empty table");
        let stale = table.lookup("k").expect_err("empty table");
        table.insert(absent, "k", 1);
        table.insert(stale, "k", 2);
    }
}
