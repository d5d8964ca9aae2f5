//! Key files: the repository's [`MasterKeys`] wrapped under a key-encryption key derived from a
//! passphrase with Argon2id. Stored as JSON in `keys/<name>`; the Argon2id parameters travel in
//! the file, so they can be raised later without breaking old files.
//!
//! Version 1 wraps `bincode(MasterKeys)` directly; version 2 (written since key rotation)
//! wraps the repository's wrap key and carries the [`KeyRing`] sealed under it, so every key
//! file can be rewritten with a new ring without its passphrase (see [`super::keyring`]).

use super::crypto::MasterKeys;
use super::keyring::{self, KeyRing};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The version written; version 1 files still open.
pub const KEYFILE_VERSION: u32 = 2;
const KEYFILE_V1: u32 = 1;
/// Binds the wrapped wrap key of a v2 file to its role.
const SLOT_AAD: &[u8] = b"backupd key file slot v2";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file is not a valid key file of version 1 or {KEYFILE_VERSION}: {0}")]
    Parse(String),
    #[error("key file has version {0}; this backupd reads versions 1 and {KEYFILE_VERSION}")]
    Version(u32),
    #[error("wrong password: no key file of this repository opens with it")]
    WrongPassword,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error(
        "Argon2 parameter {param} is {value}, outside the accepted {min}..={max}; the file was \
         not written by backupd or was tampered with, so no key is derived from it"
    )]
    UnsafeParam {
        param: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

/// Bounds on the Argon2id parameters a key file may ask for. The file is not authenticated
/// before the key is derived from it, so without bounds a planted or damaged key file could
/// make opening allocate any amount of memory (an abort) or run for days (a core pinned,
/// SIGTERM waiting on it). The bounds include everything backupd writes (64 MiB, t = 3,
/// p = 1, 16-byte salt) and RFC 9106's recommendations (2 GiB, t = 1; 64 MiB, t = 3); the
/// lower ones are Argon2's own minimums, since a weak file harms only its owner.
pub mod bounds {
    /// Memory in KiB: at least 8 KiB per lane (Argon2's minimum), at most 4 GiB.
    pub const M_COST_KIB_MAX: u32 = 4 * 1024 * 1024;
    pub const T_COST: std::ops::RangeInclusive<u32> = 1..=16;
    pub const P_COST: std::ops::RangeInclusive<u32> = 1..=16;
    /// Memory times passes, in KiB: a 4 GiB file may make two passes, a 64 MiB one 128. It
    /// caps the time one open can take to seconds.
    pub const WORK_KIB_MAX: u64 = 8 * 1024 * 1024;
    pub const SALT_BYTES: std::ops::RangeInclusive<usize> = 8..=64;
    /// hex(nonce 12 + bincode(MasterKeys), at most 64 KiB + tag 16).
    pub const WRAPPED_HEX_MAX: usize = 2 * (12 + 64 * 1024 + 16);
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
}

impl Argon2Params {
    /// OWASP's recommended Argon2id setting (m = 64 MiB, t = 3, p = 1): about 0.2 s here.
    pub fn recommended() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
            salt: hex::encode(rand::random::<[u8; 16]>()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub host: String,
    pub argon2id: Argon2Params,
    /// v1: hex(nonce[12] || AES-256-GCM(bincode(MasterKeys))) under the derived key.
    /// v2: hex(nonce[12] || AES-256-GCM(wrap key)) under the derived key.
    pub wrapped: String,
    /// v2: hex(nonce[12] || AES-256-GCM(bincode(KeyRing))) under the wrap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
}

impl Argon2Params {
    /// Refuses parameters outside [`bounds`]; returns the decoded salt.
    pub fn validate(&self) -> Result<Vec<u8>, KeyFileError> {
        let check = |param, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(KeyFileError::UnsafeParam {
                    param,
                    value,
                    min,
                    max,
                })
            }
        };
        let range =
            |r: &std::ops::RangeInclusive<u32>| (u64::from(*r.start()), u64::from(*r.end()));
        let (p_min, p_max) = range(&bounds::P_COST);
        check("p_cost", self.p_cost.into(), p_min, p_max)?;
        let (t_min, t_max) = range(&bounds::T_COST);
        check("t_cost", self.t_cost.into(), t_min, t_max)?;
        check(
            "m_cost_kib",
            self.m_cost_kib.into(),
            8 * u64::from(self.p_cost),
            bounds::M_COST_KIB_MAX.into(),
        )?;
        check(
            "m_cost_kib × t_cost",
            u64::from(self.m_cost_kib) * u64::from(self.t_cost),
            0,
            bounds::WORK_KIB_MAX,
        )?;
        // Hex doubles the length: bound it before decoding.
        let max_hex = 2 * *bounds::SALT_BYTES.end();
        if self.salt.len() > max_hex {
            return Err(KeyFileError::UnsafeParam {
                param: "salt length (hex digits)",
                value: self.salt.len() as u64,
                min: 2 * *bounds::SALT_BYTES.start() as u64,
                max: max_hex as u64,
            });
        }
        let salt = hex::decode(&self.salt).map_err(|e| KeyFileError::Parse(e.to_string()))?;
        check(
            "salt length (bytes)",
            salt.len() as u64,
            *bounds::SALT_BYTES.start() as u64,
            *bounds::SALT_BYTES.end() as u64,
        )?;
        Ok(salt)
    }
}

