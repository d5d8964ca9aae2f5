//! `repo` group: init, add, list, key export. (Check and rebuild-index run as queue jobs.)

use super::{blocking, Outcome};
use crate::ops::repos::info;
use crate::ops::view::path_of;
use crate::server::Services;
use backupd_common::protocol::{KeyExport, RepoRequest, Response};

pub async fn handle(services: &Services, request: RepoRequest) -> Outcome {
    let registry = services.repos.clone();
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
