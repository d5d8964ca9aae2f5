//! The repository's plaintext `config` file: format name and version, id, chunker sizes.

use super::backend::{Backend, ErrorKind, Key};
use super::crypto::SealFormat;
use super::{RepoError, Result, FORMAT_NAME, FORMAT_VERSION, MIN_FORMAT_VERSION};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    /// Random repository id (hex).
    pub id: String,
    pub created: String,
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
    /// Set while `repo migrate` converts a repository of this older format to `version`: its
    /// objects are then in either layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating_from: Option<u32>,
}

impl RepoConfig {
    /// How this repository's objects are sealed and read.
    pub fn seal_format(&self) -> Option<SealFormat> {
        match (self.migrating_from, self.version) {
            (Some(1), 2) => Some(SealFormat::Migrating),
            (Some(_), _) => None,
            (None, version) => SealFormat::of_repository_version(version),
        }
    }
}

pub fn read_config(backend: &dyn Backend) -> Result<RepoConfig> {
    let location = backend.location().clone();
    let bytes = match backend.get(Key::config()) {
        Ok(bytes) => bytes,
        Err(e) if e.kind == ErrorKind::Unreachable => {
            return Err(RepoError::Unreachable { location })
        }
        // Only a missing or unreadable config says "not a repository"; a failing disk or a full
        // one is reported as what it is (and retried).
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Permanent) => {
            return Err(RepoError::NotARepository {
                location,
                reason: e.to_string(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let config: RepoConfig =
        serde_json::from_slice(&bytes).map_err(|e| RepoError::NotARepository {
            location: location.clone(),
            reason: e.to_string(),
        })?;
    if config.format != FORMAT_NAME {
        return Err(RepoError::NotARepository {
            location,
            reason: format!("format is {:?}", config.format),
        });
    }
    // No compatible higher version: a newer format may store what this build cannot see.
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&config.version) {
        return Err(RepoError::UnsupportedVersion {
            location,
            found: config.version,
        });
    }
    if config.seal_format().is_none() {
        return Err(RepoError::UnsupportedVersion {
            location,
            found: config.version,
        });
    }
    // The config is not authenticated: refuse chunker sizes FastCDC would reject.
    let sizes_ok = (64..=1 << 20).contains(&config.chunk_min)
        && (256..=4 << 20).contains(&config.chunk_avg)
        && (1024..=16 << 20).contains(&config.chunk_max)
        && config.chunk_min <= config.chunk_avg
        && config.chunk_avg <= config.chunk_max;
    if !sizes_ok {
        return Err(RepoError::NotARepository {
            location,
            reason: format!(
                "chunk sizes {}/{}/{} are out of range",
                config.chunk_min, config.chunk_avg, config.chunk_max
            ),
        });
    }
    Ok(config)
}