fn derive(password: &[u8], params: &Argon2Params) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let salt = params.validate()?;
    let argon_params =
        argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    // Our own allocation, so memory the machine does not have is an error, not an abort.
    let blocks = argon_params.block_count();
    let mut memory: Vec<argon2::Block> = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| {
        KeyFileError::Kdf(format!(
            "cannot allocate the {} KiB of memory the key file asks for",
            params.m_cost_kib
        ))
    })?;
    memory.resize(blocks, argon2::Block::default());
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into_with_memory(password, &salt, out.as_mut(), &mut memory)
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `keys` (a new repository's: version 1 created now) under `password`.
    pub fn wrap(
        keys: &MasterKeys,
        password: &[u8],
        params: Argon2Params,
    ) -> Result<Self, KeyFileError> {
        let mut ring = KeyRing::from_v1(keys, super::now_ns());
        ring.generation = 1;
        Self::wrap_ring(&ring, password, params)
    }

    /// A version 2 key file for `password` holding `ring`.
    pub fn wrap_ring(
        ring: &KeyRing,
        password: &[u8],
        params: Argon2Params,
    ) -> Result<Self, KeyFileError> {
        let kek = derive(password, &params)?;
        let slot = keyring::seal_with(&kek, ring.wrap_key().as_ref(), SLOT_AAD)?;
        Ok(Self {
            version: KEYFILE_VERSION,
            created: super::now_rfc3339(),
            host: super::hostname(),
            argon2id: params,
            wrapped: hex::encode(slot),
            keys: Some(hex::encode(ring.seal()?)),
        })
    }

    /// The same passphrase's file holding `ring` instead (version 2 only: a v1 file's
    /// passphrase is needed to write it anew). Created and host stay: they describe the
    /// passphrase, not the ring.
    pub fn rewrite(&self, ring: &KeyRing) -> Result<Self, KeyFileError> {
        if self.version != KEYFILE_VERSION {
            return Err(KeyFileError::Version(self.version));
        }
        Ok(Self {
            version: KEYFILE_VERSION,
            created: self.created.clone(),
            host: self.host.clone(),
            argon2id: self.argon2id.clone(),
            wrapped: self.wrapped.clone(),
            keys: Some(hex::encode(ring.seal()?)),
        })
    }

    /// The ring of a v2 file, opened with the repository's wrap key (no passphrase needed);
    /// `None` for a v1 file.
    pub fn ring(&self, wrap: &[u8; 32]) -> Option<Result<KeyRing, KeyFileError>> {
        let keys = self.keys.as_ref()?;
        Some(
            hex::decode(keys)
                .map_err(|e| KeyFileError::Parse(e.to_string()))
                .and_then(|sealed| KeyRing::open(wrap, &sealed)),
        )
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let file: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| KeyFileError::Parse(e.to_string()))?;
        match (file.version, &file.keys) {
            (KEYFILE_V1, None) | (KEYFILE_VERSION, Some(_)) => {}
            (KEYFILE_V1 | KEYFILE_VERSION, _) => {
                return Err(KeyFileError::Parse(format!(
                    "a version {} key file {} a \"keys\" field",
                    file.version,
                    if file.keys.is_some() { "has" } else { "lacks" }
                )))
            }
            (v, _) => return Err(KeyFileError::Version(v)),
        }
        file.argon2id.validate()?;
        let longest = file
            .wrapped
            .len()
            .max(file.keys.as_ref().map_or(0, String::len));
        if longest > bounds::WRAPPED_HEX_MAX {
            return Err(KeyFileError::Parse(format!(
                "wrapped key is {longest} hex digits, more than {}",
                bounds::WRAPPED_HEX_MAX
            )));
        }
        Ok(file)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Unwraps the master keys this file holds; `WrongPassword` if authentication fails. A
    /// v2 file may hold an older generation than another: [`keyring::load`] finds the newest.
    pub fn unwrap_keys(&self, password: &[u8]) -> Result<MasterKeys, KeyFileError> {
        let wrapped = hex::decode(&self.wrapped).map_err(|e| KeyFileError::Parse(e.to_string()))?;
        if wrapped.len() < 12 + 16 {
            return Err(KeyFileError::Parse("wrapped key too short".into()));
        }
        let kek = derive(password, &self.argon2id)?;
        if self.version == KEYFILE_V1 {
            return unwrap_v1(&kek, &wrapped);
        }
        let wrap = keyring::open_with(&kek, &wrapped, SLOT_AAD)?;
        let wrap: [u8; 32] = wrap
            .as_slice()
            .try_into()
            .map_err(|_| KeyFileError::Parse("the wrap key is not 32 bytes".into()))?;
        let wrap = zeroize::Zeroizing::new(wrap);
        let ring = self
            .ring(&wrap)
            .unwrap_or_else(|| Err(KeyFileError::Parse("no \"keys\" field".into())))?;
        if keyring::wrap_key(&ring.id_key).as_ref() != wrap.as_ref() {
            return Err(KeyFileError::Parse(
                "the ring does not belong to the wrap key that opens it".into(),
            ));
        }
        Ok(ring.master_keys())
    }
}

