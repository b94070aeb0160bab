//! memberlist's encryption: an AES-GCM keyring, byte-compatible with `security.go` and
//! `keyring.go` of memberlist v0.5.0 through v0.7.0.
//!
//! An encrypted blob is `[version][nonce 12][ciphertext][tag 16]`. Keys of 16, 24 or 32 bytes
//! select AES-128, -192 or -256 in GCM mode with the standard 12-byte nonce and 16-byte tag.
//! Version 0 PKCS#7-pads the plaintext to a multiple of 16 bytes first (1–16 bytes, each equal
//! to the pad count); version 1 does not pad. The first key of the ring (the primary) seals;
//! every key, primary first, is tried to open, as memberlist's `decryptPayload` does.
//!
//! ## Nonces
//!
//! GCM loses both confidentiality and integrity if a nonce ever repeats under one key, and every
//! node of a cluster shares the key. memberlist draws each nonce from `crypto/rand`. The core
//! may not read OS randomness, so the keyring owns a CSPRNG (`StdRng`, ChaCha12) seeded once by
//! its caller with 32 bytes: the node seeds it from OS entropy on every start, the simulator and
//! tests from a fixed seed. It is deliberately separate from the member's replayable `u64` seed:
//! tests and replays give several nodes the same seed, and deriving nonces from it would make
//! two nodes under one key emit the same nonce sequence. Random 96-bit nonces keep the chance of
//! a repeat negligible (birthday bound ≈ 2⁴⁸ messages per key), as in memberlist.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::WireError;

/// AES-192-GCM with the standard 12-byte nonce: `aes-gcm` names only the 128 and 256 variants.
type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// The version byte in front of every encrypted blob.
const VERSION_LEN: usize = 1;
/// GCM's standard nonce length (memberlist `nonceSize`).
pub const NONCE_LEN: usize = 12;
/// GCM's tag length (memberlist `tagSize`).
pub const TAG_LEN: usize = 16;
/// AES block size: version 0 pads to a multiple of it.
const BLOCK_LEN: usize = 16;
/// Bytes in front of the ciphertext: version and nonce.
pub(super) const HEADER_LEN: usize = VERSION_LEN + NONCE_LEN;

/// Most keys one ring holds. memberlist has no limit; a rotation needs two or three, and the
/// cost of a packet that opens with no key grows with the count (every key is tried), so a
/// bound keeps a garbage packet cheap.
pub const MAX_KEYS: usize = 32;

/// The encryption version byte (memberlist `encryptionVersion`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionVersion {
    /// Version 0: the plaintext is PKCS#7-padded to a multiple of 16 bytes before sealing.
    /// Sent by nodes configured with protocol version 1.
    Padded = 0,
    /// Version 1: no padding. Sent by nodes with protocol version 2 and above (the default).
    #[default]
    Unpadded = 1,
}

impl EncryptionVersion {
    /// The version a node sends, from its configured protocol version, as memberlist's
    /// `encryptionVersion()`: protocol version 1 → version 0, anything else → version 1.
    pub fn for_protocol(protocol_version: u8) -> Self {
        if protocol_version == 1 { Self::Padded } else { Self::Unpadded }
    }

    /// Bytes encryption adds to a packet in size budgets (memberlist `encryptOverhead`): 29 for
    /// version 1 (version, nonce, tag), 45 for version 0 (the most padding adds 16).
    pub fn overhead(self) -> usize {
        match self {
            Self::Padded => HEADER_LEN + BLOCK_LEN + TAG_LEN,
            Self::Unpadded => HEADER_LEN + TAG_LEN,
        }
    }

    /// Length of a sealed `plain_len`-byte plaintext (memberlist `encryptedLength`).
    pub fn sealed_len(self, plain_len: usize) -> usize {
        match self {
            Self::Padded => HEADER_LEN + plain_len + pad_len(plain_len) + TAG_LEN,
            Self::Unpadded => HEADER_LEN + plain_len + TAG_LEN,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Padded),
            1 => Some(Self::Unpadded),
            _ => None,
        }
    }
}

/// PKCS#7 padding for `len` bytes: always 1..=16 bytes, so a full block gains a whole block.
fn pad_len(len: usize) -> usize {
    BLOCK_LEN - len % BLOCK_LEN
}

