//! LZW as Go's compress/lzw writes it (LSB, 8-bit literals).
//!
//! memberlist compresses with `lzw.NewWriter(w, lzw.LSB, 8)`: GIF-style codes from 9 to 12 bits,
//! clear code 256 first, end code 257 last, no TIFF "early change" (spec §6.4). weezl with
//! `BitOrder::Lsb, 8` produces the same bytes for inputs that do not fill the 4096-entry table
//! (every UDP packet); for larger inputs its bytes differ but Go's reader decodes them, which is
//! all a stream needs.
//!
//! Decompression is capped: a few kilobytes of LZW can expand a thousandfold, so the caller
//! names the most output it will accept and the decoder stops one byte past it.

use weezl::{BitOrder, LzwStatus, decode::Decoder, encode::Encoder};

use super::WireError;

/// Output is produced in chunks of this size, so a capped decode never reserves much more than
/// it keeps.
const CHUNK: usize = 4096;

/// Compress `data` into a complete LZW stream (clear code first, end code last), as Go's writer
/// does. Empty input gives `00 03 02`.
pub(super) fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let result = Encoder::new(BitOrder::Lsb, 8).into_vec(&mut out).encode_all(data);
    // weezl only fails on a symbol wider than the literal width; every u8 fits 8 bits.
    result.status.expect("8-bit LZW accepts every byte");
    out
}

/// Decompress a complete LZW stream, producing at most `max_out` bytes.
///
/// # Errors
/// [`WireError::TooLarge`] when the output would exceed `max_out`; [`WireError::Lzw`] on an
/// invalid code or a stream that ends without its end code (Go's reader fails on both).
pub(super) fn decompress(data: &[u8], max_out: usize) -> Result<Vec<u8>, WireError> {
    let mut decoder = Decoder::new(BitOrder::Lsb, 8);
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        // Leave room for one byte past the cap so that exceeding it is seen, never more.
        let room = (max_out - out.len()).saturating_add(1).min(CHUNK);
        let start = out.len();
        out.resize(start + room, 0);
        let result = decoder.decode_bytes(rest, &mut out[start..]);
        out.truncate(start + result.consumed_out);
        rest = rest.get(result.consumed_in..).unwrap_or_default();
        if out.len() > max_out {
            return Err(WireError::TooLarge { what: "decompressed data", limit: max_out });
        }
        match result.status {
            Ok(LzwStatus::Done) => return Ok(out),
            // A decoder that neither reads nor writes is out of input before its end code.
            Ok(LzwStatus::Ok) if result.consumed_in > 0 || result.consumed_out > 0 => {}
            Ok(LzwStatus::Ok | LzwStatus::NoProgress) | Err(_) => return Err(WireError::Lzw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec Appendix A `LZW_EMPTY`: what Go writes for empty input.
    const LZW_EMPTY: &str = "000302";

    #[test]
    fn empty_input_matches_go() {
        assert_eq!(hex::encode(compress(&[])), LZW_EMPTY);
        assert_eq!(decompress(&hex::decode(LZW_EMPTY).unwrap(), 0).unwrap(), b"");
    }

    #[test]
    fn round_trips_across_table_resets() {
        // 200 kB of mixed data fills the 4096-code table many times over.
        let data: Vec<u8> =
            (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let packed = compress(&data);
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn output_cap_is_exact() {
        let data = vec![7u8; 10_000];
        let packed = compress(&data);
        assert_eq!(decompress(&packed, 10_000).unwrap(), data);
        assert_eq!(
            decompress(&packed, 9_999),
            Err(WireError::TooLarge { what: "decompressed data", limit: 9_999 })
        );
    }

    #[test]
    fn bomb_is_rejected_at_the_cap() {
        // 64 MiB of zeros packs into a few tens of kilobytes.
        let packed = compress(&vec![0u8; 64 << 20]);
        assert!(packed.len() < 200_000, "{}", packed.len());
        assert!(matches!(decompress(&packed, 1 << 20), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn corrupt_or_unterminated_streams_are_errors() {
        let packed = compress(b"hello hello hello hello");
        // Without its last bytes the end code is missing.
        assert_eq!(decompress(&packed[..packed.len() - 2], 1000), Err(WireError::Lzw));
        assert_eq!(decompress(&[], 1000), Err(WireError::Lzw));
        // A code far beyond the table: clear (256), then 511.
        assert_eq!(decompress(&[0x00, 0xff, 0x03], 1000), Err(WireError::Lzw));
    }
}
