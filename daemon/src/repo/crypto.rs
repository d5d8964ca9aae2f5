//! Keys and authenticated encryption of everything stored in a repository except its `config`.
//!
//! Two seal layouts exist (docs/FORMAT.md, "Sealed objects"); which one a repository writes and
//! reads follows its format version ([`SealFormat`]):
//!
//! - v1: `version u8 = 1 | key_version u32 LE | salt [16] | nonce [12] | AES-256-GCM(ct+tag)`,
//!   subkey label `"backupd blob subkey v1"`.
//! - v2: `salt [16] | key_tag [5] | nonce [12] | AES-256-GCM(ct+tag)`, subkey label
//!   `"backupd blob subkey v2"`. Nothing in it is constant or structured: the key tag is
//!   `HMAC-SHA256(data_key[v], "backupd key tag v2" || salt)[..5]`, random-looking because the
//!   salt is, so a pack no longer shows where its blobs begin (v1's `01 01 00 00` did). A reader
//!   finds the key version by computing the tag of each version it holds (one short HMAC each)
//!   instead of trial-decrypting the object; on a 2^-40 tag collision GCM fails and the next
//!   match is tried.
//!
//! Both layouts add [`SEAL_OVERHEAD`] bytes, so a pack's size follows from its entries alone
//! whatever its format. Each object is encrypted under its own subkey
//! `HMAC-SHA256(data_key[v], label || salt)` with a random 128-bit salt and a random 96-bit
//! nonce, so no (key, nonce) pair repeats even after billions of objects. The format version in
//! the label means a v1 object never opens as v2 (or the other way round).

use backupd_common::ids::BlobId;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// Results of this module.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

const SEAL_VERSION_V1: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
/// v1: version byte and key version.
const V1_PREFIX: usize = 1 + 4;
/// v2: the key tag's length. Five bytes keep the overhead equal to v1's (so sizes computed
/// from pack entries hold for both) and make a wrong-version match a 2^-40 event.
const KEY_TAG_LEN: usize = 5;
const HEADER_LEN: usize = V1_PREFIX + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext (both formats).
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
const SUBKEY_LABEL_V1: &[u8] = b"backupd blob subkey v1";
const SUBKEY_LABEL_V2: &[u8] = b"backupd blob subkey v2";
const KEY_TAG_LABEL: &[u8] = b"backupd key tag v2";

// The v2 header must be exactly as long as v1's (see KEY_TAG_LEN).
const _: () = assert!(SALT_LEN + KEY_TAG_LEN + NONCE_LEN == HEADER_LEN);

/// Which seal layout a repository uses; it follows the repository's format version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SealFormat {
    /// Format 1: key version in plaintext at the start of every object.
    V1,
    /// Format 2: no plaintext structure (the default for new keys and repositories).
    #[default]
    V2,
    /// A format 1 repository being migrated to format 2 (`repo migrate --to 2`): seals v2,
    /// opens both (an object whose v2 key tag matches no held key is read as v1).
    Migrating,
}

impl SealFormat {
    /// The seal layout of repository format `version`, if this build knows it.
    pub fn of_repository_version(version: u32) -> Option<Self> {
        match version {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("object too short to be sealed ({0} bytes)")]
    TooShort(usize),
    #[error("unknown seal version {0}")]
    UnknownVersion(u8),
    #[error("data key version {0} is not in this repository's key set")]
    UnknownKey(u32),
    #[error(
        "no data key of this repository matches the object's key tag: the object is damaged, \
         belongs to another repository, or was sealed with a key version since destroyed"
    )]
    NoMatchingKey,
    #[error("authentication failed: the object is damaged or was not written with this key")]
    Authentication,
}

/// The repository's secrets. Never leaves the process except wrapped in a key file.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct MasterKeys {
    /// Data keys by version; new objects use `current`.
    pub data_keys: Vec<(u32, [u8; 32])>,
    pub current: u32,
    /// Key of the HMAC that names blobs.
    pub id_key: [u8; 32],
    /// Seed of the content-defined chunker's gear table, so chunk boundaries leak nothing.
    pub chunker_seed: u64,
    /// The seal layout: a property of the repository, not of the key file (which is the same
    /// in both formats), so it is not stored; the repository sets it when it opens.
    #[serde(skip)]
    #[zeroize(skip)]
    pub seal_format: SealFormat,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &self.current)
            .field("seal_format", &self.seal_format)
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8; 32], label: &[u8], salt: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label);
    mac.update(salt);
    mac.finalize().into_bytes().into()
}

