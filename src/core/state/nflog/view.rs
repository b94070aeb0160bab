//! Reading stored `MeshEntry` bytes in place, and the state key.
//!
//! The log keeps each entry only as the bytes it arrived in (or that we encoded), so every
//! read goes through this scanner: no allocation, no copy. It is only ever handed bytes that
//! prost has already accepted as a [`MeshEntry`](super::MeshEntry), and it reads them with
//! prost's (and Go's) rules: a scalar seen twice keeps the last value, a message seen twice is
//! merged field by field, a repeated field concatenates its occurrences whether packed or
//! not, and unknown fields (groups included) are skipped. On bytes it cannot read it stops
//! early and returns what it has; it never panics.
//!
//! Two readers: a straight-line one for the layout every Alertmanager writes (known fields,
//! once each, in order), which is what makes a lookup cost tens of nanoseconds, and the
//! general one above, which it hands anything else to.

use std::cmp::Ordering;

use crate::core::state::{GO_ZERO_SECONDS, Timestamp};

/// Go's zero `time.Time`, which 0.25 (gogoproto, non-nullable timestamps) decodes a missing
/// timestamp to. We read a missing `timestamp` or `expires_at` the same way.
pub(super) const GO_ZERO: Timestamp = Timestamp { seconds: GO_ZERO_SECONDS, nanos: 0 };

/// Nesting limit for unknown groups, as prost's recursion limit.
const MAX_DEPTH: u32 = 100;

/// `MeshEntry.entry`, `Entry.firing_alerts` and friends: the field numbers we read.
pub(super) const FIELD_ENTRY: u32 = 1;
const FIELD_EXPIRES_AT: u32 = 2;
const FIELD_GROUP_KEY: u32 = 1;
const FIELD_RECEIVER: u32 = 2;
const FIELD_TIMESTAMP: u32 = 5;
pub(super) const FIELD_FIRING: u32 = 6;
pub(super) const FIELD_RESOLVED: u32 = 7;

/// Read a base-128 varint as prost does (at most 10 bytes, the 10th at most 1), advancing
/// `buf`. Hand-written because this is the inner loop of every read: one-byte values (tags,
/// short lengths) take the first branch.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = buf.split_first()?;
    if first < 0x80 {
        *buf = rest;
        return Some(u64::from(first));
    }
    let mut value = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i == 9 && b > 1 {
                return None;
            }
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// One field's payload.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed-width or group: nothing we read.
    Other,
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn read(&mut self) -> Option<(u32, Value<'a>)> {
        let key = varint(&mut self.buf)?;
        let field = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            2 => {
                let len = usize::try_from(varint(&mut self.buf)?).ok()?;
                let bytes = self.buf.get(..len)?;
                self.buf = &self.buf[len..];
                Value::Bytes(bytes)
            }
            0 => Value::Varint(varint(&mut self.buf)?),
            1 => {
                self.buf = self.buf.get(8..)?;
                Value::Other
            }
            3 => {
                self.skip_group(field, 0)?;
                Value::Other
            }
            5 => {
                self.buf = self.buf.get(4..)?;
                Value::Other
            }
            _ => return None,
        };
        Some((field, value))
    }

    /// Skip to the end-group marker of `field`.
    fn skip_group(&mut self, field: u32, depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        loop {
            let key = varint(&mut self.buf)?;
            let inner = u32::try_from(key >> 3).ok()?;
            match key & 7 {
                0 => {
                    varint(&mut self.buf)?;
                }
                1 => self.buf = self.buf.get(8..)?,
                2 => {
                    let len = usize::try_from(varint(&mut self.buf)?).ok()?;
                    self.buf = self.buf.get(len..)?;
                }
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == field => return Some(()),
                5 => self.buf = self.buf.get(4..)?,
                _ => return None,
            }
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Value<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = self.read();
        if item.is_none() {
            self.buf = &[];
        }
        item
    }
}

/// A timestamp being merged from one or more occurrences of its field.
#[derive(Clone, Copy, Default)]
struct TimestampParts {
    present: bool,
    seconds: i64,
    nanos: i32,
}

impl TimestampParts {
    fn merge(&mut self, bytes: &[u8]) {
        self.present = true;
        for (field, value) in Fields::new(bytes) {
            match (field, value) {
                // int64 and int32 read as prost does: two's complement, int32 truncated.
                (1, Value::Varint(v)) => self.seconds = v as i64,
                (2, Value::Varint(v)) => self.nanos = v as i32,
                _ => {}
            }
        }
    }

