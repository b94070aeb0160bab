//! msgpack as hashicorp/go-msgpack writes and reads it.
//!
//! memberlist encodes every body with a zero-valued `codec.MsgpackHandle` (go-msgpack v0.5.3 up
//! to memberlist 0.5.0, go-msgpack/v2 from 0.5.1). Two of its habits differ from what a generic
//! msgpack library writes (spec §3):
//!
//! * strings *and* byte slices use the old raw family: fixstr, str16 (`da`), str32 (`db`); never
//!   str8 (`d9`) nor bin (`c4`–`c6`), which Alertmanager ≤ 0.27 rejects in string fields;
//! * Go `int` fields above 127 are written unsigned by v0.5.3 and signed by v2
//!   ([`IntEncoding`], spec §3.4).
//!
//! So the writer is a handful of functions that append to the caller's `Vec` (marker bytes come
//! from [`rmp::Marker`]; rmp's own writers are not used because they return `io::Result` even
//! for a `Vec` and pick str8). The [`Reader`] is zero-copy over a `&[u8]` and accepts everything
//! Go's decoders accept: every integer marker (range-checked into the field's type), str8 and bin
//! for strings and bytes, `nil` for anything, and a `Vsn` sent as an array of small ints. Every
//! length and count is checked against the bytes actually present before it is used, so no
//! input makes it allocate or loop beyond its own size.

use rmp::Marker;

use super::{IntEncoding, WireError};

/// Append `nil`: how Go writes a nil slice.
pub(super) fn write_nil(out: &mut Vec<u8>) {
    out.push(Marker::Null.to_u8());
}

/// Append a bool.
pub(super) fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.push(if value { Marker::True } else { Marker::False }.to_u8());
}