fn key_tag(key: &[u8; 32], salt: &[u8]) -> [u8; KEY_TAG_LEN] {
    let mut full = hmac(key, KEY_TAG_LABEL, salt);
    let mut tag = [0u8; KEY_TAG_LEN];
    tag.copy_from_slice(&full[..KEY_TAG_LEN]);
    full.zeroize();
    tag
}

/// An object's AES-256-GCM key: its subkey of `key` for `label` and `salt`. ring's, not the
/// aes-gcm crate's, for speed: every byte backed up, restored or checked passes through it.
fn cipher_of(key: &[u8; 32], label: &[u8], salt: &[u8]) -> LessSafeKey {
    let mut subkey = hmac(key, label, salt);
    let cipher = UnboundKey::new(&AES_256_GCM, &subkey)
        .unwrap_or_else(|_| unreachable!("an AES-256 key is 32 bytes"));
    subkey.zeroize();
    LessSafeKey::new(cipher)
}

/// Opens `sealed` (header, ciphertext, tag) with `cipher`.
fn decrypt(cipher: &LessSafeKey, sealed: &[u8]) -> Result<Vec<u8>> {
    let nonce = Nonce::try_assume_unique_for_key(&sealed[HEADER_LEN - NONCE_LEN..HEADER_LEN])
        .map_err(|_| CryptoError::TooShort(sealed.len()))?;
    let mut buf = sealed[HEADER_LEN..].to_vec();
    let plain_len = cipher
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| CryptoError::Authentication)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

impl MasterKeys {
    /// Fresh keys (data key version 1) that seal in the newest format.
    pub fn generate() -> Self {
        Self {
            data_keys: vec![(1, rand::random())],
            current: 1,
            id_key: rand::random(),
            chunker_seed: rand::random(),
            seal_format: SealFormat::default(),
        }
    }