fn unwrap_v1(kek: &[u8; 32], wrapped: &[u8]) -> Result<MasterKeys, KeyFileError> {
    let cipher = Aes256Gcm::new(kek.into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(&wrapped[..12]), &wrapped[12..])
            .map_err(|_| KeyFileError::WrongPassword)?,
    );
    let (keys, _): (MasterKeys, usize) = bincode::serde::decode_from_slice(
        &plain,
        bincode::config::standard().with_limit::<65536>(),
    )
    .map_err(|e| KeyFileError::Parse(e.to_string()))?;
    Ok(keys)
}

/// Key files of an open repository: adding one for another passphrase, finding the ones a
/// passphrase opens, removing one. A key file's name is the SHA-256 of its bytes, like every
/// other named object, so adding one never replaces another.
pub mod manage {
    use super::super::backend::{FileKind, Key};
    use super::super::{read_named, sha256_hex, RepoError, Repository, Result, KEY_HINT};
    use super::{Argon2Params, KeyFile, KeyFileError};

    fn key_error(repo: &Repository, name: &str, source: KeyFileError) -> RepoError {
        RepoError::KeyFile {
            location: repo.location().clone(),
            name: name.to_owned(),
            source,
        }
    }

    /// Writes a key file wrapping the repository's newest key ring under `password`; returns
    /// its name. Written whole under a temp name and renamed (the backend's `put_new`).
    pub fn add(repo: &Repository, password: &[u8], params: Argon2Params) -> Result<String> {
        let ring = repo.key_ring()?.ring;
        put(repo, &ring, password, params)
    }

