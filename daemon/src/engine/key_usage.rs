//! How many packs each data-key version still seals (`repo key list`): only each pack's
//! sealed header is read, and only the version it names, never its contents.

use super::rebuild::sealed_pack_header;
use super::EngineError;
use crate::repo::backend::FileKind;
use crate::repo::Repository;
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

/// Packs per data-key version, and the packs whose header could not be read (name, reason).
#[derive(Debug, Default)]
pub struct KeyUsage {
    pub packs: BTreeMap<u32, u64>,
    pub unreadable: Vec<(String, String)>,
}

/// Most unreadable packs named in the answer; the rest are counted in the log only.
const UNREADABLE_LISTED: usize = 20;

pub fn packs_per_version(
    repo: &Repository,
    cancel: &CancellationToken,
) -> Result<KeyUsage, EngineError> {
    let mut usage = KeyUsage::default();
    let mut unreadable = 0usize;
    for name in repo.backend().list(FileKind::Pack)? {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let version = sealed_pack_header(repo, &name).and_then(|(sealed, _)| {
            repo.keys()
                .key_version_of(&sealed)
                .map_err(|e| e.to_string())
        });
        match version {
            Ok(v) => *usage.packs.entry(v).or_default() += 1,
            Err(reason) => {
                unreadable += 1;
                if usage.unreadable.len() < UNREADABLE_LISTED {
                    usage.unreadable.push((name, reason));
                }
            }
        }
    }
    if unreadable > 0 {
        tracing::warn!(repo = %repo.location(), unreadable, "pack headers that could not be read while counting packs per key version; run `backupctl repo check`");
    }
    Ok(usage)
}