    /// The keyed id of a blob's plaintext.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        // HMAC accepts keys of any length; 32 bytes can't fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.id_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        BlobId(mac.finalize().into_bytes().into())
    }

    fn data_key(&self, key_version: u32) -> Result<&[u8; 32]> {
        self.data_keys
            .iter()
            .find(|(v, _)| *v == key_version)
            .map(|(_, k)| k)
            .ok_or(CryptoError::UnknownKey(key_version))
    }

    /// Encrypts and authenticates `plaintext` under the current data key.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal_parts(&[plaintext])
    }

    /// Seals the concatenation of `parts` with a single allocation and copy (blobs are a codec
    /// byte followed by up to 8 MiB of payload; avoiding the intermediate copies keeps the
    /// pipeline's memory down).
    pub fn seal_parts(&self, parts: &[&[u8]]) -> Vec<u8> {
        let salt: [u8; SALT_LEN] = rand::random();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let key = self
            .data_key(self.current)
            .unwrap_or_else(|_| unreachable!("the current key is always in the key set"));
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + SEAL_OVERHEAD);
        let cipher = match self.seal_format {
            SealFormat::V1 => {
                out.push(SEAL_VERSION_V1);
                out.extend_from_slice(&self.current.to_le_bytes());
                out.extend_from_slice(&salt);
                cipher_of(key, SUBKEY_LABEL_V1, &salt)
            }
            SealFormat::V2 | SealFormat::Migrating => {
                out.extend_from_slice(&salt);
                out.extend_from_slice(&key_tag(key, &salt));
                cipher_of(key, SUBKEY_LABEL_V2, &salt)
            }
        };
        out.extend_from_slice(&nonce);
        for part in parts {
            out.extend_from_slice(part);
        }
        // GCM only fails for plaintexts over 64 GiB; our objects are far smaller.
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut out[HEADER_LEN..],
            )
            .unwrap_or_else(|_| unreachable!("plaintext below the AES-GCM size limit"));
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verifies and decrypts a sealed object of this repository's seal format.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        match self.layout_of(sealed) {
            SealFormat::V1 => self.open_v1(sealed),
            _ => self.open_v2(sealed),
        }
    }

    /// The layout `sealed` is in: the repository's, or during a migration v2 when a held key's
    /// tag matches and v1 otherwise.
    pub fn layout_of(&self, sealed: &[u8]) -> SealFormat {
        match self.seal_format {
            SealFormat::Migrating if sealed.len() < SEAL_OVERHEAD => SealFormat::V1,
            SealFormat::Migrating if self.v2_candidates(sealed).next().is_some() => SealFormat::V2,
            SealFormat::Migrating => SealFormat::V1,
            format => format,
        }
    }

    fn open_v1(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let key_version = v1_key_version(sealed)?;
        let salt = &sealed[V1_PREFIX..V1_PREFIX + SALT_LEN];
        decrypt(
            &cipher_of(self.data_key(key_version)?, SUBKEY_LABEL_V1, salt),
            sealed,
        )
    }

    fn open_v2(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let salt = &sealed[..SALT_LEN];
        let mut result = Err(CryptoError::NoMatchingKey);
        for (_, key) in self.v2_candidates(sealed) {
            result = decrypt(&cipher_of(key, SUBKEY_LABEL_V2, salt), sealed);
            if result.is_ok() {
                break;
            }
        }
        // A v1 object whose bytes happen to match a v2 key tag (2^-40) during a migration.
        if result.is_err() && self.seal_format == SealFormat::Migrating {
            return self.open_v1(sealed);
        }
        result
    }

    /// The data-key version that sealed `sealed`, found without decrypting it: read from a v1
    /// object's header (even when that version is no longer held), matched by key tag for v2
    /// (the first version whose tag matches; a version no longer held cannot be named).
    pub fn key_version_of(&self, sealed: &[u8]) -> Result<u32> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        match self.layout_of(sealed) {
            SealFormat::V1 => v1_key_version(sealed),
            _ => self
                .v2_candidates(sealed)
                .next()
                .map(|(v, _)| v)
                .ok_or(CryptoError::NoMatchingKey),
        }
    }

    /// The data keys whose v2 key tag matches the object's, newest version first (objects
    /// sealed by the current key are the common case).
    fn v2_candidates<'a>(
        &'a self,
        sealed: &'a [u8],
    ) -> impl Iterator<Item = (u32, &'a [u8; 32])> + 'a {
        let salt = &sealed[..SALT_LEN];
        let tag = &sealed[SALT_LEN..SALT_LEN + KEY_TAG_LEN];
        self.data_keys
            .iter()
            .rev()
            .filter(move |(_, key)| key_tag(key, salt) == tag)
            .map(|(v, key)| (*v, key))
    }
}