    fn get(self) -> Timestamp {
        if self.present { Timestamp { seconds: self.seconds, nanos: self.nanos } } else { GO_ZERO }
    }
}

/// The state key: Alertmanager's `"<group_key>:<group_name>/<integration>/<idx>"`, kept as
/// parts. Two keys are equal when those strings are, exactly as Go's map keys compare (so a
/// `:` or `/` inside a part behaves as it does in Go).
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'a> {
    pub(super) group_key: &'a [u8],
    pub(super) group_name: &'a [u8],
    pub(super) integration: &'a [u8],
    pub(super) idx: u32,
}

/// Room for a decimal `u32`.
type IdxBuf = [u8; 10];

/// Keys up to this long are hashed in one shot from a stack copy.
const STACK_KEY_LEN: usize = 192;

impl<'a> Key<'a> {
    /// XXH3 (64 bits, seed 0) of the key string: fixed seed, so the index and everything
    /// derived from it replay identically. Keys that fit are assembled on the stack and hashed
    /// in one shot (several times faster than streaming for ~100-byte keys).
    #[inline]
    pub(super) fn hash(&self) -> u64 {
        let mut idx = IdxBuf::default();
        let digits = decimal(self.idx, &mut idx);
        let (gk, name, integration) = (self.group_key, self.group_name, self.integration);
        let total = gk.len() + name.len() + integration.len() + digits.len() + 3;
        if total > STACK_KEY_LEN {
            let mut h = xxhash_rust::xxh3::Xxh3Default::new();
            for c in [gk, b":", name, b"/", integration, b"/", digits] {
                h.update(c);
            }
            return h.digest();
        }
        let mut buf = [0u8; STACK_KEY_LEN];
        let mut at = gk.len();
        buf[..at].copy_from_slice(gk);
        buf[at] = b':';
        at += 1;
        buf[at..at + name.len()].copy_from_slice(name);
        at += name.len();
        buf[at] = b'/';
        at += 1;
        buf[at..at + integration.len()].copy_from_slice(integration);
        at += integration.len();
        buf[at] = b'/';
        at += 1;
        buf[at..at + digits.len()].copy_from_slice(digits);
        at += digits.len();
        xxhash_rust::xxh3::xxh3_64(&buf[..at])
    }

    fn split_chunks<'b>(&self, idx: &'b mut IdxBuf) -> ([&'b [u8]; 6], &'b [u8])
    where
        'a: 'b,
    {
        let head = [self.group_key, b":", self.group_name, b"/", self.integration, b"/"];
        (head, decimal(self.idx, idx))
    }

    /// Order of the key strings.
    pub(super) fn cmp_key(&self, other: &Key<'_>) -> Ordering {
        let (mut a_idx, mut b_idx) = (IdxBuf::default(), IdxBuf::default());
        let (a_head, a_tail) = self.split_chunks(&mut a_idx);
        let (b_head, b_tail) = other.split_chunks(&mut b_idx);
        let a = a_head.iter().copied().chain(std::iter::once(a_tail));
        let b = b_head.iter().copied().chain(std::iter::once(b_tail));
        cmp_concat(a, b)
    }

    /// Whether the key strings are equal.
    pub(super) fn same(&self, other: &Key<'_>) -> bool {
        // Fast path: parts of equal lengths compare part by part (the usual case).
        if self.group_key.len() == other.group_key.len()
            && self.group_name.len() == other.group_name.len()
        {
            return self.group_key == other.group_key
                && self.group_name == other.group_name
                && self.integration == other.integration
                && self.idx == other.idx;
        }
        self.cmp_key(other) == Ordering::Equal
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u32, buf: &mut IdxBuf) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Lexicographic order of two concatenations of byte chunks.
fn cmp_concat<'x, 'y>(
    mut a: impl Iterator<Item = &'x [u8]>,
    mut b: impl Iterator<Item = &'y [u8]>,
) -> Ordering {
    let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
    loop {
        while x.is_empty() {
            match a.next() {
                Some(c) => x = c,
                None => break,
            }
        }
        while y.is_empty() {
            match b.next() {
                Some(c) => y = c,
                None => break,
            }
        }
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        let n = x.len().min(y.len());
        match x[..n].cmp(&y[..n]) {
            Ordering::Equal => {
                x = &x[n..];
                y = &y[n..];
            }
            other => return other,
        }
    }
}

/// A cursor for [`Parsed::read_canonical`]: each read takes the next field only if it has
/// the expected (one-byte) tag.
struct Canonical<'a>(&'a [u8]);

