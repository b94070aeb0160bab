//! UDP packets: label → [encryption slot] → CRC → compress → compound → messages (spec §6).
//!
//! Receiving mirrors Go's `ingestPacket` + `handleCommand`: the label and CRC are honoured only
//! at the top of a packet; compound and compress may nest in either order and recurse, so both
//! are handled by one dispatcher with a depth cap. A bad part inside a compound is counted and
//! skipped (Go logs it and carries on with the other parts); anything wrong outside a compound
//! rejects the whole packet.

use super::message::{Compress, MessageType};
use super::msgpack::Reader;
use super::{COMPOUND_MAX_PARTS, IntEncoding, LABEL_MSG, Message, WireError, lzw};

/// Deepest nesting of compound/compress wrappers accepted. Go builds at most two
/// (compress around a compound); the cap keeps hostile nesting from recursing without end.
const MAX_DEPTH: usize = 8;

/// Largest part of a compound: its length is a u16.
const COMPOUND_PART_MAX_LEN: usize = u16::MAX as usize;

/// The CRC header: type byte and a big-endian CRC32 (IEEE) of the rest of the packet.
const CRC_HEADER_LEN: usize = 5;

/// How this node frames bytes on the wire, for packets and streams alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    /// Cluster label (`--cluster.label`); empty for none. Packets and streams carrying another
    /// label — or any label when ours is empty, or none when ours is set — are rejected.
    pub label: Vec<u8>,
    /// How Go `int` fields above 127 are written. Both forms are always accepted.
    pub ints: IntEncoding,
    /// memberlist `EnableCompression` (default true): UDP packets are LZW-compressed when that
    /// makes them strictly smaller; streams are always compressed.
    pub compress: bool,
    /// Largest decompressed UDP packet accepted (default 1 MiB; a datagram is ≤ 64 KiB, and a
    /// higher ratio than this means a hostile sender).
    pub max_packet_decompressed_len: usize,
    /// Largest stream message accepted, before and after decompression (default 20 MiB, what
    /// memberlist allows for push/pull state).
    pub max_stream_len: usize,
    /// Largest node count in a push/pull header (default 1,048,576 as memberlist ≥ 0.6.0).
    pub max_push_nodes: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            label: Vec::new(),
            ints: IntEncoding::default(),
            compress: true,
            max_packet_decompressed_len: 1 << 20,
            max_stream_len: 20 << 20,
            max_push_nodes: 1 << 20,
        }
    }
}

/// What decoding one packet found. Errors inside a compound are counted, not fatal: Go handles
/// each part on its own, and so do we.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Messages handed to the visitor.
    pub messages: usize,
    /// Parts that failed to decode and were skipped.
    pub malformed: usize,
    /// Compound parts announced but missing from the packet.
    pub truncated: usize,
}

/// State shared by every level of one packet's dispatch.
struct Walk<'v> {
    summary: PacketSummary,
    /// Decompressed bytes the rest of this packet may still produce: the cap applies to the sum
    /// over all nested compress layers, so nesting cannot multiply it.
    budget: usize,
    visit: &'v mut dyn FnMut(Message<'_>),
}

impl Codec {
    /// Peel every layer off `packet` and hand each message to `visit`, in order.
    ///
    /// Returns an error (and visits nothing) when an outer layer is wrong: label mismatch,
    /// CRC mismatch, corrupt compression, or a top-level message that does not decode.
    /// All compress layers of one packet together may produce at most
    /// [`Codec::max_packet_decompressed_len`] bytes.
    pub fn decode_packet(
        &self,
        packet: &[u8],
        visit: &mut dyn FnMut(Message<'_>),
    ) -> Result<PacketSummary, WireError> {
        let buf = self.strip_packet_label(packet)?;
        // Encryption slot: with a keyring, `buf` is decrypted here (AAD = our label), before
        // the CRC, exactly as Go's `ingestPacket` does. Not implemented yet.
        let buf = strip_crc(buf)?;
        let mut walk = Walk {
            summary: PacketSummary::default(),
            budget: self.max_packet_decompressed_len,
            visit,
        };
        dispatch(buf, 0, &mut walk)?;
        Ok(walk.summary)
    }

    /// Check and remove the label header (spec §6.7): present exactly when we have a label, and
    /// byte-equal to it.
    fn strip_packet_label<'b>(&self, packet: &'b [u8]) -> Result<&'b [u8], WireError> {
        let Some((&LABEL_MSG, rest)) = packet.split_first() else {
            return if self.label.is_empty() {
                Ok(packet)
            } else {
                Err(WireError::LabelMismatch)
            };
        };
        let (&len, rest) = rest
            .split_first()
            .ok_or(WireError::Truncated("label length"))?;
        if len == 0 {
            return Err(WireError::InvalidLabel);
        }
        let (label, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or(WireError::Truncated("label"))?;
        if label != self.label.as_slice() {
            return Err(WireError::LabelMismatch);
        }
        Ok(rest)
    }