    /// Writes a new key file for `password` holding `ring`; returns its name.
    pub fn put(
        repo: &Repository,
        ring: &super::KeyRing,
        password: &[u8],
        params: Argon2Params,
    ) -> Result<String> {
        let file =
            KeyFile::wrap_ring(ring, password, params).map_err(|e| key_error(repo, "(new)", e))?;
        put_file(repo, &file)
    }

    /// Writes `file` under its name (the SHA-256 of its bytes), never replacing one.
    pub fn put_file(repo: &Repository, file: &KeyFile) -> Result<String> {
        let json = file.to_json();
        let name = sha256_hex(&json);
        repo.backend()
            .put_new(Key::new(FileKind::Key, &name), &json)?;
        Ok(name)
    }

    /// The names of the key files `password` opens (each costs one key derivation).
    pub fn opened_by(repo: &Repository, password: &[u8]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in repo.backend().list(FileKind::Key)? {
            let bytes = read_named(
                repo.backend(),
                Key::new(FileKind::Key, &name),
                "key file",
                KEY_HINT,
            )?;
            let file = KeyFile::parse(&bytes).map_err(|e| key_error(repo, &name, e))?;
            match file.unwrap_keys(password) {
                Ok(_) => out.push(name),
                Err(KeyFileError::WrongPassword) => {}
                Err(e) => return Err(key_error(repo, &name, e)),
            }
        }
        Ok(out)
    }

    /// Writes `next` into a new copy of every v2 key file (one per passphrase), then deletes the
    /// files it replaces. Returns the names written and removed.
    pub fn rewrite_rings(
        repo: &Repository,
        loaded: &super::super::keyring::Loaded,
        next: &super::KeyRing,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut written = Vec::new();
        let mut removed = Vec::new();
        let mut slots = std::collections::HashSet::new();
        for f in loaded.files.iter().filter(|f| f.generation.is_some()) {
            // Stale copies of one passphrase (an earlier crash) become one file.
            if slots.insert(f.file.wrapped.clone()) {
                let file = f
                    .file
                    .rewrite(next)
                    .map_err(|e| key_error(repo, &f.name, e))?;
                written.push(put_file(repo, &file)?);
            }
            removed.push(f.name.clone());
        }
        for name in removed.iter().filter(|n| !written.contains(n)) {
            remove(repo, name)?;
        }
        Ok((written, removed))
    }

    pub fn remove(repo: &Repository, name: &str) -> Result<()> {
        Ok(repo.backend().delete(Key::new(FileKind::Key, name))?)
    }