/// Why a keyring operation was refused. The ring is unchanged by every error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A key must be 16, 24 or 32 bytes (AES-128, -192, -256), as memberlist's `ValidateKey`.
    #[error("key is {0} bytes; it must be 16, 24 or 32")]
    InvalidKeyLength(usize),
    /// A keyring needs at least one key (memberlist `NewKeyring` with no keys is no keyring).
    #[error("a keyring needs at least one key")]
    NoKeys,
    /// `use_key` named a key that is not installed.
    #[error("requested key is not in the keyring")]
    UnknownKey,
    /// `remove_key` named the primary key; switch to another with `use_key` first.
    #[error("removing the primary key is not allowed")]
    RemovePrimary,
    /// The ring already holds [`MAX_KEYS`] keys.
    #[error("the keyring already holds {limit} keys")]
    TooManyKeys {
        /// The limit that applied.
        limit: usize,
    },
    /// The node was started without encryption; a keyring cannot be added while it runs
    /// (memberlist fixes `Config.Keyring` at creation too).
    #[error("encryption is not configured")]
    NotConfigured,
}

/// One AES key: 16, 24 or 32 bytes. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Check the length (16, 24 or 32 bytes) and take the key.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyringError> {
        let bytes = bytes.into();
        match bytes.len() {
            16 | 24 | 32 => Ok(Self(bytes)),
            n => Err(KeyringError::InvalidKeyLength(n)),
        }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(AES-{})", self.0.len() * 8)
    }
}

/// An expanded key, ready to seal and open.
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl Cipher {
    fn new(key: &SecretKey) -> Self {
        let k = key.as_bytes();
        // `SecretKey::new` admits only these three lengths, so `from_slice` cannot panic.
        match k.len() {
            16 => Self::Aes128(Box::new(Aes128Gcm::new(GenericArray::from_slice(k)))),
            24 => Self::Aes192(Box::new(Aes192Gcm::new(GenericArray::from_slice(k)))),
            _ => Self::Aes256(Box::new(Aes256Gcm::new(GenericArray::from_slice(k)))),
        }
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = GenericArray::from_slice(nonce);
        let tag = match self {
            Self::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Self::Aes192(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Self::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        };
        // aes-gcm refuses only plaintexts longer than 2³⁶ − 32 bytes (GCM's limit); ours are
        // bounded by the stream limit (20 MiB by default), far below. Should it ever fail, the
        // zero tag makes the receiver drop the message: nothing is sent unauthenticated.
        tag.map(Into::into).unwrap_or([0; TAG_LEN])
    }

    fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let nonce = GenericArray::from_slice(nonce);
        let tag = GenericArray::from_slice(tag);
        match self {
            Self::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
            Self::Aes192(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
            Self::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag).is_ok(),
        }
    }
}

struct Inner {
    /// Primary first, then the others in the order they were added (memberlist `installKeys`).
    keys: Vec<(SecretKey, Cipher)>,
    /// Nonce source; see the module docs for why it is a seeded CSPRNG of its own.
    nonces: StdRng,
}

/// memberlist's `Keyring`: the installed keys, primary first, and the nonce source.
///
/// A cheap handle: clones share one ring (and one nonce stream, so no clone can ever repeat a
/// nonce another clone used). Rotation through any handle is seen by all of them; that is how
/// the driver's copy of the codec and the member's stay in step. Every method takes a short
/// lock; nothing blocks while holding it.
#[derive(Clone)]
pub struct Keyring(Arc<Mutex<Inner>>);