    /// Wrap `payload` (one encoded message or compound) for the wire, appending to `out`:
    /// LZW when enabled and strictly smaller, then a CRC header when `crc` (send it to peers
    /// whose protocol max is ≥ 5), then the label.
    ///
    /// # Panics
    /// When the label is longer than [`super::LABEL_MAX_LEN`] (255) bytes; Go refuses such a
    /// label at configuration time, and so must ours.
    pub fn seal_packet(&self, payload: &[u8], crc: bool, out: &mut Vec<u8>) {
        self.write_label(out);
        // Encryption slot: with a keyring, everything below is encrypted as one blob (no type
        // byte) after the CRC is computed. Not implemented yet.
        let crc_at = out.len();
        if crc {
            out.extend_from_slice(&[MessageType::HasCrc as u8, 0, 0, 0, 0]);
        }
        let body_at = out.len();
        if self.compress {
            Compress {
                algo: 0,
                buf: &lzw::compress(payload),
            }
            .encode(out);
        }
        // Go keeps the compressed form on UDP only when it is strictly smaller (spec §6.1).
        if !self.compress || out.len() - body_at >= payload.len() {
            out.truncate(body_at);
            out.extend_from_slice(payload);
        }
        if crc {
            let sum = crc32fast::hash(&out[body_at..]).to_be_bytes();
            out[crc_at + 1..body_at].copy_from_slice(&sum);
        }
    }

    /// Append our label header, if we have a label (`F4`, length, bytes).
    pub(super) fn write_label(&self, out: &mut Vec<u8>) {
        if self.label.is_empty() {
            return;
        }
        // Invariant in the callers' docs: configuration caps the label at 255 bytes.
        let len = u8::try_from(self.label.len()).expect("label longer than 255 bytes");
        out.extend_from_slice(&[LABEL_MSG, len]);
        out.extend_from_slice(&self.label);
    }

    /// Bytes the label header adds to every packet (memberlist `labelOverhead`).
    pub fn label_overhead(&self) -> usize {
        if self.label.is_empty() {
            0
        } else {
            2 + self.label.len()
        }
    }
}

/// Verify and remove a CRC header, if there is one. Go honours it only here: at the top of a
/// packet, after the label and decryption, and only when at least 5 bytes are present.
fn strip_crc(buf: &[u8]) -> Result<&[u8], WireError> {
    match buf.split_first_chunk::<CRC_HEADER_LEN>() {
        Some(([ty, crc @ ..], rest)) if *ty == MessageType::HasCrc as u8 => {
            if crc32fast::hash(rest) != u32::from_be_bytes(*crc) {
                return Err(WireError::CrcMismatch);
            }
            Ok(rest)
        }
        _ => Ok(buf),
    }
}

/// Decode one message, compound or compressed message found at nesting level `depth`.
fn dispatch(buf: &[u8], depth: usize, walk: &mut Walk<'_>) -> Result<(), WireError> {
    match buf.first().copied().and_then(MessageType::from_u8) {
        Some(MessageType::Compound) => {
            nested(depth)?;
            decode_compound(buf.get(1..).unwrap_or_default(), depth, walk)
        }
        Some(MessageType::Compress) => {
            nested(depth)?;
            let plain = decompress_message(buf.get(1..).unwrap_or_default(), walk.budget)?;
            walk.budget -= plain.len();
            dispatch(&plain, depth + 1, walk)
        }
        _ => {
            let message = Message::decode(buf)?;
            (walk.visit)(message);
            walk.summary.messages += 1;
            Ok(())
        }
    }
}

/// Refuse a wrapper at nesting level `depth` when that is already as deep as we go.
fn nested(depth: usize) -> Result<(), WireError> {
    if depth >= MAX_DEPTH {
        Err(WireError::TooDeep)
    } else {
        Ok(())
    }
}

/// The body of a `compress` message (after its type byte): check the algorithm and inflate,
/// producing at most `max_out` bytes.
pub(super) fn decompress_message(body: &[u8], max_out: usize) -> Result<Vec<u8>, WireError> {
    let compress = Compress::decode_body(&mut Reader::new(body))?;
    if compress.algo != 0 {
        return Err(WireError::UnknownCompression(compress.algo));
    }
    lzw::decompress(compress.buf, max_out)
}

/// The body of a compound (after its type byte): `u8` count, count × `u16` BE lengths, parts.
/// Parts missing at the end are counted as truncated and the ones before are still delivered,
/// as Go does; a part that fails to decode is counted and skipped.
fn decode_compound(body: &[u8], depth: usize, walk: &mut Walk<'_>) -> Result<(), WireError> {
    let (&count, rest) = body
        .split_first()
        .ok_or(WireError::Truncated("compound count"))?;
    let count = usize::from(count);
    let (lens, mut parts) = rest
        .split_at_checked(2 * count)
        .ok_or(WireError::Truncated("compound lengths"))?;
    let (lens, _) = lens.as_chunks::<2>();
    for (i, len) in lens.iter().enumerate() {
        let Some((part, tail)) = parts.split_at_checked(usize::from(u16::from_be_bytes(*len)))
        else {
            walk.summary.truncated += count - i;
            break;
        };
        parts = tail;
        if dispatch(part, depth + 1, walk).is_err() {
            walk.summary.malformed += 1;
        }
    }
    Ok(())
}

/// Append a compound message carrying `parts` (each a complete encoded message) to `out`.
///
/// # Errors
/// [`WireError::TooLarge`] when there are more than 255 parts or a part is longer than 65,535
/// bytes; `out` is then unchanged.
pub fn encode_compound(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), WireError> {
    let count = u8::try_from(parts.len()).map_err(|_| WireError::TooLarge {
        what: "compound parts",
        limit: COMPOUND_MAX_PARTS,
    })?;
    if parts.iter().any(|part| part.len() > COMPOUND_PART_MAX_LEN) {
        return Err(WireError::TooLarge {
            what: "compound part",
            limit: COMPOUND_PART_MAX_LEN,
        });
    }
    out.push(MessageType::Compound as u8);
    out.push(count);
    for part in parts {
        // Checked above: every part length fits a u16.
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(())
}
