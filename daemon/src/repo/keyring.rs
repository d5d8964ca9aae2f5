//! The key ring of key file version 2: data-key versions with their creation time and retired
//! state, and the generation that orders rewrites of the key files (docs/FORMAT.md, "Key files").
//!
//! A v2 key file holds two sealed parts: `wrapped`, the repository's wrap key under the
//! passphrase's Argon2id key, and `keys`, this ring under the wrap key. The wrap key is derived
//! from the never-changing `id_key`, so whoever opened any key file (v1 or v2) can read every v2
//! file's ring without its passphrase: a rotation rewrites every key file (each keeps its
//! `wrapped` part) and an open picks the newest generation whichever passphrase was used.
//!
//! Blocking (disk reads); nothing here derives a passphrase key.

use super::backend::{Backend, FileKind, Key};
use super::crypto::{MasterKeys, SealFormat};
use super::keyfile::{KeyFile, KeyFileError};
use super::{read_named, RepoError, Result, KEY_HINT};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const WRAP_LABEL: &[u8] = b"backupd key file wrap v2";
/// Binds a sealed ring to its role, so no other object sealed under the wrap key passes as one.
const RING_AAD: &[u8] = b"backupd key ring v2";
/// Bound for decoding a ring (a few thousand versions would still fit).
const RING_LIMIT: usize = 64 * 1024;

/// One data-key version. `key` is `None` once the version is retired: its material destroyed.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    pub version: u32,
    /// Nanoseconds since the epoch.
    pub created_ns: i64,
    pub key: Option<[u8; 32]>,
}