/// Append a map header. Struct maps have at most 8 keys, so only fixmap and map16 occur.
pub(super) fn write_map_len(out: &mut Vec<u8>, len: u16) {
    match u8::try_from(len) {
        Ok(small) if small < 16 => out.push(Marker::FixMap(small).to_u8()),
        _ => {
            out.push(Marker::Map16.to_u8());
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// Append a string or byte slice in the raw family: fixstr below 32 bytes, else str16, else
/// str32 (go-msgpack never writes str8 or bin with a zero-valued handle).
///
/// # Panics
/// When `data` is 4 GiB or longer, which msgpack cannot express. Nothing memberlist sends comes
/// near: streams are capped at 20 MiB and packets at 64 KiB.
pub(super) fn write_raw(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len();
    if let Ok(small) = u8::try_from(len)
        && small < 32
    {
        out.push(Marker::FixStr(small).to_u8());
    } else if let Ok(len) = u16::try_from(len) {
        out.push(Marker::Str16.to_u8());
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        // Invariant in the doc comment: callers never encode 4 GiB in one field.
        let len = u32::try_from(len).expect("msgpack raw value longer than 4 GiB");
        out.push(Marker::Str32.to_u8());
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(data);
}

/// Append a Go `[]byte` that may be nil: `None` is `nil`, `Some(&[])` is an empty raw (`a0`).
pub(super) fn write_opt_raw(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        Some(data) => write_raw(out, data),
        None => write_nil(out),
    }
}

/// Append an unsigned Go integer (`uint8`…`uint64`) in its smallest unsigned form, as both
/// go-msgpack versions do.
pub(super) fn write_uint(out: &mut Vec<u8>, value: u64) {
    if let Ok(byte) = u8::try_from(value) {
        if byte > 0x7f {
            out.push(Marker::U8.to_u8());
        }
        out.push(byte);
    } else if let Ok(value) = u16::try_from(value) {
        out.push(Marker::U16.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    } else if let Ok(value) = u32::try_from(value) {
        out.push(Marker::U32.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    } else {
        out.push(Marker::U64.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Append a Go `int`. Both codecs write negatives in the smallest signed form; non-negative
/// values differ (spec §3.4): v0.5.3 uses the smallest unsigned form, v2 the smallest signed
/// one (so 200 is `cc c8` in v0.5.3 and `d1 00 c8` in v2).
pub(super) fn write_go_int(out: &mut Vec<u8>, value: i64, ints: IntEncoding) {
    match (u64::try_from(value), ints) {
        (Ok(unsigned), IntEncoding::Unsigned) => write_uint(out, unsigned),
        _ => write_signed(out, value),
    }
}

/// The smallest signed form: fixint (−32..=127), then int8/16/32/64.
fn write_signed(out: &mut Vec<u8>, value: i64) {
    if let Ok(byte) = i8::try_from(value) {
        if !(-32..=127).contains(&byte) {
            out.push(Marker::I8.to_u8());
        }
        out.extend_from_slice(&byte.to_be_bytes());
    } else if let Ok(value) = i16::try_from(value) {
        out.push(Marker::I16.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    } else if let Ok(value) = i32::try_from(value) {
        out.push(Marker::I32.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    } else {
        out.push(Marker::I64.to_u8());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// A zero-copy msgpack reader over one buffer. Values borrow from the buffer.
///
/// After a [`WireError::Truncated`], [`Reader::wanted`] is a lower bound on the buffer length
/// the failed read needed; stream framing uses it to say how many bytes to wait for.
#[derive(Debug)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
    total: usize,
    wanted: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf, total: buf.len(), wanted: 0 }
    }

    /// Bytes consumed so far.
    pub(super) fn position(&self) -> usize {
        self.total - self.rest.len()
    }

    /// The bytes not consumed yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// After a truncation: the buffer must be at least this long for the failed read to
    /// succeed (always more than the buffer holds now).
    pub(super) fn wanted(&self) -> usize {
        self.wanted.max(self.total.saturating_add(1))
    }

    /// Record that `more` bytes from the current position were needed, and say so.
    fn short(&mut self, more: usize, what: &'static str) -> WireError {
        self.wanted = self.position().saturating_add(more);
        WireError::Truncated(what)
    }

    /// The next `n` raw bytes.
    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(self.short(n, what)),
        }
    }

    /// The next raw byte.
    pub(super) fn byte(&mut self, what: &'static str) -> Result<u8, WireError> {
        match self.rest.split_first() {
            Some((&byte, tail)) => {
                self.rest = tail;
                Ok(byte)
            }
            None => Err(self.short(1, what)),
        }
    }

    fn peek(&mut self, what: &'static str) -> Result<Marker, WireError> {
        match self.rest.first() {
            Some(&byte) => Ok(Marker::from_u8(byte)),
            None => Err(self.short(1, what)),
        }
    }

    /// A big-endian length of `width` (1, 2 or 4) bytes.
    fn be_len(&mut self, width: usize, what: &'static str) -> Result<usize, WireError> {
        let bytes = self.take(width, what)?;
        Ok(bytes.iter().fold(0, |acc, &b| (acc << 8) | usize::from(b)))
    }

    /// An integer in any msgpack integer form, range-checked into `T` (never wrapped). `nil`
    /// is the zero value, as in Go.
    pub(super) fn int<T>(&mut self, what: &'static str) -> Result<T, WireError>
    where
        T: TryFrom<i128> + Default,
    {
        let width = match self.peek(what)? {
            Marker::Null => {
                self.byte(what)?;
                return Ok(T::default());
            }
            Marker::FixPos(_) | Marker::FixNeg(_) => 0,
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 => 4,
            Marker::U64 | Marker::I64 => 8,
            other => return Err(unexpected(other, what)),
        };
        let mut bytes = self.take(1 + width, what)?;
        // The marker and its data length were checked above and every msgpack integer fits an
        // i128, so rmp cannot fail here; map any failure to a range error all the same.
        let value: i128 =
            rmp::decode::read_int(&mut bytes).map_err(|_| WireError::IntOutOfRange(what))?;
        T::try_from(value).map_err(|_| WireError::IntOutOfRange(what))
    }

    /// A bool; `nil` is false.
    pub(super) fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        let value = match self.peek(what)? {
            Marker::True => true,
            Marker::False | Marker::Null => false,
            other => return Err(unexpected(other, what)),
        };
        self.byte(what)?;
        Ok(value)
    }

    /// A Go `[]byte` keeping nil apart: `nil` is `None`. Accepts the raw/str family (including
    /// str8) and bin, as both Go decoders do.
    pub(super) fn raw(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, WireError> {
        let width = match self.peek(what)? {
            Marker::Null => {
                self.byte(what)?;
                return Ok(None);
            }
            Marker::FixStr(len) => {
                self.byte(what)?;
                return self.take(usize::from(len), what).map(Some);
            }
            Marker::Str8 | Marker::Bin8 => 1,
            Marker::Str16 | Marker::Bin16 => 2,
            Marker::Str32 | Marker::Bin32 => 4,
            other => return Err(unexpected(other, what)),
        };
        self.byte(what)?;
        let len = self.be_len(width, what)?;
        self.take(len, what).map(Some)
    }

    /// A byte slice where nil and empty mean the same.
    pub(super) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        Ok(self.raw(what)?.unwrap_or_default())
    }

    /// A Go `string`: any raw or bin form, `nil` is empty; must be UTF-8.
    pub(super) fn str(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| WireError::InvalidUtf8(what))
    }

    /// The entry count of a map (a Go struct). `nil` is an empty map (the zero struct).
    pub(super) fn map_len(&mut self, what: &'static str) -> Result<usize, WireError> {
        let len = match self.peek(what)? {
            Marker::Null => self.byte(what).map(|_| 0)?,
            Marker::FixMap(len) => self.byte(what).map(|_| usize::from(len))?,
            Marker::Map16 => self.counted(2, what)?,
            Marker::Map32 => self.counted(4, what)?,
            other => return Err(unexpected(other, what)),
        };
        self.check_count(len.saturating_mul(2), what)?;
        Ok(len)
    }

    /// Skip a marker, then read the `width`-byte big-endian count that follows it.
    fn counted(&mut self, width: usize, what: &'static str) -> Result<usize, WireError> {
        self.byte(what)?;
        self.be_len(width, what)
    }

    /// Refuse `values` more msgpack values when fewer bytes remain (each takes at least one),
    /// before anyone loops or allocates on the count.
    fn check_count(&mut self, values: usize, what: &'static str) -> Result<(), WireError> {
        if values > self.rest.len() {
            return Err(self.short(values, what));
        }
        Ok(())
    }

    /// A map key. Keys are matched exactly (case-sensitive) by the caller, as Go does.
    pub(super) fn key(&mut self) -> Result<&'a [u8], WireError> {
        self.bytes("map key")
    }

    /// A `Vsn`: six bytes as a raw string (what Go sends) or as an array of small ints (what Go
    /// also accepts, spec Appendix A). Shorter than six is `None`; longer keeps the first six.
    pub(super) fn version(&mut self, what: &'static str) -> Result<Option<[u8; 6]>, WireError> {
        let len = match self.peek(what)? {
            Marker::FixArray(len) => self.byte(what).map(|_| usize::from(len))?,
            Marker::Array16 => self.counted(2, what)?,
            Marker::Array32 => self.counted(4, what)?,
            _ => return Ok(self.raw(what)?.and_then(|b| b.first_chunk::<6>()).copied()),
        };
        self.check_count(len, what)?;
        let mut vsn = [0; 6];
        for i in 0..len {
            let byte: u8 = self.int(what)?;
            if let Some(slot) = vsn.get_mut(i) {
                *slot = byte;
            }
        }
        Ok((len >= vsn.len()).then_some(vsn))
    }

    /// Skip one value of any type, however nested, without recursion: a count of values still
    /// to skip replaces the call stack, and it may never exceed the bytes left (each value takes
    /// at least one), so hostile nesting or counts cannot exhaust the stack or spin.
    pub(super) fn skip_value(&mut self) -> Result<(), WireError> {
        const WHAT: &str = "skipped value";
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            let marker = Marker::from_u8(self.byte(WHAT)?);
            let (payload, children) = self.shape(marker)?;
            self.take(payload, WHAT)?;
            pending = pending.saturating_add(children);
            self.check_count(pending, WHAT)?;
        }
        Ok(())
    }

    /// After `marker`: how many payload bytes follow, and how many nested values.
    fn shape(&mut self, marker: Marker) -> Result<(usize, usize), WireError> {
        const WHAT: &str = "skipped value";
        Ok(match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null => (0, 0),
            Marker::True | Marker::False => (0, 0),
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            // Fixed-size extensions: a type byte, then 1–16 data bytes.
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::FixStr(len) => (usize::from(len), 0),
            Marker::Str8 | Marker::Bin8 => (self.be_len(1, WHAT)?, 0),
            Marker::Str16 | Marker::Bin16 => (self.be_len(2, WHAT)?, 0),
            Marker::Str32 | Marker::Bin32 => (self.be_len(4, WHAT)?, 0),
            Marker::Ext8 => (self.be_len(1, WHAT)?.saturating_add(1), 0),
            Marker::Ext16 => (self.be_len(2, WHAT)?.saturating_add(1), 0),
            Marker::Ext32 => (self.be_len(4, WHAT)?.saturating_add(1), 0),
            Marker::FixArray(len) => (0, usize::from(len)),
            Marker::Array16 => (0, self.be_len(2, WHAT)?),
            Marker::Array32 => (0, self.be_len(4, WHAT)?),
            Marker::FixMap(len) => (0, usize::from(len) * 2),
            Marker::Map16 => (0, self.be_len(2, WHAT)?.saturating_mul(2)),
            Marker::Map32 => (0, self.be_len(4, WHAT)?.saturating_mul(2)),
            Marker::Reserved => return Err(unexpected(marker, WHAT)),
        })
    }
}

fn unexpected(marker: Marker, field: &'static str) -> WireError {
    WireError::UnexpectedMarker { marker: marker.to_u8(), field }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        hex::encode(out)
    }

    fn header(len: usize) -> String {
        let data = vec![b'x'; len];
        let hex_bytes = written(|out| write_raw(out, &data));
        hex_bytes[..hex_bytes.len() - 2 * len].to_owned()
    }

    #[test]
    fn raw_family_never_uses_str8_or_bin() {
        assert_eq!(header(0), "a0");
        assert_eq!(header(31), "bf");
        assert_eq!(header(32), "da0020");
        assert_eq!(header(255), "da00ff");
        assert_eq!(header(65_535), "daffff");
        assert_eq!(header(65_536), "db00010000");
        assert_eq!(written(|out| write_opt_raw(out, None)), "c0");
        assert_eq!(written(|out| write_opt_raw(out, Some(&[]))), "a0");
    }

    #[test]
    fn small_writers() {
        assert_eq!(written(|out| write_bool(out, true)), "c3");
        assert_eq!(written(|out| write_bool(out, false)), "c2");
        assert_eq!(written(|out| write_map_len(out, 15)), "8f");
        assert_eq!(written(|out| write_map_len(out, 16)), "de0010");
    }

    #[test]
    fn unsigned_integers_take_their_smallest_unsigned_form() {
        for (value, expected) in [
            (0, "00"),
            (127, "7f"),
            (128, "cc80"),
            (255, "ccff"),
            (256, "cd0100"),
            (65_535, "cdffff"),
            (65_536, "ce00010000"),
            (u64::from(u32::MAX), "ceffffffff"),
            (1 << 32, "cf0000000100000000"),
        ] {
            assert_eq!(written(|out| write_uint(out, value)), expected, "{value}");
        }
    }

    /// Spec §3.4: the one byte difference between go-msgpack v0.5.3 and v2.
    #[test]
    fn go_ints_follow_the_codec_version() {
        for (value, unsigned, signed) in [
            (0, "00", "00"),
            (127, "7f", "7f"),
            (128, "cc80", "d10080"),
            (200, "ccc8", "d100c8"),
            (300, "cd012c", "d1012c"),
            (32_767, "cd7fff", "d17fff"),
            (32_768, "cd8000", "d200008000"),
            (70_000, "ce00011170", "d200011170"),
            (i64::from(i32::MAX), "ce7fffffff", "d27fffffff"),
            (1 << 31, "ce80000000", "d30000000080000000"),
            (-1, "ff", "ff"),
            (-32, "e0", "e0"),
            (-33, "d0df", "d0df"),
            (-129, "d1ff7f", "d1ff7f"),
        ] {
            assert_eq!(written(|out| write_go_int(out, value, IntEncoding::Unsigned)), unsigned);
            assert_eq!(written(|out| write_go_int(out, value, IntEncoding::Signed)), signed);
        }
    }

    fn reader(hex_bytes: &str) -> Reader<'static> {
        Reader::new(hex::decode(hex_bytes).unwrap().leak())
    }

    #[test]
    fn raw_accepts_str8_bin_and_nil() {
        for hex_bytes in ["a3616263", "d903616263", "da0003616263", "db00000003616263"] {
            assert_eq!(reader(hex_bytes).str("s"), Ok("abc"), "{hex_bytes}");
        }
        for hex_bytes in ["c403616263", "c50003616263", "c600000003616263"] {
            assert_eq!(reader(hex_bytes).raw("b"), Ok(Some(&b"abc"[..])), "{hex_bytes}");
        }
        assert_eq!(reader("c0").raw("b"), Ok(None));
        assert_eq!(reader("c0").str("s"), Ok(""));
        assert_eq!(reader("c0").int::<u32>("i"), Ok(0));
        assert_eq!(reader("c0").bool("b"), Ok(false));
        assert_eq!(reader("c0").map_len("m"), Ok(0));
    }

    #[test]
    fn lengths_beyond_the_input_are_truncations_with_a_lower_bound() {
        let mut r = reader("db7fffffff41");
        assert_eq!(r.raw("b"), Err(WireError::Truncated("b")));
        assert_eq!(r.wanted(), 5 + 0x7fff_ffff);
        // A map claiming 65535 entries needs at least two bytes per entry.
        let mut r = reader("deffff80");
        assert_eq!(r.map_len("m"), Err(WireError::Truncated("m")));
        assert_eq!(r.wanted(), 3 + 2 * 0xffff);
        let mut r = reader("cd01");
        assert_eq!(r.int::<u16>("i"), Err(WireError::Truncated("i")));
        assert_eq!(r.wanted(), 3);
        // Nothing recorded: one byte more than present.
        assert_eq!(reader("a1").wanted(), 2);
    }

    #[test]
    fn skip_handles_every_type() {
        let values = [
            "00",
            "ff",
            "c0",
            "c2",
            "c3",
            "cc01",
            "cd0102",
            "ce01020304",
            "cf0102030405060708",
            "d001",
            "d10102",
            "d201020304",
            "d30102030405060708",
            "ca01020304",
            "cb0102030405060708",
            "d40101",
            "d5010102",
            "d601",
            "d701",
            "d801",
            "a26869",
            "d9026869",
            "da00026869",
            "db000000026869",
            "c4026869",
            "c5000100",
            "c60000000100",
            "c70201aabb",
            "c8000101aa",
            "c9000000010100",
            "9201a0",
            "dc00020102",
            "dd00000001c0",
            "81a1610f",
            "de0001a16101",
            "df00000001a16101",
        ];
        for value in values {
            let value = match value {
                // Fixed extensions: complete their data.
                "d601" => "d60101020304",
                "d701" => "d7010102030405060708",
                "d801" => "d80100112233445566778899aabbccddeeff",
                other => other,
            };
            let mut r = reader(&format!("{value}2a"));
            assert_eq!(r.skip_value(), Ok(()), "{value}");
            assert_eq!(r.rest(), &[0x2a], "{value}");
        }
        assert!(matches!(reader("c1").skip_value(), Err(WireError::UnexpectedMarker { .. })));
    }

    #[test]
    fn skip_is_iterative_and_bounded() {
        // 200,000 nested one-element arrays: recursion would overflow the stack.
        let mut deep = vec![0x91; 200_000];
        deep.push(0x00);
        let mut r = Reader::new(&deep);
        assert_eq!(r.skip_value(), Ok(()));
        assert!(r.rest().is_empty());
        // Counts larger than the input are refused before any looping.
        assert_eq!(reader("dd7fffffff").skip_value(), Err(WireError::Truncated("skipped value")));
        assert_eq!(reader("df7fffffff").skip_value(), Err(WireError::Truncated("skipped value")));
        // Each nesting level adds to the pending count, which the input must still cover.
        assert!(reader(&"9f".repeat(100)).skip_value().is_err());
    }

    #[test]
    fn version_forms() {
        assert_eq!(reader("a6010502000000").version("v"), Ok(Some([1, 5, 2, 0, 0, 0])));
        assert_eq!(reader("96010502000000").version("v"), Ok(Some([1, 5, 2, 0, 0, 0])));
        assert_eq!(reader("dc0006010502000000").version("v"), Ok(Some([1, 5, 2, 0, 0, 0])));
        assert_eq!(reader("dd00000001ff").version("v"), Err(WireError::IntOutOfRange("v")));
        assert_eq!(reader("ddffffffff").version("v"), Err(WireError::Truncated("v")));
        assert_eq!(reader("90").version("v"), Ok(None));
    }
}
