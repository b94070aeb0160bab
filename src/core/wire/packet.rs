//! UDP packets: label → [encryption slot] → CRC → compress → compound → messages (spec §6).

use super::{IntEncoding, Message, WireError};

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

impl Codec {
    /// Peel every layer off `packet` and hand each message to `visit`, in order.
    ///
    /// Returns an error (and visits nothing) when an outer layer is wrong: label mismatch,
    /// CRC mismatch, corrupt compression, or a top-level message that does not decode.
    pub fn decode_packet(
        &self,
        packet: &[u8],
        visit: &mut dyn FnMut(Message<'_>),
    ) -> Result<PacketSummary, WireError> {
        todo!(
            "{} {}",
            packet.len(),
            visit as *const _ as *const () as usize
        )
    }

    /// Wrap `payload` (one encoded message or compound) for the wire, appending to `out`:
    /// LZW when enabled and strictly smaller, then a CRC header when `crc` (send it to peers
    /// whose protocol max is ≥ 5), then the label.
    pub fn seal_packet(&self, payload: &[u8], crc: bool, out: &mut Vec<u8>) {
        todo!("{} {crc} {}", payload.len(), out.len())
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

/// Append a compound message carrying `parts` (each a complete encoded message) to `out`.
///
/// # Errors
/// [`WireError::TooLarge`] when there are more than 255 parts or a part is longer than 65,535
/// bytes; `out` is then unchanged.
pub fn encode_compound(parts: &[&[u8]], out: &mut Vec<u8>) -> Result<(), WireError> {
    todo!("{} {}", parts.len(), out.len())
}