    pub fn count(repo: &Repository) -> Result<usize> {
        Ok(repo.backend().list(FileKind::Key)?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Argon2Params {
        Argon2Params {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
            salt: hex::encode([7u8; 16]),
        }
    }

    fn params(m_cost_kib: u32, t_cost: u32, p_cost: u32, salt_bytes: usize) -> Argon2Params {
        Argon2Params {
            m_cost_kib,
            t_cost,
            p_cost,
            salt: hex::encode(vec![7u8; salt_bytes]),
        }
    }

    #[test]
    fn parameters_we_write_are_within_bounds() {
        Argon2Params::recommended().validate().expect("defaults");
        fast().validate().expect("tests' parameters");
        params(2 * 1024 * 1024, 1, 1, 16)
            .validate()
            .expect("RFC 9106 first choice");
        params(bounds::M_COST_KIB_MAX, 2, 4, 64)
            .validate()
            .expect("the largest allowed");
    }

    #[test]
    fn hostile_argon2_parameters_are_refused_before_deriving() {
        let keys = MasterKeys::generate();
        let good = KeyFile::wrap(&keys, b"pw", fast()).expect("wrap");
        for (bad, param) in [
            (params(u32::MAX, 1, 1, 16), "m_cost_kib"),
            (params(bounds::M_COST_KIB_MAX + 1, 1, 1, 16), "m_cost_kib"),
            (params(4, 1, 1, 16), "m_cost_kib"),
            (params(64, u32::MAX, 1, 16), "t_cost"),
            (params(64, 0, 1, 16), "t_cost"),
            (params(64, 1, 0, 16), "p_cost"),
            (params(1024, 1, 10_000, 16), "p_cost"),
            (
                params(bounds::M_COST_KIB_MAX, 16, 1, 16),
                "m_cost_kib × t_cost",
            ),
            (params(64, 1, 1, 4), "salt length (bytes)"),
            (params(64, 1, 1, 1 << 20), "salt length (hex digits)"),
        ] {
            let mut file = KeyFile::parse(&good.to_json()).expect("parse");
            file.argon2id = bad.clone();
            let started = std::time::Instant::now();
            let err = KeyFile::parse(&file.to_json()).expect_err("parse must refuse");
            assert!(
                matches!(&err, KeyFileError::UnsafeParam { param: p, .. } if *p == param),
                "{bad:?}: {err}"
            );
            // Deriving directly is refused as well (no allocation, no work).
            assert!(matches!(
                file.unwrap_keys(b"pw"),
                Err(KeyFileError::UnsafeParam { .. })
            ));
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
    }

    /// A version 1 file, as builds before key rotation wrote it.
    fn v1_file(keys: &MasterKeys, password: &[u8]) -> KeyFile {
        let kek = derive(password, &fast()).expect("derive");
        let plain = bincode::serde::encode_to_vec(keys, bincode::config::standard()).expect("enc");
        let nonce: [u8; 12] = rand::random();
        let mut wrapped = nonce.to_vec();
        wrapped.extend(
            Aes256Gcm::new(kek.as_ref().into())
                .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
                .expect("seal"),
        );
        KeyFile {
            version: KEYFILE_V1,
            created: "2026-01-01T00:00:00Z".into(),
            host: "old".into(),
            argon2id: fast(),
            wrapped: hex::encode(wrapped),
            keys: None,
        }
    }

    #[test]
    fn a_crash_mid_rotation_opens_the_newest_generation_with_any_passphrase() {
        use crate::repo::backend::FileKind;
        use crate::repo::Repository;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        let repo = Repository::init_with(&path, b"a", fast()).expect("init");
        let old = repo.keys().seal(b"sealed before");
        // An escrow passphrase from before key rotation: a version 1 file.
        let v1 = v1_file(repo.keys(), b"escrow");
        manage::put_file(&repo, &v1).expect("v1 file");
        // The rotation wrote the new generation for "a" only, then crashed.
        let loaded = repo.key_ring().expect("ring");
        let daemon = loaded
            .files
            .iter()
            .find(|f| f.generation.is_some())
            .expect("the v2 file");
        let next = loaded.ring.rotated(crate::repo::now_ns());
        manage::put_file(&repo, &daemon.file.rewrite(&next).expect("rewrite")).expect("put");
        assert_eq!(repo.backend().list(FileKind::Key).expect("list").len(), 3);
        for pw in [&b"a"[..], b"escrow"] {
            let opened = Repository::open(&path, pw).expect("open");
            assert_eq!(opened.keys().current, 2, "newest generation via {pw:?}");
            assert_eq!(
                opened.keys().open(&old).expect("old version"),
                b"sealed before"
            );
        }
        // The rotation's last step, deleting the older copy, changes nothing.
        manage::remove(&repo, &daemon.name).expect("rm");
        assert_eq!(
            Repository::open(&path, b"a").expect("open").keys().current,
            2
        );
        assert_eq!(
            Repository::open(&path, b"escrow")
                .expect("open")
                .keys()
                .current,
            2
        );
    }

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let keys = MasterKeys::generate();
        let file = KeyFile::wrap(&keys, b"correct horse", fast()).expect("wrap");
        let parsed = KeyFile::parse(&file.to_json()).expect("parse");
        let back = parsed.unwrap_keys(b"correct horse").expect("unwrap");
        assert_eq!(back.id_key, keys.id_key);
        assert!(matches!(
            parsed.unwrap_keys(b"wrong"),
            Err(KeyFileError::WrongPassword)
        ));
    }
}
