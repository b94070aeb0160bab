//! What the Dedup stage needs of each entry, one cache line per probe.
//!
//! The usual flush is of a group nobody changed since its last notification, or of a group
//! never notified. Deciding either from the entry table costs three dependent memory reads on
//! a large log (control bytes, slot, entry bytes), each a cache miss. This index answers both
//! from one read: buckets of one cache line hold, for three entries each, a 32-bit tag of the
//! key hash, the entry's timestamp and a digest of its firing set. A key absent from its
//! bucket chain is absent from the log; a key found with the flush's own firing set needs
//! only the repeat-interval check. Anything else goes to the table.
//!
//! Two keys can share a bucket chain and a tag. The index cannot tell them apart, so when the
//! second is inserted their slot is marked ambiguous and both go to the table from then on;
//! "absent" stays exact. A key the log does not hold is mistaken for one it holds only if the
//! two agree on their bucket and tag (51 bits of the key hash for a million entries) and on
//! the digest of their firing lists (64 bits).

use super::view::{FIELD_FIRING, Parsed};

/// Entries per bucket (one cache line).
const SLOTS: usize = 3;
/// A stamp that sends lookups to the table: the slot is shared by two keys, or the entry's
/// timestamp does not fit in nanoseconds.
const UNKNOWN: i64 = i64::MIN;
/// Fill above which the index grows (slots used / slots).
const MAX_LOAD: (usize, usize) = (3, 4);

#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    /// Tag of each slot's key; 0: free.
    tags: [u32; SLOTS],
    /// Non-zero once a key homed here (or before) was placed further on: probes continue.
    overflow: u32,
    /// Timestamp of each entry in nanoseconds since the epoch, or [`UNKNOWN`].
    stamps: [i64; SLOTS],
    /// [`set_digest`] of each entry's firing alerts.
    digests: [u64; SLOTS],
}

/// What the index says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The log holds no entry for the key.
    Absent,
    /// The entry's timestamp (nanoseconds) and firing-set digest.
    Found { stamp: i64, firing: u64 },
    /// Ask the table.
    Unknown,
}

/// The summary of one entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Summary {
    stamp: i64,
    firing: u64,
}

impl Summary {
    /// Read from an entry's bytes.
    pub(super) fn of(entry: &Parsed<'_>) -> Self {
        let t = entry.timestamp;
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        let mut firing = Digest::default();
        entry.for_each_alert(FIELD_FIRING, |h| firing.add(h));
        Self {
            stamp: i64::try_from(nanos).ok().filter(|n| *n != UNKNOWN).unwrap_or(UNKNOWN),
            firing: firing.get(),
        }
    }
}

/// A digest of a list of alert hashes, independent of their order: a sum of mixed elements
/// plus the count, so lists holding the same hashes the same number of times always agree,
/// and others collide with probability about 2^-64. Alertmanager's lists hold distinct hashes;
/// one listing a hash twice only differs from the set and sends the decision to the table.
/// 0 for the empty list.
pub(super) fn set_digest(items: &[u64]) -> u64 {
    let mut digest = Digest::default();
    for h in items {
        digest.add(*h);
    }
    digest.get()
}

/// [`set_digest`], fed one hash at a time.
#[derive(Debug, Default, Clone, Copy)]
struct Digest {
    sum: u64,
    count: u64,
}

impl Digest {
    fn add(&mut self, h: u64) {
        // Offset first: the finaliser maps 0 to 0.
        self.sum = self.sum.wrapping_add(mix(h ^ 0x9e37_79b9_7f4a_7c15));
        self.count += 1;
    }

    fn get(self) -> u64 {
        self.sum.wrapping_add(self.count.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
    }
}

/// A bijective 64-bit finaliser (MurmurHash3's).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn tag_of(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

/// The index: buckets probed linearly from `hash & mask`.
#[derive(Debug, Clone)]
pub(super) struct SummaryIndex {
    buckets: Vec<Bucket>,
    used: usize,
    overflowed: usize,
}

impl Default for SummaryIndex {
    fn default() -> Self {
        Self::with_entries(0)
    }
}

impl SummaryIndex {
    /// Room for `entries` without growing.
    pub(super) fn with_entries(entries: usize) -> Self {
        let slots = entries.saturating_mul(MAX_LOAD.1) / MAX_LOAD.0 + 1;
        let buckets = slots.div_ceil(SLOTS).next_power_of_two().max(8);
        Self { buckets: vec![Bucket::default(); buckets], used: 0, overflowed: 0 }
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.buckets.len() * size_of::<Bucket>()
    }