impl Keyring {
    /// A ring of `keys`, the first being the primary; duplicates are dropped, as memberlist's
    /// `NewKeyring`. `nonce_seed` seeds the nonce generator: 32 bytes from OS entropy in a real
    /// node (see the module docs).
    pub fn new(keys: &[SecretKey], nonce_seed: [u8; 32]) -> Result<Self, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::NoKeys);
        }
        let mut unique: Vec<(SecretKey, Cipher)> = Vec::with_capacity(keys.len().min(MAX_KEYS));
        for key in keys {
            if unique.iter().any(|(k, _)| k == key) {
                continue;
            }
            if unique.len() == MAX_KEYS {
                return Err(KeyringError::TooManyKeys { limit: MAX_KEYS });
            }
            unique.push((key.clone(), Cipher::new(key)));
        }
        Ok(Self(Arc::new(Mutex::new(Inner {
            keys: unique,
            nonces: StdRng::from_seed(nonce_seed),
        }))))
    }

    /// Install `key` for opening (memberlist `AddKey`); it does not become the primary.
    /// Adding an installed key changes nothing.
    pub fn add_key(&self, key: SecretKey) -> Result<(), KeyringError> {
        let mut inner = self.0.lock();
        if inner.keys.iter().any(|(k, _)| *k == key) {
            return Ok(());
        }
        if inner.keys.len() >= MAX_KEYS {
            return Err(KeyringError::TooManyKeys { limit: MAX_KEYS });
        }
        let cipher = Cipher::new(&key);
        inner.keys.push((key, cipher));
        Ok(())
    }

    /// Make an installed key the primary, the one that seals (memberlist `UseKey`).
    pub fn use_key(&self, key: &SecretKey) -> Result<(), KeyringError> {
        let mut inner = self.0.lock();
        let at = inner.keys.iter().position(|(k, _)| k == key).ok_or(KeyringError::UnknownKey)?;
        // Primary first, the others keep their order, as memberlist's `installKeys`.
        let entry = inner.keys.remove(at);
        inner.keys.insert(0, entry);
        Ok(())
    }

    /// Uninstall a key (memberlist `RemoveKey`). The primary cannot be removed; a key that is
    /// not installed is not an error, as in memberlist.
    pub fn remove_key(&self, key: &SecretKey) -> Result<(), KeyringError> {
        let mut inner = self.0.lock();
        if inner.keys.first().is_some_and(|(k, _)| k == key) {
            return Err(KeyringError::RemovePrimary);
        }
        inner.keys.retain(|(k, _)| k != key);
        Ok(())
    }

    /// The installed keys, primary first (memberlist `GetKeys`).
    pub fn keys(&self) -> Vec<SecretKey> {
        self.0.lock().keys.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The key that seals (memberlist `GetPrimaryKey`).
    pub fn primary_key(&self) -> SecretKey {
        let inner = self.0.lock();
        debug_assert!(!inner.keys.is_empty(), "a keyring always holds its primary");
        // Never empty: `new` needs a key and `remove_key` refuses the primary.
        inner.keys.first().map(|(k, _)| k.clone()).expect("a keyring always holds a key")
    }

    /// Seal in place with the primary key, as memberlist's `encryptPayload`. `out[at..]` holds
    /// [`HEADER_LEN`] reserved bytes followed by the plaintext; afterwards it holds
    /// `[version][nonce][ciphertext][tag]`, [`EncryptionVersion::sealed_len`] bytes long.
    pub(super) fn seal_tail(
        &self,
        version: EncryptionVersion,
        out: &mut Vec<u8>,
        at: usize,
        aad: &[u8],
    ) {
        debug_assert!(out.len() >= at + HEADER_LEN, "room for version and nonce reserved");
        let plain_len = out.len() - at - HEADER_LEN;
        if version == EncryptionVersion::Padded {
            let pad = pad_len(plain_len);
            // Bounded: 1..=16 by `pad_len`, so the cast is exact.
            out.resize(out.len() + pad, pad as u8);
        }
        let mut inner = self.0.lock();
        let mut nonce = [0u8; NONCE_LEN];
        inner.nonces.fill_bytes(&mut nonce);
        out[at] = version as u8;
        out[at + VERSION_LEN..at + HEADER_LEN].copy_from_slice(&nonce);
        let (_, cipher) = inner.keys.first().expect("a keyring always holds its primary");
        let tag = cipher.seal(&nonce, aad, &mut out[at + HEADER_LEN..]);
        out.extend_from_slice(&tag);
    }

    /// Open `sealed` (`[version][nonce][ciphertext][tag]`) with every key in turn, primary
    /// first, as memberlist's `decryptPayload`, and return the plaintext (padding removed for
    /// version 0).
    ///
    /// # Errors
    /// [`WireError::Decrypt`] when the version is unknown (> 1), the blob is shorter than an
    /// empty message sealed in its version (29 bytes for version 1, 45 for version 0), no key
    /// opens it, or version 0 padding is malformed.
    pub(super) fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, WireError> {
        let (&version, _) = sealed.split_first().ok_or(WireError::Decrypt("empty payload"))?;
        let version = EncryptionVersion::from_byte(version)
            .ok_or(WireError::Decrypt("unsupported encryption version"))?;
        if sealed.len() < version.sealed_len(0) {
            return Err(WireError::Decrypt("payload too small to decrypt"));
        }
        let nonce = &sealed[VERSION_LEN..HEADER_LEN];
        let (ciphertext, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
        let inner = self.0.lock();
        let mut buf = Vec::with_capacity(ciphertext.len());
        for (_, cipher) in &inner.keys {
            // A failed attempt leaves garbage in `buf` (aes-gcm decrypts before it compares
            // tags), so every key starts from a fresh copy of the ciphertext.
            buf.clear();
            buf.extend_from_slice(ciphertext);
            if cipher.open(nonce, aad, &mut buf, tag) {
                if version == EncryptionVersion::Padded {
                    unpad(&mut buf)?;
                }
                return Ok(buf);
            }
        }
        Err(WireError::Decrypt("no installed key decrypts the payload"))
    }
}

/// Remove PKCS#7 padding. Go's `pkcs7decode` trusts the last byte; we also refuse a count of 0,
/// above 16 or above the length (Go would slice out of range and panic), so a sender holding
/// the key still cannot make us misbehave.
fn unpad(buf: &mut Vec<u8>) -> Result<(), WireError> {
    let pad = usize::from(buf.last().copied().unwrap_or(0));
    if pad == 0 || pad > BLOCK_LEN || pad > buf.len() {
        return Err(WireError::Decrypt("bad padding"));
    }
    buf.truncate(buf.len() - pad);
    Ok(())
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.0.lock().keys.len();
        f.debug_struct("Keyring").field("keys", &keys).finish_non_exhaustive()
    }
}

