//! The hash chain and the signing key. An entry's hash is the SHA-256 of the canonical JSON of
//! every field before `hash` (serde writes struct fields in declaration order, and the entry
//! holds no maps or floats, so one entry has one encoding). A checkpoint is HMAC-SHA256 under
//! `<state_dir>/audit.key`, which only the daemon's uid can read.

use super::AuditError;
use backupd_common::protocol::{AuditCheckpoint, AuditEntry};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// `prev` of the first entry ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The entry without its hash: what is hashed.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    time_ns: i64,
    uid: u32,
    gid: u32,
    pid: Option<i32>,
    role: &'a Option<String>,
    permission: &'a Option<String>,
    event: backupd_common::protocol::EventType,
    severity: backupd_common::protocol::Severity,
    request: &'a str,
    target: &'a backupd_common::protocol::AuditTarget,
    outcome: backupd_common::protocol::AuditOutcome,
    error_code: &'a Option<String>,
    message: &'a Option<String>,
    prev: &'a str,
}

/// The hash `entry` should carry (lowercase hex).
pub fn entry_hash(e: &AuditEntry) -> String {
    let body = Body {
        seq: e.seq,
        time: &e.time,
        time_ns: e.time_ns,
        uid: e.uid,
        gid: e.gid,
        pid: e.pid,
        role: &e.role,
        permission: &e.permission,
        event: e.event,
        severity: e.severity,
        request: &e.request,
        target: &e.target,
        outcome: e.outcome,
        error_code: &e.error_code,
        message: &e.message,
        prev: &e.prev,
    };
    // Serialising plain data to a Vec cannot fail.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// The daemon's audit signing key.
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// Reads `path`, or creates it (0600, 32 random bytes) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Key {
            path: path.to_owned(),
            source,
        };
        let mut key = Zeroizing::new([0u8; 32]);
        match std::fs::File::open(path) {
            Ok(mut file) => {
                let mode = file.metadata().map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    // Others could forge checkpoints; take their access away rather than refuse
                    // to start.
                    tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                        "audit key was readable by others; setting mode 0600");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                file.read_exact(&mut key[..]).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *key = rand::random::<[u8; 32]>();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                file.write_all(&key[..]).map_err(io)?;
                file.sync_all().map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        Ok(Self(key))
    }

    fn mac(&self, what: &str, seq: u64, hash: &str, time_ns: i64) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(format!("{what}|{seq}|{hash}|{time_ns}").as_bytes());
        mac
    }

    /// A checkpoint (or, with `what = "anchor"`, a retention anchor) over the chain's head.
    pub fn sign(&self, what: &str, seq: u64, hash: &str, time_ns: i64) -> AuditCheckpoint {
        let mac = self.mac(what, seq, hash, time_ns).finalize().into_bytes();
        AuditCheckpoint {
            seq,
            hash: hash.to_owned(),
            time: crate::repo::format_rfc3339(time_ns),
            time_ns,
            mac: hex::encode(mac),
        }
    }

    /// Whether `cp`'s signature is ours (constant time).
    pub fn verifies(&self, what: &str, cp: &AuditCheckpoint) -> bool {
        let Ok(mac) = hex::decode(&cp.mac) else {
            return false;
        };
        self.mac(what, cp.seq, &cp.hash, cp.time_ns)
            .verify_slice(&mac)
            .is_ok()
    }
}
