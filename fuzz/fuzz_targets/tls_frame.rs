//! Peer bytes into the TLS transport's frame decoder, as an accepted connection reads them:
//! frame after frame from one buffer, until one is incomplete or refused.
//!
//! The decoder promises never to panic, to ask for no more than `MAX_FRAME_LEN` bytes per
//! frame, and to consume exactly the bytes of each frame it returns; decoded packets must
//! re-encode to the same bytes. Run with `cargo fuzz run tls_frame` from this directory.

#![no_main]

use hearsay::core::wire::tls_frame::{
    Decoded, LEN_PREFIX, MAX_FRAME_LEN, TlsFrame, decode, encode_packet, encode_stream,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    loop {
        match decode(rest) {
            Ok(Decoded::Incomplete { at_least }) => {
                assert!(at_least > rest.len());
                assert!(at_least <= LEN_PREFIX + MAX_FRAME_LEN);
                return;
            }
            Ok(Decoded::Frame { frame, len }) => {
                assert!(len >= LEN_PREFIX && len <= rest.len());
                // Our encoding of what was decoded decodes to the same frame.
                let mut again = Vec::new();
                match &frame {
                    TlsFrame::Stream => encode_stream(&mut again),
                    TlsFrame::Packet { from, msg } => encode_packet(*from, msg, &mut again),
                }
                assert_eq!(decode(&again), Ok(Decoded::Frame { frame, len: again.len() }));
                rest = &rest[len..];
            }
            Err(_) => return,
        }
    }
});