impl<'a> Canonical<'a> {
    #[inline(always)]
    fn bytes(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&first, mut rest) = self.0.split_first()?;
        if first != tag {
            return None;
        }
        let len = usize::try_from(varint(&mut rest)?).ok()?;
        let value = rest.get(..len)?;
        self.0 = &rest[len..];
        Some(value)
    }

    #[inline(always)]
    fn varint(&mut self, tag: u8) -> Option<u64> {
        let (&first, mut rest) = self.0.split_first()?;
        if first != tag {
            return None;
        }
        let value = varint(&mut rest)?;
        self.0 = rest;
        Some(value)
    }

    #[inline(always)]
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// A timestamp in canonical layout (`None` if it is not), [`GO_ZERO`] when absent.
#[inline(always)]
fn canonical_timestamp(bytes: Option<&[u8]>) -> Option<Timestamp> {
    let Some(bytes) = bytes else { return Some(GO_ZERO) };
    let mut t = Canonical(bytes);
    // int64 and int32 read as prost does: two's complement, int32 truncated.
    let seconds = t.varint(0x08).unwrap_or(0) as i64;
    let nanos = t.varint(0x10).unwrap_or(0) as i32;
    t.end()?;
    Some(Timestamp { seconds, nanos })
}

/// Where one repeated alert field (6 firing, 7 resolved) sits in the stored bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum Alerts<'a> {
    /// Not present: an empty list.
    #[default]
    Absent,
    /// One packed occurrence, as every Alertmanager writes it.
    Packed(&'a [u8]),
    /// Anything else (several occurrences, unpacked values): read with [`for_each_alert`].
    Scattered,
}

impl<'a> Alerts<'a> {
    fn see(&mut self, value: Value<'a>) {
        *self = match (*self, value) {
            (Self::Absent, Value::Bytes(packed)) => Self::Packed(packed),
            (_, Value::Other) => *self,
            _ => Self::Scattered,
        };
    }
}

/// What one pass over a stored `MeshEntry` yields: its key, its two timestamps and where its
/// alert lists are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parsed<'a> {
    mesh: &'a [u8],
    pub(super) key: Key<'a>,
    /// `entry.timestamp` ([`GO_ZERO`] when missing).
    pub(super) timestamp: Timestamp,
    /// `expires_at` ([`GO_ZERO`] when missing).
    pub(super) expires_at: Timestamp,
    firing: Alerts<'a>,
    resolved: Alerts<'a>,
}

impl<'a> Parsed<'a> {
    /// Read `mesh`, the bytes of one `MeshEntry`.
    #[inline]
    pub(super) fn read(mesh: &'a [u8]) -> Self {
        Self::read_canonical(mesh).unwrap_or_else(|| Self::read_any(mesh))
    }

    /// The fast path, for the layout every Alertmanager (and [`Nflog::log`](super::Nflog::log))
    /// writes: known fields only, each at most once, in field order. Straight-line code
    /// expecting each tag in turn; anything else returns `None` and goes to
    /// [`read_any`](Self::read_any). On what it accepts both agree, since there is then
    /// nothing to merge, concatenate or skip.
    pub(super) fn read_canonical(mesh: &'a [u8]) -> Option<Self> {
        let mut m = Canonical(mesh);
        let entry = m.bytes(0x0a)?;
        let expires_at = m.bytes(0x12);
        m.end()?;
        let mut e = Canonical(entry);
        let group_key = e.bytes(0x0a).unwrap_or_default();
        let receiver = e.bytes(0x12)?;
        e.bytes(0x1a); // group_hash
        e.varint(0x20); // resolved
        let timestamp = e.bytes(0x2a);
        let firing = e.bytes(0x32);
        let resolved = e.bytes(0x3a);
        while e.bytes(0x42).is_some() {} // receiver_data entries
        e.end()?;
        let mut r = Canonical(receiver);
        let key = Key {
            group_key,
            group_name: r.bytes(0x0a).unwrap_or_default(),
            integration: r.bytes(0x12).unwrap_or_default(),
            idx: r.varint(0x18).unwrap_or(0) as u32,
        };
        r.end()?;
        let packed = |list: Option<&'a [u8]>| list.map_or(Alerts::Absent, Alerts::Packed);
        Some(Self {
            mesh,
            key,
            timestamp: canonical_timestamp(timestamp)?,
            expires_at: canonical_timestamp(expires_at)?,
            firing: packed(firing),
            resolved: packed(resolved),
        })
    }

