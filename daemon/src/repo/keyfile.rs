//! Key files: the repository's [`MasterKeys`] wrapped under a key-encryption key derived from a
//! passphrase with Argon2id. Stored as JSON in `keys/<name>`; the Argon2id parameters travel in
//! the file, so they can be raised later without breaking old files.

use super::crypto::MasterKeys;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const KEYFILE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file is not valid JSON of version {KEYFILE_VERSION}: {0}")]
    Parse(String),
    #[error("key file has version {0}; this backupd reads version {KEYFILE_VERSION}")]
    Version(u32),
    #[error("wrong password: no key file of this repository opens with it")]
    WrongPassword,
    #[error("key derivation failed: {0}")]
    Kdf(String),
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
    /// hex(nonce[12] || AES-256-GCM(bincode(MasterKeys))) under the derived key.
    pub wrapped: String,
}

fn derive(password: &[u8], params: &Argon2Params) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let salt = hex::decode(&params.salt).map_err(|e| KeyFileError::Parse(e.to_string()))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| KeyFileError::Kdf(e.to_string()))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, &salt, out.as_mut())
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `keys` under `password`.
    pub fn wrap(
        keys: &MasterKeys,
        password: &[u8],
        params: Argon2Params,
    ) -> Result<Self, KeyFileError> {
        let kek = derive(password, &params)?;
        let cipher = Aes256Gcm::new(kek.as_ref().into());
        let nonce: [u8; 12] = rand::random();
        let plain = Zeroizing::new(
            bincode::serde::encode_to_vec(keys, bincode::config::standard())
                .map_err(|e| KeyFileError::Parse(e.to_string()))?,
        );
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| KeyFileError::Kdf("encryption failed".into()))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&ct);
        Ok(Self {
            version: KEYFILE_VERSION,
            created: super::now_rfc3339(),
            host: super::hostname(),
            argon2id: params,
            wrapped: hex::encode(wrapped),
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let file: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| KeyFileError::Parse(e.to_string()))?;
        if file.version != KEYFILE_VERSION {
            return Err(KeyFileError::Version(file.version));
        }
        Ok(file)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Unwraps the master keys; `WrongPassword` if authentication fails.
    pub fn unwrap_keys(&self, password: &[u8]) -> Result<MasterKeys, KeyFileError> {
        let wrapped = hex::decode(&self.wrapped).map_err(|e| KeyFileError::Parse(e.to_string()))?;
        if wrapped.len() < 12 + 16 {
            return Err(KeyFileError::Parse("wrapped key too short".into()));
        }
        let kek = derive(password, &self.argon2id)?;
        let cipher = Aes256Gcm::new(kek.as_ref().into());
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
