//! `repo` group: init, add, list, key export. (Check and rebuild-index run as queue jobs.)

use super::{blocking, Outcome};
use crate::context::Context;
use crate::queue::exec::path_of;
use crate::repo::registry::{Registry, RepoEntry};
use backupd_common::protocol::{KeyExport, RepoInfo, RepoRequest, Response};
use std::sync::Arc;

fn info(registry: &Registry, entry: &RepoEntry) -> RepoInfo {
    let opened = registry.open(Some(&entry.name)).ok();
    RepoInfo {
        name: entry.name.clone(),
        path: entry.location.to_string(),
        id: opened
            .as_ref()
            .map(|(_, r)| r.config().id.clone())
            .unwrap_or_default(),
        format_version: crate::repo::FORMAT_VERSION,
        snapshots: opened.and_then(|(_, r)| r.snapshot_count().ok().map(|n| n as u64)),
        key_file: entry.key_file.display().to_string(),
        is_default: entry.is_default,
    }
}

pub async fn handle(ctx: &Arc<Context>, request: RepoRequest) -> Outcome {
    let registry = ctx.repos.clone();
    match request {
        RepoRequest::Init { name, path, password } => Outcome::result(
            blocking(move || {
                let entry = registry.init(&name, &path_of(path), password.as_ref().map(|p| p.0.as_slice()))?;
                tracing::info!(name = %entry.name, location = %entry.location, key = %entry.key_file.display(), "repository created; back up its key (`backupctl repo key export`)");
                Ok(Response::Repo(info(&registry, &entry)))
            })
            .await,
        ),
        RepoRequest::Add { name, path, password } => Outcome::result(
            blocking(move || {
                let entry = registry.add(&name, &path_of(path), &password.0)?;
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
    }
}