    /// The general reader: any field order, repeats merged, unknown fields skipped.
    pub(super) fn read_any(mesh: &'a [u8]) -> Self {
        let mut p = Self {
            mesh,
            key: Key { group_key: &[], group_name: &[], integration: &[], idx: 0 },
            timestamp: GO_ZERO,
            expires_at: GO_ZERO,
            firing: Alerts::Absent,
            resolved: Alerts::Absent,
        };
        let (mut timestamp, mut expires_at) =
            (TimestampParts::default(), TimestampParts::default());
        for (field, value) in Fields::new(mesh) {
            match (field, value) {
                (FIELD_ENTRY, Value::Bytes(entry)) => p.read_entry(entry, &mut timestamp),
                (FIELD_EXPIRES_AT, Value::Bytes(t)) => expires_at.merge(t),
                _ => {}
            }
        }
        p.timestamp = timestamp.get();
        p.expires_at = expires_at.get();
        p
    }

    fn read_entry(&mut self, entry: &'a [u8], timestamp: &mut TimestampParts) {
        for (field, value) in Fields::new(entry) {
            match (field, value) {
                (FIELD_GROUP_KEY, Value::Bytes(b)) => self.key.group_key = b,
                (FIELD_RECEIVER, Value::Bytes(r)) => {
                    for (f, v) in Fields::new(r) {
                        match (f, v) {
                            (1, Value::Bytes(b)) => self.key.group_name = b,
                            (2, Value::Bytes(b)) => self.key.integration = b,
                            // uint32 read as prost does: truncated.
                            (3, Value::Varint(n)) => self.key.idx = n as u32,
                            _ => {}
                        }
                    }
                }
                (FIELD_TIMESTAMP, Value::Bytes(t)) => timestamp.merge(t),
                (FIELD_FIRING, v) => self.firing.see(v),
                (FIELD_RESOLVED, v) => self.resolved.see(v),
                _ => {}
            }
        }
    }

    /// The `MeshEntry` bytes read.
    pub(super) fn mesh(&self) -> &'a [u8] {
        self.mesh
    }

    /// Call `f` with each hash of field `field` (6 firing, 7 resolved), in wire order.
    pub(super) fn for_each_alert(&self, field: u32, mut f: impl FnMut(u64)) {
        let alerts = if field == FIELD_FIRING { self.firing } else { self.resolved };
        match alerts {
            Alerts::Absent => {}
            Alerts::Packed(mut packed) => {
                while let Some(h) = varint(&mut packed) {
                    f(h);
                }
            }
            Alerts::Scattered => for_each_alert(self.mesh, field, f),
        }
    }
}

/// Call `f` with every hash of repeated field `field` (6 firing, 7 resolved) of the entry in
/// `mesh`, in wire order, packed and unpacked occurrences alike.
pub(super) fn for_each_alert(mesh: &[u8], field: u32, mut f: impl FnMut(u64)) {
    for (n, value) in Fields::new(mesh) {
        let (FIELD_ENTRY, Value::Bytes(entry)) = (n, value) else { continue };
        for (m, v) in Fields::new(entry) {
            if m != field {
                continue;
            }
            match v {
                Value::Varint(h) => f(h),
                Value::Bytes(mut packed) => {
                    while !packed.is_empty() {
                        match varint(&mut packed) {
                            Some(h) => f(h),
                            None => break,
                        }
                    }
                }
                Value::Other => {}
            }
        }
    }
}

/// A small vector of hashes that lives on the stack up to 32 elements.
pub(super) struct HashBuf {
    inline: [u64; 32],
    len: usize,
    spill: Vec<u64>,
}

impl HashBuf {
    pub(super) fn new() -> Self {
        Self { inline: [0; 32], len: 0, spill: Vec::new() }
    }