    /// Whether the index should be rebuilt larger (or afresh, once many chains overflowed
    /// after removals) before the next insertion.
    pub(super) fn needs_rebuild(&self) -> bool {
        let slots = self.buckets.len() * SLOTS;
        (self.used + 1) * MAX_LOAD.1 > slots * MAX_LOAD.0
            || self.overflowed * 4 > self.buckets.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The slot holding `tag` in the chain of `hash`, as (bucket, slot).
    fn find(&self, hash: u64) -> Option<(usize, usize)> {
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask();
        for _ in 0..self.buckets.len() {
            let b = &self.buckets[i];
            if let Some(s) = b.tags.iter().position(|t| *t == tag) {
                return Some((i, s));
            }
            if b.overflow == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    /// What the index knows of the key with `hash`.
    #[inline]
    pub(super) fn lookup(&self, hash: u64) -> Lookup {
        match self.find(hash) {
            None => Lookup::Absent,
            Some((b, s)) => {
                let bucket = &self.buckets[b];
                match bucket.stamps[s] {
                    UNKNOWN => Lookup::Unknown,
                    stamp => Lookup::Found { stamp, firing: bucket.digests[s] },
                }
            }
        }
    }

    /// A key the log did not hold was added. The caller checks [`needs_rebuild`] first.
    ///
    /// [`needs_rebuild`]: Self::needs_rebuild
    pub(super) fn insert_new(&mut self, hash: u64, summary: Summary) {
        if let Some((b, s)) = self.find(hash) {
            // Another key of the log has this chain and tag: neither can be told apart.
            self.buckets[b].stamps[s] = UNKNOWN;
            return;
        }
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let b = &mut self.buckets[i];
            if let Some(s) = b.tags.iter().position(|t| *t == 0) {
                b.tags[s] = tag;
                b.stamps[s] = summary.stamp;
                b.digests[s] = summary.firing;
                self.used += 1;
                return;
            }
            if b.overflow == 0 {
                b.overflow = 1;
                self.overflowed += 1;
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry of a key the log holds was replaced.
    pub(super) fn update(&mut self, hash: u64, summary: Summary) {
        match self.find(hash) {
            Some((b, s)) => {
                let bucket = &mut self.buckets[b];
                if bucket.stamps[s] != UNKNOWN {
                    bucket.stamps[s] = summary.stamp;
                    bucket.digests[s] = summary.firing;
                }
            }
            // Unreachable while the index mirrors the log; adding it keeps it so anyway.
            None => self.insert_new(hash, summary),
        }
    }

    /// The entry of a key was removed from the log.
    pub(super) fn remove(&mut self, hash: u64) {
        if let Some((b, s)) = self.find(hash) {
            let bucket = &mut self.buckets[b];
            // A shared slot may still stand for the other key: it stays (as "ask the table").
            if bucket.stamps[s] != UNKNOWN {
                bucket.tags[s] = 0;
                self.used -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(stamp: i64, firing: u64) -> Summary {
        Summary { stamp, firing }
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn digests_ignore_order() {
        assert_eq!(set_digest(&[1, 2, 3]), set_digest(&[3, 1, 2]));
        assert_ne!(set_digest(&[1, 2, 3]), set_digest(&[3, 1, 2, 2]), "repeats go to the table");
        assert_ne!(set_digest(&[1, 2]), set_digest(&[1, 3]));
        assert_eq!(set_digest(&[]), 0);
        assert_ne!(set_digest(&[0]), 0, "a zero hash is not the empty set");
        let many: Vec<u64> = (0..100).collect();
        let reversed: Vec<u64> = (0..100).rev().collect();
        assert_eq!(set_digest(&many), set_digest(&reversed));
    }

    #[test]
    fn keys_are_found_until_removed_and_chains_survive_overflow() {
        let mut index = SummaryIndex::with_entries(0);
        // Eight keys homed in bucket 0 (same low bits), distinct tags: they spill over.
        let hashes: Vec<u64> = (1..=8u64).map(|t| t << 32).collect();
        for (i, h) in hashes.iter().enumerate() {
            index.insert_new(*h, summary(i as i64, 7));
        }
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(index.lookup(*h), Lookup::Found { stamp: i as i64, firing: 7 });
        }
        index.remove(hashes[0]);
        assert_eq!(index.lookup(hashes[0]), Lookup::Absent);
        assert_eq!(index.lookup(hashes[7]), Lookup::Found { stamp: 7, firing: 7 });
        index.update(hashes[7], summary(70, 9));
        assert_eq!(index.lookup(hashes[7]), Lookup::Found { stamp: 70, firing: 9 });
        assert_eq!(index.lookup(99 << 32), Lookup::Absent);
    }

    #[test]
    fn two_keys_sharing_a_tag_go_to_the_table_for_good() {
        let mut index = SummaryIndex::with_entries(0);
        let (a, b) = (5 << 32 | 1, 5 << 32 | 1);
        index.insert_new(a, summary(1, 1));
        index.insert_new(b, summary(2, 2));
        assert_eq!(index.lookup(a), Lookup::Unknown);
        index.remove(a);
        assert_eq!(index.lookup(b), Lookup::Unknown, "b is still in the log");
        index.update(b, summary(3, 3));
        assert_eq!(index.lookup(b), Lookup::Unknown);
    }

    #[test]
    fn it_asks_to_grow_before_it_fills() {
        let mut index = SummaryIndex::with_entries(10);
        let mut n = 0u64;
        while !index.needs_rebuild() {
            n += 1;
            index.insert_new(n.wrapping_mul(0x9e37_79b9_7f4a_7c15), summary(0, 0));
        }
        assert!(n >= 10);
        assert!(index.used * 4 <= index.buckets.len() * SLOTS * 3 + 4);
    }
}
