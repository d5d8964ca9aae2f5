//! `repo` group: init, add, list, remove, info, key export/add/passwd (rotate/list/remove in
//! `repo_keys`), and `stats`. (Check
//! and rebuild-index run as queue jobs.)

use super::{blocking, Outcome};
use crate::ops::repos::{self, info};
use crate::ops::view::path_of;
use crate::server::Services;
use backupd_common::protocol::{Identity, KeyExport, RepoRequest, Response};
use tokio_util::sync::CancellationToken;

pub async fn handle(services: &Services, identity: &Identity, request: RepoRequest) -> Outcome {
    let registry = services.repos.clone();
    match request {
        RepoRequest::Init { name, path, password, credentials } => Outcome::result(
            blocking(move || {
                let location = location_of(path)?;
                let entry = registry.init_at(
                    &name,
                    &location,
                    password.as_ref().map(|p| p.0.as_slice()),
                    credentials.as_ref().map(|c| c.0.as_slice()),
                )?;
                tracing::info!(name = %entry.name, location = %entry.location, key = %entry.key_file.display(), "repository created; back up its key (`backupctl repo key export`)");
                Ok(Response::Repo(info(&registry, &entry)))
            })
            .await,
        ),
        RepoRequest::Add { name, path, password, credentials } => Outcome::result(
            blocking(move || {
                let location = location_of(path)?;
                let entry = registry.add_at(
                    &name,
                    &location,
                    &password.0,
                    credentials.as_ref().map(|c| c.0.as_slice()),
                )?;
                tracing::info!(name = %entry.name, location = %entry.location, "repository registered");
                Ok(Response::Repo(info(&registry, &entry)))
            })
            .await,
        ),
        RepoRequest::List => Outcome::result(
            blocking(move || {
                let entries = registry.list()?;
                Ok(Response::Repos(entries.iter().map(|e| info(&registry, e)).collect()))
            })
            .await,
        ),
        RepoRequest::KeyExport { name } => Outcome::result(
            blocking(move || {
                let (entry, password) = registry.export(&name)?;
                // Never lossy: a binary passphrase is exported as hex, and says so.
                let (password, encoding) = match String::from_utf8(password) {
                    Ok(text) => (text, "utf8"),
                    Err(e) => (hex::encode(e.into_bytes()), "hex"),
                };
                Ok(Response::KeyExport(KeyExport {
                    name: entry.name,
                    path: entry.location.to_string(),
                    password,
                    encoding: encoding.to_owned(),
                }))
            })
            .await,
        ),
        RepoRequest::Remove { name } => {
            let queue = services.queue.clone();
            let sources = services.sources.clone();
            Outcome::result(
                blocking(move || {
                    let users = |e: &crate::repo::registry::RepoEntry| {
                        repos::users(&e.name, e.is_default, &queue.unfinished(), &sources.list())
                    };
                    // Read while it is still registered: id and snapshot count.
                    let before = info(&registry, &registry.entry(Some(&name))?);
                    registry.remove(&name, &users)?;
                    Ok(Response::RepoRemoved(before))
                })
                .await,
            )
        }
        RepoRequest::Info { name } => Outcome::result(
            blocking(move || {
                Ok(Response::RepoDetails(Box::new(repos::details(&registry, name.as_deref())?)))
            })
            .await,
        ),
        RepoRequest::KeyAdd { name, password } => Outcome::result(
            blocking(move || {
                let o = registry.key_add(name.as_deref(), &password.0)?;
                Ok(Response::KeyChanged(repos::key_change(o, false)))
            })
            .await,
        ),
        RepoRequest::KeyPasswd { name, password } => Outcome::result(
            blocking(move || {
                let o = registry.key_passwd(name.as_deref(), &password.0)?;
                Ok(Response::KeyChanged(repos::key_change(o, true)))
            })
            .await,
        ),
        r @ (RepoRequest::KeyRotate { .. }
        | RepoRequest::KeyList { .. }
        | RepoRequest::KeyRemove { .. }) => super::repo_keys::handle(services, r).await,
        RepoRequest::Stats(r) => {
            // Stops walking when the daemon shuts down.
            let cancel: CancellationToken = services.shutdown.child_token();
            let scope = super::snapshots::scope(identity);
            Outcome::result(
                blocking(move || {
                    Ok(Response::Stats(Box::new(repos::stats(&registry, &r, scope, &cancel)?)))
                })
                .await,
            )
        }
        RepoRequest::InitReplica(_)
        | RepoRequest::ReplicateAdd(_)
        | RepoRequest::ReplicateList
        | RepoRequest::ReplicateRemove { .. } => {
            super::repo_replicate::handle(services, request).await
        }
    }
}

/// A location as a client sends it: an `s3://` URL, or a directory (whose path need not be
/// UTF-8 to be named in an error).
pub(super) fn location_of(
    bytes: Vec<u8>,
) -> Result<crate::repo::Location, crate::repo::registry::RegistryError> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(crate::repo::Location::parse(&text)?),
        Err(e) => Ok(crate::repo::Location::local(path_of(e.into_bytes()))),
    }
}
