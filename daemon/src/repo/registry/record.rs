//! The stored form of a registered repository: tree `repos` in sled, keyed by name, a JSON
//! value. It is a type of its own, apart from [`RepoEntry`] (what the daemon works with) and
//! from the protocol's `RepoInfo` (what clients see), so that neither can change the stored
//! bytes by accident.
//!
//! Versions:
//! * 0 (no `v` field, before issue 11): `{"name","path","key_file","is_default",
//!   "password_command"?}` with `path` an absolute directory.
//! * 1: `v: 1`, `location` (an absolute directory, or `s3://bucket/prefix?options`) instead
//!   of `path`. Older records load; they are rewritten in
//!   this form the next time the registration changes.

use super::{RegistryError, RepoEntry};
use crate::repo::Location;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The version this build writes.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// Absent in version 0.
    #[serde(default)]
    v: u32,
    name: String,
    /// Version 0 called it `path`.
    #[serde(alias = "path")]
    location: String,
    /// Empty when the passphrase comes from `password_command`.
    key_file: PathBuf,
    is_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_command: Option<String>,
}

/// The bytes stored for `entry`. Fails only for a location that has no text form (a local
/// path that is not UTF-8), which registration refuses before getting here.
pub fn encode(entry: &RepoEntry) -> Result<Vec<u8>, RegistryError> {
    let location = entry
        .location
        .as_text()
        .ok_or_else(|| RegistryError::Location(entry.location.not_text()))?;
    let record = Record {
        v: VERSION,
        name: entry.name.clone(),
        location,
        key_file: entry.key_file.clone(),
        is_default: entry.is_default,
        password_command: entry.password_command.clone(),
    };
    serde_json::to_vec(&record).map_err(|e| RegistryError::Corrupt {
        name: entry.name.clone(),
        reason: format!("cannot encode the record: {e}"),
    })
}

/// Reads a stored record of any known version; `key` is its sled key (for messages).
pub fn decode(key: &[u8], bytes: &[u8]) -> Result<RepoEntry, RegistryError> {
    let corrupt = |reason: String| RegistryError::Corrupt {
        name: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let record: Record = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if record.v > VERSION {
        return Err(corrupt(format!(
            "record version {} was written by a newer backupd (this one reads up to {VERSION}); \
             run that version, or register the repository again with `backupctl repo add`",
            record.v
        )));
    }
    let location = Location::parse(&record.location).map_err(|e| corrupt(e.to_string()))?;
    Ok(RepoEntry {
        name: record.name,
        location,
        key_file: record.key_file,
        is_default: record.is_default,
        password_command: record.password_command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_locations_still_load() {
        // Byte for byte what the previous release stored.
        let old = br#"{"name":"nas","path":"/srv/backup","key_file":"/var/lib/backupd/keys/nas.key","is_default":true}"#;
        let entry = decode(b"nas", old).expect("old record");
        assert_eq!(entry.location, Location::local("/srv/backup"));
        assert_eq!(
            entry.key_file,
            PathBuf::from("/var/lib/backupd/keys/nas.key")
        );
        assert!(entry.is_default);
        assert_eq!(entry.password_command, None);
        let old_cmd = br#"{"name":"c","path":"/c","key_file":"","is_default":false,"password_command":"pass show c"}"#;
        let entry = decode(b"c", old_cmd).expect("old record with a command");
        assert_eq!(entry.password_command.as_deref(), Some("pass show c"));
    }

    #[test]
    fn records_round_trip_in_the_new_form_and_newer_ones_are_refused() {
        let entry = RepoEntry {
            name: "a".into(),
            location: Location::local("/srv/a"),
            key_file: "/k".into(),
            is_default: false,
            password_command: None,
        };
        let bytes = encode(&entry).expect("encode");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["v"], 1);
        assert_eq!(json["location"], "/srv/a");
        assert!(json.get("path").is_none());
        assert_eq!(decode(b"a", &bytes).expect("decode"), entry);
        let newer = br#"{"v":2,"name":"a","location":"/a","key_file":"","is_default":false}"#;
        let e = decode(b"a", newer).expect_err("newer");
        assert!(e.to_string().contains("newer backupd"), "{e}");
        let s3 = br#"{"v":1,"name":"a","location":"s3://bkt/p?endpoint=http://127.0.0.1:9000","key_file":"","is_default":false}"#;
        let entry = decode(b"a", s3).expect("an S3 location");
        assert!(matches!(&entry.location, Location::S3(s) if s.bucket == "bkt"));
        let e = decode(
            b"a",
            br#"{"v":1,"name":"a","location":"sftp://h/p","key_file":"","is_default":false}"#,
        )
        .expect_err("unknown scheme");
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