/// Handles are equal when they share one ring.
impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Keyring {}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::core::wire::message::tests::{PING, arb_message};
    use crate::core::wire::{Codec, IntEncoding, Message, MessageType, StreamFrame, StreamMessage};

    /// Sealed by memberlist v0.5.0's `encryptPayload` (version 1, key "0123456789abcdef", AAD
    /// "prod", random nonce); decrypts to `PING`.
    const ENC_V1: &str = "015865ca6380e49ea070fb7640b90825d046e39617cb80762baf7f3f9c11a0c1a7d932f035886f11ba1acf897a011ffb13d97723de8ac25c7e779aa6321e02a54197eb3101b3beea4e853f326e755143515bc65e8693b4b27b0a1f5045b48ee10501";
    /// The same key, version 0, no AAD: `PING` plus 11 bytes of `0b` padding.
    const ENC_V0: &str = "00c3ddd12d6a5d94d13b386f5be290b2e6c3c10eceb9f5522e9a2e8a0bd3aa551f51f33679d1edaf76fa43f3d81a59abcf1a211fe4ad7feb7b29e873a4730e18d9565872bf3c2798d58e0c07d63d7531964a4145892cac9abd2c93ce84e52c9866764908b182ea5b6cc4248e6f";
    const LABEL_PROD: &str = "f40470726f64";

    fn unhex(hex_bytes: &str) -> Vec<u8> {
        hex::decode(hex_bytes).unwrap()
    }

    fn key(len: usize, fill: u8) -> SecretKey {
        SecretKey::new(vec![fill; len]).unwrap()
    }

    fn go_key() -> SecretKey {
        SecretKey::new(b"0123456789abcdef".to_vec()).unwrap()
    }

    fn ring(keys: &[SecretKey]) -> Keyring {
        Keyring::new(keys, [7; 32]).unwrap()
    }

    fn encrypted(keys: &[SecretKey], label: &str, version: EncryptionVersion) -> Codec {
        Codec {
            label: label.as_bytes().to_vec(),
            keyring: Some(ring(keys)),
            encryption_version: version,
            ..Codec::default()
        }
    }

    fn seal(keyring: &Keyring, version: EncryptionVersion, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = vec![0; HEADER_LEN];
        out.extend_from_slice(plain);
        keyring.seal_tail(version, &mut out, 0, aad);
        out
    }

    fn decode(codec: &Codec, packet: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
        let mut seen = Vec::new();
        codec.decode_packet(packet, &mut |m| {
            let mut out = Vec::new();
            m.encode(IntEncoding::Signed, &mut out);
            seen.push(out);
        })?;
        Ok(seen)
    }

    #[test]
    fn go_vectors_decrypt() {
        let keyring = ring(&[go_key()]);
        assert_eq!(keyring.open(&unhex(ENC_V1), b"prod"), Ok(unhex(PING)));
        assert_eq!(keyring.open(&unhex(ENC_V0), b""), Ok(unhex(PING)));
        // 69 bytes: 98 sealed in version 1, 109 in version 0 (11 bytes of padding).
        assert_eq!(unhex(ENC_V1).len(), EncryptionVersion::Unpadded.sealed_len(69));
        assert_eq!(unhex(ENC_V0).len(), EncryptionVersion::Padded.sealed_len(69));

        // The whole labelled packet, as a Go node with that key and label sends it.
        let packet = unhex(&format!("{LABEL_PROD}{ENC_V1}"));
        let codec = encrypted(&[go_key()], "prod", EncryptionVersion::Unpadded);
        assert_eq!(decode(&codec, &packet), Ok(vec![unhex(PING)]));
    }

    #[test]
    fn aad_and_key_must_match() {
        let keyring = ring(&[go_key()]);
        let no_key = Err(WireError::Decrypt("no installed key decrypts the payload"));
        assert_eq!(keyring.open(&unhex(ENC_V1), b"prof"), no_key);
        assert_eq!(keyring.open(&unhex(ENC_V1), b""), no_key);
        assert_eq!(keyring.open(&unhex(ENC_V0), b"prod"), no_key);
        assert_eq!(ring(&[key(16, 1)]).open(&unhex(ENC_V1), b"prod"), no_key);
        let mut flipped = unhex(ENC_V1);
        flipped[40] ^= 1;
        assert_eq!(keyring.open(&flipped, b"prod"), no_key);
        // Any key of the ring opens, wherever it sits.
        assert_eq!(ring(&[key(32, 1), go_key()]).open(&unhex(ENC_V1), b"prod"), Ok(unhex(PING)));
    }

    #[test]
    fn short_and_unknown_versions_are_refused() {
        let keyring = ring(&[go_key()]);
        let v1 = unhex(ENC_V1);
        let v0 = unhex(ENC_V0);
        let short = Err(WireError::Decrypt("payload too small to decrypt"));
        assert_eq!(keyring.open(&v1[..28], b"prod"), short);
        assert_eq!(keyring.open(&v0[..44], b""), short);
        assert_eq!(keyring.open(&[], b""), Err(WireError::Decrypt("empty payload")));
        let mut v2 = v1.clone();
        v2[0] = 2;
        let unsupported = Err(WireError::Decrypt("unsupported encryption version"));
        assert_eq!(keyring.open(&v2, b"prod"), unsupported);
        // Truncated by one byte: the tag moves, nothing opens.
        assert!(keyring.open(&v1[..v1.len() - 1], b"prod").is_err());
        // Exactly the minimum: an empty plaintext.
        let empty = seal(&keyring, EncryptionVersion::Unpadded, b"", b"");
        assert_eq!((empty.len(), keyring.open(&empty, b"")), (29, Ok(Vec::new())));
        let empty = seal(&keyring, EncryptionVersion::Padded, b"", b"");
        assert_eq!((empty.len(), keyring.open(&empty, b"")), (45, Ok(Vec::new())));
    }

    #[test]
    fn bad_padding_is_refused() {
        let keyring = ring(&[go_key()]);
        // Version 0 framing around a plaintext whose last byte is not a valid pad count.
        for last in [0u8, 17, 200] {
            let mut plain = vec![1u8; 15];
            plain.push(last);
            let mut sealed = seal(&keyring, EncryptionVersion::Unpadded, &plain, b"");
            sealed[0] = 0;
            assert_eq!(keyring.open(&sealed, b""), Err(WireError::Decrypt("bad padding")));
        }
    }

    #[test]
    fn every_key_size_and_version_round_trips() {
        for len in [16, 24, 32] {
            for version in [EncryptionVersion::Padded, EncryptionVersion::Unpadded] {
                let keyring = ring(&[key(len, 3)]);
                for plain_len in [0, 1, 15, 16, 17, 69, 1400] {
                    let plain = vec![0xa5; plain_len];
                    let sealed = seal(&keyring, version, &plain, b"aad");
                    assert_eq!(sealed.len(), version.sealed_len(plain_len));
                    assert_eq!(sealed[0], version as u8);
                    assert!(sealed.len() - plain_len <= version.overhead());
                    assert_eq!(keyring.open(&sealed, b"aad"), Ok(plain));
                }
            }
        }
    }

    #[test]
    fn nonces_do_not_repeat() {
        // Same seed, same plaintext: successive seals still differ (the nonce stream moves on),
        // and a clone of the handle continues the same stream rather than restarting it.
        let keyring = ring(&[go_key()]);
        let clone = keyring.clone();
        let a = seal(&keyring, EncryptionVersion::Unpadded, b"x", b"");
        let b = seal(&clone, EncryptionVersion::Unpadded, b"x", b"");
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
    }

    #[test]
    fn version_follows_protocol_version() {
        assert_eq!(EncryptionVersion::for_protocol(1), EncryptionVersion::Padded);
        for pv in 2..=5 {
            assert_eq!(EncryptionVersion::for_protocol(pv), EncryptionVersion::Unpadded);
        }
        assert_eq!(EncryptionVersion::Unpadded.overhead(), 29);
        assert_eq!(EncryptionVersion::Padded.overhead(), 45);
    }

    #[test]
    fn keys_are_validated() {
        for len in [0, 8, 15, 17, 31, 33, 64] {
            assert_eq!(SecretKey::new(vec![0; len]), Err(KeyringError::InvalidKeyLength(len)));
        }
        assert_eq!(format!("{:?}", key(24, 9)), "SecretKey(AES-192)");
        assert_eq!(Keyring::new(&[], [0; 32]).err(), Some(KeyringError::NoKeys));
        let many: Vec<SecretKey> =
            (0..=MAX_KEYS).map(|i| SecretKey::new(vec![i as u8; 16]).unwrap()).collect();
        let limit = Some(KeyringError::TooManyKeys { limit: MAX_KEYS });
        assert_eq!(Keyring::new(&many, [0; 32]).err(), limit);
        let full = ring(&many[..MAX_KEYS]);
        assert_eq!(full.add_key(many[MAX_KEYS].clone()).err(), limit);
        assert_eq!(full.add_key(many[0].clone()), Ok(()), "an installed key is a no-op");
    }

    #[test]
    fn rotation_as_memberlist() {
        let (a, b, c) = (key(16, 1), key(24, 2), key(32, 3));
        let keyring = ring(&[a.clone(), b.clone(), a.clone()]);
        assert_eq!(keyring.keys(), [a.clone(), b.clone()], "duplicates dropped");
        keyring.add_key(c.clone()).unwrap();
        assert_eq!(keyring.primary_key(), a);
        assert_eq!(keyring.use_key(&key(16, 9)), Err(KeyringError::UnknownKey));
        keyring.use_key(&c).unwrap();
        assert_eq!(keyring.keys(), [c.clone(), a.clone(), b.clone()]);
        assert_eq!(keyring.remove_key(&c), Err(KeyringError::RemovePrimary));
        keyring.remove_key(&a).unwrap();
        keyring.remove_key(&a).unwrap();
        assert_eq!(keyring.keys(), [c.clone(), b]);

        // The new primary seals; a ring holding only the old key cannot open it.
        let sealed = seal(&keyring, EncryptionVersion::Unpadded, b"rotated", b"");
        assert!(ring(&[a]).open(&sealed, b"").is_err());
        assert_eq!(ring(&[c]).open(&sealed, b""), Ok(b"rotated".to_vec()));
    }

    #[test]
    fn packets_seal_and_verify() {
        let ping = unhex(PING);
        let codec = encrypted(&[go_key()], "prod", EncryptionVersion::Unpadded);
        let mut packet = Vec::new();
        codec.seal_packet(&ping, true, &mut packet);
        assert_eq!(hex::encode(&packet[..6]), LABEL_PROD);
        assert_eq!(packet.len(), 6 + 29 + 5 + ping.len(), "label, encryption, CRC, ping");
        assert_eq!(decode(&codec, &packet), Ok(vec![ping.clone()]));
        assert_eq!(codec.encryption_overhead(), 29);
        assert_eq!(codec.sealing_overhead(), 29);

        // Wrong key, or no key on the other side: dropped, with a decrypt error.
        let other = encrypted(&[key(16, 1)], "prod", EncryptionVersion::Unpadded);
        assert!(matches!(decode(&other, &packet), Err(WireError::Decrypt(_))));
        let mut plain = Vec::new();
        Codec { label: b"prod".to_vec(), ..Codec::default() }.seal_packet(&ping, false, &mut plain);
        assert!(matches!(decode(&codec, &plain), Err(WireError::Decrypt(_))));
        // A label mismatch is still found first.
        let mut relabelled = packet.clone();
        relabelled[5] = b'f';
        assert_eq!(decode(&codec, &relabelled), Err(WireError::LabelMismatch));

        // Rolling a key in: not verifying incoming reads plain packets too, and sealed ones
        // still open; not verifying outgoing sends plain.
        let lenient = Codec { gossip_verify_incoming: false, ..codec.clone() };
        assert_eq!(decode(&lenient, &plain), Ok(vec![ping.clone()]));
        assert_eq!(decode(&lenient, &packet), Ok(vec![ping.clone()]));
        let quiet = Codec { gossip_verify_outgoing: false, ..codec.clone() };
        let mut sent = Vec::new();
        quiet.seal_packet(&ping, false, &mut sent);
        assert_eq!(sent, plain);
        assert_eq!((quiet.encryption_overhead(), quiet.sealing_overhead()), (29, 0));
    }

    #[test]
    fn streams_seal_and_verify() {
        let ping = unhex(PING);
        let codec = encrypted(&[go_key()], "prod", EncryptionVersion::Padded);
        let mut stream = Vec::new();
        codec.seal_stream(&ping, true, &mut stream);
        stream.extend_from_slice(b"trailing");
        let body = &stream[6..];
        assert_eq!(body[0], MessageType::Encrypt as u8);
        let sealed_len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let frame_len = 6 + 5 + sealed_len;
        // Every prefix is incomplete, never asking for more than the frame.
        for cut in 0..frame_len {
            match codec.stream_frame(&stream[..cut], true) {
                Ok(StreamFrame::Incomplete { at_least }) => assert!(at_least <= frame_len),
                other => panic!("prefix {cut}: {other:?}"),
            }
        }
        assert_eq!(codec.stream_frame(&stream, true), Ok(StreamFrame::Complete { len: frame_len }));
        let frame = &stream[..frame_len];
        let got = codec.decode_stream(frame, true, |m| matches!(m, StreamMessage::Ping(_)));
        assert_eq!(got, Ok(true));

        // The label is part of the AAD: the same bytes under another label (of equal length,
        // so framing passes) do not open. Nor does another key.
        let prof = encrypted(&[go_key()], "prof", EncryptionVersion::Padded);
        let mut moved = frame.to_vec();
        moved[5] = b'f';
        assert!(matches!(prof.decode_stream(&moved, true, |_| ()), Err(WireError::Decrypt(_))));
        let other = encrypted(&[key(32, 1)], "prod", EncryptionVersion::Padded);
        assert!(matches!(other.decode_stream(frame, true, |_| ()), Err(WireError::Decrypt(_))));
        // The length is part of the AAD too.
        let mut longer = frame.to_vec();
        longer[10] += 1;
        longer.push(0);
        assert!(matches!(codec.decode_stream(&longer, true, |_| ()), Err(WireError::Decrypt(_))));

        // No keyring: refused while framing, before the body is buffered.
        let keyless = Codec { label: b"prod".to_vec(), ..Codec::default() };
        assert_eq!(keyless.stream_frame(frame, true), Err(WireError::EncryptionNotConfigured));
        assert_eq!(
            keyless.decode_stream(frame, true, |_| ()),
            Err(WireError::EncryptionNotConfigured)
        );
        // A plain stream where encryption is verified: refused; accepted when not verified.
        let mut plain = Vec::new();
        keyless.seal_stream(&ping, true, &mut plain);
        let refused = Err(WireError::Decrypt("remote state is not encrypted"));
        assert_eq!(codec.decode_stream(&plain, true, |_| ()), refused);
        let lenient = Codec { gossip_verify_incoming: false, ..codec.clone() };
        assert_eq!(lenient.decode_stream(&plain, true, |_| ()), Ok(()));
        assert_eq!(lenient.decode_stream(frame, true, |_| ()), Ok(()));
        // Replies carry no label, and are sealed with the label in the AAD all the same.
        let mut reply = Vec::new();
        codec.seal_stream(&ping, false, &mut reply);
        assert_eq!(codec.decode_stream(&reply, false, |_| ()), Ok(()));
    }

    #[test]
    fn oversized_encrypted_frames_are_refused_at_the_header() {
        let codec = Codec {
            max_stream_len: 1000,
            ..encrypted(&[go_key()], "", EncryptionVersion::Unpadded)
        };
        let header = [MessageType::Encrypt as u8, 0, 0, 4, 0];
        assert!(matches!(codec.stream_frame(&header, true), Err(WireError::TooLarge { .. })));
        let header = [MessageType::Encrypt as u8, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(codec.stream_frame(&header, true), Err(WireError::TooLarge { .. })));
    }

    fn versions() -> impl Strategy<Value = EncryptionVersion> {
        prop_oneof![Just(EncryptionVersion::Padded), Just(EncryptionVersion::Unpadded)]
    }

    proptest! {
        #[test]
        fn encrypted_packets_round_trip(
            message in arb_message(),
            key_len in prop_oneof![Just(16usize), Just(24), Just(32)],
            version in versions(),
            label in prop_oneof![Just(""), Just("prod")],
            crc in any::<bool>(),
            compress in any::<bool>(),
        ) {
            let codec = Codec { compress, ..encrypted(&[key(key_len, 5)], label, version) };
            let mut payload = Vec::new();
            message.encode(IntEncoding::Signed, &mut payload);
            let mut packet = Vec::new();
            codec.seal_packet(&payload, crc, &mut packet);
            prop_assert_eq!(decode(&codec, &packet), Ok(vec![payload.clone()]));
            let mut stream = Vec::new();
            let user = StreamMessage::User(&payload);
            let mut plain = Vec::new();
            user.encode(IntEncoding::Signed, &mut plain);
            codec.seal_stream(&plain, true, &mut stream);
            prop_assert_eq!(
                codec.stream_frame(&stream, true),
                Ok(StreamFrame::Complete { len: stream.len() })
            );
            let got = codec.decode_stream(&stream, true, |m| match m {
                StreamMessage::User(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            });
            prop_assert_eq!(got, Ok(payload));
        }

        #[test]
        fn arbitrary_sealed_bytes_never_panic(
            bytes in vec(any::<u8>(), 0..200),
            version in 0u8..=2,
        ) {
            let codec = encrypted(&[go_key(), key(32, 1)], "", EncryptionVersion::Unpadded);
            let mut sealed = bytes.clone();
            sealed.insert(0, version);
            prop_assert!(decode(&codec, &sealed).is_err());
            let mut stream = vec![MessageType::Encrypt as u8];
            stream.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
            stream.extend_from_slice(&sealed);
            let _ = codec.stream_frame(&stream, true);
            prop_assert!(codec.decode_stream(&stream, true, |_| ()).is_err());
        }
    }

    #[test]
    fn messages_inside_are_still_visited_one_by_one() {
        // A sealed compound delivers every part, as a plain one does.
        let ping = unhex(PING);
        let mut compound = Vec::new();
        crate::core::wire::encode_compound(&[&ping, &ping], &mut compound).unwrap();
        let codec = encrypted(&[go_key()], "", EncryptionVersion::Unpadded);
        let mut packet = Vec::new();
        codec.seal_packet(&compound, false, &mut packet);
        let mut pings = 0;
        codec
            .decode_packet(&packet, &mut |m| pings += usize::from(matches!(m, Message::Ping(_))))
            .unwrap();
        assert_eq!(pings, 2);
    }
}
