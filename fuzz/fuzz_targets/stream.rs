//! Peer bytes into a TCP stream as the gossip driver reads it (`src/net/conn.rs`): bytes arrive
//! in reads of any size, after each read the framer is asked where the first message ends
//! (skipped while fewer bytes than it last asked for have arrived), and a complete frame is
//! decoded: pings, acks, user messages, error replies and push/pull with its node states and
//! user state, plain or LZW-compressed, labelled or not.
//!
//! Asserts: how the bytes were cut into reads does not change where the frame ends;
//! `Incomplete { at_least }` always asks for more than it has and never for more than the
//! frame really holds; a decoded message re-encodes (both integer encodings) to bytes that
//! decode to the same message. Run with `cargo fuzz run stream` from this directory.

#![no_main]

use hearsay::core::wire::{Codec, IntEncoding, StreamFrame, StreamMessage};
use libfuzzer_sys::fuzz_target;

fn codec(label: bool, max_stream_len: usize) -> Codec {
    Codec {
        label: if label { b"prod".to_vec() } else { Vec::new() },
        max_packet_decompressed_len: 1 << 16,
        max_stream_len,
        max_push_nodes: 1 << 12,
        ..Codec::default()
    }
}

fuzz_target!(|input: &[u8]| {
    // First byte: label, direction and the size of each read; the rest is the stream.
    let Some((&config, data)) = input.split_first() else {
        return;
    };
    let codec = codec(config & 1 == 1, 1 << 20);
    let inbound = config & 2 == 2;
    let read_len = usize::from(config >> 2) + 1;

    let whole = codec.stream_frame(data, inbound);
    let mut buf = Vec::new();
    let mut need = 0;
    let mut chunked = None;
    for read in data.chunks(read_len) {
        buf.extend_from_slice(read);
        if buf.len() < need {
            continue;
        }
        match codec.stream_frame(&buf, inbound) {
            Ok(StreamFrame::Incomplete { at_least }) => {
                assert!(at_least > buf.len(), "incomplete frame already satisfied");
                if let Ok(StreamFrame::Complete { len }) = whole {
                    assert!(at_least <= len, "asked for {at_least} bytes of a {len}-byte frame");
                }
                need = at_least;
            }
            done => {
                chunked = Some(done);
                break;
            }
        }
    }
    if let Ok(StreamFrame::Complete { len }) = whole {
        assert!(len <= data.len(), "complete frame longer than the input");
        let same = matches!(chunked, Some(Ok(StreamFrame::Complete { len: l })) if l == len);
        assert!(same, "a {len}-byte frame read {read_len} bytes at a time: {chunked:?}");
        let _ = codec.decode_stream(&data[..len], inbound, round_trip);
    }
});

/// Re-encode a decoded message; the plain bytes decode to the same message. (The re-decoding
/// codec allows a little more: the other integer encoding may be a few bytes longer.)
fn round_trip(msg: StreamMessage<'_>) {
    let plain = codec(false, 2 << 20);
    for ints in [IntEncoding::Signed, IntEncoding::Unsigned] {
        let mut bytes = Vec::new();
        msg.encode(ints, &mut bytes);
        let again = plain.decode_stream(&bytes, false, |m| assert_eq!(m, msg, "{ints:?}"));
        assert!(again.is_ok(), "our encoding of {msg:?} does not decode: {again:?}");
    }
}
