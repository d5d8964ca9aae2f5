//! `repo` group: init, add, list, key export, check.

use super::operation::{blocking, stream};
use super::Outcome;
use crate::context::Context;
use crate::engine::check::{check, CheckOptions, CheckReport};
use crate::engine::rebuild::rebuild_index;
use crate::repo::registry::{Registry, RepoEntry};
use backupd_common::protocol::{
    CheckProblem, CheckResult, KeyExport, RebuildResult, RepoInfo, RepoRequest, Response,
};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

pub fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

fn info(registry: &Registry, entry: &RepoEntry) -> RepoInfo {
    let opened = registry.open(Some(&entry.name)).ok();
    RepoInfo {
        name: entry.name.clone(),
        path: entry.path.display().to_string(),
        id: opened
            .as_ref()
            .map(|(_, r)| r.config().id.clone())
            .unwrap_or_default(),
        format_version: crate::repo::FORMAT_VERSION,
        snapshots: opened.and_then(|(_, r)| {
            r.backend()
                .list(crate::repo::backend::FileKind::Snapshot)
                .ok()
                .map(|l| l.len() as u64)
        }),
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
                tracing::info!(name = %entry.name, path = %entry.path.display(), key = %entry.key_file.display(), "repository created; back up its key (`backupctl repo key export`)");
                Ok(Response::Repo(info(&registry, &entry)))
            })
            .await,
        ),
        RepoRequest::Add { name, path, password } => Outcome::result(
            blocking(move || {
                let entry = registry.add(&name, &path_of(path), &password.0)?;
                tracing::info!(name = %entry.name, path = %entry.path.display(), "repository registered");
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
                    path: entry.path.display().to_string(),
                    password,
                    encoding: encoding.to_owned(),
                }))
            })
            .await,
        ),
        RepoRequest::RebuildIndex { name } => stream(ctx, move |progress, cancel| {
            let (_, repo) = registry.open(name.as_deref())?;
            let r = rebuild_index(&repo, progress, cancel)?;
            tracing::info!(packs = r.packs, blobs = r.blobs, unreadable = r.unreadable.len(), "index rebuilt");
            Ok(Response::RebuildIndex(RebuildResult {
                packs: r.packs,
                blobs: r.blobs,
                unreadable: r.unreadable,
                old_index_files: r.old_index_files,
            }))
        }),
        RepoRequest::Check { name, read_data_percent } => stream(ctx, move |progress, cancel| {
            let (_, repo) = registry.open(name.as_deref())?;
            let report = check(&repo, &CheckOptions { read_data_percent }, progress, cancel)?;
            Ok(Response::Check(check_result(report)))
        }),
    }
}

fn check_result(r: CheckReport) -> CheckResult {
    CheckResult {
        snapshots: r.snapshots as u64,
        trees: r.trees as u64,
        blobs: r.blobs as u64,
        packs: r.packs as u64,
        packs_read: r.packs_read as u64,
        damaged_packs: r.damaged_packs,
        problems: r
            .problems
            .into_iter()
            .map(|p| CheckProblem {
                message: p.message,
                pack: p.pack,
                blob: p.blob,
                snapshots: p.snapshots,
                paths: p.paths,
            })
            .collect(),
        notes: r.notes,
    }
}
