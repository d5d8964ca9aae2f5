//! Keys and authenticated encryption of everything stored in a repository except its `config`.
//!
//! Sealed object layout (see docs/FORMAT.md):
//! `version u8 = 1 | key_version u32 LE | salt [16] | nonce [12] | AES-256-GCM(ciphertext+tag)`.
//! Each object is encrypted under its own subkey `HMAC-SHA256(data_key[key_version], "backupd
//! blob subkey v1" || salt)` with a random 128-bit salt and a random 96-bit nonce, so no
//! (key, nonce) pair repeats even after billions of objects: a repeat needs a 128-bit salt
//! collision *and* a 96-bit nonce collision.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use backupd_common::ids::BlobId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

const SEAL_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
const SUBKEY_LABEL: &[u8] = b"backupd blob subkey v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("object too short to be sealed ({0} bytes)")]
    TooShort(usize),
    #[error("unknown seal version {0}")]
    UnknownVersion(u8),
    #[error("data key version {0} is not in this repository's key set")]
    UnknownKey(u32),
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
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl MasterKeys {
    pub fn generate() -> Self {
        Self {
            data_keys: vec![(1, rand::random())],
            current: 1,
            id_key: rand::random(),
            chunker_seed: rand::random(),
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

    fn cipher(&self, key_version: u32, salt: &[u8]) -> Result<Aes256Gcm, CryptoError> {
        let (_, key) = self
            .data_keys
            .iter()
            .find(|(v, _)| *v == key_version)
            .ok_or(CryptoError::UnknownKey(key_version))?;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(SUBKEY_LABEL);
        mac.update(salt);
        let mut subkey: [u8; 32] = mac.finalize().into_bytes().into();
        let cipher = Aes256Gcm::new(&subkey.into());
        subkey.zeroize();
        Ok(cipher)
    }

    /// Encrypts and authenticates `plaintext` under the current data key.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal_parts(&[plaintext])
    }

    /// Seals the concatenation of `parts` with a single allocation and copy (blobs are a codec
    /// byte followed by up to 8 MiB of payload; avoiding the intermediate copies keeps the
    /// pipeline's memory down).
    pub fn seal_parts(&self, parts: &[&[u8]]) -> Vec<u8> {
        use aes_gcm::aead::AeadInPlace;
        let salt: [u8; SALT_LEN] = rand::random();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let cipher = self
            .cipher(self.current, &salt)
            .unwrap_or_else(|_| unreachable!("the current key is always in the key set"));
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + SEAL_OVERHEAD);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&self.current.to_le_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        for part in parts {
            out.extend_from_slice(part);
        }
        // aes-gcm only fails for plaintexts over 64 GiB; our objects are far smaller.
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], &mut out[HEADER_LEN..])
            .unwrap_or_else(|_| unreachable!("plaintext below the AES-GCM size limit"));
        out.extend_from_slice(&tag);
        out
    }

    /// The data-key version that sealed `sealed`, without opening it (`repo key list` counts
    /// packs per version from their headers).
    pub fn key_version_of(&self, sealed: &[u8]) -> Result<u32, CryptoError> {
        match sealed {
            [SEAL_VERSION, a, b, c, d, ..] if sealed.len() >= SEAL_OVERHEAD => {
                Ok(u32::from_le_bytes([*a, *b, *c, *d]))
            }
            [v, ..] if *v != SEAL_VERSION => Err(CryptoError::UnknownVersion(*v)),
            _ => Err(CryptoError::TooShort(sealed.len())),
        }
    }

    /// Verifies and decrypts a sealed object.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        if sealed[0] != SEAL_VERSION {
            return Err(CryptoError::UnknownVersion(sealed[0]));
        }
        let key_version = u32::from_le_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let salt = &sealed[5..5 + SALT_LEN];
        let nonce = &sealed[5 + SALT_LEN..HEADER_LEN];
        let cipher = self.cipher(key_version, salt)?;
        cipher
            .decrypt(Nonce::from_slice(nonce), &sealed[HEADER_LEN..])
            .map_err(|_| CryptoError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let keys = MasterKeys::generate();
        let sealed = keys.seal(b"secret data");
        assert_eq!(sealed.len(), 11 + SEAL_OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(keys.open(&sealed).expect("open"), b"secret data");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(keys.open(&bad).is_err(), "flip at byte {i} undetected");
        }
        let other = MasterKeys::generate();
        assert_eq!(other.open(&sealed), Err(CryptoError::Authentication));
    }

    #[test]
    fn same_plaintext_seals_differently_but_has_one_id() {
        let keys = MasterKeys::generate();
        assert_ne!(keys.seal(b"x"), keys.seal(b"x"));
        assert_eq!(keys.blob_id(b"x"), keys.blob_id(b"x"));
        assert_ne!(keys.blob_id(b"x"), MasterKeys::generate().blob_id(b"x"));
    }

    #[test]
    fn old_key_versions_still_open() {
        let mut keys = MasterKeys::generate();
        let old = keys.seal(b"v1");
        keys.data_keys.push((2, rand::random()));
        keys.current = 2;
        let new = keys.seal(b"v2");
        assert_eq!(new[1..5], 2u32.to_le_bytes());
        assert_eq!(keys.open(&old).expect("old"), b"v1");
        assert_eq!(keys.open(&new).expect("new"), b"v2");
    }
}
