//! Label sets and the two hashes Alertmanager computes over them, byte-identical to Go.

use std::collections::BTreeMap;
use std::hash::Hasher;

/// An alert's labels, sorted by name (a `BTreeMap` keeps Go's byte order of names).
pub type LabelSet = BTreeMap<String, String>;

/// The alert hash stored in notification-log entries (Alertmanager `hashAlert`): XXH64, seed 0,
/// over `name 0xFF value 0xFF` for each label in name order.
pub fn alert_hash(labels: &LabelSet) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for (name, value) in labels {
        h.update(name.as_bytes());
        h.update(&[0xff]);
        h.update(value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

/// An alert's fingerprint (Prometheus `LabelSet.Fingerprint`): FNV-1a 64 over the same bytes.
/// The empty set hashes to the FNV offset basis.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    let mut h = Fnv1a64::default();
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[0xff]);
        h.write(value.as_bytes());
        h.write(&[0xff]);
    }
    h.finish()
}

/// FNV-1a, 64 bits: offset basis 14695981039346656037, prime 1099511628211.
#[derive(Debug, Clone, Copy)]
struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn fingerprint_of_the_empty_set_is_the_offset_basis() {
        assert_eq!(fingerprint(&LabelSet::new()), 14_695_981_039_346_656_037);
    }

    #[test]
    fn hashes_do_not_depend_on_insertion_order() {
        let a = set(&[("b", "2"), ("a", "1")]);
        let b = set(&[("a", "1"), ("b", "2")]);
        assert_eq!(alert_hash(&a), alert_hash(&b));
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(alert_hash(&a), alert_hash(&set(&[("a", "12")])));
    }
}
