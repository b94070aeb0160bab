//! uvarint-length-delimited message streams: the payload of every state Part, full state and
//! snapshot file (Go `pbutil.WriteDelimited` in Alertmanager 0.25, `protodelim` in ≥ 0.32 —
//! same bytes). No header, no trailer, no checksum.

use super::DecodeError;

/// Largest single message accepted: `protodelim`'s default, which Alertmanager ≥ 0.32 applies.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// Append `msg` with its length prefix.
pub fn push(out: &mut Vec<u8>, msg: &[u8]) {
    prost::encoding::encode_varint(msg.len() as u64, out);
    out.extend_from_slice(msg);
}

/// Split `data` into `(offset, message)` pairs, where `offset` is where the element (its length
/// prefix) starts. Any malformed element fails the whole input, as in Alertmanager.
pub fn split(data: &[u8]) -> Result<Vec<(usize, &[u8])>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let mut rest = &data[at..];
        let before = rest.len();
        let len = prost::encoding::decode_varint(&mut rest)
            .map_err(|_| DecodeError::Truncated { offset: at })?;
        let header = before - rest.len();
        let Ok(n) = usize::try_from(len) else {
            return Err(DecodeError::TooLarge { offset: at, len, limit: MAX_MESSAGE_LEN });
        };
        if n > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLarge { offset: at, len, limit: MAX_MESSAGE_LEN });
        }
        if rest.len() < n {
            return Err(DecodeError::Truncated { offset: at });
        }
        out.push((at, &rest[..n]));
        at += header + n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offsets() {
        let mut buf = Vec::new();
        push(&mut buf, b"abc");
        push(&mut buf, &[7; 300]);
        push(&mut buf, b"");
        let parts = split(&buf).expect("valid");
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], (0, &b"abc"[..]));
        assert_eq!(parts[1].0, 4);
        assert_eq!(parts[1].1.len(), 300);
        assert_eq!(parts[2], (306, &b""[..]));
    }

    #[test]
    fn truncation_and_size_are_reported_with_offsets() {
        let mut buf = Vec::new();
        push(&mut buf, b"abc");
        buf.extend_from_slice(&[5, 1, 2]);
        assert_eq!(split(&buf), Err(DecodeError::Truncated { offset: 4 }));
        let mut big = Vec::new();
        prost::encoding::encode_varint((MAX_MESSAGE_LEN + 1) as u64, &mut big);
        assert!(matches!(split(&big), Err(DecodeError::TooLarge { offset: 0, .. })));
        assert_eq!(split(&[0x80]), Err(DecodeError::Truncated { offset: 0 }));
    }
}