/// What a v2 key file wraps: the master keys with per-version metadata and a generation.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeyRing {
    /// Raised by every rewrite of the key files; an open uses the highest one it can read.
    pub generation: u64,
    pub versions: Vec<DataKey>,
    pub current: u32,
    pub id_key: [u8; 32],
    pub chunker_seed: u64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("generation", &self.generation)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The ring a v1 key file stands for: generation 0, every version created `created_ns` (a
    /// v1 file does not say when; the repository's creation is the best bound we have).
    pub fn from_v1(keys: &MasterKeys, created_ns: i64) -> Self {
        Self {
            generation: 0,
            versions: keys
                .data_keys
                .iter()
                .map(|(version, key)| DataKey {
                    version: *version,
                    created_ns,
                    key: Some(*key),
                })
                .collect(),
            current: keys.current,
            id_key: keys.id_key,
            chunker_seed: keys.chunker_seed,
        }
    }

    /// The keys sealing and opening objects use: the versions not retired.
    pub fn master_keys(&self) -> MasterKeys {
        MasterKeys {
            data_keys: self
                .versions
                .iter()
                .filter_map(|v| v.key.map(|k| (v.version, k)))
                .collect(),
            current: self.current,
            id_key: self.id_key,
            chunker_seed: self.chunker_seed,
            // The repository's config decides; `Repository::open` sets it.
            seal_format: SealFormat::default(),
        }
    }

    /// A new data-key version, made current, in the next generation.
    pub fn rotated(&self, now_ns: i64) -> Self {
        let mut next = self.clone();
        let version = self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        next.versions.push(DataKey {
            version,
            created_ns: now_ns,
            key: Some(rand::random()),
        });
        next.current = version;
        next.generation = self.generation + 1;
        next
    }

    /// The same ring with the key material of `versions` destroyed (never the current one),
    /// in the next generation.
    pub fn retired(&self, versions: &[u32]) -> Self {
        let mut next = self.clone();
        for v in &mut next.versions {
            if v.version != self.current && versions.contains(&v.version) {
                if let Some(key) = v.key.as_mut() {
                    key.zeroize();
                }
                v.key = None;
            }
        }
        next.generation = self.generation + 1;
        next
    }

    /// The current version's entry.
    pub fn current_key(&self) -> Option<&DataKey> {
        self.versions.iter().find(|v| v.version == self.current)
    }

    /// The key that seals rings in v2 key files.
    pub fn wrap_key(&self) -> Zeroizing<[u8; 32]> {
        wrap_key(&self.id_key)
    }

    /// `nonce[12] || AES-256-GCM(bincode(ring))` under the wrap key.
    pub fn seal(&self) -> std::result::Result<Vec<u8>, KeyFileError> {
        let plain = Zeroizing::new(
            bincode::serde::encode_to_vec(self, bincode::config::standard())
                .map_err(|e| KeyFileError::Parse(e.to_string()))?,
        );
        seal_with(&self.wrap_key(), &plain, RING_AAD)
    }

    /// Opens a sealed ring; `WrongPassword` when `wrap` is not the key it was sealed under.
    pub fn open(wrap: &[u8; 32], sealed: &[u8]) -> std::result::Result<Self, KeyFileError> {
        let plain = open_with(wrap, sealed, RING_AAD)?;
        let (ring, _): (KeyRing, usize) = bincode::serde::decode_from_slice(
            &plain,
            bincode::config::standard().with_limit::<RING_LIMIT>(),
        )
        .map_err(|e| KeyFileError::Parse(e.to_string()))?;
        if ring.current_key().and_then(|k| k.key).is_none() {
            return Err(KeyFileError::Parse(format!(
                "the current data-key version {} has no key material",
                ring.current
            )));
        }
        Ok(ring)
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time (a repository's `created`); 0 when it does
/// not parse, which makes a v1 version look as old as can be: the safe side for a key-age check.
pub fn rfc3339_ns(text: &str) -> i64 {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `HMAC-SHA256(id_key, "backupd key file wrap v2")`.
pub fn wrap_key(id_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(id_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(WRAP_LABEL);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

pub(super) fn seal_with(
    key: &[u8; 32],
    plain: &[u8],
    aad: &[u8],
) -> std::result::Result<Vec<u8>, KeyFileError> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce: [u8; 12] = rand::random();
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| KeyFileError::Kdf("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(super) fn open_with(
    key: &[u8; 32],
    sealed: &[u8],
    aad: &[u8],
) -> std::result::Result<Zeroizing<Vec<u8>>, KeyFileError> {
    if sealed.len() < 12 + 16 {
        return Err(KeyFileError::Parse("wrapped key too short".into()));
    }
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyFileError::WrongPassword)
}

/// One key file as the ring loader saw it.
#[derive(Debug)]
pub struct KeyFileEntry {
    pub name: String,
    pub file: KeyFile,
    /// The generation of its ring (v2 files whose ring the wrap key opens); `None` for v1.
    pub generation: Option<u64>,
}

/// Every key file and the newest ring among them.
#[derive(Debug)]
pub struct Loaded {
    pub ring: KeyRing,
    pub files: Vec<KeyFileEntry>,
}

/// Reads every key file and picks the newest ring: the highest generation among the v2 files
/// the wrap key of `keys` opens, ties broken by the lowest file name (one rewrite writes the
/// same ring into each file, so a tie never means different keys). Without any v2 file the
/// ring is `keys` as a v1 file holds them, dated `created_ns`.
pub fn load(backend: &dyn Backend, keys: &MasterKeys, created_ns: i64) -> Result<Loaded> {
    let wrap = wrap_key(&keys.id_key);
    let mut names = backend.list(FileKind::Key)?;
    names.sort();
    let mut best: Option<KeyRing> = None;
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let bytes = read_named(
            backend,
            Key::new(FileKind::Key, &name),
            "key file",
            KEY_HINT,
        )?;
        let file = KeyFile::parse(&bytes).map_err(|source| RepoError::KeyFile {
            location: backend.location().clone(),
            name: name.clone(),
            source,
        })?;
        let mut generation = None;
        if let Some(ring) = file.ring(&wrap) {
            let ring = ring.map_err(|source| RepoError::KeyFile {
                location: backend.location().clone(),
                name: name.clone(),
                source,
            });
            match ring {
                Ok(ring) => {
                    generation = Some(ring.generation);
                    if best.as_ref().is_none_or(|b| ring.generation > b.generation) {
                        best = Some(ring);
                    }
                }
                // Another repository's key file copied in: it names no generation of ours.
                Err(e) => tracing::warn!(error = %e, "key file not sealed for this repository"),
            }
        }
        files.push(KeyFileEntry {
            name,
            file,
            generation,
        });
    }
    let ring = best.unwrap_or_else(|| KeyRing::from_v1(keys, created_ns));
    Ok(Loaded { ring, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_adds_a_current_version_and_keeps_the_old_ones() {
        let keys = MasterKeys::generate();
        let ring = KeyRing::from_v1(&keys, 5);
        let next = ring.rotated(10);
        assert_eq!((next.generation, next.current), (1, 2));
        let mk = next.master_keys();
        assert_eq!(mk.data_keys.len(), 2);
        let old = keys.seal(b"old");
        assert_eq!(mk.open(&old).expect("old version opens"), b"old");
        assert_eq!(mk.open(&mk.seal(b"new")).expect("new"), b"new");
        assert_eq!(next.current_key().map(|k| k.created_ns), Some(10));
        assert_eq!(next.wrap_key().as_ref(), ring.wrap_key().as_ref());
    }

    #[test]
    fn a_ring_opens_only_under_its_wrap_key_and_tampering_is_detected() {
        let ring = KeyRing::from_v1(&MasterKeys::generate(), 1).rotated(2);
        let sealed = ring.seal().expect("seal");
        let back = KeyRing::open(&ring.wrap_key(), &sealed).expect("open");
        assert_eq!(back.generation, 1);
        let other = KeyRing::from_v1(&MasterKeys::generate(), 1);
        assert!(matches!(
            KeyRing::open(&other.wrap_key(), &sealed),
            Err(KeyFileError::WrongPassword)
        ));
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(KeyRing::open(&ring.wrap_key(), &bad).is_err());
    }
}
