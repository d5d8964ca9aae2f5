//! The repository's plaintext `config` file: format name and version, id, chunker sizes.

use super::backend::{FileKind, LocalBackend};
use super::{RepoError, Result, FORMAT_NAME, FORMAT_VERSION};
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
}

pub fn read_config(backend: &LocalBackend) -> Result<RepoConfig> {
    let path = backend.root().to_owned();
    if !path.is_dir() {
        return Err(RepoError::Unreachable { path });
    }
    let bytes =
        backend
            .read(FileKind::Config, "config")
            .map_err(|e| RepoError::NotARepository {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    let config: RepoConfig =
        serde_json::from_slice(&bytes).map_err(|e| RepoError::NotARepository {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if config.format != FORMAT_NAME {
        return Err(RepoError::NotARepository {
            path,
            reason: format!("format is {:?}", config.format),
        });
    }
    if config.version != FORMAT_VERSION {
        return Err(RepoError::UnsupportedVersion {
            path,
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
            path,
            reason: format!(
                "chunk sizes {}/{}/{} are out of range",
                config.chunk_min, config.chunk_avg, config.chunk_max
            ),
        });
    }
    Ok(config)
}