fn v1_key_version(sealed: &[u8]) -> Result<u32> {
    if sealed[0] != SEAL_VERSION_V1 {
        return Err(CryptoError::UnknownVersion(sealed[0]));
    }
    Ok(u32::from_le_bytes([
        sealed[1], sealed[2], sealed[3], sealed[4],
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(format: SealFormat) -> MasterKeys {
        let mut keys = MasterKeys::generate();
        keys.seal_format = format;
        keys
    }

    fn rotate(keys: &mut MasterKeys) {
        let next = keys.current + 1;
        keys.data_keys.push((next, rand::random()));
        keys.current = next;
    }

    #[test]
    fn seal_open_round_trip_and_tamper_detection_in_both_formats() {
        for format in [SealFormat::V1, SealFormat::V2] {
            let keys = keys_of(format);
            let sealed = keys.seal(b"secret data");
            assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
            assert!(!sealed.windows(6).any(|w| w == b"secret"));
            assert_eq!(keys.open(&sealed).expect("open"), b"secret data");
            for i in 0..sealed.len() {
                for bit in 0..8 {
                    let mut bad = sealed.clone();
                    bad[i] ^= 1 << bit;
                    assert!(
                        keys.open(&bad).is_err(),
                        "{format:?}: flip of bit {bit} at byte {i} undetected"
                    );
                }
            }
            let other = keys_of(format);
            assert!(other.open(&sealed).is_err());
            assert!(keys.open(&sealed[..SEAL_OVERHEAD - 1]).is_err());
        }
    }

    #[test]
    fn v2_objects_have_no_fixed_bytes() {
        // Regression: v1 objects all began `01 01 00 00`, marking blob boundaries in a pack.
        let keys = keys_of(SealFormat::V2);
        let a = keys.seal(b"same plaintext");
        let b = keys.seal(b"same plaintext");
        assert_eq!(a.len(), b.len());
        // Two seals share a byte position by chance 1/256 each; a fixed field would share all.
        let shared = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(shared < 8, "{shared} of {} bytes equal", a.len());
        assert_ne!(a[..4], b[..4], "two seals share a prefix");
        // No header position is constant across many seals.
        let seals: Vec<Vec<u8>> = (0..64).map(|_| keys.seal(b"x")).collect();
        for pos in 0..HEADER_LEN {
            assert!(
                seals.iter().any(|s| s[pos] != seals[0][pos]),
                "byte {pos} is the same in 64 seals"
            );
        }
    }

    #[test]
    fn same_plaintext_seals_differently_but_has_one_id() {
        let keys = MasterKeys::generate();
        assert_ne!(keys.seal(b"x"), keys.seal(b"x"));
        assert_eq!(keys.blob_id(b"x"), keys.blob_id(b"x"));
        assert_ne!(keys.blob_id(b"x"), MasterKeys::generate().blob_id(b"x"));
    }

    #[test]
    fn old_key_versions_still_open_and_are_named() {
        for format in [SealFormat::V1, SealFormat::V2] {
            let mut keys = keys_of(format);
            let old = keys.seal(b"v1");
            rotate(&mut keys);
            rotate(&mut keys);
            let new = keys.seal(b"v3");
            assert_eq!(keys.open(&old).expect("old"), b"v1", "{format:?}");
            assert_eq!(keys.open(&new).expect("new"), b"v3", "{format:?}");
            assert_eq!(keys.key_version_of(&old), Ok(1), "{format:?}");
            assert_eq!(keys.key_version_of(&new), Ok(3), "{format:?}");
        }
    }

    #[test]
    fn v2_key_version_of_a_destroyed_key_is_unknown() {
        let mut keys = keys_of(SealFormat::V2);
        let old = keys.seal(b"old");
        rotate(&mut keys);
        keys.data_keys.retain(|(v, _)| *v != 1);
        assert_eq!(keys.key_version_of(&old), Err(CryptoError::NoMatchingKey));
        assert_eq!(keys.open(&old), Err(CryptoError::NoMatchingKey));
    }

    #[test]
    fn v1_key_version_is_read_from_the_header() {
        let mut keys = keys_of(SealFormat::V1);
        rotate(&mut keys);
        let sealed = keys.seal(b"x");
        assert_eq!(sealed[..5], [1, 2, 0, 0, 0]);
        assert_eq!(keys.key_version_of(&sealed), Ok(2));
        assert_eq!(keys.key_version_of(b"short"), Err(CryptoError::TooShort(5)));
    }

    #[test]
    fn objects_do_not_open_in_the_other_format() {
        let v1 = keys_of(SealFormat::V1);
        let mut v2 = v1.clone();
        v2.seal_format = SealFormat::V2;
        let old = v1.seal(b"written by format 1");
        let new = v2.seal(b"written by format 2");
        assert!(v2.open(&old).is_err(), "a v1 object opened as v2");
        assert!(v1.open(&new).is_err(), "a v2 object opened as v1");
        // Even a v2 object whose bytes happen to look like a v1 header stays unreadable as v1:
        // the subkey label differs.
        let mut disguised = new.clone();
        disguised[..5].copy_from_slice(&[1, 1, 0, 0, 0]);
        assert_eq!(v1.open(&disguised), Err(CryptoError::Authentication));
    }

    #[test]
    fn the_key_file_does_not_carry_the_seal_format() {
        let keys = keys_of(SealFormat::V1);
        let bytes = bincode::serde::encode_to_vec(&keys, bincode::config::standard()).expect("enc");
        let (back, _): (MasterKeys, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("dec");
        assert_eq!(back.seal_format, SealFormat::default());
        assert_eq!(back.data_keys, keys.data_keys);
    }
}
