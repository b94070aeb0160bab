//! The per-alert mutes cache (Alertmanager HEAD `silence/cache.go`, spec §6.9), bounded.
//!
//! An entry remembers, for one alert fingerprint, every live slot whose matchers match the
//! alert (in any state: the state is re-read at each call, so a pending silence starting or
//! an active one ending needs no invalidation), together with the state version and slot
//! layout it was computed at. Because a slot's matchers never change, an entry stays exact
//! until new slots appear (version) or slots are renumbered (layout, after GC):
//! * same version and layout, no slots → not muted, no further work (the fast path);
//! * same version and layout → re-read the remembered slots' states;
//! * newer version → evaluate only the slots added since, and keep the remembered ones;
//! * other layout (or no entry) → full query through the index.
//!
//! Bound: `capacity` entries (`SilencesConfig::mutes_cache_capacity`). Inserting a new
//! fingerprint into a full cache evicts one other entry (the first in the map's fixed-hash
//! order) and counts it; an evicted alert is simply recomputed on its next call.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// What the cache keeps per fingerprint.
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    /// State version the slots were computed at (`u64::MAX`: never computed).
    pub(super) version: u64,
    /// Slot layout they refer to.
    pub(super) layout: u64,
    /// Matching slots, ascending.
    pub(super) slots: Vec<u32>,
}

/// The fingerprint is already a hash; one multiply-xorshift spreads it over both the bucket
/// bits and the control bits of the table. Fixed, so iteration order is reproducible.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Fingerprint → entry, at most `capacity` entries.
#[derive(Debug)]
pub(super) struct MutesCache {
    map: HashMap<u64, Entry, BuildHasherDefault<FingerprintHasher>>,
    capacity: usize,
    evictions: u64,
}

impl MutesCache {
    /// An empty cache holding at most `capacity` entries (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_hasher(BuildHasherDefault::default()),
            capacity: capacity.max(1),
            evictions: 0,
        }
    }

    /// The entry for `fp`, created empty (and stale) if absent, evicting another if full.
    pub(super) fn entry(&mut self, fp: u64) -> &mut Entry {
        if !self.map.contains_key(&fp)
            && self.map.len() >= self.capacity
            && let Some(&victim) = self.map.keys().next()
        {
            self.map.remove(&victim);
            self.evictions += 1;
        }
        self.map.entry(fp).or_insert_with(|| Entry {
            version: u64::MAX,
            layout: u64::MAX,
            slots: Vec::new(),
        })
    }

    /// Drop the entry of an alert that is gone.
    pub(super) fn forget(&mut self, fp: u64) -> bool {
        self.map.remove(&fp).is_some()
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries evicted because the cache was full.
    pub(super) fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_counted_evictions() {
        let mut c = MutesCache::new(3);
        for fp in 0..10 {
            c.entry(fp).version = fp;
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.evictions(), 7);
        // The newest entry always survives its own insertion.
        assert_eq!(c.entry(9).version, 9);
        assert!(c.forget(9));
        assert!(!c.forget(9));
        assert_eq!(c.entry(42).version, u64::MAX);
    }
}
