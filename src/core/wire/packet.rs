//! UDP packets: label → encryption → CRC → compress → compound → messages, as memberlist's
//! `rawSendMsgPacket` and `ingestPacket`.
//!
//! Receiving mirrors Go's `ingestPacket` + `handleCommand`: the label and CRC are honoured only
//! at the top of a packet; compound and compress may nest in either order and recurse, so both
//! are handled by one dispatcher with a depth cap. A bad part inside a compound is counted and
//! skipped (Go logs it and carries on with the other parts); anything wrong outside a compound
//! rejects the whole packet.

use super::keyring::{EncryptionVersion, HEADER_LEN, Keyring};
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
    /// At most [`super::LABEL_MAX_LEN`] (255) bytes: its length is one byte on the wire.
    pub label: Vec<u8>,
    /// How Go `int` fields above 127 are written. Both forms are always accepted.
    pub ints: IntEncoding,
    /// memberlist `EnableCompression` (default true): UDP packets are LZW-compressed when that
    /// makes them strictly smaller; streams are always compressed.
    pub compress: bool,
    /// Largest decompressed UDP packet accepted (default 1 MiB; a datagram is ≤ 64 KiB, and a
    /// higher ratio than this means a hostile sender). It bounds the sum over every compress
    /// layer in one packet, so nested compression cannot multiply it.
    pub max_packet_decompressed_len: usize,
    /// Largest stream message accepted, before and after decompression (default 20 MiB, what
    /// memberlist allows for push/pull state).
    pub max_stream_len: usize,
    /// Largest node count in a push/pull header (default 1,048,576 as memberlist ≥ 0.6.0).
    pub max_push_nodes: usize,
    /// The AES-GCM keyring; `None` (the default) is no encryption. memberlist `Keyring` /
    /// `SecretKey`. Alertmanager has no flag for it (encryption needs a Go program that sets
    /// it, or Alertmanager's TLS transport instead).
    pub keyring: Option<Keyring>,
    /// Which encryption version we seal with. memberlist derives it from `ProtocolVersion`
    /// ([`EncryptionVersion::for_protocol`]): version 1 for the default protocol 2. Both are
    /// always accepted.
    pub encryption_version: EncryptionVersion,
    /// memberlist `GossipVerifyIncoming` (default true): with a keyring, a packet that does
    /// not decrypt is dropped and a plain stream is refused. False accepts plain data too
    /// (undecryptable packets are read as plaintext), for rolling a key into a running
    /// cluster.
    pub gossip_verify_incoming: bool,
    /// memberlist `GossipVerifyOutgoing` (default true): with a keyring, everything we send is
    /// encrypted. False sends plain data, for the first step of rolling a key in.
    pub gossip_verify_outgoing: bool,
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
            keyring: None,
            encryption_version: EncryptionVersion::default(),
            gossip_verify_incoming: true,
            gossip_verify_outgoing: true,
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
        // With a keyring the whole rest is one encrypted blob (no type byte), AAD = the label,
        // opened before the CRC is looked at, as memberlist's `ingestPacket`.
        let plain;
        let buf = match &self.keyring {
            Some(keyring) => match keyring.open(buf, &self.label) {
                Ok(opened) => {
                    plain = opened;
                    plain.as_slice()
                }
                Err(err) if self.gossip_verify_incoming => return Err(err),
                // Rolling a key in: what does not decrypt is read as plaintext.
                Err(_) => buf,
            },
            None => buf,
        };
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
            return if self.label.is_empty() { Ok(packet) } else { Err(WireError::LabelMismatch) };
        };
        let (&len, rest) = rest.split_first().ok_or(WireError::Truncated("label length"))?;
        if len == 0 {
            return Err(WireError::InvalidLabel);
        }
        let (label, rest) =
            rest.split_at_checked(usize::from(len)).ok_or(WireError::Truncated("label"))?;
        if label != self.label.as_slice() {
            return Err(WireError::LabelMismatch);
        }
        Ok(rest)
    }

    /// Wrap `payload` (one encoded message or compound) for the wire, appending to `out`:
    /// LZW when enabled and strictly smaller, then a CRC header when `crc` (send it to peers
    /// whose protocol max is ≥ 5), then encryption with the primary key when there is a
    /// keyring and `gossip_verify_outgoing`, then the label.
    ///
    /// # Panics
    /// When the label is longer than [`super::LABEL_MAX_LEN`] (255) bytes; Go refuses such a
    /// label at configuration time, and so must ours.
    pub fn seal_packet(&self, payload: &[u8], crc: bool, out: &mut Vec<u8>) {
        self.write_label(out);
        let Some(keyring) = self.sealing_keyring() else {
            return self.seal_plain_packet(payload, crc, out);
        };
        // Everything after the label is sealed as one blob with no type byte, AAD = the label,
        // as memberlist's `rawSendMsgPacket`. Room for version and nonce first, then the plain
        // packet is built in place and encrypted there.
        let at = out.len();
        out.resize(at + HEADER_LEN, 0);
        self.seal_plain_packet(payload, crc, out);
        keyring.seal_tail(self.encryption_version, out, at, &self.label);
    }

    /// The keyring we seal with: there is one and `gossip_verify_outgoing` is on.
    pub(super) fn sealing_keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref().filter(|_| self.gossip_verify_outgoing)
    }

    /// Compression and CRC, appended to `out`.
    fn seal_plain_packet(&self, payload: &[u8], crc: bool, out: &mut Vec<u8>) {
        let crc_at = out.len();
        if crc {
            out.extend_from_slice(&[MessageType::HasCrc as u8, 0, 0, 0, 0]);
        }
        let body_at = out.len();
        if self.compress {
            Compress { algo: 0, buf: &lzw::compress(payload) }.encode(out);
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
        if self.label.is_empty() { 0 } else { 2 + self.label.len() }
    }

    /// Bytes encryption may add to a packet when a keyring is configured (memberlist
    /// `encryptOverhead`, reserved by its gossip budget whenever encryption is enabled): 29 for
    /// version 1, 45 for version 0; 0 without a keyring.
    pub fn encryption_overhead(&self) -> usize {
        if self.keyring.is_some() { self.encryption_version.overhead() } else { 0 }
    }

    /// Bytes encryption adds to the packets we send: [`Self::encryption_overhead`] when we
    /// seal (`gossip_verify_outgoing`), else 0. memberlist's piggyback budget reserves this.
    pub fn sealing_overhead(&self) -> usize {
        if self.sealing_keyring().is_some() { self.encryption_version.overhead() } else { 0 }
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
    if depth >= MAX_DEPTH { Err(WireError::TooDeep) } else { Ok(()) }
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
    let (&count, rest) = body.split_first().ok_or(WireError::Truncated("compound count"))?;
    let count = usize::from(count);
    let (lens, mut parts) =
        rest.split_at_checked(2 * count).ok_or(WireError::Truncated("compound lengths"))?;
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
    let count = u8::try_from(parts.len())
        .map_err(|_| WireError::TooLarge { what: "compound parts", limit: COMPOUND_MAX_PARTS })?;
    if parts.iter().any(|part| part.len() > COMPOUND_PART_MAX_LEN) {
        return Err(WireError::TooLarge { what: "compound part", limit: COMPOUND_PART_MAX_LEN });
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

#[cfg(test)]
pub(super) mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::core::wire::Ping;
    use crate::core::wire::message::tests::{PING, SUSPECT, arb_message, ping, suspect};

    const COMPOUND: &str = "0702004500270085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd23860383a446726f6da66e6f64652d61ab496e6361726e6174696f6e05a44e6f6465a66e6f64652d62";
    pub(crate) const COMPRESSED_PING: &str = "0982a4416c676f00a3427566da004100011422e5e40d9932a6dc182cd3424ca92965e2140ca06aca9b3a72c6940942868c1c520a0000a06811a3c68207132e6c11a6e2c58c65a0bc9143a7d908430101";
    const COMPRESSED_USER: &str = "0982a4416c676f00a3427566da00280011841133666041820613225c78b0a142870c1f4a8c4811a2c589172b62dca8b163c68f1c1b0604";
    const CRC_PING_HEADER: &str = "0c779c94c7";
    const LABEL_PROD: &str = "f40470726f64";

    fn unhex(hex_bytes: &str) -> Vec<u8> {
        hex::decode(hex_bytes).unwrap()
    }

    /// Decode with `codec` and collect every visited message, re-encoded (messages borrow from
    /// decompressed buffers that do not outlive the call).
    fn decode(codec: &Codec, packet: &[u8]) -> Result<(Vec<Vec<u8>>, PacketSummary), WireError> {
        let mut seen = Vec::new();
        let summary = codec.decode_packet(packet, &mut |m| {
            let mut out = Vec::new();
            m.encode(IntEncoding::Signed, &mut out);
            seen.push(out);
        })?;
        Ok((seen, summary))
    }

    fn summary(messages: usize, malformed: usize, truncated: usize) -> PacketSummary {
        PacketSummary { messages, malformed, truncated }
    }

    fn labelled(label: &str) -> Codec {
        Codec { label: label.as_bytes().to_vec(), ..Codec::default() }
    }

    #[test]
    fn golden_compound() {
        let packet = unhex(COMPOUND);
        let mut seen = Vec::new();
        let got = Codec::default().decode_packet(&packet, &mut |m| seen.push(format!("{m:?}")));
        assert_eq!(got, Ok(summary(2, 0, 0)));
        let expected =
            [Message::Ping(ping()), Message::Suspect(suspect())].map(|m| format!("{m:?}"));
        assert_eq!(seen, expected);

        let mut out = Vec::new();
        encode_compound(&[&unhex(PING), &unhex(SUSPECT)], &mut out).unwrap();
        assert_eq!(hex::encode(out), COMPOUND);
    }

    #[test]
    fn golden_compressed_ping() {
        let ping = unhex(PING);
        let (seen, got) = decode(&Codec::default(), &unhex(COMPRESSED_PING)).unwrap();
        assert_eq!((seen, got), (vec![ping.clone()], summary(1, 0, 0)));

        let mut wrapped = Vec::new();
        Compress { algo: 0, buf: &lzw::compress(&ping) }.encode(&mut wrapped);
        assert_eq!(hex::encode(wrapped), COMPRESSED_PING);
        // 80 bytes compressed against 69 plain: UDP keeps the plain form.
        let mut out = Vec::new();
        Codec::default().seal_packet(&ping, false, &mut out);
        assert_eq!(out, ping);
    }

    #[test]
    fn golden_compressed_user() {
        let mut user = vec![MessageType::User as u8];
        user.extend(b"abcabcabc".repeat(20));
        assert_eq!(user.len(), 181);
        let mut out = Vec::new();
        Codec::default().seal_packet(&user, false, &mut out);
        assert_eq!(hex::encode(&out), COMPRESSED_USER);
        let (seen, _) = decode(&Codec::default(), &out).unwrap();
        assert_eq!(seen, vec![user]);
    }

    #[test]
    fn golden_labelled_and_crc_ping() {
        let ping = unhex(PING);
        let labelled_ping = unhex(&format!("{LABEL_PROD}{PING}"));
        let crc_ping = unhex(&format!("{CRC_PING_HEADER}{PING}"));
        let prod = labelled("prod");

        let mut out = Vec::new();
        prod.seal_packet(&ping, false, &mut out);
        assert_eq!(out, labelled_ping);
        assert_eq!(decode(&prod, &labelled_ping).unwrap().0, vec![ping.clone()]);
        assert_eq!(prod.label_overhead(), 6);

        out.clear();
        Codec::default().seal_packet(&ping, true, &mut out);
        assert_eq!(out, crc_ping);
        assert_eq!(decode(&Codec::default(), &crc_ping).unwrap().0, vec![ping.clone()]);

        out.clear();
        prod.seal_packet(&ping, true, &mut out);
        assert_eq!(hex::encode(&out), format!("{LABEL_PROD}{CRC_PING_HEADER}{PING}"));
    }

    #[test]
    fn crc_mismatch_and_short_crc() {
        let mut crc_ping = unhex(&format!("{CRC_PING_HEADER}{PING}"));
        *crc_ping.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&Codec::default(), &crc_ping), Err(WireError::CrcMismatch));
        // Fewer than 5 bytes: not a CRC header, and 12 is not a message.
        assert_eq!(decode(&Codec::default(), &[12, 0, 0]), Err(WireError::UnexpectedType(12)));
    }

    #[test]
    fn crc_only_at_the_top() {
        let crc_ping = unhex(&format!("{CRC_PING_HEADER}{PING}"));
        let mut packet = Vec::new();
        encode_compound(&[&crc_ping, &unhex(SUSPECT)], &mut packet).unwrap();
        assert_eq!(decode(&Codec::default(), &packet).unwrap().1, summary(1, 1, 0));
    }

    #[test]
    fn label_mismatches() {
        let ping = unhex(PING);
        let labelled_ping = unhex(&format!("{LABEL_PROD}{PING}"));
        let mismatch = Err(WireError::LabelMismatch);
        assert_eq!(decode(&Codec::default(), &labelled_ping), mismatch);
        assert_eq!(decode(&labelled("prod"), &ping), mismatch);
        assert_eq!(decode(&labelled("prof"), &labelled_ping), mismatch);
        assert_eq!(decode(&labelled("prod2"), &labelled_ping), mismatch);
        assert_eq!(decode(&Codec::default(), &[LABEL_MSG, 0, 0]), Err(WireError::InvalidLabel));
        assert_eq!(
            decode(&Codec::default(), &[LABEL_MSG]),
            Err(WireError::Truncated("label length"))
        );
        assert_eq!(
            decode(&labelled("prod"), &[LABEL_MSG, 4, b'p']),
            Err(WireError::Truncated("label"))
        );
    }

    #[test]
    fn truncated_compound_delivers_the_parts_before() {
        let packet = unhex(COMPOUND);
        let (seen, got) = decode(&Codec::default(), &packet[..packet.len() - 5]).unwrap();
        assert_eq!((seen, got), (vec![unhex(PING)], summary(1, 0, 1)));
        // Only the lengths: both parts missing.
        assert_eq!(decode(&Codec::default(), &packet[..6]).unwrap().1, summary(0, 0, 2));
        // The length table itself cut short: the whole packet is bad.
        assert_eq!(
            decode(&Codec::default(), &packet[..4]),
            Err(WireError::Truncated("compound lengths"))
        );
        assert_eq!(decode(&Codec::default(), &[7]), Err(WireError::Truncated("compound count")));
        assert_eq!(decode(&Codec::default(), &[7, 0]).unwrap().1, summary(0, 0, 0));
    }

    #[test]
    fn bad_parts_are_counted_and_skipped() {
        let ping = unhex(PING);
        let bad: [&[u8]; 8] = [
            &[6, 0x80],
            &[10, 1],
            &[12, 0, 0, 0, 0, 0],
            &[13, 0x80],
            &[244, 1, b'x'],
            &[0, 0xc1],
            &[],
            &[9, 0x80],
        ];
        let mut parts: Vec<&[u8]> = vec![&ping];
        parts.extend(bad);
        parts.push(&ping);
        let mut packet = Vec::new();
        encode_compound(&parts, &mut packet).unwrap();
        let (seen, got) = decode(&Codec::default(), &packet).unwrap();
        assert_eq!((seen.len(), got), (2, summary(2, bad.len(), 0)));
        // At the top level a bad message rejects the packet.
        assert_eq!(decode(&Codec::default(), &[13, 0x80]), Err(WireError::UnexpectedType(13)));
        assert_eq!(decode(&Codec::default(), &[]), Err(WireError::Truncated("message type")));
    }

    fn compressed(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Compress { algo: 0, buf: &lzw::compress(plain) }.encode(&mut out);
        out
    }

    #[test]
    fn compound_and_compress_nest_both_ways() {
        let ping = unhex(PING);
        let suspect = unhex(SUSPECT);
        let mut inner = Vec::new();
        encode_compound(&[&ping, &compressed(&suspect)], &mut inner).unwrap();
        let packet = compressed(&inner);
        let (seen, got) = decode(&Codec::default(), &packet).unwrap();
        assert_eq!((seen, got), (vec![ping, suspect], summary(2, 0, 0)));
    }

    #[test]
    fn nesting_is_capped() {
        let mut packet = unhex(PING);
        for _ in 0..MAX_DEPTH {
            packet = compressed(&packet);
        }
        assert_eq!(decode(&Codec::default(), &packet).unwrap().1, summary(1, 0, 0));
        assert_eq!(decode(&Codec::default(), &compressed(&packet)), Err(WireError::TooDeep));

        // Inside a compound the too-deep part is counted as malformed.
        let mut packet = unhex(PING);
        for _ in 0..=MAX_DEPTH {
            let mut outer = Vec::new();
            encode_compound(&[&packet], &mut outer).unwrap();
            packet = outer;
        }
        assert_eq!(decode(&Codec::default(), &packet).unwrap().1, summary(0, 1, 0));
    }

    #[test]
    fn decompression_is_capped_per_packet() {
        let mut user = vec![MessageType::User as u8];
        user.resize(600 << 10, b'a');
        let bomb = compressed(&user);
        assert!(bomb.len() < 8 << 10);
        let codec = Codec::default();
        assert_eq!(decode(&codec, &bomb).unwrap().1, summary(1, 0, 0));
        // Two parts of 600 KiB exceed the 1 MiB budget of one packet.
        let mut packet = Vec::new();
        encode_compound(&[&bomb, &bomb], &mut packet).unwrap();
        assert_eq!(decode(&codec, &packet).unwrap().1, summary(1, 1, 0));
        let small = Codec { max_packet_decompressed_len: 1000, ..Codec::default() };
        assert!(matches!(decode(&small, &bomb), Err(WireError::TooLarge { limit: 1000, .. })));
    }

    #[test]
    fn compress_errors() {
        // {Algo: 1, Buf: ""}
        let other_algo = unhex("0982a4416c676f01a3427566a0");
        assert_eq!(decode(&Codec::default(), &other_algo), Err(WireError::UnknownCompression(1)));
        let corrupt = unhex("0982a4416c676f00a3427566a3000102");
        assert_eq!(decode(&Codec::default(), &corrupt), Err(WireError::Lzw));
    }

    #[test]
    fn compound_limits_leave_out_unchanged() {
        let ping = unhex(PING);
        let mut out = vec![1, 2, 3];
        let parts = vec![ping.as_slice(); COMPOUND_MAX_PARTS + 1];
        let err = WireError::TooLarge { what: "compound parts", limit: 255 };
        assert_eq!(encode_compound(&parts, &mut out), Err(err));
        let big = vec![8u8; 65_536];
        let err = WireError::TooLarge { what: "compound part", limit: 65_535 };
        assert_eq!(encode_compound(&[&ping, &big], &mut out), Err(err));
        assert_eq!(out, [1, 2, 3]);

        encode_compound(&parts[1..], &mut out).unwrap();
        let (seen, got) = decode(&Codec::default(), &out[3..]).unwrap();
        assert_eq!((seen.len(), got), (255, summary(255, 0, 0)));
    }

    fn codecs() -> impl Strategy<Value = Codec> {
        (any::<bool>(), prop_oneof![Just(""), Just("prod"), Just("x")])
            .prop_map(|(compress, label)| Codec { compress, ..labelled(label) })
    }

    proptest! {
        #[test]
        fn packets_round_trip(
            messages in vec(arb_message(), 1..12),
            codec in codecs(),
            crc in any::<bool>(),
        ) {
            let encoded: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| {
                    let mut out = Vec::new();
                    m.encode(codec.ints, &mut out);
                    out
                })
                .collect();
            let mut payload = Vec::new();
            if let [single] = encoded.as_slice() {
                payload.clone_from(single);
            } else {
                let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                encode_compound(&parts, &mut payload).unwrap();
            }
            let mut packet = Vec::new();
            codec.seal_packet(&payload, crc, &mut packet);
            let (seen, got) = decode(&codec, &packet).unwrap();
            prop_assert_eq!(got, summary(messages.len(), 0, 0));
            prop_assert_eq!(seen, encoded);
        }

        #[test]
        fn arbitrary_packets_never_panic(
            bytes in vec(any::<u8>(), 0..600),
            first in prop_oneof![0u8..=13, Just(LABEL_MSG)],
        ) {
            let mut typed = bytes.clone();
            typed.insert(0, first);
            for codec in [Codec::default(), labelled("prod")] {
                let _ = decode(&codec, &bytes);
                let _ = decode(&codec, &typed);
            }
        }

        #[test]
        fn mutated_packets_never_panic(
            message in arb_message(),
            edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut part = Vec::new();
            message.encode(IntEncoding::Signed, &mut part);
            let mut packet = Vec::new();
            encode_compound(&[&part, &compressed(&part)], &mut packet).unwrap();
            for (at, byte) in edits {
                let at = at.index(packet.len());
                packet[at] = byte;
            }
            let _ = decode(&Codec::default(), &packet);
            let _ = decode(&Codec::default(), &packet[..cut.index(packet.len())]);
        }
    }

    #[test]
    fn borrowed_messages_survive_decompression_scope() {
        // Messages handed to the visitor may borrow decompressed bytes; copying a field out is
        // how a caller keeps it.
        let packet = compressed(&unhex(PING));
        let mut node = String::new();
        Codec::default()
            .decode_packet(&packet, &mut |m| {
                if let Message::Ping(Ping { node: n, .. }) = m {
                    node = n.to_owned();
                }
            })
            .unwrap();
        assert_eq!(node, "node-b");
    }
}
