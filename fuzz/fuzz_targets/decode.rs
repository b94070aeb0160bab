//! Peer bytes into every wire decoder: UDP packets and TCP stream framing + decoding.
//!
//! The decoders promise never to panic and never to allocate beyond what the input justifies;
//! the limits are lowered here so that a decompression bomb shows up as a slow input rather
//! than hiding under the defaults. Run with `cargo fuzz run decode` from this directory.

#![no_main]

use hearsay::core::wire::{Codec, StreamFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the configuration, so one corpus covers labelled and unlabelled
    // codecs and both stream directions.
    let Some((&config, data)) = input.split_first() else {
        return;
    };
    let codec = Codec {
        label: if config & 1 == 1 { b"prod".to_vec() } else { Vec::new() },
        max_packet_decompressed_len: 1 << 16,
        max_stream_len: 1 << 20,
        max_push_nodes: 1 << 12,
        ..Codec::default()
    };
    let inbound = config & 2 == 2;

    let _ = codec.decode_packet(data, &mut |_| {});

    match codec.stream_frame(data, inbound) {
        Ok(StreamFrame::Complete { len }) => {
            assert!(len <= data.len(), "complete frame longer than the input");
            let _ = codec.decode_stream(&data[..len], inbound, |_| ());
        }
        Ok(StreamFrame::Incomplete { at_least }) => {
            assert!(at_least > data.len(), "incomplete frame already satisfied");
        }
        Err(_) => {}
    }
    let _ = codec.decode_stream(data, inbound, |_| ());
});