    /// Collect field `field` of a parsed entry.
    pub(super) fn collect(parsed: &Parsed<'_>, field: u32) -> Self {
        let mut buf = Self::new();
        parsed.for_each_alert(field, |h| buf.push(h));
        buf
    }

    pub(super) fn push(&mut self, h: u64) {
        if self.spill.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = h;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline[..self.len]);
            }
            self.spill.push(h);
        }
    }

    pub(super) fn as_slice(&self) -> &[u64] {
        if self.spill.is_empty() { &self.inline[..self.len] } else { &self.spill }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(gk: &'a str, name: &'a str, integration: &'a str, idx: u32) -> Key<'a> {
        Key {
            group_key: gk.as_bytes(),
            group_name: name.as_bytes(),
            integration: integration.as_bytes(),
            idx,
        }
    }

    #[test]
    fn key_is_the_go_string() {
        let k = key("{}:{a=\"1\"}", "hook", "webhook", 12);
        let s = b"{}:{a=\"1\"}:hook/webhook/12";
        assert_eq!(k.hash(), xxhash_rust::xxh3::xxh3_64(s));
        // A long key takes the streaming path and hashes the same.
        for n in [STACK_KEY_LEN - 13, STACK_KEY_LEN - 12, 400] {
            let long = "x".repeat(n);
            let k = key(&long, "r", "email", 0);
            let s = format!("{long}:r/email/0");
            assert_eq!(k.hash(), xxhash_rust::xxh3::xxh3_64(s.as_bytes()), "{n}");
        }
    }

    #[test]
    fn keys_compare_as_their_strings() {
        // Go's stateKey concatenates: these two tuples are one key there, and here.
        let a = key("g:a", "b", "webhook", 0);
        let b = key("g", "a:b", "webhook", 0);
        assert!(a.same(&b));
        assert_eq!(a.hash(), b.hash());
        assert!(!a.same(&key("g:a", "b", "webhook", 1)));
        assert!(!a.same(&key("g:a", "b", "email", 0)));
        assert_eq!(key("a", "x", "y", 9).cmp_key(&key("a", "x", "y", 10)), Ordering::Greater);
        assert_eq!(key("a", "x", "y", 1).cmp_key(&key("ab", "x", "y", 1)), Ordering::Less);
        assert_eq!(decimal(0, &mut IdxBuf::default()), b"0");
        assert_eq!(decimal(u32::MAX, &mut IdxBuf::default()), b"4294967295");
    }

    #[test]
    fn scanner_survives_garbage_and_groups() {
        // An unknown group (field 9, start 0x4b ... end 0x4c) between known fields.
        let mut entry = vec![0x0a, 0x01, b'g', 0x4b, 0x08, 0x01, 0x4c, 0x30, 0x05];
        let mut mesh = vec![0x0a, entry.len() as u8];
        mesh.append(&mut entry);
        let p = Parsed::read(&mesh);
        assert_eq!(p.key.group_key, b"g");
        assert_eq!(p.timestamp, GO_ZERO);
        let mut seen = Vec::new();
        for_each_alert(&mesh, FIELD_FIRING, |h| seen.push(h));
        p.for_each_alert(FIELD_FIRING, |h| seen.push(h));
        assert_eq!(seen, [5, 5]);
        for junk in [&[0xff][..], &[0x0a, 0x05, 1], &[0x0b, 0x0b, 0x0b], &[0x0f]] {
            let _ = Parsed::read(junk);
            for_each_alert(junk, FIELD_FIRING, |_| {});
        }
    }

    #[test]
    fn varints_read_as_prost_reads_them() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut enc = Vec::new();
            prost::encoding::encode_varint(v, &mut enc);
            enc.push(0xaa);
            let mut buf = &enc[..];
            assert_eq!(varint(&mut buf), Some(v));
            assert_eq!(buf, [0xaa]);
        }
        // Eleven bytes, or a tenth byte above 1, is not a varint; nor is a cut one.
        assert_eq!(varint(&mut &[0xff; 11][..]), None);
        assert_eq!(
            varint(&mut &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..]),
            None
        );
        assert_eq!(varint(&mut &[0x80][..]), None);
        assert_eq!(varint(&mut &[][..]), None);
    }

    #[test]
    fn hash_buf_spills() {
        let mut b = HashBuf::new();
        for i in 0..40 {
            b.push(i);
        }
        assert_eq!(b.as_slice(), (0..40).collect::<Vec<_>>());
    }
}
