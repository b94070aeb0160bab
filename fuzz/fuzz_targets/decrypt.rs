//! Peer bytes into the decryption path: a codec with a keyring (two keys, both encryption
//! versions) fed arbitrary packets and stream frames, raw and sealed.
//!
//! Raw input exercises what an attacker without the key controls: version byte, lengths, the
//! `0A` + u32 stream header, truncation, and the cost of trying every key. Forged tags never
//! open, so the input is also sealed with the primary key first and then decoded: that sends
//! arbitrary plaintext through everything behind decryption (CRC, compression, compound,
//! messages), as a peer holding the key could. Run with `cargo fuzz run decrypt` from this
//! directory.

#![no_main]

use hearsay::core::wire::{Codec, EncryptionVersion, Keyring, SecretKey, StreamFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the configuration: label, encryption version, verification,
    // stream direction, CRC.
    let Some((&config, data)) = input.split_first() else {
        return;
    };
    let keys = [SecretKey::new([7u8; 32]).expect("32 bytes"), SecretKey::new([9u8; 16]).expect("16 bytes")];
    let codec = Codec {
        label: if config & 1 == 1 { b"prod".to_vec() } else { Vec::new() },
        max_packet_decompressed_len: 1 << 16,
        max_stream_len: 1 << 20,
        max_push_nodes: 1 << 12,
        keyring: Some(Keyring::new(&keys, [config; 32]).expect("two valid keys")),
        encryption_version: if config & 2 == 2 {
            EncryptionVersion::Padded
        } else {
            EncryptionVersion::Unpadded
        },
        gossip_verify_incoming: config & 4 == 0,
        ..Codec::default()
    };
    let inbound = config & 8 == 8;

    // Raw: without the key.
    let _ = codec.decode_packet(data, &mut |_| {});
    frame_and_decode(&codec, data, inbound);

    // Sealed: arbitrary plaintext behind a valid tag.
    let mut packet = Vec::new();
    codec.seal_packet(data, config & 16 == 16, &mut packet);
    let _ = codec.decode_packet(&packet, &mut |_| {});
    let mut stream = Vec::new();
    codec.seal_stream(data, inbound, &mut stream);
    match codec.stream_frame(&stream, inbound) {
        Ok(StreamFrame::Complete { len }) => assert_eq!(len, stream.len(), "sealed frame length"),
        other => panic!("a sealed stream does not frame: {other:?}"),
    }
    let _ = codec.decode_stream(&stream, inbound, |_| ());
});

fn frame_and_decode(codec: &Codec, data: &[u8], inbound: bool) {
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
}
