//! `repo key rotate|list|remove`: data-key versions and passphrases' key files (the registry
//! does the work, `engine::key_usage` counts packs per version).

use super::{blocking, Outcome};
use crate::engine::key_usage;
use crate::repo::format_rfc3339;
use crate::repo::keyring::Loaded;
use crate::server::Services;
use backupd_common::protocol::{
    KeyFileInfo, KeyListing, KeyRemoval, KeyRotation, KeyVersionInfo, RepoRequest, Response,
};

pub async fn handle(services: &Services, request: RepoRequest) -> Outcome {
    let registry = services.repos.clone();
    let cancel = services.shutdown.child_token();
    Outcome::result(
        blocking(move || match request {
            RepoRequest::KeyRotate { name } => {
                let o = registry.key_rotate(name.as_deref(), &cancel)?;
                Ok(Response::KeyRotated(KeyRotation {
                    name: o.entry.name,
                    previous: o.previous,
                    version: o.version,
                    generation: o.generation,
                    written: o.written,
                    removed: o.removed,
                    kept_v1: o.kept_v1,
                }))
            }
            RepoRequest::KeyList { name } => {
                let (entry, repo, loaded) = registry.key_files(name.as_deref())?;
                let usage = key_usage::packs_per_version(&repo, &cancel)?;
                Ok(Response::KeyList(Box::new(listing(
                    entry.name, &loaded, &usage,
                ))))
            }
            RepoRequest::KeyRemove { name, id } => {
                let o = registry.key_remove(name.as_deref(), &id)?;
                Ok(Response::KeyRemoved(KeyRemoval {
                    name: o.entry.name,
                    removed: o.removed,
                    key_files: o.key_files as u64,
                }))
            }
            other => Err(crate::error::Error::Internal(format!(
                "{} reached the key handler",
                backupd_common::protocol::Request::Repo(other).name()
            ))),
        })
        .await,
    )
}

fn listing(name: String, loaded: &Loaded, usage: &key_usage::KeyUsage) -> KeyListing {
    let ring = &loaded.ring;
    KeyListing {
        name,
        current: ring.current,
        generation: ring.generation,
        versions: ring
            .versions
            .iter()
            .map(|v| KeyVersionInfo {
                version: v.version,
                created: format_rfc3339(v.created_ns),
                current: v.version == ring.current,
                retired: v.key.is_none(),
                packs: usage.packs.get(&v.version).copied().unwrap_or(0),
            })
            .collect(),
        key_files: loaded
            .files
            .iter()
            .map(|f| KeyFileInfo {
                name: f.name.clone(),
                version: f.file.version,
                created: f.file.created.clone(),
                host: f.file.host.clone(),
                generation: f.generation,
            })
            .collect(),
        unreadable_packs: usage.unreadable.iter().map(|(n, _)| n.clone()).collect(),
    }
}
